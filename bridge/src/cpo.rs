//! The bridge as OCPI CPO: implements [`ocpi::CpoBackend`] over the configuration and the store.
//!
//! - Locations are built on every request from `[[locations]]`, `[[stations]]` and what stations
//!   reported (the published EVSE states in the store); EVSE uids come from the store's explicit
//!   uid table and are never derived again. `last_updated` of every object is a stored
//!   timestamp (the EVSE's last published change, floored by the last configuration change), so
//!   it only moves on real changes and a child change moves its parents.
//! - Tariffs come from the configuration, validated at start-up.
//! - Peers are persisted in the store (opaque JSON owned by the `ocpi` crate).
//! - When a peer registers, every Location and Tariff is queued for it in the outbox (a peer must
//!   have the Location before it gets EVSE updates); the pusher delivers.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ocpi::types::{
    Connector, ConnectorFormat, ConnectorType, CountryCode, Evse, EvseId, EvseUid, GeoLocation,
    InterfaceRole, Location, LocationId, ModuleId, PartyId, PowerType, Tariff, TariffId,
};
use ocpi::{OcpiError, Peer, PeerId, PeerStatus};
use state::{OutboxEntry, Store};
use tokio::sync::mpsc;

use crate::config::{LocationSettings, Settings, StationSettings};
use crate::evse;

/// Messages to the pusher.
#[derive(Debug, Clone)]
pub enum PushCommand {
    /// Make sure a delivery task runs for this peer and wake it.
    Wake(PeerId),
    /// Wake every delivery task.
    WakeAll,
    /// Stop the delivery task of an unregistered peer.
    Stop(PeerId),
}

/// Sends [`PushCommand`]s; cheap to clone.
#[derive(Debug, Clone)]
pub struct PushControl(mpsc::UnboundedSender<PushCommand>);

impl PushControl {
    /// A control and the receiver the pusher reads.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<PushCommand>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (PushControl(tx), rx)
    }

    /// Wakes the delivery tasks of these peers (starting them if needed).
    pub fn wake<'a>(&self, peers: impl IntoIterator<Item = &'a String>) {
        for p in peers {
            let _ = self.0.send(PushCommand::Wake(PeerId(p.clone())));
        }
    }

    /// Wakes every delivery task.
    pub fn wake_all(&self) {
        let _ = self.0.send(PushCommand::WakeAll);
    }

    fn stop(&self, peer: &PeerId) {
        let _ = self.0.send(PushCommand::Stop(peer.clone()));
    }
}

/// Executes OCPI commands (implemented by the commands module).
pub trait CommandHandler: Send + Sync + 'static {
    /// Answers a validated command synchronously; the station's outcome follows as a
    /// CommandResult through the outbox.
    fn handle(
        &self,
        caller: Peer,
        command: ocpi::types::Command,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<ocpi::types::CommandResponse, OcpiError>>
                + Send
                + '_,
        >,
    >;
}

/// The daemon's [`ocpi::CpoBackend`].
pub struct Cpo {
    /// Set once at start-up, after the station side exists.
    commands: std::sync::OnceLock<Arc<dyn CommandHandler>>,
    /// Sessions and CDRs (set once at start-up).
    flow: std::sync::OnceLock<Arc<crate::flow::Flow>>,
    settings: Arc<Settings>,
    ocpi: ocpi::Settings,
    store: Store,
    tariffs: Vec<Tariff>,
    push: PushControl,
    /// Floor for every `last_updated`: when the configuration last changed.
    config_changed_at: DateTime<Utc>,
}

impl std::fmt::Debug for Cpo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpo").finish_non_exhaustive()
    }
}

fn server_error(e: impl std::fmt::Display) -> OcpiError {
    OcpiError::Server(e.to_string())
}

/// Render keys of lazily rendered outbox entries.
pub mod render {
    /// A whole Location (PUT).
    pub fn location(id: &str) -> String {
        format!("location:{id}")
    }
    /// One EVSE's status (PATCH).
    pub fn evse(station: &str, evse_id: u32) -> String {
        format!("evse:{evse_id}:{station}")
    }
}

