//! The credentials handshake as the *initiating* side (we POST/PUT/DELETE on the peer's credentials endpoint),
//! plus [`discover`], the versions → version details walk both directions share.
//!
//! Outbound registration ([`Platform::register`]): GET their versions with token A (base64 first, raw on 401),
//! pick the highest version both offer (within the peer's pin), GET its details, generate token B, **save the peer as pending with `token_in = B` before POSTing**
//! (their callback GETs arrive while our POST is in flight), POST our credentials with token A, store their token
//! C as `token_out`. On failure the previous state is restored. Retrying is the caller's business;
//! [`Platform::register_with_retry`] wraps it in `backon`.

use std::sync::Arc;

use backon::{ExponentialBuilder, Retryable as _};
use reqwest::Method;

use crate::backend::CpoBackend;
use crate::client::{Accepted, Client, PushError};
use crate::envelope::OcpiError;
use crate::peer::{Initiator, Peer, PeerId, PeerOptions, PeerStatus, Quirk};
use crate::platform::Platform;
use crate::types::{
    AuthToken, Credentials, DateTime, Endpoint, ModuleId, OcpiVersion, Version, VersionDetails,
    highest_mutual,
};

/// Result of walking a peer's versions and version details.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// Version chosen (`2.2.1`).
    pub version: String,
    /// Their endpoints for it.
    pub endpoints: Vec<Endpoint>,
    /// Whether they accepted the base64 form of the token.
    pub encode_token: bool,
}

/// Why [`discover`] failed, with the OCPI status code to report when we are the server.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// Their versions/details could not be fetched (→ 3001).
    #[error("cannot use the peer's API: {0}")]
    Unreachable(#[from] PushError),
    /// Valid answer but unusable content (→ 3001).
    #[error("unusable answer from the peer: {0}")]
    InvalidAnswer(String),
    /// No mutual version (→ 3002).
    #[error("no mutual OCPI version (they offer {0:?})")]
    NoMutualVersion(Vec<String>),
    /// Their details lack the credentials module (→ 3003).
    #[error("the peer's version details lack a credentials endpoint")]
    MissingCredentialsEndpoint,
}

impl From<DiscoverError> for OcpiError {
    /// The error the caller sees. It never carries what the peer's server answered (a body
    /// excerpt, a status message, a parser's quote of it): whoever holds token A could
    /// otherwise point `url` at an address only the bridge reaches and read the reply back.
    /// The whole error is logged.
    fn from(e: DiscoverError) -> Self {
        tracing::warn!(error = %e, "using the peer's OCPI API failed");
        let message = e.caller_message();
        match e {
            DiscoverError::Unreachable(_) | DiscoverError::InvalidAnswer(_) => {
                Self::ClientApiUnusable(message)
            }
            DiscoverError::NoMutualVersion(_) => Self::UnsupportedVersion(message),
            DiscoverError::MissingCredentialsEndpoint => Self::NoMatchingEndpoints(message),
        }
    }
}

impl DiscoverError {
    /// What the caller is told: the kind of failure and HTTP/OCPI status codes, nothing of
    /// the peer's answer.
    pub fn caller_message(&self) -> String {
        use crate::client::RetryReason;
        match self {
            Self::Unreachable(PushError::Refused {
                http_status,
                status_code,
                ..
            }) => match status_code {
                Some(code) => format!(
                    "cannot use your API: your server answered HTTP {http_status}, OCPI {code}"
                ),
                None => format!("cannot use your API: your server answered HTTP {http_status}"),
            },
            Self::Unreachable(PushError::Retryable(reason)) => match reason {
                RetryReason::Timeout => "cannot use your API: no answer in time".into(),
                RetryReason::Http(s) => {
                    format!("cannot use your API: your server answered HTTP {s}")
                }
                RetryReason::Ocpi { code, .. } => {
                    format!("cannot use your API: your server answered OCPI {code}")
                }
                RetryReason::Network(_) => "cannot use your API: connection failed".into(),
                RetryReason::InvalidResponse(_) => {
                    "cannot use your API: the answer is not an OCPI envelope".into()
                }
            },
            Self::Unreachable(PushError::Egress(_)) => {
                "cannot use your API: the URL names an address this platform does not contact"
                    .into()
            }
            Self::Unreachable(PushError::InvalidUrl(_)) => {
                "cannot use your API: invalid URL".into()
            }
            Self::Unreachable(_) => "cannot use your API".into(),
            Self::InvalidAnswer(_) => {
                "cannot use your API: the versions or version details answer is not valid OCPI"
                    .into()
            }
            Self::NoMutualVersion(_) => "no mutual OCPI version".into(),
            Self::MissingCredentialsEndpoint => {
                "your version details lack a credentials endpoint".into()
            }
        }
    }
}

