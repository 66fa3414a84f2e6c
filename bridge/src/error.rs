//! The bridge's error type — what callers act on — and the one way to report a write that
//! failed where nobody can act on it.
//!
//! Station handlers turn an [`Error`] into a CALLERROR `InternalError` (the station retries),
//! the OCPI adapter into OCPI 3000 (the peer retries). A background write that fails (a
//! delivery receipt, a reservation flag) is never dropped silently: [`Logged::or_log`] logs it
//! and counts it in `bridge_store_errors_total`.

/// What went wrong in the bridge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed; the change did not happen and may be retried.
    #[error(transparent)]
    Store(#[from] state::Error),
}

impl From<Error> for ocpi::OcpiError {
    fn from(e: Error) -> Self {
        ocpi::OcpiError::Server(e.to_string())
    }
}

impl From<Error> for ocpp::CallFault {
    fn from(e: Error) -> Self {
        store_failed("storing a station message", &e);
        ocpp::CallFault::new(
            ocpp::ErrorCode::InternalError,
            "storage failure; please retry",
        )
    }
}

/// Result with the bridge's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Logs a failed store write and counts it in `bridge_store_errors_total`.
pub fn store_failed(what: &str, error: &dyn std::fmt::Display) {
    tracing::error!(error = %error, "{what} failed");
    metrics::counter!("bridge_store_errors_total").increment(1);
}

/// For results nobody up the stack can act on: log and count instead of dropping.
pub trait Logged<T> {
    /// The value, or `None` after logging `what` failed (and counting it).
    fn or_log(self, what: &str) -> Option<T>;
}

impl<T, E: std::fmt::Display> Logged<T> for std::result::Result<T, E> {
    fn or_log(self, what: &str) -> Option<T> {
        match self {
            Ok(v) => Some(v),
            Err(e) => {
                store_failed(what, &e);
                None
            }
        }
    }
}
