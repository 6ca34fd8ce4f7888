//! Mutations, and their encoding as one chain entry.
//!
//! A request's mutations become the plaintext of **one** entry operation
//! (`Operation::new_entry`), so they are committed, replicated and applied together: all or
//! nothing. The plaintext is an [`Entry`] in the project's bincode configuration
//! (`spec/store.md` section 4 draws it byte by byte):
//!
//! ```text
//! Entry            u32 variant: 0 = Mutations
//!   Mutations      u64 count, then each Mutation
//! Mutation         u32 variant, then fields
//!   0 PutTrait     entity: string, trait: Trait
//!   1 DeleteTrait  entity: string, trait_id: string
//!   2 DeleteEntity entity: string
//!   3 Check        entity: string, expected: Expected
//! Expected         u32 variant: 0 = Absent, 1 = Version(operation id, 16 bytes)
//! ```
//!
//! ```
//! use exo::store::{Entry, Mutation, Trait};
//!
//! let entry = Entry::Mutations(vec![Mutation::PutTrait {
//!     entity: "e1".into(),
//!     value: Trait::new("t1", "note").with("title", "Hello"),
//! }]);
//! let bytes = entry.to_bytes();
//! assert_eq!(Entry::from_bytes(&bytes).unwrap(), entry);
//! ```

use std::fmt;

use bincode::{Decode, Encode};

use super::schema::{Schemas, ValidationError};
use super::value::{check_id, ShapeError, Trait};
use crate::chain::operation::ENTRY_PLAINTEXT_BYTES_MAX;
use crate::chain::OperationId;

/// Most mutations in one request (one entry).
pub const MUTATIONS_MAX: usize = 1024;

/// What a check expects of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Expected {
    /// The entity has no live trait: it never existed, or it is deleted.
    Absent,
    /// The entity's version (the id of the last operation that touched it) is this one.
    Version(OperationId),
}

/// One change to one entity.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Mutation {
    /// Creates or wholly replaces the trait `value.id` of `entity` (no field merge).
    PutTrait {
        /// The entity.
        entity: String,
        /// The trait's new content.
        value: Trait,
    },
    /// Deletes one trait of `entity`.
    DeleteTrait {
        /// The entity.
        entity: String,
        /// The trait.
        trait_id: String,
    },
    /// Deletes every trait `entity` has: the entity is deleted.
    DeleteEntity {
        /// The entity.
        entity: String,
    },
    /// Refuses the whole request unless `entity` is as `expected` when the request is
    /// accepted (optimistic concurrency). Changes nothing.
    Check {
        /// The entity.
        entity: String,
        /// What it must be.
        expected: Expected,
    },
}

impl Mutation {
    /// The entity this mutation is about.
    pub fn entity(&self) -> &str {
        match self {
            Mutation::PutTrait { entity, .. }
            | Mutation::DeleteTrait { entity, .. }
            | Mutation::DeleteEntity { entity }
            | Mutation::Check { entity, .. } => entity,
        }
    }

    fn check_shape(&self) -> Result<(), ShapeError> {
        check_id("entity id", self.entity())?;
        match self {
            Mutation::PutTrait { value, .. } => value.check_shape(),
            Mutation::DeleteTrait { trait_id, .. } => check_id("trait id", trait_id),
            Mutation::DeleteEntity { .. } | Mutation::Check { .. } => Ok(()),
        }
    }
}

/// A chain entry written by the store. Variant 0 is the only one so far; later kinds of
/// store entries get new variants, and a decoder refuses a variant it does not know.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Entry {
    /// A request's mutations, applied in order, all or nothing.
    Mutations(Vec<Mutation>),
}

