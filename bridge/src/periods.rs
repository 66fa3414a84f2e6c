//! Meter samples → OCPI charging periods.
//!
//! Owns the translation of a transaction's metering (start/stop register values and the stored
//! [`state::MeterSample`]s) into the `charging_periods` of an OCPI 2.2.1 Session/CDR, and the
//! list of instants at which a tariff's time-based restrictions can change the applicable price.
//!
//! Pure functions, no I/O; all arithmetic is `Decimal`. Rules (ocpi.md §6 #21 #24 #25 #26):
//! - ENERGY volumes are kWh; TIME / PARKING_TIME volumes are hours.
//! - Energy is the register difference between consecutive readings; a decreasing register
//!   (meter reset, replaced meter, bogus value) contributes 0 to that interval and is logged.
//!   When the register never decreases, the total equals `(meter_stop − meter_start) / 1000`.
//!   Such an interval counts as charging: bad data is no evidence that the EV was idle.
//! - A reading less than 1 Wh below the one before is not a decrease but a coarser rendering of
//!   the same register ([`effective_readings`]): 1.6 `meterStart` / `meterStop` are integer Wh
//!   (truncated), samples often carry decimals, so `meterStop` 28 after a sample of 28.47 is the
//!   register at ≥ 28.47. Such a reading counts as the previous value (no energy in between, no
//!   warning), so billing uses the higher, more precise reading.
//! - An interval whose energy delta is 0 is *parking* (the EV drew no power). The OCPP status
//!   (`SuspendedEVSE` from smart charging) is deliberately not used: throttling by the CPO must
//!   never create idle fees.
//! - Periods are split at every tariff boundary (a period spanning a price change cannot be
//!   priced unambiguously: ocpi-tariffs evaluates restrictions at a period's start); energy of a
//!   meter interval cut by a boundary is distributed linearly over time.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{
    DateTime, Days, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc,
};
use ocpi::types::{CdrDimension, CdrDimensionType, ChargingPeriod, TariffId};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// Everything known about a transaction's energy metering.
#[derive(Debug, Clone)]
pub struct Metering {
    /// Transaction start; the first period starts here.
    pub start: DateTime<Utc>,
    /// Transaction end; the last period ends here.
    pub end: DateTime<Utc>,
    /// Register value at the start in Wh (1.6 `meterStart`, 2.0.1 `Transaction.Begin`).
    pub meter_start_wh: Option<Decimal>,
    /// Register value at the end in Wh (1.6 `meterStop`, 2.0.1 `Transaction.End`).
    pub meter_stop_wh: Option<Decimal>,
    /// All stored samples of the transaction, in any order.
    pub samples: Vec<state::MeterSample>,
}

/// One OCPI charging period: a stretch of time with one charging state and one tariff state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Period start (inclusive).
    pub start: DateTime<Utc>,
    /// Period end (exclusive); equals the next period's start or the session end.
    pub end: DateTime<Utc>,
    /// Energy delivered in this period, kWh (unrounded).
    pub energy_kwh: Decimal,
    /// `true` = charging (TIME), `false` = parking (PARKING_TIME): the EV drew no power.
    pub charging: bool,
    /// Highest `Power.Active.Import` sample inside the period, kW (emitted as MAX_POWER).
    pub max_power_kw: Option<Decimal>,
    /// Tariff of this period when it differs per period; see [`charging_periods`].
    pub tariff_id: Option<String>,
}

/// Session totals derived from the periods (unrounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Total energy, kWh.
    pub energy_kwh: Decimal,
    /// Total session duration (charging + parking), hours.
    pub time_h: Decimal,
    /// Time not charging, hours.
    pub parking_h: Decimal,
}

/// Decimal places used for the volumes in [`charging_periods`] (hours: 0.36 s resolution, so a short
/// session never shows 0 hours).
pub const VOLUME_DECIMALS: u32 = 4;

const POWER_MEASURAND: &str = "Power.Active.Import";

