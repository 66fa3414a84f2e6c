//! The admin HTTP API on `[admin] listen` (loopback by default): health, Prometheus metrics and
//! JSON views of stations and transactions. sled allows one process per database, so operator
//! tools read the state through here, never by opening the directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use state::Store;

use crate::config::Settings;
use crate::outbox::{Entry, Push};
use crate::periods::json_number;
use crate::records::{SessionRecord, StoredToken};

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// Configuration.
    pub settings: Arc<Settings>,
    /// The store.
    pub store: Store,
    /// Connected stations.
    pub registry: ocpp::Registry,
    /// True once the store is open and every listener is bound; false again on shutdown.
    pub ready: Arc<AtomicBool>,
    /// Renders Prometheus text.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The registered OCPI peers.
    pub peers: ocpi::Peers,
    /// Wakes the pusher (after an operator retries a parked entry).
    pub push: crate::outbox::PushQueue,
    /// Sessions and CDRs.
    pub sessions: Arc<crate::sessions::Sessions>,
    /// Token rotation, unregistration, tokens A.
    pub credentials: crate::credentials::Lifecycle,
    /// The TLS listeners (certificate expiry on the status page).
    pub tls: crate::tls::Tls,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/admin/stations", get(stations))
        .route("/admin/stations/{id}", get(station))
        .route("/admin/transactions", get(transactions))
        .route("/admin/transactions/{id}", get(transaction))
        .route("/admin/peers", get(peers))
        .route("/admin/peers/token-a", axum::routing::post(peer_token_a))
        .route("/admin/peers/{id}/rotate", axum::routing::post(peer_rotate))
        .route(
            "/admin/peers/{id}/unregister",
            axum::routing::post(peer_unregister),
        )
        .route("/admin/sessions", get(sessions))
        .route("/admin/cdrs", get(cdrs))
        .route("/admin/cdrs/held", get(cdrs_held))
        .route("/admin/cdrs/{id}/reprice", axum::routing::post(cdr_reprice))
        .route("/admin/cdrs/{id}/credit", axum::routing::post(cdr_credit))
        .route("/admin/tokens", get(tokens_summary))
        .route("/admin/outbox", get(outbox))
        .route(
            "/admin/outbox/{peer}/{seq}/retry",
            axum::routing::post(outbox_retry),
        )
        .route(
            "/admin/outbox/{peer}/{seq}/drop",
            axum::routing::post(outbox_drop),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    let mut metrics_route = Router::new().route("/metrics", get(metrics));
    if !state.settings.admin.metrics_public {
        metrics_route = metrics_route.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    }
    Router::new()
        .route("/healthz", get(healthz))
        .merge(metrics_route)
        .merge(admin)
        .with_state(state)
}

async fn require_token(
    State(state): State<AdminState>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &state.settings.admin.token
        && !token_matches(&headers, token.expose_secret())
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "admin token required"})),
        )
            .into_response();
    }
    next.run(req).await
}

/// True when the request carries the admin token, as `Authorization: Bearer <token>` or as the
/// password of HTTP Basic (any username; what the browser sends for the status page). Schemes
/// are case-insensitive (RFC 9110); the token is compared in constant time.
pub fn token_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    if authorization_matches(given, token) {
        return true;
    }
    let Some((scheme, basic)) = given.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(_, pw)| same(pw.as_bytes(), token.as_bytes()))
        })
        .unwrap_or(false)
}

/// Constant-time equality.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `Authorization` header carries `token` as a bearer token (the scheme is
/// case-insensitive, RFC 9110; the token compared in constant time).
pub fn authorization_matches(header: Option<&str>, token: &str) -> bool {
    let Some((scheme, value)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && same(value.trim().as_bytes(), token.as_bytes())
}

struct ApiError(crate::error::Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "admin API storage error");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": self.0.to_string()})),
        )
            .into_response()
    }
}

impl From<state::Error> for ApiError {
    fn from(e: state::Error) -> Self {
        ApiError(e.into())
    }
}

impl From<crate::error::Error> for ApiError {
    fn from(e: crate::error::Error) -> Self {
        ApiError(e)
    }
}

