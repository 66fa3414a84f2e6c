//! Connector statuses → the OCPI EVSE states we publish, and their pushes.
//!
//! A StatusNotification stores the connector's status and recomputes the published status of
//! the EVSEs it affects ([`crate::evse`] maps and aggregates); when an EVSE appears or gets a
//! new connector its whole Location is queued for every Locations receiver, when only its status
//! changes an EVSE PATCH is — in the same store transaction, flushed before the station's
//! answer. Stations offline past the grace period are published as UNKNOWN (once).

use chrono::{DateTime, Utc};
use ocpi::types::ModuleId;
use ocpp::{CallFault, StationId};
use state::{TxError, Txn};

use super::{StationService, internal};
use crate::evse;
use crate::outbox::{self, Push};

impl StationService {
    /// Registered peers that receive Locations.
    fn location_receivers(&self) -> Vec<String> {
        outbox::receivers(&self.peers, ModuleId::Locations)
    }

    /// Recomputes the published OCPI state of some of a station's EVSEs inside an update and
    /// queues pushes for every Locations receiver: a Location PUT when an EVSE appears or gets
    /// a new connector, an EVSE PATCH when its status changes. Returns whether anything was
    /// queued.
    fn refresh_evses(
        tx: &Txn<'_>,
        station: &str,
        location_id: &str,
        evse_ids: &[u32],
        touched: Option<ocpp::EvseRef>,
        reachable: bool,
        receivers: &[String],
    ) -> Result<bool, TxError> {
        let now = Utc::now();
        let station_level = tx.connector(station, 0, 0)?.map(|c| c.status);
        let mut queued = false;
        for &evse_id in evse_ids.iter().filter(|e| **e != 0) {
            let prev = tx.evse_state(station, evse_id)?;
            let mut connectors = prev
                .as_ref()
                .map(|p| p.connectors.clone())
                .unwrap_or_default();
            if let Some(t) = touched
                && t.evse_id == evse_id
                && t.connector_id != 0
                && !connectors.contains(&t.connector_id)
            {
                connectors.push(t.connector_id);
                connectors.sort_unstable();
            }
            let mut statuses = Vec::new();
            for c in &connectors {
                if let Some(conn) = tx.connector(station, evse_id, *c)? {
                    statuses.push(conn.status);
                }
            }
            let refs: Vec<&str> = statuses.iter().map(String::as_str).collect();
            let status = evse::status_str(evse::evse_status(
                station_level.as_deref(),
                &refs,
                reachable,
            ));
            let (whole_location, uid) = match &prev {
                None => (true, tx.evse_uid(station, evse_id)?),
                Some(p) if p.connectors != connectors => (true, p.uid.clone()),
                Some(p) if p.status != status => (false, p.uid.clone()),
                Some(_) => continue,
            };
            tx.put_evse_state(&state::EvseState {
                v: state::SCHEMA_VERSION,
                station_id: station.to_owned(),
                evse_id,
                uid,
                status: status.clone(),
                connectors,
                last_updated: now,
            })?;
            for peer in receivers {
                let push = if whole_location {
                    Push::Location {
                        id: location_id.to_owned(),
                    }
                } else {
                    Push::EvseStatus {
                        station: station.to_owned(),
                        evse: evse_id,
                    }
                };
                tx.push_outbox(outbox::entry(peer, push, None))?;
                queued = true;
            }
            tracing::info!(station, evse = evse_id, status = %status, "OCPI EVSE status");
        }
        Ok(queued)
    }

    /// Re-publishes every EVSE of a station (after it connected, or went past the offline grace).
    pub async fn refresh_station(
        &self,
        station: &str,
        reachable: bool,
    ) -> Result<(), state::Error> {
        let Some(location) = self.location_id(station) else {
            return Ok(());
        };
        let evse_ids: Vec<u32> = self
            .store
            .evse_states(station)?
            .iter()
            .map(|e| e.evse_id)
            .collect();
        if evse_ids.is_empty() {
            return Ok(());
        }
        let receivers = self.location_receivers();
        let (st, to) = (station.to_owned(), receivers.clone());
        let queued = self
            .store
            .commit(move |tx| {
                Self::refresh_evses(tx, &st, &location, &evse_ids, None, reachable, &to)
            })
            .await?;
        if queued {
            self.push.wake(&receivers);
        }
        Ok(())
    }

