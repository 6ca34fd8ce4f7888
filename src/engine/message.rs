//! The replication engine's wire messages: [`ChainMessage`], carried as the payload of
//! protocol envelopes of service `Chain`, encoded with `exocore_protocol::wire` (bincode 2,
//! fixed-width little-endian integers, u64 lengths, u32 enum tags). `spec/replication.md`
//! draws every message byte for byte.
//!
//! Decoding is bounded twice: the wire configuration refuses any length that would make the
//! decoder allocate more than a protocol message (16 MiB), and [`ChainMessage::check_bounds`]
//! refuses a decoded message whose lists are longer than this module's limits.

use bincode::{Decode, Encode};
use exocore_protocol::wire;

use crate::chain::{Block, BlockSignature, Operation, OperationId};

/// Most range items in one [`Reconcile`] message.
pub const RANGE_ITEMS_MAX: usize = 64;
/// Most operation headers in one range item; a range holding more is split instead.
pub const RANGE_HEADERS_MAX: usize = 64;
/// Sub-ranges a differing range is split into.
pub const RANGE_SPLIT: usize = 8;
/// Deepest reconciliation exchange: a session stops after this many messages back and forth.
/// Splitting by [`RANGE_SPLIT`] reaches single operations long before (8^21 > 2^63).
pub const RECONCILE_DEPTH_MAX: u8 = 32;
/// Most ids in one [`GetOperations`].
pub const GET_OPERATIONS_IDS_MAX: usize = 256;
/// Most operations in one [`Operations`] message.
pub const OPERATIONS_MAX: usize = 256;
/// Most bytes of encoded operations in one [`Operations`] message (one operation is always
/// allowed, and is at most 1 MiB).
pub const OPERATIONS_BYTES_MAX: usize = 4 << 20;
/// Most blocks in one [`Blocks`] reply.
pub const BLOCKS_MAX: usize = 32;
/// Most bytes of encoded blocks in one [`Blocks`] reply (one block is always allowed, and is
/// at most 8 MiB, so a reply fits in a 16 MiB protocol message).
pub const BLOCKS_BYTES_MAX: usize = 4 << 20;

/// Every message of the replication engine. The u32 tag is the variant's index, in order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ChainMessage {
    /// 0: the sender's chain tip, broadcast periodically.
    Status(Status),
    /// 1: a step of pending-store range reconciliation.
    Reconcile(Reconcile),
    /// 2: asks for pending operations by id.
    GetOperations(GetOperations),
    /// 3: pending operations, pushed or in answer to [`GetOperations`].
    Operations(Operations),
    /// 4: consensus phase 1a: the proposer of a round asks for promises.
    Prepare(Prepare),
    /// 5: consensus phase 1b: a promise, with the acceptor's accepted block if any.
    Promise(Promise),
    /// 6: consensus phase 2a: the proposer of a round asks to accept a block.
    Accept(Accept),
    /// 7: consensus phase 2b: the sender accepted a block in a round.
    Accepted(Accepted),
    /// 8: the sender's chain signature of the block decided at a height.
    Sign(Sign),
    /// 9: chain sync: asks for committed blocks.
    GetBlocks(GetBlocks),
    /// 10: chain sync: committed blocks, in answer to [`GetBlocks`].
    Blocks(Blocks),
}

/// A chain tip.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Status {
    /// Height of the last committed block.
    pub height: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

/// A step of range reconciliation. A session is opened by a message of depth 0; each answer
/// carries the same session id and depth + 1.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Reconcile {
    /// Chosen by the node that opened the session; echoed.
    pub session: u64,
    /// Messages exchanged so far in this session.
    pub depth: u8,
    /// Ranges of operation ids, each with a fingerprint or the sender's operation headers.
    pub items: Vec<RangeItem>,
}

/// A range of operation ids, `from` included, `to` excluded (`None`: no upper bound).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RangeItem {
    /// First id of the range.
    pub from: OperationId,
    /// First id after the range; `None` for the end of the id space.
    pub to: Option<OperationId>,
    /// What the sender has in the range.
    pub content: RangeContent,
}

