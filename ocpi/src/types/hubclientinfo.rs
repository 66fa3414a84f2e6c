//! HubClientInfo: the connection state of a party behind a hub, as the hub pushes it to us
//! (`PUT hubclientinfo/{country_code}/{party_id}`).
//!
//! See `mod_hub_client_info.asciidoc` of OCPI 2.2.1. `ConnectionStatus` is an open enum: a value
//! this crate does not know is kept and treated as "not connected" ([`ClientInfo::connected`]).

use serde::{Deserialize, Serialize};

use super::common::Role;
use super::datetime::DateTime;
use super::ids::{CountryCode, PartyId, open_enum};
use super::validate::{Checker, ValidationErrors};

open_enum!(
    /// Whether a party behind a hub can be reached.
    ConnectionStatus {
        /// Online: requests can be sent.
        Connected = "CONNECTED",
        /// Temporarily not reachable.
        Offline = "OFFLINE",
        /// Known, but no connection yet.
        Planned = "PLANNED",
        /// No longer reachable (the hub's way to "delete" a client).
        Suspended = "SUSPENDED",
    }
);

/// A ClientInfo object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Party id of the connected party (`CiString(3)`).
    pub party_id: PartyId,
    /// Country code of the connected party (`CiString(2)`).
    pub country_code: CountryCode,
    /// Its role.
    pub role: Role,
    /// Its connection status.
    pub status: ConnectionStatus,
    /// When the hub last changed this object.
    pub last_updated: DateTime,
}

impl ClientInfo {
    /// True only for CONNECTED.
    pub fn connected(&self) -> bool {
        self.status == ConnectionStatus::Connected
    }

    /// Field lengths of the 2.2.1 table.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("ClientInfo");
        c.ci("country_code", self.country_code.as_str(), 2, 2);
        c.ci("party_id", self.party_id.as_str(), 3, 3);
        if self.status.as_str().is_empty() {
            c.bad("status", "missing");
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_info_round_trips_and_unknown_statuses_are_not_connected() {
        let json = r#"{"party_id":"EMA","country_code":"DE","role":"EMSP","status":"OFFLINE","last_updated":"2026-01-01T00:00:00Z"}"#;
        let info: ClientInfo = serde_json::from_str(json).expect("parses");
        assert_eq!(info.status, ConnectionStatus::Offline);
        assert!(!info.connected());
        assert_eq!(info.role, Role::Emsp);
        assert!(info.validate().is_ok());
        let back = serde_json::to_value(&info).unwrap();
        assert_eq!(back["status"], "OFFLINE");
        let mut other = info.clone();
        other.status = ConnectionStatus::from("SLEEPING");
        assert!(!other.connected());
        other.status = ConnectionStatus::Connected;
        assert!(other.connected());
        other.party_id = PartyId::new("TOOLONG");
        assert!(other.validate().is_err());
    }
}
