//! Commit: the chain nodes agree on one block per height, then sign it.
//!
//! Each height is decided by single-decree Paxos among the chain nodes, in rounds:
//!
//! - The proposer of round `r` at height `h` is `chain_nodes[(h + r) mod n]`, the chain
//!   nodes sorted by public key bytes.
//! - Round 0 skips phase 1 (no lower round exists): its proposer builds a block from its
//!   pending operations, accepts it itself, and sends `Accept`.
//! - Round `r > 0`: the proposer sends `Prepare`; each chain node promises (durably) to
//!   accept nothing from a lower round and answers with the block it accepted in its highest
//!   round. With promises from a majority, the proposer re-proposes the block of the highest
//!   round among them, or a block of its own if none accepted anything.
//! - A node accepts an `Accept` of round `r` if it has not promised a higher round, and
//!   records (durably) the block and round before announcing `Accepted`.
//! - A block accepted by a majority **in one round** is decided. Only then does a node sign
//!   it with its chain key, once per height (`ChainStore::record_signed`), and broadcast the
//!   signature. A block signed by a majority is committed: any node holding the block and
//!   the signatures appends it.
//!
//! Safety: Paxos guarantees that at most one block is decided per height, whatever messages
//! are lost, duplicated or delayed and whichever nodes crash and restart (the promise and
//! acceptance are durable, see [`super::vote`]). Chain signatures are only given to the
//! decided block, so a majority of chain signatures, which is what `Block::verify` checks,
//! implies the block was decided: two different blocks can never both be committed at one
//! height, and no node ever needs to sign two blocks at a height.
//!
//! Liveness: a round that does not commit within its timeout (growing with the round) moves
//! the node to the next round, hence the next proposer; a node that sees a higher round's
//! `Prepare` or `Accept` joins it. Once messages between a majority arrive in time, a round
//! whose proposer is in that majority completes. A split vote is no dead end: acceptances
//! are per round, and a later round re-proposes the highest-round block.
//!
//! Unanswered messages are sent again every `resend_interval_ms`, so loss only slows a
//! round down.

use std::collections::BTreeMap;

use exocore_protocol::identity::PublicKey;

use super::message::{
    Accept, Accepted, AcceptedBlock, ChainMessage, Prepare, Promise, Sign, Status,
};
use super::{
    key_id, reject, ChainView, Engine, Event, Output, StoreWrite, VoteState, ROUND_BACKOFF_MAX,
};
use crate::chain::{
    Block, BlockSignature, Operation, BLOCK_OPERATIONS_BYTES_MAX, BLOCK_OPERATIONS_MAX,
};

/// Most proposed blocks remembered at one height (besides the decided and accepted ones).
const BLOCKS_CACHED_MAX: usize = 16;

/// The consensus state at the height being decided (the chain tip's height + 1).
#[derive(Debug)]
pub(crate) struct Consensus {
    pub(crate) height: u64,
    /// Hash of the tip this height builds on: a block accepted on another parent (before a
    /// fork was truncated) belongs to another instance and counts as nothing accepted.
    parent: [u8; 32],
    pub(crate) round: u32,
    round_started_ms: u64,
    /// Since when this node has had something to commit at this height.
    work_since_ms: Option<u64>,
    /// The durable acceptor state. Its height may be below `height` (stale: nothing
    /// promised here yet) or above it (after a truncation: this node does not vote until
    /// chain sync brings it back up).
    vote: VoteState,
    /// Promises received in the current round, when this node is its proposer.
    promises: BTreeMap<[u8; 32], Option<AcceptedBlock>>,
    /// Whether this node sent `Accept` in the current round.
    proposed: bool,
    /// Each chain node's acceptance in its highest known round: (round, block hash).
    accepted_by: BTreeMap<[u8; 32], (u32, [u8; 32])>,
    /// Blocks proposed at this height, by hash, without signatures.
    blocks: BTreeMap<[u8; 32], Block>,
    /// The block decided at this height, once a majority accepted it in one round.
    decided: Option<[u8; 32]>,
    /// Chain signatures received at this height, by signer: (block hash, signature).
    signatures: BTreeMap<[u8; 32], ([u8; 32], BlockSignature)>,
    last_resend_ms: u64,
}

