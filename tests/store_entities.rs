//! The store's write path and entity derivation, through the on-disk index: schema
//! validation, all-or-nothing requests, optimistic concurrency, deletion and resurrection,
//! operations arriving out of order, and untrusted entry bytes.

use exo::chain::{EntryKey, Operation, OperationId};
use exo::store::{
    EntityStatus, Entry, Expected, Mutation, MutationError, Opened, Reference, Scalar, Schemas,
    StoreIndex, Trait, ValidationError, Value,
};
use exocore_protocol::identity::Keypair;

const T0: u64 = 1_767_225_600_000_000;

struct Store {
    _dir: tempfile::TempDir,
    index: StoreIndex,
    next_us: u64,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, opened) = StoreIndex::open(dir.path(), Schemas::builtin()).unwrap();
        assert!(matches!(opened, Opened::Created(_)));
        index
            .rebuild(Vec::<(OperationId, Vec<u8>, bool)>::new())
            .unwrap();
        Store {
            _dir: dir,
            index,
            next_us: T0,
        }
    }

    fn next_op(&mut self) -> OperationId {
        self.next_us += 1_000_000;
        OperationId {
            time_us: self.next_us,
            node: 1,
        }
    }

    fn write(&mut self, mutations: Vec<Mutation>) -> Result<OperationId, MutationError> {
        let plaintext = self.index.prepare(mutations)?;
        let op = self.next_op();
        self.index.apply(op, &plaintext, false).unwrap();
        Ok(op)
    }
}

fn put(entity: &str, value: Trait) -> Mutation {
    Mutation::PutTrait {
        entity: entity.into(),
        value,
    }
}

fn task(id: &str, title: &str) -> Trait {
    Trait::new(id, "task").with("title", title)
}

#[test]
fn traits_that_do_not_fit_their_schema_are_refused_naming_the_field() {
    let mut store = Store::new();
    let cases: Vec<(Trait, &str)> = vec![
        (
            Trait::new("t", "recipe").with("title", "x"),
            "unknown trait type `recipe`",
        ),
        (
            task("t", "x").with("colour", "red"),
            "field `colour` is not in the schema",
        ),
        (
            task("t", "x").with("done", "no"),
            "field `done` must be boolean, found string",
        ),
        (
            task("t", "x").with("priority", 1.5),
            "field `priority` must be integer, found float",
        ),
        (
            task("t", "x").with("tags", "one"),
            "field `tags` must be list<string>, found string",
        ),
        (
            task("t", "x").with("tags", Value::List(vec![Scalar::Integer(1)])),
            "field `tags` must be list<string>, found a list holding a integer",
        ),
        (
            Trait::new("t", "task").with("done", true),
            "field `title` is required",
        ),
        (
            Trait::new("b", "bookmark").with("url", "x".repeat(5000)),
            "field `url` is 5000 bytes",
        ),
        (task("t/x", "x"), "trait id `t/x`"),
        (
            task("t", "x").with("priority", Value::Float(f64::NAN)),
            "field `priority`",
        ),
    ];
    for (value, expected) in cases {
        let error = store.write(vec![put("e1", value)]).unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "`{error}` should contain `{expected}`"
        );
    }
    let error = store
        .write(vec![put("e1", task("t", "x").with("done", "no"))])
        .unwrap_err();
    assert!(
        matches!(&error, MutationError::Invalid { index: 0, error, .. }
            if matches!(**error, ValidationError::WrongType { .. })),
        "{error:?}"
    );
    assert!(store.write(vec![]).is_err());
    assert!(store
        .write(vec![put("bad id", task("t", "x"))])
        .unwrap_err()
        .to_string()
        .contains("entity id `bad id`"));
    assert_eq!(store.index.document_count(), 0);
}

#[test]
fn a_request_applies_all_or_nothing() {
    let mut store = Store::new();
    // The second mutation is invalid: the first is not applied either.
    let error = store
        .write(vec![
            put("e1", task("t", "first")),
            put("e2", task("t", "second").with("done", 3i64)),
        ])
        .unwrap_err();
    assert!(error.to_string().contains("mutation 1"));
    assert!(store.index.get("e1").unwrap().is_none());
    // A failing check refuses mutations before and after it.
    let error = store
        .write(vec![
            put("e1", task("t", "first")),
            Mutation::Check {
                entity: "e3".into(),
                expected: Expected::Version(OperationId {
                    time_us: 1,
                    node: 1,
                }),
            },
            put("e2", task("t", "second")),
        ])
        .unwrap_err();
    assert!(matches!(
        error,
        MutationError::CheckFailed {
            index: 1,
            actual: None,
            ..
        }
    ));
    assert_eq!(store.index.document_count(), 0);
    // A valid request touching two entities applies to both, in one operation.
    let op = store
        .write(vec![
            put("e1", task("t", "first")),
            put("e2", task("t", "second")),
        ])
        .unwrap();
    assert_eq!(store.index.get("e1").unwrap().unwrap().version, op);
    assert_eq!(store.index.get("e2").unwrap().unwrap().version, op);
    let results = store.index.query_text(&format!("op:{op}")).unwrap();
    assert_eq!(results.entities.len(), 2);
}

