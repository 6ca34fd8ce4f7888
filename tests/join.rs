//! Joining a cell through the real binary: a rendezvous server (`exo discovery daemon`) and
//! node directories in temporary folders, on loopback. What a user relies on: the right
//! files appear on the joining node (the cell secret only for roles that read data), a wrong,
//! reused or expired PIN gets nothing and changes nothing, and the server's limits hold.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{
    add_by_pin, exo, fails, new_node as node, ok, rendezvous as disco, shown_pin, start_join,
    Daemon, Rendezvous as Disco, Spawned,
};

const WAIT: Duration = Duration::from_secs(20);

/// A node with a cell `cell` of which it is the only member (all roles), its daemon running
/// (admitting a node is a membership change committed through it).
fn member(root: &Path, name: &str, cell: &str) -> (PathBuf, Daemon) {
    let dir = node(root, name);
    ok(&dir, &["cell", "init", "--name", cell]);
    let daemon = Daemon::start(&dir);
    (dir, daemon)
}

fn cell_dir(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir.join("cells"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
}

fn cell_toml(dir: &Path) -> String {
    fs::read_to_string(cell_dir(dir).unwrap().join("cell.toml")).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn add(dir: &Path, pin: &str, disco: &Disco) -> support::Run {
    add_by_pin(dir, pin, &disco.address, true)
}

fn node_list(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(dir, &["cell", "node", "list", "--json"])).unwrap()
}

/// A rendezvous server (with extra options), a node `a` with a cell `home`, and a node `b`
/// waiting in `exo cell join ROLES` with the PIN it shows.
struct Pair {
    _tmp: tempfile::TempDir,
    disco: Disco,
    a: PathBuf,
    b: PathBuf,
    join: Spawned,
    pin: String,
    /// `a`'s cell.toml before the join.
    before: String,
    /// `a`'s daemon.
    _daemon: Daemon,
}

fn pair(disco_options: &[&str], roles: &[&str]) -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let disco = disco(tmp.path(), disco_options);
    let (a, daemon) = member(tmp.path(), "a", "home");
    let before = cell_toml(&a);
    let b = node(tmp.path(), "b");
    let (join, pin) = start_join(&b, roles, &disco.address, "join-b");
    Pair {
        _tmp: tmp,
        disco,
        a,
        b,
        join,
        pin,
        before,
        _daemon: daemon,
    }
}

/// Asserts the exit code, and that stdout or stderr says `needle`.
fn says(run: &support::Run, code: i32, needle: &str) {
    assert_eq!(
        run.code, code,
        "stdout {} stderr {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains(needle) || run.stderr.contains(needle),
        "`{needle}` not in: stdout {} stderr {}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn join_by_pin_installs_the_cell_with_its_secret_for_a_store_node() {
    let p = pair(&[], &["--chain", "--store"]);
    says(
        &add(&p.a, &p.pin, &p.disco),
        0,
        "node `b` joined cell `home` (chain,store)",
    );
    let joined = p.join.wait(WAIT);
    says(&joined, 0, "joined cell `home`");
    says(&joined, 0, "start `exo daemon`");

    // Both nodes list both members with b's roles, and b holds the cell's secret (0600).
    assert_eq!(cell_toml(&p.a), cell_toml(&p.b));
    let list = node_list(&p.b);
    let b_entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "b")
        .unwrap();
    assert_eq!(b_entry["roles"], serde_json::json!(["chain", "store"]));
    assert_eq!(b_entry["this_node"], true);
    let key = cell_dir(&p.b).unwrap().join("cell.key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(
        fs::read(&key).unwrap(),
        fs::read(cell_dir(&p.a).unwrap().join("cell.key")).unwrap()
    );
    ok(&p.b, &["config", "validate"]);
}

