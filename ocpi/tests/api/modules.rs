//! Sessions, CDRs, Tokens, Commands and ChargingProfiles through the router with a fake backend.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use ocpi::types::*;
use ocpi::{CpoBackend, OcpiError, Peer, PeerId, PeerStore, Platform, Settings};
use serde_json::json;

use crate::helpers::*;

const TOKEN_URL: &str = "/ocpi/2.2.1/tokens/DE/EMS/RFID1";

#[tokio::test]
async fn sessions_are_paginated_and_date_from_is_optional() {
    let (app, platform) = app_with_peer(vec![]);
    *platform.backend().sessions.lock().expect("lock") = (0..150)
        .map(|i| session(&format!("S{i:03}"), ts(i)))
        .collect();
    let a = call(&app, send("GET", "/ocpi/2.2.1/sessions", None)).await;
    assert_eq!((a.status, a.code()), (200, 1000));
    assert_eq!(a.header("x-total-count"), Some("150"));
    assert_eq!(a.header("x-limit"), Some("100"));
    assert_eq!(a.json["data"].as_array().map(Vec::len), Some(100));
    assert!(
        a.header("link")
            .is_some_and(|l| l.contains("/ocpi/2.2.1/sessions?offset=100&limit=100")),
        "{:?}",
        a.header("link")
    );
    assert_eq!(a.header("ocpi-to-party-id"), Some("EMS"), "routing headers");
    assert!(a.json["data"][0]["kwh"].is_number());
    // (The fixture is built with `json!`, i.e. from an f64, so its scale is 3.5; scale round trips are unit-tested.)
    assert_eq!(
        a.json["data"][0]["total_cost"]["excl_vat"].to_string(),
        "3.5"
    );
    let parsed: Vec<Session> = serde_json::from_value(a.json["data"].clone()).expect("sessions");
    assert_eq!(parsed[0], session("S000", ts(0)));

    let from = ts(140).to_string();
    let filtered = call(
        &app,
        send(
            "GET",
            &format!("/ocpi/2.2.1/sessions/?date_from={from}&limit=5"),
            None,
        ),
    )
    .await;
    assert_eq!(filtered.header("x-total-count"), Some("10"));
    assert_eq!(filtered.json["data"][0]["id"], "S140");
    assert_eq!(filtered.json["data"].as_array().map(Vec::len), Some(5));
    let bad = call(
        &app,
        send("GET", "/ocpi/2.2.1/sessions?date_from=soon", None),
    )
    .await;
    assert_eq!(bad.code(), 2001);
}

#[tokio::test]
async fn cdrs_are_paginated() {
    let (app, platform) = app_with_peer(vec![]);
    *platform.backend().cdrs.lock().expect("lock") =
        (0..3).map(|i| cdr(&format!("C{i}"), ts(i * 10))).collect();
    let to = ts(20).to_string();
    let a = call(
        &app,
        send(
            "GET",
            &format!("/ocpi/2.2.1/cdrs?date_to={to}&limit=1"),
            None,
        ),
    )
    .await;
    assert_eq!((a.status, a.code()), (200, 1000));
    assert_eq!(a.header("x-total-count"), Some("2"), "date_to exclusive");
    assert_eq!(a.json["data"][0]["id"], "C0");
    assert!(a.json["data"][0]["total_energy"].is_number());
    assert!(
        a.header("link")
            .is_some_and(|l| l.contains("offset=1&limit=1") && l.contains("date_to=")),
        "{:?}",
        a.header("link")
    );
    let all = call(&app, send("GET", "/ocpi/2.2.1/cdrs/", None)).await;
    let parsed: Vec<Cdr> = serde_json::from_value(all.json["data"].clone()).expect("cdrs");
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[2], cdr("C2", ts(20)));
}

