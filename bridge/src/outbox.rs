//! The outbox protocol as data: every kind of push the bridge makes ([`Push`], stored as such in
//! `state`'s per-peer outbox), who receives which module, and the [`PushQueue`] handle that
//! wakes the pusher.
//!
//! A [`Push`] names the object, not its body: the pusher renders Locations, EVSE statuses,
//! tariffs and Sessions from the current state when it sends them (so the newest status wins
//! and a lagging peer gets one push per object), and sends a CDR exactly as it was stored.
//! Pushes of the same object for the same peer coalesce ([`Push::coalesce_key`]) while they
//! wait; CDRs and command results never do.

use ocpi::types::{
    ActiveChargingProfile, ActiveChargingProfileResult, ChargingProfileResult, ClearProfileResult,
    CommandResult, CommandResultType, DisplayText, InterfaceRole, ModuleId,
};
use ocpi::{PeerId, PeerStatus, Peers};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// One push to a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Push {
    /// PUT of a whole Location (rendered when sent).
    Location {
        /// Location id.
        id: String,
    },
    /// PATCH of one EVSE's status (rendered when sent).
    EvseStatus {
        /// Station id.
        station: String,
        /// EVSE number.
        evse: u32,
    },
    /// PUT of a configured Tariff (rendered when sent).
    Tariff {
        /// Tariff id.
        id: String,
    },
    /// PATCH of an EVSE whose station (or whole location) was removed from the configuration:
    /// status REMOVED, once. Dropped unsent when the station is configured there again.
    EvseRemoved {
        /// Location id it was published under.
        location: String,
        /// The removed station.
        station: String,
        /// EVSE uid.
        uid: String,
        /// When the removal was noticed (the PATCH's `last_updated`).
        at: chrono::DateTime<chrono::Utc>,
    },
    /// DELETE of a tariff removed from the configuration. Dropped unsent when the tariff is
    /// configured again.
    TariffDelete {
        /// Tariff id.
        id: String,
    },
    /// PUT of a whole Session (rendered when sent).
    Session {
        /// Session id.
        id: String,
    },
    /// PATCH of a Session with the periods the peer does not have yet (rendered when sent).
    SessionPatch {
        /// Session id.
        id: String,
    },
    /// POST of a stored CDR.
    Cdr {
        /// CDR id.
        id: String,
        /// The session it belongs to when the id is not the session id (a credit CDR or a
        /// re-issued one): keeps them in the session's lane, so the credit goes first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// POST of a command's result, bare, to the eMSP's `response_url`.
    CommandResult {
        /// Where the eMSP wants it.
        response_url: String,
        /// The result.
        result: CommandResult,
    },
    /// POST of a SetChargingProfile's result, bare, to the sender's `response_url`.
    ChargingProfileResult {
        /// Where the sender wants it.
        response_url: String,
        /// The result.
        result: ChargingProfileResult,
    },
    /// POST of a GET ActiveChargingProfile's result, bare, to the sender's `response_url`.
    ActiveChargingProfileResult {
        /// Where the sender wants it.
        response_url: String,
        /// The result.
        result: ActiveChargingProfileResult,
    },
    /// POST of a ClearProfile's result, bare, to the sender's `response_url`.
    ClearProfileResult {
        /// Where the sender wants it.
        response_url: String,
        /// The result.
        result: ClearProfileResult,
    },
    /// PUT of a changed ActiveChargingProfile to `{chargingprofiles SENDER}/{session_id}` of the
    /// party that set a profile on the session (the newest replaces an unsent older one).
    ActiveChargingProfile {
        /// Session id.
        session_id: String,
        /// The profile.
        profile: ActiveChargingProfile,
    },
}

/// A queued push.
pub type Entry = state::OutboxEntry<Push>;

