//! The pusher: drains the store's outbox to OCPI peers.
//!
//! One delivery task per peer, so a slow or dead peer never delays another. Each task sends its
//! peer's entries strictly in queue order: it picks the head entry (from then on nothing merges
//! into it), renders its body from the current state if it is a rendered entry, sends it, and
//! removes it only when the peer accepted it (OCPI 1000) — flushing before it moves on. Network
//! errors, timeouts, HTTP 5xx and OCPI 3xxx are retried with exponential backoff and jitter
//! (capped); a refusal (OCPI 2xxx, HTTP 4xx) is logged with the peer's message and parked for an
//! operator (admin API), so one bad entry does not block the queue forever.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use ocpi::types::{InterfaceRole, ModuleId};
use ocpi::{Peer, PeerId, PeerStatus, Platform};
use rand::Rng;
use state::{OutboxEntry, Store};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cpo::{Cpo, PushCommand};
use crate::flow::Flow;
use ocpi::client::Recipient;
use ocpi::types::{CountryCode, PartyId};

/// Backoff bounds for retryable failures.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often an idle task looks at its queue even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(30);

struct Task {
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

/// Runs the pusher until `shutdown`: starts a delivery task for every registered peer and
/// follows [`PushCommand`]s.
pub async fn run(
    platform: Arc<Platform<Cpo>>,
    flow: Option<Arc<Flow>>,
    store: Store,
    mut commands: mpsc::UnboundedReceiver<PushCommand>,
    shutdown: CancellationToken,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    let mut tasks: HashMap<PeerId, Task> = HashMap::new();
    let ensure = |id: &PeerId, tasks: &mut HashMap<PeerId, Task>| -> Arc<Notify> {
        if let Some(t) = tasks.get(id)
            && !t.cancel.is_cancelled()
        {
            return t.wake.clone();
        }
        let wake = Arc::new(Notify::new());
        let cancel = shutdown.child_token();
        let span = tracing::info_span!("push", peer = %id);
        tracker.spawn(
            deliver(
                platform.clone(),
                flow.clone(),
                store.clone(),
                id.clone(),
                wake.clone(),
                cancel.clone(),
            )
            .instrument(span),
        );
        tasks.insert(
            id.clone(),
            Task {
                wake: wake.clone(),
                cancel,
            },
        );
        wake
    };
    for peer in platform.peers().all() {
        ensure(&peer.id, &mut tasks);
    }
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(PushCommand::Wake(id)) => ensure(&id, &mut tasks).notify_one(),
                Some(PushCommand::WakeAll) => {
                    for peer in platform.peers().all() {
                        ensure(&peer.id, &mut tasks).notify_one();
                    }
                }
                Some(PushCommand::Stop(id)) => {
                    if let Some(t) = tasks.remove(&id) {
                        t.cancel.cancel();
                    }
                }
                None => break,
            },
            _ = shutdown.cancelled() => break,
        }
    }
    for t in tasks.values() {
        t.cancel.cancel();
    }
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("push tasks did not stop in time");
    }
}

/// What became of one delivery attempt.
enum Outcome {
    Delivered,
    Retry(String),
    Refused(String),
}

