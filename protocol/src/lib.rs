//! The Exocore wire contract.
//!
//! Everything a third-party client needs to talk to an Exocore node lives here, and nothing
//! else: identities and their text forms, the connection preamble, length-prefixed frames,
//! the Noise session, envelopes and message types, and a small async client. The written
//! contract is `spec/protocol.md` in the repository; this crate is its reference
//! implementation, and `fixtures/protocol/` holds byte-exact test vectors.
//!
//! ```
//! use exocore_protocol::identity::{Keypair, PublicKey};
//!
//! let keypair = Keypair::generate();
//! let text = keypair.public().to_string();
//! assert!(text.starts_with("pk_"));
//! assert_eq!(text.parse::<PublicKey>().unwrap(), keypair.public());
//! ```
//!
//! A ping over the whole stack (preamble, Noise XX handshake, chunked transport):
//!
//! ```no_run
//! # async fn demo() -> Result<(), exocore_protocol::Error> {
//! use exocore_protocol::client::Client;
//! use exocore_protocol::identity::{Keypair, PublicKey};
//!
//! let me = Keypair::generate();
//! let cell: PublicKey = "pk_...".parse()?;
//! let node: PublicKey = "pk_...".parse()?;
//! let mut client = Client::connect("127.0.0.1:7710", &me, cell, &[node]).await?;
//! let rtt = client.ping().await?;
//! println!("ping ok {} ms", rtt.as_secs_f64() * 1000.0);
//! client.close("done").await?;
//! # Ok(())
//! # }
//! ```
//!
//! Code map: `preamble` (clear-text version and cell check), `frame` (2-byte length prefix),
//! `session` (Noise handshake, then encrypted, chunked, rekeyed messages), `wire` (the bincode
//! configuration), `envelope` (service, kind, request id, payload), `message` (ping, pong,
//! error bodies), `admin` and `store` (the CellAdmin and Store services' messages), `app`
//! (feature `app`: the messages between WebAssembly apps and their host), `client`, `error`.
//!
//! API boundary: third parties depend on this crate alone; a change here is a change of
//! `spec/`.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod admin;
#[cfg(feature = "app")]
pub mod app;
pub mod base32;
#[cfg(feature = "net")]
pub mod client;
pub mod envelope;
pub mod error;
#[cfg(feature = "net")]
pub mod frame;
#[cfg(feature = "net")]
pub mod identity;
pub mod message;
#[cfg(feature = "net")]
pub mod preamble;
#[cfg(feature = "net")]
pub mod session;
pub mod store;
pub mod wire;

#[cfg(feature = "net")]
pub use error::Error;

use std::time::Duration;

/// The protocol version this crate speaks, sent in the preamble.
pub const PROTOCOL_VERSION: u8 = 1;

/// The Noise protocol name. ChaChaPoly because Raspberry Pi 4 and older have no AES
/// instructions; BLAKE2s because it is fast on 32-bit ARM; XX for mutual authentication
/// without knowing the responder's key in advance.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// The whole preamble plus handshake must finish within this time, or the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest application message (one encoded envelope), after reassembly of its chunks.
pub const MESSAGE_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Largest number of requests a peer may have in flight on one connection; one more is
/// answered with [`message::ErrorCode::TOO_MANY_IN_FLIGHT`].
pub const IN_FLIGHT_REQUESTS_MAX: usize = 64;

/// A peer from which nothing was received for this long is considered dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A side that has sent nothing for this long sends a Ping request.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Each direction rekeys after this many transport messages.
pub const REKEY_INTERVAL_MESSAGES: u64 = 1 << 20;
