//! Outbound client against scripted peers (wiremock) and a closed port.

use std::time::Duration;

use ocpi::types::{Endpoint, EvseStatus, EvseUid, InterfaceRole, LocationId, ModuleId};
use ocpi::{Client, Peer, PushError, RetryReason};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn peer_at(base: &str) -> Peer {
    let mut p = peer("emsp", "in-token", "DE", "EMS");
    p.token_out = ocpi::types::AuthToken::new("out-token");
    p.endpoints = vec![
        Endpoint {
            identifier: ModuleId::Locations,
            role: InterfaceRole::Receiver,
            url: format!("{base}/ocpi/emsp/2.2.1/locations/"),
        },
        Endpoint {
            identifier: ModuleId::Tariffs,
            role: InterfaceRole::Receiver,
            url: format!("{base}/ocpi/emsp/2.2.1/tariffs"),
        },
        Endpoint {
            identifier: ModuleId::Tokens,
            role: InterfaceRole::Sender,
            url: format!("{base}/ocpi/emsp/2.2.1/tokens"),
        },
    ];
    p
}

fn client() -> Client {
    init_tls();
    Client::with_timeouts(
        &settings("http://us", "NL", "CPO"),
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .expect("client")
}

fn ocpi_answer(http: u16, code: u16) -> ResponseTemplate {
    ResponseTemplate::new(http)
        .set_body_json(serde_json::json!({"status_code": code, "status_message": "m", "timestamp": "2020-01-01T00:00:00Z"}))
}

#[tokio::test]
async fn put_location_sends_ocpi_headers_to_the_advertised_url() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/ocpi/emsp/2.2.1/locations/NL/CPO/L%201"))
        .respond_with(ocpi_answer(201, 1000).insert_header("location", "https://x/y"))
        .mount(&server)
        .await;
    let peer = peer_at(&server.uri());
    let accepted = client()
        .put_location(&peer, &location("L 1", ts(0)))
        .await
        .expect("accepted");
    assert_eq!(
        (accepted.http_status, accepted.status_code),
        (201, Some(1000))
    );
    assert_eq!(accepted.location_header.as_deref(), Some("https://x/y"));

    let reqs = server.received_requests().await.expect("recorded");
    let h = |name: &str| {
        reqs[0]
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        h("authorization"),
        Some(format!("Token {}", b64("out-token")))
    );
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    assert!(h("x-request-id").is_some_and(|v| v.len() == 36));
    assert!(h("x-correlation-id").is_some());
    assert_eq!(h("ocpi-from-country-code").as_deref(), Some("NL"));
    assert_eq!(h("ocpi-from-party-id").as_deref(), Some("CPO"));
    assert_eq!(h("ocpi-to-country-code").as_deref(), Some("DE"));
    assert_eq!(h("ocpi-to-party-id").as_deref(), Some("EMS"));
    let body: ocpi::types::Location = serde_json::from_slice(&reqs[0].body).expect("location body");
    assert_eq!(body.id, "L 1");
}

#[tokio::test]
async fn patch_evse_and_put_tariff_build_client_owned_urls() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/ocpi/emsp/2.2.1/locations/NL/CPO/L1/E1"))
        .respond_with(ocpi_answer(200, 1000))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/ocpi/emsp/2.2.1/tariffs/NL/CPO/T1"))
        .respond_with(ocpi_answer(200, 1000))
        .mount(&server)
        .await;
    let peer = peer_at(&server.uri());
    let c = client();
    c.patch_evse_status(
        &peer,
        &LocationId::new("L1"),
        &EvseUid::new("E1"),
        EvseStatus::Charging,
        ts(3),
    )
    .await
    .expect("patch");
    c.put_tariff(&peer, &tariff("T1", ts(0)))
        .await
        .expect("tariff");
    let reqs = server.received_requests().await.expect("recorded");
    let patch: serde_json::Value = serde_json::from_slice(&reqs[0].body).expect("json");
    assert_eq!(
        patch,
        serde_json::json!({"status": "CHARGING", "last_updated": ts(3).to_string()})
    );
    let put: serde_json::Value = serde_json::from_slice(&reqs[1].body).expect("json");
    assert!(put["elements"][0]["price_components"][0]["price"].is_number());
}

