//! Smart charging: OCPI ChargingProfiles (the bridge is the Receiver) → OCPP calls, with the
//! station's answer sent back through the outbox.
//!
//! - `PUT {chargingprofiles}/{session_id}` → SetChargingProfile with a `TxProfile` for the
//!   session's transaction (1.6: `connectorId` + integer `transactionId`; 2.0.1: `evseId` +
//!   `chargingProfile.transactionId`) → ChargingProfileResult. A session keeps one OCPP profile
//!   id: a new PUT replaces the profile under the same id.
//! - `GET …?duration=&response_url=` → GetCompositeSchedule for the session's connector / EVSE
//!   → ActiveChargingProfileResult with the schedule mapped back ([`mapping`]).
//! - `DELETE …?response_url=` → ClearChargingProfile (by the profile's id, else every TxProfile
//!   of the connector / EVSE) → ClearProfileResult.
//!
//! The synchronous answer: UNKNOWN_SESSION when the session is not the caller's (checked by the
//! OCPI server) or no longer runs, REJECTED when its station is offline, else ACCEPTED with the
//! commands' `timeout`. The call runs in its own task; its result (a bare body, addressed like a
//! CommandResult to the party that sent the request: its `OCPI-from-*` when the caller may act
//! for it, else the session's token owner) is queued in the durable outbox. A station that
//! does not answer within `ocpp.call_timeout` gives REJECTED. A profile the station accepted is
//! remembered ([`ProfileRecord`]) until it is cleared or the session ends; while it is, a 2.0.1
//! NotifyChargingLimit / ReportChargingProfiles for that EVSE is pushed as the session's new
//! ActiveChargingProfile to the party that set it, when its peer has a chargingprofiles SENDER
//! endpoint. Each forwarded request is stored ([`ProfileRequest`]) before the ACCEPTED answer and
//! removed with its result; [`Smart::recover`] answers REJECTED for every request a crash or
//! restart left in flight.

pub mod mapping;

use std::sync::Arc;

use chrono::Utc;
use ocpi::types::{
    ActiveChargingProfileResult, ChargingProfileResponse, ChargingProfileResponseType,
    ChargingProfileResult, ChargingProfileResultType, ClearProfileResult, CountryCode,
    InterfaceRole, ModuleId, PartyId, Session, SetChargingProfile,
};
use ocpi::{OcpiError, Peer, PeerId, Peers};
use ocpp::{
    CallAnswer, CallFailure, ChargingLimitReport, EvseRef, Registry, StationCall, StationHandle,
    StationId,
};
use state::{Store, Transaction, TransactionStatus};

use crate::catalog::Catalog;
use crate::commands::result_party;
use crate::error::Logged;
use crate::outbox::{self, Push, PushQueue};
use crate::records::{
    PROFILE_COUNTER, ProfileRecord, ProfileRequest, ProfileRequestKind, SessionRecord,
};

/// `stackLevel` of the profiles the bridge sets.
pub const STACK_LEVEL: u32 = 0;

/// Seconds added to twice the call timeout in the synchronous `timeout` (as for commands).
const MARGIN_SECS: u64 = 10;

/// The ChargingProfiles handler.
#[derive(Clone)]
pub struct Smart {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<Catalog>,
    store: Store,
    registry: Registry,
    peers: Peers,
    push: PushQueue,
}

impl std::fmt::Debug for Smart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smart").finish_non_exhaustive()
    }
}

/// What a request is about: the running transaction and where its result goes.
struct Request {
    tx: Transaction,
    session_id: String,
    handle: StationHandle,
    peer: String,
    party: Option<(String, String)>,
    response_url: String,
    /// The stored [`ProfileRequest`].
    record: String,
}

fn response(result: ChargingProfileResponseType) -> ChargingProfileResponse {
    ChargingProfileResponse::new(result, 0)
}

impl Smart {
    /// A handler over the store and the connected stations.
    pub fn new(
        catalog: Arc<Catalog>,
        store: Store,
        registry: Registry,
        peers: Peers,
        push: PushQueue,
    ) -> Self {
        Smart {
            inner: Arc::new(Inner {
                catalog,
                store,
                registry,
                peers,
                push,
            }),
        }
    }

    /// The `timeout` of an ACCEPTED response.
    pub fn response_timeout(&self) -> u32 {
        let ct = self.inner.catalog.settings().ocpp.call_timeout;
        u32::try_from(2 * ct + MARGIN_SECS).unwrap_or(u32::MAX)
    }

