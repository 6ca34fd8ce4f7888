//! Signing domains and entry encryption at rest.
//!
//! Every signature of the chain is over `domain || cell id || bytes`: the domain keeps a
//! signature made for one purpose from being valid for another, and the cell id keeps an
//! operation or block of one cell from being replayed into another. Domains are ASCII
//! `exocore/<name>/v1` with `<name>` in `[a-z-]`, so no domain is a prefix of another.
//!
//! Entries are sealed with XChaCha20-Poly1305:
//!
//! - key = `BLAKE3::derive_key("exocore 2026 chain entry key v1", cell secret seed)`;
//! - nonce (24 bytes) = the operation id's 16-byte form, then 8 zero bytes;
//! - associated data = the operation id's 16-byte form, then the author's 32-byte key.
//!
//! The nonce is unique per key because the id is unique in the cell (see [`super::id`]): the
//! node tag separates nodes, the persisted hybrid clock separates one node's ids, and the
//! store keeps at most one operation per id. The associated data binds the ciphertext to its
//! operation, so it cannot be moved to another id or author. A chain-only node without the
//! cell secret verifies signatures and hashes over the ciphertext but cannot read it.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use exocore_protocol::identity::{Keypair, PublicKey};

use super::error::EntryError;
use super::id::{OperationId, OPERATION_ID_LEN};

/// Domain of operation signatures (by the author node).
pub const OPERATION_DOMAIN: &[u8] = b"exocore/operation/v1";

/// Domain of block signatures (by each signing chain node, and by the cell key for genesis).
pub const BLOCK_DOMAIN: &[u8] = b"exocore/block/v1";

/// BLAKE3 `derive_key` context of the entry key.
pub const ENTRY_KEY_CONTEXT: &str = "exocore 2026 chain entry key v1";

/// Size of the AEAD tag appended to every sealed entry.
pub const ENTRY_TAG_LEN: usize = 16;

/// The message signed for `domain`, `cell` and `bytes`: `domain || cell || bytes`.
pub fn signed_message(domain: &[u8], cell: &PublicKey, bytes: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(domain.len() + 32 + bytes.len());
    message.extend_from_slice(domain);
    message.extend_from_slice(&cell.to_bytes());
    message.extend_from_slice(bytes);
    message
}

/// The key that seals and opens the entries of one cell. Held only by nodes with the cell
/// secret.
#[derive(Clone)]
pub struct EntryKey {
    key: [u8; 32],
}

impl EntryKey {
    /// The entry key of the cell whose keypair is `cell`.
    pub fn from_cell_keypair(cell: &Keypair) -> EntryKey {
        EntryKey::from_cell_seed(&cell.seed())
    }

    /// The entry key of the cell whose secret seed is `seed`.
    pub fn from_cell_seed(seed: &[u8; 32]) -> EntryKey {
        EntryKey {
            key: blake3::derive_key(ENTRY_KEY_CONTEXT, seed),
        }
    }

    /// The raw 32-byte key (for test vectors).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.key.into())
    }

    /// Seals `plaintext` as the entry of operation `id` by `author`.
    pub fn seal(&self, id: &OperationId, author: &PublicKey, plaintext: &[u8]) -> Vec<u8> {
        let aad = associated_data(id, author);
        match self.cipher().encrypt(
            &nonce(id),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        ) {
            Ok(ciphertext) => ciphertext,
            // XChaCha20-Poly1305 encryption fails only past 256 GiB of plaintext, far above
            // OPERATION_SIZE_BYTES_MAX, which callers check first.
            Err(_) => unreachable!("XChaCha20-Poly1305 refused a bounded plaintext"),
        }
    }

    /// Opens the entry `ciphertext` of operation `id` by `author`.
    pub fn open(
        &self,
        id: &OperationId,
        author: &PublicKey,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, EntryError> {
        if ciphertext.len() < ENTRY_TAG_LEN {
            return Err(EntryError::TooShort {
                id: *id,
                size_bytes: ciphertext.len(),
            });
        }
        let aad = associated_data(id, author);
        self.cipher()
            .decrypt(
                &nonce(id),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| EntryError::Decrypt { id: *id })
    }
}

impl fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key by accident.
        f.write_str("EntryKey(..)")
    }
}

/// The 24-byte nonce of operation `id`: its 16-byte form, then 8 zero bytes.
pub fn nonce(id: &OperationId) -> XNonce {
    let mut nonce = [0u8; 24];
    nonce[..OPERATION_ID_LEN].copy_from_slice(&id.to_bytes());
    nonce.into()
}

/// The associated data of operation `id` by `author`: id bytes, then author key bytes.
pub fn associated_data(id: &OperationId, author: &PublicKey) -> [u8; OPERATION_ID_LEN + 32] {
    let mut aad = [0u8; OPERATION_ID_LEN + 32];
    aad[..OPERATION_ID_LEN].copy_from_slice(&id.to_bytes());
    aad[OPERATION_ID_LEN..].copy_from_slice(&author.to_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (EntryKey, OperationId, PublicKey) {
        let cell = Keypair::generate();
        let author = Keypair::generate().public();
        (
            EntryKey::from_cell_keypair(&cell),
            OperationId::new(1_000, &author),
            author,
        )
    }

    #[test]
    fn entries_round_trip() {
        let (key, id, author) = setup();
        let sealed = key.seal(&id, &author, b"hello");
        assert_eq!(sealed.len(), 5 + ENTRY_TAG_LEN);
        assert_eq!(key.open(&id, &author, &sealed).unwrap(), b"hello");
        let empty = key.seal(&id, &author, b"");
        assert_eq!(key.open(&id, &author, &empty).unwrap(), b"");
    }

    #[test]
    fn wrong_key_tampering_and_wrong_associated_data_are_refused() {
        let (key, id, author) = setup();
        let sealed = key.seal(&id, &author, b"hello");
        let other_cell = EntryKey::from_cell_keypair(&Keypair::generate());
        assert_eq!(
            other_cell.open(&id, &author, &sealed),
            Err(EntryError::Decrypt { id })
        );
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(key.open(&id, &author, &tampered).is_err(), "byte {i}");
        }
        let other_id = OperationId {
            time_us: id.time_us + 1,
            ..id
        };
        assert!(key.open(&other_id, &author, &sealed).is_err());
        let other_author = Keypair::generate().public();
        assert!(key.open(&id, &other_author, &sealed).is_err());
        assert_eq!(
            key.open(&id, &author, &sealed[..10]),
            Err(EntryError::TooShort { id, size_bytes: 10 })
        );
    }

    #[test]
    fn entry_key_depends_only_on_the_cell_secret() {
        let cell = Keypair::generate();
        assert_eq!(
            EntryKey::from_cell_keypair(&cell).to_bytes(),
            EntryKey::from_cell_seed(&cell.seed()).to_bytes()
        );
        assert_ne!(EntryKey::from_cell_seed(&[1; 32]).to_bytes(), [1; 32]);
        assert_eq!(
            format!("{:?}", EntryKey::from_cell_seed(&[1; 32])),
            "EntryKey(..)"
        );
    }
}
