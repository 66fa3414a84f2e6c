//! Driver authorization: OCPP Authorize / StartTransaction / TransactionEvent decided by the OCPI
//! token rules of the eMSP that owns the token.
//!
//! - A stored token with whitelist ALWAYS is accepted locally (no real-time request), recorded
//!   as auth method WHITELIST.
//! - ALLOWED, ALLOWED_OFFLINE: real-time authorization at the token's eMSP
//!   (`POST {tokens}/{uid}/authorize`) with a short timeout; its answer decides (AUTH_REQUEST);
//!   when the eMSP cannot be reached the token is accepted (WHITELIST).
//! - NEVER: real-time only; unreachable means rejected.
//! - An unknown token is asked at every peer with a Tokens sender; unknown everywhere (or nobody
//!   reachable) means rejected.
//! - A token the eMSP marked `valid: false` is rejected without asking.
//!
//! Decisions are cached per (station, token) for a while, so the Authorize a 1.6 station sends
//! before StartTransaction costs one real-time request, not two; a START_SESSION pre-authorizes
//! its token the same way (auth method COMMAND).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ocpi::client::{AuthorizeOutcome, Recipient};
use ocpi::types::{
    AllowedType, AuthMethod, InterfaceRole, LocationReferences, ModuleId, Token, TokenType,
    TokenUid, WhitelistType,
};
use ocpi::{Client, PeerStatus, Peers};
use ocpp::{AuthorizationStatus, IdToken, IdTokenInfo, IdTokenKind, StationId};
use state::Store;

use crate::error::Logged;
use crate::tokens;

/// The outcome of an authorization.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The OCPP answer.
    pub info: IdTokenInfo,
    /// The OCPI token it resolved to (for `cdr_token`), when known.
    pub token: Option<Token>,
    /// The peer the token belongs to (Sessions and CDRs go there).
    pub peer: Option<String>,
    /// How it was authorized.
    pub method: AuthMethod,
    /// Reference the eMSP gave (real-time answer or command).
    pub authorization_reference: Option<String>,
}

impl Decision {
    fn rejected(
        status: AuthorizationStatus,
        token: Option<Token>,
        peer: Option<String>,
        method: AuthMethod,
    ) -> Self {
        Decision {
            info: IdTokenInfo {
                status,
                expiry: None,
                group_id: None,
            },
            token,
            peer,
            method,
            authorization_reference: None,
        }
    }

    /// Whether the driver may charge.
    pub fn accepted(&self) -> bool {
        self.info.status == AuthorizationStatus::Accepted
    }
}

/// OCPI AllowedType → OCPP status (the 1.6 adapter maps the 2.0.1-only values to Invalid).
pub fn map_allowed(a: AllowedType) -> AuthorizationStatus {
    match a {
        AllowedType::Allowed => AuthorizationStatus::Accepted,
        AllowedType::Blocked => AuthorizationStatus::Blocked,
        AllowedType::Expired => AuthorizationStatus::Expired,
        AllowedType::NoCredit => AuthorizationStatus::NoCredit,
        AllowedType::NotAllowed => AuthorizationStatus::NotAtThisLocation,
    }
}

/// The OCPI token type a 2.0.1 idToken type suggests (1.6 idTags are RFID).
pub fn token_type_for(kind: IdTokenKind) -> TokenType {
    match kind {
        IdTokenKind::Central => TokenType::AppUser,
        IdTokenKind::Local => TokenType::AdHocUser,
        IdTokenKind::IdTag | IdTokenKind::Iso14443 | IdTokenKind::Iso15693 => TokenType::Rfid,
        _ => TokenType::OtherToken,
    }
}