impl DiscoverError {
    /// Worth retrying later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unreachable(e) if e.is_retryable())
    }
}

/// Fetches `versions_url` and the details of the highest version both we (all we speak) and the
/// peer offer, with `token` (base64 first; raw if the peer answers 401).
pub async fn discover(
    client: &Client,
    versions_url: &str,
    token: &AuthToken,
) -> Result<Discovered, DiscoverError> {
    discover_with(client, versions_url, token, &OcpiVersion::ALL, &[]).await
}

/// [`discover`] limited to the versions in `allowed` and with the peer's `quirks`: the highest
/// version both sides offer wins. The token goes raw to a 2.1.1 peer (unless
/// [`Quirk::Base64Token2_1_1`]) and Base64-encoded to a 2.2.1/2.3.0 peer (unless it refused that
/// form, or [`Quirk::RawToken`]).
pub async fn discover_with(
    client: &Client,
    versions_url: &str,
    token: &AuthToken,
    allowed: &[OcpiVersion],
    quirks: &[Quirk],
) -> Result<Discovered, DiscoverError> {
    let (answer, base64_accepted) = match get(client, versions_url, token, true).await {
        Err(PushError::Refused {
            http_status: 401, ..
        }) => (get(client, versions_url, token, false).await?, false),
        other => (other?, true),
    };
    let versions: Vec<Version> = answer
        .data()
        .map_err(|e| DiscoverError::InvalidAnswer(format!("versions: {e}")))?
        .ok_or_else(|| DiscoverError::InvalidAnswer("versions: no data".into()))?;
    let theirs: Vec<OcpiVersion> = versions
        .iter()
        .filter_map(|v| OcpiVersion::parse(&v.version))
        .collect();
    let Some(version) = highest_mutual(allowed, &theirs) else {
        return Err(DiscoverError::NoMutualVersion(
            versions.into_iter().map(|v| v.version).collect(),
        ));
    };
    let Some(chosen) = versions
        .iter()
        .find(|v| OcpiVersion::parse(&v.version) == Some(version))
    else {
        return Err(DiscoverError::NoMutualVersion(vec![]));
    };
    let encode_token = match version {
        OcpiVersion::V2_1_1 => quirks.contains(&Quirk::Base64Token2_1_1),
        _ => base64_accepted && !quirks.contains(&Quirk::RawToken),
    };
    let raw: serde_json::Value = get(client, &chosen.url, token, encode_token)
        .await?
        .data()
        .map_err(|e| DiscoverError::InvalidAnswer(format!("version details: {e}")))?
        .ok_or_else(|| DiscoverError::InvalidAnswer("version details: no data".into()))?;
    let details: VersionDetails =
        serde_json::from_value(crate::codec::version_details_from(version, raw))
            .map_err(|e| DiscoverError::InvalidAnswer(format!("version details: {e}")))?;
    if !details
        .endpoints
        .iter()
        .any(|e| e.identifier == ModuleId::Credentials)
    {
        return Err(DiscoverError::MissingCredentialsEndpoint);
    }
    Ok(Discovered {
        version: version.as_str().into(),
        endpoints: details.endpoints,
        encode_token,
    })
}

async fn get(
    client: &Client,
    url: &str,
    token: &AuthToken,
    encode: bool,
) -> Result<Accepted, PushError> {
    client
        .request::<()>(Method::GET, url, token, encode, None, None, None)
        .await
}

/// Why an outbound handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// Versions/details walk failed.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// The credentials request failed.
    #[error("credentials request failed: {0}")]
    Credentials(#[source] PushError),
    /// Their credentials answer is unusable.
    #[error("invalid credentials answer: {0}")]
    InvalidAnswer(String),
    /// Persisting the peer failed.
    #[error("storing the peer failed: {0}")]
    Store(#[from] OcpiError),
    /// No such peer (rotate/unregister).
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
}

impl RegistrationError {
    /// Worth retrying later (network/5xx/OCPI 3xxx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Discover(e) => e.is_retryable(),
            Self::Credentials(e) => e.is_retryable(),
            _ => false,
        }
    }
}

