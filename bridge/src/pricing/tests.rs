//! Every expected amount below is computed by hand in the comment above it; `price` returns the
//! ocpi-tariffs result, so each assertion is "engine == hand computation".

use super::*;
use crate::periods::{self, Metering, json_number};
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Amsterdam;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn p(excl: &str, incl: &str) -> Price {
    Price {
        excl_vat: d(excl),
        incl_vat: Some(d(incl)),
    }
}

fn energy(at: &str, wh: &str) -> state::MeterSample {
    state::MeterSample {
        v: 1,
        timestamp: t(at),
        measurand: crate::meter::ENERGY_REGISTER.into(),
        value: Some(d(wh)),
        raw: wh.into(),
        unit: "Wh".into(),
        multiplier: 0,
        phase: None,
        context: None,
        location: None,
        format: None,
        signed: None,
    }
}

fn metering(start: &str, end: &str, start_wh: &str, stop_wh: &str) -> Metering {
    Metering {
        start: t(start),
        end: t(end),
        meter_start_wh: Some(d(start_wh)),
        meter_stop_wh: Some(d(stop_wh)),
        samples: Vec::new(),
    }
}

/// A price component; `vat` is a percentage or absent.
fn component(kind: &str, price: &str, vat: Option<&str>, step: u32) -> Value {
    let mut c =
        serde_json::json!({"type": kind, "price": json_number(d(price)), "step_size": step});
    if let Some(v) = vat {
        c["vat"] = json_number(d(v));
    }
    c
}

fn tariff(elements: Value) -> Value {
    serde_json::json!({
        "country_code": "NL", "party_id": "ABC", "id": "T1", "currency": "EUR",
        "elements": elements, "last_updated": "2024-01-01T00:00:00Z",
    })
}

/// What the bridge will do at stop: boundaries from the tariff, periods, CDR JSON without costs.
fn cdr_for(m: &Metering, tariff: &Value) -> Value {
    let boundaries = periods::tariff_boundaries(tariff, Amsterdam, m.start, m.end);
    let ps = periods::periods(m, &boundaries);
    serde_json::json!({
        "country_code": "NL", "party_id": "ABC", "id": "CDR1",
        "start_date_time": ocpi::types::DateTime::from(m.start),
        "end_date_time": ocpi::types::DateTime::from(m.end),
        "currency": "EUR",
        "charging_periods": periods::charging_periods(&ps, tariff["id"].as_str()),
        "last_updated": "2024-07-01T00:00:00Z",
    })
}

fn priced(m: &Metering, tariff: &Value) -> Costs {
    let costs = price(&cdr_for(m, tariff), tariff, Amsterdam).expect("priced");
    assert!(costs.warnings.is_empty(), "{:?}", costs.warnings);
    costs
}

#[test]
fn per_kwh_with_vat_and_wh_step() {
    let tr = tariff(serde_json::json!([
        {"price_components": [component("ENERGY", "0.25", Some("21"), 1)]}
    ]));
    let m = metering(
        "2024-06-01T10:00:00Z",
        "2024-06-01T11:00:00Z",
        "0",
        "12345.6",
    );
    let c = priced(&m, &tr);
    // 12.3456 kWh = 12345.6 Wh; step_size 1 Wh rounds the *billed* energy up to 12346 Wh.
    // excl: 12.346 × 0.25 = 3.0865
    // incl: 3.0865 × 1.21 = 3.734665 → 3.7347 (4 decimals)
    let expected = p("3.0865", "3.7347");
    assert_eq!(c.total_cost, expected);
    assert_eq!(c.total_energy_cost, Some(expected));
    assert_eq!(
        (c.total_time_cost, c.total_parking_cost, c.total_fixed_cost),
        (None, None, None)
    );
    // Volumes are not step-rounded: 12.3456 kWh, 1 h, no parking.
    assert_eq!(
        (c.total_energy, c.total_time, c.total_parking_time),
        (d("12.3456"), d("1"), d("0"))
    );
}

#[test]
fn per_hour_with_five_minute_steps_and_no_vat_field() {
    let tr = tariff(serde_json::json!([
        {"price_components": [component("TIME", "2.00", None, 300)]}
    ]));
    let m = metering("2024-06-01T10:00:00Z", "2024-06-01T10:47:00Z", "0", "10000");
    let c = priced(&m, &tr);
    // 47 min = 2820 s; step 300 s → ceil(2820 / 300) = 10 steps = 3000 s = 50 min.
    // 50/60 h × 2.00 = 1.666… → 1.6667. No `vat` field = no VAT applicable: incl = excl.
    // (The CDR carries TIME 0.7833 h = 2819.88 s; it still rounds up to 10 steps.)
    let expected = p("1.6667", "1.6667");
    assert_eq!(c.total_cost, expected);
    assert_eq!(c.total_time_cost, Some(expected));
    // 47/60 = 0.78333… → 0.7833 h; energy is reported but not priced.
    assert_eq!((c.total_time, c.total_energy), (d("0.7833"), d("10")));
    assert_eq!(c.total_energy_cost, None);
}

