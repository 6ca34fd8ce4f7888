//! The store service of one cell: its entity index (`crate::store::StoreIndex`) on a thread
//! of its own, because every tantivy call blocks.
//!
//! The index is fed by the chain service (`super::chain`): at start, the blocks after the
//! index's checkpoint and the pending store (an idempotent catch-up), or everything as a
//! rebuild when the index was missing, damaged, of another schema, or its checkpoint does not
//! match the chain; then, after each engine step, the operations it added or committed, with
//! the last committed block as the new checkpoint; a truncation replays everything as a
//! rebuild.
//!
//! `Mutate` requests go to the cell's one writer (an async task), which serves them in
//! arrival order in batches of whatever queued up while the previous batch was written:
//! the batch is prepared on the index thread (shape, schemas, checks; a request checking an
//! entity an earlier one of the batch writes waits for the next batch), appended as one
//! chain write (one entry per request), and applied to the index in one commit; each request
//! is answered after that, so the next query sees it (read your writes). A lone request waits
//! for nothing; concurrent ones share the fsyncs.
//!
//! Watched queries live on the index thread too: after every batch it applies (a local
//! mutation or operations fed by the chain), it re-runs each watched query and pushes the new
//! results to the watcher when their hash changed: a member's subscription or an app of this
//! node ([`Watcher`]), which keeps only the newest pending results, so a slow watcher gets
//! fewer events, never a stale final state.
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
use super::watcher::Watcher;
use crate::apps::store::WatchReceiver;
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
    /// Prepares a batch of write requests in order ([`prepare_batch`]).
    Prepare {
        requests: Vec<Vec<Mutation>>,
        reply: async_channel::Sender<Prepared>,
    },
    /// Folds durable local entries (pending) in one commit.
    Apply {
        operations: Vec<(OperationId, Vec<u8>)>,
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
        watcher: Box<Watcher>,
        reply: async_channel::Sender<Result<(), ErrorBody>>,
    },
}

/// What preparing a batch of write requests gave.
struct Prepared {
    /// One per request taken, in order: its entry's plaintext, or why it is refused.
    results: Vec<Result<Vec<u8>, MutationError>>,
    /// The requests not taken (the first checks an entity an earlier request of the batch
    /// writes): for the next batch.
    deferred: Vec<Vec<Mutation>>,
}

/// Prepares write requests in order, as if each were written before the next is prepared:
/// a request whose check names an entity that an earlier request of the batch writes would
/// be checked against a state that is about to change, so it and the requests after it are
/// deferred to the next batch (`spec/store.md` section 6).
fn prepare_batch(index: &StoreIndex, requests: Vec<Vec<Mutation>>) -> Prepared {
    let mut written: Vec<String> = Vec::new();
    let mut results = Vec::with_capacity(requests.len());
    let mut requests = requests.into_iter();
    while let Some(mutations) = requests.next() {
        let checks_written = mutations.iter().any(
            |m| matches!(m, Mutation::Check { entity, .. } if written.iter().any(|w| w == entity)),
        );
        if checks_written {
            let mut deferred = vec![mutations];
            deferred.extend(requests);
            return Prepared { results, deferred };
        }
        let entities: Vec<String> = mutations.iter().map(|m| m.entity().to_string()).collect();
        let prepared = index.prepare(mutations);
        if prepared.is_ok() {
            written.extend(entities);
        }
        results.push(prepared);
    }
    Prepared {
        results,
        deferred: Vec::new(),
    }
}

