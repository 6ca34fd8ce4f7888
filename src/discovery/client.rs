//! The rendezvous client: what `exo cell join` and `exo cell node add --pin` use to reach each
//! other through a server.

use std::fmt;
use std::time::Duration;

use async_net::TcpStream;
use futures_lite::future;

use super::frame::{self, ClientFrame, ErrorCode, FrameError, ServerFrame, MAGIC};

/// How long to wait for the server to accept the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to the rendezvous server.
#[derive(Debug)]
pub enum ClientError {
    /// The server could not be reached.
    Connect {
        /// The address tried.
        address: String,
        /// Why.
        reason: String,
    },
    /// The server said no.
    Server {
        /// Its code, if known.
        code: Option<ErrorCode>,
        /// Its words.
        message: String,
    },
    /// The other party left (or its connection broke).
    PeerLeft,
    /// The connection broke or the server sent garbage.
    Broken(String),
    /// Nothing came in time.
    Timeout(Duration),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { address, reason } => write!(
                f,
                "cannot reach the rendezvous server at {address}: {reason} (is `exo discovery daemon` running there? without one, use --request/--answer files)"
            ),
            ClientError::Server { message, .. } => write!(f, "rendezvous server: {message}"),
            ClientError::PeerLeft => write!(f, "the other node disconnected before the join finished"),
            ClientError::Broken(what) => write!(f, "connection to the rendezvous server broken: {what}"),
            ClientError::Timeout(after) => write!(f, "no answer within {} s", after.as_secs()),
        }
    }
}

impl std::error::Error for ClientError {}

/// A connection to a rendezvous server.
pub struct Rendezvous {
    stream: TcpStream,
}

impl Rendezvous {
    /// Connects to `address` (`host:port`) and greets the server.
    pub async fn connect(address: &str) -> Result<Rendezvous, ClientError> {
        let connect_error = |reason: String| ClientError::Connect {
            address: address.to_string(),
            reason,
        };
        let connecting = async {
            TcpStream::connect(address)
                .await
                .map_err(|e| connect_error(e.to_string()))
        };
        let timeout = async {
            async_io::Timer::after(CONNECT_TIMEOUT).await;
            Err(connect_error(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            )))
        };
        let mut stream = future::or(connecting, timeout).await?;
        frame::write(&mut stream, MAGIC)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        Ok(Rendezvous { stream })
    }

    async fn send(&mut self, frame: ClientFrame) -> Result<(), ClientError> {
        frame::write(&mut self.stream, &frame.encode())
            .await
            .map_err(|e| ClientError::Broken(e.to_string()))
    }

    /// The next frame from the server, within `timeout` if given.
    async fn next(&mut self, timeout: Option<Duration>) -> Result<ServerFrame, ClientError> {
        let reading = async {
            let (kind, body) = frame::read(&mut self.stream).await.map_err(|e| match e {
                FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    ClientError::Broken("the server closed the connection".into())
                }
                other => ClientError::Broken(other.to_string()),
            })?;
            ServerFrame::decode(kind, body).map_err(|e| ClientError::Broken(e.to_string()))
        };
        let frame = match timeout {
            None => reading.await?,
            Some(after) => {
                future::or(reading, async {
                    async_io::Timer::after(after).await;
                    Err(ClientError::Timeout(after))
                })
                .await?
            }
        };
        match frame {
            ServerFrame::Error { code, message } => Err(ClientError::Server {
                code: ErrorCode::from_u16(code),
                message,
            }),
            ServerFrame::PeerLeft => Err(ClientError::PeerLeft),
            other => Ok(other),
        }
    }

    /// Opens a slot: its number and lifetime in seconds.
    pub async fn open(&mut self) -> Result<(u32, u32), ClientError> {
        self.send(ClientFrame::Open).await?;
        match self.next(Some(CONNECT_TIMEOUT)).await? {
            ServerFrame::Opened { slot, ttl_secs } => Ok((slot, ttl_secs)),
            other => Err(unexpected(other)),
        }
    }

    /// Waits until a member claims our slot.
    pub async fn wait_peer(&mut self) -> Result<(), ClientError> {
        match self.next(None).await? {
            ServerFrame::PeerJoined => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Claims slot `slot`.
    pub async fn claim(&mut self, slot: u32) -> Result<(), ClientError> {
        self.send(ClientFrame::Claim(slot)).await?;
        match self.next(Some(CONNECT_TIMEOUT)).await? {
            ServerFrame::Claimed => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Relays `data` to the other party.
    pub async fn relay(&mut self, data: Vec<u8>) -> Result<(), ClientError> {
        self.send(ClientFrame::Relay(data)).await
    }

    /// The next message from the other party.
    pub async fn receive(&mut self, timeout: Option<Duration>) -> Result<Vec<u8>, ClientError> {
        match self.next(timeout).await? {
            ServerFrame::Relay(data) => Ok(data),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(frame: ServerFrame) -> ClientError {
    ClientError::Broken(format!("unexpected frame from the server: {frame:?}"))
}
