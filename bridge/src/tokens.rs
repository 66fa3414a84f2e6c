//! eMSP tokens as the bridge stores them, and the 1.6 idTag alias table.
//!
//! A token's identity is (country_code, party_id, uid, type) with a missing type meaning RFID;
//! uids compare case-insensitively. Each token remembers the peer it came from (pushed, pulled
//! or returned by real-time authorization): Sessions and CDRs of that token go to that peer.
//!
//! OCPP 1.6 idTags hold at most 20 characters while OCPI uids hold 36: a longer uid gets a
//! deterministic alias (same uid → same alias, so a START_SESSION and the station's later
//! Authorize agree) kept in an explicit table and resolved back before any lookup.

use ocpi::types::Token;
use serde::{Deserialize, Serialize};
use state::{Store, TxError, Txn};

/// Document kind of stored tokens.
pub const KIND: &str = "token";
/// Index: `{UID}\0{token key}` → source peer.
const BY_UID: &str = "token_uid";
/// Index: `{ALIAS}` → uid.
const ALIAS: &str = "idtag_alias";

/// The longest 1.6 idTag.
pub const MAX_ID_TAG: usize = 20;

/// A stored token and the peer it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    /// The OCPI token.
    pub token: Token,
    /// Peer id it came from.
    pub peer: String,
}

/// The OCPI token type spelling (`RFID`, `APP_USER`, …).
pub fn type_str(t: &ocpi::types::TokenType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "RFID".to_owned())
}

/// Storage key of a token.
pub fn key(cc: &str, pid: &str, uid: &str, kind: &str) -> String {
    format!(
        "{}\0{}\0{}\0{}",
        cc.to_ascii_uppercase(),
        pid.to_ascii_uppercase(),
        uid.to_ascii_uppercase(),
        kind.to_ascii_uppercase()
    )
}

fn token_key(t: &Token) -> String {
    key(
        t.country_code.as_str(),
        t.party_id.as_str(),
        t.uid.as_str(),
        &type_str(&t.kind),
    )
}

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
    let key = token_key(token);
    let value = serde_json::to_value(StoredToken {
        token: token.clone(),
        peer: peer.to_owned(),
    })
    .map_err(|e| state::reject(e.to_string()))?;
    tx.put_doc(KIND, &key, value)?;
    tx.index_put(
        BY_UID,
        &format!("{}\0{key}", token.uid.as_str().to_ascii_uppercase()),
        peer,
    )?;
    remember_alias(tx, token.uid.as_str())
}

/// Records the alias of a uid (no-op for uids that fit a 1.6 idTag).
pub fn remember_alias(tx: &Txn<'_>, uid: &str) -> Result<(), TxError> {
    let a = alias(uid);
    if a != uid {
        tx.index_put(ALIAS, &a.to_ascii_uppercase(), uid)?;
    }
    Ok(())
}

/// The OCPI uid an idTag stands for (the alias resolved, else the idTag itself).
pub fn resolve_id_tag(store: &Store, id_tag: &str) -> Result<String, state::Error> {
    Ok(store
        .index_get(ALIAS, &id_tag.to_ascii_uppercase())?
        .unwrap_or_else(|| id_tag.to_owned()))
}

/// Every stored token with this uid (any owner, any type), case-insensitively.
pub fn find(store: &Store, uid: &str) -> Result<Vec<StoredToken>, state::Error> {
    let mut out = Vec::new();
    for (key, _) in store.index_scan(BY_UID, &format!("{}\0", uid.to_ascii_uppercase()))? {
        if let Some(doc) = store.doc(KIND, &key)?
            && let Ok(t) = serde_json::from_value::<StoredToken>(doc.value)
        {
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
    Ok(store
        .doc(KIND, &key(cc, pid, uid, kind))?
        .and_then(|d| serde_json::from_value(d.value).ok()))
}

/// How many tokens are stored.
pub fn count(store: &Store) -> Result<usize, state::Error> {
    Ok(store.docs(KIND)?.len())
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

    #[test]
    fn keys_ignore_case() {
        assert_eq!(
            key("nl", "ems", "abc", "RFID"),
            key("NL", "EMS", "ABC", "rfid")
        );
    }
}
