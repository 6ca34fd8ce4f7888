//! Errors of the chain, one enum per kind of operation, and the umbrella [`ChainError`].
//!
//! Every message says what went wrong in words an operator reading a log line understands,
//! and names the height, operation id or key involved when there is one.

use std::fmt;
use std::path::PathBuf;

use exocore_protocol::identity::PublicKey;

use super::id::OperationId;

/// Bytes from the network or the disk could not be decoded. Never a panic: untrusted bytes
/// always end here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes do not follow the format of `spec/chain.md`.
    Malformed {
        /// What was being decoded (`"operation"`, `"block"`, ...).
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// The value was decoded but bytes remain after it.
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes remain.
        count: usize,
    },
    /// The bytes are longer than any valid value of this kind.
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Their length.
        size_bytes: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed { what, reason } => write!(f, "malformed {what}: {reason}"),
            DecodeError::TrailingBytes { what, count } => {
                write!(
                    f,
                    "malformed {what}: {count} unexpected bytes after its end"
                )
            }
            DecodeError::TooLarge {
                what,
                size_bytes,
                max,
            } => write!(
                f,
                "{what} of {size_bytes} bytes is over the limit of {max} bytes"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// An operation id could not be issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// The clock reached the largest representable time: no id can be issued after it.
    /// Only a corrupted or malicious time stamp can lead here.
    ClockExhausted,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::ClockExhausted => write!(
                f,
                "the operation clock reached its largest value; no further id can be issued"
            ),
        }
    }
}

impl std::error::Error for IdError {}

/// An entry could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// Decryption failed: the key is not this cell's entry key, or the ciphertext, the
    /// operation id or the author was altered. The AEAD cannot tell these apart.
    Decrypt {
        /// The operation whose entry was being opened.
        id: OperationId,
    },
    /// The ciphertext is shorter than the 16-byte authentication tag.
    TooShort {
        /// The operation whose entry was being opened.
        id: OperationId,
        /// Its length.
        size_bytes: usize,
    },
    /// The operation does not carry an entry.
    NotAnEntry {
        /// The operation.
        id: OperationId,
    },
    /// The sealed entry would make the operation larger than
    /// [`OPERATION_SIZE_BYTES_MAX`](super::OPERATION_SIZE_BYTES_MAX).
    TooLarge {
        /// The plaintext's length.
        size_bytes: usize,
        /// The largest plaintext that fits.
        max: usize,
    },
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Decrypt { id } => write!(
                f,
                "cannot decrypt the entry of operation {id}: wrong cell key, or the entry was altered"
            ),
            EntryError::TooShort { id, size_bytes } => write!(
                f,
                "the entry of operation {id} is {size_bytes} bytes, too short to be sealed"
            ),
            EntryError::NotAnEntry { id } => write!(f, "operation {id} carries no entry"),
            EntryError::TooLarge { size_bytes, max } => write!(
                f,
                "entry of {size_bytes} bytes is over the limit of {max} bytes"
            ),
        }
    }
}

impl std::error::Error for EntryError {}

