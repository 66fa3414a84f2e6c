//! Meter-value translation: OCPP samples to stored samples, and energy readings in Wh.
//!
//! Pure functions: stations report energy in `Wh` or `kWh`, 2.0.1 adds a power-of-ten
//! multiplier, 1.6 sends text. Everything downstream (kWh on Sessions, CDR totals) works on
//! the normalised Wh value computed here.
//!
//! Signed readings: a 2.0.1 sampled value with a `signedMeterValue` carries the reading in its
//! numeric `value` and the signature beside it, so it counts for energy like any other reading
//! (Eichrecht stations sign exactly the Transaction.Begin and Transaction.End readings). A 1.6
//! `SignedData` value is the signed blob itself: the OCPP adapter stores it without a numeric
//! value, so it never counts. The signature goes into the CDR's `signed_data` either way.

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
/// reading with a known unit and a numeric value. Per-phase readings are ignored: the total is
/// what is billed. A signature beside the value (2.0.1 `signedMeterValue`) does not change the
/// reading; a 1.6 `SignedData` blob has no numeric value and is not a reading.
pub fn energy_wh(s: &state::MeterSample) -> Option<Decimal> {
    if s.measurand != ENERGY_REGISTER || s.phase.is_some() {
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

    fn signature() -> state::SignedData {
        state::SignedData {
            signed_meter_data: "T0NNRnx7fQ==".into(),
            signing_method: "ECDSA-secp256r1-SHA256".into(),
            encoding_method: "OCMF".into(),
            public_key: None,
        }
    }

    #[test]
    fn a_201_signed_reading_counts_with_its_numeric_value() {
        let mut s = sample(ENERGY_REGISTER, "1234.5", "Wh", 0);
        s.signed = Some(signature());
        assert_eq!(energy_wh(&s), Some(Decimal::from_str("1234.5").unwrap()));
        let mut k = sample(ENERGY_REGISTER, "2.5", "kWh", 0);
        k.signed = Some(signature());
        assert_eq!(energy_wh(&k), Some(Decimal::from(2500)));
    }

    #[test]
    fn a_16_signed_data_blob_is_not_a_reading() {
        // The 1.6 adapter keeps `SignedData` raw, without a numeric value.
        let mut s = sample(ENERGY_REGISTER, "OCMF|{}|{}", "Wh", 0);
        s.format = Some("SignedData".into());
        s.signed = Some(signature());
        assert_eq!(s.value, None);
        assert_eq!(energy_wh(&s), None);
    }

    #[test]
    fn signed_begin_and_end_alone_give_the_span() {
        let mut begin = sample(ENERGY_REGISTER, "1000", "Wh", 0);
        begin.context = Some("Transaction.Begin".into());
        begin.signed = Some(signature());
        let mut end = sample(ENERGY_REGISTER, "3300", "Wh", 0);
        end.context = Some("Transaction.End".into());
        end.timestamp = begin.timestamp + chrono::Duration::minutes(30);
        end.signed = Some(signature());
        let r = energy_readings(&[begin, end]);
        assert_eq!(r.begin, Some(Decimal::from(1000)));
        assert_eq!(r.end, Some(Decimal::from(3300)));
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
