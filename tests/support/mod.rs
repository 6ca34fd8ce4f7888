//! Helpers shared by the integration tests: run the real `exo` binary, start and stop
//! daemons, and lay out multi-node cells on loopback ports.
#![allow(dead_code)] // each test file uses its own subset

pub mod proxy;
pub mod store_log;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The outcome of one `exo` command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `exo -d DIR ARGS` with extra environment; asserts it did not panic.
pub fn exo_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exo"));
    command.arg("-d").arg(dir).args(args).stdin(Stdio::null());
    command.env_remove("EXO_DIR").env_remove("EXO_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    finish(command.output().expect("run exo"))
}

/// Runs `exo -d DIR ARGS` with `input` on its standard input.
pub fn exo_with_input(dir: &Path, args: &[&str], input: &[u8]) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_exo"))
        .arg("-d")
        .arg(dir)
        .args(args)
        .env_remove("EXO_DIR")
        .env_remove("EXO_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run exo");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from another thread: exo may answer (and fill its pipes) before reading it all.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for exo");
    writer.join().unwrap();
    finish(output)
}

/// The outcome of a finished `exo`; asserts it did not panic.
fn finish(output: Output) -> Run {
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "exo panicked: {}",
        run.stderr
    );
    run
}

/// Runs `exo -d DIR ARGS`.
pub fn exo(dir: &Path, args: &[&str]) -> Run {
    exo_in(dir, args, &[])
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let run = exo(dir, args);
    assert_eq!(run.code, 0, "exo {args:?} failed: {}", run.stderr);
    run.stdout
}

/// Runs a command that must fail with `code` and one `error:` line; returns that line.
pub fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    error_line(&exo(dir, args), code)
}

/// Checks that a run failed with `code` and one `error:` line; returns that line.
pub fn error_line(run: &Run, code: i32) -> String {
    assert_eq!(
        run.code, code,
        "exo: stdout {} stderr {}",
        run.stdout, run.stderr
    );
    let line = run.stderr.trim();
    assert!(line.starts_with("error: "), "not an error line: {line}");
    assert_eq!(line.lines().count(), 1, "more than one line: {line}");
    line.to_string()
}

/// A loopback port free at the time of asking, below Linux's ephemeral range (32768 and
/// up): a daemon restarted on its port must not find it taken by some test's outgoing
/// connection, which the kernel gives ephemeral ports.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// A node directory with its listen address.
pub struct TestNode {
    pub dir: PathBuf,
    pub address: String,
    pub id: String,
}

