//! `loadgen`: drives N simulated OCPP stations (1.6 or 2.0.1) against a CSMS and reports
//! throughput and latency percentiles per phase and message type (issue 15).
//!
//! Phases, each timed between barriers (every station finishes a phase before the next starts):
//! `connect` (websocket + BootNotification), `heartbeat`, `status` (StatusNotification),
//! `transaction` (Start + meter values + Stop, or 2.0.1 TransactionEvents), `reconnect` (every
//! station closes and reconnects + boots at once: the storm). Each station has one call in
//! flight at a time, as OCPP-J requires.
//!
//! `--echo` starts a built-in bare CSMS (tokio-tungstenite + serde_json, answers every call with
//! a fixed payload) and runs against it: the parsing limit the bridge's figures are compared to.
//! `--pid` samples that process's resident memory from `/proc/PID/status` after each phase.
//! Source addresses are spread over 127.0.0.1–127.0.0.250 so that tens of thousands of
//! connections fit in the ephemeral port range, and the fd limit is raised to the hard limit.
//!
//! `--ocpi-versions-url URL --ocpi-token-a TOKEN --latency-changes N` adds the `latency` phase
//! after `connect`: a fake OCPI eMSP ([`hub`]) registers with the bridge, answers every push
//! after `--hub-delay-ms`, and times each EVSE PATCH against the StatusNotification that caused
//! it, while the stations make N status changes in total at `--latency-rate` changes/s (spread
//! over the stations). The stations must be configured at a location so that their EVSEs are
//! published. `--cdrs` (with the eMSP) pushes the eMSP's token for the stations' idTag first,
//! so every transaction is one of its OCPI sessions, and reports when the last CDR arrived
//! after the `transaction` phase (`ocpi_cdrs`).

mod hub;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "OCPP load generator for ocpp-ocpi-bridge")]
struct Args {
    /// Base websocket URL of the CSMS; the station id is appended (`{url}/{id}`).
    #[arg(long, default_value = "ws://127.0.0.1:9000/ocpp")]
    url: String,
    /// Run against a built-in bare echo CSMS instead of `--url`.
    #[arg(long)]
    echo: bool,
    /// Number of stations.
    #[arg(long, default_value_t = 100)]
    stations: usize,
    /// OCPP version: `1.6` or `2.0.1`.
    #[arg(long, default_value = "1.6")]
    ocpp: String,
    /// Heartbeats per station.
    #[arg(long, default_value_t = 10)]
    heartbeats: usize,
    /// StatusNotifications per station.
    #[arg(long, default_value_t = 4)]
    statuses: usize,
    /// Transactions per station.
    #[arg(long, default_value_t = 1)]
    transactions: usize,
    /// Meter values per transaction.
    #[arg(long, default_value_t = 8)]
    meter_values: usize,
    /// Run the reconnect storm phase.
    #[arg(long)]
    reconnect: bool,
    /// Process whose RSS is sampled after each phase (e.g. the daemon's pid).
    #[arg(long)]
    pid: Option<u32>,
    /// Station id prefix (ids are `{prefix}{n}`).
    #[arg(long, default_value = "LG")]
    prefix: String,
    /// Write the report (JSON) to this file too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// Bound on one call's answer, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// The bridge's OCPI versions URL: enables the `latency` phase (with `--ocpi-token-a`).
    #[arg(long)]
    ocpi_versions_url: Option<String>,
    /// The bridge's `ocpi.token_a`.
    #[arg(long)]
    ocpi_token_a: Option<String>,
    /// Status changes in the `latency` phase, over all stations.
    #[arg(long, default_value_t = 0)]
    latency_changes: usize,
    /// Status changes per second in the `latency` phase.
    #[arg(long, default_value_t = 100.0)]
    latency_rate: f64,
    /// The fake eMSP answers each push after this many milliseconds.
    #[arg(long, default_value_t = 0)]
    hub_delay_ms: u64,
    /// With the fake eMSP: push its token for the stations' idTag (`LOADGEN`, whitelist ALWAYS)
    /// first, so every transaction is an OCPI session of that eMSP, and report how long after
    /// the `transaction` phase ended its last CDR arrived.
    #[arg(long)]
    cdrs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V16,
    V201,
}

