//! Everything the bridge stores beyond the station model of `state`: one type per record kind
//! (with its [`Record`] kind name and key) and every index, declared here and nowhere else.
//!
//! | kind | key | what |
//! |---|---|---|
//! | `session` ([`SessionRecord`]) | session id | what a Session and its CDR froze at start |
//! | `cdr` ([`StoredCdr`]) | CDR id (= session id) | the CDR exactly as it was created |
//! | `token` ([`StoredToken`]) | `CC\0PID\0UID\0TYPE` (upper case) | an eMSP token and its peer |
//! | `command` ([`CommandRecord`]) | uuid | an OCPI command in flight or done |
//! | `reservation` ([`Reservation`]) | OCPP reservation id | a reservation's lifecycle |
//! | `hub_client` ([`HubClient`]) | `{peer}\0{CC}\0{PID}` (upper case) | a party behind a hub: its ClientInfo, whether pushes to it are held |
//! | `token_pull` ([`TokenPull`]) | peer id | when the peer's tokens were last pulled (incremental) and reconciled (full) |
//! | `published` ([`Published`]) | `config` | which locations, stations and tariffs the configuration published at the last start (to notice removals) |
//! | `held_cdr` ([`HeldCdr`]) | CDR id (= session id) | a CDR whose price could not be computed: stored, not sent |
//! | `charging_profile` ([`ProfileRecord`]) | our transaction id | the OCPI charging profile a station accepted for a running session |
//! | `charging_profile_request` ([`ProfileRequest`]) | uuid | an OCPI ChargingProfiles request waiting for the station |
//! | `token_a` ([`TokenA`]) | uuid | a token A issued by the operator, or the configured one once used: single use |
//!
//! The kind names and the JSON shapes are on disk: never rename them.

use chrono::{DateTime, Utc};
use ocpi::types::{
    AuthMethod, Cdr, CdrLocation, CdrToken, ClientInfo, CommandResultType, SessionStatus, Tariff,
    Token,
};
use serde::{Deserialize, Serialize};
use state::{Index, Listing, Record};

/// Our transaction id → the session id, when the session began as a reservation.
pub const SESSION_OF_TX: Index = Index("session_of_tx");
/// `{station}\0{OCPP reservation id}` → the reservation's session id.
pub const RESERVATION_SESSION: Index = Index("reservation_session");
/// Session id → `{station}\0{OCPP reservation id}`.
pub const SESSION_RESERVATION: Index = Index("session_reservation");
/// `{session}\0{peer}` → how many charging periods the peer already has.
pub const PERIODS_SENT: Index = Index("session_periods_sent");
/// CDR id → the `Location` URL the eMSP returned for it.
pub const CDR_LOCATION_URL: Index = Index("cdr_location_url");
/// `{UID}\0{token key}` → the token's peer.
pub const TOKEN_BY_UID: Index = Index("token_uid");
/// 1.6 idTag alias (upper case) → the OCPI uid it stands for.
pub const IDTAG_ALIAS: Index = Index("idtag_alias");
/// `{CC}\0{PID}\0{RESERVATION_ID}` → OCPP reservation id.
pub const RESERVATION_BY_OCPI: Index = Index("reservation_ocpi");
/// `{station}\0{remoteStartId}` or `{station}\0~{IDTAG}` → START_SESSION command id.
pub const COMMAND_START: Index = Index("command_start");
/// Our transaction id → [`Owner`] (JSON) of a session started by a command.
pub const SESSION_OWNER: Index = Index("session_owner");

/// Original CDR id → the id of the credit CDR that cancels it.
pub const CDR_CREDITED: Index = Index("cdr_credited");
/// Sessions by `last_updated`, filed per peer and per peer and token party
/// (see the sessions listing module).
pub const SESSIONS_LISTED: Listing = Listing("sessions");
/// CDRs by `last_updated`, filed like Sessions.
pub const CDRS_LISTED: Listing = Listing("cdrs");
/// Sessions that may still need finishing (ACTIVE, RESERVATION, or COMPLETED without a CDR),
/// in one scope `open`: what the periodic recovery looks at.
pub const OPEN_SESSIONS: Listing = Listing("open_sessions");
/// `v1`, `v2` → when the listings of a store from an older version were built.
pub const LISTINGS_BUILT: Index = Index("listings_built");

/// Counter of 2.0.1 `remoteStartId`s.
pub const REMOTE_START_COUNTER: &str = "remote_start";
/// Counter of OCPP reservation ids.
pub const RESERVATION_COUNTER: &str = "reservation";
/// Counter of OCPP charging profile ids.
pub const PROFILE_COUNTER: &str = "charging_profile";

