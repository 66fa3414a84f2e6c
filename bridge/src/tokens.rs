//! eMSP tokens as the bridge stores them, and the 1.6 idTag alias table.
//!
//! A token's identity is (country_code, party_id, uid, type); uids compare case-insensitively.
//! Each token remembers the peer it came from (pushed, pulled or returned by real-time
//! authorization): Sessions and CDRs of that token go to that peer.
//!
//! OCPP 1.6 idTags hold at most 20 characters while OCPI uids hold 36: a longer uid gets a
//! deterministic alias (same uid → same alias, so a START_SESSION and the station's later
//! Authorize agree) kept in an explicit table and resolved back before any lookup.
//!
//! Pulls ([`pull`]) from an eMSP's Tokens sender are incremental (`date_from` = the start of the
//! last successful pull, kept in a [`TokenPull`] record) or full reconciles: one page at a time,
//! one store transaction per page, and afterwards every token of that peer that the reconcile did
//! not list and that was stored before it began is removed (walked in bounded batches). Memory
//! stays bounded by a page, whatever the number of tokens.

use chrono::{DateTime, Utc};
use ocpi::types::Token;
use ocpi::{Client, Peer};
use state::{Store, TxError, Txn};

use crate::records::{IDTAG_ALIAS, StoredToken, TOKEN_BY_UID, TokenPull};

/// Tokens examined per store transaction when a reconcile sweeps out unlisted ones.
const SWEEP_BATCH: usize = 200;

/// The longest 1.6 idTag.
pub const MAX_ID_TAG: usize = 20;

/// The ≤ 20-character idTag a uid is sent to 1.6 stations as.
pub fn alias(uid: &str) -> String {
    if uid.len() <= MAX_ID_TAG && uid.is_ascii() {
        return uid.to_owned();
    }
    let upper = uid.to_ascii_uppercase();
    let hash = crate::fnv1a(upper.as_bytes());
    const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let code: String = (0..13)
        .map(|i| B32[((hash >> (i * 5)) & 31) as usize] as char)
        .collect();
    let head: String = upper
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect();
    format!("{head:X<6}~{code}")
}

/// Stores (or replaces) a token inside an update, indexing its uid and alias.
pub fn put(tx: &Txn<'_>, token: &Token, peer: &str) -> Result<(), TxError> {
    put_pulled(tx, token, peer, None)
}

/// [`put`], marking the token as listed by the full reconcile that started at `reconcile`.
pub fn put_pulled(
    tx: &Txn<'_>,
    token: &Token,
    peer: &str,
    reconcile: Option<DateTime<Utc>>,
) -> Result<(), TxError> {
    let stored = StoredToken {
        token: token.clone(),
        peer: peer.to_owned(),
        stored_at: Some(Utc::now()),
        reconciled: reconcile,
    };
    let key = state::Record::id(&stored);
    tx.put_record(&stored)?;
    tx.index_put(
        TOKEN_BY_UID,
        &format!("{}\0{key}", token.uid.as_str().to_ascii_uppercase()),
        peer,
    )?;
    remember_alias(tx, token.uid.as_str())
}

/// Records the alias of a uid (no-op for uids that fit a 1.6 idTag).
pub fn remember_alias(tx: &Txn<'_>, uid: &str) -> Result<(), TxError> {
    let a = alias(uid);
    if a != uid {
        tx.index_put(IDTAG_ALIAS, &a.to_ascii_uppercase(), uid)?;
    }
    Ok(())
}

/// The OCPI uid an idTag stands for (the alias resolved, else the idTag itself).
pub fn resolve_id_tag(store: &Store, id_tag: &str) -> Result<String, state::Error> {
    Ok(store
        .index_get(IDTAG_ALIAS, &id_tag.to_ascii_uppercase())?
        .unwrap_or_else(|| id_tag.to_owned()))
}

/// Every stored token with this uid (any owner, any type), case-insensitively.
pub fn find(store: &Store, uid: &str) -> Result<Vec<StoredToken>, state::Error> {
    let mut out = Vec::new();
    for (key, _) in store.index_scan(TOKEN_BY_UID, &format!("{}\0", uid.to_ascii_uppercase()))? {
        if let Some(t) = store.record::<StoredToken>(&key)? {
            out.push(t);
        }
    }
    Ok(out)
}

