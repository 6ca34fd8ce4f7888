//! A node's files: its settings, its keys, and the cells it belongs to.
//!
//! Every file is TOML parsed strictly (an unknown key is an error naming the file, line and
//! key), every write is atomic, and secrets live in their own files of mode 0600.

pub mod atomic;
mod cell;
mod dir;
mod error;
pub(crate) mod key_serde;
pub mod names;
mod node;
pub mod toml_file;

pub use cell::{CellConfig, CellNode, Role};
pub use dir::{Cell, Node, NodeDir};
pub use error::Error;
pub use node::{
    ChainSettings, NodeConfig, DEFAULT_CHAIN_MAP_SIZE_MB, DEFAULT_DISCOVERY_PORT, DEFAULT_PORT,
};
