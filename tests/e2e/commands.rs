//! OCPI Commands end to end: the fake hub sends START_SESSION / STOP_SESSION / RESERVE_NOW /
//! CANCEL_RESERVATION / UNLOCK_CONNECTOR to the daemon's commands endpoint (discovered from its
//! version details), our test station answers the OCPP call with every possible status (or a
//! CALLERROR, or nothing), and the hub receives the bare CommandResult at the command's
//! `response_url`.

use std::time::Duration;

use bridge_tests::hub::OcpiResponse;
use bridge_tests::payloads::{v16, v201};
use bridge_tests::{Daemon, Hub, OcppVersion, Reply, Station, TestConfig, eventually, now_rfc3339};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ocpi_support::{
    active_transaction, booted, calls, daemon_with_hub, ocpi_config, status,
};

/// The call timeout the daemon runs with in these tests (seconds).
const CALL_TIMEOUT: u64 = 2;
/// Bound on a CommandResult after ACCEPTED (≥ the advertised `timeout`).
const RESULT_WAIT: Duration = Duration::from_secs(25);

fn config() -> TestConfig {
    let mut c = ocpi_config();
    c.call_timeout = CALL_TIMEOUT;
    c
}

/// The token the commands carry (owner DE/TNM; the hub may act for any party).
pub(crate) fn token(uid: &str) -> Value {
    json!({"country_code": "DE", "party_id": "TNM", "uid": uid, "type": "APP_USER",
        "contract_id": "DE-TNM-C12345678-X", "issuer": "TNM", "valid": true,
        "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"})
}

/// The hub in its eMSP role: sends commands, receives their results.
pub(crate) struct Emsp<'a> {
    pub(crate) hub: &'a Hub,
}

impl Emsp<'_> {
    /// A fresh `response_url` for `kind` (under the hub's commands path, so it is recorded).
    pub(crate) fn response_url(&self, kind: &str) -> String {
        format!(
            "{}/{kind}/{}",
            self.hub.module_url("commands"),
            uuid::Uuid::new_v4().simple()
        )
    }

    /// `POST {commands}/{kind}` with the hub's token.
    pub(crate) async fn send(&self, kind: &str, body: &Value) -> OcpiResponse {
        let url = format!("{}/{kind}", self.hub.bridge_module_url("commands"));
        let token = self.hub.token_for_bridge().expect("hub registered");
        self.hub
            .request(
                Method::POST,
                &url,
                Some(&token),
                Some(body.to_string()),
                &[],
            )
            .await
    }

    /// Sends a command and asserts the synchronous answer; returns the response data.
    pub(crate) async fn command(&self, kind: &str, body: &Value, sync: &str) -> Value {
        let r = self.send(kind, body).await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text);
        assert_eq!(r.ocpi_status(), Some(1000), "{kind}: {}", r.text);
        let data = r.data().clone();
        assert_eq!(data["result"], sync, "{kind} {body}: {}", r.text);
        if sync == "ACCEPTED" {
            let timeout = data["timeout"].as_u64().unwrap_or(0);
            assert!(
                timeout >= CALL_TIMEOUT,
                "timeout {timeout} must cover the OCPP call timeout: {data}"
            );
        }
        data
    }

    /// The `n`-th CommandResult POSTed to `response_url` (waits, bounded).
    pub(crate) async fn result(&self, response_url: &str, n: usize) -> Value {
        let path = response_url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .expect("path of the response_url");
        let got = self
            .hub
            .wait_received(&format!("result at {path}"), n, RESULT_WAIT, |p| {
                p.method == "POST" && p.path == path
            })
            .await;
        let p = &got[n - 1];
        let body = p.body.clone().expect("a JSON body");
        assert!(
            body.get("status_code").is_none() && body.get("data").is_none(),
            "a CommandResult is a bare body, no envelope: {body}"
        );
        assert!(
            p.header("authorization").is_some(),
            "results carry our token"
        );
        body
    }

    /// Sends a command that must be ACCEPTED and returns its asynchronous result value.
    pub(crate) async fn accepted_result(&self, kind: &str, mut body: Value) -> String {
        let url = self.response_url(kind);
        body["response_url"] = json!(url);
        self.command(kind, &body, "ACCEPTED").await;
        let r = self.result(&url, 1).await;
        r["result"].as_str().unwrap_or_default().to_string()
    }
}

/// The EVSE uid the daemon published for `station`'s EVSE `n` (from a Location PUT).
pub(crate) async fn evse_uid(hub: &Hub, station: &str, n: u32) -> String {
    let want = format!("NL*BRG*E{station}*{n}");
    eventually(&format!("EVSE {want} published"), RESULT_WAIT, || async {
        for p in hub.accepted().iter().rev() {
            if p.is_location_put("LOC1")
                && let Some(evses) = p.body.as_ref().and_then(|b| b["evses"].as_array())
                && let Some(e) = evses.iter().find(|e| e["evse_id"] == want.as_str())
            {
                return Ok(e["uid"].as_str().unwrap_or_default().to_string());
            }
        }
        Err(bridge_tests::hub::summarize(&hub.pushes()))
    })
    .await
}

