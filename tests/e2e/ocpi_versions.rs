//! OCPI versions end to end over real HTTP: a 2.1.1-only hub (registration, Location push, token
//! push, a session with its Session and CDR pushes, GETs in 2.1.1 shapes, raw tokens, no routing
//! headers), a hub offering 2.2.1 and 2.3.0 (the daemon picks 2.3.0 and pushes 2.3.0 shapes), and
//! one daemon serving a 2.1.1 peer and a 2.2.1 peer at once, each in its own shape.

use bridge_tests::hub::Push;
use bridge_tests::payloads::{ocpi, v16};
use bridge_tests::{Daemon, Hub, HubOptions, OcppVersion, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ocpi_support::{PUSH_SOON, REGISTER_SOON, admin_peer, booted, ocpi_config};

/// Waits until the daemon lists `hub` as registered and the hub knows the daemon's endpoints.
async fn registered(daemon: &Daemon, hub: &Hub) -> Value {
    hub.wait_registered(REGISTER_SOON).await;
    let peer = eventually("the peer registered in /admin/peers", PUSH_SOON, || async {
        let peer = admin_peer(daemon, &hub.peer_id()).await;
        if peer["status"] == "registered" {
            Ok(peer)
        } else {
            Err(peer)
        }
    })
    .await;
    eventually("daemon endpoints known to the hub", PUSH_SOON, || async {
        let eps = hub.bridge_endpoints();
        if eps.iter().any(|(id, _, _)| id == "tokens") {
            Ok(())
        } else {
            Err(eps)
        }
    })
    .await;
    peer
}

async fn location_put(hub: &Hub, loc: &str) -> Push {
    hub.wait_accepted(&format!("PUT location {loc}"), 1, PUSH_SOON, |p| {
        p.is_location_put(loc)
    })
    .await
    .remove(0)
}

fn emsp_2_1_1() -> HubOptions {
    HubOptions {
        country_code: "DE".into(),
        party_id: "EMS".into(),
        role: "EMSP".into(),
        versions: vec!["2.1.1".into()],
        ..HubOptions::default()
    }
}

#[track_caller]
fn assert_2_1_1_request(p: &Push, token: &str) {
    assert_eq!(
        p.header("authorization"),
        Some(format!("Token {token}").as_str()),
        "2.1.1: the raw token"
    );
    for h in [
        "ocpi-from-country-code",
        "ocpi-to-country-code",
        "ocpi-to-party-id",
    ] {
        assert!(
            p.header(h).is_none(),
            "2.1.1 has no routing headers: {:?}",
            p.headers
        );
    }
}

#[tokio::test]
async fn a_2_1_1_hub_gets_2_1_1_everything() {
    let hub = Hub::start_with(emsp_2_1_1()).await;
    let config = ocpi_config()
        .free_vend(false)
        .session_update_interval(1)
        .ocpi_peer(&hub.versions_url(), &hub.token_a());
    let daemon = Daemon::start(&config).await;
    let peer = registered(&daemon, &hub).await;
    assert_eq!(hub.registered_version(), "2.1.1");
    assert_eq!(peer["version"], "2.1.1", "{peer:#}");

    // Registration: the flat 2.1.1 credentials object.
    let post = hub
        .credentials_calls()
        .into_iter()
        .find(|c| c.method == "POST" && c.ocpi_status == Some(1000))
        .expect("a successful credentials POST");
    let body = post.body.expect("credentials body");
    assert!(body.get("roles").is_none(), "{body:#}");
    assert_eq!(body["party_id"], "BRG", "{body:#}");
    assert_eq!(body["country_code"], "NL", "{body:#}");
    assert!(body["business_details"]["name"].is_string(), "{body:#}");
    assert!(
        hub.bridge_endpoints()
            .iter()
            .all(|(_, role, url)| role.is_empty() && url.contains("/ocpi/2.1.1/")),
        "2.1.1 details: no roles, 2.1.1 URLs: {:?}",
        hub.bridge_endpoints()
    );
    let token_c = hub.inbound_token().expect("token C");

    // Location push in 2.1.1 shape.
    let put = location_put(&hub, "LOC1").await;
    assert_eq!(put.segments[..2], ["NL", "BRG"], "{}", put.path);
    assert_2_1_1_request(&put, &token_c);
    let loc = put.body.as_ref().expect("Location body");
    assert!(loc["type"].is_string(), "{loc:#}");
    for absent in ["country_code", "party_id", "publish"] {
        assert!(
            loc.get(absent).is_none(),
            "{absent} in a 2.1.1 Location: {loc:#}"
        );
    }

    // The hub pushes a 2.1.1 token (no cc/pid in the body, auth_id) with its raw token.
    let token_url = format!("{}/DE/EMS/CARD11", hub.bridge_module_url("tokens"));
    let token = json!({"uid": "CARD11", "type": "RFID", "auth_id": "DE-EMS-C11", "issuer": "EMS",
        "valid": true, "whitelist": "ALWAYS", "last_updated": bridge_tests::now_rfc3339()});
    let r = hub
        .send_to_bridge(Method::PUT, &token_url, Some(token.to_string()))
        .await;
    assert_eq!(r.ocpi_status(), Some(1000), "{}", r.text);
    let got = hub.send_to_bridge(Method::GET, &token_url, None).await;
    assert_eq!(got.ocpi_status(), Some(1000), "{}", got.text);
    assert_eq!(got.data()["auth_id"], "DE-EMS-C11", "{}", got.text);
    assert!(got.data().get("contract_id").is_none(), "{}", got.text);

    // A session: Session PUT, then the CDR, both 2.1.1.
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let started = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "CARD11", 1000, &bridge_tests::now_rfc3339()),
        )
        .await;
    assert_eq!(started["idTagInfo"]["status"], "Accepted", "{started}");
    let tx = started["transactionId"].as_i64().expect("transactionId");
    let session = hub
        .wait_accepted("PUT session", 1, PUSH_SOON, |p| p.is("PUT", "sessions"))
        .await
        .remove(0);
    assert_2_1_1_request(&session, &token_c);
    let s = session.body.as_ref().expect("Session body");
    assert_eq!(s["auth_id"], "DE-EMS-C11", "{s:#}");
    assert!(s["start_datetime"].is_string(), "{s:#}");
    assert_eq!(s["location"]["id"], "LOC1", "{s:#}");
    assert_eq!(s["location"]["evses"][0]["uid"], "CS001-1", "{s:#}");
    assert_eq!(
        s["location"]["evses"].as_array().map(Vec::len),
        Some(1),
        "only the EVSE in use: {s:#}"
    );
    for absent in [
        "cdr_token",
        "location_id",
        "start_date_time",
        "country_code",
    ] {
        assert!(
            s.get(absent).is_none(),
            "{absent} in a 2.1.1 Session: {s:#}"
        );
    }
    let session_id = s["id"].as_str().expect("session id").to_string();

    cs.call_ok("StopTransaction", v16::stop(tx, "CARD11", 9000, "Local"))
        .await;
    let done = hub
        .wait_accepted("PATCH session COMPLETED", 1, PUSH_SOON, |p| {
            p.is("PATCH", "sessions") && p.status() == Some("COMPLETED")
        })
        .await
        .remove(0);
    assert_2_1_1_request(&done, &token_c);
    let d = done.body.as_ref().expect("PATCH body");
    assert!(d["end_datetime"].is_string(), "2.1.1 PATCH: {d:#}");
    for absent in ["end_date_time", "cdr_token", "country_code"] {
        assert!(d.get(absent).is_none(), "{absent} in a 2.1.1 PATCH: {d:#}");
    }
    let cdr = hub
        .wait_accepted("POST CDR", 1, PUSH_SOON, |p| p.is("POST", "cdrs"))
        .await
        .remove(0);
    assert_2_1_1_request(&cdr, &token_c);
    let c = cdr.body.as_ref().expect("CDR body");
    assert_eq!(c["auth_id"], "DE-EMS-C11", "{c:#}");
    assert!(c["stop_date_time"].is_string(), "{c:#}");
    assert!(
        c["total_cost"].is_number(),
        "2.1.1 total_cost is a number: {c:#}"
    );
    assert_eq!(c["location"]["id"], "LOC1", "{c:#}");
    for absent in ["cdr_token", "cdr_location", "end_date_time", "session_id"] {
        assert!(c.get(absent).is_none(), "{absent} in a 2.1.1 CDR: {c:#}");
    }

    // GETs from the hub: 2.1.1 shapes.
    let locations = hub.get_as_peer(&hub.bridge_module_url("locations")).await;
    assert_eq!(locations.ocpi_status(), Some(1000), "{}", locations.text);
    assert!(
        locations.data()[0]["type"].is_string(),
        "{}",
        locations.text
    );
    assert!(locations.data()[0].get("country_code").is_none());
    let sessions = hub.get_as_peer(&hub.bridge_module_url("sessions")).await;
    let listed = sessions.data()[0].clone();
    assert_eq!(listed["id"], session_id.as_str(), "{}", sessions.text);
    assert_eq!(listed["auth_id"], "DE-EMS-C11", "{listed:#}");
    assert_eq!(listed["location"]["id"], "LOC1", "{listed:#}");
    let cdrs = hub.get_as_peer(&hub.bridge_module_url("cdrs")).await;
    assert!(cdrs.data()[0]["total_cost"].is_number(), "{}", cdrs.text);
    assert!(
        cdrs.data()[0]["stop_date_time"].is_string(),
        "{}",
        cdrs.text
    );
}