impl Version {
    fn subprotocol(self) -> &'static str {
        match self {
            Version::V16 => "ocpp1.6",
            Version::V201 => "ocpp2.0.1",
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Hists = BTreeMap<&'static str, Histogram<u64>>;

const PHASES: [&str; 6] = [
    "connect",
    "latency",
    "heartbeat",
    "status",
    "transaction",
    "reconnect",
];

/// One simulated station.
struct Station {
    id: String,
    n: usize,
    ws: Option<Ws>,
    next_id: u64,
    hists: Hists,
    errors: u64,
}

struct Plan {
    url: String,
    version: Version,
    heartbeats: usize,
    statuses: usize,
    transactions: usize,
    meter_values: usize,
    reconnect: bool,
    timeout: Duration,
    stations: usize,
    /// The `latency` phase: the fake eMSP, the number of changes, their rate, and when they
    /// start (set once the eMSP knows every EVSE).
    latency: Option<Latency>,
}

struct Latency {
    hub: Arc<hub::Hub>,
    changes: usize,
    rate: f64,
    start: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Station {
    async fn connect(&mut self, plan: &Plan) -> Result<()> {
        let url = format!("{}/{}", plan.url.trim_end_matches('/'), self.id);
        let mut req = url.as_str().into_client_request()?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            plan.version.subprotocol().parse()?,
        );
        let host: SocketAddr = {
            let u = req.uri();
            let h = u.host().ok_or_else(|| anyhow!("no host in {url}"))?;
            let port = u.port_u16().unwrap_or(80);
            tokio::net::lookup_host((h, port))
                .await?
                .next()
                .ok_or_else(|| anyhow!("cannot resolve {h}"))?
        };
        let socket = TcpSocket::new_v4()?;
        if host.ip().is_loopback() {
            // Spread over 127.0.0.1..=250: each source address has its own ephemeral ports.
            let src = Ipv4Addr::new(127, 0, 0, 1 + (self.n % 250) as u8);
            socket.bind(SocketAddr::new(src.into(), 0))?;
        }
        let tcp = socket.connect(host).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio::time::timeout(
            plan.timeout,
            tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp)),
        )
        .await
        .context("handshake timed out")??;
        self.ws = Some(ws);
        Ok(())
    }

