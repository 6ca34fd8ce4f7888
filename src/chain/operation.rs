//! Operations: the unit of change in a cell, signed by the node that wrote it.
//!
//! Encoding (`spec/chain.md`), all integers little-endian except the id:
//!
//! ```text
//! id          16  time_us u64 BE, node u64 BE
//! author      32  ed25519 public key of the author node
//! payload         u32 variant, then its fields (Entry = 0: u64 length, ciphertext)
//! signature   64  ed25519 by author over
//!                 "exocore/operation/v1" || cell id || (the encoding above, without signature)
//! ```

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError as BincodeDecodeError, EncodeError};
use bincode::{Decode, Encode};
use exocore_protocol::identity::{Keypair, PublicKey};

use super::crypto::{signed_message, EntryKey, ENTRY_TAG_LEN, OPERATION_DOMAIN};
use super::encoding::{self, decode_key};
use super::error::{DecodeError, EntryError};
use super::id::OperationId;
use super::membership::SignedMembership;
use super::OPERATION_SIZE_BYTES_MAX;

/// Encoded size of everything in an entry operation except the ciphertext bytes:
/// id 16 + author 32 + variant 4 + length 8 + signature 64.
pub const ENTRY_OPERATION_OVERHEAD_BYTES: usize = 16 + 32 + 4 + 8 + 64;

/// The largest entry plaintext that fits in an operation.
pub const ENTRY_PLAINTEXT_BYTES_MAX: usize =
    OPERATION_SIZE_BYTES_MAX - ENTRY_OPERATION_OVERHEAD_BYTES - ENTRY_TAG_LEN;

/// What an operation carries.
///
/// Encoded as a u32 variant index then the variant's fields. Index 0 is `Entry`, 1 a
/// membership change signed by the cell key, 2 an app change (`spec/apps.md` section 11); a
/// decoder refuses an index it does not know.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Payload {
    /// User data, sealed with the cell's [`EntryKey`].
    Entry {
        /// XChaCha20-Poly1305 ciphertext with its 16-byte tag.
        ciphertext: Vec<u8>,
    },
    /// A new membership document of the cell (`spec/chain.md` section 6), in force from the
    /// block after the one that commits it.
    Membership(Box<SignedMembership>),
    /// An app installed or removed (`spec/apps.md` section 11), sealed with the cell's
    /// [`EntryKey`] like an entry: chain-only nodes do not learn which apps a cell runs.
    App {
        /// XChaCha20-Poly1305 ciphertext with its 16-byte tag.
        ciphertext: Vec<u8>,
    },
}

/// A signed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Unique across the cell; issued by the author.
    pub id: OperationId,
    /// The node that wrote and signed it.
    pub author: PublicKey,
    /// What it carries.
    pub payload: Payload,
    /// ed25519 signature by `author`, see [`Operation::signed_bytes`].
    pub signature: [u8; 64],
}

impl Operation {
    /// Signs a new operation with `payload` for `cell`. `id` must have been issued for
    /// `author` (see [`IdGenerator`](super::IdGenerator)), or verification refuses it.
    pub fn sign(
        cell: &PublicKey,
        id: OperationId,
        author: &Keypair,
        payload: Payload,
    ) -> Operation {
        let mut operation = Operation {
            id,
            author: author.public(),
            payload,
            signature: [0; 64],
        };
        operation.signature = author.sign(&operation.signed_bytes(cell));
        operation
    }

    /// Seals `plaintext` with the cell's entry key and signs the resulting entry operation.
    pub fn new_entry(
        cell: &PublicKey,
        key: &EntryKey,
        id: OperationId,
        author: &Keypair,
        plaintext: &[u8],
    ) -> Result<Operation, EntryError> {
        Operation::new_sealed(cell, key, id, author, plaintext, |ciphertext| {
            Payload::Entry { ciphertext }
        })
    }

