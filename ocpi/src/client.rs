//! Outbound HTTP: [`Client`] for pushes and pulls toward a peer, with OCPI headers and a retry classification.
//!
//! Invariants: functional-module URLs come **only** from the peer's endpoint list (never built from a base URL) —
//! the one exception is a command's `response_url`, which the eMSP chose ([`Client::post_command_result`]);
//! paths are joined with exactly one slash; every request carries a fresh `X-Request-ID` and an
//! `X-Correlation-ID`; `Content-Type: application/json` only with a body; routing headers only on functional
//! modules. Classification: OCPI 1xxx → [`Accepted`]; OCPI 2xxx and HTTP 4xx → [`PushError::Refused`] (don't
//! retry); network errors, timeouts, HTTP 5xx/408/429, OCPI 3xxx/4xxx and unreadable answers →
//! [`PushError::Retryable`].
//!
//! Building the client needs a rustls `CryptoProvider`: [`Client::new`] installs `ring` as the process default if
//! none is installed yet.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, Url};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::egress::Egress;
use crate::peer::Peer;
use crate::settings::Settings;
use crate::types::{
    ActiveChargingProfile, AuthToken, AuthorizationInfo, Cdr, CommandResult, CountryCode, DateTime,
    EvseStatus, EvseUid, InterfaceRole, Location, LocationId, LocationReferences, ModuleId,
    PartyId, Session, SessionId, Tariff, Token, TokenType, TokenUid,
};

/// Header names used on the wire.
pub mod headers {
    /// Unique per request/response pair.
    pub const X_REQUEST_ID: &str = "x-request-id";
    /// Constant along a chain of requests.
    pub const X_CORRELATION_ID: &str = "x-correlation-id";
    /// Total matches of a paginated GET.
    pub const X_TOTAL_COUNT: &str = "x-total-count";
    /// Server's page size cap.
    pub const X_LIMIT: &str = "x-limit";
    /// Routing: sender country code.
    pub const FROM_COUNTRY_CODE: &str = "ocpi-from-country-code";
    /// Routing: sender party id.
    pub const FROM_PARTY_ID: &str = "ocpi-from-party-id";
    /// Routing: receiver country code.
    pub const TO_COUNTRY_CODE: &str = "ocpi-to-country-code";
    /// Routing: receiver party id.
    pub const TO_PARTY_ID: &str = "ocpi-to-party-id";
}

/// Characters escaped in a path segment (everything but unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Upper bound of pages [`Client::fetch_paginated`] follows.
pub const MAX_PAGES: usize = 10_000;

/// A successful (OCPI 1xxx) answer.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// HTTP status.
    pub http_status: u16,
    /// OCPI status code; `None` when a 2xx answer had an empty body (tolerated).
    pub status_code: Option<u16>,
    /// OCPI status message.
    pub status_message: Option<String>,
    /// HTTP `Location` header (the eMSP's CDR URL after a CDR POST).
    pub location_header: Option<String>,
    /// The raw response body.
    pub body: Bytes,
    headers: HeaderMap,
}

impl Accepted {
    /// Parses the envelope's `data` as `T` (`None` when absent or null).
    pub fn data<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice::<Envelope<T>>(&self.body).map(|e| e.data)
    }

    /// A response header as string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a retry may help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryReason {
    /// Connection failed (refused, reset, DNS…).
    #[error("network error: {0}")]
    Network(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// HTTP 5xx, 408 or 429.
    #[error("HTTP {0}")]
    Http(u16),
    /// OCPI 3xxx (server error) or 4xxx (hub error).
    #[error("OCPI {code}: {message}")]
    Ocpi {
        /// OCPI status code.
        code: u16,
        /// Status message.
        message: String,
    },
    /// 2xx answer that is not an OCPI envelope.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}

/// A failed push or pull.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The peer rejected the request (OCPI 2xxx or HTTP 4xx): retrying the same request won't help.
    #[error("refused by peer (HTTP {http_status}{}): {message}", status_code.map(|c| format!(", OCPI {c}")).unwrap_or_default())]
    Refused {
        /// HTTP status.
        http_status: u16,
        /// OCPI status code, if the body had one.
        status_code: Option<u16>,
        /// Status message or body excerpt.
        message: String,
    },
    /// Temporary failure.
    #[error("retryable failure: {0}")]
    Retryable(RetryReason),
    /// The peer did not advertise the needed endpoint.
    #[error("peer {peer} has no {module} {role:?} endpoint")]
    NoEndpoint {
        /// Peer id.
        peer: String,
        /// Module.
        module: String,
        /// Interface role.
        role: InterfaceRole,
    },
    /// A URL could not be parsed or was refused (e.g. a `Link` to another host).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The request body could not be serialised.
    #[error("cannot serialise request body: {0}")]
    Serialize(String),
    /// The HTTP client could not be built.
    #[error("HTTP client setup failed: {0}")]
    Setup(String),
    /// The URL names an address the bridge must not reach ([`crate::egress`]).
    #[error("{0}")]
    Egress(#[from] crate::egress::Denied),
}

impl PushError {
    /// True for [`PushError::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// HTTP status if the peer answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Refused { http_status, .. } => Some(*http_status),
            Self::Retryable(RetryReason::Http(s)) => Some(*s),
            _ => None,
        }
    }
}

/// Lenient envelope for reading peers: `timestamp` and unknown fields are ignored, `data` may be anything.
#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default = "Option::default")]
    data: Option<T>,
    status_code: u16,
    #[serde(default)]
    status_message: Option<String>,
}

/// Whom the `OCPI-to-*` routing headers of a functional request name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Recipient {
    /// The peer itself, by the role the module needs ([`Peer::party_for`]): a hub as the hub
    /// (broadcast pushes, GET all via the hub), another platform by its eMSP role for
    /// sessions, CDRs, tokens and commands.
    #[default]
    PeerParty,
    /// A specific party, e.g. the token owner (`cdr_token` cc/pid) for Sessions, CDRs and command results.
    Party(CountryCode, PartyId),
    /// No `OCPI-to-*` headers: open routing, the hub decides.
    Open,
}

