//! Entity state: an entity's mutation history, and the fold that turns it into the entity.
//!
//! Rules (`spec/store.md` section 5): operations are applied in operation-id order whatever
//! order they arrived in, and one operation's mutations in list order. So every node that
//! holds the same operations derives the same state, and the last writer by operation id
//! wins, per trait. A put after a deletion resurrects.
//!
//! ```
//! use exo::chain::OperationId;
//! use exo::store::{EntityHistory, Mutation, Trait};
//!
//! let op = |t| OperationId { time_us: t, node: 1 };
//! let put = |title: &str| vec![Mutation::PutTrait {
//!     entity: "e".into(),
//!     value: Trait::new("n", "note").with("title", title),
//! }];
//! let mut history = EntityHistory::new("e");
//! history.insert(op(20), true, put("second"));
//! history.insert(op(10), true, put("first")); // arrives late, but is older
//! let entity = history.fold();
//! assert_eq!(entity.traits[0].value.get("title"), Some(&"second".into()));
//! assert_eq!(entity.version, op(20));
//! ```

use bincode::{Decode, Encode};

use super::mutation::Mutation;
use super::value::Trait;
use crate::chain::OperationId;

/// One operation's mutations of one entity.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct HistoryEntry {
    /// The operation.
    pub operation: OperationId,
    /// Whether the operation is committed in a block (else it is pending).
    pub committed: bool,
    /// Its mutations of this entity, in order (checks left out: they change nothing).
    pub mutations: Vec<Mutation>,
}

/// Every operation that touched an entity, sorted by operation id, each once; after garbage
/// collection, the state its oldest operations left instead of them.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct EntityHistory {
    /// The entity.
    pub id: String,
    /// What garbage collection kept of the operations it folded away, if it ran.
    pub compacted: Option<Compacted>,
    /// Sorted by operation id, no duplicates, all after `compacted.through`.
    pub entries: Vec<HistoryEntry>,
}

/// The state an entity's oldest operations left, kept by garbage collection instead of them
/// (`spec/store.md` section 10): folding the remaining entries from it gives the same entity
/// as folding every operation, less what the retention period let go.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Compacted {
    /// The last operation folded in: an operation at or below it is never folded again.
    pub through: OperationId,
    /// The traits as the fold left them, sorted by trait id; deleted ones are dropped once
    /// their deletion is older than the retention period.
    pub traits: Vec<TraitState>,
    /// The entity's status after these operations (absent once a deletion is collected).
    pub status: EntityStatus,
    /// When it last became live, if it is live or deleted.
    pub created_us: Option<u64>,
    /// When it was deleted, if it is deleted.
    pub deleted_us: Option<u64>,
}

/// Whether an entity exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum EntityStatus {
    /// Operations touched it but none ever put a trait (or its deletion was collected): it
    /// is not returned by queries.
    Absent,
    /// It has at least one live trait.
    Live,
    /// It had traits and all are deleted; returned only on request.
    Deleted,
}

/// A trait as the fold leaves it.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct TraitState {
    /// Its last put content (kept after deletion).
    pub value: Trait,
    /// Operation time (µs) of the put that made it live, after its last deletion.
    pub created_us: u64,
    /// Operation time of its last put.
    pub updated_us: u64,
    /// Operation time of its deletion, if deleted.
    pub deleted_us: Option<u64>,
    /// The last operation that changed it.
    pub version: OperationId,
}

/// An entity: an id and its traits.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Its id.
    pub id: String,
    /// Its traits sorted by trait id: live ones, plus deleted ones (with `deleted_us`) as
    /// the fold leaves them. [`Entity::live_traits`] filters.
    pub traits: Vec<TraitState>,
    /// Absent, live or deleted.
    pub status: EntityStatus,
    /// Operation time (µs) when it last became live (first put, or the put that resurrected
    /// it). `None` if it never was.
    pub created_us: Option<u64>,
    /// Operation time of the last operation that touched it.
    pub updated_us: u64,
    /// Operation time of its deletion, when deleted.
    pub deleted_us: Option<u64>,
    /// The id of the last operation that touched it: the value a check compares.
    pub version: OperationId,
    /// Whether some of its operations are not committed yet.
    pub pending: bool,
}

