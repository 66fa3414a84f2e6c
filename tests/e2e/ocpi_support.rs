//! Shared set-up for the OCPI tests: a daemon with OCPI on port 0, the fake hub, admin helpers.

use std::time::Duration;

use bridge_tests::hub::OcpiResponse;
use bridge_tests::{Daemon, Hub, OcppVersion, Reply, Station, TestConfig, eventually};
use serde_json::{Value, json};

/// The daemon's `[ocpi] token_a` in these tests.
pub(crate) const TOKEN_A: &str = "bridge-token-a-0123456789";
/// Bound on pushes the daemon should make "right away".
pub(crate) const PUSH_SOON: Duration = Duration::from_secs(15);
/// Bound on a registration (the first attempt should succeed; retries start at 0.5 s).
pub(crate) const REGISTER_SOON: Duration = Duration::from_secs(20);

/// OCPI on port 0 with `public_url` substituted, token A, a tariff on LOC1, and four stations at
/// LOC1: CS001/CS002 (1.6), CS201/CS202 (2.0.1).
pub(crate) fn ocpi_config() -> TestConfig {
    let mut config = TestConfig::new();
    // sled's debug output drowns the daemon's own lines in failure reports.
    config.log_level = "debug,sled=info,hyper_util=info,reqwest=info".into();
    config
        .ocpi_port0()
        .ocpi_token_a(TOKEN_A)
        .tariff("T1", "EUR", 0.35)
        .location_tariff("LOC1", "T1")
        .station("CS001")
        .station("CS002")
        .station("CS201")
        .station("CS202")
}

/// The daemon's versions URL (`{public_url}/ocpi/versions` with the bound port).
pub(crate) fn versions_url(daemon: &Daemon) -> String {
    format!("http://{}/ocpi/versions", daemon.ocpi_addr())
}

/// A hub configured as `[[ocpi.peers]]` of a daemon started with `config`; waits until the daemon
/// registered with it.
pub(crate) async fn daemon_with_hub(config: TestConfig) -> (Hub, Daemon) {
    let hub = Hub::start().await;
    let daemon = Daemon::start(&config.ocpi_peer(&hub.versions_url(), &hub.token_a())).await;
    hub.wait_registered(REGISTER_SOON).await;
    (hub, daemon)
}

/// Like [`daemon_with_hub`], and waits until both sides finished the registration: the daemon
/// lists the hub as registered and the hub knows the daemon's endpoints (to push tokens).
pub(crate) async fn registered_with_hub(config: TestConfig) -> (Hub, Daemon) {
    let (hub, daemon) = daemon_with_hub(config).await;
    registered_peer(&daemon, &hub.peer_id()).await;
    eventually("daemon endpoints known to the hub", PUSH_SOON, || async {
        let eps = hub.bridge_endpoints();
        if eps.iter().any(|(id, _, _)| id == "tokens") {
            Ok(())
        } else {
            Err(eps)
        }
    })
    .await;
    (hub, daemon)
}

/// Waits for the accepted CDR POST of transaction `id`, then keeps watching for `quiet`:
/// exactly one accepted CDR carries that id. Returns its body.
pub(crate) async fn the_one_cdr(hub: &Hub, id: &str, quiet: Duration) -> Value {
    let cdr = hub.wait_cdr(id, PUSH_SOON).await;
    tokio::time::sleep(quiet).await;
    let n = hub
        .accepted()
        .iter()
        .filter(|p| p.is("POST", "cdrs") && p.body.as_ref().is_some_and(|b| b["id"] == id))
        .count();
    assert_eq!(
        n,
        1,
        "exactly one CDR for transaction {id}:\n{}",
        bridge_tests::hub::summarize(&hub.pushes())
    );
    cdr.body.expect("CDR body")
}

/// The single transaction of `station` in `/admin/transactions` (waits until it is listed).
pub(crate) async fn only_transaction(daemon: &Daemon, station: &str) -> Value {
    eventually(
        &format!("one transaction of {station}"),
        PUSH_SOON,
        || async {
            let mut txs = daemon.transactions_of(station).await;
            if txs.len() == 1 {
                Ok(txs.remove(0))
            } else {
                Err(txs)
            }
        },
    )
    .await
}

/// Connect `id`, BootNotification.
pub(crate) async fn booted(daemon: &Daemon, id: &str, version: OcppVersion) -> Station {
    let cs = Station::connect_to(daemon, id, version).await;
    cs.boot().await;
    cs
}

