//! `exo app ...`: make, package and check apps (`spec/apps.md` sections 7 and 8). These
//! commands work on files only; installing into a cell is `exo cell app`.

use std::path::{Path, PathBuf};

use argh::FromArgs;
use exocore_protocol::identity::Keypair;
use serde_json::json;

use super::CliError;
use crate::apps::limits::PACKAGE_BYTES_MAX;
use crate::apps::manifest::check_name;
use crate::apps::{Manifest, Package, SourceManifest};
use crate::config::atomic::{self, PUBLIC_MODE, SECRET_MODE};
use crate::store::Schemas;

/// Make, package and check WebAssembly apps.
#[derive(FromArgs)]
#[argh(subcommand, name = "app")]
pub struct AppCmd {
    #[argh(subcommand)]
    command: AppSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum AppSub {
    New(NewCmd),
    Package(PackageCmd),
    Verify(VerifyCmd),
}

/// Create a folder NAME with app.toml, NAME.wat (logs from init), schema.toml and app.key
/// (the app's secret key, mode 0600).
#[derive(FromArgs)]
#[argh(subcommand, name = "new")]
struct NewCmd {
    /// the app's name: a-z, 0-9 and _, starting with a letter
    #[argh(positional)]
    name: String,
    /// where to create the folder (default: the current folder)
    #[argh(option)]
    parent: Option<PathBuf>,
}

/// Build DIR's app into one signed package (DIR/NAME-VERSION.exoapp unless --out).
#[derive(FromArgs)]
#[argh(subcommand, name = "package")]
struct PackageCmd {
    /// the app's folder (holding app.toml and app.key)
    #[argh(positional)]
    dir: PathBuf,
    /// the package file to write
    #[argh(option)]
    out: Option<PathBuf>,
    /// print JSON
    #[argh(switch)]
    json: bool,
}

/// Check a package: format, signature, module hash, manifest and module; print what it is.
#[derive(FromArgs)]
#[argh(subcommand, name = "verify")]
struct VerifyCmd {
    /// the package file
    #[argh(positional)]
    file: PathBuf,
    /// print JSON
    #[argh(switch)]
    json: bool,
}

impl AppCmd {
    pub fn run(self) -> Result<(), CliError> {
        match self.command {
            AppSub::New(cmd) => cmd.run(),
            AppSub::Package(cmd) => cmd.run(),
            AppSub::Verify(cmd) => cmd.run(),
        }
    }
}

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::Failed(what.to_string())
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| failed(format!("cannot read {}: {e}", path.display())))
}

fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), CliError> {
    atomic::write(path, contents, mode)
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
}

const TEMPLATE_WAT: &str = r#";; NAME: logs a line when it starts. The ABI is in spec/apps.md.
(module
  (import "exo" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "NAME started")
  (func (export "init")
    (call $log (i32.const 3) (i32.const 0) (i32.const LEN))))
"#;

