//! The connection's state shared by the handles and the driver, and the driver itself: the
//! reader, writer and timer futures of one connection (see the `client` module docs).
//!
//! Architecture invariant: only the writer writes to the socket and only the reader reads
//! from it; callers go through [`Shared`], whose lock is never held across an `.await`.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::Timer;
use async_lock::{Semaphore, SemaphoreGuardArc};
use futures_lite::future;
use futures_lite::{AsyncRead, AsyncWrite};
use rand_core::RngCore;

use super::subscription::{End, Queue};
use super::ClientOptions;
use crate::envelope::{error_envelope, Envelope, Kind, Service};
use crate::error::{Error, FrameError, SessionError, WireError};
use crate::message::{CloseBody, ErrorCode, Ping, Pong};
use crate::session::{ReceiveHalf, SendHalf};
use crate::{wire, IN_FLIGHT_REQUESTS_MAX, MESSAGE_SIZE_BYTES_MAX};

/// Why the connection ended (or is closing). Kept so that every waiter gets its own [`Error`].
#[derive(Debug, Clone)]
pub(super) enum Ended {
    /// The node sent Close with this reason.
    ClosedByPeer(String),
    /// The node closed the TCP connection without a Close.
    PeerVanished {
        /// Whether anything was received after the handshake: a node refusing a key that is
        /// not a member closes right after the handshake (Noise XX lets the initiator finish).
        received_any: bool,
    },
    /// This client closed, with this reason.
    ClosedHere(String),
    /// Nothing was received for this long.
    IdleTimeout(Duration),
    /// The socket or the session failed; the error's kind and text.
    Failed(io::ErrorKind, String),
}

impl Ended {
    pub(super) fn error(&self) -> Error {
        let io = |kind, message: String| {
            Error::Session(SessionError::Frame(FrameError::Io(io::Error::new(
                kind, message,
            ))))
        };
        match self {
            Ended::ClosedByPeer(reason) => Error::ClosedByPeer(reason.clone()),
            Ended::PeerVanished {
                received_any: false,
            } => Error::ClosedByPeer(
                "the node closed the connection right after the handshake \
                 (is this key a member of the cell?)"
                    .into(),
            ),
            Ended::PeerVanished { received_any: true } => {
                Error::Session(SessionError::Frame(FrameError::Closed))
            }
            Ended::ClosedHere(reason) => io(
                io::ErrorKind::ConnectionAborted,
                format!("this client closed the connection ({reason})"),
            ),
            Ended::IdleTimeout(after) => io(
                io::ErrorKind::TimedOut,
                format!("nothing received from the node for {after:?} (idle timeout)"),
            ),
            Ended::Failed(kind, message) => io(*kind, message.clone()),
        }
    }

    fn from_session_error(e: &SessionError) -> Ended {
        match e {
            SessionError::Frame(FrameError::Io(e)) => Ended::Failed(e.kind(), e.to_string()),
            SessionError::Frame(FrameError::Truncated { .. }) => {
                Ended::Failed(io::ErrorKind::UnexpectedEof, e.to_string())
            }
            _ => Ended::Failed(io::ErrorKind::InvalidData, e.to_string()),
        }
    }
}

/// An encoded envelope waiting for the writer.
pub(super) struct Outgoing {
    message: Vec<u8>,
    /// A Close: the last envelope written.
    close: bool,
    /// Told the result of writing a Close.
    done: Option<Sender<Result<(), Error>>>,
    /// The slot of an answer to a node's request, freed once written.
    _answer_slot: Option<SemaphoreGuardArc>,
}

impl Outgoing {
    fn new(message: Vec<u8>) -> Outgoing {
        Outgoing {
            message,
            close: false,
            done: None,
            _answer_slot: None,
        }
    }
}

/// A request or Subscribe awaiting its answer.
struct Pending {
    /// Where the answer goes; `None` for keepalive pings. A receiver that is gone (a caller
    /// that timed out) simply drops the answer.
    reply: Option<Sender<Result<Envelope, Error>>>,
    /// Whether this is a Subscribe (an Error answer also removes its buffer).
    subscribe: bool,
    /// The in-flight slot, freed when the answer arrives or the connection ends.
    _slot: SemaphoreGuardArc,
}

