//! The second copy of every CDR: `{state.path}/cdrs.jsonl`, one JSON line per CDR id.
//!
//! A CDR is money, so besides the store it is appended (and synced) to a plain file the
//! operator can read without the daemon. The file holds each CDR id exactly once: the ids
//! already in it are read when the daemon starts, a CDR is appended only by the store
//! transaction that created it, and start-up recovery appends every stored CDR the file lacks
//! (a crash between the store's commit and the append).

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ocpi::types::Cdr;

/// The `cdrs.jsonl` writer.
#[derive(Debug)]
pub struct CdrBackup {
    path: PathBuf,
    /// Ids already in the file; `None` until the file was read.
    ids: Mutex<Option<HashSet<String>>>,
}

/// Just the id of a line (the rest of the CDR is not needed to dedupe).
#[derive(serde::Deserialize)]
struct IdOnly {
    id: String,
}

/// Ids of the CDRs in a `cdrs.jsonl` (lines that do not parse, e.g. a torn last line after a
/// power cut, are skipped).
pub fn ids_in(path: &Path) -> std::io::Result<HashSet<String>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e),
    };
    let mut ids = HashSet::new();
    for line in std::io::BufReader::new(file).lines() {
        if let Ok(IdOnly { id }) = serde_json::from_str(&line?) {
            ids.insert(id);
        }
    }
    Ok(ids)
}

impl CdrBackup {
    /// The backup at `path` (read lazily, on first use).
    pub fn new(path: PathBuf) -> Self {
        CdrBackup {
            path,
            ids: Mutex::new(None),
        }
    }

    /// Whether the file holds the CDR `id`.
    /// How many CDR ids the file holds.
    pub fn len(&self) -> usize {
        let mut ids = self.ids.lock().expect("cdr backup");
        self.loaded(&mut ids).len()
    }

    /// Whether the file holds no CDR.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: &str) -> bool {
        let mut ids = self.ids.lock().expect("cdr backup");
        self.loaded(&mut ids).contains(id)
    }

    fn loaded<'a>(&self, ids: &'a mut Option<HashSet<String>>) -> &'a mut HashSet<String> {
        ids.get_or_insert_with(|| {
            ids_in(&self.path).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path.display(), error = %e, "reading the CDR backup failed");
                HashSet::new()
            })
        })
    }

    /// Appends `cdr` unless the file already holds its id. Failures are logged (the store keeps
    /// the CDR; recovery appends it at the next start).
    pub fn append(&self, cdr: &Cdr) {
        let mut guard = self.ids.lock().expect("cdr backup");
        let ids = self.loaded(&mut guard);
        let id = cdr.id.as_str().to_owned();
        if ids.contains(&id) {
            return;
        }
        let result = serde_json::to_string(cdr)
            .map_err(std::io::Error::other)
            .and_then(|line| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&self.path)?;
                // A torn last line (power cut mid-append) must not swallow this CDR.
                let torn = match f.metadata()?.len() {
                    0 => false,
                    len => {
                        let mut last = [0u8];
                        std::os::unix::fs::FileExt::read_exact_at(&f, &mut last, len - 1)?;
                        last[0] != b'\n'
                    }
                };
                let sep = if torn { "\n" } else { "" };
                f.write_all(format!("{sep}{line}\n").as_bytes())?;
                f.sync_data()
            });
        match result {
            Ok(()) => {
                ids.insert(id);
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "writing the CDR backup copy failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdr(id: &str) -> Cdr {
        serde_json::from_value(serde_json::json!({
            "country_code": "NL", "party_id": "CPO", "id": id,
            "start_date_time": "2020-01-01T10:00:00Z", "end_date_time": "2020-01-01T11:30:00Z",
            "session_id": "S1",
            "cdr_token": {"country_code": "DE", "party_id": "EMS", "uid": "RFID1", "type": "RFID",
              "contract_id": "DE-EMS-C12345-6"},
            "auth_method": "WHITELIST",
            "cdr_location": {"id": "Loc-1", "address": "Main Street 1", "city": "Utrecht",
              "country": "NLD", "coordinates": {"latitude": "52.09073", "longitude": "5.12142"},
              "evse_uid": "Loc-1-E1", "evse_id": "NL*CPO*E1", "connector_id": "1",
              "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET",
              "connector_power_type": "AC_3_PHASE"},
            "currency": "EUR",
            "charging_periods": [{"start_date_time": "2020-01-01T10:00:00Z",
              "dimensions": [{"type": "ENERGY", "volume": 12.5}]}],
            "total_cost": {"excl_vat": 4.38}, "total_energy": 12.5, "total_time": 1.5,
            "last_updated": "2020-01-01T11:30:00Z"
        }))
        .expect("cdr")
    }

    #[test]
    fn each_cdr_id_is_written_once_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdrs.jsonl");
        let b = CdrBackup::new(path.clone());
        b.append(&cdr("A1"));
        b.append(&cdr("A1"));
        b.append(&cdr("B2"));
        // A torn last line (power cut mid-write) is skipped, not fatal.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"id\":\"C3\",\"countr")
            .unwrap();
        let again = CdrBackup::new(path.clone());
        assert!(again.contains("A1"));
        again.append(&cdr("A1"));
        again.append(&cdr("C3"));
        let ids: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<IdOnly>(l).ok().map(|i| i.id))
            .collect();
        assert_eq!(ids, ["A1", "B2", "C3"]);
    }
}
