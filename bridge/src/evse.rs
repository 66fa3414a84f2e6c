//! OCPP connector status → OCPI EVSE status: the per-connector mapping and the aggregation over
//! an EVSE's connectors, the station-level status (1.6 connector 0) and the station's
//! reachability. Pure functions; every row of the mapping has a test.
//!
//! Mapping (OCPP 1.6 and 2.0.1 statuses share names where they overlap):
//! Available → AVAILABLE; Preparing, Charging, SuspendedEV, SuspendedEVSE, Finishing and 2.0.1
//! Occupied → CHARGING (the connector is in use by a driver); Reserved → RESERVED;
//! Unavailable → INOPERATIVE; Faulted → OUTOFORDER.
//!
//! Aggregation, first match wins: station Faulted → OUTOFORDER; station Unavailable →
//! INOPERATIVE; station offline past the grace period → UNKNOWN; any connector in use →
//! CHARGING; any Reserved → RESERVED; any Available → AVAILABLE; all Unavailable →
//! INOPERATIVE; all Faulted → OUTOFORDER; otherwise (no status yet, or a mix of
//! Unavailable and Faulted) UNKNOWN.

use ocpi::types::EvseStatus;

/// The OCPI status one connector's OCPP status maps to, `None` for an unknown spelling.
pub fn connector_status(ocpp: &str) -> Option<EvseStatus> {
    Some(match ocpp {
        "Available" => EvseStatus::Available,
        "Preparing" | "Charging" | "SuspendedEV" | "SuspendedEVSE" | "Finishing" | "Occupied" => {
            EvseStatus::Charging
        }
        "Reserved" => EvseStatus::Reserved,
        "Unavailable" => EvseStatus::Inoperative,
        "Faulted" => EvseStatus::OutOfOrder,
        _ => return None,
    })
}

/// The status of an EVSE.
///
/// `station` is the station-level OCPP status (1.6 connector 0, or a 2.0.1 EVSE-0 report),
/// `connectors` the OCPP statuses of the EVSE's connectors, `reachable` false once the station
/// has been offline longer than the grace period.
pub fn evse_status(station: Option<&str>, connectors: &[&str], reachable: bool) -> EvseStatus {
    match station {
        Some("Faulted") => return EvseStatus::OutOfOrder,
        Some("Unavailable") => return EvseStatus::Inoperative,
        _ => {}
    }
    if !reachable {
        return EvseStatus::Unknown;
    }
    let mapped: Vec<EvseStatus> = connectors
        .iter()
        .filter_map(|c| connector_status(c))
        .collect();
    let any = |s: EvseStatus| mapped.contains(&s);
    let all = |s: EvseStatus| !mapped.is_empty() && mapped.iter().all(|m| *m == s);
    if any(EvseStatus::Charging) {
        EvseStatus::Charging
    } else if any(EvseStatus::Reserved) {
        EvseStatus::Reserved
    } else if any(EvseStatus::Available) {
        EvseStatus::Available
    } else if all(EvseStatus::Inoperative) {
        EvseStatus::Inoperative
    } else if all(EvseStatus::OutOfOrder) {
        EvseStatus::OutOfOrder
    } else {
        EvseStatus::Unknown
    }
}

/// The OCPI spelling of a status (as stored in `state::EvseState`).
pub fn status_str(s: EvseStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "UNKNOWN".to_owned())
}

/// Parses a stored OCPI status.
pub fn parse_status(s: &str) -> EvseStatus {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(EvseStatus::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use EvseStatus::*;

    #[test]
    fn every_ocpp_status_maps_to_its_row() {
        let rows = [
            ("Available", Available),
            ("Preparing", Charging),
            ("Charging", Charging),
            ("SuspendedEV", Charging),
            ("SuspendedEVSE", Charging),
            ("Finishing", Charging),
            ("Occupied", Charging),
            ("Reserved", Reserved),
            ("Unavailable", Inoperative),
            ("Faulted", OutOfOrder),
        ];
        for (ocpp, ocpi) in rows {
            assert_eq!(connector_status(ocpp), Some(ocpi), "{ocpp}");
            assert_eq!(evse_status(None, &[ocpp], true), ocpi, "{ocpp} alone");
        }
        assert_eq!(connector_status("Bogus"), None);
    }

    #[test]
    fn station_level_faults_override_connectors() {
        assert_eq!(
            evse_status(Some("Faulted"), &["Charging"], true),
            OutOfOrder
        );
        assert_eq!(
            evse_status(Some("Unavailable"), &["Available"], true),
            Inoperative
        );
        assert_eq!(
            evse_status(Some("Faulted"), &["Available"], false),
            OutOfOrder
        );
        assert_eq!(
            evse_status(Some("Available"), &["Charging"], true),
            Charging
        );
    }

    #[test]
    fn an_unreachable_station_is_unknown() {
        assert_eq!(evse_status(None, &["Charging"], false), Unknown);
        assert_eq!(
            evse_status(Some("Available"), &["Available"], false),
            Unknown
        );
    }

    #[test]
    fn aggregation_over_connectors_takes_the_first_matching_rule() {
        assert_eq!(
            evse_status(None, &["Available", "Charging"], true),
            Charging
        );
        assert_eq!(
            evse_status(None, &["Available", "Reserved"], true),
            Reserved
        );
        assert_eq!(
            evse_status(None, &["Faulted", "Available"], true),
            Available
        );
        assert_eq!(
            evse_status(None, &["Unavailable", "Unavailable"], true),
            Inoperative
        );
        assert_eq!(evse_status(None, &["Faulted", "Faulted"], true), OutOfOrder);
        assert_eq!(
            evse_status(None, &["Faulted", "Unavailable"], true),
            Unknown
        );
        assert_eq!(evse_status(None, &[], true), Unknown);
        assert_eq!(evse_status(None, &["Bogus"], true), Unknown);
    }

    #[test]
    fn statuses_round_trip_their_ocpi_spelling() {
        for s in [
            Available,
            Blocked,
            Charging,
            Inoperative,
            OutOfOrder,
            Planned,
            Removed,
            Reserved,
            Unknown,
        ] {
            assert_eq!(parse_status(&status_str(s)), s);
        }
        assert_eq!(status_str(OutOfOrder), "OUTOFORDER");
    }
}
