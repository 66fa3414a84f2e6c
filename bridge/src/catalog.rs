//! The facts the configuration contributes to OCPI: our identity, Locations with their EVSEs and
//! connectors, eMI3 EVSE ids, tariffs, the `CdrLocation` frozen into a session, and when the
//! configuration last changed.
//!
//! - Locations are built on every request from `[[locations]]`, `[[stations]]` and what
//!   stations reported (the published EVSE states in the store); EVSE uids come from the store's
//!   explicit uid table and are never derived again. `last_updated` of every object is a stored
//!   timestamp (the EVSE's last published change, floored by the last configuration change), so
//!   it only moves on real changes and a child change moves its parents.
//! - Connector data comes from the station's keys or its `[[stations.connectors]]` entry for
//!   the OCPP connector behind the OCPI connector (1.6: the EVSE number; 2.0.1: the connector
//!   id within the EVSE).
//! - Everything published is validated against the OCPI 2.2.1 field table first:
//!   [`validate_settings`] checks what the configuration describes (errors name the key),
//!   [`Catalog::publishable_location`] leaves out (logs, counts) what is invalid at run time.
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

use crate::config::{ConfigError, LocationSettings, Settings, StationSettings};
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
                &s.connectors,
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

/// The OCPP connector id behind OCPI connector `connector` of an EVSE, which decides the
/// `[[stations.connectors]]` entry that applies: on 2.0.1 the connector id within the EVSE;
/// on 1.6 (and before the station said which version it speaks) the EVSE number, because 1.6
/// connector N is EVSE N with the single OCPI connector `1`.
fn ocpp_connector(v201: bool, es: &EvseState, connector: u32) -> u32 {
    if v201 { connector } else { es.evse_id }
}

fn from_str_json<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// What the configuration alone contributes to Location objects (no store): the builders
/// of Locations, EVSEs and connectors, shared by the [`Catalog`] and [`validate_settings`].
struct Facts<'a> {
    settings: &'a Settings,
    config_changed_at: DateTime<Utc>,
}

impl Facts<'_> {
    fn country_code(&self) -> &str {
        &self.settings.ocpi.country_code
    }

    fn party_id(&self) -> &str {
        &self.settings.ocpi.party_id
    }

    fn updated(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.max(self.config_changed_at)
    }

    fn connector(
        &self,
        st: &StationSettings,
        loc: &LocationSettings,
        id: u32,
        ocpp_connector: u32,
        updated: DateTime<Utc>,
    ) -> Connector {
        let ids = if st.tariff_ids.is_empty() {
            loc.tariff_id.iter().cloned().collect::<Vec<_>>()
        } else {
            st.tariff_ids.clone()
        };
        let tariff_ids: Vec<TariffId> = ids.into_iter().map(TariffId::new).collect();
        let d = st.connector_data(ocpp_connector);
        Connector {
            id: ConnectorId::new(id.to_string()),
            standard: from_str_json::<ConnectorType>(&d.standard)
                .unwrap_or(ConnectorType::Other(d.standard.clone())),
            format: from_str_json::<ConnectorFormat>(&d.format).unwrap_or(ConnectorFormat::Socket),
            power_type: from_str_json::<PowerType>(&d.power_type).unwrap_or(PowerType::Ac3Phase),
            max_voltage: d.max_voltage,
            max_amperage: d.max_amperage,
            max_electric_power: Some(d.max_electric_power),
            tariff_ids: (!tariff_ids.is_empty()).then_some(tariff_ids),
            terms_and_conditions: None,
            capabilities: None,
            last_updated: updated.into(),
        }
    }

    /// The EVSE object of one published EVSE state.
    fn evse(
        &self,
        st: &StationSettings,
        loc: &LocationSettings,
        es: &EvseState,
        v201: bool,
    ) -> Evse {
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
                .map(|c| self.connector(st, loc, c, ocpp_connector(v201, es, c), updated))
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
}

