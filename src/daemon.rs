//! The daemon: loads the node and its cells, serves them on the network, and stops cleanly on
//! SIGINT or SIGTERM.

use std::fmt;
use std::sync::Arc;

use futures_lite::StreamExt;
use tracing::info;

use crate::config::{self, Cell, Node, NodeDir};
use crate::net::{CellNet, Network, NoServices, PeerNode};

/// Why the daemon could not run.
#[derive(Debug)]
pub enum Error {
    /// The node's files are missing or invalid.
    Config(config::Error),
    /// The listen address could not be bound.
    Listen(std::net::SocketAddr, std::io::Error),
    /// Signal handlers could not be installed.
    Signals(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(err) => write!(f, "{err}"),
            Error::Listen(address, err) => write!(
                f,
                "cannot listen on {address}: {err} (another daemon running? change it with `exo config set listen ADDR`)"
            ),
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

/// What the network needs to know of a cell: its members, and the other nodes with a role.
pub fn cell_net(node: &Node, cell: &Cell) -> CellNet {
    let me = node.config.id;
    let nodes = &cell.config.nodes;
    CellNet {
        id: cell.config.id,
        name: cell.config.name.clone(),
        members: nodes.iter().map(|n| n.id).collect(),
        peers: nodes
            .iter()
            .filter(|n| n.id != me && !n.roles.is_empty())
            .map(|n| PeerNode {
                id: n.id,
                name: n.name.clone(),
                addresses: n.addresses.clone(),
            })
            .collect(),
        dialable: cell
            .config
            .node(&me)
            .is_some_and(|n| !n.addresses.is_empty()),
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
    let cell_nets = cells.iter().map(|cell| cell_net(&node, cell)).collect();
    let network = Network::new(node.keypair.clone(), cell_nets, Arc::new(NoServices));
    let listen = node.config.listen;
    smol::block_on(async {
        use async_signal::{Signal, Signals};
        let mut signals = Signals::new([Signal::Int, Signal::Term]).map_err(Error::Signals)?;
        let listener = async_net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Listen(listen, e))?;
        info!(
            "listening on {}",
            listener
                .local_addr()
                .map_err(|e| Error::Listen(listen, e))?
        );
        let serving = smol::spawn({
            let network = network.clone();
            async move { network.serve(listener).await }
        });
        network.start_dialers();
        let signal = signals.next().await;
        match signal {
            Some(Ok(signal)) => info!("received {signal:?}, stopping"),
            Some(Err(err)) => return Err(Error::Signals(err)),
            None => {}
        }
        network.shutdown("shutting down").await;
        serving.await;
        info!("stopped");
        Ok(())
    })
}
