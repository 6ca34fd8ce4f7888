//! What the two parties say to each other, inside the encrypted channel (PIN path) or in
//! files (manual path): the same JSON documents either way. Specified in `spec/join.md`
//! sections 6 and 7.
//!
//! A [`Request`] is signed by the joining node's key (it holds the key it names); an
//! [`Answer`] is signed by the cell's key (a member that holds the cell secret made it) and is
//! addressed to one node; the cell secret in it, if any, is sealed to that node's key, so an
//! answer file is useless to anyone else.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use exocore_protocol::identity::{Keypair, PublicKey};
use serde::{Deserialize, Serialize};

use crate::config::{CellConfig, Role};

/// Largest JSON document accepted (a message or a file).
pub const DOCUMENT_BYTES_MAX: usize = 60 * 1024;

/// What a joining node asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The joining node's public key.
    #[serde(with = "crate::config::key_serde")]
    pub node: PublicKey,
    /// Its name.
    pub name: String,
    /// Where the cell's other nodes reach it.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The roles it asks for.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Ed25519 signature by `node` of [`Request::signed_bytes`], hex.
    #[serde(with = "hex64")]
    pub signature: [u8; 64],
}

/// A sealed copy of the cell's secret key, readable only by the node it is addressed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecret {
    /// The sender's ephemeral X25519 public key, hex.
    #[serde(with = "hex32")]
    pub ephemeral: [u8; 32],
    /// The cell's 32-byte secret seed under ChaCha20-Poly1305, hex (48 bytes).
    #[serde(with = "hex48")]
    pub sealed: [u8; 48],
}

/// What a member gives back: the cell as the joining node should install it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The node this answer is for.
    #[serde(with = "crate::config::key_serde")]
    pub node: PublicKey,
    /// The cell's `cell.toml`, with the joining node in it.
    pub cell: String,
    /// The cell's secret key, for roles that read data (store, app-host).
    pub secret: Option<SealedSecret>,
    /// Ed25519 signature by the cell key of [`Answer::signed_bytes`], hex.
    #[serde(with = "hex64")]
    pub signature: [u8; 64],
}

/// One document of the exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// Joiner to member: who I am and what I ask for.
    Request(Request),
    /// Member to joiner: the member accepted the request for this cell.
    Offer {
        /// The cell's id.
        #[serde(with = "crate::config::key_serde")]
        cell: PublicKey,
        /// Its name.
        cell_name: String,
        /// The admitting member's name.
        member: String,
    },
    /// Joiner to member: I can install that cell; admit me.
    Ready {},
    /// Member to joiner: you are a member; here is the cell.
    Answer(Answer),
    /// Joiner to member: the cell is installed.
    Installed {},
    /// Either way: no, and why (the exchange ends).
    Refused {
        /// Why, in words for the other side's user.
        reason: String,
    },
}

