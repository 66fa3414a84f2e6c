//! Tests of the store: id allocation, idempotence keys, outbox semantics, documents.

use super::*;
use crate::keys::idx;
use chrono::{TimeZone, Utc};

/// Opens the store in `dir`. A store just dropped in the same process may still be held for a
/// moment by sled's background flusher (the file lock is released when its last handle goes), so
/// a reopen waits for the lock, bounded to 5 s.
fn open(dir: &Path) -> Store {
    let settings = Settings {
        path: dir.join("db"),
        cache_bytes: 8 << 20,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(&settings) {
            Ok(store) => return store,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("open: {e:?}"),
        }
    }
}

fn start_key(ts_secs: i64) -> (String, chrono::DateTime<Utc>) {
    ("CS1".to_owned(), Utc.timestamp_opt(ts_secs, 0).unwrap())
}

#[tokio::test]
async fn tx16_ids_are_never_reused_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.update(|tx| tx.next_tx16_id()).unwrap();
    let b = store.update(|tx| tx.next_tx16_id()).unwrap();
    assert_eq!((a, b), (1, 2));
    store.flush().await.unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.update(|tx| tx.next_tx16_id()).unwrap(), 3);
}

#[test]
fn a_retried_start16_finds_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (station, ts) = start_key(1_700_000_000);
    let key = Start16Key {
        station: &station,
        connector_id: 1,
        id_tag: "TAG",
        meter_start: 5,
        timestamp: ts,
    };
    assert_eq!(store.update(|tx| tx.start16_id(&key)).unwrap(), None);
    store.update(|tx| tx.remember_start16(&key, 7)).unwrap();
    let retry = Start16Key {
        id_tag: "tag",
        ..key.clone()
    };
    assert_eq!(store.update(|tx| tx.start16_id(&retry)).unwrap(), Some(7));
    let other = Start16Key {
        meter_start: 6,
        ..key
    };
    assert_eq!(store.update(|tx| tx.start16_id(&other)).unwrap(), None);
}

#[test]
fn an_event_seq_no_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(
        store
            .update(|tx| tx.first_time_event("CS1", "tx-1", 0))
            .unwrap()
    );
    assert!(
        !store
            .update(|tx| tx.first_time_event("CS1", "tx-1", 0))
            .unwrap()
    );
    assert!(
        store
            .update(|tx| tx.first_time_event("CS1", "tx-1", 1))
            .unwrap()
    );
}

#[test]
fn a_rejected_update_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r: Result<(), Error> = store.update(|tx| {
        tx.put_station(&Station::new("CS1"))?;
        Err(reject("no"))
    });
    assert!(matches!(r, Err(Error::Rejected(_))));
    assert!(store.station("CS1").unwrap().is_none());
}

#[test]
fn connectors_are_listed_per_station_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let now = Utc::now();
    for (st, evse) in [("CS1", 2), ("CS1", 1), ("CS10", 1)] {
        let c = Connector {
            v: SCHEMA_VERSION,
            station_id: st.into(),
            evse_id: evse,
            connector_id: 1,
            status: "Available".into(),
            error_code: None,
            info: None,
            timestamp: now,
            updated_at: now,
        };
        store.update(|tx| tx.put_connector(&c)).unwrap();
    }
    let cs1: Vec<u32> = store
        .connectors("CS1")
        .unwrap()
        .iter()
        .map(|c| c.evse_id)
        .collect();
    assert_eq!(cs1, vec![1, 2]);
    assert_eq!(store.connectors("CS10").unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_flushes_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.update(|tx| tx.put_station(&Station::new(&format!("S{i}"))))
                .unwrap();
            s.flush().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.stations().unwrap().len(), 50);
}

#[test]
fn export_writes_one_json_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .update(|tx| tx.put_station(&Station::new("CS1")))
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(store.export(&mut out, true).unwrap(), 1);
    let line: serde_json::Value = serde_json::from_slice(out.trim_ascii_end()).unwrap();
    assert_eq!(line["tree"], "stations");
    assert_eq!(line["value"]["id"], "CS1");
}

