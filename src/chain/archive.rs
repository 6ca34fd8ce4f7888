//! The chain archive: the file `exo cell chain export` writes and `import` reads, specified
//! in `spec/chain.md` section 12.
//!
//! ```text
//! "EXOCHAIN" (8 bytes) | format version u32 LE (1) | cell public key (32 bytes)
//! records: kind u8 | length u32 LE | bytes
//!   kind 1: a committed block (Block encoding), in height order from 0
//!   kind 2: a pending operation (Operation encoding)
//!   kind 0 with length 0: the end (a file without it was cut short)
//! ```
//!
//! Reading is strict and bounded: a length over the block limit is refused before anything is
//! allocated, and a file cut short is an error, not a shorter chain.

use std::fmt;
use std::io::{self, Read, Write};

use exocore_protocol::identity::PublicKey;

use super::{Block, DecodeError, Operation, BLOCK_SIZE_BYTES_MAX};

/// The first 8 bytes of every archive.
pub const MAGIC: &[u8; 8] = b"EXOCHAIN";
/// The archive format this code writes and reads.
pub const VERSION: u32 = 1;

const KIND_END: u8 = 0;
const KIND_BLOCK: u8 = 1;
const KIND_PENDING: u8 = 2;

/// One record of an archive.
#[derive(Debug)]
pub enum Record {
    /// A committed block.
    Block(Block),
    /// A pending operation.
    Pending(Operation),
}

/// Why an archive could not be read.
#[derive(Debug)]
pub enum ArchiveError {
    /// Reading failed.
    Io(io::Error),
    /// The file does not start with `EXOCHAIN`.
    NotAnArchive,
    /// A format version this code does not read.
    Version(u32),
    /// The file ends inside a record, or has no end record.
    Truncated {
        /// Records read before the end.
        records: u64,
    },
    /// A record kind this version does not know.
    UnknownKind {
        /// Its number.
        kind: u8,
        /// Its position (0-based).
        record: u64,
    },
    /// A record longer than any block may be.
    TooLong {
        /// Its length.
        len: u32,
        /// Its position.
        record: u64,
    },
    /// A record's bytes do not decode.
    Decode {
        /// Its position.
        record: u64,
        /// Why.
        error: DecodeError,
    },
    /// The header's cell key is not a key.
    BadCell,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::Io(e) => write!(f, "{e}"),
            ArchiveError::NotAnArchive => write!(f, "not a chain archive (no EXOCHAIN header)"),
            ArchiveError::Version(v) => write!(f, "archive format version {v}; this exo reads version {VERSION}"),
            ArchiveError::Truncated { records } => {
                write!(f, "the archive is cut short after {records} record(s)")
            }
            ArchiveError::UnknownKind { kind, record } => {
                write!(f, "record {record} has unknown kind {kind}")
            }
            ArchiveError::TooLong { len, record } => write!(
                f,
                "record {record} claims {len} bytes, more than a block may hold ({BLOCK_SIZE_BYTES_MAX})"
            ),
            ArchiveError::Decode { record, error } => write!(f, "record {record}: {error}"),
            ArchiveError::BadCell => write!(f, "the archive's cell key is not a valid key"),
        }
    }
}

impl std::error::Error for ArchiveError {}

/// Writes an archive of `cell`: call [`Writer::block`] and [`Writer::pending`], then
/// [`Writer::finish`].
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(mut out: W, cell: &PublicKey) -> io::Result<Writer<W>> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&cell.to_bytes())?;
        Ok(Writer { out })
    }

    fn record(&mut self, kind: u8, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("record over 4 GiB"))?;
        self.out.write_all(&[kind])?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(bytes)
    }

    /// Appends a committed block.
    pub fn block(&mut self, block: &Block) -> io::Result<()> {
        self.record(KIND_BLOCK, &block.to_bytes())
    }

    /// Appends a pending operation.
    pub fn pending(&mut self, operation: &Operation) -> io::Result<()> {
        self.record(KIND_PENDING, &operation.to_bytes())
    }

    /// Writes the end record and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.record(KIND_END, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads an archive record by record.
