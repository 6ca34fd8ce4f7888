//! What can go wrong with a node's files, in words that say what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use exocore_protocol::identity::KeyTextError;

use super::toml_file::{EditError, ParseError};

/// An error reading or writing a node's directory.
#[derive(Debug)]
pub enum Error {
    /// There is no node in the directory yet.
    NoNode(PathBuf),
    /// `node init` on a directory that already holds a node.
    NodeExists(PathBuf),
    /// A file or folder could not be read or written.
    Io {
        /// What we were doing, e.g. "write".
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A config file is not valid TOML for its type.
    Parse(ParseError),
    /// A config file parses but breaks a rule (bad name, duplicate node...).
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which rule.
        message: String,
    },
    /// A key file does not hold a key.
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        error: KeyTextError,
    },
    /// A key file holds the key of someone else than its config says.
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The config naming another public key.
        config: PathBuf,
    },
    /// The node has no cell yet.
    NoCells,
    /// No cell matches `--cell`.
    NoSuchCell(String),
    /// Several cells, and no `--cell` to pick one.
    WhichCell(Vec<String>),
    /// `cell init` with a name already taken.
    CellNameTaken(String),
    /// Installing a cell this node already belongs to.
    CellExists {
        /// Its name here.
        name: String,
        /// Its id.
        id: String,
    },
    /// A `config set`/`unset` that cannot be applied.
    Edit {
        /// The key given.
        key: String,
        /// Why.
        error: EditError,
    },
    /// A setting that is derived, not chosen.
    ReadOnly(String),
    /// A new cell's folder could not be set up (e.g. its chain).
    Setup {
        /// The cell's folder.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done to which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoNode(dir) => write!(
                f,
                "no node in {}: create one with `exo node init`, or point --dir (EXO_DIR) at an existing one",
                dir.display()
            ),
            Error::NodeExists(dir) => write!(
                f,
                "a node already exists in {}: refusing to overwrite its key (use another --dir)",
                dir.display()
            ),
            Error::Io { action, path, source } => {
                let hint = match source.kind() {
                    io::ErrorKind::PermissionDenied => ": check the folder's owner and permissions",
                    _ => "",
                };
                write!(f, "cannot {action} {}: {source}{hint}", path.display())
            }
            Error::Parse(err) => write!(f, "{err}"),
            Error::Invalid { path, message } => write!(f, "{}: {message}", path.display()),
            Error::KeyFile { path, error } => write!(f, "{}: {error}", path.display()),
            Error::KeyMismatch { key, config } => write!(
                f,
                "{} does not hold the key of the id in {}: the files come from different nodes",
                key.display(),
                config.display()
            ),
            Error::NoCells => write!(f, "this node belongs to no cell yet: create one with `exo cell init`"),
            Error::NoSuchCell(selection) => write!(
                f,
                "no cell named or with id `{selection}`: `exo cell list` shows this node's cells"
            ),
            Error::WhichCell(names) => write!(
                f,
                "this node has several cells ({}): pick one with --cell NAME",
                names.join(", ")
            ),
            Error::CellNameTaken(name) => write!(
                f,
                "this node already has a cell named `{name}`: choose another with --name"
            ),
            Error::CellExists { name, id } => write!(
                f,
                "this node already belongs to cell `{name}` ({id})"
            ),
            Error::Edit { key, error } => write!(f, "cannot change `{key}`: {error}"),
            Error::Setup { path, message } => write!(f, "cannot set up {}: {message}", path.display()),
            Error::ReadOnly(key) => write!(f, "`{key}` is derived from the node's key and cannot be set"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ParseError> for Error {
    fn from(err: ParseError) -> Error {
        Error::Parse(err)
    }
}
