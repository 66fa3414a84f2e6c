//! Locations Sender interface: GET of one Location / EVSE / Connector. Ids are matched
//! case-insensitively. Unknown Location → HTTP 404 + OCPI 2003; unknown EVSE/Connector → HTTP 404 + OCPI 2000.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};

use crate::backend::CpoBackend;
use crate::envelope::{OcpiError, Response as Envelope};
use crate::platform::Platform;
use serde_json::Value;

use crate::codec;
use crate::types::{Connector, Evse, Location, LocationId, OcpiVersion};

use super::auth::Caller;
use super::list::peer;

fn find<B: CpoBackend>(
    platform: &Platform<B>,
    caller: &Caller,
    id: &str,
) -> Result<Location, OcpiError> {
    platform
        .backend()
        .location(peer(caller)?, &LocationId::new(id))?
        .ok_or_else(|| OcpiError::LocationNotFound(id.to_owned()))
}

fn find_evse(location: Location, uid: &str) -> Result<Evse, OcpiError> {
    location
        .evses
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.uid == uid)
        .ok_or_else(|| OcpiError::NotFound(format!("EVSE {uid}")))
}

pub(super) async fn location<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    Path(location_id): Path<String>,
) -> Result<Envelope<Value>, OcpiError> {
    find(&platform, &caller, &location_id).map(|l| Envelope::success(codec::location(version, &l)))
}

pub(super) async fn evse<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    Path((location_id, evse_uid)): Path<(String, String)>,
) -> Result<Envelope<Value>, OcpiError> {
    let location = find(&platform, &caller, &location_id)?;
    find_evse(location, &evse_uid).map(|e| Envelope::success(codec::evse(version, &e)))
}

pub(super) async fn connector<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    Path((location_id, evse_uid, connector_id)): Path<(String, String, String)>,
) -> Result<Envelope<Value>, OcpiError> {
    let location = find(&platform, &caller, &location_id)?;
    find_evse(location, &evse_uid)?
        .connectors
        .into_iter()
        .find(|c| c.id == connector_id.as_str())
        .map(|c: Connector| Envelope::success(codec::connector(version, &c)))
        .ok_or_else(|| OcpiError::NotFound(format!("connector {connector_id}")))
}