#[test]
fn a_chain_only_node_gets_no_secret() {
    let p = pair(&[], &["--chain"]);
    says(&add(&p.a, &p.pin, &p.disco), 0, "joined");
    says(&p.join.wait(WAIT), 0, "not sent");
    let cell = cell_dir(&p.b).unwrap();
    assert!(cell.join("cell.toml").exists());
    assert!(
        !cell.join("cell.key").exists(),
        "a chain-only node must not get the secret"
    );
    let list = ok(&p.b, &["cell", "list", "--json"]);
    assert!(list.contains(r#""holds_secret":false"#), "{list}");
}

#[test]
fn a_wrong_pin_fails_on_both_sides_and_burns_the_pin() {
    let p = pair(&[], &["--store"]);
    // Same slot, other secret digits.
    let (slot, secret) = p.pin.split_once('-').unwrap();
    let last = secret.chars().last().unwrap().to_digit(10).unwrap();
    let wrong = format!("{slot}-{}{}", &secret[..secret.len() - 1], (last + 1) % 10);
    let attempt = add(&p.a, &wrong, &p.disco);
    says(&attempt, 1, "PIN does not match");
    says(&attempt, 1, "unchanged");
    says(&p.join.wait(WAIT), 1, "does not match");
    assert!(cell_dir(&p.b).is_none(), "nothing installed");
    assert_eq!(cell_toml(&p.a), p.before, "member's cell unchanged");

    // The right PIN, now: the slot is burned.
    says(
        &add(&p.a, &p.pin, &p.disco),
        1,
        "no join is waiting under number",
    );
    assert_eq!(cell_toml(&p.a), p.before);
}

#[test]
fn a_pin_works_once() {
    let p = pair(&[], &["--chain"]);
    says(&add(&p.a, &p.pin, &p.disco), 0, "joined");
    says(&p.join.wait(WAIT), 0, "joined");
    let after = cell_toml(&p.a);
    says(&add(&p.a, &p.pin, &p.disco), 1, "expired, was already used");
    assert_eq!(cell_toml(&p.a), after);
}

#[test]
fn an_expired_pin_gets_nothing() {
    let p = pair(&["--ttl-secs", "1"], &["--store"]);
    says(&p.join.wait(WAIT), 1, "expired");
    says(&add(&p.a, &p.pin, &p.disco), 1, "no join is waiting");
    assert!(cell_dir(&p.b).is_none());
    assert_eq!(cell_toml(&p.a), p.before);
}

#[test]
fn a_joiner_that_disconnects_after_asking_is_not_admitted() {
    use exo::discovery::client::Rendezvous;
    use exo::join::{Joiner, Pin, Request};
    use exocore_protocol::identity::Keypair;

    let tmp = tempfile::tempdir().unwrap();
    let disco = disco(tmp.path(), &[]);
    let (a, _a_daemon) = member(tmp.path(), "a", "home");
    let before = cell_toml(&a);
    // A joining node that sends its request, then vanishes.
    let address = disco.address.clone();
    let (pin_tx, pin_rx) = std::sync::mpsc::channel();
    let ghost = std::thread::spawn(move || {
        smol::block_on(async {
            let mut server = Rendezvous::connect(&address).await.unwrap();
            let (slot, _) = server.open().await.unwrap();
            let pin = Pin::generate(slot).unwrap();
            pin_tx.send(pin.to_string()).unwrap();
            server.wait_peer().await.unwrap();
            let key = Keypair::generate();
            let request = Request::new(&key, "ghost".into(), vec![], vec![]);
            let mut joiner = Joiner::new(pin, request);
            server
                .relay(joiner.start(rand_core::OsRng).unwrap())
                .await
                .unwrap();
            // PAKE, then confirmation: the request goes out with the joiner's reply to it.
            for _ in 0..2 {
                let bytes = server.receive(Some(WAIT)).await.unwrap();
                for out in joiner.receive(&bytes).unwrap().send {
                    server.relay(out).await.unwrap();
                }
            }
            drop(server);
        })
    });
    let pin = pin_rx.recv_timeout(WAIT).unwrap();
    let attempt = add(&a, &pin, &disco);
    ghost.join().unwrap();
    assert_eq!(attempt.code, 1, "{}", attempt.stdout);
    assert!(
        attempt.stderr.contains("node `ghost` asks to join"),
        "{}",
        attempt.stderr
    );
    assert!(
        attempt
            .stderr
            .contains("disconnected before it was admitted"),
        "{}",
        attempt.stderr
    );
    assert_eq!(cell_toml(&a), before, "the member's cell is unchanged");
}

#[test]
fn two_joins_at_once_on_one_server_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let disco = disco(tmp.path(), &[]);
    let (home, _home_daemon) = member(tmp.path(), "a", "home");
    let (work, _work_daemon) = member(tmp.path(), "d", "work");
    let b = node(tmp.path(), "b");
    let c = node(tmp.path(), "c");
    let (join_b, pin_b) = start_join(&b, &["--store"], &disco.address, "join-b");
    let (join_c, pin_c) = start_join(&c, &["--chain"], &disco.address, "join-c");
    assert_ne!(pin_b, pin_c);
    let add_b = {
        let (home, pin, address) = (home.clone(), pin_b.clone(), disco.address.clone());
        std::thread::spawn(move || add_by_pin(&home, &pin, &address, true))
    };
    let add_c = add(&work, &pin_c, &disco);
    let add_b = add_b.join().unwrap();
    assert_eq!(add_b.code, 0, "{}", add_b.stderr);
    assert_eq!(add_c.code, 0, "{}", add_c.stderr);
    assert_eq!(join_b.wait(WAIT).code, 0);
    assert_eq!(join_c.wait(WAIT).code, 0);
    assert!(cell_toml(&b).contains("name = \"home\""));
    assert!(cell_toml(&c).contains("name = \"work\""));
    assert!(cell_dir(&b).unwrap().join("cell.key").exists());
    assert!(!cell_dir(&c).unwrap().join("cell.key").exists());
}

#[test]
fn too_many_joins_from_one_address_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let disco = disco(tmp.path(), &["--max-slots-per-ip", "2"]);
    let nodes: Vec<_> = (0..3).map(|i| node(tmp.path(), &format!("n{i}"))).collect();
    let _first = start_join(&nodes[0], &[], &disco.address, "join-0");
    let _second = start_join(&nodes[1], &[], &disco.address, "join-1");
    let third = exo(&nodes[2], &["cell", "join", "--discovery", &disco.address]);
    assert_eq!(third.code, 1);
    assert!(
        third
            .stderr
            .contains("too many joins open from this address (limit 2)"),
        "{}",
        third.stderr
    );
}

