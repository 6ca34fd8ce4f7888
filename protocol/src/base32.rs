//! Lowercase RFC 4648 base32 without padding: the alphabet of every key's text form.
//!
//! Lowercase and unpadded so that a key can be a file name, a URL segment, or a shell word,
//! and is case-insensitive when typed (decoding accepts upper case too).

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Encodes `bytes` (5 bits per character, the last character zero-padded).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes a string made by [`encode`]; `Err` holds the first character outside the
/// alphabet. Trailing bits that do not make a whole byte must be zero, so every byte
/// string has exactly one text form.
pub fn decode(text: &str) -> Result<Vec<u8>, char> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for c in text.chars() {
        let value = match c.to_ascii_lowercase() {
            l @ 'a'..='z' => l as u32 - 'a' as u32,
            d @ '2'..='7' => d as u32 - '2' as u32 + 26,
            other => return Err(other),
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits >= 5 || buffer != 0 {
        // A dangling character, or non-zero padding bits: not a canonical encoding.
        return Err(text.chars().last().unwrap_or('?'));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        // RFC 4648 section 10, lowercased and without padding.
        let vectors = [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
            assert_eq!(decode(&encoded.to_uppercase()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn round_trips_every_length() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for len in 0..bytes.len() {
            assert_eq!(decode(&encode(&bytes[..len])).unwrap(), &bytes[..len]);
        }
    }

    #[test]
    fn rejects_bad_characters_and_non_canonical_padding() {
        assert_eq!(decode("mzx1"), Err('1'));
        assert_eq!(decode("mzx="), Err('='));
        assert!(decode("mz").is_err(), "non-zero padding bits");
        assert!(decode("a").is_err(), "a lone character is not a byte");
    }
}
