//! The chain of one cell on disk: an LMDB environment at `<cell dir>/chain/` holding the
//! committed blocks, an index of their operations, the persisted pending store, and metadata
//! (format version, cell id, the operation clock, the last height this node signed).
//!
//! ```text
//! database  key                       value
//! blocks    height u64 BE             block encoding
//! hashes    block hash (32)           height u64 LE
//! ops       operation id (16)         height u64 LE, offset u32 LE, length u32 LE
//!                                     (where the operation's bytes sit in the block)
//! pending   operation id (16)         operation encoding
//! meta      "version"                 u32 LE, FORMAT_VERSION
//!           "cell"                    the cell's public key (32)
//!           "last_time_us"            u64 LE, the last operation time issued
//!           "signed"                  u64 LE height, then the 32-byte hash signed there
//!           "vote"                    the consensus vote (the engine's `VoteState` encoding)
//! ```
//!
//! Keys are big-endian so LMDB's byte order is numeric order. Every write is one LMDB
//! transaction committed with fsync: when a method returns `Ok`, the write survives a crash.
//! [`ChainStore::batch`] groups writes so one fsync covers many.
//!
//! The `vote` value is opaque to the store: it holds whatever bytes the replication engine
//! gives [`Batch::put_vote`] (at most [`VOTE_SIZE_BYTES_MAX`]), so that the engine's acceptor
//! state lands in the same transaction as the writes of the step that changed it.
//!
//! Architecture invariant: the store checks what it can without the cell's membership (links,
//! hashes, order, genesis signature, no operation committed twice); signatures of operations
//! and blocks are checked by [`Block::verify`] before anything reaches it. It does no
//! networking and reads no clock.
//!
//! Architecture invariant: every transaction holds the read half of `txn_lock` for its whole
//! life, so growing the map (which needs the write half) never races a transaction.

mod lmdb;

pub use lmdb::{round_map_size, DEFAULT_MAP_SIZE_BYTES, MAP_SIZE_BYTES_LIMIT};

use std::fmt;
use std::ops::{Bound, Range, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use exocore_protocol::identity::PublicKey;
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, MdbError, RoTxn, RwTxn, WithTls};

use super::block::{Block, BlockHeader, BLOCK_HEADER_LEN};
use super::error::StoreError;
use super::id::{next_times, OperationId, OPERATION_ID_LEN};
use super::operation::Operation;
use super::verify::Membership;
use super::OPERATION_SIZE_BYTES_MAX;

/// The on-disk format this code reads and writes. A store of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Blocks whose links and hashes are re-checked on every open: the most recent ones, which a
/// crash or a full disk could have damaged. Older blocks were checked when written and on
/// earlier opens; [`ChainStore::check`] re-checks all of them (`exo cell chain check`).
pub const STARTUP_CHECK_BLOCKS: u64 = 128;

const META_VERSION: &[u8] = b"version";
const META_CELL: &[u8] = b"cell";
const META_LAST_TIME: &[u8] = b"last_time_us";
const META_SIGNED: &[u8] = b"signed";
const META_VOTE: &[u8] = b"vote";

/// Largest consensus vote the store accepts: a vote holds at most one block (without
/// signatures) and a few integers.
pub const VOTE_SIZE_BYTES_MAX: usize = super::BLOCK_SIZE_BYTES_MAX + 64;

type Db = Database<'static, Bytes, Bytes>;

/// Where a stored operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In the pending store, not yet in a block.
    Pending,
    /// In the block at this height.
    Committed {
        /// The block's height.
        height: u64,
    },
}

/// What [`Batch::put_pending`] did with each operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Operations new to this node, now pending.
    pub added: Vec<OperationId>,
    /// Operations already pending (same bytes) or already committed: nothing to do.
    pub known: usize,
    /// Operations whose id is already pending with different bytes: refused. Only a faulty
    /// or malicious author signs two operations with one id.
    pub conflicts: Vec<OperationId>,
}

/// The chain storage of one cell. `Send + Sync`: share it behind an `Arc`; LMDB serializes
/// writers and lets readers run alongside them.
pub struct ChainStore {
    env: Env<WithTls>,
    dbs: Databases,
    cell: PublicKey,
    dir: PathBuf,
    /// Read half held by every transaction; write half by map growth. See the module doc.
    txn_lock: RwLock<()>,
}

impl fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainStore")
            .field("dir", &self.dir)
            .field("cell", &self.cell)
            .finish()
    }
}

#[derive(Clone, Copy)]
struct Databases {
    blocks: Db,
    hashes: Db,
    ops: Db,
    pending: Db,
    meta: Db,
}

