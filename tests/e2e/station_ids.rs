//! Station ids with characters that have a meaning in URLs (issue 9): `/ # ? % space é`.
//!
//! Such a station connects with its id percent-encoded in the websocket path, and works end to
//! end: its EVSE gets a uid from the safe alphabet (`CS/01` → `CS_01-1`), every push reaches the
//! fake hub with a well-formed path (one segment per id, no query, no fragment), the EVSE can be
//! fetched by its uid, Sessions and CDRs carry it, and it stays the same across a restart.

use bridge_tests::hub::Push;
use bridge_tests::payloads::{ocpi, v16, v201};
use bridge_tests::{Daemon, Hub, OcppVersion, Station, eventually, now_rfc3339};
use serde_json::{Value, json};

use crate::ocpi_support::{PUSH_SOON, booted, ocpi_config, registered_with_hub};

/// `(station id, version, the EVSE uid it must get)`.
const STATIONS: [(&str, OcppVersion, &str); 6] = [
    ("CS/01", OcppVersion::V16, "CS_01-1"),
    ("CS#03", OcppVersion::V201, "CS_03-1"),
    ("CS?04", OcppVersion::V16, "CS_04-1"),
    ("CS%05", OcppVersion::V201, "CS_05-1"),
    ("CS 06", OcppVersion::V16, "CS_06-1"),
    ("CSé07", OcppVersion::V201, "CS_07-1"),
];

const TOKEN: &str = "IDCARD";

/// The EVSE capabilities the bridge publishes for a station without `capabilities`.
fn default_capabilities() -> Value {
    serde_json::json!([
        "REMOTE_START_STOP_CAPABLE",
        "UNLOCK_CAPABLE",
        "RESERVABLE",
        "RFID_READER"
    ])
}

fn status(version: OcppVersion, status16: &str, status201: &str) -> Value {
    match version {
        OcppVersion::V16 => v16::status(1, status16),
        OcppVersion::V201 => v201::status(1, 1, status201),
    }
}

/// Every byte of a pushed path is unreserved or a `%XX` escape, so each id is one segment.
#[track_caller]
fn assert_well_formed(p: &Push) {
    assert_eq!(p.query, None, "{} {}", p.method, p.path);
    let bytes = p.path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                assert!(
                    bytes.len() > i + 2
                        && bytes[i + 1].is_ascii_hexdigit()
                        && bytes[i + 2].is_ascii_hexdigit(),
                    "bad escape in {}",
                    p.path
                );
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) => i += 1,
            other => panic!("byte {other:#x} in the path {}", p.path),
        }
    }
}

/// The uid of `station`'s EVSE 1 from the newest accepted Location PUT that lists it.
async fn published_uid(hub: &Hub, station: &str) -> String {
    let reference = format!("{station} #1");
    eventually(&format!("EVSE of {station} published"), PUSH_SOON, || {
        let pushes = hub.accepted();
        let reference = reference.clone();
        async move {
            pushes
                .iter()
                .rev()
                .filter(|p| p.is_location_put("LOC1"))
                .find_map(|p| {
                    let evses = p.body.as_ref()?["evses"].as_array()?.clone();
                    evses
                        .iter()
                        .find(|e| e["physical_reference"] == reference.as_str())
                        .and_then(|e| e["uid"].as_str().map(str::to_string))
                })
                .ok_or_else(|| bridge_tests::hub::summarize(&pushes))
        }
    })
    .await
}

/// `GET {ocpi}/ocpi/2.2.1/locations/LOC1/{uid}` as the hub.
async fn get_evse(hub: &Hub, daemon: &Daemon, uid: &str) -> Value {
    let url = format!(
        "http://{}/ocpi/2.2.1/locations/LOC1/{}",
        daemon.ocpi_addr(),
        percent_encoding::utf8_percent_encode(uid, bridge_tests::daemon::URL_SEGMENT)
    );
    let r = hub.get_as_peer(&url).await;
    assert_eq!(r.ocpi_status(), Some(1000), "GET {url}: {}", r.text);
    r.data().clone()
}

async fn connect_all(daemon: &Daemon) -> Vec<Station> {
    let mut stations = Vec::new();
    for (id, version, _) in STATIONS {
        let cs = booted(daemon, id, version).await;
        assert_eq!(cs.selected_protocol(), Some(version.subprotocol()));
        stations.push(cs);
    }
    stations
}