async fn healthz(State(state): State<AdminState>) -> Response {
    let ready = state.ready.load(Ordering::SeqCst);
    let (v16, v201) = state.registry.count_by_version();
    let peers = state.peers.all();
    let ids: Vec<String> = peers.iter().map(|p| p.id.0.clone()).collect();
    let stats = state.store.outbox_stats(&ids).unwrap_or_default();
    let peers: Vec<Value> = peers
        .iter()
        .map(|p| {
            let s = stats.iter().find(|s| s.peer == p.id.0);
            json!({
                "id": p.id,
                "registration": p.status,
                "outbox": s.map(outbox_stats_json),
            })
        })
        .collect();
    let body = json!({
        "status": if ready { "ok" } else { "unavailable" },
        "state_open": true,
        "listeners_bound": ready,
        "stations_connected": {"1.6": v16, "2.0.1": v201},
        "peers": peers,
        "state_recovered_from_corruption": state.store.recovered_from().map(|p| p.display().to_string()),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Gauges that are facts of the store, not of this process's history: set at scrape time so
/// they are right after a restart too.
fn refresh_gauges(state: &AdminState) {
    let ids: Vec<String> = state.peers.all().iter().map(|p| p.id.0.clone()).collect();
    if let Ok(stats) = state.store.outbox_stats(&ids) {
        for s in stats {
            metrics::gauge!("ocpi_outbox_depth", "peer" => s.peer.clone()).set(s.depth as f64);
            metrics::gauge!("ocpi_outbox_parked", "peer" => s.peer.clone()).set(s.parked as f64);
            let age = s.oldest.map_or(0.0, |o| {
                (chrono::Utc::now() - o).num_milliseconds() as f64 / 1000.0
            });
            metrics::gauge!("ocpi_outbox_oldest_age_seconds", "peer" => s.peer.clone()).set(age);
        }
    }
    if let Ok(records) = state.store.records::<SessionRecord>() {
        let active = records
            .iter()
            .filter(|r| r.status == ocpi::types::SessionStatus::Active)
            .count();
        metrics::gauge!("bridge_sessions_active").set(active as f64);
    }
    if let Ok(tx) = state.store.transactions() {
        let open = tx
            .iter()
            .filter(|t| t.status == state::TransactionStatus::Active)
            .count();
        metrics::gauge!("bridge_transactions_active").set(open as f64);
    }
    let (v16, v201) = state.registry.count_by_version();
    metrics::gauge!("ocpp_stations_connected", "version" => "1.6").set(v16 as f64);
    metrics::gauge!("ocpp_stations_connected", "version" => "2.0.1").set(v201 as f64);
    if let Ok(size) = state.store.size_on_disk() {
        metrics::gauge!("bridge_state_size_bytes").set(size as f64);
    }
    let commits = state.store.commit_stats();
    metrics::counter!("bridge_state_commit_flushes_total").absolute(commits.flushes);
    metrics::counter!("bridge_state_commit_updates_total").absolute(commits.updates);
    metrics::gauge!("bridge_ready").set(if state.ready.load(Ordering::SeqCst) {
        1.0
    } else {
        0.0
    });
}

async fn metrics(State(state): State<AdminState>) -> Response {
    refresh_gauges(&state);
    match &state.metrics {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}

fn station_json(state: &AdminState, s: &state::Station) -> Result<Value, state::Error> {
    let connectors: Vec<Value> = state
        .store
        .connectors(&s.id)?
        .into_iter()
        .map(|c| {
            json!({
                "evse_id": c.evse_id,
                "connector_id": c.connector_id,
                "status": c.status,
                "error_code": c.error_code,
                "info": c.info,
                "timestamp": c.timestamp,
            })
        })
        .collect();
    let id = ocpp::StationId(s.id.clone());
    let configured = state.settings.station(&s.id);
    Ok(json!({
        "id": s.id,
        "online": s.online && state.registry.get(&id).is_some(),
        "ocpp_version": s.ocpp_version,
        "location": configured.map(|c| c.location.clone()),
        "vendor": s.vendor,
        "model": s.model,
        "serial_number": s.serial_number,
        "firmware_version": s.firmware_version,
        "firmware_status": s.firmware_status,
        "meter_serial_number": s.meter_serial_number,
        "last_boot": s.last_boot,
        "last_seen": s.last_seen,
        "connected_at": s.connected_at,
        "disconnected_at": s.disconnected_at,
        "connectors": connectors,
    }))
}

async fn stations(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for s in state.store.stations()? {
        out.push(station_json(&state, &s)?);
    }
    Ok(Json(Value::Array(out)))
}

async fn station(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(match state.store.station(&id)? {
        Some(s) => Json(station_json(&state, &s)?).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown station"})),
        )
            .into_response(),
    })
}

/// A transaction as the admin API shows it, with its stored samples. The sample count and the
/// last energy reading are read from the stored samples: the
/// record is not written again for every sample-only message (`must_rewrite` in the station
/// service).
fn live_transaction(
    store: &Store,
    mut t: state::Transaction,
) -> Result<(state::Transaction, Vec<state::MeterSample>), state::Error> {
    let samples = store.samples(&t.id)?;
    t.samples = samples.len() as u64;
    if let Some((_, last)) = crate::meter::energy_readings(&samples).last {
        t.meter_last_wh = Some(t.meter_last_wh.map_or(last, |m| m.max(last)));
    }
    Ok((t, samples))
}

fn transaction_json(t: &state::Transaction) -> Value {
    json!({
        "id": t.id,
        "station_id": t.station_id,
        "evse_id": t.evse_id,
        "connector_id": t.connector_id,
        "ocpp_transaction_id": t.ocpp_transaction_id,
        "ocpp_version": t.ocpp_version,
        "id_token": t.id_token,
        "id_token_type": t.id_token_type,
        "status": t.status,
        "started_at": t.started_at,
        "stopped_at": t.stopped_at,
        "meter_start_wh": t.meter_start_wh.map(json_number),
        "meter_stop_wh": t.meter_stop_wh.map(json_number),
        "meter_last_wh": t.meter_last_wh.map(json_number),
        "stop_reason": t.stop_reason,
        "offline": t.offline,
        "remote_start_id": t.remote_start_id,
        "reservation_id": t.reservation_id,
        "charging_state": t.charging_state,
        "time_spent_charging": t.time_spent_charging,
        "last_seq_no": t.last_seq_no,
        "samples": t.samples,
        "updated_at": t.updated_at,
    })
}

async fn transactions(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let mut all = Vec::new();
    for t in state.store.transactions()? {
        all.push(transaction_json(&live_transaction(&state.store, t)?.0));
    }
    Ok(Json(Value::Array(all)))
}

async fn transaction(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(match state.store.transaction(&id)? {
        Some(t) => {
            let (t, samples) = live_transaction(&state.store, t)?;
            let mut v = transaction_json(&t);
            v["meter_values"] = serde_json::to_value(&samples).unwrap_or(Value::Null);
            Json(v).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown transaction"})),
        )
            .into_response(),
    })
}

fn peer_json(p: &ocpi::Peer) -> Value {
    json!({
        "id": p.id,
        "status": p.status,
        "initiated_by": p.initiated_by,
        "version": p.version,
        "allowed_versions": p.options.versions,
        "quirks": p.options.quirks,
        "versions_url": p.versions_url,
        "registered_at": p.registered_at,
        "roles": p.roles.iter().map(|r| json!({
            "role": r.role, "country_code": r.country_code, "party_id": r.party_id,
            "name": r.business_details.name,
        })).collect::<Vec<_>>(),
        "endpoints": p.endpoints,
    })
}

async fn peers(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let peers = state.peers.all();
    let ids: Vec<String> = peers.iter().map(|p| p.id.0.clone()).collect();
    let stats = state.store.outbox_stats(&ids)?;
    let out = peers
        .iter()
        .map(|p| {
            let mut v = peer_json(p);
            if let Some(s) = stats.iter().find(|s| s.peer == p.id.0) {
                v["outbox"] = outbox_stats_json(s);
            }
            v
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `POST /admin/peers/token-a`: a fresh single-use token A for the next peer.
async fn peer_token_a(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let token = state.credentials.issue_token_a()?;
    Ok(Json(json!({
        "token_a": token,
        "versions_url": format!(
            "{}/ocpi/versions",
            state.settings.ocpi.public_url.trim_end_matches('/')
        ),
    })))
}

fn unknown_peer(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no OCPI peer {id}")})),
    )
        .into_response()
}

/// `POST /admin/peers/{id}/rotate`: credentials PUT with a new token, endpoints refreshed.
async fn peer_rotate(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let id = ocpi::PeerId(id);
    if state.credentials.peer(&id).is_none() {
        return unknown_peer(id.as_str());
    }
    match state.credentials.rotate(&id, "operator").await {
        Ok(peer) => Json(json!({"rotated": true, "peer": peer_json(&peer)})).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"rotated": false, "error": format!("rotation failed, the old tokens stay: {e}")})),
        )
            .into_response(),
    }
}

/// `POST /admin/peers/{id}/unregister`: DELETE at the peer, then forgotten locally.
async fn peer_unregister(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let id = ocpi::PeerId(id);
    if state.credentials.peer(&id).is_none() {
        return unknown_peer(id.as_str());
    }
    match state.credentials.unregister(&id).await {
        Ok(()) => Json(json!({"unregistered": id, "remote": "accepted"})).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"unregistered": id, "remote": "failed",
                "error": format!("forgotten locally, but the DELETE at the peer failed: {e}")})),
        )
            .into_response(),
    }
}

