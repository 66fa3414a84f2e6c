//! Graceful shutdown: SIGTERM/SIGINT close every station websocket with 1001 (going away) and
//! the process exits 0.

use std::time::Duration;

use bridge_tests::{Daemon, OcppVersion, Station};

use crate::default_config;

#[tokio::test]
async fn sigterm_closes_stations_with_1001_and_exits_0() {
    let mut daemon = Daemon::start(&default_config()).await;
    let a = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    a.boot().await;
    let b = Station::connect_to(&daemon, "CS201", OcppVersion::V201).await;
    b.boot().await;

    let status = daemon.sigterm().await;
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        daemon.log_tail(30)
    );
    for cs in [&a, &b] {
        let close = cs.wait_closed(Duration::from_secs(5)).await;
        let close =
            close.unwrap_or_else(|| panic!("{} still open after the daemon exited", cs.id()));
        assert_eq!(close.code, Some(1001), "{}: close {close:?}", cs.id());
    }
}

#[tokio::test]
async fn sigint_exits_0() {
    let mut daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS002", OcppVersion::V16).await;
    cs.boot().await;
    let status = daemon.sigint().await;
    assert!(
        status.success(),
        "exit status after SIGINT: {status}\n{}",
        daemon.log_tail(30)
    );
    let close = cs
        .wait_closed(Duration::from_secs(5))
        .await
        .expect("closed");
    assert_eq!(close.code, Some(1001), "{close:?}");
}

#[tokio::test]
async fn state_survives_a_graceful_restart() {
    let mut daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS002", OcppVersion::V16).await;
    cs.boot().await;
    drop(cs);
    daemon.restart().await; // SIGTERM, then start on the same data dir
    let st = daemon
        .station("CS002")
        .await
        .expect("CS002 listed after restart");
    assert_eq!(st["vendor"], bridge_tests::payloads::v16::VENDOR, "{st:#}");
}

#[tokio::test]
async fn json_log_format_writes_json_lines() {
    let mut daemon = Daemon::start(&default_config().log_format("json")).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.boot().await;
    daemon.sigterm().await;
    let log = std::fs::read_to_string(daemon.dir().join("daemon.log")).expect("read log");
    let json_lines = log
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
        .count();
    assert!(
        json_lines > 0,
        "no JSON log line with [log] format = \"json\":\n{log}"
    );
}
