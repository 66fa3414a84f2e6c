//! The reservation lifecycle: what happens to a reservation after RESERVE_NOW reached the
//! station, and the RESERVATION Session that stands for it.
//!
//! The eMSP's `reservation_id` (scoped by the token owner's party) maps to a CPO-wide positive
//! integer ([`RESERVATION_BY_OCPI`]); the same `reservation_id` again reuses the integer, so the
//! station replaces the reservation. A reservation ends when it is cancelled through us, when a
//! transaction consumes it, when it expires (forgotten silently) or when the station drops it
//! before its expiry (1.6 StatusNotification Reserved → Available, 2.0.1
//! ReservationStatusUpdate): the latter is reported as CANCELED_RESERVATION to the RESERVE_NOW
//! `response_url`. Ending a reservation completes its Session unless a transaction took it over.

use std::sync::Arc;

use chrono::Utc;
use ocpi::types::CommandResultType;
use ocpp::{ConnectorStatus, EvseRef, StationId};
use state::{Store, TxError, Txn};

use crate::error::Logged;
use crate::outbox::{self, Push, PushQueue};
use crate::records::{RESERVATION_BY_OCPI, Reservation, ReservationState};
use crate::sessions::Sessions;

/// A station-side end of a reservation this close to its expiry counts as the expiry.
const EXPIRY_SLACK: chrono::Duration = chrono::Duration::seconds(5);

/// A reservation by its OCPP id, inside an update.
pub fn load(tx: &Txn<'_>, rid: i32) -> Result<Option<Reservation>, TxError> {
    tx.record::<Reservation>(&rid.to_string())
}

/// Forgets a reservation: marked ended, its `reservation_id` free again.
pub fn end(tx: &Txn<'_>, r: &Reservation) -> Result<(), TxError> {
    let mut ended = r.clone();
    ended.state = ReservationState::Ended;
    tx.put_record(&ended)?;
    if tx
        .index_get(RESERVATION_BY_OCPI, &r.index_key())?
        .as_deref()
        == Some(&r.id.to_string())
    {
        tx.index_remove(RESERVATION_BY_OCPI, &r.index_key())?;
    }
    Ok(())
}

/// Whether the reservation with this OCPP id is still live (requested or active, not expired).
pub fn is_live(store: &Store, rid: i32) -> bool {
    store
        .record::<Reservation>(&rid.to_string())
        .ok()
        .flatten()
        .is_some_and(|r| r.live(Utc::now()))
}

/// Reservations and their sessions.
#[derive(Debug, Clone)]
pub struct Reservations {
    store: Store,
    push: PushQueue,
    sessions: Arc<Sessions>,
}

impl Reservations {
    /// Reservations over the store, reporting through the outbox.
    pub fn new(store: Store, push: PushQueue, sessions: Arc<Sessions>) -> Self {
        Reservations {
            store,
            push,
            sessions,
        }
    }

