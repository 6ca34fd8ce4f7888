//! The consensus acceptor's durable state: at the height being decided, the highest round
//! promised and the block accepted in the highest round. Paxos is only safe if an acceptor
//! never forgets these across a crash, so the engine emits a new [`VoteState`] in
//! [`Output::vote`](super::Output) and the glue makes it durable before sending anything.
//!
//! The chain store has no place for it yet, so it lives in one small file next to the LMDB
//! environment, `<chain dir>/vote` (moving it into the store's metadata is an open point of
//! `spec/replication.md`):
//!
//! ```text
//! magic      8   "exovote1"
//! state          the VoteState encoding (wire configuration)
//! checksum  32   BLAKE3 of magic || state
//! ```
//!
//! written to `vote.tmp`, fsync'd, renamed over `vote`, and the folder fsync'd. This file's
//! [`load`] and [`save`], and [`super::output::apply`], are the only I/O of the engine
//! module: the glue's half, never called by the state machine.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bincode::{Decode, Encode};
use exocore_protocol::wire;

use super::message::AcceptedBlock;

const MAGIC: &[u8; 8] = b"exovote1";

/// An acceptor's promise and acceptance at one height.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct VoteState {
    /// The height these apply to. A node refuses to vote at any lower height.
    pub height: u64,
    /// The highest round promised: nothing from a lower round is accepted.
    pub promised: u32,
    /// The block accepted in the highest round, if any.
    pub accepted: Option<AcceptedBlock>,
}

impl VoteState {
    /// The state of a height where nothing was promised or accepted.
    pub fn empty(height: u64) -> VoteState {
        VoteState {
            height,
            promised: 0,
            accepted: None,
        }
    }
}

/// The vote file of a chain folder.
pub fn vote_path(chain_dir: &Path) -> PathBuf {
    chain_dir.join("vote")
}

/// Reads the vote file; `Ok(None)` if there is none. A damaged file is an error: the node
/// must not vote again without its memory (an operator can delete the file only if the node
/// is then kept out of consensus until the cell has moved past that height).
pub fn load(path: &Path) -> io::Result<Option<VoteState>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |reason: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("vote file {}: {reason}", path.display()),
        )
    };
    if bytes.len() < MAGIC.len() + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not a vote file"));
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != checksum {
        return Err(bad("checksum mismatch"));
    }
    wire::decode(&body[MAGIC.len()..])
        .map(Some)
        .map_err(|e| bad(&e.to_string()))
}

/// Writes the vote file durably (temporary file, fsync, rename, fsync of the folder).
pub fn save(path: &Path, state: &VoteState) -> io::Result<()> {
    let mut body = MAGIC.to_vec();
    body.extend(
        wire::encode(state)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
    );
    let checksum = *blake3::hash(&body).as_bytes();
    body.extend_from_slice(&checksum);
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_file_round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = vote_path(dir.path());
        assert_eq!(load(&path).unwrap(), None);
        let state = VoteState {
            height: 7,
            promised: 3,
            accepted: None,
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(load(&path).is_err());
    }
}
