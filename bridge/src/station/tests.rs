//! Tests of the station service: admission, idempotent transactions, event order, statuses.

use super::*;
use chrono::{DateTime, TimeZone};
use ocpp::Csms;
use rust_decimal::Decimal;
use state::TransactionStatus;

use crate::meter;

const CONFIG: &str = r#"
[ocpp]
tls_listen = "127.0.0.1:0"
[ocpp.tls]
cert = "not-read-here.crt"
key = "not-read-here.key"
client_ca = "not-read-here.pem"
[[locations]]
id = "LOC1"
address = "Main street 1"
city = "Utrecht"
country = "NLD"
latitude = "52.090737"
longitude = "5.121420"
time_zone = "Europe/Amsterdam"
[[stations]]
id = "CS1"
location = "LOC1"
password = "pw"
[[stations]]
id = "OPEN"
location = "LOC1"
[[stations]]
id = "P2"
location = "LOC1"
password = "pw2"
security_profile = 2
[[stations]]
id = "P3"
location = "LOC1"
security_profile = 3
"#;

fn service(dir: &std::path::Path) -> StationService {
    let path = dir.join("bridge.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let settings = crate::config::load_with_env(Some(&path), []).unwrap();
    let store = Store::open(&state::Settings {
        path: dir.join("db"),
        cache_bytes: 8 << 20,
    })
    .unwrap();
    let (core, _wakes) =
        crate::app::Core::build(Arc::new(settings), store, ocpp::Registry::default()).unwrap();
    StationService::new(station_parts(&core))
}

/// The parts of a fully wired core (no peers registered, so nothing is pushed).
fn station_parts(core: &crate::app::Core) -> Parts {
    Parts {
        catalog: core.catalog.clone(),
        store: core.store.clone(),
        peers: core.peers.clone(),
        push: core.push.clone(),
        authorizer: core.authorizer.clone(),
        sessions: core.sessions.clone(),
        reservations: core.reservations.clone(),
        commands: core.commands.clone(),
        smart: core.smart.clone(),
    }
}

fn ctx(version: OcppVersion) -> RequestContext {
    RequestContext {
        station: StationId::from("CS1"),
        version,
        connection_id: 1,
        message_id: "m1".into(),
        action: "X".into(),
    }
}

fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_763_000_000 + secs, 0).unwrap()
}

fn creds(user: Option<&str>, pass: Option<&str>) -> Credentials {
    Credentials {
        username: user.map(str::to_owned),
        password: pass.map(|p| p.as_bytes().to_vec()),
        tls: false,
        client_cert_cn: None,
    }
}

#[test]
fn admission_checks_identity_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let cs1 = StationId::from("CS1");
    assert_eq!(
        s.admit(&cs1, &creds(Some("CS1"), Some("pw"))),
        Admission::Accept
    );
    assert_eq!(
        s.admit(&cs1, &creds(Some("CS1"), Some("nope"))),
        Admission::Unauthorized
    );
    assert_eq!(
        s.admit(&cs1, &creds(Some("OTHER"), Some("pw"))),
        Admission::Unauthorized
    );
    assert_eq!(s.admit(&cs1, &creds(None, None)), Admission::Unauthorized);
    assert_eq!(
        s.admit(&StationId::from("OPEN"), &creds(None, None)),
        Admission::Accept
    );
    assert_eq!(
        s.admit(&StationId::from("GHOST"), &creds(None, None)),
        Admission::UnknownStation
    );
}

#[test]
fn admission_applies_each_stations_minimum_security_profile() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let over = |tls: bool, cn: Option<&str>, c: Credentials| Credentials {
        tls,
        client_cert_cn: cn.map(str::to_owned),
        ..c
    };
    let p2 = StationId::from("P2");
    let good = || creds(Some("P2"), Some("pw2"));
    assert_eq!(s.admit(&p2, &over(true, None, good())), Admission::Accept);
    assert_eq!(
        s.admit(&p2, &over(false, None, good())),
        Admission::Forbidden
    );
    assert_eq!(
        s.admit(&p2, &over(true, None, creds(Some("P2"), Some("x")))),
        Admission::Unauthorized
    );
    assert_eq!(
        s.admit(&p2, &over(true, None, creds(None, None))),
        Admission::Unauthorized
    );
    // More than the minimum: its own certificate instead of the password.
    assert_eq!(
        s.admit(&p2, &over(true, Some("P2"), creds(None, None))),
        Admission::Accept
    );
    let p3 = StationId::from("P3");
    assert_eq!(
        s.admit(&p3, &over(true, Some("P3"), creds(None, None))),
        Admission::Accept
    );
    assert_eq!(
        s.admit(&p3, &over(true, Some("P2"), creds(None, None))),
        Admission::Forbidden
    );
    assert_eq!(
        s.admit(&p3, &over(true, None, creds(None, None))),
        Admission::Forbidden
    );
    // Profile 1 and 0 stations may use the TLS listener too.
    let cs1 = StationId::from("CS1");
    assert_eq!(
        s.admit(&cs1, &over(true, None, creds(Some("CS1"), Some("pw")))),
        Admission::Accept
    );
    assert_eq!(
        s.admit(
            &StationId::from("OPEN"),
            &over(true, None, creds(None, None))
        ),
        Admission::Accept
    );
}

