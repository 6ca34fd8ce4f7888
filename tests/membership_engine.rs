//! Membership changes through the real replication engine on real LMDB stores, over a
//! lossless in-memory network: a chain node is added (it syncs the chain, its writes commit,
//! the quorum follows), one is removed (its messages and operations are refused, its pending
//! operations dropped), and an old document is refused.

use std::collections::VecDeque;

use exo::chain::{
    Block, ChainStore, EntryKey, Membership, MembershipDocument, Operation, OperationId, Payload,
    SignedMembership,
};
use exo::config::{CellNode, Role};
use exo::engine::{self, ChainMessage, Config, Engine, Event, Input};
use exocore_protocol::identity::{Keypair, PublicKey};

const EPOCH_MS: u64 = 1_767_225_600_000;

struct Node {
    key: Keypair,
    store: ChainStore,
    engine: Engine,
    events: Vec<Event>,
}

struct Net {
    _tmp: tempfile::TempDir,
    cell: Keypair,
    nodes: Vec<Node>,
    queue: VecDeque<(PublicKey, PublicKey, ChainMessage)>,
    now_ms: u64,
}

fn cell_node(key: &Keypair, name: &str, roles: Vec<Role>) -> CellNode {
    CellNode {
        id: key.public(),
        name: name.into(),
        addresses: vec![],
        roles,
    }
}

impl Net {
    /// Nodes `keys`, the first `chain` of them chain nodes of the initial membership; every
    /// node starts from the genesis.
    fn new(count: usize, chain: usize) -> Net {
        let tmp = tempfile::tempdir().unwrap();
        let cell = Keypair::generate();
        let keys: Vec<Keypair> = (0..count).map(|_| Keypair::generate()).collect();
        let initial = Membership::new(
            cell.public(),
            vec![],
            keys[..chain].iter().map(Keypair::public).collect(),
        );
        let genesis = Block::genesis(&cell, EPOCH_MS * 1_000);
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let store =
                    ChainStore::open(&tmp.path().join(format!("n{i}")), &cell.public(), 1 << 20)
                        .unwrap();
                store.append_block(&genesis).unwrap();
                let engine = Engine::open(
                    Config::default(),
                    key.clone(),
                    initial.clone(),
                    &store,
                    EPOCH_MS,
                )
                .unwrap();
                Node {
                    key,
                    store,
                    engine,
                    events: Vec::new(),
                }
            })
            .collect();
        Net {
            _tmp: tmp,
            cell,
            nodes,
            queue: VecDeque::new(),
            now_ms: EPOCH_MS,
        }
    }

    fn step(&mut self, i: usize, input: Input) -> Vec<Event> {
        let node = &mut self.nodes[i];
        let output = node.engine.step(&node.store, self.now_ms, input);
        engine::apply(&node.store, &output).unwrap();
        let from = node.key.public();
        for message in output.messages {
            self.queue.push_back((from, message.to, message.message));
        }
        node.events.extend(output.events.iter().cloned());
        output.events
    }

    /// Runs `ms` milliseconds of ticks, delivering every message (to running nodes `live`).
    fn run(&mut self, ms: u64, live: &[usize]) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms += 10;
            for &i in live {
                self.step(i, Input::Tick);
            }
            while let Some((from, to, message)) = self.queue.pop_front() {
                let Some(i) = self.nodes.iter().position(|n| n.key.public() == to) else {
                    continue;
                };
                if live.contains(&i) {
                    self.step(i, Input::Message { from, message });
                }
            }
        }
    }

    fn operation(&self, i: usize, payload: Payload) -> Operation {
        let node = &self.nodes[i];
        let ids = node
            .store
            .next_operation_ids(&node.key.public(), self.now_ms * 1_000, 1)
            .unwrap();
        Operation::sign(&self.cell.public(), ids[0], &node.key, payload)
    }

    fn entry(&self, i: usize, text: &[u8]) -> Operation {
        let node = &self.nodes[i];
        let ids = node
            .store
            .next_operation_ids(&node.key.public(), self.now_ms * 1_000, 1)
            .unwrap();
        Operation::new_entry(
            &self.cell.public(),
            &EntryKey::from_cell_keypair(&self.cell),
            ids[0],
            &node.key,
            text,
        )
        .unwrap()
    }

    fn change(&self, version: u64, nodes: Vec<CellNode>) -> Payload {
        Payload::Membership(Box::new(SignedMembership::sign(
            MembershipDocument {
                cell: self.cell.public(),
                version,
                nodes,
            },
            &self.cell,
        )))
    }

    fn write(&mut self, i: usize, op: Operation) -> Vec<Event> {
        self.step(
            i,
            Input::Write {
                operations: vec![op],
            },
        )
    }

    fn committed(&self, i: usize, id: &OperationId) -> bool {
        matches!(
            self.nodes[i].store.operation(id).unwrap(),
            Some((_, exo::chain::Location::Committed { .. }))
        )
    }
}