    /// Resolves a request on `session` (already known to be the caller's) or answers it.
    fn resolve(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        session: &Session,
        response_url: String,
    ) -> Result<Result<Request, ChargingProfileResponse>, OcpiError> {
        let store = &self.inner.store;
        let server = |e: state::Error| OcpiError::Server(e.to_string());
        // A session's id is its transaction's, except for one that began as a reservation.
        let tx_id = store
            .record::<SessionRecord>(session.id.as_str())
            .map_err(server)?
            .and_then(|r| r.transaction_id)
            .unwrap_or_else(|| session.id.as_str().to_owned());
        let Some(tx) = store
            .transaction(&tx_id)
            .map_err(server)?
            .filter(|t| t.status == TransactionStatus::Active)
        else {
            return Ok(Err(response(ChargingProfileResponseType::UnknownSession)));
        };
        let Some(handle) = self
            .inner
            .registry
            .get(&StationId(tx.station_id.clone()))
            .filter(StationHandle::is_connected)
        else {
            return Ok(Err(response(ChargingProfileResponseType::Rejected)));
        };
        let from = from
            .filter(|(cc, pid)| caller.may_act_for(cc, pid))
            .map(|(cc, pid)| (cc.as_str().to_owned(), pid.as_str().to_owned()));
        let party = result_party(
            caller,
            from.as_ref(),
            Some((
                session.cdr_token.country_code.as_str(),
                session.cdr_token.party_id.as_str(),
            )),
        );
        Ok(Ok(Request {
            tx,
            session_id: session.id.as_str().to_owned(),
            handle,
            peer: caller.id.0.clone(),
            party,
            response_url,
            record: uuid::Uuid::new_v4().to_string(),
        }))
    }

    /// Stores the request durably, then answers ACCEPTED.
    async fn accepted(
        &self,
        kind: ProfileRequestKind,
        req: &Request,
    ) -> Result<ChargingProfileResponse, OcpiError> {
        let record = ProfileRequest {
            id: req.record.clone(),
            kind,
            peer: req.peer.clone(),
            party: req.party.clone(),
            response_url: req.response_url.clone(),
            session_id: req.session_id.clone(),
            station: req.tx.station_id.clone(),
            created_at: Utc::now(),
        };
        let store = &self.inner.store;
        store
            .update(|tx| tx.put_record(&record))
            .map_err(|e| OcpiError::Server(e.to_string()))?;
        store
            .flush()
            .await
            .map_err(|e| OcpiError::Server(e.to_string()))?;
        let kind = kind_name(kind);
        metrics::counter!("ocpi_charging_profile_requests_total", "request" => kind).increment(1);
        tracing::info!(request = kind, station = %req.tx.station_id, session = %req.session_id,
            peer = %req.peer, "charging profile request forwarded");
        Ok(ChargingProfileResponse::new(
            ChargingProfileResponseType::Accepted,
            self.response_timeout(),
        ))
    }

