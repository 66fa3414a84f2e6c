//! Sessions module objects: `Session` (owned by us, pushed to the token's eMSP), its status, and the charging
//! preferences an eMSP may PUT on a running session.
//!
//! `kwh` and `total_cost` are decimals (JSON numbers). PATCH of `charging_periods` *appends* on the receiver, PUT
//! replaces. See <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/mod_sessions.asciidoc>.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::cdr::{AuthMethod, CdrToken, ChargingPeriod};
use super::common::Price;
use super::datetime::DateTime;
use super::ids::{ConnectorId, CountryCode, EvseUid, LocationId, PartyId, SessionId};
use super::validate::{Checker, ValidationErrors};

/// State of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// Authorized and connected; energy may or may not flow.
    Active,
    /// Finished; no more changes.
    Completed,
    /// Declared invalid, not billed.
    Invalid,
    /// Not started yet (initial state); may never become active.
    Pending,
    /// Created by a reservation (the prose says "RESERVED", the enum value is `RESERVATION`).
    Reservation,
}

/// A charging session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Our (CPO) country code.
    pub country_code: CountryCode,
    /// Our (CPO) party id.
    pub party_id: PartyId,
    /// Session id, CiString(36).
    pub id: SessionId,
    /// When the session became ACTIVE (while PENDING: when it was created).
    pub start_date_time: DateTime,
    /// When the session ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<DateTime>,
    /// Energy charged (kWh).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub kwh: Decimal,
    /// The token that started the session; its cc/pid is the eMSP to push to.
    pub cdr_token: CdrToken,
    /// How the session was authorized (latest method).
    pub auth_method: AuthMethod,
    /// The eMSP's latest authorization reference, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_reference: Option<String>,
    /// Location id.
    pub location_id: LocationId,
    /// EVSE uid (`#NA` for a reservation without EVSE).
    pub evse_uid: EvseUid,
    /// Connector id (`#NA` for a reservation without EVSE).
    pub connector_id: ConnectorId,
    /// kWh meter id, string(255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_id: Option<String>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Charging periods so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_periods: Option<Vec<ChargingPeriod>>,
    /// Cost so far (absent ≠ free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost: Option<Price>,
    /// Status.
    pub status: SessionStatus,
    /// Last change.
    pub last_updated: DateTime,
}

impl Session {
    /// Checks ids, lengths, currency and periods before we push or serve the session.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("Session");
        c.ci("country_code", self.country_code.as_str(), 2, 2);
        c.ci("party_id", self.party_id.as_str(), 3, 3);
        c.ci("id", self.id.as_str(), 1, 36);
        c.nested("cdr_token", |c| self.cdr_token.check(c));
        c.opt_ci(
            "authorization_reference",
            self.authorization_reference.as_deref(),
            36,
        );
        c.ci("location_id", self.location_id.as_str(), 1, 36);
        c.ci("evse_uid", self.evse_uid.as_str(), 1, 36);
        c.ci("connector_id", self.connector_id.as_str(), 1, 36);
        c.opt_string("meter_id", self.meter_id.as_deref(), 255);
        c.currency("currency", &self.currency);
        for (i, p) in self.charging_periods.iter().flatten().enumerate() {
            c.nested(&format!("charging_periods[{i}]"), |c| p.check(c));
        }
        c.finish()
    }
}

/// What a CPO PATCHes on a Session it pushed: the fields that change. The receiver *appends*
/// `charging_periods` (only the periods it does not have yet belong here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPatch {
    /// Energy charged so far (kWh).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub kwh: Decimal,
    /// Status.
    pub status: SessionStatus,
    /// Last change (required on every PATCH).
    pub last_updated: DateTime,
    /// When the session ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<DateTime>,
    /// Cost so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost: Option<Price>,
    /// Charging periods to append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_periods: Option<Vec<ChargingPeriod>>,
}

/// Smart charging profile type chosen by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProfileType {
    /// Cheapest.
    Cheap,
    /// Fastest.
    Fast,
    /// Greenest.
    Green,
    /// No preference.
    Regular,
}

