//! ChargingProfiles Receiver interface: `PUT`, `GET` and `DELETE /chargingprofiles/{session_id}`.
//!
//! PUT takes a [`SetChargingProfile`] body; GET takes `duration` (seconds) and `response_url`, DELETE
//! `response_url`, both as query parameters. Body not JSON → HTTP 400; wrong shape, failing validation, a missing
//! or bad query parameter → OCPI 2001. A `response_url` that names the bridge's own listeners or a
//! link-local/metadata address ([`crate::egress`]) → 2001, like commands. The session is looked up for the caller
//! ([`CpoBackend::session`]: only its own drivers' sessions) and, through a hub, narrowed to the request's
//! `OCPI-from-*` party: a session that is unknown to the caller is answered UNKNOWN_SESSION (HTTP 200, OCPI 1000)
//! without reaching the backend. Otherwise the backend's [`ChargingProfileResponse`] is the envelope's `data`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use crate::backend::CpoBackend;
use crate::envelope::{OcpiError, Response as Envelope, parse_body};
use crate::peer::Peer;
use crate::platform::Platform;
use crate::types::{
    ChargingProfileResponse, ChargingProfileResponseType, CountryCode, PartyId, Session, SessionId,
    SetChargingProfile, is_http_url,
};

use super::auth::{Caller, RequestFrom};
use super::list::peer;

/// Query of GET (`duration`, `response_url`) and DELETE (`response_url`); kept as text so a bad value is an OCPI
/// 2001 naming the parameter, not axum's plain 400.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ProfileQuery {
    duration: Option<String>,
    response_url: Option<String>,
}

type From = Option<(CountryCode, PartyId)>;

fn unknown_session() -> Envelope<ChargingProfileResponse> {
    Envelope::success(ChargingProfileResponse::new(
        ChargingProfileResponseType::UnknownSession,
        0,
    ))
}

/// The caller's session `id` (narrowed to the `OCPI-from-*` party), if any.
fn session_of<B: CpoBackend>(
    platform: &Platform<B>,
    peer: &Peer,
    from: &From,
    id: &str,
) -> Result<Option<Session>, OcpiError> {
    Ok(platform
        .backend()
        .session(peer, &SessionId::new(id))?
        .filter(|s| {
            from.as_ref().is_none_or(|(cc, pid)| {
                s.cdr_token.country_code == *cc && s.cdr_token.party_id == *pid
            })
        }))
}

/// Checks a `response_url`: shape (URL(255)) and egress rules.
fn check_response_url<B: CpoBackend>(
    platform: &Platform<B>,
    peer: &Peer,
    url: Option<&str>,
) -> Result<String, OcpiError> {
    let url = url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| OcpiError::InvalidParameters("response_url is required".into()))?;
    if url.len() > 255 || !is_http_url(url) {
        return Err(OcpiError::InvalidParameters(
            "response_url: must be an absolute http(s) URL of at most 255 bytes".into(),
        ));
    }
    if let Err(denied) = platform.client().egress().check_str(url) {
        tracing::warn!(peer = %peer.id, %denied, "charging profile request with a forbidden response_url");
        return Err(OcpiError::InvalidParameters(format!(
            "response_url: {denied}"
        )));
    }
    Ok(url.to_owned())
}

fn from_of(from: Option<Extension<RequestFrom>>) -> From {
    from.map(|Extension(RequestFrom(cc, pid))| (cc, pid))
}

pub(super) async fn put<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    from: Option<Extension<RequestFrom>>,
    Path(session_id): Path<String>,
    body: Bytes,
) -> Result<Envelope<ChargingProfileResponse>, OcpiError> {
    let peer = peer(&caller)?;
    let set: SetChargingProfile = parse_body(&body)?;
    set.validate()?;
    check_response_url(&platform, peer, Some(&set.response_url))?;
    let from = from_of(from);
    let Some(session) = session_of(&platform, peer, &from, &session_id)? else {
        return Ok(unknown_session());
    };
    let response = platform
        .backend()
        .set_charging_profile(peer, from, &session, set)
        .await?;
    Ok(Envelope::success(response))
}

pub(super) async fn get<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    from: Option<Extension<RequestFrom>>,
    Path(session_id): Path<String>,
    Query(query): Query<ProfileQuery>,
) -> Result<Envelope<ChargingProfileResponse>, OcpiError> {
    let peer = peer(&caller)?;
    let duration = query
        .duration
        .as_deref()
        .ok_or_else(|| OcpiError::InvalidParameters("duration is required".into()))?
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| {
            OcpiError::InvalidParameters("duration: must be a positive number of seconds".into())
        })?;
    let url = check_response_url(&platform, peer, query.response_url.as_deref())?;
    let from = from_of(from);
    let Some(session) = session_of(&platform, peer, &from, &session_id)? else {
        return Ok(unknown_session());
    };
    let response = platform
        .backend()
        .get_active_charging_profile(peer, from, &session, duration, url)
        .await?;
    Ok(Envelope::success(response))
}

pub(super) async fn delete<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    from: Option<Extension<RequestFrom>>,
    Path(session_id): Path<String>,
    Query(query): Query<ProfileQuery>,
) -> Result<Envelope<ChargingProfileResponse>, OcpiError> {
    let peer = peer(&caller)?;
    let url = check_response_url(&platform, peer, query.response_url.as_deref())?;
    let from = from_of(from);
    let Some(session) = session_of(&platform, peer, &from, &session_id)? else {
        return Ok(unknown_session());
    };
    let response = platform
        .backend()
        .clear_charging_profile(peer, from, &session, url)
        .await?;
    Ok(Envelope::success(response))
}
