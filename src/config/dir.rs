//! The node directory: where every file of a node lives, and how each is read and written.
//!
//! ```text
//! <dir>/node.toml                  NodeConfig (public)
//! <dir>/node.key                   the node's secret key, mode 0600
//! <dir>/cells/<cell-id>/cell.toml  CellConfig (public)
//! <dir>/cells/<cell-id>/cell.key   the cell's secret key, mode 0600, on nodes that hold it
//! ```
//!
//! Architecture invariant: this module knows files, not networks. Nothing here dials a peer or
//! starts a service; the daemon and the CLI build on what it loads.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use exocore_protocol::identity::{Keypair, PublicKey};

use super::atomic::{self, PUBLIC_MODE, SECRET_MODE};
use super::cell::{CellConfig, CellNode, Role};
use super::error::Error;
use super::node::NodeConfig;
use super::toml_file;

/// A node as loaded from disk: its settings and its keypair.
#[derive(Debug, Clone)]
pub struct Node {
    /// `node.toml`.
    pub config: NodeConfig,
    /// From `node.key`.
    pub keypair: Keypair,
}

/// A cell as loaded from disk.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The cell's folder.
    pub dir: PathBuf,
    /// `cell.toml`.
    pub config: CellConfig,
    /// From `cell.key`, on nodes that hold the cell's secret.
    pub keypair: Option<Keypair>,
}

impl Cell {
    /// This node's roles in the cell (none if it is not listed).
    pub fn roles_of(&self, node: &PublicKey) -> Vec<Role> {
        self.config
            .node(node)
            .map(|n| n.roles.clone())
            .unwrap_or_default()
    }
}

/// The folder holding one node.
#[derive(Debug, Clone)]
pub struct NodeDir {
    root: PathBuf,
}

