//! Trait schemas: which trait types exist, their fields, and how each field is indexed.
//!
//! Schemas are declared in TOML (the format is documented in `fixtures/schemas/README.md`
//! and `spec/store.md` section 3). The built-in types (note, task, collection,
//! collection_member, contact, bookmark, file) come from `fixtures/schemas/builtin.toml`,
//! compiled into the binary; installed apps add more with [`Schemas::add_toml`].
//!
//! ```
//! use exo::store::{Schemas, Trait};
//!
//! let schemas = Schemas::builtin();
//! let task = Trait::new("t1", "task").with("title", "Water the plants").with("done", false);
//! schemas.validate(&task).unwrap();
//! let wrong = Trait::new("t1", "task").with("title", "x").with("done", "no");
//! let error = schemas.validate(&wrong).unwrap_err();
//! assert!(error.to_string().contains("field `done`"));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::value::{
    check_field_name, check_type_name, Scalar, ShapeError, Trait, Value, STRING_LEN_MAX,
};

/// The built-in schemas' source.
pub const BUILTIN_SCHEMAS_TOML: &str = include_str!("../../fixtures/schemas/builtin.toml");

/// The kind of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldKind {
    /// A short string (at most 4096 bytes), matched exactly when indexed.
    String,
    /// A long string (at most 256 KiB), for full-text search.
    Text,
    /// A signed 64-bit integer.
    Integer,
    /// A finite 64-bit float.
    Float,
    /// A boolean.
    Boolean,
    /// Microseconds since the Unix epoch.
    Timestamp,
    /// A reference to an entity or a trait.
    Reference,
}

impl FieldKind {
    /// The name used in schema files.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::String => "string",
            FieldKind::Text => "text",
            FieldKind::Integer => "integer",
            FieldKind::Float => "float",
            FieldKind::Boolean => "boolean",
            FieldKind::Timestamp => "timestamp",
            FieldKind::Reference => "reference",
        }
    }

    fn parse(name: &str) -> Option<FieldKind> {
        Some(match name {
            "string" => FieldKind::String,
            "text" => FieldKind::Text,
            "integer" => FieldKind::Integer,
            "float" => FieldKind::Float,
            "boolean" => FieldKind::Boolean,
            "timestamp" => FieldKind::Timestamp,
            "reference" => FieldKind::Reference,
            _ => return None,
        })
    }

    /// Whether `scalar` is a value of this kind (a string for both `string` and `text`).
    pub fn accepts(self, scalar: &Scalar) -> bool {
        matches!(
            (self, scalar),
            (FieldKind::String | FieldKind::Text, Scalar::String(_))
                | (FieldKind::Integer, Scalar::Integer(_))
                | (FieldKind::Float, Scalar::Float(_))
                | (FieldKind::Boolean, Scalar::Boolean(_))
                | (FieldKind::Timestamp, Scalar::Timestamp(_))
                | (FieldKind::Reference, Scalar::Reference(_))
        )
    }
}

/// One field of a trait type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldSchema {
    /// `[a-z][a-z0-9_]*`.
    pub name: String,
    /// The kind of its values.
    pub kind: FieldKind,
    /// A list of values of `kind` rather than one.
    pub list: bool,
    /// A trait without it is refused.
    pub required: bool,
    /// Exact equality and ranges in queries (not for `text`).
    pub indexed: bool,
    /// Can order query results (single integer, float, boolean or timestamp).
    pub sorted: bool,
    /// Its words are searchable, in the field and in the entity's full text (string, text).
    pub full_text: bool,
    /// Counts for `ref:` queries: "which entities point to X" (reference fields).
    pub reference: bool,
    /// For people reading the schema.
    pub description: String,
}

impl FieldSchema {
    /// The type as written in schema files: `integer`, `list<string>`...
    pub fn type_name(&self) -> String {
        if self.list {
            format!("list<{}>", self.kind.name())
        } else {
            self.kind.name().to_string()
        }
    }

    /// Whether any index option is set.
    pub fn is_indexed_at_all(&self) -> bool {
        self.indexed || self.sorted || self.full_text || self.reference
    }
}

/// A trait type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraitSchema {
    /// `segment(.segment)*`, segments `[a-z][a-z0-9_]*`.
    pub name: String,
    /// For people reading the schema.
    pub description: String,
    /// Its fields, in declaration order.
    pub fields: Vec<FieldSchema>,
}

impl TraitSchema {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Why a schema file was refused. Names the type and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// Not TOML, or keys the format does not have.
    Syntax(String),
    /// A type or field breaks a rule of the format.
    Invalid {
        /// The trait type.
        trait_type: String,
        /// The field, if the problem is in one.
        field: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Two schemas declare the same type.
    DuplicateType(String),
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::Syntax(e) => write!(f, "schema file: {e}"),
            SchemaError::Invalid {
                trait_type,
                field: Some(field),
                reason,
            } => write!(f, "schema of `{trait_type}`, field `{field}`: {reason}"),
            SchemaError::Invalid {
                trait_type, reason, ..
            } => write!(f, "schema of `{trait_type}`: {reason}"),
            SchemaError::DuplicateType(t) => write!(f, "trait type `{t}` is declared twice"),
        }
    }
}