impl Consensus {
    pub(crate) fn new(
        height: u64,
        parent: [u8; 32],
        vote: Option<VoteState>,
        now_ms: u64,
    ) -> Consensus {
        let vote = match vote {
            Some(vote) if vote.height >= height => vote,
            _ => VoteState::empty(height),
        };
        Consensus {
            height,
            parent,
            round: 0,
            round_started_ms: now_ms,
            work_since_ms: None,
            vote,
            promises: BTreeMap::new(),
            proposed: false,
            accepted_by: BTreeMap::new(),
            blocks: BTreeMap::new(),
            decided: None,
            signatures: BTreeMap::new(),
            last_resend_ms: now_ms,
        }
    }

    /// The acceptor state at this height, `None` when frozen (voted at a higher height).
    fn vote_here(&self) -> Option<&VoteState> {
        (self.vote.height == self.height).then_some(&self.vote)
    }

    fn accepted_here(&self) -> Option<&AcceptedBlock> {
        self.vote_here()
            .and_then(|v| v.accepted.as_ref())
            .filter(|a| a.block.header.previous == self.parent)
    }

    fn promised_here(&self) -> u32 {
        self.vote_here().map_or(0, |v| v.promised)
    }

    fn cache_block(&mut self, hash: [u8; 32], block: Block) {
        if self.blocks.len() >= BLOCKS_CACHED_MAX && !self.blocks.contains_key(&hash) {
            let keep_accepted = self.accepted_here().map(|a| a.block.hash());
            let keep_decided = self.decided;
            self.blocks
                .retain(|h, _| Some(*h) == keep_accepted || Some(*h) == keep_decided);
        }
        self.blocks.insert(hash, block);
    }

    /// The previous vote, for building the next height's consensus.
    pub(crate) fn take_vote(&mut self) -> VoteState {
        std::mem::replace(&mut self.vote, VoteState::empty(0))
    }
}

impl Engine {
    /// Rebuilds the in-memory consensus from the durable vote and signature record.
    pub(crate) fn restore_consensus(&mut self) {
        let me = key_id(&self.me.public());
        let height = self.consensus.height;
        if let Some(vote) = self.consensus.vote_here().cloned() {
            self.consensus.round = vote.promised;
            if let Some(accepted) = vote
                .accepted
                .filter(|a| a.block.header.previous == self.consensus.parent)
            {
                let hash = accepted.block.hash();
                self.consensus
                    .accepted_by
                    .insert(me, (accepted.round, hash));
                if accepted.round == vote.promised
                    && self.proposer(height, accepted.round) == self.me.public()
                {
                    self.consensus.proposed = true;
                }
                self.consensus.cache_block(hash, accepted.block);
            }
        }
        if let Some((signed_height, hash)) = self.last_signed {
            if signed_height == height {
                let signature = BlockSignature::new(self.membership.cell(), &hash, &self.me);
                self.consensus.signatures.insert(me, (hash, signature));
                self.consensus.decided = Some(hash);
            }
        }
    }

    pub(crate) fn describe_consensus(&self) -> String {
        let c = &self.consensus;
        format!(
            "height {} round {} (vote at {} promised {} accepted {:?}), decided {}, {} signatures, last signed {:?}",
            c.height,
            c.round,
            c.vote.height,
            c.vote.promised,
            c.vote.accepted.as_ref().map(|a| a.round),
            c.decided.is_some(),
            c.signatures.len(),
            self.last_signed.map(|(h, _)| h),
        )
    }

    pub(crate) fn proposer(&self, height: u64, round: u32) -> PublicKey {
        let n = self.chain_nodes.len() as u64;
        debug_assert!(n > 0, "a cell has at least one chain node");
        let index = height.wrapping_add(u64::from(round)) % n.max(1);
        self.chain_nodes[index as usize]
    }

    fn quorum(&self) -> usize {
        self.membership.quorum()
    }

    /// Whether this node may not vote or sign at the current height: it voted or signed at
    /// a higher one before its chain was truncated.
    fn frozen(&self) -> bool {
        self.consensus.vote.height > self.consensus.height
            || self
                .last_signed
                .is_some_and(|(height, _)| height > self.consensus.height)
    }

    fn has_work(&self) -> bool {
        !self.pending.is_empty()
            || !self.consensus.blocks.is_empty()
            || self.consensus.decided.is_some()
            || !self.consensus.signatures.is_empty()
    }

    fn round_timeout_ms(&self) -> u64 {
        self.config.round_timeout_ms << self.consensus.round.min(ROUND_BACKOFF_MAX)
    }

