//! `writers`: mutations through a running daemon, the real `exo` binary on a fresh one-node
//! cell in a temporary folder, over the wire protocol on loopback. `W` writers (1, then 8),
//! each on its own connection, each in a loop: send a `Mutate` (a new note), wait for
//! `Mutated` (the daemon answers once the entry is durable in the chain's pending store and
//! folded into the index: read your writes), then query `op:ID` and check the note is found.
//!
//! Figures per case: mutations acknowledged per second (all writers together), the request →
//! acknowledged latency p50 / p99 (which is request → visible: the daemon acknowledges only
//! what a query sees), the acknowledged → found query latency, and how many were not found
//! right after their acknowledgement (must be 0).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exo::config::NodeDir;
use exo::store::{Entry, Mutation, Trait};
use exocore_protocol::client::Client;
use exocore_protocol::envelope::Service;
use exocore_protocol::identity::{Keypair, PublicKey};
use exocore_protocol::store::{StoreRequest, StoreResponse};
use exocore_protocol::wire;
use serde_json::{json, Value};

use super::summary;

/// The `exo` binary next to this example's folder (`target/release/exo`), or `$EXO_BIN`.
pub fn exo_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("EXO_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let release = exe.parent()?.parent()?;
    let exo = release.join("exo");
    exo.exists().then_some(exo)
}

fn exo(binary: &Path, dir: &Path, args: &[&str]) {
    let status = Command::new(binary)
        .arg("-d")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run exo");
    assert!(status.success(), "exo {args:?} failed");
}

/// A daemon of a fresh one-node cell; stopped with SIGINT when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(binary: &Path, dir: &Path) -> Daemon {
        let log = dir.join("daemon.log");
        let child = Command::new(binary)
            .arg("-d")
            .arg(dir)
            .arg("daemon")
            .env("EXO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("daemon log"))
            .spawn()
            .expect("start the daemon");
        let daemon = Daemon { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !daemon.log_text().contains("entity index built") {
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

struct Target {
    address: String,
    keypair: Keypair,
    node: PublicKey,
    cell: PublicKey,
}

/// One writer's loop: `count` notes, each acknowledged then looked up by its operation id.
/// Returns (request → acknowledged ms, acknowledged → found ms, not found).
fn write(
    target: &Target,
    writer: usize,
    count: usize,
    deadline: Instant,
) -> (Vec<f64>, Vec<f64>, usize) {
    smol::block_on(async {
        let mut client = Client::connect(
            target.address.as_str(),
            &target.keypair,
            target.cell,
            &[target.node],
        )
        .await
        .expect("connect to the daemon");
        let (mut acked, mut found, mut missing) = (Vec::new(), Vec::new(), 0);
        for i in 0..count {
            let entry = Entry::Mutations(vec![Mutation::PutTrait {
                entity: format!("w{writer}-n{i}"),
                value: Trait::new("n", "note")
                    .with("title", format!("Writer {writer}, note {i}"))
                    .with("body", "Written by the store benchmark through the daemon."),
            }])
            .to_bytes();
            let request = wire::encode(&StoreRequest::Mutate { entry }).expect("encode");
            let t0 = Instant::now();
            let answer = client
                .request(Service::Store, request)
                .await
                .expect("mutate");
            let t1 = Instant::now();
            let Ok(StoreResponse::Mutated { operation, .. }) = wire::decode(&answer) else {
                panic!("not Mutated");
            };
            let text = format!("op:{}", exo::chain::OperationId::from_bytes(&operation));
            let query = wire::encode(&StoreRequest::QueryText { text }).expect("encode");
            let answer = client.request(Service::Store, query).await.expect("query");
            let t2 = Instant::now();
            match wire::decode(&answer) {
                Ok(StoreResponse::Results { total: 1, .. }) => {}
                _ => missing += 1,
            }
            acked.push((t1 - t0).as_secs_f64() * 1000.0);
            found.push((t2 - t1).as_secs_f64() * 1000.0);
            if Instant::now() > deadline {
                break;
            }
        }
        let _ = client.close("done").await;
        (acked, found, missing)
    })
}

/// Runs the 1-writer and 8-writer cases against a fresh daemon.
pub fn measure(binary: &Path, quick: bool, deadline: Duration) -> Value {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("node");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    exo(
        binary,
        &dir,
        &["node", "init", "--name", "bench", "--listen", &address],
    );
    exo(binary, &dir, &["cell", "init", "--name", "home"]);
    let node_dir = NodeDir::new(&dir);
    let node = node_dir.load_node().expect("the node");
    let cell = node_dir.select_cell(None).expect("the cell");
    let target = Target {
        address,
        keypair: node.keypair.clone(),
        node: node.config.id,
        cell: cell.config.id,
    };
    let daemon = Daemon::start(binary, &dir);
    let per_case = if quick { 200 } else { 800 };
    let mut cases = Vec::new();
    for writers in [1usize, 8] {
        let started = Instant::now();
        let until = started + deadline;
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let target = &target;
                    let count = per_case / writers;
                    scope.spawn(move || write(target, w + 100 * writers, count, until))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("writer"))
                .collect()
        });
        let seconds = started.elapsed().as_secs_f64();
        let (mut acked, mut found, mut missing) = (Vec::new(), Vec::new(), 0);
        for (a, f, m) in results {
            acked.extend(a);
            found.extend(f);
            missing += m;
        }
        let mutations = acked.len();
        cases.push(json!({
            "writers": writers,
            "mutations": mutations,
            "seconds": seconds,
            "mutations_per_s": mutations as f64 / seconds,
            "acknowledged": summary(acked),
            "found_after_ack": summary(found),
            "not_found_after_ack": missing,
        }));
    }
    drop(daemon);
    json!({ "cases": cases, "binary": binary.display().to_string() })
}
