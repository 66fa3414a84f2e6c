//! Versions and version details: `Version`, `VersionDetails`, `Endpoint`, module ids and interface roles.
//! See <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/version_information_endpoint.asciidoc>.

use serde::{Deserialize, Serialize};

use super::ids::open_enum;

/// The version string of OCPI 2.2.1 (the shape of the internal model, with 2.3.0 additions).
pub const OCPI_2_2_1: &str = "2.2.1";

/// An OCPI version this crate speaks. Ordered oldest first, so `max` is "the highest".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OcpiVersion {
    /// OCPI 2.1.1.
    #[serde(rename = "2.1.1")]
    V2_1_1,
    /// OCPI 2.2.1.
    #[serde(rename = "2.2.1")]
    V2_2_1,
    /// OCPI 2.3.0.
    #[serde(rename = "2.3.0")]
    V2_3_0,
}

impl OcpiVersion {
    /// Every supported version, highest first.
    pub const ALL: [OcpiVersion; 3] = [Self::V2_3_0, Self::V2_2_1, Self::V2_1_1];

    /// The version string, e.g. `2.1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2_1_1 => "2.1.1",
            Self::V2_2_1 => "2.2.1",
            Self::V2_3_0 => "2.3.0",
        }
    }

    /// Parses a version string (`2.1.1`, `2.2.1`, `2.3.0`; surrounding blanks ignored).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "2.1.1" => Some(Self::V2_1_1),
            "2.2.1" => Some(Self::V2_2_1),
            "2.3.0" => Some(Self::V2_3_0),
            _ => None,
        }
    }

    /// 2.1.1 knows no interface roles, no routing headers and expects the raw token in `Authorization`.
    pub fn is_2_1_1(self) -> bool {
        self == Self::V2_1_1
    }
}

impl std::fmt::Display for OcpiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OcpiVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("unknown OCPI version {s:?} (2.1.1, 2.2.1 or 2.3.0)"))
    }
}

/// The highest version in both lists.
pub fn highest_mutual(ours: &[OcpiVersion], theirs: &[OcpiVersion]) -> Option<OcpiVersion> {
    ours.iter().filter(|v| theirs.contains(v)).max().copied()
}

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

/// One module endpoint of a version. 2.1.1 endpoints carry no role: the codec fills in the role a CPO's
/// counterpart implements (eMSP modules are the receiving side, except tokens and commands).
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
    fn versions_order_parse_and_mutual_choice() {
        assert!(
            OcpiVersion::V2_1_1 < OcpiVersion::V2_2_1 && OcpiVersion::V2_2_1 < OcpiVersion::V2_3_0
        );
        for v in OcpiVersion::ALL {
            assert_eq!(OcpiVersion::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_string(&v).expect("json"), format!("\"{v}\""));
        }
        assert_eq!(OcpiVersion::parse("2.2"), None);
        let ours = OcpiVersion::ALL;
        assert_eq!(
            highest_mutual(&ours, &[OcpiVersion::V2_1_1, OcpiVersion::V2_2_1]),
            Some(OcpiVersion::V2_2_1)
        );
        assert_eq!(
            highest_mutual(&[OcpiVersion::V2_1_1], &[OcpiVersion::V2_3_0]),
            None
        );
    }

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