    /// Every reservation that has not ended.
    pub fn open(&self) -> Vec<Reservation> {
        self.store
            .records::<Reservation>()
            .or_log("reading reservations")
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.state != ReservationState::Ended)
            .collect()
    }

    /// At start-up: forgets reservations that expired while the daemon was down.
    pub fn recover(&self) {
        let now = Utc::now();
        for r in self.open() {
            if r.expiry <= now {
                self.store
                    .update(|tx| end(tx, &r))
                    .or_log("forgetting an expired reservation");
            }
        }
    }

    /// The station accepted (or refused) RESERVE_NOW: opens the RESERVATION Session of a live
    /// reservation.
    pub async fn accepted(
        &self,
        rid: i32,
        peer: &str,
        token: &ocpi::types::Token,
        authorization_reference: Option<String>,
    ) {
        let Some(r) = self
            .store
            .record::<Reservation>(&rid.to_string())
            .or_log("reading a reservation")
            .flatten()
            .filter(|r| r.live(Utc::now()))
        else {
            return;
        };
        self.sessions
            .reservation_accepted(
                peer,
                token,
                authorization_reference,
                &r.station,
                r.evse_id,
                rid,
            )
            .await
            .or_log("opening the reservation session");
    }

    /// A reservation ended through us (cancelled): completes its Session unless it is live.
    pub async fn ended(&self, station: &str, rid: i32) {
        if !is_live(&self.store, rid) {
            self.sessions
                .reservation_ended(station, rid)
                .await
                .or_log("completing the reservation session");
        }
    }

    /// The station ended reservation `rid` (or the EVSE it held): forget it, and tell the
    /// eMSP CANCELED_RESERVATION unless we cancelled it or it simply expired.
    async fn station_ended(&self, rid: i32, why: &str) {
        let now = Utc::now();
        let ended = self.store.update(|tx| {
            let Some(r) = load(tx, rid)? else {
                return Ok(None);
            };
            if r.state == ReservationState::Ended {
                return Ok(None);
            }
            let report = r.state != ReservationState::Cancelling && r.expiry - EXPIRY_SLACK > now;
            if report {
                let result = outbox::command_result(
                    CommandResultType::CanceledReservation,
                    Some(format!(
                        "the charging station ended the reservation ({why})"
                    )),
                );
                tx.push_outbox(outbox::entry(
                    &r.peer,
                    Push::CommandResult {
                        response_url: r.response_url.clone(),
                        result,
                    },
                    Some(r.party.clone()),
                ))?;
            }
            end(tx, &r)?;
            Ok(Some((r, report)))
        });
        let Some(Some((r, report))) = ended.or_log("ending a reservation") else {
            return;
        };
        tracing::info!(station = %r.station, reservation = %r.reservation_id, ocpp_id = rid,
            why, canceled_reported = report, "reservation ended by the station");
        self.sessions
            .reservation_ended(&r.station, rid)
            .await
            .or_log("completing the reservation session");
        if report {
            self.store
                .flush()
                .await
                .or_log("flushing a reservation end");
            self.push.wake([&r.peer]);
        }
    }

    /// A connector status: Reserved places an EVSE-less reservation; Available after Reserved
    /// means the station dropped the reservation.
    pub async fn on_status(&self, station: &StationId, at: EvseRef, status: ConnectorStatus) {
        if at.evse_id == 0 {
            return;
        }
        let now = Utc::now();
        let mine: Vec<Reservation> = self
            .open()
            .into_iter()
            .filter(|r| r.station == station.0 && r.live(now))
            .collect();
        match status {
            ConnectorStatus::Reserved => {
                // The reservation on this EVSE, else an EVSE-less one not yet placed.
                let pick = mine
                    .iter()
                    .find(|r| r.evse_id == Some(at.evse_id))
                    .or_else(|| mine.iter().find(|r| r.evse_id.is_none()));
                if let Some(r) = pick {
                    let (rid, evse) = (r.id, at.evse_id);
                    self.store
                        .update(|tx| {
                            if let Some(mut r) = load(tx, rid)? {
                                r.seen_reserved = true;
                                r.evse_id = Some(evse);
                                tx.put_record(&r)?;
                            }
                            Ok(())
                        })
                        .or_log("recording a Reserved connector");
                }
            }
            ConnectorStatus::Available => {
                for r in mine
                    .iter()
                    .filter(|r| r.seen_reserved && r.evse_id == Some(at.evse_id))
                {
                    self.station_ended(r.id, "connector available again").await;
                }
            }
            _ => {}
        }
    }

    /// A 2.0.1 ReservationStatusUpdate.
    pub async fn on_update(&self, station: &StationId, report: &ocpp::ReservationStatusReport) {
        let rid = report.reservation_id;
        let belongs = self
            .open()
            .iter()
            .any(|r| r.id == rid && r.station == station.0);
        if belongs {
            let why = match report.status {
                ocpp::ReservationUpdate::Expired => "Expired",
                ocpp::ReservationUpdate::Removed => "Removed",
            };
            self.station_ended(rid, why).await;
        }
    }

    /// A transaction that consumes a reservation ends it silently (its Session continues as the
    /// transaction's).
    pub fn on_transaction(&self, station: &StationId, t: &state::Transaction) {
        if let Some(rid) = t.reservation_id {
            self.store
                .update(|tx| match load(tx, rid)? {
                    Some(r) if r.state != ReservationState::Ended && r.station == station.0 => {
                        end(tx, &r)
                    }
                    _ => Ok(()),
                })
                .or_log("ending a consumed reservation");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(dir: &std::path::Path) -> Store {
        Store::open(&state::Settings {
            path: dir.join("db"),
            cache_bytes: 8 << 20,
        })
        .unwrap()
    }

    #[test]
    fn ending_a_reservation_frees_its_reservation_id_only_for_that_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let store = temp_store(dir.path());
        let r = Reservation {
            id: 7,
            reservation_id: "res-1".into(),
            party: ("DE".into(), "TNM".into()),
            peer: "hub".into(),
            response_url: "http://x/y".into(),
            station: "CS1".into(),
            evse_id: Some(1),
            expiry: Utc::now() + chrono::Duration::hours(1),
            uid: "u".into(),
            state: ReservationState::Active,
            seen_reserved: false,
        };
        store
            .update(|tx| {
                tx.put_record(&r)?;
                tx.index_put(
                    RESERVATION_BY_OCPI,
                    &Reservation::key("de", "tnm", "RES-1"),
                    "7",
                )
            })
            .unwrap();
        assert_eq!(
            store
                .index_get(RESERVATION_BY_OCPI, &r.index_key())
                .unwrap(),
            Some("7".into()),
            "keys ignore case"
        );
        assert!(r.live(Utc::now()));
        store.update(|tx| end(tx, &r)).unwrap();
        assert_eq!(
            store
                .index_get(RESERVATION_BY_OCPI, &r.index_key())
                .unwrap(),
            None
        );
        let stored = store.record::<Reservation>("7").unwrap().unwrap();
        assert_eq!(stored.state, ReservationState::Ended);
        assert!(!stored.live(Utc::now()));
        // An expired reservation is not live either.
        let mut old = r.clone();
        old.expiry = Utc::now() - chrono::Duration::seconds(1);
        assert!(!old.live(Utc::now()));
    }
}
