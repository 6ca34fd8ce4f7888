//! The entity index: tantivy on disk, one document per entity, derived from operations.
//!
//! Bird's-eye view: operations (their decrypted plaintext, [`Entry`]) go in through
//! [`StoreIndex::apply`] / [`StoreIndex::apply_batch`]; each entity they touch gets its
//! history ([`EntityHistory`]) extended, folded, and its document replaced. The document
//! stores the history (so later operations, in any order, fold correctly) and indexes the
//! folded state's fields as the schemas' index options say. Queries read documents only.
//!
//! - **Derived data.** Everything here can be rebuilt from the operations
//!   ([`StoreIndex::rebuild`]). [`StoreIndex::open`] rebuilds (reports [`Opened::Created`])
//!   when the folder is missing, its manifest is missing or differs from the current
//!   schemas' mapping, or tantivy finds it damaged.
//! - **Deterministic, stored mapping.** Index field names are derived from (type, field,
//!   role) only, in type then field name order, and written to `exo-manifest.json`; a
//!   mismatch at open is a rebuild, never a misread.
//! - **Read your writes.** Every `apply`/`apply_batch`/`rebuild` call ends with a tantivy
//!   commit and a reader reload: once it returns, the next query sees its effects. Batch
//!   operations to amortise the commit (one fsync).
//! - **Checkpoint.** Each commit's payload records how far the committed chain is applied
//!   ([`Checkpoint`]), so a restart replays only the blocks after it.
//!
//! Architecture invariant: this module knows nothing of the chain's storage, the network or
//! the clock; operation ids and plaintexts are inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::collector::DocSetCollector;
use tantivy::query::TermQuery;
use tantivy::schema::{
    Field as IndexField, IndexRecordOption, Schema as IndexSchema, Value as _, FAST, INDEXED,
    STORED, STRING, TEXT,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::entity::{Entity, EntityHistory, EntityStatus};
use super::mutation::{self, Entry, EntryError, Mutation, MutationError};
use super::query::{exec, Query, QueryError, QueryResults};
use super::schema::{FieldKind, Schemas};
use super::value::Scalar;
use crate::chain::OperationId;

/// Bumped whenever what a document holds changes meaning: an index of another format is
/// rebuilt at open.
pub const INDEX_FORMAT_VERSION: u32 = 2;
/// The manifest's file name in the index folder.
pub const MANIFEST_FILE: &str = "exo-manifest.json";
/// Memory tantivy's writer may use before flushing a segment (its minimum is 15 MB).
pub const WRITER_HEAP_BYTES: usize = 20_000_000;
/// Operations folded per commit during a rebuild (bounds the rebuild's memory).
pub const REBUILD_CHUNK_OPERATIONS: usize = 2_000;
/// Largest stored history of one entity that is read back (a hot entity's history grows
/// for the retention period before garbage collection compacts it).
pub const HISTORY_BYTES_MAX: usize = 256 << 20;
/// Entities rewritten per commit by garbage collection (bounds its memory).
pub const GC_CHUNK_ENTITIES: usize = 1_000;

// Fixed index fields. Names start with `_`; mapped fields with `f.`, `t.` or `s.`.
pub(crate) const F_ID: &str = "_id";
pub(crate) const F_STATUS: &str = "_status";
pub(crate) const F_TYPES: &str = "_types";
pub(crate) const F_REFS: &str = "_refs";
pub(crate) const F_OPS: &str = "_ops";
pub(crate) const F_TEXT: &str = "_text";
pub(crate) const F_CREATED: &str = "_created";
pub(crate) const F_UPDATED: &str = "_updated";
pub(crate) const F_ID_HASH: &str = "_idhash";
pub(crate) const F_STATE: &str = "_state";
pub(crate) const F_GC: &str = "_gc";

/// `_status` values.
pub(crate) const STATUS_ABSENT: u64 = 0;
pub(crate) const STATUS_LIVE: u64 = 1;
pub(crate) const STATUS_DELETED: u64 = 2;

/// Why the index was (re)created empty at open and must be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebuildReason {
    /// No index, or no manifest (never built, or a rebuild did not finish).
    Missing,
    /// Written by another index format version.
    FormatChanged,
    /// The schemas' mapping differs from the one the index was built with.
    SchemaChanged,
    /// tantivy could not open it, or its checksums fail.
    Corrupted(String),
}

