//! OCPI Commands → OCPP calls, with honest results.
//!
//! [`Commands`] is the [`CommandHandler`] the OCPI server calls with a validated command and the
//! [`StationObserver`] that hears what stations do afterwards.
//!
//! - The synchronous `CommandResponse` only says whether we can forward the command: REJECTED
//!   for an unknown location / EVSE / connector, an offline station, a session or reservation of
//!   another party, an unknown reservation; UNKNOWN_SESSION for a STOP_SESSION of an unknown or
//!   finished session; else ACCEPTED with a `timeout` covering the OCPP call (a call may wait
//!   behind another one for up to the call timeout, then wait the call timeout itself).
//! - Before answering ACCEPTED the command is stored as an in-flight document (`command` docs)
//!   and flushed. The OCPP call then runs in its own task; its outcome, mapped by
//!   [`result_for_answer`] / [`result_for_failure`], is queued in the durable outbox as a bare
//!   `CommandResult` for the command's `response_url` (module `command_result`) in the same
//!   transaction that marks the document done. [`Commands::recover`] answers FAILED for every
//!   command a crash or restart left in flight.
//! - START_SESSION pre-authorizes the command's token at the station (auth method COMMAND,
//!   `authorization_reference` kept): 1.6 by idTag (the alias for uids longer than 20
//!   characters), 2.0.1 by a fresh `remoteStartId` from a persistent counter.
//! - Reservations: the eMSP's `reservation_id` (scoped by the token owner's party) maps to a
//!   CPO-wide positive integer (`reservation` docs, index `reservation_ocpi`); the same
//!   `reservation_id` again reuses the integer, so the station replaces the reservation. A
//!   reservation ends when it is cancelled through us, when a transaction consumes it, when it
//!   expires (forgotten silently) or when the station drops it before its expiry (1.6
//!   StatusNotification Reserved → Available, 2.0.1 ReservationStatusUpdate): the latter is
//!   reported as CANCELED_RESERVATION to the RESERVE_NOW `response_url`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ocpi::types::{
    Command, CommandResponse, CommandResponseType, CommandResult, CommandResultType, DisplayText,
    Token, TokenType,
};
use ocpi::{OcpiError, Peer};
use ocpp::{
    CallAnswer, CallFailure, ConnectorStatus, EvseRef, IdToken, IdTokenInfo, IdTokenKind,
    OcppVersion, Registry, ReservationStatus, StationCall, StationHandle, StationId, UnlockStatus,
};
use serde::{Deserialize, Serialize};
use state::{OutboxEntry, Store, Transaction, TransactionStatus, TxError, Txn};

use crate::auth::{AuthMethod, Authorizer, Decision};
use crate::config::Settings;
use crate::cpo::{CommandHandler, PushControl};
use crate::station::StationObserver;
use crate::tokens;

/// Document kind of in-flight (and finished) commands.
pub const COMMAND_DOC: &str = "command";
/// Document kind of reservations (id: the OCPP integer id).
pub const RESERVATION_DOC: &str = "reservation";
/// Outbox module of command results (the pusher POSTs the bare body to the URL in `path`).
pub const RESULT_MODULE: &str = "command_result";
/// Index: `{CC}\0{PID}\0{RESERVATION_ID}` → OCPP reservation id.
const RESERVATION_INDEX: &str = "reservation_ocpi";
/// Index: persistent counters (`remote_start`, `reservation`) → last value.
const COUNTER_INDEX: &str = "command_counter";
/// Index: `{station}\0{remoteStartId}` or `{station}\0~{IDTAG}` → START_SESSION command id.
const START_INDEX: &str = "command_start";
/// Index: our transaction id → owner (JSON [`Owner`]) of a session started by a command.
const OWNER_INDEX: &str = "session_owner";
/// Seconds added to the OCPP call timeout in the synchronous `timeout`.
const MARGIN_SECS: u64 = 10;
/// How long after a 1.6 remote start a StartTransaction with that idTag counts as its result.
const START_WINDOW: chrono::Duration = chrono::Duration::minutes(15);
/// A station-side end of a reservation this close to its expiry counts as the expiry.
const EXPIRY_SLACK: chrono::Duration = chrono::Duration::seconds(5);

/// The EVSE's condition as far as the stored connector statuses tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvseHint {
    /// Nothing known against it.
    Free,
    /// In use (a cable or a transaction).
    Occupied,
    /// Faulted or unavailable.
    Inoperative,
}

/// The CommandResult for a station's answer. `hint` explains a rejected start.
pub fn result_for_answer(answer: &CallAnswer, hint: EvseHint) -> CommandResultType {
    use CommandResultType as R;
    match answer {
        CallAnswer::Start { accepted: true, .. } => R::Accepted,
        CallAnswer::Start {
            accepted: false, ..
        } => match hint {
            EvseHint::Occupied => R::EvseOccupied,
            EvseHint::Inoperative => R::EvseInoperative,
            EvseHint::Free => R::Rejected,
        },
        CallAnswer::Stop { accepted: true } => R::Accepted,
        CallAnswer::Stop { accepted: false } => R::Rejected,
        CallAnswer::Reserve(ReservationStatus::Accepted) => R::Accepted,
        CallAnswer::Reserve(ReservationStatus::Occupied) => R::EvseOccupied,
        CallAnswer::Reserve(ReservationStatus::Faulted | ReservationStatus::Unavailable) => {
            R::EvseInoperative
        }
        CallAnswer::Reserve(ReservationStatus::Rejected) => R::Rejected,
        CallAnswer::Cancel { accepted: true } => R::Accepted,
        CallAnswer::Cancel { accepted: false } => R::UnknownReservation,
        CallAnswer::Unlock(UnlockStatus::Unlocked) => R::Accepted,
        CallAnswer::Unlock(UnlockStatus::UnlockFailed) => R::Failed,
        CallAnswer::Unlock(UnlockStatus::NotSupported) => R::NotSupported,
        CallAnswer::Unlock(UnlockStatus::OngoingAuthorizedTransaction) => R::EvseOccupied,
        CallAnswer::Unlock(UnlockStatus::UnknownConnector) => R::Rejected,
        CallAnswer::Trigger(_) | CallAnswer::TransactionStatus { .. } => R::Failed,
    }
}

