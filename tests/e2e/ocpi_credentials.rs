//! The credentials lifecycle (issue 12): token A is single use, `peers token-a` issues the next
//! one (through the admin API or into a stopped daemon's store), a registered party's second
//! POST is HTTP 405, and the operator (or the schedule) rotates a peer's tokens and unregisters
//! it — against fake peers over real HTTP, driving the real CLI.

use std::time::Duration;

use bridge_tests::hub::{HubOptions, OcpiResponse, auth_value};
use bridge_tests::{Daemon, Hub, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ocpi_support::{
    PUSH_SOON, TOKEN_A, admin_peer, ocpi_config, raw_request, registered_with_hub, versions_url,
};

/// A fake peer with its own party (`{cc}{pid}`), so several can register with one daemon.
async fn party(pid: &str) -> Hub {
    Hub::start_with(HubOptions {
        party_id: pid.into(),
        role: "EMSP".into(),
        country_code: "DE".into(),
        ..HubOptions::default()
    })
    .await
}

/// Runs the CLI against the daemon's configuration with `args`; returns (success, stdout,
/// stderr). On a blocking thread, so that the fake peers on this runtime keep answering while
/// the CLI waits; bounded by the CLI's own HTTP timeout (10 s).
async fn cli(daemon: &Daemon, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(bridge_tests::daemon::bridge_bin());
    cmd.arg("--config").arg(daemon.config_path()).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("the CLI runs"))
        .await
        .expect("the CLI thread");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--admin-url` of the running daemon.
fn admin_url(daemon: &Daemon) -> String {
    format!("http://{}", daemon.admin_addr())
}

/// `peers token-a` through the running daemon: the printed token.
async fn issue_token_a(daemon: &Daemon) -> String {
    let url = admin_url(daemon);
    let (ok, out, err) = cli(daemon, &["peers", "token-a", "--admin-url", &url]).await;
    assert!(ok, "peers token-a failed: {out} {err}");
    let token = out.trim().to_owned();
    assert_eq!(token.len(), 64, "one 64-character token on stdout: {out:?}");
    assert!(
        token.chars().all(|c| ('!'..='~').contains(&c)),
        "printable ASCII: {token:?}"
    );
    assert!(err.contains("Single use"), "{err}");
    token
}

/// A 401 from the daemon's OCPI side, with an OCPI envelope.
fn assert_401_envelope(r: &OcpiResponse, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    assert!(
        r.ocpi_status().is_some() && r.body.as_ref().is_some_and(|b| b["timestamp"].is_string()),
        "{what}: the 401 must carry an OCPI envelope: {}",
        r.text
    );
}

/// `GET versions` with `token` (raw token, base64-encoded in the header).
async fn get_versions(daemon: &Daemon, token: &str) -> OcpiResponse {
    raw_request(
        Method::GET,
        &versions_url(daemon),
        Some(&auth_value(token)),
        None,
        &[],
    )
    .await
}

/// The credentials calls the daemon made to `hub` with `method`.
fn calls(hub: &Hub, method: &str) -> Vec<bridge_tests::hub::CredentialsCall> {
    hub.credentials_calls()
        .into_iter()
        .filter(|c| c.method == method)
        .collect()
}

#[tokio::test]
async fn token_a_registers_one_party_and_answers_401_afterwards() {
    let mut daemon = Daemon::start(&ocpi_config()).await;
    let first = party("EMA").await;
    first.register_with(&versions_url(&daemon), TOKEN_A).await;

    // Token A is used up: versions, version details and credentials all answer 401.
    let r = get_versions(&daemon, TOKEN_A).await;
    assert_401_envelope(&r, "GET versions with a used token A");
    let cred_url = first.bridge_module_url("credentials");
    let second = party("EMB").await;
    let body = json!({
        "token": "token-b-of-the-second-party",
        "url": second.versions_url(),
        "roles": [{"role": "EMSP", "country_code": "DE", "party_id": "EMB",
                   "business_details": {"name": "Second"}}],
    });
    let r = raw_request(
        Method::POST,
        &cred_url,
        Some(&auth_value(TOKEN_A)),
        Some(&body.to_string()),
        &[],
    )
    .await;
    assert_401_envelope(&r, "POST credentials with a used token A");
    assert!(
        second
            .try_register_with(&versions_url(&daemon), TOKEN_A)
            .await
            .is_err(),
        "a second party must not register with the same token A"
    );
    let peers = daemon.admin_get("/admin/peers").await;
    assert_eq!(
        peers.as_array().map(Vec::len),
        Some(1),
        "only the first party: {peers:#}"
    );
    // The first party's own token works; and the retirement survives a restart.
    let ok = first
        .get_as_peer(&first.bridge_module_url("locations"))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    daemon.restart().await;
    let r = get_versions(&daemon, TOKEN_A).await;
    assert_401_envelope(&r, "GET versions with a used token A after a restart");
}

#[tokio::test]
async fn peers_token_a_issues_a_fresh_single_use_token_live_and_offline() {
    let mut daemon = Daemon::start(&ocpi_config()).await;
    let first = party("EMA").await;
    first.register_with(&versions_url(&daemon), TOKEN_A).await;

    // Through the running daemon's admin API.
    let fresh = issue_token_a(&daemon).await;
    assert_ne!(fresh, TOKEN_A);
    let second = party("EMB").await;
    second.register_with(&versions_url(&daemon), &fresh).await;
    let r = get_versions(&daemon, &fresh).await;
    assert_401_envelope(&r, "GET versions with the used fresh token A");
    let third = party("EMC").await;
    assert!(
        third
            .try_register_with(&versions_url(&daemon), &fresh)
            .await
            .is_err()
    );
    // Two issued tokens differ; an unused one stays valid.
    let unused = issue_token_a(&daemon).await;
    assert_ne!(unused, fresh);
    assert_eq!(get_versions(&daemon, &unused).await.status, 200);

    // Into the store of the stopped daemon (nothing answers on the admin address).
    assert!(daemon.sigterm().await.success());
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let data = daemon.dir().join("data");
    let (ok, out, err) = cli(
        &daemon,
        &[
            "peers",
            "token-a",
            "--admin-url",
            &dead,
            "--data",
            data.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "peers token-a on a stopped daemon: {out} {err}");
    let offline = out.trim().to_owned();
    assert_eq!(offline.len(), 64, "{out:?}");
    daemon.restart().await;
    third
        .try_register_with(&versions_url(&daemon), &offline)
        .await
        .unwrap_or_else(|e| panic!("the token A issued offline must register: {e}"));
    let r = get_versions(&daemon, &offline).await;
    assert_401_envelope(&r, "the offline token A after use");
    let peers = daemon.admin_get("/admin/peers").await;
    for id in ["DEEMA", "DEEMB", "DEEMC"] {
        assert!(
            peers.as_array().is_some_and(|a| a
                .iter()
                .any(|p| p["id"] == id && p["status"] == "registered")),
            "{id} registered: {peers:#}"
        );
    }
}

#[tokio::test]
async fn a_registered_party_posting_again_gets_405_and_nothing_changes() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let hub = party("EMA").await;
    hub.register_with(&versions_url(&daemon), TOKEN_A).await;
    let token = hub.token_for_bridge().unwrap();
    let cred_url = hub.bridge_module_url("credentials");
    let fresh = issue_token_a(&daemon).await;
    let versions_before = hub.versions_calls().len();

    // Same party (by role), with a valid token A and a different token B.
    let same_party = json!({
        "token": "another-token-b",
        "url": hub.versions_url(),
        "roles": [{"role": "EMSP", "country_code": "de", "party_id": "ema",
                   "business_details": {"name": "Again"}}],
    });
    // Same credentials token, other roles.
    let same_token = json!({
        "token": hub.inbound_token().unwrap(),
        "url": hub.versions_url(),
        "roles": [{"role": "EMSP", "country_code": "DE", "party_id": "XYZ",
                   "business_details": {"name": "Disguised"}}],
    });
    for (what, body) in [("same party", same_party), ("same token", same_token)] {
        let r = raw_request(
            Method::POST,
            &cred_url,
            Some(&auth_value(&fresh)),
            Some(&body.to_string()),
            &[],
        )
        .await;
        assert_eq!(r.status, 405, "{what}: {}", r.text);
        assert!(
            r.ocpi_status().is_some(),
            "{what}: the 405 carries an envelope: {}",
            r.text
        );
    }
    // Nothing changed: no callback, the registration and its token stand, the fresh token A is
    // not used up.
    assert_eq!(
        hub.versions_calls().len(),
        versions_before,
        "a refused POST calls nobody back"
    );
    let ok = hub.get_as_peer(&hub.bridge_module_url("locations")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(hub.token_for_bridge().unwrap(), token);
    let peers = daemon.admin_get("/admin/peers").await;
    assert_eq!(peers.as_array().map(Vec::len), Some(1), "{peers:#}");
    assert_eq!(get_versions(&daemon, &fresh).await.status, 200);
}

#[tokio::test]
async fn operator_rotation_puts_a_new_token_and_refuses_the_old_one() {
    let (hub, daemon) = registered_with_hub(ocpi_config()).await;
    let peer_id = hub.peer_id();
    let old = hub
        .token_for_bridge()
        .expect("the hub holds a token for us");
    let old_ours = hub.inbound_token().expect("our token at the hub");
    let versions_before = hub.versions_calls().len();

    // The registration's own Location push is delivered first (with the old token), so that
    // the Location push counted below is the one the rotation queued.
    hub.wait_accepted("the registration's Location push", 1, PUSH_SOON, |p| {
        p.is_location_put("LOC1")
    })
    .await;
    let url = admin_url(&daemon);
    let before = std::time::Instant::now();
    let (ok, out, err) = cli(&daemon, &["peers", "rotate", &peer_id, "--admin-url", &url]).await;
    assert!(ok, "peers rotate: {out} {err}");
    assert!(out.contains("credentials rotated"), "{out}");

    let puts = calls(&hub, "PUT");
    assert_eq!(puts.len(), 1, "one credentials PUT: {puts:#?}");
    assert_eq!(puts[0].ocpi_status, Some(1000), "{puts:#?}");
    let new = puts[0].body.as_ref().unwrap()["token"]
        .as_str()
        .expect("the PUT carries a token")
        .to_owned();
    assert_ne!(new, old, "a new token for the hub");
    assert_eq!(hub.token_for_bridge().as_deref(), Some(new.as_str()));
    assert_ne!(
        hub.inbound_token().unwrap(),
        old_ours,
        "the hub answered a new token"
    );
    // Endpoints refreshed: versions and details fetched again.
    assert!(
        hub.versions_calls().len() >= versions_before + 2,
        "versions + details again: {:?}",
        hub.versions_calls()
    );

    let locations = hub.bridge_module_url("locations");
    let stale = hub.get(&locations, Some(&old)).await;
    assert_401_envelope(&stale, "the old token after the rotation");
    let fresh = hub.get(&locations, Some(&new)).await;
    assert_eq!(fresh.status, 200, "the new token: {}", fresh.text);
    let peer = admin_peer(&daemon, &peer_id).await;
    assert_eq!(peer["status"], "registered", "{peer:#}");

    // The daemon calls the hub with the hub's new token: the Locations and Tariffs queued again
    // after the credentials PUT are accepted, and every push since carries the new token.
    let again = hub
        .wait_accepted(
            "the Location queued again by the rotation",
            1,
            PUSH_SOON,
            |p| p.is_location_put("LOC1") && p.at > before,
        )
        .await;
    let ours = auth_value(&hub.inbound_token().unwrap());
    for p in again {
        assert_eq!(p.header("authorization"), Some(ours.as_str()), "{p:#?}");
    }

    // An unknown peer is an error naming it.
    let (ok, out, err) = cli(&daemon, &["peers", "rotate", "nobody", "--admin-url", &url]).await;
    assert!(!ok, "{out} {err}");
}

#[tokio::test]
async fn operator_unregistration_deletes_at_the_peer_and_forgets_it() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let hub = party("EMA").await;
    // The peer refuses pushes: its Locations and Tariffs wait, parked, in its outbox.
    hub.set_mode(bridge_tests::HubMode::Refuse);
    hub.register_with(&versions_url(&daemon), TOKEN_A).await;
    let token = hub.token_for_bridge().unwrap();
    let locations = hub.bridge_module_url("locations");
    assert_eq!(hub.get(&locations, Some(&token)).await.status, 200);
    wait_parked(&daemon, "DEEMA").await;

    let url = admin_url(&daemon);
    let (ok, out, err) = cli(
        &daemon,
        &["peers", "unregister", "DEEMA", "--admin-url", &url],
    )
    .await;
    assert!(ok, "peers unregister: {out} {err}");
    assert!(out.contains("unregistered"), "{out}");

    let deletes = calls(&hub, "DELETE");
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert_eq!(deletes[0].ocpi_status, Some(1000), "{deletes:#?}");
    assert!(!hub.registered(), "the hub saw the unregistration");

    let r = hub.get(&locations, Some(&token)).await;
    assert_401_envelope(&r, "the unregistered peer's token");
    let r = hub
        .request(
            Method::GET,
            &hub.bridge_module_url("credentials"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_401_envelope(&r, "GET credentials with the unregistered peer's token");
    let peers = daemon.admin_get("/admin/peers").await;
    assert_eq!(peers.as_array().map(Vec::len), Some(0), "{peers:#}");
    assert_eq!(parked(&daemon, "DEEMA").await, 0, "its outbox is dropped");
    // Unknown now.
    let (ok, _, _) = cli(
        &daemon,
        &["peers", "unregister", "DEEMA", "--admin-url", &url],
    )
    .await;
    assert!(!ok);
}

#[tokio::test]
async fn scheduled_rotation_rotates_every_peer_by_itself() {
    // 0.00003 days ≈ 2.6 s.
    let (hub, daemon) = registered_with_hub(ocpi_config().token_rotation_days(0.00003)).await;
    let first = hub
        .token_for_bridge()
        .expect("the hub holds a token for us");
    eventually(
        "two scheduled credentials PUTs",
        Duration::from_secs(40),
        || async {
            let puts: Vec<Option<u16>> = calls(&hub, "PUT").iter().map(|c| c.ocpi_status).collect();
            if puts.iter().filter(|s| **s == Some(1000)).count() >= 2 {
                Ok(())
            } else {
                Err(puts)
            }
        },
    )
    .await;
    let locations = hub.bridge_module_url("locations");
    let stale = hub.get(&locations, Some(&first)).await;
    assert_401_envelope(&stale, "the token from before the scheduled rotations");
    // The hub's current token works (a rotation may slip in between: retry, bounded).
    eventually("the current token is accepted", PUSH_SOON, || async {
        let current = hub.token_for_bridge().unwrap();
        let r = hub.get(&locations, Some(&current)).await;
        if r.status == 200 { Ok(()) } else { Err(r.text) }
    })
    .await;
    let peer: Value = admin_peer(&daemon, &hub.peer_id()).await;
    assert_eq!(peer["versions_url"], hub.versions_url(), "{peer:#}");
}

/// How many parked pushes the daemon holds for `peer`.
async fn parked(daemon: &Daemon, peer: &str) -> usize {
    let outbox = daemon.admin_get("/admin/outbox").await;
    outbox["parked"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|e| e["peer"] == peer).count())
}

/// Waits (bounded) until the daemon parked at least one push for `peer`.
async fn wait_parked(daemon: &Daemon, peer: &str) {
    eventually(&format!("a parked push for {peer}"), PUSH_SOON, || async {
        match parked(daemon, peer).await {
            0 => Err(daemon.admin_get("/admin/outbox").await),
            _ => Ok(()),
        }
    })
    .await;
}

#[tokio::test]
async fn a_peers_own_delete_forgets_it_and_drops_its_outbox() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let hub = party("EMA").await;
    hub.set_mode(bridge_tests::HubMode::Refuse);
    hub.register_with(&versions_url(&daemon), TOKEN_A).await;
    let token = hub.token_for_bridge().unwrap();
    wait_parked(&daemon, "DEEMA").await;

    let cred_url = hub.bridge_module_url("credentials");
    let del = hub
        .request(Method::DELETE, &cred_url, Some(&token), None, &[])
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
    assert_eq!(del.ocpi_status(), Some(1000), "{}", del.text);

    let r = hub
        .get(&hub.bridge_module_url("locations"), Some(&token))
        .await;
    assert_401_envelope(&r, "the token after the peer's DELETE");
    assert_eq!(parked(&daemon, "DEEMA").await, 0, "its outbox is dropped");
    let peers = daemon.admin_get("/admin/peers").await;
    assert_eq!(peers.as_array().map(Vec::len), Some(0), "{peers:#}");
    // Nothing more goes to it: no push arrives after the DELETE.
    let n = hub.pushes().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hub.pushes().len(), n, "pushes after the DELETE");
}

#[tokio::test]
async fn a_credentials_put_cannot_take_another_party_or_the_hub_role() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let a = party("EMA").await;
    a.register_with(&versions_url(&daemon), TOKEN_A).await;
    let b = party("EMB").await;
    let fresh = issue_token_a(&daemon).await;
    b.register_with(&versions_url(&daemon), &fresh).await;
    let cred_url = a.bridge_module_url("credentials");
    let role = |role: &str, pid: &str| {
        json!({"role": role, "country_code": "DE", "party_id": pid,
            "business_details": {"name": "x"}})
    };
    for (what, roles) in [
        (
            "another registered party",
            json!([role("EMSP", "EMA"), role("EMSP", "EMB")]),
        ),
        (
            "a new party",
            json!([role("EMSP", "EMA"), role("EMSP", "NEW")]),
        ),
        ("the HUB role", json!([role("HUB", "EMA")])),
    ] {
        let body = json!({"token": a.inbound_token().unwrap(), "url": a.versions_url(),
            "roles": roles});
        let r = a
            .send_to_bridge(Method::PUT, &cred_url, Some(body.to_string()))
            .await;
        assert_eq!(r.status, 405, "{what}: {}", r.text);
    }
    // Nothing changed: A keeps its one party and its token, B is untouched.
    let peer = admin_peer(&daemon, &a.party_key()).await;
    assert_eq!(peer["roles"].as_array().map(Vec::len), Some(1), "{peer:#}");
    let ok = a.get_as_peer(&a.bridge_module_url("locations")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let ok = b.get_as_peer(&b.bridge_module_url("locations")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // A plain update of its own credentials still works.
    let body = json!({"token": a.inbound_token().unwrap(), "url": a.versions_url(),
        "roles": [role("EMSP", "EMA")]});
    let r = a
        .send_to_bridge(Method::PUT, &cred_url, Some(body.to_string()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.ocpi_status(), Some(1000), "{}", r.text);
}
