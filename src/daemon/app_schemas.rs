//! The trait types of a cell's installed apps, as its entity index uses them: the schema
//! files of the installed apps, kept next to the index (`store/app-schemas.json`, a JSON list
//! of TOML texts) so the index opens with them before the chain is read.
//!
//! Derived data: the chain's app changes are the truth. The apps service compares what it
//! folds from the chain with what the index opened with, rewrites this file when they differ,
//! and has the supervisor restart the cell's services, so the index reopens with the new
//! schemas (a mapping change rebuilds it, `spec/store.md`). A missing or unreadable file
//! only costs that one restart.

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::store::Schemas;

/// The file, in a cell's folder.
fn file(cell_dir: &Path) -> PathBuf {
    cell_dir.join("store").join("app-schemas.json")
}

/// The built-in types and those of the apps installed when the file was last written.
/// A file that does not read or parse counts as no apps (logged).
pub fn load(cell_dir: &Path, cell_name: &str) -> Schemas {
    let mut schemas = Schemas::builtin();
    let path = file(cell_dir);
    let texts: Vec<String> = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            warn!(
                "cell `{cell_name}`: {} is not a list of schema files ({e}): the installed \
                 apps' schemas are read from the chain again",
                path.display()
            );
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    for text in texts {
        if let Err(e) = schemas.add_toml(&text) {
            warn!(
                "cell `{cell_name}`: an app schema in {} is refused ({e}): the installed \
                 apps' schemas are read from the chain again",
                path.display()
            );
        }
    }
    schemas
}

/// Records the schema files of the installed apps (replacing the file atomically).
pub fn save(cell_dir: &Path, texts: &[String]) -> Result<(), String> {
    let path = file(cell_dir);
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let json = serde_json::to_string(texts).map_err(|e| e.to_string())?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, json).map_err(fail)?;
    std::fs::rename(&partial, &path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "[[trait]]\nname = \"notes.note\"\n[[trait.field]]\nname = \"title\"\ntype = \"string\"\nindexed = true\n";

    #[test]
    fn saved_schemas_load_with_the_builtin_ones() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "c"), Schemas::builtin());
        save(dir.path(), &[NOTE.to_string()]).unwrap();
        let loaded = load(dir.path(), "c");
        assert!(loaded.get("notes.note").is_some());
        assert!(loaded.get("task").is_some());
        save(dir.path(), &[]).unwrap();
        assert_eq!(load(dir.path(), "c"), Schemas::builtin());
    }

    #[test]
    fn a_damaged_file_counts_as_no_apps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        std::fs::write(file(dir.path()), "not json").unwrap();
        assert_eq!(load(dir.path(), "c"), Schemas::builtin());
        std::fs::write(file(dir.path()), "[\"[[trait]]\\nname = 1\"]").unwrap();
        assert_eq!(load(dir.path(), "c"), Schemas::builtin());
    }
}