impl Push {
    /// The OCPI module whose receiver endpoint it goes to (`command_result`: the URL the eMSP
    /// gave).
    pub fn module(&self) -> &'static str {
        match self {
            Push::Location { .. } | Push::EvseStatus { .. } | Push::EvseRemoved { .. } => {
                "locations"
            }
            Push::Tariff { .. } | Push::TariffDelete { .. } => "tariffs",
            Push::Session { .. } | Push::SessionPatch { .. } => "sessions",
            Push::Cdr { .. } => "cdrs",
            Push::CommandResult { .. } => "command_result",
            Push::ChargingProfileResult { .. }
            | Push::ActiveChargingProfileResult { .. }
            | Push::ClearProfileResult { .. } => "chargingprofile_result",
            Push::ActiveChargingProfile { .. } => "chargingprofiles",
        }
    }

    /// The HTTP method.
    pub fn method(&self) -> &'static str {
        match self {
            Push::Location { .. }
            | Push::Tariff { .. }
            | Push::Session { .. }
            | Push::ActiveChargingProfile { .. } => "PUT",
            Push::EvseStatus { .. } | Push::EvseRemoved { .. } | Push::SessionPatch { .. } => {
                "PATCH"
            }
            Push::TariffDelete { .. } => "DELETE",
            Push::Cdr { .. }
            | Push::CommandResult { .. }
            | Push::ChargingProfileResult { .. }
            | Push::ActiveChargingProfileResult { .. }
            | Push::ClearProfileResult { .. } => "POST",
        }
    }

    /// What it is about, for operators (`location:LOC1`, `evse:1:CS1`, the result URL, …).
    pub fn subject(&self) -> String {
        match self {
            Push::Location { id } => format!("location:{id}"),
            Push::EvseStatus { station, evse } => format!("evse:{evse}:{station}"),
            Push::Tariff { id } | Push::TariffDelete { id } => format!("tariff:{id}"),
            Push::EvseRemoved { location, uid, .. } => format!("evse_removed:{location}/{uid}"),
            Push::Session { id } => format!("session:{id}"),
            Push::SessionPatch { id } => format!("session_patch:{id}"),
            Push::Cdr { id, .. } => format!("cdr:{id}"),
            Push::CommandResult { response_url, .. }
            | Push::ChargingProfileResult { response_url, .. }
            | Push::ActiveChargingProfileResult { response_url, .. }
            | Push::ClearProfileResult { response_url, .. } => response_url.clone(),
            Push::ActiveChargingProfile { session_id, .. } => {
                format!("active_charging_profile:{session_id}")
            }
        }
    }

    /// Pushes with the same key for the same peer merge while they wait (rendered pushes);
    /// `None` for pushes that must each be delivered (CDRs, command and charging-profile
    /// results).
    pub fn coalesce_key(&self) -> Option<String> {
        match self {
            Push::Cdr { .. }
            | Push::CommandResult { .. }
            | Push::ChargingProfileResult { .. }
            | Push::ActiveChargingProfileResult { .. }
            | Push::ClearProfileResult { .. } => None,
            _ => Some(format!("{} {}", self.method(), self.subject())),
        }
    }

    /// The OCPI module the peer must have a receiver for.
    pub fn receiver_module(&self) -> Option<ModuleId> {
        match self.module() {
            "locations" => Some(ModuleId::Locations),
            "tariffs" => Some(ModuleId::Tariffs),
            "sessions" => Some(ModuleId::Sessions),
            "cdrs" => Some(ModuleId::Cdrs),
            _ => None,
        }
    }
}

/// A bare CommandResult with an optional English message (at most 512 characters).
pub fn command_result(result: CommandResultType, message: Option<String>) -> CommandResult {
    CommandResult {
        result,
        message: message.map(|text| {
            vec![DisplayText {
                language: "en".into(),
                text: text.chars().take(512).collect(),
            }]
        }),
    }
}

/// A queued push for `peer`, routed to `party` (the token owner or command sender) when set.
pub fn entry(peer: &str, push: Push, party: Option<(String, String)>) -> Entry {
    let key = push.coalesce_key();
    state::OutboxEntry::new(peer, push)
        .coalescing(key)
        .routed_to(party)
}

/// Registered peers with a receiver endpoint for `module`.
pub fn receivers(peers: &Peers, module: ModuleId) -> Vec<String> {
    peers
        .all()
        .into_iter()
        .filter(|p| p.status == PeerStatus::Registered)
        .filter(|p| p.endpoint(&module, InterfaceRole::Receiver).is_some())
        .map(|p| p.id.0)
        .collect()
}

