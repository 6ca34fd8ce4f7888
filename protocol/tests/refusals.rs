//! Guarantee: a peer that is not a member, speaks another version, names another cell, or
//! sends malformed bytes is refused with a typed error, never a panic, and never gets an
//! application byte.

mod common;

use std::time::Duration;

use async_net::TcpStream;
use common::{accept_one, keys, listen, noise_bytes};
use exocore_protocol::error::{FrameError, HandshakeError, PreambleError, SessionError};
use exocore_protocol::identity::Keypair;
use exocore_protocol::session::{self, HandshakeOptions};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

fn default() -> HandshakeOptions {
    HandshakeOptions::default()
}

#[test]
fn responder_refuses_a_key_that_is_not_a_member() {
    smol::block_on(async {
        let k = keys();
        let stranger = Keypair::from_seed(&[9; 32]);
        let (listener, addr) = listen().await;
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            default(),
        ));
        let stream = TcpStream::connect(addr).await.unwrap();
        // The initiator finishes its side of the handshake: XX sends its static key last.
        let mut client = session::initiate(stream, &stranger, &k.cell, &[k.server.public()])
            .await
            .unwrap();
        match server.await {
            Err(HandshakeError::NotAMember { remote_static }) => {
                assert_eq!(remote_static, stranger.public().noise_public());
                let text = HandshakeError::NotAMember { remote_static }.to_string();
                assert!(text.contains("not a member"), "{text}");
            }
            other => panic!("expected NotAMember, got {other:?}"),
        }
        // The responder closed without sending an application byte.
        assert!(matches!(
            client.receive().await,
            Err(SessionError::Frame(FrameError::Closed | FrameError::Io(_)))
        ));
    });
}

#[test]
fn initiator_refuses_a_responder_it_does_not_know() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            default(),
        ));
        let stream = TcpStream::connect(addr).await.unwrap();
        let other = Keypair::from_seed(&[8; 32]).public();
        let result = session::initiate(stream, &k.client, &k.cell, &[other]).await;
        assert!(matches!(
            result,
            Err(HandshakeError::NotAMember { remote_static }) if remote_static == k.server.public().noise_public()
        ));
        // The initiator stopped before its third message: the responder sees a closed stream.
        assert!(server.await.is_err());
    });
}

#[test]
fn wrong_version_gets_a_clear_refusal() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            default(),
        ));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut preamble = b"EXO\x02".to_vec();
        preamble.extend_from_slice(&k.cell.to_bytes());
        stream.write_all(&preamble).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert_eq!(
            answer, b"EXO\x01\x01",
            "status 1, then the version the node speaks"
        );
        assert!(matches!(
            server.await,
            Err(HandshakeError::Preamble(
                PreambleError::VersionUnsupported { requested: 2 }
            ))
        ));
    });
}

#[test]
fn initiator_reports_a_version_refusal() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let fake = smol::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut preamble = [0u8; 36];
            stream.read_exact(&mut preamble).await.unwrap();
            stream.write_all(b"EXO\x01\x07").await.unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let result = session::initiate(stream, &k.client, &k.cell, &[k.server.public()]).await;
        fake.await;
        match result {
            Err(
                e @ HandshakeError::Preamble(PreambleError::VersionRefused {
                    ours: 1,
                    supported: 7,
                }),
            ) => {
                assert!(e.to_string().contains("version 7"), "{e}");
            }
            other => panic!("expected VersionRefused, got {other:?}"),
        }
    });
}

#[test]
fn wrong_cell_is_refused_on_both_sides() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            default(),
        ));
        let other_cell = Keypair::from_seed(&[6; 32]).public();
        let stream = TcpStream::connect(addr).await.unwrap();
        let result = session::initiate(stream, &k.client, &other_cell, &[k.server.public()]).await;
        assert!(matches!(
            result,
            Err(HandshakeError::Preamble(PreambleError::CellRefused))
        ));
        assert!(matches!(
            server.await,
            Err(HandshakeError::Preamble(PreambleError::UnknownCell { cell })) if cell == other_cell.to_bytes()
        ));
    });
}