impl fmt::Display for RebuildReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebuildReason::Missing => f.write_str("no complete index"),
            RebuildReason::FormatChanged => f.write_str("the index format changed"),
            RebuildReason::SchemaChanged => f.write_str("the trait schemas changed"),
            RebuildReason::Corrupted(e) => write!(f, "the index is damaged ({e})"),
        }
    }
}

/// How far the committed chain is folded into the index: every operation of the blocks up to
/// and including this one is applied, as committed. Recorded in the payload of the tantivy
/// commit that applied it, so it is never ahead of the index's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The block's height.
    pub height: u64,
    /// The block's hash: a block replaced by fork recovery no longer matches.
    pub hash: [u8; 32],
}

/// The commit payload (JSON): `{"checkpoint":{"height":H,"hash":"64 hex digits"}}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitPayload {
    checkpoint: Option<PayloadCheckpoint>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadCheckpoint {
    height: u64,
    hash: String,
}

impl Checkpoint {
    fn to_payload(self) -> String {
        let payload = CommitPayload {
            checkpoint: Some(PayloadCheckpoint {
                height: self.height,
                hash: crate::chain::hex(&self.hash),
            }),
        };
        serde_json::to_string(&payload).unwrap_or_default()
    }

    /// The checkpoint of a commit payload; `None` when there is none or it does not parse
    /// (the caller then replays the whole chain, which is idempotent).
    fn from_payload(text: &str) -> Option<Checkpoint> {
        let payload: CommitPayload = serde_json::from_str(text).ok()?;
        let stored = payload.checkpoint?;
        if stored.hash.len() != 64 {
            return None;
        }
        let mut hash = [0u8; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(stored.hash.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Checkpoint {
            height: stored.height,
            hash,
        })
    }
}

/// What [`StoreIndex::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A complete index matching the schemas, with the checkpoint of its last commit (`None`
    /// if it has none: replay every operation, applying is idempotent).
    Existing(Option<Checkpoint>),
    /// An empty index: call [`StoreIndex::rebuild`] with every operation.
    Created(RebuildReason),
}

/// Why the index failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    /// The folder could not be read or written.
    Io(String),
    /// tantivy failed.
    Tantivy(String),
    /// A stored document does not decode: the index is damaged; rebuild it.
    Corrupted(String),
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Io(e) => write!(f, "entity index folder: {e}"),
            IndexError::Tantivy(e) => write!(f, "entity index: {e}"),
            IndexError::Corrupted(e) => write!(f, "entity index is damaged, rebuild it: {e}"),
        }
    }
}

impl std::error::Error for IndexError {}

impl From<tantivy::TantivyError> for IndexError {
    fn from(e: tantivy::TantivyError) -> IndexError {
        IndexError::Tantivy(e.to_string())
    }
}

/// What a garbage collection pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entities whose history was compacted (their document rewritten).
    pub compacted: usize,
    /// Of those, deleted entities whose deletion passed the retention period: no longer
    /// returned, even with `include:deleted`.
    pub collected: usize,
}

/// What a batch of operations did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Operations whose entry was read (new, already known, or newly committed).
    pub applied: usize,
    /// Operations whose entry is not a valid store entry: skipped whole, on every node.
    pub refused: Vec<(OperationId, EntryError)>,
    /// Entities whose document was rewritten.
    pub entities_changed: usize,
}

impl ApplyReport {
    /// Adds another batch's report to this one.
    pub fn add(&mut self, other: ApplyReport) {
        self.applied += other.applied;
        self.refused.extend(other.refused);
        self.entities_changed += other.entities_changed;
    }
}

/// What an index field does for a schema field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    /// Exact terms: equality and ranges (`f.`).
    Indexed,
    /// Tokenized words (`t.`).
    FullText,
    /// One order-preserving u64 per entity, a fast column (`s.`).
    Sorted,
}

