//! The chain store on a real LMDB environment in a temporary folder: what a node relies on
//! across restarts, truncation, growth and damage.

use std::path::Path;

use exo::chain::store::DEFAULT_MAP_SIZE_BYTES;
use exo::chain::{
    Block, ChainStore, EntryKey, Location, Membership, Operation, OperationId, StoreError,
};
use exocore_protocol::identity::{Keypair, PublicKey};

struct Cell {
    cell: Keypair,
    node: Keypair,
    key: EntryKey,
    membership: Membership,
}

impl Cell {
    fn new() -> Cell {
        let cell = Keypair::generate();
        let node = Keypair::generate();
        Cell {
            key: EntryKey::from_cell_keypair(&cell),
            membership: Membership::new(cell.public(), vec![], vec![node.public()]),
            cell,
            node,
        }
    }

    fn id(&self) -> PublicKey {
        self.cell.public()
    }

    fn open(&self, dir: &Path) -> ChainStore {
        ChainStore::open(dir, &self.id(), DEFAULT_MAP_SIZE_BYTES).unwrap()
    }

    fn entry(&self, time_us: u64, text: &[u8]) -> Operation {
        let id = OperationId::new(time_us, &self.node.public());
        Operation::new_entry(&self.id(), &self.key, id, &self.node, text).unwrap()
    }

    fn entries(&self, times: std::ops::Range<u64>) -> Vec<Operation> {
        times
            .map(|t| self.entry(t, format!("entry {t}").as_bytes()))
            .collect()
    }

    /// The next block after the store's last one, with `ops`, signed by the single chain node.
    fn next_block(&self, store: &ChainStore, ops: Vec<Operation>) -> Block {
        let last = store.last_header().unwrap().expect("genesis first");
        let mut block = Block::propose(&last, &self.node.public(), last.time_us + 1, ops).unwrap();
        block.sign(&self.id(), &self.node);
        block.verify(&last, &self.membership).unwrap();
        block
    }

    fn with_genesis(&self, dir: &Path) -> ChainStore {
        let store = self.open(dir);
        store.append_block(&Block::genesis(&self.cell, 1)).unwrap();
        store
    }
}

#[test]
fn blocks_and_pending_operations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let ops = cell.entries(10..20);
    {
        let store = cell.with_genesis(dir.path());
        let outcome = store.put_pending(&ops).unwrap();
        assert_eq!(outcome.added.len(), 10);
        let block = cell.next_block(&store, ops[..4].to_vec());
        store.append_block(&block).unwrap();
        assert_eq!(store.pending_count().unwrap(), 6);
    }
    let store = cell.open(dir.path());
    assert_eq!(store.height().unwrap(), Some(1));
    let block = store.get_block(1).unwrap().unwrap();
    assert_eq!(block.operations, ops[..4]);
    block
        .verify(&store.get_header(0).unwrap().unwrap(), &cell.membership)
        .unwrap();
    assert_eq!(store.height_of(&block.hash()).unwrap(), Some(1));
    assert_eq!(store.last_block().unwrap().unwrap(), block);
    assert_eq!(store.get_block_bytes(1).unwrap().unwrap(), block.to_bytes());
    for op in &ops[..4] {
        let (found, location) = store.operation(&op.id).unwrap().unwrap();
        assert_eq!(&found, op);
        assert_eq!(location, Location::Committed { height: 1 });
        assert_eq!(
            found.open_entry(&cell.key).unwrap(),
            format!("entry {}", op.id.time_us).as_bytes()
        );
    }
    for op in &ops[4..] {
        assert_eq!(
            store.operation(&op.id).unwrap(),
            Some((op.clone(), Location::Pending))
        );
    }
    assert_eq!(store.pending_range(.., 100).unwrap(), ops[4..]);
    assert_eq!(store.verify_all(&cell.membership).unwrap(), 2);
    assert_eq!(store.check(0).unwrap(), 2);
}

#[test]
fn operation_ids_never_repeat_across_restarts_and_clock_steps() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let author = cell.node.public();
    let mut issued = Vec::new();
    {
        let store = cell.open(dir.path());
        issued.push(store.next_operation_time(1_000_000).unwrap());
        issued.push(store.next_operation_time(1_000_000).unwrap());
        let ids = store.next_operation_ids(&author, 2_000_000, 100).unwrap();
        issued.extend(ids.iter().map(|id| id.time_us));
        assert!(ids.iter().all(|id| id.is_from(&author)));
    }
    // After a restart, the wall clock has stepped back by an hour.
    let store = cell.open(dir.path());
    assert_eq!(store.last_operation_time().unwrap(), 2_000_099);
    issued.push(store.next_operation_time(1_000).unwrap());
    issued.extend(
        store
            .next_operation_ids(&author, 0, 10)
            .unwrap()
            .iter()
            .map(|id| id.time_us),
    );
    issued.push(store.next_operation_time(5_000_000).unwrap());
    assert!(
        issued.windows(2).all(|w| w[0] < w[1]),
        "not strictly increasing: {issued:?}"
    );
    assert_eq!(issued[102], 2_000_100);
    assert_eq!(*issued.last().unwrap(), 5_000_000);
}

