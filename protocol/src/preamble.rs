//! The clear-text preamble, exchanged before the Noise handshake.
//!
//! The initiator sends 36 bytes: `EXO`, the protocol version byte, the 32-byte ed25519 public
//! key of the cell it wants to talk to. The responder answers `EXO` and a status byte:
//! [`Answer::Accepted`] (the handshake follows), [`Answer::UnsupportedVersion`] (followed by
//! the one version byte the responder speaks, then close) or [`Answer::UnknownCell`] (close).
//! A peer speaking another version thus gets a clear refusal, not garbage. The 36 bytes the
//! initiator sent are the Noise prologue, so a tampered preamble fails the handshake.

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::PreambleError;
use crate::identity::PublicKey;
use crate::PROTOCOL_VERSION;

/// The three bytes that open both the preamble and its answer.
pub const MAGIC: [u8; 3] = *b"EXO";

/// Length of the initiator's preamble.
pub const PREAMBLE_LEN: usize = 36;

/// Status byte: accepted.
pub const STATUS_ACCEPTED: u8 = 0;
/// Status byte: unsupported version (one more byte follows: the version the responder speaks).
pub const STATUS_UNSUPPORTED_VERSION: u8 = 1;
/// Status byte: the responder does not serve this cell.
pub const STATUS_UNKNOWN_CELL: u8 = 2;

/// What the initiator sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// The protocol version the initiator speaks.
    pub version: u8,
    /// The cell's public key bytes, as sent (not yet checked to be a valid key).
    pub cell: [u8; 32],
}

impl Preamble {
    /// The preamble of this crate's version for `cell`.
    pub fn new(cell: &PublicKey) -> Preamble {
        Preamble {
            version: PROTOCOL_VERSION,
            cell: cell.to_bytes(),
        }
    }

    /// The 36 wire bytes, which are also the Noise prologue.
    pub fn to_bytes(&self) -> [u8; PREAMBLE_LEN] {
        let mut out = [0u8; PREAMBLE_LEN];
        out[..3].copy_from_slice(&MAGIC);
        out[3] = self.version;
        out[4..].copy_from_slice(&self.cell);
        out
    }

    /// Parses 36 wire bytes; only the magic is checked here.
    pub fn parse(bytes: &[u8; PREAMBLE_LEN]) -> Result<Preamble, PreambleError> {
        let mut magic = [0u8; 3];
        magic.copy_from_slice(&bytes[..3]);
        if magic != MAGIC {
            return Err(PreambleError::NotExocore(magic));
        }
        let mut cell = [0u8; 32];
        cell.copy_from_slice(&bytes[4..]);
        Ok(Preamble {
            version: bytes[3],
            cell,
        })
    }
}

/// The responder's answer to a preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Go on with the handshake.
    Accepted,
    /// The responder speaks another version, given here, and closes.
    UnsupportedVersion {
        /// The version the responder speaks.
        supported: u8,
    },
    /// The responder does not serve the cell, and closes.
    UnknownCell,
}

impl Answer {
    /// The wire bytes: 4, or 5 for an unsupported version.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        match self {
            Answer::Accepted => out.push(STATUS_ACCEPTED),
            Answer::UnsupportedVersion { supported } => {
                out.push(STATUS_UNSUPPORTED_VERSION);
                out.push(*supported);
            }
            Answer::UnknownCell => out.push(STATUS_UNKNOWN_CELL),
        }
        out
    }
}

/// Writes the initiator's preamble.
pub async fn write_preamble<W: AsyncWrite + Unpin>(
    writer: &mut W,
    preamble: &Preamble,
) -> Result<(), PreambleError> {
    writer
        .write_all(&preamble.to_bytes())
        .await
        .map_err(PreambleError::Io)?;
    writer.flush().await.map_err(PreambleError::Io)
}

/// Reads an initiator's preamble (responder side).
pub async fn read_preamble<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Preamble, PreambleError> {
    let mut bytes = [0u8; PREAMBLE_LEN];
    // The magic first, so a peer speaking something else is named as such even if it sends
    // fewer than 36 bytes.
    reader
        .read_exact(&mut bytes[..MAGIC.len()])
        .await
        .map_err(PreambleError::Io)?;
    if bytes[..MAGIC.len()] != MAGIC {
        return Preamble::parse(&bytes);
    }
    reader
        .read_exact(&mut bytes[MAGIC.len()..])
        .await
        .map_err(PreambleError::Io)?;
    Preamble::parse(&bytes)
}

/// Writes the responder's answer.
pub async fn write_answer<W: AsyncWrite + Unpin>(
    writer: &mut W,
    answer: &Answer,
) -> Result<(), PreambleError> {
    writer
        .write_all(&answer.to_bytes())
        .await
        .map_err(PreambleError::Io)?;
    writer.flush().await.map_err(PreambleError::Io)
}

/// Reads the responder's answer (initiator side).
pub async fn read_answer<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Answer, PreambleError> {
    let mut bytes = [0u8; 4];
    reader
        .read_exact(&mut bytes)
        .await
        .map_err(PreambleError::Io)?;
    let mut magic = [0u8; 3];
    magic.copy_from_slice(&bytes[..3]);
    if magic != MAGIC {
        return Err(PreambleError::NotExocore(magic));
    }
    match bytes[3] {
        STATUS_ACCEPTED => Ok(Answer::Accepted),
        STATUS_UNSUPPORTED_VERSION => {
            let mut version = [0u8; 1];
            reader
                .read_exact(&mut version)
                .await
                .map_err(PreambleError::Io)?;
            Ok(Answer::UnsupportedVersion {
                supported: version[0],
            })
        }
        STATUS_UNKNOWN_CELL => Ok(Answer::UnknownCell),
        other => Err(PreambleError::BadStatus(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_round_trips() {
        let preamble = Preamble {
            version: 1,
            cell: [3u8; 32],
        };
        let bytes = preamble.to_bytes();
        assert_eq!(&bytes[..4], b"EXO\x01");
        assert_eq!(Preamble::parse(&bytes).unwrap(), preamble);
    }

    #[test]
    fn wrong_magic_is_not_exocore() {
        let mut bytes = [0u8; PREAMBLE_LEN];
        bytes[..3].copy_from_slice(b"GET");
        assert!(matches!(
            Preamble::parse(&bytes),
            Err(PreambleError::NotExocore(m)) if &m == b"GET"
        ));
    }

    #[test]
    fn answers_have_their_documented_bytes() {
        assert_eq!(Answer::Accepted.to_bytes(), b"EXO\x00");
        assert_eq!(
            Answer::UnsupportedVersion { supported: 1 }.to_bytes(),
            b"EXO\x01\x01"
        );
        assert_eq!(Answer::UnknownCell.to_bytes(), b"EXO\x02");
        for answer in [
            Answer::Accepted,
            Answer::UnsupportedVersion { supported: 7 },
            Answer::UnknownCell,
        ] {
            let bytes = answer.to_bytes();
            let got = futures_lite::future::block_on(read_answer(&mut &bytes[..])).unwrap();
            assert_eq!(got, answer);
        }
        let bad = futures_lite::future::block_on(read_answer(&mut &b"EXO\x09"[..]));
        assert!(matches!(bad, Err(PreambleError::BadStatus(9))));
    }
}
