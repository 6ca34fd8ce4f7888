//! Guarantees of the concurrent client, each against a hand-written node over loopback TCP:
//! answers reach the right callers whatever their order, in-flight requests are bounded,
//! subscriptions deliver events (the newest always, for a slow consumer) and are cancelled
//! with Unsubscribe, the node's pings are answered and keepalives sent while the client is
//! idle, and every waiter learns when the connection ends.

mod common;

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::TcpStream;
use common::{accept_one, keys, listen};
use exocore_protocol::client::{Client, ClientOptions};
use exocore_protocol::envelope::{Envelope, Kind, Service};
use exocore_protocol::error::{FrameError, SessionError};
use exocore_protocol::message::{CloseBody, ErrorCode, Ping, Pong};
use exocore_protocol::session::{HandshakeOptions, Session};
use exocore_protocol::{wire, Error, IN_FLIGHT_REQUESTS_MAX};
use futures_lite::future;

/// Runs a test body, failing it if it takes more than 30 seconds (a deadlock).
fn run<F: Future<Output = ()>>(body: F) {
    smol::block_on(future::or(body, async {
        Timer::after(Duration::from_secs(30)).await;
        panic!("the test did not finish within 30 seconds");
    }))
}

/// A client connected with `options` to a node whose session the test drives by hand.
async fn connect(options: ClientOptions) -> (Client, Session<TcpStream>) {
    let k = keys();
    let (listener, addr) = listen().await;
    let node = smol::spawn(accept_one(
        listener,
        k.server.clone(),
        k.cell,
        vec![k.client.public()],
        HandshakeOptions::default(),
    ));
    let client = Client::connect_with(addr, &k.client, k.cell, &[k.server.public()], options)
        .await
        .unwrap();
    (client, node.await.unwrap())
}

/// The next envelope from the client, skipping keepalive pings (answered).
async fn receive(node: &mut Session<TcpStream>) -> Envelope {
    loop {
        let envelope = node.receive_envelope().await.unwrap();
        if (envelope.kind, envelope.service) == (Kind::Request, Service::Ping) {
            let ping: Ping = wire::decode(&envelope.payload).unwrap();
            let pong = envelope.response(wire::encode(&Pong { nonce: ping.nonce }).unwrap());
            node.send_envelope(&pong).await.unwrap();
            continue;
        }
        return envelope;
    }
}

fn close_reason(envelope: &Envelope) -> String {
    assert_eq!(envelope.kind, Kind::Close, "{envelope:?}");
    wire::decode::<CloseBody>(&envelope.payload).unwrap().reason
}

/// Whether `error` is the I/O error a connection ended on this side reports, of `kind`.
fn is_io(error: &Error, kind: io::ErrorKind) -> bool {
    matches!(error, Error::Session(SessionError::Frame(FrameError::Io(e))) if e.kind() == kind)
}

/// Sends a Ping to the client and waits for its Pong: once it arrives, the client's reader has
/// handled everything the node sent before.
async fn barrier(node: &mut Session<TcpStream>, request_id: u64) {
    let ping = Envelope::request(
        Service::Ping,
        request_id,
        wire::encode(&Ping { nonce: request_id }).unwrap(),
    );
    node.send_envelope(&ping).await.unwrap();
    let pong = receive(node).await;
    assert_eq!((pong.kind, pong.request_id), (Kind::Response, request_id));
    assert_eq!(
        wire::decode::<Pong>(&pong.payload).unwrap().nonce,
        request_id
    );
}

