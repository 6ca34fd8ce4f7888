//! Errors, one enum per operation, and the umbrella [`Error`]. Each message says what went
//! wrong in words a user (or an operator reading a log line) understands.

use std::fmt;
#[cfg(feature = "net")]
use std::io;

#[cfg(feature = "net")]
use crate::identity::KeyTextError;
#[cfg(feature = "net")]
use crate::message::ErrorBody;

#[cfg(feature = "net")]
/// Reading or writing a length-prefixed frame failed.
#[derive(Debug)]
pub enum FrameError {
    /// The socket failed.
    Io(io::Error),
    /// The peer closed the connection between two frames.
    Closed,
    /// The peer closed the connection in the middle of a frame.
    Truncated {
        /// Bytes the frame announced (including its 2-byte length prefix).
        expected: usize,
        /// Bytes received before the end of the stream.
        received: usize,
    },
    /// The length prefix announces more bytes than allowed at this point of the protocol.
    TooLong {
        /// The announced length.
        len: usize,
        /// The largest length allowed here.
        max: usize,
    },
    /// The frame is shorter than the smallest message allowed at this point of the protocol.
    TooShort {
        /// The announced length.
        len: usize,
        /// The smallest length allowed here.
        min: usize,
    },
}

#[cfg(feature = "net")]
impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "connection failed: {e}"),
            FrameError::Closed => write!(f, "the peer closed the connection"),
            FrameError::Truncated { expected, received } => write!(
                f,
                "the peer closed the connection in the middle of a frame ({received} of {expected} bytes)"
            ),
            FrameError::TooLong { len, max } => {
                write!(f, "frame of {len} bytes is over the limit of {max} bytes")
            }
            FrameError::TooShort { len, min } => {
                write!(f, "frame of {len} bytes is under the minimum of {min} bytes")
            }
        }
    }
}

#[cfg(feature = "net")]
impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "net")]
/// The clear-text preamble was refused or malformed.
#[derive(Debug)]
pub enum PreambleError {
    /// The socket failed or closed early.
    Io(io::Error),
    /// The peer is not speaking the Exocore protocol (the first bytes are not `EXO`).
    NotExocore([u8; 3]),
    /// (Responder) The initiator asked for a protocol version this node does not speak.
    VersionUnsupported {
        /// The version the initiator asked for.
        requested: u8,
    },
    /// (Initiator) The node refused our protocol version.
    VersionRefused {
        /// The version we asked for.
        ours: u8,
        /// The version the node speaks.
        supported: u8,
    },
    /// (Responder) The initiator named a cell this node does not serve.
    UnknownCell {
        /// The 32 bytes the initiator sent as cell key.
        cell: [u8; 32],
    },
    /// (Initiator) The node does not serve the cell we named.
    CellRefused,
    /// (Initiator) The node answered with a status byte this version does not define.
    BadStatus(u8),
}

#[cfg(feature = "net")]
impl fmt::Display for PreambleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreambleError::Io(e) => write!(f, "connection failed during the preamble: {e}"),
            PreambleError::NotExocore(magic) => write!(
                f,
                "the peer is not speaking the Exocore protocol (it sent {:02x}{:02x}{:02x}, expected `EXO`)",
                magic[0], magic[1], magic[2]
            ),
            PreambleError::VersionUnsupported { requested } => write!(
                f,
                "the peer asked for protocol version {requested}; this node speaks version {}",
                crate::PROTOCOL_VERSION
            ),
            PreambleError::VersionRefused { ours, supported } => write!(
                f,
                "the node speaks protocol version {supported}, not our version {ours}: upgrade one of them"
            ),
            PreambleError::UnknownCell { cell } => match crate::identity::PublicKey::from_bytes(cell) {
                Ok(key) => write!(f, "the peer asked for cell {key}, which this node does not serve"),
                Err(_) => write!(f, "the peer asked for a cell whose key is not a valid public key"),
            },
            PreambleError::CellRefused => write!(f, "the node does not serve this cell"),
            PreambleError::BadStatus(status) => {
                write!(f, "the node answered the preamble with unknown status {status}")
            }
        }
    }
}

#[cfg(feature = "net")]
impl std::error::Error for PreambleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PreambleError::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "net")]
/// Establishing an encrypted session failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The preamble was refused or malformed.
    Preamble(PreambleError),
    /// A handshake message could not be read or written.
    Frame(FrameError),
    /// The Noise handshake failed: a message was malformed or did not authenticate.
    Noise(snow::Error),
    /// The preamble and handshake did not finish within the handshake timeout.
    TimedOut,
    /// The peer authenticated with a static key that is not in the allowed list.
    NotAMember {
        /// The peer's X25519 (Noise) static public key, for the log.
        remote_static: [u8; 32],
    },
}

#[cfg(feature = "net")]
impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Preamble(e) => e.fmt(f),
            HandshakeError::Frame(e) => write!(f, "handshake: {e}"),
            HandshakeError::Noise(e) => write!(f, "the Noise handshake failed: {e}"),
            HandshakeError::TimedOut => write!(
                f,
                "the handshake did not finish within {} seconds",
                crate::HANDSHAKE_TIMEOUT.as_secs()
            ),
            HandshakeError::NotAMember { remote_static } => {
                write!(f, "the peer's key (Noise static key ")?;
                for byte in remote_static {
                    write!(f, "{byte:02x}")?;
                }
                write!(f, ") is not a member of the cell")
            }
        }
    }
}

#[cfg(feature = "net")]
impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::Preamble(e) => Some(e),
            HandshakeError::Frame(e) => Some(e),
            HandshakeError::Noise(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "net")]
