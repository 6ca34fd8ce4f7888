//! `exo store ...` against a real daemon on one node: read your writes, refusals that name
//! the field or the position, deletion, JSON input and output, paging.

mod support;

use support::{cell_of, fails, ok, store_put, store_query_ids, Daemon};

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
fn without_a_daemon_the_store_commands_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let line = fails(&nodes[0].dir, &["store", "query", "*"], 1);
    assert!(line.contains("no daemon answers"), "{line}");
}
