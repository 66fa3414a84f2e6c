//! The OCPP-J listener: accept loop, websocket handshake, shutdown.
//!
//! Invariants:
//! - At most `max_connections` sockets are open: a semaphore permit is taken right after
//!   `accept()` and released when the connection's task ends; a socket that finds none is
//!   answered HTTP 503 at once (it never waits in the backlog), and one from an address with
//!   `max_pending_per_address` handshakes in progress is answered HTTP 429, so one address
//!   cannot hold every slot with half-open handshakes.
//! - A TLS listener ([`Server::with_tls`]) runs the TLS handshake first, within the same
//!   `handshake_timeout`; a failed one (e.g. a client certificate from another CA) is logged and
//!   closed. Sockets refused for capacity are closed without an HTTP answer there. The
//!   application learns whether the connection is TLS and the CN of a verified client
//!   certificate ([`Credentials`]).
//! - Everything is decided before the upgrade: the path must be `/ocpp/{id}` (404 otherwise),
//!   the application admits the station (401 with `WWW-Authenticate` / 403 / 404), and the
//!   subprotocol is the first of the station's offers (in its order) that we speak. With no
//!   common subprotocol the handshake completes without the header and the connection is closed
//!   at once with 1002 (OCPP-J 1.6 §3.2, 2.0.1 Part 4 §3.2).
//! - The handshake runs under `handshake_timeout`; each websocket keeps small buffers (the design
//!   target is 10,000 stations in well under 1 GiB).
//! - [`Server::run`] returns only after every connection task has ended (bounded by
//!   [`SHUTDOWN_GRACE`] after the shutdown token is cancelled); connections close with 1001.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HeaderMap, HeaderValue, SEC_WEBSOCKET_PROTOCOL,
    WWW_AUTHENTICATE,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::connection::{self, Shared};
use crate::tls::TlsHandle;
use crate::{Admission, Credentials, Csms, OcppVersion, Registry, StationId};

/// How long [`Server::run`] waits for connections to close after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest station identity (2.0.1 `identifierString`).
pub const MAX_STATION_ID_LEN: usize = 48;
/// Per-connection read buffer (eagerly allocated by tungstenite).
const READ_BUFFER: usize = 4 * 1024;

/// Limits and timeouts of the OCPP listener.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest websocket message (and frame) accepted from a station, in bytes.
    pub max_frame_bytes: usize,
    /// How long an outgoing CALL waits for its answer once written (and at most in the queue).
    pub call_timeout: Duration,
    /// How often we ping each station; zero turns our pings off.
    pub ping_interval: Duration,
    /// How long after our ping some frame must arrive before we close; also bounds each write.
    pub pong_timeout: Duration,
    /// How long the TCP → websocket handshake may take.
    pub handshake_timeout: Duration,
    /// Most simultaneously open station sockets (including handshakes in progress). A socket
    /// above it is answered HTTP 503 at once and closed.
    pub max_connections: usize,
    /// Most handshakes in progress from one IP address; more are answered HTTP 429 at once, so
    /// that one address (a broken charger, a scanner) cannot hold every slot.
    pub max_pending_per_address: usize,
    /// Station CALLs that may wait while one is being handled; more are answered `GenericError`.
    pub queued_requests: usize,
    /// Wrong or missing station passwords from one IP address allowed per minute; beyond them
    /// the address is answered HTTP 429 before its credentials are looked at, until the minute
    /// is over.
    pub max_auth_failures_per_minute: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            max_frame_bytes: 65536,
            call_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
            max_connections: 20000,
            max_pending_per_address: 32,
            queued_requests: 8,
            max_auth_failures_per_minute: 10,
        }
    }
}

impl ServerSettings {
    /// The websocket configuration of every station connection: small buffers, bounded messages.
    pub fn websocket_config(&self) -> WebSocketConfig {
        let max = self.max_frame_bytes.max(1);
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            // Every message is flushed as it is sent; nothing to gain from buffering.
            .write_buffer_size(0)
            // Only grows while the socket refuses writes: room for our largest message.
            .max_write_buffer_size(max.saturating_mul(4).max(1 << 20))
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
    }
}

/// The OCPP-J listener.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: Arc<ServerSettings>,
    registry: Registry,
    tls: Option<TlsHandle>,
}

/// What the transport established before the HTTP request.
#[derive(Debug, Clone, Default)]
struct Transport {
    tls: bool,
    client_cert_cn: Option<String>,
}

/// What the handshake callback decided.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// Upgraded; `version` is `None` when no offered subprotocol is supported.
    Accepted {
        station: StationId,
        version: Option<OcppVersion>,
    },
    /// Answered with an HTTP error; the reason is the metrics label.
    Rejected(&'static str),
}