/// What a node holds in a range.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum RangeContent {
    /// 0: how many pending operations, and BLAKE3 of their hashes concatenated in id order.
    Fingerprint {
        /// Number of operations.
        count: u32,
        /// The fingerprint.
        hash: [u8; 32],
    },
    /// 1: every pending operation's id and hash (at most [`RANGE_HEADERS_MAX`]).
    Headers(Vec<OperationHeader>),
}

/// An operation's id and hash ([`Operation::hash`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct OperationHeader {
    /// The id.
    pub id: OperationId,
    /// BLAKE3 of the operation's encoding.
    pub hash: [u8; 32],
}

/// Asks for pending operations.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct GetOperations {
    /// Echoed in the answer.
    pub request_id: u64,
    /// At most [`GET_OPERATIONS_IDS_MAX`].
    pub ids: Vec<OperationId>,
}

/// Pending operations.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Operations {
    /// The request answered; `None` for a push (a new local write, or the sender's side of
    /// a reconciliation).
    pub reply_to: Option<u64>,
    /// At most [`OPERATIONS_MAX`] operations and [`OPERATIONS_BYTES_MAX`] bytes.
    pub operations: Vec<Operation>,
}

/// Consensus phase 1a.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Prepare {
    /// The height being decided.
    pub height: u64,
    /// The round, greater than 0 (round 0 needs no phase 1).
    pub round: u32,
}

/// Consensus phase 1b.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Promise {
    /// The height.
    pub height: u64,
    /// The round promised: the sender accepts nothing from a lower round at this height.
    pub round: u32,
    /// The block the sender accepted at this height, in its highest round, if any.
    pub accepted: Option<AcceptedBlock>,
}

/// A block accepted in a round.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AcceptedBlock {
    /// The round it was accepted in.
    pub round: u32,
    /// The block, without signatures.
    pub block: Block,
}

/// Consensus phase 2a. The proposer accepted the block itself before sending this, so an
/// `Accept` also counts as the proposer's [`Accepted`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Accept {
    /// The height.
    pub height: u64,
    /// The round.
    pub round: u32,
    /// The proposed block, without signatures.
    pub block: Block,
}

/// Consensus phase 2b.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Accepted {
    /// The height.
    pub height: u64,
    /// The round.
    pub round: u32,
    /// Hash of the accepted block.
    pub hash: [u8; 32],
}

/// A chain node's signature of the block decided at a height.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Sign {
    /// The height.
    pub height: u64,
    /// The decided block's hash.
    pub hash: [u8; 32],
    /// The signature (its `node` is the signer).
    pub signature: BlockSignature,
}

/// Asks for committed blocks.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct GetBlocks {
    /// Echoed in the answer.
    pub request_id: u64,
    /// First height wanted (0 only by a node without a chain, to fetch the genesis).
    pub from_height: u64,
    /// At most this many blocks (the responder caps it at [`BLOCKS_MAX`]).
    pub count_max: u32,
}

/// Committed blocks.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Blocks {
    /// The request answered.
    pub request_id: u64,
    /// The responder's tip.
    pub tip: Status,
    /// Consecutive blocks from the requested height, at most [`BLOCKS_MAX`] and
    /// [`BLOCKS_BYTES_MAX`] bytes (but at least one if the responder has any); empty if the
    /// responder has none there.
    pub blocks: Vec<Block>,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError(pub String);

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad chain message: {}", self.0)
    }
}

impl std::error::Error for MessageError {}

