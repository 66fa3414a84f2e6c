//! Roaming with many parties (issue 12): two eMSPs registered at once each get and see only their
//! own Sessions and CDRs (pushes, GETs, `X-Total-Count`, charging preferences), and a hub with
//! two eMSP parties behind it: routing headers on every push, open routing for an unknown token,
//! the CommandResult addressed to the party that sent the command, and one party offline (hub
//! OCPI 4001) while the other's CDRs flow, then CONNECTED → its pushes delivered exactly once
//! without an operator.

use std::time::Duration;

use bridge_tests::hub::{AuthReply, HubOptions, OcpiResponse, Push, summarize};
use bridge_tests::payloads::{ocpi, v16, v201};
use bridge_tests::{Daemon, Hub, OcppVersion, Station, TestConfig, eventually, now_rfc3339};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ocpi_support::{
    PUSH_SOON, REGISTER_SOON, active_transaction, admin_peer, booted, ocpi_config,
};

/// How long to keep watching for a duplicate push after the expected one arrived.
const QUIET: Duration = Duration::from_millis(2500);

fn config() -> TestConfig {
    ocpi_config()
        .free_vend(false)
        .session_update_interval(1)
        .authorize_timeout_ms(3000)
}

fn emsp(cc: &str, pid: &str) -> HubOptions {
    HubOptions {
        country_code: cc.into(),
        party_id: pid.into(),
        role: "EMSP".into(),
        ..HubOptions::default()
    }
}

/// Waits until the daemon registered with `hub` and the hub knows the daemon's endpoints.
async fn registered(daemon: &Daemon, hub: &Hub) {
    hub.wait_registered(REGISTER_SOON).await;
    eventually("the peer registered in /admin/peers", PUSH_SOON, || async {
        let peer = admin_peer(daemon, &hub.peer_id()).await;
        let known = hub
            .bridge_endpoints()
            .iter()
            .any(|(id, _, _)| id == "sessions");
        if peer["status"] == "registered" && known {
            Ok(())
        } else {
            Err(peer)
        }
    })
    .await;
}

/// Starts a 1.6 transaction on connector 1 and returns (OCPP id, our session id).
async fn start16(daemon: &Daemon, cs: &Station, tag: &str) -> (i64, String) {
    let r = cs
        .call_ok("StartTransaction", v16::start(1, tag, 1000, &now_rfc3339()))
        .await;
    assert_eq!(r["idTagInfo"]["status"], "Accepted", "{tag}: {r}");
    let ocpp = r["transactionId"].as_i64().expect("transactionId");
    (ocpp, active_tx(daemon, cs.id()).await)
}

/// Starts a 2.0.1 transaction on EVSE 1 and returns our session id.
async fn start201(daemon: &Daemon, cs: &Station, tx: &str, token: &str) -> String {
    let r = cs
        .call_ok("TransactionEvent", v201::tx_started(tx, token, 1000.0))
        .await;
    assert_eq!(r["idTokenInfo"]["status"], "Accepted", "{token}: {r}");
    active_tx(daemon, cs.id()).await
}

async fn active_tx(daemon: &Daemon, station: &str) -> String {
    active_transaction(daemon, station, PUSH_SOON).await["id"]
        .as_str()
        .expect("transaction id")
        .to_string()
}

