//! The thin OCPI adapter on top: implements [`ocpi::CpoBackend`] by delegating to the catalog
//! (Locations, Tariffs), the session flow (Sessions, CDRs), the token store and the command
//! handler, and queues every Location and Tariff for a peer that registers. A hub's ClientInfo
//! PUTs go to [`HubClients`]; a command's `OCPI-from-*` party reaches the command handler.
//!
//! At start, [`queue_removals`] publishes what left the configuration (EVSEs as REMOVED,
//! tariffs DELETEd) from the stored record of what was published.
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
use crate::records::{CDRS_LISTED, Published, SESSIONS_LISTED};
use crate::sessions::{Sessions, listing};
use crate::smart::Smart;
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
    smart: Smart,
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
        smart: Smart,
        push: PushQueue,
        hub: HubClients,
    ) -> Self {
        Cpo {
            ocpi: catalog.ocpi_settings(),
            catalog,
            store,
            sessions,
            commands,
            smart,
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

/// What the configuration publishes now: location id → station ids, and the tariff ids.
pub fn published_now(catalog: &Catalog) -> Published {
    Published {
        locations: catalog
            .locations()
            .iter()
            .map(|l| {
                let stations = catalog.stations_at(&l.id).map(|s| s.id.clone()).collect();
                (l.id.clone(), stations)
            })
            .collect(),
        tariffs: catalog
            .tariffs()
            .iter()
            .map(|t| t.id.as_str().to_owned())
            .collect(),
    }
}

/// What [`queue_removals`] queued.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removals {
    /// `(location, station, uid)` of every EVSE published as REMOVED.
    pub evses: Vec<(String, String, String)>,
    /// Removed tariff ids.
    pub tariffs: Vec<String>,
}

/// Compares the configuration with what the last start published ([`Published`]) and queues,
/// for every registered receiver, a PATCH `status: REMOVED` of each EVSE of a station that is
/// no longer configured at its location (also every EVSE of a location removed entirely; the
/// Location itself is then no longer published or listed), and a DELETE of each removed
/// tariff — in the same store transaction as the new [`Published`] record, so a crash either
/// queues all of it or none, and a removal is published once. The first start with this
/// record only writes it.
pub fn queue_removals(
    store: &Store,
    catalog: &Catalog,
    peers: &[Peer],
) -> Result<Removals, state::Error> {
    let now = chrono::Utc::now();
    let current = published_now(catalog);
    let before = store.record::<Published>(Published::KEY)?;
    let mut removals = Removals::default();
    if let Some(before) = &before {
        for (loc, stations) in &before.locations {
            for st in stations {
                let still_there = catalog
                    .location_of(st)
                    .is_some_and(|l| l.id.eq_ignore_ascii_case(loc));
                if still_there {
                    continue;
                }
                for es in store.evse_states(st)? {
                    removals.evses.push((loc.clone(), st.clone(), es.uid));
                }
            }
        }
        removals.tariffs = before
            .tariffs
            .iter()
            .filter(|t| catalog.tariff(t).is_none())
            .cloned()
            .collect();
    }
    if before.as_ref() == Some(&current) {
        return Ok(removals);
    }
    let receivers = |m: ModuleId| -> Vec<&Peer> {
        peers
            .iter()
            .filter(|p| {
                p.status == ocpi::PeerStatus::Registered
                    && p.endpoint(&m, InterfaceRole::Receiver).is_some()
            })
            .collect()
    };
    let (loc_peers, tariff_peers) = (receivers(ModuleId::Locations), receivers(ModuleId::Tariffs));
    store.update(|tx| {
        for peer in &loc_peers {
            for (location, station, uid) in &removals.evses {
                let push = Push::EvseRemoved {
                    location: location.clone(),
                    station: station.clone(),
                    uid: uid.clone(),
                    at: now,
                };
                tx.push_outbox(outbox::entry(peer.id.as_str(), push, None))?;
            }
        }
        for peer in &tariff_peers {
            for id in &removals.tariffs {
                let push = Push::TariffDelete { id: id.clone() };
                tx.push_outbox(outbox::entry(peer.id.as_str(), push, None))?;
            }
        }
        tx.put_record(&current)
    })?;
    for (location, station, uid) in &removals.evses {
        tracing::info!(location = %location, station = %station, uid = %uid, peers = loc_peers.len(),
            "station removed from the configuration: EVSE published as REMOVED");
    }
    for id in &removals.tariffs {
        tracing::info!(tariff = %id, peers = tariff_peers.len(), "tariff removed from the configuration: DELETE queued");
    }
    Ok(removals)
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
            Some(loc) => self.catalog.publishable_location(loc).map_err(server_error),
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

    async fn set_charging_profile(
        &self,
        caller: &Peer,
        from: Option<(ocpi::types::CountryCode, ocpi::types::PartyId)>,
        session: &ocpi::types::Session,
        set: ocpi::types::SetChargingProfile,
    ) -> Result<ocpi::types::ChargingProfileResponse, OcpiError> {
        self.smart.set(caller, from, session, set).await
    }

    async fn get_active_charging_profile(
        &self,
        caller: &Peer,
        from: Option<(ocpi::types::CountryCode, ocpi::types::PartyId)>,
        session: &ocpi::types::Session,
        duration: u32,
        response_url: String,
    ) -> Result<ocpi::types::ChargingProfileResponse, OcpiError> {
        self.smart
            .get(caller, from, session, duration, response_url)
            .await
    }

    async fn clear_charging_profile(
        &self,
        caller: &Peer,
        from: Option<(ocpi::types::CountryCode, ocpi::types::PartyId)>,
        session: &ocpi::types::Session,
        response_url: String,
    ) -> Result<ocpi::types::ChargingProfileResponse, OcpiError> {
        self.smart.clear(caller, from, session, response_url).await
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[locations]]
id = "LOC1"
address = "Main street 1"
city = "Utrecht"
country = "NLD"
latitude = "52.090737"
longitude = "5.121420"
time_zone = "Europe/Amsterdam"
[[locations]]
id = "LOC2"
address = "Main street 2"
city = "Utrecht"
country = "NLD"
latitude = "52.090737"
longitude = "5.121420"
time_zone = "Europe/Amsterdam"
[[stations]]
id = "CS1"
location = "LOC1"
[[stations]]
id = "CS2"
location = "LOC1"
[[stations]]
id = "CS3"
location = "LOC2"
[[tariffs]]
country_code = "NL"
party_id = "BRG"
id = "T1"
currency = "EUR"
last_updated = "2026-01-01T00:00:00Z"
[[tariffs.elements]]
[[tariffs.elements.price_components]]
type = "ENERGY"
price = 0.3
step_size = 1
"#;

    fn catalog(dir: &std::path::Path, text: &str, store: &Store) -> Catalog {
        let path = dir.join("bridge.toml");
        std::fs::write(&path, text).unwrap();
        let settings = crate::config::load_with_env(Some(&path), []).unwrap();
        Catalog::new(Arc::new(settings), store.clone()).unwrap().0
    }

    fn peer(id: &str) -> Peer {
        serde_json::from_value(serde_json::json!({
            "id": id, "token_in": "i", "token_out": "o",
            "versions_url": "https://p.example/ocpi/versions", "version": "2.2.1",
            "endpoints": [
                {"identifier": "locations", "role": "RECEIVER", "url": "https://p.example/locations"},
                {"identifier": "tariffs", "role": "RECEIVER", "url": "https://p.example/tariffs"}
            ],
            "roles": [], "registered_at": "2026-01-01T00:00:00Z", "initiated_by": "us"
        }))
        .unwrap()
    }

    #[test]
    fn removals_are_queued_once_for_every_receiver_with_the_new_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&state::Settings {
            path: dir.path().join("db"),
            cache_bytes: 8 << 20,
        })
        .unwrap();
        store
            .update(|tx| {
                for st in ["CS1", "CS2", "CS3"] {
                    tx.put_evse_state(&state::EvseState {
                        v: state::SCHEMA_VERSION,
                        station_id: st.into(),
                        evse_id: 1,
                        uid: format!("{st}-1"),
                        status: "AVAILABLE".into(),
                        connectors: vec![1],
                        last_updated: chrono::Utc::now(),
                    })?;
                }
                Ok(())
            })
            .unwrap();
        let peers = [peer("a"), peer("b")];
        let full = format!(
            "{CONFIG}[[tariffs]]\ncountry_code = \"NL\"\nparty_id = \"BRG\"\nid = \"T2\"\n\
             currency = \"EUR\"\nlast_updated = \"2026-01-01T00:00:00Z\"\n[[tariffs.elements]]\n\
             [[tariffs.elements.price_components]]\ntype = \"FLAT\"\nprice = 1\nstep_size = 1\n"
        );
        // The first start only records what is published.
        let first = queue_removals(&store, &catalog(dir.path(), &full, &store), &peers).unwrap();
        assert_eq!(first, Removals::default());
        assert!(store.outbox::<Push>("a").unwrap().is_empty());

        // CS2 and LOC2 (with CS3) and T2 leave the configuration.
        let reduced = CONFIG
            .replace("[[stations]]\nid = \"CS2\"\nlocation = \"LOC1\"\n", "")
            .replace("[[stations]]\nid = \"CS3\"\nlocation = \"LOC2\"\n", "")
            .replacen("id = \"LOC2\"", "id = \"LOC3\"", 1);
        let cat = catalog(dir.path(), &reduced, &store);
        let removed = queue_removals(&store, &cat, &peers).unwrap();
        assert_eq!(
            removed.evses,
            [
                ("LOC1".to_owned(), "CS2".to_owned(), "CS2-1".to_owned()),
                ("LOC2".to_owned(), "CS3".to_owned(), "CS3-1".to_owned())
            ]
        );
        assert_eq!(removed.tariffs, ["T2"]);
        for p in ["a", "b"] {
            let queued: Vec<String> = store
                .outbox::<Push>(p)
                .unwrap()
                .iter()
                .map(|e| format!("{} {}", e.push.method(), e.push.subject()))
                .collect();
            assert_eq!(
                queued,
                [
                    "PATCH evse_removed:LOC1/CS2-1",
                    "PATCH evse_removed:LOC2/CS3-1",
                    "DELETE tariff:T2"
                ],
                "{p}"
            );
        }
        assert_eq!(
            store.record::<Published>(Published::KEY).unwrap(),
            Some(published_now(&cat))
        );
        // Once: the same configuration again queues nothing more.
        queue_removals(&store, &cat, &peers).unwrap();
        assert_eq!(store.outbox::<Push>("a").unwrap().len(), 3);
    }
}
