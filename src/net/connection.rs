//! One authenticated connection: a writer task fed by a bounded queue, a reader loop that
//! answers pings, hands requests to services and answers to their waiting requesters, and the
//! keepalive and idle timers of `spec/protocol.md` section 10.
//!
//! Send-queue policy: requests a local service sends fail at once with
//! [`NetError::QueueFull`] when the queue holds [`SEND_QUEUE_LEN`] envelopes (the caller
//! retries; nothing is dropped silently); answers to the peer's requests wait for room, which
//! is bounded because the peer may only have [`IN_FLIGHT_REQUESTS_MAX`] requests in flight.
//! The Events of the peer's subscriptions wait for room too, one pending event per
//! subscription, the newest replacing an older one ([`super::subscription`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Timer;
use exocore_protocol::envelope::{error_envelope, Envelope, Kind, Service};
use exocore_protocol::error::{Error as ProtocolError, WireError};
use exocore_protocol::identity::PublicKey;
use exocore_protocol::message::{CloseBody, ErrorBody, ErrorCode, Ping, Pong};
use exocore_protocol::session::Session;
use exocore_protocol::{wire, IDLE_TIMEOUT, IN_FLIGHT_REQUESTS_MAX, KEEPALIVE_INTERVAL};
use futures_lite::future;
use futures_lite::{AsyncRead, AsyncWrite};
use tracing::{debug, warn};

use super::subscription::{self, EventSink};
use super::NetError;

/// Envelopes waiting to be written to one connection.
pub const SEND_QUEUE_LEN: usize = 256;

/// The answer to a request: the response payload, or the peer's error.
pub type Answer = Result<Vec<u8>, ErrorBody>;

/// A request from a peer, for a service.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The cell of the connection.
    pub cell: PublicKey,
    /// The authenticated sender.
    pub from: PublicKey,
    /// The service named by the envelope.
    pub service: Service,
    /// The request's payload.
    pub payload: Vec<u8>,
}

/// A future answering a request.
pub type AnswerFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// Subscriptions a peer may hold open on one connection; one more Subscribe is answered with
/// Error 3 (too many in flight).
pub const SUBSCRIPTIONS_MAX: usize = 64;

/// Whoever answers the requests a connection receives (other than pings).
pub trait Services: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Incoming) -> AnswerFuture;

    /// Takes a one-way message (an Event with request id 0, `spec/protocol.md` section 10).
    /// It must not block: the reader of the connection waits for it. Services that take
    /// none ignore them.
    fn notify(&self, message: Incoming) {
        let _ = message;
    }

    /// Takes a Subscribe (`spec/protocol.md` section 10): the answer is the Response payload
    /// accepting it or the Error refusing it. An accepting service keeps `sink` and pushes
    /// the subscription's Events into it until [`EventSink::is_closed`] (the peer's
    /// Unsubscribe or the connection's end); events pushed before the answer are written
    /// after it. By default, every Subscribe is refused with Error 10 (unsupported kind).
    fn subscribe(&self, request: Incoming, sink: EventSink) -> AnswerFuture {
        drop(sink);
        let message = format!("{:?} has no subscriptions", request.service);
        Box::pin(async move {
            Err(ErrorBody {
                code: ErrorCode::UNSUPPORTED_KIND,
                message,
            })
        })
    }
}

/// A handle on a live connection, cheap to clone.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

struct Shared {
    id: u64,
    cell: PublicKey,
    remote: PublicKey,
    address: String,
    outbox: async_channel::Sender<Envelope>,
    stop: async_channel::Sender<()>,
    pending: Mutex<HashMap<u64, async_channel::Sender<Answer>>>,
    /// The subscriptions the peer opened, by id: closing the sender ends one.
    subscriptions: Mutex<HashMap<u64, async_channel::Sender<()>>>,
    next_request_id: AtomicU64,
    /// When anything was last received, µs since the Unix epoch (for `exo status`).
    last_received_us: AtomicU64,
    /// When the session was established.
    opened: Instant,
    /// Whether anything arrived from the peer: a node that refuses our key as a member
    /// closes right after the handshake, before sending anything.
    received_any: AtomicBool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Connection#{}({} at {})",
            self.shared.id, self.shared.remote, self.shared.address
        )
    }
}

impl Connection {
    /// This connection's number, unique in the process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The authenticated node or client at the other end.
    pub fn remote(&self) -> PublicKey {
        self.shared.remote
    }

    /// The cell this connection is for.
    pub fn cell(&self) -> PublicKey {
        self.shared.cell
    }

