//! [`Platform`]: the shared handle of the OCPI side — backend, peer cache and outbound client. The axum router
//! ([`Platform::router`]) and the outbound registration functions (`registration.rs`) both work on it, so a
//! token issued by one is immediately accepted by the other.

use std::sync::Arc;

use crate::backend::CpoBackend;
use crate::client::Client;
use crate::envelope::OcpiError;
use crate::peer::Peers;
use crate::settings::Settings;
use crate::types::{AuthToken, Credentials};

/// Backend + peers + client. Cheap to share as `Arc<Platform<B>>`.
pub struct Platform<B> {
    backend: Arc<B>,
    peers: Peers,
    client: Client,
    /// Serialises credentials POSTs: the "already registered" check, the token A check and storing the peer
    /// happen as one step, so one token A registers one party.
    registration: tokio::sync::Mutex<()>,
}

impl<B> std::fmt::Debug for Platform<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl<B: CpoBackend> Platform<B> {
    /// The platform over `backend` and the peer cache (loaded with [`Peers::load`]), with a default [`Client`].
    pub fn new(backend: Arc<B>, peers: Peers) -> Result<Arc<Self>, OcpiError> {
        let client =
            Client::new(backend.settings()).map_err(|e| OcpiError::Server(e.to_string()))?;
        Ok(Self::with_client(backend, peers, client))
    }

    /// Like [`Platform::new`] with a custom client (timeouts).
    pub fn with_client(backend: Arc<B>, peers: Peers, client: Client) -> Arc<Self> {
        Arc::new(Self {
            backend,
            peers,
            client,
            registration: tokio::sync::Mutex::new(()),
        })
    }

    /// The daemon's backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// Peer cache (write-through to the backend).
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Held during every change of a peer's credentials — a peer's POST, PUT or DELETE on our
    /// credentials endpoint, and our own registration, update (rotation) or unregistration —
    /// so that two of them never interleave (e.g. a peer's DELETE during our rotation, which
    /// would otherwise bring its old token back when the rotation rolls back).
    pub(crate) async fn registration_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.registration.lock().await
    }

    /// Outbound client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Our settings.
    pub fn settings(&self) -> &Settings {
        self.backend.settings()
    }

    /// Our credentials object carrying `token` (the token the peer must use to call us).
    pub fn our_credentials(&self, token: &AuthToken) -> Credentials {
        let settings = self.settings();
        Credentials {
            token: token.clone(),
            url: settings.versions_url(),
            roles: vec![settings.role()],
        }
    }

    /// The axum router serving all our OCPI endpoints under `/ocpi`.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        crate::server::router(self.clone())
    }
}
