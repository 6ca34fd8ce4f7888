//! A node joined by PIN runs: its daemon fetches the chain from the member and the cell's
//! writes are readable on both nodes, in both directions.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    add_by_pin, new_node as node, ok, rendezvous, start_join, store_put, store_query_ids, Daemon,
    Rendezvous,
};

const WAIT: Duration = Duration::from_secs(30);

/// Has `b` join `a`'s cell with `roles` through a new rendezvous server (returned: it stops
/// when dropped).
fn join(root: &Path, a: &Path, b: &Path, roles: &[&str]) -> Rendezvous {
    let disco = rendezvous(root, &[]);
    let (joining, pin) = start_join(b, roles, &disco.address, "join");
    assert_eq!(add_by_pin(a, &pin, &disco.address, true).code, 0);
    assert_eq!(joining.wait(WAIT).code, 0);
    disco
}

/// Waits until `query` on `dir` returns exactly `expected` (any order).
fn wait_for(dir: &Path, query: &str, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut found = store_query_ids(dir, query);
        found.sort();
        if found == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{query}` on {}: {found:?}, expected {expected:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Once both daemons run and see each other, a write on each is readable on both; then both
/// stop cleanly.
fn writes_are_readable_on_both(a: &Path, b: &Path, daemon_a: Daemon, daemon_b: Daemon) {
    daemon_a.wait_log("peer up: `b`", WAIT);
    daemon_b.wait_log("genesis received", WAIT);
    let from_a = store_put(a, &["new", "note", "title=Written on a"]);
    let from_b = store_put(b, &["new", "note", "title=Written on b"]);
    for dir in [a, b] {
        wait_for(dir, "type:note", &[&from_a, &from_b]);
    }
    for daemon in [daemon_a, daemon_b] {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
}

/// The member's daemon runs during the join (the admission is a membership change committed
/// through the chain) and learns of the new node without a restart.
#[test]
fn a_running_member_admits_a_node_without_restarting() {
    let tmp = tempfile::tempdir().unwrap();
    let a = node(tmp.path(), "a");
    ok(&a, &["cell", "init", "--name", "home"]);
    let daemon_a = Daemon::start(&a);
    let b = node(tmp.path(), "b");
    let _disco = join(tmp.path(), &a, &b, &["--chain", "--store"]);
    let daemon_b = Daemon::start(&b);
    writes_are_readable_on_both(&a, &b, daemon_a, daemon_b);
}
