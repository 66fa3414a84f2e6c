//! One task per station connection: reads frames, answers station CALLs through the [`Csms`],
//! sends the CALLs queued on the station's [`StationHandle`], pings, and shuts down cleanly.
//!
//! Invariants:
//! - The task owns the socket; everything else reaches it through the handle's channels.
//! - Station CALLs are handled one at a time and answered in the order they arrived (their
//!   answers, and the CALLERRORs for broken frames, are queued behind the running handler). At
//!   most `queued_requests` wait; a CALL beyond that is answered at once with `GenericError`.
//! - The handler runs concurrently with reading, so the answer to our own outgoing CALL is
//!   processed while the application works on a station CALL.
//! - At most one outgoing CALL is outstanding; it ends with its CALLRESULT/CALLERROR, after
//!   `call_timeout`, or with [`CallFailure::Disconnected`] when the connection ends.
//! - A station's broken frame never ends the connection: it gets a CALLERROR (spelled for the
//!   version, id `"-1"` when unreadable), except unknown MessageTypeIds in 1.6 (ignored, 1.6-J
//!   §4.1.3) and broken CALLRESULT/CALLERRORs (never answered).
//! - On exit the connection leaves the [`Registry`] (only if still the registered one) and
//!   [`Csms::disconnected`] is called; a handler already running is allowed to finish (bounded),
//!   so the application is not cancelled half-way.
//! - Every log line is inside the `station` span (id, version, connection).