struct State {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// Open subscriptions (and Subscribes awaiting their answer) by id.
    subscriptions: HashMap<u64, Arc<Queue>>,
    /// Set when the connection starts closing or ends; new requests then fail.
    ended: Option<Ended>,
    /// Set once a Close is queued: the driver stops at this time at the latest.
    closing_deadline: Option<Instant>,
    last_sent: Instant,
    last_received: Instant,
    received_any: bool,
    /// The id of the keepalive ping awaiting its answer.
    keepalive: Option<u64>,
}

impl State {
    /// A request id unique among pending requests and subscriptions (spec section 10).
    fn allocate_id(&mut self) -> u64 {
        // Bounded: the maps hold far fewer than 2^64 ids.
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.pending.contains_key(&id) && !self.subscriptions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// What the handles and the driver share.
pub(super) struct Shared {
    state: Mutex<State>,
    outgoing: Sender<Outgoing>,
    /// Requests and Subscribes awaiting an answer: [`IN_FLIGHT_REQUESTS_MAX`] slots.
    in_flight: Arc<Semaphore>,
    /// Notified when the connection starts closing or ends (wakes slot waiters and the timer).
    changed: event_listener::Event,
    pub(super) options: ClientOptions,
}

impl Shared {
    pub(super) fn new(options: ClientOptions, now: Instant) -> (Arc<Shared>, Receiver<Outgoing>) {
        // Unbounded, but bounded by construction: requests and Subscribes hold an in-flight
        // slot, answers an answer slot, keepalives a slot too, and there is one Unsubscribe
        // per subscription and one Close. Unbounded lets `Drop` enqueue without waiting.
        let (outgoing, queue) = async_channel::unbounded();
        let shared = Shared {
            state: Mutex::new(State {
                next_id: 1,
                pending: HashMap::new(),
                subscriptions: HashMap::new(),
                ended: None,
                closing_deadline: None,
                last_sent: now,
                last_received: now,
                received_any: false,
                keepalive: None,
            }),
            outgoing,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_REQUESTS_MAX)),
            changed: event_listener::Event::new(),
            options,
        };
        (Arc::new(shared), queue)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the state is still
        // consistent enough to fail every waiter.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn is_ended(&self) -> bool {
        self.lock().ended.is_some()
    }

    fn ended_error(&self) -> Error {
        match &self.lock().ended {
            Some(ended) => ended.error(),
            None => Ended::Failed(io::ErrorKind::Other, "the connection ended".into()).error(),
        }
    }

    /// Returns once the connection is closing or has ended.
    async fn until_ended(&self) {
        loop {
            let listener = self.changed.listen();
            if self.is_ended() {
                return;
            }
            listener.await;
        }
    }

    /// Sends a Request or Subscribe and waits for its answer, within the request timeout.
    /// A Response comes back as the envelope; an Error answer as [`Error::Remote`].
    /// `queue` is the buffer of a Subscribe, registered before it is sent.
    pub(super) async fn call(
        &self,
        service: Service,
        kind: Kind,
        payload: Vec<u8>,
        queue: Option<Arc<Queue>>,
    ) -> Result<Envelope, Error> {
        debug_assert!(matches!(kind, Kind::Request | Kind::Subscribe));
        // If the caller goes away (or times out) before a Subscribe is answered, the
        // subscription is withdrawn: nobody would read it.
        let mut guard = SubscribeGuard {
            shared: self,
            service,
            id: None,
        };
        let exchange = async {
            let slot = future::or(async { Ok(self.in_flight.acquire_arc().await) }, async {
                self.until_ended().await;
                Err(self.ended_error())
            })
            .await?;
            let id = {
                let mut state = self.lock();
                if let Some(ended) = &state.ended {
                    return Err(ended.error());
                }
                state.allocate_id()
            };
            // Encoded outside the lock: a payload may be 16 MiB.
            let message = Envelope {
                service,
                kind,
                request_id: id,
                payload,
            }
            .encode()?;
            if message.len() > MESSAGE_SIZE_BYTES_MAX {
                return Err(Error::Session(SessionError::MessageTooLarge {
                    size_bytes: message.len(),
                    max: MESSAGE_SIZE_BYTES_MAX,
                }));
            }
            let (reply, answer) = async_channel::bounded(1);
            {
                let mut state = self.lock();
                if let Some(ended) = &state.ended {
                    return Err(ended.error());
                }
                if let Some(queue) = &queue {
                    state.subscriptions.insert(id, queue.clone());
                    guard.id = Some(id);
                }
                if self.outgoing.try_send(Outgoing::new(message)).is_err() {
                    state.subscriptions.remove(&id);
                    return Err(
                        Ended::Failed(io::ErrorKind::Other, "the connection ended".into()).error(),
                    );
                }
                state.pending.insert(
                    id,
                    Pending {
                        reply: Some(reply),
                        subscribe: queue.is_some(),
                        _slot: slot,
                    },
                );
                debug_assert!(state.pending.len() <= IN_FLIGHT_REQUESTS_MAX);
            }
            match answer.recv().await {
                Ok(answer) => answer,
                // The driver ended without answering (it fails every waiter first; this is
                // only a fallback).
                Err(_) => Err(self.ended_error()),
            }
        };
        let timeout = async {
            Timer::after(self.options.request_timeout).await;
            Err(Error::TimedOut)
        };
        let answer = future::or(exchange, timeout).await?;
        match answer.kind {
            Kind::Response if answer.service == service => {
                guard.id = None;
                Ok(answer)
            }
            Kind::Error => Err(Error::Remote(answer.error_body()?)),
            _ => Err(Error::UnexpectedMessage(format!(
                "a {:?} from service {:?} answers a {kind:?} to service {service:?}",
                answer.kind, answer.service
            ))),
        }
    }

