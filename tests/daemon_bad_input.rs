//! Bad input against a running `exo daemon`: each gets a refusal or a closed connection and a
//! log line, and the daemon keeps serving a legitimate member, checked after every case.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_net::TcpStream;
use exocore_protocol::client::Client;
use exocore_protocol::envelope::{Envelope, Kind, Service};
use exocore_protocol::identity::{Keypair, PublicKey};
use exocore_protocol::message::{ErrorCode, Ping};
use exocore_protocol::preamble::Preamble;
use exocore_protocol::{session, wire};
use futures_lite::{AsyncRead, AsyncWrite};
use support::{setup, Setup};

impl Setup {
    /// A legitimate member can still ping: the daemon survived.
    fn assert_serving(&self) {
        smol::block_on(async {
            let mut client =
                Client::connect(self.address.as_str(), &self.member, self.cell, &[self.node])
                    .await
                    .unwrap_or_else(|e| {
                        panic!("member cannot connect: {e}\n{}", self.daemon.log())
                    });
            client.ping().await.unwrap();
            client.close("done").await.unwrap();
        });
    }

    /// Sends raw bytes, then reads until the daemon closes; returns what it sent back.
    fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = StdTcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let _ = stream.write_all(bytes);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer
    }

    fn refusals(&self) -> usize {
        self.daemon.log().matches("refused connection from").count()
    }

    fn wait_refusals(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.refusals() < count {
            assert!(
                Instant::now() < deadline,
                "expected {count} refusals:\n{}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn preamble(cell: &PublicKey) -> Vec<u8> {
    Preamble::new(cell).to_bytes().to_vec()
}

#[test]
fn refusals_in_the_clear_leave_the_daemon_serving() {
    let s = setup();
    s.assert_serving();

    // Random bytes: not Exocore, closed without an answer.
    let answer = s.raw(&[0x5a; 500]);
    assert!(answer.is_empty(), "{answer:?}");
    s.wait_refusals(1);
    s.assert_serving();

    // Another protocol version: a clear refusal naming ours.
    let mut bytes = preamble(&s.cell);
    bytes[3] = 9;
    assert_eq!(s.raw(&bytes), b"EXO\x01\x01");
    s.wait_refusals(2);

    // A cell this daemon does not serve.
    assert_eq!(s.raw(&preamble(&Keypair::generate().public())), b"EXO\x02");
    s.wait_refusals(3);
    s.assert_serving();

    // A handshake frame whose length is over the limit.
    let mut bytes = preamble(&s.cell);
    bytes.extend_from_slice(&[0xff, 0xff]);
    assert_eq!(s.raw(&bytes), b"EXO\x00");
    s.wait_refusals(4);

    // A truncated handshake frame: 32 bytes announced, 10 sent, then the write side closed.
    let mut stream = StdTcpStream::connect(&s.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut bytes = preamble(&s.cell);
    bytes.extend_from_slice(&[0x00, 0x20]);
    bytes.extend_from_slice(&[1; 10]);
    stream.write_all(&bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert_eq!(answer, b"EXO\x00");
    s.wait_refusals(5);
    s.assert_serving();

    let log = s.daemon.log();
    assert!(log.contains("version"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_key_that_is_not_a_member_is_refused_and_logged() {
    let s = setup();
    let stranger = Keypair::generate();
    // In Noise XX the responder learns the initiator's key from the last handshake message,
    // so the stranger's connect may complete; the daemon then closes without a byte.
    let result = smol::block_on(async {
        let mut client = Client::connect(s.address.as_str(), &stranger, s.cell, &[s.node]).await?;
        client.ping().await
    });
    assert!(result.is_err(), "a stranger was answered");
    s.wait_refusals(1);
    let log = s.daemon.log();
    let hex: String = stranger
        .public()
        .noise_public()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(log.contains(&hex) && log.contains("not a member"), "{log}");
    s.assert_serving();
}

#[test]
fn a_slow_handshake_is_dropped_while_others_are_served() {
    let s = setup();
    let mut slow = StdTcpStream::connect(&s.address).unwrap();
    slow.write_all(&preamble(&s.cell)).unwrap();
    let started = Instant::now();
    // Served while the slow client holds its handshake open.
    s.assert_serving();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    assert_eq!(answer, b"EXO\x00");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed after {:?}",
        started.elapsed()
    );
    s.wait_refusals(1);
    assert!(
        s.daemon.log().contains("did not finish within 10 seconds"),
        "{}",
        s.daemon.log()
    );
}

#[test]
fn many_connections_at_once() {
    let s = setup();
    let idle: Vec<StdTcpStream> = (0..100)
        .map(|_| StdTcpStream::connect(&s.address).unwrap())
        .collect();
    s.assert_serving();
    // Many members' handshakes at the same time all succeed.
    smol::block_on(async {
        let pings = (0..20).map(|_| {
            let (address, member, cell, node) =
                (s.address.clone(), s.member.clone(), s.cell, s.node);
            smol::spawn(async move {
                let mut client = Client::connect(address.as_str(), &member, cell, &[node]).await?;
                client.ping().await
            })
        });
        for task in pings.collect::<Vec<_>>() {
            task.await.unwrap();
        }
    });
    drop(idle);
    s.assert_serving();
}

/// A stream that records what is written and, while `hold` is set, keeps it from the socket.
struct Tap {
    inner: TcpStream,
    written: Arc<Mutex<Vec<u8>>>,
    hold: Arc<Mutex<bool>>,
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if *self.hold.lock().unwrap() {
            self.written.lock().unwrap().extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            self.written.lock().unwrap().extend_from_slice(&buf[..*n]);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

fn ping_envelope(id: u64) -> Envelope {
    Envelope::request(
        Service::Ping,
        id,
        wire::encode(&Ping { nonce: id }).unwrap(),
    )
}

/// A session over a [`Tap`]: returns the session, the raw socket, the record and the hold.
async fn tapped(
    s: &Setup,
) -> (
    session::Session<Tap>,
    TcpStream,
    Arc<Mutex<Vec<u8>>>,
    Arc<Mutex<bool>>,
) {
    let stream = TcpStream::connect(s.address.as_str()).await.unwrap();
    let written = Arc::new(Mutex::new(Vec::new()));
    let hold = Arc::new(Mutex::new(false));
    let tap = Tap {
        inner: stream.clone(),
        written: written.clone(),
        hold: hold.clone(),
    };
    let session = session::initiate(tap, &s.member, &s.cell, &[s.node])
        .await
        .unwrap();
    (session, stream, written, hold)
}

/// The daemon answers nothing more: at most a Close, then the end of the stream.
async fn assert_closed(session: &mut session::Session<Tap>) {
    loop {
        match session.receive_envelope().await {
            Ok(envelope) if envelope.kind == Kind::Close => continue,
            Ok(other) => panic!("the daemon answered {other:?}"),
            Err(_) => break,
        }
    }
}

#[test]
fn replayed_and_reordered_frames_close_the_connection() {
    let s = setup();
    smol::block_on(async {
        // Replay: the same encrypted ping twice.
        let (mut session, mut raw, written, _) = tapped(&s).await;
        let mark = written.lock().unwrap().len();
        session.send_envelope(&ping_envelope(1)).await.unwrap();
        assert_eq!(
            session.receive_envelope().await.unwrap().kind,
            Kind::Response
        );
        let frame = written.lock().unwrap()[mark..].to_vec();
        futures_lite::AsyncWriteExt::write_all(&mut raw, &frame)
            .await
            .unwrap();
        assert_closed(&mut session).await;

        // Reorder: two pings sealed in order, delivered in the opposite order.
        let (mut session, mut raw, written, hold) = tapped(&s).await;
        *hold.lock().unwrap() = true;
        let mark = written.lock().unwrap().len();
        session.send_envelope(&ping_envelope(1)).await.unwrap();
        let middle = written.lock().unwrap().len();
        session.send_envelope(&ping_envelope(2)).await.unwrap();
        let all = written.lock().unwrap().clone();
        let (first, second) = (all[mark..middle].to_vec(), all[middle..].to_vec());
        futures_lite::AsyncWriteExt::write_all(&mut raw, &second)
            .await
            .unwrap();
        futures_lite::AsyncWriteExt::write_all(&mut raw, &first)
            .await
            .unwrap();
        assert_closed(&mut session).await;
    });
    let log = s.daemon.log();
    assert!(log.matches("bad input").count() >= 2, "{log}");
    s.assert_serving();
}

#[test]
fn unknown_services_get_an_error_and_unknown_kinds_close() {
    let s = setup();
    smol::block_on(async {
        let (mut session, _, _, _) = tapped(&s).await;
        // Service 99 does not exist: an Error with code 2, and the connection stays.
        let mut bytes = ping_envelope(7).encode().unwrap();
        bytes[0..4].copy_from_slice(&99u32.to_le_bytes());
        session.send(&bytes).await.unwrap();
        let answer = session.receive_envelope().await.unwrap();
        assert_eq!(answer.kind, Kind::Error);
        assert_eq!(answer.request_id, 7);
        assert_eq!(
            answer.error_body().unwrap().code,
            ErrorCode::UNKNOWN_SERVICE
        );
        session.send_envelope(&ping_envelope(8)).await.unwrap();
        assert_eq!(
            session.receive_envelope().await.unwrap().kind,
            Kind::Response
        );

        // A served service given garbage: an Error, the connection stays.
        session
            .send_envelope(&Envelope::request(Service::Apps, 9, vec![1, 2, 3]))
            .await
            .unwrap();
        let answer = session.receive_envelope().await.unwrap();
        assert_eq!(answer.error_body().unwrap().code, ErrorCode::BAD_MESSAGE);

        // Only the node itself may use CellAdmin.
        session
            .send_envelope(&Envelope::request(Service::CellAdmin, 10, vec![0, 0, 0, 0]))
            .await
            .unwrap();
        let answer = session.receive_envelope().await.unwrap();
        assert_eq!(answer.error_body().unwrap().code, ErrorCode::NOT_AUTHORIZED);

        // Kind 42 does not exist: the envelope does not decode, the connection is closed.
        let mut bytes = ping_envelope(11).encode().unwrap();
        bytes[4..8].copy_from_slice(&42u32.to_le_bytes());
        session.send(&bytes).await.unwrap();
        assert_closed(&mut session).await;
    });
    s.assert_serving();
}
