//! Helpers shared by the loopback tests.
#![allow(dead_code)]

use async_net::{TcpListener, TcpStream};
use exocore_protocol::error::HandshakeError;
use exocore_protocol::identity::{Keypair, PublicKey};
use exocore_protocol::session::{self, HandshakeOptions, Session};

pub struct Keys {
    pub client: Keypair,
    pub server: Keypair,
    pub cell: PublicKey,
}

pub fn keys() -> Keys {
    Keys {
        client: Keypair::from_seed(&[1; 32]),
        server: Keypair::from_seed(&[2; 32]),
        cell: Keypair::from_seed(&[3; 32]).public(),
    }
}

/// A listener and its address.
pub async fn listen() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Accepts one connection as responder for `cell` with `members`.
pub async fn accept_one(
    listener: TcpListener,
    server: Keypair,
    cell: PublicKey,
    members: Vec<PublicKey>,
    options: HandshakeOptions,
) -> Result<Session<TcpStream>, HandshakeError> {
    let (stream, _) = listener.accept().await.unwrap();
    let members_of = move |asked: &PublicKey| (*asked == cell).then_some(members);
    session::respond_with(stream, &server, members_of, &options).await
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn noise_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
