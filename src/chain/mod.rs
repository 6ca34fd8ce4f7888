//! The chain: the cell's signed, append-only record of operations, and its storage.
//!
//! The format is specified byte for byte in `spec/chain.md`, with test vectors in
//! `fixtures/chain/`. This module is the format and the storage; the replication engine
//! (`src/engine/`) builds on it.
//!
//! ```
//! use exo::chain::{Block, EntryKey, IdGenerator, Membership, Operation};
//! use exocore_protocol::identity::Keypair;
//!
//! let cell = Keypair::generate();
//! let node = Keypair::generate();
//! let membership = Membership::new(cell.public(), vec![node.public()], vec![node.public()]);
//! let key = EntryKey::from_cell_keypair(&cell);
//!
//! // A node writes an entry...
//! let mut ids = IdGenerator::new(&node.public(), 0);
//! let id = ids.next(1_767_225_600_000_000).unwrap();
//! let op = Operation::new_entry(&cell.public(), &key, id, &node, b"hello").unwrap();
//! op.verify(&membership).unwrap();
//!
//! // ...which a majority of chain nodes commit in a block after genesis.
//! let genesis = Block::genesis(&cell, 1_767_225_600_000_000);
//! let mut block = Block::propose(&genesis.header, &node.public(), 1_767_225_601_000_000, vec![op])
//!     .unwrap();
//! block.sign(&cell.public(), &node);
//! block.verify(&genesis.header, &membership).unwrap();
//! assert_eq!(block.operations[0].open_entry(&key).unwrap(), b"hello");
//! ```
//!
//! Code map: [`id`] (operation ids and the hybrid logical clock), [`operation`], [`block`],
//! [`crypto`] (signing domains, entry encryption), [`membership`] (signed node lists, payload
//! kind 1), [`verify`] (membership and every check),
//! [`store`] (LMDB), [`error`], `encoding` (the bincode configuration).
//!
//! Architecture invariant: everything here but [`store`] is pure: no I/O, no clock. Times are
//! arguments.

pub mod archive;
pub mod block;
pub mod crypto;
mod encoding;
pub mod error;
pub mod id;
pub mod membership;
pub mod operation;
pub mod store;
pub mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub use block::{Block, BlockHeader, BlockSignature};
pub use crypto::EntryKey;
pub use encoding::hex;
pub use error::{ChainError, DecodeError, EntryError, IdError, StoreError, VerifyError};
pub use id::{node_tag, IdGenerator, OperationId};
pub use membership::{MembershipDocument, SignedMembership};
pub use operation::{Operation, Payload};
pub use store::{Batch, ChainStore, Location, PutOutcome};
pub use verify::Membership;

/// Largest encoded operation: 1 MiB. Larger user data is split by the store layer; the limit
/// keeps one operation small next to a Pi's memory and a block's size.
pub const OPERATION_SIZE_BYTES_MAX: usize = 1 << 20;

/// Largest number of operations in one block.
pub const BLOCK_OPERATIONS_MAX: usize = 4096;

/// Largest number of signatures on one block, hence of chain nodes in a cell.
pub const BLOCK_SIGNATURES_MAX: usize = 64;

/// Largest encoded block: 8 MiB, so a block with its envelope fits in one protocol message
/// (16 MiB) with room to spare.
pub const BLOCK_SIZE_BYTES_MAX: usize = 8 << 20;

/// Largest total size of a block's encoded operations: the block limit minus the header,
/// the two u64 counts and a full set of signatures, so signing never pushes a block over
/// [`BLOCK_SIZE_BYTES_MAX`].
pub const BLOCK_OPERATIONS_BYTES_MAX: usize = BLOCK_SIZE_BYTES_MAX
    - block::BLOCK_HEADER_LEN
    - 16
    - BLOCK_SIGNATURES_MAX * block::BLOCK_SIGNATURE_LEN;

/// The chain folder of a cell folder: `<cell dir>/chain/`.
pub fn chain_dir(cell_dir: &std::path::Path) -> std::path::PathBuf {
    cell_dir.join("chain")
}
