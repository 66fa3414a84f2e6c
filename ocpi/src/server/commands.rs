//! Commands Receiver interface: `POST /commands/{command}`.
//!
//! The command type is matched case-insensitively; an unknown type → OCPI 2001 (HTTP 200). Body not JSON → HTTP
//! 400; wrong shape or failing validation (`Command::validate`) → 2001. A START_SESSION/RESERVE_NOW whose token
//! belongs to a party that is not the caller's (and the caller is no hub) is answered `REJECTED` without reaching
//! the backend (the spec forbids eMSPs to use other eMSPs' tokens). Otherwise the backend's `CommandResponse` is
//! the envelope's `data`. A `response_url` that names the bridge's own listeners or a
//! link-local/metadata address ([`crate::egress`]) → 2001. The request's `OCPI-from-*` party ([`super::RequestFrom`]) reaches the backend
//! (`CpoBackend::command_from`): the CommandResult is addressed to it.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};

use crate::backend::CpoBackend;
use crate::envelope::{OcpiError, Response as Envelope};
use crate::platform::Platform;
use crate::types::{Command, CommandResponse, CommandResponseType, CommandType, OcpiVersion};

use super::auth::{Caller, RequestFrom};
use super::list::peer;

pub(super) async fn post<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    from: Option<Extension<RequestFrom>>,
    Path(command): Path<String>,
    body: Bytes,
) -> Result<Envelope<serde_json::Value>, OcpiError> {
    let peer = peer(&caller)?;
    let kind = CommandType::from(command.to_ascii_uppercase().as_str());
    if version.is_2_1_1() && kind == CommandType::CancelReservation {
        return Err(OcpiError::InvalidParameters(
            "CANCEL_RESERVATION is not an OCPI 2.1.1 command".into(),
        ));
    }
    let body = if version.is_2_1_1() {
        let raw: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| OcpiError::BodyNotJson(e.to_string()))?;
        let owner = peer.party_for(&crate::types::ModuleId::Tokens);
        let converted = crate::codec::command_from(version, raw, owner);
        Bytes::from(serde_json::to_vec(&converted).unwrap_or_default())
    } else {
        body
    };
    let command = Command::from_body(&kind, &body)?;
    command.validate()?;
    // The result is POSTed there: it must not name the bridge itself or a metadata/link-local
    // address ([`crate::egress`]); checked again when the result is sent.
    if let Err(denied) = platform.client().egress().check_str(command.response_url()) {
        tracing::warn!(peer = %peer.id, %kind, %denied, "command with a forbidden response_url");
        return Err(OcpiError::InvalidParameters(format!(
            "response_url: {denied}"
        )));
    }
    if let Some(token) = command.token()
        && !peer.may_act_for(&token.country_code, &token.party_id)
    {
        tracing::info!(peer = %peer.id, %kind, owner = %format!("{}/{}", token.country_code, token.party_id),
            "command with another party's token rejected");
        return Ok(Envelope::success(crate::codec::command_response(
            version,
            &CommandResponse::new(CommandResponseType::Rejected, 0)
                .with_message("the token does not belong to one of your parties"),
        )));
    }
    let from = from.map(|Extension(RequestFrom(cc, pid))| (cc, pid));
    let response = platform.backend().command_from(peer, from, command).await?;
    Ok(Envelope::success(crate::codec::command_response(
        version, &response,
    )))
}
