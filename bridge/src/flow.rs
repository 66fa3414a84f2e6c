//! The charging flow on the OCPI side: opens a Session when a transaction is authorized, keeps
//! the token owner's eMSP up to date, completes the Session and creates exactly one CDR when
//! the transaction ends.
//!
//! Every step changes the session record / CDR and queues the pushes in one store transaction,
//! and is flushed before the station gets its answer. Pushes go only to the peer that owns the
//! token (routing headers name the token's party), never to every peer.
//!
//! A 2.0.1 transaction whose Ended event arrived before some of its earlier events (offline
//! replay, seqNo gaps) gets its CDR once the gaps are filled, or after [`CDR_GAP_WAIT`] with
//! what arrived. [`Flow::recover`] finishes whatever a crash interrupted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use ocpi::types::{InterfaceRole, ModuleId};
use ocpi::{PeerId, PeerStatus, Platform};
use serde_json::Value;
use state::{OutboxEntry, Store, Transaction, TransactionStatus, TxError, Txn};

use crate::auth::Decision;
use crate::config::Settings;
use crate::cpo::{Cpo, PushControl};
use crate::session::{self, CDR_KIND, SESSION_KIND, SessionRecord, SessionStatus};

/// Index: our transaction id → the session id, when the session began as a reservation.
const SESSION_OF_TX: &str = "session_of_tx";
/// Index: `{station}\0{OCPP reservation id}` → session id.
const RESERVATION_SESSION: &str = "reservation_session";
/// Index: session id → `{station}\0{OCPP reservation id}`.
const SESSION_RESERVATION: &str = "session_reservation";

/// How long a CDR waits for missing 2.0.1 events before it is made with what arrived.
pub const CDR_GAP_WAIT: chrono::Duration = chrono::Duration::minutes(10);

/// Render keys of session pushes.
pub mod render {
    /// PUT of the whole Session.
    pub fn session(id: &str) -> String {
        format!("session:{id}")
    }
    /// PATCH of a Session.
    pub fn session_patch(id: &str) -> String {
        format!("session_patch:{id}")
    }
}

/// The charging flow (needs the OCPI platform).
pub struct Flow {
    settings: Arc<Settings>,
    store: Store,
    platform: Arc<Platform<Cpo>>,
    push: PushControl,
    /// When each session's last update was queued (throttling).
    last_update: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow").finish_non_exhaustive()
    }
}

fn abort(e: impl std::fmt::Display) -> TxError {
    state::reject(e.to_string())
}

/// A stored session record.
pub fn record(store: &Store, id: &str) -> Result<Option<SessionRecord>, state::Error> {
    Ok(store
        .doc(SESSION_KIND, id)?
        .and_then(|d| serde_json::from_value(d.value).ok()))
}

fn put_record(tx: &Txn<'_>, rec: &SessionRecord) -> Result<(), TxError> {
    tx.put_doc(
        SESSION_KIND,
        &rec.id,
        serde_json::to_value(rec).map_err(abort)?,
    )?;
    Ok(())
}

fn entry(
    rec: &SessionRecord,
    peer: &str,
    method: &str,
    module: &str,
    render: Option<String>,
    path: String,
    body: Value,
) -> OutboxEntry {
    let mut e = match render {
        Some(r) => OutboxEntry::rendered(peer, method, module, r),
        None => OutboxEntry::new(peer, method, module, path, body),
    };
    e.to_party = rec.owner();
    e
}

/// The tariff that applies at a station now and its currency (EUR without a tariff).
fn tariff_and_currency(cpo: &Cpo, station: &str) -> (Option<Value>, String) {
    let tariff = cpo.tariff_for(station);
    let currency = tariff
        .as_ref()
        .and_then(|t| t.get("currency"))
        .and_then(Value::as_str)
        .unwrap_or("EUR")
        .to_owned();
    (tariff, currency)
}

/// A PUT of the whole Session, rendered when sent.
fn session_put(rec: &SessionRecord, peer: &str) -> OutboxEntry {
    entry(
        rec,
        peer,
        "PUT",
        "sessions",
        Some(render::session(&rec.id)),
        String::new(),
        Value::Null,
    )
}