    /// `PUT {chargingprofiles}/{session_id}`.
    pub async fn set(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        session: &Session,
        set: SetChargingProfile,
    ) -> Result<ChargingProfileResponse, OcpiError> {
        let req = match self.resolve(caller, from, session, set.response_url.clone())? {
            Ok(r) => r,
            Err(answer) => return Ok(answer),
        };
        let store = &self.inner.store;
        let existing = store
            .record::<ProfileRecord>(&req.tx.id)
            .map_err(|e| OcpiError::Server(e.to_string()))?;
        let profile_id = match &existing {
            Some(r) => r.profile_id,
            None => store
                .update(|tx| tx.next_counter(PROFILE_COUNTER))
                .map_err(|e| OcpiError::Server(e.to_string()))?,
        };
        let call = StationCall::SetChargingProfile {
            at: EvseRef {
                evse_id: req.tx.evse_id,
                connector_id: req.tx.connector_id,
            },
            profile_id,
            stack_level: STACK_LEVEL,
            transaction_id: req.tx.ocpp_transaction_id.clone(),
            schedule: mapping::schedule_from_ocpi(&set.charging_profile),
        };
        let answer = self.accepted(ProfileRequestKind::Set, &req).await?;
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = req.handle.send(&call).await;
            let result = mapping::set_result(&outcome);
            log_outcome("set", &req, &outcome, &format!("{result:?}"));
            let record = (result == ChargingProfileResultType::Accepted).then(|| ProfileRecord {
                transaction_id: req.tx.id.clone(),
                session_id: req.session_id.clone(),
                peer: req.peer.clone(),
                party: req.party.clone(),
                profile_id,
                station: req.tx.station_id.clone(),
                evse_id: req.tx.evse_id,
                set_at: Utc::now(),
            });
            let push = Push::ChargingProfileResult {
                response_url: req.response_url.clone(),
                result: ChargingProfileResult { result },
            };
            this.finish(&req, push, |tx| {
                if let Some(r) = &record
                    && tx
                        .transaction(&r.transaction_id)?
                        .is_some_and(|t| t.status == TransactionStatus::Active)
                {
                    tx.put_record(r)?;
                }
                Ok(())
            })
            .await;
        });
        Ok(answer)
    }

    /// `GET {chargingprofiles}/{session_id}?duration=&response_url=`.
    pub async fn get(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        session: &Session,
        duration: u32,
        response_url: String,
    ) -> Result<ChargingProfileResponse, OcpiError> {
        let req = match self.resolve(caller, from, session, response_url)? {
            Ok(r) => r,
            Err(answer) => return Ok(answer),
        };
        let call = StationCall::GetCompositeSchedule {
            at: EvseRef {
                evse_id: req.tx.evse_id,
                connector_id: req.tx.connector_id,
            },
            duration,
            rate_unit: None,
        };
        let answer = self.accepted(ProfileRequestKind::Get, &req).await?;
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = req.handle.send(&call).await;
            let result = mapping::active_result(&outcome);
            log_outcome("get", &req, &outcome, &format!("{:?}", result.result));
            let push = Push::ActiveChargingProfileResult {
                response_url: req.response_url.clone(),
                result,
            };
            this.finish(&req, push, |_| Ok(())).await;
        });
        Ok(answer)
    }

    /// `DELETE {chargingprofiles}/{session_id}?response_url=`.
    pub async fn clear(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        session: &Session,
        response_url: String,
    ) -> Result<ChargingProfileResponse, OcpiError> {
        let req = match self.resolve(caller, from, session, response_url)? {
            Ok(r) => r,
            Err(answer) => return Ok(answer),
        };
        let existing = self
            .inner
            .store
            .record::<ProfileRecord>(&req.tx.id)
            .map_err(|e| OcpiError::Server(e.to_string()))?;
        let call = StationCall::ClearChargingProfile {
            profile_id: existing.map(|r| r.profile_id),
            at: Some(EvseRef {
                evse_id: req.tx.evse_id,
                connector_id: req.tx.connector_id,
            }),
        };
        let answer = self.accepted(ProfileRequestKind::Clear, &req).await?;
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = req.handle.send(&call).await;
            let result = mapping::clear_result(&outcome);
            log_outcome("clear", &req, &outcome, &format!("{result:?}"));
            let push = Push::ClearProfileResult {
                response_url: req.response_url.clone(),
                result: ClearProfileResult { result },
            };
            let forget = result != ChargingProfileResultType::Rejected;
            let tx_id = req.tx.id.clone();
            this.finish(&req, push, |tx| {
                if forget {
                    tx.remove_record::<ProfileRecord>(&tx_id)?;
                }
                Ok(())
            })
            .await;
        });
        Ok(answer)
    }

    /// Queues a result (and whatever `extra` writes) in one store transaction, flushes and
    /// wakes the pusher.
    async fn finish(
        &self,
        req: &Request,
        push: Push,
        extra: impl Fn(&state::Txn<'_>) -> Result<(), state::TxError>,
    ) {
        let entry = outbox::entry(&req.peer, push, req.party.clone());
        let store = &self.inner.store;
        if store
            .update(|tx| {
                tx.push_outbox(entry.clone())?;
                tx.remove_record::<ProfileRequest>(&req.record)?;
                extra(tx)
            })
            .or_log("queueing a charging profile result")
            .is_none()
        {
            return;
        }
        store
            .flush()
            .await
            .or_log("flush after a charging profile result");
        self.inner.push.wake([&req.peer]);
    }

    /// At start-up: every request a crash or restart left waiting for its station gets a
    /// REJECTED result.
    pub async fn recover(&self) {
        let store = &self.inner.store;
        let Some(records) = store
            .records::<ProfileRequest>()
            .or_log("reading charging profile requests in flight")
        else {
            return;
        };
        let mut peers = Vec::new();
        for r in records {
            tracing::warn!(request = kind_name(r.kind), session = %r.session_id, station = %r.station,
                peer = %r.peer, "charging profile request was in flight at restart; answering REJECTED");
            let entry = outbox::entry(&r.peer, rejected(&r), r.party.clone());
            let queued = store.update(|tx| {
                tx.push_outbox(entry.clone())?;
                tx.remove_record::<ProfileRequest>(&r.id)?;
                Ok(())
            });
            if queued.or_log("queueing a recovery result").is_some() {
                peers.push(r.peer.clone());
            }
        }
        if !peers.is_empty() {
            store
                .flush()
                .await
                .or_log("flush after charging profile recovery");
            self.inner.push.wake(peers);
        }
    }

    /// A transaction ended: its profile is gone with it.
    pub fn session_ended(&self, transaction_id: &str) {
        // Most sessions never get a profile: a read spares them a store transaction.
        if let Ok(None) = self.inner.store.record::<ProfileRecord>(transaction_id) {
            return;
        }
        let removed = self
            .inner
            .store
            .update(|tx| tx.remove_record::<ProfileRecord>(transaction_id))
            .or_log("forgetting a session's charging profile");
        if let Some(Some(r)) = removed {
            tracing::info!(session = %r.session_id, station = %r.station, "session ended; its charging profile is forgotten");
        }
    }

    /// A 2.0.1 station reported a changed limit or profile: for each session on that EVSE with
    /// a profile set through OCPI, the new ActiveChargingProfile goes to the party that set it
    /// (when its peer has a chargingprofiles SENDER endpoint).
    pub async fn limit_reported(&self, station: &StationId, report: &ChargingLimitReport) {
        let Some(profile) = mapping::active_from_report(report, Utc::now()) else {
            tracing::info!(action = %report.action, "charging limit report without a schedule");
            return;
        };
        let Some(records) = self
            .inner
            .store
            .records::<ProfileRecord>()
            .or_log("reading charging profiles")
        else {
            return;
        };
        let mut woken = Vec::new();
        for r in records.into_iter().filter(|r| {
            r.station == station.0 && report.evse_id.is_none_or(|e| e == 0 || e == r.evse_id)
        }) {
            let has_sender = self
                .inner
                .peers
                .get(&PeerId(r.peer.clone()))
                .is_some_and(|p| {
                    p.endpoint(&ModuleId::ChargingProfiles, InterfaceRole::Sender)
                        .is_some()
                });
            if !has_sender {
                tracing::info!(session = %r.session_id, peer = %r.peer,
                    "charging limit changed; the peer has no chargingprofiles SENDER endpoint");
                continue;
            }
            let entry = outbox::entry(
                &r.peer,
                Push::ActiveChargingProfile {
                    session_id: r.session_id.clone(),
                    profile: profile.clone(),
                },
                r.party.clone(),
            );
            if self
                .inner
                .store
                .update(|tx| tx.push_outbox(entry.clone()))
                .or_log("queueing an ActiveChargingProfile")
                .is_some()
            {
                tracing::info!(session = %r.session_id, peer = %r.peer, action = %report.action,
                    "charging limit changed; ActiveChargingProfile queued");
                woken.push(r.peer);
            }
        }
        if !woken.is_empty() {
            self.inner
                .store
                .flush()
                .await
                .or_log("flush after an ActiveChargingProfile");
            self.inner.push.wake(woken);
        }
    }
}

