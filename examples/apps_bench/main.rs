//! App host figures for `make bench` (issue 7, "Performance"), printed as one JSON object:
//!
//! - `round_trips`: store query round trips per second from inside an app: the `pinger`
//!   fixture sends `type:task` and sends it again on each answer, through the host's
//!   permission check to an `IndexStore` (tantivy on disk, 20 tasks); counted by a wrapper
//!   of the store over a fixed time;
//! - `fuel`: fuel used by simple calls: hello's `init` (one log, one set_timer), and one
//!   delivery to pinger (`alloc` + `on_message` that sends a request);
//! - `start`: time to compile (validate) hello's module and to instantiate it and run `init`;
//! - `memory`: resident memory per idle instance: VmRSS before and after starting 200 hello
//!   instances in one host.
//!
//! Every loop is bounded by a count and a deadline; `--quick` shortens them.
//!
//! ```text
//! cargo build --release --example apps_bench && target/release/examples/apps_bench
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exo::apps::instance::{linker, Instance};
use exo::apps::module::engine;
use exo::apps::store::{StoreFuture, WatchReceiver};
use exo::apps::{AppHost, AppModule, AppStore, IndexStore, Limits, Package};
use exo::store::{Entry, Mutation, Query, Schemas, Trait};
use exocore_protocol::store::{StoreRequest, StoreResponse};
use serde_json::json;

const HELLO: &str = include_str!("../../fixtures/apps/hello/hello.wat");
const PINGER: &str = include_str!("../../fixtures/apps/bench/pinger.wat");

/// Counts the requests that reach the store.
struct Counting {
    inner: IndexStore,
    requests: AtomicU64,
}

impl AppStore for Counting {
    fn request(&self, request: StoreRequest) -> StoreFuture<StoreResponse> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.request(request)
    }
    fn watch(&self, query: Query) -> StoreFuture<WatchReceiver> {
        self.inner.watch(query)
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn install(host: &AppHost, name: &str, wat: &str, read: &[&str]) {
    let package = Package::build_from_wat(name, "1.0.0", wat, "", read, &[]).expect("package");
    host.install(package.verify(&Schemas::builtin()).expect("verify"))
        .expect("install");
}

fn wait_running(host: &AppHost, name: &str, deadline: Instant) {
    while host.status(name).is_none_or(|s| s.starts == 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 1.0 } else { 5.0 };
    let dir = tempfile::tempdir().expect("temp dir");

    // Round trips.
    let store = Arc::new(Counting {
        inner: IndexStore::open(&dir.path().join("index"), Schemas::builtin()).expect("index"),
        requests: AtomicU64::new(0),
    });
    for i in 0..20 {
        let entry = Entry::Mutations(vec![Mutation::PutTrait {
            entity: format!("task{i}"),
            value: Trait::new("t", "task").with("title", format!("Task {i}")),
        }])
        .to_bytes();
        smol::block_on(store.request(StoreRequest::Mutate { entry })).expect("put");
    }
    let host = AppHost::start(Limits::default(), store.clone()).expect("host");
    install(&host, "pinger", PINGER, &["task"]);
    let warm = Instant::now() + Duration::from_secs(5);
    wait_running(&host, "pinger", warm);
    std::thread::sleep(Duration::from_millis(200));
    let before = store.requests.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let count = store.requests.load(Ordering::Relaxed) - before;
    let elapsed = start.elapsed().as_secs_f64();
    let delivery_fuel = host.status("pinger").map(|s| s.fuel_last_call).unwrap_or(0);
    host.stop();

    // Start time and init fuel, measured on the library directly.
    let engine = engine();
    let wasm = wat::parse_str(HELLO).expect("hello");
    let linker = linker(&engine);
    let runs = if quick { 50 } else { 300 };
    let (mut compile_us, mut start_us) = (Vec::new(), Vec::new());
    let mut init_fuel = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let module = AppModule::compile(&engine, &wasm).expect("compile");
        compile_us.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let (_instance, outcome) =
            Instance::start(&linker, &module, "hello", &Limits::default()).expect("start");
        start_us.push(t.elapsed().as_secs_f64() * 1e6);
        init_fuel = outcome.fuel_used;
    }
    compile_us.sort_by(f64::total_cmp);
    start_us.sort_by(f64::total_cmp);

    // Memory per idle instance.
    let instances = 200;
    let idle_dir = tempfile::tempdir().expect("temp dir");
    let idle_store =
        Arc::new(IndexStore::open(idle_dir.path(), Schemas::builtin()).expect("index"));
    let host = AppHost::start(Limits::default(), idle_store).expect("host");
    install(&host, "warmup", HELLO, &[]);
    wait_running(&host, "warmup", Instant::now() + Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kib();
    for i in 0..instances {
        install(&host, &format!("hello{i}"), HELLO, &[]);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    wait_running(&host, &format!("hello{}", instances - 1), deadline);
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kib();
    // Less the warm-up instance, started before the first reading.
    let running = host.statuses().iter().filter(|s| s.starts > 0).count() - 1;
    let memory_bytes = host.status("hello0").map(|s| s.memory_bytes).unwrap_or(0);
    host.stop();

    println!(
        "{}",
        json!({
            "round_trips": {"count": count, "seconds": elapsed, "per_s": count as f64 / elapsed, "entities": 20},
            "fuel": {"hello_init": init_fuel, "pinger_delivery": delivery_fuel},
            "start": {
                "runs": runs,
                "compile_p50_us": compile_us[runs / 2],
                "start_p50_us": start_us[runs / 2],
                "module_bytes": wasm.len(),
            },
            "memory": {
                "instances": running,
                "rss_before_kib": rss_before,
                "rss_after_kib": rss_after,
                "per_instance_kib": (rss_after.saturating_sub(rss_before)) as f64 / running.max(1) as f64,
                "linear_memory_bytes": memory_bytes,
            },
        })
    );
}
