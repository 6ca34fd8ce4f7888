//! The network: authenticated, encrypted connections between the nodes of a cell and from
//! its clients, over the wire protocol of `spec/protocol.md` (implemented by the
//! `exocore-protocol` crate).
//!
//! [`Network`] listens for every cell of the node, dials the peers it should, keeps one link
//! per peer, and routes requests by (cell, service). [`connection`] runs one connection;
//! [`backoff`] paces redials.
//!
//! Architecture invariant: nothing here reads files or knows what a chain or a store is;
//! services plug in through [`Services`].

pub mod backoff;
pub mod connection;
mod error;
mod network;
pub mod subscription;

pub use connection::{Answer, AnswerFuture, Connection, Incoming, Services, SUBSCRIPTIONS_MAX};
pub use error::NetError;
pub use network::{
    CellNet, Network, PeerLink, PeerNode, CONNECTIONS_MAX, HANDSHAKES_MAX, PING_TIMEOUT,
};
pub use subscription::EventSink;
