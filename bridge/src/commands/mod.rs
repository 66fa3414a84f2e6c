//! OCPI Commands → OCPP calls, with honest results.
//!
//! - The synchronous `CommandResponse` only says whether we can forward the command: REJECTED
//!   for an unknown location / EVSE / connector, an offline station, a session or reservation of
//!   another party, an unknown reservation; UNKNOWN_SESSION for a STOP_SESSION of an unknown or
//!   finished session; else ACCEPTED with a `timeout` covering the OCPP call (a call may wait
//!   behind another one for up to the call timeout, then wait the call timeout itself).
//! - Before answering ACCEPTED the command is stored as a [`CommandRecord`] and flushed. The
//!   OCPP call then runs in its own task; its outcome, mapped by [`results`], is queued in the
//!   durable outbox as a bare `CommandResult` for the command's `response_url` in the same
//!   transaction that marks the record done. [`Commands::recover`] answers FAILED for every
//!   command a crash or restart left in flight.
//!
//! One module per command family: [`start`] (START_SESSION, and which session a command
//! started), [`stop`] (STOP_SESSION), [`reserve`] (RESERVE_NOW, CANCEL_RESERVATION; the
//! lifecycle afterwards is [`crate::reservations`]'s), [`unlock`] (UNLOCK_CONNECTOR).

mod reserve;
pub mod results;
mod start;
mod stop;
mod unlock;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ocpi::types::{
    AuthMethod, Command, CommandResponse, CommandResponseType, CommandResultType, CountryCode,
    PartyId, Token,
};
use ocpi::{OcpiError, Peer};
use ocpp::{CallAnswer, EvseRef, IdTokenInfo, Registry, StationCall, StationHandle, StationId};
use state::{Store, TxError, Txn};

use crate::auth::{Authorizer, Decision};
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::error::Logged;
use crate::outbox::{self, Push, PushQueue};
use crate::records::{CommandRecord, CommandStatus};
use crate::reservations::Reservations;
use results::{EvseHint, evse_hint, result_for_answer, result_for_failure};

/// The peer that sent a command, and the party it sent it for (the request's `OCPI-from-*`,
/// kept only when the peer may act for it). Dereferences to the peer.
#[derive(Debug, Clone)]
pub struct Commander {
    /// The calling peer.
    pub peer: Peer,
    /// The request's `OCPI-from-*` party.
    pub from: Option<(String, String)>,
}

impl std::ops::Deref for Commander {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

/// Whom a command's CommandResult is addressed to (`OCPI-to-*`): the party that sent the
/// command (the request's `OCPI-from-*`, e.g. the eMSP behind a hub), else the owner of the
/// command's token, else the caller's eMSP role.
pub fn result_party(
    caller: &Peer,
    from: Option<&(String, String)>,
    token: Option<(&str, &str)>,
) -> Option<(String, String)> {
    from.cloned()
        .or_else(|| token.map(|(cc, pid)| (cc.to_owned(), pid.to_owned())))
        .or_else(|| {
            caller
                .party_for(&ocpi::types::ModuleId::Commands)
                .map(|(cc, pid)| (cc.as_str().to_owned(), pid.as_str().to_owned()))
        })
}

/// Seconds added to the OCPP call timeout in the synchronous `timeout`.
const MARGIN_SECS: u64 = 10;

/// Where a command goes.
#[derive(Debug, Clone)]
struct Target {
    station: StationId,
    handle: StationHandle,
    /// The EVSE (and connector) addressed, if any.
    at: Option<EvseRef>,
}

/// The OCPI command handler.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<Catalog>,
    store: Store,
    registry: Registry,
    authorizer: Arc<Authorizer>,
    push: PushQueue,
    reservations: Reservations,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands").finish_non_exhaustive()
    }
}

fn response(result: CommandResponseType, message: &str) -> CommandResponse {
    CommandResponse::new(result, 0).with_message(message)
}

/// How long a test or caller should allow for a result after ACCEPTED.
pub fn result_deadline(settings: &Settings) -> Duration {
    Duration::from_secs(2 * settings.ocpp.call_timeout + MARGIN_SECS)
}