    /// Seals an app change with the cell's entry key and signs the resulting operation.
    pub fn new_app(
        cell: &PublicKey,
        key: &EntryKey,
        id: OperationId,
        author: &Keypair,
        plaintext: &[u8],
    ) -> Result<Operation, EntryError> {
        Operation::new_sealed(cell, key, id, author, plaintext, |ciphertext| {
            Payload::App { ciphertext }
        })
    }

    fn new_sealed(
        cell: &PublicKey,
        key: &EntryKey,
        id: OperationId,
        author: &Keypair,
        plaintext: &[u8],
        payload: impl FnOnce(Vec<u8>) -> Payload,
    ) -> Result<Operation, EntryError> {
        if plaintext.len() > ENTRY_PLAINTEXT_BYTES_MAX {
            return Err(EntryError::TooLarge {
                size_bytes: plaintext.len(),
                max: ENTRY_PLAINTEXT_BYTES_MAX,
            });
        }
        let ciphertext = key.seal(&id, &author.public(), plaintext);
        Ok(Operation::sign(cell, id, author, payload(ciphertext)))
    }

    /// Opens the entry this operation carries.
    pub fn open_entry(&self, key: &EntryKey) -> Result<Vec<u8>, EntryError> {
        match &self.payload {
            Payload::Entry { ciphertext } => key.open(&self.id, &self.author, ciphertext),
            Payload::Membership(_) | Payload::App { .. } => {
                Err(EntryError::NotAnEntry { id: self.id })
            }
        }
    }

    /// Opens the app change this operation carries, if it carries one.
    pub fn open_app(&self, key: &EntryKey) -> Option<Result<Vec<u8>, EntryError>> {
        match &self.payload {
            Payload::App { ciphertext } => Some(key.open(&self.id, &self.author, ciphertext)),
            Payload::Entry { .. } | Payload::Membership(_) => None,
        }
    }

    /// The encoding of the unsigned fields (id, author, payload): the operation's encoding
    /// without its last 64 bytes.
    pub fn unsigned_bytes(&self) -> Vec<u8> {
        let mut bytes = self.to_bytes();
        bytes.truncate(bytes.len() - 64);
        bytes
    }

    /// What the author signs: `"exocore/operation/v1" || cell id || unsigned bytes`.
    pub fn signed_bytes(&self, cell: &PublicKey) -> Vec<u8> {
        signed_message(OPERATION_DOMAIN, cell, &self.unsigned_bytes())
    }

    /// Whether the signature is the author's over this operation in `cell`. Membership and
    /// id checks are in [`Operation::verify`](super::verify).
    pub fn signature_is_valid(&self, cell: &PublicKey) -> bool {
        self.author
            .verify(&self.signed_bytes(cell), &self.signature)
    }

    /// The encoding (`spec/chain.md`).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes untrusted bytes. Checks the format and the size limit only: call
    /// [`Operation::verify`](super::verify) before trusting the result.
    pub fn from_bytes(bytes: &[u8]) -> Result<Operation, DecodeError> {
        encoding::decode("operation", bytes, OPERATION_SIZE_BYTES_MAX)
    }

    /// BLAKE3 of the encoding: the operation's identity in block hashes and sync.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.to_bytes()).as_bytes()
    }

    /// Encoded size in bytes.
    pub fn size_bytes(&self) -> usize {
        match &self.payload {
            Payload::Entry { ciphertext } | Payload::App { ciphertext } => {
                ENTRY_OPERATION_OVERHEAD_BYTES + ciphertext.len()
            }
            Payload::Membership(_) => self.to_bytes().len(),
        }
    }
}

impl Encode for Operation {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.id.encode(encoder)?;
        self.author.to_bytes().encode(encoder)?;
        self.payload.encode(encoder)?;
        self.signature.encode(encoder)
    }
}

impl<Context> Decode<Context> for Operation {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, BincodeDecodeError> {
        Ok(Operation {
            id: OperationId::decode(decoder)?,
            author: decode_key(decoder)?,
            payload: Payload::decode(decoder)?,
            signature: <[u8; 64]>::decode(decoder)?,
        })
    }
}