    /// One call, timed: sends it and waits for its CALLRESULT (or CALLERROR).
    async fn call(&mut self, action: &'static str, payload: Value, plan: &Plan) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let frame = json!([2, id, action, payload]).to_string();
        let ws = self.ws.as_mut().ok_or_else(|| anyhow!("not connected"))?;
        let started = Instant::now();
        ws.send(Message::text(frame)).await?;
        let answer = tokio::time::timeout(plan.timeout, async {
            while let Some(msg) = ws.next().await {
                let text = match msg? {
                    Message::Text(t) => t,
                    Message::Close(_) => bail!("closed by the CSMS"),
                    _ => continue,
                };
                let v: Value = serde_json::from_str(&text)?;
                match v.get(0).and_then(Value::as_u64) {
                    // A call from the CSMS (e.g. TriggerMessage): answer it.
                    Some(2) => {
                        let reply = json!([3, v[1], {"status": "Rejected"}]).to_string();
                        ws.send(Message::text(reply)).await?;
                    }
                    Some(3) if v[1] == id.as_str() => return Ok(v[2].clone()),
                    Some(4) if v[1] == id.as_str() => bail!("CALLERROR {action}: {text}"),
                    _ => {}
                }
            }
            bail!("connection ended")
        })
        .await
        .with_context(|| format!("{action} timed out"))??;
        let us = started.elapsed().as_micros() as u64;
        self.hists
            .entry(action)
            .or_insert_with(|| Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"))
            .saturating_record(us.clamp(1, 600_000_000));
        Ok(answer)
    }

    async fn boot(&mut self, plan: &Plan) -> Result<()> {
        let payload = match plan.version {
            Version::V16 => json!({"chargePointVendor": "loadgen", "chargePointModel": "LG-1"}),
            Version::V201 => json!({
                "chargingStation": {"vendorName": "loadgen", "model": "LG-1"},
                "reason": "PowerUp"
            }),
        };
        self.call("BootNotification", payload, plan).await?;
        Ok(())
    }

    async fn status(&mut self, k: usize, plan: &Plan) -> Result<()> {
        let status = if k.is_multiple_of(2) {
            "Available"
        } else {
            "Occupied"
        };
        let payload = match plan.version {
            Version::V16 => json!({
                "connectorId": 1, "errorCode": "NoError", "timestamp": now(),
                "status": if k.is_multiple_of(2) { "Available" } else { "Preparing" }
            }),
            Version::V201 => json!({
                "timestamp": now(), "connectorStatus": status, "evseId": 1, "connectorId": 1
            }),
        };
        self.call("StatusNotification", payload, plan).await?;
        Ok(())
    }

    async fn transaction(&mut self, k: usize, plan: &Plan) -> Result<()> {
        let mvs = plan.meter_values;
        match plan.version {
            Version::V16 => {
                let ans = self
                    .call(
                        "StartTransaction",
                        json!({"connectorId": 1, "idTag": "LOADGEN", "meterStart": 0, "timestamp": now()}),
                        plan,
                    )
                    .await?;
                let tx = ans
                    .get("transactionId")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| anyhow!("StartTransaction without transactionId: {ans}"))?;
                for i in 1..=mvs {
                    self.call("MeterValues", json!({
                        "connectorId": 1, "transactionId": tx,
                        "meterValue": [{"timestamp": now(), "sampledValue": [{
                            "value": (i * 100).to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh"
                        }]}]
                    }), plan).await?;
                }
                self.call(
                    "StopTransaction",
                    json!({"transactionId": tx, "meterStop": (mvs + 1) * 100, "timestamp": now(), "reason": "Local"}),
                    plan,
                )
                .await?;
            }
            Version::V201 => {
                let tx = format!("{}-{}-{}", self.id, k, self.next_id);
                let evse = json!({"id": 1, "connectorId": 1});
                self.call("TransactionEvent", json!({
                    "eventType": "Started", "timestamp": now(), "triggerReason": "Authorized", "seqNo": 0,
                    "transactionInfo": {"transactionId": tx}, "evse": evse,
                    "idToken": {"idToken": "LOADGEN", "type": "ISO14443"}
                }), plan).await?;
                for i in 1..=mvs {
                    self.call("TransactionEvent", json!({
                        "eventType": "Updated", "timestamp": now(), "triggerReason": "MeterValuePeriodic",
                        "seqNo": i, "transactionInfo": {"transactionId": tx},
                        "meterValue": [{"timestamp": now(), "sampledValue": [{
                            "value": (i * 100) as f64, "measurand": "Energy.Active.Import.Register"
                        }]}]
                    }), plan).await?;
                }
                self.call("TransactionEvent", json!({
                    "eventType": "Ended", "timestamp": now(), "triggerReason": "StopAuthorized",
                    "seqNo": mvs + 1, "transactionInfo": {"transactionId": tx, "stoppedReason": "Local"},
                    "meterValue": [{"timestamp": now(), "sampledValue": [{
                        "value": ((mvs + 1) * 100) as f64, "measurand": "Energy.Active.Import.Register"
                    }]}]
                }), plan).await?;
            }
        }
        Ok(())
    }

    /// The `latency` phase: publish the EVSE (Available), wait for the common start, then make
    /// this station's share of the changes at their scheduled times.
    async fn latency(&mut self, plan: &Plan) -> Result<()> {
        let Some(l) = &plan.latency else {
            return Ok(());
        };
        self.status(0, plan).await?;
        let mut start = l.start.clone();
        let t0 = start
            .wait_for(Option::is_some)
            .await
            .map_err(|_| anyhow!("no start"))?
            .expect("set");
        let mut k = 0usize;
        loop {
            let j = k * plan.stations + self.n;
            if j >= l.changes {
                return Ok(());
            }
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(j as f64 / l.rate)).await;
            // Odd k: busy (CHARGING), even k: AVAILABLE again; every change is a new status.
            let ocpi = if k.is_multiple_of(2) {
                "CHARGING"
            } else {
                "AVAILABLE"
            };
            l.hub.sending(&self.id, ocpi);
            self.status(k + 1, plan).await?;
            k += 1;
        }
    }

    async fn phase(&mut self, phase: &str, plan: &Plan) -> Result<()> {
        match phase {
            "connect" => {
                self.connect(plan).await?;
                self.boot(plan).await
            }
            "heartbeat" => {
                for _ in 0..plan.heartbeats {
                    self.call("Heartbeat", json!({}), plan).await?;
                }
                Ok(())
            }
            "status" => {
                for k in 0..plan.statuses {
                    self.status(k, plan).await?;
                }
                Ok(())
            }
            "transaction" => {
                for k in 0..plan.transactions {
                    self.transaction(k, plan).await?;
                }
                Ok(())
            }
            "latency" => self.latency(plan).await,
            "reconnect" => {
                if let Some(mut ws) = self.ws.take() {
                    let _ = ws.close(None).await;
                }
                self.connect(plan).await?;
                self.boot(plan).await
            }
            _ => Ok(()),
        }
    }
}

