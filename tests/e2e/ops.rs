//! Operations: Prometheus metrics, health, the operator CLI, the systemd unit and sd-notify.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridge_tests::daemon::{bridge_bin, workspace_dir};
use bridge_tests::payloads::v16;
use bridge_tests::{Daemon, OcppVersion, Station, eventually, now_rfc3339};
use serde_json::{Value, json};

use crate::{SOON, default_config};

/// The value of a Prometheus sample whose line starts with `prefix` (name and labels).
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (metric_name, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric_name != name
            || !labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            return None;
        }
        value.parse().ok()
    })
}

pub(crate) async fn scrape(daemon: &Daemon) -> String {
    let (status, body) = daemon.admin_get_raw("/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn metrics_appear_and_move_when_stations_connect_and_transactions_run() {
    let daemon = Daemon::start(&default_config()).await;
    let before = scrape(&daemon).await;
    assert_eq!(
        metric(&before, "ocpp_stations_connected", &[("version", "1.6")]),
        Some(0.0),
        "{before}"
    );
    assert_eq!(metric(&before, "bridge_ready", &[]), Some(1.0));

    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.boot().await;
    cs.call_ok("StatusNotification", v16::status(1, "Available"))
        .await;
    let start = cs
        .call_ok(
            "StartTransaction",
            v16::start(1, "TAG1", 100, &now_rfc3339()),
        )
        .await;
    let tx = start["transactionId"].as_i64().expect("transaction id");

    let during = eventually(
        "metrics show the connection and the transaction",
        SOON,
        || async {
            let text = scrape(&daemon).await;
            let connected = metric(&text, "ocpp_stations_connected", &[("version", "1.6")]);
            let active = metric(&text, "bridge_transactions_active", &[]);
            if connected == Some(1.0) && active == Some(1.0) {
                Ok(text)
            } else {
                Err((connected, active))
            }
        },
    )
    .await;
    let boots = metric(
        &during,
        "ocpp_messages_total",
        &[("action", "BootNotification")],
    )
    .unwrap_or(0.0);
    assert!(boots >= 1.0, "BootNotification counted: {during}");
    assert!(metric(&during, "bridge_transactions_started_total", &[]).unwrap_or(0.0) >= 1.0);

    cs.call_ok("StopTransaction", v16::stop(tx, "TAG1", 2100, "Local"))
        .await;
    let after = scrape(&daemon).await;
    assert_eq!(metric(&after, "bridge_transactions_active", &[]), Some(0.0));
    assert!(metric(&after, "bridge_transactions_stopped_total", &[]).unwrap_or(0.0) >= 1.0);
    assert!(
        metric(
            &after,
            "ocpp_messages_total",
            &[("action", "StopTransaction")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{after}"
    );
}

#[tokio::test]
async fn healthz_describes_readiness_stations_and_peers() {
    let daemon = Daemon::start(&default_config()).await;
    let (status, body) = daemon.admin_get_raw("/healthz").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["listeners_bound"], true);
    assert_eq!(v["peers"], json!([]));
    assert_eq!(v["stations_connected"]["1.6"], 0);
}

fn cli(daemon: &Daemon, args: &[&str]) -> (bool, String) {
    let out = Command::new(bridge_bin())
        .args(args)
        .arg("--config")
        .arg(daemon.config_path())
        .arg("--admin-url")
        .arg(format!("http://{}", daemon.admin_addr()))
        .env_remove("BRIDGE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run the CLI");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        text + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn the_cli_prints_what_the_admin_api_says() {
    let daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.boot().await;
    cs.call_ok("StatusNotification", v16::status(1, "Faulted"))
        .await;
    eventually("the status is stored", SOON, || async {
        let st = daemon.station("CS001").await;
        match st {
            Some(s) if s["connectors"].as_array().is_some_and(|c| !c.is_empty()) => Ok(()),
            other => Err(other),
        }
    })
    .await;

    let (ok, json_text) = cli(&daemon, &["stations", "--json"]);
    assert!(ok, "{json_text}");
    let from_cli: Value = serde_json::from_str(&json_text).expect("--json prints JSON");
    let from_api = daemon.admin_get("/admin/stations").await;
    assert_eq!(from_cli[0]["id"], from_api[0]["id"]);
    assert_eq!(from_cli[0]["connectors"], from_api[0]["connectors"]);

    let (ok, text) = cli(&daemon, &["stations"]);
    assert!(ok, "{text}");
    assert!(text.contains("CS001 online"), "{text}");
    assert!(text.contains("evse 1 connector 1: Faulted"), "{text}");

    let (ok, text) = cli(&daemon, &["status"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("status: ok") && text.contains("1 (OCPP 1.6)"),
        "{text}"
    );
    for sub in ["sessions", "outbox", "peers"] {
        let (ok, text) = cli(&daemon, &[sub]);
        assert!(ok, "{sub}: {text}");
    }
    let (ok, text) = cli(&daemon, &["outbox", "retry", "nobody", "1"]);
    assert!(
        !ok,
        "retrying a parked entry that does not exist fails: {text}"
    );
}

#[tokio::test]
async fn the_cli_says_clearly_when_the_daemon_is_not_running() {
    let daemon = Daemon::start(&default_config()).await;
    let out = Command::new(bridge_bin())
        .args(["status", "--config"])
        .arg(daemon.config_path())
        .args(["--admin-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is it running?"), "{err}");
}

#[tokio::test]
async fn export_writes_the_state_of_a_stopped_daemon_as_json_lines() {
    let mut daemon = Daemon::start(&default_config()).await;
    let cs = Station::connect_to(&daemon, "CS001", OcppVersion::V16).await;
    cs.boot().await;
    drop(cs);
    assert!(daemon.sigterm().await.success());
    let out = Command::new(bridge_bin())
        .args(["export", "--config"])
        .arg(daemon.config_path())
        .arg("--data")
        .arg(daemon.dir().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["tree"] == "stations" && l["value"]["id"] == "CS001"),
        "{lines:?}"
    );
}

fn unit_file() -> String {
    std::fs::read_to_string(workspace_dir().join("systemd/ocpp-ocpi-bridge.service"))
        .expect("unit file")
}

/// `(section, key) → values` of an INI-style systemd unit.
fn directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
        } else {
            panic!("not a unit file line: {line}");
        }
    }
    out
}

