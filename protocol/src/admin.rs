//! The CellAdmin service's messages: asking a node about its links to the cell's other nodes,
//! writing entries, changing the cell's membership.
//! Encoded with [`crate::wire::CONFIG`]; specified in `spec/protocol.md`, section 9.1.

use bincode::{Decode, Encode};

/// A CellAdmin request.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum AdminRequest {
    /// Ping every other node of the cell over this node's links and report each.
    PingPeers,
    /// Write `payload` as a new entry of the cell's chain: encrypted with the cell's entry
    /// key, signed by this node, durable in its pending store, then committed with the other
    /// chain nodes. A low-level tool until the store's mutations exist.
    AppendEntry {
        /// The entry's plaintext.
        payload: Vec<u8>,
    },
    /// Report this node's state in the cell: roles, chain, links, index, apps (`exo status`).
    Status,
    /// Commit a new membership document of the cell: this node wraps it in an operation
    /// (payload kind 1, `spec/chain.md` section 6), writes it, and answers once a block
    /// carrying it is committed and the change took effect (or why not).
    ChangeMembership {
        /// The signed document's encoding (`spec/chain.md` section 6).
        document: Vec<u8>,
    },
}

/// A CellAdmin response, one variant per request.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum AdminResponse {
    /// The answer to [`AdminRequest::PingPeers`], one entry per other node of the cell.
    PingPeers {
        /// In the order of the cell's node list.
        peers: Vec<PeerPing>,
    },
    /// The answer to [`AdminRequest::AppendEntry`]: the entry is durable on this node.
    Appended {
        /// The new operation's id (16 bytes, `spec/chain.md` section 2).
        operation: [u8; 16],
    },
    /// The answer to [`AdminRequest::Status`].
    Status(CellStatus),
    /// The answer to [`AdminRequest::ChangeMembership`]: the change is committed.
    MembershipChanged {
        /// The membership version now in force.
        version: u64,
        /// The height of the block that committed it; the change applies from the next one.
        height: u64,
    },
}

/// One node's state in one cell, as its daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CellStatus {
    /// The node's roles in the cell, by name (`chain`, `store`, `app-host`).
    pub roles: Vec<String>,
    /// Microseconds since the daemon started.
    pub uptime_us: u64,
    /// The chain, on a chain node.
    pub chain: Option<ChainStatus>,
    /// Every other node of the cell with a role, in the cell's order.
    pub peers: Vec<PeerStatus>,
    /// The entity index, on a store node.
    pub store: Option<StoreStatus>,
    /// The cell's apps on an app-host node.
    pub apps: Vec<AppStatus>,
}

/// The chain of a cell on one node.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ChainStatus {
    /// `running`, or why the chain does not run (e.g. fetching the genesis).
    pub state: String,
    /// Height of the last committed block.
    pub height: u64,
    /// Its hash.
    pub last_block: [u8; 32],
    /// Its time, µs since the Unix epoch.
    pub last_block_time_us: u64,
    /// Operations in the pending store.
    pub pending_operations: u64,
    /// Bytes the chain's storage uses on disk.
    pub size_bytes: u64,
    /// Chain nodes of the cell, and the signatures a block needs.
    pub chain_nodes: u32,
    /// Signatures a block needs.
    pub quorum: u32,
}

impl ChainStatus {
    /// A chain with no block known yet (or not running): only why, and the membership's
    /// chain node count and quorum.
    pub fn without_blocks(state: impl Into<String>, chain_nodes: u32, quorum: u32) -> ChainStatus {
        ChainStatus {
            state: state.into(),
            height: 0,
            last_block: [0; 32],
            last_block_time_us: 0,
            pending_operations: 0,
            size_bytes: 0,
            chain_nodes,
            quorum,
        }
    }
}

/// Another node of the cell, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PeerStatus {
    /// Its ed25519 public key.
    pub node: [u8; 32],
    /// Its name in the cell.
    pub name: String,
    /// Whether a link to it is up.
    pub connected: bool,
    /// When this node last received anything from it, µs since the Unix epoch.
    pub last_seen_us: Option<u64>,
    /// The chain height it last announced (chain nodes).
    pub height: Option<u64>,
    /// Why it is not connected (the last dial error), or empty.
    pub error: String,
}

/// The entity index of a cell on one node.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct StoreStatus {
    /// `ready`, `busy` (catching up or rebuilding: it did not answer in time), or why it
    /// does not run.
    pub state: String,
    /// Live entities in the index (when `ready`).
    pub entities: u64,
}

/// One app of the cell on an app-host node.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AppStatus {
    /// Its name.
    pub name: String,
    /// `running`, `sleeping`, `restarting`, or why it stopped.
    pub state: String,
}

/// How one node of the cell answered a ping.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PeerPing {
    /// The node's ed25519 public key.
    pub node: [u8; 32],
    /// Round trip in microseconds, if it answered.
    pub rtt_us: Option<u64>,
    /// Why it did not answer (empty if it did): not connected and the last dial error, or the
    /// ping's failure.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn layout_matches_spec() {
        assert_eq!(
            wire::encode(&AdminRequest::PingPeers).unwrap(),
            [0, 0, 0, 0]
        );
        let response = AdminResponse::PingPeers {
            peers: vec![PeerPing {
                node: [9; 32],
                rtt_us: Some(0x0201),
                error: String::new(),
            }],
        };
        let bytes = wire::encode(&response).unwrap();
        let mut expected = vec![0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&[9; 32]);
        expected.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0; 8]);
        assert_eq!(bytes, expected);
        assert_eq!(wire::decode::<AdminResponse>(&bytes).unwrap(), response);

        let append = AdminRequest::AppendEntry { payload: vec![7] };
        assert_eq!(
            wire::encode(&append).unwrap(),
            [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        let change = AdminRequest::ChangeMembership { document: vec![8] };
        assert_eq!(
            wire::encode(&change).unwrap(),
            [3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8]
        );
        let changed = AdminResponse::MembershipChanged {
            version: 3,
            height: 0x0102,
        };
        let mut expected = vec![3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(wire::encode(&changed).unwrap(), expected);
        let appended = AdminResponse::Appended { operation: [5; 16] };
        let mut expected = vec![1, 0, 0, 0];
        expected.extend_from_slice(&[5; 16]);
        assert_eq!(wire::encode(&appended).unwrap(), expected);

        assert_eq!(wire::encode(&AdminRequest::Status).unwrap(), [2, 0, 0, 0]);
        let status = AdminResponse::Status(CellStatus {
            roles: vec!["chain".into()],
            uptime_us: 1,
            chain: None,
            peers: vec![],
            store: Some(StoreStatus {
                state: "ready".into(),
                entities: 3,
            }),
            apps: vec![],
        });
        let mut expected = vec![2, 0, 0, 0];
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"chain");
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // uptime_us
        expected.push(0); // chain: None
        expected.extend_from_slice(&[0; 8]); // no peers
        expected.extend_from_slice(&[1, 5, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"ready");
        expected.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0; 8]); // no apps
        assert_eq!(wire::encode(&status).unwrap(), expected);
        assert_eq!(wire::decode::<AdminResponse>(&expected).unwrap(), status);
    }
}
