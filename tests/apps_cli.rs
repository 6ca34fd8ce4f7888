//! `exo app new`, `package` and `verify` through the real binary: a scaffolded app packages
//! and verifies; tampered packages, mismatched keys, unknown trait types and invalid modules
//! are refused with one clear line.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{fails, ok};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn new_app_packages_and_verifies() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path();
    let out = ok(home, &["app", "new", "reminders", "--parent", path(home)]);
    let dir = home.join("reminders");
    assert_eq!(out.trim(), dir.display().to_string());
    for file in ["app.toml", "app.key", "reminders.wat", "schema.toml"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let mode = std::fs::metadata(dir.join("app.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // A second `new` does not overwrite it.
    let err = fails(
        home,
        &["app", "new", "reminders", "--parent", path(home)],
        1,
    );
    assert!(err.contains("cannot create"), "{err}");

    let out = ok(home, &["app", "package", path(&dir), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let file = report["file"].as_str().unwrap().to_string();
    assert!(file.ends_with("reminders-0.1.0.exoapp"), "{file}");
    let out = ok(home, &["app", "verify", &file, "--json"]);
    let verified: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["name"], "reminders");
    assert_eq!(verified["module_hash"], report["module_hash"]);
    // The secret key is not in the package.
    let secret = std::fs::read_to_string(dir.join("app.key")).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert!(!bytes
        .windows(secret.trim().len())
        .any(|w| w == secret.trim().as_bytes()));
}

#[test]
fn bad_names_and_bad_packages_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path();
    let err = fails(home, &["app", "new", "Bad-Name", "--parent", path(home)], 2);
    assert!(err.contains("app name `Bad-Name` is not valid"), "{err}");

    ok(home, &["app", "new", "notes", "--parent", path(home)]);
    let dir = home.join("notes");
    let package = home.join("notes.exoapp");
    ok(
        home,
        &["app", "package", path(&dir), "--out", path(&package)],
    );
    let bytes = std::fs::read(&package).unwrap();

    // One flipped bit in the module: the signature no longer verifies.
    let mut altered = bytes.clone();
    let at = altered.len() - 80;
    altered[at] ^= 0x10;
    std::fs::write(home.join("altered.exoapp"), &altered).unwrap();
    let err = fails(
        home,
        &["app", "verify", path(&home.join("altered.exoapp"))],
        1,
    );
    assert!(err.contains("signature does not verify"), "{err}");

    std::fs::write(home.join("garbage.exoapp"), b"hello").unwrap();
    let err = fails(
        home,
        &["app", "verify", path(&home.join("garbage.exoapp"))],
        1,
    );
    assert!(err.contains("not an Exocore app package"), "{err}");

    // A manifest asking for a trait type nobody declares.
    let manifest = std::fs::read_to_string(dir.join("app.toml")).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        manifest.replace("read = []", "read = [\"recipe\"]"),
    )
    .unwrap();
    let err = fails(home, &["app", "package", path(&dir)], 1);
    assert!(
        err.contains("read permission names trait type `recipe`"),
        "{err}"
    );
    std::fs::write(dir.join("app.toml"), &manifest).unwrap();

    // A module that fails validation.
    std::fs::write(
        dir.join("notes.wat"),
        r#"(module (memory (export "memory") 1) (func (export "init") (i32.const 1)))"#,
    )
    .unwrap();
    let err = fails(home, &["app", "package", path(&dir)], 1);
    assert!(err.contains("not valid WebAssembly"), "{err}");

    // Another app's key.
    ok(home, &["app", "new", "other", "--parent", path(home)]);
    std::fs::copy(home.join("other/app.key"), dir.join("app.key")).unwrap();
    let err = fails(home, &["app", "package", path(&dir)], 1);
    assert!(err.contains("app.key is the secret of"), "{err}");
}
