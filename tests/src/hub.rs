//! A fake OCPI 2.2.1 roaming hub / eMSP for the end-to-end tests (2.1.1 or several versions with
//! [`HubOptions::versions`]: every `2.2.1` below is then the version the daemon registered in).
//!
//! [`Hub`] is a real HTTP server (axum) on `127.0.0.1:0` that speaks the configuration modules
//! the way a peer platform does, and records everything the daemon pushes to it:
//!
//! - **Versions**: `GET /ocpi/versions` and `GET /ocpi/2.2.1` advertise credentials, locations,
//!   tariffs, sessions and cdrs as RECEIVER (under `/ocpi/emsp/2.2.1/…`) and tokens, commands and chargingprofiles
//!   as SENDER. Both accept the hub's token A and the token it handed to the daemon.
//! - **Daemon registers with the hub** (the hub is configured in `[[ocpi.peers]]`): `POST
//!   /ocpi/2.2.1/credentials` with the hub's token A; the hub calls the daemon's versions URL and
//!   version details back with the token from the body (that is the check that the daemon already
//!   accepts its token B while its POST is in flight), then answers its own credentials with a
//!   fresh token C. A second POST → HTTP 405; a body that is not JSON → HTTP 400; a failing
//!   callback → OCPI 3001.
//! - **Hub registers with the daemon** ([`Hub::register_with`]): GET the daemon's versions and
//!   details with the daemon's token A, generate token B (accepted by the hub from then on), POST
//!   the hub's credentials, keep the token C from the answer for calls to the daemon.
//! - **Pushes**: every request to `/ocpi/emsp/2.2.1/{module}/…` is authenticated (it must carry
//!   `Token base64(token the hub gave the daemon)`, else HTTP 401, recorded in
//!   [`Hub::unauthorized`]) and recorded as a [`Push`] with method, path, headers, parsed body,
//!   arrival time and the answer given. The answer depends on [`HubMode`].
//!
//! With [`HubOptions::tls`] the hub serves HTTPS (its URLs are `https://127.0.0.1:PORT/…`) and
//! with [`HubOptions::trust_pem`] its own client trusts that CA (to call a daemon on HTTPS).
//!
//! Every wait here is bounded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::wait::eventually;

/// Bound on one HTTP request the hub makes.
pub const HUB_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for "the daemon should have pushed this by now".
pub const PUSH_WAIT: Duration = Duration::from_secs(15);
/// Most pages [`Hub::walk_pages`] follows before giving up.
pub const MAX_PAGES: usize = 200;

/// How the hub answers pushes (and, for [`HubMode::Down`], everything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubMode {
    /// HTTP 200 + OCPI 1000.
    Normal,
    /// HTTP 503 on every request (versions and credentials included): an outage.
    Down,
    /// Pushes get HTTP 200 + OCPI 2001 "bad object" (a refusal); configuration modules work.
    Refuse,
    /// Pushes are answered normally after this delay.
    Slow(Duration),
    /// Pushes get HTTP 401 (as while a peer rotates credentials); configuration modules work.
    Unauthorized,
}

/// Construction parameters of a [`Hub`].
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The hub's country code.
    pub country_code: String,
    /// The hub's party id.
    pub party_id: String,
    /// The hub's role in its credentials (`HUB` or `EMSP`).
    pub role: String,
    /// The token A the hub hands out (the daemon's `[[ocpi.peers]] token_a`).
    pub token_a: String,
    /// The OCPI versions the hub offers (default `["2.2.1"]`). A hub that offers only `2.1.1`
    /// speaks 2.1.1 throughout: flat credentials, endpoints without roles, and the raw token in
    /// `Authorization` (a Base64 token is refused with HTTP 401).
    pub versions: Vec<String>,
    /// Serve HTTPS with this certificate and key (PEM).
    pub tls: Option<(String, String)>,
    /// Extra CA certificate(s) (PEM) the hub's client trusts.
    pub trust_pem: Option<String>,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            country_code: "NL".into(),
            party_id: "HUB".into(),
            role: "HUB".into(),
            token_a: format!("hub-token-a-{}", uuid::Uuid::new_v4().simple()),
            versions: vec!["2.2.1".into()],
            tls: None,
            trust_pem: None,
        }
    }
}

/// One request the daemon made to a functional module of the hub.
#[derive(Debug, Clone)]
pub struct Push {
    /// HTTP method (`PUT`, `PATCH`, `POST`, `GET`, …).
    pub method: String,
    /// Request path (without query), with the version segment shown as `2.2.1` whatever
    /// version the daemon used ([`Hub::registered_version`] says which).
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Module identifier (`locations`, `tariffs`, …).
    pub module: String,
    /// Path segments after the module (`[cc, pid, location_id, evse_uid]` for an EVSE PATCH).
    pub segments: Vec<String>,
    /// Request headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// Parsed JSON body (`None` when empty).
    pub body: Option<Value>,
    /// Arrival time.
    pub at: Instant,
    /// When the hub answered (after any [`HubMode::Slow`] delay).
    pub answered: Instant,
    /// HTTP status the hub answered.
    pub http_status: u16,
    /// OCPI status code the hub answered (`None` for non-OCPI answers such as 503).
    pub ocpi_status: Option<u16>,
}

impl Push {
    /// The hub answered HTTP 200 + OCPI 1000: the push counts as delivered.
    pub fn accepted(&self) -> bool {
        self.http_status == 200 && self.ocpi_status == Some(1000)
    }

    /// A header value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// `METHOD module` matches.
    pub fn is(&self, method: &str, module: &str) -> bool {
        self.method == method && self.module == module
    }

    /// The object path after `{cc}/{pid}`: `[location_id]` or `[location_id, evse_uid]`.
    pub fn object_path(&self) -> Vec<&str> {
        self.segments.iter().skip(2).map(String::as_str).collect()
    }

    /// `PUT locations/{cc}/{pid}/{location_id}`.
    pub fn is_location_put(&self, location_id: &str) -> bool {
        self.is("PUT", "locations") && self.object_path() == [location_id]
    }

    /// `PATCH locations/{cc}/{pid}/{location_id}/{evse_uid}`.
    pub fn is_evse_patch(&self, location_id: &str, evse_uid: &str) -> bool {
        self.is("PATCH", "locations") && self.object_path() == [location_id, evse_uid]
    }

    /// `body.status` of an EVSE PATCH.
    pub fn status(&self) -> Option<&str> {
        self.body.as_ref()?.get("status")?.as_str()
    }