/// A booted station with EVSE 1 Available, and that EVSE's uid.
async fn station_ready(
    hub: &Hub,
    daemon: &Daemon,
    id: &str,
    version: OcppVersion,
) -> (Station, String) {
    let cs = booted(daemon, id, version).await;
    set_status(&cs, 1, "Available").await;
    let uid = evse_uid(hub, id, 1).await;
    (cs, uid)
}

async fn set_status(cs: &Station, evse: u32, status: &str) {
    let payload = match cs.version() {
        OcppVersion::V16 => v16::status(evse, status),
        _ => v201::status(evse, 1, status),
    };
    cs.call_ok("StatusNotification", payload).await;
}

fn error(code: &str) -> Reply {
    Reply::Error(code.into(), "test".into())
}

fn start_body(uid: &str, evse_uid: &str) -> Value {
    json!({"response_url": "", "token": token(uid), "location_id": "LOC1",
        "evse_uid": evse_uid, "connector_id": "1", "authorization_reference": "ref-start-1"})
}

fn reserve_body(reservation_id: &str, evse_uid: Option<&str>) -> Value {
    let expiry = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut b = json!({"response_url": "", "token": token("resv-user"), "expiry_date": expiry,
        "reservation_id": reservation_id, "location_id": "LOC1"});
    if let Some(u) = evse_uid {
        b["evse_uid"] = json!(u);
    }
    b
}

fn unlock_body(evse_uid: &str) -> Value {
    json!({"response_url": "", "location_id": "LOC1", "evse_uid": evse_uid, "connector_id": "1"})
}

fn cancel_body(reservation_id: &str) -> Value {
    json!({"response_url": "", "reservation_id": reservation_id})
}

fn stop_body(session_id: &str) -> Value {
    json!({"response_url": "", "session_id": session_id})
}

/// The OCPP action names per version: (start, stop).
fn actions(version: OcppVersion) -> (&'static str, &'static str) {
    match version {
        OcppVersion::V16 => ("RemoteStartTransaction", "RemoteStopTransaction"),
        _ => ("RequestStartTransaction", "RequestStopTransaction"),
    }
}

/// Starts a transaction at the station (not through a command); returns our session id.
async fn station_transaction(daemon: &Daemon, cs: &Station, tag: &str) -> String {
    match cs.version() {
        OcppVersion::V16 => {
            cs.call_ok("StartTransaction", v16::start(1, tag, 1000, &now_rfc3339()))
                .await;
        }
        _ => {
            cs.call_ok("TransactionEvent", v201::tx_started("st-tx-1", tag, 1000.0))
                .await;
        }
    }
    let t = active_transaction(daemon, cs.id(), RESULT_WAIT).await;
    t["id"].as_str().expect("transaction id").to_string()
}

