//! The data model's values: ids, names, field values, traits, and timestamps' text form.
//!
//! Encodings (bincode, the project configuration; `spec/store.md` section 4 draws them byte
//! by byte) are derived here; the rules on what a well-formed value is ([`check_id`],
//! [`check_type_name`], [`check_field_name`], [`Trait::check_shape`]) are applied to every
//! decoded mutation, so an entry that breaks them is refused whole on every node.

use std::fmt;

use bincode::{Decode, Encode};

/// Longest entity id, trait id, trait type name or field name, in bytes.
pub const NAME_LEN_MAX: usize = 64;
/// Most fields in one trait.
pub const TRAIT_FIELDS_MAX: usize = 256;
/// Most items in one list value.
pub const LIST_ITEMS_MAX: usize = 1024;
/// Longest string value (the `string` field type and each list item), in bytes.
pub const STRING_LEN_MAX: usize = 4096;
/// Longest `text` value, in bytes. The whole entry is bounded by the chain's plaintext limit.
pub const TEXT_LEN_MAX: usize = 256 * 1024;

/// Why a value is not well formed. Says which value in words a user understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

/// Checks an entity or trait id: 1 to 64 bytes of `A-Z a-z 0-9 _ - .`. The charset keeps ids
/// whole in the index (no tokenizer splits them) and typeable in a query string.
pub fn check_id(what: &str, id: &str) -> Result<(), ShapeError> {
    if id.is_empty() || id.len() > NAME_LEN_MAX {
        return Err(ShapeError(format!(
            "{what} `{}` must be 1 to {NAME_LEN_MAX} bytes long",
            shorten(id)
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(ShapeError(format!(
            "{what} `{}` holds `{c}`: ids use only letters, digits, `_`, `-` and `.`",
            shorten(id)
        )));
    }
    Ok(())
}

/// Checks a field name: `[a-z][a-z0-9_]*`, at most 64 bytes.
pub fn check_field_name(name: &str) -> Result<(), ShapeError> {
    if !is_segment(name) || name.len() > NAME_LEN_MAX {
        return Err(ShapeError(format!(
            "field name `{}` must match [a-z][a-z0-9_]* and be at most {NAME_LEN_MAX} bytes",
            shorten(name)
        )));
    }
    Ok(())
}

/// Checks a trait type name: segments `[a-z][a-z0-9_]*` joined by `.` (apps namespace their
/// types, `myapp.recipe`), at most 64 bytes.
pub fn check_type_name(name: &str) -> Result<(), ShapeError> {
    if name.len() > NAME_LEN_MAX || name.is_empty() || !name.split('.').all(is_segment) {
        return Err(ShapeError(format!(
            "trait type `{}` must be segments matching [a-z][a-z0-9_]* joined by `.`, at most \
             {NAME_LEN_MAX} bytes",
            shorten(name)
        )));
    }
    Ok(())
}

fn is_segment(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(70) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Generates an entity or trait id: 16 random bytes from the OS in lowercase base32
/// (26 characters).
pub fn generate_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS random source does not fail on the systems we run on; if it ever does, fall
    // back to a time-and-counter derived id rather than panicking in a request path.
    if getrandom::getrandom(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = (
            crate::clock::now_us(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
        );
        let hash = blake3::hash(format!("{seed:?}").as_bytes());
        bytes.copy_from_slice(&hash.as_bytes()[..16]);
    }
    // The alphabet of key text forms (`spec/identity.md`): safe in file names and URLs.
    exocore_protocol::base32::encode(&bytes)
}

/// A pointer to an entity, or to one trait of it. No referential integrity: the target may
/// not exist (yet).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Reference {
    /// The entity pointed to.
    pub entity: String,
    /// The trait pointed to, or the whole entity.
    pub trait_id: Option<String>,
}

impl Reference {
    /// A reference to a whole entity.
    pub fn entity(entity: impl Into<String>) -> Reference {
        Reference {
            entity: entity.into(),
            trait_id: None,
        }
    }

    /// The text form: `ENTITY` or `ENTITY/TRAIT`. It is also the indexed term.
    pub fn to_text(&self) -> String {
        match &self.trait_id {
            Some(t) => format!("{}/{t}", self.entity),
            None => self.entity.clone(),
        }
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Reference, ShapeError> {
        let (entity, trait_id) = match text.split_once('/') {
            Some((e, t)) => (e, Some(t.to_string())),
            None => (text, None),
        };
        let reference = Reference {
            entity: entity.to_string(),
            trait_id,
        };
        reference.check_shape()?;
        Ok(reference)
    }

    fn check_shape(&self) -> Result<(), ShapeError> {
        check_id("referenced entity id", &self.entity)?;
        if let Some(t) = &self.trait_id {
            check_id("referenced trait id", t)?;
        }
        Ok(())
    }
}

/// One item of a list, or a single value. Variant indices are the same as in [`Value`].
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Scalar {
    /// A string (`string` or `text` fields).
    String(String),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A finite 64-bit float (NaN and infinities are refused).
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// Microseconds since the Unix epoch, UTC (negative before 1970).
    Timestamp(i64),
    /// A reference to an entity or a trait.
    Reference(Reference),
}

/// A field's value: a scalar, or a list of scalars of one kind. Lists do not nest, which
/// also bounds the depth of any decoded value.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Value {
    /// A string (`string` or `text` fields).
    String(String),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A finite 64-bit float.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// A reference to an entity or a trait.
    Reference(Reference),
    /// A list; every item has the same kind.
    List(Vec<Scalar>),
}

impl Value {
    /// The value's scalars: itself, or a list's items.
    pub fn scalars(&self) -> Vec<Scalar> {
        match self {
            Value::String(s) => vec![Scalar::String(s.clone())],
            Value::Integer(i) => vec![Scalar::Integer(*i)],
            Value::Float(f) => vec![Scalar::Float(*f)],
            Value::Boolean(b) => vec![Scalar::Boolean(*b)],
            Value::Timestamp(t) => vec![Scalar::Timestamp(*t)],
            Value::Reference(r) => vec![Scalar::Reference(r.clone())],
            Value::List(items) => items.clone(),
        }
    }

    /// The value's kind in words, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Timestamp(_) => "timestamp",
            Value::Reference(_) => "reference",
            Value::List(_) => "list",
        }
    }
}

impl Scalar {
    /// The scalar's kind in words.
    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::String(_) => "string",
            Scalar::Integer(_) => "integer",
            Scalar::Float(_) => "float",
            Scalar::Boolean(_) => "boolean",
            Scalar::Timestamp(_) => "timestamp",
            Scalar::Reference(_) => "reference",
        }
    }

    fn check_shape(&self) -> Result<(), ShapeError> {
        match self {
            Scalar::String(s) if s.len() > TEXT_LEN_MAX => Err(ShapeError(format!(
                "a string of {} bytes is over the {TEXT_LEN_MAX}-byte limit",
                s.len()
            ))),
            Scalar::Float(f) if !f.is_finite() => Err(ShapeError(
                "a float must be finite (no NaN or infinity)".into(),
            )),
            Scalar::Reference(r) => r.check_shape(),
            _ => Ok(()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Integer(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Boolean(b)
    }
}

impl From<Reference> for Value {
    fn from(r: Reference) -> Value {
        Value::Reference(r)
    }
}

/// One named value of a trait.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Field {
    /// The field's name in the trait's schema.
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// A trait: one typed record of an entity (a note, a task, a contact...).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Trait {
    /// Unique within its entity.
    pub id: String,
    /// The trait type, whose schema says which fields it has.
    pub trait_type: String,
    /// Its fields, sorted by name, names unique. Absent optional fields are left out.
    pub fields: Vec<Field>,
}

impl Trait {
    /// A trait with no fields yet.
    pub fn new(id: impl Into<String>, trait_type: impl Into<String>) -> Trait {
        Trait {
            id: id.into(),
            trait_type: trait_type.into(),
            fields: Vec::new(),
        }
    }

    /// Sets a field (replacing a previous value), keeping fields sorted by name.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Trait {
        self.set(name, value.into());
        self
    }

    /// Sets a field (replacing a previous value), keeping fields sorted by name.
    pub fn set(&mut self, name: &str, value: Value) {
        match self.fields.binary_search_by(|f| f.name.as_str().cmp(name)) {
            Ok(i) => self.fields[i].value = value,
            Err(i) => self.fields.insert(
                i,
                Field {
                    name: name.to_string(),
                    value,
                },
            ),
        }
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    /// Checks the well-formedness rules that hold whatever the schema: id, type name, field
    /// names sorted and unique, at most [`TRAIT_FIELDS_MAX`] fields, lists of at most
    /// [`LIST_ITEMS_MAX`] items of one kind, strings at most [`TEXT_LEN_MAX`] bytes, finite
    /// floats, well-formed references.
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        check_id("trait id", &self.id)?;
        check_type_name(&self.trait_type)?;
        if self.fields.len() > TRAIT_FIELDS_MAX {
            return Err(ShapeError(format!(
                "trait `{}` has {} fields, over the limit of {TRAIT_FIELDS_MAX}",
                self.id,
                self.fields.len()
            )));
        }
        for (i, field) in self.fields.iter().enumerate() {
            let at = |e: ShapeError| ShapeError(format!("field `{}`: {}", field.name, e.0));
            check_field_name(&field.name).map_err(at)?;
            if i > 0 && self.fields[i - 1].name >= field.name {
                return Err(ShapeError(format!(
                    "field `{}`: field names must be sorted and unique",
                    field.name
                )));
            }
            if let Value::List(items) = &field.value {
                if items.len() > LIST_ITEMS_MAX {
                    return Err(at(ShapeError(format!(
                        "a list of {} items is over the limit of {LIST_ITEMS_MAX}",
                        items.len()
                    ))));
                }
                if let Some(first) = items.first() {
                    if let Some(other) = items.iter().find(|s| s.kind() != first.kind()) {
                        return Err(at(ShapeError(format!(
                            "a list mixes {} and {} items",
                            first.kind(),
                            other.kind()
                        ))));
                    }
                }
            }
            for scalar in field.value.scalars() {
                scalar.check_shape().map_err(at)?;
            }
        }
        Ok(())
    }
}

