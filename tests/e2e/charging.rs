//! The charging flow (issue 4) against the fake hub as eMSP: the Tokens receiver and token pulls,
//! authorization per whitelist (local, real-time with each eMSP verdict, timeouts), Sessions
//! (PUT / throttled PATCH / COMPLETED) and exactly one priced CDR per transaction, including
//! offline replays (station timestamps, 2.0.1 seqNo gaps) and SIGKILL at the worst moments.
//!
//! Time-based tariffs use station timestamps in the past (start 3 h ago, stop later), so no test
//! sleeps for the durations it bills. Costs are checked against hand computation (the arithmetic
//! is in the comments); `bridge/src/pricing.rs` unit tests compare the same shapes with the
//! `ocpi-tariffs` engine.

use std::time::{Duration, Instant};

use bridge_tests::hub::{AuthReply, Push};
use bridge_tests::payloads::{ocpi, v16, v201};
use bridge_tests::{Daemon, Hub, HubMode, OcppVersion, Station, TestConfig, eventually};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::ocpi_support::{PUSH_SOON, REGISTER_SOON, booted, ocpi_config, registered_peer};

/// The eMSP party owning the test tokens (the hub is a HUB, so it may speak for it).
const CC: &str = "DE";
const PID: &str = "EMS";
/// How long to keep watching for a duplicate push after the expected one arrived.
const QUIET: Duration = Duration::from_millis(2500);

/// `ocpi_config()` with free vend OFF, session updates at most every second and a short
/// real-time authorization timeout.
fn config() -> TestConfig {
    ocpi_config()
        .free_vend(false)
        .session_update_interval(1)
        .authorize_timeout_ms(700)
}

/// A hub prepared by `prep` (tokens, scripts) before a daemon with `config` registers with it.
async fn start_with(config: TestConfig, prep: impl FnOnce(&Hub)) -> (Hub, Daemon) {
    let hub = Hub::start().await;
    prep(&hub);
    let daemon = Daemon::start(&config.ocpi_peer(&hub.versions_url(), &hub.token_a())).await;
    hub.wait_registered(REGISTER_SOON).await;
    // The daemon's side of the registration is complete too (it has read the hub's answer).
    registered_peer(&daemon, &hub.peer_id()).await;
    // The hub learns the daemon's endpoints during the registration callback.
    eventually("daemon endpoints known to the hub", PUSH_SOON, || async {
        if hub
            .bridge_endpoints()
            .iter()
            .any(|(id, _, _)| id == "tokens")
        {
            Ok(())
        } else {
            Err(hub.bridge_endpoints())
        }
    })
    .await;
    (hub, daemon)
}

async fn start(config: TestConfig) -> (Hub, Daemon) {
    start_with(config, |_| {}).await
}

/// Whole seconds, so that hour totals are exact.
fn base_time() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("valid timestamp")
}

