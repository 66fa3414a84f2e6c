//! The pusher: drains the store's outbox to OCPI peers.
//!
//! One delivery task per peer, so a slow or dead peer never delays another. Each task keeps a
//! window of its peer's queue loaded and up to `ocpi.push_concurrency` entries in flight: an
//! entry starts when no earlier entry of its [`Lane`] is waiting or in flight, so each object's
//! pushes keep their order (a Location before its EVSEs, an EVSE's statuses, a Session before
//! its CDR) while unrelated objects go side by side. Starting an entry picks it (from then on
//! nothing merges into it), renders its typed body from the current state ([`Rendered`]), sends
//! it with the typed `ocpi::Client` method for its kind (which encodes it in the peer's
//! current OCPI version, read from the peer record at each attempt: [`ocpi::codec`]), and removes
//! it only when the peer accepted it (OCPI 1000). Network errors, timeouts, HTTP 5xx and OCPI 3xxx pause the peer with
//! exponential backoff and jitter (capped), the entry keeping its place; a refusal (OCPI 2xxx,
//! HTTP 4xx) is logged with the peer's message and parked for an operator (admin API), so one
//! bad entry does not block its object forever.
//!
//! Holding per party (hubs): an entry routed to a party that [`HubClients`] holds (not
//! CONNECTED, or the hub answered OCPI 4001/4003 for it) is passed over in place — it is not
//! loaded into the window, so other parties' pushes never wait behind it, and each party's own
//! entries keep their order. A 4001/4003 answer holds the party
//! instead of parking or retrying the entry; a ClientInfo CONNECTED wakes the task again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ocpi::client::Recipient;
use ocpi::types::{
    ActiveChargingProfile, ActiveChargingProfileResult, ChargingProfileResult, ClearProfileResult,
    CommandResult, CountryCode, EvseStatus, EvseUid, Location, LocationId, PartyId, SessionId,
    Tariff,
};
use ocpi::{Client, Peer, PeerId, PeerStatus, Peers, PushError};
use rand::Rng;
use state::Store;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
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
/// Entries of one peer the delivery task keeps loaded to choose from.
const WINDOW: usize = 512;

/// Which pushes must keep their relative order: two entries conflict when they are in the same
/// group and one of them covers the whole group (`key` = `None`) or both have the same key.
/// A Location covers its EVSEs (its PUT is not overtaken by their PATCHes nor they by it); each
/// EVSE is its own key; a Session's PUT, PATCHes and CDR share a group; every tariff, every
/// command or charging-profile result, and each session's ActiveChargingProfile updates, is a
/// group of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    /// The object group.
    pub group: String,
    /// The object within the group (`None`: the whole group).
    pub key: Option<String>,
}

/// The lane of a push (`location_of` maps a station to its Location id).
pub fn lane(push: &Push, location_of: impl Fn(&str) -> Option<String>) -> Lane {
    let (group, key) = match push {
        Push::Location { id } => (format!("location:{id}"), None),
        Push::EvseStatus { station, evse } => (
            // A station without a configured location still orders its own EVSEs.
            location_of(station)
                .map_or_else(|| format!("station:{station}"), |l| format!("location:{l}")),
            Some(format!("{station}\0{evse}")),
        ),
        Push::Tariff { id } => (format!("tariff:{id}"), None),
        Push::Session { id }
        | Push::SessionPatch { id }
        | Push::Cdr {
            id: _,
            session: Some(id),
        }
        | Push::Cdr { id, session: None } => (format!("session:{id}"), None),
        // A removed EVSE stays behind its Location's PUTs (the REMOVED PATCH goes first).
        Push::EvseRemoved {
            location,
            station,
            uid,
            ..
        } => (
            format!("location:{location}"),
            Some(format!("{station}\0removed\0{uid}")),
        ),
        Push::TariffDelete { id } => (format!("tariff:{id}"), None),
        Push::CommandResult { response_url, .. }
        | Push::ChargingProfileResult { response_url, .. }
        | Push::ActiveChargingProfileResult { response_url, .. }
        | Push::ClearProfileResult { response_url, .. } => (format!("result:{response_url}"), None),
        Push::ActiveChargingProfile { session_id, .. } => {
            (format!("active_charging_profile:{session_id}"), None)
        }
    };
    Lane { group, key }
}