/// Every command against every answer a station may give, on one OCPP version.
async fn every_answer(station: &str, version: OcppVersion) {
    let (hub, daemon) = daemon_with_hub(config()).await;
    let emsp = Emsp { hub: &hub };
    let (cs, evse) = station_ready(&hub, &daemon, station, version).await;
    let (start, stop) = actions(version);

    // START_SESSION
    let mut start_rows = vec![
        (status("Accepted"), "ACCEPTED"),
        (status("Rejected"), "REJECTED"),
        (error("NotImplemented"), "NOT_SUPPORTED"),
        (error("NotSupported"), "NOT_SUPPORTED"),
        (error("InternalError"), "FAILED"),
        (Reply::Result(json!({"status": "Maybe"})), "FAILED"),
        (Reply::Ignore, "TIMEOUT"),
    ];
    if version == OcppVersion::V201 {
        start_rows.push((
            Reply::Result(json!({"status": "Accepted", "transactionId": "tx-early"})),
            "ACCEPTED",
        ));
    }
    for (reply, want) in start_rows {
        cs.on(start, reply.clone());
        let got = emsp
            .accepted_result("START_SESSION", start_body("app-user-1", &evse))
            .await;
        assert_eq!(got, want, "{start} answered {reply:?}");
    }
    // A rejected start is explained by the EVSE's stored status.
    cs.on(start, status("Rejected"));
    for (evse_status, want) in [
        ("Faulted", "EVSE_INOPERATIVE"),
        ("Unavailable", "EVSE_INOPERATIVE"),
    ] {
        set_status(&cs, 1, evse_status).await;
        let got = emsp
            .accepted_result("START_SESSION", start_body("app-user-1", &evse))
            .await;
        assert_eq!(got, want, "rejected start on a {evse_status} EVSE");
    }
    let busy = if version == OcppVersion::V16 {
        "Charging"
    } else {
        "Occupied"
    };
    set_status(&cs, 1, busy).await;
    let got = emsp
        .accepted_result("START_SESSION", start_body("app-user-1", &evse))
        .await;
    assert_eq!(got, "EVSE_OCCUPIED", "rejected start on a {busy} EVSE");
    set_status(&cs, 1, "Available").await;

    // The OCPP request carried what the version needs.
    let sent = calls(&cs, start);
    assert!(!sent.is_empty());
    match version {
        OcppVersion::V16 => {
            assert_eq!(
                sent[0],
                json!({"connectorId": 1, "idTag": "app-user-1"}),
                "{sent:?}"
            );
        }
        _ => {
            assert_eq!(sent[0]["evseId"], 1, "{}", sent[0]);
            assert_eq!(
                sent[0]["idToken"],
                json!({"idToken": "app-user-1", "type": "Central",
                "additionalInfo": [{"additionalIdToken": "DE-TNM-C12345678-X", "type": "eMAID"}]}),
                "{}",
                sent[0]
            );
            let ids: Vec<i64> = sent
                .iter()
                .map(|p| p["remoteStartId"].as_i64().unwrap())
                .collect();
            assert!(ids.iter().all(|i| *i > 0), "{ids:?}");
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                ids.len(),
                "a fresh remoteStartId per command: {ids:?}"
            );
        }
    }

    // UNLOCK_CONNECTOR
    let mut unlock_rows = vec![
        (status("Unlocked"), "ACCEPTED"),
        (status("UnlockFailed"), "FAILED"),
        (error("NotImplemented"), "NOT_SUPPORTED"),
        (error("GenericError"), "FAILED"),
        (Reply::Ignore, "TIMEOUT"),
    ];
    match version {
        OcppVersion::V16 => unlock_rows.push((status("NotSupported"), "NOT_SUPPORTED")),
        _ => {
            unlock_rows.push((status("OngoingAuthorizedTransaction"), "EVSE_OCCUPIED"));
            unlock_rows.push((status("UnknownConnector"), "REJECTED"));
        }
    }
    for (reply, want) in unlock_rows {
        cs.on("UnlockConnector", reply.clone());
        let got = emsp
            .accepted_result("UNLOCK_CONNECTOR", unlock_body(&evse))
            .await;
        assert_eq!(got, want, "UnlockConnector answered {reply:?}");
    }
    let unlock = calls(&cs, "UnlockConnector");
    match version {
        OcppVersion::V16 => assert_eq!(unlock[0], json!({"connectorId": 1})),
        _ => assert_eq!(unlock[0], json!({"evseId": 1, "connectorId": 1})),
    }

    // RESERVE_NOW
    for (i, (reply, want)) in [
        (status("Accepted"), "ACCEPTED"),
        (status("Occupied"), "EVSE_OCCUPIED"),
        (status("Faulted"), "EVSE_INOPERATIVE"),
        (status("Unavailable"), "EVSE_INOPERATIVE"),
        (status("Rejected"), "REJECTED"),
        (error("NotImplemented"), "NOT_SUPPORTED"),
        (error("InternalError"), "FAILED"),
        (Reply::Ignore, "TIMEOUT"),
    ]
    .into_iter()
    .enumerate()
    {
        cs.on("ReserveNow", reply.clone());
        let body = reserve_body(&format!("answers-{i}"), Some(&evse));
        let got = emsp.accepted_result("RESERVE_NOW", body).await;
        assert_eq!(got, want, "ReserveNow answered {reply:?}");
    }
    let reserve = calls(&cs, "ReserveNow");
    match version {
        OcppVersion::V16 => {
            assert_eq!(reserve[0]["connectorId"], 1, "{}", reserve[0]);
            assert_eq!(reserve[0]["idTag"], "resv-user", "{}", reserve[0]);
            assert!(
                reserve[0]["reservationId"].as_i64().unwrap() > 0,
                "{}",
                reserve[0]
            );
        }
        _ => {
            assert_eq!(reserve[0]["evseId"], 1, "{}", reserve[0]);
            assert_eq!(
                reserve[0]["idToken"]["idToken"], "resv-user",
                "{}",
                reserve[0]
            );
            assert!(reserve[0]["id"].as_i64().unwrap() > 0, "{}", reserve[0]);
        }
    }

    // CANCEL_RESERVATION: answers-0 was accepted and is live.
    cs.on("CancelReservation", status("Rejected"));
    let got = emsp
        .accepted_result("CANCEL_RESERVATION", cancel_body("answers-0"))
        .await;
    assert_eq!(got, "UNKNOWN_RESERVATION");
    // The station did not know it: it is forgotten, a second cancel is refused at once.
    emsp.command(
        "CANCEL_RESERVATION",
        &with_url(&emsp, cancel_body("answers-0")),
        "REJECTED",
    )
    .await;
    for (reply, want) in [
        (error("NotImplemented"), "NOT_SUPPORTED"),
        (error("InternalError"), "FAILED"),
        (Reply::Ignore, "TIMEOUT"),
        (status("Accepted"), "ACCEPTED"),
    ] {
        cs.on("ReserveNow", status("Accepted"));
        let again = emsp
            .accepted_result("RESERVE_NOW", reserve_body("cancel-me", Some(&evse)))
            .await;
        assert_eq!(again, "ACCEPTED");
        cs.on("CancelReservation", reply.clone());
        let got = emsp
            .accepted_result("CANCEL_RESERVATION", cancel_body("cancel-me"))
            .await;
        assert_eq!(got, want, "CancelReservation answered {reply:?}");
    }
    emsp.command(
        "CANCEL_RESERVATION",
        &with_url(&emsp, cancel_body("cancel-me")),
        "REJECTED",
    )
    .await;

    // STOP_SESSION
    let session = station_transaction(&daemon, &cs, "LOCALTAG1").await;
    for (reply, want) in [
        (status("Rejected"), "REJECTED"),
        (error("NotImplemented"), "NOT_SUPPORTED"),
        (error("InternalError"), "FAILED"),
        (Reply::Ignore, "TIMEOUT"),
        (status("Accepted"), "ACCEPTED"),
    ] {
        cs.on(stop, reply.clone());
        let got = emsp
            .accepted_result("STOP_SESSION", stop_body(&session))
            .await;
        assert_eq!(got, want, "{stop} answered {reply:?}");
    }
    let stops = calls(&cs, stop);
    let t = daemon
        .transactions_of(cs.id())
        .await
        .into_iter()
        .find(|t| t["id"] == session.as_str())
        .expect("the transaction");
    match version {
        OcppVersion::V16 => assert_eq!(
            stops[0],
            json!({"transactionId": t["ocpp_transaction_id"].as_str().unwrap().parse::<i64>().unwrap()})
        ),
        _ => assert_eq!(stops[0], json!({"transactionId": t["ocpp_transaction_id"]})),
    }
}