fn kind_name(kind: ProfileRequestKind) -> &'static str {
    match kind {
        ProfileRequestKind::Set => "set",
        ProfileRequestKind::Get => "get",
        ProfileRequestKind::Clear => "clear",
    }
}

/// The REJECTED result of an interrupted request.
fn rejected(r: &ProfileRequest) -> Push {
    let response_url = r.response_url.clone();
    let result = ChargingProfileResultType::Rejected;
    match r.kind {
        ProfileRequestKind::Set => Push::ChargingProfileResult {
            response_url,
            result: ChargingProfileResult { result },
        },
        ProfileRequestKind::Get => Push::ActiveChargingProfileResult {
            response_url,
            result: ActiveChargingProfileResult {
                result,
                profile: None,
            },
        },
        ProfileRequestKind::Clear => Push::ClearProfileResult {
            response_url,
            result: ClearProfileResult { result },
        },
    }
}

fn log_outcome(kind: &str, req: &Request, outcome: &Result<CallAnswer, CallFailure>, result: &str) {
    metrics::counter!("ocpi_charging_profile_results_total", "request" => kind.to_owned(),
        "result" => result.to_owned())
    .increment(1);
    match outcome {
        Ok(answer) => tracing::info!(request = kind, station = %req.tx.station_id,
            session = %req.session_id, answer = ?answer, result, "charging profile result"),
        Err(failure) => tracing::warn!(request = kind, station = %req.tx.station_id,
            session = %req.session_id, %failure, result, "charging profile result (no answer)"),
    }
}
