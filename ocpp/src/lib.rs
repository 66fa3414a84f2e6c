//! # OCPP-J 1.6 / 2.0.1, CSMS side
//!
//! This crate knows nothing of OCPI. It accepts station websockets, speaks the OCPP-J RPC
//! framework, turns each station CALL into a version-neutral [`StationRequest`] for the
//! application (a [`Csms`] implementation) and encodes its [`StationResponse`] back into the
//! station's version. Outgoing CALLs go through a [`StationHandle`].
//!
//! ## Layout
//! - [`event`]: version-neutral requests and responses.
//! - [`call`]: version-neutral CSMS → station calls ([`StationCall`]) and their answers
//!   ([`CallAnswer`]).
//! - [`schedule`]: smart charging: the version-neutral [`ChargingSchedule`], its 1.6 / 2.0.1
//!   encodings (SetChargingProfile TxProfile, GetCompositeSchedule, ClearChargingProfile) and
//!   the 2.0.1 limit reports ([`ChargingLimitReport`]).
//! - [`error`]: RPC error codes spelled per version.
//! - [`frame`]: the OCPP-J frame codec (`[2,id,action,payload]`, `[3,id,payload]`,
//!   `[4,id,code,description,details]`).
//! - [`v16`], [`v201`]: per-version action tables: decode a CALL payload into a
//!   [`StationRequest`] (lenient with what real stations send) and encode a [`StationResponse`]
//!   (strictly schema-valid).
//! - `lenient` (private): the leniency helpers both action tables share (typed decoding with
//!   OCPP error codes, timestamp normalisation, meter values as real stations send them).
//! - [`server`]: the accept loop and websocket handshake (path → [`StationId`], Basic auth,
//!   subprotocol negotiation), on plain TCP or TLS.
//! - [`security`]: pure security-profile decisions (does a connection meet a station's
//!   minimum profile 0–3?).
//! - [`tls`]: the rustls server configuration (whitepaper cipher suites, ALPN, client
//!   certificates), a reloadable handle, the CN of a client certificate.
//! - [`connection`]: one task per station; all messages of a station are handled in order.
//! - [`handle`]: [`StationHandle`] (send a CALL to a station and await its answer) and the
//!   [`Registry`] of connected stations.

pub mod call;
pub mod connection;
pub mod error;
pub mod event;
pub mod frame;
pub mod handle;
mod lenient;
pub mod schedule;
pub mod security;
pub mod server;
pub mod tls;
pub mod v16;
pub mod v201;

pub use call::*;
pub use error::{CallFault, ErrorCode};
pub use event::*;
pub use handle::{CallFailure, Registry, StationHandle};
pub use schedule::{
    ChargingLimitReport, ChargingRateUnit, ChargingSchedule, CompositeSchedule, SchedulePeriod,
};
pub use server::{Server, ServerSettings};

use std::future::Future;

/// What a connecting station presented before the websocket upgrade.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Basic-auth username, if a Basic `Authorization` header was sent.
    pub username: Option<String>,
    /// Basic-auth password as raw bytes (1.6 profile 1 keys may be binary).
    pub password: Option<Vec<u8>>,
    /// Whether the connection came in over TLS (the `wss://` listener).
    pub tls: bool,
    /// Subject CN of the client certificate, when one was presented and rustls verified that
    /// it chains to the configured client CA.
    pub client_cert_cn: Option<String>,
}

/// The application's verdict on a connecting station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Upgrade the connection.
    Accept,
    /// HTTP 401: credentials missing or wrong.
    Unauthorized,
    /// HTTP 404: unknown station identity.
    UnknownStation,
    /// HTTP 403: the connection is below the station's minimum security profile (plain
    /// websocket where TLS is required, no or another station's client certificate).
    Forbidden,
}

/// Context of one station CALL.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The station.
    pub station: StationId,
    /// The negotiated version.
    pub version: OcppVersion,
    /// Identifies this websocket connection (increases with each connection).
    pub connection_id: u64,
    /// The CALL's message id.
    pub message_id: String,
    /// The action name as sent.
    pub action: String,
}

/// The application behind the OCPP server: decides admission and answers station CALLs.
///
/// Calls for one station are made in order, one at a time. A handler must not await an
/// outgoing CALL to the same station (that answer is read by the same task).
pub trait Csms: Send + Sync + 'static {
    /// Decides, before the websocket upgrade, whether this station may connect.
    fn admit(&self, station: &StationId, credentials: &Credentials) -> Admission;

    /// A station connected (after the upgrade). `handle` reaches it until it disconnects.
    fn connected(
        &self,
        station: &StationId,
        version: OcppVersion,
        handle: StationHandle,
    ) -> impl Future<Output = ()> + Send;

    /// The connection `connection_id` of a station ended (it may already have been replaced).
    fn disconnected(
        &self,
        station: &StationId,
        connection_id: u64,
    ) -> impl Future<Output = ()> + Send;

    /// Answers a station CALL. An `Err` becomes a CALLERROR with that code.
    fn request(
        &self,
        ctx: &RequestContext,
        request: StationRequest,
    ) -> impl Future<Output = Result<StationResponse, CallFault>> + Send;
}