    /// The EVSE uids in a Location PUT body.
    pub fn evse_uids(&self) -> Vec<String> {
        self.body
            .as_ref()
            .and_then(|b| b.get("evses"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("uid").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The EVSE with `uid` in a Location PUT body.
    pub fn evse(&self, uid: &str) -> Option<&Value> {
        self.body
            .as_ref()?
            .get("evses")?
            .as_array()?
            .iter()
            .find(|e| e.get("uid").and_then(Value::as_str) == Some(uid))
    }
}

/// A request the hub refused with HTTP 401.
#[derive(Debug, Clone)]
pub struct Unauthorized {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// The `Authorization` header as received.
    pub authorization: Option<String>,
    /// Arrival time.
    pub at: Instant,
}

/// A request to the hub's credentials endpoint.
#[derive(Debug, Clone)]
pub struct CredentialsCall {
    /// HTTP method.
    pub method: String,
    /// Parsed body, if JSON.
    pub body: Option<Value>,
    /// HTTP status answered.
    pub http_status: u16,
    /// OCPI status answered.
    pub ocpi_status: Option<u16>,
    /// Arrival time.
    pub at: Instant,
}

/// A request the daemon made to the hub's versions or version details endpoint.
#[derive(Debug, Clone)]
pub struct VersionsCall {
    /// Path.
    pub path: String,
    /// The decoded token it carried.
    pub token: Option<String>,
}

/// An HTTP answer from the daemon's OCPI endpoint.
#[derive(Debug, Clone)]
pub struct OcpiResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lower-cased (repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// Body text.
    pub text: String,
    /// Parsed body, if JSON.
    pub body: Option<Value>,
}

impl OcpiResponse {
    /// A header value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The envelope's `status_code`.
    pub fn ocpi_status(&self) -> Option<u64> {
        self.body.as_ref()?.get("status_code")?.as_u64()
    }

    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        self.body
            .as_ref()
            .and_then(|b| b.get("data"))
            .unwrap_or(&Value::Null)
    }

    /// The URL of the `Link: <…>; rel="next"` header, if any.
    pub fn next_link(&self) -> Option<String> {
        let link = self.header("link")?;
        link.split(',').find_map(|part| {
            let part = part.trim();
            if !part.contains("rel=\"next\"") && !part.contains("rel=next") {
                return None;
            }
            let start = part.find('<')?;
            let end = part.find('>')?;
            Some(part[start + 1..end].to_string())
        })
    }
}

#[derive(Debug)]
struct Inner {
    mode: HubMode,
    /// The version the daemon registered in (`2.2.1` until it did).
    version: String,
    /// Token the daemon must use on functional modules (C when the daemon registered with us, B
    /// when we registered with the daemon).
    inbound: Option<String>,
    /// Token we use to call the daemon.
    outbound: Option<String>,
    registered: bool,
    bridge_versions_url: Option<String>,
    bridge_roles: Value,
    /// The daemon's endpoints: (identifier, role, url).
    bridge_endpoints: Vec<(String, String, String)>,
    pushes: Vec<Push>,
    unauthorized: Vec<Unauthorized>,
    credentials_calls: Vec<CredentialsCall>,
    versions_calls: Vec<VersionsCall>,
    /// The hub's Tokens sender list (served on `GET …/tokens`, paginated).
    tokens: Vec<Value>,
    /// Page size of the Tokens sender list.
    tokens_page_size: usize,
    /// Scripted real-time authorization answers by upper-cased uid.
    auth_replies: BTreeMap<String, AuthReply>,
    /// Every real-time authorization request, in arrival order (recorded on arrival).
    auth_requests: Vec<AuthRequest>,
    /// `(CDR id, Location URL)` the hub answered to each accepted CDR POST.
    cdr_locations: Vec<(String, String)>,
    /// Tokens the hub PUT to the daemon (it knows them as their eMSP).
    pushed_tokens: Vec<Value>,
    /// Parties behind the hub that it cannot reach: pushes addressed to them (`OCPI-to-*`) get
    /// HTTP 200 + OCPI 4001 (upper case `(cc, pid)`).
    unreachable: Vec<(String, String)>,
}

/// What the hub's real-time authorization endpoint answers for one uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    /// HTTP 200 + OCPI 1000 with an AuthorizationInfo whose `allowed` is this value
    /// (`ALLOWED`, `BLOCKED`, `EXPIRED`, `NO_CREDIT`, `NOT_ALLOWED`).
    Allowed(String),
    /// HTTP 404 + OCPI 2004: the eMSP does not know the token.
    NotFound,
    /// HTTP 200 + OCPI 2004: unknown token, the other way eMSPs say it.
    Unknown2004,
}

/// A scripted answer of `POST {tokens}/{uid}/authorize` (see [`Hub::script_authorize`]).
#[derive(Debug, Clone)]
pub struct AuthReply {
    /// The verdict.
    pub kind: AuthKind,
    /// `authorization_reference` of the AuthorizationInfo.
    pub reference: Option<String>,
    /// Wait this long before answering (to exceed the daemon's `authorize_timeout_ms`).
    pub delay: Duration,
    /// The `token` of the AuthorizationInfo (default: the uid's entry in the Tokens sender
    /// list, else the token the hub PUT to the daemon, else a token of the hub's party built
    /// from the uid).
    pub token: Option<Value>,
}

impl AuthReply {
    /// `allowed` = `ALLOWED`, `BLOCKED`, `EXPIRED`, `NO_CREDIT` or `NOT_ALLOWED`.
    pub fn allowed(allowed: &str) -> AuthReply {
        AuthReply {
            kind: AuthKind::Allowed(allowed.into()),
            reference: None,
            delay: Duration::ZERO,
            token: None,
        }
    }

    /// HTTP 404 (unknown token).
    pub fn not_found() -> AuthReply {
        AuthReply {
            kind: AuthKind::NotFound,
            ..AuthReply::allowed("ALLOWED")
        }
    }

    /// OCPI 2004 (unknown token).
    pub fn unknown_2004() -> AuthReply {
        AuthReply {
            kind: AuthKind::Unknown2004,
            ..AuthReply::allowed("ALLOWED")
        }
    }

    /// With this `authorization_reference`.
    pub fn reference(mut self, reference: &str) -> AuthReply {
        self.reference = Some(reference.into());
        self
    }

    /// Answer only after `delay`.
    pub fn delay(mut self, delay: Duration) -> AuthReply {
        self.delay = delay;
        self
    }

    /// With this `token` object in the answer.
    pub fn token(mut self, token: Value) -> AuthReply {
        self.token = Some(token);
        self
    }
}

/// One `POST {tokens}/{uid}/authorize` the daemon made.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The uid from the path.
    pub uid: String,
    /// Query string (`type=RFID`).
    pub query: Option<String>,
    /// Request headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// Parsed body (LocationReferences), if any.
    pub body: Option<Value>,
    /// Arrival time.
    pub at: Instant,
}

impl AuthRequest {
    /// A header value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Debug)]
struct Shared {
    opts: HubOptions,
    base: String,
    http: reqwest::Client,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A 2.1.1-only hub: raw tokens in `Authorization`.
    fn raw_tokens(&self) -> bool {
        self.opts.versions.iter().all(|v| v == "2.1.1")
    }

    /// The token of a request: raw for a 2.1.1-only hub, else Base64-decoded.
    fn token_of(&self, headers: &HeaderMap) -> Option<String> {
        if self.raw_tokens() {
            let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
            Some(value.strip_prefix("Token ")?.trim().to_string())
        } else {
            decoded_token(headers)
        }
    }

    /// The `Authorization` value the hub sends with `token`.
    fn auth_for(&self, token: &str) -> String {
        if self.raw_tokens() {
            format!("Token {token}")
        } else {
            auth_value(token)
        }
    }

