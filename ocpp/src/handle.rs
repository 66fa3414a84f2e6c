//! [`StationHandle`]: reach one connected station (send it a CALL, close it), and the
//! [`Registry`] of connected stations.
//!
//! Invariants:
//! - A handle talks to its connection task through channels only; the task owns the socket.
//!   Outgoing CALLs wait in a bounded queue (capacity [`CALL_QUEUE`]) and the task sends them one
//!   at a time: at most one outgoing CALL per station is outstanding.
//! - Every [`StationHandle::call`] ends: a full queue answers [`CallFailure::Busy`] at once, a
//!   CALL times out `call_timeout` after it was written, a CALL still queued after
//!   `call_timeout` is dropped with [`CallFailure::Timeout`], and the caller never waits more
//!   than twice `call_timeout` (plus a second) in total.
//! - The registry holds at most one handle per station: the newest connection's. Its lock is a
//!   std `Mutex` that is never held across an `.await` (every method locks, copies, unlocks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::call::{CallAnswer, StationCall};
use crate::{OcppVersion, StationId};

/// How many outgoing CALLs may wait for a station before [`StationHandle::call`] answers
/// [`CallFailure::Busy`].
pub const CALL_QUEUE: usize = 16;

/// Why an outgoing CALL produced no CALLRESULT.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFailure {
    /// No answer within the call timeout (or the CALL waited in the queue too long).
    Timeout,
    /// The station is not connected, or disconnected before answering.
    Disconnected,
    /// The station answered with a CALLERROR.
    CallError {
        /// Error code as sent.
        code: String,
        /// Description as sent.
        description: String,
        /// Error details as sent.
        details: serde_json::Value,
    },
    /// Too many CALLs are already waiting for this station; nothing was sent.
    Busy,
    /// The station answered with a frame that is not a valid CALLRESULT/CALLERROR.
    InvalidResponse {
        /// What was wrong with it.
        reason: String,
    },
    /// [`StationHandle::send`]: the call does not exist in the station's OCPP version; nothing
    /// was sent.
    NotSupportedByVersion {
        /// The station's version.
        version: OcppVersion,
        /// What is missing.
        reason: String,
    },
    /// [`StationHandle::send`]: the call's arguments cannot be encoded schema-valid (e.g. an
    /// idTag too long for 1.6); nothing was sent.
    InvalidRequest {
        /// What was wrong with them.
        reason: String,
    },
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Timeout => f.write_str("the station did not answer in time"),
            CallFailure::Disconnected => f.write_str("the station is not connected"),
            CallFailure::CallError {
                code, description, ..
            } => {
                write!(f, "the station answered CALLERROR {code}: {description}")
            }
            CallFailure::Busy => f.write_str("too many CALLs are waiting for the station"),
            CallFailure::InvalidResponse { reason } => {
                write!(f, "the station sent an invalid answer: {reason}")
            }
            CallFailure::NotSupportedByVersion { version, reason } => {
                write!(f, "not possible with OCPP {version}: {reason}")
            }
            CallFailure::InvalidRequest { reason } => {
                write!(f, "the call cannot be encoded: {reason}")
            }
        }
    }
}

impl std::error::Error for CallFailure {}

/// An outgoing CALL waiting for the connection task.
#[derive(Debug)]
pub(crate) struct OutgoingCall {
    /// Action name.
    pub(crate) action: String,
    /// Request payload.
    pub(crate) payload: Value,
    /// Where the answer goes.
    pub(crate) reply: oneshot::Sender<Result<Value, CallFailure>>,
    /// When the CALL was queued (bounds the time it may wait for its turn).
    pub(crate) queued_at: Instant,
}

/// A request to close the connection.
#[derive(Debug, Clone)]
pub(crate) struct CloseRequest {
    /// Websocket close code.
    pub(crate) code: CloseCode,
    /// Close reason (≤ 123 bytes on the wire).
    pub(crate) reason: String,
}

/// The connection task's ends of a handle's channels.
#[derive(Debug)]
pub(crate) struct HandleReceivers {
    /// Outgoing CALLs.
    pub(crate) calls: mpsc::Receiver<Box<OutgoingCall>>,
    /// Close requests.
    pub(crate) close: mpsc::Receiver<Box<CloseRequest>>,
}