#[test]
fn concurrent_requests_answered_out_of_order_reach_their_callers() {
    run(async {
        let (client, mut node) = connect(ClientOptions::default()).await;
        let callers: Vec<_> = (0..10u8)
            .map(|i| {
                let mut client = client.clone();
                smol::spawn(async move { client.request(Service::Store, vec![i]).await })
            })
            .collect();
        // All ten are in flight at once: a sequential client would never send the second.
        let mut requests = Vec::new();
        for _ in 0..10 {
            let request = receive(&mut node).await;
            assert_eq!(
                (request.kind, request.service),
                (Kind::Request, Service::Store)
            );
            requests.push(request);
        }
        let mut ids: Vec<u64> = requests.iter().map(|r| r.request_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 10, "request ids must be unique");
        // Answered in reverse order; one of them refused.
        for request in requests.iter().rev() {
            let answer = if request.payload == [3] {
                request.error(ErrorCode::NOT_AUTHORIZED, "no").unwrap()
            } else {
                request.response(vec![request.payload[0], 0xaa])
            };
            node.send_envelope(&answer).await.unwrap();
        }
        for (i, caller) in callers.into_iter().enumerate() {
            match caller.await {
                Ok(answer) => assert_eq!(answer, vec![i as u8, 0xaa]),
                Err(Error::Remote(body)) => {
                    assert_eq!((i, body.code), (3, ErrorCode::NOT_AUTHORIZED))
                }
                Err(e) => panic!("caller {i}: {e}"),
            }
        }
        client.close("done").await.unwrap();
        assert_eq!(close_reason(&receive(&mut node).await), "done");
    });
}

#[test]
fn requests_over_the_in_flight_limit_wait_for_a_slot() {
    run(async {
        let (client, mut node) = connect(ClientOptions::default()).await;
        let extra = 5;
        let callers: Vec<_> = (0..IN_FLIGHT_REQUESTS_MAX + extra)
            .map(|i| {
                let mut client = client.clone();
                let payload = (i as u32).to_le_bytes().to_vec();
                smol::spawn(async move { client.request(Service::Store, payload).await })
            })
            .collect();
        let mut first = Vec::new();
        for _ in 0..IN_FLIGHT_REQUESTS_MAX {
            first.push(receive(&mut node).await);
        }
        // No 65th request while 64 await their answers.
        let more = future::or(async { Some(node.receive_envelope().await) }, async {
            Timer::after(Duration::from_millis(300)).await;
            None
        })
        .await;
        assert!(
            more.is_none(),
            "a request over the limit was sent: {more:?}"
        );
        for request in &first {
            node.send_envelope(&request.response(request.payload.clone()))
                .await
                .unwrap();
        }
        for _ in 0..extra {
            let request = receive(&mut node).await;
            node.send_envelope(&request.response(request.payload.clone()))
                .await
                .unwrap();
        }
        for (i, caller) in callers.into_iter().enumerate() {
            assert_eq!(caller.await.unwrap(), (i as u32).to_le_bytes());
        }
    });
}

#[test]
fn a_subscription_receives_events_and_cancel_sends_unsubscribe() {
    run(async {
        let (mut client, mut node) = connect(ClientOptions::default()).await;
        let mut pinger = client.clone();
        let node_side = smol::spawn(async move {
            let subscribe = receive(&mut node).await;
            assert_eq!(
                (subscribe.kind, subscribe.service, &subscribe.payload[..]),
                (Kind::Subscribe, Service::Store, &b"query"[..])
            );
            node.send_envelope(&subscribe.response(b"accepted".to_vec()))
                .await
                .unwrap();
            for i in 0..3u8 {
                let event = Envelope {
                    kind: Kind::Event,
                    payload: vec![i],
                    ..subscribe.clone()
                };
                node.send_envelope(&event).await.unwrap();
            }
            let unsubscribe = receive(&mut node).await;
            assert_eq!(
                (
                    unsubscribe.kind,
                    unsubscribe.service,
                    unsubscribe.request_id
                ),
                (Kind::Unsubscribe, Service::Store, subscribe.request_id)
            );
            assert!(unsubscribe.payload.is_empty());
            // Events sent after the client's Unsubscribe are ignored; the connection lives on.
            let late = Envelope {
                kind: Kind::Event,
                payload: vec![9],
                ..subscribe.clone()
            };
            node.send_envelope(&late).await.unwrap();
            node
        });
        let mut subscription = client
            .subscribe(Service::Store, b"query".to_vec())
            .await
            .unwrap();
        assert_eq!(subscription.response(), b"accepted");
        for i in 0..3u8 {
            let event = subscription.next().await.unwrap().unwrap();
            assert_eq!((event.payload, event.skipped_before), (vec![i], 0));
        }
        subscription.cancel();
        let mut node = node_side.await;
        let rtt = future::zip(pinger.ping(), async {
            let ping = node.receive_envelope().await.unwrap();
            assert_eq!((ping.kind, ping.service), (Kind::Request, Service::Ping));
            let nonce = wire::decode::<Ping>(&ping.payload).unwrap().nonce;
            node.send_envelope(&ping.response(wire::encode(&Pong { nonce }).unwrap()))
                .await
                .unwrap();
        })
        .await
        .0;
        assert!(rtt.is_ok(), "{rtt:?}");
    });
}

