//! Smart charging end to end (OCPI ChargingProfiles, the daemon as Receiver): the fake hub, in
//! its eMSP role, PUTs / GETs / DELETEs `{chargingprofiles}/{session_id}` for a running session
//! of its own driver; our test station answers SetChargingProfile / GetCompositeSchedule /
//! ClearChargingProfile (or stays silent), and the hub receives the bare result at the request's
//! `response_url`. On 2.0.1 the station's NotifyChargingLimit becomes an ActiveChargingProfile
//! PUT to the hub's chargingprofiles SENDER endpoint; a session that ends drops its profile.

use std::time::Duration;

use bridge_tests::hub::OcpiResponse;
use bridge_tests::payloads::{ocpi, v16, v201};
use bridge_tests::{Daemon, Hub, OcppVersion, Reply, Station, eventually, now_rfc3339};
use reqwest::Method;
use serde_json::{Value, json};

use crate::commands::Emsp;
use crate::ocpi_support::{
    PUSH_SOON, active_transaction, booted, calls, ocpi_config, registered_with_hub, status,
};

/// The call timeout the daemon runs with here (seconds).
const CALL_TIMEOUT: u64 = 2;
/// The token owner (the hub may act for any party).
const CC: &str = "DE";
const PID: &str = "EMS";

/// The hub as the eMSP that steers its driver's session.
struct Steering<'a> {
    hub: &'a Hub,
    base: String,
}

impl<'a> Steering<'a> {
    fn new(hub: &'a Hub) -> Self {
        Steering {
            hub,
            base: hub.bridge_module_url("chargingprofiles"),
        }
    }

    /// A fresh `response_url` under the hub's (recorded) chargingprofiles path.
    fn response_url(&self, kind: &str) -> String {
        format!(
            "{}/{kind}/{}",
            self.hub.module_url("chargingprofiles"),
            uuid::Uuid::new_v4().simple()
        )
    }

    async fn send(
        &self,
        method: Method,
        session: &str,
        query: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> OcpiResponse {
        let url = format!("{}/{session}{query}", self.base);
        let token = self.hub.token_for_bridge().expect("hub registered");
        self.hub
            .request(
                method,
                &url,
                Some(&token),
                body.map(|b| b.to_string()),
                headers,
            )
            .await
    }

    /// Asserts the synchronous ChargingProfileResponse.
    fn sync(r: &OcpiResponse, want: &str) {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.ocpi_status(), Some(1000), "{}", r.text);
        assert_eq!(r.data()["result"], want, "{}", r.text);
        if want == "ACCEPTED" {
            let timeout = r.data()["timeout"].as_u64().unwrap_or(0);
            assert!(
                timeout >= CALL_TIMEOUT,
                "timeout covers the call: {}",
                r.text
            );
        }
    }

    /// PUT a profile; returns the asynchronous result body when ACCEPTED.
    async fn set(&self, session: &str, profile: Value, want: &str) -> Option<Value> {
        let url = self.response_url("set");
        let body = json!({"charging_profile": profile, "response_url": url});
        let r = self.send(Method::PUT, session, "", Some(body), &[]).await;
        Self::sync(&r, want);
        if want != "ACCEPTED" {
            return None;
        }
        Some(Emsp { hub: self.hub }.result(&url, 1).await)
    }

    async fn get(&self, session: &str, duration: u32) -> Value {
        let url = self.response_url("get");
        let r = self
            .send(
                Method::GET,
                session,
                &format!("?duration={duration}&response_url={url}"),
                None,
                &[],
            )
            .await;
        Self::sync(&r, "ACCEPTED");
        Emsp { hub: self.hub }.result(&url, 1).await
    }

    async fn clear(&self, session: &str) -> Value {
        let url = self.response_url("clear");
        let r = self
            .send(
                Method::DELETE,
                session,
                &format!("?response_url={url}"),
                None,
                &[],
            )
            .await;
        Self::sync(&r, "ACCEPTED");
        Emsp { hub: self.hub }.result(&url, 1).await
    }
}

