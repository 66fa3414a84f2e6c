//! The charging flow on the OCPI side: opens a Session when a transaction is authorized (or a
//! reservation is accepted), keeps the token owner's eMSP up to date, completes the Session and
//! creates exactly one CDR when the transaction ends.
//!
//! Every step changes the session record / CDR and queues the pushes in one store transaction,
//! and is flushed before the station gets its answer. Pushes go only to the peer that owns the
//! token (routing headers name the token's party), never to every peer.
//!
//! A 2.0.1 transaction whose Ended event arrived before some of its earlier events (offline
//! replay, seqNo gaps) gets its CDR once the gaps are filled, or after [`CDR_GAP_WAIT`] with
//! what arrived. [`Sessions::recover`] finishes whatever a crash interrupted.
//!
//! Depends on narrow handles only: the store, the [`Catalog`], the peer list and the
//! [`PushQueue`]. Rendering is [`render`]'s (pure).

pub mod backup;
pub mod corrections;
pub mod listing;
pub mod render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use ocpi::Peers;
use ocpi::types::{Cdr, CdrToken, ModuleId, Session, SessionPatch, SessionStatus, Token};
use state::{Store, Transaction, TransactionStatus};

use crate::auth::Decision;
use crate::catalog::Catalog;
use crate::error::{Logged, Result};
use crate::outbox::{self, Push, PushQueue};
use crate::records::{
    CDR_LOCATION_URL, HeldCdr, PERIODS_SENT, RESERVATION_SESSION, Reservation, SESSION_OF_TX,
    SESSION_RESERVATION, SessionRecord, StoredCdr,
};
use render::Party;

/// How long a CDR waits for missing 2.0.1 events before it is made with what arrived.
pub const CDR_GAP_WAIT: chrono::Duration = chrono::Duration::minutes(10);

/// A rendered session push, ready to send.
#[derive(Debug, Clone)]
pub enum SessionBody {
    /// The whole Session (PUT).
    Put(Session),
    /// A PATCH of it.
    Patch(Session, SessionPatch),
}

/// What opening a transaction's Session needs, read before the store transaction
/// ([`Sessions::prepare`]); [`Sessions::open_in`] writes it.
#[derive(Debug, Clone)]
pub struct Opening {
    /// The RESERVATION Session the transaction continues.
    reserved: Option<SessionRecord>,
    peer: Option<String>,
    /// The peer that receives the Session push.
    target: Option<String>,
    cdr_token: CdrToken,
    auth_method: ocpi::types::AuthMethod,
    authorization_reference: Option<String>,
    location_id: String,
    time_zone: String,
    currency: String,
    tariff: Option<ocpi::types::Tariff>,
    meter_id: Option<String>,
    status: SessionStatus,
}

/// The charging flow.
pub struct Sessions {
    catalog: Arc<Catalog>,
    store: Store,
    peers: Peers,
    push: PushQueue,
    /// `cdrs.jsonl`.
    backup: backup::CdrBackup,
    /// When each session's last update was queued (throttling).
    last_update: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// A session push for `peer`, routed to the token owner.
fn push_for(rec: &SessionRecord, peer: &str, push: Push) -> outbox::Entry {
    outbox::entry(peer, push, Some(rec.owner()))
}

impl Sessions {
    /// The flow over the store, the catalog, the peers and the push queue.
    pub fn new(catalog: Arc<Catalog>, store: Store, peers: Peers, push: PushQueue) -> Self {
        let backup = backup::CdrBackup::new(catalog.settings().state.path.join("cdrs.jsonl"));
        Sessions {
            backup,
            catalog,
            store,
            peers,
            push,
            last_update: Mutex::new(HashMap::new()),
        }
    }

    fn us(&self) -> Party {
        Party::new(self.catalog.country_code(), self.catalog.party_id())
    }

    /// A stored session record.
    pub fn record(&self, id: &str) -> Result<Option<SessionRecord>> {
        Ok(self.store.record::<SessionRecord>(id)?)
    }

