//! Location, tariff and EVSE status pushes to a registered hub: what is sent, when, with which
//! headers, and the OCPP → OCPI status mapping for 1.6 and 2.0.1 stations.

use std::time::{Duration, Instant};

use bridge_tests::hub::{Push, auth_value};
use bridge_tests::payloads::{v16, v201};
use bridge_tests::{Daemon, Hub, OcppVersion, Station};

use crate::ocpi_support::{PUSH_SOON, booted, daemon_with_hub, ocpi_config, versions_url};

/// Wait for a Location PUT of `loc` whose EVSE list contains all of `uids`; returns the newest.
async fn location_put_with(hub: &Hub, loc: &str, uids: &[&str]) -> Push {
    let pushes = hub
        .wait_accepted(
            &format!("PUT location {loc} with EVSEs {uids:?}"),
            1,
            PUSH_SOON,
            |p| {
                p.is_location_put(loc) && {
                    let have = p.evse_uids();
                    uids.iter().all(|u| have.iter().any(|h| h == u))
                }
            },
        )
        .await;
    pushes.last().cloned().expect("at least one")
}

/// Accepted PATCH statuses of one EVSE, in arrival order.
fn patch_statuses(hub: &Hub, loc: &str, uid: &str) -> Vec<String> {
    hub.accepted()
        .iter()
        .filter(|p| p.is_evse_patch(loc, uid))
        .map(|p| p.status().unwrap_or("<none>").to_string())
        .collect()
}

#[tokio::test]
async fn every_location_and_tariff_is_put_after_registration() {
    let config = ocpi_config().location("LOC2").location("LOC3");
    let (hub, _daemon) = daemon_with_hub(config).await;

    for loc in ["LOC1", "LOC2", "LOC3"] {
        let put = hub
            .wait_accepted(&format!("PUT location {loc}"), 1, PUSH_SOON, |p| {
                p.is_location_put(loc)
            })
            .await
            .remove(0);
        assert_eq!(put.segments[..2], ["NL", "BRG"], "{}", put.path);
        let body = put.body.as_ref().expect("Location body");
        assert_eq!(body["id"], loc, "{body:#}");
        assert_eq!(body["country_code"], "NL", "{body:#}");
        assert_eq!(body["party_id"], "BRG", "{body:#}");
        for field in [
            "address",
            "city",
            "country",
            "coordinates",
            "time_zone",
            "last_updated",
        ] {
            assert!(
                !body[field].is_null(),
                "Location {loc} lacks {field}: {body:#}"
            );
        }
        assert_eq!(body["coordinates"]["latitude"], "52.090737", "{body:#}");
        // No station reported yet: no EVSEs (an empty list or none at all).
        assert!(put.evse_uids().is_empty(), "{body:#}");
    }

    let tariff = hub
        .wait_accepted("PUT tariff T1", 1, PUSH_SOON, |p| {
            p.is("PUT", "tariffs") && p.object_path() == ["T1"]
        })
        .await
        .remove(0);
    assert_eq!(tariff.segments[..2], ["NL", "BRG"], "{}", tariff.path);
    let t = tariff.body.as_ref().expect("Tariff body");
    assert_eq!(t["id"], "T1", "{t:#}");
    assert_eq!(t["currency"], "EUR", "{t:#}");
    let pc = &t["elements"][0]["price_components"][0];
    assert_eq!(pc["type"], "ENERGY", "{t:#}");
    assert_eq!(pc["price"].as_f64(), Some(0.35), "{t:#}");
}

