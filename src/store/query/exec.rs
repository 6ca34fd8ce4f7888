//! Query execution: predicates to tantivy queries, a paging collector ordered by
//! (sort key, entity-id hash), and results folded from the stored histories.

use std::collections::{BTreeSet, BinaryHeap};
use std::ops::Bound;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery,
    Query as IndexQuery, RangeQuery, TermQuery,
};
use tantivy::schema::{Field as IndexField, IndexRecordOption};
use tantivy::tokenizer::TokenStream;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};

use super::{
    Comparison, Cursor, FieldPath, FieldValue, Ordering, Predicate, Query, QueryError,
    QueryResults, SortKey, FUZZY_DISTANCE_MAX, LIMIT_DEFAULT, LIMIT_MAX, PREDICATE_DEPTH_MAX,
    PREDICATE_ITEMS_MAX,
};
use crate::store::entity::Entity;
use crate::store::index::{
    StoreIndex, F_CREATED, F_ID_HASH, F_OPS, F_REFS, F_STATUS, F_TEXT, F_TYPES, F_UPDATED,
    STATUS_DELETED, STATUS_LIVE,
};
use crate::store::schema::{FieldKind, FieldSchema};
use crate::store::value::{parse_timestamp, Reference};

type BoxQuery = Box<dyn IndexQuery>;

fn index_error(e: impl std::fmt::Display) -> QueryError {
    QueryError::Index(e.to_string())
}

pub(crate) fn execute(index: &StoreIndex, query: &Query) -> Result<QueryResults, QueryError> {
    let limit = match query.limit {
        0 => LIMIT_DEFAULT,
        l if l > LIMIT_MAX => {
            return Err(QueryError::Invalid(format!(
                "a page holds at most {LIMIT_MAX} results"
            )))
        }
        l => l,
    } as usize;
    let mut types = BTreeSet::new();
    collect_types(&query.predicate, &mut types);
    let translator = Translator { index, types };

    let ordering = query.effective_ordering();
    let source = translator.sort_source(&ordering)?;
    let ordering_tag = {
        // spec/query.md section 4: BLAKE3("<key>/<asc|desc>"), key = "score" or the column.
        let key = match &source {
            SortSource::Score => "score",
            SortSource::Column(name) => name.as_str(),
        };
        let direction = if ordering.ascending { "asc" } else { "desc" };
        let hash = blake3::hash(format!("{key}/{direction}").as_bytes());
        let mut first = [0u8; 4];
        first.copy_from_slice(&hash.as_bytes()[..4]);
        u32::from_le_bytes(first)
    };
    let after = match &query.after {
        None => None,
        Some(c) if !c.is_intact() => {
            return Err(QueryError::Cursor(
                "the paging cursor is malformed or was altered".into(),
            ))
        }
        Some(c) if c.ordering != ordering_tag => {
            return Err(QueryError::Cursor(
                "the paging cursor belongs to a query with another order".into(),
            ))
        }
        Some(c) => Some(Position {
            missing: c.missing,
            key: c.key,
            id_hash: c.id_hash,
        }),
    };

    let status = index.field(F_STATUS).map_err(index_error)?;
    let mut status_query: BoxQuery = Box::new(TermQuery::new(
        Term::from_field_u64(status, STATUS_LIVE),
        IndexRecordOption::Basic,
    ));
    if query.include_deleted {
        status_query = Box::new(BooleanQuery::union(vec![
            status_query,
            Box::new(TermQuery::new(
                Term::from_field_u64(status, STATUS_DELETED),
                IndexRecordOption::Basic,
            )),
        ]));
    }
    let root = BooleanQuery::new(vec![
        (
            Occur::Must,
            Box::new(ConstScoreQuery::new(status_query, 0.0)) as BoxQuery,
        ),
        (Occur::Must, translator.predicate(&query.predicate, 0)?),
    ]);

    let collector = PageCollector {
        source: source.clone(),
        ascending: ordering.ascending,
        after,
        keep: limit + 1,
    };
    let searcher = index.reader.searcher();
    let (mut hits, total) = searcher.search(&root, &collector).map_err(index_error)?;
    let next = if hits.len() > limit {
        hits.truncate(limit);
        hits.last()
            .map(|(p, _, _)| Cursor::new(ordering_tag, p.missing, p.key, p.id_hash))
    } else {
        None
    };

    let mut entities = Vec::with_capacity(hits.len());
    for (_, segment, doc) in &hits {
        let document: TantivyDocument = searcher
            .doc(tantivy::DocAddress::new(*segment, *doc))
            .map_err(index_error)?;
        let history = index.history_of(&document).map_err(index_error)?;
        entities.push(present(history.fold(), query));
    }
    let hash = {
        let mut hasher = blake3::Hasher::new();
        for e in &entities {
            hasher.update(e.id.as_bytes());
            hasher.update(&[0]);
            hasher.update(&e.version.to_bytes());
        }
        if let Some(next) = &next {
            hasher.update(next.to_text().as_bytes());
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        u64::from_le_bytes(first)
    };
    let unchanged = query.result_hash == Some(hash);
    if unchanged {
        entities.clear();
    }
    Ok(QueryResults {
        entities,
        next,
        total,
        hash,
        unchanged,
    })
}

/// Keeps the traits the query asks for: live ones (all, with `include_deleted`), projected.
fn present(mut entity: Entity, query: &Query) -> Entity {
    if !query.include_deleted {
        entity.traits.retain(|t| t.deleted_us.is_none());
    }
    if !query.projections.is_empty() {
        entity.traits.retain_mut(|t| {
            let matching: Vec<_> = query
                .projections
                .iter()
                .filter(|p| p.trait_type == t.value.trait_type)
                .collect();
            if matching.is_empty() {
                return false;
            }
            if matching.iter().all(|p| !p.fields.is_empty()) {
                t.value
                    .fields
                    .retain(|f| matching.iter().any(|p| p.fields.contains(&f.name)));
            }
            true
        });
    }
    entity
}

fn collect_types(predicate: &Predicate, out: &mut BTreeSet<String>) {
    match predicate {
        Predicate::Type(t) => {
            out.insert(t.clone());
        }
        Predicate::And(items) | Predicate::Or(items) => {
            for p in items {
                collect_types(p, out);
            }
        }
        Predicate::Not(inner) => collect_types(inner, out),
        _ => {}
    }
}

/// Where sort keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SortSource {
    Score,
    /// A u64 fast column whose order is the key's order.
    Column(String),
}

