//! The `exo` command line, run as a user runs it: the real binary in a temporary directory.
//! Every failure must be one `error: ...` line and a non-zero exit, never a panic.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;

use support::{exo, exo_in, fails, ok};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn node(dir: &Path) {
    ok(
        dir,
        &[
            "node",
            "init",
            "--name",
            "pi",
            "--listen",
            "127.0.0.1:4001",
            "--address",
            "127.0.0.1:4001",
        ],
    );
}

fn cell_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    fs::read_dir(dir.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn version_prints_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["version"]);
    assert!(
        out.starts_with(&format!("exo {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn node_init_creates_key_and_config_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let out = ok(
        &dir,
        &[
            "node",
            "init",
            "--name",
            "pi",
            "--listen",
            "127.0.0.1:4001",
            "--address",
            "pi.local:4001",
        ],
    );
    assert!(out.contains("created node `pi`"), "{out}");

    let key = fs::read_to_string(dir.join("node.key")).unwrap();
    assert!(key.starts_with("sk_"));
    assert_eq!(mode(&dir.join("node.key")), 0o600);
    let config = fs::read_to_string(dir.join("node.toml")).unwrap();
    assert!(config.contains("name = \"pi\""), "{config}");
    assert!(config.contains("listen = \"127.0.0.1:4001\""), "{config}");
    assert!(
        config.contains("addresses = [\"pi.local:4001\"]"),
        "{config}"
    );
    assert!(!config.contains("sk_"), "node.toml must hold no secret");

    // The second init is refused and changes nothing.
    let err = fails(&dir, &["node", "init"], 1);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(fs::read_to_string(dir.join("node.key")).unwrap(), key);
    assert_eq!(fs::read_to_string(dir.join("node.toml")).unwrap(), config);
}

#[test]
fn node_init_defaults_and_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["node", "init"]);
    let config = fs::read_to_string(tmp.path().join("node.toml")).unwrap();
    assert!(config.contains("listen = \"0.0.0.0:3330\""), "{config}");

    let other = tmp.path().join("other");
    assert!(fails(&other, &["node", "init", "--name", "a b"], 2).contains("name `a b`"));
    assert!(fails(&other, &["node", "init", "--address", "nohost"], 2).contains("host:port"));
    // An unparsable --listen is a usage error from the parser: exit 2, usage on stderr.
    let run = exo(&other, &["node", "init", "--listen", "nowhere"]);
    assert_eq!(run.code, 2);
    assert!(!other.join("node.toml").exists());
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let run = exo(tmp.path(), &["frobnicate"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("Unrecognized argument") || run.stderr.contains("frobnicate"),
        "{}",
        run.stderr
    );
    let run = exo(tmp.path(), &["config", "set", "name"]);
    assert_eq!(run.code, 2);
    let run = exo(tmp.path(), &["--help"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("node"), "{}", run.stdout);
    // EXO_LOG is read when -l is absent, and checked like -l.
    let run = exo_in(tmp.path(), &["version"], &[("EXO_LOG", "a=b=c")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = exo_in(
        tmp.path(),
        &["-l", "warn", "version"],
        &[("EXO_LOG", "a=b=c")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn bad_log_filter_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let run = exo(tmp.path(), &["-l", "very=loud=indeed", "version"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("log filter"), "{}", run.stderr);
}

#[test]
fn commands_without_a_node_say_how_to_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["config", "print"][..],
        &["cell", "list"],
        &["cell", "init"],
        &["daemon"],
    ] {
        let err = fails(tmp.path(), args, 1);
        assert!(err.contains("exo node init"), "{args:?}: {err}");
    }
}

#[test]
fn unwritable_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where a folder should be: refused even for root.
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    let err = fails(&file.join("node"), &["node", "init"], 1);
    assert!(err.contains("cannot create folder"), "{err}");

    // A read-only folder (root ignores permissions, so only checked for other users).
    let ro = tmp.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    if fs::write(ro.join("probe"), "x").is_err() {
        let err = fails(&ro, &["node", "init"], 1);
        assert!(err.contains("permission"), "{err}");
    }
}

#[test]
fn config_print_and_validate() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path());
    let printed = ok(tmp.path(), &["config", "print"]);
    assert_eq!(
        printed,
        fs::read_to_string(tmp.path().join("node.toml")).unwrap()
    );
    let out = ok(tmp.path(), &["config", "validate"]);
    assert!(out.contains("valid"), "{out}");
}

#[test]
fn broken_node_toml_is_named_with_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path());
    let path = tmp.path().join("node.toml");
    let good = fs::read_to_string(&path).unwrap();

    // A misspelled key.
    fs::write(&path, good.replace("listen =", "lisen =")).unwrap();
    let err = fails(tmp.path(), &["config", "validate"], 1);
    assert!(
        err.contains("node.toml line") && err.contains("`lisen`"),
        "{err}"
    );

    // A bad value.
    fs::write(&path, good.replace("127.0.0.1:4001\"\n", "nowhere\"\n")).unwrap();
    let err = fails(tmp.path(), &["config", "validate"], 1);
    assert!(err.contains("(key `listen`)"), "{err}");

    // A truncated file: the missing field is named.
    let cut = good.find("\nlisten").unwrap();
    fs::write(&path, &good[..cut]).unwrap();
    let err = fails(tmp.path(), &["config", "validate"], 1);
    assert!(err.contains("missing field `listen`"), "{err}");

    // Garbage.
    fs::write(&path, "\u{0}\u{1}[[[").unwrap();
    let err = fails(tmp.path(), &["daemon"], 1);
    assert!(err.contains("node.toml"), "{err}");

    // `config edit` repairs a broken file: it needs only node.key to be intact.
    fs::write(&path, good.replace("listen =", "lisen =")).unwrap();
    fails(tmp.path(), &["config", "set", "name", "x"], 1);
    let script = tmp.path().join("fix.sh");
    fs::write(&script, "#!/bin/sh\nsed -i 's/^lisen =/listen =/' \"$1\"\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let editor = script.to_str().unwrap();
    let run = exo_in(
        tmp.path(),
        &["config", "edit"],
        &[("EDITOR", editor), ("VISUAL", editor)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    ok(tmp.path(), &["config", "validate"]);
}

#[test]
fn key_file_mismatch_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    node(a.path());
    node(b.path());
    fs::copy(a.path().join("node.key"), b.path().join("node.key")).unwrap();
    let err = fails(b.path(), &["config", "validate"], 1);
    assert!(err.contains("different nodes"), "{err}");
    fs::write(b.path().join("node.key"), "sk_notakey\n").unwrap();
    let err = fails(b.path(), &["config", "validate"], 1);
    assert!(err.contains("node.key"), "{err}");
}

#[test]
fn config_set_get_unset_change_every_setting() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path());
    ok(tmp.path(), &["cell", "init", "--name", "home"]);
    ok(tmp.path(), &["config", "set", "name", "kitchen"]);
    ok(tmp.path(), &["config", "set", "listen", "0.0.0.0:5000"]);
    ok(
        tmp.path(),
        &[
            "config",
            "set",
            "addresses",
            r#"["kitchen.lan:5000", "10.0.0.2:5000"]"#,
        ],
    );
    assert_eq!(ok(tmp.path(), &["config", "get", "name"]), "kitchen\n");
    assert_eq!(
        ok(tmp.path(), &["config", "get", "listen"]),
        "0.0.0.0:5000\n"
    );
    assert!(ok(tmp.path(), &["config", "get", "addresses"]).contains("kitchen.lan:5000"));

    // The node's entry in its cells follows its name and addresses.
    let nodes: serde_json::Value =
        serde_json::from_str(&ok(tmp.path(), &["cell", "node", "list", "--json"])).unwrap();
    assert_eq!(nodes[0]["name"], "kitchen");
    assert_eq!(nodes[0]["addresses"][1], "10.0.0.2:5000");

    ok(tmp.path(), &["config", "unset", "addresses"]);
    assert!(!ok(tmp.path(), &["config", "print"]).contains("addresses ="));

    // Settings at their defaults are shown too; the store's retention is in days, with
    // fractions.
    assert_eq!(
        ok(tmp.path(), &["config", "get", "chain.map_size_mb"]),
        "64\n"
    );
    assert_eq!(
        ok(tmp.path(), &["config", "get", "store.retention_days"]),
        "30.0\n"
    );
    ok(tmp.path(), &["config", "set", "store.retention_days", "7"]);
    assert_eq!(
        ok(tmp.path(), &["config", "get", "store.retention_days"]),
        "7.0\n"
    );
    ok(
        tmp.path(),
        &["config", "set", "store.retention_days", "0.5"],
    );
    assert!(ok(tmp.path(), &["config", "print"]).contains("retention_days = 0.5"));

    // Refusals leave the file as it was.
    let before = fs::read_to_string(tmp.path().join("node.toml")).unwrap();
    assert!(fails(tmp.path(), &["config", "set", "listen", "nowhere"], 1).contains("`listen`"));
    assert!(fails(tmp.path(), &["config", "set", "nmae", "x"], 1).contains("unknown field `nmae`"));
    assert!(fails(tmp.path(), &["config", "set", "id", "pk_x"], 1).contains("cannot be set"));
    assert!(
        fails(tmp.path(), &["config", "set", "name", "bad name"], 1).contains("name `bad name`")
    );
    assert!(fails(tmp.path(), &["config", "get", "nothing"], 2).contains("no setting"));
    assert!(fails(
        tmp.path(),
        &["config", "set", "--", "store.retention_days", "-1"],
        1
    )
    .contains("store.retention_days must be a number of days"));
    assert!(fails(
        tmp.path(),
        &["config", "set", "store.retention_days", "nan"],
        1
    )
    .contains("store.retention_days"));
    assert_eq!(
        fs::read_to_string(tmp.path().join("node.toml")).unwrap(),
        before
    );
}