/// Decides authorizations; shared by the station service and the command handler.
pub struct Authorizer {
    store: Store,
    /// The registered peers and the client to reach them (absent: no real-time requests).
    ocpi: Option<(Peers, Client)>,
    timeout: Duration,
    cache_for: Duration,
    cache: Mutex<HashMap<(String, String), (Decision, Instant)>>,
    /// Operator identifiers accepted locally (upper case).
    local: Vec<String>,
    /// Accept identifiers nobody knows.
    free_vend: bool,
    /// 2.0.1 RequestStartTransaction intents by (station, remoteStartId).
    remote_starts: Mutex<HashMap<(String, i32), (Decision, Instant)>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

fn cache_key(station: &StationId, uid: &str) -> (String, String) {
    (station.0.clone(), uid.to_ascii_uppercase())
}

impl Authorizer {
    /// An authorizer; without the OCPI side (peers and client) only stored ALWAYS tokens are
    /// accepted.
    pub fn new(store: Store, ocpi: Option<(Peers, Client)>, timeout: Duration) -> Self {
        Authorizer {
            store,
            ocpi,
            timeout,
            cache_for: Duration::from_secs(15 * 60),
            cache: Mutex::new(HashMap::new()),
            remote_starts: Mutex::new(HashMap::new()),
            local: Vec::new(),
            free_vend: false,
        }
    }

    /// Accepts the operator's own identifiers locally, and with `free_vend` every identifier
    /// no eMSP knows.
    pub fn with_local_policy(mut self, local_id_tags: &[String], free_vend: bool) -> Self {
        self.local = local_id_tags
            .iter()
            .map(|t| t.to_ascii_uppercase())
            .collect();
        self.free_vend = free_vend;
        self
    }

    /// Remembers the decision behind a 2.0.1 RequestStartTransaction: the transaction that
    /// echoes `remote_start_id` gets it.
    pub fn pre_authorize_remote(
        &self,
        station: &StationId,
        remote_start_id: i32,
        decision: Decision,
    ) {
        let mut map = self.remote_starts.lock().expect("remote starts");
        map.retain(|_, (_, at)| at.elapsed() < self.cache_for);
        map.insert(
            (station.0.clone(), remote_start_id),
            (decision, Instant::now()),
        );
    }

    /// The decision behind a 2.0.1 remote start, if it is known.
    pub fn remote_start(&self, station: &StationId, remote_start_id: i32) -> Option<Decision> {
        let map = self.remote_starts.lock().expect("remote starts");
        map.get(&(station.0.clone(), remote_start_id))
            .map(|(d, _)| d.clone())
    }

    /// Remembers a decision made elsewhere (START_SESSION) for a station and token uid.
    pub fn pre_authorize(&self, station: &StationId, uid: &str, decision: Decision) {
        self.remember(station, uid, decision);
    }

    fn cached(&self, station: &StationId, uid: &str) -> Option<Decision> {
        let cache = self.cache.lock().expect("auth cache");
        // Only acceptances are reused: a rejection is asked again, so an unblocked token works.
        // Expired entries are pruned on insert (a scan per lookup cost 3% of the CPU of a
        // transaction-heavy load with 1,000 stations).
        cache
            .get(&cache_key(station, uid))
            .filter(|(_, at)| at.elapsed() < self.cache_for)
            .map(|(d, _)| d.clone())
            .filter(Decision::accepted)
    }

    /// Caches a decision, dropping the expired ones.
    fn remember(&self, station: &StationId, uid: &str, decision: Decision) {
        let mut cache = self.cache.lock().expect("auth cache");
        cache.retain(|_, (_, at)| at.elapsed() < self.cache_for);
        cache.insert(cache_key(station, uid), (decision, Instant::now()));
    }

    /// Authorizes a token presented at a station. `location` is where (for the eMSP's
    /// LocationReferences). `fresh` bypasses the cache (a new Authorize request always asks).
    pub async fn authorize(
        &self,
        station: &StationId,
        presented: &IdToken,
        location: Option<LocationReferences>,
        fresh: bool,
    ) -> Decision {
        let uid = match presented.kind {
            IdTokenKind::IdTag => tokens::resolve_id_tag(&self.store, &presented.id)
                .unwrap_or_else(|_| presented.id.clone()),
            _ => presented.id.clone(),
        };
        if !fresh && let Some(d) = self.cached(station, &uid) {
            return d;
        }
        let decision = self.decide(&uid, presented.kind, location).await;
        metrics::counter!("bridge_authorizations_total",
            "method" => format!("{:?}", decision.method), "status" => format!("{:?}", decision.info.status))
        .increment(1);
        tracing::info!(station = %station, token = %uid, status = ?decision.info.status, method = ?decision.method,
            peer = ?decision.peer, "authorization");
        self.remember(station, &uid, decision.clone());
        decision
    }

