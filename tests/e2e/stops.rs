//! Repeated and conflicting stops (issue 9): once a transaction's CDR exists its stop facts are
//! frozen. A retried 1.6 StopTransaction and a 2.0.1 Ended event sent again under a new seqNo
//! count once in `bridge_transactions_stopped_total`; a different stop is answered, counted in
//! `bridge_stop_conflicts_total` and changes nothing: the stored transaction, the CDR the hub got
//! and the CDR the daemon serves agree.

use std::time::Duration;

use bridge_tests::payloads::{ocpi, v16, v201};
use bridge_tests::{Daemon, Hub, OcppVersion, Station};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::ocpi_support::{
    booted, ocpi_config, only_transaction, registered_with_hub, the_one_cdr,
};
use crate::ops::{metric, scrape};

const QUIET: Duration = Duration::from_millis(1500);

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() - 3 * 3600, 0).expect("valid timestamp")
}

fn at(base: DateTime<Utc>, minutes: i64) -> String {
    (base + chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

async fn setup(station: &str, version: OcppVersion, uid: &str) -> (Hub, Daemon, Station) {
    let (hub, daemon) = registered_with_hub(ocpi_config().free_vend(false)).await;
    hub.put_token_ok(&ocpi::token("DE", "EMS", uid, "ALWAYS"))
        .await;
    let cs = booted(&daemon, station, version).await;
    (hub, daemon, cs)
}

/// `(bridge_transactions_stopped_total, bridge_stop_conflicts_total)`, absent = 0.
async fn stop_counters(daemon: &Daemon) -> (f64, f64) {
    let text = scrape(daemon).await;
    (
        metric(&text, "bridge_transactions_stopped_total", &[]).unwrap_or(0.0),
        metric(&text, "bridge_stop_conflicts_total", &[]).unwrap_or(0.0),
    )
}

/// The CDR with `id` as the daemon serves it on its cdrs SENDER endpoint.
async fn served_cdr(hub: &Hub, daemon: &Daemon, id: &str) -> Value {
    let url = format!("http://{}/ocpi/2.2.1/cdrs", daemon.ocpi_addr());
    let page = hub.get_as_peer(&url).await;
    page.data()
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id).cloned())
        .unwrap_or_else(|| panic!("CDR {id} not served: {}", page.text))
}

/// The stored transaction, the pushed CDR and the served CDR agree on the stop.
#[track_caller]
fn assert_agree(t: &Value, pushed: &Value, served: &Value, stop: DateTime<Utc>, kwh: f64) {
    assert_eq!(parse_time(&t["stopped_at"]), stop, "{t:#}");
    for cdr in [pushed, served] {
        assert_eq!(parse_time(&cdr["end_date_time"]), stop, "{cdr:#}");
        let e = cdr["total_energy"].as_f64().expect("total_energy");
        assert!((e - kwh).abs() < 1e-6, "total_energy {e} ≠ {kwh}: {cdr:#}");
    }
    assert_eq!(pushed["total_cost"], served["total_cost"]);
}