/// A PATCH of the Session, rendered when sent.
fn session_patch(rec: &SessionRecord, peer: &str) -> OutboxEntry {
    entry(
        rec,
        peer,
        "PATCH",
        "sessions",
        Some(render::session_patch(&rec.id)),
        String::new(),
        Value::Null,
    )
}

impl Flow {
    /// The flow over the store and the OCPI platform.
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        platform: Arc<Platform<Cpo>>,
        push: PushControl,
    ) -> Self {
        Flow {
            settings,
            store,
            platform,
            push,
            last_update: Mutex::new(HashMap::new()),
        }
    }

    fn cpo(&self) -> &Cpo {
        self.platform.backend()
    }

    /// The session of a transaction (its own, or the reservation session it consumed).
    fn record_for_tx(&self, tx_id: &str) -> Result<Option<SessionRecord>, state::Error> {
        let sid = self
            .store
            .index_get(SESSION_OF_TX, tx_id)?
            .unwrap_or_else(|| tx_id.to_owned());
        record(&self.store, &sid)
    }

    /// Opens a RESERVATION Session for a reservation the station accepted (once per
    /// reservation; a replaced reservation keeps its session).
    #[allow(clippy::too_many_arguments)]
    pub async fn reservation_accepted(
        &self,
        peer: &str,
        token: &ocpi::types::Token,
        authorization_reference: Option<String>,
        station: &str,
        evse_id: Option<u32>,
        ocpp_reservation_id: i32,
    ) -> Result<(), state::Error> {
        let key = format!("{station}\0{ocpp_reservation_id}");
        if let Some(existing) = self.store.index_get(RESERVATION_SESSION, &key)?
            && record(&self.store, &existing)?
                .is_some_and(|r| r.status == SessionStatus::Reservation)
        {
            return Ok(());
        }
        let cpo = self.cpo();
        let Some(loc) = cpo.location_of(station) else {
            return Ok(());
        };
        let (evse_uid, connector_id, cdr_location) = match evse_id {
            Some(e) => {
                let uid = self.store.update(|tx| tx.evse_uid(station, e))?;
                let cdr_location = cpo.cdr_location(station, e, 1, &uid);
                (uid, "1".to_owned(), cdr_location)
            }
            None => ("#NA".to_owned(), "#NA".to_owned(), Value::Null),
        };
        let (tariff, currency) = tariff_and_currency(cpo, station);
        let now = Utc::now();
        let rec = SessionRecord {
            id: uuid::Uuid::new_v4().to_string(),
            transaction_id: None,
            created_at: now,
            peer: Some(peer.to_owned()),
            cdr_token: session::cdr_token(token),
            auth_method: crate::auth::AuthMethod::Command,
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
            put_record(tx, &rec)?;
            tx.index_put(RESERVATION_SESSION, &key, &rec.id)?;
            tx.index_put(SESSION_RESERVATION, &rec.id, &key)?;
            if let Some(p) = &target {
                tx.push_outbox(session_put(&rec, p))?;
            }
            Ok(())
        })?;
        tracing::info!(session = %rec.id, station, reservation = ocpp_reservation_id, "OCPI reservation session opened");
        self.commit(target).await
    }

    /// A reservation ended: completes its Session unless a transaction took it over.
    pub async fn reservation_ended(
        &self,
        station: &str,
        ocpp_reservation_id: i32,
    ) -> Result<(), state::Error> {
        match self.store.index_get(
            RESERVATION_SESSION,
            &format!("{station}\0{ocpp_reservation_id}"),
        )? {
            Some(session) => self.reservation_over(&session).await,
            None => Ok(()),
        }
    }

    /// Completes a RESERVATION Session whose reservation ended without charging.
    pub async fn reservation_over(&self, session_id: &str) -> Result<(), state::Error> {
        let Some(mut rec) = record(&self.store, session_id)? else {
            return Ok(());
        };
        if rec.status != SessionStatus::Reservation {
            return Ok(());
        }
        rec.status = SessionStatus::Completed;
        rec.last_updated = Utc::now();
        let target = self.receiver(rec.peer.as_deref(), ModuleId::Sessions);
        self.store.update(|tx| {
            put_record(tx, &rec)?;
            if let Some(p) = &target {
                tx.push_outbox(session_patch(&rec, p))?;
            }
            Ok(())
        })?;
        tracing::info!(session = %session_id, "reservation ended without charging; session COMPLETED");
        self.commit(target).await
    }

    /// The peer if it is registered and has a receiver for `module`.
    fn receiver(&self, peer: Option<&str>, module: ModuleId) -> Option<String> {
        let peer = self.platform.peers().get(&PeerId(peer?.to_owned()))?;
        (peer.status == PeerStatus::Registered
            && peer.endpoint(&module, InterfaceRole::Receiver).is_some())
        .then_some(peer.id.0)
    }

    async fn commit(&self, peer: Option<String>) -> Result<(), state::Error> {
        self.store.flush().await?;
        if let Some(p) = peer {
            self.push.wake([&p]);
        }
        Ok(())
    }

    /// Opens the Session of a transaction once it is authorized (or marks it INVALID when the
    /// authorization failed). Does nothing if the session exists or the station has no
    /// configured location.
    pub async fn started(
        &self,
        tx_rec: &Transaction,
        decision: &Decision,
    ) -> Result<(), state::Error> {
        if self.record_for_tx(&tx_rec.id)?.is_some() {
            return Ok(());
        }
        // A transaction that consumes a reservation continues the reservation's Session.
        let reserved = match tx_rec.reservation_id {
            Some(r) => match self
                .store
                .index_get(RESERVATION_SESSION, &format!("{}\0{r}", tx_rec.station_id))?
            {
                Some(sid) => {
                    record(&self.store, &sid)?.filter(|r| r.status == SessionStatus::Reservation)
                }
                None => None,
            },
            None => None,
        };
        let Some(token) = &decision.token else {
            tracing::info!(session = %tx_rec.id, "no OCPI token for this transaction; no Session");
            return Ok(());
        };
        let cpo = self.cpo();
        let Some(loc) = cpo.location_of(&tx_rec.station_id) else {
            return Ok(());
        };
        let evse_id = tx_rec.evse_id.max(1);
        let connector_id = tx_rec.connector_id.max(1);
        let station = self.store.station(&tx_rec.station_id)?;
        let (tariff, currency) = tariff_and_currency(cpo, &tx_rec.station_id);
        let status = if decision.accepted() {
            SessionStatus::Active
        } else {
            SessionStatus::Invalid
        };
        let peer = self.receiver(decision.peer.as_deref(), ModuleId::Sessions);
        let location_id = loc.id.clone();
        let time_zone = loc.time_zone.clone();
        let station_id = tx_rec.station_id.clone();
        // Reads of the store must not happen inside a store transaction (sled would deadlock):
        // allocate the EVSE uid first (idempotent), then build the snapshot, then commit.
        let uid = self.store.update(|tx| tx.evse_uid(&station_id, evse_id))?;
        let cdr_location = cpo.cdr_location(&station_id, evse_id, connector_id, &uid);
        let rec = SessionRecord {
            id: reserved
                .as_ref()
                .map_or_else(|| tx_rec.id.clone(), |r| r.id.clone()),
            transaction_id: Some(tx_rec.id.clone()),
            created_at: reserved.as_ref().map_or_else(Utc::now, |r| r.created_at),
            peer: decision.peer.clone(),
            cdr_token: session::cdr_token(token),
            auth_method: decision.method,
            authorization_reference: decision.authorization_reference.clone(),
            location_id,
            evse_uid: uid,
            connector_id: connector_id.to_string(),
            cdr_location,
            time_zone,
            currency,
            tariff,
            meter_id: station.as_ref().and_then(|s| s.meter_serial_number.clone()),
            status,
            last_updated: Utc::now(),
        };
        let linked = reserved.is_some();
        self.store.update(|tx| {
            if !linked && tx.doc(SESSION_KIND, &rec.id)?.is_some() {
                return Ok(());
            }
            if linked {
                tx.index_put(SESSION_OF_TX, &tx_rec.id, &rec.id)?;
            }
            put_record(tx, &rec)?;
            if let Some(p) = &peer {
                tx.push_outbox(session_put(&rec, p))?;
            }
            Ok(())
        })?;
        tracing::info!(session = %rec.id, status = ?rec.status, method = ?rec.auth_method, peer = ?rec.peer, "OCPI session opened");
        self.commit(peer).await
    }

    /// Queues a Session update (at most one per `ocpi.session_update_interval`).
    pub async fn updated(&self, tx_id: &str) -> Result<(), state::Error> {
        let interval = Duration::from_secs(self.settings.ocpi.session_update_interval);
        {
            let mut map = self.last_update.lock().expect("throttle");
            if map.get(tx_id).is_some_and(|t| t.elapsed() < interval) {
                return Ok(());
            }
            map.insert(tx_id.to_owned(), Instant::now());
        }
        let Some(rec) = record(&self.store, tx_id)? else {
            return Ok(());
        };
        if rec.status != SessionStatus::Active {
            return Ok(());
        }
        let Some(peer) = self.receiver(rec.peer.as_deref(), ModuleId::Sessions) else {
            return Ok(());
        };
        self.store
            .update(|tx| tx.push_outbox(session_patch(&rec, &peer)))?;
        self.commit(Some(peer)).await
    }

    /// Completes the Session of a stopped transaction and creates its CDR (unless 2.0.1 events
    /// are still missing and [`CDR_GAP_WAIT`] has not passed).
    pub async fn stopped(&self, tx_id: &str) -> Result<(), state::Error> {
        self.last_update.lock().expect("throttle").remove(tx_id);
        let Some(tx_rec) = self.store.transaction(tx_id)? else {
            return Ok(());
        };
        let Some(mut rec) = record(&self.store, tx_id)? else {
            return Ok(());
        };
        if tx_rec.status != TransactionStatus::Completed {
            return Ok(());
        }
        let already_cdr = self.store.doc(CDR_KIND, tx_id)?.is_some();
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
        let cdr = if make_cdr {
            let samples = self.store.samples(tx_id)?;
            let (cc, pid) = (
                &self.settings.ocpi.country_code,
                &self.settings.ocpi.party_id,
            );
            Some(session::render_cdr(cc, pid, &rec, &tx_rec, &samples))
        } else {
            None
        };
        rec.status = SessionStatus::Completed;
        rec.last_updated = Utc::now();
        self.store.update(|tx| {
            put_record(tx, &rec)?;
            if was_active && let Some(p) = &session_peer {
                tx.push_outbox(session_patch(&rec, p))?;
            }
            if let Some(cdr) = &cdr
                && tx.doc(CDR_KIND, &rec.id)?.is_none()
            {
                tx.put_doc(CDR_KIND, &rec.id, cdr.clone())?;
                if let Some(p) = &cdr_peer {
                    tx.push_outbox(entry(
                        &rec,
                        p,
                        "POST",
                        "cdrs",
                        None,
                        String::new(),
                        cdr.clone(),
                    ))?;
                }
            }
            Ok(())
        })?;
        if let Some(cdr) = &cdr {
            metrics::counter!("bridge_cdrs_created_total").increment(1);
            tracing::info!(session = %tx_id, total_energy = %cdr["total_energy"], total_cost = %cdr["total_cost"], peer = ?cdr_peer, "CDR created");
            self.backup_cdr(cdr);
        }
        self.commit(session_peer.or(cdr_peer)).await
    }

    /// 2.0.1 seqNos below the highest seen that never arrived.
    fn missing_events(&self, tx_rec: &Transaction) -> Result<Vec<u32>, state::Error> {
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

    /// A second copy of every CDR as a JSON line next to the store (a lost CDR is lost money).
    fn backup_cdr(&self, cdr: &Value) {
        use std::io::Write;
        let path = self.settings.state.path.join("cdrs.jsonl");
        let line = format!("{cdr}\n");
        let result = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|_| f.sync_data()));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "writing the CDR backup copy failed");
        }
    }

    /// Finishes what a crash interrupted and what waited for missing events: every session
    /// whose transaction completed gets completed and its CDR.
    pub async fn recover(&self) {
        let records = match self.store.docs(SESSION_KIND) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading sessions failed");
                return;
            }
        };
        for doc in records {
            let Ok(rec) = serde_json::from_value::<SessionRecord>(doc.value) else {
                continue;
            };
            if rec.status == SessionStatus::Reservation {
                let over = match self.store.index_get(SESSION_RESERVATION, &rec.id) {
                    Ok(Some(key)) => key
                        .rsplit_once('\0')
                        .and_then(|(_, rid)| rid.parse::<i32>().ok())
                        .is_some_and(|rid| !crate::commands::reservation_live(&self.store, rid)),
                    _ => false,
                };
                if over && let Err(e) = self.reservation_over(&rec.id).await {
                    tracing::error!(session = %rec.id, error = %e, "completing a reservation session failed");
                }
                continue;
            }
            let pending = match rec.status {
                SessionStatus::Active => true,
                SessionStatus::Completed => self
                    .store
                    .doc(CDR_KIND, &rec.id)
                    .map(|d| d.is_none())
                    .unwrap_or(false),
                _ => false,
            };
            let Some(tx_id) = rec.tx_id().map(str::to_owned) else {
                continue;
            };
            if pending
                && let Ok(Some(t)) = self.store.transaction(&tx_id)
                && t.status == TransactionStatus::Completed
                && let Err(e) = self.stopped(&tx_id).await
            {
                tracing::error!(session = %rec.id, error = %e, "finishing a session failed");
            }
        }
    }

    /// Every Session, rendered now, in creation order.
    pub fn sessions(&self) -> Result<Vec<Value>, state::Error> {
        let (cc, pid) = (
            &self.settings.ocpi.country_code,
            &self.settings.ocpi.party_id,
        );
        let mut out = Vec::new();
        for doc in self.store.docs(SESSION_KIND)? {
            let Ok(rec) = serde_json::from_value::<SessionRecord>(doc.value) else {
                continue;
            };
            out.push(match rec.tx_id() {
                None => session::render_reservation(cc, pid, &rec),
                Some(tx_id) => {
                    let Some(t) = self.store.transaction(tx_id)? else {
                        continue;
                    };
                    let samples = self.store.samples(tx_id)?;
                    session::render_session(cc, pid, &rec, &t, &samples, Utc::now())
                }
            });
        }
        Ok(out)
    }

    /// Renders a session push: `(path, body)`; `sent` = periods the peer already has.
    pub fn render(&self, key: &str, peer: &str) -> Result<Option<(String, Value)>, state::Error> {
        let (cc, pid) = (
            &self.settings.ocpi.country_code,
            &self.settings.ocpi.party_id,
        );
        let (id, patch) = match (
            key.strip_prefix("session:"),
            key.strip_prefix("session_patch:"),
        ) {
            (Some(id), _) => (id, false),
            (_, Some(id)) => (id, true),
            _ => return Ok(None),
        };
        let Some(rec) = record(&self.store, id)? else {
            return Ok(None);
        };
        let session = match rec.tx_id() {
            None => session::render_reservation(cc, pid, &rec),
            Some(tx_id) => {
                let Some(t) = self.store.transaction(tx_id)? else {
                    return Ok(None);
                };
                let samples = self.store.samples(tx_id)?;
                session::render_session(cc, pid, &rec, &t, &samples, Utc::now())
            }
        };
        let path = format!("/{cc}/{pid}/{id}");
        if patch {
            let sent = self
                .store
                .index_get(session::PERIODS_SENT, &format!("{id}\0{peer}"))?
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Ok(Some((path, session::session_patch(&session, sent))))
        } else {
            Ok(Some((path, session)))
        }
    }

    /// After a peer accepted a push: remember how many charging periods it has, and the
    /// `Location` URL of a CDR.
    pub fn delivered(&self, peer: &str, entry: &OutboxEntry, body: &Value, location: Option<&str>) {
        let result = self.store.update(|tx| {
            if let Some(key) = &entry.render {
                let id = key
                    .strip_prefix("session:")
                    .or_else(|| key.strip_prefix("session_patch:"));
                if let Some(id) = id {
                    let k = format!("{id}\0{peer}");
                    let n = body
                        .get("charging_periods")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let before: usize = if key.starts_with("session:") {
                        0
                    } else {
                        tx.index_get(session::PERIODS_SENT, &k)?
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0)
                    };
                    tx.index_put(session::PERIODS_SENT, &k, &(before + n).to_string())?;
                }
            }
            if entry.module == "cdrs" {
                metrics::counter!("bridge_cdrs_delivered_total").increment(1);
                if let (Some(id), Some(url)) = (body.get("id").and_then(Value::as_str), location) {
                    tx.index_put(session::CDR_LOCATION, id, url)?;
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(peer, error = %e, "recording a delivery failed");
        }
    }
}
