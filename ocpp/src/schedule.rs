//! Smart charging on the wire: the version-neutral [`ChargingSchedule`] and the 1.6 / 2.0.1
//! encodings of SetChargingProfile (a `TxProfile` for one transaction), GetCompositeSchedule and
//! ClearChargingProfile, the decoding of their answers, and of the 2.0.1 station messages that
//! report a changed limit (NotifyChargingLimit, ReportChargingProfiles).
//!
//! Limits are exact decimals, written as JSON numbers with the digits they have (`16.1`, never
//! `16.100000000000001`). A schedule with a `start` is `Absolute` (its `startSchedule`), one
//! without is `Relative` (to the start of charging). Answers are decoded leniently like the
//! other calls (extra properties ignored, status case-insensitive); a composite schedule that
//! cannot be read is a `FormatViolation`/`PropertyConstraintViolation`, so the caller can
//! report a REJECTED result.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::call::{ACCEPTED_REJECTED, answer, answer_object, pick};
use crate::error::{CallFault, ErrorCode};
use crate::event::EvseRef;
use crate::lenient::{fault, format_timestamp, parse_decimal, parse_timestamp, property};

/// Unit of a charging schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChargingRateUnit {
    /// Watts (total power).
    W,
    /// Amperes per phase.
    A,
}

impl ChargingRateUnit {
    /// The OCPP spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChargingRateUnit::W => "W",
            ChargingRateUnit::A => "A",
        }
    }
}

/// One period of a [`ChargingSchedule`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulePeriod {
    /// Seconds from the start of the schedule.
    pub start_period: u32,
    /// Maximum rate in the schedule's unit.
    pub limit: Decimal,
    /// Phases (`numberPhases`), when given.
    pub number_phases: Option<u32>,
}

/// A charging schedule, independent of the OCPP version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingSchedule {
    /// `startSchedule`: absolute start (`None`: relative to the start of charging).
    pub start: Option<DateTime<Utc>>,
    /// `duration` in seconds.
    pub duration: Option<u32>,
    /// `chargingRateUnit`.
    pub rate_unit: ChargingRateUnit,
    /// `minChargingRate`.
    pub min_rate: Option<Decimal>,
    /// `chargingSchedulePeriod`.
    pub periods: Vec<SchedulePeriod>,
}

/// A station's composite schedule (GetCompositeSchedule answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompositeSchedule {
    /// `scheduleStart`: the moment the periods count from.
    pub start: DateTime<Utc>,
    /// The schedule (its own `start` is `None`).
    pub schedule: ChargingSchedule,
}

/// A 2.0.1 station's report of a changed charging limit or profile (NotifyChargingLimit,
/// ReportChargingProfiles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingLimitReport {
    /// The action it came with.
    pub action: String,
    /// The EVSE (`None`/0: the whole station).
    pub evse_id: Option<u32>,
    /// The transaction a reported profile names, if any.
    pub transaction_id: Option<String>,
    /// The schedules reported, in order.
    pub schedules: Vec<ChargingSchedule>,
}

fn number(d: &Decimal) -> Value {
    // With serde_json's arbitrary_precision the text is kept exactly.
    d.to_string()
        .parse::<serde_json::Number>()
        .map_or(Value::Null, Value::Number)
}

/// `chargingSchedule` of 1.6, or one 2.0.1 `ChargingScheduleType` (with `id`).
pub(crate) fn encode_schedule(s: &ChargingSchedule, id: Option<i32>) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    if let Some(start) = &s.start {
        m.insert("startSchedule".into(), json!(format_timestamp(start)));
    }
    if let Some(d) = s.duration {
        m.insert("duration".into(), json!(d));
    }
    m.insert("chargingRateUnit".into(), json!(s.rate_unit.as_str()));
    let periods: Vec<Value> = s
        .periods
        .iter()
        .map(|p| {
            let mut pm = Map::new();
            pm.insert("startPeriod".into(), json!(p.start_period));
            pm.insert("limit".into(), number(&p.limit));
            if let Some(n) = p.number_phases {
                pm.insert("numberPhases".into(), json!(n));
            }
            Value::Object(pm)
        })
        .collect();
    m.insert("chargingSchedulePeriod".into(), Value::Array(periods));
    if let Some(min) = &s.min_rate {
        m.insert("minChargingRate".into(), number(min));
    }
    Value::Object(m)
}

fn kind_of(s: &ChargingSchedule) -> &'static str {
    if s.start.is_some() {
        "Absolute"
    } else {
        "Relative"
    }
}