fn start(connector: u32, tag: &str, meter: i64, at: DateTime<Utc>) -> StationRequest {
    StationRequest::StartTransaction(ocpp::StartTransaction {
        connector_id: connector,
        id_tag: tag.into(),
        meter_start_wh: meter,
        reservation_id: None,
        timestamp: at,
    })
}

fn tx_id(r: StationResponse) -> i32 {
    match r {
        StationResponse::StartTransaction { transaction_id, .. } => transaction_id,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_retried_start_transaction_gets_the_same_id_and_a_new_one_a_new_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V16);
    let a = tx_id(s.request(&c, start(1, "TAG", 100, ts(0))).await.unwrap());
    let again = tx_id(s.request(&c, start(1, "TAG", 100, ts(0))).await.unwrap());
    let b = tx_id(s.request(&c, start(2, "TAG", 100, ts(0))).await.unwrap());
    assert_eq!(a, again);
    assert!(b > a);
    assert_eq!(s.store.transactions().unwrap().len(), 2);
}

#[tokio::test]
async fn a_1_6_transaction_records_energy_and_a_retried_stop_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V16);
    let id = tx_id(s.request(&c, start(1, "TAG", 1000, ts(0))).await.unwrap());
    let sample = |wh: &str, at| energy(wh, at, None);
    let mv = StationRequest::MeterValues(ocpp::MeterValuesReport {
        at: ocpp::EvseRef::from_v16_connector(1),
        transaction_id: Some(id),
        meter_values: vec![sample("1500", ts(60))],
    });
    s.request(&c, mv.clone()).await.unwrap();
    s.request(&c, mv).await.unwrap();
    let stop = StationRequest::StopTransaction(ocpp::StopTransaction {
        transaction_id: id,
        id_tag: None,
        meter_stop_wh: 2500,
        timestamp: ts(120),
        reason: None,
        transaction_data: vec![sample("2500", ts(120))],
    });
    s.request(&c, stop.clone()).await.unwrap();
    s.request(&c, stop).await.unwrap();
    let t = s
        .store
        .transaction_by_ocpp("CS1", &id.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(t.status, TransactionStatus::Completed);
    // Each sample once, though every message came twice.
    assert_eq!(s.store.samples(&t.id).unwrap().len(), 2);
    assert_eq!(t.meter_start_wh, Some(Decimal::from(1000)));
    assert_eq!(t.meter_stop_wh, Some(Decimal::from(2500)));
    assert_eq!(t.stop_reason.as_deref(), Some("Local"));
    assert_eq!((t.evse_id, t.connector_id), (1, 1));
}

/// One energy register reading with an optional reading context.
fn energy(wh: &str, at: DateTime<Utc>, context: Option<&str>) -> ocpp::MeterValue {
    ocpp::MeterValue {
        timestamp: at,
        sampled: vec![ocpp::SampledValue {
            value: Some(wh.parse().unwrap()),
            raw: wh.into(),
            measurand: meter::ENERGY_REGISTER.into(),
            unit: "Wh".into(),
            multiplier: 0,
            phase: None,
            context: context.map(str::to_owned),
            location: None,
            format: None,
            signed: None,
        }],
    }
}

#[tokio::test]
async fn periodic_meter_values_store_samples_without_rewriting_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V16);
    let id = tx_id(s.request(&c, start(1, "TAG", 1000, ts(0))).await.unwrap());
    let stored = || {
        s.store
            .transaction_by_ocpp("CS1", &id.to_string())
            .unwrap()
            .unwrap()
    };
    let before = stored();
    let mv = |wh: &str, at, context| {
        StationRequest::MeterValues(ocpp::MeterValuesReport {
            at: ocpp::EvseRef::from_v16_connector(1),
            transaction_id: Some(id),
            meter_values: vec![energy(wh, at, context)],
        })
    };
    for (i, wh) in ["1100", "1200", "1300"].iter().enumerate() {
        s.request(&c, mv(wh, ts(60 * (i as i64 + 1)), Some("Sample.Periodic")))
            .await
            .unwrap();
    }
    // The samples are stored; the record is exactly as the start left it.
    assert_eq!(s.store.samples(&before.id).unwrap().len(), 3);
    assert_eq!(stored(), before);
    // An end reading changes what the record says: it is written.
    s.request(&c, mv("1400", ts(240), Some("Transaction.End")))
        .await
        .unwrap();
    assert_eq!(stored().meter_stop_wh, Some(Decimal::from(1400)));
}

