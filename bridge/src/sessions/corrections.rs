//! Money corrections: CDRs held because their price could not be computed, released once the
//! operator fixed the tariff ([`Sessions::reprice_held`]), and credit CDRs with a re-issued
//! CDR for a CDR that went out wrong ([`Sessions::credit`]).
//!
//! - A held CDR ([`HeldCdr`]) is stored but never queued: it is not in `cdrs.jsonl`, not
//!   served on the OCPI GET, and counted in the `bridge_cdrs_held` gauge. Re-pricing uses the
//!   tariffs configured *now*: the session's tariff id if it is still configured, else the
//!   tariff that applies to the station now. Success stores the CDR (same id), queues it and
//!   removes the hold in one store transaction; a second failure leaves it held.
//! - A credit ([`render::credit_cdr`]) repeats the original with id `{id}-C`, `credit: true`,
//!   `credit_reference_id` and negated `total_cost`; the new CDR ([`render::reissued_cdr`])
//!   is the original (or, with `reprice`, the session priced again with the current tariffs)
//!   under a new id. Both are stored (and filed in the CDR listing of the session's peer and
//!   party, so the OCPI GET shows them to that eMSP only), queued to the eMSP that owns the
//!   token and appended to `cdrs.jsonl` in one store transaction; a CDR is credited at most
//!   once, a credit CDR never.

use chrono::Utc;
use ocpi::types::{Cdr, ModuleId};

use super::{Sessions, listing, push_for, render};
use crate::error::Result;
use crate::outbox::Push;
use crate::records::{CDR_CREDITED, HeldCdr, SessionRecord, StoredCdr};

/// Why a correction was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such (held) CDR.
    #[error("no such CDR")]
    NotFound,
    /// The correction does not apply (already credited, still cannot be priced, …).
    #[error("{0}")]
    Conflict(String),
}

/// The outcome of a correction: the CDRs made, or why none were.
pub type Corrected<T> = std::result::Result<T, Refusal>;

impl Sessions {
    /// Sets the `bridge_cdrs_held` gauge from the store.
    pub(super) fn update_held_gauge(&self) {
        metrics::gauge!("bridge_cdrs_held").set(self.store.count::<HeldCdr>() as f64);
    }

    /// Every held CDR, in the order they were held.
    pub fn held(&self) -> Result<Vec<HeldCdr>> {
        Ok(self.store.records::<HeldCdr>()?)
    }

    /// The session record with the tariff that applies now (the frozen tariff's id if it is
    /// still configured, else the station's current tariff) and its currency.
    fn with_current_tariff(&self, mut rec: SessionRecord, station: &str) -> SessionRecord {
        let tariff = rec
            .tariff_id()
            .and_then(|id| self.catalog.tariff(id))
            .or_else(|| self.catalog.tariff_for(station))
            .cloned();
        if let Some(t) = &tariff {
            rec.currency = t.currency.clone();
        }
        rec.tariff = tariff;
        rec
    }

    /// The CDR of session `id` priced with the current tariffs, and the updated record.
    fn repriced(&self, session_id: &str, cdr_id: &str) -> Result<Corrected<(Cdr, SessionRecord)>> {
        let Some(rec) = self.record(session_id)? else {
            return Ok(Err(Refusal::Conflict(format!(
                "no session record {session_id} to price from"
            ))));
        };
        let tx_rec = match rec.tx_id() {
            Some(tx) => self.store.transaction(tx)?,
            None => None,
        };
        let Some(tx_rec) = tx_rec else {
            return Ok(Err(Refusal::Conflict(format!(
                "the transaction of session {session_id} is gone"
            ))));
        };
        let rec = self.with_current_tariff(rec, &tx_rec.station_id);
        let samples = self.store.samples(&tx_rec.id)?;
        match render::render_cdr_checked(&self.us(), &rec, &tx_rec, &samples) {
            None => Ok(Err(Refusal::Conflict(
                "the session has no location snapshot".into(),
            ))),
            Some((_, Some(e))) => Ok(Err(Refusal::Conflict(format!(
                "CDR {cdr_id} still cannot be priced with the current tariffs: {e}"
            )))),
            Some((cdr, None)) => Ok(Ok((cdr, rec))),
        }
    }

