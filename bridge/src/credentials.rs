//! The credentials lifecycle that we start ([`Lifecycle`]): token rotation (operator-triggered
//! with `peers rotate PEER`, or scheduled by `ocpi.token_rotation_days`), unregistration
//! (`peers unregister PEER`) and fresh single-use tokens A (`peers token-a`).
//!
//! Rotation is the OCPI credentials PUT ([`ocpi::Platform::update_registration`]): the peer's
//! versions and version details are fetched again with the token we hold for it (its
//! endpoints are refreshed), a new token for the peer to call us with is sent in a PUT to its
//! credentials endpoint, and the token it answers with replaces ours for it. The old token the
//! peer used is refused (HTTP 401) from then on; when the PUT fails, nothing changes.
//! Unregistration DELETEs our credentials at the peer and forgets it locally whatever the
//! answer (its outbox is dropped and its tokens are refused).
//!
//! One operation per daemon at a time: operator actions and the schedule share one lock, so a
//! rotation never overlaps another rotation or an unregistration. A rotation that a crash
//! interrupted (the peer stored as pending our PUT) is sent again by the schedule after the
//! next start, whatever `ocpi.token_rotation_days` says.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ocpi::{Peer, PeerId, PeerStatus, RegistrationError};
use state::Store;
use tokio_util::sync::CancellationToken;

use crate::cpo::Cpo;

/// Operator and scheduled credentials actions. Cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    platform: Arc<ocpi::Platform<Cpo>>,
    store: Store,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle").finish_non_exhaustive()
    }
}

