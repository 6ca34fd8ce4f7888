//! Test vectors: with fixed keys and fixed ephemeral keys, the preamble, handshake and first
//! transport frames are reproducible byte for byte. This test regenerates them over a real
//! loopback connection and compares them with `fixtures/protocol/`; run it with
//! `UPDATE_VECTORS=1` to rewrite the files after a deliberate change of the wire format.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_net::{TcpListener, TcpStream};
use exocore_protocol::envelope::{Envelope, Kind, Service};
use exocore_protocol::identity::Keypair;
use exocore_protocol::message::{Ping, Pong};
use exocore_protocol::session::{self, HandshakeOptions};
use exocore_protocol::wire;
use futures_lite::{AsyncRead, AsyncWrite};

const INITIATOR_SEED: [u8; 32] = [1; 32];
const RESPONDER_SEED: [u8; 32] = [2; 32];
const CELL_SEED: [u8; 32] = [3; 32];
const INITIATOR_EPHEMERAL: [u8; 32] = [4; 32];
const RESPONDER_EPHEMERAL: [u8; 32] = [5; 32];
const PING_NONCE: u64 = 0x0123_4567_89ab_cdef;
const REQUEST_ID: u64 = 1;

/// A stream that records every byte written through it.
struct Recorder {
    stream: TcpStream,
    written: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.written.lock().unwrap().extend_from_slice(&buf[..*n]);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

/// RFC 7748 clamping. `Keypair::noise_secret` is the unclamped first half of SHA-512(seed);
/// X25519 clamps it anyway, and the vectors show the clamped form every library agrees on.
fn clamp(mut secret: [u8; 32]) -> [u8; 32] {
    secret[0] &= 248;
    secret[31] &= 127;
    secret[31] |= 64;
    secret
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits `bytes` after a fixed-size head into length-prefixed frames (prefix included).
fn frames(bytes: &[u8], head: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut rest = &bytes[head..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        out.push(rest[..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    (bytes[..head].to_vec(), out)
}

struct Transcript {
    initiator: Vec<u8>,
    responder: Vec<u8>,
    handshake_hash: [u8; 32],
}

fn run() -> Transcript {
    smol::block_on(async {
        let initiator = Keypair::from_seed(&INITIATOR_SEED);
        let responder = Keypair::from_seed(&RESPONDER_SEED);
        let cell = Keypair::from_seed(&CELL_SEED).public();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let responder_written = Arc::new(Mutex::new(Vec::new()));
        let written = responder_written.clone();
        let member = initiator.public();
        let server = smol::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let options = HandshakeOptions {
                ephemeral_for_testing_only: Some(RESPONDER_EPHEMERAL),
                ..HandshakeOptions::default()
            };
            let stream = Recorder { stream, written };
            let members_of = |asked: &_| (*asked == cell).then(|| vec![member]);
            let mut session = session::respond_with(stream, &responder, members_of, &options)
                .await
                .unwrap();
            let ping = session.receive_envelope().await.unwrap();
            let nonce = wire::decode::<Ping>(&ping.payload).unwrap().nonce;
            let pong = ping.response(wire::encode(&Pong { nonce }).unwrap());
            session.send_envelope(&pong).await.unwrap();
        });
        let initiator_written = Arc::new(Mutex::new(Vec::new()));
        let stream = Recorder {
            stream: TcpStream::connect(addr).await.unwrap(),
            written: initiator_written.clone(),
        };
        let options = HandshakeOptions {
            ephemeral_for_testing_only: Some(INITIATOR_EPHEMERAL),
            ..HandshakeOptions::default()
        };
        let server_key = Keypair::from_seed(&RESPONDER_SEED).public();
        let mut session =
            session::initiate_with(stream, &initiator, &cell, &[server_key], &options)
                .await
                .unwrap();
        let ping = Envelope::request(
            Service::Ping,
            REQUEST_ID,
            wire::encode(&Ping { nonce: PING_NONCE }).unwrap(),
        );
        session.send_envelope(&ping).await.unwrap();
        let pong = session.receive_envelope().await.unwrap();
        assert_eq!(pong.kind, Kind::Response);
        assert_eq!(
            wire::decode::<Pong>(&pong.payload).unwrap().nonce,
            PING_NONCE
        );
        server.await;
        let initiator = initiator_written.lock().unwrap().clone();
        let responder = responder_written.lock().unwrap().clone();
        Transcript {
            initiator,
            responder,
            handshake_hash: session.peer().handshake_hash,
        }
    })
}

fn vector_files(transcript: &Transcript) -> Vec<(&'static str, String)> {
    let (preamble, initiator_frames) = frames(&transcript.initiator, 36);
    let (answer, responder_frames) = frames(&transcript.responder, 4);
    assert_eq!(
        initiator_frames.len(),
        3,
        "initiator: handshake 1 and 3, ping"
    );
    assert_eq!(responder_frames.len(), 2, "responder: handshake 2, pong");
    let ping = Envelope::request(
        Service::Ping,
        REQUEST_ID,
        wire::encode(&Ping { nonce: PING_NONCE }).unwrap(),
    );
    let pong = ping.response(wire::encode(&Pong { nonce: PING_NONCE }).unwrap());
    let key_lines = |name: &str, seed: &[u8; 32]| {
        let keypair = Keypair::from_seed(seed);
        format!(
            "{name}_seed = {}\n{name}_sk = {}\n{name}_pk = {}\n{name}_pk_hex = {}\n{name}_x25519_secret_clamped = {}\n{name}_x25519_public = {}\n",
            hex(seed),
            keypair.secret_text(),
            keypair.public(),
            hex(&keypair.public().to_bytes()),
            hex(&clamp(keypair.noise_secret())),
            hex(&keypair.public().noise_public()),
        )
    };
    let inputs = format!(
        "# Inputs of the test vectors (see README.md). Generated by protocol/tests/vectors.rs.\n\
         {}{}{}\
         initiator_ephemeral_secret = {}\n\
         responder_ephemeral_secret = {}\n\
         ping_nonce = {PING_NONCE:016x}\n\
         request_id = {REQUEST_ID}\n",
        key_lines("initiator", &INITIATOR_SEED),
        key_lines("responder", &RESPONDER_SEED),
        key_lines("cell", &CELL_SEED),
        hex(&INITIATOR_EPHEMERAL),
        hex(&RESPONDER_EPHEMERAL),
    );
    vec![
        ("inputs.txt", inputs),
        ("preamble.hex", hex(&preamble)),
        ("answer.hex", hex(&answer)),
        ("handshake1.hex", hex(&initiator_frames[0])),
        ("handshake2.hex", hex(&responder_frames[0])),
        ("handshake3.hex", hex(&initiator_frames[1])),
        ("handshake_hash.hex", hex(&transcript.handshake_hash)),
        ("ping_envelope.hex", hex(&ping.encode().unwrap())),
        ("pong_envelope.hex", hex(&pong.encode().unwrap())),
        ("transport1.hex", hex(&initiator_frames[2])),
        ("transport2.hex", hex(&responder_frames[1])),
    ]
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/protocol")
}

#[test]
fn transcript_matches_the_vectors_byte_for_byte() {
    let transcript = run();
    // Determinism first: a second run gives the same bytes.
    let again = run();
    assert_eq!(transcript.initiator, again.initiator);
    assert_eq!(transcript.responder, again.responder);

    let dir = fixtures_dir();
    let update = std::env::var_os("UPDATE_VECTORS").is_some_and(|v| v == "1");
    for (name, content) in vector_files(&transcript) {
        let content = if content.ends_with('\n') {
            content
        } else {
            content + "\n"
        };
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &content).unwrap();
            continue;
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_VECTORS=1 to create it)",
                path.display()
            )
        });
        assert_eq!(
            stored,
            content,
            "{} differs from the bytes this build produces: the wire format changed. \
             If that is deliberate, change spec/protocol.md and rerun with UPDATE_VECTORS=1.",
            path.display()
        );
    }
}