/// Formats microseconds since the epoch as RFC 3339 UTC: `2026-12-01T10:00:00Z`, with
/// `.ffffff` when the value has a sub-second part.
pub fn format_timestamp(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if micros == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{micros:06}Z")
    }
}

/// Parses a timestamp: `YYYY-MM-DD` (midnight UTC), `YYYY-MM-DDTHH:MM[:SS[.f{1,6}]]` followed
/// by `Z` or `±HH:MM` (no suffix means UTC), or a plain integer of microseconds since the
/// epoch. Years 0000 to 9999.
pub fn parse_timestamp(text: &str) -> Result<i64, ShapeError> {
    let bad = || {
        ShapeError(format!(
            "`{}` is not a timestamp (2026-12-01, 2026-12-01T10:00:00Z, or microseconds)",
            shorten(text)
        ))
    };
    if let Ok(us) = text.parse::<i64>() {
        return Ok(us);
    }
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<i64, ShapeError> {
        let part = text.get(range).ok_or_else(bad)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(bad());
    }
    let mut us = days_from_civil(y, m, d) * 86_400_000_000;
    if b.len() == 10 {
        return Ok(us);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 || b[13] != b':' {
        return Err(bad());
    }
    let (h, min) = (num(11..13)?, num(14..16)?);
    let mut i = 16;
    let mut s = 0;
    let mut frac_us = 0;
    if b.get(i) == Some(&b':') {
        s = num(i + 1..i + 3)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end == start || end - start > 6 {
                return Err(bad());
            }
            frac_us = num(start..end)? * 10i64.pow(6 - (end - start) as u32);
            i = end;
        }
    }
    if h > 23 || min > 59 || s > 59 {
        return Err(bad());
    }
    us += ((h * 60 + min) * 60 + s) * 1_000_000 + frac_us;
    match &b[i..] {
        [] | [b'Z'] | [b'z'] => Ok(us),
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let offset = (oh * 60 + om) * 60_000_000;
            Ok(if *sign == b'+' {
                us - offset
            } else {
                us + offset
            })
        }
        _ => Err(bad()),
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithms (public domain), proleptic Gregorian.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(parse_timestamp("1970-01-01").unwrap(), 0);
        assert_eq!(
            parse_timestamp("2026-01-01T00:00:00Z").unwrap(),
            1_767_225_600_000_000
        );
        assert_eq!(
            parse_timestamp("2026-01-01T01:00:00+01:00").unwrap(),
            1_767_225_600_000_000
        );
        assert_eq!(
            parse_timestamp("2026-01-01T00:00").unwrap(),
            1_767_225_600_000_000
        );
        assert_eq!(parse_timestamp("42").unwrap(), 42);
        for us in [
            0,
            -1,
            1_767_225_600_000_000,
            1_767_225_600_123_456,
            -86_400_000_001,
        ] {
            assert_eq!(parse_timestamp(&format_timestamp(us)).unwrap(), us);
        }
        assert_eq!(
            format_timestamp(1_767_225_600_000_000),
            "2026-01-01T00:00:00Z"
        );
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-01-01T25:00Z",
            "2026-01-01Tx",
            "tomorrow",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
        assert!(parse_timestamp("2024-02-29").is_ok());
    }

    #[test]
    fn ids_and_names() {
        assert!(check_id("entity id", "abc-DEF_1.2").is_ok());
        assert!(check_id("entity id", "").is_err());
        assert!(check_id("entity id", "a/b").is_err());
        assert!(check_id("entity id", "a b").is_err());
        assert!(check_id("entity id", &"a".repeat(65)).is_err());
        assert!(check_type_name("myapp.recipe").is_ok());
        assert!(check_type_name("Task").is_err());
        assert!(check_type_name("a..b").is_err());
        assert!(check_field_name("due_date").is_ok());
        assert!(check_field_name("due.date").is_err());
        let id = generate_id();
        assert_eq!(id.len(), 26);
        assert!(check_id("entity id", &id).is_ok());
        assert_ne!(id, generate_id());
    }

    #[test]
    fn trait_fields_stay_sorted() {
        let t = Trait::new("t", "task")
            .with("title", "x")
            .with("done", false)
            .with("title", "y");
        assert_eq!(t.fields.len(), 2);
        assert_eq!(t.fields[0].name, "done");
        assert_eq!(t.get("title"), Some(&Value::from("y")));
        assert!(t.check_shape().is_ok());
        let mut unsorted = t.clone();
        unsorted.fields.swap(0, 1);
        assert!(unsorted.check_shape().unwrap_err().0.contains("sorted"));
        let mixed = Trait::new("t", "task").with(
            "tags",
            Value::List(vec![Scalar::String("a".into()), Scalar::Integer(1)]),
        );
        assert!(mixed.check_shape().unwrap_err().0.contains("field `tags`"));
        let nan = Trait::new("t", "task").with("x", f64::NAN);
        assert!(nan.check_shape().is_err());
    }
}