/// A stretch between two register readings (or the whole session when energy is unknown).
#[derive(Debug, Clone)]
struct Interval {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    wh: Decimal,
    charging: bool,
}

/// Builds the charging periods of a transaction.
///
/// `boundaries` are instants where the tariff may change (see [`tariff_boundaries`]); a period
/// never spans one, and two adjacent periods with the same charging state are merged only when
/// no boundary separates them. Boundaries outside `(start, end)` are ignored.
///
/// Readings before the first / after the last register value are unknown: the leading gap
/// (no `meter_start_wh`) is folded into the first measured interval and the trailing gap (no
/// `meter_stop_wh`) into the last one, rather than being guessed as parking.
///
/// Without at least two register values the energy is unknown: the session becomes one
/// *charging* period with 0 kWh (split only at boundaries). Decision: missing data must never
/// produce idle (parking) fees; only a measured zero delta is parking.
pub fn periods(m: &Metering, boundaries: &[DateTime<Utc>]) -> Vec<Period> {
    let start = m.start;
    let end = m.end.max(m.start);
    let intervals = intervals(m, start, end);

    let cuts: BTreeSet<DateTime<Utc>> = boundaries
        .iter()
        .copied()
        .filter(|b| *b > start && *b < end)
        .collect();

    let mut out: Vec<Period> = Vec::new();
    for iv in &intervals {
        for (seg_start, seg_end, wh) in split_linear(iv, &cuts) {
            let at_boundary = cuts.contains(&seg_start);
            match out.last_mut() {
                Some(last) if last.charging == iv.charging && !at_boundary => {
                    last.end = seg_end;
                    last.energy_kwh += wh;
                }
                _ => out.push(Period {
                    start: seg_start,
                    end: seg_end,
                    energy_kwh: wh,
                    charging: iv.charging,
                    max_power_kw: None,
                    tariff_id: None,
                }),
            }
        }
    }
    let thousand = Decimal::from(1000);
    let last = out.len().saturating_sub(1);
    for (i, p) in out.iter_mut().enumerate() {
        p.energy_kwh = (p.energy_kwh / thousand).normalize();
        p.max_power_kw = max_power_kw(&m.samples, p.start, p.end, i == last);
    }
    out
}