    /// Ends a subscription from this side: forgets its buffer and sends Unsubscribe, unless it
    /// already ended (publisher's Unsubscribe or Error, refused Subscribe, connection ended).
    pub(super) fn unsubscribe(&self, id: u64, service: Service) {
        let mut state = self.lock();
        if state.subscriptions.remove(&id).is_none() || state.ended.is_some() {
            return;
        }
        let envelope = Envelope {
            service,
            kind: Kind::Unsubscribe,
            request_id: id,
            payload: Vec::new(),
        };
        if let Ok(message) = envelope.encode() {
            let _ = self.outgoing.try_send(Outgoing::new(message));
        }
    }

    /// Starts an orderly close: new requests fail from now on, Close is queued after what is
    /// already queued, and the driver stops at the closing deadline at the latest. Requests
    /// already sent keep waiting for their answers. Returns false if the connection was
    /// already closing or ended (then nothing is queued and `done` is dropped).
    pub(super) fn begin_close(
        &self,
        ended: Ended,
        reason: &str,
        done: Option<Sender<Result<(), Error>>>,
    ) -> bool {
        let mut state = self.lock();
        if state.ended.is_some() {
            return false;
        }
        state.ended = Some(ended);
        state.closing_deadline = Some(Instant::now() + self.options.close_timeout);
        if let Ok(message) = Envelope::close(reason).and_then(|close| close.encode()) {
            let _ = self.outgoing.try_send(Outgoing {
                message,
                close: true,
                done,
                _answer_slot: None,
            });
        }
        drop(state);
        self.changed.notify(usize::MAX);
        true
    }

    /// Closes after a failure on this side of the conversation (idle timeout, bad input):
    /// queues Close with `reason` and fails every waiter at once.
    fn close_now(&self, ended: Ended, reason: &str) {
        self.begin_close(ended.clone(), reason, None);
        self.end(ended);
    }

    /// The connection is over: records why (unless already recorded), fails every waiting
    /// request and ends every subscription with that error.
    fn end(&self, ended: Ended) {
        let (ended, pending, subscriptions) = {
            let mut state = self.lock();
            let ended = state.ended.get_or_insert(ended).clone();
            state.keepalive = None;
            (
                ended,
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.subscriptions),
            )
        };
        // What is already queued (a Close) may still be written; nothing new is accepted.
        self.outgoing.close();
        for (_, pending) in pending {
            if let Some(reply) = pending.reply {
                let _ = reply.try_send(Err(ended.error()));
            }
        }
        for (_, queue) in subscriptions {
            queue.end(End::Failed(ended.error()));
        }
        self.changed.notify(usize::MAX);
    }

    fn mark_received(&self) {
        let mut state = self.lock();
        state.last_received = Instant::now();
        state.received_any = true;
    }

    /// Routes a Response or Error to the request or Subscribe waiting for it, or ends the
    /// subscription it fails. Answers nobody waits for are ignored.
    fn route_answer(&self, envelope: Envelope) {
        let id = envelope.request_id;
        let mut state = self.lock();
        if let Some(pending) = state.pending.remove(&id) {
            if state.keepalive == Some(id) {
                state.keepalive = None;
            }
            if pending.subscribe && envelope.kind == Kind::Error {
                state.subscriptions.remove(&id);
            }
            drop(state);
            if let Some(reply) = pending.reply {
                let _ = reply.try_send(Ok(envelope));
            }
        } else if envelope.kind == Kind::Error {
            if let Some(queue) = state.subscriptions.remove(&id) {
                drop(state);
                let error = match envelope.error_body() {
                    Ok(body) => Error::Remote(body),
                    Err(e) => Error::Wire(e),
                };
                queue.end(End::Failed(error));
            }
        }
    }

    /// Sends a keepalive Ping if an in-flight slot is free (if none is, 64 requests are
    /// awaiting answers and the node will hear from us soon enough).
    fn send_keepalive(&self, state: &mut State) {
        let Some(slot) = self.in_flight.try_acquire_arc() else {
            return;
        };
        let id = state.allocate_id();
        let nonce = rand_core::OsRng.next_u64();
        let Ok(message) = wire::encode(&Ping { nonce })
            .and_then(|payload| Envelope::request(Service::Ping, id, payload).encode())
        else {
            return;
        };
        if self.outgoing.try_send(Outgoing::new(message)).is_ok() {
            state.pending.insert(
                id,
                Pending {
                    reply: None,
                    subscribe: false,
                    _slot: slot,
                },
            );
            state.keepalive = Some(id);
        }
    }
}

