//! `exo status` on the daemon's side: one cell's state gathered from its services (chain,
//! store, apps), the network's links and the cell's configuration.
//!
//! Architecture invariant: read-only. Asking for the status changes nothing and never waits
//! long on a busy service: an index that is rebuilding is reported `busy`.

use std::time::{Duration, Instant};

use exocore_protocol::admin::{CellStatus, PeerStatus, StoreStatus};
use exocore_protocol::identity::PublicKey;

use super::apps::AppsService;
use super::chain::ChainService;
use super::store::StoreService;
use crate::config::Role;
use crate::net::Network;

/// How long the index may take to count its entities before it is reported `busy`.
const STORE_ANSWER_TIMEOUT: Duration = Duration::from_millis(500);

/// What one cell's status is gathered from.
pub struct Sources<'a> {
    /// The cell.
    pub cell: PublicKey,
    /// This node's roles in it.
    pub roles: &'a [Role],
    /// When the daemon started.
    pub started: Instant,
    /// The network, for the links.
    pub network: Option<&'a Network>,
    /// The chain service, on a chain node whose chain started.
    pub chain: Option<&'a ChainService>,
    /// The store service, on a store node whose index opened.
    pub store: Option<&'a StoreService>,
    /// The apps service, on a chain node holding the cell's secret.
    pub apps: Option<&'a AppsService>,
}

/// Gathers the status of one cell.
pub async fn gather(sources: Sources<'_>) -> CellStatus {
    let report = match sources.chain {
        Some(chain) => chain.status().await,
        None => None,
    };
    let heights = report
        .as_ref()
        .map(|r| r.peer_heights.clone())
        .unwrap_or_default();
    let peers = sources
        .network
        .map(|n| n.peer_links(&sources.cell))
        .unwrap_or_default()
        .into_iter()
        .map(|link| PeerStatus {
            node: link.id.to_bytes(),
            name: link.name,
            connected: link.connected,
            last_seen_us: link.last_seen_us,
            height: heights
                .iter()
                .find(|(key, _)| *key == link.id)
                .map(|(_, h)| *h),
            error: if link.connected {
                String::new()
            } else {
                link.last_error
                    .unwrap_or_else(|| "not connected yet".into())
            },
        })
        .collect();
    let store = if sources.roles.contains(&Role::Store) {
        Some(match sources.store {
            Some(store) => store_status(store).await,
            None => StoreStatus {
                state: "not running (the daemon's log says why)".into(),
                entities: 0,
            },
        })
    } else {
        None
    };
    let chain = match (sources.roles.contains(&Role::Chain), report) {
        (true, Some(report)) => Some(report.status),
        (true, None) => Some(exocore_protocol::admin::ChainStatus::without_blocks(
            "not running (the daemon's log says why)",
            0,
            0,
        )),
        (false, _) => None,
    };
    CellStatus {
        roles: sources.roles.iter().map(|r| r.name().to_string()).collect(),
        uptime_us: sources.started.elapsed().as_micros() as u64,
        chain,
        peers,
        store,
        apps: sources.apps.map(AppsService::statuses).unwrap_or_default(),
    }
}

async fn store_status(store: &StoreService) -> StoreStatus {
    let count = futures_lite::future::or(async { Some(store.entity_count().await) }, async {
        async_io::Timer::after(STORE_ANSWER_TIMEOUT).await;
        None
    })
    .await;
    match count {
        Some(Ok(entities)) => StoreStatus {
            state: "ready".into(),
            entities,
        },
        Some(Err(err)) => StoreStatus {
            state: format!("failing: {}", err.message),
            entities: 0,
        },
        None => StoreStatus {
            state: "busy (catching up with the chain or rebuilding)".into(),
            entities: 0,
        },
    }
}
