//! `exo cell chain info | check | export | import` on real node directories.

mod support;

use std::fs;
use std::path::Path;

use exo::chain::archive::{Reader, Record, Writer};
use exo::chain::{Block, EntryKey, IdGenerator, Operation};
use exocore_protocol::identity::{Keypair, PublicKey};
use support::{cell_of, exo, fails, ok};

fn info(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(dir, &["cell", "chain", "info", "--json"])).unwrap()
}

fn node_keypair(dir: &Path) -> Keypair {
    Keypair::from_secret_text(fs::read_to_string(dir.join("node.key")).unwrap().trim()).unwrap()
}

fn cell_keypair(dir: &Path, cell_id: &str) -> Keypair {
    let text = fs::read_to_string(dir.join("cells").join(cell_id).join("cell.key")).unwrap();
    Keypair::from_secret_text(text.trim()).unwrap()
}

#[test]
fn a_new_cell_starts_with_a_verified_genesis() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = cell_of(tmp.path(), 1);
    let info = info(&nodes[0].dir);
    assert_eq!(info["height"], 0);
    assert_eq!(info["pending_operations"], 0);
    assert_eq!(info["last_block"]["proposer"], "the cell key");
    let text = ok(&nodes[0].dir, &["cell", "chain", "info"]);
    assert!(text.contains("height       0"), "{text}");
    let out = ok(&nodes[0].dir, &["cell", "chain", "check"]);
    assert!(out.contains("chain is valid: 1 block(s)"), "{out}");
}

#[test]
fn a_node_without_the_chain_role_has_no_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    ok(&dir, &["node", "init", "--listen", "127.0.0.1:4100"]);
    ok(&dir, &["cell", "init", "--no-chain"]);
    assert!(!support::cell_dir(&dir).join("chain").exists());
    let err = fails(&dir, &["cell", "chain", "info"], 1);
    assert!(err.contains("no chain role"), "{err}");
}

/// An archive of the cell: its genesis, a block with one operation signed by `node`, and a
/// pending operation.
fn archive(dir: &Path, cell_id: &str, path: &Path) -> (Vec<u8>, Block) {
    let node = node_keypair(dir);
    let cell = cell_keypair(dir, cell_id);
    let cell_pk: PublicKey = cell_id.parse().unwrap();
    let export = path.with_extension("genesis");
    ok(dir, &["cell", "chain", "export", export.to_str().unwrap()]);
    let mut reader = Reader::new(fs::File::open(&export).unwrap()).unwrap();
    let Some(Record::Block(genesis)) = reader.next_record().unwrap() else {
        panic!("no genesis")
    };
    let key = EntryKey::from_cell_keypair(&cell);
    let mut ids = IdGenerator::new(&node.public(), 0);
    let committed = Operation::new_entry(
        &cell_pk,
        &key,
        ids.next(genesis.header.time_us + 1).unwrap(),
        &node,
        b"one",
    )
    .unwrap();
    let pending = Operation::new_entry(
        &cell_pk,
        &key,
        ids.next(genesis.header.time_us + 2).unwrap(),
        &node,
        b"two",
    )
    .unwrap();
    let mut block = Block::propose(
        &genesis.header,
        &node.public(),
        genesis.header.time_us + 3,
        vec![committed],
    )
    .unwrap();
    block.sign(&cell_pk, &node);
    let mut writer = Writer::new(Vec::new(), &cell_pk).unwrap();
    writer.block(&genesis).unwrap();
    writer.block(&block).unwrap();
    writer.pending(&pending).unwrap();
    let bytes = writer.finish().unwrap();
    fs::write(path, &bytes).unwrap();
    (bytes, block)
}

#[test]
fn import_then_export_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell_id) = cell_of(tmp.path(), 1);
    let dir = &nodes[0].dir;
    let file = tmp.path().join("chain.exo");
    let (_, block) = archive(dir, &cell_id, &file);

    let out = ok(dir, &["cell", "chain", "import", file.to_str().unwrap()]);
    assert!(
        out.contains("imported 1 block(s) (1 already here) and 1 new pending operation(s)"),
        "{out}"
    );
    let info = info(dir);
    assert_eq!(info["height"], 1);
    assert_eq!(info["pending_operations"], 1);
    assert_eq!(info["last_block"]["hash"], exo::chain::hex(&block.hash()));
    ok(dir, &["cell", "chain", "check"]);

    // Importing again changes nothing.
    let out = ok(dir, &["cell", "chain", "import", file.to_str().unwrap()]);
    assert!(
        out.contains("imported 0 block(s) (2 already here) and 0 new"),
        "{out}"
    );

    // Export gives back the same records.
    let again = tmp.path().join("again.exo");
    let out = ok(dir, &["cell", "chain", "export", again.to_str().unwrap()]);
    assert!(out.contains("exported 2 block(s) and 1 pending"), "{out}");
    assert_eq!(fs::read(&again).unwrap(), fs::read(&file).unwrap());
}

#[test]
fn bad_archives_are_refused_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, cell_id) = cell_of(tmp.path(), 1);
    let dir = &nodes[0].dir;
    let file = tmp.path().join("chain.exo");
    let (bytes, _) = archive(dir, &cell_id, &file);
    let before = info(dir);

    // Cut short.
    let cut = tmp.path().join("cut.exo");
    fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let err = fails(dir, &["cell", "chain", "import", cut.to_str().unwrap()], 1);
    assert!(err.contains("cut short"), "{err}");

    // A block whose signature was tampered with: find the block 1 signature bytes and flip one.
    let mut tampered = bytes.clone();
    let at = bytes.len() - 5 - 200;
    tampered[at] ^= 0x40;
    let bad = tmp.path().join("bad.exo");
    fs::write(&bad, &tampered).unwrap();
    let run = exo(dir, &["cell", "chain", "import", bad.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);

    // An archive of another cell.
    let (others, other_id) = cell_of(&tmp.path().join("other"), 1);
    let foreign = tmp.path().join("foreign.exo");
    archive(&others[0].dir, &other_id, &foreign);
    let err = fails(
        dir,
        &["cell", "chain", "import", foreign.to_str().unwrap()],
        1,
    );
    assert!(err.contains("not of `home`"), "{err}");

    // Not an archive at all.
    let err = fails(
        dir,
        &[
            "cell",
            "chain",
            "import",
            dir.join("node.toml").to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("not a chain archive"), "{err}");

    assert_eq!(info(dir)["height"], before["height"]);
    ok(dir, &["cell", "chain", "check"]);
}