impl Recipient {
    /// [`Recipient::Party`] from references.
    pub fn party(country_code: &CountryCode, party_id: &PartyId) -> Self {
        Self::Party(country_code.clone(), party_id.clone())
    }

    /// Whom a request goes to when we do not know the receiving party (real-time
    /// authorization of a token nobody told us about): through a hub, open routing (no
    /// `OCPI-to-*`, the hub finds the token's eMSP); any other peer is addressed as itself.
    pub fn unknown_party(peer: &Peer) -> Self {
        if peer.is_hub() {
            Self::Open
        } else {
            Self::PeerParty
        }
    }
}

/// Answer of the eMSP to a real-time authorization ([`Client::authorize_token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// OCPI 1000 with AuthorizationInfo; look at `allowed` — BLOCKED/EXPIRED/… also arrive here.
    Authorized(Box<AuthorizationInfo>),
    /// The eMSP doesn't know the token (HTTP 404 and/or OCPI 2004).
    UnknownToken,
    /// OCPI 2002: the eMSP needs LocationReferences to decide.
    NotEnoughInformation,
}

/// Routing headers for one request (`to` absent = open routing).
#[derive(Clone, Debug)]
pub(crate) struct Routing {
    from: (CountryCode, PartyId),
    to: Option<(CountryCode, PartyId)>,
}

/// HTTP client toward peers.
#[derive(Clone, Debug)]
pub struct Client {
    /// The current HTTP client; swapped whole when the extra roots are reloaded
    /// ([`Client::reload_roots`]), so every clone of this `Client` picks the new one up.
    http: Arc<RwLock<reqwest::Client>>,
    timeouts: (Duration, Duration),
    from: (CountryCode, PartyId),
    egress: Egress,
}

