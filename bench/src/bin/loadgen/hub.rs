//! The fake OCPI eMSP of the `latency` phase: registers with the bridge (its token A), receives
//! Location PUTs (to learn which EVSE uid belongs to which station) and EVSE PATCHes, answers
//! each after a fixed delay (a hub across the internet), and timestamps every PATCH against the
//! moment its station sent the StatusNotification: the end-to-end latency station → hub. It
//! also receives Sessions and CDRs of its own token (`push_token`), and counts the CDRs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// What the hub saw.
pub(crate) struct Shared {
    base: String,
    delay: Duration,
    /// EVSE uid → station id (from the Location PUTs).
    stations: Mutex<HashMap<String, String>>,
    /// Station id → (OCPI status expected, when the StatusNotification was sent).
    sent: Mutex<HashMap<String, (String, Instant)>>,
    /// StatusNotification → PATCH, µs.
    latency: Mutex<Histogram<u64>>,
    /// PATCHes that matched a sent change.
    pub(crate) matched: AtomicU64,
    /// Every EVSE PATCH received.
    pub(crate) patches: AtomicU64,
    /// CDR POSTs received.
    pub(crate) cdrs: AtomicU64,
    /// When the last CDR arrived.
    last_cdr: Mutex<Option<Instant>>,
}

/// The running hub.
pub(crate) struct Hub {
    shared: Arc<Shared>,
    http: reqwest::Client,
    /// After registration: the bridge's Tokens receiver and the token it gave us.
    bridge: Mutex<Option<(String, String)>>,
}

