//! Queries: the message ([`Query`], a bincode type for the wire), its compact text form
//! ([`Query::parse`], for the CLI), paging cursors, and results. `spec/query.md` is the
//! contract; execution against the index is in `exec`.
//!
//! ```
//! use exo::store::query::{Predicate, Query};
//!
//! let query = Query::parse("type:task done:false sort:-updated").unwrap();
//! assert!(matches!(query.predicate, Predicate::And(_)));
//! let error = Query::parse("type:task (done:false").unwrap_err();
//! assert_eq!(error.position, 11);
//! ```

use std::fmt;

use bincode::de::Decoder;
use bincode::error::{AllowedEnumVariants, DecodeError};
use bincode::{Decode, Encode};

use super::entity::Entity;
use super::value::Reference;
use crate::chain::OperationId;

pub(crate) mod exec;
mod parse;

pub use parse::ParseError;

/// Results per page when a query does not say.
pub const LIMIT_DEFAULT: u32 = 20;
/// Most results per page.
pub const LIMIT_MAX: u32 = 1000;
/// Deepest nesting of boolean predicates (in a message and in a query string).
pub const PREDICATE_DEPTH_MAX: u32 = 32;
/// Most sub-predicates of one `And` or `Or`.
pub const PREDICATE_ITEMS_MAX: usize = 256;
/// Fuzzy matching allows at most this many edits per word.
pub const FUZZY_DISTANCE_MAX: u8 = 2;

/// A field of a trait type, as a query names it: `task.due`, or `due` for every type that
/// has such a field (within the `type:` predicates of the query, if any).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct FieldPath {
    /// The trait type, if named.
    pub trait_type: Option<String>,
    /// The field.
    pub field: String,
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.trait_type {
            Some(t) => write!(f, "{t}.{}", self.field),
            None => f.write_str(&self.field),
        }
    }
}

/// How a field compares to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Comparison {
    /// Equal (for text fields: contains the words).
    Eq,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
}

/// A value in a predicate. `Text` is a value as typed by a person; it is read as the field's
/// kind when the query runs (`2` for an integer, `2026-12-01` for a timestamp...).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum FieldValue {
    /// As typed; converted to the field's kind.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// Microseconds since the epoch.
    Timestamp(i64),
}

/// What entities a query matches.
#[derive(Debug, Clone, PartialEq, Encode)]
pub enum Predicate {
    /// Every entity.
    All,
    /// Entities whose full text has all these words (tokenized like indexed text);
    /// `fuzzy` edits allowed per word (0 = exact, at most [`FUZZY_DISTANCE_MAX`]).
    Words {
        /// The words.
        text: String,
        /// Edits allowed per word.
        fuzzy: u8,
    },
    /// Entities whose full text has these words in this order.
    Phrase {
        /// The phrase.
        text: String,
    },
    /// Entities with a live trait of this type.
    Type(String),
    /// The entity with this id.
    Id(String),
    /// Entities with a `reference` field pointing to this entity (any of its traits, when
    /// the reference has no trait id) or to this trait.
    Reference(Reference),
    /// Entities touched by this operation.
    Operation(OperationId),
    /// A field compared to a value.
    Field {
        /// Which field.
        path: FieldPath,
        /// How it compares.
        comparison: Comparison,
        /// To what.
        value: FieldValue,
        /// For full-text fields: edits allowed per word.
        fuzzy: u8,
    },
    /// All of these.
    And(Vec<Predicate>),
    /// At least one of these.
    Or(Vec<Predicate>),
    /// Not this.
    Not(Box<Predicate>),
}

impl<Context> Decode<Context> for Predicate {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        decode_predicate(decoder, 0)
    }
}

bincode::impl_borrow_decode!(Predicate);

