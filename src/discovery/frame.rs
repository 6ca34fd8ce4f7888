//! The rendezvous protocol's frames (`spec/join.md` section 2): a 4-byte big-endian length,
//! then a type byte and the body. The server reads the length before anything else and
//! refuses a frame longer than [`FRAME_BYTES_MAX`] without reading it.

use std::fmt;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a client sends first: the protocol's name and version.
pub const MAGIC: &[u8; 8] = b"EXOJOIN1";
/// Longest frame (type byte and body), in bytes.
pub const FRAME_BYTES_MAX: u32 = 64 * 1024;

/// Client to server: open a slot (joining node).
pub const OPEN: u8 = 0x01;
/// Client to server: claim slot N (member).
pub const CLAIM: u8 = 0x02;
/// Either way: an opaque message for the other party.
pub const RELAY: u8 = 0x03;
/// Server to joining node: your slot number and its lifetime.
pub const OPENED: u8 = 0x81;
/// Server to member: the slot is yours.
pub const CLAIMED: u8 = 0x82;
/// Server to joining node: a member claimed your slot.
pub const PEER_JOINED: u8 = 0x83;
/// Server to either: the other party left; the slot is closed.
pub const PEER_LEFT: u8 = 0x85;
/// Server to either: an error; the server closes the connection after it.
pub const ERROR: u8 = 0x86;

/// Why the server refused something, as sent in an `ERROR` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not a frame of this protocol, or not expected now.
    Malformed = 1,
    /// A frame longer than the limit.
    TooLarge = 2,
    /// No open slot with that number (never opened, expired, or already claimed).
    NoSuchSlot = 3,
    /// Too many requests from this address; try later.
    RateLimited = 4,
    /// The server has too many open slots.
    Full = 5,
    /// The slot's lifetime ended.
    Expired = 6,
    /// The slot relayed as many messages as it may.
    TooManyMessages = 7,
    /// The client said nothing in time.
    Timeout = 8,
    /// A relay before the other party arrived.
    NotPaired = 9,
    /// Another protocol or version.
    Version = 10,
    /// The other party is not reading its messages.
    PeerStalled = 11,
}

impl ErrorCode {
    /// The code of `value`, if known.
    pub fn from_u16(value: u16) -> Option<ErrorCode> {
        use ErrorCode::*;
        [
            Malformed,
            TooLarge,
            NoSuchSlot,
            RateLimited,
            Full,
            Expired,
            TooManyMessages,
            Timeout,
            NotPaired,
            Version,
            PeerStalled,
        ]
        .into_iter()
        .find(|c| *c as u16 == value)
    }
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// The slot number and how long it stays open, in seconds.
    Opened {
        /// Slot number.
        slot: u32,
        /// Lifetime in seconds.
        ttl_secs: u32,
    },
    /// The member's claim succeeded.
    Claimed,
    /// A member claimed the joining node's slot.
    PeerJoined,
    /// A message from the other party.
    Relay(Vec<u8>),
    /// The other party left.
    PeerLeft,
    /// An error; the connection ends.
    Error {
        /// Its code.
        code: u16,
        /// Words for the user.
        message: String,
    },
}

/// A frame from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Open a slot.
    Open,
    /// Claim a slot.
    Claim(u32),
    /// A message for the other party.
    Relay(Vec<u8>),
}

