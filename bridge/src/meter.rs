//! Meter-value translation: OCPP samples to stored samples, and energy readings in Wh.
//!
//! Pure functions: stations report energy in `Wh` or `kWh`, 2.0.1 adds a power-of-ten
//! multiplier, 1.6 sends text. Everything downstream (kWh on Sessions, CDR totals) works on
//! the normalised Wh value computed here.

use rust_decimal::Decimal;

/// The measurand that carries the cumulative imported energy.
pub const ENERGY_REGISTER: &str = "Energy.Active.Import.Register";

/// Converts an OCPP sampled value into the stored form.
pub fn to_sample(
    timestamp: chrono::DateTime<chrono::Utc>,
    s: &ocpp::SampledValue,
) -> state::MeterSample {
    state::MeterSample {
        v: state::SCHEMA_VERSION,
        timestamp,
        measurand: s.measurand.clone(),
        value: s.value,
        raw: s.raw.clone(),
        unit: s.unit.clone(),
        multiplier: s.multiplier,
        phase: s.phase.clone(),
        context: s.context.clone(),
        location: s.location.clone(),
        format: s.format.clone(),
        signed: s.signed.as_ref().map(|sig| state::SignedData {
            signed_meter_data: sig.signed_meter_data.clone(),
            signing_method: sig.signing_method.clone(),
            encoding_method: sig.encoding_method.clone(),
            public_key: sig.public_key.clone(),
        }),
    }
}

/// All samples of a list of meter values, in the stored form.
pub fn to_samples(values: &[ocpp::MeterValue]) -> Vec<state::MeterSample> {
    values
        .iter()
        .flat_map(|mv| mv.sampled.iter().map(move |s| to_sample(mv.timestamp, s)))
        .collect()
}

/// The cumulative imported energy of a sample in Wh, if it is a phase-less energy register
/// reading with a known unit. Per-phase readings are ignored: the total is what is billed.
pub fn energy_wh(s: &state::MeterSample) -> Option<Decimal> {
    if s.measurand != ENERGY_REGISTER || s.phase.is_some() || s.signed.is_some() {
        return None;
    }
    let value = s.value?;
    let base = match s.unit.as_str() {
        "Wh" | "wh" | "WH" => value,
        "kWh" | "kwh" | "KWH" | "KWh" => value * Decimal::from(1000),
        _ => return None,
    };
    scale(base, s.multiplier)
}

/// `value × 10^exp`, exactly, or `None` when out of range.
fn scale(value: Decimal, exp: i32) -> Option<Decimal> {
    let ten = Decimal::from(10);
    let mut v = value;
    if exp >= 0 {
        for _ in 0..exp {
            v = v.checked_mul(ten)?;
        }
    } else {
        for _ in 0..(-exp) {
            v = v.checked_div(ten)?;
        }
    }
    Some(v)
}

/// What a set of samples says about a transaction's energy register.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnergyReadings {
    /// Reading with context `Transaction.Begin`, else the earliest one.
    pub begin: Option<Decimal>,
    /// Reading with context `Transaction.End`.
    pub end: Option<Decimal>,
    /// The reading with the latest timestamp.
    pub last: Option<(chrono::DateTime<chrono::Utc>, Decimal)>,
    /// The reading with the earliest timestamp.
    pub first: Option<(chrono::DateTime<chrono::Utc>, Decimal)>,
}

/// Collects the energy register readings of some samples.
pub fn energy_readings(samples: &[state::MeterSample]) -> EnergyReadings {
    let mut r = EnergyReadings::default();
    for s in samples {
        let Some(wh) = energy_wh(s) else { continue };
        match s.context.as_deref() {
            Some("Transaction.Begin") => r.begin = Some(wh),
            Some("Transaction.End") => r.end = Some(wh),
            _ => {}
        }
        if r.last.is_none_or(|(t, _)| s.timestamp >= t) {
            r.last = Some((s.timestamp, wh));
        }
        if r.first.is_none_or(|(t, _)| s.timestamp < t) {
            r.first = Some((s.timestamp, wh));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::str::FromStr;

    fn sample(measurand: &str, value: &str, unit: &str, multiplier: i32) -> state::MeterSample {
        state::MeterSample {
            v: 1,
            timestamp: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            measurand: measurand.into(),
            value: Decimal::from_str(value).ok(),
            raw: value.into(),
            unit: unit.into(),
            multiplier,
            phase: None,
            context: None,
            location: None,
            format: None,
            signed: None,
        }
    }

    #[test]
    fn energy_is_normalised_to_wh() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(
            energy_wh(&sample(ENERGY_REGISTER, "1234.5", "Wh", 0)),
            Some(d("1234.5"))
        );
        assert_eq!(
            energy_wh(&sample(ENERGY_REGISTER, "1.2345", "kWh", 0)),
            Some(d("1234.5"))
        );
        assert_eq!(
            energy_wh(&sample(ENERGY_REGISTER, "12", "Wh", 3)),
            Some(d("12000"))
        );
        assert_eq!(
            energy_wh(&sample(ENERGY_REGISTER, "12", "kWh", -1)),
            Some(d("1200"))
        );
    }

    #[test]
    fn other_measurands_units_and_phases_are_not_energy() {
        assert_eq!(
            energy_wh(&sample("Power.Active.Import", "7000", "W", 0)),
            None
        );
        assert_eq!(energy_wh(&sample(ENERGY_REGISTER, "1", "varh", 0)), None);
        let mut phased = sample(ENERGY_REGISTER, "10", "Wh", 0);
        phased.phase = Some("L1".into());
        assert_eq!(energy_wh(&phased), None);
    }

    #[test]
    fn readings_pick_begin_end_and_latest() {
        let mut a = sample(ENERGY_REGISTER, "100", "Wh", 0);
        a.context = Some("Transaction.Begin".into());
        let mut b = sample(ENERGY_REGISTER, "300", "Wh", 0);
        b.timestamp = a.timestamp + chrono::Duration::seconds(60);
        let mut c = sample(ENERGY_REGISTER, "200", "Wh", 0);
        c.timestamp = a.timestamp + chrono::Duration::seconds(30);
        let r = energy_readings(&[b.clone(), a.clone(), c]);
        assert_eq!(r.begin, Some(Decimal::from(100)));
        assert_eq!(r.last, Some((b.timestamp, Decimal::from(300))));
        assert_eq!(r.first, Some((a.timestamp, Decimal::from(100))));
        assert_eq!(r.end, None);
    }
}
