//! Time-ordered listings: the index behind paginated OCPI GETs.
//!
//! A [`Listing`] (declared by the caller next to its record kinds, like an [`crate::Index`])
//! files an id under one or more *scopes* (e.g. "the peer", "the peer and one of its parties")
//! at a time (its `last_updated`). [`Store::list_page`] reads one scope in time order, within an
//! optional `[from, to)` window, from an offset: a range scan over keys, so a page costs the same
//! with 100 or 100,000 ids in the listing (plus the offset skipped). Each scope keeps a count, so
//! the total of an unfiltered listing is one read; a window is counted by scanning its keys only.
//!
//! Keys (all in the `indexes` tree):
//! - `list:{name} \0 {scope} \0 {at: be64 µs since epoch} {id}` → empty: the entries;
//! - `list_of:{name} \0 {id}` → JSON [`Filed`]: where an id is filed (to move it on update);
//! - `list_count:{name} \0 {scope}` → be64 count.
//!
//! Scopes must not contain a 0 byte (it separates the scope from the time); [`Txn::list_put`]
//! refuses one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::keys::{idx, tree};
use crate::{Error, Store, TxError, Txn, reject};

/// A named listing of ids by time, per scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing(pub &'static str);

/// Where an id is filed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Filed {
    scopes: Vec<String>,
    at: u64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Ids in time order (then id order for equal times).
    pub ids: Vec<String>,
    /// How many ids the scope holds within the window (all pages).
    pub total: usize,
    /// How many index entries were read to answer (the page's cost): the offset skipped, the
    /// page, and the window when one is given (to count it); not the rest of the listing.
    pub scanned: usize,
    /// A cursor for the next page ([`Store::list_page_after`]), when another page follows.
    pub next: Option<String>,
}

fn micros(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_micros()).unwrap_or(0)
}

fn prefix(kind: &str, name: &str, rest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(kind.len() + name.len() + rest.len() + 2);
    k.extend_from_slice(kind.as_bytes());
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(rest.as_bytes());
    k
}

fn scope_prefix(listing: Listing, scope: &str) -> Vec<u8> {
    let mut k = prefix("list:", listing.0, scope);
    k.push(0);
    k
}

