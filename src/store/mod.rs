//! The entity store: trait schemas, mutations as chain entries, entity state folded from
//! operations, a tantivy index derived from them, and queries (`spec/store.md`,
//! `spec/query.md`).
//!
//! ```
//! use exo::chain::OperationId;
//! use exo::store::{Mutation, Opened, Schemas, StoreIndex, Trait};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let (mut index, opened) = StoreIndex::open(dir.path(), Schemas::builtin()).unwrap();
//! assert!(matches!(opened, Opened::Created(_)));
//! index.rebuild(Vec::<(OperationId, Vec<u8>, bool)>::new()).unwrap(); // no operations yet
//!
//! // A request's mutations become one entry (validated against the schemas)...
//! let plaintext = index
//!     .prepare(vec![Mutation::PutTrait {
//!         entity: "e1".into(),
//!         value: Trait::new("t1", "task").with("title", "Water the plants").with("done", false),
//!     }])
//!     .unwrap();
//! // ...which the caller seals in a chain operation, writes, and applies.
//! let op = OperationId { time_us: 1_767_225_600_000_000, node: 1 };
//! index.apply(op, &plaintext, false).unwrap();
//!
//! let results = index.query_text("type:task done:false plants").unwrap();
//! assert_eq!(results.entities[0].id, "e1");
//! ```
//!
//! Code map: [`value`] (ids, values, traits, timestamps), [`schema`], [`mutation`] (entries
//! and request validation), [`entity`] (history and fold), [`index`] (tantivy, manifest,
//! rebuild), [`query`] (message, text form, execution), [`response`] (the Store service's
//! answers built from these).
//!
//! Architecture invariant: nothing here does network I/O, reads the clock or knows the
//! chain's storage; operation ids and plaintexts are inputs. The index does blocking disk
//! I/O: callers on the async runtime go through `blocking::unblock` or a dedicated thread.

pub mod entity;
pub mod index;
pub mod mutation;
pub mod query;
pub mod response;
pub mod schema;
pub mod value;

pub use entity::{Compacted, Entity, EntityHistory, EntityStatus, HistoryEntry, TraitState};
pub use index::{ApplyReport, Checkpoint, GcReport, IndexError, Opened, RebuildReason, StoreIndex};
pub use mutation::{Entry, EntryError, Expected, Mutation, MutationError};
pub use query::{Query, QueryError, QueryResults};
pub use schema::{FieldKind, FieldSchema, SchemaError, Schemas, TraitSchema, ValidationError};
pub use value::{Field, Reference, Scalar, Trait, Value};
