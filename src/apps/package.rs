//! Signed app packages (`spec/apps.md` section 8): building one from a manifest and a module,
//! reading one from bytes, and verifying it before anything of it is used.

use std::fmt;

use bincode::{Decode, Encode};
use exocore_protocol::identity::Keypair;
use exocore_protocol::wire;

use super::limits::PACKAGE_BYTES_MAX;
use super::manifest::{Manifest, ManifestError};
use super::module::{self, AppModule, ModuleError};
use crate::store::Schemas;

/// The first bytes of a package file: format 1.
pub const MAGIC: [u8; 8] = *b"exo-app\x01";
/// What the signature covers before the body, so it cannot be replayed in another context.
pub const SIGNING_CONTEXT: &[u8] = b"exocore app package v1\0";

/// Why a package is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageError {
    /// Over [`PACKAGE_BYTES_MAX`].
    TooLarge(usize),
    /// Not a package of a format this node reads.
    NotAPackage(String),
    /// The signature does not verify against the manifest's key.
    Signature,
    /// The module is not the one the manifest names.
    Hash {
        /// BLAKE3 the manifest names.
        expected: String,
        /// BLAKE3 of the module in the package.
        actual: String,
    },
    /// The manifest breaks a rule.
    Manifest(ManifestError),
    /// The module does not follow the ABI.
    Module(ModuleError),
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageError::TooLarge(size) => write!(
                f,
                "the package is {size} bytes, over the limit of {PACKAGE_BYTES_MAX}"
            ),
            PackageError::NotAPackage(e) => write!(f, "not an Exocore app package: {e}"),
            PackageError::Signature => write!(
                f,
                "the package's signature does not verify against the app key in its manifest: \
                 it was altered or signed by another key"
            ),
            PackageError::Hash { expected, actual } => write!(
                f,
                "the module's hash {actual} does not match the manifest's {expected}"
            ),
            PackageError::Manifest(e) => write!(f, "{e}"),
            PackageError::Module(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PackageError {}

#[derive(Encode, Decode)]
struct PackageFile {
    magic: [u8; 8],
    body: Vec<u8>,
    signature: [u8; 64],
}

#[derive(Encode, Decode)]
struct PackageBody {
    manifest: Manifest,
    module: Vec<u8>,
}

/// A package as read: not trusted until [`Package::verify`].
#[derive(Debug, Clone)]
pub struct Package {
    /// The manifest.
    pub manifest: Manifest,
    /// The module's bytes.
    pub module: Vec<u8>,
    body: Vec<u8>,
    signature: [u8; 64],
}

/// A package that passed verification.
#[derive(Debug, Clone)]
pub struct VerifiedApp {
    /// The manifest.
    pub manifest: Manifest,
    /// The module's bytes (valid, following the ABI).
    pub module: Vec<u8>,
    /// The types known before plus the app's.
    pub schemas: Schemas,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, body].concat()
}

impl Package {
    /// Signs `module` with `manifest` (whose `key` and `module_hash` are set from `key` and
    /// the module).
    pub fn build(
        mut manifest: Manifest,
        module: Vec<u8>,
        key: &Keypair,
    ) -> Result<Package, PackageError> {
        manifest.key = key.public().to_bytes();
        manifest.module_hash = *blake3::hash(&module).as_bytes();
        let body = wire::encode(&PackageBody {
            manifest: manifest.clone(),
            module: module.clone(),
        })
        .map_err(|e| PackageError::NotAPackage(e.to_string()))?;
        let signature = key.sign(&signed_message(&body));
        Ok(Package {
            manifest,
            module,
            body,
            signature,
        })
    }

    /// A package of a WebAssembly text module, signed by a new key: for tests and examples.
    pub fn build_from_wat(
        name: &str,
        version: &str,
        wat: &str,
        schemas: &str,
        read: &[&str],
        write: &[&str],
    ) -> Result<Package, PackageError> {
        let module = wat::parse_str(wat)
            .map_err(|e| PackageError::Module(ModuleError::Invalid(e.to_string())))?;
        let manifest = Manifest {
            name: name.into(),
            version: version.into(),
            key: [0; 32],
            module_hash: [0; 32],
            schemas: schemas.into(),
            read: read.iter().map(|s| s.to_string()).collect(),
            write: write.iter().map(|s| s.to_string()).collect(),
        };
        Package::build(manifest, module, &Keypair::generate())
    }