    /// The session of a transaction (its own, or the reservation session it consumed).
    fn record_for_tx(&self, tx_id: &str) -> Result<Option<SessionRecord>> {
        let sid = self
            .store
            .index_get(SESSION_OF_TX, tx_id)?
            .unwrap_or_else(|| tx_id.to_owned());
        self.record(&sid)
    }

    /// The peer if it is registered and has a receiver for `module`.
    fn receiver(&self, peer: Option<&str>, module: ModuleId) -> Option<String> {
        outbox::receiver(&self.peers, peer, module)
    }

    /// Makes the writes of a [`Store::update`] durable and wakes the pusher for `peer`.
    async fn flush_and_wake(&self, peer: Option<String>) -> Result<()> {
        self.store.flush().await?;
        self.wake(peer);
        Ok(())
    }

    /// Wakes the pusher for `peer` (after a [`Store::commit`], which is already durable).
    fn wake(&self, peer: Option<String>) {
        if let Some(p) = peer {
            self.push.wake([p]);
        }
    }

    /// The tariff that applies at a station now and its currency (EUR without a tariff).
    fn tariff_and_currency(&self, station: &str) -> (Option<ocpi::types::Tariff>, String) {
        let tariff = self.catalog.tariff_for(station).cloned();
        let currency = tariff
            .as_ref()
            .map_or_else(|| "EUR".to_owned(), |t| t.currency.clone());
        (tariff, currency)
    }

    /// Opens a RESERVATION Session for a reservation the station accepted (once per
    /// reservation; a replaced reservation keeps its session).
    #[allow(clippy::too_many_arguments)]
    pub async fn reservation_accepted(
        &self,
        peer: &str,
        token: &Token,
        authorization_reference: Option<String>,
        station: &str,
        evse_id: Option<u32>,
        ocpp_reservation_id: i32,
    ) -> Result<()> {
        let key = format!("{station}\0{ocpp_reservation_id}");
        if let Some(existing) = self.store.index_get(RESERVATION_SESSION, &key)?
            && self
                .record(&existing)?
                .is_some_and(|r| r.status == SessionStatus::Reservation)
        {
            return Ok(());
        }
        let Some(loc) = self.catalog.location_of(station) else {
            return Ok(());
        };
        let (evse_uid, connector_id, cdr_location) = match evse_id {
            Some(e) => {
                let uid = self.store.update(|tx| tx.evse_uid(station, e))?;
                let v201 = self
                    .store
                    .station(station)?
                    .and_then(|s| s.ocpp_version)
                    .is_some_and(|v| v.starts_with('2'));
                let cdr_location = self.catalog.cdr_location(station, e, 1, &uid, v201);
                (uid, "1".to_owned(), cdr_location)
            }
            None => ("#NA".to_owned(), "#NA".to_owned(), None),
        };
        let (tariff, currency) = self.tariff_and_currency(station);
        let now = Utc::now();
        let rec = SessionRecord {
            id: uuid::Uuid::new_v4().to_string(),
            transaction_id: None,
            created_at: now,
            peer: Some(peer.to_owned()),
            cdr_token: CdrToken::from(token),
            auth_method: ocpi::types::AuthMethod::Command,
            authorization_reference,
            location_id: loc.id.clone(),
            evse_uid,
            connector_id,
            cdr_location,
            time_zone: loc.time_zone.clone(),
            currency,
            tariff,
            meter_id: None,
            status: SessionStatus::Reservation,
            last_updated: now,
        };
        let target = self.receiver(Some(peer), ModuleId::Sessions);
        self.store.update(|tx| {
            listing::put_session(tx, &rec)?;
            tx.index_put(RESERVATION_SESSION, &key, &rec.id)?;
            tx.index_put(SESSION_RESERVATION, &rec.id, &key)?;
            if let Some(p) = &target {
                tx.push_outbox(push_for(&rec, p, Push::Session { id: rec.id.clone() }))?;
            }
            Ok(())
        })?;
        tracing::info!(session = %rec.id, station, reservation = ocpp_reservation_id, "OCPI reservation session opened");
        self.flush_and_wake(target).await
    }

