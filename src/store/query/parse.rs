//! The compact query string (`spec/query.md` section 2): a recursive-descent parser over
//! characters, with errors naming the 1-based character position.
//!
//! ```text
//! query    := or_expr
//! or_expr  := and_expr ( "OR" and_expr )*
//! and_expr := unary ( ["AND"] unary )*
//! unary    := "-" unary | "NOT" unary | primary
//! primary  := "(" or_expr ")" | "*" | phrase | key ":" [op] value ["~" [digit]] | word ["~" [digit]]
//! ```

use std::fmt;

use super::{
    Comparison, Cursor, FieldPath, FieldValue, Ordering, Predicate, Projection, Query, SortKey,
    FUZZY_DISTANCE_MAX, LIMIT_MAX, PREDICATE_DEPTH_MAX, PREDICATE_ITEMS_MAX,
};
use crate::chain::OperationId;
use crate::store::value::Reference;

/// Longest query string, in bytes.
pub const QUERY_TEXT_LEN_MAX: usize = 16 * 1024;

/// Why a query string does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based character position of the problem.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query, at character {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

pub(super) fn parse(text: &str) -> Result<Query, ParseError> {
    if text.len() > QUERY_TEXT_LEN_MAX {
        return Err(ParseError {
            position: 1,
            message: format!("a query string is at most {QUERY_TEXT_LEN_MAX} bytes"),
        });
    }
    let mut parser = Parser {
        chars: text.chars().collect(),
        at: 0,
        query: Query::new(Predicate::All),
        seen_sort: false,
    };
    let predicate = parser.or_expr(0)?;
    parser.skip_ws();
    if parser.at < parser.chars.len() {
        return Err(parser.error_here(format!(
            "unexpected `{}`{}",
            parser.chars[parser.at],
            if parser.chars[parser.at] == ')' {
                " (no `(` to close)"
            } else {
                ""
            }
        )));
    }
    parser.query.predicate = predicate.unwrap_or(Predicate::All);
    Ok(parser.query)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    query: Query,
    seen_sort: bool,
}

fn err(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position: position + 1,
        message: message.into(),
    }
}

impl Parser {
    fn error_here(&self, message: impl Into<String>) -> ParseError {
        err(self.at, message)
    }

