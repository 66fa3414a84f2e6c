//! The crash loop: stations of both OCPP versions run transactions while the daemon is
//! SIGKILLed at random moments (also between a transaction message and its answer) and
//! restarted, with a hub that is sometimes down. Afterwards every stop a station got an answer
//! for has exactly one transaction, one Session and one CDR (delivered, identical if delivered
//! more than once), and no 1.6 transaction id was issued twice.
//!
//! A station behaves as OCPP asks: a transaction message that got no answer is sent again,
//! unchanged, after reconnecting. Rounds: `CRASH_LOOP_ROUNDS` (default 4, for CI; run hundreds
//! locally: `CRASH_LOOP_ROUNDS=300 cargo test -p bridge-tests --test e2e crash_loop -- --nocapture`).
//! `CRASH_LOOP_SEED` replays a run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bridge_tests::payloads::{ocpi, v16, v201};
use bridge_tests::{Daemon, Hub, HubMode, OcppVersion, Station, eventually, now_rfc3339};
use serde_json::{Value, json};

use crate::ocpi_support::{PUSH_SOON, REGISTER_SOON, admin_peer, ocpi_config};

const CARD: &str = "CRASHCARD";

/// A small deterministic generator (the seed is printed so a failure can be replayed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where a station is in its current transaction; a step that got no answer is repeated with
/// the same payload.
#[derive(Debug, Clone)]
enum Step16 {
    Start { ts: String },
    Meter { id: i64, n: i64 },
    Stop { id: i64, ts: String },
}

#[derive(Debug, Clone)]
enum Step201 {
    Started { tx: String, ts: String },
    Updated { tx: String, ts: String },
    Ended { tx: String, ts: String },
}

#[derive(Debug, Default)]
struct Acked {
    /// 1.6 transaction ids whose StopTransaction was answered.
    stops16: Vec<i64>,
    /// 2.0.1 transaction ids whose Ended event was answered.
    ended201: Vec<String>,
}

