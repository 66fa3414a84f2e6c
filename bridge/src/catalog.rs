//! The facts the configuration contributes to OCPI: our identity, Locations with their EVSEs and
//! connectors, eMI3 EVSE ids, tariffs, the `CdrLocation` frozen into a session, and when the
//! configuration last changed.
//!
//! - Locations are built on every request from `[[locations]]`, `[[stations]]` and what
//!   stations reported (the published EVSE states in the store); EVSE uids come from the store's
//!   explicit uid table and are never derived again. `last_updated` of every object is a stored
//!   timestamp (the EVSE's last published change, floored by the last configuration change), so
//!   it only moves on real changes and a child change moves its parents.
//! - Tariffs come from the configuration, validated at start-up.
//! - A fingerprint of everything the configuration contributes is kept in the store: when it
//!   changes, `config_changed_at` moves and every peer gets the Locations and Tariffs again.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ocpi::types::{
    BusinessDetails, Capability, CdrLocation, Connector, ConnectorFormat, ConnectorId,
    ConnectorType, CountryCode, Evse, EvseId, EvseStatus, EvseUid, GeoLocation, Location,
    LocationId, PartyId, PowerType, Tariff, TariffId,
};
use state::{EvseState, Store};

use crate::config::{LocationSettings, Settings, StationSettings};
use crate::evse;

/// The configuration's OCPI facts over the store's published EVSE states. Cheap to share.
#[derive(Debug)]
pub struct Catalog {
    settings: Arc<Settings>,
    store: Store,
    tariffs: Vec<Tariff>,
    /// Floor for every `last_updated`: when the configuration last changed.
    config_changed_at: DateTime<Utc>,
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
                &s.capabilities,
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

pub use crate::config::emi3_evse_id;

fn phases(power_type: &str) -> u32 {
    match power_type {
        "AC_3_PHASE" => 3,
        "AC_2_PHASE" | "AC_2_PHASE_SPLIT" => 2,
        _ => 1,
    }
}

/// The capabilities of a station's EVSEs: its `capabilities` or the default list.
fn capabilities(st: &StationSettings) -> Vec<Capability> {
    match &st.capabilities {
        Some(list) => list.iter().map(|c| capability(c)).collect(),
        None => crate::config::DEFAULT_CAPABILITIES
            .iter()
            .map(|c| capability(c))
            .collect(),
    }
}

fn capability(name: &str) -> Capability {
    from_str_json(name).unwrap_or_else(|| Capability::Other(name.to_owned()))
}

/// The label printed on an EVSE, `{station} #{evse}`, within OCPI's string(16): the station
/// part is cut (at a character boundary) so the whole fits 16 bytes.
pub fn physical_reference(station: &str, evse_id: u32) -> String {
    let suffix = format!(" #{evse_id}");
    let room = 16usize.saturating_sub(suffix.len());
    let mut part = String::new();
    for c in station.chars() {
        if part.len() + c.len_utf8() > room {
            break;
        }
        part.push(c);
    }
    format!("{part}{suffix}")
}

fn from_str_json<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

impl Catalog {
    /// The catalog of `settings`; records a configuration change (and its time) in the store.
    /// Returns whether the configuration changed since the last start.
    pub fn new(settings: Arc<Settings>, store: Store) -> anyhow::Result<(Self, bool)> {
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
        let catalog = Catalog {
            settings,
            store,
            tariffs,
            config_changed_at,
        };
        Ok((catalog, changed))
    }

    /// The daemon's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Our OCPI country code.
    pub fn country_code(&self) -> &str {
        &self.settings.ocpi.country_code
    }

    /// Our OCPI party id.
    pub fn party_id(&self) -> &str {
        &self.settings.ocpi.party_id
    }

