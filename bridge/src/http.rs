//! The bounded HTTP server behind the OCPI and admin listeners.
//!
//! `axum::serve` has no limits of its own: a socket that sends nothing, or its headers one
//! byte at a time, or that stays open idle, holds a file descriptor forever, and enough of them
//! starve the station listener of descriptors. Here every connection has:
//! - a **header-read timeout** (`header_timeout`): the request head must arrive in time;
//! - an **idle timeout** (`idle_timeout`): a connection with no request in flight for that long
//!   (including one that never sent a request) is closed;
//! - a **connection cap** (`max_connections`): above it a new socket is answered HTTP 503 at
//!   once and closed;
//! - a back-off on accept errors (out of file descriptors) instead of a busy loop.
//!
//! With a [`TlsHandle`] the listener serves HTTPS: the TLS handshake must finish within
//! `header_timeout` (it counts as part of the request head) and uses the handle's current
//! configuration (reloaded on SIGHUP); a socket above the cap is closed without an answer.
//!
//! A request that takes longer than 30 s is answered 408 (the `TimeoutLayer`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use ocpp::tls::TlsHandle;

/// Limits of one HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The request head must arrive within this.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Most open connections; more are answered 503 at once.
    pub max_connections: usize,
}

/// The 503 answer above the cap, with an OCPI-shaped body (3000: generic server error).
fn busy() -> Vec<u8> {
    let body = serde_json::json!({
        "status_code": 3000,
        "status_message": "too many connections",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// When a connection last finished a request, and how many it has in flight.
#[derive(Debug)]
struct Activity {
    started: Instant,
    /// Milliseconds since `started` of the last request start or end.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has been idle (zero while a request is in flight).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(since)
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` is cancelled; open connections
/// then finish their requests (bounded by the caller's grace period).
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    tls: Option<TlsHandle>,
    shutdown: CancellationToken,
) {
    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // E.g. out of file descriptors: wait, don't spin.
                    tracing::warn!(listener = name, error = %e, ?backoff, "accept failed");
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
            metrics::counter!("http_connections_rejected_total", "listener" => name).increment(1);
            tracing::debug!(listener = name, %peer, "connection cap reached: 503");
            if tls.is_some() {
                // No TLS handshake is spent on a refusal.
                continue;
            }
            tracker.spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut tcp = tcp;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = tcp.write_all(&busy()).await;
                    let _ = tcp.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let app = app.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let Some(tls) = tls else {
                serve_connection(tcp, app, limits, shutdown).await;
                return;
            };
            let handshake = tls.acceptor().accept(tcp);
            let stream = tokio::select! {
                () = shutdown.cancelled() => return,
                r = tokio::time::timeout(limits.header_timeout, handshake) => r,
            };
            match stream {
                Ok(Ok(stream)) => serve_connection(stream, app, limits, shutdown).await,
                Ok(Err(e)) => {
                    tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(listener = name, %peer, "TLS handshake timed out"),
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn serve_connection<S>(tcp: S, app: axum::Router, limits: Limits, shutdown: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let counted = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let activity = Arc::clone(&counted);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        async move {
            use tower::ServiceExt;
            let response = app.oneshot(req.map(axum::body::Body::new)).await;
            activity.touch();
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_millis(250).min(limits.idle_timeout));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
                return;
            }
            _ = tick.tick() => {
                if activity.idle_for() >= limits.idle_timeout {
                    // Idle (or silent since connect): close; a request in flight never is.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WAIT: Duration = Duration::from_secs(5);

    async fn start(limits: Limits) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve("test", listener, app, limits, None, shutdown.clone()));
        (addr, shutdown)
    }

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(500),
            max_connections: 2,
        }
    }

    /// Reads until the server closes (bounded); what it sent.
    async fn until_closed(tcp: &mut tokio::net::TcpStream) -> String {
        let mut out = Vec::new();
        let _ = timeout_ok(tcp.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn timeout_ok<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(WAIT, f).await.expect("in time")
    }

    #[tokio::test]
    async fn a_silent_socket_and_slow_headers_are_closed() {
        let (addr, _stop) = start(limits()).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Neither finishes a request: both are closed within the bound.
        let _ = until_closed(&mut silent).await;
        let _ = until_closed(&mut slow).await;
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_its_request() {
        let (addr, _stop) = start(limits()).await;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let got = until_closed(&mut tcp).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }

    /// A CA (PEM) and a TLS configuration for 127.0.0.1 signed by it.
    fn tls_pair() -> (String, rustls::ServerConfig) {
        use rcgen::{CertificateParams, IsCa, Issuer, KeyPair, SanType};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = ocpp::tls::server_config(vec![cert.der().clone()], key, None).unwrap();
        (ca_pem, config)
    }

    #[tokio::test]
    async fn https_serves_requests_and_cuts_a_stalled_handshake() {
        let (ca, config) = tls_pair();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        let tls = Some(TlsHandle::new(config));
        tokio::spawn(serve(
            "test",
            listener,
            app,
            limits(),
            tls,
            shutdown.clone(),
        ));
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
            .timeout(WAIT)
            .build()
            .unwrap();
        let body = client
            .get(format!("https://{addr}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ok");
        // A socket that never starts the TLS handshake is closed within header_timeout.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let got = until_closed(&mut silent).await;
        assert!(got.is_empty(), "{got}");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn above_the_cap_a_connection_gets_503_at_once() {
        let (addr, _stop) = start(Limits {
            idle_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            ..limits()
        })
        .await;
        let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let got = until_closed(&mut c).await;
        assert!(got.starts_with("HTTP/1.1 503"), "{got}");
        assert!(got.contains("\"status_code\":3000"), "{got}");
    }
}
