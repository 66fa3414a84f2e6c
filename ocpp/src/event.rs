//! Version-neutral requests a station sends and the answers the CSMS gives.
//!
//! The `v16` and `v201` adapters decode a station's CALL into a [`StationRequest`] and encode a
//! [`StationResponse`] back into that version's CALLRESULT payload. Everything above this crate
//! (the bridge) sees only these types, so a 1.6 connector and a 2.0.1 EVSE/connector land in the
//! same records.
//!
//! Addressing rule: a 1.6 `connectorId` N ≥ 1 becomes [`EvseRef`] `{ evse_id: N, connector_id: 1 }`;
//! 1.6 connector 0 (the station itself) becomes `{ evse_id: 0, connector_id: 0 }`. 2.0.1 keeps its
//! own `evseId`/`connectorId` (evse 0 = the station as a whole).

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A charging station's identity: the last path segment of its websocket URL, percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StationId(pub String);

impl StationId {
    /// The identity as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StationId {
    fn from(s: &str) -> Self {
        StationId(s.to_owned())
    }
}

/// The OCPP-J version negotiated through the websocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OcppVersion {
    /// `ocpp1.6`
    #[serde(rename = "1.6")]
    V16,
    /// `ocpp2.0.1`
    #[serde(rename = "2.0.1")]
    V201,
}

impl OcppVersion {
    /// The websocket subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            OcppVersion::V16 => "ocpp1.6",
            OcppVersion::V201 => "ocpp2.0.1",
        }
    }

    /// Parses a subprotocol name (case-insensitive, as stations differ in spelling).
    pub fn from_subprotocol(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ocpp1.6" => Some(OcppVersion::V16),
            "ocpp2.0.1" => Some(OcppVersion::V201),
            _ => None,
        }
    }

    /// The short version label used in logs, metrics and the admin API (`1.6`, `2.0.1`).
    pub fn label(self) -> &'static str {
        match self {
            OcppVersion::V16 => "1.6",
            OcppVersion::V201 => "2.0.1",
        }
    }
}

impl fmt::Display for OcppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where on a station something happened (see the module docs for the 1.6 mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EvseRef {
    /// EVSE number; 0 = the station as a whole.
    pub evse_id: u32,
    /// Connector number within the EVSE; 0 = the whole EVSE / station.
    pub connector_id: u32,
}

impl EvseRef {
    /// The address of a 1.6 connector id.
    pub fn from_v16_connector(connector_id: u32) -> Self {
        if connector_id == 0 {
            EvseRef {
                evse_id: 0,
                connector_id: 0,
            }
        } else {
            EvseRef {
                evse_id: connector_id,
                connector_id: 1,
            }
        }
    }

    /// The 1.6 connector id of this address (inverse of [`EvseRef::from_v16_connector`]).
    pub fn v16_connector(self) -> u32 {
        self.evse_id
    }
}

/// Union of 1.6 ChargePointStatus and 2.0.1 ConnectorStatusEnumType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectorStatus {
    /// 1.6 / 2.0.1
    Available,
    /// 1.6
    Preparing,
    /// 1.6
    Charging,
    /// 1.6
    SuspendedEV,
    /// 1.6
    SuspendedEVSE,
    /// 1.6
    Finishing,
    /// 1.6 / 2.0.1
    Reserved,
    /// 1.6 / 2.0.1
    Unavailable,
    /// 1.6 / 2.0.1
    Faulted,
    /// 2.0.1
    Occupied,
}

impl ConnectorStatus {
    /// The OCPP spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorStatus::Available => "Available",
            ConnectorStatus::Preparing => "Preparing",
            ConnectorStatus::Charging => "Charging",
            ConnectorStatus::SuspendedEV => "SuspendedEV",
            ConnectorStatus::SuspendedEVSE => "SuspendedEVSE",
            ConnectorStatus::Finishing => "Finishing",
            ConnectorStatus::Reserved => "Reserved",
            ConnectorStatus::Unavailable => "Unavailable",
            ConnectorStatus::Faulted => "Faulted",
            ConnectorStatus::Occupied => "Occupied",
        }
    }

    /// Parses the OCPP spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Available" => ConnectorStatus::Available,
            "Preparing" => ConnectorStatus::Preparing,
            "Charging" => ConnectorStatus::Charging,
            "SuspendedEV" => ConnectorStatus::SuspendedEV,
            "SuspendedEVSE" => ConnectorStatus::SuspendedEVSE,
            "Finishing" => ConnectorStatus::Finishing,
            "Reserved" => ConnectorStatus::Reserved,
            "Unavailable" => ConnectorStatus::Unavailable,
            "Faulted" => ConnectorStatus::Faulted,
            "Occupied" => ConnectorStatus::Occupied,
            _ => return None,
        })
    }
}

