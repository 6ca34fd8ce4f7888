//! Membership documents: a cell's node list with a version number, signed by the cell key,
//! carried in the chain by operations of payload kind 1 (`spec/chain.md` section 6).
//!
//! ```text
//! MembershipDocument
//!   cell       32  the cell's public key
//!   version    u64 strictly increasing; 0 only for the unsigned initial list of cell.toml
//!   nodes      u64 count, then each:
//!     id         32
//!     name       u64 length, UTF-8
//!     addresses  u64 count, then each: u64 length, UTF-8
//!     roles      u64 count, then each: u32 (0 chain, 1 store, 2 app-host)
//! SignedMembership = document || signature (64): ed25519 by the cell key over
//!   "exocore/membership/v1" || cell id || document encoding
//! ```
//!
//! A change takes effect for the blocks after the block that commits it: the membership that
//! applies to a block is the one in force at the previous block ([`Membership::apply_block`]).

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError as BincodeDecodeError, EncodeError};
use bincode::{Decode, Encode};
use exocore_protocol::identity::{Keypair, PublicKey};

use super::block::{Block, BLOCK_HEADER_LEN};
use super::crypto::signed_message;
use super::encoding::{self, decode_key};
use super::error::DecodeError;
use super::id::node_tag;
use super::operation::Payload;
use super::verify::Membership;
use super::{BLOCK_SIGNATURES_MAX, OPERATION_SIZE_BYTES_MAX};
use crate::config::{names, CellConfig, CellNode, Role};

/// Domain of membership document signatures (by the cell key).
pub const MEMBERSHIP_DOMAIN: &[u8] = b"exocore/membership/v1";
/// Most nodes (with or without roles) in one document.
pub const MEMBERS_MAX: usize = 256;
/// Most addresses of one node.
pub const ADDRESSES_MAX: usize = 8;
/// Longest address, in bytes (a DNS name is at most 253, plus `:port`).
pub const ADDRESS_LEN_MAX: usize = 260;

/// A cell's node list at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipDocument {
    /// The cell.
    pub cell: PublicKey,
    /// Strictly increasing from one change to the next.
    pub version: u64,
    /// Every node: members with roles, and clients (no roles).
    pub nodes: Vec<CellNode>,
}

/// A [`MembershipDocument`] signed by the cell key: what payload kind 1 carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMembership {
    /// The document.
    pub document: MembershipDocument,
    /// ed25519 by the cell key, see [`SignedMembership::sign`].
    pub signature: [u8; 64],
}

fn role_index(role: Role) -> u32 {
    match role {
        Role::Chain => 0,
        Role::Store => 1,
        Role::AppHost => 2,
    }
}

impl MembershipDocument {
    /// The document a cell configuration's node list describes, at `version`.
    pub fn from_config(config: &CellConfig, version: u64) -> MembershipDocument {
        MembershipDocument {
            cell: config.id,
            version,
            nodes: config.nodes.clone(),
        }
    }

    /// The encoding (module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Checks what makes a node list usable: limits, names, addresses, no node or node tag
    /// twice (ids of two nodes must differ, `spec/chain.md` section 2), no role twice, and
    /// between 1 and 64 chain nodes.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.len() > MEMBERS_MAX {
            return Err(format!(
                "{} nodes is over the limit of {MEMBERS_MAX}",
                self.nodes.len()
            ));
        }
        let mut chain_nodes = 0;
        for (i, node) in self.nodes.iter().enumerate() {
            names::check(&node.name)?;
            if node.addresses.len() > ADDRESSES_MAX {
                return Err(format!(
                    "node `{}` has {} addresses, over the limit of {ADDRESSES_MAX}",
                    node.name,
                    node.addresses.len()
                ));
            }
            for address in &node.addresses {
                if address.len() > ADDRESS_LEN_MAX {
                    return Err(format!("node `{}` has an address too long", node.name));
                }
                names::check_address(address)?;
            }
            for other in &self.nodes[..i] {
                if other.id == node.id {
                    return Err(format!("node {} is listed twice", node.id));
                }
                if node_tag(&other.id) == node_tag(&node.id) {
                    return Err(format!(
                        "nodes `{}` and `{}` have keys whose operation id tags collide: one of them needs a new key",
                        other.name, node.name
                    ));
                }
            }
            let mut roles = node.roles.clone();
            roles.sort();
            roles.dedup();
            if roles.len() != node.roles.len() {
                return Err(format!("node `{}` has a role listed twice", node.name));
            }
            if node.roles.contains(&Role::Chain) {
                chain_nodes += 1;
            }
        }
        if chain_nodes == 0 {
            return Err("a cell needs at least one node with the chain role".into());
        }
        if chain_nodes > BLOCK_SIGNATURES_MAX {
            return Err(format!(
                "{chain_nodes} chain nodes is over the limit of {BLOCK_SIGNATURES_MAX}"
            ));
        }
        Ok(())
    }
}