#[test]
fn config_edit_saves_valid_and_refuses_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path());
    let script = tmp.path().join("editor.sh");

    fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/name = \"pi\"/name = \"edited\"/' \"$1\"\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let editor = script.to_str().unwrap();
    let run = exo_in(
        tmp.path(),
        &["config", "edit"],
        &[("EDITOR", editor), ("VISUAL", editor)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(ok(tmp.path(), &["config", "print"]).contains("name = \"edited\""));

    let before = fs::read_to_string(tmp.path().join("node.toml")).unwrap();
    fs::write(&script, "#!/bin/sh\necho 'bogus = 1' >> \"$1\"\n").unwrap();
    let run = exo_in(
        tmp.path(),
        &["config", "edit"],
        &[("EDITOR", editor), ("VISUAL", editor)],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("unknown field `bogus`") && run.stderr.contains("unchanged"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("node.toml")).unwrap(),
        before
    );

    let run = exo_in(
        tmp.path(),
        &["config", "edit"],
        &[("EDITOR", "false"), ("VISUAL", "false")],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        fs::read_to_string(tmp.path().join("node.toml")).unwrap(),
        before
    );
    // No scratch file is left behind.
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".node.toml"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn cell_init_writes_cell_files_with_roles() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path());
    let out = ok(tmp.path(), &["cell", "init", "--name", "home"]);
    assert!(out.contains("created cell `home`"), "{out}");
    let dirs = cell_dirs(tmp.path());
    assert_eq!(dirs.len(), 1);
    let cell_dir = &dirs[0];
    let id = cell_dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(id.starts_with("pk_"), "{id}");
    assert_eq!(mode(&cell_dir.join("cell.key")), 0o600);
    let toml = fs::read_to_string(cell_dir.join("cell.toml")).unwrap();
    assert!(toml.contains(&format!("id = \"{id}\"")), "{toml}");
    assert!(
        toml.contains(r#"roles = ["chain", "store", "app-host"]"#),
        "{toml}"
    );
    assert!(!toml.contains("sk_"));

    ok(
        tmp.path(),
        &[
            "cell",
            "init",
            "--name",
            "work",
            "--no-store",
            "--no-app-host",
        ],
    );
    let cells: serde_json::Value =
        serde_json::from_str(&ok(tmp.path(), &["cell", "list", "--json"])).unwrap();
    assert_eq!(cells.as_array().unwrap().len(), 2);
    assert_eq!(cells[0]["name"], "home");
    assert_eq!(cells[1]["name"], "work");
    assert_eq!(cells[1]["roles"], serde_json::json!(["chain"]));

    let err = fails(tmp.path(), &["cell", "init", "--name", "home"], 1);
    assert!(err.contains("already has a cell named `home`"), "{err}");
    assert_eq!(cell_dirs(tmp.path()).len(), 2);
}

#[test]
fn cell_selection_by_name_or_id() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path());
    assert!(fails(tmp.path(), &["cell", "print"], 1).contains("no cell yet"));
    ok(tmp.path(), &["cell", "init", "--name", "home"]);
    // One cell: no --cell needed.
    let printed = ok(tmp.path(), &["cell", "print"]);
    assert!(printed.contains("name = \"home\""));
    assert!(!printed.contains("sk_"), "secrets only on request");
    let with_secret = ok(tmp.path(), &["cell", "print", "--secrets"]);
    let cell_dir = &cell_dirs(tmp.path())[0];
    let key = fs::read_to_string(cell_dir.join("cell.key")).unwrap();
    assert!(with_secret.contains(key.trim()));

    ok(tmp.path(), &["cell", "init", "--name", "work"]);
    let err = fails(tmp.path(), &["cell", "node", "list"], 1);
    assert!(
        err.contains("home, work") && err.contains("--cell"),
        "{err}"
    );
    let err = fails(tmp.path(), &["cell", "print", "--cell", "nope"], 1);
    assert!(err.contains("no cell named or with id `nope`"), "{err}");

    let id = cell_dir.file_name().unwrap().to_str().unwrap();
    let by_id = ok(tmp.path(), &["cell", "print", "--cell", id]);
    assert_eq!(by_id, printed);
    let table = ok(tmp.path(), &["cell", "node", "list", "--cell", "home"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("NAME"));
    let columns: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(columns[0], "pi");
    assert!(columns[1].starts_with("pk_"));
    assert_eq!(columns[2], "chain,store,app-host");
    assert_eq!(columns[3], "127.0.0.1:4001");
    let list = ok(tmp.path(), &["cell", "list"]);
    assert!(list.lines().nth(1).unwrap().starts_with("home "), "{list}");
}

