//! Malformed input: garbage frames, wrongly typed payloads and unknown actions are answered
//! with CALLERROR in the negotiated version's spelling, the offending connection stays open,
//! and other stations are unaffected.

use bridge_tests::payloads::{v16, v201};
use bridge_tests::station::Frame;
use bridge_tests::{CallError, Daemon, OcppVersion, Station};
use serde_json::json;

use crate::{FRAME_WAIT, default_config};

/// CALLERROR codes as spelled by OCPP-J 1.6.
const V16_CODES: &[&str] = &[
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
];

/// CALLERROR codes as spelled by OCPP 2.0.1.
const V201_CODES: &[&str] = &[
    "FormatViolation",
    "GenericError",
    "InternalError",
    "MessageTypeNotSupported",
    "NotImplemented",
    "NotSupported",
    "OccurrenceConstraintViolation",
    "PropertyConstraintViolation",
    "ProtocolError",
    "RpcFrameworkError",
    "SecurityError",
    "TypeConstraintViolation",
];

fn expect_call_error(
    res: Result<serde_json::Value, CallError>,
    what: &str,
    allowed: &[&str],
) -> CallError {
    let err = match res {
        Ok(v) => panic!("{what}: expected CALLERROR, got CALLRESULT {v}"),
        Err(e) => e,
    };
    assert!(
        !err.code.starts_with('<'),
        "{what}: no CALLERROR, local failure {err}"
    );
    assert!(
        allowed.contains(&err.code.as_str()),
        "{what}: code {:?} is not spelled for this version",
        err.code
    );
    err
}

async fn garbage_gets_callerror_minus_1(cs: &Station, expected_code: &str) {
    cs.send_raw("this is not json");
    match cs.recv_raw_frame(FRAME_WAIT).await {
        Frame::Error { id, code, .. } => {
            assert_eq!(
                id, "-1",
                "unreadable message id must be answered with id \"-1\""
            );
            assert_eq!(code, expected_code, "garbage frame error code");
        }
        other => panic!("garbage frame answered with {other:?}"),
    }
}

async fn booted_pair(
    daemon: &Daemon,
    bad: &str,
    good: &str,
    version: OcppVersion,
) -> (Station, Station) {
    let bad = Station::connect_to(daemon, bad, version).await;
    bad.boot().await;
    let good = Station::connect_to(daemon, good, version).await;
    good.boot().await;
    (bad, good)
}

#[tokio::test]
async fn ocpp16_bad_frames_get_callerror_and_another_station_keeps_working() {
    let daemon = Daemon::start(&default_config()).await;
    let (bad, good) = booted_pair(&daemon, "CS001", "CS002", OcppVersion::V16).await;

    garbage_gets_callerror_minus_1(&bad, "ProtocolError").await;
    good.call_ok("Heartbeat", v16::heartbeat()).await;

    let mut boot = v16::boot();
    boot["chargePointVendor"] = json!(12);
    let e = expect_call_error(
        bad.call("BootNotification", boot).await,
        "1.6 vendor as number",
        V16_CODES,
    );
    assert!(
        ["TypeConstraintViolation", "FormationViolation"].contains(&e.code.as_str()),
        "wrong type: {e}"
    );
    good.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;

    let mut start = v16::start(1, "TAG", 0, &bridge_tests::now_rfc3339());
    start["connectorId"] = json!("one");
    expect_call_error(
        bad.call("StartTransaction", start).await,
        "1.6 connectorId as string",
        V16_CODES,
    );

    let e = expect_call_error(
        bad.call("NoSuchAction", json!({})).await,
        "1.6 unknown action",
        V16_CODES,
    );
    assert_eq!(e.code, "NotImplemented", "{e}");

    // The offending connection is still usable.
    assert!(
        bad.close_info().is_none(),
        "connection closed: {:?}",
        bad.close_info()
    );
    bad.call_ok("Heartbeat", v16::heartbeat()).await;
    good.call_ok("Heartbeat", v16::heartbeat()).await;
}

#[tokio::test]
async fn ocpp201_bad_frames_get_callerror_and_another_station_keeps_working() {
    let daemon = Daemon::start(&default_config()).await;
    let (bad, good) = booted_pair(&daemon, "CS201", "CS202", OcppVersion::V201).await;

    garbage_gets_callerror_minus_1(&bad, "RpcFrameworkError").await;
    good.call_ok("Heartbeat", v201::heartbeat()).await;

    let mut boot = v201::boot();
    boot["chargingStation"]["vendorName"] = json!(12);
    let e = expect_call_error(
        bad.call("BootNotification", boot).await,
        "2.0.1 vendorName as number",
        V201_CODES,
    );
    assert!(
        ["TypeConstraintViolation", "FormatViolation"].contains(&e.code.as_str()),
        "wrong type: {e}"
    );
    good.call_ok("StatusNotification", v201::status(1, 1, "Available"))
        .await;

    let mut status = v201::status(1, 1, "Available");
    status["evseId"] = json!("one");
    expect_call_error(
        bad.call("StatusNotification", status).await,
        "2.0.1 evseId as string",
        V201_CODES,
    );

    let e = expect_call_error(
        bad.call("NoSuchAction", json!({})).await,
        "2.0.1 unknown action",
        V201_CODES,
    );
    assert_eq!(e.code, "NotImplemented", "{e}");

    assert!(
        bad.close_info().is_none(),
        "connection closed: {:?}",
        bad.close_info()
    );
    bad.call_ok("Heartbeat", v201::heartbeat()).await;
    good.call_ok("Heartbeat", v201::heartbeat()).await;
}

#[tokio::test]
async fn ocpp16_data_transfer_answers_unknown_vendor_id() {
    let daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.boot().await;
    let r = cs
        .call_ok(
            "DataTransfer",
            json!({"vendorId": "com.example", "messageId": "Hello", "data": "x"}),
        )
        .await;
    assert_eq!(r["status"], "UnknownVendorId", "{r}");
}

#[tokio::test]
async fn ocpp201_notifications_are_acknowledged() {
    let daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS201", OcppVersion::V201).await;
    cs.boot().await;
    let now = bridge_tests::now_rfc3339();
    let calls = [
        (
            "MeterValues",
            json!({"evseId": 1, "meterValue": [v201::meter_value(&now, 10.0, 0.0, "Sample.Clock")]}),
        ),
        (
            "NotifyReport",
            json!({"requestId": 1, "generatedAt": now, "seqNo": 0, "tbc": false, "reportData": [{
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "AvailabilityState"},
                "variableAttribute": [{"type": "Actual", "value": "Available"}],
            }]}),
        ),
        (
            "NotifyEvent",
            json!({"generatedAt": now, "seqNo": 0, "tbc": false, "eventData": [{
                "eventId": 1, "timestamp": now, "trigger": "Alerting", "actualValue": "true",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
                "variable": {"name": "Problem"},
            }]}),
        ),
        (
            "SecurityEventNotification",
            json!({"type": "StartupOfTheDevice", "timestamp": now}),
        ),
        ("FirmwareStatusNotification", json!({"status": "Idle"})),
        ("LogStatusNotification", json!({"status": "Idle"})),
    ];
    for (action, payload) in calls {
        let r = cs.call(action, payload).await;
        assert_eq!(r, Ok(json!({})), "{action}");
    }
}
