//! `exo cell chain ...`: look at, check, export and import a cell's chain on this node.
//!
//! These commands open the chain's LMDB files directly, which LMDB allows next to a running
//! daemon for reading (`info`, `check`, `export`); `import` writes and should run with the
//! daemon stopped, so that its replication engine starts from what was imported.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use argh::FromArgs;
use exocore_protocol::admin::{AdminRequest, AdminResponse};
use exocore_protocol::error::Error as ProtocolError;

use super::CliError;
use crate::chain::archive::{self, Record};
use crate::chain::{
    chain_dir, hex, Block, ChainStore, Membership, OperationId, BLOCK_SIZE_BYTES_MAX,
};
use crate::config::{Cell, Node, NodeDir, Role};
use crate::engine::view::membership_at;

/// The chain of a cell on this node.
#[derive(FromArgs)]
#[argh(subcommand, name = "chain")]
pub struct ChainCmd {
    #[argh(subcommand)]
    command: ChainSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum ChainSub {
    Info(InfoCmd),
    Check(CheckCmd),
    Export(ExportCmd),
    Import(ImportCmd),
    Append(AppendCmd),
}

/// Write TEXT (or stdin with `-`) as a new chain entry through the running daemon; prints the
/// operation id once it is durable. A low-level tool: the store's mutations build on entries.
#[derive(FromArgs)]
#[argh(subcommand, name = "append")]
struct AppendCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// the entry's text, or `-` to read it from standard input
    #[argh(positional)]
    text: String,
}

/// Height, size, pending operations and last block of the chain.
#[derive(FromArgs)]
#[argh(subcommand, name = "info")]
struct InfoCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// print JSON
    #[argh(switch)]
    json: bool,
}

/// Verify every block and signature; fails on the first bad block.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct CheckCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
}

/// Write the chain and pending operations to FILE (format: spec/chain.md section 12).
#[derive(FromArgs)]
#[argh(subcommand, name = "export")]
struct ExportCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// the file to write
    #[argh(positional)]
    file: PathBuf,
}

/// Verify and add the blocks and pending operations of an archive FILE to this chain.
#[derive(FromArgs)]
#[argh(subcommand, name = "import")]
struct ImportCmd {
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
    /// the archive to read
    #[argh(positional)]
    file: PathBuf,
}

impl ChainCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        match self.command {
            ChainSub::Info(cmd) => info(&node, &dir.select_cell(cmd.cell.as_deref())?, cmd.json),
            ChainSub::Check(cmd) => check(&node, &dir.select_cell(cmd.cell.as_deref())?),
            ChainSub::Export(cmd) => {
                export(&node, &dir.select_cell(cmd.cell.as_deref())?, cmd.file)
            }
            ChainSub::Import(cmd) => {
                import(&node, &dir.select_cell(cmd.cell.as_deref())?, cmd.file)
            }
            ChainSub::Append(cmd) => {
                append(&node, &dir.select_cell(cmd.cell.as_deref())?, cmd.text)
            }
        }
    }
}

fn failed(err: impl std::fmt::Display) -> CliError {
    CliError::Failed(err.to_string())
}

/// Opens the cell's chain; refuses on a node without the chain role.
pub fn open(node: &Node, cell: &Cell) -> Result<ChainStore, CliError> {
    if !cell.roles_of(&node.config.id).contains(&Role::Chain) {
        return Err(failed(format!(
            "this node does not hold the chain of cell `{}` (it has no chain role)",
            cell.config.name
        )));
    }
    ChainStore::open(
        &chain_dir(&cell.dir),
        &cell.config.id,
        node.config.chain.map_size_bytes(),
    )
    .map_err(failed)
}

/// Operations read from the store at a time, so a large pending store is not loaded at once.
const PAGE: usize = 1024;

/// Calls `f` on every pending operation, in id order, a page at a time.
fn for_each_pending(
    store: &ChainStore,
    mut f: impl FnMut(&crate::chain::Operation) -> Result<(), CliError>,
) -> Result<(), CliError> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let mut from = Unbounded;
    loop {
        let page = store
            .pending_range((from, Included(OperationId::MAX)), PAGE)
            .map_err(failed)?;
        for op in &page {
            f(op)?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => from = Excluded(last.id),
            _ => return Ok(()),
        }
    }
}