/// `base + minutes`, RFC 3339 with `Z`.
fn at(base: DateTime<Utc>, minutes: i64) -> String {
    (base + chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// `v` is a JSON number equal to `expected` (to 1e-6).
#[track_caller]
fn assert_num(v: &Value, expected: f64, what: &str) {
    let got = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(
        (got - expected).abs() < 1e-6,
        "{what}: expected {expected}, got {got}"
    );
}

/// The single transaction of `station` (waits until it is listed); returns our id (= session id).
async fn tx_id(daemon: &Daemon, station: &str) -> String {
    eventually(
        &format!("one transaction of {station}"),
        PUSH_SOON,
        || async {
            let txs = daemon.transactions_of(station).await;
            match txs.as_slice() {
                [t] => Ok(t["id"].as_str().expect("transaction id").to_string()),
                _ => Err(txs),
            }
        },
    )
    .await
}

/// All transactions of `station`, newest last by start.
async fn tx_ids(daemon: &Daemon, station: &str) -> Vec<String> {
    daemon
        .transactions_of(station)
        .await
        .iter()
        .map(|t| t["id"].as_str().expect("transaction id").to_string())
        .collect()
}

/// The accepted Session PUT of session `id`.
async fn session_put(hub: &Hub, id: &str) -> Push {
    hub.wait_accepted(&format!("PUT session {id}"), 1, PUSH_SOON, |p| {
        p.is("PUT", "sessions") && p.segments.last().map(String::as_str) == Some(id)
    })
    .await
    .remove(0)
}

/// Waits for the CDR of `id`, then keeps watching for [`QUIET`]: exactly one accepted CDR POST
/// carries that id.
async fn one_cdr(hub: &Hub, id: &str) -> Value {
    let cdr = hub.wait_cdr(id, PUSH_SOON).await;
    tokio::time::sleep(QUIET).await;
    let all: Vec<Push> = hub
        .accepted()
        .into_iter()
        .filter(|p| p.is("POST", "cdrs") && p.body.as_ref().is_some_and(|b| b["id"] == id))
        .collect();
    assert_eq!(
        all.len(),
        1,
        "exactly one CDR for transaction {id}:\n{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
    cdr.body.expect("CDR body")
}

/// Every accepted CDR id, in order.
fn cdr_ids(hub: &Hub) -> Vec<String> {
    hub.accepted()
        .iter()
        .filter(|p| p.is("POST", "cdrs"))
        .filter_map(|p| p.body.as_ref()?["id"].as_str().map(str::to_string))
        .collect()
}

#[track_caller]
fn assert_routed_to_owner(p: &Push) {
    assert_eq!(
        p.header("ocpi-to-country-code"),
        Some(CC),
        "{:?}",
        p.headers
    );
    assert_eq!(p.header("ocpi-to-party-id"), Some(PID), "{:?}", p.headers);
    assert_eq!(
        p.header("ocpi-from-country-code"),
        Some("NL"),
        "{:?}",
        p.headers
    );
    assert_eq!(
        p.header("ocpi-from-party-id"),
        Some("BRG"),
        "{:?}",
        p.headers
    );
}

#[track_caller]
fn assert_cdr_token(v: &Value, uid: &str) {
    assert_eq!(
        v,
        &json!({
            "country_code": CC, "party_id": PID, "uid": uid, "type": "RFID",
            "contract_id": format!("{CC}-{PID}-C{uid}"),
        }),
        "cdr_token must be the OCPI token"
    );
}

async fn status16(cs: &Station, connector: u32) {
    cs.call_ok("StatusNotification", v16::status(connector, "Available"))
        .await;
}

async fn authorize16(cs: &Station, tag: &str) -> String {
    let r = cs.call_ok("Authorize", v16::authorize(tag)).await;
    r["idTagInfo"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("Authorize {tag}: {r}"))
        .to_string()
}

async fn authorize201(cs: &Station, id: &str) -> String {
    let r = cs.call_ok("Authorize", v201::authorize(id)).await;
    r["idTokenInfo"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("Authorize {id}: {r}"))
        .to_string()
}

/// StartTransaction → (transactionId, idTagInfo.status).
async fn start16(cs: &Station, tag: &str, meter: i64, ts: &str) -> (i64, String) {
    let r = cs
        .call_ok("StartTransaction", v16::start(1, tag, meter, ts))
        .await;
    (
        r["transactionId"].as_i64().expect("transactionId"),
        r["idTagInfo"]["status"].as_str().unwrap_or("").to_string(),
    )
}

// ----- tokens -----

#[tokio::test]
async fn pushed_always_token_charges_on_16_with_session_updates_and_one_priced_cdr() {
    let (hub, daemon) = start(config()).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "CARD16A", "ALWAYS"))
        .await;
    let got = hub
        .send_to_bridge(
            reqwest::Method::GET,
            &hub.bridge_token_url(CC, PID, "CARD16A", Some("RFID")),
            None,
        )
        .await;
    assert_eq!(got.ocpi_status(), Some(1000), "{}", got.text);
    assert_eq!(got.data()["whitelist"], "ALWAYS", "{}", got.text);
    assert_eq!(daemon.admin_get("/admin/tokens").await["count"], 1);

    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    status16(&cs, 1).await;
    // Matching is case-insensitive; ALWAYS is decided locally.
    assert_eq!(authorize16(&cs, "card16a").await, "Accepted");
    let (ocpp_tx, status) = start16(&cs, "CARD16A", 1000, &bridge_tests::now_rfc3339()).await;
    assert_eq!(status, "Accepted");
    let id = tx_id(&daemon, "CS001").await;

    let put = session_put(&hub, &id).await;
    assert_eq!(put.segments, ["NL", "BRG", id.as_str()], "{}", put.path);
    assert_routed_to_owner(&put);
    let s = put.body.as_ref().expect("Session body");
    assert_eq!(s["id"], id.as_str(), "{s:#}");
    assert_eq!(s["status"], "ACTIVE", "{s:#}");
    assert_eq!(s["auth_method"], "WHITELIST", "{s:#}");
    assert_eq!(s["location_id"], "LOC1", "{s:#}");
    assert_eq!(s["evse_uid"], "CS001-1", "{s:#}");
    assert_eq!(s["currency"], "EUR", "{s:#}");
    assert_cdr_token(&s["cdr_token"], "CARD16A");

    // Two meter values in a row: one PATCH (throttle 1 s) with kWh (6000 − 1000) / 1000 = 5
    // (or 5.5 from the second one).
    cs.call_ok("MeterValues", v16::meter_values(1, ocpp_tx, 6000))
        .await;
    cs.call_ok("MeterValues", v16::meter_values(1, ocpp_tx, 6500))
        .await;
    let patch = hub
        .wait_accepted("PATCH session with kwh", 1, PUSH_SOON, |p| {
            p.is("PATCH", "sessions") && p.segments.last().map(String::as_str) == Some(id.as_str())
        })
        .await
        .remove(0);
    assert_routed_to_owner(&patch);
    let pb = patch.body.as_ref().expect("PATCH body");
    // Session pushes are rendered when sent: the PATCH may already include the second value.
    let kwh = pb["kwh"].as_f64().unwrap_or(-1.0);
    assert!(
        (kwh - 5.0).abs() < 1e-6 || (kwh - 5.5).abs() < 1e-6,
        "kwh of the first PATCH: {pb:#}"
    );
    assert!(pb["last_updated"].is_string(), "{pb:#}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let early = hub
        .session_pushes(&id)
        .iter()
        .filter(|p| p.is("PATCH", "sessions"))
        .count();
    assert_eq!(
        early,
        1,
        "at most one Session update per second:\n{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    cs.call_ok("MeterValues", v16::meter_values(1, ocpp_tx, 7000))
        .await;
    hub.wait_accepted("second PATCH with kwh 6", 1, PUSH_SOON, |p| {
        p.is("PATCH", "sessions")
            && p.body
                .as_ref()
                .is_some_and(|b| b["kwh"].as_f64() == Some(6.0))
    })
    .await;

    cs.call_ok(
        "StopTransaction",
        v16::stop(ocpp_tx, "CARD16A", 9000, "Local"),
    )
    .await;
    let done = hub
        .wait_accepted("PATCH session COMPLETED", 1, PUSH_SOON, |p| {
            p.is("PATCH", "sessions") && p.status() == Some("COMPLETED")
        })
        .await
        .remove(0);
    assert!(
        done.body.as_ref().unwrap()["end_date_time"].is_string(),
        "{:?}",
        done.body
    );

    let cdr = one_cdr(&hub, &id).await;
    let post = hub.wait_cdr(&id, PUSH_SOON).await;
    assert_routed_to_owner(&post);
    assert_eq!(cdr["country_code"], "NL", "{cdr:#}");
    assert_eq!(cdr["party_id"], "BRG", "{cdr:#}");
    assert_eq!(cdr["session_id"], id.as_str(), "{cdr:#}");
    assert_eq!(cdr["auth_method"], "WHITELIST", "{cdr:#}");
    assert!(cdr.get("authorization_reference").is_none(), "{cdr:#}");
    assert_cdr_token(&cdr["cdr_token"], "CARD16A");
    assert_eq!(cdr["cdr_location"]["id"], "LOC1", "{cdr:#}");
    assert_eq!(cdr["cdr_location"]["evse_uid"], "CS001-1", "{cdr:#}");
    assert_eq!(cdr["currency"], "EUR", "{cdr:#}");
    assert!(
        cdr["charging_periods"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{cdr:#}"
    );
    // (9000 − 1000) Wh = 8 kWh at T1 (0.35 EUR/kWh excl., 21 % VAT):
    // excl 8 × 0.35 = 2.80; incl 2.80 × 1.21 = 3.388.
    assert_num(&cdr["total_energy"], 8.0, "total_energy");
    assert_num(&cdr["total_cost"]["excl_vat"], 2.80, "total_cost.excl_vat");
    assert_num(&cdr["total_cost"]["incl_vat"], 3.388, "total_cost.incl_vat");
    assert!(
        hub.authorize_requests().is_empty(),
        "ALWAYS never asks the eMSP"
    );

    // The Location the hub returned is stored.
    let (_, location) = hub
        .cdr_locations()
        .into_iter()
        .find(|(cid, _)| cid == &id)
        .expect("hub answered a Location");
    let stored = eventually("delivered_location in /admin/cdrs", PUSH_SOON, || async {
        let cdrs = daemon.admin_get("/admin/cdrs").await;
        let c = cdrs
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()).cloned());
        match c {
            Some(c) if c["delivered_location"].is_string() => Ok(c),
            _ => Err(cdrs),
        }
    })
    .await;
    assert_eq!(stored["delivered_location"], location.as_str());
    let sessions = daemon.admin_get("/admin/sessions").await;
    let ours = sessions
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id.as_str()))
        .unwrap_or_else(|| panic!("{sessions:#}"));
    assert_eq!(ours["status"], "COMPLETED", "{ours:#}");

    // The hub sees the same through our Sessions and CDRs sender lists.
    let list = hub.get_as_peer(&hub.bridge_module_url("sessions")).await;
    assert_eq!(list.ocpi_status(), Some(1000), "{}", list.text);
    assert!(
        list.data().as_array().is_some_and(|a| a
            .iter()
            .any(|s| s["id"] == id.as_str() && s["status"] == "COMPLETED")),
        "{}",
        list.text
    );
    let list = hub.get_as_peer(&hub.bridge_module_url("cdrs")).await;
    assert_eq!(list.ocpi_status(), Some(1000), "{}", list.text);
    let listed = list
        .data()
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()).cloned())
        .unwrap_or_else(|| panic!("CDR {id} not in GET cdrs: {}", list.text));
    assert_eq!(listed["total_cost"], cdr["total_cost"], "{listed:#}");
}