#[test]
fn flat_plus_parking_after_charging() {
    let tr = tariff(serde_json::json!([
        {"price_components": [
            component("FLAT", "1.00", Some("21"), 1),
            component("PARKING_TIME", "3.00", Some("21"), 60),
        ]}
    ]));
    let mut m = metering("2024-06-01T12:00:00Z", "2024-06-01T13:30:00Z", "0", "10000");
    m.samples = vec![
        energy("2024-06-01T12:30:00Z", "5000"),
        energy("2024-06-01T13:00:00Z", "10000"),
        energy("2024-06-01T13:15:00Z", "10000"),
    ];
    let c = priced(&m, &tr);
    // Charging 12:00–13:00 (10 kWh), parking 13:00–13:30 (0 Wh delta) = 0.5 h.
    // FLAT once: 1.00 excl, × 1.21 = 1.21 incl.
    // Parking: 30 min is a whole number of 60 s steps; 0.5 h × 3.00 = 1.50, × 1.21 = 1.815.
    // Total: 1.00 + 1.50 = 2.50 excl; 1.21 + 1.815 = 3.025 incl.
    assert_eq!(c.total_fixed_cost, Some(p("1", "1.21")));
    assert_eq!(c.total_parking_cost, Some(p("1.5", "1.815")));
    assert_eq!(c.total_cost, p("2.5", "3.025"));
    assert_eq!(c.total_time_cost, None);
    assert_eq!(
        (c.total_energy, c.total_time, c.total_parking_time),
        (d("10"), d("1.5"), d("0.5"))
    );
}