fn entry_key(listing: Listing, scope: &str, at: u64, id: &str) -> Vec<u8> {
    let mut k = scope_prefix(listing, scope);
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn filed_key(listing: Listing, id: &str) -> Vec<u8> {
    prefix("list_of:", listing.0, id)
}

fn count_key(listing: Listing, scope: &str) -> Vec<u8> {
    prefix("list_count:", listing.0, scope)
}

fn decode_count(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

impl Txn<'_> {
    /// Files `id` under `scopes` at `at`, moving it from wherever it was filed before (same
    /// listing). Idempotent.
    pub fn list_put(
        &self,
        listing: Listing,
        id: &str,
        scopes: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), TxError> {
        if let Some(bad) = scopes.iter().find(|s| s.contains('\0')) {
            return Err(reject(format!("listing scope {bad:?} contains a 0 byte")));
        }
        let filed = Filed {
            scopes: scopes.to_vec(),
            at: micros(at),
        };
        self.list_unfile(listing, id)?;
        let t = &self.trees[idx::INDEXES];
        for scope in &filed.scopes {
            t.insert(entry_key(listing, scope, filed.at, id), &[] as &[u8])?;
            let key = count_key(listing, scope);
            let n = decode_count(t.get(&key)?);
            t.insert(key, &n.saturating_add(1).to_be_bytes())?;
        }
        self.put(idx::INDEXES, tree::INDEXES, filed_key(listing, id), &filed)
    }

    /// Removes `id` from the listing (all its scopes). Returns whether it was filed.
    pub fn list_remove(&self, listing: Listing, id: &str) -> Result<bool, TxError> {
        let old = self.list_unfile(listing, id)?;
        if old {
            self.trees[idx::INDEXES].remove(filed_key(listing, id))?;
        }
        Ok(old)
    }

    fn list_unfile(&self, listing: Listing, id: &str) -> Result<bool, TxError> {
        let Some(old) = self.get::<Filed>(idx::INDEXES, tree::INDEXES, &filed_key(listing, id))?
        else {
            return Ok(false);
        };
        let t = &self.trees[idx::INDEXES];
        for scope in &old.scopes {
            if t.remove(entry_key(listing, scope, old.at, id))?.is_some() {
                let key = count_key(listing, scope);
                let n = decode_count(t.get(&key)?);
                t.insert(key, &n.saturating_sub(1).to_be_bytes())?;
            }
        }
        Ok(true)
    }
}

impl Store {
    /// Up to `limit` ids of `scope` with `from <= at < to`, skipping `offset`, in time order,
    /// and the total within the window.
    pub fn list_page(
        &self,
        listing: Listing,
        scope: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        offset: usize,
        limit: usize,
    ) -> Result<ListPage, Error> {
        self.list_page_after(listing, scope, from, to, None, offset, limit)
    }

    /// Like [`Store::list_page`], but when `after` (a [`ListPage::next`] cursor) is given the
    /// page starts right after the entry it names instead of at `offset`: an id that moved to
    /// the end while a client walks the pages (its object was updated) then shifts nothing,
    /// so no other id is skipped. A malformed cursor is [`Error::Rejected`].
    #[allow(clippy::too_many_arguments)]
    pub fn list_page_after(
        &self,
        listing: Listing,
        scope: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        after: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<ListPage, Error> {
        use std::ops::Bound;
        let t = self.tree(idx::INDEXES);
        let base = scope_prefix(listing, scope);
        let bound = |at: u64| {
            let mut k = base.clone();
            k.extend_from_slice(&at.to_be_bytes());
            k
        };
        let start = bound(from.map_or(0, micros));
        // The end of the scope: the prefix with its last byte (the 0 separator) raised to 1.
        let end = match to {
            Some(to) => bound(micros(to)),
            None => {
                let mut k = base.clone();
                if let Some(last) = k.last_mut() {
                    *last = 1;
                }
                k
            }
        };
        let (first, skip) = match after {
            Some(cursor) => {
                let (at, id) = cursor
                    .split_once('.')
                    .and_then(|(at, id)| Some((at.parse::<u64>().ok()?, id)))
                    .filter(|(_, id)| !id.is_empty())
                    .ok_or_else(|| Error::Rejected(format!("malformed cursor {cursor:?}")))?;
                let key = entry_key(listing, scope, at, id);
                // Never before the window's start.
                if key < start {
                    (Bound::Included(start.clone()), 0)
                } else {
                    (Bound::Excluded(key), 0)
                }
            }
            None => (Bound::Included(start.clone()), offset),
        };
        let id_at = base.len() + 8;
        let entry = |k: &[u8]| -> (u64, String) {
            let at = k
                .get(base.len()..id_at)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            (
                at,
                String::from_utf8_lossy(&k[id_at.min(k.len())..]).into_owned(),
            )
        };
        let mut ids = Vec::new();
        let mut last = None;
        let mut more = false;
        let mut scanned = 0usize;
        // A cursor at or past the window's end (or a window whose end is before its start):
        // an empty page, without asking sled for an inverted range.
        let empty = match &first {
            Bound::Included(k) | Bound::Excluded(k) => k >= &end,
            Bound::Unbounded => false,
        } || start > end;
        // One entry beyond the page tells whether another page follows.
        for item in t
            .range::<Vec<u8>, _>((first, Bound::Excluded(end.clone())))
            .filter(|_| !empty)
            .take(skip.saturating_add(limit).saturating_add(1))
        {
            let (k, _) = item?;
            scanned += 1;
            if scanned <= skip {
                continue;
            }
            if ids.len() == limit {
                more = true;
                break;
            }
            let (at, id) = entry(&k);
            ids.push(id.clone());
            last = Some((at, id));
        }
        let total = if from.is_none() && to.is_none() {
            usize::try_from(decode_count(t.get(count_key(listing, scope))?)).unwrap_or(usize::MAX)
        } else if start > end {
            0
        } else {
            let mut n = 0usize;
            for item in t.range(start..end) {
                item?;
                n += 1;
            }
            scanned += n;
            n
        };
        Ok(ListPage {
            ids,
            total,
            scanned,
            next: last.filter(|_| more).map(|(at, id)| format!("{at}.{id}")),
        })
    }

    /// Whether `id` is filed in the listing.
    pub fn list_contains(&self, listing: Listing, id: &str) -> Result<bool, Error> {
        Ok(self
            .tree(idx::INDEXES)
            .contains_key(filed_key(listing, id))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const L: Listing = Listing("things");

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .expect("time")
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&crate::Settings {
            path: dir.path().join("db"),
            cache_bytes: 1 << 20,
        })
        .expect("open");
        (dir, store)
    }

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    fn put(store: &Store, id: &str, scopes: &[&str], t: i64) {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        store
            .update(|tx| tx.list_put(L, id, &scopes, at(t)))
            .expect("put");
    }

    #[test]
    fn pages_are_in_time_order_per_scope_with_totals() {
        let (_d, s) = store();
        put(&s, "c", &["p", "p/A"], 30);
        put(&s, "a", &["p", "p/B"], 10);
        put(&s, "b", &["p", "p/A"], 20);
        put(&s, "x", &["q"], 15);
        // A scope that is a prefix of another scope's name does not see its entries.
        put(&s, "y", &["p2"], 15);
        let page = s.list_page(L, "p", None, None, 0, 10).expect("page");
        assert_eq!(page.ids, ["a", "b", "c"]);
        assert_eq!(page.total, 3);
        let page = s.list_page(L, "p/A", None, None, 0, 10).expect("page");
        assert_eq!((page.ids, page.total), (strings(&["b", "c"]), 2));
        let page = s.list_page(L, "p", None, None, 1, 1).expect("page");
        assert_eq!((page.ids, page.total), (strings(&["b"]), 3));
        let page = s
            .list_page(L, "p", Some(at(20)), Some(at(30)), 0, 10)
            .expect("page");
        assert_eq!((page.ids, page.total), (strings(&["b"]), 1));
        let page = s
            .list_page(L, "p", Some(at(11)), None, 0, 10)
            .expect("page");
        assert_eq!((page.ids, page.total), (strings(&["b", "c"]), 2));
    }

    #[test]
    fn an_update_moves_the_id_and_keeps_counts_right() {
        let (_d, s) = store();
        put(&s, "a", &["p", "p/A"], 10);
        put(&s, "b", &["p", "p/A"], 20);
        put(&s, "a", &["p", "p/A"], 40);
        put(&s, "a", &["p", "p/A"], 40);
        let page = s.list_page(L, "p", None, None, 0, 10).expect("page");
        assert_eq!((page.ids, page.total), (strings(&["b", "a"]), 2));
        // Moving to another party scope.
        put(&s, "b", &["p", "p/B"], 20);
        assert_eq!(s.list_page(L, "p/A", None, None, 0, 9).expect("p").total, 1);
        assert_eq!(s.list_page(L, "p/B", None, None, 0, 9).expect("p").total, 1);
        assert!(s.update(|tx| tx.list_remove(L, "a")).expect("remove"));
        assert!(!s.list_contains(L, "a").expect("contains"));
        let page = s.list_page(L, "p", None, None, 0, 10).expect("page");
        assert_eq!((page.ids, page.total), (strings(&["b"]), 1));
        assert_eq!(s.list_page(L, "p/A", None, None, 0, 9).expect("p").total, 0);
    }

    #[test]
    fn a_page_reads_the_same_with_a_hundred_or_twenty_thousand_stored() {
        let (_d, s) = store();
        let mut costs = Vec::new();
        let mut stored = 0usize;
        for target in [100usize, 20_000] {
            // Other peers' objects too: they must not cost anything either.
            for chunk in (stored..target).collect::<Vec<_>>().chunks(1000) {
                s.update(|tx| {
                    for i in chunk {
                        let scopes = vec![if i % 2 == 0 { "p" } else { "q" }.to_owned()];
                        tx.list_put(L, &format!("id{i:06}"), &scopes, at(*i as i64))?;
                    }
                    Ok(())
                })
                .expect("fill");
            }
            stored = target;
            let first = s.list_page(L, "p", None, None, 0, 10).expect("page");
            assert_eq!(first.total, target / 2);
            assert_eq!(first.ids.len(), 10);
            // A hub polling for what changed lately: a window at the end.
            let recent = s
                .list_page(L, "p", Some(at(target as i64 - 40)), None, 0, 10)
                .expect("page");
            assert_eq!(recent.total, 20);
            assert_eq!(recent.ids.first(), Some(&format!("id{:06}", target - 40)));
            costs.push((first.scanned, recent.scanned));
        }
        assert_eq!(costs[0], costs[1], "page cost (entries read) per size");
        assert_eq!(costs[0], (11, 31));
    }

    #[test]
    fn a_cursor_walk_skips_nothing_when_an_object_moves_to_the_end() {
        let (_d, s) = store();
        for i in 0..9 {
            put(&s, &format!("id{i}"), &["p"], i);
        }
        let first = s.list_page(L, "p", None, None, 0, 3).expect("page");
        assert_eq!(first.ids, strings(&["id0", "id1", "id2"]));
        let cursor = first.next.expect("more pages");
        // id1 is updated while the client walks: it moves to the end.
        put(&s, "id1", &["p"], 100);
        // By offset, id3 would now be skipped (everything shifted left by one).
        let by_offset = s.list_page(L, "p", None, None, 3, 3).expect("page");
        assert_eq!(by_offset.ids, strings(&["id4", "id5", "id6"]));
        let second = s
            .list_page_after(L, "p", None, None, Some(&cursor), 3, 3)
            .expect("page");
        assert_eq!(second.ids, strings(&["id3", "id4", "id5"]));
        let third = s
            .list_page_after(L, "p", None, None, second.next.as_deref(), 6, 3)
            .expect("page");
        assert_eq!(third.ids, strings(&["id6", "id7", "id8"]));
        let last = s
            .list_page_after(L, "p", None, None, third.next.as_deref(), 9, 3)
            .expect("page");
        // The moved object comes again at the end, and the walk ends there.
        assert_eq!(last.ids, strings(&["id1"]));
        assert_eq!(last.next, None);
        assert!(
            s.list_page_after(L, "p", None, None, Some("x"), 0, 3)
                .is_err()
        );
        // A cursor past a window's end, and a window that ends before it starts: empty pages.
        let page = s
            .list_page_after(L, "p", None, Some(at(5)), Some("9000000000000000.z"), 0, 3)
            .expect("page");
        assert!(page.ids.is_empty() && page.next.is_none());
        let page = s
            .list_page(L, "p", Some(at(8)), Some(at(2)), 0, 3)
            .expect("page");
        assert_eq!((page.ids.len(), page.total), (0, 0));
    }

    #[test]
    fn a_scope_with_a_zero_byte_is_refused() {
        let (_d, s) = store();
        let scopes = vec!["a\0b".to_owned()];
        assert!(s.update(|tx| tx.list_put(L, "x", &scopes, at(0))).is_err());
    }
}
