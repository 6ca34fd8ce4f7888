//! Bad input to the store through the real binary and daemon: an index folder damaged while
//! the daemon is stopped is rebuilt from the chain with nothing lost, and oversize values are
//! refused with one error line naming the field, storing nothing.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{cell_dir, cell_of, fails, ok, store_put, Daemon};

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Overwrites `path` with garbage of the same length (at least 64 bytes).
fn scramble(path: &Path) {
    let len = fs::metadata(path).unwrap().len().max(64) as usize;
    let garbage: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(131) ^ 0xa5) as u8)
        .collect();
    fs::write(path, garbage).unwrap();
}

/// JSON lines without the `pending` flag, which flips when a block commits an operation.
fn settled(json_lines: &str) -> String {
    json_lines
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            v.as_object_mut().unwrap().remove("pending");
            v.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the queries answer, to compare before and after a rebuild.
fn snapshot(dir: &Path) -> Vec<String> {
    vec![
        settled(&ok(
            dir,
            &["store", "query", "--json", "type:task sort:task.priority"],
        )),
        sorted_ids(dir, "priority:>=3").join(","),
        sorted_ids(dir, "type:task include:deleted").join(","),
        sorted_ids(dir, "tags:garden").join(","),
        sorted_ids(dir, "plants").join(","),
        sorted_ids(dir, "type:note").join(","),
        settled(&ok(dir, &["store", "get", "--json", "n1"])),
    ]
}

/// Stops the daemon, damages the index with `damage`, restarts and checks that it rebuilt
/// from the chain (for `reason`) and answers as before.
fn damage_and_restart(
    dir: &Path,
    daemon: Daemon,
    before: &[String],
    reason: &str,
    damage: impl Fn(&Path),
) -> Daemon {
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    let store = cell_dir(dir).join("store");
    let files = files_under(&store);
    assert!(
        !files.is_empty(),
        "no index files under {}",
        store.display()
    );
    for file in &files {
        damage(file);
    }
    let daemon = Daemon::start(dir);
    daemon.wait_log("entity index built", Duration::from_secs(20));
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "rebuilding the entity index from the chain: {reason}"
        )),
        "{log}"
    );
    assert_eq!(snapshot(dir), before);
    daemon
}