#[test]
fn the_unit_file_has_the_directives_operators_rely_on() {
    let d = directives(&unit_file());
    let get = |section: &str, key: &str| -> Vec<String> {
        d.iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.clone())
            .collect()
    };
    assert_eq!(get("Service", "Type"), ["notify"]);
    assert_eq!(get("Service", "Restart"), ["on-failure"]);
    assert_eq!(get("Service", "NoNewPrivileges"), ["yes"]);
    assert_eq!(get("Service", "ProtectSystem"), ["strict"]);
    assert_eq!(get("Service", "PrivateTmp"), ["yes"]);
    assert_eq!(get("Service", "StateDirectory"), ["ocpp-ocpi-bridge"]);
    assert!(get("Service", "DynamicUser") == ["yes"] || !get("Service", "User").is_empty());
    let watchdog = get("Service", "WatchdogSec");
    assert_eq!(watchdog.len(), 1, "WatchdogSec set");
    let exec = get("Service", "ExecStart");
    assert!(
        exec[0].contains("--config /etc/ocpp-ocpi-bridge/bridge.toml"),
        "{exec:?}"
    );
    assert_eq!(get("Install", "WantedBy"), ["multi-user.target"]);
}

#[test]
fn systemd_analyze_verifies_the_unit_file() {
    let Ok(status) = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    else {
        eprintln!("note: systemd-analyze not installed; unit file verified by parsing only");
        return;
    };
    assert!(status.success());
    // Verify a copy whose ExecStart points at the binary we built (verify checks it exists).
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_file().replace(
        "/usr/local/bin/ocpp-ocpi-bridge",
        &bridge_bin().display().to_string(),
    );
    let path = dir.path().join("ocpp-ocpi-bridge.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Outside a booted systemd (containers) verify may complain about the host, not the unit:
    // only lines naming our unit count.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ocpp-ocpi-bridge.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {stderr}");
}

fn recv_until(sock: &UnixDatagram, want: &str, deadline: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} within {deadline:?}; got {seen:?}");
}

