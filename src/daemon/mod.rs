//! The daemon: loads the node and its cells, serves them on the network, runs the chain of
//! every cell where the node has the chain role, and stops cleanly on SIGINT or SIGTERM.

mod app_schemas;
mod apps;
mod chain;
mod failpoint;
mod members;
mod services;
mod status;
mod store;
mod supervisor;
mod watcher;

use std::fmt;
use std::sync::Arc;

use futures_lite::StreamExt;
use tracing::{error, info};

use crate::config::{self, Cell, Node, NodeDir};
use crate::net::{CellNet, Network};
use crate::store::Schemas;

use services::NodeServices;
use store::StoreThread;

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
    members::cell_net(&node.config.id, &cell.config)
}

/// Opens the entity index of a cell where the node has the store role, if it can serve it:
/// it needs the chain role (the index is fed by the local chain) and the cell's secret (to
/// read entries). Otherwise logs why and returns `None`. `schemas`: the built-in types and
/// those of the cell's installed apps.
fn start_store(
    node: &Node,
    cell: &Cell,
    has_chain: bool,
    schemas: Schemas,
) -> Option<(StoreThread, store::StoreFeed)> {
    let name = &cell.config.name;
    if !has_chain {
        error!(
            "cell `{name}`: this node has the store role but not the chain role; a store \
             without a local chain is not supported yet: the store is not started"
        );
        return None;
    }
    if cell.keypair.is_none() {
        error!(
            "cell `{name}`: this node has the store role but does not hold the cell's secret \
             (cell.key), so it cannot read entries: the store is not started"
        );
        return None;
    }
    match StoreThread::start(cell, node.config.store.retention_us(), schemas) {
        Ok(started) => Some(started),
        Err(message) => {
            error!("{message}");
            None
        }
    }
}

/// Runs the node in `dir` until SIGINT or SIGTERM.
pub fn run(dir: &NodeDir) -> Result<(), Error> {
    let node = dir.load_node()?;
    let mut cells = dir.cells()?;
    // A cell that no longer lists this node removed it (this node learned it from the chain).
    cells.retain(|cell| {
        let listed = cell.config.node(&node.config.id).is_some();
        if !listed {
            error!(
                "cell `{}`: this node is not a member (it was removed from the cell): not serving it",
                cell.config.name
            );
        }
        listed
    });
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
    let services = Arc::new(NodeServices::new());
    let network = Network::new(node.keypair.clone(), cell_nets, services.clone());
    services.set_network(network.clone());
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
        // The cells' services start once the port is ours: a second daemon on the same node
        // fails above, before touching them. One supervisor per cell: a failing cell does not
        // take the others down.
        let (stop_cells, stopping) = async_channel::bounded::<()>(1);
        let node = Arc::new(node);
        let supervisors: Vec<_> = cells
            .into_iter()
            .map(|cell| {
                smol::spawn(supervisor::supervise(
                    dir.clone(),
                    node.clone(),
                    cell,
                    network.clone(),
                    services.clone(),
                    stopping.clone(),
                ))
            })
            .collect();
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
        stop_cells.close();
        for supervisor in supervisors {
            supervisor.await;
        }
        info!("stopped");
        Ok(())
    })
}
