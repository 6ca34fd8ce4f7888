//! `exo node ...`: this node's identity.

use std::net::SocketAddr;

use argh::FromArgs;

use super::CliError;
use crate::config::{names, NodeDir, DEFAULT_PORT};

/// Manage this node.
#[derive(FromArgs)]
#[argh(subcommand, name = "node")]
pub struct NodeCmd {
    #[argh(subcommand)]
    command: NodeSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum NodeSub {
    Init(InitCmd),
}

/// Create this node: its keypair (node.key, mode 0600) and node.toml.
#[derive(FromArgs)]
#[argh(subcommand, name = "init")]
struct InitCmd {
    /// a human name for the node (default: the host name)
    #[argh(option)]
    name: Option<String>,
    /// address to listen on (default: 0.0.0.0:3330)
    #[argh(option)]
    listen: Option<SocketAddr>,
    /// address other nodes use to reach this one, `host:port`; repeat for several
    #[argh(option)]
    address: Vec<String>,
}

impl NodeCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        match self.command {
            NodeSub::Init(cmd) => cmd.run(dir),
        }
    }
}

impl InitCmd {
    fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let name = self.name.unwrap_or_else(default_name);
        names::check(&name).map_err(CliError::BadArgument)?;
        for address in &self.address {
            names::check_address(address).map_err(CliError::BadArgument)?;
        }
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)));
        let node = dir.init_node(&name, listen, self.address)?;
        let config = &node.config;
        println!("created node `{}` in {}", config.name, dir.root().display());
        println!("  id           {}", config.id);
        println!("  fingerprint  {}", config.id.fingerprint());
        println!("  listen       {}", config.listen);
        if config.addresses.is_empty() {
            println!("  addresses    none: other nodes cannot dial this one until you set them,");
            println!(
                "               e.g. exo config set addresses '[\"192.168.1.20:{DEFAULT_PORT}\"]'"
            );
        } else {
            println!("  addresses    {}", config.addresses.join(", "));
        }
        println!("next: `exo cell init` creates a cell on this node");
        Ok(())
    }
}

/// The host name, made into a valid node name, or `node`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(names::NAME_LEN_MAX)
        .collect();
    if names::check(&name).is_ok() {
        name
    } else {
        "node".into()
    }
}
