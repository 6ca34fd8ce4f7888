//! The store service of one cell: its entity index (`crate::store::StoreIndex`) on a thread
//! of its own, because every tantivy call blocks.
//!
//! The index is fed by the chain service (`super::chain`): at start, the blocks after the
//! index's checkpoint and the pending store (an idempotent catch-up), or everything as a
//! rebuild when the index was missing, damaged, of another schema, or its checkpoint does not
//! match the chain; then, after each engine step, the operations it added or committed, with
//! the last committed block as the new checkpoint; a truncation replays everything as a
//! rebuild. A `Mutate` request is prepared on the index
//! thread (shape, schemas, checks), appended as one chain entry, and applied to the index
//! before it is answered, so the next query sees it (read your writes).
//!
//! Watched queries live on the index thread too: after every batch it applies (a local
//! mutation or operations fed by the chain), it re-runs each watched query and pushes the new
//! results to the watcher when their hash changed. The watcher's [`EventSink`] keeps only the
//! newest pending results, so a slow watcher gets fewer events, never a stale final state.
//!
//! Architecture invariant: this is glue. Validation, folding and queries are the store
//! library's; durability and replication are the chain service's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_io::Timer;
use exocore_protocol::message::{ErrorBody, ErrorCode};
use exocore_protocol::store::{StoreRequest, StoreResponse};
use exocore_protocol::wire;
use futures_lite::future;
use tracing::{debug, error, info, warn};

use super::chain::ChainService;
use crate::chain::OperationId;
use crate::clock::now_us;
use crate::config::Cell;
use crate::net::{Answer, EventSink};
use crate::store::response::{entity_state, results_response};
use crate::store::{
    ApplyReport, Checkpoint, Entity, EntityStatus, Entry, IndexError, Mutation, MutationError,
    Opened, Query, QueryError, QueryResults, Schemas, StoreIndex,
};

/// Requests waiting for the index thread; beyond it, callers wait.
pub const REQUESTS_LEN: usize = 256;
/// Batches of operations waiting for the index thread; beyond it, the chain service waits.
pub const FEED_LEN: usize = 64;
/// Operations per batch when the chain is replayed into the index.
pub const FEED_CHUNK_OPERATIONS: usize = 1000;
/// Watched queries a cell's store keeps at most (over all connections); one more is refused.
pub const WATCHES_MAX: usize = 256;
/// Garbage collection runs every tenth of the retention period, within these bounds.
pub const GC_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// See [`GC_INTERVAL_MIN`].
pub const GC_INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// How often garbage collection runs for a retention period.
fn gc_interval(retention_us: u64) -> Duration {
    Duration::from_micros(retention_us / 10).clamp(GC_INTERVAL_MIN, GC_INTERVAL_MAX)
}

/// An operation as the index takes it: id, entry plaintext, committed.
pub type Plain = (OperationId, Vec<u8>, bool);

/// What the chain service tells the index. `through` is the last block whose operations
/// are all in this batch or earlier ones: the index records it with the batch.
pub enum Feed {
    /// Operations added to the pending store or committed in a block.
    Operations {
        /// The operations.
        operations: Vec<Plain>,
        /// The last block committed, if any.
        through: Option<Checkpoint>,
    },
    /// One chunk of a replay (blocks from some height, then pending); `last` ends it.
    /// With `rebuild`, the index is emptied first and marked complete at the end.
    Replay {
        /// Empty the index first.
        rebuild: bool,
        /// This chunk.
        operations: Vec<Plain>,
        /// The last block replayed so far.
        through: Option<Checkpoint>,
        /// The replay's last chunk.
        last: bool,
    },
}

/// What the chain service replays into the index when it starts.
#[derive(Debug, Clone, Copy)]
pub enum FeedStart {
    /// The index was just created: every operation, as a rebuild.
    Rebuild,
    /// The index is complete up to this checkpoint: the blocks after it (all of them when
    /// there is none) and the pending operations. A checkpoint that does not match the
    /// chain makes it a rebuild.
    After(Option<Checkpoint>),
}

/// The chain service's end of the feed.
pub struct StoreFeed {
    /// Where batches go.
    pub sender: async_channel::Sender<Feed>,
    /// What to replay first.
    pub start: FeedStart,
}