fn credentials_url(peer_endpoints: &[Endpoint]) -> Result<&str, RegistrationError> {
    peer_endpoints
        .iter()
        .find(|e| e.identifier == ModuleId::Credentials)
        .map(|e| e.url.as_str())
        .ok_or(RegistrationError::Discover(
            DiscoverError::MissingCredentialsEndpoint,
        ))
}

fn their_credentials(
    answer: &Accepted,
    version: OcpiVersion,
) -> Result<Credentials, RegistrationError> {
    let raw: serde_json::Value = answer
        .data()
        .map_err(|e| RegistrationError::InvalidAnswer(e.to_string()))?
        .ok_or_else(|| RegistrationError::InvalidAnswer("no credentials in data".into()))?;
    let creds: Credentials = serde_json::from_value(crate::codec::credentials_from(version, raw))
        .map_err(|e| RegistrationError::InvalidAnswer(e.to_string()))?;
    creds.check().map_err(RegistrationError::InvalidAnswer)?;
    Ok(creds)
}

impl<B: CpoBackend> Platform<B> {
    /// Registers with a peer that gave us `token_a` and its `versions_url` (we POST). Returns the stored peer.
    pub async fn register(
        &self,
        id: PeerId,
        versions_url: &str,
        token_a: AuthToken,
    ) -> Result<Peer, RegistrationError> {
        self.register_with_options(id, versions_url, token_a, PeerOptions::default())
            .await
    }

    /// [`Platform::register`] with the peer's version pin and quirks (stored on the peer): the
    /// highest version both sides offer within the pin is used.
    pub async fn register_with_options(
        &self,
        id: PeerId,
        versions_url: &str,
        token_a: AuthToken,
        options: PeerOptions,
    ) -> Result<Peer, RegistrationError> {
        // One credentials change at a time, ours or a peer's (see `Platform::registration_lock`).
        let _serialised = self.registration_lock().await;
        let allowed = options.allowed(&self.settings().served_versions());
        let discovered = discover_with(
            self.client(),
            versions_url,
            &token_a,
            &allowed,
            &options.quirks,
        )
        .await?;
        let url = credentials_url(&discovered.endpoints)?.to_owned();
        let token_b = AuthToken::generate();
        let previous = self.peers().get(&id);
        let pending = Peer {
            id: id.clone(),
            token_in: token_b.clone(),
            token_out: token_a.clone(),
            versions_url: versions_url.to_owned(),
            version: discovered.version,
            endpoints: discovered.endpoints,
            roles: previous
                .as_ref()
                .map(|p| p.roles.clone())
                .unwrap_or_default(),
            registered_at: DateTime::now(),
            encode_token: discovered.encode_token,
            initiated_by: Initiator::Us,
            status: PeerStatus::Pending,
            options,
        };
        self.peers().save(pending.clone())?;
        let version = pending.ocpi_version();
        let body = crate::codec::credentials(version, &self.our_credentials(&token_b));
        let outcome = self
            .client()
            .request(
                Method::POST,
                &url,
                &token_a,
                pending.encode_token,
                Some(&body),
                None,
                None,
            )
            .await
            .map_err(RegistrationError::Credentials)
            .and_then(|answer| their_credentials(&answer, version));
        self.finish(pending, previous, outcome).await
    }

    /// [`Platform::register`] with exponential backoff on retryable errors (`attempts` tries in total).
    pub async fn register_with_retry(
        &self,
        id: PeerId,
        versions_url: &str,
        token_a: AuthToken,
        attempts: usize,
    ) -> Result<Peer, RegistrationError> {
        let backoff = ExponentialBuilder::default()
            .with_max_times(attempts.saturating_sub(1))
            .with_jitter();
        (|| self.register(id.clone(), versions_url, token_a.clone()))
            .retry(backoff)
            .when(RegistrationError::is_retryable)
            .notify(|e, after| tracing::warn!(peer = %id, error = %e, ?after, "registration failed, retrying"))
            .await
    }

