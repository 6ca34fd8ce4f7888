//! A small async client: connect to a node as a cell member, send requests concurrently,
//! subscribe to events, close in order.
//!
//! ```no_run
//! # async fn demo() -> Result<(), exocore_protocol::Error> {
//! use exocore_protocol::client::Client;
//! use exocore_protocol::envelope::Service;
//! use exocore_protocol::identity::{Keypair, PublicKey};
//!
//! let me = Keypair::generate();
//! let cell: PublicKey = "pk_...".parse()?;
//! let node: PublicKey = "pk_...".parse()?;
//! let mut client = Client::connect("127.0.0.1:7710", &me, cell, &[node]).await?;
//!
//! // Several requests in flight at once: each caller uses its own clone of the handle.
//! let mut other = client.clone();
//! let (rtt, answer) =
//!     futures_lite::future::zip(client.ping(), other.request(Service::Store, vec![])).await;
//! println!("ping {:?}, store answered {} bytes", rtt?, answer?.len());
//!
//! let mut changes = client.subscribe(Service::Store, vec![]).await?;
//! while let Some(event) = changes.next().await {
//!     let event = event?;
//!     if event.skipped_before > 0 {
//!         // The buffer overflowed: older events were dropped, this one is the newest.
//!     }
//!     println!("{} bytes", event.payload.len());
//! }
//! client.close("done").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! **Tasks.** [`Client::connect`] runs the preamble and handshake in the caller's task, then
//! starts one *driver* for the connection on its own thread (named `exocore-client`), which
//! runs `async_io::block_on` over three futures until the connection ends:
//!
//! - the *reader* receives envelopes continuously: it routes Responses and Errors to the
//!   waiting request by id, Events to their subscription's buffer, answers the node's Ping
//!   requests (and refuses any other request: a client serves nothing), and notes the time of
//!   each receipt;
//! - the *writer* takes encoded envelopes from one queue and writes them whole, one after the
//!   other, and notes the time of each send;
//! - the *timer* sends a keepalive Ping when nothing was sent for [`crate::KEEPALIVE_INTERVAL`],
//!   and ends the connection (Close, reason `idle timeout`) when nothing was received for
//!   [`crate::IDLE_TIMEOUT`].
//!
//! A dedicated thread rather than a task on an executor: the client then works the same under
//! `smol::block_on`, any executor or none, and the caller's own tasks can never starve the
//! keepalive. The thread sleeps in the `async-io` reactor when there is nothing to do, and
//! exits when the connection ends.
//!
//! Callers never touch the socket: a request registers its id, puts its encoded envelope in
//! the writer's queue and waits for the reader to hand it the answer. Dropping a request's
//! future at any point (a timeout, a `select`) therefore never leaves a half-written message.
//!
//! **Handles.** [`Client`] is a cheap handle ([`Clone`]: one reference count); all clones
//! share one connection. Its methods take `&mut self` like a connection's would, so that a
//! handle serves one task at a time; clone it to issue requests from several tasks at once.
//! [`Client::close`] on any clone closes the connection for all of them. When the last clone
//! and the last [`Subscription`] are dropped, the connection is closed with reason
//! `client dropped`.
//!
//! **Limits and policies.**
//!
//! - In flight: at most [`crate::IN_FLIGHT_REQUESTS_MAX`] requests and unanswered Subscribes
//!   (keepalive pings included) are awaiting an answer; one more *waits* for a slot, within
//!   its timeout. A request that timed out or whose caller went away keeps its slot until its
//!   late answer arrives, because the node still counts it (spec section 11).
//! - Timeout: each request, and each Subscribe until its answer, fails with
//!   [`Error::TimedOut`] after [`ClientOptions::request_timeout`] (waiting for a slot
//!   included). The connection stays usable.
//! - Subscriptions: each has a buffer of at most [`ClientOptions::subscription_buffer_events`]
//!   events and [`ClientOptions::subscription_buffer_bytes`] payload bytes. When a slow
//!   consumer lets it fill, the *oldest* events are dropped, never the newest: the last state
//!   sent by the node is always delivered, and the first event after a gap says how many were
//!   dropped just before it ([`Event::skipped_before`]). The end of a subscription is never
//!   dropped and comes after the buffered events.
//! - Answers to the node's requests: at most [`crate::IN_FLIGHT_REQUESTS_MAX`] queued; beyond
//!   that the reader waits for the writer (back-pressure on the node).
//! - Ending: when the node closes, the connection breaks, the idle timeout fires or the client
//!   closes, every waiting request fails and every subscription yields one error then ends.
//!   [`Error::ClosedByPeer`] carries the node's reason; an end on this side is an
//!   [`Error::Session`] I/O error whose text says what happened (`this client closed the
//!   connection (...)`, `nothing received from the node for ...`).
//! - Orderly close: Close is queued after the requests already queued, then the write half is
//!   shut down; requests already sent may still get their answers until the node closes, for
//!   at most [`CLOSE_TIMEOUT`].