#[test]
fn sd_notify_says_ready_pings_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = default_config().to_toml(&dir.path().join("data"));
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let mut child = Command::new(bridge_bin())
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("BRIDGE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    let ready = recv_until(&sock, "READY=1", Duration::from_secs(30));
    assert!(ready.iter().any(|m| m.contains("READY=1")));
    recv_until(&sock, "WATCHDOG=1", Duration::from_secs(5));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    recv_until(&sock, "STOPPING=1", Duration::from_secs(10));
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status {status:?}; log: {}",
        read(dir.path().join("log"))
    );
    drop(guard);
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0 as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

async fn admin_status(daemon: &Daemon, path: &str, auth: Option<&str>) -> u16 {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut req = client.get(format!("http://{}{path}", daemon.admin_addr()));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.send().await.expect("admin request").status().as_u16()
}

#[tokio::test]
async fn metrics_follow_the_admin_token_and_the_bearer_scheme_is_case_insensitive() {
    let daemon = Daemon::start(&default_config().admin_token("adm1n")).await;
    assert_eq!(admin_status(&daemon, "/metrics", None).await, 401);
    assert_eq!(
        admin_status(&daemon, "/metrics", Some("Bearer wrong")).await,
        401
    );
    for auth in ["Bearer adm1n", "bearer adm1n", "BEARER adm1n"] {
        assert_eq!(
            admin_status(&daemon, "/metrics", Some(auth)).await,
            200,
            "{auth}"
        );
        assert_eq!(
            admin_status(&daemon, "/admin/stations", Some(auth)).await,
            200,
            "{auth}"
        );
    }
    assert_eq!(admin_status(&daemon, "/healthz", None).await, 200);
    drop(daemon);

    let public = Daemon::start(&default_config().admin_token("adm1n").metrics_public(true)).await;
    assert_eq!(admin_status(&public, "/metrics", None).await, 200);
    assert_eq!(admin_status(&public, "/admin/stations", None).await, 401);
    drop(public);
}

#[tokio::test]
async fn idle_and_slow_sockets_are_closed_and_the_cap_answers_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daemon = Daemon::start(&default_config().ocpi_port0().http_limits(1, 1, 4)).await;
    let closed_within = |mut tcp: tokio::net::TcpStream| async move {
        let mut out = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut out))
            .await
            .expect("the daemon closes the socket in time")
            .ok();
        String::from_utf8_lossy(&out).into_owned()
    };
    // A silent socket and one sending its headers slowly, on both HTTP listeners: closed.
    for addr in [daemon.ocpi_addr(), daemon.admin_addr()] {
        let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        closed_within(silent).await;
        closed_within(slow).await;
    }
    // Four idle sockets fill the OCPI listener: the fifth gets 503 with an OCPI body at once,
    // and the admin listener keeps answering.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            tokio::net::TcpStream::connect(daemon.ocpi_addr())
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let extra = tokio::net::TcpStream::connect(daemon.ocpi_addr())
        .await
        .unwrap();
    let answer = closed_within(extra).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"status_code\":3000"), "{answer}");
    let (status, _) = daemon.admin_get_raw("/healthz").await;
    assert_eq!(status, 200);
    // Once the idle ones are cut (1 s), the listener serves again.
    for tcp in idle {
        closed_within(tcp).await;
    }
    let ok = reqwest::get(format!("http://{}/ocpi/versions", daemon.ocpi_addr()))
        .await
        .unwrap();
    assert_eq!(
        ok.status(),
        401,
        "served (token missing) rather than refused"
    );
}
