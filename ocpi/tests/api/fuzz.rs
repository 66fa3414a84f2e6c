//! Fuzzing of every OCPI request body the CPO accepts, through the real router (in-process):
//! tokens PUT/PATCH, commands POST, charging preferences PUT, credentials POST/PUT. Random JSON
//! from the modules' own field names and mutations of valid bodies: never a panic, never a
//! 5xx, always an OCPI envelope; a refused body is 2001 or HTTP 4xx.
//!
//! CI runs a bounded number of cases; `PROPTEST_CASES=100000 cargo test -p ocpi --test api
//! fuzz --release` runs more.

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{app_with_peer, call, token_json};

const FIELDS: &[&str] = &[
    "country_code",
    "party_id",
    "uid",
    "type",
    "contract_id",
    "visual_number",
    "issuer",
    "group_id",
    "valid",
    "whitelist",
    "language",
    "default_profile_type",
    "energy_contract",
    "supplier_name",
    "last_updated",
    "response_url",
    "token",
    "location_id",
    "evse_uid",
    "connector_id",
    "authorization_reference",
    "session_id",
    "reservation_id",
    "expiry_date",
    "profile_type",
    "departure_time",
    "energy_need",
    "discharge_allowed",
    "url",
    "roles",
    "role",
    "business_details",
    "name",
    "website",
    "logo",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,70}".prop_map(Value::String),
        prop::sample::select(vec![
            "RFID",
            "APP_USER",
            "NOT_A_TYPE",
            "ALWAYS",
            "NEVER",
            "2026-01-01T00:00:00Z",
            "2026-99-01T00:00:00Z",
            "http://127.0.0.1:1/x",
            "ftp://x",
            "CPO",
            "EMSP",
            "DE",
            "EMS",
            "",
            "FAST",
            "GREEN",
            "1e400",
        ])
        .prop_map(|s| json!(s)),
        "[0-9]{1,40}(\\.[0-9]{1,40})?"
            .prop_map(|s| serde_json::from_str(&s).unwrap_or(Value::Null)),
    ]
}

fn body() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS), inner, 0..10).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn valid_bodies() -> Vec<(&'static str, &'static str, Value)> {
    let token = token_json("RFID1", "RFID");
    vec![
        (
            "PUT",
            "/ocpi/2.2.1/tokens/DE/EMS/RFID1?type=RFID",
            token.clone(),
        ),
        (
            "PATCH",
            "/ocpi/2.2.1/tokens/DE/EMS/RFID1?type=RFID",
            json!({"valid": false, "last_updated": "2026-01-01T00:00:00Z"}),
        ),
        (
            "POST",
            "/ocpi/2.2.1/commands/START_SESSION",
            json!({
            "response_url": "https://emsp.example.com/r/1", "token": token,
            "location_id": "LOC1", "evse_uid": "E1", "connector_id": "1"}),
        ),
        (
            "POST",
            "/ocpi/2.2.1/commands/STOP_SESSION",
            json!({"response_url": "https://emsp.example.com/r/2", "session_id": "S1"}),
        ),
        (
            "POST",
            "/ocpi/2.2.1/commands/RESERVE_NOW",
            json!({
            "response_url": "https://emsp.example.com/r/3", "token": token_json("RFID1", "RFID"),
            "expiry_date": "2030-01-01T00:00:00Z", "reservation_id": "R1", "location_id": "LOC1"}),
        ),
        (
            "PUT",
            "/ocpi/2.2.1/sessions/S1/charging_preferences",
            json!({"profile_type": "FAST", "departure_time": "2030-01-01T00:00:00Z", "energy_need": 10.5}),
        ),
        (
            "PUT",
            "/ocpi/2.2.1/credentials",
            json!({
            "token": "abc", "url": "https://emsp.example.com/versions",
            "roles": [{"role": "EMSP", "country_code": "DE", "party_id": "EMS",
              "business_details": {"name": "E"}}]}),
        ),
    ]
}

fn mutate(v: &mut Value, path: &[usize], with: Value) {
    let Some((first, rest)) = path.split_first() else {
        *v = with;
        return;
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(first % m.len()).cloned().expect("key");
            mutate(m.get_mut(&key).expect("value"), rest, with);
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            mutate(&mut a[first % n], rest, with);
        }
        other => *other = with,
    }
}

fn request(method: &str, uri: &str, body: &[u8]) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Token peer-token")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request")
}

fn check(method: &str, uri: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (app, _platform) = app_with_peer(vec![]);
    let answer = rt.block_on(call(&app, request(method, uri, &body)));
    prop_assert!(
        answer.status < 500,
        "{method} {uri}: HTTP {}",
        answer.status
    );
    prop_assert!(
        answer.json["status_code"].is_u64(),
        "{method} {uri}: HTTP {} without an OCPI envelope: {}",
        answer.status,
        answer.json
    );
    Ok(())
}

proptest! {
    // 128 cases per property in CI (each builds an app); PROPTEST_CASES raises it.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bodies_get_an_envelope_and_never_a_5xx(
        which in any::<prop::sample::Index>(),
        body in body(),
    ) {
        let targets = valid_bodies();
        let (method, uri, _) = &targets[which.index(targets.len())];
        check(method, uri, serde_json::to_vec(&body).expect("json"))?;
    }

    #[test]
    fn mutated_valid_bodies_get_an_envelope_and_never_a_5xx(
        which in any::<prop::sample::Index>(),
        path in prop::collection::vec(any::<usize>(), 0..5),
        with in body(),
    ) {
        let targets = valid_bodies();
        let (method, uri, valid) = &targets[which.index(targets.len())];
        let mut b = valid.clone();
        mutate(&mut b, &path, with);
        check(method, uri, serde_json::to_vec(&b).expect("json"))?;
    }

    #[test]
    fn random_bytes_get_an_envelope_and_never_a_5xx(
        which in any::<prop::sample::Index>(),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let targets = valid_bodies();
        let (method, uri, _) = &targets[which.index(targets.len())];
        check(method, uri, bytes)?;
    }
}