/// `peer` if it is registered and has a receiver for `module`.
pub fn receiver(peers: &Peers, peer: Option<&str>, module: ModuleId) -> Option<String> {
    let peer = peers.get(&PeerId(peer?.to_owned()))?;
    (peer.status == PeerStatus::Registered
        && peer.endpoint(&module, InterfaceRole::Receiver).is_some())
    .then_some(peer.id.0)
}

/// Messages to the pusher.
#[derive(Debug, Clone)]
pub enum Wake {
    /// Make sure a delivery task runs for this peer and wake it.
    Peer(PeerId),
    /// Wake every delivery task.
    All,
    /// Stop the delivery task of an unregistered peer.
    Stop(PeerId),
}

/// Wakes the pusher after entries were queued (and flushed); cheap to clone.
#[derive(Debug, Clone)]
pub struct PushQueue(mpsc::UnboundedSender<Wake>);

impl PushQueue {
    /// A queue handle and the receiver the pusher reads.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Wake>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (PushQueue(tx), rx)
    }

    /// Wakes the delivery tasks of these peers (starting them if needed).
    pub fn wake<S: AsRef<str>>(&self, peers: impl IntoIterator<Item = S>) {
        for p in peers {
            // The pusher only stops at shutdown; a wake-up after that has nothing to do.
            let _ = self.0.send(Wake::Peer(PeerId(p.as_ref().to_owned())));
        }
    }

    /// Wakes every delivery task.
    pub fn wake_all(&self) {
        let _ = self.0.send(Wake::All);
    }

    /// Stops the delivery task of a peer that is gone.
    pub fn stop(&self, peer: &PeerId) {
        let _ = self.0.send(Wake::Stop(peer.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_pushes_coalesce_per_object_and_cdrs_never() {
        let a = Push::EvseStatus {
            station: "CS:1".into(),
            evse: 3,
        };
        assert_eq!(a.coalesce_key().as_deref(), Some("PATCH evse:3:CS:1"));
        assert_ne!(
            Push::Session { id: "S".into() }.coalesce_key(),
            Push::SessionPatch { id: "S".into() }.coalesce_key()
        );
        assert_eq!(
            Push::Cdr {
                id: "S".into(),
                session: None
            }
            .coalesce_key(),
            None
        );
        assert_eq!(
            Push::Location { id: "LOC1".into() }.subject(),
            "location:LOC1"
        );
    }

    #[test]
    fn command_results_are_bare_bodies_with_an_optional_message() {
        use CommandResultType as R;
        let body = serde_json::to_value(command_result(R::Timeout, None)).unwrap();
        assert_eq!(body, serde_json::json!({"result": "TIMEOUT"}));
        let body = serde_json::to_value(command_result(R::Failed, Some("x".repeat(600)))).unwrap();
        assert_eq!(body["result"], "FAILED");
        assert_eq!(body["message"][0]["language"], "en");
        assert_eq!(body["message"][0]["text"].as_str().unwrap().len(), 512);
    }

    #[test]
    fn pushes_are_stored_as_externally_tagged_json() {
        let p = Push::Location { id: "L".into() };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v, serde_json::json!({"Location": {"id": "L"}}));
        assert_eq!(serde_json::from_value::<Push>(v).unwrap(), p);
    }

    #[test]
    fn removals_are_a_patch_and_a_delete_of_their_own() {
        let d = Push::TariffDelete { id: "T1".into() };
        assert_eq!((d.method(), d.module()), ("DELETE", "tariffs"));
        assert_ne!(
            d.coalesce_key(),
            Push::Tariff { id: "T1".into() }.coalesce_key()
        );
        let r = Push::EvseRemoved {
            location: "LOC1".into(),
            station: "CS1".into(),
            uid: "CS1-1".into(),
            at: chrono::Utc::now(),
        };
        assert_eq!((r.method(), r.module()), ("PATCH", "locations"));
        assert_eq!(r.subject(), "evse_removed:LOC1/CS1-1");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(serde_json::from_value::<Push>(v).unwrap(), r);
    }
}