/// One index field mapped from a schema field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MappedField {
    /// The tantivy field name: `f.TYPE.FIELD`, `t.TYPE.FIELD` or `s.TYPE.FIELD`.
    pub name: String,
    pub trait_type: String,
    pub field: String,
    pub role: Role,
    /// The schema kind, `list<...>` included.
    pub kind: String,
}

/// The mapping from schemas to index fields, as stored in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub format: u32,
    pub tantivy: String,
    pub fields: Vec<MappedField>,
    /// `TYPE.FIELD` of reference fields feeding `ref:` queries.
    pub references: Vec<String>,
}

impl Manifest {
    fn for_schemas(schemas: &Schemas) -> Manifest {
        let mut fields = Vec::new();
        let mut references = Vec::new();
        for schema in schemas.iter() {
            let mut by_name: Vec<_> = schema.fields.iter().collect();
            by_name.sort_by(|a, b| a.name.cmp(&b.name));
            for f in by_name {
                let mut add = |prefix: &str, role| {
                    fields.push(MappedField {
                        name: format!("{prefix}.{}.{}", schema.name, f.name),
                        trait_type: schema.name.clone(),
                        field: f.name.clone(),
                        role,
                        kind: f.type_name(),
                    })
                };
                if f.indexed {
                    add("f", Role::Indexed);
                }
                if f.full_text {
                    add("t", Role::FullText);
                }
                if f.sorted {
                    add("s", Role::Sorted);
                }
                if f.reference {
                    references.push(format!("{}.{}", schema.name, f.name));
                }
            }
        }
        Manifest {
            format: INDEX_FORMAT_VERSION,
            tantivy: "0.27".into(),
            fields,
            references,
        }
    }

    fn tantivy_schema(&self, schemas: &Schemas) -> IndexSchema {
        let mut b = IndexSchema::builder();
        b.add_text_field(F_ID, STRING | STORED);
        b.add_u64_field(F_STATUS, INDEXED);
        b.add_text_field(F_TYPES, STRING);
        b.add_text_field(F_REFS, STRING);
        b.add_text_field(F_OPS, STRING);
        b.add_text_field(F_TEXT, TEXT);
        b.add_u64_field(F_CREATED, INDEXED | FAST);
        b.add_u64_field(F_UPDATED, INDEXED | FAST);
        b.add_u64_field(F_ID_HASH, FAST);
        b.add_bytes_field(F_STATE, STORED);
        b.add_u64_field(F_GC, INDEXED);
        for m in &self.fields {
            let kind = schemas
                .get(&m.trait_type)
                .and_then(|s| s.field(&m.field))
                .map(|f| f.kind);
            match (m.role, kind) {
                (Role::FullText, _) => {
                    b.add_text_field(&m.name, TEXT);
                }
                (Role::Sorted, _) => {
                    b.add_u64_field(&m.name, FAST);
                }
                (Role::Indexed, Some(FieldKind::Integer | FieldKind::Timestamp)) => {
                    b.add_i64_field(&m.name, INDEXED);
                }
                (Role::Indexed, Some(FieldKind::Float)) => {
                    b.add_f64_field(&m.name, INDEXED);
                }
                (Role::Indexed, Some(FieldKind::Boolean)) => {
                    b.add_bool_field(&m.name, INDEXED);
                }
                (Role::Indexed, _) => {
                    b.add_text_field(&m.name, STRING);
                }
            }
        }
        b.build()
    }
}

/// Maps a value to a u64 whose order is the value's order (the sort columns and cursors).
pub(crate) fn sort_key(scalar: &Scalar) -> Option<u64> {
    Some(match scalar {
        Scalar::Integer(i) | Scalar::Timestamp(i) => (*i as u64) ^ (1 << 63),
        Scalar::Float(f) => {
            let bits = f.to_bits();
            if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            }
        }
        Scalar::Boolean(b) => u64::from(*b),
        _ => return None,
    })
}

