//! The test vectors of `spec/chain.md`, in `fixtures/chain/`, checked byte for byte.
//! `UPDATE_VECTORS=1 cargo test --lib chain::vectors` rewrites them (only ever on purpose: a
//! change is a change of the contract).

use exocore_protocol::identity::Keypair;

use super::*;
use crate::config::{CellNode, Role};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/chain");

/// 2026-01-01T00:00:00Z in microseconds.
const T0: u64 = 1_767_225_600_000_000;

struct Vectors {
    files: Vec<(&'static str, String)>,
}

impl Vectors {
    fn add(&mut self, name: &'static str, bytes: &[u8]) {
        self.files.push((name, hex(bytes)));
    }
}

fn unhex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn fixed_seeds_match_the_fixtures() {
    let cell = Keypair::from_seed(&[1; 32]);
    let a = Keypair::from_seed(&[2; 32]);
    let b = Keypair::from_seed(&[3; 32]);
    let c = Keypair::from_seed(&[4; 32]);
    let membership = Membership::new(
        cell.public(),
        vec![],
        vec![a.public(), b.public(), c.public()],
    );
    let key = EntryKey::from_cell_keypair(&cell);
    let mut v = Vectors { files: Vec::new() };

    v.add("entry_key.hex", &key.to_bytes());
    let id_a = OperationId::new(T0 + 1, &a.public());
    v.add("operation_id.hex", &id_a.to_bytes());
    let op_a = Operation::new_entry(&cell.public(), &key, id_a, &a, b"hello, exocore").unwrap();
    v.add("operation.hex", &op_a.to_bytes());
    v.add("operation_hash.hex", &op_a.hash());

    let genesis = Block::genesis(&cell, T0);
    v.add("genesis.hex", &genesis.to_bytes());
    v.add("genesis_hash.hex", &genesis.hash());

    let id_b = OperationId::new(T0 + 1, &b.public());
    let op_b = Operation::new_entry(&cell.public(), &key, id_b, &b, b"second entry").unwrap();
    let mut block = Block::propose(
        &genesis.header,
        &a.public(),
        T0 + 1_000_000,
        vec![op_b, op_a.clone()],
    )
    .unwrap();
    block.sign(&cell.public(), &a);
    block.sign(&cell.public(), &b);
    v.add("block1.hex", &block.to_bytes());
    v.add("block1_hash.hex", &block.hash());

    // A membership change to version 1: A (chain, store) and B (chain), carried by A.
    let document = MembershipDocument {
        cell: cell.public(),
        version: 1,
        nodes: vec![
            CellNode {
                id: a.public(),
                name: "a".into(),
                addresses: vec!["127.0.0.1:3330".into()],
                roles: vec![Role::Chain, Role::Store],
            },
            CellNode {
                id: b.public(),
                name: "b".into(),
                addresses: vec![],
                roles: vec![Role::Chain],
            },
        ],
    };
    let change = SignedMembership::sign(document, &cell);
    v.add("membership.hex", &change.to_bytes());
    let id_m = OperationId::new(T0 + 2, &a.public());
    let op_m = Operation::sign(
        &cell.public(),
        id_m,
        &a,
        Payload::Membership(Box::new(change.clone())),
    );
    v.add("membership_operation.hex", &op_m.to_bytes());

    if std::env::var_os("UPDATE_VECTORS").is_some() {
        for (name, text) in &v.files {
            std::fs::write(format!("{DIR}/{name}"), format!("{text}\n")).unwrap();
        }
    }
    for (name, text) in &v.files {
        let on_disk = std::fs::read_to_string(format!("{DIR}/{name}"))
            .unwrap_or_else(|e| panic!("fixtures/chain/{name}: {e} (UPDATE_VECTORS=1 writes it)"));
        assert_eq!(on_disk.trim(), text, "fixtures/chain/{name} differs");
    }

    // The fixtures, decoded as a third party would, verify and open.
    let read = |name: &str| unhex(&std::fs::read_to_string(format!("{DIR}/{name}")).unwrap());
    let op = Operation::from_bytes(&read("operation.hex")).unwrap();
    op.verify(&membership).unwrap();
    assert_eq!(op.open_entry(&key).unwrap(), b"hello, exocore");
    let genesis = Block::from_bytes(&read("genesis.hex")).unwrap();
    genesis.verify_genesis(&cell.public()).unwrap();
    let block = Block::from_bytes(&read("block1.hex")).unwrap();
    block.verify(&genesis.header, &membership).unwrap();
    assert!(block.operations.contains(&op));
    assert!(block.operations[0].id < block.operations[1].id);
    let change = SignedMembership::from_bytes(&read("membership.hex")).unwrap();
    change.verify(&cell.public()).unwrap();
    let op = Operation::from_bytes(&read("membership_operation.hex")).unwrap();
    op.verify(&membership).unwrap();
    assert_eq!(op.payload, Payload::Membership(Box::new(change)));
}