/// 1.6 SetChargingProfile: `connectorId` + `csChargingProfiles` (TxProfile, integer
/// `transactionId`).
pub(crate) fn set_profile_16(
    at: &EvseRef,
    profile_id: i32,
    stack_level: u32,
    transaction_id: &str,
    schedule: &ChargingSchedule,
) -> Result<Value, CallFault> {
    let connector = at.v16_connector();
    if connector == 0 {
        return Err(property("connectorId", "a TxProfile needs a connector > 0"));
    }
    let tx: i32 = transaction_id
        .trim()
        .parse()
        .map_err(|_| property("transactionId", "not a 32-bit integer"))?;
    check_periods(schedule)?;
    Ok(json!({
        "connectorId": connector,
        "csChargingProfiles": {
            "chargingProfileId": profile_id,
            "transactionId": tx,
            "stackLevel": stack_level,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": kind_of(schedule),
            "chargingSchedule": encode_schedule(schedule, None),
        }
    }))
}

/// 2.0.1 SetChargingProfile: `evseId` + `chargingProfile` (TxProfile, string `transactionId`,
/// one schedule whose `id` is the profile id).
pub(crate) fn set_profile_201(
    at: &EvseRef,
    profile_id: i32,
    stack_level: u32,
    transaction_id: &str,
    schedule: &ChargingSchedule,
) -> Result<Value, CallFault> {
    if at.evse_id == 0 {
        return Err(property("evseId", "a TxProfile needs an EVSE > 0"));
    }
    if transaction_id.is_empty() || transaction_id.chars().count() > 36 {
        return Err(property("transactionId", "must be 1 to 36 characters"));
    }
    check_periods(schedule)?;
    Ok(json!({
        "evseId": at.evse_id,
        "chargingProfile": {
            "id": profile_id,
            "stackLevel": stack_level,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": kind_of(schedule),
            "transactionId": transaction_id,
            "chargingSchedule": [encode_schedule(schedule, Some(profile_id))],
        }
    }))
}

fn check_periods(s: &ChargingSchedule) -> Result<(), CallFault> {
    if s.periods.is_empty() {
        return Err(property(
            "chargingSchedulePeriod",
            "needs at least one period",
        ));
    }
    Ok(())
}

/// GetCompositeSchedule (1.6: `connectorId`; 2.0.1: `evseId`).
pub(crate) fn composite_request(
    v201: bool,
    at: &EvseRef,
    duration: u32,
    unit: Option<ChargingRateUnit>,
) -> Value {
    let mut m = Map::new();
    if v201 {
        m.insert("evseId".into(), json!(at.evse_id));
    } else {
        m.insert("connectorId".into(), json!(at.v16_connector()));
    }
    m.insert("duration".into(), json!(duration));
    if let Some(u) = unit {
        m.insert("chargingRateUnit".into(), json!(u.as_str()));
    }
    Value::Object(m)
}

/// ClearChargingProfile of our TxProfile: by its id when known (1.6 `id`, 2.0.1
/// `chargingProfileId`), else every TxProfile of the connector / EVSE (1.6 `connectorId` +
/// `chargingProfilePurpose`, 2.0.1 `chargingProfileCriteria`).
pub(crate) fn clear_request(v201: bool, profile_id: Option<i32>, at: Option<&EvseRef>) -> Value {
    let mut m = Map::new();
    match (v201, profile_id) {
        (true, Some(id)) => {
            m.insert("chargingProfileId".into(), json!(id));
        }
        (true, None) => {
            let mut c = Map::new();
            if let Some(at) = at {
                c.insert("evseId".into(), json!(at.evse_id));
            }
            c.insert("chargingProfilePurpose".into(), json!("TxProfile"));
            m.insert("chargingProfileCriteria".into(), Value::Object(c));
        }
        (false, Some(id)) => {
            m.insert("id".into(), json!(id));
        }
        (false, None) => {
            if let Some(at) = at {
                m.insert("connectorId".into(), json!(at.v16_connector()));
            }
            m.insert("chargingProfilePurpose".into(), json!("TxProfile"));
        }
    }
    Value::Object(m)
}

/// SetChargingProfile answer statuses (1.6 adds NotSupported, read as not accepted).
pub(crate) const SET_PROFILE_STATUS: &[(&str, bool)] = &[
    ("Accepted", true),
    ("Rejected", false),
    ("NotSupported", false),
];

/// ClearChargingProfile answer: `Accepted` → true, `Unknown` → false.
pub(crate) const CLEAR_STATUS: &[(&str, bool)] = &[("Accepted", true), ("Unknown", false)];

fn unsigned(action: &str, v: Option<&Value>, field: &str) -> Result<Option<u32>, CallFault> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| property(&format!("{action}.{field}"), "not a non-negative integer")),
        Some(_) => Err(fault(
            ErrorCode::TypeConstraintViolation,
            format!("{action}: {field} must be an integer"),
        )),
    }
}

