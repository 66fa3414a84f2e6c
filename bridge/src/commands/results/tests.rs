//! Tests of the command mappings: every row of the CommandResult mapping, the EVSE hints and
//! the station identifiers.

use super::*;
use CommandResultType as R;

fn start(accepted: bool) -> CallAnswer {
    CallAnswer::Start {
        accepted,
        transaction_id: None,
    }
}

#[test]
fn every_station_answer_maps_to_its_command_result() {
    let rows: Vec<(CallAnswer, EvseHint, CommandResultType)> = vec![
        // START_SESSION
        (start(true), EvseHint::Free, R::Accepted),
        (start(true), EvseHint::Occupied, R::Accepted),
        (start(false), EvseHint::Free, R::Rejected),
        (start(false), EvseHint::Occupied, R::EvseOccupied),
        (start(false), EvseHint::Inoperative, R::EvseInoperative),
        (
            CallAnswer::Start {
                accepted: true,
                transaction_id: Some("tx-1".into()),
            },
            EvseHint::Free,
            R::Accepted,
        ),
        // STOP_SESSION
        (
            CallAnswer::Stop { accepted: true },
            EvseHint::Free,
            R::Accepted,
        ),
        (
            CallAnswer::Stop { accepted: false },
            EvseHint::Free,
            R::Rejected,
        ),
        // RESERVE_NOW
        (
            CallAnswer::Reserve(ReservationStatus::Accepted),
            EvseHint::Free,
            R::Accepted,
        ),
        (
            CallAnswer::Reserve(ReservationStatus::Occupied),
            EvseHint::Free,
            R::EvseOccupied,
        ),
        (
            CallAnswer::Reserve(ReservationStatus::Faulted),
            EvseHint::Free,
            R::EvseInoperative,
        ),
        (
            CallAnswer::Reserve(ReservationStatus::Unavailable),
            EvseHint::Free,
            R::EvseInoperative,
        ),
        (
            CallAnswer::Reserve(ReservationStatus::Rejected),
            EvseHint::Free,
            R::Rejected,
        ),
        // CANCEL_RESERVATION
        (
            CallAnswer::Cancel { accepted: true },
            EvseHint::Free,
            R::Accepted,
        ),
        (
            CallAnswer::Cancel { accepted: false },
            EvseHint::Free,
            R::UnknownReservation,
        ),
        // UNLOCK_CONNECTOR
        (
            CallAnswer::Unlock(UnlockStatus::Unlocked),
            EvseHint::Free,
            R::Accepted,
        ),
        (
            CallAnswer::Unlock(UnlockStatus::UnlockFailed),
            EvseHint::Free,
            R::Failed,
        ),
        (
            CallAnswer::Unlock(UnlockStatus::NotSupported),
            EvseHint::Free,
            R::NotSupported,
        ),
        (
            CallAnswer::Unlock(UnlockStatus::OngoingAuthorizedTransaction),
            EvseHint::Free,
            R::EvseOccupied,
        ),
        (
            CallAnswer::Unlock(UnlockStatus::UnknownConnector),
            EvseHint::Free,
            R::Rejected,
        ),
        // Answers to calls commands never make.
        (
            CallAnswer::Trigger(ocpp::TriggerStatus::Accepted),
            EvseHint::Free,
            R::Failed,
        ),
    ];
    for (answer, hint, want) in rows {
        assert_eq!(
            result_for_answer(&answer, hint),
            want,
            "{answer:?} {hint:?}"
        );
    }
}

#[test]
fn every_call_failure_maps_to_its_command_result() {
    let error = |code: &str| CallFailure::CallError {
        code: code.into(),
        description: "x".into(),
        details: serde_json::json!({}),
    };
    let rows = [
        (error("NotImplemented"), R::NotSupported),
        (error("NotSupported"), R::NotSupported),
        (error("InternalError"), R::Failed),
        (error("GenericError"), R::Failed),
        (error("SecurityError"), R::Failed),
        (error("FormationViolation"), R::Failed),
        (error("PropertyConstraintViolation"), R::Failed),
        (CallFailure::Timeout, R::Timeout),
        (CallFailure::Disconnected, R::Failed),
        (CallFailure::Busy, R::Failed),
        (
            CallFailure::InvalidResponse {
                reason: "Jammed".into(),
            },
            R::Failed,
        ),
        (
            CallFailure::InvalidRequest {
                reason: "idTag too long".into(),
            },
            R::Failed,
        ),
        (
            CallFailure::NotSupportedByVersion {
                version: OcppVersion::V16,
                reason: "x".into(),
            },
            R::NotSupported,
        ),
    ];
    for (failure, want) in rows {
        assert_eq!(result_for_failure(&failure), want, "{failure:?}");
    }
}

