//! Who may read which Session and CDR, and the time-ordered listings that page them.
//!
//! A Session and its CDR belong to the peer that owns the token ([`SessionRecord::peer`]) and,
//! behind a hub, to the token's party. Each is filed (in the store transaction that writes it)
//! under two scopes: the peer, and the peer with the token's party, at its `last_updated`. A
//! GET reads one scope: the caller's, narrowed to the `OCPI-from-*` party when a hub names one.
//! So no eMSP reads another's drivers, and a page costs the same however many are stored.
//! Sessions without an OCPI peer (local tokens) are filed nowhere: no peer sees them.
//!
//! Sessions that may still need finishing (ACTIVE, RESERVATION, COMPLETED without a CDR) are
//! also filed in [`OPEN_SESSIONS`], so the periodic recovery reads those, not every session
//! ever stored.

use chrono::{DateTime, Utc};
use ocpi::types::Cdr;
use state::{Store, TxError, Txn};

use crate::error::Result;
use ocpi::types::SessionStatus;

use crate::records::{
    CDRS_LISTED, HeldCdr, LISTINGS_BUILT, OPEN_SESSIONS, SESSIONS_LISTED, SessionRecord, StoredCdr,
};

/// The marker (in [`LISTINGS_BUILT`]) of a store whose per-peer listings are complete.
const BUILT: &str = "v1";
/// The marker of a store whose [`OPEN_SESSIONS`] listing is complete.
const BUILT_OPEN: &str = "v2";
/// The one scope of [`OPEN_SESSIONS`].
const OPEN: &str = "open";

/// The scope of `peer`, or of one party behind it.
pub fn scope(peer: &str, party: Option<(&str, &str)>) -> String {
    match party {
        // 0x01 cannot occur in a peer id or party (both are printable), so scopes never
        // collide.
        Some((cc, pid)) => format!(
            "{peer}\u{1}{}\u{1}{}",
            cc.to_ascii_uppercase(),
            pid.to_ascii_uppercase()
        ),
        None => peer.to_owned(),
    }
}

/// The scopes an object of `peer` for the token party `owner` is filed under.
pub fn scopes(peer: Option<&str>, owner: (&str, &str)) -> Vec<String> {
    match peer {
        Some(p) => vec![scope(p, None), scope(p, Some(owner))],
        None => Vec::new(),
    }
}

/// Writes a session record and files it at its `last_updated` (and among the open sessions
/// while it may still need finishing).
pub fn put_session(tx: &Txn<'_>, rec: &SessionRecord) -> std::result::Result<(), TxError> {
    tx.put_record(rec)?;
    let (cc, pid) = rec.owner();
    tx.list_put(
        SESSIONS_LISTED,
        &rec.id,
        &scopes(rec.peer.as_deref(), (&cc, &pid)),
        rec.last_updated,
    )?;
    file_open(tx, rec)
}

/// Whether a session may still need finishing: ACTIVE, RESERVATION, or COMPLETED with a
/// transaction whose CDR is neither stored nor held.
fn is_open(tx: &Txn<'_>, rec: &SessionRecord) -> std::result::Result<bool, TxError> {
    Ok(match rec.status {
        SessionStatus::Active | SessionStatus::Reservation => true,
        SessionStatus::Completed => {
            rec.tx_id().is_some()
                && tx.record::<StoredCdr>(&rec.id)?.is_none()
                && tx.record::<HeldCdr>(&rec.id)?.is_none()
        }
        _ => false,
    })
}

fn file_open(tx: &Txn<'_>, rec: &SessionRecord) -> std::result::Result<(), TxError> {
    if is_open(tx, rec)? {
        tx.list_put(OPEN_SESSIONS, &rec.id, &[OPEN.to_owned()], rec.last_updated)
    } else {
        tx.list_remove(OPEN_SESSIONS, &rec.id).map(drop)
    }
}

/// A session whose CDR was just stored or held: finished.
pub fn closed(tx: &Txn<'_>, session_id: &str) -> std::result::Result<(), TxError> {
    tx.list_remove(OPEN_SESSIONS, session_id).map(drop)
}

