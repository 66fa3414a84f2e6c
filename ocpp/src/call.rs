//! Typed, version-neutral CSMS → station calls (the ones OCPI Commands need) and their answers.
//!
//! The bridge builds a [`StationCall`]; [`crate::v16::encode_call`] / [`crate::v201::encode_call`]
//! turn it into that version's action name and a strictly schema-valid request payload
//! (timestamps `YYYY-MM-DDTHH:MM:SS.mmmZ`, absent fields omitted, never `null`), and
//! [`crate::v16::decode_answer`] / [`crate::v201::decode_answer`] read the station's CALLRESULT
//! into a [`CallAnswer`]. [`crate::StationHandle::send`] does all three in one step.
//!
//! Encoding fails (nothing is sent) when a call does not exist in the version
//! (`ErrorCode::NotSupported`, e.g. 2.0.1 GetTransactionStatus on a 1.6 station) or an argument
//! cannot be written schema-valid (`ErrorCode::PropertyConstraintViolation`, e.g. an idTag longer
//! than 20 characters or a non-numeric 1.6 transaction id). Decoding is lenient about what does
//! not matter (extra properties, status spelling case, a numeric 2.0.1 `transactionId`) and
//! reports an unknown status as `PropertyConstraintViolation`, so the caller can answer the
//! OCPI command FAILED.
//!
//! Addressing follows [`EvseRef`]: for 1.6 the connector id is [`EvseRef::v16_connector`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CallFault, ErrorCode};
use crate::event::{EvseRef, IdToken, OcppVersion};
use crate::handle::CallFailure;
use crate::lenient::{fault, json_kind};
use crate::schedule::{ChargingRateUnit, ChargingSchedule, CompositeSchedule};

/// A call the CSMS sends to a station, independent of its OCPP version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StationCall {
    /// 1.6 RemoteStartTransaction / 2.0.1 RequestStartTransaction.
    StartTransaction {
        /// Where to start (`None`, or EVSE 0: the station chooses). 1.6: `connectorId`;
        /// 2.0.1: `evseId`.
        evse: Option<EvseRef>,
        /// The identifier to start with (1.6: the ≤ 20 character alias the caller chose).
        id_token: IdToken,
        /// 2.0.1 `groupIdToken` (type `Central`); 1.6 has no place for it.
        group_id: Option<String>,
        /// 2.0.1 `remoteStartId` (the station echoes it in TransactionEvent); unused in 1.6.
        remote_start_id: i32,
        /// 2.0.1 `idToken.additionalInfo` of type `eMAID`; unused in 1.6.
        contract_id: Option<String>,
    },
    /// 1.6 RemoteStopTransaction (`transactionId` must be an integer) / 2.0.1
    /// RequestStopTransaction.
    StopTransaction {
        /// The transaction id as text (1.6: CSMS-assigned integer; 2.0.1: station-assigned).
        transaction_id: String,
    },
    /// ReserveNow.
    ReserveNow {
        /// Reservation id (1.6 `reservationId`, 2.0.1 `id`); the same id again replaces it.
        id: i32,
        /// When the reservation ends.
        expiry: DateTime<Utc>,
        /// For whom (1.6: `idTag`, ≤ 20 characters).
        id_token: IdToken,
        /// 1.6 `parentIdTag` / 2.0.1 `groupIdToken` (type `Central`).
        group_id: Option<String>,
        /// Which EVSE (`None`: any; 1.6 then sends `connectorId` 0, which needs
        /// `ReserveConnectorZeroSupported`).
        evse: Option<EvseRef>,
        /// 2.0.1 `connectorType` (`cType2`, `cCCS2`, …); unused in 1.6.
        connector_type: Option<String>,
    },
    /// CancelReservation.
    CancelReservation {
        /// The reservation id.
        id: i32,
    },
    /// UnlockConnector (1.6 `connectorId`; 2.0.1 `evseId` + `connectorId`).
    UnlockConnector {
        /// The connector (EVSE 0 and, for 2.0.1, connector 0 are refused).
        at: EvseRef,
    },
    /// TriggerMessage.
    TriggerMessage {
        /// The message the station should send.
        message: TriggerMessageKind,
        /// For which connector / EVSE (`None`: the station decides or all of them).
        at: Option<EvseRef>,
    },
    /// 2.0.1 GetTransactionStatus (not available in 1.6).
    GetTransactionStatus {
        /// The transaction asked about (`None`: only whether messages are queued).
        transaction_id: Option<String>,
    },
    /// SetChargingProfile: a `TxProfile` for one running transaction (1.6 `connectorId` +
    /// `csChargingProfiles`; 2.0.1 `evseId` + `chargingProfile`).
    SetChargingProfile {
        /// The transaction's EVSE / connector.
        at: EvseRef,
        /// `chargingProfileId` / `id` (the same id again replaces the profile).
        profile_id: i32,
        /// `stackLevel`.
        stack_level: u32,
        /// The OCPP transaction id (1.6: integer text; 2.0.1: the station's string).
        transaction_id: String,
        /// The schedule.
        schedule: ChargingSchedule,
    },
    /// GetCompositeSchedule.
    GetCompositeSchedule {
        /// The EVSE / connector asked about.
        at: EvseRef,
        /// Seconds of schedule wanted.
        duration: u32,
        /// The unit wanted (`None`: the station's choice).
        rate_unit: Option<ChargingRateUnit>,
    },
    /// ClearChargingProfile of a TxProfile: by id, or every TxProfile of an EVSE / connector.
    ClearChargingProfile {
        /// The profile id, when known.
        profile_id: Option<i32>,
        /// The EVSE / connector (used when there is no id).
        at: Option<EvseRef>,
    },
}

/// The message a [`StationCall::TriggerMessage`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TriggerMessageKind {
    /// StatusNotification.
    StatusNotification,
    /// BootNotification.
    BootNotification,
    /// Heartbeat.
    Heartbeat,
    /// MeterValues.
    MeterValues,
    /// TransactionEvent (2.0.1 only).
    TransactionEvent,
}

