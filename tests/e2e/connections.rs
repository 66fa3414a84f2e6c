//! The websocket handshake and connection registry: Basic auth (401), unknown stations (404),
//! `allow_unknown_stations`, and a second connection for the same station replacing the first.

use std::time::Duration;

use bridge_tests::payloads::v16;
use bridge_tests::{ConnectError, Daemon, OcppVersion, Station, StationOptions, eventually};

use crate::{SOON, default_config};

async fn expect_http(opts: StationOptions, status: u16, what: &str) {
    match Station::connect(opts).await {
        Err(ConnectError::Http(s)) => assert_eq!(s, status, "{what}"),
        Err(e) => panic!("{what}: expected HTTP {status}, got {e}"),
        Ok(_) => panic!("{what}: expected HTTP {status}, the upgrade succeeded"),
    }
}

#[tokio::test]
async fn missing_or_wrong_password_is_rejected_with_401() {
    let daemon = Daemon::start(&default_config()).await;
    let base = StationOptions::new(&daemon, "SECURE", OcppVersion::V16);

    expect_http(base.clone(), 401, "no Authorization header").await;
    expect_http(
        base.clone().password("wrong-password"),
        401,
        "wrong password",
    )
    .await;
    let mut other_user = base.clone();
    other_user.basic_auth = Some(("CS001".into(), "s3cret-pass".into()));
    expect_http(other_user, 401, "username is not the station id").await;

    let cs = Station::connect_with(&daemon, base.password("s3cret-pass")).await;
    cs.boot().await;
}

#[tokio::test]
async fn unknown_station_is_rejected_with_404() {
    let daemon = Daemon::start(&default_config()).await;
    expect_http(
        StationOptions::new(&daemon, "NOT-CONFIGURED", OcppVersion::V16),
        404,
        "unknown station 1.6",
    )
    .await;
    expect_http(
        StationOptions::new(&daemon, "NOT-CONFIGURED", OcppVersion::V201),
        404,
        "unknown station 2.0.1",
    )
    .await;
}

#[tokio::test]
async fn unknown_station_is_accepted_when_allowed() {
    let daemon = Daemon::start(&default_config().allow_unknown_stations(true)).await;
    let cs = Station::connect_to(&daemon, "WALK-IN", OcppVersion::V16).await;
    cs.boot().await;
    eventually("WALK-IN listed", SOON, || async {
        match daemon.station("WALK-IN").await {
            Some(s) if s["online"] == true => Ok(()),
            other => Err(other),
        }
    })
    .await;
}

#[tokio::test]
async fn second_connection_for_a_station_replaces_the_first() {
    let daemon = Daemon::start(&default_config()).await;
    let first = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    first.boot().await;

    let second = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    let closed = first.wait_closed(Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "the first connection must be closed when the second one arrives"
    );
    second.call_ok("Heartbeat", v16::heartbeat()).await;
    second
        .call_ok("StatusNotification", v16::status(1, "Available"))
        .await;

    // The replaced connection closing must not mark the station offline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = daemon.station("CS001").await.expect("CS001 listed");
    assert_eq!(st["online"], true, "{st:#}");
}