/// Checks every Location, EVSE and connector the configuration contributes against the OCPI
/// 2.2.1 field table ([`Location::validate`]) before anything is published: each configured
/// location with one sample EVSE per station (one connector per `[[stations.connectors]]`
/// entry, or one with the station's keys). A problem is reported with the configuration key
/// it comes from (`locations[0].city`, `stations[2].connectors[1].standard`, …).
pub fn validate_settings(settings: &Settings) -> Result<(), ConfigError> {
    let facts = Facts {
        settings,
        config_changed_at: Utc::now(),
    };
    for (li, loc) in settings.locations.iter().enumerate() {
        let stations: Vec<(usize, &StationSettings)> = settings
            .stations
            .iter()
            .enumerate()
            .filter(|(_, s)| s.location.eq_ignore_ascii_case(&loc.id))
            .collect();
        let evses = stations
            .iter()
            .map(|(_, st)| {
                let es = EvseState {
                    v: state::SCHEMA_VERSION,
                    station_id: st.id.clone(),
                    evse_id: 1,
                    uid: "SAMPLE-1".into(),
                    status: "AVAILABLE".into(),
                    connectors: (1..=st.connectors.len().max(1) as u32).collect(),
                    last_updated: Utc::now(),
                };
                facts.evse(st, loc, &es, true)
            })
            .collect();
        let location = facts.location_object(loc, Some(evses), Utc::now());
        if let Err(e) = location.validate() {
            let p = &e.problems[0];
            return Err(ConfigError {
                key: config_key(li, loc, &stations, &p.field),
                reason: format!(
                    "not a valid OCPI 2.2.1 Location field `{}`: {}",
                    p.field, p.problem
                ),
            });
        }
    }
    Ok(())
}

/// The configuration key a Location problem path (`evses[1].connectors[0].standard`) comes from.
fn config_key(
    li: usize,
    loc: &LocationSettings,
    stations: &[(usize, &StationSettings)],
    field: &str,
) -> String {
    let index = |s: &str| -> Option<(usize, String)> {
        let (n, rest) = s.split_once(']')?;
        Some((n.parse().ok()?, rest.trim_start_matches('.').to_owned()))
    };
    if let Some(rest) = field.strip_prefix("evses[")
        && let Some((k, rest)) = index(rest)
        && let Some((sj, st)) = stations.get(k)
    {
        if let Some(rest) = rest.strip_prefix("connectors[")
            && let Some((m, what)) = index(rest)
        {
            if let Some(t) = what.strip_prefix("tariff_ids") {
                return if st.tariff_ids.is_empty() {
                    format!("locations[{li}].tariff_id")
                } else {
                    format!("stations[{sj}].tariff_ids{t}")
                };
            }
            let own = |key: &str| {
                !st.connectors.is_empty() && {
                    let c = &st.connectors[m.min(st.connectors.len() - 1)];
                    match key {
                        "standard" => c.standard.is_some(),
                        "format" => c.format.is_some(),
                        "power_type" => c.power_type.is_some(),
                        "max_voltage" => c.max_voltage.is_some(),
                        "max_amperage" => c.max_amperage.is_some(),
                        _ => c.max_electric_power.is_some(),
                    }
                }
            };
            return if own(&what) {
                format!("stations[{sj}].connectors[{m}].{what}")
            } else {
                let station_key = match what.as_str() {
                    "standard" => "connector_standard",
                    "format" => "connector_format",
                    other => other,
                };
                format!("stations[{sj}].{station_key}")
            };
        }
        if rest.starts_with("capabilities") {
            return format!("stations[{sj}].{rest}");
        }
        return format!("stations[{sj}].id");
    }
    let _ = loc;
    match field {
        "country_code" => "ocpi.country_code".into(),
        "party_id" => "ocpi.party_id".into(),
        "operator.name" | "operator" => "ocpi.business_name".into(),
        "coordinates.latitude" => format!("locations[{li}].latitude"),
        "coordinates.longitude" => format!("locations[{li}].longitude"),
        other => format!("locations[{li}].{other}"),
    }
}

