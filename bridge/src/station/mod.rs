//! Applies what stations say to the durable state and answers them: the bridge's [`ocpp::Csms`].
//!
//! Invariants:
//! - a transaction message (1.6 Start/StopTransaction, MeterValues with a transactionId, 2.0.1
//!   TransactionEvent) is answered only after its effect is flushed to disk
//!   ([`state::Store::commit`]: group commit, many stations' messages in one sled transaction
//!   and one flush) — a station that got its answer may forget the message;
//! - retries change nothing: a retried 1.6 StartTransaction gets the same id, a 2.0.1 event is
//!   applied once per (station, transactionId, seqNo), a retried sample is stored once;
//! - a well-formed transaction message is never refused with a CALLERROR (the station would
//!   retry and finally drop it); only a storage failure answers `InternalError`, so it retries.
//!
//! Split by concern: [`evses`] (connector statuses → published OCPI EVSE states and their
//! pushes), [`transactions`] (transaction messages → transactions and their sessions),
//! [`stops`] (a transaction's stop facts are frozen by its first stop); this
//! module admits stations, tracks connections, boots and dispatches.

mod evses;
pub mod stops;
mod transactions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use ocpp::{
    Admission, CallFault, Credentials, DataTransferStatus, IdToken, OcppVersion,
    RegistrationStatus, RequestContext, StationHandle, StationId, StationRequest, StationResponse,
};
use secrecy::ExposeSecret;
use state::Store;

use crate::auth::{Authorizer, Decision};
use crate::catalog::Catalog;
use crate::commands::Commands;
use crate::error::Error;
use crate::outbox::PushQueue;
use crate::reservations::Reservations;
use crate::sessions::Sessions;
use crate::smart::Smart;

pub use transactions::{apply_event, must_rewrite};

/// What the station service hands station events to.
#[derive(Debug, Clone)]
pub struct Parts {
    /// Configuration facts.
    pub catalog: Arc<Catalog>,
    /// The store.
    pub store: Store,
    /// Registered OCPI peers (who receives Locations).
    pub peers: ocpi::Peers,
    /// Wakes the pusher.
    pub push: PushQueue,
    /// Decides authorizations.
    pub authorizer: Arc<Authorizer>,
    /// OCPI Sessions and CDRs.
    pub sessions: Arc<Sessions>,
    /// Reservations (station events end them).
    pub reservations: Reservations,
    /// OCPI commands (a transaction may be one's result).
    pub commands: Commands,
    /// OCPI ChargingProfiles (a session's end drops its profile; 2.0.1 limit reports).
    pub smart: Smart,
}

/// The bridge's OCPP application.
pub struct StationService {
    catalog: Arc<Catalog>,
    store: Store,
    peers: ocpi::Peers,
    push: PushQueue,
    authorizer: Arc<Authorizer>,
    sessions: Arc<Sessions>,
    reservations: Reservations,
    commands: Commands,
    smart: Smart,
    /// The current connection of each station: a replaced connection's disconnect must not
    /// mark the station offline.
    connections: Mutex<HashMap<StationId, u64>>,
    /// Liveness facts not yet written: a heartbeat only records its time here (a heartbeat
    /// that rewrote the station record cost two thirds of the heartbeat throughput);
    /// [`StationService::persist_last_seen`] writes them periodically and at shutdown.
    seen: Mutex<HashMap<StationId, chrono::DateTime<Utc>>>,
}

impl std::fmt::Debug for StationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StationService").finish_non_exhaustive()
    }
}

fn internal(e: state::Error) -> CallFault {
    Error::from(e).into()
}