    /// Our OCPI identity for the `ocpi` crate.
    pub fn ocpi_settings(&self) -> ocpi::Settings {
        use secrecy::ExposeSecret;
        let o = &self.settings.ocpi;
        let mut s = ocpi::Settings::new(
            o.public_url.clone(),
            &o.country_code,
            &o.party_id,
            &o.business_name,
        );
        s.token_a = o
            .token_a
            .as_ref()
            .map(|t| ocpi::types::AuthToken::new(t.expose_secret()));
        s.versions = o.ocpi_versions();
        s
    }

    /// The configured tariffs.
    pub fn tariffs(&self) -> &[Tariff] {
        &self.tariffs
    }

    /// One configured tariff.
    pub fn tariff(&self, id: &str) -> Option<&Tariff> {
        self.tariffs.iter().find(|t| t.id.as_str() == id)
    }

    /// The tariff that applies to a station's connectors: the station's first `tariff_ids`
    /// entry, else its location's `tariff_id`.
    pub fn tariff_for(&self, station: &str) -> Option<&Tariff> {
        let st = self.settings.station(station)?;
        let id = st
            .tariff_ids
            .first()
            .cloned()
            .or_else(|| self.location_of(station)?.tariff_id.clone())?;
        self.tariff(&id)
    }

    /// The configuration of a station.
    pub fn station(&self, id: &str) -> Option<&StationSettings> {
        self.settings.station(id)
    }

    /// The configured stations at a location.
    pub fn stations_at(&self, location: &str) -> impl Iterator<Item = &StationSettings> {
        self.settings
            .stations
            .iter()
            .filter(move |s| s.location.eq_ignore_ascii_case(location))
    }

    /// The configured locations.
    pub fn locations(&self) -> &[LocationSettings] {
        &self.settings.locations
    }

    /// A configured location by id (case-insensitive).
    pub fn location(&self, id: &str) -> Option<&LocationSettings> {
        self.settings
            .locations
            .iter()
            .find(|l| l.id.eq_ignore_ascii_case(id))
    }

    /// The location a station stands at.
    pub fn location_of(&self, station: &str) -> Option<&LocationSettings> {
        self.location(&self.station(station)?.location)
    }

    /// `last_updated` of an object whose own change happened at `at`.
    pub fn updated(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.max(self.config_changed_at)
    }

    fn connector(
        &self,
        st: &StationSettings,
        loc: &LocationSettings,
        id: u32,
        updated: DateTime<Utc>,
    ) -> Connector {
        let ids = if st.tariff_ids.is_empty() {
            loc.tariff_id.iter().cloned().collect::<Vec<_>>()
        } else {
            st.tariff_ids.clone()
        };
        let tariff_ids: Vec<TariffId> = ids.into_iter().map(TariffId::new).collect();
        Connector {
            id: ConnectorId::new(id.to_string()),
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
            capabilities: None,
            last_updated: updated.into(),
        }
    }

    /// The EVSE object of one published EVSE state.
    fn evse(&self, st: &StationSettings, loc: &LocationSettings, es: &EvseState) -> Evse {
        let updated = self.updated(es.last_updated);
        let mut connectors: Vec<u32> = es.connectors.clone();
        if connectors.is_empty() {
            connectors.push(1);
        }
        Evse {
            uid: EvseUid::new(es.uid.clone()),
            evse_id: Some(EvseId::new(emi3_evse_id(
                self.country_code(),
                self.party_id(),
                &st.id,
                es.evse_id,
            ))),
            status: evse::parse_status(&es.status),
            status_schedule: None,
            capabilities: Some(capabilities(st)),
            connectors: connectors
                .into_iter()
                .map(|c| self.connector(st, loc, c, updated))
                .collect(),
            floor_level: None,
            coordinates: None,
            physical_reference: Some(physical_reference(&st.id, es.evse_id)),
            directions: None,
            parking_restrictions: None,
            images: None,
            parking: None,
            accepted_service_providers: None,
            last_updated: updated.into(),
        }
    }

