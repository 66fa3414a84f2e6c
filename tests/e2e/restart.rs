//! Durability: a transaction message answered with a CALLRESULT survives SIGKILL, stations
//! reconnect after a restart without a new BootNotification, and 1.6 transaction ids are never
//! reused across crashes.

use bridge_tests::payloads::{v16, v201};
use bridge_tests::{Daemon, OcppVersion, Station, eventually, now_rfc3339};

use crate::transactions::single_transaction;
use crate::{SOON, default_config};

/// Reconnects `id` after a restart and proves the daemon serves it without a BootNotification.
async fn reconnect_without_boot(daemon: &Daemon, id: &str, version: OcppVersion) -> Station {
    let cs = Station::connect_to(daemon, id, version).await;
    let hb = cs.call("Heartbeat", serde_json::json!({})).await;
    assert!(
        hb.is_ok(),
        "Heartbeat after reconnect (no new BootNotification) must be accepted: {hb:?}"
    );
    cs
}

#[tokio::test]
async fn start_transaction_survives_sigkill_and_ids_are_never_reused() {
    let mut daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.boot().await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let start = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "TAGKILL", 4000, &now_rfc3339()),
        )
        .await;
    let id1 = start["transactionId"]
        .as_i64()
        .expect("integer transactionId");

    // The CALLRESULT is in: the transaction must be durable now.
    daemon.sigkill();
    drop(cs);
    daemon.restart().await;

    let cs = reconnect_without_boot(&daemon, "CS001", OcppVersion::V16).await;
    let st = eventually("CS001 known and online after restart", SOON, || async {
        match daemon.station("CS001").await {
            Some(s) if s["online"] == true => Ok(s),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(
        st["vendor"],
        v16::VENDOR,
        "boot data must survive the restart: {st:#}"
    );
    assert_eq!(st["ocpp_version"], "1.6", "{st:#}");

    let t = single_transaction(&daemon, "CS001", "active").await;
    assert_eq!(t["ocpp_transaction_id"], id1.to_string(), "{t:#}");

    cs.call_ok("StopTransaction", v16::stop(id1, "TAGKILL", 4800, "Local"))
        .await;
    let done = single_transaction(&daemon, "CS001", "completed").await;
    assert_eq!(done["id"], t["id"], "{done:#}");

    let next = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "TAGKILL", 4800, &now_rfc3339()),
        )
        .await;
    let id2 = next["transactionId"]
        .as_i64()
        .expect("integer transactionId");
    assert!(
        id2 > id1,
        "transaction id {id2} after restart must be above {id1} (ids are never reused)"
    );
}

#[tokio::test]
async fn stop_transaction_survives_sigkill() {
    let mut daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS002", OcppVersion::V16).await;
    cs.boot().await;
    let start = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "TAGSTOP", 0, &now_rfc3339()),
        )
        .await;
    let id = start["transactionId"]
        .as_i64()
        .expect("integer transactionId");
    cs.call_ok(
        "StopTransaction",
        v16::stop(id, "TAGSTOP", 1234, "EVDisconnected"),
    )
    .await;

    daemon.sigkill();
    drop(cs);
    daemon.restart().await;

    let done = single_transaction(&daemon, "CS002", "completed").await;
    assert_eq!(done["ocpp_transaction_id"], id.to_string(), "{done:#}");
    assert_eq!(done["meter_stop_wh"].as_f64(), Some(1234.0), "{done:#}");
    assert_eq!(done["stop_reason"], "EVDisconnected", "{done:#}");
}

#[tokio::test]
async fn transaction_event_survives_sigkill() {
    let mut daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS201", OcppVersion::V201).await;
    cs.boot().await;
    cs.call_ok(
        "TransactionEvent",
        v201::tx_started("TX-KILL", "TAGK", 10.0),
    )
    .await;

    daemon.sigkill();
    drop(cs);
    daemon.restart().await;

    let cs = reconnect_without_boot(&daemon, "CS201", OcppVersion::V201).await;
    let t = single_transaction(&daemon, "CS201", "active").await;
    assert_eq!(t["ocpp_transaction_id"], "TX-KILL", "{t:#}");

    cs.call_ok("TransactionEvent", v201::tx_ended("TX-KILL", 1, 500.0))
        .await;
    let done = single_transaction(&daemon, "CS201", "completed").await;
    assert_eq!(done["id"], t["id"], "{done:#}");
}

#[tokio::test]
async fn every_answered_transaction_message_survives_sigkill() {
    let mut daemon = Daemon::start(&default_config()).await;
    let a = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    a.boot().await;
    let b = Station::connect_to(&daemon, "CS201", OcppVersion::V201).await;
    b.boot().await;

    // Ten 1.6 transactions (every other one stopped) and ten 2.0.1 ones, interleaved, then
    // SIGKILL straight after the last CALLRESULT: each answered message must be on disk.
    let mut ids = Vec::new();
    for i in 0..10u32 {
        let start = a
            .call_ok(
                "StartTransaction",
                v16::start(1 + i % 2, &format!("TAG{i}"), 0, &now_rfc3339()),
            )
            .await;
        let id = start["transactionId"]
            .as_i64()
            .expect("integer transactionId");
        if i % 2 == 1 {
            a.call_ok(
                "StopTransaction",
                v16::stop(id, &format!("TAG{i}"), 100, "Local"),
            )
            .await;
        }
        ids.push(id);
        let tx = format!("TX-{i}");
        b.call_ok("TransactionEvent", v201::tx_started(&tx, "TAGB", 0.0))
            .await;
        if i % 2 == 1 {
            b.call_ok("TransactionEvent", v201::tx_ended(&tx, 1, 10.0))
                .await;
        }
    }
    daemon.sigkill();
    drop((a, b));
    daemon.restart().await;

    for station in ["CS001", "CS201"] {
        let txs = daemon.transactions_of(station).await;
        let completed = txs.iter().filter(|t| t["status"] == "completed").count();
        let active = txs.iter().filter(|t| t["status"] == "active").count();
        assert_eq!(
            (active, completed),
            (5, 5),
            "{station} after SIGKILL: {txs:#?}"
        );
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        ids.len(),
        "1.6 transaction ids must be unique: {ids:?}"
    );
}

#[tokio::test]
async fn start_transaction_retried_after_sigkill_gets_the_same_id() {
    let mut daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS002", OcppVersion::V16).await;
    cs.boot().await;
    let ts = now_rfc3339();
    let first = cs
        .call_ok("StartTransaction", v16::start(1, "TAGR", 70, &ts))
        .await;

    // The station never saw that answer (the connection died with the daemon) and retries.
    daemon.sigkill();
    drop(cs);
    daemon.restart().await;
    let cs = reconnect_without_boot(&daemon, "CS002", OcppVersion::V16).await;
    let retry = cs
        .call_ok("StartTransaction", v16::start(1, "TAGR", 70, &ts))
        .await;
    assert_eq!(
        first["transactionId"], retry["transactionId"],
        "retry after restart must get the same id"
    );
    single_transaction(&daemon, "CS002", "active").await;
}
