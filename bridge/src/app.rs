//! Wiring: [`Core::build`] constructs the parts bottom-up (catalog → peers, push queue →
//! authorization → sessions → reservations → commands → station service → the OCPI adapter),
//! and [`run`] binds the listeners, starts the background tasks and serves until shutdown.
//!
//! Nothing is installed late: every part gets the handles it needs when it is made.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use state::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::Authorizer;
use crate::catalog::Catalog;
use crate::commands::Commands;
use crate::config::Settings;
use crate::cpo::{self, Cpo};
use crate::error::Logged;
use crate::hub::HubClients;
use crate::outbox::{PushQueue, Wake};
use crate::peers::{self, PeerRecords};
use crate::push::Pusher;
use crate::reservations::Reservations;
use crate::sessions::Sessions;
use crate::smart::Smart;
use crate::station::{self, StationService};
use crate::{admin, page, supervisor, tls, tokens};

/// The addresses the daemon actually bound (port 0 in the config becomes a real port).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Addresses {
    /// OCPP websocket listener.
    pub ocpp: SocketAddr,
    /// OCPP TLS (`wss://`) listener, when `ocpp.tls_listen` is set.
    pub ocpp_tls: Option<SocketAddr>,
    /// OCPI HTTP listener.
    pub ocpi: SocketAddr,
    /// Admin HTTP listener.
    pub admin: SocketAddr,
}

/// How long shutdown waits for connections and HTTP requests to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Every part of the daemon, built in dependency order.
#[derive(Debug)]
pub struct Core {
    /// Configuration facts.
    pub catalog: Arc<Catalog>,
    /// The store.
    pub store: Store,
    /// Registered OCPI peers.
    pub peers: ocpi::Peers,
    /// Outbound OCPI client.
    pub client: ocpi::Client,
    /// Wakes the pusher.
    pub push: PushQueue,
    /// Decides authorizations.
    pub authorizer: Arc<Authorizer>,
    /// The session flow.
    pub sessions: Arc<Sessions>,
    /// Reservations.
    pub reservations: Reservations,
    /// OCPI commands.
    pub commands: Commands,
    /// OCPI ChargingProfiles (smart charging).
    pub smart: Smart,
    /// The OCPP application.
    pub station: Arc<StationService>,
    /// Parties behind hubs (ClientInfo, held pushes).
    pub hub: HubClients,
    /// The OCPI side (server router, registration).
    pub platform: Arc<ocpi::Platform<Cpo>>,
    /// Token rotation, unregistration, tokens A.
    pub credentials: crate::credentials::Lifecycle,
    /// Whether the configuration changed since the last start.
    pub config_changed: bool,
}

impl Core {
    /// Builds every part over `store`; stations are reached through `registry`. Returns the
    /// receiver the pusher reads.
    pub fn build(
        settings: Arc<Settings>,
        store: Store,
        registry: ocpp::Registry,
    ) -> anyhow::Result<(Core, mpsc::UnboundedReceiver<Wake>)> {
        let (catalog, config_changed) = Catalog::new(settings.clone(), store.clone())?;
        let catalog = Arc::new(catalog);
        let peers = ocpi::Peers::load(Arc::new(PeerRecords(store.clone())))
            .map_err(|e| anyhow::anyhow!("loading OCPI peers: {e}"))?;
        let client = match tls::ocpi_extra_roots(&settings)? {
            Some(pem) => ocpi::Client::with_extra_roots(&catalog.ocpi_settings(), &pem),
            None => ocpi::Client::new(&catalog.ocpi_settings()),
        }
        .map_err(|e| anyhow::anyhow!("OCPI client set-up failed: {e}"))?;
        let (push, wakes) = PushQueue::new();
        let hub = HubClients::load(store.clone(), push.clone())
            .context("loading the parties behind hubs")?;
        let authorizer = Arc::new(
            Authorizer::new(
                store.clone(),
                Some((peers.clone(), client.clone())),
                Duration::from_millis(settings.ocpi.authorize_timeout_ms),
            )
            .with_local_policy(&settings.ocpp.local_id_tags, settings.ocpp.free_vend),
        );
        let sessions = Arc::new(Sessions::new(
            catalog.clone(),
            store.clone(),
            peers.clone(),
            push.clone(),
        ));
        let reservations = Reservations::new(store.clone(), push.clone(), sessions.clone());
        let smart = Smart::new(
            catalog.clone(),
            store.clone(),
            registry.clone(),
            peers.clone(),
            push.clone(),
        );
        let commands = Commands::new(
            catalog.clone(),
            store.clone(),
            registry,
            authorizer.clone(),
            push.clone(),
            reservations.clone(),
        );
        let station = Arc::new(StationService::new(station::Parts {
            catalog: catalog.clone(),
            store: store.clone(),
            peers: peers.clone(),
            push: push.clone(),
            authorizer: authorizer.clone(),
            sessions: sessions.clone(),
            reservations: reservations.clone(),
            commands: commands.clone(),
            smart: smart.clone(),
        }));
        let cpo = Cpo::new(
            catalog.clone(),
            store.clone(),
            sessions.clone(),
            commands.clone(),
            smart.clone(),
            push.clone(),
            hub.clone(),
        );
        let platform = ocpi::Platform::with_client(Arc::new(cpo), peers.clone(), client.clone());
        let credentials = crate::credentials::Lifecycle::new(platform.clone(), store.clone());
        let core = Core {
            catalog,
            store,
            peers,
            client,
            push,
            authorizer,
            sessions,
            reservations,
            commands,
            smart,
            station,
            hub,
            platform,
            credentials,
            config_changed,
        };
        Ok((core, wakes))
    }