/// The CommandResult when the station gave no CALLRESULT.
pub fn result_for_failure(failure: &CallFailure) -> CommandResultType {
    use CommandResultType as R;
    match failure {
        CallFailure::Timeout => R::Timeout,
        CallFailure::CallError { code, .. }
            if code == "NotImplemented" || code == "NotSupported" =>
        {
            R::NotSupported
        }
        CallFailure::NotSupportedByVersion { .. } => R::NotSupported,
        CallFailure::CallError { .. }
        | CallFailure::Disconnected
        | CallFailure::Busy
        | CallFailure::InvalidResponse { .. }
        | CallFailure::InvalidRequest { .. } => R::Failed,
    }
}

/// Whether a stored OCPP connector status means "in use".
fn in_use(status: &str) -> bool {
    matches!(
        ConnectorStatus::parse(status),
        Some(
            ConnectorStatus::Preparing
                | ConnectorStatus::Charging
                | ConnectorStatus::SuspendedEV
                | ConnectorStatus::SuspendedEVSE
                | ConnectorStatus::Finishing
                | ConnectorStatus::Occupied
        )
    )
}

fn inoperative(status: &str) -> bool {
    matches!(
        ConnectorStatus::parse(status),
        Some(ConnectorStatus::Faulted | ConnectorStatus::Unavailable)
    )
}

/// What the stored connector statuses `(evse, connector, status)` say about `evse` (`None`: the
/// station as a whole — every EVSE must be unusable for a verdict).
pub fn evse_hint(connectors: &[(u32, u32, String)], evse: Option<u32>) -> EvseHint {
    if connectors.iter().any(|(e, _, s)| *e == 0 && inoperative(s)) {
        return EvseHint::Inoperative;
    }
    let of = |e: u32| -> Vec<&str> {
        connectors
            .iter()
            .filter(|(ev, c, _)| *ev == e && *c != 0)
            .map(|(_, _, s)| s.as_str())
            .collect()
    };
    let judge = |statuses: &[&str]| -> EvseHint {
        if statuses.iter().any(|s| in_use(s)) {
            EvseHint::Occupied
        } else if !statuses.is_empty() && statuses.iter().all(|s| inoperative(s)) {
            EvseHint::Inoperative
        } else {
            EvseHint::Free
        }
    };
    match evse {
        Some(e) => judge(&of(e)),
        None => {
            let mut evses: Vec<u32> = connectors
                .iter()
                .map(|(e, _, _)| *e)
                .filter(|e| *e != 0)
                .collect();
            evses.sort_unstable();
            evses.dedup();
            let verdicts: Vec<EvseHint> = evses.iter().map(|e| judge(&of(*e))).collect();
            if verdicts.is_empty() || verdicts.contains(&EvseHint::Free) {
                EvseHint::Free
            } else if verdicts.contains(&EvseHint::Occupied) {
                EvseHint::Occupied
            } else {
                EvseHint::Inoperative
            }
        }
    }
}

/// OCPI token type → 2.0.1 idToken type.
pub fn id_token_kind(t: &TokenType) -> IdTokenKind {
    match t {
        TokenType::Rfid => IdTokenKind::Iso14443,
        TokenType::AdHocUser => IdTokenKind::Local,
        _ => IdTokenKind::Central,
    }
}

/// The identifier to send a station for an OCPI token (1.6: the ≤ 20 character alias).
pub fn station_id_token(version: OcppVersion, token: &Token) -> IdToken {
    match version {
        OcppVersion::V16 => IdToken {
            id: tokens::alias(token.uid.as_str()),
            kind: IdTokenKind::IdTag,
        },
        OcppVersion::V201 => IdToken {
            id: token.uid.as_str().to_owned(),
            kind: id_token_kind(&token.kind),
        },
    }
}

/// Who receives a result (and owns a session / reservation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    peer: String,
    party: Option<(String, String)>,
}

/// An in-flight (or finished) command as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InFlight {
    /// Document id.
    id: String,
    command: String,
    peer: String,
    party: Option<(String, String)>,
    response_url: String,
    station: String,
    /// `pending` or `done`.
    status: String,
    created_at: DateTime<Utc>,
    #[serde(default)]
    result: Option<CommandResultType>,
    #[serde(default)]
    finished_at: Option<DateTime<Utc>>,
}

/// Lifecycle of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ResvState {
    /// ReserveNow sent, no answer yet.
    Requested,
    /// Accepted by the station.
    Active,
    /// CancelReservation sent by us.
    Cancelling,
    /// Over (cancelled, consumed, expired, refused).
    Ended,
}

/// A reservation as stored (doc id: the OCPP integer id).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reservation {
    id: i32,
    reservation_id: String,
    party: (String, String),
    peer: String,
    response_url: String,
    station: String,
    evse_id: Option<u32>,
    expiry: DateTime<Utc>,
    uid: String,
    state: ResvState,
    /// The station reported the connector Reserved (a later Available ends it).
    #[serde(default)]
    seen_reserved: bool,
}

impl Reservation {
    fn live(&self, now: DateTime<Utc>) -> bool {
        self.state != ResvState::Ended && self.expiry > now
    }

    fn index_key(&self) -> String {
        resv_key(&self.party.0, &self.party.1, &self.reservation_id)
    }
}

fn resv_key(cc: &str, pid: &str, reservation_id: &str) -> String {
    format!(
        "{}\0{}\0{}",
        cc.to_ascii_uppercase(),
        pid.to_ascii_uppercase(),
        reservation_id.to_ascii_uppercase()
    )
}

