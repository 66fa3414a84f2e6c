//! OCPI Sessions and CDRs from OCPP transactions: pure functions from a [`SessionRecord`], the
//! transaction and its meter samples to typed `ocpi::types` values.
//!
//! Everything that moves (kWh, charging periods, cost, status) is rendered from the transaction
//! and its samples when needed; what was fixed at start (token, location, tariff) comes from the
//! record. Invariants: the Session id and the CDR id are the record's id (so there is exactly
//! one of each per transaction); charging periods are split where the tariff can change; costs
//! come from the `ocpi-tariffs` engine with the tariff frozen at start (JSON only at that
//! boundary); hours carry 4 decimals.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ocpi::types::{
    Cdr, CdrId, ConnectorId, CountryCode, EvseUid, LocationId, PartyId, Price, Session, SessionId,
    SessionPatch, SessionStatus, SignedData, SignedValue,
};
use rust_decimal::Decimal;

use crate::periods::{self, Metering};
use crate::pricing;
use crate::records::SessionRecord;

/// Our OCPI identity, for the `country_code`/`party_id` of what we render.
#[derive(Debug, Clone)]
pub struct Party {
    /// Our country code.
    pub country_code: CountryCode,
    /// Our party id.
    pub party_id: PartyId,
}

impl Party {
    /// The party `cc`/`pid`.
    pub fn new(cc: &str, pid: &str) -> Self {
        Party {
            country_code: CountryCode::new(cc.to_owned()),
            party_id: PartyId::new(pid.to_owned()),
        }
    }
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
pub fn periods_of(rec: &SessionRecord, m: &Metering) -> Vec<periods::Period> {
    let boundaries = rec
        .tariff
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .map(|t| periods::tariff_boundaries(&t, rec.tz(), m.start, m.end))
        .unwrap_or_default();
    let mut ps = periods::periods(m, &boundaries);
    let tariff_id = rec.tariff_id().map(str::to_owned);
    for p in &mut ps {
        p.tariff_id = tariff_id.clone();
    }
    ps
}

fn price(p: &pricing::Price) -> Price {
    Price {
        excl_vat: p.excl_vat.normalize(),
        incl_vat: p.incl_vat.map(|v| v.normalize()),
    }
}

fn zero_price() -> Price {
    Price {
        excl_vat: Decimal::ZERO,
        incl_vat: Some(Decimal::ZERO),
    }
}

/// Signed meter data of the transaction as OCPI SignedData, when the station sent any.
pub fn signed_data(samples: &[state::MeterSample]) -> Option<SignedData> {
    let signed: Vec<(&state::MeterSample, &state::SignedData)> = samples
        .iter()
        .filter_map(|s| s.signed.as_ref().map(|d| (s, d)))
        .collect();
    let (_, first) = signed.first()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let signed_values = signed
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
            SignedValue {
                nature: nature.to_owned(),
                plain_data: truncate(&plain, 5000),
                signed_data: truncate(&signed_data, 5000),
            }
        })
        .collect();
    Some(SignedData {
        encoding_method: if first.encoding_method.is_empty() {
            "OCMF".to_owned()
        } else {
            first.encoding_method.clone()
        },
        encoding_method_version: None,
        public_key: signed
            .iter()
            .find_map(|(_, d)| d.public_key.as_deref().map(|k| truncate(k, 512))),
        signed_values,
        url: None,
    })
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A CDR for the transaction with zero costs (the pricing engine's input); `None` when the
/// record has no location snapshot (a session that was only a reservation).
fn cdr_base(
    us: &Party,
    rec: &SessionRecord,
    tx: &state::Transaction,
    m: &Metering,
    periods: &[periods::Period],
) -> Option<Cdr> {
    let totals = periods::totals(periods);
    let round = |d: Decimal| d.round_dp(4).normalize();
    Some(Cdr {
        country_code: us.country_code.clone(),
        party_id: us.party_id.clone(),
        id: CdrId::new(rec.id.clone()),
        start_date_time: m.start.into(),
        end_date_time: m.end.into(),
        session_id: Some(SessionId::new(rec.id.clone())),
        cdr_token: rec.cdr_token.clone(),
        auth_method: rec.auth_method,
        authorization_reference: rec.authorization_reference.clone(),
        cdr_location: rec.cdr_location.clone()?,
        meter_id: rec.meter_id.as_deref().map(|m| truncate(m, 255)),
        currency: rec.currency.clone(),
        tariffs: rec.tariff.clone().map(|t| vec![t]),
        charging_periods: periods::charging_periods(periods, rec.tariff_id()),
        signed_data: None,
        total_cost: zero_price(),
        total_fixed_cost: None,
        total_energy: round(totals.energy_kwh),
        total_energy_cost: None,
        total_time: round(totals.time_h),
        total_time_cost: None,
        total_parking_time: Some(round(totals.parking_h)),
        total_parking_cost: None,
        total_reservation_cost: None,
        remark: tx
            .stop_reason
            .as_ref()
            .map(|r| truncate(&format!("Stop reason: {r}"), 255)),
        invoice_reference_id: None,
        credit: None,
        credit_reference_id: None,
        home_charging_compensation: None,
        last_updated: ocpi::types::DateTime::now(),
    })
}

/// Prices a CDR base in place with the record's tariff; returns the total cost (excl. VAT),
/// `Ok(None)` without a tariff (free), or why pricing failed (the costs stay 0).
fn apply_costs(rec: &SessionRecord, cdr: &mut Cdr) -> Result<Option<Decimal>, String> {
    let Some(tariff) = rec.tariff.as_ref() else {
        return Ok(None);
    };
    let priced = serde_json::to_value(&*cdr)
        .and_then(|c| Ok((c, serde_json::to_value(tariff)?)))
        .map_err(|e| e.to_string())
        .and_then(|(c, t)| pricing::price(&c, &t, rec.tz()).map_err(|e| e.to_string()));
    match priced {
        Ok(costs) => {
            cdr.total_cost = price(&costs.total_cost);
            cdr.total_energy_cost = costs.total_energy_cost.as_ref().map(price);
            cdr.total_time_cost = costs.total_time_cost.as_ref().map(price);
            cdr.total_parking_cost = costs.total_parking_cost.as_ref().map(price);
            cdr.total_fixed_cost = costs.total_fixed_cost.as_ref().map(price);
            Ok(Some(costs.total_cost.excl_vat))
        }
        Err(e) => {
            tracing::error!(session = %rec.id, error = %e, "pricing failed");
            metrics::counter!("bridge_pricing_failures_total").increment(1);
            Err(e)
        }
    }
}

/// The CDR of a completed transaction (`None` without a location snapshot), with zero costs
/// when pricing failed (see [`render_cdr_checked`]).
pub fn render_cdr(
    us: &Party,
    rec: &SessionRecord,
    tx: &state::Transaction,
    samples: &[state::MeterSample],
) -> Option<Cdr> {
    render_cdr_checked(us, rec, tx, samples).map(|(cdr, _)| cdr)
}

/// The CDR of a completed transaction (`None` without a location snapshot) and, when its
/// price could not be computed, why: such a CDR must be held, never sent with cost 0.
pub fn render_cdr_checked(
    us: &Party,
    rec: &SessionRecord,
    tx: &state::Transaction,
    samples: &[state::MeterSample],
) -> Option<(Cdr, Option<String>)> {
    let m = metering(tx, samples, Utc::now());
    let periods = periods_of(rec, &m);
    let mut cdr = cdr_base(us, rec, tx, &m, &periods)?;
    let error = apply_costs(rec, &mut cdr).err();
    cdr.signed_data = signed_data(samples);
    Some((cdr, error))
}

/// The credit CDR that cancels `original` (OCPI 2.2.1 "Credit CDRs"): all of its data, id
/// `{id}-C`, `credit: true`, `credit_reference_id` = the original's id, and the `total_cost`
/// amounts negated (only those, as the text says). `None` for a credit CDR itself.
pub fn credit_cdr(original: &Cdr, now: DateTime<Utc>) -> Option<Cdr> {
    if original.credit == Some(true) {
        return None;
    }
    let mut c = original.clone();
    c.id = CdrId::new(format!("{}-C", original.id.as_str()));
    c.credit = Some(true);
    c.credit_reference_id = Some(original.id.as_str().to_owned());
    c.total_cost = Price {
        excl_vat: -original.total_cost.excl_vat,
        incl_vat: original.total_cost.incl_vat.map(|v| -v),
    };
    c.last_updated = now.into();
    Some(c)
}

/// A new CDR replacing a credited one: `base` (the original, or its re-priced rendering) with
/// a new id, without the credit fields.
pub fn reissued_cdr(base: &Cdr, new_id: &str, now: DateTime<Utc>) -> Cdr {
    let mut c = base.clone();
    c.id = CdrId::new(new_id.to_owned());
    c.credit = None;
    c.credit_reference_id = None;
    c.last_updated = now.into();
    c
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

/// The Session of a transaction (charging periods: only the closed ones, so that PATCH can
/// append them).
pub fn render_session(
    us: &Party,
    rec: &SessionRecord,
    tx: &state::Transaction,
    samples: &[state::MeterSample],
    now: DateTime<Utc>,
) -> Session {
    let m = metering(tx, samples, now);
    let periods = periods_of(rec, &m);
    let closed = closed_periods(tx, periods.len());
    let total_cost = if rec.tariff.is_some() && rec.status != SessionStatus::Invalid {
        cdr_base(us, rec, tx, &m, &periods).and_then(|mut cdr| {
            // No estimate rather than a wrong one.
            apply_costs(rec, &mut cdr).ok()?;
            Some(cdr.total_cost)
        })
    } else {
        None
    };
    Session {
        country_code: us.country_code.clone(),
        party_id: us.party_id.clone(),
        id: SessionId::new(rec.id.clone()),
        start_date_time: m.start.into(),
        end_date_time: tx.stopped_at.map(Into::into),
        kwh: periods::totals(&periods).energy_kwh.round_dp(4).normalize(),
        cdr_token: rec.cdr_token.clone(),
        auth_method: rec.auth_method,
        authorization_reference: rec.authorization_reference.clone(),
        location_id: LocationId::new(rec.location_id.clone()),
        evse_uid: EvseUid::new(rec.evse_uid.clone()),
        connector_id: ConnectorId::new(rec.connector_id.clone()),
        meter_id: rec.meter_id.as_deref().map(|m| truncate(m, 255)),
        currency: rec.currency.clone(),
        charging_periods: Some(periods::charging_periods(
            &periods[..closed],
            rec.tariff_id(),
        )),
        total_cost,
        status: rec.status,
        // The record's time (bumped by every update), not the last meter value's: the Session
        // is filed for GETs at this time (see `listing`).
        last_updated: rec.last_updated.into(),
    }
}

/// A Session that is (still) only a reservation: no energy, no periods yet.
pub fn render_reservation(us: &Party, rec: &SessionRecord) -> Session {
    Session {
        country_code: us.country_code.clone(),
        party_id: us.party_id.clone(),
        id: SessionId::new(rec.id.clone()),
        start_date_time: rec.created_at.into(),
        end_date_time: (rec.status == SessionStatus::Completed).then(|| rec.last_updated.into()),
        kwh: Decimal::ZERO,
        cdr_token: rec.cdr_token.clone(),
        auth_method: rec.auth_method,
        authorization_reference: rec.authorization_reference.clone(),
        location_id: LocationId::new(rec.location_id.clone()),
        evse_uid: EvseUid::new(rec.evse_uid.clone()),
        connector_id: ConnectorId::new(rec.connector_id.clone()),
        meter_id: None,
        currency: rec.currency.clone(),
        charging_periods: None,
        total_cost: None,
        status: rec.status,
        last_updated: rec.last_updated.into(),
    }
}

/// A PATCH for a Session: what changes, with the charging periods the peer does not have yet
/// (`sent` = how many it has).
pub fn session_patch(session: &Session, sent: usize) -> SessionPatch {
    let periods = session.charging_periods.as_deref().unwrap_or_default();
    SessionPatch {
        kwh: session.kwh,
        status: session.status,
        last_updated: session.last_updated,
        end_date_time: session.end_date_time,
        total_cost: session.total_cost.clone(),
        charging_periods: (periods.len() > sent).then(|| periods[sent..].to_vec()),
    }
}

#[cfg(test)]
mod tests;