#[tokio::test]
async fn a_hub_offering_2_2_1_and_2_3_0_gets_2_3_0() {
    let hub = Hub::start_with(HubOptions {
        versions: vec!["2.2.1".into(), "2.3.0".into()],
        ..HubOptions::default()
    })
    .await;
    let config = ocpi_config()
        .free_vend(false)
        .session_update_interval(1)
        .ocpi_peer(&hub.versions_url(), &hub.token_a());
    let daemon = Daemon::start(&config).await;
    let peer = registered(&daemon, &hub).await;
    assert_eq!(hub.registered_version(), "2.3.0");
    assert_eq!(peer["version"], "2.3.0", "{peer:#}");

    let put = location_put(&hub, "LOC1").await;
    let loc = put.body.as_ref().expect("Location body");
    assert_eq!(loc["country_code"], "NL", "{loc:#}");
    assert_eq!(loc["publish"], true, "{loc:#}");
    let tariff = hub
        .wait_accepted("PUT tariff T1", 1, PUSH_SOON, |p| p.is("PUT", "tariffs"))
        .await
        .remove(0);
    let t = tariff.body.as_ref().expect("Tariff body");
    assert!(
        matches!(t["tax_included"].as_str(), Some("YES" | "NO" | "N/A")),
        "2.3.0 Tariff needs tax_included: {t:#}"
    );

    hub.put_token_ok(&ocpi::token("DE", "EMS", "CARD23", "ALWAYS"))
        .await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let started = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "CARD23", 1000, &bridge_tests::now_rfc3339()),
        )
        .await;
    let tx = started["transactionId"].as_i64().expect("transactionId");
    let session = hub
        .wait_accepted("PUT session", 1, PUSH_SOON, |p| p.is("PUT", "sessions"))
        .await
        .remove(0);
    let s = session.body.as_ref().expect("Session body");
    assert_eq!(s["cdr_token"]["uid"], "CARD23", "{s:#}");
    assert_eq!(session.header("ocpi-to-party-id"), Some("EMS"));
    cs.call_ok("StopTransaction", v16::stop(tx, "CARD23", 9000, "Local"))
        .await;
    let cdr = hub
        .wait_accepted("POST CDR", 1, PUSH_SOON, |p| p.is("POST", "cdrs"))
        .await
        .remove(0);
    let c = cdr.body.as_ref().expect("CDR body");
    assert!(
        c["total_cost"]["before_taxes"].is_number() && c["total_cost"].get("excl_vat").is_none(),
        "2.3.0 Price: {c:#}"
    );
    if let Some(tariffs) = c["tariffs"].as_array() {
        assert!(
            tariffs.iter().all(|t| t["tax_included"].is_string()),
            "{c:#}"
        );
    }
}