#[test]
fn too_many_pin_attempts_from_one_address_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let disco = disco(tmp.path(), &["--max-claims-per-minute", "2"]);
    let (a, _a_daemon) = member(tmp.path(), "a", "home");
    for _ in 0..2 {
        let run = add(&a, "901-123-456", &disco);
        assert!(run.stderr.contains("no join is waiting"), "{}", run.stderr);
    }
    let run = add(&a, "902-123-456", &disco);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("too many PIN attempts"),
        "{}",
        run.stderr
    );
}

/// Reads one server frame: (type, body).
fn read_frame(stream: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    let rest = body.split_off(1);
    (body[0], rest)
}

#[test]
fn an_oversize_frame_is_refused_without_being_read() {
    let tmp = tempfile::tempdir().unwrap();
    let disco = disco(tmp.path(), &[]);
    let mut stream = std::net::TcpStream::connect(&disco.address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"EXOJOIN1").unwrap();
    stream.write_all(&[0, 0, 0, 1, 0x01]).unwrap(); // OPEN
    let (kind, _) = read_frame(&mut stream);
    assert_eq!(kind, 0x81, "OPENED");
    // A RELAY frame announcing 1 MiB, before any peer: refused by its length.
    stream.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
    stream.write_all(&[0x03]).unwrap();
    let (kind, body) = read_frame(&mut stream);
    assert_eq!(kind, 0x86, "ERROR");
    assert_eq!(u16::from_be_bytes([body[0], body[1]]), 2, "TOO_LARGE");
    assert!(String::from_utf8_lossy(&body[2..]).contains("1048576 bytes"));
    let mut rest = Vec::new();
    assert_eq!(
        stream.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the error"
    );

    // Something that is not this protocol gets a clear refusal too.
    let mut stream = std::net::TcpStream::connect(&disco.address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let (kind, body) = read_frame(&mut stream);
    assert_eq!(kind, 0x86);
    assert_eq!(u16::from_be_bytes([body[0], body[1]]), 10, "VERSION");
}

#[test]
fn without_a_server_address_the_error_says_how_to_set_one() {
    let tmp = tempfile::tempdir().unwrap();
    let b = node(tmp.path(), "b");
    let line = fails(&b, &["cell", "join", "--store"], 2);
    assert!(
        line.contains("exo config set discovery HOST:PORT"),
        "{line}"
    );
    let (a, _a_daemon) = member(tmp.path(), "a", "home");
    let line = fails(
        &a,
        &["cell", "node", "add", "--pin", "1-234-567", "--yes"],
        2,
    );
    assert!(line.contains("--discovery"), "{line}");

    // The node.toml setting is used when no flag is given.
    let disco = disco(tmp.path(), &[]);
    ok(&b, &["config", "set", "discovery", &disco.address]);
    ok(&a, &["config", "set", "discovery", &disco.address]);
    let join = Spawned::start(Some(&b), &["cell", "join", "--chain"], tmp.path(), "join-b");
    let pin = shown_pin(&join);
    ok(&a, &["cell", "node", "add", "--pin", &pin, "--yes"]);
    assert_eq!(join.wait(WAIT).code, 0);
}

#[test]
fn bad_pins_and_missing_confirmation_are_refused_before_the_pin_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let disco = disco(tmp.path(), &[]);
    let (a, _a_daemon) = member(tmp.path(), "a", "home");
    let line = fails(
        &a,
        &[
            "cell",
            "node",
            "add",
            "--pin",
            "42-81-305",
            "--yes",
            "--discovery",
            &disco.address,
        ],
        2,
    );
    assert!(line.contains("not like `42-817-305`"), "{line}");
    let b = node(tmp.path(), "b");
    let (join, pin) = start_join(&b, &["--chain"], &disco.address, "join-b");
    // No terminal and no --yes: refused without claiming the PIN...
    let run = add_by_pin(&a, &pin, &disco.address, false);
    assert_eq!(run.code, 2);
    let line = run.stderr;
    assert!(line.contains("--yes"), "{line}");
    // ... which still works.
    assert_eq!(add(&a, &pin, &disco).code, 0);
    assert_eq!(join.wait(WAIT).code, 0);
    // A node without the cell's secret cannot admit.
    let line = fails(
        &b,
        &[
            "cell",
            "node",
            "add",
            "--pin",
            "5-555-555",
            "--yes",
            "--discovery",
            &disco.address,
        ],
        1,
    );
    assert!(line.contains("does not hold the secret key"), "{line}");
}

