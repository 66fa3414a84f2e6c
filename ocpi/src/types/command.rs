//! Commands module objects: the five requests an eMSP POSTs to `{commands}/{command}` ([`Command`]), our synchronous
//! [`CommandResponse`] (the envelope's `data`) and the asynchronous [`CommandResult`] we POST, without envelope, to
//! the request's `response_url`.
//!
//! The token inside StartSession/ReserveNow is already authorized by the eMSP: only its shape is checked here, never
//! its `valid`/`whitelist`. See <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/mod_commands.asciidoc>.

use serde::{Deserialize, Serialize};

use super::common::DisplayText;
use super::datetime::DateTime;
use super::ids::{ConnectorId, EvseUid, LocationId, ReservationId, SessionId, open_enum};
use super::token::Token;
use super::validate::{Checker, ValidationErrors};
use crate::envelope::{OcpiError, parse_body};

open_enum!(
    /// The `{command}` URL segment.
    CommandType {
        /// Cancel a reservation.
        CancelReservation = "CANCEL_RESERVATION",
        /// Reserve an EVSE.
        ReserveNow = "RESERVE_NOW",
        /// Start a session.
        StartSession = "START_SESSION",
        /// Stop a session.
        StopSession = "STOP_SESSION",
        /// Unlock a connector (help desk only).
        UnlockConnector = "UNLOCK_CONNECTOR",
    }
);

/// Start a session for a token (`START_SESSION`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartSession {
    /// Where to POST the [`CommandResult`], URL(255).
    pub response_url: String,
    /// Token to start with (authorized by the eMSP).
    pub token: Token,
    /// Location id.
    pub location_id: LocationId,
    /// EVSE uid (required when `connector_id` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_uid: Option<EvseUid>,
    /// Connector id (required by EVSEs with START_SESSION_CONNECTOR_REQUIRED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<ConnectorId>,
    /// Reference to echo in the Session/CDR, CiString(36).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_reference: Option<String>,
}

/// Stop a session (`STOP_SESSION`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopSession {
    /// Where to POST the [`CommandResult`], URL(255).
    pub response_url: String,
    /// Session to stop.
    pub session_id: SessionId,
}

/// Reserve an EVSE (or any EVSE of a location) for a token (`RESERVE_NOW`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveNow {
    /// Where to POST the [`CommandResult`], URL(255).
    pub response_url: String,
    /// Token the reservation is for.
    pub token: Token,
    /// End of the reservation (UTC).
    pub expiry_date: DateTime,
    /// The eMSP's reservation id (same id again = replace); map it before talking to a station.
    pub reservation_id: ReservationId,
    /// Location id.
    pub location_id: LocationId,
    /// Specific EVSE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_uid: Option<EvseUid>,
    /// Reference to echo in the Session/CDR, CiString(36).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_reference: Option<String>,
}

/// Cancel a reservation (`CANCEL_RESERVATION`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelReservation {
    /// Where to POST the [`CommandResult`], URL(255).
    pub response_url: String,
    /// The eMSP's reservation id.
    pub reservation_id: ReservationId,
}

/// Unlock a connector (`UNLOCK_CONNECTOR`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockConnector {
    /// Where to POST the [`CommandResult`], URL(255).
    pub response_url: String,
    /// Location id.
    pub location_id: LocationId,
    /// EVSE uid.
    pub evse_uid: EvseUid,
    /// Connector id.
    pub connector_id: ConnectorId,
}

impl StartSession {
    /// Checks `response_url`, the token's shape, id lengths and that `evse_uid` accompanies `connector_id`.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("StartSession");
        c.url("response_url", &self.response_url, 255);
        c.nested("token", |c| self.token.check(c));
        c.ci("location_id", self.location_id.as_str(), 1, 36);
        c.opt_ci("evse_uid", self.evse_uid.as_ref().map(EvseUid::as_str), 36);
        c.opt_ci(
            "connector_id",
            self.connector_id.as_ref().map(ConnectorId::as_str),
            36,
        );
        if self.connector_id.is_some() && self.evse_uid.is_none() {
            c.bad("evse_uid", "required when connector_id is set");
        }
        c.opt_ci(
            "authorization_reference",
            self.authorization_reference.as_deref(),
            36,
        );
        c.finish()
    }
}

impl StopSession {
    /// Checks `response_url` and `session_id`.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("StopSession");
        c.url("response_url", &self.response_url, 255);
        c.ci("session_id", self.session_id.as_str(), 1, 36);
        c.finish()
    }
}

impl ReserveNow {
    /// Checks `response_url`, the token's shape and id lengths.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("ReserveNow");
        c.url("response_url", &self.response_url, 255);
        c.nested("token", |c| self.token.check(c));
        c.ci("reservation_id", self.reservation_id.as_str(), 1, 36);
        c.ci("location_id", self.location_id.as_str(), 1, 36);
        c.opt_ci("evse_uid", self.evse_uid.as_ref().map(EvseUid::as_str), 36);
        c.opt_ci(
            "authorization_reference",
            self.authorization_reference.as_deref(),
            36,
        );
        c.finish()
    }
}