    /// A reservation ended: completes its Session unless a transaction took it over.
    pub async fn reservation_ended(&self, station: &str, ocpp_reservation_id: i32) -> Result<()> {
        match self.store.index_get(
            RESERVATION_SESSION,
            &format!("{station}\0{ocpp_reservation_id}"),
        )? {
            Some(session) => self.reservation_over(&session).await,
            None => Ok(()),
        }
    }

    /// Completes a RESERVATION Session whose reservation ended without charging.
    pub async fn reservation_over(&self, session_id: &str) -> Result<()> {
        let Some(mut rec) = self.record(session_id)? else {
            return Ok(());
        };
        if rec.status != SessionStatus::Reservation {
            return Ok(());
        }
        rec.status = SessionStatus::Completed;
        rec.last_updated = Utc::now();
        let target = self.receiver(rec.peer.as_deref(), ModuleId::Sessions);
        self.store.update(|tx| {
            listing::put_session(tx, &rec)?;
            if let Some(p) = &target {
                tx.push_outbox(push_for(&rec, p, Push::SessionPatch { id: rec.id.clone() }))?;
            }
            Ok(())
        })?;
        tracing::info!(session = %session_id, "reservation ended without charging; session COMPLETED");
        self.flush_and_wake(target).await
    }

    /// Reads what opening the Session of a transaction needs (the reservation Session it
    /// continues, the location, the tariff, the meter): everything but the write, which
    /// [`Sessions::open_in`] does inside the store transaction that stores the transaction
    /// itself, so that a crash never leaves a transaction without its Session.
    ///
    /// `None` when no Session is due: no OCPI token behind the decision, or no configured
    /// location for the station.
    pub fn prepare(
        &self,
        station_id: &str,
        reservation_id: Option<i32>,
        decision: &Decision,
    ) -> Result<Option<Opening>> {
        // A transaction that consumes a reservation continues the reservation's Session.
        let reserved = match reservation_id {
            Some(r) => match self
                .store
                .index_get(RESERVATION_SESSION, &format!("{station_id}\0{r}"))?
            {
                Some(sid) => self
                    .record(&sid)?
                    .filter(|r| r.status == SessionStatus::Reservation),
                None => None,
            },
            None => None,
        };
        let Some(token) = &decision.token else {
            return Ok(None);
        };
        let Some(loc) = self.catalog.location_of(station_id) else {
            return Ok(None);
        };
        let station = self.store.station(station_id)?;
        let (tariff, currency) = self.tariff_and_currency(station_id);
        Ok(Some(Opening {
            reserved,
            peer: decision.peer.clone(),
            target: self.receiver(decision.peer.as_deref(), ModuleId::Sessions),
            cdr_token: CdrToken::from(token),
            auth_method: decision.method,
            authorization_reference: decision.authorization_reference.clone(),
            location_id: loc.id.clone(),
            time_zone: loc.time_zone.clone(),
            currency,
            tariff,
            meter_id: station.and_then(|s| s.meter_serial_number),
            status: if decision.accepted() {
                SessionStatus::Active
            } else {
                SessionStatus::Invalid
            },
        }))
    }

