//! Chain figures for `make bench` (issue 4, "Performance"), printed as one JSON object:
//!
//! - `appends`: durable operation appends per second on one node: signed entry operations
//!   written with `ChainStore::put_pending`, `batch` operations per LMDB transaction (one
//!   fsync each), for batches of 1, 100 and 1000;
//! - `commit_latency`: on a single-node cell, the time from a local write being durable
//!   (`Input::Write` applied) to the block containing it being committed (applied), in ms,
//!   with the engine's default config, real time, ticks every millisecond;
//! - `simulated_3_nodes`: the commit latency of the 3-node simulation of
//!   `tests/simulation.rs` (no faults, 1 to 5 ms network delay), in ticks of 10 ms;
//! - `engine_open`: the time `Engine::open` takes on a chain of 100,000 operations (1,000
//!   blocks), which walks every block once to fold the membership changes it carries.
//!
//! Real LMDB in a temporary folder under the system temp dir (`$TMPDIR`, else `/tmp`), so
//! fsync costs what the disk there costs. Every loop is bounded by a count and a deadline:
//! the whole run takes well under a minute. `--quick` shortens it further.
//!
//! ```text
//! cargo build --release --example chain_bench && target/release/examples/chain_bench
//! ```

use std::time::{Duration, Instant};

use exo::chain::store::DEFAULT_MAP_SIZE_BYTES;
use exo::chain::{Block, ChainStore, EntryKey, Membership, Operation};
use exo::engine::{self, Config, Engine, Event, Input};
use exocore_protocol::identity::Keypair;
use serde_json::{json, Value};

// The 3-node simulation, reused as is. Not in this file's own test build (`cargo test
// --all-targets` builds examples as tests): the simulation's tests run once, in their file.
#[cfg(not(test))]
#[allow(dead_code)]
#[path = "../tests/simulation.rs"]
mod simulation;

