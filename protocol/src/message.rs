//! Message bodies carried in envelope payloads: ping and pong, error bodies, close reasons.
//! Each is encoded with [`crate::wire::CONFIG`].

use std::fmt;

use bincode::{Decode, Encode};

/// The Ping service's request: answered by a [`Pong`] with the same nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Ping {
    /// Any value chosen by the sender.
    pub nonce: u64,
}

/// The Ping service's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Pong {
    /// The nonce of the ping answered.
    pub nonce: u64,
}

/// An error code, a u16 on the wire. A wrapper rather than an enum so that a code added by a
/// later version still decodes (and is shown as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The request did not decode, or makes no sense.
    pub const BAD_MESSAGE: ErrorCode = ErrorCode(1);
    /// The service is unknown, or not served by this node.
    pub const UNKNOWN_SERVICE: ErrorCode = ErrorCode(2);
    /// The requester already has the maximum number of requests in flight.
    pub const TOO_MANY_IN_FLIGHT: ErrorCode = ErrorCode(3);
    /// A message or its answer would be over the size limit.
    pub const MESSAGE_TOO_LARGE: ErrorCode = ErrorCode(4);
    /// The requester may not do this.
    pub const NOT_AUTHORIZED: ErrorCode = ErrorCode(5);
    /// The node failed while handling the request.
    pub const INTERNAL: ErrorCode = ErrorCode(6);
    /// The node could not answer in time.
    pub const TIMEOUT: ErrorCode = ErrorCode(7);
    /// The node is shutting down.
    pub const SHUTTING_DOWN: ErrorCode = ErrorCode(8);
    /// An Unsubscribe or Event names a subscription that does not exist.
    pub const UNKNOWN_SUBSCRIPTION: ErrorCode = ErrorCode(9);
    /// The service does not accept this kind of message (e.g. Subscribe to Ping).
    pub const UNSUPPORTED_KIND: ErrorCode = ErrorCode(10);
    /// A version check failed: what the request was based on changed (optimistic
    /// concurrency); read it again, then retry.
    pub const CONFLICT: ErrorCode = ErrorCode(11);

    /// A short name for logs, or `None` for a code this version does not know.
    pub fn name(&self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "bad message",
            2 => "unknown service",
            3 => "too many requests in flight",
            4 => "message too large",
            5 => "not authorized",
            6 => "internal error",
            7 => "timeout",
            8 => "shutting down",
            9 => "unknown subscription",
            10 => "unsupported kind",
            11 => "conflict",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "error {}", self.0),
        }
    }
}

/// The payload of an envelope of kind Error.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ErrorBody {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Details for a human.
    pub message: String,
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// The payload of an envelope of kind Close.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CloseBody {
    /// Why the sender closes, for the other side's log.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn bodies_have_their_documented_bytes() {
        assert_eq!(
            wire::encode(&Ping {
                nonce: 0x0102030405060708
            })
            .unwrap(),
            [8, 7, 6, 5, 4, 3, 2, 1]
        );
        let body = ErrorBody {
            code: ErrorCode::UNKNOWN_SERVICE,
            message: "no".into(),
        };
        let bytes = wire::encode(&body).unwrap();
        assert_eq!(bytes, [2, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'n', b'o']);
        assert_eq!(wire::decode::<ErrorBody>(&bytes).unwrap(), body);
        let unknown = wire::decode::<ErrorBody>(&[0xe9, 0x03, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(unknown.to_string(), "error 1001");
        assert_eq!(ErrorCode::CONFLICT.to_string(), "conflict (11)");
    }
}