/// The HTTP client under [`Client`]: egress-checked redirects and DNS, system roots plus
/// `extra_roots` (PEM).
fn build_http(
    egress: &Egress,
    connect: Duration,
    total: Duration,
    extra_roots: Option<&[u8]>,
) -> Result<reqwest::Client, PushError> {
    // Each redirect hop is checked like the first URL ([`crate::egress`]).
    let hops = egress.clone();
    let redirect = reqwest::redirect::Policy::custom(move |attempt| {
        if let Err(denied) = hops.check_url(attempt.url()) {
            attempt.error(denied)
        } else if attempt.previous().len() >= 5 {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    let roots = match extra_roots {
        Some(pem) => reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| PushError::Setup(format!("extra roots: {e}")))?,
        None => Vec::new(),
    };
    reqwest::Client::builder()
        .tls_certs_merge(roots)
        .connect_timeout(connect)
        .timeout(total)
        .redirect(redirect)
        .dns_resolver(egress.resolver())
        .user_agent(concat!("ocpp-ocpi-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PushError::Setup(e.to_string()))
}

impl Client {
    /// Client with default timeouts (connect 5 s, whole request 30 s).
    pub fn new(settings: &Settings) -> Result<Self, PushError> {
        Self::with_timeouts(settings, Duration::from_secs(5), Duration::from_secs(30))
    }

    /// Client with explicit timeouts.
    pub fn with_timeouts(
        settings: &Settings,
        connect: Duration,
        total: Duration,
    ) -> Result<Self, PushError> {
        Self::with_options(settings, connect, total, None)
    }

    /// Client with default timeouts that trusts the PEM certificates in `extra_roots` besides
    /// the system roots (a private CA of a hub, a test CA).
    pub fn with_extra_roots(settings: &Settings, extra_roots: &[u8]) -> Result<Self, PushError> {
        Self::with_options(
            settings,
            Duration::from_secs(5),
            Duration::from_secs(30),
            Some(extra_roots),
        )
    }

    fn with_options(
        settings: &Settings,
        connect: Duration,
        total: Duration,
        extra_roots: Option<&[u8]>,
    ) -> Result<Self, PushError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err means another thread won the race to install one: fine either way.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let egress = Egress::new();
        let http = build_http(&egress, connect, total, extra_roots)?;
        Ok(Self {
            http: Arc::new(RwLock::new(http)),
            timeouts: (connect, total),
            from: (settings.country_code.clone(), settings.party_id.clone()),
            egress,
        })
    }

    /// Replaces the extra trusted roots (`ocpi.ca_file` after SIGHUP): builds a new HTTP client
    /// with the same rules and swaps it in for every clone; on error nothing changes. Requests
    /// in flight finish on the old client.
    pub fn reload_roots(&self, extra_roots: Option<&[u8]>) -> Result<(), PushError> {
        let (connect, total) = self.timeouts;
        let http = build_http(&self.egress, connect, total, extra_roots)?;
        *self.http.write().unwrap_or_else(|e| e.into_inner()) = http;
        Ok(())
    }

    fn http(&self) -> reqwest::Client {
        self.http.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The rules for where this client may send requests (shared by its clones).
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// Sends a request to `{endpoint of (module, role)}/{path_suffix}` using the peer's `token_out`; routing headers
    /// name the peer's primary party.
    pub async fn send<T: Serialize + ?Sized>(
        &self,
        peer: &Peer,
        module: &ModuleId,
        role: InterfaceRole,
        method: Method,
        path_suffix: &str,
        body: Option<&T>,
    ) -> Result<Accepted, PushError> {
        self.send_to(
            peer,
            module,
            role,
            method,
            path_suffix,
            body,
            &Recipient::PeerParty,
        )
        .await
    }

    /// Like [`Client::send`] with explicit `OCPI-to-*` routing (ignored for non-functional modules).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_to<T: Serialize + ?Sized>(
        &self,
        peer: &Peer,
        module: &ModuleId,
        role: InterfaceRole,
        method: Method,
        path_suffix: &str,
        body: Option<&T>,
        to: &Recipient,
    ) -> Result<Accepted, PushError> {
        let base = self.endpoint(peer, module, role)?;
        let url = join_url(base, path_suffix);
        let routing = self.routing_to(peer, module, to);
        self.request(
            method,
            &url,
            &peer.token_out,
            peer.encode_token,
            body,
            routing.as_ref(),
            None,
        )
        .await
    }

    /// `PUT {sessions}/{cc}/{pid}/{session_id}` with the full Session on the peer's sessions RECEIVER endpoint;
    /// routed to the token owner (`cdr_token` cc/pid).
    pub async fn put_session(&self, peer: &Peer, session: &Session) -> Result<Accepted, PushError> {
        self.put_session_at(peer, session, None).await
    }

    /// [`Client::put_session`] in the peer's version; a 2.1.1 peer gets `location` embedded
    /// ([`crate::codec::session`]).
    pub async fn put_session_at(
        &self,
        peer: &Peer,
        session: &Session,
        location: Option<&Location>,
    ) -> Result<Accepted, PushError> {
        let body = crate::codec::session(peer.ocpi_version(), session, location);
        let path = path(&[
            session.country_code.as_str(),
            session.party_id.as_str(),
            session.id.as_str(),
        ]);
        let to = Recipient::party(&session.cdr_token.country_code, &session.cdr_token.party_id);
        self.send_to(
            peer,
            &ModuleId::Sessions,
            InterfaceRole::Receiver,
            Method::PUT,
            &path,
            Some(&body),
            &to,
        )
        .await
    }

    /// `PATCH {sessions}/{cc}/{pid}/{session_id}` (cc/pid = the session's owner, i.e. us) with the changed fields.
    /// The patch (typically a [`crate::types::SessionPatch`]) must serialise to an object with `last_updated`
    /// (checked before sending: [`PushError::Serialize`]). Remember that the receiver *appends* `charging_periods`
    /// from a PATCH. `to` should be the token owner.
    pub async fn patch_session<P: Serialize + ?Sized>(
        &self,
        peer: &Peer,
        country_code: &CountryCode,
        party_id: &PartyId,
        session_id: &SessionId,
        patch: &P,
        to: &Recipient,
    ) -> Result<Accepted, PushError> {
        let patch = serde_json::to_value(patch).map_err(|e| PushError::Serialize(e.to_string()))?;
        if patch
            .get("last_updated")
            .is_none_or(serde_json::Value::is_null)
        {
            return Err(PushError::Serialize(
                "a Session PATCH must be an object with last_updated".into(),
            ));
        }
        let patch = crate::codec::session_patch(peer.ocpi_version(), patch);
        let path = path(&[
            country_code.as_str(),
            party_id.as_str(),
            session_id.as_str(),
        ]);
        self.send_to(
            peer,
            &ModuleId::Sessions,
            InterfaceRole::Receiver,
            Method::PATCH,
            &path,
            Some(&patch),
            to,
        )
        .await
    }

    /// `POST {cdrs}` (RECEIVER endpoint, no path segments) with the full CDR, routed to the token owner. Returns the
    /// eMSP's `Location` header (the URL of the stored CDR; `None` if the eMSP sent none). Any 2xx with OCPI 1xxx (or
    /// an empty body) is success.
    pub async fn post_cdr(&self, peer: &Peer, cdr: &Cdr) -> Result<Option<String>, PushError> {
        self.post_cdr_at(peer, cdr, None).await
    }

    /// [`Client::post_cdr`] in the peer's version; a 2.1.1 peer gets `location` embedded (else
    /// one built from `cdr_location`, [`crate::codec::cdr`]).
    pub async fn post_cdr_at(
        &self,
        peer: &Peer,
        cdr: &Cdr,
        location: Option<&Location>,
    ) -> Result<Option<String>, PushError> {
        let body = crate::codec::cdr(peer.ocpi_version(), cdr, location);
        let to = Recipient::party(&cdr.cdr_token.country_code, &cdr.cdr_token.party_id);
        let accepted = self
            .send_to(
                peer,
                &ModuleId::Cdrs,
                InterfaceRole::Receiver,
                Method::POST,
                "",
                Some(&body),
                &to,
            )
            .await?;
        if accepted.location_header.is_none() {
            tracing::warn!(peer = %peer.id, cdr = %cdr.id, "CDR accepted without Location header");
        }
        Ok(accepted.location_header)
    }

    /// POSTs the asynchronous [`CommandResult`] as bare body (no envelope) to the `response_url` of the eMSP's
    /// command. Any absolute http(s) URL is accepted — the eMSP chose it and it need not be one of its advertised
    /// endpoints; our `token_out` for this peer is sent along, as with every request to it. `to` should be the
    /// command sender's party.
    pub async fn post_command_result(
        &self,
        peer: &Peer,
        response_url: &str,
        result: &CommandResult,
        to: &Recipient,
    ) -> Result<Accepted, PushError> {
        let body = crate::codec::command_result(peer.ocpi_version(), result);
        self.post_result(peer, &ModuleId::Commands, response_url, &body, to)
            .await
    }

    /// POST of a ChargingProfiles result (ChargingProfileResult, ActiveChargingProfileResult or ClearProfileResult),
    /// bare (no envelope), to the `response_url` of the request it answers, routed like a CommandResult.
    pub async fn post_charging_profile_result<T: Serialize + ?Sized>(
        &self,
        peer: &Peer,
        response_url: &str,
        result: &T,
        to: &Recipient,
    ) -> Result<Accepted, PushError> {
        self.post_result(peer, &ModuleId::ChargingProfiles, response_url, result, to)
            .await
    }

    /// POSTs an asynchronous result, bare, to the `response_url` the peer gave with its request
    /// (any absolute http(s) URL), routed to `to` as a message of `module`.
    async fn post_result<T: Serialize + ?Sized>(
        &self,
        peer: &Peer,
        module: &ModuleId,
        response_url: &str,
        body: &T,
        to: &Recipient,
    ) -> Result<Accepted, PushError> {
        if !crate::types::is_http_url(response_url) {
            return Err(PushError::InvalidUrl(format!(
                "response_url is not an absolute http(s) URL: {response_url}"
            )));
        }
        let routing = self.routing_to(peer, module, to);
        self.request(
            Method::POST,
            response_url,
            &peer.token_out,
            peer.encode_token,
            Some(body),
            routing.as_ref(),
            None,
        )
        .await
    }

    /// `PUT {chargingprofiles SENDER}/{session_id}`: an ActiveChargingProfile the station changed on its own.
    pub async fn put_active_charging_profile(
        &self,
        peer: &Peer,
        session_id: &SessionId,
        profile: &ActiveChargingProfile,
        to: &Recipient,
    ) -> Result<Accepted, PushError> {
        self.send_to(
            peer,
            &ModuleId::ChargingProfiles,
            InterfaceRole::Sender,
            Method::PUT,
            &path(&[session_id.as_str()]),
            Some(profile),
            to,
        )
        .await
    }

    /// Real-time authorization: `POST {tokens SENDER}/{uid}/authorize?type={type}` with optional LocationReferences,
    /// bounded by `timeout` (the driver is waiting; on [`RetryReason::Timeout`] apply the whitelist rules). OCPI 1000
    /// with AuthorizationInfo → [`AuthorizeOutcome::Authorized`]; HTTP 404 or OCPI 2004 →
    /// [`AuthorizeOutcome::UnknownToken`]; OCPI 2002 → [`AuthorizeOutcome::NotEnoughInformation`]; 1000 without
    /// usable data → [`RetryReason::InvalidResponse`].
    pub async fn authorize_token(
        &self,
        peer: &Peer,
        uid: &TokenUid,
        kind: &TokenType,
        location: Option<&LocationReferences>,
        timeout: Duration,
        to: &Recipient,
    ) -> Result<AuthorizeOutcome, PushError> {
        let base = self.endpoint(peer, &ModuleId::Tokens, InterfaceRole::Sender)?;
        let url = join_url(base, &format!("{}/authorize", path(&[uid.as_str()])));
        let mut url = Url::parse(&url).map_err(|e| PushError::InvalidUrl(format!("{url}: {e}")))?;
        url.query_pairs_mut().append_pair("type", kind.as_str());
        let routing = self.routing_to(peer, &ModuleId::Tokens, to);
        let answer = self
            .execute(
                Method::POST,
                url.as_str(),
                &peer.token_out,
                peer.encode_token,
                location,
                routing.as_ref(),
                None,
                Some(timeout),
            )
            .await;
        let version = peer.ocpi_version();
        let info = |accepted: &Accepted| -> Result<Option<AuthorizationInfo>, serde_json::Error> {
            match accepted.data::<serde_json::Value>()? {
                None => Ok(None),
                Some(raw) => serde_json::from_value(crate::codec::authorization_info_from(
                    version,
                    raw,
                    uid.as_str(),
                    kind.as_str(),
                    peer.party_for(&ModuleId::Tokens),
                ))
                .map(Some),
            }
        };
        match answer {
            Ok(accepted) => match info(&accepted) {
                Ok(Some(info)) => Ok(AuthorizeOutcome::Authorized(Box::new(info))),
                Ok(None) => Err(PushError::Retryable(RetryReason::InvalidResponse(
                    "authorize answer without AuthorizationInfo".into(),
                ))),
                Err(e) => Err(PushError::Retryable(RetryReason::InvalidResponse(format!(
                    "AuthorizationInfo: {e}"
                )))),
            },
            Err(PushError::Refused {
                http_status: 404, ..
            })
            | Err(PushError::Refused {
                status_code: Some(2004),
                ..
            }) => Ok(AuthorizeOutcome::UnknownToken),
            Err(PushError::Refused {
                status_code: Some(2002),
                ..
            }) => Ok(AuthorizeOutcome::NotEnoughInformation),
            Err(e) => Err(e),
        }
    }

    /// Pulls the peer's tokens (tokens SENDER endpoint, paginated, optional `date_from`/`date_to`). Entries that
    /// don't parse as a Token are skipped with a warning instead of failing the whole pull.
    pub async fn fetch_tokens(
        &self,
        peer: &Peer,
        date_from: Option<DateTime>,
        date_to: Option<DateTime>,
    ) -> Result<Vec<Token>, PushError> {
        let from = date_from.map(|d| d.to_string());
        let to = date_to.map(|d| d.to_string());
        let mut query = Vec::new();
        if let Some(from) = &from {
            query.push(("date_from", from.as_str()));
        }
        if let Some(to) = &to {
            query.push(("date_to", to.as_str()));
        }
        let raw: Vec<serde_json::Value> = self
            .fetch_paginated(peer, &ModuleId::Tokens, &query)
            .await?;
        let total = raw.len();
        let tokens: Vec<Token> = raw
            .into_iter()
            .filter_map(|v| {
                match serde_json::from_value::<Token>(crate::codec::token_from(
                    peer.ocpi_version(),
                    v,
                    peer.party_for(&ModuleId::Tokens),
                )) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!(peer = %peer.id, error = %e, "skipping unparseable token");
                        None
                    }
                }
            })
            .collect();
        if tokens.len() < total {
            tracing::warn!(peer = %peer.id, skipped = total - tokens.len(), "token pull skipped entries");
        }
        Ok(tokens)
    }

    /// `PUT {locations}/{cc}/{pid}/{location_id}` with the full Location.
    pub async fn put_location(
        &self,
        peer: &Peer,
        location: &Location,
    ) -> Result<Accepted, PushError> {
        let path = path(&[
            location.country_code.as_str(),
            location.party_id.as_str(),
            location.id.as_str(),
        ]);
        let mut body = crate::codec::location(peer.ocpi_version(), location);
        if peer.has_quirk(crate::peer::Quirk::ShortAddress) {
            crate::codec::short_address(&mut body);
        }
        self.send(
            peer,
            &ModuleId::Locations,
            InterfaceRole::Receiver,
            Method::PUT,
            &path,
            Some(&body),
        )
        .await
    }

    /// `PATCH {locations}/{cc}/{pid}/{location_id}/{evse_uid}` with `{status, last_updated}` (our cc/pid).
    pub async fn patch_evse_status(
        &self,
        peer: &Peer,
        location_id: &LocationId,
        evse_uid: &EvseUid,
        status: EvseStatus,
        last_updated: DateTime,
    ) -> Result<Accepted, PushError> {
        #[derive(Serialize)]
        struct Patch {
            status: EvseStatus,
            last_updated: DateTime,
        }
        let path = path(&[
            self.from.0.as_str(),
            self.from.1.as_str(),
            location_id.as_str(),
            evse_uid.as_str(),
        ]);
        let body = Patch {
            status,
            last_updated,
        };
        self.send(
            peer,
            &ModuleId::Locations,
            InterfaceRole::Receiver,
            Method::PATCH,
            &path,
            Some(&body),
        )
        .await
    }

    /// `PUT {tariffs}/{cc}/{pid}/{tariff_id}` with the full Tariff.
    pub async fn put_tariff(&self, peer: &Peer, tariff: &Tariff) -> Result<Accepted, PushError> {
        let path = path(&[
            tariff.country_code.as_str(),
            tariff.party_id.as_str(),
            tariff.id.as_str(),
        ]);
        let body = crate::codec::tariff(peer.ocpi_version(), tariff);
        self.send(
            peer,
            &ModuleId::Tariffs,
            InterfaceRole::Receiver,
            Method::PUT,
            &path,
            Some(&body),
        )
        .await
    }

    /// `DELETE {tariffs}/{cc}/{pid}/{tariff_id}` for one of our tariffs.
    pub async fn delete_tariff(&self, peer: &Peer, tariff_id: &str) -> Result<Accepted, PushError> {
        let path = path(&[self.from.0.as_str(), self.from.1.as_str(), tariff_id]);
        self.send::<()>(
            peer,
            &ModuleId::Tariffs,
            InterfaceRole::Receiver,
            Method::DELETE,
            &path,
            None,
        )
        .await
    }

    /// GETs a peer's Sender list (`query` e.g. `[("date_from", "…")]`), following `Link: rel="next"` headers on the
    /// same origin only. Stops at the last page, an empty page, once `X-Total-Count` items are collected, on a
    /// repeated URL, or after [`MAX_PAGES`]. Holds the whole list: use [`Client::pages`] to handle one page at a time.
    pub async fn fetch_paginated<T: DeserializeOwned>(
        &self,
        peer: &Peer,
        module: &ModuleId,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, PushError> {
        let mut pages = self.pages(peer, module, query)?;
        let mut items = Vec::new();
        while let Some(page) = pages.next_page().await? {
            items.extend(page);
        }
        Ok(items)
    }

    /// A peer's Sender list one page at a time (same rules as [`Client::fetch_paginated`]): memory stays bounded by
    /// one page whatever the list's length.
    pub fn pages<'a>(
        &'a self,
        peer: &'a Peer,
        module: &ModuleId,
        query: &[(&str, &str)],
    ) -> Result<Pages<'a>, PushError> {
        let base = self.endpoint(peer, module, InterfaceRole::Sender)?;
        let mut url =
            Url::parse(base).map_err(|e| PushError::InvalidUrl(format!("{base}: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(Pages {
            client: self,
            peer,
            origin: url.origin().ascii_serialization(),
            next: Some(url),
            routing: self.routing_for(peer, module),
            seen: std::collections::HashSet::new(),
            collected: 0,
        })
    }

    /// The peer's Tokens Sender list one page at a time, with `date_from` when given (an incremental pull).
    pub fn token_pages<'a>(
        &'a self,
        peer: &'a Peer,
        date_from: Option<DateTime>,
    ) -> Result<Pages<'a>, PushError> {
        let from = date_from.map(|d| d.to_string());
        let query: Vec<(&str, &str)> = from
            .as_deref()
            .map(|f| vec![("date_from", f)])
            .unwrap_or_default();
        self.pages(peer, &ModuleId::Tokens, &query)
    }

    fn endpoint<'p>(
        &self,
        peer: &'p Peer,
        module: &ModuleId,
        role: InterfaceRole,
    ) -> Result<&'p str, PushError> {
        peer.endpoint(module, role)
            .ok_or_else(|| PushError::NoEndpoint {
                peer: peer.id.to_string(),
                module: module.to_string(),
                role,
            })
    }

    fn routing_for(&self, peer: &Peer, module: &ModuleId) -> Option<Routing> {
        self.routing_to(peer, module, &Recipient::PeerParty)
    }

    fn routing_to(&self, peer: &Peer, module: &ModuleId, to: &Recipient) -> Option<Routing> {
        (is_functional(module) && peer.wants_routing_headers()).then(|| Routing {
            from: self.from.clone(),
            to: match to {
                Recipient::PeerParty => peer
                    .party_for(module)
                    .map(|(cc, pid)| (cc.clone(), pid.clone())),
                Recipient::Party(cc, pid) => Some((cc.clone(), pid.clone())),
                Recipient::Open => None,
            },
        })
    }

    /// One request to an absolute URL; the building block for [`Client::send`] and registration.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn request<T: Serialize + ?Sized>(
        &self,
        method: Method,
        url: &str,
        token: &AuthToken,
        encode_token: bool,
        body: Option<&T>,
        routing: Option<&Routing>,
        correlation_id: Option<&str>,
    ) -> Result<Accepted, PushError> {
        self.execute(
            method,
            url,
            token,
            encode_token,
            body,
            routing,
            correlation_id,
            None,
        )
        .await
    }

    /// [`Client::request`] with an optional per-request timeout (instead of the client's total timeout).
    #[allow(clippy::too_many_arguments)]
    async fn execute<T: Serialize + ?Sized>(
        &self,
        method: Method,
        url: &str,
        token: &AuthToken,
        encode_token: bool,
        body: Option<&T>,
        routing: Option<&Routing>,
        correlation_id: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Accepted, PushError> {
        let parsed = Url::parse(url).map_err(|e| PushError::InvalidUrl(format!("{url}: {e}")))?;
        self.egress.check_url(&parsed)?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let correlation_id =
            correlation_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let mut req = self
            .http()
            .request(method.clone(), parsed)
            .header(AUTHORIZATION, token.header_value(encode_token))
            .header(headers::X_REQUEST_ID, &request_id)
            .header(headers::X_CORRELATION_ID, &correlation_id);
        if let Some(timeout) = timeout {
            req = req.timeout(timeout);
        }
        if let Some(body) = body {
            let bytes =
                serde_json::to_vec(body).map_err(|e| PushError::Serialize(e.to_string()))?;
            req = req.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        if let Some(r) = routing {
            req = req
                .header(headers::FROM_COUNTRY_CODE, r.from.0.as_str())
                .header(headers::FROM_PARTY_ID, r.from.1.as_str());
            if let Some((cc, pid)) = &r.to {
                req = req
                    .header(headers::TO_COUNTRY_CODE, cc.as_str())
                    .header(headers::TO_PARTY_ID, pid.as_str());
            }
        }
        tracing::debug!(%method, %url, %request_id, %correlation_id, "OCPI request");
        let response = req.send().await.map_err(|e| match denied_in(&e) {
            // A name that resolves only to denied addresses, or a redirect to one: retrying
            // will not help.
            Some(denied) => PushError::Egress(denied),
            None => PushError::Retryable(transport_reason(&e)),
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| PushError::Retryable(transport_reason(&e)))?;
        let answer = classify(status, headers, body);
        if let Err(e) = &answer {
            tracing::debug!(%method, %url, %request_id, error = %e, "OCPI request not accepted");
        }
        answer
    }
}

/// The egress refusal behind a transport error, if that is what it is.
fn denied_in(e: &reqwest::Error) -> Option<crate::egress::Denied> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(d) = s.downcast_ref::<crate::egress::Denied>() {
            return Some(d.clone());
        }
        source = s.source();
    }
    None
}

