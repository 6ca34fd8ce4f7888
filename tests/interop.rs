//! The Python client of `tests/interop/exo_client.py`, written from `spec/protocol.md` alone,
//! against a real `exo daemon`: if it needs anything the spec does not say, the spec is
//! incomplete. Needs `pip install noiseprotocol blake3` (`.ci/run` installs them).

mod support;

use std::path::Path;
use std::process::Command;

use exocore_protocol::identity::Keypair;
use support::{add_client, cell_of, Daemon};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/exo_client.py");
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/protocol");

fn python(args: &[&str]) -> (bool, String) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .arg(CLIENT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("No module named 'noise'"),
        "the interop test needs the Python package noiseprotocol: pip install noiseprotocol blake3"
    );
    (output.status.success(), text)
}

#[test]
fn python_client_reproduces_the_test_vectors() {
    assert!(Path::new(VECTORS).join("inputs.txt").exists());
    let (ok, out) = python(&["--check-vectors", VECTORS]);
    assert!(ok, "{out}");
    assert!(out.contains("vectors ok"), "{out}");
}

#[test]
fn python_client_pings_a_running_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell_id) = cell_of(tmp.path(), 1);
    let member = Keypair::generate();
    add_client(&nodes, &cell_id, "script", &member.public().to_string());
    let daemon = Daemon::start(&nodes[0].dir);
    let (address, node_id) = (nodes[0].address.as_str(), nodes[0].id.as_str());
    let secret = member.secret_text();

    let (ok, out) = python(&[address, &secret, &cell_id, node_id]);
    assert!(ok && out.starts_with("ping ok "), "{out}\n{}", daemon.log());

    // A stranger is refused; so is a cell the daemon does not serve.
    let stranger = Keypair::generate().secret_text();
    let (ok, out) = python(&[address, &stranger, &cell_id, node_id]);
    assert!(!ok, "a stranger was answered: {out}");
    let other_cell = Keypair::generate().public().to_string();
    let (ok, out) = python(&[address, &secret, &other_cell, node_id]);
    assert!(!ok && out.contains("cell"), "{out}");

    // And the daemon still serves the member.
    let (ok, out) = python(&[address, &secret, &cell_id, node_id]);
    assert!(ok, "{out}");
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    assert!(log.contains("not a member"), "{log}");
}