#[test]
fn a_corrupted_index_is_rebuilt_from_the_chain_with_nothing_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let daemon = Daemon::start(dir);
    let ids: Vec<String> = (0..6)
        .map(|i| {
            store_put(
                dir,
                &[
                    "new",
                    "task",
                    &format!("title=Task {i} water the plants"),
                    &format!("priority={i}"),
                ],
            )
        })
        .collect();
    store_put(
        dir,
        &[
            "t1",
            "task",
            "--json",
            r#"{"title": "Weed", "priority": 9, "tags": ["garden"]}"#,
        ],
    );
    store_put(dir, &["n1", "note", "title=Shopping", "body=milk and eggs"]);
    ok(dir, &["store", "delete", &ids[0]]);
    ok(dir, &["store", "delete", "t1", "--trait", "task"]);
    store_put(
        dir,
        &[
            "t1",
            "task",
            "title=Weed again",
            "priority=8",
            "tags=garden",
        ],
    );
    let before = snapshot(dir);
    assert_eq!(sorted_ids(dir, "priority:>=3").len(), 4, "{before:?}");
    assert_eq!(sorted_ids(dir, "type:task include:deleted").len(), 7);
    assert_eq!(sorted_ids(dir, "tags:garden"), vec!["t1".to_string()]);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    let daemon = Daemon::start(dir);
    daemon.wait_log("entity index opened", Duration::from_secs(10));
    assert_eq!(snapshot(dir), before);

    // Tantivy's files scrambled, the manifest kept: the checksums catch it.
    let daemon = damage_and_restart(dir, daemon, &before, "the index is damaged", |file| {
        if !file.ends_with(exo::store::index::MANIFEST_FILE) {
            scramble(file);
        }
    });
    // Every file truncated to nothing, the manifest too.
    let daemon = damage_and_restart(dir, daemon, &before, "", |file| {
        fs::write(file, b"").unwrap();
    });
    // Every file overwritten with garbage, the manifest too.
    let daemon = damage_and_restart(dir, daemon, &before, "", scramble);

    // The rebuilt index takes writes and keeps them over a plain restart.
    store_put(dir, &["n2", "note", "title=After the rebuild"]);
    assert_eq!(
        sorted_ids(dir, "type:note"),
        vec!["n1".to_string(), "n2".to_string()]
    );
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
    let daemon = Daemon::start(dir);
    daemon.wait_log("entity index opened", Duration::from_secs(10));
    assert_eq!(
        sorted_ids(dir, "type:note"),
        vec!["n1".to_string(), "n2".to_string()]
    );
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn oversize_values_are_refused_naming_the_field_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let _daemon = Daemon::start(dir);

    // A `string` field at its limit (4096 bytes) is taken...
    let at_limit = format!("https://example.org/{}", "a".repeat(4096 - 20));
    assert_eq!(at_limit.len(), 4096);
    store_put(dir, &["b0", "bookmark", &format!("url={at_limit}")]);
    // ...one byte more is refused, naming the field, as an argument or in JSON.
    let over = format!("{at_limit}a");
    let line = fails(
        dir,
        &["store", "put", "b1", "bookmark", &format!("url={over}")],
        1,
    );
    assert!(line.contains("url"), "{line}");
    let json = serde_json::json!({ "url": over }).to_string();
    let line = fails(dir, &["store", "put", "b1", "bookmark", "--json", &json], 1);
    assert!(line.contains("url"), "{line}");
    // An oversize `string` item in a list field.
    let json = serde_json::json!({ "title": "x", "tags": ["ok", "t".repeat(4097)] }).to_string();
    let line = fails(dir, &["store", "put", "t1", "task", "--json", &json], 1);
    assert!(line.contains("tags"), "{line}");
    // A list of more than 1024 items.
    let tags: Vec<String> = (0..1025).map(|i| format!("t{i}")).collect();
    let json = serde_json::json!({ "title": "x", "tags": tags }).to_string();
    let line = fails(dir, &["store", "put", "t2", "task", "--json", &json], 1);
    assert!(line.contains("tags"), "{line}");
    // Over-long names: a trait type and a field name of 65 bytes.
    let line = fails(dir, &["store", "put", "e", &"r".repeat(65), "title=x"], 1);
    assert!(
        line.contains(&"r".repeat(65)) || line.contains("64"),
        "{line}"
    );

    // Nothing but the one at the limit was stored.
    assert_eq!(sorted_ids(dir, "*"), vec!["b0".to_string()]);
    for id in ["b1", "t1", "t2", "e"] {
        let line = fails(dir, &["store", "get", id], 1);
        assert!(line.contains("no entity"), "{line}");
    }
    let got: serde_json::Value =
        serde_json::from_str(&ok(dir, &["store", "get", "--json", "b0"])).unwrap();
    assert_eq!(got["traits"][0]["fields"]["url"], at_limit.as_str());
}

#[test]
fn malformed_json_is_refused_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let _daemon = Daemon::start(dir);

    // `{title` is covered in store_cli.rs; these are other shapes of bad JSON.
    for json in [
        "",
        r#"["title", "x"]"#,
        r#"{"title": "x""#,
        r#"{"title": "x"} trailing"#,
        r#""just a string""#,
    ] {
        let run = support::exo(dir, &["store", "put", "e", "task", "--json", json]);
        assert_ne!(run.code, 0, "{json}: {}", run.stdout);
        let line = run.stderr.trim();
        assert!(line.starts_with("error: "), "{json}: {line}");
        assert_eq!(line.lines().count(), 1, "{json}: {line}");
    }
    // A nested object is no field value; the error names the field.
    let run = support::exo(
        dir,
        &[
            "store",
            "put",
            "e",
            "task",
            "--json",
            r#"{"title": {"a": 1}}"#,
        ],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("title"), "{}", run.stderr);
    // An unknown trait type given with --json is refused naming the type.
    let line = fails(
        dir,
        &["store", "put", "e", "recipe", "--json", r#"{"title": "x"}"#],
        1,
    );
    assert!(line.contains("recipe"), "{line}");
    assert_eq!(ok(dir, &["store", "query", "--json", "*"]), "");
}

fn sorted_ids(dir: &Path, query: &str) -> Vec<String> {
    let mut ids = support::store_query_ids(dir, query);
    ids.sort();
    ids
}
