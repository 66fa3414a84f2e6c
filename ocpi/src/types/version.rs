//! Versions and version details: `Version`, `VersionDetails`, `Endpoint`, module ids and interface roles.
//! See <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/version_information_endpoint.asciidoc>.

use serde::{Deserialize, Serialize};

use super::ids::open_enum;

/// The only OCPI version this crate speaks.
pub const OCPI_2_2_1: &str = "2.2.1";

/// One entry of a versions list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Version number, e.g. `2.2.1`.
    pub version: String,
    /// URL of the version details.
    pub url: String,
}

/// Endpoints of one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDetails {
    /// Version number.
    pub version: String,
    /// Supported endpoints.
    pub endpoints: Vec<Endpoint>,
}

open_enum!(
    /// OCPI module identifier (lower case on the wire).
    ModuleId {
        /// CDRs.
        Cdrs = "cdrs",
        /// Charging profiles.
        ChargingProfiles = "chargingprofiles",
        /// Commands.
        Commands = "commands",
        /// Credentials and registration.
        Credentials = "credentials",
        /// Hub client info.
        HubClientInfo = "hubclientinfo",
        /// Locations.
        Locations = "locations",
        /// Sessions.
        Sessions = "sessions",
        /// Tariffs.
        Tariffs = "tariffs",
        /// Tokens.
        Tokens = "tokens",
    }
);

/// Which side of a module's interface an endpoint implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InterfaceRole {
    /// The data owner's interface.
    Sender,
    /// The interface that receives pushes.
    Receiver,
}

/// One module endpoint of a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Module identifier.
    pub identifier: ModuleId,
    /// Interface role.
    pub role: InterfaceRole,
    /// Endpoint URL.
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_details_round_trip_with_unknown_module() {
        let json = r#"{"version":"2.2.1","endpoints":[
            {"identifier":"credentials","role":"SENDER","url":"https://example.com/ocpi/2.2.1/credentials"},
            {"identifier":"locations","role":"RECEIVER","url":"https://example.com/ocpi/2.2.1/locations"},
            {"identifier":"nltnm-tokens","role":"SENDER","url":"https://example.com/x"}]}"#;
        let details: VersionDetails = serde_json::from_str(json).expect("parses");
        assert_eq!(details.endpoints[1].identifier, ModuleId::Locations);
        assert_eq!(details.endpoints[1].role, InterfaceRole::Receiver);
        assert_eq!(
            details.endpoints[2].identifier,
            ModuleId::Other("nltnm-tokens".into())
        );
        let back: VersionDetails =
            serde_json::from_str(&serde_json::to_string(&details).expect("json")).expect("parses");
        assert_eq!(back, details);
    }
}
