//! Verification: every kind of bad operation and bad block is refused, and a chain-only node
//! verifies what it cannot read.

use exocore_protocol::identity::{Keypair, PublicKey};

use super::*;

/// A cell with three chain nodes and one client member.
struct Cell {
    cell: Keypair,
    chain: Vec<Keypair>,
    client: Keypair,
    membership: Membership,
    key: EntryKey,
    genesis: Block,
}

impl Cell {
    fn new() -> Cell {
        let cell = Keypair::generate();
        let chain: Vec<Keypair> = (0..3).map(|_| Keypair::generate()).collect();
        let client = Keypair::generate();
        let membership = Membership::new(
            cell.public(),
            vec![client.public()],
            chain.iter().map(Keypair::public).collect(),
        );
        Cell {
            key: EntryKey::from_cell_keypair(&cell),
            genesis: Block::genesis(&cell, 1_000),
            cell,
            chain,
            client,
            membership,
        }
    }

    fn id(&self) -> PublicKey {
        self.cell.public()
    }

    fn entry(&self, author: &Keypair, time_us: u64, text: &[u8]) -> Operation {
        let id = OperationId::new(time_us, &author.public());
        Operation::new_entry(&self.id(), &self.key, id, author, text).unwrap()
    }

    /// Block 1, signed by the first `signers` chain nodes.
    fn block(&self, signers: usize) -> Block {
        let ops = vec![
            self.entry(&self.client, 2_000, b"one"),
            self.entry(&self.chain[1], 2_000, b"two"),
            self.entry(&self.client, 2_001, b"three"),
        ];
        let mut block =
            Block::propose(&self.genesis.header, &self.chain[0].public(), 3_000, ops).unwrap();
        for node in &self.chain[..signers] {
            block.sign(&self.id(), node);
        }
        block
    }

    /// Recomputes the header after tampering with operations, and re-signs with 2 nodes, so
    /// only the tampered property is wrong.
    fn reseal(&self, block: &mut Block) {
        block.header.operations_hash = block::operations_hash(&block.operations);
        block.header.operation_count = block.operations.len() as u32;
        block.signatures.clear();
        for node in &self.chain[..2] {
            block.sign(&self.id(), node);
        }
    }
}

#[test]
fn a_majority_signed_block_verifies() {
    let cell = Cell::new();
    cell.genesis.verify_genesis(&cell.id()).unwrap();
    assert_eq!(cell.membership.quorum(), 2);
    cell.block(2)
        .verify(&cell.genesis.header, &cell.membership)
        .unwrap();
    cell.block(3)
        .verify(&cell.genesis.header, &cell.membership)
        .unwrap();
    // A proposal with one signature is a valid proposal, not a committed block.
    let proposal = cell.block(1);
    proposal
        .verify_proposal(&cell.genesis.header, &cell.membership)
        .unwrap();
    assert_eq!(
        proposal.verify(&cell.genesis.header, &cell.membership),
        Err(VerifyError::TooFewSignatures {
            height: 1,
            found: 1,
            required: 2
        })
    );
}

#[test]
fn quorum_is_a_strict_majority() {
    let cell = Keypair::generate().public();
    let nodes: Vec<PublicKey> = (0..6).map(|_| Keypair::generate().public()).collect();
    for (count, quorum) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4)] {
        let membership = Membership::new(cell, vec![], nodes[..count].to_vec());
        assert_eq!(membership.quorum(), quorum, "{count} chain nodes");
    }
}

#[test]
fn bad_links_heights_and_times_are_refused() {
    let cell = Cell::new();
    let m = &cell.membership;
    let mut bad_link = cell.block(2);
    bad_link.header.previous[0] ^= 1;
    assert!(matches!(
        bad_link.verify(&cell.genesis.header, m),
        Err(VerifyError::BadPrevious { height: 1 })
    ));

    let mut bad_height = cell.block(2);
    bad_height.header.height = 2;
    assert!(matches!(
        bad_height.verify(&cell.genesis.header, m),
        Err(VerifyError::BadHeight {
            expected: 1,
            found: 2
        })
    ));

    let mut early = cell.block(0);
    early.header.time_us = 999;
    cell.reseal(&mut early);
    assert!(matches!(
        early.verify(&cell.genesis.header, m),
        Err(VerifyError::TimeBeforePrevious { height: 1 })
    ));
}