enum Request {
    Prepare {
        mutations: Vec<Mutation>,
        reply: async_channel::Sender<Result<Vec<u8>, MutationError>>,
    },
    Apply {
        operation: OperationId,
        plaintext: Vec<u8>,
        reply: async_channel::Sender<Result<(), String>>,
    },
    Query {
        query: Query,
        reply: async_channel::Sender<Result<QueryResults, QueryError>>,
    },
    Get {
        entity: String,
        reply: async_channel::Sender<Result<Option<Entity>, String>>,
    },
    Watch {
        query: Box<Query>,
        sink: Box<EventSink>,
        reply: async_channel::Sender<Result<(), ErrorBody>>,
    },
}

/// A watched query: its last results' hash, and where new results go.
struct Watch {
    query: Query,
    hash: u64,
    sink: EventSink,
}

/// The index folder of a cell.
pub fn index_dir(cell_dir: &Path) -> PathBuf {
    cell_dir.join("store").join("index")
}

/// The index thread, started before the chain service that feeds it.
pub struct StoreThread {
    requests: async_channel::Sender<Request>,
    thread: JoinHandle<()>,
    cell_name: String,
}

impl StoreThread {
    /// Opens the cell's index and starts its thread; returns it and the feed for the chain.
    /// Garbage collection keeps old versions and deletions for `retention_us`.
    pub fn start(cell: &Cell, retention_us: u64) -> Result<(StoreThread, StoreFeed), String> {
        let name = cell.config.name.clone();
        let dir = index_dir(&cell.dir);
        let (index, opened) = StoreIndex::open(&dir, Schemas::builtin()).map_err(|e| {
            format!(
                "cell `{name}`: cannot open the entity index in {}: {e}",
                dir.display()
            )
        })?;
        let start = match opened {
            Opened::Existing(checkpoint) => {
                info!("cell `{name}`: entity index opened");
                FeedStart::After(checkpoint)
            }
            Opened::Created(reason) => {
                info!("cell `{name}`: rebuilding the entity index from the chain: {reason}");
                FeedStart::Rebuild
            }
        };
        let (feed_sender, feed) = async_channel::bounded(FEED_LEN);
        let (requests, receiver) = async_channel::bounded(REQUESTS_LEN);
        let thread_name = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("store-{name}"))
            .spawn(move || run(thread_name, index, retention_us, feed, receiver))
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
        Ok((
            StoreThread {
                requests,
                thread,
                cell_name: name,
            },
            StoreFeed {
                sender: feed_sender,
                start,
            },
        ))
    }
}

fn run(
    cell: String,
    mut index: StoreIndex,
    retention_us: u64,
    feed: async_channel::Receiver<Feed>,
    requests: async_channel::Receiver<Request>,
) {
    enum Next {
        Feed(Option<Feed>),
        Request(Option<Request>),
        Collect,
    }
    let mut feed_open = true;
    let mut watches: Vec<Watch> = Vec::new();
    let interval = gc_interval(retention_us);
    let mut next_gc = Instant::now() + interval;
    loop {
        // Checked first, so a steady stream of requests cannot hold garbage collection off.
        if Instant::now() >= next_gc {
            collect(&cell, &mut index, retention_us, &mut watches);
            next_gc = Instant::now() + interval;
        }
        let collect_due = async {
            Timer::at(next_gc).await;
            Next::Collect
        };
        // The feed first: what the chain already holds is folded before a query runs.
        let next = if feed_open {
            async_io::block_on(future::or(
                async { Next::Feed(feed.recv().await.ok()) },
                future::or(
                    async { Next::Request(requests.recv().await.ok()) },
                    collect_due,
                ),
            ))
        } else {
            async_io::block_on(future::or(
                async { Next::Request(requests.recv().await.ok()) },
                collect_due,
            ))
        };
        match next {
            Next::Feed(None) => feed_open = false,
            Next::Feed(Some(batch)) => {
                if take_feed(&cell, &mut index, &feed, batch) {
                    // A replay ended: a rebuilt index is collected at once, so it answers
                    // like the index it replaces.
                    collect(&cell, &mut index, retention_us, &mut watches);
                    next_gc = Instant::now() + interval;
                }
                refresh(&cell, &mut index, &mut watches);
            }
            Next::Request(None) => break,
            Next::Request(Some(request)) => answer(&cell, &mut index, &mut watches, request),
            Next::Collect => {}
        }
    }
    for watch in watches {
        watch.sink.fail(ErrorBody {
            code: ErrorCode::SHUTTING_DOWN,
            message: format!("the store of cell `{cell}` is stopping"),
        });
    }
    info!("cell `{cell}`: entity index closed");
}

