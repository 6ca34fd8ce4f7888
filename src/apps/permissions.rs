//! Store requests from an app, restricted to the trait types its manifest lets it read and
//! write (`spec/apps.md` section 6), then passed to the store.

use exocore_protocol::message::{ErrorBody, ErrorCode};
use exocore_protocol::store::{EntityState, StoreRequest, StoreResponse};
use exocore_protocol::wire;

use super::store::{AppStore, WatchReceiver};
use crate::chain::OperationId;
use crate::store::query::{Predicate, Projection};
use crate::store::{Entry, Expected, Mutation, Query, Trait};

/// The trait types an app may read and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Types it may read.
    pub read: Vec<String>,
    /// Types it may write.
    pub write: Vec<String>,
}

fn refused(message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        code: ErrorCode::NOT_AUTHORIZED,
        message: message.into(),
    }
}

fn bad(message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        code: ErrorCode::BAD_MESSAGE,
        message: message.into(),
    }
}

impl Permissions {
    fn may_read(&self, trait_type: &str) -> bool {
        self.read.iter().any(|t| t == trait_type)
    }

    fn may_write(&self, trait_type: &str) -> bool {
        self.write.iter().any(|t| t == trait_type)
    }

    /// `query` limited to entities with a readable trait, returning only readable traits.
    pub fn restrict(&self, mut query: Query) -> Result<Query, ErrorBody> {
        if self.read.is_empty() {
            return Err(refused(
                "this app may not read: its manifest lists no type to read",
            ));
        }
        if let Some(p) = query
            .projections
            .iter()
            .find(|p| !self.may_read(&p.trait_type))
        {
            return Err(refused(format!(
                "this app may not read trait type `{}` (not in its manifest's read list)",
                p.trait_type
            )));
        }
        if query.projections.is_empty() {
            query.projections = self
                .read
                .iter()
                .map(|t| Projection {
                    trait_type: t.clone(),
                    fields: Vec::new(),
                })
                .collect();
        }
        let readable = Predicate::Or(self.read.iter().cloned().map(Predicate::Type).collect());
        query.predicate = Predicate::And(vec![query.predicate, readable]);
        Ok(query)
    }

    /// Answers `request` within the permissions.
    pub async fn request(
        &self,
        store: &dyn AppStore,
        request: StoreRequest,
    ) -> Result<StoreResponse, ErrorBody> {
        match request {
            StoreRequest::Query { query } => {
                let query = wire::decode::<Query>(&query)
                    .map_err(|e| bad(format!("the query does not decode: {e}")))?;
                self.query(store, query).await
            }
            StoreRequest::QueryText { text } => {
                let query = Query::parse(&text).map_err(|e| bad(e.to_string()))?;
                self.query(store, query).await
            }
            StoreRequest::Get { entity } => {
                let mut query = Query::new(Predicate::Id(entity));
                query.include_deleted = true;
                query.limit = 1;
                match self.query(store, query).await? {
                    StoreResponse::Results { mut entities, .. } => Ok(StoreResponse::Entity {
                        entity: entities.pop(),
                    }),
                    other => Ok(other),
                }
            }
            StoreRequest::Mutate { entry } => self.mutate(store, &entry).await,
            StoreRequest::Watch { .. } => Err(bad("Watch is answered by AppHost's watch")),
        }
    }

    /// Registers a watch of `query` (encoded) within the permissions.
    pub async fn watch(
        &self,
        store: &dyn AppStore,
        query: &[u8],
    ) -> Result<WatchReceiver, ErrorBody> {
        let mut query = wire::decode::<Query>(query)
            .map_err(|e| bad(format!("the query does not decode: {e}")))?;
        query.result_hash = None;
        store.watch(self.restrict(query)?).await
    }

    async fn query(&self, store: &dyn AppStore, query: Query) -> Result<StoreResponse, ErrorBody> {
        let query = self.restrict(query)?;
        let bytes = wire::encode(&query).map_err(|e| bad(e.to_string()))?;
        store.request(StoreRequest::Query { query: bytes }).await
    }

    /// Checks every mutation; deletions are checked against the entity as read now, and a
    /// `Check` of that version is appended so it cannot change before the write.
    async fn mutate(&self, store: &dyn AppStore, entry: &[u8]) -> Result<StoreResponse, ErrorBody> {
        let Entry::Mutations(mut mutations) =
            Entry::from_bytes(entry).map_err(|e| bad(format!("the mutations are refused: {e}")))?;
        let mut checks = Vec::new();
        for (i, mutation) in mutations.iter().enumerate() {
            match mutation {
                Mutation::PutTrait { value, .. } => {
                    if !self.may_write(&value.trait_type) {
                        return Err(refused(format!(
                            "mutation {i}: this app may not write trait type `{}` (not in its \
                             manifest's write list)",
                            value.trait_type
                        )));
                    }
                }
                Mutation::DeleteTrait { entity, trait_id } => {
                    let state = get(store, entity).await?;
                    let found = live_traits(state.as_ref())?
                        .into_iter()
                        .find(|t| &t.id == trait_id);
                    if let Some(t) = found.filter(|t| !self.may_write(&t.trait_type)) {
                        return Err(refused(format!(
                            "mutation {i}: this app may not delete trait `{trait_id}` of type \
                             `{}` (not in its manifest's write list)",
                            t.trait_type
                        )));
                    }
                    checks.push(check(entity, state.as_ref()));
                }
                Mutation::DeleteEntity { entity } => {
                    let state = get(store, entity).await?;
                    let traits = live_traits(state.as_ref())?;
                    if let Some(t) = traits.iter().find(|t| !self.may_write(&t.trait_type)) {
                        return Err(refused(format!(
                            "mutation {i}: this app may not delete entity `{entity}`: it has a \
                             trait of type `{}`, not in its manifest's write list",
                            t.trait_type
                        )));
                    }
                    checks.push(check(entity, state.as_ref()));
                }
                Mutation::Check { .. } => {}
            }
        }
        mutations.extend(checks);
        let entry = Entry::Mutations(mutations).to_bytes();
        store.request(StoreRequest::Mutate { entry }).await
    }
}

async fn get(store: &dyn AppStore, entity: &str) -> Result<Option<EntityState>, ErrorBody> {
    match store
        .request(StoreRequest::Get {
            entity: entity.to_string(),
        })
        .await?
    {
        StoreResponse::Entity { entity } => Ok(entity),
        _ => Err(ErrorBody {
            code: ErrorCode::INTERNAL,
            message: "the store answered a Get with something else".into(),
        }),
    }
}

fn live_traits(state: Option<&EntityState>) -> Result<Vec<Trait>, ErrorBody> {
    let Some(state) = state else {
        return Ok(Vec::new());
    };
    state
        .traits
        .iter()
        .filter(|t| t.deleted_us.is_none())
        .map(|t| {
            wire::decode::<Trait>(&t.value).map_err(|e| ErrorBody {
                code: ErrorCode::INTERNAL,
                message: format!("a stored trait does not decode: {e}"),
            })
        })
        .collect()
}

/// A check that `entity` is still as read.
fn check(entity: &str, state: Option<&EntityState>) -> Mutation {
    let expected = match state {
        Some(s) if s.status == 1 => Expected::Version(OperationId::from_bytes(&s.version)),
        _ => Expected::Absent,
    };
    Mutation::Check {
        entity: entity.to_string(),
        expected,
    }
}
