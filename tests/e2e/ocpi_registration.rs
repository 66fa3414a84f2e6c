//! OCPI credentials handshake in both directions, token rules, and that a restart never
//! registers again.

use bridge_tests::hub::auth_value;
use bridge_tests::{Daemon, Hub};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ocpi_support::{
    REGISTER_SOON, TOKEN_A, admin_peer, daemon_with_hub, ocpi_config, raw_request, versions_url,
};

/// Our CPO role as the daemon must present it.
fn assert_cpo_roles(roles: &Value) {
    let roles = roles
        .as_array()
        .unwrap_or_else(|| panic!("roles not an array: {roles}"));
    let cpo = roles
        .iter()
        .find(|r| r["role"] == "CPO")
        .unwrap_or_else(|| panic!("no CPO role: {roles:?}"));
    assert_eq!(cpo["country_code"], "NL", "{cpo}");
    assert_eq!(cpo["party_id"], "BRG", "{cpo}");
    assert!(
        cpo["business_details"]["name"].is_string(),
        "business_details.name missing: {cpo}"
    );
}

/// The hub can read our locations with `token`; token A, a wrong token and no token get 401.
async fn assert_token_rules(hub: &Hub, daemon: &Daemon) {
    let locations = hub.bridge_module_url("locations");
    let ok = hub.get_as_peer(&locations).await;
    assert_eq!(
        ok.status, 200,
        "GET locations with the peer token: {}",
        ok.text
    );
    assert_eq!(ok.ocpi_status(), Some(1000), "{}", ok.text);
    assert!(
        ok.data()
            .as_array()
            .is_some_and(|a| a.iter().any(|l| l["id"] == "LOC1")),
        "LOC1 missing: {}",
        ok.text
    );
    for (what, auth) in [
        ("token A (base64)", Some(auth_value(TOKEN_A))),
        ("token A (raw)", Some(format!("Token {TOKEN_A}"))),
        ("a wrong token", Some(auth_value("not-a-token-we-issued"))),
        ("no token", None),
    ] {
        let r = raw_request(Method::GET, &locations, auth.as_deref(), None, &[]).await;
        assert_eq!(
            r.status, 401,
            "GET locations with {what} must be 401: {}",
            r.text
        );
    }
    // Versions stay open to the peer token.
    let v = hub.get_as_peer(&versions_url(daemon)).await;
    assert_eq!(v.status, 200, "{}", v.text);
}

#[tokio::test]
async fn bridge_registers_with_a_configured_hub_and_the_hub_can_use_the_token() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;

    let posts: Vec<_> = hub
        .credentials_calls()
        .into_iter()
        .filter(|c| c.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "exactly one POST credentials: {posts:#?}");
    assert_eq!(posts[0].ocpi_status, Some(1000), "{posts:#?}");
    let body = posts[0].body.clone().expect("JSON credentials body");
    assert_eq!(
        body["url"].as_str(),
        Some(versions_url(&daemon).as_str()),
        "credentials url must be exactly our versions URL: {body}"
    );
    let token_b = body["token"].as_str().expect("token B");
    assert!(!token_b.is_empty() && token_b.len() <= 64, "{body}");
    assert!(
        token_b.chars().all(|c| ('!'..='~').contains(&c)),
        "token must be printable non-space ASCII: {token_b:?}"
    );
    assert_cpo_roles(&body["roles"]);
    // The daemon walked our versions with token A before POSTing.
    assert!(
        hub.versions_calls()
            .iter()
            .any(|c| c.token.as_deref() == Some(hub.token_a().as_str())),
        "{:?}",
        hub.versions_calls()
    );

    assert_token_rules(&hub, &daemon).await;

    let peer = admin_peer(&daemon, &hub.peer_id()).await;
    assert_eq!(peer["status"], "registered", "{peer:#}");
    assert_eq!(peer["initiated_by"], "us", "{peer:#}");
    assert_eq!(peer["version"], "2.2.1", "{peer:#}");
    assert_eq!(peer["versions_url"], hub.versions_url(), "{peer:#}");
    assert!(
        peer["endpoints"].as_array().is_some_and(|e| !e.is_empty()),
        "{peer:#}"
    );
    // The daemon pushes with the token C the hub issued: nothing was refused as 401.
    assert!(hub.unauthorized().is_empty(), "{:#?}", hub.unauthorized());
}