/// Resident memory of a process in KiB, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Raises the soft fd limit to the hard limit.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((_, hard)) => {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
            getrlimit(Resource::RLIMIT_NOFILE).map(|l| l.0).unwrap_or(0)
        }
        Err(_) => 0,
    }
}

/// The bare echo CSMS: parses every frame and answers calls with a fixed payload.
async fn echo_server() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut tx_ids = 0i64;
        while let Ok((tcp, _)) = listener.accept().await {
            tx_ids += 1;
            let tx_id = tx_ids;
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                #[allow(clippy::result_large_err)]
                let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    if let Some(p) = req.headers().get("Sec-WebSocket-Protocol") {
                        let first = p.to_str().unwrap_or("").split(',').next().unwrap_or("").trim().to_owned();
                        if let Ok(v) = first.parse() {
                            resp.headers_mut().insert("Sec-WebSocket-Protocol", v);
                        }
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if v.get(0).and_then(Value::as_u64) != Some(2) {
                        continue;
                    }
                    let answer = json!([3, v[1], {
                        "status": "Accepted", "currentTime": now(), "interval": 300,
                        "transactionId": tx_id, "idTagInfo": {"status": "Accepted"}
                    }]);
                    if ws.send(Message::text(answer.to_string())).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

fn summary(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let version = match args.ocpp.as_str() {
        "1.6" => Version::V16,
        "2.0.1" => Version::V201,
        other => bail!("--ocpp must be 1.6 or 2.0.1, not {other}"),
    };
    let fd_limit = raise_fd_limit();
    let url = if args.echo {
        format!("ws://{}/ocpp", echo_server().await?)
    } else {
        args.url.clone()
    };
    let (start_tx, start_rx) = tokio::sync::watch::channel(None);
    let hub = match (&args.ocpi_versions_url, &args.ocpi_token_a) {
        (Some(versions), Some(token)) if args.latency_changes > 0 || args.cdrs => {
            let hub = hub::Hub::start(Duration::from_millis(args.hub_delay_ms)).await?;
            hub.register(versions, token)
                .await
                .context("registering the fake eMSP with the bridge")?;
            if args.cdrs {
                hub.push_token("LOADGEN")
                    .await
                    .context("pushing the eMSP's token")?;
            }
            Some(Arc::new(hub))
        }
        _ => None,
    };
    let latency = hub
        .as_ref()
        .filter(|_| args.latency_changes > 0)
        .map(|hub| Latency {
            hub: hub.clone(),
            changes: args.latency_changes,
            rate: args.latency_rate.max(0.001),
            start: start_rx,
        });
    let plan = Arc::new(Plan {
        stations: args.stations,
        latency,
        url: url.clone(),
        version,
        heartbeats: args.heartbeats,
        statuses: args.statuses,
        transactions: args.transactions,
        meter_values: args.meter_values,
        reconnect: args.reconnect,
        timeout: Duration::from_secs(args.timeout),
    });
    let phases: Vec<&'static str> = PHASES
        .iter()
        .copied()
        .filter(|p| match *p {
            "heartbeat" => plan.heartbeats > 0,
            "status" => plan.statuses > 0,
            "transaction" => plan.transactions > 0,
            "reconnect" => plan.reconnect,
            "latency" => plan.latency.is_some(),
            _ => true,
        })
        .collect();
    let n = args.stations;
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (plan, barrier, phases) = (plan.clone(), barrier.clone(), phases.clone());
        let id = format!("{}{}", args.prefix, i);
        tasks.push(tokio::spawn(async move {
            let mut st = Station {
                id,
                n: i,
                ws: None,
                next_id: 0,
                hists: BTreeMap::new(),
                errors: 0,
            };
            let mut per_phase: Vec<(u64, u64)> = Vec::new();
            let mut first_error = None;
            for phase in &phases {
                barrier.wait().await;
                let before: u64 = st.hists.values().map(|h| h.len()).sum();
                if let Err(e) = st.phase(phase, &plan).await {
                    st.errors += 1;
                    first_error.get_or_insert_with(|| format!("{}: {phase}: {e:#}", st.id));
                }
                let after: u64 = st.hists.values().map(|h| h.len()).sum();
                per_phase.push((after - before, st.errors));
                barrier.wait().await;
            }
            if let Some(mut ws) = st.ws.take() {
                let _ = ws.close(None).await;
            }
            (st.hists, per_phase, first_error)
        }));
    }
    let mut phase_report = Vec::new();
    let mut latency_report = Value::Null;
    let mut cdr_report = Value::Null;
    for phase in &phases {
        barrier.wait().await;
        let started = Instant::now();
        if *phase == "latency"
            && let Some(hub) = &hub
        {
            // Every EVSE known to the eMSP (their Location PUTs arrived), then go.
            let deadline = Instant::now() + Duration::from_secs(120);
            while hub.known_evses() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!("latency: the eMSP knows {} EVSEs", hub.known_evses());
            let _ = start_tx.send(Some(
                tokio::time::Instant::now() + Duration::from_millis(200),
            ));
        }
        barrier.wait().await;
        let secs = started.elapsed().as_secs_f64();
        if *phase == "latency"
            && let Some(hub) = &hub
        {
            let want = args.latency_changes as u64;
            let deadline = Instant::now() + Duration::from_secs(30);
            let matched = || {
                hub.shared()
                    .matched
                    .load(std::sync::atomic::Ordering::Relaxed)
            };
            while matched() < want && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let h = hub.latency();
            latency_report = json!({
                "changes": want, "rate_per_s": args.latency_rate, "hub_delay_ms": args.hub_delay_ms,
                "patches": hub.shared().patches.load(std::sync::atomic::Ordering::Relaxed),
                "matched": matched(), "status_to_patch": summary(&h),
            });
            eprintln!("latency: {latency_report}");
        }
        if *phase == "transaction"
            && args.cdrs
            && let Some(hub) = &hub
        {
            // Every transaction's CDR at the eMSP: how long after the last stop was answered.
            let want = (n * args.transactions) as u64;
            let ended = Instant::now();
            let deadline = ended + Duration::from_secs(120);
            while hub.cdrs().0 < want && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let (got, last) = hub.cdrs();
            let after = last.map(|t| t.saturating_duration_since(ended).as_secs_f64());
            cdr_report = json!({"expected": want, "delivered": got,
                "last_cdr_after_phase_s": after.map(|a| (a * 1000.0).round() / 1000.0)});
            eprintln!("cdrs: {cdr_report}");
        }
        let rss = args.pid.and_then(rss_kib);
        phase_report.push((phase.to_string(), secs, rss));
        eprintln!("phase {phase}: {secs:.3} s, daemon RSS {rss:?} KiB");
    }
    let mut hists: Hists = BTreeMap::new();
    let mut msgs = vec![0u64; phases.len()];
    let mut failed = vec![0u64; phases.len()];
    let mut errors = Vec::new();
    for t in tasks {
        let (h, per_phase, err) = t.await?;
        for (k, v) in h {
            hists
                .entry(k)
                .or_insert_with(|| {
                    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")
                })
                .add(&v)
                .ok();
        }
        let mut prev_err = 0;
        for (i, (m, e)) in per_phase.into_iter().enumerate() {
            msgs[i] += m;
            failed[i] += e - prev_err;
            prev_err = e;
        }
        errors.extend(err);
    }
    let phases_json: Vec<Value> = phase_report
        .iter()
        .enumerate()
        .map(|(i, (name, secs, rss))| {
            json!({
                "phase": name, "seconds": (secs * 1000.0).round() / 1000.0,
                "messages": msgs[i], "msg_per_s": (msgs[i] as f64 / secs).round(),
                "stations_failed": failed[i], "rss_kib": rss,
            })
        })
        .collect();
    let latency: serde_json::Map<String, Value> = hists
        .iter()
        .map(|(k, h)| (k.to_string(), summary(h)))
        .collect();
    let report = json!({
        "target": if args.echo { "echo".to_owned() } else { url },
        "ocpp": args.ocpp, "stations": n, "fd_limit": fd_limit,
        "phases": phases_json, "latency": latency, "ocpi_latency": latency_report,
        "ocpi_cdrs": cdr_report,
        "errors": errors.len(), "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = &args.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if !errors.is_empty() {
        bail!("{} stations failed; first: {}", errors.len(), errors[0]);
    }
    Ok(())
}