impl Entity {
    /// Its traits that are not deleted.
    pub fn live_traits(&self) -> impl Iterator<Item = &TraitState> {
        self.traits.iter().filter(|t| t.deleted_us.is_none())
    }

    /// Its version if it has a live trait (what [`Expected`](super::Expected) compares).
    pub fn live_version(&self) -> Option<OperationId> {
        (self.status == EntityStatus::Live).then_some(self.version)
    }
}

/// The fold in progress: what the operations applied so far left.
struct Fold {
    traits: Vec<TraitState>,
    status: EntityStatus,
    created_us: Option<u64>,
    deleted_us: Option<u64>,
}

impl Fold {
    fn start(compacted: Option<&Compacted>) -> Fold {
        match compacted {
            Some(c) => Fold {
                traits: c.traits.clone(),
                status: c.status,
                created_us: c.created_us,
                deleted_us: c.deleted_us,
            },
            None => Fold {
                traits: Vec::new(),
                status: EntityStatus::Absent,
                created_us: None,
                deleted_us: None,
            },
        }
    }

    /// Applies one operation's mutations, then the status change it makes (an operation is
    /// atomic).
    fn apply(&mut self, entry: &HistoryEntry) {
        let op = entry.operation;
        let time = op.time_us;
        let traits = &mut self.traits;
        for mutation in &entry.mutations {
            match mutation {
                Mutation::PutTrait { value, .. } => {
                    match traits.binary_search_by(|t| t.value.id.cmp(&value.id)) {
                        Ok(i) => {
                            let state = &mut traits[i];
                            if state.deleted_us.is_some() {
                                state.created_us = time;
                                state.deleted_us = None;
                            }
                            state.value = value.clone();
                            state.updated_us = time;
                            state.version = op;
                        }
                        Err(i) => traits.insert(
                            i,
                            TraitState {
                                value: value.clone(),
                                created_us: time,
                                updated_us: time,
                                deleted_us: None,
                                version: op,
                            },
                        ),
                    }
                }
                Mutation::DeleteTrait { trait_id, .. } => {
                    if let Ok(i) = traits.binary_search_by(|t| t.value.id.cmp(trait_id)) {
                        let state = &mut traits[i];
                        if state.deleted_us.is_none() {
                            state.deleted_us = Some(time);
                            state.version = op;
                        }
                    }
                }
                Mutation::DeleteEntity { .. } => {
                    for state in traits.iter_mut().filter(|t| t.deleted_us.is_none()) {
                        state.deleted_us = Some(time);
                        state.version = op;
                    }
                }
                Mutation::Check { .. } => {}
            }
        }
        let live = traits.iter().any(|t| t.deleted_us.is_none());
        match (self.status, live) {
            (EntityStatus::Absent | EntityStatus::Deleted, true) => {
                self.status = EntityStatus::Live;
                self.created_us = Some(time);
                self.deleted_us = None;
            }
            (EntityStatus::Live, false) => {
                self.status = EntityStatus::Deleted;
                self.deleted_us = Some(time);
            }
            _ => {}
        }
    }
}

impl EntityHistory {
    /// An empty history.
    pub fn new(id: impl Into<String>) -> EntityHistory {
        EntityHistory {
            id: id.into(),
            compacted: None,
            entries: Vec::new(),
        }
    }

    /// Whether garbage collection already folded away the operations up to `operation`:
    /// such an operation is not folded again ([`EntityHistory::insert`] ignores it).
    pub fn compacted_past(&self, operation: OperationId) -> bool {
        self.compacted
            .as_ref()
            .is_some_and(|c| operation <= c.through)
    }

    /// Records an operation's mutations of this entity. An operation already recorded only
    /// has its `committed` flag raised (operations never change content); one at or below
    /// the compacted state is ignored. Returns whether anything changed.
    pub fn insert(
        &mut self,
        operation: OperationId,
        committed: bool,
        mutations: Vec<Mutation>,
    ) -> bool {
        if self.compacted_past(operation) {
            return false;
        }
        match self
            .entries
            .binary_search_by(|e| e.operation.cmp(&operation))
        {
            Ok(i) => {
                let entry = &mut self.entries[i];
                let raise = committed && !entry.committed;
                entry.committed |= committed;
                raise
            }
            Err(i) => {
                self.entries.insert(
                    i,
                    HistoryEntry {
                        operation,
                        committed,
                        mutations,
                    },
                );
                true
            }
        }
    }