/// The kind of an identifier a driver presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdTokenKind {
    /// A 1.6 idTag: untyped, at most 20 characters.
    IdTag,
    /// 2.0.1 `Central`
    Central,
    /// 2.0.1 `eMAID`
    EMaid,
    /// 2.0.1 `ISO14443`
    Iso14443,
    /// 2.0.1 `ISO15693`
    Iso15693,
    /// 2.0.1 `KeyCode`
    KeyCode,
    /// 2.0.1 `Local`
    Local,
    /// 2.0.1 `MacAddress`
    MacAddress,
    /// 2.0.1 `NoAuthorization`
    NoAuthorization,
}

/// An identifier a driver presented (1.6 idTag or 2.0.1 IdTokenType).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdToken {
    /// The identifier itself (case-insensitive when matched).
    pub id: String,
    /// Its kind.
    pub kind: IdTokenKind,
}

/// Union of 1.6 AuthorizationStatus and 2.0.1 AuthorizationStatusEnumType.
///
/// The 1.6 adapter maps the values 1.6 lacks (NoCredit, NotAllowedTypeEVSE, NotAtThisLocation,
/// NotAtThisTime, Unknown) to `Invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthorizationStatus {
    /// Allowed.
    Accepted,
    /// Blocked.
    Blocked,
    /// Already in another transaction (1.6 ConcurrentTx).
    ConcurrentTx,
    /// Expired.
    Expired,
    /// Invalid.
    Invalid,
    /// 2.0.1 only.
    NoCredit,
    /// 2.0.1 only.
    NotAllowedTypeEVSE,
    /// 2.0.1 only.
    NotAtThisLocation,
    /// 2.0.1 only.
    NotAtThisTime,
    /// 2.0.1 only.
    Unknown,
}

/// The CSMS's verdict on an identifier (1.6 IdTagInfo / 2.0.1 IdTokenInfoType).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenInfo {
    /// The verdict.
    pub status: AuthorizationStatus,
    /// Until when the station may cache it.
    pub expiry: Option<DateTime<Utc>>,
    /// Parent / group identifier (1.6 parentIdTag ≤ 20 characters; 2.0.1 groupIdToken).
    pub group_id: Option<String>,
}

impl IdTokenInfo {
    /// An accepted identifier without expiry or group.
    pub fn accepted() -> Self {
        IdTokenInfo {
            status: AuthorizationStatus::Accepted,
            expiry: None,
            group_id: None,
        }
    }
}

/// A 2.0.1 signed meter value, or a 1.6 `SignedData` sample decoded into the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMeterValue {
    /// The signed data as the station sent it (2.0.1: base64; 1.6: the raw `value` text).
    pub signed_meter_data: String,
    /// 2.0.1 `signingMethod` (empty for 1.6).
    pub signing_method: String,
    /// e.g. `OCMF` (2.0.1 `encodingMethod`; 1.6: detected from the text, else empty).
    pub encoding_method: String,
    /// Public key (base64) when the station sent one.
    pub public_key: Option<String>,
}

/// One sampled value, normalised across versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledValue {
    /// The value as a number; `None` when it is not numeric (1.6 `format: SignedData`).
    pub value: Option<Decimal>,
    /// The value exactly as the station sent it (1.6 strings, 2.0.1 numbers as text).
    pub raw: String,
    /// Measurand; default `Energy.Active.Import.Register`.
    pub measurand: String,
    /// Unit of measure as sent (1.6 `unit`, 2.0.1 `unitOfMeasure.unit`); default `Wh`.
    pub unit: String,
    /// 2.0.1 `unitOfMeasure.multiplier` (power of ten); 0 for 1.6.
    pub multiplier: i32,
    /// `L1`, `L2-N`, …
    pub phase: Option<String>,
    /// `Transaction.Begin`, `Sample.Periodic`, …
    pub context: Option<String>,
    /// `Outlet`, `EV`, …
    pub location: Option<String>,
    /// 1.6 `format` (`Raw` / `SignedData`).
    pub format: Option<String>,
    /// Signed meter data, when present.
    pub signed: Option<SignedMeterValue>,
}

/// A set of samples taken at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterValue {
    /// When the samples were taken (station clock).
    pub timestamp: DateTime<Utc>,
    /// The samples.
    pub sampled: Vec<SampledValue>,
}