fn reject(e: impl std::fmt::Display) -> TxError {
    state::reject(e.to_string())
}

/// The next value of a persistent positive i32 counter.
fn next_counter(tx: &Txn<'_>, name: &str) -> Result<i32, TxError> {
    let current = tx
        .index_get(COUNTER_INDEX, name)?
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    let next = if !(0..i32::MAX).contains(&current) {
        1
    } else {
        current + 1
    };
    tx.index_put(COUNTER_INDEX, name, &next.to_string())?;
    Ok(next)
}

fn response(result: CommandResponseType, message: &str) -> CommandResponse {
    CommandResponse::new(result, 0).with_message(message)
}

fn result_body(result: CommandResultType, message: Option<String>) -> CommandResult {
    CommandResult {
        result,
        message: message.map(|text| {
            vec![DisplayText {
                language: "en".into(),
                text: text.chars().take(512).collect(),
            }]
        }),
    }
}

/// Whether `peer` may act for party `cc`/`pid` (a role of that party, or a hub).
fn may_act_for(peer: &Peer, cc: &str, pid: &str) -> bool {
    peer.roles.iter().any(|r| {
        r.role == ocpi::types::Role::Hub
            || (r.country_code.as_str().eq_ignore_ascii_case(cc)
                && r.party_id.as_str().eq_ignore_ascii_case(pid))
    })
}

fn caller_party(peer: &Peer) -> Option<(String, String)> {
    peer.party()
        .map(|(cc, pid)| (cc.as_str().to_owned(), pid.as_str().to_owned()))
}

/// Where a command goes.
#[derive(Debug, Clone)]
struct Target {
    station: StationId,
    handle: StationHandle,
    /// The EVSE (and connector) addressed, if any.
    at: Option<EvseRef>,
}

/// The OCPI command handler and station observer.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<Settings>,
    store: Store,
    registry: Registry,
    authorizer: Arc<Authorizer>,
    push: PushControl,
    /// Opens RESERVATION Sessions for accepted reservations.
    flow: std::sync::OnceLock<Arc<crate::flow::Flow>>,
}

/// Whether the reservation with this OCPP id is still live (requested or active, not expired).
pub fn reservation_live(store: &Store, ocpp_reservation_id: i32) -> bool {
    store
        .doc(RESERVATION_DOC, &ocpp_reservation_id.to_string())
        .ok()
        .flatten()
        .and_then(|d| serde_json::from_value::<Reservation>(d.value).ok())
        .is_some_and(|r| r.live(Utc::now()))
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands").finish_non_exhaustive()
    }
}

