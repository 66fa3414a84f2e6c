//! Fuzzing of everything a station sends, on stable Rust with proptest: the frame decoder and
//! both adapters (1.6 and 2.0.1 `decode` for every action, and `decode_answer`'s input via
//! frames). Never a panic, whatever arrives: a bad frame or payload is an error (a CALLERROR
//! for the station), nothing else.
//!
//! Payloads are random JSON objects built from the protocols' own field names and values
//! (so that decoding gets deep into the structures), and mutations of valid messages.
//! CI runs proptest's default number of cases; `PROPTEST_CASES=1000000 cargo test -p ocpp
//! --test fuzz --release` runs a million per property.

use ocpp::frame::Frame;
use proptest::prelude::*;
use serde_json::{Value, json};

const ACTIONS: &[&str] = &[
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "Authorize",
    "StartTransaction",
    "StopTransaction",
    "MeterValues",
    "DataTransfer",
    "FirmwareStatusNotification",
    "DiagnosticsStatusNotification",
    "SecurityEventNotification",
    "LogStatusNotification",
    "SignedFirmwareStatusNotification",
    "SignCertificate",
    "TransactionEvent",
    "NotifyReport",
    "NotifyEvent",
    "ReservationStatusUpdate",
    "NotifyMonitoringReport",
    "NotifyCustomerInformation",
    "NotifyChargingLimit",
    "ReportChargingProfiles",
    "ClearedChargingLimit",
    "PublishFirmwareStatusNotification",
    "Get15118EVCertificate",
    "NoSuchAction",
];

/// Field names of both versions' station messages.
const FIELDS: &[&str] = &[
    "chargePointVendor",
    "chargingLimit",
    "chargingLimitSource",
    "chargingProfile",
    "chargingSchedule",
    "chargingSchedulePeriod",
    "chargingRateUnit",
    "startPeriod",
    "limit",
    "chargePointModel",
    "chargePointSerialNumber",
    "firmwareVersion",
    "meterSerialNumber",
    "reason",
    "chargingStation",
    "vendorName",
    "model",
    "serialNumber",
    "connectorId",
    "evseId",
    "errorCode",
    "status",
    "connectorStatus",
    "timestamp",
    "info",
    "vendorErrorCode",
    "idTag",
    "idToken",
    "type",
    "meterStart",
    "meterStop",
    "reservationId",
    "transactionId",
    "transactionData",
    "meterValue",
    "sampledValue",
    "value",
    "context",
    "format",
    "measurand",
    "phase",
    "location",
    "unit",
    "unitOfMeasure",
    "multiplier",
    "signedMeterValue",
    "signedMeterData",
    "signingMethod",
    "encodingMethod",
    "publicKey",
    "eventType",
    "triggerReason",
    "seqNo",
    "offline",
    "numberOfPhasesUsed",
    "cableMaxCurrent",
    "transactionInfo",
    "chargingState",
    "timeSpentCharging",
    "stoppedReason",
    "remoteStartId",
    "evse",
    "id",
    "vendorId",
    "messageId",
    "data",
    "requestId",
    "generatedAt",
    "tbc",
    "reportData",
    "component",
    "variable",
    "variableAttribute",
    "eventData",
    "eventId",
    "trigger",
    "actualValue",
    "techCode",
    "reservationUpdateStatus",
    "additionalInfo",
    "additionalIdToken",
    "customData",
];

/// Values that mean something to the decoders.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop_oneof![
            Just(-1i64),
            Just(0),
            Just(1),
            Just(2),
            Just(i32::MAX as i64),
            Just(i32::MIN as i64)
        ]
        .prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "2026-01-01T00:00:00Z",
            "2026-13-40T99:99:99Z",
            "1970-01-01T00:00:00.000+14:00",
            "Available",
            "Charging",
            "Energy.Active.Import.Register",
            "Wh",
            "kWh",
            "Started",
            "Updated",
            "Ended",
            "Transaction.Begin",
            "SignedData",
            "Raw",
            "1e400",
            "-0",
            "NaN",
            "ISO14443",
            "Central",
            "eMAID",
            "Accepted",
            "Occupied",
            "Faulted",
            "",
        ])
        .prop_map(|s| json!(s)),
        "[0-9]{1,30}(\\.[0-9]{1,30})?".prop_map(|s| {
            // Long decimals as JSON numbers (arbitrary precision).
            serde_json::from_str(&s).unwrap_or(Value::Null)
        }),
    ]
}

fn payload() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS), inner, 0..8).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Valid messages of both versions, to mutate.
fn valid() -> Vec<(&'static str, Value)> {
    let mv = json!([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
        {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh",
         "context": "Sample.Periodic"}]}]);
    let mv201 = json!([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
        {"value": 1234.5, "measurand": "Energy.Active.Import.Register",
         "unitOfMeasure": {"unit": "Wh", "multiplier": 0},
         "signedMeterValue": {"signedMeterData": "AAAA", "signingMethod": "ECDSA",
           "encodingMethod": "OCMF", "publicKey": "BBBB"}}]}]);
    vec![
        (
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "TAG", "meterStart": 0,
            "timestamp": "2026-01-01T00:00:00Z"}),
        ),
        (
            "StopTransaction",
            json!({"transactionId": 1, "meterStop": 10,
            "timestamp": "2026-01-01T00:00:00Z", "transactionData": mv.clone()}),
        ),
        (
            "MeterValues",
            json!({"connectorId": 1, "transactionId": 1, "meterValue": mv}),
        ),
        (
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError",
            "status": "Available"}),
        ),
        (
            "TransactionEvent",
            json!({"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z",
            "triggerReason": "Authorized", "seqNo": 0,
            "transactionInfo": {"transactionId": "T1"}, "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "TAG", "type": "ISO14443"}, "meterValue": mv201}),
        ),
        (
            "BootNotification",
            json!({"reason": "PowerUp",
            "chargingStation": {"vendorName": "V", "model": "M"}}),
        ),
    ]
}

/// Replaces the value at a random path of `v` with `with`.
fn mutate(v: &mut Value, path: &[usize], with: Value) {
    let Some((first, rest)) = path.split_first() else {
        *v = with;
        return;
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(first % m.len()).cloned().expect("key");
            mutate(m.get_mut(&key).expect("value"), rest, with);
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            mutate(&mut a[first % n], rest, with);
        }
        other => *other = with,
    }
}

proptest! {
    #[test]
    fn both_adapters_never_panic_on_random_payloads(
        action in prop::sample::select(ACTIONS),
        payload in payload(),
    ) {
        let _ = ocpp::v16::decode(action, payload.clone());
        let _ = ocpp::v201::decode(action, payload);
    }

    #[test]
    fn both_adapters_never_panic_on_mutated_valid_messages(
        which in any::<prop::sample::Index>(),
        path in prop::collection::vec(any::<usize>(), 0..6),
        with in payload(),
    ) {
        let messages = valid();
        let (action, mut payload) = messages[which.index(messages.len())].clone();
        mutate(&mut payload, &path, with);
        let _ = ocpp::v16::decode(action, payload.clone());
        let _ = ocpp::v201::decode(action, payload);
    }

    #[test]
    fn frames_never_panic(text in "\\[[0-9], ?\"[^\"]{0,40}\", ?.{0,200}\\]") {
        if let Ok(Frame::Call { action, payload, .. }) = Frame::parse(&text) {
            let _ = ocpp::v16::decode(&action, payload.clone());
            let _ = ocpp::v201::decode(&action, payload);
        }
    }
}