fn outbox_stats_json(s: &state::OutboxStats) -> Value {
    let age = s
        .oldest
        .map(|o| (chrono::Utc::now() - o).num_milliseconds() as f64 / 1000.0);
    json!({"peer": s.peer, "depth": s.depth, "oldest": s.oldest, "oldest_age_seconds": age, "parked": s.parked})
}

fn entry_json(e: &Entry) -> Value {
    json!({
        "peer": e.peer, "seq": e.seq, "method": e.push.method(), "module": e.push.module(),
        "path": e.push.subject(), "push": e.push, "created_at": e.created_at,
        "attempts": e.attempts, "last_error": e.last_error, "parked_reason": e.parked_reason,
    })
}

async fn outbox(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let ids: Vec<String> = state.peers.all().iter().map(|p| p.id.0.clone()).collect();
    let stats = state.store.outbox_stats(&ids)?;
    let mut queued = Vec::new();
    for id in &ids {
        queued.extend(
            state
                .store
                .outbox_head::<Push>(id, 50)?
                .iter()
                .map(entry_json),
        );
    }
    let parked: Vec<Value> = state
        .store
        .outbox_parked::<Push>()?
        .iter()
        .map(entry_json)
        .collect();
    Ok(Json(json!({
        "peers": stats.iter().map(outbox_stats_json).collect::<Vec<_>>(),
        "queued": queued,
        "parked": parked,
    })))
}