#[tokio::test]
async fn token_receiver_refuses_bad_tokens_with_2001_and_stores_nothing() {
    let (hub, daemon) = start(config()).await;
    let good = ocpi::token(CC, PID, "BADTEST1", "ALLOWED");

    let mut no_whitelist = good.clone();
    no_whitelist.as_object_mut().unwrap().remove("whitelist");
    let mut bad_whitelist = good.clone();
    bad_whitelist["whitelist"] = json!("SOMETIMES");
    for (what, body) in [
        ("no whitelist", no_whitelist),
        ("unknown whitelist", bad_whitelist),
    ] {
        let r = hub.put_token(&body).await;
        assert_eq!(
            r.ocpi_status(),
            Some(2001),
            "{what}: {} {}",
            r.status,
            r.text
        );
    }
    // URL uid differs from the body's.
    let url = hub.bridge_token_url(CC, PID, "OTHERUID", Some("RFID"));
    let r = hub
        .send_to_bridge(reqwest::Method::PUT, &url, Some(good.to_string()))
        .await;
    assert_eq!(
        r.ocpi_status(),
        Some(2001),
        "uid mismatch: {} {}",
        r.text,
        r.status
    );
    assert_eq!(daemon.admin_get("/admin/tokens").await["count"], 0);
    let url = hub.bridge_token_url(CC, PID, "BADTEST1", Some("RFID"));
    let r = hub.send_to_bridge(reqwest::Method::GET, &url, None).await;
    assert_eq!(r.ocpi_status(), Some(2004), "{} {}", r.status, r.text);

    hub.put_token_ok(&good).await;
    assert_eq!(daemon.admin_get("/admin/tokens").await["count"], 1);
    // PATCH without last_updated → 2001, nothing changes.
    let r = hub
        .send_to_bridge(
            reqwest::Method::PATCH,
            &url,
            Some(json!({"whitelist": "NEVER"}).to_string()),
        )
        .await;
    assert_eq!(r.ocpi_status(), Some(2001), "{} {}", r.status, r.text);
    let r = hub.send_to_bridge(reqwest::Method::GET, &url, None).await;
    assert_eq!(r.data()["whitelist"], "ALLOWED", "{}", r.text);
    let r = hub
        .send_to_bridge(
            reqwest::Method::PATCH,
            &url,
            Some(
                json!({"whitelist": "ALWAYS", "last_updated": "2026-02-01T00:00:00Z"}).to_string(),
            ),
        )
        .await;
    assert_eq!(r.ocpi_status(), Some(1000), "{} {}", r.status, r.text);
    let r = hub.send_to_bridge(reqwest::Method::GET, &url, None).await;
    assert_eq!(r.data()["whitelist"], "ALWAYS", "{}", r.text);
    assert_eq!(daemon.admin_get("/admin/tokens").await["count"], 1);

    // The patched ALWAYS token is now accepted locally.
    let cs = booted(&daemon, "CS002", OcppVersion::V16).await;
    assert_eq!(authorize16(&cs, "BADTEST1").await, "Accepted");
    assert!(
        hub.authorize_requests().is_empty(),
        "{:?}",
        hub.authorize_requests()
    );
}

