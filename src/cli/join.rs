//! `exo cell join` (on the new node) and `exo cell node add` (on a member): joining a cell by
//! PIN through a rendezvous server, or by exchanging a request and an answer file.
//!
//! The exchange itself is `crate::join`'s state machines; this file moves their bytes, asks
//! the user, calls [`super::members::add_node`] and installs the answer.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use argh::FromArgs;
use rand_core::OsRng;

use super::{members, CliError};
use crate::config::atomic::{self, PUBLIC_MODE, SECRET_MODE};
use crate::config::{Cell, CellNode, Node, NodeDir, Role};
use crate::discovery::client::{ClientError, Rendezvous};
use crate::join::message::DOCUMENT_BYTES_MAX;
use crate::join::{
    roles_need_secret, Answer, JoinError, Joiner, JoinerEvent, Member, MemberEvent, Message, Pin,
    Request,
};

/// How long the member waits for each message of the joining node, which answers at once.
const PEER_STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Join a cell: show a PIN to type on a member node (`exo cell node add --pin`), or exchange
/// files with a member (--request, then --answer).
#[derive(FromArgs)]
#[argh(subcommand, name = "join")]
pub struct JoinCmd {
    /// hold and verify the cell's chain
    #[argh(switch)]
    chain: bool,
    /// index the cell's entities and answer queries (receives the cell's secret)
    #[argh(switch)]
    store: bool,
    /// run the cell's apps (receives the cell's secret)
    #[argh(switch)]
    app_host: bool,
    /// rendezvous server HOST:PORT (default: `discovery` in node.toml)
    #[argh(option)]
    discovery: Option<String>,
    /// no rendezvous server: write a join request to this file, for a member's
    /// `exo cell node add --request FILE --answer OUT`
    #[argh(option)]
    request: Option<PathBuf>,
    /// install the answer file a member wrote with `exo cell node add --answer`
    #[argh(option)]
    answer: Option<PathBuf>,
}

/// Admit a node into the cell: by the PIN `exo cell join` shows on it, by its request file,
/// or by its key (--id, --name, --address, --roles; then copy this node's cell.toml to it).
#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
pub struct NodeAddCmd {
    /// the new node's public key (`exo config get id` on it), to add it without a join
    #[argh(option)]
    id: Option<String>,
    /// with --id: the new node's name in the cell
    #[argh(option)]
    name: Option<String>,
    /// with --id: where other nodes can reach it (`host:port`); repeat for several
    #[argh(option)]
    address: Vec<String>,
    /// with --id: its roles, comma-separated among chain, store, app-host, or `none`
    /// (default: none, a client)
    #[argh(option, default = "String::from(\"none\")")]
    roles: String,
    /// the PIN shown by `exo cell join` on the joining node, e.g. 42-817-305
    #[argh(option)]
    pin: Option<String>,
    /// the request file written by `exo cell join --request` (instead of a PIN)
    #[argh(option)]
    request: Option<PathBuf>,
    /// with --request: where to write the answer for the joining node
    #[argh(option)]
    answer: Option<PathBuf>,
    /// admit without asking (for scripts)
    #[argh(switch)]
    yes: bool,
    /// rendezvous server HOST:PORT (default: `discovery` in node.toml)
    #[argh(option)]
    discovery: Option<String>,
    /// the cell, by name or id (default: the only one)
    #[argh(option)]
    cell: Option<String>,
}

fn failed(err: impl std::fmt::Display) -> CliError {
    CliError::Failed(err.to_string())
}

fn usage(message: &str) -> CliError {
    CliError::BadArgument(message.to_string())
}

/// `--discovery`, else node.toml's `discovery`.
fn discovery_address(flag: Option<String>, node: &Node) -> Result<String, CliError> {
    let address = flag.or_else(|| node.config.discovery.clone()).ok_or_else(|| {
        usage("no rendezvous server: give --discovery HOST:PORT or set one with `exo config set discovery HOST:PORT` (without one, exchange files with --request and --answer)")
    })?;
    crate::config::names::check_address(&address)
        .map_err(|e| usage(&format!("--discovery: {e}")))?;
    Ok(address)
}