pub struct Reader<R: Read> {
    input: R,
    cell: PublicKey,
    records: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Reader<R>, ArchiveError> {
        let mut header = [0u8; 8 + 4 + 32];
        read_exact(&mut input, &mut header, 0)?;
        if &header[..8] != MAGIC {
            return Err(ArchiveError::NotAnArchive);
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(ArchiveError::Version(version));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&header[12..]);
        let cell = PublicKey::from_bytes(&key).map_err(|_| ArchiveError::BadCell)?;
        Ok(Reader {
            input,
            cell,
            records: 0,
            done: false,
        })
    }

    /// The cell the archive belongs to.
    pub fn cell(&self) -> &PublicKey {
        &self.cell
    }

    /// The next record, `None` after the end record.
    pub fn next_record(&mut self) -> Result<Option<Record>, ArchiveError> {
        if self.done {
            return Ok(None);
        }
        let record = self.records;
        let mut head = [0u8; 5];
        read_exact(&mut self.input, &mut head, record)?;
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len as usize > BLOCK_SIZE_BYTES_MAX {
            return Err(ArchiveError::TooLong { len, record });
        }
        let mut bytes = vec![0u8; len as usize];
        read_exact(&mut self.input, &mut bytes, record)?;
        self.records += 1;
        let decode = |error| ArchiveError::Decode { record, error };
        match kind {
            KIND_END if len == 0 => {
                self.done = true;
                Ok(None)
            }
            KIND_BLOCK => Ok(Some(Record::Block(
                Block::from_bytes(&bytes).map_err(decode)?,
            ))),
            KIND_PENDING => Ok(Some(Record::Pending(
                Operation::from_bytes(&bytes).map_err(decode)?,
            ))),
            kind => Err(ArchiveError::UnknownKind { kind, record }),
        }
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], records: u64) -> Result<(), ArchiveError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ArchiveError::Truncated { records },
        _ => ArchiveError::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{EntryKey, IdGenerator};
    use exocore_protocol::identity::Keypair;

    fn sample() -> (Keypair, Vec<u8>, Block, Operation) {
        let cell = Keypair::generate();
        let node = Keypair::generate();
        let genesis = Block::genesis(&cell, 1_000_000);
        let id = IdGenerator::new(&node.public(), 0).next(2_000_000).unwrap();
        let key = EntryKey::from_cell_keypair(&cell);
        let op = Operation::new_entry(&cell.public(), &key, id, &node, b"note").unwrap();
        let mut writer = Writer::new(Vec::new(), &cell.public()).unwrap();
        writer.block(&genesis).unwrap();
        writer.pending(&op).unwrap();
        (cell, writer.finish().unwrap(), genesis, op)
    }

    #[test]
    fn round_trips() {
        let (cell, bytes, genesis, op) = sample();
        let mut reader = Reader::new(&bytes[..]).unwrap();
        assert_eq!(reader.cell(), &cell.public());
        match reader.next_record().unwrap() {
            Some(Record::Block(block)) => assert_eq!(block.hash(), genesis.hash()),
            other => panic!("{other:?}"),
        }
        match reader.next_record().unwrap() {
            Some(Record::Pending(read)) => assert_eq!(read.id, op.id),
            other => panic!("{other:?}"),
        }
        assert!(reader.next_record().unwrap().is_none());
        assert!(reader.next_record().unwrap().is_none());
    }

    #[test]
    fn every_cut_is_an_error_not_a_shorter_chain() {
        let (_, bytes, _, _) = sample();
        for cut in 0..bytes.len() {
            let result = Reader::new(&bytes[..cut]).and_then(|mut reader| {
                while reader.next_record()?.is_some() {}
                Ok(())
            });
            assert!(result.is_err(), "cut at {cut} read as complete");
        }
    }

    #[test]
    fn hostile_headers_and_lengths_are_refused() {
        let (_, bytes, _, _) = sample();
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(matches!(
            Reader::new(&wrong[..]),
            Err(ArchiveError::NotAnArchive)
        ));
        let mut version = bytes.clone();
        version[8] = 9;
        assert!(matches!(
            Reader::new(&version[..]),
            Err(ArchiveError::Version(9))
        ));
        let mut huge = bytes.clone();
        huge[45..49].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut reader = Reader::new(&huge[..]).unwrap();
        assert!(matches!(
            reader.next_record(),
            Err(ArchiveError::TooLong { .. })
        ));
        let mut kind = bytes;
        kind[44] = 7;
        let mut reader = Reader::new(&kind[..]).unwrap();
        assert!(matches!(
            reader.next_record(),
            Err(ArchiveError::UnknownKind { kind: 7, .. })
        ));
    }
}
