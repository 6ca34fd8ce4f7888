//! A small async client: connect to a node as a cell member, send requests, ping.
//!
//! The client is sequential: one request at a time, and it reads from the connection only
//! while a call is in progress. It answers the node's keepalive pings while it waits for a
//! response. A client left idle for longer than [`crate::IDLE_TIMEOUT`] may be disconnected by
//! the node; call [`Client::ping`] more often than [`crate::KEEPALIVE_INTERVAL`] to keep it.

use std::time::{Duration, Instant};

use async_net::{AsyncToSocketAddrs, TcpStream};
use rand_core::RngCore;

use crate::envelope::{Envelope, Kind, Service};
use crate::error::{Error, FrameError, SessionError};
use crate::identity::{Keypair, PublicKey};
use crate::message::{CloseBody, ErrorCode, Ping, Pong};
use crate::session::{self, Peer, Session};
use crate::{wire, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT};

/// How long a request waits for its answer.
pub const REQUEST_TIMEOUT: Duration = IDLE_TIMEOUT;

/// A connection to one node of a cell.
#[derive(Debug)]
pub struct Client {
    session: Session<TcpStream>,
    next_request_id: u64,
    received_any: bool,
    /// Set once the connection failed: every later call returns this error's text.
    broken: Option<String>,
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
        let connect = async { TcpStream::connect(addr).await.map_err(Error::Connect) };
        let stream = futures_lite::future::or(connect, async {
            async_io::Timer::after(HANDSHAKE_TIMEOUT).await;
            Err(Error::TimedOut)
        })
        .await?;
        // Small messages (pings, requests) should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let session = session::initiate(stream, keypair, &cell, allowed_servers).await?;
        Ok(Client {
            session,
            next_request_id: 1,
            received_any: false,
            broken: None,
        })
    }

    /// The node and cell of this connection.
    pub fn peer(&self) -> &Peer {
        self.session.peer()
    }

    /// Sends a request to `service` and waits for its response's payload. An Error answer is
    /// [`Error::Remote`].
    pub async fn request(&mut self, service: Service, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        if let Some(reason) = &self.broken {
            return Err(Error::ClosedByPeer(reason.clone()));
        }
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1).max(1);
        let exchange = self.exchange(Envelope::request(service, request_id, payload));
        let result = futures_lite::future::or(exchange, async {
            async_io::Timer::after(REQUEST_TIMEOUT).await;
            Err(Error::TimedOut)
        })
        .await;
        match &result {
            Ok(_) | Err(Error::Remote(_)) => {}
            // A cancelled or failed read leaves the stream mid-message: the client is done.
            Err(e) => self.broken = Some(e.to_string()),
        }
        result
    }

    async fn exchange(&mut self, request: Envelope) -> Result<Vec<u8>, Error> {
        self.session.send_envelope(&request).await?;
        loop {
            let envelope = self.receive().await?;
            match envelope.kind {
                Kind::Response if envelope.request_id == request.request_id => {
                    return Ok(envelope.payload)
                }
                Kind::Error if envelope.request_id == request.request_id => {
                    return Err(Error::Remote(envelope.error_body()?));
                }
                Kind::Request => self.answer(&envelope).await?,
                Kind::Close => {
                    let reason = wire::decode::<CloseBody>(&envelope.payload)
                        .map(|body| body.reason)
                        .unwrap_or_else(|_| "no reason given".into());
                    return Err(Error::ClosedByPeer(reason));
                }
                // Late answers to earlier requests, events: nothing waits for them.
                _ => {}
            }
        }
    }

    async fn receive(&mut self) -> Result<Envelope, Error> {
        match self.session.receive_envelope().await {
            Ok(envelope) => {
                self.received_any = true;
                Ok(envelope)
            }
            Err(Error::Session(SessionError::Frame(FrameError::Closed))) if !self.received_any => {
                Err(Error::ClosedByPeer(
                    "the node closed the connection right after the handshake \
                     (is this key a member of the cell?)"
                        .into(),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Answers a request from the node: pings are answered, anything else is refused.
    async fn answer(&mut self, request: &Envelope) -> Result<(), Error> {
        let reply = match (request.service, wire::decode::<Ping>(&request.payload)) {
            (Service::Ping, Ok(ping)) => {
                request.response(wire::encode(&Pong { nonce: ping.nonce })?)
            }
            (Service::Ping, Err(e)) => request.error(ErrorCode::BAD_MESSAGE, &e.to_string())?,
            _ => request.error(ErrorCode::UNKNOWN_SERVICE, "a client serves nothing")?,
        };
        self.session.send_envelope(&reply).await
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

    /// Orderly close: sends Close with `reason` and shuts down the connection's write half.
    pub async fn close(mut self, reason: &str) -> Result<(), Error> {
        if self.broken.is_some() {
            return Ok(());
        }
        self.session.close(reason).await
    }
}