#[tokio::test]
async fn charging_preferences_unknown_session_incapable_evse_and_capable_evse() {
    let mut loc = location("Loc-1", ts(0));
    let (app, platform) = app_with_peer(vec![loc.clone()]);
    *platform.backend().sessions.lock().expect("lock") = vec![session("S1", ts(0))];
    let prefs = json!({"profile_type": "FAST", "energy_need": 20.5});
    let url = "/ocpi/2.2.1/sessions/s1/charging_preferences";

    let unknown = call(
        &app,
        send(
            "PUT",
            "/ocpi/2.2.1/sessions/nope/charging_preferences",
            Some(&prefs),
        ),
    )
    .await;
    assert_eq!(unknown.status, 404);

    let incapable = call(&app, send("PUT", url, Some(&prefs))).await;
    assert_eq!((incapable.status, incapable.code()), (404, 2001));

    if let Some(evse) = loc.evses.as_mut().and_then(|e| e.first_mut()) {
        evse.capabilities = Some(vec![Capability::ChargingPreferencesCapable]);
    }
    *platform.backend().locations.lock().expect("lock") = vec![loc];
    let capable = call(&app, send("PUT", url, Some(&prefs))).await;
    assert_eq!((capable.status, capable.code()), (200, 1000));
    assert_eq!(capable.json["data"], "NOT_POSSIBLE");

    let bad = call(
        &app,
        send("PUT", url, Some(&json!({"profile_type": "TURBO"}))),
    )
    .await;
    assert_eq!((bad.status, bad.code()), (200, 2001));
}

#[tokio::test]
async fn token_put_then_get_with_default_type_and_case_insensitive_uid() {
    let (app, platform) = app_with_peer(vec![]);
    let created = call(
        &app,
        send("PUT", TOKEN_URL, Some(&token_json("RFID1", "RFID"))),
    )
    .await;
    assert_eq!((created.status, created.code()), (201, 1000));
    assert_eq!(created.header("ocpi-from-party-id"), Some("CPO"));
    let replaced = call(
        &app,
        send(
            "PUT",
            &format!("{TOKEN_URL}?type=RFID"),
            Some(&token_json("RFID1", "RFID")),
        ),
    )
    .await;
    assert_eq!((replaced.status, replaced.code()), (200, 1000));
    assert_eq!(platform.backend().tokens.lock().expect("lock").len(), 1);

    let got = call(&app, send("GET", "/ocpi/2.2.1/tokens/de/ems/rfid1", None)).await;
    assert_eq!(
        (got.status, got.code()),
        (200, 1000),
        "no type = RFID, uid CI"
    );
    assert_eq!(got.json["data"]["uid"], "RFID1");
    let other_type = call(
        &app,
        send("GET", &format!("{TOKEN_URL}?type=APP_USER"), None),
    )
    .await;
    assert_eq!((other_type.status, other_type.code()), (404, 2004));
    let unknown = call(&app, send("GET", "/ocpi/2.2.1/tokens/DE/EMS/nope", None)).await;
    assert_eq!((unknown.status, unknown.code()), (404, 2004));

    // An app token pushed without ?type= keeps the body's type.
    let app_token = call(
        &app,
        send(
            "PUT",
            "/ocpi/2.2.1/tokens/DE/EMS/APP1",
            Some(&token_json("APP1", "APP_USER")),
        ),
    )
    .await;
    assert_eq!(app_token.code(), 1000);
    let got = call(
        &app,
        send("GET", "/ocpi/2.2.1/tokens/DE/EMS/APP1?type=app_user", None),
    )
    .await;
    assert_eq!(got.json["data"]["type"], "APP_USER");
}