/// Withdraws a Subscribe whose caller went away before it was accepted.
struct SubscribeGuard<'a> {
    shared: &'a Shared,
    service: Service,
    id: Option<u64>,
}

impl Drop for SubscribeGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.unsubscribe(id, self.service);
        }
    }
}

/// Runs one connection until it ends, then fails whatever still waits.
pub(super) async fn drive<R, W>(
    shared: Arc<Shared>,
    send: SendHalf<W>,
    receive: ReceiveHalf<R>,
    outgoing: Receiver<Outgoing>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let answer_slots = Arc::new(Semaphore::new(IN_FLIGHT_REQUESTS_MAX));
    let ended = future::or(
        read_loop(&shared, receive, &answer_slots),
        future::or(write_loop(&shared, send, outgoing), timer_loop(&shared)),
    )
    .await;
    shared.end(ended);
    // The socket closes when the halves are dropped, here.
}

/// Receives envelopes and routes them, until the connection fails or the node closes.
async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Shared,
    mut receive: ReceiveHalf<R>,
    answer_slots: &Arc<Semaphore>,
) -> Ended {
    loop {
        let envelope = match receive.receive_envelope().await {
            Ok(envelope) => envelope,
            Err(Error::Wire(WireError::UnknownService {
                service,
                kind,
                request_id,
            })) => {
                shared.mark_received();
                // A Request or Subscribe is answered (spec section 10); anything else ignored.
                if kind == Kind::Request as u32 || kind == Kind::Subscribe as u32 {
                    let refusal = error_envelope(
                        Service::Ping,
                        request_id,
                        ErrorCode::UNKNOWN_SERVICE,
                        &format!("service {service} does not exist"),
                    )
                    .and_then(|refusal| refusal.encode());
                    if let Ok(mut message) = refusal {
                        // The answer carries the request's service number, which `Service`
                        // cannot hold: it is the first 4 bytes (spec section 8).
                        message[..4].copy_from_slice(&service.to_le_bytes());
                        queue_answer(shared, answer_slots, message).await;
                    }
                }
                continue;
            }
            Err(Error::Wire(e)) => {
                shared.mark_received();
                let reason = format!("malformed envelope: {e}");
                let ended = Ended::Failed(
                    io::ErrorKind::InvalidData,
                    format!("the node sent a {reason}"),
                );
                shared.close_now(ended, &reason);
                // Nothing more can be understood; the timer ends the driver once the Close had
                // its chance to be written.
                return future::pending().await;
            }
            Err(Error::Session(e)) => {
                let ended = Ended::from_session_error(&e);
                match e {
                    SessionError::Frame(FrameError::Closed) => {
                        return Ended::PeerVanished {
                            received_any: shared.lock().received_any,
                        }
                    }
                    SessionError::Frame(FrameError::Io(_) | FrameError::Truncated { .. }) => {
                        return ended
                    }
                    // Bad input on a working socket: tell the node why before closing.
                    _ => {
                        shared.close_now(ended, &e.to_string());
                        return future::pending().await;
                    }
                }
            }
            Err(e) => return Ended::Failed(io::ErrorKind::Other, e.to_string()),
        };
        shared.mark_received();
        match envelope.kind {
            Kind::Request | Kind::Subscribe => {
                if let Ok(message) = answer(&envelope).and_then(|reply| reply.encode()) {
                    queue_answer(shared, answer_slots, message).await;
                }
            }
            Kind::Response | Kind::Error => shared.route_answer(envelope),
            Kind::Event => {
                let queue = shared
                    .lock()
                    .subscriptions
                    .get(&envelope.request_id)
                    .cloned();
                // Events of a subscription already ended on this side are ignored.
                if let Some(queue) = queue {
                    queue.push(envelope.payload);
                }
            }
            Kind::Unsubscribe => {
                let queue = shared.lock().subscriptions.remove(&envelope.request_id);
                if let Some(queue) = queue {
                    queue.end(End::Finished);
                }
            }
            Kind::Close => {
                let reason = wire::decode::<CloseBody>(&envelope.payload)
                    .map(|body| body.reason)
                    .unwrap_or_else(|_| "no reason given".into());
                // The node sends nothing more: drop the connection.
                return Ended::ClosedByPeer(reason);
            }
        }
    }
}

