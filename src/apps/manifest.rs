//! An app's manifest (`spec/apps.md` section 7): `app.toml` in its source folder
//! ([`SourceManifest`]) and the bincode [`Manifest`] inside a package, with the rules both
//! follow.

use std::fmt;

use bincode::{Decode, Encode};
use exocore_protocol::identity::PublicKey;
use serde::Deserialize;

use super::permissions::Permissions;
use crate::store::Schemas;

/// Longest app name.
pub const NAME_LEN_MAX: usize = 32;
/// Longest version.
pub const VERSION_LEN_MAX: usize = 32;

/// Why a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// `app.toml` does not parse.
    Syntax(String),
    /// The name breaks the rule.
    Name(String),
    /// The version breaks the rule.
    Version(String),
    /// The key is not a public key.
    Key(String),
    /// The schemas do not parse or are refused.
    Schemas(String),
    /// A type the app brings is not prefixed by its name.
    Prefix {
        /// The type.
        trait_type: String,
        /// The app.
        app: String,
    },
    /// A permission names a type nobody declares.
    UnknownType {
        /// `read` or `write`.
        list: &'static str,
        /// The type.
        trait_type: String,
    },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Syntax(e) => write!(f, "app.toml: {e}"),
            ManifestError::Name(name) => write!(
                f,
                "app name `{name}` is not valid: 1 to {NAME_LEN_MAX} bytes of a-z, 0-9 and _, \
                 starting with a letter"
            ),
            ManifestError::Version(v) => write!(
                f,
                "app version `{v}` is not valid: 1 to {VERSION_LEN_MAX} bytes of A-Z a-z 0-9 . - +"
            ),
            ManifestError::Key(e) => write!(f, "app key: {e}"),
            ManifestError::Schemas(e) => write!(f, "the app's schemas are refused: {e}"),
            ManifestError::Prefix { trait_type, app } => write!(
                f,
                "the app declares trait type `{trait_type}`: an app's types must be named \
                 `{app}.something`"
            ),
            ManifestError::UnknownType { list, trait_type } => write!(
                f,
                "the manifest's {list} permission names trait type `{trait_type}`, which is \
                 neither built in nor declared by this app or an installed one"
            ),
        }
    }
}

impl std::error::Error for ManifestError {}

/// `app.toml`: the manifest as a developer writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceManifest {
    /// The app's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its public key (`pk_...`).
    pub key: String,
    /// The module file, relative to the folder: `.wasm`, or `.wat` compiled when packaging.
    pub module: String,
    /// The schema file, relative to the folder.
    #[serde(default)]
    pub schemas: Option<String>,
    /// What it may read and write.
    #[serde(default)]
    pub permissions: SourcePermissions,
}

/// `[permissions]` of `app.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePermissions {
    /// Types it may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Types it may write.
    #[serde(default)]
    pub write: Vec<String>,
}

impl SourceManifest {
    /// Parses `app.toml`.
    pub fn parse(text: &str) -> Result<SourceManifest, ManifestError> {
        toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))
    }
}

/// The manifest in a package.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Manifest {
    /// The app's name, its id in a cell.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its ed25519 public key: the package is signed by it.
    pub key: [u8; 32],
    /// BLAKE3 of the module.
    pub module_hash: [u8; 32],
    /// The schema TOML text; empty when none.
    pub schemas: String,
    /// Types it may read.
    pub read: Vec<String>,
    /// Types it may write.
    pub write: Vec<String>,
}

/// Checks an app name (section 7 of `spec/apps.md`).
pub fn check_name(name: &str) -> Result<(), ManifestError> {
    let mut bytes = name.bytes();
    let ok = !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ManifestError::Name(name.to_string()))
    }
}

fn check_version(version: &str) -> Result<(), ManifestError> {
    let ok = !version.is_empty()
        && version.len() <= VERSION_LEN_MAX
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(ManifestError::Version(version.to_string()))
    }
}

impl Manifest {
    /// The app's public key.
    pub fn public_key(&self) -> Result<PublicKey, ManifestError> {
        PublicKey::from_bytes(&self.key).map_err(|e| ManifestError::Key(e.to_string()))
    }

    /// What it may read and write.
    pub fn permissions(&self) -> Permissions {
        Permissions {
            read: self.read.clone(),
            write: self.write.clone(),
        }
    }

    /// Checks the rules of `spec/apps.md` section 7 against the types `known` (built-in and
    /// other installed apps'); returns `known` plus the app's types.
    pub fn check(&self, known: &Schemas) -> Result<Schemas, ManifestError> {
        check_name(&self.name)?;
        check_version(&self.version)?;
        self.public_key()?;
        let mut own = Schemas::empty();
        own.add_toml(&self.schemas)
            .map_err(|e| ManifestError::Schemas(e.to_string()))?;
        let prefix = format!("{}.", self.name);
        if let Some(t) = own.iter().find(|t| !t.name.starts_with(&prefix)) {
            return Err(ManifestError::Prefix {
                trait_type: t.name.clone(),
                app: self.name.clone(),
            });
        }
        let mut all = known.clone();
        all.add_toml(&self.schemas)
            .map_err(|e| ManifestError::Schemas(e.to_string()))?;
        for (list, types) in [("read", &self.read), ("write", &self.write)] {
            if let Some(t) = types.iter().find(|t| all.get(t).is_none()) {
                return Err(ManifestError::UnknownType {
                    list,
                    trait_type: t.clone(),
                });
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            name: "recipes".into(),
            version: "1.0.0".into(),
            key: exocore_protocol::identity::Keypair::generate()
                .public()
                .to_bytes(),
            module_hash: [0; 32],
            schemas: "[[trait]]\nname = \"recipes.recipe\"\n[[trait.field]]\nname = \"title\"\ntype = \"text\"\n".into(),
            read: vec!["recipes.recipe".into(), "task".into()],
            write: vec!["recipes.recipe".into()],
        }
    }

    #[test]
    fn known_types_pass_and_the_app_types_join_them() {
        let all = manifest().check(&Schemas::builtin()).unwrap();
        assert!(all.get("recipes.recipe").is_some() && all.get("task").is_some());
    }

    #[test]
    fn each_rule_is_refused_with_its_reason() {
        let mut m = manifest();
        m.write.push("nope".into());
        let err = m.check(&Schemas::builtin()).unwrap_err();
        assert!(
            err.to_string()
                .contains("write permission names trait type `nope`"),
            "{err}"
        );
        let mut m = manifest();
        m.schemas = m.schemas.replace("recipes.recipe", "other.recipe");
        m.read.clear();
        m.write.clear();
        let err = m.check(&Schemas::builtin()).unwrap_err();
        assert!(matches!(err, ManifestError::Prefix { .. }), "{err}");
        let mut m = manifest();
        m.name = "Bad-Name".into();
        assert!(matches!(
            m.check(&Schemas::builtin()),
            Err(ManifestError::Name(_))
        ));
        let mut m = manifest();
        m.version = "1 0".into();
        assert!(matches!(
            m.check(&Schemas::builtin()),
            Err(ManifestError::Version(_))
        ));
        // The same app's types installed twice collide.
        let twice = manifest().check(&Schemas::builtin()).unwrap();
        assert!(matches!(
            manifest().check(&twice),
            Err(ManifestError::Schemas(_))
        ));
    }
}