/// Register readings → non-overlapping intervals covering exactly `[start, end]`.
fn intervals(m: &Metering, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Interval> {
    let mut readings: Vec<(DateTime<Utc>, Decimal)> = m
        .samples
        .iter()
        .filter_map(|s| Some((s.timestamp.clamp(start, end), crate::meter::energy_wh(s)?)))
        .collect();
    readings.sort_by_key(|(t, _)| *t);
    let mut points = Vec::with_capacity(readings.len() + 2);
    if let Some(wh) = m.meter_start_wh {
        points.push((start, wh));
    }
    points.extend(readings);
    if let Some(wh) = m.meter_stop_wh {
        points.push((end, wh));
    }

    if points.len() < 2 {
        return vec![Interval {
            start,
            end,
            wh: Decimal::ZERO,
            charging: true,
        }];
    }

    let points = effective_readings(&points);
    let mut raw: Vec<Interval> = points
        .windows(2)
        .map(|w| {
            let ((t0, a), (t1, b)) = (w[0], w[1]);
            let wh = b - a;
            if wh < Decimal::ZERO {
                // Bad data, not evidence of idling: 0 Wh but still "charging" (no idle fee).
                tracing::warn!(from = %t0, to = %t1, before_wh = %a, after_wh = %b,
                    "energy register decreased (meter reset?); interval counts 0 Wh");
                return Interval {
                    start: t0,
                    end: t1,
                    wh: Decimal::ZERO,
                    charging: true,
                };
            }
            Interval {
                start: t0,
                end: t1,
                wh,
                charging: !wh.is_zero(),
            }
        })
        .collect();
    if let Some(first) = raw.first_mut() {
        first.start = start;
    }
    if let Some(last) = raw.last_mut() {
        last.end = end;
    }

    // Zero-length intervals (two readings at one instant) carry energy but no time: give it to
    // the previous interval, or to the next one when there is no previous.
    let mut out: Vec<Interval> = Vec::with_capacity(raw.len());
    let mut carry = Decimal::ZERO;
    for mut iv in raw {
        if iv.end <= iv.start {
            match out.last_mut() {
                Some(prev) => add_energy(prev, iv.wh),
                None => carry += iv.wh,
            }
            continue;
        }
        add_energy(&mut iv, carry);
        carry = Decimal::ZERO;
        out.push(iv);
    }
    if out.is_empty() {
        // start == end: a zero-length session; keep the total.
        let wh = carry;
        out.push(Interval {
            start,
            end,
            wh,
            charging: !wh.is_zero(),
        });
    }
    out
}

/// The register readings as billed: a reading less than 1 Wh below the previous billed one is
/// the same register rendered with less precision (an integer 1.6 `meterStop` after a decimal
/// sample) and is replaced by that previous value. Larger drops are kept: they are real
/// decreases (meter reset or replacement) and [`periods`] logs them.
pub fn effective_readings(points: &[(DateTime<Utc>, Decimal)]) -> Vec<(DateTime<Utc>, Decimal)> {
    let mut out: Vec<(DateTime<Utc>, Decimal)> = Vec::with_capacity(points.len());
    for &(t, wh) in points {
        let wh = match out.last() {
            Some(&(_, prev)) if wh < prev && prev - wh < Decimal::ONE => prev,
            _ => wh,
        };
        out.push((t, wh));
    }
    out
}

fn add_energy(iv: &mut Interval, wh: Decimal) {
    if !wh.is_zero() {
        iv.wh += wh;
        iv.charging = true;
    }
}

/// Cuts an interval at the boundaries inside it; energy is distributed linearly over time.
/// Pieces are computed from cumulative fractions (rounded to µWh) so they add up exactly to
/// the interval.
fn split_linear(
    iv: &Interval,
    cuts: &BTreeSet<DateTime<Utc>>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>, Decimal)> {
    let inner: Vec<DateTime<Utc>> = cuts
        .range(iv.start..iv.end)
        .copied()
        .filter(|c| *c > iv.start)
        .collect();
    if inner.is_empty() {
        return vec![(iv.start, iv.end, iv.wh)];
    }
    let total = micros(iv.end - iv.start);
    let mut out = Vec::with_capacity(inner.len() + 1);
    let (mut seg_start, mut done) = (iv.start, Decimal::ZERO);
    for c in inner {
        let elapsed = micros(c - iv.start);
        let upto = iv
            .wh
            .checked_mul(elapsed)
            .and_then(|x| x.checked_div(total))
            .unwrap_or_else(|| iv.wh * (elapsed / total))
            // µWh: far below any meter's resolution, and keeps later ÷1000 exact.
            .round_dp(6);
        out.push((seg_start, c, upto - done));
        (seg_start, done) = (c, upto);
    }
    out.push((seg_start, iv.end, iv.wh - done));
    out
}

fn micros(d: TimeDelta) -> Decimal {
    Decimal::from(d.num_microseconds().unwrap_or(i64::MAX))
}

/// Highest phase-less `Power.Active.Import` sample in `[start, end)` (`]` for the last period).
fn max_power_kw(
    samples: &[state::MeterSample],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    inclusive_end: bool,
) -> Option<Decimal> {
    samples
        .iter()
        .filter(|s| {
            s.timestamp >= start && (s.timestamp < end || inclusive_end && s.timestamp == end)
        })
        .filter_map(power_kw)
        .max()
}

/// A power sample in kW, when it is a phase-less `Power.Active.Import` in W or kW.
fn power_kw(s: &state::MeterSample) -> Option<Decimal> {
    if s.measurand != POWER_MEASURAND || s.phase.is_some() {
        return None;
    }
    let value = s.value?;
    let kw = match s.unit.as_str() {
        "W" | "w" => value.checked_div(Decimal::from(1000))?,
        "kW" | "kw" | "KW" => value,
        _ => return None,
    };
    let mut scaled = kw;
    for _ in 0..s.multiplier.unsigned_abs().min(28) {
        scaled = if s.multiplier >= 0 {
            scaled.checked_mul(Decimal::TEN)?
        } else {
            scaled.checked_div(Decimal::TEN)?
        };
    }
    Some(scaled.normalize())
}

/// Instants in `(start, end)` where a tariff's time-based restrictions can change which element
/// applies: local `start_time` / `end_time` on every day of the session, local midnights when
/// any element has `day_of_week`, local midnight of every `start_date` / `end_date`,
/// `start + min_duration` / `start + max_duration`, and the UTC-offset changes (DST) when there
/// are time-of-day restrictions (the local clock jumps there). Energy / power / current
/// restrictions are not time instants and are not handled here.
///
/// Local times that do not exist (DST gap) resolve to the first instant after the gap; repeated
/// local times (DST overlap) yield both instants. Extra boundaries are harmless: they only split
/// a period where the price stays the same. Sorted, without duplicates.
pub fn tariff_boundaries(
    tariff: &Value,
    tz: chrono_tz::Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    if end <= start {
        return Vec::new();
    }
    let mut times = BTreeSet::new();
    let mut dates = BTreeSet::new();
    let mut durations = BTreeSet::new();
    let mut midnights = false;
    let elements = tariff.get("elements").and_then(Value::as_array);
    for r in elements
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("restrictions").and_then(Value::as_object))
    {
        for key in ["start_time", "end_time"] {
            if let Some(t) = r.get(key).and_then(Value::as_str).and_then(parse_time) {
                times.insert(t);
            }
        }
        for key in ["start_date", "end_date"] {
            if let Some(d) = r.get(key).and_then(Value::as_str) {
                match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                    Ok(d) => {
                        dates.insert(d);
                    }
                    Err(_) => tracing::warn!(value = d, key, "tariff restriction date ignored"),
                }
            }
        }
        for key in ["min_duration", "max_duration"] {
            if let Some(s) = r.get(key).and_then(seconds) {
                durations.insert(s);
            }
        }
        if r.get("day_of_week")
            .and_then(Value::as_array)
            .is_some_and(|d| !d.is_empty())
        {
            midnights = true;
        }
    }

    let mut out = BTreeSet::new();
    if !times.is_empty() || midnights {
        // One day either side so that wrapping windows and offsets are covered; a year at most.
        let first = start.with_timezone(&tz).date_naive() - Days::new(1);
        let last = end.with_timezone(&tz).date_naive() + Days::new(1);
        let mut day = first;
        let mut n = 0;
        while day <= last && n < 400 {
            for t in &times {
                out.extend(resolve_local(tz, day.and_time(*t)));
            }
            if midnights {
                out.extend(resolve_local(tz, day.and_time(NaiveTime::MIN)));
            }
            day = day + Days::new(1);
            n += 1;
        }
    }
    for d in dates {
        out.extend(resolve_local(tz, d.and_time(NaiveTime::MIN)));
    }
    for s in durations {
        if let Some(t) = TimeDelta::try_seconds(s).and_then(|d| start.checked_add_signed(d)) {
            out.insert(t);
        }
    }
    if !times.is_empty() {
        out.extend(offset_changes(tz, start, end));
    }
    out.into_iter().filter(|b| *b > start && *b < end).collect()
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    let t = NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .ok();
    if t.is_none() {
        tracing::warn!(value = s, "tariff restriction time ignored");
    }
    t
}

