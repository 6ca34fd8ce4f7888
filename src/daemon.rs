//! The daemon: loads the node and its cells, runs their services, and stops cleanly on
//! SIGINT or SIGTERM.

use std::fmt;

use futures_lite::StreamExt;
use tracing::info;

use crate::config::{self, NodeDir};

/// Why the daemon could not run.
#[derive(Debug)]
pub enum Error {
    /// The node's files are missing or invalid.
    Config(config::Error),
    /// Signal handlers could not be installed.
    Signals(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(err) => write!(f, "{err}"),
            Error::Signals(err) => write!(f, "cannot install signal handlers: {err}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<config::Error> for Error {
    fn from(err: config::Error) -> Error {
        Error::Config(err)
    }
}

/// Runs the node in `dir` until SIGINT or SIGTERM.
pub fn run(dir: &NodeDir) -> Result<(), Error> {
    let node = dir.load_node()?;
    let cells = dir.cells()?;
    info!(
        "node `{}` ({}) starting with {} cell(s)",
        node.config.name,
        node.config.id.fingerprint(),
        cells.len()
    );
    for cell in &cells {
        let roles: Vec<&str> = cell
            .roles_of(&node.config.id)
            .iter()
            .map(|r| r.name())
            .collect();
        info!("cell `{}`: roles {}", cell.config.name, roles.join(", "));
    }
    smol::block_on(async {
        use async_signal::{Signal, Signals};
        let mut signals = Signals::new([Signal::Int, Signal::Term]).map_err(Error::Signals)?;
        match signals.next().await {
            Some(Ok(signal)) => info!("received {signal:?}, stopping"),
            Some(Err(err)) => return Err(Error::Signals(err)),
            None => {}
        }
        info!("stopped");
        Ok(())
    })
}
