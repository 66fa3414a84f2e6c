//! Energy from meter readings as real stations send them (issue 9): 2.0.1 readings signed for
//! Eichrecht (the numeric `value` is the reading, `signedMeterValue` its signature) — Begin/End
//! only, and mixed with unsigned periodic samples — and a 1.6 integer `meterStop` just below a
//! decimal sample. Each CDR the fake hub receives is checked for energy, cost and `signed_data`,
//! and the daemon's log for false warnings.
//!
//! Tariff T1 (from `ocpi_config`): ENERGY 0.35 EUR/kWh, 21 % VAT, step 1 Wh.

use std::time::Duration;

use base64::Engine as _;
use bridge_tests::payloads::{ocpi, v16, v201};
use bridge_tests::{Daemon, Hub, OcppVersion, Station};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::ocpi_support::{
    booted, ocpi_config, only_transaction, registered_with_hub, the_one_cdr,
};

const CC: &str = "DE";
const PID: &str = "EMS";
/// How long to keep watching for a second CDR.
const QUIET: Duration = Duration::from_millis(1500);

/// Whole seconds, three hours ago: station timestamps of a charge that already happened.
fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() - 3 * 3600, 0).expect("valid timestamp")
}

fn at(base: DateTime<Utc>, minutes: i64) -> String {
    (base + chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `v` is a JSON number equal to `expected` (to 1e-6).
#[track_caller]
fn assert_num(v: &Value, expected: f64, what: &str) {
    let got = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(
        (got - expected).abs() < 1e-6,
        "{what}: expected {expected}, got {got}"
    );
}

/// An energy register reading (Wh); `signed` adds an OCMF `signedMeterValue` beside the value.
fn reading(ts: &str, wh: f64, context: &str, signed: bool) -> Value {
    let mut sv = json!({
        "value": wh,
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": { "unit": "Wh" },
    });
    if signed {
        let ocmf = format!(
            "OCMF|{{\"FV\":\"1.0\",\"RD\":[{{\"TM\":\"{ts}\",\"RV\":{kwh},\"RI\":\"1-b:1.8.0\",\"RU\":\"kWh\"}}]}}|{{\"SA\":\"ECDSA-secp256r1-SHA256\",\"SD\":\"3045022100AB\"}}",
            kwh = wh / 1000.0
        );
        sv["signedMeterValue"] = json!({
            "signedMeterData": base64::engine::general_purpose::STANDARD.encode(ocmf),
            "signingMethod": "ECDSA-secp256r1-SHA256",
            "encodingMethod": "OCMF",
            "publicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        });
    }
    json!({ "timestamp": ts, "sampledValue": [sv] })
}

/// A TransactionEvent of `kind` with `meter` values; Started carries the token and the EVSE,
/// Ended `stoppedReason` Local.
fn event(kind: &str, tx: &str, seq: u32, ts: &str, token: &str, meter: Vec<Value>) -> Value {
    let trigger = match kind {
        "Started" => "Authorized",
        "Ended" => "StopAuthorized",
        _ => "MeterValuePeriodic",
    };
    let mut v = json!({
        "eventType": kind,
        "timestamp": ts,
        "triggerReason": trigger,
        "seqNo": seq,
        "transactionInfo": { "transactionId": tx },
        "meterValue": meter,
    });
    if kind == "Started" {
        v["idToken"] = v201::id_token(token);
        v["evse"] = json!({ "id": 1, "connectorId": 1 });
    }
    if kind == "Ended" {
        v["transactionInfo"]["stoppedReason"] = json!("Local");
    }
    v
}

/// A registered hub, a pushed ALWAYS token `uid`, and `station` booted with EVSE 1 Available.
async fn charging_station(
    station: &str,
    version: OcppVersion,
    uid: &str,
) -> (Hub, Daemon, Station) {
    let (hub, daemon) = registered_with_hub(ocpi_config().free_vend(false)).await;
    hub.put_token_ok(&ocpi::token(CC, PID, uid, "ALWAYS")).await;
    let cs = booted(&daemon, station, version).await;
    match version {
        OcppVersion::V16 => {
            cs.call_ok("StatusNotification", v16::status(1, "Available"))
                .await
        }
        OcppVersion::V201 => {
            cs.call_ok("StatusNotification", v201::status(1, 1, "Available"))
                .await
        }
    };
    (hub, daemon, cs)
}

/// Replays a 2.0.1 transaction of `(minute, Wh, signed)` readings: the first in Started
/// (Transaction.Begin), the last in Ended (Transaction.End), the others in Updated events
/// (Sample.Periodic). Returns the CDR the hub received.
async fn replay201(tx: &str, readings: &[(i64, f64, bool)]) -> (Value, Value, Daemon) {
    let uid = format!("SIGN-{tx}");
    let (hub, daemon, cs) = charging_station("CS201", OcppVersion::V201, &uid).await;
    let b = base();
    let last = readings.len() - 1;
    for (i, &(min, wh, signed)) in readings.iter().enumerate() {
        let ts = at(b, min);
        let (kind, context) = match i {
            0 => ("Started", "Transaction.Begin"),
            i if i == last => ("Ended", "Transaction.End"),
            _ => ("Updated", "Sample.Periodic"),
        };
        let meter = vec![reading(&ts, wh, context, signed)];
        cs.call_ok(
            "TransactionEvent",
            event(kind, tx, i as u32, &ts, &uid, meter),
        )
        .await;
    }
    let t = only_transaction(&daemon, "CS201").await;
    let id = t["id"].as_str().expect("transaction id").to_string();
    let cdr = the_one_cdr(&hub, &id, QUIET).await;
    let t = only_transaction(&daemon, "CS201").await;
    (cdr, t, daemon)
}

#[track_caller]
fn assert_two_kwh_at_t1(cdr: &Value) {
    // 2 kWh × 0.35 = 0.70 excl; × 1.21 = 0.847 incl.
    assert_num(&cdr["total_energy"], 2.0, "total_energy");
    assert_num(&cdr["total_cost"]["excl_vat"], 0.70, "total_cost excl");
    assert_num(&cdr["total_cost"]["incl_vat"], 0.847, "total_cost incl");
    assert_num(
        &cdr["total_energy_cost"]["excl_vat"],
        0.70,
        "energy cost excl",
    );
}

#[track_caller]
fn assert_signed_begin_and_end(cdr: &Value) {
    let sd = &cdr["signed_data"];
    assert_eq!(sd["encoding_method"], "OCMF", "{cdr:#}");
    assert_eq!(sd["public_key"], "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE");
    let natures: Vec<&str> = sd["signed_values"]
        .as_array()
        .expect("signed_values")
        .iter()
        .map(|v| v["nature"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(natures, ["Start", "End"], "{sd:#}");
    for v in sd["signed_values"].as_array().unwrap() {
        assert!(
            v["plain_data"].as_str().unwrap_or("").starts_with("OCMF|"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn signed_begin_and_end_readings_alone_bill_end_minus_begin() {
    // An Eichrecht station signs exactly the Begin (1000 Wh) and End (3000 Wh) readings.
    let (cdr, t, _daemon) = replay201("sig-only", &[(0, 1000.0, true), (30, 3000.0, true)]).await;
    assert_two_kwh_at_t1(&cdr);
    assert_signed_begin_and_end(&cdr);
    assert_eq!(t["meter_start_wh"], json!(1000), "{t:#}");
    assert_eq!(t["meter_stop_wh"], json!(3000), "{t:#}");
}

#[tokio::test]
async fn signed_and_unsigned_readings_mix() {
    // Signed Begin 1000, unsigned 1400 and 2200, signed End 3000: 2 kWh, not the 0.8 kWh
    // between the unsigned samples.
    let (cdr, t, _daemon) = replay201(
        "sig-mixed",
        &[
            (0, 1000.0, true),
            (10, 1400.0, false),
            (20, 2200.0, false),
            (30, 3000.0, true),
        ],
    )
    .await;
    assert_two_kwh_at_t1(&cdr);
    assert_signed_begin_and_end(&cdr);
    assert_eq!(t["samples"], json!(4), "{t:#}");
    let energy: f64 = cdr["charging_periods"]
        .as_array()
        .expect("periods")
        .iter()
        .flat_map(|p| p["dimensions"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["type"] == "ENERGY")
        .map(|d| d["volume"].as_f64().unwrap_or(0.0))
        .sum();
    assert!((energy - 2.0).abs() < 1e-6, "periods add up: {cdr:#}");
}

#[tokio::test]
async fn an_integer_meter_stop_just_below_a_decimal_sample_is_no_decrease() {
    let uid = "INT16";
    let (hub, daemon, cs) = charging_station("CS001", OcppVersion::V16, uid).await;
    let b = base();
    let start = cs
        .call_ok("StartTransaction", v16::start(1, uid, 1000, &at(b, 0)))
        .await;
    let tx = start["transactionId"].as_i64().expect("transactionId");
    // A decimal sample of 3000.4 Wh, then meterStop 3000 (the same register, truncated).
    cs.call_ok(
        "MeterValues",
        json!({
            "connectorId": 1,
            "transactionId": tx,
            "meterValue": [{
                "timestamp": at(b, 20),
                "sampledValue": [{
                    "value": "3000.4",
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                    "context": "Sample.Periodic",
                }],
            }],
        }),
    )
    .await;
    cs.call_ok(
        "StopTransaction",
        v16::stop_at(tx, uid, 3000, &at(b, 30), "Local"),
    )
    .await;
    let t = only_transaction(&daemon, "CS001").await;
    let cdr = the_one_cdr(&hub, t["id"].as_str().expect("id"), QUIET).await;
    // Billed up to the precise reading: 2.0004 kWh; the last 10 minutes are parking.
    // step_size 1 Wh bills 2001 Wh: 2.001 × 0.35 = 0.70035 → 0.7004 excl (ties to even);
    // × 1.21 = 0.8474235 → 0.8474 incl.
    assert_num(&cdr["total_energy"], 2.0004, "total_energy");
    assert_num(&cdr["total_cost"]["excl_vat"], 0.7004, "total_cost excl");
    assert_num(&cdr["total_cost"]["incl_vat"], 0.8474, "total_cost incl");
    assert_num(&cdr["total_parking_time"], 0.1667, "total_parking_time");
    let log = daemon.log_tail(100_000);
    assert!(
        !log.contains("energy register decreased"),
        "no decrease warning:\n{log}"
    );
    // The Session PUT at start was priced with a zero-length range; no false range warning.
    assert!(
        !log.contains("not contained within"),
        "no pricing range warning:\n{log}"
    );
    assert!(
        log.contains("CDR created"),
        "the log is the daemon's:\n{log}"
    );
}
