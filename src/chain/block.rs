//! Blocks: a header linking to the previous block, the operations it commits in id order,
//! and the signatures of the chain nodes that committed it.
//!
//! Encoding (`spec/chain.md`), integers little-endian:
//!
//! ```text
//! header (116 bytes)
//!   height           u64
//!   previous         32   BLAKE3 of the previous header's encoding; zeros for genesis
//!   operations_hash  32   BLAKE3(hash(op_0) || hash(op_1) || ...), hash(op) = BLAKE3(op)
//!   operation_count  u32
//!   proposer         32   the chain node that built it (the cell key for genesis)
//!   time_us          u64  the proposer's clock, never before the previous block's
//! operations         u64 count, then each operation's encoding, in strictly increasing id order
//! signatures         u64 count, then each: node 32, signature 64, ed25519 over
//!                    "exocore/block/v1" || cell id || block hash
//! ```
//!
//! The block hash is BLAKE3 of the header's encoding: it covers the operations through
//! `operations_hash`, but not the signatures, which are added as chain nodes sign.

// `VerifyError` carries public keys (about 200 bytes). It is returned once, on the cold path,
// after checks (signature verifications) that cost far more than moving it.
#![allow(clippy::result_large_err)]

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError as BincodeDecodeError, EncodeError};
use bincode::{Decode, Encode};
use exocore_protocol::identity::{Keypair, PublicKey};

use super::crypto::{signed_message, BLOCK_DOMAIN};
use super::encoding::{self, decode_key};
use super::error::{DecodeError, VerifyError};
use super::operation::Operation;
use super::{
    BLOCK_OPERATIONS_BYTES_MAX, BLOCK_OPERATIONS_MAX, BLOCK_SIGNATURES_MAX, BLOCK_SIZE_BYTES_MAX,
};

/// Encoded size of a block header.
pub const BLOCK_HEADER_LEN: usize = 8 + 32 + 32 + 4 + 32 + 8;

/// Encoded size of one block signature.
pub const BLOCK_SIGNATURE_LEN: usize = 32 + 64;

/// A block's header: everything its hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// 0 for genesis, then previous height + 1.
    pub height: u64,
    /// Hash of the previous block's header; zeros for genesis.
    pub previous: [u8; 32],
    /// See [`operations_hash`].
    pub operations_hash: [u8; 32],
    /// Number of operations in the block.
    pub operation_count: u32,
    /// The chain node that proposed the block; the cell key for genesis.
    pub proposer: PublicKey,
    /// The proposer's clock when proposing, in microseconds; never before the previous
    /// block's.
    pub time_us: u64,
}

impl BlockHeader {
    /// The 116-byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes untrusted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<BlockHeader, DecodeError> {
        encoding::decode("block header", bytes, BLOCK_HEADER_LEN)
    }

    /// The block hash: BLAKE3 of the header's encoding.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.to_bytes()).as_bytes()
    }
}

impl Encode for BlockHeader {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.height.encode(encoder)?;
        self.previous.encode(encoder)?;
        self.operations_hash.encode(encoder)?;
        self.operation_count.encode(encoder)?;
        self.proposer.to_bytes().encode(encoder)?;
        self.time_us.encode(encoder)
    }
}

impl<Context> Decode<Context> for BlockHeader {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, BincodeDecodeError> {
        Ok(BlockHeader {
            height: u64::decode(decoder)?,
            previous: <[u8; 32]>::decode(decoder)?,
            operations_hash: <[u8; 32]>::decode(decoder)?,
            operation_count: u32::decode(decoder)?,
            proposer: decode_key(decoder)?,
            time_us: u64::decode(decoder)?,
        })
    }
}

bincode::impl_borrow_decode!(BlockHeader);

/// One chain node's signature of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSignature {
    /// The signing node (the cell key for genesis).
    pub node: PublicKey,
    /// ed25519 over [`block_signed_bytes`].
    pub signature: [u8; 64],
}

impl BlockSignature {
    /// `node`'s signature of the block with hash `hash` in `cell`.
    pub fn new(cell: &PublicKey, hash: &[u8; 32], node: &Keypair) -> BlockSignature {
        BlockSignature {
            node: node.public(),
            signature: node.sign(&block_signed_bytes(cell, hash)),
        }
    }