/// A loaded entry and its lane.
#[derive(Debug)]
struct Waiting {
    entry: Entry,
    lane: Lane,
}

/// The entries a delivery task considers, and which of them are in flight.
#[derive(Debug, Default)]
struct Window {
    entries: BTreeMap<u64, Waiting>,
    in_flight: HashSet<u64>,
}

impl Window {
    /// Entries that may start now, in queue order, so that at most `limit` are in flight: an
    /// entry starts only when no earlier entry of its lane is waiting or in flight.
    fn launchable(&self, limit: usize, probing: impl Fn(&(String, String)) -> bool) -> Vec<u64> {
        let mut room = limit.saturating_sub(self.in_flight.len());
        // A party being probed gets one push at a time (in flight or starting now).
        let mut probed: HashSet<&(String, String)> = self
            .in_flight
            .iter()
            .filter_map(|seq| self.entries.get(seq)?.entry.to_party.as_ref())
            .filter(|p| probing(p))
            .collect();
        let mut whole: HashSet<&str> = HashSet::new();
        let mut any: HashSet<&str> = HashSet::new();
        let mut keys: HashSet<(&str, &str)> = HashSet::new();
        let mut out = Vec::new();
        for (seq, w) in &self.entries {
            let g = w.lane.group.as_str();
            let blocked = match w.lane.key.as_deref() {
                None => any.contains(g),
                Some(k) => whole.contains(g) || keys.contains(&(g, k)),
            };
            let probe_busy = w
                .entry
                .to_party
                .as_ref()
                .is_some_and(|p| probing(p) && !probed.insert(p));
            if !blocked && !probe_busy && room > 0 && !self.in_flight.contains(seq) {
                out.push(*seq);
                room -= 1;
            }
            any.insert(g);
            match w.lane.key.as_deref() {
                None => {
                    whole.insert(g);
                }
                Some(k) => {
                    keys.insert((g, k));
                }
            }
        }
        out
    }