    /// The pusher over this core's parts.
    pub fn pusher(&self) -> Pusher {
        Pusher {
            peers: self.peers.clone(),
            client: self.client.clone(),
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            sessions: self.sessions.clone(),
            hub: self.hub.clone(),
            concurrency: self.catalog.settings().ocpi.push_concurrency,
        }
    }
}

/// Runs the daemon until `shutdown` is cancelled. `on_ready` is called once the store is open
/// and every listener is bound.
pub async fn run(
    settings: Settings,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Addresses),
) -> anyhow::Result<()> {
    let mut settings = settings;
    // Certificates first: a bad file stops the start with the key and the file named.
    let tls = tls::Tls::load(&settings)?;
    let store_settings = state::Settings {
        path: settings.state.path.clone(),
        cache_bytes: settings.state.cache_mb * 1024 * 1024,
    };
    let store = tokio::task::spawn_blocking(move || Store::open(&store_settings))
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
    let ocpp_tls_server = match (settings.ocpp.tls_listen, tls.handle("ocpp")) {
        (Some(addr), Some(handle)) => Some(
            ocpp::Server::bind(addr, settings.ocpp.server_settings())
                .with_context(|| format!("cannot bind ocpp.tls_listen {addr}"))?
                .with_registry(ocpp_server.registry())
                .with_tls(handle),
        ),
        _ => None,
    };
    let ocpi_listener = tokio::net::TcpListener::bind(settings.ocpi.listen)
        .await
        .with_context(|| format!("cannot bind ocpi.listen {}", settings.ocpi.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(settings.admin.listen)
        .await
        .with_context(|| format!("cannot bind admin.listen {}", settings.admin.listen))?;
    let addresses = Addresses {
        ocpp: ocpp_server.local_addr(),
        ocpp_tls: ocpp_tls_server.as_ref().map(ocpp::Server::local_addr),
        ocpi: ocpi_listener.local_addr()?,
        admin: admin_listener.local_addr()?,
    };
    settings.ocpi.public_url =
        public_url_with_port(&settings.ocpi.public_url, addresses.ocpi.port());
    let settings = Arc::new(settings);

    let ready = Arc::new(AtomicBool::new(false));
    let registry = ocpp_server.registry();
    let (core, wakes) = Core::build(settings.clone(), store.clone(), registry.clone())?;
    // No outbound OCPI request (a peer's URL, a command's response_url) may reach the bridge
    // itself: docs/security.md, "Outbound requests".
    core.client.egress().deny_listeners(
        [addresses.ocpp, addresses.ocpi, addresses.admin]
            .into_iter()
            .chain(addresses.ocpp_tls),
    );
    core.client
        .egress()
        .deny_origin_of(&settings.ocpi.public_url);
    // Removals first: a peer must hear that an EVSE is REMOVED before a Location PUT without it.
    let removals = cpo::queue_removals(&store, &core.catalog, &core.peers.all())?;
    if !removals.evses.is_empty() || !removals.tariffs.is_empty() {
        store.flush().await?;
    }
    if core.config_changed {
        let peers = core.peers.all();
        if !peers.is_empty() {
            tracing::info!(
                peers = peers.len(),
                "configuration changed: queueing Locations and Tariffs for every peer"
            );
            cpo::queue_full_sync(&store, &core.catalog, &peers)?;
            store.flush().await?;
        }
    }
    // A store from a version without the Sessions/CDRs listings gets them once.
    let filed = crate::sessions::listing::build(&store)?;
    if filed > 0 {
        tracing::info!(filed, "filed stored Sessions and CDRs for paginated GETs");
        store.flush().await?;
    }
    core.sessions.check_backup();
    core.sessions.recover().await;
    // Charging profile requests left in flight get their (REJECTED) result now.
    core.smart.recover().await;
    // Commands left in flight by a crash or restart get their (FAILED) result now.
    core.commands.recover().await;

    let tasks = tokio_util::task::TaskTracker::new();
    let ocpp_task = tasks.spawn(ocpp_server.run(core.station.clone(), shutdown.clone()));
    let ocpp_tls_task = ocpp_tls_server
        .map(|server| tasks.spawn(server.run(core.station.clone(), shutdown.clone())));
    {
        let tls = tls.clone();
        let (client, reload_settings) = (core.client.clone(), settings.clone());
        supervisor::on_sighup(shutdown.clone(), move || {
            let listeners = tls.reload();
            // `ocpi.ca_file`: the extra roots of outbound OCPI requests, read again; a bad
            // file keeps the roots in use.
            let roots = match tls::ocpi_extra_roots(&reload_settings) {
                Ok(Some(pem)) => client
                    .reload_roots(Some(&pem))
                    .map(|_| true)
                    .map_err(|e| e.to_string()),
                Ok(None) => Ok(false),
                Err(e) => Err(e.to_string()),
            };
            match roots {
                Ok(true) => {
                    tracing::info!("ocpi.ca_file reloaded");
                    metrics::counter!("bridge_tls_reloads_total", "listener" => "ocpi_client", "result" => "ok").increment(1);
                }
                Ok(false) if listeners == 0 => {
                    tracing::info!("no TLS listener or ocpi.ca_file configured: nothing to reload");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "ocpi.ca_file reload failed: keeping the previous roots");
                    metrics::counter!("bridge_tls_reloads_total", "listener" => "ocpi_client", "result" => "error").increment(1);
                }
            }
        });
    }
    tasks.spawn(tls.clone().watch_expiry(shutdown.clone()));
    tasks.spawn(core.pusher().run(wakes, shutdown.clone()));
    tasks.spawn(sweep_offline(
        core.station.clone(),
        settings.ocpi.offline_grace,
        shutdown.clone(),
    ));
    tasks.spawn(finish_sessions(core.sessions.clone(), shutdown.clone()));
    tasks.spawn(persist_last_seen(core.station.clone(), shutdown.clone()));
    tasks.spawn(pull_tokens(
        core.peers.clone(),
        core.client.clone(),
        store.clone(),
        settings.ocpi.token_pull_interval,
        settings.ocpi.token_reconcile_interval,
        shutdown.clone(),
    ));
    tasks.spawn(
        core.credentials
            .clone()
            .run_schedule(settings.ocpi.token_rotation_days, shutdown.clone()),
    );
    for (id, versions_url) in peers::configured_peer_ids(&settings) {
        tasks.spawn(register_peer(
            core.platform.clone(),
            settings.clone(),
            id,
            versions_url,
            shutdown.clone(),
        ));
    }

    let admin_state = admin::AdminState {
        settings: settings.clone(),
        store: store.clone(),
        registry: registry.clone(),
        ready: ready.clone(),
        metrics,
        peers: core.peers.clone(),
        push: core.push.clone(),
        sessions: core.sessions.clone(),
        credentials: core.credentials.clone(),
        tls: tls.clone(),
    };
    let admin_app = admin::router(admin_state.clone()).merge(page::router(admin_state));
    let ocpi_app = core.platform.router();
    // The admin listener keeps serving until the station side has closed and the state is
    // flushed, so `/healthz` answers 503 (not "connection refused") while the daemon stops.
    let admin_shutdown = CancellationToken::new();
    let http_shutdown = shutdown.clone();
    tasks.spawn(crate::http::serve(
        "admin",
        admin_listener,
        admin_app,
        settings.admin.http_limits(),
        None,
        admin_shutdown.clone(),
    ));
    tasks.spawn(crate::http::serve(
        "ocpi",
        ocpi_listener,
        ocpi_app,
        settings.ocpi.http_limits(),
        tls.handle("ocpi"),
        http_shutdown,
    ));
    tasks.close();

    ready.store(true, Ordering::SeqCst);
    tracing::info!(
        ocpp = %addresses.ocpp,
        ocpp_tls = ?addresses.ocpp_tls,
        ocpi = %addresses.ocpi,
        ocpi_tls = settings.ocpi.tls.is_some(),
        admin = %addresses.admin,
        "ready"
    );
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
    let stations_closed = async {
        let _ = ocpp_task.await;
        if let Some(task) = ocpp_tls_task {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, stations_closed)
        .await
        .is_err()
    {
        tracing::warn!("station connections did not close in time");
    }
    if let Err(e) = core.station.persist_last_seen() {
        tracing::error!(error = %e, "writing the stations' last-seen times failed");
    }
    store.flush().await.or_log("flushing the state");
    admin_shutdown.cancel();
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

/// `http://host:0/…` becomes `http://host:{port}/…`: with `ocpi.listen` on port 0 (tests, or a
/// port chosen by the system) the advertised URLs must carry the port actually bound.
pub fn public_url_with_port(url: &str, port: u16) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    match authority.strip_suffix(":0") {
        Some(host) => {
            let sep = if path.is_empty() { "" } else { "/" };
            format!("{scheme}://{host}:{port}{sep}{path}")
        }
        None => url.to_owned(),
    }
}

/// Every 15 s: CDRs that waited for missing 2.0.1 events, reservation sessions whose
/// reservation ended unused, and anything interrupted.
async fn finish_sessions(sessions: Arc<Sessions>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(15)) => sessions.recover().await,
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Pulls tokens from each registered peer's Tokens sender ([`tokens::pull`]): soon after it
/// registers (or the daemon starts), then an incremental pull every `pull_secs` (0 = only that
/// first one) and a full reconcile every `reconcile_secs` (0 = only the first pull, which is
/// full when the peer was never pulled). A failed pull is tried again a minute later.
async fn pull_tokens(
    peers: ocpi::Peers,
    client: ocpi::Client,
    store: Store,
    pull_secs: u64,
    reconcile_secs: u64,
    shutdown: CancellationToken,
) {
    use ocpi::types::{InterfaceRole, ModuleId};
    const RETRY: Duration = Duration::from_secs(60);
    // When each peer's next pull is due (none yet: right away).
    let mut due: std::collections::HashMap<String, std::time::Instant> = Default::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
        for peer in peers.all() {
            if peer.status != ocpi::PeerStatus::Registered
                || peer
                    .endpoint(&ModuleId::Tokens, InterfaceRole::Sender)
                    .is_none()
            {
                continue;
            }
            let now = std::time::Instant::now();
            if due.get(&peer.id.0).is_some_and(|t| *t > now) {
                continue;
            }
            let last = store
                .record::<crate::records::TokenPull>(peer.id.as_str())
                .or_log("reading the token pull state")
                .flatten();
            let full = tokens::reconcile_due(last.as_ref(), reconcile_secs, chrono::Utc::now());
            match tokens::pull(&client, &store, &peer, full).await {
                Ok(r) => {
                    tracing::info!(peer = %peer.id, full = r.full, pages = r.pages, tokens = r.tokens,
                        removed = r.removed, "token pull done");
                    metrics::counter!("ocpi_token_pulls_total", "outcome" => "ok").increment(1);
                    let next = if pull_secs == 0 {
                        // Only the first pull: never again in this run.
                        Duration::from_secs(u64::from(u32::MAX))
                    } else {
                        Duration::from_secs(pull_secs)
                    };
                    due.insert(peer.id.0.clone(), now + next);
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.id, error = %e, "token pull failed; retrying in a minute");
                    metrics::counter!("ocpi_token_pulls_total", "outcome" => "failed").increment(1);
                    due.insert(peer.id.0.clone(), now + RETRY);
                }
            }
        }
    }
}

