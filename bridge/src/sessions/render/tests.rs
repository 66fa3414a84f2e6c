//! Tests of Session and CDR rendering: pricing, hours, periods, PATCH appends, signed data.

use super::*;
use chrono::TimeZone;
use ocpi::types::AuthMethod;
use serde_json::{Value, json};
use std::str::FromStr;

fn us() -> Party {
    Party::new("NL", "BRG")
}

/// What went on the wire.
fn wire<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("serialises")
}

fn at(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

fn sample(min: i64, wh: &str, context: Option<&str>) -> state::MeterSample {
    state::MeterSample {
        v: 1,
        timestamp: at(min),
        measurand: crate::meter::ENERGY_REGISTER.into(),
        value: Decimal::from_str(wh).ok(),
        raw: wh.into(),
        unit: "Wh".into(),
        multiplier: 0,
        phase: None,
        context: context.map(str::to_owned),
        location: None,
        format: None,
        signed: None,
    }
}

fn transaction(completed: bool) -> state::Transaction {
    state::Transaction {
        v: 1,
        id: "0b5f1c2e-1111-4222-8333-944445555666".into(),
        station_id: "CS1".into(),
        evse_id: 1,
        connector_id: 1,
        ocpp_transaction_id: "7".into(),
        ocpp_version: "1.6".into(),
        id_token: Some("AABB".into()),
        id_token_type: Some("IdTag".into()),
        status: if completed {
            state::TransactionStatus::Completed
        } else {
            state::TransactionStatus::Active
        },
        started_at: at(0),
        stopped_at: completed.then(|| at(90)),
        meter_start_wh: Some(Decimal::from(1000)),
        meter_stop_wh: completed.then(|| Decimal::from(11000)),
        meter_last_wh: Some(Decimal::from(11000)),
        stop_reason: completed.then(|| "Local".to_owned()),
        offline: false,
        remote_start_id: None,
        reservation_id: None,
        charging_state: None,
        time_spent_charging: None,
        last_seq_no: None,
        samples: 3,
        created_at: at(0),
        updated_at: at(90),
    }
}

fn record(tariff: Option<Value>) -> SessionRecord {
    SessionRecord {
        id: "0b5f1c2e-1111-4222-8333-944445555666".into(),
        transaction_id: None,
        created_at: at(0),
        peer: Some("emsp".into()),
        cdr_token: serde_json::from_value(json!({"country_code": "DE", "party_id": "EMS", "uid": "AABB", "type": "RFID", "contract_id": "DE-EMS-C1"})).unwrap(),
        auth_method: AuthMethod::Whitelist,
        authorization_reference: Some("REF1".into()),
        location_id: "LOC1".into(),
        evse_uid: "CS1-1".into(),
        connector_id: "1".into(),
        cdr_location: serde_json::from_value(json!({"id": "LOC1", "address": "a", "city": "b", "country": "NLD",
            "coordinates": {"latitude": "52.09073", "longitude": "5.12142"}, "evse_uid": "CS1-1",
            "evse_id": "NL*BRG*ECS1*1", "connector_id": "1", "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"})).unwrap(),
        time_zone: "Europe/Amsterdam".into(),
        currency: "EUR".into(),
        tariff: tariff.map(|t| serde_json::from_value(t).expect("a valid OCPI Tariff")),
        meter_id: Some("MTR-1".into()),
        status: SessionStatus::Active,
        last_updated: at(0),
    }
}

fn energy_tariff() -> Value {
    json!({"country_code": "NL", "party_id": "BRG", "id": "T1", "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21.0, "step_size": 1}]}],
        "last_updated": "2026-01-01T00:00:00Z"})
}

/// 10 kWh charged in the first hour, then 30 minutes without energy (parking).
fn samples() -> Vec<state::MeterSample> {
    vec![
        sample(0, "1000", Some("Transaction.Begin")),
        sample(30, "6000", None),
        sample(60, "11000", None),
        sample(90, "11000", Some("Transaction.End")),
    ]
}

#[test]
fn a_cdr_is_priced_from_the_tariff_frozen_at_start() {
    let cdr = wire(
        render_cdr(
            &us(),
            &record(Some(energy_tariff())),
            &transaction(true),
            &samples(),
        )
        .unwrap(),
    );
    let parsed: ocpi::types::Cdr = serde_json::from_value(cdr.clone()).expect("a valid OCPI CDR");
    parsed.validate().expect("CDR passes OCPI validation");
    // 10 kWh × 0.30 = 3.00 excl; × 1.21 = 3.63 incl.
    assert_eq!(cdr["total_energy"], json!(10));
    assert_eq!(
        Decimal::from_str(&cdr["total_cost"]["excl_vat"].to_string()).unwrap(),
        Decimal::from(3)
    );
    assert_eq!(
        Decimal::from_str(&cdr["total_cost"]["incl_vat"].to_string()).unwrap(),
        Decimal::from_str("3.63").unwrap()
    );
    assert_eq!(
        Decimal::from_str(&cdr["total_time"].to_string()).unwrap(),
        Decimal::from_str("1.5").unwrap()
    );
    assert_eq!(
        Decimal::from_str(&cdr["total_parking_time"].to_string()).unwrap(),
        Decimal::from_str("0.5").unwrap()
    );
    assert_eq!(cdr["auth_method"], "WHITELIST");
    assert_eq!(cdr["authorization_reference"], "REF1");
    assert_eq!(cdr["session_id"], cdr["id"]);
    assert_eq!(cdr["meter_id"], "MTR-1");
    assert_eq!(cdr["cdr_token"]["contract_id"], "DE-EMS-C1");
}

#[test]
fn a_short_session_does_not_have_zero_time() {
    let mut t = transaction(true);
    t.stopped_at = Some(at(0) + chrono::Duration::seconds(40));
    let s = vec![sample(0, "1000", None)];
    let cdr = wire(render_cdr(&us(), &record(None), &t, &s).unwrap());
    let hours = Decimal::from_str(&cdr["total_time"].to_string()).unwrap();
    assert_eq!(hours, Decimal::from_str("0.0111").unwrap());
    assert_eq!(cdr["total_cost"], json!({"excl_vat": 0, "incl_vat": 0}));
}

#[test]
fn an_active_session_shows_only_closed_periods_and_a_patch_appends_the_rest() {
    let samples = samples();
    let active = wire(render_session(
        &us(),
        &record(Some(energy_tariff())),
        &transaction(false),
        &samples[..3],
        at(60),
    ));
    let parsed: ocpi::types::Session =
        serde_json::from_value(active.clone()).expect("a valid OCPI Session");
    parsed.validate().expect("Session passes OCPI validation");
    assert_eq!(active["status"], "ACTIVE");
    assert_eq!(active["kwh"], json!(10));
    let before = active["charging_periods"].as_array().unwrap().len();
    let mut done = record(Some(energy_tariff()));
    done.status = SessionStatus::Completed;
    let completed_session = render_session(&us(), &done, &transaction(true), &samples, at(90));
    let completed = wire(&completed_session);
    let after = completed["charging_periods"].as_array().unwrap().len();
    assert!(after > before, "{before} → {after}");
    let patch = wire(session_patch(&completed_session, before));
    assert_eq!(
        patch["charging_periods"].as_array().unwrap().len(),
        after - before
    );
    assert_eq!(patch["status"], "COMPLETED");
    assert!(patch.get("end_date_time").is_some());
    assert!(patch.get("last_updated").is_some());
}

#[test]
fn signed_meter_values_become_ocpi_signed_data() {
    let mut begin = sample(0, "1000", Some("Transaction.Begin"));
    begin.value = None;
    begin.format = Some("SignedData".into());
    begin.signed = Some(state::SignedData {
        signed_meter_data: "OCMF|{\"RD\":[{\"RV\":1.0}]}|{\"SD\":\"30440220\"}".into(),
        signing_method: String::new(),
        encoding_method: "OCMF".into(),
        public_key: None,
    });
    let mut end = sample(90, "11000", Some("Transaction.End"));
    end.signed = Some(state::SignedData {
        signed_meter_data: base64::engine::general_purpose::STANDARD.encode("OCMF|end|sig"),
        signing_method: "ECDSA".into(),
        encoding_method: "OCMF".into(),
        public_key: Some("KEY".into()),
    });
    let sd = wire(signed_data(&[begin, end]).unwrap());
    assert_eq!(sd["encoding_method"], "OCMF");
    assert_eq!(sd["public_key"], "KEY");
    let values = sd["signed_values"].as_array().unwrap();
    assert_eq!(values[0]["nature"], "Start");
    assert!(
        values[0]["plain_data"]
            .as_str()
            .unwrap()
            .starts_with("OCMF|")
    );
    assert_eq!(values[1]["nature"], "End");
    assert_eq!(values[1]["plain_data"], "OCMF|end|sig");
}

/// A 2.0.1 signed reading: the numeric value plus its signature.
fn signed(min: i64, wh: &str, context: Option<&str>) -> state::MeterSample {
    let mut s = sample(min, wh, context);
    s.signed = Some(state::SignedData {
        signed_meter_data: base64::engine::general_purpose::STANDARD.encode(format!(
            "OCMF|{{\"RD\":[{{\"RV\":{wh}}}]}}|{{\"SD\":\"30\"}}"
        )),
        signing_method: "ECDSA-secp256r1-SHA256".into(),
        encoding_method: "OCMF".into(),
        public_key: Some("KEY".into()),
    });
    s
}

/// A completed 2.0.1 transaction as the station service stores it: meter start / stop come
/// from the Transaction.Begin / Transaction.End readings.
fn transaction_201(samples: &[state::MeterSample]) -> state::Transaction {
    let r = crate::meter::energy_readings(samples);
    let mut t = transaction(true);
    t.ocpp_version = "2.0.1".into();
    t.meter_start_wh = r.begin;
    t.meter_stop_wh = r.end;
    t.meter_last_wh = r.last.map(|(_, v)| v);
    t
}

#[test]
fn signed_begin_and_end_readings_alone_bill_end_minus_begin() {
    let samples = vec![
        signed(0, "1000", Some("Transaction.Begin")),
        signed(90, "3300", Some("Transaction.End")),
    ];
    let cdr = wire(
        render_cdr(
            &us(),
            &record(Some(energy_tariff())),
            &transaction_201(&samples),
            &samples,
        )
        .unwrap(),
    );
    // 2.3 kWh × 0.30 = 0.69 excl; × 1.21 = 0.8349 incl.
    assert_eq!(cdr["total_energy"], json!(2.3), "{cdr:#}");
    assert_eq!(
        Decimal::from_str(&cdr["total_cost"]["excl_vat"].to_string()).unwrap(),
        Decimal::from_str("0.69").unwrap()
    );
    let values = cdr["signed_data"]["signed_values"].as_array().unwrap();
    assert_eq!(values.len(), 2, "{cdr:#}");
    assert_eq!(values[0]["nature"], "Start");
    assert_eq!(values[1]["nature"], "End");
}

#[test]
fn signed_and_unsigned_readings_mix() {
    // Signed Begin 1000, unsigned 1500 and 2300, signed End 3300: 2.3 kWh, not the 0.8 kWh
    // between the unsigned samples.
    let samples = vec![
        signed(0, "1000", Some("Transaction.Begin")),
        sample(30, "1500", Some("Sample.Periodic")),
        sample(60, "2300", Some("Sample.Periodic")),
        signed(90, "3300", Some("Transaction.End")),
    ];
    let cdr = wire(
        render_cdr(
            &us(),
            &record(Some(energy_tariff())),
            &transaction_201(&samples),
            &samples,
        )
        .unwrap(),
    );
    assert_eq!(cdr["total_energy"], json!(2.3), "{cdr:#}");
    let energies: Vec<String> = cdr["charging_periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["dimensions"][0]["volume"].to_string())
        .collect();
    assert_eq!(energies, ["2.3"], "one charging period: {cdr:#}");
    assert_eq!(
        cdr["signed_data"]["signed_values"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_cdr_that_cannot_be_priced_says_why_instead_of_costing_zero() {
    let mut tariff = energy_tariff();
    tariff["start_date_time"] = json!("2099-01-01T00:00:00Z");
    let (cdr, error) =
        render_cdr_checked(&us(), &record(Some(tariff)), &transaction(true), &samples()).unwrap();
    let error = error.expect("a pricing error");
    assert!(error.contains("No valid tariff"), "{error}");
    assert_eq!(cdr.total_cost.excl_vat, Decimal::ZERO);
    let (_, fine) = render_cdr_checked(
        &us(),
        &record(Some(energy_tariff())),
        &transaction(true),
        &samples(),
    )
    .unwrap();
    assert_eq!(fine, None);
    // Without a tariff the session is free: nothing to hold.
    let (_, free) =
        render_cdr_checked(&us(), &record(None), &transaction(true), &samples()).unwrap();
    assert_eq!(free, None);
}

#[test]
fn a_credit_cdr_repeats_the_original_with_negated_total_cost() {
    let original = render_cdr(
        &us(),
        &record(Some(energy_tariff())),
        &transaction(true),
        &samples(),
    )
    .unwrap();
    let credit = credit_cdr(&original, at(120)).expect("a credit");
    assert_eq!(credit.id.as_str(), format!("{}-C", original.id.as_str()));
    assert_eq!(credit.credit, Some(true));
    assert_eq!(
        credit.credit_reference_id.as_deref(),
        Some(original.id.as_str())
    );
    assert_eq!(credit.total_cost.excl_vat, -original.total_cost.excl_vat);
    assert_eq!(
        credit.total_cost.incl_vat,
        original.total_cost.incl_vat.map(|v| -v)
    );
    assert_eq!(credit.total_energy, original.total_energy);
    assert_eq!(credit.total_energy_cost, original.total_energy_cost);
    assert_eq!(credit.cdr_token, original.cdr_token);
    credit.validate().expect("a valid credit CDR (id up to 39)");
    assert!(
        credit_cdr(&credit, at(121)).is_none(),
        "never credit a credit"
    );

    let new = reissued_cdr(&credit, "9b5f1c2e-1111-4222-8333-944445555666", at(122));
    assert_eq!(new.id.as_str(), "9b5f1c2e-1111-4222-8333-944445555666");
    assert_eq!(
        (new.credit, new.credit_reference_id.as_deref()),
        (None, None)
    );
    assert_eq!(new.session_id, original.session_id);
    new.validate().expect("a valid CDR");
}
