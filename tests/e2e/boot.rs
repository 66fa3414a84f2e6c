//! BootNotification, Heartbeat and StatusNotification (incl. 1.6 connector 0) as seen through
//! `/admin/stations`, for OCPP 1.6 and 2.0.1.

use bridge_tests::payloads::{v16, v201};
use bridge_tests::{Daemon, OcppVersion, Station, eventually};
use serde_json::{Value, json};

use crate::{SOON, default_config};

/// Asserts `t` is an RFC 3339 UTC timestamp (`Z`, at most millisecond precision).
fn assert_ocpp_timestamp(t: &Value, what: &str) {
    let s = t
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {t}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{what}: {s:?} is not RFC 3339: {e}"));
    assert!(s.ends_with('Z'), "{what}: {s:?} does not end in Z");
    if let Some((_, frac)) = s.trim_end_matches('Z').split_once('.') {
        assert!(
            frac.len() <= 3,
            "{what}: {s:?} has more than 3 fractional digits"
        );
    }
}

fn connector(station: &Value, evse_id: u64, connector_id: u64) -> Option<&Value> {
    station["connectors"]
        .as_array()?
        .iter()
        .find(|c| c["evse_id"] == evse_id && c["connector_id"] == connector_id)
}

#[tokio::test]
async fn healthz_reports_ok() {
    let daemon = Daemon::start(&default_config()).await;
    let health = daemon.admin_get("/healthz").await;
    assert_eq!(health["status"], "ok", "{health}");
}

#[tokio::test]
async fn ocpp16_boot_and_statuses_incl_connector_0_show_in_admin_stations() {
    let daemon = Daemon::start(&default_config().heartbeat_interval(123)).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    assert_eq!(cs.selected_protocol(), Some("ocpp1.6"));

    let boot = cs.boot().await;
    assert_eq!(
        boot["interval"], 123,
        "interval must be the configured heartbeat_interval: {boot}"
    );
    assert_ocpp_timestamp(&boot["currentTime"], "BootNotification.conf currentTime");

    for (connector_id, status) in [(0, "Available"), (1, "Available")] {
        let r = cs
            .call_ok("StatusNotification", v16::status(connector_id, status))
            .await;
        assert_eq!(r, json!({}), "StatusNotification.conf must be empty");
    }
    cs.call_ok(
        "StatusNotification",
        v16::status_fault(2, "GroundFailure", "RCD tripped"),
    )
    .await;

    let hb = cs.call_ok("Heartbeat", v16::heartbeat()).await;
    assert_ocpp_timestamp(&hb["currentTime"], "Heartbeat.conf currentTime");

    let st = eventually(
        "CS001 with 3 connectors in /admin/stations",
        SOON,
        || async {
            match daemon.station("CS001").await {
                Some(s) if s["connectors"].as_array().is_some_and(|c| c.len() >= 3) => Ok(s),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(st["online"], true, "{st:#}");
    assert_eq!(st["ocpp_version"], "1.6", "{st:#}");
    assert_eq!(st["vendor"], v16::VENDOR, "{st:#}");
    assert_eq!(st["model"], v16::MODEL, "{st:#}");
    assert_eq!(st["serial_number"], v16::SERIAL, "{st:#}");
    assert_eq!(st["firmware_version"], v16::FIRMWARE, "{st:#}");
    assert_eq!(st["meter_serial_number"], v16::METER_SERIAL, "{st:#}");
    assert!(st["last_boot"].is_string(), "last_boot: {st:#}");
    assert!(st["last_seen"].is_string(), "last_seen: {st:#}");

    let c0 = connector(&st, 0, 0)
        .unwrap_or_else(|| panic!("1.6 connector 0 must be evse 0 / connector 0: {st:#}"));
    assert_eq!(c0["status"], "Available", "{c0}");
    let c1 = connector(&st, 1, 1)
        .unwrap_or_else(|| panic!("1.6 connector 1 must be evse 1 / connector 1: {st:#}"));
    assert_eq!(c1["status"], "Available", "{c1}");
    assert!(c1["timestamp"].is_string(), "{c1}");
    let c2 = connector(&st, 2, 1)
        .unwrap_or_else(|| panic!("1.6 connector 2 must be evse 2 / connector 1: {st:#}"));
    assert_eq!(c2["status"], "Faulted", "{c2}");
    assert_eq!(c2["error_code"], "GroundFailure", "{c2}");
    assert_eq!(c2["info"], "RCD tripped", "{c2}");
}

#[tokio::test]
async fn ocpp201_boot_and_statuses_show_in_admin_stations() {
    let daemon = Daemon::start(&default_config().heartbeat_interval(77)).await;
    let cs = Station::connect_to(&daemon, "CS201", OcppVersion::V201).await;
    assert_eq!(cs.selected_protocol(), Some("ocpp2.0.1"));

    let boot = cs.boot().await;
    assert_eq!(boot["interval"], 77, "{boot}");
    assert_ocpp_timestamp(&boot["currentTime"], "BootNotificationResponse currentTime");

    let r = cs
        .call_ok("StatusNotification", v201::status(1, 1, "Available"))
        .await;
    assert_eq!(r, json!({}));
    cs.call_ok("StatusNotification", v201::status(2, 1, "Occupied"))
        .await;
    let hb = cs.call_ok("Heartbeat", v201::heartbeat()).await;
    assert_ocpp_timestamp(&hb["currentTime"], "HeartbeatResponse currentTime");

    let st = eventually(
        "CS201 with 2 connectors in /admin/stations",
        SOON,
        || async {
            match daemon.station("CS201").await {
                Some(s) if s["connectors"].as_array().is_some_and(|c| c.len() >= 2) => Ok(s),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(st["online"], true, "{st:#}");
    assert_eq!(st["ocpp_version"], "2.0.1", "{st:#}");
    assert_eq!(st["vendor"], v201::VENDOR, "{st:#}");
    assert_eq!(st["model"], v201::MODEL, "{st:#}");
    assert_eq!(st["serial_number"], v201::SERIAL, "{st:#}");
    assert_eq!(st["firmware_version"], v201::FIRMWARE, "{st:#}");
    assert!(st["last_boot"].is_string(), "{st:#}");
    assert_eq!(
        connector(&st, 1, 1).map(|c| c["status"].clone()),
        Some(json!("Available")),
        "{st:#}"
    );
    assert_eq!(
        connector(&st, 2, 1).map(|c| c["status"].clone()),
        Some(json!("Occupied")),
        "{st:#}"
    );
}

#[tokio::test]
async fn station_is_reported_offline_after_it_disconnects() {
    let daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS002", OcppVersion::V16).await;
    cs.boot().await;
    eventually("CS002 online", SOON, || async {
        match daemon.station("CS002").await {
            Some(s) if s["online"] == true => Ok(()),
            other => Err(other),
        }
    })
    .await;
    cs.close().await;
    eventually("CS002 offline", SOON, || async {
        match daemon.station("CS002").await {
            Some(s) if s["online"] == false => Ok(()),
            other => Err(other),
        }
    })
    .await;
}
