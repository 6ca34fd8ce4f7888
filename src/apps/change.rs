//! The plaintext of an app operation (chain payload kind 2, `spec/apps.md` section 11), and
//! the set of installed apps folded from a cell's app operations.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use exocore_protocol::wire;

use super::package::{Package, PackageError, VerifiedApp};
use crate::chain::OperationId;
use crate::store::Schemas;

/// An app installed or removed.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum AppChange {
    /// Install or replace the app of this package file.
    Install {
        /// The package file.
        package: Vec<u8>,
    },
    /// Remove the app of this name.
    Remove {
        /// Its name.
        name: String,
    },
}

impl AppChange {
    /// Its encoding: the operation's plaintext.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Bounded by the package size limit, far under the wire's.
        wire::encode(self).unwrap_or_default()
    }

    /// Decodes an operation's plaintext.
    pub fn from_bytes(bytes: &[u8]) -> Result<AppChange, String> {
        wire::decode(bytes).map_err(|e| format!("not an app change: {e}"))
    }
}

/// The apps of a cell: the last change of each name, by operation id, wins.
#[derive(Debug, Default)]
pub struct InstalledApps {
    changes: BTreeMap<String, (OperationId, Option<VerifiedApp>)>,
}

/// What applying a change did.
#[derive(Debug)]
pub enum Applied {
    /// This app is now installed (or replaced).
    Installed(Box<VerifiedApp>),
    /// The app of this name is gone.
    Removed(String),
    /// Older than what is known: nothing changes.
    Superseded,
}

impl InstalledApps {
    /// The schemas of the built-in types and of every installed app but `except`.
    pub fn schemas(&self, except: &str) -> Schemas {
        let mut all = Schemas::builtin();
        for (name, (_, app)) in &self.changes {
            if let Some(app) = app.as_ref().filter(|_| name != except) {
                // Verified together at installation, so they add up.
                let _ = all.add_toml(&app.manifest.schemas);
            }
        }
        all
    }

    /// The schema files of the installed apps, by app name: what the cell's entity index
    /// adds to the built-in types.
    pub fn schema_files(&self) -> Vec<String> {
        self.iter()
            .map(|app| app.manifest.schemas.clone())
            .collect()
    }

    /// An installed app.
    pub fn get(&self, name: &str) -> Option<&VerifiedApp> {
        self.changes.get(name).and_then(|(_, app)| app.as_ref())
    }

    /// Every installed app, by name.
    pub fn iter(&self) -> impl Iterator<Item = &VerifiedApp> {
        self.changes.values().filter_map(|(_, app)| app.as_ref())
    }

    /// Applies the change of operation `id`; a package that does not verify is an error and
    /// changes nothing.
    pub fn apply(&mut self, id: OperationId, change: &AppChange) -> Result<Applied, PackageError> {
        match change {
            AppChange::Install { package } => {
                let package = Package::from_bytes(package)?;
                let name = package.manifest.name.clone();
                if self.changes.get(&name).is_some_and(|(at, _)| *at >= id) {
                    return Ok(Applied::Superseded);
                }
                let app = package.verify(&self.schemas(&name))?;
                self.changes.insert(name, (id, Some(app.clone())));
                Ok(Applied::Installed(Box::new(app)))
            }
            AppChange::Remove { name } => {
                if self.changes.get(name).is_some_and(|(at, _)| *at >= id) {
                    return Ok(Applied::Superseded);
                }
                self.changes.insert(name.clone(), (id, None));
                Ok(Applied::Removed(name.clone()))
            }
        }
    }
}
