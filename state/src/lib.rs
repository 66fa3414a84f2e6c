//! # Durable state on sled
//!
//! The only crate that touches sled. It stores what stations said, what the bridge still has to
//! push, and the bridge's own records, and offers:
//! - [`Store::update`]: one atomic multi-tree sled transaction through a typed [`Txn`] view, so
//!   that a fact and everything derived from it (session, outbox entries) land together (the
//!   closure may run more than once: keep it free of side effects);
//! - [`Store::commit`]: group commit. A transaction message must be durable before the station
//!   gets its answer, but a sled transaction and a flush per message would serialise all
//!   stations. `commit` queues the update for the store's writer thread, which applies every
//!   queued update in one sled transaction, flushes once and answers each (`commit.rs`).
//! - [`Store::flush`]: makes earlier [`Store::update`]s durable; concurrent callers share one
//!   flush (for the less frequent writes that do not go through `commit`).
//! - typed reads for the bridge, the OCPI side and the admin API.
//!
//! ## Layout (by concern)
//! - [`stations`]: stations, connector statuses, published EVSE states, EVSE uids.
//! - [`transactions`]: transactions, meter samples, 1.6 id allocation, 2.0.1 event dedup.
//! - [`outbox`]: the per-peer push queue (payload type chosen by the caller).
//! - [`records`]: typed documents ([`Record`]) with creation order, and string indexes
//!   ([`Index`]): how the bridge stores sessions, CDRs, tokens, commands and reservations.
//! - [`listing`]: ids filed by time per scope ([`Listing`]), the index behind paginated GETs.
//! - [`uid`]: the safe alphabet of generated EVSE uids.
//! - [`peers`]: OCPI peer records (opaque JSON owned by the `ocpi` crate) and meta values.
//!
//! Invariants: a 1.6 transaction id handed out is never handed out again (the counter lives in
//! the same sled transaction as the record that uses it, and that record is flushed before the
//! id reaches the station).

mod commit;
pub mod listing;
pub mod outbox;
pub mod peers;
pub mod records;
pub mod stations;
pub mod transactions;
pub mod uid;

mod keys;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

pub use listing::{ListPage, Listing};
pub use outbox::{OutboxEntry, OutboxStats};
pub use records::{Index, Record, Stored};
pub use stations::{Connector, EvseState, Station};
pub use transactions::{MeterSample, SignedData, Start16Key, Transaction, TransactionStatus};

use keys::tree;

/// Schema version written into every record by this release.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// Errors of the store.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The queue of the group-commit writer ([`Store::commit`]).
    commits: std::sync::mpsc::Sender<Box<dyn commit::Job>>,
    /// Flushes of the group commit, and the updates they made durable.
    flushes: AtomicU64,
    batched: AtomicU64,
}

