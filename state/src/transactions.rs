//! Charging transactions (version-neutral), their meter samples, the 1.6 transaction id counter
//! and the idempotence keys that make station retries harmless: a retried 1.6
//! StartTransaction finds its id ([`Start16Key`]), a 2.0.1 TransactionEvent is applied once per
//! (station, transactionId, seqNo), a retried sample is stored once.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::keys::{self, idx, tree};
use crate::{Error, Store, TxError, Txn, abort, encode, get, scan, schema_version};

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
    /// Latest energy register reading, Wh, as of the last write of this record (a sample-only
    /// message stores its samples without rewriting the record; the samples are the truth).
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
    /// Highest 2.0.1 seqNo applied, as of the last write of this record (every applied seqNo
    /// is kept in the event keys, [`Store::events_seen`]).
    pub last_seq_no: Option<u32>,
    /// Number of stored meter samples, as of the last write of this record ([`Store::samples`]
    /// has them all).
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

/// Key of an idempotent 1.6 StartTransaction: a station that retries the same
/// StartTransaction (same connector, idTag, meterStart and timestamp) gets the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start16Key<'a> {
    /// Station identity.
    pub station: &'a str,
    /// 1.6 connectorId.
    pub connector_id: u32,
    /// idTag.
    pub id_tag: &'a str,
    /// meterStart (Wh).
    pub meter_start: i64,
    /// Station timestamp, normalised to RFC 3339 in UTC.
    pub timestamp: DateTime<Utc>,
}

impl Start16Key<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut k = keys::station_prefix(self.station);
        k.extend_from_slice(&self.connector_id.to_be_bytes());
        k.extend_from_slice(self.id_tag.to_ascii_lowercase().as_bytes());
        k.push(0);
        k.extend_from_slice(&self.meter_start.to_be_bytes());
        k.extend_from_slice(&self.timestamp.timestamp_millis().to_be_bytes());
        k
    }
}

impl Store {
    /// One transaction by our id.
    pub fn transaction(&self, id: &str) -> Result<Option<Transaction>, Error> {
        get(
            self.tree(idx::TRANSACTIONS),
            tree::TRANSACTIONS,
            id.as_bytes(),
        )
    }

    /// One transaction by the station's OCPP transaction id.
    pub fn transaction_by_ocpp(
        &self,
        station: &str,
        ocpp_tx_id: &str,
    ) -> Result<Option<Transaction>, Error> {
        match self
            .tree(idx::TX_BY_OCPP)
            .get(keys::tx_by_ocpp(station, ocpp_tx_id))?
        {
            Some(id) => self.transaction(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// All transactions, ordered by start time (then id).
    pub fn transactions(&self) -> Result<Vec<Transaction>, Error> {
        let mut all: Vec<Transaction> =
            scan(self.tree(idx::TRANSACTIONS), tree::TRANSACTIONS, b"")?;
        all.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        Ok(all)
    }

    /// Meter samples of a transaction in station-time order.
    pub fn samples(&self, tx_id: &str) -> Result<Vec<MeterSample>, Error> {
        scan(
            self.tree(idx::SAMPLES),
            tree::SAMPLES,
            &keys::sample_prefix(tx_id),
        )
    }

    /// The 2.0.1 seqNos applied for a transaction, ascending.
    pub fn events_seen(&self, station: &str, ocpp_tx_id: &str) -> Result<Vec<u32>, Error> {
        let mut prefix = keys::tx_by_ocpp(station, ocpp_tx_id);
        prefix.push(0);
        let n = prefix.len();
        self.tree(idx::TX_EVENTS)
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k?;
                let b: [u8; 4] = k[n..].try_into().map_err(|_| Error::Corrupt {
                    tree: tree::TX_EVENTS,
                    reason: "seq key".into(),
                })?;
                Ok(u32::from_be_bytes(b))
            })
            .collect()
    }
}

impl Txn<'_> {
    /// One transaction by our id.
    pub fn transaction(&self, id: &str) -> Result<Option<Transaction>, TxError> {
        self.get(idx::TRANSACTIONS, tree::TRANSACTIONS, id.as_bytes())
    }

