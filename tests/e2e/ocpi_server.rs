//! The daemon's OCPI server as seen by a registered hub: pagination, parameter errors, request
//! and correlation ids, discovery.

use std::collections::BTreeSet;

use bridge_tests::hub::auth_value;
use reqwest::Method;

use crate::ocpi_support::{TOKEN_A, daemon_with_hub, ocpi_config, raw_request, versions_url};

#[tokio::test]
async fn version_details_list_the_cpo_modules_with_roles() {
    let (hub, _daemon) = daemon_with_hub(ocpi_config()).await;
    let eps = hub.bridge_endpoints();
    for (module, role) in [
        ("locations", "SENDER"),
        ("tariffs", "SENDER"),
        ("cdrs", "SENDER"),
        ("commands", "RECEIVER"),
    ] {
        assert!(
            eps.iter().any(|(id, r, _)| id == module && r == role),
            "{module} as {role} missing: {eps:?}"
        );
    }
    for module in ["credentials", "sessions", "tokens"] {
        assert!(
            eps.iter().any(|(id, _, _)| id == module),
            "{module} missing: {eps:?}"
        );
    }
}

#[tokio::test]
async fn locations_pagination_walk_sees_every_location_once() {
    let mut config = ocpi_config();
    for i in 2..=7 {
        config = config.location(&format!("LOC{i}"));
    }
    let (hub, _daemon) = daemon_with_hub(config).await;
    let locations = hub.bridge_module_url("locations");
    let first = format!("{locations}?limit=3&date_from=2000-01-01T00:00:00Z");
    let pages = hub.walk_pages(&first).await;

    assert_eq!(pages.len(), 3, "7 locations at limit 3 → 3 pages");
    let mut seen = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(
            page.header("x-total-count"),
            Some("7"),
            "page {i}: {:?}",
            page.headers
        );
        let x_limit: usize = page
            .header("x-limit")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("page {i}: X-Limit missing: {:?}", page.headers));
        let items = page.data().as_array().expect("data is an array");
        assert!(items.len() <= 3, "page {i} has {} items", items.len());
        assert!(
            x_limit >= items.len() && x_limit <= 100,
            "X-Limit {x_limit}"
        );
        if i + 1 < pages.len() {
            let next = page.next_link().unwrap();
            assert!(
                next.contains("date_from="),
                "Link must keep filters: {next}"
            );
            assert!(next.contains("limit=3"), "Link must keep the limit: {next}");
        } else {
            assert!(page.next_link().is_none(), "last page must have no Link");
        }
        seen.extend(items.iter().map(|l| l["id"].as_str().unwrap().to_string()));
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(unique.len(), 7, "a location seen twice: {seen:?}");

    // The cap: a huge limit is reduced to at most 100.
    let big = hub.get_as_peer(&format!("{locations}?limit=1000")).await;
    assert_eq!(big.status, 200, "{}", big.text);
    let cap: usize = big.header("x-limit").and_then(|v| v.parse().ok()).unwrap();
    assert!(cap <= 100, "X-Limit {cap}");
    assert_eq!(big.data().as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn bad_pagination_parameters_are_ocpi_2001() {
    let (hub, _daemon) = daemon_with_hub(ocpi_config()).await;
    let locations = hub.bridge_module_url("locations");
    let tariffs = hub.bridge_module_url("tariffs");
    for query in [
        "offset=-1",
        "limit=abc",
        "date_from=yesterday",
        "date_to=2026-13-45T99:00:00Z",
    ] {
        for base in [&locations, &tariffs] {
            let url = format!("{base}?{query}");
            let r = hub.get_as_peer(&url).await;
            assert!(r.status < 500, "{url} → {}: {}", r.status, r.text);
            assert_eq!(
                r.ocpi_status(),
                Some(2001),
                "{url} → {}: {}",
                r.status,
                r.text
            );
        }
    }
}

#[tokio::test]
async fn request_and_correlation_ids_are_echoed() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let locations = hub.bridge_module_url("locations");
    let token = hub.token_for_bridge().unwrap();
    let auth = auth_value(&token);
    for url in [versions_url(&daemon), locations.clone()] {
        let r = raw_request(
            Method::GET,
            &url,
            Some(&auth),
            None,
            &[
                ("X-Request-ID", "req-12345"),
                ("X-Correlation-ID", "corr-67890"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        assert_eq!(
            r.header("x-request-id"),
            Some("req-12345"),
            "{url}: {:?}",
            r.headers
        );
        assert_eq!(
            r.header("x-correlation-id"),
            Some("corr-67890"),
            "{url}: {:?}",
            r.headers
        );
    }
    // Even a 401 carries them.
    let r = raw_request(
        Method::GET,
        &locations,
        Some(&auth_value("wrong")),
        None,
        &[("X-Request-ID", "req-401")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-request-id"), Some("req-401"), "{:?}", r.headers);
    // Envelope shape.
    let ok = hub.get_as_peer(&locations).await;
    let body = ok.body.expect("JSON");
    assert!(
        body["timestamp"].is_string() && body["status_code"] == 1000,
        "{body}"
    );
}

#[tokio::test]
async fn token_a_opens_versions_but_nothing_functional() {
    let daemon = bridge_tests::Daemon::start(&ocpi_config()).await;
    let auth = auth_value(TOKEN_A);
    let v = raw_request(Method::GET, &versions_url(&daemon), Some(&auth), None, &[]).await;
    assert_eq!(v.status, 200, "{}", v.text);
    let locations = crate::ocpi_support::discover_module(&daemon, TOKEN_A, "locations").await;
    for what in [Some(auth.clone()), Some(format!("Token {TOKEN_A}")), None] {
        let r = raw_request(Method::GET, &locations, what.as_deref(), None, &[]).await;
        assert_eq!(r.status, 401, "{what:?}: {}", r.text);
    }
    let none = raw_request(Method::GET, &versions_url(&daemon), None, None, &[]).await;
    assert_eq!(none.status, 401, "versions without a token: {}", none.text);
    // The raw token form is accepted too (2.1.1-era peers).
    let raw = raw_request(
        Method::GET,
        &versions_url(&daemon),
        Some(&format!("Token {TOKEN_A}")),
        None,
        &[],
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text);
}
