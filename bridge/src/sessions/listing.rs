//! Who may read which Session and CDR, and the time-ordered listings that page them.
//!
//! A Session and its CDR belong to the peer that owns the token ([`SessionRecord::peer`]) and,
//! behind a hub, to the token's party. Each is filed (in the store transaction that writes it)
//! under two scopes: the peer, and the peer with the token's party, at its `last_updated`. A
//! GET reads one scope: the caller's, narrowed to the `OCPI-from-*` party when a hub names one.
//! So no eMSP reads another's drivers, and a page costs the same however many are stored.
//! Sessions without an OCPI peer (local tokens) are filed nowhere: no peer sees them.

use chrono::{DateTime, Utc};
use ocpi::types::Cdr;
use state::{Store, TxError, Txn};

use crate::error::Result;
use crate::records::{CDRS_LISTED, LISTINGS_BUILT, SESSIONS_LISTED, SessionRecord, StoredCdr};

/// The marker (in [`LISTINGS_BUILT`]) of a store whose listings are complete.
const BUILT: &str = "v1";

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

/// Writes a session record and files it at its `last_updated`.
pub fn put_session(tx: &Txn<'_>, rec: &SessionRecord) -> std::result::Result<(), TxError> {
    tx.put_record(rec)?;
    let (cc, pid) = rec.owner();
    tx.list_put(
        SESSIONS_LISTED,
        &rec.id,
        &scopes(rec.peer.as_deref(), (&cc, &pid)),
        rec.last_updated,
    )
}

/// Writes a CDR of the session `rec` and files it for the session's peer.
pub fn put_cdr(tx: &Txn<'_>, cdr: &Cdr, rec: &SessionRecord) -> std::result::Result<(), TxError> {
    tx.put_record(&StoredCdr(cdr.clone()))?;
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
        return Ok(0);
    }
    const BATCH: usize = 500;
    let mut filed = 0;
    let mut after = None;
    loop {
        let batch = store.records_after::<SessionRecord>(after, BATCH)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.seq);
        store.update(|tx| {
            for s in &batch {
                put_session(tx, &s.value)?;
            }
            Ok(())
        })?;
        filed += batch.len();
    }
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
    Ok(filed)
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