impl Server {
    /// Binds the listener (call from within a Tokio runtime).
    pub fn bind(addr: SocketAddr, settings: ServerSettings) -> io::Result<Server> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Lets a restarted daemon bind while old sockets linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let local_addr = listener.local_addr()?;
        Ok(Server {
            listener,
            local_addr,
            settings: Arc::new(settings),
            registry: Registry::default(),
            tls: None,
        })
    }

    /// Makes this a TLS (`wss://`) listener with `tls`'s current configuration at each
    /// handshake.
    pub fn with_tls(mut self, tls: TlsHandle) -> Server {
        self.tls = Some(tls);
        self
    }

    /// Shares another server's registry (a station is one connection, whichever listener it
    /// uses: a new one replaces the old one on either).
    pub fn with_registry(mut self, registry: Registry) -> Server {
        self.registry = registry;
        self
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The registry of this server's connected stations.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Accepts stations until `shutdown` is cancelled, then closes every connection (1001) and
    /// returns once all connection tasks ended (at most [`SHUTDOWN_GRACE`] later).
    pub async fn run<C: Csms>(self, csms: Arc<C>, shutdown: CancellationToken) {
        let Server {
            listener,
            local_addr,
            settings,
            registry,
            tls,
        } = self;
        let tls_on = tls.is_some();
        info!(%local_addr, tls = tls_on, "OCPP listener running");
        let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
        let tracker = TaskTracker::new();
        let shared = Shared {
            csms,
            registry,
            settings,
            shutdown: shutdown.clone(),
        };
        // Sockets being answered 503/429 (brief; beyond this many they are just closed).
        let refusals = Arc::new(Semaphore::new(256));
        let pending: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
        let failures = Arc::new(AuthFailures::new(
            shared.settings.max_auth_failures_per_minute,
        ));
        let mut backoff = Duration::from_millis(10);
        loop {
            let (tcp, peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // E.g. out of file descriptors: wait, don't spin.
                        warn!(error = %e, ?backoff, "accept failed");
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
            };
            backoff = Duration::from_millis(10);
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                count_rejection("over_capacity");
                debug!(%peer, "above max_connections: 503");
                refuse(tcp, tls_on, &refusals, &tracker, STATUS_503);
                continue;
            };
            let Some(pending_guard) =
                PendingGuard::take(&pending, peer.ip(), shared.settings.max_pending_per_address)
            else {
                count_rejection("pending_per_address");
                debug!(%peer, "too many handshakes from this address: 429");
                refuse(tcp, tls_on, &refusals, &tracker, STATUS_429);
                continue;
            };
            if let Err(e) = tcp.set_nodelay(true) {
                debug!(error = %e, %peer, "set_nodelay failed");
            }
            if failures.throttled(peer.ip(), Instant::now()) {
                count_rejection("auth_throttled");
                debug!(%peer, "too many failed passwords from this address: 429");
                refuse(tcp, tls_on, &refusals, &tracker, STATUS_429);
                continue;
            }
            let shared = shared.clone();
            let tls = tls.clone();
            let failures = Arc::clone(&failures);
            let span = info_span!("ocpp_accept", %peer);
            tracker.spawn(
                async move {
                    let _permit = permit;
                    if accept_station(tcp, shared, pending_guard, tls).await {
                        failures.record(peer.ip(), Instant::now());
                    }
                }
                .instrument(span),
            );
        }
        drop(listener);
        tracker.close();
        info!(
            open = tracker.len(),
            "OCPP listener stopped; closing connections"
        );
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                open = tracker.len(),
                "connections still open after the shutdown grace period"
            );
        }
    }
}

const STATUS_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const STATUS_429: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 10\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Answers a socket with a fixed HTTP status and closes it, within a second; beyond 256 such
/// answers at once the socket is closed without one. A TLS socket is just closed (no TLS
/// handshake is spent on a refusal).
fn refuse(
    tcp: TcpStream,
    tls: bool,
    refusals: &Arc<Semaphore>,
    tracker: &TaskTracker,
    status: &'static [u8],
) {
    if tls {
        return;
    }
    let Ok(slot) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tracker.spawn(async move {
        let _slot = slot;
        let mut tcp = tcp;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            use tokio::io::AsyncWriteExt;
            let _ = tcp.write_all(status).await;
            let _ = tcp.shutdown().await;
        })
        .await;
    });
}

