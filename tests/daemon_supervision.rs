//! The daemon contains a failing service: when a cell's chain service dies (a fail point
//! makes it panic inside the release binary), the daemon logs it, restarts the cell's
//! services with backoff, keeps everything acknowledged before, serves again, and still
//! stops cleanly.

mod support;

use std::time::{Duration, Instant};

use support::{cell_of, exo, store_put, store_query_ids, Daemon};

#[test]
fn a_failed_chain_service_is_restarted_and_nothing_acknowledged_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    // The third append through the chain service panics its thread.
    let daemon = Daemon::start_with_env(dir, &[("EXO_FAILPOINTS", "chain-append:3")]);
    let mut kept = vec![
        store_put(dir, &["new", "task", "title=first"]),
        store_put(dir, &["new", "task", "title=second"]),
    ];
    let failed = exo(dir, &["store", "put", "new", "task", "title=lost"]);
    assert_eq!(failed.code, 1, "{}", failed.stdout);
    assert!(failed.stderr.starts_with("error: "), "{}", failed.stderr);
    daemon.wait_log(
        "the chain service stopped unexpectedly; restarting",
        Duration::from_secs(10),
    );
    daemon.wait_log("restarting its services", Duration::from_secs(10));
    // Served again once the services are back.
    let deadline = Instant::now() + Duration::from_secs(20);
    let third = loop {
        let run = exo(dir, &["store", "put", "new", "task", "title=third"]);
        if run.code == 0 {
            break run.stdout.split_whitespace().next().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "never served again: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    kept.push(third);
    let mut found = store_query_ids(dir, "type:task");
    found.sort();
    kept.sort();
    assert_eq!(found, kept);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}