#[test]
fn a_retried_sample_is_stored_once_and_samples_sort_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let sample = |secs: i64, measurand: &str| MeterSample {
        v: SCHEMA_VERSION,
        timestamp: Utc.timestamp_opt(secs, 0).unwrap(),
        measurand: measurand.into(),
        value: Some(1.into()),
        raw: "1".into(),
        unit: "Wh".into(),
        multiplier: 0,
        phase: None,
        context: None,
        location: None,
        format: None,
        signed: None,
    };
    let e2 = sample(200, "Energy.Active.Import.Register");
    let e1 = sample(100, "Energy.Active.Import.Register");
    let p1 = sample(100, "Power.Active.Import");
    assert!(store.update(|tx| tx.add_sample("T", &e2)).unwrap());
    assert!(store.update(|tx| tx.add_sample("T", &e1)).unwrap());
    assert!(store.update(|tx| tx.add_sample("T", &p1)).unwrap());
    assert!(!store.update(|tx| tx.add_sample("T", &e1)).unwrap());
    // Pre-epoch station clocks must still sort before later ones.
    assert!(
        store
            .update(|tx| tx.add_sample("T", &sample(-5, "SoC")))
            .unwrap()
    );
    let times: Vec<i64> = store
        .samples("T")
        .unwrap()
        .iter()
        .map(|s| s.timestamp.timestamp())
        .collect();
    assert_eq!(times.len(), 4);
    assert_eq!(times[0], -5);
    assert_eq!(*times.last().unwrap(), 200);
    assert!(store.samples("T2").unwrap().is_empty());
}

/// Test payload: a path standing for a push.
type Entry = OutboxEntry<String>;

fn entry(peer: &str, path: &str) -> Entry {
    OutboxEntry::new(peer, path.to_owned())
}

#[tokio::test]
async fn the_outbox_keeps_order_per_peer_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..3 {
        store
            .update(|tx| tx.push_outbox(entry("hub", &format!("/{i}"))))
            .unwrap();
        store
            .update(|tx| tx.push_outbox(entry("emsp", &format!("/{i}"))))
            .unwrap();
    }
    store.flush().await.unwrap();
    drop(store);
    let store = open(dir.path());
    let paths: Vec<String> = store
        .outbox::<String>("hub")
        .unwrap()
        .into_iter()
        .map(|e| e.push)
        .collect();
    assert_eq!(paths, ["/0", "/1", "/2"]);
    let head = store.outbox_head::<String>("hub", 1).unwrap();
    store.outbox_ack("hub", head[0].seq).unwrap();
    assert_eq!(store.outbox::<String>("hub").unwrap().len(), 2);
    assert_eq!(store.outbox::<String>("emsp").unwrap().len(), 3);
    let stats = store.outbox_stats(&["idle".into()]).unwrap();
    let depth: Vec<(String, u64)> = stats.iter().map(|s| (s.peer.clone(), s.depth)).collect();
    assert_eq!(
        depth,
        [("emsp".into(), 3), ("hub".into(), 2), ("idle".into(), 0)]
    );
}

#[test]
fn a_newer_entry_merges_into_an_unpicked_one_with_the_same_key_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .update(|tx| tx.push_outbox(entry("hub", "/put-location")))
        .unwrap();
    let a = store
        .update(|tx| tx.push_outbox(entry("hub", "/evse-1 a").coalescing(Some("evse-1".into()))))
        .unwrap();
    store
        .update(|tx| tx.push_outbox(entry("hub", "/evse-2").coalescing(Some("evse-2".into()))))
        .unwrap();
    let b = store
        .update(|tx| tx.push_outbox(entry("hub", "/evse-1 b").coalescing(Some("evse-1".into()))))
        .unwrap();
    assert_eq!(a, b, "merged into the older entry");
    let paths: Vec<String> = store
        .outbox::<String>("hub")
        .unwrap()
        .into_iter()
        .map(|e| e.push)
        .collect();
    assert_eq!(paths, ["/put-location", "/evse-1 b", "/evse-2"]);
    // Once picked up for delivery, a newer change queues a new entry instead of being lost.
    let picked = store.outbox_pick::<String>("hub", a).unwrap().unwrap();
    assert_eq!(picked.push, "/evse-1 b");
    let c = store
        .update(|tx| tx.push_outbox(entry("hub", "/evse-1 c").coalescing(Some("evse-1".into()))))
        .unwrap();
    assert_ne!(c, a);
    store.outbox_ack("hub", a).unwrap();
    let paths: Vec<String> = store
        .outbox::<String>("hub")
        .unwrap()
        .into_iter()
        .map(|e| e.push)
        .collect();
    assert_eq!(paths, ["/put-location", "/evse-2", "/evse-1 c"]);
    // Acking the older picked entry did not remove the pointer of the newer one.
    let d = store
        .update(|tx| tx.push_outbox(entry("hub", "/evse-1 d").coalescing(Some("evse-1".into()))))
        .unwrap();
    assert_eq!(c, d);
}