#[test]
fn a_record_is_rewritten_only_when_a_message_changes_what_it_says() {
    let now = ts(0);
    let base = StationService::new_transaction(
        &StationId("CS1".into()),
        OcppVersion::V201,
        "T1",
        ocpp::EvseRef {
            evse_id: 1,
            connector_id: 1,
        },
        now,
    );
    let changed = |f: &dyn Fn(&mut state::Transaction)| {
        let mut after = base.clone();
        f(&mut after);
        must_rewrite(&base, &after)
    };
    // What every sample-only message moves: not a reason to write.
    assert!(!changed(&|t| t.samples += 3));
    assert!(!changed(&|t| t.meter_last_wh = Some(Decimal::from(5))));
    assert!(!changed(&|t| t.last_seq_no = Some(7)));
    assert!(!changed(&|t| t.updated_at = ts(60)));
    // What a message can change about the transaction: written.
    assert!(changed(&|t| t.meter_start_wh = Some(Decimal::from(1))));
    assert!(changed(&|t| t.meter_stop_wh = Some(Decimal::from(9))));
    assert!(changed(&|t| t.charging_state = Some("SuspendedEV".into())));
    assert!(changed(&|t| t.time_spent_charging = Some(60)));
    assert!(changed(&|t| t.offline = true));
    assert!(changed(&|t| t.status = TransactionStatus::Completed));
    // A completed transaction is always written (its updated_at times the CDR's wait).
    let mut done = base.clone();
    done.status = TransactionStatus::Completed;
    assert!(must_rewrite(&done, &done.clone()));
}

fn event(kind: ocpp::TransactionEventType, seq: u32, at: DateTime<Utc>) -> ocpp::TransactionEvent {
    ocpp::TransactionEvent {
        event_type: kind,
        timestamp: at,
        trigger_reason: "Authorized".into(),
        seq_no: seq,
        offline: false,
        transaction_id: "tx-201".into(),
        charging_state: None,
        time_spent_charging: None,
        stopped_reason: None,
        remote_start_id: None,
        number_of_phases_used: None,
        reservation_id: None,
        id_token: None,
        evse: Some(ocpp::EvseRef {
            evse_id: 2,
            connector_id: 1,
        }),
        meter_values: vec![],
    }
}

#[tokio::test]
async fn transaction_events_apply_once_and_in_any_order() {
    use ocpp::TransactionEventType::*;
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V201);
    // Offline replay out of order: Ended arrives before Updated and Started.
    let mut ended = event(Ended, 2, ts(300));
    ended.offline = true;
    ended.stopped_reason = Some("EVDisconnected".into());
    let mut started = event(Started, 0, ts(0));
    started.id_token = Some(IdToken {
        id: "AABB".into(),
        kind: ocpp::IdTokenKind::Iso14443,
    });
    for ev in [
        ended.clone(),
        event(Updated, 1, ts(100)),
        started.clone(),
        ended,
    ] {
        s.request(&c, StationRequest::TransactionEvent(ev))
            .await
            .unwrap();
    }
    let t = s
        .store
        .transaction_by_ocpp("CS1", "tx-201")
        .unwrap()
        .unwrap();
    assert_eq!(t.status, TransactionStatus::Completed);
    assert_eq!(t.started_at, ts(0));
    assert_eq!(t.stopped_at, Some(ts(300)));
    assert_eq!(t.stop_reason.as_deref(), Some("EVDisconnected"));
    assert_eq!(t.id_token.as_deref(), Some("AABB"));
    assert_eq!(t.last_seq_no, Some(2));
    assert!(t.offline);
    assert_eq!((t.evse_id, t.connector_id), (2, 1));
    assert_eq!(s.store.transactions().unwrap().len(), 1);
}

