//! Apps in a real daemon, through the binary: `exo cell app install` writes the package to
//! the chain, the app host runs it, its entities are visible to `exo store query`; a hostile
//! app is stopped with its reason while the daemon and the other app go on; apps come back
//! after a restart (replayed from the chain); `remove` stops them; bad packages are refused;
//! an app's own trait types are registered in the cell's store while it is installed; an
//! app's watched query gets the store's changes.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{exo, fails, ok, setup, store_put, store_query_ids, Daemon};

/// Packages the WebAssembly text `wat` as app `name` with read/write access to tasks.
fn package(root: &Path, name: &str, wat: &str) -> PathBuf {
    ok(
        root,
        &["app", "new", name, "--parent", root.to_str().unwrap()],
    );
    let dir = root.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/apps")
        .join(wat);
    std::fs::copy(source, dir.join(format!("{name}.wat"))).unwrap();
    let manifest = std::fs::read_to_string(dir.join("app.toml")).unwrap();
    let manifest = manifest
        .replace("read = []", "read = [\"task\"]")
        .replace("write = []", "write = [\"task\"]");
    std::fs::write(dir.join("app.toml"), manifest).unwrap();
    let file = root.join(format!("{name}.exoapp"));
    ok(
        root,
        &[
            "app",
            "package",
            dir.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ],
    );
    file
}

