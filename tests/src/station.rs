//! The project's own OCPP-J test station.
//!
//! A tokio-tungstenite websocket client with an independent, deliberately tiny OCPP-J frame
//! codec ([`Frame`]) — it shares no code with the daemon's `ocpp` crate, so a bug in one is not
//! mirrored in the other. One reader task routes every incoming text frame:
//!
//! - CALLRESULT/CALLERROR whose id matches an outstanding [`Station::call`] → that call;
//! - CALL from the CSMS → recorded, and answered per [`Station::on`] (default: CALLERROR
//!   `NotImplemented`, like a station without that feature);
//! - everything else (unparseable, unknown ids, id `"-1"`) → the raw queue read by
//!   [`Station::recv_raw`], for bad-frame tests.
//!
//! The close frame sent by the daemon (if any) is kept and exposed by [`Station::wait_closed`].
//! With [`StationOptions::tls`] the station connects over `wss://` (tokio-rustls with the
//! given client configuration: trusted CA, optional client certificate).
//! Every wait is bounded.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::daemon::Daemon;
use crate::payloads;

/// Default bound on one CALL → CALLRESULT round trip.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the websocket handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// OCPP version spoken on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcppVersion {
    /// OCPP-J 1.6, subprotocol `ocpp1.6`.
    V16,
    /// OCPP 2.0.1, subprotocol `ocpp2.0.1`.
    V201,
}

impl OcppVersion {
    /// The websocket subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            OcppVersion::V16 => "ocpp1.6",
            OcppVersion::V201 => "ocpp2.0.1",
        }
    }

    /// The version string used by the admin API (`ocpp_version`).
    pub fn admin_name(self) -> &'static str {
        match self {
            OcppVersion::V16 => "1.6",
            OcppVersion::V201 => "2.0.1",
        }
    }
}

/// One OCPP-J RPC frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `[2, id, action, payload]`
    Call {
        /// Message id.
        id: String,
        /// Action name.
        action: String,
        /// Request payload.
        payload: Value,
    },
    /// `[3, id, payload]`
    Result {
        /// Message id.
        id: String,
        /// Response payload.
        payload: Value,
    },
    /// `[4, id, code, description, details]`
    Error {
        /// Message id.
        id: String,
        /// Error code.
        code: String,
        /// Error description.
        description: String,
        /// Error details.
        details: Value,
    },
}

impl Frame {
    /// Serialise to the JSON array text.
    pub fn encode(&self) -> String {
        let v = match self {
            Frame::Call {
                id,
                action,
                payload,
            } => json!([2, id, action, payload]),
            Frame::Result { id, payload } => json!([3, id, payload]),
            Frame::Error {
                id,
                code,
                description,
                details,
            } => json!([4, id, code, description, details]),
        };
        v.to_string()
    }

    /// Parse the JSON array text; `Err` says why it is not a valid frame.
    pub fn decode(text: &str) -> Result<Frame, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let a = v.as_array().ok_or("not an array")?;
        let ty = a
            .first()
            .and_then(Value::as_u64)
            .ok_or("no message type id")?;
        let id = a
            .get(1)
            .and_then(Value::as_str)
            .ok_or("no message id")?
            .to_string();
        let s = |i: usize| a.get(i).and_then(Value::as_str).map(str::to_string);
        match (ty, a.len()) {
            (2, 4) => Ok(Frame::Call {
                id,
                action: s(2).ok_or("action not a string")?,
                payload: a[3].clone(),
            }),
            (3, 3) => Ok(Frame::Result {
                id,
                payload: a[2].clone(),
            }),
            (4, 5) => Ok(Frame::Error {
                id,
                code: s(2).ok_or("code not a string")?,
                description: s(3).ok_or("description not a string")?,
                details: a[4].clone(),
            }),
            (ty, len) => Err(format!("message type {ty} with {len} elements")),
        }
    }

    /// The message id.
    pub fn id(&self) -> &str {
        match self {
            Frame::Call { id, .. } | Frame::Result { id, .. } | Frame::Error { id, .. } => id,
        }
    }
}