#[tokio::test]
async fn token_put_refusals_store_nothing() {
    let (app, platform) = app_with_peer(vec![]);
    let mut too_long = token_json("RFID1", "RFID");
    too_long["contract_id"] = json!("C".repeat(37));
    let mut other_party = token_json("RFID1", "RFID");
    other_party["party_id"] = json!("EMX");
    let mut missing_issuer = token_json("RFID1", "RFID");
    if let Some(o) = missing_issuer.as_object_mut() {
        o.remove("issuer");
    }
    let cases = [
        (
            TOKEN_URL.to_owned(),
            token_json("OTHER-UID", "RFID"),
            "uid mismatch",
        ),
        (
            "/ocpi/2.2.1/tokens/DE/EMX/RFID1".to_owned(),
            token_json("RFID1", "RFID"),
            "pid mismatch",
        ),
        (
            format!("{TOKEN_URL}?type=APP_USER"),
            token_json("RFID1", "RFID"),
            "type mismatch",
        ),
        (TOKEN_URL.to_owned(), other_party, "body party mismatch"),
        (TOKEN_URL.to_owned(), too_long, "invalid token"),
        (TOKEN_URL.to_owned(), missing_issuer, "wrong shape"),
    ];
    for (url, body, what) in cases {
        let a = call(&app, send("PUT", &url, Some(&body))).await;
        if what == "pid mismatch" {
            // DE/EMX is not one of the caller's parties: blocked with 404 before looking at the body.
            assert_eq!(a.status, 404, "{what}");
        } else {
            assert_eq!((a.status, a.code()), (200, 2001), "{what}: {}", a.json);
        }
    }
    let not_json = Request::put(TOKEN_URL)
        .header("authorization", "Token peer-token")
        .body(Body::from("{"))
        .expect("request");
    assert_eq!(call(&app, not_json).await.status, 400);
    assert!(platform.backend().tokens.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn token_url_must_name_one_of_the_callers_parties_unless_it_is_a_hub() {
    let (app, platform) = app_with_peer(vec![]);
    let mut foreign = token_json("X1", "RFID");
    foreign["country_code"] = json!("FR");
    foreign["party_id"] = json!("ABC");
    let a = call(
        &app,
        send("PUT", "/ocpi/2.2.1/tokens/FR/ABC/X1", Some(&foreign)),
    )
    .await;
    assert_eq!(a.status, 404);
    let a = call(&app, send("GET", "/ocpi/2.2.1/tokens/FR/ABC/X1", None)).await;
    assert_eq!(a.status, 404);
    assert!(platform.backend().tokens.lock().expect("lock").is_empty());

    let mut hub = peer("HUB", "hub-token", "NL", "HUB");
    hub.roles[0].role = Role::Hub;
    platform.peers().save(hub).expect("saved");
    let req = Request::put("/ocpi/2.2.1/tokens/FR/ABC/X1")
        .header("authorization", "Token hub-token")
        .body(Body::from(serde_json::to_vec(&foreign).expect("json")))
        .expect("request");
    let a = call(&app, req).await;
    assert_eq!((a.status, a.code()), (201, 1000), "{}", a.json);
}

#[tokio::test]
async fn token_patch_requires_last_updated_and_merges() {
    let (app, platform) = app_with_peer(vec![]);
    let patch = json!({"valid": false, "last_updated": "2020-02-01T00:00:00Z"});
    let unknown = call(&app, send("PATCH", TOKEN_URL, Some(&patch))).await;
    assert_eq!((unknown.status, unknown.code()), (404, 2004));

    platform
        .backend()
        .tokens
        .lock()
        .expect("lock")
        .push(token("RFID1", "RFID"));
    let no_ts = call(
        &app,
        send("PATCH", TOKEN_URL, Some(&json!({"valid": false}))),
    )
    .await;
    assert_eq!((no_ts.status, no_ts.code()), (200, 2001));
    let bad_ts = call(
        &app,
        send(
            "PATCH",
            TOKEN_URL,
            Some(&json!({"valid": false, "last_updated": 5})),
        ),
    )
    .await;
    assert_eq!(bad_ts.code(), 2001);
    let uid_change = call(
        &app,
        send(
            "PATCH",
            TOKEN_URL,
            Some(&json!({"uid": "OTHER", "last_updated": "2020-02-01T00:00:00Z"})),
        ),
    )
    .await;
    assert_eq!(uid_change.code(), 2001);
    let invalid = call(
        &app,
        send(
            "PATCH",
            TOKEN_URL,
            Some(&json!({"issuer": "", "last_updated": "2020-02-01T00:00:00Z"})),
        ),
    )
    .await;
    assert_eq!(invalid.code(), 2001);
    assert_eq!(
        platform.backend().tokens.lock().expect("lock")[0],
        token("RFID1", "RFID"),
        "refused patches change nothing"
    );

    let ok = call(
        &app,
        send("PATCH", "/ocpi/2.2.1/tokens/de/EMS/rfid1", Some(&patch)),
    )
    .await;
    assert_eq!((ok.status, ok.code()), (200, 1000), "{}", ok.json);
    let stored = platform.backend().tokens.lock().expect("lock")[0].clone();
    assert!(!stored.valid);
    assert_eq!(stored.last_updated.to_string(), "2020-02-01T00:00:00Z");
    assert_eq!(stored.issuer, "Example eMSP", "untouched fields kept");
    assert_eq!(stored.uid.as_str(), "RFID1", "stored spelling kept");
}

fn start_session(response_url: &str, token_owner: (&str, &str)) -> serde_json::Value {
    let mut token = token_json("APP1", "APP_USER");
    token["country_code"] = json!(token_owner.0);
    token["party_id"] = json!(token_owner.1);
    json!({"response_url": response_url, "token": token, "location_id": "Loc-1",
        "evse_uid": "Loc-1-E1", "authorization_reference": "auth-1"})
}

#[tokio::test]
async fn commands_are_validated_and_answered_with_the_backend_response() {
    let (app, platform) = app_with_peer(vec![]);
    let url = "https://emsp.example/ocpi/emsp/2.2.1/commands/START_SESSION/1";
    let a = call(
        &app,
        send(
            "POST",
            "/ocpi/2.2.1/commands/START_SESSION",
            Some(&start_session(url, ("DE", "EMS"))),
        ),
    )
    .await;
    assert_eq!((a.status, a.code()), (200, 1000));
    assert_eq!(a.json["data"], json!({"result": "ACCEPTED", "timeout": 60}));
    assert_eq!(a.header("ocpi-to-country-code"), Some("DE"));
    {
        let commands = platform.backend().commands.lock().expect("lock");
        assert!(
            matches!(&commands[..], [Command::StartSession(s)] if s.response_url == url
                && s.authorization_reference.as_deref() == Some("auth-1")),
            "{commands:?}"
        );
    }

    let cancel = call(
        &app,
        send(
            "POST",
            "/ocpi/2.2.1/commands/cancel_reservation",
            Some(&json!({"response_url": url, "reservation_id": "R1"})),
        ),
    )
    .await;
    assert_eq!(cancel.code(), 1000, "command type is case-insensitive");
    assert_eq!(cancel.json["data"]["result"], "REJECTED");
    assert_eq!(cancel.json["data"]["message"][0]["text"], "test backend");

    let recorded = platform.backend().commands.lock().expect("lock").len();
    let bad_cases = [
        (
            "STOP_SESSION",
            json!({"response_url": "not-a-url", "session_id": "S1"}),
        ),
        ("STOP_SESSION", json!({"session_id": "S1"})),
        (
            "UNLOCK_CONNECTOR",
            json!({"response_url": url, "location_id": "L", "evse_uid": "E"}),
        ),
        ("RESERVE_NOW", json!({"response_url": url})),
        ("SELF_DESTRUCT", json!({"response_url": url})),
    ];
    for (command, body) in bad_cases {
        let a = call(
            &app,
            send(
                "POST",
                &format!("/ocpi/2.2.1/commands/{command}"),
                Some(&body),
            ),
        )
        .await;
        assert_eq!((a.status, a.code()), (200, 2001), "{command}: {}", a.json);
    }
    let not_json = Request::post("/ocpi/2.2.1/commands/STOP_SESSION")
        .header("authorization", "Token peer-token")
        .body(Body::from("nope"))
        .expect("request");
    assert_eq!(call(&app, not_json).await.status, 400);
    assert_eq!(
        platform.backend().commands.lock().expect("lock").len(),
        recorded,
        "refused commands never reach the backend"
    );
}

#[tokio::test]
async fn commands_with_another_partys_token_are_rejected() {
    let (app, platform) = app_with_peer(vec![]);
    let a = call(
        &app,
        send(
            "POST",
            "/ocpi/2.2.1/commands/START_SESSION",
            Some(&start_session("https://emsp.example/r/1", ("FR", "ABC"))),
        ),
    )
    .await;
    assert_eq!(a.code(), 1000);
    assert_eq!(a.json["data"]["result"], "REJECTED");
    assert!(platform.backend().commands.lock().expect("lock").is_empty());
}

/// A backend implementing only the required methods: the defaults must serve the new modules sensibly.
struct MinimalBackend {
    settings: Settings,
    peer: Peer,
}

impl CpoBackend for MinimalBackend {
    fn settings(&self) -> &Settings {
        &self.settings
    }
    fn locations(&self, _caller: &Peer) -> Result<Vec<Location>, OcpiError> {
        Ok(vec![])
    }
    fn tariffs(&self, _caller: &Peer) -> Result<Vec<Tariff>, OcpiError> {
        Ok(vec![])
    }
}

impl PeerStore for MinimalBackend {
    fn load_peers(&self) -> Result<Vec<Peer>, OcpiError> {
        Ok(vec![self.peer.clone()])
    }
    fn save_peer(&self, _peer: &Peer) -> Result<(), OcpiError> {
        Ok(())
    }
    fn delete_peer(&self, _id: &PeerId) -> Result<(), OcpiError> {
        Ok(())
    }
}

#[tokio::test]
async fn default_backend_methods_answer_empty_unknown_and_not_supported() {
    init_tls();
    let backend = MinimalBackend {
        settings: settings("https://cpo.example.com", "NL", "CPO"),
        peer: peer("DEEMS", "peer-token", "DE", "EMS"),
    };
    let backend = Arc::new(backend);
    let peers = ocpi::Peers::load(backend.clone()).expect("peers");
    let app = Platform::new(backend, peers).expect("platform").router();
    let sessions = call(&app, send("GET", "/ocpi/2.2.1/sessions", None)).await;
    assert_eq!(
        (sessions.code(), sessions.json["data"].clone()),
        (1000, json!([]))
    );
    let cdrs = call(&app, send("GET", "/ocpi/2.2.1/cdrs", None)).await;
    assert_eq!(cdrs.header("x-total-count"), Some("0"));
    let got = call(&app, send("GET", TOKEN_URL, None)).await;
    assert_eq!((got.status, got.code()), (404, 2004));
    let put = call(
        &app,
        send("PUT", TOKEN_URL, Some(&token_json("RFID1", "RFID"))),
    )
    .await;
    assert_eq!(put.code(), 3000);
    let cmd = call(
        &app,
        send(
            "POST",
            "/ocpi/2.2.1/commands/START_SESSION",
            Some(&start_session("https://emsp.example/r/1", ("DE", "EMS"))),
        ),
    )
    .await;
    assert_eq!(
        cmd.json["data"],
        json!({"result": "NOT_SUPPORTED", "timeout": 0})
    );
}

#[tokio::test]
async fn charging_profiles_check_the_request_and_the_session_before_the_backend() {
    let (app, platform) = app_with_peer(vec![]);
    *platform.backend().sessions.lock().expect("lock") = vec![session("S1", ts(0))];
    let url = "https://emsp.example/ocpi/emsp/2.2.1/chargingprofiles/r/1";
    let set = json!({"charging_profile": {"charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 16.1}]}, "response_url": url});

    // The test backend keeps the default: NOT_SUPPORTED, for PUT, GET and DELETE alike.
    let put = call(
        &app,
        send("PUT", "/ocpi/2.2.1/chargingprofiles/s1", Some(&set)),
    )
    .await;
    assert_eq!((put.status, put.code()), (200, 1000));
    assert_eq!(
        put.json["data"],
        json!({"result": "NOT_SUPPORTED", "timeout": 0})
    );
    let get = call(
        &app,
        send(
            "GET",
            &format!("/ocpi/2.2.1/chargingprofiles/S1?duration=900&response_url={url}"),
            None,
        ),
    )
    .await;
    assert_eq!(
        get.json["data"]["result"], "NOT_SUPPORTED",
        "{:?}",
        get.json
    );
    let delete = call(
        &app,
        send(
            "DELETE",
            &format!("/ocpi/2.2.1/chargingprofiles/S1?response_url={url}"),
            None,
        ),
    )
    .await;
    assert_eq!(
        delete.json["data"]["result"], "NOT_SUPPORTED",
        "{:?}",
        delete.json
    );

    // A session the caller does not see: UNKNOWN_SESSION without reaching the backend.
    let unknown = call(
        &app,
        send("PUT", "/ocpi/2.2.1/chargingprofiles/nope", Some(&set)),
    )
    .await;
    assert_eq!(
        (
            unknown.status,
            unknown.code(),
            unknown.json["data"]["result"].clone()
        ),
        (200, 1000, json!("UNKNOWN_SESSION"))
    );

    // Bad requests are 2001.
    for (method, uri, body) in [
        (
            "GET",
            format!("/ocpi/2.2.1/chargingprofiles/S1?response_url={url}"),
            None,
        ),
        (
            "GET",
            format!("/ocpi/2.2.1/chargingprofiles/S1?duration=-5&response_url={url}"),
            None,
        ),
        (
            "GET",
            "/ocpi/2.2.1/chargingprofiles/S1?duration=60".to_owned(),
            None,
        ),
        (
            "DELETE",
            "/ocpi/2.2.1/chargingprofiles/S1?response_url=ftp://x/y".to_owned(),
            None,
        ),
        (
            "PUT",
            "/ocpi/2.2.1/chargingprofiles/S1".to_owned(),
            Some(json!({"charging_profile": {"charging_rate_unit": "kW"}, "response_url": url})),
        ),
        (
            "PUT",
            "/ocpi/2.2.1/chargingprofiles/S1".to_owned(),
            Some(json!({"charging_profile": {"charging_rate_unit": "A",
                "charging_profile_period": [{"start_period": 0, "limit": 1.25}]}, "response_url": url})),
        ),
    ] {
        let a = call(&app, send(method, &uri, body.as_ref())).await;
        assert_eq!(a.code(), 2001, "{method} {uri}: {:?}", a.json);
    }
}
