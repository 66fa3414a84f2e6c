//! Tests of charging-period computation and tariff boundaries.

use super::*;
use chrono_tz::Europe::Amsterdam;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn sample(at: &str, measurand: &str, value: &str, unit: &str) -> state::MeterSample {
    state::MeterSample {
        v: 1,
        timestamp: t(at),
        measurand: measurand.into(),
        value: Some(d(value)),
        raw: value.into(),
        unit: unit.into(),
        multiplier: 0,
        phase: None,
        context: None,
        location: None,
        format: None,
        signed: None,
    }
}

fn energy(at: &str, wh: &str) -> state::MeterSample {
    sample(at, crate::meter::ENERGY_REGISTER, wh, "Wh")
}

fn metering(start: &str, end: &str, samples: Vec<state::MeterSample>) -> Metering {
    Metering {
        start: t(start),
        end: t(end),
        meter_start_wh: None,
        meter_stop_wh: None,
        samples,
    }
}

/// (start, end, kWh, charging) of each period, for compact assertions.
fn shape(ps: &[Period]) -> Vec<(DateTime<Utc>, DateTime<Utc>, Decimal, bool)> {
    ps.iter()
        .map(|p| (p.start, p.end, p.energy_kwh, p.charging))
        .collect()
}

#[test]
fn meter_start_and_stop_give_one_charging_period() {
    let mut m = metering("2024-06-01T10:00:00Z", "2024-06-01T11:00:00Z", vec![]);
    m.meter_start_wh = Some(d("1000"));
    m.meter_stop_wh = Some(d("13345.6"));
    // (13345.6 − 1000) Wh / 1000 = 12.3456 kWh
    assert_eq!(
        shape(&periods(&m, &[])),
        vec![(m.start, m.end, d("12.3456"), true)]
    );
}

#[test]
fn zero_delta_is_parking_and_equal_states_merge() {
    let mut m = metering(
        "2024-06-01T12:00:00Z",
        "2024-06-01T13:30:00Z",
        vec![
            energy("2024-06-01T12:30:00Z", "5000"),
            energy("2024-06-01T13:15:00Z", "10000"),
            energy("2024-06-01T13:00:00Z", "10000"), // out of order on purpose
        ],
    );
    m.meter_start_wh = Some(d("0"));
    m.meter_stop_wh = Some(d("10000"));
    let ps = periods(&m, &[]);
    assert_eq!(
        shape(&ps),
        vec![
            (m.start, t("2024-06-01T13:00:00Z"), d("10"), true),
            (t("2024-06-01T13:00:00Z"), m.end, d("0"), false),
        ]
    );
    let tot = totals(&ps);
    assert_eq!(tot.energy_kwh, d("10"));
    assert_eq!(tot.time_h, d("1.5"));
    assert_eq!(tot.parking_h, d("0.5"));
}

#[test]
fn boundary_splits_an_interval_linearly_and_keeps_periods_apart() {
    let mut m = metering(
        "2024-06-01T19:00:00Z",
        "2024-06-01T21:00:00Z",
        vec![
            energy("2024-06-01T19:40:00Z", "8000"),
            energy("2024-06-01T20:20:00Z", "16000"),
        ],
    );
    m.meter_start_wh = Some(d("0"));
    m.meter_stop_wh = Some(d("22000"));
    // Boundary 20:00 cuts 19:40–20:20 (8000 Wh) in half: 4000 Wh each side.
    // before: 8000 + 4000 = 12 kWh; after: 4000 + (22000 − 16000) = 10 kWh.
    let ps = periods(&m, &[t("2024-06-01T20:00:00Z"), t("2024-06-02T20:00:00Z")]);
    assert_eq!(
        shape(&ps),
        vec![
            (m.start, t("2024-06-01T20:00:00Z"), d("12"), true),
            (t("2024-06-01T20:00:00Z"), m.end, d("10"), true),
        ]
    );
    // Without the boundary the two charging stretches are one period.
    assert_eq!(periods(&m, &[]).len(), 1);
}