/// An integer number of seconds; lenient about `300.0` (numbers are compared as Decimal).
fn seconds(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    let d = Decimal::from_str(&n.to_string()).ok()?;
    i64::try_from(d.trunc()).ok()
}

/// The UTC instants of a local wall-clock time (0, 1 or 2 of them; gaps move forward).
fn resolve_local(tz: chrono_tz::Tz, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
    use chrono::LocalResult;
    let mut probe = local;
    for _ in 0..=24 * 60 {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(a, b) => {
                return vec![a.with_timezone(&Utc), b.with_timezone(&Utc)];
            }
            LocalResult::None => probe += TimeDelta::minutes(1),
        }
    }
    Vec::new()
}

/// Instants in `(start, end)` where the zone's UTC offset changes, to the second.
fn offset_changes(
    tz: chrono_tz::Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let step = TimeDelta::minutes(15);
    let mut out = Vec::new();
    let mut t = start;
    while t < end {
        let next = (t + step).min(end);
        if offset(t) != offset(next) {
            let (mut lo, mut hi) = (t, next);
            while hi - lo > TimeDelta::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == offset(lo) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(hi);
        }
        t = next;
    }
    out
}

/// Sums the periods. Hours are exact (`Decimal`), not rounded.
pub fn totals(periods: &[Period]) -> Totals {
    periods.iter().fold(Totals::default(), |mut acc, p| {
        let h = hours(p.end - p.start);
        acc.energy_kwh += p.energy_kwh;
        acc.time_h += h;
        if !p.charging {
            acc.parking_h += h;
        }
        acc
    })
}

