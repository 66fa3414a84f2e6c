//! OCPP 1.6J action table: decodes a station's CALL payload into a version-neutral
//! [`StationRequest`] and encodes the CSMS's [`StationResponse`] into the 1.6 CALLRESULT payload.
//!
//! Owns the 1.6 side of the adapter (the leniency helpers it shares with [`crate::v201`] are in
//! the crate's `lenient` module). Decoding is lenient where real stations deviate from the schema in ways that
//! carry no ambiguity (missing time zones, numeric sampled values, vendor units and measurands,
//! signed OCMF data in `value`, unknown extra properties); everything else that breaks the schema
//! becomes a CALLERROR with the matching OCPP error code. Encoding is strict: every payload is
//! schema-valid, timestamps are `YYYY-MM-DDTHH:MM:SS.mmmZ` and absent fields are omitted.
//!
//! Payload types come from rust-ocpp 3.0.4 where they work (BootNotification,
//! StatusNotification, Authorize, Start/StopTransaction, DataTransfer, Firmware/Diagnostics
//! status); meter values use the own lenient types of the `lenient` module, the security-extension
//! notifications (missing in rust-ocpp) are checked by hand, and responses are written by hand
//! because rust-ocpp's 1.6 types serialise timestamps with nanoseconds.

use rust_ocpp::v1_6::messages::authorize::AuthorizeRequest;
use rust_ocpp::v1_6::messages::boot_notification::BootNotificationRequest;
use rust_ocpp::v1_6::messages::data_transfer::DataTransferRequest;
use rust_ocpp::v1_6::messages::diagnostics_status_notification::DiagnosticsStatusNotificationRequest;
use rust_ocpp::v1_6::messages::firmware_status_notification::FirmwareStatusNotificationRequest;
use rust_ocpp::v1_6::messages::start_transaction::StartTransactionRequest;
use rust_ocpp::v1_6::messages::status_notification::StatusNotificationRequest;
use rust_ocpp::v1_6::messages::stop_transaction::StopTransactionRequest;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::CallFault;
use crate::event::{
    AuthorizationStatus, BootInfo, ConnectorStatus, DataTransfer, DataTransferStatus, EvseRef,
    FirmwareStatusReport, IdToken, IdTokenInfo, IdTokenKind, MeterValuesReport, RegistrationStatus,
    StartTransaction, StationRequest, StationResponse, StatusReport, StopTransaction,
};
use crate::lenient::{
    MeterValue16, Want, check_fields, check_len, decode_object, enum_text, expect_object,
    format_timestamp, meter_values_16, non_empty, normalize_timestamps, not_implemented,
    not_supported, property, typed,
};

const VERSION: &str = "1.6";
/// 1.6 `idTag` / `parentIdTag` (IdToken) maximum length.
const ID_TAG_MAX: usize = 20;

/// Decodes a 1.6 CALL payload of `action` into a [`StationRequest`].
///
/// Unknown actions (including 2.0.1-only ones such as `TransactionEvent`) yield
/// `NotImplemented`, and so does `SignCertificate` (certificate management is a later step). A payload that is not an object yields `FormationViolation`; missing
/// fields, wrong JSON types and bad values yield the matching constraint violation, naming the
/// field.
pub fn decode(action: &str, payload: Value) -> Result<StationRequest, CallFault> {
    match action {
        "BootNotification" => boot_notification(payload),
        "Heartbeat" => {
            expect_object(action, &payload)?;
            Ok(StationRequest::Heartbeat)
        }
        "StatusNotification" => status_notification(payload),
        "Authorize" => authorize(payload),
        "StartTransaction" => start_transaction(payload),
        "StopTransaction" => stop_transaction(payload),
        "MeterValues" => meter_values(payload),
        "DataTransfer" => data_transfer(payload),
        "FirmwareStatusNotification" => {
            let req = decode_object::<FirmwareStatusNotificationRequest>(action, payload)?;
            Ok(StationRequest::FirmwareStatus(FirmwareStatusReport {
                status: enum_text(&req.status),
                request_id: None,
            }))
        }
        "DiagnosticsStatusNotification" => {
            decode_object::<DiagnosticsStatusNotificationRequest>(action, payload.clone())?;
            Ok(notification(action, payload))
        }
        // Security extension (1.6 Security Whitepaper ed. 2); not modelled by rust-ocpp.
        "SecurityEventNotification" => {
            check_fields(
                action,
                &payload,
                &[("type", Want::Str(50)), ("timestamp", Want::Time)],
                &[("techInfo", Want::Str(255))],
            )?;
            Ok(notification(action, payload))
        }
        "LogStatusNotification" => {
            check_fields(
                action,
                &payload,
                &[("status", Want::Enum(UPLOAD_LOG_STATUS))],
                &[("requestId", Want::Int)],
            )?;
            Ok(notification(action, payload))
        }
        "SignedFirmwareStatusNotification" => {
            check_fields(
                action,
                &payload,
                &[("status", Want::Enum(SIGNED_FIRMWARE_STATUS))],
                &[("requestId", Want::Int)],
            )?;
            Ok(firmware_status(&payload))
        }
        _ => Err(not_implemented(VERSION, action)),
    }
}

/// 1.6 security extension `UploadLogStatusEnumType`.
const UPLOAD_LOG_STATUS: &[&str] = &[
    "BadMessage",
    "Idle",
    "NotSupportedOperation",
    "PermissionDenied",
    "Uploaded",
    "UploadFailure",
    "Uploading",
];

/// 1.6 security extension `FirmwareStatusEnumType` (SignedFirmwareStatusNotification).
const SIGNED_FIRMWARE_STATUS: &[&str] = &[
    "Downloaded",
    "DownloadFailed",
    "Downloading",
    "DownloadScheduled",
    "DownloadPaused",
    "Idle",
    "InstallationFailed",
    "Installing",
    "Installed",
    "InstallRebooting",
    "InstallScheduled",
    "InstallVerificationFailed",
    "InvalidSignature",
    "SignatureVerified",
];

/// A FirmwareStatusNotification whose fields [`check_fields`] already checked.
pub(crate) fn firmware_status(payload: &Value) -> StationRequest {
    StationRequest::FirmwareStatus(FirmwareStatusReport {
        status: payload["status"].as_str().unwrap_or_default().to_owned(),
        request_id: payload["requestId"]
            .as_i64()
            .and_then(|v| i32::try_from(v).ok()),
    })
}

fn notification(action: &str, payload: Value) -> StationRequest {
    StationRequest::Notification {
        action: action.to_owned(),
        payload,
    }
}

