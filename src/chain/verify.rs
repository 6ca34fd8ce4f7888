//! Verification of operations and blocks against a cell's membership.
//!
//! Every path that accepts an operation or a block (local write, pending sync, block
//! download, startup check) calls these functions; nothing that fails them is stored.
//! Cheap structural checks come first, signatures last.
//!
//! Architecture invariant: verification is pure. The membership (which nodes are members,
//! which are chain nodes) is an input; this module reads no file and no clock.

// `VerifyError` carries public keys (about 200 bytes). It is returned once, on the cold path,
// after checks (signature verifications) that cost far more than moving it.
#![allow(clippy::result_large_err)]

use exocore_protocol::identity::PublicKey;

use super::block::{check_operation_limits, check_signature_limit, operations_hash, Block};
use super::block::{BlockHeader, BlockSignature};
use super::error::VerifyError;
use super::operation::Operation;
use super::operation::Payload;
use super::OPERATION_SIZE_BYTES_MAX;

/// Who may write and who may commit in a cell, as verification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    cell: PublicKey,
    members: Vec<PublicKey>,
    chain_nodes: Vec<PublicKey>,
    /// The version of the document it comes from (`spec/chain.md` section 6).
    version: u64,
}

impl Membership {
    /// The membership of `cell`: `members` may author operations, `chain_nodes` sign blocks
    /// (chain nodes are members too, and are added to `members` if missing). Version 0.
    pub fn new(cell: PublicKey, members: Vec<PublicKey>, chain_nodes: Vec<PublicKey>) -> Self {
        Membership::with_version(cell, members, chain_nodes, 0)
    }

    /// [`Membership::new`] at a document version.
    pub fn with_version(
        cell: PublicKey,
        members: Vec<PublicKey>,
        chain_nodes: Vec<PublicKey>,
        version: u64,
    ) -> Self {
        fn unique(keys: impl IntoIterator<Item = PublicKey>) -> Vec<PublicKey> {
            let mut out: Vec<PublicKey> = Vec::new();
            for key in keys {
                if !out.contains(&key) {
                    out.push(key);
                }
            }
            out
        }
        Membership {
            cell,
            members: unique(members.into_iter().chain(chain_nodes.iter().copied())),
            chain_nodes: unique(chain_nodes),
            version,
        }
    }

    /// The version of the membership document in force.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The cell's id.
    pub fn cell(&self) -> &PublicKey {
        &self.cell
    }

    /// Every member.
    pub fn members(&self) -> &[PublicKey] {
        &self.members
    }

    /// The chain nodes.
    pub fn chain_nodes(&self) -> &[PublicKey] {
        &self.chain_nodes
    }

    /// Whether `node` may author operations.
    pub fn is_member(&self, node: &PublicKey) -> bool {
        self.members.contains(node)
    }

    /// Whether `node` may propose and sign blocks.
    pub fn is_chain_node(&self, node: &PublicKey) -> bool {
        self.chain_nodes.contains(node)
    }

    /// Signatures needed to commit a block: a strict majority of the chain nodes. Two
    /// majorities always share a node, and a node signs at most one block per height, so two
    /// different blocks can never both be committed at one height.
    pub fn quorum(&self) -> usize {
        self.chain_nodes.len() / 2 + 1
    }
}

impl Operation {
    /// Checks that the operation may enter `membership`'s cell: size, author membership, the
    /// id belongs to the author, and the author's signature over this cell.
    pub fn verify(&self, membership: &Membership) -> Result<(), VerifyError> {
        let size_bytes = self.size_bytes();
        if size_bytes > OPERATION_SIZE_BYTES_MAX {
            return Err(VerifyError::OperationTooLarge {
                id: self.id,
                size_bytes,
            });
        }
        if !membership.is_member(&self.author) {
            return Err(VerifyError::UnknownAuthor {
                id: self.id,
                author: self.author,
            });
        }
        if !self.id.is_from(&self.author) {
            return Err(VerifyError::ForeignId {
                id: self.id,
                author: self.author,
            });
        }
        if !self.signature_is_valid(membership.cell()) {
            return Err(VerifyError::BadOperationSignature { id: self.id });
        }
        if let Payload::Membership(change) = &self.payload {
            change
                .verify(membership.cell())
                .map_err(|reason| VerifyError::BadMembership {
                    id: self.id,
                    reason,
                })?;
        }
        Ok(())
    }
}