async fn outbox_retry(
    State(state): State<AdminState>,
    Path((peer, seq)): Path<(String, u64)>,
) -> Result<Response, ApiError> {
    if state.store.outbox_retry_parked::<Push>(&peer, seq)? {
        state.store.flush().await?;
        state.push.wake([&peer]);
        tracing::info!(peer = %peer, seq, "operator re-queued a parked push");
        Ok(Json(json!({"requeued": true})).into_response())
    } else {
        Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such parked entry"})),
        )
            .into_response())
    }
}

#[derive(serde::Deserialize)]
struct DropBody {
    reason: String,
}

async fn outbox_drop(
    State(state): State<AdminState>,
    Path((peer, seq)): Path<(String, u64)>,
    body: Option<Json<DropBody>>,
) -> Result<Response, ApiError> {
    let Some(Json(DropBody { reason })) = body.filter(|b| !b.reason.trim().is_empty()) else {
        return Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "a JSON body {\"reason\": \"…\"} is required"})),
        )
            .into_response());
    };
    match state.store.outbox_drop_parked::<Push>(&peer, seq)? {
        Some(e) => {
            state.store.flush().await?;
            tracing::warn!(peer = %peer, seq, module = e.push.module(), push = %e.push.subject(), reason = %reason, "operator dropped a parked push");
            Ok(Json(json!({"dropped": entry_json(&e), "reason": reason})).into_response())
        }
        None => Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such parked entry"})),
        )
            .into_response()),
    }
}

async fn sessions(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.sessions.list()?).unwrap_or_default(),
    ))
}

async fn cdrs(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for cdr in state.sessions.cdrs()? {
        let mut v = serde_json::to_value(&cdr).unwrap_or_default();
        v["delivered_location"] = state
            .sessions
            .cdr_location_url(cdr.id.as_str())?
            .map_or(Value::Null, Value::String);
        out.push(v);
    }
    Ok(Json(Value::Array(out)))
}

async fn cdrs_held(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let held: Vec<Value> = state
        .sessions
        .held()?
        .into_iter()
        .map(|h| {
            json!({
                "id": h.cdr.id.as_str(),
                "reason": h.reason,
                "held_at": h.held_at,
                "total_energy": h.cdr.total_energy,
                "party": format!("{}/{}", h.cdr.cdr_token.country_code.as_str(), h.cdr.cdr_token.party_id.as_str()),
                "cdr": h.cdr,
            })
        })
        .collect();
    Ok(Json(Value::Array(held)))
}