    /// Writes the Session of `tx_rec` and its push inside the caller's store transaction
    /// (the one that stores `tx_rec`). Idempotent: `None` when the transaction already has
    /// its Session (a retried message, a repeated event).
    pub fn open_in(
        &self,
        tx: &state::Txn<'_>,
        opening: &Opening,
        tx_rec: &Transaction,
    ) -> std::result::Result<Option<SessionRecord>, state::TxError> {
        if tx.index_get(SESSION_OF_TX, &tx_rec.id)?.is_some()
            || tx.record::<SessionRecord>(&tx_rec.id)?.is_some()
        {
            return Ok(None);
        }
        let reserved = opening.reserved.as_ref().filter(|r| {
            // Another transaction may have taken the reservation over in the meantime.
            tx.record::<SessionRecord>(&r.id)
                .ok()
                .flatten()
                .is_some_and(|now| now.status == SessionStatus::Reservation)
        });
        let evse_id = tx_rec.evse_id.max(1);
        let connector_id = tx_rec.connector_id.max(1);
        let uid = tx.evse_uid(&tx_rec.station_id, evse_id)?;
        // No store reads outside `tx` in here: the OCPP version comes with the transaction.
        let cdr_location = self.catalog.cdr_location(
            &tx_rec.station_id,
            evse_id,
            connector_id,
            &uid,
            tx_rec.ocpp_version.starts_with('2'),
        );
        let rec = SessionRecord {
            id: reserved.map_or_else(|| tx_rec.id.clone(), |r| r.id.clone()),
            transaction_id: Some(tx_rec.id.clone()),
            created_at: reserved.map_or_else(Utc::now, |r| r.created_at),
            peer: opening.peer.clone(),
            cdr_token: opening.cdr_token.clone(),
            auth_method: opening.auth_method,
            authorization_reference: opening.authorization_reference.clone(),
            location_id: opening.location_id.clone(),
            evse_uid: uid,
            connector_id: connector_id.to_string(),
            cdr_location,
            time_zone: opening.time_zone.clone(),
            currency: opening.currency.clone(),
            tariff: opening.tariff.clone(),
            meter_id: opening.meter_id.clone(),
            status: opening.status,
            last_updated: Utc::now(),
        };
        if reserved.is_some() {
            tx.index_put(SESSION_OF_TX, &tx_rec.id, &rec.id)?;
        }
        listing::put_session(tx, &rec)?;
        if let Some(p) = &opening.target {
            tx.push_outbox(push_for(&rec, p, Push::Session { id: rec.id.clone() }))?;
        }
        Ok(Some(rec))
    }

    /// After the [`Store::commit`] that ran [`Sessions::open_in`] returned (so it is durable):
    /// wakes the receiver.
    pub async fn opened(&self, rec: &SessionRecord, opening: &Opening) -> Result<()> {
        tracing::info!(session = %rec.id, status = ?rec.status, method = ?rec.auth_method, peer = ?rec.peer, "OCPI session opened");
        self.wake(opening.target.clone());
        Ok(())
    }

    /// Marks a Session updated (its `last_updated`, so that GETs with `date_from` find it) and
    /// queues its update, at most once per `ocpi.session_update_interval`.
    pub async fn updated(&self, tx_id: &str) -> Result<()> {
        let interval = Duration::from_secs(self.catalog.settings().ocpi.session_update_interval);
        {
            let mut map = self.last_update.lock().expect("throttle");
            if map.get(tx_id).is_some_and(|t| t.elapsed() < interval) {
                return Ok(());
            }
            map.insert(tx_id.to_owned(), Instant::now());
        }
        let Some(rec) = self.record_for_tx(tx_id)? else {
            return Ok(());
        };
        if rec.status != SessionStatus::Active {
            return Ok(());
        }
        let peer = self.receiver(rec.peer.as_deref(), ModuleId::Sessions);
        let now = Utc::now();
        let (id, target) = (rec.id.clone(), peer.clone());
        self.store
            .commit(move |tx| {
                // Read again inside the transaction: a stop may have completed it meanwhile.
                let Some(mut rec) = tx.record::<SessionRecord>(&id)? else {
                    return Ok(());
                };
                if rec.status != SessionStatus::Active {
                    return Ok(());
                }
                rec.last_updated = now;
                listing::put_session(tx, &rec)?;
                if let Some(p) = &target {
                    tx.push_outbox(push_for(&rec, p, Push::SessionPatch { id: rec.id.clone() }))?;
                }
                Ok(())
            })
            .await?;
        self.wake(peer);
        Ok(())
    }

