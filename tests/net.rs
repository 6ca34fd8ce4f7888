//! Nodes of a cell on loopback, each a real `exo daemon` process: links come up, `exo cell
//! ping` reports them, a stopped node is reported unreachable and relinks when it returns.

mod support;

use std::time::Duration;

use support::{cell_of, exo, ok, Daemon};

fn ping_json(dir: &std::path::Path) -> (i32, serde_json::Value) {
    let run = exo(dir, &["cell", "ping", "--json"]);
    let value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr));
    (run.code, value)
}

#[test]
fn three_daemons_link_and_ping_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 3);
    let daemons: Vec<Daemon> = nodes.iter().map(|n| Daemon::start(&n.dir)).collect();
    for (i, daemon) in daemons.iter().enumerate() {
        for (j, node) in nodes.iter().enumerate() {
            if i != j {
                daemon.wait_log(&format!("peer up: `n{j}`"), Duration::from_secs(15));
                let _ = node;
            }
        }
    }
    for node in &nodes {
        let (code, peers) = ping_json(&node.dir);
        assert_eq!(code, 0, "{peers}");
        let peers = peers.as_array().unwrap();
        assert_eq!(peers.len(), 2);
        for peer in peers {
            assert_eq!(peer["reachable"], true, "{peer}");
            assert!(peer["rtt_ms"].as_f64().unwrap() > 0.0);
            assert_ne!(peer["id"], node.id.as_str());
        }
    }
    let table = ok(&nodes[0].dir, &["cell", "ping"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.ends_with(" ok")).count(),
        2,
        "{table}"
    );

    // Exactly one connection per pair: each daemon logs each peer up once.
    for daemon in &daemons {
        let log = daemon.log();
        assert_eq!(log.matches("peer up:").count(), 2, "{log}");
    }
    for daemon in daemons {
        let (clean, log) = daemon.stop();
        assert!(clean, "{log}");
        assert!(log.contains("stopped"), "{log}");
    }
}

#[test]
fn a_stopped_node_is_unreachable_then_relinks() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 2);
    let first = Daemon::start(&nodes[0].dir);
    let second = Daemon::start(&nodes[1].dir);
    first.wait_log("peer up: `n1`", Duration::from_secs(15));

    let (clean, _) = second.stop();
    assert!(clean);
    first.wait_log("peer down: `n1`", Duration::from_secs(10));
    assert!(
        first.log().contains("closed by the peer: shutting down"),
        "{}",
        first.log()
    );
    let run = exo(&nodes[0].dir, &["cell", "ping"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("unreachable"), "{}", run.stdout);
    assert!(
        run.stderr.contains("1 of 1 node(s) unreachable"),
        "{}",
        run.stderr
    );

    let second = Daemon::start(&nodes[1].dir);
    second.wait_log("peer up: `n0`", Duration::from_secs(40));
    let (code, peers) = ping_json(&nodes[0].dir);
    assert_eq!(code, 0, "{peers}");
    drop(second);
    drop(first);
}

#[test]
fn ping_without_a_local_daemon_dials_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 2);
    let _second = Daemon::start(&nodes[1].dir);
    let run = exo(&nodes[0].dir, &["cell", "ping"]);
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("dialing the other nodes directly"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains(" ok"), "{}", run.stdout);
}

#[test]
fn a_single_node_cell_has_nothing_to_ping() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let out = ok(&nodes[0].dir, &["cell", "ping"]);
    assert!(out.contains("no other node"), "{out}");
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let _taken = std::net::TcpListener::bind(&nodes[0].address).unwrap();
    let run = exo(&nodes[0].dir, &["daemon"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cannot listen on"), "{}", run.stderr);
}

#[test]
fn one_daemon_serves_several_cells_with_separate_members() {
    use exocore_protocol::client::Client;
    use exocore_protocol::identity::{Keypair, PublicKey};

    let tmp = tempfile::tempdir().unwrap();
    let (nodes, home) = cell_of(tmp.path(), 1);
    let dir = &nodes[0].dir;
    ok(dir, &["cell", "init", "--name", "work"]);
    let cells: serde_json::Value =
        serde_json::from_str(&ok(dir, &["cell", "list", "--json"])).unwrap();
    let work = cells
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "work")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (home_member, work_member) = (Keypair::generate(), Keypair::generate());
    support::add_client(&nodes, &home, "phone", &home_member.public().to_string());
    support::add_client(&nodes, &work, "laptop", &work_member.public().to_string());
    let daemon = Daemon::start(dir);
    let node: PublicKey = nodes[0].id.parse().unwrap();
    let address = nodes[0].address.as_str();

    let ping = |member: &Keypair, cell: &str| {
        let cell: PublicKey = cell.parse().unwrap();
        smol::block_on(async {
            let mut client = Client::connect(address, member, cell, &[node]).await?;
            client.ping().await
        })
    };
    assert!(ping(&home_member, &home).is_ok());
    assert!(ping(&work_member, &work).is_ok());
    // Membership is per cell: a member of one cell is a stranger to the other.
    assert!(ping(&home_member, &work).is_err());
    assert!(ping(&work_member, &home).is_err());
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    assert_eq!(log.matches("not a member").count(), 2, "{log}");
}

#[test]
fn the_other_side_dials_when_the_preferred_side_cannot() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell_id) = cell_of(tmp.path(), 2);
    // The lower key dials by default; give it a wrong address for the other node, so only
    // the higher key's fallback dial (after its grace period) can form the link.
    let (low, high) = if nodes[0]
        .id
        .parse::<exocore_protocol::identity::PublicKey>()
        .unwrap()
        .to_bytes()
        < nodes[1]
            .id
            .parse::<exocore_protocol::identity::PublicKey>()
            .unwrap()
            .to_bytes()
    {
        (&nodes[0], &nodes[1])
    } else {
        (&nodes[1], &nodes[0])
    };
    let path = low.dir.join("cells").join(&cell_id).join("cell.toml");
    let wrong = format!("127.0.0.1:{}", support::free_port());
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&high.address, &wrong);
    std::fs::write(&path, toml).unwrap();

    let low_daemon = Daemon::start(&low.dir);
    let high_daemon = Daemon::start(&high.dir);
    low_daemon.wait_log("cannot reach", Duration::from_secs(10));
    high_daemon.wait_log("peer up:", Duration::from_secs(30));
    assert!(
        high_daemon.log().contains("outbound"),
        "{}",
        high_daemon.log()
    );
    let (code, peers) = ping_json(&low.dir);
    assert_eq!(code, 0, "{peers}");
}