/// The tie-breaker of every ordering: the first 8 bytes of BLAKE3(entity id).
pub(crate) fn id_hash(id: &str) -> u64 {
    let hash = blake3::hash(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// The entity index of one cell.
pub struct StoreIndex {
    dir: PathBuf,
    schemas: Schemas,
    pub(crate) manifest: Manifest,
    pub(crate) index: Index,
    writer: IndexWriter,
    pub(crate) reader: IndexReader,
    pub(crate) schema: IndexSchema,
    /// Recorded with every commit.
    checkpoint: Option<Checkpoint>,
    /// A batch failed to apply: no checkpoint is recorded any more by this instance, so the
    /// next start replays everything rather than skip what failed.
    checkpoint_lost: bool,
}

impl fmt::Debug for StoreIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreIndex")
            .field("dir", &self.dir)
            .finish()
    }
}

fn io(e: impl fmt::Display) -> IndexError {
    IndexError::Io(e.to_string())
}

impl StoreIndex {
    /// Opens the index in `dir` (created if needed) for these schemas. If the index is
    /// missing, incomplete, of another format or mapping, or damaged, the folder is emptied
    /// and a new index created: [`Opened::Created`] says the caller must then call
    /// [`StoreIndex::rebuild`] with every operation (the manifest is only written when a
    /// rebuild completes, so a crash during it is noticed at the next open).
    /// [`Opened::Existing`] carries the index's [`Checkpoint`]: the caller then applies only
    /// the blocks after it, and the pending operations.
    ///
    /// Opening reads every index file once to verify checksums.
    pub fn open(dir: &Path, schemas: Schemas) -> Result<(StoreIndex, Opened), IndexError> {
        let manifest = Manifest::for_schemas(&schemas);
        let schema = manifest.tantivy_schema(&schemas);
        let (index, opened) = match Self::check_existing(dir, &manifest, &schema) {
            Ok(index) => {
                let payload = index.load_metas()?.payload;
                let checkpoint = payload.as_deref().and_then(Checkpoint::from_payload);
                (index, Opened::Existing(checkpoint))
            }
            Err(reason) => {
                tracing::info!(dir = %dir.display(), %reason, "rebuilding the entity index");
                if dir.exists() {
                    std::fs::remove_dir_all(dir).map_err(io)?;
                }
                std::fs::create_dir_all(dir).map_err(io)?;
                let index = Index::create_in_dir(dir, schema.clone())?;
                (index, Opened::Created(reason))
            }
        };
        let mut opened_index = Self::with_index(dir, schemas, manifest, index, schema)?;
        if let Opened::Existing(checkpoint) = &opened {
            opened_index.checkpoint = *checkpoint;
        }
        Ok((opened_index, opened))
    }