    /// Drops a held party's waiting entries (they are loaded again once it is released).
    fn forget_party(&mut self, party: &(String, String)) {
        let in_flight = &self.in_flight;
        self.entries
            .retain(|seq, w| in_flight.contains(seq) || w.entry.to_party.as_ref() != Some(party));
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

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
    /// Pushes in flight per peer (`ocpi.push_concurrency`).
    pub concurrency: usize,
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
    TariffDelete(String),
    Session(String, SessionBody),
    Cdr(ocpi::types::Cdr),
    CommandResult(String, CommandResult),
    ChargingProfileResult(String, ChargingProfileResult),
    ActiveChargingProfileResult(String, ActiveChargingProfileResult),
    ClearProfileResult(String, ClearProfileResult),
    ActiveChargingProfile(SessionId, ActiveChargingProfile),
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
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut window = Window::default();
        let mut flights: JoinSet<(u64, Outcome)> = JoinSet::new();
        // Which entry each attempt task carries: a task that panicked still frees its entry.
        let mut carrying: HashMap<tokio::task::Id, u64> = HashMap::new();
        // Whether the outbox must be read again (see `top_up`).
        let mut look = true;
        loop {
            if cancel.is_cancelled() {
                flights.abort_all();
                return;
            }
            let Some(peer) = self.peers.get(&peer_id) else {
                tracing::info!(peer = %peer_id, "peer gone; delivery task ends");
                flights.abort_all();
                return;
            };
            let registered = peer.status == PeerStatus::Registered;
            if registered && look {
                look = self.top_up(&peer_id, &mut window);
            }
            if registered {
                let backing_off = retry_at.is_some_and(|t| t > tokio::time::Instant::now());
                if !backing_off {
                    retry_at = None;
                    let probing =
                        |party: &(String, String)| self.hub.probing(peer_id.as_str(), party);
                    for seq in window.launchable(self.concurrency, probing) {
                        window.in_flight.insert(seq);
                        let (pusher, peer) = (self.clone(), peer.clone());
                        let task =
                            flights.spawn(async move { (seq, pusher.attempt(&peer, seq).await) });
                        carrying.insert(task.id(), seq);
                    }
                }
            }
            metrics::gauge!("ocpi_push_in_flight", "peer" => peer_id.0.clone())
                .set(flights.len() as f64);
            let mut settled =
                |joined: Result<(tokio::task::Id, (u64, Outcome)), tokio::task::JoinError>| {
                    match joined {
                        Ok((id, done)) => {
                            carrying.remove(&id);
                            Some(done)
                        }
                        // A bug in rendering or sending must not leave the entry "in flight"
                        // forever (blocking its object and a slot): it is retried after a backoff.
                        Err(e) => {
                            tracing::error!(peer = %peer_id, error = %e, "push attempt panicked");
                            carrying
                                .remove(&e.id())
                                .map(|seq| (seq, Outcome::Retry(format!("attempt failed: {e}"))))
                        }
                    }
                };
            let done = tokio::select! {
                Some(joined) = flights.join_next_with_id(), if !flights.is_empty() => settled(joined),
                _ = wake.notified() => {
                    look = true;
                    None
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => {
                    look = true;
                    None
                }
                _ = tokio::time::sleep(IDLE_POLL) => {
                    look = true;
                    None
                }
                _ = cancel.cancelled() => {
                    flights.abort_all();
                    return;
                }
            };
            // Handle this result and every other one already finished, then flush once.
            let mut finished: Vec<(u64, Outcome)> = done.into_iter().collect();
            while let Some(joined) = flights.try_join_next_with_id() {
                finished.extend(settled(joined));
            }
            let mut changed = false;
            for (seq, outcome) in finished {
                window.in_flight.remove(&seq);
                let Some(item) = window.entries.get(&seq) else {
                    continue;
                };
                let entry = item.entry.clone();
                // A healed PATCH queued a Location PUT, a released party has entries to load.
                look |= matches!(outcome, Outcome::Refused(_))
                    || entry
                        .to_party
                        .as_ref()
                        .is_some_and(|p| self.hub.held(peer_id.as_str(), p));
                changed |= self.settle(
                    &peer_id,
                    &entry,
                    outcome,
                    &mut window,
                    &mut backoff,
                    &mut retry_at,
                );
            }
            if changed {
                self.store.flush().await.or_log("flush after delivery");
            }
        }
    }

    /// Loads entries the window does not hold yet (up to [`WINDOW`]), skipping held parties.
    ///
    /// Returns whether the window filled up (more entries may be waiting beyond it). When it did
    /// not, everything loadable is loaded, and the next look is due only after a wake-up (new
    /// entries, a party released), a timer, or a change this task made itself: so a held party's
    /// backlog is not read again after every delivery.
    fn top_up(&self, peer_id: &PeerId, window: &mut Window) -> bool {
        let room = WINDOW.saturating_sub(window.entries.len());
        if room == 0 {
            return true;
        }
        let loaded = self
            .store
            .outbox_unheld::<Push>(
                peer_id.as_str(),
                |party| self.hub.held(peer_id.as_str(), party),
                |seq| window.entries.contains_key(&seq),
                room,
            )
            .or_log("reading the outbox")
            .unwrap_or_default();
        let full = loaded.len() >= room;
        for entry in loaded {
            let lane = lane(&entry.push, |station| {
                self.catalog.location_of(station).map(|l| l.id.clone())
            });
            window.entries.insert(entry.seq, Waiting { entry, lane });
        }
        full
    }

    /// Applies one attempt's outcome; `true` when the store changed (flush due).
    fn settle(
        &self,
        peer_id: &PeerId,
        entry: &Entry,
        outcome: Outcome,
        window: &mut Window,
        backoff: &mut Duration,
        retry_at: &mut Option<tokio::time::Instant>,
    ) -> bool {
        let module = entry.push.module();
        let count = |outcome: &'static str| {
            metrics::counter!("ocpi_push_total", "peer" => peer_id.0.clone(),
                "module" => module, "outcome" => outcome)
            .increment(1);
        };
        match outcome {
            Outcome::Unreachable(party, reason) => {
                // Not the entry's fault and not the hub's: hold the party (its entries leave the
                // window until it is CONNECTED), go on with the others at once.
                count("held");
                tracing::warn!(peer = %peer_id, seq = entry.seq, party = %format!("{}/{}", party.0, party.1),
                    reason = %reason, "hub cannot reach the party; its pushes are held until it is CONNECTED");
                self.hub.mark_unreachable(peer_id.as_str(), &party, &reason);
                self.store
                    .outbox_failed(peer_id.as_str(), entry.seq, &reason)
                    .or_log("recording a held attempt");
                window.forget_party(&party);
                true
            }
            Outcome::Delivered => {
                *backoff = BACKOFF_MIN;
                count("delivered");
                if let Some(party) = &entry.to_party {
                    self.hub.mark_reachable(peer_id.as_str(), party);
                }
                self.store
                    .outbox_ack(peer_id.as_str(), entry.seq)
                    .or_log("removing a delivered entry");
                window.entries.remove(&entry.seq);
                true
            }
            Outcome::Refused(reason) => {
                window.entries.remove(&entry.seq);
                match self.heal_location(entry) {
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
                    }
                    None => {
                        count("parked");
                        tracing::warn!(peer = %peer_id, seq = entry.seq, method = entry.push.method(),
                            module, reason = %reason, "peer refused a push; parked");
                        self.store
                            .outbox_park(peer_id.as_str(), entry.seq, &reason)
                            .or_log("parking a refused push");
                    }
                }
                true
            }
            Outcome::Retry(reason) => {
                // The peer (or the way to it) failed: the entry keeps its place, and nothing new
                // goes to this peer until the backoff has passed.
                count("retry");
                self.store
                    .outbox_failed(peer_id.as_str(), entry.seq, &reason)
                    .or_log("recording a failed attempt");
                let jitter = rand::rng().random_range(0.5..1.0);
                let wait = backoff.mul_f64(jitter);
                tracing::warn!(peer = %peer_id, seq = entry.seq, reason = %reason, retry_in = ?wait, "push failed; will retry");
                let at = tokio::time::Instant::now() + wait;
                *retry_at = Some(retry_at.map_or(at, |t| t.max(at)));
                *backoff = (*backoff * 2).min(BACKOFF_MAX);
                false
            }
        }
    }

    /// Renders a push from the current state; `None` when its object no longer exists.
    fn render(&self, push: &Push, peer: &str) -> Result<Option<Rendered>, crate::error::Error> {
        Ok(match push {
            Push::Location { id } => match self.catalog.location(id) {
                // An invalid Location is logged and counted there, and not pushed.
                Some(loc) => self
                    .catalog
                    .publishable_location(loc)?
                    .map(Rendered::Location),
                None => None,
            },
            Push::EvseStatus { station, evse } => self
                .catalog
                .evse_status(station, *evse)?
                .map(|(l, u, s, t)| Rendered::EvseStatus(l, u, s, t)),
            Push::Tariff { id } => self.catalog.tariff(id).cloned().map(Rendered::Tariff),
            // Configured there again before it went out: nothing to remove.
            Push::EvseRemoved {
                location,
                station,
                uid,
                at,
            } => (!self
                .catalog
                .location_of(station)
                .is_some_and(|l| l.id.eq_ignore_ascii_case(location)))
            .then(|| {
                Rendered::EvseStatus(
                    LocationId::new(location.clone()),
                    EvseUid::new(uid.clone()),
                    EvseStatus::Removed,
                    (*at).into(),
                )
            }),
            Push::TariffDelete { id } => self
                .catalog
                .tariff(id)
                .is_none()
                .then(|| Rendered::TariffDelete(id.clone())),
            Push::Session { id } => self
                .sessions
                .render_push(id, false, peer)?
                .map(|b| Rendered::Session(id.clone(), b)),
            Push::SessionPatch { id } => self
                .sessions
                .render_push(id, true, peer)?
                .map(|b| Rendered::Session(id.clone(), b)),
            Push::Cdr { id, .. } => self.sessions.cdr(id)?.map(Rendered::Cdr),
            Push::CommandResult {
                response_url,
                result,
            } => Some(Rendered::CommandResult(
                response_url.clone(),
                result.clone(),
            )),
            Push::ChargingProfileResult {
                response_url,
                result,
            } => Some(Rendered::ChargingProfileResult(
                response_url.clone(),
                result.clone(),
            )),
            Push::ActiveChargingProfileResult {
                response_url,
                result,
            } => Some(Rendered::ActiveChargingProfileResult(
                response_url.clone(),
                result.clone(),
            )),
            Push::ClearProfileResult {
                response_url,
                result,
            } => Some(Rendered::ClearProfileResult(
                response_url.clone(),
                result.clone(),
            )),
            Push::ActiveChargingProfile {
                session_id,
                profile,
            } => Some(Rendered::ActiveChargingProfile(
                SessionId::new(session_id.clone()),
                profile.clone(),
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
            Rendered::TariffDelete(id) => client.delete_tariff(peer, id).await.map(|_| None),
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
            Rendered::ChargingProfileResult(url, result) => client
                .post_charging_profile_result(peer, url, result, &to)
                .await
                .map(|_| None),
            Rendered::ActiveChargingProfileResult(url, result) => client
                .post_charging_profile_result(peer, url, result, &to)
                .await
                .map(|_| None),
            Rendered::ClearProfileResult(url, result) => client
                .post_charging_profile_result(peer, url, result, &to)
                .await
                .map(|_| None),
            Rendered::ActiveChargingProfile(session, profile) => client
                .put_active_charging_profile(peer, session, profile, &to)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn loc_of(station: &str) -> Option<String> {
        match station {
            "CS1" | "CS2" => Some("LOC1".into()),
            _ => None,
        }
    }

    fn window(pushes: &[Push]) -> Window {
        let mut w = Window::default();
        for (i, p) in pushes.iter().enumerate() {
            let mut entry = Entry::new("peer", p.clone());
            entry.seq = i as u64 + 1;
            w.entries.insert(
                entry.seq,
                Waiting {
                    lane: lane(p, loc_of),
                    entry,
                },
            );
        }
        w
    }

    fn evse(station: &str, evse: u32) -> Push {
        Push::EvseStatus {
            station: station.into(),
            evse,
        }
    }

    fn id(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn lanes_group_each_object_with_what_it_depends_on() {
        let l = lane(&Push::Location { id: id("LOC1") }, loc_of);
        assert_eq!((l.group.as_str(), l.key), ("location:LOC1", None));
        let e = lane(&evse("CS1", 2), loc_of);
        assert_eq!(e.group, "location:LOC1");
        assert_eq!(e.key.as_deref(), Some("CS1\u{0}2"));
        assert_eq!(lane(&evse("X", 1), loc_of).group, "station:X");
        let s = lane(&Push::Session { id: id("S") }, loc_of);
        assert_eq!(s, lane(&Push::SessionPatch { id: id("S") }, loc_of));
        assert_eq!(
            s,
            lane(
                &Push::Cdr {
                    id: id("S"),
                    session: None
                },
                loc_of
            )
        );
        assert_ne!(
            s,
            lane(
                &Push::Cdr {
                    id: id("T"),
                    session: None
                },
                loc_of
            )
        );
        assert_eq!(
            lane(&Push::Tariff { id: id("T1") }, loc_of).group,
            "tariff:T1"
        );
        // A credit CDR and its re-issue stay in their session's lane (credit first).
        let credit = Push::Cdr {
            id: id("S-C"),
            session: Some(id("S")),
        };
        assert_eq!(s, lane(&credit, loc_of));
        // A tariff's DELETE after its PUT; a removed EVSE is ordered with its Location's PUT.
        assert_eq!(
            lane(&Push::TariffDelete { id: id("T1") }, loc_of),
            lane(&Push::Tariff { id: id("T1") }, loc_of)
        );
        let removed = lane(
            &Push::EvseRemoved {
                location: id("LOC1"),
                station: id("X"),
                uid: id("X-1"),
                at: chrono::Utc::now(),
            },
            loc_of,
        );
        assert_eq!(removed.group, "location:LOC1");
        assert!(removed.key.is_some());
        let r = |u: &str| Push::CommandResult {
            response_url: u.into(),
            result: outbox::command_result(ocpi::types::CommandResultType::Accepted, None),
        };
        assert_ne!(
            lane(&r("http://a/1"), loc_of),
            lane(&r("http://a/2"), loc_of)
        );
    }

    #[test]
    fn unrelated_objects_go_together_and_each_object_keeps_its_order() {
        // 1 Location, 2-3 two EVSEs of it, 4 the first EVSE again, 5 a session, 6 its CDR,
        // 7 another session, 8 a tariff.
        let w = window(&[
            Push::Location { id: id("LOC1") },
            evse("CS1", 1),
            evse("CS2", 1),
            evse("CS1", 1),
            Push::Session { id: id("S") },
            Push::Cdr {
                id: id("S"),
                session: None,
            },
            Push::Session { id: id("U") },
            Push::Tariff { id: id("T1") },
        ]);
        // The Location first (its EVSEs wait for it); the CDR waits for its session.
        assert_eq!(w.launchable(8, |_| false), [1, 5, 7, 8]);
        // The limit counts what is in flight.
        assert_eq!(w.launchable(2, |_| false), [1, 5]);
        let mut w = w;
        w.in_flight.extend([1, 5]);
        assert_eq!(w.launchable(4, |_| false), [7, 8]);
        // The Location delivered: both EVSEs go, the first EVSE's second update waits.
        w.entries.remove(&1);
        w.in_flight.remove(&1);
        assert_eq!(w.launchable(8, |_| false), [2, 3, 7, 8]);
        // The session delivered: its CDR goes.
        w.entries.remove(&5);
        w.in_flight.remove(&5);
        assert_eq!(w.launchable(8, |_| false), [2, 3, 6, 7, 8]);
        // With one at a time, strictly in queue order.
        assert_eq!(w.launchable(1, |_| false), [2]);
    }

    #[test]
    fn an_evse_update_before_a_location_put_is_not_overtaken_by_it() {
        let w = window(&[
            evse("CS1", 1),
            Push::Location { id: id("LOC1") },
            evse("CS2", 1),
        ]);
        assert_eq!(w.launchable(8, |_| false), [1]);
    }

    #[test]
    fn a_party_being_probed_gets_one_push_at_a_time() {
        let mut w = window(&[
            Push::Session { id: id("S") },
            Push::Session { id: id("T") },
            Push::Session { id: id("U") },
        ]);
        let party = (id("DE"), id("EMA"));
        for seq in [1, 2] {
            w.entries.get_mut(&seq).expect("entry").entry.to_party = Some(party.clone());
        }
        let probing = |p: &(String, String)| *p == party;
        assert_eq!(w.launchable(8, probing), [1, 3]);
        w.in_flight.insert(1);
        assert_eq!(w.launchable(8, probing), [3]);
        // Accepted: no longer probing, the rest goes.
        w.entries.remove(&1);
        w.in_flight.remove(&1);
        assert_eq!(w.launchable(8, |_| false), [2, 3]);
    }

    #[test]
    fn a_held_party_leaves_the_window_but_in_flight_entries_stay() {
        let mut w = window(&[
            Push::Session { id: id("S") },
            Push::Cdr {
                id: id("S"),
                session: None,
            },
            Push::Session { id: id("U") },
        ]);
        let party = (id("DE"), id("EMA"));
        for seq in [1, 2] {
            w.entries.get_mut(&seq).expect("entry").entry.to_party = Some(party.clone());
        }
        w.in_flight.insert(1);
        w.forget_party(&party);
        assert_eq!(w.entries.keys().copied().collect::<Vec<_>>(), [1, 3]);
    }
}
