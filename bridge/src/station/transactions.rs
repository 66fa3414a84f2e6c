//! Transaction messages → transactions and their OCPI sessions.
//!
//! 1.6 StartTransaction (a retried one gets the same id), StopTransaction, MeterValues and
//! 2.0.1 TransactionEvent (applied once per seqNo, in any order) are stored and flushed before
//! the answer; then the session flow ([`crate::sessions`]) opens, updates or completes the
//! transaction's Session and CDR, and a transaction that started from a command or consumed a
//! reservation is handed to [`crate::commands`] and [`crate::reservations`].

use chrono::{DateTime, Utc};
use ocpp::{CallFault, IdToken, OcppVersion, RequestContext, StationId, StationResponse};
use rust_decimal::Decimal;
use state::{Transaction, TransactionStatus};

use super::{StationService, internal, stops};
use crate::auth::Decision;
use crate::error::Logged;
use crate::meter;
use crate::records::SessionRecord;
use crate::sessions::Opening;

impl StationService {
    /// Reads what the transaction's Session needs before the store transaction that stores
    /// the transaction and opens the Session together ([`crate::sessions::Sessions::open_in`]).
    fn prepare_session(
        &self,
        station: &StationId,
        reservation_id: Option<i32>,
        decision: &Decision,
    ) -> Result<Option<Opening>, CallFault> {
        let opening = self
            .sessions
            .prepare(station.as_str(), reservation_id, decision)
            .map_err(CallFault::from)?;
        if opening.is_none() {
            tracing::info!(station = %station, "no OCPI token or no location for this transaction; no Session");
        }
        Ok(opening)
    }

    /// After the store transaction that stored `t` (and opened its Session, if `opened`)
    /// committed and was flushed: tells the receiver, and hands a transaction that started
    /// from a command or consumed a reservation to [`crate::commands`] and
    /// [`crate::reservations`].
    async fn session_started(
        &self,
        station: &StationId,
        t: &Transaction,
        opened: Option<(SessionRecord, &Opening)>,
    ) {
        if let Some((rec, opening)) = opened {
            self.sessions
                .opened(&rec, opening)
                .await
                .or_log("opening the OCPI session");
        }
        self.commands.transaction_started(station, t);
        self.reservations.on_transaction(station, t);
    }

    /// Tells the session flow a transaction changed (progress or end). `t` is the record as
    /// the message's commit left it (no store read here: a read on a tokio worker waits while
    /// the group commit holds sled's write lock).
    async fn session_changed(&self, t: &Transaction) {
        let result = if t.status == TransactionStatus::Completed {
            self.smart.session_ended(&t.id);
            self.sessions.stopped(&t.id).await
        } else {
            self.sessions.updated(&t.id).await
        };
        result.or_log("updating the OCPI session");
    }

