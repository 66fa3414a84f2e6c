//! The thin OCPI adapter on top: implements [`ocpi::CpoBackend`] by delegating to the catalog
//! (Locations, Tariffs), the session flow (Sessions, CDRs), the token store and the command
//! handler, and queues every Location and Tariff for a peer that registers. A hub's ClientInfo
//! PUTs go to [`HubClients`]; a command's `OCPI-from-*` party reaches the command handler.
//!
//! Nothing below this module knows the OCPI platform type; this module owns no state.

use std::sync::Arc;

use ocpi::server::{Page, PageParams};
use ocpi::types::{
    CountryCode, InterfaceRole, Location, LocationId, ModuleId, PartyId, Tariff, TokenType,
    TokenUid,
};
use ocpi::{OcpiError, Peer, PeerId};
use state::{Listing, Store};

use crate::catalog::Catalog;
use crate::commands::Commands;
use crate::error::Logged;
use crate::hub::HubClients;
use crate::outbox::{self, Push, PushQueue};
use crate::records::{CDRS_LISTED, SESSIONS_LISTED};
use crate::sessions::{Sessions, listing};
use crate::tokens;

fn server_error(e: impl std::fmt::Display) -> OcpiError {
    OcpiError::Server(e.to_string())
}

/// The daemon's [`ocpi::CpoBackend`].
pub struct Cpo {
    ocpi: ocpi::Settings,
    catalog: Arc<Catalog>,
    store: Store,
    sessions: Arc<Sessions>,
    commands: Commands,
    push: PushQueue,
    hub: HubClients,
}

impl std::fmt::Debug for Cpo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpo").finish_non_exhaustive()
    }
}

impl Cpo {
    /// The adapter over the bridge's parts.
    pub fn new(
        catalog: Arc<Catalog>,
        store: Store,
        sessions: Arc<Sessions>,
        commands: Commands,
        push: PushQueue,
        hub: HubClients,
    ) -> Self {
        Cpo {
            ocpi: catalog.ocpi_settings(),
            catalog,
            store,
            sessions,
            commands,
            push,
            hub,
        }
    }
}

/// Queues every Location and Tariff for `peers` (after registration or a configuration
/// change). Locations go first: a peer must know a Location before its EVSE updates.
pub fn queue_full_sync(
    store: &Store,
    catalog: &Catalog,
    peers: &[Peer],
) -> Result<(), state::Error> {
    store.update(|tx| {
        for peer in peers {
            let id = peer.id.as_str();
            let has = |m: ModuleId| peer.endpoint(&m, InterfaceRole::Receiver).is_some();
            if has(ModuleId::Locations) {
                for loc in catalog.locations() {
                    let push = Push::Location { id: loc.id.clone() };
                    tx.push_outbox(outbox::entry(id, push, None))?;
                }
            }
            if has(ModuleId::Tariffs) {
                for t in catalog.tariffs() {
                    let push = Push::Tariff {
                        id: t.id.as_str().to_owned(),
                    };
                    tx.push_outbox(outbox::entry(id, push, None))?;
                }
            }
        }
        Ok(())
    })
}

impl Cpo {
    /// One page of a per-party listing for `caller` (narrowed to `from`), read from the index:
    /// only the page's objects are loaded.
    fn page<T>(
        &self,
        listed: Listing,
        caller: &Peer,
        from: Option<&(CountryCode, PartyId)>,
        params: &PageParams,
        load: impl Fn(&str) -> crate::error::Result<Option<T>>,
    ) -> Result<Page<T>, OcpiError> {
        let scope = listing::scope(
            caller.id.as_str(),
            from.map(|(cc, pid)| (cc.as_str(), pid.as_str())),
        );
        let page = self
            .store
            .list_page(
                listed,
                &scope,
                params.date_from.map(Into::into),
                params.date_to.map(Into::into),
                params.offset,
                params.limit,
            )
            .map_err(server_error)?;
        let mut items = Vec::with_capacity(page.ids.len());
        for id in &page.ids {
            items.extend(load(id)?);
        }
        Ok(Page {
            items,
            total: page.total,
        })
    }
}

impl ocpi::CpoBackend for Cpo {
    fn settings(&self) -> &ocpi::Settings {
        &self.ocpi
    }

    fn locations(&self, _caller: &Peer) -> Result<Vec<Location>, OcpiError> {
        self.catalog.all_locations().map_err(server_error)
    }

    fn location(&self, _caller: &Peer, id: &LocationId) -> Result<Option<Location>, OcpiError> {
        match self.catalog.location(id.as_str()) {
            Some(loc) => self
                .catalog
                .build_location(loc)
                .map(Some)
                .map_err(server_error),
            None => Ok(None),
        }
    }

    fn tariffs(&self, _caller: &Peer) -> Result<Vec<Tariff>, OcpiError> {
        Ok(self.catalog.tariffs().to_vec())
    }