    async fn decide(
        &self,
        uid: &str,
        kind: IdTokenKind,
        location: Option<LocationReferences>,
    ) -> Decision {
        if self.local.contains(&uid.to_ascii_uppercase()) {
            return Decision {
                info: IdTokenInfo::accepted(),
                token: None,
                peer: None,
                method: AuthMethod::Whitelist,
                authorization_reference: None,
            };
        }
        let d = self.decide_ocpi(uid, kind, location).await;
        if self.free_vend && d.token.is_none() && !d.accepted() {
            return Decision {
                info: IdTokenInfo::accepted(),
                method: AuthMethod::Whitelist,
                ..d
            };
        }
        d
    }

    async fn decide_ocpi(
        &self,
        uid: &str,
        kind: IdTokenKind,
        location: Option<LocationReferences>,
    ) -> Decision {
        let stored = tokens::find(&self.store, uid).unwrap_or_else(|e| {
            tracing::error!(error = %e, "token lookup failed");
            Vec::new()
        });
        let wanted = token_type_for(kind);
        let best = stored
            .iter()
            .find(|t| t.token.kind == wanted)
            .or_else(|| stored.first())
            .cloned();
        let Some(st) = best else {
            return self.ask_everyone(uid, &wanted, location).await;
        };
        if !st.token.valid {
            return Decision::rejected(
                AuthorizationStatus::Invalid,
                Some(st.token),
                Some(st.peer),
                AuthMethod::Whitelist,
            );
        }
        let accept_locally = |reference: Option<String>| Decision {
            info: IdTokenInfo::accepted(),
            token: Some(st.token.clone()),
            peer: Some(st.peer.clone()),
            method: AuthMethod::Whitelist,
            authorization_reference: reference,
        };
        match st.token.whitelist {
            WhitelistType::Always => accept_locally(None),
            whitelist => match self
                .ask(
                    &st.peer,
                    &st.token.uid,
                    &st.token.kind,
                    location,
                    Some(&st.token),
                )
                .await
            {
                Ok(Some(d)) => d,
                Ok(None) => Decision::rejected(
                    AuthorizationStatus::Unknown,
                    Some(st.token.clone()),
                    Some(st.peer.clone()),
                    AuthMethod::AuthRequest,
                ),
                Err(reason) => {
                    tracing::warn!(token = %uid, peer = %st.peer, reason = %reason, ?whitelist, "real-time authorization unavailable");
                    if whitelist == WhitelistType::Never {
                        Decision::rejected(
                            AuthorizationStatus::Invalid,
                            Some(st.token.clone()),
                            Some(st.peer.clone()),
                            AuthMethod::AuthRequest,
                        )
                    } else {
                        accept_locally(None)
                    }
                }
            },
        }
    }

