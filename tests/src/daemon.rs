//! One daemon process under test.
//!
//! [`Daemon`] owns a temp dir holding the sled data dir, the config file, the ready file and a
//! log file (stdout and stderr of every incarnation, appended). It starts the real binary,
//! waits (bounded) for the ready file, and exposes the bound addresses, the admin API and
//! process control (SIGTERM, SIGKILL, restart on the same data dir). Dropping it SIGKILLs the
//! process, so a failing test never leaks a daemon.
//!
//! Binary lookup: `$BRIDGE_BIN`, else `{target}/debug/ocpp-ocpi-bridge` where `{target}` is
//! `$CARGO_TARGET_DIR` or `{workspace}/target`. If the binary is missing it is built once per
//! test process with `cargo build -p bridge --bin ocpp-ocpi-bridge`. An existing binary is used
//! as is: run `cargo build -p bridge` (or `scripts/test`) first so it is not stale.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

use crate::config::TestConfig;

/// Bytes escaped in one URL path segment: all but RFC 3986 unreserved characters.
pub const URL_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long the daemon may take from spawn to ready file.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon may take to exit after SIGTERM/SIGINT.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on one admin HTTP request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Contents of the ready file.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadyInfo {
    /// Bound OCPP websocket listener.
    pub ocpp: SocketAddr,
    /// Bound OCPP TLS listener (`ocpp.tls_listen`), if configured.
    #[serde(default)]
    pub ocpp_tls: Option<SocketAddr>,
    /// Bound OCPI listener.
    pub ocpi: SocketAddr,
    /// Bound admin listener.
    pub admin: SocketAddr,
    /// Daemon process id.
    pub pid: u32,
}

/// A running (or stopped) daemon with its own temp dir.
#[derive(Debug)]
pub struct Daemon {
    dir: TempDir,
    config: TestConfig,
    child: Option<Child>,
    ready: ReadyInfo,
    http: reqwest::Client,
}

impl Daemon {
    /// Write `config` into a fresh temp dir, spawn the daemon and wait for its ready file.
    ///
    /// Panics (with the daemon's log tail) if it does not become ready within [`READY_TIMEOUT`].
    pub async fn start(config: &TestConfig) -> Daemon {
        crate::install_crypto_provider();
        let dir = tempfile::Builder::new()
            .prefix("bridge-e2e-")
            .tempdir()
            .expect("create temp dir");
        let data = dir.path().join("data");
        fs::write(dir.path().join("config.toml"), config.to_toml(&data)).expect("write config");
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .no_proxy()
            .build()
            .expect("build http client");
        let (child, ready) = spawn_and_wait_ready(dir.path()).await;
        Daemon {
            dir,
            config: config.clone(),
            child: Some(child),
            ready,
            http,
        }
    }

    /// Addresses from the ready file of the current incarnation.
    pub fn ready(&self) -> &ReadyInfo {
        &self.ready
    }

    /// OCPP listener address.
    pub fn ocpp_addr(&self) -> SocketAddr {
        self.ready.ocpp
    }

    /// OCPI listener address.
    pub fn ocpi_addr(&self) -> SocketAddr {
        self.ready.ocpi
    }