impl NewCmd {
    fn run(self) -> Result<(), CliError> {
        check_name(&self.name).map_err(|e| CliError::BadArgument(e.to_string()))?;
        let dir = self
            .parent
            .unwrap_or_else(|| PathBuf::from("."))
            .join(&self.name);
        std::fs::create_dir(&dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        let key = Keypair::generate();
        let name = &self.name;
        let manifest = format!(
            "# The app's manifest (spec/apps.md section 7).\n\
             name = \"{name}\"\n\
             version = \"0.1.0\"\n\
             key = \"{}\"\n\
             module = \"{name}.wat\"\n\
             schemas = \"schema.toml\"\n\n\
             [permissions]\n\
             read = []\n\
             write = []\n",
            key.public()
        );
        let wat = TEMPLATE_WAT
            .replace("NAME", name)
            .replace("LEN", &(name.len() + " started".len()).to_string());
        let schema = format!(
            "# Trait types this app brings, each named `{name}.something` (spec/store.md section 3).\n"
        );
        write(
            &dir.join("app.key"),
            format!("{}\n", key.secret_text()).as_bytes(),
            SECRET_MODE,
        )?;
        write(&dir.join("app.toml"), manifest.as_bytes(), PUBLIC_MODE)?;
        write(
            &dir.join(format!("{name}.wat")),
            wat.as_bytes(),
            PUBLIC_MODE,
        )?;
        write(&dir.join("schema.toml"), schema.as_bytes(), PUBLIC_MODE)?;
        println!("{}", dir.display());
        Ok(())
    }
}

impl PackageCmd {
    fn run(self) -> Result<(), CliError> {
        let dir = &self.dir;
        let text = String::from_utf8(read(&dir.join("app.toml"))?)
            .map_err(|_| failed("app.toml is not UTF-8"))?;
        let source = SourceManifest::parse(&text).map_err(failed)?;
        let key_text = String::from_utf8(read(&dir.join("app.key"))?)
            .map_err(|_| failed("app.key is not UTF-8"))?;
        let key = Keypair::from_secret_text(key_text.trim())
            .map_err(|e| failed(format!("app.key: {e}")))?;
        if key.public().to_string() != source.key {
            return Err(failed(format!(
                "app.key is the secret of {}, but app.toml names the key {}",
                key.public(),
                source.key
            )));
        }
        let module_path = dir.join(&source.module);
        let module = if source.module.ends_with(".wat") {
            wat::parse_file(&module_path).map_err(|e| failed(format!("{e}")))?
        } else {
            read(&module_path)?
        };
        let schemas = match &source.schemas {
            Some(file) => String::from_utf8(read(&dir.join(file))?)
                .map_err(|_| failed(format!("{file} is not UTF-8")))?,
            None => String::new(),
        };
        let manifest = Manifest {
            name: source.name.clone(),
            version: source.version.clone(),
            key: [0; 32],
            module_hash: [0; 32],
            schemas,
            read: source.permissions.read,
            write: source.permissions.write,
        };
        let package = Package::build(manifest, module, &key).map_err(failed)?;
        let bytes = package.to_bytes();
        if bytes.len() > PACKAGE_BYTES_MAX {
            return Err(failed(format!(
                "the package would be {} bytes, over the limit of {PACKAGE_BYTES_MAX}",
                bytes.len()
            )));
        }
        // What a node will check, checked now: nothing unusable is written.
        package.verify(&Schemas::builtin()).map_err(failed)?;
        let out = self
            .out
            .unwrap_or_else(|| dir.join(format!("{}-{}.exoapp", source.name, source.version)));
        write(&out, &bytes, PUBLIC_MODE)?;
        if self.json {
            println!(
                "{}",
                json!({"file": out.display().to_string(), "module_hash": package.module_hash(), "size_bytes": bytes.len()})
            );
        } else {
            println!(
                "{} ({} bytes, module blake3 {})",
                out.display(),
                bytes.len(),
                package.module_hash()
            );
        }
        Ok(())
    }
}

impl VerifyCmd {
    fn run(self) -> Result<(), CliError> {
        let size = std::fs::metadata(&self.file)
            .map_err(|e| failed(format!("cannot read {}: {e}", self.file.display())))?
            .len();
        if size > PACKAGE_BYTES_MAX as u64 {
            return Err(failed(format!(
                "{} is {size} bytes, over the package limit of {PACKAGE_BYTES_MAX}",
                self.file.display()
            )));
        }
        let package = Package::from_bytes(&read(&self.file)?).map_err(failed)?;
        let app = package.verify(&Schemas::builtin()).map_err(failed)?;
        let m = &app.manifest;
        let key = m.public_key().map_err(failed)?;
        if self.json {
            println!(
                "{}",
                json!({
                    "name": m.name, "version": m.version, "key": key.to_string(),
                    "module_hash": package.module_hash(), "read": m.read, "write": m.write,
                    "types": app.schemas.iter().filter(|t| t.name.starts_with(&format!("{}.", m.name))).map(|t| t.name.clone()).collect::<Vec<_>>(),
                })
            );
        } else {
            println!("{} {}: signed by {key}", m.name, m.version);
            println!("module blake3 {}", package.module_hash());
            println!("read: {}", m.read.join(", "));
            println!("write: {}", m.write.join(", "));
        }
        Ok(())
    }
}

/// The apps of a cell: install, list and remove them through the running daemon.
#[derive(FromArgs)]
#[argh(subcommand, name = "app")]
pub struct CellAppCmd {
    #[argh(subcommand)]
    command: CellAppSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum CellAppSub {
    Install(InstallCmd),
    List(ListCmd),
    Remove(RemoveCmd),
}

/// Install (or upgrade) an app from a package file: verified, then written to the cell's
/// chain so every app host node of the cell runs it; prints the operation id.
#[derive(FromArgs)]
#[argh(subcommand, name = "install")]
struct InstallCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// the package file (`exo app package`)
    #[argh(positional)]
    file: PathBuf,
}

/// The cell's apps and how they run on this node.
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
struct ListCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// print JSON, one object per app
    #[argh(switch)]
    json: bool,
}