/// A frame that could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The connection failed or closed.
    Io(std::io::Error),
    /// The length prefix says more than the limit.
    TooLarge(u32),
    /// Not a frame of this protocol.
    Malformed(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::TooLarge(len) => {
                write!(
                    f,
                    "a frame of {len} bytes, more than the {FRAME_BYTES_MAX} allowed"
                )
            }
            FrameError::Malformed(what) => write!(f, "{what}"),
        }
    }
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&(1 + body.len() as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

impl ServerFrame {
    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ServerFrame::Opened { slot, ttl_secs } => {
                let mut body = slot.to_be_bytes().to_vec();
                body.extend_from_slice(&ttl_secs.to_be_bytes());
                frame(OPENED, &body)
            }
            ServerFrame::Claimed => frame(CLAIMED, &[]),
            ServerFrame::PeerJoined => frame(PEER_JOINED, &[]),
            ServerFrame::Relay(data) => frame(RELAY, data),
            ServerFrame::PeerLeft => frame(PEER_LEFT, &[]),
            ServerFrame::Error { code, message } => {
                let mut body = code.to_be_bytes().to_vec();
                body.extend_from_slice(message.as_bytes());
                frame(ERROR, &body)
            }
        }
    }

    /// Whether the server closes the connection after this frame.
    pub fn is_last(&self) -> bool {
        matches!(self, ServerFrame::PeerLeft | ServerFrame::Error { .. })
    }

    /// An error frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error {
            code: code as u16,
            message: message.into(),
        }
    }

    /// Parses a frame's type and body.
    pub fn decode(kind: u8, body: Vec<u8>) -> Result<ServerFrame, FrameError> {
        let exact = |len: usize| {
            if body.len() == len {
                Ok(())
            } else {
                Err(FrameError::Malformed(format!(
                    "server frame {kind:#04x} has {} body bytes, not {len}",
                    body.len()
                )))
            }
        };
        match kind {
            OPENED => {
                exact(8)?;
                Ok(ServerFrame::Opened {
                    slot: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    ttl_secs: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                })
            }
            CLAIMED => exact(0).map(|()| ServerFrame::Claimed),
            PEER_JOINED => exact(0).map(|()| ServerFrame::PeerJoined),
            RELAY => Ok(ServerFrame::Relay(body)),
            PEER_LEFT => exact(0).map(|()| ServerFrame::PeerLeft),
            ERROR if body.len() >= 2 => Ok(ServerFrame::Error {
                code: u16::from_be_bytes([body[0], body[1]]),
                message: String::from_utf8_lossy(&body[2..]).into_owned(),
            }),
            _ => Err(FrameError::Malformed(format!(
                "unknown server frame type {kind:#04x}"
            ))),
        }
    }
}

impl ClientFrame {
    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClientFrame::Open => frame(OPEN, &[]),
            ClientFrame::Claim(slot) => frame(CLAIM, &slot.to_be_bytes()),
            ClientFrame::Relay(data) => frame(RELAY, data),
        }
    }

    /// Parses a frame's type and body.
    pub fn decode(kind: u8, body: Vec<u8>) -> Result<ClientFrame, FrameError> {
        match (kind, body.len()) {
            (OPEN, 0) => Ok(ClientFrame::Open),
            (CLAIM, 4) => Ok(ClientFrame::Claim(u32::from_be_bytes([
                body[0], body[1], body[2], body[3],
            ]))),
            (RELAY, _) => Ok(ClientFrame::Relay(body)),
            (kind, len) => Err(FrameError::Malformed(format!(
                "client frame type {kind:#04x} with {len} body bytes is not part of the protocol"
            ))),
        }
    }
}

/// Reads one frame's type and body; refuses an oversize frame before reading its body.
pub async fn read(stream: &mut (impl AsyncRead + Unpin)) -> Result<(u8, Vec<u8>), FrameError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.map_err(FrameError::Io)?;
    let len = u32::from_be_bytes(len);
    if len > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(len));
    }
    if len == 0 {
        return Err(FrameError::Malformed("an empty frame".into()));
    }
    let mut bytes = vec![0u8; len as usize];
    stream
        .read_exact(&mut bytes)
        .await
        .map_err(FrameError::Io)?;
    let body = bytes.split_off(1);
    Ok((bytes[0], body))
}

/// Writes bytes and flushes.
pub async fn write(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = [
            ServerFrame::Opened {
                slot: 42,
                ttl_secs: 600,
            },
            ServerFrame::Claimed,
            ServerFrame::PeerJoined,
            ServerFrame::Relay(vec![1, 2, 3]),
            ServerFrame::PeerLeft,
            ServerFrame::error(ErrorCode::NoSuchSlot, "no slot 7"),
        ];
        for f in frames {
            let bytes = f.encode();
            let (kind, body) = smol::block_on(read(&mut &bytes[..])).unwrap();
            assert_eq!(ServerFrame::decode(kind, body).unwrap(), f);
        }
        for f in [
            ClientFrame::Open,
            ClientFrame::Claim(99_999),
            ClientFrame::Relay(vec![]),
        ] {
            let bytes = f.encode();
            let (kind, body) = smol::block_on(read(&mut &bytes[..])).unwrap();
            assert_eq!(ClientFrame::decode(kind, body).unwrap(), f);
        }
    }

    #[test]
    fn oversize_and_malformed_frames_are_refused() {
        let mut big = (FRAME_BYTES_MAX + 1).to_be_bytes().to_vec();
        big.push(RELAY);
        assert!(matches!(
            smol::block_on(read(&mut &big[..])),
            Err(FrameError::TooLarge(_))
        ));
        assert!(ClientFrame::decode(CLAIM, vec![1]).is_err());
        assert!(ClientFrame::decode(0x7f, vec![]).is_err());
        assert!(ServerFrame::decode(OPENED, vec![0; 3]).is_err());
    }
}