#[tokio::test]
async fn one_daemon_serves_a_2_1_1_and_a_2_2_1_peer_each_in_its_shape() {
    let old = Hub::start_with(emsp_2_1_1()).await;
    let new = Hub::start_with(HubOptions {
        country_code: "NL".into(),
        party_id: "EMN".into(),
        role: "EMSP".into(),
        ..HubOptions::default()
    })
    .await;
    let config = ocpi_config()
        .ocpi_peer(&old.versions_url(), &old.token_a())
        .ocpi_peer(&new.versions_url(), &new.token_a());
    let daemon = Daemon::start(&config).await;
    registered(&daemon, &old).await;
    registered(&daemon, &new).await;
    assert_eq!(old.registered_version(), "2.1.1");
    assert_eq!(new.registered_version(), "2.2.1");

    let a = location_put(&old, "LOC1").await;
    let b = location_put(&new, "LOC1").await;
    let (a, b) = (a.body.expect("2.1.1 body"), b.body.expect("2.2.1 body"));
    assert!(
        a["type"].is_string() && a.get("country_code").is_none(),
        "{a:#}"
    );
    assert!(
        b.get("type").is_none() && b["country_code"] == "NL",
        "{b:#}"
    );
    let ta = old
        .wait_accepted("PUT tariff", 1, PUSH_SOON, |p| p.is("PUT", "tariffs"))
        .await
        .remove(0);
    let tb = new
        .wait_accepted("PUT tariff", 1, PUSH_SOON, |p| p.is("PUT", "tariffs"))
        .await
        .remove(0);
    let (ta, tb) = (ta.body.expect("body"), tb.body.expect("body"));
    assert!(ta.get("country_code").is_none(), "{ta:#}");
    assert_eq!(tb["country_code"], "NL", "{tb:#}");
    assert!(tb.get("tax_included").is_none(), "{tb:#}");
    // GETs: each in its version.
    let la = old.get_as_peer(&old.bridge_module_url("locations")).await;
    let lb = new.get_as_peer(&new.bridge_module_url("locations")).await;
    assert!(la.data()[0]["type"].is_string(), "{}", la.text);
    assert_eq!(lb.data()[0]["country_code"], "NL", "{}", lb.text);
}

