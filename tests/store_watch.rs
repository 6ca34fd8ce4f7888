//! Watched queries through a real daemon: the initial results, a new event per change of the
//! results (none when an unrelated entity changes), the latest state for a slow consumer,
//! Unsubscribe, and `exo store watch` through the binary.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use exo::store::{Entry, Mutation, Query, Trait, Value};
use exocore_protocol::client::{Client, ClientOptions, Subscription};
use exocore_protocol::envelope::Service;
use exocore_protocol::store::{StoreRequest, StoreResponse};
use exocore_protocol::wire;
use futures_lite::future;
use support::{ok, setup};

fn watch_payload(text: &str) -> Vec<u8> {
    let mut query = Query::parse(text).unwrap();
    query.limit = 100;
    wire::encode(&StoreRequest::Watch {
        query: wire::encode(&query).unwrap(),
    })
    .unwrap()
}

/// The next event as (entity ids, total, skipped_before), within 10 s.
async fn next(changes: &mut Subscription) -> (Vec<String>, u64, u64) {
    let event = future::or(async { changes.next().await }, async {
        async_io::Timer::after(Duration::from_secs(10)).await;
        panic!("no event within 10 s");
    })
    .await
    .expect("the subscription ended")
    .expect("the subscription failed");
    match wire::decode::<StoreResponse>(&event.payload).unwrap() {
        StoreResponse::Results {
            entities, total, ..
        } => (
            entities.into_iter().map(|e| e.id).collect(),
            total,
            event.skipped_before,
        ),
        other => panic!("not results: {other:?}"),
    }
}

async fn put_note(client: &mut Client, entity: &str, title: &str) {
    let mut value = Trait::new("note", "note");
    value.set("title", Value::String(title.into()));
    let entry = Entry::Mutations(vec![Mutation::PutTrait {
        entity: entity.into(),
        value,
    }])
    .to_bytes();
    let answer = client
        .request(
            Service::Store,
            wire::encode(&StoreRequest::Mutate { entry }).unwrap(),
        )
        .await
        .unwrap();
    assert!(matches!(
        wire::decode::<StoreResponse>(&answer).unwrap(),
        StoreResponse::Mutated { .. }
    ));
}

#[test]
fn a_watch_gets_the_results_then_each_change_and_stops_on_unsubscribe() {
    let s = setup();
    ok(
        &s.dir,
        &["store", "put", "t0", "task", "title=First", "done=false"],
    );
    smol::block_on(async {
        let mut client = s.client(ClientOptions::default()).await;
        let mut changes = client
            .subscribe(Service::Store, watch_payload("type:task"))
            .await
            .unwrap();
        assert!(changes.response().is_empty());
        assert_eq!(next(&mut changes).await, (vec!["t0".to_string()], 1, 0));

        // An unrelated entity changes: the results' hash does not, so no event; the next
        // event is the one of the new task.
        put_note(&mut client, "n1", "Unrelated").await;
        ok(
            &s.dir,
            &["store", "put", "t1", "task", "title=Second", "done=true"],
        );
        let (ids, total, skipped) = next(&mut changes).await;
        assert_eq!((total, skipped), (2, 0));
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["t0".to_string(), "t1".to_string()]);

        // A Store Request carrying Watch, and a Subscribe carrying a Query, are refused.
        let refused = client
            .request(Service::Store, watch_payload("type:task"))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("Subscribe"), "{refused}");
        let query = wire::encode(&StoreRequest::QueryText { text: "*".into() }).unwrap();
        assert!(client.subscribe(Service::Store, query).await.is_err());
        // A query that does not parse as a Query is refused with a reason.
        let bad = wire::encode(&StoreRequest::Watch { query: vec![9] }).unwrap();
        let refused = client.subscribe(Service::Store, bad).await.unwrap_err();
        assert!(refused.to_string().contains("query"), "{refused}");

        // Unsubscribe: the daemon drops the watch at its next batch.
        changes.cancel();
        ok(
            &s.dir,
            &["store", "put", "t2", "task", "title=Third", "done=true"],
        );
        s.daemon
            .wait_log("1 watched query(ies) ended", Duration::from_secs(10));
        client.close("done").await.unwrap();
    });
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn a_slow_watcher_gets_the_latest_results() {
    let s = setup();
    smol::block_on(async {
        let options = ClientOptions {
            subscription_buffer_events: 4,
            ..ClientOptions::default()
        };
        let mut client = s.client(options).await;
        let mut changes = client
            .subscribe(Service::Store, watch_payload("type:note"))
            .await
            .unwrap();
        assert_eq!(next(&mut changes).await, (vec![], 0, 0));
        // 50 puts while the watcher does not read.
        let mut writer = client.clone();
        for i in 0..50 {
            put_note(&mut writer, &format!("n{i:02}"), &format!("Note {i}")).await;
        }
        let mut events = 0;
        let mut skipped = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (ids, total, skipped_before) = next(&mut changes).await;
            events += 1;
            skipped += skipped_before;
            if ids.len() == 50 {
                assert_eq!(total, 50);
                break;
            }
            assert!(Instant::now() < deadline, "never saw the 50 notes");
        }
        assert!(
            skipped > 0 || events < 50,
            "{events} events, {skipped} skipped: nothing was coalesced"
        );
        client.close("done").await.unwrap();
    });
}

/// Reads stdout lines of a child on a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_json(rx: &mpsc::Receiver<String>) -> serde_json::Value {
    let line = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("no line from exo store watch");
    serde_json::from_str(&line).unwrap()
}

fn spawn_watch(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_exo"))
        .arg("-d")
        .arg(dir)
        .args(["store", "watch", "--json", "type:task"])
        .env_remove("EXO_DIR")
        .env_remove("EXO_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("exo store watch did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exo_store_watch_prints_each_change_until_interrupted() {
    let s = setup();
    let mut watcher = spawn_watch(&s.dir);
    let rx = lines(&mut watcher);
    let first = next_json(&rx);
    assert_eq!(first["total"], 0, "{first}");
    assert_eq!(first["entities"].as_array().unwrap().len(), 0);

    ok(
        &s.dir,
        &["store", "put", "t1", "task", "title=Watch me", "done=false"],
    );
    let second = next_json(&rx);
    assert_eq!(second["total"], 1, "{second}");
    assert_eq!(second["entities"][0]["id"], "t1");
    assert_eq!(
        second["entities"][0]["traits"][0]["fields"]["title"],
        "Watch me"
    );

    // Ctrl-C ends it cleanly.
    Command::new("kill")
        .arg("-INT")
        .arg(watcher.id().to_string())
        .status()
        .unwrap();
    assert_eq!(wait_exit(&mut watcher), 0);

    // The daemon stopping ends a watch with an error.
    let mut orphan = spawn_watch(&s.dir);
    let rx = lines(&mut orphan);
    assert_eq!(next_json(&rx)["total"], 1);
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
    assert_eq!(wait_exit(&mut orphan), 1);
    let mut stderr = String::new();
    std::io::Read::read_to_string(orphan.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("watch"), "{stderr}");
}
