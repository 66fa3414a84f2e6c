//! OCPI 2.2.1 (plus 2.1.1 and 2.3.0 through per-version codecs), CPO side: wire types, the axum server for our
//! modules (Sender: locations, tariffs, sessions, cdrs; Receiver: tokens, commands, chargingprofiles) and the
//! credentials handshake, the outbound client for pushes/pulls/real-time authorization/command and
//! charging-profile results, and outbound registration. Knows nothing about OCPP.
//!
//! # Layout
//! - [`codec`]: per-version wire shapes (2.1.1, 2.2.1, 2.3.0) of every object, as pure functions over JSON; the
//!   server answers and the client pushes in the peer's version ([`Peer::ocpi_version`]).
//! - [`types`]: hand-written serde types (DateTime, CiString ids, Location, Tariff, Session, Cdr, Token, commands,
//!   charging profiles, Credentials, Version…) with `validate()` where the spec has rules serde can't check.
//! - [`envelope`]: the response envelope, [`OcpiError`] (HTTP + OCPI status mapping), the [`envelope::OcpiJson`]
//!   extractor.
//! - [`CpoBackend`]: what the daemon implements (data, hooks); [`PeerStore`]: where peers are persisted.
//! - [`Platform`]: backend + peer cache + client; [`Platform::router`] serves `/ocpi/...`.
//! - [`server`]: routes and middleware (auth, request ids, routing headers, pagination).
//! - [`client`]: outbound requests with retry classification.
//! - [`registration`]: handshake as initiator (`Platform::register`, `update_registration`, `unregister`).
//!
//! # serde and numbers
//! serde_json's `arbitrary_precision` is enabled for the whole build (by other crates). Therefore no type here
//! uses `#[serde(untagged)]`, `#[serde(flatten)]` or internally tagged enums, and decimals use
//! `rust_decimal::serde::arbitrary_precision` so they are JSON numbers.
//!
//! # TLS
//! The outbound client uses rustls without a built-in provider; [`client::Client::new`] installs `ring` as the
//! process default when none is installed.

#![warn(missing_docs)]

mod backend;
pub mod client;
pub mod codec;
pub mod egress;
pub mod envelope;
mod peer;
mod platform;
pub mod registration;
pub mod server;
mod settings;
pub mod types;

pub use backend::CpoBackend;
pub use client::{Accepted, AuthorizeOutcome, Client, PushError, Recipient, RetryReason};
pub use envelope::{OcpiError, Response};
pub use peer::{
    Initiator, Peer, PeerId, PeerOptions, PeerStatus, PeerStore, Peers, Quirk, counterpart_roles,
};
pub use platform::Platform;
pub use registration::{DiscoverError, RegistrationError};
pub use settings::{DEFAULT_PAGE_LIMIT, Settings};