    /// Admin listener address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.ready.admin
    }

    /// `ws://{ocpp}/ocpp/{station_id}`, the id percent-encoded (every byte but letters,
    /// digits and `-._~`), as a station whose id has `/`, `#`, spaces or `é` must send it.
    pub fn ocpp_url(&self, station_id: &str) -> String {
        format!(
            "ws://{}/ocpp/{}",
            self.ready.ocpp,
            percent_encoding::utf8_percent_encode(station_id, URL_SEGMENT)
        )
    }

    /// `wss://{ocpp_tls}/ocpp/{station_id}` (panics without a TLS listener).
    pub fn ocpp_tls_url(&self, station_id: &str) -> String {
        let addr = self
            .ready
            .ocpp_tls
            .expect("the daemon has no ocpp.tls_listen");
        format!(
            "wss://{addr}/ocpp/{}",
            percent_encoding::utf8_percent_encode(station_id, URL_SEGMENT)
        )
    }

    /// The config this daemon was started with.
    pub fn config(&self) -> &TestConfig {
        &self.config
    }

    /// Temp dir holding `data/`, `config.toml`, `ready.json`, `daemon.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Process id of the current incarnation (if running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last `lines` lines of the daemon's combined stdout/stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(self.dir.path(), lines)
    }

    /// `GET http://{admin}{path}` → (status, body text).
    pub async fn admin_get_raw(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{}", self.ready.admin, path);
        let resp = match self.http.get(&url).send().await {
            Ok(r) => r,
            Err(e) => panic!(
                "GET {url} failed: {e:#}\n--- daemon log ---\n{}",
                self.log_tail(40)
            ),
        };
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        (status, body)
    }

    /// `GET http://{admin}{path}` expecting 200 and a JSON body.
    pub async fn admin_get(&self, path: &str) -> Value {
        let (status, body) = self.admin_get_raw(path).await;
        assert_eq!(status, 200, "GET {path} → {status}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {body}"))
    }

    /// `GET /admin/stations` as an array.
    pub async fn stations(&self) -> Vec<Value> {
        as_array(self.admin_get("/admin/stations").await, "/admin/stations")
    }

    /// The `/admin/stations` entry for `id`, if listed.
    pub async fn station(&self, id: &str) -> Option<Value> {
        self.stations().await.into_iter().find(|s| s["id"] == id)
    }

    /// `GET /admin/transactions` as an array.
    pub async fn transactions(&self) -> Vec<Value> {
        as_array(
            self.admin_get("/admin/transactions").await,
            "/admin/transactions",
        )
    }

    /// `/admin/transactions` entries of `station_id`.
    pub async fn transactions_of(&self, station_id: &str) -> Vec<Value> {
        self.transactions()
            .await
            .into_iter()
            .filter(|t| t["station_id"] == station_id)
            .collect()
    }

    /// Send SIGTERM and wait (bounded) for the exit status.
    pub async fn sigterm(&mut self) -> ExitStatus {
        self.signal_and_wait(Signal::SIGTERM).await
    }

    /// Send SIGINT and wait (bounded) for the exit status.
    pub async fn sigint(&mut self) -> ExitStatus {
        self.signal_and_wait(Signal::SIGINT).await
    }

    async fn signal_and_wait(&mut self, sig: Signal) -> ExitStatus {
        let pid = self.pid().expect("daemon is not running");
        kill(Pid::from_raw(pid as i32), sig).expect("send signal");
        match self.wait_exit(EXIT_TIMEOUT).await {
            Some(status) => status,
            None => {
                let tail = self.log_tail(40);
                self.sigkill();
                panic!(
                    "daemon did not exit within {EXIT_TIMEOUT:?} after {sig}\n--- daemon log ---\n{tail}"
                );
            }
        }
    }

    /// Wait up to `timeout` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL the process and reap it (no-op if not running).
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start a new incarnation on the same data dir and config (new ports).
    ///
    /// If the current one is still running it is SIGTERMed first.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.sigterm().await;
            assert!(
                status.success(),
                "daemon exited with {status} on SIGTERM before restart"
            );
        }
        let (child, ready) = spawn_and_wait_ready(self.dir.path()).await;
        self.child = Some(child);
        self.ready = ready;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            eprintln!(
                "--- daemon log ({}) ---\n{}",
                self.dir.path().display(),
                self.log_tail(60)
            );
        }
    }
}

fn as_array(v: Value, what: &str) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("{what} is not a JSON array: {other}"),
    }
}

/// Path of the daemon binary (building it once if missing).
pub fn bridge_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("BRIDGE_BIN") {
            return PathBuf::from(bin);
        }
        let ws = workspace_dir();
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => {
                let t = PathBuf::from(t);
                if t.is_absolute() { t } else { ws.join(t) }
            }
            None => ws.join("target"),
        };
        let bin = target.join("debug").join("ocpp-ocpi-bridge");
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "bridge", "--bin", "ocpp-ocpi-bridge"])
                .current_dir(&ws)
                .status()
                .expect("run cargo build for the daemon");
            assert!(status.success(), "cargo build -p bridge failed: {status}");
            assert!(
                bin.exists(),
                "{} still missing after cargo build",
                bin.display()
            );
        }
        bin
    })
    .clone()
}

/// The workspace root (parent of this crate's manifest dir).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives inside the workspace")
        .to_path_buf()
}

/// Run `ocpp-ocpi-bridge check-config --config FILE` (bounded) and return its output.
pub fn check_config(file: &Path) -> Output {
    let mut cmd = Command::new(bridge_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BRIDGE") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .args(["check-config", "--config"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn check-config");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child
                .wait_with_output()
                .expect("collect check-config output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child
                .wait_with_output()
                .expect("collect check-config output");
            panic!(
                "check-config did not exit within 20 s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_tail(dir: &Path, lines: usize) -> String {
    let text = fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn spawn_and_wait_ready(dir: &Path) -> (Child, ReadyInfo) {
    let ready_path = dir.join("ready.json");
    let _ = fs::remove_file(&ready_path);
    let log_path = dir.join("daemon.log");
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("open daemon log");
    let _ = writeln!(log, "===== spawn {} =====", crate::now_rfc3339());
    let log_err: File = log.try_clone().expect("clone log handle");
    let mut cmd = Command::new(bridge_bin());
    // The daemon layers `BRIDGE_*` / `BRIDGE__SECTION__KEY` env over the file: keep the
    // developer's environment out of the tests.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BRIDGE") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--ready-file")
        .arg(&ready_path)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bridge_bin().display()));

    let start = Instant::now();
    loop {
        if let Ok(text) = fs::read_to_string(&ready_path) {
            // The daemon renames the file into place, so a readable file is complete.
            match serde_json::from_str::<ReadyInfo>(&text) {
                Ok(ready) => {
                    assert_eq!(
                        ready.pid,
                        child.id(),
                        "ready file pid is not the spawned process"
                    );
                    return (child, ready);
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("ready file is not the contract's JSON ({e}): {text}");
                }
            }
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "daemon exited with {status} before writing its ready file\n--- daemon log ---\n{}",
                log_tail(dir, 40)
            );
        }
        if start.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "daemon not ready within {READY_TIMEOUT:?}\n--- daemon log ---\n{}",
                log_tail(dir, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
