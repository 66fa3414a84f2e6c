//! OCPI Sessions and CDRs from OCPP transactions.
//!
//! When a transaction is authorized the bridge freezes what the Session and CDR need and cannot
//! re-derive later — the token (`cdr_token`), how it was authorized, the location snapshot
//! (`cdr_location`), the tariff that applied at start, the peer that owns the token — into a
//! [`SessionRecord`] (a store document). Everything that moves (kWh, charging periods, cost,
//! status) is rendered from the transaction and its meter samples when needed, with pure
//! functions: [`render_session`] and [`render_cdr`].
//!
//! Invariants: the Session id and the CDR id are our transaction id (so there is exactly one of
//! each per transaction); charging periods are split where the tariff can change; costs come from
//! the `ocpi-tariffs` engine with the tariff frozen at start; hours carry 4 decimals.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::AuthMethod;
use crate::periods::{self, Metering, json_number, ocpi_datetime};
use crate::pricing;

/// Document kind of session records.
pub const SESSION_KIND: &str = "session";
/// Document kind of CDRs.
pub const CDR_KIND: &str = "cdr";
/// Index: `{session}\0{peer}` → number of charging periods the peer already has.
pub const PERIODS_SENT: &str = "session_periods_sent";
/// Index: CDR id → the `Location` URL the eMSP returned for it.
pub const CDR_LOCATION: &str = "cdr_location_url";

/// Lifecycle of an OCPI Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// Charging (or ready to).
    Active,
    /// Ended.
    Completed,
    /// Authorization failed.
    Invalid,
    /// Not yet authorized.
    Pending,
    /// A reservation.
    Reservation,
}

/// What a Session and its CDR need that was fixed when the session began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Session id (= CDR id): our transaction id, or a fresh id for a session that began as a
    /// reservation.
    pub id: String,
    /// The transaction behind it (`None` while it is only a reservation; older records: `id`).
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// When the session record was created (a reservation's start).
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
    /// The peer that owns the token: Sessions and the CDR go there.
    pub peer: Option<String>,
    /// OCPI CdrToken JSON `{country_code, party_id, uid, type, contract_id}`.
    pub cdr_token: Value,
    /// How the session was authorized.
    pub auth_method: AuthMethod,
    /// Reference from the eMSP (real-time answer or command).
    pub authorization_reference: Option<String>,
    /// OCPI location id.
    pub location_id: String,
    /// EVSE uid.
    pub evse_uid: String,
    /// Connector id.
    pub connector_id: String,
    /// CdrLocation JSON frozen at start.
    pub cdr_location: Value,
    /// IANA time zone of the location (tariff restrictions are local time).
    pub time_zone: String,
    /// Currency (the tariff's, else EUR).
    pub currency: String,
    /// The OCPI Tariff JSON that applied at start.
    pub tariff: Option<Value>,
    /// The station's meter serial number.
    pub meter_id: Option<String>,
    /// Session status as decided by the bridge (ACTIVE until the transaction completes).
    pub status: SessionStatus,
    /// When this record last changed.
    pub last_updated: DateTime<Utc>,
}

impl SessionRecord {
    /// Our transaction id behind this session, if charging began (a session that was only a
    /// reservation has none, also after it completed).
    pub fn tx_id(&self) -> Option<&str> {
        self.transaction_id.as_deref()
    }

    /// The peer's party (`cdr_token` country code and party id), for routing headers.
    pub fn owner(&self) -> Option<(String, String)> {
        let cc = self.cdr_token.get("country_code")?.as_str()?;
        let pid = self.cdr_token.get("party_id")?.as_str()?;
        Some((cc.to_owned(), pid.to_owned()))
    }

    fn tariff_id(&self) -> Option<String> {
        self.tariff.as_ref()?.get("id")?.as_str().map(str::to_owned)
    }

    fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }
}

/// The OCPI CdrToken of a token.
pub fn cdr_token(t: &ocpi::types::Token) -> Value {
    json!({
        "country_code": t.country_code.as_str(),
        "party_id": t.party_id.as_str(),
        "uid": t.uid.as_str(),
        "type": crate::tokens::type_str(&t.kind),
        "contract_id": t.contract_id,
    })
}

/// The transaction's metering with its energy readings.
pub fn metering(
    tx: &state::Transaction,
    samples: &[state::MeterSample],
    now: DateTime<Utc>,
) -> Metering {
    let end = tx.stopped_at.unwrap_or_else(|| {
        let last = samples
            .iter()
            .map(|s| s.timestamp)
            .max()
            .unwrap_or(tx.started_at);
        last.max(tx.started_at).min(now.max(tx.started_at))
    });
    Metering {
        start: tx.started_at,
        end: end.max(tx.started_at),
        meter_start_wh: tx.meter_start_wh,
        meter_stop_wh: if tx.status == state::TransactionStatus::Completed {
            tx.meter_stop_wh
        } else {
            None
        },
        samples: samples.to_vec(),
    }
}

