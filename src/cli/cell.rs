//! `exo cell ...`: the cells this node belongs to.

use argh::FromArgs;

use super::{table, CliError};
use crate::chain::{chain_dir, Block, ChainStore};
use crate::config::{names, Cell, Node, NodeDir, Role};

/// Manage the cells of this node.
#[derive(FromArgs)]
#[argh(subcommand, name = "cell")]
pub struct CellCmd {
    #[argh(subcommand)]
    command: CellSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum CellSub {
    Init(InitCmd),
    List(ListCmd),
    Print(PrintCmd),
    Node(NodeCmd),
    Ping(PingCmd),
    Chain(super::chain::ChainCmd),
    Join(super::join::JoinCmd),
    App(super::app::CellAppCmd),
}

/// Ping the other nodes of a cell: reachability and round-trip time of each.
#[derive(FromArgs)]
#[argh(subcommand, name = "ping")]
struct PingCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// print JSON
    #[argh(switch)]
    json: bool,
}

/// Create a new cell with this node as its first member.
#[derive(FromArgs)]
#[argh(subcommand, name = "init")]
struct InitCmd {
    /// a name for the cell, unique on this node (default: `default`)
    #[argh(option)]
    name: Option<String>,
    /// this node does not hold the chain
    #[argh(switch)]
    no_chain: bool,
    /// this node does not index entities
    #[argh(switch)]
    no_store: bool,
    /// this node does not run apps
    #[argh(switch)]
    no_app_host: bool,
}

/// List the cells of this node.
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
struct ListCmd {
    /// print JSON
    #[argh(switch)]
    json: bool,
}

/// Print a cell's configuration (cell.toml).
#[derive(FromArgs)]
#[argh(subcommand, name = "print")]
struct PrintCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// also print the cell's secret key
    #[argh(switch)]
    secrets: bool,
}

/// The nodes of a cell.
#[derive(FromArgs)]
#[argh(subcommand, name = "node")]
struct NodeCmd {
    #[argh(subcommand)]
    command: NodeSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum NodeSub {
    List(NodeListCmd),
    Add(super::join::NodeAddCmd),
    Remove(super::members::RemoveCmd),
    Roles(super::members::RolesCmd),
}

/// List a cell's nodes and their roles.
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
struct NodeListCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// print JSON
    #[argh(switch)]
    json: bool,
}

impl CellCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        match self.command {
            CellSub::Init(cmd) => cmd.run(dir),
            CellSub::List(cmd) => cmd.run(dir),
            CellSub::Print(cmd) => cmd.run(dir),
            CellSub::Node(NodeCmd { command }) => match command {
                NodeSub::List(cmd) => cmd.run(dir),
                NodeSub::Add(cmd) => cmd.run(dir),
                NodeSub::Remove(cmd) => cmd.run(dir),
                NodeSub::Roles(cmd) => cmd.run(dir),
            },
            CellSub::Chain(cmd) => cmd.run(dir),
            CellSub::Join(cmd) => cmd.run(dir),
            CellSub::App(cmd) => cmd.run(dir),
            CellSub::Ping(cmd) => {
                let node = dir.load_node()?;
                let cell = dir.select_cell(cmd.cell.as_deref())?;
                super::ping::run(&node, &cell, cmd.json)
            }
        }
    }
}

fn roles_text(roles: &[Role]) -> String {
    if roles.is_empty() {
        "-".into()
    } else {
        roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
    }
}

/// What `cell init` and `cell join` print about the cell they made: `VERB cell NAME`, its
/// id, fingerprint and folder, and this node's roles.
pub(super) fn print_summary(verb: &str, node: &Node, cell: &Cell) {
    println!("{verb} cell `{}`", cell.config.name);
    println!("  id           {}", cell.config.id);
    println!("  fingerprint  {}", cell.config.id.fingerprint());
    println!("  folder       {}", cell.dir.display());
    println!(
        "  this node    {} ({})",
        node.config.name,
        roles_text(&cell.roles_of(&node.config.id))
    );
}

impl InitCmd {
    fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let name = self.name.unwrap_or_else(|| "default".into());
        names::check(&name).map_err(CliError::BadArgument)?;
        let node = dir.load_node()?;
        let roles = Role::chosen(!self.no_chain, !self.no_store, !self.no_app_host);
        let holds_chain = roles.contains(&Role::Chain);
        let map_size_bytes = node.config.chain.map_size_bytes();
        // A chain node starts the chain: the genesis block, signed by the cell key.
        let cell = dir.create_cell(&node, &name, roles.clone(), |folder, keypair| {
            if !holds_chain {
                return Ok(());
            }
            let store = ChainStore::open(&chain_dir(folder), &keypair.public(), map_size_bytes)
                .map_err(|e| e.to_string())?;
            store
                .append_block(&Block::genesis(keypair, crate::clock::now_us()))
                .map_err(|e| e.to_string())
        })?;
        print_summary("created", &node, &cell);
        if roles.is_empty() {
            println!("note: this node has no role in the cell; it can only act as a client");
        }
        Ok(())
    }
}

impl ListCmd {
    fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        let cells = dir.cells()?;
        if self.json {
            let list: Vec<_> = cells
                .iter()
                .map(|cell| {
                    serde_json::json!({
                        "name": cell.config.name,
                        "id": cell.config.id.to_string(),
                        "roles": cell.roles_of(&node.config.id).iter().map(|r| r.name()).collect::<Vec<_>>(),
                        "nodes": cell.config.nodes.len(),
                        "holds_secret": cell.keypair.is_some(),
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(list));
            return Ok(());
        }
        if cells.is_empty() {
            println!("no cells yet: create one with `exo cell init`");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = cells
            .iter()
            .map(|cell| {
                vec![
                    cell.config.name.clone(),
                    cell.config.id.to_string(),
                    roles_text(&cell.roles_of(&node.config.id)),
                    cell.config.nodes.len().to_string(),
                ]
            })
            .collect();
        table::print(&["NAME", "ID", "ROLES", "NODES"], &rows);
        Ok(())
    }
}

impl PrintCmd {
    fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let cell: Cell = dir.select_cell(self.cell.as_deref())?;
        let path = cell.dir.join("cell.toml");
        let text =
            std::fs::read_to_string(&path).map_err(crate::config::Error::io("read", &path))?;
        print!("{text}");
        if self.secrets {
            let keypair = cell.keypair.ok_or_else(|| {
                CliError::BadArgument(format!(
                    "this node does not hold the secret key of cell `{}`",
                    cell.config.name
                ))
            })?;
            println!("\n# The cell's secret key: whoever has it can read and sign for the cell.");
            println!("secret_key = \"{}\"", keypair.secret_text());
        }
        Ok(())
    }
}

impl NodeListCmd {
    fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        let cell = dir.select_cell(self.cell.as_deref())?;
        let nodes = &cell.config.nodes;
        // `this_node` (JSON only) marks this node; tables stay one word per column for awk.
        if self.json {
            let list: Vec<_> = nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "name": n.name,
                        "id": n.id.to_string(),
                        "roles": n.roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
                        "addresses": n.addresses,
                        "this_node": n.id == node.config.id,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(list));
            return Ok(());
        }
        let rows: Vec<Vec<String>> = nodes
            .iter()
            .map(|n| {
                vec![
                    n.name.clone(),
                    n.id.to_string(),
                    roles_text(&n.roles),
                    if n.addresses.is_empty() {
                        "-".into()
                    } else {
                        n.addresses.join(",")
                    },
                ]
            })
            .collect();
        table::print(&["NAME", "ID", "ROLES", "ADDRESSES"], &rows);
        Ok(())
    }
}
