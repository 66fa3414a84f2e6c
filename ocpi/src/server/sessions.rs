//! Sessions Sender interface: `PUT /{session_id}/charging_preferences` (the list is [`super::list`]'s; its
//! `date_from` is optional although the spec marks it required).
//!
//! Preferences: unknown session (for this caller, and through a hub for the `OCPI-from-*` party) → HTTP 404 +
//! OCPI 2000; EVSE not CHARGING_PREFERENCES_CAPABLE
//! (backend answers `None`) → HTTP 404 + OCPI 2001 as the spec prescribes; otherwise `data` is the bare
//! ChargingPreferencesResponse string.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use crate::backend::CpoBackend;
use crate::envelope::{OcpiError, Response as Envelope, parse_body};
use crate::platform::Platform;
use crate::types::{ChargingPreferences, SessionId};

use super::auth::{Caller, RequestFrom};
use super::list::peer;

pub(super) async fn charging_preferences<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    from: Option<Extension<RequestFrom>>,
    Path(session_id): Path<String>,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let peer = peer(&caller)?;
    let preferences: ChargingPreferences = parse_body(&body)?;
    let session = platform
        .backend()
        .session(peer, &SessionId::new(session_id.as_str()))?
        // Through a hub, only the session's own eMSP may set its preferences.
        .filter(|s| {
            from.as_ref().is_none_or(|Extension(RequestFrom(cc, pid))| {
                s.cdr_token.country_code == *cc && s.cdr_token.party_id == *pid
            })
        })
        .ok_or_else(|| OcpiError::NotFound(format!("session {session_id}")))?;
    match platform
        .backend()
        .charging_preferences(peer, &session, preferences)
        .await?
    {
        Some(answer) => Ok(Envelope::success(answer).into_response()),
        None => Ok(super::not_found(
            2001,
            format!("EVSE of session {session_id} does not support charging preferences"),
        )),
    }
}