#[test]
fn a_parked_entry_can_be_retried_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let seq = store
        .update(|tx| tx.push_outbox(entry("hub", "/x")))
        .unwrap();
    store
        .outbox_failed("hub", seq, "connection refused")
        .unwrap();
    assert_eq!(store.outbox::<String>("hub").unwrap()[0].attempts, 1);
    store.outbox_park("hub", seq, "2001 invalid").unwrap();
    assert!(store.outbox::<String>("hub").unwrap().is_empty());
    let parked = store.outbox_parked::<String>().unwrap();
    assert_eq!(parked[0].parked_reason.as_deref(), Some("2001 invalid"));
    assert!(store.outbox_retry_parked::<String>("hub", seq).unwrap());
    let again = store.outbox::<String>("hub").unwrap();
    assert_eq!(again.len(), 1);
    store.outbox_park("hub", again[0].seq, "still bad").unwrap();
    assert!(
        store
            .outbox_drop_parked::<String>("hub", again[0].seq)
            .unwrap()
            .is_some()
    );
    assert!(store.outbox_parked::<String>().unwrap().is_empty());
}

#[test]
fn evse_uids_are_allocated_once_and_resolve_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.update(|tx| tx.evse_uid("CS1", 1)).unwrap();
    let again = store.update(|tx| tx.evse_uid("CS1", 1)).unwrap();
    assert_eq!(a, "CS1-1");
    assert_eq!(a, again);
    let long = "X".repeat(40);
    let b = store.update(|tx| tx.evse_uid(&long, 1)).unwrap();
    assert!(b.len() <= 36 && b.starts_with("EVSE-"), "{b}");
    assert_eq!(store.evse_by_uid("cs1-1").unwrap(), Some(("CS1".into(), 1)));
    assert_eq!(store.evse_by_uid(&b).unwrap(), Some((long.clone(), 1)));
    assert_eq!(store.evse_uid(&long, 1).unwrap(), Some(b));
}

#[tokio::test]
async fn evse_uids_use_the_safe_alphabet_and_stored_ones_never_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // A uid allocated by an older version from a station id with `/`: stored as it was.
    store
        .tree(idx::EVSE_UIDS)
        .insert(keys::connector("CS/01", 1, 0), "CS/01-1".as_bytes())
        .unwrap();
    store
        .tree(idx::EVSE_BY_UID)
        .insert("cs/01-1".as_bytes(), "CS/01\x001".as_bytes())
        .unwrap();
    let mut uids = Vec::new();
    for station in [
        "CS/01", "CS/02", "CS#03", "CS?04", "CS%05", "CS 06", "CSé07", "CS_02",
    ] {
        uids.push(store.update(|tx| tx.evse_uid(station, 1)).unwrap());
    }
    assert_eq!(uids[0], "CS/01-1", "a stored uid is kept");
    assert_eq!(
        &uids[1..7],
        [
            "CS_02-1", "CS_03-1", "CS_04-1", "CS_05-1", "CS_06-1", "CS_07-1"
        ]
    );
    // `CS_02-1` is taken by `CS/02`: the real `CS_02` gets a generated one.
    assert!(
        uids[7].starts_with("EVSE-") && uid::is_safe_uid(&uids[7]),
        "{}",
        uids[7]
    );
    assert_eq!(
        store.evse_by_uid("cs_05-1").unwrap(),
        Some(("CS%05".into(), 1))
    );
    store.flush().await.unwrap();
    drop(store);
    let store = open(dir.path());
    for (station, uid) in [
        "CS/01", "CS/02", "CS#03", "CS?04", "CS%05", "CS 06", "CSé07", "CS_02",
    ]
    .iter()
    .zip(&uids)
    {
        assert_eq!(store.update(|tx| tx.evse_uid(station, 1)).unwrap(), *uid);
        assert_eq!(store.evse_uid(station, 1).unwrap().as_ref(), Some(uid));
    }
}

#[test]
fn deleting_a_peer_drops_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .put_peer("hub", &serde_json::json!({"id": "hub"}))
        .unwrap();
    store
        .update(|tx| tx.push_outbox(entry("hub", "/x").coalescing(Some("k".into()))))
        .unwrap();
    store
        .update(|tx| tx.push_outbox(entry("hubby", "/y")))
        .unwrap();
    store.delete_peer("hub").unwrap();
    assert!(store.peers().unwrap().is_empty());
    assert!(store.outbox::<String>("hub").unwrap().is_empty());
    assert_eq!(store.outbox::<String>("hubby").unwrap().len(), 1);
}

/// A test record kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Note {
    id: String,
    v: u32,
}