impl SignedMembership {
    /// Signs `document` with the cell's keypair (whose public key must be `document.cell`).
    pub fn sign(document: MembershipDocument, cell: &Keypair) -> SignedMembership {
        let signature = cell.sign(&signed_message(
            MEMBERSHIP_DOMAIN,
            &document.cell,
            &document.to_bytes(),
        ));
        SignedMembership {
            document,
            signature,
        }
    }

    /// Checks the document for `cell`: it names this cell, its version is at least 1, it is
    /// valid ([`MembershipDocument::validate`]), and the cell key signed it.
    pub fn verify(&self, cell: &PublicKey) -> Result<(), String> {
        if self.document.cell != *cell {
            return Err("the document is for another cell".into());
        }
        if self.document.version == 0 {
            return Err("version 0 is the initial list of cell.toml, never a change".into());
        }
        self.document.validate()?;
        let message = signed_message(MEMBERSHIP_DOMAIN, cell, &self.document.to_bytes());
        if !cell.verify(&message, &self.signature) {
            return Err("not signed by the cell key (forged or altered)".into());
        }
        Ok(())
    }

    /// The encoding: the document's, then the signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes untrusted bytes (format and size only: call [`SignedMembership::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedMembership, DecodeError> {
        encoding::decode("membership document", bytes, OPERATION_SIZE_BYTES_MAX)
    }
}

impl Membership {
    /// Applies the membership changes that `block` commits, in operation order: a change
    /// whose version is not greater than the one in force has no effect (an old or replayed
    /// document). Returns the last change applied. The block must have been verified against
    /// this membership.
    pub fn apply_block(&mut self, block: &Block) -> Option<SignedMembership> {
        let mut applied = None;
        for operation in &block.operations {
            if let Payload::Membership(change) = &operation.payload {
                if change.document.version > self.version() && change.verify(self.cell()).is_ok() {
                    *self = Membership::from_document(&change.document);
                    applied = Some((**change).clone());
                }
            }
        }
        applied
    }

    /// The membership a document describes: every node is a member, those with the `chain`
    /// role are chain nodes.
    pub fn from_document(document: &MembershipDocument) -> Membership {
        Membership::with_version(
            document.cell,
            document.nodes.iter().map(|n| n.id).collect(),
            document
                .nodes
                .iter()
                .filter(|n| n.roles.contains(&Role::Chain))
                .map(|n| n.id)
                .collect(),
            document.version,
        )
    }

    /// The membership before block 1 of a cell: `initial` of `cell.toml` if present (the
    /// node list the cell started with, version 0), else its node list at its `version`
    /// (no change was committed yet).
    pub fn initial(config: &CellConfig) -> Membership {
        match &config.initial {
            Some(nodes) => Membership::from_document(&MembershipDocument {
                cell: config.id,
                version: 0,
                nodes: nodes.clone(),
            }),
            None => {
                Membership::from_document(&MembershipDocument::from_config(config, config.version))
            }
        }
    }
}

/// Whether the block encoded in `bytes` may carry a membership change: walks the operations'
/// framing (kind and length fields) without decoding keys or checking signatures, so a node
/// folding its chain's changes at startup decodes only the blocks that carry one. Any other
/// kind than Entry, or bytes that do not walk cleanly, answer `true` (decode and see).
pub fn may_carry_change(bytes: &[u8]) -> bool {
    const ENTRY: u32 = 0;
    let read_u64 = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let read_u32 = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let walk = || -> Option<bool> {
        let mut at = BLOCK_HEADER_LEN;
        let count = read_u64(at)?;
        at += 8;
        for _ in 0..count {
            at = at.checked_add(16 + 32)?;
            if read_u32(at)? != ENTRY {
                return Some(true);
            }
            let len = usize::try_from(read_u64(at + 4)?).ok()?;
            at = at.checked_add(4 + 8)?.checked_add(len)?.checked_add(64)?;
        }
        // The operations end inside the bytes, before the signature count.
        (at.checked_add(8)? <= bytes.len()).then_some(false)
    };
    walk().unwrap_or(true)
}

fn encode_string<E: Encoder>(text: &str, encoder: &mut E) -> Result<(), EncodeError> {
    text.as_bytes().to_vec().encode(encoder)
}

