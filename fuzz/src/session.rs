//! The whole session under attack, driven deterministically: the side under test runs the
//! crate's real `respond_with` / `initiate_with` over a [`MemStream`]; the other side is
//! played by snow directly, with the fixed keys and ephemeral keys of
//! `fixtures/protocol/`, so its handshake messages are the same on every run and the fuzzer
//! can get past the handshake.
//!
//! Input layout: byte 0 picks the mode (0 mod 4: the rest is the raw byte stream from the
//! peer, fuzzing the preamble and handshake parsers; otherwise the peer completes a valid
//! handshake and the rest is a list of records it sends), byte 1 the read size of the stream
//! (see [`read_chunk_of`]). A record is `op`, a u16 little-endian length, then that many
//! bytes:
//! - op 0 mod 4: the bytes are a plaintext (chunk header and data, any header byte) that the
//!   peer encrypts as its next transport message;
//! - op 1 mod 4: the bytes are a whole application message in one final chunk;
//! - op 2 mod 4: the bytes are sent as a frame body, unencrypted (forged);
//! - op 3 mod 4: the bytes are sent as they are (bad lengths, truncation).
//!
//! Both sides rekey every [`REKEY_INTERVAL_MESSAGES`] transport messages, so short inputs
//! cross several rekeys.

use std::sync::OnceLock;
use std::time::Duration;

use futures_lite::future::block_on;
use snow::{HandshakeState, TransportState};

use exocore_protocol::frame::{encode_frame, FRAME_LEN_MAX};
use exocore_protocol::identity::{Keypair, PublicKey};
use exocore_protocol::preamble::{Answer, Preamble};
use exocore_protocol::session::{
    self, HandshakeOptions, CHUNK_DATA_BYTES_MAX, CHUNK_FINAL, TAG_BYTES,
};
use exocore_protocol::NOISE_PARAMS;

use crate::{assert_heap_within, measure, read_chunk_of, MemStream, SLACK_BYTES};

/// Transport messages per direction between rekeys, on both sides.
pub const REKEY_INTERVAL_MESSAGES: u64 = 3;

/// Heap a handshake may use whatever the input: the Noise state and two 1 KiB message
/// buffers.
pub const HANDSHAKE_HEAP_BYTES_MAX: usize = 16 * 1024;

const INITIATOR_EPHEMERAL: [u8; 32] = [4; 32];
const RESPONDER_EPHEMERAL: [u8; 32] = [5; 32];

struct Keys {
    initiator: Keypair,
    responder: Keypair,
    cell: PublicKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        initiator: Keypair::from_seed(&[1; 32]),
        responder: Keypair::from_seed(&[2; 32]),
        cell: Keypair::from_seed(&[3; 32]).public(),
    })
}

fn options(ephemeral: [u8; 32]) -> HandshakeOptions {
    HandshakeOptions {
        // Never reached: the in-memory stream is always ready.
        timeout: Duration::from_secs(3600),
        ephemeral_for_testing_only: Some(ephemeral),
        rekey_interval_messages: REKEY_INTERVAL_MESSAGES,
    }
}

fn noise(initiator: bool) -> HandshakeState {
    let keys = keys();
    let (keypair, ephemeral) = if initiator {
        (&keys.initiator, INITIATOR_EPHEMERAL)
    } else {
        (&keys.responder, RESPONDER_EPHEMERAL)
    };
    let secret = keypair.noise_secret();
    let prologue = Preamble::new(&keys.cell).to_bytes();
    let builder = snow::Builder::new(NOISE_PARAMS.parse().expect("noise params"))
        .local_private_key(&secret)
        .expect("key")
        .prologue(&prologue)
        .expect("prologue")
        .fixed_ephemeral_key_for_testing_only(&ephemeral);
    if initiator {
        builder.build_initiator().expect("initiator")
    } else {
        builder.build_responder().expect("responder")
    }
}

/// The three handshake messages with the fixed keys (the same as `fixtures/protocol/`).
struct Transcript {
    messages: [Vec<u8>; 3],
}