#[test]
fn cheaper_energy_after_22_local_splits_at_the_boundary() {
    let tr = tariff(serde_json::json!([
        {"price_components": [component("ENERGY", "0.20", Some("21"), 1)],
         "restrictions": {"start_time": "22:00", "end_time": "07:00"}},
        {"price_components": [component("ENERGY", "0.30", Some("21"), 1)]},
    ]));
    // 21:00–23:00 CEST (UTC+2) = 19:00Z–21:00Z; 22:00 local = 20:00Z.
    let mut m = metering("2024-06-01T19:00:00Z", "2024-06-01T21:00:00Z", "0", "22000");
    m.samples = vec![
        energy("2024-06-01T19:40:00Z", "8000"),
        energy("2024-06-01T20:20:00Z", "16000"),
    ];
    let cdr = cdr_for(&m, &tr);
    assert_eq!(cdr["charging_periods"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        cdr["charging_periods"][1]["start_date_time"],
        "2024-06-01T20:00:00Z"
    );
    let c = priced(&m, &tr);
    // Before 22:00: 8 kWh + half of the 19:40–20:20 interval (4 kWh) = 12 kWh × 0.30 = 3.60
    // After 22:00: 4 kWh + 6 kWh = 10 kWh × 0.20 = 2.00
    // excl 3.60 + 2.00 = 5.60; incl 5.60 × 1.21 = 6.776. Total 22000 Wh is a whole step.
    assert_eq!(c.total_cost, p("5.6", "6.776"));
    assert_eq!(c.total_energy_cost, Some(p("5.6", "6.776")));
    assert_eq!(c.total_energy, d("22"));

    // Control: without the split the only period starts at 21:00 local and the whole session
    // is priced at day rate: 22 × 0.30 = 6.60 — why periods must be cut at tariff changes.
    let mut unsplit = cdr.clone();
    unsplit["charging_periods"] = serde_json::to_value(periods::charging_periods(
        &periods::periods(&m, &[]),
        Some("T1"),
    ))
    .unwrap();
    let c = price(&unsplit, &tr, Amsterdam).expect("priced");
    assert_eq!(c.total_cost.excl_vat, d("6.6"));
}

#[test]
fn step_size_applies_to_parking_only_when_charging_is_followed_by_parking() {
    let tr = tariff(serde_json::json!([
        {"price_components": [
            component("TIME", "2.00", None, 300),
            component("PARKING_TIME", "3.00", None, 300),
        ]}
    ]));
    let mut m = metering("2024-06-01T10:00:00Z", "2024-06-01T10:37:00Z", "0", "4000");
    m.samples = vec![energy("2024-06-01T10:21:00Z", "4000")];
    let c = priced(&m, &tr);
    // Spec (CDR step_size): with TIME and PARKING_TIME only the parking total is stepped.
    // Charging 21 min, not rounded: 21/60 × 2.00 = 0.70
    // Parking 16 min → 20 min (4 × 300 s): 20/60 × 3.00 = 1.00
    assert_eq!(c.total_time_cost, Some(p("0.7", "0.7")));
    assert_eq!(c.total_parking_cost, Some(p("1", "1")));
    assert_eq!(c.total_cost, p("1.7", "1.7"));
    // 16/60 = 0.2666… → 0.2667 h parking; 37/60 = 0.61666… → 0.6167 h in total.
    assert_eq!(
        (c.total_parking_time, c.total_time),
        (d("0.2667"), d("0.6167"))
    );
}

#[test]
fn min_price_clamps_the_total_and_warns() {
    let mut tr = tariff(serde_json::json!([
        {"price_components": [component("ENERGY", "0.25", None, 1)]}
    ]));
    tr["min_price"] =
        serde_json::json!({"excl_vat": json_number(d("5")), "incl_vat": json_number(d("5"))});
    let m = metering("2024-06-01T10:00:00Z", "2024-06-01T11:00:00Z", "0", "2000");
    let c = price(&cdr_for(&m, &tr), &tr, Amsterdam).expect("priced");
    // 2 kWh × 0.25 = 0.50 < min_price 5.00 → total 5.00; the energy cost stays 0.50.
    assert_eq!(c.total_cost, p("5", "5"));
    assert_eq!(c.total_energy_cost, Some(p("0.5", "0.5")));
    assert!(!c.warnings.is_empty());
}

#[test]
fn errors_are_reported_with_the_engine_message() {
    let tr = tariff(serde_json::json!([
        {"price_components": [component("ENERGY", "0.25", None, 1)]}
    ]));
    let m = metering("2024-06-01T10:00:00Z", "2024-06-01T11:00:00Z", "0", "2000");
    let cdr = cdr_for(&m, &tr);

    let mut usd = tr.clone();
    usd["currency"] = "USD".into();
    assert!(matches!(
        price(&cdr, &usd, Amsterdam),
        Err(PricingError::CurrencyMismatch { .. })
    ));

    let mut later = tr.clone();
    later["start_date_time"] = "2025-01-01T00:00:00Z".into();
    let err = price(&cdr, &later, Amsterdam).expect_err("tariff not yet valid");
    assert!(matches!(err, PricingError::Engine { .. }));
    assert!(err.to_string().contains("No valid tariff"), "{err}");

    let mut no_periods = cdr.clone();
    no_periods["charging_periods"] = serde_json::json!([]);
    let err = price(&no_periods, &tr, Amsterdam).expect_err("no periods");
    assert!(err.to_string().contains("no charging periods"), "{err}");

    assert!(matches!(
        price(&serde_json::json!([]), &tr, Amsterdam),
        Err(PricingError::NotAnObject)
    ));
}

#[test]
fn free_tariff_costs_zero() {
    let tr = tariff(serde_json::json!([
        {"price_components": [component("FLAT", "0", None, 0)]}
    ]));
    let m = metering("2024-06-01T10:00:00Z", "2024-06-01T11:00:00Z", "0", "2000");
    let c = priced(&m, &tr);
    assert_eq!(c.total_cost, p("0", "0"));
}

#[test]
fn a_session_priced_at_its_start_instant_has_no_range_warning() {
    // A Session rendered when it started: no reading yet, start = end, one period at start.
    // FLAT 1.50 is due at once; no time, no energy.
    let tr = tariff(serde_json::json!([
        {"price_components": [component("FLAT", "1.50", None, 0), component("TIME", "2", None, 900)]}
    ]));
    let m = metering("2024-06-01T10:00:00Z", "2024-06-01T10:00:00Z", "0", "0");
    let c = priced(&m, &tr);
    assert_eq!(c.total_cost, p("1.5", "1.5"));
    assert_eq!(c.total_time, d("0"));
}

#[test]
fn periods_outside_the_session_still_warn() {
    let tr = tariff(serde_json::json!([
        {"price_components": [component("ENERGY", "0.25", None, 1)]}
    ]));
    let m = metering("2024-06-01T10:00:00Z", "2024-06-01T11:00:00Z", "0", "2000");
    let mut cdr = cdr_for(&m, &tr);
    cdr["start_date_time"] = "2024-06-01T10:30:00Z".into();
    assert!(!periods_within_session(&cdr));
    let c = price(&cdr, &tr, Amsterdam).expect("priced");
    assert!(
        c.warnings.iter().any(|w| w.contains("not contained")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn periods_within_session_is_the_closed_range() {
    let cdr = |start: &str, end: &str, periods: &[&str]| {
        serde_json::json!({
            "start_date_time": start,
            "end_date_time": end,
            "charging_periods": periods
                .iter()
                .map(|p| serde_json::json!({"start_date_time": p}))
                .collect::<Vec<_>>(),
        })
    };
    let (a, b, c) = (
        "2024-06-01T10:00:00Z",
        "2024-06-01T10:30:00.5Z",
        "2024-06-01T11:00:00Z",
    );
    assert!(periods_within_session(&cdr(a, c, &[a, b])));
    assert!(periods_within_session(&cdr(a, a, &[a])));
    assert!(periods_within_session(&cdr(a, c, &[a, c])));
    assert!(!periods_within_session(&cdr(b, c, &[a])));
    assert!(!periods_within_session(&cdr(a, b, &[a, c])));
    assert!(!periods_within_session(&cdr(c, a, &[c])));
    assert!(!periods_within_session(&cdr(a, "yesterday", &[a])));
    assert!(!periods_within_session(&serde_json::json!({})));
}