#[test]
fn truncation_returns_every_operation_to_pending() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let ops = cell.entries(100..130);
    let hashes: Vec<[u8; 32]> = {
        let store = cell.with_genesis(dir.path());
        store.put_pending(&ops).unwrap();
        for chunk in ops.chunks(10) {
            let block = cell.next_block(&store, chunk.to_vec());
            store.append_block(&block).unwrap();
        }
        assert_eq!(store.height().unwrap(), Some(3));
        assert_eq!(store.pending_count().unwrap(), 0);
        let hashes = (0..=3)
            .map(|h| store.get_header(h).unwrap().unwrap().hash())
            .collect();
        let returned = store.truncate_from(2).unwrap();
        assert_eq!(returned, ops[10..]);
        hashes
    };
    let store = cell.open(dir.path());
    assert_eq!(store.height().unwrap(), Some(1));
    assert_eq!(store.height_of(&hashes[2]).unwrap(), None);
    assert_eq!(store.height_of(&hashes[1]).unwrap(), Some(1));
    assert_eq!(store.pending_count().unwrap(), 20);
    for op in &ops[10..] {
        assert_eq!(
            store.operation(&op.id).unwrap().unwrap().1,
            Location::Pending
        );
    }
    // Nothing lost: the returned operations can be committed again, in a different block.
    let block = cell.next_block(&store, store.pending_range(.., 100).unwrap());
    store.append_block(&block).unwrap();
    assert_eq!(store.pending_count().unwrap(), 0);
    let committed: usize = (1..=2)
        .map(|h| store.get_block(h).unwrap().unwrap().operations.len())
        .sum();
    assert_eq!(committed, 30);
    // Past the end: nothing to drop. From 0: even genesis goes, and the operations return.
    assert!(store.truncate_from(10).unwrap().is_empty());
    assert_eq!(store.truncate_from(0).unwrap().len(), 30);
    assert_eq!(store.height().unwrap(), None);
    assert_eq!(store.pending_count().unwrap(), 30);
}

#[test]
fn a_node_never_signs_two_blocks_at_one_height_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let (a, b) = ([1u8; 32], [2u8; 32]);
    {
        let store = cell.open(dir.path());
        assert_eq!(store.last_signed().unwrap(), None);
        assert!(store.record_signed(5, &a).unwrap());
        assert!(
            store.record_signed(5, &a).unwrap(),
            "the same block again is fine"
        );
        assert!(!store.record_signed(5, &b).unwrap());
    }
    let store = cell.open(dir.path());
    assert_eq!(store.last_signed().unwrap(), Some((5, a)));
    assert!(!store.record_signed(5, &b).unwrap());
    assert!(
        !store.record_signed(4, &b).unwrap(),
        "never below a signed height"
    );
    assert!(store.record_signed(6, &b).unwrap());
    assert!(!store.record_signed(5, &a).unwrap());
}

#[test]
fn a_tiny_map_grows_to_hold_many_mib() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let text = vec![7u8; 60 * 1024];
    let count = 400u64; // ~24 MiB of operations into a 1 MiB map.
    {
        let store = ChainStore::open(dir.path(), &cell.id(), 1).unwrap();
        assert_eq!(store.map_size_bytes(), 1 << 20);
        store.append_block(&Block::genesis(&cell.cell, 1)).unwrap();
        let ops: Vec<Operation> = (0..count)
            .map(|t| {
                let id = OperationId::new(t + 10, &cell.node.public());
                Operation::new_entry(&cell.id(), &cell.key, id, &cell.node, &text).unwrap()
            })
            .collect();
        for chunk in ops.chunks(50) {
            store.put_pending(chunk).unwrap();
        }
        // And a block larger than the initial map, in one transaction.
        let block = cell.next_block(&store, ops[..100].to_vec());
        assert!(block.size_bytes() > 5 << 20);
        store.append_block(&block).unwrap();
        assert!(
            store.map_size_bytes() >= 16 << 20,
            "{}",
            store.map_size_bytes()
        );
    }
    let store = ChainStore::open(dir.path(), &cell.id(), 1).unwrap();
    assert_eq!(store.pending_count().unwrap(), count - 100);
    assert_eq!(store.get_block(1).unwrap().unwrap().operations.len(), 100);
}

