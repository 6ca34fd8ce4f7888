//! The README's two-node quick start, run line by line as written (only the ports are
//! swapped for free ones and the PIN for the one shown), then a third node joins by PIN and
//! every node reads what the others wrote.

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::free_port;

const WAIT: Duration = Duration::from_secs(30);

/// The shell block of the README's "Two nodes" section, one command per line, comments and
/// the `#   PIN: ...` illustration included.
fn quick_start() -> Vec<String> {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme
        .find("## Two nodes")
        .expect("README has a Two nodes section")..];
    let start = section.find("```sh\n").unwrap() + 6;
    let end = start + section[start..].find("```").unwrap();
    section[start..end].lines().map(str::to_string).collect()
}

/// A shell for the session: `exo` on its PATH is the binary under test, `~` a temp dir.
struct Session {
    home: PathBuf,
    bin: PathBuf,
    /// Text substitutions: the README's ports and PIN to this run's.
    swaps: Vec<(String, String)>,
    background: Vec<Child>,
}

impl Session {
    fn new(home: &Path) -> Session {
        let bin = home.join("bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_exo"), bin.join("exo")).unwrap();
        let swaps = ["3330", "3331", "3340"]
            .iter()
            .map(|p| {
                (
                    format!("127.0.0.1:{p}"),
                    format!("127.0.0.1:{}", free_port()),
                )
            })
            .collect();
        Session {
            home: home.to_path_buf(),
            bin,
            swaps,
            background: Vec::new(),
        }
    }

    /// The line as this run types it: ports and PIN swapped, the comment dropped.
    fn typed(&self, line: &str) -> String {
        let mut line = match line.find("  #") {
            Some(comment) => line[..comment].trim_end().to_string(),
            None => line.trim_end().to_string(),
        };
        for (from, to) in &self.swaps {
            line = line.replace(from, to);
        }
        line
    }

    fn command(&self, line: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("exec {line}"))
            .env("HOME", &self.home)
            .env(
                "PATH",
                format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap()),
            )
            .env_remove("EXO_DIR")
            .env_remove("EXO_LOG")
            .current_dir(&self.home);
        command
    }

    /// Runs a foreground command; asserts it succeeded.
    fn run(&self, line: &str) -> String {
        let output = self.command(line).output().unwrap();
        ok(line, &output)
    }

    /// Starts a command ending with `&`, its output to a file; returns the file.
    fn spawn(&mut self, line: &str, name: &str) -> PathBuf {
        let log = self.home.join(format!("{name}.log"));
        let file = fs::File::create(&log).unwrap();
        let child = self
            .command(line)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        self.background.push(child);
        log
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for child in &mut self.background {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ok(line: &str, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`{line}` failed:\n{stdout}\n{stderr}"
    );
    stdout
}

fn wait_for_file(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "never `{needle}`:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `line` on a terminal (the README says "answer y"), typing `answer`.
fn on_terminal(session: &Session, line: &str, answer: &str) -> Output {
    let mut child = session
        .command(&format!("script -qec {} /dev/null", shell_quote(line)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) gives the command a terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn the_pin(text: &str) -> String {
    let line = text.lines().find(|l| l.contains("PIN: ")).unwrap();
    line[line.find("PIN: ").unwrap() + 5..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_readme_two_node_quick_start_works_and_a_third_node_joins() {
    let tmp = tempfile::tempdir().unwrap();
    let mut session = Session::new(tmp.path());
    let mut join_log: Option<PathBuf> = None;
    let mut daemons = 0;
    for raw in quick_start() {
        let trimmed = raw.trim();
        if let Some(rest) = trimmed.strip_prefix("#   PIN: ") {
            // The README shows an example PIN: this run's is the one the joiner printed.
            let shown = the_pin(&wait_for_file(join_log.as_ref().unwrap(), "PIN: "));
            let example = rest.split_whitespace().next().unwrap().to_string();
            session.swaps.push((example, shown));
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let line = session.typed(trimmed);
        if let Some(line) = line.strip_suffix('&') {
            let name = format!("background{}", session.background.len());
            let log = session.spawn(line.trim_end(), &name);
            if !line.contains("discovery") {
                daemons += 1;
            }
            wait_for_file(&log, "listening on");
        } else if line.contains("cell join") {
            // Waits for a member in the README; here it runs in the background.
            join_log = Some(session.spawn(&line, "join"));
        } else if line.contains("node add --pin") {
            let output = on_terminal(&session, &line, "y");
            let text = ok(&line, &output);
            assert!(text.contains("fingerprint"), "{text}");
            let join = join_log.as_ref().unwrap();
            wait_for_file(join, "joined cell `home`");
        } else if line.contains("store query") {
            // "b sees it once its chain has synced".
            let deadline = Instant::now() + WAIT;
            loop {
                let output = session.command(&line).output().unwrap();
                let text = String::from_utf8_lossy(&output.stdout).into_owned();
                if output.status.success() && text.contains("Hello from a") {
                    break;
                }
                assert!(Instant::now() < deadline, "b never saw a's note: {text}");
                std::thread::sleep(Duration::from_millis(200));
            }
        } else if line.contains(" status") {
            let text = session.run(&line);
            assert!(text.contains("peers"), "{text}");
            assert!(text.contains(" up "), "b's link to a is up: {text}");
        } else {
            session.run(&line);
        }
    }
    assert_eq!(daemons, 2, "the quick start runs two daemons");

    // A third node joins by PIN: a chain and store node too.
    let disco = &session.swaps[2].1.clone();
    let c_listen = format!("127.0.0.1:{}", free_port());
    session.run(&format!(
        "exo -d ~/exo-c node init --name c --listen {c_listen} --address {c_listen}"
    ));
    let join = session.spawn(
        &format!("exo -d ~/exo-c cell join --chain --store --discovery {disco}"),
        "join-c",
    );
    let pin = the_pin(&wait_for_file(&join, "PIN: "));
    session.run(&format!(
        "exo -d ~/exo-b cell node add --pin {pin} --discovery {disco} --yes"
    ));
    wait_for_file(&join, "joined cell `home`");
    let c_daemon = session.spawn("exo -d ~/exo-c daemon", "daemon-c");
    wait_for_file(&c_daemon, "listening on");
    // c writes once its chain has caught up with the block that admitted it (until then its
    // copy of the chain does not list it as a member).
    let height = |node: &str| -> u64 {
        let text = session.run(&format!("exo -d ~/exo-{node} status --json"));
        let status: serde_json::Value = serde_json::from_str(&text).unwrap();
        status[0]["chain"]["height"].as_u64().unwrap_or(0)
    };
    let deadline = Instant::now() + WAIT;
    while height("c") < height("b") {
        assert!(Instant::now() < deadline, "c never caught up");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its services may still be restarting with the roles the join gave it: retry briefly.
    let put = "exo -d ~/exo-c store put new note title=\"Hello from c\"";
    let deadline = Instant::now() + WAIT;
    loop {
        let output = session.command(put).output().unwrap();
        if output.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(Instant::now() < deadline, "c cannot write: {stderr}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for node in ["a", "b", "c"] {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = session.run(&format!("exo -d ~/exo-{node} store query 'type:note'"));
            if text.contains("Hello from a") && text.contains("Hello from c") {
                break;
            }
            assert!(Instant::now() < deadline, "{node} sees: {text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Every node lists three members.
    let list = session.run("exo -d ~/exo-a cell node list");
    for name in ["a ", "b ", "c "] {
        assert!(list.contains(name), "{list}");
    }
}