    fn skip_ws(&mut self) {
        while self.at < self.chars.len() && self.chars[self.at].is_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// Whether the next word is `keyword` standing alone.
    fn at_keyword(&self, keyword: &str) -> bool {
        let n = keyword.chars().count();
        let matches = self.chars[self.at..]
            .iter()
            .take(n)
            .copied()
            .eq(keyword.chars());
        matches
            && self
                .chars
                .get(self.at + n)
                .is_none_or(|c| c.is_whitespace() || *c == '(')
    }

    /// `None`: only directives (no predicate).
    fn or_expr(&mut self, depth: u32) -> Result<Option<Predicate>, ParseError> {
        let start = self.at;
        let mut branches = vec![self.and_expr(depth)?];
        loop {
            self.skip_ws();
            if !self.at_keyword("OR") {
                break;
            }
            let or_at = self.at;
            self.at += 2;
            let branch = self.and_expr(depth)?;
            if branch.is_none() {
                return Err(err(or_at, "`OR` needs a predicate on each side"));
            }
            branches.push(branch);
        }
        if branches.len() == 1 {
            return Ok(branches.pop().flatten());
        }
        if branches[0].is_none() {
            return Err(err(start, "`OR` needs a predicate on each side"));
        }
        if branches.len() > PREDICATE_ITEMS_MAX {
            return Err(err(start, "too many `OR` branches"));
        }
        Ok(Some(Predicate::Or(
            branches.into_iter().flatten().collect(),
        )))
    }

    fn and_expr(&mut self, depth: u32) -> Result<Option<Predicate>, ParseError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None | Some(')') => break,
                _ if self.at_keyword("OR") => break,
                _ if self.at_keyword("AND") => {
                    self.at += 3;
                    continue;
                }
                _ => {}
            }
            let item_at = self.at;
            if let Some(p) = self.unary(depth, false)? {
                items.push(p);
                if items.len() > PREDICATE_ITEMS_MAX {
                    return Err(err(item_at, "too many predicates in one group"));
                }
            }
        }
        Ok(match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Predicate::And(items)),
        })
    }

    fn unary(&mut self, depth: u32, negated: bool) -> Result<Option<Predicate>, ParseError> {
        if depth > PREDICATE_DEPTH_MAX {
            return Err(self.error_here("the query is nested too deeply"));
        }
        let start = self.at;
        let negation = if self.peek() == Some('-')
            && self
                .chars
                .get(self.at + 1)
                .is_some_and(|c| !c.is_whitespace())
        {
            self.at += 1;
            true
        } else if self.at_keyword("NOT") {
            self.at += 3;
            self.skip_ws();
            true
        } else {
            false
        };
        if negation {
            if self.peek().is_none() {
                return Err(err(start, "nothing to negate"));
            }
            return match self.unary(depth + 1, true)? {
                Some(p) => Ok(Some(Predicate::Not(Box::new(p)))),
                None => Err(err(start, "only predicates can be negated")),
            };
        }
        self.primary(depth, negated)
    }

    fn primary(&mut self, depth: u32, negated: bool) -> Result<Option<Predicate>, ParseError> {
        let start = self.at;
        match self.peek() {
            Some('(') => {
                self.at += 1;
                let inner = self.or_expr(depth + 1)?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(err(start, "this `(` is never closed"));
                }
                self.at += 1;
                return inner
                    .map(Some)
                    .ok_or_else(|| err(start, "empty parentheses"));
            }
            Some('"') => {
                let text = self.quoted()?;
                let fuzzy = self.fuzzy()?;
                if fuzzy > 0 {
                    return Err(err(start, "a quoted phrase cannot be fuzzy"));
                }
                return Ok(Some(Predicate::Phrase { text }));
            }
            Some('*')
                if self
                    .chars
                    .get(self.at + 1)
                    .is_none_or(|c| c.is_whitespace() || *c == ')') =>
            {
                self.at += 1;
                return Ok(Some(Predicate::All));
            }
            _ => {}
        }
        // key ":" value ?
        let mut end = self.at;
        while end < self.chars.len()
            && (self.chars[end].is_ascii_alphanumeric() || matches!(self.chars[end], '_' | '.'))
        {
            end += 1;
        }
        if end > self.at && self.chars.get(end) == Some(&':') {
            let key: String = self.chars[self.at..end].iter().collect();
            self.at = end + 1;
            return self.key_value(start, &key, depth, negated);
        }
        let word = self.bare();
        if word.is_empty() {
            return Err(self.error_here(format!("unexpected `{}`", self.chars[self.at])));
        }
        let fuzzy = self.fuzzy()?;
        Ok(Some(Predicate::Words { text: word, fuzzy }))
    }

    /// A bare token: up to whitespace, a parenthesis, a quote or `~`.
    fn bare(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, '(' | ')' | '"' | '~') {
                break;
            }
            out.push(c);
            self.at += 1;
        }
        out
    }

    /// A `"quoted"` string with `\"` and `\\` escapes.
    fn quoted(&mut self) -> Result<String, ParseError> {
        let start = self.at;
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(err(start, "this quote is never closed")),
                Some('"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some('\\') if matches!(self.chars.get(self.at + 1), Some('"' | '\\')) => {
                    out.push(self.chars[self.at + 1]);
                    self.at += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    /// An optional `~` or `~N` suffix: edits allowed per word.
    fn fuzzy(&mut self) -> Result<u8, ParseError> {
        if self.peek() != Some('~') {
            return Ok(0);
        }
        let at = self.at;
        self.at += 1;
        match self.peek() {
            Some(d @ '0'..='9') => {
                self.at += 1;
                let n = d as u8 - b'0';
                if n > FUZZY_DISTANCE_MAX {
                    return Err(err(
                        at,
                        format!("fuzzy matching allows at most ~{FUZZY_DISTANCE_MAX}"),
                    ));
                }
                Ok(n)
            }
            _ => Ok(1),
        }
    }

    fn value(&mut self, key_at: usize, key: &str) -> Result<(String, usize), ParseError> {
        let at = self.at;
        let text = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            self.bare()
        };
        if text.is_empty() && self.chars.get(at) != Some(&'"') {
            return Err(err(key_at, format!("`{key}:` needs a value")));
        }
        Ok((text, at))
    }

    fn directive_allowed(
        &self,
        start: usize,
        key: &str,
        depth: u32,
        negated: bool,
    ) -> Result<(), ParseError> {
        if depth > 0 || negated {
            return Err(err(
                start,
                format!(
                    "`{key}:` applies to the whole query: put it outside parentheses and negations"
                ),
            ));
        }
        Ok(())
    }

    fn key_value(
        &mut self,
        start: usize,
        key: &str,
        depth: u32,
        negated: bool,
    ) -> Result<Option<Predicate>, ParseError> {
        match key {
            "sort" | "limit" | "after" | "show" | "include" => {
                self.directive_allowed(start, key, depth, negated)?;
                let (value, at) = self.value(start, key)?;
                self.directive(start, key, &value, at)?;
                Ok(None)
            }
            "type" => Ok(Some(Predicate::Type(self.value(start, key)?.0))),
            "id" => Ok(Some(Predicate::Id(self.value(start, key)?.0))),
            "ref" => {
                let (value, at) = self.value(start, key)?;
                let reference = Reference::parse(&value).map_err(|e| err(at, e.0))?;
                Ok(Some(Predicate::Reference(reference)))
            }
            "op" => {
                let (value, at) = self.value(start, key)?;
                let id = value
                    .parse::<OperationId>()
                    .map_err(|e| err(at, e.to_string()))?;
                Ok(Some(Predicate::Operation(id)))
            }
            _ => {
                let path = field_path(key)
                    .ok_or_else(|| err(start, format!("`{key}` is not a field name")))?;
                let comparison = self.comparison();
                let (value, _) = self.value(start, key)?;
                let fuzzy = self.fuzzy()?;
                Ok(Some(Predicate::Field {
                    path,
                    comparison,
                    value: FieldValue::Text(value),
                    fuzzy,
                }))
            }
        }
    }

    fn comparison(&mut self) -> Comparison {
        let two: String = self.chars[self.at..].iter().take(2).collect();
        let (comparison, len) = match two.as_str() {
            ">=" => (Comparison::Ge, 2),
            "<=" => (Comparison::Le, 2),
            _ => match self.peek() {
                Some('>') => (Comparison::Gt, 1),
                Some('<') => (Comparison::Lt, 1),
                Some('=') => (Comparison::Eq, 1),
                _ => (Comparison::Eq, 0),
            },
        };
        self.at += len;
        comparison
    }

    fn directive(
        &mut self,
        start: usize,
        key: &str,
        value: &str,
        at: usize,
    ) -> Result<(), ParseError> {
        match key {
            "sort" => {
                if self.seen_sort {
                    return Err(err(start, "only one `sort:` per query"));
                }
                self.seen_sort = true;
                let (ascending, name) = match value.strip_prefix('-') {
                    Some(rest) => (false, rest),
                    None => (true, value.strip_prefix('+').unwrap_or(value)),
                };
                let key = match name {
                    "score" => SortKey::Score,
                    "created" => SortKey::Created,
                    "updated" => SortKey::Updated,
                    other => SortKey::Field(field_path(other).ok_or_else(|| {
                        err(at, format!("cannot sort by `{other}`: use score, created, updated or a sorted field"))
                    })?),
                };
                self.query.ordering = Some(Ordering { key, ascending });
            }
            "limit" => {
                let limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=LIMIT_MAX).contains(l))
                    .ok_or_else(|| {
                        err(at, format!("`limit:` is a number from 1 to {LIMIT_MAX}"))
                    })?;
                self.query.limit = limit;
            }
            "after" => {
                self.query.after = Some(Cursor::parse(value).map_err(|e| err(at, e))?);
            }
            "include" => {
                if value != "deleted" {
                    return Err(err(at, "`include:` takes `deleted`"));
                }
                self.query.include_deleted = true;
            }
            "show" => {
                for projection in parse_show(value).map_err(|(offset, m)| err(at + offset, m))? {
                    self.query.projections.push(projection);
                }
            }
            _ => unreachable!("directive keys are matched by the caller"),
        }
        Ok(())
    }
}