/// How often heartbeats' liveness facts (kept in memory) are written to the store.
const LAST_SEEN_EVERY: Duration = Duration::from_secs(60);

/// Every [`LAST_SEEN_EVERY`]: writes the stations' last-seen times (heartbeats only record
/// them in memory). The final write happens at shutdown.
async fn persist_last_seen(service: Arc<StationService>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LAST_SEEN_EVERY) => {
                if let Err(e) = service.persist_last_seen() {
                    tracing::error!(error = %e, "writing the stations' last-seen times failed");
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Every few seconds: stations offline longer than `grace_secs` get their EVSEs published as
/// UNKNOWN (once); they return to their real status when the station reconnects.
async fn sweep_offline(service: Arc<StationService>, grace_secs: u64, shutdown: CancellationToken) {
    let grace = chrono::Duration::seconds(grace_secs as i64);
    let started = chrono::Utc::now();
    let every = Duration::from_secs((grace_secs / 4).clamp(1, 30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => service.sweep_offline(grace, started).await,
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Registers with a configured peer unless a registration is already stored (a restart never
/// re-registers), retrying with capped exponential backoff until it succeeds or the daemon
/// stops.
async fn register_peer(
    platform: Arc<ocpi::Platform<Cpo>>,
    settings: Arc<Settings>,
    id: ocpi::PeerId,
    versions_url: String,
    shutdown: CancellationToken,
) {
    use secrecy::ExposeSecret;
    if platform
        .peers()
        .get(&id)
        .is_some_and(|p| crate::credentials::interrupted(&p))
    {
        // An interrupted rotation is finished by the credentials schedule.
        tracing::info!(peer = %id, "already registered");
        return;
    }
    let Some(cfg) = settings
        .ocpi
        .peers
        .iter()
        .find(|p| p.versions_url == versions_url)
    else {
        return;
    };
    if let Some(stored) = platform
        .peers()
        .get(&id)
        .filter(|p| p.status == ocpi::PeerStatus::Registered)
    {
        // Options edited in the configuration apply at start-up: quirks at once; a version pin
        // that excludes the stored version is renegotiated with a credentials PUT.
        let options = cfg.options();
        if stored.options != options {
            let allowed = options.allowed(&platform.settings().served_versions());
            let renegotiate = !allowed.contains(&stored.ocpi_version());
            // The token quirks decide how the Authorization header is written: now, not only
            // at the next registration.
            let encode_token = match stored.ocpi_version() {
                ocpi::types::OcpiVersion::V2_1_1 => {
                    options.quirks.contains(&ocpi::Quirk::Base64Token2_1_1)
                }
                _ if options.quirks.contains(&ocpi::Quirk::RawToken) => false,
                _ if stored.options.quirks.contains(&ocpi::Quirk::RawToken) => true,
                _ => stored.encode_token,
            };
            let updated = ocpi::Peer {
                options,
                encode_token,
                ..stored
            };
            if let Err(e) = platform.peers().save(updated) {
                tracing::warn!(peer = %id, error = %e, "could not store the peer's new options");
            } else if renegotiate {
                match platform.update_registration(&id).await {
                    Ok(peer) => {
                        tracing::info!(peer = %id, version = %peer.version, "version renegotiated")
                    }
                    Err(e) => {
                        tracing::warn!(peer = %id, error = %e, "renegotiating the version failed")
                    }
                }
            }
        }
        tracing::info!(peer = %id, "already registered");
        return;
    }
    let token = ocpi::types::AuthToken::new(cfg.token_a.expose_secret());
    let options = cfg.options();
    let mut wait = Duration::from_millis(500);
    loop {
        match platform
            .register_with_options(id.clone(), &versions_url, token.clone(), options.clone())
            .await
        {
            Ok(peer) => {
                tracing::info!(peer = %peer.id, "registered with OCPI peer");
                return;
            }
            Err(e) => {
                tracing::warn!(peer = %id, error = %e, retry_in = ?wait, "registration with OCPI peer failed");
                metrics::counter!("ocpi_registration_failures_total").increment(1);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}
