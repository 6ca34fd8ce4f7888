//! Multi-node figures for `make bench` (issue 6, "Performance"), printed as one JSON object.
//! Three real `exo daemon` processes (the release binary) on loopback ports, one cell:
//!
//! - `idle`: resident memory (VmRSS) of one daemon with its two links up, nothing written;
//! - `replicated`: store mutations per second acknowledged by the three daemons together, from
//!   `WRITERS` concurrent clients spread over the nodes (each a connection with that node's
//!   key, each mutation one task put as `exo store put` sends it), for a fixed time;
//! - `commit_latency`: one mutation at a time on node 0: from its acknowledgement (durable in
//!   the pending store and visible to queries) to the entity reported as committed in a block
//!   (`Get` until `pending` is false), p50 and p99;
//! - `loaded`: the generated corpus of `examples/store_bench/generate.rs` (100,000 entities,
//!   20,000 with `--quick`) written as committed blocks into nodes 0 and 1 (signed by both, a
//!   quorum of three) while they are stopped; daemon start until its index holds every entity;
//!   resident memory of that daemon then;
//! - `catch_up`: node 2, whose chain and index folders were deleted, started against the two
//!   others: time until its chain reaches their tip, and until its index holds every entity.
//!
//! Everything runs in a temporary folder under `$TMPDIR` (else `/tmp`). The binary is
//! `$EXO_BIN`, else `$CARGO_TARGET_DIR/release/exo`, else `target/release/exo`.
//!
//! ```text
//! cargo build --release --bin exo --example cluster_bench && target/release/examples/cluster_bench
//! ```

#[allow(dead_code)]
#[path = "../store_bench/generate.rs"]
mod generate;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exo::chain::{chain_dir, node_tag, Block, ChainStore, EntryKey, Operation, OperationId};
use exo::config::NodeDir;
use exo::store::{Entry, Mutation, Trait};
use exocore_protocol::admin::{AdminRequest, AdminResponse, CellStatus};
use exocore_protocol::client::Client;
use exocore_protocol::envelope::Service;
use exocore_protocol::identity::{Keypair, PublicKey};
use exocore_protocol::store::{StoreRequest, StoreResponse};
use exocore_protocol::wire;
use serde_json::{json, Value};

const WRITERS: usize = 8;
/// Operations per generated block: well under the block limits for the corpus's sizes.
const BLOCK_OPERATIONS: usize = 500;

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("cluster_bench: {message}");
    std::process::exit(1)
}