#[test]
fn join_by_files_without_a_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _a_daemon) = member(tmp.path(), "a", "home");
    let b = node(tmp.path(), "b");
    let request = tmp.path().join("b.request");
    let answer = tmp.path().join("b.answer");
    let out = ok(
        &b,
        &[
            "cell",
            "join",
            "--store",
            "--request",
            request.to_str().unwrap(),
        ],
    );
    assert!(out.contains("exo cell node add --request"), "{out}");
    let out = ok(
        &a,
        &[
            "cell",
            "node",
            "add",
            "--request",
            request.to_str().unwrap(),
            "--answer",
            answer.to_str().unwrap(),
            "--yes",
        ],
    );
    assert!(
        out.contains("move it to the node securely and delete it"),
        "{out}"
    );
    assert_eq!(mode(&answer), 0o600, "an answer with the secret is private");
    // Another node cannot use b's answer.
    let c = node(tmp.path(), "c");
    let line = fails(
        &c,
        &["cell", "join", "--answer", answer.to_str().unwrap()],
        1,
    );
    assert!(line.contains("addressed to node"), "{line}");
    // A tampered answer is refused.
    let tampered = tmp.path().join("tampered.answer");
    let text = fs::read_to_string(&answer)
        .unwrap()
        .replace("name = \\\"home\\\"", "name = \\\"evil\\\"");
    assert!(text.contains("evil"));
    fs::write(&tampered, text).unwrap();
    let line = fails(
        &b,
        &["cell", "join", "--answer", tampered.to_str().unwrap()],
        1,
    );
    assert!(line.contains("not signed by the key of cell"), "{line}");
    assert!(cell_dir(&b).is_none());

    let out = ok(&b, &["cell", "join", "--answer", answer.to_str().unwrap()]);
    assert!(out.contains("joined cell `home`"), "{out}");
    assert_eq!(cell_toml(&a), cell_toml(&b));
    assert_eq!(mode(&cell_dir(&b).unwrap().join("cell.key")), 0o600);
    // Installing twice is refused, and changes nothing.
    let line = fails(
        &b,
        &["cell", "join", "--answer", answer.to_str().unwrap()],
        1,
    );
    assert!(line.contains("already belongs to cell `home`"), "{line}");

    // A chain-only node's answer holds no secret and is not private.
    let chain = tmp.path().join("c.request");
    let chain_answer = tmp.path().join("c.answer");
    ok(
        &c,
        &[
            "cell",
            "join",
            "--chain",
            "--request",
            chain.to_str().unwrap(),
        ],
    );
    ok(
        &a,
        &[
            "cell",
            "node",
            "add",
            "--request",
            chain.to_str().unwrap(),
            "--answer",
            chain_answer.to_str().unwrap(),
            "--yes",
        ],
    );
    assert_eq!(mode(&chain_answer), 0o644);
    assert!(fs::read_to_string(&chain_answer)
        .unwrap()
        .contains("\"secret\": null"));
    ok(
        &c,
        &["cell", "join", "--answer", chain_answer.to_str().unwrap()],
    );
    assert!(!cell_dir(&c).unwrap().join("cell.key").exists());
}

