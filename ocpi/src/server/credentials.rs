//! Credentials module as the *receiving* side (the peer POSTs/PUTs/DELETEs on us).
//!
//! POST (token A only; a registered peer's token → 405): check the body, call their versions + details **with the
//! token they sent** (failure → 3001, their versions lack the version whose credentials endpoint they called →
//! 3002, no credentials endpoint → 3003), issue a new `token_in`, store the peer with that version and answer our
//! credentials with it (2.1.1: the flat object of [`crate::codec::credentials`]). A PUT on another version's
//! endpoint switches the peer to that version. A party that registers again with token A replaces its old
//! record (same peer id `{CC}{PID}` of its first role). PUT (registered peers only, else 405): same walk, new
//! token; the old one stops working. DELETE (registered only, else 405): forget the peer. GET: our credentials
//! with the caller's current token (405 for token A).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;

use crate::backend::CpoBackend;
use crate::envelope::{OcpiError, OcpiJson, Response};
use crate::peer::{Initiator, Peer, PeerId, PeerStatus};
use crate::platform::Platform;
use crate::registration::discover_for;
use serde_json::Value;

use crate::codec;
use crate::types::{AuthToken, Credentials, DateTime, OcpiVersion};

use super::auth::Caller;

fn registered(caller: &Caller) -> Result<&Peer, OcpiError> {
    match caller {
        Caller::Peer(peer) => Ok(peer),
        Caller::TokenA => Err(OcpiError::MethodNotAllowed("not registered".into())),
    }
}

pub(super) async fn get<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
) -> Result<Response<Value>, OcpiError> {
    let peer = registered(&caller)?;
    Ok(Response::success(codec::credentials(
        version,
        &platform.our_credentials(&peer.token_in),
    )))
}

/// The credentials object of a POST/PUT on our `version`'s endpoint, in the internal shape.
fn parse(version: OcpiVersion, raw: Value) -> Result<Credentials, OcpiError> {
    serde_json::from_value(codec::credentials_from(version, raw))
        .map_err(|e| OcpiError::InvalidParameters(format!("credentials: {e}")))
}

pub(super) async fn post<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    OcpiJson(raw): OcpiJson<Value>,
) -> Result<Response<Value>, OcpiError> {
    if let Caller::Peer(peer) = &caller {
        return Err(OcpiError::MethodNotAllowed(format!(
            "already registered as {}",
            peer.id
        )));
    }
    let creds = parse(version, raw)?;
    creds.check().map_err(OcpiError::InvalidParameters)?;
    let first = &creds.roles[0];
    let id = PeerId(format!(
        "{}{}",
        first.country_code.key(),
        first.party_id.key()
    ));
    let discovered = discover_for(&platform, &creds, version).await?;
    let peer = Peer {
        id,
        token_in: AuthToken::generate(),
        token_out: creds.token,
        versions_url: creds.url,
        version: discovered.version,
        endpoints: discovered.endpoints,
        roles: creds.roles,
        registered_at: DateTime::now(),
        encode_token: discovered.encode_token,
        initiated_by: Initiator::Them,
        status: PeerStatus::Registered,
        options: Default::default(),
    };
    if platform.peers().get(&peer.id).is_some() {
        tracing::warn!(peer = %peer.id, "party registers again with token A; replacing its old registration");
    }
    platform.peers().save(peer.clone())?;
    tracing::info!(peer = %peer.id, version = %peer.version, "peer registered with us");
    platform.backend().peer_registered(&peer).await;
    Ok(Response::success(codec::credentials(
        version,
        &platform.our_credentials(&peer.token_in),
    )))
}

pub(super) async fn put<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    OcpiJson(raw): OcpiJson<Value>,
) -> Result<Response<Value>, OcpiError> {
    let current = registered(&caller)?;
    let creds = parse(version, raw)?;
    creds.check().map_err(OcpiError::InvalidParameters)?;
    let discovered = discover_for(&platform, &creds, version).await?;
    let peer = Peer {
        token_in: AuthToken::generate(),
        token_out: creds.token,
        versions_url: creds.url,
        version: discovered.version,
        endpoints: discovered.endpoints,
        roles: creds.roles,
        registered_at: DateTime::now(),
        encode_token: discovered.encode_token,
        status: PeerStatus::Registered,
        ..(*current).clone()
    };
    platform.peers().save(peer.clone())?;
    tracing::info!(peer = %peer.id, version = %peer.version, "peer updated its credentials");
    platform.backend().peer_registered(&peer).await;
    Ok(Response::success(codec::credentials(
        version,
        &platform.our_credentials(&peer.token_in),
    )))
}

pub(super) async fn delete<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response<()>, OcpiError> {
    let peer = registered(&caller)?;
    platform.peers().remove(&peer.id)?;
    tracing::info!(peer = %peer.id, "peer unregistered");
    platform.backend().peer_unregistered(&peer.id).await;
    Ok(Response::ack())
}