#[test]
fn uneven_split_adds_up_exactly() {
    let mut m = metering("2024-06-01T10:00:00Z", "2024-06-01T10:03:00Z", vec![]);
    m.meter_start_wh = Some(d("0"));
    m.meter_stop_wh = Some(d("1000"));
    let ps = periods(&m, &[t("2024-06-01T10:01:00Z"), t("2024-06-01T10:02:00Z")]);
    assert_eq!(ps.len(), 3);
    // 1000 Wh / 3 has no exact decimal; the pieces still sum to exactly 1 kWh.
    assert_eq!(totals(&ps).energy_kwh, d("1"));
    assert!(ps[0].energy_kwh > d("0.3333") && ps[0].energy_kwh < d("0.3334"));
}

#[test]
fn meter_reset_contributes_zero_but_is_not_parking() {
    let mut m = metering(
        "2024-06-01T10:00:00Z",
        "2024-06-01T10:30:00Z",
        vec![
            energy("2024-06-01T10:10:00Z", "5000"),
            energy("2024-06-01T10:20:00Z", "100"),
        ],
    );
    m.meter_start_wh = Some(d("0"));
    m.meter_stop_wh = Some(d("600"));
    let ps = periods(&m, &[]);
    // 5000 + 0 (reset) + (600 − 100) = 5.5 kWh; all charging, so one period.
    assert_eq!(shape(&ps), vec![(m.start, m.end, d("5.5"), true)]);
}

#[test]
fn an_integer_meter_stop_just_below_a_decimal_sample_is_not_a_decrease() {
    // 1.6: meterStart 1000, a sample of 28470.47 Wh at 10:50, meterStop 28470 (integer Wh,
    // truncated). The stop is the same register: billed up to 28470.47, the last 10 minutes
    // without energy are parking.
    let mut m = metering(
        "2024-06-01T10:00:00Z",
        "2024-06-01T11:00:00Z",
        vec![energy("2024-06-01T10:50:00Z", "28470.47")],
    );
    m.meter_start_wh = Some(d("1000"));
    m.meter_stop_wh = Some(d("28470"));
    assert_eq!(
        shape(&periods(&m, &[])),
        vec![
            (m.start, t("2024-06-01T10:50:00Z"), d("27.47047"), true),
            (t("2024-06-01T10:50:00Z"), m.end, d("0"), false),
        ]
    );
}

#[test]
fn effective_readings_absorb_sub_wh_drops_only() {
    let at = |m: i64| t("2024-06-01T10:00:00Z") + TimeDelta::minutes(m);
    let pts = vec![
        (at(0), d("10.6")),
        (at(1), d("10")),    // 0.6 Wh below: the same register, rounded → 10.6
        (at(2), d("11.3")),  // real progress
        (at(3), d("10.3")),  // exactly 1 Wh below: a real decrease, kept
        (at(4), d("10.25")), // 0.05 below the kept 10.3 → 10.3
    ];
    assert_eq!(
        effective_readings(&pts),
        vec![
            (at(0), d("10.6")),
            (at(1), d("10.6")),
            (at(2), d("11.3")),
            (at(3), d("10.3")),
            (at(4), d("10.3")),
        ]
    );
    assert!(effective_readings(&[]).is_empty());
}

#[test]
fn unknown_energy_is_charging_known_zero_is_parking() {
    let m = metering("2024-06-01T10:00:00Z", "2024-06-01T11:00:00Z", vec![]);
    assert_eq!(
        shape(&periods(&m, &[])),
        vec![(m.start, m.end, d("0"), true)]
    );
    let mut only_start = m.clone();
    only_start.meter_start_wh = Some(d("42"));
    assert!(periods(&only_start, &[])[0].charging);

    let mut zero = m.clone();
    zero.meter_start_wh = Some(d("500"));
    zero.meter_stop_wh = Some(d("500"));
    assert_eq!(
        shape(&periods(&zero, &[])),
        vec![(m.start, m.end, d("0"), false)]
    );
}