#[tokio::test]
async fn tokens_are_pulled_from_the_hub_sender_paginated_and_periodically() {
    let tokens: Vec<Value> = (1..=5)
        .map(|i| {
            ocpi::token(
                CC,
                PID,
                &format!("PULL{i}"),
                if i == 5 { "ALLOWED" } else { "ALWAYS" },
            )
        })
        .collect();
    let (hub, daemon) = start_with(config().token_pull_interval(1), |hub| {
        hub.set_tokens(tokens.clone());
        hub.set_tokens_page_size(2);
    })
    .await;
    eventually("5 pulled tokens", PUSH_SOON, || async {
        let n = daemon.admin_get("/admin/tokens").await;
        if n["count"] == 5 { Ok(()) } else { Err(n) }
    })
    .await;
    // 5 tokens in pages of 2: at least 3 GETs, following our Link.
    let pulls = hub.token_pulls();
    assert!(pulls.len() >= 3, "{}", bridge_tests::hub::summarize(&pulls));
    assert!(
        pulls
            .iter()
            .any(|p| p.query.as_deref().is_some_and(|q| q.contains("offset=4"))),
        "{}",
        bridge_tests::hub::summarize(&pulls)
    );

    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    assert_eq!(authorize16(&cs, "pull3").await, "Accepted");
    assert!(
        hub.authorize_requests().is_empty(),
        "pulled ALWAYS is local"
    );
    // A pulled ALLOWED token is authorized in real time (the hub answers ALLOWED by default).
    assert_eq!(authorize16(&cs, "PULL5").await, "Accepted");
    assert_eq!(hub.authorize_requests_for("PULL5").len(), 1);

    // A token the hub adds later arrives with a later pull.
    let mut more = tokens.clone();
    // (Changed now: incremental pulls ask only for what changed since the last one.)
    let mut pull6 = ocpi::token(CC, PID, "PULL6", "ALWAYS");
    pull6["last_updated"] = json!(bridge_tests::now_rfc3339());
    more.push(pull6);
    hub.set_tokens(more);
    eventually("6 tokens after a periodic pull", PUSH_SOON, || async {
        let n = daemon.admin_get("/admin/tokens").await;
        if n["count"] == 6 { Ok(()) } else { Err(n) }
    })
    .await;
    assert_eq!(authorize16(&cs, "PULL6").await, "Accepted");
}

// ----- real-time authorization -----

#[tokio::test]
async fn realtime_allowed_on_201_carries_the_reference_to_session_and_cdr() {
    let (hub, daemon) = start(config()).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "APP201", "ALLOWED"))
        .await;
    hub.script_authorize("APP201", AuthReply::allowed("ALLOWED").reference("REF-201"));

    let cs = booted(&daemon, "CS201", OcppVersion::V201).await;
    cs.call_ok("StatusNotification", v201::status(1, 1, "Available"))
        .await;
    assert_eq!(authorize201(&cs, "APP201").await, "Accepted");
    let reqs = hub.authorize_requests_for("APP201");
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].query.as_deref(), Some("type=RFID"), "{reqs:#?}");
    assert_eq!(
        reqs[0].body.as_ref().map(|b| b["location_id"].clone()),
        Some(json!("LOC1")),
        "LocationReferences: {reqs:#?}"
    );
    assert_eq!(reqs[0].header("ocpi-to-party-id"), Some(PID), "{reqs:#?}");

    let r = cs
        .call_ok(
            "TransactionEvent",
            v201::tx_started("TX-RT-201", "APP201", 100.0),
        )
        .await;
    assert_eq!(r["idTokenInfo"]["status"], "Accepted", "{r}");
    let id = tx_id(&daemon, "CS201").await;
    let put = session_put(&hub, &id).await;
    let s = put.body.as_ref().unwrap();
    assert_eq!(s["auth_method"], "AUTH_REQUEST", "{s:#}");
    assert_eq!(s["authorization_reference"], "REF-201", "{s:#}");
    assert_eq!(s["evse_uid"], "CS201-1", "{s:#}");
    assert_routed_to_owner(&put);

    cs.call_ok("TransactionEvent", v201::tx_updated("TX-RT-201", 1, 2100.0))
        .await;
    cs.call_ok("TransactionEvent", v201::tx_ended("TX-RT-201", 2, 4100.0))
        .await;
    let cdr = one_cdr(&hub, &id).await;
    assert_eq!(cdr["auth_method"], "AUTH_REQUEST", "{cdr:#}");
    assert_eq!(cdr["authorization_reference"], "REF-201", "{cdr:#}");
    assert_cdr_token(&cdr["cdr_token"], "APP201");
    // (4100 − 100) Wh = 4 kWh × 0.35 = 1.40 excl; × 1.21 = 1.694 incl.
    assert_num(&cdr["total_energy"], 4.0, "total_energy");
    assert_num(&cdr["total_cost"]["excl_vat"], 1.40, "excl_vat");
    assert_num(&cdr["total_cost"]["incl_vat"], 1.694, "incl_vat");
}