    /// The package file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A package read or built always encodes: its body is under the wire's limit.
        wire::encode(&PackageFile {
            magic: MAGIC,
            body: self.body.clone(),
            signature: self.signature,
        })
        .unwrap_or_default()
    }

    /// Reads a package file (its format only; see [`Package::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Package, PackageError> {
        if bytes.len() > PACKAGE_BYTES_MAX {
            return Err(PackageError::TooLarge(bytes.len()));
        }
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len() - 1] != MAGIC[..MAGIC.len() - 1] {
            return Err(PackageError::NotAPackage(
                "it does not start with `exo-app`".into(),
            ));
        }
        if bytes[MAGIC.len() - 1] != MAGIC[MAGIC.len() - 1] {
            return Err(PackageError::NotAPackage(format!(
                "package format {} is not known to this node (it reads format 1)",
                bytes[MAGIC.len() - 1]
            )));
        }
        let file = wire::decode::<PackageFile>(bytes)
            .map_err(|e| PackageError::NotAPackage(e.to_string()))?;
        let body = wire::decode::<PackageBody>(&file.body)
            .map_err(|e| PackageError::NotAPackage(format!("the body does not decode: {e}")))?;
        Ok(Package {
            manifest: body.manifest,
            module: body.module,
            body: file.body,
            signature: file.signature,
        })
    }

    /// BLAKE3 of the module, in hex.
    pub fn module_hash(&self) -> String {
        hex(&self.manifest.module_hash)
    }

    /// Checks signature, module hash, manifest (against the types `known`) and module, in
    /// that order.
    pub fn verify(&self, known: &Schemas) -> Result<VerifiedApp, PackageError> {
        let key = self.manifest.public_key().map_err(PackageError::Manifest)?;
        if !key.verify(&signed_message(&self.body), &self.signature) {
            return Err(PackageError::Signature);
        }
        let actual = blake3::hash(&self.module);
        if actual.as_bytes() != &self.manifest.module_hash {
            return Err(PackageError::Hash {
                expected: hex(&self.manifest.module_hash),
                actual: actual.to_hex().to_string(),
            });
        }
        let schemas = self.manifest.check(known).map_err(PackageError::Manifest)?;
        AppModule::compile(&module::engine(), &self.module).map_err(PackageError::Module)?;
        Ok(VerifiedApp {
            manifest: self.manifest.clone(),
            module: self.module.clone(),
            schemas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(module (memory (export "memory") 1) (func (export "init")))"#;

    #[test]
    fn a_package_round_trips_and_verifies() {
        let package = Package::build_from_wat("hello", "0.1.0", WAT, "", &["task"], &[]).unwrap();
        let read = Package::from_bytes(&package.to_bytes()).unwrap();
        let app = read.verify(&Schemas::builtin()).unwrap();
        assert_eq!(app.manifest.name, "hello");
    }

    #[test]
    fn tampering_is_refused() {
        let package = Package::build_from_wat("hello", "0.1.0", WAT, "", &[], &[]).unwrap();
        let bytes = package.to_bytes();
        // A flipped byte in the module: the signature covers it.
        let mut altered = bytes.clone();
        let at = altered.len() - 70;
        altered[at] ^= 1;
        let err = Package::from_bytes(&altered)
            .and_then(|p| p.verify(&Schemas::builtin()).map(|_| ()))
            .unwrap_err();
        assert!(
            matches!(err, PackageError::Signature | PackageError::NotAPackage(_)),
            "{err}"
        );
        // Signed by its own key, but the module is not the one the manifest hashed.
        let key = Keypair::generate();
        let mut manifest = package.manifest.clone();
        manifest.key = key.public().to_bytes();
        let mut module = package.module.clone();
        module.push(0);
        let body = wire::encode(&PackageBody {
            manifest: manifest.clone(),
            module: module.clone(),
        })
        .unwrap();
        let resigned = Package {
            signature: key.sign(&signed_message(&body)),
            manifest,
            module,
            body,
        };
        let err = resigned.verify(&Schemas::builtin()).unwrap_err();
        assert!(matches!(err, PackageError::Hash { .. }), "{err}");
        assert!(matches!(
            Package::from_bytes(b"garbage"),
            Err(PackageError::NotAPackage(_))
        ));
        let mut future = bytes;
        future[7] = 9;
        let err = Package::from_bytes(&future).unwrap_err();
        assert!(err.to_string().contains("format 9"), "{err}");
    }
}
