//! Credentials module as the *receiving* side (the peer POSTs/PUTs/DELETEs on us).
//!
//! POST (token A only): a registered peer's token, or credentials of a party that is already registered (one of
//! its roles' country code + party id, or the same token) → HTTP 405 and nothing changes. Else check the body
//! (2.1.1: the flat object, [`crate::codec::credentials_from`]), call their versions + details **with the token
//! they sent** (failure → 3001, their versions lack the version whose credentials endpoint they called → 3002, no
//! credentials endpoint → 3003), retire the token A (`CpoBackend::use_token_a`: single use; already used → 401),
//! issue a new `token_in`, store the peer with that version and answer our credentials with it in that version's
//! shape. POSTs are serialised, so one token A registers one party. PUT (registered peers only, else 405): same
//! walk, new token; the old one stops working; a PUT on another version's endpoint switches the peer to that
//! version. DELETE (registered only, else 405): forget the peer. GET: our credentials with the caller's current
//! token (405 for token A).

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
        Caller::TokenA(_) => Err(OcpiError::MethodNotAllowed("not registered".into())),
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
    let token_a = match &caller {
        Caller::Peer(peer) => {
            return Err(OcpiError::MethodNotAllowed(format!(
                "already registered as {}",
                peer.id
            )));
        }
        Caller::TokenA(token) => token.clone(),
    };
    let creds = parse(version, raw)?;
    creds.check().map_err(OcpiError::InvalidParameters)?;
    let _serialised = platform.registration_lock().await;
    if let Some(existing) = already_registered(&platform.peers().all(), &creds) {
        tracing::warn!(peer = %existing, "a registered party POSTed credentials again; refused with 405");
        return Err(OcpiError::MethodNotAllowed(format!(
            "already registered as {existing}; use PUT to update the credentials"
        )));
    }
    let first = &creds.roles[0];
    let id = PeerId(format!(
        "{}{}",
        first.country_code.key(),
        first.party_id.key()
    ));
    // A peer stored under that id (whatever its roles are now) is never replaced by a POST: it
    // would inherit that peer's outbox, sessions and tokens.
    if let Some(existing) = platform.peers().get(&id) {
        tracing::warn!(peer = %existing.id, "a POST for an id that is already registered; refused with 405");
        return Err(OcpiError::MethodNotAllowed(format!(
            "{} is already registered; use PUT to update the credentials",
            existing.id
        )));
    }
    let discovered = discover_for(&platform, &creds, version, &Default::default()).await?;
    if !platform.backend().use_token_a(token_a.expose(), &id)? {
        tracing::warn!(peer = %id, "token A was used meanwhile; registration refused");
        return Err(OcpiError::Unauthorized);
    }
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
    platform.peers().save(peer.clone())?;
    tracing::info!(peer = %peer.id, version = %peer.version, "peer registered with us; its token A is used up");
    platform.backend().peer_registered(&peer).await;
    Ok(Response::success(codec::credentials(
        version,
        &platform.our_credentials(&peer.token_in),
    )))
}

/// The stored peer that `creds` comes from, if any: one that holds the same token, or has a role with the same
/// country code and party id (case-insensitive) as one of the credentials' roles.
fn already_registered(peers: &[Peer], creds: &Credentials) -> Option<PeerId> {
    peers
        .iter()
        .find(|p| {
            p.token_out == creds.token
                || p.roles.iter().any(|r| {
                    creds
                        .roles
                        .iter()
                        .any(|c| c.country_code == r.country_code && c.party_id == r.party_id)
                })
        })
        .map(|p| p.id.clone())
}

pub(super) async fn put<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    OcpiJson(raw): OcpiJson<Value>,
) -> Result<Response<Value>, OcpiError> {
    let caller = registered(&caller)?;
    let creds = parse(version, raw)?;
    creds.check().map_err(OcpiError::InvalidParameters)?;
    let _serialised = platform.registration_lock().await;
    // The registration as it is now (an unregistration or rotation may have finished while
    // this request waited for the lock: then the caller's token is no longer valid).
    let current = still_registered(&platform, caller)?;
    check_update(&current, &creds, &platform.peers().all())?;
    let discovered = discover_for(&platform, &creds, version, &current.options).await?;
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
        ..current
    };
    platform.peers().save(peer.clone())?;
    tracing::info!(peer = %peer.id, version = %peer.version, "peer updated its credentials");
    platform.backend().peer_registered(&peer).await;
    Ok(Response::success(codec::credentials(
        version,
        &platform.our_credentials(&peer.token_in),
    )))
}