    /// Completes the Session of a stopped transaction and creates its CDR (unless 2.0.1 events
    /// are still missing and [`CDR_GAP_WAIT`] has not passed).
    pub async fn stopped(&self, tx_id: &str) -> Result<()> {
        self.last_update.lock().expect("throttle").remove(tx_id);
        let Some(tx_rec) = self.store.transaction(tx_id)? else {
            return Ok(());
        };
        let Some(mut rec) = self.record_for_tx(tx_id)? else {
            return Ok(());
        };
        if tx_rec.status != TransactionStatus::Completed {
            return Ok(());
        }
        // The CDR's id is the session's id (a reservation's session keeps the reservation's id).
        let already_cdr = self.store.record::<StoredCdr>(&rec.id)?.is_some()
            || self.store.record::<HeldCdr>(&rec.id)?.is_some();
        let was_active = rec.status == SessionStatus::Active;
        if !was_active && (already_cdr || rec.status == SessionStatus::Invalid) {
            return Ok(());
        }
        let missing = self.missing_events(&tx_rec)?;
        let waited = Utc::now() - tx_rec.updated_at >= CDR_GAP_WAIT;
        let make_cdr =
            rec.status != SessionStatus::Invalid && !already_cdr && (missing.is_empty() || waited);
        if !missing.is_empty() && !waited {
            tracing::info!(session = %tx_id, missing = ?missing, "transaction ended with events still missing; CDR waits");
        }
        let session_peer = self.receiver(rec.peer.as_deref(), ModuleId::Sessions);
        let cdr_peer = self.receiver(rec.peer.as_deref(), ModuleId::Cdrs);
        let (cdr, held) = if make_cdr {
            let samples = self.store.samples(tx_id)?;
            match render::render_cdr_checked(&self.us(), &rec, &tx_rec, &samples) {
                None => {
                    tracing::error!(session = %tx_id, "no location snapshot; no CDR");
                    (None, None)
                }
                Some((cdr, None)) => (Some(cdr), None),
                // Never sent with cost 0: held for the operator (`cdrs reprice ID`).
                Some((cdr, Some(reason))) => (
                    None,
                    Some(HeldCdr {
                        cdr,
                        reason,
                        held_at: Utc::now(),
                    }),
                ),
            }
        } else {
            (None, None)
        };
        rec.status = SessionStatus::Completed;
        rec.last_updated = Utc::now();
        let (rec_w, sp, cp, held_w, cdr_w) = (
            rec.clone(),
            session_peer.clone(),
            cdr_peer.clone(),
            held.clone(),
            cdr.clone(),
        );
        let created = self
            .store
            .commit(move |tx| {
                let (rec, session_peer, cdr_peer, held, cdr) = (&rec_w, &sp, &cp, &held_w, &cdr_w);
                listing::put_session(tx, rec)?;
                if was_active && let Some(p) = &session_peer {
                    tx.push_outbox(push_for(rec, p, Push::SessionPatch { id: rec.id.clone() }))?;
                }
                if let Some(h) = &held
                    && tx.record::<StoredCdr>(&rec.id)?.is_none()
                    && tx.record::<HeldCdr>(&rec.id)?.is_none()
                {
                    tx.put_record(h)?;
                    listing::closed(tx, &rec.id)?;
                    return Ok(true);
                }
                if let Some(cdr) = &cdr
                    && tx.record::<StoredCdr>(&rec.id)?.is_none()
                {
                    listing::put_cdr(tx, cdr, rec)?;
                    if let Some(p) = &cdr_peer {
                        tx.push_outbox(push_for(
                            rec,
                            p,
                            Push::Cdr {
                                id: rec.id.clone(),
                                session: None,
                            },
                        ))?;
                    }
                    return Ok(true);
                }
                Ok(false)
            })
            .await?;
        // Only the store transaction that created the CDR reports it (two racing stops render
        // it twice; one of them stores it).
        if let Some(cdr) = cdr.as_ref().filter(|_| created) {
            metrics::counter!("bridge_cdrs_created_total").increment(1);
            tracing::info!(session = %rec.id, transaction = %tx_id, total_energy = %cdr.total_energy, total_cost = %cdr.total_cost.excl_vat, peer = ?cdr_peer, "CDR created");
            self.backup.append(cdr);
        }
        if let Some(h) = held.as_ref().filter(|_| created) {
            metrics::counter!("bridge_cdrs_held_total").increment(1);
            tracing::error!(session = %rec.id, transaction = %tx_id, reason = %h.reason,
                "CDR held: its price cannot be computed; fix the tariff, then `ocpp-ocpi-bridge cdrs reprice {}`", rec.id);
            self.update_held_gauge();
        }
        self.wake(session_peer.or(cdr_peer));
        Ok(())
    }

