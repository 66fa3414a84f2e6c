//! # ocpp-ocpi-bridge
//!
//! The daemon: stations speak OCPP-J to it, it keeps their state in sled and is the operator's
//! OCPI 2.2.1 CPO endpoint. This crate is the wiring and all OCPP ↔ OCPI translation; the
//! protocols live in the `ocpp` and `ocpi` crates and storage in `state`.
//!
//! ## Layout
//! - [`config`]: settings, layered loading (defaults < TOML < `BRIDGE__*` env), validation.
//! - [`telemetry`]: tracing subscriber (text / JSON) and the Prometheus recorder.
//! - [`supervisor`]: signals, sd-notify READY / WATCHDOG / STOPPING.
//! - [`station`]: the [`ocpp::Csms`] implementation — applies station messages to the store
//!   and answers only after transaction messages are durable.
//! - [`meter`]: meter-value translation (units, energy register readings).
//! - [`admin`]: `/healthz`, `/metrics`, `/admin/*` JSON.
//!
//! ## Runtime shape
//! [`run`] opens the store, binds the three listeners (OCPP, OCPI, admin), reports the bound
//! addresses, then serves until the shutdown token is cancelled: it stops accepting, closes
//! station sockets with 1001, stops the HTTP servers, flushes the store and returns.

pub mod admin;
pub mod config;
pub mod meter;
pub mod station;
pub mod supervisor;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// The addresses the daemon actually bound (port 0 in the config becomes a real port).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Addresses {
    /// OCPP websocket listener.
    pub ocpp: SocketAddr,
    /// OCPI HTTP listener.
    pub ocpi: SocketAddr,
    /// Admin HTTP listener.
    pub admin: SocketAddr,
}

/// How long shutdown waits for connections and HTTP requests to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the daemon until `shutdown` is cancelled. `on_ready` is called once the store is open
/// and every listener is bound.
pub async fn run(
    settings: Settings,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Addresses),
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let store_settings = state::Settings {
        path: settings.state.path.clone(),
        cache_bytes: settings.state.cache_mb * 1024 * 1024,
    };
    let store = tokio::task::spawn_blocking(move || state::Store::open(&store_settings))
        .await
        .context("opening the state store panicked")?
        .with_context(|| format!("cannot open state at {}", settings.state.path.display()))?;
    if let Some(aside) = store.recovered_from() {
        tracing::error!(aside = %aside.display(), "state was corrupt and has been moved aside");
        metrics::counter!("bridge_state_recovered_total").increment(1);
    }
    store.mark_all_offline(chrono::Utc::now())?;

    let ocpp_server = ocpp::Server::bind(settings.ocpp.listen, settings.ocpp.server_settings())
        .with_context(|| format!("cannot bind ocpp.listen {}", settings.ocpp.listen))?;
    let ocpi_listener = tokio::net::TcpListener::bind(settings.ocpi.listen)
        .await
        .with_context(|| format!("cannot bind ocpi.listen {}", settings.ocpi.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(settings.admin.listen)
        .await
        .with_context(|| format!("cannot bind admin.listen {}", settings.admin.listen))?;
    let addresses = Addresses {
        ocpp: ocpp_server.local_addr(),
        ocpi: ocpi_listener.local_addr()?,
        admin: admin_listener.local_addr()?,
    };

    let ready = Arc::new(AtomicBool::new(false));
    let registry = ocpp_server.registry();
    let service = Arc::new(station::StationService::new(
        settings.clone(),
        store.clone(),
    ));

    let tasks = tokio_util::task::TaskTracker::new();
    let ocpp_task = tasks.spawn(ocpp_server.run(service, shutdown.clone()));

    let admin_app = admin::router(admin::AdminState {
        settings: settings.clone(),
        store: store.clone(),
        registry: registry.clone(),
        ready: ready.clone(),
        metrics,
    });
    let ocpi_app = axum::Router::new();
    let http_shutdown = shutdown.clone();
    tasks.spawn(serve(
        "admin",
        admin_listener,
        admin_app,
        http_shutdown.clone(),
    ));
    tasks.spawn(serve("ocpi", ocpi_listener, ocpi_app, http_shutdown));
    tasks.close();

    ready.store(true, Ordering::SeqCst);
    tracing::info!(ocpp = %addresses.ocpp, ocpi = %addresses.ocpi, admin = %addresses.admin, "ready");
    supervisor::notify_ready();
    {
        let ready = ready.clone();
        supervisor::spawn_watchdog(shutdown.clone(), move || ready.load(Ordering::SeqCst));
    }
    on_ready(&addresses);

    shutdown.cancelled().await;
    supervisor::notify_stopping();
    ready.store(false, Ordering::SeqCst);
    tracing::info!("shutting down: closing station connections");
    if tokio::time::timeout(SHUTDOWN_GRACE, ocpp_task)
        .await
        .is_err()
    {
        tracing::warn!("station connections did not close in time");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("HTTP servers did not stop in time");
    }
    store
        .flush()
        .await
        .context("final flush of the state failed")?;
    tracing::info!("state flushed; bye");
    Ok(())
}

async fn serve(
    name: &'static str,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: CancellationToken,
) {
    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    ));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(listener = name, error = %e, "HTTP server failed");
    }
}
