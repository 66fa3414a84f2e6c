//! RESERVE_NOW and CANCEL_RESERVATION: map the eMSP's `reservation_id` to an OCPP reservation
//! id, record the reservation, pre-authorize its token and ask the station; what happens to the
//! reservation afterwards is [`crate::reservations`]'s.

use chrono::Utc;
use ocpi::OcpiError;
use ocpi::types::{
    Command, CommandResponse, CommandResponseType, CommandResultType, CountryCode, PartyId,
};
use ocpp::{OcppVersion, StationCall, StationId};

use super::results::station_id_token;
use super::{Commands, Target, response};
use crate::records::{RESERVATION_BY_OCPI, RESERVATION_COUNTER, Reservation, ReservationState};
use crate::reservations;
use crate::tokens;

impl Commands {
    pub(super) async fn reserve_now(
        &self,
        caller: super::Commander,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::ReserveNow(reserve) = &command else {
            unreachable!("reserve_now gets RESERVE_NOW")
        };
        let expiry = reserve.expiry_date.inner();
        if expiry <= Utc::now() {
            return Ok(response(
                CommandResponseType::Rejected,
                "expiry_date is in the past",
            ));
        }
        let target = match self.resolve(
            reserve.location_id.as_str(),
            reserve.evse_uid.as_ref().map(|u| u.as_str()),
            None,
        ) {
            Ok(t) => t,
            Err(r) => return Ok(r),
        };
        let version = target.handle.version();
        let cc = reserve.token.country_code.as_str().to_owned();
        let pid = reserve.token.party_id.as_str().to_owned();
        let key = Reservation::key(&cc, &pid, reserve.reservation_id.as_str());
        let uid = reserve.token.uid.as_str().to_owned();
        let cmd = self.in_flight(&caller, &command, &target.station);
        // The closure may run more than once (sled retries); the last run's value is the one
        // that was committed.
        let resv_id = std::sync::Mutex::new(0);
        let evse_id = target.at.map(|a| a.evse_id);
        let station = target.station.0.clone();
        self.begin(&cmd, |tx| {
            let existing = match tx.index_get(RESERVATION_BY_OCPI, &key)? {
                Some(v) => v.parse::<i32>().ok(),
                None => None,
            };
            let rid = match existing {
                Some(rid) => rid,
                None => tx.next_counter(RESERVATION_COUNTER)?,
            };
            *resv_id.lock().expect("resv id") = rid;
            let previous = reservations::load(tx, rid)?;
            let resv = Reservation {
                id: rid,
                reservation_id: reserve.reservation_id.as_str().to_owned(),
                party: (cc.clone(), pid.clone()),
                peer: caller.id.0.clone(),
                response_url: reserve.response_url.clone(),
                station: station.clone(),
                evse_id,
                expiry,
                uid: uid.clone(),
                // A replaced reservation stays active at the station until it answers.
                state: match previous.as_ref().map(|p| p.state) {
                    Some(ReservationState::Active) => ReservationState::Active,
                    _ => ReservationState::Requested,
                },
                seen_reserved: previous.as_ref().is_some_and(|p| {
                    p.seen_reserved && p.station == station && p.evse_id == evse_id
                }),
            };
            tx.index_put(RESERVATION_BY_OCPI, &key, &rid.to_string())?;
            tx.put_record(&resv)?;
            if version == OcppVersion::V16 {
                tokens::remember_alias(tx, &uid)?;
            }
            Ok(())
        })
        .await?;
        let rid = *resv_id.lock().expect("resv id");
        self.inner.authorizer.pre_authorize(
            &target.station,
            &uid,
            self.decision(
                &caller,
                &reserve.token,
                reserve.authorization_reference.clone(),
            ),
        );
        let group_id = reserve
            .token
            .group_id
            .clone()
            .filter(|g| version == OcppVersion::V201 || g.len() <= tokens::MAX_ID_TAG);
        let call = StationCall::ReserveNow {
            id: rid,
            expiry,
            id_token: station_id_token(version, &reserve.token),
            group_id,
            evse: target.at,
            connector_type: None,
        };
        tracing::info!(station = %target.station, peer = %caller.id, reservation = %reserve.reservation_id,
            ocpp_id = rid, evse = ?target.at, "RESERVE_NOW forwarded");
        let this = self.clone();
        let token = reserve.token.clone();
        let reference = reserve.authorization_reference.clone();
        let peer = caller.id.0.clone();
        tokio::spawn(async move {
            this.run_call(cmd, target, call, move |tx, result| {
                let Some(mut r) = reservations::load(tx, rid)? else {
                    return Ok(());
                };
                if result == CommandResultType::Accepted {
                    r.state = ReservationState::Active;
                    tx.put_record(&r)
                } else if r.state == ReservationState::Requested {
                    // Refused and nothing was active before: forget it.
                    reservations::end(tx, &r)
                } else {
                    Ok(())
                }
            })
            .await;
            this.inner
                .reservations
                .accepted(rid, &peer, &token, reference)
                .await;
        });
        Ok(self.accepted())
    }

    pub(super) async fn cancel_reservation(
        &self,
        caller: super::Commander,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::CancelReservation(cancel) = &command else {
            unreachable!("cancel_reservation gets CANCEL_RESERVATION")
        };
        let now = Utc::now();
        let wanted = cancel.reservation_id.as_str();
        let found = self.inner.reservations.open().into_iter().find(|r| {
            r.live(now)
                && r.reservation_id.eq_ignore_ascii_case(wanted)
                && caller.may_act_for(&CountryCode::new(&r.party.0), &PartyId::new(&r.party.1))
        });
        let Some(resv) = found else {
            return Ok(response(
                CommandResponseType::Rejected,
                "unknown reservation",
            ));
        };
        let Some(handle) = self.online(&resv.station) else {
            return Ok(response(
                CommandResponseType::Rejected,
                "the charging station is offline",
            ));
        };
        let target = Target {
            station: StationId(resv.station.clone()),
            handle,
            at: None,
        };
        let mut cmd = self.in_flight(&caller, &command, &target.station);
        if caller.from.is_none() {
            cmd.party = Some(resv.party.clone());
        }
        let rid = resv.id;
        self.begin(&cmd, |tx| {
            if let Some(mut r) = reservations::load(tx, rid)? {
                r.state = ReservationState::Cancelling;
                tx.put_record(&r)?;
            }
            Ok(())
        })
        .await?;
        let call = StationCall::CancelReservation { id: rid };
        tracing::info!(station = %target.station, peer = %caller.id, reservation = %wanted, ocpp_id = rid,
            "CANCEL_RESERVATION forwarded");
        let station = target.station.0.clone();
        let this = self.clone();
        tokio::spawn(async move {
            this.run_call(cmd, target, call, move |tx, result| {
                let Some(mut r) = reservations::load(tx, rid)? else {
                    return Ok(());
                };
                match result {
                    // Cancelled, or the station did not have it (any more): over.
                    CommandResultType::Accepted | CommandResultType::UnknownReservation => {
                        reservations::end(tx, &r)
                    }
                    _ if r.state == ReservationState::Cancelling => {
                        r.state = ReservationState::Active;
                        tx.put_record(&r)
                    }
                    _ => Ok(()),
                }
            })
            .await;
            this.inner.reservations.ended(&station, rid).await;
        });
        Ok(self.accepted())
    }
}
