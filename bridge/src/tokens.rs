//! eMSP tokens as the bridge stores them, and the 1.6 idTag alias table.
//!
//! A token's identity is (country_code, party_id, uid, type); uids compare case-insensitively.
//! Each token remembers the peer it came from (pushed, pulled or returned by real-time
//! authorization): Sessions and CDRs of that token go to that peer.
//!
//! OCPP 1.6 idTags hold at most 20 characters while OCPI uids hold 36: a longer uid gets a
//! deterministic alias (same uid → same alias, so a START_SESSION and the station's later
//! Authorize agree) kept in an explicit table and resolved back before any lookup.

use ocpi::types::Token;
use state::{Store, TxError, Txn};

use crate::records::{IDTAG_ALIAS, StoredToken, TOKEN_BY_UID};

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
    let stored = StoredToken {
        token: token.clone(),
        peer: peer.to_owned(),
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
}
