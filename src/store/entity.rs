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

/// Every operation that touched an entity, sorted by operation id, each once.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct EntityHistory {
    /// The entity.
    pub id: String,
    /// Sorted by operation id, no duplicates.
    pub entries: Vec<HistoryEntry>,
}

/// Whether an entity exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityStatus {
    /// Operations touched it but none ever put a trait: it is not returned by queries.
    Absent,
    /// It has at least one live trait.
    Live,
    /// It had traits and all are deleted; returned only on request.
    Deleted,
}

/// A trait as the fold leaves it.
#[derive(Debug, Clone, PartialEq)]
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

impl EntityHistory {
    /// An empty history.
    pub fn new(id: impl Into<String>) -> EntityHistory {
        EntityHistory {
            id: id.into(),
            entries: Vec::new(),
        }
    }

    /// Records an operation's mutations of this entity. An operation already recorded only
    /// has its `committed` flag raised (operations never change content). Returns whether
    /// anything changed.
    pub fn insert(
        &mut self,
        operation: OperationId,
        committed: bool,
        mutations: Vec<Mutation>,
    ) -> bool {
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
        let mut traits: Vec<TraitState> = Vec::new();
        let mut status = EntityStatus::Absent;
        let mut created_us = None;
        let mut deleted_us = None;
        for entry in &self.entries {
            let op = entry.operation;
            let time = op.time_us;
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
            // The entity's status changes at operation boundaries: one operation is atomic.
            let live = traits.iter().any(|t| t.deleted_us.is_none());
            match (status, live) {
                (EntityStatus::Absent | EntityStatus::Deleted, true) => {
                    status = EntityStatus::Live;
                    created_us = Some(time);
                    deleted_us = None;
                }
                (EntityStatus::Live, false) => {
                    status = EntityStatus::Deleted;
                    deleted_us = Some(time);
                }
                _ => {}
            }
        }
        let version = self
            .entries
            .last()
            .map(|e| e.operation)
            .unwrap_or(OperationId::MIN);
        Entity {
            id: self.id.clone(),
            traits,
            status,
            created_us,
            updated_us: version.time_us,
            deleted_us,
            version,
            pending: self.entries.iter().any(|e| !e.committed),
        }
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
