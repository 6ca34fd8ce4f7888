//! Queries against the on-disk index: every predicate on every field type, boolean
//! combinations, ordering and paging with stable cursors, full text and fuzzy matching,
//! projections, result hashes, and clear errors.

use exo::chain::OperationId;
use exo::store::query::{Cursor, Query, QueryError};
use exo::store::{
    Entry, Mutation, QueryResults, Reference, Scalar, Schemas, StoreIndex, Trait, Value,
};

const T0: u64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
const DAY_US: i64 = 86_400_000_000;

const KINDS: &str = r#"
[[trait]]
name = "kinds"
description = "One field of every kind, for tests."
[[trait.field]]
name = "s"
type = "string"
indexed = true
[[trait.field]]
name = "t"
type = "text"
full_text = true
[[trait.field]]
name = "i"
type = "integer"
indexed = true
sorted = true
[[trait.field]]
name = "f"
type = "float"
indexed = true
sorted = true
[[trait.field]]
name = "b"
type = "boolean"
indexed = true
sorted = true
[[trait.field]]
name = "ts"
type = "timestamp"
indexed = true
sorted = true
[[trait.field]]
name = "r"
type = "reference"
indexed = true
reference = true
[[trait.field]]
name = "ls"
type = "list<string>"
indexed = true
[[trait.field]]
name = "li"
type = "list<integer>"
indexed = true
[[trait.field]]
name = "plain"
type = "string"

[[trait]]
name = "other"
[[trait.field]]
name = "i"
type = "integer"
indexed = true
sorted = true
"#;

fn schemas() -> Schemas {
    let mut schemas = Schemas::builtin();
    schemas.add_toml(KINDS).unwrap();
    schemas
}

struct Fixture {
    _dir: tempfile::TempDir,
    index: StoreIndex,
    next_us: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, _) = StoreIndex::open(dir.path(), schemas()).unwrap();
        index
            .rebuild(Vec::<(OperationId, Vec<u8>, bool)>::new())
            .unwrap();
        Fixture {
            _dir: dir,
            index,
            next_us: T0,
        }
    }

    /// Ten `kinds` entities e0..e9, one operation each, a second apart.
    fn with_kinds() -> Fixture {
        let mut fx = Fixture::new();
        for k in 0..10i64 {
            let value = Trait::new("k", "kinds")
                .with("s", format!("name-{k}"))
                .with("t", format!("word{k} common"))
                .with("i", k - 5)
                .with("f", k as f64 * 0.5 - 1.0)
                .with("b", k % 2 == 0)
                .with("ts", Value::Timestamp(T0 as i64 + k * DAY_US))
                .with("r", Reference::entity(format!("target{}", k % 3)))
                .with(
                    "ls",
                    Value::List(vec![
                        Scalar::String(format!("tag{}", k % 2)),
                        Scalar::String("all".into()),
                    ]),
                )
                .with(
                    "li",
                    Value::List(vec![Scalar::Integer(k), Scalar::Integer(k + 100)]),
                )
                .with("plain", "not indexed");
            fx.write(vec![Mutation::PutTrait {
                entity: format!("e{k}"),
                value,
            }]);
        }
        fx
    }

    fn write(&mut self, mutations: Vec<Mutation>) -> OperationId {
        let plaintext = self.index.prepare(mutations).unwrap();
        self.next_us += 1_000_000;
        let op = OperationId {
            time_us: self.next_us,
            node: 1,
        };
        self.index.apply(op, &plaintext, false).unwrap();
        op
    }

    fn ids(&self, query: &str) -> Vec<String> {
        let results = self
            .index
            .query_text(query)
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        results.entities.into_iter().map(|e| e.id).collect()
    }

    fn sorted_ids(&self, query: &str) -> Vec<String> {
        let mut ids = self.ids(&format!("{query} limit:1000"));
        ids.sort();
        ids
    }

    fn error(&self, query: &str) -> QueryError {
        match self.index.query_text(query) {
            Ok(r) => panic!("{query} should fail, got {} results", r.entities.len()),
            Err(e) => e,
        }
    }
}

fn es(ks: &[i64]) -> Vec<String> {
    let mut ids: Vec<String> = ks.iter().map(|k| format!("e{k}")).collect();
    ids.sort();
    ids
}