fn info(node: &Node, cell: &Cell, json: bool) -> Result<(), CliError> {
    let store = open(node, cell)?;
    let height = store.height().map_err(failed)?;
    let pending = store.pending_count().map_err(failed)?;
    let disk = store.disk_size_bytes().map_err(failed)?;
    let last = store.last_block().map_err(failed)?;
    let membership = membership_at(
        &store,
        &Membership::initial(&cell.config),
        height.unwrap_or(0),
    )
    .map_err(failed)?;
    let proposer_name = |block: &Block| {
        cell.config
            .nodes
            .iter()
            .find(|n| n.id == block.header.proposer)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| {
                if block.header.proposer == cell.config.id {
                    "the cell key".into()
                } else {
                    "?".into()
                }
            })
    };
    if json {
        let value = serde_json::json!({
            "cell": cell.config.name,
            "height": height,
            "pending_operations": pending,
            "disk_bytes": disk,
            "map_bytes": store.map_size_bytes(),
            "membership_version": membership.version(),
            "members": membership.members().len(),
            "chain_nodes": membership.chain_nodes().len(),
            "quorum": membership.quorum(),
            "last_block": last.as_ref().map(|b| serde_json::json!({
                "height": b.height(),
                "hash": hex(&b.hash()),
                "operations": b.operations.len(),
                "time_us": b.header.time_us,
                "proposer": proposer_name(b),
                "signatures": b.signatures.len(),
            })),
        });
        println!("{value}");
        return Ok(());
    }
    println!("cell         {} ({})", cell.config.name, cell.config.id);
    match (&height, &last) {
        (Some(height), Some(block)) => {
            println!("height       {height}");
            println!(
                "last block   {} ({} operation(s), {} signature(s), proposed by {})",
                hex(&block.hash()),
                block.operations.len(),
                block.signatures.len(),
                proposer_name(block)
            );
        }
        _ => println!("height       none: no genesis block yet"),
    }
    println!("pending      {pending} operation(s)");
    println!(
        "membership   version {}, {} member(s), {} chain node(s), quorum {}",
        membership.version(),
        membership.members().len(),
        membership.chain_nodes().len(),
        membership.quorum()
    );
    println!(
        "size         {:.1} MiB on disk, map {} MiB",
        disk as f64 / (1 << 20) as f64,
        store.map_size_bytes() >> 20
    );
    Ok(())
}

fn check(node: &Node, cell: &Cell) -> Result<(), CliError> {
    let store = open(node, cell)?;
    let initial = Membership::initial(&cell.config);
    let count = store
        .verify_all(&initial)
        .map_err(|e| failed(format!("the chain is damaged: {e}")))?;
    let height = store.height().map_err(failed)?.unwrap_or(0);
    let membership = membership_at(&store, &initial, height).map_err(failed)?;
    let mut pending = 0u64;
    for_each_pending(&store, |op| {
        pending += 1;
        op.verify(&membership)
            .map_err(|e| failed(format!("pending operation {}: {e}", op.id)))
    })?;
    println!("chain is valid: {count} block(s) and {pending} pending operation(s) verified");
    Ok(())
}

fn export(node: &Node, cell: &Cell, file: PathBuf) -> Result<(), CliError> {
    let store = open(node, cell)?;
    let io = |e: std::io::Error| failed(format!("cannot write {}: {e}", file.display()));
    let out = File::create(&file).map_err(io)?;
    let mut writer = archive::Writer::new(BufWriter::new(out), &cell.config.id).map_err(io)?;
    let (mut blocks, mut next) = (0u64, 0u64);
    loop {
        let batch = store
            .blocks(next, 256, BLOCK_SIZE_BYTES_MAX)
            .map_err(failed)?;
        let Some(last) = batch.last() else { break };
        next = last.height() + 1;
        for block in &batch {
            writer.block(block).map_err(io)?;
            blocks += 1;
        }
    }
    let mut pending = 0u64;
    for_each_pending(&store, |op| {
        pending += 1;
        writer.pending(op).map_err(io)
    })?;
    writer
        .finish()
        .map_err(io)?
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    println!(
        "exported {blocks} block(s) and {pending} pending operation(s) to {}",
        file.display()
    );
    Ok(())
}