    pub(super) fn new_transaction(
        station: &StationId,
        version: OcppVersion,
        ocpp_id: &str,
        at: ocpp::EvseRef,
        started_at: DateTime<Utc>,
    ) -> Transaction {
        let now = Utc::now();
        Transaction {
            v: state::SCHEMA_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            station_id: station.0.clone(),
            evse_id: at.evse_id,
            connector_id: at.connector_id,
            ocpp_transaction_id: ocpp_id.to_owned(),
            ocpp_version: version.label().to_owned(),
            id_token: None,
            id_token_type: None,
            status: TransactionStatus::Active,
            started_at,
            stopped_at: None,
            meter_start_wh: None,
            meter_stop_wh: None,
            meter_last_wh: None,
            stop_reason: None,
            offline: false,
            remote_start_id: None,
            reservation_id: None,
            charging_state: None,
            time_spent_charging: None,
            last_seq_no: None,
            samples: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Stores samples and folds their energy readings into the transaction (in memory: whether
    /// the record is written again is [`must_rewrite`]'s call).
    fn add_samples(
        tx: &state::Txn<'_>,
        rec: &mut Transaction,
        samples: &[state::MeterSample],
    ) -> Result<(), state::TxError> {
        for s in samples {
            if tx.add_sample(&rec.id, s)? {
                rec.samples += 1;
            }
        }
        let r = meter::energy_readings(samples);
        if rec.meter_start_wh.is_none() {
            rec.meter_start_wh = r.begin.or(r.first.map(|(_, v)| v));
        }
        if let Some(end) = r.end {
            rec.meter_stop_wh = Some(end);
        }
        if let Some((_, last)) = r.last {
            rec.meter_last_wh = Some(rec.meter_last_wh.map_or(last, |m| m.max(last)));
        }
        Ok(())
    }

    pub(super) async fn start16(
        &self,
        ctx: &RequestContext,
        req: &ocpp::StartTransaction,
    ) -> Result<StationResponse, CallFault> {
        let station = &ctx.station;
        let token = IdToken {
            id: req.id_tag.clone(),
            kind: ocpp::IdTokenKind::IdTag,
        };
        let decision = self.decide(station, &token, Some(req.connector_id)).await;
        let info = decision.info.clone();
        let at = ocpp::EvseRef::from_v16_connector(req.connector_id);
        let opening = self.prepare_session(station, req.reservation_id, &decision)?;
        // The transaction, its Session and the Session's push are one store transaction: a
        // crash leaves either nothing (the station retries and gets a new id) or all of it.
        // A retried start (same key) gets the same id and opens the Session if a store written
        // by an older version lacks it. Committed with other stations' messages (group commit)
        // and durable when `commit` returns.
        let (sessions, version, st, req_owned, open) = (
            self.sessions.clone(),
            ctx.version,
            station.clone(),
            req.clone(),
            opening.clone(),
        );
        let (id, created, t, opened) = self
            .store
            .commit(move |tx| {
                let (station, req) = (&st, &req_owned);
                let key = state::Start16Key {
                    station: station.as_str(),
                    connector_id: req.connector_id,
                    id_tag: &req.id_tag,
                    meter_start: req.meter_start_wh,
                    timestamp: req.timestamp,
                };
                let (id, created, rec) = match tx.start16_id(&key)? {
                    Some(id) => match tx.transaction_by_ocpp(station.as_str(), &id.to_string())? {
                        Some(rec) => (id, false, rec),
                        None => return Err(state::reject("start id without its transaction")),
                    },
                    None => {
                        let id = tx.next_tx16_id()?;
                        tx.remember_start16(&key, id)?;
                        let mut rec = Self::new_transaction(
                            station,
                            version,
                            &id.to_string(),
                            at,
                            req.timestamp,
                        );
                        rec.id_token = Some(req.id_tag.clone());
                        rec.id_token_type = Some("IdTag".into());
                        rec.meter_start_wh = Some(Decimal::from(req.meter_start_wh));
                        rec.meter_last_wh = Some(Decimal::from(req.meter_start_wh));
                        rec.reservation_id = req.reservation_id;
                        rec.offline = req.timestamp < Utc::now() - chrono::Duration::minutes(5);
                        tx.put_transaction(&rec)?;
                        (id, true, rec)
                    }
                };
                let opened = match &open {
                    Some(o) => sessions.open_in(tx, o, &rec)?,
                    None => None,
                };
                Ok((id, created, rec, opened))
            })
            .await
            .map_err(internal)?;
        if created {
            metrics::counter!("bridge_transactions_started_total").increment(1);
        }
        tracing::info!(
            transaction = id,
            connector = req.connector_id,
            retry = !created,
            "transaction started"
        );
        if !created && opened.is_some() {
            tracing::warn!(
                transaction = id,
                "a retried start opened the missing Session"
            );
        }
        let opened = opened.zip(opening.as_ref());
        if created || opened.is_some() {
            self.session_started(station, &t, opened).await;
        }
        Ok(StationResponse::StartTransaction {
            transaction_id: id,
            id_tag_info: info,
        })
    }

    pub(super) async fn stop16(
        &self,
        ctx: &RequestContext,
        req: &ocpp::StopTransaction,
    ) -> Result<StationResponse, CallFault> {
        let station = &ctx.station;
        let samples = meter::to_samples(&req.transaction_data);
        let ocpp_id = req.transaction_id.to_string();
        let reason = req.reason.clone().unwrap_or_else(|| "Local".to_owned());
        let facts = stops::StopFacts {
            at: req.timestamp,
            meter_stop_wh: Some(Decimal::from(req.meter_stop_wh)),
            reason: reason.clone(),
        };
        let (st, id, stop, req_owned, why) = (
            station.clone(),
            ocpp_id.clone(),
            facts.clone(),
            req.clone(),
            reason.clone(),
        );
        let outcome = self
            .store
            .commit(move |tx| {
                let (station, ocpp_id, facts, req, reason) = (&st, &id, &stop, &req_owned, &why);
                // A stop for a transaction id we never issued (started under another CSMS, a
                // lost store, or a station's bug) is answered so the station clears its queue,
                // but stores nothing: a completed record from it would be a CDR nobody
                // authorized.
                let Some(mut rec) = tx.transaction_by_ocpp(station.as_str(), ocpp_id)? else {
                    return Ok(None);
                };
                // Stop facts are frozen by the first stop (the CDR is made from them).
                let kind = stops::classify(&rec, facts);
                if kind != stops::StopKind::First {
                    let stored = stops::stored_facts(&rec);
                    return Ok(Some((kind, stored, rec)));
                }
                Self::add_samples(tx, &mut rec, &samples)?;
                rec.status = TransactionStatus::Completed;
                rec.stopped_at = Some(req.timestamp);
                rec.meter_stop_wh = Some(Decimal::from(req.meter_stop_wh));
                rec.meter_last_wh = Some(Decimal::from(req.meter_stop_wh));
                rec.stop_reason = Some(reason.clone());
                rec.offline |= req.timestamp < Utc::now() - chrono::Duration::minutes(5);
                rec.updated_at = Utc::now();
                tx.put_transaction(&rec)?;
                Ok(Some((stops::StopKind::First, None, rec)))
            })
            .await
            .map_err(internal)?;
        match outcome {
            None => stops::unknown(&ocpp_id, &facts),
            Some((kind, stored, t)) => {
                stops::report(&ocpp_id, kind, &facts, stored.as_ref());
                if kind == stops::StopKind::First {
                    tracing::info!(transaction = req.transaction_id, reason = %reason, "transaction stopped");
                }
                self.session_changed(&t).await;
            }
        }
        let id_tag_info = match &req.id_tag {
            Some(tag) => {
                let token = IdToken {
                    id: tag.clone(),
                    kind: ocpp::IdTokenKind::IdTag,
                };
                Some(self.decide(station, &token, None).await.info)
            }
            None => None,
        };
        Ok(StationResponse::StopTransaction { id_tag_info })
    }

    pub(super) async fn meter_values(
        &self,
        ctx: &RequestContext,
        req: &ocpp::MeterValuesReport,
    ) -> Result<StationResponse, CallFault> {
        let Some(tx_id) = req.transaction_id else {
            tracing::debug!(evse = req.at.evse_id, "meter values outside a transaction");
            return Ok(StationResponse::Ack);
        };
        let samples = meter::to_samples(&req.meter_values);
        let ocpp_id = tx_id.to_string();
        let (st, id) = (ctx.station.clone(), ocpp_id.clone());
        // The samples are the fact; the transaction record is written again only when they
        // change what it says (a first or an end reading), not per message.
        let known = self
            .store
            .commit(move |tx| {
                let Some(mut rec) = tx.transaction_by_ocpp(st.as_str(), &id)? else {
                    return Ok(None);
                };
                let before = rec.clone();
                Self::add_samples(tx, &mut rec, &samples)?;
                if must_rewrite(&before, &rec) {
                    rec.updated_at = Utc::now();
                    tx.put_transaction(&rec)?;
                }
                Ok(Some(rec))
            })
            .await
            .map_err(internal)?;
        if known.is_none() {
            tracing::warn!(
                transaction = tx_id,
                "meter values for an unknown transaction"
            );
        }
        if let Some(t) = known {
            self.session_changed(&t).await;
        }
        Ok(StationResponse::Ack)
    }

    pub(super) async fn transaction_event(
        &self,
        ctx: &RequestContext,
        ev: &ocpp::TransactionEvent,
    ) -> Result<StationResponse, CallFault> {
        let station = &ctx.station;
        let samples = meter::to_samples(&ev.meter_values);
        let ended = ev.event_type == ocpp::TransactionEventType::Ended;
        let facts = stops::StopFacts {
            at: ev.timestamp,
            meter_stop_wh: meter::energy_readings(&samples).end,
            reason: ev
                .stopped_reason
                .clone()
                .unwrap_or_else(|| "Local".to_owned()),
        };
        // Authorization first (a remote start we asked for, else the token this event carries),
        // so that the transaction and its Session are stored in one store transaction.
        let remote = ev
            .remote_start_id
            .and_then(|id| self.authorizer.remote_start(station, id));
        let decision = match (&ev.id_token, remote) {
            (_, Some(d)) => Some(d),
            (Some(t), None) => Some(self.decide(station, t, ev.evse.map(|e| e.evse_id)).await),
            (None, None) => None,
        };
        let opening = match &decision {
            Some(d) => self.prepare_session(station, ev.reservation_id, d)?,
            None => None,
        };
        let (sessions, version, st, event, open, stop_facts) = (
            self.sessions.clone(),
            ctx.version,
            station.clone(),
            ev.clone(),
            opening.clone(),
            facts.clone(),
        );
        let (applied, stop, t, opened) = self
            .store
            .commit(move |tx| {
                let (station, ev, facts) = (&st, &event, &stop_facts);
                if !tx.first_time_event(station.as_str(), &ev.transaction_id, ev.seq_no)? {
                    // A repeated event changes nothing, but repairs a transaction that a store
                    // written by an older version left without its Session.
                    let rec = tx.transaction_by_ocpp(station.as_str(), &ev.transaction_id)?;
                    let opened = match (&open, &rec) {
                        (Some(o), Some(rec)) => sessions.open_in(tx, o, rec)?,
                        _ => None,
                    };
                    return Ok((false, None, rec, opened));
                }
                let at = ev.evse.unwrap_or(ocpp::EvseRef {
                    evse_id: 0,
                    connector_id: 0,
                });
                let (mut rec, before) =
                    match tx.transaction_by_ocpp(station.as_str(), &ev.transaction_id)? {
                        Some(rec) => (rec.clone(), Some(rec)),
                        None => (
                            Self::new_transaction(
                                station,
                                version,
                                &ev.transaction_id,
                                at,
                                ev.timestamp,
                            ),
                            None,
                        ),
                    };
                // Another Ended event (new seqNo) for a completed transaction: its stop facts
                // are frozen, the event changes nothing.
                let stop = ended.then(|| stops::classify(&rec, facts));
                if let Some(kind) = stop
                    && kind != stops::StopKind::First
                {
                    let stored = stops::stored_facts(&rec);
                    return Ok((false, Some((kind, stored)), Some(rec), None));
                }
                apply_event(&mut rec, ev);
                Self::add_samples(tx, &mut rec, &samples)?;
                // A sample-only Updated event stores its samples and its seqNo; the record is
                // written again only when the event changes what it says.
                if before.as_ref().is_none_or(|b| must_rewrite(b, &rec)) {
                    rec.updated_at = Utc::now();
                    tx.put_transaction(&rec)?;
                }
                let opened = match &open {
                    Some(o) => sessions.open_in(tx, o, &rec)?,
                    None => None,
                };
                Ok((true, stop.map(|k| (k, None)), Some(rec), opened))
            })
            .await
            .map_err(internal)?;
        if let Some((kind, stored)) = &stop {
            stops::report(&ev.transaction_id, *kind, &facts, stored.as_ref());
        }
        tracing::info!(transaction = %ev.transaction_id, event = ?ev.event_type, seq = ev.seq_no,
            offline = ev.offline, duplicate = !applied, "transaction event");
        if applied && ev.event_type == ocpp::TransactionEventType::Started {
            metrics::counter!("bridge_transactions_started_total").increment(1)
        }
        if let Some(t) = &t {
            let opened = opened.zip(opening.as_ref());
            if decision.is_some() {
                self.session_started(station, t, opened).await;
            }
        }
        if applied && let Some(t) = &t {
            self.session_changed(t).await;
        }
        let id_token_info = match (&ev.id_token, &decision) {
            (Some(_), Some(d)) => Some(d.info.clone()),
            _ => None,
        };
        Ok(StationResponse::TransactionEvent { id_token_info })
    }
}

/// Whether a transaction record must be written again after a message: anything changed
/// besides what every sample-only message moves (the sample count, the last reading, the last
/// seqNo, `updated_at`), so that MeterValues and sample-only 2.0.1 events write their samples
/// (and their seqNo key) and nothing else (issue 15: no per-message record rewrite). The admin
/// API reads the sample count and the last reading from the stored samples; the record's
/// `last_seq_no` is that of the last event that changed it, which is what [`apply_event`]
/// compares against (every applied seqNo is kept in the event keys). A completed transaction
/// is always written: its `updated_at` times the wait for missing 2.0.1 events.
pub fn must_rewrite(before: &Transaction, after: &Transaction) -> bool {
    if before.status == TransactionStatus::Completed {
        return true;
    }
    let mut a = after.clone();
    a.samples = before.samples;
    a.meter_last_wh = before.meter_last_wh;
    a.last_seq_no = before.last_seq_no;
    a.updated_at = before.updated_at;
    a != *before
}

/// Folds one 2.0.1 TransactionEvent into a transaction record. Events may arrive out of order
/// (offline replay), so every field takes the value that is right whatever the order:
/// the earliest start, the Ended event's stop, the highest seqNo.
pub fn apply_event(rec: &mut Transaction, ev: &ocpp::TransactionEvent) {
    use ocpp::TransactionEventType::*;
    if ev.event_type == Started || ev.timestamp < rec.started_at {
        rec.started_at = rec.started_at.min(ev.timestamp);
    }
    if let Some(at) = ev.evse
        && (rec.evse_id == 0 || ev.event_type == Started)
    {
        rec.evse_id = at.evse_id;
        rec.connector_id = at.connector_id;
    }
    if let Some(t) = &ev.id_token {
        rec.id_token = Some(t.id.clone());
        rec.id_token_type = Some(format!("{:?}", t.kind));
    }
    if ev.remote_start_id.is_some() {
        rec.remote_start_id = ev.remote_start_id;
    }
    if ev.reservation_id.is_some() {
        rec.reservation_id = ev.reservation_id;
    }
    let newest = rec.last_seq_no.is_none_or(|s| ev.seq_no >= s);
    if newest {
        rec.last_seq_no = Some(ev.seq_no);
        if ev.charging_state.is_some() {
            rec.charging_state = ev.charging_state.clone();
        }
        if ev.time_spent_charging.is_some() {
            rec.time_spent_charging = ev.time_spent_charging;
        }
    }
    rec.offline |= ev.offline;
    if ev.event_type == Ended {
        rec.status = TransactionStatus::Completed;
        rec.stopped_at = Some(ev.timestamp);
        rec.stop_reason = Some(
            ev.stopped_reason
                .clone()
                .unwrap_or_else(|| "Local".to_owned()),
        );
        if ev.time_spent_charging.is_some() {
            rec.time_spent_charging = ev.time_spent_charging;
        }
    }
}
