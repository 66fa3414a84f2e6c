//! Criterion benchmarks of the pure hot paths (issue 15): OCPP frame decode/encode and the 1.6
//! adapter, the OCPP → OCPI status mapping, Session and CDR rendering (with pricing) of a long
//! session, and one page of the Sessions listing with 1,000 vs 100,000 stored (flat).
//!
//! `cargo bench -p bench --bench hot` (release build; figures in BENCHMARKS.md). CI only compiles
//! them (clippy --all-targets): speed is judged in the report, never by a test.

use std::hint::black_box;
use std::str::FromStr;

use bridge::records::SessionRecord;
use bridge::sessions::render::{self, Party};
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ocpi::types::{AuthMethod, SessionStatus};
use rust_decimal::Decimal;
use serde_json::json;

const METER_FRAME: &str = r#"[2,"4711","MeterValues",{"connectorId":1,"transactionId":42,"meterValue":[{"timestamp":"2026-03-02T10:00:00Z","sampledValue":[{"value":"12345.6","measurand":"Energy.Active.Import.Register","unit":"Wh","context":"Sample.Periodic"},{"value":"7200","measurand":"Power.Active.Import","unit":"W"}]}]}]"#;

fn at(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 6, 0, 0).unwrap() + Duration::minutes(min)
}

fn sample(min: i64, wh: i64) -> state::MeterSample {
    state::MeterSample {
        v: 1,
        timestamp: at(min),
        measurand: bridge::meter::ENERGY_REGISTER.into(),
        value: Some(Decimal::from(wh)),
        raw: wh.to_string(),
        unit: "Wh".into(),
        multiplier: 0,
        phase: None,
        context: None,
        location: None,
        format: None,
        signed: None,
    }
}

/// A 12-hour session with a reading every minute (721 samples), 11 kWh/h while charging, and
/// parking for the last two hours.
fn long_session() -> (SessionRecord, state::Transaction, Vec<state::MeterSample>) {
    let samples: Vec<_> = (0..=720)
        .map(|m| sample(m, 1000 + 183 * m.min(600)))
        .collect();
    let tx = state::Transaction {
        v: 1,
        id: "0b5f1c2e-1111-4222-8333-944445555666".into(),
        station_id: "CS1".into(),
        evse_id: 1,
        connector_id: 1,
        ocpp_transaction_id: "7".into(),
        ocpp_version: "1.6".into(),
        id_token: Some("AABB".into()),
        id_token_type: Some("IdTag".into()),
        status: state::TransactionStatus::Completed,
        started_at: at(0),
        stopped_at: Some(at(720)),
        meter_start_wh: Some(Decimal::from(1000)),
        meter_stop_wh: Some(Decimal::from(1000 + 183 * 600)),
        meter_last_wh: Some(Decimal::from(1000 + 183 * 600)),
        stop_reason: Some("Local".into()),
        offline: false,
        remote_start_id: None,
        reservation_id: None,
        charging_state: None,
        time_spent_charging: None,
        last_seq_no: None,
        samples: 721,
        created_at: at(0),
        updated_at: at(720),
    };
    // Energy, time and parking, cheaper at night (a time-of-day restriction splits periods).
    let tariff = json!({"country_code": "NL", "party_id": "BRG", "id": "T1", "currency": "EUR",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 21.0, "step_size": 1}],
             "restrictions": {"start_time": "22:00", "end_time": "07:00"}},
            {"price_components": [
                {"type": "ENERGY", "price": 0.35, "vat": 21.0, "step_size": 1},
                {"type": "PARKING_TIME", "price": 2.0, "vat": 21.0, "step_size": 300}]}],
        "last_updated": "2026-01-01T00:00:00Z"});
    let rec = SessionRecord {
        id: tx.id.clone(),
        transaction_id: Some(tx.id.clone()),
        created_at: at(0),
        peer: Some("emsp".into()),
        cdr_token: serde_json::from_value(json!({"country_code": "DE", "party_id": "EMS",
            "uid": "AABB", "type": "RFID", "contract_id": "DE-EMS-C1"}))
        .expect("token"),
        auth_method: AuthMethod::Whitelist,
        authorization_reference: None,
        location_id: "LOC1".into(),
        evse_uid: "CS1-1".into(),
        connector_id: "1".into(),
        cdr_location: Some(
            serde_json::from_value(json!({"id": "LOC1", "address": "a", "city": "b",
                "country": "NLD", "coordinates": {"latitude": "52.09073", "longitude": "5.12142"},
                "evse_uid": "CS1-1", "evse_id": "NL*BRG*ECS1*1", "connector_id": "1",
                "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET",
                "connector_power_type": "AC_3_PHASE"}))
            .expect("location"),
        ),
        time_zone: "Europe/Amsterdam".into(),
        currency: "EUR".into(),
        tariff: Some(serde_json::from_value(tariff).expect("tariff")),
        meter_id: None,
        status: SessionStatus::Completed,
        last_updated: at(720),
    };
    (rec, tx, samples)
}