/// BootNotification contents (both versions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootInfo {
    /// 1.6 chargePointVendor / 2.0.1 chargingStation.vendorName
    pub vendor: String,
    /// 1.6 chargePointModel / 2.0.1 chargingStation.model
    pub model: String,
    /// 1.6 chargePointSerialNumber (or chargeBoxSerialNumber) / 2.0.1 serialNumber
    pub serial_number: Option<String>,
    /// firmwareVersion
    pub firmware_version: Option<String>,
    /// 1.6 meterSerialNumber
    pub meter_serial_number: Option<String>,
    /// 1.6 meterType
    pub meter_type: Option<String>,
    /// 1.6 iccid / 2.0.1 modem.iccid
    pub iccid: Option<String>,
    /// 1.6 imsi / 2.0.1 modem.imsi
    pub imsi: Option<String>,
    /// 2.0.1 BootReasonEnumType
    pub reason: Option<String>,
}

/// StatusNotification contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Which connector (see the module docs for 1.6).
    pub at: EvseRef,
    /// The status.
    pub status: ConnectorStatus,
    /// 1.6 errorCode (`NoError` is reported as `None`).
    pub error_code: Option<String>,
    /// 1.6 info / vendorErrorCode, joined when both are present.
    pub info: Option<String>,
    /// Station time of the change; `None` when a 1.6 station left it out.
    pub timestamp: Option<DateTime<Utc>>,
}

/// FirmwareStatusNotification (1.6, the 1.6 security extension's SignedFirmwareStatusNotification,
/// 2.0.1): the status as the station spelled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareStatusReport {
    /// `Downloaded`, `Installing`, `Installed`, `InstallationFailed`, … (version-specific).
    pub status: String,
    /// requestId of the firmware update it reports on (security extension, 2.0.1).
    pub request_id: Option<i32>,
}

/// What a 2.0.1 ReservationStatusUpdate says happened to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationUpdate {
    /// The reservation expired at the station.
    Expired,
    /// The station removed it (e.g. the EVSE became unavailable).
    Removed,
}

/// 2.0.1 ReservationStatusUpdate: a reservation ended at the station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationStatusReport {
    /// The CSMS's reservation id.
    pub reservation_id: i32,
    /// Why it ended.
    pub status: ReservationUpdate,
}

/// 1.6 StartTransaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartTransaction {
    /// connectorId ≥ 1.
    pub connector_id: u32,
    /// The idTag.
    pub id_tag: String,
    /// meterStart in Wh.
    pub meter_start_wh: i64,
    /// reservationId, when the transaction ends a reservation.
    pub reservation_id: Option<i32>,
    /// Station time the transaction started.
    pub timestamp: DateTime<Utc>,
}

/// 1.6 StopTransaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopTransaction {
    /// The transactionId the CSMS assigned.
    pub transaction_id: i32,
    /// The idTag that stopped it, if any.
    pub id_tag: Option<String>,
    /// meterStop in Wh.
    pub meter_stop_wh: i64,
    /// Station time the transaction stopped.
    pub timestamp: DateTime<Utc>,
    /// reason; absent means `Local` (1.6 §4.10) and is reported as `None`.
    pub reason: Option<String>,
    /// transactionData.
    pub transaction_data: Vec<MeterValue>,
}

/// 2.0.1 TransactionEvent eventType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransactionEventType {
    /// First event of a transaction.
    Started,
    /// Intermediate event.
    Updated,
    /// Last event of a transaction.
    Ended,
}

/// 2.0.1 TransactionEvent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionEvent {
    /// Started / Updated / Ended.
    pub event_type: TransactionEventType,
    /// Station time of the event.
    pub timestamp: DateTime<Utc>,
    /// triggerReason as sent.
    pub trigger_reason: String,
    /// seqNo.
    pub seq_no: u32,
    /// The event happened while the station was offline.
    pub offline: bool,
    /// transactionInfo.transactionId (station-assigned).
    pub transaction_id: String,
    /// transactionInfo.chargingState.
    pub charging_state: Option<String>,
    /// transactionInfo.timeSpentCharging (seconds).
    pub time_spent_charging: Option<i64>,
    /// transactionInfo.stoppedReason.
    pub stopped_reason: Option<String>,
    /// transactionInfo.remoteStartId.
    pub remote_start_id: Option<i32>,
    /// numberOfPhasesUsed.
    pub number_of_phases_used: Option<u32>,
    /// reservationId.
    pub reservation_id: Option<i32>,
    /// idToken, when this event carries one.
    pub id_token: Option<IdToken>,
    /// evse (+ connector), when this event carries one.
    pub evse: Option<EvseRef>,
    /// meterValue.
    pub meter_values: Vec<MeterValue>,
}