mod driver;
mod subscription;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_net::{AsyncToSocketAddrs, TcpStream};
use rand_core::RngCore;

use crate::envelope::{Kind, Service};
use crate::error::Error;
use crate::identity::{Keypair, PublicKey};
use crate::message::{Ping, Pong};
use crate::session::{self, Peer};
use crate::{wire, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, KEEPALIVE_INTERVAL, MESSAGE_SIZE_BYTES_MAX};

use driver::{Ended, Shared};
pub use subscription::{Event, Subscription};

/// How long a request waits for its answer, by default.
pub const REQUEST_TIMEOUT: Duration = IDLE_TIMEOUT;

/// Events a subscription buffers for a slow consumer, by default, before dropping the oldest.
pub const SUBSCRIPTION_BUFFER_EVENTS: usize = 64;

/// Payload bytes a subscription buffers for a slow consumer, by default, before dropping the
/// oldest events (the newest event is kept whatever its size).
pub const SUBSCRIPTION_BUFFER_BYTES: usize = MESSAGE_SIZE_BYTES_MAX;

/// After sending Close, how long the client keeps reading answers in flight before it drops
/// the connection, if the node has not closed it by then.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Options of a client. [`Default`] is what production uses.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long a request (or a Subscribe, until its answer) waits, slot included.
    pub request_timeout: Duration,
    /// Largest number of events buffered per subscription (at least 1).
    pub subscription_buffer_events: usize,
    /// Largest number of payload bytes buffered per subscription (the newest event is kept
    /// even if it alone is larger).
    pub subscription_buffer_bytes: usize,
    /// After sending Close, how long to keep reading answers in flight.
    pub close_timeout: Duration,
    /// Send a Ping after this long without sending. The protocol fixes it; tests lower it.
    #[doc(hidden)]
    pub keepalive_interval: Duration,
    /// End the connection after this long without receiving. The protocol fixes it; tests
    /// lower it.
    #[doc(hidden)]
    pub idle_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: REQUEST_TIMEOUT,
            subscription_buffer_events: SUBSCRIPTION_BUFFER_EVENTS,
            subscription_buffer_bytes: SUBSCRIPTION_BUFFER_BYTES,
            close_timeout: CLOSE_TIMEOUT,
            keepalive_interval: KEEPALIVE_INTERVAL,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

impl ClientOptions {
    /// The options with their values brought into range (a zero interval would spin).
    fn sanitized(mut self) -> ClientOptions {
        const TICK_MIN: Duration = Duration::from_millis(1);
        self.subscription_buffer_events = self.subscription_buffer_events.max(1);
        self.keepalive_interval = self.keepalive_interval.max(TICK_MIN);
        self.idle_timeout = self.idle_timeout.max(TICK_MIN);
        self
    }
}

/// A connection to one node of a cell; a cheap, cloneable handle (see the module docs).
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

