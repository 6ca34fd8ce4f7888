//! `exo status`: every cell of the node at a glance, from its running daemon (roles, chain,
//! links to the other nodes, index, apps), or from the files when no daemon runs.

use argh::FromArgs;
use exocore_protocol::admin::{AdminRequest, AdminResponse, CellStatus, ChainStatus};
use exocore_protocol::error::Error as ProtocolError;
use exocore_protocol::identity::PublicKey;
use serde_json::json;

use super::{local, table, CliError};
use crate::chain::{hex, Membership, MembershipDocument};
use crate::config::{Cell, Node, NodeDir};

/// Show each cell's state on this node: roles, chain height and size, pending operations,
/// peers with their last-seen time and height, index and apps.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
pub struct StatusCmd {
    /// only this cell (name or id)
    #[argh(option)]
    cell: Option<String>,
    /// print JSON: an array with one object per cell
    #[argh(switch)]
    json: bool,
}

/// One cell's state, from the daemon or, without one, from the files.
struct Report {
    cell: Cell,
    /// `None` when no daemon answers: then only the files speak.
    live: Option<CellStatus>,
    /// The chain on disk, when no daemon answers.
    offline_chain: Option<ChainStatus>,
    /// Why the daemon did not answer.
    daemon_error: Option<String>,
}

impl StatusCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        let cells = match &self.cell {
            Some(selection) => vec![dir.select_cell(Some(selection))?],
            None => dir.cells()?,
        };
        let reports: Vec<Report> = cells.into_iter().map(|cell| report(&node, cell)).collect();
        if self.json {
            let list: Vec<serde_json::Value> = reports.iter().map(|r| to_json(&node, r)).collect();
            println!("{}", serde_json::Value::Array(list));
        } else if reports.is_empty() {
            println!(
                "no cells yet: create one with `exo cell init` or join one with `exo cell join`"
            );
        } else {
            for (i, report) in reports.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_report(&node, report);
            }
        }
        Ok(())
    }
}

fn report(node: &Node, cell: Cell) -> Report {
    let answer = smol::block_on(local::admin(node, &cell, &AdminRequest::Status));
    match answer {
        Ok(AdminResponse::Status(status)) => Report {
            cell,
            live: Some(status),
            offline_chain: None,
            daemon_error: None,
        },
        Ok(_) => Report {
            offline_chain: offline_chain(node, &cell),
            cell,
            live: None,
            daemon_error: Some("the daemon answered something else".into()),
        },
        Err(err) => {
            let reason = match err {
                ProtocolError::Connect(_) => "not running".to_string(),
                err => local::failure(local::address(node.config.listen), err).to_string(),
            };
            Report {
                offline_chain: offline_chain(node, &cell),
                cell,
                live: None,
                daemon_error: Some(reason),
            }
        }
    }
}

/// The chain as its files show it, on a node with the chain role.
fn offline_chain(node: &Node, cell: &Cell) -> Option<ChainStatus> {
    if !cell
        .roles_of(&node.config.id)
        .contains(&crate::config::Role::Chain)
    {
        return None;
    }
    // cell.toml follows every committed change: it is the membership in force.
    let membership = Membership::from_document(&MembershipDocument::from_config(
        &cell.config,
        cell.config.version,
    ));
    let mut status = ChainStatus::without_blocks(
        "stopped (no daemon)",
        membership.chain_nodes().len() as u32,
        membership.quorum() as u32,
    );
    let store = match super::chain::open(node, cell) {
        Ok(store) => store,
        Err(err) => {
            status.state = format!("unreadable: {err}");
            return Some(status);
        }
    };
    if let Ok(Some(block)) = store.last_block() {
        status.height = block.height();
        status.last_block = block.hash();
        status.last_block_time_us = block.header.time_us;
    } else {
        status.state = "no chain yet".into();
    }
    status.pending_operations = store.pending_count().unwrap_or(0) as u64;
    status.size_bytes = store.disk_size_bytes().unwrap_or(0);
    Some(status)
}

fn name_of(cell: &Cell, key: &[u8; 32]) -> String {
    PublicKey::from_bytes(key)
        .ok()
        .and_then(|k| cell.config.node(&k).map(|n| n.name.clone()))
        .unwrap_or_else(|| "?".into())
}