/// The answer to a node's Request or Subscribe: pings are answered, anything else refused.
fn answer(request: &Envelope) -> Result<Envelope, WireError> {
    match (request.kind, request.service) {
        (Kind::Request, Service::Ping) => match wire::decode::<Ping>(&request.payload) {
            Ok(ping) => Ok(request.response(wire::encode(&Pong { nonce: ping.nonce })?)),
            Err(e) => request.error(ErrorCode::BAD_MESSAGE, &e.to_string()),
        },
        (Kind::Subscribe, Service::Ping) => request.error(
            ErrorCode::UNSUPPORTED_KIND,
            "the Ping service has no subscriptions",
        ),
        _ => request.error(ErrorCode::UNKNOWN_SERVICE, "a client serves nothing"),
    }
}

/// Queues an answer to the node, waiting for an answer slot when the writer is behind.
async fn queue_answer(shared: &Shared, answer_slots: &Arc<Semaphore>, message: Vec<u8>) {
    let slot = answer_slots.acquire_arc().await;
    let _ = shared.outgoing.try_send(Outgoing {
        message,
        close: false,
        done: None,
        _answer_slot: Some(slot),
    });
}

/// Writes queued envelopes in order until a Close (then shuts down the write half and
/// idles) or a failure.
async fn write_loop<W: AsyncWrite + Unpin>(
    shared: &Shared,
    mut send: SendHalf<W>,
    outgoing: Receiver<Outgoing>,
) -> Ended {
    while let Ok(item) = outgoing.recv().await {
        if let Err(e) = send.send(&item.message).await {
            let ended = Ended::from_session_error(&e);
            if let Some(done) = item.done {
                let _ = done.try_send(Err(Error::Session(e)));
            }
            return ended;
        }
        shared.lock().last_sent = Instant::now();
        if item.close {
            let result = send.shutdown().await;
            if let Some(done) = item.done {
                let _ = done.try_send(result);
            }
            // Nothing may follow a Close. The reader still takes answers in flight until the
            // node closes, or the timer stops everything at the closing deadline.
            return future::pending().await;
        }
    }
    // The queue was closed: the connection is over already.
    shared.lock().ended.clone().unwrap_or(Ended::Failed(
        io::ErrorKind::Other,
        "the connection ended".into(),
    ))
}

/// Keepalive, idle timeout and closing deadline.
async fn timer_loop(shared: &Shared) -> Ended {
    let keepalive = shared.options.keepalive_interval;
    let idle = shared.options.idle_timeout;
    loop {
        let changed = shared.changed.listen();
        let wake_at = {
            let mut state = shared.lock();
            let now = Instant::now();
            if let Some(deadline) = state.closing_deadline {
                if now >= deadline {
                    return state
                        .ended
                        .clone()
                        .unwrap_or(Ended::ClosedHere("closing".into()));
                }
                deadline
            } else if now >= state.last_received + idle {
                drop(state);
                shared.close_now(Ended::IdleTimeout(idle), "idle timeout");
                continue;
            } else {
                let keepalive_at = if state.keepalive.is_some() {
                    // Check again later; the idle timeout covers a ping that is never answered.
                    now + keepalive
                } else if now >= state.last_sent + keepalive {
                    shared.send_keepalive(&mut state);
                    now + keepalive
                } else {
                    state.last_sent + keepalive
                };
                keepalive_at.min(state.last_received + idle)
            }
        };
        future::or(
            async {
                Timer::at(wake_at).await;
            },
            changed,
        )
        .await;
    }
}
