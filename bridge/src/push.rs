//! The pusher: drains the store's outbox to OCPI peers.
//!
//! One delivery task per peer, so a slow or dead peer never delays another. Each task sends its
//! peer's entries strictly in queue order: it picks the head entry (from then on nothing merges
//! into it), renders its typed body from the current state ([`Rendered`]), sends it with the
//! typed `ocpi::Client` method for its kind (which encodes it in the peer's current OCPI version,
//! read from the peer record at each attempt — [`ocpi::codec`]), and removes it only when the peer accepted it
//! (OCPI 1000) — flushing before it moves on. Network errors, timeouts, HTTP 5xx and OCPI 3xxx
//! are retried with exponential backoff and jitter (capped); a refusal (OCPI 2xxx, HTTP 4xx) is
//! logged with the peer's message and parked for an operator (admin API), so one bad entry does
//! not block the queue forever.
//!
//! Holding per party (hubs): an entry routed to a party that [`HubClients`] holds (not
//! CONNECTED, or the hub answered OCPI 4001/4003 for it) is passed over in place — the task
//! sends the first entry whose party is not held, so other parties' pushes never wait behind
//! it, and each party's own entries keep their order. A 4001/4003 answer holds the party
//! instead of parking or retrying the entry; a ClientInfo CONNECTED wakes the task again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ocpi::client::Recipient;
use ocpi::types::{
    CommandResult, CountryCode, EvseStatus, EvseUid, Location, LocationId, PartyId, SessionId,
    Tariff,
};
use ocpi::{Client, Peer, PeerId, PeerStatus, Peers, PushError};
use rand::Rng;
use state::Store;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::catalog::Catalog;
use crate::error::Logged;
use crate::hub::{self, HubClients};
use crate::outbox::{self, Entry, Push, Wake};
use crate::sessions::{SessionBody, Sessions};

/// Backoff bounds for retryable failures.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often an idle task looks at its queue even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// What the pusher needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct Pusher {
    /// The registered peers.
    pub peers: Peers,
    /// The outbound OCPI client.
    pub client: Client,
    /// The outbox lives here.
    pub store: Store,
    /// Renders Locations, EVSE statuses and Tariffs.
    pub catalog: Arc<Catalog>,
    /// Renders Sessions and hands out CDRs.
    pub sessions: Arc<Sessions>,
    /// Which parties behind a hub are held.
    pub hub: HubClients,
}