impl JoinCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        let node = dir.load_node()?;
        let roles = Role::chosen(self.chain, self.store, self.app_host);
        if let Some(answer) = self.answer {
            if self.request.is_some() || !roles.is_empty() || self.discovery.is_some() {
                return Err(usage(
                    "--answer installs a member's answer and takes no other option",
                ));
            }
            let Message::Answer(answer) = read_document(&answer)? else {
                return Err(failed(format!(
                    "{} is not a join answer (a member writes one with `exo cell node add --request FILE --answer OUT`)",
                    answer.display()
                )));
            };
            let cell = install(dir, &node, &answer)?;
            print_joined(&node, &cell);
            println!("delete the answer file now that it is installed");
            return Ok(());
        }
        let request = Request::new(
            &node.keypair,
            node.config.name.clone(),
            node.config.addresses.clone(),
            roles,
        );
        if let Some(path) = self.request {
            if self.discovery.is_some() {
                return Err(usage(
                    "--request writes a file and uses no rendezvous server",
                ));
            }
            write_new(&path, &Message::Request(request).to_json(), PUBLIC_MODE)?;
            println!(
                "wrote the join request of node `{}` to {}",
                node.config.name,
                path.display()
            );
            println!("  fingerprint  {}", node.config.id.fingerprint());
            println!("next: give it to a member node of the cell, which runs");
            println!(
                "  exo cell node add --request {} --answer ANSWER",
                path.display()
            );
            println!("then bring ANSWER back here and run");
            println!("  exo cell join --answer ANSWER");
            return Ok(());
        }
        let address = discovery_address(self.discovery, &node)?;
        if request.roles.is_empty() {
            eprintln!(
                "note: no role asked (--chain, --store, --app-host): this node joins as a client"
            );
        }
        smol::block_on(join_by_pin(dir, &node, request, &address))
    }
}

async fn join_by_pin(
    dir: &NodeDir,
    node: &Node,
    request: Request,
    address: &str,
) -> Result<(), CliError> {
    let mut server = Rendezvous::connect(address).await.map_err(failed)?;
    let (slot, ttl_secs) = server.open().await.map_err(failed)?;
    let pin =
        Pin::generate(slot).map_err(|e| failed(format!("no random numbers for the PIN: {e}")))?;
    println!("PIN: {pin}");
    println!("on a member node of the cell, run:  exo cell node add --pin {pin}");
    println!(
        "this node: `{}`, fingerprint {} (the member will see it)",
        node.config.name,
        node.config.id.fingerprint()
    );
    let _ = std::io::stdout().flush();
    eprintln!(
        "waiting for a member (the PIN works once, for {} min)...",
        ttl_secs.div_ceil(60)
    );
    server.wait_peer().await.map_err(failed)?;
    eprintln!("a member connected; checking the PIN...");
    let mut joiner = Joiner::new(pin, request);
    relay(&mut server, joiner.start(OsRng).map_err(failed)?).await;
    loop {
        let bytes = server.receive(None).await.map_err(|e| match e {
            ClientError::PeerLeft => {
                failed("the member disconnected before the join finished; nothing was installed")
            }
            other => failed(other),
        })?;
        let step = joiner.receive(&bytes).map_err(joiner_error)?;
        for message in step.send {
            relay(&mut server, message).await;
        }
        match step.event {
            None => {}
            Some(JoinerEvent::Offer {
                cell,
                cell_name,
                member,
            }) => {
                let installable = dir.can_install(&cell, &cell_name).map_err(CliError::from);
                if let Err(err) = installable {
                    relay(
                        &mut server,
                        joiner.refuse(&err.to_string()).map_err(failed)?,
                    )
                    .await;
                    return Err(err);
                }
                eprintln!("member `{member}` accepted; joining cell `{cell_name}`...");
                relay(&mut server, joiner.ready().map_err(failed)?).await;
            }
            Some(JoinerEvent::Answer(answer)) => match install(dir, node, &answer) {
                Ok(cell) => {
                    // The member learns we installed it; if that message is lost, the cell is
                    // installed all the same.
                    if let Ok(done) = joiner.installed() {
                        relay(&mut server, done).await;
                    }
                    print_joined(node, &cell);
                    return Ok(());
                }
                Err(err) => {
                    if let Ok(refusal) = joiner.refuse(&format!(
                        "the joining node could not install the cell: {err}"
                    )) {
                        relay(&mut server, refusal).await;
                    }
                    return Err(err);
                }
            },
        }
    }
}