/// What a Session and its CDR need that was fixed when the session began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Session id (= CDR id): our transaction id, or a fresh id for a session that began as a
    /// reservation.
    pub id: String,
    /// The transaction behind it (`None` while it is only a reservation).
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// When the session record was created (a reservation's start).
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
    /// The peer that owns the token: Sessions and the CDR go there.
    pub peer: Option<String>,
    /// The token that started it.
    pub cdr_token: CdrToken,
    /// How the session was authorized.
    pub auth_method: AuthMethod,
    /// Reference from the eMSP (real-time answer or command).
    pub authorization_reference: Option<String>,
    /// OCPI location id.
    pub location_id: String,
    /// EVSE uid (`#NA` for a reservation without EVSE).
    pub evse_uid: String,
    /// Connector id (`#NA` likewise).
    pub connector_id: String,
    /// The location as configured at start (`None` for a reservation without EVSE).
    pub cdr_location: Option<CdrLocation>,
    /// IANA time zone of the location (tariff restrictions are local time).
    pub time_zone: String,
    /// Currency (the tariff's, else EUR).
    pub currency: String,
    /// The tariff that applied at start.
    pub tariff: Option<Tariff>,
    /// The station's meter serial number.
    pub meter_id: Option<String>,
    /// Session status as decided by the bridge (ACTIVE until the transaction completes).
    pub status: SessionStatus,
    /// When this record last changed.
    pub last_updated: DateTime<Utc>,
}

impl SessionRecord {
    /// Our transaction id behind this session, if charging began (a session that was only a
    /// reservation has none, also after it completed).
    pub fn tx_id(&self) -> Option<&str> {
        self.transaction_id.as_deref()
    }

    /// The token owner's party (routing headers name it).
    pub fn owner(&self) -> (String, String) {
        (
            self.cdr_token.country_code.as_str().to_owned(),
            self.cdr_token.party_id.as_str().to_owned(),
        )
    }

    /// The frozen tariff's id.
    pub fn tariff_id(&self) -> Option<&str> {
        self.tariff.as_ref().map(|t| t.id.as_str())
    }

    /// The location's time zone (UTC when unknown).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }
}

impl Record for SessionRecord {
    const KIND: &'static str = "session";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// A CDR as created (immutable once sent; corrections are credit CDRs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredCdr(pub Cdr);

impl Record for StoredCdr {
    const KIND: &'static str = "cdr";
    fn id(&self) -> String {
        self.0.id.as_str().to_owned()
    }
}

/// An eMSP token and the peer it came from (pushed, pulled or returned by real-time
/// authorization): Sessions and CDRs of that token go to that peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    /// The OCPI token.
    pub token: Token,
    /// Peer id it came from.
    pub peer: String,
    /// When it was last written (absent in records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_at: Option<DateTime<Utc>>,
    /// The full token reconcile that last listed it (its start time), if any: a reconcile
    /// removes the peer's tokens it did not list and that were stored before it began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled: Option<DateTime<Utc>>,
}

impl StoredToken {
    /// Storage key of a token: its identity (country code, party id, uid, type), upper case.
    pub fn key(cc: &str, pid: &str, uid: &str, kind: &str) -> String {
        format!(
            "{}\0{}\0{}\0{}",
            cc.to_ascii_uppercase(),
            pid.to_ascii_uppercase(),
            uid.to_ascii_uppercase(),
            kind.to_ascii_uppercase()
        )
    }
}

impl Record for StoredToken {
    const KIND: &'static str = "token";
    fn id(&self) -> String {
        let t = &self.token;
        Self::key(
            t.country_code.as_str(),
            t.party_id.as_str(),
            t.uid.as_str(),
            t.kind.as_str(),
        )
    }
}

/// A party behind a hub (key: peer and party): the ClientInfo the hub last PUT for it, and
/// whether the hub refused a push to it as unknown / not connected (OCPI 4001/4003).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubClient {
    /// The hub's peer id.
    pub peer: String,
    /// The party's country code.
    pub country_code: String,
    /// The party's id.
    pub party_id: String,
    /// The hub's ClientInfo for it, if it sent one.
    pub info: Option<ClientInfo>,
    /// When the hub last refused a push to this party as unreachable (OCPI 4001/4003), and
    /// why; cleared by a push it accepts or a ClientInfo CONNECTED.
    pub unreachable: Option<(DateTime<Utc>, String)>,
}

