//! # Durable state on sled
//!
//! The only crate that touches sled. It stores stations, connector statuses, transactions and
//! their meter samples (see [`model`]) and offers:
//! - [`Store::update`]: one atomic multi-tree sled transaction through a typed [`Txn`] view, so
//!   that a state change and everything derived from it land together (the closure may run more
//!   than once: keep it free of side effects);
//! - [`Store::flush`]: group commit. A transaction message must be durable before the station
//!   gets its answer, but an fsync per message would serialise all stations. Callers that need
//!   durability await `flush()`; concurrent callers share one fsync.
//! - typed reads for the admin API and, later, OCPI.
//!
//! Invariants: a 1.6 transaction id handed out is never handed out again (the counter lives in
//! the same sled transaction as the record that uses it, and that record is flushed before the
//! id reaches the station).

pub mod model;
pub mod outbox;

mod keys;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

pub use model::{
    Connector, EvseState, MeterSample, SCHEMA_VERSION, SignedData, Station, Transaction,
    TransactionStatus,
};

pub use outbox::{OutboxEntry, OutboxStats};

/// A stored document (tokens, sessions, CDRs, …): JSON with its creation sequence.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Doc {
    /// Creation order within its kind (stable list order for paginated GETs).
    pub seq: u64,
    /// When it was first stored.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The document.
    pub value: serde_json::Value,
}

fn doc_key(kind: &str, id: &str) -> Vec<u8> {
    let mut k = keys::station_prefix(kind);
    k.extend_from_slice(id.as_bytes());
    k
}

use keys::{idx, tree};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed (I/O, corruption, …).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("corrupt record in tree {tree}: {reason}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// What failed.
        reason: String,
    },
    /// The 1.6 transaction id space (int32) is exhausted.
    #[error("1.6 transaction ids exhausted")]
    IdsExhausted,
    /// The update closure refused the change.
    #[error("rejected: {0}")]
    Rejected(String),
}

/// What an update closure returns on failure; build it with `?` on [`Txn`] methods or
/// [`reject`].
pub type TxError = ConflictableTransactionError<Error>;

/// Aborts an update with a reason.
pub fn reject(reason: impl Into<String>) -> TxError {
    ConflictableTransactionError::Abort(Error::Rejected(reason.into()))
}