fn decimal(action: &str, v: Option<&Value>, field: &str) -> Result<Option<Decimal>, CallFault> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => parse_decimal(&n.to_string())
            .map(Some)
            .ok_or_else(|| property(&format!("{action}.{field}"), "not a decimal")),
        Some(Value::String(s)) => parse_decimal(s)
            .map(Some)
            .ok_or_else(|| property(&format!("{action}.{field}"), "not a decimal")),
        Some(_) => Err(fault(
            ErrorCode::TypeConstraintViolation,
            format!("{action}: {field} must be a number"),
        )),
    }
}

fn time(action: &str, v: Option<&Value>, field: &str) -> Result<Option<DateTime<Utc>>, CallFault> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_timestamp(s)
            .map(Some)
            .ok_or_else(|| property(&format!("{action}.{field}"), "not a date-time")),
        Some(_) => Err(fault(
            ErrorCode::TypeConstraintViolation,
            format!("{action}: {field} must be a date-time string"),
        )),
    }
}

/// Reads one schedule object (1.6 `chargingSchedule`, 2.0.1 `ChargingScheduleType` or a 2.0.1
/// `CompositeScheduleType`, whose start is `scheduleStart`).
pub(crate) fn decode_schedule(action: &str, v: &Value) -> Result<ChargingSchedule, CallFault> {
    let m = v.as_object().ok_or_else(|| {
        fault(
            ErrorCode::FormatViolation,
            format!("{action}: a charging schedule must be an object"),
        )
    })?;
    let rate_unit = match m.get("chargingRateUnit").and_then(Value::as_str) {
        Some(u) => pick(
            action,
            u,
            &[("W", ChargingRateUnit::W), ("A", ChargingRateUnit::A)],
        )?,
        None => {
            return Err(fault(
                ErrorCode::OccurrenceConstraintViolation,
                format!("{action}: chargingRateUnit is missing"),
            ));
        }
    };
    let periods = match m.get("chargingSchedulePeriod") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| {
                let start_period = unsigned(action, p.get("startPeriod"), "startPeriod")?
                    .ok_or_else(|| property(&format!("{action}.startPeriod"), "missing"))?;
                let limit = decimal(action, p.get("limit"), "limit")?
                    .ok_or_else(|| property(&format!("{action}.limit"), "missing"))?;
                Ok(SchedulePeriod {
                    start_period,
                    limit,
                    number_phases: unsigned(action, p.get("numberPhases"), "numberPhases")?,
                })
            })
            .collect::<Result<Vec<_>, CallFault>>()?,
        _ => {
            return Err(fault(
                ErrorCode::OccurrenceConstraintViolation,
                format!("{action}: chargingSchedulePeriod is missing"),
            ));
        }
    };
    let start = match m.get("startSchedule") {
        Some(v) => time(action, Some(v), "startSchedule")?,
        None => time(action, m.get("scheduleStart"), "scheduleStart")?,
    };
    Ok(ChargingSchedule {
        start,
        duration: unsigned(action, m.get("duration"), "duration")?,
        rate_unit,
        min_rate: decimal(action, m.get("minChargingRate"), "minChargingRate")?,
        periods,
    })
}

/// A GetCompositeSchedule answer: whether it was accepted, and the schedule (1.6:
/// `scheduleStart` + `chargingSchedule`; 2.0.1: `schedule`).
pub(crate) fn decode_composite(
    v201: bool,
    payload: &Value,
) -> Result<(bool, Option<CompositeSchedule>), CallFault> {
    const ACTION: &str = "GetCompositeSchedule";
    let accepted = answer(ACTION, payload, ACCEPTED_REJECTED)?;
    let obj = answer_object(ACTION, payload)?;
    if !accepted {
        return Ok((false, None));
    }
    let (raw, start) = if v201 {
        match obj.get("schedule") {
            Some(s) => (s, time(ACTION, s.get("scheduleStart"), "scheduleStart")?),
            None => return Ok((true, None)),
        }
    } else {
        match obj.get("chargingSchedule") {
            Some(s) => (s, time(ACTION, obj.get("scheduleStart"), "scheduleStart")?),
            None => return Ok((true, None)),
        }
    };
    let mut schedule = decode_schedule(ACTION, raw)?;
    let start = start.or(schedule.start).ok_or_else(|| {
        fault(
            ErrorCode::OccurrenceConstraintViolation,
            format!("{ACTION}: scheduleStart is missing"),
        )
    })?;
    schedule.start = None;
    Ok((true, Some(CompositeSchedule { start, schedule })))
}