    /// Real-time authorization at one peer: `Ok(Some)` with its verdict, `Ok(None)` when it does
    /// not know the token, `Err` when it cannot be asked or did not answer in time.
    async fn ask(
        &self,
        peer_id: &str,
        uid: &TokenUid,
        kind: &TokenType,
        location: Option<LocationReferences>,
        known: Option<&Token>,
    ) -> Result<Option<Decision>, String> {
        let (peers, client) = self.ocpi.as_ref().ok_or("no OCPI side")?;
        let peer = peers
            .get(&ocpi::PeerId(peer_id.to_owned()))
            .filter(|p| p.status == PeerStatus::Registered)
            .ok_or_else(|| format!("peer {peer_id} not registered"))?;
        // A known token names its eMSP; an unknown one goes through a hub by open routing (no
        // OCPI-to-*: the hub finds the eMSP), to any other peer as itself.
        let to = known.map_or_else(
            || Recipient::unknown_party(&peer),
            |t| Recipient::party(&t.country_code, &t.party_id),
        );
        let outcome = client
            .authorize_token(&peer, uid, kind, location.as_ref(), self.timeout, &to)
            .await
            .map_err(|e| e.to_string())?;
        match outcome {
            AuthorizeOutcome::Authorized(info) => {
                // Keep the token the eMSP described, so the session's cdr_token is right.
                let token = info.token.clone();
                self.store
                    .update(|tx| tokens::put(tx, &token, peer_id))
                    .or_log("storing the authorized token");
                Ok(Some(Decision {
                    info: IdTokenInfo {
                        status: map_allowed(info.allowed),
                        expiry: None,
                        group_id: info.token.group_id.clone(),
                    },
                    token: Some(info.token),
                    peer: Some(peer_id.to_owned()),
                    method: AuthMethod::AuthRequest,
                    authorization_reference: info.authorization_reference,
                }))
            }
            AuthorizeOutcome::UnknownToken => Ok(None),
            AuthorizeOutcome::NotEnoughInformation => {
                Err("eMSP needs more information (2002)".into())
            }
        }
    }