    /// Whether anything was received from the peer.
    pub fn received_any(&self) -> bool {
        self.shared.received_any.load(Ordering::Relaxed)
    }

    /// The other end's socket address, for logs.
    pub fn address(&self) -> &str {
        &self.shared.address
    }

    /// How long the session has been up.
    pub fn age(&self) -> Duration {
        self.shared.opened.elapsed()
    }

    /// When anything was last received from the other end, µs since the Unix epoch.
    pub fn last_received_us(&self) -> u64 {
        self.shared.last_received_us.load(Ordering::Relaxed)
    }

    /// Sends a request and waits for its answer, at most `timeout`.
    pub async fn request(
        &self,
        service: Service,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let id = self.shared.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer_rx) = async_channel::bounded(1);
        lock(&self.shared.pending).insert(id, answer_tx);
        let sent = self
            .shared
            .outbox
            .try_send(Envelope::request(service, id, payload));
        let answer = match sent {
            Err(async_channel::TrySendError::Full(_)) => Err(NetError::QueueFull),
            Err(async_channel::TrySendError::Closed(_)) => Err(NetError::Disconnected),
            Ok(()) => {
                let wait = async { answer_rx.recv().await.map_err(|_| NetError::Disconnected) };
                let expire = async {
                    Timer::after(timeout).await;
                    Err(NetError::Timeout)
                };
                future::or(wait, expire).await
            }
        };
        lock(&self.shared.pending).remove(&id);
        answer?.map_err(NetError::Remote)
    }

    /// Queues a one-way message (an Event with request id 0) without waiting for anything.
    pub fn notify(&self, service: Service, payload: Vec<u8>) -> Result<(), NetError> {
        let envelope = Envelope {
            service,
            kind: Kind::Event,
            request_id: 0,
            payload,
        };
        self.shared.outbox.try_send(envelope).map_err(|e| match e {
            async_channel::TrySendError::Full(_) => NetError::QueueFull,
            async_channel::TrySendError::Closed(_) => NetError::Disconnected,
        })
    }

    /// Pings the peer; returns the round trip.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, NetError> {
        let nonce = fastrand::u64(..);
        let payload = wire::encode(&Ping { nonce }).map_err(|e| NetError::Encode(e.to_string()))?;
        let start = Instant::now();
        let answer = self.request(Service::Ping, payload, timeout).await?;
        match wire::decode::<Pong>(&answer) {
            Ok(pong) if pong.nonce == nonce => Ok(start.elapsed()),
            _ => Err(NetError::Remote(ErrorBody {
                code: ErrorCode::BAD_MESSAGE,
                message: "the pong does not match the ping".into(),
            })),
        }
    }

    /// Ends the connection in an orderly way: a Close with `reason`, then the TCP close.
    pub fn close(&self, reason: &str) {
        if let Ok(envelope) = Envelope::close(reason) {
            let _ = self.shared.outbox.try_send(envelope);
        }
        self.shared.stop.close();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection being set up: the handle to hand out, and what [`Pending::run`] needs.
pub struct Pending {
    connection: Connection,
    outbox: async_channel::Receiver<Envelope>,
    stop: async_channel::Receiver<()>,
}

impl Pending {
    /// Prepares connection number `id` with `remote` in `cell`.
    pub fn new(id: u64, cell: PublicKey, remote: PublicKey, address: String) -> Pending {
        let (outbox_tx, outbox) = async_channel::bounded(SEND_QUEUE_LEN);
        let (stop_tx, stop) = async_channel::bounded(1);
        let shared = Shared {
            id,
            cell,
            remote,
            address,
            outbox: outbox_tx,
            stop: stop_tx,
            pending: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            last_received_us: AtomicU64::new(crate::clock::now_us()),
            opened: Instant::now(),
            received_any: AtomicBool::new(false),
        };
        Pending {
            connection: Connection {
                shared: Arc::new(shared),
            },
            outbox,
            stop,
        }
    }

    /// The handle of this connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Runs the connection until it ends; returns why it ended, for the log.
    pub async fn run<S>(self, session: Session<S>, services: Arc<dyn Services>) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Pending {
            connection,
            outbox,
            stop,
        } = self;
        let (mut sender, mut receiver) = session.split();
        let writer = smol::spawn(async move {
            loop {
                let next = future::or(async { outbox.recv().await.ok().map(Some) }, async {
                    Timer::after(KEEPALIVE_INTERVAL).await;
                    Some(None)
                })
                .await;
                let envelope = match next {
                    None => break,
                    Some(Some(envelope)) => envelope,
                    // Nothing sent for a while: a ping keeps the peer's idle timer at bay.
                    // Its answer matches no waiting request and is dropped.
                    Some(None) => match wire::encode(&Ping { nonce: 0 }) {
                        Ok(payload) => Envelope::request(Service::Ping, 0, payload),
                        Err(_) => continue,
                    },
                };
                let closing = envelope.kind == Kind::Close;
                if sender.send_envelope(&envelope).await.is_err() {
                    break;
                }
                if closing {
                    let _ = sender.shutdown().await;
                    break;
                }
            }
        });

        let in_flight = Arc::new(AtomicUsize::new(0));
        let shared = &connection.shared;
        enum Event {
            Received(Result<Envelope, ProtocolError>),
            Idle,
            Stop,
        }
        let reason = loop {
            let event = future::or(
                async { Event::Received(receiver.receive_envelope().await) },
                future::or(
                    async {
                        Timer::after(IDLE_TIMEOUT).await;
                        Event::Idle
                    },
                    async {
                        let _ = stop.recv().await;
                        Event::Stop
                    },
                ),
            )
            .await;
            if matches!(event, Event::Received(_)) {
                shared
                    .last_received_us
                    .store(crate::clock::now_us(), Ordering::Relaxed);
            }
            match event {
                Event::Received(Ok(envelope)) => {
                    shared.received_any.store(true, Ordering::Relaxed);
                    if let Some(reason) =
                        dispatch(&connection, envelope, &services, &in_flight).await
                    {
                        break reason;
                    }
                }
                Event::Received(Err(ProtocolError::Wire(WireError::UnknownService {
                    service,
                    kind,
                    request_id,
                }))) => {
                    // The envelope is readable but names a service this version lacks:
                    // answer requests with an error and keep the connection (spec 10).
                    debug!("{connection:?}: unknown service {service} (kind {kind})");
                    if kind == Kind::Request as u32 || kind == Kind::Subscribe as u32 {
                        let message = format!("unknown service {service}");
                        if let Ok(e) = error_envelope(
                            Service::Ping,
                            request_id,
                            ErrorCode::UNKNOWN_SERVICE,
                            &message,
                        ) {
                            let _ = shared.outbox.send(e).await;
                        }
                    }
                }
                Event::Received(Err(err)) => {
                    warn!("closing {connection:?} on bad input: {err}");
                    connection.close(&format!("bad input: {err}"));
                    break format!("bad input: {err}");
                }
                Event::Idle => {
                    connection.close("idle timeout");
                    break format!("nothing received for {} s", IDLE_TIMEOUT.as_secs());
                }
                Event::Stop => break "closed by this node".into(),
            }
        };
        // The writer flushes what is queued (including a Close), then stops.
        shared.outbox.close();
        let _ = future::or(writer, async {
            Timer::after(Duration::from_secs(2)).await;
        })
        .await;
        // Requests still waiting for an answer fail now, not at their timeout.
        lock(&shared.pending).clear();
        // The services stop feeding the peer's subscriptions.
        for (_, cancel) in lock(&shared.subscriptions).drain() {
            cancel.close();
        }
        reason
    }
}