fn with_url(emsp: &Emsp<'_>, mut body: Value) -> Value {
    body["response_url"] = json!(emsp.response_url("X"));
    body
}

#[tokio::test]
async fn ocpp16_station_answers_map_to_command_results() {
    every_answer("CS001", OcppVersion::V16).await;
}

#[tokio::test]
async fn ocpp201_station_answers_map_to_command_results() {
    every_answer("CS201", OcppVersion::V201).await;
}

#[tokio::test]
async fn commands_that_cannot_be_forwarded_are_answered_at_once() {
    let (hub, daemon) = daemon_with_hub(config()).await;
    let emsp = Emsp { hub: &hub };
    let (cs, evse) = station_ready(&hub, &daemon, "CS001", OcppVersion::V16).await;
    // CS201 was seen once, then went away: its EVSE is known, the station offline.
    let (cs201, evse201) = station_ready(&hub, &daemon, "CS201", OcppVersion::V201).await;
    cs201.close().await;
    eventually("CS201 offline", RESULT_WAIT, || async {
        match daemon.station("CS201").await {
            Some(s) if s["online"] == false => Ok(()),
            other => Err(other),
        }
    })
    .await;

    let rejected = [
        ("START_SESSION", start_body("u1", &evse201)),
        ("RESERVE_NOW", reserve_body("r-off", Some(&evse201))),
        ("UNLOCK_CONNECTOR", unlock_body(&evse201)),
        ("START_SESSION", {
            let mut b = start_body("u1", &evse);
            b["location_id"] = json!("NOWHERE");
            b
        }),
        ("START_SESSION", start_body("u1", "NO-SUCH-EVSE")),
        ("START_SESSION", {
            let mut b = start_body("u1", &evse);
            b["connector_id"] = json!("9");
            b
        }),
        ("UNLOCK_CONNECTOR", {
            let mut b = unlock_body(&evse);
            b["connector_id"] = json!("7");
            b
        }),
        ("RESERVE_NOW", {
            let mut b = reserve_body("r-past", Some(&evse));
            b["expiry_date"] = json!("2020-01-01T00:00:00Z");
            b
        }),
        ("CANCEL_RESERVATION", cancel_body("never-made")),
    ];
    for (kind, body) in rejected {
        emsp.command(kind, &with_url(&emsp, body.clone()), "REJECTED")
            .await;
    }
    emsp.command(
        "STOP_SESSION",
        &with_url(&emsp, stop_body("00000000-0000-0000-0000-000000000000")),
        "UNKNOWN_SESSION",
    )
    .await;
    // Invalid bodies are OCPI 2001.
    for (kind, body) in [
        ("START_SESSION", json!({"response_url": "http://x/y"})),
        ("STOP_SESSION", json!({"session_id": "S1"})),
        ("SELF_DESTRUCT", json!({})),
    ] {
        let r = emsp.send(kind, &body).await;
        assert_eq!(r.ocpi_status(), Some(2001), "{kind}: {}", r.text);
    }
    // A response_url that names the bridge's own listeners or a metadata address is 2001
    // (the bridge would POST the result there: SSRF).
    for url in [
        format!("http://{}/admin/outbox/x/1/retry", daemon.admin_addr()),
        format!(
            "http://localhost:{}/admin/peers",
            daemon.admin_addr().port()
        ),
        format!("http://{}/ocpi/versions", daemon.ocpi_addr()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fe80::1]:80/x".to_owned(),
    ] {
        let mut body = start_body("u1", &evse);
        body["response_url"] = json!(url);
        let r = emsp.send("START_SESSION", &body).await;
        assert_eq!(r.ocpi_status(), Some(2001), "{url}: {}", r.text);
        assert!(
            r.text.contains("response_url"),
            "names the field: {}",
            r.text
        );
    }
    let command_calls: Vec<_> = cs
        .received_calls()
        .into_iter()
        .filter(|(a, _)| {
            [
                "RemoteStartTransaction",
                "ReserveNow",
                "UnlockConnector",
                "CancelReservation",
            ]
            .contains(&a.as_str())
        })
        .collect();
    assert!(
        command_calls.is_empty(),
        "nothing reached the station: {command_calls:?}"
    );
}