#[tokio::test]
async fn realtime_verdicts_map_to_ocpp_statuses_on_16_and_201() {
    let (hub, daemon) = start(config()).await;
    let cases = [
        // uid, stored?, reply, 1.6 status, 2.0.1 status
        (
            "RTBLOCK",
            true,
            AuthReply::allowed("BLOCKED"),
            "Blocked",
            "Blocked",
        ),
        (
            "RTEXPIRED",
            true,
            AuthReply::allowed("EXPIRED"),
            "Expired",
            "Expired",
        ),
        (
            "RTNOCREDIT",
            true,
            AuthReply::allowed("NO_CREDIT"),
            "Invalid",
            "NoCredit",
        ),
        (
            "RTNOTHERE",
            true,
            AuthReply::allowed("NOT_ALLOWED"),
            "Invalid",
            "NotAtThisLocation",
        ),
        (
            "RTUNK404",
            false,
            AuthReply::not_found(),
            "Invalid",
            "Unknown",
        ),
        (
            "RTUNK2004",
            false,
            AuthReply::unknown_2004(),
            "Invalid",
            "Unknown",
        ),
    ];
    for (uid, stored, reply, _, _) in &cases {
        if *stored {
            hub.put_token_ok(&ocpi::token(CC, PID, uid, "ALLOWED"))
                .await;
        }
        hub.script_authorize(uid, reply.clone());
    }
    let cs16 = booted(&daemon, "CS001", OcppVersion::V16).await;
    let cs201 = booted(&daemon, "CS201", OcppVersion::V201).await;
    for (uid, _, _, want16, want201) in &cases {
        assert_eq!(
            authorize16(&cs16, uid).await,
            *want16,
            "1.6 Authorize {uid}"
        );
        assert_eq!(
            authorize201(&cs201, uid).await,
            *want201,
            "2.0.1 Authorize {uid}"
        );
        // Unknown tokens too are asked at the peer with a Tokens sender.
        assert!(
            hub.authorize_requests_for(uid).len() >= 2,
            "{uid}: {:#?}",
            hub.authorize_requests_for(uid)
        );
    }

    // A station that starts anyway with a blocked card: StartTransaction says Blocked and the
    // eMSP (the token's owner is known) gets an INVALID Session.
    status16(&cs16, 1).await;
    let (_, status) = start16(&cs16, "RTBLOCK", 0, &bridge_tests::now_rfc3339()).await;
    assert_eq!(status, "Blocked");
    let id = tx_id(&daemon, "CS001").await;
    let put = session_put(&hub, &id).await;
    assert_eq!(put.status(), Some("INVALID"), "{:?}", put.body);
    assert_routed_to_owner(&put);
}

#[tokio::test]
async fn realtime_timeout_falls_back_per_whitelist() {
    // authorize_timeout_ms = 700; the hub answers after 8 s.
    let (hub, daemon) = start(config()).await;
    let slow = Duration::from_secs(8);
    for (uid, whitelist) in [
        ("SLOWALLOWED", "ALLOWED"),
        ("SLOWOFFLINE", "ALLOWED_OFFLINE"),
        ("SLOWNEVER", "NEVER"),
    ] {
        hub.put_token_ok(&ocpi::token(CC, PID, uid, whitelist))
            .await;
        hub.script_authorize(
            uid,
            AuthReply::allowed("ALLOWED").reference("LATE").delay(slow),
        );
    }
    hub.script_authorize("SLOWUNKNOWN", AuthReply::allowed("ALLOWED").delay(slow));

    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    status16(&cs, 1).await;
    for (uid, want) in [
        ("SLOWALLOWED", "Accepted"),
        ("SLOWOFFLINE", "Accepted"),
        ("SLOWNEVER", "Invalid"),
        ("SLOWUNKNOWN", "Invalid"),
    ] {
        let t0 = Instant::now();
        assert_eq!(authorize16(&cs, uid).await, want, "{uid}");
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{uid}: the driver waited {took:?} (timeout 700 ms, hub answers after 8 s)"
        );
        assert_eq!(hub.authorize_requests_for(uid).len(), 1, "{uid} asked once");
    }
    // The transaction after a fallback acceptance: a WHITELIST session without the reference.
    let (_, status) = start16(&cs, "SLOWALLOWED", 0, &bridge_tests::now_rfc3339()).await;
    assert_eq!(status, "Accepted");
    let id = tx_id(&daemon, "CS001").await;
    let put = session_put(&hub, &id).await;
    let s = put.body.as_ref().unwrap();
    assert_eq!(s["status"], "ACTIVE", "{s:#}");
    assert_eq!(s["auth_method"], "WHITELIST", "{s:#}");
    assert!(s.get("authorization_reference").is_none(), "{s:#}");
}

// ----- costs -----

