//! Strict TOML: parse a file into a typed config, and edit one key of a document.
//!
//! Every error names the file, the line and the key, in one line, because a misspelled key
//! that is silently ignored is a setting the user believes in and does not have.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A file that could not be read as the config it should hold.
#[derive(Debug)]
pub struct ParseError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// The key on that line, when there is one.
    pub key: Option<String>,
    /// What was wrong, in one line.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, " (key `{key}`)")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses `text`, the contents of `path`, refusing unknown keys (the config types are
/// `deny_unknown_fields`), bad values and missing fields.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ParseError> {
    toml::from_str(text).map_err(|err| {
        // A span over several lines is a whole table (e.g. a missing field): no one line.
        let line = err
            .span()
            .filter(|span| line_of(text, span.start) == line_of(text, span.end.saturating_sub(1)))
            .map(|span| line_of(text, span.start));
        let key = line.and_then(|line| key_on_line(text, line));
        ParseError {
            path: path.to_path_buf(),
            line,
            key,
            message: one_line(err.message()),
        }
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key assigned on `line` (`key = ...`), or the table named there (`[table]`).
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let content = text.lines().nth(line - 1)?.trim();
    if content.starts_with('#') {
        return None;
    }
    let key = match content.split_once('=') {
        Some((key, _)) => key.trim(),
        None => content.trim_start_matches('[').trim_end_matches(']').trim(),
    };
    (!key.is_empty()).then(|| key.trim_matches('"').to_string())
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a `KEY VALUE` edit was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    /// The document itself is not valid TOML.
    Document(String),
    /// The key path goes through a value that is not a table.
    NotATable(String),
    /// `unset` of a key that is not there.
    Missing(String),
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditError::Document(message) => write!(f, "{message}"),
            EditError::NotATable(key) => write!(f, "`{key}` is not a section, it has no keys"),
            EditError::Missing(key) => write!(f, "`{key}` is not set"),
        }
    }
}

/// Sets dotted `key` to `value` in the TOML `document`, keeping comments and layout.
/// `value` is read as a TOML value (`3330`, `true`, `["a:1", "b:2"]`, `"text"`); anything
/// that is not valid TOML is taken as a plain string, so `exo config set name kitchen` works.
pub fn set(document: &str, key: &str, value: &str) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut = document
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Document(one_line(e.message())))?;
    let value = parse_value(value);
    let (table, last) = walk(doc.as_table_mut(), key, true)?;
    match table.get_mut(last) {
        // Replacing the item, not the key, keeps the comments written above the key.
        Some(item) => *item = toml_edit::Item::Value(value),
        None => {
            table.insert(last, toml_edit::Item::Value(value));
        }
    }
    Ok(doc.to_string())
}

/// Removes dotted `key` from the TOML `document`, so the setting takes its default.
pub fn unset(document: &str, key: &str) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut = document
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Document(one_line(e.message())))?;
    let (table, last) = walk(doc.as_table_mut(), key, false)?;
    if table.remove(last).is_none() {
        return Err(EditError::Missing(key.to_string()));
    }
    Ok(doc.to_string())
}

fn walk<'a, 'k>(
    mut table: &'a mut toml_edit::Table,
    key: &'k str,
    create: bool,
) -> Result<(&'a mut toml_edit::Table, &'k str), EditError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    for (i, part) in parts.iter().enumerate() {
        let path = parts[..=i].join(".");
        if !table.contains_key(part) {
            if !create {
                return Err(EditError::Missing(key.to_string()));
            }
            table.insert(part, toml_edit::Item::Table(toml_edit::Table::new()));
        }
        table = table
            .get_mut(part)
            .and_then(|item| item.as_table_mut())
            .ok_or(EditError::NotATable(path))?;
    }
    Ok((table, last))
}

fn parse_value(text: &str) -> toml_edit::Value {
    text.parse::<toml_edit::Value>()
        .unwrap_or_else(|_| toml_edit::Value::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        port: u16,
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = parse::<Sample>(
            Path::new("x.toml"),
            "name = \"a\"\nport = 1\nnmae = \"b\"\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(3));
        assert_eq!(err.key.as_deref(), Some("nmae"));
        assert!(err
            .to_string()
            .starts_with("x.toml line 3 (key `nmae`): unknown field `nmae`"));
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn bad_value_names_line_and_key() {
        let err = parse::<Sample>(Path::new("x.toml"), "name = \"a\"\nport = 70000\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.key.as_deref(), Some("port"));
    }

    #[test]
    fn missing_field_is_named() {
        let err = parse::<Sample>(Path::new("x.toml"), "name = \"a\"\n").unwrap_err();
        assert!(err.message.contains("missing field `port`"), "{err}");
    }

    #[test]
    fn set_keeps_comments_and_reads_values() {
        let doc = "# a comment\nname = \"a\"\n";
        let doc = set(doc, "name", "kitchen").unwrap();
        let doc = set(&doc, "port", "3330").unwrap();
        let doc = set(&doc, "chain.map_size_mb", "64").unwrap();
        assert!(doc.contains("# a comment"));
        assert!(doc.contains("name = \"kitchen\""));
        assert!(doc.contains("port = 3330"));
        assert!(doc.contains("[chain]\nmap_size_mb = 64"));
        let doc = unset(&doc, "port").unwrap();
        assert!(!doc.contains("port"));
        assert_eq!(unset(&doc, "port"), Err(EditError::Missing("port".into())));
        assert_eq!(
            set(&doc, "name.x", "1"),
            Err(EditError::NotATable("name".into()))
        );
    }
}