#[test]
fn the_publisher_ends_or_refuses_subscriptions() {
    run(async {
        let (mut client, mut node) = connect(ClientOptions::default()).await;
        let node_side = smol::spawn(async move {
            // 1: accepted, one event, ended by the publisher's Unsubscribe.
            let first = receive(&mut node).await;
            node.send_envelope(&first.response(vec![])).await.unwrap();
            let event = Envelope {
                kind: Kind::Event,
                payload: vec![1],
                ..first.clone()
            };
            node.send_envelope(&event).await.unwrap();
            let end = Envelope {
                kind: Kind::Unsubscribe,
                payload: vec![],
                ..first
            };
            node.send_envelope(&end).await.unwrap();
            // 2: refused.
            let second = receive(&mut node).await;
            node.send_envelope(&second.error(ErrorCode::NOT_AUTHORIZED, "no").unwrap())
                .await
                .unwrap();
            // 3: accepted, then failed by the publisher.
            let third = receive(&mut node).await;
            node.send_envelope(&third.response(vec![])).await.unwrap();
            node.send_envelope(&third.error(ErrorCode::INTERNAL, "broke").unwrap())
                .await
                .unwrap();
            node
        });
        let mut first = client.subscribe(Service::Store, vec![1]).await.unwrap();
        assert_eq!(first.next().await.unwrap().unwrap().payload, vec![1]);
        assert!(first.next().await.is_none());
        assert!(first.next().await.is_none());

        let refused = client.subscribe(Service::Store, vec![2]).await;
        assert!(
            matches!(&refused, Err(Error::Remote(body)) if body.code == ErrorCode::NOT_AUTHORIZED),
            "{refused:?}"
        );

        let mut third = client.subscribe(Service::Store, vec![3]).await.unwrap();
        let failed = third.next().await.unwrap();
        assert!(
            matches!(&failed, Err(Error::Remote(body)) if body.code == ErrorCode::INTERNAL),
            "{failed:?}"
        );
        assert!(third.next().await.is_none());
        drop(node_side.await);
    });
}

#[test]
fn a_slow_subscriber_keeps_the_newest_event() {
    run(async {
        let options = ClientOptions {
            subscription_buffer_events: 4,
            ..ClientOptions::default()
        };
        let (mut client, mut node) = connect(options).await;
        let node_side = smol::spawn(async move {
            let subscribe = receive(&mut node).await;
            node.send_envelope(&subscribe.response(vec![]))
                .await
                .unwrap();
            for i in 0..100u32 {
                let event = Envelope {
                    kind: Kind::Event,
                    payload: i.to_le_bytes().to_vec(),
                    ..subscribe.clone()
                };
                node.send_envelope(&event).await.unwrap();
            }
            barrier(&mut node, 1).await;
            let end = Envelope {
                kind: Kind::Unsubscribe,
                payload: vec![],
                ..subscribe
            };
            node.send_envelope(&end).await.unwrap();
            node
        });
        let mut subscription = client.subscribe(Service::Store, vec![]).await.unwrap();
        // The consumer reads nothing until the node has sent all 100 events and more.
        let node = node_side.await;
        let mut events = Vec::new();
        while let Some(event) = subscription.next().await {
            events.push(event.unwrap());
        }
        let numbers: Vec<u32> = events
            .iter()
            .map(|e| u32::from_le_bytes(e.payload[..].try_into().unwrap()))
            .collect();
        assert_eq!(
            numbers,
            [96, 97, 98, 99],
            "the newest events are kept, in order"
        );
        assert_eq!(events[0].skipped_before, 96);
        assert!(events[1..].iter().all(|e| e.skipped_before == 0));
        drop(node);
    });
}

