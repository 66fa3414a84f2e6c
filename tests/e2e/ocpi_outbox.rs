//! The durable push outbox: outages queue and deliver in order, one peer's outage does not hold
//! up another, a backlog survives SIGKILL, refusals are parked and can be retried or dropped, a
//! lagging peer gets coalesced updates.

use std::time::Duration;

use bridge_tests::hub::summarize;
use bridge_tests::payloads::v16;
use bridge_tests::{Daemon, Hub, HubMode, OcppVersion, Station, eventually};
use serde_json::{Value, json};

use crate::ocpi_support::{
    PUSH_SOON, REGISTER_SOON, admin_peer, admin_post, booted, daemon_with_hub, ocpi_config,
    outbox_stats, registered_with_hub,
};

/// Delivery after an outage may wait for the next backoff step (0.5 s doubling, with jitter).
const AFTER_OUTAGE: Duration = Duration::from_secs(40);

/// CS001 booted with connector 1 Available and its EVSE published to `hub`.
async fn published_cs001(hub: &Hub, daemon: &Daemon) -> Station {
    let cs = booted(daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    hub.wait_accepted("PUT LOC1 with CS001-1", 1, PUSH_SOON, |p| {
        p.is_location_put("LOC1") && p.evse_uids().iter().any(|u| u == "CS001-1")
    })
    .await;
    cs
}

/// Accepted PATCH statuses for CS001-1 in arrival order.
fn statuses(hub: &Hub) -> Vec<String> {
    hub.accepted()
        .iter()
        .filter(|p| p.is_evse_patch("LOC1", "CS001-1"))
        .map(|p| p.status().unwrap_or_default().to_string())
        .collect()
}

/// `got` is `sent` with some elements left out (order kept) and ends with `sent`'s last.
///
/// Consecutive repeats are tolerated: an entry that was already in flight when later changes
/// queued a second one renders the newest state at send time, so both may carry the same status.
fn assert_in_order_newest_last(got: &[String], sent: &[&str], hub: &Hub) {
    let mut got = got.to_vec();
    got.dedup();
    assert_eq!(
        got.last().map(String::as_str),
        sent.last().copied(),
        "newest status must be delivered last: {got:?}\n{}",
        summarize(&hub.pushes())
    );
    let mut it = sent.iter();
    for g in &got {
        assert!(
            it.any(|s| s == g),
            "delivered out of order: got {got:?}, sent {sent:?}"
        );
    }
}

/// Wait until `/admin/outbox` shows a backlog for `peer`.
async fn wait_backlog(daemon: &Daemon, peer: &str) -> Value {
    eventually(
        &format!("outbox depth > 0 for {peer}"),
        PUSH_SOON,
        || async {
            let s = outbox_stats(daemon, peer).await;
            if s["depth"].as_u64().unwrap_or(0) > 0 {
                Ok(s)
            } else {
                Err(daemon.admin_get("/admin/outbox").await)
            }
        },
    )
    .await
}

#[tokio::test]
async fn hub_outage_queues_and_delivers_in_order_with_the_newest_status_last() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let cs = published_cs001(&hub, &daemon).await;
    let peer = hub.peer_id();

    hub.set_mode(HubMode::Down);
    let sent = [
        ("Preparing", "CHARGING"),
        ("Available", "AVAILABLE"),
        ("Unavailable", "INOPERATIVE"),
        ("Faulted", "OUTOFORDER"),
    ];
    for (ocpp, _) in sent {
        cs.call_ok("StatusNotification", v16::status(1, ocpp)).await;
    }
    // A second EVSE appears during the outage too.
    cs.call_ok("StatusNotification", v16::status(2, "Available"))
        .await;

    let stats = wait_backlog(&daemon, &peer).await;
    assert!(stats["oldest"].is_string(), "{stats:#}");
    let ob = daemon.admin_get("/admin/outbox").await;
    let queued: Vec<&Value> = ob["queued"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["peer"] == peer.as_str()).collect())
        .unwrap_or_default();
    assert!(!queued.is_empty(), "{ob:#}");
    for e in &queued {
        for k in ["seq", "method", "module", "path"] {
            assert!(!e[k].is_null(), "queued entry lacks {k}: {e:#}");
        }
    }
    let p = admin_peer(&daemon, &peer).await;
    assert!(p["outbox"]["depth"].as_u64().unwrap_or(0) > 0, "{p:#}");
    // The daemon kept trying and got 503s.
    hub.wait_received("a push attempt during the outage", 1, PUSH_SOON, |p| {
        p.http_status == 503
    })
    .await;
    // Retries record the error.
    eventually(
        "an attempt recorded in /admin/outbox",
        PUSH_SOON,
        || async {
            let ob = daemon.admin_get("/admin/outbox").await;
            let tried = ob["queued"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|e| e["attempts"].as_u64().unwrap_or(0) >= 1 && !e["last_error"].is_null())
            });
            if tried { Ok(()) } else { Err(ob) }
        },
    )
    .await;

    hub.set_mode(HubMode::Normal);
    eventually(
        "OUTOFORDER delivered after the outage",
        AFTER_OUTAGE,
        || async {
            match hub.last_status("LOC1", "CS001-1").as_deref() {
                Some("OUTOFORDER") => Ok(()),
                _ => Err(summarize(&hub.pushes())),
            }
        },
    )
    .await;
    let ocpi: Vec<&str> = sent.iter().map(|(_, o)| *o).collect();
    assert_in_order_newest_last(&statuses(&hub), &ocpi, &hub);
    hub.wait_accepted(
        "PUT LOC1 with CS001-2 after the outage",
        1,
        AFTER_OUTAGE,
        |p| p.is_location_put("LOC1") && p.evse_uids().iter().any(|u| u == "CS001-2"),
    )
    .await;
    eventually("outbox drained", AFTER_OUTAGE, || async {
        let s = outbox_stats(&daemon, &peer).await;
        if s["depth"].as_u64() == Some(0) {
            Ok(())
        } else {
            Err(s)
        }
    })
    .await;
}