    /// Whether this is `node`'s valid signature of the block with hash `hash` in `cell`.
    pub fn is_valid(&self, cell: &PublicKey, hash: &[u8; 32]) -> bool {
        self.node
            .verify(&block_signed_bytes(cell, hash), &self.signature)
    }
}

impl Encode for BlockSignature {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.node.to_bytes().encode(encoder)?;
        self.signature.encode(encoder)
    }
}

impl<Context> Decode<Context> for BlockSignature {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, BincodeDecodeError> {
        Ok(BlockSignature {
            node: decode_key(decoder)?,
            signature: <[u8; 64]>::decode(decoder)?,
        })
    }
}

bincode::impl_borrow_decode!(BlockSignature);

/// What a chain node signs to commit a block: `"exocore/block/v1" || cell id || hash`.
pub fn block_signed_bytes(cell: &PublicKey, hash: &[u8; 32]) -> Vec<u8> {
    signed_message(BLOCK_DOMAIN, cell, hash)
}

/// The header's `operations_hash` of `operations`: BLAKE3 of their hashes concatenated in
/// order. Hashing hashes lets a node check a block against operations it already holds (pending
/// sync exchanges operation hashes) without re-encoding them.
pub fn operations_hash(operations: &[Operation]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for operation in operations {
        hasher.update(&operation.hash());
    }
    *hasher.finalize().as_bytes()
}

/// A block: header, operations, signatures.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Block {
    /// What the hash covers.
    pub header: BlockHeader,
    /// The operations, in strictly increasing id order.
    pub operations: Vec<Operation>,
    /// Signatures by distinct chain nodes (the cell key alone for genesis).
    pub signatures: Vec<BlockSignature>,
}

impl Block {
    /// The genesis block of `cell`: height 0, no operations, proposed and signed by the cell
    /// key. Created once, by `exo cell init`; every chain of the cell starts with it.
    pub fn genesis(cell: &Keypair, time_us: u64) -> Block {
        let mut block = Block {
            header: BlockHeader {
                height: 0,
                previous: [0; 32],
                operations_hash: operations_hash(&[]),
                operation_count: 0,
                proposer: cell.public(),
                time_us,
            },
            operations: Vec::new(),
            signatures: Vec::new(),
        };
        block.sign(&cell.public(), cell);
        block
    }

    /// An unsigned block proposed by `proposer` after `previous`, carrying `operations`
    /// (sorted here; an operation given twice is kept once). Its time is
    /// `max(time_us, previous.time_us)`. Refuses two different operations with one id and a
    /// block over the limits.
    pub fn propose(
        previous: &BlockHeader,
        proposer: &PublicKey,
        time_us: u64,
        mut operations: Vec<Operation>,
    ) -> Result<Block, VerifyError> {
        let height = previous.height.saturating_add(1);
        operations.sort_by_key(|op| op.id);
        operations.dedup();
        if let Some(pair) = operations.windows(2).find(|pair| pair[0].id == pair[1].id) {
            return Err(VerifyError::DuplicateOperation {
                height,
                id: pair[0].id,
            });
        }
        check_operation_limits(height, &operations)?;
        Ok(Block {
            header: BlockHeader {
                height,
                previous: previous.hash(),
                operations_hash: operations_hash(&operations),
                // Bounded by BLOCK_OPERATIONS_MAX just above.
                operation_count: operations.len() as u32,
                proposer: *proposer,
                time_us: time_us.max(previous.time_us),
            },
            operations,
            signatures: Vec::new(),
        })
    }

    /// The block hash, [`BlockHeader::hash`].
    pub fn hash(&self) -> [u8; 32] {
        self.header.hash()
    }

    /// The block's height.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Adds `node`'s signature (replacing an earlier one by the same node).
    pub fn sign(&mut self, cell: &PublicKey, node: &Keypair) {
        let signature = BlockSignature::new(cell, &self.hash(), node);
        self.add_signature(signature);
    }

    /// Adds a signature received from a node (replacing an earlier one by the same node).
    /// Does not check it: [`Block::verify`](super::verify) does.
    pub fn add_signature(&mut self, signature: BlockSignature) {
        self.signatures.retain(|s| s.node != signature.node);
        self.signatures.push(signature);
    }

    /// The encoding (`spec/chain.md`).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes untrusted bytes. Checks the format and the size limit only: call
    /// [`Block::verify`](super::verify) before trusting the result.
    pub fn from_bytes(bytes: &[u8]) -> Result<Block, DecodeError> {
        encoding::decode("block", bytes, BLOCK_SIZE_BYTES_MAX)
    }