/// Why an entry's bytes were refused. Every node refuses the same entries (the rules depend
/// only on the bytes), so a refused entry is skipped everywhere, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// Not a well-formed encoding.
    Malformed(String),
    /// Well encoded, but ids, names or sizes break a rule.
    Shape(String),
    /// No mutations, or more than [`MUTATIONS_MAX`].
    Count(usize),
    /// Over the chain's entry plaintext limit.
    TooLarge {
        /// Its size.
        size_bytes: usize,
    },
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Malformed(e) => write!(f, "malformed store entry: {e}"),
            EntryError::Shape(e) => write!(f, "invalid store entry: {e}"),
            EntryError::Count(n) => write!(
                f,
                "a store entry holds 1 to {MUTATIONS_MAX} mutations, this one holds {n}"
            ),
            EntryError::TooLarge { size_bytes } => write!(
                f,
                "a store entry of {size_bytes} bytes is over the {ENTRY_PLAINTEXT_BYTES_MAX}-byte \
                 limit of a chain entry"
            ),
        }
    }
}

impl std::error::Error for EntryError {}

impl Entry {
    /// The mutations.
    pub fn mutations(&self) -> &[Mutation] {
        match self {
            Entry::Mutations(m) => m,
        }
    }

    /// The encoding: the plaintext of the chain entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let config = bincode::config::standard()
            .with_little_endian()
            .with_fixed_int_encoding();
        match bincode::encode_to_vec(self, config) {
            Ok(bytes) => bytes,
            // Our types only write integers and bytes into a Vec: encoding cannot fail.
            Err(e) => unreachable!("encoding a store entry into memory failed: {e}"),
        }
    }

    /// Decodes untrusted bytes and checks the rules that hold whatever the schemas: sizes,
    /// counts, ids and names ([`Trait::check_shape`]). Never panics; allocations are bounded
    /// by the input's size.
    pub fn from_bytes(bytes: &[u8]) -> Result<Entry, EntryError> {
        if bytes.len() > ENTRY_PLAINTEXT_BYTES_MAX {
            return Err(EntryError::TooLarge {
                size_bytes: bytes.len(),
            });
        }
        let entry: Entry = exocore_protocol::wire::decode(bytes)
            .map_err(|e| EntryError::Malformed(e.to_string()))?;
        entry.check_shape()?;
        Ok(entry)
    }

    /// The rules of [`Entry::from_bytes`] after decoding.
    pub fn check_shape(&self) -> Result<(), EntryError> {
        let mutations = self.mutations();
        if mutations.is_empty() || mutations.len() > MUTATIONS_MAX {
            return Err(EntryError::Count(mutations.len()));
        }
        for (i, m) in mutations.iter().enumerate() {
            m.check_shape()
                .map_err(|e| EntryError::Shape(format!("mutation {i}: {e}")))?;
        }
        Ok(())
    }
}

/// Why a request's mutations were refused. Nothing of the request is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutationError {
    /// The request is not a well-formed entry (count, size, ids).
    Entry(EntryError),
    /// A trait does not fit its schema.
    Invalid {
        /// Index of the mutation in the request.
        index: usize,
        /// The entity.
        entity: String,
        /// What does not fit, naming the field.
        error: Box<ValidationError>,
    },
    /// A check failed: the entity is not as expected.
    CheckFailed {
        /// Index of the mutation in the request.
        index: usize,
        /// The entity.
        entity: String,
        /// What the check expected.
        expected: Expected,
        /// The entity's version now (`None`: no live trait).
        actual: Option<OperationId>,
    },
    /// The current state could not be read to evaluate a check.
    Read(String),
}

impl fmt::Display for MutationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MutationError::Entry(e) => write!(f, "{e}"),
            MutationError::Invalid {
                index,
                entity,
                error,
            } => write!(f, "mutation {index} (entity `{entity}`): {error}"),
            MutationError::CheckFailed {
                index,
                entity,
                expected,
                actual,
            } => {
                let expected = match expected {
                    Expected::Absent => "to be absent".to_string(),
                    Expected::Version(v) => format!("at version {v}"),
                };
                let actual = match actual {
                    Some(v) => format!("it is at version {v}"),
                    None => "it is absent".to_string(),
                };
                write!(
                    f,
                    "mutation {index}: check failed: entity `{entity}` was expected {expected}, \
                     but {actual}; nothing was applied"
                )
            }
            MutationError::Read(e) => write!(f, "reading the current state for a check: {e}"),
        }
    }
}