/// Driver preferences PUT by the eMSP on `{sessions}/{session_id}/charging_preferences`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingPreferences {
    /// Selected profile type.
    pub profile_type: ProfileType,
    /// Expected departure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departure_time: Option<DateTime>,
    /// Requested energy (kWh).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub energy_need: Option<Decimal>,
    /// Discharging allowed (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharge_allowed: Option<bool>,
}

/// Our answer to charging preferences (the envelope's `data` is this bare string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargingPreferencesResponse {
    /// Accepted; we'll try.
    Accepted,
    /// `departure_time` needed.
    DepartureRequired,
    /// `energy_need` needed.
    EnergyNeedRequired,
    /// Cannot be fulfilled.
    NotPossible,
    /// Profile type not supported by the EVSE.
    ProfileTypeNotSupported,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    pub(crate) const SESSION: &str = r#"{
      "country_code": "NL", "party_id": "STK", "id": "101", "start_date_time": "2020-03-09T10:17:09Z",
      "kwh": 0.0, "cdr_token": {"country_code": "NL", "party_id": "TNM", "uid": "123abc", "type": "RFID",
      "contract_id": "NL-TNM-012204-5"}, "auth_method": "WHITELIST", "location_id": "LOC1", "evse_uid": "3256",
      "connector_id": "1", "currency": "EUR", "charging_periods": [{"start_date_time": "2020-03-09T10:17:09Z",
      "dimensions": [{"type": "ENERGY", "volume": 15.120}, {"type": "STATE_OF_CHARGE", "volume": 45}],
      "tariff_id": "12"}], "total_cost": {"excl_vat": 0.10, "incl_vat": 0.12},
      "status": "PENDING", "last_updated": "2020-03-09T10:17:09Z"
    }"#;

    #[test]
    fn session_round_trips_with_numbers() {
        let s: Session = serde_json::from_str(SESSION).expect("parses");
        assert_eq!(s.status, SessionStatus::Pending);
        assert_eq!(s.auth_method, AuthMethod::Whitelist);
        assert!(s.validate().is_ok(), "{:?}", s.validate());
        let json = serde_json::to_string(&s).expect("json");
        assert!(json.contains(r#""kwh":0.0"#), "{json}");
        assert!(json.contains(r#""volume":15.120"#), "{json}");
        assert!(json.contains(r#""total_cost":{"excl_vat":0.10,"incl_vat":0.12}"#));
        assert!(!json.contains("end_date_time"), "absent optionals omitted");
        let back: Session = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, s);
    }

    #[test]
    fn status_uses_reservation_spelling() {
        for v in ["ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"] {
            let s: SessionStatus = serde_json::from_str(&format!("\"{v}\"")).expect(v);
            assert_eq!(serde_json::to_string(&s).expect("json"), format!("\"{v}\""));
        }
        assert!(serde_json::from_str::<SessionStatus>("\"RESERVED\"").is_err());
    }

    #[test]
    fn validate_flags_bad_fields() {
        let mut s: Session = serde_json::from_str(SESSION).expect("parses");
        s.currency = "euro".into();
        s.id = SessionId::new("");
        s.cdr_token.uid = "x".repeat(40).as_str().into();
        let e = s.validate().expect_err("invalid");
        assert!(
            e.has("id") && e.has("currency") && e.has("cdr_token.uid"),
            "{e}"
        );
    }

    #[test]
    fn preferences_round_trip() {
        let p: ChargingPreferences = serde_json::from_str(
            r#"{"profile_type":"FAST","departure_time":"2019-06-23T08:00:00Z","energy_need":15.5}"#,
        )
        .expect("parses");
        assert_eq!(p.energy_need, Some(Decimal::from_str("15.5").expect("dec")));
        let back: ChargingPreferences =
            serde_json::from_value(serde_json::to_value(&p).expect("json")).expect("parses");
        assert_eq!(back, p);
        assert_eq!(
            serde_json::to_string(&ChargingPreferencesResponse::ProfileTypeNotSupported)
                .expect("json"),
            "\"PROFILE_TYPE_NOT_SUPPORTED\""
        );
    }
}