bincode::impl_borrow_decode!(Operation);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cell: &Keypair, author: &Keypair, text: &[u8]) -> Operation {
        let id = OperationId::new(1_700_000_000_000_000, &author.public());
        Operation::new_entry(
            &cell.public(),
            &EntryKey::from_cell_keypair(cell),
            id,
            author,
            text,
        )
        .unwrap()
    }

    #[test]
    fn encoding_round_trips_and_has_the_documented_layout() {
        let cell = Keypair::generate();
        let author = Keypair::generate();
        let op = entry(&cell, &author, b"hello");
        let bytes = op.to_bytes();
        assert_eq!(bytes.len(), ENTRY_OPERATION_OVERHEAD_BYTES + 5 + 16);
        assert_eq!(bytes.len(), op.size_bytes());
        assert_eq!(&bytes[..16], &op.id.to_bytes());
        assert_eq!(&bytes[16..48], &author.public().to_bytes());
        assert_eq!(&bytes[48..52], &[0, 0, 0, 0]); // Entry variant
        assert_eq!(&bytes[52..60], &21u64.to_le_bytes());
        assert_eq!(&bytes[bytes.len() - 64..], &op.signature);
        assert_eq!(Operation::from_bytes(&bytes).unwrap(), op);
        assert!(op.signature_is_valid(&cell.public()));
    }

    #[test]
    fn a_signature_for_another_cell_or_a_tampered_payload_is_refused() {
        let cell = Keypair::generate();
        let author = Keypair::generate();
        let op = entry(&cell, &author, b"hello");
        assert!(!op.signature_is_valid(&Keypair::generate().public()));
        let mut tampered = op.clone();
        let Payload::Entry { ciphertext } = &mut tampered.payload else {
            unreachable!("an entry was built")
        };
        ciphertext[0] ^= 1;
        assert!(!tampered.signature_is_valid(&cell.public()));
        let mut moved = op.clone();
        moved.id.time_us += 1;
        assert!(!moved.signature_is_valid(&cell.public()));
    }

    #[test]
    fn untrusted_bytes_never_panic() {
        let cell = Keypair::generate();
        let author = Keypair::generate();
        let bytes = entry(&cell, &author, b"hello").to_bytes();
        for len in 0..bytes.len() {
            assert!(
                Operation::from_bytes(&bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Operation::from_bytes(&longer),
            Err(DecodeError::TrailingBytes { count: 1, .. })
        ));
        // Unknown payload kind.
        let mut kind = bytes.clone();
        kind[48] = 3;
        assert!(Operation::from_bytes(&kind).is_err());
        // A ciphertext length claiming 2^63 bytes.
        let mut huge = bytes.clone();
        huge[59] = 0x80;
        assert!(Operation::from_bytes(&huge).is_err());
        // Every single-bit flip decodes to an error or to an operation whose signature fails.
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            if let Ok(op) = Operation::from_bytes(&flipped) {
                assert!(!op.signature_is_valid(&cell.public()), "byte {i}");
            }
        }
        assert!(matches!(
            Operation::from_bytes(&vec![0; OPERATION_SIZE_BYTES_MAX + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn too_large_entries_are_refused_before_sealing() {
        let cell = Keypair::generate();
        let author = Keypair::generate();
        let id = OperationId::new(1, &author.public());
        let key = EntryKey::from_cell_keypair(&cell);
        let max = vec![0u8; ENTRY_PLAINTEXT_BYTES_MAX];
        let op = Operation::new_entry(&cell.public(), &key, id, &author, &max).unwrap();
        assert_eq!(op.to_bytes().len(), OPERATION_SIZE_BYTES_MAX);
        assert!(Operation::from_bytes(&op.to_bytes()).is_ok());
        let over = vec![0u8; ENTRY_PLAINTEXT_BYTES_MAX + 1];
        assert!(matches!(
            Operation::new_entry(&cell.public(), &key, id, &author, &over),
            Err(EntryError::TooLarge { .. })
        ));
    }
}