/// What the group-commit writer did since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Flushes, one per batch (one sled transaction).
    pub flushes: u64,
    /// Updates committed.
    pub updates: u64,
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
                Self::open_dir_noting(settings, Some(aside))
            }
            Err(e) => Err(e),
        }
    }

    fn open_dir(settings: &Settings) -> Result<Store, Error> {
        Self::open_dir_noting(settings, None)
    }

    fn open_dir_noting(
        settings: &Settings,
        recovered_from: Option<PathBuf>,
    ) -> Result<Store, Error> {
        let db = sled::Config::new()
            .path(&settings.path)
            .cache_capacity(settings.cache_bytes)
            .flush_every_ms(Some(500))
            .open()?;
        let trees = tree::ALL
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<_>, _>>()?;
        let (commits, queue) = std::sync::mpsc::channel();
        let inner = Arc::new(Inner {
            db,
            trees,
            flush_requested: AtomicU64::new(0),
            flush_done: AtomicU64::new(0),
            flush_lock: tokio::sync::Mutex::new(()),
            recovered_from,
            commits,
            flushes: AtomicU64::new(0),
            batched: AtomicU64::new(0),
        });
        commit::spawn(queue, Arc::downgrade(&inner)).map_err(|e| Error::Sled(e.into()))?;
        Ok(Store { inner })
    }

    /// Where a corrupt directory was moved at start-up, if that happened.
    pub fn recovered_from(&self) -> Option<&Path> {
        self.inner.recovered_from.as_deref()
    }

    /// Runs `f` as one atomic sled transaction over all trees. `f` may run several times
    /// (optimistic concurrency), so it must not have side effects outside the [`Txn`].
    /// Never read the [`Store`] (outside the `Txn`) inside `f`: sled would deadlock.
    pub fn update<R>(&self, f: impl Fn(&Txn<'_>) -> Result<R, TxError>) -> Result<R, Error> {
        let trees: &[sled::Tree] = &self.inner.trees;
        trees
            .transaction(|view: &Vec<TransactionalTree>| f(&Txn { trees: view }))
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => Error::Sled(e),
            })
    }

    /// Runs `f` as an atomic update, like [`Store::update`], and returns once it is durable:
    /// group commit. The updates of concurrent callers run in one sled transaction, in arrival
    /// order (each sees the writes of those before it), followed by one flush, on the store's
    /// writer thread (see `commit.rs`). An update that aborts writes nothing and gets its error;
    /// the others still commit. Like `update`, `f` may run more than once.
    pub async fn commit<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: Fn(&Txn<'_>) -> Result<R, TxError> + Send + 'static,
        R: Send + 'static,
    {
        let (job, answer) = commit::job(f);
        self.inner
            .commits
            .send(job)
            .map_err(|_| Error::Rejected("the store's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Rejected("the store's writer has stopped".into()))?
    }

    /// Flushes and updates of the group commit so far (metrics: updates per flush is how much
    /// one flush is shared).
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            updates: self.inner.batched.load(Ordering::Relaxed),
        }
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

    pub(crate) fn tree(&self, i: usize) -> &sled::Tree {
        &self.inner.trees[i]
    }

    /// Every record as JSON lines `{"tree", "key", "value"}` (backup and debugging).
    pub fn export(&self, out: &mut dyn std::io::Write, with_secrets: bool) -> Result<u64, Error> {
        let mut n = 0;
        for (name, t) in tree::ALL.iter().zip(self.inner.trees.iter()) {
            for item in t.iter() {
                let (k, v) = item?;
                let mut value: serde_json::Value = serde_json::from_slice(&v)
                    .unwrap_or_else(|_| serde_json::Value::String(hex(&v)));
                if !with_secrets {
                    redact(&mut value);
                }
                let line = serde_json::json!({ "tree": name, "key": hex(&k), "value": value });
                writeln!(out, "{line}").map_err(|e| Error::Sled(sled::Error::Io(e)))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Field names whose string values are credentials (peer tokens, passwords).
const SECRET_FIELDS: &[&str] = &["token", "token_in", "token_out", "token_a", "password"];

/// Masks every credential in an exported value (string values of [`SECRET_FIELDS`], at any
/// depth), keeping the last 4 characters so an operator can tell tokens apart.
pub fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if SECRET_FIELDS.contains(&k.as_str()) => {
                        let tail: String = s
                            .chars()
                            .rev()
                            .take(4)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        *s = if s.chars().count() > 8 {
                            format!("***{tail}")
                        } else {
                            "***".into()
                        };
                    }
                    other => redact(other),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

pub(crate) fn encode<T: Serialize>(tree: &'static str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

pub(crate) fn get<T: DeserializeOwned>(
    t: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, Error> {
    t.get(key)?.map(|v| decode(name, &v)).transpose()
}

pub(crate) fn scan<T: DeserializeOwned>(
    t: &sled::Tree,
    name: &'static str,
    prefix: &[u8],
) -> Result<Vec<T>, Error> {
    t.scan_prefix(prefix)
        .values()
        .map(|v| decode(name, &v?))
        .collect()
}

/// Typed view of all trees inside one [`Store::update`] transaction. Its methods live next to
/// the records they touch ([`stations`], [`transactions`], [`outbox`], [`records`]).
pub struct Txn<'a> {
    pub(crate) trees: &'a [TransactionalTree],
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn").finish_non_exhaustive()
    }
}

pub(crate) fn abort(e: Error) -> TxError {
    ConflictableTransactionError::Abort(e)
}

impl Txn<'_> {
    pub(crate) fn get<T: DeserializeOwned>(
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

    pub(crate) fn put<T: Serialize>(
        &self,
        i: usize,
        name: &'static str,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), TxError> {
        self.trees[i].insert(key, encode(name, value).map_err(abort)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