fn rejected(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_chain_node_is_added_then_another_removed_and_the_quorum_follows() {
    // a and b are the initial chain nodes; c is a node to be admitted.
    let mut net = Net::new(3, 2);
    let [a, b, c] = [0, 1, 2].map(|i| net.nodes[i].key.clone());
    let all = [0, 1, 2];
    assert_eq!(net.nodes[0].engine.membership().quorum(), 2);

    // Before its admission, c's messages and writes are refused.
    let early = net.entry(2, b"too early");
    net.run(50, &all);
    assert!(
        !rejected(&net.nodes[0].events).is_empty(),
        "a refused nothing from c"
    );
    net.write(0, early.clone());
    net.run(300, &all);
    assert!(!net.committed(0, &early.id));

    // a brings in the change that adds c with the chain role.
    let add = net.change(
        1,
        vec![
            cell_node(&a, "a", vec![Role::Chain]),
            cell_node(&b, "b", vec![Role::Chain]),
            cell_node(&c, "c", vec![Role::Chain, Role::Store]),
        ],
    );
    let add_op = net.operation(0, add);
    net.write(0, add_op.clone());
    net.run(3_000, &all);
    for i in all {
        assert!(
            net.committed(i, &add_op.id),
            "node {i} did not commit the change"
        );
        let membership = net.nodes[i].engine.membership();
        assert_eq!(membership.version(), 1);
        assert_eq!(membership.chain_nodes().len(), 3);
        assert_eq!(membership.quorum(), 2);
        assert!(net.nodes[i].events.iter().any(
            |e| matches!(e, Event::MembershipChanged { change, .. } if change.document.version == 1)
        ));
    }

    // c's writes now commit, and with a down, b and c are a quorum of three.
    let from_c = net.entry(2, b"hello from c");
    net.write(2, from_c.clone());
    net.run(4_000, &[1, 2]);
    assert!(net.committed(1, &from_c.id) && net.committed(2, &from_c.id));
    net.run(3_000, &all);
    assert!(net.committed(0, &from_c.id));

    // An old or replayed document is refused.
    let replay = net.change(
        1,
        vec![
            cell_node(&a, "a", vec![Role::Chain]),
            cell_node(&b, "b", vec![Role::Chain]),
        ],
    );
    let replay_op = net.operation(0, replay);
    let events = net.write(0, replay_op);
    assert!(
        rejected(&events)
            .iter()
            .any(|r| r.contains("not newer than version 1")),
        "{events:?}"
    );

    // b writes an entry while partitioned away, then is removed by a change from a.
    let from_b = net.entry(1, b"b's last words");
    net.write(1, from_b.clone());
    net.queue.clear(); // b is cut off: nothing it sent arrives.
    let remove = net.change(
        2,
        vec![
            cell_node(&a, "a", vec![Role::Chain]),
            cell_node(&c, "c", vec![Role::Chain, Role::Store]),
        ],
    );
    let remove_op = net.operation(0, remove);
    net.write(0, remove_op.clone());
    net.run(4_000, &[0, 2]);
    assert!(net.committed(0, &remove_op.id) && net.committed(2, &remove_op.id));
    for i in [0, 2] {
        let membership = net.nodes[i].engine.membership();
        assert_eq!(membership.version(), 2);
        assert!(!membership.is_member(&b.public()));
        assert_eq!(membership.quorum(), 2);
    }
    // b comes back: its messages and its operation are refused; nothing of b commits.
    net.nodes[0].events.clear();
    net.run(3_000, &all);
    assert!(!net.committed(0, &from_b.id));
    let reasons = rejected(&net.nodes[0].events);
    assert!(
        reasons.iter().any(|r| r.contains("not a member")),
        "{reasons:?}"
    );
    let late = net.entry(1, b"after removal");
    let events = net.write(0, late);
    assert!(
        rejected(&events)
            .iter()
            .any(|r| r.contains("is not a member")),
        "{events:?}"
    );
    // a and c still commit without b.
    let after = net.entry(2, b"after b left");
    net.write(2, after.clone());
    net.run(3_000, &[0, 2]);
    assert!(net.committed(0, &after.id) && net.committed(2, &after.id));

    // The membership of a restarted engine follows from the stored chain.
    let node = &net.nodes[2];
    let initial = Membership::new(net.cell.public(), vec![], vec![a.public(), b.public()]);
    let reopened = Engine::open(
        Config::default(),
        node.key.clone(),
        initial,
        &node.store,
        net.now_ms,
    )
    .unwrap();
    assert_eq!(reopened.membership(), net.nodes[2].engine.membership());
}