#[tokio::test]
async fn hub_registers_with_the_bridge_using_token_a() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let hub = Hub::start().await;
    let ours = hub.register_with(&versions_url(&daemon), TOKEN_A).await;

    assert_eq!(
        ours["url"].as_str(),
        Some(versions_url(&daemon).as_str()),
        "our credentials url must be exactly {{public_url}}/ocpi/versions: {ours}"
    );
    let token_c = ours["token"].as_str().expect("token C");
    assert_ne!(token_c, TOKEN_A, "token C must be new");
    assert_cpo_roles(&ours["roles"]);

    // Inside its POST handler the daemon called our versions back with our token B.
    let token_b = hub.inbound_token().expect("token B");
    assert!(
        hub.versions_calls()
            .iter()
            .any(|c| c.token.as_deref() == Some(token_b.as_str())),
        "no callback with token B: {:?}",
        hub.versions_calls()
    );

    assert_token_rules(&hub, &daemon).await;

    let peer = admin_peer(&daemon, &hub.party_key()).await;
    assert_eq!(peer["status"], "registered", "{peer:#}");
    assert_eq!(peer["initiated_by"], "them", "{peer:#}");
    assert_eq!(peer["versions_url"], hub.versions_url(), "{peer:#}");

    // GET credentials with C returns our credentials with C.
    let cred_url = hub.bridge_module_url("credentials");
    let got = hub.get_as_peer(&cred_url).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.data()["token"], token_c, "{}", got.text);

    // A second POST by the registered party → 405.
    let again = hub
        .request(
            Method::POST,
            &cred_url,
            Some(token_c),
            Some(json!({"token": token_b, "url": hub.versions_url(), "roles": [{"role": "HUB", "country_code": "NL", "party_id": "HUB", "business_details": {"name": "x"}}]}).to_string()),
            &[],
        )
        .await;
    assert_eq!(again.status, 405, "second POST: {}", again.text);
}

#[tokio::test]
async fn credentials_put_rotates_and_delete_unregisters() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let hub = Hub::start().await;
    hub.register_with(&versions_url(&daemon), TOKEN_A).await;
    let cred_url = hub.bridge_module_url("credentials");
    let old_c = hub.token_for_bridge().unwrap();
    let token_b = hub.inbound_token().unwrap();

    let body = json!({"token": token_b, "url": hub.versions_url(), "roles": [{"role": "HUB", "country_code": "NL", "party_id": "HUB", "business_details": {"name": "Fake hub"}}]});
    let put = hub
        .request(
            Method::PUT,
            &cred_url,
            Some(&old_c),
            Some(body.to_string()),
            &[],
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.ocpi_status(), Some(1000), "{}", put.text);
    let new_c = put.data()["token"].as_str().expect("new token").to_string();
    assert_ne!(new_c, old_c, "PUT must issue a new token");
    let locations = hub.bridge_module_url("locations");
    let stale = hub.get(&locations, Some(&old_c)).await;
    assert_eq!(stale.status, 401, "old token after PUT: {}", stale.text);
    let fresh = hub.get(&locations, Some(&new_c)).await;
    assert_eq!(fresh.status, 200, "new token after PUT: {}", fresh.text);

    let del = hub
        .request(Method::DELETE, &cred_url, Some(&new_c), None, &[])
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
    let after = hub.get(&locations, Some(&new_c)).await;
    assert_eq!(after.status, 401, "token after DELETE: {}", after.text);
    // Not registered any more: PUT/DELETE with a valid token A → 405; the token A it
    // registered with is used up → 401.
    let (status, issued) =
        crate::ocpi_support::admin_post(&daemon, "/admin/peers/token-a", None).await;
    assert_eq!(status, 200, "{issued}");
    let fresh = issued["token_a"].as_str().expect("a fresh token A");
    for m in [Method::DELETE, Method::PUT] {
        for (token, expected) in [(fresh, 405), (TOKEN_A, 401)] {
            let r = hub
                .request(
                    m.clone(),
                    &cred_url,
                    Some(token),
                    Some(body.to_string()),
                    &[],
                )
                .await;
            assert_eq!(r.status, expected, "{m} when not registered: {}", r.text);
        }
    }
}

