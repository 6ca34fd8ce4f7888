//! `exo store ...`: write, read and query a cell's entities through the local daemon (the
//! Store service, `spec/protocol.md` section 9.2).
//!
//! Field values are given as `FIELD=VALUE` and read by the kind the trait type's schema gives
//! the field: text as is, integers, floats, `true`/`false`, timestamps (`2026-12-01`,
//! RFC 3339, or microseconds), references (`ENTITY` or `ENTITY/TRAIT`), lists as
//! comma-separated items. `--json '{"field": value}'` gives them as a JSON object instead;
//! `--json -` reads that object from standard input and `--json @PATH` from a file, for text
//! too large for a command line.

use argh::FromArgs;
use exocore_protocol::envelope::Service;
use exocore_protocol::store::{EntityState, StoreRequest, StoreResponse};
use exocore_protocol::wire;
use serde_json::{json, Map, Value as Json};

use super::CliError;
use crate::chain::OperationId;
use crate::config::{Cell, Node, NodeDir};
use crate::store::value::{format_timestamp, generate_id, parse_timestamp};
use crate::store::{
    Entry, Expected, FieldKind, FieldSchema, Mutation, Query, Reference, Scalar, Schemas, Trait,
    Value,
};

/// The cell's entities: put, get, query and delete them through the running daemon.
#[derive(FromArgs)]
#[argh(subcommand, name = "store")]
pub struct StoreCmd {
    #[argh(subcommand)]
    command: StoreSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum StoreSub {
    Put(PutCmd),
    Get(GetCmd),
    Query(QueryCmd),
    Delete(DeleteCmd),
    Watch(WatchCmd),
}

/// Put a trait on an entity (ENTITY `new` makes a new one); prints the entity id and the
/// operation id. Example: `exo store put new task title="Water the plants" done=false`.
#[derive(FromArgs)]
#[argh(subcommand, name = "put")]
struct PutCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// the trait id (default: the trait type, one trait of each type per entity)
    #[argh(option, long = "trait")]
    trait_id: Option<String>,
    /// only if the entity is at this version (as `exo store get` prints it), or `absent`
    /// (no live trait); otherwise nothing is written and exo exits with code 3
    #[argh(option)]
    expect: Option<String>,
    /// the fields as a JSON object instead of FIELD=VALUE arguments: the object itself, `-`
    /// to read it from standard input, or `@PATH` to read it from a file
    #[argh(option)]
    json: Option<String>,
    /// the entity id, or `new` for a generated one
    #[argh(positional)]
    entity: String,
    /// the trait type, e.g. `task`, `note`, `contact`
    #[argh(positional)]
    trait_type: String,
    /// FIELD=VALUE pairs; the whole trait is replaced by these fields
    #[argh(positional)]
    fields: Vec<String>,
}

/// Print an entity and its traits.
#[derive(FromArgs)]
#[argh(subcommand, name = "get")]
struct GetCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// print JSON
    #[argh(switch)]
    json: bool,
    /// the entity id
    #[argh(positional)]
    entity: String,
}

/// Run a query (spec/query.md), e.g. `type:task done:false sort:-updated`; prints a table,
/// or one JSON object per entity with --json.
#[derive(FromArgs)]
#[argh(subcommand, name = "query")]
struct QueryCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// print one JSON object per entity
    #[argh(switch)]
    json: bool,
    /// results per page (1 to 1000, default 20)
    #[argh(option)]
    limit: Option<u32>,
    /// the cursor printed after the previous page
    #[argh(option)]
    cursor: Option<String>,
    /// the query (empty or `*`: everything)
    #[argh(positional, default = "String::new()")]
    query: String,
}

/// Watch a query: print its results now and again each time they change, until Ctrl-C.
/// Prints a table per change, or one JSON object per change with --json:
/// `{"total": N, "skipped": K, "entities": [...]}` (K: changes not shown because this
/// terminal read too slowly; the newest results are always shown).
#[derive(FromArgs)]
#[argh(subcommand, name = "watch")]
struct WatchCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// print one JSON object per change
    #[argh(switch)]
    json: bool,
    /// results watched (1 to 1000, default 20)
    #[argh(option)]
    limit: Option<u32>,
    /// the query (empty or `*`: everything)
    #[argh(positional, default = "String::new()")]
    query: String,
}

