//! The daemon: loads the node and its cells, serves them on the network, runs the chain of
//! every cell where the node has the chain role, and stops cleanly on SIGINT or SIGTERM.

mod chain;
mod services;

use std::fmt;
use std::sync::Arc;

use futures_lite::StreamExt;
use tracing::{error, info};

use crate::config::Role;
use crate::config::{self, Cell, Node, NodeDir};
use crate::net::{CellNet, Network, PeerNode};

use chain::ChainService;
use services::NodeServices;

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
    let services = Arc::new(NodeServices::default());
    let network = Network::new(node.keypair.clone(), cell_nets, services.clone());
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
        // The chains start once the port is ours: a second daemon on the same node fails
        // above, before touching them.
        let mut chains = std::collections::HashMap::new();
        for cell in &cells {
            if cell.roles_of(&node.config.id).contains(&Role::Chain) {
                // One cell's broken or missing chain must not take the others down.
                match ChainService::start(&node, cell, network.clone()) {
                    Ok(service) => {
                        chains.insert(cell.config.id, Arc::new(service));
                    }
                    Err(message) => error!("{message}"),
                }
            }
        }
        let chain_services: Vec<Arc<ChainService>> = chains.values().cloned().collect();
        services.set_chains(chains);
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
        for chain in &chain_services {
            chain.stop();
        }
        info!("stopped");
        Ok(())
    })
}