#[tokio::test]
async fn one_peer_down_does_not_delay_the_other() {
    let up = Hub::start().await;
    let down = Hub::start().await;
    let config = ocpi_config()
        .ocpi_peer(&up.versions_url(), &up.token_a())
        .ocpi_peer(&down.versions_url(), &down.token_a());
    let daemon = Daemon::start(&config).await;
    up.wait_registered(REGISTER_SOON).await;
    down.wait_registered(REGISTER_SOON).await;
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    for hub in [&up, &down] {
        hub.wait_accepted("PUT LOC1 with CS001-1", 1, PUSH_SOON, |p| {
            p.is_location_put("LOC1") && p.evse_uids().iter().any(|u| u == "CS001-1")
        })
        .await;
    }

    down.set_mode(HubMode::Down);
    for (ocpp, ocpi) in [
        ("Preparing", "CHARGING"),
        ("Available", "AVAILABLE"),
        ("Reserved", "RESERVED"),
    ] {
        // Delivered while the other peer is down: its queue (and backoff) does not hold ours.
        cs.call_ok("StatusNotification", v16::status(1, ocpp)).await;
        up.wait_status("LOC1", "CS001-1", ocpi).await;
    }
    assert_eq!(statuses(&up), ["CHARGING", "AVAILABLE", "RESERVED"]);
    wait_backlog(&daemon, &down.peer_id()).await;
    // The hub records a push when it arrives; the entry leaves our outbox once we have read
    // the hub's answer: allow that moment.
    eventually("the healthy peer has no backlog", PUSH_SOON, || async {
        let s = outbox_stats(&daemon, &up.peer_id()).await;
        if s["depth"].as_u64() == Some(0) {
            Ok(())
        } else {
            Err(s)
        }
    })
    .await;

    down.set_mode(HubMode::Normal);
    eventually("the recovered peer catches up", AFTER_OUTAGE, || async {
        match down.last_status("LOC1", "CS001-1").as_deref() {
            Some("RESERVED") => Ok(()),
            _ => Err(summarize(&down.pushes())),
        }
    })
    .await;
    assert_in_order_newest_last(
        &statuses(&down),
        &["CHARGING", "AVAILABLE", "RESERVED"],
        &down,
    );
}

