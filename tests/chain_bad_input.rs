//! Bad input to the chain (issue 4, "Bad input"), through the real LMDB store and the real
//! replication engine (not the daemon): each is refused with a readable reason, and the
//! stored chain (height, last hash, pending count) is exactly what it was before.
//!
//! Covered elsewhere, not repeated here:
//! - a chain-sync answer whose block carries a forged signature:
//!   `tests/simulation.rs`, `forged_blocks_from_chain_sync_are_refused`;
//! - store-level appends at the wrong height or with a wrong previous hash:
//!   `tests/chain_storage.rs`, `appends_that_do_not_extend_the_chain_are_refused`;
//! - a bit flip in the last block (found by the startup check) and in a pending operation:
//!   `tests/chain_storage.rs`, `a_bit_flip_in_a_stored_block_is_reported_on_open_not_a_panic`
//!   and `a_bit_flip_in_a_pending_operation_is_a_clear_error`;
//! - every decoder against random bytes: `fuzz/`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use exo::chain::store::DEFAULT_MAP_SIZE_BYTES;
use exo::chain::{Block, ChainStore, EntryKey, Membership, Operation, OperationId, StoreError};
use exo::engine::message::{Accept, Blocks, Operations, Sign, Status};
use exo::engine::{self, ChainMessage, Config, Engine, Event, Input, Output};
use exocore_protocol::identity::{Keypair, PublicKey};

/// 2026-01-01T00:00:00Z in µs.
const T0_US: u64 = 1_767_225_600_000_000;

// ---------------------------------------------------------------------------------------
// The allocation probe: the largest single allocation a thread made while probing.

struct Tracking;

thread_local! {
    static PROBING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size_bytes: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = PROBING.try_with(|probing| {
        if probing.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size_bytes)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; `note` only reads and
// writes const-initialised thread-local cells, which never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns its result and the largest single allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    PROBING.with(|p| p.set(true));
    let value = f();
    PROBING.with(|p| p.set(false));
    (value, LARGEST.with(Cell::get))
}

// ---------------------------------------------------------------------------------------
// A cell of three chain nodes A, B, C; the engine under test runs on A.

struct Cluster {
    cell: Keypair,
    entry_key: EntryKey,
    /// A, B, C.
    nodes: Vec<Keypair>,
    membership: Membership,
    store: ChainStore,
    engine: Engine,
    _tmp: tempfile::TempDir,
}

/// What must not change when input is refused.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    height: u64,
    last_hash: [u8; 32],
    pending: u64,
    engine_tip: [u8; 32],
    engine_pending: usize,
}

fn key(seed: u8) -> Keypair {
    Keypair::from_seed(&[seed; 32])
}

fn entry(cell: &Keypair, key: &EntryKey, author: &Keypair, time_us: u64) -> Operation {
    let id = OperationId::new(time_us, &author.public());
    Operation::new_entry(&cell.public(), key, id, author, b"bad input test").unwrap()
}

impl Cluster {
    /// Genesis, two committed blocks (signed by A and B), two pending operations by C.
    fn new() -> Cluster {
        let cell = key(1);
        let nodes = vec![key(2), key(3), key(4)];
        let membership = Membership::new(
            cell.public(),
            Vec::new(),
            nodes.iter().map(Keypair::public).collect(),
        );
        let entry_key = EntryKey::from_cell_keypair(&cell);
        let tmp = tempfile::tempdir().unwrap();
        let store = ChainStore::open(tmp.path(), &cell.public(), DEFAULT_MAP_SIZE_BYTES).unwrap();
        store.append_block(&Block::genesis(&cell, T0_US)).unwrap();
        let engine = Engine::open(
            Config::default(),
            nodes[0].clone(),
            membership.clone(),
            &store,
            1_000,
        )
        .unwrap();
        let mut cluster = Cluster {
            cell,
            entry_key,
            nodes,
            membership,
            store,
            engine,
            _tmp: tmp,
        };
        for h in 1..=2u64 {
            let ops = vec![
                cluster.op(1, T0_US + h * 10),
                cluster.op(1, T0_US + h * 10 + 1),
            ];
            let block = cluster.signed_next(&cluster.tip(), ops, &[0, 1]);
            cluster.store.append_block(&block).unwrap();
        }
        let pending = vec![cluster.op(2, T0_US + 100), cluster.op(2, T0_US + 101)];
        cluster.store.put_pending(&pending).unwrap();
        cluster.engine = Engine::open(
            Config::default(),
            cluster.nodes[0].clone(),
            cluster.membership.clone(),
            &cluster.store,
            1_000,
        )
        .unwrap();
        cluster
    }

