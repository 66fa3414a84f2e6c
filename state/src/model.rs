//! Persisted records. Each carries a schema version (`v`) so that a later release can migrate
//! or export them; values are stored as JSON so they stay readable with `export`.
//!
//! The model is version-neutral: a 1.6 connector N is stored as EVSE N / connector 1, a 2.0.1
//! EVSE/connector as itself; EVSE 0 / connector 0 is the station as a whole.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Schema version written into every record by this release.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// A charging station as it last described itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Station {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Station identity (from its websocket URL).
    pub id: String,
    /// Negotiated OCPP version of the last connection (`1.6` / `2.0.1`).
    pub ocpp_version: Option<String>,
    /// Vendor from BootNotification.
    pub vendor: Option<String>,
    /// Model from BootNotification.
    pub model: Option<String>,
    /// Serial number from BootNotification.
    pub serial_number: Option<String>,
    /// Firmware version from BootNotification.
    pub firmware_version: Option<String>,
    /// Meter serial number (1.6 BootNotification); becomes the OCPI CDR `meter_id`.
    pub meter_serial_number: Option<String>,
    /// Meter type (1.6 BootNotification).
    pub meter_type: Option<String>,
    /// Modem ICCID.
    pub iccid: Option<String>,
    /// Modem IMSI.
    pub imsi: Option<String>,
    /// 2.0.1 boot reason.
    pub boot_reason: Option<String>,
    /// Last accepted BootNotification.
    pub last_boot: Option<DateTime<Utc>>,
    /// Last message or connection event.
    pub last_seen: Option<DateTime<Utc>>,
    /// Whether a websocket is open now.
    pub online: bool,
    /// When the current (or last) connection opened.
    pub connected_at: Option<DateTime<Utc>>,
    /// When the last connection closed.
    pub disconnected_at: Option<DateTime<Utc>>,
    /// Last firmware status notification.
    pub firmware_status: Option<String>,
}

impl Station {
    /// A station never seen before.
    pub fn new(id: &str) -> Self {
        Station {
            v: SCHEMA_VERSION,
            id: id.to_owned(),
            ocpp_version: None,
            vendor: None,
            model: None,
            serial_number: None,
            firmware_version: None,
            meter_serial_number: None,
            meter_type: None,
            iccid: None,
            imsi: None,
            boot_reason: None,
            last_boot: None,
            last_seen: None,
            online: false,
            connected_at: None,
            disconnected_at: None,
            firmware_status: None,
        }
    }
}

/// One connector's last reported status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Station identity.
    pub station_id: String,
    /// EVSE number (0 = the station).
    pub evse_id: u32,
    /// Connector number (0 = the whole EVSE / station).
    pub connector_id: u32,
    /// OCPP status as reported (`Available`, `Charging`, `Occupied`, …).
    pub status: String,
    /// 1.6 error code other than `NoError`.
    pub error_code: Option<String>,
    /// Vendor info.
    pub info: Option<String>,
    /// Station time of the status.
    pub timestamp: DateTime<Utc>,
    /// When we stored it.
    pub updated_at: DateTime<Utc>,
}

/// Lifecycle of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    /// Started, not yet stopped.
    Active,
    /// Stopped.
    Completed,
}

/// A charging transaction, version-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Our own id (a UUID), used for the OCPI Session id later.
    pub id: String,
    /// Station identity.
    pub station_id: String,
    /// EVSE number.
    pub evse_id: u32,
    /// Connector number.
    pub connector_id: u32,
    /// The OCPP transaction id (1.6: our integer as text; 2.0.1: the station's string).
    pub ocpp_transaction_id: String,
    /// OCPP version of the station when the transaction began.
    pub ocpp_version: String,
    /// The identifier that started it (1.6 idTag / 2.0.1 idToken), once known.
    pub id_token: Option<String>,
    /// 2.0.1 idToken type (`ISO14443`, …); `IdTag` for 1.6.
    pub id_token_type: Option<String>,
    /// Active / completed.
    pub status: TransactionStatus,
    /// Station time the transaction started (earliest event seen).
    pub started_at: DateTime<Utc>,
    /// Station time it stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Energy register at start, Wh.
    pub meter_start_wh: Option<Decimal>,
    /// Energy register at stop, Wh.
    pub meter_stop_wh: Option<Decimal>,
    /// Latest energy register reading seen, Wh.
    pub meter_last_wh: Option<Decimal>,
    /// 1.6 stop reason / 2.0.1 stoppedReason.
    pub stop_reason: Option<String>,
    /// Whether any of its messages arrived late (replayed after the station was offline).
    pub offline: bool,
    /// 2.0.1 remoteStartId.
    pub remote_start_id: Option<i32>,
    /// Reservation the transaction consumed.
    pub reservation_id: Option<i32>,
    /// 2.0.1 chargingState.
    pub charging_state: Option<String>,
    /// 2.0.1 timeSpentCharging, seconds.
    pub time_spent_charging: Option<i64>,
    /// Highest 2.0.1 seqNo applied.
    pub last_seq_no: Option<u32>,
    /// Number of stored meter samples.
    pub samples: u64,
    /// When we created the record.
    pub created_at: DateTime<Utc>,
    /// When we last changed it.
    pub updated_at: DateTime<Utc>,
}

/// Signed meter data kept exactly as the station sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedData {
    /// Signed data (2.0.1 base64; 1.6 raw text).
    pub signed_meter_data: String,
    /// Signing method.
    pub signing_method: String,
    /// Encoding method, e.g. `OCMF`.
    pub encoding_method: String,
    /// Public key, when sent.
    pub public_key: Option<String>,
}

/// One sampled value of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterSample {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Station time of the sample.
    pub timestamp: DateTime<Utc>,
    /// Measurand (`Energy.Active.Import.Register`, `Power.Active.Import`, `Current.Import`, `SoC`, …).
    pub measurand: String,
    /// Numeric value, when numeric.
    pub value: Option<Decimal>,
    /// Value as sent.
    pub raw: String,
    /// Unit as sent.
    pub unit: String,
    /// Power-of-ten multiplier (2.0.1).
    pub multiplier: i32,
    /// Phase.
    pub phase: Option<String>,
    /// Reading context.
    pub context: Option<String>,
    /// Measurement location.
    pub location: Option<String>,
    /// 1.6 format.
    pub format: Option<String>,
    /// Signed meter data, kept raw.
    pub signed: Option<SignedData>,
}

/// The OCPI view of one EVSE as last published: its status and when it last changed. Kept so
/// that time-based changes (a station offline past the grace period) have a stable
/// `last_updated`, and so that a push happens only when the published status changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvseState {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Station identity.
    pub station_id: String,
    /// EVSE number (≥ 1).
    pub evse_id: u32,
    /// The stable OCPI EVSE uid.
    pub uid: String,
    /// OCPI EvseStatus (`AVAILABLE`, `CHARGING`, …).
    pub status: String,
    /// Connector numbers seen on this EVSE.
    pub connectors: Vec<u32>,
    /// When status or connectors last changed.
    pub last_updated: DateTime<Utc>,
}
