//! `exo config ...`: read and change `node.toml`, from a script or an editor.

use std::io::{BufRead, IsTerminal, Write};
use std::process::Command;

use argh::FromArgs;

use super::CliError;
use crate::config::{toml_file, Error, NodeDir};

/// Read and change this node's settings (node.toml).
#[derive(FromArgs)]
#[argh(subcommand, name = "config")]
pub struct ConfigCmd {
    #[argh(subcommand)]
    command: ConfigSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum ConfigSub {
    Print(PrintCmd),
    Validate(ValidateCmd),
    Edit(EditCmd),
    Get(GetCmd),
    Set(SetCmd),
    Unset(UnsetCmd),
}

/// Print node.toml.
#[derive(FromArgs)]
#[argh(subcommand, name = "print")]
struct PrintCmd {}

/// Check node.toml, node.key and every cell's files.
#[derive(FromArgs)]
#[argh(subcommand, name = "validate")]
struct ValidateCmd {}

/// Edit node.toml in $VISUAL or $EDITOR (default vi); an invalid result is not saved.
#[derive(FromArgs)]
#[argh(subcommand, name = "edit")]
struct EditCmd {}

/// Print one setting, e.g. `exo config get listen`.
#[derive(FromArgs)]
#[argh(subcommand, name = "get")]
struct GetCmd {
    /// the setting, e.g. `listen`
    #[argh(positional)]
    key: String,
}

/// Change one setting, e.g. `exo config set listen 0.0.0.0:3330`. VALUE is read as TOML
/// (`3330`, `true`, `["a:1", "b:2"]`), or else as a string.
#[derive(FromArgs)]
#[argh(subcommand, name = "set")]
struct SetCmd {
    /// the setting, e.g. `name` or `addresses`
    #[argh(positional)]
    key: String,
    /// its new value
    #[argh(positional)]
    value: String,
}

/// Remove one setting, so it takes its default.
#[derive(FromArgs)]
#[argh(subcommand, name = "unset")]
struct UnsetCmd {
    /// the setting, e.g. `addresses`
    #[argh(positional)]
    key: String,
}

impl ConfigCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        match self.command {
            ConfigSub::Print(_) => {
                print!("{}", dir.read_node_text()?);
                Ok(())
            }
            ConfigSub::Validate(_) => {
                let node = dir.load_node()?;
                let cells = dir.cells()?;
                println!(
                    "configuration is valid: node `{}`, {} cell(s)",
                    node.config.name,
                    cells.len()
                );
                Ok(())
            }
            ConfigSub::Edit(_) => edit(dir),
            ConfigSub::Get(cmd) => get(dir, &cmd.key),
            ConfigSub::Set(cmd) => change(dir, &cmd.key, |text| {
                toml_file::set(text, &cmd.key, &cmd.value)
            }),
            ConfigSub::Unset(cmd) => change(dir, &cmd.key, |text| toml_file::unset(text, &cmd.key)),
        }
    }
}

fn get(dir: &NodeDir, key: &str) -> Result<(), CliError> {
    let config = dir.load_node()?.config;
    let mut value = toml::Value::try_from(&config)
        .map_err(|e| CliError::BadArgument(format!("cannot read settings: {e}")))?;
    // Sections at their defaults are left out of node.toml; `get` shows them anyway.
    if let toml::Value::Table(table) = &mut value {
        let sections = [
            ("chain", toml::Value::try_from(&config.chain)),
            ("store", toml::Value::try_from(&config.store)),
        ];
        for (name, section) in sections {
            if let Ok(section) = section {
                table.entry(name).or_insert(section);
            }
        }
    }
    for part in key.split('.') {
        value = value.get(part).cloned().ok_or_else(|| {
            CliError::BadArgument(format!("no setting `{key}` (see `exo config print`)"))
        })?;
    }
    match value {
        toml::Value::String(text) => println!("{text}"),
        other => println!("{other}"),
    }
    Ok(())
}

/// Applies a text edit to node.toml, then validates and saves it. The file on disk need not
/// be valid before (this is how a broken file gets repaired), but must be after.
fn change(
    dir: &NodeDir,
    key: &str,
    edit: impl FnOnce(&str) -> Result<String, toml_file::EditError>,
) -> Result<(), CliError> {
    if key == "id" {
        return Err(Error::ReadOnly(key.into()).into());
    }
    let keypair = dir.load_node_keypair()?;
    let text = dir.read_node_text()?;
    let edited = edit(&text).map_err(|error| Error::Edit {
        key: key.into(),
        error,
    })?;
    dir.save_node_text(&keypair.public(), &edited)?;
    Ok(())
}

fn edit(dir: &NodeDir) -> Result<(), CliError> {
    let keypair = dir.load_node_keypair()?;
    let mut text = dir.read_node_text()?;
    let scratch = dir
        .root()
        .join(format!(".node.toml.edit-{}", std::process::id()));
    let result = loop {
        if let Err(e) = std::fs::write(&scratch, &text) {
            break Err(Error::io("write", &scratch)(e).into());
        }
        if let Err(err) = run_editor(&scratch) {
            break Err(err);
        }
        text = match std::fs::read_to_string(&scratch) {
            Ok(text) => text,
            Err(e) => break Err(Error::io("read", &scratch)(e).into()),
        };
        match dir.save_node_text(&keypair.public(), &text) {
            Ok(_) => {
                println!("saved {}", dir.node_toml().display());
                break Ok(());
            }
            Err(err) if std::io::stdin().is_terminal() => {
                eprintln!("error: {err}");
                if !ask("edit again? [Y/n] ") {
                    break Err(CliError::Editor("not saved: node.toml is unchanged".into()));
                }
            }
            Err(err) => break Err(CliError::Editor(format!("{err}; node.toml is unchanged"))),
        }
    };
    let _ = std::fs::remove_file(&scratch);
    result
}

fn run_editor(path: &std::path::Path) -> Result<(), CliError> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    // Through the shell, so EDITOR may carry arguments, e.g. "code --wait".
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|e| CliError::Editor(format!("cannot start editor `{editor}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Editor(format!(
            "editor `{editor}` failed ({status}); node.toml is unchanged"
        )))
    }
}

fn ask(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    match std::io::stdin().lock().read_line(&mut answer) {
        Ok(0) | Err(_) => return false,
        Ok(_) => {}
    }
    !answer.trim().eq_ignore_ascii_case("n")
}