#[tokio::test]
async fn backlog_survives_sigkill_and_is_delivered_after_restart() {
    let (hub, mut daemon) = daemon_with_hub(ocpi_config()).await;
    let cs = published_cs001(&hub, &daemon).await;
    let peer = hub.peer_id();

    hub.set_mode(HubMode::Down);
    cs.call_ok("StatusNotification", v16::status(1, "Preparing"))
        .await;
    cs.call_ok("StatusNotification", v16::status(1, "Faulted"))
        .await;
    wait_backlog(&daemon, &peer).await;

    daemon.sigkill();
    drop(cs);
    daemon.restart().await;
    // Still down after the restart: the backlog is there.
    let stats = wait_backlog(&daemon, &peer).await;
    assert!(stats["depth"].as_u64().unwrap() > 0, "{stats:#}");

    hub.set_mode(HubMode::Normal);
    eventually(
        "OUTOFORDER delivered after SIGKILL + restart",
        AFTER_OUTAGE,
        || async {
            match hub.last_status("LOC1", "CS001-1").as_deref() {
                Some("OUTOFORDER") => Ok(()),
                _ => Err(summarize(&hub.pushes())),
            }
        },
    )
    .await;
    assert_in_order_newest_last(&statuses(&hub), &["CHARGING", "OUTOFORDER"], &hub);
    let posts = hub
        .credentials_calls()
        .iter()
        .filter(|c| c.method == "POST")
        .count();
    assert_eq!(posts, 1, "no re-registration after SIGKILL");
}

/// The parked entries of `peer` in `/admin/outbox`.
async fn parked(daemon: &Daemon, peer: &str) -> Vec<Value> {
    let ob = daemon.admin_get("/admin/outbox").await;
    ob["parked"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["peer"] == peer).cloned().collect())
        .unwrap_or_default()
}

async fn wait_parked(daemon: &Daemon, peer: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let pred = &pred;
    eventually("a parked entry", PUSH_SOON, || async move {
        let list = parked(daemon, peer).await;
        list.iter().find(|e| pred(e)).cloned().ok_or(list)
    })
    .await
}