/// Schema `maxLength`s of the descriptive fields are not enforced: a too-long firmware string
/// says nothing wrong about the station, and rejecting its Boot would keep it from registering.
fn boot_notification(payload: Value) -> Result<StationRequest, CallFault> {
    let req: BootNotificationRequest = decode_object("BootNotification", payload)?;
    Ok(StationRequest::BootNotification(BootInfo {
        vendor: req.charge_point_vendor,
        model: req.charge_point_model,
        // chargeBoxSerialNumber is deprecated in favour of chargePointSerialNumber; stations
        // send either.
        serial_number: non_empty(req.charge_point_serial_number)
            .or_else(|| non_empty(req.charge_box_serial_number)),
        firmware_version: non_empty(req.firmware_version),
        meter_serial_number: non_empty(req.meter_serial_number),
        meter_type: non_empty(req.meter_type),
        iccid: non_empty(req.iccid),
        imsi: non_empty(req.imsi),
        reason: None,
    }))
}

fn status_notification(payload: Value) -> Result<StationRequest, CallFault> {
    let req: StatusNotificationRequest = decode_object("StatusNotification", payload)?;
    let status_text = enum_text(&req.status);
    let status = ConnectorStatus::parse(&status_text)
        .ok_or_else(|| property("status", &format!("unknown value {status_text:?}")))?;
    let error_code = Some(enum_text(&req.error_code)).filter(|c| c != "NoError");
    let info = match (non_empty(req.info), non_empty(req.vendor_error_code)) {
        (Some(info), Some(code)) => Some(format!("{info} / {code}")),
        (info, code) => info.or(code),
    };
    Ok(StationRequest::StatusNotification(StatusReport {
        at: EvseRef::from_v16_connector(req.connector_id),
        status,
        error_code,
        info,
        timestamp: req.timestamp,
    }))
}

fn id_tag(value: String) -> Result<IdToken, CallFault> {
    check_len("idTag", &value, ID_TAG_MAX)?;
    Ok(IdToken {
        id: value,
        kind: IdTokenKind::IdTag,
    })
}

fn authorize(payload: Value) -> Result<StationRequest, CallFault> {
    let req: AuthorizeRequest = decode_object("Authorize", payload)?;
    Ok(StationRequest::Authorize(id_tag(req.id_tag)?))
}

fn start_transaction(payload: Value) -> Result<StationRequest, CallFault> {
    let req: StartTransactionRequest = decode_object("StartTransaction", payload)?;
    if req.connector_id == 0 {
        return Err(property("connectorId", "must be greater than 0"));
    }
    check_len("idTag", &req.id_tag, ID_TAG_MAX)?;
    Ok(StationRequest::StartTransaction(StartTransaction {
        connector_id: req.connector_id,
        id_tag: req.id_tag,
        meter_start_wh: i64::from(req.meter_start),
        reservation_id: req.reservation_id,
        timestamp: req.timestamp,
    }))
}

/// `transactionData` alone, decoded with the lenient meter-value type.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionData {
    transaction_data: Option<Vec<MeterValue16>>,
}

fn stop_transaction(mut core: Value) -> Result<StationRequest, CallFault> {
    expect_object("StopTransaction", &core)?;
    normalize_timestamps(&mut core);
    // Signed OCMF records, numeric values and vendor units mostly arrive here (EVerest/libocpp#472),
    // so transactionData is split off and decoded leniently; the rest goes through rust-ocpp.
    let data = core
        .as_object_mut()
        .and_then(|m| m.remove("transactionData"));
    let req: StopTransactionRequest = typed(&core)?;
    if let Some(tag) = &req.id_tag {
        check_len("idTag", tag, ID_TAG_MAX)?;
    }
    let mut wrapper = Map::new();
    if let Some(data) = data {
        wrapper.insert("transactionData".to_owned(), data);
    }
    let data: TransactionData = typed(&Value::Object(wrapper))?;
    let transaction_data =
        meter_values_16("transactionData", data.transaction_data.unwrap_or_default())?;
    Ok(StationRequest::StopTransaction(StopTransaction {
        transaction_id: req.transaction_id,
        id_tag: req.id_tag,
        meter_stop_wh: i64::from(req.meter_stop),
        timestamp: req.timestamp,
        // Absent means Local (1.6 §4.10); reported as None so the bridge can tell the difference.
        reason: req.reason.as_ref().map(enum_text),
        transaction_data,
    }))
}

/// 1.6 MeterValues with the lenient meter-value type (rust-ocpp's rejects numeric values and
/// `Hertz`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeterValues16 {
    connector_id: u32,
    transaction_id: Option<i32>,
    meter_value: Vec<MeterValue16>,
}

fn meter_values(payload: Value) -> Result<StationRequest, CallFault> {
    let req: MeterValues16 = decode_object("MeterValues", payload)?;
    Ok(StationRequest::MeterValues(MeterValuesReport {
        at: EvseRef::from_v16_connector(req.connector_id),
        transaction_id: req.transaction_id,
        meter_values: meter_values_16("meterValue", req.meter_value)?,
    }))
}

fn data_transfer(mut payload: Value) -> Result<StationRequest, CallFault> {
    expect_object("DataTransfer", &payload)?;
    // 1.6 `data` is a string, but firmwares sharing code with 2.0.1 (where `data` is anyType)
    // send objects or numbers; carry those as their JSON text rather than rejecting vendor data.
    if let Some(data) = payload.get_mut("data")
        && !(data.is_string() || data.is_null())
    {
        *data = Value::String(data.to_string());
    }
    let req: DataTransferRequest = typed(&payload)?;
    Ok(StationRequest::DataTransfer(DataTransfer {
        vendor_id: req.vendor_string,
        message_id: req.message_id,
        data: req.data,
    }))
}

/// Encodes the CSMS's answer as a 1.6 CALLRESULT payload.
///
/// Written by hand (not via rust-ocpp, whose 1.6 types emit nanosecond timestamps):
/// timestamps are `…SS.mmmZ`, absent optional fields are omitted, 2.0.1-only authorization
/// statuses become `Invalid` and a `parentIdTag` longer than 20 characters is dropped.
/// [`StationResponse::TransactionEvent`] does not exist in 1.6 (decode never yields a
/// TransactionEvent request here) and is encoded as `{}`.
pub fn encode(response: &StationResponse) -> Value {
    match response {
        StationResponse::BootNotification {
            status,
            interval,
            current_time,
        } => json!({
            "status": registration_status(*status),
            "currentTime": format_timestamp(current_time),
            "interval": interval,
        }),
        StationResponse::Heartbeat { current_time } => {
            json!({ "currentTime": format_timestamp(current_time) })
        }
        StationResponse::Ack | StationResponse::TransactionEvent { .. } => json!({}),
        StationResponse::Authorize(info) => json!({ "idTagInfo": id_tag_info(info) }),
        StationResponse::StartTransaction {
            transaction_id,
            id_tag_info: info,
        } => json!({
            "transactionId": transaction_id,
            "idTagInfo": id_tag_info(info),
        }),
        StationResponse::StopTransaction { id_tag_info: info } => match info {
            Some(info) => json!({ "idTagInfo": id_tag_info(info) }),
            None => json!({}),
        },
        StationResponse::DataTransfer { status, data } => {
            let mut out = Map::new();
            out.insert("status".to_owned(), json!(data_transfer_status(*status)));
            if let Some(data) = data {
                out.insert("data".to_owned(), json!(data));
            }
            Value::Object(out)
        }
    }
}