#[test]
fn checks_give_optimistic_concurrency() {
    let mut store = Store::new();
    let absent = Mutation::Check {
        entity: "e1".into(),
        expected: Expected::Absent,
    };
    let v1 = store
        .write(vec![absent.clone(), put("e1", task("t", "v1"))])
        .unwrap();
    // Creating it again "only if absent" fails.
    let error = store
        .write(vec![absent.clone(), put("e1", task("t", "again"))])
        .unwrap_err();
    assert!(matches!(error, MutationError::CheckFailed { actual: Some(v), .. } if v == v1));
    assert!(error.to_string().contains("nothing was applied"));
    // Two writers read v1; the first to write wins, the second is told.
    let at_v1 = Mutation::Check {
        entity: "e1".into(),
        expected: Expected::Version(v1),
    };
    let v2 = store
        .write(vec![at_v1.clone(), put("e1", task("t", "writer A"))])
        .unwrap();
    let error = store
        .write(vec![at_v1, put("e1", task("t", "writer B"))])
        .unwrap_err();
    assert!(matches!(error, MutationError::CheckFailed { actual: Some(v), .. } if v == v2));
    let entity = store.index.get("e1").unwrap().unwrap();
    assert_eq!(
        entity.traits[0].value.get("title"),
        Some(&"writer A".into())
    );
    // A check alone does not touch the entity.
    store
        .write(vec![Mutation::Check {
            entity: "e1".into(),
            expected: Expected::Version(v2),
        }])
        .unwrap();
    assert_eq!(store.index.get("e1").unwrap().unwrap().version, v2);
    // Deleted counts as absent.
    store
        .write(vec![Mutation::DeleteEntity {
            entity: "e1".into(),
        }])
        .unwrap();
    store
        .write(vec![absent, put("e1", task("t", "reborn"))])
        .unwrap();
}

#[test]
fn deletion_and_resurrection() {
    let mut store = Store::new();
    let created = store
        .write(vec![
            put("e1", task("t1", "water plants")),
            put(
                "e1",
                Trait::new("n1", "note").with("body", "ferns need more"),
            ),
        ])
        .unwrap();
    let after_trait_delete = store
        .write(vec![Mutation::DeleteTrait {
            entity: "e1".into(),
            trait_id: "n1".into(),
        }])
        .unwrap();
    let entity = store.index.get("e1").unwrap().unwrap();
    assert_eq!(entity.status, EntityStatus::Live);
    assert_eq!(entity.live_traits().count(), 1);
    assert_eq!(entity.version, after_trait_delete);
    assert_eq!(store.index.query_text("ferns").unwrap().entities.len(), 0);
    assert_eq!(store.index.query_text("plants").unwrap().entities.len(), 1);

    let deleted = store
        .write(vec![Mutation::DeleteEntity {
            entity: "e1".into(),
        }])
        .unwrap();
    let entity = store.index.get("e1").unwrap().unwrap();
    assert_eq!(entity.status, EntityStatus::Deleted);
    assert_eq!(entity.deleted_us, Some(deleted.time_us));
    assert_eq!(entity.created_us, Some(created.time_us));
    assert!(store
        .index
        .query_text("plants")
        .unwrap()
        .entities
        .is_empty());
    assert!(store
        .index
        .query_text("type:task")
        .unwrap()
        .entities
        .is_empty());
    // On request, deleted entities come back with their deleted traits.
    let results = store.index.query_text("plants include:deleted").unwrap();
    assert_eq!(results.entities.len(), 1);
    let e = &results.entities[0];
    assert_eq!(e.status, EntityStatus::Deleted);
    assert_eq!(e.traits.len(), 2);
    assert!(e.traits.iter().all(|t| t.deleted_us.is_some()));

    let reborn = store
        .write(vec![put(
            "e1",
            Trait::new("n2", "note").with("title", "back again"),
        )])
        .unwrap();
    let entity = store.index.get("e1").unwrap().unwrap();
    assert_eq!(entity.status, EntityStatus::Live);
    assert_eq!(entity.created_us, Some(reborn.time_us));
    assert_eq!(entity.deleted_us, None);
    assert_eq!(entity.live_traits().count(), 1);
    assert_eq!(store.index.query_text("back").unwrap().entities.len(), 1);
    assert!(store
        .index
        .query_text("plants")
        .unwrap()
        .entities
        .is_empty());
}

