//! Public keys in config files, in their text form (`pk_...`, see `spec/identity.md`).

use exocore_protocol::identity::PublicKey;
use serde::{Deserialize, Deserializer, Serializer};

/// Writes the key's text form.
pub fn serialize<S: Serializer>(key: &PublicKey, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(key)
}

/// Reads a key's text form; a bad key is an error naming what is wrong with it.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}
