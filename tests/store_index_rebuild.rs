//! The index is derived data: reopened after a restart it reads the same; a schema change,
//! a missing, incomplete or damaged folder makes it rebuild from the operations, and the
//! rebuilt index answers exactly like the original.

mod support;

use std::path::Path;

use exo::chain::OperationId;
use exo::store::index::{INDEX_FORMAT_VERSION, MANIFEST_FILE, REBUILD_CHUNK_OPERATIONS};
use exo::store::{Checkpoint, Mutation, Opened, RebuildReason, Schemas, StoreIndex, Trait};
use support::store_log::{assert_same, populate, snapshot, Log, T0};

fn open(dir: &Path, schemas: Schemas) -> (StoreIndex, Opened) {
    StoreIndex::open(dir, schemas).unwrap()
}

#[test]
fn a_reopened_index_reads_the_same_and_the_mapping_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut index, opened) = open(dir.path(), Schemas::builtin());
    assert_eq!(opened, Opened::Created(RebuildReason::Missing));
    index.rebuild(Log::new()).unwrap();
    populate(&mut index, 200, 40);
    let before = snapshot(&index);
    drop(index);

    let (index, opened) = open(dir.path(), Schemas::builtin());
    assert_eq!(opened, Opened::Existing(None));
    assert_same(&snapshot(&index), &before);
    drop(index);

    // The manifest is the same bytes for the same schemas, whoever writes it.
    let other = tempfile::tempdir().unwrap();
    let (mut fresh, _) = open(other.path(), Schemas::builtin());
    fresh.rebuild(Log::new()).unwrap();
    let a = std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
    let b = std::fs::read(other.path().join(MANIFEST_FILE)).unwrap();
    assert_eq!(a, b);
    let text = String::from_utf8(a).unwrap();
    assert!(text.contains("\"s.task.priority\""), "{text}");
}

#[test]
fn a_schema_change_rebuilds_never_misreads() {
    let dir = tempfile::tempdir().unwrap();
    let (mut index, _) = open(dir.path(), Schemas::builtin());
    index.rebuild(Log::new()).unwrap();
    let log = populate(&mut index, 120, 30);
    let before = snapshot(&index);
    drop(index);

    // An app adds a type: the mapping changes, the index is rebuilt.
    let mut with_app = Schemas::builtin();
    with_app
        .add_toml(
            "[[trait]]\nname = \"myapp.recipe\"\n[[trait.field]]\nname = \"servings\"\n\
             type = \"integer\"\nindexed = true\nsorted = true\n",
        )
        .unwrap();
    let (mut index, opened) = open(dir.path(), with_app.clone());
    assert_eq!(opened, Opened::Created(RebuildReason::SchemaChanged));
    assert_eq!(index.document_count(), 0);
    index.rebuild(log.clone()).unwrap();
    assert_same(&snapshot(&index), &before);
    // The new type's fields work at once.
    let plaintext = index
        .prepare(vec![Mutation::PutTrait {
            entity: "r1".into(),
            value: Trait::new("r", "myapp.recipe").with("servings", 4i64),
        }])
        .unwrap();
    index
        .apply(
            OperationId {
                time_us: T0 + 10_000,
                node: 0,
            },
            &plaintext,
            false,
        )
        .unwrap();
    assert_eq!(
        index.query_text("servings:>=4").unwrap().entities[0].id,
        "r1"
    );
    drop(index);

    // Reopened with the same schemas: nothing to do.
    let (_, opened) = open(dir.path(), with_app);
    assert_eq!(opened, Opened::Existing(None));
    // A changed index option on an existing field is a change too.
    let mut changed_option = Schemas::empty();
    changed_option
        .add_toml(&exo::store::schema::BUILTIN_SCHEMAS_TOML.replace(
            "name = \"priority\"\ntype = \"integer\"\nindexed = true\nsorted = true",
            "name = \"priority\"\ntype = \"integer\"\nindexed = true",
        ))
        .unwrap();
    assert_ne!(changed_option, Schemas::builtin());
    let (_, opened) = open(dir.path(), changed_option);
    assert_eq!(opened, Opened::Created(RebuildReason::SchemaChanged));
}

#[test]
fn a_deleted_folder_is_rebuilt_with_the_same_results_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut index, _) = open(dir.path(), Schemas::builtin());
    index.rebuild(Log::new()).unwrap();
    // More operations than one rebuild chunk, so histories span chunks.
    let log = populate(&mut index, REBUILD_CHUNK_OPERATIONS + 500, 150);
    let before = snapshot(&index);
    drop(index);

    std::fs::remove_dir_all(dir.path()).unwrap();
    let (mut index, opened) = open(dir.path(), Schemas::builtin());
    assert_eq!(opened, Opened::Created(RebuildReason::Missing));
    let report = index.rebuild(log.clone()).unwrap();
    assert_eq!(report.applied, log.len());
    assert!(report.refused.is_empty());
    assert_same(&snapshot(&index), &before);

    // Operations in another order (as sync might deliver them) fold to the same state.
    let mut shuffled = log.clone();
    shuffled.reverse();
    shuffled.swap(3, 1000);
    index.rebuild(shuffled).unwrap();
    assert_same(&snapshot(&index), &before);
}

