//! [`CpoBackend`]: what the daemon provides to the OCPI side — our identity, the current Locations/Tariffs and peer
//! persistence — plus hooks for registration events.
//!
//! Invariant: list methods return a **stable order** (ideally creation order, so objects created while a peer
//! crawls appear on later pages); the server filters by `last_updated` and paginates in that order.

use std::future::Future;

use crate::envelope::OcpiError;
use crate::peer::{Peer, PeerId};
use crate::settings::Settings;
use crate::types::{Location, LocationId, Tariff};

/// Implemented by the daemon. Methods are synchronous (reads of a local store); hooks are async.
pub trait CpoBackend: Send + Sync + 'static {
    /// Our identity and public URL.
    fn settings(&self) -> &Settings;

    /// All Locations visible to `caller`, in a stable order.
    fn locations(&self, caller: &Peer) -> Result<Vec<Location>, OcpiError>;

    /// One Location visible to `caller` (ids compare case-insensitively).
    fn location(&self, caller: &Peer, id: &LocationId) -> Result<Option<Location>, OcpiError> {
        Ok(self.locations(caller)?.into_iter().find(|l| &l.id == id))
    }

    /// All Tariffs visible to `caller`, in a stable order.
    fn tariffs(&self, caller: &Peer) -> Result<Vec<Tariff>, OcpiError>;

    /// All persisted peers; read once when the [`crate::Ocpi`] handle is built.
    fn peers(&self) -> Result<Vec<Peer>, OcpiError>;

    /// Persist (insert or replace by id) a peer. Must be durable before returning: the handshake answers only
    /// after this succeeded.
    fn save_peer(&self, peer: &Peer) -> Result<(), OcpiError>;

    /// Forget a peer (no error if absent).
    fn delete_peer(&self, id: &PeerId) -> Result<(), OcpiError>;

    /// Called after a handshake (either direction, POST or PUT) completed; e.g. queue initial full pushes.
    fn peer_registered(&self, peer: &Peer) -> impl Future<Output = ()> + Send {
        let _ = peer;
        async {}
    }

    /// Called after a peer unregistered (their DELETE or ours).
    fn peer_unregistered(&self, id: &PeerId) -> impl Future<Output = ()> + Send {
        let _ = id;
        async {}
    }
}