#[tokio::test]
async fn a_retried_and_a_conflicting_stop_transaction_change_nothing() {
    let uid = "STOP16";
    let (hub, daemon, cs) = setup("CS001", OcppVersion::V16, uid).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let b = base();
    let start = cs
        .call_ok("StartTransaction", v16::start(1, uid, 1000, &at(b, 0)))
        .await;
    let tx = start["transactionId"].as_i64().expect("transactionId");
    let stop = v16::stop_at(tx, uid, 3000, &at(b, 30), "Local");
    // The station did not get the first answer and sends the same StopTransaction again.
    let first = cs.call_ok("StopTransaction", stop.clone()).await;
    let again = cs.call_ok("StopTransaction", stop).await;
    assert_eq!(first, again);
    let t = only_transaction(&daemon, "CS001").await;
    let id = t["id"].as_str().expect("id").to_string();
    let pushed = the_one_cdr(&hub, &id, QUIET).await;
    assert_eq!(stop_counters(&daemon).await, (1.0, 0.0));

    // A different stop for the completed transaction: answered, counted, ignored.
    let conflicting = v16::stop_at(tx, uid, 9000, &at(b, 50), "Remote");
    let answer = cs.call_ok("StopTransaction", conflicting).await;
    assert_eq!(answer["idTagInfo"]["status"], "Accepted", "{answer}");
    assert_eq!(stop_counters(&daemon).await, (1.0, 1.0));
    tokio::time::sleep(QUIET).await;
    let cdrs = hub
        .accepted()
        .iter()
        .filter(|p| p.is("POST", "cdrs"))
        .count();
    assert_eq!(cdrs, 1, "no second CDR");

    let t = only_transaction(&daemon, "CS001").await;
    assert_eq!(t["meter_stop_wh"], json!(3000), "{t:#}");
    assert_eq!(t["stop_reason"], "Local", "{t:#}");
    // The first stop's transactionData (energy and power); the conflicting one's is not stored.
    assert_eq!(t["samples"], json!(2), "{t:#}");
    let served = served_cdr(&hub, &daemon, &id).await;
    assert_agree(&t, &pushed, &served, b + chrono::Duration::minutes(30), 2.0);
    let log = daemon.log_tail(100_000);
    assert!(
        log.contains("a different stop for a completed transaction is ignored"),
        "the conflict is logged:\n{log}"
    );
}

/// A 2.0.1 TransactionEvent with one energy reading.
fn event(kind: &str, seq: u32, ts: &str, wh: f64, reason: Option<&str>) -> Value {
    let (trigger, context) = match kind {
        "Started" => ("Authorized", "Transaction.Begin"),
        _ => ("StopAuthorized", "Transaction.End"),
    };
    let mut v = json!({
        "eventType": kind,
        "timestamp": ts,
        "triggerReason": trigger,
        "seqNo": seq,
        "transactionInfo": { "transactionId": "stop-201" },
        "evse": { "id": 1, "connectorId": 1 },
        "meterValue": [v201::meter_value(ts, wh, 0.0, context)],
    });
    if kind == "Started" {
        v["idToken"] = v201::id_token("STOP201");
    }
    if let Some(r) = reason {
        v["transactionInfo"]["stoppedReason"] = json!(r);
    }
    v
}

#[tokio::test]
async fn repeated_and_conflicting_ended_events_count_once() {
    let (hub, daemon, cs) = setup("CS201", OcppVersion::V201, "STOP201").await;
    cs.call_ok("StatusNotification", v201::status(1, 1, "Available"))
        .await;
    let b = base();
    cs.call_ok(
        "TransactionEvent",
        event("Started", 0, &at(b, 0), 1000.0, None),
    )
    .await;
    let ended = event("Ended", 1, &at(b, 30), 3000.0, Some("Local"));
    cs.call_ok("TransactionEvent", ended.clone()).await;
    // The same Ended under new seqNos (a station that re-numbers its retries).
    for seq in [2, 3] {
        let mut again = ended.clone();
        again["seqNo"] = json!(seq);
        cs.call_ok("TransactionEvent", again).await;
    }
    let t = only_transaction(&daemon, "CS201").await;
    let id = t["id"].as_str().expect("id").to_string();
    let pushed = the_one_cdr(&hub, &id, QUIET).await;
    assert_eq!(stop_counters(&daemon).await, (1.0, 0.0));

    let conflicting = event("Ended", 4, &at(b, 50), 9000.0, Some("Remote"));
    cs.call_ok("TransactionEvent", conflicting).await;
    assert_eq!(stop_counters(&daemon).await, (1.0, 1.0));

    let t = only_transaction(&daemon, "CS201").await;
    assert_eq!(t["meter_stop_wh"], json!(3000), "{t:#}");
    assert_eq!(t["stop_reason"], "Local", "{t:#}");
    assert_eq!(t["last_seq_no"], json!(1), "{t:#}");
    let served = served_cdr(&hub, &daemon, &id).await;
    assert_agree(&t, &pushed, &served, b + chrono::Duration::minutes(30), 2.0);
    let cdrs = hub
        .accepted()
        .iter()
        .filter(|p| p.is("POST", "cdrs"))
        .count();
    assert_eq!(cdrs, 1, "no second CDR");
}