fn lmdb(action: &'static str) -> impl Fn(heed::Error) -> StoreError {
    move |source| StoreError::Lmdb { action, source }
}

fn corrupt(what: impl Into<String>, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

fn is_map_full(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Lmdb {
            source: heed::Error::Mdb(MdbError::MapFull),
            ..
        }
    )
}

fn is_map_resized(error: &heed::Error) -> bool {
    matches!(error, heed::Error::Mdb(MdbError::MapResized))
}

fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

fn u64_le(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn u32_le(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn bound_bytes(bound: Bound<&OperationId>) -> Bound<[u8; OPERATION_ID_LEN]> {
    match bound {
        Bound::Included(id) => Bound::Included(id.to_bytes()),
        Bound::Excluded(id) => Bound::Excluded(id.to_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_slice_bound(bound: &Bound<[u8; OPERATION_ID_LEN]>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(b) => Bound::Included(&b[..]),
        Bound::Excluded(b) => Bound::Excluded(&b[..]),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// An operation's place inside a stored block.
struct OpIndex {
    height: u64,
    offset: u32,
    len: u32,
}

impl OpIndex {
    fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.height.to_le_bytes());
        out[8..12].copy_from_slice(&self.offset.to_le_bytes());
        out[12..].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    fn from_bytes(id: &OperationId, bytes: &[u8]) -> Result<OpIndex, StoreError> {
        let bad = || corrupt(format!("index of operation {id}"), "not 16 bytes");
        if bytes.len() != 16 {
            return Err(bad());
        }
        Ok(OpIndex {
            height: u64_le(&bytes[..8]).ok_or_else(bad)?,
            offset: u32_le(&bytes[8..12]).ok_or_else(bad)?,
            len: u32_le(&bytes[12..]).ok_or_else(bad)?,
        })
    }
}

/// Reads shared by [`ChainStore`] and [`Batch`], on any transaction.
impl Databases {
    fn block_bytes<'t>(
        &self,
        txn: &'t RoTxn<'_>,
        height: u64,
    ) -> Result<Option<&'t [u8]>, StoreError> {
        self.blocks
            .get(txn, &height_key(height))
            .map_err(lmdb("read a block"))
    }

    fn block(&self, txn: &RoTxn<'_>, height: u64) -> Result<Option<Block>, StoreError> {
        let Some(bytes) = self.block_bytes(txn, height)? else {
            return Ok(None);
        };
        let block = Block::from_bytes(bytes)
            .map_err(|e| corrupt(format!("block at height {height}"), e))?;
        if block.header.height != height {
            return Err(corrupt(
                format!("block at height {height}"),
                format!("it says it is at height {}", block.header.height),
            ));
        }
        Ok(Some(block))
    }

    fn header(&self, txn: &RoTxn<'_>, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        let Some(bytes) = self.block_bytes(txn, height)? else {
            return Ok(None);
        };
        let what = || format!("block at height {height}");
        let header = bytes
            .get(..BLOCK_HEADER_LEN)
            .ok_or_else(|| corrupt(what(), "truncated header"))
            .and_then(|b| BlockHeader::from_bytes(b).map_err(|e| corrupt(what(), e)))?;
        if header.height != height {
            return Err(corrupt(
                what(),
                format!("it says it is at height {}", header.height),
            ));
        }
        Ok(Some(header))
    }

    fn last_height(&self, txn: &RoTxn<'_>) -> Result<Option<u64>, StoreError> {
        let last = self.blocks.last(txn).map_err(lmdb("read the last block"))?;
        match last {
            None => Ok(None),
            Some((key, _)) => {
                let key: [u8; 8] = key
                    .try_into()
                    .map_err(|_| corrupt("block index", "a key is not 8 bytes"))?;
                Ok(Some(u64::from_be_bytes(key)))
            }
        }
    }

    fn last_header(&self, txn: &RoTxn<'_>) -> Result<Option<BlockHeader>, StoreError> {
        match self.last_height(txn)? {
            None => Ok(None),
            Some(height) => self.header(txn, height),
        }
    }

    fn meta_u64(&self, txn: &RoTxn<'_>, key: &'static [u8]) -> Result<Option<u64>, StoreError> {
        match self.meta.get(txn, key).map_err(lmdb("read metadata"))? {
            None => Ok(None),
            Some(bytes) => u64_le(bytes)
                .map(Some)
                .ok_or_else(|| corrupt("metadata", "a value is not 8 bytes")),
        }
    }

    fn signed(&self, txn: &RoTxn<'_>) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        match self
            .meta
            .get(txn, META_SIGNED)
            .map_err(lmdb("read metadata"))?
        {
            None => Ok(None),
            Some(bytes) if bytes.len() == 40 => {
                let height = u64_le(&bytes[..8]).unwrap_or_default();
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&bytes[8..]);
                Ok(Some((height, hash)))
            }
            Some(_) => Err(corrupt(
                "metadata",
                "the signed-block record is not 40 bytes",
            )),
        }
    }

    fn pending_op(
        &self,
        txn: &RoTxn<'_>,
        id: &OperationId,
    ) -> Result<Option<Operation>, StoreError> {
        match self
            .pending
            .get(txn, &id.to_bytes())
            .map_err(lmdb("read a pending operation"))?
        {
            None => Ok(None),
            Some(bytes) => decode_pending(id, bytes).map(Some),
        }
    }

    fn committed_op(
        &self,
        txn: &RoTxn<'_>,
        id: &OperationId,
    ) -> Result<Option<(Operation, u64)>, StoreError> {
        let Some(index) = self
            .ops
            .get(txn, &id.to_bytes())
            .map_err(lmdb("read the operation index"))?
        else {
            return Ok(None);
        };
        let index = OpIndex::from_bytes(id, index)?;
        let what = || format!("operation {id} in block {}", index.height);
        let block = self
            .block_bytes(txn, index.height)?
            .ok_or_else(|| corrupt(what(), "the block is missing"))?;
        let start = index.offset as usize;
        let bytes = start
            .checked_add(index.len as usize)
            .and_then(|end| block.get(start..end))
            .ok_or_else(|| corrupt(what(), "outside the block"))?;
        let op = Operation::from_bytes(bytes).map_err(|e| corrupt(what(), e))?;
        if op.id != *id {
            return Err(corrupt(what(), "the index points at another operation"));
        }
        Ok(Some((op, index.height)))
    }

    /// Checks the stored block at `height`: decodes, sits at its key, is internally
    /// consistent, is indexed by its hash, and links to the block below (or is `cell`'s
    /// genesis).
    fn check_block(
        &self,
        txn: &RoTxn<'_>,
        cell: &PublicKey,
        height: u64,
    ) -> Result<Block, StoreError> {
        let what = || format!("block at height {height}");
        let block = self
            .block(txn, height)?
            .ok_or_else(|| corrupt(what(), "missing"))?;
        block.verify_contents().map_err(|e| corrupt(what(), e))?;
        if height == 0 {
            block.verify_genesis(cell).map_err(|e| corrupt(what(), e))?;
        } else {
            let previous = self
                .header(txn, height - 1)?
                .ok_or_else(|| corrupt(what(), "the block below it is missing"))?;
            if block.header.previous != previous.hash() {
                return Err(corrupt(what(), "does not link to the block below it"));
            }
        }
        let indexed = self
            .hashes
            .get(txn, &block.hash())
            .map_err(lmdb("read the hash index"))?
            .and_then(u64_le);
        if indexed != Some(height) {
            return Err(corrupt(what(), "its hash is not indexed at its height"));
        }
        Ok(block)
    }
}

fn decode_pending(id: &OperationId, bytes: &[u8]) -> Result<Operation, StoreError> {
    let what = || format!("pending operation {id}");
    let op = Operation::from_bytes(bytes).map_err(|e| corrupt(what(), e))?;
    if op.id != *id {
        return Err(corrupt(what(), "stored under another id"));
    }
    Ok(op)
}

impl ChainStore {
    /// Opens the chain of `cell` in folder `dir` (normally `<cell dir>/chain/`), creating it
    /// if needed, with an initial map of `map_size_bytes` (rounded to whole MiB; it grows
    /// on demand). Checks the format version, that the store belongs to `cell`, and the links
    /// and hashes of the last [`STARTUP_CHECK_BLOCKS`] blocks: damage is reported as
    /// [`StoreError::Corrupt`], never a panic.
    pub fn open(
        dir: &Path,
        cell: &PublicKey,
        map_size_bytes: usize,
    ) -> Result<ChainStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let env = lmdb::open_env(dir, map_size_bytes).map_err(lmdb("open"))?;
        let wtxn = env.write_txn().map_err(lmdb("open"))?;
        let dbs = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let mut create = |name: &'static str| -> heed::Result<Database<'_, Bytes, Bytes>> {
                    opener
                        .database_options()
                        .types::<Bytes, Bytes>()
                        .name(name)
                        .create(wtxn)
                };
                let blocks = create("blocks")?;
                let hashes = create("hashes")?;
                let ops = create("ops")?;
                let pending = create("pending")?;
                let meta = create("meta")?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((
                    blocks, hashes, ops, pending, meta,
                )))
            })
            .map_err(lmdb("create databases"))?;
        let Some((blocks, hashes, ops, pending, meta)) = dbs.commit() else {
            unreachable!("the closure above never aborts");
        };
        let store = ChainStore {
            env,
            dbs: Databases {
                blocks,
                hashes,
                ops,
                pending,
                meta,
            },
            cell: *cell,
            dir: dir.to_path_buf(),
            txn_lock: RwLock::new(()),
        };
        store.init_meta()?;
        if let Some(last) = store.height()? {
            store.check(last.saturating_sub(STARTUP_CHECK_BLOCKS - 1))?;
        }
        Ok(store)
    }

    /// Writes the format version and cell id of a new store; checks those of an old one.
    fn init_meta(&self) -> Result<(), StoreError> {
        let cell = self.cell;
        self.batch(|batch| {
            let meta = batch.dbs.meta;
            let txn = &mut *batch.txn;
            match meta.get(txn, META_VERSION).map_err(lmdb("read metadata"))? {
                None => {
                    meta.put(txn, META_VERSION, &FORMAT_VERSION.to_le_bytes())
                        .map_err(lmdb("write metadata"))?;
                    meta.put(txn, META_CELL, &cell.to_bytes())
                        .map_err(lmdb("write metadata"))?;
                }
                Some(bytes) => {
                    let found = u32_le(bytes)
                        .ok_or_else(|| corrupt("metadata", "the version is not 4 bytes"))?;
                    if found != FORMAT_VERSION {
                        return Err(StoreError::UnsupportedFormat {
                            found,
                            supported: FORMAT_VERSION,
                        });
                    }
                    let stored = meta.get(txn, META_CELL).map_err(lmdb("read metadata"))?;
                    if stored != Some(&cell.to_bytes()[..]) {
                        return Err(corrupt(
                            "metadata",
                            format!("this chain does not belong to cell {cell}"),
                        ));
                    }
                }
            }
            Ok(())
        })
    }

    /// The folder of the environment.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cell this chain belongs to.
    pub fn cell(&self) -> &PublicKey {
        &self.cell
    }

    /// Runs `f` in one write transaction committed with one fsync: all of its writes land,
    /// or none. If the map is full the transaction is discarded, the map doubled and `f` run
    /// again, so `f` must only act through the [`Batch`] it is given.
    pub fn batch<T>(
        &self,
        mut f: impl FnMut(&mut Batch<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        loop {
            let attempt = {
                let _txn = self.txn_lock.read().unwrap_or_else(PoisonError::into_inner);
                match self.env.write_txn() {
                    Err(e) if is_map_resized(&e) => Err(StoreError::Lmdb {
                        action: "begin a write",
                        source: e,
                    }),
                    Err(e) => return Err(lmdb("begin a write")(e)),
                    Ok(mut txn) => {
                        let mut batch = Batch {
                            dbs: &self.dbs,
                            cell: &self.cell,
                            txn: &mut txn,
                        };
                        match f(&mut batch) {
                            Ok(value) => txn.commit().map_err(lmdb("commit")).map(|()| value),
                            Err(e) => Err(e),
                        }
                    }
                }
            };
            match attempt {
                Err(e) if is_map_full(&e) => self.grow()?,
                Err(StoreError::Lmdb { source, .. }) if is_map_resized(&source) => {
                    self.adopt_map_size()?
                }
                other => return other,
            }
        }
    }

    /// Runs `f` on a read transaction.
    fn read<T>(
        &self,
        f: impl FnOnce(&RoTxn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut resized = false;
        loop {
            let _txn = self.txn_lock.read().unwrap_or_else(PoisonError::into_inner);
            match self.env.read_txn() {
                Ok(txn) => return f(&txn),
                Err(e) if is_map_resized(&e) && !resized => resized = true,
                Err(e) => return Err(lmdb("begin a read")(e)),
            }
            drop(_txn);
            self.adopt_map_size()?;
        }
    }

    /// Doubles the map, up to [`MAP_SIZE_BYTES_LIMIT`].
    fn grow(&self) -> Result<(), StoreError> {
        let no_txn = self
            .txn_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.env.info().map_size;
        if current >= MAP_SIZE_BYTES_LIMIT {
            return Err(StoreError::MapLimit {
                size_bytes: current,
            });
        }
        let next = round_map_size(current.saturating_mul(2));
        tracing::info!(
            dir = %self.dir.display(),
            from_bytes = current,
            to_bytes = next,
            "chain storage map full; growing it"
        );
        lmdb::set_map_size(&self.env, next, &no_txn).map_err(lmdb("grow the map"))
    }

    /// Adopts a map size another process set.
    fn adopt_map_size(&self) -> Result<(), StoreError> {
        let no_txn = self
            .txn_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        lmdb::set_map_size(&self.env, 0, &no_txn).map_err(lmdb("adopt the map size"))
    }

    /// The current map size in bytes.
    pub fn map_size_bytes(&self) -> usize {
        self.env.info().map_size
    }

    /// Bytes used by the data file on disk.
    pub fn disk_size_bytes(&self) -> Result<u64, StoreError> {
        self.env
            .real_disk_size()
            .map_err(lmdb("read the file size"))
    }

    /// The height of the last block; `None` for an empty chain (not even genesis).
    pub fn height(&self) -> Result<Option<u64>, StoreError> {
        self.read(|txn| self.dbs.last_height(txn))
    }

    /// The block at `height`.
    pub fn get_block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.read(|txn| self.dbs.block(txn, height))
    }

    /// The header of the block at `height`.
    pub fn get_header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.read(|txn| self.dbs.header(txn, height))
    }

    /// The encoded block at `height`, as stored (for chain sync: no re-encoding).
    pub fn get_block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| Ok(self.dbs.block_bytes(txn, height)?.map(<[u8]>::to_vec)))
    }

    /// Up to `limit` consecutive blocks from `from_height`, stopping before `size_bytes_max`
    /// bytes of encoded blocks would be exceeded (but always at least one block if any).
    pub fn blocks(
        &self,
        from_height: u64,
        limit: usize,
        size_bytes_max: usize,
    ) -> Result<Vec<Block>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            let mut size = 0usize;
            let mut height = from_height;
            while out.len() < limit {
                let Some(bytes) = self.dbs.block_bytes(txn, height)? else {
                    break;
                };
                size = size.saturating_add(bytes.len());
                if !out.is_empty() && size > size_bytes_max {
                    break;
                }
                out.push(
                    self.dbs
                        .block(txn, height)?
                        .ok_or_else(|| corrupt(format!("block at height {height}"), "vanished"))?,
                );
                height = match height.checked_add(1) {
                    Some(h) => h,
                    None => break,
                };
            }
            Ok(out)
        })
    }

    /// The last block.
    pub fn last_block(&self) -> Result<Option<Block>, StoreError> {
        self.read(|txn| match self.dbs.last_height(txn)? {
            None => Ok(None),
            Some(height) => self.dbs.block(txn, height),
        })
    }

    /// The last block's header.
    pub fn last_header(&self) -> Result<Option<BlockHeader>, StoreError> {
        self.read(|txn| self.dbs.last_header(txn))
    }

    /// The height of the block with hash `hash`, if stored.
    pub fn height_of(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        self.read(|txn| {
            match self
                .dbs
                .hashes
                .get(txn, hash)
                .map_err(lmdb("read the hash index"))?
            {
                None => Ok(None),
                Some(bytes) => u64_le(bytes)
                    .map(Some)
                    .ok_or_else(|| corrupt("hash index", "a height is not 8 bytes")),
            }
        })
    }

    /// The operation with id `id` and where it is, if this node has it.
    pub fn operation(&self, id: &OperationId) -> Result<Option<(Operation, Location)>, StoreError> {
        self.read(|txn| {
            if let Some((op, height)) = self.dbs.committed_op(txn, id)? {
                return Ok(Some((op, Location::Committed { height })));
            }
            Ok(self
                .dbs
                .pending_op(txn, id)?
                .map(|op| (op, Location::Pending)))
        })
    }

    /// Number of pending operations.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            self.dbs
                .pending
                .len(txn)
                .map_err(lmdb("count pending operations"))
        })
    }

    /// Up to `limit` pending operations with ids in `range`, in id order.
    pub fn pending_range(
        &self,
        range: impl RangeBounds<OperationId>,
        limit: usize,
    ) -> Result<Vec<Operation>, StoreError> {
        self.pending_scan(range, limit, |id, bytes| decode_pending(&id, bytes))
    }

    /// Up to `limit` `(id, hash)` pairs of pending operations with ids in `range`, in id
    /// order; the hash is [`Operation::hash`]. For range reconciliation, without decoding.
    pub fn pending_hashes(
        &self,
        range: impl RangeBounds<OperationId>,
        limit: usize,
    ) -> Result<Vec<(OperationId, [u8; 32])>, StoreError> {
        self.pending_scan(range, limit, |id, bytes| {
            Ok((id, *blake3::hash(bytes).as_bytes()))
        })
    }

    fn pending_scan<T>(
        &self,
        range: impl RangeBounds<OperationId>,
        limit: usize,
        mut f: impl FnMut(OperationId, &[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let start = bound_bytes(range.start_bound());
        let end = bound_bytes(range.end_bound());
        self.read(|txn| {
            let bounds = (as_slice_bound(&start), as_slice_bound(&end));
            let iter = self
                .dbs
                .pending
                .range(txn, &bounds)
                .map_err(lmdb("read pending operations"))?;
            let mut out = Vec::new();
            for entry in iter.take(limit) {
                let (key, bytes) = entry.map_err(lmdb("read pending operations"))?;
                let id = OperationId::from_slice(key)
                    .ok_or_else(|| corrupt("pending store", "a key is not 16 bytes"))?;
                out.push(f(id, bytes)?);
            }
            Ok(out)
        })
    }

    /// The last operation time this node issued (0 if none).
    pub fn last_operation_time(&self) -> Result<u64, StoreError> {
        self.read(|txn| Ok(self.dbs.meta_u64(txn, META_LAST_TIME)?.unwrap_or(0)))
    }

    /// The height and hash of the last block this node signed, if any.
    pub fn last_signed(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        self.read(|txn| self.dbs.signed(txn))
    }

    /// The consensus vote last written with [`Batch::put_vote`], as given; `None` if none.
    pub fn vote(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            Ok(self
                .dbs
                .meta
                .get(txn, META_VOTE)
                .map_err(lmdb("read the consensus vote"))?
                .map(<[u8]>::to_vec))
        })
    }

    /// Re-checks the stored chain from `from_height` to its end: every block decodes, is
    /// consistent, is indexed by its hash, and links to the block below (genesis: signed by
    /// the cell key). Returns the number of blocks checked. Signatures of operations and
    /// chain nodes need the membership: see [`ChainStore::verify_all`].
    pub fn check(&self, from_height: u64) -> Result<u64, StoreError> {
        self.read(|txn| {
            let Some(last) = self.dbs.last_height(txn)? else {
                return Ok(0);
            };
            let mut checked = 0;
            for height in from_height..=last {
                self.dbs.check_block(txn, &self.cell, height)?;
                checked += 1;
            }
            Ok(checked)
        })
    }

    /// Verifies the whole chain from the `initial` membership: everything
    /// [`ChainStore::check`] does, plus [`Block::verify`] of every block (operation and block
    /// signatures, quorum) against the membership in force at its height (membership changes
    /// apply from the block after theirs). Stops at the first bad block; the error names its
    /// height and the reason.
    pub fn verify_all(&self, initial: &Membership) -> Result<u64, StoreError> {
        self.read(|txn| {
            let Some(last) = self.dbs.last_height(txn)? else {
                return Ok(0);
            };
            let mut membership = initial.clone();
            let mut previous = self.dbs.check_block(txn, &self.cell, 0)?.header;
            for height in 1..=last {
                let block = self.dbs.check_block(txn, &self.cell, height)?;
                block
                    .verify(&previous, &membership)
                    .map_err(StoreError::from)?;
                membership.apply_block(&block);
                previous = block.header;
            }
            Ok(last + 1)
        })
    }

    /// Appends a block after the last one (or genesis to an empty chain), removing its
    /// operations from the pending store in the same transaction. See [`Batch::append_block`].
    pub fn append_block(&self, block: &Block) -> Result<(), StoreError> {
        self.batch(|batch| batch.append_block(block))
    }

    /// Drops the blocks from `height` to the end and returns their operations to the pending
    /// store, in one transaction. See [`Batch::truncate_from`].
    pub fn truncate_from(&self, height: u64) -> Result<Vec<Operation>, StoreError> {
        self.batch(|batch| batch.truncate_from(height))
    }

    /// Stores operations as pending, in one transaction. See [`Batch::put_pending`].
    pub fn put_pending(&self, ops: &[Operation]) -> Result<PutOutcome, StoreError> {
        self.batch(|batch| batch.put_pending(ops))
    }

    /// Removes pending operations; returns how many were pending.
    pub fn remove_pending(&self, ids: &[OperationId]) -> Result<usize, StoreError> {
        self.batch(|batch| batch.remove_pending(ids))
    }

    /// Records that this node signs the block `hash` at `height`. See
    /// [`Batch::record_signed`].
    pub fn record_signed(&self, height: u64, hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.batch(|batch| batch.record_signed(height, hash))
    }

    /// The time of this node's next operation id, persisted before it is returned. See
    /// [`Batch::next_operation_times`].
    pub fn next_operation_time(&self, wall_us: u64) -> Result<u64, StoreError> {
        self.batch(|batch| batch.next_operation_times(wall_us, 1))
            .map(|times| times.start)
    }

    /// `count` ids for `author`, persisted before they are returned, in one transaction.
    pub fn next_operation_ids(
        &self,
        author: &PublicKey,
        wall_us: u64,
        count: u32,
    ) -> Result<Vec<OperationId>, StoreError> {
        let times = self.batch(|batch| batch.next_operation_times(wall_us, count))?;
        Ok(times.map(|t| OperationId::new(t, author)).collect())
    }
}

