//! Store figures for `make bench` (issue 5, "Performance"), printed as one JSON object. On
//! 100,000 generated entities (`generate.rs`: mostly notes and tasks, deterministic from
//! [`SEED`]), with the entity index (tantivy) on disk in a temporary folder under the system
//! temp dir (`$TMPDIR`, else `/tmp`):
//!
//! - `build`: `StoreIndex::rebuild` from every generated operation (plaintext entries, as a
//!   node has them after decrypting its chain): entities and operations per second;
//! - `full_text`: latency of `query_text` with 1-2 content words (first page, 20 results,
//!   by score), p50 / p99 over 500 queries; goal p99 < 10 ms;
//! - `range`: latency of a trait-field range query,
//!   `type:task priority:>=P due:<DATE` (first page, newest first), p50 / p99;
//! - `mutation_visible`: one mutation made visible to a query: `prepare` (validate and
//!   encode) + `apply` (fold, tantivy commit with fsync, reader reload) of one new note, then
//!   the full-text query that finds it, on the 100k index. This is the daemon's
//!   read-your-writes path without the chain write (which `chain_bench` measures);
//! - `memory`: resident memory (`VmRSS`, `VmHWM` of `/proc/self/status`) of a fresh process
//!   (this binary run again with `--memory-probe DIR`) that opens the built index and runs
//!   queries: the proxy for "daemon memory with the index open" (the daemon also holds the
//!   chain's LMDB map and the network, not counted here).
//!
//! Every loop is bounded by a count and a deadline (15 s each; 5 s with `--quick`): the run
//! takes about 35 s on 2 cores. `--quick` uses 20,000 entities and fewer queries (~8 s).
//!
//! ```text
//! cargo build --release --example store_bench && target/release/examples/store_bench
//! ```

mod generate;

use std::path::Path;
use std::time::{Duration, Instant};

use exo::chain::OperationId;
use exo::store::{Mutation, Schemas, StoreIndex, Trait};
use serde_json::{json, Value};

/// Seed of the generated corpus.
const SEED: u64 = 0x5354_4f52_4542_4e43;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// p50 / p99 / max of latencies in ms.
fn summary(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    json!({
        "count": ms.len(),
        "p50_ms": percentile(&ms, 0.50),
        "p99_ms": percentile(&ms, 0.99),
        "max_ms": ms.last().copied().unwrap_or(0.0),
        "mean_ms": mean,
    })
}

fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// A `/proc/self/status` figure in KiB (0 where there is no procfs).
fn status_kib(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `count` full-text query strings of 1-2 content words, Zipf-weighted.
fn text_queries(corpus: &generate::Corpus, count: usize) -> Vec<String> {
    let mut rng = generate::Rng::new(SEED ^ 1);
    (0..count)
        .map(|_| {
            let words = 1 + rng.below(2);
            (0..words)
                .map(|_| corpus.vocabulary.content_word(&mut rng).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// `count` range queries over tasks' priority and due date.
fn range_queries(count: usize) -> Vec<String> {
    let mut rng = generate::Rng::new(SEED ^ 2);
    (0..count)
        .map(|_| {
            let priority = rng.range(1, 4);
            let month = rng.range(1, 24);
            let (year, month) = (2025 + (month - 1) / 12, (month - 1) % 12 + 1);
            format!("type:task priority:>={priority} due:<{year}-{month:02}-01")
        })
        .collect()
}

/// Runs each query once (after `warmup` untimed ones); latencies in ms and matches.
fn run_queries(
    index: &StoreIndex,
    queries: &[String],
    warmup: usize,
    deadline: Duration,
) -> (Vec<f64>, u64) {
    for q in queries.iter().take(warmup) {
        index.query_text(q).expect("warm-up query");
    }
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(queries.len());
    let mut matched = 0u64;
    for q in queries {
        let t = Instant::now();
        let results = index.query_text(q).expect("query");
        latencies.push(ms_since(t));
        matched += results.total;
        if started.elapsed() > deadline {
            break;
        }
    }
    (latencies, matched)
}

/// Mutation → visible: prepare + apply one new note, then query its unique word.
fn mutation_visible(
    index: &mut StoreIndex,
    mut time_us: u64,
    count: usize,
    deadline: Duration,
) -> Value {
    let (mut total, mut prepare, mut apply, mut query) = (vec![], vec![], vec![], vec![]);
    let started = Instant::now();
    for i in 0..count {
        time_us += 1_000;
        let operation = OperationId {
            time_us,
            node: generate::NODE_TAG,
        };
        let word = format!("probe{i}x");
        let t0 = Instant::now();
        let plaintext = index
            .prepare(vec![Mutation::PutTrait {
                entity: format!("probe-entity-{i}"),
                value: Trait::new("n", "note")
                    .with("title", format!("Benchmark probe {word}"))
                    .with("body", "Written by the store benchmark."),
            }])
            .expect("prepare");
        let t1 = Instant::now();
        index.apply(operation, &plaintext, false).expect("apply");
        let t2 = Instant::now();
        let results = index.query_text(&word).expect("query");
        let t3 = Instant::now();
        assert_eq!(results.total, 1, "the new note is visible");
        prepare.push((t1 - t0).as_secs_f64() * 1000.0);
        apply.push((t2 - t1).as_secs_f64() * 1000.0);
        query.push((t3 - t2).as_secs_f64() * 1000.0);
        total.push((t3 - t0).as_secs_f64() * 1000.0);
        if started.elapsed() > deadline {
            break;
        }
    }
    json!({
        "total": summary(total),
        "prepare": summary(prepare),
        "apply": summary(apply),
        "query": summary(query),
    })
}

/// In a fresh process: opens the index in `dir`, runs queries, prints memory figures.
fn memory_probe(dir: &Path, quick: bool) {
    let before_kib = status_kib("VmRSS");
    let started = Instant::now();
    let (index, opened) = StoreIndex::open(dir, Schemas::builtin()).expect("open the index");
    assert!(
        matches!(opened, exo::store::Opened::Existing(_)),
        "the probe opens the built index"
    );
    let open_ms = ms_since(started);
    let opened_kib = status_kib("VmRSS");
    // No entities: only the vocabulary, for the query words.
    let corpus = generate::generate(SEED, 0);
    let mut queries = text_queries(&corpus, if quick { 100 } else { 500 });
    queries.extend(range_queries(if quick { 50 } else { 200 }));
    run_queries(&index, &queries, 0, Duration::from_secs(20));
    let json = json!({
        "rss_before_open_kib": before_kib,
        "rss_open_kib": opened_kib,
        "rss_after_queries_kib": status_kib("VmRSS"),
        "hwm_kib": status_kib("VmHWM"),
        "open_ms": open_ms,
        "queries": queries.len(),
        "documents": index.document_count(),
    });
    println!("{json}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(i) = args.iter().position(|a| a == "--memory-probe") {
        memory_probe(Path::new(&args[i + 1]), quick);
        return;
    }
    let entities = if quick { 20_000 } else { 100_000 };
    let (text_count, range_count, mutations) = if quick {
        (200, 100, 50)
    } else {
        (500, 300, 200)
    };
    let deadline = Duration::from_secs(if quick { 5 } else { 15 });
    let whole = Instant::now();

    let started = Instant::now();
    let corpus = generate::generate(SEED, entities);
    let generate_s = started.elapsed().as_secs_f64();

    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("index");
    let (mut index, _) = StoreIndex::open(&dir, Schemas::builtin()).expect("open the index");
    let started = Instant::now();
    let report = index
        .rebuild(
            corpus
                .operations
                .iter()
                .map(|(id, bytes)| (*id, bytes, true)),
        )
        .expect("rebuild");
    let build_s = started.elapsed().as_secs_f64();
    assert!(report.refused.is_empty(), "every generated entry is valid");
    assert_eq!(report.applied, corpus.operations.len());
    let build = json!({
        "entities": entities,
        "operations": corpus.operations.len(),
        "traits": corpus.traits,
        "plaintext_bytes": corpus.plaintext_bytes,
        "kinds": corpus.counts,
        "seconds": build_s,
        "entities_per_s": entities as f64 / build_s,
        "operations_per_s": corpus.operations.len() as f64 / build_s,
        "index_bytes": dir_bytes(&dir),
        "generate_seconds": generate_s,
    });

    let queries = text_queries(&corpus, text_count);
    let (latencies, matched) = run_queries(&index, &queries, 20, deadline);
    let full_text = json!({
        "latency": summary(latencies.clone()),
        "mean_matches": matched as f64 / latencies.len().max(1) as f64,
        "words": "1-2 content words, Zipf-weighted",
        "example": queries[0],
    });

    let queries = range_queries(range_count);
    let (latencies, matched) = run_queries(&index, &queries, 20, deadline);
    let range = json!({
        "latency": summary(latencies.clone()),
        "mean_matches": matched as f64 / latencies.len().max(1) as f64,
        "example": queries[0],
    });

    let visible = mutation_visible(&mut index, corpus.next_time_us, mutations, deadline);
    let documents = index.document_count();
    drop(index);
    drop(corpus);

    let exe = std::env::current_exe().expect("this binary");
    let mut probe = std::process::Command::new(exe);
    probe.arg("--memory-probe").arg(&dir);
    if quick {
        probe.arg("--quick");
    }
    let output = probe.output().expect("run the memory probe");
    assert!(
        output.status.success(),
        "memory probe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let memory: Value = serde_json::from_slice(&output.stdout).expect("probe JSON");

    let report = json!({
        "quick": quick,
        "temp_dir": std::env::temp_dir().display().to_string(),
        "seed": SEED,
        "documents": documents,
        "build": build,
        "full_text": full_text,
        "range": range,
        "mutation_visible": visible,
        "memory": memory,
        "seconds": whole.elapsed().as_secs_f64(),
    });
    println!("{report:#}");
}