/// The simulated 3-node commit latency (`tests/simulation.rs`), as JSON.
#[cfg(not(test))]
fn simulated_3_nodes() -> Value {
    let started = Instant::now();
    let (p50, p99, writes) = simulation::three_node_commit_latency_ticks();
    json!({
        "p50_ticks": p50,
        "p99_ticks": p99,
        "writes": writes,
        "tick_ms": simulation::TICK_MS,
        "network_delay_ms": "1 to 5",
        "seconds": started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
fn simulated_3_nodes() -> Value {
    Value::Null
}

/// Payload of every benchmark entry: a small record, as most user writes are.
const PAYLOAD: &[u8] = b"{\"title\":\"benchmark entry\",\"done\":false,\"n\":1234567}";

struct Bench {
    quick: bool,
    cell: Keypair,
    node: Keypair,
    entry_key: EntryKey,
}

fn micros_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

impl Bench {
    fn new(quick: bool) -> Bench {
        let cell = Keypair::generate();
        Bench {
            quick,
            entry_key: EntryKey::from_cell_keypair(&cell),
            node: Keypair::generate(),
            cell,
        }
    }

    fn open(&self, dir: &std::path::Path) -> ChainStore {
        let store = ChainStore::open(dir, &self.cell.public(), DEFAULT_MAP_SIZE_BYTES)
            .expect("open the chain store");
        store
            .append_block(&Block::genesis(&self.cell, micros_since_epoch()))
            .expect("genesis");
        store
    }

    /// `count` signed entries with fresh ids from `store` (ids are persisted, as in a node).
    fn entries(&self, store: &ChainStore, count: u32) -> Vec<Operation> {
        let ids = store
            .next_operation_ids(&self.node.public(), micros_since_epoch(), count)
            .expect("ids");
        ids.into_iter()
            .map(|id| {
                Operation::new_entry(
                    &self.cell.public(),
                    &self.entry_key,
                    id,
                    &self.node,
                    PAYLOAD,
                )
                .expect("entry")
            })
            .collect()
    }

    /// Durable appends per second with `batch` operations per transaction.
    fn appends(&self, batch: usize, total: usize, deadline: Duration) -> Value {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = self.open(tmp.path());
        // Signing and sealing are the writer's cost, measured apart; the store's is here.
        let sign_started = Instant::now();
        let ops = self.entries(&store, total as u32);
        let sign_s = sign_started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut written = 0usize;
        for chunk in ops.chunks(batch) {
            let outcome = store.put_pending(chunk).expect("put_pending");
            assert_eq!(outcome.added.len(), chunk.len());
            written += chunk.len();
            if started.elapsed() > deadline {
                break;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(store.pending_count().expect("count") as usize, written);
        json!({
            "batch": batch,
            "operations": written,
            "transactions": written.div_ceil(batch),
            "seconds": seconds,
            "operations_per_s": written as f64 / seconds,
            "transactions_per_s": written.div_ceil(batch) as f64 / seconds,
            "operation_bytes": ops[0].size_bytes(),
            "sign_and_seal_per_s": total as f64 / sign_s,
        })
    }

    /// `Engine::open` on a chain of `blocks` blocks of `per_block` operations: the startup
    /// cost of folding the chain's membership changes.
    fn engine_open(&self, blocks: u32, per_block: u32) -> Value {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = self.open(tmp.path());
        let membership = Membership::new(self.cell.public(), Vec::new(), vec![self.node.public()]);
        for _ in 0..blocks {
            let tip = store.last_header().expect("tip").expect("genesis");
            let ops = self.entries(&store, per_block);
            let mut block =
                Block::propose(&tip, &self.node.public(), tip.time_us + 1, ops).expect("block");
            block.sign(&self.cell.public(), &self.node);
            store.append_block(&block).expect("append");
        }
        let disk_bytes = store.disk_size_bytes().expect("size");
        let started = Instant::now();
        let engine = Engine::open(
            Config::default(),
            self.node.clone(),
            membership,
            &store,
            micros_since_epoch() / 1_000,
        )
        .expect("engine");
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(engine.tip().height, u64::from(blocks));
        json!({
            "blocks": blocks,
            "operations": u64::from(blocks) * u64::from(per_block),
            "disk_bytes": disk_bytes,
            "ms": seconds * 1_000.0,
        })
    }

    /// Single-node commit latency, real time: one write every `interval`, ticks every ms.
    fn commit_latency(&self) -> Value {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = self.open(tmp.path());
        let membership = Membership::new(self.cell.public(), Vec::new(), vec![self.node.public()]);
        let config = Config::default();
        let propose_delay_ms = config.propose_delay_ms;
        let started = Instant::now();
        let base_ms = micros_since_epoch() / 1_000;
        let now_ms = || base_ms + started.elapsed().as_millis() as u64;
        let mut engine =
            Engine::open(config, self.node.clone(), membership, &store, now_ms()).expect("engine");
        let (writes, interval) = if self.quick {
            (100, Duration::from_millis(7))
        } else {
            (400, Duration::from_millis(7))
        };
        let deadline = Duration::from_secs(15);
        let mut written_at = std::collections::BTreeMap::new();
        let mut latencies_ms = Vec::new();
        let mut blocks = 0u64;
        let mut next_write = Instant::now();
        let mut issued = 0;
        while (issued < writes || !written_at.is_empty()) && started.elapsed() < deadline {
            let mut inputs = Vec::new();
            if issued < writes && Instant::now() >= next_write {
                inputs.push(Input::Write {
                    operations: self.entries(&store, 1),
                });
                issued += 1;
                next_write += interval;
            }
            inputs.push(Input::Tick);
            for input in inputs {
                let output = engine.step(&store, now_ms(), input);
                engine::apply(&store, &output).expect("apply");
                let at = Instant::now();
                for event in &output.events {
                    match event {
                        Event::OperationsAdded { ids, local: true } => {
                            for id in ids {
                                written_at.insert(*id, at);
                            }
                        }
                        Event::BlockCommitted { operations, .. } => {
                            blocks += 1;
                            for id in operations {
                                if let Some(t) = written_at.remove(id) {
                                    latencies_ms.push((at - t).as_secs_f64() * 1_000.0);
                                }
                            }
                        }
                        Event::Rejected { reason, .. } | Event::StorageError { reason } => {
                            panic!("engine: {reason}")
                        }
                        _ => {}
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies_ms.sort_by(f64::total_cmp);
        json!({
            "writes": latencies_ms.len(),
            "blocks": blocks,
            "write_interval_ms": interval.as_millis() as u64,
            "tick_ms": 1,
            "propose_delay_ms": propose_delay_ms,
            "p50_ms": percentile(&latencies_ms, 0.50),
            "p99_ms": percentile(&latencies_ms, 0.99),
            "max_ms": latencies_ms.last().copied().unwrap_or(0.0),
        })
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let bench = Bench::new(quick);
    let deadline = Duration::from_secs(if quick { 3 } else { 10 });
    let scale = if quick { 5 } else { 1 };
    let appends: Vec<Value> = [(1usize, 1_000usize), (100, 20_000), (1_000, 50_000)]
        .into_iter()
        .map(|(batch, total)| bench.appends(batch, (total / scale).max(batch), deadline))
        .collect();
    let commit_latency = bench.commit_latency();
    let engine_open = bench.engine_open(1_000 / scale as u32, 100);
    let report = json!({
        "engine_open": engine_open,
        "temp_dir": std::env::temp_dir(),
        "appends": appends,
        "commit_latency": commit_latency,
        "simulated_3_nodes": simulated_3_nodes(),
    });
    println!("{report:#}");
}