    /// The versions the hub offers, highest first.
    fn offered(&self) -> Vec<String> {
        let mut v = self.opts.versions.clone();
        v.sort_by(|a, b| b.cmp(a));
        v
    }

    /// The version a request path belongs to, and the path with `2.2.1` in its place (so the
    /// rest of the hub handles every version alike).
    fn normalise(&self, path: &str) -> (String, String) {
        for v in &self.opts.versions {
            for prefix in [format!("/ocpi/emsp/{v}/"), format!("/ocpi/{v}/")] {
                if let Some(rest) = path.strip_prefix(&prefix) {
                    let generic = prefix.replace(v.as_str(), "2.2.1");
                    return (v.clone(), format!("{generic}{rest}"));
                }
            }
            if path == format!("/ocpi/{v}") {
                return (v.clone(), "/ocpi/2.2.1".into());
            }
        }
        ("2.2.1".into(), path.to_string())
    }
}

/// The fake hub. Dropping it stops its server.
#[derive(Debug)]
pub struct Hub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves `app` over HTTPS (HTTP/1.1) until aborted.
async fn serve_https(listener: tokio::net::TcpListener, app: Router, cert: String, key: String) {
    use rustls_pki_types::pem::PemObject;
    let chain = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("hub cert");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("hub key");
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("hub TLS config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(HUB_HTTP_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    use tower::ServiceExt as _;
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The modules the hub advertises: (identifier, role, path under the base URL).
const HUB_MODULES: &[(&str, &str)] = &[
    ("credentials", "SENDER"),
    ("locations", "RECEIVER"),
    ("tariffs", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tokens", "SENDER"),
    ("commands", "SENDER"),
    ("chargingprofiles", "SENDER"),
];

impl Hub {
    /// Start a hub with default options (NL/HUB, a random token A).
    pub async fn start() -> Hub {
        Hub::start_with(HubOptions::default()).await
    }

    /// Start a hub with `opts` on `127.0.0.1:0`.
    pub async fn start_with(opts: HubOptions) -> Hub {
        crate::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake hub");
        let addr = listener.local_addr().expect("hub local addr");
        let roots = match &opts.trust_pem {
            Some(pem) => reqwest::Certificate::from_pem_bundle(pem.as_bytes()).expect("trust PEM"),
            None => Vec::new(),
        };
        let http = reqwest::Client::builder()
            .timeout(HUB_HTTP_TIMEOUT)
            .no_proxy()
            .tls_certs_merge(roots)
            .build()
            .expect("build hub http client");
        let tls = opts.tls.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            opts,
            base: format!("{scheme}://{addr}"),
            http,
            inner: Mutex::new(Inner {
                mode: HubMode::Normal,
                version: "2.2.1".into(),
                inbound: None,
                outbound: None,
                registered: false,
                bridge_versions_url: None,
                bridge_roles: Value::Null,
                bridge_endpoints: Vec::new(),
                pushes: Vec::new(),
                unauthorized: Vec::new(),
                credentials_calls: Vec::new(),
                versions_calls: Vec::new(),
                tokens: Vec::new(),
                tokens_page_size: 100,
                auth_replies: BTreeMap::new(),
                auth_requests: Vec::new(),
                cdr_locations: Vec::new(),
                pushed_tokens: Vec::new(),
                unreachable: Vec::new(),
            }),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
            Some((cert, key)) => tokio::spawn(serve_https(listener, app, cert, key)),
        };
        Hub {
            addr,
            shared,
            server,
        }
    }

    /// The hub's listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The id the daemon gives the hub when the hub is a configured peer: `host:port`.
    pub fn peer_id(&self) -> String {
        self.addr.to_string()
    }

    /// The id the daemon gives the hub when the hub registered itself: `{cc}{pid}`.
    pub fn party_key(&self) -> String {
        format!(
            "{}{}",
            self.shared.opts.country_code, self.shared.opts.party_id
        )
    }

    /// The hub's versions URL (`[[ocpi.peers]] versions_url`).
    pub fn versions_url(&self) -> String {
        format!("{}/ocpi/versions", self.shared.base)
    }

    /// The hub's token A (`[[ocpi.peers]] token_a`).
    pub fn token_a(&self) -> String {
        self.shared.opts.token_a.clone()
    }

    /// The version the daemon registered with the hub in.
    pub fn registered_version(&self) -> String {
        self.shared.lock().version.clone()
    }

    /// URL of one of the hub's receiver modules.
    pub fn module_url(&self, module: &str) -> String {
        format!("{}/ocpi/emsp/2.2.1/{module}", self.shared.base)
    }

    /// Switch how pushes are answered.
    pub fn set_mode(&self, mode: HubMode) {
        self.shared.lock().mode = mode;
    }

    /// Current mode.
    pub fn mode(&self) -> HubMode {
        self.shared.lock().mode
    }

    /// Whether a registration (either direction) completed.
    pub fn registered(&self) -> bool {
        self.shared.lock().registered
    }

    /// The token the daemon must present to the hub.
    pub fn inbound_token(&self) -> Option<String> {
        self.shared.lock().inbound.clone()
    }

    /// The token the hub presents to the daemon.
    pub fn token_for_bridge(&self) -> Option<String> {
        self.shared.lock().outbound.clone()
    }

    /// The daemon's versions URL as given in its credentials.
    pub fn bridge_versions_url(&self) -> Option<String> {
        self.shared.lock().bridge_versions_url.clone()
    }

    /// The daemon's roles as given in its credentials.
    pub fn bridge_roles(&self) -> Value {
        self.shared.lock().bridge_roles.clone()
    }

    /// The daemon's endpoints from its version details: (identifier, role, url).
    pub fn bridge_endpoints(&self) -> Vec<(String, String, String)> {
        self.shared.lock().bridge_endpoints.clone()
    }

    /// The daemon's endpoint URL for `module` (any role); panics if it was not advertised.
    pub fn bridge_module_url(&self, module: &str) -> String {
        let eps = self.bridge_endpoints();
        eps.iter()
            .find(|(id, _, _)| id == module)
            .map(|(_, _, url)| url.clone())
            .unwrap_or_else(|| panic!("daemon did not advertise {module}: {eps:?}"))
    }

    /// Every request to a functional module, in arrival order (including refused/failed ones).
    pub fn pushes(&self) -> Vec<Push> {
        self.shared.lock().pushes.clone()
    }

    /// Pushes answered with OCPI 1000, in arrival order.
    pub fn accepted(&self) -> Vec<Push> {
        self.pushes().into_iter().filter(Push::accepted).collect()
    }

    /// Requests refused with HTTP 401.
    pub fn unauthorized(&self) -> Vec<Unauthorized> {
        self.shared.lock().unauthorized.clone()
    }

    /// Requests to the hub's credentials endpoint.
    pub fn credentials_calls(&self) -> Vec<CredentialsCall> {
        self.shared.lock().credentials_calls.clone()
    }

    /// Requests to the hub's versions / version details endpoints.
    pub fn versions_calls(&self) -> Vec<VersionsCall> {
        self.shared.lock().versions_calls.clone()
    }

    /// Forget recorded pushes (registration state is kept).
    pub fn clear_pushes(&self) {
        self.shared.lock().pushes.clear();
    }

    /// Wait (bounded) until the hub is registered with the daemon.
    pub async fn wait_registered(&self, timeout: Duration) {
        eventually("hub registered", timeout, || async {
            let inner = self.shared.lock();
            if inner.registered {
                Ok(())
            } else {
                Err(format!(
                    "credentials calls: {:?}; versions calls: {}",
                    inner
                        .credentials_calls
                        .iter()
                        .map(|c| (&c.method, c.http_status, c.ocpi_status))
                        .collect::<Vec<_>>(),
                    inner.versions_calls.len()
                ))
            }
        })
        .await
    }

    /// Wait (bounded) until at least `n` *accepted* pushes match `pred`; returns all matching.
    pub async fn wait_accepted(
        &self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Push) -> bool,
    ) -> Vec<Push> {
        self.wait_pushes_inner(what, n, timeout, |p| p.accepted() && pred(p))
            .await
    }

    /// Wait (bounded) until at least `n` received pushes (whatever the answer) match `pred`.
    pub async fn wait_received(
        &self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Push) -> bool,
    ) -> Vec<Push> {
        self.wait_pushes_inner(what, n, timeout, pred).await
    }

    async fn wait_pushes_inner(
        &self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Push) -> bool,
    ) -> Vec<Push> {
        let pred = &pred;
        eventually(what, timeout, || {
            let all = self.pushes();
            async move {
                let matching: Vec<Push> = all.iter().filter(|p| pred(p)).cloned().collect();
                if matching.len() >= n {
                    Ok(matching)
                } else {
                    Err(format!(
                        "{} of {n} matching; all pushes so far:\n{}",
                        matching.len(),
                        summarize(&all)
                    ))
                }
            }
        })
        .await
    }

