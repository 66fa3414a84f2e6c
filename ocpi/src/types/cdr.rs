//! CDRs module objects: `Cdr` (immutable once sent; corrections by credit CDR), `CdrLocation` (a frozen copy of the
//! Location/EVSE/Connector at session start), `CdrToken`, `ChargingPeriod` with its dimensions, `SignedData`, and
//! `AuthMethod`. Sessions reuse `CdrToken`, `AuthMethod` and `ChargingPeriod`.
//!
//! Units: ENERGY volumes in kWh (not Wh), TIME/PARKING_TIME/RESERVATION_TIME and `total_*_time` in hours, power in
//! kW, current in A. See <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/mod_cdrs.asciidoc>.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::common::Price;
use super::datetime::DateTime;
use super::ids::{
    CdrId, ConnectorId, CountryCode, EvseId, EvseUid, LocationId, PartyId, SessionId, TariffId,
    TokenUid, open_enum,
};
use super::location::{
    Connector, ConnectorFormat, ConnectorType, Evse, GeoLocation, Location, PowerType,
};
use super::tariff::Tariff;
use super::token::{Token, TokenType};
use super::validate::{Checker, ValidationErrors};

/// How a session was authorized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMethod {
    /// Real-time authorization request to the eMSP.
    AuthRequest,
    /// StartSession/ReserveNow command.
    Command,
    /// Local whitelist, no request to the eMSP.
    Whitelist,
}

/// The token part of a Session/CDR; its cc/pid is the eMSP that receives the Session/CDR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrToken {
    /// Owner eMSP's country code.
    pub country_code: CountryCode,
    /// Owner eMSP's party id.
    pub party_id: PartyId,
    /// Token uid, CiString(36).
    pub uid: TokenUid,
    /// Token type.
    #[serde(rename = "type")]
    pub kind: TokenType,
    /// Contract id, CiString(36).
    pub contract_id: String,
}

impl CdrToken {
    pub(crate) fn check(&self, c: &mut Checker) {
        c.ci("country_code", self.country_code.as_str(), 2, 2);
        c.ci("party_id", self.party_id.as_str(), 3, 3);
        c.ci("uid", self.uid.as_str(), 1, 36);
        if self.kind.as_str().is_empty() {
            c.bad("type", "missing");
        }
        c.ci("contract_id", &self.contract_id, 1, 36);
    }
}

impl From<&Token> for CdrToken {
    fn from(t: &Token) -> Self {
        Self {
            country_code: t.country_code.clone(),
            party_id: t.party_id.clone(),
            uid: t.uid.clone(),
            kind: t.kind.clone(),
            contract_id: t.contract_id.clone(),
        }
    }
}

open_enum!(
    /// What a [`CdrDimension`] measures. `CURRENT`, `ENERGY_EXPORT`, `ENERGY_IMPORT`, `POWER` and `STATE_OF_CHARGE`
    /// are for Sessions only.
    CdrDimensionType {
        /// Average current (A); Session only.
        Current = "CURRENT",
        /// Energy (kWh).
        Energy = "ENERGY",
        /// Energy fed back to the grid (kWh); Session only.
        EnergyExport = "ENERGY_EXPORT",
        /// Energy charged (kWh); Session only.
        EnergyImport = "ENERGY_IMPORT",
        /// Sum of maximum current over all phases (A).
        MaxCurrent = "MAX_CURRENT",
        /// Sum of minimum current over all phases (A).
        MinCurrent = "MIN_CURRENT",
        /// Maximum power (kW).
        MaxPower = "MAX_POWER",
        /// Minimum power (kW).
        MinPower = "MIN_POWER",
        /// Time the EV is not requesting power (h).
        ParkingTime = "PARKING_TIME",
        /// Average power (kW); Session only.
        Power = "POWER",
        /// Time reserved and not yet in use (h).
        ReservationTime = "RESERVATION_TIME",
        /// State of charge (%); Session only.
        StateOfCharge = "STATE_OF_CHARGE",
        /// Charging time (h).
        Time = "TIME",
    }
);