/// Counts and logs an object that cannot be published as valid OCPI 2.2.1.
fn invalid(object: &'static str, id: &str, e: &ocpi::types::ValidationErrors) {
    metrics::counter!("bridge_invalid_objects_total", "object" => object).increment(1);
    tracing::error!(object, id, problems = %e, "not a valid OCPI 2.2.1 object; not published");
}

/// A `CiString(36)` id that can go on the wire.
fn valid_uid(uid: &str) -> bool {
    (1..=36).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
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

    fn facts(&self) -> Facts<'_> {
        Facts {
            settings: &self.settings,
            config_changed_at: self.config_changed_at,
        }
    }

    /// `last_updated` of an object whose own change happened at `at`.
    pub fn updated(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.max(self.config_changed_at)
    }

    /// Whether a station last booted with OCPP 2.0.1.
    fn speaks_201(&self, station: &str) -> Result<bool, state::Error> {
        Ok(self
            .store
            .station(station)?
            .and_then(|s| s.ocpp_version)
            .is_some_and(|v| v.starts_with('2')))
    }

    /// One Location, built from configuration and store.
    pub fn build_location(&self, loc: &LocationSettings) -> Result<Location, state::Error> {
        let mut evses = Vec::new();
        let mut updated = self.config_changed_at;
        for st in self.stations_at(&loc.id) {
            let v201 = self.speaks_201(&st.id)?;
            for es in self.store.evse_states(&st.id)? {
                updated = updated.max(es.last_updated);
                evses.push(self.facts().evse(st, loc, &es, v201));
            }
        }
        Ok(self.facts().location_object(loc, Some(evses), updated))
    }

    /// A Location as it may be published (pushed and served on GET): an EVSE that is not
    /// valid OCPI 2.2.1 is left out, a Location whose own fields are not valid is `None`;
    /// either is logged and counted in `bridge_invalid_objects_total{object}`.
    pub fn publishable_location(
        &self,
        loc: &LocationSettings,
    ) -> Result<Option<Location>, state::Error> {
        let mut location = self.build_location(loc)?;
        if let Some(evses) = location.evses.as_mut() {
            evses.retain(|e| match e.validate() {
                Ok(()) => true,
                Err(err) => {
                    invalid("EVSE", e.uid.as_str(), &err);
                    false
                }
            });
        }
        match location.validate_own() {
            Ok(()) => Ok(Some(location)),
            Err(err) => {
                invalid("Location", &loc.id, &err);
                Ok(None)
            }
        }
    }

    /// Every publishable Location in configuration order.
    pub fn all_locations(&self) -> Result<Vec<Location>, state::Error> {
        let mut out = Vec::new();
        for l in &self.settings.locations {
            out.extend(self.publishable_location(l)?);
        }
        Ok(out)
    }

    /// The OCPI CdrLocation of a station's EVSE/connector as configured now: frozen into a
    /// session when it starts. `v201`: the station speaks OCPP 2.0.1 (which connectors entry
    /// applies). Reads no store, so it may be called inside a store transaction. `None` for a station without a configured location.
    pub fn cdr_location(
        &self,
        station: &str,
        evse_id: u32,
        connector_id: u32,
        uid: &str,
        v201: bool,
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
        let evse = self.facts().evse(st, loc, &es, v201);
        let location = self.facts().location_object(loc, None, es.last_updated);
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
        if !valid_uid(&es.uid) || !valid_uid(&loc.id) {
            metrics::counter!("bridge_invalid_objects_total", "object" => "EVSE").increment(1);
            tracing::error!(station, evse = evse_id, uid = %es.uid, "EVSE uid or location id is not a valid OCPI CiString(36); status not published");
            return Ok(None);
        }
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

    fn settings(extra_location: &str, extra_station: &str) -> Settings {
        let text = format!(
            "[[locations]]\nid = \"LOC1\"\naddress = \"Main street 1\"\ncity = \"Utrecht\"\n\
             country = \"NLD\"\nlatitude = \"52.090737\"\nlongitude = \"5.121420\"\n\
             time_zone = \"Europe/Amsterdam\"\n{extra_location}\n\
             [[stations]]\nid = \"CS1\"\nlocation = \"LOC1\"\n\
             [[stations]]\nid = \"DC1\"\nlocation = \"LOC1\"\n{extra_station}\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn config_that_cannot_be_valid_ocpi_is_reported_with_its_key() {
        validate_settings(&settings("", "")).expect("valid");
        let e = validate_settings(&settings(&format!("name = \"{}\"", "x".repeat(256)), ""))
            .unwrap_err();
        assert_eq!(e.key, "locations[0].name", "{e}");
        let e = validate_settings(&settings("postal_code = \"12345678901\"", "")).unwrap_err();
        assert_eq!(e.key, "locations[0].postal_code", "{e}");
        let e = validate_settings(&settings(
            "",
            &format!("tariff_ids = [\"{}\"]", "T".repeat(37)),
        ))
        .unwrap_err();
        assert_eq!(e.key, "stations[1].tariff_ids[0]", "{e}");
        let e = validate_settings(&settings(
            "",
            "[[stations.connectors]]\nstandard = \"CHADEMO\"\n[[stations.connectors]]\nstandard = \"MCS\"",
        ))
        .unwrap_err();
        assert_eq!(e.key, "stations[1].connectors[1].standard", "{e}");
        let e = validate_settings(&settings("", "connector_standard = \"SAE_J3400\"")).unwrap_err();
        assert_eq!(e.key, "stations[1].connector_standard", "{e}");
    }

    #[test]
    fn ocpp_connectors_pick_their_connectors_entry() {
        let s = settings(
            "",
            "[[stations.connectors]]\nstandard = \"IEC_62196_T2_COMBO\"\npower_type = \"DC\"\n\
             [[stations.connectors]]\nstandard = \"CHADEMO\"\npower_type = \"DC\"",
        );
        let facts = Facts {
            settings: &s,
            config_changed_at: Utc::now(),
        };
        let (st, loc) = (&s.stations[1], &s.locations[0]);
        let es = |evse_id: u32, connectors: Vec<u32>| EvseState {
            v: state::SCHEMA_VERSION,
            station_id: "DC1".into(),
            evse_id,
            uid: format!("DC1-{evse_id}"),
            status: "AVAILABLE".into(),
            connectors,
            last_updated: Utc::now(),
        };
        let standards = |e: &Evse| -> Vec<String> {
            e.connectors
                .iter()
                .map(|c| format!("{}:{}", c.id.as_str(), c.standard.as_str()))
                .collect()
        };
        // 1.6: connector N is EVSE N with OCPI connector 1.
        assert_eq!(
            standards(&facts.evse(st, loc, &es(2, vec![1]), false)),
            ["1:CHADEMO"]
        );
        assert_eq!(
            standards(&facts.evse(st, loc, &es(1, vec![1]), false)),
            ["1:IEC_62196_T2_COMBO"]
        );
        // 2.0.1: connector N of an EVSE.
        assert_eq!(
            standards(&facts.evse(st, loc, &es(1, vec![1, 2]), true)),
            ["1:IEC_62196_T2_COMBO", "2:CHADEMO"]
        );
        // Beyond the table: the station's keys.
        assert_eq!(
            standards(&facts.evse(st, loc, &es(3, vec![1]), false)),
            ["1:IEC_62196_T2"]
        );
        let dc = &facts.evse(st, loc, &es(2, vec![1]), false).connectors[0];
        assert_eq!(dc.power_type, PowerType::Dc);
        assert_eq!(dc.max_electric_power, Some(230 * 32));
    }
}