struct Task {
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

/// A push's body, rendered from the current state.
#[derive(Debug)]
enum Rendered {
    Location(Location),
    EvseStatus(LocationId, EvseUid, EvseStatus, ocpi::types::DateTime),
    Tariff(Tariff),
    Session(String, SessionBody),
    Cdr(ocpi::types::Cdr),
    CommandResult(String, CommandResult),
}

/// What became of one delivery attempt.
enum Outcome {
    Delivered,
    /// The hub cannot reach the entry's party (OCPI 4001/4003): hold the party.
    Unreachable((String, String), String),
    Retry(String),
    Refused(String),
}

impl Pusher {
    /// Runs until `shutdown`: starts a delivery task for every registered peer and follows
    /// [`Wake`] messages.
    pub async fn run(self, mut wakes: mpsc::UnboundedReceiver<Wake>, shutdown: CancellationToken) {
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
                self.clone()
                    .deliver(id.clone(), wake.clone(), cancel.clone())
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
        for peer in self.peers.all() {
            ensure(&peer.id, &mut tasks);
        }
        loop {
            tokio::select! {
                wake = wakes.recv() => match wake {
                    Some(Wake::Peer(id)) => ensure(&id, &mut tasks).notify_one(),
                    Some(Wake::All) => {
                        for peer in self.peers.all() {
                            ensure(&peer.id, &mut tasks).notify_one();
                        }
                    }
                    Some(Wake::Stop(id)) => {
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

    async fn deliver(self, peer_id: PeerId, wake: Arc<Notify>, cancel: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let Some(peer) = self.peers.get(&peer_id) else {
                tracing::info!(peer = %peer_id, "peer gone; delivery task ends");
                return;
            };
            // The first entry whose party is not held (see the module docs).
            let head = self
                .store
                .outbox_first_unheld::<Push>(peer_id.as_str(), |party| {
                    self.hub.held(peer_id.as_str(), party)
                })
                .or_log("reading the outbox")
                .flatten();
            let Some(entry) = head.filter(|_| peer.status == PeerStatus::Registered) else {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = cancel.cancelled() => return,
                }
                continue;
            };
            let module = entry.push.module();
            let count = |outcome: &'static str| {
                metrics::counter!("ocpi_push_total", "peer" => peer_id.0.clone(),
                    "module" => module, "outcome" => outcome)
                .increment(1);
            };
            match self.attempt(&peer, entry.seq).await {
                Outcome::Unreachable(party, reason) => {
                    // Not the entry's fault and not the hub's: hold the party, go on with the
                    // others at once.
                    count("held");
                    tracing::warn!(peer = %peer_id, seq = entry.seq, party = %format!("{}/{}", party.0, party.1),
                        reason = %reason, "hub cannot reach the party; its pushes are held until it is CONNECTED");
                    self.hub.mark_unreachable(peer_id.as_str(), &party, &reason);
                    self.store
                        .outbox_failed(peer_id.as_str(), entry.seq, &reason)
                        .or_log("recording a held attempt");
                }
                Outcome::Delivered => {
                    backoff = BACKOFF_MIN;
                    count("delivered");
                    if let Some(party) = &entry.to_party {
                        self.hub.mark_reachable(peer_id.as_str(), party);
                    }
                    self.store
                        .outbox_ack(peer_id.as_str(), entry.seq)
                        .or_log("removing a delivered entry");
                    self.store.flush().await.or_log("flush after delivery");
                }
                Outcome::Refused(reason) => match self.heal_location(&entry) {
                    // "If a PATCH fails, send the whole object": queue the Location PUT, then
                    // drop the PATCH (a crash in between only repeats the PATCH).
                    Some(loc) => {
                        tracing::warn!(peer = %peer_id, seq = entry.seq, location = %loc, reason = %reason,
                            "peer refused an EVSE update; sending the whole Location instead");
                        let put = outbox::entry(peer_id.as_str(), Push::Location { id: loc }, None);
                        let queued = self
                            .store
                            .update(|tx| tx.push_outbox(put.clone()))
                            .or_log("queueing the Location");
                        if queued.is_some() {
                            self.store
                                .outbox_ack(peer_id.as_str(), entry.seq)
                                .or_log("removing the refused PATCH");
                        }
                        self.store.flush().await.or_log("flush after healing");
                    }
                    None => {
                        count("parked");
                        tracing::warn!(peer = %peer_id, seq = entry.seq, method = entry.push.method(),
                            module, reason = %reason, "peer refused a push; parked");
                        self.store
                            .outbox_park(peer_id.as_str(), entry.seq, &reason)
                            .or_log("parking a refused push");
                        self.store.flush().await.or_log("flush after parking");
                    }
                },
                Outcome::Retry(reason) => {
                    count("retry");
                    self.store
                        .outbox_failed(peer_id.as_str(), entry.seq, &reason)
                        .or_log("recording a failed attempt");
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

    /// Renders a push from the current state; `None` when its object no longer exists.
    fn render(&self, push: &Push, peer: &str) -> Result<Option<Rendered>, crate::error::Error> {
        Ok(match push {
            Push::Location { id } => match self.catalog.location(id) {
                Some(loc) => Some(Rendered::Location(self.catalog.build_location(loc)?)),
                None => None,
            },
            Push::EvseStatus { station, evse } => self
                .catalog
                .evse_status(station, *evse)?
                .map(|(l, u, s, t)| Rendered::EvseStatus(l, u, s, t)),
            Push::Tariff { id } => self.catalog.tariff(id).cloned().map(Rendered::Tariff),
            Push::Session { id } => self
                .sessions
                .render_push(id, false, peer)?
                .map(|b| Rendered::Session(id.clone(), b)),
            Push::SessionPatch { id } => self
                .sessions
                .render_push(id, true, peer)?
                .map(|b| Rendered::Session(id.clone(), b)),
            Push::Cdr { id } => self.sessions.cdr(id)?.map(Rendered::Cdr),
            Push::CommandResult {
                response_url,
                result,
            } => Some(Rendered::CommandResult(
                response_url.clone(),
                result.clone(),
            )),
        })
    }

    async fn attempt(&self, peer: &Peer, seq: u64) -> Outcome {
        let entry: Entry = match self.store.outbox_pick(peer.id.as_str(), seq) {
            Ok(Some(e)) => e,
            Ok(None) => return Outcome::Delivered, // merged away or dropped meanwhile
            Err(e) => return Outcome::Retry(format!("store: {e}")),
        };
        let rendered = match self.render(&entry.push, peer.id.as_str()) {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::info!(peer = %peer.id, push = %entry.push.subject(), "object no longer exists; entry dropped");
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
        let client = &self.client;
        let result = match &rendered {
            Rendered::Location(loc) => client.put_location(peer, loc).await.map(|_| None),
            Rendered::EvseStatus(loc, uid, status, at) => client
                .patch_evse_status(peer, loc, uid, *status, *at)
                .await
                .map(|_| None),
            Rendered::Tariff(t) => client.put_tariff(peer, t).await.map(|_| None),
            Rendered::Session(_, SessionBody::Put(s)) => {
                let loc = self.embedded_location(peer, s.location_id.as_str());
                client
                    .put_session_at(peer, s, loc.as_ref())
                    .await
                    .map(|_| None)
            }
            Rendered::Session(id, SessionBody::Patch(s, patch)) => client
                .patch_session(
                    peer,
                    &s.country_code,
                    &s.party_id,
                    &SessionId::new(id.clone()),
                    patch,
                    &to,
                )
                .await
                .map(|_| None),
            Rendered::Cdr(cdr) => {
                let loc = self.embedded_location(peer, cdr.cdr_location.id.as_str());
                client.post_cdr_at(peer, cdr, loc.as_ref()).await
            }
            Rendered::CommandResult(url, result) => client
                .post_command_result(peer, url, result, &to)
                .await
                .map(|_| None),
        };
        match result {
            Ok(location) => {
                match &rendered {
                    Rendered::Session(id, body) => {
                        self.sessions.session_delivered(peer.id.as_str(), id, body)
                    }
                    Rendered::Cdr(cdr) => self
                        .sessions
                        .cdr_delivered(cdr.id.as_str(), location.as_deref()),
                    _ => {}
                }
                Outcome::Delivered
            }
            Err(e)
                if hub::party_unreachable(&e)
                    && let Some(party) = entry.to_party.clone() =>
            {
                Outcome::Unreachable(party, e.to_string())
            }
            Err(e) if e.is_retryable() => Outcome::Retry(e.to_string()),
            // 401/403: our credentials are not (yet) accepted — typically a token rotation in
            // progress. Nothing else to this peer can succeed either, so wait and retry in order.
            Err(
                e @ PushError::Refused {
                    http_status: 401 | 403,
                    ..
                },
            ) => Outcome::Retry(e.to_string()),
            Err(e) => Outcome::Refused(e.to_string()),
        }
    }

    /// The Location a 2.1.1 Session or CDR embeds (other versions embed none). Rendered now, like
    /// the rest of the body: the peer's version is read at send time, so a version change
    /// applies to queued pushes too.
    fn embedded_location(&self, peer: &Peer, id: &str) -> Option<Location> {
        if !peer.ocpi_version().is_2_1_1() {
            return None;
        }
        let loc = self.catalog.location(id)?;
        self.catalog.build_location(loc).ok()
    }

    /// The Location to re-send when a peer refuses an EVSE update (it may not know the Location).
    fn heal_location(&self, entry: &Entry) -> Option<String> {
        let Push::EvseStatus { station, .. } = &entry.push else {
            return None;
        };
        Some(self.catalog.location_of(station)?.id.clone())
    }
}
