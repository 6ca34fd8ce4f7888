//! `exo cell ping`: can this node reach the other nodes of its cell, and how fast?
//!
//! Asks the local daemon, which pings every peer over its own links (so the answer is what
//! the daemon really has). Without a running daemon, dials each peer directly instead.

use std::time::Duration;

use exocore_protocol::admin::{AdminRequest, AdminResponse, PeerPing};
use exocore_protocol::client::Client;
use exocore_protocol::error::Error as ProtocolError;
use exocore_protocol::identity::PublicKey;

use super::{table, CliError};
use crate::config::{Cell, Node};

/// Pings the other nodes of `cell`; prints a table, fails if any is unreachable.
pub fn run(node: &Node, cell: &Cell, json: bool) -> Result<(), CliError> {
    let peers: Vec<_> = cell
        .config
        .nodes
        .iter()
        .filter(|n| n.id != node.config.id && !n.roles.is_empty())
        .collect();
    if peers.is_empty() {
        println!("cell `{}` has no other node to ping", cell.config.name);
        return Ok(());
    }
    let results = smol::block_on(async {
        let local = super::local::address(node.config.listen);
        match ask_daemon(node, cell).await {
            Ok(results) => Ok(results),
            Err(ProtocolError::Connect(err)) => {
                eprintln!(
                    "note: no daemon answers on {local} ({err}); dialing the other nodes directly"
                );
                let mut results = Vec::new();
                for peer in &peers {
                    results.push(dial_directly(node, cell, &peer.id, &peer.addresses).await);
                }
                Ok(results)
            }
            Err(err) => Err(CliError::Failed(format!(
                "the local daemon at {local} failed: {err}"
            ))),
        }
    })?;

    let name_of = |key: &[u8; 32]| {
        cell.config
            .nodes
            .iter()
            .find(|n| n.id.to_bytes() == *key)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| "?".into())
    };
    let id_of = |key: &[u8; 32]| {
        PublicKey::from_bytes(key)
            .map(|k| k.to_string())
            .unwrap_or_default()
    };
    let failed = results.iter().filter(|r| r.rtt_us.is_none()).count();
    if json {
        let list: Vec<_> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": name_of(&r.node),
                    "id": id_of(&r.node),
                    "reachable": r.rtt_us.is_some(),
                    "rtt_ms": r.rtt_us.map(|us| us as f64 / 1000.0),
                    "error": if r.error.is_empty() { None } else { Some(&r.error) },
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                let (status, rtt) = match r.rtt_us {
                    Some(us) => ("ok".to_string(), format!("{:.2} ms", us as f64 / 1000.0)),
                    None => (format!("unreachable: {}", r.error), "-".to_string()),
                };
                vec![name_of(&r.node), id_of(&r.node), rtt, status]
            })
            .collect();
        table::print(&["NAME", "ID", "RTT", "STATUS"], &rows);
    }
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "{failed} of {} node(s) unreachable",
            results.len()
        )));
    }
    Ok(())
}

async fn ask_daemon(node: &Node, cell: &Cell) -> Result<Vec<PeerPing>, ProtocolError> {
    match super::local::admin(node, cell, &AdminRequest::PingPeers).await? {
        AdminResponse::PingPeers { peers } => Ok(peers),
        other => Err(ProtocolError::UnexpectedMessage(format!("{other:?}"))),
    }
}

async fn dial_directly(
    node: &Node,
    cell: &Cell,
    peer: &PublicKey,
    addresses: &[String],
) -> PeerPing {
    let mut error = "no address to dial".to_string();
    for address in addresses {
        let attempt = async {
            let mut client =
                Client::connect(address.as_str(), &node.keypair, cell.config.id, &[*peer]).await?;
            let rtt = client.ping().await?;
            let _ = client.close("done").await;
            Ok::<Duration, ProtocolError>(rtt)
        };
        match attempt.await {
            Ok(rtt) => {
                return PeerPing {
                    node: peer.to_bytes(),
                    rtt_us: Some(rtt.as_micros() as u64),
                    error: String::new(),
                }
            }
            Err(err) => error = format!("{address}: {err}"),
        }
    }
    PeerPing {
        node: peer.to_bytes(),
        rtt_us: None,
        error,
    }
}