/// Remove an app from the cell; prints the operation id.
#[derive(FromArgs)]
#[argh(subcommand, name = "remove")]
struct RemoveCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// the app's name
    #[argh(positional)]
    name: String,
}

/// Reads and checks a package file before it goes to the daemon.
fn read_package(file: &Path) -> Result<Vec<u8>, CliError> {
    let size = std::fs::metadata(file)
        .map_err(|e| failed(format!("cannot read {}: {e}", file.display())))?
        .len();
    if size > PACKAGE_BYTES_MAX as u64 {
        return Err(failed(format!(
            "{} is {size} bytes, over the package limit of {PACKAGE_BYTES_MAX}",
            file.display()
        )));
    }
    read(file)
}

impl CellAppCmd {
    pub fn run(self, dir: &crate::config::NodeDir) -> Result<(), CliError> {
        use exocore_protocol::app::{AppsRequest, AppsResponse};
        use exocore_protocol::envelope::Service;
        use exocore_protocol::wire;

        let node = dir.load_node()?;
        let (cell, request) = match &self.command {
            CellAppSub::Install(cmd) => {
                let package = read_package(&cmd.file)?;
                Package::from_bytes(&package)
                    .and_then(|p| p.verify(&Schemas::builtin()).map(|_| ()))
                    .map_err(failed)?;
                (&cmd.cell, AppsRequest::Install { package })
            }
            CellAppSub::List(cmd) => (&cmd.cell, AppsRequest::List),
            CellAppSub::Remove(cmd) => (
                &cmd.cell,
                AppsRequest::Remove {
                    name: cmd.name.clone(),
                },
            ),
        };
        let cell = dir.select_cell(cell.as_deref())?;
        let payload = wire::encode(&request).map_err(failed)?;
        let answer = super::local::request(&node, &cell, Service::Apps, payload)?;
        let response = wire::decode::<AppsResponse>(&answer)
            .map_err(|e| failed(format!("the daemon's answer does not decode: {e}")))?;
        match (response, &self.command) {
            (AppsResponse::Changed { operation }, _) => {
                println!("{}", crate::chain::OperationId::from_bytes(&operation));
            }
            (AppsResponse::List { apps }, CellAppSub::List(cmd)) if cmd.json => {
                for app in apps {
                    let key = exocore_protocol::identity::PublicKey::from_bytes(&app.key)
                        .map(|k| k.to_string())
                        .unwrap_or_default();
                    println!(
                        "{}",
                        json!({
                            "name": app.name, "version": app.version, "key": key,
                            "state": app.state, "starts": app.starts, "faults": app.faults,
                            "last_fault": app.last_fault,
                        })
                    );
                }
            }
            (AppsResponse::List { apps }, _) => {
                let rows: Vec<Vec<String>> = apps
                    .into_iter()
                    .map(|a| {
                        vec![
                            a.name,
                            a.version,
                            a.state,
                            a.faults.to_string(),
                            a.last_fault.unwrap_or_default(),
                        ]
                    })
                    .collect();
                super::table::print(&["NAME", "VERSION", "STATE", "FAULTS", "LAST FAULT"], &rows);
            }
        }
        Ok(())
    }
}