impl Record for Note {
    const KIND: &'static str = "note";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// A second kind, to show kinds do not mix.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Other {
    id: String,
}

impl Record for Other {
    const KIND: &'static str = "other";
    fn id(&self) -> String {
        self.id.clone()
    }
}

#[test]
fn documents_keep_their_creation_order_when_updated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let note = |id: &str, v| Note { id: id.into(), v };
    for id in ["b", "a", "c"] {
        store.update(|tx| tx.put_record(&note(id, 1))).unwrap();
    }
    store.update(|tx| tx.put_record(&note("b", 2))).unwrap();
    store
        .update(|tx| tx.put_record(&Other { id: "x".into() }))
        .unwrap();
    let ids: Vec<String> = store
        .records::<Note>()
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, ["b", "a", "c"]);
    assert_eq!(store.record::<Note>("b").unwrap().unwrap().v, 2);
    assert_eq!(store.records::<Other>().unwrap().len(), 1);
    assert_eq!(store.count::<Note>(), 3);
    assert!(store.record::<Other>("b").unwrap().is_none());
}

const TOKENS: Index = Index("token_uid");

#[test]
fn indexes_scan_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .update(|tx| tx.index_put(TOKENS, "abc\0NL\0EMS\0RFID", "k1"))
        .unwrap();
    store
        .update(|tx| tx.index_put(TOKENS, "abc\0DE\0XYZ\0RFID", "k2"))
        .unwrap();
    store
        .update(|tx| tx.index_put(TOKENS, "abcd\0NL\0EMS\0RFID", "k3"))
        .unwrap();
    let hits = store.index_scan(TOKENS, "abc\0").unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(
        store
            .index_get(TOKENS, "abcd\0NL\0EMS\0RFID")
            .unwrap()
            .as_deref(),
        Some("k3")
    );
    store
        .update(|tx| tx.index_remove(TOKENS, "abcd\0NL\0EMS\0RFID"))
        .unwrap();
    assert!(
        store
            .index_get(TOKENS, "abcd\0NL\0EMS\0RFID")
            .unwrap()
            .is_none()
    );
}

#[test]
fn counters_are_positive_persistent_and_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.update(|tx| tx.next_counter("remote_start")).unwrap();
    let b = store.update(|tx| tx.next_counter("remote_start")).unwrap();
    let other = store.update(|tx| tx.next_counter("reservation")).unwrap();
    assert_eq!((a, b, other), (1, 2, 1));
    store
        .update(|tx| {
            tx.index_put(
                Index("command_counter"),
                "remote_start",
                &(i32::MAX - 1).to_string(),
            )
        })
        .unwrap();
    assert_eq!(
        store.update(|tx| tx.next_counter("remote_start")).unwrap(),
        i32::MAX
    );
    assert_eq!(
        store.update(|tx| tx.next_counter("remote_start")).unwrap(),
        1
    );
}

#[test]
fn export_masks_secrets_at_any_depth() {
    let mut v = serde_json::json!({
        "id": "P1", "token_in": "0123456789abcdef", "token_out": "short",
        "nested": [{"password": "hunter2hunter2", "token": {"uid": "RFID1"}}]
    });
    crate::redact(&mut v);
    assert_eq!(v["token_in"], "***cdef");
    assert_eq!(v["token_out"], "***");
    assert_eq!(v["nested"][0]["password"], "***ter2");
    // A Token object (a driver's card) is data, not a credential.
    assert_eq!(v["nested"][0]["token"]["uid"], "RFID1");
    assert_eq!(v["id"], "P1");
}

#[test]
fn entries_of_a_held_party_are_passed_over_in_place_and_others_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let party = |p: &str| Some(("NL".to_owned(), p.to_owned()));
    store
        .update(|tx| {
            tx.push_outbox(OutboxEntry::new("hub", "a1".to_owned()).routed_to(party("AAA")))?;
            tx.push_outbox(OutboxEntry::new("hub", "b1".to_owned()).routed_to(party("BBB")))?;
            tx.push_outbox(OutboxEntry::new("hub", "a2".to_owned()).routed_to(party("AAA")))?;
            tx.push_outbox(OutboxEntry::new("hub", "loc".to_owned()))?;
            Ok(())
        })
        .unwrap();
    let held_a = |p: &(String, String)| p.1 == "AAA";
    let next = store
        .outbox_first_unheld::<String>("hub", held_a)
        .unwrap()
        .unwrap();
    assert_eq!(next.push, "b1");
    store.outbox_ack("hub", next.seq).unwrap();
    let next = store
        .outbox_first_unheld::<String>("hub", held_a)
        .unwrap()
        .unwrap();
    assert_eq!(next.push, "loc", "entries without a party are never held");
    store.outbox_ack("hub", next.seq).unwrap();
    assert!(
        store
            .outbox_first_unheld::<String>("hub", held_a)
            .unwrap()
            .is_none()
    );
    // Released: the held party's entries come in their own order.
    let order: Vec<String> = store
        .outbox::<String>("hub")
        .unwrap()
        .into_iter()
        .map(|e| e.push)
        .collect();
    assert_eq!(order, ["a1", "a2"]);
    let next = store
        .outbox_first_unheld::<String>("hub", |_| false)
        .unwrap()
        .unwrap();
    assert_eq!(next.push, "a1");
}