use std::collections::VecDeque;
use std::fmt::Display;
use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::{Instant, Interval, MissedTickBehavior, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::frame::{Frame, FrameError, UNKNOWN_MESSAGE_ID};
use crate::handle::{CallFailure, CloseRequest, HandleReceivers, OutgoingCall};
use crate::{
    CallFault, Csms, ErrorCode, OcppVersion, Registry, RequestContext, ServerSettings,
    StationHandle, StationId, StationRequest, StationResponse,
};

/// How long closing may take: sending our close frame and reading the station's reply.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a running handler may take to finish once the connection ends.
const FINISH_HANDLER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest close reason in bytes (a close frame's payload is ≤ 125 bytes, 2 of them the code).
const MAX_CLOSE_REASON: usize = 123;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id (process-wide, increasing).
pub fn next_connection_id() -> u64 {
    NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed)
}

/// What every connection of a server shares.
pub struct Shared<C> {
    /// The application.
    pub csms: Arc<C>,
    /// The connected stations.
    pub registry: Registry,
    /// Timeouts and limits.
    pub settings: Arc<ServerSettings>,
    /// Server shutdown: connections close with 1001 (going away) when it is cancelled.
    pub shutdown: CancellationToken,
}

impl<C> Clone for Shared<C> {
    fn clone(&self) -> Self {
        Shared {
            csms: Arc::clone(&self.csms),
            registry: self.registry.clone(),
            settings: Arc::clone(&self.settings),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<C> std::fmt::Debug for Shared<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("registry", &self.registry)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Decoder and encoder of one OCPP version's payloads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Codec {
    /// CALL payload → request (unknown action → `NotImplemented`).
    pub(crate) decode: fn(&str, Value) -> Result<StationRequest, CallFault>,
    /// Response → CALLRESULT payload.
    pub(crate) encode: fn(&StationResponse) -> Value,
}

impl Codec {
    /// The adapter of a version.
    pub(crate) fn for_version(version: OcppVersion) -> Codec {
        match version {
            OcppVersion::V16 => Codec {
                decode: crate::v16::decode,
                encode: crate::v16::encode,
            },
            OcppVersion::V201 => Codec {
                decode: crate::v201::decode,
                encode: crate::v201::encode,
            },
        }
    }
}

/// Runs one station connection until it ends: registers the station, serves it, deregisters it.
///
/// `socket` is an upgraded websocket (or anything speaking [`Message`]s, e.g. in tests).
pub async fn serve<S, C>(socket: S, station: StationId, version: OcppVersion, shared: Shared<C>)
where
    S: Sink<Message> + Stream<Item = Result<Message, WsError>> + Unpin + Send,
    S::Error: Display,
    C: Csms,
{
    serve_with(
        socket,
        station,
        version,
        shared,
        Codec::for_version(version),
    )
    .await;
}

/// [`serve`] with an explicit codec (tests use a fake one).
pub(crate) async fn serve_with<S, C>(
    socket: S,
    station: StationId,
    version: OcppVersion,
    shared: Shared<C>,
    codec: Codec,
) where
    S: Sink<Message> + Stream<Item = Result<Message, WsError>> + Unpin + Send,
    S::Error: Display,
    C: Csms,
{
    let connection_id = next_connection_id();
    let span = info_span!("station", id = %station, version = %version, conn = connection_id);
    run(socket, station, version, connection_id, shared, codec)
        .instrument(span)
        .await;
}

async fn run<S, C>(
    socket: S,
    station: StationId,
    version: OcppVersion,
    connection_id: u64,
    shared: Shared<C>,
    codec: Codec,
) where
    S: Sink<Message> + Stream<Item = Result<Message, WsError>> + Unpin + Send,
    S::Error: Display,
    C: Csms,
{
    let Shared {
        csms,
        registry,
        settings,
        shutdown,
    } = shared;
    let (handle, rx) = StationHandle::new(
        station.clone(),
        version,
        connection_id,
        settings.call_timeout,
    );
    if let Some(old) = registry.insert(handle.clone()) {
        info!(
            old_conn = old.connection_id(),
            "a new connection replaces the old one"
        );
        old.close_with(CloseCode::Normal, "replaced by a new connection");
    }
    info!("station connected");
    let gauge = metrics::gauge!("ocpp_stations_connected", "version" => version.label());
    gauge.increment(1.0);
    csms.connected(&station, version, handle).await;

    let mut conn = Connection {
        socket,
        station: station.clone(),
        version,
        connection_id,
        csms: Arc::clone(&csms),
        settings,
        shutdown,
        codec,
        rx,
        calls_open: true,
        close_open: true,
        pending: None,
        handler: None,
        queue: VecDeque::new(),
        pong_deadline: None,
    };
    let exit = conn.serve().await;
    conn.finish(exit).await;
    drop(conn);

    registry.remove_if(&station, connection_id);
    gauge.decrement(1.0);
    csms.disconnected(&station, connection_id).await;
    info!("station disconnected");
}

/// Completes the CSMS's side of a close: sends a close frame and reads until the peer answers
/// (or [`CLOSE_TIMEOUT`] passes).
pub(crate) async fn close_socket<S>(socket: &mut S, code: CloseCode, reason: &str)
where
    S: Sink<Message> + Stream<Item = Result<Message, WsError>> + Unpin,
{
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..cut].to_owned().into(),
    };
    let _ = timeout(CLOSE_TIMEOUT, async {
        if socket.send(Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<StationResponse, CallFault>> + Send>>;

/// A station CALL the application is working on.
struct Running {
    id: String,
    action: String,
    future: HandlerFuture,
}

/// Our outgoing CALL awaiting the station's answer.
struct Pending {
    id: String,
    action: String,
    reply: oneshot::Sender<Result<Value, CallFailure>>,
    sent_at: Instant,
    deadline: Option<Instant>,
}

/// Work waiting for the handler to be free, in arrival order.
enum Job {
    /// A station CALL to decode and handle.
    Call {
        id: String,
        action: String,
        payload: Value,
    },
    /// A ready answer (CALLERROR to a broken frame), sent in its turn.
    Reply { frame: Frame },
}

/// Why the serve loop ended.
#[derive(Debug)]
enum Exit {
    /// The station sent a close frame.
    PeerClosed,
    /// The socket ended or failed.
    Broken,
    /// We close (handle, shutdown, replacement, ping timeout, oversized message).
    Close(CloseRequest),
}

/// What woke the serve loop.
enum Event {
    Incoming(Option<Result<Message, WsError>>),
    HandlerDone(Result<StationResponse, CallFault>),
    Outgoing(Option<OutgoingCall>),
    CallTimedOut,
    PingTick,
    PongOverdue,
    Close(Option<CloseRequest>),
    Shutdown,
}

struct Connection<S, C> {
    socket: S,
    station: StationId,
    version: OcppVersion,
    connection_id: u64,
    csms: Arc<C>,
    settings: Arc<ServerSettings>,
    shutdown: CancellationToken,
    codec: Codec,
    rx: HandleReceivers,
    /// False once every handle is dropped (the channel then always yields `None`).
    calls_open: bool,
    close_open: bool,
    pending: Option<Pending>,
    handler: Option<Running>,
    queue: VecDeque<Job>,
    /// When our unanswered ping expires.
    pong_deadline: Option<Instant>,
}

async fn run_handler(handler: &mut Option<Running>) -> Result<StationResponse, CallFault> {
    match handler {
        Some(running) => running.future.as_mut().await,
        None => pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => pending().await,
    }
}

/// The metrics label of an action: bounded, since stations choose action names.
fn action_label(action: &str, fault: Option<&CallFault>) -> String {
    if fault.is_some_and(|f| f.code == ErrorCode::NotImplemented) || action.len() > 64 {
        "unknown".to_owned()
    } else {
        action.to_owned()
    }
}

fn count_message(action: String, ok: bool) {
    let result = if ok { "ok" } else { "callerror" };
    metrics::counter!("ocpp_messages_total", "action" => action, "result" => result).increment(1);
}

impl<S, C> Connection<S, C>
where
    S: Sink<Message> + Stream<Item = Result<Message, WsError>> + Unpin + Send,
    S::Error: Display,
    C: Csms,
{
    fn write_timeout(&self) -> Duration {
        if self.settings.pong_timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            self.settings.pong_timeout
        }
    }

    async fn serve(&mut self) -> Exit {
        let every = self.settings.ping_interval;
        // Zero (or a period too long to represent) turns our pings off.
        let first = Instant::now()
            .checked_add(every)
            .filter(|_| !every.is_zero());
        let mut ping = first.map(|first| {
            let mut interval = tokio::time::interval_at(first, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        loop {
            let call_deadline = self.pending.as_ref().and_then(|p| p.deadline);
            let event = tokio::select! {
                message = self.socket.next() => Event::Incoming(message),
                result = run_handler(&mut self.handler) => Event::HandlerDone(result),
                call = self.rx.calls.recv(), if self.calls_open && self.pending.is_none() => {
                    Event::Outgoing(call.map(|c| *c))
                }
                () = sleep_until_opt(call_deadline), if self.pending.is_some() => Event::CallTimedOut,
                () = tick(&mut ping) => Event::PingTick,
                () = sleep_until_opt(self.pong_deadline) => Event::PongOverdue,
                request = self.rx.close.recv(), if self.close_open => Event::Close(request.map(|r| *r)),
                () = self.shutdown.cancelled() => Event::Shutdown,
            };
            if let Err(exit) = self.on_event(event).await {
                return exit;
            }
        }
    }

    async fn on_event(&mut self, event: Event) -> Result<(), Exit> {
        match event {
            Event::Incoming(None) => {
                debug!("socket ended");
                Err(Exit::Broken)
            }
            Event::Incoming(Some(Err(e))) => match e {
                WsError::Capacity(e) => {
                    warn!(error = %e, "message too big");
                    let reason = "message too big".to_owned();
                    Err(Exit::Close(CloseRequest {
                        code: CloseCode::Size,
                        reason,
                    }))
                }
                WsError::ConnectionClosed | WsError::AlreadyClosed => Err(Exit::Broken),
                // A broken websocket protocol (unmasked frame, bad opcode, fragmented control
                // frame, …) closes with 1002, text that is not UTF-8 with 1007 (RFC 6455 §7.4.1),
                // so the station's logs say why.
                WsError::Protocol(e) => {
                    warn!(error = %e, "websocket protocol violation");
                    Err(Exit::Close(CloseRequest {
                        code: CloseCode::Protocol,
                        reason: "websocket protocol violation".to_owned(),
                    }))
                }
                WsError::Utf8(e) => {
                    warn!(error = %e, "text frame is not UTF-8");
                    Err(Exit::Close(CloseRequest {
                        code: CloseCode::Invalid,
                        reason: "text frame is not UTF-8".to_owned(),
                    }))
                }
                e => {
                    info!(error = %e, "socket failed");
                    Err(Exit::Broken)
                }
            },
            Event::Incoming(Some(Ok(message))) => {
                // Any frame proves the station is alive.
                self.pong_deadline = None;
                match message {
                    Message::Text(text) => self.on_text(text.as_str()).await,
                    Message::Binary(_) => {
                        warn!("binary frame rejected");
                        let code = ErrorCode::FormatViolation.as_str(self.version);
                        let description = "binary frames are not supported";
                        let frame = Frame::call_error(UNKNOWN_MESSAGE_ID, code, description);
                        count_message("invalid".to_owned(), false);
                        self.submit(Job::Reply { frame }).await
                    }
                    // tungstenite queues the pong itself and flushes it on the next read/write.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
                    Message::Close(frame) => {
                        match frame {
                            Some(f) => info!(code = %f.code, reason = %f.reason, "station closed"),
                            None => info!("station closed"),
                        }
                        Err(Exit::PeerClosed)
                    }
                }
            }
            Event::HandlerDone(result) => {
                let Some(running) = self.handler.take() else {
                    return Ok(());
                };
                self.answer(running.id, running.action, result).await?;
                self.pump().await
            }
            Event::Outgoing(None) => {
                self.calls_open = false;
                Ok(())
            }
            Event::Outgoing(Some(call)) => self.send_call(call).await,
            Event::CallTimedOut => {
                if let Some(p) = self.pending.take() {
                    warn!(action = %p.action, message_id = %p.id, "no answer to our CALL in time");
                    let _ = p.reply.send(Err(CallFailure::Timeout));
                }
                Ok(())
            }
            Event::PingTick => {
                self.write(Message::Ping(Bytes::new())).await?;
                let wait = self.settings.pong_timeout;
                if self.pong_deadline.is_none() && !wait.is_zero() {
                    self.pong_deadline = Instant::now().checked_add(wait);
                }
                Ok(())
            }
            Event::PongOverdue => {
                warn!("no pong in time");
                let reason = "no pong in time".to_owned();
                Err(Exit::Close(CloseRequest {
                    code: CloseCode::Away,
                    reason,
                }))
            }
            Event::Close(None) => {
                self.close_open = false;
                Ok(())
            }
            Event::Close(Some(request)) => Err(Exit::Close(request)),
            Event::Shutdown => {
                let reason = "server shutting down".to_owned();
                Err(Exit::Close(CloseRequest {
                    code: CloseCode::Away,
                    reason,
                }))
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Exit> {
        match Frame::parse(text) {
            Ok(Frame::Call {
                id,
                action,
                payload,
            }) => {
                self.submit(Job::Call {
                    id,
                    action,
                    payload,
                })
                .await
            }
            Ok(Frame::CallResult { id, payload }) => {
                self.resolve(&id, Ok(payload));
                Ok(())
            }
            Ok(Frame::CallError {
                id,
                code,
                description,
                details,
            }) => {
                self.resolve(
                    &id,
                    Err(CallFailure::CallError {
                        code,
                        description,
                        details,
                    }),
                );
                Ok(())
            }
            Err(e) if e.is_response() => {
                warn!(error = %e, "invalid answer dropped");
                if let FrameError::Malformed {
                    id: Some(id),
                    reason,
                    ..
                } = &e
                    && self.pending.as_ref().is_some_and(|p| &p.id == id)
                {
                    let failure = CallFailure::InvalidResponse {
                        reason: reason.clone(),
                    };
                    self.resolve(&id.clone(), Err(failure));
                }
                Ok(())
            }
            Err(e @ FrameError::UnknownMessageType { .. }) if self.version == OcppVersion::V16 => {
                // OCPP-J 1.6 §4.1.3: a message with an unknown MessageTypeId is ignored.
                warn!(error = %e, "frame ignored");
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "invalid frame");
                let code = e.error_code().as_str(self.version);
                let frame = Frame::call_error(e.reply_id(), code, &e.to_string());
                count_message("invalid".to_owned(), false);
                self.submit(Job::Reply { frame }).await
            }
        }
    }

    /// Hands the answer to our outstanding CALL to its caller; other answers are dropped.
    fn resolve(&mut self, id: &str, result: Result<Value, CallFailure>) {
        if self.pending.as_ref().is_none_or(|p| p.id != id) {
            warn!(message_id = %id, "answer to no outstanding CALL dropped");
            return;
        }
        let Some(p) = self.pending.take() else { return };
        let elapsed = p.sent_at.elapsed();
        metrics::histogram!("ocpp_call_duration_seconds", "action" => p.action.clone())
            .record(elapsed.as_secs_f64());
        match &result {
            Ok(_) => debug!(action = %p.action, ?elapsed, "CALLRESULT received"),
            Err(e) => info!(action = %p.action, error = %e, "our CALL failed"),
        }
        let _ = p.reply.send(result);
    }

    /// Sends our next outgoing CALL (the caller checked that none is outstanding).
    async fn send_call(&mut self, call: OutgoingCall) -> Result<(), Exit> {
        let timeout = self.settings.call_timeout;
        if call.reply.is_closed() {
            return Ok(()); // The caller gave up.
        }
        if call.queued_at.elapsed() > timeout {
            warn!(action = %call.action, "CALL waited too long for its turn");
            let _ = call.reply.send(Err(CallFailure::Timeout));
            return Ok(());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let action = call.action;
        debug!(%action, message_id = %id, "sending CALL");
        let frame = Frame::Call {
            id: id.clone(),
            action: action.clone(),
            payload: call.payload,
        };
        if let Err(exit) = self.write_frame(&frame).await {
            let _ = call.reply.send(Err(CallFailure::Disconnected));
            return Err(exit);
        }
        let sent_at = Instant::now();
        let deadline = sent_at.checked_add(timeout);
        self.pending = Some(Pending {
            id,
            action,
            reply: call.reply,
            sent_at,
            deadline,
        });
        Ok(())
    }

    /// Takes a job in arrival order: now if the handler is free, else queued (bounded).
    async fn submit(&mut self, job: Job) -> Result<(), Exit> {
        if self.handler.is_none() && self.queue.is_empty() {
            return self.start(job).await;
        }
        if self.queue.len() < self.settings.queued_requests {
            self.queue.push_back(job);
            return Ok(());
        }
        match job {
            Job::Call { id, action, .. } => {
                warn!(%action, message_id = %id, "too many CALLs waiting; answered busy");
                // Not decoded, so the action name is unchecked: keep it out of the labels.
                count_message("busy".to_owned(), false);
                let code = ErrorCode::GenericError.as_str(self.version);
                self.write_frame(&Frame::call_error(id, code, "busy")).await
            }
            Job::Reply { frame } => self.write_frame(&frame).await,
        }
    }

    /// Starts queued jobs until a handler runs or the queue is empty.
    async fn pump(&mut self) -> Result<(), Exit> {
        while self.handler.is_none() {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            self.start(job).await?;
        }
        Ok(())
    }

    /// Runs a job (the handler is free): sends a ready answer, or decodes a CALL and starts
    /// its handler (a decoding fault is answered at once).
    async fn start(&mut self, job: Job) -> Result<(), Exit> {
        let (id, action, payload) = match job {
            Job::Reply { frame } => return self.write_frame(&frame).await,
            Job::Call {
                id,
                action,
                payload,
            } => (id, action, payload),
        };
        match (self.codec.decode)(&action, payload) {
            Err(fault) => self.answer(id, action, Err(fault)).await,
            Ok(request) => {
                debug!(%action, message_id = %id, "handling CALL");
                let ctx = RequestContext {
                    station: self.station.clone(),
                    version: self.version,
                    connection_id: self.connection_id,
                    message_id: id.clone(),
                    action: action.clone(),
                };
                let csms = Arc::clone(&self.csms);
                let future = Box::pin(async move { csms.request(&ctx, request).await });
                self.handler = Some(Running { id, action, future });
                Ok(())
            }
        }
    }

    /// Sends the CALLRESULT or CALLERROR of a station CALL.
    async fn answer(
        &mut self,
        id: String,
        action: String,
        result: Result<StationResponse, CallFault>,
    ) -> Result<(), Exit> {
        let frame = match &result {
            Ok(response) => Frame::CallResult {
                id,
                payload: (self.codec.encode)(response),
            },
            Err(fault) => {
                info!(%action, code = ?fault.code, description = %fault.description, "CALL answered with CALLERROR");
                Frame::call_error(id, fault.code.as_str(self.version), &fault.description)
            }
        };
        count_message(action_label(&action, result.as_ref().err()), result.is_ok());
        self.write_frame(&frame).await
    }

    async fn write_frame(&mut self, frame: &Frame) -> Result<(), Exit> {
        self.write(Message::text(frame.to_text())).await
    }

    async fn write(&mut self, message: Message) -> Result<(), Exit> {
        match timeout(self.write_timeout(), self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                info!(error = %e, "write failed");
                Err(Exit::Broken)
            }
            Err(_) => {
                warn!("write timed out");
                Err(Exit::Broken)
            }
        }
    }

    /// Ends the connection: lets a running handler finish (and answers it if the socket is still
    /// usable), completes the close handshake, and fails every outgoing CALL still waiting.
    async fn finish(&mut self, exit: Exit) {
        let can_write = matches!(exit, Exit::Close(_));
        if let Some(running) = self.handler.take() {
            match timeout(FINISH_HANDLER_TIMEOUT, running.future).await {
                Ok(result) if can_write => {
                    let _ = self.answer(running.id, running.action, result).await;
                }
                Ok(_) => {
                    debug!(action = %running.action, "handler finished after the station left")
                }
                Err(_) => warn!(action = %running.action, "handler still running; abandoned"),
            }
        }
        match exit {
            Exit::Close(CloseRequest { code, reason }) => {
                info!(%code, %reason, "closing the connection");
                close_socket(&mut self.socket, code, &reason).await;
            }
            Exit::PeerClosed => {
                // Flushes the close reply tungstenite queued.
                let _ = timeout(CLOSE_TIMEOUT, self.socket.close()).await;
            }
            Exit::Broken => {}
        }
        if let Some(p) = self.pending.take() {
            let _ = p.reply.send(Err(CallFailure::Disconnected));
        }
        self.rx.calls.close();
        while let Ok(call) = self.rx.calls.try_recv() {
            let _ = call.reply.send(Err(CallFailure::Disconnected));
        }
        self.rx.close.close();
        if !self.queue.is_empty() {
            info!(
                dropped = self.queue.len(),
                "connection ended with station CALLs unanswered"
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Admission, Credentials};
    use serde_json::json;
    use std::sync::Mutex;
    use tokio::io::DuplexStream;
    use tokio::sync::{Notify, mpsc};
    use tokio::task::JoinHandle;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// Bound on every wait in these tests.
    pub(crate) const WAIT: Duration = Duration::from_secs(5);

    /// What the fake application saw.
    #[derive(Debug)]
    pub(crate) enum Seen {
        Connected(StationHandle),
        Disconnected(StationId, u64),
        Request(String),
    }

    /// A tiny application: records everything; action `Slow` waits for `gate`, `Fail` fails.
    #[derive(Debug)]
    pub(crate) struct Fake {
        pub(crate) seen: mpsc::UnboundedSender<Seen>,
        pub(crate) gate: Notify,
        pub(crate) admission: Admission,
        pub(crate) credentials: Mutex<Option<Credentials>>,
    }

    impl Fake {
        pub(crate) fn new(admission: Admission) -> (Arc<Fake>, mpsc::UnboundedReceiver<Seen>) {
            let (seen, rx) = mpsc::unbounded_channel();
            let fake = Fake {
                seen,
                gate: Notify::new(),
                admission,
                credentials: Mutex::new(None),
            };
            (Arc::new(fake), rx)
        }
    }

    impl Csms for Fake {
        fn admit(&self, _station: &StationId, credentials: &Credentials) -> Admission {
            *self.credentials.lock().unwrap() = Some(credentials.clone());
            self.admission
        }

        async fn connected(&self, _station: &StationId, _v: OcppVersion, handle: StationHandle) {
            let _ = self.seen.send(Seen::Connected(handle));
        }

        async fn disconnected(&self, station: &StationId, connection_id: u64) {
            let _ = self
                .seen
                .send(Seen::Disconnected(station.clone(), connection_id));
        }

        async fn request(
            &self,
            ctx: &RequestContext,
            _request: StationRequest,
        ) -> Result<StationResponse, CallFault> {
            let _ = self.seen.send(Seen::Request(ctx.action.clone()));
            match ctx.action.as_str() {
                "Slow" => {
                    self.gate.notified().await;
                    Ok(StationResponse::Ack)
                }
                "Fail" => Err(CallFault::new(ErrorCode::InternalError, "storage failed")),
                _ => Ok(StationResponse::Ack),
            }
        }
    }

    /// Decodes every action except `Unknown` into a notification; encodes everything as `{}`.
    pub(crate) fn fake_codec() -> Codec {
        fn decode(action: &str, payload: Value) -> Result<StationRequest, CallFault> {
            if action == "Unknown" {
                return Err(CallFault::new(ErrorCode::NotImplemented, "unknown action"));
            }
            Ok(StationRequest::Notification {
                action: action.to_owned(),
                payload,
            })
        }
        fn encode(_: &StationResponse) -> Value {
            json!({})
        }
        Codec { decode, encode }
    }

    pub(crate) type Client = WebSocketStream<DuplexStream>;

    pub(crate) struct Harness {
        pub(crate) client: Client,
        pub(crate) handle: StationHandle,
        pub(crate) seen: mpsc::UnboundedReceiver<Seen>,
        pub(crate) csms: Arc<Fake>,
        pub(crate) registry: Registry,
        pub(crate) shutdown: CancellationToken,
        pub(crate) task: JoinHandle<()>,
    }

    pub(crate) async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
        timeout(WAIT, seen.recv())
            .await
            .expect("in time")
            .expect("fake alive")
    }

    async fn connect(
        station: &str,
        version: OcppVersion,
        codec: Option<Codec>,
        shared: Shared<Fake>,
        seen: &mut mpsc::UnboundedReceiver<Seen>,
    ) -> (Client, StationHandle, JoinHandle<()>) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let station = StationId::from(station);
        let task = tokio::spawn(async move {
            match codec {
                Some(codec) => serve_with(server, station, version, shared, codec).await,
                None => serve(server, station, version, shared).await,
            }
        });
        let Seen::Connected(handle) = next_seen(seen).await else {
            panic!("not connected")
        };
        (client, handle, task)
    }

    pub(crate) async fn start(version: OcppVersion, settings: ServerSettings) -> Harness {
        start_with(version, settings, Some(fake_codec())).await
    }

    async fn start_with(
        version: OcppVersion,
        settings: ServerSettings,
        codec: Option<Codec>,
    ) -> Harness {
        let (csms, mut seen) = Fake::new(Admission::Accept);
        let registry = Registry::default();
        let shutdown = CancellationToken::new();
        let shared = Shared {
            csms: Arc::clone(&csms),
            registry: registry.clone(),
            settings: Arc::new(settings),
            shutdown: shutdown.clone(),
        };
        let (client, handle, task) = connect("CP1", version, codec, shared, &mut seen).await;
        Harness {
            client,
            handle,
            seen,
            csms,
            registry,
            shutdown,
            task,
        }
    }

    pub(crate) async fn send(client: &mut Client, text: &str) {
        timeout(WAIT, client.send(Message::text(text)))
            .await
            .expect("in time")
            .expect("sent");
    }

    /// The next text or close message (pings and pongs skipped).
    pub(crate) async fn next_message(client: &mut Client) -> Message {
        loop {
            let message = timeout(WAIT, client.next()).await.expect("in time");
            match message {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return message,
                other => panic!("connection ended: {other:?}"),
            }
        }
    }

    pub(crate) async fn next_frame(client: &mut Client) -> Frame {
        match next_message(client).await {
            Message::Text(text) => Frame::parse(text.as_str()).expect("valid frame"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// The close code the server sent.
    pub(crate) async fn close_code(client: &mut Client) -> CloseCode {
        match next_message(client).await {
            Message::Close(Some(frame)) => frame.code,
            other => panic!("expected close, got {other:?}"),
        }
    }

    fn error_of(frame: Frame) -> (String, String) {
        match frame {
            Frame::CallError { id, code, .. } => (id, code),
            other => panic!("expected CALLERROR, got {other:?}"),
        }
    }

    fn quick() -> ServerSettings {
        ServerSettings {
            call_timeout: Duration::from_millis(300),
            ping_interval: Duration::ZERO,
            ..ServerSettings::default()
        }
    }

    #[tokio::test]
    async fn an_unknown_action_gets_not_implemented_and_the_connection_stays() {
        for version in [OcppVersion::V16, OcppVersion::V201] {
            // The real adapters: unknown actions are theirs to reject.
            let mut h = start_with(version, quick(), None).await;
            send(&mut h.client, r#"[2,"m1","NoSuchAction",{}]"#).await;
            assert_eq!(
                error_of(next_frame(&mut h.client).await),
                ("m1".into(), "NotImplemented".into())
            );
            send(&mut h.client, r#"[2,"m2","NoSuchAction",{}]"#).await;
            assert_eq!(error_of(next_frame(&mut h.client).await).0, "m2");
            assert!(h.handle.is_connected());
        }
    }

    #[tokio::test]
    async fn a_handled_call_gets_its_call_result() {
        let mut h = start(OcppVersion::V16, quick()).await;
        send(&mut h.client, r#"[2,"m1","Heartbeat",{}]"#).await;
        assert_eq!(
            next_frame(&mut h.client).await,
            Frame::CallResult {
                id: "m1".into(),
                payload: json!({})
            }
        );
        assert!(matches!(next_seen(&mut h.seen).await, Seen::Request(a) if a == "Heartbeat"));
    }

    #[tokio::test]
    async fn a_handler_fault_becomes_a_call_error() {
        let mut h = start(OcppVersion::V201, quick()).await;
        send(&mut h.client, r#"[2,"m1","Fail",{}]"#).await;
        let Frame::CallError {
            id,
            code,
            description,
            details,
        } = next_frame(&mut h.client).await
        else {
            panic!("expected CALLERROR")
        };
        assert_eq!((id.as_str(), code.as_str()), ("m1", "InternalError"));
        assert_eq!(description, "storage failed");
        assert_eq!(details, json!({}));
    }

    #[tokio::test]
    async fn garbage_gets_a_call_error_with_id_minus_one_spelled_per_version() {
        for (version, code) in [
            (OcppVersion::V16, "ProtocolError"),
            (OcppVersion::V201, "RpcFrameworkError"),
        ] {
            let mut h = start(version, quick()).await;
            send(&mut h.client, "this is not json").await;
            assert_eq!(
                error_of(next_frame(&mut h.client).await),
                ("-1".into(), code.into())
            );
            send(&mut h.client, r#"[2,"short","Heartbeat"]"#).await;
            assert_eq!(
                error_of(next_frame(&mut h.client).await),
                ("short".into(), code.into())
            );
            send(&mut h.client, r#"[2,"m3","Heartbeat",{}]"#).await;
            assert!(matches!(
                next_frame(&mut h.client).await,
                Frame::CallResult { .. }
            ));
        }
    }

    #[tokio::test]
    async fn a_call_payload_that_is_not_an_object_is_a_format_violation() {
        for (version, code) in [
            (OcppVersion::V16, "FormationViolation"),
            (OcppVersion::V201, "FormatViolation"),
        ] {
            let mut h = start(version, quick()).await;
            send(&mut h.client, r#"[2,"m1","Heartbeat",[]]"#).await;
            assert_eq!(
                error_of(next_frame(&mut h.client).await),
                ("m1".into(), code.into())
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_message_type_is_answered_in_201_and_ignored_in_16() {
        let mut h = start(OcppVersion::V201, quick()).await;
        send(&mut h.client, r#"[6,"m1","Foo",{}]"#).await;
        assert_eq!(
            error_of(next_frame(&mut h.client).await),
            ("m1".into(), "MessageTypeNotSupported".into())
        );

        let mut h = start(OcppVersion::V16, quick()).await;
        send(&mut h.client, r#"[6,"m1","Foo",{}]"#).await;
        send(&mut h.client, r#"[2,"m2","Heartbeat",{}]"#).await;
        assert_eq!(
            next_frame(&mut h.client).await.id(),
            "m2",
            "the [6,…] frame got no answer"
        );
    }

    #[tokio::test]
    async fn a_binary_frame_is_a_format_violation_with_id_minus_one() {
        let mut h = start(OcppVersion::V16, quick()).await;
        let binary = Message::Binary(Bytes::from_static(b"[2,\"m1\",\"Heartbeat\",{}]"));
        timeout(WAIT, h.client.send(binary)).await.unwrap().unwrap();
        assert_eq!(
            error_of(next_frame(&mut h.client).await),
            ("-1".into(), "FormationViolation".into())
        );
        send(&mut h.client, r#"[2,"m2","Heartbeat",{}]"#).await;
        assert!(matches!(
            next_frame(&mut h.client).await,
            Frame::CallResult { .. }
        ));
    }

    #[tokio::test]
    async fn an_outgoing_call_gets_the_matching_call_result() {
        let mut h = start(OcppVersion::V16, quick()).await;
        let handle = h.handle.clone();
        let call = tokio::spawn(async move { handle.call("Reset", json!({"type": "Soft"})).await });
        let Frame::Call {
            id,
            action,
            payload,
        } = next_frame(&mut h.client).await
        else {
            panic!("expected a CALL")
        };
        assert_eq!(
            (action.as_str(), &payload),
            ("Reset", &json!({"type": "Soft"}))
        );
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "message id is a UUID");
        // An answer to some other id is dropped; the right one resolves the call.
        send(&mut h.client, r#"[3,"not-ours",{"status":"Rejected"}]"#).await;
        send(
            &mut h.client,
            &format!(r#"[3,"{id}",{{"status":"Accepted"}}]"#),
        )
        .await;
        let answer = timeout(WAIT, call).await.unwrap().unwrap();
        assert_eq!(answer, Ok(json!({"status": "Accepted"})));
    }

    #[tokio::test]
    async fn a_call_error_from_the_station_is_reported_as_is() {
        let mut h = start(OcppVersion::V201, quick()).await;
        let handle = h.handle.clone();
        let call = tokio::spawn(async move { handle.call("Reset", json!({})).await });
        let id = next_frame(&mut h.client).await.id().to_owned();
        send(
            &mut h.client,
            &format!(r#"[4,"{id}","NotSupported","no",{{"x":1}}]"#),
        )
        .await;
        let answer = timeout(WAIT, call).await.unwrap().unwrap();
        assert_eq!(
            answer,
            Err(CallFailure::CallError {
                code: "NotSupported".into(),
                description: "no".into(),
                details: json!({"x": 1})
            })
        );
    }

    #[tokio::test]
    async fn a_broken_answer_fails_the_call_and_is_not_answered() {
        let mut h = start(OcppVersion::V201, quick()).await;
        let handle = h.handle.clone();
        let call = tokio::spawn(async move { handle.call("Reset", json!({})).await });
        let id = next_frame(&mut h.client).await.id().to_owned();
        send(&mut h.client, &format!(r#"[3,"{id}"]"#)).await;
        let answer = timeout(WAIT, call).await.unwrap().unwrap();
        assert!(
            matches!(answer, Err(CallFailure::InvalidResponse { .. })),
            "{answer:?}"
        );
        send(&mut h.client, r#"[2,"m2","Heartbeat",{}]"#).await;
        assert_eq!(
            next_frame(&mut h.client).await.id(),
            "m2",
            "the broken answer got no reply"
        );
    }

    #[tokio::test]
    async fn an_unanswered_call_times_out_and_a_late_answer_is_dropped() {
        let mut h = start(OcppVersion::V16, quick()).await;
        let handle = h.handle.clone();
        let call = tokio::spawn(async move { handle.call("Reset", json!({})).await });
        let id = next_frame(&mut h.client).await.id().to_owned();
        let answer = timeout(WAIT, call).await.unwrap().unwrap();
        assert_eq!(answer, Err(CallFailure::Timeout));
        send(&mut h.client, &format!(r#"[3,"{id}",{{}}]"#)).await;
        // The next call goes out and works.
        let handle = h.handle.clone();
        let call = tokio::spawn(async move { handle.call("Reset", json!({})).await });
        let id2 = next_frame(&mut h.client).await.id().to_owned();
        assert_ne!(id, id2);
        send(&mut h.client, &format!(r#"[3,"{id2}",{{"n":2}}]"#)).await;
        assert_eq!(
            timeout(WAIT, call).await.unwrap().unwrap(),
            Ok(json!({"n": 2}))
        );
    }

    #[tokio::test]
    async fn only_one_outgoing_call_is_outstanding() {
        let mut h = start(OcppVersion::V201, quick()).await;
        let (a, b) = (h.handle.clone(), h.handle.clone());
        let first = tokio::spawn(async move { a.call("First", json!({})).await });
        let Frame::Call { id, action, .. } = next_frame(&mut h.client).await else {
            panic!()
        };
        assert_eq!(action, "First");
        let second = tokio::spawn(async move { b.call("Second", json!({})).await });
        let early = timeout(Duration::from_millis(150), h.client.next()).await;
        assert!(
            early.is_err(),
            "second CALL sent before the first was answered: {early:?}"
        );
        send(&mut h.client, &format!(r#"[3,"{id}",{{}}]"#)).await;
        assert_eq!(timeout(WAIT, first).await.unwrap().unwrap(), Ok(json!({})));
        let Frame::Call { id, action, .. } = next_frame(&mut h.client).await else {
            panic!()
        };
        assert_eq!(action, "Second");
        send(&mut h.client, &format!(r#"[3,"{id}",{{}}]"#)).await;
        assert_eq!(timeout(WAIT, second).await.unwrap().unwrap(), Ok(json!({})));
    }

    #[tokio::test]
    async fn a_disconnect_fails_the_pending_call_and_deregisters() {
        let mut h = start(OcppVersion::V16, quick()).await;
        let handle = h.handle.clone();
        let call = tokio::spawn(async move { handle.call("Reset", json!({})).await });
        let _ = next_frame(&mut h.client).await;
        assert_eq!(h.registry.len(), 1);
        drop(h.client);
        assert_eq!(
            timeout(WAIT, call).await.unwrap().unwrap(),
            Err(CallFailure::Disconnected)
        );
        assert!(
            matches!(next_seen(&mut h.seen).await, Seen::Disconnected(s, c) if s.as_str() == "CP1" && c == h.handle.connection_id())
        );
        timeout(WAIT, h.task).await.unwrap().unwrap();
        assert!(h.registry.is_empty());
        assert!(!h.handle.is_connected());
        assert_eq!(
            h.handle.call("Reset", json!({})).await,
            Err(CallFailure::Disconnected)
        );
    }

    #[tokio::test]
    async fn station_calls_are_answered_in_order_while_our_call_completes() {
        let settings = ServerSettings {
            queued_requests: 2,
            ..quick()
        };
        let mut h = start(OcppVersion::V16, settings).await;
        send(&mut h.client, r#"[2,"a","Slow",{}]"#).await;
        assert!(matches!(next_seen(&mut h.seen).await, Seen::Request(a) if a == "Slow"));
        // While the handler waits, our own CALL goes out and its answer is processed.
        let handle = h.handle.clone();
        let call = tokio::spawn(async move { handle.call("Reset", json!({})).await });
        let id = next_frame(&mut h.client).await.id().to_owned();
        send(
            &mut h.client,
            &format!(r#"[3,"{id}",{{"status":"Accepted"}}]"#),
        )
        .await;
        assert_eq!(
            timeout(WAIT, call).await.unwrap().unwrap(),
            Ok(json!({"status": "Accepted"}))
        );
        // Two more CALLs and a garbage frame queue behind it (the garbage's answer waits for its
        // turn); a fourth is over the limit and answered busy at once.
        send(&mut h.client, r#"[2,"b","Heartbeat",{}]"#).await;
        send(&mut h.client, "garbage").await;
        send(&mut h.client, r#"[2,"d","Heartbeat",{}]"#).await;
        assert_eq!(
            error_of(next_frame(&mut h.client).await),
            ("d".into(), "GenericError".into())
        );
        h.csms.gate.notify_one();
        assert_eq!(
            next_frame(&mut h.client).await,
            Frame::CallResult {
                id: "a".into(),
                payload: json!({})
            }
        );
        assert_eq!(next_frame(&mut h.client).await.id(), "b");
        assert_eq!(
            error_of(next_frame(&mut h.client).await),
            ("-1".into(), "ProtocolError".into())
        );
    }

    #[tokio::test]
    async fn handle_close_closes_normally() {
        let mut h = start(OcppVersion::V16, quick()).await;
        h.handle.close();
        assert_eq!(close_code(&mut h.client).await, CloseCode::Normal);
        let _ = timeout(WAIT, h.client.next()).await.unwrap(); // completes the close handshake
        timeout(WAIT, h.task).await.unwrap().unwrap();
        assert!(h.registry.is_empty());
    }

    #[tokio::test]
    async fn shutdown_closes_with_going_away_after_answering_the_running_call() {
        let mut h = start(OcppVersion::V201, quick()).await;
        send(&mut h.client, r#"[2,"a","Slow",{}]"#).await;
        assert!(matches!(next_seen(&mut h.seen).await, Seen::Request(_)));
        h.shutdown.cancel();
        h.csms.gate.notify_one();
        assert_eq!(next_frame(&mut h.client).await.id(), "a");
        assert_eq!(close_code(&mut h.client).await, CloseCode::Away);
        let _ = timeout(WAIT, h.client.next()).await.unwrap();
        timeout(WAIT, h.task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_new_connection_replaces_the_old_one() {
        let mut h = start(OcppVersion::V16, quick()).await;
        let shared = Shared {
            csms: Arc::clone(&h.csms),
            registry: h.registry.clone(),
            settings: Arc::new(quick()),
            shutdown: h.shutdown.clone(),
        };
        let (mut client2, handle2, task2) = connect(
            "CP1",
            OcppVersion::V201,
            Some(fake_codec()),
            shared,
            &mut h.seen,
        )
        .await;
        assert_eq!(close_code(&mut h.client).await, CloseCode::Normal);
        let _ = timeout(WAIT, h.client.next()).await.unwrap();
        timeout(WAIT, h.task).await.unwrap().unwrap();
        assert!(
            matches!(next_seen(&mut h.seen).await, Seen::Disconnected(_, c) if c == h.handle.connection_id())
        );
        // The old connection's exit left the new one registered.
        let registered = h
            .registry
            .get(&StationId::from("CP1"))
            .expect("still registered");
        assert_eq!(registered.connection_id(), handle2.connection_id());
        assert_eq!(registered.version(), OcppVersion::V201);
        assert!(handle2.connection_id() > h.handle.connection_id());
        send(&mut client2, r#"[2,"m","Heartbeat",{}]"#).await;
        assert_eq!(next_frame(&mut client2).await.id(), "m");
        drop(client2);
        timeout(WAIT, task2).await.unwrap().unwrap();
        assert!(h.registry.is_empty());
    }

    #[tokio::test]
    async fn a_station_that_stops_answering_pings_is_closed() {
        use tokio::io::AsyncReadExt;
        let settings = ServerSettings {
            ping_interval: Duration::from_millis(100),
            pong_timeout: Duration::from_millis(100),
            ..quick()
        };
        // The station side is a raw byte pipe that never answers anything.
        let (csms, mut seen) = Fake::new(Admission::Accept);
        let (a, mut raw) = tokio::io::duplex(64 * 1024);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let shared = Shared {
            csms,
            registry: Registry::default(),
            settings: Arc::new(settings),
            shutdown: CancellationToken::new(),
        };
        let task = tokio::spawn(serve_with(
            server,
            StationId::from("CP1"),
            OcppVersion::V16,
            shared,
            fake_codec(),
        ));
        assert!(matches!(next_seen(&mut seen).await, Seen::Connected(_)));
        assert!(matches!(next_seen(&mut seen).await, Seen::Disconnected(..)));
        timeout(WAIT, task).await.unwrap().unwrap();
        let mut bytes = Vec::new();
        timeout(WAIT, raw.read_to_end(&mut bytes))
            .await
            .unwrap()
            .unwrap();
        // An empty ping (0x89 0x00), then a close frame with code 1001.
        assert_eq!(bytes[..2], [0x89, 0x00], "{bytes:?}");
        let close = bytes
            .iter()
            .position(|&b| b == 0x88)
            .expect("a close frame");
        assert_eq!(bytes[close + 2..close + 4], [0x03, 0xE9], "close code 1001");
    }

    #[tokio::test]
    async fn a_station_that_answers_pings_stays_and_its_pings_are_answered() {
        let settings = ServerSettings {
            ping_interval: Duration::from_millis(50),
            pong_timeout: Duration::from_millis(100),
            ..quick()
        };
        let mut h = start(OcppVersion::V16, settings).await;
        timeout(
            WAIT,
            h.client.send(Message::Ping(Bytes::from_static(b"hi"))),
        )
        .await
        .unwrap()
        .unwrap();
        let mut pings = 0;
        let mut pong = false;
        while pings < 5 || !pong {
            match timeout(WAIT, h.client.next()).await.unwrap() {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Pong(p))) => pong = p.as_ref() == b"hi",
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(h.handle.is_connected());
    }
}