/// Ids of the Session and CDR objects the hub accepted (PUT sessions, POST cdrs).
fn pushed_ids(hub: &Hub, module: &str) -> Vec<String> {
    let mut ids: Vec<String> = hub
        .accepted()
        .iter()
        .filter(|p| p.module == module && p.method != "GET")
        .filter_map(|p| match module {
            "cdrs" => p.body.as_ref()?["id"].as_str().map(str::to_owned),
            _ => p.segments.last().cloned(),
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn listed_ids(r: &OcpiResponse) -> Vec<String> {
    r.data()
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", r.text))
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect()
}

#[track_caller]
fn assert_total(r: &OcpiResponse, n: usize) {
    assert_eq!(r.ocpi_status(), Some(1000), "{}", r.text);
    assert_eq!(
        r.header("x-total-count"),
        Some(n.to_string().as_str()),
        "X-Total-Count: {}",
        r.text
    );
}

/// Accepted pushes that carry `id` (in the path or as the body's id).
fn pushes_of(hub: &Hub, id: &str) -> Vec<Push> {
    hub.accepted()
        .into_iter()
        .filter(|p| {
            p.segments.last().map(String::as_str) == Some(id)
                || p.body.as_ref().is_some_and(|b| b["id"] == id)
        })
        .collect()
}

#[tokio::test]
async fn two_emsps_each_get_and_see_only_their_own_sessions_and_cdrs() {
    let a = Hub::start_with(emsp("NL", "EMA")).await;
    let b = Hub::start_with(emsp("DE", "EMB")).await;
    let daemon = Daemon::start(
        &config()
            .ocpi_peer(&a.versions_url(), &a.token_a())
            .ocpi_peer(&b.versions_url(), &b.token_a()),
    )
    .await;
    registered(&daemon, &a).await;
    registered(&daemon, &b).await;
    a.put_token_ok(&ocpi::token("NL", "EMA", "TOKA", "ALWAYS"))
        .await;
    b.put_token_ok(&ocpi::token("DE", "EMB", "TOKB", "ALWAYS"))
        .await;
    // Neither eMSP may store a token of the other.
    let r = a
        .put_token(&ocpi::token("DE", "EMB", "STEAL", "ALWAYS"))
        .await;
    assert_ne!(r.ocpi_status(), Some(1000), "{}", r.text);

    // A charges on a 1.6 station, B on a 2.0.1 station; both stop.
    let cs1 = booted(&daemon, "CS001", OcppVersion::V16).await;
    let (ocpp_a, id_a) = start16(&daemon, &cs1, "TOKA").await;
    let cs2 = booted(&daemon, "CS201", OcppVersion::V201).await;
    let id_b = start201(&daemon, &cs2, "roam-b-1", "TOKB").await;
    cs1.call_ok("StopTransaction", v16::stop(ocpp_a, "TOKA", 6000, "Local"))
        .await;
    cs2.call_ok("TransactionEvent", v201::tx_ended("roam-b-1", 1, 4000.0))
        .await;
    a.wait_cdr(&id_a, PUSH_SOON).await;
    b.wait_cdr(&id_b, PUSH_SOON).await;
    tokio::time::sleep(QUIET).await;

    // Pushes: each eMSP got its own driver's Session and CDR and nothing of the other's.
    for (hub, own) in [(&a, &id_a), (&b, &id_b)] {
        for module in ["sessions", "cdrs"] {
            assert_eq!(
                pushed_ids(hub, module),
                [own.as_str()],
                "{module} pushed:\n{}",
                summarize(&hub.pushes())
            );
        }
    }

    // GETs: each sees only its own, and X-Total-Count counts only those.
    for (hub, own) in [(&a, &id_a), (&b, &id_b)] {
        for module in ["sessions", "cdrs"] {
            let url = hub.bridge_module_url(module);
            let r = hub.get_as_peer(&url).await;
            assert_total(&r, 1);
            assert_eq!(listed_ids(&r), [own.as_str()], "GET {module}: {}", r.text);
            // Narrowed by date: nothing updated after now.
            let later = (chrono::Utc::now() + chrono::Duration::hours(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let r = hub.get_as_peer(&format!("{url}?date_from={later}")).await;
            assert_total(&r, 0);
            assert!(listed_ids(&r).is_empty(), "{}", r.text);
        }
    }
    // A's session is COMPLETED in A's GET, with A's token.
    let r = a.get_as_peer(&a.bridge_module_url("sessions")).await;
    assert_eq!(r.data()[0]["status"], "COMPLETED", "{}", r.text);
    assert_eq!(r.data()[0]["cdr_token"]["uid"], "TOKA", "{}", r.text);

    // Charging preferences for the other eMSP's session: unknown to this caller.
    let url = format!(
        "{}/{id_b}/charging_preferences",
        a.bridge_module_url("sessions")
    );
    let r = a
        .send_to_bridge(
            Method::PUT,
            &url,
            Some(json!({"profile_type": "FAST"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
}

/// The hub in its eMSP parties' name: a command with `OCPI-from-*` of one party.
async fn command_from(hub: &Hub, kind: &str, body: &Value, cc: &str, pid: &str) -> OcpiResponse {
    let url = format!("{}/{kind}", hub.bridge_module_url("commands"));
    let token = hub.token_for_bridge().expect("hub registered");
    hub.request(
        Method::POST,
        &url,
        Some(&token),
        Some(body.to_string()),
        &[("OCPI-from-country-code", cc), ("OCPI-from-party-id", pid)],
    )
    .await
}

#[track_caller]
fn assert_routed(p: &Push, cc: &str, pid: &str) {
    let h = |n: &str| p.header(n).map(str::to_owned);
    assert_eq!(
        (
            h("ocpi-to-country-code"),
            h("ocpi-to-party-id"),
            h("ocpi-from-country-code"),
            h("ocpi-from-party-id")
        ),
        (
            Some(cc.to_owned()),
            Some(pid.to_owned()),
            Some("NL".to_owned()),
            Some("BRG".to_owned())
        ),
        "{} {}: {:?}",
        p.method,
        p.path,
        p.headers
    );
}

#[tokio::test]
async fn a_hub_with_two_parties_routes_each_push_and_holds_an_offline_party_alone() {
    let hub = Hub::start().await;
    let daemon = Daemon::start(&config().ocpi_peer(&hub.versions_url(), &hub.token_a())).await;
    registered(&daemon, &hub).await;
    hub.put_token_ok(&ocpi::token("DE", "EMA", "TOKA", "ALWAYS"))
        .await;
    hub.put_token_ok(&ocpi::token("FR", "EMB", "TOKB", "ALWAYS"))
        .await;

    // An unknown token: real-time authorization by open routing (no OCPI-to-*).
    hub.script_authorize("STRANGER1", AuthReply::allowed("ALLOWED"));
    let cs1 = booted(&daemon, "CS001", OcppVersion::V16).await;
    let r = cs1.call_ok("Authorize", v16::authorize("STRANGER1")).await;
    assert_eq!(r["idTagInfo"]["status"], "Accepted", "{r}");
    let asked = hub.authorize_requests_for("STRANGER1");
    let req = asked.first().expect("a real-time authorization request");
    assert_eq!(
        req.header("ocpi-to-country-code"),
        None,
        "{:?}",
        req.headers
    );
    assert_eq!(req.header("ocpi-to-party-id"), None, "{:?}", req.headers);
    assert_eq!(
        req.header("ocpi-from-party-id"),
        Some("BRG"),
        "{:?}",
        req.headers
    );

    // Party FR/EMB goes offline: the hub answers 4001 for everything addressed to it.
    hub.set_party_reachable("FR", "EMB", false);
    let cs2 = booted(&daemon, "CS201", OcppVersion::V201).await;
    let id_b = start201(&daemon, &cs2, "hub-b-1", "TOKB").await;
    hub.wait_received("a push to FR/EMB answered 4001", 1, PUSH_SOON, |p| {
        p.ocpi_status == Some(4001)
    })
    .await;
    cs2.call_ok("TransactionEvent", v201::tx_ended("hub-b-1", 1, 3000.0))
        .await;

    // Meanwhile DE/EMA charges and its Session and CDR flow.
    let (ocpp_a, id_a) = start16(&daemon, &cs1, "TOKA").await;
    cs1.call_ok("StopTransaction", v16::stop(ocpp_a, "TOKA", 5000, "Local"))
        .await;
    let cdr_a = hub.wait_cdr(&id_a, PUSH_SOON).await;
    assert_routed(&cdr_a, "DE", "EMA");
    assert!(
        pushes_of(&hub, &id_b).is_empty(),
        "nothing of the offline party was accepted:\n{}",
        summarize(&hub.pushes())
    );
    let attempts_while_held = hub
        .pushes()
        .iter()
        .filter(|p| p.ocpi_status == Some(4001))
        .count();
    assert!(
        attempts_while_held <= 2,
        "a held party is not retried in a loop: {attempts_while_held} attempts\n{}",
        summarize(&hub.pushes())
    );

    // The party is back: the hub reports it CONNECTED; its Session and CDR follow by
    // themselves, each exactly once, in order.
    hub.set_party_reachable("FR", "EMB", true);
    let r = hub.put_client_info("FR", "EMB", "EMSP", "CONNECTED").await;
    assert_eq!(r.ocpi_status(), Some(1000), "{}", r.text);
    let cdr_b = hub.wait_cdr(&id_b, PUSH_SOON).await;
    assert_routed(&cdr_b, "FR", "EMB");
    tokio::time::sleep(QUIET).await;
    let b_pushes = pushes_of(&hub, &id_b);
    let puts = b_pushes.iter().filter(|p| p.is("PUT", "sessions")).count();
    let cdrs = b_pushes.iter().filter(|p| p.is("POST", "cdrs")).count();
    assert_eq!(
        (puts, cdrs),
        (1, 1),
        "FR/EMB's Session PUT and CDR exactly once:\n{}",
        summarize(&hub.pushes())
    );
    let put_at = b_pushes
        .iter()
        .position(|p| p.is("PUT", "sessions"))
        .expect("PUT");
    let cdr_at = b_pushes
        .iter()
        .position(|p| p.is("POST", "cdrs"))
        .expect("CDR");
    assert!(put_at < cdr_at, "the Session before its CDR");

    // Every Session and CDR push names the token's party.
    for p in hub
        .accepted()
        .iter()
        .filter(|p| p.module == "sessions" || p.module == "cdrs")
    {
        let id = p
            .segments
            .last()
            .filter(|_| p.module == "sessions")
            .cloned()
            .or_else(|| p.body.as_ref()?["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        match id {
            i if i == id_a => assert_routed(p, "DE", "EMA"),
            i if i == id_b => assert_routed(p, "FR", "EMB"),
            other => panic!(
                "a push of an unexpected object {other}: {} {}",
                p.method, p.path
            ),
        }
    }

    // GETs through the hub: all its parties' objects, or one party's with OCPI-from-*.
    let url = hub.bridge_module_url("cdrs");
    let r = hub.get_as_peer(&url).await;
    assert_total(&r, 2);
    // Page by page (limit 1): the Link continues after the last object (a cursor), and the
    // walk lists both exactly once.
    let pages = hub.walk_pages(&format!("{url}?limit=1")).await;
    assert_eq!(pages.len(), 2, "two pages of one");
    assert!(
        pages[0].next_link().is_some_and(|l| l.contains("cursor=")),
        "{:?}",
        pages[0].next_link()
    );
    let mut walked: Vec<String> = pages.iter().flat_map(listed_ids).collect();
    walked.sort();
    let mut both = vec![id_a.clone(), id_b.clone()];
    both.sort();
    assert_eq!(walked, both);
    let r = hub.get_as_party(&url, "FR", "EMB").await;
    assert_total(&r, 1);
    assert_eq!(listed_ids(&r), [id_b.as_str()], "{}", r.text);
    let r = hub
        .get_as_party(&hub.bridge_module_url("sessions"), "DE", "EMA")
        .await;
    assert_total(&r, 1);
    assert_eq!(listed_ids(&r), [id_a.as_str()], "{}", r.text);

    // A command from DE/EMA through the hub: its result goes to DE/EMA.
    let cs3 = booted(&daemon, "CS002", OcppVersion::V16).await;
    cs3.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let evse = crate::commands::evse_uid(&hub, "CS002", 1).await;
    cs3.on(
        "RemoteStartTransaction",
        bridge_tests::Reply::Result(json!({"status": "Accepted"})),
    );
    let response_url = format!(
        "{}/START_SESSION/{}",
        hub.module_url("commands"),
        uuid::Uuid::new_v4().simple()
    );
    let token = json!({"country_code": "DE", "party_id": "EMA", "uid": "APP-EMA-1",
        "type": "APP_USER", "contract_id": "DE-EMA-C1", "issuer": "EMA", "valid": true,
        "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"});
    let body = json!({"response_url": response_url, "token": token, "location_id": "LOC1",
        "evse_uid": evse, "connector_id": "1"});
    let r = command_from(&hub, "START_SESSION", &body, "DE", "EMA").await;
    assert_eq!(r.ocpi_status(), Some(1000), "{}", r.text);
    assert_eq!(r.data()["result"], "ACCEPTED", "{}", r.text);
    let path = response_url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .expect("path");
    let result = hub
        .wait_received("the CommandResult", 1, PUSH_SOON, |p| {
            p.method == "POST" && p.path == path
        })
        .await
        .remove(0);
    assert_eq!(
        result.body.as_ref().map(|b| b["result"].clone()),
        Some(json!("ACCEPTED"))
    );
    assert_routed(&result, "DE", "EMA");
}

#[tokio::test]
async fn token_pulls_are_incremental_and_a_reconcile_removes_unlisted_tokens() {
    let old: Vec<Value> = (1..=5)
        .map(|i| ocpi::token("DE", "EMA", &format!("PULL{i}"), "ALWAYS"))
        .collect();
    let hub = Hub::start().await;
    hub.set_tokens(old.clone());
    hub.set_tokens_page_size(2);
    let daemon = Daemon::start(
        &config()
            .token_pull_interval(1)
            .token_reconcile_interval(6)
            .ocpi_peer(&hub.versions_url(), &hub.token_a()),
    )
    .await;
    registered(&daemon, &hub).await;
    let count = |n: u64| {
        let daemon = &daemon;
        async move {
            eventually(
                &format!("{n} stored tokens"),
                Duration::from_secs(20),
                || async {
                    let got = daemon.admin_get("/admin/tokens").await;
                    if got["count"] == n { Ok(()) } else { Err(got) }
                },
            )
            .await;
        }
    };
    count(5).await;

    // A token the eMSP changes now arrives by an incremental pull: `date_from` set, and the
    // answer holds only what changed.
    let mut newer = old.clone();
    let mut fresh = ocpi::token("DE", "EMA", "PULL6", "ALWAYS");
    fresh["last_updated"] = json!(now_rfc3339());
    newer.push(fresh);
    hub.set_tokens(newer.clone());
    count(6).await;
    let pulls = hub.token_pulls();
    let incremental: Vec<&Push> = pulls
        .iter()
        .filter(|p| p.query.as_deref().is_some_and(|q| q.contains("date_from=")))
        .collect();
    assert!(
        !incremental.is_empty(),
        "incremental pulls carry date_from:\n{}",
        summarize(&pulls)
    );
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    let r = cs.call_ok("Authorize", v16::authorize("PULL6")).await;
    assert_eq!(r["idTagInfo"]["status"], "Accepted", "{r}");

    // The eMSP drops PULL2: an incremental pull cannot tell, the next full reconcile removes it.
    newer.retain(|t| t["uid"] != "PULL2");
    hub.set_tokens(newer);
    count(5).await;
    let full_pulls_after_start = hub
        .token_pulls()
        .iter()
        .filter(|p| {
            p.query
                .as_deref()
                .is_none_or(|q| !q.contains("date_from=") && !q.contains("offset="))
        })
        .count();
    assert!(
        full_pulls_after_start >= 2,
        "the first pull and a reconcile are full:\n{}",
        summarize(&hub.token_pulls())
    );
    // PULL2 is no longer known: the station's Authorize goes to the eMSP in real time, while
    // a listed ALWAYS token is still decided locally.
    cs.call_ok("Authorize", v16::authorize("PULL3")).await;
    assert!(hub.authorize_requests_for("PULL3").is_empty());
    cs.call_ok("Authorize", v16::authorize("PULL2")).await;
    assert_eq!(
        hub.authorize_requests_for("PULL2").len(),
        1,
        "a removed token is unknown"
    );
}