enum Resolved<'a> {
    EntityDate(&'static str),
    Fields(Vec<(&'a str, &'a FieldSchema)>),
}

struct Translator<'a> {
    index: &'a StoreIndex,
    /// The trait types named by `type:` predicates: the context of unqualified fields.
    types: BTreeSet<String>,
}

impl<'a> Translator<'a> {
    fn field(&self, name: &str) -> Result<IndexField, QueryError> {
        self.index.field(name).map_err(index_error)
    }

    fn resolve(&self, path: &FieldPath) -> Result<Resolved<'a>, QueryError> {
        let schemas = self.index.schemas();
        if path.trait_type.is_none() {
            match path.field.as_str() {
                "created" => return Ok(Resolved::EntityDate(F_CREATED)),
                "updated" => return Ok(Resolved::EntityDate(F_UPDATED)),
                _ => {}
            }
        }
        let candidates: Vec<_> = match &path.trait_type {
            Some(t) => vec![schemas.get(t).ok_or_else(|| {
                QueryError::Field(format!("unknown trait type `{t}` in `{path}`"))
            })?],
            None if !self.types.is_empty() => {
                self.types.iter().filter_map(|t| schemas.get(t)).collect()
            }
            None => schemas.iter().collect(),
        };
        let fields: Vec<_> = candidates
            .into_iter()
            .filter_map(|s| s.field(&path.field).map(|f| (s.name.as_str(), f)))
            .collect();
        if fields.is_empty() {
            let scope = if path.trait_type.is_some() || !self.types.is_empty() {
                "that trait type"
            } else {
                "any trait type"
            };
            return Err(QueryError::Field(format!(
                "`{path}` is not a field of {scope}"
            )));
        }
        Ok(Resolved::Fields(fields))
    }

    fn sort_source(&self, ordering: &Ordering) -> Result<SortSource, QueryError> {
        Ok(match &ordering.key {
            SortKey::Score => SortSource::Score,
            SortKey::Created => SortSource::Column(F_CREATED.into()),
            SortKey::Updated => SortSource::Column(F_UPDATED.into()),
            SortKey::Field(path) => match self.resolve(path)? {
                Resolved::EntityDate(name) => SortSource::Column(name.into()),
                Resolved::Fields(fields) => {
                    let sorted: Vec<_> = fields.iter().filter(|(_, f)| f.sorted).collect();
                    match sorted.as_slice() {
                        [(t, f)] => SortSource::Column(format!("s.{t}.{}", f.name)),
                        [] => {
                            return Err(QueryError::Field(format!(
                                "cannot sort by `{path}`: it is not a sorted field"
                            )))
                        }
                        many => {
                            let names: Vec<_> = many
                                .iter()
                                .map(|(t, f)| format!("{t}.{}", f.name))
                                .collect();
                            return Err(QueryError::Field(format!(
                                "`sort:{path}` is ambiguous ({}): name the type",
                                names.join(", ")
                            )));
                        }
                    }
                }
            },
        })
    }

    fn predicate(&self, predicate: &Predicate, depth: u32) -> Result<BoxQuery, QueryError> {
        if depth > PREDICATE_DEPTH_MAX {
            return Err(QueryError::Invalid("the query is nested too deeply".into()));
        }
        let filter = |q: BoxQuery| -> BoxQuery { Box::new(ConstScoreQuery::new(q, 0.0)) };
        let term = |field: &str, text: &str| -> Result<BoxQuery, QueryError> {
            Ok(filter(Box::new(TermQuery::new(
                Term::from_field_text(self.field(field)?, text),
                IndexRecordOption::Basic,
            ))))
        };
        Ok(match predicate {
            Predicate::All => filter(Box::new(AllQuery)),
            Predicate::Words { text, fuzzy } => self.words(F_TEXT, text, *fuzzy)?,
            Predicate::Phrase { text } => self.phrase(F_TEXT, text)?,
            Predicate::Type(t) => term(F_TYPES, t)?,
            Predicate::Id(id) => term(crate::store::index::F_ID, id)?,
            Predicate::Reference(r) => term(F_REFS, &r.to_text())?,
            Predicate::Operation(op) => term(F_OPS, &op.to_string())?,
            Predicate::Field {
                path,
                comparison,
                value,
                fuzzy,
            } => self.field_predicate(path, *comparison, value, *fuzzy)?,
            Predicate::And(items) | Predicate::Or(items) => {
                if items.is_empty() || items.len() > PREDICATE_ITEMS_MAX {
                    return Err(QueryError::Invalid(format!(
                        "a boolean predicate holds 1 to {PREDICATE_ITEMS_MAX} predicates"
                    )));
                }
                let occur = if matches!(predicate, Predicate::And(_)) {
                    Occur::Must
                } else {
                    Occur::Should
                };
                let mut clauses = Vec::with_capacity(items.len());
                for p in items {
                    clauses.push((occur, self.predicate(p, depth + 1)?));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Predicate::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, filter(Box::new(AllQuery))),
                (Occur::MustNot, self.predicate(inner, depth + 1)?),
            ])),
        })
    }

    /// The tokens of `text` as the index's default analyzer makes them.
    fn tokens(&self, text: &str) -> Result<Vec<String>, QueryError> {
        let mut analyzer = self
            .index
            .index
            .tokenizers()
            .get("default")
            .ok_or_else(|| index_error("no default tokenizer"))?;
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        if out.is_empty() {
            return Err(QueryError::Invalid(format!(
                "`{text}` has no word to search for"
            )));
        }
        Ok(out)
    }

    fn words(&self, field: &str, text: &str, fuzzy: u8) -> Result<BoxQuery, QueryError> {
        if fuzzy > FUZZY_DISTANCE_MAX {
            return Err(QueryError::Invalid(format!(
                "fuzzy matching allows at most {FUZZY_DISTANCE_MAX} edits"
            )));
        }
        let f = self.field(field)?;
        let mut clauses: Vec<(Occur, BoxQuery)> = Vec::new();
        for token in self.tokens(text)? {
            let term = Term::from_field_text(f, &token);
            let q: BoxQuery = if fuzzy == 0 {
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))
            } else {
                Box::new(FuzzyTermQuery::new(term, fuzzy, true))
            };
            clauses.push((Occur::Must, q));
        }
        Ok(if clauses.len() == 1 {
            clauses.pop().expect("one clause").1
        } else {
            Box::new(BooleanQuery::new(clauses))
        })
    }

    fn phrase(&self, field: &str, text: &str) -> Result<BoxQuery, QueryError> {
        let f = self.field(field)?;
        let terms: Vec<Term> = self
            .tokens(text)?
            .iter()
            .map(|t| Term::from_field_text(f, t))
            .collect();
        Ok(if terms.len() == 1 {
            Box::new(TermQuery::new(
                terms[0].clone(),
                IndexRecordOption::WithFreqs,
            ))
        } else {
            Box::new(PhraseQuery::new(terms))
        })
    }

    fn field_predicate(
        &self,
        path: &FieldPath,
        comparison: Comparison,
        value: &FieldValue,
        fuzzy: u8,
    ) -> Result<BoxQuery, QueryError> {
        let fields = match self.resolve(path)? {
            Resolved::EntityDate(name) => {
                if fuzzy > 0 {
                    return Err(QueryError::Invalid(format!("`{path}` cannot be fuzzy")));
                }
                let us = to_timestamp(path, value)?;
                let term = Term::from_field_u64(self.field(name)?, u64::try_from(us).unwrap_or(0));
                return Ok(Box::new(ConstScoreQuery::new(range(term, comparison), 0.0)));
            }
            Resolved::Fields(fields) => fields,
        };
        let mut clauses: Vec<(Occur, BoxQuery)> = Vec::new();
        for (trait_type, field) in &fields {
            let name = format!("{trait_type}.{}", field.name);
            let words =
                field.full_text && comparison == Comparison::Eq && (fuzzy > 0 || !field.indexed);
            if words {
                let FieldValue::Text(text) = value else {
                    return Err(QueryError::Value(format!(
                        "`{name}` is a full-text field: give it words"
                    )));
                };
                clauses.push((
                    Occur::Should,
                    self.words(&format!("t.{name}"), text, fuzzy)?,
                ));
            } else if field.indexed {
                if fuzzy > 0 {
                    return Err(QueryError::Invalid(format!(
                        "`{name}` is not a full-text field: it cannot be fuzzy"
                    )));
                }
                let f = self.field(&format!("f.{name}"))?;
                let term = typed_term(f, &name, field, comparison, value)?;
                let q = range(term, comparison);
                clauses.push((Occur::Should, Box::new(ConstScoreQuery::new(q, 0.0))));
            }
        }
        if clauses.is_empty() {
            let need = if comparison == Comparison::Eq {
                "`indexed` or `full_text`"
            } else {
                "`indexed`"
            };
            let names: Vec<_> = fields
                .iter()
                .map(|(t, f)| format!("{t}.{}", f.name))
                .collect();
            return Err(QueryError::Field(format!(
                "`{}` cannot be queried this way: its schema does not mark it {need}",
                names.join("`, `")
            )));
        }
        Ok(if clauses.len() == 1 {
            clauses.pop().expect("one clause").1
        } else {
            Box::new(BooleanQuery::new(clauses))
        })
    }
}

