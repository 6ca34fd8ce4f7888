//! What one engine step asks of the world: durable writes, messages, events.
//!
//! **The ordering rule.** The glue applies an [`Output`] in this order, and stops at the
//! first failure:
//!
//! 1. [`Output::vote`], if any, and [`Output::writes`], in order, inside **one**
//!    [`ChainStore::batch`] (one LMDB transaction, one fsync): all land or none;
//! 2. only then are [`Output::messages`] sent and [`Output::events`] published.
//!
//! So nothing leaves the node before the state it depends on is durable: a promise or an
//! `Accepted` is sent only after the store holds the vote, a `Sign` only after the store
//! recorded the signed height, and an operation is acknowledged (its
//! [`Event::OperationsAdded`]) only after it is in the pending store. If a write fails, or
//! [`ChainStore::record_signed`] refuses, the glue drops the rest of the output and rebuilds
//! the engine from storage ([`super::Engine::open`]); the engine's memory may be ahead of
//! the disk, never the other way round. [`apply`] does step 1.

use exocore_protocol::identity::PublicKey;

use super::message::ChainMessage;
use super::vote::VoteState;
use crate::chain::{Block, ChainStore, Operation, OperationId, SignedMembership, StoreError};

/// Everything a step asks for. See the module doc for the order.
#[derive(Debug, Default)]
pub struct Output {
    /// A new acceptor state, written in the same batch as [`Output::writes`].
    pub vote: Option<VoteState>,
    /// Store writes, to apply in order in one batch.
    pub writes: Vec<StoreWrite>,
    /// Messages to send once the writes are durable.
    pub messages: Vec<Outgoing>,
    /// What happened, for the store layer and the logs.
    pub events: Vec<Event>,
}

/// One write to the [`ChainStore`], with the call the glue makes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWrite {
    /// [`Batch::put_pending`](crate::chain::Batch::put_pending): verified operations, none
    /// committed or pending with other bytes.
    PutPending(Vec<Operation>),
    /// [`Batch::record_signed`](crate::chain::Batch::record_signed); a refusal (`false`)
    /// aborts the output.
    RecordSigned {
        /// The height.
        height: u64,
        /// The block signed there.
        hash: [u8; 32],
    },
    /// [`Batch::append_block`](crate::chain::Batch::append_block): a verified, committed
    /// block after the current last one.
    AppendBlock(Box<Block>),
    /// [`Batch::truncate_from`](crate::chain::Batch::truncate_from): drops blocks from this
    /// height on; their operations return to the pending store.
    TruncateFrom(u64),
    /// [`Batch::remove_pending`](crate::chain::Batch::remove_pending): pending operations
    /// no block may carry any more (their author was removed from the cell).
    RemovePending(Vec<OperationId>),
}

/// A message for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The recipient.
    pub to: PublicKey,
    /// The message, to encode with [`ChainMessage::to_bytes`].
    pub message: ChainMessage,
}

/// What happened in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Operations entered the pending store (durably, once the output is applied).
    OperationsAdded {
        /// Their ids.
        ids: Vec<OperationId>,
        /// Whether they came from a local write (`Input::Write`) rather than a peer.
        local: bool,
    },
    /// A block was committed (appended).
    BlockCommitted {
        /// Its height.
        height: u64,
        /// Its hash.
        hash: [u8; 32],
        /// The ids of its operations.
        operations: Vec<OperationId>,
    },
    /// Blocks from `from_height` on were dropped for another branch; their operations went
    /// back to the pending store.
    ChainTruncated {
        /// First height dropped.
        from_height: u64,
        /// Operations returned to pending.
        returned: Vec<OperationId>,
    },
    /// A committed block changed the cell's membership, in force from the next height.
    MembershipChanged {
        /// The height of the block that committed the change.
        height: u64,
        /// The new membership document.
        change: Box<SignedMembership>,
        /// Pending operations dropped because their author is no longer a member.
        dropped: Vec<OperationId>,
    },
    /// A peer has a better chain than this node; chain sync is catching up.
    PeerAhead {
        /// The peer.
        peer: PublicKey,
        /// Its height.
        height: u64,
    },
    /// The consensus at a height moved to a new round.
    RoundChanged {
        /// The height.
        height: u64,
        /// The new round.
        round: u32,
    },
    /// Input was refused: invalid, out of bounds, or unexpected. Log-worthy, never fatal.
    Rejected {
        /// The sending peer, `None` for a local write.
        peer: Option<PublicKey>,
        /// Why.
        reason: String,
    },
    /// Reading the store failed; the step did what it could without it.
    StorageError {
        /// The error, in words.
        reason: String,
    },
}

/// Why an output could not be applied.
#[derive(Debug)]
pub enum ApplyError {
    /// A store write failed (the vote's included).
    Store(StoreError),
    /// The store refused to record a signature: this node already signed another block at
    /// that height (a bug, or a store restored from an older copy).
    SignRefused {
        /// The height.
        height: u64,
    },
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Store(e) => write!(f, "{e}"),
            ApplyError::SignRefused { height } => {
                write!(f, "refused to sign a second block at height {height}")
            }
        }
    }
}

impl std::error::Error for ApplyError {}

/// Makes an output's state durable, in the order of the module doc: the vote and the store
/// writes in one batch (one transaction, one fsync). On `Ok` the caller sends
/// `output.messages` and publishes `output.events`; on `Err` nothing of the output was
/// written, and the caller sends nothing and rebuilds the engine with
/// [`super::Engine::open`].
pub fn apply(store: &ChainStore, output: &Output) -> Result<(), ApplyError> {
    if output.vote.is_none() && output.writes.is_empty() {
        return Ok(());
    }
    let vote = output.vote.as_ref().map(VoteState::to_bytes);
    let mut refused = None;
    let result = store.batch(|batch| {
        refused = None;
        if let Some(vote) = &vote {
            batch.put_vote(vote)?;
        }
        for write in &output.writes {
            match write {
                StoreWrite::PutPending(ops) => {
                    batch.put_pending(ops)?;
                }
                StoreWrite::RecordSigned { height, hash } => {
                    if !batch.record_signed(*height, hash)? {
                        refused = Some(*height);
                        // Abort the transaction: nothing of this output lands.
                        return Err(StoreError::Corrupt {
                            what: format!("signature record at height {height}"),
                            reason: "already signed another block".into(),
                        });
                    }
                }
                StoreWrite::AppendBlock(block) => batch.append_block(block)?,
                StoreWrite::TruncateFrom(height) => {
                    batch.truncate_from(*height)?;
                }
                StoreWrite::RemovePending(ids) => {
                    batch.remove_pending(ids)?;
                }
            }
        }
        Ok(())
    });
    match (result, refused) {
        (_, Some(height)) => Err(ApplyError::SignRefused { height }),
        (Err(e), None) => Err(ApplyError::Store(e)),
        (Ok(()), None) => Ok(()),
    }
}
