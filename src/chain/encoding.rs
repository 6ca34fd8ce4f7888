//! The chain's byte encoding: the project's bincode configuration (fixed-width little-endian
//! integers, u64 lengths, u32 enum tags) with a size limit, and decoding that treats every
//! input as untrusted: errors are values, trailing bytes are refused, and no length field can
//! make the decoder allocate more than the limit.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::de::Decoder;
use bincode::error::DecodeError as BincodeDecodeError;
use bincode::{Decode, Encode};
use exocore_protocol::identity::PublicKey;

use super::error::DecodeError;
use super::BLOCK_SIZE_BYTES_MAX;

/// The bincode configuration of every chain encoding, limited to the largest block.
pub(crate) type Config = Configuration<LittleEndian, Fixint, Limit<BLOCK_SIZE_BYTES_MAX>>;

/// See [`Config`]. Same base configuration as `exocore_protocol::wire::CONFIG`.
pub(crate) const CONFIG: Config = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<BLOCK_SIZE_BYTES_MAX>();

/// Encodes `value`. Chain values are bounded by construction, so this cannot fail for any
/// value that passed [`decode`] or was built by this module's constructors; a value over the
/// limit encodes anyway and is refused later by size checks.
pub(crate) fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // An unlimited configuration: encoding writes to a Vec and never fails for our types
    // (no maps, no strings, no custom errors).
    let config = bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding();
    match bincode::encode_to_vec(value, config) {
        Ok(bytes) => bytes,
        // Unreachable for chain types: their Encode impls only write bytes to a Vec.
        Err(e) => unreachable!("encoding a chain value into memory failed: {e}"),
    }
}

/// Decodes a `T` that must use all of `bytes` and be at most `max` bytes long.
pub(crate) fn decode<T: Decode<()>>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            what,
            size_bytes: bytes.len(),
            max,
        });
    }
    // Through the protocol's bounded decoder: a length field larger than the input could
    // justify is refused before anything is allocated.
    exocore_protocol::wire::decode_exact(bytes, CONFIG, BLOCK_SIZE_BYTES_MAX).map_err(|e| match e {
        exocore_protocol::error::WireError::TrailingBytes { count } => {
            DecodeError::TrailingBytes { what, count }
        }
        other => DecodeError::Malformed {
            what,
            reason: other.to_string(),
        },
    })
}

/// Decodes a 32-byte public key; a value that is not a curve point is a decoding error.
pub(crate) fn decode_key<D: Decoder>(decoder: &mut D) -> Result<PublicKey, BincodeDecodeError> {
    let bytes = <[u8; 32]>::decode(decoder)?;
    PublicKey::from_bytes(&bytes)
        .map_err(|_| BincodeDecodeError::Other("a public key is not a valid ed25519 point"))
}

/// Lowercase hex, for messages and fixtures.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
