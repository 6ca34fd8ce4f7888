//! Joining a cell: a new node and a member meet through a rendezvous server (or exchange
//! files), agree on a key from a short PIN with SPAKE2, and exchange the node's request and
//! the cell's answer encrypted. Specified in `spec/join.md`.
//!
//! Architecture invariant: nothing here does I/O or reads a clock. The exchange is two state
//! machines ([`Joiner`], [`Member`]) fed with relayed bytes; the CLI moves the bytes and
//! the rendezvous server (`discovery`) relays them without being able to read them.

mod error;
pub mod message;
pub mod pake;
pub mod pin;
pub mod seal;
mod session;

pub use error::JoinError;
pub use message::{roles_need_secret, Answer, Message, Request};
pub use pin::Pin;
pub use session::{Joiner, JoinerEvent, Member, MemberEvent, Step};
pub use session::{KIND_CONFIRM, KIND_PAKE, KIND_SEALED};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