/// Reaches one connected station. Cheap to clone; all clones reach the same connection.
#[derive(Debug, Clone)]
pub struct StationHandle {
    station: StationId,
    version: OcppVersion,
    connection_id: u64,
    call_timeout: Duration,
    // Boxed: a channel allocates its first block of 32 slots up front, and with the messages
    // inline the two blocks were ~3.5 KiB of every idle connection.
    calls: mpsc::Sender<Box<OutgoingCall>>,
    close: mpsc::Sender<Box<CloseRequest>>,
}

/// `now + d`, or `None` if that is too far away to represent.
fn deadline(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

impl StationHandle {
    /// A handle and the receivers its connection task reads.
    pub(crate) fn new(
        station: StationId,
        version: OcppVersion,
        connection_id: u64,
        call_timeout: Duration,
    ) -> (StationHandle, HandleReceivers) {
        let (calls, calls_rx) = mpsc::channel(CALL_QUEUE);
        let (close, close_rx) = mpsc::channel(1);
        let handle = StationHandle {
            station,
            version,
            connection_id,
            call_timeout,
            calls,
            close,
        };
        (
            handle,
            HandleReceivers {
                calls: calls_rx,
                close: close_rx,
            },
        )
    }

    /// The station's identity.
    pub fn station(&self) -> &StationId {
        &self.station
    }

    /// The OCPP version negotiated on this connection.
    pub fn version(&self) -> OcppVersion {
        self.version
    }

    /// Identifies the websocket connection (increases with each connection).
    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    /// True while the connection task runs.
    pub fn is_connected(&self) -> bool {
        !self.calls.is_closed()
    }

    /// Sends a CALL (fresh UUID message id) and awaits the CALLRESULT payload.
    ///
    /// Calls to one station are sent one at a time, in the order they were made. Must not be
    /// awaited from inside [`crate::Csms::request`] for the same station (that answer is read by
    /// the task running the handler).
    pub async fn call(&self, action: &str, payload: Value) -> Result<Value, CallFailure> {
        let (reply, answer) = oneshot::channel();
        let call = OutgoingCall {
            action: action.to_owned(),
            payload,
            reply,
            queued_at: Instant::now(),
        };
        match self.calls.try_send(Box::new(call)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(CallFailure::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(CallFailure::Disconnected),
        }
        // The connection task enforces the real timeouts; this only guards against a task that
        // stops answering altogether.
        let bound = self
            .call_timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1));
        let answer = match deadline(bound) {
            Some(at) => match tokio::time::timeout_at(at, answer).await {
                Ok(answer) => answer,
                Err(_) => return Err(CallFailure::Timeout),
            },
            None => answer.await,
        };
        answer.unwrap_or(Err(CallFailure::Disconnected))
    }

    /// Sends a typed [`StationCall`] in the station's version and decodes the answer.
    ///
    /// Nothing is sent when the call cannot be encoded ([`CallFailure::NotSupportedByVersion`],
    /// [`CallFailure::InvalidRequest`]); an answer that does not decode is
    /// [`CallFailure::InvalidResponse`]. Otherwise as [`StationHandle::call`].
    pub async fn send(&self, call: &StationCall) -> Result<CallAnswer, CallFailure> {
        let (action, payload) = crate::call::encode_call(self.version, call)
            .map_err(|f| crate::call::encode_failure(self.version, f))?;
        let answer = self.call(action, payload).await?;
        crate::call::decode_answer(self.version, call, answer).map_err(|f| {
            CallFailure::InvalidResponse {
                reason: f.to_string(),
            }
        })
    }

    /// Asks the connection to close normally (close code 1000).
    pub fn close(&self) {
        self.close_with(CloseCode::Normal, "closed by the CSMS");
    }

    /// Asks the connection to close normally (close code 1000) with a reason (cut to the 123
    /// bytes a close frame can carry).
    pub fn close_with_reason(&self, reason: &str) {
        self.close_with(CloseCode::Normal, reason);
    }

    /// Asks the connection to close with a code and reason. Only the first request counts.
    pub(crate) fn close_with(&self, code: CloseCode, reason: &str) {
        let request = CloseRequest {
            code,
            reason: reason.to_owned(),
        };
        // Full: a close is already requested. Closed: the connection is gone. Both are fine.
        let _ = self.close.try_send(Box::new(request));
    }
}