fn decode_string<D: Decoder>(decoder: &mut D) -> Result<String, BincodeDecodeError> {
    let bytes = Vec::<u8>::decode(decoder)?;
    String::from_utf8(bytes).map_err(|_| BincodeDecodeError::Other("a name is not UTF-8"))
}

impl Encode for MembershipDocument {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.cell.to_bytes().encode(encoder)?;
        self.version.encode(encoder)?;
        (self.nodes.len() as u64).encode(encoder)?;
        for node in &self.nodes {
            node.id.to_bytes().encode(encoder)?;
            encode_string(&node.name, encoder)?;
            (node.addresses.len() as u64).encode(encoder)?;
            for address in &node.addresses {
                encode_string(address, encoder)?;
            }
            (node.roles.len() as u64).encode(encoder)?;
            for role in &node.roles {
                role_index(*role).encode(encoder)?;
            }
        }
        Ok(())
    }
}

/// Reads a u64 count, refusing one over `max` before anything is allocated.
fn decode_count<D: Decoder>(
    decoder: &mut D,
    max: usize,
    what: &'static str,
) -> Result<usize, BincodeDecodeError> {
    let count = u64::decode(decoder)?;
    if count > max as u64 {
        return Err(BincodeDecodeError::Other(what));
    }
    Ok(count as usize)
}

impl<Context> Decode<Context> for MembershipDocument {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, BincodeDecodeError> {
        let cell = decode_key(decoder)?;
        let version = u64::decode(decoder)?;
        let count = decode_count(decoder, MEMBERS_MAX, "too many nodes")?;
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            let id = decode_key(decoder)?;
            let name = decode_string(decoder)?;
            let count = decode_count(decoder, ADDRESSES_MAX, "too many addresses")?;
            let mut addresses = Vec::with_capacity(count);
            for _ in 0..count {
                addresses.push(decode_string(decoder)?);
            }
            let count = decode_count(decoder, Role::ALL.len(), "too many roles")?;
            let mut roles = Vec::with_capacity(count);
            for _ in 0..count {
                let role = match u32::decode(decoder)? {
                    0 => Role::Chain,
                    1 => Role::Store,
                    2 => Role::AppHost,
                    _ => return Err(BincodeDecodeError::Other("unknown role")),
                };
                roles.push(role);
            }
            nodes.push(CellNode {
                id,
                name,
                addresses,
                roles,
            });
        }
        Ok(MembershipDocument {
            cell,
            version,
            nodes,
        })
    }
}

impl Encode for SignedMembership {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.document.encode(encoder)?;
        self.signature.encode(encoder)
    }
}

impl<Context> Decode<Context> for SignedMembership {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, BincodeDecodeError> {
        Ok(SignedMembership {
            document: MembershipDocument::decode(decoder)?,
            signature: <[u8; 64]>::decode(decoder)?,
        })
    }
}