/// Our OCPI identity from the configuration.
pub fn ocpi_settings(settings: &Settings) -> ocpi::Settings {
    use secrecy::ExposeSecret;
    let mut s = ocpi::Settings::new(
        settings.ocpi.public_url.clone(),
        &settings.ocpi.country_code,
        &settings.ocpi.party_id,
        &settings.ocpi.business_name,
    );
    s.token_a = settings
        .ocpi
        .token_a
        .as_ref()
        .map(|t| ocpi::types::AuthToken::new(t.expose_secret()));
    s
}

/// Parses and validates the configured tariffs.
pub fn load_tariffs(settings: &Settings) -> anyhow::Result<Vec<Tariff>> {
    let mut out = Vec::new();
    for (i, value) in settings.tariff_list()?.into_iter().enumerate() {
        let tariff: Tariff = serde_json::from_value(value)
            .map_err(|e| anyhow::anyhow!("tariffs[{i}]: not an OCPI 2.2.1 Tariff: {e}"))?;
        tariff
            .validate()
            .map_err(|e| anyhow::anyhow!("tariffs[{i}]: {e}"))?;
        out.push(tariff);
    }
    Ok(out)
}

/// A fingerprint of everything the configuration contributes to Locations and Tariffs.
fn config_fingerprint(settings: &Settings, tariffs: &[Tariff]) -> String {
    let stations: Vec<_> = settings
        .stations
        .iter()
        .map(|s| {
            (
                &s.id,
                &s.location,
                &s.connector_standard,
                &s.connector_format,
                &s.power_type,
                s.max_voltage,
                s.max_amperage,
                s.max_electric_power,
                &s.tariff_ids,
            )
        })
        .collect();
    let locations: Vec<_> = settings
        .locations
        .iter()
        .map(|l| {
            (
                &l.id,
                &l.name,
                &l.address,
                &l.city,
                &l.postal_code,
                &l.state,
                &l.country,
                &l.latitude,
                &l.longitude,
                &l.time_zone,
                &l.tariff_id,
                l.publish,
            )
        })
        .collect();
    let text = serde_json::json!({
        "cc": settings.ocpi.country_code, "pid": settings.ocpi.party_id,
        "locations": format!("{locations:?}"), "stations": format!("{stations:?}"),
        "tariffs": tariffs,
    })
    .to_string();
    format!("{:016x}", crate::fnv1a(text.as_bytes()))
}

/// The eMI3 EVSE id `CC*PID*E{station}*{evse}`: upper-case letters and digits only, the part
/// after `E` at most 30 characters (OCPI `evse_id` pattern).
pub fn emi3_evse_id(cc: &str, pid: &str, station: &str, evse_id: u32) -> String {
    let suffix = format!("*{evse_id}");
    let room = 30usize.saturating_sub(suffix.len());
    let station: String = station
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .take(room)
        .collect();
    let station = if station.is_empty() {
        "X".to_owned()
    } else {
        station
    };
    format!(
        "{}*{}*E{station}{suffix}",
        cc.to_ascii_uppercase(),
        pid.to_ascii_uppercase()
    )
}

fn phases(power_type: &str) -> u32 {
    match power_type {
        "AC_3_PHASE" => 3,
        "AC_2_PHASE" | "AC_2_PHASE_SPLIT" => 2,
        _ => 1,
    }
}

fn from_str_json<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