/// The connected stations, by identity. Cheap to clone; clones share the same map.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    // std Mutex: every access is a short map operation, never held across an `.await`.
    stations: Arc<Mutex<HashMap<StationId, StationHandle>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<StationId, StationHandle>> {
        // A panic while holding this lock can't leave the map half-updated (single map
        // operations), so a poisoned lock is still usable.
        self.stations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handle of a connected station.
    pub fn get(&self, station: &StationId) -> Option<StationHandle> {
        self.lock().get(station).cloned()
    }

    /// All connected stations' handles (in no particular order).
    pub fn list(&self) -> Vec<StationHandle> {
        self.lock().values().cloned().collect()
    }

    /// How many stations are connected.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no station is connected.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Connected stations per version: `(ocpp1.6, ocpp2.0.1)`.
    pub fn count_by_version(&self) -> (usize, usize) {
        self.lock()
            .values()
            .fold((0, 0), |(v16, v201), h| match h.version() {
                OcppVersion::V16 => (v16 + 1, v201),
                OcppVersion::V201 => (v16, v201 + 1),
            })
    }

    /// Registers a handle; returns the handle it replaced (an older connection of the station).
    pub fn insert(&self, handle: StationHandle) -> Option<StationHandle> {
        self.lock().insert(handle.station.clone(), handle)
    }

    /// Removes a station, but only while `connection_id` is still its registered connection
    /// (a replaced connection must not remove its successor). Returns whether it removed.
    pub fn remove_if(&self, station: &StationId, connection_id: u64) -> bool {
        let mut map = self.lock();
        if map
            .get(station)
            .is_some_and(|h| h.connection_id == connection_id)
        {
            map.remove(station);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(id: &str, version: OcppVersion, conn: u64) -> (StationHandle, HandleReceivers) {
        StationHandle::new(
            StationId::from(id),
            version,
            conn,
            Duration::from_millis(100),
        )
    }

    #[test]
    fn insert_returns_the_replaced_handle_and_remove_if_spares_the_successor() {
        let registry = Registry::default();
        let (old, _rx1) = handle("CP1", OcppVersion::V16, 1);
        let (new, _rx2) = handle("CP1", OcppVersion::V16, 2);
        assert!(registry.insert(old).is_none());
        assert_eq!(registry.insert(new).map(|h| h.connection_id()), Some(1));
        assert!(!registry.remove_if(&StationId::from("CP1"), 1));
        assert_eq!(registry.len(), 1);
        assert!(registry.remove_if(&StationId::from("CP1"), 2));
        assert!(registry.is_empty());
    }

    #[test]
    fn count_by_version_counts_each_version() {
        let registry = Registry::default();
        let mut keep = Vec::new();
        for (id, v, c) in [("a", OcppVersion::V16, 1), ("b", OcppVersion::V201, 2)] {
            let (h, rx) = handle(id, v, c);
            keep.push(rx);
            registry.insert(h);
        }
        let (h, rx) = handle("c", OcppVersion::V201, 3);
        keep.push(rx);
        registry.insert(h);
        assert_eq!(registry.count_by_version(), (1, 2));
        assert_eq!(registry.list().len(), 3);
        assert_eq!(
            registry.get(&StationId::from("b")).map(|h| h.version()),
            Some(OcppVersion::V201)
        );
    }

    #[tokio::test]
    async fn a_call_to_a_gone_connection_is_disconnected() {
        let (h, rx) = handle("a", OcppVersion::V16, 1);
        drop(rx);
        assert!(!h.is_connected());
        assert_eq!(
            h.call("Reset", serde_json::json!({})).await,
            Err(CallFailure::Disconnected)
        );
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy() {
        let (h, _rx) = handle("a", OcppVersion::V16, 1);
        let mut waiting = Vec::new();
        for _ in 0..CALL_QUEUE {
            let h = h.clone();
            waiting.push(tokio::spawn(
                async move { h.call("Reset", Value::Null).await },
            ));
        }
        // Let the spawned calls enqueue.
        let filled = tokio::time::timeout(Duration::from_secs(5), async {
            while h.calls.capacity() > 0 {
                tokio::task::yield_now().await;
            }
        });
        filled.await.expect("queue fills");
        assert_eq!(h.call("Reset", Value::Null).await, Err(CallFailure::Busy));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_nobody_answers_times_out_on_the_callers_side() {
        let (h, _rx) = handle("a", OcppVersion::V16, 1);
        assert_eq!(
            h.call("Reset", Value::Null).await,
            Err(CallFailure::Timeout)
        );
    }
}
