//! Pure mappings of smart charging: OCPI ChargingProfile ↔ the version-neutral OCPP
//! [`ChargingSchedule`], a station's composite schedule or limit report → OCPI
//! ActiveChargingProfile, and a station's answer (or silence) → the OCPI result. Every row has a
//! test.
//!
//! | OCPI | OCPP (1.6 `chargingSchedule` / 2.0.1 `ChargingScheduleType`) |
//! |---|---|
//! | `start_date_time` | `startSchedule` (profile kind `Absolute`; absent: `Relative`) |
//! | `duration` | `duration` |
//! | `charging_rate_unit` W / A | `chargingRateUnit` W / A |
//! | `min_charging_rate` | `minChargingRate` |
//! | `charging_profile_period[].start_period`, `limit` | `chargingSchedulePeriod[].startPeriod`, `limit` (`numberPhases` omitted; on the way back dropped) |
//!
//! Limits keep their digits. A station's limit with more than one fraction digit (OCPI allows
//! one) is cut to one digit towards zero, so the reported limit is never above the station's.

use chrono::{DateTime, Utc};
use ocpi::types::{
    ActiveChargingProfile, ActiveChargingProfileResult, ChargingProfile, ChargingProfilePeriod,
    ChargingProfileResultType, ChargingRateUnit,
};
use ocpp::{
    CallAnswer, CallFailure, ChargingLimitReport, ChargingSchedule, CompositeSchedule,
    SchedulePeriod,
};
use rust_decimal::{Decimal, RoundingStrategy};

/// OCPI unit → OCPP unit.
pub fn unit_to_ocpp(unit: ChargingRateUnit) -> ocpp::ChargingRateUnit {
    match unit {
        ChargingRateUnit::W => ocpp::ChargingRateUnit::W,
        ChargingRateUnit::A => ocpp::ChargingRateUnit::A,
    }
}

/// OCPP unit → OCPI unit.
pub fn unit_to_ocpi(unit: ocpp::ChargingRateUnit) -> ChargingRateUnit {
    match unit {
        ocpp::ChargingRateUnit::W => ChargingRateUnit::W,
        ocpp::ChargingRateUnit::A => ChargingRateUnit::A,
    }
}

/// The OCPP schedule of an OCPI ChargingProfile (see the module table).
pub fn schedule_from_ocpi(profile: &ChargingProfile) -> ChargingSchedule {
    ChargingSchedule {
        start: profile.start_date_time.map(|t| t.inner()),
        duration: profile.duration,
        rate_unit: unit_to_ocpp(profile.charging_rate_unit),
        min_rate: profile.min_charging_rate,
        periods: profile
            .charging_profile_period
            .iter()
            .flatten()
            .map(|p| SchedulePeriod {
                start_period: p.start_period,
                limit: p.limit,
                number_phases: None,
            })
            .collect(),
    }
}

/// At most one fraction digit, cut towards zero.
fn one_digit(d: Decimal) -> Decimal {
    if d.normalize().scale() <= 1 {
        d
    } else {
        d.round_dp_with_strategy(1, RoundingStrategy::ToZero)
    }
}

/// The OCPI ChargingProfile of a station's schedule (see the module table).
pub fn profile_from_schedule(s: &ChargingSchedule) -> ChargingProfile {
    ChargingProfile {
        start_date_time: s.start.map(Into::into),
        duration: s.duration,
        charging_rate_unit: unit_to_ocpi(s.rate_unit),
        min_charging_rate: s.min_rate.map(one_digit),
        charging_profile_period: Some(
            s.periods
                .iter()
                .map(|p| ChargingProfilePeriod {
                    start_period: p.start_period,
                    limit: one_digit(p.limit),
                })
                .collect(),
        ),
    }
}

/// A composite schedule as ActiveChargingProfile: its `scheduleStart` is the profile's
/// `start_date_time`, the periods count from there.
pub fn active_from_composite(c: &CompositeSchedule) -> ActiveChargingProfile {
    let mut profile = profile_from_schedule(&c.schedule);
    profile.start_date_time = None;
    ActiveChargingProfile {
        start_date_time: c.start.into(),
        charging_profile: profile,
    }
}

/// A 2.0.1 limit report as ActiveChargingProfile: its first schedule, counted from its
/// `startSchedule` (or `now` for a relative one). `None` when it carries no schedule.
pub fn active_from_report(
    report: &ChargingLimitReport,
    now: DateTime<Utc>,
) -> Option<ActiveChargingProfile> {
    let schedule = report.schedules.first()?;
    let mut profile = profile_from_schedule(schedule);
    profile.start_date_time = None;
    Some(ActiveChargingProfile {
        start_date_time: schedule.start.unwrap_or(now).into(),
        charging_profile: profile,
    })
}