fn transport_reason(e: &reqwest::Error) -> RetryReason {
    if e.is_timeout() {
        RetryReason::Timeout
    } else {
        // Include the source chain: reqwest's top-level message is often just "error sending request".
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        RetryReason::Network(msg)
    }
}

/// Classifies an HTTP answer (see the module docs).
pub(crate) fn classify(
    http_status: u16,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Accepted, PushError> {
    let envelope = serde_json::from_slice::<Envelope<IgnoredAny>>(&body).ok();
    let excerpt = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if http_status >= 500 || http_status == 408 || http_status == 429 {
        return Err(PushError::Retryable(RetryReason::Http(http_status)));
    }
    if !(200..300).contains(&http_status) {
        return Err(PushError::Refused {
            http_status,
            status_code: envelope.as_ref().map(|e| e.status_code),
            message: envelope
                .and_then(|e| e.status_message)
                .unwrap_or_else(excerpt),
        });
    }
    let location_header = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(envelope) = envelope else {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Accepted {
                http_status,
                status_code: None,
                status_message: None,
                location_header,
                body,
                headers,
            });
        }
        return Err(PushError::Retryable(RetryReason::InvalidResponse(format!(
            "not an OCPI envelope: {}",
            excerpt()
        ))));
    };
    let message = envelope.status_message.clone().unwrap_or_default();
    match envelope.status_code {
        1000..=1999 => Ok(Accepted {
            http_status,
            status_code: Some(envelope.status_code),
            status_message: envelope.status_message,
            location_header,
            body,
            headers,
        }),
        2000..=2999 | 4001 => Err(PushError::Refused {
            http_status,
            status_code: Some(envelope.status_code),
            message,
        }),
        code => Err(PushError::Retryable(RetryReason::Ocpi { code, message })),
    }
}

