//! [`Peer`]: a registered (or registering) OCPI platform, as persisted by the daemon, and [`Peers`], the in-memory
//! cache our server authenticates against.
//!
//! Invariants: `token_in` is what the peer sends us, `token_out` what we send them (never call them B/C — which is
//! which depends on who initiated); at most one peer per `token_in` and per id; every mutation goes through the
//! backend first (write-through), so the cache never holds something the store doesn't.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::envelope::OcpiError;
use crate::types::{
    AuthToken, CountryCode, CredentialsRole, DateTime, Endpoint, InterfaceRole, ModuleId,
    OcpiVersion, PartyId,
};

/// Stable id of a peer: configured for peers we register with, `{CC}{PID}` of their first role for peers that
/// register with us.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(pub String);

impl PeerId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who started the credentials handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// We POSTed our credentials to them (they gave us token A).
    Us,
    /// They POSTed to us with our token A.
    Them,
}

/// Registration state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    /// Our POST/PUT to them is in flight: `token_in` is already accepted so their callback GETs succeed.
    Pending,
    /// Handshake complete.
    Registered,
}

/// A peer platform (hub or eMSP). Serialisable for the daemon's store; tokens are masked in `Debug`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Stable id.
    pub id: PeerId,
    /// Token the peer uses to call us.
    pub token_in: AuthToken,
    /// Token we use to call the peer.
    pub token_out: AuthToken,
    /// Their versions URL.
    pub versions_url: String,
    /// Negotiated version (`2.2.1`).
    pub version: String,
    /// Their endpoints for that version.
    pub endpoints: Vec<Endpoint>,
    /// Their roles (country code / party id).
    pub roles: Vec<CredentialsRole>,
    /// When the handshake completed (or started, while pending).
    pub registered_at: DateTime,
    /// Send `Authorization: Token base64(token_out)` (true) or the raw token (false).
    #[serde(default = "default_true")]
    pub encode_token: bool,
    /// Who initiated the handshake.
    pub initiated_by: Initiator,
    /// Registration state.
    #[serde(default = "default_registered")]
    pub status: PeerStatus,
    /// Version pin and quirk switches (configured per peer; empty for peers that registered
    /// with us).
    #[serde(default, skip_serializing_if = "PeerOptions::is_default")]
    pub options: PeerOptions,
}

/// Per-peer switches: which OCPI versions we may use with it and which known deviations of its
/// implementation to play along with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerOptions {
    /// The versions we may use with this peer (empty: every version we serve). Registration picks
    /// the highest one both sides offer.
    #[serde(default)]
    pub versions: Vec<OcpiVersion>,
    /// Known deviations of the peer's implementation.
    #[serde(default)]
    pub quirks: Vec<Quirk>,
}

impl PeerOptions {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// The versions allowed with this peer out of `ours`.
    pub fn allowed(&self, ours: &[OcpiVersion]) -> Vec<OcpiVersion> {
        ours.iter()
            .copied()
            .filter(|v| self.versions.is_empty() || self.versions.contains(v))
            .collect()
    }
}

/// A known deviation of a peer's OCPI implementation that the bridge can play along with
/// (`quirks = [...]` on `[[ocpi.peers]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quirk {
    /// The peer speaks 2.1.1 but wants the token Base64-encoded in `Authorization` (2.1.1
    /// defined no encoding; most 2.1.1 hubs want it raw, some want Base64).
    #[serde(rename = "base64_token_2_1_1")]
    Base64Token2_1_1,
    /// The peer speaks 2.2.1/2.3.0 but wants the raw token in `Authorization`.
    RawToken,
    /// The peer refuses requests that carry `OCPI-from-*`/`OCPI-to-*` routing headers (a
    /// direct 2.2 peer that predates them).
    NoRoutingHeaders,
    /// The peer wants `address` (45) and `city` (45) of a 2.2.1/2.3.0 Location cut to the old
    /// 2.2.1-d2 lengths, and `state` to 20.
    ShortAddress,
}

impl Quirk {
    /// Every quirk, for documentation and `check-config`.
    pub const ALL: [Quirk; 4] = [
        Self::Base64Token2_1_1,
        Self::RawToken,
        Self::NoRoutingHeaders,
        Self::ShortAddress,
    ];

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base64Token2_1_1 => "base64_token_2_1_1",
            Self::RawToken => "raw_token",
            Self::NoRoutingHeaders => "no_routing_headers",
            Self::ShortAddress => "short_address",
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_registered() -> PeerStatus {
    PeerStatus::Registered
}

impl Peer {
    /// The negotiated version (a stored record from before versions were negotiated says 2.2.1).
    pub fn ocpi_version(&self) -> OcpiVersion {
        OcpiVersion::parse(&self.version).unwrap_or(OcpiVersion::V2_2_1)
    }

