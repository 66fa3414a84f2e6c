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

impl StationService {
    /// Tells the session flow a transaction started, with the decision that authorized it.
    async fn session_started(&self, station: &StationId, ocpp_tx: &str, decision: &Decision) {
        let Ok(Some(t)) = self.store.transaction_by_ocpp(station.as_str(), ocpp_tx) else {
            return;
        };
        // The flow first: a transaction consuming a reservation takes over its Session before
        // the reservation is ended (which would complete that Session).
        self.sessions
            .started(&t, decision)
            .await
            .or_log("opening the OCPI session");
        self.commands.transaction_started(station, &t);
        self.reservations.on_transaction(station, &t);
    }

    /// Tells the session flow a transaction changed (progress or end).
    async fn session_changed(&self, station: &StationId, ocpp_tx: &str) {
        let Ok(Some(t)) = self.store.transaction_by_ocpp(station.as_str(), ocpp_tx) else {
            return;
        };
        let result = if t.status == TransactionStatus::Completed {
            self.sessions.stopped(&t.id).await
        } else {
            self.sessions.updated(&t.id).await
        };
        result.or_log("updating the OCPI session");
    }

    fn new_transaction(
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

    /// Stores samples and folds their energy readings into the transaction.
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
        let key = state::Start16Key {
            station: station.as_str(),
            connector_id: req.connector_id,
            id_tag: &req.id_tag,
            meter_start: req.meter_start_wh,
            timestamp: req.timestamp,
        };
        let at = ocpp::EvseRef::from_v16_connector(req.connector_id);
        let (id, created) = self
            .store
            .update(|tx| {
                if let Some(id) = tx.start16_id(&key)? {
                    return Ok((id, false));
                }
                let id = tx.next_tx16_id()?;
                tx.remember_start16(&key, id)?;
                let mut rec =
                    Self::new_transaction(station, ctx.version, &id.to_string(), at, req.timestamp);
                rec.id_token = Some(req.id_tag.clone());
                rec.id_token_type = Some("IdTag".into());
                rec.meter_start_wh = Some(Decimal::from(req.meter_start_wh));
                rec.meter_last_wh = Some(Decimal::from(req.meter_start_wh));
                rec.reservation_id = req.reservation_id;
                rec.offline = req.timestamp < Utc::now() - chrono::Duration::minutes(5);
                tx.put_transaction(&rec)?;
                Ok((id, true))
            })
            .map_err(internal)?;
        self.durable().await?;
        if created {
            metrics::counter!("bridge_transactions_started_total").increment(1);
        }
        tracing::info!(
            transaction = id,
            connector = req.connector_id,
            retry = !created,
            "transaction started"
        );
        if created {
            self.session_started(station, &id.to_string(), &decision)
                .await;
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
        let (known, kind, stored) = self
            .store
            .update(|tx| {
                let (mut rec, known) = match tx.transaction_by_ocpp(station.as_str(), &ocpp_id)? {
                    Some(rec) => (rec, true),
                    // A stop for a transaction we never saw (started under another CSMS, or the
                    // store was lost): keep what the stop tells us rather than refusing it.
                    None => {
                        let at = ocpp::EvseRef {
                            evse_id: 0,
                            connector_id: 0,
                        };
                        let mut rec = Self::new_transaction(
                            station,
                            ctx.version,
                            &ocpp_id,
                            at,
                            req.timestamp,
                        );
                        rec.id_token = req.id_tag.clone();
                        (rec, false)
                    }
                };
                // Stop facts are frozen by the first stop (the CDR is made from them).
                let kind = stops::classify(&rec, &facts);
                if kind != stops::StopKind::First {
                    return Ok((known, kind, stops::stored_facts(&rec)));
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
                Ok((known, stops::StopKind::First, None))
            })
            .map_err(internal)?;
        self.durable().await?;
        stops::report(
            &req.transaction_id.to_string(),
            kind,
            &facts,
            stored.as_ref(),
        );
        if kind == stops::StopKind::First {
            tracing::info!(transaction = req.transaction_id, known, reason = %reason, "transaction stopped");
        }
        self.session_changed(station, &ocpp_id).await;
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
        let known = self
            .store
            .update(|tx| {
                let Some(mut rec) = tx.transaction_by_ocpp(ctx.station.as_str(), &ocpp_id)? else {
                    return Ok(false);
                };
                Self::add_samples(tx, &mut rec, &samples)?;
                rec.updated_at = Utc::now();
                tx.put_transaction(&rec)?;
                Ok(true)
            })
            .map_err(internal)?;
        if !known {
            tracing::warn!(
                transaction = tx_id,
                "meter values for an unknown transaction"
            );
        }
        self.durable().await?;
        if known {
            self.session_changed(&ctx.station, &ocpp_id).await;
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
        let (applied, stop) = self
            .store
            .update(|tx| {
                if !tx.first_time_event(station.as_str(), &ev.transaction_id, ev.seq_no)? {
                    return Ok((false, None));
                }
                let at = ev.evse.unwrap_or(ocpp::EvseRef {
                    evse_id: 0,
                    connector_id: 0,
                });
                let mut rec = match tx.transaction_by_ocpp(station.as_str(), &ev.transaction_id)? {
                    Some(rec) => rec,
                    None => Self::new_transaction(
                        station,
                        ctx.version,
                        &ev.transaction_id,
                        at,
                        ev.timestamp,
                    ),
                };
                // Another Ended event (new seqNo) for a completed transaction: its stop facts
                // are frozen, the event changes nothing.
                let stop = ended.then(|| stops::classify(&rec, &facts));
                if let Some(kind) = stop
                    && kind != stops::StopKind::First
                {
                    return Ok((false, Some((kind, stops::stored_facts(&rec)))));
                }
                apply_event(&mut rec, ev);
                Self::add_samples(tx, &mut rec, &samples)?;
                rec.updated_at = Utc::now();
                tx.put_transaction(&rec)?;
                Ok((true, stop.map(|k| (k, None))))
            })
            .map_err(internal)?;
        self.durable().await?;
        if let Some((kind, stored)) = &stop {
            stops::report(&ev.transaction_id, *kind, &facts, stored.as_ref());
        }
        tracing::info!(transaction = %ev.transaction_id, event = ?ev.event_type, seq = ev.seq_no,
            offline = ev.offline, duplicate = !applied, "transaction event");
        if applied && ev.event_type == ocpp::TransactionEventType::Started {
            metrics::counter!("bridge_transactions_started_total").increment(1)
        }
        // Authorization: a remote start we asked for, else the token this event carries.
        let remote = ev
            .remote_start_id
            .and_then(|id| self.authorizer.remote_start(station, id));
        let decision = match (&ev.id_token, remote) {
            (_, Some(d)) => Some(d),
            (Some(t), None) => Some(self.decide(station, t, ev.evse.map(|e| e.evse_id)).await),
            (None, None) => None,
        };
        if let Some(d) = &decision {
            self.session_started(station, &ev.transaction_id, d).await;
        }
        if applied {
            self.session_changed(station, &ev.transaction_id).await;
        }
        let id_token_info = match (&ev.id_token, &decision) {
            (Some(_), Some(d)) => Some(d.info.clone()),
            _ => None,
        };
        Ok(StationResponse::TransactionEvent { id_token_info })
    }
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