#[test]
fn the_nodes_ping_is_answered_while_the_client_is_idle() {
    run(async {
        let (client, mut node) = connect(ClientOptions::default()).await;
        // The client makes no call at all.
        barrier(&mut node, 42).await;
        barrier(&mut node, 43).await;
        // A request for a service the client does not serve is refused, not fatal.
        let store = Envelope::request(Service::Store, 44, vec![]);
        node.send_envelope(&store).await.unwrap();
        let refusal = receive(&mut node).await;
        assert_eq!((refusal.kind, refusal.request_id), (Kind::Error, 44));
        assert_eq!(
            refusal.error_body().unwrap().code,
            ErrorCode::UNKNOWN_SERVICE
        );
        barrier(&mut node, 45).await;
        drop(client);
        // Dropping the last handle closes in order.
        assert_eq!(close_reason(&receive(&mut node).await), "client dropped");
    });
}

#[test]
fn keepalive_pings_are_sent_when_nothing_else_is() {
    run(async {
        let interval = Duration::from_millis(100);
        let options = ClientOptions {
            keepalive_interval: interval,
            ..ClientOptions::default()
        };
        let (mut client, mut node) = connect(options).await;
        let start = Instant::now();
        for _ in 0..3 {
            let ping = node.receive_envelope().await.unwrap();
            assert_eq!((ping.kind, ping.service), (Kind::Request, Service::Ping));
            let nonce = wire::decode::<Ping>(&ping.payload).unwrap().nonce;
            node.send_envelope(&ping.response(wire::encode(&Pong { nonce }).unwrap()))
                .await
                .unwrap();
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= interval * 2, "pings too often: 3 in {elapsed:?}");
        assert!(!client.is_closed());
        // Still a working connection.
        let (answer, _) = future::zip(client.request(Service::Store, vec![7]), async {
            let request = receive(&mut node).await;
            node.send_envelope(&request.response(vec![8]))
                .await
                .unwrap();
        })
        .await;
        assert_eq!(answer.unwrap(), vec![8]);
    });
}

#[test]
fn the_nodes_close_fails_pending_requests_and_subscriptions() {
    run(async {
        let (mut client, mut node) = connect(ClientOptions::default()).await;
        let node_side = smol::spawn(async move {
            let subscribe = receive(&mut node).await;
            node.send_envelope(&subscribe.response(vec![]))
                .await
                .unwrap();
            let _request = receive(&mut node).await;
            // The request is never answered.
            node.close("maintenance").await.unwrap();
            node
        });
        let mut subscription = client.subscribe(Service::Store, vec![]).await.unwrap();
        let pending = client.clone().request(Service::Store, vec![1]).await;
        assert!(
            matches!(&pending, Err(Error::ClosedByPeer(reason)) if reason == "maintenance"),
            "{pending:?}"
        );
        let ended = subscription.next().await.unwrap();
        assert!(
            matches!(&ended, Err(Error::ClosedByPeer(reason)) if reason == "maintenance"),
            "{ended:?}"
        );
        assert!(subscription.next().await.is_none());
        assert!(client.is_closed());
        let later = client.ping().await;
        assert!(matches!(later, Err(Error::ClosedByPeer(_))), "{later:?}");
        // Closing an ended connection is not an error.
        client.close("late").await.unwrap();
        drop(node_side.await);
    });
}

#[test]
fn a_broken_connection_fails_pending_requests() {
    run(async {
        let (mut client, mut node) = connect(ClientOptions::default()).await;
        // Something was received, so this is not a refusal right after the handshake.
        barrier(&mut node, 1).await;
        let node_side = smol::spawn(async move {
            let _request = receive(&mut node).await;
            // Gone without a Close.
            drop(node);
        });
        let pending = client.request(Service::Store, vec![]).await;
        assert!(
            matches!(
                &pending,
                Err(Error::Session(SessionError::Frame(FrameError::Closed)))
            ),
            "{pending:?}"
        );
        node_side.await;
    });
}