impl ChainMessage {
    /// The wire encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MessageError> {
        wire::encode(self).map_err(|e| MessageError(e.to_string()))
    }

    /// Decodes untrusted bytes and checks the list bounds.
    pub fn from_bytes(bytes: &[u8]) -> Result<ChainMessage, MessageError> {
        let message: ChainMessage = wire::decode(bytes).map_err(|e| MessageError(e.to_string()))?;
        message.check_bounds()?;
        Ok(message)
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ChainMessage::Status(_) => "status",
            ChainMessage::Reconcile(_) => "reconcile",
            ChainMessage::GetOperations(_) => "get-operations",
            ChainMessage::Operations(_) => "operations",
            ChainMessage::Prepare(_) => "prepare",
            ChainMessage::Promise(_) => "promise",
            ChainMessage::Accept(_) => "accept",
            ChainMessage::Accepted(_) => "accepted",
            ChainMessage::Sign(_) => "sign",
            ChainMessage::GetBlocks(_) => "get-blocks",
            ChainMessage::Blocks(_) => "blocks",
        }
    }

    /// Checks the list limits of this module. The engine calls it on every input, so a
    /// message built in memory (the simulation) is held to the same bounds as decoded bytes.
    pub fn check_bounds(&self) -> Result<(), MessageError> {
        let over = |what: &str, found: usize, max: usize| {
            if found > max {
                Err(MessageError(format!(
                    "{found} {what}, over the limit of {max}"
                )))
            } else {
                Ok(())
            }
        };
        match self {
            ChainMessage::Reconcile(m) => {
                over("range items", m.items.len(), RANGE_ITEMS_MAX)?;
                if m.depth > RECONCILE_DEPTH_MAX {
                    return Err(MessageError(format!("reconcile depth {}", m.depth)));
                }
                for item in &m.items {
                    if let Some(to) = item.to {
                        if to <= item.from {
                            return Err(MessageError("an empty or inverted range".into()));
                        }
                    }
                    if let RangeContent::Headers(headers) = &item.content {
                        over("headers in a range", headers.len(), RANGE_HEADERS_MAX)?;
                    }
                }
                Ok(())
            }
            ChainMessage::GetOperations(m) => over("ids", m.ids.len(), GET_OPERATIONS_IDS_MAX),
            ChainMessage::Operations(m) => {
                over("operations", m.operations.len(), OPERATIONS_MAX)?;
                if m.operations.len() > 1 {
                    let bytes: usize = m.operations.iter().map(Operation::size_bytes).sum();
                    over("bytes of operations", bytes, OPERATIONS_BYTES_MAX)?;
                }
                Ok(())
            }
            ChainMessage::Blocks(m) => {
                over("blocks", m.blocks.len(), BLOCKS_MAX)?;
                if m.blocks.len() > 1 {
                    let bytes: usize = m.blocks.iter().map(Block::size_bytes).sum();
                    over("bytes of blocks", bytes, BLOCKS_BYTES_MAX)?;
                }
                Ok(())
            }
            ChainMessage::Prepare(m) if m.round == 0 => {
                Err(MessageError("prepare for round 0".into()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_layout_matches_the_spec() {
        let message = ChainMessage::Status(Status {
            height: 0x0102,
            hash: [0xab; 32],
        });
        let bytes = message.to_bytes().unwrap();
        let mut expected = vec![0, 0, 0, 0, 0x02, 0x01, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&[0xab; 32]);
        assert_eq!(bytes, expected);
        assert_eq!(ChainMessage::from_bytes(&bytes).unwrap(), message);
    }

    #[test]
    fn huge_claimed_counts_are_refused_not_allocated() {
        // Blocks { request_id, tip, blocks: claims 2^60 blocks }.
        let mut bytes = 10u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&7u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&[0; 32]);
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(ChainMessage::from_bytes(&bytes).is_err());
        // GetOperations claiming 2^40 ids.
        let mut bytes = 2u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&7u64.to_le_bytes());
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(ChainMessage::from_bytes(&bytes).is_err());
        // A decodable message over the list bounds.
        let ids = vec![OperationId::MIN; GET_OPERATIONS_IDS_MAX + 1];
        let message = ChainMessage::GetOperations(GetOperations { request_id: 1, ids });
        let bytes = message.to_bytes().unwrap();
        assert!(ChainMessage::from_bytes(&bytes).is_err());
    }

    #[test]
    fn truncated_and_flipped_bytes_never_panic() {
        let message = ChainMessage::Reconcile(Reconcile {
            session: 9,
            depth: 1,
            items: vec![RangeItem {
                from: OperationId::MIN,
                to: Some(OperationId::MAX),
                content: RangeContent::Headers(vec![OperationHeader {
                    id: OperationId::MAX,
                    hash: [1; 32],
                }]),
            }],
        });
        let bytes = message.to_bytes().unwrap();
        assert_eq!(ChainMessage::from_bytes(&bytes).unwrap(), message);
        for len in 0..bytes.len() {
            assert!(ChainMessage::from_bytes(&bytes[..len]).is_err());
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x80;
            let _ = ChainMessage::from_bytes(&flipped);
        }
    }
}