impl HubClient {
    /// Storage key of a party behind a hub.
    pub fn key(peer: &str, cc: &str, pid: &str) -> String {
        format!(
            "{peer}\0{}\0{}",
            cc.to_ascii_uppercase(),
            pid.to_ascii_uppercase()
        )
    }
}

impl Record for HubClient {
    const KIND: &'static str = "hub_client";
    fn id(&self) -> String {
        Self::key(&self.peer, &self.country_code, &self.party_id)
    }
}

/// Token pulls of one peer (key: peer id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPull {
    /// The peer.
    pub peer: String,
    /// Start time of the last successful pull, full or incremental: the next incremental
    /// pull's `date_from`.
    pub last_pull: DateTime<Utc>,
    /// Start time of the last successful full reconcile.
    pub last_full: DateTime<Utc>,
}

impl Record for TokenPull {
    const KIND: &'static str = "token_pull";
    fn id(&self) -> String {
        self.peer.clone()
    }
}

/// What the configuration published at the last start: location id → its station ids, and
/// the tariff ids. Compared with the configuration at the next start to publish removals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Location id → the ids of the stations configured there.
    pub locations: std::collections::BTreeMap<String, Vec<String>>,
    /// Tariff ids.
    pub tariffs: Vec<String>,
}

impl Published {
    /// The record's only key.
    pub const KEY: &'static str = "config";
}

impl Record for Published {
    const KIND: &'static str = "published";
    fn id(&self) -> String {
        Self::KEY.to_owned()
    }
}

/// A CDR whose price could not be computed (the pricing error), held back instead of being
/// sent with cost 0, until the operator releases it (`cdrs reprice ID`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldCdr {
    /// The CDR as rendered, with zero costs (never sent like this).
    pub cdr: Cdr,
    /// Why pricing failed.
    pub reason: String,
    /// When it was held.
    pub held_at: DateTime<Utc>,
}

impl Record for HeldCdr {
    const KIND: &'static str = "held_cdr";
    fn id(&self) -> String {
        self.cdr.id.as_str().to_owned()
    }
}

/// Where a token A came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAOrigin {
    /// `ocpi.token_a` of the configuration (stored only once a peer used it).
    Config,
    /// Issued by the operator (`ocpp-ocpi-bridge peers token-a`).
    Operator,
}

/// A token A (key: a uuid): single use. An operator-issued one is stored when issued; the
/// configured `ocpi.token_a` is stored when a peer registers with it. Once `used_by` is set,
/// the token answers HTTP 401.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenA {
    /// Record id (a uuid; never the token, keys are exported in clear).
    pub id: String,
    /// The token (masked by `export` unless `--with-secrets`).
    pub token: String,
    /// Where it came from.
    pub origin: TokenAOrigin,
    /// When it was issued (for the configured one: when it was used).
    pub issued_at: DateTime<Utc>,
    /// The peer that registered with it.
    pub used_by: Option<String>,
    /// When that peer registered.
    pub used_at: Option<DateTime<Utc>>,
}

impl Record for TokenA {
    const KIND: &'static str = "token_a";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// Who receives a command's result (and owns a session / reservation it created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The peer that sent the command.
    pub peer: String,
    /// The party it acted for.
    pub party: Option<(String, String)>,
}

/// Whether a command still waits for the station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Forwarded; the station has not answered.
    Pending,
    /// The result is queued.
    Done,
}

/// An OCPI command in flight (or finished).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Record id (a uuid).
    pub id: String,
    /// `START_SESSION`, `STOP_SESSION`, …
    pub command: String,
    /// The peer that sent it.
    pub peer: String,
    /// The party the result is addressed to.
    pub party: Option<(String, String)>,
    /// Where the result goes.
    pub response_url: String,
    /// The station it was forwarded to.
    pub station: String,
    /// Pending or done.
    pub status: CommandStatus,
    /// When it arrived.
    pub created_at: DateTime<Utc>,
    /// The result, once done.
    #[serde(default)]
    pub result: Option<CommandResultType>,
    /// When the result was queued.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Record for CommandRecord {
    const KIND: &'static str = "command";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// Lifecycle of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// ReserveNow sent, no answer yet.
    Requested,
    /// Accepted by the station.
    Active,
    /// CancelReservation sent by us.
    Cancelling,
    /// Over (cancelled, consumed, expired, refused).
    Ended,
}