#[test]
fn bad_request_files_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _a_daemon) = member(tmp.path(), "a", "home");
    let before = cell_toml(&a);
    let b = node(tmp.path(), "b");
    let request = tmp.path().join("b.request");
    let answer = tmp.path().join("b.answer");
    ok(
        &b,
        &[
            "cell",
            "join",
            "--store",
            "--request",
            request.to_str().unwrap(),
        ],
    );
    let add_args = |req: &Path| {
        vec![
            "cell".to_string(),
            "node".into(),
            "add".into(),
            "--request".into(),
            req.to_str().unwrap().into(),
            "--answer".into(),
            answer.to_str().unwrap().into(),
            "--yes".into(),
        ]
    };
    let run = |req: &Path| {
        let args = add_args(req);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&a, &args, 1)
    };
    // Roles raised after signing.
    let forged = tmp.path().join("forged.request");
    fs::write(
        &forged,
        fs::read_to_string(&request)
            .unwrap()
            .replace("\"store\"", "\"app-host\""),
    )
    .unwrap();
    assert!(run(&forged).contains("signature"));
    // Garbage, an unknown field, a huge file.
    let garbage = tmp.path().join("garbage.request");
    fs::write(&garbage, "not json").unwrap();
    assert!(run(&garbage).contains("garbage.request"));
    let extra = tmp.path().join("extra.request");
    fs::write(
        &extra,
        fs::read_to_string(&request)
            .unwrap()
            .replacen('{', "{\"admin\": true,", 1),
    )
    .unwrap();
    assert!(run(&extra).contains("unknown field"));
    let huge = tmp.path().join("huge.request");
    fs::write(&huge, vec![b' '; 200_000]).unwrap();
    assert!(run(&huge).contains("bytes long"));
    assert!(!answer.exists());
    assert_eq!(cell_toml(&a), before);
}