/// Modules that carry routing headers (all but versions, credentials and hubclientinfo).
pub(crate) fn is_functional(module: &ModuleId) -> bool {
    !matches!(module, ModuleId::Credentials | ModuleId::HubClientInfo)
}

/// Joins an endpoint URL and a suffix with exactly one slash (empty suffix = the endpoint itself).
///
/// The suffix is a path whose segments are already percent-encoded (build it with [`path`]). As
/// a last line of defence, whatever could not stand in a URL path as it is — `?`, `#`, spaces,
/// control and non-ASCII characters, a `%` that does not start an escape — is percent-encoded
/// here, so no suffix can add a query or a fragment or reach the peer malformed.
pub fn join_url(base: &str, suffix: &str) -> String {
    let suffix = escape_path(suffix.trim_start_matches('/'));
    if suffix.is_empty() {
        return base.to_owned();
    }
    format!("{}/{}", base.trim_end_matches('/'), suffix)
}

/// `suffix` with every byte that may not appear in a URL path percent-encoded (RFC 3986 `pchar`
/// and `/` stay; a `%` stays only before two hex digits).
fn escape_path(suffix: &str) -> String {
    let bytes = suffix.as_bytes();
    let mut out = String::with_capacity(suffix.len());
    for (i, &b) in bytes.iter().enumerate() {
        let keep = match b {
            b'%' => {
                bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => true,
            b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+'
            | b',' | b';' | b'=' | b':' | b'@' | b'/' => true,
            _ => false,
        };
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes every segment (all but RFC 3986 unreserved characters) and joins them with
/// `/`: the path suffix of a request for [`Client::send`] / [`Client::send_to`]. A `/` inside an
/// id becomes `%2F`, so it stays one segment.
pub fn path(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// One page after the other of a peer's Sender list ([`Client::pages`]).
#[derive(Debug)]
pub struct Pages<'a> {
    client: &'a Client,
    peer: &'a Peer,
    /// Serialized origin of the first page: `Link`s elsewhere are refused.
    origin: String,
    next: Option<Url>,
    routing: Option<Routing>,
    seen: std::collections::HashSet<String>,
    collected: usize,
}

impl Pages<'_> {
    /// The next page's items, `None` after the last one.
    pub async fn next_page<T: DeserializeOwned>(&mut self) -> Result<Option<Vec<T>>, PushError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        if self.seen.len() >= MAX_PAGES {
            tracing::warn!(peer = %self.peer.id, "more than {MAX_PAGES} pages, stopping");
            return Ok(None);
        }
        if !self.seen.insert(url.to_string()) {
            tracing::warn!(peer = %self.peer.id, %url, "pagination loop detected, stopping");
            return Ok(None);
        }
        let answer = self
            .client
            .request::<()>(
                Method::GET,
                url.as_str(),
                &self.peer.token_out,
                self.peer.encode_token,
                None,
                self.routing.as_ref(),
                None,
            )
            .await?;
        let page: Vec<T> = answer
            .data()
            .map_err(|e| {
                PushError::Retryable(RetryReason::InvalidResponse(format!("page data: {e}")))
            })?
            .unwrap_or_default();
        self.collected += page.len();
        let total = answer
            .header(headers::X_TOTAL_COUNT)
            .and_then(|v| v.trim().parse::<usize>().ok());
        let done = page.is_empty() || total.is_some_and(|t| self.collected >= t);
        if !done && let Some(next) = answer.header("link").and_then(next_link) {
            let next_url = url
                .join(&next)
                .map_err(|e| PushError::InvalidUrl(format!("Link {next}: {e}")))?;
            if next_url.origin().ascii_serialization() != self.origin {
                return Err(PushError::InvalidUrl(format!(
                    "Link points to another origin: {next_url}"
                )));
            }
            self.next = Some(next_url);
        }
        Ok(Some(page))
    }
}

/// The entries of a pulled page that parse as Tokens; the others are skipped with a warning.
pub fn parse_tokens(peer: &Peer, raw: Vec<serde_json::Value>) -> Vec<Token> {
    let total = raw.len();
    let tokens: Vec<Token> = raw
        .into_iter()
        .filter_map(|v| {
            match serde_json::from_value::<Token>(crate::codec::token_from(
                peer.ocpi_version(),
                v,
                peer.party_for(&ModuleId::Tokens),
            )) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(peer = %peer.id, error = %e, "skipping unparseable token");
                    None
                }
            }
        })
        .collect();
    if tokens.len() < total {
        tracing::warn!(peer = %peer.id, skipped = total - tokens.len(), "token pull skipped entries");
    }
    tokens
}