impl TriggerMessageKind {
    /// The OCPP spelling (`requestedMessage`).
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerMessageKind::StatusNotification => "StatusNotification",
            TriggerMessageKind::BootNotification => "BootNotification",
            TriggerMessageKind::Heartbeat => "Heartbeat",
            TriggerMessageKind::MeterValues => "MeterValues",
            TriggerMessageKind::TransactionEvent => "TransactionEvent",
        }
    }
}

/// A station's answer to a [`StationCall`], decoded and version-neutral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallAnswer {
    /// RemoteStartTransaction / RequestStartTransaction.
    Start {
        /// `Accepted` (else `Rejected`).
        accepted: bool,
        /// 2.0.1: the transaction id, when the transaction already runs.
        transaction_id: Option<String>,
    },
    /// RemoteStopTransaction / RequestStopTransaction.
    Stop {
        /// `Accepted` (else `Rejected`).
        accepted: bool,
    },
    /// ReserveNow.
    Reserve(ReservationStatus),
    /// CancelReservation.
    Cancel {
        /// `Accepted` (else `Rejected`: no such reservation).
        accepted: bool,
    },
    /// UnlockConnector.
    Unlock(UnlockStatus),
    /// TriggerMessage.
    Trigger(TriggerStatus),
    /// SetChargingProfile: `Accepted` (else `Rejected`, or 1.6 `NotSupported`).
    ChargingProfile {
        /// Accepted.
        accepted: bool,
    },
    /// GetCompositeSchedule: `Accepted` with the schedule (when the station sent one), else
    /// `Rejected`.
    CompositeSchedule {
        /// Accepted.
        accepted: bool,
        /// The schedule.
        schedule: Option<CompositeSchedule>,
    },
    /// ClearChargingProfile: `Accepted` (true) or `Unknown` (false: no matching profile).
    ClearProfile {
        /// A profile was cleared.
        cleared: bool,
    },
    /// 2.0.1 GetTransactionStatus.
    TransactionStatus {
        /// `ongoingIndicator`: whether the transaction still runs (absent when none was asked
        /// about).
        ongoing: Option<bool>,
        /// `messagesInQueue`: the station still has messages for it (or any) queued.
        messages_in_queue: bool,
    },
}

/// ReserveNow answer status (same values in 1.6 and 2.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReservationStatus {
    /// Reserved.
    Accepted,
    /// The EVSE / connector is faulted.
    Faulted,
    /// The EVSE / connector is occupied.
    Occupied,
    /// The station does not accept reservations (for this).
    Rejected,
    /// The EVSE / connector is unavailable.
    Unavailable,
}

/// UnlockConnector answer status (union of both versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnlockStatus {
    /// Unlocked.
    Unlocked,
    /// The unlock failed.
    UnlockFailed,
    /// 1.6: the connector has no lock.
    NotSupported,
    /// 2.0.1: an authorized transaction runs on the connector.
    OngoingAuthorizedTransaction,
    /// 2.0.1: no such connector.
    UnknownConnector,
}

/// TriggerMessage answer status (same values in 1.6 and 2.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TriggerStatus {
    /// The message will be sent.
    Accepted,
    /// The station will not send it.
    Rejected,
    /// The station does not know this message.
    NotImplemented,
}

/// Encodes a call for `version` (see [`crate::v16::encode_call`], [`crate::v201::encode_call`]).
pub fn encode_call(
    version: OcppVersion,
    call: &StationCall,
) -> Result<(&'static str, Value), CallFault> {
    match version {
        OcppVersion::V16 => crate::v16::encode_call(call),
        OcppVersion::V201 => crate::v201::encode_call(call),
    }
}

/// Decodes the answer to `call` from a `version` station (see [`crate::v16::decode_answer`],
/// [`crate::v201::decode_answer`]).
pub fn decode_answer(
    version: OcppVersion,
    call: &StationCall,
    payload: Value,
) -> Result<CallAnswer, CallFault> {
    match version {
        OcppVersion::V16 => crate::v16::decode_answer(call, payload),
        OcppVersion::V201 => crate::v201::decode_answer(call, payload),
    }
}

/// The [`CallFailure`] for a call that could not be encoded (nothing was sent).
pub(crate) fn encode_failure(version: OcppVersion, f: CallFault) -> CallFailure {
    if f.code == ErrorCode::NotSupported {
        CallFailure::NotSupportedByVersion {
            version,
            reason: f.description,
        }
    } else {
        CallFailure::InvalidRequest {
            reason: f.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the two adapters

/// Accepted / Rejected answers.
pub(crate) const ACCEPTED_REJECTED: &[(&str, bool)] = &[("Accepted", true), ("Rejected", false)];

/// ReserveNow statuses (both versions).
pub(crate) const RESERVE_STATUS: &[(&str, ReservationStatus)] = &[
    ("Accepted", ReservationStatus::Accepted),
    ("Faulted", ReservationStatus::Faulted),
    ("Occupied", ReservationStatus::Occupied),
    ("Rejected", ReservationStatus::Rejected),
    ("Unavailable", ReservationStatus::Unavailable),
];

/// TriggerMessage statuses (both versions).
pub(crate) const TRIGGER_STATUS: &[(&str, TriggerStatus)] = &[
    ("Accepted", TriggerStatus::Accepted),
    ("Rejected", TriggerStatus::Rejected),
    ("NotImplemented", TriggerStatus::NotImplemented),
];

/// Rejects a CALLRESULT payload that is not a JSON object.
pub(crate) fn answer_object<'v>(
    action: &str,
    payload: &'v Value,
) -> Result<&'v serde_json::Map<String, Value>, CallFault> {
    payload.as_object().ok_or_else(|| {
        fault(
            ErrorCode::FormatViolation,
            format!(
                "{action} answer must be a JSON object, got {}",
                json_kind(payload)
            ),
        )
    })
}

/// The `status` text of an answer: missing → OccurrenceConstraintViolation, not a string →
/// TypeConstraintViolation.
pub(crate) fn answer_status<'v>(action: &str, payload: &'v Value) -> Result<&'v str, CallFault> {
    match answer_object(action, payload)?.get("status") {
        Some(Value::String(s)) => Ok(s),
        None => Err(fault(
            ErrorCode::OccurrenceConstraintViolation,
            format!("{action} answer: status is missing"),
        )),
        Some(other) => Err(fault(
            ErrorCode::TypeConstraintViolation,
            format!(
                "{action} answer: status must be a string, got {}",
                json_kind(other)
            ),
        )),
    }
}

