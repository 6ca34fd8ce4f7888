//! Mutations, traits and values in the layouts of `spec/store.md` section 4, so an app
//! builds what the store reads and reads the traits it returns.

use bincode::{Decode, Encode};

/// A request's mutations: one chain entry.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Entry {
    /// 1 to 1024 mutations, applied all or nothing.
    Mutations(Vec<Mutation>),
}

/// One change to one entity.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Mutation {
    /// Creates or wholly replaces a trait.
    PutTrait {
        /// The entity.
        entity: String,
        /// The trait.
        value: Trait,
    },
    /// Deletes one trait.
    DeleteTrait {
        /// The entity.
        entity: String,
        /// The trait.
        trait_id: String,
    },
    /// Deletes every trait of the entity.
    DeleteEntity {
        /// The entity.
        entity: String,
    },
    /// Refuses the request unless the entity is as expected.
    Check {
        /// The entity.
        entity: String,
        /// What it must be.
        expected: Expected,
    },
}

/// What a `Check` expects.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Expected {
    /// No live trait.
    Absent,
    /// This version (operation id).
    Version([u8; 16]),
}

/// A trait: id, type, fields sorted by name.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Trait {
    /// Unique within its entity.
    pub id: String,
    /// Its type.
    pub trait_type: String,
    /// Its fields, sorted by name, each once.
    pub fields: Vec<Field>,
}

impl Trait {
    /// A trait with no field.
    pub fn new(id: &str, trait_type: &str) -> Trait {
        Trait {
            id: id.into(),
            trait_type: trait_type.into(),
            fields: Vec::new(),
        }
    }

    /// With a field set (kept sorted by name).
    pub fn with(mut self, name: &str, value: Value) -> Trait {
        self.fields.retain(|f| f.name != name);
        let at = self.fields.partition_point(|f| f.name.as_str() < name);
        self.fields.insert(
            at,
            Field {
                name: name.into(),
                value,
            },
        );
        self
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }
}

/// A named value.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// A field's value.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Value {
    /// For `string` and `text` fields.
    String(String),
    /// i64.
    Integer(i64),
    /// Finite f64.
    Float(f64),
    /// true / false.
    Boolean(bool),
    /// µs since the Unix epoch.
    Timestamp(i64),
    /// An entity, or one of its traits.
    Reference {
        /// The entity.
        entity: String,
        /// The trait.
        trait_id: Option<String>,
    },
    /// Items of one scalar kind.
    List(Vec<Scalar>),
}

/// A list item: a value that is not a list (same variant numbers as [`Value`]).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Scalar {
    /// For `string` and `text` fields.
    String(String),
    /// i64.
    Integer(i64),
    /// Finite f64.
    Float(f64),
    /// true / false.
    Boolean(bool),
    /// µs since the Unix epoch.
    Timestamp(i64),
    /// An entity, or one of its traits.
    Reference {
        /// The entity.
        entity: String,
        /// The trait.
        trait_id: Option<String>,
    },
}
