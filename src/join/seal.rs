//! The encrypted channel after the PAKE: ChaCha20-Poly1305 with one key per direction and
//! the message's sequence number as nonce, so a replayed, reordered, dropped or altered
//! message fails to open. Specified in `spec/join.md` section 5.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Bytes the AEAD adds to each message.
pub const TAG_LEN: usize = 16;

/// One direction of the channel: a key and the next sequence number.
pub struct Direction {
    cipher: ChaCha20Poly1305,
    next: u64,
}

impl std::fmt::Debug for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Direction(next {})", self.next)
    }
}

/// The nonce of message `sequence`: four zero bytes, then the sequence number little-endian.
pub fn nonce(sequence: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&sequence.to_le_bytes());
    nonce
}

impl Direction {
    /// A direction keyed by `key`, starting at sequence number 0.
    pub fn new(key: &[u8; 32]) -> Direction {
        Direction {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            next: 0,
        }
    }

    /// Encrypts the next message.
    pub fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = nonce(self.next);
        self.next += 1;
        // Encryption fails only for plaintexts beyond 2^38 bytes; ours are bounded far lower.
        self.cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default()
    }

    /// Decrypts the next message; `None` if it is not the next message under this key.
    pub fn open(&mut self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        let nonce = nonce(self.next);
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(&nonce), ciphertext)
            .ok()?;
        self.next += 1;
        Some(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_in_order_only() {
        let key = [7u8; 32];
        let (mut tx, mut rx) = (Direction::new(&key), Direction::new(&key));
        let first = tx.seal(b"one");
        let second = tx.seal(b"two");
        assert_eq!(first.len(), 3 + TAG_LEN);
        assert!(rx.open(&second).is_none(), "out of order");
        assert_eq!(rx.open(&first).unwrap(), b"one");
        assert!(rx.open(&first).is_none(), "replayed");
        let mut altered = second.clone();
        altered[0] ^= 1;
        assert!(rx.open(&altered).is_none(), "altered");
        assert_eq!(rx.open(&second).unwrap(), b"two");
    }
}