/// A fresh 2.0.1 transaction id (at most 36 characters).
fn new_tx_id() -> String {
    format!("crash-{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// The answer, or `None` when the daemon died before answering (the connection closed or
/// the call timed out). A CALLERROR is a failure: the daemon refused a valid message.
fn answered(r: Result<Value, bridge_tests::CallError>) -> Option<Value> {
    match r {
        Ok(v) => Some(v),
        Err(e) if e.code.starts_with('<') => None,
        Err(e) => panic!("the daemon answered a valid message with a CALLERROR: {e}"),
    }
}

/// Sends the station's next transaction message; `false` when it got no answer (the daemon
/// died), in which case the same step is sent again later.
async fn once16(cs: &Station, step: &mut Step16, acked: &mut Acked) -> bool {
    let next = match step.clone() {
        Step16::Start { ts } => match cs
            .call("StartTransaction", v16::start(1, CARD, 1000, &ts))
            .await
            .map_or_else(|e| answered(Err(e)), Some)
        {
            Some(r) => Step16::Meter {
                id: r["transactionId"].as_i64().expect("transactionId"),
                n: 0,
            },
            None => return false,
        },
        Step16::Meter { id, n } if n < 2 => match cs
            .call(
                "MeterValues",
                v16::meter_values(1, id, 1000 + 500 * (n + 1)),
            )
            .await
            .map_or_else(|e| answered(Err(e)), Some)
        {
            Some(_) => Step16::Meter { id, n: n + 1 },
            None => return false,
        },
        Step16::Meter { id, .. } => Step16::Stop {
            id,
            ts: now_rfc3339(),
        },
        Step16::Stop { id, ts } => match cs
            .call(
                "StopTransaction",
                v16::stop_at(id, CARD, 2500, &ts, "Local"),
            )
            .await
            .map_or_else(|e| answered(Err(e)), Some)
        {
            Some(_) => {
                acked.stops16.push(id);
                Step16::Start { ts: now_rfc3339() }
            }
            None => return false,
        },
    };
    *step = next;
    true
}

async fn once201(cs: &Station, step: &mut Step201, acked: &mut Acked) -> bool {
    let (payload, next) = match step.clone() {
        Step201::Started { tx, ts } => (
            v201::tx_event_at("Started", &tx, 0, &ts, 0.0, Some(CARD), false),
            Step201::Updated {
                tx,
                ts: now_rfc3339(),
            },
        ),
        Step201::Updated { tx, ts } => (
            v201::tx_event_at("Updated", &tx, 1, &ts, 700.0, None, false),
            Step201::Ended {
                tx,
                ts: now_rfc3339(),
            },
        ),
        Step201::Ended { tx, ts } => (
            v201::tx_event_at("Ended", &tx, 2, &ts, 1500.0, None, false),
            Step201::Started {
                tx: new_tx_id(),
                ts: now_rfc3339(),
            },
        ),
    };
    if answered(cs.call("TransactionEvent", payload).await).is_none() {
        return false;
    }
    if let Step201::Ended { tx, .. } = step {
        acked.ended201.push(tx.clone());
    }
    *step = next;
    true
}

async fn connect(daemon: &Daemon, id: &str, version: OcppVersion) -> Option<Station> {
    let cs = Station::connect_to(daemon, id, version).await;
    let boot = match version {
        OcppVersion::V16 => json!({"chargePointVendor": "Crash", "chargePointModel": "Loop"}),
        OcppVersion::V201 => json!({"reason": "PowerUp",
            "chargingStation": {"vendorName": "Crash", "model": "Loop"}}),
    };
    cs.call("BootNotification", boot).await.ok()?;
    Some(cs)
}

async fn start_daemon_and_hub() -> (Hub, Daemon) {
    let hub = Hub::start().await;
    let config = ocpi_config()
        .free_vend(false)
        .ocpi_peer(&hub.versions_url(), &hub.token_a());
    let daemon = Daemon::start(&config).await;
    hub.wait_registered(REGISTER_SOON).await;
    eventually("hub registered", PUSH_SOON, || async {
        let peer = admin_peer(&daemon, &hub.peer_id()).await;
        let tokens_known = hub
            .bridge_endpoints()
            .iter()
            .any(|(id, _, _)| id == "tokens");
        if peer["status"] == "registered" && tokens_known {
            Ok(())
        } else {
            Err(peer)
        }
    })
    .await;
    hub.put_token_ok(&ocpi::token("DE", "EMS", CARD, "ALWAYS"))
        .await;
    (hub, daemon)
}

#[tokio::test]
async fn crash_loop_loses_and_doubles_nothing() {
    let rounds: u32 = std::env::var("CRASH_LOOP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("CRASH_LOOP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash loop: {rounds} rounds, CRASH_LOOP_SEED={seed}");
    let mut rng = Rng(seed);
    let (hub, mut daemon) = start_daemon_and_hub().await;

    let mut acked = Acked::default();
    let mut step16 = Step16::Start { ts: now_rfc3339() };
    let mut step201 = Step201::Started {
        tx: new_tx_id(),
        ts: now_rfc3339(),
    };
    for round in 0..rounds {
        hub.set_mode(if rng.below(3) == 0 {
            HubMode::Down
        } else {
            HubMode::Normal
        });
        let cs16 = connect(&daemon, "CS001", OcppVersion::V16).await;
        let cs201 = connect(&daemon, "CS201", OcppVersion::V201).await;
        let kill_after = Duration::from_millis(30 + rng.below(600));
        if let (Some(cs16), Some(cs201)) = (&cs16, &cs201) {
            // The two stations run concurrently, each into its own list.
            let mut a16 = Acked::default();
            let mut a201 = Acked::default();
            tokio::select! {
                _ = async {
                    tokio::join!(
                        async { while once16(cs16, &mut step16, &mut a16).await {} },
                        async { while once201(cs201, &mut step201, &mut a201).await {} },
                    )
                } => {}
                _ = tokio::time::sleep(kill_after) => {}
            }
            acked.stops16.extend(a16.stops16);
            acked.ended201.extend(a201.ended201);
        }
        // SIGKILL, possibly between a message and its answer.
        daemon.sigkill();
        drop((cs16, cs201));
        daemon.restart().await;
        if round % 10 == 9 {
            eprintln!(
                "crash loop: round {} done, {} + {} stops acknowledged",
                round + 1,
                acked.stops16.len(),
                acked.ended201.len()
            );
        }
    }
    // Finish the open transactions so that they are checked too.
    hub.set_mode(HubMode::Normal);
    let cs16 = connect(&daemon, "CS001", OcppVersion::V16)
        .await
        .expect("station after the loop");
    let cs201 = connect(&daemon, "CS201", OcppVersion::V201)
        .await
        .expect("station after the loop");
    while !matches!(step16, Step16::Start { .. }) {
        assert!(
            once16(&cs16, &mut step16, &mut acked).await,
            "finishing 1.6"
        );
    }
    while !matches!(step201, Step201::Started { .. }) {
        assert!(
            once201(&cs201, &mut step201, &mut acked).await,
            "finishing 2.0.1"
        );
    }

    let stops = acked.stops16.len() + acked.ended201.len();
    eprintln!(
        "crash loop: {rounds} rounds, {} transactions acknowledged (1.6: {}, 2.0.1: {})",
        stops,
        acked.stops16.len(),
        acked.ended201.len()
    );
    // No 1.6 transaction id issued twice.
    let unique: BTreeSet<i64> = acked.stops16.iter().copied().collect();
    assert_eq!(unique.len(), acked.stops16.len(), "{:?}", acked.stops16);

    // Every acknowledged stop: one completed transaction, one Session, one CDR delivered.
    let txs = daemon.transactions().await;
    let mut uuid_of: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for t in &txs {
        uuid_of
            .entry((
                t["station_id"].as_str().unwrap_or_default().to_owned(),
                t["ocpp_transaction_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ))
            .or_default()
            .push(t.clone());
    }
    let mut expected = Vec::new();
    for id in &acked.stops16 {
        expected.push(("CS001".to_owned(), id.to_string()));
    }
    for id in &acked.ended201 {
        expected.push(("CS201".to_owned(), id.clone()));
    }
    let mut session_ids = Vec::new();
    for key in &expected {
        let found = uuid_of.get(key).cloned().unwrap_or_default();
        assert_eq!(found.len(), 1, "{key:?}: {found:#?}");
        assert_eq!(found[0]["status"], "completed", "{key:?}: {:#}", found[0]);
        session_ids.push(found[0]["id"].as_str().expect("id").to_owned());
    }
    let sessions = daemon.admin_get("/admin/sessions").await;
    let sessions = sessions
        .as_array()
        .or_else(|| sessions["sessions"].as_array())
        .cloned()
        .unwrap_or_default();
    for sid in &session_ids {
        let n = sessions.iter().filter(|s| s["id"] == sid.as_str()).count();
        assert_eq!(n, 1, "session {sid}: {n} sessions");
    }
    // Every acknowledged stop has exactly one stored CDR (nothing lost, nothing doubled)...
    let stored = daemon.admin_get("/admin/cdrs").await;
    let mut stored_by_session: BTreeMap<String, usize> = BTreeMap::new();
    for c in stored.as_array().cloned().unwrap_or_default() {
        *stored_by_session
            .entry(c["session_id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    let wrong: Vec<_> = session_ids
        .iter()
        .filter(|s| stored_by_session.get(*s) != Some(&1))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged stops without exactly one stored CDR, e.g. {:?}",
        wrong.len(),
        session_ids.len(),
        &wrong[..wrong.len().min(5)]
    );
    // ...and it reaches the hub (the outbox may still be working through what queued while the
    // hub was down: the bound grows with the number of transactions).
    let bound = Duration::from_secs(60) + Duration::from_millis(100) * session_ids.len() as u32;
    eventually("one CDR delivered per acknowledged stop", bound, || async {
        let mut by_session: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in hub.cdr_posts().iter().filter(|p| p.accepted()) {
            if let Some(b) = &p.body {
                by_session
                    .entry(b["session_id"].as_str().unwrap_or_default().to_owned())
                    .or_default()
                    .insert(b["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        let missing: Vec<_> = session_ids
            .iter()
            .filter(|s| by_session.get(*s).is_none_or(|ids| ids.len() != 1))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            let outbox = daemon.admin_get("/admin/outbox").await;
            let parked: Vec<String> = outbox["parked"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .take(3)
                .map(|p| p.to_string().chars().take(300).collect())
                .collect();
            Err(format!(
                "{} of {} sessions without exactly one delivered CDR, e.g. {:?}; outbox {}; parked {:?}",
                missing.len(),
                session_ids.len(),
                &missing[..missing.len().min(5)],
                outbox["peers"],
                parked
            ))
        }
    })
    .await;
    // At-least-once delivery: a CDR delivered twice (a crash before the hub's answer was
    // recorded) is identical.
    let mut bodies: BTreeMap<String, Value> = BTreeMap::new();
    for p in hub.cdr_posts().iter().filter(|p| p.accepted()) {
        if let Some(b) = &p.body {
            let id = b["id"].as_str().unwrap_or_default().to_owned();
            if let Some(prev) = bodies.insert(id.clone(), b.clone()) {
                assert_eq!(&prev, b, "CDR {id} delivered twice with different content");
            }
        }
    }
    // cdrs.jsonl holds each CDR once.
    let backup =
        std::fs::read_to_string(daemon.dir().join("data").join("cdrs.jsonl")).unwrap_or_default();
    let lines: Vec<String> = backup
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let unique_lines: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(unique_lines.len(), lines.len(), "cdrs.jsonl repeats an id");
    for sid in &session_ids {
        assert!(
            bodies.values().any(|b| b["session_id"] == sid.as_str()
                && unique_lines.contains(&b["id"].as_str().unwrap_or_default().to_owned())),
            "CDR of {sid} missing from cdrs.jsonl"
        );
    }
}