/// The caller's stored registration, if it is still the one its token belongs to.
fn still_registered<B: CpoBackend>(
    platform: &Platform<B>,
    caller: &Peer,
) -> Result<Peer, OcpiError> {
    platform
        .peers()
        .get(&caller.id)
        .filter(|p| p.token_in == caller.token_in)
        .ok_or(OcpiError::Unauthorized)
}

/// What a credentials PUT may change: the token, URL, business details and the roles of the
/// parties the peer already has. Adding a party (it could take over another eMSP's drivers) or
/// the HUB role (which may act for every party), or naming a party that another peer holds, is
/// refused: unregister and register again for that.
fn check_update(current: &Peer, creds: &Credentials, peers: &[Peer]) -> Result<(), OcpiError> {
    let held = |cc: &crate::types::CountryCode, pid: &crate::types::PartyId| {
        current
            .roles
            .iter()
            .any(|r| r.country_code == *cc && r.party_id == *pid)
    };
    if let Some(new) = creds
        .roles
        .iter()
        .find(|c| !held(&c.country_code, &c.party_id))
    {
        return Err(OcpiError::MethodNotAllowed(format!(
            "a credentials update cannot add the party {}/{}; unregister and register again",
            new.country_code, new.party_id
        )));
    }
    let is_hub = |roles: &[crate::types::CredentialsRole]| {
        roles.iter().any(|r| r.role == crate::types::Role::Hub)
    };
    if is_hub(&creds.roles) && !is_hub(&current.roles) {
        return Err(OcpiError::MethodNotAllowed(
            "a credentials update cannot add the HUB role; unregister and register again".into(),
        ));
    }
    let others: Vec<Peer> = peers
        .iter()
        .filter(|p| p.id != current.id)
        .cloned()
        .collect();
    if let Some(other) = already_registered(&others, creds) {
        return Err(OcpiError::MethodNotAllowed(format!(
            "those credentials belong to another registered peer ({other})"
        )));
    }
    Ok(())
}

pub(super) async fn delete<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response<()>, OcpiError> {
    let caller = registered(&caller)?;
    let _serialised = platform.registration_lock().await;
    let peer = still_registered(&platform, caller)?;
    platform.peers().remove(&peer.id)?;
    tracing::info!(peer = %peer.id, "peer unregistered");
    platform.backend().peer_unregistered(&peer.id).await;
    Ok(Response::ack())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(token: &str, roles: &[(&str, &str, &str)]) -> Credentials {
        serde_json::from_value(serde_json::json!({
            "token": token,
            "url": "https://p.example/ocpi/versions",
            "roles": roles.iter().map(|(role, cc, pid)| serde_json::json!({
                "role": role, "country_code": cc, "party_id": pid,
                "business_details": {"name": "x"}
            })).collect::<Vec<_>>(),
        }))
        .expect("credentials")
    }

    fn peer(id: &str, token_out: &str, roles: &[(&str, &str, &str)]) -> Peer {
        let c = creds(token_out, roles);
        Peer {
            id: PeerId(id.into()),
            token_in: AuthToken::new(format!("in-{id}")),
            token_out: c.token,
            versions_url: c.url,
            version: "2.2.1".into(),
            endpoints: vec![],
            roles: c.roles,
            registered_at: DateTime::now(),
            encode_token: true,
            initiated_by: Initiator::Them,
            status: PeerStatus::Registered,
            options: Default::default(),
        }
    }

    #[test]
    fn a_party_is_registered_by_any_of_its_roles_or_its_token() {
        let peers = [
            peer("DEEMA", "tok-a", &[("EMSP", "DE", "EMA")]),
            peer("NLHUB", "tok-h", &[("HUB", "NL", "HUB")]),
        ];
        let found = |c: &Credentials| already_registered(&peers, c).map(|p| p.0);
        // Same party, case-insensitively, whatever the role and its place in the list.
        assert_eq!(
            found(&creds("new", &[("EMSP", "de", "ema")])).as_deref(),
            Some("DEEMA")
        );
        assert_eq!(
            found(&creds("new", &[("CPO", "FR", "XYZ"), ("NSP", "DE", "EMA")])).as_deref(),
            Some("DEEMA")
        );
        // Same token, other roles.
        assert_eq!(
            found(&creds("tok-h", &[("EMSP", "FR", "XYZ")])).as_deref(),
            Some("NLHUB")
        );
        // Another party: not registered (same party id in another country is another party).
        assert_eq!(found(&creds("new", &[("EMSP", "FR", "EMA")])), None);
    }
}
