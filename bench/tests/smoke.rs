//! Smoke run of the load generator (issue 15): a few stations through every phase, against the
//! built-in echo CSMS and against the real daemon. Bounded in time, no speed threshold — speed is
//! judged in BENCHMARKS.md, never by a test.

use std::process::Command;
use std::time::Duration;

use bridge_tests::config::TestConfig;
use bridge_tests::daemon::Daemon;
use serde_json::Value;

/// Runs `loadgen` with `args` (bounded) and returns its JSON report.
fn loadgen(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--timeout", "20"])
        .output()
        .expect("run loadgen");
    assert!(
        out.status.success(),
        "loadgen failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("report is JSON")
}

fn messages(report: &Value, phase: &str) -> u64 {
    report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == phase)
        .unwrap_or_else(|| panic!("no phase {phase} in {report}"))["messages"]
        .as_u64()
        .unwrap()
}

#[test]
fn loadgen_runs_every_phase_against_the_echo_csms() {
    for version in ["1.6", "2.0.1"] {
        let r = loadgen(&[
            "--echo",
            "--ocpp",
            version,
            "--stations",
            "20",
            "--heartbeats",
            "3",
            "--statuses",
            "2",
            "--transactions",
            "1",
            "--meter-values",
            "2",
            "--reconnect",
        ]);
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(messages(&r, "connect"), 20);
        assert_eq!(messages(&r, "heartbeat"), 60);
        assert_eq!(messages(&r, "status"), 40);
        assert_eq!(messages(&r, "transaction"), 20 * 4);
        assert_eq!(messages(&r, "reconnect"), 20);
        assert_eq!(r["latency"]["Heartbeat"]["count"], 60);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_runs_against_the_daemon_and_samples_its_memory() {
    let daemon = Daemon::start(&TestConfig::new().allow_unknown_stations(true)).await;
    let base = daemon.ocpp_url("X");
    let base = base.trim_end_matches("/X").to_owned();
    let pid = daemon.pid().expect("daemon pid").to_string();
    for version in ["1.6", "2.0.1"] {
        let (base, pid, version) = (base.clone(), pid.clone(), version.to_owned());
        let prefix = format!("SMOKE{}-", version.replace('.', ""));
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::task::spawn_blocking(move || {
                loadgen(&[
                    "--url",
                    &base,
                    "--ocpp",
                    &version,
                    "--prefix",
                    &prefix,
                    "--stations",
                    "10",
                    "--heartbeats",
                    "2",
                    "--statuses",
                    "2",
                    "--transactions",
                    "1",
                    "--meter-values",
                    "2",
                    "--reconnect",
                    "--pid",
                    &pid,
                ])
            }),
        )
        .await
        .expect("loadgen bounded")
        .unwrap();
        assert_eq!(r["errors"], 0, "{r}\n{}", daemon.log_tail(40));
        assert_eq!(messages(&r, "transaction"), 10 * 4);
        assert!(r["phases"][0]["rss_kib"].as_u64().unwrap() > 0, "{r}");
    }
    // The transactions really reached the store.
    let txs = daemon.transactions().await;
    assert_eq!(txs.len(), 20, "{txs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_measures_status_to_patch_latency_and_cdr_delivery_through_a_fake_emsp() {
    let mut config = TestConfig::new()
        .ocpi_port0()
        .ocpi_token_a("loadgen-token-a");
    for i in 0..5 {
        config = config.station_at(&format!("LAT{i}"), "LOC1");
    }
    let daemon = Daemon::start(&config).await;
    let base = daemon.ocpp_url("X");
    let base = base.trim_end_matches("/X").to_owned();
    let versions = format!("http://{}/ocpi/versions", daemon.ocpi_addr());
    let r = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || {
            loadgen(&[
                "--url",
                &base,
                "--prefix",
                "LAT",
                "--stations",
                "5",
                "--heartbeats",
                "0",
                "--statuses",
                "0",
                "--ocpi-versions-url",
                &versions,
                "--ocpi-token-a",
                "loadgen-token-a",
                "--latency-changes",
                "20",
                "--latency-rate",
                "50",
                "--hub-delay-ms",
                "5",
                "--transactions",
                "1",
                "--meter-values",
                "1",
                "--cdrs",
            ])
        }),
    )
    .await
    .expect("loadgen bounded")
    .unwrap();
    assert_eq!(r["errors"], 0, "{r}\n{}", daemon.log_tail(40));
    let l = &r["ocpi_latency"];
    // Every change reached the eMSP as a PATCH with the new status (no speed threshold).
    assert_eq!(l["matched"], 20, "{r}\n{}", daemon.log_tail(40));
    assert_eq!(l["status_to_patch"]["count"], 20, "{r}");
    // With the eMSP's token pushed first, each transaction is its session: one CDR each.
    assert_eq!(
        r["ocpi_cdrs"]["delivered"],
        5,
        "{r}\n{}",
        daemon.log_tail(40)
    );
}
