//! Errors of the network layer, as a service or the CLI sees them.

use std::fmt;

use exocore_protocol::message::ErrorBody;

/// Why a request to a peer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// No live connection to that node; holds the last dial error, if any.
    NotConnected(Option<String>),
    /// The connection's send queue is full: the peer is not keeping up. Try again later.
    QueueFull,
    /// The connection ended before the answer came.
    Disconnected,
    /// No answer within the time allowed.
    Timeout,
    /// The peer answered with an error.
    Remote(ErrorBody),
    /// The request could not be encoded (a bug, or a message over the size limit).
    Encode(String),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NotConnected(None) => write!(f, "not connected"),
            NetError::NotConnected(Some(last)) => write!(f, "not connected ({last})"),
            NetError::QueueFull => write!(f, "send queue full: the peer is not keeping up"),
            NetError::Disconnected => write!(f, "the connection ended before the answer came"),
            NetError::Timeout => write!(f, "no answer in time"),
            NetError::Remote(body) => write!(f, "the peer answered: {body}"),
            NetError::Encode(message) => write!(f, "cannot encode the request: {message}"),
        }
    }
}

impl std::error::Error for NetError {}