    fn key_of(&self, i: usize) -> PublicKey {
        self.nodes[i].public()
    }

    /// A valid entry by node `author`.
    fn op(&self, author: usize, time_us: u64) -> Operation {
        entry(&self.cell, &self.entry_key, &self.nodes[author], time_us)
    }

    fn tip(&self) -> exo::chain::BlockHeader {
        self.store.last_header().unwrap().unwrap()
    }

    /// The block after `previous` carrying `ops`, proposed by the first signer and signed by
    /// `signers`.
    fn signed_next(
        &self,
        previous: &exo::chain::BlockHeader,
        ops: Vec<Operation>,
        signers: &[usize],
    ) -> Block {
        let mut block = Block::propose(
            previous,
            &self.key_of(signers[0]),
            previous.time_us + 1_000,
            ops,
        )
        .unwrap();
        for &i in signers {
            block.sign(&self.cell.public(), &self.nodes[i]);
        }
        block
    }

    /// The proposer of `(height, round)`: chain nodes sorted by key bytes, index
    /// `(height + round) mod n` (`spec/replication.md` section 5.1).
    fn proposer(&self, height: u64, round: u32) -> usize {
        let mut sorted: Vec<usize> = (0..self.nodes.len()).collect();
        sorted.sort_by_key(|&i| self.key_of(i).to_bytes());
        sorted[((height + u64::from(round)) % sorted.len() as u64) as usize]
    }

    /// A round at `height` whose proposer is not A, and that proposer.
    fn foreign_round(&self, height: u64) -> (u32, usize) {
        (0..3u32)
            .map(|r| (r, self.proposer(height, r)))
            .find(|(_, p)| *p != 0)
            .unwrap()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            height: self.store.height().unwrap().unwrap(),
            last_hash: self.tip().hash(),
            pending: self.store.pending_count().unwrap(),
            engine_tip: self.engine.tip().hash(),
            engine_pending: self.engine.pending_count(),
        }
    }

    /// One engine step on A, applied like the glue does.
    fn step(&mut self, now_ms: u64, input: Input) -> Output {
        let output = self.engine.step(&self.store, now_ms, input);
        engine::apply(&self.store, &output).unwrap();
        output
    }

    fn receive(&mut self, from: usize, message: ChainMessage) -> Output {
        let from = self.key_of(from);
        self.step(2_000, Input::Message { from, message })
    }
}

/// Asserts the output refused something with a reason containing `needle`, and wrote and
/// acknowledged nothing.
#[track_caller]
fn assert_refused(out: &Output, needle: &str) {
    let reasons: Vec<&str> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Rejected { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains(needle)),
        "expected a refusal mentioning {needle:?}, got {reasons:?} (events {:?})",
        out.events
    );
    assert!(
        out.writes.is_empty(),
        "refused input wrote {:?}",
        out.writes
    );
    assert!(out.vote.is_none(), "refused input changed the vote");
    assert!(
        !out.events.iter().any(|e| matches!(
            e,
            Event::OperationsAdded { .. } | Event::BlockCommitted { .. }
        )),
        "refused input was taken: {:?}",
        out.events
    );
}

// ---------------------------------------------------------------------------------------
// Bad signatures.

#[test]
fn a_block_signature_that_does_not_verify_is_refused() {
    let mut c = Cluster::new();
    let before = c.snapshot();
    let height = before.height + 1;
    let block = c.signed_next(&c.tip(), vec![c.op(1, T0_US + 500)], &[1]);
    let mut signature = block.signatures[0].clone();
    signature.signature[10] ^= 0x40;
    let out = c.receive(
        1,
        ChainMessage::Sign(Sign {
            height,
            hash: block.hash(),
            signature,
        }),
    );
    assert_refused(&out, "invalid block signature");
    assert_eq!(c.snapshot(), before);
}

#[test]
fn a_proposal_carrying_an_operation_with_a_bad_signature_is_refused() {
    let mut c = Cluster::new();
    let before = c.snapshot();
    let height = before.height + 1;
    let (round, proposer) = c.foreign_round(height);
    let mut op = c.op(1, T0_US + 500);
    op.signature[0] ^= 1;
    let block =
        Block::propose(&c.tip(), &c.key_of(proposer), c.tip().time_us + 1, vec![op]).unwrap();
    let out = c.receive(
        proposer,
        ChainMessage::Accept(Accept {
            height,
            round,
            block,
        }),
    );
    assert_refused(&out, "invalid proposal");
    assert_refused(&out, "bad signature");
    assert_eq!(c.snapshot(), before);
}