/// Relays `message`. A failed write is not reported here: the next read fails too, and says
/// why (the other party left, the PIN expired...).
async fn relay(server: &mut Rendezvous, message: Vec<u8>) {
    let _ = server.relay(message).await;
}

fn joiner_error(err: JoinError) -> CliError {
    match err {
        JoinError::WrongPin => failed("a member tried a PIN that does not match this one (typed wrong, or a guess): nothing was exchanged and this PIN is used up; run `exo cell join` again for a new one"),
        JoinError::Refused(reason) => failed(format!("the member did not admit this node: {reason}")),
        other => failed(other),
    }
}

/// Opens a member's answer and installs the cell it holds.
fn install(dir: &NodeDir, node: &Node, answer: &Answer) -> Result<Cell, CliError> {
    let (config, keypair) = answer
        .open(&node.keypair)
        .map_err(|e| failed(format!("the answer cannot be installed: {e}")))?;
    let roles = config
        .node(&node.config.id)
        .map(|n| n.roles.clone())
        .unwrap_or_default();
    if roles_need_secret(&roles) && keypair.is_none() {
        return Err(failed(
            "the answer gives this node a role that reads data (store, app-host) but not the cell's secret key",
        ));
    }
    Ok(dir.install_cell(config, keypair)?)
}

fn roles_text(roles: &[Role]) -> String {
    if roles.is_empty() {
        "no role: a client".into()
    } else {
        roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
    }
}

fn print_joined(node: &Node, cell: &Cell) {
    super::cell::print_summary("joined", node, cell);
    println!(
        "  cell secret  {}",
        if cell.keypair.is_some() {
            "received, in cell.key (mode 0600)"
        } else {
            "not sent: this node's roles do not read data (it stores only ciphertext)"
        }
    );
    println!("next: start `exo daemon` on this node (restart it if it runs) to sync the cell");
}

impl NodeAddCmd {
    pub fn run(self, dir: &NodeDir) -> Result<(), CliError> {
        if self.id.is_some() || self.name.is_some() {
            if self.pin.is_some() || self.request.is_some() {
                return Err(usage(
                    "give --id and --name, or --pin, or --request: one way",
                ));
            }
            return super::members::AddCmd {
                cell: self.cell,
                id: self.id,
                name: self.name,
                address: self.address,
                roles: self.roles,
            }
            .run(dir);
        }
        let node = dir.load_node()?;
        let cell = dir.select_cell(self.cell.as_deref())?;
        if cell.keypair.is_none() {
            return Err(failed(format!(
                "this node does not hold the secret key of cell `{}`, so it cannot admit nodes: run this on a member that does",
                cell.config.name
            )));
        }
        // Refuse before the PIN is used up rather than after.
        if !self.yes && !std::io::stdin().is_terminal() {
            return Err(usage(
                "admitting a node needs a confirmation: run this in a terminal, or pass --yes",
            ));
        }
        match (self.pin, self.request) {
            (Some(pin), None) => {
                if self.answer.is_some() {
                    return Err(usage("--answer goes with --request, not with --pin"));
                }
                let pin: Pin = pin
                    .parse()
                    .map_err(|e: crate::join::pin::PinError| usage(&e.to_string()))?;
                let address = discovery_address(self.discovery, &node)?;
                smol::block_on(add_by_pin(dir, &node, &cell, pin, self.yes, &address))
            }
            (None, Some(request_path)) => {
                let answer_path = self.answer.ok_or_else(|| {
                    usage("--request needs --answer OUT: where to write the answer for the joining node")
                })?;
                if self.discovery.is_some() {
                    return Err(usage("--request uses no rendezvous server"));
                }
                add_by_file(dir, &node, &cell, &request_path, &answer_path, self.yes)
            }
            (Some(_), Some(_)) => Err(usage("give either --pin or --request, not both")),
            (None, None) => Err(usage(
                "give the joining node's --pin (shown by `exo cell join`), its --request file, or its --id and --name",
            )),
        }
    }
}

