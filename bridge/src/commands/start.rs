//! START_SESSION: pre-authorizes the command's token at the station (auth method COMMAND,
//! `authorization_reference` kept) — 1.6 by idTag (the alias for uids longer than 20
//! characters), 2.0.1 by a fresh `remoteStartId` from a persistent counter — and asks the
//! station to start. When the transaction then starts, [`attribute`] records that its session
//! belongs to the commanding party.

use ocpi::OcpiError;
use ocpi::types::{Command, CommandResponse};
use ocpp::{OcppVersion, StationCall, StationId};
use state::Store;

use super::Commands;
use super::results::station_id_token;
use crate::error::Logged;
use crate::records::{COMMAND_START, CommandRecord, Owner, REMOTE_START_COUNTER, SESSION_OWNER};
use crate::tokens;

/// How long after a 1.6 remote start a StartTransaction with that idTag counts as its result.
const START_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

impl Commands {
    pub(super) async fn start_session(
        &self,
        caller: super::Commander,
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
        // The closure may run more than once (sled retries); the last run's value is the one
        // that was committed.
        let remote_start_id = std::sync::Mutex::new(0);
        self.begin(&cmd, |tx| {
            let rsid = tx.next_counter(REMOTE_START_COUNTER)?;
            *remote_start_id.lock().expect("rsid") = rsid;
            tx.index_put(COMMAND_START, &format!("{station_key}\0{rsid}"), &cmd.id)?;
            tx.index_put(
                COMMAND_START,
                &format!("{station_key}\0~{id_tag_key}"),
                &cmd.id,
            )?;
            if version == OcppVersion::V16 {
                tokens::remember_alias(tx, &uid)?;
            }
            Ok(())
        })
        .await?;
        let remote_start_id = *remote_start_id.lock().expect("rsid");
        let decision = self.decision(&caller, &start.token, start.authorization_reference.clone());
        let authorizer = &self.inner.authorizer;
        authorizer.pre_authorize(&target.station, &uid, decision.clone());
        if version == OcppVersion::V201 {
            authorizer.pre_authorize_remote(&target.station, remote_start_id, decision);
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
            this.run_call(cmd, target, call, |_, _| Ok(())).await;
        });
        Ok(self.accepted())
    }
}

/// A transaction started at `station`: if a START_SESSION (by remoteStartId, or by idTag within
/// [`START_WINDOW`]) asked for it, remember who owns its session.
pub(super) fn attribute(store: &Store, station: &StationId, t: &state::Transaction) {
    let by_remote = t
        .remote_start_id
        .map(|rsid| format!("{}\0{rsid}", station.0));
    let by_tag = t
        .id_token
        .as_ref()
        .map(|tag| format!("{}\0~{}", station.0, tag.to_ascii_uppercase()));
    for key in [by_remote, by_tag].into_iter().flatten() {
        let Ok(Some(cmd_id)) = store.index_get(COMMAND_START, &key) else {
            continue;
        };
        let Ok(Some(cmd)) = store.record::<CommandRecord>(&cmd_id) else {
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
        store
            .update(|tx| {
                tx.index_put(SESSION_OWNER, &t.id, &value)?;
                tx.index_remove(COMMAND_START, &key)
            })
            .or_log("recording the owner of a commanded session");
        tracing::info!(session = %t.id, peer = %cmd.peer, "session started by START_SESSION");
        break;
    }
}