#[test]
fn corrupted_cell_toml_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path());
    ok(tmp.path(), &["cell", "init", "--name", "home"]);
    let path = cell_dirs(tmp.path())[0].join("cell.toml");
    let good = fs::read_to_string(&path).unwrap();
    fs::write(&path, good.replace("\"store\"", "\"storage\"")).unwrap();
    let err = fails(tmp.path(), &["cell", "list"], 1);
    assert!(
        err.contains("cell.toml line") && err.contains("storage"),
        "{err}"
    );
    fs::write(&path, &good[..good.len() / 2]).unwrap();
    let err = fails(tmp.path(), &["config", "validate"], 1);
    assert!(err.contains("cell.toml"), "{err}");
}

#[test]
fn keys_generate_prints_a_usable_keypair() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["keys", "generate"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("public_key = \"pk_"), "{out}");
    assert!(lines[1].starts_with("secret_key = \"sk_"), "{out}");
    assert!(lines[2].starts_with("fingerprint = \""), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(tmp.path(), &["keys", "generate", "--json"])).unwrap();
    let public = json["public_key"].as_str().unwrap();
    assert_ne!(
        Some(public),
        lines[0].split('"').nth(1),
        "each call makes a new key"
    );
    // The secret's public half is the public key printed beside it.
    let secret = json["secret_key"].as_str().unwrap();
    let keypair = exocore_protocol::identity::Keypair::from_secret_text(secret).unwrap();
    assert_eq!(keypair.public().to_string(), public);
    assert_eq!(
        keypair.public().fingerprint(),
        json["fingerprint"].as_str().unwrap()
    );
}

#[test]
fn daemon_stops_cleanly_on_sigint_and_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path());
    ok(tmp.path(), &["cell", "init"]);
    for signal in ["-INT", "-TERM"] {
        let child = Command::new(env!("CARGO_BIN_EXE_exo"))
            .arg("-d")
            .arg(tmp.path())
            .arg("daemon")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{signal}: {stderr}");
        assert!(stderr.contains("stopped"), "{stderr}");
    }
}