async fn deliver(
    platform: Arc<Platform<Cpo>>,
    flow: Option<Arc<Flow>>,
    store: Store,
    peer_id: PeerId,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let Some(peer) = platform.peers().get(&peer_id) else {
            tracing::info!(peer = %peer_id, "peer gone; delivery task ends");
            return;
        };
        let head = match store.outbox_head(peer_id.as_str(), 1) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(peer = %peer_id, error = %e, "reading the outbox failed");
                Vec::new()
            }
        };
        let Some(entry) = head
            .into_iter()
            .next()
            .filter(|_| peer.status == PeerStatus::Registered)
        else {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = cancel.cancelled() => return,
            }
            continue;
        };
        let outcome = attempt(&platform, flow.as_deref(), &store, &peer, entry.seq).await;
        match outcome {
            Outcome::Delivered => {
                backoff = BACKOFF_MIN;
                metrics::counter!("ocpi_push_total", "peer" => peer_id.0.clone(), "module" => entry.module.clone(), "outcome" => "delivered").increment(1);
                if let Err(e) = store.outbox_ack(peer_id.as_str(), entry.seq) {
                    tracing::error!(peer = %peer_id, error = %e, "removing a delivered entry failed");
                }
                if let Err(e) = store.flush().await {
                    tracing::error!(peer = %peer_id, error = %e, "flush after delivery failed");
                }
            }
            Outcome::Refused(reason) => match heal_location(&platform, &entry) {
                // "If a PATCH fails, send the whole object": queue the Location PUT, then drop
                // the PATCH (a crash in between only repeats the PATCH).
                Some(loc) => {
                    tracing::warn!(peer = %peer_id, seq = entry.seq, location = %loc, reason = %reason,
                        "peer refused an EVSE update; sending the whole Location instead");
                    let put = OutboxEntry::rendered(
                        peer_id.as_str(),
                        "PUT",
                        "locations",
                        crate::cpo::render::location(&loc),
                    );
                    if let Err(e) = store.update(|tx| tx.push_outbox(put.clone())) {
                        tracing::error!(peer = %peer_id, error = %e, "queueing the Location failed");
                    } else if let Err(e) = store.outbox_ack(peer_id.as_str(), entry.seq) {
                        tracing::error!(peer = %peer_id, error = %e, "removing the refused PATCH failed");
                    }
                    let _ = store.flush().await;
                }
                None => {
                    metrics::counter!("ocpi_push_total", "peer" => peer_id.0.clone(), "module" => entry.module.clone(), "outcome" => "parked").increment(1);
                    tracing::warn!(peer = %peer_id, seq = entry.seq, method = %entry.method, module = %entry.module, reason = %reason, "peer refused a push; parked");
                    if let Err(e) = store.outbox_park(peer_id.as_str(), entry.seq, &reason) {
                        tracing::error!(peer = %peer_id, error = %e, "parking failed");
                    }
                    let _ = store.flush().await;
                }
            },
            Outcome::Retry(reason) => {
                metrics::counter!("ocpi_push_total", "peer" => peer_id.0.clone(), "module" => entry.module.clone(), "outcome" => "retry").increment(1);
                let _ = store.outbox_failed(peer_id.as_str(), entry.seq, &reason);
                let jitter = rand::rng().random_range(0.5..1.0);
                let wait = backoff.mul_f64(jitter);
                tracing::warn!(peer = %peer_id, seq = entry.seq, reason = %reason, retry_in = ?wait, "push failed; will retry");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn module_id(name: &str) -> ModuleId {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .unwrap_or(ModuleId::Other(name.to_owned()))
}

async fn attempt(
    platform: &Platform<Cpo>,
    flow: Option<&Flow>,
    store: &Store,
    peer: &Peer,
    seq: u64,
) -> Outcome {
    let entry: OutboxEntry = match store.outbox_pick(peer.id.as_str(), seq) {
        Ok(Some(e)) => e,
        Ok(None) => return Outcome::Delivered, // merged away or dropped meanwhile
        Err(e) => return Outcome::Retry(format!("store: {e}")),
    };
    let rendered = match &entry.render {
        Some(key) if key.starts_with("session") => match flow {
            Some(f) => f.render(key, peer.id.as_str()),
            None => Ok(None),
        },
        Some(key) => platform.backend().render(key),
        None => Ok(Some((entry.path.clone(), entry.body.clone()))),
    };
    let (path, body) = match rendered {
        Ok(Some(r)) => r,
        Ok(None) => {
            tracing::info!(peer = %peer.id, render = ?entry.render, "object no longer exists; entry dropped");
            return Outcome::Delivered;
        }
        Err(e) => return Outcome::Retry(format!("render: {e}")),
    };
    let to = match &entry.to_party {
        Some((cc, pid)) => {
            Recipient::Party(CountryCode::new(cc.clone()), PartyId::new(pid.clone()))
        }
        None => Recipient::PeerParty,
    };
    let result = if entry.module == "command_result" {
        match serde_json::from_value::<ocpi::types::CommandResult>(body.clone()) {
            Ok(result) => {
                platform
                    .client()
                    .post_command_result(peer, &path, &result, &to)
                    .await
            }
            Err(e) => return Outcome::Refused(format!("not a CommandResult: {e}")),
        }
    } else {
        let method = match entry.method.as_str() {
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "POST" => Method::POST,
            "DELETE" => Method::DELETE,
            other => return Outcome::Refused(format!("unsupported method {other}")),
        };
        let module = module_id(&entry.module);
        let body = (!body.is_null()).then_some(&body);
        platform
            .client()
            .send_to(
                peer,
                &module,
                InterfaceRole::Receiver,
                method,
                &path,
                body,
                &to,
            )
            .await
    };
    match result {
        Ok(accepted) => {
            if let Some(f) = flow {
                f.delivered(
                    peer.id.as_str(),
                    &entry,
                    &body,
                    accepted.location_header.as_deref(),
                );
            }
            Outcome::Delivered
        }
        Err(e) if e.is_retryable() => Outcome::Retry(e.to_string()),
        // 401/403: our credentials are not (yet) accepted — typically a token rotation in
        // progress. Nothing else to this peer can succeed either, so wait and retry in order.
        Err(
            e @ ocpi::PushError::Refused {
                http_status: 401 | 403,
                ..
            },
        ) => Outcome::Retry(e.to_string()),
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// The Location to re-send when a peer refuses an EVSE update (it may not know the Location).
fn heal_location(platform: &Platform<Cpo>, entry: &OutboxEntry) -> Option<String> {
    let rest = entry.render.as_deref()?.strip_prefix("evse:")?;
    let (_, station) = rest.split_once(':')?;
    Some(platform.backend().location_of(station)?.id.clone())
}
