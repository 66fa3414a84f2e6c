//! Applies what stations say to the durable state and answers them: the bridge's [`ocpp::Csms`].
//!
//! Invariants:
//! - a transaction message (1.6 Start/StopTransaction, MeterValues with a transactionId, 2.0.1
//!   TransactionEvent) is answered only after its effect is flushed to disk ([`state::Store::flush`],
//!   group commit) — a station that got its answer may forget the message;
//! - retries change nothing: a retried 1.6 StartTransaction gets the same id, a 2.0.1 event is
//!   applied once per (station, transactionId, seqNo), a retried sample is stored once;
//! - a well-formed transaction message is never refused with a CALLERROR (the station would
//!   retry and finally drop it); only a storage failure answers `InternalError`, so it retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ocpp::{
    Admission, CallFault, Credentials, DataTransferStatus, ErrorCode, IdToken, OcppVersion,
    RegistrationStatus, RequestContext, StationHandle, StationId, StationRequest, StationResponse,
};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use state::{Store, Transaction, TransactionStatus};

use crate::auth::Authorizer;
use crate::config::Settings;
use crate::cpo::{Cpo, PushControl, render};
use crate::{evse, meter};

/// What the station service needs to publish EVSE changes over OCPI.
#[derive(Clone, Debug)]
pub struct OcpiHooks {
    /// The OCPI platform (for the current peers).
    pub platform: Arc<ocpi::Platform<Cpo>>,
    /// Wakes the pusher.
    pub push: PushControl,
    /// Sessions and CDRs.
    pub flow: Arc<crate::flow::Flow>,
}

/// Hears what stations do, for features that react to it (OCPI commands, reservations).
/// Methods are called after the station's message was stored; they must not block.
pub trait StationObserver: Send + Sync + 'static {
    /// A connector status was stored.
    fn status(&self, station: &StationId, at: ocpp::EvseRef, status: ocpp::ConnectorStatus) {
        let _ = (station, at, status);
    }
    /// An acknowledged notification (e.g. 2.0.1 ReservationStatusUpdate).
    fn notification(&self, station: &StationId, action: &str, payload: &serde_json::Value) {
        let _ = (station, action, payload);
    }
    /// A transaction started (first time it was seen).
    fn transaction_started(&self, station: &StationId, transaction: &Transaction) {
        let _ = (station, transaction);
    }
    /// A station connected.
    fn connected(&self, station: &StationId) {
        let _ = station;
    }
    /// A station's current connection closed.
    fn disconnected(&self, station: &StationId) {
        let _ = station;
    }
}

/// The bridge's OCPP application.
pub struct StationService {
    settings: Arc<Settings>,
    store: Store,
    /// The current connection of each station: a replaced connection's disconnect must not
    /// mark the station offline.
    connections: Mutex<HashMap<StationId, u64>>,
    /// OCPI publication (absent in unit tests of the OCPP side alone).
    ocpi: Option<OcpiHooks>,
    /// Decides authorizations.
    authorizer: Arc<Authorizer>,
    /// Reacts to station events (commands, reservations).
    observer: Option<Arc<dyn StationObserver>>,
}

impl std::fmt::Debug for StationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StationService").finish_non_exhaustive()
    }
}

fn internal(e: state::Error) -> CallFault {
    tracing::error!(error = %e, "storing a station message failed");
    metrics::counter!("bridge_store_errors_total").increment(1);
    CallFault::new(ErrorCode::InternalError, "storage failure; please retry")
}

impl StationService {
    /// A service over the store.
    pub fn new(settings: Arc<Settings>, store: Store, authorizer: Arc<Authorizer>) -> Self {
        StationService {
            settings,
            store,
            connections: Mutex::new(HashMap::new()),
            ocpi: None,
            authorizer,
            observer: None,
        }
    }