#[tokio::test]
async fn answers_are_classified_1000_2001_3000_500_and_refused_connection() {
    let server = MockServer::start().await;
    for (suffix, template) in [
        ("/ok", ocpi_answer(200, 1000)),
        ("/invalid", ocpi_answer(200, 2001)),
        ("/server", ocpi_answer(200, 3000)),
        (
            "/http500",
            ResponseTemplate::new(500).set_body_string("boom"),
        ),
        ("/http404", ocpi_answer(404, 2003)),
    ] {
        Mock::given(path(format!("/ocpi/emsp/2.2.1/tariffs{suffix}")))
            .respond_with(template)
            .mount(&server)
            .await;
    }
    let peer = peer_at(&server.uri());
    let c = client();
    let send = |suffix: &'static str| {
        let (c, peer) = (c.clone(), peer.clone());
        async move {
            c.send(
                &peer,
                &ModuleId::Tariffs,
                InterfaceRole::Receiver,
                reqwest::Method::GET,
                suffix,
                None::<&()>,
            )
            .await
        }
    };
    assert_eq!(send("ok").await.expect("ok").status_code, Some(1000));
    assert!(matches!(
        send("invalid").await,
        Err(PushError::Refused {
            status_code: Some(2001),
            http_status: 200,
            ..
        })
    ));
    let e = send("server").await.expect_err("3000");
    assert!(
        e.is_retryable()
            && matches!(
                e,
                PushError::Retryable(RetryReason::Ocpi { code: 3000, .. })
            )
    );
    assert!(matches!(
        send("http500").await,
        Err(PushError::Retryable(RetryReason::Http(500)))
    ));
    assert!(matches!(
        send("http404").await,
        Err(PushError::Refused {
            http_status: 404,
            status_code: Some(2003),
            ..
        })
    ));

    let dead = peer_at(&dead_url().await);
    let e = c
        .put_tariff(&dead, &tariff("T1", ts(0)))
        .await
        .expect_err("refused connection");
    assert!(
        matches!(e, PushError::Retryable(RetryReason::Network(_))),
        "{e}"
    );

    let e = c
        .send(
            &peer,
            &ModuleId::Cdrs,
            InterfaceRole::Receiver,
            reqwest::Method::POST,
            "",
            Some(&1),
        )
        .await
        .expect_err("no endpoint");
    assert!(matches!(e, PushError::NoEndpoint { .. }) && !e.is_retryable());
}

#[tokio::test]
async fn fetch_paginated_follows_links_and_stops_defensively() {
    let server = MockServer::start().await;
    let base = server.uri();
    let page = |items: serde_json::Value, link: Option<String>| {
        let mut t = ResponseTemplate::new(200)
            .insert_header("x-total-count", "5")
            .set_body_json(serde_json::json!({"status_code": 1000, "timestamp": "2020-01-01T00:00:00Z", "data": items}));
        if let Some(l) = link {
            t = t.insert_header("link", l.as_str());
        }
        t
    };
    Mock::given(path("/ocpi/emsp/2.2.1/tokens"))
        .and(wiremock::matchers::query_param("offset", "2"))
        .respond_with(page(
            serde_json::json!([3, 4]),
            Some(format!(
                "<{base}/ocpi/emsp/2.2.1/tokens?offset=4>; rel=\"next\""
            )),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/ocpi/emsp/2.2.1/tokens"))
        .and(wiremock::matchers::query_param("offset", "4"))
        // Claims more pages but the total is reached: the client must stop.
        .respond_with(page(
            serde_json::json!([5]),
            Some(format!(
                "<{base}/ocpi/emsp/2.2.1/tokens?offset=5>; rel=\"next\""
            )),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/ocpi/emsp/2.2.1/tokens"))
        .respond_with(page(
            serde_json::json!([1, 2]),
            Some(format!(
                "<{base}/ocpi/emsp/2.2.1/tokens?offset=2&date_from=x>; rel=\"next\""
            )),
        ))
        .mount(&server)
        .await;
    let peer = {
        let mut p = peer_at(&base);
        p.endpoints[2].role = InterfaceRole::Sender;
        p
    };
    let items: Vec<u32> = client()
        .fetch_paginated(&peer, &ModuleId::Tokens, &[("date_from", "x")])
        .await
        .expect("pull");
    assert_eq!(items, vec![1, 2, 3, 4, 5]);
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(3));

    // A Link to another host is refused (our token must not leak).
    let evil = MockServer::start().await;
    Mock::given(path("/ocpi/emsp/2.2.1/tokens"))
        .respond_with(page(
            serde_json::json!([1]),
            Some("<http://127.0.0.2:1/steal>; rel=\"next\"".into()),
        ))
        .mount(&evil)
        .await;
    let e = client()
        .fetch_paginated::<u32>(&peer_at(&evil.uri()), &ModuleId::Tokens, &[])
        .await
        .expect_err("other origin");
    assert!(matches!(e, PushError::InvalidUrl(_)), "{e}");
}