/// Delete an entity, or one of its traits with --trait; prints the operation id.
#[derive(FromArgs)]
#[argh(subcommand, name = "delete")]
struct DeleteCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// delete only this trait
    #[argh(option, long = "trait")]
    trait_id: Option<String>,
    /// only if the entity is at this version (as `exo store get` prints it), or `absent`
    /// (no live trait); otherwise nothing is written and exo exits with code 3
    #[argh(option)]
    expect: Option<String>,
    /// the entity id
    #[argh(positional)]
    entity: String,
}

/// Largest JSON object `--json -` or `--json @PATH` reads. The entry it becomes is at most
/// 1 MiB (the daemon refuses more, naming the field); escapes can make the JSON larger.
pub const JSON_INPUT_BYTES_MAX: u64 = 4 << 20;

/// The text of `--json`: the argument itself, standard input (`-`) or a file (`@PATH`).
fn json_input(argument: &str) -> Result<String, CliError> {
    use std::io::Read;
    let (source, reader): (String, Box<dyn Read>) = if argument == "-" {
        ("standard input".into(), Box::new(std::io::stdin().lock()))
    } else if let Some(path) = argument.strip_prefix('@') {
        let file = std::fs::File::open(path)
            .map_err(|e| failed(format!("cannot read the --json file `{path}`: {e}")))?;
        (format!("`{path}`"), Box::new(file))
    } else {
        return Ok(argument.to_string());
    };
    let mut bytes = Vec::new();
    reader
        .take(JSON_INPUT_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(format!("cannot read the JSON from {source}: {e}")))?;
    if bytes.len() as u64 > JSON_INPUT_BYTES_MAX {
        return Err(CliError::BadArgument(format!(
            "the JSON from {source} is larger than {} MiB",
            JSON_INPUT_BYTES_MAX >> 20
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| CliError::BadArgument(format!("the JSON from {source} is not UTF-8")))
}

fn failed(message: impl Into<String>) -> CliError {
    CliError::Failed(message.into())
}

impl StoreCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        match self.command {
            StoreSub::Put(cmd) => {
                let cell = dir.select_cell(cmd.cell.as_deref())?;
                put(&node, &cell, cmd)
            }
            StoreSub::Get(cmd) => {
                let cell = dir.select_cell(cmd.cell.as_deref())?;
                get(&node, &cell, &cmd.entity, cmd.json)
            }
            StoreSub::Query(cmd) => {
                let cell = dir.select_cell(cmd.cell.as_deref())?;
                query(&node, &cell, cmd)
            }
            StoreSub::Watch(cmd) => {
                let cell = dir.select_cell(cmd.cell.as_deref())?;
                watch(&node, &cell, cmd)
            }
            StoreSub::Delete(cmd) => {
                let cell = dir.select_cell(cmd.cell.as_deref())?;
                let mut mutations = checked(&cmd.entity, cmd.expect.as_deref())?;
                mutations.push(match cmd.trait_id {
                    Some(trait_id) => Mutation::DeleteTrait {
                        entity: cmd.entity,
                        trait_id,
                    },
                    None => Mutation::DeleteEntity { entity: cmd.entity },
                });
                let (_, operation) = mutate(&node, &cell, mutations)?;
                println!("{operation}");
                Ok(())
            }
        }
    }
}

fn call(node: &Node, cell: &Cell, request: &StoreRequest) -> Result<StoreResponse, CliError> {
    let payload = wire::encode(request).map_err(|e| failed(e.to_string()))?;
    let answer = super::local::request(node, cell, Service::Store, payload)?;
    wire::decode(&answer).map_err(|e| failed(format!("the daemon's answer does not decode: {e}")))
}

fn unexpected(answer: StoreResponse) -> CliError {
    failed(format!("unexpected answer from the daemon: {answer:?}"))
}

/// The version check `--expect` asks for, as the first mutation of the request (none
/// without it).
fn checked(entity: &str, expect: Option<&str>) -> Result<Vec<Mutation>, CliError> {
    let Some(text) = expect else {
        return Ok(Vec::new());
    };
    let expected = match text {
        "absent" => Expected::Absent,
        version => Expected::Version(version.parse().map_err(|_| {
            CliError::BadArgument(format!(
                "--expect `{version}` is neither `absent` nor a version (32 hex digits, as \
                 `exo store get` prints it)"
            ))
        })?),
    };
    Ok(vec![Mutation::Check {
        entity: entity.to_string(),
        expected,
    }])
}

/// Sends mutations as one request; returns the entities touched and the operation id.
fn mutate(
    node: &Node,
    cell: &Cell,
    mutations: Vec<Mutation>,
) -> Result<(Vec<String>, OperationId), CliError> {
    let entry = Entry::Mutations(mutations).to_bytes();
    match call(node, cell, &StoreRequest::Mutate { entry })? {
        StoreResponse::Mutated {
            operation,
            entities,
        } => Ok((entities, OperationId::from_bytes(&operation))),
        other => Err(unexpected(other)),
    }
}

fn put(node: &Node, cell: &Cell, cmd: PutCmd) -> Result<(), CliError> {
    let schemas = Schemas::builtin();
    let schema = schemas.get(&cmd.trait_type);
    let field_schema = |name: &str| schema.and_then(|s| s.field(name));
    let mut value = Trait::new(
        cmd.trait_id.unwrap_or_else(|| cmd.trait_type.clone()),
        cmd.trait_type.clone(),
    );
    if let Some(argument) = &cmd.json {
        if !cmd.fields.is_empty() {
            return Err(CliError::BadArgument(
                "give the fields either as FIELD=VALUE or with --json, not both".into(),
            ));
        }
        let text = json_input(argument)?;
        let object: Map<String, Json> = serde_json::from_str(&text)
            .map_err(|e| CliError::BadArgument(format!("--json is not a JSON object: {e}")))?;
        for (name, json) in object {
            let parsed = from_json(field_schema(&name), &json)
                .map_err(|e| CliError::BadArgument(format!("field `{name}`: {e}")))?;
            value.set(&name, parsed);
        }
    }
    for pair in &cmd.fields {
        let Some((name, text)) = pair.split_once('=') else {
            return Err(CliError::BadArgument(format!(
                "`{pair}` is not FIELD=VALUE"
            )));
        };
        let parsed = from_text(field_schema(name), text)
            .map_err(|e| CliError::BadArgument(format!("field `{name}`: {e}")))?;
        value.set(name, parsed);
    }
    let entity = if cmd.entity == "new" {
        generate_id()
    } else {
        cmd.entity
    };
    let mut mutations = checked(&entity, cmd.expect.as_deref())?;
    mutations.push(Mutation::PutTrait {
        entity: entity.clone(),
        value,
    });
    let (_, operation) = mutate(node, cell, mutations)?;
    println!("{entity} {operation}");
    Ok(())
}

fn scalar_from_text(kind: Option<FieldKind>, text: &str) -> Result<Scalar, String> {
    Ok(match kind {
        None | Some(FieldKind::String) | Some(FieldKind::Text) => Scalar::String(text.into()),
        Some(FieldKind::Integer) => Scalar::Integer(
            text.parse()
                .map_err(|_| format!("`{text}` is not an integer"))?,
        ),
        Some(FieldKind::Float) => Scalar::Float(
            text.parse()
                .map_err(|_| format!("`{text}` is not a number"))?,
        ),
        Some(FieldKind::Boolean) => match text {
            "true" => Scalar::Boolean(true),
            "false" => Scalar::Boolean(false),
            _ => return Err(format!("`{text}` is not true or false")),
        },
        Some(FieldKind::Timestamp) => {
            Scalar::Timestamp(parse_timestamp(text).map_err(|e| e.to_string())?)
        }
        Some(FieldKind::Reference) => {
            Scalar::Reference(Reference::parse(text).map_err(|e| e.to_string())?)
        }
    })
}

fn single(scalar: Scalar) -> Value {
    match scalar {
        Scalar::String(s) => Value::String(s),
        Scalar::Integer(i) => Value::Integer(i),
        Scalar::Float(f) => Value::Float(f),
        Scalar::Boolean(b) => Value::Boolean(b),
        Scalar::Timestamp(t) => Value::Timestamp(t),
        Scalar::Reference(r) => Value::Reference(r),
    }
}

/// A `FIELD=VALUE` value, read as the schema's kind (a string for unknown fields: the daemon
/// then refuses them by name).
fn from_text(schema: Option<&FieldSchema>, text: &str) -> Result<Value, String> {
    let kind = schema.map(|s| s.kind);
    if schema.is_some_and(|s| s.list) {
        if text.is_empty() {
            return Ok(Value::List(Vec::new()));
        }
        let items = text
            .split(',')
            .map(|item| scalar_from_text(kind, item))
            .collect::<Result<_, _>>()?;
        return Ok(Value::List(items));
    }
    scalar_from_text(kind, text).map(single)
}

fn scalar_from_json(kind: Option<FieldKind>, json: &Json) -> Result<Scalar, String> {
    let integer = |n: &serde_json::Number| n.as_i64().ok_or(format!("{n} is not an integer"));
    match (kind, json) {
        (_, Json::String(text)) => scalar_from_text(kind, text),
        (_, Json::Bool(b)) => Ok(Scalar::Boolean(*b)),
        (Some(FieldKind::Integer), Json::Number(n)) => integer(n).map(Scalar::Integer),
        (Some(FieldKind::Timestamp), Json::Number(n)) => integer(n).map(Scalar::Timestamp),
        (Some(FieldKind::Float), Json::Number(n)) => n
            .as_f64()
            .map(Scalar::Float)
            .ok_or(format!("{n} is not a number")),
        (None, Json::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Scalar::Integer(i)),
            None => n
                .as_f64()
                .map(Scalar::Float)
                .ok_or(format!("{n} is not a number")),
        },
        (_, other) => Err(format!("{other} does not fit this field")),
    }
}

