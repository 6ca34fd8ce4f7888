//! `node.toml`: who this node is and where it listens. Holds no secret: the node's key is in
//! `node.key` (mode 0600), so this file can be printed, shared and edited freely.

use std::net::SocketAddr;

use exocore_protocol::identity::PublicKey;
use serde::{Deserialize, Serialize};

use super::names;

/// Port a node listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 3330;

/// The settings of this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's public key, its identity everywhere (derived from `node.key`).
    #[serde(with = "super::key_serde")]
    pub id: PublicKey,
    /// A human name for tables and logs.
    pub name: String,
    /// Socket address the daemon listens on.
    pub listen: SocketAddr,
    /// Addresses at which other nodes reach this one (`host:port`); empty if it only dials.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The rendezvous server (`host:port`) that `exo cell join` and `exo cell node add --pin`
    /// use unless given `--discovery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<String>,
    /// Chain storage settings.
    #[serde(default, skip_serializing_if = "ChainSettings::is_default")]
    pub chain: ChainSettings,
    /// Entity store settings.
    #[serde(default, skip_serializing_if = "StoreSettings::is_default")]
    pub store: StoreSettings,
}

/// Port `exo discovery daemon` listens on unless told otherwise.
pub const DEFAULT_DISCOVERY_PORT: u16 = 3340;

/// Default initial LMDB map of a cell's chain, in MiB: small enough for a 32-bit board's
/// address space with several cells; the map grows on demand.
pub const DEFAULT_CHAIN_MAP_SIZE_MB: u32 = 64;

/// `[chain]` in node.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSettings {
    /// Initial size of each cell's chain map, in MiB (it grows when full).
    #[serde(default = "default_map_size_mb")]
    pub map_size_mb: u32,
}

fn default_map_size_mb() -> u32 {
    DEFAULT_CHAIN_MAP_SIZE_MB
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            map_size_mb: DEFAULT_CHAIN_MAP_SIZE_MB,
        }
    }
}

impl ChainSettings {
    fn is_default(&self) -> bool {
        *self == ChainSettings::default()
    }

    /// The initial map size in bytes.
    pub fn map_size_bytes(&self) -> usize {
        (self.map_size_mb as usize).saturating_mul(1 << 20)
    }
}

/// Default retention of the entity store's old versions and deletions, in days.
pub const DEFAULT_STORE_RETENTION_DAYS: f64 = 30.0;

/// `[store]` in node.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// How long replaced trait versions, deleted traits and deleted entities are kept in the
    /// entity index, in days (fractions allowed), counted from the operation that replaced
    /// or deleted them (`spec/store.md` section 10). The chain keeps every operation anyway.
    #[serde(default = "default_retention_days")]
    pub retention_days: f64,
}

fn default_retention_days() -> f64 {
    DEFAULT_STORE_RETENTION_DAYS
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            retention_days: DEFAULT_STORE_RETENTION_DAYS,
        }
    }
}

impl StoreSettings {
    fn is_default(&self) -> bool {
        *self == StoreSettings::default()
    }

    /// The retention period in microseconds (saturating for absurdly long ones).
    pub fn retention_us(&self) -> u64 {
        // `as` saturates: 1e300 days is "forever", not an overflow.
        (self.retention_days * 86_400_000_000.0) as u64
    }

    fn validate(&self) -> Result<(), String> {
        if self.retention_days.is_finite() && self.retention_days >= 0.0 {
            Ok(())
        } else {
            Err(format!(
                "store.retention_days must be a number of days, 0 or more (not {})",
                self.retention_days
            ))
        }
    }
}

impl NodeConfig {
    /// Checks what the types alone do not: the name and the addresses.
    pub fn validate(&self) -> Result<(), String> {
        names::check(&self.name)?;
        self.store.validate()?;
        self.addresses
            .iter()
            .chain(&self.discovery)
            .try_for_each(|a| names::check_address(a))
    }

    /// The file's text: a short guide for whoever opens it, then the settings.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# Exocore node configuration. Change it with `exo config set KEY VALUE` or\n\
             # `exo config edit`; `exo config validate` checks it. Keys:\n\
             #   id         this node's public key (from node.key; do not edit)\n\
             #   name       a human name for tables and logs\n\
             #   listen     address the daemon listens on, e.g. \"0.0.0.0:{DEFAULT_PORT}\"\n\
             #   addresses  where other nodes reach this one, e.g. [\"192.168.1.20:{DEFAULT_PORT}\"]\n\
             #   discovery  rendezvous server for joining by PIN, e.g. \"pi.lan:{DEFAULT_DISCOVERY_PORT}\"\n\
             #   chain.map_size_mb  initial chain map per cell, MiB (default {DEFAULT_CHAIN_MAP_SIZE_MB}; grows on demand)\n\
             #   store.retention_days  days old versions and deletions stay in the entity index (default {DEFAULT_STORE_RETENTION_DAYS})\n\
             {body}"
        )
    }
}