fn refused(r: crate::sessions::corrections::Refusal) -> Response {
    use crate::sessions::corrections::Refusal;
    let status = match r {
        Refusal::NotFound => StatusCode::NOT_FOUND,
        Refusal::Conflict(_) => StatusCode::CONFLICT,
    };
    (status, Json(json!({"error": r.to_string()}))).into_response()
}

async fn cdr_reprice(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(match state.sessions.reprice_held(&id).await? {
        Ok(cdr) => Json(json!({"released": cdr})).into_response(),
        Err(r) => refused(r),
    })
}

/// `POST /admin/cdrs/{id}/credit`, body `{"reprice": true}` optional.
#[derive(Debug, serde::Deserialize)]
struct CreditBody {
    #[serde(default)]
    reprice: bool,
}

async fn cdr_credit(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Option<Json<CreditBody>>,
) -> Result<Response, ApiError> {
    let reprice = body.is_some_and(|Json(b)| b.reprice);
    Ok(match state.sessions.credit(&id, reprice).await? {
        Ok((credit, new)) => Json(json!({"credit": credit, "cdr": new})).into_response(),
        Err(r) => refused(r),
    })
}

async fn tokens_summary(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "count": state.store.count::<StoredToken>() })))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tower::ServiceExt;

    /// An admin state over a fresh store and the default configuration (also the page's tests).
    pub(crate) fn state(dir: &std::path::Path, ready: bool) -> AdminState {
        let path = dir.join("bridge.toml");
        std::fs::write(&path, "").unwrap();
        let settings = Arc::new(crate::config::load_with_env(Some(&path), []).unwrap());
        let store = Store::open(&state::Settings {
            path: dir.join("db"),
            cache_bytes: 8 << 20,
        })
        .unwrap();
        let registry = ocpp::Registry::default();
        let (core, _wakes) =
            crate::app::Core::build(settings.clone(), store.clone(), registry.clone()).unwrap();
        AdminState {
            settings,
            store,
            registry,
            ready: Arc::new(AtomicBool::new(ready)),
            metrics: None,
            peers: core.peers,
            push: core.push,
            sessions: core.sessions,
            credentials: core.credentials,
            tls: crate::tls::Tls::default(),
        }
    }

    async fn get(app: Router, path: &str) -> (StatusCode, Value) {
        let resp = app
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[test]
    fn authorization_schemes_are_case_insensitive() {
        for ok in [
            "Bearer t0ken",
            "bearer t0ken",
            "BEARER  t0ken ",
            "  Bearer t0ken",
        ] {
            assert!(authorization_matches(Some(ok), "t0ken"), "{ok}");
        }
        for bad in [
            "Bearer t0ke",
            "Token t0ken",
            "t0ken",
            "Bearer",
            "Bearer t0kenX",
            "",
        ] {
            assert!(!authorization_matches(Some(bad), "t0ken"), "{bad}");
        }
        assert!(!authorization_matches(None, "t0ken"));
    }

    #[tokio::test]
    async fn healthz_flips_with_readiness() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path(), false);
        let (code, body) = get(router(st.clone()), "/healthz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "unavailable");
        st.ready.store(true, Ordering::SeqCst);
        let (code, body) = get(router(st.clone()), "/healthz").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["status"], "ok");
    }

    #[tokio::test]
    async fn an_admin_token_guards_the_admin_api_but_not_health() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut st = state(dir.path(), true);
        let mut settings = (*st.settings).clone();
        settings.admin.token = Some(secrecy::SecretString::from("t0ken"));
        st.settings = Arc::new(settings);
        let (code, _) = get(router(st.clone()), "/admin/stations").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, _) = get(router(st.clone()), "/healthz").await;
        assert_eq!(code, StatusCode::OK);
        let resp = router(st)
            .oneshot(
                axum::http::Request::get("/admin/stations")
                    .header("authorization", "Bearer t0ken")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_follow_the_admin_token_unless_public() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut st = state(dir.path(), true);
        let mut settings = (*st.settings).clone();
        settings.admin.token = Some(secrecy::SecretString::from("t0ken"));
        st.settings = Arc::new(settings.clone());
        let (code, _) = get(router(st.clone()), "/metrics").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        settings.admin.metrics_public = true;
        st.settings = Arc::new(settings);
        let (code, _) = get(router(st), "/metrics").await;
        // No recorder in unit tests: past the token check, the route answers 404.
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
}