/// A CALLERROR answer (or a local failure: code `<timeout>` / `<closed>`).
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// OCPP error code, or `<timeout>` / `<closed>` for local failures.
    pub code: String,
    /// Error description.
    pub description: String,
    /// Error details object.
    pub details: Value,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.code, self.description, self.details)
    }
}

impl std::error::Error for CallError {}

/// How the station answers a CALL from the CSMS.
#[derive(Debug, Clone)]
pub enum Reply {
    /// CALLRESULT with this payload.
    Result(Value),
    /// CALLERROR with this code and description.
    Error(String, String),
    /// Do not answer (to exercise the CSMS's call timeout).
    Ignore,
}

/// How the connection ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseInfo {
    /// Close code from the peer's close frame; `None` if the TCP stream ended without one.
    pub code: Option<u16>,
    /// Close reason (or the transport error when there was no close frame).
    pub reason: String,
}

/// Why a connection attempt failed.
#[derive(Debug, Clone)]
pub enum ConnectError {
    /// The server answered the upgrade request with a non-101 HTTP status.
    Http(u16),
    /// Any other failure (refused, timeout, protocol error).
    Other(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Http(s) => write!(f, "HTTP {s}"),
            ConnectError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ConnectError {}

type WsSink =
    std::pin::Pin<Box<dyn futures_util::Sink<Message, Error = tungstenite::Error> + Send>>;
type WsStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Send>>;

/// Opens the websocket, over TLS when `tls` is given (the URL's host names the server).
async fn open(
    req: tungstenite::handshake::client::Request,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(WsSink, WsStream, tungstenite::handshake::client::Response), tungstenite::Error> {
    let Some(tls) = tls else {
        let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
        let (sink, stream) = ws.split();
        return Ok((Box::pin(sink), Box::pin(stream), resp));
    };
    let host = req.uri().host().unwrap_or("localhost").to_owned();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = req.uri().port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let name = rustls_pki_types::ServerName::try_from(host)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (ws, resp) = tokio_tungstenite::client_async(req, stream).await?;
    let (sink, stream) = ws.split();
    Ok((Box::pin(sink), Box::pin(stream), resp))
}

/// Connection parameters.
#[derive(Debug, Clone)]
pub struct StationOptions {
    /// Full websocket URL, e.g. `ws://127.0.0.1:1234/ocpp/CS001`.
    pub url: String,
    /// Station id (used for the Basic-auth username).
    pub id: String,
    /// Version to speak.
    pub version: OcppVersion,
    /// Subprotocols offered, in preference order (default: just `version`'s).
    pub subprotocols: Vec<String>,
    /// `Authorization: Basic base64(user:password)` if set.
    pub basic_auth: Option<(String, String)>,
    /// Bound on each [`Station::call`].
    pub call_timeout: Duration,
    /// TLS client configuration for a `wss://` URL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl StationOptions {
    /// Options for `id` on `daemon`, speaking `version`, no auth.
    pub fn new(daemon: &Daemon, id: &str, version: OcppVersion) -> Self {
        Self {
            url: daemon.ocpp_url(id),
            id: id.into(),
            version,
            subprotocols: vec![version.subprotocol().into()],
            basic_auth: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            tls: None,
        }
    }

    /// Options for `id` on `daemon`'s TLS listener (`wss://`) with this client configuration.
    pub fn tls(
        daemon: &Daemon,
        id: &str,
        version: OcppVersion,
        config: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            url: daemon.ocpp_tls_url(id),
            tls: Some(config),
            ..Self::new(daemon, id, version)
        }
    }

    /// Authenticate as `id:password`.
    pub fn password(mut self, password: &str) -> Self {
        self.basic_auth = Some((self.id.clone(), password.into()));
        self
    }
}

#[derive(Debug, Default)]
struct Shared {
    /// Outstanding calls by message id.
    pending: Mutex<HashMap<String, oneshot::Sender<Frame>>>,
    /// Configured answers to CSMS-initiated CALLs, by action.
    handlers: Mutex<HashMap<String, Reply>>,
    /// Every CALL received from the CSMS, in order: (action, payload).
    received: Mutex<Vec<(String, Value)>>,
    /// Woken when `received` grows.
    received_notify: Notify,
}

/// A connected test station.
#[derive(Debug)]
pub struct Station {
    id: String,
    version: OcppVersion,
    call_timeout: Duration,
    selected_protocol: Option<String>,
    out: mpsc::UnboundedSender<Message>,
    raw: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    closed: watch::Receiver<Option<CloseInfo>>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Station {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Station {
    /// Connect `id` to `daemon` speaking `version`; panics (with the daemon log) on failure.
    pub async fn connect_to(daemon: &Daemon, id: &str, version: OcppVersion) -> Station {
        Self::connect_with(daemon, StationOptions::new(daemon, id, version)).await
    }

    /// Connect with explicit options; panics (with the daemon log) on failure.
    pub async fn connect_with(daemon: &Daemon, opts: StationOptions) -> Station {
        let url = opts.url.clone();
        match Self::connect(opts).await {
            Ok(s) => s,
            Err(e) => panic!(
                "connect {url}: {e}\n--- daemon log ---\n{}",
                daemon.log_tail(40)
            ),
        }
    }

    /// Open the websocket. Does not send BootNotification.
    pub async fn connect(opts: StationOptions) -> Result<Station, ConnectError> {
        let mut req = opts
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Other(format!("bad url: {e}")))?;
        if !opts.subprotocols.is_empty() {
            let v = HeaderValue::from_str(&opts.subprotocols.join(", "))
                .map_err(|e| ConnectError::Other(e.to_string()))?;
            req.headers_mut().insert("Sec-WebSocket-Protocol", v);
        }
        if let Some((user, pw)) = &opts.basic_auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
            let v = HeaderValue::from_str(&format!("Basic {token}"))
                .map_err(|e| ConnectError::Other(e.to_string()))?;
            req.headers_mut().insert("Authorization", v);
        }
        let (sink, stream, resp) =
            match tokio::time::timeout(CONNECT_TIMEOUT, open(req, opts.tls.clone())).await {
                Err(_) => {
                    return Err(ConnectError::Other(format!(
                        "handshake timed out after {CONNECT_TIMEOUT:?}"
                    )));
                }
                Ok(Err(tungstenite::Error::Http(resp))) => {
                    return Err(ConnectError::Http(resp.status().as_u16()));
                }
                Ok(Err(e)) => return Err(ConnectError::Other(e.to_string())),
                Ok(Ok(x)) => x,
            };
        let (mut sink, mut stream) = (sink, stream);
        let selected_protocol = resp
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (raw_tx, raw_rx) = mpsc::unbounded_channel::<String>();
        let (closed_tx, closed_rx) = watch::channel::<Option<CloseInfo>>(None);
        let shared = Arc::new(Shared::default());

        // The reader tells the writer when the stream has ended, so the writer drops its half
        // and the TCP connection is really closed (peers wait for that after a close handshake).
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let writer = tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = out_rx.recv() => match m {
                        Some(m) => {
                            if sink.send(m).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = &mut stop_rx => break,
                }
            }
        });

        let reader_shared = shared.clone();
        let reader_out = out_tx.clone();
        let reader = tokio::spawn(async move {
            let mut close: Option<CloseInfo> = None;
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Text(t)) => {
                        route_text(t.as_str(), &reader_shared, &reader_out, &raw_tx)
                    }
                    Ok(Message::Binary(b)) => {
                        let _ = raw_tx.send(format!("<binary {} bytes>", b.len()));
                    }
                    Ok(Message::Close(frame)) => {
                        let info = match frame {
                            Some(CloseFrame { code, reason }) => CloseInfo {
                                code: Some(u16::from(code)),
                                reason: reason.to_string(),
                            },
                            // A close frame without status: RFC 6455 reports 1005.
                            None => CloseInfo {
                                code: Some(1005),
                                reason: String::new(),
                            },
                        };
                        close.get_or_insert(info);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        close.get_or_insert(CloseInfo {
                            code: None,
                            reason: e.to_string(),
                        });
                        break;
                    }
                }
            }
            let info = close.unwrap_or(CloseInfo {
                code: None,
                reason: "stream ended".into(),
            });
            let _ = stop_tx.send(());
            let _ = closed_tx.send(Some(info));
            // Fail outstanding calls immediately rather than at their timeout.
            reader_shared.pending.lock().expect("pending lock").clear();
        });

        Ok(Station {
            id: opts.id,
            version: opts.version,
            call_timeout: opts.call_timeout,
            selected_protocol,
            out: out_tx,
            raw: tokio::sync::Mutex::new(raw_rx),
            closed: closed_rx,
            shared,
            tasks: vec![writer, reader],
        })
    }

    /// Station id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Version spoken.
    pub fn version(&self) -> OcppVersion {
        self.version
    }

    /// The subprotocol the server selected in its handshake response.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.selected_protocol.as_deref()
    }

    /// Send a CALL and wait (bounded) for its CALLRESULT payload or CALLERROR.
    pub async fn call(&self, action: &str, payload: Value) -> Result<Value, CallError> {
        self.call_with_timeout(action, payload, self.call_timeout)
            .await
    }

    /// [`Station::call`] with an explicit bound.
    pub async fn call_with_timeout(
        &self,
        action: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .expect("pending lock")
            .insert(id.clone(), tx);
        let frame = Frame::Call {
            id: id.clone(),
            action: action.into(),
            payload,
        };
        if self.out.send(Message::text(frame.encode())).is_err() {
            self.shared
                .pending
                .lock()
                .expect("pending lock")
                .remove(&id);
            return Err(local_error(
                "<closed>",
                format!("{action}: connection writer is gone"),
            ));
        }
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(f)) => f,
            Ok(Err(_)) => {
                return Err(local_error(
                    "<closed>",
                    format!("{action}: connection closed before the answer"),
                ));
            }
            Err(_) => {
                self.shared
                    .pending
                    .lock()
                    .expect("pending lock")
                    .remove(&id);
                return Err(local_error(
                    "<timeout>",
                    format!("{action}: no answer within {timeout:?}"),
                ));
            }
        };
        match answer {
            Frame::Result { payload, .. } => Ok(payload),
            Frame::Error {
                code,
                description,
                details,
                ..
            } => Err(CallError {
                code,
                description,
                details,
            }),
            Frame::Call { .. } => unreachable!("calls are never routed to pending"),
        }
    }

    /// [`Station::call`] that panics on CALLERROR/timeout, naming the action.
    pub async fn call_ok(&self, action: &str, payload: Value) -> Value {
        match self.call(action, payload).await {
            Ok(v) => v,
            Err(e) => panic!("{} {action} failed: {e}", self.id),
        }
    }

    /// Send BootNotification (version-appropriate payload from [`payloads`]) and assert Accepted.
    pub async fn boot(&self) -> Value {
        let payload = match self.version {
            OcppVersion::V16 => payloads::v16::boot(),
            OcppVersion::V201 => payloads::v201::boot(),
        };
        let resp = self.call_ok("BootNotification", payload).await;
        assert_eq!(
            resp["status"], "Accepted",
            "{} BootNotification: {resp}",
            self.id
        );
        resp
    }

    /// Send a raw text frame as is.
    pub fn send_raw(&self, text: &str) {
        let _ = self.out.send(Message::text(text.to_string()));
    }

    /// Next text frame not consumed by a pending call or as a CSMS CALL (bounded).
    pub async fn recv_raw(&self, timeout: Duration) -> Option<String> {
        let mut rx = self.raw.lock().await;
        tokio::time::timeout(timeout, rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// [`Station::recv_raw`] decoded as a frame; panics on timeout or an undecodable frame.
    pub async fn recv_raw_frame(&self, timeout: Duration) -> Frame {
        let text = self
            .recv_raw(timeout)
            .await
            .unwrap_or_else(|| panic!("{}: no unsolicited frame within {timeout:?}", self.id));
        Frame::decode(&text)
            .unwrap_or_else(|e| panic!("{}: daemon sent an invalid frame ({e}): {text}", self.id))
    }

    /// Answer CSMS CALLs of `action` with `reply` from now on.
    pub fn on(&self, action: &str, reply: Reply) {
        self.shared
            .handlers
            .lock()
            .expect("handlers lock")
            .insert(action.into(), reply);
    }

    /// All CALLs received from the CSMS so far: (action, payload).
    pub fn received_calls(&self) -> Vec<(String, Value)> {
        self.shared.received.lock().expect("received lock").clone()
    }

    /// Wait (bounded) until the CSMS has sent a CALL of `action`; returns its payload.
    pub async fn wait_for_call(&self, action: &str, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.received_notify.notified();
            if let Some((_, p)) = self.received_calls().into_iter().find(|(a, _)| a == action) {
                return Some(p);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// `Some` once the connection has ended.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.closed.borrow().clone()
    }

    /// Wait (bounded) for the connection to end; `None` if it is still open after `timeout`.
    pub async fn wait_closed(&self, timeout: Duration) -> Option<CloseInfo> {
        let mut rx = self.closed.clone();
        let res = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match res {
            Ok(Ok(v)) => v.clone(),
            // The reader task is gone (aborted) without reporting: treat as closed.
            Ok(Err(_)) => Some(CloseInfo {
                code: None,
                reason: "reader task ended".into(),
            }),
            Err(_) => None,
        }
    }

    /// Close the connection normally (1000) and wait (bounded) for the close handshake.
    pub async fn close(&self) -> Option<CloseInfo> {
        let _ = self.out.send(Message::Close(Some(CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "bye".into(),
        })));
        self.wait_closed(Duration::from_secs(5)).await
    }
}

fn local_error(code: &str, description: String) -> CallError {
    CallError {
        code: code.into(),
        description,
        details: json!({}),
    }
}

fn route_text(
    text: &str,
    shared: &Shared,
    out: &mpsc::UnboundedSender<Message>,
    raw: &mpsc::UnboundedSender<String>,
) {
    match Frame::decode(text) {
        Ok(Frame::Call {
            id,
            action,
            payload,
        }) => {
            let reply = shared
                .handlers
                .lock()
                .expect("handlers lock")
                .get(&action)
                .cloned();
            shared
                .received
                .lock()
                .expect("received lock")
                .push((action.clone(), payload));
            shared.received_notify.notify_waiters();
            let answer = match reply {
                Some(Reply::Result(p)) => Some(Frame::Result { id, payload: p }),
                Some(Reply::Error(code, description)) => Some(Frame::Error {
                    id,
                    code,
                    description,
                    details: json!({}),
                }),
                Some(Reply::Ignore) => None,
                None => Some(Frame::Error {
                    id,
                    code: "NotImplemented".into(),
                    description: format!("test station does not implement {action}"),
                    details: json!({}),
                }),
            };
            if let Some(f) = answer {
                let _ = out.send(Message::text(f.encode()));
            }
        }
        Ok(f) => {
            let waiter = shared.pending.lock().expect("pending lock").remove(f.id());
            match waiter {
                Some(tx) => {
                    let _ = tx.send(f);
                }
                None => {
                    let _ = raw.send(text.to_string());
                }
            }
        }
        Err(_) => {
            let _ = raw.send(text.to_string());
        }
    }
}
