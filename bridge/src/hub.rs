//! Parties behind a hub: the ClientInfo each hub pushes us (`hubclientinfo`), and which
//! parties' pushes are **held**.
//!
//! A push routed to a party (`OCPI-to-*` = the token's eMSP or the commanding party) is held —
//! left in its place in the peer's outbox, neither sent nor parked — while
//! - the hub's last ClientInfo for that party is not CONNECTED (OFFLINE, PLANNED, SUSPENDED or a
//!   status we do not know), or
//! - the hub refused a push to it as unknown receiver / not connected (OCPI 4001 / 4003) less
//!   than [`PROBE_AFTER`] ago (after that one push is tried again, so a hub that never sends
//!   ClientInfo still gets the party's pushes once it is back).
//!
//! A ClientInfo PUT with CONNECTED clears both and wakes the peer's delivery task: the held
//! pushes go out by themselves, in their order. Pushes to other parties, and pushes without a
//! party (Locations, Tariffs to the hub), never wait behind held ones ([`holds`] is consulted per
//! entry by the pusher). State is kept per (peer, party) in [`HubClient`] records and cached in
//! memory; every change is written to the store first.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use ocpi::types::ClientInfo;
use ocpi::{PushError, RetryReason};
use state::Store;

use crate::outbox::PushQueue;
use crate::records::HubClient;

/// How long a party the hub called unreachable (4001/4003) is held before one push probes it.
pub const PROBE_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// Whether pushes to this party are held at `now` (see the module docs).
pub fn holds(c: &HubClient, now: DateTime<Utc>) -> bool {
    if c.info.as_ref().is_some_and(|i| !i.connected()) {
        return true;
    }
    c.unreachable
        .as_ref()
        .is_some_and(|(since, _)| now.signed_duration_since(*since) < PROBE_AFTER)
}

/// Whether a failed push says that its receiving party cannot be reached through the hub:
/// OCPI 4001 (unknown receiver) or 4003 (receiver not connected).
pub fn party_unreachable(e: &PushError) -> bool {
    matches!(
        e,
        PushError::Refused {
            status_code: Some(4001 | 4003),
            ..
        } | PushError::Retryable(RetryReason::Ocpi {
            code: 4001 | 4003,
            ..
        })
    )
}

/// The parties behind every hub; cheap to clone.
#[derive(Debug, Clone)]
pub struct HubClients {
    store: Store,
    push: PushQueue,
    cache: Arc<RwLock<HashMap<String, HubClient>>>,
}

impl HubClients {
    /// Loads every stored party.
    pub fn load(store: Store, push: PushQueue) -> Result<Self, state::Error> {
        let cache = store
            .records::<HubClient>()?
            .into_iter()
            .map(|c| (state::Record::id(&c), c))
            .collect();
        Ok(HubClients {
            store,
            push,
            cache: Arc::new(RwLock::new(cache)),
        })
    }

    /// Whether pushes of `peer` to `party` are held now.
    pub fn held(&self, peer: &str, party: &(String, String)) -> bool {
        let now = Utc::now();
        self.read()
            .get(&HubClient::key(peer, &party.0, &party.1))
            .is_some_and(|c| holds(c, now))
    }

    /// Whether a party is being probed: the hub called it unreachable more than
    /// [`PROBE_AFTER`] ago and nothing has reached it since. Its pushes go one at a time until
    /// one is accepted (or it is held again).
    pub fn probing(&self, peer: &str, party: &(String, String)) -> bool {
        let now = Utc::now();
        self.read()
            .get(&HubClient::key(peer, &party.0, &party.1))
            .is_some_and(|c| c.unreachable.is_some() && !holds(c, now))
    }

    /// The ClientInfo `peer` last PUT for a party.
    pub fn info(&self, peer: &str, cc: &str, pid: &str) -> Option<ClientInfo> {
        self.read()
            .get(&HubClient::key(peer, cc, pid))
            .and_then(|c| c.info.clone())
    }

    /// Every known party behind every hub (for operators).
    pub fn all(&self) -> Vec<HubClient> {
        let mut v: Vec<HubClient> = self.read().values().cloned().collect();
        v.sort_by_key(state::Record::id);
        v
    }

    /// Stores a ClientInfo from `peer`. CONNECTED also forgets an unreachable mark and wakes
    /// the peer's delivery task, so held pushes go out.
    pub async fn put_info(&self, peer: &str, info: ClientInfo) -> Result<(), state::Error> {
        let connected = info.connected();
        let cc = info.country_code.as_str().to_owned();
        let pid = info.party_id.as_str().to_owned();
        let status = info.status.to_string();
        let was_held = self.held(peer, &(cc.clone(), pid.clone()));
        self.change(peer, &cc, &pid, |c| {
            c.info = Some(info.clone());
            if connected {
                c.unreachable = None;
            }
        })?;
        self.store.flush().await?;
        tracing::info!(peer, party = %format!("{cc}/{pid}"), %status, "hub client info");
        if connected && was_held {
            tracing::info!(peer, party = %format!("{cc}/{pid}"), "party connected again; releasing its held pushes");
            self.push.wake([peer]);
        }
        Ok(())
    }