    /// Releases a held CDR: prices it with the current tariffs and, when that works, stores and
    /// queues it (same id) and removes the hold, in one store transaction.
    pub async fn reprice_held(&self, id: &str) -> Result<Corrected<Cdr>> {
        let Some(held) = self.store.record::<HeldCdr>(id)? else {
            return Ok(Err(Refusal::NotFound));
        };
        let session_id = held
            .cdr
            .session_id
            .as_ref()
            .map_or(id, |s| s.as_str())
            .to_owned();
        let (cdr, rec) = match self.repriced(&session_id, id)? {
            Ok(x) => x,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if let Err(e) = cdr.validate() {
            return Ok(Err(Refusal::Conflict(e.to_string())));
        }
        let peer = self.receiver(rec.peer.as_deref(), ModuleId::Cdrs);
        let released = self.store.update(|tx| {
            if tx.remove_record::<HeldCdr>(id)?.is_none() || tx.record::<StoredCdr>(id)?.is_some() {
                return Ok(false);
            }
            listing::put_session(tx, &rec)?;
            listing::put_cdr(tx, &cdr, &rec)?;
            if let Some(p) = &peer {
                let push = Push::Cdr {
                    id: id.to_owned(),
                    session: Some(rec.id.clone()),
                };
                tx.push_outbox(push_for(&rec, p, push))?;
            }
            Ok(true)
        })?;
        if !released {
            return Ok(Err(Refusal::Conflict("released meanwhile".into())));
        }
        metrics::counter!("bridge_cdrs_created_total").increment(1);
        tracing::info!(cdr = %id, total_cost = %cdr.total_cost.excl_vat, peer = ?peer, "held CDR re-priced and released");
        self.backup.append(&cdr);
        self.update_held_gauge();
        self.flush_and_wake(peer).await?;
        Ok(Ok(cdr))
    }

    /// Credits a stored CDR: a credit CDR cancelling it and a new CDR (the same content, or
    /// with `reprice` the session priced with the current tariffs) under a new id, both queued
    /// for the eMSP in one store transaction. Returns `(credit, new)`.
    pub async fn credit(&self, id: &str, reprice: bool) -> Result<Corrected<(Cdr, Cdr)>> {
        let Some(StoredCdr(original)) = self.store.record::<StoredCdr>(id)? else {
            return Ok(Err(Refusal::NotFound));
        };
        let now = Utc::now();
        let Some(credit) = render::credit_cdr(&original, now) else {
            return Ok(Err(Refusal::Conflict(format!(
                "{id} is a credit CDR; credit CDRs are not credited"
            ))));
        };
        if let Some(c) = self.store.index_get(CDR_CREDITED, id)? {
            return Ok(Err(Refusal::Conflict(format!(
                "{id} was already credited by {c}"
            ))));
        }
        let session_id = original
            .session_id
            .as_ref()
            .map_or(id, |s| s.as_str())
            .to_owned();
        let Some(rec) = self.record(&session_id)? else {
            return Ok(Err(Refusal::Conflict(format!(
                "no session record {session_id}: the eMSP is unknown"
            ))));
        };
        let base = if reprice {
            match self.repriced(&session_id, id)? {
                Ok((cdr, _)) => cdr,
                Err(refusal) => return Ok(Err(refusal)),
            }
        } else {
            original.clone()
        };
        let new = render::reissued_cdr(&base, &uuid::Uuid::new_v4().to_string(), now);
        for c in [&credit, &new] {
            if let Err(e) = c.validate() {
                return Ok(Err(Refusal::Conflict(e.to_string())));
            }
        }
        let peer = self.receiver(rec.peer.as_deref(), ModuleId::Cdrs);
        let done = self.store.update(|tx| {
            if tx.index_get(CDR_CREDITED, id)?.is_some()
                || tx.record::<StoredCdr>(credit.id.as_str())?.is_some()
            {
                return Ok(false);
            }
            tx.index_put(CDR_CREDITED, id, credit.id.as_str())?;
            for c in [&credit, &new] {
                listing::put_cdr(tx, c, &rec)?;
                if let Some(p) = &peer {
                    // The session's lane: the credit is delivered before the new CDR.
                    let push = Push::Cdr {
                        id: c.id.as_str().to_owned(),
                        session: Some(rec.id.clone()),
                    };
                    tx.push_outbox(push_for(&rec, p, push))?;
                }
            }
            Ok(true)
        })?;
        if !done {
            return Ok(Err(Refusal::Conflict(format!(
                "{id} was credited meanwhile"
            ))));
        }
        metrics::counter!("bridge_cdrs_credited_total").increment(1);
        tracing::warn!(cdr = %id, credit = %credit.id.as_str(), new = %new.id.as_str(), reprice,
            new_total_cost = %new.total_cost.excl_vat, peer = ?peer, "CDR credited and re-issued");
        self.backup.append(&credit);
        self.backup.append(&new);
        self.flush_and_wake(peer).await?;
        Ok(Ok((credit, new)))
    }
}
