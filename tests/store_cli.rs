//! `exo store ...` against a real daemon on one node: read your writes, refusals that name
//! the field or the position, deletion, JSON input and output, paging.

mod support;

use support::{cell_of, error_line, fails, ok, store_put, store_query_ids, Daemon};

/// `exo store put ...`; returns the entity id.
#[test]
fn put_is_queryable_at_once_and_delete_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let daemon = Daemon::start(dir);

    let water = store_put(
        dir,
        &[
            "new",
            "task",
            "title=Water the plants",
            "done=false",
            "priority=2",
        ],
    );
    let id = store_put(
        dir,
        &[
            "t1",
            "task",
            "--json",
            r#"{"title": "Call mum", "done": true, "tags": ["family"]}"#,
        ],
    );
    assert_eq!(id, "t1");
    // Read your writes: no waiting for a block.
    assert_eq!(
        store_query_ids(dir, "type:task done:false"),
        vec![water.clone()]
    );
    assert_eq!(store_query_ids(dir, "plants"), vec![water.clone()]);
    assert_eq!(store_query_ids(dir, "tags:family"), vec!["t1".to_string()]);

    let got: serde_json::Value =
        serde_json::from_str(&ok(dir, &["store", "get", "--json", "t1"])).unwrap();
    assert_eq!(got["status"], "live");
    assert_eq!(got["traits"][0]["type"], "task");
    assert_eq!(got["traits"][0]["fields"]["title"], "Call mum");
    assert_eq!(got["traits"][0]["fields"]["tags"][0], "family");
    let table = ok(dir, &["store", "get", "t1"]);
    assert!(table.contains("Call mum"), "{table}");
    let table = ok(dir, &["store", "query", "type:task sort:-updated"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("Water the plants") && table.contains("2 of 2"),
        "{table}"
    );

    // Paging: one per page, the cursor leads to the other.
    let run = support::exo(
        dir,
        &["store", "query", "--json", "--limit", "1", "type:task"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cursor = run.stderr.trim().rsplit(' ').next().unwrap().to_string();
    let second = ok(
        dir,
        &[
            "store",
            "query",
            "--json",
            "--limit",
            "1",
            "--cursor",
            &cursor,
            "type:task",
        ],
    );
    assert_eq!(run.stdout.lines().count() + second.lines().count(), 2);
    assert_ne!(run.stdout, second);

    let op = ok(dir, &["store", "delete", &water]);
    assert_eq!(op.trim().len(), 32);
    assert_eq!(store_query_ids(dir, "type:task"), vec!["t1".to_string()]);
    assert_eq!(store_query_ids(dir, "type:task include:deleted").len(), 2);
    let got: serde_json::Value =
        serde_json::from_str(&ok(dir, &["store", "get", "--json", &water])).unwrap();
    assert_eq!(got["status"], "deleted");

    ok(dir, &["store", "delete", "t1", "--trait", "task"]);
    assert!(store_query_ids(dir, "*").is_empty());

    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn refusals_name_the_field_or_the_position() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let _daemon = Daemon::start(dir);

    // Missing required field, refused by the daemon's schema check.
    let line = fails(dir, &["store", "put", "new", "task", "done=false"], 1);
    assert!(line.contains("`title`"), "{line}");
    // A field the schema does not have.
    let line = fails(
        dir,
        &["store", "put", "e", "note", "title=x", "colour=red"],
        1,
    );
    assert!(line.contains("colour"), "{line}");
    // An unknown trait type.
    let line = fails(dir, &["store", "put", "e", "recipe", "title=x"], 1);
    assert!(line.contains("recipe"), "{line}");
    // A value that is not of the field's kind.
    let line = fails(
        dir,
        &["store", "put", "e", "task", "title=x", "priority=high"],
        2,
    );
    assert!(line.contains("priority"), "{line}");
    // Malformed JSON.
    fails(dir, &["store", "put", "e", "task", "--json", "{title"], 2);
    // A bad query names the position.
    let line = fails(dir, &["store", "query", "type:task ( done:false"], 1);
    assert!(line.contains("at character"), "{line}");
    // A field that is not indexed.
    let line = fails(dir, &["store", "query", "file.location:x"], 1);
    assert!(line.contains("location"), "{line}");
    // A tampered cursor.
    let line = fails(
        dir,
        &["store", "query", "--cursor", &"0".repeat(50), "*"],
        1,
    );
    assert!(line.contains("cursor"), "{line}");
    // Nothing was written.
    assert_eq!(ok(dir, &["store", "query", "--json", "*"]), "");
    let line = fails(dir, &["store", "get", "e"], 1);
    assert!(line.contains("no entity"), "{line}");
}

#[test]
fn put_reads_the_json_object_from_a_file_or_standard_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let daemon = Daemon::start(dir);
    let body_of = |id: &str| -> serde_json::Value {
        let got: serde_json::Value =
            serde_json::from_str(&ok(dir, &["store", "get", "--json", id])).unwrap();
        got["traits"][0]["fields"]["body"].clone()
    };

    // A long text with quotes, new lines and non-ASCII, far beyond a comfortable argument.
    let paragraph = "Line with \"quotes\", a tab\t, accents: é à ü, and 🌱.\n";
    let body = paragraph.repeat(200_000 / paragraph.len());
    let file = tmp.path().join("note.json");
    let object = serde_json::json!({"title": "From a file", "body": body});
    std::fs::write(&file, object.to_string()).unwrap();
    let from_file = store_put(
        dir,
        &["new", "note", "--json", &format!("@{}", file.display())],
    );
    assert_eq!(body_of(&from_file), body.as_str());
    assert_eq!(store_query_ids(dir, "accents"), vec![from_file.clone()]);

    let object = serde_json::json!({"title": "From stdin", "body": "first\nsecond"});
    let run = support::exo_with_input(
        dir,
        &["store", "put", "new", "note", "--json", "-"],
        object.to_string().as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let from_stdin = run.stdout.split_whitespace().next().unwrap().to_string();
    assert_eq!(body_of(&from_stdin), "first\nsecond");

    // Refusals: a missing file, something that is not a JSON object, too much input, a text
    // over its limit (named by the daemon); nothing is written.
    let missing = tmp.path().join("missing.json");
    let line = fails(
        dir,
        &[
            "store",
            "put",
            "new",
            "note",
            "--json",
            &format!("@{}", missing.display()),
        ],
        1,
    );
    assert!(line.contains("missing.json"), "{line}");
    let run = support::exo_with_input(
        dir,
        &["store", "put", "new", "note", "--json", "-"],
        b"title = not json",
    );
    assert!(error_line(&run, 2).contains("--json is not a JSON object"));
    let run = support::exo_with_input(
        dir,
        &["store", "put", "new", "note", "--json", "-"],
        &vec![b' '; 5 << 20],
    );
    assert!(error_line(&run, 2).contains("larger than 4 MiB"));
    let huge = serde_json::json!({"title": "Too long", "body": "x".repeat(300_000)});
    std::fs::write(&file, huge.to_string()).unwrap();
    let line = fails(
        dir,
        &[
            "store",
            "put",
            "new",
            "note",
            "--json",
            &format!("@{}", file.display()),
        ],
        1,
    );
    assert!(line.contains("body"), "{line}");
    let mut both = vec![from_file, from_stdin];
    both.sort();
    let mut all = store_query_ids(dir, "*");
    all.sort();
    assert_eq!(all, both);
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn a_failed_version_check_is_a_conflict_with_exit_code_3() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let dir = nodes[0].dir.as_path();
    let daemon = Daemon::start(dir);
    let get = |id: &str| -> serde_json::Value {
        serde_json::from_str(&ok(dir, &["store", "get", "--json", id])).unwrap()
    };
    let title = |id: &str| get(id)["traits"][0]["fields"]["title"].clone();

    let id = store_put(dir, &["new", "task", "--expect", "absent", "title=First"]);
    let first = get(&id)["version"].as_str().unwrap().to_string();
    // Based on the current version: written.
    store_put(dir, &[&id, "task", "--expect", &first, "title=Second"]);
    let second = get(&id)["version"].as_str().unwrap().to_string();
    assert_ne!(first, second);

    // Based on a version that is no longer current: a conflict, nothing written.
    let line = fails(
        dir,
        &[
            "store",
            "put",
            &id,
            "task",
            "--expect",
            &first,
            "title=Lost",
        ],
        3,
    );
    assert!(line.contains("check failed"), "{line}");
    assert!(line.contains(&first) && line.contains(&second), "{line}");
    let line = fails(dir, &["store", "delete", &id, "--expect", &first], 3);
    assert!(line.contains("check failed"), "{line}");
    let line = fails(
        dir,
        &[
            "store",
            "put",
            &id,
            "task",
            "--expect",
            "absent",
            "title=Lost",
        ],
        3,
    );
    assert!(line.contains("expected to be absent"), "{line}");
    assert_eq!(title(&id), "Second");
    assert_eq!(get(&id)["version"], second.as_str());

    // A malformed version is bad usage, not a conflict.
    let line = fails(dir, &["store", "delete", &id, "--expect", "yesterday"], 2);
    assert!(line.contains("--expect"), "{line}");
    // The current version deletes; then the entity is absent again.
    ok(dir, &["store", "delete", &id, "--expect", &second]);
    store_put(dir, &[&id, "task", "--expect", "absent", "title=Again"]);
    assert_eq!(title(&id), "Again");
    let (clean, log) = daemon.stop();
    assert!(clean, "{log}");
}

#[test]
fn without_a_daemon_the_store_commands_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let line = fails(&nodes[0].dir, &["store", "query", "*"], 1);
    assert!(line.contains("no daemon answers"), "{line}");
}