impl Commands {
    /// A handler over the store and the connected stations.
    pub fn new(
        catalog: Arc<Catalog>,
        store: Store,
        registry: Registry,
        authorizer: Arc<Authorizer>,
        push: PushQueue,
        reservations: Reservations,
    ) -> Self {
        Commands {
            inner: Arc::new(Inner {
                catalog,
                store,
                registry,
                authorizer,
                push,
                reservations,
            }),
        }
    }

    /// Answers a validated command synchronously; the station's outcome follows as a
    /// CommandResult through the outbox, addressed to `from` (the request's `OCPI-from-*`)
    /// when given ([`result_party`]).
    pub async fn handle(
        &self,
        caller: Peer,
        from: Option<(CountryCode, PartyId)>,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let from = from.and_then(|(cc, pid)| {
            if caller.may_act_for(&cc, &pid) {
                Some((cc.as_str().to_owned(), pid.as_str().to_owned()))
            } else {
                tracing::info!(peer = %caller.id, from = %format!("{cc}/{pid}"),
                    "OCPI-from-* names a party the caller does not act for; ignored");
                None
            }
        });
        let caller = Commander { peer: caller, from };
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
    }

    /// The `timeout` of an ACCEPTED response: a call may wait behind another one for up to the
    /// call timeout, then take the call timeout itself.
    pub fn response_timeout(&self) -> u32 {
        let ct = self.inner.catalog.settings().ocpp.call_timeout;
        u32::try_from(2 * ct + MARGIN_SECS).unwrap_or(u32::MAX)
    }

    /// At start-up: every command left in flight by a crash or restart gets a FAILED result;
    /// expired reservations are forgotten.
    pub async fn recover(&self) {
        let store = &self.inner.store;
        let Some(records) = store
            .records::<CommandRecord>()
            .or_log("reading in-flight commands")
        else {
            return;
        };
        let mut peers = Vec::new();
        for cmd in records {
            if cmd.status != CommandStatus::Pending {
                continue;
            }
            tracing::warn!(command = %cmd.command, station = %cmd.station, peer = %cmd.peer,
                "command was in flight at restart; answering FAILED");
            let queued = self.queue_result(
                &cmd,
                CommandResultType::Failed,
                Some("the CPO system restarted before the station answered".into()),
                |_| Ok(()),
            );
            if queued.or_log("queueing a recovery result").is_some() {
                peers.push(cmd.peer.clone());
            }
        }
        self.inner.reservations.recover();
        store.flush().await.or_log("flush after command recovery");
        self.inner.push.wake(peers);
    }

    /// A transaction started: if a START_SESSION asked for it, its session belongs to the
    /// commanding party.
    pub fn transaction_started(&self, station: &StationId, t: &state::Transaction) {
        start::attribute(&self.inner.store, station, t);
    }