impl std::error::Error for SchemaError {}

/// Why a trait does not fit its schema. Every variant names the trait and, where it applies,
/// the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationError {
    /// No schema declares the trait's type.
    UnknownType {
        /// The trait's id.
        trait_id: String,
        /// Its type.
        trait_type: String,
    },
    /// The schema has no such field.
    UnknownField {
        /// The trait's type.
        trait_type: String,
        /// The field.
        field: String,
    },
    /// A required field is missing.
    MissingField {
        /// The trait's type.
        trait_type: String,
        /// The field.
        field: String,
    },
    /// A value of the wrong kind.
    WrongType {
        /// The trait's type.
        trait_type: String,
        /// The field.
        field: String,
        /// What the schema says, `list<string>`...
        expected: String,
        /// What was given.
        found: String,
    },
    /// A string over the `string` kind's limit.
    TooLong {
        /// The trait's type.
        trait_type: String,
        /// The field.
        field: String,
        /// Its size.
        size_bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Ids, names or sizes that no schema allows (see [`Trait::check_shape`]).
    Shape(String),
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidationError::UnknownType {
                trait_id,
                trait_type,
            } => write!(
                f,
                "trait `{trait_id}`: unknown trait type `{trait_type}` (neither built in nor brought by an installed app)"
            ),
            ValidationError::UnknownField { trait_type, field } => {
                write!(f, "{trait_type}: field `{field}` is not in the schema")
            }
            ValidationError::MissingField { trait_type, field } => {
                write!(f, "{trait_type}: field `{field}` is required")
            }
            ValidationError::WrongType {
                trait_type,
                field,
                expected,
                found,
            } => write!(
                f,
                "{trait_type}: field `{field}` must be {expected}, found {found}"
            ),
            ValidationError::TooLong {
                trait_type,
                field,
                size_bytes,
                max,
            } => write!(
                f,
                "{trait_type}: field `{field}` is {size_bytes} bytes, over the {max}-byte limit \
                 of a string (use a text field for long content)"
            ),
            ValidationError::Shape(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ValidationError {}

impl From<ShapeError> for ValidationError {
    fn from(e: ShapeError) -> ValidationError {
        ValidationError::Shape(e.0)
    }
}

/// The set of trait schemas a store knows: built-in types plus installed apps' types.
/// Iteration is in type-name order, so anything derived from it is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Schemas {
    types: BTreeMap<String, TraitSchema>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(rename = "trait", default)]
    traits: Vec<TraitToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraitToml {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "field", default)]
    fields: Vec<FieldToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldToml {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    indexed: bool,
    #[serde(default)]
    sorted: bool,
    #[serde(default)]
    full_text: bool,
    #[serde(default)]
    reference: bool,
    #[serde(default)]
    description: String,
}

impl Schemas {
    /// No types.
    pub fn empty() -> Schemas {
        Schemas::default()
    }

    /// The built-in types.
    pub fn builtin() -> Schemas {
        let mut schemas = Schemas::empty();
        // The built-in file is part of the binary and covered by tests.
        if let Err(e) = schemas.add_toml(BUILTIN_SCHEMAS_TOML) {
            unreachable!("built-in schemas are invalid: {e}");
        }
        schemas
    }

    /// Adds the types declared in a schema file. Nothing is added if any is refused.
    pub fn add_toml(&mut self, text: &str) -> Result<(), SchemaError> {
        let file: FileToml =
            toml::from_str(text).map_err(|e| SchemaError::Syntax(e.to_string()))?;
        let mut added = Vec::new();
        for t in file.traits {
            added.push(convert(t)?);
        }
        for schema in &added {
            if self.types.contains_key(&schema.name)
                || added.iter().filter(|s| s.name == schema.name).count() > 1
            {
                return Err(SchemaError::DuplicateType(schema.name.clone()));
            }
        }
        for schema in added {
            self.types.insert(schema.name.clone(), schema);
        }
        Ok(())
    }

    /// A type's schema.
    pub fn get(&self, trait_type: &str) -> Option<&TraitSchema> {
        self.types.get(trait_type)
    }

    /// All types, by name.
    pub fn iter(&self) -> impl Iterator<Item = &TraitSchema> {
        self.types.values()
    }