/// Three locations with one tariff shape each, a 1.6 station at each.
fn cost_config() -> TestConfig {
    config()
        .location("LE")
        .location("LT")
        .location("LP")
        .tariff_object(ocpi::tariff(
            "TE",
            "EUR",
            json!([ocpi::component("ENERGY", 0.30, 21.0, 1)]),
        ))
        .tariff_object(ocpi::tariff(
            "TT",
            "EUR",
            json!([ocpi::component("TIME", 2.00, 21.0, 900)]),
        ))
        .tariff_object(ocpi::tariff(
            "TP",
            "EUR",
            json!([
                ocpi::component("FLAT", 1.50, 21.0, 1),
                ocpi::component("PARKING_TIME", 3.00, 21.0, 900),
            ]),
        ))
        .location_tariff("LE", "TE")
        .location_tariff("LT", "TT")
        .location_tariff("LP", "TP")
        .station_at("CSE", "LE")
        .station_at("CST", "LT")
        .station_at("CSP", "LP")
}

/// A 1.6 charge replayed with station timestamps: start `(minute, Wh)`, meter values, stop.
/// Returns the CDR (exactly one).
async fn replay16(
    station: &str,
    start: (i64, i64),
    samples: &[(i64, i64)],
    stop: (i64, i64),
) -> Value {
    let (hub, daemon) = start_with(cost_config(), |_| {}).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "COSTCARD", "ALWAYS"))
        .await;
    let base = base_time() - chrono::Duration::hours(3);
    let cs = booted(&daemon, station, OcppVersion::V16).await;
    status16(&cs, 1).await;
    let (tx, status) = start16(&cs, "COSTCARD", start.1, &at(base, start.0)).await;
    assert_eq!(status, "Accepted");
    for (min, wh) in samples {
        cs.call_ok(
            "MeterValues",
            v16::meter_values_at(1, tx, &at(base, *min), *wh),
        )
        .await;
    }
    cs.call_ok(
        "StopTransaction",
        v16::stop_at(tx, "COSTCARD", stop.1, &at(base, stop.0), "Local"),
    )
    .await;
    let id = tx_id(&daemon, station).await;
    let cdr = one_cdr(&hub, &id).await;
    assert_eq!(
        parse_time(&cdr["start_date_time"]),
        base + chrono::Duration::minutes(start.0)
    );
    assert_eq!(
        parse_time(&cdr["end_date_time"]),
        base + chrono::Duration::minutes(stop.0)
    );
    assert_eq!(cdr["currency"], "EUR", "{cdr:#}");
    cdr
}

#[tokio::test]
async fn cost_per_kwh() {
    // 1000 Wh at 0 min, 7000 Wh at 30 min, 13340 Wh at 60 min: 12.34 kWh in 1 h.
    let cdr = replay16("CSE", (0, 1000), &[(30, 7000)], (60, 13340)).await;
    assert_eq!(cdr["tariffs"][0]["id"], "TE", "{cdr:#}");
    assert_num(&cdr["total_energy"], 12.34, "total_energy");
    assert_num(&cdr["total_time"], 1.0, "total_time");
    assert_num(&cdr["total_parking_time"], 0.0, "total_parking_time");
    // ENERGY 0.30/kWh, step 1 Wh: 12.34 × 0.30 = 3.702 excl;
    // incl 3.702 × 1.21 = 4.47942 → 4 decimals 4.4794.
    assert_num(
        &cdr["total_energy_cost"]["excl_vat"],
        3.702,
        "energy cost excl",
    );
    assert_num(&cdr["total_cost"]["excl_vat"], 3.702, "total excl");
    assert_num(&cdr["total_cost"]["incl_vat"], 4.4794, "total incl");
}

#[tokio::test]
async fn cost_per_time_with_step_size() {
    // 0 Wh at 0 min, 3000 Wh at 30 min, 6500 Wh at 65 min: charging all 65 minutes.
    let cdr = replay16("CST", (0, 0), &[(30, 3000)], (65, 6500)).await;
    assert_eq!(cdr["tariffs"][0]["id"], "TT", "{cdr:#}");
    assert_num(&cdr["total_energy"], 6.5, "total_energy");
    // 65 min = 1.083333… h → 4 decimals 1.0833.
    assert_num(&cdr["total_time"], 1.0833, "total_time");
    assert_num(&cdr["total_parking_time"], 0.0, "total_parking_time");
    // TIME 2.00/h, step_size 900 s: 65 min rounds up to 5 × 15 = 75 min = 1.25 h;
    // excl 1.25 × 2.00 = 2.50; incl 2.50 × 1.21 = 3.025.
    assert_num(&cdr["total_time_cost"]["excl_vat"], 2.50, "time cost excl");
    assert_num(&cdr["total_cost"]["excl_vat"], 2.50, "total excl");
    assert_num(&cdr["total_cost"]["incl_vat"], 3.025, "total incl");
}