fn transcript() -> &'static Transcript {
    static TRANSCRIPT: OnceLock<Transcript> = OnceLock::new();
    TRANSCRIPT.get_or_init(|| {
        let (mut i, mut r) = (noise(true), noise(false));
        let (mut buf, mut payload) = (vec![0u8; 1024], vec![0u8; 1024]);
        let mut step = |from: &mut HandshakeState, to: &mut HandshakeState| {
            let n = from.write_message(&[], &mut buf).expect("write");
            to.read_message(&buf[..n], &mut payload).expect("read");
            buf[..n].to_vec()
        };
        let m1 = step(&mut i, &mut r);
        let m2 = step(&mut r, &mut i);
        let m3 = step(&mut i, &mut r);
        Transcript {
            messages: [m1, m2, m3],
        }
    })
}

fn framed(body: &[u8], out: &mut Vec<u8>) {
    encode_frame(body, out).expect("a handshake message fits a frame");
}

/// The peer's transport state after the fixed handshake, replayed.
fn peer_transport(peer_is_initiator: bool) -> TransportState {
    let [m1, m2, m3] = &transcript().messages;
    let mut hs = noise(peer_is_initiator);
    let (mut buf, mut payload) = (vec![0u8; 1024], vec![0u8; 1024]);
    if peer_is_initiator {
        hs.write_message(&[], &mut buf).expect("m1");
        hs.read_message(m2, &mut payload).expect("m2");
        hs.write_message(&[], &mut buf).expect("m3");
    } else {
        hs.read_message(m1, &mut payload).expect("m1");
        hs.write_message(&[], &mut buf).expect("m2");
        hs.read_message(m3, &mut payload).expect("m3");
    }
    hs.into_transport_mode().expect("transport")
}

/// The peer, sending as the protocol says: encrypt, count, rekey.
struct Peer {
    transport: TransportState,
    sent: u64,
    buf: Vec<u8>,
}

impl Peer {
    fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let n = self
            .transport
            .write_message(plaintext, &mut self.buf)
            .expect("a plaintext under the Noise limit encrypts");
        self.sent += 1;
        if self.sent.is_multiple_of(REKEY_INTERVAL_MESSAGES) {
            self.transport.rekey_outgoing();
        }
        encode_frame(&self.buf[..n], out).expect("fits a frame");
    }
}

fn records(peer: &mut Peer, mut rest: &[u8], out: &mut Vec<u8>) {
    let plaintext_max = FRAME_LEN_MAX - TAG_BYTES;
    while let [op, lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        match op % 4 {
            0 => peer.seal(&bytes[..len.min(plaintext_max)], out),
            1 => {
                let mut plaintext = Vec::with_capacity(1 + len);
                plaintext.push(CHUNK_FINAL);
                plaintext.extend_from_slice(&bytes[..len.min(CHUNK_DATA_BYTES_MAX)]);
                peer.seal(&plaintext, out);
            }
            2 => framed(&bytes[..len.min(FRAME_LEN_MAX)], out),
            _ => out.extend_from_slice(bytes),
        }
    }
}

/// The stream the side under test reads, and whether the handshake must succeed.
fn input(data: &[u8], tested_is_responder: bool) -> Option<(Vec<u8>, usize, bool)> {
    let [mode, chunk, rest @ ..] = data else {
        return None;
    };
    let read_chunk = read_chunk_of(*chunk);
    if mode % 4 == 0 {
        return Some((rest.to_vec(), read_chunk, false));
    }
    let [m1, m2, m3] = &transcript().messages;
    let mut stream = Vec::new();
    if tested_is_responder {
        stream.extend_from_slice(&Preamble::new(&keys().cell).to_bytes());
        framed(m1, &mut stream);
        framed(m3, &mut stream);
    } else {
        stream.extend_from_slice(&Answer::Accepted.to_bytes());
        framed(m2, &mut stream);
    }
    let mut peer = Peer {
        transport: peer_transport(tested_is_responder),
        sent: 0,
        buf: vec![0u8; FRAME_LEN_MAX],
    };
    records(&mut peer, rest, &mut stream);
    Some((stream, read_chunk, true))
}

/// Receives until the session fails; checks the heap and that no message is larger than
/// the bytes that carried it.
fn drain<S>(mut session: session::Session<S>, stream_len: usize)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let mut received_bytes = 0usize;
    // Every message takes at least one 19-byte frame: the loop is bounded by the input.
    for _ in 0..=stream_len / 19 {
        let (result, peak) = measure(|| block_on(session.receive()));
        // One frame buffer, one plaintext buffer, the message being reassembled (which
        // may have doubled its capacity once).
        let bound = 2 * FRAME_LEN_MAX + 2 * stream_len + SLACK_BYTES;
        assert_heap_within("Session::receive", peak, bound, stream_len);
        match result {
            Ok(message) => {
                received_bytes += message.len();
                assert!(
                    received_bytes <= stream_len,
                    "received {received_bytes} bytes from a {stream_len}-byte stream"
                );
                crate::envelope(&message);
            }
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    }
    panic!("a session yielded more messages than its input has frames");
}

