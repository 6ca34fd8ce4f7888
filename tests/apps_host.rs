//! The app host over a real store index on disk: the sample apps behave, hostile apps are
//! stopped with a clear reason and restarted with backoff while a well-behaved app keeps
//! running, permissions hold, and invalid modules are refused before anything runs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exo::apps::AppStore;
use exo::apps::{AppHost, AppState, AppStatus, HostError, IndexStore, Limits, Package};
use exo::store::{Entry, Mutation, Schemas, Trait};
use exocore_protocol::store::{StoreRequest, StoreResponse};

fn fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/apps")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Short backoffs so restarts happen within a test.
fn limits() -> Limits {
    Limits {
        backoff_initial_ms: 20,
        backoff_max_ms: 200,
        ..Limits::default()
    }
}

struct Setup {
    host: AppHost,
    store: Arc<IndexStore>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(IndexStore::open(&dir.path().join("index"), Schemas::builtin()).unwrap());
    let host = AppHost::start(limits(), store.clone()).unwrap();
    Setup {
        host,
        store,
        _dir: dir,
    }
}

fn install(host: &AppHost, name: &str, wat: &str, read: &[&str], write: &[&str]) {
    let package = Package::build_from_wat(name, "0.1.0", wat, "", read, write).unwrap();
    let app = Package::from_bytes(&package.to_bytes())
        .unwrap()
        .verify(&Schemas::builtin())
        .unwrap();
    host.install(app).unwrap();
}

/// Waits (at most 30 s) until `done` holds for the app's status.
fn wait_for(
    host: &AppHost,
    name: &str,
    what: &str,
    done: impl Fn(&AppStatus) -> bool,
) -> AppStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = host.status(name);
        if let Some(status) = status.as_ref().filter(|s| done(s)) {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "app {name}: still not {what}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn logged(status: &AppStatus, text: &str) -> bool {
    status.logs.iter().any(|l| l.contains(text))
}

#[test]
fn hello_logs_then_ticks_on_its_timer() {
    let s = setup();
    install(&s.host, "hello", &fixture("hello/hello.wat"), &[], &[]);
    let status = wait_for(&s.host, "hello", "ticking", |s| {
        s.logs.iter().filter(|l| *l == "tick").count() >= 2
    });
    assert_eq!(status.logs[0], "hello from an Exocore app");
    assert_eq!(status.state, AppState::Running);
    assert_eq!((status.starts, status.faults), (1, 0));
}

#[test]
fn tasks_app_creates_tasks_on_its_timer_and_reads_them_back() {
    let s = setup();
    install(
        &s.host,
        "tasks",
        &fixture("tasks/tasks.wat"),
        &["task"],
        &["task"],
    );
    let status = wait_for(&s.host, "tasks", "seeing its three tasks", |s| {
        logged(s, "tasks: 3 on the page")
    });
    assert_eq!(status.faults, 0, "{status:?}");
    // The entities are in the store for everyone.
    let results = smol::block_on(s.store.request(StoreRequest::QueryText {
        text: "type:task Reminder".into(),
    }))
    .unwrap();
    let StoreResponse::Results { entities, .. } = results else {
        panic!("not results: {results:?}");
    };
    let mut ids: Vec<_> = entities.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["task-001", "task-002", "task-003"]);
}

#[test]
fn an_app_may_write_only_the_types_its_manifest_lists() {
    let s = setup();
    install(
        &s.host,
        "tasks",
        &fixture("tasks/tasks.wat"),
        &["task"],
        &["note"],
    );
    let status = wait_for(&s.host, "tasks", "refused", |s| {
        logged(s, "may not write trait type `task`")
    });
    assert!(logged(&status, "a request failed"), "{status:?}");
    assert_eq!(status.faults, 0);
}

#[test]
fn an_app_without_read_permission_sees_nothing() {
    let s = setup();
    install(
        &s.host,
        "tasks",
        &fixture("tasks/tasks.wat"),
        &[],
        &["task"],
    );
    wait_for(&s.host, "tasks", "refused its query", |s| {
        logged(s, "may not read")
    });
}