    /// Encoded size in bytes.
    pub fn size_bytes(&self) -> usize {
        BLOCK_HEADER_LEN
            + 8
            + self
                .operations
                .iter()
                .map(Operation::size_bytes)
                .sum::<usize>()
            + 8
            + self.signatures.len() * BLOCK_SIGNATURE_LEN
    }
}

/// Checks the count and size limits of a block's operations.
pub(crate) fn check_operation_limits(
    height: u64,
    operations: &[Operation],
) -> Result<(), VerifyError> {
    if operations.len() > BLOCK_OPERATIONS_MAX {
        return Err(VerifyError::BlockTooLarge {
            height,
            reason: format!(
                "{} operations, over the limit of {BLOCK_OPERATIONS_MAX}",
                operations.len()
            ),
        });
    }
    let size: usize = operations.iter().map(Operation::size_bytes).sum();
    if size > BLOCK_OPERATIONS_BYTES_MAX {
        return Err(VerifyError::BlockTooLarge {
            height,
            reason: format!(
                "operations of {size} bytes, over the limit of {BLOCK_OPERATIONS_BYTES_MAX} bytes"
            ),
        });
    }
    Ok(())
}

/// Checks the signature count limit.
pub(crate) fn check_signature_limit(block: &Block) -> Result<(), VerifyError> {
    if block.signatures.len() > BLOCK_SIGNATURES_MAX {
        return Err(VerifyError::BlockTooLarge {
            height: block.header.height,
            reason: format!(
                "{} signatures, over the limit of {BLOCK_SIGNATURES_MAX}",
                block.signatures.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{EntryKey, OperationId};

    #[test]
    fn header_is_116_bytes_and_round_trips() {
        let cell = Keypair::generate();
        let genesis = Block::genesis(&cell, 42);
        let bytes = genesis.header.to_bytes();
        assert_eq!(bytes.len(), BLOCK_HEADER_LEN);
        assert_eq!(BlockHeader::from_bytes(&bytes).unwrap(), genesis.header);
        assert_eq!(genesis.hash(), *blake3::hash(&bytes).as_bytes());
        let block_bytes = genesis.to_bytes();
        assert_eq!(block_bytes.len(), genesis.size_bytes());
        assert_eq!(Block::from_bytes(&block_bytes).unwrap(), genesis);
        assert_eq!(
            genesis.header.operations_hash,
            *blake3::hash(b"").as_bytes()
        );
    }

    #[test]
    fn propose_sorts_dedups_and_links() {
        let cell = Keypair::generate();
        let node = Keypair::generate();
        let key = EntryKey::from_cell_keypair(&cell);
        let genesis = Block::genesis(&cell, 100);
        let ops: Vec<Operation> = [3u64, 1, 2, 1]
            .iter()
            .map(|t| {
                Operation::new_entry(
                    &cell.public(),
                    &key,
                    OperationId::new(*t, &node.public()),
                    &node,
                    b"x",
                )
                .unwrap()
            })
            .collect();
        let block = Block::propose(&genesis.header, &node.public(), 50, ops.clone()).unwrap();
        assert_eq!(block.header.height, 1);
        assert_eq!(block.header.previous, genesis.hash());
        assert_eq!(block.header.time_us, 100);
        assert_eq!(block.operations.len(), 3);
        assert!(block.operations.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(block.header.operation_count, 3);
        // Two different operations with one id.
        let mut clash = ops[0].clone();
        clash.signature[0] ^= 1;
        assert!(matches!(
            Block::propose(
                &genesis.header,
                &node.public(),
                50,
                vec![ops[0].clone(), clash]
            ),
            Err(VerifyError::DuplicateOperation { .. })
        ));
    }

    #[test]
    fn untrusted_block_bytes_never_panic() {
        let cell = Keypair::generate();
        let bytes = Block::genesis(&cell, 1).to_bytes();
        for len in 0..bytes.len() {
            assert!(Block::from_bytes(&bytes[..len]).is_err());
        }
        // An operation count claiming 2^40 operations.
        let mut huge = bytes.clone();
        huge[BLOCK_HEADER_LEN + 5] = 1;
        assert!(Block::from_bytes(&huge).is_err());
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x04;
            let _ = Block::from_bytes(&flipped);
        }
    }
}