#[test]
fn appends_that_do_not_extend_the_chain_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let store = cell.open(dir.path());
    // An empty chain accepts only this cell's genesis.
    let foreign = Block::genesis(&Keypair::generate(), 1);
    assert!(matches!(
        store.append_block(&foreign),
        Err(StoreError::Invalid(_))
    ));
    store.append_block(&Block::genesis(&cell.cell, 1)).unwrap();
    let ops = cell.entries(1..4);
    let block = cell.next_block(&store, ops.clone());
    assert!(matches!(
        store.append_block(&Block::genesis(&cell.cell, 1)),
        Err(StoreError::NotNext {
            expected: 1,
            found: 0
        })
    ));
    let mut bad_link = block.clone();
    bad_link.header.previous = [9; 32];
    assert!(matches!(
        store.append_block(&bad_link),
        Err(StoreError::WrongPrevious { height: 1 })
    ));
    let mut bad_hash = block.clone();
    bad_hash.operations.pop();
    assert!(matches!(
        store.append_block(&bad_hash),
        Err(StoreError::Invalid(_))
    ));
    store.append_block(&block).unwrap();
    // An operation committed twice.
    let again = cell.next_block(&store, vec![ops[0].clone(), cell.entry(50, b"new")]);
    assert!(matches!(
        store.append_block(&again),
        Err(StoreError::AlreadyCommitted { height: 1, .. })
    ));
    // The refused append left nothing behind.
    assert_eq!(store.height().unwrap(), Some(1));
    assert_eq!(store.operation(&again.operations[1].id).unwrap(), None);
    assert_eq!(store.verify_all(&cell.membership).unwrap(), 2);
}

#[test]
fn pending_puts_skip_known_operations_and_refuse_conflicting_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let store = cell.with_genesis(dir.path());
    let ops = cell.entries(1..6);
    assert_eq!(store.put_pending(&ops).unwrap().added.len(), 5);
    let block = cell.next_block(&store, ops[..2].to_vec());
    store.append_block(&block).unwrap();
    // Re-sending everything (as a sync peer would) adds nothing.
    let outcome = store.put_pending(&ops).unwrap();
    assert!(outcome.added.is_empty());
    assert_eq!(outcome.known, 5);
    // Same id, other bytes: refused, the first one stays.
    let clash = cell.entry(ops[3].id.time_us, b"something else");
    let outcome = store.put_pending(&[clash]).unwrap();
    assert_eq!(outcome.conflicts, vec![ops[3].id]);
    assert_eq!(store.operation(&ops[3].id).unwrap().unwrap().0, ops[3]);
    assert_eq!(store.remove_pending(&[ops[3].id, ops[0].id]).unwrap(), 1);
    assert_eq!(store.pending_count().unwrap(), 2);
}

#[test]
fn pending_ranges_follow_id_order_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let store = cell.open(dir.path());
    let mut ops = cell.entries(1..51);
    ops.reverse();
    store.put_pending(&ops).unwrap();
    ops.reverse();
    let all = store.pending_range(.., 1000).unwrap();
    assert_eq!(all, ops);
    assert_eq!(store.pending_range(.., 7).unwrap(), ops[..7]);
    assert_eq!(
        store.pending_range(ops[10].id..ops[20].id, 1000).unwrap(),
        ops[10..20]
    );
    assert_eq!(
        store.pending_range(ops[10].id..=ops[20].id, 1000).unwrap(),
        ops[10..=20]
    );
    assert_eq!(store.pending_range(ops[45].id.., 1000).unwrap(), ops[45..]);
    let hashes = store.pending_hashes(..ops[3].id, 1000).unwrap();
    let expected: Vec<_> = ops[..3].iter().map(|op| (op.id, op.hash())).collect();
    assert_eq!(hashes, expected);
}