/// A reservation (key: the OCPP integer id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    /// OCPP reservation id.
    pub id: i32,
    /// The eMSP's reservation id.
    pub reservation_id: String,
    /// The token owner's party.
    pub party: (String, String),
    /// The peer that reserved.
    pub peer: String,
    /// Where RESERVE_NOW results go (also a later CANCELED_RESERVATION).
    pub response_url: String,
    /// Station.
    pub station: String,
    /// EVSE, when one was reserved (or the station reported one Reserved).
    pub evse_id: Option<u32>,
    /// Expiry.
    pub expiry: DateTime<Utc>,
    /// Token uid.
    pub uid: String,
    /// Lifecycle state.
    pub state: ReservationState,
    /// The station reported the connector Reserved (a later Available ends it).
    #[serde(default)]
    pub seen_reserved: bool,
}

impl Reservation {
    /// Requested or active and not expired.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.state != ReservationState::Ended && self.expiry > now
    }

    /// Its [`RESERVATION_BY_OCPI`] key.
    pub fn index_key(&self) -> String {
        Self::key(&self.party.0, &self.party.1, &self.reservation_id)
    }

    /// The [`RESERVATION_BY_OCPI`] key of an eMSP's reservation id.
    pub fn key(cc: &str, pid: &str, reservation_id: &str) -> String {
        format!(
            "{}\0{}\0{}",
            cc.to_ascii_uppercase(),
            pid.to_ascii_uppercase(),
            reservation_id.to_ascii_uppercase()
        )
    }
}

impl Record for Reservation {
    const KIND: &'static str = "reservation";
    fn id(&self) -> String {
        self.id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_keys_ignore_case() {
        assert_eq!(
            StoredToken::key("nl", "ems", "abc", "RFID"),
            StoredToken::key("NL", "EMS", "ABC", "rfid")
        );
    }

    #[test]
    fn record_kinds_are_unique() {
        let mut kinds = [
            SessionRecord::KIND,
            StoredCdr::KIND,
            StoredToken::KIND,
            CommandRecord::KIND,
            Reservation::KIND,
            HubClient::KIND,
            TokenPull::KIND,
            Published::KIND,
            HeldCdr::KIND,
            TokenA::KIND,
        ];
        kinds.sort_unstable();
        let n = kinds.len();
        let mut v = kinds.to_vec();
        v.dedup();
        assert_eq!(v.len(), n);
    }
}

/// A charging profile an eMSP or SCSP set (through OCPI ChargingProfiles) on a running session
/// and the station accepted: its OCPP id (a new PUT replaces it under the same id, a DELETE
/// clears it by id) and who set it (changes reported by the station go there). Forgotten when
/// the session ends or the profile is cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRecord {
    /// Our transaction id (the key).
    pub transaction_id: String,
    /// The OCPI session id.
    pub session_id: String,
    /// The peer that set it.
    pub peer: String,
    /// The party it was set for (`OCPI-to-*` of updates).
    pub party: Option<(String, String)>,
    /// The OCPP `chargingProfileId` / `id`.
    pub profile_id: i32,
    /// Station id.
    pub station: String,
    /// EVSE number.
    pub evse_id: u32,
    /// When the station accepted it.
    pub set_at: DateTime<Utc>,
}

impl Record for ProfileRecord {
    const KIND: &'static str = "charging_profile";
    fn id(&self) -> String {
        self.transaction_id.clone()
    }
}

/// Which ChargingProfiles request a [`ProfileRequest`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileRequestKind {
    /// PUT (SetChargingProfile).
    Set,
    /// GET (ActiveChargingProfile).
    Get,
    /// DELETE (ClearProfile).
    Clear,
}

/// An OCPI ChargingProfiles request forwarded to a station and not answered yet: stored before
/// the ACCEPTED answer, removed in the transaction that queues its result. One left at start-up
/// was interrupted by a crash or restart and gets a REJECTED result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRequest {
    /// Record id (a uuid).
    pub id: String,
    /// Set, get or clear.
    pub kind: ProfileRequestKind,
    /// The peer that sent it.
    pub peer: String,
    /// The party the result is addressed to.
    pub party: Option<(String, String)>,
    /// Where the result goes.
    pub response_url: String,
    /// The OCPI session id.
    pub session_id: String,
    /// Station id.
    pub station: String,
    /// When it arrived.
    pub created_at: DateTime<Utc>,
}

impl Record for ProfileRequest {
    const KIND: &'static str = "charging_profile_request";
    fn id(&self) -> String {
        self.id.clone()
    }
}
