//! Credentials handshake both directions between two instances of our own server on real sockets: `hub` plays the
//! initiator (it was given our token A), `cpo` the receiver doing the callback GETs.

use ocpi::types::{AuthToken, Credentials, Location, ModuleId};
use ocpi::{PeerId, PeerStatus, RegistrationError};
use reqwest::StatusCode;

use crate::helpers::*;

async fn raw_get(url: &str, token: &str) -> (StatusCode, serde_json::Value) {
    let r = reqwest::Client::new()
        .get(url)
        .header("authorization", format!("Token {}", b64(token)))
        .send()
        .await
        .expect("send");
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn handshake_both_directions_then_rotation_and_unregistration() {
    let cpo = serve("NL", "CPO", |b| {
        *b.locations.lock().expect("lock") =
            (0..7).map(|i| location(&format!("L{i}"), ts(i))).collect();
    })
    .await;
    let hub = serve("DE", "HUB", |_| {}).await;
    let hub_id = PeerId("cpo".into());

    // hub → cpo: hub POSTs with our token A; cpo calls hub back with the token hub sent (B).
    let at_hub = hub
        .platform
        .register(hub_id.clone(), &cpo.versions_url(), AuthToken::new(TOKEN_A))
        .await
        .expect("registration");
    assert_eq!(at_hub.status, PeerStatus::Registered);
    assert!(at_hub.encode_token);
    assert_eq!(at_hub.versions_url, cpo.versions_url());
    assert_eq!(at_hub.roles[0].party_id, "CPO");
    assert!(
        at_hub
            .endpoint(&ModuleId::Locations, ocpi::types::InterfaceRole::Sender)
            .is_some()
    );

    let cpo_peers = cpo.platform.peers().all();
    assert_eq!(cpo_peers.len(), 1);
    let at_cpo = &cpo_peers[0];
    assert_eq!(at_cpo.id, PeerId("DEHUB".into()));
    assert_eq!(at_cpo.token_out, at_hub.token_in, "cpo calls hub with B");
    assert_eq!(at_cpo.token_in, at_hub.token_out, "hub calls cpo with C");
    assert_ne!(at_cpo.token_in.expose(), TOKEN_A);
    assert_eq!(at_cpo.initiated_by, ocpi::Initiator::Them);
    assert_eq!(at_hub.initiated_by, ocpi::Initiator::Us);
    assert_eq!(
        cpo.backend().recorded(|r| r.registered.clone()),
        vec![PeerId("DEHUB".into())]
    );
    assert_eq!(
        hub.backend().recorded(|r| r.registered.clone()),
        vec![hub_id.clone()]
    );
    assert!(
        hub.backend().recorded(|r| r.saved.len()) >= 2,
        "pending + registered saved"
    );

    // Token C works on functional modules; token A does not.
    let pulled: Vec<Location> = hub
        .platform
        .client()
        .fetch_paginated(&at_hub, &ModuleId::Locations, &[("limit", "3")])
        .await
        .expect("pull");
    assert_eq!(pulled.len(), 7);
    let locations_url = format!("{}/ocpi/2.2.1/locations", cpo.url);
    assert_eq!(
        raw_get(&locations_url, TOKEN_A).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A second POST with C → 405.
    let again = reqwest::Client::new()
        .post(format!("{}/ocpi/2.2.1/credentials", cpo.url))
        .header("authorization", at_hub.token_out.header_value(true))
        .json(&hub.platform.our_credentials(&at_hub.token_in))
        .send()
        .await
        .expect("send");
    assert_eq!(again.status(), StatusCode::METHOD_NOT_ALLOWED);

    // GET credentials returns our object with the caller's token.
    let (_, creds) = raw_get(
        &format!("{}/ocpi/2.2.1/credentials", cpo.url),
        at_hub.token_out.expose(),
    )
    .await;
    let creds: Credentials = serde_json::from_value(creds["data"].clone()).expect("credentials");
    assert_eq!(creds.token, at_hub.token_out);
    assert_eq!(creds.url, cpo.versions_url());

    // Rotation (hub PUTs): both tokens change, old ones are dead.
    let old_c = at_hub.token_out.clone();
    let old_b = at_hub.token_in.clone();
    let rotated = hub
        .platform
        .update_registration(&hub_id)
        .await
        .expect("rotation");
    assert_ne!(rotated.token_out, old_c);
    assert_ne!(rotated.token_in, old_b);
    assert_eq!(
        raw_get(&locations_url, old_c.expose()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = raw_get(&locations_url, rotated.token_out.expose()).await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (StatusCode::OK, Some(1000))
    );
    assert_eq!(
        raw_get(&format!("{}/ocpi/versions", hub.url), old_b.expose())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(cpo.platform.peers().all()[0].token_out, rotated.token_in);

    // Unregistration (hub DELETEs): cpo forgets the hub, the token is dead.
    hub.platform.unregister(&hub_id).await.expect("unregister");
    assert!(cpo.platform.peers().all().is_empty());
    assert!(hub.platform.peers().all().is_empty());
    assert_eq!(
        cpo.backend().recorded(|r| r.unregistered.clone()),
        vec![PeerId("DEHUB".into())]
    );
    assert_eq!(
        raw_get(&locations_url, rotated.token_out.expose()).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Now unregistered: DELETE/PUT with that token → 401 (unknown token), with token A → 405.
    let del = reqwest::Client::new()
        .delete(format!("{}/ocpi/2.2.1/credentials", cpo.url))
        .header("authorization", AuthToken::new(TOKEN_A).header_value(true))
        .send()
        .await
        .expect("send");
    assert_eq!(del.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn pending_token_is_accepted_while_our_post_is_in_flight() {
    // The receiver's callback uses B before our POST returns; if B were not accepted yet, it would answer 3001.
    let cpo = serve("NL", "CPO", |_| {}).await;
    let hub = serve("DE", "HUB", |_| {}).await;
    hub.platform
        .register(
            PeerId("cpo".into()),
            &cpo.versions_url(),
            AuthToken::new(TOKEN_A),
        )
        .await
        .expect("works");
    // Callback hits on the hub's versions endpoint were authenticated with B (else registration would have failed).
    assert_eq!(cpo.platform.peers().all().len(), 1);
}

#[tokio::test]
async fn callback_failures_map_to_3001_and_3002_and_roll_back() {
    let cpo = serve("NL", "CPO", |_| {}).await;
    let post = |url: String| {
        let cpo_url = cpo.url.clone();
        async move {
            let body = serde_json::json!({
                "token": "their-token", "url": url,
                "roles": [{"role": "EMSP", "business_details": {"name": "X"}, "party_id": "ABC", "country_code": "BE"}]
            });
            let r = reqwest::Client::new()
                .post(format!("{cpo_url}/ocpi/2.2.1/credentials"))
                .header("authorization", format!("Token {}", b64(TOKEN_A)))
                .json(&body)
                .send()
                .await
                .expect("send");
            let status = r.status().as_u16();
            let json: serde_json::Value = r.json().await.expect("json");
            (status, json["status_code"].as_i64())
        }
    };
    let dead = format!("{}/ocpi/versions", dead_url().await);
    assert_eq!(post(dead).await, (200, Some(3001)));

    let old_only = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "status_code": 1000, "timestamp": "2020-01-01T00:00:00Z",
                "data": [{"version": "2.1.1", "url": format!("{}/2.1.1", old_only.uri())}]
            })),
        )
        .mount(&old_only)
        .await;
    assert_eq!(
        post(format!("{}/versions", old_only.uri())).await,
        (200, Some(3002))
    );
    assert!(cpo.platform.peers().all().is_empty());

    // Outbound: a peer that refuses our POST → error, the pending peer is removed again.
    let hub = serve("DE", "HUB", |_| {}).await;
    let err = hub
        .platform
        .register(
            PeerId("x".into()),
            &cpo.versions_url(),
            AuthToken::new("wrong-token-a"),
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, RegistrationError::Discover(_)), "{err}");
    assert!(!err.is_retryable());
    assert!(hub.platform.peers().all().is_empty());
}

#[tokio::test]
async fn outbound_registration_falls_back_to_raw_token_on_401() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    init_tls();
    let peer = MockServer::start().await;
    let base = peer.uri();
    let envelope = |data: serde_json::Value| {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"status_code": 1000, "timestamp": "2020-01-01T00:00:00Z", "data": data}))
    };
    Mock::given(header("authorization", "Token raw-a"))
        .and(method("GET"))
        .and(path("/versions"))
        .respond_with(envelope(
            serde_json::json!([{"version": "2.2.1", "url": format!("{base}/2.2.1")}]),
        ))
        .mount(&peer)
        .await;
    Mock::given(header("authorization", "Token raw-a")).and(method("GET")).and(path("/2.2.1"))
        .respond_with(envelope(serde_json::json!({"version": "2.2.1", "endpoints": [
            {"identifier": "credentials", "role": "RECEIVER", "url": format!("{base}/2.2.1/credentials/")},
            {"identifier": "locations", "role": "RECEIVER", "url": format!("{base}/2.2.1/locations/")}]})))
        .mount(&peer).await;
    Mock::given(header("authorization", "Token raw-a")).and(method("POST")).and(path("/2.2.1/credentials/"))
        .respond_with(envelope(serde_json::json!({"token": "token-c", "url": format!("{base}/versions"),
            "roles": [{"role": "HUB", "business_details": {"name": "Hub"}, "party_id": "HUB", "country_code": "NL"}]})))
        .mount(&peer).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&peer)
        .await;

    let cpo = serve("NL", "CPO", |_| {}).await;
    let registered = cpo
        .platform
        .register(
            PeerId("hub".into()),
            &format!("{base}/versions"),
            AuthToken::new("raw-a"),
        )
        .await
        .expect("ok");
    assert!(!registered.encode_token, "peer only understood raw tokens");
    assert_eq!(registered.token_out, AuthToken::new("token-c"));

    let requests = peer.received_requests().await.expect("recorded");
    let post = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .expect("post");
    let sent: Credentials = serde_json::from_slice(&post.body).expect("credentials body");
    assert_eq!(sent.token, registered.token_in, "we sent B = our token_in");
    assert_eq!(sent.url, cpo.versions_url());
    assert_eq!(
        post.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let first_get = &requests[0];
    assert!(
        first_get.headers.get("content-type").is_none(),
        "no Content-Type without body"
    );
    assert!(
        first_get.headers.get("ocpi-from-party-id").is_none(),
        "no routing headers on versions"
    );
}