/// One garbage collection pass (`spec/store.md` section 10): what was replaced or deleted
/// longer than `retention_us` ago goes; watchers see the results that changed.
fn collect(cell: &str, index: &mut StoreIndex, retention_us: u64, watches: &mut Vec<Watch>) {
    let horizon_us = now_us().saturating_sub(retention_us);
    match index.collect_garbage(horizon_us) {
        Ok(report) if report.compacted > 0 => {
            info!(
                "cell `{cell}`: garbage collection: {} entit(ies) compacted, {} deleted \
                 entit(ies) past the retention period collected",
                report.compacted, report.collected
            );
            refresh(cell, index, watches);
        }
        Ok(_) => debug!("cell `{cell}`: garbage collection: nothing to collect"),
        Err(e) => error!("cell `{cell}`: garbage collection failed: {e}"),
    }
}

/// Applies a feed batch; returns whether it ended a replay.
fn take_feed(
    cell: &str,
    index: &mut StoreIndex,
    feed: &async_channel::Receiver<Feed>,
    batch: Feed,
) -> bool {
    let ended = matches!(
        batch,
        Feed::Replay { rebuild: true, .. } | Feed::Replay { last: true, .. }
    );
    match batch {
        Feed::Operations {
            operations,
            through,
        } => {
            if let Err(e) = index.apply_through(operations, through) {
                error!("cell `{cell}`: cannot update the entity index: {e}");
            }
        }
        Feed::Replay {
            rebuild: true,
            operations,
            through,
            last,
        } => match rebuild(index, feed, operations, through, last) {
            Ok(Some(report)) => info!(
                "cell `{cell}`: entity index built: {} operation(s), {} entit(ies), {} refused",
                report.applied,
                report.entities_changed,
                report.refused.len()
            ),
            Ok(None) => warn!("cell `{cell}`: the chain stopped during the index rebuild"),
            Err(e) => error!("cell `{cell}`: cannot rebuild the entity index: {e}"),
        },
        Feed::Replay {
            operations,
            through,
            last,
            ..
        } => match index.apply_through(operations, through) {
            Ok(_) if last => info!("cell `{cell}`: entity index caught up with the chain"),
            Ok(_) => {}
            Err(e) => error!("cell `{cell}`: cannot catch the entity index up: {e}"),
        },
    }
    ended
}

/// Empties the index and folds the replay's chunks as they come from the feed; marks the
/// index complete after the last. `None` if the feed closed before (the index then stays
/// incomplete, and is rebuilt at the next start).
fn rebuild(
    index: &mut StoreIndex,
    feed: &async_channel::Receiver<Feed>,
    mut operations: Vec<Plain>,
    mut through: Option<Checkpoint>,
    mut last: bool,
) -> Result<Option<ApplyReport>, IndexError> {
    index.begin_rebuild()?;
    let mut report = ApplyReport::default();
    loop {
        report.add(index.apply_through(operations, through)?);
        if last {
            break;
        }
        // The chain sends a replay whole before anything else.
        match feed.recv_blocking() {
            Ok(Feed::Replay {
                operations: more,
                through: to,
                last: end,
                ..
            }) => (operations, through, last) = (more, to, end),
            Ok(Feed::Operations {
                operations: more,
                through: to,
            }) => (operations, through) = (more, to),
            Err(_) => return Ok(None),
        }
    }
    index.finish_rebuild()?;
    Ok(Some(report))
}

/// Pushes `results` to a watcher, as a Results event.
fn push(cell: &str, sink: &EventSink, results: &QueryResults) {
    match wire::encode(&results_response(results)) {
        Ok(payload) => {
            sink.send(payload);
        }
        Err(e) => warn!("cell `{cell}`: watched query results do not encode: {e}"),
    }
}

/// Re-runs every watched query after a batch; pushes the results whose hash changed. Watches
/// whose subscriber went away are dropped.
fn refresh(cell: &str, index: &mut StoreIndex, watches: &mut Vec<Watch>) {
    prune(cell, watches);
    for watch in watches.iter_mut() {
        match index.query(&watch.query) {
            Ok(results) if results.hash != watch.hash => {
                watch.hash = results.hash;
                push(cell, &watch.sink, &results);
            }
            Ok(_) => {}
            Err(e) => warn!("cell `{cell}`: a watched query failed: {e}"),
        }
    }
}