    /// Checks a trait against its type's schema.
    pub fn validate(&self, value: &Trait) -> Result<(), ValidationError> {
        value.check_shape()?;
        let schema =
            self.types
                .get(&value.trait_type)
                .ok_or_else(|| ValidationError::UnknownType {
                    trait_id: value.id.clone(),
                    trait_type: value.trait_type.clone(),
                })?;
        let trait_type = || value.trait_type.clone();
        for field in &value.fields {
            let declared =
                schema
                    .field(&field.name)
                    .ok_or_else(|| ValidationError::UnknownField {
                        trait_type: trait_type(),
                        field: field.name.clone(),
                    })?;
            let wrong = |found: String| ValidationError::WrongType {
                trait_type: trait_type(),
                field: field.name.clone(),
                expected: declared.type_name(),
                found,
            };
            let scalars = match (&field.value, declared.list) {
                (Value::List(items), true) => items.clone(),
                (Value::List(items), false) => {
                    return Err(wrong(format!("a list of {} items", items.len())))
                }
                (single, true) => return Err(wrong(single.kind().to_string())),
                (single, false) => single.scalars(),
            };
            for scalar in &scalars {
                if !declared.kind.accepts(scalar) {
                    return Err(wrong(if declared.list {
                        format!("a list holding a {}", scalar.kind())
                    } else {
                        scalar.kind().to_string()
                    }));
                }
                if let (FieldKind::String, Scalar::String(s)) = (declared.kind, scalar) {
                    if s.len() > STRING_LEN_MAX {
                        return Err(ValidationError::TooLong {
                            trait_type: trait_type(),
                            field: field.name.clone(),
                            size_bytes: s.len(),
                            max: STRING_LEN_MAX,
                        });
                    }
                }
            }
        }
        if let Some(missing) = schema
            .fields
            .iter()
            .find(|f| f.required && value.get(&f.name).is_none())
        {
            return Err(ValidationError::MissingField {
                trait_type: trait_type(),
                field: missing.name.clone(),
            });
        }
        Ok(())
    }
}

fn convert(t: TraitToml) -> Result<TraitSchema, SchemaError> {
    let invalid = |field: Option<&str>, reason: String| SchemaError::Invalid {
        trait_type: t.name.clone(),
        field: field.map(str::to_string),
        reason,
    };
    check_type_name(&t.name).map_err(|e| invalid(None, e.0))?;
    let mut fields: Vec<FieldSchema> = Vec::new();
    for f in &t.fields {
        let bad = |reason: &str| invalid(Some(&f.name), reason.to_string());
        check_field_name(&f.name).map_err(|e| invalid(Some(&f.name), e.0))?;
        if fields.iter().any(|g| g.name == f.name) {
            return Err(bad("declared twice"));
        }
        let (list, kind_name) = match f
            .kind
            .strip_prefix("list<")
            .and_then(|k| k.strip_suffix('>'))
        {
            Some(inner) => (true, inner),
            None => (false, f.kind.as_str()),
        };
        let kind = FieldKind::parse(kind_name).ok_or_else(|| {
            bad(
                "unknown type: use string, text, integer, float, boolean, timestamp, reference, \
                 or list<...> of one of them",
            )
        })?;
        if f.indexed && kind == FieldKind::Text {
            return Err(bad(
                "a text field cannot be `indexed` (exact match); use `full_text`",
            ));
        }
        if f.sorted
            && (list
                || !matches!(
                    kind,
                    FieldKind::Integer
                        | FieldKind::Float
                        | FieldKind::Boolean
                        | FieldKind::Timestamp
                ))
        {
            return Err(bad(
                "only a single integer, float, boolean or timestamp field can be `sorted`",
            ));
        }
        if f.full_text && !matches!(kind, FieldKind::String | FieldKind::Text) {
            return Err(bad("only string and text fields can be `full_text`"));
        }
        if f.reference && kind != FieldKind::Reference {
            return Err(bad("only reference fields can have the `reference` option"));
        }
        fields.push(FieldSchema {
            name: f.name.clone(),
            kind,
            list,
            required: f.required,
            indexed: f.indexed,
            sorted: f.sorted,
            full_text: f.full_text,
            reference: f.reference,
            description: f.description.clone(),
        });
    }
    if fields.len() > super::value::TRAIT_FIELDS_MAX {
        return Err(invalid(None, "too many fields".into()));
    }
    Ok(TraitSchema {
        name: t.name.clone(),
        description: t.description,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_types_are_all_there() {
        let schemas = Schemas::builtin();
        let names: Vec<_> = schemas.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bookmark",
                "collection",
                "collection_member",
                "contact",
                "file",
                "note",
                "task"
            ]
        );
    }

    #[test]
    fn bad_schema_files_name_the_field() {
        let cases = [
            ("[[trait]]\nname = \"x\"\n[[trait.field]]\nname = \"a\"\ntype = \"blob\"", "field `a`"),
            ("[[trait]]\nname = \"x\"\n[[trait.field]]\nname = \"a\"\ntype = \"text\"\nindexed = true", "field `a`"),
            ("[[trait]]\nname = \"x\"\n[[trait.field]]\nname = \"a\"\ntype = \"list<integer>\"\nsorted = true", "field `a`"),
            ("[[trait]]\nname = \"x\"\n[[trait.field]]\nname = \"a\"\ntype = \"string\"\nindexd = true", "indexd"),
            ("[[trait]]\nname = \"X\"", "`X`"),
            ("[[trait]]\nname = \"note\"", "declared twice"),
        ];
        for (text, expected) in cases {
            let mut schemas = Schemas::builtin();
            let error = schemas.add_toml(text).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{error} should contain {expected}"
            );
        }
    }
}