/// One handshake in progress from an address; dropping it ends the count.
#[derive(Debug)]
struct PendingGuard {
    map: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PendingGuard {
    /// Counts a handshake from `ip`, unless `max` are already in progress.
    fn take(
        map: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
        max: usize,
    ) -> Option<PendingGuard> {
        let mut m = map.lock().expect("pending handshakes");
        let n = m.entry(ip).or_insert(0);
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(PendingGuard {
            map: Arc::clone(map),
            ip,
        })
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut m = self.map.lock().expect("pending handshakes");
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Failed station passwords per IP address, in one-minute windows.
#[derive(Debug)]
struct AuthFailures {
    max: u32,
    by_ip: std::sync::Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthFailures {
    const WINDOW: Duration = Duration::from_secs(60);

    fn new(max: u32) -> Self {
        AuthFailures {
            max: max.max(1),
            by_ip: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failed password from `ip`; logs when the address becomes throttled.
    fn record(&self, ip: IpAddr, now: Instant) {
        let mut m = self.by_ip.lock().expect("auth failures");
        // Forget finished windows so the map stays small.
        m.retain(|_, (start, _)| now.duration_since(*start) < Self::WINDOW);
        let (_, n) = m.entry(ip).or_insert((now, 0));
        *n += 1;
        if *n == self.max {
            warn!(%ip, failures = *n, "failed station passwords: address throttled for the rest of the minute");
            metrics::counter!("ocpp_auth_throttled_addresses_total").increment(1);
        }
    }

    /// Whether `ip` used up its failures in the current window.
    fn throttled(&self, ip: IpAddr, now: Instant) -> bool {
        let m = self.by_ip.lock().expect("auth failures");
        m.get(&ip)
            .is_some_and(|(start, n)| *n >= self.max && now.duration_since(*start) < Self::WINDOW)
    }
}

fn count_rejection(reason: &'static str) {
    metrics::counter!("ocpp_connections_rejected_total", "reason" => reason).increment(1);
}

/// Runs the (TLS and) websocket handshake of one socket and, if upgraded, its connection.
/// True when the station was refused for its password (counted against its address).
async fn accept_station<C: Csms>(
    tcp: TcpStream,
    shared: Shared<C>,
    pending: PendingGuard,
    tls: Option<TlsHandle>,
) -> bool {
    // The handshakes and the connection are boxed: a task's future is as large as the largest
    // state it can be in, and the TLS and websocket handshake states (kilobytes each) would
    // otherwise stay allocated for the connection's whole life (the accept task was ~16 KiB
    // per idle station).
    let deadline = tokio::time::Instant::now() + shared.settings.handshake_timeout;
    let Some(tls) = tls else {
        return Box::pin(upgrade(
            tcp,
            Transport::default(),
            shared,
            pending,
            deadline,
        ))
        .await;
    };
    let Some((stream, transport)) = Box::pin(tls_handshake(tcp, tls, &shared, deadline)).await
    else {
        return false;
    };
    Box::pin(upgrade(stream, transport, shared, pending, deadline)).await
}

/// The TLS handshake of an accepted socket, within the handshake deadline.
async fn tls_handshake<C: Csms>(
    tcp: TcpStream,
    tls: TlsHandle,
    shared: &Shared<C>,
    deadline: tokio::time::Instant,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, Transport)> {
    let handshake = tls.acceptor().accept(tcp);
    let result = tokio::select! {
        () = shared.shutdown.cancelled() => return None,
        result = tokio::time::timeout_at(deadline, handshake) => result,
    };
    let stream = match result {
        Err(_) => {
            info!("TLS handshake timed out");
            count_rejection("tls_handshake_timeout");
            return None;
        }
        Ok(Err(e)) => {
            info!(error = %e, "TLS handshake failed");
            count_rejection("tls_handshake_failed");
            return None;
        }
        Ok(Ok(stream)) => stream,
    };
    let transport = Transport {
        tls: true,
        client_cert_cn: crate::tls::peer_common_name(stream.get_ref().1),
    };
    Some((stream, transport))
}

/// The websocket handshake on an accepted (TLS or plain) stream, then the connection.
// The handshake callback's error type (`ErrorResponse`) is tungstenite's, large by design.
#[allow(clippy::result_large_err)]
async fn upgrade<S, C>(
    stream: S,
    transport: Transport,
    shared: Shared<C>,
    pending: PendingGuard,
    deadline: tokio::time::Instant,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    C: Csms,
{
    let settings = Arc::clone(&shared.settings);
    let mut verdict = None;
    let result = {
        let csms = Arc::clone(&shared.csms);
        let callback = |request: &Request, response: Response| {
            let (decided, answer) = check_request(&*csms, &transport, request, response);
            verdict = Some(decided);
            answer
        };
        let handshake = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
            stream,
            callback,
            Some(settings.websocket_config()),
        ));
        tokio::select! {
            () = shared.shutdown.cancelled() => return false,
            result = tokio::time::timeout_at(deadline, handshake) => result,
        }
    };
    // The handshake is over: it no longer counts against its address.
    drop(pending);
    let mut ws = match result {
        Err(_) => {
            info!("handshake timed out");
            count_rejection("handshake_timeout");
            return false;
        }
        Ok(Err(e)) => {
            match verdict {
                Some(Verdict::Rejected(reason)) => {
                    info!(reason, "station rejected before the upgrade");
                    count_rejection(reason);
                    return reason == "unauthorized";
                }
                _ => {
                    info!(error = %e, "handshake failed");
                    count_rejection("handshake_failed");
                }
            }
            return false;
        }
        Ok(Ok(ws)) => ws,
    };
    match verdict {
        Some(Verdict::Accepted {
            station,
            version: Some(version),
        }) => {
            Box::pin(connection::serve(ws, station, version, shared)).await;
        }
        Some(Verdict::Accepted {
            station,
            version: None,
        }) => {
            warn!(%station, "no supported subprotocol offered (ocpp1.6, ocpp2.0.1); closing");
            count_rejection("no_subprotocol");
            let reason = "no supported subprotocol (ocpp1.6, ocpp2.0.1)";
            connection::close_socket(&mut ws, CloseCode::Protocol, reason).await;
        }
        // The callback always runs before an upgrade succeeds.
        _ => connection::close_socket(&mut ws, CloseCode::Error, "internal error").await,
    }
    false
}

/// The station identity of a request path: `/ocpp/{id}` or `/ocpp/{id}/`, percent-decoded,
/// valid UTF-8, 1–48 characters, no control characters.
pub fn parse_station_path(path: &str) -> Option<StationId> {
    let rest = path.strip_prefix("/ocpp/")?;
    let segment = rest.strip_suffix('/').unwrap_or(rest);
    if segment.is_empty() || segment.contains('/') {
        return None;
    }
    let id = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    let len = id.chars().count();
    if len == 0 || len > MAX_STATION_ID_LEN || id.chars().any(char::is_control) {
        return None;
    }
    Some(StationId(id.into_owned()))
}

/// The Basic-auth credentials of a request (both `None` when absent or unreadable). The password
/// is kept as raw bytes: 1.6 profile-1 keys may be binary.
pub fn parse_credentials(headers: &HeaderMap) -> Credentials {
    let none = Credentials {
        username: None,
        password: None,
        tls: false,
        client_cert_cn: None,
    };
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return none;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return none;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return none;
    }
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let Ok(decoded) = engine.decode(token.trim()) else {
        return none;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return none;
    };
    let Ok(username) = String::from_utf8(decoded[..colon].to_vec()) else {
        return none;
    };
    Credentials {
        username: Some(username),
        password: Some(decoded[colon + 1..].to_vec()),
        tls: false,
        client_cert_cn: None,
    }
}

/// The first offered subprotocol we speak, in the station's order of preference, with its
/// spelling as offered (the response must echo it exactly). Offers may be comma-separated and
/// spread over several headers.
pub fn choose_subprotocol(headers: &HeaderMap) -> Option<(OcppVersion, String)> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| OcppVersion::from_subprotocol(p).map(|v| (v, p.to_owned())))
}

fn error_response(status: StatusCode, challenge: bool) -> ErrorResponse {
    let body = status.canonical_reason().unwrap_or("error").to_owned();
    let mut response = ErrorResponse::new(Some(body.clone()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    if challenge {
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ocpp\""),
        );
    }
    response
}

/// The handshake decision: path, admission, subprotocol.
fn check_request<C: Csms>(
    csms: &C,
    transport: &Transport,
    request: &Request,
    mut response: Response,
) -> (Verdict, Result<Response, ErrorResponse>) {
    let Some(station) = parse_station_path(request.uri().path()) else {
        debug!(path = %request.uri().path(), "not an OCPP station path");
        return (
            Verdict::Rejected("bad_path"),
            Err(error_response(StatusCode::NOT_FOUND, false)),
        );
    };
    let chosen = choose_subprotocol(request.headers());
    // 2.0.1: the identity is the Basic-auth username, so it can't hold ':'.
    if chosen
        .as_ref()
        .is_some_and(|(v, _)| *v == OcppVersion::V201)
        && station.0.contains(':')
    {
        debug!(%station, "2.0.1 station identity with ':'");
        return (
            Verdict::Rejected("bad_path"),
            Err(error_response(StatusCode::NOT_FOUND, false)),
        );
    }
    let credentials = Credentials {
        tls: transport.tls,
        client_cert_cn: transport.client_cert_cn.clone(),
        ..parse_credentials(request.headers())
    };
    match csms.admit(&station, &credentials) {
        Admission::Accept => {}
        Admission::Unauthorized => {
            info!(%station, "station not authorized");
            let response = error_response(StatusCode::UNAUTHORIZED, true);
            return (Verdict::Rejected("unauthorized"), Err(response));
        }
        Admission::Forbidden => {
            info!(%station, "station below its security profile");
            let response = error_response(StatusCode::FORBIDDEN, false);
            return (Verdict::Rejected("forbidden"), Err(response));
        }
        Admission::UnknownStation => {
            info!(%station, "unknown station");
            let response = error_response(StatusCode::NOT_FOUND, false);
            return (Verdict::Rejected("unknown_station"), Err(response));
        }
    }
    let version = chosen.map(|(version, offered)| {
        let value = HeaderValue::from_str(&offered)
            .unwrap_or_else(|_| HeaderValue::from_static(version.subprotocol()));
        response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, value);
        version
    });
    (Verdict::Accepted { station, version }, Ok(response))
}

#[cfg(test)]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::tests::{Fake, Seen, WAIT, next_seen};
    use crate::frame::Frame;
    use futures_util::{SinkExt, StreamExt};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::task::JoinHandle;
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
    type ClientResponse = tokio_tungstenite::tungstenite::handshake::client::Response;