/// A watched query: its last results' hash, and where new results go.
struct Watch {
    query: Query,
    hash: u64,
    watcher: Watcher,
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
    /// Garbage collection keeps old versions and deletions for `retention_us`. `schemas`
    /// are the built-in types and those of the cell's installed apps.
    pub fn start(
        cell: &Cell,
        retention_us: u64,
        schemas: Schemas,
    ) -> Result<(StoreThread, StoreFeed), String> {
        let name = cell.config.name.clone();
        let dir = index_dir(&cell.dir);
        let (index, opened) = StoreIndex::open(&dir, schemas).map_err(|e| {
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
        watch.watcher.fail(ErrorBody {
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
            mut operations,
            mut through,
        } => {
            // The batches that queued up behind this one (the index was busy) are folded in
            // the same commit; one of another kind is taken after.
            let mut after = None;
            while operations.len() < FEED_CHUNK_OPERATIONS {
                match feed.try_recv() {
                    Ok(Feed::Operations {
                        operations: more,
                        through: to,
                    }) => {
                        operations.extend(more);
                        through = to.or(through);
                    }
                    Ok(other) => {
                        after = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = index.apply_through(operations, through) {
                error!("cell `{cell}`: cannot update the entity index: {e}");
            }
            if let Some(other) = after {
                return take_feed(cell, index, feed, other);
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

/// Re-runs every watched query after a batch; pushes the results whose hash changed. Watches
/// whose subscriber went away are dropped.
fn refresh(cell: &str, index: &mut StoreIndex, watches: &mut Vec<Watch>) {
    prune(cell, watches);
    for watch in watches.iter_mut() {
        match index.query(&watch.query) {
            Ok(results) if results.hash != watch.hash => {
                watch.hash = results.hash;
                watch.watcher.push(cell, results_response(&results));
            }
            Ok(_) => {}
            Err(e) => warn!("cell `{cell}`: a watched query failed: {e}"),
        }
    }
}

/// Forgets the watches whose subscriber unsubscribed or went away.
fn prune(cell: &str, watches: &mut Vec<Watch>) {
    let before = watches.len();
    watches.retain(|w| !w.watcher.is_closed());
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
    watcher: Watcher,
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
    watcher.push(cell, results_response(&results));
    watches.push(Watch {
        query,
        hash: results.hash,
        watcher,
    });
    Ok(())
}

fn answer(cell: &str, index: &mut StoreIndex, watches: &mut Vec<Watch>, request: Request) {
    match request {
        Request::Prepare { requests, reply } => {
            let _ = reply.try_send(prepare_batch(index, requests));
        }
        Request::Apply { operations, reply } => {
            let pending = operations
                .into_iter()
                .map(|(id, plaintext)| (id, plaintext, false));
            let applied = index
                .apply_batch(pending)
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
        Request::Watch {
            query,
            watcher,
            reply,
        } => {
            let _ = reply.try_send(watch(cell, index, watches, *query, *watcher));
        }
    }
}

/// Write requests waiting for the cell's writer; beyond it, callers wait.
pub const WRITES_LEN: usize = 256;
/// Write requests served together at most: one chain write (one LMDB transaction) and one
/// index commit for all of them.
pub const BATCH_REQUESTS_MAX: usize = 64;
/// Entry bytes written together at most (a batch always takes at least one request).
pub const BATCH_BYTES_MAX: usize = 4 << 20;

/// A `Mutate` waiting for the writer.
struct Write {
    mutations: Vec<Mutation>,
    /// Its entry's size in bytes.
    size: usize,
    reply: async_channel::Sender<Result<OperationId, ErrorBody>>,
}

/// The running store service of a cell, as the network's requests see it.
pub struct StoreService {
    requests: async_channel::Sender<Request>,
    writes: async_channel::Sender<Write>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    writer: std::sync::Mutex<Option<smol::Task<()>>>,
    cell_name: String,
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

/// Sends a request to the index thread and waits for its answer.
async fn call<T>(
    requests: &async_channel::Sender<Request>,
    make: impl FnOnce(async_channel::Sender<T>) -> Request,
) -> Result<T, ErrorBody> {
    let (reply, answer) = async_channel::bounded(1);
    requests
        .send(make(reply))
        .await
        .map_err(|_| internal("the store service is stopping"))?;
    answer
        .recv()
        .await
        .map_err(|_| internal("the store service stopped"))
}

/// The cell's one writer (`spec/store.md` section 6): takes the write requests in arrival
/// order, in batches of whatever queued up while the previous batch was being written, so
/// one chain write and one index commit serve many concurrent requests, and a single
/// request waits for nothing.
async fn write_loop(
    requests: async_channel::Sender<Request>,
    writes: async_channel::Receiver<Write>,
    chain: Arc<ChainService>,
) {
    let mut waiting: std::collections::VecDeque<Write> = std::collections::VecDeque::new();
    loop {
        if waiting.is_empty() {
            match writes.recv().await {
                Ok(write) => waiting.push_back(write),
                Err(_) => return,
            }
        }
        while waiting.len() < BATCH_REQUESTS_MAX {
            match writes.try_recv() {
                Ok(write) => waiting.push_back(write),
                Err(_) => break,
            }
        }
        let mut batch = Vec::new();
        let mut size = 0;
        while let Some(next) = waiting.front() {
            let full = batch.len() == BATCH_REQUESTS_MAX || size + next.size > BATCH_BYTES_MAX;
            if !batch.is_empty() && full {
                break;
            }
            size += next.size;
            batch.extend(waiting.pop_front());
        }
        let deferred = write_batch(&requests, &chain, batch).await;
        for write in deferred.into_iter().rev() {
            waiting.push_front(write);
        }
    }
}

/// Writes one batch: prepared together on the index thread, appended together (one chain
/// write), applied together (one index commit), then each request is answered: what it
/// wrote is visible to queries by then (read your writes). Returns the requests deferred to
/// the next batch.
async fn write_batch(
    requests: &async_channel::Sender<Request>,
    chain: &ChainService,
    batch: Vec<Write>,
) -> Vec<Write> {
    let mut mutations = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for write in batch {
        mutations.push(write.mutations);
        replies.push((write.size, write.reply));
    }
    let prepared = match call(requests, |reply| Request::Prepare {
        requests: mutations,
        reply,
    })
    .await
    {
        Ok(prepared) => prepared,
        Err(e) => {
            for (_, reply) in replies {
                let _ = reply.try_send(Err(e.clone()));
            }
            return Vec::new();
        }
    };
    let mut replies = replies.into_iter();
    let taken: Vec<_> = replies.by_ref().take(prepared.results.len()).collect();
    let deferred = prepared
        .deferred
        .into_iter()
        .zip(replies)
        .map(|(mutations, (size, reply))| Write {
            mutations,
            size,
            reply,
        })
        .collect();
    // Refused requests are answered now; the others are appended together.
    let mut accepted = Vec::new();
    for (result, (_, reply)) in prepared.results.into_iter().zip(taken) {
        match result {
            Ok(plaintext) => accepted.push((plaintext, reply)),
            Err(e) => {
                let _ = reply.try_send(Err(refusal(e)));
            }
        }
    }
    if accepted.is_empty() {
        return deferred;
    }
    let plaintexts: Vec<Vec<u8>> = accepted.iter().map(|(p, _)| p.clone()).collect();
    let appended = chain.append_all(plaintexts).await;
    let mut written = Vec::new();
    let mut answers = Vec::new();
    for ((plaintext, reply), result) in accepted.into_iter().zip(appended) {
        match result {
            Ok(operation) => {
                written.push((operation, plaintext));
                answers.push((operation, reply));
            }
            Err(e) => {
                let _ = reply.try_send(Err(if e.contains("secret") {
                    ErrorBody {
                        code: ErrorCode::NOT_AUTHORIZED,
                        message: e,
                    }
                } else {
                    internal(e)
                }));
            }
        }
    }
    if written.is_empty() {
        return deferred;
    }
    // The chain feeds the index too, but the answers wait for this apply: read your writes.
    let applied = call(requests, |reply| Request::Apply {
        operations: written,
        reply,
    })
    .await
    .and_then(|applied| applied.map_err(internal));
    for (operation, reply) in answers {
        let _ = reply.try_send(applied.clone().map(|()| operation).map_err(|e| {
            internal(format!(
                "the entry {operation} is durable but not indexed: {}",
                e.message
            ))
        }));
    }
    deferred
}

/// The error answering a refused request: a failed check is a conflict.
fn refusal(error: MutationError) -> ErrorBody {
    match error {
        MutationError::Read(e) => internal(e),
        e @ MutationError::CheckFailed { .. } => ErrorBody {
            code: ErrorCode::CONFLICT,
            message: e.to_string(),
        },
        e => bad(e.to_string()),
    }
}

impl StoreService {
    /// The service over a started index thread and the cell's chain service; starts the
    /// cell's writer.
    pub fn new(thread: StoreThread, chain: Arc<ChainService>) -> StoreService {
        let (writes, receiver) = async_channel::bounded(WRITES_LEN);
        let writer = smol::spawn(write_loop(thread.requests.clone(), receiver, chain));
        StoreService {
            requests: thread.requests,
            writes,
            thread: std::sync::Mutex::new(Some(thread.thread)),
            writer: std::sync::Mutex::new(Some(writer)),
            cell_name: thread.cell_name,
        }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(async_channel::Sender<T>) -> Request,
    ) -> Result<T, ErrorBody> {
        call(&self.requests, make).await
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
        let (reply, answer) = async_channel::bounded(1);
        let write = Write {
            mutations,
            size: entry.len(),
            reply,
        };
        self.writes
            .send(write)
            .await
            .map_err(|_| internal("the store service is stopping"))?;
        let operation = answer
            .recv()
            .await
            .map_err(|_| internal("the store service stopped"))??;
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
        let query = wire::decode::<Query>(&query)
            .map_err(|e| bad(format!("the query does not decode: {e}")))?;
        self.register(query, Watcher::Peer(sink)).await?;
        Ok(Vec::new())
    }

    /// Watches `query` for an app of this node: its current results first, then new results
    /// when they change, until the receiver is dropped or the store stops.
    pub async fn watch(&self, query: Query) -> Result<WatchReceiver, ErrorBody> {
        let (watcher, receiver) = Watcher::app();
        self.register(query, watcher).await?;
        Ok(receiver)
    }

    /// Registers a watch on the index thread.
    async fn register(&self, mut query: Query, watcher: Watcher) -> Result<(), ErrorBody> {
        // Every event carries its results: the watch compares hashes itself.
        query.result_hash = None;
        self.call(|reply| Request::Watch {
            query: Box::new(query),
            watcher: Box::new(watcher),
            reply,
        })
        .await?
    }

    /// Whether the index thread still runs (it ends on [`StoreService::stop`], or when it
    /// failed).
    pub fn is_running(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Ends the writer after the writes already queued, then closes the index after the
    /// requests already queued, and waits for its thread.
    pub fn stop(&self) {
        self.writes.close();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            future::block_on(writer);
        }
        self.requests.close();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                warn!("cell `{}`: the store thread panicked", self.cell_name);
            }
        }
    }
}