#[test]
fn every_predicate_on_every_field_type() {
    let fx = Fixture::with_kinds();
    let cases: &[(&str, &[i64])] = &[
        // string: equality (exact, case-sensitive) and lexicographic ranges
        ("kinds.s:name-3", &[3]),
        ("kinds.s:Name-3", &[]),
        ("kinds.s:>=name-7", &[7, 8, 9]),
        ("kinds.s:<name-2", &[0, 1]),
        // text: words
        ("kinds.t:word4", &[4]),
        ("kinds.t:common", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        // integer (negative values included)
        ("i:0", &[5]),
        ("i:<-3", &[0, 1]),
        ("i:<=-3", &[0, 1, 2]),
        ("i:>3", &[9]),
        ("i:>=3", &[8, 9]),
        ("kinds.i:=-5", &[0]),
        // float
        ("f:0", &[2]),
        ("f:<0", &[0, 1]),
        ("f:>=1.5", &[5, 6, 7, 8, 9]),
        ("f:>-0.75", &[1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("f:<=-1", &[0]),
        // boolean
        ("b:true", &[0, 2, 4, 6, 8]),
        ("b:false", &[1, 3, 5, 7, 9]),
        // timestamp: dates, date-times, offsets, microseconds
        ("ts:2026-01-04", &[3]),
        ("ts:>=2026-01-05", &[4, 5, 6, 7, 8, 9]),
        ("ts:<2026-01-03T00:00:00Z", &[0, 1]),
        ("ts:<=2026-01-03T01:00:00+01:00", &[0, 1, 2]),
        ("ts:>1767830400000000", &[8, 9]),
        // reference: field equality, and ref: over `reference` fields
        ("kinds.r:target1", &[1, 4, 7]),
        ("ref:target2", &[2, 5, 8]),
        ("ref:target2/x", &[]),
        // lists: any item matches
        ("ls:tag0", &[0, 2, 4, 6, 8]),
        ("ls:all", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("li:<2", &[0, 1]),
        ("li:109", &[9]),
        // entity dates (operation times; e_k was written at T0 + (k+1) s)
        ("created:>=2026-01-01T00:00:08Z", &[7, 8, 9]),
        ("updated:<2026-01-01T00:00:03Z", &[0, 1]),
        // ids, types, all
        ("id:e3", &[3]),
        ("id:nope", &[]),
        ("type:kinds", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("type:task", &[]),
        ("*", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        // boolean combinations
        ("(i:0 OR i:1) -b:true", &[5]),
        ("type:kinds NOT b:true i:<0", &[1, 3]),
        ("b:true AND i:>=0", &[6, 8]),
        ("i:-5 OR i:4 OR kinds.s:name-2", &[0, 2, 9]),
        ("-(b:true OR i:<0)", &[5, 7, 9]),
        ("-*", &[]),
    ];
    for (query, expected) in cases {
        assert_eq!(fx.sorted_ids(query), es(expected), "{query}");
    }
    // Operation ids.
    let e3_op = fx.index.get("e3").unwrap().unwrap().version;
    assert_eq!(fx.ids(&format!("op:{e3_op}")), ["e3"]);
}

#[test]
fn typed_query_messages_match_like_query_strings() {
    use exo::store::query::{Comparison, FieldPath, FieldValue, Predicate};
    let fx = Fixture::with_kinds();
    let field = |name: &str, comparison, value| Predicate::Field {
        path: FieldPath {
            trait_type: Some("kinds".into()),
            field: name.into(),
        },
        comparison,
        value,
        fuzzy: 0,
    };
    let mut query = Query::new(Predicate::And(vec![
        field("i", Comparison::Ge, FieldValue::Integer(0)),
        field("b", Comparison::Eq, FieldValue::Boolean(true)),
        field("f", Comparison::Lt, FieldValue::Float(3.0)),
        field(
            "ts",
            Comparison::Gt,
            FieldValue::Timestamp(T0 as i64 + 5 * DAY_US),
        ),
    ]));
    query.limit = 100;
    // Through the wire encoding and back.
    let bytes = exocore_protocol::wire::encode(&query).unwrap();
    let query: Query = exocore_protocol::wire::decode(&bytes).unwrap();
    let ids: Vec<_> = fx
        .index
        .query(&query)
        .unwrap()
        .entities
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["e6"]);
}

fn all_pages(fx: &Fixture, query: &str, limit: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    for _ in 0..100 {
        let mut q = Query::parse(query).unwrap();
        q.limit = limit;
        q.after = after;
        let results: QueryResults = fx.index.query(&q).unwrap();
        assert!(results.entities.len() <= limit as usize);
        out.extend(results.entities.into_iter().map(|e| e.id));
        match results.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
    panic!("paging did not end");
}

#[test]
fn sorting_and_paging_with_stable_cursors() {
    let mut fx = Fixture::with_kinds();
    let ascending: Vec<String> = (0..10).map(|k| format!("e{k}")).collect();
    let descending: Vec<String> = ascending.iter().rev().cloned().collect();
    for (query, expected) in [
        ("type:kinds sort:i", &ascending),
        ("type:kinds sort:-i", &descending),
        ("sort:+kinds.f", &ascending),
        ("sort:-kinds.ts", &descending),
        ("type:kinds sort:created", &ascending),
        ("type:kinds sort:-updated", &descending),
        ("type:kinds", &descending), // default: updated, newest first
    ] {
        for limit in [1, 3, 4, 10, 20] {
            assert_eq!(
                &all_pages(&fx, query, limit),
                expected,
                "{query} limit {limit}"
            );
        }
    }
    // Ties (booleans) are broken by the entity-id hash: every page boundary still holds, no
    // entity twice, none lost; falses before trues.
    let by_bool = all_pages(&fx, "type:kinds sort:b", 3);
    assert_eq!(by_bool.len(), 10);
    let (falses, trues) = by_bool.split_at(5);
    assert!(falses
        .iter()
        .all(|id| id[1..].parse::<i64>().unwrap() % 2 == 1));
    assert!(trues
        .iter()
        .all(|id| id[1..].parse::<i64>().unwrap() % 2 == 0));

    // Stable cursors: entities added before the boundary do not shift the next page.
    let mut q = Query::parse("type:kinds sort:i").unwrap();
    q.limit = 4;
    let first = fx.index.query(&q).unwrap();
    assert_eq!(first.entities.len(), 4);
    assert_eq!(first.total, 10);
    fx.write(vec![Mutation::PutTrait {
        entity: "early".into(),
        value: Trait::new("k", "kinds").with("i", -100i64),
    }]);
    q.after = first.next;
    let second = fx.index.query(&q).unwrap();
    let ids: Vec<_> = second.entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["e4", "e5", "e6", "e7"]);
    assert_eq!(second.total, 11);

    // Entities without a value for the sort key come last, in both directions.
    fx.write(vec![Mutation::PutTrait {
        entity: "novalue".into(),
        value: Trait::new("k", "kinds").with("s", "x"),
    }]);
    assert_eq!(
        all_pages(&fx, "type:kinds sort:i", 5).last().unwrap(),
        "novalue"
    );
    assert_eq!(
        all_pages(&fx, "type:kinds sort:-i", 5).last().unwrap(),
        "novalue"
    );

    // Ordering errors.
    assert!(matches!(fx.error("sort:i"), QueryError::Field(e) if e.contains("ambiguous")));
    assert!(
        matches!(fx.error("sort:kinds.s"), QueryError::Field(e) if e.contains("not a sorted field"))
    );
    // A cursor from another ordering, or altered, is refused.
    let mut q = Query::parse("type:kinds sort:-i").unwrap();
    q.after = first.next;
    assert!(
        matches!(fx.index.query(&q), Err(QueryError::Cursor(e)) if e.contains("another order"))
    );
    let mut altered = first.next.unwrap();
    altered.key ^= 1;
    let mut q = Query::parse("type:kinds sort:i").unwrap();
    q.after = Some(altered);
    assert!(matches!(fx.index.query(&q), Err(QueryError::Cursor(_))));
    let text = first.next.unwrap().to_text();
    assert_eq!(
        fx.ids(&format!("type:kinds sort:i limit:2 after:{text}")),
        ["e4", "e5"]
    );
}

#[test]
fn full_text_fuzzy_phrases_and_scores() {
    let mut fx = Fixture::new();
    let notes = [
        ("n1", "The quick brown fox", "jumps over the lazy dog"),
        ("n2", "Fox news", "fox fox fox everywhere"),
        ("n3", "Gardening", "Ferns and mosses like shade"),
        ("n4", "Shopping", "brown bread, quick oats"),
    ];
    for (id, title, body) in notes {
        fx.write(vec![Mutation::PutTrait {
            entity: id.into(),
            value: Trait::new("note", "note")
                .with("title", title)
                .with("body", body),
        }]);
    }
    let sorted = |q: &str| fx.sorted_ids(q);
    assert_eq!(sorted("fox"), ["n1", "n2"]);
    assert_eq!(sorted("FOX"), ["n1", "n2"]);
    assert_eq!(sorted("quick brown"), ["n1", "n4"]);
    assert_eq!(sorted("\"quick brown\""), ["n1"]);
    assert_eq!(sorted("\"brown quick\""), Vec::<String>::new());
    assert_eq!(sorted("quikc"), Vec::<String>::new());
    assert_eq!(sorted("quikc~"), ["n1", "n4"]); // a transposition is one edit
    assert_eq!(sorted("brwn~1"), ["n1", "n4"]);
    assert_eq!(sorted("mosess~2"), ["n3"]);
    assert_eq!(sorted("fern"), Vec::<String>::new()); // no stemming
    assert_eq!(sorted("note.title:fox"), ["n1", "n2"]);
    assert_eq!(sorted("note.body:fox"), ["n2"]);
    assert_eq!(sorted("title:gardning~"), ["n3"]);
    assert_eq!(sorted("fox OR shade"), ["n1", "n2", "n3"]);
    assert_eq!(sorted("brown -fox"), ["n4"]);
    // By score: n2 says fox six times.
    assert_eq!(fx.ids("fox")[0], "n2");
    assert_eq!(fx.ids("fox sort:-score"), fx.ids("fox"));
    let ascending = fx.ids("fox sort:+score");
    assert_eq!(ascending, ["n1", "n2"]);
    // Errors.
    assert!(matches!(fx.error("\"...\""), QueryError::Invalid(e) if e.contains("no word")));
}

#[test]
fn projections_deleted_entities_and_result_hashes() {
    let mut fx = Fixture::with_kinds();
    fx.write(vec![Mutation::PutTrait {
        entity: "e1".into(),
        value: Trait::new("n", "note").with("title", "extra"),
    }]);
    // Traits come back sorted by trait id ("k" < "n"), projected on request.
    let e1 = &fx.index.query_text("id:e1").unwrap().entities[0];
    let ids: Vec<_> = e1.traits.iter().map(|t| t.value.id.as_str()).collect();
    assert_eq!(ids, ["k", "n"]);
    let e1 = &fx
        .index
        .query_text("id:e1 show:kinds[i,b]")
        .unwrap()
        .entities[0];
    assert_eq!(e1.traits.len(), 1);
    let names: Vec<_> = e1.traits[0]
        .value
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["b", "i"]);
    let e1 = &fx.index.query_text("id:e1 show:note").unwrap().entities[0];
    assert_eq!(e1.traits[0].value.id, "n");

    // Deleted entities on request only.
    fx.write(vec![Mutation::DeleteEntity {
        entity: "e2".into(),
    }]);
    assert!(fx.ids("id:e2").is_empty());
    assert_eq!(fx.ids("id:e2 include:deleted"), ["e2"]);
    assert_eq!(fx.sorted_ids("b:true").len(), 4);
    assert_eq!(fx.sorted_ids("b:true include:deleted").len(), 5);

    // Result hashes: the same page is not sent twice; a change is.
    let mut q = Query::parse("type:kinds sort:i limit:3").unwrap();
    let first = fx.index.query(&q).unwrap();
    q.result_hash = Some(first.hash);
    let again = fx.index.query(&q).unwrap();
    assert!(again.unchanged);
    assert!(again.entities.is_empty());
    fx.write(vec![Mutation::PutTrait {
        entity: "e0".into(),
        value: Trait::new("k", "kinds")
            .with("i", -5i64)
            .with("s", "changed"),
    }]);
    let changed = fx.index.query(&q).unwrap();
    assert!(!changed.unchanged);
    assert_eq!(changed.entities.len(), 3);
}

#[test]
fn unknown_or_unindexed_fields_and_bad_values_are_clear_errors() {
    let fx = Fixture::with_kinds();
    let cases: &[(&str, &str)] = &[
        ("nope:1", "`nope` is not a field of any trait type"),
        (
            "type:task nope:1",
            "`nope` is not a field of that trait type",
        ),
        ("zzz.i:1", "unknown trait type `zzz`"),
        ("kinds.plain:x", "`kinds.plain` cannot be queried this way"),
        ("kinds.t:>x", "cannot be queried this way"),
        ("kinds.i:abc", "`abc` is not an integer"),
        ("kinds.f:NaN", "is not a number"),
        ("kinds.b:>true", "equality only"),
        ("kinds.b:yes", "true or false"),
        ("kinds.ts:tomorrow", "not a timestamp"),
        ("kinds.r:>x", "equality only"),
        ("kinds.i:3~", "cannot be fuzzy"),
        ("created:soon", "not a timestamp"),
    ];
    for (query, expected) in cases {
        let error = fx.error(query).to_string();
        assert!(
            error.contains(expected),
            "{query}: `{error}` lacks `{expected}`"
        );
    }
    let parse = fx.error("type:kinds (i:1");
    assert!(
        matches!(parse, QueryError::Parse(ref e) if e.position == 12),
        "{parse}"
    );
    let mut q = Query::parse("*").unwrap();
    q.limit = 5000;
    assert!(matches!(fx.index.query(&q), Err(QueryError::Invalid(_))));
}

#[test]
fn invalid_entries_from_other_nodes_are_skipped_whole() {
    let mut fx = Fixture::new();
    // A well-formed entry whose trait does not fit this node's schemas (an app type not
    // installed here) is kept and returned, but its fields are not indexed.
    let entry = Entry::Mutations(vec![Mutation::PutTrait {
        entity: "x".into(),
        value: Trait::new("r", "someapp.recipe").with("servings", 4i64),
    }]);
    fx.index
        .apply(
            OperationId {
                time_us: T0,
                node: 9,
            },
            &entry.to_bytes(),
            true,
        )
        .unwrap();
    assert_eq!(fx.ids("type:someapp.recipe"), ["x"]);
    assert!(fx.index.query_text("servings:4").is_err());
}
