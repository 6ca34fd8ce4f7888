//! Changing a cell's membership from the command line: adding a node (after a join by PIN
//! or by hand), removing one, changing its roles.
//!
//! Each change is a new membership document (the version in force plus one) signed here with
//! the cell key, sent to the local daemon (CellAdmin `ChangeMembership`), and committed
//! through the chain: every node learns it without a restart (`spec/chain.md` section 6).
//! The commands wait until the change is committed and the daemon rewrote `cell.toml`.

use std::io::{BufRead, IsTerminal, Write};

use argh::FromArgs;
use exocore_protocol::admin::{AdminRequest, AdminResponse};
use exocore_protocol::identity::PublicKey;

use super::CliError;
use crate::chain::{Membership, MembershipDocument, SignedMembership};
use crate::config::{names, Cell, CellConfig, CellNode, Node, NodeDir, Role};

/// Admit a node to the cell by its key: a membership change signed with the cell key,
/// committed through the running daemon. Prints the resulting cell.toml's path, which the
/// new node installs.
pub struct AddCmd {
    /// The cell, by name or id (default: the only one).
    pub cell: Option<String>,
    /// The new node's public key (`exo config get id` on it).
    pub id: Option<String>,
    /// The new node's name in the cell.
    pub name: Option<String>,
    /// Where other nodes can reach it (`host:port`).
    pub address: Vec<String>,
    /// Its roles, comma-separated among chain, store, app-host, or `none`.
    pub roles: String,
}

/// Remove a node (by name or key) from the cell; it is refused by the others from then on.
#[derive(FromArgs)]
#[argh(subcommand, name = "remove")]
pub struct RemoveCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// do not ask for confirmation
    #[argh(switch)]
    yes: bool,
    /// the node to remove, by name or key
    #[argh(positional)]
    node: String,
}

/// Set the roles of a node (by name or key): chain, store, app-host, or `none`.
#[derive(FromArgs)]
#[argh(subcommand, name = "roles")]
pub struct RolesCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// the node, by name or key
    #[argh(positional)]
    node: String,
    /// its new roles (separated by spaces or commas), or `none`
    #[argh(positional)]
    roles: Vec<String>,
}

impl AddCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        let cell = dir.select_cell(self.cell.as_deref())?;
        let (Some(id), Some(name)) = (self.id, self.name) else {
            return Err(CliError::BadArgument(
                "give the new node's key and name: --id KEY --name NAME".into(),
            ));
        };
        let id: PublicKey = id
            .parse()
            .map_err(|e| CliError::BadArgument(format!("--id: {e}")))?;
        names::check(&name).map_err(CliError::BadArgument)?;
        for address in &self.address {
            names::check_address(address).map_err(CliError::BadArgument)?;
        }
        let joiner = CellNode {
            id,
            name,
            addresses: self.address,
            roles: parse_roles(&[self.roles])?,
        };
        let name = joiner.name.clone();
        let config = add_node(dir, &node, &cell, joiner)?;
        report(&format!("node `{name}` added to"), &config);
        println!(
            "the new node installs {}",
            cell.dir.join("cell.toml").display()
        );
        Ok(())
    }
}

impl RemoveCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        let cell = dir.select_cell(self.cell.as_deref())?;
        let target = find_node(&cell.config, &self.node)?.clone();
        if target.id == node.config.id {
            return Err(CliError::BadArgument(format!(
                "`{}` is this node: remove it from another node of the cell",
                target.name
            )));
        }
        if !self.yes
            && !confirm(&format!(
                "remove node `{}` ({}) from cell `{}`? It will be refused by the other nodes.",
                target.name,
                target.id.fingerprint(),
                cell.config.name
            ))?
        {
            return Err(CliError::Failed("nothing changed".into()));
        }
        let nodes = cell
            .config
            .nodes
            .iter()
            .filter(|n| n.id != target.id)
            .cloned()
            .collect();
        let config = change(&node, dir, &cell, nodes)?;
        report(&format!("node `{}` removed from", target.name), &config);
        Ok(())
    }
}

impl RolesCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        let cell = dir.select_cell(self.cell.as_deref())?;
        if self.roles.is_empty() {
            return Err(CliError::BadArgument(
                "give the node's new roles (chain, store, app-host) or `none`".into(),
            ));
        }
        let roles = parse_roles(&self.roles)?;
        let target = find_node(&cell.config, &self.node)?.id;
        let mut nodes = cell.config.nodes.clone();
        let mut name = String::new();
        for entry in nodes.iter_mut().filter(|n| n.id == target) {
            if entry.roles == roles {
                return Err(CliError::Failed(format!(
                    "node `{}` already has these roles",
                    entry.name
                )));
            }
            entry.roles = roles.clone();
            name = entry.name.clone();
        }
        let config = change(&node, dir, &cell, nodes)?;
        report(&format!("roles of node `{name}` changed in"), &config);
        Ok(())
    }
}

