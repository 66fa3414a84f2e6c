//! The push outbox: what the bridge still has to deliver to each OCPI peer.
//!
//! The payload `P` of an [`OutboxEntry`] is the caller's own serde type (the bridge stores its
//! `Push` enum): this crate only orders, merges, parks and counts entries.
//!
//! Invariants:
//! - an entry is written in the same sled transaction as the state change that caused it
//!   ([`Txn::push_outbox`]) and leaves the outbox only when the peer accepted it
//!   ([`Store::outbox_ack`]) or an operator dropped it;
//! - entries of one peer are delivered in `seq` order (keys sort by peer, then seq);
//! - an entry with a coalesce key is merged into an older entry with the same key for the same
//!   peer that the pusher has not picked up yet: the older entry keeps its place in the queue
//!   (so it cannot overtake or fall behind entries it depends on) and takes the newer content.
//!   A lagging peer thus gets one push per EVSE with the newest status, not every intermediate
//!   one. Once the pusher picks an entry ([`Store::outbox_pick`]) nothing merges into it any
//!   more, so a change made while it is in flight queues a new entry and is not lost;
//! - a refused entry is parked, not retried forever, and stays visible until an operator
//!   retries or drops it.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{self, idx, tree};
use crate::{Error, Store, TxError, Txn, scan, schema_version};

/// One push waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry<P> {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Position in the peer's queue (assigned when pushed).
    pub seq: u64,
    /// The peer it goes to.
    pub peer: String,
    /// What to push (the caller's type).
    pub push: P,
    /// Coalesce key: a newer entry with the same key supersedes this one.
    pub coalesce: Option<String>,
    /// Routing: the receiving party (`OCPI-to-country-code`, `OCPI-to-party-id`), if not the
    /// peer's own.
    pub to_party: Option<(String, String)>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Last failure, for operators.
    pub last_error: Option<String>,
    /// Why it was parked (refused by the peer), if parked.
    pub parked_reason: Option<String>,
}

impl<P> OutboxEntry<P> {
    /// A new entry for `peer` (seq is assigned when pushed).
    pub fn new(peer: &str, push: P) -> Self {
        OutboxEntry {
            v: crate::SCHEMA_VERSION,
            seq: 0,
            peer: peer.to_owned(),
            push,
            coalesce: None,
            to_party: None,
            created_at: Utc::now(),
            attempts: 0,
            last_error: None,
            parked_reason: None,
        }
    }

    /// Sets the coalesce key.
    pub fn coalescing(mut self, key: Option<String>) -> Self {
        self.coalesce = key;
        self
    }

    /// Sets the receiving party.
    pub fn routed_to(mut self, party: Option<(String, String)>) -> Self {
        self.to_party = party;
        self
    }
}

/// The fields of an entry this crate needs, whatever its payload.
#[derive(Deserialize)]
struct Header {
    peer: String,
    created_at: DateTime<Utc>,
}

/// The routing field of an entry, whatever its payload.
#[derive(Deserialize)]
struct Route {
    #[serde(default)]
    to_party: Option<(String, String)>,
}

/// Depth and age of one peer's queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxStats {
    /// The peer.
    pub peer: String,
    /// Entries waiting.
    pub depth: u64,
    /// Creation time of the oldest waiting entry.
    pub oldest: Option<DateTime<Utc>>,
    /// Entries parked.
    pub parked: u64,
}

impl Store {
    /// The first `limit` entries waiting for `peer`, in delivery order.
    pub fn outbox_head<P: DeserializeOwned>(
        &self,
        peer: &str,
        limit: usize,
    ) -> Result<Vec<OutboxEntry<P>>, Error> {
        self.tree(idx::OUTBOX)
            .scan_prefix(keys::station_prefix(peer))
            .values()
            .take(limit)
            .map(|v| crate::decode(tree::OUTBOX, &v?))
            .collect()
    }

    /// The first entry waiting for `peer` whose receiving party (`to_party`) is not `held`, in
    /// delivery order. Entries passed over stay where they are, so each party's own entries
    /// keep their order and go out once it is no longer held.
    pub fn outbox_first_unheld<P: DeserializeOwned>(
        &self,
        peer: &str,
        held: impl Fn(&(String, String)) -> bool,
    ) -> Result<Option<OutboxEntry<P>>, Error> {
        for v in self
            .tree(idx::OUTBOX)
            .scan_prefix(keys::station_prefix(peer))
            .values()
        {
            let v = v?;
            let route: Route = crate::decode(tree::OUTBOX, &v)?;
            if route.to_party.as_ref().is_some_and(&held) {
                continue;
            }
            return Ok(Some(crate::decode(tree::OUTBOX, &v)?));
        }
        Ok(None)
    }

