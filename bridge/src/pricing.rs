//! CDR pricing: the costs of an OCPI 2.2.1 CDR under one tariff, computed by `ocpi-tariffs`.
//!
//! Owns the boundary to the `ocpi-tariffs` crate (=0.48.0). That crate works on JSON *text*
//! with its own lenient parser (not our serde types), so the CDR and tariff are serialised,
//! parsed as OCPI 2.2.1, priced with the tariff as an override, and the *calculated* totals are
//! copied out of its report. Pure: no I/O.
//!
//! What the engine does (verified against its source, and by the hand-computed tests):
//! - Restrictions are evaluated at each charging period's **start** in the given time zone, so
//!   periods must already be split at tariff changes ([`crate::periods::tariff_boundaries`]).
//! - `step_size` is applied once per session on the dimension total, using the step of the
//!   last period with that dimension; with PARKING_TIME present only the parking total is
//!   stepped, never the charging time (as the spec's examples say).
//! - FLAT is charged once, in the first period whose element has one.
//! - VAT: `incl_vat = excl_vat × (1 + vat/100)` per dimension; no `vat` field means "no VAT
//!   applicable" and `incl_vat = excl_vat`.
//! - `min_price` / `max_price` clamp the total cost only.
//! - Totals are rounded to 4 decimals with ties to even (`MidpointNearestEven`); the sums are
//!   of unrounded per-period costs, so there is no rounding drift between dimensions.
//! - It checks that every charging period starts inside the *half-open* range
//!   `[start_date_time, end_date_time)`. The range we hand over is the session's own, and our
//!   periods start inside it, but a session of zero duration (a Session priced at the instant it
//!   started, before any reading) has the empty range `[start, start)`. [`periods_within_session`]
//!   checks the closed range itself; when that holds, the engine's warning is a false alarm and
//!   is not reported (the costs do not depend on it).

use rust_decimal::Decimal;
use serde_json::Value;

use ocpi_tariffs::{ToHoursDecimal as _, Version, cdr, price as engine, tariff as tariff_json};

/// Decimal places of the returned amounts and volumes.
pub const DECIMALS: u32 = 4;

/// An amount of money as on an OCPI `Price`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    /// Amount excluding VAT.
    pub excl_vat: Decimal,
    /// Amount including VAT; `None` when the VAT is unknown.
    pub incl_vat: Option<Decimal>,
}

impl Price {
    /// Zero excl. and incl. VAT (a free session still has a `total_cost`).
    pub const ZERO: Price = Price {
        excl_vat: Decimal::ZERO,
        incl_vat: Some(Decimal::ZERO),
    };
}

/// The cost and volume totals of a priced CDR, as the engine calculated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Costs {
    /// `total_cost` (after `min_price` / `max_price`).
    pub total_cost: Price,
    /// `total_energy_cost`; `None` when no ENERGY component applied.
    pub total_energy_cost: Option<Price>,
    /// `total_time_cost` (charging time); `None` when no TIME component applied.
    pub total_time_cost: Option<Price>,
    /// `total_parking_cost`; `None` when no PARKING_TIME component applied.
    pub total_parking_cost: Option<Price>,
    /// `total_fixed_cost` (FLAT); `None` when no FLAT component applied.
    pub total_fixed_cost: Option<Price>,
    /// `total_energy`, kWh (sum of the periods' ENERGY volumes, not the step-rounded volume).
    pub total_energy: Decimal,
    /// `total_time`, hours (first period start to CDR end).
    pub total_time: Decimal,
    /// `total_parking_time`, hours (sum of PARKING_TIME volumes).
    pub total_parking_time: Decimal,
    /// Non-fatal engine warnings (`path: message`), e.g. a clamped total or unexpected fields;
    /// already logged, kept so that callers can surface them on the admin API.
    pub warnings: Vec<String>,
}

/// Why a CDR could not be priced.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The CDR JSON is not an object.
    #[error("the CDR to price is not a JSON object")]
    NotAnObject,
    /// Serialising the JSON for the engine failed.
    #[error("cannot serialise the {0} for ocpi-tariffs: {1}")]
    Serialise(&'static str, #[source] serde_json::Error),
    /// The CDR and the tariff are in different currencies.
    #[error("currency mismatch: the CDR is in {cdr}, the tariff in {tariff}")]
    CurrencyMismatch {
        /// The CDR's `currency`.
        cdr: String,
        /// The tariff's `currency`.
        tariff: String,
    },
    /// ocpi-tariffs could not parse the CDR or the tariff.
    #[error("ocpi-tariffs cannot parse the {object}: {message}")]
    Parse {
        /// `"CDR"` or `"tariff"`.
        object: &'static str,
        /// The engine's message.
        message: String,
    },
    /// ocpi-tariffs refused to price (e.g. no valid tariff for the session start).
    #[error("ocpi-tariffs cannot price the CDR: {error}; warnings: [{}]", warnings.join("; "))]
    Engine {
        /// The warning that was upgraded to an error.
        error: String,
        /// All other warnings, `path: message`.
        warnings: Vec<String>,
    },
}

