//! Keys and ids: ed25519 keypairs for nodes and cells, their text forms, fingerprints, and
//! the Noise static key derived from a node's ed25519 key.
//!
//! A node or a cell is identified by its ed25519 public key: there is no second id to keep in
//! sync with it. The text forms are specified in `spec/identity.md`:
//!
//! - public key: `pk_` + base32(32-byte key ‖ 4-byte checksum), 58 characters after the prefix;
//! - secret key: `sk_` + base32(32-byte seed ‖ 4-byte checksum);
//! - fingerprint: the first 8 bytes of BLAKE3(public key), hex in four groups, for humans to
//!   compare on two screens.
//!
//! The checksum (first 4 bytes of BLAKE3(prefix ‖ bytes)) catches a mistyped or truncated key
//! and a secret pasted where a public key belongs.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};

use crate::base32;

const PUBLIC_PREFIX: &str = "pk_";
const SECRET_PREFIX: &str = "sk_";
const CHECKSUM_LEN: usize = 4;
const KEY_LEN: usize = 32;

/// Why a key's text form was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTextError {
    /// The text does not start with the prefix of the expected kind of key.
    WrongPrefix {
        /// The prefix that was expected (`pk_` or `sk_`).
        expected: &'static str,
    },
    /// A character outside the base32 alphabet.
    BadCharacter(char),
    /// The decoded text is not 36 bytes long (truncated or extended).
    WrongLength(usize),
    /// The checksum does not match: a typo, or a key cut and pasted wrongly.
    BadChecksum,
    /// The bytes are not a valid ed25519 public key.
    NotAKey,
}

impl fmt::Display for KeyTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyTextError::WrongPrefix { expected } => {
                write!(f, "a key of this kind starts with `{expected}`")
            }
            KeyTextError::BadCharacter(c) => {
                write!(f, "`{c}` is not a key character (a-z and 2-7)")
            }
            KeyTextError::WrongLength(len) => {
                write!(
                    f,
                    "key is {len} bytes long, expected {} (truncated?)",
                    KEY_LEN + CHECKSUM_LEN
                )
            }
            KeyTextError::BadChecksum => write!(f, "key checksum does not match (mistyped?)"),
            KeyTextError::NotAKey => write!(f, "not a valid ed25519 public key"),
        }
    }
}

impl std::error::Error for KeyTextError {}

fn checksum(prefix: &str, bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prefix.as_bytes());
    hasher.update(bytes);
    let hash = hasher.finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&hash.as_bytes()[..CHECKSUM_LEN]);
    out
}

fn encode_key(prefix: &'static str, bytes: &[u8; KEY_LEN]) -> String {
    let mut payload = Vec::with_capacity(KEY_LEN + CHECKSUM_LEN);
    payload.extend_from_slice(bytes);
    payload.extend_from_slice(&checksum(prefix, bytes));
    format!("{prefix}{}", base32::encode(&payload))
}

fn decode_key(prefix: &'static str, text: &str) -> Result<[u8; KEY_LEN], KeyTextError> {
    let text = text.trim();
    let body = match text.get(..prefix.len()) {
        Some(p) if p.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => return Err(KeyTextError::WrongPrefix { expected: prefix }),
    };
    let payload = base32::decode(body).map_err(KeyTextError::BadCharacter)?;
    if payload.len() != KEY_LEN + CHECKSUM_LEN {
        return Err(KeyTextError::WrongLength(payload.len()));
    }
    let (key, sum) = payload.split_at(KEY_LEN);
    let mut bytes = [0u8; KEY_LEN];
    bytes.copy_from_slice(key);
    if sum != checksum(prefix, &bytes) {
        return Err(KeyTextError::BadChecksum);
    }
    Ok(bytes)
}