    pub(crate) fn commit_tick(&mut self, view: &dyn ChainView, now_ms: u64, out: &mut Output) {
        if !self.is_chain_node() {
            return;
        }
        if !self.has_work() {
            self.consensus.round_started_ms = now_ms;
            self.consensus.work_since_ms = None;
            return;
        }
        self.consensus.work_since_ms.get_or_insert(now_ms);
        if self.frozen() {
            return;
        }
        if now_ms.saturating_sub(self.consensus.round_started_ms) >= self.round_timeout_ms() {
            let next = self.consensus.round.saturating_add(1);
            self.enter_round(next, now_ms, out);
        }
        self.try_propose(view, now_ms, out);
        if now_ms.saturating_sub(self.consensus.last_resend_ms) >= self.config.resend_interval_ms {
            self.consensus.last_resend_ms = now_ms;
            self.resend(out);
        }
    }

    fn enter_round(&mut self, round: u32, now_ms: u64, out: &mut Output) {
        let height = self.consensus.height;
        self.consensus.round = round;
        self.consensus.round_started_ms = now_ms;
        self.consensus.promises.clear();
        self.consensus.proposed = false;
        out.events.push(Event::RoundChanged { height, round });
        if round == 0 || self.proposer(height, round) != self.me.public() || self.frozen() {
            return;
        }
        if self.consensus.promised_here() < round {
            let accepted = self.consensus.accepted_here().cloned();
            self.consensus.vote = VoteState {
                height,
                promised: round,
                accepted,
            };
            out.vote = Some(self.consensus.vote.clone());
        }
        let mine = self.consensus.accepted_here().cloned();
        self.consensus
            .promises
            .insert(key_id(&self.me.public()), mine);
        self.broadcast(out, &ChainMessage::Prepare(Prepare { height, round }));
    }

    /// Proposes if this node is the current round's proposer and may.
    fn try_propose(&mut self, view: &dyn ChainView, now_ms: u64, out: &mut Output) {
        let (height, round) = (self.consensus.height, self.consensus.round);
        if self.consensus.proposed
            || self.frozen()
            || self.proposer(height, round) != self.me.public()
        {
            return;
        }
        let block = if round == 0 {
            if self.consensus.promised_here() > 0 || self.consensus.accepted_here().is_some() {
                return;
            }
            let since = self.consensus.work_since_ms.unwrap_or(now_ms);
            if self.pending.is_empty()
                || now_ms.saturating_sub(since) < self.config.propose_delay_ms
            {
                return;
            }
            match self.build_block(now_ms, out) {
                Some(block) => block,
                None => return,
            }
        } else {
            if self.consensus.promises.len() < self.quorum()
                || self.consensus.promised_here() > round
            {
                return;
            }
            let highest = self
                .consensus
                .promises
                .values()
                .flatten()
                .max_by_key(|accepted| accepted.round)
                .map(|accepted| accepted.block.clone());
            match highest {
                Some(block) => block,
                None if self.pending.is_empty() => return,
                None => match self.build_block(now_ms, out) {
                    Some(block) => block,
                    None => return,
                },
            }
        };
        let _ = view;
        self.accept_locally(round, block.clone(), out);
        self.consensus.proposed = true;
        self.broadcast(
            out,
            &ChainMessage::Accept(Accept {
                height,
                round,
                block,
            }),
        );
        self.try_decide(out);
        self.try_commit(now_ms, out);
    }

    /// A block of the pending operations in id order, within the block limits.
    fn build_block(&mut self, now_ms: u64, out: &mut Output) -> Option<Block> {
        let mut ops: Vec<Operation> = Vec::new();
        let mut bytes = 0usize;
        for op in self.pending.iter() {
            if ops.len() == BLOCK_OPERATIONS_MAX
                || bytes + op.size_bytes() > BLOCK_OPERATIONS_BYTES_MAX
            {
                break;
            }
            bytes += op.size_bytes();
            ops.push(op.clone());
        }
        match Block::propose(
            &self.tip,
            &self.me.public(),
            now_ms.saturating_mul(1_000),
            ops,
        ) {
            Ok(block) => Some(block),
            Err(e) => {
                reject(out, None, format!("could not build a block: {e}"));
                None
            }
        }
    }

