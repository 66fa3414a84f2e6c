//! Transactions end to end: 1.6 Start/MeterValues/Stop and 2.0.1 TransactionEvent
//! Started/Updated/Ended as seen through `/admin/transactions`, plus idempotence of retried
//! transaction messages.

use bridge_tests::payloads::{v16, v201};
use bridge_tests::{Daemon, OcppVersion, Station, eventually, now_rfc3339};
use serde_json::Value;

use crate::{SOON, default_config};

/// Waits until `station_id` has exactly one transaction whose `status` is `status`; returns it.
pub(crate) async fn single_transaction(daemon: &Daemon, station_id: &str, status: &str) -> Value {
    eventually(
        &format!("one {status} transaction of {station_id}"),
        SOON,
        || async {
            let txs = daemon.transactions_of(station_id).await;
            match txs.as_slice() {
                [t] if t["status"] == status => Ok(t.clone()),
                _ => Err(txs),
            }
        },
    )
    .await
}

fn assert_our_uuid(t: &Value) {
    let id = t["id"]
        .as_str()
        .unwrap_or_else(|| panic!("transaction id is not a string: {t:#}"));
    uuid::Uuid::parse_str(id)
        .unwrap_or_else(|e| panic!("transaction id {id:?} is not a uuid: {e}"));
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

#[tokio::test]
async fn ocpp16_full_transaction_shows_in_admin_transactions() {
    let daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.boot().await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;

    let auth = cs.call_ok("Authorize", v16::authorize("TAG0001")).await;
    assert_eq!(auth["idTagInfo"]["status"], "Accepted", "{auth}");

    let start = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "TAG0001", 1000, &now_rfc3339()),
        )
        .await;
    let tx_id = start["transactionId"]
        .as_i64()
        .unwrap_or_else(|| panic!("transactionId not an integer: {start}"));
    assert_eq!(start["idTagInfo"]["status"], "Accepted", "{start}");
    cs.call_ok("StatusNotification", v16::status(1, "Charging"))
        .await;

    for wh in [1500, 2000] {
        let r = cs
            .call_ok("MeterValues", v16::meter_values(1, tx_id, wh))
            .await;
        assert_eq!(r, serde_json::json!({}), "MeterValues.conf must be empty");
    }

    let t = single_transaction(&daemon, "CS001", "active").await;
    assert_our_uuid(&t);
    assert_eq!(t["ocpp_transaction_id"], tx_id.to_string(), "{t:#}");
    assert_eq!(t["evse_id"], 1, "{t:#}");
    assert_eq!(t["connector_id"], 1, "{t:#}");
    assert_eq!(t["id_token"], "TAG0001", "{t:#}");
    assert!(t["started_at"].is_string(), "{t:#}");
    assert!(t["stopped_at"].is_null(), "{t:#}");
    assert_eq!(num(&t["meter_start_wh"]), Some(1000.0), "{t:#}");
    assert!(t["meter_stop_wh"].is_null(), "{t:#}");
    assert_eq!(t["offline"], false, "{t:#}");
    eventually("4 samples stored", SOON, || async {
        let t = single_transaction(&daemon, "CS001", "active").await;
        if t["samples"] == 4 { Ok(()) } else { Err(t) }
    })
    .await;

    let stop = cs
        .call_ok(
            "StopTransaction",
            v16::stop(tx_id, "TAG0001", 2500, "Local"),
        )
        .await;
    assert!(stop.is_object(), "{stop}");
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;

    let done = single_transaction(&daemon, "CS001", "completed").await;
    assert_eq!(
        done["id"], t["id"],
        "stop must complete the same transaction"
    );
    assert!(done["stopped_at"].is_string(), "{done:#}");
    assert_eq!(num(&done["meter_stop_wh"]), Some(2500.0), "{done:#}");
    assert_eq!(done["stop_reason"], "Local", "{done:#}");
    assert_eq!(
        done["samples"], 6,
        "2 MeterValues x 2 + transactionData x 2: {done:#}"
    );
}