    struct Running {
        addr: SocketAddr,
        registry: Registry,
        csms: Arc<Fake>,
        seen: tokio::sync::mpsc::UnboundedReceiver<Seen>,
        shutdown: CancellationToken,
        task: JoinHandle<()>,
    }

    fn start(admission: Admission) -> Running {
        start_with(
            admission,
            ServerSettings {
                call_timeout: Duration::from_secs(2),
                ping_interval: Duration::ZERO,
                ..ServerSettings::default()
            },
        )
    }

    fn start_with(admission: Admission, settings: ServerSettings) -> Running {
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), settings).unwrap();
        let (addr, registry) = (server.local_addr(), server.registry());
        let (csms, seen) = Fake::new(admission);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(Arc::clone(&csms), shutdown.clone()));
        Running {
            addr,
            registry,
            csms,
            seen,
            shutdown,
            task,
        }
    }

    async fn connect(
        addr: SocketAddr,
        path: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<(Ws, ClientResponse), WsError> {
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        for (name, value) in headers {
            request
                .headers_mut()
                .append(*name, HeaderValue::from_str(value).unwrap());
        }
        timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("in time")
    }

    async fn connect_16(addr: SocketAddr, path: &str) -> Result<(Ws, ClientResponse), WsError> {
        connect(addr, path, &[("Sec-WebSocket-Protocol", "ocpp1.6")]).await
    }

    fn http_status(result: Result<(Ws, ClientResponse), WsError>) -> (StatusCode, HeaderMap) {
        match result {
            Err(WsError::Http(response)) => (response.status(), response.headers().clone()),
            Err(e) => panic!("expected an HTTP error, got {e}"),
            Ok(_) => panic!("expected an HTTP error, got an upgrade"),
        }
    }

    async fn next_text(ws: &mut Ws) -> Frame {
        loop {
            match timeout(WAIT, ws.next()).await.expect("in time") {
                Some(Ok(Message::Text(t))) => return Frame::parse(t.as_str()).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected text, got {other:?}"),
            }
        }
    }

    async fn close_code(ws: &mut Ws) -> CloseCode {
        loop {
            match timeout(WAIT, ws.next()).await.expect("in time") {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected close, got {other:?}"),
            }
        }
    }

    #[test]
    fn station_paths_are_ocpp_slash_a_percent_decoded_id() {
        assert_eq!(
            parse_station_path("/ocpp/CP1"),
            Some(StationId::from("CP1"))
        );
        assert_eq!(
            parse_station_path("/ocpp/CP1/"),
            Some(StationId::from("CP1"))
        );
        assert_eq!(
            parse_station_path("/ocpp/RDAM%20123"),
            Some(StationId::from("RDAM 123"))
        );
        assert_eq!(
            parse_station_path("/ocpp/%C3%A9"),
            Some(StationId::from("é"))
        );
        assert_eq!(
            parse_station_path(&format!("/ocpp/{}", "x".repeat(48))).map(|s| s.0.len()),
            Some(48)
        );
        for bad in [
            "/",
            "/ocpp",
            "/ocpp/",
            "/ocpp//",
            "/other/CP1",
            "/ocpp/a/b",
            "/ocpp/%FF",
            "/ocpp/%0A",
            "/ocppCP1",
            &format!("/ocpp/{}", "x".repeat(49)),
        ] {
            assert_eq!(parse_station_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn basic_credentials_keep_the_password_as_bytes() {
        use base64::engine::general_purpose::STANDARD;
        let mut headers = HeaderMap::new();
        let mut raw = b"AL1000:".to_vec();
        raw.extend_from_slice(&[0, 1, 2, 0xff, b':', 0xfe]);
        let value = format!("Basic {}", STANDARD.encode(&raw));
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        let c = parse_credentials(&headers);
        assert_eq!(c.username.as_deref(), Some("AL1000"));
        assert_eq!(
            c.password.as_deref(),
            Some(&[0, 1, 2, 0xff, b':', 0xfe][..])
        );

        // Scheme case-insensitive, padding optional.
        headers.insert(AUTHORIZATION, HeaderValue::from_static("basic Q1AxOnB3"));
        assert_eq!(
            parse_credentials(&headers).password.as_deref(),
            Some(&b"pw"[..])
        );

        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basic Q1Ax"] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(bad));
            let c = parse_credentials(&headers);
            assert!(c.username.is_none() && c.password.is_none(), "{bad}");
        }
        assert!(parse_credentials(&HeaderMap::new()).username.is_none());
    }

    #[test]
    fn the_subprotocol_is_the_stations_first_supported_offer() {
        let mut headers = HeaderMap::new();
        headers.append(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("ocpp1.5, ocpp2.0.1"),
        );
        headers.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("ocpp1.6"));
        assert_eq!(
            choose_subprotocol(&headers),
            Some((OcppVersion::V201, "ocpp2.0.1".into()))
        );
        let mut headers = HeaderMap::new();
        headers.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("ocpp1.5"));
        headers.append(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("OCPP1.6,ocpp2.0.1"),
        );
        assert_eq!(
            choose_subprotocol(&headers),
            Some((OcppVersion::V16, "OCPP1.6".into()))
        );
        headers.remove(SEC_WEBSOCKET_PROTOCOL);
        headers.append(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("ocpp2.1, ocpp1.2"),
        );
        assert_eq!(choose_subprotocol(&headers), None);
    }

    #[test]
    fn the_websocket_config_keeps_buffers_small() {
        let c = ServerSettings::default().websocket_config();
        assert_eq!(c.read_buffer_size, 4096);
        assert_eq!(c.write_buffer_size, 0);
        assert_eq!(c.max_message_size, Some(65536));
        assert_eq!(c.max_frame_size, Some(65536));
        assert!(c.max_write_buffer_size > c.write_buffer_size);
    }

    /// Reads what the server sends a raw socket until it closes (bounded).
    async fn raw_answer(addr: SocketAddr) -> String {
        use tokio::io::AsyncReadExt;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        let _ = timeout(WAIT, tcp.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn above_max_connections_a_station_gets_503_at_once() {
        let s = start_with(
            Admission::Accept,
            ServerSettings {
                ping_interval: Duration::ZERO,
                max_connections: 2,
                ..ServerSettings::default()
            },
        );
        let (_a, _) = connect_16(s.addr, "/ocpp/CP1").await.unwrap();
        let (_b, _) = connect_16(s.addr, "/ocpp/CP2").await.unwrap();
        let started = std::time::Instant::now();
        let (status, headers) = http_status(connect_16(s.addr, "/ocpp/CP3").await);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.get("retry-after").is_some());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered at once"
        );
    }

    #[tokio::test]
    async fn one_address_cannot_hold_every_handshake_slot() {
        let s = start_with(
            Admission::Accept,
            ServerSettings {
                ping_interval: Duration::ZERO,
                handshake_timeout: Duration::from_secs(30),
                max_pending_per_address: 3,
                ..ServerSettings::default()
            },
        );
        // Three silent sockets from 127.0.0.1 hold its three handshake slots...
        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(TcpStream::connect(s.addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ...so a fourth from the same address is answered 429 at once,
        assert!(raw_answer(s.addr).await.starts_with("HTTP/1.1 429"));
        // ...and once they go, the address gets its slots back.
        drop(silent);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(connect_16(s.addr, "/ocpp/CP1").await.is_ok());
    }

    /// A raw socket upgraded to a 1.6 websocket (so that it can send frames no client library
    /// would).
    async fn raw_upgraded(addr: SocketAddr) -> TcpStream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"GET /ocpp/CP1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            timeout(WAIT, tcp.read_exact(&mut byte))
                .await
                .unwrap()
                .unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        tcp
    }

    /// The close code of the first close frame the server sends on a raw socket.
    async fn raw_close_code(tcp: &mut TcpStream) -> u16 {
        use tokio::io::AsyncReadExt;
        loop {
            let mut h = [0u8; 2];
            timeout(WAIT, tcp.read_exact(&mut h))
                .await
                .unwrap()
                .unwrap();
            let len = usize::from(h[1] & 0x7f);
            assert!(len < 126, "small frames only");
            let mut payload = vec![0u8; len];
            timeout(WAIT, tcp.read_exact(&mut payload))
                .await
                .unwrap()
                .unwrap();
            if h[0] & 0x0f == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }

    #[tokio::test]
    async fn websocket_protocol_violations_close_with_1002_and_bad_utf8_with_1007() {
        use tokio::io::AsyncWriteExt;
        let s = start(Admission::Accept);
        // A client frame without a mask (RFC 6455 §5.1).
        let mut tcp = raw_upgraded(s.addr).await;
        tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
        assert_eq!(raw_close_code(&mut tcp).await, 1002);
        // A masked text frame (mask 0) whose payload is not UTF-8.
        let mut tcp = raw_upgraded(s.addr).await;
        tcp.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])
            .await
            .unwrap();
        assert_eq!(raw_close_code(&mut tcp).await, 1007);
    }

    #[test]
    fn failed_passwords_throttle_an_address_for_the_rest_of_the_minute() {
        let f = AuthFailures::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(!f.throttled(a, t0), "after {i} failures");
            f.record(a, t0 + Duration::from_secs(i));
        }
        assert!(f.throttled(a, t0 + Duration::from_secs(10)));
        assert!(
            !f.throttled(b, t0 + Duration::from_secs(10)),
            "other addresses are not"
        );
        assert!(
            !f.throttled(a, t0 + Duration::from_secs(61)),
            "a new minute"
        );
    }

    #[tokio::test]
    async fn wrong_passwords_get_429_once_the_address_is_throttled() {
        let s = start_with(
            Admission::Unauthorized,
            ServerSettings {
                ping_interval: Duration::ZERO,
                max_auth_failures_per_minute: 2,
                ..ServerSettings::default()
            },
        );
        let auth = ("Authorization", "Basic Q1AxOndyb25n");
        for _ in 0..2 {
            let r = connect(
                s.addr,
                "/ocpp/CP1",
                &[("Sec-WebSocket-Protocol", "ocpp1.6"), auth],
            )
            .await;
            assert_eq!(http_status(r).0, StatusCode::UNAUTHORIZED);
        }
        // The failures are recorded when each handshake task ends.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = connect(
            s.addr,
            "/ocpp/CP1",
            &[("Sec-WebSocket-Protocol", "ocpp1.6"), auth],
        )
        .await;
        assert_eq!(http_status(r).0, StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn a_path_that_is_not_a_station_is_404_before_the_upgrade() {
        let s = start(Admission::Accept);
        for path in ["/", "/ocpp/", "/ocpp/a/b", "/metrics"] {
            assert_eq!(
                http_status(connect_16(s.addr, path).await).0,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        assert!(
            s.csms.credentials.lock().unwrap().is_none(),
            "admit is not asked"
        );
    }

    #[tokio::test]
    async fn unauthorized_is_401_with_a_basic_challenge() {
        let s = start(Admission::Unauthorized);
        let auth = ("Authorization", "Basic Q1AxOnNlY3JldA==");
        let result = connect(
            s.addr,
            "/ocpp/CP1",
            &[("Sec-WebSocket-Protocol", "ocpp1.6"), auth],
        )
        .await;
        let (status, headers) = http_status(result);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers.get(WWW_AUTHENTICATE).unwrap(),
            "Basic realm=\"ocpp\""
        );
        let credentials = s.csms.credentials.lock().unwrap().clone().unwrap();
        assert_eq!(credentials.username.as_deref(), Some("CP1"));
        assert_eq!(credentials.password.as_deref(), Some(&b"secret"[..]));
        assert!(s.registry.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_station_is_404() {
        let s = start(Admission::UnknownStation);
        assert_eq!(
            http_status(connect_16(s.addr, "/ocpp/CP1").await).0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn a_201_identity_with_a_colon_is_404() {
        let s = start(Admission::Accept);
        let offer = [("Sec-WebSocket-Protocol", "ocpp2.0.1")];
        assert_eq!(
            http_status(connect(s.addr, "/ocpp/a%3Ab", &offer).await).0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn the_first_supported_subprotocol_in_the_stations_order_is_chosen() {
        let mut s = start(Admission::Accept);
        for (offer, chosen, version) in [
            (
                "ocpp1.5, ocpp2.0.1, ocpp1.6",
                "ocpp2.0.1",
                OcppVersion::V201,
            ),
            ("ocpp1.6, ocpp2.0.1", "ocpp1.6", OcppVersion::V16),
        ] {
            let (mut ws, response) =
                connect(s.addr, "/ocpp/CP1", &[("Sec-WebSocket-Protocol", offer)])
                    .await
                    .unwrap();
            assert_eq!(
                response.headers().get(SEC_WEBSOCKET_PROTOCOL).unwrap(),
                chosen
            );
            let Seen::Connected(handle) = next_seen(&mut s.seen).await else {
                panic!()
            };
            assert_eq!(handle.version(), version);
            ws.close(None).await.unwrap();
            assert!(matches!(
                next_seen(&mut s.seen).await,
                Seen::Disconnected(..)
            ));
        }
    }

    /// A hand-written upgrade request (several protocol headers, no client-side checks).
    async fn raw_upgrade(addr: SocketAddr, protocols: &[&str]) -> (TcpStream, String) {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut request = "GET /ocpp/CP9 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n"
            .to_owned();
        for p in protocols {
            request.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            timeout(WAIT, tcp.read_exact(&mut byte))
                .await
                .unwrap()
                .unwrap();
            head.push(byte[0]);
        }
        (tcp, String::from_utf8(head).unwrap().to_ascii_lowercase())
    }

    #[tokio::test]
    async fn offers_spread_over_several_headers_are_read_in_order() {
        let mut s = start(Admission::Accept);
        let (_tcp, head) = raw_upgrade(s.addr, &["ocpp1.2", "foo, ocpp1.6", "ocpp2.0.1"]).await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains("sec-websocket-protocol: ocpp1.6\r\n"),
            "{head}"
        );
        let Seen::Connected(handle) = next_seen(&mut s.seen).await else {
            panic!()
        };
        assert_eq!(handle.version(), OcppVersion::V16);
    }

    #[tokio::test]
    async fn without_a_common_subprotocol_the_upgrade_completes_then_closes_with_1002() {
        let s = start(Admission::Accept);
        let (tcp, head) = raw_upgrade(s.addr, &["ocpp1.5, ocpp2.1"]).await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(!head.contains("sec-websocket-protocol"), "{head}");
        let mut ws = WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
        let frame = loop {
            match timeout(WAIT, ws.next()).await.unwrap() {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("expected close, got {other:?}"),
            }
        };
        assert_eq!(frame.map(|f| f.code), Some(CloseCode::Protocol));
        assert!(s.registry.is_empty());
    }

    #[tokio::test]
    async fn a_connected_station_is_served_end_to_end() {
        let mut s = start(Admission::Accept);
        let (mut ws, _) = connect_16(s.addr, "/ocpp/CP1").await.unwrap();
        let Seen::Connected(_) = next_seen(&mut s.seen).await else {
            panic!()
        };
        // The real 1.6 adapter answers unknown actions with NotImplemented.
        ws.send(Message::text(r#"[2,"m1","NoSuchAction",{}]"#))
            .await
            .unwrap();
        let Frame::CallError { id, code, .. } = next_text(&mut ws).await else {
            panic!()
        };
        assert_eq!((id.as_str(), code.as_str()), ("m1", "NotImplemented"));
        // An outgoing call through the server's registry.
        let handle = s.registry.get(&StationId::from("CP1")).expect("registered");
        assert_eq!(s.registry.count_by_version(), (1, 0));
        let call = tokio::spawn(async move { handle.call("Reset", json!({"type": "Soft"})).await });
        let Frame::Call { id, action, .. } = next_text(&mut ws).await else {
            panic!()
        };
        assert_eq!(action, "Reset");
        ws.send(Message::text(format!(
            r#"[3,"{id}",{{"status":"Accepted"}}]"#
        )))
        .await
        .unwrap();
        assert_eq!(
            timeout(WAIT, call).await.unwrap().unwrap(),
            Ok(json!({"status": "Accepted"}))
        );
    }

    #[tokio::test]
    async fn a_reconnecting_station_replaces_its_old_connection() {
        let mut s = start(Admission::Accept);
        let (mut old, _) = connect_16(s.addr, "/ocpp/CP1").await.unwrap();
        let Seen::Connected(first) = next_seen(&mut s.seen).await else {
            panic!()
        };
        let (mut new, _) = connect_16(s.addr, "/ocpp/CP1").await.unwrap();
        assert_eq!(close_code(&mut old).await, CloseCode::Normal);
        let mut disconnected = None;
        let mut second = None;
        for _ in 0..2 {
            match next_seen(&mut s.seen).await {
                Seen::Connected(h) => second = Some(h),
                Seen::Disconnected(_, c) => disconnected = Some(c),
                Seen::Request(_) => {}
            }
        }
        let second = second.expect("second connection");
        assert_eq!(disconnected, Some(first.connection_id()));
        let registered = s.registry.get(&StationId::from("CP1")).unwrap();
        assert_eq!(registered.connection_id(), second.connection_id());
        new.send(Message::text(r#"[2,"m","NoSuchAction",{}]"#))
            .await
            .unwrap();
        assert_eq!(next_text(&mut new).await.id(), "m");
    }

    #[tokio::test]
    async fn shutdown_closes_every_station_with_1001_and_run_returns() {
        let mut s = start(Admission::Accept);
        let (mut a, _) = connect_16(s.addr, "/ocpp/A").await.unwrap();
        let (mut b, _) = connect(
            s.addr,
            "/ocpp/B",
            &[("Sec-WebSocket-Protocol", "ocpp2.0.1")],
        )
        .await
        .unwrap();
        for _ in 0..2 {
            assert!(matches!(next_seen(&mut s.seen).await, Seen::Connected(_)));
        }
        assert_eq!(s.registry.count_by_version(), (1, 1));
        s.shutdown.cancel();
        assert_eq!(close_code(&mut a).await, CloseCode::Away);
        assert_eq!(close_code(&mut b).await, CloseCode::Away);
        timeout(WAIT, s.task)
            .await
            .expect("run returns in time")
            .unwrap();
        assert!(s.registry.is_empty());
        // The listener is gone.
        let refused = TcpStream::connect(s.addr).await;
        assert!(refused.is_err(), "listener still accepting");
    }

    #[tokio::test]
    async fn a_silent_socket_is_dropped_after_the_handshake_timeout() {
        let settings = ServerSettings {
            handshake_timeout: Duration::from_millis(100),
            ..ServerSettings::default()
        };
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), settings).unwrap();
        let addr = server.local_addr();
        let (csms, _seen) = Fake::new(Admission::Accept);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(csms, shutdown.clone()));
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let read = timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        shutdown.cancel();
        timeout(WAIT, task).await.unwrap().unwrap();
    }
}