impl Commands {
    /// A handler over the store and the connected stations.
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        registry: Registry,
        authorizer: Arc<Authorizer>,
        push: PushControl,
    ) -> Self {
        Commands {
            inner: Arc::new(Inner {
                settings,
                store,
                registry,
                authorizer,
                push,
                flow: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Reservations get OCPI Sessions with status RESERVATION through `flow`.
    pub fn set_flow(&self, flow: Arc<crate::flow::Flow>) {
        let _ = self.inner.flow.set(flow);
    }

    /// The `timeout` of an ACCEPTED response: a call may wait behind another one for up to the
    /// call timeout, then take the call timeout itself.
    pub fn response_timeout(&self) -> u32 {
        let ct = self.inner.settings.ocpp.call_timeout;
        u32::try_from(2 * ct + MARGIN_SECS).unwrap_or(u32::MAX)
    }

    /// At start-up: every command left in flight by a crash or restart gets a FAILED result;
    /// expired reservations are forgotten.
    pub async fn recover(&self) {
        let store = &self.inner.store;
        let docs = match store.docs(COMMAND_DOC) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading in-flight commands failed");
                return;
            }
        };
        let mut peers = Vec::new();
        for doc in docs {
            let Ok(cmd) = serde_json::from_value::<InFlight>(doc.value) else {
                continue;
            };
            if cmd.status != "pending" {
                continue;
            }
            let id = cmd.id.clone();
            tracing::warn!(command = %cmd.command, station = %cmd.station, peer = %cmd.peer,
                "command was in flight at restart; answering FAILED");
            match self.queue_result(
                &id,
                &cmd,
                result_body(
                    CommandResultType::Failed,
                    Some("the CPO system restarted before the station answered".into()),
                ),
                |_| Ok(()),
            ) {
                Ok(()) => peers.push(cmd.peer.clone()),
                Err(e) => tracing::error!(error = %e, "queueing a recovery result failed"),
            }
        }
        let now = Utc::now();
        if let Ok(resvs) = store.docs(RESERVATION_DOC) {
            for doc in resvs {
                if let Ok(r) = serde_json::from_value::<Reservation>(doc.value)
                    && r.state != ResvState::Ended
                    && r.expiry <= now
                    && let Err(e) = store.update(|tx| end_reservation(tx, &r))
                {
                    tracing::error!(error = %e, "forgetting an expired reservation failed");
                }
            }
        }
        if let Err(e) = store.flush().await {
            tracing::error!(error = %e, "flush after command recovery failed");
        }
        self.inner.push.wake(peers.iter());
    }

    // ----- resolution -------------------------------------------------------------------

    fn location_known(&self, location_id: &str) -> bool {
        self.inner
            .settings
            .locations
            .iter()
            .any(|l| l.id.eq_ignore_ascii_case(location_id))
    }

    fn online(&self, station: &str) -> Option<StationHandle> {
        self.inner
            .registry
            .get(&StationId(station.to_owned()))
            .filter(StationHandle::is_connected)
    }

    /// Finds the station (and EVSE / connector) a command addresses.
    fn resolve(
        &self,
        location_id: &str,
        evse_uid: Option<&str>,
        connector_id: Option<&str>,
    ) -> Result<Target, CommandResponse> {
        use CommandResponseType::Rejected;
        if !self.location_known(location_id) {
            return Err(response(Rejected, "unknown location"));
        }
        let Some(uid) = evse_uid else {
            let stations: Vec<&str> = self
                .inner
                .settings
                .stations
                .iter()
                .filter(|s| s.location.eq_ignore_ascii_case(location_id))
                .map(|s| s.id.as_str())
                .collect();
            if stations.is_empty() {
                return Err(response(Rejected, "no charging station at this location"));
            }
            return stations
                .iter()
                .find_map(|s| {
                    self.online(s).map(|handle| Target {
                        station: StationId((*s).to_owned()),
                        handle,
                        at: None,
                    })
                })
                .ok_or_else(|| response(Rejected, "the charging station is offline"));
        };
        let found = self.inner.store.evse_by_uid(uid).map_err(|e| {
            tracing::error!(error = %e, "EVSE lookup failed");
            response(Rejected, "temporary failure")
        })?;
        let Some((station, evse_id)) = found else {
            return Err(response(Rejected, "unknown EVSE"));
        };
        let at_location = self
            .inner
            .settings
            .station(&station)
            .is_some_and(|s| s.location.eq_ignore_ascii_case(location_id));
        if !at_location {
            return Err(response(Rejected, "the EVSE is not at this location"));
        }
        let connector = match connector_id {
            None => 1,
            Some(c) => {
                let Ok(n) = c.trim().parse::<u32>() else {
                    return Err(response(Rejected, "unknown connector"));
                };
                let known: Vec<u32> = self
                    .inner
                    .store
                    .evse_states(&station)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|e| e.evse_id == evse_id)
                    .map(|e| e.connectors)
                    .unwrap_or_default();
                let ok = if known.is_empty() {
                    n == 1
                } else {
                    known.contains(&n)
                };
                if !ok {
                    return Err(response(Rejected, "unknown connector"));
                }
                n
            }
        };
        let handle = self
            .online(&station)
            .ok_or_else(|| response(Rejected, "the charging station is offline"))?;
        Ok(Target {
            station: StationId(station),
            handle,
            at: Some(EvseRef {
                evse_id,
                connector_id: connector,
            }),
        })
    }

    fn hint(&self, station: &str, evse: Option<u32>) -> EvseHint {
        let connectors: Vec<(u32, u32, String)> = self
            .inner
            .store
            .connectors(station)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.evse_id, c.connector_id, c.status))
            .collect();
        evse_hint(&connectors, evse)
    }

    // ----- bookkeeping ------------------------------------------------------------------

    /// Stores the in-flight document (and whatever `extra` writes) durably; returns its id.
    async fn begin(
        &self,
        cmd: &InFlight,
        extra: impl Fn(&Txn<'_>, &str) -> Result<(), TxError>,
    ) -> Result<String, OcpiError> {
        let id = cmd.id.clone();
        let value = serde_json::to_value(cmd).map_err(|e| OcpiError::Server(e.to_string()))?;
        self.inner
            .store
            .update(|tx| {
                tx.put_doc(COMMAND_DOC, &id, value.clone())?;
                extra(tx, &id)
            })
            .map_err(|e| OcpiError::Server(e.to_string()))?;
        self.inner
            .store
            .flush()
            .await
            .map_err(|e| OcpiError::Server(e.to_string()))?;
        Ok(id)
    }

    /// Queues the result and marks the command done, in one transaction (with `extra`).
    fn queue_result(
        &self,
        id: &str,
        cmd: &InFlight,
        result: CommandResult,
        extra: impl Fn(&Txn<'_>) -> Result<(), TxError>,
    ) -> Result<(), state::Error> {
        let body = serde_json::to_value(&result).unwrap_or_default();
        let mut done = cmd.clone();
        done.status = "done".into();
        done.result = Some(result.result);
        done.finished_at = Some(Utc::now());
        let done = serde_json::to_value(&done).unwrap_or_default();
        self.inner.store.update(|tx| {
            if let Some(doc) = tx.doc(COMMAND_DOC, id)?
                && doc.value.get("status").and_then(|s| s.as_str()) == Some("done")
            {
                return Ok(());
            }
            let mut entry = OutboxEntry::new(
                &cmd.peer,
                "POST",
                RESULT_MODULE,
                cmd.response_url.clone(),
                body.clone(),
            );
            entry.to_party = cmd.party.clone();
            tx.push_outbox(entry)?;
            tx.put_doc(COMMAND_DOC, id, done.clone())?;
            extra(tx)
        })
    }

    /// [`Commands::queue_result`], then flush and wake the pusher.
    async fn finish(
        &self,
        id: &str,
        cmd: &InFlight,
        result: CommandResultType,
        message: Option<String>,
        extra: impl Fn(&Txn<'_>) -> Result<(), TxError>,
    ) {
        metrics::counter!("ocpi_command_results_total", "command" => cmd.command.clone(),
            "result" => format!("{result:?}"))
        .increment(1);
        tracing::info!(command = %cmd.command, station = %cmd.station, peer = %cmd.peer,
            result = ?result, message = ?message, "command result");
        if let Err(e) = self.queue_result(id, cmd, result_body(result, message), extra) {
            tracing::error!(error = %e, "queueing a command result failed");
            return;
        }
        if let Err(e) = self.inner.store.flush().await {
            tracing::error!(error = %e, "flush after a command result failed");
        }
        self.inner.push.wake([&cmd.peer]);
    }

    /// Sends `call` and reports the mapped outcome.
    async fn run_call(
        &self,
        id: String,
        cmd: InFlight,
        target: Target,
        call: StationCall,
        on_answer: impl Fn(&Txn<'_>, CommandResultType) -> Result<(), TxError> + Send,
    ) {
        let outcome = target.handle.send(&call).await;
        let (result, message) = match &outcome {
            Ok(answer) => {
                let hint = match answer {
                    CallAnswer::Start {
                        accepted: false, ..
                    } => self.hint(target.station.as_str(), target.at.map(|a| a.evse_id)),
                    _ => EvseHint::Free,
                };
                (result_for_answer(answer, hint), None)
            }
            Err(f) => (result_for_failure(f), Some(f.to_string())),
        };
        self.finish(&id, &cmd, result, message, |tx| on_answer(tx, result))
            .await;
    }

    fn in_flight(&self, caller: &Peer, command: &Command, station: &StationId) -> InFlight {
        let party = match command.token() {
            Some(t) => Some((
                t.country_code.as_str().to_owned(),
                t.party_id.as_str().to_owned(),
            )),
            None => caller_party(caller),
        };
        InFlight {
            id: uuid::Uuid::new_v4().to_string(),
            command: command.kind().to_string(),
            peer: caller.id.0.clone(),
            party,
            response_url: command.response_url().to_owned(),
            station: station.0.clone(),
            status: "pending".into(),
            created_at: Utc::now(),
            result: None,
            finished_at: None,
        }
    }

    fn accepted(&self) -> CommandResponse {
        CommandResponse::new(CommandResponseType::Accepted, self.response_timeout())
    }

    fn decision(&self, caller: &Peer, token: &Token, reference: Option<String>) -> Decision {
        Decision {
            info: IdTokenInfo::accepted(),
            token: Some(token.clone()),
            peer: Some(caller.id.0.clone()),
            method: AuthMethod::Command,
            authorization_reference: reference,
        }
    }

    // ----- the five commands -----------------------------------------------------------

    async fn start_session(
        &self,
        caller: Peer,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::StartSession(start) = &command else {
            unreachable!("start_session gets START_SESSION")
        };
        let target = match self.resolve(
            start.location_id.as_str(),
            start.evse_uid.as_ref().map(|u| u.as_str()),
            start.connector_id.as_ref().map(|c| c.as_str()),
        ) {
            Ok(t) => t,
            Err(r) => return Ok(r),
        };
        let version = target.handle.version();
        let id_token = station_id_token(version, &start.token);
        let uid = start.token.uid.as_str().to_owned();
        let cmd = self.in_flight(&caller, &command, &target.station);
        let station_key = target.station.0.clone();
        let id_tag_key = id_token.id.to_ascii_uppercase();
        let remote_start_id = std::sync::Mutex::new(0);
        let id = self
            .begin(&cmd, |tx, id| {
                let rsid = next_counter(tx, "remote_start")?;
                *remote_start_id.lock().expect("rsid") = rsid;
                tx.index_put(START_INDEX, &format!("{station_key}\0{rsid}"), id)?;
                tx.index_put(START_INDEX, &format!("{station_key}\0~{id_tag_key}"), id)?;
                if version == OcppVersion::V16 {
                    tokens::remember_alias(tx, &uid)?;
                }
                Ok(())
            })
            .await?;
        let remote_start_id = *remote_start_id.lock().expect("rsid");
        let decision = self.decision(&caller, &start.token, start.authorization_reference.clone());
        self.inner
            .authorizer
            .pre_authorize(&target.station, &uid, decision.clone());
        if version == OcppVersion::V201 {
            self.inner
                .authorizer
                .pre_authorize_remote(&target.station, remote_start_id, decision);
        }
        let call = StationCall::StartTransaction {
            evse: target.at,
            id_token,
            group_id: match version {
                OcppVersion::V201 => start.token.group_id.clone(),
                OcppVersion::V16 => None,
            },
            remote_start_id,
            contract_id: (version == OcppVersion::V201 && !start.token.contract_id.is_empty())
                .then(|| start.token.contract_id.clone()),
        };
        tracing::info!(station = %target.station, peer = %caller.id, token = %uid, remote_start_id,
            evse = ?target.at, "START_SESSION forwarded");
        let this = self.clone();
        tokio::spawn(async move {
            this.run_call(id, cmd, target, call, |_, _| Ok(())).await;
        });
        Ok(self.accepted())
    }

    async fn stop_session(
        &self,
        caller: Peer,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::StopSession(stop) = &command else {
            unreachable!("stop_session gets STOP_SESSION")
        };
        let tx = self
            .inner
            .store
            .transaction(stop.session_id.as_str())
            .map_err(|e| OcpiError::Server(e.to_string()))?;
        let Some(tx) = tx.filter(|t| t.status == TransactionStatus::Active) else {
            return Ok(response(
                CommandResponseType::UnknownSession,
                "no such active session",
            ));
        };
        if !self.may_stop(&caller, &tx) {
            return Ok(response(
                CommandResponseType::Rejected,
                "the session belongs to another party",
            ));
        }
        let Some(handle) = self.online(&tx.station_id) else {
            return Ok(response(
                CommandResponseType::Rejected,
                "the charging station is offline",
            ));
        };
        let target = Target {
            station: StationId(tx.station_id.clone()),
            handle,
            at: None,
        };
        let mut cmd = self.in_flight(&caller, &command, &target.station);
        if let Some(owner) = self.owner_of(&tx.id) {
            cmd.party = owner.party.or(cmd.party);
        }
        let id = self.begin(&cmd, |_, _| Ok(())).await?;
        let call = StationCall::StopTransaction {
            transaction_id: tx.ocpp_transaction_id.clone(),
        };
        tracing::info!(station = %target.station, peer = %caller.id, session = %tx.id, "STOP_SESSION forwarded");
        let this = self.clone();
        tokio::spawn(async move {
            this.run_call(id, cmd, target, call, |_, _| Ok(())).await;
        });
        Ok(self.accepted())
    }

    fn owner_of(&self, session: &str) -> Option<Owner> {
        self.inner
            .store
            .index_get(OWNER_INDEX, session)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_str(&v).ok())
    }

    /// A session may be stopped by the party that started it or owns its token; sessions of
    /// unknown tokens may be stopped by anyone registered.
    fn may_stop(&self, caller: &Peer, tx: &Transaction) -> bool {
        if let Some(owner) = self.owner_of(&tx.id) {
            return match &owner.party {
                Some((cc, pid)) => may_act_for(caller, cc, pid),
                None => owner.peer == caller.id.0,
            };
        }
        let Some(id_token) = &tx.id_token else {
            return true;
        };
        let uid = tokens::resolve_id_tag(&self.inner.store, id_token)
            .unwrap_or_else(|_| id_token.clone());
        let owners = tokens::find(&self.inner.store, &uid).unwrap_or_default();
        owners.is_empty()
            || owners.iter().any(|t| {
                may_act_for(
                    caller,
                    t.token.country_code.as_str(),
                    t.token.party_id.as_str(),
                )
            })
    }

    async fn reserve_now(
        &self,
        caller: Peer,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::ReserveNow(reserve) = &command else {
            unreachable!("reserve_now gets RESERVE_NOW")
        };
        let expiry = reserve.expiry_date.inner();
        let now = Utc::now();
        if expiry <= now {
            return Ok(response(
                CommandResponseType::Rejected,
                "expiry_date is in the past",
            ));
        }
        let target = match self.resolve(
            reserve.location_id.as_str(),
            reserve.evse_uid.as_ref().map(|u| u.as_str()),
            None,
        ) {
            Ok(t) => t,
            Err(r) => return Ok(r),
        };
        let version = target.handle.version();
        let cc = reserve.token.country_code.as_str().to_owned();
        let pid = reserve.token.party_id.as_str().to_owned();
        let key = resv_key(&cc, &pid, reserve.reservation_id.as_str());
        let uid = reserve.token.uid.as_str().to_owned();
        let cmd = self.in_flight(&caller, &command, &target.station);
        let resv_id = std::sync::Mutex::new(0);
        let evse_id = target.at.map(|a| a.evse_id);
        let station = target.station.0.clone();
        let id = self
            .begin(&cmd, |tx, _| {
                let existing = match tx.index_get(RESERVATION_INDEX, &key)? {
                    Some(v) => v.parse::<i32>().ok(),
                    None => None,
                };
                let rid = match existing {
                    Some(rid) => rid,
                    None => next_counter(tx, "reservation")?,
                };
                *resv_id.lock().expect("resv id") = rid;
                let previous: Option<Reservation> = tx
                    .doc(RESERVATION_DOC, &rid.to_string())?
                    .and_then(|d| serde_json::from_value(d.value).ok());
                let resv = Reservation {
                    id: rid,
                    reservation_id: reserve.reservation_id.as_str().to_owned(),
                    party: (cc.clone(), pid.clone()),
                    peer: caller.id.0.clone(),
                    response_url: reserve.response_url.clone(),
                    station: station.clone(),
                    evse_id,
                    expiry,
                    uid: uid.clone(),
                    // A replaced reservation stays active at the station until it answers.
                    state: match previous.as_ref().map(|p| p.state) {
                        Some(ResvState::Active) => ResvState::Active,
                        _ => ResvState::Requested,
                    },
                    seen_reserved: previous.as_ref().is_some_and(|p| {
                        p.seen_reserved && p.station == station && p.evse_id == evse_id
                    }),
                };
                tx.index_put(RESERVATION_INDEX, &key, &rid.to_string())?;
                tx.put_doc(
                    RESERVATION_DOC,
                    &rid.to_string(),
                    serde_json::to_value(&resv).map_err(reject)?,
                )?;
                if version == OcppVersion::V16 {
                    tokens::remember_alias(tx, &uid)?;
                }
                Ok(())
            })
            .await?;
        let rid = *resv_id.lock().expect("resv id");
        self.inner.authorizer.pre_authorize(
            &target.station,
            &uid,
            self.decision(
                &caller,
                &reserve.token,
                reserve.authorization_reference.clone(),
            ),
        );
        let group_id = reserve
            .token
            .group_id
            .clone()
            .filter(|g| version == OcppVersion::V201 || g.len() <= tokens::MAX_ID_TAG);
        let call = StationCall::ReserveNow {
            id: rid,
            expiry,
            id_token: station_id_token(version, &reserve.token),
            group_id,
            evse: target.at,
            connector_type: None,
        };
        tracing::info!(station = %target.station, peer = %caller.id, reservation = %reserve.reservation_id,
            ocpp_id = rid, evse = ?target.at, "RESERVE_NOW forwarded");
        let this = self.clone();
        let session_token = reserve.token.clone();
        let session_reference = reserve.authorization_reference.clone();
        let session_peer = caller.id.0.clone();
        let session_station = station.clone();
        tokio::spawn(async move {
            this.run_call(id, cmd, target, call, move |tx, result| {
                let Some(mut r) = load_reservation(tx, rid)? else {
                    return Ok(());
                };
                if result == CommandResultType::Accepted {
                    r.state = ResvState::Active;
                    put_reservation(tx, &r)
                } else if r.state == ResvState::Requested {
                    // Refused and nothing was active before: forget it.
                    end_reservation(tx, &r)
                } else {
                    Ok(())
                }
            })
            .await;
            if reservation_live(&this.inner.store, rid)
                && let Some(flow) = this.inner.flow.get()
                && let Err(e) = flow
                    .reservation_accepted(
                        &session_peer,
                        &session_token,
                        session_reference,
                        &session_station,
                        evse_id,
                        rid,
                    )
                    .await
            {
                tracing::error!(reservation = rid, error = %e, "opening the reservation session failed");
            }
        });
        Ok(self.accepted())
    }

    async fn cancel_reservation(
        &self,
        caller: Peer,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::CancelReservation(cancel) = &command else {
            unreachable!("cancel_reservation gets CANCEL_RESERVATION")
        };
        let now = Utc::now();
        let wanted = cancel.reservation_id.as_str();
        let found = self.reservations().into_iter().find(|r| {
            r.live(now)
                && r.reservation_id.eq_ignore_ascii_case(wanted)
                && may_act_for(&caller, &r.party.0, &r.party.1)
        });
        let Some(resv) = found else {
            return Ok(response(
                CommandResponseType::Rejected,
                "unknown reservation",
            ));
        };
        let Some(handle) = self.online(&resv.station) else {
            return Ok(response(
                CommandResponseType::Rejected,
                "the charging station is offline",
            ));
        };
        let target = Target {
            station: StationId(resv.station.clone()),
            handle,
            at: None,
        };
        let mut cmd = self.in_flight(&caller, &command, &target.station);
        cmd.party = Some(resv.party.clone());
        let rid = resv.id;
        let id = self
            .begin(&cmd, |tx, _| {
                if let Some(mut r) = load_reservation(tx, rid)? {
                    r.state = ResvState::Cancelling;
                    put_reservation(tx, &r)?;
                }
                Ok(())
            })
            .await?;
        let call = StationCall::CancelReservation { id: rid };
        tracing::info!(station = %target.station, peer = %caller.id, reservation = %wanted, ocpp_id = rid,
            "CANCEL_RESERVATION forwarded");
        let station_for_session = target.station.0.clone();
        let this = self.clone();
        tokio::spawn(async move {
            this.run_call(id, cmd, target, call, move |tx, result| {
                let Some(mut r) = load_reservation(tx, rid)? else {
                    return Ok(());
                };
                match result {
                    // Cancelled, or the station did not have it (any more): over.
                    CommandResultType::Accepted | CommandResultType::UnknownReservation => {
                        end_reservation(tx, &r)
                    }
                    _ if r.state == ResvState::Cancelling => {
                        r.state = ResvState::Active;
                        put_reservation(tx, &r)
                    }
                    _ => Ok(()),
                }
            })
            .await;
            if !reservation_live(&this.inner.store, rid)
                && let Some(flow) = this.inner.flow.get()
                && let Err(e) = flow.reservation_ended(&station_for_session, rid).await
            {
                tracing::error!(error = %e, "completing the reservation session failed");
            }
        });
        Ok(self.accepted())
    }

    async fn unlock_connector(
        &self,
        caller: Peer,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::UnlockConnector(unlock) = &command else {
            unreachable!("unlock_connector gets UNLOCK_CONNECTOR")
        };
        let target = match self.resolve(
            unlock.location_id.as_str(),
            Some(unlock.evse_uid.as_str()),
            Some(unlock.connector_id.as_str()),
        ) {
            Ok(t) => t,
            Err(r) => return Ok(r),
        };
        let Some(at) = target.at else {
            return Ok(response(CommandResponseType::Rejected, "unknown EVSE"));
        };
        let cmd = self.in_flight(&caller, &command, &target.station);
        let id = self.begin(&cmd, |_, _| Ok(())).await?;
        let at = match target.handle.version() {
            OcppVersion::V16 => EvseRef::from_v16_connector(at.evse_id),
            OcppVersion::V201 => at,
        };
        let call = StationCall::UnlockConnector { at };
        tracing::info!(station = %target.station, peer = %caller.id, ?at, "UNLOCK_CONNECTOR forwarded");
        let this = self.clone();
        tokio::spawn(async move {
            this.run_call(id, cmd, target, call, |_, _| Ok(())).await;
        });
        Ok(self.accepted())
    }

    // ----- reservations -----------------------------------------------------------------

    fn reservations(&self) -> Vec<Reservation> {
        self.inner
            .store
            .docs(RESERVATION_DOC)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| serde_json::from_value::<Reservation>(d.value).ok())
            .filter(|r| r.state != ResvState::Ended)
            .collect()
    }

    /// The station ended reservation `rid` (or the EVSE it held): forget it, and tell the
    /// eMSP CANCELED_RESERVATION unless we cancelled it or it simply expired.
    async fn station_ended(&self, rid: i32, why: &str) {
        let now = Utc::now();
        let store = &self.inner.store;
        let ended = store.update(|tx| {
            let Some(r) = load_reservation(tx, rid)? else {
                return Ok(None);
            };
            if r.state == ResvState::Ended {
                return Ok(None);
            }
            let report = r.state != ResvState::Cancelling && r.expiry - EXPIRY_SLACK > now;
            if report {
                let body = serde_json::to_value(result_body(
                    CommandResultType::CanceledReservation,
                    Some(format!(
                        "the charging station ended the reservation ({why})"
                    )),
                ))
                .map_err(reject)?;
                let mut entry =
                    OutboxEntry::new(&r.peer, "POST", RESULT_MODULE, r.response_url.clone(), body);
                entry.to_party = Some(r.party.clone());
                tx.push_outbox(entry)?;
            }
            end_reservation(tx, &r)?;
            Ok(Some((r, report)))
        });
        match ended {
            Ok(Some((r, report))) => {
                tracing::info!(station = %r.station, reservation = %r.reservation_id, ocpp_id = rid,
                    why, canceled_reported = report, "reservation ended by the station");
                if let Some(flow) = self.inner.flow.get()
                    && let Err(e) = flow.reservation_ended(&r.station, rid).await
                {
                    tracing::error!(error = %e, "completing the reservation session failed");
                }
                if report {
                    if let Err(e) = store.flush().await {
                        tracing::error!(error = %e, "flush after a reservation end failed");
                    }
                    self.inner.push.wake([&r.peer]);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "ending a reservation failed"),
        }
    }

    async fn on_status(&self, station: StationId, at: EvseRef, status: ConnectorStatus) {
        if at.evse_id == 0 {
            return;
        }
        let now = Utc::now();
        let mine: Vec<Reservation> = self
            .reservations()
            .into_iter()
            .filter(|r| r.station == station.0 && r.live(now))
            .collect();
        match status {
            ConnectorStatus::Reserved => {
                // The reservation on this EVSE, else an EVSE-less one not yet placed.
                let pick = mine
                    .iter()
                    .find(|r| r.evse_id == Some(at.evse_id))
                    .or_else(|| mine.iter().find(|r| r.evse_id.is_none()));
                if let Some(r) = pick {
                    let rid = r.id;
                    let evse = at.evse_id;
                    let _ = self.inner.store.update(|tx| {
                        if let Some(mut r) = load_reservation(tx, rid)? {
                            r.seen_reserved = true;
                            r.evse_id = Some(evse);
                            put_reservation(tx, &r)?;
                        }
                        Ok(())
                    });
                }
            }
            ConnectorStatus::Available => {
                for r in mine
                    .iter()
                    .filter(|r| r.seen_reserved && r.evse_id == Some(at.evse_id))
                {
                    self.station_ended(r.id, "connector available again").await;
                }
            }
            _ => {}
        }
    }

    fn on_transaction(&self, station: &StationId, t: &Transaction) {
        // A command-started session: remember who owns it.
        let by_remote = t
            .remote_start_id
            .map(|rsid| format!("{}\0{rsid}", station.0));
        let by_tag = t
            .id_token
            .as_ref()
            .map(|tag| format!("{}\0~{}", station.0, tag.to_ascii_uppercase()));
        let store = &self.inner.store;
        for key in [by_remote, by_tag].into_iter().flatten() {
            let Ok(Some(cmd_id)) = store.index_get(START_INDEX, &key) else {
                continue;
            };
            let Ok(Some(doc)) = store.doc(COMMAND_DOC, &cmd_id) else {
                continue;
            };
            let Ok(cmd) = serde_json::from_value::<InFlight>(doc.value) else {
                continue;
            };
            if t.started_at < cmd.created_at - chrono::Duration::minutes(1)
                || t.started_at > cmd.created_at + START_WINDOW
            {
                continue;
            }
            let owner = Owner {
                peer: cmd.peer.clone(),
                party: cmd.party.clone(),
            };
            let value = serde_json::to_string(&owner).unwrap_or_default();
            let tx_id = t.id.clone();
            let _ = store.update(|tx| {
                tx.index_put(OWNER_INDEX, &tx_id, &value)?;
                tx.index_remove(START_INDEX, &key)
            });
            tracing::info!(session = %t.id, peer = %cmd.peer, "session started by START_SESSION");
            break;
        }
        // A transaction that consumes a reservation ends it silently.
        if let Some(rid) = t.reservation_id {
            let _ = store.update(|tx| match load_reservation(tx, rid)? {
                Some(r) if r.state != ResvState::Ended && r.station == station.0 => {
                    end_reservation(tx, &r)
                }
                _ => Ok(()),
            });
        }
    }
}

fn load_reservation(tx: &Txn<'_>, rid: i32) -> Result<Option<Reservation>, TxError> {
    Ok(tx
        .doc(RESERVATION_DOC, &rid.to_string())?
        .and_then(|d| serde_json::from_value(d.value).ok()))
}

fn put_reservation(tx: &Txn<'_>, r: &Reservation) -> Result<(), TxError> {
    tx.put_doc(
        RESERVATION_DOC,
        &r.id.to_string(),
        serde_json::to_value(r).map_err(reject)?,
    )?;
    Ok(())
}

/// Forgets a reservation: marked ended, its `reservation_id` free again.
fn end_reservation(tx: &Txn<'_>, r: &Reservation) -> Result<(), TxError> {
    let mut ended = r.clone();
    ended.state = ResvState::Ended;
    put_reservation(tx, &ended)?;
    if tx.index_get(RESERVATION_INDEX, &r.index_key())?.as_deref() == Some(&r.id.to_string()) {
        tx.index_remove(RESERVATION_INDEX, &r.index_key())?;
    }
    Ok(())
}

impl CommandHandler for Commands {
    fn handle(
        &self,
        caller: Peer,
        command: Command,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<CommandResponse, OcpiError>> + Send + '_>,
    > {
        Box::pin(async move {
            metrics::counter!("ocpi_commands_total", "command" => command.kind().to_string())
                .increment(1);
            let answer = match &command {
                Command::StartSession(_) => self.start_session(caller, command).await,
                Command::StopSession(_) => self.stop_session(caller, command).await,
                Command::ReserveNow(_) => self.reserve_now(caller, command).await,
                Command::CancelReservation(_) => self.cancel_reservation(caller, command).await,
                Command::UnlockConnector(_) => self.unlock_connector(caller, command).await,
            };
            if let Ok(r) = &answer
                && r.result != CommandResponseType::Accepted
            {
                tracing::info!(result = ?r.result, message = ?r.message, "command not forwarded");
            }
            answer
        })
    }
}

impl StationObserver for Commands {
    fn status(&self, station: &StationId, at: EvseRef, status: ConnectorStatus) {
        if !matches!(
            status,
            ConnectorStatus::Reserved | ConnectorStatus::Available
        ) {
            return;
        }
        let this = self.clone();
        let station = station.clone();
        tokio::spawn(async move { this.on_status(station, at, status).await });
    }

    fn notification(&self, station: &StationId, action: &str, payload: &serde_json::Value) {
        if !action.ends_with("ReservationStatusUpdate") {
            return;
        }
        let Some(rid) = payload
            .get("reservationId")
            .and_then(serde_json::Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
        else {
            return;
        };
        let why = payload
            .get("reservationUpdateStatus")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("Removed")
            .to_owned();
        let this = self.clone();
        let station = station.clone();
        tokio::spawn(async move {
            let belongs = this
                .reservations()
                .iter()
                .any(|r| r.id == rid && r.station == station.0);
            if belongs {
                this.station_ended(rid, &why).await;
            }
        });
    }

    fn transaction_started(&self, station: &StationId, transaction: &Transaction) {
        self.on_transaction(station, transaction);
    }
}

/// How long a test or caller should allow for a result after ACCEPTED.
pub fn result_deadline(settings: &Settings) -> Duration {
    Duration::from_secs(2 * settings.ocpp.call_timeout + MARGIN_SECS)
}

#[cfg(test)]
mod tests;