pub(crate) fn registration_status(status: RegistrationStatus) -> &'static str {
    match status {
        RegistrationStatus::Accepted => "Accepted",
        RegistrationStatus::Pending => "Pending",
        RegistrationStatus::Rejected => "Rejected",
    }
}

pub(crate) fn data_transfer_status(status: DataTransferStatus) -> &'static str {
    match status {
        DataTransferStatus::Accepted => "Accepted",
        DataTransferStatus::Rejected => "Rejected",
        DataTransferStatus::UnknownMessageId => "UnknownMessageId",
        DataTransferStatus::UnknownVendorId => "UnknownVendorId",
    }
}

/// 1.6 AuthorizationStatus knows only five values; the 2.0.1 refinements all mean "not
/// allowed" to a 1.6 station.
fn authorization_status(status: AuthorizationStatus) -> &'static str {
    match status {
        AuthorizationStatus::Accepted => "Accepted",
        AuthorizationStatus::Blocked => "Blocked",
        AuthorizationStatus::ConcurrentTx => "ConcurrentTx",
        AuthorizationStatus::Expired => "Expired",
        AuthorizationStatus::Invalid
        | AuthorizationStatus::NoCredit
        | AuthorizationStatus::NotAllowedTypeEVSE
        | AuthorizationStatus::NotAtThisLocation
        | AuthorizationStatus::NotAtThisTime
        | AuthorizationStatus::Unknown => "Invalid",
    }
}