#[tokio::test]
async fn pushes_carry_auth_content_type_ids_and_routing_headers() {
    let (hub, _daemon) = daemon_with_hub(ocpi_config()).await;
    let put = hub
        .wait_accepted("PUT location LOC1", 1, PUSH_SOON, |p| {
            p.is_location_put("LOC1")
        })
        .await
        .remove(0);
    let token_c = hub.inbound_token().expect("token C");
    assert_eq!(
        put.header("authorization"),
        Some(auth_value(&token_c).as_str())
    );
    assert!(
        put.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        put.headers
    );
    for h in ["x-request-id", "x-correlation-id"] {
        assert!(
            put.header(h).is_some_and(|v| !v.is_empty()),
            "{h} missing: {:?}",
            put.headers
        );
    }
    assert_eq!(
        put.header("ocpi-from-country-code"),
        Some("NL"),
        "{:?}",
        put.headers
    );
    assert_eq!(
        put.header("ocpi-from-party-id"),
        Some("BRG"),
        "{:?}",
        put.headers
    );
    assert_eq!(
        put.header("ocpi-to-country-code"),
        Some("NL"),
        "{:?}",
        put.headers
    );
    assert_eq!(
        put.header("ocpi-to-party-id"),
        Some("HUB"),
        "{:?}",
        put.headers
    );
    // X-Request-ID is unique per request.
    let all = hub.accepted();
    let mut ids: Vec<&str> = all
        .iter()
        .filter_map(|p| p.header("x-request-id"))
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "X-Request-ID reused across pushes");
}

#[tokio::test]
async fn a_new_evse_triggers_a_location_put_with_it() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    hub.wait_accepted("initial PUT LOC1", 1, PUSH_SOON, |p| {
        p.is_location_put("LOC1")
    })
    .await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let put = location_put_with(&hub, "LOC1", &["CS001-1"]).await;
    let evse = put.evse("CS001-1").expect("EVSE CS001-1");
    assert_eq!(evse["status"], "AVAILABLE", "{evse:#}");
    assert_eq!(evse["evse_id"], "NL*BRG*ECS001*1", "{evse:#}");
    assert!(
        evse["connectors"].as_array().is_some_and(|c| !c.is_empty()),
        "{evse:#}"
    );
    assert!(evse["last_updated"].is_string(), "{evse:#}");

    cs.call_ok("StatusNotification", v16::status(2, "Available"))
        .await;
    let put = location_put_with(&hub, "LOC1", &["CS001-1", "CS001-2"]).await;
    assert_eq!(put.evse("CS001-2").unwrap()["evse_id"], "NL*BRG*ECS001*2");

    // The hub sees the same through a GET on our locations.
    let loc = hub
        .get_as_peer(&format!("{}/LOC1", hub.bridge_module_url("locations")))
        .await;
    assert_eq!(loc.status, 200, "{}", loc.text);
    let uids: Vec<&str> = loc.data()["evses"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["uid"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        uids.contains(&"CS001-1") && uids.contains(&"CS001-2"),
        "{}",
        loc.text
    );
}

/// Sends `status` on connector 1 and, when `expect` is `Some`, waits for that PATCH.
async fn step16(hub: &Hub, cs: &Station, status: &str, expect: Option<&str>) {
    cs.call_ok("StatusNotification", v16::status(1, status))
        .await;
    if let Some(ocpi) = expect {
        hub.wait_status("LOC1", "CS001-1", ocpi).await;
    }
}

#[tokio::test]
async fn ocpp16_status_changes_are_patched_with_the_mapped_status() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    location_put_with(&hub, "LOC1", &["CS001-1"]).await;

    step16(&hub, &cs, "Preparing", Some("CHARGING")).await;
    // Same OCPI status: no PATCH for these.
    step16(&hub, &cs, "Charging", None).await;
    step16(&hub, &cs, "SuspendedEV", None).await;
    step16(&hub, &cs, "SuspendedEVSE", None).await;
    step16(&hub, &cs, "Finishing", None).await;
    step16(&hub, &cs, "Available", Some("AVAILABLE")).await;
    step16(&hub, &cs, "Reserved", Some("RESERVED")).await;
    step16(&hub, &cs, "Unavailable", Some("INOPERATIVE")).await;
    step16(&hub, &cs, "Faulted", Some("OUTOFORDER")).await;
    step16(&hub, &cs, "Available", Some("AVAILABLE")).await;

    assert_eq!(
        patch_statuses(&hub, "LOC1", "CS001-1"),
        [
            "CHARGING",
            "AVAILABLE",
            "RESERVED",
            "INOPERATIVE",
            "OUTOFORDER",
            "AVAILABLE"
        ],
        "one PATCH per OCPI status change:\n{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
    for p in hub
        .accepted()
        .iter()
        .filter(|p| p.is_evse_patch("LOC1", "CS001-1"))
    {
        let body = p.body.as_ref().unwrap();
        assert!(
            body["last_updated"].is_string(),
            "PATCH without last_updated: {body}"
        );
        assert!(
            body.as_object()
                .unwrap()
                .keys()
                .all(|k| k == "status" || k == "last_updated"),
            "PATCH body must be {{status, last_updated}}: {body}"
        );
    }
}