/// The responder (a node accepting a connection) against a fuzzed initiator.
pub fn responder(data: &[u8]) {
    let Some((stream, read_chunk, must_connect)) = input(data, true) else {
        return;
    };
    let stream_len = stream.len();
    let keys = keys();
    let mut stream = MemStream::new(stream, read_chunk);
    let cell = keys.cell;
    let members = vec![keys.initiator.public()];
    let members_of = move |asked: &PublicKey| (*asked == cell).then_some(members);
    let options = options(RESPONDER_EPHEMERAL);
    let (result, peak) = measure(|| {
        block_on(session::respond_with(
            &mut stream,
            &keys.responder,
            members_of,
            &options,
        ))
    });
    assert_heap_within("respond_with", peak, HANDSHAKE_HEAP_BYTES_MAX, stream_len);
    match result {
        Ok(session) => drain(session, stream_len),
        Err(e) => {
            assert!(!must_connect, "the fixed handshake failed: {e}");
            let _ = e.to_string();
        }
    }
}

/// The initiator (a client or dialing node) against a fuzzed responder.
pub fn initiator(data: &[u8]) {
    let Some((stream, read_chunk, must_connect)) = input(data, false) else {
        return;
    };
    let stream_len = stream.len();
    let keys = keys();
    let mut stream = MemStream::new(stream, read_chunk);
    let allowed = [keys.responder.public()];
    let options = options(INITIATOR_EPHEMERAL);
    let (result, peak) = measure(|| {
        block_on(session::initiate_with(
            &mut stream,
            &keys.initiator,
            &keys.cell,
            &allowed,
            &options,
        ))
    });
    assert_heap_within("initiate_with", peak, HANDSHAKE_HEAP_BYTES_MAX, stream_len);
    match result {
        Ok(session) => drain(session, stream_len),
        Err(e) => {
            assert!(!must_connect, "the fixed handshake failed: {e}");
            let _ = e.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record list: a ping envelope in one chunk, the same in two chunks, then a forgery.
    fn seed() -> Vec<u8> {
        use exocore_protocol::envelope::{Envelope, Service};
        use exocore_protocol::message::Ping;
        use exocore_protocol::wire;
        let envelope =
            Envelope::request(Service::Ping, 1, wire::encode(&Ping { nonce: 9 }).unwrap())
                .encode()
                .unwrap();
        let mut data = vec![1, 0];
        let record = |op: u8, bytes: &[u8], data: &mut Vec<u8>| {
            data.push(op);
            data.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            data.extend_from_slice(bytes);
        };
        record(1, &envelope, &mut data);
        let mut first = vec![0u8];
        first.extend_from_slice(&envelope[..5]);
        let mut last = vec![1u8];
        last.extend_from_slice(&envelope[5..]);
        record(0, &first, &mut data);
        record(0, &last, &mut data);
        record(1, &envelope, &mut data);
        record(2, &[7u8; 40], &mut data);
        data
    }

    #[test]
    fn the_fixed_handshake_gets_through_on_both_sides() {
        let data = seed();
        responder(&data);
        initiator(&data);
        // One byte per read, too.
        let mut slow = data.clone();
        slow[1] = 1;
        responder(&slow);
    }

    #[test]
    fn messages_arrive_after_the_fixed_handshake() {
        let data = seed();
        let (stream, read_chunk, _) = input(&data, true).unwrap();
        let keys = keys();
        let cell = keys.cell;
        let members = vec![keys.initiator.public()];
        let mut session = block_on(session::respond_with(
            MemStream::new(stream, read_chunk),
            &keys.responder,
            move |asked: &PublicKey| (*asked == cell).then_some(members),
            &options(RESPONDER_EPHEMERAL),
        ))
        .unwrap();
        // Three messages, across a rekey (interval 3), then the forgery fails to decrypt.
        for _ in 0..3 {
            let message = block_on(session.receive_envelope()).unwrap();
            assert_eq!(message.request_id, 1);
        }
        assert!(block_on(session.receive()).is_err());
    }
}
