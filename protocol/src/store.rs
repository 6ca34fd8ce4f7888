//! The Store service's messages: mutations, queries and entity reads against a node that
//! holds a cell's entity index. Encoded with [`crate::wire::CONFIG`]; specified in
//! `spec/protocol.md`, section 9.2.
//!
//! The bodies the store defines itself travel as bytes in the layouts of the store's own
//! specification, so a client builds them from the spec alone: a request's mutations are the
//! chain entry of `spec/store.md` section 4, a query is the message of `spec/query.md`
//! section 1, a trait is the `Trait` of `spec/store.md` section 4.
//!
//! ```
//! use exocore_protocol::store::StoreRequest;
//! use exocore_protocol::wire;
//!
//! let request = StoreRequest::Get { entity: "e1".into() };
//! let bytes = wire::encode(&request).unwrap();
//! assert_eq!(wire::decode::<StoreRequest>(&bytes).unwrap(), request);
//! ```

use bincode::{Decode, Encode};

/// A Store request (payload of a Request envelope of service Store).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum StoreRequest {
    /// Apply mutations, all or nothing, as one chain entry; answered with
    /// [`StoreResponse::Mutated`] once the entry is durable and visible to queries.
    Mutate {
        /// The entry: `Entry::Mutations` of `spec/store.md` section 4.
        entry: Vec<u8>,
    },
    /// Run a query given as the bincode message of `spec/query.md` section 1; answered with
    /// [`StoreResponse::Results`].
    Query {
        /// The encoded `Query`.
        query: Vec<u8>,
    },
    /// Run a query given in its text form (`spec/query.md` section 2); answered with
    /// [`StoreResponse::Results`].
    QueryText {
        /// The query string.
        text: String,
    },
    /// Read one entity; answered with [`StoreResponse::Entity`].
    Get {
        /// The entity id.
        entity: String,
    },
    /// Watch a query: only as the payload of a **Subscribe** envelope (a Request carrying it
    /// is refused with Error 10). Accepted with an empty Response; then every Event is a
    /// [`StoreResponse::Results`]: the current results first, then the new results each time
    /// their hash changes (`spec/protocol.md` section 9.2).
    Watch {
        /// The encoded `Query`, as in [`StoreRequest::Query`].
        query: Vec<u8>,
    },
}

/// A Store response, one variant per kind of request.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum StoreResponse {
    /// The mutations are durable in the node's pending store and applied to its index.
    Mutated {
        /// The entry's operation id (16 bytes, `spec/chain.md` section 2).
        operation: [u8; 16],
        /// The entities the mutations touched, in order of first mention, each once.
        entities: Vec<String>,
    },
    /// One page of query results (`spec/query.md` section 5).
    Results {
        /// The page, in order.
        entities: Vec<EntityState>,
        /// The text form of the cursor of the next page, when more results follow.
        next: Option<String>,
        /// How many entities match in all.
        total: u64,
        /// The page's hash (send it back as `result_hash` to skip an unchanged page).
        hash: u64,
        /// The page equals the one whose hash the query gave: `entities` is empty.
        unchanged: bool,
    },
    /// The entity asked for; `None` when no operation ever put a trait on it.
    Entity {
        /// The entity, live or deleted.
        entity: Option<EntityState>,
    },
}

/// An entity as the fold leaves it (`spec/store.md` section 5).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct EntityState {
    /// The entity id.
    pub id: String,
    /// 1 live, 2 deleted (0, absent, is never sent).
    pub status: u8,
    /// When it last became live (µs since the Unix epoch).
    pub created_us: Option<u64>,
    /// Time of the last operation that touched it.
    pub updated_us: u64,
    /// When it was deleted, if it is.
    pub deleted_us: Option<u64>,
    /// Its version: the id of the last operation that touched it.
    pub version: [u8; 16],
    /// Whether some of its operations are not committed in a block yet.
    pub pending: bool,
    /// Its traits, sorted by trait id.
    pub traits: Vec<TraitState>,
}

/// One trait of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct TraitState {
    /// The trait: `Trait` of `spec/store.md` section 4 (id, type, fields).
    pub value: Vec<u8>,
    /// When it last became live (µs).
    pub created_us: u64,
    /// Its last put (µs).
    pub updated_us: u64,
    /// When it was deleted, if it is.
    pub deleted_us: Option<u64>,
    /// The last operation that changed it.
    pub version: [u8; 16],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn layout_matches_spec() {
        let get = StoreRequest::Get {
            entity: "e1".into(),
        };
        assert_eq!(
            hex(&wire::encode(&get).unwrap()),
            "03000000020000000000000065 31".replace(' ', "")
        );
        let text = StoreRequest::QueryText {
            text: "type:task".into(),
        };
        assert_eq!(
            hex(&wire::encode(&text).unwrap()),
            "020000000900000000000000747970653a7461736b"
        );
        let mutated = StoreResponse::Mutated {
            operation: [5; 16],
            entities: vec!["e".into()],
        };
        assert_eq!(
            hex(&wire::encode(&mutated).unwrap()),
            concat!(
                "00000000",
                "05050505050505050505050505050505",
                "0100000000000000",
                "0100000000000000",
                "65"
            )
        );
        let watch = StoreRequest::Watch {
            query: vec![0xaa, 0xbb],
        };
        assert_eq!(
            hex(&wire::encode(&watch).unwrap()),
            "040000000200000000000000aabb"
        );
        let results = StoreResponse::Results {
            entities: vec![],
            next: None,
            total: 0,
            hash: 0x0102,
            unchanged: false,
        };
        assert_eq!(
            hex(&wire::encode(&results).unwrap()),
            concat!(
                "01000000",
                "0000000000000000",
                "00",
                "0000000000000000",
                "0201000000000000",
                "00"
            )
        );
        let none = StoreResponse::Entity { entity: None };
        assert_eq!(hex(&wire::encode(&none).unwrap()), "0200000000");
        let one = StoreResponse::Entity {
            entity: Some(EntityState {
                id: "e".into(),
                status: 1,
                created_us: Some(1),
                updated_us: 2,
                deleted_us: None,
                version: [7; 16],
                pending: true,
                traits: vec![TraitState {
                    value: vec![0xaa],
                    created_us: 1,
                    updated_us: 2,
                    deleted_us: None,
                    version: [7; 16],
                }],
            }),
        };
        let bytes = wire::encode(&one).unwrap();
        assert_eq!(
            hex(&bytes),
            concat!(
                "02000000",
                "01",
                "0100000000000000",
                "65",
                "01",
                "01",
                "0100000000000000",
                "0200000000000000",
                "00",
                "07070707070707070707070707070707",
                "01",
                "0100000000000000",
                "0100000000000000",
                "aa",
                "0100000000000000",
                "0200000000000000",
                "00",
                "07070707070707070707070707070707",
            )
        );
        assert_eq!(wire::decode::<StoreResponse>(&bytes).unwrap(), one);
    }
}