    /// Up to `limit` entries waiting for `peer`, in delivery order, passing over those whose
    /// receiving party is `held` and those `known` (by seq) to the caller without decoding them:
    /// how a pusher that keeps several entries in flight tops up its window (an entry whose
    /// transaction committed after a later one is found by the next call).
    pub fn outbox_unheld<P: DeserializeOwned>(
        &self,
        peer: &str,
        held: impl Fn(&(String, String)) -> bool,
        known: impl Fn(u64) -> bool,
        limit: usize,
    ) -> Result<Vec<OutboxEntry<P>>, Error> {
        let prefix = keys::station_prefix(peer);
        let mut out = Vec::new();
        for item in self.tree(idx::OUTBOX).scan_prefix(&prefix) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let seq = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            if seq.is_some_and(&known) {
                continue;
            }
            let route: Route = crate::decode(tree::OUTBOX, &v)?;
            if route.to_party.as_ref().is_some_and(&held) {
                continue;
            }
            out.push(crate::decode(tree::OUTBOX, &v)?);
        }
        Ok(out)
    }

    /// Every entry waiting for `peer`, in delivery order.
    pub fn outbox<P: DeserializeOwned>(&self, peer: &str) -> Result<Vec<OutboxEntry<P>>, Error> {
        scan(
            self.tree(idx::OUTBOX),
            tree::OUTBOX,
            &keys::station_prefix(peer),
        )
    }

    /// Marks an entry as picked up for delivery and returns its current content: from now on
    /// nothing merges into it, so a change made while it is in flight queues a new entry.
    pub fn outbox_pick<P: Serialize + DeserializeOwned>(
        &self,
        peer: &str,
        seq: u64,
    ) -> Result<Option<OutboxEntry<P>>, Error> {
        self.update(|tx| {
            let e =
                tx.get::<OutboxEntry<P>>(idx::OUTBOX, tree::OUTBOX, &keys::outbox(peer, seq))?;
            if let Some(e) = &e {
                tx.release_coalesce(&e.peer, e.seq, e.coalesce.as_deref())?;
            }
            Ok(e)
        })
    }

    /// Removes a delivered entry. Call [`Store::flush`] afterwards before relying on it.
    pub fn outbox_ack(&self, peer: &str, seq: u64) -> Result<(), Error> {
        self.update(|tx| tx.remove_outbox(peer, seq).map(|_| ()))
    }

    /// Records a failed attempt (the entry stays queued).
    pub fn outbox_failed(&self, peer: &str, seq: u64, error: &str) -> Result<(), Error> {
        self.update(|tx| {
            let key = keys::outbox(peer, seq);
            if let Some(mut e) = tx.get::<serde_json::Value>(idx::OUTBOX, tree::OUTBOX, &key)? {
                let attempts = e["attempts"].as_u64().unwrap_or(0).saturating_add(1);
                e["attempts"] = attempts.into();
                e["last_error"] = error.into();
                tx.put(idx::OUTBOX, tree::OUTBOX, key, &e)?;
            }
            Ok(())
        })
    }

    /// Moves an entry the peer refused to the parked list.
    pub fn outbox_park(&self, peer: &str, seq: u64, reason: &str) -> Result<(), Error> {
        self.update(|tx| {
            if let Some(mut e) = tx.remove_outbox(peer, seq)? {
                let attempts = e["attempts"].as_u64().unwrap_or(0).saturating_add(1);
                e["attempts"] = attempts.into();
                e["parked_reason"] = reason.into();
                tx.put(
                    idx::OUTBOX_PARKED,
                    tree::OUTBOX_PARKED,
                    keys::outbox(peer, seq),
                    &e,
                )?;
            }
            Ok(())
        })
    }

    /// Parked entries of every peer.
    pub fn outbox_parked<P: DeserializeOwned>(&self) -> Result<Vec<OutboxEntry<P>>, Error> {
        scan(self.tree(idx::OUTBOX_PARKED), tree::OUTBOX_PARKED, b"")
    }

    /// Puts a parked entry back at the end of its peer's queue; returns false if there is none.
    pub fn outbox_retry_parked<P: Serialize + DeserializeOwned>(
        &self,
        peer: &str,
        seq: u64,
    ) -> Result<bool, Error> {
        self.update(|tx| {
            let key = keys::outbox(peer, seq);
            let Some(mut e) =
                tx.get::<OutboxEntry<P>>(idx::OUTBOX_PARKED, tree::OUTBOX_PARKED, &key)?
            else {
                return Ok(false);
            };
            tx.trees[idx::OUTBOX_PARKED].remove(key)?;
            e.parked_reason = None;
            e.coalesce = None;
            tx.push_outbox(e)?;
            Ok(true)
        })
    }

    /// Drops a parked entry for good; returns it, or `None` if there is none.
    pub fn outbox_drop_parked<P: DeserializeOwned>(
        &self,
        peer: &str,
        seq: u64,
    ) -> Result<Option<OutboxEntry<P>>, Error> {
        self.update(|tx| {
            let key = keys::outbox(peer, seq);
            let e = tx.get::<OutboxEntry<P>>(idx::OUTBOX_PARKED, tree::OUTBOX_PARKED, &key)?;
            tx.trees[idx::OUTBOX_PARKED].remove(key)?;
            Ok(e)
        })
    }

    /// Depth, oldest entry and parked count of every peer that has entries, plus `peers`.
    pub fn outbox_stats(&self, peers: &[String]) -> Result<Vec<OutboxStats>, Error> {
        let empty = |peer: &str| OutboxStats {
            peer: peer.to_owned(),
            depth: 0,
            oldest: None,
            parked: 0,
        };
        let mut stats: std::collections::BTreeMap<String, OutboxStats> =
            peers.iter().map(|p| (p.clone(), empty(p))).collect();
        for e in scan::<Header>(self.tree(idx::OUTBOX), tree::OUTBOX, b"")? {
            let s = stats
                .entry(e.peer.clone())
                .or_insert_with(|| empty(&e.peer));
            s.depth += 1;
            s.oldest = Some(s.oldest.map_or(e.created_at, |o| o.min(e.created_at)));
        }
        for e in scan::<Header>(self.tree(idx::OUTBOX_PARKED), tree::OUTBOX_PARKED, b"")? {
            if let Some(s) = stats.get_mut(&e.peer) {
                s.parked += 1;
            }
        }
        Ok(stats.into_values().collect())
    }

    /// Removes everything still queued or parked for a peer.
    pub(crate) fn drop_outbox(&self, peer: &str) -> Result<(), Error> {
        let prefix = keys::station_prefix(peer);
        for i in [idx::OUTBOX, idx::OUTBOX_PARKED, idx::OUTBOX_COALESCE] {
            for k in self.tree(i).scan_prefix(&prefix).keys() {
                self.tree(i).remove(k?)?;
            }
        }
        Ok(())
    }
}