#[test]
fn gaps_without_register_values_fold_into_measured_intervals() {
    let m = metering(
        "2024-06-01T10:00:00Z",
        "2024-06-01T11:00:00Z",
        vec![
            energy("2024-06-01T10:10:00Z", "1000"),
            energy("2024-06-01T10:20:00Z", "1000"),
            energy("2024-06-01T10:50:00Z", "3000"),
        ],
    );
    // 10:00–10:20 stretches the first measured interval (0 Wh → parking);
    // 10:20–11:00 stretches the last one (2000 Wh). Total = last − first register.
    assert_eq!(
        shape(&periods(&m, &[])),
        vec![
            (m.start, t("2024-06-01T10:20:00Z"), d("0"), false),
            (t("2024-06-01T10:20:00Z"), m.end, d("2"), true),
        ]
    );
}

#[test]
fn readings_at_one_instant_keep_their_energy() {
    let mut m = metering(
        "2024-06-01T10:00:00Z",
        "2024-06-01T10:30:00Z",
        vec![
            energy("2024-06-01T10:00:00Z", "100"), // Transaction.Begin after meterStart
            energy("2024-06-01T10:15:00Z", "1100"),
        ],
    );
    m.meter_start_wh = Some(d("0"));
    m.meter_stop_wh = Some(d("1100"));
    // 100 Wh in zero time goes to the next interval: 10:00–10:15 = 1.1 kWh, then parking.
    assert_eq!(
        shape(&periods(&m, &[])),
        vec![
            (m.start, t("2024-06-01T10:15:00Z"), d("1.1"), true),
            (t("2024-06-01T10:15:00Z"), m.end, d("0"), false),
        ]
    );
}

#[test]
fn zero_length_session_is_one_period() {
    let mut m = metering("2024-06-01T10:00:00Z", "2024-06-01T10:00:00Z", vec![]);
    m.meter_start_wh = Some(d("0"));
    m.meter_stop_wh = Some(d("10"));
    assert_eq!(
        shape(&periods(&m, &[])),
        vec![(m.start, m.start, d("0.01"), true)]
    );
}

#[test]
fn max_power_per_period_in_kw() {
    let mut m = metering(
        "2024-06-01T12:00:00Z",
        "2024-06-01T13:00:00Z",
        vec![
            energy("2024-06-01T12:30:00Z", "5000"),
            sample("2024-06-01T12:10:00Z", POWER_MEASURAND, "7400", "W"),
            sample("2024-06-01T12:20:00Z", POWER_MEASURAND, "11", "kW"),
            sample("2024-06-01T12:40:00Z", POWER_MEASURAND, "0", "W"),
        ],
    );
    let mut phased = sample("2024-06-01T12:25:00Z", POWER_MEASURAND, "99000", "W");
    phased.phase = Some("L1".into());
    let mut scaled = sample("2024-06-01T13:00:00Z", POWER_MEASURAND, "15", "W");
    scaled.multiplier = 2; // 15 × 10² W = 1.5 kW, at the session end (last period includes it)
    m.samples.extend([phased, scaled]);
    m.meter_start_wh = Some(d("0"));
    m.meter_stop_wh = Some(d("5000"));
    let ps = periods(&m, &[]);
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].max_power_kw, Some(d("11")));
    assert_eq!(ps[1].max_power_kw, Some(d("1.5")));
    assert_eq!(
        power_kw(&sample("2024-06-01T12:00:00Z", "SoC", "50", "Percent")),
        None
    );
}