/// A charge on `cs` (EVSE 1) with the ALWAYS token; returns our transaction id.
async fn charge(daemon: &Daemon, cs: &Station, station: &str, version: OcppVersion) -> String {
    match version {
        OcppVersion::V16 => {
            let start = cs
                .call_ok(
                    "StartTransaction",
                    v16::start(1, TOKEN, 100, &now_rfc3339()),
                )
                .await;
            let tx = start["transactionId"].as_i64().expect("transactionId");
            cs.call_ok("StopTransaction", v16::stop(tx, TOKEN, 1100, "Local"))
                .await;
        }
        OcppVersion::V201 => {
            cs.call_ok("TransactionEvent", v201::tx_started("ids-tx", TOKEN, 100.0))
                .await;
            cs.call_ok("TransactionEvent", v201::tx_ended("ids-tx", 1, 1100.0))
                .await;
        }
    }
    eventually(&format!("transaction of {station}"), PUSH_SOON, || async {
        let txs = daemon.transactions_of(station).await;
        txs.first()
            .and_then(|t| t["id"].as_str().map(str::to_string))
            .ok_or(txs)
    })
    .await
}

#[tokio::test]
async fn station_ids_with_url_characters_work_end_to_end_and_keep_their_uids() {
    let mut config = ocpi_config().free_vend(false);
    for (id, _, _) in STATIONS {
        config = config.station(id);
    }
    let (hub, mut daemon) = registered_with_hub(config).await;
    hub.put_token_ok(&ocpi::token("DE", "EMS", TOKEN, "ALWAYS"))
        .await;

    let stations = connect_all(&daemon).await;
    for ((id, version, uid), cs) in STATIONS.iter().zip(&stations) {
        cs.call_ok(
            "StatusNotification",
            status(*version, "Available", "Available"),
        )
        .await;
        assert_eq!(published_uid(&hub, id).await, *uid, "{id}");
        // The station is known under its decoded id.
        let st = daemon
            .station(id)
            .await
            .unwrap_or_else(|| panic!("{id} listed"));
        assert_eq!(st["online"], json!(true), "{st:#}");
    }
    for ((id, version, uid), cs) in STATIONS.iter().zip(&stations) {
        cs.call_ok(
            "StatusNotification",
            status(*version, "Charging", "Occupied"),
        )
        .await;
        let patch = hub.wait_status("LOC1", uid, "CHARGING").await;
        assert_eq!(
            patch.segments,
            ["NL", "BRG", "LOC1", uid],
            "{id}: {}",
            patch.path
        );
        let evse = get_evse(&hub, &daemon, uid).await;
        assert_eq!(evse["uid"], *uid, "{evse:#}");
        assert_eq!(evse["physical_reference"], format!("{id} #1"), "{evse:#}");
        assert_eq!(evse["status"], "CHARGING", "{evse:#}");
        assert_eq!(evse["capabilities"], default_capabilities(), "{evse:#}");
    }

    // A charge on a 1.6 and a 2.0.1 station: Session and CDR name the safe uid.
    for i in [0, 5] {
        let (id, version, uid) = STATIONS[i];
        let tx = charge(&daemon, &stations[i], id, version).await;
        let cdr = hub.wait_cdr(&tx, PUSH_SOON).await;
        let cdr = cdr.body.expect("CDR body");
        assert_eq!(cdr["cdr_location"]["evse_uid"], uid, "{cdr:#}");
        let session = hub
            .wait_accepted(&format!("Session PUT {tx}"), 1, PUSH_SOON, |p| {
                p.is("PUT", "sessions") && p.segments.last() == Some(&tx)
            })
            .await
            .remove(0);
        assert_eq!(session.body.as_ref().expect("body")["evse_uid"], uid);
    }
    for p in hub.pushes().iter().filter(|p| p.method != "GET") {
        assert_well_formed(p);
    }
    // Every pushed EVSE carries the default capabilities (no station sets its own).
    for p in hub.pushes().iter().filter(|p| p.is_location_put("LOC1")) {
        for e in p.body.as_ref().expect("body")["evses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(e["capabilities"], default_capabilities(), "{e:#}");
        }
    }

    // Restart on the same store: the uids stay, and pushes after it use them.
    drop(stations);
    daemon.restart().await;
    let stations = connect_all(&daemon).await;
    for ((id, version, uid), cs) in STATIONS.iter().zip(&stations) {
        let evse = get_evse(&hub, &daemon, uid).await;
        assert_eq!(evse["physical_reference"], format!("{id} #1"), "{evse:#}");
        cs.call_ok("StatusNotification", status(*version, "Faulted", "Faulted"))
            .await;
        let patch = hub.wait_status("LOC1", uid, "OUTOFORDER").await;
        assert_well_formed(&patch);
    }
    let loc = hub
        .get_as_peer(&format!(
            "http://{}/ocpi/2.2.1/locations/LOC1",
            daemon.ocpi_addr()
        ))
        .await;
    let mut uids: Vec<&str> = loc.data()["evses"]
        .as_array()
        .expect("evses")
        .iter()
        .filter_map(|e| e["uid"].as_str())
        .collect();
    uids.sort_unstable();
    let mut want: Vec<&str> = STATIONS.iter().map(|(_, _, u)| *u).collect();
    want.sort_unstable();
    assert_eq!(uids, want, "{}", loc.text);
}
