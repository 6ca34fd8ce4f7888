//! The app host: WebAssembly apps run by wasmi, bounded in fuel per call and in memory per
//! instance, woken only by their timer or by messages, restarted with backoff after a fault,
//! and reaching the store through messages checked against their manifest (`spec/apps.md`).
//!
//! ```
//! use std::sync::Arc;
//! use exo::apps::{AppHost, IndexStore, Limits, Package};
//! use exo::store::Schemas;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Arc::new(IndexStore::open(dir.path(), Schemas::builtin()).unwrap());
//! let host = AppHost::start(Limits::default(), store).unwrap();
//! let wat = r#"(module
//!     (import "exo" "log" (func $log (param i32 i32 i32)))
//!     (memory (export "memory") 1)
//!     (data (i32.const 0) "hello")
//!     (func (export "init") (call $log (i32.const 3) (i32.const 0) (i32.const 5))))"#;
//! let package = Package::build_from_wat("hello", "0.1.0", wat, "", &[], &[]).unwrap();
//! let app = package.verify(&Schemas::builtin()).unwrap();
//! host.install(app).unwrap();
//! # host.stop();
//! ```
//!
//! Code map: [`limits`] (every bound), [`module`] (validation of a module against the ABI),
//! [`instance`] (one running instance: host functions, calls, faults), [`permissions`] (store
//! requests restricted to the manifest), [`store`] (what the host needs of a store, and
//! [`IndexStore`], a store index without a chain), [`manifest`], [`package`] (signed
//! packages and their verification), [`host`] (the scheduler thread).
//!
//! Architecture invariant: nothing an app does (its bytes, its calls, its messages) can panic
//! or block the host: faults are values, every queue is bounded, and one thread runs every
//! app, waiting only on the earliest timer and on its inbox.

pub mod change;
pub mod host;
pub mod instance;
pub mod limits;
pub mod manifest;
pub mod module;
pub mod package;
pub mod permissions;
pub mod store;

pub use host::{AppHost, AppState, AppStatus, HostError};
pub use instance::Fault;
pub use limits::Limits;
pub use manifest::{Manifest, ManifestError, SourceManifest};
pub use module::{AppModule, ModuleError};
pub use package::{Package, PackageError, VerifiedApp};
pub use permissions::Permissions;
pub use store::{AppStore, IndexStore};
