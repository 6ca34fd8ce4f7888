//! What can go wrong in a join exchange, as seen by one party.

use std::fmt;

/// A join exchange that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// Key confirmation failed: the two parties used different PINs (a typo, or someone
    /// guessing). Nothing was revealed; the PIN is used up.
    WrongPin,
    /// The other party, or the server relaying it, sent something out of order, malformed,
    /// replayed or altered.
    Protocol(String),
    /// The other party declined, and why.
    Refused(String),
    /// A document that decrypted but is not acceptable (bad signature, bad name...).
    Invalid(String),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::WrongPin => write!(
                f,
                "the PIN does not match (typed wrong, or someone tried to guess it): nothing was exchanged, and the PIN is now used; start again with `exo cell join` on the joining node"
            ),
            JoinError::Protocol(what) => write!(f, "join exchange broken: {what}"),
            JoinError::Refused(reason) => write!(f, "the other node refused: {reason}"),
            JoinError::Invalid(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for JoinError {}