impl StationService {
    /// The service over its parts.
    pub fn new(parts: Parts) -> Self {
        StationService {
            catalog: parts.catalog,
            store: parts.store,
            peers: parts.peers,
            push: parts.push,
            authorizer: parts.authorizer,
            sessions: parts.sessions,
            reservations: parts.reservations,
            commands: parts.commands,
            smart: parts.smart,
            connections: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The authorizer.
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    /// The configured location of a station (stations without one are not published).
    fn location_id(&self, station: &str) -> Option<String> {
        self.catalog.station(station).map(|s| s.location.clone())
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

    async fn decide(&self, station: &StationId, token: &IdToken, evse_id: Option<u32>) -> Decision {
        let refs = self.location_refs(station.as_str(), evse_id);
        self.authorizer.authorize(station, token, refs, false).await
    }

    /// Records that a station was heard from, in memory only (not durable by design).
    fn seen(&self, station: &StationId) {
        self.seen
            .lock()
            .expect("seen lock")
            .insert(station.clone(), Utc::now());
    }

    /// Writes the liveness facts gathered since the last call (a station's `last_seen` only
    /// moves forward) and returns how many stations were written. Called periodically and at
    /// shutdown.
    pub fn persist_last_seen(&self) -> Result<usize, state::Error> {
        let pending = std::mem::take(&mut *self.seen.lock().expect("seen lock"));
        if pending.is_empty() {
            return Ok(0);
        }
        let n = pending.len();
        self.store.update(|tx| {
            for (station, at) in &pending {
                let Some(mut s) = tx.station(station.as_str())? else {
                    continue;
                };
                if s.last_seen.is_none_or(|prev| prev < *at) {
                    s.last_seen = Some(*at);
                    tx.put_station(&s)?;
                }
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// Changes a station's record, through the group commit: in a reconnect storm thousands of
    /// stations connect and boot at once, and a sled transaction per change costs two log
    /// writes.
    async fn touch(
        &self,
        station: &StationId,
        f: impl Fn(&mut state::Station) + Send + 'static,
    ) -> Result<(), CallFault> {
        let now = Utc::now();
        self.seen.lock().expect("seen lock").remove(station);
        let id = station.clone();
        self.store
            .commit(move |tx| {
                let mut s = tx
                    .station(id.as_str())?
                    .unwrap_or_else(|| state::Station::new(id.as_str()));
                s.last_seen = Some(now);
                f(&mut s);
                tx.put_station(&s)
            })
            .await
            .map_err(internal)
    }

    async fn boot(
        &self,
        station: &StationId,
        version: OcppVersion,
        boot: &ocpp::BootInfo,
    ) -> Result<StationResponse, CallFault> {
        let now = Utc::now();
        let info = boot.clone();
        self.touch(station, move |s| {
            let boot = &info;
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
        })
        .await?;
        tracing::info!(vendor = %boot.vendor, model = %boot.model, firmware = ?boot.firmware_version, "station booted");
        Ok(StationResponse::BootNotification {
            status: RegistrationStatus::Accepted,
            interval: self.catalog.settings().ocpp.heartbeat_interval,
            current_time: now,
        })
    }

    /// Asks a station that reconnected without booting for its current connector statuses.
    /// Spawned, because the answer is read by the connection task that is calling us.
    fn request_status_refresh(station: &StationId, handle: StationHandle) {
        let id = station.clone();
        tokio::spawn(async move {
            let call = ocpp::StationCall::TriggerMessage {
                message: ocpp::TriggerMessageKind::StatusNotification,
                at: None,
            };
            match handle.send(&call).await {
                Ok(answer) => tracing::debug!(station = %id, ?answer, "status refresh requested"),
                Err(e) => {
                    tracing::debug!(station = %id, error = %e, "status refresh not possible")
                }
            }
        });
    }
}

impl ocpp::Csms for StationService {
    fn admit(&self, station: &StationId, credentials: &Credentials) -> Admission {
        use ocpp::security::{self, BasicAuth, ClientCert, Decision, Refusal, SecurityProfile};
        let cfg = self.catalog.station(station.as_str());
        if cfg.is_none() && !self.catalog.settings().ocpp.allow_unknown_stations {
            metrics::counter!("ocpp_connections_refused_total", "reason" => "unknown").increment(1);
            tracing::warn!(station = %station, "unknown station refused");
            return Admission::UnknownStation;
        }
        // An unknown station (allowed) has no password and minimum profile 0.
        let minimum = cfg.map_or(SecurityProfile::Unsecured, |c| c.minimum_profile());
        let basic = match cfg.and_then(|c| c.password.as_ref()) {
            None => BasicAuth::NotConfigured,
            Some(_) if credentials.username.is_none() && credentials.password.is_none() => {
                BasicAuth::Missing
            }
            Some(password) => {
                let user_ok = credentials.username.as_deref() == Some(station.as_str());
                let pass_ok = credentials
                    .password
                    .as_deref()
                    .is_some_and(|p| constant_time_eq(p, password.expose_secret().as_bytes()));
                if user_ok && pass_ok {
                    BasicAuth::Valid
                } else {
                    BasicAuth::Wrong
                }
            }
        };
        let cert = ClientCert::of(credentials.client_cert_cn.as_deref(), station.as_str());
        match security::decide(minimum, credentials.tls, basic, cert) {
            Decision::Accept(profile) => {
                tracing::debug!(station = %station, %profile, "station admitted");
                Admission::Accept
            }
            Decision::Refuse(refusal, reason) => {
                let (label, admission) = match refusal {
                    Refusal::Unauthorized => ("auth", Admission::Unauthorized),
                    Refusal::Forbidden => ("security_profile", Admission::Forbidden),
                };
                metrics::counter!("ocpp_connections_refused_total", "reason" => label).increment(1);
                tracing::warn!(
                    station = %station,
                    minimum_profile = %minimum,
                    tls = credentials.tls,
                    client_cert_cn = credentials.client_cert_cn.as_deref(),
                    reason,
                    "station refused"
                );
                admission
            }
        }
    }

    async fn connected(&self, station: &StationId, version: OcppVersion, handle: StationHandle) {
        self.connections
            .lock()
            .expect("connections lock")
            .insert(station.clone(), handle.connection_id());
        let now = Utc::now();
        if let Err(e) = self
            .touch(station, move |s| {
                s.online = true;
                s.connected_at = Some(now);
                s.ocpp_version = Some(version.label().to_owned());
            })
            .await
        {
            tracing::error!(station = %station, error = %e, "recording the connection failed");
        }
        tracing::info!(station = %station, version = %version, "station connected");
        // A station that reconnects without booting (we restarted, or the network dropped) is
        // asked for its current connector statuses, so no stale status stays published. A new
        // station sends them after its BootNotification anyway.
        let booted_before = self
            .store
            .station(station.as_str())
            .ok()
            .flatten()
            .is_some_and(|s| s.last_boot.is_some());
        if booted_before {
            Self::request_status_refresh(station, handle.clone());
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
        if let Err(e) = self
            .touch(station, move |s| {
                s.online = false;
                s.disconnected_at = Some(now);
            })
            .await
        {
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
        // The handlers are boxed: this future is allocated per request and sized by its
        // largest arm, so a Heartbeat would otherwise pay for a TransactionEvent's state.
        match &request {
            StationRequest::BootNotification(boot) => {
                Box::pin(self.boot(station, ctx.version, boot)).await
            }
            StationRequest::Heartbeat => {
                self.seen(station);
                Ok(StationResponse::Heartbeat {
                    current_time: Utc::now(),
                })
            }
            StationRequest::StatusNotification(report) => {
                Box::pin(self.status(station, report)).await?;
                Ok(StationResponse::Ack)
            }
            StationRequest::Authorize(token) => {
                let decision = Box::pin(self.decide(station, token, None)).await;
                Ok(StationResponse::Authorize(decision.info))
            }
            StationRequest::StartTransaction(req) => Box::pin(self.start16(ctx, req)).await,
            StationRequest::StopTransaction(req) => Box::pin(self.stop16(ctx, req)).await,
            StationRequest::TransactionEvent(ev) => Box::pin(self.transaction_event(ctx, ev)).await,
            StationRequest::MeterValues(mv) => Box::pin(self.meter_values(ctx, mv)).await,
            StationRequest::DataTransfer(dt) => {
                tracing::info!(vendor = %dt.vendor_id, message = ?dt.message_id, "data transfer (no vendor extensions known)");
                Ok(StationResponse::DataTransfer {
                    status: DataTransferStatus::UnknownVendorId,
                    data: None,
                })
            }
            StationRequest::FirmwareStatus(report) => {
                let status = report.status.clone();
                self.touch(station, move |s| s.firmware_status = Some(status.clone()))
                    .await?;
                tracing::info!(status = %report.status, request = ?report.request_id, "firmware status");
                Ok(StationResponse::Ack)
            }
            StationRequest::ReservationStatus(report) => {
                tracing::info!(reservation = report.reservation_id, status = ?report.status, "reservation status update");
                let reservations = self.reservations.clone();
                let (station, report) = (station.clone(), report.clone());
                // Not awaited: ending a reservation may report to the eMSP; the station only
                // needs its acknowledgement.
                tokio::spawn(async move { reservations.on_update(&station, &report).await });
                Ok(StationResponse::Ack)
            }
            StationRequest::ChargingLimit(report) => {
                tracing::info!(action = %report.action, evse = ?report.evse_id, "charging limit report");
                let smart = self.smart.clone();
                let (station, report) = (station.clone(), report.clone());
                // Not awaited: the station only needs its acknowledgement.
                tokio::spawn(async move { smart.limit_reported(&station, &report).await });
                Ok(StationResponse::Ack)
            }
            StationRequest::Notification { action, payload } => {
                tracing::info!(action = %action, payload = %payload, "notification");
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
