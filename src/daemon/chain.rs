//! The chain service of one cell: the replication engine (`crate::engine`) driven by the
//! network and a timer, on a thread of its own because every LMDB call blocks.
//!
//! Per step, in this order (`spec/replication.md`): the engine decides, `engine::apply` makes
//! its writes durable, and only then are its messages sent and a local write acknowledged.
//!
//! Architecture invariant: this is glue. It holds no replication logic; it moves inputs into
//! the engine and outputs to the store, the network and the log.

use std::thread::JoinHandle;
use std::time::Duration;

use async_io::Timer;
use exocore_protocol::admin::ChainStatus;
use exocore_protocol::envelope::Service;
use exocore_protocol::identity::{Keypair, PublicKey};
use futures_lite::future;
use tracing::{debug, error, info, warn};

use super::members::{cell_net, config_after, settle, ChangeError, ChangeResult, Waiter};
use super::store::{Feed, FeedStart, Plain, StoreFeed, FEED_CHUNK_OPERATIONS};

/// An app change as the app service takes it: operation id, plaintext.
pub type AppPlain = (OperationId, Vec<u8>);
use crate::chain::{
    chain_dir, Block, ChainStore, EntryKey, Location, Membership, Operation, OperationId, Payload,
    SignedMembership, BLOCK_SIZE_BYTES_MAX,
};
use crate::clock::now_us;
use crate::config::{Cell, CellConfig, Node, NodeDir};
use crate::engine::{self, ChainMessage, Engine, Event, Input, Output};
use crate::net::Network;
use crate::store::Checkpoint;

/// How often the engine gets a tick: its timers (proposals, resends, rounds) are multiples.
pub const TICK: Duration = Duration::from_millis(10);
/// Inputs waiting for the engine; beyond it, messages from peers are dropped (the engine's
/// protocol resends) and local writes wait.
pub const INBOX_LEN: usize = 1024;
/// How long a local membership request waits for its change to commit.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a chain node without a chain asks the others for the genesis.
pub const GENESIS_ASK_INTERVAL: Duration = Duration::from_secs(1);

const NO_CHAIN_YET: &str =
    "this node has no chain yet: it is fetching it from the other chain nodes";

/// What the chain service is asked to do.
pub enum ChainInput {
    /// A message from another chain node.
    Message {
        /// The authenticated sender.
        from: PublicKey,
        /// The message (boxed: it is much larger than the other variant).
        message: Box<ChainMessage>,
    },
    /// A membership change to write; answered once a block commits it.
    ChangeMembership {
        /// The signed document.
        change: Box<SignedMembership>,
        /// Where `(version, height)`, or why not, goes.
        reply: async_channel::Sender<ChangeResult>,
    },
    /// New entries to write in one engine step (one durable write); answered once they are
    /// durable in the pending store. Their operation ids follow their order.
    Append {
        /// The entries' plaintexts.
        payloads: Vec<Vec<u8>>,
        /// Sealed as app changes (payload kind 2) rather than entries.
        app: bool,
        /// Where each entry's operation id, or why not, goes (in order).
        reply: async_channel::Sender<Vec<Result<OperationId, String>>>,
    },
    /// Send the app changes (payload kind 2) of the chain and pending store, then each new
    /// one, to the app service (`super::apps`).
    WatchApps {
        /// Where they go.
        sender: async_channel::Sender<Vec<AppPlain>>,
    },
    /// A report of the chain's state, for `exo status`.
    Status {
        /// Where the report goes.
        reply: async_channel::Sender<ChainReport>,
    },
}

/// The chain's state on this node, and the heights other chain nodes announced.
pub struct ChainReport {
    /// For the Status answer.
    pub status: ChainStatus,
    /// Height each peer last announced.
    pub peer_heights: Vec<(PublicKey, u64)>,
}