/// Forgets the watches whose subscriber unsubscribed or went away.
fn prune(cell: &str, watches: &mut Vec<Watch>) {
    let before = watches.len();
    watches.retain(|w| !w.sink.is_closed());
    let ended = before - watches.len();
    if ended > 0 {
        debug!("cell `{cell}`: {ended} watched query(ies) ended");
    }
}

/// Registers a watch: its current results are its first event.
fn watch(
    cell: &str,
    index: &mut StoreIndex,
    watches: &mut Vec<Watch>,
    query: Query,
    sink: EventSink,
) -> Result<(), ErrorBody> {
    prune(cell, watches);
    if watches.len() >= WATCHES_MAX {
        return Err(ErrorBody {
            code: ErrorCode::TOO_MANY_IN_FLIGHT,
            message: format!(
                "the store of cell `{cell}` already watches {WATCHES_MAX} queries, its most: \
                 end a watch first"
            ),
        });
    }
    let results = index.query(&query).map_err(|e| match e {
        QueryError::Index(e) => internal(e),
        e => bad(e.to_string()),
    })?;
    push(cell, &sink, &results);
    watches.push(Watch {
        query,
        hash: results.hash,
        sink,
    });
    Ok(())
}

fn answer(cell: &str, index: &mut StoreIndex, watches: &mut Vec<Watch>, request: Request) {
    match request {
        Request::Prepare { mutations, reply } => {
            let _ = reply.try_send(index.prepare(mutations));
        }
        Request::Apply {
            operation,
            plaintext,
            reply,
        } => {
            let applied = index
                .apply(operation, &plaintext, false)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let _ = reply.try_send(applied);
            refresh(cell, index, watches);
        }
        Request::Query { query, reply } => {
            let _ = reply.try_send(index.query(&query));
        }
        Request::Get { entity, reply } => {
            let _ = reply.try_send(index.get(&entity).map_err(|e| e.to_string()));
        }
        Request::Watch { query, sink, reply } => {
            let _ = reply.try_send(watch(cell, index, watches, *query, *sink));
        }
    }
}

/// The running store service of a cell, as the network's requests see it.
pub struct StoreService {
    requests: async_channel::Sender<Request>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    cell_name: String,
    chain: Arc<ChainService>,
    /// One writer per cell: no request is prepared while another is between its prepare and
    /// its apply, so a check cannot be overtaken on this node (`spec/store.md` section 6).
    writer: smol::lock::Mutex<()>,
}

fn bad(message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        code: ErrorCode::BAD_MESSAGE,
        message: message.into(),
    }
}

fn internal(message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        code: ErrorCode::INTERNAL,
        message: message.into(),
    }
}

impl StoreService {
    /// The service over a started index thread and the cell's chain service.
    pub fn new(thread: StoreThread, chain: Arc<ChainService>) -> StoreService {
        StoreService {
            requests: thread.requests,
            thread: std::sync::Mutex::new(Some(thread.thread)),
            cell_name: thread.cell_name,
            chain,
            writer: smol::lock::Mutex::new(()),
        }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(async_channel::Sender<T>) -> Request,
    ) -> Result<T, ErrorBody> {
        let (reply, answer) = async_channel::bounded(1);
        self.requests
            .send(make(reply))
            .await
            .map_err(|_| internal("the store service is stopping"))?;
        answer
            .recv()
            .await
            .map_err(|_| internal("the store service stopped"))
    }

    /// Answers one Store request (its payload).
    pub async fn handle(&self, payload: &[u8]) -> Answer {
        let request = wire::decode::<StoreRequest>(payload)
            .map_err(|e| bad(format!("not a Store request: {e}")))?;
        let response = match request {
            StoreRequest::Mutate { entry } => self.mutate(&entry).await?,
            StoreRequest::Query { query } => {
                let query = wire::decode::<Query>(&query)
                    .map_err(|e| bad(format!("the query does not decode: {e}")))?;
                self.query(query).await?
            }
            StoreRequest::QueryText { text } => {
                let query = Query::parse(&text).map_err(|e| bad(e.to_string()))?;
                self.query(query).await?
            }
            StoreRequest::Watch { .. } => {
                return Err(ErrorBody {
                    code: ErrorCode::UNSUPPORTED_KIND,
                    message: "Watch is a subscription: send it in a Subscribe envelope".into(),
                })
            }
            StoreRequest::Get { entity } => {
                let found = self
                    .call(|reply| Request::Get { entity, reply })
                    .await?
                    .map_err(internal)?;
                StoreResponse::Entity {
                    entity: found
                        .filter(|e| e.status != EntityStatus::Absent)
                        .map(|e| entity_state(&e)),
                }
            }
        };
        wire::encode(&response).map_err(|e| internal(e.to_string()))
    }

