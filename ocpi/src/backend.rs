//! [`CpoBackend`]: what the daemon provides to the OCPI side — our identity, the current Locations/Tariffs/Sessions/
//! CDRs, the token store, command execution and peer persistence — plus hooks for registration events.
//!
//! Invariants: list methods return a **stable order** (ideally creation order, so objects created while a peer
//! crawls appear on later pages); the server filters by `last_updated` and paginates in that order. List and lookup
//! methods get the calling peer and return only what that peer may see (Sessions/CDRs: those of the caller's
//! drivers). Sessions and CDRs are read a page at a time ([`CpoBackend::session_page`], [`CpoBackend::cdr_page`]),
//! narrowed to the requesting party when a hub names one (`OCPI-from-*`), so that a backend with an index by
//! `last_updated` answers a page without reading everything. Every method added after the first release has a default, so
//! implementations keep compiling; the defaults serve nothing (empty lists, unknown tokens, NOT_SUPPORTED).

use std::future::Future;

use crate::envelope::OcpiError;
use crate::peer::{Peer, PeerId};
use crate::server::{AdvertisedModule, Page, PageParams};
use crate::settings::Settings;
use crate::types::{
    Capability, Cdr, ChargingPreferences, ChargingPreferencesResponse, ChargingProfileResponse,
    ChargingProfileResponseType, ClientInfo, Command, CommandResponse, CommandResponseType,
    CountryCode, InterfaceRole, Location, LocationId, ModuleId, PartyId, Session, SessionId,
    SetChargingProfile, Tariff, Token, TokenType, TokenUid,
};

