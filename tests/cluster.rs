//! A three-node cell through the real binary: writes on every node are readable on every
//! node, a node killed with SIGKILL in the middle of a stream of mutations loses nothing that
//! was acknowledged, and a node partitioned away by a TCP proxy keeps accepting writes while
//! the majority keeps committing, then everything converges once the partition heals.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::proxy::Proxy;
use support::{cell_of, exo, ok, store_put, Daemon, TestNode};

/// Every entity id a query returns on the node of `dir`.
fn ids(dir: &Path, query: &str) -> BTreeSet<String> {
    ok(dir, &["store", "query", "--json", "--limit", "1000", query])
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Waits until `query` returns exactly `expected` on every node.
fn wait_everywhere(
    nodes: &[TestNode],
    query: &str,
    expected: &BTreeSet<String>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    for node in nodes {
        loop {
            let found = ids(&node.dir, query);
            if &found == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "`{query}` on {}: {} found, {} expected; missing {:?}, extra {:?}",
                node.dir.display(),
                found.len(),
                expected.len(),
                expected.difference(&found).collect::<Vec<_>>(),
                found.difference(expected).collect::<Vec<_>>(),
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

fn chain_info(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(dir, &["cell", "chain", "info", "--json"])).unwrap()
}

/// Waits until every node of `nodes` has committed everything (no pending operation) at one
/// and the same height, and returns that height.
fn wait_committed_alike(nodes: &[&TestNode], timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let infos: Vec<serde_json::Value> = nodes.iter().map(|n| chain_info(&n.dir)).collect();
        let settled = infos.iter().all(|i| i["pending_operations"] == 0);
        let same = infos
            .windows(2)
            .all(|w| w[0]["last_block"] == w[1]["last_block"]);
        if settled && same {
            return infos[0]["height"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "chains did not settle alike in {timeout:?}: {infos:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn start_all(nodes: &[TestNode]) -> Vec<Daemon> {
    let daemons: Vec<Daemon> = nodes.iter().map(|n| Daemon::start(&n.dir)).collect();
    for (i, daemon) in daemons.iter().enumerate() {
        for j in (0..nodes.len()).filter(|j| *j != i) {
            daemon.wait_log(&format!("peer up: `n{j}`"), Duration::from_secs(20));
        }
    }
    daemons
}

fn kill(daemon: Daemon) {
    Command::new("kill")
        .arg("-KILL")
        .arg(daemon.pid().to_string())
        .status()
        .unwrap();
    drop(daemon);
}

#[test]
fn writes_on_every_node_are_readable_on_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 3);
    let daemons = start_all(&nodes);
    let mut written = BTreeSet::new();
    for round in 0..3 {
        for (i, node) in nodes.iter().enumerate() {
            written.insert(store_put(
                &node.dir,
                &[
                    "new",
                    "task",
                    &format!("title=task {round} from n{i}"),
                    "done=false",
                ],
            ));
        }
    }
    wait_everywhere(&nodes, "type:task", &written, Duration::from_secs(30));
    // An update and a delete on one node reach the others too.
    let first = written.iter().next().unwrap().clone();
    ok(&nodes[2].dir, &["store", "delete", &first]);
    written.remove(&first);
    wait_everywhere(&nodes, "type:task", &written, Duration::from_secs(30));
    wait_committed_alike(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(30));
    for daemon in daemons {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
}

/// Puts tasks on the node of `dir` until `stop`; returns the entity ids it acknowledged.
fn writer(
    dir: PathBuf,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut acknowledged = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let title = format!("title={tag} {i}");
            let run = exo(&dir, &["store", "put", "new", "task", &title]);
            if run.code == 0 {
                let entity = run.stdout.split_whitespace().next().unwrap().to_string();
                acknowledged.push(entity);
            }
            i += 1;
        }
        acknowledged
    })
}

#[test]
fn a_node_killed_mid_stream_loses_no_acknowledged_mutation() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 3);
    let mut daemons: Vec<Option<Daemon>> = start_all(&nodes).into_iter().map(Some).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = nodes
        .iter()
        .zip(["w0", "w1", "w2"])
        .map(|(node, tag)| writer(node.dir.clone(), tag, stop.clone()))
        .collect();
    thread::sleep(Duration::from_secs(2));
    // Node 2 dies without warning while every node is being written to.
    kill(daemons[2].take().unwrap());
    thread::sleep(Duration::from_secs(2));
    daemons[2] = Some(Daemon::start(&nodes[2].dir));
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = BTreeSet::new();
    for (i, handle) in writers.into_iter().enumerate() {
        let ids = handle.join().unwrap();
        assert!(!ids.is_empty(), "writer {i} had nothing acknowledged");
        acknowledged.extend(ids);
    }
    // Everything acknowledged, on any node, before or after the kill, is everywhere. A put
    // cut short by the kill may have become durable without its answer: every node then
    // shows it too.
    wait_committed_alike(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found = ids(&nodes[0].dir, "type:task");
        let missing: Vec<_> = acknowledged.difference(&found).collect();
        if missing.is_empty() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged but lost: {missing:?}"
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        found.len() <= acknowledged.len() + 1,
        "more than the one interrupted put"
    );
    wait_everywhere(&nodes, "type:task", &found, Duration::from_secs(60));
    for daemon in daemons.into_iter().flatten() {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
    for node in &nodes {
        ok(&node.dir, &["cell", "chain", "check"]);
    }
}