/// Sends `bytes` raw to a fresh responder and returns its error (the responder must fail).
fn responder_error(bytes: Vec<u8>, options: HandshakeOptions) -> HandshakeError {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            options,
        ));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let result = server.await;
        // Drain whatever the responder said before closing.
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
        match result {
            Ok(_) => panic!("a malformed handshake was accepted"),
            Err(e) => e,
        }
    })
}

fn preamble_for_cell() -> Vec<u8> {
    let mut bytes = b"EXO\x01".to_vec();
    bytes.extend_from_slice(&keys().cell.to_bytes());
    bytes
}

#[test]
fn random_bytes_instead_of_a_preamble_are_not_exocore() {
    let error = responder_error(noise_bytes(1, 100), default());
    assert!(
        matches!(
            error,
            HandshakeError::Preamble(PreambleError::NotExocore(_))
        ),
        "{error:?}"
    );
    let error = responder_error(b"GET / HTTP/1.1\r\n\r\n".to_vec(), default());
    assert!(
        error
            .to_string()
            .contains("not speaking the Exocore protocol"),
        "{error}"
    );
}

#[test]
fn random_bytes_instead_of_a_handshake_are_refused() {
    for seed in 1..20u64 {
        let mut bytes = preamble_for_cell();
        let len = 32 + (seed as usize * 13) % 200;
        bytes.extend_from_slice(&(len as u16).to_be_bytes());
        bytes.extend_from_slice(&noise_bytes(seed, len));
        // Then a random "third message".
        bytes.extend_from_slice(&64u16.to_be_bytes());
        bytes.extend_from_slice(&noise_bytes(seed + 100, 64));
        let error = responder_error(bytes, default());
        assert!(
            matches!(error, HandshakeError::Noise(_) | HandshakeError::Frame(_)),
            "seed {seed}: {error:?}"
        );
    }
}

#[test]
fn a_length_prefix_over_the_limit_is_refused_before_reading() {
    let mut bytes = preamble_for_cell();
    bytes.extend_from_slice(&[0xff, 0xff]);
    let error = responder_error(bytes, default());
    assert!(
        matches!(
            error,
            HandshakeError::Frame(FrameError::TooLong { len: 65535, .. })
        ),
        "{error:?}"
    );
}

#[test]
fn truncated_frames_and_preambles_are_named() {
    let mut bytes = preamble_for_cell();
    bytes.extend_from_slice(&[0x00, 0x20]);
    bytes.extend_from_slice(&[7; 10]);
    let error = responder_error(bytes, default());
    assert!(
        matches!(
            error,
            HandshakeError::Frame(FrameError::Truncated {
                expected: 34,
                received: 12
            })
        ),
        "{error:?}"
    );
    let error = responder_error(preamble_for_cell()[..20].to_vec(), default());
    assert!(
        matches!(error, HandshakeError::Preamble(PreambleError::Io(_))),
        "{error:?}"
    );
}

#[test]
fn a_slow_handshake_times_out() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let options = HandshakeOptions {
            timeout: Duration::from_millis(200),
            ..HandshakeOptions::default()
        };
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            options,
        ));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&preamble_for_cell()[..10]).await.unwrap();
        assert!(matches!(server.await, Err(HandshakeError::TimedOut)));
    });
}

#[test]
fn garbage_after_the_handshake_fails_to_decrypt() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            default(),
        ));
        let stream = TcpStream::connect(addr).await.unwrap();
        // Keep a clone of the raw stream to inject a forged transport frame.
        let mut raw = stream.clone();
        let _client = session::initiate(stream, &k.client, &k.cell, &[k.server.public()])
            .await
            .unwrap();
        let mut server = server.await.unwrap();
        let mut forged = 40u16.to_be_bytes().to_vec();
        forged.extend_from_slice(&noise_bytes(5, 40));
        raw.write_all(&forged).await.unwrap();
        assert!(matches!(server.receive().await, Err(SessionError::Decrypt)));
    });
}