    /// One transaction by the station's OCPP transaction id.
    pub fn transaction_by_ocpp(
        &self,
        station: &str,
        ocpp_tx_id: &str,
    ) -> Result<Option<Transaction>, TxError> {
        match self.trees[idx::TX_BY_OCPP].get(keys::tx_by_ocpp(station, ocpp_tx_id))? {
            Some(id) => self.transaction(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Stores a transaction and indexes it by its OCPP id.
    pub fn put_transaction(&self, t: &Transaction) -> Result<(), TxError> {
        self.put(
            idx::TRANSACTIONS,
            tree::TRANSACTIONS,
            t.id.as_bytes().to_vec(),
            t,
        )?;
        self.trees[idx::TX_BY_OCPP].insert(
            keys::tx_by_ocpp(&t.station_id, &t.ocpp_transaction_id),
            t.id.as_bytes(),
        )?;
        Ok(())
    }

    /// The id a 1.6 StartTransaction with this key already got, if it was seen before.
    pub fn start16_id(&self, key: &Start16Key<'_>) -> Result<Option<i32>, TxError> {
        Ok(self.trees[idx::TX_STARTS_16]
            .get(key.bytes())?
            .and_then(|v| {
                let b: [u8; 4] = v.as_ref().try_into().ok()?;
                Some(i32::from_be_bytes(b))
            }))
    }

    /// Remembers the id given to a 1.6 StartTransaction.
    pub fn remember_start16(&self, key: &Start16Key<'_>, id: i32) -> Result<(), TxError> {
        self.trees[idx::TX_STARTS_16].insert(key.bytes(), &id.to_be_bytes())?;
        Ok(())
    }

    /// Allocates the next 1.6 transaction id (1, 2, 3, …; never reused).
    pub fn next_tx16_id(&self) -> Result<i32, TxError> {
        let meta = &self.trees[idx::META];
        let current = match meta.get(keys::TX16_COUNTER)? {
            Some(v) => {
                let b: [u8; 4] = v.as_ref().try_into().map_err(|_| {
                    abort(Error::Corrupt {
                        tree: tree::META,
                        reason: "tx16 counter".into(),
                    })
                })?;
                i32::from_be_bytes(b)
            }
            None => 0,
        };
        let next = current
            .checked_add(1)
            .ok_or_else(|| abort(Error::IdsExhausted))?;
        meta.insert(keys::TX16_COUNTER, &next.to_be_bytes())?;
        Ok(next)
    }

    /// Records that a 2.0.1 TransactionEvent `seq_no` was applied; returns false when it had
    /// been applied before (a retry), in which case nothing must change.
    pub fn first_time_event(
        &self,
        station: &str,
        ocpp_tx_id: &str,
        seq_no: u32,
    ) -> Result<bool, TxError> {
        let key = keys::tx_event(station, ocpp_tx_id, seq_no);
        Ok(self.trees[idx::TX_EVENTS].insert(key, &[])?.is_none())
    }

    /// Adds a meter sample to a transaction; returns false when the same sample (same time,
    /// measurand, phase, location, context and format) was stored before — a retried message.
    pub fn add_sample(&self, tx_id: &str, sample: &MeterSample) -> Result<bool, TxError> {
        let identity = keys::fnv1a(&[
            &sample.measurand,
            sample.phase.as_deref().unwrap_or(""),
            sample.location.as_deref().unwrap_or(""),
            sample.context.as_deref().unwrap_or(""),
            sample.format.as_deref().unwrap_or(""),
        ]);
        let key = keys::sample(tx_id, sample.timestamp.timestamp_millis(), identity);
        let bytes = encode(tree::SAMPLES, sample).map_err(abort)?;
        Ok(self.trees[idx::SAMPLES].insert(key, bytes)?.is_none())
    }
}