/// What keeps the connection open: shared by the clones of a [`Client`] and its
/// [`Subscription`]s. Dropping the last one closes the connection.
struct Handle {
    shared: Arc<Shared>,
    peer: Peer,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let reason = "client dropped";
        self.shared
            .begin_close(Ended::ClosedHere(reason.into()), reason, None);
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.handle.peer)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr`, names `cell` in the preamble, and authenticates: the node must
    /// prove it holds one of `allowed_servers`, and `keypair` must be a member of the cell.
    pub async fn connect<A: AsyncToSocketAddrs>(
        addr: A,
        keypair: &Keypair,
        cell: PublicKey,
        allowed_servers: &[PublicKey],
    ) -> Result<Client, Error> {
        Client::connect_with(
            addr,
            keypair,
            cell,
            allowed_servers,
            ClientOptions::default(),
        )
        .await
    }

    /// [`Client::connect`] with options.
    pub async fn connect_with<A: AsyncToSocketAddrs>(
        addr: A,
        keypair: &Keypair,
        cell: PublicKey,
        allowed_servers: &[PublicKey],
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let connect = async { TcpStream::connect(addr).await.map_err(Error::Connect) };
        let stream = futures_lite::future::or(connect, async {
            async_io::Timer::after(HANDSHAKE_TIMEOUT).await;
            Err(Error::TimedOut)
        })
        .await?;
        // Small messages (pings, requests) should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let session = session::initiate(stream, keypair, &cell, allowed_servers).await?;
        let peer = session.peer().clone();
        let (send, receive) = session.split();
        let (shared, outgoing) = Shared::new(options.sanitized(), Instant::now());
        let driver = driver::drive(shared.clone(), send, receive, outgoing);
        std::thread::Builder::new()
            .name("exocore-client".into())
            .spawn(move || async_io::block_on(driver))
            .map_err(Error::Connect)?;
        Ok(Client {
            handle: Arc::new(Handle { shared, peer }),
        })
    }

    /// The node and cell of this connection.
    pub fn peer(&self) -> &Peer {
        &self.handle.peer
    }

    /// Whether the connection is closing or has ended: every new request would fail.
    pub fn is_closed(&self) -> bool {
        self.handle.shared.is_ended()
    }

    /// Sends a request to `service` and waits for its response's payload. An Error answer is
    /// [`Error::Remote`]; no answer within the request timeout is [`Error::TimedOut`].
    /// Waits for a slot when [`crate::IN_FLIGHT_REQUESTS_MAX`] requests are in flight.
    pub async fn request(&mut self, service: Service, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        let answer = self
            .handle
            .shared
            .call(service, Kind::Request, payload, None)
            .await?;
        Ok(answer.payload)
    }

    /// Pings the node; returns the round-trip time.
    pub async fn ping(&mut self) -> Result<Duration, Error> {
        let nonce = rand_core::OsRng.next_u64();
        let start = Instant::now();
        let payload = self
            .request(Service::Ping, wire::encode(&Ping { nonce })?)
            .await?;
        let rtt = start.elapsed();
        let pong: Pong = wire::decode(&payload)?;
        if pong.nonce != nonce {
            return Err(Error::UnexpectedMessage(format!(
                "pong for nonce {:#x}, expected {nonce:#x}",
                pong.nonce
            )));
        }
        Ok(rtt)
    }

    /// Opens a subscription to `service` and waits until the node accepts it (its Response)
    /// or refuses it ([`Error::Remote`]). The subscription then yields the node's events; see
    /// the module docs for its buffer.
    pub async fn subscribe(
        &mut self,
        service: Service,
        payload: Vec<u8>,
    ) -> Result<Subscription, Error> {
        let shared = &self.handle.shared;
        let queue = Arc::new(subscription::Queue::new(
            shared.options.subscription_buffer_events,
            shared.options.subscription_buffer_bytes,
        ));
        let answer = shared
            .call(service, Kind::Subscribe, payload, Some(queue.clone()))
            .await?;
        Ok(Subscription::new(
            answer.request_id,
            service,
            answer.payload,
            queue,
            self.handle.clone(),
        ))
    }

    /// Orderly close, for every clone of this handle: sends Close with `reason` after the
    /// envelopes already queued, then shuts down the connection's write half. Returns once
    /// the Close is written; `Ok` too if the connection had already ended.
    pub async fn close(self, reason: &str) -> Result<(), Error> {
        let (done, written) = async_channel::bounded(1);
        if !self
            .handle
            .shared
            .begin_close(Ended::ClosedHere(reason.to_owned()), reason, Some(done))
        {
            return Ok(());
        }
        // The driver drops `done` unsent only if the connection ended before the Close could
        // be written: then there is nothing left to close.
        written.recv().await.unwrap_or(Ok(()))
    }
}
