//! The bincode configuration of the wire, and encode/decode helpers with a size limit.
//!
//! `bincode::config::standard().with_little_endian().with_fixed_int_encoding()` with a limit
//! of [`MESSAGE_SIZE_BYTES_MAX`]: integers fixed-width little endian; `String`, `Vec<T>` and
//! `[u8]` as a u64 length then the items; `Option` as a u8 (0 or 1) then the value; enums as a
//! u32 variant index then the fields; `bool` as a u8 (0 or 1); fixed-size arrays as their
//! items with no length. `spec/protocol.md` spells this out with hex examples.
//!
//! A length field can never make a decoder allocate more than the limit, and a decoded value
//! must use every byte: trailing bytes are an error.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::de::read::Reader;
use bincode::de::{Decoder, DecoderImpl};
use bincode::{Decode, Encode};

use crate::error::WireError;
use crate::MESSAGE_SIZE_BYTES_MAX;

/// The type of [`CONFIG`].
pub type Config = Configuration<LittleEndian, Fixint, Limit<MESSAGE_SIZE_BYTES_MAX>>;

/// The wire's bincode configuration.
pub const CONFIG: Config = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<MESSAGE_SIZE_BYTES_MAX>();

/// Encodes `value`; `Err` if the result is over [`MESSAGE_SIZE_BYTES_MAX`].
pub fn encode<T: Encode>(value: &T) -> Result<Vec<u8>, WireError> {
    let bytes = bincode::encode_to_vec(value, CONFIG).map_err(WireError::Encode)?;
    if bytes.len() > MESSAGE_SIZE_BYTES_MAX {
        return Err(WireError::TooLarge {
            size_bytes: bytes.len(),
            max: MESSAGE_SIZE_BYTES_MAX,
        });
    }
    Ok(bytes)
}

/// Decodes a `T` that must use all of `bytes` (trailing bytes are refused).
///
/// Untrusted input cannot make the decoder allocate from a length field alone: see
/// [`decode_exact`].
pub fn decode<T: Decode<()>>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MESSAGE_SIZE_BYTES_MAX {
        return Err(WireError::TooLarge {
            size_bytes: bytes.len(),
            max: MESSAGE_SIZE_BYTES_MAX,
        });
    }
    decode_exact(bytes, CONFIG, MESSAGE_SIZE_BYTES_MAX)
}

/// Memory a decode may claim per input byte. bincode charges a container its in-memory
/// size (24 bytes per `String` in a `Vec`, say), which can exceed its encoded size.
pub const DECODE_BUDGET_FACTOR: usize = 4;
/// Memory a decode may claim beyond [`DECODE_BUDGET_FACTOR`] times the input.
pub const DECODE_BUDGET_SLACK_BYTES: usize = 256;

/// Decodes a `T` from all of `bytes` with `config`, whose byte limit is `limit`.
///
/// bincode checks a length field only against the configured limit, then allocates before
/// reading: a 24-byte message claiming a 16 MiB payload would allocate 16 MiB. So the
/// decoder's budget is first charged down to [`DECODE_BUDGET_FACTOR`] × `bytes.len()` +
/// [`DECODE_BUDGET_SLACK_BYTES`]: a length field larger than the input could justify is
/// refused before anything is allocated. Layouts are unchanged.
pub fn decode_exact<T: Decode<()>, C: bincode::config::Config>(
    bytes: &[u8],
    config: C,
    limit: usize,
) -> Result<T, WireError> {
    let budget = bytes
        .len()
        .saturating_mul(DECODE_BUDGET_FACTOR)
        .saturating_add(DECODE_BUDGET_SLACK_BYTES)
        .min(limit);
    let mut decoder = DecoderImpl::new(Remaining(bytes), config, ());
    decoder
        .claim_bytes_read(limit - budget)
        .map_err(WireError::Decode)?;
    let value = T::decode(&mut decoder).map_err(WireError::Decode)?;
    match decoder.reader().0.len() {
        0 => Ok(value),
        count => Err(WireError::TrailingBytes { count }),
    }
}

/// A slice reader that keeps what is left, for the trailing-bytes check.
struct Remaining<'a>(&'a [u8]);

impl Reader for Remaining<'_> {
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
        if bytes.len() > self.0.len() {
            return Err(bincode::error::DecodeError::UnexpectedEnd {
                additional: bytes.len() - self.0.len(),
            });
        }
        let (head, tail) = self.0.split_at(bytes.len());
        bytes.copy_from_slice(head);
        self.0 = tail;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Encode, Decode, Debug, PartialEq)]
    struct Sample {
        a: u16,
        b: Option<u32>,
        c: String,
        d: Vec<u8>,
        e: bool,
        f: [u8; 2],
    }

    #[test]
    fn layout_matches_the_spec() {
        let sample = Sample {
            a: 0x0102,
            b: Some(7),
            c: "hi".into(),
            d: vec![0xaa],
            e: true,
            f: [9, 8],
        };
        let bytes = encode(&sample).unwrap();
        let expected: &[u8] = &[
            0x02, 0x01, // a: u16 LE
            0x01, 0x07, 0, 0, 0, // b: Some, u32 LE
            2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i', // c: u64 length + UTF-8
            1, 0, 0, 0, 0, 0, 0, 0, 0xaa, // d: u64 length + bytes
            1,    // e: bool
            9, 8, // f: array, no length
        ];
        assert_eq!(bytes, expected);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), sample);
        let none = Sample { b: None, ..sample };
        assert_eq!(encode(&none).unwrap()[2], 0);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&5u32).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u32>(&bytes),
            Err(WireError::TrailingBytes { count: 1 })
        ));
    }

    #[test]
    fn huge_length_fields_do_not_allocate() {
        // A Vec<u8> claiming 2^63 bytes, and one claiming just over the limit.
        let mut bytes = vec![0u8; 8];
        bytes[7] = 0x80;
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        let over = (MESSAGE_SIZE_BYTES_MAX as u64 + 1).to_le_bytes();
        assert!(decode::<Vec<u8>>(&over).is_err());
        assert!(decode::<String>(&over).is_err());
    }

    #[test]
    fn bad_bool_and_bad_utf8_are_errors() {
        assert!(decode::<bool>(&[2]).is_err());
        assert!(decode::<String>(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
        assert!(decode::<Option<u8>>(&[2, 0]).is_err());
    }
}