/// ChargingProfileResult of a SetChargingProfile: Accepted → ACCEPTED; Rejected, 1.6
/// NotSupported, a CALLERROR, a broken answer, a disconnect or no answer in time → REJECTED.
pub fn set_result(outcome: &Result<CallAnswer, CallFailure>) -> ChargingProfileResultType {
    match outcome {
        Ok(CallAnswer::ChargingProfile { accepted: true }) => ChargingProfileResultType::Accepted,
        _ => ChargingProfileResultType::Rejected,
    }
}

/// ActiveChargingProfileResult of a GetCompositeSchedule: Accepted with a schedule → ACCEPTED
/// with the profile; Accepted without one → UNKNOWN (no profile found); anything else →
/// REJECTED.
pub fn active_result(outcome: &Result<CallAnswer, CallFailure>) -> ActiveChargingProfileResult {
    match outcome {
        Ok(CallAnswer::CompositeSchedule {
            accepted: true,
            schedule: Some(c),
        }) => ActiveChargingProfileResult {
            result: ChargingProfileResultType::Accepted,
            profile: Some(active_from_composite(c)),
        },
        Ok(CallAnswer::CompositeSchedule {
            accepted: true,
            schedule: None,
        }) => ActiveChargingProfileResult {
            result: ChargingProfileResultType::Unknown,
            profile: None,
        },
        _ => ActiveChargingProfileResult {
            result: ChargingProfileResultType::Rejected,
            profile: None,
        },
    }
}