fn c(evse: u32, connector: u32, status: &str) -> (u32, u32, String) {
    (evse, connector, status.to_owned())
}

#[test]
fn stored_statuses_explain_a_rejected_start() {
    let free = [c(1, 1, "Available"), c(2, 1, "Available")];
    assert_eq!(evse_hint(&free, Some(1)), EvseHint::Free);
    assert_eq!(evse_hint(&free, None), EvseHint::Free);
    assert_eq!(evse_hint(&[], Some(1)), EvseHint::Free);
    assert_eq!(evse_hint(&[], None), EvseHint::Free);

    for busy in [
        "Preparing",
        "Charging",
        "SuspendedEV",
        "SuspendedEVSE",
        "Finishing",
        "Occupied",
    ] {
        let s = [c(1, 1, busy), c(2, 1, "Available")];
        assert_eq!(evse_hint(&s, Some(1)), EvseHint::Occupied, "{busy}");
        assert_eq!(evse_hint(&s, Some(2)), EvseHint::Free, "{busy}");
        assert_eq!(
            evse_hint(&s, None),
            EvseHint::Free,
            "{busy}: EVSE 2 is free"
        );
    }
    for broken in ["Faulted", "Unavailable"] {
        let s = [c(1, 1, broken), c(2, 1, "Charging")];
        assert_eq!(evse_hint(&s, Some(1)), EvseHint::Inoperative, "{broken}");
        assert_eq!(evse_hint(&s, None), EvseHint::Occupied, "{broken}");
        // The station as a whole (1.6 connector 0) decides for every EVSE.
        let s = [c(0, 0, broken), c(1, 1, "Available")];
        assert_eq!(evse_hint(&s, Some(1)), EvseHint::Inoperative, "{broken}");
        assert_eq!(evse_hint(&s, None), EvseHint::Inoperative, "{broken}");
    }
    // One of two connectors of an EVSE in use: occupied; one faulted only: not inoperative.
    let s = [c(1, 1, "Charging"), c(1, 2, "Available")];
    assert_eq!(evse_hint(&s, Some(1)), EvseHint::Occupied);
    let s = [c(1, 1, "Faulted"), c(1, 2, "Available")];
    assert_eq!(evse_hint(&s, Some(1)), EvseHint::Free);
    let s = [c(1, 1, "Faulted"), c(2, 1, "Unavailable")];
    assert_eq!(evse_hint(&s, None), EvseHint::Inoperative);
    // Unknown statuses say nothing.
    assert_eq!(evse_hint(&[c(1, 1, "Weird")], Some(1)), EvseHint::Free);
}

fn token(uid: &str, kind: &str) -> Token {
    serde_json::from_value(serde_json::json!({
        "country_code": "DE", "party_id": "TNM", "uid": uid, "type": kind,
        "contract_id": "DE8ACC12E46L89", "issuer": "TheNewMotion", "valid": true,
        "whitelist": "NEVER", "last_updated": "2019-06-23T08:11:00Z"}))
    .expect("token")
}

#[test]
fn tokens_become_station_identifiers_per_version() {
    for (kind, want) in [
        ("RFID", IdTokenKind::Iso14443),
        ("APP_USER", IdTokenKind::Central),
        ("AD_HOC_USER", IdTokenKind::Local),
        ("OTHER", IdTokenKind::Central),
        ("EMAID", IdTokenKind::Central),
    ] {
        let t = token("app-user-1", kind);
        assert_eq!(
            station_id_token(OcppVersion::V201, &t),
            IdToken {
                id: "app-user-1".into(),
                kind: want
            },
            "{kind}"
        );
        assert_eq!(
            station_id_token(OcppVersion::V16, &t),
            IdToken {
                id: "app-user-1".into(),
                kind: IdTokenKind::IdTag
            }
        );
    }
    // A uid longer than 20 characters: 1.6 gets the alias, 2.0.1 the uid.
    let long = token("NL-EMS-C12345678-ABCDEFGHIJKL", "APP_USER");
    let v16 = station_id_token(OcppVersion::V16, &long);
    assert_eq!(v16.id, tokens::alias("NL-EMS-C12345678-ABCDEFGHIJKL"));
    assert!(v16.id.len() <= 20, "{}", v16.id);
    assert_eq!(
        station_id_token(OcppVersion::V201, &long).id,
        "NL-EMS-C12345678-ABCDEFGHIJKL"
    );
}