fn from_json(schema: Option<&FieldSchema>, json: &Json) -> Result<Value, String> {
    let kind = schema.map(|s| s.kind);
    match json {
        Json::Array(items) => Ok(Value::List(
            items
                .iter()
                .map(|item| scalar_from_json(kind, item))
                .collect::<Result<_, _>>()?,
        )),
        json => scalar_from_json(kind, json).map(single),
    }
}

fn scalar_json(scalar: &Scalar) -> Json {
    match scalar {
        Scalar::String(s) => json!(s),
        Scalar::Integer(i) => json!(i),
        Scalar::Float(f) => json!(f),
        Scalar::Boolean(b) => json!(b),
        Scalar::Timestamp(t) => json!(format_timestamp(*t)),
        Scalar::Reference(r) => json!(r.to_text()),
    }
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::List(items) => Json::Array(items.iter().map(scalar_json).collect()),
        other => other
            .scalars()
            .first()
            .map(scalar_json)
            .unwrap_or(Json::Null),
    }
}

fn value_text(value: &Value) -> String {
    match value_json(value) {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

fn time(us: u64) -> String {
    format_timestamp(i64::try_from(us).unwrap_or(i64::MAX))
}

fn status_name(status: u8) -> &'static str {
    match status {
        1 => "live",
        2 => "deleted",
        _ => "absent",
    }
}

fn traits_of(entity: &EntityState) -> Result<Vec<(Trait, Option<u64>)>, CliError> {
    entity
        .traits
        .iter()
        .map(|t| {
            wire::decode::<Trait>(&t.value)
                .map(|value| (value, t.deleted_us))
                .map_err(|e| failed(format!("a trait of `{}` does not decode: {e}", entity.id)))
        })
        .collect()
}

/// An entity as one JSON object.
fn entity_json(entity: &EntityState) -> Result<Json, CliError> {
    let mut traits = Vec::new();
    for ((value, deleted), state) in traits_of(entity)?.into_iter().zip(&entity.traits) {
        let fields: Map<String, Json> = value
            .fields
            .iter()
            .map(|f| (f.name.clone(), value_json(&f.value)))
            .collect();
        traits.push(json!({
            "id": value.id,
            "type": value.trait_type,
            "created": time(state.created_us),
            "updated": time(state.updated_us),
            "deleted": deleted.map(time),
            "fields": fields,
        }));
    }
    Ok(json!({
        "id": entity.id,
        "status": status_name(entity.status),
        "version": OperationId::from_bytes(&entity.version).to_string(),
        "created": entity.created_us.map(time),
        "updated": time(entity.updated_us),
        "deleted": entity.deleted_us.map(time),
        "pending": entity.pending,
        "traits": traits,
    }))
}

fn get(node: &Node, cell: &Cell, entity: &str, as_json: bool) -> Result<(), CliError> {
    let answer = call(
        node,
        cell,
        &StoreRequest::Get {
            entity: entity.into(),
        },
    )?;
    let StoreResponse::Entity { entity: found } = answer else {
        return Err(unexpected(answer));
    };
    let Some(found) = found else {
        return Err(failed(format!("no entity `{entity}` in this cell")));
    };
    if as_json {
        println!("{}", entity_json(&found)?);
        return Ok(());
    }
    println!("entity   {}", found.id);
    println!(
        "status   {}{}",
        status_name(found.status),
        if found.pending { " (pending)" } else { "" }
    );
    println!("version  {}", OperationId::from_bytes(&found.version));
    if let Some(created) = found.created_us {
        println!("created  {}", time(created));
    }
    println!("updated  {}", time(found.updated_us));
    let mut rows = Vec::new();
    for (value, deleted) in traits_of(&found)? {
        let state = if deleted.is_some() { " (deleted)" } else { "" };
        for field in &value.fields {
            rows.push(vec![
                format!("{}{state}", value.id),
                value.trait_type.clone(),
                field.name.clone(),
                value_text(&field.value),
            ]);
        }
    }
    println!();
    super::table::print(&["TRAIT", "TYPE", "FIELD", "VALUE"], &rows);
    Ok(())
}

/// A short description of an entity for a table: the first title-like field.
fn summary(traits: &[(Trait, Option<u64>)]) -> String {
    for name in ["title", "name", "url"] {
        for (value, _) in traits {
            if let Some(v) = value.get(name) {
                let text = value_text(v);
                let mut short: String = text.chars().take(60).collect();
                if short.len() < text.len() {
                    short.push('…');
                }
                return short;
            }
        }
    }
    String::new()
}

/// The query of `exo store query` and `exo store watch`, with its options, encoded.
fn encoded_query(
    text: &str,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<Vec<u8>, CliError> {
    let mut parsed = Query::parse(text).map_err(|e| failed(e.to_string()))?;
    if let Some(limit) = limit {
        if limit == 0 || limit > crate::store::query::LIMIT_MAX {
            return Err(CliError::BadArgument(format!(
                "--limit must be 1 to {}",
                crate::store::query::LIMIT_MAX
            )));
        }
        parsed.limit = limit;
    }
    if let Some(cursor) = cursor {
        parsed.after = Some(
            crate::store::query::Cursor::parse(cursor)
                .map_err(|e| failed(format!("--cursor: {e}")))?,
        );
    }
    bincode::encode_to_vec(&parsed, wire::CONFIG).map_err(|e| failed(e.to_string()))
}

fn query(node: &Node, cell: &Cell, cmd: QueryCmd) -> Result<(), CliError> {
    let query = encoded_query(&cmd.query, cmd.limit, cmd.cursor.as_deref())?;
    let answer = call(node, cell, &StoreRequest::Query { query })?;
    let StoreResponse::Results {
        entities,
        next,
        total,
        ..
    } = answer
    else {
        return Err(unexpected(answer));
    };
    if cmd.json {
        for entity in &entities {
            println!("{}", entity_json(entity)?);
        }
        if let Some(next) = &next {
            eprintln!("more results: --cursor {next}");
        }
        return Ok(());
    }
    print_results(&entities, next.as_deref(), total)
}

/// A page of results as a table, then how many of how many.
fn print_results(entities: &[EntityState], next: Option<&str>, total: u64) -> Result<(), CliError> {
    let mut rows = Vec::new();
    for entity in entities {
        let traits = traits_of(entity)?;
        let mut types: Vec<&str> = traits.iter().map(|(t, _)| t.trait_type.as_str()).collect();
        types.dedup();
        rows.push(vec![
            entity.id.clone(),
            types.join(","),
            time(entity.updated_us),
            summary(&traits),
        ]);
    }
    super::table::print(&["ID", "TYPES", "UPDATED", "SUMMARY"], &rows);
    match next {
        Some(next) => println!("{} of {total}; next page: --cursor {next}", entities.len()),
        None => println!("{} of {total}", entities.len()),
    }
    Ok(())
}

/// `exo store watch`: a Store subscription to the local daemon, printed until SIGINT or
/// SIGTERM (exit 0) or until the daemon ends it (an error).
fn watch(node: &Node, cell: &Cell, cmd: WatchCmd) -> Result<(), CliError> {
    use async_signal::{Signal, Signals};
    use exocore_protocol::client::{Client, Event};
    use exocore_protocol::error::Error as ProtocolError;
    use futures_lite::StreamExt;

    let query = encoded_query(&cmd.query, cmd.limit, None)?;
    let payload =
        wire::encode(&StoreRequest::Watch { query }).map_err(|e| failed(e.to_string()))?;
    let local = super::local::address(node.config.listen);
    let mut signals = Signals::new([Signal::Int, Signal::Term])
        .map_err(|e| failed(format!("cannot install signal handlers: {e}")))?;
    smol::block_on(async {
        let mut client = Client::connect(local, &node.keypair, cell.config.id, &[node.config.id])
            .await
            .map_err(|e| super::local::failure(local, e))?;
        let mut changes = client
            .subscribe(Service::Store, payload)
            .await
            .map_err(|e| super::local::failure(local, e))?;
        enum Next {
            Change(Option<Result<Event, ProtocolError>>),
            Stop,
        }
        loop {
            let next =
                futures_lite::future::or(async { Next::Change(changes.next().await) }, async {
                    let _ = signals.next().await;
                    Next::Stop
                })
                .await;
            match next {
                Next::Stop => {
                    changes.cancel();
                    let _ = client.close("watch interrupted").await;
                    return Ok(());
                }
                Next::Change(Some(Ok(event))) => print_change(&event, cmd.json)?,
                Next::Change(Some(Err(e))) => {
                    return Err(failed(format!(
                        "the watch ended: {}",
                        super::local::failure(local, e)
                    )))
                }
                Next::Change(None) => return Err(failed("the daemon ended the watch")),
            }
        }
    })
}

/// One change of a watched query.
fn print_change(event: &exocore_protocol::client::Event, as_json: bool) -> Result<(), CliError> {
    let answer: StoreResponse = wire::decode(&event.payload)
        .map_err(|e| failed(format!("the daemon's event does not decode: {e}")))?;
    let StoreResponse::Results {
        entities,
        next,
        total,
        ..
    } = answer
    else {
        return Err(unexpected(answer));
    };
    if as_json {
        let entities = entities
            .iter()
            .map(entity_json)
            .collect::<Result<Vec<_>, _>>()?;
        println!(
            "{}",
            json!({"total": total, "skipped": event.skipped_before, "entities": entities})
        );
        return Ok(());
    }
    print_results(&entities, next.as_deref(), total)?;
    println!();
    Ok(())
}