    /// Marks the EVSEs of stations offline for longer than `grace` as UNKNOWN (once).
    pub async fn sweep_offline(&self, grace: chrono::Duration, since_start: DateTime<Utc>) {
        let stations = match self.store.stations() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "offline sweep: reading stations failed");
                return;
            }
        };
        let now = Utc::now();
        for st in stations.iter().filter(|s| !s.online) {
            let since = st.disconnected_at.unwrap_or(since_start).max(since_start);
            if now - since < grace {
                continue;
            }
            let needs = self
                .store
                .evse_states(&st.id)
                .map(|es| es.iter().any(|e| e.status != "UNKNOWN"))
                .unwrap_or(false);
            if needs {
                tracing::info!(station = %st.id, "offline past the grace period: EVSEs now UNKNOWN");
                if let Err(e) = self.refresh_station(&st.id, false).await {
                    tracing::error!(station = %st.id, error = %e, "offline sweep failed");
                }
            }
        }
    }

    /// A StatusNotification: stores the connector status, republishes the affected EVSEs, and
    /// tells reservations (Reserved / Available end or place them).
    pub(super) async fn status(
        &self,
        station: &StationId,
        report: &ocpp::StatusReport,
    ) -> Result<(), CallFault> {
        let now = Utc::now();
        let at = report.timestamp.unwrap_or(now);
        let location = self.location_id(station.as_str());
        let receivers = self.location_receivers();
        // A station-level status (1.6 connector 0) affects every EVSE of the station.
        let evse_ids: Vec<u32> = if report.at.evse_id == 0 {
            self.store
                .evse_states(station.as_str())
                .map_err(internal)?
                .iter()
                .map(|e| e.evse_id)
                .collect()
        } else {
            vec![report.at.evse_id]
        };
        let (st, rep, loc, ids, to) = (
            station.clone(),
            report.clone(),
            location.clone(),
            evse_ids.clone(),
            receivers.clone(),
        );
        // A status the station will not send again: durable before the answer, together with
        // the pushes it queued (group commit with other stations' messages).
        let (changed, queued) = self
            .store
            .commit(move |tx| {
                let (station, report, location, evse_ids, receivers) = (&st, &rep, &loc, &ids, &to);
                let previous =
                    tx.connector(station.as_str(), report.at.evse_id, report.at.connector_id)?;
                // A status older than the stored one (a late, replayed notification) must not
                // overwrite the newer truth.
                if previous.as_ref().is_some_and(|p| p.timestamp > at) {
                    return Ok((false, false));
                }
                tx.put_connector(&state::Connector {
                    v: state::SCHEMA_VERSION,
                    station_id: station.0.clone(),
                    evse_id: report.at.evse_id,
                    connector_id: report.at.connector_id,
                    status: report.status.as_str().to_owned(),
                    error_code: report.error_code.clone(),
                    info: report.info.clone(),
                    timestamp: at,
                    updated_at: now,
                })?;
                let queued = match &location {
                    Some(loc) => Self::refresh_evses(
                        tx,
                        station.as_str(),
                        loc,
                        evse_ids,
                        Some(report.at),
                        true,
                        receivers,
                    )?,
                    None => false,
                };
                Ok((true, queued))
            })
            .await
            .map_err(internal)?;
        if queued {
            self.push.wake(&receivers);
        }
        if matches!(
            report.status,
            ocpp::ConnectorStatus::Reserved | ocpp::ConnectorStatus::Available
        ) {
            // Awaited, not spawned: a Reserved and the Available after it must reach the
            // reservation in the order the station sent them (a spawned task per status let the
            // Available overtake the Reserved, and the reservation was never ended).
            self.reservations
                .on_status(station, report.at, report.status)
                .await;
        }
        tracing::info!(evse = report.at.evse_id, connector = report.at.connector_id,
            status = report.status.as_str(), error = ?report.error_code, applied = changed, "status");
        Ok(())
    }
}