    /// The hub refused a push to `party` as unreachable: hold its pushes (see [`PROBE_AFTER`]).
    pub fn mark_unreachable(&self, peer: &str, party: &(String, String), reason: &str) {
        let now = Utc::now();
        let result = self.change(peer, &party.0, &party.1, |c| {
            c.unreachable = Some((now, reason.to_owned()));
        });
        if let Err(e) = result {
            tracing::error!(peer, error = %e, "cannot record an unreachable party");
        }
    }

    /// A push to `party` was accepted: forget an unreachable mark (no-op without one).
    pub fn mark_reachable(&self, peer: &str, party: &(String, String)) {
        let key = HubClient::key(peer, &party.0, &party.1);
        if self
            .read()
            .get(&key)
            .is_none_or(|c| c.unreachable.is_none())
        {
            return;
        }
        if let Err(e) = self.change(peer, &party.0, &party.1, |c| c.unreachable = None) {
            tracing::error!(peer, error = %e, "cannot clear an unreachable party");
        }
    }

    /// Applies `f` to the party's record (created when absent): store first, then the cache.
    fn change(
        &self,
        peer: &str,
        cc: &str,
        pid: &str,
        f: impl Fn(&mut HubClient),
    ) -> Result<(), state::Error> {
        let key = HubClient::key(peer, cc, pid);
        let mut c = self.read().get(&key).cloned().unwrap_or_else(|| HubClient {
            peer: peer.to_owned(),
            country_code: cc.to_ascii_uppercase(),
            party_id: pid.to_ascii_uppercase(),
            info: None,
            unreachable: None,
        });
        f(&mut c);
        self.store.update(|tx| tx.put_record(&c))?;
        self.write().insert(key, c);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, HubClient>> {
        // A poisoned lock only means a panic elsewhere while holding it; the map is consistent.
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, HubClient>> {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ocpi::types::ConnectionStatus;

    fn client(status: Option<&str>, unreachable_at: Option<i64>) -> HubClient {
        HubClient {
            peer: "hub".into(),
            country_code: "NL".into(),
            party_id: "EMA".into(),
            info: status.map(|s| {
                serde_json::from_value(serde_json::json!({
                    "country_code": "NL", "party_id": "EMA", "role": "EMSP", "status": s,
                    "last_updated": "2026-01-01T00:00:00Z"
                }))
                .unwrap()
            }),
            unreachable: unreachable_at
                .map(|t| (Utc.timestamp_opt(t, 0).unwrap(), "OCPI 4001".into())),
        }
    }

    #[test]
    fn a_party_is_held_while_not_connected_or_shortly_after_the_hub_called_it_unreachable() {
        let now = Utc.timestamp_opt(10_000, 0).unwrap();
        assert!(!holds(&client(None, None), now));
        assert!(!holds(&client(Some("CONNECTED"), None), now));
        for s in ["OFFLINE", "PLANNED", "SUSPENDED", "SOMETHING_NEW"] {
            assert!(holds(&client(Some(s), None), now), "{s}");
        }
        assert!(holds(&client(None, Some(10_000 - 60)), now));
        assert!(holds(&client(Some("CONNECTED"), Some(10_000 - 299)), now));
        assert!(!holds(&client(None, Some(10_000 - 300)), now), "probe due");
        let info = client(Some("CONNECTED"), None).info.unwrap();
        assert_eq!(info.status, ConnectionStatus::Connected);
    }

    #[test]
    fn only_unknown_receiver_and_not_connected_answers_hold_a_party() {
        let refused = |code| PushError::Refused {
            http_status: 200,
            status_code: Some(code),
            message: String::new(),
        };
        assert!(party_unreachable(&refused(4001)));
        assert!(party_unreachable(&PushError::Retryable(
            RetryReason::Ocpi {
                code: 4003,
                message: String::new()
            }
        )));
        assert!(!party_unreachable(&refused(2001)));
        assert!(!party_unreachable(&PushError::Retryable(
            RetryReason::Ocpi {
                code: 4002,
                message: String::new()
            }
        )));
        assert!(!party_unreachable(&PushError::Retryable(
            RetryReason::Http(503)
        )));
    }

    #[tokio::test]
    async fn client_info_connected_releases_and_is_kept_per_peer_and_party() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&state::Settings {
            path: dir.path().join("db"),
            cache_bytes: 8 << 20,
        })
        .unwrap();
        let (push, mut wakes) = PushQueue::new();
        let hub = HubClients::load(store.clone(), push.clone()).unwrap();
        let party = ("NL".to_owned(), "EMA".to_owned());
        hub.mark_unreachable("hub", &party, "OCPI 4001");
        assert!(hub.held("hub", &party));
        assert!(!hub.held("other-hub", &party));
        assert!(!hub.held("hub", &("NL".to_owned(), "EMB".to_owned())));
        let offline = client(Some("OFFLINE"), None).info.unwrap();
        hub.put_info("hub", offline).await.unwrap();
        assert!(hub.held("hub", &party));
        // Survives a reload from the store.
        let reloaded = HubClients::load(store.clone(), push).unwrap();
        assert!(reloaded.held("hub", &party));
        let connected = client(Some("CONNECTED"), None).info.unwrap();
        reloaded.put_info("hub", connected).await.unwrap();
        assert!(!reloaded.held("hub", &party));
        assert!(matches!(wakes.try_recv(), Ok(crate::outbox::Wake::Peer(p)) if p.0 == "hub"));
        assert_eq!(
            reloaded.info("hub", "nl", "ema").map(|i| i.status),
            Some(ConnectionStatus::Connected)
        );
    }
}
