//! OCPP-J RPC error codes, spelled per version, and the error a decoder or handler reports.
//!
//! 1.6 keeps the typos of its specification (`FormationViolation`, `OccurenceConstraintViolation`);
//! 2.0.1 fixes them and adds `MessageTypeNotSupported` and `RpcFrameworkError`. Callers pick the
//! neutral [`ErrorCode`] and [`ErrorCode::as_str`] spells it for the negotiated version.

use crate::event::OcppVersion;

/// A CALLERROR error code, version-neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The action is not known (in this version).
    NotImplemented,
    /// The action is known but not supported.
    NotSupported,
    /// An internal error (e.g. storage failed); the station may retry.
    InternalError,
    /// The payload is incomplete.
    ProtocolError,
    /// A security problem (e.g. a CALL before BootNotification was accepted).
    SecurityError,
    /// Syntax or structure is wrong (1.6 `FormationViolation`, 2.0.1 `FormatViolation`).
    FormatViolation,
    /// A value violates a constraint (enum, length, pattern).
    PropertyConstraintViolation,
    /// Cardinality is wrong (1.6 `OccurenceConstraintViolation`).
    OccurrenceConstraintViolation,
    /// A value has the wrong type.
    TypeConstraintViolation,
    /// Anything else.
    GenericError,
    /// 2.0.1: the frame itself is broken (1.6 falls back to `ProtocolError`).
    RpcFrameworkError,
    /// 2.0.1: unknown MessageTypeId (1.6 falls back to `ProtocolError`).
    MessageTypeNotSupported,
}

impl ErrorCode {
    /// The code as the given version spells it.
    pub fn as_str(self, version: OcppVersion) -> &'static str {
        use ErrorCode::*;
        match (self, version) {
            (NotImplemented, _) => "NotImplemented",
            (NotSupported, _) => "NotSupported",
            (InternalError, _) => "InternalError",
            (ProtocolError, _) => "ProtocolError",
            (SecurityError, _) => "SecurityError",
            (FormatViolation, OcppVersion::V16) => "FormationViolation",
            (FormatViolation, OcppVersion::V201) => "FormatViolation",
            (PropertyConstraintViolation, _) => "PropertyConstraintViolation",
            (OccurrenceConstraintViolation, OcppVersion::V16) => "OccurenceConstraintViolation",
            (OccurrenceConstraintViolation, OcppVersion::V201) => "OccurrenceConstraintViolation",
            (TypeConstraintViolation, _) => "TypeConstraintViolation",
            (GenericError, _) => "GenericError",
            (RpcFrameworkError, OcppVersion::V16) => "ProtocolError",
            (RpcFrameworkError, OcppVersion::V201) => "RpcFrameworkError",
            (MessageTypeNotSupported, OcppVersion::V16) => "ProtocolError",
            (MessageTypeNotSupported, OcppVersion::V201) => "MessageTypeNotSupported",
        }
    }

    /// Parses a code received in a CALLERROR, accepting both versions' spellings.
    pub fn parse(s: &str) -> Option<Self> {
        use ErrorCode::*;
        Some(match s {
            "NotImplemented" => NotImplemented,
            "NotSupported" => NotSupported,
            "InternalError" => InternalError,
            "ProtocolError" => ProtocolError,
            "SecurityError" => SecurityError,
            "FormationViolation" | "FormatViolation" => FormatViolation,
            "PropertyConstraintViolation" => PropertyConstraintViolation,
            "OccurenceConstraintViolation" | "OccurrenceConstraintViolation" => {
                OccurrenceConstraintViolation
            }
            "TypeConstraintViolation" => TypeConstraintViolation,
            "GenericError" => GenericError,
            "RpcFrameworkError" => RpcFrameworkError,
            "MessageTypeNotSupported" => MessageTypeNotSupported,
            _ => return None,
        })
    }
}

/// Why a CALL could not be answered with a CALLRESULT: becomes a CALLERROR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {description}")]
pub struct CallFault {
    /// The error code.
    pub code: ErrorCode,
    /// A short human-readable description (at most 255 characters on the wire).
    pub description: String,
}

impl CallFault {
    /// A fault with a code and a description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        CallFault {
            code,
            description: description.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_spells_the_violation_codes_its_own_way() {
        assert_eq!(
            ErrorCode::FormatViolation.as_str(OcppVersion::V16),
            "FormationViolation"
        );
        assert_eq!(
            ErrorCode::FormatViolation.as_str(OcppVersion::V201),
            "FormatViolation"
        );
        assert_eq!(
            ErrorCode::OccurrenceConstraintViolation.as_str(OcppVersion::V16),
            "OccurenceConstraintViolation"
        );
        assert_eq!(
            ErrorCode::RpcFrameworkError.as_str(OcppVersion::V16),
            "ProtocolError"
        );
        assert_eq!(
            ErrorCode::RpcFrameworkError.as_str(OcppVersion::V201),
            "RpcFrameworkError"
        );
    }

    #[test]
    fn both_spellings_parse() {
        assert_eq!(
            ErrorCode::parse("FormationViolation"),
            Some(ErrorCode::FormatViolation)
        );
        assert_eq!(
            ErrorCode::parse("FormatViolation"),
            Some(ErrorCode::FormatViolation)
        );
        assert_eq!(ErrorCode::parse("nope"), None);
    }
}
