//! HubClientInfo Receiver interface: `PUT/GET /hubclientinfo/{country_code}/{party_id}`.
//!
//! A configuration module (see `mod_hub_client_info.asciidoc`): peer tokens only (never token A), no
//! routing headers. PUT: a full ClientInfo whose `country_code`/`party_id` equal the URL's
//! (case-insensitively) and pass `ClientInfo::validate`, else OCPI 2001 and nothing is stored; body not JSON →
//! HTTP 400. The backend keeps it per calling peer. GET: the stored object of the calling peer, unknown →
//! HTTP 404 + OCPI 2000.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use crate::backend::CpoBackend;
use crate::envelope::{OcpiError, Response as Envelope, parse_body};
use crate::platform::Platform;
use crate::types::{ClientInfo, CountryCode, PartyId};

use super::auth::Caller;
use super::list::peer;

pub(super) async fn put<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Path((cc, pid)): Path<(String, String)>,
    body: Bytes,
) -> Result<Envelope<()>, OcpiError> {
    let peer = peer(&caller)?;
    let info: ClientInfo = parse_body(&body)?;
    info.validate()?;
    if info.country_code != CountryCode::new(&cc) || info.party_id != PartyId::new(&pid) {
        return Err(OcpiError::InvalidParameters(format!(
            "the URL names {cc}/{pid}, the body {}/{}",
            info.country_code, info.party_id
        )));
    }
    platform.backend().put_client_info(peer, info).await?;
    Ok(Envelope::ack())
}

pub(super) async fn get<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Path((cc, pid)): Path<(String, String)>,
) -> Result<Response, OcpiError> {
    let peer = peer(&caller)?;
    let found =
        platform
            .backend()
            .client_info(peer, &CountryCode::new(&cc), &PartyId::new(&pid))?;
    Ok(match found {
        Some(info) => Envelope::success(info).into_response(),
        None => super::not_found(2000, format!("no ClientInfo for {cc}/{pid}")),
    })
}
