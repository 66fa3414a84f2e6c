//! Pagination of Sender lists over real HTTP: Link, X-Total-Count, X-Limit, filters.

use crate::helpers::*;

fn query_of(link: &str) -> String {
    // Link: <https://cpo.example.com/ocpi/2.2.1/locations?...>; rel="next"
    let url = link.trim_start_matches('<').split('>').next().expect("url");
    let path = url
        .strip_prefix("https://cpo.example.com")
        .expect("our public url");
    path.to_owned()
}

#[tokio::test]
async fn full_walk_over_250_locations_follows_link_headers() {
    let locations: Vec<_> = (0..250)
        .map(|i| location(&format!("L{i:03}"), ts(i)))
        .collect();
    let (app, _) = app_with_peer(locations);
    let mut next = Some("/ocpi/2.2.1/locations".to_owned());
    let mut ids = Vec::new();
    let mut pages = 0;
    while let Some(uri) = next.take() {
        let a = call(&app, get(&uri, Some("Token peer-token"))).await;
        assert_eq!(a.code(), 1000, "{uri}");
        assert_eq!(a.header("x-total-count"), Some("250"));
        assert_eq!(a.header("x-limit"), Some("100"));
        ids.extend(
            a.json["data"]
                .as_array()
                .expect("array")
                .iter()
                .map(|l| l["id"].as_str().unwrap_or("").to_owned()),
        );
        next = a.header("link").map(query_of);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let expected: Vec<_> = (0..250).map(|i| format!("L{i:03}")).collect();
    assert_eq!(ids, expected, "stable backend order, no gaps or duplicates");
}

#[tokio::test]
async fn date_filters_limit_and_link_keep_original_parameters() {
    let locations: Vec<_> = (0..250)
        .map(|i| location(&format!("L{i:03}"), ts(i)))
        .collect();
    let (app, _) = app_with_peer(locations);
    let from = ts(50).to_string();
    let to = ts(120).to_string();
    let a = call(
        &app,
        get(
            &format!("/ocpi/2.2.1/locations?date_from={from}&date_to={to}&limit=30"),
            Some("Token peer-token"),
        ),
    )
    .await;
    assert_eq!(
        a.header("x-total-count"),
        Some("70"),
        "from inclusive, to exclusive"
    );
    assert_eq!(
        a.header("x-limit"),
        Some("100"),
        "X-Limit is the server cap"
    );
    let data = a.json["data"].as_array().expect("array");
    assert_eq!(data.len(), 30);
    assert_eq!(data[0]["id"], "L050");
    let link = a.header("link").expect("more pages");
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    let next = query_of(link);
    assert!(
        next.contains("date_from=")
            && next.contains("date_to=")
            && next.contains("offset=30")
            && next.contains("limit=30"),
        "{next}"
    );

    let last = call(
        &app,
        get(
            &format!("/ocpi/2.2.1/locations?date_from={from}&date_to={to}&limit=30&offset=60"),
            Some("Token peer-token"),
        ),
    )
    .await;
    assert_eq!(last.json["data"].as_array().map(Vec::len), Some(10));
    assert!(last.header("link").is_none(), "no Link on the last page");

    let beyond = call(
        &app,
        get(
            "/ocpi/2.2.1/locations?offset=1000",
            Some("Token peer-token"),
        ),
    )
    .await;
    assert_eq!(beyond.json["data"].as_array().map(Vec::len), Some(0));
    assert!(beyond.header("link").is_none());
}

#[tokio::test]
async fn bad_pagination_parameters_are_2001() {
    let (app, _) = app_with_peer(vec![location("L1", ts(0))]);
    for q in [
        "offset=-1",
        "offset=ten",
        "limit=0",
        "date_from=yesterday",
        "date_to=2020-01-01Tnope",
    ] {
        let a = call(
            &app,
            get(
                &format!("/ocpi/2.2.1/locations?{q}"),
                Some("Token peer-token"),
            ),
        )
        .await;
        assert_eq!((a.status, a.code()), (200, 2001), "{q}");
    }
    let tariffs = call(
        &app,
        get("/ocpi/2.2.1/tariffs?offset=x", Some("Token peer-token")),
    )
    .await;
    assert_eq!(tariffs.code(), 2001);
}
