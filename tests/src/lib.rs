//! # Test support for the end-to-end tests
//!
//! Everything here drives the *real* daemon binary (`ocpp-ocpi-bridge`) over real sockets on
//! 127.0.0.1 with a real sled directory on disk. Nothing in this crate links the daemon's code:
//! the tests only know the published contract (CLI, ready file, OCPP-J on the wire, admin API).
//!
//! - [`config`]: [`TestConfig`], a builder for the daemon's TOML config (every listener on port 0).
//! - [`daemon`]: [`Daemon`], one daemon process in its own temp dir (start, restart, signals, admin API).
//! - [`hub`]: [`Hub`], a fake OCPI 2.2.1 roaming hub / eMSP (registration both ways, records pushes).
//! - [`station`]: [`Station`], our own OCPP-J station (independent frame codec on tokio-tungstenite).
//! - [`pki`]: certificates made at test time (rcgen): CA, server, station, expired.
//! - [`payloads`]: schema-valid request payloads for OCPP 1.6 and 2.0.1 so tests stay short.
//! - [`wait`]: bounded polling (`eventually`), the only way tests wait for asynchronous effects.
//!
//! Invariant: every wait in this crate is bounded; a hung daemon fails a test, it never hangs it.

pub mod config;
pub mod daemon;
pub mod hub;
pub mod payloads;
pub mod pki;
pub mod station;
pub mod wait;

pub use config::{TestConfig, TestLocation, TestPeer, TestStation, TestTariff, TestTls};
pub use daemon::{Daemon, ReadyInfo};
pub use hub::{Hub, HubMode, HubOptions, Push};
pub use station::{
    CallError, CloseInfo, ConnectError, OcppVersion, Reply, Station, StationOptions,
};
pub use wait::eventually;

/// Install the ring crypto provider for rustls once per process.
///
/// reqwest is built with `rustls-no-provider`; even plain-HTTP clients need a process-wide
/// provider. A second install returns an error, which is fine and ignored.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The current UTC time as OCPP wants it: RFC 3339, milliseconds, `Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