#[tokio::test]
async fn same_reservation_id_replaces_the_reservation_and_cancel_ends_it() {
    for (station, version) in [("CS001", OcppVersion::V16), ("CS201", OcppVersion::V201)] {
        let (hub, daemon) = daemon_with_hub(config()).await;
        let emsp = Emsp { hub: &hub };
        let (cs, evse) = station_ready(&hub, &daemon, station, version).await;
        cs.on("ReserveNow", status("Accepted"));
        cs.on("CancelReservation", status("Accepted"));
        let id_field = if version == OcppVersion::V16 {
            "reservationId"
        } else {
            "id"
        };

        for rid in ["RES-1", "res-1", "RES-2"] {
            let got = emsp
                .accepted_result("RESERVE_NOW", reserve_body(rid, Some(&evse)))
                .await;
            assert_eq!(got, "ACCEPTED", "{station} {rid}");
        }
        // Without an EVSE: any EVSE (1.6 connector 0, 2.0.1 without evseId).
        let got = emsp
            .accepted_result("RESERVE_NOW", reserve_body("RES-ANY", None))
            .await;
        assert_eq!(got, "ACCEPTED");
        let sent = calls(&cs, "ReserveNow");
        assert_eq!(sent.len(), 4, "{sent:?}");
        assert_eq!(
            sent[0][id_field], sent[1][id_field],
            "same reservation_id → same OCPP id: {sent:?}"
        );
        assert_ne!(sent[0][id_field], sent[2][id_field], "{sent:?}");
        match version {
            OcppVersion::V16 => assert_eq!(sent[3]["connectorId"], 0, "{}", sent[3]),
            _ => assert!(sent[3].get("evseId").is_none(), "{}", sent[3]),
        }

        let got = emsp
            .accepted_result("CANCEL_RESERVATION", cancel_body("Res-1"))
            .await;
        assert_eq!(got, "ACCEPTED");
        let cancel = calls(&cs, "CancelReservation");
        assert_eq!(cancel[0]["reservationId"], sent[0][id_field], "{cancel:?}");
        emsp.command(
            "CANCEL_RESERVATION",
            &with_url(&emsp, cancel_body("RES-1")),
            "REJECTED",
        )
        .await;
        // RES-2 is untouched.
        let got = emsp
            .accepted_result("CANCEL_RESERVATION", cancel_body("RES-2"))
            .await;
        assert_eq!(got, "ACCEPTED");
        // After a cancel the id is free: a new reservation gets a new OCPP id.
        let got = emsp
            .accepted_result("RESERVE_NOW", reserve_body("RES-1", Some(&evse)))
            .await;
        assert_eq!(got, "ACCEPTED");
        let last = calls(&cs, "ReserveNow").pop().unwrap();
        assert_ne!(last[id_field], sent[0][id_field], "{last}");
    }
}

/// RESERVE_NOW accepted by `cs` on `evse`; returns the response_url and the OCPP id sent.
async fn reserved(
    emsp: &Emsp<'_>,
    cs: &Station,
    reservation_id: &str,
    evse: &str,
) -> (String, Value) {
    cs.on("ReserveNow", status("Accepted"));
    let url = emsp.response_url("RESERVE_NOW");
    let mut body = reserve_body(reservation_id, Some(evse));
    body["response_url"] = json!(url);
    emsp.command("RESERVE_NOW", &body, "ACCEPTED").await;
    assert_eq!(emsp.result(&url, 1).await["result"], "ACCEPTED");
    let sent = calls(cs, "ReserveNow").pop().unwrap();
    let id = match cs.version() {
        OcppVersion::V16 => sent["reservationId"].clone(),
        _ => sent["id"].clone(),
    };
    (url, id)
}

/// How many CANCELED_RESERVATION results the hub received.
fn canceled_count(hub: &Hub) -> usize {
    hub.pushes()
        .into_iter()
        .filter(|p| {
            p.body
                .as_ref()
                .is_some_and(|b| b["result"] == "CANCELED_RESERVATION")
        })
        .count()
}

#[tokio::test]
async fn ocpp16_reservation_dropped_by_the_station_is_reported_canceled() {
    let (hub, daemon) = daemon_with_hub(config()).await;
    let emsp = Emsp { hub: &hub };
    let (cs, evse) = station_ready(&hub, &daemon, "CS001", OcppVersion::V16).await;
    let (url, _) = reserved(&emsp, &cs, "drop-16", &evse).await;
    set_status(&cs, 1, "Reserved").await;
    set_status(&cs, 1, "Available").await;
    assert_eq!(emsp.result(&url, 2).await["result"], "CANCELED_RESERVATION");
    emsp.command(
        "CANCEL_RESERVATION",
        &with_url(&emsp, cancel_body("drop-16")),
        "REJECTED",
    )
    .await;
    // Our own cancel is not reported as a CPO cancellation.
    let (url, _) = reserved(&emsp, &cs, "mine-16", &evse).await;
    set_status(&cs, 1, "Reserved").await;
    cs.on("CancelReservation", status("Accepted"));
    let got = emsp
        .accepted_result("CANCEL_RESERVATION", cancel_body("mine-16"))
        .await;
    assert_eq!(got, "ACCEPTED");
    set_status(&cs, 1, "Available").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        canceled_count(&hub),
        1,
        "{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
    assert_eq!(
        hub.pushes()
            .iter()
            .filter(|p| url.ends_with(&p.path))
            .count(),
        1
    );
}

