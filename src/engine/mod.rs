//! The replication engine: a deterministic state machine that keeps a node's chain and
//! pending store in step with the other chain nodes of its cell. `spec/replication.md` is
//! its contract.
//!
//! ```text
//!   Input::{Tick, Message, Write} ──▶ Engine::step(view, now_ms, input) ──▶ Output
//!                                        │ reads committed state through ChainView
//!                                        ▼
//!                 Output { vote, writes, messages, events }: the glue writes the vote
//!                 and the writes in one batch, then sends and publishes (output::apply)
//! ```
//!
//! Code map: [`pending`] (range reconciliation of pending stores), [`commit`] (consensus
//! per height: rounds, promises, acceptance, chain signatures), [`chain_sync`] (catching
//! up, fork recovery), [`message`] (the wire), [`output`] (what a step asks for, and how the
//! glue applies it), [`vote`] (the acceptor's durable state), [`view`] (what the engine
//! reads).
//!
//! Architecture invariant: the state machine does no I/O and reads no clock. Time is the
//! `now_ms` argument of [`Engine::step`] (a node's local clock, which may be skewed: only
//! differences of it are used, and block times go through `Block::propose`, which never
//! goes backwards). Randomness is not used at all. Iteration is over ordered maps only, so a
//! step is a pure function of the engine's state, the stored chain and the input: the
//! simulation (`tests/simulation.rs`) replays any run from its seed.
//!
//! Architecture invariant: the engine never needs the cell secret. It verifies operations
//! (author membership, id, signature) and blocks (`Block::verify`) but never opens entries.
//!
//! Local writes arrive already signed (`Input::Write`): the store layer seals and signs
//! operations with ids from `ChainStore::next_operation_ids`; the engine only signs blocks,
//! with the node keypair it is given.

pub mod chain_sync;
pub mod commit;
pub mod message;
pub mod output;
pub mod pending;
pub mod view;
pub mod vote;

use std::collections::BTreeMap;

use exocore_protocol::identity::{Keypair, PublicKey};

use crate::chain::{BlockHeader, Membership, Operation, OperationId, SignedMembership, StoreError};

pub use message::ChainMessage;
pub use output::{apply, ApplyError, Event, Outgoing, Output, StoreWrite};
pub use view::ChainView;
pub use vote::VoteState;

use chain_sync::ChainSync;
use commit::Consensus;
use pending::PendingSet;

/// Timings and limits of the engine. Times are in milliseconds of the node's local clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long the round-0 proposer waits after pending operations appear before proposing,
    /// so that a burst of writes lands in one block.
    pub propose_delay_ms: u64,
    /// Base time a round may take before the node moves to the next round (next proposer).
    /// Round `r` at a height waits `round_timeout_ms << min(r, ROUND_BACKOFF_MAX)`.
    pub round_timeout_ms: u64,
    /// How often unanswered consensus messages are sent again (messages may be lost).
    pub resend_interval_ms: u64,
    /// How often a node opens a reconciliation session with each peer.
    pub pending_sync_interval_ms: u64,
    /// How often a node tells its peers its chain tip.
    pub status_interval_ms: u64,
    /// How long a chain-sync request may stay unanswered before it is retried.
    pub request_timeout_ms: u64,
    /// Most operations this node holds pending; local writes and received operations beyond
    /// it are refused (and received ones fetched again later).
    pub pending_operations_max: usize,
}

/// Rounds beyond this do not lengthen the round timeout further.
pub const ROUND_BACKOFF_MAX: u32 = 4;

impl Default for Config {
    fn default() -> Config {
        Config {
            propose_delay_ms: 20,
            round_timeout_ms: 1_000,
            resend_interval_ms: 250,
            pending_sync_interval_ms: 1_000,
            status_interval_ms: 1_000,
            request_timeout_ms: 2_000,
            pending_operations_max: 100_000,
        }
    }
}

/// One input of a step.
// An input is built, moved into `step` once and dropped: boxing the message would cost an
// allocation per input for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Input {
    /// Time passed; run timers.
    Tick,
    /// A message from a peer, whose key the transport authenticated.
    Message {
        /// The sender.
        from: PublicKey,
        /// The message.
        message: ChainMessage,
    },
    /// Operations written on this node, already signed by their author (this node).
    Write {
        /// The operations.
        operations: Vec<Operation>,
    },
}