    /// 2.0.1 seqNos below the highest seen that never arrived.
    fn missing_events(&self, tx_rec: &Transaction) -> Result<Vec<u32>> {
        if tx_rec.ocpp_version != "2.0.1" {
            return Ok(Vec::new());
        }
        let Some(last) = tx_rec.last_seq_no else {
            return Ok(Vec::new());
        };
        let seen = self
            .store
            .events_seen(&tx_rec.station_id, &tx_rec.ocpp_transaction_id)?;
        Ok((0..last).filter(|s| !seen.contains(s)).collect())
    }

    /// At start-up: appends to `cdrs.jsonl` every stored CDR it lacks (a crash between a CDR's
    /// store commit and its append). Reads every CDR, so it runs once, not periodically.
    pub fn check_backup(&self) {
        // Only CDRs committed right before a crash can be missing; when the file holds at least
        // as many ids as the store holds CDRs, the newest ones are enough to look at (reading
        // every CDR would make start-up grow with the years). Otherwise (a file lost or cut
        // short) every stored CDR is checked.
        const NEWEST: usize = 1000;
        let stored = self.store.count::<StoredCdr>();
        let cdrs = if self.backup.len() >= stored {
            self.store.records_newest::<StoredCdr>(NEWEST)
        } else {
            self.store.records::<StoredCdr>()
        };
        if let Some(cdrs) = cdrs.or_log("reading CDRs for the backup check") {
            for StoredCdr(cdr) in cdrs {
                if !self.backup.contains(cdr.id.as_str()) {
                    tracing::warn!(cdr = %cdr.id.as_str(), "CDR missing from cdrs.jsonl; appended");
                    self.backup.append(&cdr);
                }
            }
        }
    }

    /// Finishes what a crash interrupted and what waited for missing events: every open session
    /// (the `open_sessions` listing, not every session stored) whose transaction completed gets
    /// completed and its CDR; a reservation session whose reservation is over gets completed.
    pub async fn recover(&self) {
        self.update_held_gauge();
        let Some(ids) = listing::open_ids(&self.store).or_log("reading the open sessions") else {
            return;
        };
        let records: Vec<SessionRecord> = ids
            .iter()
            .filter_map(|id| self.record(id).or_log("reading a session").flatten())
            .collect();
        let now = Utc::now();
        for rec in records {
            if rec.status == SessionStatus::Reservation {
                let over = match self.store.index_get(SESSION_RESERVATION, &rec.id) {
                    Ok(Some(key)) => key
                        .rsplit_once('\0')
                        .and_then(|(_, rid)| self.store.record::<Reservation>(rid).ok())
                        .is_some_and(|r| !r.is_some_and(|r| r.live(now))),
                    _ => false,
                };
                if over {
                    self.reservation_over(&rec.id)
                        .await
                        .or_log("completing a reservation session");
                }
                continue;
            }
            let pending = match rec.status {
                SessionStatus::Active => true,
                SessionStatus::Completed => {
                    self.store
                        .record::<StoredCdr>(&rec.id)
                        .map(|d| d.is_none())
                        .unwrap_or(false)
                        && self
                            .store
                            .record::<HeldCdr>(&rec.id)
                            .map(|d| d.is_none())
                            .unwrap_or(false)
                }
                _ => false,
            };
            let Some(tx_id) = rec.tx_id().map(str::to_owned) else {
                continue;
            };
            if pending
                && let Ok(Some(t)) = self.store.transaction(&tx_id)
                && t.status == TransactionStatus::Completed
            {
                self.stopped(&tx_id).await.or_log("finishing a session");
            }
        }
    }

