//! Version negotiation between two of our own servers on real sockets: a 2.1.1-only platform
//! ("hub") and a platform serving every version ("cpo"); the highest mutual version wins, the
//! version is stored per peer on both sides, 2.1.1 registration uses the flat credentials object
//! and the raw token, GETs answer in the caller's version, and a credentials PUT on another
//! version's endpoint switches the peer to it.

use ocpi::types::{AuthToken, OcpiVersion};
use ocpi::{PeerId, PeerOptions};

use crate::helpers::*;

async fn raw_get(url: &str, authorization: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .get(url)
        .header("authorization", authorization)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn a_2_1_1_only_platform_registers_in_2_1_1_and_reads_2_1_1_shapes() {
    let cpo = serve("NL", "CPO", |b| {
        *b.locations.lock().expect("lock") = vec![location("L1", ts(1))];
    })
    .await;
    let hub = serve("DE", "HUB", |b| {
        b.settings.versions = vec![OcpiVersion::V2_1_1];
    })
    .await;

    // The hub only offers 2.1.1 on its versions endpoint.
    let (_, versions) = raw_get(&hub.versions_url(), &format!("Token {}", b64(TOKEN_A))).await;
    let listed: Vec<&str> = versions["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(listed, ["2.1.1"]);

    let at_hub = hub
        .platform
        .register(
            PeerId("cpo".into()),
            &cpo.versions_url(),
            AuthToken::new(TOKEN_A),
        )
        .await
        .expect("registration in 2.1.1");
    assert_eq!(at_hub.version, "2.1.1");
    assert!(!at_hub.encode_token, "2.1.1: the raw token");
    assert_eq!(
        at_hub.roles[0].party_id, "CPO",
        "flat 2.1.1 credentials parsed"
    );
    let at_cpo = cpo.platform.peers().all().remove(0);
    assert_eq!(
        at_cpo.version, "2.1.1",
        "the version whose details the peer called"
    );
    assert!(!at_cpo.encode_token);
    assert!(!at_cpo.wants_routing_headers());

    // GET with the raw token on the 2.1.1 Locations endpoint: 2.1.1 shape.
    let locations_url = at_hub
        .endpoints
        .iter()
        .find(|e| e.identifier == ocpi::types::ModuleId::Locations)
        .map(|e| e.url.clone())
        .expect("locations endpoint");
    assert!(locations_url.contains("/ocpi/2.1.1/"), "{locations_url}");
    let (status, page) = raw_get(
        &locations_url,
        &format!("Token {}", at_hub.token_out.expose()),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let loc = &page["data"][0];
    assert_eq!(loc["id"], "L1");
    assert!(
        loc.get("type").is_some(),
        "2.1.1 Location has a type: {loc}"
    );
    assert!(loc.get("country_code").is_none() && loc.get("publish").is_none());
    let conn = &loc["evses"][0]["connectors"][0];
    assert!(conn.get("voltage").is_some() && conn.get("max_voltage").is_none());
}

#[tokio::test]
async fn highest_mutual_version_pins_and_a_credentials_put_switches_version() {
    let cpo = serve("NL", "CPO", |_| {}).await;
    let hub = serve("DE", "HUB", |_| {}).await;

    // Both serve everything: 2.3.0.
    let at_hub = hub
        .platform
        .register(
            PeerId("cpo".into()),
            &cpo.versions_url(),
            AuthToken::new(TOKEN_A),
        )
        .await
        .expect("registration");
    assert_eq!(at_hub.version, "2.3.0");
    assert!(at_hub.encode_token);
    assert_eq!(cpo.platform.peers().all()[0].version, "2.3.0");

    // The hub pins 2.2.1 and updates its credentials: the PUT goes to the 2.2.1 endpoint and the
    // cpo now speaks 2.2.1 to it.
    let pinned = ocpi::Peer {
        options: PeerOptions {
            versions: vec![OcpiVersion::V2_2_1],
            quirks: vec![],
        },
        ..at_hub
    };
    hub.platform.peers().save(pinned).expect("save");
    let updated = hub
        .platform
        .update_registration(&PeerId("cpo".into()))
        .await
        .expect("update");
    assert_eq!(updated.version, "2.2.1");
    let at_cpo = cpo.platform.peers().all().remove(0);
    assert_eq!(at_cpo.version, "2.2.1");
    assert_eq!(at_cpo.ocpi_version(), OcpiVersion::V2_2_1);
}

#[tokio::test]
async fn no_mutual_version_is_refused() {
    let cpo = serve("NL", "CPO", |b| {
        b.settings.versions = vec![OcpiVersion::V2_3_0];
    })
    .await;
    let hub = serve("DE", "HUB", |b| {
        b.settings.versions = vec![OcpiVersion::V2_1_1];
    })
    .await;
    let err = hub
        .platform
        .register(
            PeerId("cpo".into()),
            &cpo.versions_url(),
            AuthToken::new(TOKEN_A),
        )
        .await
        .expect_err("no mutual version");
    assert!(err.to_string().contains("no mutual OCPI version"), "{err}");
    // The cpo does not serve what it does not speak.
    let (status, _) = raw_get(
        &format!("{}/ocpi/2.1.1", cpo.url),
        &format!("Token {}", b64(TOKEN_A)),
    )
    .await;
    assert!((400..500).contains(&status), "{status}");
    let (_, versions) = raw_get(&cpo.versions_url(), &format!("Token {}", b64(TOKEN_A))).await;
    assert_eq!(versions["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn quirks_switch_the_token_form_and_routing_headers() {
    let cpo = serve("NL", "CPO", |_| {}).await;
    let hub = serve("DE", "HUB", |b| {
        b.settings.versions = vec![OcpiVersion::V2_1_1];
    })
    .await;
    // A 2.1.1 peer that wants Base64 after all.
    let at_hub = hub
        .platform
        .register_with_options(
            PeerId("cpo".into()),
            &cpo.versions_url(),
            AuthToken::new(TOKEN_A),
            PeerOptions {
                versions: vec![],
                quirks: vec![ocpi::Quirk::Base64Token2_1_1],
            },
        )
        .await
        .expect("registration");
    assert_eq!(at_hub.version, "2.1.1");
    assert!(at_hub.encode_token, "base64_token_2_1_1");
    assert!(!at_hub.wants_routing_headers());

    // A 2.2.1/2.3.0 peer with raw_token and no_routing_headers.
    let other = serve("FR", "HUB", |_| {}).await;
    let at_other = other
        .platform
        .register_with_options(
            PeerId("cpo".into()),
            &cpo.versions_url(),
            AuthToken::new(TOKEN_A),
            PeerOptions {
                versions: vec![OcpiVersion::V2_2_1],
                quirks: vec![ocpi::Quirk::RawToken, ocpi::Quirk::NoRoutingHeaders],
            },
        )
        .await
        .expect("registration");
    assert_eq!(at_other.version, "2.2.1", "pinned below the mutual 2.3.0");
    assert!(!at_other.encode_token, "raw_token");
    assert!(!at_other.wants_routing_headers(), "no_routing_headers");
    assert_eq!(
        at_other.options.quirks,
        [ocpi::Quirk::RawToken, ocpi::Quirk::NoRoutingHeaders],
        "stored on the peer"
    );
}
