//! # ocpp-ocpi-bridge
//!
//! The daemon: stations speak OCPP-J to it, it keeps their state in sled and is the operator's
//! OCPI 2.2.1 CPO endpoint. This crate is the wiring and all OCPP ↔ OCPI translation; the
//! protocols live in the `ocpp` and `ocpi` crates and storage in `state`.
//!
//! ## Layout (bottom-up: each module uses only the ones above it)
//! - Foundations: [`config`] (settings, layered loading, validation), [`telemetry`],
//!   [`supervisor`] (signals, sd-notify), [`error`] (what callers act on; failed background
//!   writes are logged and counted), [`tls`] (the listeners' certificate files: checks, SIGHUP
//!   reload, expiry metric), [`http`] (the bounded HTTP server of the OCPI and admin
//!   listeners: timeouts, connection cap, optional HTTPS).
//! - Pure translation: [`evse`] (OCPP connector status → OCPI EVSE status), [`meter`]
//!   (sampled values → Wh), [`periods`] (samples → charging periods, tariff boundaries),
//!   [`pricing`] (the `ocpi-tariffs` boundary).
//! - What is stored: [`records`] (every record kind and index the bridge keeps in `state`).
//! - Facts and handles: [`catalog`] (what the configuration contributes: Locations, EVSE ids,
//!   connectors, tariffs, `CdrLocation`), [`outbox`] (the push protocol as data, who receives
//!   what, the [`outbox::PushQueue`] handle), [`tokens`] (token store, 1.6 aliases,
//!   incremental pulls and full reconciles), [`peers`] (peer persistence, configured peers),
//!   [`hub`] (parties behind a hub: ClientInfo, held pushes).
//! - The flows: [`auth`] (driver authorization), [`sessions`] (Sessions and CDRs from
//!   transactions), [`reservations`] (reservation lifecycle), [`commands`] (OCPI commands →
//!   OCPP calls), [`smart`] (OCPI ChargingProfiles → OCPP smart charging), [`station`] (the
//!   [`ocpp::Csms`]: station messages → store → flows).
//! - Delivery and adapters: [`push`] (the pusher: one delivery task per peer), [`cpo`] (the
//!   thin [`ocpi::CpoBackend`] adapter), [`credentials`] (the credentials lifecycle we start:
//!   token rotation, unregistration, fresh tokens A), [`admin`] (`/healthz`, `/metrics`, `/admin/*`),
//!   [`page`] (the operator's status page at `/`), [`cli`] (the admin CLI's rendering).
//! - [`app`]: builds all of it in order ([`app::Core::build`]) and runs the daemon
//!   ([`run`]).
//!
//! ## Runtime shape
//! [`run`] opens the store, binds the three listeners (OCPP, OCPI, admin), reports the bound
//! addresses, then serves until the shutdown token is cancelled: it stops accepting, closes
//! station sockets with 1001, stops the HTTP servers, flushes the store and returns. Data flows
//! one way: station → `ocpp` event → [`station`] applies it to the store (the fact and its
//! outbox entries in one transaction) → [`push`] drains the outbox per peer.

pub mod admin;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod cpo;
pub mod credentials;
pub mod error;
pub mod evse;
pub mod http;
pub mod hub;
pub mod meter;
#[cfg(test)]
mod module_graph;
pub mod outbox;
pub mod page;
pub mod peers;
pub mod periods;
pub mod pricing;
pub mod push;
pub mod records;
pub mod reservations;
pub mod sessions;
pub mod smart;
pub mod station;
pub mod supervisor;
pub mod telemetry;
pub mod tls;
pub mod tokens;

pub use app::{Addresses, public_url_with_port, run};

/// FNV-1a: a hash stable across releases and platforms (std's hasher is not), for fingerprints
/// and aliases that are stored or handed to stations.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
