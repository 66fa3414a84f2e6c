//! OCPI peers on the bridge's side: where they are persisted ([`PeerRecords`], the
//! [`ocpi::PeerStore`] over the store), the stable ids of the peers the configuration asks us
//! to register with, and token A ([`TokenA`] records): every token A registers one party.
//!
//! A token A is valid when it is an operator-issued one ([`issue_token_a`]) that no peer used
//! yet, or the configured `ocpi.token_a` when no peer used *it* yet. Using one (a peer's
//! credentials POST succeeded) stores who used it; from then on it answers HTTP 401. Checks read
//! the store (a handful of records), so a token issued by the CLI against a stopped daemon is
//! valid at the next start, and one issued through the admin API at once.

use std::collections::HashMap;

use ocpi::{OcpiError, Peer, PeerId};
use state::Store;

use crate::config::Settings;
use crate::records::{TokenA, TokenAOrigin};

/// Peer persistence over the store (opaque JSON owned by the `ocpi` crate).
#[derive(Debug, Clone)]
pub struct PeerRecords(pub Store);

fn server_error(e: impl std::fmt::Display) -> OcpiError {
    OcpiError::Server(e.to_string())
}

impl ocpi::PeerStore for PeerRecords {
    fn load_peers(&self) -> Result<Vec<Peer>, OcpiError> {
        let mut out = Vec::new();
        for (id, value) in self.0.peers().map_err(server_error)? {
            match serde_json::from_value::<Peer>(value) {
                Ok(p) => out.push(p),
                Err(e) => tracing::error!(peer = %id, error = %e, "unreadable peer record skipped"),
            }
        }
        Ok(out)
    }

    fn save_peer(&self, peer: &Peer) -> Result<(), OcpiError> {
        let value = serde_json::to_value(peer).map_err(server_error)?;
        self.0
            .put_peer(peer.id.as_str(), &value)
            .map_err(server_error)?;
        self.0.flush_blocking().map_err(server_error)
    }

    fn delete_peer(&self, id: &PeerId) -> Result<(), OcpiError> {
        self.0.delete_peer(id.as_str()).map_err(server_error)?;
        self.0.flush_blocking().map_err(server_error)
    }
}

/// A configured peer's stable id: the host (and port) of its versions URL, made unique.
pub fn configured_peer_ids(settings: &Settings) -> Vec<(PeerId, String)> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    settings
        .ocpi
        .peers
        .iter()
        .map(|p| {
            let host = p
                .versions_url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("peer")
                .to_owned();
            let n = seen.entry(host.clone()).or_insert(0);
            *n += 1;
            let id = if *n == 1 { host } else { format!("{host}#{n}") };
            (PeerId(id), p.versions_url.clone())
        })
        .collect()
}

/// Constant-time string equality (tokens).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The stored token A record for `candidate`, if any.
fn token_a_record(store: &Store, candidate: &str) -> Result<Option<TokenA>, state::Error> {
    Ok(store
        .records::<TokenA>()?
        .into_iter()
        .find(|r| same(&r.token, candidate)))
}

/// Whether `candidate` is a token A that may still register: an operator-issued one not used
/// yet, or `configured` (`ocpi.token_a`) when no peer used it yet.
pub fn token_a_valid(
    store: &Store,
    configured: Option<&str>,
    candidate: &str,
) -> Result<bool, state::Error> {
    Ok(match token_a_record(store, candidate)? {
        Some(r) => r.used_by.is_none(),
        None => configured.is_some_and(|c| same(c, candidate)),
    })
}

/// Marks `candidate` used by `peer` (durable before returning). `Ok(false)` when it is not a
/// valid token A (unknown, or used already). Callers serialise registrations.
pub fn use_token_a(
    store: &Store,
    configured: Option<&str>,
    candidate: &str,
    peer: &str,
) -> Result<bool, state::Error> {
    let now = chrono::Utc::now();
    let used = match token_a_record(store, candidate)? {
        Some(r) if r.used_by.is_some() => return Ok(false),
        Some(r) => TokenA {
            used_by: Some(peer.to_owned()),
            used_at: Some(now),
            ..r
        },
        None if configured.is_some_and(|c| same(c, candidate)) => TokenA {
            id: uuid::Uuid::new_v4().to_string(),
            token: candidate.to_owned(),
            origin: TokenAOrigin::Config,
            issued_at: now,
            used_by: Some(peer.to_owned()),
            used_at: Some(now),
        },
        None => return Ok(false),
    };
    store.update(|tx| tx.put_record(&used))?;
    store.flush_blocking()?;
    Ok(true)
}

/// Issues a fresh random token A (64 printable characters) for the next peer, stored (durable
/// before returning) and single use.
pub fn issue_token_a(store: &Store) -> Result<String, state::Error> {
    let token = ocpi::types::AuthToken::generate().expose().to_owned();
    let record = TokenA {
        id: uuid::Uuid::new_v4().to_string(),
        token: token.clone(),
        origin: TokenAOrigin::Operator,
        issued_at: chrono::Utc::now(),
        used_by: None,
        used_at: None,
    };
    store.update(|tx| tx.put_record(&record))?;
    store.flush_blocking()?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> Store {
        Store::open(&state::Settings {
            path: dir.join("db"),
            cache_bytes: 8 << 20,
        })
        .unwrap()
    }

    #[test]
    fn the_configured_token_a_registers_one_peer() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let cfg = Some("configured-token-a");
        assert!(token_a_valid(&store, cfg, "configured-token-a").unwrap());
        assert!(!token_a_valid(&store, cfg, "something-else").unwrap());
        assert!(!token_a_valid(&store, None, "configured-token-a").unwrap());
        assert!(use_token_a(&store, cfg, "configured-token-a", "DEEMS").unwrap());
        assert!(!token_a_valid(&store, cfg, "configured-token-a").unwrap());
        assert!(!use_token_a(&store, cfg, "configured-token-a", "DEOTH").unwrap());
        let used = store.records::<TokenA>().unwrap();
        assert_eq!(used.len(), 1);
        assert_eq!(used[0].used_by.as_deref(), Some("DEEMS"));
        assert_eq!(used[0].origin, TokenAOrigin::Config);
    }

    #[test]
    fn an_issued_token_a_is_random_stored_and_single_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let a = issue_token_a(&store).unwrap();
        let b = issue_token_a(&store).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(token_a_valid(&store, None, &a).unwrap());
        assert!(use_token_a(&store, None, &a, "DEEMS").unwrap());
        assert!(!token_a_valid(&store, None, &a).unwrap());
        assert!(!use_token_a(&store, None, &a, "DEEMS").unwrap());
        // The other one is untouched; an unknown one never registers.
        assert!(token_a_valid(&store, None, &b).unwrap());
        assert!(!use_token_a(&store, None, "never-issued", "X").unwrap());
        // `export` masks them (and record keys are uuids, never the token).
        for r in store.records::<TokenA>().unwrap() {
            assert!(!r.id.contains(&r.token));
            let mut v = serde_json::to_value(&r).unwrap();
            state::redact(&mut v);
            assert!(!v.to_string().contains(&r.token), "{v}");
        }
    }
}
