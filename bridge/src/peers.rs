//! OCPI peers on the bridge's side: where they are persisted ([`PeerRecords`], the
//! [`ocpi::PeerStore`] over the store) and the stable ids of the peers the configuration asks us
//! to register with.

use std::collections::HashMap;

use ocpi::{OcpiError, Peer, PeerId};
use state::Store;

use crate::config::Settings;

/// Peer persistence over the store (opaque JSON owned by the `ocpi` crate).
#[derive(Debug, Clone)]
pub struct PeerRecords(pub Store);

fn server_error(e: impl std::fmt::Display) -> OcpiError {
    OcpiError::Server(e.to_string())
}

impl ocpi::PeerStore for PeerRecords {
    fn load_peers(&self) -> Result<Vec<Peer>, OcpiError> {
        let mut out = Vec::new();
        for (id, value) in self.0.peers().map_err(server_error)? {
            match serde_json::from_value::<Peer>(value) {
                Ok(p) => out.push(p),
                Err(e) => tracing::error!(peer = %id, error = %e, "unreadable peer record skipped"),
            }
        }
        Ok(out)
    }

    fn save_peer(&self, peer: &Peer) -> Result<(), OcpiError> {
        let value = serde_json::to_value(peer).map_err(server_error)?;
        self.0
            .put_peer(peer.id.as_str(), &value)
            .map_err(server_error)?;
        self.0.flush_blocking().map_err(server_error)
    }

    fn delete_peer(&self, id: &PeerId) -> Result<(), OcpiError> {
        self.0.delete_peer(id.as_str()).map_err(server_error)?;
        self.0.flush_blocking().map_err(server_error)
    }
}

/// A configured peer's stable id: the host (and port) of its versions URL, made unique.
pub fn configured_peer_ids(settings: &Settings) -> Vec<(PeerId, String)> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    settings
        .ocpi
        .peers
        .iter()
        .map(|p| {
            let host = p
                .versions_url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("peer")
                .to_owned();
            let n = seen.entry(host.clone()).or_insert(0);
            *n += 1;
            let id = if *n == 1 { host } else { format!("{host}#{n}") };
            (PeerId(id), p.versions_url.clone())
        })
        .collect()
}
