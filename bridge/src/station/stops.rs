//! Transaction stops: which stop message ends a transaction, and what a later one is.
//!
//! A transaction's stop facts (`stopped_at`, `meter_stop_wh`, `stop_reason`, its End samples)
//! are frozen by the first stop that completes it — the CDR is made from them at that moment
//! and goes to the eMSP. A later stop message never changes them:
//! - a **repeat** (1.6 StopTransaction retried; a 2.0.1 Ended event sent again under a new
//!   seqNo) says the same and is answered as usual;
//! - a **conflict** (another time, reason or end reading) is answered as usual too, so the
//!   station does not retry it forever, but is logged and counted
//!   (`bridge_stop_conflicts_total`).
//!
//! A stop for a transaction id the bridge never issued is answered (so the station clears its
//! queue), logged, counted (`bridge_stops_unknown_total`) and stores nothing ([`unknown`]).
//!
//! `bridge_transactions_stopped_total` counts only the stop that completed the transaction.
//! [`classify`] is pure (unit-tested per row); [`report`] does the counting and logging once the
//! message's effect is stored.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use state::{Transaction, TransactionStatus};

/// What a stop message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopFacts {
    /// When the transaction stopped (the station's timestamp).
    pub at: DateTime<Utc>,
    /// The register at the stop in Wh (1.6 `meterStop`; 2.0.1 the Transaction.End reading),
    /// when the message has one.
    pub meter_stop_wh: Option<Decimal>,
    /// The stop reason (`Local` when the message has none).
    pub reason: String,
}

/// What a stop message is to the transaction it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// The transaction was not completed yet: this stop completes it.
    First,
    /// The transaction is completed with the same facts: nothing to do.
    Repeat,
    /// The transaction is completed with different facts: nothing changes, it is reported.
    Conflict,
}

/// Classifies a stop for `rec` (the transaction as stored before the message). End readings are
/// compared only when both sides have one (a 2.0.1 Ended event may carry none).
pub fn classify(rec: &Transaction, stop: &StopFacts) -> StopKind {
    if rec.status != TransactionStatus::Completed {
        return StopKind::First;
    }
    let same_time = rec.stopped_at == Some(stop.at);
    let same_reason = rec.stop_reason.as_deref().unwrap_or("Local") == stop.reason;
    let same_meter = match (rec.meter_stop_wh, stop.meter_stop_wh) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    if same_time && same_reason && same_meter {
        StopKind::Repeat
    } else {
        StopKind::Conflict
    }
}

/// The stored stop facts of a transaction, for logging a conflict next to the new ones.
pub fn stored_facts(rec: &Transaction) -> Option<StopFacts> {
    Some(StopFacts {
        at: rec.stopped_at?,
        meter_stop_wh: rec.meter_stop_wh,
        reason: rec
            .stop_reason
            .clone()
            .unwrap_or_else(|| "Local".to_owned()),
    })
}

/// Counts and logs a stop message once it is stored: the stop that completed the transaction
/// counts in `bridge_transactions_stopped_total`; a repeat is only logged; a conflicting stop
/// is logged with both versions and counts in `bridge_stop_conflicts_total`.
pub fn report(transaction: &str, kind: StopKind, new: &StopFacts, stored: Option<&StopFacts>) {
    match kind {
        StopKind::First => metrics::counter!("bridge_transactions_stopped_total").increment(1),
        StopKind::Repeat => {
            tracing::info!(
                transaction,
                "repeated stop of a completed transaction; nothing changes"
            )
        }
        StopKind::Conflict => {
            metrics::counter!("bridge_stop_conflicts_total").increment(1);
            tracing::warn!(
                transaction,
                stopped_at = ?stored.map(|s| s.at),
                meter_stop_wh = ?stored.and_then(|s| s.meter_stop_wh),
                reason = ?stored.map(|s| s.reason.as_str()),
                new_stopped_at = %new.at,
                new_meter_stop_wh = ?new.meter_stop_wh,
                new_reason = %new.reason,
                "a different stop for a completed transaction is ignored: its stop is final"
            );
        }
    }
}

/// Counts and logs a stop for a transaction id the bridge never issued; nothing is stored.
pub fn unknown(transaction: &str, stop: &StopFacts) {
    metrics::counter!("bridge_stops_unknown_total").increment(1);
    tracing::warn!(
        transaction,
        at = %stop.at,
        meter_stop_wh = ?stop.meter_stop_wh,
        reason = %stop.reason,
        "stop for a transaction this bridge never started; answered, nothing stored"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn tx(completed: bool) -> Transaction {
        Transaction {
            v: 1,
            id: "t1".into(),
            station_id: "CS1".into(),
            evse_id: 1,
            connector_id: 1,
            ocpp_transaction_id: "7".into(),
            ocpp_version: "1.6".into(),
            id_token: None,
            id_token_type: None,
            status: if completed {
                TransactionStatus::Completed
            } else {
                TransactionStatus::Active
            },
            started_at: at(0),
            stopped_at: completed.then(|| at(60)),
            meter_start_wh: Some(Decimal::from(1000)),
            meter_stop_wh: completed.then(|| Decimal::from(5000)),
            meter_last_wh: Some(Decimal::from(5000)),
            stop_reason: completed.then(|| "Local".to_owned()),
            offline: false,
            remote_start_id: None,
            reservation_id: None,
            charging_state: None,
            time_spent_charging: None,
            last_seq_no: None,
            samples: 0,
            created_at: at(0),
            updated_at: at(60),
        }
    }

    fn facts(min: i64, wh: Option<i64>, reason: &str) -> StopFacts {
        StopFacts {
            at: at(min),
            meter_stop_wh: wh.map(Decimal::from),
            reason: reason.into(),
        }
    }

    #[test]
    fn the_first_stop_completes() {
        assert_eq!(
            classify(&tx(false), &facts(60, Some(5000), "Local")),
            StopKind::First
        );
        // Whatever it says: nothing is frozen before the first stop.
        assert_eq!(
            classify(&tx(false), &facts(90, None, "EVDisconnected")),
            StopKind::First
        );
    }

    #[test]
    fn the_same_stop_again_is_a_repeat() {
        let done = tx(true);
        assert_eq!(
            classify(&done, &facts(60, Some(5000), "Local")),
            StopKind::Repeat
        );
        // A 2.0.1 Ended event without an End reading says nothing about the meter.
        assert_eq!(classify(&done, &facts(60, None, "Local")), StopKind::Repeat);
        let mut no_reason = done.clone();
        no_reason.stop_reason = None;
        assert_eq!(
            classify(&no_reason, &facts(60, Some(5000), "Local")),
            StopKind::Repeat
        );
    }

    #[test]
    fn a_different_stop_is_a_conflict() {
        let done = tx(true);
        for other in [
            facts(61, Some(5000), "Local"),
            facts(60, Some(5001), "Local"),
            facts(60, Some(5000), "Remote"),
            facts(75, Some(7000), "EmergencyStop"),
        ] {
            assert_eq!(classify(&done, &other), StopKind::Conflict, "{other:?}");
        }
    }

    #[test]
    fn stored_facts_of_a_completed_transaction() {
        assert_eq!(stored_facts(&tx(false)), None);
        assert_eq!(
            stored_facts(&tx(true)),
            Some(facts(60, Some(5000), "Local"))
        );
    }
}