/// Why the engine could not start.
#[derive(Debug)]
pub enum OpenError {
    /// Reading the store failed.
    Store(StoreError),
    /// The chain has no genesis block: the cell was not initialised on this node.
    NoGenesis,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Store(e) => write!(f, "{e}"),
            OpenError::NoGenesis => write!(f, "the chain has no genesis block"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> OpenError {
        OpenError::Store(e)
    }
}

/// The replication engine of one node in one cell.
pub struct Engine {
    config: Config,
    me: Keypair,
    /// The cell's membership before block 1, from which the one at any height follows.
    initial: Membership,
    /// The membership in force for the next block (after the tip's changes).
    membership: Membership,
    /// Chain nodes sorted by key bytes: the proposer order.
    chain_nodes: Vec<PublicKey>,
    /// The last committed block's header.
    tip: BlockHeader,
    pending: PendingSet,
    consensus: Consensus,
    sync: ChainSync,
    /// The last block this node signed (mirror of the store's record).
    last_signed: Option<(u64, [u8; 32])>,
    next_request_id: u64,
    /// When this node last opened a reconciliation session with each peer.
    last_reconcile_ms: BTreeMap<[u8; 32], u64>,
}

/// Map key of a public key (keys have no order of their own).
fn key_id(key: &PublicKey) -> [u8; 32] {
    key.to_bytes()
}

/// The chain nodes sorted by key bytes: the order in which they propose.
fn proposer_order(membership: &Membership) -> Vec<PublicKey> {
    let mut chain_nodes = membership.chain_nodes().to_vec();
    chain_nodes.sort_by_key(key_id);
    chain_nodes
}

impl Engine {
    /// Builds the engine from storage: the chain tip, the pending store, the last signature
    /// record and the consensus vote ([`ChainView::vote`]). `initial` is the cell's
    /// membership before block 1; the membership in force at the tip follows from the
    /// changes the chain carries ([`view::membership_at`]). Called at startup and after a
    /// failed [`apply`].
    pub fn open(
        config: Config,
        me: Keypair,
        initial: Membership,
        view: &dyn ChainView,
        now_ms: u64,
    ) -> Result<Engine, OpenError> {
        let tip = view.last_header()?.ok_or(OpenError::NoGenesis)?;
        let membership = view::membership_at(view, &initial, tip.height)?;
        let mut pending = PendingSet::default();
        let mut after = None;
        loop {
            let batch = view.pending_after(after, 1024)?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            for op in batch {
                pending.insert(op);
            }
        }
        let chain_nodes = proposer_order(&membership);
        let last_signed = view.last_signed()?;
        let vote = view.vote()?;
        let consensus = Consensus::new(tip.height + 1, tip.hash(), vote, now_ms);
        let mut engine = Engine {
            config,
            me,
            initial,
            membership,
            chain_nodes,
            tip,
            pending,
            consensus,
            sync: ChainSync::default(),
            last_signed,
            next_request_id: 1,
            last_reconcile_ms: BTreeMap::new(),
        };
        engine.restore_consensus();
        Ok(engine)
    }

    /// Runs one input. Never panics on bad input: refusals are [`Event::Rejected`].
    pub fn step(&mut self, view: &dyn ChainView, now_ms: u64, input: Input) -> Output {
        let mut out = Output::default();
        match input {
            Input::Tick => {
                self.sync_tick(view, now_ms, &mut out);
                self.pending_tick(now_ms, &mut out);
                self.commit_tick(view, now_ms, &mut out);
            }
            Input::Write { operations } => self.local_write(view, operations, &mut out),
            Input::Message { from, message } => {
                self.on_message(view, now_ms, from, message, &mut out)
            }
        }
        out
    }

