//! ChargingProfiles module objects (smart charging, CPO as Receiver): the [`SetChargingProfile`] an eMSP/SCSP PUTs
//! to `{chargingprofiles}/{session_id}`, our synchronous [`ChargingProfileResponse`] (the envelope's `data`), the
//! three asynchronous results we POST bare to the request's `response_url` ([`ChargingProfileResult`],
//! [`ActiveChargingProfileResult`], [`ClearProfileResult`]) and the [`ActiveChargingProfile`] we PUT to the
//! sender's interface when the station changes it on its own.
//!
//! Numbers are exact (`rust_decimal`, JSON numbers on the wire); `limit` and `min_charging_rate` accept at most one
//! fraction digit (checked by [`SetChargingProfile::validate`]).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::datetime::DateTime;
use super::validate::{Checker, ValidationErrors};

/// Unit of a charging profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChargingRateUnit {
    /// Watts: the total allowed power.
    W,
    /// Amperes per phase.
    A,
}

/// One period of a [`ChargingProfile`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingProfilePeriod {
    /// Seconds from the start of the profile; also the end of the previous period.
    pub start_period: u32,
    /// Maximum rate in the profile's unit (at most one fraction digit).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub limit: Decimal,
}

/// Limits over time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingProfile {
    /// Start of an absolute profile; absent: relative to the start of charging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<DateTime>,
    /// Duration in seconds; absent: the last period goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    /// Unit of the limits.
    pub charging_rate_unit: ChargingRateUnit,
    /// Minimum rate the EV supports (at most one fraction digit).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub min_charging_rate: Option<Decimal>,
    /// The periods, by `start_period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile_period: Option<Vec<ChargingProfilePeriod>>,
}

/// The profile a station calculated (all inputs combined), relative to `start_date_time`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveChargingProfile {
    /// When the station calculated it.
    pub start_date_time: DateTime,
    /// The schedule.
    pub charging_profile: ChargingProfile,
}

/// The body of `PUT {chargingprofiles}/{session_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetChargingProfile {
    /// The profile to set.
    pub charging_profile: ChargingProfile,
    /// Where the [`ChargingProfileResult`] goes, URL(255).
    pub response_url: String,
}

/// Whether we (the CPO) forward a charging-profile request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargingProfileResponseType {
    /// Forwarded to the station; a result follows.
    Accepted,
    /// Not supported by this CPO / station / EVSE.
    NotSupported,
    /// Refused by the CPO (e.g. the station is offline).
    Rejected,
    /// Sent more often than allowed.
    TooOften,
    /// No such (running) session for the caller.
    UnknownSession,
}

/// Our synchronous answer (the envelope's `data`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingProfileResponse {
    /// Verdict.
    pub result: ChargingProfileResponseType,
    /// Seconds the sender should wait for the result.
    pub timeout: u32,
}

impl ChargingProfileResponse {
    /// A response.
    pub fn new(result: ChargingProfileResponseType, timeout: u32) -> Self {
        Self { result, timeout }
    }
}

/// The station's verdict, in every asynchronous result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargingProfileResultType {
    /// Accepted by the EVSE.
    Accepted,
    /// Rejected by the EVSE.
    Rejected,
    /// No matching charging profile found by the EVSE.
    Unknown,
}

/// Result of a PUT (SetChargingProfile), POSTed bare to its `response_url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingProfileResult {
    /// Verdict.
    pub result: ChargingProfileResultType,
}

/// Result of a GET (ActiveChargingProfile), POSTed bare to its `response_url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveChargingProfileResult {
    /// Verdict.
    pub result: ChargingProfileResultType,
    /// The profile, when `result` is ACCEPTED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ActiveChargingProfile>,
}

/// Result of a DELETE (ClearProfile), POSTed bare to its `response_url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearProfileResult {
    /// Verdict.
    pub result: ChargingProfileResultType,
}

/// True when `d` has at most one fraction digit (after dropping trailing zeros).
fn one_digit(d: Decimal) -> bool {
    d.normalize().scale() <= 1
}

impl ChargingProfile {
    pub(crate) fn check(&self, c: &mut Checker) {
        if let Some(min) = self.min_charging_rate
            && (min.is_sign_negative() || !one_digit(min))
        {
            c.bad(
                "min_charging_rate",
                "must be ≥ 0 with at most one fraction digit",
            );
        }
        let periods = self.charging_profile_period.as_deref().unwrap_or_default();
        let mut last: Option<u32> = None;
        for (i, p) in periods.iter().enumerate() {
            let field = format!("charging_profile_period[{i}]");
            if p.limit.is_sign_negative() || !one_digit(p.limit) {
                c.bad(
                    &format!("{field}.limit"),
                    "must be ≥ 0 with at most one fraction digit",
                );
            }
            if i == 0 && p.start_period != 0 {
                c.bad(
                    &format!("{field}.start_period"),
                    "the first period must start at 0",
                );
            }
            if last.is_some_and(|l| p.start_period <= l) {
                c.bad(&format!("{field}.start_period"), "must increase");
            }
            last = Some(p.start_period);
        }
    }
}