#[tokio::test]
async fn ocpp201_reservation_removed_by_the_station_is_reported_canceled() {
    let (hub, daemon) = daemon_with_hub(config()).await;
    let emsp = Emsp { hub: &hub };
    let (cs, evse) = station_ready(&hub, &daemon, "CS201", OcppVersion::V201).await;
    let (url, rid) = reserved(&emsp, &cs, "drop-201", &evse).await;
    cs.call_ok(
        "ReservationStatusUpdate",
        json!({"reservationId": rid, "reservationUpdateStatus": "Removed"}),
    )
    .await;
    assert_eq!(emsp.result(&url, 2).await["result"], "CANCELED_RESERVATION");
    emsp.command(
        "CANCEL_RESERVATION",
        &with_url(&emsp, cancel_body("drop-201")),
        "REJECTED",
    )
    .await;
}

#[tokio::test]
async fn a_transaction_consuming_a_reservation_ends_it_silently() {
    for (station, version) in [("CS001", OcppVersion::V16), ("CS201", OcppVersion::V201)] {
        let (hub, daemon) = daemon_with_hub(config()).await;
        let emsp = Emsp { hub: &hub };
        let (cs, evse) = station_ready(&hub, &daemon, station, version).await;
        let (_, rid) = reserved(&emsp, &cs, "use-me", &evse).await;
        set_status(&cs, 1, "Reserved").await;
        match version {
            OcppVersion::V16 => {
                let mut start = v16::start(1, "resv-user", 100, &now_rfc3339());
                start["reservationId"] = rid;
                cs.call_ok("StartTransaction", start).await;
                set_status(&cs, 1, "Charging").await;
            }
            _ => {
                let mut ev = v201::tx_started("resv-tx-1", "resv-user", 100.0);
                ev["reservationId"] = rid;
                cs.call_ok("TransactionEvent", ev).await;
                set_status(&cs, 1, "Occupied").await;
            }
        }
        eventually("reservation consumed", RESULT_WAIT, || async {
            let r = emsp
                .send(
                    "CANCEL_RESERVATION",
                    &with_url(&emsp, cancel_body("use-me")),
                )
                .await;
            if r.data()["result"] == "REJECTED" {
                Ok(())
            } else {
                Err(r.text)
            }
        })
        .await;
        assert_eq!(canceled_count(&hub), 0, "{station}");
    }
}

#[tokio::test]
async fn offline_station_is_rejected_and_a_silent_one_times_out() {
    let (hub, daemon) = daemon_with_hub(config()).await;
    let emsp = Emsp { hub: &hub };
    // CS002 is configured but never connected: no EVSE known → choose by location only.
    let body = json!({"response_url": emsp.response_url("START_SESSION"),
        "token": token("u-off"), "location_id": "LOC1"});
    emsp.command("START_SESSION", &body, "REJECTED").await;

    let (cs, evse) = station_ready(&hub, &daemon, "CS001", OcppVersion::V16).await;
    cs.on("RemoteStartTransaction", Reply::Ignore);
    let url = emsp.response_url("START_SESSION");
    let mut body = start_body("u-silent", &evse);
    body["response_url"] = json!(url);
    let sent_at = std::time::Instant::now();
    emsp.command("START_SESSION", &body, "ACCEPTED").await;
    let r = emsp.result(&url, 1).await;
    assert_eq!(r["result"], "TIMEOUT", "{r}");
    let took = sent_at.elapsed();
    assert!(
        took >= Duration::from_secs(CALL_TIMEOUT)
            && took < Duration::from_secs(CALL_TIMEOUT * 2 + 5),
        "TIMEOUT after the call timeout, took {took:?}"
    );
    // Without an EVSE the online station at the location is chosen.
    cs.on("RemoteStartTransaction", status("Accepted"));
    let got = emsp
        .accepted_result(
            "START_SESSION",
            json!({"token": token("u-any"), "location_id": "loc1"}),
        )
        .await;
    assert_eq!(got, "ACCEPTED");
    assert_eq!(
        calls(&cs, "RemoteStartTransaction").pop().unwrap(),
        json!({"idTag": "u-any"})
    );
}