#[tokio::test]
async fn restart_does_not_register_again() {
    let (hub, mut daemon) = daemon_with_hub(ocpi_config()).await;
    let token_b = hub.token_for_bridge().unwrap();
    daemon.restart().await;
    // The new incarnation must know the peer (and its tokens) from sled.
    let peer = admin_peer(&daemon, &hub.peer_id()).await;
    assert_eq!(peer["status"], "registered", "{peer:#}");
    // Our token B still works on the new incarnation.
    let locations = hub.bridge_module_url("locations").replace(
        &hub.bridge_versions_url()
            .unwrap()
            .replace("/ocpi/versions", ""),
        &format!("http://{}", daemon.ocpi_addr()),
    );
    let r = hub.get(&locations, Some(&token_b)).await;
    assert_eq!(
        r.status, 200,
        "token B after restart: {} ({locations})",
        r.text
    );
    // Give a re-registration every chance to happen (the first retry is 0.5 s away).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let posts = hub
        .credentials_calls()
        .into_iter()
        .filter(|c| c.method == "POST")
        .count();
    assert_eq!(posts, 1, "exactly one POST credentials across a restart");
}

#[tokio::test]
async fn bridge_retries_registration_until_the_hub_is_up() {
    let hub = Hub::start().await;
    hub.set_mode(bridge_tests::HubMode::Down);
    let daemon = Daemon::start(&ocpi_config().ocpi_peer(&hub.versions_url(), &hub.token_a())).await;
    let peer_id = hub.peer_id();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!hub.registered());
    if let Some(p) = daemon
        .admin_get("/admin/peers")
        .await
        .as_array()
        .and_then(|a| a.iter().find(|p| p["id"] == peer_id.as_str()).cloned())
    {
        assert_ne!(p["status"], "registered", "{p:#}");
    }
    hub.set_mode(bridge_tests::HubMode::Normal);
    hub.wait_registered(REGISTER_SOON).await;
    let peer = admin_peer(&daemon, &peer_id).await;
    assert_eq!(peer["status"], "registered", "{peer:#}");
}

#[tokio::test]
async fn credentials_post_with_bad_json_is_http_400() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let cred_url = crate::ocpi_support::discover_module(&daemon, TOKEN_A, "credentials").await;
    let r = raw_request(
        Method::POST,
        &cred_url,
        Some(&auth_value(TOKEN_A)),
        Some("{\"token\": \"abc\", \"url\": "),
        &[],
    )
    .await;
    assert_eq!(r.status, 400, "not JSON: {}", r.text);
}

#[tokio::test]
async fn credentials_post_with_an_unreachable_callback_is_3001() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let cred_url = crate::ocpi_support::discover_module(&daemon, TOKEN_A, "credentials").await;
    // A port nobody listens on: bind, learn the port, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let body = json!({
        "token": "some-token-b",
        "url": format!("http://{dead}/ocpi/versions"),
        "roles": [{"role": "EMSP", "country_code": "DE", "party_id": "XYZ", "business_details": {"name": "Nobody"}}],
    });
    let r = raw_request(
        Method::POST,
        &cred_url,
        Some(&auth_value(TOKEN_A)),
        Some(&body.to_string()),
        &[],
    )
    .await;
    assert_eq!(r.ocpi_status(), Some(3001), "{} {}", r.status, r.text);
    let peers = daemon.admin_get("/admin/peers").await;
    assert!(
        !peers.as_array().is_some_and(|a| a
            .iter()
            .any(|p| p["id"] == "DEXYZ" && p["status"] == "registered")),
        "a failed callback must not register: {peers:#}"
    );
}

