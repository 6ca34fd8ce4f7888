//! One cell's services kept running: the chain and store services of a cell start together
//! (the store is fed by the chain), and if either stops unexpectedly (its thread panicked or
//! returned), both are stopped and started again after a capped exponential backoff, which
//! resets once they have run healthily for [`HEALTHY_PERIOD`]. The daemon and its other
//! cells keep running meanwhile; requests for the cell get "not served" until it is back.
//!
//! The cell's `cell.toml` decides what runs: when a committed membership change gives this
//! node other roles, the services restart with them (no daemon restart); when it removes
//! this node, the chain stops itself and the supervisor leaves the cell stopped. When the
//! installed apps bring other trait types than the cell's entity index opened with, the
//! services restart too, so the index reopens with them (`super::app_schemas`).
//!
//! Architecture invariant: the supervisor knows services only as "running or not"; why one
//! failed is in the log, written where it failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use tracing::{error, info};

use super::app_schemas;
use super::apps::{AppsService, IndexedSchemas};
use super::chain::ChainService;
use super::services::NodeServices;
use super::store::StoreService;
use crate::config::{Cell, Node, NodeDir, Role};
use crate::net::backoff::Backoff;
use crate::net::Network;

/// Services that ran this long without failing count as healthy: the next failure restarts
/// them after the shortest delay again.
pub const HEALTHY_PERIOD: Duration = Duration::from_secs(60);
/// How often the supervisor looks at its services' threads.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The services of one cell on this node, as started together.
struct CellRun {
    chain: Option<Arc<ChainService>>,
    store: Option<Arc<StoreService>>,
    apps: Option<Arc<AppsService>>,
}

impl CellRun {
    /// Starts what the node's roles in `cell` call for. A service that cannot start at all
    /// (no chain yet and no peer, no cell secret for a store) is logged and left out.
    fn start(dir: &NodeDir, node: &Node, cell: &Cell, network: &Network) -> CellRun {
        let roles = cell.roles_of(&node.config.id);
        let schemas = app_schemas::load(&cell.dir, &cell.config.name);
        let store = if roles.contains(&Role::Store) {
            super::start_store(node, cell, roles.contains(&Role::Chain), schemas.clone())
        } else {
            None
        };
        if !roles.contains(&Role::Chain) {
            return CellRun {
                chain: None,
                store: None,
                apps: None,
            };
        }
        let (thread, feed) = match store {
            Some((thread, feed)) => (Some(thread), Some(feed)),
            None => (None, None),
        };
        match ChainService::start(dir, node, cell, network.clone(), feed) {
            Ok(chain) => {
                let chain = Arc::new(chain);
                let store = thread.map(|t| Arc::new(StoreService::new(t, chain.clone())));
                let host_store = store.clone().filter(|_| roles.contains(&Role::AppHost));
                let indexed = store.as_ref().map(|_| IndexedSchemas {
                    cell_dir: cell.dir.clone(),
                    schemas,
                });
                let apps = AppsService::start(
                    &cell.config.name,
                    node.config.id,
                    chain.clone(),
                    host_store,
                    indexed,
                )
                .map_err(|message| error!("{message}"))
                .ok()
                .map(Arc::new);
                CellRun {
                    chain: Some(chain),
                    store,
                    apps,
                }
            }
            Err(message) => {
                error!("{message}");
                CellRun {
                    chain: None,
                    store: None,
                    apps: None,
                }
            }
        }
    }

    /// Which service stopped without being asked to, if any.
    fn failed(&self) -> Option<&'static str> {
        if self.chain.as_ref().is_some_and(|c| !c.is_running()) {
            return Some("chain");
        }
        if self.store.as_ref().is_some_and(|s| !s.is_running()) {
            return Some("store");
        }
        None
    }

    /// Whether the installed apps' trait types are no longer the index's.
    fn schemas_changed(&self) -> bool {
        self.apps.as_ref().is_some_and(|a| a.schemas_changed())
    }

    /// Stops the apps, the chain (so nothing more is fed), then the index.
    fn stop(&self) {
        if let Some(apps) = &self.apps {
            apps.stop();
        }
        if let Some(chain) = &self.chain {
            chain.stop();
        }
        if let Some(store) = &self.store {
            store.stop();
        }
    }
}