/// Writes inside one transaction of [`ChainStore::batch`]. Reads through it see its own
/// writes.
pub struct Batch<'a, 'e> {
    dbs: &'a Databases,
    cell: &'a PublicKey,
    txn: &'a mut RwTxn<'e>,
}

impl Batch<'_, '_> {
    /// The height of the last block, including blocks appended in this batch.
    pub fn height(&self) -> Result<Option<u64>, StoreError> {
        self.dbs.last_height(self.txn)
    }

    /// The last block's header, including blocks appended in this batch.
    pub fn last_header(&self) -> Result<Option<BlockHeader>, StoreError> {
        self.dbs.last_header(self.txn)
    }

    /// Appends `block` after the last block. Checks what needs no membership: the block is
    /// internally consistent ([`Block::verify_contents`]), its height is the next one, it
    /// links to the last block's hash (or, on an empty chain, it is this cell's genesis,
    /// signed by the cell key), and none of its operations is already committed. Its
    /// operations leave the pending store. Callers verify signatures with [`Block::verify`]
    /// first.
    pub fn append_block(&mut self, block: &Block) -> Result<(), StoreError> {
        let height = block.header.height;
        block.verify_contents().map_err(StoreError::from)?;
        match self.dbs.last_header(self.txn)? {
            None => {
                if height != 0 {
                    return Err(StoreError::NotNext {
                        expected: 0,
                        found: height,
                    });
                }
                block.verify_genesis(self.cell).map_err(StoreError::from)?;
            }
            Some(last) => {
                let expected = last.height.saturating_add(1);
                if height != expected {
                    return Err(StoreError::NotNext {
                        expected,
                        found: height,
                    });
                }
                if block.header.previous != last.hash() {
                    return Err(StoreError::WrongPrevious { height });
                }
            }
        }
        let bytes = block.to_bytes();
        // Operations start after the header and the u64 operation count.
        let mut offset = BLOCK_HEADER_LEN + 8;
        for op in &block.operations {
            let key = op.id.to_bytes();
            if let Some(index) = self
                .dbs
                .ops
                .get(self.txn, &key)
                .map_err(lmdb("read the operation index"))?
            {
                let index = OpIndex::from_bytes(&op.id, index)?;
                return Err(StoreError::AlreadyCommitted {
                    id: op.id,
                    height: index.height,
                });
            }
            let len = op.size_bytes();
            debug_assert_eq!(&bytes[offset..offset + len], &op.to_bytes()[..]);
            let index = OpIndex {
                height,
                // Bounded by BLOCK_SIZE_BYTES_MAX (8 MiB), checked by verify_contents.
                offset: offset as u32,
                len: len as u32,
            };
            self.dbs
                .ops
                .put(self.txn, &key, &index.to_bytes())
                .map_err(lmdb("index an operation"))?;
            self.dbs
                .pending
                .delete(self.txn, &key)
                .map_err(lmdb("remove a pending operation"))?;
            offset += len;
        }
        self.dbs
            .blocks
            .put(self.txn, &height_key(height), &bytes)
            .map_err(lmdb("write a block"))?;
        self.dbs
            .hashes
            .put(self.txn, &block.hash(), &height.to_le_bytes())
            .map_err(lmdb("index a block hash"))?;
        Ok(())
    }

