//! The operator's status page at `/` on the admin listener: stations and connectors, sessions
//! charging now, OCPI peers with their outbox and parked pushes (retry / drop buttons POST to the
//! admin API), today's and this month's CDRs with a 30-day energy chart, and an attention list
//! (offline stations, unregistered peers, parked pushes, held CDRs, TLS certificates expiring
//! within 30 days).
//! Rendered server-side with `maud`; one small embedded script refreshes it every few seconds.
//! When `admin.token` is set, the page asks for it with HTTP Basic (any username).

pub mod view;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use secrecy::ExposeSecret;

use crate::admin::{AdminState, token_matches};
use crate::outbox::Push;

const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// The page's routes (`/`, `/page.js`), to merge into the admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/page.js", get(script))
        .with_state(state)
}

fn challenge() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"ocpp-ocpi-bridge\", charset=\"UTF-8\"",
        )],
        "admin token required",
    )
        .into_response()
}

fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
    match &state.settings.admin.token {
        None => true,
        Some(t) => token_matches(headers, t.expose_secret()),
    }
}

async fn script(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return challenge();
    }
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct PageQuery {
    fragment: Option<u8>,
}

async fn page(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if !authorized(&state, &headers) {
        return challenge();
    }
    let body = match body(&state) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "status page storage error");
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    };
    if q.fragment.is_some() {
        return Html(body.into_string()).into_response();
    }
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "ocpp-ocpi-bridge" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { h1 { "ocpp-ocpi-bridge" } span #updated {} }
                main #main { (body) }
                script src="/page.js" {}
            }
        }
    };
    Html(page.into_string()).into_response()
}

