//! Per-request middleware: `X-Request-ID`/`X-Correlation-ID` echo, `Authorization: Token …` authentication and
//! `OCPI-from-*`/`OCPI-to-*` routing headers.
//!
//! Token lookup order: the raw header value, then its base64 decoding (trailing CR/LF trimmed — the spec's own
//! examples encode a newline). Peer tokens win over token A. Token A only opens versions and credentials, and only
//! while the backend says it is valid (`CpoBackend::token_a_valid`: single use in the daemon); a *pending* peer
//! (our POST to them still in flight) is treated like a registered one.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tracing::Instrument as _;

use crate::backend::CpoBackend;
use crate::client::headers;
use crate::envelope::OcpiError;
use crate::peer::Peer;
use crate::platform::Platform;

/// Who is calling, inserted as a request extension by the authentication middleware.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Someone holding a valid token A of ours (registration only): the token itself, which the credentials
    /// POST retires.
    TokenA(crate::types::AuthToken),
    /// A registered (or registering) peer.
    Peer(Box<Peer>),
}

/// The party a functional request comes from (its `OCPI-from-country-code` / `OCPI-from-party-id`), inserted as
/// a request extension by the routing-header middleware when both headers are present. Through a hub this is the
/// eMSP behind it; answers to the request (e.g. a CommandResult) go to this party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFrom(pub crate::types::CountryCode, pub crate::types::PartyId);

/// Echo (or mint) `X-Request-ID` and `X-Correlation-ID` on every response, including 401s.
pub(super) async fn request_ids(req: Request, next: Next) -> Response {
    let request_id = header_or_new(req.headers(), headers::X_REQUEST_ID);
    let correlation_id = header_or_new(req.headers(), headers::X_CORRELATION_ID);
    let span = tracing::debug_span!(
        "ocpi",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = request_id.to_str().unwrap_or("?"),
        correlation_id = correlation_id.to_str().unwrap_or("?"),
    );
    let mut response = next.run(req).instrument(span).await;
    let h = response.headers_mut();
    h.insert(HeaderName::from_static(headers::X_REQUEST_ID), request_id);
    h.insert(
        HeaderName::from_static(headers::X_CORRELATION_ID),
        correlation_id,
    );
    response
}

/// The `OCPI-from-*` party of a request, when both headers are present and not empty.
fn from_party(h: &HeaderMap) -> Option<(String, String)> {
    let text = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some((
        text(headers::FROM_COUNTRY_CODE)?,
        text(headers::FROM_PARTY_ID)?,
    ))
}

fn header_or_new(h: &HeaderMap, name: &str) -> HeaderValue {
    h.get(name)
        .filter(|v| !v.is_empty() && v.len() <= 255)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("0"))
        })
}

/// Authentication for versions and credentials: token A or a peer token.
pub(super) async fn authenticate_configuration<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    req: Request,
    next: Next,
) -> Response {
    authenticate(&platform, req, next, true).await
}

/// Authentication for functional modules: peer tokens only.
pub(super) async fn authenticate_functional<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    req: Request,
    next: Next,
) -> Response {
    authenticate(&platform, req, next, false).await
}

async fn authenticate<B: CpoBackend>(
    platform: &Platform<B>,
    mut req: Request,
    next: Next,
    allow_token_a: bool,
) -> Response {
    match identify(platform, req.headers()) {
        Some(Caller::TokenA(_)) if !allow_token_a => {
            tracing::debug!("token A used on a functional module");
            OcpiError::Unauthorized.into_response()
        }
        Some(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => OcpiError::Unauthorized.into_response(),
    }
}

/// Resolves the `Authorization` header to a caller.
pub(crate) fn identify<B: CpoBackend>(
    platform: &Platform<B>,
    headers: &HeaderMap,
) -> Option<Caller> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    let raw = token.trim();
    if raw.is_empty() {
        return None;
    }
    let lookup = |candidate: &str| -> Option<Caller> {
        if let Some(peer) = platform.peers().by_token(candidate) {
            return Some(Caller::Peer(Box::new(peer)));
        }
        platform
            .backend()
            .token_a_valid(candidate)
            .then(|| Caller::TokenA(crate::types::AuthToken::new(candidate)))
    };
    lookup(raw).or_else(|| decode_base64(raw).and_then(|decoded| lookup(&decoded)))
}

fn decode_base64(value: &str) -> Option<String> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let bytes = engines.iter().find_map(|e| e.decode(value).ok())?;
    let text = String::from_utf8(bytes).ok()?;
    let trimmed = text.trim_end_matches(['\n', '\r']);
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Routing headers on functional responses: FROM = us, TO = the requester's `OCPI-from-*` (or the peer's party).
pub(super) async fn routing_headers<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some((cc, pid)) = from_party(req.headers()) {
        req.extensions_mut().insert(RequestFrom(
            crate::types::CountryCode::new(cc),
            crate::types::PartyId::new(pid),
        ));
    }
    let requester = match (
        req.headers().get(headers::FROM_COUNTRY_CODE),
        req.headers().get(headers::FROM_PARTY_ID),
    ) {
        (Some(cc), Some(pid)) => Some((cc.clone(), pid.clone())),
        _ => match req.extensions().get::<Caller>() {
            Some(Caller::Peer(peer)) => peer.party().and_then(|(cc, pid)| {
                Some((
                    HeaderValue::from_str(cc.as_str()).ok()?,
                    HeaderValue::from_str(pid.as_str()).ok()?,
                ))
            }),
            _ => None,
        },
    };
    let settings = platform.settings();
    let ours = (
        HeaderValue::from_str(settings.country_code.as_str()),
        HeaderValue::from_str(settings.party_id.as_str()),
    );
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    if let (Ok(cc), Ok(pid)) = ours {
        h.insert(HeaderName::from_static(headers::FROM_COUNTRY_CODE), cc);
        h.insert(HeaderName::from_static(headers::FROM_PARTY_ID), pid);
    }
    if let Some((cc, pid)) = requester {
        h.insert(HeaderName::from_static(headers::TO_COUNTRY_CODE), cc);
        h.insert(HeaderName::from_static(headers::TO_PARTY_ID), pid);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decoding_trims_the_trailing_newline() {
        // "example-token\n" as in the spec's header examples.
        assert_eq!(
            decode_base64("ZXhhbXBsZS10b2tlbgo=").as_deref(),
            Some("example-token")
        );
        assert_eq!(
            decode_base64("ZXhhbXBsZS10b2tlbgo").as_deref(),
            Some("example-token")
        );
        assert_eq!(decode_base64("not base64!"), None);
    }
}