/// An operation or a block failed verification. Nothing that fails verification is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The operation's author is not a member of the cell.
    UnknownAuthor {
        /// The operation.
        id: OperationId,
        /// Its claimed author.
        author: PublicKey,
    },
    /// The id's node part is not derived from the author's key: another node's ids.
    ForeignId {
        /// The operation.
        id: OperationId,
        /// Its claimed author.
        author: PublicKey,
    },
    /// The operation's signature does not verify: forged, altered, or made for another cell.
    BadOperationSignature {
        /// The operation.
        id: OperationId,
    },
    /// The operation is over [`OPERATION_SIZE_BYTES_MAX`](super::OPERATION_SIZE_BYTES_MAX).
    OperationTooLarge {
        /// The operation.
        id: OperationId,
        /// Its encoded size.
        size_bytes: usize,
    },
    /// The block's height is not the previous block's height plus one.
    BadHeight {
        /// The height expected after the previous block.
        expected: u64,
        /// The block's height.
        found: u64,
    },
    /// The block does not link to the previous block's hash.
    BadPrevious {
        /// The block's height.
        height: u64,
    },
    /// The block's time is before the previous block's time.
    TimeBeforePrevious {
        /// The block's height.
        height: u64,
    },
    /// The header's operation count differs from the operations carried.
    CountMismatch {
        /// The block's height.
        height: u64,
        /// The count in the header.
        header: u32,
        /// The operations carried.
        carried: usize,
    },
    /// The block carries too many operations or is too large.
    BlockTooLarge {
        /// The block's height.
        height: u64,
        /// Why, in words.
        reason: String,
    },
    /// Operations are not in strictly increasing id order.
    Unsorted {
        /// The block's height.
        height: u64,
        /// The first operation out of order.
        id: OperationId,
    },
    /// The same operation id appears twice.
    DuplicateOperation {
        /// The block's height.
        height: u64,
        /// The repeated id.
        id: OperationId,
    },
    /// The header's operations hash does not match the operations.
    BadOperationsHash {
        /// The block's height.
        height: u64,
    },
    /// An operation inside the block failed verification.
    Operation {
        /// The block's height.
        height: u64,
        /// Why.
        error: Box<VerifyError>,
    },
    /// The proposer is not a chain node of the cell.
    ProposerNotChainNode {
        /// The block's height.
        height: u64,
        /// The proposer.
        proposer: PublicKey,
    },
    /// A signer is not a chain node of the cell.
    SignerNotChainNode {
        /// The block's height.
        height: u64,
        /// The signer.
        node: PublicKey,
    },
    /// A node signed twice.
    DuplicateSigner {
        /// The block's height.
        height: u64,
        /// The signer.
        node: PublicKey,
    },
    /// A block signature does not verify.
    BadBlockSignature {
        /// The block's height.
        height: u64,
        /// The claimed signer.
        node: PublicKey,
    },
    /// Not enough chain nodes signed for the block to be committed.
    TooFewSignatures {
        /// The block's height.
        height: u64,
        /// Valid signatures from distinct chain nodes.
        found: usize,
        /// The strict majority required.
        required: usize,
    },
    /// A membership change is unusable or not signed by the cell key.
    BadMembership {
        /// The operation carrying it.
        id: OperationId,
        /// Why, in words.
        reason: String,
    },
    /// The genesis block is malformed: wrong height, previous hash, operations, proposer or
    /// signature.
    BadGenesis {
        /// Why, in words.
        reason: &'static str,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::UnknownAuthor { id, author } => {
                write!(f, "operation {id}: author {author} is not a member of the cell")
            }
            VerifyError::BadMembership { id, reason } => {
                write!(f, "operation {id}: refused membership change: {reason}")
            }
            VerifyError::ForeignId { id, author } => write!(
                f,
                "operation {id}: the id's node part does not belong to author {author}"
            ),
            VerifyError::BadOperationSignature { id } => write!(
                f,
                "operation {id}: bad signature (forged, altered, or from another cell)"
            ),
            VerifyError::OperationTooLarge { id, size_bytes } => write!(
                f,
                "operation {id}: {size_bytes} bytes is over the limit of {} bytes",
                super::OPERATION_SIZE_BYTES_MAX
            ),
            VerifyError::BadHeight { expected, found } => {
                write!(f, "block at height {found}: expected height {expected}")
            }
            VerifyError::BadPrevious { height } => write!(
                f,
                "block at height {height}: does not link to the previous block's hash"
            ),
            VerifyError::TimeBeforePrevious { height } => write!(
                f,
                "block at height {height}: its time is before the previous block's"
            ),
            VerifyError::CountMismatch {
                height,
                header,
                carried,
            } => write!(
                f,
                "block at height {height}: header counts {header} operations, block carries {carried}"
            ),
            VerifyError::BlockTooLarge { height, reason } => {
                write!(f, "block at height {height}: {reason}")
            }
            VerifyError::Unsorted { height, id } => write!(
                f,
                "block at height {height}: operation {id} is out of order"
            ),
            VerifyError::DuplicateOperation { height, id } => write!(
                f,
                "block at height {height}: operation {id} appears twice"
            ),
            VerifyError::BadOperationsHash { height } => write!(
                f,
                "block at height {height}: operations do not match the header's hash"
            ),
            VerifyError::Operation { height, error } => {
                write!(f, "block at height {height}: {error}")
            }
            VerifyError::ProposerNotChainNode { height, proposer } => write!(
                f,
                "block at height {height}: proposer {proposer} is not a chain node"
            ),
            VerifyError::SignerNotChainNode { height, node } => write!(
                f,
                "block at height {height}: signer {node} is not a chain node"
            ),
            VerifyError::DuplicateSigner { height, node } => {
                write!(f, "block at height {height}: {node} signed twice")
            }
            VerifyError::BadBlockSignature { height, node } => write!(
                f,
                "block at height {height}: bad signature by {node}"
            ),
            VerifyError::TooFewSignatures {
                height,
                found,
                required,
            } => write!(
                f,
                "block at height {height}: {found} chain-node signatures, {required} required"
            ),
            VerifyError::BadGenesis { reason } => write!(f, "genesis block: {reason}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Reading or writing the chain's LMDB environment failed.
#[derive(Debug)]
pub enum StoreError {
    /// LMDB (or the file system under it) failed.
    Lmdb {
        /// What the store was doing.
        action: &'static str,
        /// LMDB's error.
        source: heed::Error,
    },
    /// Creating the chain folder failed.
    Io {
        /// The folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The chain on disk was written by another version of the format.
    UnsupportedFormat {
        /// The version found on disk.
        found: u32,
        /// The version this program reads.
        supported: u32,
    },
    /// A stored value is damaged (a bit flip, a truncated value, an inconsistent index).
    Corrupt {
        /// Which value, e.g. `block at height 12`.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The block does not extend the stored chain.
    NotNext {
        /// The height the next block must have.
        expected: u64,
        /// The block's height.
        found: u64,
    },
    /// The block's previous hash is not the hash of the stored last block.
    WrongPrevious {
        /// The block's height.
        height: u64,
    },
    /// The block is invalid (boxed: verification errors carry public keys).
    Invalid(Box<VerifyError>),
    /// The block carries an operation already committed at another height.
    AlreadyCommitted {
        /// The operation.
        id: OperationId,
        /// Where it is committed.
        height: u64,
    },
    /// The map cannot grow any further on this machine.
    MapLimit {
        /// The current map size.
        size_bytes: usize,
    },
    /// An operation id could not be issued.
    Id(IdError),
    /// An operation is over [`OPERATION_SIZE_BYTES_MAX`](super::OPERATION_SIZE_BYTES_MAX).
    OperationTooLarge {
        /// The operation.
        id: OperationId,
        /// Its encoded size.
        size_bytes: usize,
    },
    /// A consensus vote is over [`VOTE_SIZE_BYTES_MAX`](super::store::VOTE_SIZE_BYTES_MAX).
    VoteTooLarge {
        /// Its encoded size.
        size_bytes: usize,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Lmdb { action, source } => write!(f, "chain storage: {action}: {source}"),
            StoreError::Io { path, source } => {
                write!(f, "chain storage: {}: {source}", path.display())
            }
            StoreError::UnsupportedFormat { found, supported } => write!(
                f,
                "chain storage is format version {found}; this program reads version {supported}"
            ),
            StoreError::Corrupt { what, reason } => {
                write!(f, "chain storage is damaged: {what}: {reason}")
            }
            StoreError::NotNext { expected, found } => write!(
                f,
                "block at height {found} does not extend the chain (next height is {expected})"
            ),
            StoreError::WrongPrevious { height } => write!(
                f,
                "block at height {height} does not link to the stored previous block"
            ),
            StoreError::Invalid(e) => write!(f, "refused: {e}"),
            StoreError::AlreadyCommitted { id, height } => {
                write!(f, "operation {id} is already committed at height {height}")
            }
            StoreError::MapLimit { size_bytes } => write!(
                f,
                "chain storage is full: its map of {size_bytes} bytes cannot grow on this machine"
            ),
            StoreError::Id(e) => write!(f, "{e}"),
            StoreError::OperationTooLarge { id, size_bytes } => write!(
                f,
                "operation {id}: {size_bytes} bytes is over the limit of {} bytes",
                super::OPERATION_SIZE_BYTES_MAX
            ),
            StoreError::VoteTooLarge { size_bytes } => write!(
                f,
                "consensus vote of {size_bytes} bytes is over the limit of {} bytes",
                super::store::VOTE_SIZE_BYTES_MAX
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Lmdb { source, .. } => Some(source),
            StoreError::Io { source, .. } => Some(source),
            StoreError::Invalid(e) => Some(&**e),
            StoreError::Id(e) => Some(e),
            _ => None,
        }
    }
}

impl From<VerifyError> for StoreError {
    fn from(e: VerifyError) -> StoreError {
        StoreError::Invalid(Box::new(e))
    }
}

impl From<IdError> for StoreError {
    fn from(e: IdError) -> StoreError {
        StoreError::Id(e)
    }
}

/// Any error of the chain module.
#[derive(Debug)]
pub enum ChainError {
    /// See [`DecodeError`].
    Decode(DecodeError),
    /// See [`IdError`].
    Id(IdError),
    /// See [`EntryError`].
    Entry(EntryError),
    /// See [`VerifyError`].
    Verify(VerifyError),
    /// See [`StoreError`].
    Store(StoreError),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Decode(e) => e.fmt(f),
            ChainError::Id(e) => e.fmt(f),
            ChainError::Entry(e) => e.fmt(f),
            ChainError::Verify(e) => e.fmt(f),
            ChainError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ChainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChainError::Decode(e) => Some(e),
            ChainError::Id(e) => Some(e),
            ChainError::Entry(e) => Some(e),
            ChainError::Verify(e) => Some(e),
            ChainError::Store(e) => Some(e),
        }
    }
}

macro_rules! from_for_chain_error {
    ($($variant:ident($ty:ty)),*) => {
        $(impl From<$ty> for ChainError {
            fn from(e: $ty) -> ChainError {
                ChainError::$variant(e)
            }
        })*
    };
}

from_for_chain_error!(
    Decode(DecodeError),
    Id(IdError),
    Entry(EntryError),
    Verify(VerifyError),
    Store(StoreError)
);