    /// Drops the blocks from `height` to the end (genesis too if `height` is 0) and moves
    /// their operations back to the pending store, so that none is lost: they will be
    /// committed again. Returns those operations, in block order. A height past the end drops
    /// nothing. The record of signed blocks is kept: a node never signs twice at a height.
    pub fn truncate_from(&mut self, height: u64) -> Result<Vec<Operation>, StoreError> {
        let Some(last) = self.dbs.last_height(self.txn)? else {
            return Ok(Vec::new());
        };
        let mut returned = Vec::new();
        for h in height..=last {
            let block = self
                .dbs
                .block(self.txn, h)?
                .ok_or_else(|| corrupt(format!("block at height {h}"), "missing"))?;
            for op in block.operations {
                let key = op.id.to_bytes();
                self.dbs
                    .ops
                    .delete(self.txn, &key)
                    .map_err(lmdb("unindex an operation"))?;
                self.dbs
                    .pending
                    .put(self.txn, &key, &op.to_bytes())
                    .map_err(lmdb("return an operation to pending"))?;
                returned.push(op);
            }
            self.dbs
                .hashes
                .delete(self.txn, &block.header.hash())
                .map_err(lmdb("unindex a block hash"))?;
            self.dbs
                .blocks
                .delete(self.txn, &height_key(h))
                .map_err(lmdb("delete a block"))?;
        }
        Ok(returned)
    }

