//! `cells/<cell-id>/cell.toml`: a cell as this node knows it, its nodes and their roles.
//! Holds no secret: the cell's key, on nodes that have it, is in `cell.key` (mode 0600).

use std::fmt;

use exocore_protocol::identity::PublicKey;
use serde::{Deserialize, Serialize};

use super::names;

/// What a node does for a cell. Written by name in files and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Stores, verifies and commits the chain.
    Chain,
    /// Indexes entities and answers queries.
    Store,
    /// Runs the cell's WebAssembly apps.
    AppHost,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 3] = [Role::Chain, Role::Store, Role::AppHost];

    /// The roles whose flag is set, in display order.
    pub fn chosen(chain: bool, store: bool, app_host: bool) -> Vec<Role> {
        [
            (Role::Chain, chain),
            (Role::Store, store),
            (Role::AppHost, app_host),
        ]
        .into_iter()
        .filter(|(_, chosen)| *chosen)
        .map(|(role, _)| role)
        .collect()
    }

    /// The role's name, as written in files.
    pub fn name(self) -> &'static str {
        match self {
            Role::Chain => "chain",
            Role::Store => "store",
            Role::AppHost => "app-host",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One node of the cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellNode {
    /// The node's public key.
    #[serde(with = "super::key_serde")]
    pub id: PublicKey,
    /// Its human name.
    pub name: String,
    /// Where it can be reached (`host:port`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// What it does for the cell; none for a client.
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// A cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellConfig {
    /// The cell's public key, its identity.
    #[serde(with = "super::key_serde")]
    pub id: PublicKey,
    /// A human name, unique among this node's cells, used by `--cell`.
    pub name: String,
    /// The version of the membership document (`spec/chain.md` section 6) that `nodes` is:
    /// 0 until the first replicated change is committed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u64,
    /// Its nodes.
    #[serde(default)]
    pub nodes: Vec<CellNode>,
    /// The node list the cell started with (version 0), kept once a committed change replaced
    /// `nodes`: verifying the chain from its genesis starts from it. Absent while `nodes` is
    /// still that list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Vec<CellNode>>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl CellConfig {
    /// Checks names, addresses, and that no node or role is listed twice, in the node list
    /// and in the initial one.
    pub fn validate(&self) -> Result<(), String> {
        names::check(&self.name)?;
        check_nodes(&self.nodes)?;
        check_nodes(self.initial.as_deref().unwrap_or_default())
    }

    /// The entry of node `id`, if it is a member.
    pub fn node(&self, id: &PublicKey) -> Option<&CellNode> {
        self.nodes.iter().find(|n| n.id == *id)
    }

    /// The file's text: a short guide, then the settings.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# Exocore cell configuration: the cell's identity and its nodes.\n\
             # Roles: chain, store, app-host. The cell's secret key, if this node holds it,\n\
             # is in cell.key beside this file.\n\
             {body}"
        )
    }
}

/// Checks a node list: names, addresses, no node or role listed twice.
fn check_nodes(nodes: &[CellNode]) -> Result<(), String> {
    for (i, node) in nodes.iter().enumerate() {
        names::check(&node.name)?;
        node.addresses
            .iter()
            .try_for_each(|a| names::check_address(a))?;
        if nodes[..i].iter().any(|other| other.id == node.id) {
            return Err(format!("node {} is listed twice", node.id));
        }
        let mut roles = node.roles.clone();
        roles.sort();
        roles.dedup();
        if roles.len() != node.roles.len() {
            return Err(format!("node `{}` has a role listed twice", node.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use exocore_protocol::identity::Keypair;

    fn sample() -> CellConfig {
        CellConfig {
            id: Keypair::generate().public(),
            name: "home".into(),
            version: 0,
            initial: None,
            nodes: vec![CellNode {
                id: Keypair::generate().public(),
                name: "pi".into(),
                addresses: vec!["127.0.0.1:3330".into()],
                roles: vec![Role::Chain, Role::AppHost],
            }],
        }
    }

    #[test]
    fn round_trips_through_toml_with_role_names() {
        let cell = sample();
        let text = cell.to_toml();
        assert!(text.contains(r#"roles = ["chain", "app-host"]"#), "{text}");
        let back: CellConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cell);
    }

    #[test]
    fn duplicates_are_refused() {
        let mut cell = sample();
        cell.nodes[0].roles.push(Role::Chain);
        assert!(cell.validate().unwrap_err().contains("role listed twice"));
        let mut cell = sample();
        cell.nodes.push(cell.nodes[0].clone());
        assert!(cell.validate().unwrap_err().contains("listed twice"));
    }

    #[test]
    fn unknown_role_is_refused() {
        let text = sample().to_toml().replace("app-host", "apphost");
        let err = toml::from_str::<CellConfig>(&text).unwrap_err();
        assert!(
            err.message().contains("unknown variant `apphost`"),
            "{}",
            err.message()
        );
    }
}