/// Settings of the store (`[state]` in the daemon's configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// sled directory.
    pub path: PathBuf,
    /// sled page cache size in bytes (sled's own default is 1 GiB, far too much for a small box).
    pub cache_bytes: u64,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Tickets handed to `flush()` callers.
    flush_requested: AtomicU64,
    /// Highest ticket known to be durable.
    flush_done: AtomicU64,
    /// One fsync at a time; the holder flushes for everyone who asked before it started.
    flush_lock: tokio::sync::Mutex<()>,
    /// Set when the directory was found corrupt at start-up and moved aside.
    recovered_from: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("trees", &tree::ALL)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store. A directory sled reports as corrupt is moved aside to
    /// `{path}.corrupt-{unix time}` and a fresh store is started, so the daemon comes back up:
    /// live connector state is re-derived from the stations; [`Store::recovered_from`] tells.
    pub fn open(settings: &Settings) -> Result<Store, Error> {
        match Self::open_dir(settings) {
            Ok(store) => Ok(store),
            Err(Error::Sled(sled::Error::Corruption { .. })) => {
                let aside = PathBuf::from(format!(
                    "{}.corrupt-{}",
                    settings.path.display(),
                    chrono::Utc::now().timestamp()
                ));
                tracing::error!(path = %settings.path.display(), aside = %aside.display(),
                    "state directory is corrupt; moving it aside and starting empty");
                std::fs::rename(&settings.path, &aside)
                    .map_err(|e| Error::Sled(sled::Error::Io(e)))?;
                let mut store = Self::open_dir(settings)?;
                if let Some(inner) = Arc::get_mut(&mut store.inner) {
                    inner.recovered_from = Some(aside);
                }
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }

    fn open_dir(settings: &Settings) -> Result<Store, Error> {
        let db = sled::Config::new()
            .path(&settings.path)
            .cache_capacity(settings.cache_bytes)
            .flush_every_ms(Some(500))
            .open()?;
        let trees = tree::ALL
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                trees,
                flush_requested: AtomicU64::new(0),
                flush_done: AtomicU64::new(0),
                flush_lock: tokio::sync::Mutex::new(()),
                recovered_from: None,
            }),
        })
    }

    /// Where a corrupt directory was moved at start-up, if that happened.
    pub fn recovered_from(&self) -> Option<&Path> {
        self.inner.recovered_from.as_deref()
    }

    /// Runs `f` as one atomic sled transaction over all trees. `f` may run several times
    /// (optimistic concurrency), so it must not have side effects outside the [`Txn`].
    pub fn update<R>(&self, f: impl Fn(&Txn<'_>) -> Result<R, TxError>) -> Result<R, Error> {
        let trees: &[sled::Tree] = &self.inner.trees;
        trees
            .transaction(|view: &Vec<TransactionalTree>| f(&Txn { trees: view }))
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => Error::Sled(e),
            })
    }

    /// Makes every write that completed before this call durable (group commit: concurrent
    /// callers share one fsync).
    pub async fn flush(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let ticket = inner.flush_requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = inner.flush_lock.lock().await;
        if inner.flush_done.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Everything written before any ticket up to `target` was issued is covered by this
        // fsync, because those writes completed before their ticket was taken.
        let target = inner.flush_requested.load(Ordering::SeqCst);
        inner.db.flush_async().await?;
        inner.flush_done.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }

    /// A blocking flush, for rare synchronous callers (peer registration records).
    pub fn flush_blocking(&self) -> Result<(), Error> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// Size of the database on disk, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, Error> {
        Ok(self.inner.db.size_on_disk()?)
    }

    fn tree(&self, i: usize) -> &sled::Tree {
        &self.inner.trees[i]
    }

    /// One station.
    pub fn station(&self, id: &str) -> Result<Option<Station>, Error> {
        get(self.tree(idx::STATIONS), tree::STATIONS, id.as_bytes())
    }

    /// All stations, ordered by id.
    pub fn stations(&self) -> Result<Vec<Station>, Error> {
        scan(self.tree(idx::STATIONS), tree::STATIONS, b"")
    }

    /// A station's connectors, ordered by EVSE then connector.
    pub fn connectors(&self, station: &str) -> Result<Vec<Connector>, Error> {
        scan(
            self.tree(idx::CONNECTORS),
            tree::CONNECTORS,
            &keys::station_prefix(station),
        )
    }

    /// One transaction by our id.
    pub fn transaction(&self, id: &str) -> Result<Option<Transaction>, Error> {
        get(
            self.tree(idx::TRANSACTIONS),
            tree::TRANSACTIONS,
            id.as_bytes(),
        )
    }

    /// One transaction by the station's OCPP transaction id.
    pub fn transaction_by_ocpp(
        &self,
        station: &str,
        ocpp_tx_id: &str,
    ) -> Result<Option<Transaction>, Error> {
        match self
            .tree(idx::TX_BY_OCPP)
            .get(keys::tx_by_ocpp(station, ocpp_tx_id))?
        {
            Some(id) => self.transaction(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// All transactions, ordered by start time (then id).
    pub fn transactions(&self) -> Result<Vec<Transaction>, Error> {
        let mut all: Vec<Transaction> =
            scan(self.tree(idx::TRANSACTIONS), tree::TRANSACTIONS, b"")?;
        all.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        Ok(all)
    }

    /// Meter samples of a transaction in station-time order.
    pub fn samples(&self, tx_id: &str) -> Result<Vec<MeterSample>, Error> {
        scan(
            self.tree(idx::SAMPLES),
            tree::SAMPLES,
            &keys::sample_prefix(tx_id),
        )
    }

    /// Marks every station offline: at start-up no websocket is open, whatever the store says
    /// after a crash.
    pub fn mark_all_offline(&self, at: chrono::DateTime<chrono::Utc>) -> Result<(), Error> {
        for station in self.stations()? {
            if station.online {
                self.update(|tx| {
                    if let Some(mut s) = tx.station(&station.id)? {
                        s.online = false;
                        s.disconnected_at = Some(at);
                        tx.put_station(&s)?;
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// The first `limit` entries waiting for `peer`, in delivery order.
    pub fn outbox_head(&self, peer: &str, limit: usize) -> Result<Vec<OutboxEntry>, Error> {
        self.tree(idx::OUTBOX)
            .scan_prefix(keys::station_prefix(peer))
            .values()
            .take(limit)
            .map(|v| decode(tree::OUTBOX, &v?))
            .collect()
    }

    /// Every entry waiting for `peer`, in delivery order.
    pub fn outbox(&self, peer: &str) -> Result<Vec<OutboxEntry>, Error> {
        scan(
            self.tree(idx::OUTBOX),
            tree::OUTBOX,
            &keys::station_prefix(peer),
        )
    }

    /// Marks an entry as picked up for delivery and returns its current content: from now on
    /// nothing merges into it, so a change made while it is in flight queues a new entry.
    pub fn outbox_pick(&self, peer: &str, seq: u64) -> Result<Option<OutboxEntry>, Error> {
        self.update(|tx| {
            let e = tx.get::<OutboxEntry>(idx::OUTBOX, tree::OUTBOX, &keys::outbox(peer, seq))?;
            if let Some(e) = &e {
                tx.release_coalesce(e)?;
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
            if let Some(mut e) = tx.get::<OutboxEntry>(idx::OUTBOX, tree::OUTBOX, &key)? {
                e.attempts = e.attempts.saturating_add(1);
                e.last_error = Some(error.to_owned());
                tx.put(idx::OUTBOX, tree::OUTBOX, key, &e)?;
            }
            Ok(())
        })
    }

    /// Moves an entry the peer refused to the parked list.
    pub fn outbox_park(&self, peer: &str, seq: u64, reason: &str) -> Result<(), Error> {
        self.update(|tx| {
            if let Some(mut e) = tx.remove_outbox(peer, seq)? {
                e.attempts = e.attempts.saturating_add(1);
                e.parked_reason = Some(reason.to_owned());
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
    pub fn outbox_parked(&self) -> Result<Vec<OutboxEntry>, Error> {
        scan(self.tree(idx::OUTBOX_PARKED), tree::OUTBOX_PARKED, b"")
    }

    /// Puts a parked entry back at the end of its peer's queue; returns false if there is none.
    pub fn outbox_retry_parked(&self, peer: &str, seq: u64) -> Result<bool, Error> {
        self.update(|tx| {
            let key = keys::outbox(peer, seq);
            let Some(mut e) =
                tx.get::<OutboxEntry>(idx::OUTBOX_PARKED, tree::OUTBOX_PARKED, &key)?
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
    pub fn outbox_drop_parked(&self, peer: &str, seq: u64) -> Result<Option<OutboxEntry>, Error> {
        self.update(|tx| {
            let key = keys::outbox(peer, seq);
            let e = tx.get::<OutboxEntry>(idx::OUTBOX_PARKED, tree::OUTBOX_PARKED, &key)?;
            tx.trees[idx::OUTBOX_PARKED].remove(key)?;
            Ok(e)
        })
    }

    /// Depth, oldest entry and parked count of every peer that has entries, plus `peers`.
    pub fn outbox_stats(&self, peers: &[String]) -> Result<Vec<OutboxStats>, Error> {
        let mut stats: std::collections::BTreeMap<String, OutboxStats> = peers
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    OutboxStats {
                        peer: p.clone(),
                        depth: 0,
                        oldest: None,
                        parked: 0,
                    },
                )
            })
            .collect();
        for e in scan::<OutboxEntry>(self.tree(idx::OUTBOX), tree::OUTBOX, b"")? {
            let s = stats.entry(e.peer.clone()).or_insert_with(|| OutboxStats {
                peer: e.peer.clone(),
                depth: 0,
                oldest: None,
                parked: 0,
            });
            s.depth += 1;
            s.oldest = Some(s.oldest.map_or(e.created_at, |o| o.min(e.created_at)));
        }
        for e in self.outbox_parked()? {
            if let Some(s) = stats.get_mut(&e.peer) {
                s.parked += 1;
            }
        }
        Ok(stats.into_values().collect())
    }

    /// Stores a peer record (opaque JSON owned by the OCPI layer).
    pub fn put_peer(&self, id: &str, peer: &serde_json::Value) -> Result<(), Error> {
        self.tree(idx::PEERS)
            .insert(id.as_bytes(), encode(tree::PEERS, peer)?)?;
        Ok(())
    }

    /// All peer records.
    pub fn peers(&self) -> Result<Vec<(String, serde_json::Value)>, Error> {
        self.tree(idx::PEERS)
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode(tree::PEERS, &v)?,
                ))
            })
            .collect()
    }

    /// Removes a peer and everything still queued or parked for it.
    pub fn delete_peer(&self, id: &str) -> Result<(), Error> {
        self.tree(idx::PEERS).remove(id.as_bytes())?;
        let prefix = keys::station_prefix(id);
        for i in [idx::OUTBOX, idx::OUTBOX_PARKED, idx::OUTBOX_COALESCE] {
            for k in self.tree(i).scan_prefix(&prefix).keys() {
                self.tree(i).remove(k?)?;
            }
        }
        Ok(())
    }

    /// One document.
    pub fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>, Error> {
        get(self.tree(idx::DOCS), tree::DOCS, &doc_key(kind, id))
    }

    /// All documents of a kind in creation order.
    pub fn docs(&self, kind: &str) -> Result<Vec<Doc>, Error> {
        let mut out = Vec::new();
        for id in self
            .tree(idx::DOC_ORDER)
            .scan_prefix(keys::station_prefix(kind))
            .values()
        {
            let id = id?;
            if let Some(d) = self.doc(kind, &String::from_utf8_lossy(&id))? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Entries of an index under a prefix: `(key suffix after the prefix, value)`.
    pub fn index_scan(&self, index: &str, prefix: &str) -> Result<Vec<(String, String)>, Error> {
        let mut full = keys::station_prefix(index);
        full.extend_from_slice(prefix.as_bytes());
        let skip = index.len() + 1 + prefix.len();
        self.tree(idx::INDEXES)
            .scan_prefix(&full)
            .map(|item| {
                let (k, v) = item?;
                Ok((
                    String::from_utf8_lossy(&k[skip..]).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .collect()
    }

    /// The 2.0.1 seqNos applied for a transaction, ascending.
    pub fn events_seen(&self, station: &str, ocpp_tx_id: &str) -> Result<Vec<u32>, Error> {
        let mut prefix = keys::tx_by_ocpp(station, ocpp_tx_id);
        prefix.push(0);
        let n = prefix.len();
        self.tree(idx::TX_EVENTS)
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k?;
                let b: [u8; 4] = k[n..].try_into().map_err(|_| Error::Corrupt {
                    tree: tree::TX_EVENTS,
                    reason: "seq key".into(),
                })?;
                Ok(u32::from_be_bytes(b))
            })
            .collect()
    }

    /// The published EVSE states of a station, by EVSE number.
    pub fn evse_states(&self, station: &str) -> Result<Vec<EvseState>, Error> {
        scan(
            self.tree(idx::EVSE_STATES),
            tree::EVSE_STATES,
            &keys::station_prefix(station),
        )
    }

    /// A meta value (small bookkeeping such as the configuration fingerprint).
    pub fn meta(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .tree(idx::META)
            .get(format!("m:{key}"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Sets a meta value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), Error> {
        self.tree(idx::META)
            .insert(format!("m:{key}"), value.as_bytes())?;
        Ok(())
    }

    /// The EVSE uid of a station's EVSE, if one was allocated.
    pub fn evse_uid(&self, station: &str, evse_id: u32) -> Result<Option<String>, Error> {
        Ok(self
            .tree(idx::EVSE_UIDS)
            .get(keys::connector(station, evse_id, 0))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The station and EVSE number behind an EVSE uid (case-insensitive).
    pub fn evse_by_uid(&self, uid: &str) -> Result<Option<(String, u32)>, Error> {
        let Some(v) = self
            .tree(idx::EVSE_BY_UID)
            .get(uid.to_ascii_lowercase().as_bytes())?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&v);
        let (station, evse) = text.rsplit_once('\0').ok_or_else(|| Error::Corrupt {
            tree: tree::EVSE_BY_UID,
            reason: "missing separator".into(),
        })?;
        let evse = evse.parse().map_err(|_| Error::Corrupt {
            tree: tree::EVSE_BY_UID,
            reason: "evse id".into(),
        })?;
        Ok(Some((station.to_owned(), evse)))
    }

    /// `index[key]` outside a transaction.
    pub fn index_get(&self, index: &str, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .tree(idx::INDEXES)
            .get(doc_key(index, key))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Every record as JSON lines `{"tree", "key", "value"}` (backup and debugging).
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<u64, Error> {
        let mut n = 0;
        for (name, t) in tree::ALL.iter().zip(self.inner.trees.iter()) {
            for item in t.iter() {
                let (k, v) = item?;
                let value: serde_json::Value = serde_json::from_slice(&v)
                    .unwrap_or_else(|_| serde_json::Value::String(hex(&v)));
                let line = serde_json::json!({ "tree": name, "key": hex(&k), "value": value });
                writeln!(out, "{line}").map_err(|e| Error::Sled(sled::Error::Io(e)))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(tree: &'static str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

fn get<T: DeserializeOwned>(
    t: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, Error> {
    t.get(key)?.map(|v| decode(name, &v)).transpose()
}

fn scan<T: DeserializeOwned>(
    t: &sled::Tree,
    name: &'static str,
    prefix: &[u8],
) -> Result<Vec<T>, Error> {
    t.scan_prefix(prefix)
        .values()
        .map(|v| decode(name, &v?))
        .collect()
}

/// Key of an idempotent 1.6 StartTransaction: a station that retries the same
/// StartTransaction (same connector, idTag, meterStart and timestamp) gets the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start16Key<'a> {
    /// Station identity.
    pub station: &'a str,
    /// 1.6 connectorId.
    pub connector_id: u32,
    /// idTag.
    pub id_tag: &'a str,
    /// meterStart (Wh).
    pub meter_start: i64,
    /// Station timestamp, normalised to RFC 3339 in UTC.
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

impl Start16Key<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut k = keys::station_prefix(self.station);
        k.extend_from_slice(&self.connector_id.to_be_bytes());
        k.extend_from_slice(self.id_tag.to_ascii_lowercase().as_bytes());
        k.push(0);
        k.extend_from_slice(&self.meter_start.to_be_bytes());
        k.extend_from_slice(&self.timestamp.timestamp_millis().to_be_bytes());
        k
    }
}

/// Typed view of all trees inside one [`Store::update`] transaction.
pub struct Txn<'a> {
    trees: &'a [TransactionalTree],
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn").finish_non_exhaustive()
    }
}

fn abort(e: Error) -> TxError {
    ConflictableTransactionError::Abort(e)
}

impl Txn<'_> {
    fn get<T: DeserializeOwned>(
        &self,
        i: usize,
        name: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, TxError> {
        match self.trees[i].get(key)? {
            Some(v) => decode(name, &v).map(Some).map_err(abort),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(
        &self,
        i: usize,
        name: &'static str,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), TxError> {
        self.trees[i].insert(key, encode(name, value).map_err(abort)?)?;
        Ok(())
    }

    /// One station.
    pub fn station(&self, id: &str) -> Result<Option<Station>, TxError> {
        self.get(idx::STATIONS, tree::STATIONS, id.as_bytes())
    }

    /// Stores a station.
    pub fn put_station(&self, s: &Station) -> Result<(), TxError> {
        self.put(idx::STATIONS, tree::STATIONS, s.id.as_bytes().to_vec(), s)
    }

    /// One connector.
    pub fn connector(
        &self,
        station: &str,
        evse_id: u32,
        connector_id: u32,
    ) -> Result<Option<Connector>, TxError> {
        self.get(
            idx::CONNECTORS,
            tree::CONNECTORS,
            &keys::connector(station, evse_id, connector_id),
        )
    }

    /// Stores a connector.
    pub fn put_connector(&self, c: &Connector) -> Result<(), TxError> {
        let key = keys::connector(&c.station_id, c.evse_id, c.connector_id);
        self.put(idx::CONNECTORS, tree::CONNECTORS, key, c)
    }

    /// One transaction by our id.
    pub fn transaction(&self, id: &str) -> Result<Option<Transaction>, TxError> {
        self.get(idx::TRANSACTIONS, tree::TRANSACTIONS, id.as_bytes())
    }

    /// One transaction by the station's OCPP transaction id.
    pub fn transaction_by_ocpp(
        &self,
        station: &str,
        ocpp_tx_id: &str,
    ) -> Result<Option<Transaction>, TxError> {
        match self.trees[idx::TX_BY_OCPP].get(keys::tx_by_ocpp(station, ocpp_tx_id))? {
            Some(id) => self.transaction(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Stores a transaction and indexes it by its OCPP id.
    pub fn put_transaction(&self, t: &Transaction) -> Result<(), TxError> {
        self.put(
            idx::TRANSACTIONS,
            tree::TRANSACTIONS,
            t.id.as_bytes().to_vec(),
            t,
        )?;
        self.trees[idx::TX_BY_OCPP].insert(
            keys::tx_by_ocpp(&t.station_id, &t.ocpp_transaction_id),
            t.id.as_bytes(),
        )?;
        Ok(())
    }

    /// The id a 1.6 StartTransaction with this key already got, if it was seen before.
    pub fn start16_id(&self, key: &Start16Key<'_>) -> Result<Option<i32>, TxError> {
        Ok(self.trees[idx::TX_STARTS_16]
            .get(key.bytes())?
            .and_then(|v| {
                let b: [u8; 4] = v.as_ref().try_into().ok()?;
                Some(i32::from_be_bytes(b))
            }))
    }

    /// Remembers the id given to a 1.6 StartTransaction.
    pub fn remember_start16(&self, key: &Start16Key<'_>, id: i32) -> Result<(), TxError> {
        self.trees[idx::TX_STARTS_16].insert(key.bytes(), &id.to_be_bytes())?;
        Ok(())
    }

    /// Allocates the next 1.6 transaction id (1, 2, 3, …; never reused).
    pub fn next_tx16_id(&self) -> Result<i32, TxError> {
        let meta = &self.trees[idx::META];
        let current = match meta.get(keys::TX16_COUNTER)? {
            Some(v) => {
                let b: [u8; 4] = v.as_ref().try_into().map_err(|_| {
                    abort(Error::Corrupt {
                        tree: tree::META,
                        reason: "tx16 counter".into(),
                    })
                })?;
                i32::from_be_bytes(b)
            }
            None => 0,
        };
        let next = current
            .checked_add(1)
            .ok_or_else(|| abort(Error::IdsExhausted))?;
        meta.insert(keys::TX16_COUNTER, &next.to_be_bytes())?;
        Ok(next)
    }

    /// Records that a 2.0.1 TransactionEvent `seq_no` was applied; returns false when it had
    /// been applied before (a retry), in which case nothing must change.
    pub fn first_time_event(
        &self,
        station: &str,
        ocpp_tx_id: &str,
        seq_no: u32,
    ) -> Result<bool, TxError> {
        let key = keys::tx_event(station, ocpp_tx_id, seq_no);
        Ok(self.trees[idx::TX_EVENTS].insert(key, &[])?.is_none())
    }

    /// Queues a push for `entry.peer` and returns its seq. With a coalesce key, an older entry
    /// with the same key that the pusher has not picked up yet takes the new content in place
    /// (and its seq is returned) instead.
    pub fn push_outbox(&self, mut entry: OutboxEntry) -> Result<u64, TxError> {
        if let Some(key) = &entry.coalesce {
            let ckey = keys::coalesce(&entry.peer, key);
            let pointer = self.trees[idx::OUTBOX_COALESCE].get(&ckey)?;
            if let Some(seq) = pointer.and_then(|p| <[u8; 8]>::try_from(p.as_ref()).ok()) {
                let seq = u64::from_be_bytes(seq);
                let okey = keys::outbox(&entry.peer, seq);
                if let Some(old) = self.get::<OutboxEntry>(idx::OUTBOX, tree::OUTBOX, &okey)? {
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
    fn release_coalesce(&self, entry: &OutboxEntry) -> Result<(), TxError> {
        if let Some(c) = &entry.coalesce {
            let ckey = keys::coalesce(&entry.peer, c);
            if self.trees[idx::OUTBOX_COALESCE].get(&ckey)?.as_deref()
                == Some(&entry.seq.to_be_bytes()[..])
            {
                self.trees[idx::OUTBOX_COALESCE].remove(ckey)?;
            }
        }
        Ok(())
    }

    /// Removes a queued entry (and its coalesce pointer if it is the latest for its key).
    fn remove_outbox(&self, peer: &str, seq: u64) -> Result<Option<OutboxEntry>, TxError> {
        let key = keys::outbox(peer, seq);
        let Some(e) = self.get::<OutboxEntry>(idx::OUTBOX, tree::OUTBOX, &key)? else {
            return Ok(None);
        };
        self.trees[idx::OUTBOX].remove(key)?;
        self.release_coalesce(&e)?;
        Ok(Some(e))
    }

    /// The EVSE uid of a station's EVSE, allocating a stable one on first sight. The uid is
    /// `{station}-{evse}` when that fits OCPI's 36 characters and is free, else a generated
    /// one; either way it is stored and never derived again (nor parsed back).
    pub fn evse_uid(&self, station: &str, evse_id: u32) -> Result<String, TxError> {
        let key = keys::connector(station, evse_id, 0);
        if let Some(v) = self.trees[idx::EVSE_UIDS].get(&key)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let mut uid = format!("{station}-{evse_id}");
        let taken = |u: &str| -> Result<bool, TxError> {
            Ok(self.trees[idx::EVSE_BY_UID]
                .get(u.to_ascii_lowercase().as_bytes())?
                .is_some())
        };
        if uid.len() > 36 || !uid.bytes().all(|b| b.is_ascii_graphic()) || taken(&uid)? {
            loop {
                uid = format!("EVSE-{}", self.trees[idx::EVSE_UIDS].generate_id()?);
                if !taken(&uid)? {
                    break;
                }
            }
        }
        self.trees[idx::EVSE_UIDS].insert(key, uid.as_bytes())?;
        self.trees[idx::EVSE_BY_UID].insert(
            uid.to_ascii_lowercase().as_bytes(),
            format!("{station}\0{evse_id}").as_bytes(),
        )?;
        Ok(uid)
    }

    /// One document.
    pub fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>, TxError> {
        self.get(idx::DOCS, tree::DOCS, &doc_key(kind, id))
    }

    /// Stores a document, keeping its creation sequence if it existed. Returns the stored doc.
    pub fn put_doc(&self, kind: &str, id: &str, value: serde_json::Value) -> Result<Doc, TxError> {
        let key = doc_key(kind, id);
        let doc = match self.get::<Doc>(idx::DOCS, tree::DOCS, &key)? {
            Some(old) => Doc { value, ..old },
            None => {
                let seq = self.trees[idx::DOC_ORDER].generate_id()?;
                let mut order = keys::station_prefix(kind);
                order.extend_from_slice(&seq.to_be_bytes());
                self.trees[idx::DOC_ORDER].insert(order, id.as_bytes())?;
                Doc {
                    seq,
                    created_at: chrono::Utc::now(),
                    value,
                }
            }
        };
        self.put(idx::DOCS, tree::DOCS, key, &doc)?;
        Ok(doc)
    }

    /// Sets `index[key] = value`.
    pub fn index_put(&self, index: &str, key: &str, value: &str) -> Result<(), TxError> {
        self.trees[idx::INDEXES].insert(doc_key(index, key), value.as_bytes())?;
        Ok(())
    }

    /// `index[key]`.
    pub fn index_get(&self, index: &str, key: &str) -> Result<Option<String>, TxError> {
        Ok(self.trees[idx::INDEXES]
            .get(doc_key(index, key))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Removes `index[key]`.
    pub fn index_remove(&self, index: &str, key: &str) -> Result<(), TxError> {
        self.trees[idx::INDEXES].remove(doc_key(index, key))?;
        Ok(())
    }

    /// The published state of one EVSE.
    pub fn evse_state(&self, station: &str, evse_id: u32) -> Result<Option<EvseState>, TxError> {
        self.get(
            idx::EVSE_STATES,
            tree::EVSE_STATES,
            &keys::connector(station, evse_id, 0),
        )
    }

    /// Stores the published state of one EVSE.
    pub fn put_evse_state(&self, e: &EvseState) -> Result<(), TxError> {
        let key = keys::connector(&e.station_id, e.evse_id, 0);
        self.put(idx::EVSE_STATES, tree::EVSE_STATES, key, e)
    }

    /// Adds a meter sample to a transaction; returns false when the same sample (same time,
    /// measurand, phase, location, context and format) was stored before — a retried message.
    pub fn add_sample(&self, tx_id: &str, sample: &MeterSample) -> Result<bool, TxError> {
        let identity = keys::fnv1a(&[
            &sample.measurand,
            sample.phase.as_deref().unwrap_or(""),
            sample.location.as_deref().unwrap_or(""),
            sample.context.as_deref().unwrap_or(""),
            sample.format.as_deref().unwrap_or(""),
        ]);
        let key = keys::sample(tx_id, sample.timestamp.timestamp_millis(), identity);
        let bytes = encode(tree::SAMPLES, sample).map_err(abort)?;
        Ok(self.trees[idx::SAMPLES].insert(key, bytes)?.is_none())
    }
}

#[cfg(test)]
mod tests;