    /// Stores operations as pending. An operation already committed, or already pending with
    /// the same bytes, is skipped; one pending under the same id with different bytes is
    /// refused (listed in [`PutOutcome::conflicts`]), so an id never names two operations.
    /// Callers verify operations with [`Operation::verify`] first.
    pub fn put_pending(&mut self, ops: &[Operation]) -> Result<PutOutcome, StoreError> {
        let mut outcome = PutOutcome::default();
        for op in ops {
            let size_bytes = op.size_bytes();
            if size_bytes > OPERATION_SIZE_BYTES_MAX {
                return Err(StoreError::OperationTooLarge {
                    id: op.id,
                    size_bytes,
                });
            }
            let key = op.id.to_bytes();
            let committed = self
                .dbs
                .ops
                .get(self.txn, &key)
                .map_err(lmdb("read the operation index"))?
                .is_some();
            if committed {
                outcome.known += 1;
                continue;
            }
            let bytes = op.to_bytes();
            match self
                .dbs
                .pending
                .get(self.txn, &key)
                .map_err(lmdb("read a pending operation"))?
            {
                Some(existing) if existing == &bytes[..] => outcome.known += 1,
                Some(_) => outcome.conflicts.push(op.id),
                None => {
                    self.dbs
                        .pending
                        .put(self.txn, &key, &bytes)
                        .map_err(lmdb("write a pending operation"))?;
                    outcome.added.push(op.id);
                }
            }
        }
        Ok(outcome)
    }