/// Creates `count` nodes under `root` (all roles) in one cell, as `exo cell init` on the
/// first node plus the others written into its cell.toml, which every node gets a copy of,
/// with the cell's key and the chain's genesis.
/// Returns the nodes and the cell id.
pub fn cell_of(root: &Path, count: usize) -> (Vec<TestNode>, String) {
    let mut nodes = Vec::new();
    for i in 0..count {
        let dir = root.join(format!("node{i}"));
        let address = format!("127.0.0.1:{}", free_port());
        ok(
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
        let id = ok(&dir, &["config", "get", "id"]).trim().to_string();
        nodes.push(TestNode { dir, address, id });
    }
    ok(&nodes[0].dir, &["cell", "init", "--name", "home"]);
    let cell_dir = cell_dir(&nodes[0].dir);
    let cell_id = cell_dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut toml = fs::read_to_string(cell_dir.join("cell.toml")).unwrap();
    for (i, node) in nodes.iter().enumerate().skip(1) {
        toml.push_str(&format!(
            "\n[[nodes]]\nid = \"{}\"\nname = \"n{i}\"\naddresses = [\"{}\"]\nroles = [\"chain\", \"store\", \"app-host\"]\n",
            node.id, node.address
        ));
    }
    fs::write(cell_dir.join("cell.toml"), &toml).unwrap();
    for node in nodes.iter().skip(1) {
        let dir = node.dir.join("cells").join(&cell_id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cell.toml"), &toml).unwrap();
        // Every node holds the cell's secret, as a full member would (a test that wants a
        // chain-only node removes it).
        fs::copy(cell_dir.join("cell.key"), dir.join("cell.key")).unwrap();
    }
    if count > 1 {
        share_chain(&nodes);
    }
    (nodes, cell_id)
}

/// The folder of the only cell of the node in `dir`.
pub fn cell_dir(dir: &Path) -> PathBuf {
    fs::read_dir(dir.join("cells"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// Copies the chain (its genesis) of the first node to the others, as a user would with
/// `exo cell chain export` and `import`, so every chain node can start its engine.
pub fn share_chain(nodes: &[TestNode]) {
    let file = nodes[0].dir.join("genesis.exochain");
    ok(
        &nodes[0].dir,
        &["cell", "chain", "export", file.to_str().unwrap()],
    );
    for node in nodes.iter().skip(1) {
        ok(
            &node.dir,
            &["cell", "chain", "import", file.to_str().unwrap()],
        );
    }
}

/// Adds a member without roles (a client) to the cell on every node.
pub fn add_client(nodes: &[TestNode], cell_id: &str, name: &str, public_key: &str) {
    for node in nodes {
        let path = node.dir.join("cells").join(cell_id).join("cell.toml");
        let mut toml = fs::read_to_string(&path).unwrap();
        toml.push_str(&format!(
            "\n[[nodes]]\nid = \"{public_key}\"\nname = \"{name}\"\n"
        ));
        fs::write(&path, toml).unwrap();
    }
}

/// A running `exo daemon`, stopped (SIGKILL) when dropped if not stopped before.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon of `dir` and waits until it listens.
    pub fn start(dir: &Path) -> Daemon {
        Daemon::start_with_env(dir, &[])
    }

    /// Starts the daemon of `dir` with extra environment and waits until it listens.
    pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = dir.join("daemon.log");
        let file = fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_exo"))
            .arg("-d")
            .arg(dir)
            .arg("daemon")
            .env("EXO_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child: Some(child),
            log,
        };
        daemon.wait_log("listening on", Duration::from_secs(10));
        daemon
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits until the log contains `needle` (panics with the log after `timeout`).
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon log never showed `{needle}`:\n{}", self.log());
    }

    /// Sends SIGINT and waits; returns whether it exited with status 0, and its log.
    pub fn stop(mut self) -> (bool, String) {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.success(), self.log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return (false, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        kill(self.child.take());
    }
}

/// Kills and reaps a child process still running when its owner is dropped.
fn kill(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `exo store put ARGS`: asserts it printed an entity id and a 32-digit operation id;
/// returns the entity id.
pub fn store_put(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["store", "put"];
    all.extend_from_slice(args);
    let out = ok(dir, &all);
    let mut words = out.split_whitespace();
    let entity = words.next().unwrap().to_string();
    let operation = words.next().unwrap();
    assert_eq!(operation.len(), 32, "{out}");
    entity
}

/// The ids `exo store query --json QUERY` returns, in result order.
pub fn store_query_ids(dir: &Path, query: &str) -> Vec<String> {
    ok(dir, &["store", "query", "--json", query])
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// One node in a one-node cell with its daemon running, and a client member (no roles) that
/// may connect to it.
pub struct Setup {
    /// Keeps the node's files alive.
    pub _tmp: tempfile::TempDir,
    /// The node's directory.
    pub dir: PathBuf,
    /// The running daemon.
    pub daemon: Daemon,
    /// Where it listens.
    pub address: String,
    /// The node's key.
    pub node: exocore_protocol::identity::PublicKey,
    /// The cell's key.
    pub cell: exocore_protocol::identity::PublicKey,
    /// The client member's keypair.
    pub member: exocore_protocol::identity::Keypair,
}

impl Setup {
    /// A protocol client of the member, connected to the node.
    pub async fn client(
        &self,
        options: exocore_protocol::client::ClientOptions,
    ) -> exocore_protocol::client::Client {
        exocore_protocol::client::Client::connect_with(
            self.address.as_str(),
            &self.member,
            self.cell,
            &[self.node],
            options,
        )
        .await
        .unwrap()
    }
}

/// Starts a [`Setup`].
pub fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell_id) = cell_of(tmp.path(), 1);
    let member = exocore_protocol::identity::Keypair::generate();
    add_client(&nodes, &cell_id, "phone", &member.public().to_string());
    let daemon = Daemon::start(&nodes[0].dir);
    Setup {
        dir: nodes[0].dir.clone(),
        address: nodes[0].address.clone(),
        node: nodes[0].id.parse().unwrap(),
        cell: cell_id.parse().unwrap(),
        member,
        daemon,
        _tmp: tmp,
    }
}

/// An `exo` command running in the background (a rendezvous server, a join waiting for its
/// member), its stdout and stderr going to files; killed when dropped if still running.
pub struct Spawned {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Spawned {
    /// Starts `exo ARGS` (with `-d DIR` first if given); its output goes to `NAME.out` and
    /// `NAME.err` in `logs`.
    pub fn start(dir: Option<&Path>, args: &[&str], logs: &Path, name: &str) -> Spawned {
        let stdout = logs.join(format!("{name}.out"));
        let stderr = logs.join(format!("{name}.err"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_exo"));
        if let Some(dir) = dir {
            command.arg("-d").arg(dir);
        }
        let child = command
            .args(args)
            .env_remove("EXO_DIR")
            .env_remove("EXO_LOG")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Spawned {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Its stdout so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until stdout (or stderr) contains `needle`; panics with both after `timeout`.
    pub fn wait_output(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stdout().contains(needle) || self.stderr().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "never printed `{needle}`:\nstdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
    }

    /// Waits for the command to exit (kills it and panics after `timeout`).
    pub fn wait(mut self, timeout: Duration) -> Run {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let run = Run {
                    code: status.code().unwrap_or(-1),
                    stdout: self.stdout(),
                    stderr: self.stderr(),
                };
                assert!(
                    !run.stderr.contains("panicked"),
                    "exo panicked: {}",
                    run.stderr
                );
                return run;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "still running after {timeout:?}:\nstdout: {}\nstderr: {}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        kill(self.child.take());
    }
}

/// Creates the node directory `ROOT/NAME`, listening on (and reachable at) a free loopback port.
pub fn new_node(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let address = format!("127.0.0.1:{}", free_port());
    ok(
        &dir,
        &[
            "node",
            "init",
            "--name",
            name,
            "--listen",
            &address,
            "--address",
            &address,
        ],
    );
    dir
}

/// A running rendezvous server (`exo discovery daemon`) on a free loopback port.
pub struct Rendezvous {
    _process: Spawned,
    /// Where it listens.
    pub address: String,
}

/// Starts a rendezvous server with extra options; its logs go to `root`.
pub fn rendezvous(root: &Path, extra: &[&str]) -> Rendezvous {
    let address = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["discovery", "daemon", "--listen", &address];
    args.extend_from_slice(extra);
    let name = format!("rendezvous-{}", address.replace(':', "-"));
    let process = Spawned::start(None, &args, root, &name);
    process.wait_output("listening on", Duration::from_secs(20));
    Rendezvous {
        _process: process,
        address,
    }
}

/// Starts `exo cell join --discovery ADDRESS ARGS` on `dir` (logs beside it, as NAME); returns
/// it, waiting for its member, and the PIN it shows.
pub fn start_join(dir: &Path, args: &[&str], address: &str, name: &str) -> (Spawned, String) {
    let mut all = vec!["cell", "join", "--discovery", address];
    all.extend_from_slice(args);
    let join = Spawned::start(Some(dir), &all, dir.parent().unwrap(), name);
    let pin = shown_pin(&join);
    (join, pin)
}

/// Waits until a running `exo cell join` shows its PIN, and returns it.
pub fn shown_pin(join: &Spawned) -> String {
    join.wait_output("PIN: ", Duration::from_secs(20));
    join.stdout()
        .lines()
        .find_map(|l| l.strip_prefix("PIN: ").map(str::to_string))
        .unwrap()
}

/// `exo cell node add --pin PIN --discovery ADDRESS` on `dir`, with `--yes` if `yes`.
pub fn add_by_pin(dir: &Path, pin: &str, address: &str, yes: bool) -> Run {
    let mut args = vec!["cell", "node", "add", "--pin", pin, "--discovery", address];
    if yes {
        args.push("--yes");
    }
    exo(dir, &args)
}