impl SetChargingProfile {
    /// Checks `response_url`, the limits (≥ 0, one fraction digit) and that periods start at 0 and increase.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("SetChargingProfile");
        c.url("response_url", &self.response_url, 255);
        c.nested("charging_profile", |c| self.charging_profile.check(c));
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn set_charging_profile_round_trips_with_exact_numbers() {
        let body = r#"{"charging_profile":{"start_date_time":"2026-01-01T10:00:00Z","duration":900,
            "charging_rate_unit":"A","min_charging_rate":6.0,"charging_profile_period":[
            {"start_period":0,"limit":16.1},{"start_period":600,"limit":8}]},
            "response_url":"https://emsp.example/cp/1"}"#;
        let set: SetChargingProfile = serde_json::from_str(body).expect("parses");
        assert!(set.validate().is_ok(), "{:?}", set.validate());
        let p = &set.charging_profile;
        assert_eq!(p.charging_rate_unit, ChargingRateUnit::A);
        assert_eq!(p.min_charging_rate, Some(dec("6.0")));
        let periods = p.charging_profile_period.as_ref().expect("periods");
        assert_eq!(periods[0].limit, dec("16.1"));
        assert_eq!(periods[1].start_period, 600);
        let out = serde_json::to_string(&set).expect("json");
        assert!(out.contains(r#""limit":16.1"#), "{out}");
        assert!(out.contains(r#""min_charging_rate":6.0"#), "{out}");
        assert_eq!(
            serde_json::from_str::<SetChargingProfile>(&out).expect("back"),
            set
        );
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let body = r#"{"charging_profile":{"charging_rate_unit":"W","min_charging_rate":1.25,
            "charging_profile_period":[{"start_period":5,"limit":-1},{"start_period":5,"limit":11000.55}]},
            "response_url":"ftp://x"}"#;
        let set: SetChargingProfile = serde_json::from_str(body).expect("parses");
        let e = set.validate().expect_err("invalid");
        for f in [
            "response_url",
            "charging_profile.min_charging_rate",
            "charging_profile.charging_profile_period[0].limit",
            "charging_profile.charging_profile_period[0].start_period",
            "charging_profile.charging_profile_period[1].start_period",
            "charging_profile.charging_profile_period[1].limit",
        ] {
            assert!(e.has(f), "{f}: {e}");
        }
        assert!(
            serde_json::from_str::<SetChargingProfile>(
                r#"{"charging_profile":{"charging_rate_unit":"kW"},"response_url":"https://x/y"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn responses_and_results_are_spelled_as_the_spec() {
        for (t, s) in [
            (ChargingProfileResponseType::Accepted, "ACCEPTED"),
            (ChargingProfileResponseType::NotSupported, "NOT_SUPPORTED"),
            (ChargingProfileResponseType::Rejected, "REJECTED"),
            (ChargingProfileResponseType::TooOften, "TOO_OFTEN"),
            (
                ChargingProfileResponseType::UnknownSession,
                "UNKNOWN_SESSION",
            ),
        ] {
            assert_eq!(serde_json::to_value(t).expect("json"), s);
        }
        assert_eq!(
            serde_json::to_string(&ChargingProfileResponse::new(
                ChargingProfileResponseType::Accepted,
                70
            ))
            .expect("json"),
            r#"{"result":"ACCEPTED","timeout":70}"#
        );
        assert_eq!(
            serde_json::to_string(&ClearProfileResult {
                result: ChargingProfileResultType::Unknown
            })
            .expect("json"),
            r#"{"result":"UNKNOWN"}"#
        );
        let active = ActiveChargingProfileResult {
            result: ChargingProfileResultType::Accepted,
            profile: Some(ActiveChargingProfile {
                start_date_time: DateTime::parse("2026-01-01T10:00:00Z").expect("time"),
                charging_profile: ChargingProfile {
                    start_date_time: None,
                    duration: Some(900),
                    charging_rate_unit: ChargingRateUnit::W,
                    min_charging_rate: None,
                    charging_profile_period: Some(vec![ChargingProfilePeriod {
                        start_period: 0,
                        limit: dec("11000.0"),
                    }]),
                },
            }),
        };
        let json = serde_json::to_string(&active).expect("json");
        assert_eq!(
            json,
            r#"{"result":"ACCEPTED","profile":{"start_date_time":"2026-01-01T10:00:00Z","charging_profile":{"duration":900,"charging_rate_unit":"W","charging_profile_period":[{"start_period":0,"limit":11000.0}]}}}"#
        );
        assert_eq!(
            serde_json::to_string(&ActiveChargingProfileResult {
                result: ChargingProfileResultType::Rejected,
                profile: None
            })
            .expect("json"),
            r#"{"result":"REJECTED"}"#
        );
    }
}
