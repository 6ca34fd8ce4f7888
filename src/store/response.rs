//! The Store service's answers (`exocore_protocol::store`) built from the store's values:
//! one conversion, shared by the daemon's store service and the app host's local store.

use exocore_protocol::store::{EntityState, StoreResponse, TraitState};
use exocore_protocol::wire;

use super::{Entity, EntityStatus, QueryResults};

/// The Results response for a page of results.
pub fn results_response(results: &QueryResults) -> StoreResponse {
    StoreResponse::Results {
        entities: results.entities.iter().map(entity_state).collect(),
        next: results.next.as_ref().map(|c| c.to_text()),
        total: results.total,
        hash: results.hash,
        unchanged: results.unchanged,
    }
}

/// An entity in its wire form.
pub fn entity_state(entity: &Entity) -> EntityState {
    EntityState {
        id: entity.id.clone(),
        status: match entity.status {
            EntityStatus::Absent => 0,
            EntityStatus::Live => 1,
            EntityStatus::Deleted => 2,
        },
        created_us: entity.created_us,
        updated_us: entity.updated_us,
        deleted_us: entity.deleted_us,
        version: entity.version.to_bytes(),
        pending: entity.pending,
        traits: entity
            .traits
            .iter()
            .map(|t| TraitState {
                value: bincode::encode_to_vec(&t.value, wire::CONFIG).unwrap_or_default(),
                created_us: t.created_us,
                updated_us: t.updated_us,
                deleted_us: t.deleted_us,
                version: t.version.to_bytes(),
            })
            .collect(),
    }
}