    async fn peer_registered(&self, peer: &Peer) {
        tracing::info!(peer = %peer.id, version = %peer.version, "OCPI peer registered; queueing full sync");
        metrics::counter!("ocpi_registrations_total").increment(1);
        queue_full_sync(&self.store, &self.catalog, std::slice::from_ref(peer))
            .or_log("queueing the full sync");
        self.store
            .flush()
            .await
            .or_log("flush after queueing the full sync");
        self.push.wake([&peer.id.0]);
    }

    fn sessions(&self, caller: &Peer) -> Result<Vec<ocpi::types::Session>, OcpiError> {
        let all = PageParams::everything();
        Ok(self.session_page(caller, None, &all)?.items)
    }

    fn session_page(
        &self,
        caller: &Peer,
        from: Option<&(CountryCode, PartyId)>,
        params: &PageParams,
    ) -> Result<Page<ocpi::types::Session>, OcpiError> {
        self.page(SESSIONS_LISTED, caller, from, params, |id| {
            self.sessions.session(id)
        })
    }

    fn session(
        &self,
        caller: &Peer,
        id: &ocpi::types::SessionId,
    ) -> Result<Option<ocpi::types::Session>, OcpiError> {
        let Some(rec) = self.sessions.record(id.as_str())? else {
            return Ok(None);
        };
        if rec.peer.as_deref() != Some(caller.id.as_str()) {
            return Ok(None);
        }
        Ok(self.sessions.session(&rec.id)?)
    }

    fn cdrs(&self, caller: &Peer) -> Result<Vec<ocpi::types::Cdr>, OcpiError> {
        let all = PageParams::everything();
        Ok(self.cdr_page(caller, None, &all)?.items)
    }

    fn cdr_page(
        &self,
        caller: &Peer,
        from: Option<&(CountryCode, PartyId)>,
        params: &PageParams,
    ) -> Result<Page<ocpi::types::Cdr>, OcpiError> {
        self.page(CDRS_LISTED, caller, from, params, |id| {
            self.sessions.cdr(id)
        })
    }

    fn token(
        &self,
        _caller: &Peer,
        country_code: &CountryCode,
        party_id: &PartyId,
        uid: &TokenUid,
        kind: &TokenType,
    ) -> Result<Option<ocpi::types::Token>, OcpiError> {
        Ok(tokens::get(
            &self.store,
            country_code.as_str(),
            party_id.as_str(),
            uid.as_str(),
            kind.as_str(),
        )
        .map_err(server_error)?
        .map(|t| t.token))
    }

    fn put_token(&self, caller: &Peer, token: ocpi::types::Token) -> Result<(), OcpiError> {
        self.store
            .update(|tx| tokens::put(tx, &token, caller.id.as_str()))
            .map_err(server_error)?;
        self.store.flush_blocking().map_err(server_error)?;
        metrics::counter!("ocpi_tokens_received_total").increment(1);
        Ok(())
    }

    async fn command(
        &self,
        caller: &Peer,
        command: ocpi::types::Command,
    ) -> Result<ocpi::types::CommandResponse, OcpiError> {
        self.commands.handle(caller.clone(), None, command).await
    }

    async fn command_from(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        command: ocpi::types::Command,
    ) -> Result<ocpi::types::CommandResponse, OcpiError> {
        self.commands.handle(caller.clone(), from, command).await
    }

    async fn put_client_info(
        &self,
        caller: &Peer,
        info: ocpi::types::ClientInfo,
    ) -> Result<(), OcpiError> {
        self.hub
            .put_info(caller.id.as_str(), info)
            .await
            .map_err(server_error)
    }

    fn client_info(
        &self,
        caller: &Peer,
        country_code: &CountryCode,
        party_id: &PartyId,
    ) -> Result<Option<ocpi::types::ClientInfo>, OcpiError> {
        Ok(self
            .hub
            .info(caller.id.as_str(), country_code.as_str(), party_id.as_str()))
    }

    fn token_a_valid(&self, token: &str) -> bool {
        let configured = self.ocpi.token_a.as_ref().map(|t| t.expose());
        crate::peers::token_a_valid(&self.store, configured, token)
            .or_log("checking a token A")
            .unwrap_or(false)
    }

    fn use_token_a(&self, token: &str, peer: &PeerId) -> Result<bool, OcpiError> {
        let configured = self.ocpi.token_a.as_ref().map(|t| t.expose());
        crate::peers::use_token_a(&self.store, configured, token, peer.as_str())
            .map_err(server_error)
    }

    async fn peer_unregistered(&self, id: &PeerId) {
        tracing::info!(peer = %id, "OCPI peer unregistered; its outbox is dropped and its tokens refused");
        self.push.stop(id);
        // Its next registration starts with a full token pull.
        self.store
            .update(|tx| {
                tx.remove_record::<crate::records::TokenPull>(id.as_str())
                    .map(drop)
            })
            .or_log("forgetting the peer's token pulls");
    }
}