/// `a.b.c` → type `a.b`, field `c`; `c` → any type's field `c`.
fn field_path(key: &str) -> Option<FieldPath> {
    let (trait_type, field) = match key.rsplit_once('.') {
        Some((t, f)) => (Some(t.to_string()), f),
        None => (None, key),
    };
    if field.is_empty() || trait_type.as_deref() == Some("") {
        return None;
    }
    Some(FieldPath {
        trait_type,
        field: field.to_string(),
    })
}

/// `note,task[title,done]`.
fn parse_show(value: &str) -> Result<Vec<Projection>, (usize, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && !matches!(chars[i], ',' | '[') {
            i += 1;
        }
        let trait_type: String = chars[start..i].iter().collect();
        if trait_type.is_empty() {
            return Err((
                start,
                "`show:` lists trait types: show:note,task[title,done]".into(),
            ));
        }
        let mut fields = Vec::new();
        if chars.get(i) == Some(&'[') {
            let open = i;
            i += 1;
            let fstart = i;
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            if i == chars.len() {
                return Err((open, "this `[` is never closed".into()));
            }
            let list: String = chars[fstart..i].iter().collect();
            fields = list
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect();
            i += 1;
        }
        out.push(Projection { trait_type, fields });
        if chars.get(i) == Some(&',') {
            i += 1;
        } else if i < chars.len() {
            return Err((i, format!("unexpected `{}` in `show:`", chars[i])));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(t: &str) -> Predicate {
        Predicate::Words {
            text: t.into(),
            fuzzy: 0,
        }
    }

    #[test]
    fn grammar() {
        let q = parse("type:task done:false sort:-updated limit:5").unwrap();
        assert_eq!(
            q.predicate,
            Predicate::And(vec![
                Predicate::Type("task".into()),
                Predicate::Field {
                    path: FieldPath {
                        trait_type: None,
                        field: "done".into()
                    },
                    comparison: Comparison::Eq,
                    value: FieldValue::Text("false".into()),
                    fuzzy: 0,
                }
            ])
        );
        assert_eq!(q.limit, 5);
        assert_eq!(
            q.ordering,
            Some(Ordering {
                key: SortKey::Updated,
                ascending: false
            })
        );
        let q = parse("a OR b c").unwrap();
        assert_eq!(
            q.predicate,
            Predicate::Or(vec![
                words("a"),
                Predicate::And(vec![words("b"), words("c")])
            ])
        );
        let q = parse("-(a OR b) NOT c").unwrap();
        assert_eq!(
            q.predicate,
            Predicate::And(vec![
                Predicate::Not(Box::new(Predicate::Or(vec![words("a"), words("b")]))),
                Predicate::Not(Box::new(words("c"))),
            ])
        );
        let q = parse("hello~ wrld~2 \"a phrase\" task.priority:>=2 due:<2026-12-01").unwrap();
        let Predicate::And(items) = q.predicate else {
            panic!()
        };
        assert_eq!(
            items[0],
            Predicate::Words {
                text: "hello".into(),
                fuzzy: 1
            }
        );
        assert_eq!(
            items[1],
            Predicate::Words {
                text: "wrld".into(),
                fuzzy: 2
            }
        );
        assert_eq!(
            items[2],
            Predicate::Phrase {
                text: "a phrase".into()
            }
        );
        assert!(
            matches!(&items[3], Predicate::Field { path, comparison: Comparison::Ge, .. } if path.trait_type.as_deref() == Some("task"))
        );
        assert!(
            matches!(&items[4], Predicate::Field { comparison: Comparison::Lt, value: FieldValue::Text(v), .. } if v == "2026-12-01")
        );
        assert_eq!(parse("").unwrap().predicate, Predicate::All);
        assert_eq!(parse("sort:created").unwrap().predicate, Predicate::All);
        assert_eq!(parse("*").unwrap().predicate, Predicate::All);
        let q = parse("show:note,task[title,done] include:deleted title:\"x y\"").unwrap();
        assert_eq!(q.projections.len(), 2);
        assert_eq!(q.projections[1].fields, ["title", "done"]);
        assert!(q.include_deleted);
        let q = parse("ref:abc/def op:00000000000000010000000000000002").unwrap();
        assert!(matches!(q.predicate, Predicate::And(_)));
    }

    #[test]
    fn errors_name_the_position() {
        let cases = [
            ("type:task (done:false", 11, "never closed"),
            ("a )", 3, "no `(`"),
            ("title:\"open", 7, "quote"),
            ("a OR", 3, "OR"),
            ("limit:0", 7, "limit"),
            ("sort:-created sort:score", 15, "one `sort:`"),
            ("(sort:score)", 2, "whole query"),
            ("-sort:score", 2, "whole query"),
            ("op:xyz", 4, "32 hexadecimal"),
            ("ref:a/b/c", 5, "`/`"),
            ("after:zzzz", 7, "cursor"),
            ("due:", 1, "needs a value"),
            ("x~9", 2, "at most"),
            ("()", 1, "empty"),
            ("show:task[title", 10, "never closed"),
        ];
        for (text, position, message) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.position, position, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
        }
        let deep = "(".repeat(100) + "a" + &")".repeat(100);
        assert!(parse(&deep).unwrap_err().message.contains("deeply"));
        let negations = "-".repeat(100) + "a";
        assert!(parse(&negations).is_err());
    }
}