    fn check_existing(
        dir: &Path,
        manifest: &Manifest,
        schema: &IndexSchema,
    ) -> Result<Index, RebuildReason> {
        let text =
            std::fs::read_to_string(dir.join(MANIFEST_FILE)).map_err(|_| RebuildReason::Missing)?;
        let stored: Manifest = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(_) => {
                // An older or newer manifest layout is another format.
                return Err(RebuildReason::FormatChanged);
            }
        };
        if stored.format != manifest.format || stored.tantivy != manifest.tantivy {
            return Err(RebuildReason::FormatChanged);
        }
        if stored != *manifest {
            return Err(RebuildReason::SchemaChanged);
        }
        let index = Index::open_in_dir(dir).map_err(|e| RebuildReason::Corrupted(e.to_string()))?;
        if index.schema() != *schema {
            return Err(RebuildReason::SchemaChanged);
        }
        let damaged = index
            .validate_checksum()
            .map_err(|e| RebuildReason::Corrupted(e.to_string()))?;
        if !damaged.is_empty() {
            let mut names: Vec<_> = damaged.iter().map(|p| p.display().to_string()).collect();
            names.sort();
            return Err(RebuildReason::Corrupted(format!(
                "bad checksum in {}",
                names.join(", ")
            )));
        }
        Ok(index)
    }

    fn with_index(
        dir: &Path,
        schemas: Schemas,
        manifest: Manifest,
        index: Index,
        schema: IndexSchema,
    ) -> Result<StoreIndex, IndexError> {
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(StoreIndex {
            dir: dir.to_path_buf(),
            schemas,
            manifest,
            index,
            writer,
            reader,
            schema,
            checkpoint: None,
            checkpoint_lost: false,
        })
    }

    /// How far the committed chain is applied (`None`: unknown).
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.checkpoint
    }

    /// The schemas the index was opened with.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    pub(crate) fn field(&self, name: &str) -> Result<IndexField, IndexError> {
        self.schema
            .get_field(name)
            .map_err(|_| IndexError::Tantivy(format!("no index field `{name}`")))
    }

    /// Empties the index and folds every operation in `operations` (in any order, pending
    /// and committed), committing every [`REBUILD_CHUNK_OPERATIONS`]; then writes the
    /// manifest, which marks the index complete. The index records no checkpoint: the caller
    /// that knows how far the chain went uses [`StoreIndex::begin_rebuild`],
    /// [`StoreIndex::apply_through`] and [`StoreIndex::finish_rebuild`] instead.
    pub fn rebuild<B: AsRef<[u8]>>(
        &mut self,
        operations: impl IntoIterator<Item = (OperationId, B, bool)>,
    ) -> Result<ApplyReport, IndexError> {
        self.begin_rebuild()?;
        let mut report = ApplyReport::default();
        let mut chunk = Vec::with_capacity(REBUILD_CHUNK_OPERATIONS);
        let mut operations = operations.into_iter();
        loop {
            chunk.clear();
            chunk.extend(operations.by_ref().take(REBUILD_CHUNK_OPERATIONS));
            if chunk.is_empty() {
                break;
            }
            report.add(self.apply_batch(chunk.drain(..))?);
        }
        self.finish_rebuild()?;
        Ok(report)
    }

    /// Starts a rebuild: the manifest is removed (a crash from here on is a `Missing` at the
    /// next open), every document deleted, and the checkpoint forgotten.
    pub fn begin_rebuild(&mut self) -> Result<(), IndexError> {
        match std::fs::remove_file(self.dir.join(MANIFEST_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        self.checkpoint = None;
        self.checkpoint_lost = false;
        self.writer.delete_all_documents()?;
        self.commit()
    }

    /// Ends a rebuild: writes the manifest, which marks the index complete.
    pub fn finish_rebuild(&mut self) -> Result<(), IndexError> {
        self.write_manifest()
    }

    fn write_manifest(&self) -> Result<(), IndexError> {
        let text = serde_json::to_string_pretty(&self.manifest).map_err(io)?;
        let tmp = self.dir.join(format!("{MANIFEST_FILE}.tmp"));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, self.dir.join(MANIFEST_FILE)).map_err(io)?;
        Ok(())
    }

    /// Folds one operation (see [`StoreIndex::apply_batch`]).
    pub fn apply(
        &mut self,
        operation: OperationId,
        plaintext: &[u8],
        committed: bool,
    ) -> Result<ApplyReport, IndexError> {
        self.apply_batch([(operation, plaintext, committed)])
    }

    /// Folds operations into the entities they touch (see [`StoreIndex::apply_through`]),
    /// keeping the checkpoint as it is.
    pub fn apply_batch<B: AsRef<[u8]>>(
        &mut self,
        operations: impl IntoIterator<Item = (OperationId, B, bool)>,
    ) -> Result<ApplyReport, IndexError> {
        self.apply_through(operations, None)
    }

    /// Folds operations into the entities they touch, then commits and reloads: when this
    /// returns, queries see them. With `through`, the same commit records that the committed
    /// chain is applied up to that block (the caller passes every operation of the blocks
    /// since the last checkpoint, in this call or earlier ones); a failed call stops this
    /// instance from recording checkpoints, so the next start replays everything. Idempotent: an operation already folded changes nothing,
    /// except raising its `committed` flag. An entry that is not a valid store entry is
    /// refused whole and reported (it cannot fail the batch). Operations are not checked
    /// against the schemas here: a trait of a type this node does not know is kept and
    /// returned, but its fields are not indexed.
    pub fn apply_through<B: AsRef<[u8]>>(
        &mut self,
        operations: impl IntoIterator<Item = (OperationId, B, bool)>,
        through: Option<Checkpoint>,
    ) -> Result<ApplyReport, IndexError> {
        let result = self.fold_in(operations, through);
        if result.is_err() {
            self.checkpoint_lost = true;
        }
        result
    }

    fn fold_in<B: AsRef<[u8]>>(
        &mut self,
        operations: impl IntoIterator<Item = (OperationId, B, bool)>,
        through: Option<Checkpoint>,
    ) -> Result<ApplyReport, IndexError> {
        let mut report = ApplyReport::default();
        let mut touched: BTreeMap<String, EntityHistory> = BTreeMap::new();
        let mut changed: BTreeSet<String> = BTreeSet::new();
        for (operation, plaintext, committed) in operations {
            let entry = match Entry::from_bytes(plaintext.as_ref()) {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(%operation, error = %e, "skipping an invalid store entry");
                    report.refused.push((operation, e));
                    continue;
                }
            };
            report.applied += 1;
            let mut by_entity: BTreeMap<&str, Vec<Mutation>> = BTreeMap::new();
            for m in entry.mutations() {
                let list = by_entity.entry(m.entity()).or_default();
                if !matches!(m, Mutation::Check { .. }) {
                    list.push(m.clone());
                }
            }
            for (entity, mutations) in by_entity {
                if mutations.is_empty() {
                    continue; // only checks: the entity is not touched
                }
                if !touched.contains_key(entity) {
                    let history = self
                        .load_history(entity)?
                        .unwrap_or_else(|| EntityHistory::new(entity));
                    touched.insert(entity.to_string(), history);
                }
                let history = touched.get_mut(entity).expect("inserted above");
                if history.compacted_past(operation) {
                    // Older than what garbage collection kept: from a node that stayed away
                    // longer than the retention period (spec/store.md section 10).
                    tracing::warn!(%operation, entity, "an operation older than the compacted history is not folded");
                    continue;
                }
                if history.insert(operation, committed, mutations) {
                    changed.insert(entity.to_string());
                }
            }
        }
        let id_field = self.field(F_ID)?;
        for entity in &changed {
            let history = &touched[entity];
            let document = self.document(history)?;
            self.writer
                .delete_term(Term::from_field_text(id_field, entity));
            self.writer.add_document(document)?;
        }
        report.entities_changed = changed.len();
        let moved = through.is_some() && through != self.checkpoint && !self.checkpoint_lost;
        if moved {
            self.checkpoint = through;
        }
        if !changed.is_empty() || moved {
            self.commit()?;
        }
        Ok(report)
    }

    /// Commits (one fsync), with the checkpoint as the commit's payload, and reloads the
    /// reader.
    fn commit(&mut self) -> Result<(), IndexError> {
        let mut prepared = self.writer.prepare_commit()?;
        if let Some(checkpoint) = self.checkpoint.filter(|_| !self.checkpoint_lost) {
            prepared.set_payload(&checkpoint.to_payload());
        }
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Garbage collection (`spec/store.md` section 10): compacts the history of every entity
    /// that has operations or deletions older than `horizon_us` (an operation time: now less
    /// the retention period), committing every [`GC_CHUNK_ENTITIES`]. Entities are found by
    /// the `_gc` field, so a pass with nothing to do reads nothing.
    pub fn collect_garbage(&mut self, horizon_us: u64) -> Result<GcReport, IndexError> {
        let mut report = GcReport::default();
        let searcher = self.reader.searcher();
        let field = self.field(F_GC)?;
        let due = tantivy::query::RangeQuery::new(
            std::ops::Bound::Included(Term::from_field_u64(field, 0)),
            std::ops::Bound::Excluded(Term::from_field_u64(field, horizon_us)),
        );
        let mut addresses: Vec<_> = searcher
            .search(&due, &DocSetCollector)?
            .into_iter()
            .collect();
        addresses.sort();
        let id_field = self.field(F_ID)?;
        for chunk in addresses.chunks(GC_CHUNK_ENTITIES) {
            let mut rewritten = 0;
            for address in chunk {
                let document: TantivyDocument = searcher.doc(*address)?;
                let mut history = self.history_of(&document)?;
                let deleted = history.fold().status == EntityStatus::Deleted;
                if !history.compact(horizon_us) {
                    continue;
                }
                if deleted && history.fold().status == EntityStatus::Absent {
                    report.collected += 1;
                }
                let replacement = self.document(&history)?;
                self.writer
                    .delete_term(Term::from_field_text(id_field, &history.id));
                self.writer.add_document(replacement)?;
                rewritten += 1;
            }
            report.compacted += rewritten;
            if rewritten > 0 {
                self.commit()?;
            }
        }
        Ok(report)
    }

    /// The stored history of an entity.
    pub fn load_history(&self, entity: &str) -> Result<Option<EntityHistory>, IndexError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.field(F_ID)?, entity),
            IndexRecordOption::Basic,
        );
        let addresses = searcher.search(&query, &DocSetCollector)?;
        let Some(address) = addresses.into_iter().next() else {
            return Ok(None);
        };
        let document: TantivyDocument = searcher.doc(address)?;
        Ok(Some(self.history_of(&document)?))
    }

    pub(crate) fn history_of(
        &self,
        document: &TantivyDocument,
    ) -> Result<EntityHistory, IndexError> {
        let bytes = document
            .get_first(self.field(F_STATE)?)
            .and_then(|v| v.as_bytes())
            .ok_or_else(|| IndexError::Corrupted("a document has no stored history".into()))?;
        decode_history(bytes)
    }

    /// The entity's current state (`None` if no operation touched it).
    pub fn get(&self, entity: &str) -> Result<Option<Entity>, IndexError> {
        Ok(self.load_history(entity)?.map(|h| h.fold()))
    }

    /// Validates a request against the schemas and the current state (checks) and encodes
    /// it as one entry's plaintext. The caller seals it in one operation, writes it, then
    /// [`StoreIndex::apply`]s it; it must not let another request in between if requests
    /// carry checks (see `spec/store.md` section 6).
    pub fn prepare(&self, mutations: Vec<Mutation>) -> Result<Vec<u8>, MutationError> {
        mutation::prepare(mutations, &self.schemas, |entity| {
            self.get(entity)
                .map(|e| e.and_then(|e| e.live_version()))
                .map_err(|e| e.to_string())
        })
    }

    /// Runs a query.
    pub fn query(&self, query: &Query) -> Result<QueryResults, QueryError> {
        exec::execute(self, query)
    }

    /// Parses and runs a query string.
    pub fn query_text(&self, text: &str) -> Result<QueryResults, QueryError> {
        self.query(&Query::parse(text)?)
    }

    /// Number of entity documents (including absent and deleted entities).
    pub fn document_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    fn document(&self, history: &EntityHistory) -> Result<TantivyDocument, IndexError> {
        let entity = history.fold();
        let mut doc = TantivyDocument::default();
        doc.add_text(self.field(F_ID)?, &entity.id);
        doc.add_bytes(self.field(F_STATE)?, &encode_history(history));
        doc.add_u64(self.field(F_ID_HASH)?, id_hash(&entity.id));
        doc.add_u64(self.field(F_CREATED)?, entity.created_us.unwrap_or(0));
        doc.add_u64(self.field(F_UPDATED)?, entity.updated_us);
        let collectable = history.collectable_from_us().unwrap_or(u64::MAX);
        doc.add_u64(self.field(F_GC)?, collectable);
        let ops = self.field(F_OPS)?;
        for entry in &history.entries {
            doc.add_text(ops, entry.operation.to_string());
        }
        let status = match entity.status {
            EntityStatus::Absent => STATUS_ABSENT,
            EntityStatus::Live => STATUS_LIVE,
            EntityStatus::Deleted => STATUS_DELETED,
        };
        doc.add_u64(self.field(F_STATUS)?, status);
        // A live entity is found by its live traits; a deleted one by what it held.
        let indexed = entity.traits.iter().filter(|t| match entity.status {
            EntityStatus::Live => t.deleted_us.is_none(),
            EntityStatus::Deleted => true,
            EntityStatus::Absent => false,
        });
        let (types, refs, text) = (
            self.field(F_TYPES)?,
            self.field(F_REFS)?,
            self.field(F_TEXT)?,
        );
        let mut sorted_done = BTreeSet::new();
        let mut type_names = BTreeSet::new();
        for state in indexed {
            let value = &state.value;
            if type_names.insert(value.trait_type.clone()) {
                doc.add_text(types, &value.trait_type);
            }
            let Some(schema) = self.schemas.get(&value.trait_type) else {
                continue;
            };
            for field in &value.fields {
                let Some(declared) = schema.field(&field.name) else {
                    continue;
                };
                let scalars: Vec<Scalar> = field
                    .value
                    .scalars()
                    .into_iter()
                    .filter(|s| declared.kind.accepts(s))
                    .collect();
                let path = format!("{}.{}", value.trait_type, field.name);
                if declared.indexed {
                    let f = self.field(&format!("f.{path}"))?;
                    for scalar in &scalars {
                        match scalar {
                            Scalar::String(s) => doc.add_text(f, s),
                            Scalar::Integer(i) | Scalar::Timestamp(i) => doc.add_i64(f, *i),
                            Scalar::Float(x) => doc.add_f64(f, *x),
                            Scalar::Boolean(b) => doc.add_bool(f, *b),
                            Scalar::Reference(r) => {
                                doc.add_text(f, &r.entity);
                                if r.trait_id.is_some() {
                                    doc.add_text(f, r.to_text());
                                }
                            }
                        }
                    }
                }
                if declared.full_text {
                    let f = self.field(&format!("t.{path}"))?;
                    for scalar in &scalars {
                        if let Scalar::String(s) = scalar {
                            doc.add_text(f, s);
                            doc.add_text(text, s);
                        }
                    }
                }
                if declared.sorted && sorted_done.insert(path.clone()) {
                    if let Some(key) = scalars.first().and_then(sort_key) {
                        doc.add_u64(self.field(&format!("s.{path}"))?, key);
                    }
                }
                if declared.reference {
                    for scalar in &scalars {
                        if let Scalar::Reference(r) = scalar {
                            doc.add_text(refs, &r.entity);
                            if r.trait_id.is_some() {
                                doc.add_text(refs, r.to_text());
                            }
                        }
                    }
                }
            }
        }
        Ok(doc)
    }
}