fn chain_json(chain: &ChainStatus) -> serde_json::Value {
    json!({
        "state": chain.state,
        "height": chain.height,
        "last_block": hex(&chain.last_block),
        "last_block_time_us": chain.last_block_time_us,
        "pending_operations": chain.pending_operations,
        "size_bytes": chain.size_bytes,
        "chain_nodes": chain.chain_nodes,
        "quorum": chain.quorum,
    })
}

fn to_json(node: &Node, report: &Report) -> serde_json::Value {
    let cell = &report.cell;
    let mut value = json!({
        "cell": cell.config.name,
        "id": cell.config.id.to_string(),
        "roles": cell.roles_of(&node.config.id).iter().map(|r| r.name()).collect::<Vec<_>>(),
        "daemon": if report.live.is_some() { "running".to_string() } else {
            report.daemon_error.clone().unwrap_or_default()
        },
    });
    let Some(live) = &report.live else {
        value["chain"] = report.offline_chain.as_ref().map(chain_json).into();
        return value;
    };
    value["uptime_s"] = json!(live.uptime_us / 1_000_000);
    value["chain"] = live.chain.as_ref().map(chain_json).into();
    value["peers"] = live
        .peers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "id": PublicKey::from_bytes(&p.node).map(|k| k.to_string()).unwrap_or_default(),
                "connected": p.connected,
                "last_seen_us": p.last_seen_us,
                "height": p.height,
                "error": p.error,
            })
        })
        .collect::<Vec<_>>()
        .into();
    value["store"] = live
        .store
        .as_ref()
        .map(|s| json!({"state": s.state, "entities": s.entities}))
        .into();
    value["apps"] = live
        .apps
        .iter()
        .map(|a| json!({"name": a.name, "state": a.state}))
        .collect::<Vec<_>>()
        .into();
    value
}

/// "3 s ago", "5 min ago", from a time in µs since the epoch.
fn ago(time_us: u64) -> String {
    let now = crate::clock::now_us();
    let seconds = now.saturating_sub(time_us) / 1_000_000;
    match seconds {
        0 => "just now".into(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn print_chain(chain: &ChainStatus) {
    if chain.height == 0 && chain.last_block == [0; 32] {
        println!("  chain   {}", chain.state);
        return;
    }
    println!(
        "  chain   {}: height {}, last block {}.. {}, {} pending, {:.1} MiB, quorum {} of {}",
        chain.state,
        chain.height,
        &hex(&chain.last_block)[..12],
        ago(chain.last_block_time_us),
        chain.pending_operations,
        chain.size_bytes as f64 / (1 << 20) as f64,
        chain.quorum,
        chain.chain_nodes
    );
}

fn print_report(node: &Node, report: &Report) {
    let cell = &report.cell;
    let roles: Vec<&str> = cell
        .roles_of(&node.config.id)
        .iter()
        .map(|r| r.name())
        .collect();
    let roles = if roles.is_empty() {
        "none (client)".to_string()
    } else {
        roles.join(", ")
    };
    println!("cell `{}` ({})", cell.config.name, cell.config.id);
    println!("  roles   {roles}");
    let Some(live) = &report.live else {
        println!(
            "  daemon  {}",
            report.daemon_error.as_deref().unwrap_or("?")
        );
        if let Some(chain) = &report.offline_chain {
            print_chain(chain);
        }
        return;
    };
    println!("  daemon  running for {} s", live.uptime_us / 1_000_000);
    if let Some(chain) = &live.chain {
        print_chain(chain);
    }
    if let Some(store) = &live.store {
        println!("  store   {}, {} entities", store.state, store.entities);
    }
    if live.apps.is_empty() {
        println!("  apps    none");
    } else {
        let apps: Vec<String> = live
            .apps
            .iter()
            .map(|a| format!("{} ({})", a.name, a.state))
            .collect();
        println!("  apps    {}", apps.join(", "));
    }
    if live.peers.is_empty() {
        println!("  peers   none: this node is the cell's only node with a role");
        return;
    }
    println!("  peers");
    let rows: Vec<Vec<String>> = live
        .peers
        .iter()
        .map(|p| {
            vec![
                format!("    {}", name_of(cell, &p.node)),
                if p.connected { "up" } else { "down" }.to_string(),
                p.last_seen_us.map(ago).unwrap_or_else(|| "never".into()),
                p.height
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "-".into()),
                if p.error.is_empty() {
                    "-".into()
                } else {
                    p.error.clone()
                },
            ]
        })
        .collect();
    table::print(&["    NAME", "LINK", "LAST SEEN", "HEIGHT", "ERROR"], &rows);
}