/// The charging periods of a transaction, split at the tariff's boundaries.
pub fn charging_periods(rec: &SessionRecord, m: &Metering) -> Vec<periods::Period> {
    let boundaries = rec
        .tariff
        .as_ref()
        .map(|t| periods::tariff_boundaries(t, rec.tz(), m.start, m.end))
        .unwrap_or_default();
    let mut ps = periods::periods(m, &boundaries);
    let tariff_id = rec.tariff_id();
    for p in &mut ps {
        p.tariff_id = tariff_id.clone();
    }
    ps
}

fn price_json(p: &pricing::Price) -> Value {
    let mut v = json!({ "excl_vat": json_number(p.excl_vat) });
    if let Some(incl) = p.incl_vat {
        v["incl_vat"] = json_number(incl);
    }
    v
}

fn zero_price() -> Value {
    json!({ "excl_vat": 0, "incl_vat": 0 })
}

/// Signed meter data of the transaction as OCPI SignedData, when the station sent any.
pub fn signed_data(samples: &[state::MeterSample]) -> Option<Value> {
    let signed: Vec<(&state::MeterSample, &state::SignedData)> = samples
        .iter()
        .filter_map(|s| s.signed.as_ref().map(|d| (s, d)))
        .collect();
    let (_, first) = signed.first()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let values: Vec<Value> = signed
        .iter()
        .map(|(s, d)| {
            let nature = match s.context.as_deref() {
                Some("Transaction.Begin") => "Start",
                Some("Transaction.End") => "End",
                _ => "Intermediate",
            };
            // 2.0.1 sends base64 already; 1.6 `SignedData` values are the raw (OCMF) text.
            let (signed_data, plain) = match b64.decode(d.signed_meter_data.trim()) {
                Ok(bytes) if !d.signed_meter_data.starts_with("OCMF|") => (
                    d.signed_meter_data.clone(),
                    String::from_utf8(bytes).unwrap_or_default(),
                ),
                _ => (
                    b64.encode(d.signed_meter_data.as_bytes()),
                    d.signed_meter_data.clone(),
                ),
            };
            json!({
                "nature": nature,
                "plain_data": truncate(&plain, 5000),
                "signed_data": truncate(&signed_data, 5000),
            })
        })
        .collect();
    let mut out = json!({
        "encoding_method": if first.encoding_method.is_empty() { "OCMF" } else { first.encoding_method.as_str() },
        "signed_values": values,
    });
    if let Some(key) = signed.iter().find_map(|(_, d)| d.public_key.clone()) {
        out["public_key"] = Value::String(truncate(&key, 512));
    }
    Some(out)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A CDR for the transaction, without costs (the pricing engine's input).
fn cdr_base(
    cc: &str,
    pid: &str,
    rec: &SessionRecord,
    tx: &state::Transaction,
    m: &Metering,
    periods: &[periods::Period],
) -> Value {
    let totals = periods::totals(periods);
    let mut cdr = json!({
        "country_code": cc,
        "party_id": pid,
        "id": rec.id,
        "start_date_time": ocpi_datetime(m.start),
        "end_date_time": ocpi_datetime(m.end),
        "session_id": rec.id,
        "cdr_token": rec.cdr_token,
        "auth_method": rec.auth_method,
        "cdr_location": rec.cdr_location,
        "currency": rec.currency,
        "charging_periods": periods::to_ocpi_json(periods, rec.tariff_id().as_deref()),
        "total_energy": json_number(totals.energy_kwh.round_dp(4)),
        "total_time": json_number(totals.time_h.round_dp(4)),
        "total_parking_time": json_number(totals.parking_h.round_dp(4)),
        "last_updated": ocpi_datetime(Utc::now()),
    });
    if let Some(r) = &rec.authorization_reference {
        cdr["authorization_reference"] = Value::String(r.clone());
    }
    if let Some(m) = &rec.meter_id {
        cdr["meter_id"] = Value::String(truncate(m, 255));
    }
    if let Some(t) = &rec.tariff {
        cdr["tariffs"] = json!([t]);
    }
    if let Some(reason) = &tx.stop_reason {
        cdr["remark"] = Value::String(truncate(&format!("Stop reason: {reason}"), 255));
    }
    cdr
}

/// Prices a CDR base in place; returns the total cost (excl. VAT) for logging.
fn apply_costs(rec: &SessionRecord, cdr: &mut Value) -> Option<Decimal> {
    let Some(tariff) = &rec.tariff else {
        cdr["total_cost"] = zero_price();
        return None;
    };
    match pricing::price(cdr, tariff, rec.tz()) {
        Ok(costs) => {
            cdr["total_cost"] = price_json(&costs.total_cost);
            for (field, cost) in [
                ("total_energy_cost", &costs.total_energy_cost),
                ("total_time_cost", &costs.total_time_cost),
                ("total_parking_cost", &costs.total_parking_cost),
                ("total_fixed_cost", &costs.total_fixed_cost),
            ] {
                if let Some(c) = cost {
                    cdr[field] = price_json(c);
                }
            }
            Some(costs.total_cost.excl_vat)
        }
        Err(e) => {
            tracing::error!(session = %rec.id, error = %e, "pricing failed; total_cost 0");
            metrics::counter!("bridge_pricing_failures_total").increment(1);
            cdr["total_cost"] = zero_price();
            None
        }
    }
}

/// The CDR of a completed transaction.
pub fn render_cdr(
    cc: &str,
    pid: &str,
    rec: &SessionRecord,
    tx: &state::Transaction,
    samples: &[state::MeterSample],
) -> Value {
    let m = metering(tx, samples, Utc::now());
    let periods = charging_periods(rec, &m);
    let mut cdr = cdr_base(cc, pid, rec, tx, &m, &periods);
    apply_costs(rec, &mut cdr);
    if let Some(sd) = signed_data(samples) {
        cdr["signed_data"] = sd;
    }
    cdr
}

/// How many leading charging periods are final: all of them once the transaction completed,
/// all but the last (still growing) one before.
pub fn closed_periods(tx: &state::Transaction, count: usize) -> usize {
    if tx.status == state::TransactionStatus::Completed {
        count
    } else {
        count.saturating_sub(1)
    }
}

/// The OCPI Session (charging periods: only the closed ones, so that PATCH can append them).
pub fn render_session(
    cc: &str,
    pid: &str,
    rec: &SessionRecord,
    tx: &state::Transaction,
    samples: &[state::MeterSample],
    now: DateTime<Utc>,
) -> Value {
    let m = metering(tx, samples, now);
    let periods = charging_periods(rec, &m);
    let closed = closed_periods(tx, periods.len());
    let mut session = json!({
        "country_code": cc,
        "party_id": pid,
        "id": rec.id,
        "start_date_time": ocpi_datetime(m.start),
        "kwh": json_number(periods::totals(&periods).energy_kwh.round_dp(4)),
        "cdr_token": rec.cdr_token,
        "auth_method": rec.auth_method,
        "location_id": rec.location_id,
        "evse_uid": rec.evse_uid,
        "connector_id": rec.connector_id,
        "currency": rec.currency,
        "charging_periods": periods::to_ocpi_json(&periods[..closed], rec.tariff_id().as_deref()),
        "status": rec.status,
        "last_updated": ocpi_datetime(rec.last_updated.max(tx.updated_at)),
    });
    if let Some(end) = tx.stopped_at {
        session["end_date_time"] = Value::String(ocpi_datetime(end));
    }
    if let Some(r) = &rec.authorization_reference {
        session["authorization_reference"] = Value::String(r.clone());
    }
    if let Some(mid) = &rec.meter_id {
        session["meter_id"] = Value::String(truncate(mid, 255));
    }
    if rec.tariff.is_some() && rec.status != SessionStatus::Invalid {
        let mut cdr = cdr_base(cc, pid, rec, tx, &m, &periods);
        apply_costs(rec, &mut cdr);
        session["total_cost"] = cdr["total_cost"].clone();
    }
    session
}

/// A Session that is (still) only a reservation: no energy, no periods yet.
pub fn render_reservation(cc: &str, pid: &str, rec: &SessionRecord) -> Value {
    let mut session = json!({
        "country_code": cc,
        "party_id": pid,
        "id": rec.id,
        "start_date_time": ocpi_datetime(rec.created_at),
        "kwh": 0,
        "cdr_token": rec.cdr_token,
        "auth_method": rec.auth_method,
        "location_id": rec.location_id,
        "evse_uid": rec.evse_uid,
        "connector_id": rec.connector_id,
        "currency": rec.currency,
        "status": rec.status,
        "last_updated": ocpi_datetime(rec.last_updated),
    });
    if rec.status == SessionStatus::Completed {
        session["end_date_time"] = Value::String(ocpi_datetime(rec.last_updated));
    }
    if let Some(r) = &rec.authorization_reference {
        session["authorization_reference"] = Value::String(r.clone());
    }
    session
}

/// A PATCH body for a Session: what changes, with the charging periods the peer does not have
/// yet (`sent` = how many it has).
pub fn session_patch(session: &Value, sent: usize) -> Value {
    let mut patch = json!({
        "kwh": session["kwh"],
        "status": session["status"],
        "last_updated": session["last_updated"],
    });
    for field in ["end_date_time", "total_cost"] {
        if let Some(v) = session.get(field) {
            patch[field] = v.clone();
        }
    }
    let periods = session["charging_periods"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if periods.len() > sent {
        patch["charging_periods"] = Value::Array(periods[sent..].to_vec());
    }
    patch
}

#[cfg(test)]
mod tests;