    /// Removes pending operations; returns how many were pending.
    pub fn remove_pending(&mut self, ids: &[OperationId]) -> Result<usize, StoreError> {
        let mut removed = 0;
        for id in ids {
            if self
                .dbs
                .pending
                .delete(self.txn, &id.to_bytes())
                .map_err(lmdb("remove a pending operation"))?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Records that this node signs block `hash` at `height`, before the signature leaves the
    /// node. `Ok(true)`: sign (first signature at a height above every earlier one, or the
    /// very block already signed there). `Ok(false)`: refuse — this node already signed a
    /// different block at this height, or signed at a greater height. Because the record is
    /// durable, a node signs at most one block per height across restarts, so two different
    /// blocks can never both gather a majority at one height.
    pub fn record_signed(&mut self, height: u64, hash: &[u8; 32]) -> Result<bool, StoreError> {
        match self.dbs.signed(self.txn)? {
            Some((signed_height, signed_hash)) if signed_height == height => {
                Ok(signed_hash == *hash)
            }
            Some((signed_height, _)) if signed_height > height => Ok(false),
            _ => {
                let mut value = [0u8; 40];
                value[..8].copy_from_slice(&height.to_le_bytes());
                value[8..].copy_from_slice(hash);
                self.dbs
                    .meta
                    .put(self.txn, META_SIGNED, &value)
                    .map_err(lmdb("record a signature"))?;
                Ok(true)
            }
        }
    }

    /// Replaces the consensus vote (the replication engine's acceptor state, opaque here) by
    /// `vote`. It lands with the batch's other writes or not at all, so a vote and the
    /// writes of the step that produced it are never split by a crash. Refused over
    /// [`VOTE_SIZE_BYTES_MAX`].
    pub fn put_vote(&mut self, vote: &[u8]) -> Result<(), StoreError> {
        if vote.len() > VOTE_SIZE_BYTES_MAX {
            return Err(StoreError::VoteTooLarge {
                size_bytes: vote.len(),
            });
        }
        self.dbs
            .meta
            .put(self.txn, META_VOTE, vote)
            .map_err(lmdb("write the consensus vote"))
    }

    /// The consensus vote, including one written in this batch.
    pub fn vote(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .dbs
            .meta
            .get(self.txn, META_VOTE)
            .map_err(lmdb("read the consensus vote"))?
            .map(<[u8]>::to_vec))
    }

    /// Issues `count` consecutive operation times by the hybrid logical clock
    /// ([`next_times`]: from `max(wall_us, last + 1)`), and persists the last one so that no
    /// time is issued twice, even after a restart with a clock stepped backwards.
    pub fn next_operation_times(
        &mut self,
        wall_us: u64,
        count: u32,
    ) -> Result<Range<u64>, StoreError> {
        let last = self.dbs.meta_u64(self.txn, META_LAST_TIME)?.unwrap_or(0);
        let times = next_times(last, wall_us, count)?;
        let new_last = times.end.saturating_sub(1).max(last);
        self.dbs
            .meta
            .put(self.txn, META_LAST_TIME, &new_last.to_le_bytes())
            .map_err(lmdb("persist the operation clock"))?;
        Ok(times)
    }
}