impl CdrDimensionType {
    /// True for the dimensions the spec allows in Sessions only.
    pub fn is_session_only(&self) -> bool {
        matches!(
            self,
            Self::Current
                | Self::EnergyExport
                | Self::EnergyImport
                | Self::Power
                | Self::StateOfCharge
        )
    }
}

/// One measured value of a charging period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrDimension {
    /// What is measured.
    #[serde(rename = "type")]
    pub kind: CdrDimensionType,
    /// Value in the dimension's unit.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub volume: Decimal,
}

/// A period of a session; it ends where the next one starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingPeriod {
    /// Start of the period.
    pub start_date_time: DateTime,
    /// Values of this period (non-empty).
    pub dimensions: Vec<CdrDimension>,
    /// Tariff relevant in this period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tariff_id: Option<TariffId>,
}

impl ChargingPeriod {
    pub(crate) fn check(&self, c: &mut Checker) {
        if self.dimensions.is_empty() {
            c.bad("dimensions", "missing (at least one dimension required)");
        }
        c.opt_ci(
            "tariff_id",
            self.tariff_id.as_ref().map(TariffId::as_str),
            36,
        );
    }
}

/// The Location/EVSE/Connector of a CDR, as they were at session start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrLocation {
    /// Location id.
    pub id: LocationId,
    /// Display name, string(255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Street and number, string(45) here (Location allows 255).
    pub address: String,
    /// City, string(45).
    pub city: String,
    /// Postal code, string(10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// State, string(20) here (Location allows 45).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-3 country.
    pub country: String,
    /// Coordinates.
    pub coordinates: GeoLocation,
    /// EVSE uid (`#NA` for a reservation that never became a session).
    pub evse_uid: EvseUid,
    /// eMI3 EVSE id (`#NA` likewise).
    pub evse_id: EvseId,
    /// Connector id (`#NA` likewise).
    pub connector_id: ConnectorId,
    /// Connector standard.
    pub connector_standard: ConnectorType,
    /// Connector format.
    pub connector_format: ConnectorFormat,
    /// Connector power type.
    pub connector_power_type: PowerType,
}

impl CdrLocation {
    /// Freezes a Location/EVSE/Connector into a CdrLocation, truncating `address`/`city` to 45, `postal_code` to 10
    /// and `state` to 20 bytes (at char boundaries) as CdrLocation still has the pre-errata limits. An EVSE without
    /// `evse_id` gets its `uid` as `evse_id`.
    pub fn from_location(location: &Location, evse: &Evse, connector: &Connector) -> Self {
        Self {
            id: location.id.clone(),
            name: location.name.as_deref().map(|n| truncate(n, 255)),
            address: truncate(&location.address, 45),
            city: truncate(&location.city, 45),
            postal_code: location.postal_code.as_deref().map(|p| truncate(p, 10)),
            state: location.state.as_deref().map(|s| truncate(s, 20)),
            country: location.country.clone(),
            coordinates: location.coordinates.clone(),
            evse_uid: evse.uid.clone(),
            evse_id: evse
                .evse_id
                .clone()
                .unwrap_or_else(|| EvseId::new(evse.uid.as_str())),
            connector_id: connector.id.clone(),
            connector_standard: connector.standard.clone(),
            connector_format: connector.format,
            connector_power_type: connector.power_type,
        }
    }

    fn check(&self, c: &mut Checker) {
        c.ci("id", self.id.as_str(), 1, 36);
        c.opt_string("name", self.name.as_deref(), 255);
        c.string("address", &self.address, 45);
        c.string("city", &self.city, 45);
        c.opt_string("postal_code", self.postal_code.as_deref(), 10);
        c.opt_string("state", self.state.as_deref(), 20);
        c.string("country", &self.country, 3);
        c.ci("evse_uid", self.evse_uid.as_str(), 1, 36);
        c.ci("evse_id", self.evse_id.as_str(), 1, 48);
        c.ci("connector_id", self.connector_id.as_str(), 1, 36);
    }
}