#[tokio::test]
async fn an_older_status_does_not_overwrite_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V16);
    let status = |st: ocpp::ConnectorStatus, at| {
        StationRequest::StatusNotification(ocpp::StatusReport {
            at: ocpp::EvseRef::from_v16_connector(1),
            status: st,
            error_code: None,
            info: None,
            timestamp: Some(at),
        })
    };
    s.request(&c, status(ocpp::ConnectorStatus::Charging, ts(10)))
        .await
        .unwrap();
    s.request(&c, status(ocpp::ConnectorStatus::Available, ts(5)))
        .await
        .unwrap();
    let conns = s.store.connectors("CS1").unwrap();
    assert_eq!(conns[0].status, "Charging");
}

#[tokio::test]
async fn a_replaced_connection_closing_leaves_the_station_online() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let id = StationId::from("CS1");
    s.connections.lock().unwrap().insert(id.clone(), 2);
    s.touch(&id, |st| st.online = true).await.unwrap();
    s.disconnected(&id, 1).await;
    assert!(s.store.station("CS1").unwrap().unwrap().online);
    s.disconnected(&id, 2).await;
    assert!(!s.store.station("CS1").unwrap().unwrap().online);
}

#[tokio::test]
async fn boot_is_accepted_with_the_configured_interval_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let boot = ocpp::BootInfo {
        vendor: "V".into(),
        model: "M".into(),
        meter_serial_number: Some("MTR".into()),
        ..Default::default()
    };
    match s
        .request(
            &ctx(OcppVersion::V16),
            StationRequest::BootNotification(boot),
        )
        .await
        .unwrap()
    {
        StationResponse::BootNotification {
            status, interval, ..
        } => {
            assert_eq!(status, RegistrationStatus::Accepted);
            assert_eq!(interval, 300);
        }
        other => panic!("unexpected {other:?}"),
    }
    let st = s.store.station("CS1").unwrap().unwrap();
    assert_eq!(st.meter_serial_number.as_deref(), Some("MTR"));
    assert_eq!(st.ocpp_version.as_deref(), Some("1.6"));
}

#[tokio::test]
async fn a_different_1_6_stop_after_completion_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V16);
    let id = tx_id(s.request(&c, start(1, "TAG", 1000, ts(0))).await.unwrap());
    let stop = |wh: i64, at, reason: Option<&str>| {
        StationRequest::StopTransaction(ocpp::StopTransaction {
            transaction_id: id,
            id_tag: None,
            meter_stop_wh: wh,
            timestamp: at,
            reason: reason.map(str::to_owned),
            transaction_data: vec![],
        })
    };
    for req in [
        stop(2500, ts(120), None),
        stop(2500, ts(120), None),           // retried
        stop(9000, ts(600), Some("Remote")), // conflicting: answered, ignored
        stop(2600, ts(120), None),           // conflicting meter only
    ] {
        assert!(matches!(
            s.request(&c, req).await.unwrap(),
            StationResponse::StopTransaction { .. }
        ));
    }
    let t = s
        .store
        .transaction_by_ocpp("CS1", &id.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(t.stopped_at, Some(ts(120)));
    assert_eq!(t.meter_stop_wh, Some(Decimal::from(2500)));
    assert_eq!(t.meter_last_wh, Some(Decimal::from(2500)));
    assert_eq!(t.stop_reason.as_deref(), Some("Local"));
}

#[tokio::test]
async fn another_2_0_1_ended_event_changes_nothing() {
    use ocpp::TransactionEventType::*;
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V201);
    let end_reading = |wh: &str, at| energy(wh, at, Some("Transaction.End"));
    let mut ended = event(Ended, 1, ts(300));
    ended.stopped_reason = Some("EVDisconnected".into());
    ended.meter_values = vec![end_reading("4000", ts(300))];
    // The same Ended under a new seqNo (a repeat), then a different one (a conflict).
    let mut repeat = ended.clone();
    repeat.seq_no = 2;
    let mut other = event(Ended, 3, ts(900));
    other.stopped_reason = Some("Remote".into());
    other.meter_values = vec![end_reading("9000", ts(900))];
    for ev in [event(Started, 0, ts(0)), ended, repeat, other] {
        s.request(&c, StationRequest::TransactionEvent(ev))
            .await
            .unwrap();
    }
    let t = s
        .store
        .transaction_by_ocpp("CS1", "tx-201")
        .unwrap()
        .unwrap();
    assert_eq!(t.stopped_at, Some(ts(300)));
    assert_eq!(t.stop_reason.as_deref(), Some("EVDisconnected"));
    assert_eq!(t.meter_stop_wh, Some(Decimal::from(4000)));
    assert_eq!(t.last_seq_no, Some(1));
    assert_eq!(t.samples, 1);
}

