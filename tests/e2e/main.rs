//! End-to-end tests: the real `ocpp-ocpi-bridge` binary, real sockets on 127.0.0.1 (port 0),
//! real sled on disk in a temp dir, driven by the project's own test station.
//!
//! One test binary (`e2e`); each module owns one area of the daemon contract. Every test
//! starts its own daemon, so tests run in parallel without sharing ports or state.

mod boot;
mod charging;
mod check_config;
mod commands;
mod connections;
mod crash_loop;
mod errors;
mod metering;
mod ocpi_credentials;
mod ocpi_lifecycle;
mod ocpi_outbox;
mod ocpi_push;
mod ocpi_registration;
mod ocpi_server;
mod ocpi_support;
mod ocpi_versions;
mod ops;
mod restart;
mod roaming;
mod shutdown;
mod smart;
mod station_ids;
mod stops;
mod tls;
mod transactions;

use std::time::Duration;

use bridge_tests::TestConfig;

/// Deadline for effects that should be visible in the admin API "right away".
const SOON: Duration = Duration::from_secs(10);
/// Bound for frames the daemon should send in response to something we did.
const FRAME_WAIT: Duration = Duration::from_secs(5);

/// The stations most tests use: CS001/CS002 (1.6, no password), CS201/CS202 (2.0.1, no
/// password), SECURE (password `s3cret-pass`).
fn default_config() -> TestConfig {
    TestConfig::new()
        .station("CS001")
        .station("CS002")
        .station("CS201")
        .station("CS202")
        .station_with_password("SECURE", "s3cret-pass")
}