/// Handles one envelope from the peer; `Some(reason)` ends the connection.
async fn dispatch(
    connection: &Connection,
    envelope: Envelope,
    services: &Arc<dyn Services>,
    in_flight: &Arc<AtomicUsize>,
) -> Option<String> {
    let shared = &connection.shared;
    match envelope.kind {
        Kind::Request if envelope.service == Service::Ping => {
            let answer = match wire::decode::<Ping>(&envelope.payload) {
                Ok(ping) => wire::encode(&Pong { nonce: ping.nonce }).map(|p| envelope.response(p)),
                Err(e) => envelope.error(ErrorCode::BAD_MESSAGE, &format!("not a ping: {e}")),
            };
            if let Ok(answer) = answer {
                let _ = shared.outbox.send(answer).await;
            }
        }
        Kind::Request => {
            if in_flight.load(Ordering::Acquire) >= IN_FLIGHT_REQUESTS_MAX {
                let message = format!("at most {IN_FLIGHT_REQUESTS_MAX} requests in flight");
                if let Ok(e) = envelope.error(ErrorCode::TOO_MANY_IN_FLIGHT, &message) {
                    let _ = shared.outbox.send(e).await;
                }
                return None;
            }
            in_flight.fetch_add(1, Ordering::AcqRel);
            let (service, request_id) = (envelope.service, envelope.request_id);
            let answer = services.handle(Incoming {
                cell: shared.cell,
                from: shared.remote,
                service,
                payload: envelope.payload,
            });
            let outbox = shared.outbox.clone();
            let in_flight = in_flight.clone();
            smol::spawn(async move {
                let reply = match answer.await {
                    Ok(payload) => Ok(Envelope {
                        service,
                        kind: Kind::Response,
                        request_id,
                        payload,
                    }),
                    Err(body) => error_envelope(service, request_id, body.code, &body.message),
                };
                if let Ok(reply) = reply {
                    let _ = outbox.send(reply).await;
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
            })
            .detach();
        }
        Kind::Response | Kind::Error => {
            let waiting = lock(&shared.pending).remove(&envelope.request_id);
            if let Some(waiting) = waiting {
                let answer = if envelope.kind == Kind::Response {
                    Ok(envelope.payload)
                } else {
                    Err(envelope.error_body().unwrap_or_else(|e| ErrorBody {
                        code: ErrorCode::BAD_MESSAGE,
                        message: format!("undecodable error body: {e}"),
                    }))
                };
                let _ = waiting.try_send(answer);
            }
        }
        Kind::Close => {
            let reason = wire::decode::<CloseBody>(&envelope.payload)
                .map(|body| body.reason)
                .unwrap_or_else(|_| "no reason given".into());
            return Some(format!("closed by the peer: {reason}"));
        }
        Kind::Subscribe => subscribe(connection, envelope, services, in_flight).await,
        Kind::Event if envelope.request_id == 0 => services.notify(Incoming {
            cell: shared.cell,
            from: shared.remote,
            service: envelope.service,
            payload: envelope.payload,
        }),
        Kind::Unsubscribe => {
            // Unknown ids are ignored: the subscription may have just ended on this side.
            if let Some(cancel) = lock(&shared.subscriptions).remove(&envelope.request_id) {
                cancel.close();
            }
        }
        // This node subscribes to nothing, so no Event of a subscription is expected.
        Kind::Event => {}
    }
    None
}

/// Opens a subscription the peer asked for: the service answers, then its events follow.
async fn subscribe(
    connection: &Connection,
    envelope: Envelope,
    services: &Arc<dyn Services>,
    in_flight: &Arc<AtomicUsize>,
) {
    let shared = &connection.shared;
    let refusal = {
        let subscriptions = lock(&shared.subscriptions);
        if in_flight.load(Ordering::Acquire) >= IN_FLIGHT_REQUESTS_MAX {
            Some((
                ErrorCode::TOO_MANY_IN_FLIGHT,
                format!("at most {IN_FLIGHT_REQUESTS_MAX} requests in flight"),
            ))
        } else if subscriptions.len() >= SUBSCRIPTIONS_MAX {
            Some((
                ErrorCode::TOO_MANY_IN_FLIGHT,
                format!("at most {SUBSCRIPTIONS_MAX} subscriptions open on one connection"),
            ))
        } else if subscriptions.contains_key(&envelope.request_id) {
            Some((
                ErrorCode::BAD_MESSAGE,
                format!("subscription {} is already open", envelope.request_id),
            ))
        } else {
            None
        }
    };
    if let Some((code, message)) = refusal {
        if let Ok(e) = envelope.error(code, &message) {
            let _ = shared.outbox.send(e).await;
        }
        return;
    }
    in_flight.fetch_add(1, Ordering::AcqRel);
    let (service, id) = (envelope.service, envelope.request_id);
    let (sink, writer, cancel) = subscription::sink(service, id);
    lock(&shared.subscriptions).insert(id, cancel.clone());
    let answer = services.subscribe(
        Incoming {
            cell: shared.cell,
            from: shared.remote,
            service,
            payload: envelope.payload,
        },
        sink,
    );
    let connection = connection.clone();
    let in_flight = in_flight.clone();
    smol::spawn(async move {
        let shared = &connection.shared;
        let forget = || {
            let mut subscriptions = lock(&shared.subscriptions);
            if subscriptions
                .get(&id)
                .is_some_and(|c| c.same_channel(&cancel))
            {
                subscriptions.remove(&id);
            }
            cancel.close();
        };
        let answer = answer.await;
        let accepted = answer.is_ok();
        let reply = match answer {
            Ok(payload) => Ok(Envelope {
                service,
                kind: Kind::Response,
                request_id: id,
                payload,
            }),
            Err(body) => error_envelope(service, id, body.code, &body.message),
        };
        if let Ok(reply) = reply {
            let _ = shared.outbox.send(reply).await;
        }
        in_flight.fetch_sub(1, Ordering::AcqRel);
        if accepted {
            writer.run(shared.outbox.clone()).await;
        }
        forget();
    })
    .detach();
}