fn range(term: Term, comparison: Comparison) -> BoxQuery {
    match comparison {
        Comparison::Eq => Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
        Comparison::Lt => Box::new(RangeQuery::new(Bound::Unbounded, Bound::Excluded(term))),
        Comparison::Le => Box::new(RangeQuery::new(Bound::Unbounded, Bound::Included(term))),
        Comparison::Gt => Box::new(RangeQuery::new(Bound::Excluded(term), Bound::Unbounded)),
        Comparison::Ge => Box::new(RangeQuery::new(Bound::Included(term), Bound::Unbounded)),
    }
}

fn to_timestamp(path: &FieldPath, value: &FieldValue) -> Result<i64, QueryError> {
    match value {
        FieldValue::Timestamp(t) | FieldValue::Integer(t) => Ok(*t),
        FieldValue::Text(text) => {
            parse_timestamp(text).map_err(|e| QueryError::Value(format!("`{path}`: {e}")))
        }
        other => Err(QueryError::Value(format!(
            "`{path}` is a timestamp, not {other:?}"
        ))),
    }
}

fn typed_term(
    f: IndexField,
    name: &str,
    field: &FieldSchema,
    comparison: Comparison,
    value: &FieldValue,
) -> Result<Term, QueryError> {
    let wrong =
        |what: &str| QueryError::Value(format!("`{name}` is {}: {what}", field.type_name()));
    Ok(match field.kind {
        FieldKind::String | FieldKind::Text => match value {
            FieldValue::Text(s) => Term::from_field_text(f, s),
            _ => return Err(wrong("give it text")),
        },
        FieldKind::Integer => match value {
            FieldValue::Integer(i) => Term::from_field_i64(f, *i),
            FieldValue::Text(t) => Term::from_field_i64(
                f,
                t.parse()
                    .map_err(|_| wrong(&format!("`{t}` is not an integer")))?,
            ),
            _ => return Err(wrong("give it an integer")),
        },
        FieldKind::Float => {
            let x = match value {
                FieldValue::Float(x) => *x,
                FieldValue::Integer(i) => *i as f64,
                FieldValue::Text(t) => t
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| wrong(&format!("`{t}` is not a number")))?,
                _ => return Err(wrong("give it a number")),
            };
            Term::from_field_f64(f, x)
        }
        FieldKind::Boolean => {
            if comparison != Comparison::Eq {
                return Err(wrong("booleans compare for equality only"));
            }
            match value {
                FieldValue::Boolean(b) => Term::from_field_bool(f, *b),
                FieldValue::Text(t) if t == "true" => Term::from_field_bool(f, true),
                FieldValue::Text(t) if t == "false" => Term::from_field_bool(f, false),
                _ => return Err(wrong("give it true or false")),
            }
        }
        FieldKind::Timestamp => {
            let path = FieldPath {
                trait_type: None,
                field: name.to_string(),
            };
            Term::from_field_i64(f, to_timestamp(&path, value)?)
        }
        FieldKind::Reference => {
            if comparison != Comparison::Eq {
                return Err(wrong("references compare for equality only"));
            }
            match value {
                FieldValue::Text(t) => {
                    let r = Reference::parse(t).map_err(|e| wrong(&e.0))?;
                    Term::from_field_text(f, &r.to_text())
                }
                _ => return Err(wrong("give it ENTITY or ENTITY/TRAIT")),
            }
        }
    })
}