impl CancelReservation {
    /// Checks `response_url` and `reservation_id`.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("CancelReservation");
        c.url("response_url", &self.response_url, 255);
        c.ci("reservation_id", self.reservation_id.as_str(), 1, 36);
        c.finish()
    }
}

impl UnlockConnector {
    /// Checks `response_url` and id lengths.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("UnlockConnector");
        c.url("response_url", &self.response_url, 255);
        c.ci("location_id", self.location_id.as_str(), 1, 36);
        c.ci("evse_uid", self.evse_uid.as_str(), 1, 36);
        c.ci("connector_id", self.connector_id.as_str(), 1, 36);
        c.finish()
    }
}

/// One command request. Serialised externally tagged (`{"START_SESSION": {...}}`) for the daemon's own storage; on
/// the wire the type is the URL segment and the body is the inner object (see [`Command::from_body`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Command {
    /// `START_SESSION`.
    StartSession(StartSession),
    /// `STOP_SESSION`.
    StopSession(StopSession),
    /// `RESERVE_NOW`.
    ReserveNow(ReserveNow),
    /// `CANCEL_RESERVATION`.
    CancelReservation(CancelReservation),
    /// `UNLOCK_CONNECTOR`.
    UnlockConnector(UnlockConnector),
}

impl Command {
    /// Parses a request body for `kind`: body not JSON → [`OcpiError::BodyNotJson`] (HTTP 400), wrong shape or
    /// unknown command type → [`OcpiError::InvalidParameters`] (2001). Does not call [`Command::validate`].
    pub fn from_body(kind: &CommandType, body: &[u8]) -> Result<Self, OcpiError> {
        Ok(match kind {
            CommandType::StartSession => Self::StartSession(parse_body(body)?),
            CommandType::StopSession => Self::StopSession(parse_body(body)?),
            CommandType::ReserveNow => Self::ReserveNow(parse_body(body)?),
            CommandType::CancelReservation => Self::CancelReservation(parse_body(body)?),
            CommandType::UnlockConnector => Self::UnlockConnector(parse_body(body)?),
            CommandType::Other(other) => {
                return Err(OcpiError::InvalidParameters(format!(
                    "unknown command type {other:?}"
                )));
            }
        })
    }

    /// The command's type.
    pub fn kind(&self) -> CommandType {
        match self {
            Self::StartSession(_) => CommandType::StartSession,
            Self::StopSession(_) => CommandType::StopSession,
            Self::ReserveNow(_) => CommandType::ReserveNow,
            Self::CancelReservation(_) => CommandType::CancelReservation,
            Self::UnlockConnector(_) => CommandType::UnlockConnector,
        }
    }

    /// Where the asynchronous [`CommandResult`] goes.
    pub fn response_url(&self) -> &str {
        match self {
            Self::StartSession(c) => &c.response_url,
            Self::StopSession(c) => &c.response_url,
            Self::ReserveNow(c) => &c.response_url,
            Self::CancelReservation(c) => &c.response_url,
            Self::UnlockConnector(c) => &c.response_url,
        }
    }

    /// The token carried by START_SESSION / RESERVE_NOW.
    pub fn token(&self) -> Option<&Token> {
        match self {
            Self::StartSession(c) => Some(&c.token),
            Self::ReserveNow(c) => Some(&c.token),
            _ => None,
        }
    }

    /// Validates the inner object.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        match self {
            Self::StartSession(c) => c.validate(),
            Self::StopSession(c) => c.validate(),
            Self::ReserveNow(c) => c.validate(),
            Self::CancelReservation(c) => c.validate(),
            Self::UnlockConnector(c) => c.validate(),
        }
    }
}

/// Whether we (the CPO, not the station) accept a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandResponseType {
    /// Not supported by this CPO/charger/EVSE.
    NotSupported,
    /// Rejected by the CPO (e.g. station offline, not the eMSP's session).
    Rejected,
    /// Accepted and forwarded; a [`CommandResult`] follows.
    Accepted,
    /// The session is unknown.
    UnknownSession,
}

/// Our synchronous answer (the envelope's `data`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// Verdict.
    pub result: CommandResponseType,
    /// Seconds the eMSP should wait for the [`CommandResult`].
    pub timeout: u32,
    /// Human-readable explanation, possibly in several languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Vec<DisplayText>>,
}

impl CommandResponse {
    /// A response without message.
    pub fn new(result: CommandResponseType, timeout: u32) -> Self {
        Self {
            result,
            timeout,
            message: None,
        }
    }

    /// Adds an English message.
    pub fn with_message(mut self, text: impl Into<String>) -> Self {
        self.message = Some(vec![DisplayText {
            language: "en".into(),
            text: text.into(),
        }]);
        self
    }
}

/// Outcome at the station.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandResultType {
    /// Accepted by the station.
    Accepted,
    /// The CPO canceled the reservation.
    CanceledReservation,
    /// EVSE occupied.
    EvseOccupied,
    /// EVSE inoperative or faulted.
    EvseInoperative,
    /// Execution failed.
    Failed,
    /// Not supported by the station.
    NotSupported,
    /// Rejected by the station.
    Rejected,
    /// No answer from the station in time.
    Timeout,
    /// Reservation unknown to the station.
    UnknownReservation,
}