// ---------------------------------------------------------------------------------------
// Wrong previous hash.

#[test]
fn a_proposal_with_a_wrong_previous_hash_is_refused() {
    let mut c = Cluster::new();
    let before = c.snapshot();
    let height = before.height + 1;
    let (round, proposer) = c.foreign_round(height);
    let mut parent = c.tip();
    parent.operation_count += 1; // any change gives another hash
    let block = Block::propose(
        &parent,
        &c.key_of(proposer),
        parent.time_us + 1,
        vec![c.op(1, T0_US + 500)],
    )
    .unwrap();
    assert_ne!(block.header.previous, c.tip().hash());
    let out = c.receive(
        proposer,
        ChainMessage::Accept(Accept {
            height,
            round,
            block,
        }),
    );
    assert_refused(&out, "invalid proposal");
    assert_refused(&out, "does not link to the previous block's hash");
    assert_eq!(c.snapshot(), before);
}

/// A chain-sync answer of two quorum-signed blocks, the second linking to a wrong hash:
/// the whole answer is dropped, the valid first block included.
#[test]
fn a_synced_block_with_a_wrong_previous_hash_drops_the_whole_answer() {
    let mut c = Cluster::new();
    let before = c.snapshot();
    let good = c.signed_next(&c.tip(), vec![c.op(1, T0_US + 500)], &[1, 2]);
    let mut wrong_parent = good.header.clone();
    wrong_parent.time_us += 1;
    let bad = c.signed_next(&wrong_parent, vec![c.op(1, T0_US + 600)], &[1, 2]);
    let peer_tip = Status {
        height: bad.header.height,
        hash: bad.hash(),
    };
    // B says it is ahead; A asks it for blocks.
    c.receive(1, ChainMessage::Status(peer_tip.clone()));
    let out = c.step(2_100, Input::Tick);
    let request_id = out
        .messages
        .iter()
        .find_map(|m| match &m.message {
            ChainMessage::GetBlocks(g) if m.to == c.key_of(1) => Some(g.request_id),
            _ => None,
        })
        .expect("a block request to the peer ahead");
    let out = c.receive(
        1,
        ChainMessage::Blocks(Blocks {
            request_id,
            tip: peer_tip,
            blocks: vec![good, bad],
        }),
    );
    assert_refused(&out, "invalid block from chain sync");
    assert_refused(&out, "does not link to the previous block's hash");
    assert_eq!(c.snapshot(), before);
}

// ---------------------------------------------------------------------------------------
// Forged authors.

#[test]
fn operations_with_a_forged_author_are_refused() {
    let mut c = Cluster::new();
    let before = c.snapshot();
    let outsider = key(9);
    // 1. Signed by a node that is not a member of the cell.
    let not_member = entry(&c.cell, &c.entry_key, &outsider, T0_US + 500);
    // 2. Claims to be by B, signed by the outsider.
    let id = OperationId::new(T0_US + 501, &c.key_of(1));
    let mut impostor =
        Operation::new_entry(&c.cell.public(), &c.entry_key, id, &outsider, b"x").unwrap();
    impostor.author = c.key_of(1);
    // 3. By C, under an id that belongs to B.
    let id = OperationId::new(T0_US + 502, &c.key_of(1));
    let stolen_id =
        Operation::new_entry(&c.cell.public(), &c.entry_key, id, &c.nodes[2], b"x").unwrap();
    for (op, needle) in [
        (not_member, "is not a member of the cell"),
        (impostor, "bad signature"),
        (stolen_id, "does not belong to author"),
    ] {
        let out = c.receive(
            1,
            ChainMessage::Operations(Operations {
                reply_to: None,
                operations: vec![op.clone()],
            }),
        );
        assert_refused(&out, "invalid operation");
        assert_refused(&out, needle);
        // The same operation as a local write is refused too.
        let out = c.step(
            2_000,
            Input::Write {
                operations: vec![op],
            },
        );
        assert_refused(&out, "invalid operation");
        assert!(out
            .events
            .iter()
            .all(|e| !matches!(e, Event::Rejected { peer: Some(_), .. })));
        assert_eq!(c.snapshot(), before);
    }
    // A chain signature by a node without the chain role.
    let height = before.height + 1;
    let block = c.signed_next(&c.tip(), Vec::new(), &[1]);
    let out = c.receive(
        1,
        ChainMessage::Sign(Sign {
            height,
            hash: block.hash(),
            signature: exo::chain::BlockSignature::new(&c.cell.public(), &block.hash(), &outsider),
        }),
    );
    assert_refused(&out, "without the chain role");
    // A message whose sender is not a member at all.
    let out = c.step(
        2_000,
        Input::Message {
            from: outsider.public(),
            message: ChainMessage::Status(Status {
                height: 99,
                hash: [0; 32],
            }),
        },
    );
    assert_refused(&out, "not a member");
    assert_eq!(c.snapshot(), before);
}