#[tokio::test]
async fn ocpp16_connector_zero_faulted_puts_every_evse_out_of_order() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let cs = booted(&daemon, "CS002", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    cs.call_ok("StatusNotification", v16::status(2, "Available"))
        .await;
    location_put_with(&hub, "LOC1", &["CS002-1", "CS002-2"]).await;

    cs.call_ok(
        "StatusNotification",
        v16::status_fault(0, "GroundFailure", "station down"),
    )
    .await;
    hub.wait_status("LOC1", "CS002-1", "OUTOFORDER").await;
    hub.wait_status("LOC1", "CS002-2", "OUTOFORDER").await;
    cs.call_ok("StatusNotification", v16::status(0, "Available"))
        .await;
    hub.wait_status("LOC1", "CS002-1", "AVAILABLE").await;
    hub.wait_status("LOC1", "CS002-2", "AVAILABLE").await;
    // Connector 0 is the whole station, never an EVSE of its own.
    assert!(
        !hub.accepted()
            .iter()
            .any(|p| p.path.contains("CS002-0") || p.evse_uids().iter().any(|u| u == "CS002-0")),
        "{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
}

#[tokio::test]
async fn ocpp201_status_changes_are_patched_with_the_mapped_status() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let cs = booted(&daemon, "CS201", OcppVersion::V201).await;
    cs.call_ok("StatusNotification", v201::status(1, 1, "Available"))
        .await;
    let put = location_put_with(&hub, "LOC1", &["CS201-1"]).await;
    assert_eq!(put.evse("CS201-1").unwrap()["status"], "AVAILABLE");
    assert_eq!(put.evse("CS201-1").unwrap()["evse_id"], "NL*BRG*ECS201*1");

    for (ocpp, ocpi) in [
        ("Occupied", "CHARGING"),
        ("Available", "AVAILABLE"),
        ("Reserved", "RESERVED"),
        ("Unavailable", "INOPERATIVE"),
        ("Faulted", "OUTOFORDER"),
        ("Available", "AVAILABLE"),
    ] {
        cs.call_ok("StatusNotification", v201::status(1, 1, ocpp))
            .await;
        hub.wait_status("LOC1", "CS201-1", ocpi).await;
    }
    assert_eq!(
        patch_statuses(&hub, "LOC1", "CS201-1"),
        [
            "CHARGING",
            "AVAILABLE",
            "RESERVED",
            "INOPERATIVE",
            "OUTOFORDER",
            "AVAILABLE"
        ],
        "{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
}

#[tokio::test]
async fn offline_station_becomes_unknown_after_the_grace_and_recovers_on_reconnect() {
    let (hub, daemon) = daemon_with_hub(ocpi_config().offline_grace(2)).await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    location_put_with(&hub, "LOC1", &["CS001-1"]).await;

    cs.close().await;
    drop(cs);
    let closed = Instant::now();
    let unknown = hub.wait_status("LOC1", "CS001-1", "UNKNOWN").await;
    let after = unknown.at.duration_since(closed);
    assert!(
        after >= Duration::from_millis(1500),
        "UNKNOWN after {after:?}, before the 2 s grace"
    );

    // Back online: the real status again, without a new StatusNotification.
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("Heartbeat", serde_json::json!({})).await;
    hub.wait_status("LOC1", "CS001-1", "AVAILABLE").await;
    assert_eq!(
        patch_statuses(&hub, "LOC1", "CS001-1"),
        ["UNKNOWN", "AVAILABLE"],
        "{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
}

#[tokio::test]
async fn a_short_disconnect_within_the_grace_is_not_pushed() {
    let (hub, daemon) = daemon_with_hub(ocpi_config().offline_grace(3)).await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    location_put_with(&hub, "LOC1", &["CS001-1"]).await;
    cs.close().await;
    drop(cs);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("Heartbeat", serde_json::json!({})).await;
    // Past the grace (counted from the disconnect): still no UNKNOWN.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        patch_statuses(&hub, "LOC1", "CS001-1").is_empty(),
        "{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
}

#[tokio::test]
async fn hub_registered_with_us_also_receives_pushes() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let hub = Hub::start().await;
    hub.register_with(&versions_url(&daemon), crate::ocpi_support::TOKEN_A)
        .await;
    hub.wait_accepted(
        "PUT LOC1 to a hub that registered with us",
        1,
        PUSH_SOON,
        |p| p.is_location_put("LOC1"),
    )
    .await;
    let cs = booted(&daemon, "CS202", OcppVersion::V201).await;
    cs.call_ok("StatusNotification", v201::status(1, 1, "Available"))
        .await;
    location_put_with(&hub, "LOC1", &["CS202-1"]).await;
    cs.call_ok("StatusNotification", v201::status(1, 1, "Occupied"))
        .await;
    let p = hub.wait_status("LOC1", "CS202-1", "CHARGING").await;
    // Pushes to it use its token B.
    let token_b = hub.inbound_token().unwrap();
    assert_eq!(
        p.header("authorization"),
        Some(auth_value(&token_b).as_str())
    );
    assert!(hub.unauthorized().is_empty(), "{:#?}", hub.unauthorized());
}

#[tokio::test]
async fn a_configuration_change_puts_the_locations_again_after_restart() {
    let (hub, mut daemon) = daemon_with_hub(ocpi_config()).await;
    hub.wait_accepted("initial PUT LOC1", 1, PUSH_SOON, |p| {
        p.is_location_put("LOC1")
    })
    .await;
    // Same configuration: a restart pushes nothing new.
    daemon.restart().await;
    // Renamed location: the next start queues every Location for the registered peer.
    let mut changed = daemon.config().clone();
    changed.locations[0].name = "Depot (renamed)".into();
    std::fs::write(
        daemon.config_path(),
        changed.to_toml(&daemon.dir().join("data")),
    )
    .unwrap();
    daemon.restart().await;
    let got = hub
        .wait_accepted("PUT LOC1 with the new name", 1, PUSH_SOON, |p| {
            p.is_location_put("LOC1")
                && p.body
                    .as_ref()
                    .is_some_and(|b| b["name"] == "Depot (renamed)")
        })
        .await;
    assert_eq!(got.len(), 1);
    let puts = hub
        .accepted()
        .iter()
        .filter(|p| p.is_location_put("LOC1"))
        .count();
    assert_eq!(
        puts, 2,
        "one initial PUT, none for the unchanged restart, one for the change"
    );
}

#[tokio::test]
async fn a_station_reconnecting_without_boot_is_asked_for_its_statuses() {
    let (_hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    assert!(
        cs.wait_for_call("TriggerMessage", Duration::from_millis(500))
            .await
            .is_none(),
        "a station that just booted sends its statuses itself"
    );
    cs.close().await;
    let again = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    let trigger = again
        .wait_for_call("TriggerMessage", PUSH_SOON)
        .await
        .expect("TriggerMessage after a reconnect without BootNotification");
    assert_eq!(
        trigger["requestedMessage"], "StatusNotification",
        "{trigger}"
    );
}