    /// Folds the history into the entity's state (see the module documentation).
    pub fn fold(&self) -> Entity {
        debug_assert!(self
            .entries
            .windows(2)
            .all(|w| w[0].operation < w[1].operation));
        let mut fold = Fold::start(self.compacted.as_ref());
        for entry in &self.entries {
            fold.apply(entry);
        }
        let version = match (self.entries.last(), &self.compacted) {
            (Some(entry), _) => entry.operation,
            (None, Some(compacted)) => compacted.through,
            (None, None) => OperationId::MIN,
        };
        Entity {
            id: self.id.clone(),
            traits: fold.traits,
            status: fold.status,
            created_us: fold.created_us,
            updated_us: version.time_us,
            deleted_us: fold.deleted_us,
            version,
            pending: self.entries.iter().any(|e| !e.committed),
        }
    }

    /// Garbage collection with retention horizon `horizon_us` (an operation time): folds the
    /// leading committed operations older than the horizon into the compacted state, then
    /// drops from it the traits deleted before the horizon, and forgets an entity deleted
    /// before it (it becomes absent). The current state is kept: [`EntityHistory::fold`]
    /// gives the same entity, less those deletions. Returns whether anything changed.
    pub fn compact(&mut self, horizon_us: u64) -> bool {
        let count = self
            .entries
            .iter()
            .take_while(|e| e.committed && e.operation.time_us < horizon_us)
            .count();
        let mut changed = false;
        if let Some(last) = count.checked_sub(1).map(|i| self.entries[i].operation) {
            let mut fold = Fold::start(self.compacted.as_ref());
            for entry in self.entries.drain(..count) {
                fold.apply(&entry);
            }
            self.compacted = Some(Compacted {
                through: last,
                traits: fold.traits,
                status: fold.status,
                created_us: fold.created_us,
                deleted_us: fold.deleted_us,
            });
            changed = true;
        }
        if let Some(compacted) = &mut self.compacted {
            let before = compacted.traits.len();
            compacted
                .traits
                .retain(|t| t.deleted_us.is_none_or(|d| d >= horizon_us));
            changed |= compacted.traits.len() != before;
            let gone = compacted.deleted_us.is_some_and(|d| d < horizon_us);
            if compacted.status == EntityStatus::Deleted && gone {
                // Every trait was deleted at or before the entity: all dropped above.
                debug_assert!(compacted.traits.is_empty());
                compacted.status = EntityStatus::Absent;
                compacted.created_us = None;
                compacted.deleted_us = None;
                changed = true;
            }
        }
        changed
    }