#[tokio::test]
async fn a_command_in_flight_at_a_crash_gets_failed_after_restart() {
    let mut config = ocpi_config();
    config.call_timeout = 30;
    let (hub, mut daemon) = daemon_with_hub(config).await;
    let emsp = Emsp { hub: &hub };
    let (cs, evse) = station_ready(&hub, &daemon, "CS001", OcppVersion::V16).await;
    cs.on("UnlockConnector", Reply::Ignore);
    let url = emsp.response_url("UNLOCK_CONNECTOR");
    let mut body = unlock_body(&evse);
    body["response_url"] = json!(url);
    emsp.command("UNLOCK_CONNECTOR", &body, "ACCEPTED").await;
    cs.wait_for_call("UnlockConnector", Duration::from_secs(5))
        .await
        .expect("the station got the call");
    daemon.sigkill();
    drop(cs);
    daemon.restart().await;
    let r = emsp.result(&url, 1).await;
    assert_eq!(r["result"], "FAILED", "{r}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = hub
        .pushes()
        .iter()
        .filter(|p| url.ends_with(&p.path))
        .count();
    assert_eq!(n, 1, "exactly one result");
}

#[tokio::test]
async fn start_session_leads_to_a_session_and_cdr_with_auth_method_command() {
    for (station, version) in [("CS001", OcppVersion::V16), ("CS201", OcppVersion::V201)] {
        let (hub, daemon) = daemon_with_hub(config()).await;
        let emsp = Emsp { hub: &hub };
        let (cs, evse) = station_ready(&hub, &daemon, station, version).await;
        let (start, stop) = actions(version);
        cs.on(start, status("Accepted"));
        cs.on(stop, status("Accepted"));
        // A uid longer than 20 characters: 1.6 gets an alias.
        let uid = "NL-TNM-APP-USER-0123456789";
        let got = emsp
            .accepted_result("START_SESSION", start_body(uid, &evse))
            .await;
        assert_eq!(got, "ACCEPTED");
        let req = calls(&cs, start).pop().unwrap();
        let tag = req["idTag"].as_str().unwrap_or_default().to_string();
        let ocpp_tx = match version {
            OcppVersion::V16 => {
                assert!(tag.len() <= 20 && tag != uid, "{req}");
                // AuthorizeRemoteTxRequests: the station asks first.
                let auth = cs.call_ok("Authorize", v16::authorize(&tag)).await;
                assert_eq!(auth["idTagInfo"]["status"], "Accepted", "{auth}");
                let r = cs
                    .call_ok(
                        "StartTransaction",
                        v16::start(1, &tag, 1000, &now_rfc3339()),
                    )
                    .await;
                assert_eq!(r["idTagInfo"]["status"], "Accepted", "{r}");
                r["transactionId"].as_i64().unwrap().to_string()
            }
            _ => {
                let mut ev = v201::tx_started("cmd-tx-1", uid, 1000.0);
                ev["idToken"] = json!({"idToken": uid, "type": "Central"});
                ev["triggerReason"] = json!("RemoteStart");
                ev["transactionInfo"]["remoteStartId"] = req["remoteStartId"].clone();
                let r = cs.call_ok("TransactionEvent", ev).await;
                assert_eq!(r["idTokenInfo"]["status"], "Accepted", "{r}");
                "cmd-tx-1".to_string()
            }
        };
        set_status(
            &cs,
            1,
            if version == OcppVersion::V16 {
                "Charging"
            } else {
                "Occupied"
            },
        )
        .await;
        let session = hub
            .wait_accepted("Session PUT", 1, RESULT_WAIT, |p| p.is("PUT", "sessions"))
            .await
            .pop()
            .unwrap()
            .body
            .unwrap();
        assert_eq!(session["auth_method"], "COMMAND", "{station}: {session:#}");
        assert_eq!(
            session["authorization_reference"], "ref-start-1",
            "{session:#}"
        );
        assert_eq!(session["cdr_token"]["uid"], uid, "{session:#}");
        let session_id = session["id"].as_str().unwrap().to_string();

        // STOP_SESSION of that session, then the station stops.
        let got = emsp
            .accepted_result("STOP_SESSION", stop_body(&session_id))
            .await;
        assert_eq!(got, "ACCEPTED");
        let stop_req = calls(&cs, stop).pop().unwrap();
        match version {
            OcppVersion::V16 => {
                assert_eq!(
                    stop_req,
                    json!({"transactionId": ocpp_tx.parse::<i64>().unwrap()})
                );
                cs.call_ok(
                    "StopTransaction",
                    v16::stop(ocpp_tx.parse().unwrap(), &tag, 5000, "Remote"),
                )
                .await;
            }
            _ => {
                assert_eq!(stop_req, json!({"transactionId": ocpp_tx}));
                cs.call_ok("TransactionEvent", v201::tx_ended(&ocpp_tx, 1, 5000.0))
                    .await;
            }
        }
        let cdr = hub
            .wait_accepted("CDR POST", 1, RESULT_WAIT, |p| p.is("POST", "cdrs"))
            .await
            .pop()
            .unwrap()
            .body
            .unwrap();
        assert_eq!(cdr["auth_method"], "COMMAND", "{station}: {cdr:#}");
        assert_eq!(cdr["authorization_reference"], "ref-start-1", "{cdr:#}");
        assert_eq!(cdr["session_id"], session_id.as_str(), "{cdr:#}");
        // The session is over: a second stop is UNKNOWN_SESSION.
        emsp.command(
            "STOP_SESSION",
            &with_url(&emsp, stop_body(&session_id)),
            "UNKNOWN_SESSION",
        )
        .await;
    }
}

/// The Session pushes (PUT or PATCH) for one session id with this status.
async fn session_push(hub: &Hub, method: &str, session_id: Option<&str>, status: &str) -> Value {
    let got = hub
        .wait_received(&format!("{method} session {status}"), 1, RESULT_WAIT, |p| {
            p.method == method
                && p.module == "sessions"
                && session_id.is_none_or(|id| p.path.ends_with(id))
                && p.body.as_ref().is_some_and(|b| b["status"] == status)
        })
        .await;
    got[0].body.clone().expect("a session body")
}

#[tokio::test]
async fn a_reservation_is_a_session_that_its_transaction_continues_stops_and_gets_one_cdr() {
    for (station, version) in [("CS001", OcppVersion::V16), ("CS201", OcppVersion::V201)] {
        let (hub, daemon) = daemon_with_hub(config()).await;
        let emsp = Emsp { hub: &hub };
        let (cs, evse) = station_ready(&hub, &daemon, station, version).await;
        let (_, rid) = reserved(&emsp, &cs, "sess-resv", &evse).await;
        let reservation = session_push(&hub, "PUT", None, "RESERVATION").await;
        let id = reservation["id"].as_str().expect("session id").to_owned();
        assert_eq!(
            reservation["auth_method"], "COMMAND",
            "{station}: {reservation}"
        );
        assert_eq!(reservation["evse_uid"], evse.as_str());
        assert_eq!(reservation["cdr_token"]["uid"], "resv-user");
        assert_eq!(reservation["kwh"], 0);
        let ocpp_tx = match version {
            OcppVersion::V16 => {
                let mut start = v16::start(1, "resv-user", 100, &now_rfc3339());
                start["reservationId"] = rid;
                let r = cs.call_ok("StartTransaction", start).await;
                r["transactionId"]
                    .as_i64()
                    .expect("transactionId")
                    .to_string()
            }
            _ => {
                let mut ev = v201::tx_started("resv-tx-2", "resv-user", 100.0);
                ev["reservationId"] = rid;
                cs.call_ok("TransactionEvent", ev).await;
                "resv-tx-2".to_owned()
            }
        };
        // The same Session object moves on to ACTIVE (spec: mod_sessions, Reservation).
        let active = session_push(&hub, "PUT", Some(&id), "ACTIVE").await;
        assert_eq!(active["id"], id.as_str(), "{station}");
        assert_eq!(active["evse_uid"], evse.as_str());

        // STOP_SESSION with the reservation session's id reaches the station's transaction.
        let (_, stop) = actions(version);
        cs.on(stop, status("Accepted"));
        let got = emsp.accepted_result("STOP_SESSION", stop_body(&id)).await;
        assert_eq!(got, "ACCEPTED", "{station}");
        let stop_req = calls(&cs, stop).pop().expect("a stop request");
        match version {
            OcppVersion::V16 => {
                let n: i64 = ocpp_tx.parse().unwrap();
                assert_eq!(stop_req, json!({"transactionId": n}));
                cs.call_ok("StopTransaction", v16::stop(n, "resv-user", 2100, "Remote"))
                    .await;
            }
            _ => {
                assert_eq!(stop_req, json!({"transactionId": ocpp_tx}));
                cs.call_ok("TransactionEvent", v201::tx_ended(&ocpp_tx, 1, 2100.0))
                    .await;
            }
        }
        let done = session_push(&hub, "PATCH", Some(&id), "COMPLETED").await;
        assert_eq!(done["status"], "COMPLETED", "{station}: {done}");
        let cdr = hub
            .wait_accepted("CDR POST", 1, RESULT_WAIT, |p| p.is("POST", "cdrs"))
            .await
            .pop()
            .unwrap()
            .body
            .unwrap();
        assert_eq!(cdr["session_id"], id.as_str(), "{station}: {cdr:#}");
        assert_eq!(cdr["id"], id.as_str(), "{station}: {cdr:#}");
        assert!(cdr["total_cost"]["excl_vat"].is_number(), "{cdr:#}");
        assert_eq!(
            cdr["total_energy"].as_f64(),
            Some(2.0),
            "{station}: {cdr:#}"
        );
        // Exactly one CDR, also after a moment (no second one from the transaction's own id).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cdrs = daemon.admin_get("/admin/cdrs").await;
        assert_eq!(
            cdrs.as_array().map(Vec::len),
            Some(1),
            "{station}: {cdrs:#}"
        );
        let posts = hub.pushes().iter().filter(|p| p.is("POST", "cdrs")).count();
        assert_eq!(posts, 1, "{station}");
        // The session is over: a second stop is UNKNOWN_SESSION.
        emsp.command(
            "STOP_SESSION",
            &with_url(&emsp, stop_body(&id)),
            "UNKNOWN_SESSION",
        )
        .await;
    }
}

#[tokio::test]
async fn a_reservation_cancelled_without_charging_completes_its_session() {
    let (hub, daemon) = daemon_with_hub(config()).await;
    let emsp = Emsp { hub: &hub };
    let (cs, evse) = station_ready(&hub, &daemon, "CS001", OcppVersion::V16).await;
    reserved(&emsp, &cs, "sess-cancel", &evse).await;
    let reservation = session_push(&hub, "PUT", None, "RESERVATION").await;
    let id = reservation["id"].as_str().expect("session id").to_owned();
    cs.on("CancelReservation", status("Accepted"));
    let got = emsp
        .accepted_result("CANCEL_RESERVATION", cancel_body("sess-cancel"))
        .await;
    assert_eq!(got, "ACCEPTED");
    let done = session_push(&hub, "PATCH", Some(&id), "COMPLETED").await;
    assert!(done.get("end_date_time").is_some(), "{done}");
    let cdrs = daemon.admin_get("/admin/cdrs").await;
    assert_eq!(
        cdrs,
        json!([]),
        "no CDR for a reservation without charging or reservation costs"
    );
}