/// The status of an answer, looked up in `table` ([`answer_status`], then [`pick`]).
pub(crate) fn answer<T: Copy>(
    action: &str,
    payload: &Value,
    table: &[(&str, T)],
) -> Result<T, CallFault> {
    pick(action, answer_status(action, payload)?, table)
}

/// The value whose spelling matches `status` (exactly, else ignoring ASCII case); an unknown
/// status is a PropertyConstraintViolation.
pub(crate) fn pick<T: Copy>(
    action: &str,
    status: &str,
    table: &[(&str, T)],
) -> Result<T, CallFault> {
    table
        .iter()
        .find(|(s, _)| *s == status)
        .or_else(|| table.iter().find(|(s, _)| s.eq_ignore_ascii_case(status)))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let shown: String = status.chars().take(64).collect();
            fault(
                ErrorCode::PropertyConstraintViolation,
                format!("{action} answer: unknown status {shown:?}"),
            )
        })
}

/// An optional boolean field: absent or `null` → `None`, not a boolean →
/// TypeConstraintViolation.
pub(crate) fn answer_bool(
    action: &str,
    payload: &Value,
    field: &str,
) -> Result<Option<bool>, CallFault> {
    match answer_object(action, payload)?.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(fault(
            ErrorCode::TypeConstraintViolation,
            format!(
                "{action} answer: {field} must be a boolean, got {}",
                json_kind(other)
            ),
        )),
    }
}