impl Block {
    /// Checks the genesis block of `cell`: height 0, zero previous hash, no operations,
    /// proposed by the cell key and signed by it alone.
    pub fn verify_genesis(&self, cell: &PublicKey) -> Result<(), VerifyError> {
        let header = &self.header;
        let bad = |reason| Err(VerifyError::BadGenesis { reason });
        if header.height != 0 {
            return bad("height is not 0");
        }
        if header.previous != [0; 32] {
            return bad("previous hash is not zero");
        }
        if header.operation_count != 0 || !self.operations.is_empty() {
            return bad("it carries operations");
        }
        if header.operations_hash != operations_hash(&[]) {
            return bad("operations hash is not the hash of nothing");
        }
        if header.proposer != *cell {
            return bad("not proposed by the cell key");
        }
        match self.signatures.as_slice() {
            [only] if only.node == *cell && only.is_valid(cell, &self.hash()) => Ok(()),
            _ => bad("not signed by the cell key alone"),
        }
    }

    /// Checks a block before signing it: everything [`Block::verify`] checks except that
    /// enough nodes signed. The signatures it carries must all be valid.
    pub fn verify_proposal(
        &self,
        previous: &BlockHeader,
        membership: &Membership,
    ) -> Result<(), VerifyError> {
        let header = &self.header;
        let height = header.height;
        let expected = previous.height.saturating_add(1);
        if height != expected {
            return Err(VerifyError::BadHeight {
                expected,
                found: height,
            });
        }
        if header.previous != previous.hash() {
            return Err(VerifyError::BadPrevious { height });
        }
        if header.time_us < previous.time_us {
            return Err(VerifyError::TimeBeforePrevious { height });
        }
        self.verify_contents()?;
        if !membership.is_chain_node(&header.proposer) {
            return Err(VerifyError::ProposerNotChainNode {
                height,
                proposer: header.proposer,
            });
        }
        for operation in &self.operations {
            operation
                .verify(membership)
                .map_err(|error| VerifyError::Operation {
                    height,
                    error: Box::new(error),
                })?;
        }
        self.valid_signers(membership).map(|_| ())
    }

    /// Checks that the block may be appended after `previous` as committed: links, height,
    /// time, limits, operations sorted and unique, the operations hash, every operation
    /// (author membership, id, signature), and valid signatures by distinct chain nodes
    /// reaching a strict majority of them.
    pub fn verify(
        &self,
        previous: &BlockHeader,
        membership: &Membership,
    ) -> Result<(), VerifyError> {
        self.verify_proposal(previous, membership)?;
        let found = self.signatures.len();
        let required = membership.quorum();
        if found < required {
            return Err(VerifyError::TooFewSignatures {
                height: self.header.height,
                found,
                required,
            });
        }
        Ok(())
    }

    /// The checks that need neither the previous block nor the membership: limits, count,
    /// order, uniqueness and the operations hash. The store runs them on append and at
    /// startup.
    pub fn verify_contents(&self) -> Result<(), VerifyError> {
        let header = &self.header;
        let height = header.height;
        check_operation_limits(height, &self.operations)?;
        check_signature_limit(self)?;
        if self.operations.len() != header.operation_count as usize {
            return Err(VerifyError::CountMismatch {
                height,
                header: header.operation_count,
                carried: self.operations.len(),
            });
        }
        for pair in self.operations.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(VerifyError::DuplicateOperation {
                    height,
                    id: pair[1].id,
                });
            }
            if pair[0].id > pair[1].id {
                return Err(VerifyError::Unsorted {
                    height,
                    id: pair[1].id,
                });
            }
        }
        if operations_hash(&self.operations) != header.operations_hash {
            return Err(VerifyError::BadOperationsHash { height });
        }
        Ok(())
    }

    /// Checks every signature: a chain node, not seen before, valid over this block's hash.
    /// Returns how many there are.
    fn valid_signers(&self, membership: &Membership) -> Result<usize, VerifyError> {
        let height = self.header.height;
        let hash = self.hash();
        let mut seen: Vec<&PublicKey> = Vec::with_capacity(self.signatures.len());
        for BlockSignature { node, .. } in &self.signatures {
            if !membership.is_chain_node(node) {
                return Err(VerifyError::SignerNotChainNode {
                    height,
                    node: *node,
                });
            }
            if seen.contains(&node) {
                return Err(VerifyError::DuplicateSigner {
                    height,
                    node: *node,
                });
            }
            seen.push(node);
        }
        for signature in &self.signatures {
            if !signature.is_valid(membership.cell(), &hash) {
                return Err(VerifyError::BadBlockSignature {
                    height,
                    node: signature.node,
                });
            }
        }
        Ok(seen.len())
    }
}
