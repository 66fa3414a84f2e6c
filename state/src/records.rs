//! Typed documents and string indexes: how callers store their own record kinds.
//!
//! A caller declares a record kind once by implementing [`Record`] (its kind name and its id)
//! and reads and writes it with [`Store::record`], [`Store::records`], [`Txn::record`] and
//! [`Txn::put_record`]; each record keeps the sequence number and time of its first write, so
//! lists come back in creation order ([`Stored`]). Lookups by something other than the id go
//! through named [`Index`]es (string key → string value), declared as constants next to the
//! record kinds that use them. Persistent counters ([`Txn::next_counter`]) live in the same
//! index tree.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{self, idx, tree};
use crate::{Error, Store, TxError, Txn, get};

/// A record kind the caller stores.
pub trait Record: Serialize + DeserializeOwned {
    /// The kind's name: unique per type, the first part of every key (never change it: it is
    /// on disk).
    const KIND: &'static str;
    /// The record's id within its kind.
    fn id(&self) -> String;
}

/// A record with its creation sequence and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored<R> {
    /// Creation order within its kind (stable list order for paginated GETs).
    pub seq: u64,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// The record.
    pub value: R,
}

/// A named index: string key → string value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index(pub &'static str);

/// The index that holds persistent counters ([`Txn::next_counter`]).
const COUNTERS: Index = Index("command_counter");

fn doc_key(kind: &str, id: &str) -> Vec<u8> {
    let mut k = keys::station_prefix(kind);
    k.extend_from_slice(id.as_bytes());
    k
}

impl Store {
    /// One record with its creation data.
    pub fn stored<R: Record>(&self, id: &str) -> Result<Option<Stored<R>>, Error> {
        get(self.tree(idx::DOCS), tree::DOCS, &doc_key(R::KIND, id))
    }

    /// One record.
    pub fn record<R: Record>(&self, id: &str) -> Result<Option<R>, Error> {
        Ok(self.stored::<R>(id)?.map(|s| s.value))
    }

    /// All records of a kind with their creation data, in creation order.
    pub fn all_stored<R: Record>(&self) -> Result<Vec<Stored<R>>, Error> {
        let mut out = Vec::new();
        for id in self
            .tree(idx::DOC_ORDER)
            .scan_prefix(keys::station_prefix(R::KIND))
            .values()
        {
            if let Some(d) = self.stored::<R>(&String::from_utf8_lossy(&id?))? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// All records of a kind in creation order.
    pub fn records<R: Record>(&self) -> Result<Vec<R>, Error> {
        Ok(self
            .all_stored::<R>()?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    /// Up to `limit` records of a kind created after sequence `after` (from the first with
    /// `None`), in creation order: walks a kind one bounded batch at a time.
    pub fn records_after<R: Record>(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored<R>>, Error> {
        let prefix = keys::station_prefix(R::KIND);
        let mut start = prefix.clone();
        start.extend_from_slice(&after.map_or(0, |s| s.saturating_add(1)).to_be_bytes());
        let mut out = Vec::new();
        for item in self.tree(idx::DOC_ORDER).range(start..) {
            let (k, id) = item?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            if let Some(d) = self.stored::<R>(&String::from_utf8_lossy(&id))? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Up to `limit` of the newest records of a kind, newest first.
    pub fn records_newest<R: Record>(&self, limit: usize) -> Result<Vec<R>, Error> {
        let mut out = Vec::new();
        for id in self
            .tree(idx::DOC_ORDER)
            .scan_prefix(keys::station_prefix(R::KIND))
            .values()
            .rev()
            .take(limit)
        {
            if let Some(d) = self.record::<R>(&String::from_utf8_lossy(&id?))? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// How many records of a kind are stored.
    pub fn count<R: Record>(&self) -> usize {
        self.tree(idx::DOC_ORDER)
            .scan_prefix(keys::station_prefix(R::KIND))
            .count()
    }

    /// `index[key]`.
    pub fn index_get(&self, index: Index, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .tree(idx::INDEXES)
            .get(doc_key(index.0, key))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Entries of an index under a prefix: `(key suffix after the prefix, value)`.
    pub fn index_scan(&self, index: Index, prefix: &str) -> Result<Vec<(String, String)>, Error> {
        let mut full = keys::station_prefix(index.0);
        full.extend_from_slice(prefix.as_bytes());
        let skip = index.0.len() + 1 + prefix.len();
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
}

impl Txn<'_> {
    /// One record.
    pub fn record<R: Record>(&self, id: &str) -> Result<Option<R>, TxError> {
        Ok(self
            .get::<Stored<R>>(idx::DOCS, tree::DOCS, &doc_key(R::KIND, id))?
            .map(|s| s.value))
    }

    /// Stores a record, keeping its creation sequence if it existed.
    pub fn put_record<R: Record>(&self, record: &R) -> Result<(), TxError> {
        let id = record.id();
        let key = doc_key(R::KIND, &id);
        let (seq, created_at) =
            match self.get::<Stored<serde::de::IgnoredAny>>(idx::DOCS, tree::DOCS, &key)? {
                Some(old) => (old.seq, old.created_at),
                None => {
                    let seq = self.trees[idx::DOC_ORDER].generate_id()?;
                    let mut order = keys::station_prefix(R::KIND);
                    order.extend_from_slice(&seq.to_be_bytes());
                    self.trees[idx::DOC_ORDER].insert(order, id.as_bytes())?;
                    (seq, Utc::now())
                }
            };
        let stored = Stored {
            seq,
            created_at,
            value: record,
        };
        self.put(idx::DOCS, tree::DOCS, key, &stored)
    }

    /// Removes a record (and its place in the creation order); returns it, `None` if absent.
    pub fn remove_record<R: Record>(&self, id: &str) -> Result<Option<R>, TxError> {
        let key = doc_key(R::KIND, id);
        let Some(old) = self.get::<Stored<R>>(idx::DOCS, tree::DOCS, &key)? else {
            return Ok(None);
        };
        let mut order = keys::station_prefix(R::KIND);
        order.extend_from_slice(&old.seq.to_be_bytes());
        self.trees[idx::DOC_ORDER].remove(order)?;
        self.trees[idx::DOCS].remove(key)?;
        Ok(Some(old.value))
    }

    /// Sets `index[key] = value`.
    pub fn index_put(&self, index: Index, key: &str, value: &str) -> Result<(), TxError> {
        self.trees[idx::INDEXES].insert(doc_key(index.0, key), value.as_bytes())?;
        Ok(())
    }

    /// `index[key]`.
    pub fn index_get(&self, index: Index, key: &str) -> Result<Option<String>, TxError> {
        Ok(self.trees[idx::INDEXES]
            .get(doc_key(index.0, key))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Removes `index[key]`.
    pub fn index_remove(&self, index: Index, key: &str) -> Result<(), TxError> {
        self.trees[idx::INDEXES].remove(doc_key(index.0, key))?;
        Ok(())
    }

    /// The next value of the persistent positive `i32` counter `name` (1, 2, …, wrapping to 1
    /// after `i32::MAX - 1`).
    pub fn next_counter(&self, name: &str) -> Result<i32, TxError> {
        let current = self
            .index_get(COUNTERS, name)?
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0);
        let next = if (0..i32::MAX).contains(&current) {
            current + 1
        } else {
            1
        };
        self.index_put(COUNTERS, name, &next.to_string())?;
        Ok(next)
    }
}