#[tokio::test]
async fn credentials_post_never_reaches_the_bridge_itself_nor_echoes_a_reply() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let cred_url = crate::ocpi_support::discover_module(&daemon, TOKEN_A, "credentials").await;
    // Token A pointing the bridge at its own admin API, its own OCPI listener, a metadata
    // address, and a local server that answers with a secret.
    let secret = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let body = "{\"status_code\": 2000, \"status_message\": \"SECRET-INTERNAL-DATA\", \"data\": \"SECRET-INTERNAL-DATA\"}";
                let reply = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            }
        });
        addr
    };
    for url in [
        format!("http://{}/admin/peers", daemon.admin_addr()),
        format!(
            "http://localhost:{}/admin/transactions",
            daemon.admin_addr().port()
        ),
        format!("http://{}/ocpi/versions", daemon.ocpi_addr()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://{secret}/internal"),
    ] {
        let body = json!({
            "token": "some-token-b",
            "url": url,
            "roles": [{"role": "EMSP", "country_code": "DE", "party_id": "XYZ", "business_details": {"name": "Nobody"}}],
        });
        let r = raw_request(
            Method::POST,
            &cred_url,
            Some(&auth_value(TOKEN_A)),
            Some(&body.to_string()),
            &[],
        )
        .await;
        assert_eq!(
            r.ocpi_status(),
            Some(3001),
            "{url}: {} {}",
            r.status,
            r.text
        );
        for leak in [
            "SECRET-INTERNAL-DATA",
            "\"id\"",
            "registered",
            "transactions",
            "token_a",
        ] {
            assert!(
                !r.text.contains(leak),
                "{url}: the reply leaks {leak}: {}",
                r.text
            );
        }
    }
    let peers = daemon.admin_get("/admin/peers").await;
    assert!(
        !peers.as_array().is_some_and(|a| a
            .iter()
            .any(|p| p["id"] == "DEXYZ" && p["status"] == "registered")),
        "nothing registered: {peers:#}"
    );
}

#[tokio::test]
async fn credentials_with_invalid_roles_are_2001_naming_the_field_and_store_nothing() {
    let daemon = Daemon::start(&ocpi_config()).await;
    let cred_url = crate::ocpi_support::discover_module(&daemon, TOKEN_A, "credentials").await;
    let body = json!({
        "token": "some-token-b",
        "url": "http://127.0.0.1:1/ocpi/versions",
        "roles": [{"role": "EMSP", "country_code": "DE",
            "party_id": "ÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜ",
            "business_details": {"name": "Nobody"}}],
    });
    let r = raw_request(
        Method::POST,
        &cred_url,
        Some(&auth_value(TOKEN_A)),
        Some(&body.to_string()),
        &[],
    )
    .await;
    assert_eq!(r.ocpi_status(), Some(2001), "{} {}", r.status, r.text);
    assert!(r.text.contains("roles[0].party_id"), "{}", r.text);
    let peers = daemon.admin_get("/admin/peers").await;
    assert_eq!(peers.as_array().map(Vec::len), Some(0), "{peers:#}");
}

#[tokio::test]
async fn export_masks_peer_tokens_unless_asked_for_secrets() {
    let (hub, mut daemon) = crate::ocpi_support::registered_with_hub(ocpi_config()).await;
    let token = hub.token_for_bridge().expect("the hub issued a token");
    assert!(daemon.sigterm().await.success());
    let export = |secrets: bool| {
        let mut cmd = std::process::Command::new(bridge_tests::daemon::bridge_bin());
        cmd.args(["export", "--config"])
            .arg(daemon.config_path())
            .arg("--data")
            .arg(daemon.dir().join("data"));
        if secrets {
            cmd.arg("--with-secrets");
        }
        let out = cmd.output().expect("export runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let masked = export(false);
    assert!(masked.contains("\"tree\":\"peers\""), "{masked}");
    assert!(!masked.contains(&token), "a peer token in clear: {masked}");
    assert!(export(true).contains(&token));
}