/// Decodes a predicate, refusing nesting deeper than [`PREDICATE_DEPTH_MAX`] (so a hostile
/// message cannot overflow the stack) and lists longer than [`PREDICATE_ITEMS_MAX`]. The
/// layout is the derived one: u32 variant, then fields.
fn decode_predicate<D: Decoder>(decoder: &mut D, depth: u32) -> Result<Predicate, DecodeError> {
    if depth > PREDICATE_DEPTH_MAX {
        return Err(DecodeError::Other("a query predicate is nested too deeply"));
    }
    let variant = u32::decode(decoder)?;
    Ok(match variant {
        0 => Predicate::All,
        1 => Predicate::Words {
            text: String::decode(decoder)?,
            fuzzy: u8::decode(decoder)?,
        },
        2 => Predicate::Phrase {
            text: String::decode(decoder)?,
        },
        3 => Predicate::Type(String::decode(decoder)?),
        4 => Predicate::Id(String::decode(decoder)?),
        5 => Predicate::Reference(Reference::decode(decoder)?),
        6 => Predicate::Operation(OperationId::decode(decoder)?),
        7 => Predicate::Field {
            path: FieldPath::decode(decoder)?,
            comparison: Comparison::decode(decoder)?,
            value: FieldValue::decode(decoder)?,
            fuzzy: u8::decode(decoder)?,
        },
        8 | 9 => {
            let len = u64::decode(decoder)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= PREDICATE_ITEMS_MAX)
                .ok_or(DecodeError::Other("a boolean predicate has too many items"))?;
            decoder.claim_container_read::<Predicate>(len)?;
            let mut items = Vec::with_capacity(len);
            for _ in 0..len {
                items.push(decode_predicate(decoder, depth + 1)?);
            }
            if variant == 8 {
                Predicate::And(items)
            } else {
                Predicate::Or(items)
            }
        }
        10 => Predicate::Not(Box::new(decode_predicate(decoder, depth + 1)?)),
        found => {
            return Err(DecodeError::UnexpectedVariant {
                type_name: "Predicate",
                allowed: &AllowedEnumVariants::Range { min: 0, max: 10 },
                found,
            })
        }
    })
}

/// What results are ordered by.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SortKey {
    /// Full-text relevance (BM25).
    Score,
    /// When the entity became live.
    Created,
    /// When it was last touched.
    Updated,
    /// A `sorted` field.
    Field(FieldPath),
}

/// An order of results. Ties (and the order between entities) are broken by a hash of the
/// entity id, so every order is total and cursors are stable.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Ordering {
    /// By what.
    pub key: SortKey,
    /// Smallest first.
    pub ascending: bool,
}

/// Which traits and fields of the matched entities come back.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Projection {
    /// A trait type to return.
    pub trait_type: String,
    /// The fields of it to return; empty for all.
    pub fields: Vec<String>,
}

/// A position in an ordering: results strictly after it form the next page. Positions are
/// values (sort key, entity-id hash), not offsets: a page boundary does not move when
/// entities before it are added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Cursor {
    /// Identifies the ordering the cursor was made for; another ordering refuses it.
    pub ordering: u32,
    /// The entity at the position had no value for the sort key (such entities come last).
    pub missing: bool,
    /// The sort key, mapped to a u64 in the ordering's direction.
    pub key: u64,
    /// Hash of the entity id at the position (the tie-breaker).
    pub id_hash: u64,
    /// First 4 bytes of BLAKE3 over the fields above, to refuse altered cursors.
    pub check: u32,
}

impl Cursor {
    pub(crate) fn new(ordering: u32, missing: bool, key: u64, id_hash: u64) -> Cursor {
        let mut cursor = Cursor {
            ordering,
            missing,
            key,
            id_hash,
            check: 0,
        };
        cursor.check = cursor.expected_check();
        cursor
    }

    fn expected_check(&self) -> u32 {
        let mut bytes = Vec::with_capacity(21);
        bytes.extend_from_slice(&self.ordering.to_le_bytes());
        bytes.push(u8::from(self.missing));
        bytes.extend_from_slice(&self.key.to_le_bytes());
        bytes.extend_from_slice(&self.id_hash.to_le_bytes());
        let hash = blake3::hash(&bytes);
        let mut first = [0u8; 4];
        first.copy_from_slice(&hash.as_bytes()[..4]);
        u32::from_le_bytes(first)
    }

    /// Whether the check matches the fields.
    pub fn is_intact(&self) -> bool {
        self.check == self.expected_check()
    }

    /// The text form: the 25-byte encoding in lowercase hex (50 characters).
    pub fn to_text(&self) -> String {
        let bytes =
            bincode::encode_to_vec(self, exocore_protocol::wire::CONFIG).unwrap_or_default();
        crate::chain::hex(&bytes)
    }