impl Cpo {
    /// Builds the backend; records a configuration change (and its time) in the store.
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        push: PushControl,
    ) -> anyhow::Result<(Self, bool)> {
        let tariffs = load_tariffs(&settings)?;
        let fingerprint = config_fingerprint(&settings, &tariffs);
        let now = Utc::now();
        let changed = store.meta("config_fingerprint")?.as_deref() != Some(fingerprint.as_str());
        let config_changed_at = if changed {
            store.set_meta("config_fingerprint", &fingerprint)?;
            store.set_meta("config_changed_at", &now.to_rfc3339())?;
            now
        } else {
            store
                .meta("config_changed_at")?
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map_or(now, |t| t.with_timezone(&Utc))
        };
        let cpo = Cpo {
            commands: std::sync::OnceLock::new(),
            flow: std::sync::OnceLock::new(),
            ocpi: ocpi_settings(&settings),
            settings,
            store,
            tariffs,
            push,
            config_changed_at,
        };
        Ok((cpo, changed))
    }

    /// The OCPI Tariff (JSON) that applies to a station's connectors: the station's first
    /// `tariff_ids` entry, else its location's `tariff_id`.
    pub fn tariff_for(&self, station: &str) -> Option<serde_json::Value> {
        let st = self.settings.station(station)?;
        let id = st
            .tariff_ids
            .first()
            .cloned()
            .or_else(|| self.location_of(station)?.tariff_id.clone())?;
        let tariff = self.tariffs.iter().find(|t| t.id == id.as_str())?;
        serde_json::to_value(tariff).ok()
    }

    /// The OCPI CdrLocation (JSON) of a station's EVSE/connector as configured now: frozen into
    /// a session when it starts.
    pub fn cdr_location(
        &self,
        station: &str,
        evse_id: u32,
        connector_id: u32,
        uid: &str,
    ) -> serde_json::Value {
        let (Some(st), Some(loc)) = (self.settings.station(station), self.location_of(station))
        else {
            return serde_json::Value::Null;
        };
        let es = state::EvseState {
            v: state::SCHEMA_VERSION,
            station_id: station.to_owned(),
            evse_id,
            uid: uid.to_owned(),
            status: "CHARGING".into(),
            connectors: vec![connector_id],
            last_updated: Utc::now(),
        };
        let evse = self.evse(st, loc, &es);
        let location = self.location_object(loc, None, es.last_updated);
        let cdr_location =
            ocpi::types::CdrLocation::from_location(&location, &evse, &evse.connectors[0]);
        serde_json::to_value(cdr_location).unwrap_or_default()
    }

    /// The charging flow, once installed.
    pub fn flow(&self) -> Option<&Arc<crate::flow::Flow>> {
        self.flow.get()
    }

    /// Installs the charging flow (once).
    pub fn set_flow(&self, flow: Arc<crate::flow::Flow>) {
        let _ = self.flow.set(flow);
    }

    /// Installs the command handler (once).
    pub fn set_command_handler(&self, handler: Arc<dyn CommandHandler>) {
        let _ = self.commands.set(handler);
    }

    /// The configured tariffs.
    pub fn tariff_list(&self) -> &[Tariff] {
        &self.tariffs
    }

    fn station_settings(&self, location: &str) -> impl Iterator<Item = &StationSettings> {
        self.settings
            .stations
            .iter()
            .filter(move |s| s.location.eq_ignore_ascii_case(location))
    }

    /// The location a station stands at.
    pub fn location_of(&self, station: &str) -> Option<&LocationSettings> {
        let cfg = self.settings.station(station)?;
        self.settings
            .locations
            .iter()
            .find(|l| l.id.eq_ignore_ascii_case(&cfg.location))
    }

    fn connector(
        &self,
        st: &StationSettings,
        loc: &LocationSettings,
        id: u32,
        updated: DateTime<Utc>,
    ) -> Connector {
        let tariff_ids: Vec<TariffId> = if st.tariff_ids.is_empty() {
            loc.tariff_id
                .iter()
                .map(|t| TariffId::new(t.clone()))
                .collect()
        } else {
            st.tariff_ids
                .iter()
                .map(|t| TariffId::new(t.clone()))
                .collect()
        };
        Connector {
            id: ocpi::types::ConnectorId::new(id.to_string()),
            standard: from_str_json::<ConnectorType>(&st.connector_standard)
                .unwrap_or(ConnectorType::Other(st.connector_standard.clone())),
            format: from_str_json::<ConnectorFormat>(&st.connector_format)
                .unwrap_or(ConnectorFormat::Socket),
            power_type: from_str_json::<PowerType>(&st.power_type).unwrap_or(PowerType::Ac3Phase),
            max_voltage: st.max_voltage,
            max_amperage: st.max_amperage,
            max_electric_power: Some(
                st.max_electric_power
                    .unwrap_or(st.max_voltage * st.max_amperage * phases(&st.power_type)),
            ),
            tariff_ids: (!tariff_ids.is_empty()).then_some(tariff_ids),
            terms_and_conditions: None,
            last_updated: updated.into(),
        }
    }

    /// The EVSE object of one published EVSE state.
    fn evse(&self, st: &StationSettings, loc: &LocationSettings, es: &state::EvseState) -> Evse {
        let updated = es.last_updated.max(self.config_changed_at);
        let mut connectors: Vec<u32> = es.connectors.clone();
        if connectors.is_empty() {
            connectors.push(1);
        }
        Evse {
            uid: EvseUid::new(es.uid.clone()),
            evse_id: Some(EvseId::new(emi3_evse_id(
                &self.settings.ocpi.country_code,
                &self.settings.ocpi.party_id,
                &st.id,
                es.evse_id,
            ))),
            status: evse::parse_status(&es.status),
            status_schedule: None,
            capabilities: None,
            connectors: connectors
                .into_iter()
                .map(|c| self.connector(st, loc, c, updated))
                .collect(),
            floor_level: None,
            coordinates: None,
            physical_reference: Some(format!("{} #{}", st.id, es.evse_id)),
            directions: None,
            parking_restrictions: None,
            images: None,
            last_updated: updated.into(),
        }
    }

    /// One Location, built from configuration and store.
    pub fn build_location(&self, loc: &LocationSettings) -> Result<Location, state::Error> {
        let mut evses = Vec::new();
        let mut updated = self.config_changed_at;
        for st in self.station_settings(&loc.id) {
            for es in self.store.evse_states(&st.id)? {
                updated = updated.max(es.last_updated);
                evses.push(self.evse(st, loc, &es));
            }
        }
        Ok(self.location_object(loc, Some(evses), updated))
    }

    /// The Location object of a configured location with the given EVSEs (no store access).
    fn location_object(
        &self,
        loc: &LocationSettings,
        evses: Option<Vec<Evse>>,
        updated: DateTime<Utc>,
    ) -> Location {
        Location {
            country_code: CountryCode::new(self.settings.ocpi.country_code.clone()),
            party_id: PartyId::new(self.settings.ocpi.party_id.clone()),
            id: LocationId::new(loc.id.clone()),
            publish: loc.publish,
            publish_allowed_to: None,
            name: loc.name.clone(),
            address: loc.address.clone(),
            city: loc.city.clone(),
            postal_code: loc.postal_code.clone(),
            state: loc.state.clone(),
            country: loc.country.to_ascii_uppercase(),
            coordinates: GeoLocation {
                latitude: loc.latitude.clone(),
                longitude: loc.longitude.clone(),
            },
            related_locations: None,
            parking_type: None,
            evses,
            directions: None,
            operator: Some(ocpi::types::BusinessDetails {
                name: self.settings.ocpi.business_name.clone(),
                website: None,
                logo: None,
            }),
            suboperator: None,
            owner: None,
            facilities: None,
            time_zone: loc.time_zone.clone(),
            opening_times: None,
            charging_when_closed: None,
            images: None,
            energy_mix: None,
            last_updated: updated.into(),
        }
    }

    /// All Locations in configuration order.
    pub fn all_locations(&self) -> Result<Vec<Location>, state::Error> {
        self.settings
            .locations
            .iter()
            .map(|l| self.build_location(l))
            .collect()
    }

    /// Renders a lazily rendered outbox entry: `(path below the module URL, body)`, or `None`
    /// when the object no longer exists (then the entry is dropped).
    pub fn render(&self, key: &str) -> Result<Option<(String, serde_json::Value)>, state::Error> {
        let cc = &self.settings.ocpi.country_code;
        let pid = &self.settings.ocpi.party_id;
        if let Some(id) = key.strip_prefix("location:") {
            let Some(loc) = self
                .settings
                .locations
                .iter()
                .find(|l| l.id.eq_ignore_ascii_case(id))
            else {
                return Ok(None);
            };
            let location = self.build_location(loc)?;
            let body = serde_json::to_value(&location)
                .map_err(|e| state::Error::Rejected(e.to_string()))?;
            return Ok(Some((format!("/{cc}/{pid}/{}", loc.id), body)));
        }
        if let Some(rest) = key.strip_prefix("evse:") {
            let Some((evse_id, station)) = rest.split_once(':') else {
                return Ok(None);
            };
            let Ok(evse_id) = evse_id.parse::<u32>() else {
                return Ok(None);
            };
            let Some(loc) = self.location_of(station) else {
                return Ok(None);
            };
            let Some(es) = self
                .store
                .evse_states(station)?
                .into_iter()
                .find(|e| e.evse_id == evse_id)
            else {
                return Ok(None);
            };
            let updated: ocpi::types::DateTime = es.last_updated.max(self.config_changed_at).into();
            let body = serde_json::json!({ "status": es.status, "last_updated": updated });
            return Ok(Some((format!("/{cc}/{pid}/{}/{}", loc.id, es.uid), body)));
        }
        Ok(None)
    }

    /// Queues every Location and Tariff for `peers` (after registration or a configuration
    /// change). Locations go first: a peer must know a Location before its EVSE updates.
    pub fn queue_full_sync(&self, peers: &[Peer]) -> Result<(), state::Error> {
        let tariffs: Vec<(String, serde_json::Value)> = self
            .tariffs
            .iter()
            .map(|t| {
                let path = format!(
                    "/{}/{}/{}",
                    t.country_code.as_str(),
                    t.party_id.as_str(),
                    t.id.as_str()
                );
                (path, serde_json::to_value(t).unwrap_or_default())
            })
            .collect();
        self.store.update(|tx| {
            for peer in peers {
                let id = peer.id.as_str();
                if peer
                    .endpoint(&ModuleId::Locations, InterfaceRole::Receiver)
                    .is_some()
                {
                    for loc in &self.settings.locations {
                        tx.push_outbox(OutboxEntry::rendered(
                            id,
                            "PUT",
                            "locations",
                            render::location(&loc.id),
                        ))?;
                    }
                }
                if peer
                    .endpoint(&ModuleId::Tariffs, InterfaceRole::Receiver)
                    .is_some()
                {
                    for (path, body) in &tariffs {
                        let e = OutboxEntry::new(id, "PUT", "tariffs", path.clone(), body.clone())
                            .coalescing(format!("PUT tariff:{path}"));
                        tx.push_outbox(e)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Registered peers with a Locations receiver.
    pub fn location_receivers(peers: &[Peer]) -> Vec<String> {
        peers
            .iter()
            .filter(|p| p.status == PeerStatus::Registered)
            .filter(|p| {
                p.endpoint(&ModuleId::Locations, InterfaceRole::Receiver)
                    .is_some()
            })
            .map(|p| p.id.0.clone())
            .collect()
    }
}

impl ocpi::CpoBackend for Cpo {
    fn settings(&self) -> &ocpi::Settings {
        &self.ocpi
    }

    fn locations(&self, _caller: &Peer) -> Result<Vec<Location>, OcpiError> {
        self.all_locations().map_err(server_error)
    }

    fn location(&self, _caller: &Peer, id: &LocationId) -> Result<Option<Location>, OcpiError> {
        match self.settings.locations.iter().find(|l| id == l.id.as_str()) {
            Some(loc) => self.build_location(loc).map(Some).map_err(server_error),
            None => Ok(None),
        }
    }

    fn tariffs(&self, _caller: &Peer) -> Result<Vec<Tariff>, OcpiError> {
        Ok(self.tariffs.clone())
    }

    fn peers(&self) -> Result<Vec<Peer>, OcpiError> {
        let mut out = Vec::new();
        for (id, value) in self.store.peers().map_err(server_error)? {
            match serde_json::from_value::<Peer>(value) {
                Ok(p) => out.push(p),
                Err(e) => tracing::error!(peer = %id, error = %e, "unreadable peer record skipped"),
            }
        }
        Ok(out)
    }

    fn save_peer(&self, peer: &Peer) -> Result<(), OcpiError> {
        let value = serde_json::to_value(peer).map_err(server_error)?;
        self.store
            .put_peer(peer.id.as_str(), &value)
            .map_err(server_error)?;
        self.store.flush_blocking().map_err(server_error)
    }

    fn delete_peer(&self, id: &PeerId) -> Result<(), OcpiError> {
        self.store.delete_peer(id.as_str()).map_err(server_error)?;
        self.store.flush_blocking().map_err(server_error)
    }

    async fn peer_registered(&self, peer: &Peer) {
        tracing::info!(peer = %peer.id, version = %peer.version, "OCPI peer registered; queueing full sync");
        metrics::counter!("ocpi_registrations_total").increment(1);
        if let Err(e) = self.queue_full_sync(std::slice::from_ref(peer)) {
            tracing::error!(peer = %peer.id, error = %e, "queueing the full sync failed");
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "flush after queueing the full sync failed");
        }
        self.push.wake([&peer.id.0]);
    }

    fn sessions(&self, _caller: &Peer) -> Result<Vec<ocpi::types::Session>, OcpiError> {
        let Some(flow) = self.flow.get() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for v in flow.sessions().map_err(server_error)? {
            match serde_json::from_value(v) {
                Ok(s) => out.push(s),
                Err(e) => tracing::error!(error = %e, "a rendered session does not parse as OCPI"),
            }
        }
        Ok(out)
    }

    fn cdrs(&self, _caller: &Peer) -> Result<Vec<ocpi::types::Cdr>, OcpiError> {
        let mut out = Vec::new();
        for doc in self
            .store
            .docs(crate::session::CDR_KIND)
            .map_err(server_error)?
        {
            match serde_json::from_value(doc.value) {
                Ok(c) => out.push(c),
                Err(e) => tracing::error!(error = %e, "a stored CDR does not parse as OCPI"),
            }
        }
        Ok(out)
    }

    fn token(
        &self,
        _caller: &Peer,
        country_code: &CountryCode,
        party_id: &PartyId,
        uid: &ocpi::types::TokenUid,
        kind: &ocpi::types::TokenType,
    ) -> Result<Option<ocpi::types::Token>, OcpiError> {
        let kind = crate::tokens::type_str(kind);
        Ok(crate::tokens::get(
            &self.store,
            country_code.as_str(),
            party_id.as_str(),
            uid.as_str(),
            &kind,
        )
        .map_err(server_error)?
        .map(|t| t.token))
    }

    fn put_token(&self, caller: &Peer, token: ocpi::types::Token) -> Result<(), OcpiError> {
        self.store
            .update(|tx| crate::tokens::put(tx, &token, caller.id.as_str()))
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
        match self.commands.get() {
            Some(h) => h.handle(caller.clone(), command).await,
            None => Ok(ocpi::types::CommandResponse::new(
                ocpi::types::CommandResponseType::NotSupported,
                0,
            )),
        }
    }

    async fn peer_unregistered(&self, id: &PeerId) {
        tracing::info!(peer = %id, "OCPI peer unregistered");
        self.push.stop(id);
    }
}

/// A configured peer's stable id: the host (and port) of its versions URL, made unique.
pub fn configured_peer_ids(settings: &Settings) -> Vec<(PeerId, String)> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    settings
        .ocpi
        .peers
        .iter()
        .map(|p| {
            let host = p
                .versions_url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("peer")
                .to_owned();
            let n = seen.entry(host.clone()).or_insert(0);
            *n += 1;
            let id = if *n == 1 { host } else { format!("{host}#{n}") };
            (PeerId(id), p.versions_url.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emi3_ids_use_letters_and_digits_and_fit_the_pattern() {
        assert_eq!(emi3_evse_id("nl", "brg", "cs-001", 2), "NL*BRG*ECS001*2");
        let long = emi3_evse_id("NL", "BRG", &"a".repeat(60), 12);
        let outlet = long.split("*E").nth(1).unwrap();
        assert!(outlet.len() <= 30, "{long}");
        assert!(long.ends_with("*12"));
        assert_eq!(emi3_evse_id("NL", "BRG", "---", 1), "NL*BRG*EX*1");
    }

    #[test]
    fn render_keys_round_trip() {
        assert_eq!(render::evse("CS:1", 3), "evse:3:CS:1");
        assert_eq!(render::location("LOC1"), "location:LOC1");
    }
}
