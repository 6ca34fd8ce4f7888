//! Concurrent writers through a real daemon: the writer serves them in batches (one chain
//! write and one index commit for many requests), and each is still answered only once what
//! it wrote is visible, and version checks stay exact: of concurrent writers checking the
//! same version, one wins and the others get a conflict.

mod support;

use std::sync::Barrier;

use exo::chain::OperationId;
use exo::store::{Entry, Expected, Mutation, Trait};
use exocore_protocol::client::{Client, ClientOptions};
use exocore_protocol::envelope::Service;
use exocore_protocol::error::Error;
use exocore_protocol::message::ErrorCode;
use exocore_protocol::store::{StoreRequest, StoreResponse};
use exocore_protocol::wire;
use support::{setup, Setup};

const WRITERS: usize = 8;

async fn mutate(client: &mut Client, mutations: Vec<Mutation>) -> Result<OperationId, Error> {
    let entry = Entry::Mutations(mutations).to_bytes();
    let request = wire::encode(&StoreRequest::Mutate { entry }).unwrap();
    let answer = client.request(Service::Store, request).await?;
    match wire::decode::<StoreResponse>(&answer).unwrap() {
        StoreResponse::Mutated { operation, .. } => Ok(OperationId::from_bytes(&operation)),
        other => panic!("not Mutated: {other:?}"),
    }
}

async fn total(client: &mut Client, text: &str) -> u64 {
    let request = wire::encode(&StoreRequest::QueryText { text: text.into() }).unwrap();
    let answer = client.request(Service::Store, request).await.unwrap();
    match wire::decode::<StoreResponse>(&answer).unwrap() {
        StoreResponse::Results { total, .. } => total,
        other => panic!("not Results: {other:?}"),
    }
}

fn put(entity: &str, title: &str) -> Mutation {
    Mutation::PutTrait {
        entity: entity.into(),
        value: Trait::new("note", "note").with("title", title),
    }
}

/// Runs `work(writer, client)` on `WRITERS` connected clients at once.
fn concurrently<T: Send>(s: &Setup, work: impl Fn(usize, &mut Client) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(WRITERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (start, work) = (&start, &work);
                scope.spawn(move || {
                    let mut client = smol::block_on(s.client(ClientOptions::default()));
                    start.wait();
                    work(w, &mut client)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn every_concurrent_write_is_visible_when_acknowledged() {
    let s = setup();
    concurrently(&s, |w, client| {
        smol::block_on(async {
            for i in 0..15 {
                let entity = format!("w{w}-{i}");
                let op = mutate(client, vec![put(&entity, &format!("writer{w} note{i}"))])
                    .await
                    .unwrap();
                assert_eq!(total(client, &format!("op:{op}")).await, 1, "{entity}");
                assert_eq!(total(client, &format!("writer{w} note{i}")).await, 1);
            }
        })
    });
    let mut client = smol::block_on(s.client(ClientOptions::default()));
    assert_eq!(
        smol::block_on(total(&mut client, "type:note")),
        (WRITERS * 15) as u64
    );
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn of_concurrent_writes_checking_one_version_one_wins() {
    let s = setup();
    let mut client = smol::block_on(s.client(ClientOptions::default()));
    let mut version = smol::block_on(mutate(&mut client, vec![put("shared", "v0")])).unwrap();
    for round in 0..5 {
        let results = concurrently(&s, |w, client| {
            smol::block_on(mutate(
                client,
                vec![
                    Mutation::Check {
                        entity: "shared".into(),
                        expected: Expected::Version(version),
                    },
                    put("shared", &format!("round{round} writer{w}")),
                ],
            ))
        });
        let mut won = Vec::new();
        for result in results {
            match result {
                Ok(op) => won.push(op),
                Err(Error::Remote(body)) => {
                    assert_eq!(body.code, ErrorCode::CONFLICT, "{body}");
                    assert!(body.message.contains("check failed"), "{body}");
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        version = won[0];
        // Creating with `Absent` checks: one of the concurrent creators wins too.
        let entity = format!("new{round}");
        let results = concurrently(&s, |w, client| {
            smol::block_on(mutate(
                client,
                vec![
                    Mutation::Check {
                        entity: entity.clone(),
                        expected: Expected::Absent,
                    },
                    put(&entity, &format!("creator{w}")),
                ],
            ))
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    }
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
}