    /// The Session of a record, rendered now (`None` when its transaction is gone).
    fn render(&self, rec: &SessionRecord) -> Result<Option<Session>> {
        Ok(match rec.tx_id() {
            None => Some(render::render_reservation(&self.us(), rec)),
            Some(tx_id) => match self.store.transaction(tx_id)? {
                Some(t) => {
                    let samples = self.store.samples(tx_id)?;
                    Some(render::render_session(
                        &self.us(),
                        rec,
                        &t,
                        &samples,
                        Utc::now(),
                    ))
                }
                None => None,
            },
        })
    }

    /// Every Session, rendered now, in creation order.
    pub fn list(&self) -> Result<Vec<Session>> {
        let mut out = Vec::new();
        for rec in self.store.records::<SessionRecord>()? {
            out.extend(self.render(&rec)?);
        }
        Ok(out)
    }

    /// A Session rendered now (`None` when unknown or its transaction is gone).
    pub fn session(&self, id: &str) -> Result<Option<Session>> {
        match self.record(id)? {
            Some(rec) => self.render(&rec),
            None => Ok(None),
        }
    }

    /// Every CDR, in creation order.
    pub fn cdrs(&self) -> Result<Vec<Cdr>> {
        Ok(self
            .store
            .records::<StoredCdr>()?
            .into_iter()
            .map(|c| c.0)
            .collect())
    }

    /// A stored CDR.
    pub fn cdr(&self, id: &str) -> Result<Option<Cdr>> {
        Ok(self.store.record::<StoredCdr>(id)?.map(|c| c.0))
    }

    /// Renders a session push for `peer` (`None` when the session is gone).
    pub fn render_push(&self, id: &str, patch: bool, peer: &str) -> Result<Option<SessionBody>> {
        let Some(rec) = self.record(id)? else {
            return Ok(None);
        };
        let Some(session) = self.render(&rec)? else {
            return Ok(None);
        };
        if !patch {
            return Ok(Some(SessionBody::Put(session)));
        }
        let sent = self
            .store
            .index_get(PERIODS_SENT, &format!("{id}\0{peer}"))?
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let p = render::session_patch(&session, sent);
        Ok(Some(SessionBody::Patch(session, p)))
    }

    /// After `peer` accepted a Session push: remember how many charging periods it has.
    pub fn session_delivered(&self, peer: &str, id: &str, body: &SessionBody) {
        let key = format!("{id}\0{peer}");
        self.store
            .update(|tx| {
                let total = match body {
                    SessionBody::Put(s) => s.charging_periods.as_ref().map_or(0, Vec::len),
                    SessionBody::Patch(_, p) => {
                        let before: usize = tx
                            .index_get(PERIODS_SENT, &key)?
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        before + p.charging_periods.as_ref().map_or(0, Vec::len)
                    }
                };
                tx.index_put(PERIODS_SENT, &key, &total.to_string())
            })
            .or_log("recording a delivered Session");
    }

    /// After a peer accepted a CDR: remember the `Location` URL it returned.
    pub fn cdr_delivered(&self, id: &str, location: Option<&str>) {
        metrics::counter!("bridge_cdrs_delivered_total").increment(1);
        if let Some(url) = location {
            self.store
                .update(|tx| tx.index_put(CDR_LOCATION_URL, id, url))
                .or_log("recording a delivered CDR");
        }
    }

    /// Where the eMSP stored a delivered CDR.
    pub fn cdr_location_url(&self, id: &str) -> Result<Option<String>> {
        Ok(self.store.index_get(CDR_LOCATION_URL, id)?)
    }
}
