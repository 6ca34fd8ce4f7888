//! The daemon's side of membership changes: what the network is told of a cell, the
//! `cell.toml` a committed change leads to, and the local requests waiting for their change
//! to commit.
//!
//! Architecture invariant: the rules (which change applies when, versions) are the chain's and
//! the engine's; this module turns their outcome into files, network updates and answers.

use exocore_protocol::identity::PublicKey;

use crate::chain::{OperationId, SignedMembership};
use crate::config::CellConfig;
use crate::engine::{Event, Output};
use crate::net::{CellNet, PeerNode};

/// What the network needs to know of a cell: its members, and the other nodes with a role.
pub fn cell_net(me: &PublicKey, config: &CellConfig) -> CellNet {
    let nodes = &config.nodes;
    CellNet {
        id: config.id,
        name: config.name.clone(),
        members: nodes.iter().map(|n| n.id).collect(),
        peers: nodes
            .iter()
            .filter(|n| n.id != *me && !n.roles.is_empty())
            .map(|n| PeerNode {
                id: n.id,
                name: n.name.clone(),
                addresses: n.addresses.clone(),
            })
            .collect(),
        dialable: config.node(me).is_some_and(|n| !n.addresses.is_empty()),
    }
}

/// The cell configuration after `change` committed: its node list and version, keeping the
/// list the cell started with in `initial` (verifying the chain from its genesis needs it).
pub fn config_after(old: &CellConfig, change: &SignedMembership) -> CellConfig {
    let initial = match (&old.initial, old.version) {
        (Some(initial), _) => Some(initial.clone()),
        (None, 0) => Some(old.nodes.clone()),
        (None, _) => None,
    };
    CellConfig {
        id: old.id,
        name: old.name.clone(),
        version: change.document.version,
        nodes: change.document.nodes.clone(),
        initial,
    }
}

/// Why a local membership request did not take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// The change was refused, or another change took effect instead; nothing of it applies.
    Refused(String),
    /// The change is written but not committed yet (no quorum reachable), or the chain
    /// service cannot take it now.
    NotCommitted(String),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::Refused(reason) | ChangeError::NotCommitted(reason) => f.write_str(reason),
        }
    }
}

/// What a local membership request learns: `(version, height)` once committed.
pub type ChangeResult = Result<(u64, u64), ChangeError>;

/// A local request waiting for its change to commit.
pub struct Waiter {
    /// The operation carrying the change.
    pub operation: OperationId,
    /// The change.
    pub change: SignedMembership,
    /// Where the answer goes: `(version, height)` or why not.
    pub reply: async_channel::Sender<ChangeResult>,
}

/// Answers the waiters that `output` settles: their change took effect, or their operation
/// was committed without effect (another change came first). Drops those whose caller left.
pub fn settle(waiters: &mut Vec<Waiter>, output: &Output) {
    waiters.retain(|waiter| {
        if waiter.reply.is_closed() {
            return false;
        }
        for event in &output.events {
            match event {
                Event::MembershipChanged { height, change, .. } if **change == waiter.change => {
                    let _ = waiter
                        .reply
                        .try_send(Ok((change.document.version, *height)));
                    return false;
                }
                Event::BlockCommitted { operations, .. }
                    if operations.contains(&waiter.operation) =>
                {
                    let applied = output.events.iter().any(|e| {
                        matches!(e, Event::MembershipChanged { change, .. } if **change == waiter.change)
                    });
                    if !applied {
                        let _ = waiter.reply.try_send(Err(ChangeError::Refused(format!(
                            "another membership change was committed before this one (version {} is no longer newer): run the command again",
                            waiter.change.document.version
                        ))));
                        return false;
                    }
                }
                _ => {}
            }
        }
        true
    });
}
