//! Issue 12, Locations and Money: what a configuration change removes reaches the peer (EVSEs
//! published once as REMOVED, a removed location no longer listed, removed tariffs DELETEd),
//! pushed EVSEs carry capabilities and per-connector data, a CDR whose price cannot be computed
//! is held (never sent with cost 0) until `cdrs reprice`, and `cdrs credit` sends a credit CDR
//! plus a new CDR — against the real binary, the fake hub over HTTP, and the real CLI.

use std::time::Duration;

use bridge_tests::hub::Push;
use bridge_tests::payloads::{ocpi, v16, v201};
use bridge_tests::{Daemon, Hub, OcppVersion, TestConfig, eventually};
use serde_json::{Value, json};

use crate::ocpi_support::{PUSH_SOON, booted, registered_with_hub};

/// The eMSP party owning the test tokens (behind the hub).
const CC: &str = "DE";
const PID: &str = "EMS";
/// How long to watch for a push that must not come.
const QUIET: Duration = Duration::from_millis(2500);

/// Rewrites the daemon's configuration file (same data dir) and restarts it.
async fn restart_with(daemon: &mut Daemon, config: &TestConfig) {
    let text = config.to_toml(&daemon.dir().join("data"));
    std::fs::write(daemon.config_path(), text).expect("rewrite config");
    daemon.restart().await;
}

/// A module URL of the daemon as the hub learnt it, with the port the current incarnation bound.
fn this_incarnation(daemon: &Daemon, hub: &Hub, module: &str) -> String {
    let url = hub.bridge_module_url(module);
    let (scheme, rest) = url.split_once("://").expect("absolute URL");
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    format!("{scheme}://{}/{path}", daemon.ocpi_addr())
}

/// Accepted pushes matching `pred`.
fn accepted(hub: &Hub, pred: impl Fn(&Push) -> bool) -> Vec<Push> {
    hub.accepted().into_iter().filter(|p| pred(p)).collect()
}