#[test]
fn ocpi_json_rounds_cumulatively_and_formats_dates() {
    let mut m = metering("2024-06-01T10:00:00Z", "2024-06-01T11:00:00.250Z", vec![]);
    m.meter_start_wh = Some(d("0"));
    m.meter_stop_wh = Some(d("1000"));
    let b = [t("2024-06-01T10:20:00Z"), t("2024-06-01T10:40:00.5Z")];
    let mut ps = periods(&m, &b);
    ps[2].tariff_id = Some("NIGHT".into());
    let json = serde_json::to_value(charging_periods(&ps, Some("DAY"))).unwrap();
    let expected = serde_json::json!([
        {"start_date_time": "2024-06-01T10:00:00Z", "tariff_id": "DAY", "dimensions": [
            {"type": "ENERGY", "volume": json_number(d("0.3333"))},
            {"type": "TIME", "volume": json_number(d("0.3333"))}]},
        // 1000 Wh over 3600.25 s, linear: running energy 2400.5/3600.25 = 0.66676 → 0.6668,
        // so 0.6668 − 0.3333 = 0.3335 kWh; running time 2400.5 s = 0.66681 h → 0.6668 → 0.3335 h.
        {"start_date_time": "2024-06-01T10:20:00Z", "tariff_id": "DAY", "dimensions": [
            {"type": "ENERGY", "volume": json_number(d("0.3335"))},
            {"type": "TIME", "volume": json_number(d("0.3335"))}]},
        // 1 − 0.6668 = 0.3332 kWh; 1.0001 − 0.6668 = 0.3333 h
        {"start_date_time": "2024-06-01T10:40:00.500Z", "tariff_id": "NIGHT", "dimensions": [
            {"type": "ENERGY", "volume": json_number(d("0.3332"))},
            {"type": "TIME", "volume": json_number(d("0.3333"))}]},
    ]);
    assert_eq!(json, expected);
    // The exact text of a number survives (arbitrary_precision), and volumes sum to the total:
    // energy 0.3333 + 0.3335 + 0.3332 = 1; time 0.3333 + 0.3335 + 0.3333 = 1.0001
    // = round(1 h 0.25 s = 1.0000694 h) = 1.0001.
    assert_eq!(json_number(d("0.3330")).to_string(), "0.333");
    assert_eq!(
        round(totals(&ps).time_h),
        d("1.0001"),
        "cumulative rounding matches the rounded total"
    );
    assert!(charging_periods(&[], None).is_empty());
}

#[test]
fn parking_period_has_parking_time_dimension() {
    let mut m = metering("2024-06-01T10:00:00Z", "2024-06-01T10:01:00Z", vec![]);
    m.meter_start_wh = Some(d("7"));
    m.meter_stop_wh = Some(d("7"));
    let json = serde_json::to_value(charging_periods(&periods(&m, &[]), None)).unwrap();
    // 60 s = 0.016666… h → 0.0167 (not 0)
    assert_eq!(
        json,
        serde_json::json!([{"start_date_time": "2024-06-01T10:00:00Z", "dimensions": [
            {"type": "ENERGY", "volume": json_number(d("0"))},
            {"type": "PARKING_TIME", "volume": json_number(d("0.0167"))}]}])
    );
}

#[test]
fn ocpi_datetime_format() {
    assert_eq!(
        ocpi::types::DateTime::from(t("2024-06-01T10:00:00Z")).to_string(),
        "2024-06-01T10:00:00Z"
    );
    assert_eq!(
        ocpi::types::DateTime::from(t("2024-06-01T10:00:00.123456Z")).to_string(),
        "2024-06-01T10:00:00.123Z"
    );
}

#[test]
fn hours_are_exact() {
    assert_eq!(hours(TimeDelta::minutes(90)), d("1.5"));
    assert_eq!(hours(TimeDelta::milliseconds(360)), d("0.0001"));
}