#[test]
fn the_idle_timeout_ends_a_silent_connection() {
    run(async {
        let idle = Duration::from_millis(300);
        let options = ClientOptions {
            idle_timeout: idle,
            ..ClientOptions::default()
        };
        // The idle clock starts during `connect`.
        let start = Instant::now();
        let (mut client, mut node) = connect(options).await;
        let (pending, close) = future::zip(client.request(Service::Store, vec![]), async {
            let _request = receive(&mut node).await;
            // Never answered, and nothing else is sent: the client gives up on the node.
            let close = node.receive_envelope().await.unwrap();
            let end = node.receive_envelope().await;
            assert!(
                matches!(
                    end,
                    Err(Error::Session(SessionError::Frame(FrameError::Closed)))
                ),
                "{end:?}"
            );
            close
        })
        .await;
        let pending = pending.unwrap_err();
        assert!(is_io(&pending, io::ErrorKind::TimedOut), "{pending}");
        assert!(pending.to_string().contains("idle timeout"), "{pending}");
        assert_eq!(close_reason(&close), "idle timeout");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= idle && elapsed < Duration::from_secs(10),
            "{elapsed:?}"
        );
    });
}

#[test]
fn a_request_times_out_alone_and_its_late_answer_is_ignored() {
    run(async {
        let options = ClientOptions {
            request_timeout: Duration::from_millis(200),
            ..ClientOptions::default()
        };
        let (mut client, mut node) = connect(options).await;
        let slow = future::zip(client.request(Service::Store, vec![1]), async {
            receive(&mut node).await
        });
        let (timed_out, slow_request) = slow.await;
        assert!(matches!(timed_out, Err(Error::TimedOut)), "{timed_out:?}");
        let (answer, _) = future::zip(client.request(Service::Store, vec![2]), async {
            let request = receive(&mut node).await;
            assert_ne!(request.request_id, slow_request.request_id);
            // The late answer first: nobody waits for it any more.
            node.send_envelope(&slow_request.response(vec![1]))
                .await
                .unwrap();
            node.send_envelope(&request.response(vec![2]))
                .await
                .unwrap();
        })
        .await;
        assert_eq!(answer.unwrap(), vec![2]);
        client.close("done").await.unwrap();
        assert_eq!(close_reason(&receive(&mut node).await), "done");
        let end = node.receive_envelope().await;
        assert!(end.is_err(), "the write half is shut down after Close");
    });
}

#[test]
fn closing_fails_requests_of_other_handles_and_subscriptions() {
    run(async {
        let options = ClientOptions {
            close_timeout: Duration::from_millis(200),
            ..ClientOptions::default()
        };
        let (mut client, mut node) = connect(options).await;
        let mut subscription = future::zip(client.subscribe(Service::Store, vec![]), async {
            let subscribe = receive(&mut node).await;
            node.send_envelope(&subscribe.response(vec![]))
                .await
                .unwrap();
        })
        .await
        .0
        .unwrap();
        let mut other = client.clone();
        let waiting = smol::spawn(async move { other.request(Service::Store, vec![]).await });
        let _request = receive(&mut node).await;
        client.close("bye").await.unwrap();
        assert_eq!(close_reason(&receive(&mut node).await), "bye");
        // The node never answers nor closes: the client stops waiting after its close timeout.
        let abandoned = waiting.await.unwrap_err();
        assert!(
            is_io(&abandoned, io::ErrorKind::ConnectionAborted),
            "{abandoned}"
        );
        assert!(abandoned.to_string().contains("bye"), "{abandoned}");
        let ended = subscription.next().await.unwrap().unwrap_err();
        assert!(is_io(&ended, io::ErrorKind::ConnectionAborted), "{ended}");
        assert!(subscription.next().await.is_none());
    });
}

#[test]
fn a_subscribe_that_times_out_is_withdrawn() {
    run(async {
        let options = ClientOptions {
            request_timeout: Duration::from_millis(200),
            ..ClientOptions::default()
        };
        let (mut client, mut node) = connect(options).await;
        let (refused, subscribe) = future::zip(client.subscribe(Service::Store, vec![]), async {
            receive(&mut node).await
        })
        .await;
        assert!(matches!(refused, Err(Error::TimedOut)), "{refused:?}");
        let unsubscribe = receive(&mut node).await;
        assert_eq!(
            (unsubscribe.kind, unsubscribe.request_id),
            (Kind::Unsubscribe, subscribe.request_id)
        );
        // Its late acceptance and events reach nobody; the connection works on.
        node.send_envelope(&subscribe.response(vec![]))
            .await
            .unwrap();
        let event = Envelope {
            kind: Kind::Event,
            ..subscribe
        };
        node.send_envelope(&event).await.unwrap();
        barrier(&mut node, 99).await;
        assert!(!client.is_closed());
    });
}