/// One stored token by its identity.
pub fn get(
    store: &Store,
    cc: &str,
    pid: &str,
    uid: &str,
    kind: &str,
) -> Result<Option<StoredToken>, state::Error> {
    store.record::<StoredToken>(&StoredToken::key(cc, pid, uid, kind))
}

/// Removes a stored token and its uid index entry (its 1.6 alias stays: it is deterministic).
pub fn remove(tx: &Txn<'_>, key: &str) -> Result<Option<StoredToken>, TxError> {
    let Some(old) = tx.remove_record::<StoredToken>(key)? else {
        return Ok(None);
    };
    tx.index_remove(
        TOKEN_BY_UID,
        &format!("{}\0{key}", old.token.uid.as_str().to_ascii_uppercase()),
    )?;
    Ok(Some(old))
}

/// Whether a reconcile that started at `run` and did not list `t` removes it: only the peer's
/// own tokens, and only those stored before the reconcile began (a token pushed meanwhile
/// stays).
pub fn unlisted(t: &StoredToken, peer: &str, run: DateTime<Utc>) -> bool {
    t.peer == peer && t.reconciled != Some(run) && t.stored_at.is_none_or(|at| at < run)
}

/// Whether the next pull must be a full reconcile: never pulled, or the last full one is at
/// least `every_secs` old (`0` = never again after the first).
pub fn reconcile_due(last: Option<&TokenPull>, every_secs: u64, now: DateTime<Utc>) -> bool {
    match last {
        None => true,
        Some(_) if every_secs == 0 => false,
        Some(l) => {
            let every = chrono::Duration::seconds(i64::try_from(every_secs).unwrap_or(i64::MAX));
            now.signed_duration_since(l.last_full) >= every
        }
    }
}

/// What one pull did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullReport {
    /// Full reconcile (no `date_from`) or incremental.
    pub full: bool,
    /// Pages fetched.
    pub pages: usize,
    /// Tokens stored.
    pub tokens: usize,
    /// Tokens removed because the full reconcile no longer listed them.
    pub removed: usize,
}

/// Pulls `peer`'s Tokens sender: incremental with `date_from` = the start of the last
/// successful pull, or a full reconcile when `full` or when no pull succeeded yet. Each page is
/// stored in its own transaction as it arrives; a full reconcile then removes the peer's
/// tokens it did not list. The pull's start time is recorded only when it succeeded, so a
/// failed pull is repeated from the same `date_from`.
pub async fn pull(
    client: &Client,
    store: &Store,
    peer: &Peer,
    full: bool,
) -> Result<PullReport, String> {
    let started = Utc::now();
    let id = peer.id.as_str();
    let last = store
        .record::<TokenPull>(id)
        .map_err(|e| format!("store: {e}"))?;
    let date_from = last.as_ref().filter(|_| !full).map(|l| l.last_pull);
    let full = date_from.is_none();
    let mut pages = client
        .token_pages(peer, date_from.map(ocpi::types::DateTime::from))
        .map_err(|e| e.to_string())?;
    let mut report = PullReport {
        full,
        pages: 0,
        tokens: 0,
        removed: 0,
    };
    while let Some(raw) = pages
        .next_page::<serde_json::Value>()
        .await
        .map_err(|e| e.to_string())?
    {
        // A pulled token is stored only if it is a valid OCPI Token (as a pushed one must be);
        // the rest are logged and counted.
        let mut page = ocpi::client::parse_tokens(peer, raw);
        let before = page.len();
        page.retain(|t| match t.validate() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(peer = %id, token = %t.uid.as_str(), error = %e, "pulled token refused");
                false
            }
        });
        metrics::counter!("ocpi_tokens_refused_total").increment((before - page.len()) as u64);
        store
            .update(|tx| {
                for t in &page {
                    put_pulled(tx, t, id, full.then_some(started))?;
                }
                Ok(())
            })
            .map_err(|e| format!("store: {e}"))?;
        report.pages += 1;
        report.tokens += page.len();
    }
    if full {
        report.removed = sweep(store, id, started).map_err(|e| format!("store: {e}"))?;
    }
    let record = TokenPull {
        peer: id.to_owned(),
        last_pull: started,
        last_full: if full {
            started
        } else {
            last.map_or(started, |l| l.last_full)
        },
    };
    store
        .update(|tx| tx.put_record(&record))
        .map_err(|e| format!("store: {e}"))?;
    store.flush().await.map_err(|e| format!("flush: {e}"))?;
    Ok(report)
}

