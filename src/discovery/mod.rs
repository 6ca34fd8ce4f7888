//! The rendezvous server that `exo discovery daemon` runs, and its client: two parties of a
//! join meet in a short-lived numbered slot and the server relays opaque messages between
//! them. Specified in `spec/join.md` section 2.
//!
//! Architecture invariant: the server knows slot numbers and addresses, never a PIN's secret
//! digits or what it relays (the parties encrypt end to end, see `join`). Decisions (limits,
//! expiry, single use) are the pure [`registry::Registry`]'s; `server` only moves frames.

pub mod client;
pub mod frame;
pub mod registry;
pub mod server;