    /// Whether the peer has this quirk switched on.
    pub fn has_quirk(&self, quirk: Quirk) -> bool {
        self.options.quirks.contains(&quirk)
    }

    /// Whether our requests to it carry `OCPI-from-*`/`OCPI-to-*` (not for 2.1.1, not with
    /// [`Quirk::NoRoutingHeaders`]).
    pub fn wants_routing_headers(&self) -> bool {
        !self.ocpi_version().is_2_1_1() && !self.has_quirk(Quirk::NoRoutingHeaders)
    }

    /// URL of their endpoint for `module` with `role` (for `credentials` the role is ignored, as the spec advises).
    pub fn endpoint(&self, module: &ModuleId, role: InterfaceRole) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|e| {
                &e.identifier == module && (e.role == role || *module == ModuleId::Credentials)
            })
            .map(|e| e.url.as_str())
    }

    /// Whether this peer may act for party (`country_code`, `party_id`) on client-owned objects (tokens, command
    /// tokens): true if one of its credentials roles is that party, or if it has the HUB role (hubs relay their
    /// clients' objects, e.g. broadcast tokens). Case-insensitive.
    pub fn may_act_for(&self, country_code: &CountryCode, party_id: &PartyId) -> bool {
        self.roles.iter().any(|r| {
            r.role == crate::types::Role::Hub
                || (&r.country_code == country_code && &r.party_id == party_id)
        })
    }

    /// Their primary party (first role).
    pub fn party(&self) -> Option<(&CountryCode, &PartyId)> {
        self.roles.first().map(|r| (&r.country_code, &r.party_id))
    }

    /// Whether one of its credentials roles is HUB.
    pub fn is_hub(&self) -> bool {
        self.roles.iter().any(|r| r.role == crate::types::Role::Hub)
    }

    /// The party a request of ours for `module` addresses in `OCPI-to-*` when no specific
    /// party is meant ([`crate::Recipient::PeerParty`]): a hub by its HUB role (broadcast pushes
    /// of Locations and Tariffs, GET all via the hub); any other platform by the role that the
    /// module needs from a CPO's counterpart ([`counterpart_roles`]: EMSP for sessions, CDRs,
    /// tokens and commands), else its first role.
    pub fn party_for(&self, module: &ModuleId) -> Option<(&CountryCode, &PartyId)> {
        use crate::types::Role;
        let by_role = |role: &Role| self.roles.iter().find(|r| &r.role == role);
        by_role(&Role::Hub)
            .or_else(|| counterpart_roles(module).iter().find_map(by_role))
            .or_else(|| self.roles.first())
            .map(|r| (&r.country_code, &r.party_id))
    }
}

/// The roles that a CPO's request for `module` is meant for, most specific first: Locations and
/// Tariffs go to eMSPs and to the parties that publish them (NSP, NAP, OTHER); Sessions, CDRs,
/// Tokens and Commands belong to eMSPs; charging profiles to an SCSP or eMSP.
pub fn counterpart_roles(module: &ModuleId) -> &'static [crate::types::Role] {
    use crate::types::Role;
    match module {
        ModuleId::Locations | ModuleId::Tariffs => {
            &[Role::Emsp, Role::Nsp, Role::Nap, Role::OtherRole]
        }
        ModuleId::ChargingProfiles => &[Role::Scsp, Role::Emsp],
        _ => &[Role::Emsp],
    }
}

/// Where peers are persisted. The daemon implements it over its store and builds [`Peers`] with
/// [`Peers::load`] before anything else, so that parts of the daemon that only need to know the
/// peers (who receives what) do not depend on the backend.
pub trait PeerStore: Send + Sync + 'static {
    /// All persisted peers.
    fn load_peers(&self) -> Result<Vec<Peer>, OcpiError>;
    /// Persist (insert or replace by id) a peer. Must be durable before returning: the handshake answers only
    /// after this succeeded.
    fn save_peer(&self, peer: &Peer) -> Result<(), OcpiError>;
    /// Forget a peer (no error if absent).
    fn delete_peer(&self, id: &PeerId) -> Result<(), OcpiError>;
}

/// In-memory cache of peers with write-through to the backend (`CpoBackend::save_peer` / `delete_peer`).
#[derive(Clone)]
pub struct Peers {
    cache: Arc<RwLock<Vec<Peer>>>,
    store: Arc<dyn PeerStore>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("count", &self.all().len())
            .finish()
    }
}

impl Peers {
    /// Loads all peers from the store.
    pub fn load(store: Arc<dyn PeerStore>) -> Result<Self, OcpiError> {
        let peers = store.load_peers()?;
        Ok(Self {
            cache: Arc::new(RwLock::new(peers)),
            store,
        })
    }

    /// Snapshot of all peers.
    pub fn all(&self) -> Vec<Peer> {
        self.read().clone()
    }