fn id_tag_info(info: &IdTokenInfo) -> Value {
    let mut out = Map::new();
    out.insert(
        "status".to_owned(),
        json!(authorization_status(info.status)),
    );
    if let Some(expiry) = &info.expiry {
        out.insert("expiryDate".to_owned(), json!(format_timestamp(expiry)));
    }
    // parentIdTag is an IdToken (≤ 20); a longer group id cannot be expressed in 1.6.
    if let Some(group) = info
        .group_id
        .as_deref()
        .filter(|g| !g.is_empty() && g.chars().count() <= ID_TAG_MAX)
    {
        out.insert("parentIdTag".to_owned(), json!(group));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// CSMS → station calls (see [`crate::call`])

use crate::call::{
    ACCEPTED_REJECTED, CallAnswer, RESERVE_STATUS, StationCall, TRIGGER_STATUS, TriggerMessageKind,
    UnlockStatus, answer, present,
};

/// 1.6 UnlockConnector statuses.
const UNLOCK_STATUS: &[(&str, UnlockStatus)] = &[
    ("Unlocked", UnlockStatus::Unlocked),
    ("UnlockFailed", UnlockStatus::UnlockFailed),
    ("NotSupported", UnlockStatus::NotSupported),
];

/// Encodes a [`StationCall`] as a 1.6 CALL: the action name and a schema-valid payload.
///
/// RemoteStartTransaction gets `connectorId` only for an EVSE ≥ 1 and never a
/// `chargingProfile`; ReserveNow without an EVSE reserves `connectorId` 0. Fails with
/// `NotSupported` for GetTransactionStatus and a TransactionEvent trigger (2.0.1 only), and with
/// `PropertyConstraintViolation` for an idTag / parentIdTag over 20 characters, a
/// `transactionId` that is not a 32-bit integer or an unlock of connector 0.
pub fn encode_call(call: &StationCall) -> Result<(&'static str, Value), CallFault> {
    let mut p = Map::new();
    let action = match call {
        StationCall::StartTransaction { evse, id_token, .. } => {
            if let Some(connector) = evse.map(EvseRef::v16_connector).filter(|&c| c > 0) {
                p.insert("connectorId".to_owned(), json!(connector));
            }
            check_len("idTag", &id_token.id, ID_TAG_MAX)?;
            p.insert("idTag".to_owned(), json!(id_token.id));
            "RemoteStartTransaction"
        }
        StationCall::StopTransaction { transaction_id } => {
            let id: i32 = transaction_id
                .trim()
                .parse()
                .map_err(|_| property("transactionId", "not a 32-bit integer"))?;
            p.insert("transactionId".to_owned(), json!(id));
            "RemoteStopTransaction"
        }
        StationCall::ReserveNow {
            id,
            expiry,
            id_token,
            group_id,
            evse,
            connector_type: _,
        } => {
            let connector = evse.map_or(0, EvseRef::v16_connector);
            p.insert("connectorId".to_owned(), json!(connector));
            p.insert("expiryDate".to_owned(), json!(format_timestamp(expiry)));
            check_len("idTag", &id_token.id, ID_TAG_MAX)?;
            p.insert("idTag".to_owned(), json!(id_token.id));
            if let Some(parent) = present(group_id) {
                check_len("parentIdTag", parent, ID_TAG_MAX)?;
                p.insert("parentIdTag".to_owned(), json!(parent));
            }
            p.insert("reservationId".to_owned(), json!(id));
            "ReserveNow"
        }
        StationCall::CancelReservation { id } => {
            p.insert("reservationId".to_owned(), json!(id));
            "CancelReservation"
        }
        StationCall::UnlockConnector { at } => {
            let connector = at.v16_connector();
            if connector == 0 {
                return Err(property("connectorId", "connector 0 cannot be unlocked"));
            }
            p.insert("connectorId".to_owned(), json!(connector));
            "UnlockConnector"
        }
        StationCall::TriggerMessage { message, at } => {
            if *message == TriggerMessageKind::TransactionEvent {
                return Err(crate::lenient::fault(
                    crate::error::ErrorCode::NotSupported,
                    "TriggerMessage TransactionEvent does not exist in OCPP 1.6",
                ));
            }
            p.insert("requestedMessage".to_owned(), json!(message.as_str()));
            if let Some(at) = at {
                p.insert("connectorId".to_owned(), json!(at.v16_connector()));
            }
            "TriggerMessage"
        }
        StationCall::GetTransactionStatus { .. } => {
            return Err(not_supported(VERSION, "GetTransactionStatus"));
        }
        StationCall::SetChargingProfile {
            at,
            profile_id,
            stack_level,
            transaction_id,
            schedule,
        } => {
            let v = crate::schedule::set_profile_16(
                at,
                *profile_id,
                *stack_level,
                transaction_id,
                schedule,
            )?;
            return Ok(("SetChargingProfile", v));
        }
        StationCall::GetCompositeSchedule {
            at,
            duration,
            rate_unit,
        } => {
            if at.v16_connector() == 0 {
                return Err(property("connectorId", "a session's connector is > 0"));
            }
            let v = crate::schedule::composite_request(false, at, *duration, *rate_unit);
            return Ok(("GetCompositeSchedule", v));
        }
        StationCall::ClearChargingProfile { profile_id, at } => {
            let v = crate::schedule::clear_request(false, *profile_id, at.as_ref());
            return Ok(("ClearChargingProfile", v));
        }
    };
    Ok((action, Value::Object(p)))
}

/// Decodes a 1.6 station's CALLRESULT payload to `call` into a [`CallAnswer`].
///
/// Lenient: extra properties are ignored and the status is matched ignoring ASCII case. A
/// payload that is not an object is a `FormationViolation`, a missing status an
/// `OccurenceConstraintViolation`, a non-string status a `TypeConstraintViolation` and an
/// unknown status a `PropertyConstraintViolation`.
pub fn decode_answer(call: &StationCall, payload: Value) -> Result<CallAnswer, CallFault> {
    Ok(match call {
        StationCall::StartTransaction { .. } => CallAnswer::Start {
            accepted: answer("RemoteStartTransaction", &payload, ACCEPTED_REJECTED)?,
            transaction_id: None,
        },
        StationCall::StopTransaction { .. } => CallAnswer::Stop {
            accepted: answer("RemoteStopTransaction", &payload, ACCEPTED_REJECTED)?,
        },
        StationCall::ReserveNow { .. } => {
            CallAnswer::Reserve(answer("ReserveNow", &payload, RESERVE_STATUS)?)
        }
        StationCall::CancelReservation { .. } => CallAnswer::Cancel {
            accepted: answer("CancelReservation", &payload, ACCEPTED_REJECTED)?,
        },
        StationCall::UnlockConnector { .. } => {
            CallAnswer::Unlock(answer("UnlockConnector", &payload, UNLOCK_STATUS)?)
        }
        StationCall::TriggerMessage { .. } => {
            CallAnswer::Trigger(answer("TriggerMessage", &payload, TRIGGER_STATUS)?)
        }
        StationCall::GetTransactionStatus { .. } => {
            return Err(not_supported(VERSION, "GetTransactionStatus"));
        }
        StationCall::SetChargingProfile { .. } => CallAnswer::ChargingProfile {
            accepted: answer(
                "SetChargingProfile",
                &payload,
                crate::schedule::SET_PROFILE_STATUS,
            )?,
        },
        StationCall::GetCompositeSchedule { .. } => {
            let (accepted, schedule) = crate::schedule::decode_composite(false, &payload)?;
            CallAnswer::CompositeSchedule { accepted, schedule }
        }
        StationCall::ClearChargingProfile { .. } => CallAnswer::ClearProfile {
            cleared: answer(
                "ClearChargingProfile",
                &payload,
                crate::schedule::CLEAR_STATUS,
            )?,
        },
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;
    use crate::error::ErrorCode;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn code_of(action: &str, payload: Value) -> ErrorCode {
        decode(action, payload).unwrap_err().code
    }

    // ---- decode: happy paths ------------------------------------------------------------

    #[test]
    fn boot_notification_maps_all_fields() {
        let req = decode(
            "BootNotification",
            json!({
                "chargePointVendor": "Alfen BV",
                "chargePointModel": "NG920-60503",
                "chargePointSerialNumber": "ACE0123456",
                "chargeBoxSerialNumber": "",
                "firmwareVersion": "6.2.0-4140",
                "iccid": "",
                "imsi": "204080123456789",
                "meterType": "Eastron SDM630",
                "meterSerialNumber": "123456789",
                "someVendorExtra": {"x": 1}
            }),
        )
        .unwrap();
        assert_eq!(
            req,
            StationRequest::BootNotification(BootInfo {
                vendor: "Alfen BV".into(),
                model: "NG920-60503".into(),
                serial_number: Some("ACE0123456".into()),
                firmware_version: Some("6.2.0-4140".into()),
                meter_serial_number: Some("123456789".into()),
                meter_type: Some("Eastron SDM630".into()),
                iccid: None,
                imsi: Some("204080123456789".into()),
                reason: None,
            })
        );
    }

    #[test]
    fn boot_notification_falls_back_to_charge_box_serial() {
        let StationRequest::BootNotification(b) = decode(
            "BootNotification",
            json!({"chargePointVendor": "V", "chargePointModel": "M", "chargeBoxSerialNumber": "CB1"}),
        )
        .unwrap() else {
            panic!("not a boot")
        };
        assert_eq!(b.serial_number.as_deref(), Some("CB1"));
    }

    #[test]
    fn heartbeat() {
        assert_eq!(
            decode("Heartbeat", json!({})).unwrap(),
            StationRequest::Heartbeat
        );
    }

    #[test]
    fn status_notification_connector_n_and_zero() {
        let req = decode(
            "StatusNotification",
            json!({
                "connectorId": 2, "errorCode": "NoError", "status": "Charging",
                "timestamp": "2024-03-01T10:00:00.000Z"
            }),
        )
        .unwrap();
        assert_eq!(
            req,
            StationRequest::StatusNotification(StatusReport {
                at: EvseRef {
                    evse_id: 2,
                    connector_id: 1
                },
                status: ConnectorStatus::Charging,
                error_code: None,
                info: None,
                timestamp: Some(utc("2024-03-01T10:00:00Z")),
            })
        );
        let StationRequest::StatusNotification(s) = decode(
            "StatusNotification",
            json!({"connectorId": 0, "errorCode": "OtherError", "status": "Unavailable",
                   "info": "door open", "vendorErrorCode": "E42", "vendorId": "ACME"}),
        )
        .unwrap() else {
            panic!("not a status")
        };
        assert_eq!(
            s.at,
            EvseRef {
                evse_id: 0,
                connector_id: 0
            }
        );
        assert_eq!(s.status, ConnectorStatus::Unavailable);
        assert_eq!(s.error_code.as_deref(), Some("OtherError"));
        assert_eq!(s.info.as_deref(), Some("door open / E42"));
        assert_eq!(s.timestamp, None);
    }

    #[test]
    fn status_notification_growatt_timestamp_without_zone_is_utc() {
        let StationRequest::StatusNotification(s) = decode(
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Preparing",
                   "timestamp": "2023-10-19T15:28:07", "vendorErrorCode": "0"}),
        )
        .unwrap() else {
            panic!("not a status")
        };
        assert_eq!(
            s.timestamp,
            Some(Utc.with_ymd_and_hms(2023, 10, 19, 15, 28, 7).unwrap())
        );
        assert_eq!(s.info.as_deref(), Some("0"));
    }

    #[test]
    fn status_notification_offset_is_converted_to_utc() {
        let StationRequest::StatusNotification(s) = decode(
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Available",
                   "timestamp": "2023-10-19T17:28:07.250+02:00"}),
        )
        .unwrap() else {
            panic!("not a status")
        };
        assert_eq!(s.timestamp, Some(utc("2023-10-19T15:28:07.250Z")));
    }

    #[test]
    fn authorize() {
        assert_eq!(
            decode("Authorize", json!({"idTag": "04A2B3C4D5E680"})).unwrap(),
            StationRequest::Authorize(IdToken {
                id: "04A2B3C4D5E680".into(),
                kind: IdTokenKind::IdTag
            })
        );
    }

    #[test]
    fn start_transaction() {
        let req = decode(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "04A2B3C4D5E680", "meterStart": 123456,
                   "reservationId": 7, "timestamp": "2024-03-01T10:00:00Z"}),
        )
        .unwrap();
        assert_eq!(
            req,
            StationRequest::StartTransaction(StartTransaction {
                connector_id: 1,
                id_tag: "04A2B3C4D5E680".into(),
                meter_start_wh: 123456,
                reservation_id: Some(7),
                timestamp: utc("2024-03-01T10:00:00Z"),
            })
        );
        assert!(req.is_transaction_message());
    }

    #[test]
    fn stop_transaction_minimal_has_no_reason() {
        let StationRequest::StopTransaction(s) = decode(
            "StopTransaction",
            json!({"transactionId": 17, "meterStop": 130000, "timestamp": "2024-03-01T11:00:00Z"}),
        )
        .unwrap() else {
            panic!("not a stop")
        };
        assert_eq!(s.transaction_id, 17);
        assert_eq!(s.meter_stop_wh, 130000);
        assert_eq!(s.reason, None);
        assert_eq!(s.id_tag, None);
        assert!(s.transaction_data.is_empty());
    }

    /// EVerest-style signed OCMF record in transactionData, without measurand, plus a numeric
    /// register value and a Growatt-style timestamp.
    #[test]
    fn stop_transaction_with_signed_ocmf_transaction_data() {
        let ocmf = r#"OCMF|{"FV":"1.0","GI":"KEBA_KCP30","GS":"17619300","PG":"T32","RD":[{"TM":"2024-03-01T11:00:00,000+0000 S","TX":"E","RV":130.0,"RI":"1-b:1.8.0","RU":"kWh","ST":"G"}]}|{"SA":"ECDSA-secp256r1-SHA256","SD":"3045022100A1"}"#;
        let StationRequest::StopTransaction(s) = decode(
            "StopTransaction",
            json!({
                "transactionId": 17, "idTag": "04A2B3C4D5E680", "meterStop": 130000,
                "timestamp": "2024-03-01T11:00:00Z", "reason": "EVDisconnected",
                "transactionData": [
                    {"timestamp": "2024-03-01T10:00:00",
                     "sampledValue": [{"value": 123456, "context": "Transaction.Begin"}]},
                    {"timestamp": "2024-03-01T11:00:00Z",
                     "sampledValue": [
                        {"value": "130000.0", "context": "Transaction.End",
                         "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                        {"value": ocmf, "context": "Transaction.End", "format": "SignedData"}
                     ]}
                ]
            }),
        )
        .unwrap() else {
            panic!("not a stop")
        };
        assert_eq!(s.reason.as_deref(), Some("EVDisconnected"));
        assert_eq!(s.id_tag.as_deref(), Some("04A2B3C4D5E680"));
        assert_eq!(s.transaction_data.len(), 2);
        assert_eq!(s.transaction_data[0].timestamp, utc("2024-03-01T10:00:00Z"));
        let begin = &s.transaction_data[0].sampled[0];
        assert_eq!(begin.value, Some(dec("123456")));
        assert_eq!(begin.raw, "123456");
        assert_eq!(begin.measurand, "Energy.Active.Import.Register");
        assert_eq!(begin.unit, "Wh");
        let end = &s.transaction_data[1].sampled[0];
        assert_eq!(end.value, Some(dec("130000")));
        let signed = &s.transaction_data[1].sampled[1];
        assert_eq!(signed.value, None);
        assert_eq!(signed.raw, ocmf);
        assert_eq!(signed.format.as_deref(), Some("SignedData"));
        assert_eq!(
            signed.signed,
            Some(crate::event::SignedMeterValue {
                signed_meter_data: ocmf.into(),
                signing_method: String::new(),
                encoding_method: "OCMF".into(),
                public_key: None,
            })
        );
    }

    #[test]
    fn signed_data_json_convention_in_value() {
        let value = r#"{"signedMeterValue":"T0NNRnx7fQ==","encodingMethod":"OCMF","publicKey":"MFkwEwYHKoZIzj0CAQ=="}"#;
        let StationRequest::MeterValues(m) = decode(
            "MeterValues",
            json!({"connectorId": 1, "transactionId": 5, "meterValue": [
                {"timestamp": "2024-03-01T11:00:00Z", "sampledValue": [
                    {"value": value, "format": "SignedData", "context": "Transaction.End"}]}]}),
        )
        .unwrap() else {
            panic!("not meter values")
        };
        let sv = &m.meter_values[0].sampled[0];
        assert_eq!(sv.value, None);
        assert_eq!(sv.raw, value);
        let signed = sv.signed.as_ref().unwrap();
        assert_eq!(signed.signed_meter_data, "T0NNRnx7fQ==");
        assert_eq!(signed.encoding_method, "OCMF");
        assert_eq!(signed.signing_method, "");
        assert_eq!(signed.public_key.as_deref(), Some("MFkwEwYHKoZIzj0CAQ=="));
    }

    #[test]
    fn signed_data_that_looks_numeric_is_not_parsed() {
        let StationRequest::MeterValues(m) = decode(
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"timestamp": "2024-03-01T11:00:00Z",
                "sampledValue": [{"value": "12345", "format": "SignedData"}]}]}),
        )
        .unwrap() else {
            panic!("not meter values")
        };
        let sv = &m.meter_values[0].sampled[0];
        assert_eq!(sv.value, None);
        assert_eq!(sv.signed.as_ref().unwrap().encoding_method, "");
    }

    /// Cheap firmware: numeric values, Hertz (schema errata), Celcius typo, a vendor measurand,
    /// a non-numeric value, scientific notation and a no-zone timestamp in one message.
    #[test]
    fn meter_values_lenient_samples() {
        // Parsed from text, as the frame codec does, so `12.50` keeps its digits.
        let payload: Value = serde_json::from_str(
            r#"{"connectorId": 1, "transactionId": 42, "meterValue": [{
                "timestamp": "2023-10-19T15:28:07",
                "sampledValue": [
                    {"value": 10, "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                    {"value": 12.50, "measurand": "Power.Active.Import", "unit": "kW"},
                    {"value": "50.02", "measurand": "Frequency", "unit": "Hertz"},
                    {"value": "31.5", "measurand": "Temperature", "unit": "Celcius", "location": "Body"},
                    {"value": "7", "measurand": "Vendor.Custom", "unit": "Bananas"},
                    {"value": "n/a", "measurand": "SoC", "unit": "Percent", "location": "EV"},
                    {"value": "1.5e3", "context": "Sample.Periodic", "format": "Raw"}
                ]}]}"#,
        )
        .unwrap();
        let req = decode("MeterValues", payload).unwrap();
        assert!(req.is_transaction_message());
        let StationRequest::MeterValues(m) = req else {
            panic!("not meter values")
        };
        assert_eq!(
            m.at,
            EvseRef {
                evse_id: 1,
                connector_id: 1
            }
        );
        assert_eq!(m.transaction_id, Some(42));
        let mv = &m.meter_values[0];
        assert_eq!(
            mv.timestamp,
            Utc.with_ymd_and_hms(2023, 10, 19, 15, 28, 7).unwrap()
        );
        let s = &mv.sampled;
        assert_eq!((s[0].value, s[0].raw.as_str()), (Some(dec("10")), "10"));
        assert_eq!(s[0].phase.as_deref(), Some("L1"));
        assert_eq!(s[1].value, Some(dec("12.5")));
        assert_eq!(s[1].raw, "12.50");
        assert_eq!(
            (s[2].unit.as_str(), s[2].value),
            ("Hertz", Some(dec("50.02")))
        );
        assert_eq!(s[3].unit, "Celcius");
        assert_eq!(s[3].location.as_deref(), Some("Body"));
        assert_eq!(
            (s[4].measurand.as_str(), s[4].unit.as_str()),
            ("Vendor.Custom", "Bananas")
        );
        assert_eq!(
            (s[5].value, s[5].raw.as_str(), &s[5].signed),
            (None, "n/a", &None)
        );
        assert_eq!(s[6].value, Some(dec("1500")));
        assert_eq!(s[6].measurand, "Energy.Active.Import.Register");
        assert_eq!(s[6].unit, "Wh");
        assert_eq!(s[6].multiplier, 0);
        assert_eq!(s[6].context.as_deref(), Some("Sample.Periodic"));
        assert_eq!(s[6].format.as_deref(), Some("Raw"));
    }

    #[test]
    fn meter_values_main_meter_without_transaction() {
        let StationRequest::MeterValues(m) = decode(
            "MeterValues",
            json!({"connectorId": 0, "meterValue": [{"timestamp": "2024-03-01T11:00:00Z",
                   "sampledValue": [{"value": "1000"}]}]}),
        )
        .unwrap() else {
            panic!("not meter values")
        };
        assert_eq!(
            m.at,
            EvseRef {
                evse_id: 0,
                connector_id: 0
            }
        );
        assert_eq!(m.transaction_id, None);
    }

    #[test]
    fn data_transfer_string_and_object_data() {
        assert_eq!(
            decode(
                "DataTransfer",
                json!({"vendorId": "com.vendor", "messageId": "PublicKey", "data": "MFkwEw=="})
            )
            .unwrap(),
            StationRequest::DataTransfer(DataTransfer {
                vendor_id: "com.vendor".into(),
                message_id: Some("PublicKey".into()),
                data: Some("MFkwEw==".into()),
            })
        );
        let StationRequest::DataTransfer(d) = decode(
            "DataTransfer",
            json!({"vendorId": "v", "data": {"k": [1, 2]}}),
        )
        .unwrap() else {
            panic!("not a data transfer")
        };
        assert_eq!(d.data.as_deref(), Some(r#"{"k":[1,2]}"#));
        assert_eq!(d.message_id, None);
    }

    #[test]
    fn ack_only_notifications() {
        for (action, payload) in [
            (
                "DiagnosticsStatusNotification",
                json!({"status": "Uploaded"}),
            ),
            (
                "SecurityEventNotification",
                json!({"type": "StartupOfTheDevice", "timestamp": "2024-03-01T10:00:00Z",
                       "techInfo": "cold boot"}),
            ),
            (
                "LogStatusNotification",
                json!({"status": "Uploading", "requestId": 3}),
            ),
        ] {
            assert_eq!(
                decode(action, payload.clone()).unwrap(),
                StationRequest::Notification {
                    action: action.into(),
                    payload
                },
                "{action}"
            );
        }
    }

    #[test]
    fn firmware_status_notifications_are_typed() {
        assert_eq!(
            decode("FirmwareStatusNotification", json!({"status": "Installed"})).unwrap(),
            StationRequest::FirmwareStatus(FirmwareStatusReport {
                status: "Installed".into(),
                request_id: None,
            })
        );
        assert_eq!(
            decode(
                "SignedFirmwareStatusNotification",
                json!({"status": "SignatureVerified", "requestId": 4})
            )
            .unwrap(),
            StationRequest::FirmwareStatus(FirmwareStatusReport {
                status: "SignatureVerified".into(),
                request_id: Some(4),
            })
        );
        assert_eq!(
            code_of("FirmwareStatusNotification", json!({"status": "Bogus"})),
            ErrorCode::PropertyConstraintViolation
        );
    }

    // ---- decode: errors ------------------------------------------------------------------

    #[test]
    fn unknown_and_other_version_actions_are_not_implemented() {
        assert_eq!(
            code_of("TransactionEvent", json!({})),
            ErrorCode::NotImplemented
        );
        assert_eq!(
            code_of("NotifyReport", json!({})),
            ErrorCode::NotImplemented
        );
        assert_eq!(code_of("FooBar", json!({})), ErrorCode::NotImplemented);
        assert_eq!(
            code_of("SignCertificate", json!({"csr": "x"})),
            ErrorCode::NotImplemented
        );
    }

    #[test]
    fn payload_not_an_object_is_a_formation_violation() {
        for action in [
            "Heartbeat",
            "BootNotification",
            "MeterValues",
            "StopTransaction",
            "DataTransfer",
            "SecurityEventNotification",
            "FirmwareStatusNotification",
        ] {
            assert_eq!(
                code_of(action, json!([1, 2])),
                ErrorCode::FormatViolation,
                "{action}"
            );
            assert_eq!(
                code_of(action, Value::Null),
                ErrorCode::FormatViolation,
                "{action}"
            );
        }
    }

    #[test]
    fn missing_required_field_is_an_occurrence_violation_naming_it() {
        let f = decode("Authorize", json!({})).unwrap_err();
        assert_eq!(f.code, ErrorCode::OccurrenceConstraintViolation);
        assert!(f.description.contains("idTag"), "{}", f.description);
        let f = decode(
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1"}]}]}),
        )
        .unwrap_err();
        assert_eq!(f.code, ErrorCode::OccurrenceConstraintViolation);
        assert!(f.description.contains("meterValue[0]"), "{}", f.description);
        assert!(f.description.contains("timestamp"), "{}", f.description);
        assert_eq!(
            code_of(
                "StopTransaction",
                json!({"transactionId": 1, "timestamp": "2024-03-01T10:00:00Z"})
            ),
            ErrorCode::OccurrenceConstraintViolation
        );
        assert_eq!(
            code_of("SecurityEventNotification", json!({"type": "x"})),
            ErrorCode::OccurrenceConstraintViolation
        );
        assert_eq!(
            code_of("LogStatusNotification", json!({})),
            ErrorCode::OccurrenceConstraintViolation
        );
    }

    #[test]
    fn wrong_json_type_is_a_type_constraint_violation() {
        let f = decode(
            "StatusNotification",
            json!({"connectorId": "1", "errorCode": "NoError", "status": "Available"}),
        )
        .unwrap_err();
        assert_eq!(f.code, ErrorCode::TypeConstraintViolation);
        assert!(f.description.contains("connectorId"), "{}", f.description);
        assert_eq!(
            code_of("Authorize", json!({"idTag": 12})),
            ErrorCode::TypeConstraintViolation
        );
        assert_eq!(
            code_of("DataTransfer", json!({"vendorId": 12})),
            ErrorCode::TypeConstraintViolation
        );
        let f = decode(
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"timestamp": "2024-03-01T11:00:00Z",
                   "sampledValue": [{"value": true}]}]}),
        )
        .unwrap_err();
        assert_eq!(f.code, ErrorCode::TypeConstraintViolation);
        assert!(
            f.description
                .contains("meterValue[0].sampledValue[0].value"),
            "{}",
            f.description
        );
        assert_eq!(
            code_of(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": "a", "meterStart": 1.5,
                                               "timestamp": "2024-03-01T10:00:00Z"})
            ),
            ErrorCode::TypeConstraintViolation
        );
        assert_eq!(
            code_of(
                "LogStatusNotification",
                json!({"status": "Idle", "requestId": "1"})
            ),
            ErrorCode::TypeConstraintViolation
        );
    }

    #[test]
    fn unknown_enum_value_is_a_property_constraint_violation() {
        let f = decode(
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Bogus"}),
        )
        .unwrap_err();
        assert_eq!(f.code, ErrorCode::PropertyConstraintViolation);
        assert!(f.description.contains("status"), "{}", f.description);
        assert_eq!(
            code_of(
                "StopTransaction",
                json!({"transactionId": 1, "meterStop": 1,
                "timestamp": "2024-03-01T10:00:00Z", "reason": "Tired"})
            ),
            ErrorCode::PropertyConstraintViolation
        );
        assert_eq!(
            code_of("FirmwareStatusNotification", json!({"status": "Exploded"})),
            ErrorCode::PropertyConstraintViolation
        );
        assert_eq!(
            code_of("LogStatusNotification", json!({"status": "Exploded"})),
            ErrorCode::PropertyConstraintViolation
        );
    }

    #[test]
    fn bad_values_are_property_constraint_violations() {
        // idTag longer than 20 characters.
        let f = decode("Authorize", json!({"idTag": "123456789012345678901"})).unwrap_err();
        assert_eq!(f.code, ErrorCode::PropertyConstraintViolation);
        assert!(f.description.contains("idTag"), "{}", f.description);
        assert_eq!(
            code_of(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": "123456789012345678901",
                "meterStart": 0, "timestamp": "2024-03-01T10:00:00Z"})
            ),
            ErrorCode::PropertyConstraintViolation
        );
        assert_eq!(
            code_of(
                "StopTransaction",
                json!({"transactionId": 1, "meterStop": 1,
                "idTag": "123456789012345678901", "timestamp": "2024-03-01T10:00:00Z"})
            ),
            ErrorCode::PropertyConstraintViolation
        );
        assert_eq!(
            code_of(
                "StartTransaction",
                json!({"connectorId": 0, "idTag": "a", "meterStart": 0,
                "timestamp": "2024-03-01T10:00:00Z"})
            ),
            ErrorCode::PropertyConstraintViolation
        );
        let f = decode(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "a", "meterStart": 0, "timestamp": "soon"}),
        )
        .unwrap_err();
        assert_eq!(f.code, ErrorCode::PropertyConstraintViolation);
        assert!(f.description.contains("timestamp"), "{}", f.description);
        assert_eq!(
            code_of(
                "StatusNotification",
                json!({"connectorId": -1, "errorCode": "NoError", "status": "Available"})
            ),
            ErrorCode::PropertyConstraintViolation
        );
        assert_eq!(
            code_of(
                "SecurityEventNotification",
                json!({"type": "x", "timestamp": "never"})
            ),
            ErrorCode::PropertyConstraintViolation
        );
    }

    #[test]
    fn bad_sample_in_transaction_data_fails_the_stop() {
        let f = decode(
            "StopTransaction",
            json!({"transactionId": 1, "meterStop": 1, "timestamp": "2024-03-01T10:00:00Z",
                   "transactionData": [{"timestamp": "2024-03-01T10:00:00Z", "sampledValue": [{}]}]}),
        )
        .unwrap_err();
        assert_eq!(f.code, ErrorCode::OccurrenceConstraintViolation);
        assert!(
            f.description.contains("transactionData[0].sampledValue[0]"),
            "{}",
            f.description
        );
    }

    // ---- encode ----------------------------------------------------------------------------

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(266_181_970)
    }

    fn assert_ms_z(s: &str) {
        let (_, frac) = s.rsplit_once('.').expect("fraction");
        assert_eq!(frac.len(), 4, "{s}");
        assert!(
            frac.ends_with('Z') && frac[..3].bytes().all(|b| b.is_ascii_digit()),
            "{s}"
        );
    }

    #[test]
    fn encode_boot_and_heartbeat_use_millisecond_z_timestamps() {
        let v = encode(&StationResponse::BootNotification {
            status: RegistrationStatus::Pending,
            interval: 86_400,
            current_time: now(),
        });
        assert_eq!(v["status"], "Pending");
        assert_eq!(v["currentTime"], "2024-03-01T10:00:00.266Z");
        assert_eq!(v["interval"].as_u64(), Some(86_400));
        assert_eq!(v.as_object().unwrap().len(), 3);
        assert_ms_z(v["currentTime"].as_str().unwrap());
        let v = encode(&StationResponse::Heartbeat {
            current_time: now(),
        });
        assert_eq!(v, json!({"currentTime": "2024-03-01T10:00:00.266Z"}));
    }

    #[test]
    fn encode_acks_are_empty_objects() {
        assert_eq!(encode(&StationResponse::Ack), json!({}));
        assert_eq!(
            encode(&StationResponse::StopTransaction { id_tag_info: None }),
            json!({})
        );
        assert_eq!(
            encode(&StationResponse::TransactionEvent {
                id_token_info: None
            }),
            json!({})
        );
    }

    #[test]
    fn encode_id_tag_info_maps_statuses_and_limits_parent() {
        let v = encode(&StationResponse::Authorize(IdTokenInfo::accepted()));
        assert_eq!(v, json!({"idTagInfo": {"status": "Accepted"}}));
        for (status, text) in [
            (AuthorizationStatus::Blocked, "Blocked"),
            (AuthorizationStatus::Expired, "Expired"),
            (AuthorizationStatus::ConcurrentTx, "ConcurrentTx"),
            (AuthorizationStatus::Invalid, "Invalid"),
            (AuthorizationStatus::NoCredit, "Invalid"),
            (AuthorizationStatus::NotAllowedTypeEVSE, "Invalid"),
            (AuthorizationStatus::NotAtThisLocation, "Invalid"),
            (AuthorizationStatus::NotAtThisTime, "Invalid"),
            (AuthorizationStatus::Unknown, "Invalid"),
        ] {
            let v = encode(&StationResponse::Authorize(IdTokenInfo {
                status,
                expiry: None,
                group_id: None,
            }));
            assert_eq!(v["idTagInfo"]["status"], text);
        }
        let v = encode(&StationResponse::StartTransaction {
            transaction_id: 17,
            id_tag_info: IdTokenInfo {
                status: AuthorizationStatus::Accepted,
                expiry: Some(now()),
                group_id: Some("FLEET-1".into()),
            },
        });
        assert_eq!(v["transactionId"].as_i64(), Some(17));
        assert_eq!(v["idTagInfo"]["expiryDate"], "2024-03-01T10:00:00.266Z");
        assert_eq!(v["idTagInfo"]["parentIdTag"], "FLEET-1");
        let v = encode(&StationResponse::StopTransaction {
            id_tag_info: Some(IdTokenInfo {
                status: AuthorizationStatus::Accepted,
                expiry: None,
                group_id: Some("a-group-id-longer-than-20".into()),
            }),
        });
        assert_eq!(v, json!({"idTagInfo": {"status": "Accepted"}}));
    }

    #[test]
    fn encode_data_transfer() {
        let v = encode(&StationResponse::DataTransfer {
            status: DataTransferStatus::UnknownVendorId,
            data: None,
        });
        assert_eq!(v, json!({"status": "UnknownVendorId"}));
        let v = encode(&StationResponse::DataTransfer {
            status: DataTransferStatus::Accepted,
            data: Some("ok".into()),
        });
        assert_eq!(v, json!({"status": "Accepted", "data": "ok"}));
    }

    /// Every response shape, for the schema check.
    fn sample_responses() -> Vec<(&'static str, StationResponse)> {
        let info = IdTokenInfo {
            status: AuthorizationStatus::NotAtThisTime,
            expiry: Some(now()),
            group_id: Some("GROUP".into()),
        };
        vec![
            (
                "BootNotification",
                StationResponse::BootNotification {
                    status: RegistrationStatus::Accepted,
                    interval: 300,
                    current_time: now(),
                },
            ),
            (
                "Heartbeat",
                StationResponse::Heartbeat {
                    current_time: now(),
                },
            ),
            ("StatusNotification", StationResponse::Ack),
            ("MeterValues", StationResponse::Ack),
            ("FirmwareStatusNotification", StationResponse::Ack),
            ("DiagnosticsStatusNotification", StationResponse::Ack),
            ("SecurityEventNotification", StationResponse::Ack),
            ("LogStatusNotification", StationResponse::Ack),
            ("SignedFirmwareStatusNotification", StationResponse::Ack),
            ("Authorize", StationResponse::Authorize(info.clone())),
            (
                "Authorize",
                StationResponse::Authorize(IdTokenInfo::accepted()),
            ),
            (
                "StartTransaction",
                StationResponse::StartTransaction {
                    transaction_id: 1,
                    id_tag_info: info.clone(),
                },
            ),
            (
                "StopTransaction",
                StationResponse::StopTransaction {
                    id_tag_info: Some(info),
                },
            ),
            (
                "StopTransaction",
                StationResponse::StopTransaction { id_tag_info: None },
            ),
            (
                "DataTransfer",
                StationResponse::DataTransfer {
                    status: DataTransferStatus::Accepted,
                    data: Some("x".into()),
                },
            ),
            (
                "DataTransfer",
                StationResponse::DataTransfer {
                    status: DataTransferStatus::UnknownMessageId,
                    data: None,
                },
            ),
        ]
    }

    /// Validates every encoded response against the official OCA schema when
    /// `OCPP_SCHEMAS_DIR` points at the Python `ocpp` package directory (the one holding
    /// `v16/schemas/` and `v201/schemas/`).
    #[test]
    fn encoded_responses_validate_against_official_schemas() {
        let Some(dir) = std::env::var_os("OCPP_SCHEMAS_DIR") else {
            eprintln!("note: OCPP_SCHEMAS_DIR not set; 1.6 response schema check skipped");
            return;
        };
        let dir = std::path::Path::new(&dir).join("v16").join("schemas");
        for (action, response) in sample_responses() {
            let path = dir.join(format!("{action}Response.json"));
            let schema: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap();
            if action == "Heartbeat" {
                // The validator really checks formats (a wrong time must fail).
                assert!(!validator.is_valid(&json!({"currentTime": "2024-03-01 10:00"})));
            }
            let payload = encode(&response);
            let errors: Vec<String> = validator
                .iter_errors(&payload)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{action}: {payload} invalid: {errors:?}");
        }
    }
}