impl Lifecycle {
    /// The lifecycle over the OCPI platform and the store.
    pub fn new(platform: Arc<ocpi::Platform<Cpo>>, store: Store) -> Self {
        Lifecycle {
            platform,
            store,
            lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The peer with this id.
    pub fn peer(&self, id: &PeerId) -> Option<Peer> {
        self.platform.peers().get(id)
    }

    /// Rotates the peer's tokens and refreshes its endpoints (credentials PUT). Returns the
    /// updated peer.
    pub async fn rotate(&self, id: &PeerId, why: &'static str) -> Result<Peer, RegistrationError> {
        let _one = self.lock.lock().await;
        self.rotate_locked(id, why).await
    }

    async fn rotate_locked(
        &self,
        id: &PeerId,
        why: &'static str,
    ) -> Result<Peer, RegistrationError> {
        match self.platform.update_registration(id).await {
            Ok(peer) => {
                tracing::info!(peer = %id, why, "credentials rotated: the peer's old token is refused from now on");
                metrics::counter!("ocpi_token_rotations_total", "outcome" => "ok", "why" => why)
                    .increment(1);
                Ok(peer)
            }
            Err(e) => {
                tracing::warn!(peer = %id, why, error = %e, "credentials rotation failed; the old tokens stay");
                metrics::counter!("ocpi_token_rotations_total", "outcome" => "failed", "why" => why)
                    .increment(1);
                Err(e)
            }
        }
    }

    /// Unregisters the peer: DELETE on its credentials endpoint, then forgets it locally even
    /// when the DELETE failed (that error is returned after the peer is forgotten).
    pub async fn unregister(&self, id: &PeerId) -> Result<(), RegistrationError> {
        let _one = self.lock.lock().await;
        let outcome = self.platform.unregister(id).await;
        match &outcome {
            Ok(()) => {
                tracing::info!(peer = %id, "unregistered: DELETE accepted by the peer; forgotten locally")
            }
            Err(RegistrationError::UnknownPeer(_)) => {}
            Err(e) => tracing::warn!(peer = %id, error = %e,
                "unregistered locally; the DELETE at the peer failed"),
        }
        outcome
    }

    /// Issues a fresh single-use token A ([`crate::peers::issue_token_a`]).
    pub fn issue_token_a(&self) -> Result<String, state::Error> {
        let token = crate::peers::issue_token_a(&self.store)?;
        tracing::info!("operator issued a new token A (single use)");
        Ok(token)
    }

    /// Every [`check_interval`]: rotates each registered peer whose tokens are older than
    /// `days` ([`rotation_due`]), and finishes rotations a crash interrupted ([`interrupted`]:
    /// also when `days` is 0, which turns the schedule off). A failed rotation is tried again
    /// after a minute (or the period, if shorter).
    pub async fn run_schedule(self, days: f64, shutdown: CancellationToken) {
        let period = rotation_period(days);
        let every = period.map_or(Duration::from_secs(60), check_interval);
        let retry = period.map_or(Duration::from_secs(60), |p| {
            p.clamp(Duration::from_secs(1), Duration::from_secs(60))
        });
        let due = |peer: &Peer| {
            interrupted(peer)
                || (peer.status == PeerStatus::Registered
                    && period
                        .is_some_and(|p| rotation_due(peer.registered_at.inner(), Utc::now(), p)))
        };
        // A peer whose last rotation failed is left alone until then.
        let mut not_before: std::collections::HashMap<PeerId, std::time::Instant> =
            Default::default();
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            for peer in self.platform.peers().all() {
                if !due(&peer)
                    || not_before
                        .get(&peer.id)
                        .is_some_and(|t| *t > std::time::Instant::now())
                {
                    continue;
                }
                let why = if interrupted(&peer) {
                    "resumed"
                } else {
                    "scheduled"
                };
                let outcome = {
                    let _one = self.lock.lock().await;
                    // An operator may have rotated or unregistered it meanwhile.
                    match self.peer(&peer.id) {
                        Some(now) if due(&now) => Some(self.rotate_locked(&peer.id, why).await),
                        _ => None,
                    }
                };
                if let Some(Err(_)) = outcome {
                    not_before.insert(peer.id.clone(), std::time::Instant::now() + retry);
                } else {
                    not_before.remove(&peer.id);
                }
                if shutdown.is_cancelled() {
                    return;
                }
            }
        }
    }
}

/// A rotation a crash interrupted: the peer was registered (it has roles) but is still pending
/// our credentials PUT. The PUT is sent again (with the token we still hold for the peer).
pub fn interrupted(peer: &Peer) -> bool {
    peer.status == PeerStatus::Pending && !peer.roles.is_empty()
}

/// `ocpi.token_rotation_days` as a duration (`None` when 0: off).
pub fn rotation_period(days: f64) -> Option<Duration> {
    (days > 0.0 && days.is_finite()).then(|| Duration::from_secs_f64(days * 86_400.0))
}

/// How often the schedule looks at the peers: a quarter of the period, between 0.2 s and a
/// minute.
pub fn check_interval(period: Duration) -> Duration {
    (period / 4).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

/// Whether tokens exchanged at `issued` (a peer's `registered_at`: set by every handshake,
/// registration or credentials PUT, in either direction) are due for rotation at `now`.
pub fn rotation_due(issued: DateTime<Utc>, now: DateTime<Utc>, period: Duration) -> bool {
    let age = (now - issued).to_std().unwrap_or(Duration::ZERO);
    age >= period
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_is_off_and_fractions_of_a_day_are_allowed() {
        assert_eq!(rotation_period(0.0), None);
        assert_eq!(
            rotation_period(30.0),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(rotation_period(0.5), Some(Duration::from_secs(43_200)));
        let tiny = rotation_period(0.00002).unwrap();
        assert!(tiny > Duration::from_millis(1700) && tiny < Duration::from_millis(1800));
    }

    #[test]
    fn tokens_are_rotated_once_they_are_older_than_the_period() {
        let issued = Utc::now();
        let day = Duration::from_secs(86_400);
        assert!(!rotation_due(issued, issued, day));
        assert!(!rotation_due(
            issued,
            issued + chrono::Duration::hours(23),
            day
        ));
        assert!(rotation_due(
            issued,
            issued + chrono::Duration::hours(24),
            day
        ));
        // A clock that went backwards never rotates.
        assert!(!rotation_due(
            issued,
            issued - chrono::Duration::hours(48),
            day
        ));
    }

    #[test]
    fn a_pending_peer_that_was_registered_is_an_interrupted_rotation() {
        let role: ocpi::types::CredentialsRole = serde_json::from_value(serde_json::json!({
            "role": "EMSP", "country_code": "DE", "party_id": "EMA",
            "business_details": {"name": "x"}
        }))
        .unwrap();
        let mut peer = Peer {
            id: PeerId("DEEMA".into()),
            token_in: ocpi::types::AuthToken::new("in"),
            token_out: ocpi::types::AuthToken::new("out"),
            versions_url: "https://p.example/ocpi/versions".into(),
            version: "2.2.1".into(),
            endpoints: vec![],
            roles: vec![role],
            registered_at: ocpi::types::DateTime::now(),
            encode_token: true,
            initiated_by: ocpi::Initiator::Us,
            status: PeerStatus::Pending,
            options: Default::default(),
        };
        assert!(interrupted(&peer));
        peer.status = PeerStatus::Registered;
        assert!(!interrupted(&peer));
        // A first registration in flight (no roles yet) is not a rotation.
        peer.status = PeerStatus::Pending;
        peer.roles.clear();
        assert!(!interrupted(&peer));
    }

    #[test]
    fn the_schedule_checks_a_quarter_period_within_bounds() {
        assert_eq!(
            check_interval(Duration::from_secs(86_400)),
            Duration::from_secs(60)
        );
        assert_eq!(
            check_interval(Duration::from_secs(8)),
            Duration::from_secs(2)
        );
        assert_eq!(
            check_interval(Duration::from_millis(100)),
            Duration::from_millis(200)
        );
    }
}