#[test]
fn unsorted_duplicate_and_mismatched_operations_are_refused() {
    let cell = Cell::new();
    let m = &cell.membership;
    let previous = &cell.genesis.header;

    let mut unsorted = cell.block(0);
    unsorted.operations.swap(0, 2);
    cell.reseal(&mut unsorted);
    assert!(matches!(
        unsorted.verify(previous, m),
        Err(VerifyError::Unsorted { .. })
    ));

    let mut duplicate = cell.block(0);
    duplicate.operations[1] = duplicate.operations[0].clone();
    cell.reseal(&mut duplicate);
    assert!(matches!(
        duplicate.verify(previous, m),
        Err(VerifyError::DuplicateOperation { .. })
    ));

    let mut wrong_hash = cell.block(2);
    wrong_hash.operations.pop();
    wrong_hash.header.operation_count = 2;
    wrong_hash.signatures.clear();
    for node in &cell.chain[..2] {
        wrong_hash.sign(&cell.id(), node);
    }
    assert!(matches!(
        wrong_hash.verify(previous, m),
        Err(VerifyError::BadOperationsHash { height: 1 })
    ));

    let mut wrong_count = cell.block(2);
    wrong_count.header.operation_count = 4;
    assert!(matches!(
        wrong_count.verify(previous, m),
        Err(VerifyError::CountMismatch { .. })
    ));
}

#[test]
fn bad_signers_are_refused() {
    let cell = Cell::new();
    let m = &cell.membership;
    let previous = &cell.genesis.header;

    let mut duplicate = cell.block(1);
    let first = duplicate.signatures[0].clone();
    duplicate.signatures.push(first);
    assert!(matches!(
        duplicate.verify(previous, m),
        Err(VerifyError::DuplicateSigner { .. })
    ));

    // A member that is not a chain node, and a stranger.
    for outsider in [&cell.client, &Keypair::generate()] {
        let mut block = cell.block(2);
        block.sign(&cell.id(), outsider);
        assert_eq!(
            block.verify(previous, m),
            Err(VerifyError::SignerNotChainNode {
                height: 1,
                node: outsider.public()
            })
        );
    }

    let mut forged = cell.block(2);
    forged.signatures[1].signature[10] ^= 1;
    assert_eq!(
        forged.verify(previous, m),
        Err(VerifyError::BadBlockSignature {
            height: 1,
            node: cell.chain[1].public()
        })
    );

    // Signatures made for another cell do not count.
    let mut other_cell = cell.block(0);
    for node in &cell.chain[..2] {
        other_cell.add_signature(BlockSignature::new(
            &Keypair::generate().public(),
            &other_cell.hash(),
            node,
        ));
    }
    assert!(matches!(
        other_cell.verify(previous, m),
        Err(VerifyError::BadBlockSignature { .. })
    ));

    let mut proposer = cell.block(0);
    proposer.header.proposer = cell.client.public();
    cell.reseal(&mut proposer);
    assert!(matches!(
        proposer.verify(previous, m),
        Err(VerifyError::ProposerNotChainNode { .. })
    ));
}

#[test]
fn bad_operations_inside_a_block_are_refused() {
    let cell = Cell::new();
    let m = &cell.membership;
    let previous = &cell.genesis.header;

    let mut tampered = cell.block(0);
    let Payload::Entry { ciphertext } = &mut tampered.operations[0].payload else {
        unreachable!("entries were built")
    };
    ciphertext[0] ^= 1;
    cell.reseal(&mut tampered);
    let err = tampered.verify(previous, m).unwrap_err();
    assert!(matches!(
        &err,
        VerifyError::Operation { height: 1, error }
            if matches!(**error, VerifyError::BadOperationSignature { .. })
    ));
    assert!(err.to_string().contains("bad signature"), "{err}");

    let stranger = Keypair::generate();
    let mut unknown = cell.block(0);
    unknown
        .operations
        .push(cell.entry(&stranger, 9_000, b"intruder"));
    cell.reseal(&mut unknown);
    let err = unknown.verify(previous, m).unwrap_err();
    assert!(matches!(
        &err,
        VerifyError::Operation { error, .. } if matches!(**error, VerifyError::UnknownAuthor { .. })
    ));
}