#[tokio::test]
async fn a_new_version_pin_renegotiates_and_later_pushes_follow_it() {
    let hub = Hub::start_with(HubOptions {
        versions: vec!["2.2.1".into(), "2.3.0".into()],
        ..HubOptions::default()
    })
    .await;
    let config = ocpi_config()
        .free_vend(false)
        .ocpi_peer(&hub.versions_url(), &hub.token_a());
    let mut daemon = Daemon::start(&config).await;
    registered(&daemon, &hub).await;
    assert_eq!(hub.registered_version(), "2.3.0");

    // Pin the hub to 2.2.1: at the next start the bridge PUTs its credentials on the hub's
    // 2.2.1 endpoint.
    let mut pinned = daemon.config().clone();
    pinned.ocpi_peers[0].versions = vec!["2.2.1".into()];
    std::fs::write(
        daemon.config_path(),
        pinned.to_toml(&daemon.dir().join("data")),
    )
    .expect("rewrite config");
    daemon.restart().await;
    eventually("the hub renegotiated to 2.2.1", REGISTER_SOON, || async {
        let peer = admin_peer(&daemon, &hub.peer_id()).await;
        if hub.registered_version() == "2.2.1" && peer["version"] == "2.2.1" {
            Ok(())
        } else {
            Err((hub.registered_version(), peer))
        }
    })
    .await;
    assert!(
        hub.credentials_calls()
            .iter()
            .any(|c| c.method == "PUT" && c.ocpi_status == Some(1000)),
        "a credentials PUT"
    );

    // Pushes from now on are 2.2.1: the CDR's total_cost is {excl_vat, …}.
    hub.put_token_ok(&ocpi::token("DE", "EMS", "CARDPIN", "ALWAYS"))
        .await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let started = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "CARDPIN", 1000, &bridge_tests::now_rfc3339()),
        )
        .await;
    let tx = started["transactionId"].as_i64().expect("transactionId");
    cs.call_ok("StopTransaction", v16::stop(tx, "CARDPIN", 5000, "Local"))
        .await;
    let cdr = hub
        .wait_accepted("POST CDR", 1, PUSH_SOON, |p| p.is("POST", "cdrs"))
        .await
        .remove(0);
    let c = cdr.body.as_ref().expect("CDR body");
    assert!(
        c["total_cost"]["excl_vat"].is_number() && c["total_cost"].get("before_taxes").is_none(),
        "2.2.1 Price after the switch: {c:#}"
    );
}

