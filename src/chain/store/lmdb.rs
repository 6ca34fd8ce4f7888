//! The two `unsafe` calls of the crate: opening an LMDB environment and changing its map
//! size. Each is one line in a small function with its safety argument; everything else in
//! the store is safe code.
//!
//! Also the map-size policy: sizes are rounded to whole MiB (a multiple of every page size
//! Linux uses: 4, 16 and 64 KiB), start small enough for a 32-bit board, and double when
//! LMDB reports the map full, up to [`MAP_SIZE_BYTES_LIMIT`].

use std::path::Path;
use std::sync::RwLockWriteGuard;

use heed::{Env, EnvOpenOptions, WithTls};

/// Default initial map size: 64 MiB, comfortable in the < 3 GiB address space of a 32-bit
/// board even with several cells; grown on demand.
pub const DEFAULT_MAP_SIZE_BYTES: usize = 64 << 20;

/// Map sizes are multiples of this (1 MiB), a multiple of every page size in use.
pub const MAP_SIZE_UNIT_BYTES: usize = 1 << 20;

/// The map never grows beyond this: 1 GiB on 32-bit targets (the address space is shared
/// with everything else), 1 TiB on 64-bit ones.
pub const MAP_SIZE_BYTES_LIMIT: usize = if usize::BITS == 32 { 1 << 30 } else { 1 << 40 };

/// Named databases in a chain environment.
const MAX_DBS: u32 = 8;

/// `size_bytes` rounded up to whole MiB, at least 1 MiB, at most the limit.
pub fn round_map_size(size_bytes: usize) -> usize {
    let units = size_bytes.div_ceil(MAP_SIZE_UNIT_BYTES).max(1);
    units
        .saturating_mul(MAP_SIZE_UNIT_BYTES)
        .min(MAP_SIZE_BYTES_LIMIT)
}

/// Opens (creating if needed) the environment in the existing folder `dir`.
#[allow(unsafe_code)]
pub(super) fn open_env(dir: &Path, map_size_bytes: usize) -> heed::Result<Env<WithTls>> {
    let mut options = EnvOpenOptions::new();
    options
        .map_size(round_map_size(map_size_bytes))
        .max_dbs(MAX_DBS);
    // SAFETY: heed marks opening `unsafe` because the memory map is undefined behaviour if the
    // file is modified behind LMDB's back. The chain folder belongs to this node (inside its
    // node directory, files of mode 0600); every process that opens it goes through LMDB and
    // its lock file (we never pass `NO_LOCK`), and heed refuses a second open of the same path
    // in this process. We pass no unsafe flag (`NO_SYNC`, `NO_META_SYNC`, `NO_LOCK`).
    unsafe { options.open(dir) }
}

/// Sets the map size of `env` to `size_bytes` (0: adopt the size another process set).
///
/// `_no_transaction` is the write half of the store's transaction lock: every transaction the
/// store opens holds the read half for its whole life, and the store owns the only handle to
/// this environment in the process (heed refuses a second open of the same path), so while
/// the caller holds it no transaction is open on this environment in this process.
#[allow(unsafe_code)]
pub(super) fn set_map_size(
    env: &Env<WithTls>,
    size_bytes: usize,
    _no_transaction: &RwLockWriteGuard<'_, ()>,
) -> heed::Result<()> {
    // SAFETY: LMDB allows `mdb_env_set_mapsize` on an open environment when no transaction is
    // active in this process; the guard above proves it (see this function's documentation).
    // Other processes adopt the new size when their next transaction reports MDB_MAP_RESIZED.
    unsafe { env.resize(size_bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_sizes_are_whole_mib_within_limits() {
        assert_eq!(round_map_size(0), MAP_SIZE_UNIT_BYTES);
        assert_eq!(round_map_size(1), MAP_SIZE_UNIT_BYTES);
        assert_eq!(
            round_map_size(MAP_SIZE_UNIT_BYTES + 1),
            2 * MAP_SIZE_UNIT_BYTES
        );
        assert_eq!(
            round_map_size(DEFAULT_MAP_SIZE_BYTES),
            DEFAULT_MAP_SIZE_BYTES
        );
        assert_eq!(round_map_size(usize::MAX), MAP_SIZE_BYTES_LIMIT);
    }
}