    /// The last accepted EVSE status PATCHed for `evse_uid`, if any.
    pub fn last_status(&self, location_id: &str, evse_uid: &str) -> Option<String> {
        self.accepted()
            .iter()
            .rev()
            .find(|p| p.is_evse_patch(location_id, evse_uid))
            .and_then(|p| p.status().map(str::to_string))
    }

    /// Wait (bounded) until the newest accepted PATCH for `evse_uid` says `status`.
    pub async fn wait_status(&self, location_id: &str, evse_uid: &str, status: &str) -> Push {
        let what = format!("PATCH {location_id}/{evse_uid} status {status}");
        eventually(&what, PUSH_WAIT, || {
            let all = self.pushes();
            async move {
                let last = all
                    .iter()
                    .rev()
                    .find(|p| p.accepted() && p.is_evse_patch(location_id, evse_uid));
                match last {
                    Some(p) if p.status() == Some(status) => Ok(p.clone()),
                    _ => Err(summarize(&all)),
                }
            }
        })
        .await
    }

    // ----- the hub as eMSP: tokens, real-time authorization, sessions and CDRs -----

    /// Replace the hub's Tokens sender list (what the daemon's token pulls get).
    pub fn set_tokens(&self, tokens: Vec<Value>) {
        self.shared.lock().tokens = tokens;
    }

    /// Page size of the Tokens sender list (default 100; `Link` + `X-Total-Count` are sent).
    pub fn set_tokens_page_size(&self, n: usize) {
        self.shared.lock().tokens_page_size = n.max(1);
    }

    /// Script the real-time authorization answer for `uid` (case-insensitive). Without a
    /// script: ALLOWED for a uid in the Tokens sender list or PUT by the hub, else HTTP 404.
    pub fn script_authorize(&self, uid: &str, reply: AuthReply) {
        self.shared
            .lock()
            .auth_replies
            .insert(uid.to_ascii_uppercase(), reply);
    }

    /// Every real-time authorization request so far.
    pub fn authorize_requests(&self) -> Vec<AuthRequest> {
        self.shared.lock().auth_requests.clone()
    }

    /// Real-time authorization requests for `uid` (case-insensitive).
    pub fn authorize_requests_for(&self, uid: &str) -> Vec<AuthRequest> {
        self.authorize_requests()
            .into_iter()
            .filter(|r| r.uid.eq_ignore_ascii_case(uid))
            .collect()
    }

    /// The GETs of the Tokens sender list the daemon made (pulls, one per page).
    pub fn token_pulls(&self) -> Vec<Push> {
        self.pushes()
            .into_iter()
            .filter(|p| p.is("GET", "tokens"))
            .collect()
    }

    /// Every Session push (`PUT`/`PATCH sessions/{cc}/{pid}/{id}`) of session `id`, in order.
    pub fn session_pushes(&self, id: &str) -> Vec<Push> {
        self.pushes()
            .into_iter()
            .filter(|p| p.module == "sessions" && p.segments.last().map(String::as_str) == Some(id))
            .collect()
    }

    /// `(CDR id, Location URL)` the hub answered to each accepted CDR POST, in order.
    pub fn cdr_locations(&self) -> Vec<(String, String)> {
        self.shared.lock().cdr_locations.clone()
    }

    /// Every CDR `POST` received (whatever the answer), in order.
    pub fn cdr_posts(&self) -> Vec<Push> {
        self.pushes()
            .into_iter()
            .filter(|p| p.is("POST", "cdrs"))
            .collect()
    }

    /// Wait (bounded) for the first accepted Session PUT; returns it.
    pub async fn wait_session_put(&self, timeout: Duration) -> Push {
        self.wait_accepted("PUT session", 1, timeout, |p| p.is("PUT", "sessions"))
            .await
            .remove(0)
    }

    /// Wait (bounded) for an accepted CDR POST with `id`; returns it.
    pub async fn wait_cdr(&self, id: &str, timeout: Duration) -> Push {
        self.wait_accepted(&format!("POST CDR {id}"), 1, timeout, |p| {
            p.is("POST", "cdrs") && p.body.as_ref().is_some_and(|b| b["id"] == id)
        })
        .await
        .remove(0)
    }

    /// The daemon's Tokens receiver URL of one token: `{tokens}/{cc}/{pid}/{uid}[?type=]`.
    pub fn bridge_token_url(&self, cc: &str, pid: &str, uid: &str, kind: Option<&str>) -> String {
        let base = self.bridge_module_url("tokens");
        let mut url = format!("{}/{cc}/{pid}/{uid}", base.trim_end_matches('/'));
        if let Some(k) = kind {
            url.push_str("?type=");
            url.push_str(k);
        }
        url
    }

    /// PUT a token object to the daemon's Tokens receiver (URL from the token's own fields,
    /// `?type=` its type), with the hub's token for the daemon.
    pub async fn put_token(&self, token: &Value) -> OcpiResponse {
        let s = |k: &str| token[k].as_str().unwrap_or_default().to_string();
        let url = self.bridge_token_url(
            &s("country_code"),
            &s("party_id"),
            &s("uid"),
            Some(&s("type")),
        );
        self.shared.lock().pushed_tokens.push(token.clone());
        self.send_to_bridge(Method::PUT, &url, Some(token.to_string()))
            .await
    }

