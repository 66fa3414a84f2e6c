//! Client additions (Sessions, CDRs, real-time authorization, command results, token pull) against wiremock.

use std::time::Duration;

use ocpi::types::*;
use ocpi::{AuthorizeOutcome, Client, Peer, PushError, Recipient, RetryReason};
use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

/// A hub peer (NL/HUB) whose endpoints live on `base`: routing TO must name the token owner, not the hub.
fn hub_at(base: &str) -> Peer {
    let mut p = peer("hub", "in-token", "NL", "HUB");
    p.roles[0].role = Role::Hub;
    p.token_out = AuthToken::new("out-token");
    let ep = |identifier, role, suffix: &str| Endpoint {
        identifier,
        role,
        url: format!("{base}/ocpi/hub/2.2.1/{suffix}"),
    };
    p.endpoints = vec![
        ep(ModuleId::Sessions, InterfaceRole::Receiver, "sessions/"),
        ep(ModuleId::Cdrs, InterfaceRole::Receiver, "cdrs"),
        ep(ModuleId::Tokens, InterfaceRole::Sender, "tokens/"),
    ];
    p
}

fn client() -> Client {
    init_tls();
    Client::with_timeouts(
        &settings("http://us", "NL", "CPO"),
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .expect("client")
}

fn answer(http: u16, code: u16, data: Option<serde_json::Value>) -> ResponseTemplate {
    let mut body = json!({"status_code": code, "timestamp": "2020-01-01T00:00:00Z"});
    if let Some(d) = data {
        body["data"] = d;
    }
    ResponseTemplate::new(http).set_body_json(body)
}

fn header<'r>(r: &'r Request, name: &str) -> Option<&'r str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn post_cdr_returns_the_location_header_and_routes_to_the_token_owner() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ocpi/hub/2.2.1/cdrs"))
        .respond_with(
            answer(201, 1000, None).insert_header("location", "https://emsp.example/cdrs/77"),
        )
        .mount(&server)
        .await;
    let hub = hub_at(&server.uri());
    let location = client()
        .post_cdr(&hub, &cdr("C1", ts(0)))
        .await
        .expect("posted");
    assert_eq!(location.as_deref(), Some("https://emsp.example/cdrs/77"));
    let reqs = server.received_requests().await.expect("recorded");
    assert_eq!(header(&reqs[0], "ocpi-to-country-code"), Some("DE"));
    assert_eq!(header(&reqs[0], "ocpi-to-party-id"), Some("EMS"));
    assert_eq!(header(&reqs[0], "ocpi-from-party-id"), Some("CPO"));
    assert_eq!(header(&reqs[0], "content-type"), Some("application/json"));
    let sent: Cdr = serde_json::from_slice(&reqs[0].body).expect("cdr body");
    assert_eq!(sent, cdr("C1", ts(0)));

    let refusing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer(200, 2001, None))
        .mount(&refusing)
        .await;
    let err = client()
        .post_cdr(&hub_at(&refusing.uri()), &cdr("C1", ts(0)))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            PushError::Refused {
                status_code: Some(2001),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn put_and_patch_session_use_client_owned_urls() {
    let server = MockServer::start().await;
    Mock::given(path("/ocpi/hub/2.2.1/sessions/NL/CPO/S%201"))
        .respond_with(answer(200, 1000, None))
        .mount(&server)
        .await;
    let hub = hub_at(&server.uri());
    let c = client();
    c.put_session(&hub, &session("S 1", ts(0)))
        .await
        .expect("put");
    let patch = json!({"kwh": 15.5, "last_updated": ts(5)});
    let to = Recipient::party(&CountryCode::new("DE"), &PartyId::new("EMS"));
    c.patch_session(
        &hub,
        &CountryCode::new("NL"),
        &PartyId::new("CPO"),
        &SessionId::new("S 1"),
        &patch,
        &to,
    )
    .await
    .expect("patch");
    let no_ts = c
        .patch_session(
            &hub,
            &CountryCode::new("NL"),
            &PartyId::new("CPO"),
            &SessionId::new("S 1"),
            &json!({"kwh": 1}),
            &to,
        )
        .await
        .expect_err("needs last_updated");
    assert!(matches!(no_ts, PushError::Serialize(_)), "{no_ts}");

    let reqs = server.received_requests().await.expect("recorded");
    assert_eq!(reqs.len(), 2, "the refused patch was never sent");
    assert_eq!(reqs[0].method.as_str(), "PUT");
    assert_eq!(header(&reqs[0], "ocpi-to-party-id"), Some("EMS"));
    let put: Session = serde_json::from_slice(&reqs[0].body).expect("session");
    assert_eq!(put.id.as_str(), "S 1");
    assert_eq!(reqs[1].method.as_str(), "PATCH");
    assert_eq!(header(&reqs[1], "ocpi-to-country-code"), Some("DE"));
    let sent: serde_json::Value = serde_json::from_slice(&reqs[1].body).expect("json");
    assert_eq!(sent["kwh"], json!(15.5));
}

fn authorization_info() -> serde_json::Value {
    json!({"allowed": "ALLOWED", "token": token_json("RFID1", "RFID"),
        "location": {"location_id": "Loc-1", "evse_uids": ["Loc-1-E1"]}, "authorization_reference": "ref-9"})
}

#[tokio::test]
async fn authorize_maps_1000_404_2004_2002_and_timeout() {
    let server = MockServer::start().await;
    let refs = LocationReferences {
        location_id: LocationId::new("Loc-1"),
        evse_uids: Some(vec![EvseUid::new("Loc-1-E1")]),
    };
    Mock::given(method("POST"))
        .and(path("/ocpi/hub/2.2.1/tokens/RFID1/authorize"))
        .and(query_param("type", "RFID"))
        .and(body_json(
            json!({"location_id": "Loc-1", "evse_uids": ["Loc-1-E1"]}),
        ))
        .respond_with(answer(200, 1000, Some(authorization_info())))
        .mount(&server)
        .await;
    Mock::given(path("/ocpi/hub/2.2.1/tokens/UNKNOWN404/authorize"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/ocpi/hub/2.2.1/tokens/UNKNOWN2004/authorize"))
        .respond_with(answer(200, 2004, None))
        .mount(&server)
        .await;
    Mock::given(path("/ocpi/hub/2.2.1/tokens/VAGUE/authorize"))
        .respond_with(answer(200, 2002, None))
        .mount(&server)
        .await;
    Mock::given(path("/ocpi/hub/2.2.1/tokens/SLOW/authorize"))
        .respond_with(
            answer(200, 1000, Some(authorization_info())).set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let hub = hub_at(&server.uri());
    let c = client();
    let auth = |uid: &'static str, refs: Option<LocationReferences>, timeout_ms: u64| {
        let c = c.clone();
        let hub = hub.clone();
        async move {
            c.authorize_token(
                &hub,
                &TokenUid::new(uid),
                &TokenType::Rfid,
                refs.as_ref(),
                Duration::from_millis(timeout_ms),
                &Recipient::party(&CountryCode::new("DE"), &PartyId::new("EMS")),
            )
            .await
        }
    };
    match auth("RFID1", Some(refs.clone()), 2000).await {
        Ok(AuthorizeOutcome::Authorized(info)) => {
            assert_eq!(info.allowed, AllowedType::Allowed);
            assert_eq!(info.authorization_reference.as_deref(), Some("ref-9"));
            assert_eq!(info.token.uid.as_str(), "RFID1");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        auth("UNKNOWN404", None, 2000).await.expect("answer"),
        AuthorizeOutcome::UnknownToken
    );
    assert_eq!(
        auth("UNKNOWN2004", None, 2000).await.expect("answer"),
        AuthorizeOutcome::UnknownToken
    );
    assert_eq!(
        auth("VAGUE", None, 2000).await.expect("answer"),
        AuthorizeOutcome::NotEnoughInformation
    );
    let slow = auth("SLOW", None, 200).await.expect_err("times out");
    assert!(
        matches!(slow, PushError::Retryable(RetryReason::Timeout)),
        "{slow}"
    );

    let reqs = server.received_requests().await.expect("recorded");
    let without_body = reqs
        .iter()
        .find(|r| r.url.path().contains("UNKNOWN404"))
        .expect("sent");
    assert!(without_body.body.is_empty());
    assert_eq!(header(without_body, "content-type"), None);
    assert_eq!(without_body.url.query(), Some("type=RFID"));
}

#[tokio::test]
async fn post_command_result_sends_a_bare_json_body_to_the_response_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emsp/commands/START_SESSION/abc"))
        .respond_with(answer(200, 1000, None))
        .mount(&server)
        .await;
    let hub = hub_at("http://127.0.0.1:9");
    let url = format!("{}/emsp/commands/START_SESSION/abc", server.uri());
    let mut result = CommandResult::new(CommandResultType::EvseOccupied);
    result.message = Some(vec![DisplayText {
        language: "en".into(),
        text: "busy".into(),
    }]);
    let to = Recipient::party(&CountryCode::new("DE"), &PartyId::new("EMS"));
    client()
        .post_command_result(&hub, &url, &result, &to)
        .await
        .expect("posted");
    let reqs = server.received_requests().await.expect("recorded");
    assert_eq!(header(&reqs[0], "content-type"), Some("application/json"));
    assert_eq!(
        header(&reqs[0], "authorization"),
        Some(format!("Token {}", b64("out-token")).as_str())
    );
    assert_eq!(header(&reqs[0], "ocpi-to-party-id"), Some("EMS"));
    let body: serde_json::Value = serde_json::from_slice(&reqs[0].body).expect("json");
    assert_eq!(
        body,
        json!({"result": "EVSE_OCCUPIED", "message": [{"language": "en", "text": "busy"}]}),
        "no envelope"
    );

    for bad in ["ftp://emsp.example/x", "/relative", "not a url"] {
        let err = client()
            .post_command_result(&hub, bad, &result, &Recipient::Open)
            .await
            .expect_err("refused");
        assert!(matches!(err, PushError::InvalidUrl(_)), "{bad}: {err}");
    }
}

#[tokio::test]
async fn fetch_tokens_pulls_pages_and_skips_broken_entries() {
    let server = MockServer::start().await;
    let mut broken = token_json("BROKEN", "RFID");
    if let Some(o) = broken.as_object_mut() {
        o.remove("whitelist");
    }
    let next = format!("{}/ocpi/hub/2.2.1/tokens/?offset=2&limit=2", server.uri());
    Mock::given(path("/ocpi/hub/2.2.1/tokens/"))
        .and(query_param("offset", "2"))
        .respond_with(
            answer(200, 1000, Some(json!([token_json("T3", "APP_USER")])))
                .insert_header("x-total-count", "3"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/ocpi/hub/2.2.1/tokens/"))
        .and(query_param("date_from", "2020-09-13T12:26:40Z"))
        .respond_with(
            answer(200, 1000, Some(json!([token_json("T1", "RFID"), broken])))
                .insert_header("x-total-count", "3")
                .insert_header("link", format!("<{next}>; rel=\"next\"").as_str()),
        )
        .mount(&server)
        .await;
    let tokens = client()
        .fetch_tokens(&hub_at(&server.uri()), Some(ts(0)), None)
        .await
        .expect("pulled");
    let uids: Vec<_> = tokens.iter().map(|t| t.uid.as_str()).collect();
    assert_eq!(uids, ["T1", "T3"]);
    assert_eq!(tokens[1].kind, TokenType::AppUser);
}