impl From<PreambleError> for HandshakeError {
    fn from(e: PreambleError) -> Self {
        HandshakeError::Preamble(e)
    }
}

#[cfg(feature = "net")]
impl From<FrameError> for HandshakeError {
    fn from(e: FrameError) -> Self {
        HandshakeError::Frame(e)
    }
}

#[cfg(feature = "net")]
impl From<snow::Error> for HandshakeError {
    fn from(e: snow::Error) -> Self {
        HandshakeError::Noise(e)
    }
}

#[cfg(feature = "net")]
/// Sending or receiving an application message on an established session failed.
#[derive(Debug)]
pub enum SessionError {
    /// A transport frame could not be read or written.
    Frame(FrameError),
    /// A transport message did not decrypt: corrupted, replayed, reordered or forged.
    Decrypt,
    /// Encryption failed (a bug or an exhausted nonce).
    Encrypt(snow::Error),
    /// A chunk starts with a header byte other than 0 (more) or 1 (final).
    BadChunkHeader(u8),
    /// A non-final chunk carried no bytes.
    EmptyChunk,
    /// An application message is over the size limit.
    MessageTooLarge {
        /// Its size so far, in bytes.
        size_bytes: usize,
        /// The limit, in bytes.
        max: usize,
    },
}

#[cfg(feature = "net")]
impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Frame(e) => e.fmt(f),
            SessionError::Decrypt => write!(
                f,
                "a message failed to decrypt (corrupted, replayed, reordered or forged)"
            ),
            SessionError::Encrypt(e) => write!(f, "could not encrypt a message: {e}"),
            SessionError::BadChunkHeader(byte) => {
                write!(f, "a message chunk has unknown header byte {byte:#04x}")
            }
            SessionError::EmptyChunk => write!(f, "a non-final message chunk is empty"),
            SessionError::MessageTooLarge { size_bytes, max } => write!(
                f,
                "message of {size_bytes} bytes or more is over the limit of {max} bytes"
            ),
        }
    }
}

#[cfg(feature = "net")]
impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::Frame(e) => Some(e),
            SessionError::Encrypt(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "net")]
impl From<FrameError> for SessionError {
    fn from(e: FrameError) -> Self {
        SessionError::Frame(e)
    }
}

/// Encoding or decoding a message with the wire's bincode configuration failed.
#[derive(Debug)]
pub enum WireError {
    /// The bytes do not decode as the expected message.
    Decode(bincode::error::DecodeError),
    /// The value could not be encoded.
    Encode(bincode::error::EncodeError),
    /// The message decoded but bytes were left over.
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// The encoded message is over the size limit.
    TooLarge {
        /// Its size in bytes.
        size_bytes: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// An envelope names a service number this version does not define.
    UnknownService {
        /// The service number.
        service: u32,
        /// The envelope's kind number.
        kind: u32,
        /// The envelope's request id, so that a request can be answered with an error.
        request_id: u64,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Decode(e) => write!(f, "malformed message: {e}"),
            WireError::Encode(e) => write!(f, "could not encode a message: {e}"),
            WireError::TrailingBytes { count } => {
                write!(
                    f,
                    "malformed message: {count} unexpected bytes after its end"
                )
            }
            WireError::TooLarge { size_bytes, max } => {
                write!(
                    f,
                    "message of {size_bytes} bytes is over the limit of {max} bytes"
                )
            }
            WireError::UnknownService { service, .. } => {
                write!(f, "unknown service number {service}")
            }
        }
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WireError::Decode(e) => Some(e),
            WireError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "net")]
/// Any error of this crate; what [`crate::client::Client`] returns.
#[derive(Debug)]
pub enum Error {
    /// A key's text form was refused.
    Key(KeyTextError),
    /// Could not connect to the node.
    Connect(std::io::Error),
    /// The preamble or handshake failed.
    Handshake(HandshakeError),
    /// The encrypted session failed.
    Session(SessionError),
    /// A message was malformed.
    Wire(WireError),
    /// The node answered a request with an error.
    Remote(ErrorBody),
    /// The node closed the connection in an orderly way, giving a reason.
    ClosedByPeer(String),
    /// The node sent a message that makes no sense at this point.
    UnexpectedMessage(String),
    /// The node did not answer in time.
    TimedOut,
}

#[cfg(feature = "net")]
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Key(e) => write!(f, "bad key: {e}"),
            Error::Connect(e) => write!(f, "could not connect: {e}"),
            Error::Handshake(e) => e.fmt(f),
            Error::Session(e) => e.fmt(f),
            Error::Wire(e) => e.fmt(f),
            Error::Remote(body) => write!(f, "the node answered: {body}"),
            Error::ClosedByPeer(reason) => write!(f, "the node closed the connection: {reason}"),
            Error::UnexpectedMessage(what) => write!(f, "unexpected message from the node: {what}"),
            Error::TimedOut => write!(f, "the node did not answer in time"),
        }
    }
}

#[cfg(feature = "net")]
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Key(e) => Some(e),
            Error::Connect(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::Session(e) => Some(e),
            Error::Wire(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "net")]
impl From<KeyTextError> for Error {
    fn from(e: KeyTextError) -> Self {
        Error::Key(e)
    }
}

#[cfg(feature = "net")]
impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

#[cfg(feature = "net")]
impl From<SessionError> for Error {
    fn from(e: SessionError) -> Self {
        Error::Session(e)
    }
}

#[cfg(feature = "net")]
impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::Wire(e)
    }
}