#[test]
fn operation_checks_name_the_problem() {
    let cell = Cell::new();
    let m = &cell.membership;
    let op = cell.entry(&cell.client, 5, b"x");
    op.verify(m).unwrap();

    // Replayed into another cell: the cell id is part of what was signed.
    let other = Membership::new(
        Keypair::generate().public(),
        vec![cell.client.public()],
        vec![],
    );
    assert_eq!(
        op.verify(&other),
        Err(VerifyError::BadOperationSignature { id: op.id })
    );

    // A forged author: re-attributed to another member.
    let mut forged = op.clone();
    forged.author = cell.chain[0].public();
    assert!(matches!(
        forged.verify(m),
        Err(VerifyError::ForeignId { .. })
    ));
    forged.id = OperationId::new(5, &cell.chain[0].public());
    assert!(matches!(
        forged.verify(m),
        Err(VerifyError::BadOperationSignature { .. })
    ));

    // An id with another node's tag, properly signed by its author.
    let wrong_tag = Operation::sign(
        &cell.id(),
        OperationId {
            time_us: 5,
            node: node_tag(&cell.chain[0].public()),
        },
        &cell.client,
        Payload::Entry {
            ciphertext: vec![0; 16],
        },
    );
    assert!(matches!(
        wrong_tag.verify(m),
        Err(VerifyError::ForeignId { .. })
    ));
}

#[test]
fn bad_genesis_is_refused() {
    let cell = Cell::new();
    cell.genesis.verify_genesis(&cell.id()).unwrap();
    assert!(cell
        .genesis
        .verify_genesis(&Keypair::generate().public())
        .is_err());
    let imposter = Block::genesis(&Keypair::generate(), 1_000);
    assert!(imposter.verify_genesis(&cell.id()).is_err());
    let mut extra = cell.genesis.clone();
    extra.sign(&cell.id(), &cell.chain[0]);
    assert!(extra.verify_genesis(&cell.id()).is_err());
    let mut moved = cell.genesis.clone();
    moved.header.time_us += 1;
    assert!(moved.verify_genesis(&cell.id()).is_err());
}

#[test]
fn a_chain_only_node_verifies_but_cannot_read() {
    let cell = Cell::new();
    let block = cell.block(2);
    // What a rented server sees: the block's bytes and the public membership, no cell secret.
    let received = Block::from_bytes(&block.to_bytes()).unwrap();
    let public_membership = Membership::new(
        cell.id(),
        cell.membership.members().to_vec(),
        cell.membership.chain_nodes().to_vec(),
    );
    received
        .verify(&cell.genesis.header, &public_membership)
        .unwrap();
    // Its own guess at a key (any key but the cell's) opens nothing.
    let guess = EntryKey::from_cell_keypair(&cell.chain[0]);
    for op in &received.operations {
        assert!(matches!(
            op.open_entry(&guess),
            Err(EntryError::Decrypt { .. })
        ));
        let Payload::Entry { ciphertext } = &op.payload else {
            unreachable!("entries were built")
        };
        assert!(!ciphertext.windows(3).any(|w| w == b"one" || w == b"two"));
    }
    // A node with the cell secret reads them.
    let texts: Vec<Vec<u8>> = received
        .operations
        .iter()
        .map(|op| op.open_entry(&cell.key).unwrap())
        .collect();
    assert!(texts.contains(&b"three".to_vec()));
}

#[test]
fn too_many_operations_are_refused() {
    let cell = Cell::new();
    let ops: Vec<Operation> = (0..BLOCK_OPERATIONS_MAX as u64 + 1)
        .map(|t| {
            Operation::sign(
                &cell.id(),
                OperationId::new(t, &cell.client.public()),
                &cell.client,
                Payload::Entry { ciphertext: vec![] },
            )
        })
        .collect();
    assert!(matches!(
        Block::propose(&cell.genesis.header, &cell.chain[0].public(), 0, ops),
        Err(VerifyError::BlockTooLarge { .. })
    ));
}