impl NodeDir {
    /// The node directory at `root` (nothing is read until asked).
    pub fn new(root: impl Into<PathBuf>) -> NodeDir {
        NodeDir { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of `node.toml`.
    pub fn node_toml(&self) -> PathBuf {
        self.root.join("node.toml")
    }

    /// Path of `node.key`.
    pub fn node_key(&self) -> PathBuf {
        self.root.join("node.key")
    }

    /// Folder holding one folder per cell.
    pub fn cells_dir(&self) -> PathBuf {
        self.root.join("cells")
    }

    /// Creates a new node: a fresh keypair in `node.key` (0600), then `node.toml`.
    /// Refuses if either file exists, so an existing identity is never overwritten.
    pub fn init_node(
        &self,
        name: &str,
        listen: std::net::SocketAddr,
        addresses: Vec<String>,
    ) -> Result<Node, Error> {
        if self.node_toml().exists() || self.node_key().exists() {
            return Err(Error::NodeExists(self.root.clone()));
        }
        let keypair = Keypair::generate();
        let config = NodeConfig {
            id: keypair.public(),
            name: name.to_string(),
            listen,
            addresses,
            discovery: None,
            chain: Default::default(),
            store: Default::default(),
        };
        config.validate().map_err(|message| Error::Invalid {
            path: self.node_toml(),
            message,
        })?;
        fs::create_dir_all(&self.root).map_err(Error::io("create folder", &self.root))?;
        let key_text = format!("{}\n", keypair.secret_text());
        atomic::write_new(&self.node_key(), key_text.as_bytes(), SECRET_MODE).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::NodeExists(self.root.clone())
            } else {
                Error::io("write", self.node_key())(e)
            }
        })?;
        self.write_node_config(&config)?;
        Ok(Node { config, keypair })
    }

    /// The text of `node.toml`, as on disk.
    pub fn read_node_text(&self) -> Result<String, Error> {
        match fs::read_to_string(self.node_toml()) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NoNode(self.root.clone())),
            Err(e) => Err(Error::io("read", self.node_toml())(e)),
        }
    }

    /// Parses and validates node settings given as text (from disk or from an editor).
    pub fn parse_node_config(&self, text: &str) -> Result<NodeConfig, Error> {
        let config: NodeConfig = toml_file::parse(&self.node_toml(), text)?;
        config.validate().map_err(|message| Error::Invalid {
            path: self.node_toml(),
            message,
        })?;
        Ok(config)
    }

    /// Loads `node.key` alone: enough to repair a broken `node.toml`.
    pub fn load_node_keypair(&self) -> Result<Keypair, Error> {
        if !self.node_key().exists() && !self.node_toml().exists() {
            return Err(Error::NoNode(self.root.clone()));
        }
        read_key(&self.node_key())
    }

    /// Loads `node.toml` and `node.key`, and checks that they belong together.
    pub fn load_node(&self) -> Result<Node, Error> {
        let config = self.parse_node_config(&self.read_node_text()?)?;
        let keypair = self.load_node_keypair()?;
        if keypair.public() != config.id {
            return Err(Error::KeyMismatch {
                key: self.node_key(),
                config: self.node_toml(),
            });
        }
        Ok(Node { config, keypair })
    }

    /// Replaces `node.toml` with `text` after checking it, and copies the node's name and
    /// addresses into its entry in each of its cells, so cells describe the node as it is.
    /// `id` is the node's public key (from `node.key`), which the text must keep.
    pub fn save_node_text(&self, id: &PublicKey, text: &str) -> Result<NodeConfig, Error> {
        let config = self.parse_node_config(text)?;
        if config.id != *id {
            return Err(Error::ReadOnly("id".into()));
        }
        atomic::write(&self.node_toml(), text.as_bytes(), PUBLIC_MODE)
            .map_err(Error::io("write", self.node_toml()))?;
        for mut cell in self.cells()? {
            if let Some(entry) = cell.config.nodes.iter_mut().find(|n| n.id == config.id) {
                if entry.name != config.name || entry.addresses != config.addresses {
                    entry.name = config.name.clone();
                    entry.addresses = config.addresses.clone();
                    self.save_cell(&cell.dir, &cell.config)?;
                }
            }
        }
        Ok(config)
    }

    fn write_node_config(&self, config: &NodeConfig) -> Result<(), Error> {
        atomic::write(&self.node_toml(), config.to_toml().as_bytes(), PUBLIC_MODE)
            .map_err(Error::io("write", self.node_toml()))
    }

    /// Every cell of this node, sorted by name.
    pub fn cells(&self) -> Result<Vec<Cell>, Error> {
        let cells_dir = self.cells_dir();
        let entries = match fs::read_dir(&cells_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read folder", &cells_dir)(e)),
        };
        let mut cells = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("read folder", &cells_dir))?;
            let name = entry.file_name();
            // Folders being created (`.new-*`) are not cells yet.
            if name.to_string_lossy().starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            cells.push(self.load_cell(&entry.path())?);
        }
        cells.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        Ok(cells)
    }

    fn load_cell(&self, dir: &Path) -> Result<Cell, Error> {
        let path = dir.join("cell.toml");
        let text = fs::read_to_string(&path).map_err(Error::io("read", &path))?;
        let config: CellConfig = toml_file::parse(&path, &text)?;
        let invalid = |message| Error::Invalid {
            path: path.clone(),
            message,
        };
        config.validate().map_err(invalid)?;
        if dir.file_name() != Some(config.id.to_string().as_ref()) {
            return Err(invalid(format!(
                "the folder is not named after the cell id {}",
                config.id
            )));
        }
        let key_path = dir.join("cell.key");
        let keypair = if key_path.exists() {
            let keypair = read_key(&key_path)?;
            if keypair.public() != config.id {
                return Err(Error::KeyMismatch {
                    key: key_path,
                    config: path,
                });
            }
            Some(keypair)
        } else {
            None
        };
        Ok(Cell {
            dir: dir.to_path_buf(),
            config,
            keypair,
        })
    }

    /// The cell named by `selection` (a name or a cell id), or the only cell if `None`.
    pub fn select_cell(&self, selection: Option<&str>) -> Result<Cell, Error> {
        let mut cells = self.cells()?;
        match selection {
            Some(wanted) => {
                let by_id = wanted.parse::<PublicKey>().ok();
                cells
                    .into_iter()
                    .find(|c| c.config.name == wanted || Some(c.config.id) == by_id)
                    .ok_or_else(|| Error::NoSuchCell(wanted.to_string()))
            }
            None => match cells.len() {
                0 => Err(Error::NoCells),
                1 => Ok(cells.remove(0)),
                _ => Err(Error::WhichCell(
                    cells.into_iter().map(|c| c.config.name).collect(),
                )),
            },
        }
    }

    /// Creates a new cell with a fresh keypair, listing `node` with `roles`. `prepare` adds
    /// what other modules keep in the cell's folder (the chain's genesis) before it appears.
    pub fn create_cell(
        &self,
        node: &Node,
        name: &str,
        roles: Vec<Role>,
        prepare: impl FnOnce(&Path, &Keypair) -> Result<(), String>,
    ) -> Result<Cell, Error> {
        if self.cells()?.iter().any(|c| c.config.name == name) {
            return Err(Error::CellNameTaken(name.to_string()));
        }
        let keypair = Keypair::generate();
        let config = CellConfig {
            id: keypair.public(),
            name: name.to_string(),
            version: 0,
            initial: None,
            nodes: vec![CellNode {
                id: node.config.id,
                name: node.config.name.clone(),
                addresses: node.config.addresses.clone(),
                roles,
            }],
        };
        self.build_cell(config, Some(keypair), prepare)
    }

    /// Installs a cell this node joined, as a member sent it: `cell.toml`, and `cell.key` if
    /// the node's roles read data. Refuses a cell it already has, or a name already taken.
    pub fn install_cell(
        &self,
        config: CellConfig,
        keypair: Option<Keypair>,
    ) -> Result<Cell, Error> {
        self.can_install(&config.id, &config.name)?;
        self.build_cell(config, keypair, |_, _| Ok(()))
    }

    /// Whether a cell with this id and name could be installed: `Err` if this node already
    /// belongs to it, or has another cell with that name.
    pub fn can_install(&self, id: &PublicKey, name: &str) -> Result<(), Error> {
        for cell in self.cells()? {
            if cell.config.id == *id {
                return Err(Error::CellExists {
                    name: cell.config.name,
                    id: id.to_string(),
                });
            }
            if cell.config.name == name {
                return Err(Error::CellNameTaken(name.to_string()));
            }
        }
        Ok(())
    }

    /// Writes a cell's folder under a temporary name and renames it into place, so a crash
    /// leaves no half cell.
    fn build_cell(
        &self,
        config: CellConfig,
        keypair: Option<Keypair>,
        prepare: impl FnOnce(&Path, &Keypair) -> Result<(), String>,
    ) -> Result<Cell, Error> {
        let cells_dir = self.cells_dir();
        let final_dir = cells_dir.join(config.id.to_string());
        config.validate().map_err(|message| Error::Invalid {
            path: final_dir.join("cell.toml"),
            message,
        })?;
        if let Some(keypair) = &keypair {
            if keypair.public() != config.id {
                return Err(Error::KeyMismatch {
                    key: final_dir.join("cell.key"),
                    config: final_dir.join("cell.toml"),
                });
            }
        }
        let building = cells_dir.join(format!(".new-{}", config.id));
        // A hidden folder left by a crash is garbage: nothing reads it.
        let _ = fs::remove_dir_all(&building);
        fs::create_dir_all(&building).map_err(Error::io("create folder", &building))?;
        let result = self.fill_cell(&building, &config, keypair.as_ref(), prepare);
        if let Err(err) = result {
            let _ = fs::remove_dir_all(&building);
            return Err(match err {
                Error::Setup { message, .. } => Error::Setup {
                    path: final_dir,
                    message,
                },
                other => other,
            });
        }
        fs::rename(&building, &final_dir).map_err(Error::io("create folder", &final_dir))?;
        atomic::sync_folder(&cells_dir).map_err(Error::io("sync folder", &cells_dir))?;
        Ok(Cell {
            dir: final_dir,
            config,
            keypair,
        })
    }

    fn fill_cell(
        &self,
        building: &Path,
        config: &CellConfig,
        keypair: Option<&Keypair>,
        prepare: impl FnOnce(&Path, &Keypair) -> Result<(), String>,
    ) -> Result<(), Error> {
        if let Some(keypair) = keypair {
            let key_text = format!("{}\n", keypair.secret_text());
            atomic::write_new(&building.join("cell.key"), key_text.as_bytes(), SECRET_MODE)
                .map_err(Error::io("write", building.join("cell.key")))?;
        }
        atomic::write_new(
            &building.join("cell.toml"),
            config.to_toml().as_bytes(),
            PUBLIC_MODE,
        )
        .map_err(Error::io("write", building.join("cell.toml")))?;
        match keypair {
            Some(keypair) => prepare(building, keypair).map_err(|message| Error::Setup {
                path: building.to_path_buf(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Replaces a cell's `cell.toml`.
    pub fn save_cell(&self, dir: &Path, config: &CellConfig) -> Result<(), Error> {
        let path = dir.join("cell.toml");
        atomic::write(&path, config.to_toml().as_bytes(), PUBLIC_MODE)
            .map_err(Error::io("write", path))
    }
}

fn read_key(path: &Path) -> Result<Keypair, Error> {
    let text = fs::read_to_string(path).map_err(Error::io("read", path))?;
    Keypair::from_secret_text(text.trim()).map_err(|error| Error::KeyFile {
        path: path.to_path_buf(),
        error,
    })
}