/// Longest prefix of `s` of at most `max` bytes ending at a char boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// One signed meter value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedValue {
    /// `Start`, `End`, `Intermediate`…, CiString(32).
    pub nature: String,
    /// Unencoded data, string(5000).
    pub plain_data: String,
    /// Signed data, base64, string(5000).
    pub signed_data: String,
}

/// Signed (calibration-law) meter data of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedData {
    /// Encoding name, e.g. `OCMF`, CiString(36).
    pub encoding_method: String,
    /// Encoding version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_method_version: Option<i64>,
    /// Public key, base64, string(512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Signed values (non-empty).
    pub signed_values: Vec<SignedValue>,
    /// URL for the driver to check the data, string(512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl SignedData {
    fn check(&self, c: &mut Checker) {
        c.ci("encoding_method", &self.encoding_method, 1, 36);
        c.opt_string("public_key", self.public_key.as_deref(), 512);
        if self.signed_values.is_empty() {
            c.bad("signed_values", "missing (at least one value required)");
        }
        for (i, v) in self.signed_values.iter().enumerate() {
            c.nested(&format!("signed_values[{i}]"), |c| {
                c.ci("nature", &v.nature, 1, 32);
                c.string("plain_data", &v.plain_data, 5000);
                c.string("signed_data", &v.signed_data, 5000);
            });
        }
        c.opt_string("url", self.url.as_deref(), 512);
    }
}

/// A Charge Detail Record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cdr {
    /// Our (CPO) country code.
    pub country_code: CountryCode,
    /// Our (CPO) party id.
    pub party_id: PartyId,
    /// CDR id (≤ 36; ≤ 39 for credit CDRs).
    pub id: CdrId,
    /// Session (or reservation) start.
    pub start_date_time: DateTime,
    /// Session end.
    pub end_date_time: DateTime,
    /// The session this CDR is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Token used.
    pub cdr_token: CdrToken,
    /// Last authorization method used.
    pub auth_method: AuthMethod,
    /// The eMSP's latest authorization reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_reference: Option<String>,
    /// Where the session took place.
    pub cdr_location: CdrLocation,
    /// Meter id, string(255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_id: Option<String>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Relevant tariffs as they were at session start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tariffs: Option<Vec<Tariff>>,
    /// Charging periods (non-empty).
    pub charging_periods: Vec<ChargingPeriod>,
    /// Signed meter data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_data: Option<SignedData>,
    /// Total cost.
    pub total_cost: Price,
    /// Fixed costs (start fees…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_fixed_cost: Option<Price>,
    /// Total energy (kWh).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub total_energy: Decimal,
    /// Energy cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_energy_cost: Option<Price>,
    /// Total duration (h), charging and not charging.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub total_time: Decimal,
    /// Charging-time cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_time_cost: Option<Price>,
    /// Time not charging (h).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub total_parking_time: Option<Decimal>,
    /// Parking cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_parking_cost: Option<Price>,
    /// Reservation cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_reservation_cost: Option<Price>,
    /// Remark, string(255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Invoice reference, CiString(39).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_reference_id: Option<String>,
    /// Credit CDR flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<bool>,
    /// Id of the CDR this credit CDR cancels, CiString(39).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_reference_id: Option<String>,
    /// Home charging compensation flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_charging_compensation: Option<bool>,
    /// Creation time.
    pub last_updated: DateTime,
}