/// The OCPI profile the tests set: 16.1 A, then 8 A after 30 minutes, for an hour.
fn profile() -> Value {
    serde_json::from_str(
        r#"{"charging_rate_unit": "A", "duration": 3600, "min_charging_rate": 6.0,
            "charging_profile_period": [{"start_period": 0, "limit": 16.1},
                                        {"start_period": 1800, "limit": 8}]}"#,
    )
    .expect("profile JSON")
}

/// Starts a transaction with the hub's ALWAYS token; returns (session id, OCPP transaction id).
async fn running_session(daemon: &Daemon, cs: &Station, tag: &str) -> (String, String) {
    cs.call_ok(
        "StatusNotification",
        match cs.version() {
            OcppVersion::V16 => v16::status(1, "Available"),
            _ => v201::status(1, 1, "Available"),
        },
    )
    .await;
    match cs.version() {
        OcppVersion::V16 => {
            cs.call_ok("StartTransaction", v16::start(1, tag, 1000, &now_rfc3339()))
                .await;
        }
        _ => {
            cs.call_ok(
                "TransactionEvent",
                v201::tx_started("smart-tx-1", tag, 1000.0),
            )
            .await;
        }
    }
    let t = active_transaction(daemon, cs.id(), PUSH_SOON).await;
    (
        t["id"].as_str().expect("id").to_owned(),
        t["ocpp_transaction_id"]
            .as_str()
            .expect("ocpp id")
            .to_owned(),
    )
}

/// JSON number text (limits must keep their digits: compare the text, not an f64).
fn text(v: &Value) -> String {
    v.to_string()
}