fn frames(c: &mut Criterion) {
    c.bench_function("frame decode MeterValues (1.6)", |b| {
        b.iter(|| ocpp::frame::Frame::parse(black_box(METER_FRAME)).expect("frame"))
    });
    let frame = ocpp::frame::Frame::parse(METER_FRAME).expect("frame");
    c.bench_function("frame encode MeterValues (1.6)", |b| {
        b.iter(|| black_box(&frame).to_text())
    });
    let payload: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(METER_FRAME).expect("json")[3].clone();
    c.bench_function("1.6 adapter: MeterValues payload to event", |b| {
        b.iter_batched(
            || payload.clone(),
            |p| ocpp::v16::decode("MeterValues", p).expect("event"),
            BatchSize::SmallInput,
        )
    });
}

fn status_mapping(c: &mut Criterion) {
    let ocpp = [
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEV",
        "Finishing",
        "Reserved",
        "Unavailable",
        "Faulted",
        "Occupied",
    ];
    c.bench_function(
        "status mapping (9 OCPP statuses → OCPI, EVSE of 2)",
        |b| {
            b.iter(|| {
                for s in ocpp {
                    black_box(bridge::evse::connector_status(black_box(s)));
                    black_box(bridge::evse::evse_status(
                        Some("Available"),
                        &[s, "Available"],
                        true,
                    ));
                }
            })
        },
    );
}

fn rendering(c: &mut Criterion) {
    let (rec, tx, samples) = long_session();
    let us = Party::new("NL", "BRG");
    c.bench_function("render Session, 12 h / 721 samples", |b| {
        b.iter(|| render::render_session(&us, &rec, &tx, black_box(&samples), at(720)))
    });
    c.bench_function(
        "render + price CDR, 12 h / 721 samples, 2 tariff elements",
        |b| b.iter(|| render::render_cdr(&us, &rec, &tx, black_box(&samples)).expect("cdr")),
    );
}

fn listing(c: &mut Criterion) {
    const L: state::Listing = state::Listing("bench");
    let mut group = c.benchmark_group("Sessions GET page (limit 100) from the listing");
    for stored in [1_000usize, 100_000] {
        let dir = tempfile::tempdir().expect("dir");
        let store = state::Store::open(&state::Settings {
            path: dir.path().join("db"),
            cache_bytes: 64 << 20,
        })
        .expect("store");
        let scopes = ["emsp".to_owned(), "emsp\u{1}DE\u{1}EMS".to_owned()];
        for chunk in (0..stored).collect::<Vec<_>>().chunks(5_000) {
            store
                .update(|tx| {
                    for i in chunk {
                        tx.list_put(L, &format!("session-{i:08}"), &scopes, at(*i as i64))?;
                    }
                    Ok(())
                })
                .expect("fill");
        }
        let recent = at(stored as i64 - 500);
        group.bench_function(format!("{stored} stored, first page"), |b| {
            b.iter(|| {
                store
                    .list_page(L, "emsp", None, None, 0, 100)
                    .expect("page")
            })
        });
        group.bench_function(format!("{stored} stored, date_from = last 500"), |b| {
            b.iter(|| {
                store
                    .list_page(L, "emsp", Some(recent), None, 0, 100)
                    .expect("page")
            })
        });
    }
    group.finish();
    let _ = Decimal::from_str("0");
}

criterion_group!(hot, frames, status_mapping, rendering, listing);
criterion_main!(hot);