fn tariff(restrictions: Vec<Value>) -> Value {
    let elements: Vec<Value> = restrictions
        .into_iter()
        .map(|r| {
            serde_json::json!({"price_components": [{"type": "ENERGY", "price": 0.2, "step_size": 1}],
                "restrictions": r})
        })
        .chain([serde_json::json!({"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]})])
        .collect();
    serde_json::json!({"id": "T", "currency": "EUR", "elements": elements})
}

#[test]
fn boundaries_for_time_of_day_in_local_time() {
    // 22:00–07:00 Amsterdam in summer (CEST, UTC+2) = 20:00Z and 05:00Z.
    let tr = tariff(vec![
        serde_json::json!({"start_time": "22:00", "end_time": "07:00"}),
    ]);
    assert_eq!(
        tariff_boundaries(
            &tr,
            Amsterdam,
            t("2024-06-01T19:00:00Z"),
            t("2024-06-02T12:00:00Z")
        ),
        vec![t("2024-06-01T20:00:00Z"), t("2024-06-02T05:00:00Z")]
    );
    // Winter (CET, UTC+1): 22:00 local = 21:00Z. Outside (start, end) nothing is returned.
    assert_eq!(
        tariff_boundaries(
            &tr,
            Amsterdam,
            t("2024-01-10T20:00:00Z"),
            t("2024-01-10T22:00:00Z")
        ),
        vec![t("2024-01-10T21:00:00Z")]
    );
    assert!(
        tariff_boundaries(
            &tr,
            Amsterdam,
            t("2024-01-10T21:00:00Z"),
            t("2024-01-10T21:00:00Z")
        )
        .is_empty()
    );
    // No restrictions: no boundaries.
    assert!(
        tariff_boundaries(
            &tariff(vec![]),
            Amsterdam,
            t("2024-01-10T00:00:00Z"),
            t("2024-01-12T00:00:00Z")
        )
        .is_empty()
    );
}

#[test]
fn boundaries_for_days_dates_and_durations() {
    let tr = tariff(vec![
        serde_json::json!({"day_of_week": ["SATURDAY", "SUNDAY"]}),
        serde_json::json!({"start_date": "2024-06-02", "end_date": "2024-06-03"}),
        serde_json::json!({"min_duration": 1800, "max_duration": 7200.0}),
    ]);
    // Session Fri 2024-05-31 21:00Z .. Sat 2024-06-01 23:30Z; local midnights (CEST) are 22:00Z.
    let got = tariff_boundaries(
        &tr,
        Amsterdam,
        t("2024-05-31T21:00:00Z"),
        t("2024-06-01T23:30:00Z"),
    );
    assert_eq!(
        got,
        vec![
            t("2024-05-31T21:30:00Z"), // start + min_duration 1800 s
            t("2024-05-31T22:00:00Z"), // local midnight Fri → Sat
            t("2024-05-31T23:00:00Z"), // start + max_duration 7200 s
            t("2024-06-01T22:00:00Z"), // local midnight Sat → Sun = start_date 2024-06-02
        ]
    );
}

#[test]
fn boundaries_across_dst_changes() {
    // 2024-03-31 Amsterdam: 02:00 CET → 03:00 CEST at 01:00Z; "02:30" does not exist and
    // becomes valid at the end of the gap (03:00 CEST = 01:00Z), which is also the offset change.
    let tr = tariff(vec![
        serde_json::json!({"start_time": "02:30", "end_time": "05:00"}),
    ]);
    assert_eq!(
        tariff_boundaries(
            &tr,
            Amsterdam,
            t("2024-03-30T23:00:00Z"),
            t("2024-03-31T04:00:00Z")
        ),
        vec![t("2024-03-31T01:00:00Z"), t("2024-03-31T03:00:00Z")]
    );
    // 2024-10-27: 03:00 CEST → 02:00 CET at 01:00Z; 02:30 happens twice (00:30Z and 01:30Z)
    // and the window closes in between when the clock jumps back (01:00Z).
    assert_eq!(
        tariff_boundaries(
            &tr,
            Amsterdam,
            t("2024-10-26T23:00:00Z"),
            t("2024-10-27T03:00:00Z")
        ),
        vec![
            t("2024-10-27T00:30:00Z"),
            t("2024-10-27T01:00:00Z"),
            t("2024-10-27T01:30:00Z"),
        ]
    );
    // Sanity of the test data itself.
    assert_eq!(
        Amsterdam
            .with_ymd_and_hms(2024, 10, 27, 5, 0, 0)
            .single()
            .map(|x| x.with_timezone(&Utc)),
        Some(t("2024-10-27T04:00:00Z"))
    );
}