#[test]
fn records_are_walked_in_batches_and_removed_records_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        store
            .update(|tx| {
                tx.put_record(&Note {
                    id: (*id).into(),
                    v: i as u32,
                })
            })
            .unwrap();
    }
    store
        .update(|tx| tx.put_record(&Other { id: "x".into() }))
        .unwrap();
    let removed = store.update(|tx| tx.remove_record::<Note>("c")).unwrap();
    assert_eq!(removed.map(|n| n.v), Some(2));
    assert!(
        store
            .update(|tx| tx.remove_record::<Note>("c"))
            .unwrap()
            .is_none()
    );
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let batch = store.records_after::<Note>(after, 2).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 2);
        after = batch.last().map(|s| s.seq);
        walked.extend(batch.into_iter().map(|s| s.value.id));
    }
    assert_eq!(walked, ["a", "b", "d", "e"]);
    let newest: Vec<String> = store
        .records_newest::<Note>(3)
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(
        newest,
        ["e", "d", "b"],
        "newest first, the removed one gone"
    );
    assert_eq!(store.count::<Note>(), 4);
    assert!(store.record::<Note>("c").unwrap().is_none());
}

#[tokio::test]
async fn group_commits_are_serial_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.commit(|tx| tx.next_tx16_id()).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<i32>>());
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.update(|tx| tx.next_tx16_id()).unwrap(), 201);
}

#[tokio::test]
async fn an_aborting_commit_writes_nothing_and_its_batch_still_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.commit(move |tx| {
                    tx.put_station(&Station::new(&format!("S{i}")))?;
                    if i % 2 == 1 {
                        return Err(reject(format!("odd {i}")));
                    }
                    Ok(i)
                })
                .await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(n) => assert_eq!(n, i),
            Err(Error::Rejected(why)) => assert_eq!(why, format!("odd {i}")),
            Err(e) => panic!("{e}"),
        }
    }
    let mut names: Vec<String> = store
        .stations()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    names.sort();
    let mut even: Vec<String> = (0..100).step_by(2).map(|i| format!("S{i}")).collect();
    even.sort();
    assert_eq!(names, even);
}

#[tokio::test]
async fn a_panicking_commit_is_an_error_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = store
        .commit(|tx| -> Result<(), TxError> {
            tx.put_station(&Station::new("P"))?;
            panic!("a bug")
        })
        .await;
    assert!(matches!(r, Err(Error::Rejected(_))), "{r:?}");
    store
        .commit(|tx| tx.put_station(&Station::new("Q")))
        .await
        .unwrap();
    let names: Vec<String> = store
        .stations()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(names, vec!["Q".to_owned()]);
}

#[tokio::test]
async fn a_batch_with_many_failing_updates_commits_the_others_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut answers = Vec::new();
    let mut batch = Vec::new();
    for i in 0..20 {
        let (job, answer) = commit::job(move |tx| {
            let id = tx.next_tx16_id()?;
            if i % 2 == 1 {
                return Err(reject(format!("odd {i}")));
            }
            Ok(id)
        });
        batch.push(job);
        answers.push(answer);
    }
    // Ten aborts: past the first few, the rest run one transaction each.
    let committed = commit::write_batch(&store.inner, batch);
    assert_eq!(committed.len(), 10);
    committed.into_iter().for_each(|j| j.finish(Ok(())));
    let mut ids = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        match answer.await.unwrap() {
            Ok(id) => ids.push(id),
            Err(e) => assert_eq!(e.to_string(), format!("rejected: odd {i}")),
        }
    }
    // Each committed update ran once in the end: ten ids, none lost to a rolled-back run.
    assert_eq!(ids.len(), 10);
    assert_eq!(store.update(|tx| tx.next_tx16_id()).unwrap(), 11);
}