    /// PUT a token and panic unless the daemon answered OCPI 1000.
    pub async fn put_token_ok(&self, token: &Value) {
        let r = self.put_token(token).await;
        assert!(
            (r.status == 200 || r.status == 201) && r.ocpi_status() == Some(1000),
            "PUT token {token}: {} {}",
            r.status,
            r.text
        );
    }

    /// Any request to `url` on the daemon with the hub's token (`body` sent as JSON text).
    pub async fn send_to_bridge(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> OcpiResponse {
        let token = self
            .token_for_bridge()
            .expect("hub holds no token for the daemon (not registered)");
        self.request(method, url, Some(&token), body, &[]).await
    }

    // ----- the hub as a client of the daemon -----

    /// `GET url` with `Authorization: Token base64(token)` (no header when `token` is `None`).
    pub async fn get(&self, url: &str, token: Option<&str>) -> OcpiResponse {
        self.request(Method::GET, url, token, None, &[]).await
    }

    /// Makes a party behind the hub unreachable (pushes to it get OCPI 4001) or reachable again.
    pub fn set_party_reachable(&self, cc: &str, pid: &str, reachable: bool) {
        let key = (cc.to_ascii_uppercase(), pid.to_ascii_uppercase());
        let mut inner = self.shared.lock();
        inner.unreachable.retain(|p| p != &key);
        if !reachable {
            inner.unreachable.push(key);
        }
    }

    /// `PUT {hubclientinfo}/{cc}/{pid}` to the daemon: a party's ClientInfo with `status`
    /// (`CONNECTED`, `OFFLINE`, …).
    pub async fn put_client_info(
        &self,
        cc: &str,
        pid: &str,
        role: &str,
        status: &str,
    ) -> OcpiResponse {
        let url = format!("{}/{cc}/{pid}", self.bridge_module_url("hubclientinfo"));
        let body = json!({"party_id": pid, "country_code": cc, "role": role, "status": status,
            "last_updated": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
        self.send_to_bridge(Method::PUT, &url, Some(body.to_string()))
            .await
    }

    /// `GET url` with the token the daemon gave the hub and the `OCPI-from-*` headers of a party
    /// behind it.
    pub async fn get_as_party(&self, url: &str, cc: &str, pid: &str) -> OcpiResponse {
        let token = self
            .token_for_bridge()
            .expect("hub holds no token for the daemon (not registered)");
        self.request(
            Method::GET,
            url,
            Some(&token),
            None,
            &[("OCPI-from-country-code", cc), ("OCPI-from-party-id", pid)],
        )
        .await
    }

    /// `GET url` with the token the daemon gave the hub.
    pub async fn get_as_peer(&self, url: &str) -> OcpiResponse {
        let token = self
            .token_for_bridge()
            .expect("hub holds no token for the daemon (not registered)");
        self.get(url, Some(&token)).await
    }

    /// Any request to the daemon; `body` is sent verbatim with `Content-Type: application/json`.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> OcpiResponse {
        let mut req = self
            .shared
            .http
            .request(method.clone(), url)
            .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
            .header("X-Correlation-ID", uuid::Uuid::new_v4().to_string());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, self.shared.auth_for(t));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header(header::CONTENT_TYPE, "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("hub: {method} {url} failed: {e:#}"));
        read_response(resp).await
    }

    /// Follow `Link: rel="next"` from `first_url` with the hub's token; returns every page.
    pub async fn walk_pages(&self, first_url: &str) -> Vec<OcpiResponse> {
        let mut pages = Vec::new();
        let mut next = Some(first_url.to_string());
        while let Some(url) = next {
            assert!(
                pages.len() < MAX_PAGES,
                "more than {MAX_PAGES} pages from {first_url}: the Link chain does not end"
            );
            let page = self.get_as_peer(&url).await;
            assert_eq!(page.status, 200, "GET {url}: {}", page.text);
            assert_eq!(page.ocpi_status(), Some(1000), "GET {url}: {}", page.text);
            next = page.next_link();
            pages.push(page);
        }
        pages
    }

    /// Register with the daemon (the hub is the Sender) using the daemon's token A; panics on
    /// failure. Returns the daemon's credentials answer.
    pub async fn register_with(&self, bridge_versions_url: &str, token_a: &str) -> Value {
        match self.try_register_with(bridge_versions_url, token_a).await {
            Ok(v) => v,
            Err(e) => panic!("hub registration with the daemon failed: {e}"),
        }
    }

    /// Like [`Hub::register_with`] but returns what went wrong instead of panicking.
    pub async fn try_register_with(
        &self,
        bridge_versions_url: &str,
        token_a: &str,
    ) -> Result<Value, String> {
        self.try_register_with_in(bridge_versions_url, token_a, "2.2.1")
            .await
    }

    /// Like [`Hub::try_register_with`] in OCPI `version` (`2.1.1`: the flat credentials object);
    /// the daemon's answer is returned in the shape it came.
    pub async fn try_register_with_in(
        &self,
        bridge_versions_url: &str,
        token_a: &str,
        version: &str,
    ) -> Result<Value, String> {
        let versions = self.get(bridge_versions_url, Some(token_a)).await;
        if versions.status != 200 || versions.ocpi_status() != Some(1000) {
            return Err(format!(
                "GET versions → {} {}",
                versions.status, versions.text
            ));
        }
        let detail_url = versions
            .data()
            .as_array()
            .and_then(|a| a.iter().find(|v| v["version"] == version))
            .and_then(|v| v["url"].as_str())
            .ok_or_else(|| format!("no {version} in versions: {}", versions.text))?
            .to_string();
        let details = self.get(&detail_url, Some(token_a)).await;
        if details.status != 200 || details.ocpi_status() != Some(1000) {
            return Err(format!("GET details → {} {}", details.status, details.text));
        }
        let endpoints = parse_endpoints(details.data());
        let cred_url = endpoints
            .iter()
            .find(|(id, _, _)| id == "credentials")
            .map(|(_, _, u)| u.clone())
            .ok_or_else(|| format!("no credentials endpoint: {}", details.text))?;

        let token_b = format!("hub-token-b-{}", uuid::Uuid::new_v4().simple());
        {
            let mut inner = self.shared.lock();
            inner.inbound = Some(token_b.clone());
            inner.bridge_endpoints = endpoints;
        }
        let body = if version == "2.1.1" {
            let role = self.own_role();
            json!({
                "token": token_b,
                "url": self.versions_url(),
                "business_details": role["business_details"],
                "party_id": role["party_id"],
                "country_code": role["country_code"],
            })
        } else {
            json!({
                "token": token_b,
                "url": self.versions_url(),
                "roles": [self.own_role()],
            })
        };
        let resp = self
            .request(
                Method::POST,
                &cred_url,
                Some(token_a),
                Some(body.to_string()),
                &[],
            )
            .await;
        if resp.status != 200 || resp.ocpi_status() != Some(1000) {
            return Err(format!("POST credentials → {} {}", resp.status, resp.text));
        }
        let data = resp.data().clone();
        let token_c = data["token"]
            .as_str()
            .ok_or_else(|| format!("no token in the credentials answer: {}", resp.text))?
            .to_string();
        let mut inner = self.shared.lock();
        inner.outbound = Some(token_c);
        inner.registered = true;
        inner.version = version.to_string();
        inner.bridge_versions_url = data["url"].as_str().map(str::to_string);
        inner.bridge_roles = data["roles"].clone();
        Ok(data)
    }

    fn own_role(&self) -> Value {
        own_role(&self.shared.opts)
    }
}

fn own_role(opts: &HubOptions) -> Value {
    json!({
        "role": opts.role,
        "country_code": opts.country_code,
        "party_id": opts.party_id,
        "business_details": {"name": format!("Fake hub {}{}", opts.country_code, opts.party_id)},
    })
}

/// `Token base64(token)`.
pub fn auth_value(token: &str) -> String {
    format!("Token {}", B64.encode(token))
}

/// One line per push, for failure messages.
pub fn summarize(pushes: &[Push]) -> String {
    pushes
        .iter()
        .map(|p| {
            format!(
                "  {} {} → {}/{:?} {}",
                p.method,
                p.path,
                p.http_status,
                p.ocpi_status,
                p.status()
                    .map(|s| format!("status={s}"))
                    .unwrap_or_else(|| match p.is("PUT", "locations") {
                        true => format!("evses={:?}", p.evse_uids()),
                        false => String::new(),
                    })
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_endpoints(details: &Value) -> Vec<(String, String, String)> {
    details
        .get("endpoints")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some((
                        e.get("identifier")?.as_str()?.to_string(),
                        e.get("role")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        e.get("url")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn read_response(resp: reqwest::Response) -> OcpiResponse {
    let status = resp.status().as_u16();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in resp.headers() {
        let v = v.to_str().unwrap_or_default().to_string();
        headers
            .entry(k.as_str().to_ascii_lowercase())
            .and_modify(|old| {
                old.push_str(", ");
                old.push_str(&v);
            })
            .or_insert(v);
    }
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).ok();
    OcpiResponse {
        status,
        headers,
        text,
        body,
    }
}

// ----- the server side -----

fn envelope(code: u16, message: &str, data: Option<Value>) -> Value {
    let mut v = json!({
        "status_code": code,
        "status_message": message,
        "timestamp": crate::now_rfc3339(),
    });
    if let Some(d) = data {
        v["data"] = d;
    }
    v
}

fn ocpi(http: StatusCode, code: u16, message: &str, data: Option<Value>) -> Response {
    let mut resp = (http, axum::Json(envelope(code, message, data))).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn plain(http: StatusCode, text: &'static str) -> Response {
    (http, text).into_response()
}

/// Decode `Token <base64>`; `None` if absent or not base64 of printable text.
fn decoded_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = value.strip_prefix("Token ")?;
    let bytes = B64.decode(b64.trim()).ok()?;
    let s = String::from_utf8(bytes).ok()?;
    Some(s.trim_end_matches('\n').to_string())
}

fn headers_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in headers {
        out.insert(
            k.as_str().to_ascii_lowercase(),
            v.to_str().unwrap_or_default().to_string(),
        );
    }
    out
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let method = parts.method.clone();
    let (version, path) = s.normalise(parts.uri.path());
    let query = parts.uri.query().map(str::to_string);
    let headers = parts.headers;

    let mode = s.lock().mode;
    let mut resp = if mode == HubMode::Down {
        if let Some(rest) = path.strip_prefix("/ocpi/emsp/2.2.1/") {
            record_push(
                &s, &method, &path, query, rest, &headers, &body, at, 503, None,
            );
        }
        plain(StatusCode::SERVICE_UNAVAILABLE, "hub down")
    } else if path == "/ocpi/versions" || path == "/ocpi/2.2.1" {
        versions(&s, &method, &path, &headers, &version)
    } else if path == "/ocpi/2.2.1/credentials" {
        credentials(&s, &method, &headers, &body, at, &version).await
    } else if let Some(rest) = path.strip_prefix("/ocpi/emsp/2.2.1/") {
        functional(&s, &method, &path, query, rest, &headers, &body, at, mode).await
    } else {
        plain(StatusCode::NOT_FOUND, "no such path")
    };
    // Echo the ids like a real platform.
    for name in ["x-request-id", "x-correlation-id"] {
        if let Some(v) = headers.get(name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    resp
}

fn unauthorized(s: &Shared, method: &Method, path: &str, headers: &HeaderMap) -> Response {
    s.lock().unauthorized.push(Unauthorized {
        method: method.to_string(),
        path: path.to_string(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        at: Instant::now(),
    });
    plain(StatusCode::UNAUTHORIZED, "unknown or missing token")
}

fn versions(
    s: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    version: &str,
) -> Response {
    let token = s.token_of(headers);
    let ok = {
        let inner = s.lock();
        token.as_deref() == Some(s.opts.token_a.as_str())
            || (token.is_some() && token == inner.inbound)
    };
    if !ok {
        return unauthorized(s, method, path, headers);
    }
    s.lock().versions_calls.push(VersionsCall {
        path: path.to_string(),
        token: token.clone(),
    });
    if method != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    if path == "/ocpi/versions" {
        ocpi(
            StatusCode::OK,
            1000,
            "Success",
            Some(Value::Array(
                s.offered()
                    .iter()
                    .map(|v| json!({"version": v, "url": format!("{}/ocpi/{v}", s.base)}))
                    .collect(),
            )),
        )
    } else {
        let endpoints: Vec<Value> = HUB_MODULES
            .iter()
            .map(|(id, role)| {
                let url = if *id == "credentials" {
                    format!("{}/ocpi/{version}/credentials", s.base)
                } else {
                    format!("{}/ocpi/emsp/{version}/{id}", s.base)
                };
                if version == "2.1.1" {
                    json!({"identifier": id, "url": url})
                } else {
                    json!({"identifier": id, "role": role, "url": url})
                }
            })
            .collect();
        ocpi(
            StatusCode::OK,
            1000,
            "Success",
            Some(json!({"version": version, "endpoints": endpoints})),
        )
    }
}

async fn credentials(
    s: &Shared,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    at: Instant,
    version: &str,
) -> Response {
    let path = "/ocpi/2.2.1/credentials";
    let token = s.token_of(headers);
    // What the hub says about itself, in the version's shape (2.1.1: flat, one party).
    let own = |token: Value| {
        if version == "2.1.1" {
            let role = own_role(&s.opts);
            json!({"token": token, "url": format!("{}/ocpi/versions", s.base),
                "business_details": role["business_details"], "party_id": role["party_id"],
                "country_code": role["country_code"]})
        } else {
            json!({"token": token, "url": format!("{}/ocpi/versions", s.base), "roles": [own_role(&s.opts)]})
        }
    };
    let (is_a, is_peer, registered) = {
        let inner = s.lock();
        (
            token.as_deref() == Some(s.opts.token_a.as_str()),
            token.is_some() && token == inner.inbound,
            inner.registered,
        )
    };
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let record = |http: StatusCode, code: Option<u16>| {
        s.lock().credentials_calls.push(CredentialsCall {
            method: method.to_string(),
            body: parsed.clone(),
            http_status: http.as_u16(),
            ocpi_status: code,
            at,
        });
    };
    if !(is_a || is_peer) {
        record(StatusCode::UNAUTHORIZED, None);
        return unauthorized(s, method, path, headers);
    }
    match *method {
        Method::GET => {
            if !registered {
                record(StatusCode::METHOD_NOT_ALLOWED, None);
                return plain(StatusCode::METHOD_NOT_ALLOWED, "not registered");
            }
            record(StatusCode::OK, Some(1000));
            let token = s.lock().inbound.clone();
            ocpi(StatusCode::OK, 1000, "Success", Some(own(json!(token))))
        }
        Method::DELETE => {
            if !registered {
                record(StatusCode::METHOD_NOT_ALLOWED, None);
                return plain(StatusCode::METHOD_NOT_ALLOWED, "not registered");
            }
            {
                let mut inner = s.lock();
                inner.registered = false;
                inner.inbound = None;
                inner.outbound = None;
            }
            record(StatusCode::OK, Some(1000));
            ocpi(StatusCode::OK, 1000, "Unregistered", None)
        }
        Method::POST | Method::PUT => {
            if *method == Method::POST && registered {
                record(StatusCode::METHOD_NOT_ALLOWED, None);
                return plain(StatusCode::METHOD_NOT_ALLOWED, "already registered");
            }
            if *method == Method::PUT && !registered {
                record(StatusCode::METHOD_NOT_ALLOWED, None);
                return plain(StatusCode::METHOD_NOT_ALLOWED, "not registered");
            }
            let Some(creds) = parsed.clone() else {
                record(StatusCode::BAD_REQUEST, None);
                return plain(StatusCode::BAD_REQUEST, "body is not JSON");
            };
            let (Some(their_token), Some(their_url)) =
                (creds["token"].as_str(), creds["url"].as_str())
            else {
                record(StatusCode::OK, Some(2001));
                return ocpi(StatusCode::OK, 2001, "token and url required", None);
            };
            match callback(s, their_url, their_token, version).await {
                Ok(endpoints) => {
                    let token_c = format!("hub-token-c-{}", uuid::Uuid::new_v4().simple());
                    {
                        let mut inner = s.lock();
                        inner.inbound = Some(token_c.clone());
                        inner.outbound = Some(their_token.to_string());
                        inner.registered = true;
                        inner.bridge_versions_url = Some(their_url.to_string());
                        inner.bridge_roles = if creds.get("roles").is_some() {
                            creds["roles"].clone()
                        } else {
                            // 2.1.1: one flat party.
                            json!([{"role": "CPO", "party_id": creds["party_id"],
                                "country_code": creds["country_code"],
                                "business_details": creds["business_details"]}])
                        };
                        inner.bridge_endpoints = endpoints;
                        inner.version = version.to_string();
                    }
                    record(StatusCode::OK, Some(1000));
                    ocpi(StatusCode::OK, 1000, "Success", Some(own(json!(token_c))))
                }
                Err(why) => {
                    record(StatusCode::OK, Some(3001));
                    ocpi(StatusCode::OK, 3001, &why, None)
                }
            }
        }
        _ => {
            record(StatusCode::METHOD_NOT_ALLOWED, None);
            plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
    }
}

/// The registration callback: the daemon's versions + the details of `version` (the one whose
/// credentials endpoint the daemon called) with the token it sent.
async fn callback(
    s: &Shared,
    versions_url: &str,
    token: &str,
    version: &str,
) -> Result<Vec<(String, String, String)>, String> {
    let get = |url: String| {
        let req = s
            .http
            .get(url.clone())
            .header(header::AUTHORIZATION, s.auth_for(token))
            .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
            .header("X-Correlation-ID", uuid::Uuid::new_v4().to_string());
        async move {
            let resp = req
                .send()
                .await
                .map_err(|e| format!("callback GET {url}: {e}"))?;
            let r = read_response(resp).await;
            if r.status != 200 || r.ocpi_status() != Some(1000) {
                return Err(format!(
                    "callback GET {url} with the token from the POST → {} {}",
                    r.status, r.text
                ));
            }
            Ok(r)
        }
    };
    let versions = get(versions_url.to_string()).await?;
    let detail_url = versions
        .data()
        .as_array()
        .and_then(|a| a.iter().find(|v| v["version"] == version))
        .and_then(|v| v["url"].as_str())
        .ok_or_else(|| format!("no {version} in {}", versions.text))?
        .to_string();
    let details = get(detail_url).await?;
    Ok(parse_endpoints(details.data()))
}

#[allow(clippy::too_many_arguments)]
fn record_push(
    s: &Shared,
    method: &Method,
    path: &str,
    query: Option<String>,
    rest: &str,
    headers: &HeaderMap,
    body: &Bytes,
    at: Instant,
    http_status: u16,
    ocpi_status: Option<u16>,
) {
    let mut segs = rest
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let module = segs.next().unwrap_or_default();
    let segments: Vec<String> = segs.collect();
    let parsed = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
        )
    };
    s.lock().pushes.push(Push {
        method: method.to_string(),
        path: path.to_string(),
        query,
        module,
        segments,
        headers: headers_map(headers),
        body: parsed,
        at,
        answered: Instant::now(),
        http_status,
        ocpi_status,
    });
}

/// The most requests of `pushes` that were in progress at the hub at one moment.
pub fn max_overlap(pushes: &[Push]) -> usize {
    pushes
        .iter()
        .map(|p| {
            pushes
                .iter()
                .filter(|q| q.at <= p.at && p.at < q.answered)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A header as text (empty when absent or not text).
fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[allow(clippy::too_many_arguments)]
async fn functional(
    s: &Shared,
    method: &Method,
    path: &str,
    query: Option<String>,
    rest: &str,
    headers: &HeaderMap,
    body: &Bytes,
    at: Instant,
    mode: HubMode,
) -> Response {
    let token = s.token_of(headers);
    let ok = {
        let inner = s.lock();
        // Not `registered`: when the hub registers with the daemon, the daemon may push with
        // token B before the hub has read the answer to its POST (the Sender must be ready).
        token.is_some() && token == inner.inbound
    };
    if !ok {
        return unauthorized(s, method, path, headers);
    }
    if let HubMode::Slow(d) = mode {
        tokio::time::sleep(d).await;
    }
    if mode == HubMode::Unauthorized && *method != Method::GET {
        record_push(s, method, path, query, rest, headers, body, at, 401, None);
        return plain(StatusCode::UNAUTHORIZED, "credentials being rotated");
    }
    if !body.is_empty() && serde_json::from_slice::<Value>(body).is_err() {
        record_push(s, method, path, query, rest, headers, body, at, 400, None);
        return plain(StatusCode::BAD_REQUEST, "body is not JSON");
    }
    if *method == Method::GET && rest.trim_end_matches('/') == "tokens" {
        return tokens_page(s, method, path, query, rest, headers, body, at);
    }
    if *method == Method::POST
        && let Some(uid) = rest
            .strip_prefix("tokens/")
            .and_then(|r| r.trim_end_matches('/').strip_suffix("/authorize"))
    {
        return authorize(s, uid, query, headers, body, at).await;
    }
    if *method == Method::GET {
        // Sender interfaces of the hub (tokens): an empty list.
        record_push(
            s,
            method,
            path,
            query,
            rest,
            headers,
            body,
            at,
            200,
            Some(1000),
        );
        let mut resp = ocpi(StatusCode::OK, 1000, "Success", Some(json!([])));
        resp.headers_mut()
            .insert("x-total-count", HeaderValue::from_static("0"));
        resp.headers_mut()
            .insert("x-limit", HeaderValue::from_static("100"));
        return resp;
    }
    // A party behind the hub that is offline: OCPI 4001 for anything addressed to it.
    let to = (
        header_text(headers, "ocpi-to-country-code").to_ascii_uppercase(),
        header_text(headers, "ocpi-to-party-id").to_ascii_uppercase(),
    );
    if s.lock().unreachable.contains(&to) {
        record_push(
            s,
            method,
            path,
            query,
            rest,
            headers,
            body,
            at,
            200,
            Some(4001),
        );
        return ocpi(
            StatusCode::OK,
            4001,
            "Unknown receiver: party offline",
            None,
        );
    }
    // A mode switched while we slept applies to this answer too.
    let mode = s.lock().mode;
    if mode == HubMode::Refuse {
        record_push(
            s,
            method,
            path,
            query,
            rest,
            headers,
            body,
            at,
            200,
            Some(2001),
        );
        return ocpi(StatusCode::OK, 2001, "bad object", None);
    }
    if mode == HubMode::Down {
        record_push(s, method, path, query, rest, headers, body, at, 503, None);
        return plain(StatusCode::SERVICE_UNAVAILABLE, "hub down");
    }
    record_push(
        s,
        method,
        path,
        query,
        rest,
        headers,
        body,
        at,
        200,
        Some(1000),
    );
    let mut resp = ocpi(StatusCode::OK, 1000, "Success", None);
    if *method == Method::POST && rest.starts_with("cdrs") {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let location = format!("{}/ocpi/emsp/2.2.1/cdrs/{id}", s.base);
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        let cdr_id = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["id"].as_str().map(str::to_string))
            .unwrap_or_default();
        s.lock().cdr_locations.push((cdr_id, location));
    }
    resp
}

/// Query parameter `name` of `query`, if present.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// `GET …/tokens[?offset=&limit=]`: one page of the Tokens sender list with `X-Total-Count`,
/// `X-Limit` and a `Link` to the next page.
#[allow(clippy::too_many_arguments)]
fn tokens_page(
    s: &Shared,
    method: &Method,
    path: &str,
    query: Option<String>,
    rest: &str,
    headers: &HeaderMap,
    body: &Bytes,
    at: Instant,
) -> Response {
    let (tokens, page_size) = {
        let inner = s.lock();
        (inner.tokens.clone(), inner.tokens_page_size)
    };
    let offset: usize = query_param(query.as_deref(), "offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = query_param(query.as_deref(), "limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(page_size)
        .min(page_size)
        .max(1);
    let query_ref = query.clone();
    record_push(
        s,
        method,
        path,
        query,
        rest,
        headers,
        body,
        at,
        200,
        Some(1000),
    );
    // date_from (inclusive) / date_to (exclusive) on last_updated, as a Sender must.
    let date = |name: &str| {
        query_param(query_ref.as_deref(), name).and_then(|v| {
            let v = v.replace("%3A", ":").replace("%2B", "+");
            chrono::DateTime::parse_from_rfc3339(&v).ok()
        })
    };
    let (from, to) = (date("date_from"), date("date_to"));
    let tokens: Vec<Value> = tokens
        .into_iter()
        .filter(|t| {
            let at = t["last_updated"]
                .as_str()
                .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok());
            from.is_none_or(|f| at.is_some_and(|a| a >= f))
                && to.is_none_or(|t| at.is_some_and(|a| a < t))
        })
        .collect();
    let page: Vec<Value> = tokens.iter().skip(offset).take(limit).cloned().collect();
    let total = tokens.len();
    let mut resp = ocpi(StatusCode::OK, 1000, "Success", Some(Value::Array(page)));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        h.insert("x-total-count", v);
    }
    if let Ok(v) = HeaderValue::from_str(&limit.to_string()) {
        h.insert("x-limit", v);
    }
    if offset + limit < total {
        let dates: String = ["date_from", "date_to"]
            .iter()
            .filter_map(|n| query_param(query_ref.as_deref(), n).map(|v| format!("&{n}={v}")))
            .collect();
        let next = format!(
            "<{}/ocpi/emsp/2.2.1/tokens?offset={}&limit={limit}{dates}>; rel=\"next\"",
            s.base,
            offset + limit
        );
        if let Ok(v) = HeaderValue::from_str(&next) {
            h.insert(header::LINK, v);
        }
    }
    resp
}

/// A token of the hub's own party for `uid` (used when the script gives none).
fn default_token(opts: &HubOptions, uid: &str, kind: &str) -> Value {
    json!({
        "country_code": opts.country_code,
        "party_id": opts.party_id,
        "uid": uid,
        "type": kind,
        "contract_id": format!("{}-{}-C{}", opts.country_code, opts.party_id, uid),
        "issuer": "Fake hub eMSP",
        "valid": true,
        "whitelist": "ALLOWED",
        "last_updated": "2026-01-01T00:00:00Z",
    })
}

/// `POST …/tokens/{uid}/authorize[?type=]`: the scripted real-time authorization answer.
async fn authorize(
    s: &Shared,
    uid: &str,
    query: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
    at: Instant,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (script, listed) = {
        let mut inner = s.lock();
        inner.auth_requests.push(AuthRequest {
            uid: uid.to_string(),
            query: query.clone(),
            headers: headers_map(headers),
            body: parsed,
            at,
        });
        let same_uid = |t: &&Value| {
            t["uid"]
                .as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(uid))
        };
        let listed = inner.tokens.iter().find(same_uid).cloned();
        let pushed = inner.pushed_tokens.iter().rev().find(same_uid).cloned();
        (
            inner.auth_replies.get(&uid.to_ascii_uppercase()).cloned(),
            listed.or(pushed),
        )
    };
    let reply = match (script, &listed) {
        (Some(r), _) => r,
        (None, Some(_)) => AuthReply::allowed("ALLOWED"),
        (None, None) => AuthReply::not_found(),
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    match reply.kind {
        AuthKind::NotFound => ocpi(StatusCode::NOT_FOUND, 2004, "Unknown token", None),
        AuthKind::Unknown2004 => ocpi(StatusCode::OK, 2004, "Unknown token", None),
        AuthKind::Allowed(allowed) => {
            let kind = query_param(query.as_deref(), "type").unwrap_or_else(|| "RFID".into());
            let token = reply
                .token
                .or(listed)
                .unwrap_or_else(|| default_token(&s.opts, uid, &kind));
            let mut info = json!({ "allowed": allowed, "token": token });
            if let Some(r) = reply.reference {
                info["authorization_reference"] = Value::String(r);
            }
            ocpi(StatusCode::OK, 1000, "Success", Some(info))
        }
    }
}