/// Implemented by the daemon. Methods are synchronous (reads of a local store); hooks are async.
pub trait CpoBackend: Send + Sync + 'static {
    /// Our identity and public URL.
    fn settings(&self) -> &Settings;

    /// All Locations visible to `caller`, in a stable order.
    fn locations(&self, caller: &Peer) -> Result<Vec<Location>, OcpiError>;

    /// One Location visible to `caller` (ids compare case-insensitively).
    fn location(&self, caller: &Peer, id: &LocationId) -> Result<Option<Location>, OcpiError> {
        Ok(self.locations(caller)?.into_iter().find(|l| &l.id == id))
    }

    /// All Tariffs visible to `caller`, in a stable order.
    fn tariffs(&self, caller: &Peer) -> Result<Vec<Tariff>, OcpiError>;

    /// All Sessions visible to `caller`, in a stable order. Default: none.
    fn sessions(&self, caller: &Peer) -> Result<Vec<Session>, OcpiError> {
        let _ = caller;
        Ok(Vec::new())
    }

    /// One page of the Sessions visible to `caller`, narrowed to the party `from` (the request's `OCPI-from-*`)
    /// when given. Default: [`CpoBackend::sessions`] filtered by the session's `cdr_token` party and sliced in
    /// memory.
    fn session_page(
        &self,
        caller: &Peer,
        from: Option<&(CountryCode, PartyId)>,
        params: &PageParams,
    ) -> Result<Page<Session>, OcpiError> {
        let items = self
            .sessions(caller)?
            .into_iter()
            .filter(|s| {
                from.is_none_or(|(cc, pid)| {
                    s.cdr_token.country_code == *cc && s.cdr_token.party_id == *pid
                })
            })
            .collect();
        Ok(params.page(items, |s| s.last_updated))
    }

    /// One Session visible to `caller` (ids compare case-insensitively).
    fn session(&self, caller: &Peer, id: &SessionId) -> Result<Option<Session>, OcpiError> {
        Ok(self.sessions(caller)?.into_iter().find(|s| &s.id == id))
    }

    /// Charging preferences PUT by the eMSP for a Session of theirs (already looked up). `Ok(None)` means the EVSE
    /// is not `CHARGING_PREFERENCES_CAPABLE` (answered HTTP 404 + OCPI 2001, as the spec prescribes). Default: `None`
    /// unless the session's EVSE has that capability, then `NOT_POSSIBLE`.
    fn charging_preferences(
        &self,
        caller: &Peer,
        session: &Session,
        preferences: ChargingPreferences,
    ) -> impl Future<Output = Result<Option<ChargingPreferencesResponse>, OcpiError>> + Send {
        let _ = preferences;
        let capable = self.location(caller, &session.location_id).map(|l| {
            l.and_then(|l| {
                l.evse(session.evse_uid.as_str()).map(|e| {
                    e.capabilities
                        .iter()
                        .flatten()
                        .any(|c| *c == Capability::ChargingPreferencesCapable)
                })
            })
            .unwrap_or(false)
        });
        async move { Ok(capable?.then_some(ChargingPreferencesResponse::NotPossible)) }
    }

    /// All CDRs visible to `caller`, in a stable order. Default: none.
    fn cdrs(&self, caller: &Peer) -> Result<Vec<Cdr>, OcpiError> {
        let _ = caller;
        Ok(Vec::new())
    }

    /// One page of the CDRs visible to `caller`, narrowed to the party `from` when given (see
    /// [`CpoBackend::session_page`]). Default: [`CpoBackend::cdrs`] filtered and sliced in memory.
    fn cdr_page(
        &self,
        caller: &Peer,
        from: Option<&(CountryCode, PartyId)>,
        params: &PageParams,
    ) -> Result<Page<Cdr>, OcpiError> {
        let items = self
            .cdrs(caller)?
            .into_iter()
            .filter(|c| {
                from.is_none_or(|(cc, pid)| {
                    c.cdr_token.country_code == *cc && c.cdr_token.party_id == *pid
                })
            })
            .collect();
        Ok(params.page(items, |c| c.last_updated))
    }

    /// The stored token (country_code, party_id, uid, type), compared case-insensitively. Default: unknown.
    fn token(
        &self,
        caller: &Peer,
        country_code: &CountryCode,
        party_id: &PartyId,
        uid: &TokenUid,
        kind: &TokenType,
    ) -> Result<Option<Token>, OcpiError> {
        let _ = (caller, country_code, party_id, uid, kind);
        Ok(None)
    }

    /// Inserts or replaces a token (key: country_code, party_id, uid, type). Already validated and checked against
    /// the URL and the caller's parties; PATCH arrives here merged into the stored token. Default: OCPI 3000.
    fn put_token(&self, caller: &Peer, token: Token) -> Result<(), OcpiError> {
        let _ = (caller, token);
        Err(OcpiError::Server(
            "tokens are not stored by this CPO".into(),
        ))
    }

    /// Executes (or forwards) a validated command and answers synchronously; the station's outcome goes later to
    /// `command.response_url()` via [`crate::Client::post_command_result`]. Default: NOT_SUPPORTED, timeout 0.
    fn command(
        &self,
        caller: &Peer,
        command: Command,
    ) -> impl Future<Output = Result<CommandResponse, OcpiError>> + Send {
        let _ = (caller, command);
        async { Ok(CommandResponse::new(CommandResponseType::NotSupported, 0)) }
    }

    /// A hub's ClientInfo PUT (`hubclientinfo/{cc}/{pid}`, already validated and checked against the URL), to be
    /// kept per calling peer. Default: accepted and not kept.
    fn put_client_info(
        &self,
        caller: &Peer,
        info: ClientInfo,
    ) -> impl Future<Output = Result<(), OcpiError>> + Send {
        let _ = (caller, info);
        async { Ok(()) }
    }

    /// The ClientInfo `caller` (a hub) last PUT for a party. Default: none.
    fn client_info(
        &self,
        caller: &Peer,
        country_code: &CountryCode,
        party_id: &PartyId,
    ) -> Result<Option<ClientInfo>, OcpiError> {
        let _ = (caller, country_code, party_id);
        Ok(None)
    }

    /// Executes a command like [`CpoBackend::command`], knowing the party that sent it: the request's
    /// `OCPI-from-*` headers (`None` without them). Its CommandResult goes to that party. Default: `command`.
    fn command_from(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        command: Command,
    ) -> impl Future<Output = Result<CommandResponse, OcpiError>> + Send {
        let _ = from;
        self.command(caller, command)
    }

    /// `PUT {chargingprofiles}/{session_id}`: set a charging profile on `session` (already looked up through
    /// [`CpoBackend::session`] for the caller, narrowed to `from`; validated, `response_url` checked). The
    /// station's verdict goes later to `set.response_url` as a ChargingProfileResult. Default: NOT_SUPPORTED.
    fn set_charging_profile(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        session: &Session,
        set: SetChargingProfile,
    ) -> impl Future<Output = Result<ChargingProfileResponse, OcpiError>> + Send {
        let _ = (caller, from, session, set);
        async {
            Ok(ChargingProfileResponse::new(
                ChargingProfileResponseType::NotSupported,
                0,
            ))
        }
    }

    /// `GET {chargingprofiles}/{session_id}?duration=&response_url=`: ask the station for the active profile of the
    /// next `duration` seconds; the ActiveChargingProfileResult goes to `response_url`. Default: NOT_SUPPORTED.
    fn get_active_charging_profile(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        session: &Session,
        duration: u32,
        response_url: String,
    ) -> impl Future<Output = Result<ChargingProfileResponse, OcpiError>> + Send {
        let _ = (caller, from, session, duration, response_url);
        async {
            Ok(ChargingProfileResponse::new(
                ChargingProfileResponseType::NotSupported,
                0,
            ))
        }
    }

    /// `DELETE {chargingprofiles}/{session_id}?response_url=`: clear the profile set on `session`; the
    /// ClearProfileResult goes to `response_url`. Default: NOT_SUPPORTED.
    fn clear_charging_profile(
        &self,
        caller: &Peer,
        from: Option<(CountryCode, PartyId)>,
        session: &Session,
        response_url: String,
    ) -> impl Future<Output = Result<ChargingProfileResponse, OcpiError>> + Send {
        let _ = (caller, from, session, response_url);
        async {
            Ok(ChargingProfileResponse::new(
                ChargingProfileResponseType::NotSupported,
                0,
            ))
        }
    }

    /// Modules listed in our version details (the versions endpoint is implicit). Default: credentials, locations,
    /// tariffs, sessions, cdrs as SENDER and tokens, commands, chargingprofiles, hubclientinfo as RECEIVER. `Settings::extra_modules`
    /// are added.
    fn advertised_modules(&self) -> Vec<AdvertisedModule> {
        [
            (ModuleId::Credentials, InterfaceRole::Sender),
            (ModuleId::Locations, InterfaceRole::Sender),
            (ModuleId::Tariffs, InterfaceRole::Sender),
            (ModuleId::Sessions, InterfaceRole::Sender),
            (ModuleId::Cdrs, InterfaceRole::Sender),
            (ModuleId::Tokens, InterfaceRole::Receiver),
            (ModuleId::Commands, InterfaceRole::Receiver),
            (ModuleId::ChargingProfiles, InterfaceRole::Receiver),
            (ModuleId::HubClientInfo, InterfaceRole::Receiver),
        ]
        .into_iter()
        .map(|(identifier, role)| AdvertisedModule { identifier, role })
        .collect()
    }

    /// Whether `token` is a token A that may still be used to register (versions, version details and the
    /// credentials POST). Default: it is `Settings::token_a` (without storage nothing can retire it; the daemon
    /// keeps every token A single use).
    fn token_a_valid(&self, token: &str) -> bool {
        self.settings()
            .token_a
            .as_ref()
            .is_some_and(|a| a.expose() == token)
    }

    /// Retires token A once `peer` registered with it (called while registrations are serialised, before the
    /// peer is stored). `Ok(false)`: it is no longer valid (used meanwhile), and the registration is refused with
    /// HTTP 401. Default: `Ok(true)`, nothing kept.
    fn use_token_a(&self, token: &str, peer: &PeerId) -> Result<bool, OcpiError> {
        let _ = (token, peer);
        Ok(true)
    }

    /// Called after a handshake (either direction, POST or PUT) completed; e.g. queue initial full pushes.
    fn peer_registered(&self, peer: &Peer) -> impl Future<Output = ()> + Send {
        let _ = peer;
        async {}
    }

    /// Called after a peer unregistered (their DELETE or ours).
    fn peer_unregistered(&self, id: &PeerId) -> impl Future<Output = ()> + Send {
        let _ = id;
        async {}
    }
}