/// Runs the real CLI against the daemon's admin API; returns (success, stdout, stderr).
async fn cli(daemon: &Daemon, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(bridge_tests::daemon::bridge_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BRIDGE") {
            cmd.env_remove(key);
        }
    }
    let admin = format!("http://{}", daemon.admin_addr());
    // `--admin-url` belongs to the command (`cdrs`), before its action.
    cmd.arg(args[0])
        .args(["--admin-url", &admin])
        .args(&args[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("CLI finished in time")
        .expect("CLI ran");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

// ----- removals -----

/// LOC1 with CS001 and CS002, LOC2 with CS301, tariffs T1 (on LOC1) and T2.
fn removal_config(hub: &Hub) -> TestConfig {
    TestConfig::new()
        .ocpi_port0()
        .tariff("T1", "EUR", 0.35)
        .tariff("T2", "EUR", 0.50)
        .location_tariff("LOC1", "T1")
        .location("LOC2")
        .station("CS001")
        .station("CS002")
        .station_at("CS301", "LOC2")
        .ocpi_peer(&hub.versions_url(), &hub.token_a())
}

#[tokio::test]
async fn a_removed_station_location_and_tariff_reach_the_peer_once() {
    let hub = Hub::start().await;
    let full = removal_config(&hub);
    let mut daemon = Daemon::start(&full).await;
    hub.wait_registered(crate::ocpi_support::REGISTER_SOON)
        .await;
    for id in ["CS001", "CS002", "CS301"] {
        let cs = booted(&daemon, id, OcppVersion::V16).await;
        cs.call_ok("StatusNotification", v16::status(1, "Available"))
            .await;
    }
    for (loc, uids) in [
        ("LOC1", vec!["CS001-1", "CS002-1"]),
        ("LOC2", vec!["CS301-1"]),
    ] {
        hub.wait_accepted(&format!("PUT {loc} with {uids:?}"), 1, PUSH_SOON, |p| {
            p.is_location_put(loc) && uids.iter().all(|u| p.evse_uids().iter().any(|h| h == u))
        })
        .await;
    }
    hub.wait_accepted("PUT tariff T2", 1, PUSH_SOON, |p| {
        p.is("PUT", "tariffs") && p.object_path() == ["T2"]
    })
    .await;

    // CS002, LOC2 (with CS301) and T2 leave the configuration.
    let mut reduced = full.clone();
    reduced.stations.retain(|s| s.id == "CS001");
    reduced.locations.retain(|l| l.id == "LOC1");
    reduced.tariffs.retain(|t| t.id == "T1");
    hub.clear_pushes();
    restart_with(&mut daemon, &reduced).await;

    for (loc, uid) in [("LOC1", "CS002-1"), ("LOC2", "CS301-1")] {
        let patch = hub.wait_status(loc, uid, "REMOVED").await;
        assert_eq!(patch.segments[..2], ["NL", "BRG"], "{}", patch.path);
        assert!(
            patch
                .body
                .as_ref()
                .is_some_and(|b| !b["last_updated"].is_null()),
            "{:?}",
            patch.body
        );
    }
    let delete = hub
        .wait_accepted("DELETE tariff T2", 1, PUSH_SOON, |p| {
            p.is("DELETE", "tariffs")
        })
        .await
        .remove(0);
    assert_eq!(delete.segments, ["NL", "BRG", "T2"], "{}", delete.path);
    assert!(delete.body.is_none(), "a DELETE has no body");
    // The Location PUT after the change no longer lists the removed EVSE; LOC2 is not pushed.
    let put = hub
        .wait_accepted("PUT LOC1 after the change", 1, PUSH_SOON, |p| {
            p.is_location_put("LOC1")
        })
        .await
        .remove(0);
    assert!(
        !put.evse_uids().contains(&"CS002-1".to_string()),
        "{:?}",
        put.body
    );
    // A peer's GET no longer lists LOC2.
    let list = hub
        .get_as_peer(&this_incarnation(&daemon, &hub, "locations"))
        .await;
    let ids: Vec<&str> = list
        .data()
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    assert_eq!(ids, ["LOC1"], "{}", list.text);
    tokio::time::sleep(QUIET).await;
    assert!(
        accepted(&hub, |p| p.is_evse_patch("LOC1", "CS001-1")
            && p.status() == Some("REMOVED"))
        .is_empty(),
        "a station still configured is not removed"
    );
    assert!(
        accepted(&hub, |p| p.is("DELETE", "tariffs")
            && p.object_path() == ["T1"])
        .is_empty()
    );

    // Once: another start with the same configuration publishes no removal again.
    let before = accepted(&hub, |p| {
        p.status() == Some("REMOVED") || p.is("DELETE", "tariffs")
    })
    .len();
    assert_eq!(before, 3, "{}", bridge_tests::hub::summarize(&hub.pushes()));
    daemon.restart().await;
    tokio::time::sleep(QUIET).await;
    let after = accepted(&hub, |p| {
        p.status() == Some("REMOVED") || p.is("DELETE", "tariffs")
    })
    .len();
    assert_eq!(
        after,
        before,
        "{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
}

// ----- capabilities and connectors -----

const DC_CONNECTORS: &str = r#"power_type = "DC"
max_voltage = 920
max_amperage = 200
capabilities = ["RFID_READER", "REMOTE_START_STOP_CAPABLE", "CREDIT_CARD_PAYABLE"]
[[stations.connectors]]
standard = "IEC_62196_T2_COMBO"
format = "CABLE"
max_electric_power = 150000
[[stations.connectors]]
standard = "CHADEMO"
format = "CABLE"
max_voltage = 500
max_amperage = 125
"#;

const AC_DC_201: &str = r#"[[stations.connectors]]
standard = "IEC_62196_T2"
power_type = "AC_3_PHASE"
max_voltage = 230
max_amperage = 32
[[stations.connectors]]
standard = "IEC_62196_T2_COMBO"
format = "CABLE"
power_type = "DC"
max_voltage = 800
max_amperage = 63
"#;

#[tokio::test]
async fn pushed_evses_carry_capabilities_and_per_connector_data() {
    let config = TestConfig::new()
        .ocpi_port0()
        .station("CS001")
        .station_toml("DC1", DC_CONNECTORS)
        .station_toml("MIX201", AC_DC_201);
    let hub = Hub::start().await;
    let daemon = Daemon::start(&config.ocpi_peer(&hub.versions_url(), &hub.token_a())).await;
    hub.wait_registered(crate::ocpi_support::REGISTER_SOON)
        .await;

    let plain = booted(&daemon, "CS001", OcppVersion::V16).await;
    plain
        .call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    // 1.6: connector N is EVSE N; entry N of [[stations.connectors]] describes it.
    let dc = booted(&daemon, "DC1", OcppVersion::V16).await;
    for c in [1, 2] {
        dc.call_ok("StatusNotification", v16::status(c, "Available"))
            .await;
    }
    // 2.0.1: one EVSE with two connectors; entry N describes connector N.
    let mix = booted(&daemon, "MIX201", OcppVersion::V201).await;
    for c in [1, 2] {
        mix.call_ok("StatusNotification", v201::status(1, c, "Available"))
            .await;
    }
    let uids = ["CS001-1", "DC1-1", "DC1-2", "MIX201-1"];
    let put = hub
        .wait_accepted("PUT LOC1 with every EVSE", 1, PUSH_SOON, |p| {
            p.is_location_put("LOC1") && {
                let have = p.evse_uids();
                uids.iter().all(|u| have.iter().any(|h| h == u))
                    && p.evse("MIX201-1")
                        .and_then(|e| e["connectors"].as_array())
                        .is_some_and(|c| c.len() == 2)
            }
        })
        .await
        .pop()
        .expect("a PUT");

    let evse = |uid: &str| put.evse(uid).cloned().unwrap_or_else(|| panic!("{uid}"));
    assert_eq!(
        evse("CS001-1")["capabilities"],
        json!([
            "REMOTE_START_STOP_CAPABLE",
            "UNLOCK_CAPABLE",
            "RESERVABLE",
            "RFID_READER"
        ])
    );
    assert_eq!(
        evse("DC1-1")["capabilities"],
        json!([
            "RFID_READER",
            "REMOTE_START_STOP_CAPABLE",
            "CREDIT_CARD_PAYABLE"
        ])
    );
    let ccs = &evse("DC1-1")["connectors"][0];
    assert_eq!(ccs["id"], "1", "{ccs}");
    assert_eq!(ccs["standard"], "IEC_62196_T2_COMBO", "{ccs}");
    assert_eq!(ccs["format"], "CABLE", "{ccs}");
    assert_eq!(ccs["power_type"], "DC", "{ccs}");
    assert_eq!(ccs["max_voltage"], 920, "{ccs}");
    assert_eq!(ccs["max_amperage"], 200, "{ccs}");
    assert_eq!(ccs["max_electric_power"], 150000, "{ccs}");
    let chademo = &evse("DC1-2")["connectors"][0];
    assert_eq!(chademo["standard"], "CHADEMO", "{chademo}");
    assert_eq!(chademo["max_voltage"], 500, "{chademo}");
    assert_eq!(chademo["max_electric_power"], 62500, "{chademo}");
    let mixed = evse("MIX201-1");
    let c = mixed["connectors"].as_array().expect("connectors");
    assert_eq!(
        (
            c[0]["id"].as_str(),
            c[0]["standard"].as_str(),
            c[0]["power_type"].as_str()
        ),
        (Some("1"), Some("IEC_62196_T2"), Some("AC_3_PHASE")),
        "{mixed}"
    );
    assert_eq!(c[0]["max_electric_power"], 230 * 32 * 3, "{mixed}");
    assert_eq!(
        (
            c[1]["id"].as_str(),
            c[1]["standard"].as_str(),
            c[1]["power_type"].as_str()
        ),
        (Some("2"), Some("IEC_62196_T2_COMBO"), Some("DC")),
        "{mixed}"
    );
    // The same EVSE on a peer's GET.
    let url = format!("{}/LOC1/DC1-2", hub.bridge_module_url("locations"));
    let got = hub.get_as_peer(&url).await;
    assert_eq!(
        got.data()["connectors"][0]["standard"],
        "CHADEMO",
        "{}",
        got.text
    );
}

// ----- money -----

/// A tariff on LOC1 that cannot price today's sessions (valid only from 2099), or, `fixed`,
/// the same tariff at `price` per kWh valid now.
fn money_config(price: f64, fixed: bool) -> TestConfig {
    let mut tariff = ocpi::tariff(
        "TF",
        "EUR",
        json!([ocpi::component("ENERGY", price, 0.0, 1)]),
    );
    if !fixed {
        tariff["start_date_time"] = json!("2099-01-01T00:00:00Z");
    }
    TestConfig::new()
        .ocpi_port0()
        .free_vend(false)
        .tariff_object(tariff)
        .location_tariff("LOC1", "TF")
        .station("CS001")
}

/// Accepted CDR POSTs with `id`.
fn cdr_posts(hub: &Hub, id: &str) -> Vec<Value> {
    accepted(hub, |p| p.is("POST", "cdrs"))
        .into_iter()
        .filter_map(|p| p.body)
        .filter(|b| b["id"] == id)
        .collect()
}

#[tokio::test]
async fn an_unpriceable_cdr_is_held_then_released_credited_and_reissued() {
    let (hub, mut daemon) = registered_with_hub(money_config(0.40, false)).await;
    let with_hub = |c: TestConfig| c.ocpi_peer(&hub.versions_url(), &hub.token_a());
    hub.put_token_ok(&ocpi::token(CC, PID, "MONEY1", "ALWAYS"))
        .await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let r = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "MONEY1", 0, &bridge_tests::now_rfc3339()),
        )
        .await;
    let tx = r["transactionId"].as_i64().expect("transactionId");
    cs.call_ok("StopTransaction", v16::stop(tx, "MONEY1", 5000, "Local"))
        .await;
    let id = eventually("the session's id", PUSH_SOON, || async {
        let txs = daemon.transactions_of("CS001").await;
        txs.first()
            .and_then(|t| t["id"].as_str().map(str::to_owned))
            .ok_or(txs)
    })
    .await;

    // Held: listed with the reason, counted, not a CDR, never sent.
    let held = eventually("the CDR is held", PUSH_SOON, || async {
        let held = daemon.admin_get("/admin/cdrs/held").await;
        held.as_array()
            .and_then(|a| a.iter().find(|h| h["id"] == id.as_str()).cloned())
            .ok_or(held)
    })
    .await;
    assert!(
        held["reason"]
            .as_str()
            .is_some_and(|r| r.contains("No valid tariff")),
        "{held:#}"
    );
    let (ok, out, err) = cli(&daemon, &["cdrs", "held"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{id} HELD")), "{out}");
    let (_, metrics) = daemon.admin_get_raw("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("bridge_cdrs_held") && l.ends_with(" 1")),
        "{metrics}"
    );
    let cdrs = daemon.admin_get("/admin/cdrs").await;
    assert_eq!(cdrs, json!([]), "a held CDR is not a CDR yet");
    let (_, page) = daemon.admin_get_raw("/").await;
    assert!(
        page.contains("1 CDR(s) held"),
        "status page attention: {page}"
    );
    tokio::time::sleep(QUIET).await;
    assert!(cdr_posts(&hub, &id).is_empty(), "a held CDR is never sent");
    // Re-pricing with the same broken tariff keeps it held.
    let (ok, out, _) = cli(&daemon, &["cdrs", "reprice", &id]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("still cannot be priced"), "{out}");

    // The operator fixes the tariff (0.40/kWh) and releases the CDR: 5 kWh × 0.40 = 2.00.
    restart_with(&mut daemon, &with_hub(money_config(0.40, true))).await;
    let (ok, out, err) = cli(&daemon, &["cdrs", "reprice", &id]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("released"), "{out}");
    let released = hub.wait_cdr(&id, PUSH_SOON).await.body.expect("CDR body");
    assert_num(
        &released["total_cost"]["excl_vat"],
        2.0,
        "released total_cost",
    );
    assert_eq!(daemon.admin_get("/admin/cdrs/held").await, json!([]));

    // Later the price turns out wrong (0.50): credit it and re-issue, re-priced.
    restart_with(&mut daemon, &with_hub(money_config(0.50, true))).await;
    let (ok, out, err) = cli(&daemon, &["cdrs", "credit", &id, "--reprice"]).await;
    assert!(ok, "{out}{err}");
    let credit_id = format!("{id}-C");
    let credit = hub
        .wait_cdr(&credit_id, PUSH_SOON)
        .await
        .body
        .expect("credit body");
    assert_eq!(credit["credit"], true, "{credit:#}");
    assert_eq!(credit["credit_reference_id"], id.as_str(), "{credit:#}");
    assert_num(&credit["total_cost"]["excl_vat"], -2.0, "credit total_cost");
    assert_num(&credit["total_energy"], 5.0, "credit total_energy");
    let cdrs = daemon.admin_get("/admin/cdrs").await;
    let new_id = cdrs
        .as_array()
        .expect("CDRs")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .find(|c| *c != id && *c != credit_id)
        .expect("the re-issued CDR")
        .to_string();
    let new = hub
        .wait_cdr(&new_id, PUSH_SOON)
        .await
        .body
        .expect("new body");
    assert!(new.get("credit").is_none_or(|c| c != true), "{new:#}");
    assert!(new.get("credit_reference_id").is_none(), "{new:#}");
    assert_eq!(new["session_id"], id.as_str(), "{new:#}");
    assert_num(&new["total_cost"]["excl_vat"], 2.5, "re-priced total_cost");
    // The eMSP's GET lists the original, the credit and the new CDR (the held one only since
    // it was released).
    let listed = hub
        .get_as_peer(&this_incarnation(&daemon, &hub, "cdrs"))
        .await;
    let listed_ids: Vec<&str> = listed
        .data()
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    for x in [id.as_str(), credit_id.as_str(), new_id.as_str()] {
        assert!(listed_ids.contains(&x), "{x} not in {listed_ids:?}");
    }
    // The credit went out before the new CDR.
    let order: Vec<String> = accepted(&hub, |p| p.is("POST", "cdrs"))
        .into_iter()
        .filter_map(|p| p.body?["id"].as_str().map(str::to_owned))
        .collect();
    let pos = |x: &str| order.iter().position(|o| o == x).expect("sent");
    assert!(pos(&credit_id) < pos(&new_id), "{order:?}");

    // A CDR is credited once; a credit CDR never.
    let (ok, out, _) = cli(&daemon, &["cdrs", "credit", &id]).await;
    assert!(!ok && out.contains("already credited"), "{out}");
    let (ok, out, _) = cli(&daemon, &["cdrs", "credit", &credit_id]).await;
    assert!(!ok && out.contains("credit CDR"), "{out}");
    // Without --reprice the new CDR repeats the original's amounts.
    let (ok, out, err) = cli(&daemon, &["cdrs", "credit", &new_id]).await;
    assert!(ok, "{out}{err}");
    let second = hub
        .wait_cdr(&format!("{new_id}-C"), PUSH_SOON)
        .await
        .body
        .expect("credit body");
    assert_num(&second["total_cost"]["excl_vat"], -2.5, "second credit");
    tokio::time::sleep(QUIET).await;
    for cdr_id in [&id, &credit_id, &new_id] {
        assert_eq!(cdr_posts(&hub, cdr_id).len(), 1, "{cdr_id} sent once");
    }
    drop(cs);
}