impl std::error::Error for MutationError {}

/// Validates a request and encodes it as one entry: well-formed, every put trait fits its
/// schema, every check holds. `live_version(entity)` gives an entity's current version, or
/// `None` when it has no live trait. Any failure refuses the whole request.
pub fn prepare(
    mutations: Vec<Mutation>,
    schemas: &Schemas,
    mut live_version: impl FnMut(&str) -> Result<Option<OperationId>, String>,
) -> Result<Vec<u8>, MutationError> {
    let entry = Entry::Mutations(mutations);
    entry.check_shape().map_err(MutationError::Entry)?;
    for (index, m) in entry.mutations().iter().enumerate() {
        match m {
            Mutation::PutTrait { entity, value } => {
                schemas
                    .validate(value)
                    .map_err(|error| MutationError::Invalid {
                        index,
                        entity: entity.clone(),
                        error: Box::new(error),
                    })?;
            }
            Mutation::Check { entity, expected } => {
                let actual = live_version(entity).map_err(MutationError::Read)?;
                let holds = match expected {
                    Expected::Absent => actual.is_none(),
                    Expected::Version(v) => actual == Some(*v),
                };
                if !holds {
                    return Err(MutationError::CheckFailed {
                        index,
                        entity: entity.clone(),
                        expected: *expected,
                        actual,
                    });
                }
            }
            Mutation::DeleteTrait { .. } | Mutation::DeleteEntity { .. } => {}
        }
    }
    let bytes = entry.to_bytes();
    if bytes.len() > ENTRY_PLAINTEXT_BYTES_MAX {
        return Err(MutationError::Entry(EntryError::TooLarge {
            size_bytes: bytes.len(),
        }));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::value::Value;

    #[test]
    fn layout_is_the_documented_one() {
        let entry = Entry::Mutations(vec![
            Mutation::DeleteEntity { entity: "e".into() },
            Mutation::Check {
                entity: "e".into(),
                expected: Expected::Version(OperationId {
                    time_us: 1,
                    node: 2,
                }),
            },
        ]);
        let bytes = entry.to_bytes();
        let mut expected = Vec::new();
        expected.extend_from_slice(&0u32.to_le_bytes()); // Entry::Mutations
        expected.extend_from_slice(&2u64.to_le_bytes()); // two mutations
        expected.extend_from_slice(&2u32.to_le_bytes()); // DeleteEntity
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.push(b'e');
        expected.extend_from_slice(&3u32.to_le_bytes()); // Check
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.push(b'e');
        expected.extend_from_slice(&1u32.to_le_bytes()); // Expected::Version
        expected.extend_from_slice(&1u64.to_be_bytes()); // operation id, big-endian
        expected.extend_from_slice(&2u64.to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(Entry::from_bytes(&bytes).unwrap(), entry);
    }

    #[test]
    fn a_put_trait_layout() {
        let entry = Entry::Mutations(vec![Mutation::PutTrait {
            entity: "e".into(),
            value: Trait::new("t", "task").with("done", Value::Boolean(true)),
        }]);
        let hex = crate::chain::hex(&entry.to_bytes());
        assert_eq!(
            hex,
            concat!(
                "00000000",         // Entry::Mutations
                "0100000000000000", // one mutation
                "00000000",         // PutTrait
                "0100000000000000",
                "65", // entity "e"
                "0100000000000000",
                "74", // trait id "t"
                "0400000000000000",
                "7461736b",         // type "task"
                "0100000000000000", // one field
                "0400000000000000",
                "646f6e65", // "done"
                "03000000",
                "01", // Value::Boolean(true)
            )
        );
    }
}