#[tokio::test]
async fn a_refused_push_is_parked_and_can_be_retried_or_dropped() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let peer = hub.peer_id();
    hub.wait_accepted("initial PUT LOC1", 1, PUSH_SOON, |p| {
        p.is_location_put("LOC1")
    })
    .await;
    // The initial sync is complete (the tariff follows the location) before the hub refuses.
    hub.wait_accepted("initial PUT T1", 1, PUSH_SOON, |p| p.is("PUT", "tariffs"))
        .await;

    // Refused Location PUT → parked; retry after the hub is fixed → delivered.
    hub.set_mode(HubMode::Refuse);
    let cs = booted(&daemon, "CS001", OcppVersion::V16).await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let entry = wait_parked(&daemon, &peer, |e| {
        e["method"] == "PUT" && e["module"] == "locations"
    })
    .await;
    assert!(
        entry["parked_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{entry:#}"
    );
    let p = admin_peer(&daemon, &peer).await;
    assert!(p["outbox"]["parked"].as_u64().unwrap_or(0) >= 1, "{p:#}");
    // Parked, not retried: the hub saw the refused PUT exactly once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = hub
        .pushes()
        .iter()
        .filter(|p| p.ocpi_status == Some(2001) && p.is("PUT", "locations"))
        .count();
    assert_eq!(refused, 1, "{}", summarize(&hub.pushes()));

    hub.set_mode(HubMode::Normal);
    let seq = entry["seq"].as_u64().expect("seq");
    let (status, body) =
        admin_post(&daemon, &format!("/admin/outbox/{peer}/{seq}/retry"), None).await;
    assert_eq!(status, 200, "{body}");
    hub.wait_accepted("PUT LOC1 with CS001-1 after retry", 1, PUSH_SOON, |p| {
        p.is_location_put("LOC1") && p.evse_uids().iter().any(|u| u == "CS001-1")
    })
    .await;
    eventually("parked list empty after retry", PUSH_SOON, || async {
        let l = parked(&daemon, &peer).await;
        if l.is_empty() { Ok(()) } else { Err(l) }
    })
    .await;

    // Refused PATCH → the whole Location is sent instead (the peer may lack it); refused too →
    // parked; drop needs a reason; after the drop it is gone.
    hub.set_mode(HubMode::Refuse);
    cs.call_ok("StatusNotification", v16::status(1, "Preparing"))
        .await;
    let entry = wait_parked(&daemon, &peer, |e| {
        e["method"] == "PUT" && e["module"] == "locations"
    })
    .await;
    let refused_patches = hub
        .pushes()
        .iter()
        .filter(|p| p.ocpi_status == Some(2001) && p.method == "PATCH")
        .count();
    assert_eq!(refused_patches, 1, "{}", summarize(&hub.pushes()));
    assert!(
        parked(&daemon, &peer)
            .await
            .iter()
            .all(|e| e["method"] != "PATCH"),
        "a refused EVSE PATCH is replaced by the Location PUT, not parked"
    );
    let seq = entry["seq"].as_u64().expect("seq");
    let drop_path = format!("/admin/outbox/{peer}/{seq}/drop");
    let (status, _) = admin_post(&daemon, &drop_path, None).await;
    assert_eq!(status, 400, "drop without a reason must be refused");
    let (status, body) = admin_post(
        &daemon,
        &drop_path,
        Some(json!({"reason": "test: hub rejects it"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(parked(&daemon, &peer).await.iter().all(|e| e["seq"] != seq));
    let (status, _) = admin_post(&daemon, &format!("/admin/outbox/{peer}/{seq}/retry"), None).await;
    assert_eq!(status, 404, "retry of a dropped entry");

    // Parked entries do not block the queue: later pushes flow.
    hub.set_mode(HubMode::Normal);
    cs.call_ok("StatusNotification", v16::status(1, "Faulted"))
        .await;
    hub.wait_status("LOC1", "CS001-1", "OUTOFORDER").await;
    assert!(
        !statuses(&hub).iter().any(|s| s == "CHARGING"),
        "the dropped PATCH must never be delivered: {}",
        summarize(&hub.pushes())
    );
}

#[tokio::test]
async fn a_lagging_peer_gets_coalesced_updates_with_the_newest_status() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let cs = published_cs001(&hub, &daemon).await;
    hub.set_mode(HubMode::Slow(Duration::from_millis(1500)));
    let sent = [
        ("Preparing", "CHARGING"),
        ("Available", "AVAILABLE"),
        ("Reserved", "RESERVED"),
        ("Unavailable", "INOPERATIVE"),
        ("Faulted", "OUTOFORDER"),
    ];
    for (ocpp, _) in sent {
        cs.call_ok("StatusNotification", v16::status(1, ocpp)).await;
    }
    eventually(
        "OUTOFORDER delivered to the slow hub",
        AFTER_OUTAGE,
        || async {
            match hub.last_status("LOC1", "CS001-1").as_deref() {
                Some("OUTOFORDER") => Ok(()),
                _ => Err(summarize(&hub.pushes())),
            }
        },
    )
    .await;
    let got = statuses(&hub);
    let ocpi: Vec<&str> = sent.iter().map(|(_, o)| *o).collect();
    assert_in_order_newest_last(&got, &ocpi, &hub);
    assert!(
        got.len() < sent.len(),
        "a lagging peer should get coalesced updates, got all {}: {got:?}",
        got.len()
    );
}

#[tokio::test]
async fn a_push_answered_401_waits_in_the_queue_and_is_delivered_later() {
    let (hub, daemon) = daemon_with_hub(ocpi_config()).await;
    let peer = hub.peer_id();
    let cs = published_cs001(&hub, &daemon).await;
    hub.set_mode(HubMode::Unauthorized);
    cs.call_ok("StatusNotification", v16::status(1, "Faulted"))
        .await;
    eventually("the 401 was retried at least once", PUSH_SOON, || async {
        let n = hub.pushes().iter().filter(|p| p.http_status == 401).count();
        if n >= 2 { Ok(()) } else { Err(n) }
    })
    .await;
    assert!(
        parked(&daemon, &peer).await.is_empty(),
        "a 401 is retried, not parked"
    );
    hub.set_mode(HubMode::Normal);
    hub.wait_status("LOC1", "CS001-1", "OUTOFORDER").await;
}

#[tokio::test]
async fn a_slow_hub_gets_several_objects_at_once_and_each_object_in_order() {
    let (hub, daemon) = registered_with_hub(ocpi_config()).await;
    let stations = [
        ("CS001", OcppVersion::V16),
        ("CS002", OcppVersion::V16),
        ("CS201", OcppVersion::V201),
        ("CS202", OcppVersion::V201),
    ];
    let status = |version: OcppVersion, s: &str| match version {
        OcppVersion::V16 => v16::status(1, s),
        _ => bridge_tests::payloads::v201::status(1, 1, s),
    };
    let mut booted_stations = Vec::new();
    for (id, version) in stations {
        let cs = booted(&daemon, id, version).await;
        cs.call_ok("StatusNotification", status(version, "Available"))
            .await;
        booted_stations.push((cs, version));
    }
    hub.wait_accepted("PUT LOC1 with every EVSE", 1, PUSH_SOON, |p| {
        p.is_location_put("LOC1") && p.evse_uids().len() == 4
    })
    .await;
    eventually("an empty outbox", PUSH_SOON, || async {
        let stats = outbox_stats(&daemon, &hub.peer_id()).await;
        if stats["depth"] == 0 {
            Ok(())
        } else {
            Err(stats)
        }
    })
    .await;

    // A hub 300 ms away: every EVSE changes three times.
    hub.clear_pushes();
    hub.set_mode(HubMode::Slow(Duration::from_millis(300)));
    for (cs, version) in &booted_stations {
        let steps: &[&str] = match version {
            OcppVersion::V16 => &["Preparing", "Charging", "Available"],
            _ => &["Occupied", "Available", "Occupied"],
        };
        for s in steps {
            cs.call_ok("StatusNotification", status(*version, s)).await;
        }
    }
    for (cs, version) in &booted_stations {
        let last = match version {
            OcppVersion::V16 => "AVAILABLE",
            _ => "CHARGING",
        };
        let uid = format!("{}-1", cs.id());
        eventually(&format!("{uid} ends {last}"), PUSH_SOON, || async {
            match hub.last_status("LOC1", &uid) {
                Some(s) if s == last => Ok(()),
                other => Err(format!("{other:?}\n{}", summarize(&hub.pushes()))),
            }
        })
        .await;
    }
    let patches: Vec<_> = hub
        .pushes()
        .into_iter()
        .filter(|p| p.is("PATCH", "locations"))
        .collect();
    let overlap = bridge_tests::hub::max_overlap(&patches);
    assert!(
        (2..=8).contains(&overlap),
        "several EVSEs in flight at once, at most ocpi.push_concurrency (8): {overlap}\n{}",
        summarize(&patches)
    );
    // One EVSE's own updates never overlap: each starts after the previous one was answered.
    for (cs, _) in &booted_stations {
        let uid = format!("{}-1", cs.id());
        let mut own: Vec<_> = patches
            .iter()
            .filter(|p| p.is_evse_patch("LOC1", &uid))
            .collect();
        own.sort_by_key(|p| p.at);
        for pair in own.windows(2) {
            assert!(
                pair[0].answered <= pair[1].at,
                "{uid}: an update overtook or overlapped the one before\n{}",
                summarize(&patches)
            );
        }
    }
}