#[test]
fn operations_arriving_out_of_order_fold_by_operation_id() {
    let mut store = Store::new();
    let older = OperationId {
        time_us: T0 + 10,
        node: 2,
    };
    let newer = OperationId {
        time_us: T0 + 20,
        node: 1,
    };
    let put_title = |title: &str| Entry::Mutations(vec![put("e1", task("t", title))]).to_bytes();
    // The newer one is indexed first (written here); the older arrives later (synced).
    store
        .index
        .apply(newer, &put_title("newer"), false)
        .unwrap();
    store.index.apply(older, &put_title("older"), true).unwrap();
    let entity = store.index.get("e1").unwrap().unwrap();
    assert_eq!(entity.traits[0].value.get("title"), Some(&"newer".into()));
    assert_eq!(entity.created_us, Some(older.time_us));
    assert_eq!(entity.version, newer);
    assert!(entity.pending);
    // Applying again is idempotent; committing raises the flag.
    let report = store.index.apply(newer, &put_title("newer"), true).unwrap();
    assert_eq!(report.entities_changed, 1);
    assert!(!store.index.get("e1").unwrap().unwrap().pending);
    let report = store.index.apply(newer, &put_title("newer"), true).unwrap();
    assert_eq!(report.entities_changed, 0);
    // An entity deletion older than a put does not delete it; a newer one does.
    let delete = Entry::Mutations(vec![Mutation::DeleteEntity {
        entity: "e1".into(),
    }])
    .to_bytes();
    store
        .index
        .apply(
            OperationId {
                time_us: T0 + 15,
                node: 3,
            },
            &delete,
            true,
        )
        .unwrap();
    assert_eq!(
        store.index.get("e1").unwrap().unwrap().status,
        EntityStatus::Live
    );
    store
        .index
        .apply(
            OperationId {
                time_us: T0 + 25,
                node: 3,
            },
            &delete,
            true,
        )
        .unwrap();
    assert_eq!(
        store.index.get("e1").unwrap().unwrap().status,
        EntityStatus::Deleted
    );
}

#[test]
fn entries_travel_sealed_in_chain_operations() {
    let mut store = Store::new();
    let cell = Keypair::generate();
    let node = Keypair::generate();
    let key = EntryKey::from_cell_keypair(&cell);
    let plaintext = store
        .index
        .prepare(vec![put(
            "e1",
            Trait::new("m", "collection_member").with("collection", Reference::entity("c1")),
        )])
        .unwrap();
    let id = OperationId::new(T0, &node.public());
    let op = Operation::new_entry(&cell.public(), &key, id, &node, &plaintext).unwrap();
    let opened = Operation::from_bytes(&op.to_bytes())
        .unwrap()
        .open_entry(&key)
        .unwrap();
    store.index.apply(op.id, &opened, false).unwrap();
    assert_eq!(
        store.index.query_text("ref:c1").unwrap().entities[0].id,
        "e1"
    );
}

#[test]
fn untrusted_entry_bytes_never_panic() {
    let entry = Entry::Mutations(vec![
        put(
            "e1",
            task("t", "hello")
                .with("tags", Value::List(vec![Scalar::String("a".into())]))
                .with("due", Value::Timestamp(5)),
        ),
        Mutation::DeleteTrait {
            entity: "e1".into(),
            trait_id: "x".into(),
        },
        Mutation::Check {
            entity: "e1".into(),
            expected: Expected::Version(OperationId {
                time_us: 1,
                node: 2,
            }),
        },
    ]);
    let bytes = entry.to_bytes();
    assert_eq!(Entry::from_bytes(&bytes).unwrap(), entry);
    for len in 0..bytes.len() {
        assert!(Entry::from_bytes(&bytes[..len]).is_err(), "prefix {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Entry::from_bytes(&longer).is_err());
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x10, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let _ = Entry::from_bytes(&b);
        }
    }
    // A count claiming 2^60 mutations, a string claiming 2^62 bytes.
    let mut huge = vec![0u8; 4];
    huge.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(Entry::from_bytes(&huge).is_err());
    let mut huge = bytes.clone();
    huge[23] = 0x40;
    assert!(Entry::from_bytes(&huge).is_err());
    // Pseudo-random inputs (xorshift, fixed seed).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let mut input = bytes[..bytes.len().min(len)].to_vec();
        for (j, byte) in input.iter_mut().enumerate() {
            if (x >> (j % 64)) & 3 == 0 {
                *byte = (x >> 8) as u8;
            }
        }
        let _ = Entry::from_bytes(&input);
    }
    // The index skips invalid entries whole and reports them.
    let mut store = Store::new();
    let mut bad = bytes.clone();
    bad.truncate(10);
    let op = store.next_op();
    let report = store.index.apply(op, &bad, false).unwrap();
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.applied, 0);
    assert_eq!(store.index.document_count(), 0);
}