fn body(state: &AdminState) -> Result<Markup, crate::error::Error> {
    let now = chrono::Utc::now();
    let grace = chrono::Duration::seconds(state.settings.ocpi.offline_grace as i64);
    let mut attention: Vec<String> = Vec::new();

    // Stations.
    let mut stations = Vec::new();
    for s in state.store.stations()? {
        let online = s.online && state.registry.get(&ocpp::StationId(s.id.clone())).is_some();
        let since = s.disconnected_at.or(s.last_seen);
        // Within the grace period an offline station's EVSEs keep their published status.
        let reachable = online || since.is_some_and(|t| now - t <= grace);
        if !reachable {
            attention.push(format!("Station {} is offline", s.id));
        }
        let connectors = state.store.connectors(&s.id)?;
        stations.push((s, online, reachable, connectors));
    }

    // Sessions charging now.
    let active: Vec<ocpi::types::Session> = state
        .sessions
        .list()?
        .into_iter()
        .filter(|s| s.status == ocpi::types::SessionStatus::Active)
        .collect();

    // Peers and parked pushes.
    let peers = state.peers.all();
    let ids: Vec<String> = peers.iter().map(|p| p.id.0.clone()).collect();
    let stats = state.store.outbox_stats(&ids)?;
    let parked = state.store.outbox_parked::<Push>()?;
    for p in &peers {
        let status = serde_json::to_value(p.status).unwrap_or_default();
        // Statuses serialize in lower case (`registered`).
        if !status
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("registered"))
        {
            attention.push(format!(
                "Peer {} is {}",
                p.id.0,
                status.as_str().unwrap_or("?")
            ));
        }
    }
    let held = state.store.count::<crate::records::HeldCdr>();
    if held > 0 {
        attention.push(format!(
            "{held} CDR(s) held: their price cannot be computed (ocpp-ocpi-bridge cdrs held)"
        ));
    }
    if !parked.is_empty() {
        attention.push(format!("{} parked push(es) need a decision", parked.len()));
    }
    for (listener, not_after) in state.tls.expiries() {
        attention.extend(view::cert_expiry(listener, not_after, now));
    }

    // CDRs.
    let lines: Vec<view::CdrLine> = state
        .sessions
        .cdrs()?
        .iter()
        .map(|c| view::CdrLine {
            day: c.end_date_time.inner().date_naive(),
            kwh: c.total_energy,
            currency: c.currency.clone(),
            cost: c.total_cost.excl_vat,
        })
        .collect();
    let today = now.date_naive();
    let t_day = view::today(&lines, today);
    let t_month = view::this_month(&lines, today);
    let bars = view::chart_bars(&view::energy_per_day(&lines, today, 30));

    Ok(html! {
        section #attention {
            h2 { "Attention" }
            @if attention.is_empty() { p.ok { "Nothing needs attention." } }
            @else { ul { @for a in &attention { li.bad { (a) } } } }
        }
        section #stations {
            h2 { "Stations" }
            @for (s, online, reachable, connectors) in &stations {
                div.card data-station=(s.id) {
                    div.row {
                        strong { (s.id) }
                        span class=(if *online { "pill ok" } else { "pill off" }) {
                            (if *online { "online" } else { "offline" })
                        }
                        span.muted { "OCPP " (s.ocpp_version.as_deref().unwrap_or("?")) }
                    }
                    div.muted {
                        "last seen " (s.last_seen.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| "never".into()))
                        " · firmware " (s.firmware_version.as_deref().unwrap_or("?"))
                    }
                    table {
                        tr { th { "EVSE" } th { "conn." } th { "OCPP" } th { "OCPI" } }
                        @for c in connectors {
                            @let published = crate::evse::status_str(crate::evse::evse_status(None, &[c.status.as_str()], *reachable));
                            tr {
                                td { (c.evse_id) } td { (c.connector_id) }
                                td { span class={"pill " (view::status_class(&c.status))} { (c.status) } }
                                td { span class={"pill " (view::status_class(&published))} { (published) } }
                            }
                        }
                    }
                }
            }
            @if stations.is_empty() { p.muted { "No station has connected yet." } }
        }
        section #sessions {
            h2 { "Charging now" }
            @if active.is_empty() { p.muted { "Nothing is charging." } }
            @else {
                table {
                    tr { th { "EVSE" } th { "conn." } th { "kWh" } th { "duration" } th { "eMSP" } th { "token" } }
                    @for s in &active {
                        tr.session {
                            td { (s.evse_uid.as_str()) } td { (s.connector_id.as_str()) }
                            td { (s.kwh.round_dp(3).normalize()) }
                            td { (view::duration((now - s.start_date_time.inner()).num_seconds())) }
                            td { (s.cdr_token.country_code.as_str()) "-" (s.cdr_token.party_id.as_str()) }
                            td { (view::mask_uid(s.cdr_token.uid.as_str())) }
                        }
                    }
                }
            }
        }
        section #peers {
            h2 { "OCPI peers" }
            @for p in &peers {
                @let st = stats.iter().find(|s| s.peer == p.id.0);
                div.card {
                    div.row {
                        strong { (p.id.0) }
                        span.pill.ok { (serde_json::to_value(p.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                        span.muted { "OCPI " (p.version) }
                    }
                    div.muted {
                        "outbox " (st.map_or(0, |s| s.depth))
                        @if let Some(o) = st.and_then(|s| s.oldest) { " · oldest " (view::duration((now - o).num_seconds())) }
                        " · parked " (st.map_or(0, |s| s.parked))
                    }
                }
            }
            @if peers.is_empty() { p.muted { "No OCPI peer is registered." } }
            @if !parked.is_empty() {
                h3 { "Parked pushes" }
                table {
                    tr { th { "peer" } th { "push" } th { "reason" } th {} }
                    @for e in &parked {
                        tr.parked {
                            td { (e.peer) }
                            td { (e.push.module()) " " (e.push.subject()) }
                            td { (e.parked_reason.as_deref().or(e.last_error.as_deref()).unwrap_or("")) }
                            td {
                                button.retry data-peer=(e.peer) data-seq=(e.seq) { "Retry" }
                                " "
                                button.drop data-peer=(e.peer) data-seq=(e.seq) { "Drop" }
                            }
                        }
                    }
                }
            }
        }
        section #cdrs {
            h2 { "CDRs" }
            table {
                tr { th {} th { "count" } th { "kWh" } th { "revenue (excl. VAT)" } }
                @for (label, t) in [("today", &t_day), ("this month", &t_month)] {
                    tr {
                        td { (label) } td.count { (t.count) } td { (t.kwh.round_dp(3).normalize()) }
                        td { @for (cur, v) in &t.revenue { (v.round_dp(2)) " " (cur) " " } }
                    }
                }
            }
            h3 { "Energy per day, last 30 days" }
            svg.chart viewBox={"0 0 " (view::CHART_W) " " (view::CHART_H)} preserveAspectRatio="none" role="img" {
                @for b in &bars {
                    rect x=(format!("{:.2}", b.x)) y=(format!("{:.2}", b.y)) width=(format!("{:.2}", b.w)) height=(format!("{:.2}", b.h)) { title { (b.title) } }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tower::ServiceExt;

    fn state(dir: &std::path::Path, token: Option<&str>) -> AdminState {
        let mut st = crate::admin::tests::state(dir, true);
        let mut settings = (*st.settings).clone();
        settings.admin.token = token.map(secrecy::SecretString::from);
        st.settings = Arc::new(settings);
        st
    }

    async fn get(
        st: &AdminState,
        path: &str,
        auth: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let app = crate::admin::router(st.clone()).merge(router(st.clone()));
        let mut req = axum::http::Request::get(path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = app
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn basic(user: &str, pw: &str) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    }

    #[tokio::test]
    async fn the_page_renders_every_section_and_its_script() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path(), None);
        let mut station = state::Station::new("CS-PAGE");
        station.ocpp_version = Some("1.6".into());
        station.firmware_version = Some("fw-9.1".into());
        st.store.update(|tx| tx.put_station(&station)).unwrap();
        let (code, _, html) = get(&st, "/", None).await;
        assert_eq!(code, StatusCode::OK);
        for needle in [
            "<!DOCTYPE html>",
            "id=\"attention\"",
            "id=\"stations\"",
            "CS-PAGE",
            "fw-9.1",
            "Station CS-PAGE is offline",
            "id=\"sessions\"",
            "id=\"peers\"",
            "id=\"cdrs\"",
            "<svg",
            "src=\"/page.js\"",
        ] {
            assert!(html.contains(needle), "missing {needle} in page");
        }
        let (code, _, fragment) = get(&st, "/?fragment=1", None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(fragment.contains("CS-PAGE") && !fragment.contains("<!DOCTYPE"));
        let (code, headers, js) = get(&st, "/page.js", None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains("javascript")
        );
        assert!(js.contains("/admin/outbox/"));
    }

    #[tokio::test]
    async fn with_a_token_the_page_and_the_api_ask_for_basic_auth() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path(), Some("s3cret"));
        let (code, headers, _) = get(&st, "/", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        let (code, _, _) = get(&st, "/", Some(&basic("anyone", "wrong"))).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, _, _) = get(&st, "/page.js", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, _, html) = get(&st, "/", Some(&basic("anyone", "s3cret"))).await;
        assert_eq!(code, StatusCode::OK);
        assert!(html.contains("id=\"stations\""));
        // The page's actions go to the admin API with the browser's Basic credentials.
        let (code, _, _) = get(&st, "/admin/outbox", Some(&basic("op", "s3cret"))).await;
        assert_eq!(code, StatusCode::OK);
        let (code, _, _) = get(&st, "/admin/outbox", Some("Bearer s3cret")).await;
        assert_eq!(code, StatusCode::OK);
        let (code, _, _) = get(&st, "/admin/outbox", Some(&basic("op", "nope"))).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
    }
}