#[tokio::test]
async fn ocpp201_full_transaction_shows_in_admin_transactions() {
    let daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS201", OcppVersion::V201).await;
    cs.boot().await;
    cs.call_ok("StatusNotification", v201::status(1, 1, "Available"))
        .await;

    let auth = cs.call_ok("Authorize", v201::authorize("TAG201")).await;
    assert_eq!(auth["idTokenInfo"]["status"], "Accepted", "{auth}");

    let started = cs
        .call_ok(
            "TransactionEvent",
            v201::tx_started("TX-201-A", "TAG201", 1000.0),
        )
        .await;
    if let Some(info) = started.get("idTokenInfo") {
        assert_eq!(info["status"], "Accepted", "{started}");
    }
    cs.call_ok("StatusNotification", v201::status(1, 1, "Occupied"))
        .await;
    cs.call_ok("TransactionEvent", v201::tx_updated("TX-201-A", 1, 1800.0))
        .await;

    let t = single_transaction(&daemon, "CS201", "active").await;
    assert_our_uuid(&t);
    assert_eq!(t["ocpp_transaction_id"], "TX-201-A", "{t:#}");
    assert_eq!(t["evse_id"], 1, "{t:#}");
    assert_eq!(t["connector_id"], 1, "{t:#}");
    assert_eq!(t["id_token"], "TAG201", "{t:#}");
    assert!(t["started_at"].is_string(), "{t:#}");
    assert!(t["stopped_at"].is_null(), "{t:#}");
    assert_eq!(
        num(&t["meter_start_wh"]),
        Some(1000.0),
        "Started's Transaction.Begin register: {t:#}"
    );
    assert_eq!(t["offline"], false, "{t:#}");

    cs.call_ok("TransactionEvent", v201::tx_ended("TX-201-A", 2, 2600.0))
        .await;
    let done = single_transaction(&daemon, "CS201", "completed").await;
    assert_eq!(done["id"], t["id"], "{done:#}");
    assert!(done["stopped_at"].is_string(), "{done:#}");
    assert_eq!(num(&done["meter_stop_wh"]), Some(2600.0), "{done:#}");
    assert_eq!(done["stop_reason"], "EVDisconnected", "{done:#}");
    assert_eq!(done["samples"], 6, "3 events x 2 sampled values: {done:#}");
}

#[tokio::test]
async fn retried_start_transaction_gets_the_same_id() {
    let daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.boot().await;

    let ts = now_rfc3339();
    let first = cs
        .call_ok("StartTransaction", v16::start(1, "TAGRETRY", 500, &ts))
        .await;
    // A station that missed the answer sends the same request again (new message id).
    let retry = cs
        .call_ok("StartTransaction", v16::start(1, "TAGRETRY", 500, &ts))
        .await;
    assert!(first["transactionId"].is_i64(), "{first}");
    assert_eq!(
        first["transactionId"], retry["transactionId"],
        "retry must get the same id"
    );
    single_transaction(&daemon, "CS001", "active").await;

    // A genuinely different transaction gets a different, higher id.
    let other = cs
        .call_ok(
            "StartTransaction",
            v16::start(2, "TAGOTHER", 0, &now_rfc3339()),
        )
        .await;
    assert!(
        other["transactionId"].as_i64() > first["transactionId"].as_i64(),
        "new transaction id {} must be above {}",
        other["transactionId"],
        first["transactionId"]
    );
    eventually("two CS001 transactions", SOON, || async {
        let txs = daemon.transactions_of("CS001").await;
        if txs.len() == 2 { Ok(()) } else { Err(txs) }
    })
    .await;
}

#[tokio::test]
async fn retried_transaction_event_is_stored_once() {
    let daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS201", OcppVersion::V201).await;
    cs.boot().await;

    let started = v201::tx_started("TX-DUP", "TAGDUP", 100.0);
    cs.call_ok("TransactionEvent", started.clone()).await;
    cs.call_ok("TransactionEvent", started).await;
    let updated = v201::tx_updated("TX-DUP", 1, 900.0);
    cs.call_ok("TransactionEvent", updated.clone()).await;
    cs.call_ok("TransactionEvent", updated).await;

    let t = single_transaction(&daemon, "CS201", "active").await;
    assert_eq!(
        t["samples"], 4,
        "duplicates (same transactionId + seqNo) must not add samples: {t:#}"
    );
}