    fn on_message(
        &mut self,
        view: &dyn ChainView,
        now_ms: u64,
        from: PublicKey,
        message: ChainMessage,
        out: &mut Output,
    ) {
        if from == self.me.public() || !self.membership.is_member(&from) {
            return reject(
                out,
                Some(from),
                "message from a node that is not a member (or from itself)",
            );
        }
        if let Err(e) = message.check_bounds() {
            return reject(out, Some(from), e.to_string());
        }
        let consensus_message = matches!(
            message,
            ChainMessage::Prepare(_)
                | ChainMessage::Promise(_)
                | ChainMessage::Accept(_)
                | ChainMessage::Accepted(_)
                | ChainMessage::Sign(_)
        );
        if consensus_message && !self.membership.is_chain_node(&from) {
            return reject(
                out,
                Some(from),
                "consensus message from a node without the chain role",
            );
        }
        match message {
            ChainMessage::Status(m) => self.on_status(from, m, out),
            ChainMessage::Reconcile(m) => self.on_reconcile(from, m, out),
            ChainMessage::GetOperations(m) => self.on_get_operations(from, m, out),
            ChainMessage::Operations(m) => self.on_operations(view, from, m, out),
            ChainMessage::Prepare(m) => self.on_prepare(view, now_ms, from, m, out),
            ChainMessage::Promise(m) => self.on_promise(view, now_ms, from, m, out),
            ChainMessage::Accept(m) => self.on_accept(view, now_ms, from, m, out),
            ChainMessage::Accepted(m) => self.on_accepted(view, now_ms, from, m, out),
            ChainMessage::Sign(m) => self.on_sign(view, now_ms, from, m, out),
            ChainMessage::GetBlocks(m) => self.on_get_blocks(view, from, m, out),
            ChainMessage::Blocks(m) => self.on_blocks(view, now_ms, from, m, out),
        }
    }

    /// This node's public key.
    pub fn public_key(&self) -> PublicKey {
        self.me.public()
    }

    /// The last committed block's header.
    pub fn tip(&self) -> &BlockHeader {
        &self.tip
    }

    /// The membership in force for the next block.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Number of pending operations.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The height being decided and its current round.
    pub fn round(&self) -> (u64, u32) {
        (self.consensus.height, self.consensus.round)
    }

    /// A one-line summary of the engine's state, for logs and failure reports.
    pub fn describe(&self) -> String {
        format!(
            "tip {} {}.., pending {}, {}",
            self.tip.height,
            crate::chain::hex(&self.tip.hash()[..4]),
            self.pending.len(),
            self.describe_consensus()
        )
    }

    /// Whether this node signs blocks.
    fn is_chain_node(&self) -> bool {
        self.membership.is_chain_node(&self.me.public())
    }

    /// The other chain nodes: whom consensus, status and reconciliation messages go to.
    fn peers(&self) -> impl Iterator<Item = PublicKey> + '_ {
        let me = self.me.public();
        self.chain_nodes.iter().copied().filter(move |n| *n != me)
    }

    fn send(out: &mut Output, to: PublicKey, message: ChainMessage) {
        out.messages.push(Outgoing { to, message });
    }

    fn broadcast(&self, out: &mut Output, message: &ChainMessage) {
        for peer in self.peers() {
            Engine::send(out, peer, message.clone());
        }
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        id
    }
}

impl Engine {
    /// A committed block at `height` changed the membership (already applied to
    /// `self.membership`): the proposer order and quorum follow from the next height, and the
    /// pending operations of nodes that are no longer members are dropped (no block may carry
    /// them any more).
    fn membership_changed(&mut self, height: u64, change: SignedMembership, out: &mut Output) {
        self.chain_nodes = proposer_order(&self.membership);
        let dropped: Vec<OperationId> = self
            .pending
            .iter()
            .filter(|op| !self.membership.is_member(&op.author))
            .map(|op| op.id)
            .collect();
        for id in &dropped {
            self.pending.remove(id);
        }
        if !dropped.is_empty() {
            out.writes.push(StoreWrite::RemovePending(dropped.clone()));
        }
        let members: Vec<[u8; 32]> = self.membership.members().iter().map(key_id).collect();
        self.sync.peers.retain(|key, _| members.contains(key));
        self.last_reconcile_ms
            .retain(|key, _| members.contains(key));
        out.events.push(Event::MembershipChanged {
            height,
            change: Box::new(change),
            dropped,
        });
    }
}

fn reject(out: &mut Output, peer: Option<PublicKey>, reason: impl Into<String>) {
    out.events.push(Event::Rejected {
        peer,
        reason: reason.into(),
    });
}

fn storage_error(out: &mut Output, error: &StoreError) {
    out.events.push(Event::StorageError {
        reason: error.to_string(),
    });
}