fn exo_binary() -> PathBuf {
    if let Ok(path) = std::env::var("EXO_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = Path::new(&target).join("release").join("exo");
    std::path::absolute(&path).unwrap_or(path)
}

/// Runs `exo -d DIR ARGS`; its stdout, or the bench stops with its stderr.
fn exo(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(exo_binary())
        .arg("-d")
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| fail(format!("cannot run {}: {e}", exo_binary().display())));
    if !out.status.success() {
        fail(format!(
            "exo {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_address() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .unwrap_or_else(|e| fail(format!("no free port: {e}")))
}

/// One node of the bench cell.
struct BenchNode {
    dir: PathBuf,
    address: String,
    keypair: Keypair,
    daemon: Option<Child>,
}

impl BenchNode {
    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("daemon.log"))
            .unwrap_or_else(|e| fail(format!("cannot create a log file: {e}")));
        let child = Command::new(exo_binary())
            .arg("-d")
            .arg(&self.dir)
            .arg("daemon")
            .env("EXO_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| fail(format!("cannot start a daemon: {e}")));
        self.daemon = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// VmRSS and RssAnon (the part that is not mapped files: LMDB's and tantivy's mapped
    /// files are page cache the kernel can reclaim), in KiB, as JSON.
    fn memory(&self) -> Value {
        let Some(child) = &self.daemon else {
            return Value::Null;
        };
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        json!({"rss_kib": field("VmRSS:"), "anon_kib": field("RssAnon:"), "file_kib": field("RssFile:")})
    }

    async fn client(&self, cell: PublicKey) -> Result<Client, String> {
        Client::connect(
            self.address.as_str(),
            &self.keypair,
            cell,
            &[self.keypair.public()],
        )
        .await
        .map_err(|e| e.to_string())
    }
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Three nodes in one cell, as `tests/support::cell_of` lays them out.
fn cell_of_three(root: &Path) -> (Vec<BenchNode>, PublicKey, PathBuf) {
    let mut nodes = Vec::new();
    for i in 0..3 {
        let dir = root.join(format!("node{i}"));
        let address = free_address();
        exo(
            &dir,
            &[
                "node",
                "init",
                "--name",
                &format!("n{i}"),
                "--listen",
                &address,
                "--address",
                &address,
            ],
        );
        // Room for the 100,000-entity corpus (the default map is sized for small boards).
        exo(&dir, &["config", "set", "chain.map_size_mb", "2048"]);
        let keypair = NodeDir::new(&dir)
            .load_node_keypair()
            .unwrap_or_else(|e| fail(e));
        nodes.push(BenchNode {
            dir,
            address,
            keypair,
            daemon: None,
        });
    }
    exo(&nodes[0].dir, &["cell", "init", "--name", "home"]);
    let cell = NodeDir::new(&nodes[0].dir)
        .cells()
        .ok()
        .and_then(|c| c.into_iter().next())
        .unwrap_or_else(|| fail("no cell was created"));
    let mut toml = std::fs::read_to_string(cell.dir.join("cell.toml")).unwrap_or_default();
    for (i, node) in nodes.iter().enumerate().skip(1) {
        toml.push_str(&format!(
            "\n[[nodes]]\nid = \"{}\"\nname = \"n{i}\"\naddresses = [\"{}\"]\nroles = [\"chain\", \"store\", \"app-host\"]\n",
            node.keypair.public(),
            node.address
        ));
    }
    let id = cell.config.id.to_string();
    let archive = root.join("genesis.exochain");
    exo(
        &nodes[0].dir,
        &["cell", "chain", "export", &archive.to_string_lossy()],
    );
    for node in &nodes {
        let dir = node.dir.join("cells").join(&id);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(e));
        std::fs::write(dir.join("cell.toml"), &toml).unwrap_or_else(|e| fail(e));
        if dir != cell.dir {
            std::fs::copy(cell.dir.join("cell.key"), dir.join("cell.key"))
                .unwrap_or_else(|e| fail(e));
            exo(
                &node.dir,
                &["cell", "chain", "import", &archive.to_string_lossy()],
            );
        }
    }
    (nodes, cell.config.id, PathBuf::from(id))
}

async fn status(node: &BenchNode, cell: PublicKey) -> Result<CellStatus, String> {
    let mut client = node.client(cell).await?;
    let payload = wire::encode(&AdminRequest::Status).map_err(|e| e.to_string())?;
    let answer = client.request(Service::CellAdmin, payload).await;
    let _ = client.close("done").await;
    match wire::decode::<AdminResponse>(&answer.map_err(|e| e.to_string())?) {
        Ok(AdminResponse::Status(status)) => Ok(status),
        Ok(_) => Err("not a Status answer".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Polls `node`'s status until `done` holds; returns the seconds it took.
fn wait_status(
    node: &BenchNode,
    cell: PublicKey,
    timeout: Duration,
    what: &str,
    done: impl Fn(&CellStatus) -> bool,
) -> f64 {
    let started = Instant::now();
    loop {
        if let Ok(s) = smol::block_on(status(node, cell)) {
            if done(&s) {
                return started.elapsed().as_secs_f64();
            }
        }
        if started.elapsed() > timeout {
            fail(format!(
                "{} never {what} in {timeout:?}",
                node.dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

fn latency_json(mut values: Vec<f64>) -> Value {
    values.sort_by(f64::total_cmp);
    json!({
        "count": values.len(),
        "p50_ms": percentile(&values, 50.0),
        "p99_ms": percentile(&values, 99.0),
    })
}

/// A store mutation as `exo store put new task title=...` sends it.
fn task_entry(title: String) -> Vec<u8> {
    let entity = exo::store::value::generate_id();
    let task = Trait::new("task", "task")
        .with("title", title)
        .with("done", false);
    Entry::Mutations(vec![Mutation::PutTrait {
        entity,
        value: task,
    }])
    .to_bytes()
}

async fn mutate(client: &mut Client, title: String) -> Result<String, String> {
    let request = StoreRequest::Mutate {
        entry: task_entry(title),
    };
    let payload = wire::encode(&request).map_err(|e| e.to_string())?;
    let answer = client
        .request(Service::Store, payload)
        .await
        .map_err(|e| e.to_string())?;
    match wire::decode::<StoreResponse>(&answer).map_err(|e| e.to_string())? {
        StoreResponse::Mutated { entities, .. } => {
            entities.into_iter().next().ok_or("no entity".into())
        }
        _ => Err("not a Mutated answer".into()),
    }
}

async fn pending(client: &mut Client, entity: &str) -> Result<bool, String> {
    let payload = wire::encode(&StoreRequest::Get {
        entity: entity.to_string(),
    })
    .map_err(|e| e.to_string())?;
    let answer = client
        .request(Service::Store, payload)
        .await
        .map_err(|e| e.to_string())?;
    match wire::decode::<StoreResponse>(&answer).map_err(|e| e.to_string())? {
        StoreResponse::Entity {
            entity: Some(state),
        } => Ok(state.pending),
        _ => Err("entity not found".into()),
    }
}

fn replicated(nodes: &[BenchNode], cell: PublicKey, seconds: u64) -> Value {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    smol::block_on(async {
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let node = &nodes[w % nodes.len()];
            let mut client = node.client(cell).await.unwrap_or_else(|e| fail(e));
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            tasks.push(smol::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match mutate(&mut client, format!("writer {w} task {i}")).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 1;
                }
            }));
        }
        async_io::Timer::after(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let acknowledged = done.load(Ordering::Relaxed);
    json!({
        "writers": WRITERS,
        "seconds": elapsed,
        "acknowledged": acknowledged,
        "failed": failed.load(Ordering::Relaxed),
        "per_s": acknowledged as f64 / elapsed,
    })
}

fn commit_latency(node: &BenchNode, cell: PublicKey, samples: usize) -> Value {
    let latencies = smol::block_on(async {
        let mut client = node.client(cell).await.unwrap_or_else(|e| fail(e));
        let mut latencies = Vec::with_capacity(samples);
        for i in 0..samples {
            let entity = mutate(&mut client, format!("latency {i}"))
                .await
                .unwrap_or_else(|e| fail(e));
            let acknowledged = Instant::now();
            while pending(&mut client, &entity)
                .await
                .unwrap_or_else(|e| fail(e))
            {
                async_io::Timer::after(Duration::from_millis(1)).await;
            }
            latencies.push(acknowledged.elapsed().as_secs_f64() * 1000.0);
        }
        latencies
    });
    latency_json(latencies)
}

/// Writes the corpus as committed blocks, proposed by node 0 and signed by nodes 0 and 1,
/// on top of the chain both hold; returns the operations written.
fn write_corpus(nodes: &[BenchNode], cell_dir: &Path, cell: PublicKey, entities: usize) -> usize {
    let corpus = generate::generate(42, entities);
    let cell_keypair = NodeDir::new(&nodes[0].dir)
        .cells()
        .ok()
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.keypair)
        .unwrap_or_else(|| fail("node 0 lost the cell key"));
    let key = EntryKey::from_cell_keypair(&cell_keypair);
    let author = &nodes[0].keypair;
    let tag = node_tag(&author.public());
    let operations: Vec<Operation> = corpus
        .operations
        .iter()
        .map(|(id, plaintext)| {
            let id = OperationId {
                time_us: id.time_us,
                node: tag,
            };
            Operation::new_entry(&cell, &key, id, author, plaintext).unwrap_or_else(|e| fail(e))
        })
        .collect();
    let stores: Vec<ChainStore> = nodes[..2]
        .iter()
        .map(|n| {
            ChainStore::open(
                &chain_dir(&n.dir.join("cells").join(cell_dir)),
                &cell,
                2048 << 20,
            )
            .unwrap_or_else(|e| fail(e))
        })
        .collect();
    let mut previous = stores[0]
        .last_header()
        .ok()
        .flatten()
        .unwrap_or_else(|| fail("node 0 has no chain"));
    for chunk in operations.chunks(BLOCK_OPERATIONS) {
        let time = chunk.last().map(|op| op.id.time_us).unwrap_or(0);
        let mut block = Block::propose(&previous, &author.public(), time, chunk.to_vec())
            .unwrap_or_else(|e| fail(e));
        block.sign(&cell, &nodes[0].keypair);
        block.sign(&cell, &nodes[1].keypair);
        for store in &stores {
            store.append_block(&block).unwrap_or_else(|e| fail(e));
        }
        previous = block.header.clone();
    }
    operations.len()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let entities = if quick { 20_000 } else { 100_000 };
    let tmp = std::env::temp_dir().join(format!("exo-cluster-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (mut nodes, cell, cell_dir) = cell_of_three(&tmp);
    let started = Instant::now();
    for node in &mut nodes {
        node.start();
    }
    let linked = |s: &CellStatus| s.peers.iter().all(|p| p.connected);
    for node in &nodes {
        wait_status(node, cell, Duration::from_secs(30), "linked", linked);
    }
    let link_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let idle = nodes[0].memory();

    let replicated = replicated(&nodes, cell, if quick { 3 } else { 10 });
    let commit = commit_latency(&nodes[0], cell, if quick { 30 } else { 200 });
    // Everything committed alike before the daemons stop.
    let settled = |s: &CellStatus| s.chain.as_ref().is_some_and(|c| c.pending_operations == 0);
    for node in &nodes {
        wait_status(node, cell, Duration::from_secs(60), "settled", settled);
    }
    for node in &mut nodes {
        node.stop();
    }

    let generated = Instant::now();
    let operations = write_corpus(&nodes, &cell_dir, cell, entities);
    let write_s = generated.elapsed().as_secs_f64();
    let node2_cell = nodes[2].dir.join("cells").join(&cell_dir);
    let _ = std::fs::remove_dir_all(chain_dir(&node2_cell));
    let _ = std::fs::remove_dir_all(node2_cell.join("store"));

    let started = Instant::now();
    nodes[0].start();
    nodes[1].start();
    let ready = |s: &CellStatus| {
        s.store
            .as_ref()
            .is_some_and(|st| st.state == "ready" && st.entities as usize >= entities)
    };
    let index_s = wait_status(
        &nodes[0],
        cell,
        Duration::from_secs(600),
        "indexed the corpus",
        ready,
    );
    let start_to_ready_s = started.elapsed().as_secs_f64();
    let tip = smol::block_on(status(&nodes[0], cell))
        .ok()
        .and_then(|s| s.chain)
        .map(|c| c.height)
        .unwrap_or_else(|| fail("node 0 reports no chain"));
    let entities_total = smol::block_on(status(&nodes[0], cell))
        .ok()
        .and_then(|s| s.store)
        .map(|s| s.entities)
        .unwrap_or(0);
    let loaded_memory = nodes[0].memory();

    let started = Instant::now();
    nodes[2].start();
    let chain_s = wait_status(
        &nodes[2],
        cell,
        Duration::from_secs(600),
        "caught up",
        |s| s.chain.as_ref().is_some_and(|c| c.height >= tip),
    );
    let all = |s: &CellStatus| {
        s.store
            .as_ref()
            .is_some_and(|st| st.state == "ready" && st.entities >= entities_total)
    };
    wait_status(&nodes[2], cell, Duration::from_secs(600), "indexed", all);
    let index_caught_s = started.elapsed().as_secs_f64();
    let node2_memory = nodes[2].memory();
    for node in &mut nodes {
        node.stop();
    }
    let _ = std::fs::remove_dir_all(&tmp);

    let out = json!({
        "links_up_s": link_s,
        "idle": idle,
        "replicated": replicated,
        "commit_latency": commit,
        "loaded": {
            "entities": entities_total,
            "operations": operations,
            "height": tip,
            "corpus_write_s": write_s,
            "index_ready_s": index_s.max(start_to_ready_s),
            "memory": loaded_memory,
        },
        "catch_up": {
            "operations": operations,
            "chain_s": chain_s,
            "index_s": index_caught_s,
            "memory": node2_memory,
        },
        "temp_dir": std::env::temp_dir(),
    });
    println!("{out}");
}