fn encode_history(history: &EntityHistory) -> Vec<u8> {
    let config = bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding();
    match bincode::encode_to_vec(history, config) {
        Ok(bytes) => bytes,
        Err(e) => unreachable!("encoding a history into memory failed: {e}"),
    }
}

fn decode_history(bytes: &[u8]) -> Result<EntityHistory, IndexError> {
    let config = bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<HISTORY_BYTES_MAX>();
    exocore_protocol::wire::decode_exact(bytes, config, HISTORY_BYTES_MAX)
        .map_err(|e| IndexError::Corrupted(format!("a stored entity history: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_preserve_order() {
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in ints.windows(2) {
            assert!(sort_key(&Scalar::Integer(w[0])) < sort_key(&Scalar::Integer(w[1])));
        }
        let floats = [f64::MIN, -2.5, -0.0, 0.0, 1e-300, 3.0, f64::MAX];
        for w in floats.windows(2) {
            assert!(sort_key(&Scalar::Float(w[0])) <= sort_key(&Scalar::Float(w[1])));
        }
        assert!(sort_key(&Scalar::Boolean(false)) < sort_key(&Scalar::Boolean(true)));
    }

    #[test]
    fn the_mapping_is_deterministic_and_ordered() {
        let a = Manifest::for_schemas(&Schemas::builtin());
        let b = Manifest::for_schemas(&Schemas::builtin());
        assert_eq!(a, b);
        let names: Vec<_> = a.fields.iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&"f.task.done"));
        assert!(names.contains(&"s.task.due"));
        assert!(names.contains(&"t.note.body"));
        assert_eq!(a.references, ["collection_member.collection"]);
    }
}
