//! Tokens Receiver interface: `GET/PUT/PATCH /tokens/{country_code}/{party_id}/{token_uid}[?type=]`.
//!
//! Rules (see <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/mod_tokens.asciidoc#mod_tokens_cpo_interface>
//! and the client-owned object rules in `transport_and_format.asciidoc`):
//! - The URL's cc/pid must be a party of the caller (or the caller a hub), else **HTTP 404 + OCPI 2000**: the
//!   transport chapter allows 404 to block access to other parties' objects, and it leaks nothing.
//! - Token type: the `type` query parameter; without it RFID for GET, the body's `type` for PUT/PATCH (liberal:
//!   some eMSPs omit `?type=` for app tokens), RFID if the PATCH body has none either. A query type that differs
//!   from the body's → 2001.
//! - PUT: full Token; URL cc/pid/uid must equal the body's (case-insensitively) and the token must pass
//!   `Token::validate`, else 2001 and nothing is stored. Answer HTTP 201 when new, 200 when replaced.
//! - PATCH: `last_updated` required (else 2001); identity fields, if present, must match the URL; the patch is
//!   merged top-level into the stored token (`null` values are ignored, nested objects replaced whole), then
//!   validated and stored with `put_token`. Unknown token → HTTP 404 + OCPI 2004.
//! - GET: unknown token → HTTP 404 + OCPI 2004.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::backend::CpoBackend;
use crate::codec;
use crate::envelope::{OcpiError, Response as Envelope, parse_body};
use crate::peer::Peer;
use crate::platform::Platform;
use crate::types::{CountryCode, DateTime, OcpiVersion, PartyId, Token, TokenType, TokenUid};

use super::auth::Caller;
use super::list::peer;

/// Path of a token URL, owner checked.
struct Key {
    country_code: CountryCode,
    party_id: PartyId,
    uid: TokenUid,
}

fn key(caller: &Peer, (cc, pid, uid): (String, String, String)) -> Result<Key, OcpiError> {
    let key = Key {
        country_code: CountryCode::new(cc),
        party_id: PartyId::new(pid),
        uid: TokenUid::new(uid),
    };
    if !caller.may_act_for(&key.country_code, &key.party_id) {
        return Err(OcpiError::NotFound(format!(
            "{}/{} is not one of your parties",
            key.country_code, key.party_id
        )));
    }
    Ok(key)
}

/// The `type` query parameter, if present and non-empty.
fn query_type(uri: &Uri) -> Result<Option<TokenType>, OcpiError> {
    let pairs: Vec<(String, String)> = axum::extract::Query::try_from_uri(uri)
        .map(|q: axum::extract::Query<Vec<(String, String)>>| q.0)
        .map_err(|e| OcpiError::InvalidParameters(format!("query string: {e}")))?;
    Ok(pairs
        .iter()
        .rev()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| TokenType::from(v.to_ascii_uppercase().as_str())))
}

fn unknown_token(key: &Key, kind: &TokenType) -> Response {
    super::not_found(
        2004,
        format!(
            "unknown token {}/{}/{} ({kind})",
            key.country_code, key.party_id, key.uid
        ),
    )
}

pub(super) async fn get<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    Path(path): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Response, OcpiError> {
    let peer = peer(&caller)?;
    let key = key(peer, path)?;
    let kind = query_type(&uri)?.unwrap_or_default();
    Ok(
        match platform
            .backend()
            .token(peer, &key.country_code, &key.party_id, &key.uid, &kind)?
        {
            Some(token) => Envelope::success(codec::token(version, &token)).into_response(),
            None => unknown_token(&key, &kind),
        },
    )
}

fn check_identity(key: &Key, token: &Token) -> Result<(), OcpiError> {
    let mismatch = |field: &str, url: &str, body: &str| {
        Err(OcpiError::InvalidParameters(format!(
            "{field} in the URL ({url}) differs from the body ({body})"
        )))
    };
    if token.country_code != key.country_code {
        return mismatch(
            "country_code",
            key.country_code.as_str(),
            token.country_code.as_str(),
        );
    }
    if token.party_id != key.party_id {
        return mismatch("party_id", key.party_id.as_str(), token.party_id.as_str());
    }
    if token.uid != key.uid {
        return mismatch("uid", key.uid.as_str(), token.uid.as_str());
    }
    Ok(())
}

pub(super) async fn put<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    Path(path): Path<(String, String, String)>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let peer = peer(&caller)?;
    let key = key(peer, path)?;
    let raw: serde_json::Value = parse_body(&body)?;
    let token: Token = serde_json::from_value(codec::token_from(
        version,
        raw,
        Some((&key.country_code, &key.party_id)),
    ))
    .map_err(|e| OcpiError::InvalidParameters(format!("token: {e}")))?;
    if let Some(kind) = query_type(&uri)?
        && kind != token.kind
    {
        return Err(OcpiError::InvalidParameters(format!(
            "type in the URL ({kind}) differs from the body ({})",
            token.kind
        )));
    }
    check_identity(&key, &token)?;
    token.validate()?;
    let backend = platform.backend();
    let existed = backend
        .token(
            peer,
            &key.country_code,
            &key.party_id,
            &key.uid,
            &token.kind,
        )?
        .is_some();
    backend.put_token(peer, token)?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(Envelope::ack())).into_response())
}

pub(super) async fn patch<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    Path(path): Path<(String, String, String)>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let peer = peer(&caller)?;
    let key = key(peer, path)?;
    let serde_json::Value::Object(mut patch) = parse_body::<serde_json::Value>(&body)? else {
        return Err(OcpiError::InvalidParameters(
            "PATCH body must be a JSON object".into(),
        ));
    };
    match patch.get("last_updated") {
        Some(serde_json::Value::String(s)) if DateTime::parse(s).is_ok() => {}
        Some(_) => {
            return Err(OcpiError::InvalidParameters(
                "last_updated is not a DateTime".into(),
            ));
        }
        None => {
            return Err(OcpiError::InvalidParameters(
                "PATCH requires last_updated".into(),
            ));
        }
    }
    let body_type = match patch.get("type") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(TokenType::from(s.as_str())),
        Some(_) => return Err(OcpiError::InvalidParameters("type must be a string".into())),
    };
    let kind = match (query_type(&uri)?, body_type) {
        (Some(q), Some(b)) if q != b => {
            return Err(OcpiError::InvalidParameters(format!(
                "type in the URL ({q}) differs from the body ({b})"
            )));
        }
        (Some(q), _) => q,
        (None, b) => b.unwrap_or_default(),
    };
    let backend = platform.backend();
    let Some(stored) = backend.token(peer, &key.country_code, &key.party_id, &key.uid, &kind)?
    else {
        return Ok(unknown_token(&key, &kind));
    };
    let serde_json::Value::Object(mut merged) = serde_json::to_value(&stored)
        .map_err(|e| OcpiError::Server(format!("stored token not serialisable: {e}")))?
    else {
        return Err(OcpiError::Server("stored token is not an object".into()));
    };
    if version.is_2_1_1()
        && let Some(auth_id) = patch.remove("auth_id")
    {
        patch.insert("contract_id".into(), auth_id);
    }
    for (field, value) in patch {
        if !value.is_null() {
            merged.insert(field, value);
        }
    }
    let merged = codec::token_from(version, serde_json::Value::Object(merged), None);
    let token: Token = serde_json::from_value(merged)
        .map_err(|e| OcpiError::InvalidParameters(format!("patched token: {e}")))?;
    check_identity(&key, &token)?;
    token.validate()?;
    backend.put_token(peer, token)?;
    Ok(Envelope::ack().into_response())
}
