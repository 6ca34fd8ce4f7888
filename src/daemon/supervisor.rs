//! One cell's services kept running: the chain and store services of a cell start together
//! (the store is fed by the chain), and if either stops unexpectedly (its thread panicked or
//! returned), both are stopped and started again after a capped exponential backoff, which
//! resets once they have run healthily for [`HEALTHY_PERIOD`]. The daemon and its other
//! cells keep running meanwhile; requests for the cell get "not served" until it is back.
//!
//! Architecture invariant: the supervisor knows services only as "running or not"; why one
//! failed is in the log, written where it failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use tracing::{error, info};

use super::apps::AppsService;
use super::chain::ChainService;
use super::services::NodeServices;
use super::store::StoreService;
use crate::config::{Cell, Node, Role};
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
    fn start(node: &Node, cell: &Cell, network: &Network) -> CellRun {
        let roles = cell.roles_of(&node.config.id);
        let store = if roles.contains(&Role::Store) {
            super::start_store(cell, roles.contains(&Role::Chain))
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
        match ChainService::start(node, cell, network.clone(), feed) {
            Ok(chain) => {
                let chain = Arc::new(chain);
                let store = thread.map(|t| Arc::new(StoreService::new(t, chain.clone())));
                let host_store = store.clone().filter(|_| roles.contains(&Role::AppHost));
                let apps = AppsService::start(
                    &cell.config.name,
                    node.config.id,
                    chain.clone(),
                    host_store,
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

/// Runs `cell`'s services until `stopping` closes, restarting them when one fails.
pub async fn supervise(
    node: Arc<Node>,
    cell: Cell,
    network: Network,
    services: Arc<NodeServices>,
    stopping: async_channel::Receiver<()>,
) {
    let name = cell.config.name.clone();
    let mut backoff = Backoff::new();
    loop {
        let run = CellRun::start(&node, &cell, &network);
        services.install(cell.config.id, run.chain.clone(), run.store.clone());
        services.install_apps(cell.config.id, run.apps.clone());
        let started = Instant::now();
        let failed = loop {
            if let Some(which) = run.failed() {
                break Some(which);
            }
            let stop = future::or(async { stopping.recv().await.is_err() }, async {
                Timer::after(CHECK_INTERVAL).await;
                false
            })
            .await;
            if stop {
                break None;
            }
        };
        services.install(cell.config.id, None, None);
        services.install_apps(cell.config.id, None);
        let run_stopping = smol::unblock(move || run.stop());
        run_stopping.await;
        let Some(which) = failed else { return };
        if started.elapsed() >= HEALTHY_PERIOD {
            backoff.reset();
        }
        let delay = backoff.next_delay(fastrand::u64(..));
        error!(
            "cell `{name}`: the {which} service stopped unexpectedly; restarting the cell's \
             services in {:.1} s",
            delay.as_secs_f64()
        );
        let stop = future::or(async { stopping.recv().await.is_err() }, async {
            Timer::after(delay).await;
            false
        })
        .await;
        if stop {
            return;
        }
        info!("cell `{name}`: restarting its services");
    }
}