fn apps(dir: &Path) -> Vec<serde_json::Value> {
    ok(dir, &["cell", "app", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn installed_apps_run_in_the_daemon_and_survive_a_restart() {
    let s = setup();
    let work = tempfile::tempdir().unwrap();
    let tasks = package(work.path(), "tasks", "tasks/tasks.wat");
    let out = ok(&s.dir, &["cell", "app", "install", tasks.to_str().unwrap()]);
    assert_eq!(out.trim().len(), 32, "an operation id: {out}");

    let expected = ["task-001", "task-002", "task-003"];
    wait_until("the tasks app's entities", || {
        let mut ids = store_query_ids(&s.dir, "type:task");
        ids.sort();
        ids == expected
    });
    let listed = apps(&s.dir);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "tasks");
    assert_eq!(listed[0]["state"], "running");
    assert_eq!(listed[0]["faults"], 0);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&s.dir, &["status", "--json"])).unwrap();
    assert_eq!(status[0]["apps"][0]["name"], "tasks", "{status}");
    assert_eq!(status[0]["apps"][0]["state"], "running", "{status}");

    // A hostile app is contained: stopped with its reason, restarted, and the rest goes on.
    let looping = package(work.path(), "looping", "hostile/loop.wat");
    ok(
        &s.dir,
        &["cell", "app", "install", looping.to_str().unwrap()],
    );
    wait_until("the looping app's fault", || {
        apps(&s.dir).iter().any(|a| {
            a["name"] == "looping"
                && a["last_fault"]
                    .as_str()
                    .is_some_and(|f| f.contains("ran out of fuel in `init`"))
        })
    });
    assert_eq!(store_query_ids(&s.dir, "type:task").len(), 3);
    let tasks_app = apps(&s.dir)
        .into_iter()
        .find(|a| a["name"] == "tasks")
        .unwrap();
    assert_eq!(
        (tasks_app["state"].as_str(), tasks_app["faults"].as_u64()),
        (Some("running"), Some(0))
    );

    // Removed apps stop; the others come back after a restart, from the chain.
    ok(&s.dir, &["cell", "app", "remove", "looping"]);
    wait_until("the removal", || apps(&s.dir).len() == 1);
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
    assert!(log.contains("app tasks 0.1.0 installed"), "{log}");
    let daemon = Daemon::start(&s.dir);
    wait_until("the tasks app after the restart", || {
        apps(&s.dir)
            .iter()
            .any(|a| a["name"] == "tasks" && a["state"] == "running")
    });
    assert_eq!(apps(&s.dir).len(), 1);
    let err = fails(&s.dir, &["cell", "app", "remove", "looping"], 1);
    assert!(err.contains("no app `looping` is installed"), "{err}");
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn bad_packages_are_refused_before_the_chain() {
    let s = setup();
    let work = tempfile::tempdir().unwrap();
    let tasks = package(work.path(), "tasks", "tasks/tasks.wat");
    let mut bytes = std::fs::read(&tasks).unwrap();
    let at = bytes.len() - 80;
    bytes[at] ^= 1;
    let altered = work.path().join("altered.exoapp");
    std::fs::write(&altered, bytes).unwrap();
    let err = fails(
        &s.dir,
        &["cell", "app", "install", altered.to_str().unwrap()],
        1,
    );
    assert!(err.contains("signature does not verify"), "{err}");
    assert!(apps(&s.dir).is_empty());
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn only_the_node_itself_installs_apps() {
    use exocore_protocol::app::{AppsRequest, AppsResponse};
    use exocore_protocol::client::Client;
    use exocore_protocol::envelope::Service;
    use exocore_protocol::wire;

    let s = setup();
    let work = tempfile::tempdir().unwrap();
    let package = std::fs::read(package(work.path(), "tasks", "tasks/tasks.wat")).unwrap();
    smol::block_on(async {
        let mut client = Client::connect(s.address.as_str(), &s.member, s.cell, &[s.node])
            .await
            .unwrap();
        let install = wire::encode(&AppsRequest::Install { package }).unwrap();
        match client.request(Service::Apps, install).await {
            Err(exocore_protocol::Error::Remote(body)) => {
                assert_eq!(
                    body.code,
                    exocore_protocol::message::ErrorCode::NOT_AUTHORIZED
                );
                assert!(body.message.contains("only the node itself"), "{body}");
            }
            other => panic!("a member installed an app: {other:?}"),
        }
        let list = client
            .request(Service::Apps, wire::encode(&AppsRequest::List).unwrap())
            .await
            .unwrap();
        assert_eq!(
            wire::decode::<AppsResponse>(&list).unwrap(),
            AppsResponse::List { apps: vec![] }
        );
        let _ = client.close("done").await;
    });
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
}

/// A schema file bringing trait type `notes.note`, with an indexed title.
const NOTE_SCHEMA: &str = "[[trait]]\nname = \"notes.note\"\n\
    [[trait.field]]\nname = \"title\"\ntype = \"string\"\nindexed = true\n";

/// What the daemon logs when the installed apps' types change.
const RESTART: &str = "restarting its services with the installed apps' trait types";

/// `exo store put new notes.note title=TITLE`, retried while the cell's services restart (they
/// do when an install or removal changes the trait types); its output or last error.
fn put_note(dir: &Path, title: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let field = format!("title={title}");
    loop {
        let run = exo(dir, &["store", "put", "new", "notes.note", &field]);
        if run.code == 0 {
            return Ok(run.stdout);
        }
        if Instant::now() >= deadline || !run.stderr.contains("not served") {
            return Err(run.stderr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_installed_apps_trait_types_are_stored_and_queried_until_it_is_removed() {
    let s = setup();
    let work = tempfile::tempdir().unwrap();
    ok(
        work.path(),
        &[
            "app",
            "new",
            "notes",
            "--parent",
            work.path().to_str().unwrap(),
        ],
    );
    let dir = work.path().join("notes");
    std::fs::write(dir.join("schema.toml"), NOTE_SCHEMA).unwrap();
    let file = work.path().join("notes.exoapp");
    ok(
        work.path(),
        &[
            "app",
            "package",
            dir.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ],
    );

    // Not installed: the type is unknown to the store.
    let err = put_note(&s.dir, "before").unwrap_err();
    assert!(
        err.contains(
            "unknown trait type `notes.note` (neither built in nor brought by an installed app)"
        ),
        "{err}"
    );

    ok(&s.dir, &["cell", "app", "install", file.to_str().unwrap()]);
    let mut stored = None;
    wait_until("the notes.note type in the store", || {
        stored = put_note(&s.dir, "groceries").ok();
        stored.is_some()
    });
    let entity = stored
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        store_query_ids(&s.dir, "type:notes.note"),
        [entity.as_str()]
    );
    assert_eq!(
        store_query_ids(&s.dir, "notes.note.title:groceries"),
        [entity.as_str()],
        "the app's indexed field is queryable"
    );

    // After a restart the index opens with the app's types (no second restart needed).
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
    assert!(log.contains(RESTART), "{log}");
    let daemon = Daemon::start(&s.dir);
    wait_until("the store after the restart", || {
        exo(&s.dir, &["store", "query", "--json", "type:notes.note"]).code == 0
    });
    assert_eq!(
        store_query_ids(&s.dir, "notes.note.title:groceries"),
        [entity.as_str()]
    );
    let second = store_put(&s.dir, &["new", "notes.note", "title=books"]);
    assert_eq!(store_query_ids(&s.dir, "notes.note.title:books"), [second]);

    // Removed: new writes of the type are refused again; what was stored stays, found by type.
    ok(&s.dir, &["cell", "app", "remove", "notes"]);
    daemon.wait_log(RESTART, Duration::from_secs(30));
    let err = put_note(&s.dir, "after").unwrap_err();
    assert!(
        err.contains(
            "unknown trait type `notes.note` (neither built in nor brought by an installed app)"
        ),
        "{err}"
    );
    wait_until("the store after the removal", || {
        exo(&s.dir, &["store", "query", "--json", "type:notes.note"]).code == 0
    });
    assert_eq!(store_query_ids(&s.dir, "type:notes.note").len(), 2);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    assert_eq!(
        log.matches(RESTART).count(),
        1,
        "only the removal restarts: {log}"
    );
}

#[test]
fn an_apps_watched_query_follows_the_daemons_store() {
    let s = setup();
    let work = tempfile::tempdir().unwrap();
    let watcher = package(work.path(), "watcher", "watcher/watcher.wat");
    ok(
        &s.dir,
        &["cell", "app", "install", watcher.to_str().unwrap()],
    );
    let wait = Duration::from_secs(30);
    s.daemon.wait_log("app watcher: watch: 0", wait);
    store_put(&s.dir, &["new", "task", "title=one"]);
    s.daemon.wait_log("app watcher: watch: 1", wait);
    store_put(&s.dir, &["new", "task", "title=two"]);
    // At two tasks the app ends its watch; the host answers Done.
    s.daemon.wait_log("app watcher: unwatched", wait);
    store_put(&s.dir, &["new", "task", "title=three"]);
    let listed = apps(&s.dir);
    assert_eq!(
        (listed[0]["state"].as_str(), listed[0]["faults"].as_u64()),
        (Some("running"), Some(0)),
        "{listed:?}"
    );
    let (clean, log) = s.daemon.stop();
    assert!(clean, "{log}");
    assert!(
        !log.contains("app watcher: watch: 3"),
        "the ended watch got no more: {log}"
    );
}