/// Admits `joiner` to `cell` (on the node `node`, which must hold the cell's secret and run
/// its daemon with the chain role) and returns the cell's configuration with the joiner in it,
/// once the change is committed: what the joiner installs.
pub fn add_node(
    dir: &NodeDir,
    node: &Node,
    cell: &Cell,
    joiner: CellNode,
) -> Result<CellConfig, CliError> {
    if cell.config.node(&joiner.id).is_some() {
        return Err(CliError::Failed(format!(
            "node {} is already a member of cell `{}`",
            joiner.id, cell.config.name
        )));
    }
    if cell.config.nodes.iter().any(|n| n.name == joiner.name) {
        return Err(CliError::Failed(format!(
            "cell `{}` already has a node named `{}`",
            cell.config.name, joiner.name
        )));
    }
    let mut nodes = cell.config.nodes.clone();
    nodes.push(joiner);
    change(node, dir, cell, nodes)
}

/// Commits `nodes` as the cell's next membership document through the local daemon, and
/// returns the configuration the daemon wrote once it is committed.
fn change(
    node: &Node,
    dir: &NodeDir,
    cell: &Cell,
    nodes: Vec<CellNode>,
) -> Result<CellConfig, CliError> {
    let Some(keypair) = &cell.keypair else {
        return Err(CliError::Failed(format!(
            "this node does not hold the secret key of cell `{}`, so it cannot change its membership: run the command on a node that does",
            cell.config.name
        )));
    };
    let document = MembershipDocument {
        cell: cell.config.id,
        version: cell.config.version + 1,
        nodes,
    };
    document
        .validate()
        .map_err(|e| CliError::Failed(format!("the cell would be unusable: {e}")))?;
    let change = SignedMembership::sign(document, keypair);
    let request = AdminRequest::ChangeMembership {
        document: change.to_bytes(),
    };
    let local = super::local::address(node.config.listen);
    let answer = smol::block_on(super::local::admin(node, cell, &request))
        .map_err(|e| super::local::failure(local, e))?;
    let AdminResponse::MembershipChanged { version, .. } = answer else {
        return Err(CliError::Failed(format!(
            "unexpected answer from the daemon: {answer:?}"
        )));
    };
    let config = dir.select_cell(Some(&cell.config.id.to_string()))?.config;
    if config.version < version {
        return Err(CliError::Failed(format!(
            "the change is committed (version {version}) but cell.toml still shows version {}: see the daemon's log",
            config.version
        )));
    }
    Ok(config)
}

/// The node named or keyed `wanted`.
fn find_node<'a>(config: &'a CellConfig, wanted: &str) -> Result<&'a CellNode, CliError> {
    let key = wanted.parse::<PublicKey>().ok();
    config
        .nodes
        .iter()
        .find(|n| n.name == wanted || Some(n.id) == key)
        .ok_or_else(|| {
            CliError::BadArgument(format!(
                "cell `{}` has no node `{wanted}` (see `exo cell node list`)",
                config.name
            ))
        })
}

/// Roles from words separated by spaces or commas; `none` alone for no role.
fn parse_roles(words: &[String]) -> Result<Vec<Role>, CliError> {
    let names: Vec<&str> = words
        .iter()
        .flat_map(|w| w.split(','))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if names == ["none"] {
        return Ok(Vec::new());
    }
    let mut roles = Vec::new();
    for name in names {
        let role = Role::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                CliError::BadArgument(format!(
                    "unknown role `{name}`: use chain, store, app-host, or none"
                ))
            })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// Asks on the terminal; without one, `--yes` is required.
fn confirm(question: &str) -> Result<bool, CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::BadArgument(
            "confirmation needed and no terminal to ask on: add --yes".into(),
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Failed(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn report(what: &str, config: &CellConfig) {
    let membership =
        Membership::from_document(&MembershipDocument::from_config(config, config.version));
    println!(
        "{what} cell `{}`: membership version {}, {} node(s), {} chain node(s), quorum {}",
        config.name,
        config.version,
        config.nodes.len(),
        membership.chain_nodes().len(),
        membership.quorum()
    );
}
