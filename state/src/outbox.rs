//! The push outbox: what the bridge still has to deliver to each OCPI peer.
//!
//! Invariants:
//! - an entry is written in the same sled transaction as the state change that caused it
//!   ([`crate::Txn::push_outbox`]) and leaves the outbox only when the peer accepted it
//!   ([`crate::Store::outbox_ack`]) or an operator dropped it;
//! - entries of one peer are delivered in `seq` order (keys sort by peer, then seq);
//! - an entry with a coalesce key is merged into an older entry with the same key for the same
//!   peer that the pusher has not picked up yet: the older entry keeps its place in the queue
//!   (so it cannot overtake or fall behind entries it depends on) and takes the newer content.
//!   A lagging peer thus gets one push per EVSE with the newest status, not every intermediate
//!   one. Once the pusher picks an entry ([`crate::Store::outbox_pick`]) nothing merges into it
//!   any more, so a change made while it is in flight queues a new entry and is not lost;
//! - an entry may carry `render` instead of a body: the pusher builds the body from the current
//!   state when it sends it (Locations, EVSEs), which is how the newest status wins;
//! - a refused entry (peer answered OCPI 2xxx) is parked, not retried forever, and stays visible
//!   until an operator retries or drops it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One push waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Schema version.
    #[serde(default = "crate::model::schema_version")]
    pub v: u32,
    /// Position in the peer's queue (assigned when pushed).
    pub seq: u64,
    /// The peer it goes to.
    pub peer: String,
    /// HTTP method: `PUT`, `PATCH`, `POST`.
    pub method: String,
    /// OCPI module identifier whose endpoint the peer advertised (`locations`, `tariffs`, …).
    pub module: String,
    /// Path below the module URL, e.g. `/NL/BRG/LOC1/EVSE-1`.
    pub path: String,
    /// JSON body (`null` when `render` is set).
    pub body: serde_json::Value,
    /// What to render at send time instead of a fixed body (e.g. `location:LOC1`).
    #[serde(default)]
    pub render: Option<String>,
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

impl OutboxEntry {
    /// A new entry for `peer` (seq is assigned when pushed).
    pub fn new(
        peer: &str,
        method: &str,
        module: &str,
        path: impl Into<String>,
        body: serde_json::Value,
    ) -> Self {
        OutboxEntry {
            v: crate::SCHEMA_VERSION,
            seq: 0,
            peer: peer.to_owned(),
            method: method.to_owned(),
            module: module.to_owned(),
            path: path.into(),
            body,
            render: None,
            coalesce: None,
            to_party: None,
            created_at: Utc::now(),
            attempts: 0,
            last_error: None,
            parked_reason: None,
        }
    }

    /// An entry whose body is rendered at send time from `render`.
    pub fn rendered(peer: &str, method: &str, module: &str, render: impl Into<String>) -> Self {
        let render = render.into();
        let mut e = OutboxEntry::new(peer, method, module, String::new(), serde_json::Value::Null);
        e.coalesce = Some(format!("{method} {render}"));
        e.render = Some(render);
        e
    }

    /// Sets the coalesce key.
    pub fn coalescing(mut self, key: impl Into<String>) -> Self {
        self.coalesce = Some(key.into());
        self
    }
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
