//! The `exo` command line: parsing, logging set-up, dispatch, and how failures are shown.
//!
//! Every failure prints one line, `error: ...`, to stderr and exits 1; a command line that
//! does not parse prints usage and exits 2. Nothing here panics on user input.

mod app;
mod cell;
mod chain;
mod config;
mod daemon;
mod discovery;
mod error;
mod join;
mod keys;
mod local;
pub mod members;
mod node;
mod ping;
mod status;
mod store;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;

use crate::config::NodeDir;
pub use error::CliError;

/// Exocore: your personal cloud, on machines you own.
#[derive(FromArgs)]
struct Exo {
    /// node directory (default: $EXO_DIR, else ~/.exocore)
    #[argh(option, short = 'd')]
    dir: Option<PathBuf>,

    /// log level or filter, e.g. `debug` or `exo=debug,warn` (default: $EXO_LOG, else info)
    #[argh(option, short = 'l')]
    log: Option<String>,

    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Version(VersionCmd),
    Node(node::NodeCmd),
    Config(config::ConfigCmd),
    Cell(cell::CellCmd),
    Keys(keys::KeysCmd),
    Daemon(daemon::DaemonCmd),
    Store(store::StoreCmd),
    Status(status::StatusCmd),
    Discovery(discovery::DiscoveryCmd),
    App(app::AppCmd),
}

/// Print the version of this binary.
#[derive(FromArgs)]
#[argh(subcommand, name = "version")]
struct VersionCmd {}

/// Runs `exo` with the process's arguments and environment; returns the exit code.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (program, rest) = match args.split_first() {
        Some((program, rest)) => (program.as_str(), rest),
        None => ("exo", &[][..]),
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let name = std::path::Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "exo".into());
    let exo = match Exo::from_args(&[&name], &rest) {
        Ok(exo) => exo,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!("{}", early.output);
                    ExitCode::from(2)
                }
            };
        }
    };
    match run(exo) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(exo: Exo) -> Result<(), CliError> {
    let log = exo
        .log
        .or_else(|| std::env::var("EXO_LOG").ok())
        .unwrap_or_else(|| "info".into());
    init_logs(&log)?;
    let dir = NodeDir::new(node_dir(exo.dir)?);
    match exo.command {
        Command::Version(_) => {
            println!(
                "exo {} ({} {})",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::consts::OS
            );
            Ok(())
        }
        Command::Node(cmd) => cmd.run(&dir),
        Command::Config(cmd) => cmd.run(&dir),
        Command::Cell(cmd) => cmd.run(&dir),
        Command::Keys(cmd) => cmd.run(),
        Command::Daemon(cmd) => cmd.run(&dir),
        Command::Status(cmd) => cmd.run(&dir),
        Command::Store(cmd) => cmd.run(&dir),
        Command::Discovery(cmd) => cmd.run(),
        Command::App(cmd) => cmd.run(),
    }
}

/// `--dir`, else `$EXO_DIR`, else `~/.exocore`.
fn node_dir(flag: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(dir) = flag.or_else(|| std::env::var_os("EXO_DIR").map(PathBuf::from)) {
        return Ok(dir);
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".exocore")),
        _ => Err(CliError::BadArgument(
            "HOME is not set: give the node directory with --dir or EXO_DIR".into(),
        )),
    }
}

fn init_logs(filter: &str) -> Result<(), CliError> {
    use tracing_subscriber::prelude::*;
    let targets: tracing_subscriber::filter::Targets = filter.parse().map_err(|_| {
        CliError::BadArgument(format!(
            "log filter `{filter}` is not a level (error, warn, info, debug, trace, off) or a list like `exo=debug,warn`"
        ))
    })?;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // A second initialisation (tests calling `run` twice) is harmless; ignore it.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(targets))
        .try_init();
    Ok(())
}