/// Routes every link of the cell through a proxy of its own: in node X's `cell.toml`, node
/// Y's address becomes proxy (X, Y), which forwards to Y. Returns the proxies by (X, Y).
fn route_through_proxies(nodes: &[TestNode], cell_id: &str) -> Vec<((usize, usize), Proxy)> {
    let mut proxies = Vec::new();
    for (x, node) in nodes.iter().enumerate() {
        let path = node.dir.join("cells").join(cell_id).join("cell.toml");
        let mut toml = fs::read_to_string(&path).unwrap();
        for (y, peer) in nodes.iter().enumerate().filter(|(y, _)| *y != x) {
            let proxy = Proxy::start(&peer.address);
            toml = toml.replace(
                &format!("\"{}\"", peer.address),
                &format!("\"{}\"", proxy.address),
            );
            proxies.push(((x, y), proxy));
        }
        fs::write(&path, toml).unwrap();
    }
    proxies
}

#[test]
fn a_partitioned_node_keeps_writing_and_everything_converges_after_healing() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell_id) = cell_of(tmp.path(), 3);
    let proxies = route_through_proxies(&nodes, &cell_id);
    let daemons = start_all(&nodes);
    let mut written = BTreeSet::new();
    for (i, node) in nodes.iter().enumerate() {
        written.insert(store_put(
            &node.dir,
            &["new", "task", &format!("title=before {i}")],
        ));
    }
    wait_everywhere(&nodes, "type:task", &written, Duration::from_secs(30));
    let majority = [&nodes[0], &nodes[1]];
    let height_before = wait_committed_alike(&majority, Duration::from_secs(30));

    // Node 2 is cut off from both others, both ways.
    let isolated = |link: &(usize, usize)| link.0 == 2 || link.1 == 2;
    for (_, proxy) in proxies.iter().filter(|(link, _)| isolated(link)) {
        proxy.cut();
    }
    daemons[0].wait_log("peer down: `n2`", Duration::from_secs(20));
    // The majority keeps committing; the isolated node keeps accepting writes.
    let mut majority_writes = BTreeSet::new();
    for i in 0..4 {
        majority_writes.insert(store_put(
            &nodes[i % 2].dir,
            &["new", "task", &format!("title=majority {i}")],
        ));
    }
    let mut isolated_writes = BTreeSet::new();
    for i in 0..3 {
        isolated_writes.insert(store_put(
            &nodes[2].dir,
            &["new", "task", &format!("title=alone {i}")],
        ));
    }
    let height_during = wait_committed_alike(&majority, Duration::from_secs(30));
    assert!(
        height_during > height_before,
        "the majority committed nothing while node 2 was away"
    );
    let seen_by_majority = ids(&nodes[0].dir, "type:task");
    assert!(majority_writes.is_subset(&seen_by_majority));
    assert!(
        seen_by_majority.is_disjoint(&isolated_writes),
        "the partition leaked"
    );
    let seen_alone = ids(&nodes[2].dir, "type:task");
    assert!(
        isolated_writes.is_subset(&seen_alone),
        "the isolated node lost its own writes"
    );
    assert!(
        chain_info(&nodes[2].dir)["pending_operations"]
            .as_u64()
            .unwrap()
            >= 3
    );

    // Healed: every write, from both sides, is everywhere and committed alike.
    for (_, proxy) in &proxies {
        proxy.heal();
    }
    written.extend(majority_writes);
    written.extend(isolated_writes);
    wait_everywhere(&nodes, "type:task", &written, Duration::from_secs(60));
    wait_committed_alike(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(60));
    for daemon in daemons {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
    }
    for node in &nodes {
        ok(&node.dir, &["cell", "chain", "check"]);
    }
}

