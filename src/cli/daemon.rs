//! `exo daemon`: run this node in the foreground.

use argh::FromArgs;

use super::CliError;
use crate::config::NodeDir;

/// Run this node's services in the foreground until SIGINT or SIGTERM.
#[derive(FromArgs)]
#[argh(subcommand, name = "daemon")]
pub struct DaemonCmd {}

impl DaemonCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        crate::daemon::run(dir)?;
        Ok(())
    }
}