// ---------------------------------------------------------------------------------------
// Replay from another cell.

#[test]
fn an_operation_replayed_from_another_cell_is_refused() {
    let mut c = Cluster::new();
    let before = c.snapshot();
    // B is also a member of another cell; an operation it signed there is valid there only.
    let other_cell = key(7);
    let other_key = EntryKey::from_cell_keypair(&other_cell);
    let replayed = entry(&other_cell, &other_key, &c.nodes[1], T0_US + 500);
    let other_membership = Membership::new(other_cell.public(), Vec::new(), vec![c.key_of(1)]);
    replayed.verify(&other_membership).unwrap();

    let out = c.receive(
        1,
        ChainMessage::Operations(Operations {
            reply_to: None,
            operations: vec![replayed.clone()],
        }),
    );
    assert_refused(&out, "invalid operation");
    assert_refused(&out, "from another cell");
    assert_eq!(c.snapshot(), before);

    // Inside a proposal.
    let height = before.height + 1;
    let (round, proposer) = c.foreign_round(height);
    let block = Block::propose(
        &c.tip(),
        &c.key_of(proposer),
        c.tip().time_us + 1,
        vec![replayed],
    )
    .unwrap();
    let out = c.receive(
        proposer,
        ChainMessage::Accept(Accept {
            height,
            round,
            block,
        }),
    );
    assert_refused(&out, "invalid proposal");
    assert_eq!(c.snapshot(), before);
}

// ---------------------------------------------------------------------------------------
// Damaged LMDB values.

/// LMDB leaf nodes of the `blocks` database whose key is `height` and whose value is
/// `size_bytes` long: `(offset of the node header in data.mdb)`. Node header (little-endian
/// on every target we run): data size as u16 lo, u16 hi; u16 flags; u16 key size (8); then
/// the key (height, big-endian). Copy-on-write leaves stale copies in free pages: all
/// matching nodes are returned.
fn block_nodes(bytes: &[u8], height: u64, size_bytes: usize) -> Vec<usize> {
    let mut key = vec![8u8, 0];
    key.extend_from_slice(&height.to_be_bytes());
    let mut found = Vec::new();
    for at in 6..bytes.len().saturating_sub(key.len()) {
        if bytes[at..at + key.len()] != key[..] {
            continue;
        }
        let node = at - 6;
        let lo = u16::from_le_bytes([bytes[node], bytes[node + 1]]) as usize;
        let hi = u16::from_le_bytes([bytes[node + 2], bytes[node + 3]]) as usize;
        if lo | (hi << 16) == size_bytes {
            found.push(node);
        }
    }
    found
}