    async fn mutate(&self, entry: &[u8]) -> Result<StoreResponse, ErrorBody> {
        let Entry::Mutations(mutations) =
            Entry::from_bytes(entry).map_err(|e| bad(format!("the mutations are refused: {e}")))?;
        let mut entities: Vec<String> = Vec::new();
        for m in &mutations {
            if !entities.iter().any(|e| e == m.entity()) {
                entities.push(m.entity().to_string());
            }
        }
        let _writer = self.writer.lock().await;
        let plaintext = self
            .call(|reply| Request::Prepare { mutations, reply })
            .await?
            .map_err(|e| match e {
                MutationError::Read(e) => internal(e),
                e @ MutationError::CheckFailed { .. } => ErrorBody {
                    code: ErrorCode::CONFLICT,
                    message: e.to_string(),
                },
                e => bad(e.to_string()),
            })?;
        let operation = self.chain.append(plaintext.clone()).await.map_err(|e| {
            if e.contains("secret") {
                ErrorBody {
                    code: ErrorCode::NOT_AUTHORIZED,
                    message: e,
                }
            } else {
                internal(e)
            }
        })?;
        // The chain feeds the index too, but the answer waits for this apply: read your writes.
        self.call(|reply| Request::Apply {
            operation,
            plaintext,
            reply,
        })
        .await?
        .map_err(|e| {
            internal(format!(
                "the entry {operation} is durable but not indexed: {e}"
            ))
        })?;
        Ok(StoreResponse::Mutated {
            operation: operation.to_bytes(),
            entities,
        })
    }

    async fn query(&self, query: Query) -> Result<StoreResponse, ErrorBody> {
        let results = self
            .call(|reply| Request::Query { query, reply })
            .await?
            .map_err(|e| match e {
                QueryError::Index(e) => internal(e),
                e => bad(e.to_string()),
            })?;
        Ok(results_response(&results))
    }

    /// How many live entities the index holds, once it has folded what the chain fed it.
    pub async fn entity_count(&self) -> Result<u64, ErrorBody> {
        let mut query = Query::new(crate::store::query::Predicate::All);
        query.limit = 1;
        let results = self
            .call(|reply| Request::Query { query, reply })
            .await?
            .map_err(|e| internal(e.to_string()))?;
        Ok(results.total)
    }

    /// Takes a Store Subscribe (its payload): a `Watch` is registered on the index thread,
    /// which pushes its results into `sink`; the answer is an empty Response.
    pub async fn subscribe(&self, payload: &[u8], sink: EventSink) -> Answer {
        let request = wire::decode::<StoreRequest>(payload)
            .map_err(|e| bad(format!("not a Store request: {e}")))?;
        let StoreRequest::Watch { query } = request else {
            return Err(ErrorBody {
                code: ErrorCode::UNSUPPORTED_KIND,
                message: "only Watch is a Store subscription; send the other Store requests \
                          as Requests"
                    .into(),
            });
        };
        let mut query = wire::decode::<Query>(&query)
            .map_err(|e| bad(format!("the query does not decode: {e}")))?;
        // Every event carries its results: the watch compares hashes itself.
        query.result_hash = None;
        self.call(|reply| Request::Watch {
            query: Box::new(query),
            sink: Box::new(sink),
            reply,
        })
        .await??;
        Ok(Vec::new())
    }

    /// Whether the index thread still runs (it ends on [`StoreService::stop`], or when it
    /// failed).
    pub fn is_running(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Closes the index after the requests already queued, and waits for its thread.
    pub fn stop(&self) {
        self.requests.close();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                warn!("cell `{}`: the store thread panicked", self.cell_name);
            }
        }
    }
}
