//! Replicated membership with the real binary and real daemons on loopback: a node is added
//! to a running two-node cell (every node learns it without a restart, the new node syncs the
//! chain and its writes are accepted), a node that is down is removed and refused when it
//! comes back, and a role change moves the quorum.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{cell_of, fails, free_port, ok, store_put, store_query_ids, Daemon};

fn chain_info(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(dir, &["cell", "chain", "info", "--json"])).unwrap()
}

fn cell_toml(dir: &Path, cell: &str) -> String {
    fs::read_to_string(dir.join("cells").join(cell).join("cell.toml")).unwrap()
}

/// Waits until `check` holds, or panics with `what`.
fn wait(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nodes_are_added_removed_and_change_roles_without_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell) = cell_of(tmp.path(), 2);
    let d0 = Daemon::start(&nodes[0].dir);
    let d1 = Daemon::start(&nodes[1].dir);
    d0.wait_log("peer up: `n1`", Duration::from_secs(15));
    assert_eq!(chain_info(&nodes[0].dir)["quorum"], 2);
    assert_eq!(chain_info(&nodes[0].dir)["chain_nodes"], 2);

    // A third node, set up on its own.
    let dir2 = tmp.path().join("node2");
    let address2 = format!("127.0.0.1:{}", free_port());
    ok(
        &dir2,
        &[
            "node",
            "init",
            "--name",
            "n2",
            "--listen",
            &address2,
            "--address",
            &address2,
        ],
    );
    let id2 = ok(&dir2, &["config", "get", "id"]).trim().to_string();

    // Bad input changes nothing.
    let add = ["cell", "node", "add", "--id", &id2, "--name", "n2"];
    let before = cell_toml(&nodes[0].dir, &cell);
    let roles_error = fails(
        &nodes[0].dir,
        &[&add[..], &["--roles", "chain,boss"]].concat(),
        2,
    );
    assert!(roles_error.contains("unknown role `boss`"), "{roles_error}");
    assert_eq!(cell_toml(&nodes[0].dir, &cell), before);

    // Admitted through n0's daemon: returns once committed, with cell.toml rewritten.
    let options = ["--address", &address2, "--roles", "chain,store"];
    let out = ok(&nodes[0].dir, &[&add[..], &options[..]].concat());
    assert!(out.contains("membership version 1"), "{out}");
    assert!(out.contains("3 chain node(s), quorum 2"), "{out}");
    let info = chain_info(&nodes[0].dir);
    assert_eq!(info["membership_version"], 1);
    assert_eq!(info["chain_nodes"], 3);
    // n1 learned it from the chain, without a restart.
    wait("n1's cell.toml lists n2", Duration::from_secs(15), || {
        cell_toml(&nodes[1].dir, &cell).contains(&id2)
    });
    d1.wait_log("membership version 1 committed", Duration::from_secs(5));

    // n2 installs the cell (cell.toml as returned, the cell key for the store role), starts
    // with no chain, fetches it and writes.
    let cell_dir2 = dir2.join("cells").join(&cell);
    fs::create_dir_all(&cell_dir2).unwrap();
    let cell_dir0 = nodes[0].dir.join("cells").join(&cell);
    fs::copy(cell_dir0.join("cell.toml"), cell_dir2.join("cell.toml")).unwrap();
    fs::copy(cell_dir0.join("cell.key"), cell_dir2.join("cell.key")).unwrap();
    let d2 = Daemon::start(&dir2);
    d2.wait_log("genesis received", Duration::from_secs(15));
    d2.wait_log("membership version 1 committed", Duration::from_secs(15));
    let from_n2 = store_put(&dir2, &["new", "note", "title=written on the new node"]);
    wait("n0 sees n2's write", Duration::from_secs(20), || {
        store_query_ids(&nodes[0].dir, "type:note") == vec![from_n2.clone()]
    });
    // The new node's link is up on n0 without a restart.
    assert!(d0.log().contains("peer up: `n2`"), "{}", d0.log());

    // n1 goes down, then is removed: n0 and n2 are a quorum of three.
    let (clean, _) = d1.stop();
    assert!(clean);
    let refused = fails(&nodes[0].dir, &["cell", "node", "remove", "n0", "--yes"], 2);
    assert!(refused.contains("is this node"), "{refused}");
    let out = ok(&nodes[0].dir, &["cell", "node", "remove", "n1", "--yes"]);
    assert!(out.contains("membership version 2"), "{out}");
    assert!(out.contains("2 chain node(s), quorum 2"), "{out}");
    wait("n2's cell.toml drops n1", Duration::from_secs(15), || {
        let list: serde_json::Value =
            serde_json::from_str(&ok(&dir2, &["cell", "node", "list", "--json"])).unwrap();
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        cell_toml(&dir2, &cell).contains("version = 2") && !ids.contains(&nodes[1].id.as_str())
    });

    // n1 comes back with its old cell.toml: refused at the handshake, and it says why.
    let d1 = Daemon::start(&nodes[1].dir);
    d1.wait_log(
        "does not take this node as a member of cell `home`",
        Duration::from_secs(30),
    );
    wait("n0 logs the refusal", Duration::from_secs(15), || {
        d0.log().contains("is not a member of the cell")
    });
    drop(d1);

    // n2 loses the chain role: n0 is the only chain node, a quorum of one.
    let out = ok(&nodes[0].dir, &["cell", "node", "roles", "n2", "store"]);
    assert!(out.contains("1 chain node(s), quorum 1"), "{out}");
    let (clean, _) = d2.stop();
    assert!(clean);
    let height = chain_info(&nodes[0].dir)["height"].as_u64().unwrap();
    let alone = store_put(&nodes[0].dir, &["new", "note", "title=committed alone"]);
    wait("n0 commits alone", Duration::from_secs(15), || {
        let info = chain_info(&nodes[0].dir);
        info["pending_operations"] == 0 && info["height"].as_u64().unwrap() > height
    });
    assert!(store_query_ids(&nodes[0].dir, "alone").contains(&alone));
    let info = chain_info(&nodes[0].dir);
    assert_eq!(info["membership_version"], 3);
    assert_eq!(info["quorum"], 1);
    ok(&nodes[0].dir, &["cell", "chain", "check"]);
    let (clean, log) = d0.stop();
    assert!(clean, "{log}");
}

