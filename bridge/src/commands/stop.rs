//! STOP_SESSION: finds the session's active transaction, checks that the caller may stop it
//! (the party that started it by command, or the token's owner; sessions of unknown tokens may
//! be stopped by anyone registered), and asks the station to stop.

use ocpi::types::{Command, CommandResponse, CommandResponseType, CountryCode, PartyId};
use ocpi::{OcpiError, Peer};
use ocpp::{StationCall, StationId};
use state::{Transaction, TransactionStatus};

use super::{Commands, Target, response};
use crate::records::{Owner, SESSION_OWNER, SessionRecord};
use crate::tokens;

/// Whether `peer` may act for party `cc`/`pid` (a role of that party, or a hub).
fn may_act_for(peer: &Peer, cc: &str, pid: &str) -> bool {
    peer.may_act_for(&CountryCode::new(cc), &PartyId::new(pid))
}

impl Commands {
    pub(super) async fn stop_session(
        &self,
        caller: super::Commander,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::StopSession(stop) = &command else {
            unreachable!("stop_session gets STOP_SESSION")
        };
        // A session's id is its transaction's id, except for a session that began as a
        // reservation: that one keeps the reservation's id and names its transaction.
        let tx_id = self
            .inner
            .store
            .record::<SessionRecord>(stop.session_id.as_str())
            .map_err(|e| OcpiError::Server(e.to_string()))?
            .and_then(|rec| rec.transaction_id)
            .unwrap_or_else(|| stop.session_id.as_str().to_owned());
        let tx = self
            .inner
            .store
            .transaction(&tx_id)
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
        // Without OCPI-from-*, the session's owner is the best guess of who asked.
        if caller.from.is_none()
            && let Some(owner) = self.owner_of(&tx.id)
        {
            cmd.party = owner.party.or(cmd.party);
        }
        self.begin(&cmd, |_| Ok(())).await?;
        let call = StationCall::StopTransaction {
            transaction_id: tx.ocpp_transaction_id.clone(),
        };
        tracing::info!(station = %target.station, peer = %caller.id, session = %tx.id, "STOP_SESSION forwarded");
        let this = self.clone();
        tokio::spawn(async move {
            this.run_call(cmd, target, call, |_, _| Ok(())).await;
        });
        Ok(self.accepted())
    }

    fn owner_of(&self, session: &str) -> Option<Owner> {
        self.inner
            .store
            .index_get(SESSION_OWNER, session)
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
        let store = &self.inner.store;
        let uid = tokens::resolve_id_tag(store, id_token).unwrap_or_else(|_| id_token.clone());
        let owners = tokens::find(store, &uid).unwrap_or_default();
        owners.is_empty()
            || owners.iter().any(|t| {
                may_act_for(
                    caller,
                    t.token.country_code.as_str(),
                    t.token.party_id.as_str(),
                )
            })
    }
}