fn import(node: &Node, cell: &Cell, file: PathBuf) -> Result<(), CliError> {
    let store = open(node, cell)?;
    let read = || -> Result<archive::Reader<BufReader<File>>, CliError> {
        let input = File::open(&file)
            .map_err(|e| failed(format!("cannot read {}: {e}", file.display())))?;
        archive::Reader::new(BufReader::new(input))
            .map_err(|e| failed(format!("{}: {e}", file.display())))
    };
    // First pass: the whole file must decode, up to its end record, before anything is
    // written; a truncated or garbled archive adds nothing.
    let mut reader = read()?;
    while reader
        .next_record()
        .map_err(|e| failed(format!("{}: {e}", file.display())))?
        .is_some()
    {}
    let mut reader = read()?;
    if reader.cell() != &cell.config.id {
        return Err(failed(format!(
            "{} is an archive of cell {}, not of `{}`",
            file.display(),
            reader.cell(),
            cell.config.name
        )));
    }
    // The membership in force at each block: from the initial one, with the changes of the
    // blocks before it (the archive's blocks come in height order from the genesis).
    let mut membership = Membership::initial(&cell.config);
    let (mut added, mut known, mut pending_added) = (0u64, 0u64, 0u64);
    let mut batch = Vec::new();
    while let Some(record) = reader
        .next_record()
        .map_err(|e| failed(format!("{}: {e}", file.display())))?
    {
        match record {
            Record::Block(block) => {
                let height = block.height();
                if let Some(ours) = store.get_header(height).map_err(failed)? {
                    if ours.hash() != block.header.hash() {
                        return Err(failed(format!(
                            "the archive's block at height {height} differs from this chain's: a fork; nothing after it was imported"
                        )));
                    }
                    known += 1;
                    membership.apply_block(&block);
                    continue;
                }
                let verified = match height.checked_sub(1) {
                    None => block.verify_genesis(&cell.config.id),
                    Some(previous) => match store.get_header(previous).map_err(failed)? {
                        Some(previous) => block.verify(&previous, &membership),
                        None => {
                            return Err(failed(format!(
                                "the archive skips from height {} to {height}",
                                previous
                            )))
                        }
                    },
                };
                verified.map_err(|e| failed(format!("block at height {height} refused: {e}")))?;
                store.append_block(&block).map_err(failed)?;
                membership.apply_block(&block);
                added += 1;
            }
            Record::Pending(op) => {
                op.verify(&membership)
                    .map_err(|e| failed(format!("pending operation {} refused: {e}", op.id)))?;
                batch.push(op);
                if batch.len() >= PAGE {
                    pending_added += store.put_pending(&batch).map_err(failed)?.added.len() as u64;
                    batch.clear();
                }
            }
        }
    }
    pending_added += store.put_pending(&batch).map_err(failed)?.added.len() as u64;
    println!("imported {added} block(s) ({known} already here) and {pending_added} new pending operation(s)");
    Ok(())
}

fn append(node: &Node, cell: &Cell, text: String) -> Result<(), CliError> {
    let payload = if text == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| failed(format!("cannot read standard input: {e}")))?;
        bytes
    } else {
        text.into_bytes()
    };
    let request = AdminRequest::AppendEntry { payload };
    let local = super::local::address(node.config.listen);
    match smol::block_on(super::local::admin(node, cell, &request)) {
        Ok(AdminResponse::Appended { operation }) => {
            println!("{}", OperationId::from_bytes(&operation));
            Ok(())
        }
        Ok(other) => Err(failed(format!(
            "unexpected answer from the daemon: {other:?}"
        ))),
        Err(ProtocolError::Connect(err)) => Err(failed(format!(
            "no daemon answers on {local} ({err}): start it with `exo daemon`"
        ))),
        Err(err) => Err(failed(format!("the daemon refused the entry: {err}"))),
    }
}