/// An ed25519 public key: the identity of a node, a cell or an app.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The 32 bytes of the key, as sent on the wire.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0.to_bytes()
    }

    /// Parses 32 wire bytes; `Err` if they are not a point on the curve.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<PublicKey, KeyTextError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyTextError::NotAKey)
    }

    /// A short form for humans to compare, e.g. `3f2a-91c0-5b7e-d412`.
    pub fn fingerprint(&self) -> String {
        let hash = blake3::hash(self.0.as_bytes());
        let bytes = hash.as_bytes();
        (0..4)
            .map(|i| format!("{:02x}{:02x}", bytes[2 * i], bytes[2 * i + 1]))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The X25519 public key this node uses as its Noise static key: the birational map of
    /// the ed25519 point to Montgomery form, so one public key names a node everywhere.
    pub fn noise_public(&self) -> [u8; KEY_LEN] {
        self.0.to_montgomery().to_bytes()
    }

    /// Checks an ed25519 signature of `message` by this key (strict verification: rejects
    /// small-order keys and malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
            && self.0.verify(message, &signature).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_key(PUBLIC_PREFIX, self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyTextError;

    fn from_str(text: &str) -> Result<PublicKey, KeyTextError> {
        PublicKey::from_bytes(&decode_key(PUBLIC_PREFIX, text)?)
    }
}

/// An ed25519 keypair. Its text form is the secret seed (`sk_...`); the public half is derived.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl Keypair {
    /// A new keypair from the operating system's random source.
    pub fn generate() -> Keypair {
        Keypair(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The keypair of a 32-byte secret seed (test vectors use fixed seeds).
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Keypair {
        Keypair(SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The 32-byte secret seed.
    pub fn seed(&self) -> [u8; KEY_LEN] {
        self.0.to_bytes()
    }

    /// The secret's text form, `sk_...`. Only for files of mode 0600 and explicit requests.
    pub fn secret_text(&self) -> String {
        encode_key(SECRET_PREFIX, &self.0.to_bytes())
    }

    /// Parses a secret's text form.
    pub fn from_secret_text(text: &str) -> Result<Keypair, KeyTextError> {
        Ok(Keypair::from_seed(&decode_key(SECRET_PREFIX, text)?))
    }

    /// The X25519 secret used as the Noise static key: the clamped scalar of the ed25519
    /// secret (the first half of SHA-512(seed)), matching [`PublicKey::noise_public`].
    pub fn noise_secret(&self) -> [u8; KEY_LEN] {
        let mut scalar = self.0.to_scalar_bytes();
        // RFC 7748 clamping, so the bytes are the X25519 secret itself, not merely
        // equivalent to it (X25519 would clamp them again, harmlessly).
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        scalar
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret by accident.
        write!(f, "Keypair({})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_text_round_trips() {
        for _ in 0..50 {
            let keypair = Keypair::generate();
            let text = keypair.public().to_string();
            assert_eq!(text.len(), 3 + 58);
            assert_eq!(text.parse::<PublicKey>().unwrap(), keypair.public());
            assert_eq!(
                text.to_uppercase().parse::<PublicKey>().unwrap(),
                keypair.public()
            );
        }
    }

    #[test]
    fn secret_text_round_trips() {
        let keypair = Keypair::generate();
        let text = keypair.secret_text();
        assert!(text.starts_with("sk_"));
        let back = Keypair::from_secret_text(&text).unwrap();
        assert_eq!(back.public(), keypair.public());
        assert_eq!(back.seed(), keypair.seed());
    }

    #[test]
    fn fixed_seed_matches_spec_vector() {
        // The vector printed in spec/identity.md.
        let keypair = Keypair::from_seed(&[7u8; 32]);
        let public = keypair.public();
        if std::env::var_os("UPDATE_VECTORS").is_some() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/identity");
            std::fs::write(format!("{dir}/seed07.pk"), format!("{public}\n")).unwrap();
            std::fs::write(
                format!("{dir}/seed07.sk"),
                format!("{}\n", keypair.secret_text()),
            )
            .unwrap();
            std::fs::write(
                format!("{dir}/seed07.fingerprint"),
                format!("{}\n", public.fingerprint()),
            )
            .unwrap();
            std::fs::write(
                format!("{dir}/seed07.x25519"),
                format!("{}\n", hex(&public.noise_public())),
            )
            .unwrap();
        }
        assert_eq!(
            public.to_string(),
            include_str!("../../fixtures/identity/seed07.pk").trim()
        );
        assert_eq!(
            keypair.secret_text(),
            include_str!("../../fixtures/identity/seed07.sk").trim()
        );
        assert_eq!(
            public.fingerprint(),
            include_str!("../../fixtures/identity/seed07.fingerprint").trim()
        );
        assert_eq!(
            hex(&public.noise_public()),
            include_str!("../../fixtures/identity/seed07.x25519").trim()
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn mistakes_are_named() {
        let keypair = Keypair::generate();
        let text = keypair.public().to_string();
        assert_eq!(
            keypair.secret_text().parse::<PublicKey>(),
            Err(KeyTextError::WrongPrefix { expected: "pk_" })
        );
        assert!(matches!(
            text[..35].parse::<PublicKey>(),
            Err(KeyTextError::WrongLength(_))
        ));
        let mut typo = text.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert_eq!(
            String::from_utf8(typo).unwrap().parse::<PublicKey>(),
            Err(KeyTextError::BadChecksum)
        );
        assert_eq!(
            format!("{}!", &text[..20]).parse::<PublicKey>(),
            Err(KeyTextError::BadCharacter('!'))
        );
        // A secret's text form, re-prefixed, fails its checksum: the prefix is checksummed.
        let relabelled = keypair.secret_text().replacen("sk_", "pk_", 1);
        assert_eq!(
            relabelled.parse::<PublicKey>(),
            Err(KeyTextError::BadChecksum)
        );
    }

    #[test]
    fn noise_keys_agree_with_x25519() {
        // The derived X25519 secret times the base point is the derived X25519 public key.
        let keypair = Keypair::generate();
        let secret = keypair.noise_secret();
        let public = curve25519_dalek::montgomery::MontgomeryPoint::mul_base_clamped(secret);
        assert_eq!(public.to_bytes(), keypair.public().noise_public());
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let keypair = Keypair::generate();
        let signature = keypair.sign(b"hello");
        assert!(keypair.public().verify(b"hello", &signature));
        assert!(!keypair.public().verify(b"hellO", &signature));
        assert!(!Keypair::generate().public().verify(b"hello", &signature));
    }
}