    /// One Location, built from configuration and store.
    pub fn build_location(&self, loc: &LocationSettings) -> Result<Location, state::Error> {
        let mut evses = Vec::new();
        let mut updated = self.config_changed_at;
        for st in self.stations_at(&loc.id) {
            for es in self.store.evse_states(&st.id)? {
                updated = updated.max(es.last_updated);
                evses.push(self.evse(st, loc, &es));
            }
        }
        Ok(self.location_object(loc, Some(evses), updated))
    }

    /// Every Location in configuration order.
    pub fn all_locations(&self) -> Result<Vec<Location>, state::Error> {
        self.settings
            .locations
            .iter()
            .map(|l| self.build_location(l))
            .collect()
    }

    /// The Location object of a configured location with the given EVSEs (no store access).
    fn location_object(
        &self,
        loc: &LocationSettings,
        evses: Option<Vec<Evse>>,
        updated: DateTime<Utc>,
    ) -> Location {
        Location {
            country_code: CountryCode::new(self.country_code().to_owned()),
            party_id: PartyId::new(self.party_id().to_owned()),
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
            operator: Some(BusinessDetails {
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
            parking_places: None,
            help_phone: None,
            last_updated: updated.into(),
        }
    }

    /// The OCPI CdrLocation of a station's EVSE/connector as configured now: frozen into a
    /// session when it starts. `None` for a station without a configured location.
    pub fn cdr_location(
        &self,
        station: &str,
        evse_id: u32,
        connector_id: u32,
        uid: &str,
    ) -> Option<CdrLocation> {
        let (st, loc) = (self.station(station)?, self.location_of(station)?);
        let es = EvseState {
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
        Some(CdrLocation::from_location(
            &location,
            &evse,
            &evse.connectors[0],
        ))
    }

    /// The published status of one EVSE for a PATCH: `(location id, uid, status,
    /// last_updated)`, or `None` when the EVSE or its location no longer exists.
    pub fn evse_status(
        &self,
        station: &str,
        evse_id: u32,
    ) -> Result<Option<(LocationId, EvseUid, EvseStatus, ocpi::types::DateTime)>, state::Error>
    {
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
        Ok(Some((
            LocationId::new(loc.id.clone()),
            EvseUid::new(es.uid),
            evse::parse_status(&es.status),
            self.updated(es.last_updated).into(),
        )))
    }
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
    fn physical_references_fit_sixteen_bytes() {
        assert_eq!(physical_reference("CS001", 2), "CS001 #2");
        assert_eq!(physical_reference("CS/01", 1), "CS/01 #1");
        let long = physical_reference("Parkhaus-Ost-Ebene-3", 12);
        assert_eq!(long, "Parkhaus-Ost #12");
        assert_eq!(long.len(), 16);
        // Never cut inside a multi-byte character.
        let umlaut = physical_reference("ÄÄÄÄÄÄÄÄÄ", 1);
        assert!(umlaut.len() <= 16, "{umlaut}");
        assert_eq!(umlaut, "ÄÄÄÄÄÄ #1");
    }

    #[test]
    fn default_capabilities_and_a_station_list_replaces_them() {
        let mut st: StationSettings = toml::from_str("id = \"CS1\"\nlocation = \"L\"").unwrap();
        let names =
            |st: &StationSettings| serde_json::to_value(capabilities(st)).unwrap().to_string();
        assert_eq!(
            names(&st),
            r#"["REMOTE_START_STOP_CAPABLE","UNLOCK_CAPABLE","RESERVABLE","RFID_READER"]"#
        );
        st.capabilities = Some(vec![
            "RFID_READER".into(),
            "CHARGING_PROFILE_CAPABLE".into(),
        ]);
        assert_eq!(names(&st), r#"["RFID_READER","CHARGING_PROFILE_CAPABLE"]"#);
        st.capabilities = Some(vec![]);
        assert_eq!(names(&st), "[]");
    }
}