/// The ids of the sessions that may still need finishing.
pub fn open_ids(store: &Store) -> Result<Vec<String>> {
    Ok(store
        .list_page(OPEN_SESSIONS, OPEN, None, None, 0, usize::MAX)?
        .ids)
}

/// Writes a CDR of the session `rec` and files it for the session's peer.
pub fn put_cdr(tx: &Txn<'_>, cdr: &Cdr, rec: &SessionRecord) -> std::result::Result<(), TxError> {
    tx.put_record(&StoredCdr(cdr.clone()))?;
    closed(tx, &rec.id)?;
    file_cdr(tx, cdr, rec.peer.as_deref())
}

fn file_cdr(tx: &Txn<'_>, cdr: &Cdr, peer: Option<&str>) -> std::result::Result<(), TxError> {
    let at: DateTime<Utc> = cdr.last_updated.into();
    tx.list_put(
        CDRS_LISTED,
        cdr.id.as_str(),
        &scopes(
            peer,
            (
                cdr.cdr_token.country_code.as_str(),
                cdr.cdr_token.party_id.as_str(),
            ),
        ),
        at,
    )
}

/// Files every stored session and CDR once, for a store written by a version without listings
/// (at start-up; a no-op afterwards). Walks the records in bounded batches.
pub fn build(store: &Store) -> Result<usize> {
    if store.index_get(LISTINGS_BUILT, BUILT)?.is_some() {
        return build_open(store);
    }
    let mut filed = each_session(store, put_session)?;
    let mut after = None;
    loop {
        let batch = store.records_after::<StoredCdr>(after, BATCH)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.seq);
        let peers: Vec<Option<String>> = batch
            .iter()
            .map(|c| {
                Ok(store
                    .record::<SessionRecord>(c.value.0.id.as_str())?
                    .and_then(|s| s.peer))
            })
            .collect::<Result<_>>()?;
        store.update(|tx| {
            for (c, peer) in batch.iter().zip(&peers) {
                file_cdr(tx, &c.value.0, peer.as_deref())?;
            }
            Ok(())
        })?;
        filed += batch.len();
    }
    store.update(|tx| tx.index_put(LISTINGS_BUILT, BUILT, &Utc::now().to_rfc3339()))?;
    // `put_session` above filed the open ones too.
    store.update(|tx| tx.index_put(LISTINGS_BUILT, BUILT_OPEN, &Utc::now().to_rfc3339()))?;
    Ok(filed)
}

/// Files the open sessions of a store that has the per-peer listings but not this one.
fn build_open(store: &Store) -> Result<usize> {
    if store.index_get(LISTINGS_BUILT, BUILT_OPEN)?.is_some() {
        return Ok(0);
    }
    let filed = each_session(store, file_open)?;
    store.update(|tx| tx.index_put(LISTINGS_BUILT, BUILT_OPEN, &Utc::now().to_rfc3339()))?;
    Ok(filed)
}

/// Records written per store transaction in a start-up walk.
const BATCH: usize = 500;

/// Applies `file` to every stored session, one bounded batch per store transaction; returns
/// how many there were.
fn each_session(
    store: &Store,
    file: impl Fn(&Txn<'_>, &SessionRecord) -> std::result::Result<(), TxError>,
) -> Result<usize> {
    let mut walked = 0;
    let mut after = None;
    loop {
        let batch = store.records_after::<SessionRecord>(after, BATCH)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.seq);
        store.update(|tx| {
            for s in &batch {
                file(tx, &s.value)?;
            }
            Ok(())
        })?;
        walked += batch.len();
    }
    Ok(walked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_per_peer_and_per_party_and_never_collide() {
        assert_eq!(scopes(None, ("NL", "ABC")), Vec::<String>::new());
        let s = scopes(Some("hub"), ("nl", "abc"));
        assert_eq!(s, vec!["hub".to_owned(), "hub\u{1}NL\u{1}ABC".to_owned()]);
        assert_eq!(scope("hub", Some(("NL", "ABC"))), s[1]);
        assert_ne!(scope("hub", Some(("N", "LABC"))), s[1]);
    }
}