    /// Records this node's acceptance of `block` in `round` (durably, via `Output::vote`),
    /// and keeps its operations pending so that the block's data survives with the vote.
    fn accept_locally(&mut self, round: u32, block: Block, out: &mut Output) {
        let height = self.consensus.height;
        let hash = block.hash();
        self.consensus.vote = VoteState {
            height,
            promised: round,
            accepted: Some(AcceptedBlock {
                round,
                block: block.clone(),
            }),
        };
        out.vote = Some(self.consensus.vote.clone());
        let missing: Vec<Operation> = block
            .operations
            .iter()
            .filter(|op| !self.pending.contains(&op.id))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let ids = missing.iter().map(|op| op.id).collect();
            for op in &missing {
                self.pending.insert(op.clone());
            }
            out.writes.push(StoreWrite::PutPending(missing));
            out.events
                .push(Event::OperationsAdded { ids, local: false });
        }
        self.consensus
            .accepted_by
            .insert(key_id(&self.me.public()), (round, hash));
        self.consensus.cache_block(hash, block);
    }

    /// Checks a proposed block against the tip: `Block::verify_proposal` (links, limits,
    /// operations and their signatures, proposer), and none of its operations committed.
    fn check_proposal(&self, view: &dyn ChainView, block: &Block) -> Result<(), String> {
        if block.header.height != self.consensus.height {
            return Err(format!(
                "proposal for height {} at height {}",
                block.header.height, self.consensus.height
            ));
        }
        block
            .verify_proposal(&self.tip, &self.membership)
            .map_err(|e| format!("invalid proposal: {e}"))?;
        for op in &block.operations {
            if self.pending.contains(&op.id) {
                continue;
            }
            match view.is_committed(&op.id) {
                Ok(false) => {}
                Ok(true) => return Err(format!("proposal carries committed operation {}", op.id)),
                Err(e) => return Err(format!("could not check operation {}: {e}", op.id)),
            }
        }
        Ok(())
    }

    /// A consensus message for another height: a peer ahead is a reason to catch up, a peer
    /// behind gets this node's tip so that it catches up.
    fn other_height(&mut self, from: PublicKey, height: u64, out: &mut Output) {
        if height > self.consensus.height {
            self.note_peer_height(from, height - 1, None, out);
        } else {
            Engine::send(
                out,
                from,
                ChainMessage::Status(Status {
                    height: self.tip.height,
                    hash: self.tip.hash(),
                }),
            );
        }
    }

    /// Whether a message about `height` and `round` is for the height being decided and
    /// comes from that round's proposer; if not, `out` says why (or asks to catch up).
    fn is_from_current_proposer(
        &mut self,
        what: &str,
        from: PublicKey,
        height: u64,
        round: u32,
        out: &mut Output,
    ) -> bool {
        if height != self.consensus.height {
            self.other_height(from, height, out);
            return false;
        }
        if from != self.proposer(height, round) {
            reject(
                out,
                Some(from),
                format!("{what} from a node that is not the proposer of round {round}"),
            );
            return false;
        }
        true
    }

    pub(crate) fn on_prepare(
        &mut self,
        _view: &dyn ChainView,
        now_ms: u64,
        from: PublicKey,
        m: Prepare,
        out: &mut Output,
    ) {
        if !self.is_from_current_proposer("prepare", from, m.height, m.round, out) {
            return;
        }
        if !self.is_chain_node() || self.frozen() || m.round < self.consensus.promised_here() {
            return;
        }
        if m.round > self.consensus.round {
            self.enter_round(m.round, now_ms, out);
        }
        if m.round > self.consensus.promised_here() {
            let accepted = self.consensus.accepted_here().cloned();
            self.consensus.vote = VoteState {
                height: m.height,
                promised: m.round,
                accepted,
            };
            out.vote = Some(self.consensus.vote.clone());
        }
        let accepted = self.consensus.accepted_here().cloned();
        Engine::send(
            out,
            from,
            ChainMessage::Promise(Promise {
                height: m.height,
                round: m.round,
                accepted,
            }),
        );
    }

    pub(crate) fn on_promise(
        &mut self,
        view: &dyn ChainView,
        now_ms: u64,
        from: PublicKey,
        m: Promise,
        out: &mut Output,
    ) {
        if m.height != self.consensus.height {
            return self.other_height(from, m.height, out);
        }
        if m.round != self.consensus.round
            || self.consensus.proposed
            || self.proposer(m.height, m.round) != self.me.public()
        {
            return;
        }
        let parent = self.consensus.parent;
        // A block accepted on another parent (before a fork was resolved) is another
        // instance: as good as nothing accepted here.
        let mut accepted = m.accepted.filter(|a| a.block.header.previous == parent);
        if let Some(a) = &mut accepted {
            a.block.signatures.clear();
            if a.round >= m.round {
                return reject(
                    out,
                    Some(from),
                    "promise carries a block accepted in a round not below it",
                );
            }
            if let Err(reason) = self.check_proposal(view, &a.block) {
                return reject(out, Some(from), reason);
            }
        }
        self.consensus.promises.insert(key_id(&from), accepted);
        self.try_propose(view, now_ms, out);
    }

    pub(crate) fn on_accept(
        &mut self,
        view: &dyn ChainView,
        now_ms: u64,
        from: PublicKey,
        m: Accept,
        out: &mut Output,
    ) {
        if !self.is_from_current_proposer("accept", from, m.height, m.round, out) {
            return;
        }
        let mut block = m.block;
        block.signatures.clear();
        if let Err(reason) = self.check_proposal(view, &block) {
            return reject(out, Some(from), reason);
        }
        let hash = block.hash();
        // The proposer accepted its block before sending it.
        self.record_accepted(from, m.round, hash);
        self.consensus.cache_block(hash, block.clone());
        let mine = self
            .consensus
            .accepted_here()
            .map(|a| (a.round, a.block.hash()));
        if self.is_chain_node() && !self.frozen() {
            if mine == Some((m.round, hash)) {
                Engine::send(out, from, accepted_message(m.height, m.round, hash));
            } else if m.round >= self.consensus.promised_here() {
                if m.round > self.consensus.round {
                    self.enter_round(m.round, now_ms, out);
                }
                self.accept_locally(m.round, block, out);
                self.broadcast(out, &accepted_message(m.height, m.round, hash));
            }
        }
        self.try_decide(out);
        self.try_commit(now_ms, out);
    }

    pub(crate) fn on_accepted(
        &mut self,
        _view: &dyn ChainView,
        now_ms: u64,
        from: PublicKey,
        m: Accepted,
        out: &mut Output,
    ) {
        if m.height != self.consensus.height {
            return self.other_height(from, m.height, out);
        }
        self.record_accepted(from, m.round, m.hash);
        self.try_decide(out);
        self.try_commit(now_ms, out);
    }

    fn record_accepted(&mut self, node: PublicKey, round: u32, hash: [u8; 32]) {
        let entry = self
            .consensus
            .accepted_by
            .entry(key_id(&node))
            .or_insert((round, hash));
        if round >= entry.0 {
            *entry = (round, hash);
        }
    }

    /// Decides the block a majority accepted in one round, then signs it.
    fn try_decide(&mut self, out: &mut Output) {
        if self.consensus.decided.is_none() {
            let mut counts: BTreeMap<(u32, [u8; 32]), usize> = BTreeMap::new();
            for vote in self.consensus.accepted_by.values() {
                *counts.entry(*vote).or_default() += 1;
            }
            let quorum = self.quorum();
            self.consensus.decided = counts
                .into_iter()
                .find(|(_, count)| *count >= quorum)
                .map(|((_, hash), _)| hash);
        }
        self.try_sign(out);
    }

    fn try_sign(&mut self, out: &mut Output) {
        let Some(hash) = self.consensus.decided else {
            return;
        };
        let me = key_id(&self.me.public());
        let height = self.consensus.height;
        if !self.is_chain_node() || self.frozen() || self.consensus.signatures.contains_key(&me) {
            return;
        }
        if !self.consensus.blocks.contains_key(&hash) {
            return;
        }
        if let Some((signed_height, signed_hash)) = self.last_signed {
            if signed_height == height && signed_hash != hash {
                // Unreachable unless the stored vote was lost: never sign twice at a height.
                return reject(
                    out,
                    None,
                    format!("refusing to sign a second block at height {height}"),
                );
            }
        }
        let signature = BlockSignature::new(self.membership.cell(), &hash, &self.me);
        out.writes.push(StoreWrite::RecordSigned { height, hash });
        self.last_signed = Some((height, hash));
        self.consensus
            .signatures
            .insert(me, (hash, signature.clone()));
        self.broadcast(
            out,
            &ChainMessage::Sign(Sign {
                height,
                hash,
                signature,
            }),
        );
    }

    pub(crate) fn on_sign(
        &mut self,
        _view: &dyn ChainView,
        now_ms: u64,
        from: PublicKey,
        m: Sign,
        out: &mut Output,
    ) {
        if m.height != self.consensus.height {
            return self.other_height(from, m.height, out);
        }
        let node = m.signature.node;
        if !self.membership.is_chain_node(&node) {
            return reject(
                out,
                Some(from),
                "signature by a node without the chain role",
            );
        }
        if !m.signature.is_valid(self.membership.cell(), &m.hash) {
            return reject(out, Some(from), "invalid block signature");
        }
        self.consensus
            .signatures
            .insert(key_id(&node), (m.hash, m.signature));
        self.try_commit(now_ms, out);
    }

    /// Commits the block signed by a majority, if this node holds it.
    fn try_commit(&mut self, now_ms: u64, out: &mut Output) {
        let mut by_hash: BTreeMap<[u8; 32], Vec<BlockSignature>> = BTreeMap::new();
        for (hash, signature) in self.consensus.signatures.values() {
            by_hash.entry(*hash).or_default().push(signature.clone());
        }
        let quorum = self.quorum();
        let Some((hash, signatures)) = by_hash.into_iter().find(|(_, sigs)| sigs.len() >= quorum)
        else {
            return;
        };
        let Some(body) = self.consensus.blocks.get(&hash) else {
            return;
        };
        let mut block = body.clone();
        block.signatures = signatures;
        if let Err(e) = block.verify(&self.tip, &self.membership) {
            return reject(out, None, format!("signed block does not verify: {e}"));
        }
        self.commit_block(block, now_ms, out);
    }

    /// Appends a verified block after the tip and moves consensus to the next height.
    pub(crate) fn commit_block(&mut self, block: Block, now_ms: u64, out: &mut Output) {
        debug_assert_eq!(block.header.height, self.tip.height + 1);
        let operations: Vec<_> = block.operations.iter().map(|op| op.id).collect();
        for id in &operations {
            self.pending.remove(id);
        }
        let hash = block.hash();
        let height = block.header.height;
        self.tip = block.header.clone();
        out.events.push(Event::BlockCommitted {
            height,
            hash,
            operations,
        });
        let change = self.membership.apply_block(&block);
        out.writes.push(StoreWrite::AppendBlock(Box::new(block)));
        if let Some(change) = change {
            self.membership_changed(height, change, out);
        }
        self.reset_consensus(now_ms);
    }

    /// Starts consensus at the height after the tip, keeping the durable vote.
    pub(crate) fn reset_consensus(&mut self, now_ms: u64) {
        let vote = self.consensus.take_vote();
        self.consensus = Consensus::new(self.tip.height + 1, self.tip.hash(), Some(vote), now_ms);
        self.restore_consensus();
    }

    /// Sends again what peers may have missed.
    fn resend(&mut self, out: &mut Output) {
        let (height, round) = (self.consensus.height, self.consensus.round);
        if self.proposer(height, round) == self.me.public() {
            if self.consensus.proposed {
                if let Some(accepted) = self.consensus.accepted_here().cloned() {
                    let hash = accepted.block.hash();
                    let peers: Vec<PublicKey> = self.peers().collect();
                    for peer in peers {
                        if self.consensus.accepted_by.get(&key_id(&peer)) != Some(&(round, hash)) {
                            Engine::send(
                                out,
                                peer,
                                ChainMessage::Accept(Accept {
                                    height,
                                    round,
                                    block: accepted.block.clone(),
                                }),
                            );
                        }
                    }
                }
            } else if round > 0 {
                let peers: Vec<PublicKey> = self.peers().collect();
                for peer in peers {
                    if !self.consensus.promises.contains_key(&key_id(&peer)) {
                        Engine::send(out, peer, ChainMessage::Prepare(Prepare { height, round }));
                    }
                }
            }
        }
        if let Some(accepted) = self.consensus.accepted_here() {
            let message = accepted_message(height, accepted.round, accepted.block.hash());
            self.broadcast(out, &message);
        }
        if let Some((hash, signature)) = self
            .consensus
            .signatures
            .get(&key_id(&self.me.public()))
            .cloned()
        {
            self.broadcast(
                out,
                &ChainMessage::Sign(Sign {
                    height,
                    hash,
                    signature,
                }),
            );
        }
    }
}

fn accepted_message(height: u64, round: u32, hash: [u8; 32]) -> ChainMessage {
    ChainMessage::Accepted(Accepted {
        height,
        round,
        hash,
    })
}
