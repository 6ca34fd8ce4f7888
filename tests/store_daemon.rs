//! The store in running daemons: a put on one node becomes queryable on the other, and the
//! index survives a restart, or is rebuilt from the chain when its folder is deleted.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{cell_dir, cell_of, exo, ok, store_put, Daemon};

fn wait_query(dir: &Path, q: &str, expected: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let found = sorted_ids(dir, q);
        if found == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{q}` on {}: {found:?}, expected {expected:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_put_on_one_node_is_queryable_on_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 2);
    let daemons: Vec<Daemon> = nodes.iter().map(|n| Daemon::start(&n.dir)).collect();
    daemons[0].wait_log("peer up: `n1`", Duration::from_secs(15));
    let a = store_put(&nodes[0].dir, &["new", "note", "title=From the first node"]);
    let b = store_put(
        &nodes[1].dir,
        &["new", "note", "title=From the second node"],
    );
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    for node in &nodes {
        wait_query(&node.dir, "type:note", &both, Duration::from_secs(20));
    }
    assert_eq!(sorted_ids(&nodes[1].dir, "first"), vec![a.clone()]);
    ok(&nodes[1].dir, &["store", "delete", &a]);
    wait_query(&nodes[0].dir, "type:note", &[b], Duration::from_secs(20));
    for daemon in daemons {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
}

#[test]
fn restart_keeps_the_index_and_a_deleted_index_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let daemon = Daemon::start(dir);
    let ids: Vec<String> = (0..5)
        .map(|i| {
            store_put(
                dir,
                &[
                    "new",
                    "task",
                    &format!("title=Task {i}"),
                    &format!("priority={i}"),
                ],
            )
        })
        .collect();
    ok(dir, &["store", "delete", &ids[0]]); // priority 0
    let before = ok(
        dir,
        &["store", "query", "--json", "type:task sort:task.priority"],
    );
    let high = sorted_ids(dir, "priority:>=3");
    assert_eq!(high.len(), 2);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");

    // Restart: the index is reopened as it was.
    let daemon = Daemon::start(dir);
    daemon.wait_log("entity index opened", Duration::from_secs(10));
    assert_eq!(
        ok(
            dir,
            &["store", "query", "--json", "type:task sort:task.priority"]
        ),
        before
    );
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");

    // The whole store folder deleted while stopped: rebuilt from the chain, same results.
    std::fs::remove_dir_all(cell_dir(dir).join("store")).unwrap();
    let daemon = Daemon::start(dir);
    daemon.wait_log("entity index built", Duration::from_secs(20));
    assert_eq!(
        ok(
            dir,
            &["store", "query", "--json", "type:task sort:task.priority"]
        ),
        before
    );
    assert_eq!(sorted_ids(dir, "priority:>=3"), high);
    assert_eq!(sorted_ids(dir, "type:task include:deleted").len(), 5);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    assert!(
        log.contains("rebuilding the entity index from the chain: no complete index"),
        "{log}"
    );
}

/// Waits until no entity of the store is pending: every put is committed in a block.
fn wait_committed(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ok(dir, &["store", "query", "--json", "include:deleted"]);
        if !out.contains("\"pending\":true") {
            return;
        }
        assert!(Instant::now() < deadline, "still pending: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `entity index at height H, replaying K block(s)` line of a start: (H, K).
fn replay_line(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .find(|l| l.contains("entity index at height"))
        .unwrap_or_else(|| panic!("no replay line:\n{log}"));
    let number_after = |word: &str| -> u64 {
        let rest = &line[line.find(word).unwrap() + word.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (number_after("at height"), number_after("replaying"))
}

#[test]
fn a_restart_replays_only_the_blocks_after_the_index_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let daemon = Daemon::start(dir);
    for i in 0..4 {
        store_put(dir, &["new", "task", &format!("title=First {i}")]);
    }
    wait_committed(dir);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");

    // A clean restart: the index holds every committed block, nothing is replayed.
    let daemon = Daemon::start(dir);
    daemon.wait_log("entity index caught up", Duration::from_secs(10));
    let (first_height, replayed) = replay_line(&daemon.log());
    assert!(first_height >= 1, "{}", daemon.log());
    assert_eq!(replayed, 0, "{}", daemon.log());
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    // Keep this index, as it is at `first_height`.
    let index = cell_dir(dir).join("store").join("index");
    let saved = tmp.path().join("saved-index");
    copy_dir(&index, &saved);

    // More mutations (puts, an update, a deletion), committed in later blocks.
    let daemon = Daemon::start(dir);
    let first = support::store_query_ids(dir, "First")[0].clone();
    for i in 0..3 {
        store_put(dir, &["new", "note", &format!("title=Second {i}")]);
    }
    ok(dir, &["store", "delete", &first]);
    wait_committed(dir);
    let queries = ["*", "include:deleted sort:created", "type:note", "Second"];
    let results: Vec<String> = queries
        .iter()
        .map(|q| ok(dir, &["store", "query", "--json", q]))
        .collect();
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");

    // The older index back: only the blocks after its checkpoint are replayed, and every
    // query answers as before.
    std::fs::remove_dir_all(&index).unwrap();
    copy_dir(&saved, &index);
    let daemon = Daemon::start(dir);
    daemon.wait_log("entity index caught up", Duration::from_secs(10));
    let log = daemon.log();
    let (height, replayed) = replay_line(&log);
    assert_eq!(height, first_height, "{log}");
    assert!(replayed >= 1, "{log}");
    assert!(!log.contains("rebuilding"), "{log}");
    for (q, expected) in queries.iter().zip(&results) {
        assert_eq!(&ok(dir, &["store", "query", "--json", q]), expected, "{q}");
    }
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn an_index_that_does_not_match_the_chain_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let (mine, _) = cell_of(&tmp.path().join("mine"), 1);
    let (other, _) = cell_of(&tmp.path().join("other"), 1);
    let (mine, other) = (mine[0].dir.as_path(), other[0].dir.as_path());
    for (dir, kind, count) in [(mine, "task", 3), (other, "note", 5)] {
        let daemon = Daemon::start(dir);
        for i in 0..count {
            store_put(dir, &["new", kind, &format!("title=Item {i}")]);
        }
        wait_committed(dir);
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
    let daemon = Daemon::start(mine);
    let expected = ok(mine, &["store", "query", "--json", "*"]);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");

    // Another chain's index in its place (its blocks are not this chain's blocks).
    let index = cell_dir(mine).join("store").join("index");
    std::fs::remove_dir_all(&index).unwrap();
    copy_dir(&cell_dir(other).join("store").join("index"), &index);
    let daemon = Daemon::start(mine);
    daemon.wait_log("entity index built", Duration::from_secs(20));
    assert!(
        daemon.log().contains("does not match the chain"),
        "{}",
        daemon.log()
    );
    assert_eq!(ok(mine, &["store", "query", "--json", "*"]), expected);
    assert_eq!(support::store_query_ids(mine, "type:note").len(), 0);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}

/// `exo store get --json ID`, parsed.
fn get_json(dir: &Path, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(dir, &["store", "get", "--json", id])).unwrap()
}

#[test]
fn old_versions_and_deleted_entities_go_after_the_retention_period() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    // 0.00005 days: 4.32 seconds.
    ok(dir, &["config", "set", "store.retention_days", "0.00005"]);
    let daemon = Daemon::start(dir);
    let kept = store_put(dir, &["new", "task", "title=Kept"]);
    store_put(dir, &["--trait", "extra", &kept, "note", "title=Extra"]);
    ok(dir, &["store", "delete", "--trait", "extra", &kept]);
    store_put(dir, &[&kept, "task", "title=Kept, second version"]);
    let gone = store_put(dir, &["new", "note", "title=Gone"]);
    ok(dir, &["store", "delete", &gone]);
    // Within the retention period the deleted entity and trait are there on request.
    let mut both = vec![kept.clone(), gone.clone()];
    both.sort();
    assert_eq!(sorted_ids(dir, "include:deleted"), both);
    let before = get_json(dir, &kept);
    assert_eq!(before["traits"].as_array().unwrap().len(), 2, "{before}");

    // Then they go, and the current state stays.
    wait_query(
        dir,
        "include:deleted",
        std::slice::from_ref(&kept),
        Duration::from_secs(20),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(dir, &kept)["traits"].as_array().unwrap().len() != 1 {
        assert!(Instant::now() < deadline, "{}", get_json(dir, &kept));
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = get_json(dir, &kept);
    for key in ["id", "status", "version", "created", "updated"] {
        assert_eq!(after[key], before[key], "{key}: {after} {before}");
    }
    assert_eq!(
        after["pending"], false,
        "only committed operations are collected"
    );
    assert_eq!(after["traits"][0], before["traits"][1], "{after} {before}");
    assert_eq!(
        after["traits"][0]["fields"]["title"],
        "Kept, second version"
    );
    assert!(exo(dir, &["store", "get", &gone]).code != 0);
    let live = ok(dir, &["store", "query", "--json", "*"]);
    daemon.wait_log("garbage collection: ", Duration::from_secs(5));
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");

    // Rebuilt from the chain (which keeps every operation): collected at once, the same.
    std::fs::remove_dir_all(cell_dir(dir).join("store")).unwrap();
    let daemon = Daemon::start(dir);
    daemon.wait_log("entity index built", Duration::from_secs(20));
    assert_eq!(sorted_ids(dir, "include:deleted"), vec![kept.clone()]);
    assert_eq!(get_json(dir, &kept), after);
    assert_eq!(ok(dir, &["store", "query", "--json", "*"]), live);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn sorted_ids(dir: &Path, query: &str) -> Vec<String> {
    let mut ids = support::store_query_ids(dir, query);
    ids.sort();
    ids
}
