//! The store, from an app: query, get, mutate and watch, as futures. What the app may read
//! and write is limited by its manifest (`spec/apps.md` section 6).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use exocore_protocol::app::AppRequestBody;
use exocore_protocol::message::ErrorBody;
use exocore_protocol::store::{EntityState, StoreRequest, StoreResponse};
use exocore_protocol::wire;

use crate::runtime::{self, Answer};
use crate::value::{Entry, Mutation, Trait};

/// Why a store request gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host did not accept the request (`send` status: 2 busy, 3 too large, ...).
    NotSent(i32),
    /// The host or the store refused it (e.g. not authorized by the manifest).
    Refused(ErrorBody),
    /// The store answered with another kind of response.
    Unexpected,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotSent(status) => {
                write!(f, "the host did not accept the request (status {status})")
            }
            Error::Refused(e) => write!(f, "{e}"),
            Error::Unexpected => write!(f, "unexpected response"),
        }
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The entities.
    pub entities: Vec<EntityState>,
    /// The next page's cursor.
    pub next: Option<String>,
    /// Matches in all.
    pub total: u64,
}

impl Page {
    fn from(response: StoreResponse) -> Result<Page, Error> {
        match response {
            StoreResponse::Results {
                entities,
                next,
                total,
                ..
            } => Ok(Page {
                entities,
                next,
                total,
            }),
            _ => Err(Error::Unexpected),
        }
    }
}

/// The traits of an entity, decoded (the live ones).
pub fn traits(entity: &EntityState) -> Vec<Trait> {
    entity
        .traits
        .iter()
        .filter(|t| t.deleted_us.is_none())
        .filter_map(|t| wire::decode::<Trait>(&t.value).ok())
        .collect()
}

/// The answer to one request.
struct Reply(Result<u32, i32>);

impl Future for Reply {
    type Output = Result<StoreResponse, Error>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0 {
            Err(status) => Poll::Ready(Err(Error::NotSent(status))),
            Ok(id) => match runtime::take_answer(id) {
                Some(answer) => Poll::Ready(answer.map_err(Error::Refused)),
                None => Poll::Pending,
            },
        }
    }
}

/// Sends any store request (except `Watch`: see [`watch_type`]).
pub async fn request(request: StoreRequest) -> Result<StoreResponse, Error> {
    Reply(runtime::send(AppRequestBody::Store(request), false)).await
}

/// Runs a query in its text form (`spec/query.md` section 2).
pub async fn query_text(text: &str) -> Result<Page, Error> {
    Page::from(request(StoreRequest::QueryText { text: text.into() }).await?)
}

/// Reads one entity.
pub async fn get(entity: &str) -> Result<Option<EntityState>, Error> {
    match request(StoreRequest::Get {
        entity: entity.into(),
    })
    .await?
    {
        StoreResponse::Entity { entity } => Ok(entity),
        _ => Err(Error::Unexpected),
    }
}

/// Applies `mutations`, all or nothing; returns the operation id and the entities touched.
pub async fn mutate(mutations: Vec<Mutation>) -> Result<([u8; 16], Vec<String>), Error> {
    let entry = wire::encode(&Entry::Mutations(mutations)).map_err(|_| Error::NotSent(3))?;
    match request(StoreRequest::Mutate { entry }).await? {
        StoreResponse::Mutated {
            operation,
            entities,
        } => Ok((operation, entities)),
        _ => Err(Error::Unexpected),
    }
}

/// Watches the entities with a trait of `trait_type` (newest first): the current page, then
/// a new one each time it changes. Dropping the [`Watch`] ends it.
pub fn watch_type(trait_type: &str) -> Result<Watch, Error> {
    // Query of spec/query.md section 1: Type predicate (3), no ordering, limit 0 (default),
    // no cursor, no projection, live entities only, no result hash.
    let mut query = 3u32.to_le_bytes().to_vec();
    query.extend((trait_type.len() as u64).to_le_bytes());
    query.extend(trait_type.as_bytes());
    query.extend([0, 0, 0, 0, 0, 0]);
    query.extend(0u64.to_le_bytes());
    query.extend([0, 0]);
    let id = runtime::send(AppRequestBody::Store(StoreRequest::Watch { query }), true)
        .map_err(Error::NotSent)?;
    Ok(Watch { id })
}

/// A live watch.
pub struct Watch {
    id: u32,
}

impl Watch {
    /// The next results; `None` once the watch ended.
    pub fn changed(&mut self) -> impl Future<Output = Option<Result<Page, Error>>> + '_ {
        std::future::poll_fn(move |_| match runtime::take_watched(self.id) {
            None => Poll::Pending,
            Some(None) => Poll::Ready(None),
            Some(Some(answer)) => Poll::Ready(Some(into_page(answer))),
        })
    }
}

fn into_page(answer: Answer) -> Result<Page, Error> {
    Page::from(answer.map_err(Error::Refused)?)
}

impl Drop for Watch {
    fn drop(&mut self) {
        runtime::unwatch(self.id);
    }
}