/// After a full reconcile that started at `run`: removes `peer`'s tokens it did not list,
/// walking the tokens in batches (one transaction each). Returns how many were removed.
fn sweep(store: &Store, peer: &str, run: DateTime<Utc>) -> Result<usize, state::Error> {
    let mut removed = 0;
    let mut after = None;
    loop {
        let batch = store.records_after::<StoredToken>(after, SWEEP_BATCH)?;
        let Some(last) = batch.last() else {
            return Ok(removed);
        };
        after = Some(last.seq);
        let gone: Vec<String> = batch
            .iter()
            .filter(|s| unlisted(&s.value, peer, run))
            .map(|s| state::Record::id(&s.value))
            .collect();
        if gone.is_empty() {
            continue;
        }
        let n = store.update(|tx| {
            let mut n = 0;
            for key in &gone {
                // Re-checked inside the transaction: a push may have replaced it meanwhile.
                if tx
                    .record::<StoredToken>(key)?
                    .is_some_and(|t| unlisted(&t, peer, run))
                    && remove(tx, key)?.is_some()
                {
                    n += 1;
                }
            }
            Ok(n)
        })?;
        if n > 0 {
            tracing::info!(
                peer,
                removed = n,
                "tokens no longer listed by the eMSP removed"
            );
        }
        removed += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_uids_are_their_own_alias_and_long_ones_get_a_stable_20_char_alias() {
        assert_eq!(alias("04AABBCC"), "04AABBCC");
        let long = "NL-EMS-C12345678-ABCDEFGHIJKL";
        let a = alias(long);
        assert_eq!(a.len(), MAX_ID_TAG, "{a}");
        assert_eq!(a, alias(&long.to_ascii_lowercase()), "case-insensitive");
        assert_ne!(a, alias("NL-EMS-C12345678-ABCDEFGHIJKM"));
        assert!(a.starts_with("NLEMSC~"));
    }

    fn stored(peer: &str, at: Option<i64>, reconciled: Option<i64>) -> StoredToken {
        use chrono::TimeZone;
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        let token: Token = serde_json::from_value(serde_json::json!({
            "country_code": "NL", "party_id": "EMS", "uid": "U1", "type": "RFID",
            "contract_id": "NL-EMS-C1", "issuer": "x", "valid": true, "whitelist": "ALLOWED",
            "last_updated": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        StoredToken {
            token,
            peer: peer.into(),
            stored_at: at.map(t),
            reconciled: reconciled.map(t),
        }
    }

    #[test]
    fn a_full_reconcile_is_due_first_and_then_every_interval() {
        use chrono::TimeZone;
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        let last = TokenPull {
            peer: "p".into(),
            last_pull: t(5000),
            last_full: t(1000),
        };
        assert!(reconcile_due(None, 0, t(0)));
        assert!(reconcile_due(None, 3600, t(0)));
        assert!(!reconcile_due(Some(&last), 0, t(1_000_000)));
        assert!(!reconcile_due(Some(&last), 3600, t(4599)));
        assert!(reconcile_due(Some(&last), 3600, t(4600)));
    }

    #[test]
    fn a_reconcile_removes_only_the_peers_unlisted_tokens_stored_before_it_began() {
        use chrono::TimeZone;
        let run = Utc.timestamp_opt(1000, 0).unwrap();
        assert!(unlisted(&stored("hub", Some(900), None), "hub", run));
        assert!(
            unlisted(&stored("hub", None, None), "hub", run),
            "old record"
        );
        assert!(unlisted(&stored("hub", Some(500), Some(400)), "hub", run));
        assert!(
            !unlisted(&stored("hub", Some(1001), Some(1000)), "hub", run),
            "listed"
        );
        assert!(
            !unlisted(&stored("hub", Some(1200), None), "hub", run),
            "pushed meanwhile"
        );
        assert!(
            !unlisted(&stored("other", Some(900), None), "hub", run),
            "other peer"
        );
    }
}