/// An optional identifier field, leniently: a string (empty → `None`) or a number as its text;
/// anything else is ignored.
pub(crate) fn answer_text(payload: &Value, field: &str) -> Option<String> {
    match payload.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A string argument that is `Some` and not empty.
pub(crate) fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::connection::tests::{WAIT, next_frame, send, start};
    use crate::event::IdTokenKind;
    use crate::frame::Frame;
    use crate::server::ServerSettings;
    use crate::{v16, v201};

    fn token(id: &str, kind: IdTokenKind) -> IdToken {
        IdToken {
            id: id.to_owned(),
            kind,
        }
    }

    fn at(evse_id: u32, connector_id: u32) -> EvseRef {
        EvseRef {
            evse_id,
            connector_id,
        }
    }

    fn expiry() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap() + chrono::Duration::milliseconds(123)
    }

    const EXPIRY: &str = "2024-03-01T10:00:00.123Z";

    fn start_call(evse: Option<EvseRef>, kind: IdTokenKind, extras: bool) -> StationCall {
        StationCall::StartTransaction {
            evse,
            id_token: token("ABC123", kind),
            group_id: extras.then(|| "GROUP1".to_owned()),
            remote_start_id: 7,
            contract_id: extras.then(|| "NL-TNM-C12345678-X".to_owned()),
        }
    }

    fn reserve_call(evse: Option<EvseRef>, extras: bool) -> StationCall {
        StationCall::ReserveNow {
            id: 42,
            expiry: expiry(),
            id_token: token("ABC123", IdTokenKind::Iso14443),
            group_id: extras.then(|| "GROUP1".to_owned()),
            evse,
            connector_type: extras.then(|| "cType2".to_owned()),
        }
    }

    fn trigger(message: TriggerMessageKind, at: Option<EvseRef>) -> StationCall {
        StationCall::TriggerMessage { message, at }
    }

    fn profile(tx: &str, absolute: bool) -> StationCall {
        use crate::schedule::SchedulePeriod;
        StationCall::SetChargingProfile {
            at: at(2, 1),
            profile_id: 17,
            stack_level: 1,
            transaction_id: tx.to_owned(),
            schedule: ChargingSchedule {
                start: absolute.then(expiry),
                duration: Some(900),
                rate_unit: ChargingRateUnit::A,
                min_rate: absolute.then(|| "6.0".parse().unwrap()),
                periods: vec![
                    SchedulePeriod {
                        start_period: 0,
                        limit: "16.1".parse().unwrap(),
                        number_phases: None,
                    },
                    SchedulePeriod {
                        start_period: 600,
                        limit: "8".parse().unwrap(),
                        number_phases: Some(1),
                    },
                ],
            },
        }
    }

    fn periods_json() -> Value {
        serde_json::from_str(
            r#"[{"startPeriod": 0, "limit": 16.1}, {"startPeriod": 600, "limit": 8, "numberPhases": 1}]"#,
        )
        .unwrap()
    }

    /// Every call with its exact 1.6 encoding.
    fn v16_cases() -> Vec<(StationCall, &'static str, Value)> {
        vec![
            (
                start_call(Some(at(2, 1)), IdTokenKind::IdTag, true),
                "RemoteStartTransaction",
                json!({"connectorId": 2, "idTag": "ABC123"}),
            ),
            (
                start_call(None, IdTokenKind::Central, false),
                "RemoteStartTransaction",
                json!({"idTag": "ABC123"}),
            ),
            (
                // EVSE 0 = the station chooses: no connectorId (1.6 wants > 0).
                start_call(Some(at(0, 0)), IdTokenKind::IdTag, false),
                "RemoteStartTransaction",
                json!({"idTag": "ABC123"}),
            ),
            (
                StationCall::StopTransaction {
                    transaction_id: " 1234 ".into(),
                },
                "RemoteStopTransaction",
                json!({"transactionId": 1234}),
            ),
            (
                reserve_call(Some(at(3, 1)), true),
                "ReserveNow",
                json!({"connectorId": 3, "expiryDate": EXPIRY, "idTag": "ABC123",
                       "parentIdTag": "GROUP1", "reservationId": 42}),
            ),
            (
                reserve_call(None, false),
                "ReserveNow",
                json!({"connectorId": 0, "expiryDate": EXPIRY, "idTag": "ABC123",
                       "reservationId": 42}),
            ),
            (
                StationCall::CancelReservation { id: 42 },
                "CancelReservation",
                json!({"reservationId": 42}),
            ),
            (
                StationCall::UnlockConnector { at: at(2, 1) },
                "UnlockConnector",
                json!({"connectorId": 2}),
            ),
            (
                trigger(TriggerMessageKind::StatusNotification, Some(at(2, 1))),
                "TriggerMessage",
                json!({"requestedMessage": "StatusNotification", "connectorId": 2}),
            ),
            (
                trigger(TriggerMessageKind::StatusNotification, Some(at(0, 0))),
                "TriggerMessage",
                json!({"requestedMessage": "StatusNotification", "connectorId": 0}),
            ),
            (
                trigger(TriggerMessageKind::BootNotification, None),
                "TriggerMessage",
                json!({"requestedMessage": "BootNotification"}),
            ),
            (
                trigger(TriggerMessageKind::Heartbeat, None),
                "TriggerMessage",
                json!({"requestedMessage": "Heartbeat"}),
            ),
            (
                trigger(TriggerMessageKind::MeterValues, Some(at(1, 1))),
                "TriggerMessage",
                json!({"requestedMessage": "MeterValues", "connectorId": 1}),
            ),
            (
                profile("1234", false),
                "SetChargingProfile",
                json!({"connectorId": 2, "csChargingProfiles": {"chargingProfileId": 17,
                    "transactionId": 1234, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
                    "chargingProfileKind": "Relative", "chargingSchedule": {"duration": 900,
                    "chargingRateUnit": "A", "chargingSchedulePeriod": periods_json()}}}),
            ),
            (
                profile("1234", true),
                "SetChargingProfile",
                json!({"connectorId": 2, "csChargingProfiles": {"chargingProfileId": 17,
                    "transactionId": 1234, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
                    "chargingProfileKind": "Absolute", "chargingSchedule": {"startSchedule": EXPIRY,
                    "duration": 900, "chargingRateUnit": "A", "chargingSchedulePeriod": periods_json(),
                    "minChargingRate": serde_json::from_str::<Value>("6.0").unwrap()}}}),
            ),
            (
                StationCall::GetCompositeSchedule {
                    at: at(2, 1),
                    duration: 900,
                    rate_unit: Some(ChargingRateUnit::W),
                },
                "GetCompositeSchedule",
                json!({"connectorId": 2, "duration": 900, "chargingRateUnit": "W"}),
            ),
            (
                StationCall::ClearChargingProfile {
                    profile_id: Some(17),
                    at: Some(at(2, 1)),
                },
                "ClearChargingProfile",
                json!({"id": 17}),
            ),
            (
                StationCall::ClearChargingProfile {
                    profile_id: None,
                    at: Some(at(2, 1)),
                },
                "ClearChargingProfile",
                json!({"connectorId": 2, "chargingProfilePurpose": "TxProfile"}),
            ),
        ]
    }

    /// Every call with its exact 2.0.1 encoding.
    fn v201_cases() -> Vec<(StationCall, &'static str, Value)> {
        let mut out = vec![
            (
                start_call(Some(at(2, 1)), IdTokenKind::Iso14443, true),
                "RequestStartTransaction",
                json!({
                    "evseId": 2,
                    "remoteStartId": 7,
                    "idToken": {
                        "idToken": "ABC123",
                        "type": "ISO14443",
                        "additionalInfo": [
                            {"additionalIdToken": "NL-TNM-C12345678-X", "type": "eMAID"}
                        ]
                    },
                    "groupIdToken": {"idToken": "GROUP1", "type": "Central"}
                }),
            ),
            (
                start_call(Some(at(0, 0)), IdTokenKind::IdTag, false),
                "RequestStartTransaction",
                json!({"remoteStartId": 7, "idToken": {"idToken": "ABC123", "type": "Central"}}),
            ),
            (
                StationCall::StopTransaction {
                    transaction_id: "tx-9f2c".into(),
                },
                "RequestStopTransaction",
                json!({"transactionId": "tx-9f2c"}),
            ),
            (
                reserve_call(Some(at(3, 1)), true),
                "ReserveNow",
                json!({
                    "id": 42,
                    "expiryDateTime": EXPIRY,
                    "idToken": {"idToken": "ABC123", "type": "ISO14443"},
                    "evseId": 3,
                    "connectorType": "cType2",
                    "groupIdToken": {"idToken": "GROUP1", "type": "Central"}
                }),
            ),
            (
                reserve_call(None, false),
                "ReserveNow",
                json!({"id": 42, "expiryDateTime": EXPIRY,
                       "idToken": {"idToken": "ABC123", "type": "ISO14443"}}),
            ),
            (
                StationCall::CancelReservation { id: 42 },
                "CancelReservation",
                json!({"reservationId": 42}),
            ),
            (
                StationCall::UnlockConnector { at: at(2, 3) },
                "UnlockConnector",
                json!({"evseId": 2, "connectorId": 3}),
            ),
            (
                trigger(TriggerMessageKind::StatusNotification, Some(at(2, 3))),
                "TriggerMessage",
                json!({"requestedMessage": "StatusNotification",
                       "evse": {"id": 2, "connectorId": 3}}),
            ),
            (
                trigger(TriggerMessageKind::MeterValues, Some(at(2, 0))),
                "TriggerMessage",
                json!({"requestedMessage": "MeterValues", "evse": {"id": 2}}),
            ),
            (
                trigger(TriggerMessageKind::BootNotification, Some(at(0, 0))),
                "TriggerMessage",
                json!({"requestedMessage": "BootNotification"}),
            ),
            (
                trigger(TriggerMessageKind::Heartbeat, None),
                "TriggerMessage",
                json!({"requestedMessage": "Heartbeat"}),
            ),
            (
                trigger(TriggerMessageKind::TransactionEvent, Some(at(1, 1))),
                "TriggerMessage",
                json!({"requestedMessage": "TransactionEvent",
                       "evse": {"id": 1, "connectorId": 1}}),
            ),
            (
                StationCall::GetTransactionStatus {
                    transaction_id: Some("tx-9f2c".into()),
                },
                "GetTransactionStatus",
                json!({"transactionId": "tx-9f2c"}),
            ),
            (
                StationCall::GetTransactionStatus {
                    transaction_id: None,
                },
                "GetTransactionStatus",
                json!({}),
            ),
            (
                profile("tx-9f2c", false),
                "SetChargingProfile",
                json!({"evseId": 2, "chargingProfile": {"id": 17, "stackLevel": 1,
                    "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                    "transactionId": "tx-9f2c", "chargingSchedule": [{"id": 17, "duration": 900,
                    "chargingRateUnit": "A", "chargingSchedulePeriod": periods_json()}]}}),
            ),
            (
                StationCall::GetCompositeSchedule {
                    at: at(2, 1),
                    duration: 900,
                    rate_unit: None,
                },
                "GetCompositeSchedule",
                json!({"evseId": 2, "duration": 900}),
            ),
            (
                StationCall::ClearChargingProfile {
                    profile_id: Some(17),
                    at: Some(at(2, 1)),
                },
                "ClearChargingProfile",
                json!({"chargingProfileId": 17}),
            ),
            (
                StationCall::ClearChargingProfile {
                    profile_id: None,
                    at: Some(at(2, 1)),
                },
                "ClearChargingProfile",
                json!({"chargingProfileCriteria": {"evseId": 2, "chargingProfilePurpose": "TxProfile"}}),
            ),
        ];
        // Every token kind has its 2.0.1 spelling.
        for (kind, spelled) in [
            (IdTokenKind::Central, "Central"),
            (IdTokenKind::EMaid, "eMAID"),
            (IdTokenKind::Iso15693, "ISO15693"),
            (IdTokenKind::KeyCode, "KeyCode"),
            (IdTokenKind::Local, "Local"),
            (IdTokenKind::MacAddress, "MacAddress"),
            (IdTokenKind::NoAuthorization, "NoAuthorization"),
        ] {
            out.push((
                start_call(None, kind, false),
                "RequestStartTransaction",
                json!({"remoteStartId": 7, "idToken": {"idToken": "ABC123", "type": spelled}}),
            ));
        }
        out
    }

    #[test]
    fn v16_encodes_each_call_exactly() {
        for (call, action, payload) in v16_cases() {
            assert_eq!(v16::encode_call(&call), Ok((action, payload)), "{call:?}");
        }
    }

    #[test]
    fn v201_encodes_each_call_exactly() {
        for (call, action, payload) in v201_cases() {
            assert_eq!(v201::encode_call(&call), Ok((action, payload)), "{call:?}");
        }
    }

    #[test]
    fn calls_that_cannot_be_written_are_refused_with_the_matching_code() {
        use ErrorCode::{NotSupported, PropertyConstraintViolation as Property};
        let long21 = "A".repeat(21);
        let long37 = "A".repeat(37);
        let stop = |id: &str| StationCall::StopTransaction {
            transaction_id: id.to_owned(),
        };
        let v16_cases = [
            (
                StationCall::GetTransactionStatus {
                    transaction_id: None,
                },
                NotSupported,
            ),
            (
                trigger(TriggerMessageKind::TransactionEvent, None),
                NotSupported,
            ),
            (stop("tx-9f2c"), Property),
            (stop("1.5"), Property),
            (stop("4294967296"), Property),
            (stop(""), Property),
            (
                StationCall::StartTransaction {
                    evse: None,
                    id_token: token(&long21, IdTokenKind::IdTag),
                    group_id: None,
                    remote_start_id: 1,
                    contract_id: None,
                },
                Property,
            ),
            (
                StationCall::ReserveNow {
                    id: 1,
                    expiry: expiry(),
                    id_token: token("A", IdTokenKind::IdTag),
                    group_id: Some(long21.clone()),
                    evse: None,
                    connector_type: None,
                },
                Property,
            ),
            (StationCall::UnlockConnector { at: at(0, 0) }, Property),
        ];
        for (call, code) in v16_cases {
            let got = v16::encode_call(&call).map_err(|f| f.code);
            assert_eq!(got, Err(code), "1.6 {call:?}");
        }
        let v201_cases = [
            (stop(&long37), Property),
            (
                StationCall::StartTransaction {
                    evse: None,
                    id_token: token(&long37, IdTokenKind::Central),
                    group_id: None,
                    remote_start_id: 1,
                    contract_id: None,
                },
                Property,
            ),
            (
                StationCall::StartTransaction {
                    evse: None,
                    id_token: token("A", IdTokenKind::Central),
                    group_id: None,
                    remote_start_id: 1,
                    contract_id: Some(long37.clone()),
                },
                Property,
            ),
            (
                StationCall::ReserveNow {
                    id: 1,
                    expiry: expiry(),
                    id_token: token("A", IdTokenKind::Central),
                    group_id: Some(long37.clone()),
                    evse: None,
                    connector_type: None,
                },
                Property,
            ),
            (
                StationCall::ReserveNow {
                    id: 1,
                    expiry: expiry(),
                    id_token: token("A", IdTokenKind::Central),
                    group_id: None,
                    evse: None,
                    connector_type: Some("IEC_62196_T2".into()),
                },
                Property,
            ),
            (StationCall::UnlockConnector { at: at(0, 0) }, Property),
            (StationCall::UnlockConnector { at: at(1, 0) }, Property),
            (
                StationCall::GetTransactionStatus {
                    transaction_id: Some(long37.clone()),
                },
                Property,
            ),
        ];
        for (call, code) in v201_cases {
            let got = v201::encode_call(&call).map_err(|f| f.code);
            assert_eq!(got, Err(code), "2.0.1 {call:?}");
        }
    }

    #[test]
    fn an_encode_fault_becomes_the_matching_call_failure() {
        let f = v16::encode_call(&StationCall::GetTransactionStatus {
            transaction_id: None,
        })
        .unwrap_err();
        assert!(matches!(
            encode_failure(OcppVersion::V16, f),
            CallFailure::NotSupportedByVersion {
                version: OcppVersion::V16,
                ..
            }
        ));
        let f = v16::encode_call(&StationCall::StopTransaction {
            transaction_id: "x".into(),
        })
        .unwrap_err();
        assert!(matches!(
            encode_failure(OcppVersion::V16, f),
            CallFailure::InvalidRequest { .. }
        ));
    }

    fn validator(path: &std::path::Path) -> jsonschema::Validator {
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
    }

    /// Validates every encoded request against the official OCA request schema when
    /// `OCPP_SCHEMAS_DIR` points at the Python `ocpp` package directory (the one holding
    /// `v16/schemas/` and `v201/schemas/`).
    #[test]
    fn encoded_requests_validate_against_official_schemas() {
        let Some(dir) = std::env::var_os("OCPP_SCHEMAS_DIR") else {
            eprintln!("note: OCPP_SCHEMAS_DIR not set; request schema check skipped");
            return;
        };
        let dir = std::path::Path::new(&dir);
        // The validators really check (a string transactionId / a bad time must fail).
        let stop16 = validator(&dir.join("v16/schemas/RemoteStopTransaction.json"));
        assert!(!stop16.is_valid(&json!({"transactionId": "1"})));
        let reserve201 = validator(&dir.join("v201/schemas/ReserveNowRequest.json"));
        assert!(
            !reserve201.is_valid(&json!({"id": 1, "expiryDateTime": "2024-03-01 10:00",
            "idToken": {"idToken": "A", "type": "Central"}}))
        );

        let sets = [("v16", "", v16_cases()), ("v201", "Request", v201_cases())];
        for (version, suffix, cases) in sets {
            for (call, _, _) in cases {
                let encoded = match version {
                    "v16" => v16::encode_call(&call),
                    _ => v201::encode_call(&call),
                };
                let (action, payload) = encoded.unwrap();
                let path = dir.join(format!("{version}/schemas/{action}{suffix}.json"));
                let errors: Vec<String> = validator(&path)
                    .iter_errors(&payload)
                    .map(|e| e.to_string())
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{version} {action}: {payload} invalid: {errors:?}"
                );
            }
        }
    }

    /// One call of each kind, with the 1.6 / 2.0.1 action names of its answer schema.
    fn one_of_each() -> Vec<(StationCall, &'static str, &'static str)> {
        vec![
            (
                start_call(None, IdTokenKind::IdTag, false),
                "RemoteStartTransaction",
                "RequestStartTransaction",
            ),
            (
                StationCall::StopTransaction {
                    transaction_id: "1".into(),
                },
                "RemoteStopTransaction",
                "RequestStopTransaction",
            ),
            (reserve_call(None, false), "ReserveNow", "ReserveNow"),
            (
                StationCall::CancelReservation { id: 1 },
                "CancelReservation",
                "CancelReservation",
            ),
            (
                StationCall::UnlockConnector { at: at(1, 1) },
                "UnlockConnector",
                "UnlockConnector",
            ),
            (
                trigger(TriggerMessageKind::Heartbeat, None),
                "TriggerMessage",
                "TriggerMessage",
            ),
        ]
    }

    fn answer_of(
        version: OcppVersion,
        call: &StationCall,
        status: &str,
    ) -> Result<CallAnswer, CallFault> {
        decode_answer(version, call, json!({ "status": status }))
    }

    /// Every status each version defines, with the answer it decodes to (these rows feed the
    /// OCPI CommandResult mapping).
    fn status_rows(version: OcppVersion) -> Vec<(StationCall, &'static str, CallAnswer)> {
        let calls = one_of_each();
        let [start, stop, reserve, cancel, unlock, trig] =
            [0, 1, 2, 3, 4, 5].map(|i| calls[i].0.clone());
        let mut rows = vec![
            (
                start.clone(),
                "Accepted",
                CallAnswer::Start {
                    accepted: true,
                    transaction_id: None,
                },
            ),
            (
                start,
                "Rejected",
                CallAnswer::Start {
                    accepted: false,
                    transaction_id: None,
                },
            ),
            (
                stop.clone(),
                "Accepted",
                CallAnswer::Stop { accepted: true },
            ),
            (stop, "Rejected", CallAnswer::Stop { accepted: false }),
            (
                reserve.clone(),
                "Accepted",
                CallAnswer::Reserve(ReservationStatus::Accepted),
            ),
            (
                reserve.clone(),
                "Faulted",
                CallAnswer::Reserve(ReservationStatus::Faulted),
            ),
            (
                reserve.clone(),
                "Occupied",
                CallAnswer::Reserve(ReservationStatus::Occupied),
            ),
            (
                reserve.clone(),
                "Rejected",
                CallAnswer::Reserve(ReservationStatus::Rejected),
            ),
            (
                reserve,
                "Unavailable",
                CallAnswer::Reserve(ReservationStatus::Unavailable),
            ),
            (
                cancel.clone(),
                "Accepted",
                CallAnswer::Cancel { accepted: true },
            ),
            (cancel, "Rejected", CallAnswer::Cancel { accepted: false }),
            (
                unlock.clone(),
                "Unlocked",
                CallAnswer::Unlock(UnlockStatus::Unlocked),
            ),
            (
                unlock.clone(),
                "UnlockFailed",
                CallAnswer::Unlock(UnlockStatus::UnlockFailed),
            ),
            (
                trig.clone(),
                "Accepted",
                CallAnswer::Trigger(TriggerStatus::Accepted),
            ),
            (
                trig.clone(),
                "Rejected",
                CallAnswer::Trigger(TriggerStatus::Rejected),
            ),
            (
                trig,
                "NotImplemented",
                CallAnswer::Trigger(TriggerStatus::NotImplemented),
            ),
        ];
        match version {
            OcppVersion::V16 => {
                rows.push((
                    unlock,
                    "NotSupported",
                    CallAnswer::Unlock(UnlockStatus::NotSupported),
                ));
            }
            OcppVersion::V201 => {
                rows.push((
                    unlock.clone(),
                    "OngoingAuthorizedTransaction",
                    CallAnswer::Unlock(UnlockStatus::OngoingAuthorizedTransaction),
                ));
                rows.push((
                    unlock,
                    "UnknownConnector",
                    CallAnswer::Unlock(UnlockStatus::UnknownConnector),
                ));
            }
        }
        rows
    }

    #[test]
    fn every_status_of_each_version_decodes() {
        for version in [OcppVersion::V16, OcppVersion::V201] {
            for (call, status, expected) in status_rows(version) {
                assert_eq!(
                    answer_of(version, &call, status),
                    Ok(expected),
                    "{version} {call:?} {status}"
                );
            }
        }
    }

    #[test]
    fn statuses_of_the_other_version_are_unknown() {
        let unlock = StationCall::UnlockConnector { at: at(1, 1) };
        let code = |v, s| answer_of(v, &unlock, s).map_err(|f| f.code);
        let unknown = Err(ErrorCode::PropertyConstraintViolation);
        assert_eq!(
            code(OcppVersion::V16, "OngoingAuthorizedTransaction"),
            unknown
        );
        assert_eq!(code(OcppVersion::V16, "UnknownConnector"), unknown);
        assert_eq!(code(OcppVersion::V201, "NotSupported"), unknown);
    }

    #[test]
    fn a_201_start_answer_carries_the_transaction_id() {
        let call = start_call(None, IdTokenKind::Central, false);
        let cases = [
            (
                json!({"status": "Accepted", "transactionId": "tx-1"}),
                Some("tx-1"),
            ),
            // Lenient: a number is taken as its text; an empty or odd value is no id.
            (
                json!({"status": "Accepted", "transactionId": 17}),
                Some("17"),
            ),
            (json!({"status": "Accepted", "transactionId": ""}), None),
            (json!({"status": "Accepted", "transactionId": {}}), None),
            (
                json!({"status": "Accepted", "statusInfo": {"reasonCode": "x"}, "customData": {"vendorId": "v"}}),
                None,
            ),
        ];
        for (payload, id) in cases {
            assert_eq!(
                v201::decode_answer(&call, payload.clone()),
                Ok(CallAnswer::Start {
                    accepted: true,
                    transaction_id: id.map(str::to_owned)
                }),
                "{payload}"
            );
        }
        // 1.6 has no transaction id in the answer.
        assert_eq!(
            v16::decode_answer(&call, json!({"status": "Accepted", "transactionId": 5})),
            Ok(CallAnswer::Start {
                accepted: true,
                transaction_id: None
            })
        );
    }

    #[test]
    fn get_transaction_status_answers_decode() {
        let call = StationCall::GetTransactionStatus {
            transaction_id: Some("tx-1".into()),
        };
        for ongoing in [None, Some(false), Some(true)] {
            for queued in [false, true] {
                let mut payload = json!({ "messagesInQueue": queued });
                if let Some(o) = ongoing {
                    payload["ongoingIndicator"] = json!(o);
                }
                assert_eq!(
                    v201::decode_answer(&call, payload),
                    Ok(CallAnswer::TransactionStatus {
                        ongoing,
                        messages_in_queue: queued
                    })
                );
            }
        }
        let code = |payload: Value| v201::decode_answer(&call, payload).map_err(|f| f.code);
        assert_eq!(
            code(json!({"ongoingIndicator": true})),
            Err(ErrorCode::OccurrenceConstraintViolation)
        );
        assert_eq!(
            code(json!({"messagesInQueue": "no"})),
            Err(ErrorCode::TypeConstraintViolation)
        );
        assert_eq!(
            code(json!({"messagesInQueue": false, "ongoingIndicator": 1})),
            Err(ErrorCode::TypeConstraintViolation)
        );
        assert_eq!(code(json!([])), Err(ErrorCode::FormatViolation));
        assert_eq!(
            v16::decode_answer(&call, json!({"messagesInQueue": false})).map_err(|f| f.code),
            Err(ErrorCode::NotSupported)
        );
    }

    #[test]
    fn broken_answers_are_faults_and_harmless_deviations_are_not() {
        for version in [OcppVersion::V16, OcppVersion::V201] {
            for (call, _, _) in one_of_each() {
                let code =
                    |payload: Value| decode_answer(version, &call, payload).map_err(|f| f.code);
                assert_eq!(
                    code(json!({"status": "Maybe"})),
                    Err(ErrorCode::PropertyConstraintViolation)
                );
                assert_eq!(
                    code(json!({"status": ""})),
                    Err(ErrorCode::PropertyConstraintViolation)
                );
                assert_eq!(
                    code(json!({})),
                    Err(ErrorCode::OccurrenceConstraintViolation)
                );
                assert_eq!(
                    code(json!({"status": 1})),
                    Err(ErrorCode::TypeConstraintViolation)
                );
                assert_eq!(
                    code(json!({"status": null})),
                    Err(ErrorCode::TypeConstraintViolation)
                );
                assert_eq!(code(json!("Accepted")), Err(ErrorCode::FormatViolation));
                assert_eq!(code(Value::Null), Err(ErrorCode::FormatViolation));
                // Case and extra properties do not matter.
                let first = status_rows(version)
                    .into_iter()
                    .find(|(c, _, _)| c == &call)
                    .unwrap();
                let loud = first.1.to_ascii_uppercase();
                let got = decode_answer(version, &call, json!({"status": loud, "vendor": [1]}));
                assert_eq!(got.as_ref().ok(), Some(&first.2), "{version} {call:?}");
            }
        }
        // A long unknown status is cut in the description.
        let long = "X".repeat(10_000);
        let f = answer_of(OcppVersion::V16, &one_of_each()[0].0, &long).unwrap_err();
        assert!(f.description.len() <= 255, "{}", f.description.len());
    }

    /// Every status value in the official response schemas decodes, so no status a conforming
    /// station may send is reported as unknown. Runs when `OCPP_SCHEMAS_DIR` is set.
    #[test]
    fn every_status_in_the_official_response_schemas_decodes() {
        let Some(dir) = std::env::var_os("OCPP_SCHEMAS_DIR") else {
            eprintln!("note: OCPP_SCHEMAS_DIR not set; response status coverage check skipped");
            return;
        };
        let dir = std::path::Path::new(&dir);
        for (call, action16, action201) in one_of_each() {
            for (version, path) in [
                (
                    OcppVersion::V16,
                    dir.join(format!("v16/schemas/{action16}Response.json")),
                ),
                (
                    OcppVersion::V201,
                    dir.join(format!("v201/schemas/{action201}Response.json")),
                ),
            ] {
                let schema: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let status = &schema["properties"]["status"];
                let status = match status["$ref"].as_str() {
                    Some(r) => &schema["definitions"][r.trim_start_matches("#/definitions/")],
                    None => status,
                };
                let values = status["enum"].as_array().expect("status enum");
                let rows = status_rows(version);
                for value in values {
                    let value = value.as_str().unwrap();
                    assert!(
                        answer_of(version, &call, value).is_ok(),
                        "{version} {action16}: {value}"
                    );
                    assert!(
                        rows.iter().any(|(c, s, _)| c == &call && *s == value),
                        "{version} {action16}: {value} has no row in status_rows"
                    );
                }
            }
        }
    }

    #[test]
    fn calls_and_answers_round_trip_through_serde() {
        for (call, _, _) in v201_cases() {
            let text = serde_json::to_string(&call).unwrap();
            assert_eq!(serde_json::from_str::<StationCall>(&text).unwrap(), call);
        }
        for (_, _, answer) in status_rows(OcppVersion::V201) {
            let text = serde_json::to_string(&answer).unwrap();
            assert_eq!(serde_json::from_str::<CallAnswer>(&text).unwrap(), answer);
        }
    }

    // -- End to end over the in-memory connection harness -------------------------------------

    fn settings() -> ServerSettings {
        ServerSettings {
            call_timeout: Duration::from_secs(5),
            ping_interval: Duration::ZERO,
            ..ServerSettings::default()
        }
    }

    /// The next frame must be a CALL; returns its id, action and payload.
    async fn next_call(client: &mut crate::connection::tests::Client) -> (String, String, Value) {
        match next_frame(client).await {
            Frame::Call {
                id,
                action,
                payload,
            } => (id, action, payload),
            other => panic!("expected a CALL, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_16_station_answers_a_remote_start() {
        let mut h = start(OcppVersion::V16, settings()).await;
        let handle = h.handle.clone();
        let call = start_call(Some(at(1, 1)), IdTokenKind::IdTag, true);
        let sent = tokio::spawn(async move { handle.send(&call).await });
        let (id, action, payload) = next_call(&mut h.client).await;
        assert_eq!(action, "RemoteStartTransaction");
        assert_eq!(payload, json!({"connectorId": 1, "idTag": "ABC123"}));
        send(
            &mut h.client,
            &format!(r#"[3,"{id}",{{"status":"Accepted"}}]"#),
        )
        .await;
        let answer = tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
        assert_eq!(
            answer,
            Ok(CallAnswer::Start {
                accepted: true,
                transaction_id: None
            })
        );
    }

    #[tokio::test]
    async fn a_201_station_answers_a_request_start_with_its_transaction_id() {
        let mut h = start(OcppVersion::V201, settings()).await;
        let handle = h.handle.clone();
        let call = start_call(Some(at(1, 1)), IdTokenKind::Central, false);
        let sent = tokio::spawn(async move { handle.send(&call).await });
        let (id, action, payload) = next_call(&mut h.client).await;
        assert_eq!(action, "RequestStartTransaction");
        assert_eq!(
            payload,
            json!({"evseId": 1, "remoteStartId": 7,
                   "idToken": {"idToken": "ABC123", "type": "Central"}})
        );
        send(
            &mut h.client,
            &format!(r#"[3,"{id}",{{"status":"Accepted","transactionId":"tx-77"}}]"#),
        )
        .await;
        let answer = tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
        assert_eq!(
            answer,
            Ok(CallAnswer::Start {
                accepted: true,
                transaction_id: Some("tx-77".into())
            })
        );
    }

    #[tokio::test]
    async fn send_sends_nothing_for_a_call_the_version_lacks_and_reports_bad_answers() {
        let mut h = start(OcppVersion::V16, settings()).await;
        let refused = h
            .handle
            .send(&StationCall::GetTransactionStatus {
                transaction_id: None,
            })
            .await;
        assert!(
            matches!(
                refused,
                Err(CallFailure::NotSupportedByVersion {
                    version: OcppVersion::V16,
                    ..
                })
            ),
            "{refused:?}"
        );
        let invalid = h
            .handle
            .send(&StationCall::StopTransaction {
                transaction_id: "tx-1".into(),
            })
            .await;
        assert!(
            matches!(invalid, Err(CallFailure::InvalidRequest { .. })),
            "{invalid:?}"
        );

        // The first frame the station sees is the next real call; its odd answer is reported.
        let handle = h.handle.clone();
        let sent = tokio::spawn(async move {
            handle
                .send(&StationCall::UnlockConnector { at: at(2, 1) })
                .await
        });
        let (id, action, payload) = next_call(&mut h.client).await;
        assert_eq!(
            (action.as_str(), payload),
            ("UnlockConnector", json!({"connectorId": 2}))
        );
        send(
            &mut h.client,
            &format!(r#"[3,"{id}",{{"status":"Jammed"}}]"#),
        )
        .await;
        let answer = tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
        assert!(
            matches!(&answer, Err(CallFailure::InvalidResponse { reason }) if reason.contains("Jammed")),
            "{answer:?}"
        );

        // A CALLERROR passes through as is.
        let handle = h.handle.clone();
        let sent =
            tokio::spawn(
                async move { handle.send(&StationCall::CancelReservation { id: 5 }).await },
            );
        let (id, action, _) = next_call(&mut h.client).await;
        assert_eq!(action, "CancelReservation");
        send(
            &mut h.client,
            &format!(r#"[4,"{id}","NotSupported","no reservations",{{}}]"#),
        )
        .await;
        let answer = tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
        assert!(
            matches!(&answer, Err(CallFailure::CallError { code, .. }) if code == "NotSupported"),
            "{answer:?}"
        );
    }
}
