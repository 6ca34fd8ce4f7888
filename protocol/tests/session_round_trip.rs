//! Guarantee: two peers that are members of each other's lists establish a session over real
//! TCP, and every message sent arrives whole and in order, whatever its size up to the limit.

mod common;

use async_net::TcpStream;
use common::{accept_one, keys, listen};
use exocore_protocol::client::Client;
use exocore_protocol::envelope::{Envelope, Kind, Service};
use exocore_protocol::message::{ErrorCode, Ping, Pong};
use exocore_protocol::session::{self, HandshakeOptions, Session};
use exocore_protocol::{wire, Error, MESSAGE_SIZE_BYTES_MAX};

/// Serves pings until the peer closes; other requests get UNKNOWN_SERVICE.
async fn serve_pings(mut session: Session<TcpStream>) -> Result<String, Error> {
    loop {
        let envelope = session.receive_envelope().await?;
        let reply = match (envelope.kind, envelope.service) {
            (Kind::Request, Service::Ping) => {
                let ping: Ping = wire::decode(&envelope.payload)?;
                envelope.response(wire::encode(&Pong { nonce: ping.nonce })?)
            }
            (Kind::Request, _) => envelope.error(ErrorCode::UNKNOWN_SERVICE, "pings only")?,
            (Kind::Close, _) => {
                let body: exocore_protocol::message::CloseBody = wire::decode(&envelope.payload)?;
                return Ok(body.reason);
            }
            _ => continue,
        };
        session.send_envelope(&reply).await?;
    }
}

#[test]
fn handshake_authenticates_both_sides_and_pings_flow() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            HandshakeOptions::default(),
        ));
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut client = session::initiate(stream, &k.client, &k.cell, &[k.server.public()])
            .await
            .unwrap();
        let mut server = server.await.unwrap();
        assert_eq!(client.peer().remote, k.server.public());
        assert_eq!(server.peer().remote, k.client.public());
        assert_eq!(server.peer().cell, k.cell);
        assert_eq!(client.peer().handshake_hash, server.peer().handshake_hash);

        for id in 1..=10u64 {
            let ping = Envelope::request(
                Service::Ping,
                id,
                wire::encode(&Ping { nonce: id * 7 }).unwrap(),
            );
            client.send_envelope(&ping).await.unwrap();
            let got = server.receive_envelope().await.unwrap();
            assert_eq!(got, ping);
            server
                .send_envelope(&got.response(vec![id as u8]))
                .await
                .unwrap();
            let answer = client.receive_envelope().await.unwrap();
            assert_eq!(
                (answer.kind, answer.request_id, answer.payload),
                (Kind::Response, id, vec![id as u8])
            );
        }
    });
}

#[test]
fn large_messages_are_chunked_and_reassembled() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let server = smol::spawn(accept_one(
            listener,
            k.server.clone(),
            k.cell,
            vec![k.client.public()],
            HandshakeOptions::default(),
        ));
        let stream = TcpStream::connect(addr).await.unwrap();
        let client = session::initiate(stream, &k.client, &k.cell, &[k.server.public()])
            .await
            .unwrap();
        let server = server.await.unwrap();
        let (mut client_send, mut client_receive) = client.split();
        let (mut server_send, mut server_receive) = server.split();

        let one_mib: Vec<u8> = common::noise_bytes(42, 1024 * 1024);
        let sizes = [
            0usize,
            1,
            65_518,
            65_519,
            1024 * 1024,
            MESSAGE_SIZE_BYTES_MAX,
        ];
        let expected: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&n| one_mib.iter().cycle().take(n).copied().collect())
            .collect();
        let to_send = expected.clone();
        // Send from one task while the other side echoes: both directions at once.
        let echo = smol::spawn(async move {
            for _ in 0..sizes.len() {
                let message = server_receive.receive().await.unwrap();
                server_send.send(&message).await.unwrap();
            }
        });
        let sender = smol::spawn(async move {
            for message in &to_send {
                client_send.send(message).await.unwrap();
            }
            client_send
        });
        for message in &expected {
            assert_eq!(&client_receive.receive().await.unwrap(), message);
        }
        echo.await;
        let mut client_send = sender.await;
        let too_big = vec![0u8; MESSAGE_SIZE_BYTES_MAX + 1];
        assert!(client_send.send(&too_big).await.is_err());
    });
}

#[test]
fn client_pings_and_closes_in_order() {
    smol::block_on(async {
        let k = keys();
        let (listener, addr) = listen().await;
        let server = smol::spawn(async move {
            let session = accept_one(
                listener,
                k.server.clone(),
                k.cell,
                vec![k.client.public()],
                HandshakeOptions::default(),
            )
            .await
            .unwrap();
            serve_pings(session).await
        });
        let k = keys();
        let mut client = Client::connect(addr, &k.client, k.cell, &[k.server.public()])
            .await
            .unwrap();
        for _ in 0..3 {
            let rtt = client.ping().await.unwrap();
            assert!(rtt.as_secs() < 5);
        }
        let refused = client.request(Service::Store, vec![]).await;
        assert!(
            matches!(refused, Err(Error::Remote(body)) if body.code == ErrorCode::UNKNOWN_SERVICE)
        );
        // Still usable after an error answer.
        client.ping().await.unwrap();
        client.close("test over").await.unwrap();
        assert_eq!(server.await.unwrap(), "test over");
    });
}