#[test]
fn a_batch_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let store = cell.with_genesis(dir.path());
    let ops = cell.entries(1..4);
    let result = store.batch(|batch| {
        batch.put_pending(&ops)?;
        batch.record_signed(1, &[1; 32])?;
        batch.next_operation_times(99, 1)?;
        batch.put_vote(b"a vote")?;
        // Then a write that fails: the whole batch is discarded.
        batch.append_block(&Block::genesis(&cell.cell, 2))
    });
    assert!(matches!(result, Err(StoreError::NotNext { .. })));
    assert_eq!(store.pending_count().unwrap(), 0);
    assert_eq!(store.last_signed().unwrap(), None);
    assert_eq!(store.last_operation_time().unwrap(), 0);
    assert_eq!(store.vote().unwrap(), None);
    // A successful batch: operations, a block committing some, and the signature record.
    store
        .batch(|batch| {
            batch.put_pending(&ops)?;
            let last = batch.last_header()?.unwrap();
            let mut block = Block::propose(&last, &cell.node.public(), 5, ops[..1].to_vec())
                .map_err(StoreError::from)?;
            block.sign(&cell.id(), &cell.node);
            assert!(batch.record_signed(1, &block.hash())?);
            batch.append_block(&block)
        })
        .unwrap();
    assert_eq!(store.pending_count().unwrap(), 2);
    assert_eq!(store.height().unwrap(), Some(1));
}

#[test]
fn the_consensus_vote_is_durable_atomic_and_kept_by_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let ops = cell.entries(1..4);
    {
        let store = cell.with_genesis(dir.path());
        assert_eq!(store.vote().unwrap(), None);
        store
            .batch(|batch| {
                batch.put_pending(&ops)?;
                batch.put_vote(b"first")?;
                assert_eq!(batch.vote()?.as_deref(), Some(&b"first"[..]));
                batch.put_vote(b"second")
            })
            .unwrap();
        let block = cell.next_block(&store, ops.clone());
        store.append_block(&block).unwrap();
        store.truncate_from(1).unwrap();
        assert_eq!(store.vote().unwrap().as_deref(), Some(&b"second"[..]));
        let too_large = vec![0u8; exo::chain::store::VOTE_SIZE_BYTES_MAX + 1];
        let err = store.batch(|batch| batch.put_vote(&too_large)).unwrap_err();
        assert!(matches!(err, StoreError::VoteTooLarge { .. }), "{err}");
    }
    let store = cell.open(dir.path());
    assert_eq!(store.vote().unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(store.pending_count().unwrap(), 3);
}

#[test]
fn a_store_of_another_cell_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    drop(cell.with_genesis(dir.path()));
    let other = Cell::new();
    let err = ChainStore::open(dir.path(), &other.id(), DEFAULT_MAP_SIZE_BYTES).unwrap_err();
    assert!(err.to_string().contains("does not belong to cell"), "{err}");
}

/// Flips one bit in every copy of `pattern` in the data file (copy-on-write leaves old copies
/// in free pages; the live one is among them). Returns how many copies it found.
fn flip_on_disk(dir: &Path, pattern: &[u8]) -> usize {
    let path = dir.join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut found = 0;
    let mut i = 0;
    while i + pattern.len() <= bytes.len() {
        if &bytes[i..i + pattern.len()] == pattern {
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

#[test]
fn a_bit_flip_in_a_stored_block_is_reported_on_open_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let signature = {
        let store = cell.with_genesis(dir.path());
        let block = cell.next_block(&store, cell.entries(1..5));
        store.append_block(&block).unwrap();
        block.operations[2].signature
    };
    assert!(flip_on_disk(dir.path(), &signature) >= 1);
    let err = ChainStore::open(dir.path(), &cell.id(), DEFAULT_MAP_SIZE_BYTES).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("height 1"), "{err}");
}

#[test]
fn a_bit_flip_in_a_pending_operation_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    let ops = cell.entries(1..4);
    {
        let store = cell.open(dir.path());
        store.put_pending(&ops).unwrap();
    }
    // Flip a bit in the author key of the second operation: it no longer decodes, or no longer
    // verifies.
    let mut pattern = ops[1].id.to_bytes().to_vec();
    pattern.extend_from_slice(&ops[1].author.to_bytes());
    assert!(flip_on_disk(dir.path(), &pattern) >= 1);
    let store = cell.open(dir.path());
    match store.operation(&ops[1].id) {
        Err(StoreError::Corrupt { what, .. }) => assert!(what.contains("pending")),
        Ok(Some((op, _))) => assert!(op.verify(&cell.membership).is_err()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn startup_checks_cover_the_recent_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::new();
    {
        let store = cell.with_genesis(dir.path());
        for t in 0..5u64 {
            let block = cell.next_block(&store, vec![cell.entry(t + 1, b"x")]);
            store.append_block(&block).unwrap();
        }
    }
    let store = cell.open(dir.path());
    assert_eq!(store.check(0).unwrap(), 6);
    assert_eq!(store.check(3).unwrap(), 3);
    assert_eq!(store.blocks(2, 10, usize::MAX).unwrap().len(), 4);
    assert_eq!(store.blocks(0, 2, usize::MAX).unwrap().len(), 2);
    assert_eq!(store.blocks(0, 10, 1).unwrap().len(), 1);
}