/// Extracts the `rel="next"` target of a `Link` header.
pub(crate) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim();
        (is_next && target.starts_with('<') && target.ends_with('>'))
            .then(|| target[1..target.len() - 1].to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<Accepted, PushError> {
        classify(status, HeaderMap::new(), Bytes::from(body.to_owned()))
    }

    fn peer_with(roles: &[(&str, &str, &str)]) -> Peer {
        let roles: Vec<serde_json::Value> = roles
            .iter()
            .map(|(role, cc, pid)| {
                serde_json::json!({"role": role, "country_code": cc, "party_id": pid,
                    "business_details": {"name": "x"}})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": "P", "token_in": "i", "token_out": "o",
            "versions_url": "https://p.example/ocpi/versions", "version": "2.2.1",
            "endpoints": [], "roles": roles, "registered_at": "2026-01-01T00:00:00Z",
            "initiated_by": "us"
        }))
        .expect("peer")
    }

    fn to_of(r: Option<Routing>) -> Option<String> {
        r.expect("functional")
            .to
            .map(|(cc, pid)| format!("{cc}{pid}"))
    }

    #[test]
    fn routing_headers_name_the_right_party_or_none_for_open_routing() {
        let client = Client::new(&Settings::new("http://127.0.0.1:1", "NL", "BRG", "CPO")).unwrap();
        let hub = peer_with(&[("HUB", "NL", "HUB")]);
        let emsp = peer_with(&[("CPO", "DE", "CPX"), ("EMSP", "DE", "EMX")]);
        // An unknown token through a hub: open routing, no OCPI-to-*; FROM is always us.
        let open = client.routing_to(&hub, &ModuleId::Tokens, &Recipient::unknown_party(&hub));
        assert_eq!(
            open.as_ref()
                .map(|r| format!("{}{}", r.from.0, r.from.1))
                .as_deref(),
            Some("NLBRG")
        );
        assert_eq!(to_of(open), None);
        // To a direct platform: its eMSP role.
        let direct = client.routing_to(&emsp, &ModuleId::Tokens, &Recipient::unknown_party(&emsp));
        assert_eq!(to_of(direct).as_deref(), Some("DEEMX"));
        // A broadcast push to the hub names the hub; a CDR the token's eMSP.
        assert_eq!(
            to_of(client.routing_to(&hub, &ModuleId::Locations, &Recipient::PeerParty)).as_deref(),
            Some("NLHUB")
        );
        let owner = Recipient::party(&CountryCode::new("NL"), &PartyId::new("EMA"));
        assert_eq!(
            to_of(client.routing_to(&hub, &ModuleId::Cdrs, &owner)).as_deref(),
            Some("NLEMA")
        );
        // Configuration modules carry no routing headers.
        assert!(
            client
                .routing_to(&hub, &ModuleId::HubClientInfo, &owner)
                .is_none()
        );
    }

    #[test]
    fn classification_of_answers() {
        let ok = answer(
            200,
            r#"{"status_code":1000,"timestamp":"2020-01-01T00:00:00Z","data":{"a":1.50}}"#,
        )
        .expect("accepted");
        assert_eq!(ok.status_code, Some(1000));
        assert!(answer(201, r#"{"status_code":1000}"#).is_ok());
        assert!(matches!(
            answer(204, ""),
            Ok(Accepted {
                status_code: None,
                ..
            })
        ));
        assert!(matches!(
            answer(200, r#"{"status_code":2001,"status_message":"bad"}"#),
            Err(PushError::Refused {
                status_code: Some(2001),
                ..
            })
        ));
        assert!(matches!(
            answer(200, r#"{"status_code":3000}"#),
            Err(PushError::Retryable(RetryReason::Ocpi { code: 3000, .. }))
        ));
        assert!(matches!(
            answer(200, r#"{"status_code":4003}"#),
            Err(PushError::Retryable(_))
        ));
        assert!(matches!(
            answer(200, r#"{"status_code":4001}"#),
            Err(PushError::Refused { .. })
        ));
        assert!(matches!(
            answer(500, "<html>oops</html>"),
            Err(PushError::Retryable(RetryReason::Http(500)))
        ));
        assert!(matches!(
            answer(503, r#"{"status_code":1000}"#),
            Err(PushError::Retryable(RetryReason::Http(503)))
        ));
        assert!(matches!(answer(429, ""), Err(PushError::Retryable(_))));
        assert!(matches!(
            answer(404, r#"{"status_code":2003}"#),
            Err(PushError::Refused {
                http_status: 404,
                status_code: Some(2003),
                ..
            })
        ));
        assert!(matches!(
            answer(401, "no"),
            Err(PushError::Refused {
                http_status: 401,
                status_code: None,
                ..
            })
        ));
        assert!(matches!(
            answer(200, "<html/>"),
            Err(PushError::Retryable(RetryReason::InvalidResponse(_)))
        ));
    }

    #[test]
    fn urls_are_joined_with_one_slash_and_segments_are_escaped() {
        assert_eq!(
            join_url("https://h/ocpi/locations/", "/NL/ABC/1"),
            "https://h/ocpi/locations/NL/ABC/1"
        );
        assert_eq!(
            join_url("https://h/ocpi/locations", "NL/ABC/1"),
            "https://h/ocpi/locations/NL/ABC/1"
        );
        assert_eq!(
            join_url("https://h/ocpi/locations/", ""),
            "https://h/ocpi/locations/"
        );
        assert_eq!(path(&["NL", "ABC", "a b/c"]), "NL/ABC/a%20b%2Fc");
    }

    #[test]
    fn every_unsafe_character_of_an_id_is_escaped_and_stays_one_segment() {
        let ids = [
            "CS/01-1", "CS#03-1", "CS?04-1", "CS%05-1", "CS 06-1", "CSé07-1",
        ];
        let encoded: Vec<String> = ids
            .iter()
            .map(|id| path(&["NL", "BRG", "LOC1", id]))
            .collect();
        assert_eq!(
            encoded,
            [
                "NL/BRG/LOC1/CS%2F01-1",
                "NL/BRG/LOC1/CS%2303-1",
                "NL/BRG/LOC1/CS%3F04-1",
                "NL/BRG/LOC1/CS%2505-1",
                "NL/BRG/LOC1/CS%2006-1",
                "NL/BRG/LOC1/CS%C3%A907-1",
            ]
        );
        for (id, e) in ids.iter().zip(&encoded) {
            // Joining leaves an encoded path alone, and the URL parser sees 4 segments with the
            // id as the last one.
            let url = Url::parse(&join_url("https://h/ocpi/locations/", e)).unwrap();
            assert_eq!(url.query(), None, "{id}");
            assert_eq!(url.fragment(), None, "{id}");
            let segs: Vec<&str> = url.path_segments().unwrap().collect();
            assert_eq!(segs.len(), 6, "{id}: {url}");
            let last = percent_encoding::percent_decode_str(segs[5])
                .decode_utf8()
                .unwrap();
            assert_eq!(last, *id);
        }
    }

    #[test]
    fn join_url_escapes_what_a_raw_suffix_cannot_carry() {
        assert_eq!(
            join_url("https://h/x", "/NL/ABC/a b?c#d%zz%41é"),
            "https://h/x/NL/ABC/a%20b%3Fc%23d%25zz%41%C3%A9"
        );
        assert_eq!(
            join_url("https://h/x", "/NL/ABC/a%2Fb"),
            "https://h/x/NL/ABC/a%2Fb"
        );
        assert_eq!(join_url("https://h/x", "a%"), "https://h/x/a%25");
        assert_eq!(join_url("https://h/x", "a%4"), "https://h/x/a%254");
    }

    #[test]
    fn link_header_parsing() {
        assert_eq!(
            next_link(r#"<https://s/ocpi/cdrs/?offset=150&limit=50>; rel="next""#).as_deref(),
            Some("https://s/ocpi/cdrs/?offset=150&limit=50")
        );
        assert_eq!(
            next_link(r#"<https://s/a>; rel="prev", <https://s/b>; rel=next"#).as_deref(),
            Some("https://s/b")
        );
        assert_eq!(next_link(r#"<https://s/a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}