#[test]
fn damaged_or_incomplete_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut index, _) = open(dir.path(), Schemas::builtin());
    index.rebuild(Log::new()).unwrap();
    let log = populate(&mut index, 60, 20);
    let before = snapshot(&index);
    drop(index);

    // A damaged segment file (a bad disk, a bit flip) fails its checksum.
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "store" || x == "idx"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let (mut index, opened) = open(dir.path(), Schemas::builtin());
    assert!(
        matches!(opened, Opened::Created(RebuildReason::Corrupted(_))),
        "{opened:?}"
    );
    index.rebuild(log.clone()).unwrap();
    assert_same(&snapshot(&index), &before);
    drop(index);

    // tantivy's own metadata unreadable.
    std::fs::write(dir.path().join("meta.json"), b"{ not json").unwrap();
    let (mut index, opened) = open(dir.path(), Schemas::builtin());
    assert!(
        matches!(opened, Opened::Created(RebuildReason::Corrupted(_))),
        "{opened:?}"
    );
    index.rebuild(log.clone()).unwrap();
    drop(index);

    // A rebuild that never finished (crash) left no manifest.
    std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
    let (mut index, opened) = open(dir.path(), Schemas::builtin());
    assert_eq!(opened, Opened::Created(RebuildReason::Missing));
    index.rebuild(log.clone()).unwrap();
    drop(index);

    // A manifest of another format.
    let manifest = dir.path().join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let current = format!("\"format\": {INDEX_FORMAT_VERSION}");
    assert!(text.contains(&current), "{text}");
    std::fs::write(&manifest, text.replace(&current, "\"format\": 99")).unwrap();
    let (mut index, opened) = open(dir.path(), Schemas::builtin());
    assert_eq!(opened, Opened::Created(RebuildReason::FormatChanged));
    index.rebuild(log).unwrap();
    assert_same(&snapshot(&index), &before);
}

#[test]
fn the_chain_checkpoint_is_stored_with_the_commit_that_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut index, _) = open(dir.path(), Schemas::builtin());
    index.rebuild(Log::new()).unwrap();
    assert_eq!(index.checkpoint(), None);
    let log = populate(&mut index, 100, 20);
    let before = snapshot(&index);

    // The operations of blocks up to height 3 are applied (again: nothing changes, but the
    // checkpoint is recorded).
    let checkpoint = Checkpoint {
        height: 3,
        hash: [7; 32],
    };
    let report = index
        .apply_through(log[..10].iter().cloned(), Some(checkpoint))
        .unwrap();
    assert_eq!(report.entities_changed, 0);
    assert_eq!(index.checkpoint(), Some(checkpoint));
    // Later commits of pending operations keep it.
    let plaintext = index
        .prepare(vec![Mutation::PutTrait {
            entity: "late".into(),
            value: Trait::new("n", "note").with("title", "late"),
        }])
        .unwrap();
    let late = OperationId {
        time_us: T0 + 1_000_000,
        node: 9,
    };
    index.apply(late, &plaintext, false).unwrap();
    drop(index);

    let (mut index, opened) = open(dir.path(), Schemas::builtin());
    assert_eq!(opened, Opened::Existing(Some(checkpoint)));
    assert_eq!(index.query_text("late").unwrap().entities.len(), 1);
    // Replaying what the index already holds (as a restart does with the pending
    // operations) is idempotent.
    let mut replay = log.clone();
    replay.push((late, plaintext, false));
    let again = index.apply_batch(replay).unwrap();
    assert_eq!(again.entities_changed, 0);

    // A rebuild forgets the checkpoint until one is given again.
    index.rebuild(log.clone()).unwrap();
    assert_eq!(index.checkpoint(), None);
    assert_same(&snapshot(&index), &before);
    drop(index);
    let (mut index, opened) = open(dir.path(), Schemas::builtin());
    assert_eq!(opened, Opened::Existing(None));
    let next = Checkpoint {
        height: 4,
        hash: [8; 32],
    };
    index.apply_through(Log::new(), Some(next)).unwrap();
    drop(index);
    let (_, opened) = open(dir.path(), Schemas::builtin());
    assert_eq!(opened, Opened::Existing(Some(next)));
}
