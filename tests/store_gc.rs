//! Garbage collection never loses the current state: a compacted history folds to the same
//! entity as the whole history, less the traits and entities deleted before the retention
//! horizon; an index collected as it goes answers like a rebuild collected once.

mod support;

use exo::chain::OperationId;
use exo::store::{Entity, EntityHistory, EntityStatus, Mutation, Schemas, StoreIndex, Trait};
use support::store_log::{assert_same, populate, snapshot, Log, T0};

/// One generated operation: id, committed, its mutations of entity `e`.
type Op = (OperationId, bool, Vec<Mutation>);

/// A random history of entity `e` over traits `a`, `b`, `c`: puts, trait and entity
/// deletions, most operations committed. Sorted by operation id.
fn random_ops(rng: &mut fastrand::Rng) -> Vec<Op> {
    let count = rng.usize(1..40);
    (0..count)
        .map(|i| {
            let id = OperationId {
                time_us: 1_000 + i as u64 * 10 + rng.u64(0..10),
                node: rng.u64(0..3),
            };
            let mutations = (0..rng.usize(1..4))
                .map(|_| {
                    let trait_id = ["a", "b", "c"][rng.usize(0..3)];
                    match rng.u8(0..10) {
                        0..=5 => Mutation::PutTrait {
                            entity: "e".into(),
                            value: Trait::new(trait_id, "note").with("title", format!("v{i}")),
                        },
                        6..=8 => Mutation::DeleteTrait {
                            entity: "e".into(),
                            trait_id: trait_id.into(),
                        },
                        _ => Mutation::DeleteEntity { entity: "e".into() },
                    }
                })
                .collect();
            (id, rng.u8(0..100) < 85, mutations)
        })
        .collect()
}

fn history_of(ops: &[Op]) -> EntityHistory {
    let mut history = EntityHistory::new("e");
    for (id, committed, mutations) in ops {
        history.insert(*id, *committed, mutations.clone());
    }
    history
}

/// The entity that garbage collection at `horizon` must leave, derived from the whole
/// history's fold without compacting: traits (and a whole entity) deleted by an operation
/// of the leading run of committed operations older than the horizon are forgotten. (An
/// entity deleted there stays forgotten even if a later operation puts and deletes a trait
/// without making it live again.)
fn retained(ops: &[Op], horizon: u64) -> Entity {
    let mut entity = history_of(ops).fold();
    let compacted: Vec<&Op> = ops
        .iter()
        .take_while(|(id, committed, _)| *committed && id.time_us < horizon)
        .collect();
    let Some(through) = compacted.last().map(|(id, _, _)| *id) else {
        return entity;
    };
    let forgotten = |t: &exo::store::TraitState| t.deleted_us.is_some() && t.version <= through;
    // Generated operation times are unique: the deletion's time says which operation it was.
    if entity.status == EntityStatus::Deleted
        && entity.deleted_us.is_some_and(|d| d <= through.time_us)
    {
        entity.status = EntityStatus::Absent;
        entity.created_us = None;
        entity.deleted_us = None;
    }
    entity.traits.retain(|t| !forgotten(t));
    entity
}

fn assert_state(actual: &Entity, expected: &Entity, context: &str) {
    if expected.status == EntityStatus::Absent {
        // Not returned at all: only the status and version (for checks) matter.
        assert_eq!(actual.status, EntityStatus::Absent, "{context}");
        assert_eq!(actual.version, expected.version, "{context}");
    } else {
        assert_eq!(actual, expected, "{context}");
    }
}

#[test]
fn compaction_keeps_the_current_state_at_every_horizon() {
    let mut rng = fastrand::Rng::with_seed(5);
    for seed in 0..400 {
        let ops = random_ops(&mut rng);
        let last = ops.last().unwrap().0.time_us;
        let mut shuffled = ops.clone();
        rng.shuffle(&mut shuffled);
        for horizon in [0, 1_000, 1_100, rng.u64(1_000..=last), last, last + 1] {
            let mut history = history_of(&shuffled);
            let whole = history.fold();
            history.compact(horizon);
            let context = format!("seed {seed}, horizon {horizon}: {ops:?}");
            assert_state(&history.fold(), &retained(&ops, horizon), &context);
            // Live state never changes: only deletions older than the horizon go.
            assert_eq!(
                history.fold().live_traits().count(),
                whole.live_traits().count()
            );
            // Nothing is left to do at this horizon, and the index is told when there is.
            assert!(!history.clone().compact(horizon), "{context}");
            assert!(
                history.collectable_from_us().is_none_or(|t| t >= horizon),
                "{context}"
            );
        }
    }
}

#[test]
fn compacting_as_operations_come_equals_compacting_once() {
    let mut rng = fastrand::Rng::with_seed(11);
    for seed in 0..400 {
        let ops = random_ops(&mut rng);
        let last = ops.last().unwrap().0.time_us;
        let split = rng.usize(0..=ops.len());
        let first_horizon = ops.get(split).map_or(last, |(id, _, _)| id.time_us);
        let final_horizon = rng.u64(first_horizon..=last + 1);
        // The first operations, collected at a horizon they reach, then the others (newer),
        // then collected again.
        let mut incremental = history_of(&ops[..split]);
        incremental.compact(rng.u64(0..=first_horizon));
        for (id, committed, mutations) in &ops[split..] {
            incremental.insert(*id, *committed, mutations.clone());
        }
        incremental.compact(final_horizon);
        let mut once = history_of(&ops);
        once.compact(final_horizon);
        let context = format!("seed {seed}, split {split}: {ops:?}");
        assert_eq!(incremental.fold(), once.fold(), "{context}");
        assert_state(
            &incremental.fold(),
            &retained(&ops, final_horizon),
            &context,
        );
    }
}