    /// Rotates tokens / refreshes endpoints with a registered peer (we PUT): re-discovers their endpoints with the
    /// current `token_out`, sends a new `token_in`, stores their new token.
    pub async fn update_registration(&self, id: &PeerId) -> Result<Peer, RegistrationError> {
        let _serialised = self.registration_lock().await;
        let current = self
            .peers()
            .get(id)
            .ok_or_else(|| RegistrationError::UnknownPeer(id.clone()))?;
        let allowed = current.options.allowed(&self.settings().served_versions());
        let discovered = discover_with(
            self.client(),
            &current.versions_url,
            &current.token_out,
            &allowed,
            &current.options.quirks,
        )
        .await?;
        let url = credentials_url(&discovered.endpoints)?.to_owned();
        let new_token_in = AuthToken::generate();
        let pending = Peer {
            token_in: new_token_in.clone(),
            version: discovered.version,
            endpoints: discovered.endpoints,
            encode_token: discovered.encode_token,
            status: PeerStatus::Pending,
            ..current.clone()
        };
        self.peers().save(pending.clone())?;
        let version = pending.ocpi_version();
        let body = crate::codec::credentials(version, &self.our_credentials(&new_token_in));
        let outcome = self
            .client()
            .request(
                Method::PUT,
                &url,
                &current.token_out,
                pending.encode_token,
                Some(&body),
                None,
                None,
            )
            .await
            .map_err(RegistrationError::Credentials)
            .and_then(|answer| their_credentials(&answer, version));
        self.finish(pending, Some(current), outcome).await
    }

    async fn finish(
        &self,
        pending: Peer,
        previous: Option<Peer>,
        outcome: Result<Credentials, RegistrationError>,
    ) -> Result<Peer, RegistrationError> {
        let creds = match outcome {
            Ok(creds) => creds,
            Err(e) => {
                let restored = match previous {
                    Some(previous) => self.peers().save(previous),
                    None => self.peers().remove(&pending.id),
                };
                if let Err(store) = restored {
                    tracing::error!(peer = %pending.id, error = %store, "could not roll back pending peer");
                }
                return Err(e);
            }
        };
        let peer = Peer {
            token_out: creds.token,
            versions_url: creds.url,
            roles: creds.roles,
            registered_at: DateTime::now(),
            status: PeerStatus::Registered,
            ..pending
        };
        self.peers().save(peer.clone())?;
        tracing::info!(peer = %peer.id, "registered with peer");
        self.backend().peer_registered(&peer).await;
        Ok(peer)
    }

    /// Unregisters (DELETE on their credentials endpoint) and forgets the peer locally even if the DELETE fails;
    /// the DELETE's error is returned.
    pub async fn unregister(&self, id: &PeerId) -> Result<(), RegistrationError> {
        let _serialised = self.registration_lock().await;
        let peer = self
            .peers()
            .get(id)
            .ok_or_else(|| RegistrationError::UnknownPeer(id.clone()))?;
        let remote =
            match peer.endpoint(&ModuleId::Credentials, crate::types::InterfaceRole::Sender) {
                Some(url) => self
                    .client()
                    .request::<()>(
                        Method::DELETE,
                        url,
                        &peer.token_out,
                        peer.encode_token,
                        None,
                        None,
                        None,
                    )
                    .await
                    .map(drop)
                    .map_err(RegistrationError::Credentials),
                None => Err(RegistrationError::Discover(
                    DiscoverError::MissingCredentialsEndpoint,
                )),
            };
        self.peers().remove(id)?;
        self.backend().peer_unregistered(id).await;
        remote
    }
}

/// Shared helper for the server side: the peer registers on our `version`'s credentials
/// endpoint, so that is the version it gets (→ 3002 if its own versions lack it).
pub(crate) async fn discover_for<B: CpoBackend>(
    platform: &Arc<Platform<B>>,
    creds: &Credentials,
    version: OcpiVersion,
    options: &PeerOptions,
) -> Result<Discovered, OcpiError> {
    // A peer's version pin (configuration) holds for its own PUTs too: a version outside it is
    // refused like one its versions lack.
    let allowed: Vec<OcpiVersion> = options
        .allowed(&platform.settings().served_versions())
        .into_iter()
        .filter(|v| *v == version)
        .collect();
    if allowed.is_empty() {
        return Err(OcpiError::from(DiscoverError::NoMutualVersion(vec![
            version.to_string(),
        ])));
    }
    discover_with(
        platform.client(),
        &creds.url,
        &creds.token,
        &allowed,
        &options.quirks,
    )
    .await
    .map_err(|e| {
        tracing::warn!(url = %creds.url, error = %e, "credentials callback failed");
        OcpiError::from(e)
    })
}
