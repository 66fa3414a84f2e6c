//! The OCPI server over real HTTP: envelope, auth, headers, module endpoints.

use axum::body::Body;
use axum::http::Request;

use crate::helpers::*;

#[tokio::test]
async fn missing_or_unknown_token_is_401_with_request_id_echo() {
    let (app, _) = app_with_peer(vec![]);
    let no_auth = call(&app, get("/ocpi/versions", None)).await;
    assert_eq!(no_auth.status, 401);
    assert!(
        no_auth.header("x-request-id").is_some(),
        "minted even on 401"
    );
    let unknown = call(&app, get("/ocpi/2.2.1/locations", Some("Token nope"))).await;
    assert_eq!(unknown.status, 401);
    let wrong_scheme = call(
        &app,
        get("/ocpi/versions", Some(&format!("Bearer {TOKEN_A}"))),
    )
    .await;
    assert_eq!(wrong_scheme.status, 401);
}

#[tokio::test]
async fn token_a_opens_versions_and_credentials_only() {
    let (app, _) = app_with_peer(vec![]);
    let auth = format!("Token {}", b64(TOKEN_A));
    let versions = call(&app, get("/ocpi/versions", Some(&auth))).await;
    assert_eq!(versions.status, 200);
    // Every version we serve, highest first.
    let listed: Vec<(String, String)> = versions.json["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap_or("").to_owned(),
                v["url"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        ["2.3.0", "2.2.1", "2.1.1"]
            .map(|v| (v.to_owned(), format!("https://cpo.example.com/ocpi/{v}")))
            .to_vec()
    );
    // 2.1.1 details: endpoints without role, no hubclientinfo.
    let old = call(&app, get("/ocpi/2.1.1", Some(&auth))).await;
    assert_eq!(old.json["data"]["version"], "2.1.1");
    let old_endpoints = old.json["data"]["endpoints"].as_array().expect("endpoints");
    assert!(!old_endpoints.is_empty());
    assert!(old_endpoints.iter().all(|e| {
        e.get("role").is_none()
            && e["identifier"] != "hubclientinfo"
            && e["url"]
                .as_str()
                .is_some_and(|u| u.contains("/ocpi/2.1.1/"))
    }));
    assert!(
        versions.header("ocpi-from-country-code").is_none(),
        "no routing headers on versions"
    );
    let details = call(&app, get("/ocpi/2.2.1", Some(&auth))).await;
    assert_eq!(details.code(), 1000);
    let endpoints = details.json["data"]["endpoints"]
        .as_array()
        .expect("endpoints")
        .clone();
    let ids: Vec<_> = endpoints
        .iter()
        .map(|e| (e["identifier"].as_str(), e["role"].as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (Some("credentials"), Some("SENDER")),
            (Some("locations"), Some("SENDER")),
            (Some("tariffs"), Some("SENDER")),
            (Some("sessions"), Some("SENDER")),
            (Some("cdrs"), Some("SENDER")),
            (Some("tokens"), Some("RECEIVER")),
            (Some("commands"), Some("RECEIVER")),
            (Some("chargingprofiles"), Some("RECEIVER")),
            (Some("hubclientinfo"), Some("RECEIVER")),
        ]
    );
    assert_eq!(
        endpoints[1]["url"],
        "https://cpo.example.com/ocpi/2.2.1/locations"
    );
    for path in [
        "/ocpi/2.2.1/locations",
        "/ocpi/2.2.1/tariffs",
        "/ocpi/2.2.1/locations/L1",
        "/ocpi/2.2.1/sessions",
        "/ocpi/2.2.1/cdrs",
        "/ocpi/2.2.1/tokens/DE/EMS/123",
    ] {
        assert_eq!(
            call(&app, get(path, Some(&auth))).await.status,
            401,
            "{path}"
        );
    }
}

#[tokio::test]
async fn raw_base64_and_newline_terminated_tokens_are_accepted() {
    let (app, _) = app_with_peer(vec![]);
    for auth in [
        "Token peer-token".to_owned(),
        format!("Token {}", b64("peer-token")),
        format!("Token {}", b64("peer-token\n")),
    ] {
        let a = call(&app, get("/ocpi/2.2.1/locations", Some(&auth))).await;
        assert_eq!(a.status, 200, "{auth}");
        assert_eq!(a.code(), 1000);
    }
}

#[tokio::test]
async fn request_and_correlation_ids_are_echoed_and_routing_headers_set() {
    let (app, _) = app_with_peer(vec![]);
    let req = Request::get("/ocpi/2.2.1/locations")
        .header("authorization", "Token peer-token")
        .header("x-request-id", "req-1")
        .header("x-correlation-id", "corr-1")
        .body(Body::empty())
        .expect("request");
    let a = call(&app, req).await;
    assert_eq!(a.header("x-request-id"), Some("req-1"));
    assert_eq!(a.header("x-correlation-id"), Some("corr-1"));
    assert_eq!(a.header("ocpi-from-country-code"), Some("NL"));
    assert_eq!(a.header("ocpi-from-party-id"), Some("CPO"));
    assert_eq!(
        a.header("ocpi-to-country-code"),
        Some("DE"),
        "peer's party when no from headers"
    );
    assert_eq!(a.header("ocpi-to-party-id"), Some("EMS"));

    let via_hub = Request::get("/ocpi/2.2.1/tariffs")
        .header("authorization", "Token peer-token")
        .header("ocpi-from-country-code", "FR")
        .header("ocpi-from-party-id", "XYZ")
        .body(Body::empty())
        .expect("request");
    let a = call(&app, via_hub).await;
    assert_eq!(
        a.header("ocpi-to-country-code"),
        Some("FR"),
        "requester's from headers win"
    );
    assert_eq!(a.header("ocpi-to-party-id"), Some("XYZ"));
    assert!(
        a.header("x-request-id").is_some_and(|v| !v.is_empty()),
        "minted when absent"
    );
}

#[tokio::test]
async fn location_evse_connector_lookup_is_case_insensitive_and_404s() {
    let (app, _) = app_with_peer(vec![location("Loc-1", ts(1))]);
    let auth = Some("Token peer-token");
    let loc = call(&app, get("/ocpi/2.2.1/locations/LOC-1", auth)).await;
    assert_eq!((loc.status, loc.code()), (200, 1000));
    assert_eq!(loc.json["data"]["id"], "Loc-1");
    assert_eq!(loc.json["data"]["coordinates"]["latitude"], "52.09073");
    let evse = call(&app, get("/ocpi/2.2.1/locations/loc-1/LOC-1-e1", auth)).await;
    assert_eq!(evse.json["data"]["uid"], "Loc-1-E1");
    let conn = call(&app, get("/ocpi/2.2.1/locations/loc-1/loc-1-E1/2", auth)).await;
    assert_eq!(conn.json["data"]["id"], "2");
    assert_eq!(conn.json["data"]["max_electric_power"], 22000);

    let missing = call(&app, get("/ocpi/2.2.1/locations/nope", auth)).await;
    assert_eq!((missing.status, missing.code()), (404, 2003));
    let missing_evse = call(&app, get("/ocpi/2.2.1/locations/loc-1/nope", auth)).await;
    assert_eq!(missing_evse.status, 404);
    let missing_conn = call(&app, get("/ocpi/2.2.1/locations/loc-1/loc-1-e1/9", auth)).await;
    assert_eq!(missing_conn.status, 404);
}

#[tokio::test]
async fn ids_with_url_characters_are_found_by_their_percent_encoded_segment() {
    // Ids an older version may have stored: `/`, `#`, `?`, `%`, space, `é`.
    let (app, _) = app_with_peer(vec![location("L/1 #?%é", ts(1))]);
    let auth = Some("Token peer-token");
    let loc = call(
        &app,
        get("/ocpi/2.2.1/locations/L%2F1%20%23%3F%25%C3%A9", auth),
    )
    .await;
    assert_eq!((loc.status, loc.code()), (200, 1000));
    assert_eq!(loc.json["data"]["id"], "L/1 #?%é");
    let evse = call(
        &app,
        get(
            "/ocpi/2.2.1/locations/L%2F1%20%23%3F%25%C3%A9/L%2F1%20%23%3F%25%C3%A9-E1",
            auth,
        ),
    )
    .await;
    assert_eq!((evse.status, evse.code()), (200, 1000));
    assert_eq!(evse.json["data"]["uid"], "L/1 #?%é-E1");
}

#[tokio::test]
async fn tariffs_list_has_numbers_not_strings() {
    let (app, platform) = app_with_peer(vec![]);
    *platform.backend().tariffs.lock().expect("lock") = vec![tariff("T1", ts(5))];
    let a = call(&app, get("/ocpi/2.2.1/tariffs", Some("Token peer-token"))).await;
    assert_eq!(a.code(), 1000);
    let component = &a.json["data"][0]["elements"][0]["price_components"][0];
    assert!(component["price"].is_number(), "{component}");
    let parsed: Vec<ocpi::types::Tariff> =
        serde_json::from_value(a.json["data"].clone()).expect("tariffs");
    assert_eq!(parsed, vec![tariff("T1", ts(5))]);
}

#[tokio::test]
async fn credentials_misuse_is_405_and_bad_bodies_are_400_or_2001() {
    let (app, _) = app_with_peer(vec![]);
    let token_a = format!("Token {}", b64(TOKEN_A));
    for method in ["GET", "PUT", "DELETE"] {
        let req = Request::builder()
            .method(method)
            .uri("/ocpi/2.2.1/credentials")
            .header("authorization", &token_a)
            .body(Body::from(r#"{"token":"x","url":"http://x","roles":[]}"#))
            .expect("request");
        assert_eq!(call(&app, req).await.status, 405, "{method} with token A");
    }
    let registered_post = Request::post("/ocpi/2.2.1/credentials")
        .header("authorization", "Token peer-token")
        .body(Body::from(r#"{"token":"x","url":"http://x","roles":[]}"#))
        .expect("request");
    assert_eq!(
        call(&app, registered_post).await.status,
        405,
        "POST by a registered peer"
    );

    let not_json = Request::post("/ocpi/2.2.1/credentials")
        .header("authorization", &token_a)
        .header("content-type", "application/json")
        .body(Body::from("{this is not json"))
        .expect("request");
    let a = call(&app, not_json).await;
    assert_eq!((a.status, a.code()), (400, 2001));
    assert!(a.json["timestamp"].is_string(), "still an envelope");

    let wrong_shape = Request::post("/ocpi/2.2.1/credentials")
        .header("authorization", &token_a)
        .body(Body::from(r#"{"token": 42}"#))
        .expect("request");
    let a = call(&app, wrong_shape).await;
    assert_eq!((a.status, a.code()), (200, 2001));

    let empty_roles = Request::post("/ocpi/2.2.1/credentials")
        .header("authorization", &token_a)
        .body(Body::from(
            r#"{"token":"abc","url":"http://127.0.0.1:9/v","roles":[]}"#,
        ))
        .expect("request");
    assert_eq!(call(&app, empty_roles).await.code(), 2001);

    let get_ok = call(
        &app,
        get("/ocpi/2.2.1/credentials", Some("Token peer-token")),
    )
    .await;
    assert_eq!(get_ok.code(), 1000);
    assert_eq!(get_ok.json["data"]["token"], "peer-token");
    assert_eq!(
        get_ok.json["data"]["url"],
        "https://cpo.example.com/ocpi/versions"
    );
    assert_eq!(get_ok.json["data"]["roles"][0]["role"], "CPO");
    assert_eq!(get_ok.json["data"]["roles"][0]["party_id"], "CPO");
    assert!(
        get_ok.header("ocpi-from-party-id").is_none(),
        "no routing headers on credentials"
    );
}

#[tokio::test]
async fn every_error_is_an_ocpi_envelope_even_axums_own() {
    let (app, _platform) = app_with_peer(vec![]);
    // Unknown path, wrong method, a body over the limit: HTTP status kept, body an envelope.
    let cases = [
        ("GET", "/ocpi/2.2.1/nothing-here", Vec::new(), 404),
        (
            "DELETE",
            "/ocpi/2.2.1/commands/START_SESSION",
            Vec::new(),
            405,
        ),
        (
            "PUT",
            "/ocpi/2.2.1/tokens/DE/EMS/RFID1",
            vec![b' '; 3 * 1024 * 1024],
            413,
        ),
    ];
    for (method, uri, body, status) in cases {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Token peer-token")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        let a = call(&app, req).await;
        assert_eq!(a.status, status, "{method} {uri}: {}", a.json);
        assert_eq!(a.code(), 2001, "{method} {uri}: {}", a.json);
        assert!(a.json["timestamp"].is_string(), "{}", a.json);
    }
}