#[tokio::test]
async fn start_session_from_a_2_1_1_hub_is_answered_in_2_1_1() {
    let hub = Hub::start_with(emsp_2_1_1()).await;
    let mut config = ocpi_config().ocpi_peer(&hub.versions_url(), &hub.token_a());
    config.call_timeout = 2;
    let daemon = Daemon::start(&config).await;
    registered(&daemon, &hub).await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    cs.on(
        "RemoteStartTransaction",
        bridge_tests::Reply::Result(json!({"status": "Accepted"})),
    );

    let commands = hub.bridge_module_url("commands");
    let response_url = format!(
        "{}/START_SESSION/{}",
        hub.module_url("commands"),
        uuid::Uuid::new_v4().simple()
    );
    let body = json!({"response_url": response_url, "location_id": "LOC1", "evse_uid": "CS001-1",
        "token": {"uid": "APP211", "type": "OTHER", "auth_id": "DE-EMS-APP211", "issuer": "EMS",
            "valid": true, "whitelist": "ALLOWED", "last_updated": bridge_tests::now_rfc3339()}});
    let r = hub
        .send_to_bridge(
            Method::POST,
            &format!("{commands}/START_SESSION"),
            Some(body.to_string()),
        )
        .await;
    assert_eq!(r.ocpi_status(), Some(1000), "{}", r.text);
    assert_eq!(
        r.data(),
        &json!({"result": "ACCEPTED"}),
        "2.1.1 CommandResponse: {}",
        r.text
    );
    let path = response_url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .expect("path");
    let result = hub
        .wait_received("the START_SESSION result", 1, PUSH_SOON, |p| {
            p.method == "POST" && p.path == path
        })
        .await
        .remove(0);
    assert_eq!(
        result.body,
        Some(json!({"result": "ACCEPTED"})),
        "the 2.1.1 result is a CommandResponse"
    );
    let start = cs
        .received_calls()
        .into_iter()
        .find(|(a, _)| a == "RemoteStartTransaction")
        .expect("RemoteStartTransaction");
    assert!(start.1["idTag"].is_string(), "{}", start.1);

    // 2.1.1 has no CANCEL_RESERVATION.
    let cancel = json!({"response_url": response_url, "reservation_id": "1"});
    let r = hub
        .send_to_bridge(
            Method::POST,
            &format!("{commands}/CANCEL_RESERVATION"),
            Some(cancel.to_string()),
        )
        .await;
    assert_eq!(r.ocpi_status(), Some(2001), "{}", r.text);
}

#[tokio::test]
async fn tokens_pulled_from_a_2_1_1_hub_authorize_locally_and_in_real_time() {
    let hub = Hub::start_with(emsp_2_1_1()).await;
    let now = bridge_tests::now_rfc3339();
    let token = |uid: &str, whitelist: &str| {
        json!({"uid": uid, "type": "RFID", "auth_id": format!("DE-EMS-{uid}"), "issuer": "EMS",
            "valid": true, "whitelist": whitelist, "last_updated": now})
    };
    hub.set_tokens(vec![token("PULL1", "ALWAYS"), token("PULL2", "ALLOWED")]);
    let config = ocpi_config()
        .free_vend(false)
        .ocpi_peer(&hub.versions_url(), &hub.token_a());
    let daemon = Daemon::start(&config).await;
    registered(&daemon, &hub).await;
    eventually("2 pulled 2.1.1 tokens", PUSH_SOON, || async {
        let n = daemon.admin_get("/admin/tokens").await;
        if n["count"] == 2 { Ok(()) } else { Err(n) }
    })
    .await;
    let pull = hub.token_pulls().remove(0);
    assert_2_1_1_request(&pull, &hub.inbound_token().expect("token C"));

    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    let local = cs.call_ok("Authorize", v16::authorize("PULL1")).await;
    assert_eq!(local["idTagInfo"]["status"], "Accepted", "{local}");
    assert!(hub.authorize_requests().is_empty(), "ALWAYS is local");
    let remote = cs.call_ok("Authorize", v16::authorize("PULL2")).await;
    assert_eq!(remote["idTagInfo"]["status"], "Accepted", "{remote}");
    assert_eq!(hub.authorize_requests_for("PULL2").len(), 1);
}

