//! What the host needs of a store, as a trait so the host runs over the daemon's store
//! service or over a bare [`StoreIndex`] ([`IndexStore`], for tests and benchmarks).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use exocore_protocol::message::{ErrorBody, ErrorCode};
use exocore_protocol::store::{StoreRequest, StoreResponse};
use exocore_protocol::wire;

use crate::chain::OperationId;
use crate::store::response::{entity_state, results_response};
use crate::store::{
    EntityStatus, Entry, IndexError, MutationError, Query, QueryError, Schemas, StoreIndex,
};

/// A store answer on its way.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, ErrorBody>>>>;

/// Results of a watched query stream in here; dropping the receiver ends the watch.
pub type WatchReceiver = async_channel::Receiver<StoreResponse>;

/// Results a watch may hold for its receiver; newer results push out older ones.
pub const WATCH_QUEUE_LEN: usize = 1;

/// A cell's store, as apps reach it (after the host checked their permissions).
pub trait AppStore: Send + Sync + 'static {
    /// Answers a `Mutate`, `Query`, `QueryText` or `Get` (`spec/protocol.md` section 9.2).
    fn request(&self, request: StoreRequest) -> StoreFuture<StoreResponse>;
    /// Watches `query`: its current results first, then new results when they change.
    fn watch(&self, query: Query) -> StoreFuture<WatchReceiver>;
}

/// A [`StoreIndex`] on its own, with no chain: mutations get operation ids from the clock
/// and are applied at once. The host's tests and benchmarks run on it.
pub struct IndexStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    index: StoreIndex,
    last_time_us: u64,
    watches: Vec<LocalWatch>,
}

struct LocalWatch {
    query: Query,
    hash: u64,
    sender: async_channel::Sender<StoreResponse>,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        code,
        message: message.into(),
    }
}

fn query_error(e: QueryError) -> ErrorBody {
    match e {
        QueryError::Index(e) => error(ErrorCode::INTERNAL, e),
        e => error(ErrorCode::BAD_MESSAGE, e.to_string()),
    }
}

impl IndexStore {
    /// Opens (or creates) an index in `dir` with `schemas`.
    pub fn open(dir: &Path, schemas: Schemas) -> Result<IndexStore, IndexError> {
        let (mut index, opened) = StoreIndex::open(dir, schemas)?;
        if matches!(opened, crate::store::Opened::Created(_)) {
            index.rebuild(Vec::<(OperationId, Vec<u8>, bool)>::new())?;
        }
        Ok(IndexStore {
            inner: Arc::new(Mutex::new(Inner {
                index,
                last_time_us: 0,
                watches: Vec::new(),
            })),
        })
    }

    /// Watches still registered (those whose receiver was dropped go at the next change).
    pub fn watches(&self) -> usize {
        IndexStore::lock(&self.inner).watches.len()
    }

    fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
        inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn answer(&mut self, request: StoreRequest) -> Result<StoreResponse, ErrorBody> {
        match request {
            StoreRequest::Mutate { entry } => self.mutate(&entry),
            StoreRequest::Query { query } => {
                let query = wire::decode::<Query>(&query).map_err(|e| {
                    error(
                        ErrorCode::BAD_MESSAGE,
                        format!("the query does not decode: {e}"),
                    )
                })?;
                let results = self.index.query(&query).map_err(query_error)?;
                Ok(results_response(&results))
            }
            StoreRequest::QueryText { text } => {
                let results = self.index.query_text(&text).map_err(query_error)?;
                Ok(results_response(&results))
            }
            StoreRequest::Get { entity } => {
                let found = self
                    .index
                    .get(&entity)
                    .map_err(|e| error(ErrorCode::INTERNAL, e.to_string()))?;
                Ok(StoreResponse::Entity {
                    entity: found
                        .filter(|e| e.status != EntityStatus::Absent)
                        .map(|e| entity_state(&e)),
                })
            }
            StoreRequest::Watch { .. } => Err(error(
                ErrorCode::UNSUPPORTED_KIND,
                "Watch goes through AppStore::watch",
            )),
        }
    }

    fn mutate(&mut self, entry: &[u8]) -> Result<StoreResponse, ErrorBody> {
        let Entry::Mutations(mutations) = Entry::from_bytes(entry).map_err(|e| {
            error(
                ErrorCode::BAD_MESSAGE,
                format!("the mutations are refused: {e}"),
            )
        })?;
        let mut entities: Vec<String> = Vec::new();
        for m in &mutations {
            if !entities.iter().any(|e| e == m.entity()) {
                entities.push(m.entity().to_string());
            }
        }
        let plaintext = self.index.prepare(mutations).map_err(|e| match e {
            MutationError::Read(e) => error(ErrorCode::INTERNAL, e),
            e => error(ErrorCode::BAD_MESSAGE, e.to_string()),
        })?;
        // Ids increase even if the clock does not.
        self.last_time_us = crate::clock::now_us().max(self.last_time_us + 1);
        let operation = OperationId {
            time_us: self.last_time_us,
            node: 1,
        };
        self.index
            .apply(operation, &plaintext, false)
            .map_err(|e| error(ErrorCode::INTERNAL, e.to_string()))?;
        self.refresh();
        Ok(StoreResponse::Mutated {
            operation: operation.to_bytes(),
            entities,
        })
    }

    /// Re-runs the watched queries after a change; sends the results whose hash changed.
    fn refresh(&mut self) {
        self.watches.retain(|w| !w.sender.is_closed());
        for watch in &mut self.watches {
            if let Ok(results) = self.index.query(&watch.query) {
                if results.hash != watch.hash {
                    watch.hash = results.hash;
                    let _ = watch.sender.force_send(results_response(&results));
                }
            }
        }
    }
}

impl AppStore for IndexStore {
    fn request(&self, request: StoreRequest) -> StoreFuture<StoreResponse> {
        let inner = self.inner.clone();
        Box::pin(smol::unblock(move || {
            IndexStore::lock(&inner).answer(request)
        }))
    }

    fn watch(&self, query: Query) -> StoreFuture<WatchReceiver> {
        let inner = self.inner.clone();
        Box::pin(smol::unblock(move || {
            let mut inner = IndexStore::lock(&inner);
            let results = inner.index.query(&query).map_err(query_error)?;
            let (sender, receiver) = async_channel::bounded(WATCH_QUEUE_LEN);
            let _ = sender.force_send(results_response(&results));
            inner.watches.push(LocalWatch {
                query,
                hash: results.hash,
                sender,
            });
            Ok(receiver)
        }))
    }
}
