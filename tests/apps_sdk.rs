//! The SDK samples, built from source and run in the app host: the C sample with clang for
//! wasm32 (sdk/c/exocore_app.h), the Rust sample with the guest SDK (sdk/rust) for
//! wasm32-unknown-unknown. Needs clang, lld and the wasm32 Rust target (.ci/run installs
//! them); a missing tool fails the test, naming it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exo::apps::{AppHost, AppStatus, IndexStore, Limits, Manifest, Package};
use exo::store::Schemas;
use exocore_protocol::identity::Keypair;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}): install it (.ci/run does)"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Installs `module` with read and write access to tasks; returns the host and its store.
fn host_with(name: &str, module: Vec<u8>) -> (AppHost, Arc<IndexStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(IndexStore::open(dir.path(), Schemas::builtin()).unwrap());
    let host = AppHost::start(Limits::default(), store.clone()).unwrap();
    let manifest = Manifest {
        name: name.into(),
        version: "0.1.0".into(),
        key: [0; 32],
        module_hash: [0; 32],
        schemas: String::new(),
        read: vec!["task".into()],
        write: vec!["task".into()],
    };
    let package = Package::build(manifest, module, &Keypair::generate()).unwrap();
    host.install(package.verify(&Schemas::builtin()).unwrap())
        .unwrap();
    (host, store, dir)
}

fn wait_for_logs(host: &AppHost, name: &str, lines: &[&str]) -> AppStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = host.status(name);
        if let Some(s) = &status {
            if lines.iter().all(|l| s.logs.iter().any(|x| x == l)) {
                return s.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "app {name}: {lines:?} not logged: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn c_sample_builds_with_clang_and_runs() {
    let out = tempfile::tempdir().unwrap();
    let wasm = out.path().join("c_tasks.wasm");
    run(
        Command::new("clang")
            .args([
                "--target=wasm32",
                "-O2",
                "-nostdlib",
                "-ffreestanding",
                "-Wl,--no-entry",
            ])
            .arg("-I")
            .arg(root().join("sdk/c"))
            .arg("-o")
            .arg(&wasm)
            .arg(root().join("fixtures/apps/c_tasks/c_tasks.c")),
        "clang (with lld) for wasm32",
    );
    let (host, _store, _dir) = host_with("c_tasks", std::fs::read(&wasm).unwrap());
    let status = wait_for_logs(&host, "c_tasks", &["c_tasks started", "c tasks: 1"]);
    assert_eq!(status.faults, 0);
}

#[test]
fn rust_sample_builds_for_wasm32_and_runs() {
    let target: PathBuf = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("sdk");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
            .args(["--example", "rust_tasks", "--manifest-path"])
            .arg(root().join("sdk/rust/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target),
        "cargo build of sdk/rust for wasm32-unknown-unknown (rustup target add wasm32-unknown-unknown)",
    );
    let wasm = target.join("wasm32-unknown-unknown/release/examples/rust_tasks.wasm");
    let (host, _store, _dir) = host_with("rust_tasks", std::fs::read(&wasm).unwrap());
    let status = wait_for_logs(
        &host,
        "rust_tasks",
        &["rust_tasks started", "rust tasks: 3", "watched: 3 task(s)"],
    );
    assert_eq!(status.faults, 0, "{status:?}");
}