/// Stores an ALWAYS-whitelisted token of eMSP `emsp` (not registered: nothing is pushed).
fn known_token(s: &StationService, uid: &str) {
    let token: ocpi::types::Token = serde_json::from_value(serde_json::json!({
        "country_code": "DE", "party_id": "EMS", "uid": uid, "type": "RFID",
        "contract_id": "DE-EMS-C1", "issuer": "EMS", "valid": true,
        "whitelist": "ALWAYS", "last_updated": "2026-01-01T00:00:00Z"
    }))
    .unwrap();
    s.store
        .update(|tx| crate::tokens::put(tx, &token, "emsp"))
        .unwrap();
}

fn session_count(s: &StationService) -> usize {
    s.store
        .records::<crate::records::SessionRecord>()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_1_6_start_stores_the_transaction_and_its_session_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    known_token(&s, "AABBCC");
    let c = ctx(OcppVersion::V16);
    let id = tx_id(s.request(&c, start(1, "AABBCC", 0, ts(0))).await.unwrap());
    let t = s
        .store
        .transaction_by_ocpp("CS1", &id.to_string())
        .unwrap()
        .unwrap();
    let rec = s
        .store
        .record::<crate::records::SessionRecord>(&t.id)
        .unwrap()
        .expect("the session is stored with its transaction");
    assert_eq!(rec.transaction_id.as_deref(), Some(t.id.as_str()));
    // A retry opens nothing twice.
    s.request(&c, start(1, "AABBCC", 0, ts(0))).await.unwrap();
    assert_eq!(session_count(&s), 1);
}

#[tokio::test]
async fn a_retried_start_repairs_a_transaction_left_without_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V16);
    // A store written by a version that wrote the session separately, killed in between:
    // the transaction and its start key exist, the session does not (the token was unknown
    // then and is known now, which stands in for the lost second write).
    let id = tx_id(s.request(&c, start(1, "AABBCC", 0, ts(0))).await.unwrap());
    assert_eq!(session_count(&s), 0);
    known_token(&s, "AABBCC");
    let again = tx_id(s.request(&c, start(1, "AABBCC", 0, ts(0))).await.unwrap());
    assert_eq!(again, id);
    assert_eq!(session_count(&s), 1);
}

#[tokio::test]
async fn a_2_0_1_started_event_stores_the_transaction_and_its_session_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    known_token(&s, "AABBCC");
    let c = ctx(OcppVersion::V201);
    let mut ev = event(ocpp::TransactionEventType::Started, 0, ts(0));
    ev.id_token = Some(IdToken {
        id: "AABBCC".into(),
        kind: ocpp::IdTokenKind::Iso14443,
    });
    s.request(&c, StationRequest::TransactionEvent(ev.clone()))
        .await
        .unwrap();
    s.request(&c, StationRequest::TransactionEvent(ev))
        .await
        .unwrap();
    assert_eq!(session_count(&s), 1);
}

#[tokio::test]
async fn a_stop_for_an_unknown_transaction_is_answered_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let c = ctx(OcppVersion::V16);
    let stop = StationRequest::StopTransaction(ocpp::StopTransaction {
        transaction_id: 4242,
        id_tag: None,
        meter_stop_wh: 2500,
        timestamp: ts(120),
        reason: None,
        transaction_data: vec![],
    });
    let answer = s.request(&c, stop).await.unwrap();
    assert!(matches!(
        answer,
        StationResponse::StopTransaction { id_tag_info: None }
    ));
    assert!(s.store.transactions().unwrap().is_empty());
    assert!(
        s.store
            .transaction_by_ocpp("CS1", "4242")
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_heartbeat_records_last_seen_in_memory_until_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let id = StationId::from("CS1");
    s.touch(&id, |st| st.online = true).await.unwrap();
    let before = s.store.station("CS1").unwrap().unwrap().last_seen.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let answer = s
        .request(&ctx(OcppVersion::V16), StationRequest::Heartbeat)
        .await
        .unwrap();
    assert!(matches!(answer, StationResponse::Heartbeat { .. }));
    // Not written by the heartbeat itself...
    let stored = s.store.station("CS1").unwrap().unwrap().last_seen.unwrap();
    assert_eq!(stored, before);
    // ...but by the periodic write, and only forward.
    assert_eq!(s.persist_last_seen().unwrap(), 1);
    let stored = s.store.station("CS1").unwrap().unwrap().last_seen.unwrap();
    assert!(stored > before, "{stored} > {before}");
    assert_eq!(s.persist_last_seen().unwrap(), 0);
}