/// Why a cell's services stopped.
enum Outcome {
    /// The daemon is stopping.
    Stop,
    /// A service stopped without being asked to.
    Failed(&'static str),
    /// `cell.toml` gives this node other roles: the cell as it is now.
    Roles(Box<Cell>),
    /// The installed apps bring other trait types than the index opened with.
    Schemas,
}

/// The cell as its files are now, if they still load.
fn reload(dir: &NodeDir, cell: &Cell) -> Option<Cell> {
    let cells = dir.cells().ok()?;
    cells.into_iter().find(|c| c.config.id == cell.config.id)
}

/// Waits one check interval; true if the daemon is stopping.
async fn stopping_within(stopping: &async_channel::Receiver<()>, wait: Duration) -> bool {
    future::or(async { stopping.recv().await.is_err() }, async {
        Timer::after(wait).await;
        false
    })
    .await
}

/// How many check intervals between two reads of `cell.toml` for role changes.
const ROLE_CHECK_EVERY: u32 = 10;

/// Runs `cell`'s services until `stopping` closes, restarting them when one fails or when
/// this node's roles change.
pub async fn supervise(
    dir: NodeDir,
    node: Arc<Node>,
    mut cell: Cell,
    network: Network,
    services: Arc<NodeServices>,
    stopping: async_channel::Receiver<()>,
) {
    let name = cell.config.name.clone();
    let me = node.config.id;
    let mut backoff = Backoff::new();
    loop {
        let roles = cell.roles_of(&me);
        let run = CellRun::start(&dir, &node, &cell, &network);
        services.install(
            cell.config.id,
            roles.clone(),
            run.chain.clone(),
            run.store.clone(),
        );
        services.install_apps(cell.config.id, run.apps.clone());
        let started = Instant::now();
        let mut checks = 0u32;
        let outcome = loop {
            if let Some(which) = run.failed() {
                break Outcome::Failed(which);
            }
            if run.schemas_changed() {
                break Outcome::Schemas;
            }
            if stopping_within(&stopping, CHECK_INTERVAL).await {
                break Outcome::Stop;
            }
            checks = checks.wrapping_add(1);
            if checks.is_multiple_of(ROLE_CHECK_EVERY) {
                if let Some(fresh) = reload(&dir, &cell) {
                    if fresh.config.node(&me).is_some() && fresh.roles_of(&me) != roles {
                        break Outcome::Roles(Box::new(fresh));
                    }
                }
            }
        };
        services.install(cell.config.id, roles, None, None);
        services.install_apps(cell.config.id, None);
        smol::unblock(move || run.stop()).await;
        match outcome {
            Outcome::Stop => return,
            Outcome::Schemas => {
                info!(
                    "cell `{name}`: restarting its services with the installed apps' trait types"
                );
                backoff.reset();
            }
            Outcome::Roles(fresh) => {
                let roles: Vec<&str> = fresh.roles_of(&me).iter().map(|r| r.name()).collect();
                info!(
                    "cell `{name}`: this node's roles are now {}: restarting its services",
                    if roles.is_empty() {
                        "none".into()
                    } else {
                        roles.join(", ")
                    }
                );
                cell = *fresh;
                backoff.reset();
            }
            Outcome::Failed(which) => {
                // A chain that stopped because this node was removed did its job.
                if let Some(fresh) = reload(&dir, &cell) {
                    if fresh.config.node(&me).is_none() {
                        info!("cell `{name}`: this node is no longer a member: its services stay stopped");
                        return;
                    }
                    cell = fresh;
                }
                if started.elapsed() >= HEALTHY_PERIOD {
                    backoff.reset();
                }
                let delay = backoff.next_delay(fastrand::u64(..));
                error!(
                    "cell `{name}`: the {which} service stopped unexpectedly; restarting the \
                     cell's services in {:.1} s",
                    delay.as_secs_f64()
                );
                if stopping_within(&stopping, delay).await {
                    return;
                }
                info!("cell `{name}`: restarting its services");
            }
        }
    }
}