/// Runs `exo -d DIR cell node add --pin PIN --discovery ADDRESS` on a terminal (`script`
/// gives it a pseudo-terminal) and types `answer` at the prompt.
fn add_on_terminal(dir: &Path, pin: &str, address: &str, answer: &str) -> support::Run {
    let command = format!(
        "{} -d {} cell node add --pin {pin} --discovery {address}",
        env!("CARGO_BIN_EXE_exo"),
        dir.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the command on a terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    // On a terminal, stdout and stderr arrive together.
    support::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn on_a_terminal_the_member_is_asked_and_no_means_no() {
    let p = pair(&[], &["--store"]);
    let declined = add_on_terminal(&p.a, &p.pin, &p.disco.address, "n");
    says(&declined, 1, "node `b` asks to join cell `home`");
    says(&declined, 1, "admit it?");
    says(&declined, 1, "declined; cell `home` is unchanged");
    says(&p.join.wait(WAIT), 1, "the member did not admit this node");
    assert!(cell_dir(&p.b).is_none());
    assert_eq!(cell_toml(&p.a), p.before);

    let (join, pin) = start_join(&p.b, &["--store"], &p.disco.address, "join-b-again");
    let admitted = add_on_terminal(&p.a, &pin, &p.disco.address, "y");
    says(&admitted, 0, "node `b` joined cell `home`");
    says(&join.wait(WAIT), 0, "joined cell `home`");
}

#[test]
fn a_member_that_disconnects_leaves_the_joiner_with_nothing_installed() {
    let p = pair(&[], &["--store"]);
    let pin: exo::join::Pin = p.pin.parse().unwrap();
    smol::block_on(async {
        let mut server = exo::discovery::client::Rendezvous::connect(&p.disco.address)
            .await
            .unwrap();
        server.claim(pin.slot).await.unwrap();
        // Claimed, then gone without a word.
    });
    says(
        &p.join.wait(WAIT),
        1,
        "the member disconnected before the join finished; nothing was installed",
    );
    assert!(cell_dir(&p.b).is_none());
}

#[test]
fn a_joiner_that_cannot_install_declines_before_the_member_changes_anything() {
    let p = pair(&[], &["--store"]);
    // While b waits, it gets a cell of its own with the same name.
    ok(&p.b, &["cell", "init", "--name", "home"]);
    says(
        &add(&p.a, &p.pin, &p.disco),
        1,
        "the joining node declined: this node already has a cell named `home`",
    );
    says(&p.join.wait(WAIT), 1, "already has a cell named `home`");
    assert_eq!(cell_toml(&p.a), p.before, "the member's cell is unchanged");
}

#[test]
fn hostile_bytes_do_not_disturb_the_server() {
    // Clients: adding them keeps `a` the only chain node, so its changes commit alone.
    let p = pair(&[], &[]);
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..40 {
        let Ok(mut stream) = std::net::TcpStream::connect(&p.disco.address) else {
            continue;
        };
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut bytes: Vec<u8> = b"EXOJOIN1".to_vec();
        if rng.bool() {
            bytes.clear();
        }
        // Frames of random types and lengths, some claiming the waiting slot.
        for _ in 0..rng.usize(1..5) {
            let body: Vec<u8> = (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect();
            bytes.extend_from_slice(&(1 + body.len() as u32).to_be_bytes());
            bytes.push(*rng.choice(&[0x01u8, 0x02, 0x03, 0x81, 0x7f]).unwrap());
            bytes.extend_from_slice(&body);
        }
        let _ = stream.write_all(&bytes);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
    // The join waiting all along still works (a random 4-byte CLAIM body naming its slot,
    // 1 to 99, has a chance below one in ten million).
    says(&add(&p.a, &p.pin, &p.disco), 0, "joined");
    says(&p.join.wait(WAIT), 0, "joined cell `home`");
    // And the server still serves new joins.
    let c = node(p._tmp.path(), "c");
    let (join, pin) = start_join(&c, &[], &p.disco.address, "join-c");
    says(&add(&p.a, &pin, &p.disco), 0, "joined");
    says(&join.wait(WAIT), 0, "joined");
}