impl Cdr {
    /// Checks ids and lengths (id ≤ 36, or ≤ 39 for credit CDRs), CdrLocation limits, non-empty charging periods,
    /// signed data, credit consistency and `end_date_time >= start_date_time`.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("CDR");
        let credit = self.credit == Some(true);
        c.ci("country_code", self.country_code.as_str(), 2, 2);
        c.ci("party_id", self.party_id.as_str(), 3, 3);
        c.ci("id", self.id.as_str(), 1, if credit { 39 } else { 36 });
        if self.end_date_time < self.start_date_time {
            c.bad("end_date_time", "is before start_date_time");
        }
        c.opt_ci(
            "session_id",
            self.session_id.as_ref().map(SessionId::as_str),
            36,
        );
        c.nested("cdr_token", |c| self.cdr_token.check(c));
        c.opt_ci(
            "authorization_reference",
            self.authorization_reference.as_deref(),
            36,
        );
        c.nested("cdr_location", |c| self.cdr_location.check(c));
        c.opt_string("meter_id", self.meter_id.as_deref(), 255);
        c.currency("currency", &self.currency);
        if self.charging_periods.is_empty() {
            c.bad("charging_periods", "missing (at least one period required)");
        }
        for (i, p) in self.charging_periods.iter().enumerate() {
            c.nested(&format!("charging_periods[{i}]"), |c| p.check(c));
        }
        if let Some(s) = &self.signed_data {
            c.nested("signed_data", |c| s.check(c));
        }
        c.opt_string("remark", self.remark.as_deref(), 255);
        c.opt_ci(
            "invoice_reference_id",
            self.invoice_reference_id.as_deref(),
            39,
        );
        c.opt_ci(
            "credit_reference_id",
            self.credit_reference_id.as_deref(),
            39,
        );
        if credit && self.credit_reference_id.is_none() {
            c.bad("credit_reference_id", "required for a credit CDR");
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    pub(crate) const CDR: &str = r#"{
      "country_code": "BE", "party_id": "BEC", "id": "12345", "start_date_time": "2015-06-29T21:39:09Z",
      "end_date_time": "2015-06-29T23:37:32Z", "session_id": "S1",
      "cdr_token": {"country_code": "DE", "party_id": "TNM", "uid": "012345678", "type": "RFID",
        "contract_id": "DE8ACC12E46L89"},
      "auth_method": "WHITELIST", "authorization_reference": "ref",
      "cdr_location": {"id": "LOC1", "name": "Gent Zuid", "address": "F.Rooseveltlaan 3A", "city": "Gent",
        "postal_code": "9000", "country": "BEL", "coordinates": {"latitude": "3.729944", "longitude": "51.047599"},
        "evse_uid": "3256", "evse_id": "BE*BEC*E041503003", "connector_id": "1",
        "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET", "connector_power_type": "AC_1_PHASE"},
      "meter_id": "M-1", "currency": "EUR",
      "tariffs": [{"country_code": "BE", "party_id": "BEC", "id": "12", "currency": "EUR",
        "elements": [{"price_components": [{"type": "TIME", "price": 2.00, "vat": 10.00, "step_size": 300}]}],
        "last_updated": "2015-02-02T14:15:01Z"}],
      "charging_periods": [{"start_date_time": "2015-06-29T21:39:09Z",
        "dimensions": [{"type": "TIME", "volume": 1.973}, {"type": "MAX_POWER", "volume": 22}], "tariff_id": "12"}],
      "signed_data": {"encoding_method": "OCMF", "encoding_method_version": 1, "public_key": "AAAA",
        "signed_values": [{"nature": "Start", "plain_data": "OCMF|{}", "signed_data": "c2ln"}],
        "url": "https://check.example/1"},
      "total_cost": {"excl_vat": 4.00, "incl_vat": 4.40},
      "total_fixed_cost": {"excl_vat": 0.50},
      "total_energy": 15.342, "total_time": 1.973, "total_time_cost": {"excl_vat": 4.00, "incl_vat": 4.40},
      "total_parking_time": 0.25, "total_parking_cost": {"excl_vat": 0},
      "total_reservation_cost": {"excl_vat": 0}, "remark": "ok", "invoice_reference_id": "INV-1",
      "credit": false, "home_charging_compensation": false,
      "last_updated": "2015-06-29T22:01:13Z"
    }"#;