/// Prices an OCPI 2.2.1 CDR (costs absent or placeholders) with `tariff` in time zone `tz` (the
/// Location's `time_zone`, used for time-of-day / day-of-week restrictions).
///
/// The engine requires the CDR's totals to be present (it compares them with its own
/// results), so missing `total_cost` / `total_energy` / `total_time` are filled with zero
/// placeholders; only the *calculated* values are returned. A `tariffs` array inside the CDR is
/// ignored: `tariff` always wins.
pub fn price(
    cdr_without_costs: &Value,
    tariff: &Value,
    tz: chrono_tz::Tz,
) -> Result<Costs, PricingError> {
    let mut cdr_value = cdr_without_costs.clone();
    let obj = cdr_value.as_object_mut().ok_or(PricingError::NotAnObject)?;
    obj.entry("total_cost")
        .or_insert_with(|| serde_json::json!({"excl_vat": 0, "incl_vat": 0}));
    obj.entry("total_energy")
        .or_insert_with(|| serde_json::json!(0));
    obj.entry("total_time")
        .or_insert_with(|| serde_json::json!(0));

    let currency = |v: &Value| v.get("currency").and_then(Value::as_str).map(str::to_owned);
    if let (Some(cdr), Some(tariff)) = (currency(&cdr_value), currency(tariff))
        && !cdr.eq_ignore_ascii_case(&tariff)
    {
        return Err(PricingError::CurrencyMismatch { cdr, tariff });
    }

    let cdr_text =
        serde_json::to_string(&cdr_value).map_err(|e| PricingError::Serialise("CDR", e))?;
    let tariff_text =
        serde_json::to_string(tariff).map_err(|e| PricingError::Serialise("tariff", e))?;

    let cdr::ParseReport {
        cdr: parsed_cdr,
        unexpected_fields: cdr_unexpected,
    } = cdr::parse_with_version(&cdr_text, Version::V221).map_err(|e| PricingError::Parse {
        object: "CDR",
        message: e.to_string(),
    })?;
    let tariff_json::ParseReport {
        tariff: parsed_tariff,
        unexpected_fields: tariff_unexpected,
    } = tariff_json::parse_with_version(&tariff_text, Version::V221).map_err(|e| {
        PricingError::Parse {
            object: "tariff",
            message: e.to_string(),
        }
    })?;

    let mut warnings: Vec<String> = Vec::new();
    for path in &cdr_unexpected {
        warnings.push(format!("CDR {path}: unexpected field"));
    }
    for path in &tariff_unexpected {
        warnings.push(format!("tariff {path}: unexpected field"));
    }

    let in_range = periods_within_session(&cdr_value);
    let verdict = cdr::price(&parsed_cdr, engine::TariffSource::single(parsed_tariff), tz);
    let (report, engine_warnings) = match verdict {
        Ok(caveat) => caveat.into_parts(),
        Err(set) => {
            let (error, rest) = set.into_parts();
            warnings.extend(engine_messages(&rest, in_range));
            return Err(PricingError::Engine {
                error: error.to_string(),
                warnings,
            });
        }
    };
    warnings.extend(engine_messages(&engine_warnings, in_range));
    for t in &report.tariff_reports {
        for (path, ws) in &t.warnings {
            warnings.extend(ws.iter().map(|w| format!("tariff {path}: {w}")));
        }
    }
    for w in &warnings {
        tracing::warn!(warning = %w, "ocpi-tariffs pricing warning");
    }

    let costs = Costs {
        total_cost: report
            .total_cost
            .calculated
            .map_or(Price::ZERO, from_engine),
        total_energy_cost: report.total_energy_cost.calculated.map(from_engine),
        total_time_cost: report.total_charging_time_cost.calculated.map(from_engine),
        total_parking_cost: report.total_idle_cost.calculated.map(from_engine),
        total_fixed_cost: report.total_fixed_cost.calculated.map(from_engine),
        total_energy: report
            .total_energy
            .calculated
            .map_or(Decimal::ZERO, |k| round(Decimal::from(k))),
        total_time: round(report.total_time.calculated.to_hours_dec()),
        total_parking_time: report
            .total_idle_time
            .calculated
            .map_or(Decimal::ZERO, |d| round(d.to_hours_dec())),
        warnings,
    };
    Ok(costs)
}

/// `path: message` for every engine warning, without the half-open range complaint when the
/// periods are inside the session's closed range (see the module docs).
fn engine_messages(
    set: &ocpi_tariffs::warning::Set<engine::Warning>,
    in_range: bool,
) -> Vec<String> {
    set.path_map()
        .into_iter()
        .flat_map(|(path, ws)| {
            ws.into_iter()
                .filter(move |w| {
                    !(in_range
                        && matches!(w, engine::Warning::PeriodsOutsideStartEndDateTime { .. }))
                })
                .map(move |w| format!("{path}: {w}"))
        })
        .collect()
}

/// Whether the CDR has a readable `start_date_time` ≤ `end_date_time` and every charging period
/// starts inside that closed range — the range the engine is handed matches the session.
pub fn periods_within_session(cdr: &Value) -> bool {
    let time = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    let (Some(start), Some(end)) = (
        time(cdr.get("start_date_time")),
        time(cdr.get("end_date_time")),
    ) else {
        return false;
    };
    if end < start {
        return false;
    }
    let Some(periods) = cdr.get("charging_periods").and_then(Value::as_array) else {
        return false;
    };
    periods
        .iter()
        .all(|p| time(p.get("start_date_time")).is_some_and(|t| start <= t && t <= end))
}

fn from_engine(p: ocpi_tariffs::Price) -> Price {
    Price {
        excl_vat: round(Decimal::from(p.excl_vat)),
        incl_vat: p.incl_vat.map(|v| round(Decimal::from(v))),
    }
}

/// 4 decimals, ties to even like the engine (a no-op on its already rounded totals).
fn round(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(
        DECIMALS,
        rust_decimal::RoundingStrategy::MidpointNearestEven,
    )
    .normalize()
}

#[cfg(test)]
mod tests;