impl Message {
    /// The JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses a document; `Err` says what is wrong with it.
    pub fn from_json(bytes: &[u8]) -> Result<Message, String> {
        if bytes.len() > DOCUMENT_BYTES_MAX {
            return Err(format!(
                "it is {} bytes long, more than the {DOCUMENT_BYTES_MAX} allowed",
                bytes.len()
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The message's name, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Request(_) => "request",
            Message::Offer { .. } => "offer",
            Message::Ready {} => "ready",
            Message::Answer(_) => "answer",
            Message::Installed {} => "installed",
            Message::Refused { .. } => "refused",
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Roles that read the cell's data, so need its secret.
pub fn roles_need_secret(roles: &[Role]) -> bool {
    roles
        .iter()
        .any(|r| matches!(r, Role::Store | Role::AppHost))
}

impl Request {
    /// A request by `node`, signed.
    pub fn new(node: &Keypair, name: String, addresses: Vec<String>, roles: Vec<Role>) -> Request {
        let mut request = Request {
            node: node.public(),
            name,
            addresses,
            roles,
            signature: [0; 64],
        };
        request.signature = node.sign(&request.signed_bytes());
        request
    }

    /// What the signature covers: a domain string, the key, then each field length-prefixed.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = b"exocore join v1 request".to_vec();
        out.extend_from_slice(&self.node.to_bytes());
        put_bytes(&mut out, self.name.as_bytes());
        out.extend_from_slice(&(self.addresses.len() as u32).to_be_bytes());
        for address in &self.addresses {
            put_bytes(&mut out, address.as_bytes());
        }
        out.extend_from_slice(&(self.roles.len() as u32).to_be_bytes());
        for role in &self.roles {
            put_bytes(&mut out, role.name().as_bytes());
        }
        out
    }

    /// Checks the signature, the name, the addresses and the roles.
    pub fn verify(&self) -> Result<(), String> {
        if !self.node.verify(&self.signed_bytes(), &self.signature) {
            return Err(format!(
                "the request's signature is not by node {}",
                self.node
            ));
        }
        crate::config::names::check(&self.name)?;
        for address in &self.addresses {
            crate::config::names::check_address(address)?;
        }
        let mut roles = self.roles.clone();
        roles.sort();
        roles.dedup();
        if roles.len() != self.roles.len() {
            return Err("the request lists a role twice".into());
        }
        Ok(())
    }
}

impl Answer {
    /// The answer for `node` with `cell` (which must list it), signed by `cell_key`, with the
    /// cell secret sealed to `node` if `with_secret`. `ephemeral` is a fresh random secret.
    pub fn new(
        cell_key: &Keypair,
        node: &PublicKey,
        cell: &CellConfig,
        with_secret: bool,
        ephemeral: [u8; 32],
    ) -> Answer {
        let secret = with_secret.then(|| seal_secret(cell_key, node, ephemeral));
        let mut answer = Answer {
            node: *node,
            cell: cell.to_toml(),
            secret,
            signature: [0; 64],
        };
        answer.signature = cell_key.sign(&answer.signed_bytes());
        answer
    }

    /// What the signature covers: a domain string, the node, the cell text, the sealed secret.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = b"exocore join v1 answer".to_vec();
        out.extend_from_slice(&self.node.to_bytes());
        put_bytes(&mut out, self.cell.as_bytes());
        match &self.secret {
            None => out.push(0),
            Some(secret) => {
                out.push(1);
                out.extend_from_slice(&secret.ephemeral);
                out.extend_from_slice(&secret.sealed);
            }
        }
        out
    }

    /// Checks that the answer is for `node` and signed by the cell it describes; returns the
    /// cell and, if sent, its secret key (opened with `node`'s key).
    pub fn open(&self, node: &Keypair) -> Result<(CellConfig, Option<Keypair>), String> {
        if self.node != node.public() {
            return Err(format!(
                "it is addressed to node {}, not to this node ({})",
                self.node,
                node.public()
            ));
        }
        let cell: CellConfig =
            toml::from_str(&self.cell).map_err(|e| format!("its cell.toml: {}", e.message()))?;
        if !cell.id.verify(&self.signed_bytes(), &self.signature) {
            return Err(format!("it is not signed by the key of cell {}", cell.id));
        }
        cell.validate()?;
        if cell.node(&self.node).is_none() {
            return Err("the cell it holds does not list this node".into());
        }
        let keypair = match &self.secret {
            None => None,
            Some(secret) => Some(
                open_secret(secret, node, &cell.id)
                    .ok_or("its sealed cell secret does not open with this node's key")?,
            ),
        };
        Ok((cell, keypair))
    }
}

/// X25519 of `secret` with `point`; `None` for a low-order point (all-zero result).
fn x25519(point: [u8; 32], secret: [u8; 32]) -> Option<[u8; 32]> {
    let shared = MontgomeryPoint(point).mul_clamped(secret).to_bytes();
    (shared != [0; 32]).then_some(shared)
}

fn secret_cipher(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> ChaCha20Poly1305 {
    let mut material = shared.to_vec();
    material.extend_from_slice(ephemeral);
    material.extend_from_slice(recipient);
    let key = blake3::derive_key("exocore join v1 cell secret", &material);
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// Seals the cell's seed to `recipient`'s X25519 key (derived from its ed25519 key, as for
/// Noise), bound to the cell's id.
fn seal_secret(cell_key: &Keypair, recipient: &PublicKey, ephemeral: [u8; 32]) -> SealedSecret {
    let ephemeral_public = MontgomeryPoint::mul_base_clamped(ephemeral).to_bytes();
    let recipient_x = recipient.noise_public();
    // A node key is a valid ed25519 key, so its X25519 form is not of low order.
    let shared = x25519(recipient_x, ephemeral).unwrap_or([0; 32]);
    let cipher = secret_cipher(&shared, &ephemeral_public, &recipient_x);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&[0; 12]),
            Payload {
                msg: &cell_key.seed(),
                aad: &cell_key.public().to_bytes(),
            },
        )
        .unwrap_or_default();
    let mut out = [0u8; 48];
    if sealed.len() == 48 {
        out.copy_from_slice(&sealed);
    }
    SealedSecret {
        ephemeral: ephemeral_public,
        sealed: out,
    }
}

fn open_secret(secret: &SealedSecret, node: &Keypair, cell: &PublicKey) -> Option<Keypair> {
    let shared = x25519(secret.ephemeral, node.noise_secret())?;
    let cipher = secret_cipher(&shared, &secret.ephemeral, &node.public().noise_public());
    let seed = cipher
        .decrypt(
            Nonce::from_slice(&[0; 12]),
            Payload {
                msg: &secret.sealed,
                aad: &cell.to_bytes(),
            },
        )
        .ok()?;
    let seed: [u8; 32] = seed.try_into().ok()?;
    let keypair = Keypair::from_seed(&seed);
    (keypair.public() == *cell).then_some(keypair)
}

macro_rules! hex_array {
    ($name:ident, $len:expr) => {
        mod $name {
            use serde::{Deserialize, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(
                bytes: &[u8; $len],
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&super::hex(bytes))
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<[u8; $len], D::Error> {
                let text = String::deserialize(deserializer)?;
                super::unhex(&text)
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "expected {} bytes in lowercase hex",
                            $len
                        ))
                    })
            }
        }
    };
}
hex_array!(hex32, 32);
hex_array!(hex48, 48);
hex_array!(hex64, 64);

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lowercase hex; `None` if it is not.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2)?;
            if pair.bytes().any(|b| b.is_ascii_uppercase()) {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CellNode;

    fn cell_with(node: &PublicKey, cell: &Keypair) -> CellConfig {
        CellConfig {
            id: cell.public(),
            name: "home".into(),
            nodes: vec![CellNode {
                id: *node,
                name: "n2".into(),
                addresses: vec![],
                roles: vec![Role::Store],
            }],
            version: 0,
            initial: None,
        }
    }

    #[test]
    fn request_round_trips_and_its_signature_covers_every_field() {
        let node = Keypair::generate();
        let request = Request::new(
            &node,
            "n2".into(),
            vec!["127.0.0.1:9".into()],
            vec![Role::Chain, Role::Store],
        );
        request.verify().unwrap();
        let message = Message::Request(request.clone());
        assert_eq!(Message::from_json(&message.to_json()).unwrap(), message);
        let mut changed = request.clone();
        changed.roles.push(Role::AppHost);
        assert!(changed.verify().unwrap_err().contains("signature"));
        let mut changed = request;
        changed.name = "n3".into();
        assert!(changed.verify().is_err());
    }

    #[test]
    fn answer_opens_only_for_its_node_and_only_if_signed_by_the_cell() {
        let (node, other, cell_key) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        let cell = cell_with(&node.public(), &cell_key);
        let answer = Answer::new(&cell_key, &node.public(), &cell, true, [9; 32]);
        let (opened, secret) = answer.open(&node).unwrap();
        assert_eq!(opened, cell);
        assert_eq!(secret.unwrap().public(), cell_key.public());
        assert!(answer.open(&other).unwrap_err().contains("addressed"));

        // Another key cannot make an answer for this cell.
        let forged = Answer::new(&other, &node.public(), &cell, false, [9; 32]);
        assert!(forged.open(&node).unwrap_err().contains("not signed"));
        // The secret cannot be moved to another answer for another node.
        let mut moved = Answer::new(&cell_key, &other.public(), &cell, false, [1; 32]);
        moved.secret = answer.secret.clone();
        moved.signature = [0; 64];
        assert!(moved.open(&other).is_err());
        // A node's own answer with a tampered secret fails.
        let mut tampered = answer.clone();
        if let Some(s) = tampered.secret.as_mut() {
            s.sealed[0] ^= 1;
        }
        assert!(tampered.open(&node).is_err());
    }

    #[test]
    fn unknown_fields_and_bad_hex_are_refused() {
        assert!(Message::from_json(br#"{"type":"ready","extra":1}"#).is_err());
        let text = br#"{"type":"refused","reason":"x","extra":1}"#;
        assert!(Message::from_json(text).is_err());
        assert!(unhex("0G").is_none());
        assert!(unhex("AB").is_none());
        assert_eq!(unhex("ab01").unwrap(), vec![0xab, 1]);
    }
}