#[test]
fn membership_changes_need_the_cell_key_and_a_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell) = cell_of(tmp.path(), 2);
    let other = tmp.path().join("other");
    ok(&other, &["node", "init", "--name", "other"]);
    let id = ok(&other, &["config", "get", "id"]).trim().to_string();
    let add = ["cell", "node", "add", "--id", &id, "--name", "other"];
    let no_daemon = fails(&nodes[0].dir, &add, 1);
    assert!(
        no_daemon.contains("start it with `exo daemon`"),
        "{no_daemon}"
    );
    fs::remove_file(nodes[1].dir.join("cells").join(&cell).join("cell.key")).unwrap();
    let no_key = fails(&nodes[1].dir, &add, 1);
    assert!(no_key.contains("does not hold the secret key"), "{no_key}");
    let unknown = fails(
        &nodes[0].dir,
        &["cell", "node", "remove", "ghost", "--yes"],
        2,
    );
    assert!(unknown.contains("no node `ghost`"), "{unknown}");
    let no_yes = fails(&nodes[0].dir, &["cell", "node", "remove", "n1"], 2);
    assert!(no_yes.contains("add --yes"), "{no_yes}");
}

#[test]
fn a_running_node_that_is_removed_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell) = cell_of(tmp.path(), 3);
    let daemons: Vec<Daemon> = nodes.iter().map(|n| Daemon::start(&n.dir)).collect();
    daemons[0].wait_log("peer up: `n1`", Duration::from_secs(15));
    daemons[0].wait_log("peer up: `n2`", Duration::from_secs(15));
    let out = ok(&nodes[0].dir, &["cell", "node", "remove", "n2", "--yes"]);
    assert!(out.contains("2 chain node(s), quorum 2"), "{out}");
    // The others close its links (unless it closed them first, having learned its removal
    // from the chain); if the links closed before the block reached it, it is refused when it
    // dials again.
    wait("the link n0-n2 closes", Duration::from_secs(15), || {
        daemons[0].log().contains("it is no longer a member")
            || daemons[2]
                .log()
                .contains("this node was removed from the cell")
    });
    wait("n2 knows", Duration::from_secs(30), || {
        let log = daemons[2].log();
        log.contains("this node was removed from the cell")
            || log.contains("does not take this node as a member")
    });
    // n0 and n1 go on committing without it.
    let before = chain_info(&nodes[0].dir)["height"].as_u64().unwrap();
    let id = store_put(&nodes[1].dir, &["new", "note", "title=after n2 left"]);
    wait("n0 sees n1's write", Duration::from_secs(20), || {
        store_query_ids(&nodes[0].dir, "left") == vec![id.clone()]
            && chain_info(&nodes[0].dir)["height"].as_u64().unwrap() > before
    });
    // n1 learned the change without a restart too.
    assert_eq!(
        chain_info(&nodes[1].dir)["membership_version"],
        1,
        "{}",
        cell_toml(&nodes[1].dir, &cell)
    );
}