/// The `/admin/peers` entry with `id`, waiting (bounded) until it is listed.
pub(crate) async fn admin_peer(daemon: &Daemon, id: &str) -> Value {
    eventually(&format!("peer {id} in /admin/peers"), PUSH_SOON, || async {
        let peers = daemon.admin_get("/admin/peers").await;
        peers
            .as_array()
            .and_then(|a| a.iter().find(|p| p["id"] == id).cloned())
            .ok_or(peers)
    })
    .await
}

/// The `/admin/peers` entry with `id` once its status is `registered`, waiting (bounded): a
/// hub's own record of the registration comes before the daemon has read the hub's answer.
pub(crate) async fn registered_peer(daemon: &Daemon, id: &str) -> Value {
    eventually(&format!("peer {id} registered"), PUSH_SOON, || async {
        let peer = admin_peer(daemon, id).await;
        if peer["status"] == "registered" {
            Ok(peer)
        } else {
            Err(peer)
        }
    })
    .await
}

/// The `/admin/outbox` `peers[]` entry of `peer` (or `Null`).
pub(crate) async fn outbox_stats(daemon: &Daemon, peer: &str) -> Value {
    let ob = daemon.admin_get("/admin/outbox").await;
    ob["peers"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["peer"] == peer).cloned())
        .unwrap_or(Value::Null)
}

/// `POST http://{admin}{path}` with an optional JSON body → (status, body).
pub(crate) async fn admin_post(daemon: &Daemon, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("http client");
    let url = format!("http://{}{}", daemon.admin_addr(), path);
    let mut req = client.post(&url);
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e:#}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A plain OCPI client for requests that are not the hub's (wrong tokens, bad bodies).
pub(crate) async fn raw_request(
    method: reqwest::Method,
    url: &str,
    authorization: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> OcpiResponse {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("http client");
    let mut req = client.request(method.clone(), url);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e:#}"));
    let status = resp.status().as_u16();
    let mut headers = std::collections::BTreeMap::new();
    for (k, v) in resp.headers() {
        headers.insert(
            k.as_str().to_ascii_lowercase(),
            v.to_str().unwrap_or_default().to_string(),
        );
    }
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).ok();
    OcpiResponse {
        status,
        headers,
        text,
        body,
    }
}

/// The module URL from the daemon's version details, discovered with `token` (never hard-coded).
pub(crate) async fn discover_module(daemon: &Daemon, token: &str, module: &str) -> String {
    let auth = bridge_tests::hub::auth_value(token);
    let versions = raw_request(
        reqwest::Method::GET,
        &versions_url(daemon),
        Some(&auth),
        None,
        &[],
    )
    .await;
    assert_eq!(versions.status, 200, "GET versions: {}", versions.text);
    let detail_url = versions
        .data()
        .as_array()
        .and_then(|a| a.iter().find(|v| v["version"] == "2.2.1"))
        .and_then(|v| v["url"].as_str())
        .unwrap_or_else(|| panic!("no 2.2.1 in versions: {}", versions.text))
        .to_string();
    let details = raw_request(reqwest::Method::GET, &detail_url, Some(&auth), None, &[]).await;
    assert_eq!(details.status, 200, "GET details: {}", details.text);
    details.data()["endpoints"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["identifier"] == module))
        .and_then(|e| e["url"].as_str())
        .unwrap_or_else(|| panic!("no {module} in details: {}", details.text))
        .to_string()
}

/// The station's one active transaction (waits until it is listed, at most `within`): the
/// admin API's JSON.
pub(crate) async fn active_transaction(daemon: &Daemon, station: &str, within: Duration) -> Value {
    eventually(
        &format!("an active transaction at {station}"),
        within,
        || async {
            daemon
                .transactions_of(station)
                .await
                .into_iter()
                .find(|t| t["status"] == "active")
                .ok_or(())
        },
    )
    .await
}

/// The payloads of every CALL `action` the station received so far.
pub(crate) fn calls(cs: &Station, action: &str) -> Vec<Value> {
    cs.received_calls()
        .into_iter()
        .filter(|(a, _)| a == action)
        .map(|(_, p)| p)
        .collect()
}

/// A station's answer `{"status": s}`.
pub(crate) fn status(s: &str) -> Reply {
    Reply::Result(json!({ "status": s }))
}