/// A duration in hours, exact to the nanosecond.
pub fn hours(d: TimeDelta) -> Decimal {
    let secs = Decimal::from(d.num_seconds()) / Decimal::from(3600);
    let nanos = Decimal::from(d.subsec_nanos()) / Decimal::from(3_600_000_000_000_i64);
    secs + nanos
}

/// A Decimal as an exact JSON number (serde_json `arbitrary_precision` is on in this build).
pub fn json_number(d: Decimal) -> Value {
    serde_json::Number::from_str(&d.normalize().to_string()).map_or(Value::Null, Value::Number)
}

fn round(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(VOLUME_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
}

/// The OCPI `charging_periods`: per period ENERGY (kWh), TIME or PARKING_TIME (hours),
/// MAX_POWER (kW) when known, and `tariff_id` (the period's own, else `tariff_id`).
///
/// Volumes are rounded to [`VOLUME_DECIMALS`] *cumulatively* (each volume is the difference of
/// the rounded running totals), so the rounded volumes add up to the rounded session totals
/// that the CDR reports and ocpi-tariffs recomputes from these periods.
pub fn charging_periods(periods: &[Period], tariff_id: Option<&str>) -> Vec<ChargingPeriod> {
    let Some(first) = periods.first() else {
        return Vec::new();
    };
    let (mut energy, mut energy_rounded) = (Decimal::ZERO, Decimal::ZERO);
    let mut time_rounded = Decimal::ZERO;
    periods
        .iter()
        .map(|p| {
            energy += p.energy_kwh;
            let e = round(energy);
            let t = round(hours(p.end - first.start));
            let (de, dt) = (e - energy_rounded, t - time_rounded);
            (energy_rounded, time_rounded) = (e, t);
            let dimension = |kind, volume: Decimal| CdrDimension {
                kind,
                volume: volume.normalize(),
            };
            let mut dimensions = vec![
                dimension(CdrDimensionType::Energy, de),
                dimension(
                    if p.charging {
                        CdrDimensionType::Time
                    } else {
                        CdrDimensionType::ParkingTime
                    },
                    dt,
                ),
            ];
            if let Some(kw) = p.max_power_kw {
                dimensions.push(dimension(CdrDimensionType::MaxPower, round(kw)));
            }
            ChargingPeriod {
                start_date_time: p.start.into(),
                dimensions,
                tariff_id: p.tariff_id.as_deref().or(tariff_id).map(TariffId::new),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