    /// Parses the text form, refusing anything altered.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        let bad = || "the paging cursor is malformed or was altered".to_string();
        if text.len() != 50 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let bytes: Vec<u8> = (0..25)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let cursor: Cursor = exocore_protocol::wire::decode(&bytes).map_err(|_| bad())?;
        if !cursor.is_intact() {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// A query.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Query {
    /// What matches.
    pub predicate: Predicate,
    /// The order; `None`: by score when the predicate has words to match, else by updated,
    /// newest first.
    pub ordering: Option<Ordering>,
    /// Results per page; 0 means [`LIMIT_DEFAULT`]; at most [`LIMIT_MAX`].
    pub limit: u32,
    /// Return results after this position (the previous page's `next`).
    pub after: Option<Cursor>,
    /// Which traits and fields come back; empty for everything.
    pub projections: Vec<Projection>,
    /// Also match and return deleted entities (with their deleted traits).
    pub include_deleted: bool,
    /// The `hash` of results the client already has: if the results are the same, they are
    /// not sent again (`unchanged` is set, `entities` is empty).
    pub result_hash: Option<u64>,
}

impl Query {
    /// A query for `predicate` with defaults for the rest.
    pub fn new(predicate: Predicate) -> Query {
        Query {
            predicate,
            ordering: None,
            limit: 0,
            after: None,
            projections: Vec::new(),
            include_deleted: false,
            result_hash: None,
        }
    }

    /// Parses the compact text form (`spec/query.md` section 2).
    pub fn parse(text: &str) -> Result<Query, ParseError> {
        parse::parse(text)
    }

    /// The query with its ordering: the given one, or the default.
    pub fn effective_ordering(&self) -> Ordering {
        self.ordering.clone().unwrap_or_else(|| {
            if has_words(&self.predicate, false) {
                Ordering {
                    key: SortKey::Score,
                    ascending: false,
                }
            } else {
                Ordering {
                    key: SortKey::Updated,
                    ascending: false,
                }
            }
        })
    }
}

/// Whether a predicate matches words positively (not only under a `Not`).
fn has_words(predicate: &Predicate, negated: bool) -> bool {
    match predicate {
        Predicate::Words { .. } | Predicate::Phrase { .. } => !negated,
        Predicate::Field { .. } => false,
        Predicate::And(items) | Predicate::Or(items) => items.iter().any(|p| has_words(p, negated)),
        Predicate::Not(inner) => has_words(inner, !negated),
        _ => false,
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResults {
    /// The entities, in the query's order; traits sorted by trait id and projected.
    pub entities: Vec<Entity>,
    /// The position after the last result, when more results follow.
    pub next: Option<Cursor>,
    /// How many entities matched in all (every page).
    pub total: u64,
    /// Hash of this page (entity ids and versions, and `next`).
    pub hash: u64,
    /// The page equals the one whose hash the query gave: `entities` is left empty.
    pub unchanged: bool,
}

/// Why a query was refused. Says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The query string does not parse.
    Parse(ParseError),
    /// A field is unknown or not indexed the way the predicate needs.
    Field(String),
    /// A value cannot be read as the field's kind.
    Value(String),
    /// The paging cursor is malformed, altered, or for another ordering.
    Cursor(String),
    /// Anything else about the query's shape (depth, limits).
    Invalid(String),
    /// The index failed.
    Index(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Parse(e) => write!(f, "{e}"),
            QueryError::Field(e)
            | QueryError::Value(e)
            | QueryError::Cursor(e)
            | QueryError::Invalid(e) => f.write_str(e),
            QueryError::Index(e) => write!(f, "index error: {e}"),
        }
    }
}

impl std::error::Error for QueryError {}

impl From<ParseError> for QueryError {
    fn from(e: ParseError) -> QueryError {
        QueryError::Parse(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_or_long_predicates_are_refused_by_the_decoder() {
        let mut deep = Predicate::All;
        for _ in 0..100 {
            deep = Predicate::Not(Box::new(deep));
        }
        let bytes = exocore_protocol::wire::encode(&Query::new(deep)).unwrap();
        assert!(exocore_protocol::wire::decode::<Query>(&bytes).is_err());
        // Hostile nesting of 100k levels fails fast without recursion blow-up.
        let mut hostile = Vec::new();
        for _ in 0..100_000 {
            hostile.extend_from_slice(&10u32.to_le_bytes());
        }
        assert!(exocore_protocol::wire::decode::<Query>(&hostile).is_err());
        let ok = Query::parse("(a OR b) -c sort:-created limit:5").unwrap();
        let bytes = exocore_protocol::wire::encode(&ok).unwrap();
        assert_eq!(exocore_protocol::wire::decode::<Query>(&bytes).unwrap(), ok);
    }

    #[test]
    fn cursors_refuse_alteration() {
        let c = Cursor::new(1, false, 42, 7);
        assert_eq!(Cursor::parse(&c.to_text()).unwrap(), c);
        let mut text = c.to_text().into_bytes();
        text[10] = if text[10] == b'a' { b'b' } else { b'a' };
        assert!(Cursor::parse(std::str::from_utf8(&text).unwrap()).is_err());
        assert!(Cursor::parse("hello").is_err());
        assert!(Cursor::parse("").is_err());
    }
}