/// The asynchronous result, POSTed as bare body to `response_url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Outcome.
    pub result: CommandResultType,
    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Vec<DisplayText>>,
}

impl CommandResult {
    /// A result without message.
    pub fn new(result: CommandResultType) -> Self {
        Self {
            result,
            message: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> serde_json::Value {
        serde_json::json!({"country_code": "DE", "party_id": "TNM", "uid": "app-1", "type": "APP_USER",
            "contract_id": "DE8ACC12E46L89", "issuer": "TheNewMotion", "valid": true, "whitelist": "NEVER",
            "last_updated": "2019-06-23T08:11:00Z"})
    }

    fn body(v: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(v).expect("json")
    }

    #[test]
    fn every_command_parses_validates_and_round_trips() {
        let url = "https://emsp.example/ocpi/emsp/2.2.1/commands/X/42";
        let cases = [
            (
                "START_SESSION",
                serde_json::json!({"response_url": url, "token": token(), "location_id": "LOC1",
                    "evse_uid": "E1", "connector_id": "1", "authorization_reference": "ref"}),
            ),
            (
                "STOP_SESSION",
                serde_json::json!({"response_url": url, "session_id": "S1"}),
            ),
            (
                "RESERVE_NOW",
                serde_json::json!({"response_url": url, "token": token(), "expiry_date": "2020-01-01T12:00:00Z",
                    "reservation_id": "R1", "location_id": "LOC1"}),
            ),
            (
                "CANCEL_RESERVATION",
                serde_json::json!({"response_url": url, "reservation_id": "R1"}),
            ),
            (
                "UNLOCK_CONNECTOR",
                serde_json::json!({"response_url": url, "location_id": "L", "evse_uid": "E", "connector_id": "1"}),
            ),
        ];
        for (kind, json) in cases {
            let kind = CommandType::from(kind);
            let cmd = Command::from_body(&kind, &body(&json)).expect("parses");
            assert_eq!(cmd.kind(), kind);
            assert_eq!(cmd.response_url(), url);
            assert!(cmd.validate().is_ok(), "{kind}: {:?}", cmd.validate());
            let stored = serde_json::to_string(&cmd).expect("json");
            assert!(stored.starts_with(&format!("{{\"{kind}\":")), "{stored}");
            let back: Command = serde_json::from_str(&stored).expect("parses back");
            assert_eq!(back, cmd);
        }
    }

    #[test]
    fn bad_bodies_and_unknown_types_are_refused() {
        let stop = serde_json::json!({"response_url": "not a url", "session_id": ""});
        let cmd = Command::from_body(&CommandType::StopSession, &body(&stop)).expect("parses");
        let e = cmd.validate().expect_err("invalid");
        assert!(e.has("response_url") && e.has("session_id"), "{e}");
        let long = serde_json::json!({"response_url": format!("https://x/{}", "a".repeat(260)),
            "reservation_id": "R"});
        let cmd =
            Command::from_body(&CommandType::CancelReservation, &body(&long)).expect("parses");
        assert!(cmd.validate().expect_err("too long").has("response_url"));
        let start = serde_json::json!({"response_url": "https://x/y", "token": token(),
            "location_id": "L", "connector_id": "1"});
        let cmd = Command::from_body(&CommandType::StartSession, &body(&start)).expect("parses");
        assert!(cmd.validate().expect_err("invalid").has("evse_uid"));
        assert!(matches!(
            Command::from_body(
                &CommandType::StartSession,
                br#"{"response_url": "https://x/y"}"#
            ),
            Err(OcpiError::InvalidParameters(_))
        ));
        assert!(matches!(
            Command::from_body(&CommandType::StopSession, b"{nope"),
            Err(OcpiError::BodyNotJson(_))
        ));
        assert!(matches!(
            Command::from_body(&CommandType::from("SELF_DESTRUCT"), b"{}"),
            Err(OcpiError::InvalidParameters(_))
        ));
    }

    #[test]
    fn responses_and_results_round_trip() {
        let r = CommandResponse::new(CommandResponseType::UnknownSession, 30)
            .with_message("no such session");
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"result": "UNKNOWN_SESSION", "timeout": 30,
                "message": [{"language": "en", "text": "no such session"}]})
        );
        assert_eq!(
            serde_json::from_value::<CommandResponse>(json).expect("parses"),
            r
        );
        for v in [
            "ACCEPTED",
            "CANCELED_RESERVATION",
            "EVSE_OCCUPIED",
            "EVSE_INOPERATIVE",
            "FAILED",
            "NOT_SUPPORTED",
            "REJECTED",
            "TIMEOUT",
            "UNKNOWN_RESERVATION",
        ] {
            let t: CommandResultType = serde_json::from_str(&format!("\"{v}\"")).expect(v);
            assert_eq!(serde_json::to_string(&t).expect("json"), format!("\"{v}\""));
        }
        assert_eq!(
            serde_json::to_string(&CommandResult::new(CommandResultType::Timeout)).expect("json"),
            r#"{"result":"TIMEOUT"}"#
        );
    }
}