impl Hub {
    /// Serves on 127.0.0.1:0; every push is answered after `delay`.
    pub(crate) async fn start(delay: Duration) -> Result<Hub> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            delay,
            stations: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
            latency: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
            matched: AtomicU64::new(0),
            patches: AtomicU64::new(0),
            cdrs: AtomicU64::new(0),
            last_cdr: Mutex::new(None),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()?;
        Ok(Hub {
            shared,
            http,
            bridge: Mutex::new(None),
        })
    }

    /// Registers with the bridge as an eMSP (NL/LGE) with the bridge's token A.
    pub(crate) async fn register(&self, versions_url: &str, token_a: &str) -> Result<()> {
        let auth = format!(
            "Token {}",
            base64::engine::general_purpose::STANDARD.encode(token_a)
        );
        let get = |url: String| {
            let req = self.http.get(&url).header("Authorization", &auth);
            async move {
                let v: Value = req.send().await?.json().await?;
                anyhow::Ok(v)
            }
        };
        let versions = get(versions_url.to_owned()).await?;
        let details_url = versions["data"]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["version"] == "2.2.1"))
            .and_then(|v| v["url"].as_str())
            .ok_or_else(|| anyhow!("no 2.2.1 in {versions}"))?
            .to_owned();
        let details = get(details_url).await?;
        let credentials = details["data"]["endpoints"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["identifier"] == "credentials"))
            .and_then(|e| e["url"].as_str())
            .ok_or_else(|| anyhow!("no credentials endpoint in {details}"))?
            .to_owned();
        let body = json!({
            "token": "loadgen-token-b",
            "url": format!("{}/ocpi/versions", self.shared.base),
            "roles": [{"role": "EMSP", "country_code": "NL", "party_id": "LGE",
                "business_details": {"name": "loadgen eMSP"}}],
        });
        let answer: Value = self
            .http
            .post(&credentials)
            .header("Authorization", &auth)
            .json(&body)
            .send()
            .await?
            .json()
            .await
            .context("credentials answer")?;
        if answer["status_code"] != 1000 {
            bail!("registration refused: {answer}");
        }
        let tokens = details["data"]["endpoints"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|e| e["identifier"] == "tokens" && e["role"] == "RECEIVER")
            })
            .and_then(|e| e["url"].as_str())
            .map(str::to_owned);
        let token_c = answer["data"]["token"].as_str().map(str::to_owned);
        if let (Some(t), Some(c)) = (tokens, token_c) {
            *self.bridge.lock().expect("lock") = Some((t, c));
        }
        Ok(())
    }

    /// Pushes an RFID token of ours (NL/LGE) with whitelist ALWAYS to the bridge, so that
    /// sessions of `uid` are ours: their Sessions and CDRs come to this eMSP.
    pub(crate) async fn push_token(&self, uid: &str) -> Result<()> {
        let (url, token) = self
            .bridge
            .lock()
            .expect("lock")
            .clone()
            .ok_or_else(|| anyhow!("not registered, or the bridge has no Tokens receiver"))?;
        let body = json!({"country_code": "NL", "party_id": "LGE", "uid": uid, "type": "RFID",
            "contract_id": format!("NL-LGE-C{uid}"), "issuer": "loadgen", "valid": true,
            "whitelist": "ALWAYS",
            "last_updated": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
        let auth = format!(
            "Token {}",
            base64::engine::general_purpose::STANDARD.encode(token)
        );
        let answer: Value = self
            .http
            .put(format!("{url}/NL/LGE/{uid}?type=RFID"))
            .header("Authorization", auth)
            .json(&body)
            .send()
            .await?
            .json()
            .await
            .context("token PUT answer")?;
        if answer["status_code"] != 1000 {
            bail!("token refused: {answer}");
        }
        Ok(())
    }

    /// CDRs received so far, and when the last one arrived.
    pub(crate) fn cdrs(&self) -> (u64, Option<Instant>) {
        (
            self.shared.cdrs.load(Ordering::Relaxed),
            *self.shared.last_cdr.lock().expect("lock"),
        )
    }

    /// How many EVSE uids the hub knows from Location PUTs.
    pub(crate) fn known_evses(&self) -> usize {
        self.shared.stations.lock().expect("lock").len()
    }

    /// A station is about to send a status that the hub should see as `ocpi_status`.
    pub(crate) fn sending(&self, station: &str, ocpi_status: &str) {
        self.shared
            .sent
            .lock()
            .expect("lock")
            .insert(station.to_owned(), (ocpi_status.to_owned(), Instant::now()));
    }

    /// The latency histogram so far.
    pub(crate) fn latency(&self) -> Histogram<u64> {
        self.shared.latency.lock().expect("lock").clone()
    }

    /// The shared counters.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

fn envelope(data: Value) -> Response {
    let body = json!({"status_code": 1000, "status_message": "Success", "data": data,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    if path == "/ocpi/versions" {
        return envelope(json!([{"version": "2.2.1", "url": format!("{}/ocpi/2.2.1", s.base)}]));
    }
    if path == "/ocpi/2.2.1" {
        return envelope(json!({"version": "2.2.1", "endpoints": [
            {"identifier": "credentials", "role": "RECEIVER", "url": format!("{}/ocpi/2.2.1/credentials", s.base)},
            {"identifier": "locations", "role": "RECEIVER", "url": format!("{}/ocpi/emsp/2.2.1/locations", s.base)},
            {"identifier": "sessions", "role": "RECEIVER", "url": format!("{}/ocpi/emsp/2.2.1/sessions", s.base)},
            {"identifier": "cdrs", "role": "RECEIVER", "url": format!("{}/ocpi/emsp/2.2.1/cdrs", s.base)},
        ]}));
    }
    if parts.method == Method::POST && path.trim_end_matches('/') == "/ocpi/emsp/2.2.1/cdrs" {
        s.cdrs.fetch_add(1, Ordering::Relaxed);
        *s.last_cdr.lock().expect("lock") = Some(arrived);
        tokio::time::sleep(s.delay).await;
        // A receiver answers a CDR with its Location.
        let id: Value = serde_json::from_slice::<Value>(&body).unwrap_or_default()["id"].clone();
        let mut answer = envelope(Value::Null);
        if let Some(id) = id.as_str()
            && let Ok(v) = format!("{}/ocpi/emsp/2.2.1/cdrs/{id}", s.base).parse()
        {
            answer.headers_mut().insert("location", v);
        }
        return answer;
    }
    if !path.starts_with("/ocpi/emsp/2.2.1/locations/") {
        // Sessions and anything else: accepted.
        tokio::time::sleep(s.delay).await;
        return envelope(Value::Null);
    }
    let segments: Vec<&str> = path
        .trim_start_matches("/ocpi/emsp/2.2.1/locations/")
        .split('/')
        .collect();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match (parts.method.clone(), segments.len()) {
        // PUT {cc}/{pid}/{location}: learn uid → station from evse_id `NL*BRG*E{station}*{n}`.
        (Method::PUT, 3) => {
            let mut map = s.stations.lock().expect("lock");
            for e in parsed["evses"].as_array().into_iter().flatten() {
                let (Some(uid), Some(evse_id)) = (e["uid"].as_str(), e["evse_id"].as_str()) else {
                    continue;
                };
                if let Some(station) = evse_id.split('*').nth(2).and_then(|p| p.strip_prefix('E')) {
                    map.insert(uid.to_owned(), station.to_owned());
                }
            }
        }
        // PATCH {cc}/{pid}/{location}/{uid}: a status change arrived.
        (Method::PATCH, 4) => {
            s.patches.fetch_add(1, Ordering::Relaxed);
            let station = s.stations.lock().expect("lock").get(segments[3]).cloned();
            if let (Some(station), Some(status)) = (station, parsed["status"].as_str()) {
                let sent = s.sent.lock().expect("lock").get(&station).cloned();
                if let Some((want, at)) = sent
                    && want == status
                {
                    let us = arrived.duration_since(at).as_micros() as u64;
                    s.latency
                        .lock()
                        .expect("lock")
                        .saturating_record(us.clamp(1, 600_000_000));
                    s.matched.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        _ => {}
    }
    tokio::time::sleep(s.delay).await;
    envelope(Value::Null)
}