/// MeterValues (both versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterValuesReport {
    /// 1.6 connectorId / 2.0.1 evseId as an address (evse 0 = main meter).
    pub at: EvseRef,
    /// 1.6 transactionId (2.0.1 MeterValues never belong to a transaction).
    pub transaction_id: Option<i32>,
    /// The values.
    pub meter_values: Vec<MeterValue>,
}

/// DataTransfer from the station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataTransfer {
    /// vendorId.
    pub vendor_id: String,
    /// messageId.
    pub message_id: Option<String>,
    /// data (1.6: a string; 2.0.1: any JSON, carried as its text).
    pub data: Option<String>,
}

/// A station's CALL, decoded and version-neutral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StationRequest {
    /// BootNotification.
    BootNotification(BootInfo),
    /// Heartbeat.
    Heartbeat,
    /// StatusNotification.
    StatusNotification(StatusReport),
    /// Authorize.
    Authorize(IdToken),
    /// 1.6 StartTransaction.
    StartTransaction(StartTransaction),
    /// 1.6 StopTransaction.
    StopTransaction(StopTransaction),
    /// 2.0.1 TransactionEvent.
    TransactionEvent(TransactionEvent),
    /// MeterValues.
    MeterValues(MeterValuesReport),
    /// DataTransfer.
    DataTransfer(DataTransfer),
    /// FirmwareStatusNotification (and 1.6 SignedFirmwareStatusNotification).
    FirmwareStatus(FirmwareStatusReport),
    /// 2.0.1 ReservationStatusUpdate.
    ReservationStatus(ReservationStatusReport),
    /// 2.0.1 NotifyChargingLimit / ReportChargingProfiles: a limit or profile changed at the
    /// station (answered with an empty CALLRESULT).
    ChargingLimit(crate::schedule::ChargingLimitReport),
    /// A message that is only acknowledged and recorded (NotifyReport, NotifyEvent,
    /// SecurityEventNotification, LogStatusNotification, DiagnosticsStatusNotification, …):
    /// the action and its payload as received.
    Notification {
        /// The action name.
        action: String,
        /// The payload as received.
        payload: serde_json::Value,
    },
}

impl StationRequest {
    /// True for messages a station queues and retries while offline: the CSMS must store them
    /// durably before it answers.
    pub fn is_transaction_message(&self) -> bool {
        match self {
            StationRequest::StartTransaction(_)
            | StationRequest::StopTransaction(_)
            | StationRequest::TransactionEvent(_) => true,
            StationRequest::MeterValues(m) => m.transaction_id.is_some(),
            _ => false,
        }
    }
}

/// BootNotification verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistrationStatus {
    /// Accepted.
    Accepted,
    /// Pending.
    Pending,
    /// Rejected.
    Rejected,
}

/// DataTransfer verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataTransferStatus {
    /// Accepted.
    Accepted,
    /// Rejected.
    Rejected,
    /// UnknownMessageId.
    UnknownMessageId,
    /// UnknownVendorId.
    UnknownVendorId,
}

/// The CSMS's answer to a [`StationRequest`]; the adapter turns it into that version's CALLRESULT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StationResponse {
    /// BootNotification.conf
    BootNotification {
        /// Accepted / Pending / Rejected.
        status: RegistrationStatus,
        /// Heartbeat interval in seconds.
        interval: u32,
        /// CSMS time.
        current_time: DateTime<Utc>,
    },
    /// Heartbeat.conf
    Heartbeat {
        /// CSMS time.
        current_time: DateTime<Utc>,
    },
    /// An empty `{}` CALLRESULT (StatusNotification, MeterValues, notifications).
    Ack,
    /// Authorize.conf
    Authorize(IdTokenInfo),
    /// 1.6 StartTransaction.conf
    StartTransaction {
        /// The CSMS-assigned transaction id.
        transaction_id: i32,
        /// The verdict on the idTag.
        id_tag_info: IdTokenInfo,
    },
    /// 1.6 StopTransaction.conf
    StopTransaction {
        /// The verdict on the stopping idTag, when one was sent.
        id_tag_info: Option<IdTokenInfo>,
    },
    /// 2.0.1 TransactionEvent response.
    TransactionEvent {
        /// The verdict on the event's idToken, when it carried one.
        id_token_info: Option<IdTokenInfo>,
    },
    /// DataTransfer.conf
    DataTransfer {
        /// The verdict.
        status: DataTransferStatus,
        /// Optional data.
        data: Option<String>,
    },
}