    // ----- resolution -------------------------------------------------------------------

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
        let catalog = &self.inner.catalog;
        if catalog.location(location_id).is_none() {
            return Err(response(Rejected, "unknown location"));
        }
        let Some(uid) = evse_uid else {
            let stations: Vec<&str> = catalog
                .stations_at(location_id)
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
        let at_location = catalog
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

    /// Stores the command record (and whatever `extra` writes) durably.
    async fn begin(
        &self,
        cmd: &CommandRecord,
        extra: impl Fn(&Txn<'_>) -> Result<(), TxError>,
    ) -> Result<(), OcpiError> {
        let store = &self.inner.store;
        store
            .update(|tx| {
                tx.put_record(cmd)?;
                extra(tx)
            })
            .map_err(|e| OcpiError::Server(e.to_string()))?;
        store
            .flush()
            .await
            .map_err(|e| OcpiError::Server(e.to_string()))
    }

    /// Queues the result and marks the command done, in one transaction (with `extra`).
    fn queue_result(
        &self,
        cmd: &CommandRecord,
        result: CommandResultType,
        message: Option<String>,
        extra: impl Fn(&Txn<'_>) -> Result<(), TxError>,
    ) -> Result<(), state::Error> {
        let body = outbox::command_result(result, message);
        let mut done = cmd.clone();
        done.status = CommandStatus::Done;
        done.result = Some(result);
        done.finished_at = Some(Utc::now());
        self.inner.store.update(|tx| {
            if tx
                .record::<CommandRecord>(&cmd.id)?
                .is_some_and(|c| c.status == CommandStatus::Done)
            {
                return Ok(());
            }
            tx.push_outbox(outbox::entry(
                &cmd.peer,
                Push::CommandResult {
                    response_url: cmd.response_url.clone(),
                    result: body.clone(),
                },
                cmd.party.clone(),
            ))?;
            tx.put_record(&done)?;
            extra(tx)
        })
    }

    /// [`Commands::queue_result`], then flush and wake the pusher.
    async fn finish(
        &self,
        cmd: &CommandRecord,
        result: CommandResultType,
        message: Option<String>,
        extra: impl Fn(&Txn<'_>) -> Result<(), TxError>,
    ) {
        metrics::counter!("ocpi_command_results_total", "command" => cmd.command.clone(),
            "result" => format!("{result:?}"))
        .increment(1);
        tracing::info!(command = %cmd.command, station = %cmd.station, peer = %cmd.peer,
            result = ?result, message = ?message, "command result");
        if self
            .queue_result(cmd, result, message, extra)
            .or_log("queueing a command result")
            .is_none()
        {
            return;
        }
        self.inner
            .store
            .flush()
            .await
            .or_log("flush after a command result");
        self.inner.push.wake([&cmd.peer]);
    }

    /// Sends `call` and reports the mapped outcome.
    async fn run_call(
        &self,
        cmd: CommandRecord,
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
        self.finish(&cmd, result, message, |tx| on_answer(tx, result))
            .await;
    }

    /// The command record of a command about to be forwarded to `station`.
    fn in_flight(
        &self,
        caller: &Commander,
        command: &Command,
        station: &StationId,
    ) -> CommandRecord {
        let party = result_party(
            caller,
            caller.from.as_ref(),
            command
                .token()
                .map(|t| (t.country_code.as_str(), t.party_id.as_str())),
        );
        CommandRecord {
            id: uuid::Uuid::new_v4().to_string(),
            command: command.kind().to_string(),
            peer: caller.id.0.clone(),
            party,
            response_url: command.response_url().to_owned(),
            station: station.0.clone(),
            status: CommandStatus::Pending,
            created_at: Utc::now(),
            result: None,
            finished_at: None,
        }
    }

    fn accepted(&self) -> CommandResponse {
        CommandResponse::new(CommandResponseType::Accepted, self.response_timeout())
    }

    /// The authorization a command gives its token (auth method COMMAND).
    fn decision(&self, caller: &Peer, token: &Token, reference: Option<String>) -> Decision {
        Decision {
            info: IdTokenInfo::accepted(),
            token: Some(token.clone()),
            peer: Some(caller.id.0.clone()),
            method: AuthMethod::Command,
            authorization_reference: reference,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(roles: &[(&str, &str, &str)]) -> Peer {
        let roles: Vec<serde_json::Value> = roles
            .iter()
            .map(|(role, cc, pid)| {
                serde_json::json!({"role": role, "country_code": cc, "party_id": pid,
                    "business_details": {"name": "x"}})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": "P", "token_in": "i", "token_out": "o",
            "versions_url": "https://p.example/ocpi/versions", "version": "2.2.1",
            "endpoints": [], "roles": roles, "registered_at": "2026-01-01T00:00:00Z",
            "initiated_by": "us"
        }))
        .expect("peer")
    }

    #[test]
    fn a_command_result_goes_to_the_party_that_sent_the_command() {
        let hub = peer(&[("HUB", "NL", "HUB")]);
        let from = ("DE".to_owned(), "EMB".to_owned());
        let party = |p: Option<(String, String)>| p.map(|(cc, pid)| format!("{cc}{pid}"));
        assert_eq!(
            party(result_party(&hub, Some(&from), Some(("NL", "EMA")))).as_deref(),
            Some("DEEMB"),
            "the request's OCPI-from-* wins"
        );
        assert_eq!(
            party(result_party(&hub, None, Some(("NL", "EMA")))).as_deref(),
            Some("NLEMA"),
            "else the token's owner"
        );
        assert_eq!(
            party(result_party(&hub, None, None)).as_deref(),
            Some("NLHUB")
        );
        let platform = peer(&[("CPO", "DE", "CPX"), ("EMSP", "DE", "EMX")]);
        assert_eq!(
            party(result_party(&platform, None, None)).as_deref(),
            Some("DEEMX"),
            "a multi-role platform by its eMSP role"
        );
    }
}