    #[test]
    fn cdr_round_trips_with_numbers_and_validates() {
        let cdr: Cdr = serde_json::from_str(CDR).expect("parses");
        assert_eq!(cdr.total_energy, Decimal::from_str("15.342").expect("dec"));
        assert_eq!(
            cdr.charging_periods[0].dimensions[0].kind,
            CdrDimensionType::Time
        );
        assert!(cdr.validate().is_ok(), "{:?}", cdr.validate());
        let json = serde_json::to_string(&cdr).expect("json");
        assert!(json.contains(r#""total_energy":15.342"#), "{json}");
        assert!(json.contains(r#""total_parking_time":0.25"#), "{json}");
        assert!(json.contains(r#""volume":1.973"#), "{json}");
        assert!(json.contains(r#""price":2.00"#), "{json}");
        let back: Cdr = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, cdr);
    }

    #[test]
    fn dimension_types_round_trip_and_unknown_is_kept() {
        let all = [
            "CURRENT",
            "ENERGY",
            "ENERGY_EXPORT",
            "ENERGY_IMPORT",
            "MAX_CURRENT",
            "MIN_CURRENT",
            "MAX_POWER",
            "MIN_POWER",
            "PARKING_TIME",
            "POWER",
            "RESERVATION_TIME",
            "STATE_OF_CHARGE",
            "TIME",
        ];
        for v in all {
            let d = CdrDimensionType::from(v);
            assert!(!matches!(d, CdrDimensionType::Other(_)), "{v}");
            assert_eq!(serde_json::to_string(&d).expect("json"), format!("\"{v}\""));
        }
        assert!(CdrDimensionType::StateOfCharge.is_session_only());
        assert!(!CdrDimensionType::Energy.is_session_only());
        assert_eq!(
            CdrDimensionType::from("FLAT"),
            CdrDimensionType::Other("FLAT".into())
        );
        for v in ["AUTH_REQUEST", "COMMAND", "WHITELIST"] {
            let a: AuthMethod = serde_json::from_str(&format!("\"{v}\"")).expect(v);
            assert_eq!(serde_json::to_string(&a).expect("json"), format!("\"{v}\""));
        }
    }

    #[test]
    fn validate_checks_credit_ids_and_periods() {
        let mut cdr: Cdr = serde_json::from_str(CDR).expect("parses");
        cdr.id = CdrId::new("x".repeat(38));
        cdr.charging_periods.clear();
        cdr.cdr_location.state = Some("s".repeat(21));
        let e = cdr.validate().expect_err("invalid");
        assert!(
            e.has("id") && e.has("charging_periods") && e.has("cdr_location.state"),
            "{e}"
        );
        cdr.credit = Some(true);
        let e = cdr.validate().expect_err("invalid");
        assert!(!e.has("id"), "39 allowed for credit CDRs: {e}");
        assert!(e.has("credit_reference_id"), "{e}");
    }

    #[test]
    fn cdr_location_truncates_to_the_old_limits() {
        let loc: Location = serde_json::from_value(serde_json::json!({
            "country_code": "NL", "party_id": "CPO", "id": "L1", "publish": true,
            "address": "ä".repeat(30), "city": "Utrecht", "state": "s".repeat(40), "country": "NLD",
            "coordinates": {"latitude": "52.09073", "longitude": "5.12142"}, "time_zone": "Europe/Amsterdam",
            "evses": [{"uid": "E1", "status": "AVAILABLE", "last_updated": "2020-01-01T00:00:00Z",
              "connectors": [{"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
                "max_voltage": 230, "max_amperage": 16, "last_updated": "2020-01-01T00:00:00Z"}]}],
            "last_updated": "2020-01-01T00:00:00Z"
        }))
        .expect("location");
        let evse = loc.evse("E1").expect("evse");
        let cl = CdrLocation::from_location(&loc, evse, &evse.connectors[0]);
        assert_eq!(cl.address.len(), 44, "45 bytes would split a 2-byte char");
        assert_eq!(cl.state.as_deref().map(str::len), Some(20));
        assert_eq!(cl.evse_id.as_str(), "E1");
        assert_eq!(cl.connector_power_type, PowerType::Ac3Phase);
    }
}