impl Txn<'_> {
    /// Queues a push for `entry.peer` and returns its seq. With a coalesce key, an older entry
    /// with the same key that the pusher has not picked up yet takes the new content in place
    /// (and its seq is returned) instead.
    pub fn push_outbox<P: Serialize + DeserializeOwned>(
        &self,
        mut entry: OutboxEntry<P>,
    ) -> Result<u64, TxError> {
        if let Some(key) = &entry.coalesce {
            let ckey = keys::coalesce(&entry.peer, key);
            let pointer = self.trees[idx::OUTBOX_COALESCE].get(&ckey)?;
            if let Some(seq) = pointer.and_then(|p| <[u8; 8]>::try_from(p.as_ref()).ok()) {
                let seq = u64::from_be_bytes(seq);
                let okey = keys::outbox(&entry.peer, seq);
                if let Some(old) = self.get::<OutboxEntry<P>>(idx::OUTBOX, tree::OUTBOX, &okey)? {
                    entry.seq = seq;
                    entry.created_at = old.created_at;
                    entry.attempts = old.attempts;
                    entry.last_error = old.last_error;
                    self.put(idx::OUTBOX, tree::OUTBOX, okey, &entry)?;
                    return Ok(seq);
                }
            }
            let seq = self.trees[idx::OUTBOX].generate_id()?;
            self.trees[idx::OUTBOX_COALESCE].insert(ckey, &seq.to_be_bytes())?;
            entry.seq = seq;
        } else {
            entry.seq = self.trees[idx::OUTBOX].generate_id()?;
        }
        let seq = entry.seq;
        self.put(
            idx::OUTBOX,
            tree::OUTBOX,
            keys::outbox(&entry.peer, seq),
            &entry,
        )?;
        Ok(seq)
    }

    /// Forgets the coalesce pointer of an entry, so that later pushes with its key queue anew.
    fn release_coalesce(&self, peer: &str, seq: u64, key: Option<&str>) -> Result<(), TxError> {
        if let Some(c) = key {
            let ckey = keys::coalesce(peer, c);
            if self.trees[idx::OUTBOX_COALESCE].get(&ckey)?.as_deref()
                == Some(&seq.to_be_bytes()[..])
            {
                self.trees[idx::OUTBOX_COALESCE].remove(ckey)?;
            }
        }
        Ok(())
    }

    /// Removes a queued entry (and its coalesce pointer if it is the latest for its key);
    /// returns it as JSON.
    fn remove_outbox(&self, peer: &str, seq: u64) -> Result<Option<serde_json::Value>, TxError> {
        let key = keys::outbox(peer, seq);
        let Some(e) = self.get::<serde_json::Value>(idx::OUTBOX, tree::OUTBOX, &key)? else {
            return Ok(None);
        };
        self.trees[idx::OUTBOX].remove(key)?;
        self.release_coalesce(peer, seq, e["coalesce"].as_str())?;
        Ok(Some(e))
    }
}