/// NotifyChargingLimit / ReportChargingProfiles of a 2.0.1 station.
pub(crate) fn decode_limit_report(
    action: &str,
    payload: &Value,
) -> Result<ChargingLimitReport, CallFault> {
    let obj = payload.as_object().ok_or_else(|| {
        fault(
            ErrorCode::FormatViolation,
            format!("{action}: payload must be a JSON object"),
        )
    })?;
    let evse_id = unsigned(action, obj.get("evseId"), "evseId")?;
    let mut schedules = Vec::new();
    let mut transaction_id = None;
    let schedule_list =
        |v: Option<&Value>, out: &mut Vec<ChargingSchedule>| -> Result<(), CallFault> {
            if let Some(Value::Array(items)) = v {
                for s in items {
                    out.push(decode_schedule(action, s)?);
                }
            }
            Ok(())
        };
    if action == "ReportChargingProfiles" {
        let Some(Value::Array(profiles)) = obj.get("chargingProfile") else {
            return Err(fault(
                ErrorCode::OccurrenceConstraintViolation,
                format!("{action}: chargingProfile is missing"),
            ));
        };
        for p in profiles {
            if transaction_id.is_none() {
                transaction_id = p
                    .get("transactionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            schedule_list(p.get("chargingSchedule"), &mut schedules)?;
        }
    } else {
        if !obj.get("chargingLimit").is_some_and(Value::is_object) {
            return Err(fault(
                ErrorCode::OccurrenceConstraintViolation,
                format!("{action}: chargingLimit is missing"),
            ));
        }
        schedule_list(obj.get("chargingSchedule"), &mut schedules)?;
    }
    Ok(ChargingLimitReport {
        action: action.to_owned(),
        evse_id,
        transaction_id,
        schedules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn schedule(start: Option<DateTime<Utc>>) -> ChargingSchedule {
        ChargingSchedule {
            start,
            duration: Some(900),
            rate_unit: ChargingRateUnit::A,
            min_rate: Some(dec("6.0")),
            periods: vec![
                SchedulePeriod {
                    start_period: 0,
                    limit: dec("16.1"),
                    number_phases: Some(3),
                },
                SchedulePeriod {
                    start_period: 600,
                    limit: dec("8"),
                    number_phases: None,
                },
            ],
        }
    }

    #[test]
    fn limits_are_written_with_their_exact_digits() {
        let v = encode_schedule(&schedule(None), None);
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains(r#""limit":16.1"#), "{text}");
        assert!(text.contains(r#""minChargingRate":6.0"#), "{text}");
        assert_eq!(decode_schedule("x", &v).unwrap(), schedule(None));
    }

    #[test]
    fn a_composite_schedule_reads_both_versions() {
        let start = parse_timestamp("2026-01-01T10:00:00Z").unwrap();
        let v16 = json!({"status": "Accepted", "connectorId": 1, "scheduleStart": "2026-01-01T10:00:00Z",
            "chargingSchedule": {"duration": 300, "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}]}});
        let v201 = json!({"status": "Accepted", "schedule": {"evseId": 1, "duration": 300,
            "scheduleStart": "2026-01-01T10:00:00Z", "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}]}});
        for (is201, p) in [(false, v16), (true, v201)] {
            let (ok, c) = decode_composite(is201, &p).unwrap();
            let c = c.unwrap();
            assert!(ok);
            assert_eq!(c.start, start);
            assert_eq!(c.schedule.duration, Some(300));
            assert_eq!(c.schedule.start, None);
            assert_eq!(c.schedule.periods[0].limit, dec("11000.0"));
        }
        assert_eq!(
            decode_composite(false, &json!({"status": "Rejected"})).unwrap(),
            (false, None)
        );
        assert!(
            decode_composite(
                true,
                &json!({"status": "Accepted", "schedule": {"evseId": 1}})
            )
            .is_err()
        );
    }

    #[test]
    fn limit_reports_collect_their_schedules() {
        let p = json!({"requestId": 1, "chargingLimitSource": "EMS", "evseId": 2,
            "chargingProfile": [{"id": 9, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative", "transactionId": "tx-1",
                "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]}]}]});
        let r = decode_limit_report("ReportChargingProfiles", &p).unwrap();
        assert_eq!(r.evse_id, Some(2));
        assert_eq!(r.transaction_id.as_deref(), Some("tx-1"));
        assert_eq!(r.schedules.len(), 1);
        let n = json!({"chargingLimit": {"chargingLimitSource": "SO"}, "evseId": 1});
        let r = decode_limit_report("NotifyChargingLimit", &n).unwrap();
        assert!(r.schedules.is_empty());
        assert!(decode_limit_report("NotifyChargingLimit", &json!({})).is_err());
    }
}
