//! The chain over the real transport: daemons run the replication engine for their cells,
//! a single node commits its own writes, three nodes replicate and commit together, and a
//! node killed with SIGKILL in the middle of writes loses nothing it acknowledged.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use exo::chain::archive::{Reader, Record};
use support::{cell_of, exo, ok, Daemon};

fn info(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(dir, &["cell", "chain", "info", "--json"])).unwrap()
}

fn append(dir: &Path, text: &str) -> String {
    let out = ok(dir, &["cell", "chain", "append", text]);
    let id = out.trim().to_string();
    assert_eq!(id.len(), 32, "{out}");
    id
}

/// The committed operation ids and the pending count of a node's chain, from an export.
fn committed(dir: &Path) -> (BTreeSet<String>, usize, String) {
    let file = dir.join(format!("export-{}", fastrand::u64(..)));
    ok(dir, &["cell", "chain", "export", file.to_str().unwrap()]);
    let mut reader = Reader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let (mut ids, mut pending, mut last) = (BTreeSet::new(), 0, String::new());
    while let Some(record) = reader.next_record().unwrap() {
        match record {
            Record::Block(block) => {
                last = exo::chain::hex(&block.hash());
                ids.extend(block.operations.iter().map(|op| op.id.to_string()));
            }
            Record::Pending(_) => pending += 1,
        }
    }
    (ids, pending, last)
}

/// Waits until every id in `ids` is committed on every node in `dirs`, and they agree.
fn wait_committed(dirs: &[&Path], ids: &BTreeSet<String>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let states: Vec<_> = dirs.iter().map(|d| committed(d)).collect();
        let all = states
            .iter()
            .all(|(committed, _, _)| ids.is_subset(committed));
        let same = states.windows(2).all(|w| w[0].2 == w[1].2);
        if all && same {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not committed everywhere in {timeout:?}: {:?}",
            states
                .iter()
                .map(|(c, p, h)| (c.len(), *p, h.clone()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_single_node_commits_its_own_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let daemon = Daemon::start(dir);
    let ids: BTreeSet<String> = (0..5).map(|i| append(dir, &format!("note {i}"))).collect();
    assert_eq!(ids.len(), 5, "ids are unique");
    wait_committed(&[dir], &ids, Duration::from_secs(20));
    assert!(info(dir)["height"].as_u64().unwrap() >= 1);
    assert_eq!(info(dir)["pending_operations"], 0);
    ok(dir, &["cell", "chain", "check"]);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    assert!(log.contains("committed"), "{log}");
}

#[test]
fn append_without_a_daemon_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let run = exo(&nodes[0].dir, &["cell", "chain", "append", "x"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no daemon answers"), "{}", run.stderr);
}

#[test]
fn three_daemons_replicate_and_commit_writes_from_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 3);
    let daemons: Vec<Daemon> = nodes.iter().map(|n| Daemon::start(&n.dir)).collect();
    daemons[0].wait_log("peer up: `n1`", Duration::from_secs(15));
    daemons[0].wait_log("peer up: `n2`", Duration::from_secs(15));
    let mut ids = BTreeSet::new();
    for round in 0..3 {
        for node in &nodes {
            ids.insert(append(
                &node.dir,
                &format!("from {} round {round}", node.id),
            ));
        }
    }
    let dirs: Vec<&Path> = nodes.iter().map(|n| n.dir.as_path()).collect();
    wait_committed(&dirs, &ids, Duration::from_secs(30));
    for daemon in daemons {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
    for dir in &dirs {
        ok(dir, &["cell", "chain", "check"]);
    }
}

#[test]
fn a_node_killed_mid_stream_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 3);
    let mut daemons: Vec<Option<Daemon>> =
        nodes.iter().map(|n| Some(Daemon::start(&n.dir))).collect();
    daemons[0]
        .as_ref()
        .unwrap()
        .wait_log("peer up: `n2`", Duration::from_secs(15));
    let mut acknowledged = BTreeSet::new();
    for i in 0..30 {
        // Writes land on node 2, which is killed without warning halfway.
        if i == 15 {
            let daemon = daemons[2].take().unwrap();
            Command::new("kill")
                .arg("-KILL")
                .arg(daemon.pid().to_string())
                .status()
                .unwrap();
            drop(daemon);
        }
        let target = if i < 15 { &nodes[2] } else { &nodes[i % 2] };
        acknowledged.insert(append(&target.dir, &format!("write {i}")));
    }
    // Node 2 comes back and catches up; its acknowledged writes are committed everywhere.
    daemons[2] = Some(Daemon::start(&nodes[2].dir));
    let dirs: Vec<&Path> = nodes.iter().map(|n| n.dir.as_path()).collect();
    wait_committed(&dirs, &acknowledged, Duration::from_secs(40));
    for daemon in daemons.into_iter().flatten() {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
}

#[test]
fn a_chain_node_without_a_chain_fetches_it_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell_id) = cell_of(tmp.path(), 3);
    // Node 2 joined by configuration only: no chain folder at all.
    std::fs::remove_dir_all(nodes[2].dir.join("cells").join(&cell_id).join("chain")).unwrap();
    let first = Daemon::start(&nodes[0].dir);
    let second = Daemon::start(&nodes[1].dir);
    let ids: BTreeSet<String> = (0..4)
        .map(|i| append(&nodes[i % 2].dir, &format!("before {i}")))
        .collect();
    wait_committed(
        &[&nodes[0].dir, &nodes[1].dir],
        &ids,
        Duration::from_secs(20),
    );

    let third = Daemon::start(&nodes[2].dir);
    third.wait_log("genesis received", Duration::from_secs(15));
    let dirs: Vec<&Path> = nodes.iter().map(|n| n.dir.as_path()).collect();
    wait_committed(&dirs, &ids, Duration::from_secs(30));
    for daemon in [first, second, third] {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
}