fn status(dir: &Path) -> serde_json::Value {
    let list: serde_json::Value = serde_json::from_str(&ok(dir, &["status", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    list[0].clone()
}

#[test]
fn status_reports_roles_chain_peers_and_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 2);
    // Without a daemon: the files speak.
    let offline = status(&nodes[0].dir);
    assert_eq!(offline["daemon"], "not running", "{offline}");
    assert_eq!(offline["chain"]["height"], 0, "{offline}");
    assert_eq!(
        offline["roles"],
        serde_json::json!(["chain", "store", "app-host"])
    );
    let text = ok(&nodes[0].dir, &["status"]);
    assert!(text.contains("daemon  not running"), "{text}");

    let mut daemons = start_all(&nodes);
    let entity = store_put(&nodes[0].dir, &["new", "task", "title=status"]);
    wait_everywhere(
        &nodes,
        "type:task",
        &BTreeSet::from([entity]),
        Duration::from_secs(30),
    );
    let height = wait_committed_alike(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(30));
    let live = status(&nodes[0].dir);
    assert_eq!(live["daemon"], "running", "{live}");
    assert_eq!(live["chain"]["state"], "running", "{live}");
    assert_eq!(live["chain"]["height"], height, "{live}");
    assert_eq!(live["chain"]["quorum"], 2, "{live}");
    assert_eq!(live["store"]["state"], "ready", "{live}");
    assert_eq!(live["store"]["entities"], 1, "{live}");
    let peer = &live["peers"][0];
    assert_eq!(peer["name"], "n1", "{live}");
    assert_eq!(peer["id"], nodes[1].id.as_str(), "{live}");
    assert_eq!(peer["connected"], true, "{live}");
    assert!(peer["last_seen_us"].as_u64().is_some(), "{live}");
    // The peer's announced height catches up with ours (it is broadcast periodically).
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&nodes[0].dir)["peers"][0]["height"] != height {
        assert!(Instant::now() < deadline, "{}", status(&nodes[0].dir));
        thread::sleep(Duration::from_millis(200));
    }
    let text = ok(&nodes[0].dir, &["status"]);
    assert!(text.contains("store   ready, 1 entities"), "{text}");
    assert!(text.contains(" n1 ") && text.contains(" up "), "{text}");

    // The other node stops: it is reported down, with when it was last seen and why.
    let (clean, log) = daemons.pop().unwrap().stop();
    assert!(clean, "{log}");
    daemons[0].wait_log("peer down: `n1`", Duration::from_secs(20));
    let live = status(&nodes[0].dir);
    let peer = &live["peers"][0];
    assert_eq!(peer["connected"], false, "{live}");
    assert!(peer["last_seen_us"].as_u64().is_some(), "{live}");
    assert!(!peer["error"].as_str().unwrap().is_empty(), "{live}");
}

#[test]
fn a_copied_node_directory_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 2);
    // The directory of n1 copied to "another machine": same key, its own port.
    let clone = tmp.path().join("node1-copy");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&nodes[1].dir)
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success());
    let port = support::free_port();
    ok(
        &clone,
        &["config", "set", "listen", &format!("127.0.0.1:{port}")],
    );
    let daemons = start_all(&nodes);
    // The copy shows up once the pair's link is settled (younger links may be dialing races).
    thread::sleep(Duration::from_secs(6));
    let copy = Daemon::start(&clone);
    let needle = "two nodes share one node key";
    // n0 refuses the second connection with n1's key (after the copy's fallback dial at the
    // latest) and the copy is told why.
    daemons[0].wait_log(needle, Duration::from_secs(40));
    copy.wait_log(needle, Duration::from_secs(10));
    // The original pair still works.
    let entity = store_put(&nodes[1].dir, &["new", "task", "title=still linked"]);
    wait_everywhere(
        &nodes,
        "type:task",
        &BTreeSet::from([entity]),
        Duration::from_secs(30),
    );
    let (clean, log) = copy.stop();
    assert!(clean, "{log}");
}