    /// The peer with this id.
    pub fn get(&self, id: &PeerId) -> Option<Peer> {
        self.read().iter().find(|p| &p.id == id).cloned()
    }

    /// The peer whose `token_in` is `token`.
    pub fn by_token(&self, token: &str) -> Option<Peer> {
        self.read()
            .iter()
            .find(|p| p.token_in.expose() == token)
            .cloned()
    }

    /// Inserts or replaces (by id) a peer; persisted first. Any other peer holding the same `token_in` is an error.
    pub fn save(&self, peer: Peer) -> Result<(), OcpiError> {
        if self
            .read()
            .iter()
            .any(|p| p.id != peer.id && p.token_in == peer.token_in)
        {
            return Err(OcpiError::Server("token collision between peers".into()));
        }
        self.store.save_peer(&peer)?;
        let mut cache = self.write();
        cache.retain(|p| p.id != peer.id);
        cache.push(peer);
        Ok(())
    }

    /// Removes a peer; persisted first.
    pub fn remove(&self, id: &PeerId) -> Result<(), OcpiError> {
        self.store.delete_peer(id)?;
        self.write().retain(|p| &p.id != id);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Peer>> {
        // A poisoned lock only means a panic elsewhere while holding it; the Vec is still consistent.
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Peer>> {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(cc: &str, pid: &str, role: crate::types::Role) -> CredentialsRole {
        serde_json::from_value(serde_json::json!({
            "role": role.as_str(), "country_code": cc, "party_id": pid,
            "business_details": {"name": "x"}
        }))
        .expect("role")
    }

    fn with_roles(roles: Vec<CredentialsRole>) -> Peer {
        Peer {
            id: PeerId("P".into()),
            token_in: AuthToken::new("i"),
            token_out: AuthToken::new("o"),
            versions_url: "https://p.example/ocpi/versions".into(),
            version: "2.2.1".into(),
            endpoints: vec![],
            roles,
            registered_at: DateTime::now(),
            encode_token: true,
            initiated_by: Initiator::Us,
            status: PeerStatus::Registered,
            options: PeerOptions::default(),
        }
    }

    fn addressed(peer: &Peer, module: ModuleId) -> Option<String> {
        peer.party_for(&module)
            .map(|(cc, pid)| format!("{cc}{pid}"))
    }

    #[test]
    fn a_platform_with_several_roles_is_addressed_by_the_role_the_module_needs() {
        use crate::types::Role;
        let platform = with_roles(vec![
            role("DE", "CPX", Role::Cpo),
            role("DE", "EMX", Role::Emsp),
            role("DE", "NAV", Role::Nsp),
        ]);
        assert!(!platform.is_hub());
        for m in [
            ModuleId::Sessions,
            ModuleId::Cdrs,
            ModuleId::Tokens,
            ModuleId::Commands,
        ] {
            assert_eq!(addressed(&platform, m).as_deref(), Some("DEEMX"));
        }
        assert_eq!(
            addressed(&platform, ModuleId::Locations).as_deref(),
            Some("DEEMX")
        );
        // Only an NSP besides the CPO: Locations go to the NSP, sessions to the first role.
        let nsp = with_roles(vec![
            role("DE", "CPX", Role::Cpo),
            role("DE", "NAV", Role::Nsp),
        ]);
        assert_eq!(addressed(&nsp, ModuleId::Tariffs).as_deref(), Some("DENAV"));
        assert_eq!(
            addressed(&nsp, ModuleId::Sessions).as_deref(),
            Some("DECPX")
        );
        // A hub is addressed as the hub, whatever else it lists.
        let hub = with_roles(vec![
            role("NL", "EMA", Role::Emsp),
            role("NL", "HUB", Role::Hub),
        ]);
        assert!(hub.is_hub());
        assert_eq!(
            addressed(&hub, ModuleId::Locations).as_deref(),
            Some("NLHUB")
        );
        assert_eq!(addressed(&hub, ModuleId::Tokens).as_deref(), Some("NLHUB"));
        assert_eq!(addressed(&with_roles(vec![]), ModuleId::Cdrs), None);
    }

    #[test]
    fn peer_debug_masks_tokens_and_serde_round_trips() {
        let peer = Peer {
            id: PeerId("NLHUB".into()),
            token_in: AuthToken::new("secret-in"),
            token_out: AuthToken::new("secret-out"),
            versions_url: "https://hub.example/ocpi/versions".into(),
            version: "2.2.1".into(),
            endpoints: vec![],
            roles: vec![],
            registered_at: DateTime::now(),
            encode_token: true,
            initiated_by: Initiator::Us,
            status: PeerStatus::Registered,
            options: PeerOptions::default(),
        };
        let debug = format!("{peer:?}");
        assert!(!debug.contains("secret"), "{debug}");
        let json = serde_json::to_string(&peer).expect("json");
        let back: Peer = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, peer);
    }
}
