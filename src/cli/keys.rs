//! `exo keys ...`: key utilities for scripts.

use argh::FromArgs;
use exocore_protocol::identity::Keypair;

use super::CliError;

/// Key utilities.
#[derive(FromArgs)]
#[argh(subcommand, name = "keys")]
pub struct KeysCmd {
    #[argh(subcommand)]
    command: KeysSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum KeysSub {
    Generate(GenerateCmd),
}

/// Print a new ed25519 keypair: its secret, public key and fingerprint.
#[derive(FromArgs)]
#[argh(subcommand, name = "generate")]
struct GenerateCmd {
    /// print JSON instead of `key = "value"` lines
    #[argh(switch)]
    json: bool,
}

impl KeysCmd {
    pub fn run(self) -> Result<(), CliError> {
        let KeysSub::Generate(cmd) = self.command;
        let keypair = Keypair::generate();
        let public = keypair.public();
        if cmd.json {
            let value = serde_json::json!({
                "public_key": public.to_string(),
                "secret_key": keypair.secret_text(),
                "fingerprint": public.fingerprint(),
            });
            println!("{value}");
        } else {
            println!("public_key = \"{public}\"");
            println!("secret_key = \"{}\"", keypair.secret_text());
            println!("fingerprint = \"{}\"", public.fingerprint());
        }
        Ok(())
    }
}
