//! Changing a cell's membership from the command line: adding a node (after a join by PIN
//! or by file), removing one, changing its roles.
//!
//! Interface shared by the join commands and the membership commands. The body of
//! [`add_node`] is provisional: it records the node in this node's `cell.toml` only. It is
//! replaced by a membership change signed with the cell key and replicated through the chain.

use crate::config::{Cell, CellConfig, CellNode, Node, NodeDir};

use super::CliError;

/// Admits `joiner` to `cell` (on the node `node`, which must hold the cell's secret) and
/// returns the cell's configuration with the joiner in it: what the joiner installs.
pub fn add_node(
    dir: &NodeDir,
    _node: &Node,
    cell: &Cell,
    joiner: CellNode,
) -> Result<CellConfig, CliError> {
    if cell.keypair.is_none() {
        return Err(CliError::Failed(format!(
            "this node does not hold the secret key of cell `{}`, so it cannot admit nodes",
            cell.config.name
        )));
    }
    if cell.config.node(&joiner.id).is_some() {
        return Err(CliError::Failed(format!(
            "node {} is already a member of cell `{}`",
            joiner.id, cell.config.name
        )));
    }
    let mut config = cell.config.clone();
    config.nodes.push(joiner);
    config.validate().map_err(CliError::Failed)?;
    dir.save_cell(&cell.dir, &config)?;
    Ok(config)
}