    async fn ask_everyone(
        &self,
        uid: &str,
        kind: &TokenType,
        location: Option<LocationReferences>,
    ) -> Decision {
        let Some((peers, _)) = &self.ocpi else {
            return Decision::rejected(
                AuthorizationStatus::Unknown,
                None,
                None,
                AuthMethod::AuthRequest,
            );
        };
        let senders: Vec<String> = peers
            .all()
            .into_iter()
            .filter(|p| p.status == PeerStatus::Registered)
            .filter(|p| {
                p.endpoint(&ModuleId::Tokens, InterfaceRole::Sender)
                    .is_some()
            })
            .map(|p| p.id.0)
            .collect();
        let uid = TokenUid::new(uid.to_owned());
        for peer in senders {
            match self.ask(&peer, &uid, kind, location.clone(), None).await {
                Ok(Some(d)) => return d,
                Ok(None) => continue,
                Err(reason) => {
                    tracing::warn!(peer = %peer, reason = %reason, "real-time authorization of an unknown token failed")
                }
            }
        }
        Decision::rejected(
            AuthorizationStatus::Unknown,
            None,
            None,
            AuthMethod::AuthRequest,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_type_maps_to_an_ocpp_status() {
        assert_eq!(
            map_allowed(AllowedType::Allowed),
            AuthorizationStatus::Accepted
        );
        assert_eq!(
            map_allowed(AllowedType::Blocked),
            AuthorizationStatus::Blocked
        );
        assert_eq!(
            map_allowed(AllowedType::Expired),
            AuthorizationStatus::Expired
        );
        assert_eq!(
            map_allowed(AllowedType::NoCredit),
            AuthorizationStatus::NoCredit
        );
        assert_eq!(
            map_allowed(AllowedType::NotAllowed),
            AuthorizationStatus::NotAtThisLocation
        );
    }

    #[test]
    fn token_types_follow_the_id_token_kind() {
        assert_eq!(token_type_for(IdTokenKind::IdTag), TokenType::Rfid);
        assert_eq!(token_type_for(IdTokenKind::Iso14443), TokenType::Rfid);
        assert_eq!(token_type_for(IdTokenKind::Central), TokenType::AppUser);
        assert_eq!(token_type_for(IdTokenKind::Local), TokenType::AdHocUser);
        assert_eq!(token_type_for(IdTokenKind::EMaid), TokenType::OtherToken);
    }

    fn token(whitelist: WhitelistType, valid: bool) -> Token {
        serde_json::from_value(serde_json::json!({
            "country_code": "DE", "party_id": "EMS", "uid": "AABBCC", "type": "RFID",
            "contract_id": "DE-EMS-C1", "issuer": "EMS", "valid": valid,
            "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    fn authorizer(t: Token) -> (tempfile::TempDir, Authorizer) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&state::Settings {
            path: dir.path().join("db"),
            cache_bytes: 8 << 20,
        })
        .unwrap();
        store.update(|tx| tokens::put(tx, &t, "emsp")).unwrap();
        (
            dir,
            Authorizer::new(store, None, Duration::from_millis(100)),
        )
    }

    fn rfid(id: &str) -> IdToken {
        IdToken {
            id: id.into(),
            kind: IdTokenKind::IdTag,
        }
    }

    #[tokio::test]
    async fn an_always_token_is_accepted_locally_as_whitelist() {
        let (_d, a) = authorizer(token(WhitelistType::Always, true));
        let d = a
            .authorize(&StationId::from("CS1"), &rfid("aabbcc"), None, true)
            .await;
        assert!(d.accepted());
        assert_eq!(d.method, AuthMethod::Whitelist);
        assert_eq!(d.peer.as_deref(), Some("emsp"));
        assert_eq!(d.token.unwrap().contract_id, "DE-EMS-C1");
    }

    #[tokio::test]
    async fn an_invalid_token_is_rejected_without_asking() {
        let (_d, a) = authorizer(token(WhitelistType::Always, false));
        let d = a
            .authorize(&StationId::from("CS1"), &rfid("AABBCC"), None, true)
            .await;
        assert_eq!(d.info.status, AuthorizationStatus::Invalid);
    }

    #[tokio::test]
    async fn when_the_emsp_is_unreachable_allowed_falls_back_to_whitelist_and_never_rejects() {
        let (_d, a) = authorizer(token(WhitelistType::Allowed, true));
        let d = a
            .authorize(&StationId::from("CS1"), &rfid("AABBCC"), None, true)
            .await;
        assert!(d.accepted());
        assert_eq!(d.method, AuthMethod::Whitelist);
        let (_d2, a) = authorizer(token(WhitelistType::AllowedOffline, true));
        assert!(
            a.authorize(&StationId::from("CS1"), &rfid("AABBCC"), None, true)
                .await
                .accepted()
        );
        let (_d3, a) = authorizer(token(WhitelistType::Never, true));
        let d = a
            .authorize(&StationId::from("CS1"), &rfid("AABBCC"), None, true)
            .await;
        assert_eq!(d.info.status, AuthorizationStatus::Invalid);
    }

    #[tokio::test]
    async fn local_tags_and_free_vend_accept_without_an_emsp() {
        let (_d, a) = authorizer(token(WhitelistType::Never, true));
        let a = a.with_local_policy(&["fleet-1".into()], false);
        let station = StationId::from("CS1");
        let d = a.authorize(&station, &rfid("FLEET-1"), None, true).await;
        assert!(d.accepted());
        assert!(d.token.is_none(), "no OCPI token: no session");
        assert_eq!(
            a.authorize(&station, &rfid("NOPE"), None, true)
                .await
                .info
                .status,
            AuthorizationStatus::Unknown
        );
        let a = a.with_local_policy(&[], true);
        assert!(
            a.authorize(&station, &rfid("NOPE"), None, true)
                .await
                .accepted()
        );
        // A known eMSP token keeps its eMSP's rules (NEVER + unreachable = rejected).
        assert_eq!(
            a.authorize(&station, &rfid("AABBCC"), None, true)
                .await
                .info
                .status,
            AuthorizationStatus::Invalid
        );
    }

    #[tokio::test]
    async fn an_unknown_token_is_rejected_and_a_cached_decision_is_reused() {
        let (_d, a) = authorizer(token(WhitelistType::Always, true));
        let station = StationId::from("CS1");
        let d = a.authorize(&station, &rfid("NOPE"), None, true).await;
        assert_eq!(d.info.status, AuthorizationStatus::Unknown);
        a.pre_authorize(
            &station,
            "NOPE",
            Decision {
                info: IdTokenInfo::accepted(),
                token: None,
                peer: Some("emsp".into()),
                method: AuthMethod::Command,
                authorization_reference: Some("REF".into()),
            },
        );
        let d = a.authorize(&station, &rfid("nope"), None, false).await;
        assert_eq!(d.method, AuthMethod::Command);
        assert_eq!(d.authorization_reference.as_deref(), Some("REF"));
    }
}