#[tokio::test]
async fn a_2_1_1_hub_registering_with_the_daemon_gets_2_1_1() {
    use crate::ocpi_support::{TOKEN_A, versions_url};
    let hub = Hub::start_with(emsp_2_1_1()).await;
    let daemon = Daemon::start(&ocpi_config()).await;
    let answer = hub
        .try_register_with_in(&versions_url(&daemon), TOKEN_A, "2.1.1")
        .await
        .expect("2.1.1 registration with the daemon");
    assert!(
        answer.get("roles").is_none(),
        "flat 2.1.1 credentials: {answer:#}"
    );
    assert_eq!(answer["party_id"], "BRG", "{answer:#}");
    let peer = admin_peer(&daemon, "DEEMS").await;
    assert_eq!(
        peer["version"], "2.1.1",
        "the version whose details the hub called: {peer:#}"
    );
    assert!(
        hub.bridge_endpoints()
            .iter()
            .all(|(id, role, _)| role.is_empty() && id != "hubclientinfo"),
        "{:?}",
        hub.bridge_endpoints()
    );
    // The daemon pushes to it in 2.1.1, with the raw token the hub gave it.
    let put = location_put(&hub, "LOC1").await;
    assert_2_1_1_request(&put, &hub.inbound_token().expect("token B"));
    assert!(
        put.body.as_ref().is_some_and(|b| b["type"].is_string()),
        "{:?}",
        put.body
    );
    let got = hub.get_as_peer(&hub.bridge_module_url("locations")).await;
    assert!(got.data()[0]["type"].is_string(), "{}", got.text);
}

#[tokio::test]
async fn pushes_queued_before_a_version_change_are_sent_in_the_new_version() {
    let hub = Hub::start_with(HubOptions {
        versions: vec!["2.2.1".into(), "2.3.0".into()],
        ..HubOptions::default()
    })
    .await;
    let config = ocpi_config()
        .free_vend(false)
        .ocpi_peer(&hub.versions_url(), &hub.token_a());
    let mut daemon = Daemon::start(&config).await;
    registered(&daemon, &hub).await;
    assert_eq!(hub.registered_version(), "2.3.0");
    hub.put_token_ok(&ocpi::token("DE", "EMS", "CARDQ", "ALWAYS"))
        .await;
    location_put(&hub, "LOC1").await;

    // The hub refuses pushes (HTTP 401, retried in order) while a whole session happens: its
    // Session and CDR pushes wait in the outbox.
    hub.set_mode(bridge_tests::HubMode::Unauthorized);
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let started = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "CARDQ", 1000, &bridge_tests::now_rfc3339()),
        )
        .await;
    let tx = started["transactionId"].as_i64().expect("transactionId");
    cs.call_ok("StopTransaction", v16::stop(tx, "CARDQ", 5000, "Local"))
        .await;
    // (The CDR waits behind its Session, which the hub keeps refusing.)
    eventually("the CDR queued for the hub", PUSH_SOON, || async {
        let ob = daemon.admin_get("/admin/outbox").await;
        let queued = ob["queued"].as_array().cloned().unwrap_or_default();
        if queued.iter().any(|e| e["module"] == "cdrs") {
            Ok(())
        } else {
            Err(ob)
        }
    })
    .await;
    assert!(
        hub.accepted().iter().all(|p| !p.is("POST", "cdrs")),
        "no CDR delivered yet"
    );
    drop(cs);

    // The version changes (pin to 2.2.1, renegotiated at start-up), then the hub accepts again.
    let mut pinned = daemon.config().clone();
    pinned.ocpi_peers[0].versions = vec!["2.2.1".into()];
    std::fs::write(
        daemon.config_path(),
        pinned.to_toml(&daemon.dir().join("data")),
    )
    .expect("rewrite config");
    daemon.restart().await;
    eventually("renegotiated to 2.2.1", REGISTER_SOON, || async {
        if hub.registered_version() == "2.2.1" {
            Ok(())
        } else {
            Err(hub.registered_version())
        }
    })
    .await;
    hub.set_mode(bridge_tests::HubMode::Normal);
    let cdr = hub
        .wait_accepted("the queued CDR", 1, PUSH_SOON, |p| p.is("POST", "cdrs"))
        .await
        .remove(0);
    let c = cdr.body.as_ref().expect("CDR body");
    assert!(
        c["total_cost"]["excl_vat"].is_number() && c["total_cost"].get("before_taxes").is_none(),
        "queued before the change, sent in 2.2.1: {c:#}"
    );
}
