//! Errors of `exo` commands, each with the exit code a script can test.

use std::fmt;

use crate::config;
use crate::daemon;

/// A command that failed.
#[derive(Debug)]
pub enum CliError {
    /// A node file problem.
    Config(config::Error),
    /// An argument that parses but makes no sense (exit code 2, like a usage error).
    BadArgument(String),
    /// `config edit` could not run the editor, or the result was refused.
    Editor(String),
    /// The daemon could not start or stopped on an error.
    Daemon(daemon::Error),
    /// The command ran but what it checks failed (e.g. a node is unreachable).
    Failed(String),
    /// A version check failed (`--expect`): the entity changed since it was read (exit code
    /// 3, so a script can read it again and retry).
    Conflict(String),
}

impl CliError {
    /// 2 for bad arguments, 3 for a failed version check, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadArgument(_) => 2,
            CliError::Conflict(_) => 3,
            _ => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Config(err) => write!(f, "{err}"),
            CliError::BadArgument(message) => write!(f, "{message}"),
            CliError::Editor(message) => write!(f, "{message}"),
            CliError::Daemon(err) => write!(f, "{err}"),
            CliError::Failed(message) | CliError::Conflict(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<config::Error> for CliError {
    fn from(err: config::Error) -> CliError {
        CliError::Config(err)
    }
}

impl From<daemon::Error> for CliError {
    fn from(err: daemon::Error) -> CliError {
        CliError::Daemon(err)
    }
}
