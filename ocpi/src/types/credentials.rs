//! Credentials object and the secret [`AuthToken`].
//!
//! Invariant: an [`AuthToken`] never shows up in `Debug` output or logs; it is serialised in clear only because the
//! wire format (and the persisted peer record) needs it. See
//! <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/credentials.asciidoc>.

use std::fmt;

use base64::Engine as _;
use rand::Rng as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::common::{BusinessDetails, Role};
use super::ids::{CountryCode, PartyId};
use super::validate::Checker;

/// Maximum token length allowed by the spec (`string(64)`).
pub const MAX_TOKEN_LEN: usize = 64;

/// A credentials token (A, B or C). Debug output is masked.
#[derive(Clone)]
pub struct AuthToken(SecretString);

impl AuthToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// A fresh random token of 64 alphanumeric characters.
    pub fn generate() -> Self {
        let s: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(MAX_TOKEN_LEN)
            .map(char::from)
            .collect();
        Self::new(s)
    }

    /// The token in clear. Only for the Authorization header and comparisons.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `Authorization` header value: `Token <base64(token)>` or `Token <token>`.
    pub fn header_value(&self, encode: bool) -> String {
        if encode {
            format!(
                "Token {}",
                base64::engine::general_purpose::STANDARD.encode(self.expose())
            )
        } else {
            format!("Token {}", self.expose())
        }
    }

    /// True for 1..=64 printable, non-space ASCII characters (U+0021–U+007E).
    pub fn is_well_formed(&self) -> bool {
        let t = self.expose();
        !t.is_empty() && t.len() <= MAX_TOKEN_LEN && t.bytes().all(|b| (0x21..=0x7e).contains(&b))
    }
}

impl PartialEq for AuthToken {
    fn eq(&self, other: &Self) -> bool {
        // Not constant-time; tokens are looked up, not guessed byte by byte over the network.
        self.expose() == other.expose()
    }
}
impl Eq for AuthToken {}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(***)")
    }
}

impl Serialize for AuthToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for AuthToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// One role of a platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsRole {
    /// The role.
    pub role: Role,
    /// Business details of this party.
    pub business_details: BusinessDetails,
    /// Party id.
    pub party_id: PartyId,
    /// Country code.
    pub country_code: CountryCode,
}

/// The credentials object exchanged during registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Token the *receiver of this object* must use to call the sender's platform.
    pub token: AuthToken,
    /// The sender's versions URL.
    pub url: String,
    /// Roles hosted by the sender's platform (non-empty).
    pub roles: Vec<CredentialsRole>,
}

impl Credentials {
    /// Checks the object against the 2.2.1 field table before anything of it is stored or
    /// used: token charset/length, `url` an absolute http(s) URL ≤ 255, at least one role,
    /// each role known, `country_code` two letters, `party_id` three alphanumerics,
    /// `business_details.name` ≤ 100, `website` a URL. The message names every bad field.
    pub fn check(&self) -> Result<(), String> {
        let mut c = Checker::new("Credentials");
        if !self.token.is_well_formed() {
            c.bad(
                "token",
                "must be 1..=64 printable non-space ASCII characters",
            );
        }
        c.url("url", self.url.trim(), 255);
        if self.roles.is_empty() {
            c.bad("roles", "must not be empty");
        }
        for (i, role) in self.roles.iter().enumerate() {
            c.nested(&format!("roles[{i}]"), |c| role.check(c));
        }
        c.finish().map_err(|e| e.to_string())
    }
}

impl CredentialsRole {
    fn check(&self, c: &mut Checker) {
        if matches!(self.role, Role::Other(_)) {
            c.bad("role", "unknown role");
        }
        let cc = self.country_code.as_str();
        if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) {
            c.bad("country_code", "must be 2 letters (ISO 3166-1 alpha-2)");
        }
        let pid = self.party_id.as_str();
        if pid.len() != 3 || !pid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            c.bad("party_id", "must be 3 letters or digits");
        }
        c.nested("business_details", |c| {
            c.string("name", &self.business_details.name, 100);
            if let Some(w) = &self.business_details.website {
                c.url("website", w, 255);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_token_is_masked_in_debug() {
        let json = r#"{
            "token": "ebf3b399-779f-4497-9b9d-ac6ad3cc44d2",
            "url": "https://example.com/ocpi/versions/",
            "roles": [{
                "role": "CPO",
                "business_details": {"name": "Example Operator", "logo": {
                    "url": "https://example.com/img/logo.jpg", "thumbnail": "https://example.com/img/logo_thumb.jpg",
                    "category": "OPERATOR", "type": "jpeg", "width": 512, "height": 512}},
                "party_id": "EXA",
                "country_code": "NL"
            }]
        }"#;
        let c: Credentials = serde_json::from_str(json).expect("parses");
        assert_eq!(c.roles[0].role, Role::Cpo);
        assert_eq!(c.roles[0].party_id, "exa");
        assert!(c.check().is_ok());
        let debug = format!("{c:?}");
        assert!(!debug.contains("ebf3b399"), "{debug}");
        let back: Credentials =
            serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("parses");
        assert_eq!(back, c);
    }

    #[test]
    fn check_names_every_bad_field() {
        let c: Credentials = serde_json::from_value(serde_json::json!({
            "token": "tok", "url": "ftp://x/versions",
            "roles": [{"role": "NOT_A_ROLE", "party_id": "ÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜ",
                "country_code": "NLD", "business_details": {"name": ""}}]
        }))
        .expect("parses");
        let e = c.check().unwrap_err();
        for field in [
            "url",
            "roles[0].role",
            "roles[0].party_id",
            "roles[0].country_code",
            "roles[0].business_details.name",
        ] {
            assert!(e.contains(&format!("{field}:")), "{field} in {e}");
        }
        let empty: Credentials = serde_json::from_value(serde_json::json!({
            "token": "tok", "url": "https://x/versions", "roles": []
        }))
        .expect("parses");
        assert!(empty.check().unwrap_err().contains("roles"));
    }

    #[test]
    fn generated_tokens_are_64_printable_chars_and_differ() {
        let a = AuthToken::generate();
        assert!(a.is_well_formed());
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, AuthToken::generate());
        assert!(!AuthToken::new("has space").is_well_formed());
    }

    #[test]
    fn header_value_encodes_base64_or_raw() {
        let t = AuthToken::new("abc");
        assert_eq!(t.header_value(true), "Token YWJj");
        assert_eq!(t.header_value(false), "Token abc");
    }
}