#[tokio::test]
async fn cost_flat_plus_parking_time() {
    // 0 Wh at 0 min, 10000 Wh at 60 min, still 10000 Wh at 100 min: 60 min charging, then
    // 40 min parked (no energy flowing).
    let cdr = replay16("CSP", (0, 0), &[(60, 10000)], (100, 10000)).await;
    assert_eq!(cdr["tariffs"][0]["id"], "TP", "{cdr:#}");
    assert_num(&cdr["total_energy"], 10.0, "total_energy");
    // 100 min = 1.66666… h → 1.6667; parking 40 min = 0.66666… h → 0.6667.
    assert_num(&cdr["total_time"], 1.6667, "total_time");
    assert_num(&cdr["total_parking_time"], 0.6667, "total_parking_time");
    let periods = cdr["charging_periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 2, "a charging and a parking period: {cdr:#}");
    // FLAT 1.50 once: excl 1.50, incl 1.815.
    // PARKING_TIME 3.00/h, step 900 s: 40 min → 45 min = 0.75 h × 3.00 = 2.25 excl, 2.7225 incl.
    // Total excl 1.50 + 2.25 = 3.75; incl 3.75 × 1.21 = 4.5375.
    assert_num(&cdr["total_fixed_cost"]["excl_vat"], 1.50, "fixed excl");
    assert_num(&cdr["total_fixed_cost"]["incl_vat"], 1.815, "fixed incl");
    assert_num(&cdr["total_parking_cost"]["excl_vat"], 2.25, "parking excl");
    assert_num(
        &cdr["total_parking_cost"]["incl_vat"],
        2.7225,
        "parking incl",
    );
    assert_num(&cdr["total_cost"]["excl_vat"], 3.75, "total excl");
    assert_num(&cdr["total_cost"]["incl_vat"], 4.5375, "total incl");
}

// ----- offline replay -----

#[tokio::test]
async fn offline_replay_16_uses_the_station_timestamps_and_the_final_reading() {
    let (hub, daemon) = start(config()).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "OFF16", "ALWAYS"))
        .await;
    let base = base_time() - chrono::Duration::hours(4);
    let cs = booted(&daemon, "CS002", OcppVersion::V16).await;
    // The queue a station sends after being offline: Start, a meter value, Stop, all old.
    let (tx, status) = start16(&cs, "OFF16", 20_000, &at(base, 0)).await;
    assert_eq!(status, "Accepted");
    cs.call_ok(
        "MeterValues",
        v16::meter_values_at(1, tx, &at(base, 30), 23_000),
    )
    .await;
    cs.call_ok(
        "StopTransaction",
        v16::stop_at(tx, "OFF16", 27_500, &at(base, 60), "Local"),
    )
    .await;
    let id = tx_id(&daemon, "CS002").await;
    let put = session_put(&hub, &id).await;
    assert_eq!(
        parse_time(&put.body.as_ref().unwrap()["start_date_time"]),
        base,
        "{:?}",
        put.body
    );
    let cdr = one_cdr(&hub, &id).await;
    assert_eq!(parse_time(&cdr["start_date_time"]), base, "{cdr:#}");
    assert_eq!(
        parse_time(&cdr["end_date_time"]),
        base + chrono::Duration::hours(1),
        "{cdr:#}"
    );
    // The final reading counts: (27500 − 20000) Wh = 7.5 kWh; 7.5 × 0.35 = 2.625 excl,
    // 2.625 × 1.21 = 3.17625 → 3.1762 (ties to even) … compare excl only and incl to 1e-3.
    assert_num(&cdr["total_energy"], 7.5, "total_energy");
    assert_num(&cdr["total_time"], 1.0, "total_time");
    assert_num(&cdr["total_cost"]["excl_vat"], 2.625, "excl_vat");
    let incl = cdr["total_cost"]["incl_vat"].as_f64().unwrap();
    assert!((incl - 3.17625).abs() < 1e-3, "incl_vat {incl}");
}

#[tokio::test]
async fn offline_replay_201_out_of_order_waits_for_the_missing_seqno() {
    let (hub, daemon) = start(config()).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "OFF201", "ALWAYS"))
        .await;
    let base = base_time() - chrono::Duration::hours(3);
    let cs = booted(&daemon, "CS202", OcppVersion::V201).await;
    let ev = |ty: &str, seq: u32, min: i64, wh: f64, id: Option<&str>| {
        v201::tx_event_at(ty, "TX-OFF-201", seq, &at(base, min), wh, id, true)
    };
    let r = cs
        .call_ok("TransactionEvent", ev("Started", 0, 0, 0.0, Some("OFF201")))
        .await;
    assert_eq!(r["idTokenInfo"]["status"], "Accepted", "{r}");
    // Ended (seqNo 2) arrives before Updated (seqNo 1).
    cs.call_ok("TransactionEvent", ev("Ended", 2, 60, 5000.0, None))
        .await;
    let id = tx_id(&daemon, "CS202").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !cdr_ids(&hub).contains(&id),
        "no CDR while seqNo 1 is missing:\n{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
    // seqNo 1: at 30 min the register already shows 5000 Wh, so the last 30 min were parking.
    cs.call_ok("TransactionEvent", ev("Updated", 1, 30, 5000.0, None))
        .await;
    let cdr = one_cdr(&hub, &id).await;
    assert_eq!(parse_time(&cdr["start_date_time"]), base, "{cdr:#}");
    assert_eq!(
        parse_time(&cdr["end_date_time"]),
        base + chrono::Duration::hours(1),
        "{cdr:#}"
    );
    assert_num(&cdr["total_energy"], 5.0, "total_energy");
    assert_num(&cdr["total_time"], 1.0, "total_time");
    assert_num(
        &cdr["total_parking_time"],
        0.5,
        "total_parking_time (needs seqNo 1)",
    );
    assert_eq!(
        cdr["charging_periods"].as_array().map(Vec::len),
        Some(2),
        "{cdr:#}"
    );
    // 5 kWh × 0.35 = 1.75 excl; × 1.21 = 2.1175 incl.
    assert_num(&cdr["total_cost"]["excl_vat"], 1.75, "excl_vat");
    assert_num(&cdr["total_cost"]["incl_vat"], 2.1175, "incl_vat");
}

// ----- crashes -----