/// A result's place in the order: `(missing, key, id_hash)` ascending, with `key` already in
/// the ordering's direction. Entities without a value for the sort key come last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    missing: bool,
    key: u64,
    id_hash: u64,
}

type Hit = (Position, SegmentOrdinal, DocId);

struct PageCollector {
    source: SortSource,
    ascending: bool,
    after: Option<Position>,
    /// Page size + 1: one more tells whether a next page exists.
    keep: usize,
}

struct PageSegmentCollector {
    segment: SegmentOrdinal,
    column: Option<Column<u64>>,
    id_hashes: Column<u64>,
    ascending: bool,
    after: Option<Position>,
    keep: usize,
    /// Max-heap of the smallest `keep` positions seen.
    heap: BinaryHeap<Hit>,
    total: u64,
}

impl Collector for PageCollector {
    type Fruit = (Vec<Hit>, u64);
    type Child = PageSegmentCollector;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PageSegmentCollector> {
        let fast = reader.fast_fields();
        let column = match &self.source {
            SortSource::Score => None,
            SortSource::Column(name) => Some(fast.u64(name)?),
        };
        Ok(PageSegmentCollector {
            segment,
            column,
            id_hashes: fast.u64(F_ID_HASH)?,
            ascending: self.ascending,
            after: self.after,
            keep: self.keep,
            heap: BinaryHeap::new(),
            total: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.source == SortSource::Score
    }

    fn merge_fruits(&self, fruits: Vec<(Vec<Hit>, u64)>) -> tantivy::Result<(Vec<Hit>, u64)> {
        let total = fruits.iter().map(|(_, t)| t).sum();
        let mut hits: Vec<Hit> = fruits.into_iter().flat_map(|(h, _)| h).collect();
        hits.sort_unstable();
        hits.truncate(self.keep);
        Ok((hits, total))
    }
}

impl SegmentCollector for PageSegmentCollector {
    type Fruit = (Vec<Hit>, u64);

    fn collect(&mut self, doc: DocId, score: Score) {
        self.total += 1;
        let raw = match &self.column {
            None => Some(score_key(score)),
            Some(column) => column.first(doc),
        };
        let position = Position {
            missing: raw.is_none(),
            key: match raw {
                Some(k) if self.ascending => k,
                Some(k) => !k,
                None => 0,
            },
            id_hash: self.id_hashes.first(doc).unwrap_or(0),
        };
        if self.after.is_some_and(|after| position <= after) {
            return;
        }
        if self.heap.len() < self.keep {
            self.heap.push((position, self.segment, doc));
        } else if let Some(top) = self.heap.peek() {
            if (position, self.segment, doc) < *top {
                self.heap.pop();
                self.heap.push((position, self.segment, doc));
            }
        }
    }

    fn harvest(self) -> (Vec<Hit>, u64) {
        (self.heap.into_vec(), self.total)
    }
}

/// An f32 score as an order-preserving u64.
fn score_key(score: Score) -> u64 {
    let bits = score.to_bits();
    u64::from(if bits >> 31 == 1 {
        !bits
    } else {
        bits | (1 << 31)
    })
}