/// ClearProfileResult of a ClearChargingProfile: Accepted → ACCEPTED, Unknown → UNKNOWN,
/// anything else (CALLERROR, no answer in time, …) → REJECTED.
pub fn clear_result(outcome: &Result<CallAnswer, CallFailure>) -> ChargingProfileResultType {
    match outcome {
        Ok(CallAnswer::ClearProfile { cleared: true }) => ChargingProfileResultType::Accepted,
        Ok(CallAnswer::ClearProfile { cleared: false }) => ChargingProfileResultType::Unknown,
        _ => ChargingProfileResultType::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn ocpi_profile(start: Option<&str>) -> ChargingProfile {
        ChargingProfile {
            start_date_time: start.map(|s| at(s).into()),
            duration: Some(3600),
            charging_rate_unit: ChargingRateUnit::A,
            min_charging_rate: Some(dec("6.0")),
            charging_profile_period: Some(vec![
                ChargingProfilePeriod {
                    start_period: 0,
                    limit: dec("16.1"),
                },
                ChargingProfilePeriod {
                    start_period: 1800,
                    limit: dec("8"),
                },
            ]),
        }
    }

    #[test]
    fn units_map_both_ways() {
        for (ocpi, ocpp) in [
            (ChargingRateUnit::W, ocpp::ChargingRateUnit::W),
            (ChargingRateUnit::A, ocpp::ChargingRateUnit::A),
        ] {
            assert_eq!(unit_to_ocpp(ocpi), ocpp);
            assert_eq!(unit_to_ocpi(ocpp), ocpi);
        }
    }

    #[test]
    fn a_relative_profile_maps_field_by_field() {
        let s = schedule_from_ocpi(&ocpi_profile(None));
        assert_eq!(s.start, None);
        assert_eq!(s.duration, Some(3600));
        assert_eq!(s.rate_unit, ocpp::ChargingRateUnit::A);
        assert_eq!(s.min_rate, Some(dec("6.0")));
        assert_eq!(
            s.periods,
            vec![
                SchedulePeriod {
                    start_period: 0,
                    limit: dec("16.1"),
                    number_phases: None
                },
                SchedulePeriod {
                    start_period: 1800,
                    limit: dec("8"),
                    number_phases: None
                },
            ]
        );
        assert_eq!(profile_from_schedule(&s), ocpi_profile(None));
    }

    #[test]
    fn an_absolute_profile_keeps_its_start() {
        let s = schedule_from_ocpi(&ocpi_profile(Some("2026-01-01T10:00:00Z")));
        assert_eq!(s.start, Some(at("2026-01-01T10:00:00Z")));
        assert_eq!(
            profile_from_schedule(&s),
            ocpi_profile(Some("2026-01-01T10:00:00Z"))
        );
    }

    #[test]
    fn a_profile_without_periods_has_none() {
        let mut p = ocpi_profile(None);
        p.charging_profile_period = None;
        assert!(schedule_from_ocpi(&p).periods.is_empty());
    }

    #[test]
    fn station_limits_are_cut_to_one_digit_and_phases_dropped() {
        let s = ChargingSchedule {
            start: None,
            duration: None,
            rate_unit: ocpp::ChargingRateUnit::A,
            min_rate: Some(dec("6.25")),
            periods: vec![SchedulePeriod {
                start_period: 0,
                limit: dec("16.67"),
                number_phases: Some(3),
            }],
        };
        let p = profile_from_schedule(&s);
        assert_eq!(p.min_charging_rate, Some(dec("6.2")));
        let periods = p.charging_profile_period.expect("periods");
        assert_eq!(periods[0].limit, dec("16.6"));
        assert_eq!(one_digit(dec("11000.0")).to_string(), "11000.0");
    }

    fn composite() -> CompositeSchedule {
        CompositeSchedule {
            start: at("2026-01-01T10:00:00Z"),
            schedule: ChargingSchedule {
                start: None,
                duration: Some(900),
                rate_unit: ocpp::ChargingRateUnit::W,
                min_rate: None,
                periods: vec![SchedulePeriod {
                    start_period: 0,
                    limit: dec("11000.0"),
                    number_phases: None,
                }],
            },
        }
    }

    #[test]
    fn a_composite_schedule_becomes_the_active_profile() {
        let a = active_from_composite(&composite());
        assert_eq!(a.start_date_time, at("2026-01-01T10:00:00Z").into());
        assert_eq!(a.charging_profile.start_date_time, None);
        assert_eq!(a.charging_profile.duration, Some(900));
        assert_eq!(a.charging_profile.charging_rate_unit, ChargingRateUnit::W);
        let periods = a.charging_profile.charging_profile_period.expect("periods");
        assert_eq!(periods[0].limit, dec("11000.0"));
    }

    #[test]
    fn a_limit_report_becomes_the_active_profile() {
        let now = at("2026-01-01T11:00:00Z");
        let mut report = ChargingLimitReport {
            action: "NotifyChargingLimit".into(),
            evse_id: Some(1),
            transaction_id: None,
            schedules: vec![composite().schedule],
        };
        let a = active_from_report(&report, now).expect("profile");
        assert_eq!(a.start_date_time, now.into(), "relative: from now");
        report.schedules[0].start = Some(at("2026-01-01T10:30:00Z"));
        let a = active_from_report(&report, now).expect("profile");
        assert_eq!(a.start_date_time, at("2026-01-01T10:30:00Z").into());
        assert_eq!(a.charging_profile.start_date_time, None);
        report.schedules.clear();
        assert_eq!(active_from_report(&report, now), None);
    }

    #[test]
    fn set_results_per_answer() {
        use ChargingProfileResultType as R;
        let rows: Vec<(Result<CallAnswer, CallFailure>, R)> = vec![
            (
                Ok(CallAnswer::ChargingProfile { accepted: true }),
                R::Accepted,
            ),
            (
                Ok(CallAnswer::ChargingProfile { accepted: false }),
                R::Rejected,
            ),
            (Err(CallFailure::Timeout), R::Rejected),
            (Err(CallFailure::Disconnected), R::Rejected),
            (
                Err(CallFailure::CallError {
                    code: "NotSupported".into(),
                    description: String::new(),
                    details: serde_json::json!({}),
                }),
                R::Rejected,
            ),
        ];
        for (outcome, want) in rows {
            assert_eq!(set_result(&outcome), want, "{outcome:?}");
        }
    }

    #[test]
    fn active_results_per_answer() {
        use ChargingProfileResultType as R;
        let ok = active_result(&Ok(CallAnswer::CompositeSchedule {
            accepted: true,
            schedule: Some(composite()),
        }));
        assert_eq!(ok.result, R::Accepted);
        assert_eq!(ok.profile, Some(active_from_composite(&composite())));
        let empty = active_result(&Ok(CallAnswer::CompositeSchedule {
            accepted: true,
            schedule: None,
        }));
        assert_eq!((empty.result, empty.profile), (R::Unknown, None));
        let rejected = active_result(&Ok(CallAnswer::CompositeSchedule {
            accepted: false,
            schedule: None,
        }));
        assert_eq!(rejected.result, R::Rejected);
        assert_eq!(
            active_result(&Err(CallFailure::Timeout)).result,
            R::Rejected
        );
    }

    #[test]
    fn clear_results_per_answer() {
        use ChargingProfileResultType as R;
        assert_eq!(
            clear_result(&Ok(CallAnswer::ClearProfile { cleared: true })),
            R::Accepted
        );
        assert_eq!(
            clear_result(&Ok(CallAnswer::ClearProfile { cleared: false })),
            R::Unknown
        );
        assert_eq!(clear_result(&Err(CallFailure::Timeout)), R::Rejected);
        assert_eq!(clear_result(&Err(CallFailure::Busy)), R::Rejected);
    }
}
