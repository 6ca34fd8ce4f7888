//! A realistic log of store operations, and a snapshot of every query's pages: what the
//! library tests of rebuilds and garbage collection compare.

use exo::chain::OperationId;
use exo::store::{Mutation, Reference, StoreIndex, Trait, Value};

/// The operation time of the first operation (2026-01-01).
pub const T0: u64 = 1_767_225_600_000_000;

/// Operations as a chain holds them: id, entry plaintext, committed.
pub type Log = Vec<(OperationId, Vec<u8>, bool)>;

/// Writes `count` requests of realistic mutations (puts, updates, trait and entity deletions)
/// over `entities` entities, returning the operations as a chain would hold them.
pub fn populate(index: &mut StoreIndex, count: usize, entities: usize) -> Log {
    let mut log = Log::new();
    for n in 0..count {
        let e = format!("e{}", (n * 7) % entities);
        let mutations = match n % 11 {
            9 => vec![Mutation::DeleteTrait {
                entity: e.clone(),
                trait_id: "note".into(),
            }],
            10 if n % 3 == 0 => vec![Mutation::DeleteEntity { entity: e.clone() }],
            _ => vec![
                Mutation::PutTrait {
                    entity: e.clone(),
                    value: Trait::new("task", "task")
                        .with("title", format!("task {n} about topic{}", n % 13))
                        .with("done", n % 4 == 0)
                        .with("priority", (n % 5) as i64)
                        .with(
                            "due",
                            Value::Timestamp((T0 + n as u64 * 3_600_000_000) as i64),
                        ),
                },
                Mutation::PutTrait {
                    entity: e.clone(),
                    value: Trait::new("note", "note")
                        .with("body", format!("words{} shared", n % 17)),
                },
                Mutation::PutTrait {
                    entity: e,
                    value: Trait::new("member", "collection_member")
                        .with("collection", Reference::entity(format!("c{}", n % 3)))
                        .with("position", n as f64 / 10.0),
                },
            ],
        };
        let plaintext = index.prepare(mutations).unwrap();
        let op = OperationId {
            time_us: T0 + n as u64,
            node: (n % 3) as u64,
        };
        // Some operations are already committed, the rest pending.
        log.push((op, plaintext, n % 2 == 0));
        if log.len().is_multiple_of(50) || n + 1 == count {
            let start = log.len() - (log.len() - 1) % 50 - 1;
            index.apply_batch(log[start..].iter().cloned()).unwrap();
        }
    }
    log
}

/// Compares snapshots, naming the first difference (not the whole dump).
pub fn assert_same(actual: &[String], expected: &[String]) {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "line {i} differs");
    }
    assert_eq!(actual.len(), expected.len());
}

const QUERIES: &[&str] = &[
    "*",
    "type:task done:false sort:-priority",
    "topic3 OR topic5 sort:created",
    "shared sort:created",
    "ref:c1 sort:collection_member.position",
    "priority:>=3 due:<2026-01-03",
    "include:deleted sort:updated",
    "-type:note",
];

/// Every page of every query, with versions and full content. Score order is left out: BM25
/// statistics count replaced documents until tantivy merges them away, so a rebuilt index
/// may rank results differently (spec/query.md); for scored queries the set is compared.
pub fn snapshot(index: &StoreIndex) -> Vec<String> {
    let mut out = Vec::new();
    for text in ["topic3 OR topic5", "shared words4"] {
        let mut ids: Vec<String> = exo::store::Query::parse(&format!("{text} limit:1000"))
            .map(|q| index.query(&q).unwrap().entities)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        ids.sort();
        out.push(format!("{text}: {ids:?}"));
    }
    for text in QUERIES {
        let mut query = exo::store::Query::parse(text).unwrap();
        query.limit = 7;
        loop {
            let results = index.query(&query).unwrap();
            out.push(format!("{text}: total {}", results.total));
            for e in &results.entities {
                out.push(format!("{e:?}"));
            }
            match results.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
    }
    out
}