    /// Tells `observer` about station events.
    pub fn with_observer(mut self, observer: Arc<dyn StationObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The authorizer.
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    fn flow(&self) -> Option<&Arc<crate::flow::Flow>> {
        self.ocpi.as_ref().map(|h| &h.flow)
    }

    /// Where a token is used, for the eMSP's real-time authorization.
    fn location_refs(
        &self,
        station: &str,
        evse_id: Option<u32>,
    ) -> Option<ocpi::types::LocationReferences> {
        let location_id = self.location_id(station)?;
        let evse_uids = evse_id
            .filter(|e| *e > 0)
            .and_then(|e| self.store.evse_uid(station, e).ok().flatten())
            .map(|uid| vec![ocpi::types::EvseUid::new(uid)]);
        Some(ocpi::types::LocationReferences {
            location_id: ocpi::types::LocationId::new(location_id),
            evse_uids,
        })
    }

    async fn decide(
        &self,
        station: &StationId,
        token: &IdToken,
        evse_id: Option<u32>,
    ) -> crate::auth::Decision {
        let refs = self.location_refs(station.as_str(), evse_id);
        self.authorizer.authorize(station, token, refs, false).await
    }

    /// Tells the flow a transaction started, with the decision that authorized it.
    async fn session_started(
        &self,
        station: &StationId,
        ocpp_tx: &str,
        decision: &crate::auth::Decision,
    ) {
        let Ok(Some(t)) = self.store.transaction_by_ocpp(station.as_str(), ocpp_tx) else {
            return;
        };
        // The flow first: a transaction consuming a reservation takes over its Session before
        // the reservation is ended (which would complete that Session).
        if let Some(flow) = self.flow()
            && let Err(e) = flow.started(&t, decision).await
        {
            tracing::error!(session = %t.id, error = %e, "opening the OCPI session failed");
        }
        if let Some(o) = &self.observer {
            o.transaction_started(station, &t);
        }
    }

    /// Tells the flow a transaction changed (progress or end).
    async fn session_changed(&self, station: &StationId, ocpp_tx: &str) {
        let Some(flow) = self.flow() else { return };
        let Ok(Some(t)) = self.store.transaction_by_ocpp(station.as_str(), ocpp_tx) else {
            return;
        };
        let result = if t.status == TransactionStatus::Completed {
            flow.stopped(&t.id).await
        } else {
            flow.updated(&t.id).await
        };
        if let Err(e) = result {
            tracing::error!(session = %t.id, error = %e, "updating the OCPI session failed");
        }
    }

    /// Publishes EVSE changes over OCPI.
    pub fn with_ocpi(mut self, hooks: OcpiHooks) -> Self {
        self.ocpi = Some(hooks);
        self
    }

    /// Registered peers that receive Locations.
    fn location_receivers(&self) -> Vec<String> {
        match &self.ocpi {
            Some(h) => Cpo::location_receivers(&h.platform.peers().all()),
            None => Vec::new(),
        }
    }

    fn wake(&self, peers: &[String]) {
        if let Some(h) = &self.ocpi {
            h.push.wake(peers);
        }
    }

    /// The configured location of a station (stations without one are not published).
    fn location_id(&self, station: &str) -> Option<String> {
        self.settings.station(station).map(|s| s.location.clone())
    }

    /// Recomputes the published OCPI state of some of a station's EVSEs inside an update and
    /// queues pushes for every Locations receiver: a Location PUT when an EVSE appears or gets
    /// a new connector, an EVSE PATCH when its status changes. Returns whether anything was
    /// queued.
    fn refresh_evses(
        tx: &state::Txn<'_>,
        station: &str,
        location_id: &str,
        evse_ids: &[u32],
        touched: Option<ocpp::EvseRef>,
        reachable: bool,
        receivers: &[String],
    ) -> Result<bool, state::TxError> {
        let now = Utc::now();
        let station_level = tx.connector(station, 0, 0)?.map(|c| c.status);
        let mut queued = false;
        for &evse_id in evse_ids.iter().filter(|e| **e != 0) {
            let prev = tx.evse_state(station, evse_id)?;
            let mut connectors = prev
                .as_ref()
                .map(|p| p.connectors.clone())
                .unwrap_or_default();
            if let Some(t) = touched
                && t.evse_id == evse_id
                && t.connector_id != 0
                && !connectors.contains(&t.connector_id)
            {
                connectors.push(t.connector_id);
                connectors.sort_unstable();
            }
            let mut statuses = Vec::new();
            for c in &connectors {
                if let Some(conn) = tx.connector(station, evse_id, *c)? {
                    statuses.push(conn.status);
                }
            }
            let refs: Vec<&str> = statuses.iter().map(String::as_str).collect();
            let status = evse::status_str(evse::evse_status(
                station_level.as_deref(),
                &refs,
                reachable,
            ));
            let (entry_kind, uid) = match &prev {
                None => ("location", tx.evse_uid(station, evse_id)?),
                Some(p) if p.connectors != connectors => ("location", p.uid.clone()),
                Some(p) if p.status != status => ("evse", p.uid.clone()),
                Some(_) => continue,
            };
            tx.put_evse_state(&state::EvseState {
                v: state::SCHEMA_VERSION,
                station_id: station.to_owned(),
                evse_id,
                uid,
                status: status.clone(),
                connectors,
                last_updated: now,
            })?;
            for peer in receivers {
                let entry = if entry_kind == "location" {
                    state::OutboxEntry::rendered(
                        peer,
                        "PUT",
                        "locations",
                        render::location(location_id),
                    )
                } else {
                    state::OutboxEntry::rendered(
                        peer,
                        "PATCH",
                        "locations",
                        render::evse(station, evse_id),
                    )
                };
                tx.push_outbox(entry)?;
                queued = true;
            }
            tracing::info!(station, evse = evse_id, status = %status, "OCPI EVSE status");
        }
        Ok(queued)
    }

    /// Re-publishes every EVSE of a station (after it connected, or went past the offline grace).
    pub async fn refresh_station(
        &self,
        station: &str,
        reachable: bool,
    ) -> Result<(), state::Error> {
        let Some(location) = self.location_id(station) else {
            return Ok(());
        };
        let evse_ids: Vec<u32> = self
            .store
            .evse_states(station)?
            .iter()
            .map(|e| e.evse_id)
            .collect();
        if evse_ids.is_empty() {
            return Ok(());
        }
        let receivers = self.location_receivers();
        let queued = self.store.update(|tx| {
            Self::refresh_evses(
                tx, station, &location, &evse_ids, None, reachable, &receivers,
            )
        })?;
        if queued {
            self.store.flush().await?;
            self.wake(&receivers);
        }
        Ok(())
    }

    /// Marks the EVSEs of stations offline for longer than `grace` as UNKNOWN (once).
    pub async fn sweep_offline(&self, grace: chrono::Duration, since_start: DateTime<Utc>) {
        let stations = match self.store.stations() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "offline sweep: reading stations failed");
                return;
            }
        };
        let now = Utc::now();
        for st in stations.iter().filter(|s| !s.online) {
            let since = st.disconnected_at.unwrap_or(since_start).max(since_start);
            if now - since < grace {
                continue;
            }
            let needs = self
                .store
                .evse_states(&st.id)
                .map(|es| es.iter().any(|e| e.status != "UNKNOWN"))
                .unwrap_or(false);
            if needs {
                tracing::info!(station = %st.id, "offline past the grace period: EVSEs now UNKNOWN");
                if let Err(e) = self.refresh_station(&st.id, false).await {
                    tracing::error!(station = %st.id, error = %e, "offline sweep failed");
                }
            }
        }
    }

    async fn durable(&self) -> Result<(), CallFault> {
        self.store.flush().await.map_err(internal)
    }

    fn touch(&self, station: &StationId, f: impl Fn(&mut state::Station)) -> Result<(), CallFault> {
        let now = Utc::now();
        self.store
            .update(|tx| {
                let mut s = tx
                    .station(station.as_str())?
                    .unwrap_or_else(|| state::Station::new(station.as_str()));
                s.last_seen = Some(now);
                f(&mut s);
                tx.put_station(&s)
            })
            .map_err(internal)
    }

    fn boot(
        &self,
        station: &StationId,
        version: OcppVersion,
        boot: &ocpp::BootInfo,
    ) -> Result<StationResponse, CallFault> {
        let now = Utc::now();
        self.touch(station, |s| {
            s.ocpp_version = Some(version.label().to_owned());
            s.vendor = Some(boot.vendor.clone());
            s.model = Some(boot.model.clone());
            s.serial_number = boot.serial_number.clone();
            s.firmware_version = boot.firmware_version.clone();
            s.meter_serial_number = boot.meter_serial_number.clone();
            s.meter_type = boot.meter_type.clone();
            s.iccid = boot.iccid.clone();
            s.imsi = boot.imsi.clone();
            s.boot_reason = boot.reason.clone();
            s.last_boot = Some(now);
        })?;
        tracing::info!(vendor = %boot.vendor, model = %boot.model, firmware = ?boot.firmware_version, "station booted");
        Ok(StationResponse::BootNotification {
            status: RegistrationStatus::Accepted,
            interval: self.settings.ocpp.heartbeat_interval,
            current_time: now,
        })
    }

    async fn status(
        &self,
        station: &StationId,
        report: &ocpp::StatusReport,
    ) -> Result<(), CallFault> {
        let now = Utc::now();
        let at = report.timestamp.unwrap_or(now);
        let location = self.location_id(station.as_str());
        let receivers = self.location_receivers();
        // A station-level status (1.6 connector 0) affects every EVSE of the station.
        let evse_ids: Vec<u32> = if report.at.evse_id == 0 {
            self.store
                .evse_states(station.as_str())
                .map_err(internal)?
                .iter()
                .map(|e| e.evse_id)
                .collect()
        } else {
            vec![report.at.evse_id]
        };
        let (changed, queued) = self
            .store
            .update(|tx| {
                let previous =
                    tx.connector(station.as_str(), report.at.evse_id, report.at.connector_id)?;
                // A status older than the stored one (a late, replayed notification) must not
                // overwrite the newer truth.
                if previous.as_ref().is_some_and(|p| p.timestamp > at) {
                    return Ok((false, false));
                }
                tx.put_connector(&state::Connector {
                    v: state::SCHEMA_VERSION,
                    station_id: station.0.clone(),
                    evse_id: report.at.evse_id,
                    connector_id: report.at.connector_id,
                    status: report.status.as_str().to_owned(),
                    error_code: report.error_code.clone(),
                    info: report.info.clone(),
                    timestamp: at,
                    updated_at: now,
                })?;
                let queued = match &location {
                    Some(loc) => Self::refresh_evses(
                        tx,
                        station.as_str(),
                        loc,
                        &evse_ids,
                        Some(report.at),
                        true,
                        &receivers,
                    )?,
                    None => false,
                };
                Ok((true, queued))
            })
            .map_err(internal)?;
        // A status the station will not send again: durable before the answer (group commit
        // keeps this cheap), together with the pushes it queued.
        if changed {
            self.durable().await?;
        }
        if queued {
            self.wake(&receivers);
        }
        if let Some(o) = &self.observer {
            o.status(station, report.at, report.status);
        }
        tracing::info!(evse = report.at.evse_id, connector = report.at.connector_id,
            status = report.status.as_str(), error = ?report.error_code, applied = changed, "status");
        Ok(())
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

    async fn start16(
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

    async fn stop16(
        &self,
        ctx: &RequestContext,
        req: &ocpp::StopTransaction,
    ) -> Result<StationResponse, CallFault> {
        let station = &ctx.station;
        let samples = meter::to_samples(&req.transaction_data);
        let ocpp_id = req.transaction_id.to_string();
        let reason = req.reason.clone().unwrap_or_else(|| "Local".to_owned());
        let known = self
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
                if rec.status == TransactionStatus::Completed
                    && rec.stopped_at == Some(req.timestamp)
                {
                    return Ok(known); // a retried StopTransaction
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
                Ok(known)
            })
            .map_err(internal)?;
        self.durable().await?;
        metrics::counter!("bridge_transactions_stopped_total").increment(1);
        tracing::info!(transaction = req.transaction_id, known, reason = %reason, "transaction stopped");
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

    async fn meter_values(
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

    async fn transaction_event(
        &self,
        ctx: &RequestContext,
        ev: &ocpp::TransactionEvent,
    ) -> Result<StationResponse, CallFault> {
        let station = &ctx.station;
        let samples = meter::to_samples(&ev.meter_values);
        let applied = self
            .store
            .update(|tx| {
                if !tx.first_time_event(station.as_str(), &ev.transaction_id, ev.seq_no)? {
                    return Ok(false);
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
                apply_event(&mut rec, ev);
                Self::add_samples(tx, &mut rec, &samples)?;
                rec.updated_at = Utc::now();
                tx.put_transaction(&rec)?;
                Ok(true)
            })
            .map_err(internal)?;
        self.durable().await?;
        tracing::info!(transaction = %ev.transaction_id, event = ?ev.event_type, seq = ev.seq_no,
            offline = ev.offline, duplicate = !applied, "transaction event");
        if applied {
            match ev.event_type {
                ocpp::TransactionEventType::Started => {
                    metrics::counter!("bridge_transactions_started_total").increment(1)
                }
                ocpp::TransactionEventType::Ended => {
                    metrics::counter!("bridge_transactions_stopped_total").increment(1)
                }
                ocpp::TransactionEventType::Updated => {}
            }
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

impl ocpp::Csms for StationService {
    fn admit(&self, station: &StationId, credentials: &Credentials) -> Admission {
        let Some(cfg) = self.settings.station(station.as_str()) else {
            return if self.settings.ocpp.allow_unknown_stations {
                Admission::Accept
            } else {
                metrics::counter!("ocpp_connections_refused_total", "reason" => "unknown")
                    .increment(1);
                tracing::warn!(station = %station, "unknown station refused");
                Admission::UnknownStation
            };
        };
        let Some(password) = &cfg.password else {
            return Admission::Accept;
        };
        let user_ok = credentials.username.as_deref() == Some(station.as_str());
        let pass_ok = credentials
            .password
            .as_deref()
            .is_some_and(|p| constant_time_eq(p, password.expose_secret().as_bytes()));
        if user_ok && pass_ok {
            Admission::Accept
        } else {
            metrics::counter!("ocpp_connections_refused_total", "reason" => "auth").increment(1);
            tracing::warn!(station = %station, "station refused: wrong or missing credentials");
            Admission::Unauthorized
        }
    }

    async fn connected(&self, station: &StationId, version: OcppVersion, handle: StationHandle) {
        self.connections
            .lock()
            .expect("connections lock")
            .insert(station.clone(), handle.connection_id());
        let now = Utc::now();
        if let Err(e) = self.touch(station, |s| {
            s.online = true;
            s.connected_at = Some(now);
            s.ocpp_version = Some(version.label().to_owned());
        }) {
            tracing::error!(station = %station, error = %e, "recording the connection failed");
        }
        tracing::info!(station = %station, version = %version, "station connected");
        // A station that reconnects without booting (we restarted, or the network dropped) is
        // asked for its current connector statuses, so no stale status stays published. A new
        // station sends them after its BootNotification anyway. Spawned, because the answer is
        // read by the connection task that is calling us.
        let booted_before = self
            .store
            .station(station.as_str())
            .ok()
            .flatten()
            .is_some_and(|s| s.last_boot.is_some());
        let trigger = handle.clone();
        let id = station.clone();
        if booted_before {
            tokio::spawn(async move {
                let call = ocpp::StationCall::TriggerMessage {
                    message: ocpp::TriggerMessageKind::StatusNotification,
                    at: None,
                };
                match trigger.send(&call).await {
                    Ok(answer) => {
                        tracing::debug!(station = %id, ?answer, "status refresh requested")
                    }
                    Err(e) => {
                        tracing::debug!(station = %id, error = %e, "status refresh not possible")
                    }
                }
            });
        }
        if let Err(e) = self.refresh_station(station.as_str(), true).await {
            tracing::error!(station = %station, error = %e, "re-publishing EVSEs failed");
        }
    }

    async fn disconnected(&self, station: &StationId, connection_id: u64) {
        let current = {
            let mut map = self.connections.lock().expect("connections lock");
            if map.get(station) == Some(&connection_id) {
                map.remove(station);
                true
            } else {
                false
            }
        };
        if !current {
            tracing::debug!(station = %station, "replaced connection closed");
            return;
        }
        let now = Utc::now();
        if let Err(e) = self.touch(station, |s| {
            s.online = false;
            s.disconnected_at = Some(now);
        }) {
            tracing::error!(station = %station, error = %e, "recording the disconnection failed");
        }
        tracing::info!(station = %station, "station disconnected");
    }

    async fn request(
        &self,
        ctx: &RequestContext,
        request: StationRequest,
    ) -> Result<StationResponse, CallFault> {
        let station = &ctx.station;
        match &request {
            StationRequest::BootNotification(boot) => self.boot(station, ctx.version, boot),
            StationRequest::Heartbeat => {
                self.touch(station, |_| {})?;
                Ok(StationResponse::Heartbeat {
                    current_time: Utc::now(),
                })
            }
            StationRequest::StatusNotification(report) => {
                self.status(station, report).await?;
                Ok(StationResponse::Ack)
            }
            StationRequest::Authorize(token) => {
                let decision = self.decide(station, token, None).await;
                Ok(StationResponse::Authorize(decision.info))
            }
            StationRequest::StartTransaction(req) => self.start16(ctx, req).await,
            StationRequest::StopTransaction(req) => self.stop16(ctx, req).await,
            StationRequest::TransactionEvent(ev) => self.transaction_event(ctx, ev).await,
            StationRequest::MeterValues(mv) => self.meter_values(ctx, mv).await,
            StationRequest::DataTransfer(dt) => {
                tracing::info!(vendor = %dt.vendor_id, message = ?dt.message_id, "data transfer (no vendor extensions known)");
                Ok(StationResponse::DataTransfer {
                    status: DataTransferStatus::UnknownVendorId,
                    data: None,
                })
            }
            StationRequest::Notification { action, payload } => {
                if action.ends_with("FirmwareStatusNotification") {
                    let status = payload
                        .get("status")
                        .and_then(|s| s.as_str())
                        .map(str::to_owned);
                    self.touch(station, |s| s.firmware_status = status.clone())?;
                }
                tracing::info!(action = %action, payload = %payload, "notification");
                if let Some(o) = &self.observer {
                    o.notification(station, action, payload);
                }
                Ok(StationResponse::Ack)
            }
        }
    }
}

/// Compares secrets without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
