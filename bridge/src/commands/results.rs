//! Pure mappings of the command flow: a station's answer (or failure) → the OCPI
//! CommandResult, what stored connector statuses say about a rejected start, and how an OCPI
//! token is presented to a station of each OCPP version. Every row has a test.

use ocpi::types::{CommandResultType, Token, TokenType};
use ocpp::{CallAnswer, CallFailure, ConnectorStatus, IdToken, IdTokenKind, OcppVersion};
use ocpp::{ReservationStatus, UnlockStatus};

use crate::tokens;

/// The EVSE's condition as far as the stored connector statuses tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvseHint {
    /// Nothing known against it.
    Free,
    /// In use (a cable or a transaction).
    Occupied,
    /// Faulted or unavailable.
    Inoperative,
}

/// The CommandResult for a station's answer. `hint` explains a rejected start.
pub fn result_for_answer(answer: &CallAnswer, hint: EvseHint) -> CommandResultType {
    use CommandResultType as R;
    match answer {
        CallAnswer::Start { accepted: true, .. } => R::Accepted,
        CallAnswer::Start {
            accepted: false, ..
        } => match hint {
            EvseHint::Occupied => R::EvseOccupied,
            EvseHint::Inoperative => R::EvseInoperative,
            EvseHint::Free => R::Rejected,
        },
        CallAnswer::Stop { accepted: true } => R::Accepted,
        CallAnswer::Stop { accepted: false } => R::Rejected,
        CallAnswer::Reserve(ReservationStatus::Accepted) => R::Accepted,
        CallAnswer::Reserve(ReservationStatus::Occupied) => R::EvseOccupied,
        CallAnswer::Reserve(ReservationStatus::Faulted | ReservationStatus::Unavailable) => {
            R::EvseInoperative
        }
        CallAnswer::Reserve(ReservationStatus::Rejected) => R::Rejected,
        CallAnswer::Cancel { accepted: true } => R::Accepted,
        CallAnswer::Cancel { accepted: false } => R::UnknownReservation,
        CallAnswer::Unlock(UnlockStatus::Unlocked) => R::Accepted,
        CallAnswer::Unlock(UnlockStatus::UnlockFailed) => R::Failed,
        CallAnswer::Unlock(UnlockStatus::NotSupported) => R::NotSupported,
        CallAnswer::Unlock(UnlockStatus::OngoingAuthorizedTransaction) => R::EvseOccupied,
        CallAnswer::Unlock(UnlockStatus::UnknownConnector) => R::Rejected,
        // Not answers to a command (trigger, status query, smart charging): never expected here.
        CallAnswer::Trigger(_)
        | CallAnswer::TransactionStatus { .. }
        | CallAnswer::ChargingProfile { .. }
        | CallAnswer::CompositeSchedule { .. }
        | CallAnswer::ClearProfile { .. } => R::Failed,
    }
}

/// The CommandResult when the station gave no CALLRESULT.
pub fn result_for_failure(failure: &CallFailure) -> CommandResultType {
    use CommandResultType as R;
    match failure {
        CallFailure::Timeout => R::Timeout,
        CallFailure::CallError { code, .. }
            if code == "NotImplemented" || code == "NotSupported" =>
        {
            R::NotSupported
        }
        CallFailure::NotSupportedByVersion { .. } => R::NotSupported,
        CallFailure::CallError { .. }
        | CallFailure::Disconnected
        | CallFailure::Busy
        | CallFailure::InvalidResponse { .. }
        | CallFailure::InvalidRequest { .. } => R::Failed,
    }
}

/// Whether a stored OCPP connector status means "in use".
fn in_use(status: &str) -> bool {
    matches!(
        ConnectorStatus::parse(status),
        Some(
            ConnectorStatus::Preparing
                | ConnectorStatus::Charging
                | ConnectorStatus::SuspendedEV
                | ConnectorStatus::SuspendedEVSE
                | ConnectorStatus::Finishing
                | ConnectorStatus::Occupied
        )
    )
}

fn inoperative(status: &str) -> bool {
    matches!(
        ConnectorStatus::parse(status),
        Some(ConnectorStatus::Faulted | ConnectorStatus::Unavailable)
    )
}

/// What the stored connector statuses `(evse, connector, status)` say about `evse` (`None`: the
/// station as a whole — every EVSE must be unusable for a verdict).
pub fn evse_hint(connectors: &[(u32, u32, String)], evse: Option<u32>) -> EvseHint {
    if connectors.iter().any(|(e, _, s)| *e == 0 && inoperative(s)) {
        return EvseHint::Inoperative;
    }
    let of = |e: u32| -> Vec<&str> {
        connectors
            .iter()
            .filter(|(ev, c, _)| *ev == e && *c != 0)
            .map(|(_, _, s)| s.as_str())
            .collect()
    };
    let judge = |statuses: &[&str]| -> EvseHint {
        if statuses.iter().any(|s| in_use(s)) {
            EvseHint::Occupied
        } else if !statuses.is_empty() && statuses.iter().all(|s| inoperative(s)) {
            EvseHint::Inoperative
        } else {
            EvseHint::Free
        }
    };
    match evse {
        Some(e) => judge(&of(e)),
        None => {
            let mut evses: Vec<u32> = connectors
                .iter()
                .map(|(e, _, _)| *e)
                .filter(|e| *e != 0)
                .collect();
            evses.sort_unstable();
            evses.dedup();
            let verdicts: Vec<EvseHint> = evses.iter().map(|e| judge(&of(*e))).collect();
            if verdicts.is_empty() || verdicts.contains(&EvseHint::Free) {
                EvseHint::Free
            } else if verdicts.contains(&EvseHint::Occupied) {
                EvseHint::Occupied
            } else {
                EvseHint::Inoperative
            }
        }
    }
}

/// OCPI token type → 2.0.1 idToken type.
pub fn id_token_kind(t: &TokenType) -> IdTokenKind {
    match t {
        TokenType::Rfid => IdTokenKind::Iso14443,
        TokenType::AdHocUser => IdTokenKind::Local,
        _ => IdTokenKind::Central,
    }
}

/// The identifier to send a station for an OCPI token (1.6: the ≤ 20 character alias).
pub fn station_id_token(version: OcppVersion, token: &Token) -> IdToken {
    match version {
        OcppVersion::V16 => IdToken {
            id: tokens::alias(token.uid.as_str()),
            kind: IdTokenKind::IdTag,
        },
        OcppVersion::V201 => IdToken {
            id: token.uid.as_str().to_owned(),
            kind: id_token_kind(&token.kind),
        },
    }
}

#[cfg(test)]
mod tests;