bincode::impl_borrow_decode!(MembershipDocument);
bincode::impl_borrow_decode!(SignedMembership);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{IdGenerator, Operation};

    fn node(key: &Keypair, name: &str, roles: Vec<Role>) -> CellNode {
        CellNode {
            id: key.public(),
            name: name.into(),
            addresses: vec!["127.0.0.1:3330".into()],
            roles,
        }
    }

    fn document(cell: &Keypair, version: u64, nodes: Vec<CellNode>) -> MembershipDocument {
        MembershipDocument {
            cell: cell.public(),
            version,
            nodes,
        }
    }

    #[test]
    fn round_trips_and_verifies_only_for_its_cell_and_bytes() {
        let cell = Keypair::generate();
        let a = Keypair::generate();
        let doc = document(
            &cell,
            2,
            vec![node(&a, "a", vec![Role::Chain, Role::Store])],
        );
        let signed = SignedMembership::sign(doc, &cell);
        let bytes = signed.to_bytes();
        assert_eq!(SignedMembership::from_bytes(&bytes).unwrap(), signed);
        signed.verify(&cell.public()).unwrap();
        let other = Keypair::generate();
        assert!(signed.verify(&other.public()).is_err());
        // Signed by another key than the cell's.
        let forged = SignedMembership::sign(signed.document.clone(), &other);
        assert!(forged
            .verify(&cell.public())
            .unwrap_err()
            .contains("not signed by the cell key"));
        // Every bit flip fails to decode or to verify; no prefix decodes.
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x04;
            if let Ok(doc) = SignedMembership::from_bytes(&flipped) {
                assert!(doc.verify(&cell.public()).is_err(), "byte {i}");
            }
        }
        for len in 0..bytes.len() {
            assert!(SignedMembership::from_bytes(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn blocks_without_changes_are_told_apart_without_decoding() {
        let cell = Keypair::generate();
        let a = Keypair::generate();
        let key = crate::chain::EntryKey::from_cell_keypair(&cell);
        let mut ids = IdGenerator::new(&a.public(), 0);
        let genesis = Block::genesis(&cell, 1);
        let entries: Vec<Operation> = (0..3)
            .map(|i| {
                Operation::new_entry(&cell.public(), &key, ids.next(10 + i).unwrap(), &a, b"x")
                    .unwrap()
            })
            .collect();
        let plain = Block::propose(&genesis.header, &a.public(), 2, entries.clone()).unwrap();
        assert!(!may_carry_change(&plain.to_bytes()));
        assert!(!may_carry_change(&genesis.to_bytes()));
        let change = SignedMembership::sign(
            document(&cell, 1, vec![node(&a, "a", vec![Role::Chain])]),
            &cell,
        );
        let mut ops = entries;
        ops.push(Operation::sign(
            &cell.public(),
            ids.next(20).unwrap(),
            &a,
            Payload::Membership(Box::new(change)),
        ));
        let with_change = Block::propose(&genesis.header, &a.public(), 2, ops).unwrap();
        let bytes = with_change.to_bytes();
        assert!(may_carry_change(&bytes));
        // Cut bytes never panic and answer "decode and see" (the last 8 bytes of an unsigned
        // block are its signature count, after the operations).
        let plain_bytes = plain.to_bytes();
        for len in 0..plain_bytes.len() - 8 {
            assert!(may_carry_change(&plain_bytes[..len]), "cut at {len}");
        }
        for len in 0..bytes.len() {
            let _ = may_carry_change(&bytes[..len]);
        }
    }

    #[test]
    fn unusable_lists_are_refused() {
        let cell = Keypair::generate();
        let a = Keypair::generate();
        let no_chain = SignedMembership::sign(
            document(&cell, 1, vec![node(&a, "a", vec![Role::Store])]),
            &cell,
        );
        assert!(no_chain
            .verify(&cell.public())
            .unwrap_err()
            .contains("chain role"));
        let twice = SignedMembership::sign(
            document(
                &cell,
                1,
                vec![node(&a, "a", vec![Role::Chain]), node(&a, "b", vec![])],
            ),
            &cell,
        );
        assert!(twice.verify(&cell.public()).unwrap_err().contains("twice"));
        let zero = SignedMembership::sign(
            document(&cell, 0, vec![node(&a, "a", vec![Role::Chain])]),
            &cell,
        );
        assert!(zero
            .verify(&cell.public())
            .unwrap_err()
            .contains("version 0"));
        let mut bad_name = node(&a, "a", vec![Role::Chain]);
        bad_name.name = "-x".into();
        let bad = SignedMembership::sign(document(&cell, 1, vec![bad_name]), &cell);
        assert!(bad.verify(&cell.public()).is_err());
    }

    #[test]
    fn a_change_applies_after_its_block_and_stale_versions_do_nothing() {
        let cell = Keypair::generate();
        let a = Keypair::generate();
        let b = Keypair::generate();
        let mut membership = Membership::new(cell.public(), vec![], vec![a.public()]);
        let change = |version: u64, nodes: Vec<CellNode>| {
            SignedMembership::sign(document(&cell, version, nodes), &cell)
        };
        let two = change(
            2,
            vec![
                node(&a, "a", vec![Role::Chain]),
                node(&b, "b", vec![Role::Chain]),
            ],
        );
        let one = change(1, vec![node(&a, "a", vec![Role::Chain])]);
        let mut ids = IdGenerator::new(&a.public(), 0);
        let ops = vec![
            Operation::sign(
                &cell.public(),
                ids.next(10).unwrap(),
                &a,
                Payload::Membership(Box::new(two.clone())),
            ),
            Operation::sign(
                &cell.public(),
                ids.next(11).unwrap(),
                &a,
                Payload::Membership(Box::new(one)),
            ),
        ];
        let genesis = Block::genesis(&cell, 1);
        let mut block = Block::propose(&genesis.header, &a.public(), 2, ops).unwrap();
        block.sign(&cell.public(), &a);
        // The block is verified against the membership before it.
        block.verify(&genesis.header, &membership).unwrap();
        assert_eq!(membership.apply_block(&block), Some(two));
        assert_eq!(membership.version(), 2);
        assert_eq!(membership.quorum(), 2);
        assert!(membership.is_chain_node(&b.public()));
    }
}