#[test]
fn replayed_and_late_operations_do_not_fold_again_below_the_compacted_state() {
    let op = |t| OperationId {
        time_us: t,
        node: 1,
    };
    let put = |title: &str| {
        vec![Mutation::PutTrait {
            entity: "e".into(),
            value: Trait::new("a", "note").with("title", title),
        }]
    };
    let mut history = EntityHistory::new("e");
    history.insert(op(10), true, put("first"));
    history.insert(
        op(20),
        true,
        vec![Mutation::DeleteEntity { entity: "e".into() }],
    );
    assert_eq!(history.fold().status, EntityStatus::Deleted);
    assert!(history.compact(30));
    assert_eq!(history.fold().status, EntityStatus::Absent);
    assert!(history.entries.is_empty());
    // A restart replays operations already folded: nothing changes.
    assert!(!history.insert(op(10), true, put("first")));
    assert!(!history.insert(op(20), true, vec![]));
    // An operation older than the compacted state (a node back after longer than the
    // retention period) does not resurrect the collected entity.
    assert!(!history.insert(op(15), true, put("late")));
    assert_eq!(history.fold().status, EntityStatus::Absent);
    // A newer put does, as it would have without collection.
    assert!(history.insert(op(40), false, put("again")));
    let entity = history.fold();
    assert_eq!(entity.status, EntityStatus::Live);
    assert_eq!(entity.created_us, Some(40));
    assert_eq!(entity.traits.len(), 1);
    assert!(entity.pending);
}

fn built(log: &Log) -> (tempfile::TempDir, StoreIndex) {
    let dir = tempfile::tempdir().unwrap();
    let (mut index, _) = StoreIndex::open(dir.path(), Schemas::builtin()).unwrap();
    index.rebuild(log.iter().cloned()).unwrap();
    (dir, index)
}

#[test]
fn an_index_collected_as_it_goes_answers_like_a_rebuild_collected_once() {
    let scratch = tempfile::tempdir().unwrap();
    let (mut index, _) = StoreIndex::open(scratch.path(), Schemas::builtin()).unwrap();
    index.rebuild(Log::new()).unwrap();
    // All operations committed but a few (which hold back the compaction of their entity);
    // operation n has time T0 + n.
    let log: Log = populate(&mut index, 900, 60)
        .into_iter()
        .map(|(id, plaintext, _)| (id, plaintext, (id.time_us - T0) % 97 != 3))
        .collect();
    drop(index);
    let horizon = T0 + 1_000; // after every operation

    // Operations arriving in batches, each pass of the collector lagging behind them.
    let dir = tempfile::tempdir().unwrap();
    let (mut going, _) = StoreIndex::open(dir.path(), Schemas::builtin()).unwrap();
    going.rebuild(Log::new()).unwrap();
    for (i, batch) in log.chunks(50).enumerate() {
        going.apply_batch(batch.iter().cloned()).unwrap();
        going
            .collect_garbage((T0 + 50 * i as u64).saturating_sub(120))
            .unwrap();
    }
    going.collect_garbage(horizon).unwrap();

    let (_once_dir, mut once) = built(&log);
    let report = once.collect_garbage(horizon).unwrap();
    assert!(report.compacted > 0 && report.collected > 0, "{report:?}");
    assert_same(&snapshot(&going), &snapshot(&once));
    // A second pass at the same horizon has nothing to do.
    assert_eq!(once.collect_garbage(horizon).unwrap().compacted, 0);

    // Against the index without collection: the same live entities, the same deleted ones
    // but those deleted before the horizon, and no document lost (collected entities stay
    // as tombstones, so a replayed operation cannot resurrect them).
    let (_all_dir, all) = built(&log);
    let ids = |index: &StoreIndex, q: &str| {
        let mut ids: Vec<String> = index
            .query_text(&format!("{q} limit:1000"))
            .unwrap()
            .entities
            .into_iter()
            .map(|e| e.id)
            .collect();
        ids.sort();
        ids
    };
    for q in ["*", "type:task done:false", "ref:c1", "shared"] {
        assert_eq!(ids(&once, q), ids(&all, q), "{q}");
    }
    let deleted_before = ids(&all, "include:deleted");
    let deleted_after = ids(&once, "include:deleted");
    assert_eq!(
        deleted_before.len() - deleted_after.len(),
        report.collected,
        "{deleted_before:?} {deleted_after:?}"
    );
    assert_eq!(once.document_count(), all.document_count());
    for n in 0..60 {
        let id = format!("e{n}");
        let (Some(kept), Some(whole)) = (once.get(&id).unwrap(), all.get(&id).unwrap()) else {
            continue;
        };
        if whole.status == EntityStatus::Live {
            let live = |e: &Entity| e.live_traits().cloned().collect::<Vec<_>>();
            assert_eq!(live(&kept), live(&whole), "{id}");
            assert_eq!(
                (kept.version, kept.created_us, kept.updated_us),
                (whole.version, whole.created_us, whole.updated_us),
                "{id}"
            );
        }
    }

    // Compacted histories are stored: reopened, the index reads the same.
    let before = snapshot(&going);
    drop(going);
    let (going, _) = StoreIndex::open(dir.path(), Schemas::builtin()).unwrap();
    assert_same(&snapshot(&going), &before);
}