    /// The earliest operation time after which [`EntityHistory::compact`] has work: it has
    /// none while the horizon is at or before it. `None`: nothing to collect until more
    /// operations come.
    pub fn collectable_from_us(&self) -> Option<u64> {
        let first = self
            .entries
            .first()
            .filter(|e| e.committed)
            .map(|e| e.operation.time_us);
        let deletions = self.compacted.iter().flat_map(|c| {
            let entity = c.deleted_us.filter(|_| c.status == EntityStatus::Deleted);
            c.traits.iter().filter_map(|t| t.deleted_us).chain(entity)
        });
        first.into_iter().chain(deletions).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(t: u64) -> OperationId {
        OperationId {
            time_us: t,
            node: 7,
        }
    }

    fn put(trait_id: &str, title: &str) -> Mutation {
        Mutation::PutTrait {
            entity: "e".into(),
            value: Trait::new(trait_id, "note").with("title", title),
        }
    }

    fn del_trait(trait_id: &str) -> Mutation {
        Mutation::DeleteTrait {
            entity: "e".into(),
            trait_id: trait_id.into(),
        }
    }

    fn del_entity() -> Mutation {
        Mutation::DeleteEntity { entity: "e".into() }
    }

    fn fold(ops: &[(u64, Vec<Mutation>)]) -> Entity {
        let mut h = EntityHistory::new("e");
        for (t, m) in ops {
            h.insert(op(*t), true, m.clone());
        }
        h.fold()
    }

    #[test]
    fn order_of_arrival_does_not_matter() {
        let ops = vec![
            (10, vec![put("a", "1"), put("b", "1")]),
            (20, vec![del_trait("a")]),
            (30, vec![put("b", "2")]),
            (40, vec![del_entity()]),
            (50, vec![put("c", "1")]),
        ];
        let expected = fold(&ops);
        let mut reversed = ops.clone();
        reversed.reverse();
        assert_eq!(fold(&reversed), expected);
        assert_eq!(expected.status, EntityStatus::Live);
        assert_eq!(expected.live_traits().count(), 1);
        assert_eq!(expected.created_us, Some(50));
        assert_eq!(expected.version, op(50));
    }

    #[test]
    fn last_writer_by_operation_id_wins_per_trait() {
        let e = fold(&[
            (30, vec![put("a", "late")]),
            (10, vec![put("a", "early"), put("b", "x")]),
        ]);
        assert_eq!(e.traits[0].value.get("title"), Some(&"late".into()));
        assert_eq!(e.traits[0].created_us, 10);
        assert_eq!(e.traits[0].updated_us, 30);
        assert_eq!(e.traits[1].value.id, "b");
    }

    #[test]
    fn deletion_and_resurrection() {
        let deleted = fold(&[(10, vec![put("a", "x")]), (20, vec![del_entity()])]);
        assert_eq!(deleted.status, EntityStatus::Deleted);
        assert_eq!(deleted.deleted_us, Some(20));
        assert_eq!(deleted.traits[0].deleted_us, Some(20));
        assert_eq!(deleted.traits[0].value.get("title"), Some(&"x".into()));
        assert_eq!(deleted.live_version(), None);

        let by_traits = fold(&[
            (10, vec![put("a", "x"), put("b", "y")]),
            (20, vec![del_trait("a")]),
            (30, vec![del_trait("b")]),
        ]);
        assert_eq!(by_traits.status, EntityStatus::Deleted);
        assert_eq!(by_traits.deleted_us, Some(30));

        let back = fold(&[
            (10, vec![put("a", "x")]),
            (20, vec![del_entity()]),
            (30, vec![put("a", "y")]),
        ]);
        assert_eq!(back.status, EntityStatus::Live);
        assert_eq!(back.created_us, Some(30));
        assert_eq!(back.deleted_us, None);
        assert_eq!(back.traits[0].created_us, 30);

        // A put older than the deletion does not resurrect, even if it arrives last.
        let stale = fold(&[
            (20, vec![del_entity()]),
            (10, vec![put("a", "x")]),
            (5, vec![put("b", "x")]),
        ]);
        assert_eq!(stale.status, EntityStatus::Deleted);
    }

    #[test]
    fn deleting_and_re_putting_in_one_operation_keeps_the_entity_live() {
        let e = fold(&[
            (10, vec![put("a", "x")]),
            (20, vec![del_entity(), put("a", "y")]),
        ]);
        assert_eq!(e.status, EntityStatus::Live);
        assert_eq!(e.created_us, Some(10));
    }

    #[test]
    fn deletes_of_unknown_traits_leave_it_absent() {
        let e = fold(&[(10, vec![del_trait("a")]), (11, vec![del_entity()])]);
        assert_eq!(e.status, EntityStatus::Absent);
        assert_eq!(e.version, op(11));
    }

    #[test]
    fn commit_flags_are_raised_not_duplicated() {
        let mut h = EntityHistory::new("e");
        assert!(h.insert(op(1), false, vec![put("a", "x")]));
        assert!(h.fold().pending);
        assert!(!h.insert(op(1), false, vec![]));
        assert!(h.insert(op(1), true, vec![]));
        assert!(!h.insert(op(1), true, vec![]));
        assert_eq!(h.entries.len(), 1);
        assert!(!h.fold().pending);
    }
}
