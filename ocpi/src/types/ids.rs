//! Identifier newtypes. Everything the spec types as `CiString` compares, hashes and orders ASCII-case-insensitively
//! while keeping the original spelling for output.
//!
//! Also home of [`open_enum!`], the macro for enums that must survive values from newer OCPI versions
//! (`Known | Other(String)`, hand-written serde — never `untagged`, see the crate docs on `arbitrary_precision`).

/// Declares a case-insensitive string id (`CiString` in the spec).
macro_rules! ci_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value (no validation; see the `validate` helpers for length checks).
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The value as received or configured (original case).
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Canonical key form (ASCII upper case) for maps and lookups.
            pub fn key(&self) -> String {
                self.0.to_ascii_uppercase()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.eq_ignore_ascii_case(&other.0)
            }
        }
        impl Eq for $name {}
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0.eq_ignore_ascii_case(other)
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0.eq_ignore_ascii_case(other)
            }
        }
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                for b in self.0.bytes() {
                    state.write_u8(b.to_ascii_uppercase());
                }
                state.write_u8(0xff);
            }
        }
        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0
                    .bytes()
                    .map(|b| b.to_ascii_uppercase())
                    .cmp(other.0.bytes().map(|b| b.to_ascii_uppercase()))
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Declares an open enum: known wire names plus `Other(String)` for values we don't know (yet).
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this crate does not know; kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $($wire => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok(Self::from(s.as_ref()))
            }
        }
    };
}

pub(crate) use open_enum;

ci_string!(
    /// ISO 3166-1 alpha-2 country code of a party (`CiString(2)`).
    CountryCode
);
ci_string!(
    /// Party id within a country (`CiString(3)`).
    PartyId
);
ci_string!(
    /// `Location.id` (`CiString(36)`).
    LocationId
);
ci_string!(
    /// `EVSE.uid` (`CiString(36)`), unique for all time.
    EvseUid
);
ci_string!(
    /// `Connector.id` (`CiString(36)`), unique within its EVSE.
    ConnectorId
);
ci_string!(
    /// `Tariff.id` (`CiString(36)`).
    TariffId
);
ci_string!(
    /// eMI3 EVSE id (`CiString(48)`), e.g. `BE*BEC*E041503001`.
    EvseId
);
ci_string!(
    /// `Session.id` (`CiString(36)`), unique per CPO party.
    SessionId
);
ci_string!(
    /// `CDR.id` (`CiString(39)`: at most 36 except for credit CDRs).
    CdrId
);
ci_string!(
    /// `Token.uid` (`CiString(36)`); a token is identified by (country_code, party_id, uid, type).
    TokenUid
);
ci_string!(
    /// eMSP's `reservation_id` of ReserveNow/CancelReservation (`CiString(36)`). Never sent to a station as is.
    ReservationId
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ci_strings_compare_and_hash_case_insensitively_but_keep_their_spelling() {
        let a = LocationId::new("Loc-1");
        let b = LocationId::new("LOC-1");
        assert_eq!(a, b);
        assert_eq!(a, "loc-1");
        let set: HashSet<_> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(serde_json::to_string(&a).expect("json"), "\"Loc-1\"");
        assert!(LocationId::new("a") < LocationId::new("B"));
    }
}