/// Shows the request and asks the user (or takes `--yes`). `Err` says why not.
fn confirm(cell: &Cell, request: &Request, yes: bool) -> Result<(), String> {
    if cell.config.node(&request.node).is_some() {
        return Err(format!(
            "node {} is already a member of cell `{}`",
            request.node, cell.config.name
        ));
    }
    eprintln!(
        "node `{}` asks to join cell `{}`",
        request.name, cell.config.name
    );
    eprintln!("  fingerprint  {}", request.node.fingerprint());
    eprintln!("  id           {}", request.node);
    eprintln!(
        "  addresses    {}",
        if request.addresses.is_empty() {
            "none (it dials the others)".to_string()
        } else {
            request.addresses.join(", ")
        }
    );
    eprintln!("  roles        {}", roles_text(&request.roles));
    if roles_need_secret(&request.roles) {
        eprintln!("  it will receive the cell's secret key (its roles read data)");
    }
    if yes {
        return Ok(());
    }
    eprint!("admit it? check the fingerprint on the joining node [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer);
    match (read, answer.trim().to_ascii_lowercase().as_str()) {
        (Ok(n), "y" | "yes") if n > 0 => Ok(()),
        _ => Err("the member's user declined".into()),
    }
}

fn joiner_of(request: &Request) -> CellNode {
    CellNode {
        id: request.node,
        name: request.name.clone(),
        addresses: request.addresses.clone(),
        roles: request.roles.clone(),
    }
}

/// Admits the requesting node and makes its answer.
fn admit(dir: &NodeDir, node: &Node, cell: &Cell, request: &Request) -> Result<Answer, CliError> {
    let config = members::add_node(dir, node, cell, joiner_of(request))?;
    let cell_key = cell
        .keypair
        .as_ref()
        .ok_or_else(|| failed("this node does not hold the cell's secret key"))?;
    let mut ephemeral = [0u8; 32];
    getrandom::getrandom(&mut ephemeral).map_err(|e| failed(format!("no random numbers: {e}")))?;
    Ok(Answer::new(
        cell_key,
        &request.node,
        &config,
        roles_need_secret(&request.roles),
        ephemeral,
    ))
}

async fn add_by_pin(
    dir: &NodeDir,
    node: &Node,
    cell: &Cell,
    pin: Pin,
    yes: bool,
    address: &str,
) -> Result<(), CliError> {
    let mut server = Rendezvous::connect(address).await.map_err(failed)?;
    server.claim(pin.slot).await.map_err(failed)?;
    let mut member = Member::new(pin);
    relay(&mut server, member.start(OsRng).map_err(failed)?).await;
    let mut request = None;
    let mut admitted = false;
    loop {
        let received = server.receive(Some(PEER_STEP_TIMEOUT)).await;
        let bytes = match received {
            Ok(bytes) => bytes,
            Err(err) if admitted => {
                return Err(failed(format!(
                    "node `{}` was added to cell `{}` but did not confirm it installed the cell ({err}); check it with `exo cell list` there",
                    request.as_ref().map(|r: &Request| r.name.as_str()).unwrap_or("?"),
                    cell.config.name
                )))
            }
            Err(ClientError::PeerLeft) => {
                return Err(failed(format!(
                    "the joining node disconnected before it was admitted; cell `{}` is unchanged",
                    cell.config.name
                )))
            }
            Err(err) => return Err(failed(format!("{err}; cell `{}` is unchanged", cell.config.name))),
        };
        let step = member.receive(&bytes).map_err(|e| match e {
            JoinError::WrongPin => failed(format!(
                "the PIN does not match the joining node's (typed wrong?): nothing was exchanged, cell `{}` is unchanged, and the PIN is used up; run `exo cell join` on the joining node again for a new one",
                cell.config.name
            )),
            JoinError::Refused(reason) if admitted => failed(format!(
                "node was added to cell `{}` but could not install it: {reason}",
                cell.config.name
            )),
            JoinError::Refused(reason) => failed(format!(
                "the joining node declined: {reason}; cell `{}` is unchanged",
                cell.config.name
            )),
            other => failed(format!("{other}; cell `{}` is unchanged", cell.config.name)),
        })?;
        for message in step.send {
            relay(&mut server, message).await;
        }
        match step.event {
            None => {}
            Some(MemberEvent::Request(asked)) => {
                let shown = (*asked).clone();
                let cell_copy = cell.clone();
                let decision = smol::unblock(move || confirm(&cell_copy, &shown, yes)).await;
                if let Err(reason) = decision {
                    if let Ok(refusal) = member.refuse(&reason) {
                        relay(&mut server, refusal).await;
                    }
                    return Err(failed(format!(
                        "not admitted: {reason}; cell `{}` is unchanged",
                        cell.config.name
                    )));
                }
                relay(
                    &mut server,
                    member
                        .offer(cell.config.id, &cell.config.name, &node.config.name)
                        .map_err(failed)?,
                )
                .await;
                request = Some(*asked);
            }
            Some(MemberEvent::Ready) => {
                let Some(asked) = request.as_ref() else {
                    return Err(failed("the joining node is ready before asking"));
                };
                let answer = match admit(dir, node, cell, asked) {
                    Ok(answer) => answer,
                    Err(err) => {
                        if let Ok(refusal) = member.refuse(&err.to_string()) {
                            relay(&mut server, refusal).await;
                        }
                        return Err(err);
                    }
                };
                admitted = true;
                relay(&mut server, member.answer(answer).map_err(failed)?).await;
            }
            Some(MemberEvent::Installed) => {
                let asked = request
                    .as_ref()
                    .map(|r| (r.name.as_str(), r.roles.as_slice()));
                let (name, roles) = asked.unwrap_or(("?", &[]));
                println!(
                    "node `{name}` joined cell `{}` ({})",
                    cell.config.name,
                    roles_text(roles)
                );
                return Ok(());
            }
        }
    }
}

fn add_by_file(
    dir: &NodeDir,
    node: &Node,
    cell: &Cell,
    request_path: &Path,
    answer_path: &Path,
    yes: bool,
) -> Result<(), CliError> {
    let Message::Request(request) = read_document(request_path)? else {
        return Err(failed(format!(
            "{} is not a join request (the joining node writes one with `exo cell join --request FILE`)",
            request_path.display()
        )));
    };
    request.verify().map_err(|e| {
        failed(format!(
            "{} is not a valid join request: {e}",
            request_path.display()
        ))
    })?;
    if answer_path.exists() {
        return Err(failed(format!(
            "{} already exists: choose another --answer file",
            answer_path.display()
        )));
    }
    confirm(cell, &request, yes).map_err(|reason| {
        failed(format!(
            "not admitted: {reason}; cell `{}` is unchanged",
            cell.config.name
        ))
    })?;
    let answer = admit(dir, node, cell, &request)?;
    let secret = answer.secret.is_some();
    let mode = if secret { SECRET_MODE } else { PUBLIC_MODE };
    write_new(answer_path, &Message::Answer(answer).to_json(), mode)?;
    println!(
        "admitted node `{}` into cell `{}` ({})",
        request.name,
        cell.config.name,
        roles_text(&request.roles)
    );
    println!("wrote the answer to {}", answer_path.display());
    if secret {
        println!(
            "it holds the cell's secret key (sealed to that node's key; the file is mode 0600): move it to the node securely and delete it once installed"
        );
    }
    println!("next, on the joining node:  exo cell join --answer FILE");
    Ok(())
}

/// Reads a join document, refusing files too large to be one.
fn read_document(path: &Path) -> Result<Message, CliError> {
    let bytes = std::fs::File::open(path)
        .and_then(|file| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, DOCUMENT_BYTES_MAX as u64 + 1),
                &mut bytes,
            )?;
            Ok(bytes)
        })
        .map_err(crate::config::Error::io("read", path))?;
    Message::from_json(&bytes).map_err(|e| failed(format!("{}: {e}", path.display())))
}

/// Writes a file that must not exist yet (never overwrite what a user may need).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CliError> {
    atomic::write_new(path, bytes, mode).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            failed(format!(
                "{} already exists: choose another file",
                path.display()
            ))
        } else {
            CliError::from(crate::config::Error::io("write", path)(e))
        }
    })
}