/// The running chain service of a cell.
pub struct ChainService {
    inbox: async_channel::Sender<ChainInput>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl ChainService {
    /// Opens the cell's chain and starts its engine. With `feed`, the cell's entity index is
    /// fed: the whole chain first, then what each step adds or commits.
    pub fn start(
        dir: &NodeDir,
        node: &Node,
        cell: &Cell,
        network: Network,
        feed: Option<StoreFeed>,
    ) -> Result<ChainService, String> {
        let store = ChainStore::open(
            &chain_dir(&cell.dir),
            &cell.config.id,
            node.config.chain.map_size_bytes(),
        )
        .map_err(|e| format!("cannot open the chain of cell `{}`: {e}", cell.config.name))?;
        let context = Context {
            cell: cell.config.id,
            cell_name: cell.config.name.clone(),
            me: node.keypair.clone(),
            membership: Membership::initial(&cell.config),
            node_dir: dir.clone(),
            cell_dir: cell.dir.clone(),
            config: cell.config.clone(),
            waiters: Vec::new(),
            removed: false,
            entry_key: cell.keypair.as_ref().map(EntryKey::from_cell_keypair),
            store,
            network,
            feed,
            apps: None,
        };
        let has_chain = context
            .store
            .height()
            .map_err(|e| format!("cannot read the chain of cell `{}`: {e}", cell.config.name))?
            .is_some();
        let engine = if has_chain {
            let engine = context.open_engine()?;
            info!(
                "cell `{}`: chain at height {}, {} pending",
                context.cell_name,
                engine.tip().height,
                engine.pending_count()
            );
            Some(engine)
        } else {
            info!(
                "cell `{}`: no chain yet on this node, fetching the genesis from the other chain nodes",
                context.cell_name
            );
            None
        };
        let (inbox, receiver) = async_channel::bounded(INBOX_LEN);
        let thread = std::thread::Builder::new()
            .name(format!("chain-{}", cell.config.name))
            .spawn(move || context.run(engine, receiver))
            .map_err(|e| format!("cannot start the chain thread: {e}"))?;
        Ok(ChainService {
            inbox,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Whether the engine's thread still runs (it ends on [`ChainService::stop`], or when it
    /// failed).
    pub fn is_running(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Hands a message from a peer to the engine; dropped if the engine is behind (the
    /// replication protocol resends what matters).
    pub fn deliver(&self, from: PublicKey, message: ChainMessage) {
        if self
            .inbox
            .try_send(ChainInput::Message {
                from,
                message: Box::new(message),
            })
            .is_err()
        {
            debug!(
                "chain inbox full: a message from {} dropped",
                from.fingerprint()
            );
        }
    }

    /// Writes a new entry; returns its operation id once durable.
    pub async fn append(&self, payload: Vec<u8>) -> Result<OperationId, String> {
        let mut results = self.append_all(vec![payload]).await;
        results
            .pop()
            .unwrap_or_else(|| Err("the chain service answered nothing".into()))
    }

    /// Writes new entries together (one durable write for all); returns each one's
    /// operation id, in order, once durable.
    pub async fn append_all(&self, payloads: Vec<Vec<u8>>) -> Vec<Result<OperationId, String>> {
        let count = payloads.len();
        let failed = |reason: &str| vec![Err(reason.to_string()); count];
        let (reply, answer) = async_channel::bounded(1);
        if self
            .inbox
            .send(ChainInput::Append {
                payloads,
                app: false,
                reply,
            })
            .await
            .is_err()
        {
            return failed("the chain service is stopping");
        }
        answer
            .recv()
            .await
            .unwrap_or_else(|_| failed("the chain service stopped"))
    }

    /// Writes an app change (plaintext of payload kind 2); its operation id once durable.
    pub async fn append_app(&self, change: Vec<u8>) -> Result<OperationId, String> {
        let (reply, answer) = async_channel::bounded(1);
        self.inbox
            .send(ChainInput::Append {
                payloads: vec![change],
                app: true,
                reply,
            })
            .await
            .map_err(|_| "the chain service is stopping".to_string())?;
        answer
            .recv()
            .await
            .map_err(|_| "the chain service stopped".to_string())?
            .pop()
            .unwrap_or_else(|| Err("the chain service answered nothing".into()))
    }

    /// Asks for every app change, then each new one, on `sender`.
    pub fn watch_apps(&self, sender: async_channel::Sender<Vec<AppPlain>>) {
        let _ = self.inbox.try_send(ChainInput::WatchApps { sender });
    }

    /// The chain's state, or `None` if the chain thread is not running.
    pub async fn status(&self) -> Option<ChainReport> {
        let (reply, answer) = async_channel::bounded(1);
        self.inbox.send(ChainInput::Status { reply }).await.ok()?;
        answer.recv().await.ok()
    }

    /// Commits a membership change; returns `(version, height)` once a block committed it,
    /// or why not (refused, superseded, or not committed within [`CHANGE_TIMEOUT`]).
    pub async fn change_membership(&self, change: SignedMembership) -> ChangeResult {
        let stopped = || ChangeError::NotCommitted("the chain service is stopping".into());
        let (reply, answer) = async_channel::bounded(1);
        self.inbox
            .send(ChainInput::ChangeMembership {
                change: Box::new(change),
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        let wait = async { answer.recv().await.map_err(|_| stopped())? };
        let timeout = async {
            Timer::after(CHANGE_TIMEOUT).await;
            Err(ChangeError::NotCommitted(format!(
                "the change is written but no block committed it within {} s: it stays pending and commits once a majority of the chain nodes is reachable",
                CHANGE_TIMEOUT.as_secs()
            )))
        };
        future::or(wait, timeout).await
    }

    /// Stops the engine after its current step and waits for it: the store is closed after.
    pub fn stop(&self) {
        self.inbox.close();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

struct Context {
    cell: PublicKey,
    cell_name: String,
    me: Keypair,
    /// The cell's membership before block 1 (the engine derives the one in force).
    membership: Membership,
    node_dir: NodeDir,
    cell_dir: std::path::PathBuf,
    /// The cell's configuration as last written.
    config: CellConfig,
    /// Local membership requests waiting for their change to commit.
    waiters: Vec<Waiter>,
    /// Set once this node learned it was removed from the cell: the service stops.
    removed: bool,
    entry_key: Option<EntryKey>,
    store: ChainStore,
    network: Network,
    /// The cell's entity index, on store nodes.
    feed: Option<StoreFeed>,
    /// The app service, on app host nodes.
    apps: Option<async_channel::Sender<Vec<AppPlain>>>,
}

fn now_ms() -> u64 {
    now_us() / 1000
}

impl Context {
    fn open_engine(&self) -> Result<Engine, String> {
        Engine::open(
            engine::Config::default(),
            self.me.clone(),
            self.membership.clone(),
            &self.store,
            now_ms(),
        )
        .map_err(|e| match e {
            engine::OpenError::NoGenesis => format!(
                "cell `{}` has no chain yet on this node: copy it from a chain node \
                 (`exo cell chain export FILE` there, `exo cell chain import FILE` here)",
                self.cell_name
            ),
            e => format!(
                "cannot start the chain engine of cell `{}`: {e}",
                self.cell_name
            ),
        })
    }

    fn run(mut self, engine: Option<Engine>, inbox: async_channel::Receiver<ChainInput>) {
        let mut engine = engine;
        if let Some(running) = &engine {
            self.config_from_chain(running);
        }
        let mut asked_at: Option<std::time::Instant> = None;
        if let Some(start) = self.feed.as_ref().map(|f| f.start) {
            self.replay(start);
        }
        loop {
            let next =
                async_io::block_on(future::or(async { Some(inbox.recv().await.ok()) }, async {
                    Timer::after(TICK).await;
                    None
                }));
            let Some(running) = engine.as_mut() else {
                match next {
                    Some(None) => break,
                    None => self.ask_genesis(&mut asked_at),
                    Some(Some(ChainInput::Message { from, message })) => {
                        engine = self.take_genesis(from, *message);
                    }
                    Some(Some(ChainInput::WatchApps { sender })) => self.apps = Some(sender),
                    Some(Some(ChainInput::Append {
                        payloads, reply, ..
                    })) => {
                        let _ = reply.try_send(vec![Err(NO_CHAIN_YET.into()); payloads.len()]);
                    }
                    Some(Some(ChainInput::ChangeMembership { reply, .. })) => {
                        let _ = reply.try_send(Err(ChangeError::NotCommitted(NO_CHAIN_YET.into())));
                    }
                    Some(Some(ChainInput::Status { reply })) => {
                        let _ = reply.try_send(self.report(None));
                    }
                }
                continue;
            };
            match next {
                None => {
                    self.step(running, Input::Tick);
                }
                Some(None) => break,
                Some(Some(ChainInput::Message { from, message })) => {
                    let message = *message;
                    self.step(running, Input::Message { from, message });
                }
                Some(Some(ChainInput::WatchApps { sender })) => {
                    self.apps = Some(sender);
                    self.replay_apps();
                }
                Some(Some(ChainInput::Append {
                    payloads,
                    app,
                    reply,
                })) => {
                    let results = self.append(running, payloads, app);
                    let _ = reply.try_send(results);
                }
                Some(Some(ChainInput::Status { reply })) => {
                    let _ = reply.try_send(self.report(Some(running)));
                }
                Some(Some(ChainInput::ChangeMembership { change, reply })) => {
                    self.change_membership(running, *change, reply);
                }
            }
            if self.removed {
                break;
            }
        }
        // Requests still queued are dropped, so their callers learn the service stopped.
        inbox.close();
        while inbox.try_recv().is_ok() {}
        let height = engine.map(|e| e.tip().height.to_string());
        info!(
            "cell `{}`: chain stopped at height {}",
            self.cell_name,
            height.as_deref().unwrap_or("none")
        );
    }

    /// The chain's state for `exo status`; `engine` is `None` while the genesis is fetched.
    fn report(&self, engine: Option<&Engine>) -> ChainReport {
        let size_bytes = self.store.disk_size_bytes().unwrap_or(0);
        let membership = engine.map(Engine::membership).unwrap_or(&self.membership);
        let mut status = ChainStatus::without_blocks(
            "fetching the genesis from the other chain nodes",
            membership.chain_nodes().len() as u32,
            membership.quorum() as u32,
        );
        status.size_bytes = size_bytes;
        let Some(engine) = engine else {
            return ChainReport {
                status,
                peer_heights: Vec::new(),
            };
        };
        let tip = engine.tip();
        status.state = "running".into();
        status.height = tip.height;
        status.last_block = tip.hash();
        status.last_block_time_us = tip.time_us;
        status.pending_operations = engine.pending_count() as u64;
        ChainReport {
            status,
            peer_heights: engine.peer_heights(),
        }
    }

    /// Without a chain: asks every other chain node for the genesis, once a second
    /// (`spec/replication.md` section 6.4).
    fn ask_genesis(&self, asked_at: &mut Option<std::time::Instant>) {
        if asked_at.is_some_and(|at| at.elapsed() < GENESIS_ASK_INTERVAL) {
            return;
        }
        *asked_at = Some(std::time::Instant::now());
        let ask = ChainMessage::GetBlocks(engine::message::GetBlocks {
            request_id: 0,
            from_height: 0,
            count_max: 1,
        });
        let Ok(bytes) = ask.to_bytes() else { return };
        for node in self.membership.chain_nodes() {
            if *node != self.me.public() {
                let _ = self
                    .network
                    .notify(&self.cell, node, Service::Chain, bytes.clone());
            }
        }
    }

    /// Without a chain: takes a genesis that verifies against the cell key, and starts the
    /// engine on it. Anything else is ignored.
    fn take_genesis(&mut self, from: PublicKey, message: ChainMessage) -> Option<Engine> {
        let ChainMessage::Blocks(blocks) = message else {
            return None;
        };
        let genesis = blocks.blocks.first()?;
        if genesis.height() != 0 {
            return None;
        }
        if let Err(err) = genesis.verify_genesis(&self.cell) {
            warn!(
                "cell `{}`: refused a genesis from {}: {err}",
                self.cell_name,
                from.fingerprint()
            );
            return None;
        }
        if let Err(err) = self.store.append_block(genesis) {
            error!("cell `{}`: cannot store the genesis: {err}", self.cell_name);
            return None;
        }
        info!(
            "cell `{}`: genesis received from {}",
            self.cell_name,
            from.fingerprint()
        );
        match self.open_engine() {
            Ok(engine) => Some(engine),
            Err(err) => {
                error!("{err}");
                None
            }
        }
    }

    /// Seals each payload in an entry operation (an app change with `app`) and writes them all in one engine step.
    fn append(
        &mut self,
        engine: &mut Engine,
        payloads: Vec<Vec<u8>>,
        app: bool,
    ) -> Vec<Result<OperationId, String>> {
        super::failpoint::trigger("chain-append");
        let count = payloads.len();
        let all = |reason: String| vec![Err(reason); count];
        let Some(key) = self.entry_key.as_ref() else {
            return all(
                "this node does not hold the cell's secret: it cannot write entries".into(),
            );
        };
        let Ok(wanted) = u32::try_from(count) else {
            return all("too many entries in one write".into());
        };
        let ids = match self
            .store
            .next_operation_ids(&self.me.public(), now_us(), wanted)
        {
            Ok(ids) if ids.len() == count => ids,
            Ok(_) => return all("not enough operation ids issued".into()),
            Err(e) => return all(e.to_string()),
        };
        let mut operations = Vec::with_capacity(count);
        let mut results: Vec<Result<OperationId, String>> = Vec::with_capacity(count);
        for (payload, id) in payloads.iter().zip(ids) {
            let sealed = if app {
                Operation::new_app(&self.cell, key, id, &self.me, payload)
            } else {
                Operation::new_entry(&self.cell, key, id, &self.me, payload)
            };
            match sealed {
                Ok(operation) => {
                    operations.push(operation);
                    results.push(Ok(id));
                }
                Err(e) => results.push(Err(e.to_string())),
            }
        }
        if operations.is_empty() {
            return results;
        }
        let mut written = self.write_all(engine, operations).into_iter();
        for result in results.iter_mut().filter(|r| r.is_ok()) {
            if let Some(outcome) = written.next() {
                *result = outcome;
            }
        }
        results
    }

    fn next_id(&self) -> Result<OperationId, String> {
        let ids = self
            .store
            .next_operation_ids(&self.me.public(), now_us(), 1)
            .map_err(|e| e.to_string())?;
        ids.first()
            .copied()
            .ok_or_else(|| "no operation id issued".into())
    }

    /// Writes a membership change authored by this node; `reply` is answered when a block
    /// commits it (see `members::settle`), or now if it is refused.
    fn change_membership(
        &mut self,
        engine: &mut Engine,
        change: SignedMembership,
        reply: async_channel::Sender<ChangeResult>,
    ) {
        let in_force = engine.membership().version();
        let checked = change.verify(&self.cell).and_then(|()| {
            if change.document.version <= in_force {
                Err(format!(
                    "version {} is not newer than version {in_force} in force (the cell changed meanwhile): run the command again",
                    change.document.version
                ))
            } else {
                Ok(())
            }
        });
        let written = checked.and_then(|()| {
            let id = self.next_id()?;
            let operation = Operation::sign(
                &self.cell,
                id,
                &self.me,
                Payload::Membership(Box::new(change.clone())),
            );
            self.write_all(engine, vec![operation])
                .pop()
                .unwrap_or_else(|| Err("the engine did not take the write".into()))
        });
        match written {
            Ok(operation) => self.waiters.push(Waiter {
                operation,
                change,
                reply,
            }),
            Err(reason) => {
                let _ = reply.try_send(Err(ChangeError::Refused(reason)));
            }
        }
    }

    /// Writes signed operations of this node in one engine step (one durable write): each
    /// one's id once durable in the pending store, or why not, in order.
    fn write_all(
        &mut self,
        engine: &mut Engine,
        operations: Vec<Operation>,
    ) -> Vec<Result<OperationId, String>> {
        let ids: Vec<OperationId> = operations.iter().map(|op| op.id).collect();
        let Some(output) = self.step(engine, Input::Write { operations }) else {
            return vec![Err("the write could not be made durable".into()); ids.len()];
        };
        let added: Vec<OperationId> = output
            .events
            .iter()
            .filter_map(|e| match e {
                Event::OperationsAdded { ids, local: true } => Some(ids.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        let reason = output.events.iter().find_map(|e| match e {
            Event::Rejected { peer: None, reason } => Some(reason.clone()),
            _ => None,
        });
        ids.into_iter()
            .map(|id| {
                if added.contains(&id) {
                    Ok(id)
                } else {
                    Err(reason
                        .clone()
                        .unwrap_or_else(|| "the engine did not take the write".into()))
                }
            })
            .collect()
    }

    /// One engine step: decide, make durable, then send and log. `None` if the writes could
    /// not be applied (the engine is then rebuilt from what is durable).
    fn step(&mut self, engine: &mut Engine, input: Input) -> Option<Output> {
        let output = engine.step(&self.store, now_ms(), input);
        if let Err(err) = engine::apply(&self.store, &output) {
            error!(
                "cell `{}`: cannot store the chain's progress: {err}; restarting the engine",
                self.cell_name
            );
            match self.open_engine() {
                Ok(fresh) => *engine = fresh,
                Err(e) => error!("{e}"),
            }
            return None;
        }
        for outgoing in &output.messages {
            match outgoing.message.to_bytes() {
                Ok(bytes) => {
                    if let Err(err) =
                        self.network
                            .notify(&self.cell, &outgoing.to, Service::Chain, bytes)
                    {
                        debug!(
                            "chain message to {} not sent: {err}",
                            outgoing.to.fingerprint()
                        );
                    }
                }
                Err(err) => warn!(
                    "cell `{}`: a chain message does not encode: {err}",
                    self.cell_name
                ),
            }
        }
        for event in &output.events {
            self.log(event);
            if let Event::MembershipChanged { change, .. } = event {
                self.membership_changed(change);
            }
        }
        settle(&mut self.waiters, &output);
        self.forward(&output);
        Some(output)
    }

    /// Brings `cell.toml` up to the membership of the stored chain, if it is behind (the
    /// daemon stopped between a commit and the rewrite).
    fn config_from_chain(&mut self, engine: &Engine) {
        if engine.membership().version() <= self.config.version {
            return;
        }
        let tip = engine.tip().height;
        match engine::view::last_change(&self.store, &self.membership, tip) {
            Ok(Some(change)) => {
                info!(
                    "cell `{}`: cell.toml is behind the chain (version {} < {}): rewriting it",
                    self.cell_name, self.config.version, change.document.version
                );
                self.membership_changed(&change);
            }
            Ok(None) => {}
            Err(err) => error!(
                "cell `{}`: cannot read the chain's membership changes: {err}",
                self.cell_name
            ),
        }
    }

    /// A committed change: `cell.toml` is rewritten (atomically) and the network learns the
    /// new members and peers, without a restart. If this node is no longer listed, it stops
    /// serving the cell.
    fn membership_changed(&mut self, change: &SignedMembership) {
        let config = config_after(&self.config, change);
        if let Err(err) = self.node_dir.save_cell(&self.cell_dir, &config) {
            error!(
                "cell `{}`: cannot write the new membership to cell.toml: {err}",
                self.cell_name
            );
        }
        let me = self.me.public();
        match config.node(&me) {
            None => {
                error!(
                    "cell `{}`: this node was removed from the cell (membership version {}): it stops serving the cell",
                    self.cell_name, config.version
                );
                self.network
                    .remove_cell(&self.cell, "this node was removed from the cell");
                self.removed = true;
            }
            Some(entry) => {
                let before = self.config.node(&me).map(|n| n.roles.clone());
                if before.as_ref() != Some(&entry.roles) {
                    let roles: Vec<&str> = entry.roles.iter().map(|r| r.name()).collect();
                    warn!(
                        "cell `{}`: this node's roles are now: {} (its services restart with them)",
                        self.cell_name,
                        if roles.is_empty() {
                            "none".to_string()
                        } else {
                            roles.join(", ")
                        }
                    );
                }
                self.network.update_cell(cell_net(&me, &config));
            }
        }
        self.config = config;
    }

    /// The entry plaintext of a stored operation, if it is an entry this node can open.
    fn plain(&self, operation: &Operation, committed: bool) -> Option<Plain> {
        let key = self.entry_key.as_ref()?;
        match operation.open_entry(key) {
            Ok(plaintext) => Some((operation.id, plaintext, committed)),
            Err(err) => {
                debug!(
                    "operation {} is not an entry for the store: {err}",
                    operation.id
                );
                None
            }
        }
    }

    /// The app change of a stored operation, if it carries one this node can open.
    fn app_plain(&self, operation: &Operation) -> Option<AppPlain> {
        match operation.open_app(self.entry_key.as_ref()?)? {
            Ok(plaintext) => Some((operation.id, plaintext)),
            Err(err) => {
                warn!(
                    "cell `{}`: app change {} does not open: {err}",
                    self.cell_name, operation.id
                );
                None
            }
        }
    }

    /// Sends every app change of the chain and the pending store to the app service.
    fn replay_apps(&self) {
        let Some(apps) = &self.apps else { return };
        let mut changes = Vec::new();
        let result = self
            .each_block(0, |block| {
                changes.extend(block.operations.iter().filter_map(|op| self.app_plain(op)));
                true
            })
            .and_then(|()| {
                self.each_pending(|page| {
                    changes.extend(page.iter().filter_map(|op| self.app_plain(op)));
                    true
                })
            });
        if let Err(err) = result {
            error!(
                "cell `{}`: cannot read the chain for the apps: {err}",
                self.cell_name
            );
        }
        let _ = apps.send_blocking(changes);
    }

    /// Hands what a step added or committed to the entity index and the app service (after
    /// it is durable).
    fn forward(&self, output: &Output) {
        if self.feed.is_none() && self.apps.is_none() {
            return;
        }
        let mut apps = Vec::new();
        let mut batch = Vec::new();
        let mut through = None;
        for event in &output.events {
            let ids = match event {
                Event::OperationsAdded { ids, .. } => ids,
                Event::BlockCommitted {
                    height,
                    hash,
                    operations,
                } => {
                    through = Some(Checkpoint {
                        height: *height,
                        hash: *hash,
                    });
                    operations
                }
                Event::ChainTruncated { .. } => {
                    // Operations went back to pending: fold everything again.
                    self.replay(FeedStart::Rebuild);
                    return;
                }
                _ => continue,
            };
            for id in ids {
                match self.store.operation(id) {
                    Ok(Some((op, location))) => {
                        let committed = matches!(location, Location::Committed { .. });
                        if self.feed.is_some() {
                            batch.extend(self.plain(&op, committed));
                        }
                        apps.extend(self.app_plain(&op));
                    }
                    Ok(None) => {}
                    Err(err) => error!(
                        "cell `{}`: cannot read operation {id}: {err}",
                        self.cell_name
                    ),
                }
            }
        }
        if let Some(sender) = self.apps.as_ref().filter(|_| !apps.is_empty()) {
            let _ = sender.send_blocking(apps);
        }
        let Some(feed) = &self.feed else { return };
        if batch.is_empty() && through.is_none() {
            return;
        }
        let batch = Feed::Operations {
            operations: batch,
            through,
        };
        if feed.sender.send_blocking(batch).is_err() {
            debug!("cell `{}`: the entity index is closed", self.cell_name);
        }
    }

    /// Where a replay starts: `(rebuild, first height)`. A checkpoint that does not match the
    /// chain (its block was replaced by fork recovery, or the index belongs to another
    /// chain) makes it a rebuild.
    fn replay_from(&self, start: FeedStart) -> (bool, u64) {
        let cell = &self.cell_name;
        match start {
            FeedStart::Rebuild => (true, 0),
            FeedStart::After(None) => (false, 0),
            FeedStart::After(Some(checkpoint)) => {
                match self.store.get_header(checkpoint.height) {
                    Ok(Some(header)) if header.hash() == checkpoint.hash => {
                        (false, checkpoint.height + 1)
                    }
                    Ok(_) => {
                        warn!(
                        "cell `{cell}`: the entity index does not match the chain at height {}: \
                         rebuilding it",
                        checkpoint.height
                    );
                        (true, 0)
                    }
                    Err(err) => {
                        error!("cell `{cell}`: cannot read the chain: {err}; rebuilding the entity index");
                        (true, 0)
                    }
                }
            }
        }
    }

    /// Sends the operations the entity index lacks in chunks: the committed ones from the
    /// block after its checkpoint (every block for a rebuild), then every pending one
    /// (applying is idempotent).
    fn replay(&self, start: FeedStart) {
        let Some(feed) = &self.feed else { return };
        let (rebuild, from) = self.replay_from(start);
        let tip = self.store.height().ok().flatten();
        let blocks = tip.map_or(0, |tip| (tip + 1).saturating_sub(from));
        let pending = self.store.pending_count().unwrap_or(0);
        let cell = &self.cell_name;
        match (rebuild, from) {
            (true, _) => info!(
                "cell `{cell}`: rebuilding the entity index: replaying {blocks} block(s) and \
                 {pending} pending operation(s)"
            ),
            (false, 0) => info!(
                "cell `{cell}`: entity index has no chain checkpoint, replaying {blocks} \
                 block(s) and {pending} pending operation(s)"
            ),
            (false, from) => info!(
                "cell `{cell}`: entity index at height {}, replaying {blocks} block(s) and \
                 {pending} pending operation(s)",
                from - 1
            ),
        }
        // The last block read: a later start skips it and those before.
        let mut through = None;
        let send = |operations: Vec<Plain>, through: Option<Checkpoint>, last: bool| {
            feed.sender
                .send_blocking(Feed::Replay {
                    rebuild,
                    operations,
                    through,
                    last,
                })
                .is_ok()
        };
        let mut chunk = Vec::new();
        let mut stopped = false;
        let result = self
            .each_block(from, |block| {
                for op in &block.operations {
                    chunk.extend(self.plain(op, true));
                }
                through = Some(Checkpoint {
                    height: block.height(),
                    hash: block.hash(),
                });
                stopped = chunk.len() >= FEED_CHUNK_OPERATIONS
                    && !send(std::mem::take(&mut chunk), through, false);
                !stopped
            })
            .and_then(|()| {
                if stopped {
                    return Ok(());
                }
                self.each_pending(|page| {
                    for op in page {
                        chunk.extend(self.plain(op, false));
                    }
                    chunk.len() < FEED_CHUNK_OPERATIONS
                        || send(std::mem::take(&mut chunk), through, false)
                })
            });
        if let Err(err) = result {
            error!(
                "cell `{}`: cannot read the chain for the entity index: {err}",
                self.cell_name
            );
        }
        // Always end the replay, so a rebuild completes with what could be read.
        send(chunk, through, true);
    }

    /// The blocks from height `from` on, in order, until `each` returns false.
    fn each_block(
        &self,
        from: u64,
        mut each: impl FnMut(&Block) -> bool,
    ) -> Result<(), crate::chain::StoreError> {
        let mut next = from;
        loop {
            let blocks = self.store.blocks(next, 64, BLOCK_SIZE_BYTES_MAX)?;
            let Some(last) = blocks.last() else {
                return Ok(());
            };
            next = last.height() + 1;
            for block in &blocks {
                if !each(block) {
                    return Ok(());
                }
            }
        }
    }

    /// The pending store in operation-id order, a page at a time, until `each` returns
    /// false.
    fn each_pending(
        &self,
        mut each: impl FnMut(&[Operation]) -> bool,
    ) -> Result<(), crate::chain::StoreError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let mut from = Unbounded;
        loop {
            let page = self
                .store
                .pending_range((from, Included(OperationId::MAX)), FEED_CHUNK_OPERATIONS)?;
            if !each(&page) {
                return Ok(());
            }
            match page.last() {
                Some(last) if page.len() == FEED_CHUNK_OPERATIONS => from = Excluded(last.id),
                _ => return Ok(()),
            }
        }
    }

    fn log(&self, event: &Event) {
        let cell = &self.cell_name;
        match event {
            Event::BlockCommitted { height, operations, .. } => {
                info!("cell `{cell}`: block {height} committed ({} operation(s))", operations.len())
            }
            Event::ChainTruncated { from_height, returned } => warn!(
                "cell `{cell}`: chain truncated from height {from_height} for another branch; {} operation(s) back to pending",
                returned.len()
            ),
            Event::PeerAhead { peer, height } => {
                info!("cell `{cell}`: catching up with {} at height {height}", peer.fingerprint())
            }
            Event::Rejected { peer: Some(peer), reason } => {
                warn!("cell `{cell}`: refused input from {}: {reason}", peer.fingerprint())
            }
            Event::Rejected { peer: None, reason } => warn!("cell `{cell}`: refused a local write: {reason}"),
            Event::StorageError { reason } => error!("cell `{cell}`: chain storage: {reason}"),
            Event::RoundChanged { height, round } => debug!("cell `{cell}`: height {height} round {round}"),
            Event::MembershipChanged { height, change, dropped } => {
                let members = Membership::from_document(&change.document);
                info!(
                    "cell `{cell}`: membership version {} committed at height {height}: {} member(s), {} chain node(s), quorum {} from height {}{}",
                    members.version(),
                    members.members().len(),
                    members.chain_nodes().len(),
                    members.quorum(),
                    height + 1,
                    if dropped.is_empty() { String::new() } else { format!("; {} pending operation(s) of removed nodes dropped", dropped.len()) }
                )
            }
            Event::OperationsAdded { ids, local } => debug!("cell `{cell}`: {} operation(s) pending (local: {local})", ids.len()),
        }
    }
}