/// Flips one bit in every copy of `pattern` in `data.mdb`; returns how many it found.
fn flip_on_disk(dir: &Path, pattern: &[u8]) -> usize {
    let path = dir.join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut found = 0;
    let mut i = 0;
    while i + pattern.len() <= bytes.len() {
        if bytes[i..i + pattern.len()] == *pattern {
            bytes[i + pattern.len() / 2] ^= 0x01;
            found += 1;
            i += pattern.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(&path, bytes).unwrap();
    found
}

/// A single-node cell's chain of `blocks` blocks after genesis (one operation each),
/// written in one transaction. Returns the blocks, genesis first.
fn build_chain(dir: &Path, cell: &Keypair, node: &Keypair, blocks: u64) -> Vec<Block> {
    let entry_key = EntryKey::from_cell_keypair(cell);
    let store = ChainStore::open(dir, &cell.public(), DEFAULT_MAP_SIZE_BYTES).unwrap();
    let mut chain = vec![Block::genesis(cell, T0_US)];
    for h in 1..=blocks {
        let previous = &chain.last().unwrap().header;
        let op = entry(cell, &entry_key, node, T0_US + h);
        let mut block =
            Block::propose(previous, &node.public(), previous.time_us + 1, vec![op]).unwrap();
        block.sign(&cell.public(), node);
        chain.push(block);
    }
    store
        .batch(|batch| {
            for block in &chain {
                batch.append_block(block)?;
            }
            Ok(())
        })
        .unwrap();
    store
        .put_pending(&[entry(cell, &entry_key, node, T0_US + 10_000)])
        .unwrap();
    chain
}

/// What another cell's store looks like; it must not change when a neighbour is damaged.
fn state_of(store: &ChainStore, membership: &Membership) -> (u64, [u8; 32], u64, u64) {
    (
        store.height().unwrap().unwrap(),
        store.last_header().unwrap().unwrap().hash(),
        store.pending_count().unwrap(),
        store.verify_all(membership).unwrap(),
    )
}

#[test]
fn a_truncated_block_value_is_reported_on_open_with_its_height() {
    let root = tempfile::tempdir().unwrap();
    let (cell, node) = (key(1), key(2));
    let dir = root.path().join("damaged");
    let chain = build_chain(&dir, &cell, &node, 3);
    // A neighbour cell on the same machine, open the whole time.
    let (other_cell, other_node) = (key(5), key(6));
    let other_membership =
        Membership::new(other_cell.public(), Vec::new(), vec![other_node.public()]);
    build_chain(&root.path().join("other"), &other_cell, &other_node, 3);
    let other = ChainStore::open(
        &root.path().join("other"),
        &other_cell.public(),
        DEFAULT_MAP_SIZE_BYTES,
    )
    .unwrap();
    let other_before = state_of(&other, &other_membership);

    // Cut the last 40 bytes off the stored value of block 2 (its size field shrinks).
    let path = dir.join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let size = chain[2].to_bytes().len();
    let nodes = block_nodes(&bytes, 2, size);
    assert!(!nodes.is_empty(), "block 2's node not found in data.mdb");
    for node in nodes {
        let cut = (size - 40) as u32;
        bytes[node..node + 2].copy_from_slice(&(cut as u16).to_le_bytes());
        bytes[node + 2..node + 4].copy_from_slice(&((cut >> 16) as u16).to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();

    let err = ChainStore::open(&dir, &cell.public(), DEFAULT_MAP_SIZE_BYTES).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("block at height 2"), "{err}");
    assert_eq!(state_of(&other, &other_membership), other_before);
    drop(other);
    let other = ChainStore::open(
        &root.path().join("other"),
        &other_cell.public(),
        DEFAULT_MAP_SIZE_BYTES,
    )
    .unwrap();
    assert_eq!(state_of(&other, &other_membership), other_before);
}

/// A bit flip in a block older than the startup check: open succeeds, `check` and
/// `verify_all` name the height (never a panic), and the rest of the chain and a neighbour
/// cell are unaffected.
#[test]
fn a_bit_flip_in_an_old_block_is_found_by_check_and_never_panics() {
    let root = tempfile::tempdir().unwrap();
    let (cell, node) = (key(1), key(2));
    let membership = Membership::new(cell.public(), Vec::new(), vec![node.public()]);
    let dir = root.path().join("damaged");
    let blocks = exo::chain::store::STARTUP_CHECK_BLOCKS + 3;
    let chain = build_chain(&dir, &cell, &node, blocks);
    let other_dir = root.path().join("other");
    let (other_cell, other_node) = (key(5), key(6));
    let other_membership =
        Membership::new(other_cell.public(), Vec::new(), vec![other_node.public()]);
    build_chain(&other_dir, &other_cell, &other_node, 3);
    let other = ChainStore::open(&other_dir, &other_cell.public(), DEFAULT_MAP_SIZE_BYTES).unwrap();
    let other_before = state_of(&other, &other_membership);

    // Flip a bit in the signature of block 1's only operation.
    assert!(flip_on_disk(&dir, &chain[1].operations[0].signature) >= 1);

    let store = ChainStore::open(&dir, &cell.public(), DEFAULT_MAP_SIZE_BYTES).unwrap();
    assert_eq!(store.height().unwrap(), Some(blocks));
    assert_eq!(
        store.last_header().unwrap().unwrap().hash(),
        chain.last().unwrap().hash()
    );
    assert_eq!(store.pending_count().unwrap(), 1);
    for err in [
        store.check(0).unwrap_err(),
        store.verify_all(&membership).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("block at height 1"), "{err}");
    }
    assert_eq!(store.check(2).unwrap(), blocks - 1);

    // The engine starts: the recent chain is sound (a peer it serves block 1 to verifies it
    // and refuses it, as in the tests above).
    let engine = Engine::open(Config::default(), node, membership, &store, 1_000).unwrap();
    assert_eq!(engine.tip().height, blocks);
    assert_eq!(state_of(&other, &other_membership), other_before);
}

// ---------------------------------------------------------------------------------------
// Sync replies that claim huge counts.

/// A `Blocks` (tag 10) prefix: request id, the responder's tip, then `count` as the number
/// of blocks that follow.
fn blocks_reply_claiming(count: u64) -> Vec<u8> {
    let mut bytes = 10u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&7u64.to_le_bytes()); // request id
    bytes.extend_from_slice(&1_000u64.to_le_bytes()); // tip height
    bytes.extend_from_slice(&[0xab; 32]); // tip hash
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes
}

/// An `Operations` (tag 3) answer to request 7 claiming `count` operations.
fn operations_reply_claiming(count: u64) -> Vec<u8> {
    let mut bytes = 3u32.to_le_bytes().to_vec();
    bytes.push(1); // Some(
    bytes.extend_from_slice(&7u64.to_le_bytes()); // request id)
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes
}

#[test]
fn sync_replies_claiming_huge_counts_are_refused_before_allocating() {
    let mut c = Cluster::new();
    let before = c.snapshot();
    // One block whose operation list claims 2^62 operations.
    let mut block_claiming = blocks_reply_claiming(1);
    let header = c.tip();
    block_claiming.extend_from_slice(&header.to_bytes());
    block_claiming.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let mut inputs = vec![
        ("blocks, count u64::MAX", blocks_reply_claiming(u64::MAX)),
        ("blocks, count 2^40", blocks_reply_claiming(1 << 40)),
        ("blocks, count 1,000,000", blocks_reply_claiming(1_000_000)),
        ("one block claiming 2^62 operations", block_claiming),
        (
            "operations, count u64::MAX",
            operations_reply_claiming(u64::MAX),
        ),
        ("operations, count 2^32", operations_reply_claiming(1 << 32)),
        (
            "operations, count 100,000",
            operations_reply_claiming(100_000),
        ),
    ];
    // Some trailing garbage after the claim changes nothing.
    let mut padded = blocks_reply_claiming(1 << 20);
    padded.extend_from_slice(&[0x55; 4096]);
    inputs.push(("blocks, count 2^20 then 4 KiB", padded));
    // The probe works: a well-formed answer carrying one block allocates what it decodes.
    let genesis = c.store.get_block(0).unwrap().unwrap();
    let honest = ChainMessage::Blocks(Blocks {
        request_id: 7,
        tip: Status {
            height: 0,
            hash: genesis.hash(),
        },
        blocks: vec![genesis.clone()],
    })
    .to_bytes()
    .unwrap();
    let (decoded, largest) = largest_allocation(|| ChainMessage::from_bytes(&honest));
    decoded.unwrap();
    assert!(largest > 0);
    for (what, bytes) in inputs {
        let (result, largest) = largest_allocation(|| ChainMessage::from_bytes(&bytes));
        let err = result.expect_err(what);
        let reason = err.to_string();
        assert!(!reason.is_empty(), "{what}");
        assert!(
            largest <= 64 << 10,
            "{what}: decoding allocated {largest} bytes at once ({reason})"
        );
    }
    // Lists over the protocol's bounds, built in memory (as a peer's decoded message would
    // be): the engine refuses them before looking inside.
    let too_many_blocks = ChainMessage::Blocks(Blocks {
        request_id: 1,
        tip: Status {
            height: 1_000,
            hash: [0xab; 32],
        },
        blocks: vec![genesis; exo::engine::message::BLOCKS_MAX + 1],
    });
    let out = c.receive(1, too_many_blocks);
    assert_refused(&out, "over the limit");
    let op = c.op(1, T0_US + 500);
    let too_many_ops = ChainMessage::Operations(Operations {
        reply_to: Some(1),
        operations: vec![op; exo::engine::message::OPERATIONS_MAX + 1],
    });
    let out = c.receive(1, too_many_ops);
    assert_refused(&out, "over the limit");
    assert_eq!(c.snapshot(), before);
}