fn put_task(store: &IndexStore, entity: &str) {
    let entry = Entry::Mutations(vec![Mutation::PutTrait {
        entity: entity.into(),
        value: Trait::new("t", "task").with("title", "Watched"),
    }])
    .to_bytes();
    smol::block_on(store.request(StoreRequest::Mutate { entry })).unwrap();
}

#[test]
fn a_watch_streams_new_results_until_unwatched() {
    let s = setup();
    install(
        &s.host,
        "watcher",
        &fixture("watcher/watcher.wat"),
        &["task"],
        &[],
    );
    wait_for(&s.host, "watcher", "given the first results", |s| {
        logged(s, "watch: 0")
    });
    put_task(&s.store, "w1");
    wait_for(&s.host, "watcher", "told of one task", |s| {
        logged(s, "watch: 1")
    });
    put_task(&s.store, "w2");
    let status = wait_for(&s.host, "watcher", "unwatched", |s| logged(s, "unwatched"));
    assert_eq!(status.faults, 0);
    // The host dropped the watch: the store forgets it at its next change.
    put_task(&s.store, "w3");
    assert_eq!(s.store.watches(), 0);
}

#[test]
fn hostile_apps_are_stopped_with_their_reason_and_restarted_while_hello_runs() {
    let s = setup();
    install(&s.host, "hello", &fixture("hello/hello.wat"), &[], &[]);
    install(&s.host, "looping", &fixture("hostile/loop.wat"), &[], &[]);
    install(&s.host, "bomb", &fixture("hostile/membomb.wat"), &[], &[]);
    install(&s.host, "oob", &fixture("hostile/oob.wat"), &[], &[]);
    install(&s.host, "deep", &fixture("hostile/recursion.wat"), &[], &[]);
    install(
        &s.host,
        "garbage",
        &fixture("hostile/garbage.wat"),
        &["task"],
        &[],
    );
    let restarted = |reason: &'static str| {
        move |s: &AppStatus| {
            s.faults >= 2
                && s.starts >= 2
                && s.last_fault.as_deref().is_some_and(|f| f.contains(reason))
        }
    };
    wait_for(
        &s.host,
        "looping",
        "out of fuel twice",
        restarted("ran out of fuel in `init`"),
    );
    wait_for(
        &s.host,
        "bomb",
        "over its memory twice",
        restarted("exceeded its memory limit in `init`"),
    );
    wait_for(
        &s.host,
        "oob",
        "stopped for its pointer twice",
        restarted("log: buffer (ptr 4294967280, len 100) is outside the app's memory"),
    );
    wait_for(
        &s.host,
        "deep",
        "stopped for its recursion twice",
        restarted("trapped in `init`"),
    );
    let garbage = wait_for(
        &s.host,
        "garbage",
        "stopped for its alloc twice",
        restarted("alloc: buffer (ptr 4294967040"),
    );
    assert!(logged(&garbage, "garbage was refused"), "{garbage:?}");
    // Meanwhile hello was never touched, and still ticks.
    let before = s.host.status("hello").unwrap().logs.len();
    let hello = wait_for(&s.host, "hello", "ticking after the others failed", |h| {
        h.logs.len() > before + 1 || h.logs.len() == exo::apps::limits::RECENT_LOGS_MAX
    });
    assert_eq!(
        (hello.starts, hello.faults, hello.state),
        (1, 0, AppState::Running)
    );
}

#[test]
fn invalid_modules_are_refused_before_running() {
    let s = setup();
    // Fails validation: returns an i64 where it declares an i32.
    let err = Package::build_from_wat(
        "bad",
        "0.1.0",
        r#"(module (memory (export "memory") 1) (func (export "init")) (func (result i32) (i64.const 1)))"#,
        "",
        &[],
        &[],
    )
    .unwrap()
    .verify(&Schemas::builtin())
    .unwrap_err();
    assert!(err.to_string().contains("not valid WebAssembly"), "{err}");
    // A verified app whose module was swapped afterwards is refused by the host too.
    let package =
        Package::build_from_wat("good", "0.1.0", &fixture("hello/hello.wat"), "", &[], &[])
            .unwrap();
    let mut app = package.verify(&Schemas::builtin()).unwrap();
    app.module = b"\0asm garbage".to_vec();
    assert!(matches!(s.host.install(app), Err(HostError::Module(_))));
    assert!(s.host.statuses().is_empty());
}