async fn smart_charging(station: &str, version: OcppVersion) {
    let mut config = ocpi_config().free_vend(false);
    config.call_timeout = CALL_TIMEOUT;
    let (hub, daemon) = registered_with_hub(config).await;
    let tag = format!("SMART{}", station);
    hub.put_token_ok(&ocpi::token(CC, PID, &tag, "ALWAYS"))
        .await;
    // Version details list chargingprofiles as RECEIVER.
    assert!(
        hub.bridge_endpoints()
            .iter()
            .any(|(id, role, _)| id == "chargingprofiles" && role == "RECEIVER"),
        "{:?}",
        hub.bridge_endpoints()
    );
    let cs = booted(&daemon, station, version).await;
    let (session, ocpp_tx) = running_session(&daemon, &cs, &tag).await;
    let steer = Steering::new(&hub);

    // Unknown session, or another party's (through the hub): UNKNOWN_SESSION at once.
    steer
        .set("no-such-session", profile(), "UNKNOWN_SESSION")
        .await;
    let url = steer.response_url("set");
    let other = steer
        .send(
            Method::PUT,
            &session,
            "",
            Some(json!({"charging_profile": profile(), "response_url": url})),
            &[
                ("OCPI-from-country-code", "NL"),
                ("OCPI-from-party-id", "OTH"),
            ],
        )
        .await;
    Steering::sync(&other, "UNKNOWN_SESSION");
    // Bad requests are OCPI 2001: a response_url at the bridge itself, GET without duration.
    let own = format!("http://{}/ocpi/versions", daemon.ocpi_addr());
    let r = steer
        .send(
            Method::PUT,
            &session,
            "",
            Some(json!({"charging_profile": profile(), "response_url": own})),
            &[],
        )
        .await;
    assert_eq!(r.ocpi_status(), Some(2001), "{}", r.text);
    assert!(r.text.contains("response_url"), "{}", r.text);
    let r = steer
        .send(
            Method::GET,
            &session,
            &format!("?response_url={}", steer.response_url("get")),
            None,
            &[],
        )
        .await;
    assert_eq!(r.ocpi_status(), Some(2001), "{}", r.text);
    let r = steer
        .send(
            Method::PUT,
            &session,
            "",
            Some(json!({"charging_profile": {"charging_rate_unit": "A",
                "charging_profile_period": [{"start_period": 0, "limit": 16.15}]},
                "response_url": steer.response_url("set")})),
            &[],
        )
        .await;
    assert_eq!(
        r.ocpi_status(),
        Some(2001),
        "two fraction digits: {}",
        r.text
    );
    assert!(calls(&cs, "SetChargingProfile").is_empty());

    // Set: the station accepts.
    cs.on("SetChargingProfile", status("Accepted"));
    let result = steer
        .set(&session, profile(), "ACCEPTED")
        .await
        .expect("result");
    assert_eq!(result, json!({"result": "ACCEPTED"}));
    let sent = calls(&cs, "SetChargingProfile");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (schedule, profile_id) = match version {
        OcppVersion::V16 => {
            let p = &sent[0];
            assert_eq!(p["connectorId"], 1, "{p}");
            let cp = &p["csChargingProfiles"];
            assert_eq!(text(&cp["transactionId"]), ocpp_tx, "{p}");
            assert_eq!(cp["chargingProfilePurpose"], "TxProfile", "{p}");
            assert_eq!(cp["chargingProfileKind"], "Relative", "{p}");
            (
                cp["chargingSchedule"].clone(),
                cp["chargingProfileId"].clone(),
            )
        }
        _ => {
            let p = &sent[0];
            assert_eq!(p["evseId"], 1, "{p}");
            let cp = &p["chargingProfile"];
            assert_eq!(cp["transactionId"], ocpp_tx.as_str(), "{p}");
            assert_eq!(cp["chargingProfilePurpose"], "TxProfile", "{p}");
            assert_eq!(cp["chargingProfileKind"], "Relative", "{p}");
            let schedules = cp["chargingSchedule"].as_array().expect("schedules");
            assert_eq!(schedules.len(), 1, "{p}");
            (schedules[0].clone(), cp["id"].clone())
        }
    };
    assert_eq!(schedule["chargingRateUnit"], "A", "{schedule}");
    assert_eq!(schedule["duration"], 3600, "{schedule}");
    assert_eq!(text(&schedule["minChargingRate"]), "6.0", "{schedule}");
    let periods = schedule["chargingSchedulePeriod"]
        .as_array()
        .expect("periods");
    assert_eq!(periods.len(), 2, "{schedule}");
    assert_eq!(periods[0]["startPeriod"], 0);
    assert_eq!(text(&periods[0]["limit"]), "16.1", "{schedule}");
    assert_eq!(periods[1]["startPeriod"], 1800);
    assert_eq!(text(&periods[1]["limit"]), "8", "{schedule}");
    assert!(profile_id.as_i64().is_some_and(|id| id > 0), "{profile_id}");

    // Set again, the station rejects: REJECTED, under the same profile id (a replacement).
    cs.on("SetChargingProfile", status("Rejected"));
    let result = steer
        .set(&session, profile(), "ACCEPTED")
        .await
        .expect("result");
    assert_eq!(result, json!({"result": "REJECTED"}));
    let sent = calls(&cs, "SetChargingProfile");
    let id_of = |p: &Value| match version {
        OcppVersion::V16 => p["csChargingProfiles"]["chargingProfileId"].clone(),
        _ => p["chargingProfile"]["id"].clone(),
    };
    assert_eq!(id_of(&sent[1]), profile_id);

    // Get: the composite schedule mapped back.
    let composite = match version {
        OcppVersion::V16 => json!({"status": "Accepted", "connectorId": 1,
            "scheduleStart": "2026-03-01T10:00:00.000Z",
            "chargingSchedule": {"duration": 900, "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.5},
                                           {"startPeriod": 600, "limit": 3700, "numberPhases": 1}]}}),
        _ => json!({"status": "Accepted", "schedule": {"evseId": 1, "duration": 900,
            "scheduleStart": "2026-03-01T10:00:00.000Z", "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.5},
                                       {"startPeriod": 600, "limit": 3700, "numberPhases": 1}]}}),
    };
    cs.on("GetCompositeSchedule", Reply::Result(composite));
    let got = steer.get(&session, 900).await;
    assert_eq!(got["result"], "ACCEPTED", "{got}");
    let active = &got["profile"];
    assert_eq!(active["start_date_time"], "2026-03-01T10:00:00Z", "{got}");
    let cp = &active["charging_profile"];
    assert_eq!(cp["charging_rate_unit"], "W", "{got}");
    assert_eq!(cp["duration"], 900, "{got}");
    assert!(cp.get("start_date_time").is_none(), "{got}");
    let periods = cp["charging_profile_period"].as_array().expect("periods");
    assert_eq!(text(&periods[0]["limit"]), "7400.5", "{got}");
    assert_eq!(periods[1]["start_period"], 600, "{got}");
    assert_eq!(text(&periods[1]["limit"]), "3700", "{got}");
    let asked = calls(&cs, "GetCompositeSchedule");
    match version {
        OcppVersion::V16 => assert_eq!(asked[0], json!({"connectorId": 1, "duration": 900})),
        _ => assert_eq!(asked[0], json!({"evseId": 1, "duration": 900})),
    }
    cs.on("GetCompositeSchedule", status("Rejected"));
    assert_eq!(steer.get(&session, 60).await, json!({"result": "REJECTED"}));

    // 2.0.1: the station changes the limit on its own → ActiveChargingProfile to the hub.
    if version == OcppVersion::V201 {
        cs.call_ok(
            "NotifyChargingLimit",
            json!({"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1,
                "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.5}]}]}),
        )
        .await;
        let put = hub
            .wait_accepted("ActiveChargingProfile PUT", 1, PUSH_SOON, |p| {
                p.is("PUT", "chargingprofiles")
                    && p.segments.last().map(String::as_str) == Some(session.as_str())
            })
            .await
            .remove(0);
        let body = put.body.as_ref().expect("body");
        assert!(body.get("data").is_none(), "{body}");
        assert!(body["start_date_time"].is_string(), "{body}");
        let cp = &body["charging_profile"];
        assert_eq!(cp["charging_rate_unit"], "A", "{body}");
        assert_eq!(
            text(&cp["charging_profile_period"][0]["limit"]),
            "10.5",
            "{body}"
        );
        assert_eq!(
            put.header("ocpi-to-country-code"),
            Some(CC),
            "{:?}",
            put.headers
        );
        assert_eq!(put.header("ocpi-to-party-id"), Some(PID));
        // ReportChargingProfiles for the EVSE: the next update.
        cs.call_ok(
            "ReportChargingProfiles",
            json!({"requestId": 1, "chargingLimitSource": "CSO", "evseId": 1,
                "chargingProfile": [{"id": 99, "stackLevel": 0,
                    "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                    "transactionId": "smart-tx-1",
                    "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000}]}]}]}),
        )
        .await;
        let puts = hub
            .wait_accepted("second ActiveChargingProfile PUT", 2, PUSH_SOON, |p| {
                p.is("PUT", "chargingprofiles")
                    && p.segments.last().map(String::as_str) == Some(session.as_str())
            })
            .await;
        let body = puts[1].body.as_ref().expect("body");
        assert_eq!(
            body["charging_profile"]["charging_rate_unit"], "W",
            "{body}"
        );
        assert_eq!(
            text(&body["charging_profile"]["charging_profile_period"][0]["limit"]),
            "7000",
            "{body}"
        );
    }

    // Clear: by the accepted profile's id.
    cs.on("ClearChargingProfile", status("Accepted"));
    assert_eq!(steer.clear(&session).await, json!({"result": "ACCEPTED"}));
    let cleared = calls(&cs, "ClearChargingProfile");
    match version {
        OcppVersion::V16 => assert_eq!(cleared[0], json!({"id": profile_id})),
        _ => assert_eq!(cleared[0], json!({"chargingProfileId": profile_id})),
    }
    // Cleared: the next clear asks for every TxProfile of the connector / EVSE; the station
    // knows none.
    cs.on("ClearChargingProfile", status("Unknown"));
    assert_eq!(steer.clear(&session).await, json!({"result": "UNKNOWN"}));
    let cleared = calls(&cs, "ClearChargingProfile");
    match version {
        OcppVersion::V16 => assert_eq!(
            cleared[1],
            json!({"connectorId": 1, "chargingProfilePurpose": "TxProfile"})
        ),
        _ => assert_eq!(
            cleared[1],
            json!({"chargingProfileCriteria": {"evseId": 1, "chargingProfilePurpose": "TxProfile"}})
        ),
    }

    // A station that does not answer within the call timeout: REJECTED.
    cs.on("SetChargingProfile", Reply::Ignore);
    let started = std::time::Instant::now();
    let result = steer
        .set(&session, profile(), "ACCEPTED")
        .await
        .expect("result");
    assert_eq!(result, json!({"result": "REJECTED"}));
    assert!(
        started.elapsed() >= Duration::from_secs(CALL_TIMEOUT),
        "reported after the call timeout"
    );
    cs.on(
        "ClearChargingProfile",
        Reply::Error("NotSupported".into(), "no".into()),
    );
    assert_eq!(steer.clear(&session).await, json!({"result": "REJECTED"}));

    // The session ends: its profile is gone, requests for it are UNKNOWN_SESSION.
    cs.on("SetChargingProfile", status("Accepted"));
    assert_eq!(
        steer.set(&session, profile(), "ACCEPTED").await,
        Some(json!({"result": "ACCEPTED"}))
    );
    match version {
        OcppVersion::V16 => {
            let id: i64 = ocpp_tx.parse().expect("1.6 id");
            cs.call_ok("StopTransaction", v16::stop(id, &tag, 5000, "Local"))
                .await;
        }
        _ => {
            cs.call_ok("TransactionEvent", v201::tx_ended("smart-tx-1", 1, 5000.0))
                .await;
        }
    }
    eventually("the transaction completed", PUSH_SOON, || async {
        let done = daemon
            .transactions_of(cs.id())
            .await
            .into_iter()
            .any(|t| t["id"] == session.as_str() && t["status"] == "completed");
        if done { Ok(()) } else { Err(()) }
    })
    .await;
    steer.set(&session, profile(), "UNKNOWN_SESSION").await;
    let r = steer
        .send(
            Method::DELETE,
            &session,
            &format!("?response_url={}", steer.response_url("clear")),
            None,
            &[],
        )
        .await;
    Steering::sync(&r, "UNKNOWN_SESSION");
    if version == OcppVersion::V201 {
        // A limit report after the end reaches nobody.
        let before = hub
            .accepted()
            .iter()
            .filter(|p| p.is("PUT", "chargingprofiles"))
            .count();
        cs.call_ok(
            "NotifyChargingLimit",
            json!({"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1,
                "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]}]}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = hub
            .pushes()
            .iter()
            .filter(|p| p.is("PUT", "chargingprofiles"))
            .count();
        assert_eq!(
            before, after,
            "no ActiveChargingProfile after the session ended"
        );
    }
}

#[tokio::test]
async fn smart_charging_on_16() {
    smart_charging("CS001", OcppVersion::V16).await;
}

#[tokio::test]
async fn smart_charging_on_201() {
    smart_charging("CS201", OcppVersion::V201).await;
}

#[tokio::test]
async fn a_profile_request_in_flight_at_a_crash_gets_rejected_after_restart() {
    let mut config = ocpi_config().free_vend(false);
    config.call_timeout = 30;
    let (hub, mut daemon) = registered_with_hub(config).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "SMARTCRASH", "ALWAYS"))
        .await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    let (session, _) = running_session(&daemon, &cs, "SMARTCRASH").await;
    let steer = Steering::new(&hub);
    cs.on("SetChargingProfile", Reply::Ignore);
    let url = steer.response_url("set");
    let r = steer
        .send(
            Method::PUT,
            &session,
            "",
            Some(json!({"charging_profile": profile(), "response_url": url})),
            &[],
        )
        .await;
    Steering::sync(&r, "ACCEPTED");
    cs.wait_for_call("SetChargingProfile", Duration::from_secs(5))
        .await
        .expect("the station got the call");
    daemon.sigkill();
    drop(cs);
    daemon.restart().await;
    let result = Emsp { hub: &hub }.result(&url, 1).await;
    assert_eq!(result, json!({"result": "REJECTED"}));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = hub
        .pushes()
        .iter()
        .filter(|p| url.ends_with(&p.path))
        .count();
    assert_eq!(n, 1, "exactly one result");
}