#[tokio::test]
async fn sigkill_mid_transaction_still_yields_one_cdr() {
    let (hub, mut daemon) = start(config()).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "KILL1", "ALWAYS"))
        .await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    status16(&cs, 1).await;
    let (tx, status) = start16(&cs, "KILL1", 500, &bridge_tests::now_rfc3339()).await;
    assert_eq!(status, "Accepted");
    let id = tx_id(&daemon, "CS001").await;
    session_put(&hub, &id).await;

    daemon.sigkill();
    drop(cs);
    daemon.restart().await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("Heartbeat", v16::heartbeat()).await;
    cs.call_ok("StopTransaction", v16::stop(tx, "KILL1", 3500, "Local"))
        .await;
    let cdr = one_cdr(&hub, &id).await;
    // (3500 − 500) Wh = 3 kWh × 0.35 = 1.05 excl, 1.2705 incl.
    assert_num(&cdr["total_energy"], 3.0, "total_energy");
    assert_num(&cdr["total_cost"]["excl_vat"], 1.05, "excl_vat");
    assert_num(&cdr["total_cost"]["incl_vat"], 1.2705, "incl_vat");
    hub.wait_accepted("PATCH COMPLETED after restart", 1, PUSH_SOON, |p| {
        p.is("PATCH", "sessions") && p.status() == Some("COMPLETED")
    })
    .await;
    assert_eq!(tx_ids(&daemon, "CS001").await, std::slice::from_ref(&id));
}

#[tokio::test]
async fn sigkill_after_the_stop_before_the_cdr_was_delivered() {
    let (hub, mut daemon) = start(config()).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "KILL2", "ALWAYS"))
        .await;
    let cs = booted(&daemon, "CS201", OcppVersion::V201).await;
    cs.call_ok(
        "TransactionEvent",
        v201::tx_started("TX-KILL2", "KILL2", 0.0),
    )
    .await;
    let id = tx_id(&daemon, "CS201").await;
    session_put(&hub, &id).await;

    // The hub goes down; the stop is answered (so it is durable), the CDR cannot be delivered.
    hub.set_mode(HubMode::Down);
    cs.call_ok("TransactionEvent", v201::tx_ended("TX-KILL2", 1, 2000.0))
        .await;
    eventually("CDR stored, undelivered", PUSH_SOON, || async {
        let cdrs = daemon.admin_get("/admin/cdrs").await;
        match cdrs
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()))
        {
            Some(c) if c["delivered_location"].is_null() => Ok(()),
            _ => Err(cdrs),
        }
    })
    .await;
    daemon.sigkill();
    drop(cs);
    assert!(cdr_ids(&hub).is_empty(), "nothing accepted while down");

    hub.set_mode(HubMode::Normal);
    daemon.restart().await;
    let cdr = one_cdr(&hub, &id).await;
    assert_num(&cdr["total_energy"], 2.0, "total_energy");
    assert_cdr_token(&cdr["cdr_token"], "KILL2");
    let (_, location) = hub
        .cdr_locations()
        .into_iter()
        .find(|(c, _)| c == &id)
        .unwrap();
    eventually("delivered_location after restart", PUSH_SOON, || async {
        let cdrs = daemon.admin_get("/admin/cdrs").await;
        let c = cdrs
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()).cloned());
        match c {
            Some(c) if c["delivered_location"] == location.as_str() => Ok(()),
            _ => Err(cdrs),
        }
    })
    .await;
    // Every CDR POST (failed ones included) carried the same CDR.
    for p in hub.cdr_posts() {
        assert_eq!(p.body.as_ref().unwrap()["id"], id.as_str());
    }
}

#[tokio::test]
async fn exactly_one_cdr_per_transaction_even_with_repeated_stops() {
    let (hub, daemon) = start(config()).await;
    hub.put_token_ok(&ocpi::token(CC, PID, "ONE16", "ALWAYS"))
        .await;
    hub.put_token_ok(&ocpi::token(CC, PID, "ONE201", "ALWAYS"))
        .await;

    // 1.6: two transactions in a row; the first StopTransaction is sent twice (a station that
    // lost the answer retransmits).
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    status16(&cs, 1).await;
    let (tx1, _) = start16(&cs, "ONE16", 0, &bridge_tests::now_rfc3339()).await;
    let stop = v16::stop(tx1, "ONE16", 1000, "Local");
    cs.call_ok("StopTransaction", stop.clone()).await;
    cs.call_ok("StopTransaction", stop).await;
    let (tx2, _) = start16(&cs, "ONE16", 1000, &bridge_tests::now_rfc3339()).await;
    assert_ne!(tx1, tx2);
    cs.call_ok("StopTransaction", v16::stop(tx2, "ONE16", 2500, "Local"))
        .await;

    // 2.0.1: Ended twice.
    let c2 = booted(&daemon, "CS201", OcppVersion::V201).await;
    c2.call_ok(
        "TransactionEvent",
        v201::tx_started("TX-ONE", "ONE201", 0.0),
    )
    .await;
    let ended = v201::tx_ended("TX-ONE", 1, 3000.0);
    c2.call_ok("TransactionEvent", ended.clone()).await;
    c2.call_ok("TransactionEvent", ended).await;

    let ids16 = tx_ids(&daemon, "CS001").await;
    assert_eq!(ids16.len(), 2, "{ids16:?}");
    let id201 = tx_id(&daemon, "CS201").await;
    let mut energies = Vec::new();
    for id in ids16.iter().chain([&id201]) {
        let cdr = one_cdr(&hub, id).await;
        energies.push(cdr["total_energy"].as_f64().unwrap());
    }
    energies.sort_by(f64::total_cmp);
    assert_eq!(energies, [1.0, 1.5, 3.0]);
    assert_eq!(cdr_ids(&hub).len(), 3, "{:?}", cdr_ids(&hub));
}
