//! The store in running daemons: a put on one node becomes queryable on the other, and the
//! index survives a restart, or is rebuilt from the chain when its folder is deleted.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{cell_of, ok, store_put, Daemon};

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
    let cell_dir = std::fs::read_dir(dir.join("cells"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_dir_all(cell_dir.join("store")).unwrap();
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

fn sorted_ids(dir: &Path, query: &str) -> Vec<String> {
    let mut ids = support::store_query_ids(dir, query);
    ids.sort();
    ids
}
