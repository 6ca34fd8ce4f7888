//! Chain sync: a node whose chain is behind a peer's catches up in bounded batches; a node
//! whose chain forked from a better one truncates back to the common block and adopts the
//! better branch, and the operations of the dropped blocks return to its pending store.
//!
//! - Every `status_interval_ms` a node sends its tip ([`Status`]) to the other chain nodes.
//!   A consensus message for a higher height also tells a node that its sender is ahead.
//! - A peer is *better* when its tip is higher, or at the same height with a smaller hash
//!   (an arbitrary but total order, so that every node prefers the same branch). Honest
//!   chain nodes never fork (see [`super::commit`]); forks come from outside (a node
//!   restored from another branch, a changed membership), and this order makes every node
//!   converge on one branch.
//! - One request in flight at a time, to the best peer: [`GetBlocks`] from the height after
//!   the tip. The first block of the answer must link to the local block below it; if it
//!   does not, the fork is lower and the next request starts `back` blocks lower, `back`
//!   doubling, until the link is found.
//! - Every received block is verified (`Block::verify`: links, operations, a majority of
//!   valid chain signatures) before anything is written; an invalid batch is dropped.

use std::collections::BTreeMap;

use exocore_protocol::identity::PublicKey;

use super::message::{Blocks, ChainMessage, GetBlocks, Status, BLOCKS_BYTES_MAX, BLOCKS_MAX};
use super::view::membership_at;
use super::{key_id, reject, storage_error, ChainView, Engine, Event, Output, StoreWrite};
use crate::chain::Block;

/// What this node knows of a peer's tip.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerTip {
    key: PublicKey,
    height: u64,
    /// `None` when only the height is known (from a consensus message).
    hash: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    peer: PublicKey,
    request_id: u64,
    from_height: u64,
    sent_ms: u64,
}

/// Chain sync state.
#[derive(Debug, Default)]
pub(crate) struct ChainSync {
    pub(crate) peers: BTreeMap<[u8; 32], PeerTip>,
    in_flight: Option<Request>,
    /// How far below the tip the next request starts, while looking for a fork point.
    back: u64,
    last_status_ms: Option<u64>,
}

impl Engine {
    /// The height each chain node last announced, as far as this node knows.
    pub fn peer_heights(&self) -> Vec<(PublicKey, u64)> {
        self.sync
            .peers
            .values()
            .map(|tip| (tip.key, tip.height))
            .collect()
    }

    pub(crate) fn sync_tick(&mut self, view: &dyn ChainView, now_ms: u64, out: &mut Output) {
        let _ = view;
        if self
            .sync
            .last_status_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= self.config.status_interval_ms)
        {
            self.sync.last_status_ms = Some(now_ms);
            let status = ChainMessage::Status(self.status());
            self.broadcast(out, &status);
        }
        if let Some(request) = self.sync.in_flight {
            if now_ms.saturating_sub(request.sent_ms) < self.config.request_timeout_ms {
                return;
            }
            self.sync.in_flight = None;
            self.sync.back = 0;
        }
        self.request_blocks(now_ms, out);
    }

    fn status(&self) -> Status {
        Status {
            height: self.tip.height,
            hash: self.tip.hash(),
        }
    }

    fn is_better(&self, height: u64, hash: Option<[u8; 32]>) -> bool {
        height > self.tip.height
            || (height == self.tip.height && hash.is_some_and(|h| h < self.tip.hash()))
    }

    /// The best peer better than this node, if any.
    fn best_peer(&self) -> Option<PeerTip> {
        self.sync
            .peers
            .values()
            .filter(|p| self.is_better(p.height, p.hash))
            .max_by(|a, b| {
                a.height.cmp(&b.height).then_with(|| {
                    b.hash
                        .unwrap_or([0xff; 32])
                        .cmp(&a.hash.unwrap_or([0xff; 32]))
                })
            })
            .copied()
    }

    /// Sends the next block request to the best peer, unless one is in flight.
    fn request_blocks(&mut self, now_ms: u64, out: &mut Output) {
        if self.sync.in_flight.is_some() {
            return;
        }
        let Some(peer) = self.best_peer() else {
            self.sync.back = 0;
            return;
        };
        let from_height = (self.tip.height + 1).saturating_sub(self.sync.back).max(1);
        let request_id = self.request_id();
        self.sync.in_flight = Some(Request {
            peer: peer.key,
            request_id,
            from_height,
            sent_ms: now_ms,
        });
        Engine::send(
            out,
            peer.key,
            ChainMessage::GetBlocks(GetBlocks {
                request_id,
                from_height,
                count_max: BLOCKS_MAX as u32,
            }),
        );
    }

    /// Moves the next request's start further below the tip: 1, 2, 4, ... blocks.
    fn look_further_back(&mut self) {
        self.sync.back = if self.sync.back == 0 {
            1
        } else {
            self.sync.back.saturating_mul(2)
        };
        self.sync.back = self.sync.back.min(self.tip.height);
    }

    /// Records what a peer said of its tip.
    pub(crate) fn note_peer_height(
        &mut self,
        peer: PublicKey,
        height: u64,
        hash: Option<[u8; 32]>,
        out: &mut Output,
    ) {
        let known = self.sync.peers.get(&key_id(&peer)).copied();
        if known.is_some_and(|k| hash.is_none() && height <= k.height) {
            return;
        }
        let was_better = known.is_some_and(|k| self.is_better(k.height, k.hash));
        self.sync.peers.insert(
            key_id(&peer),
            PeerTip {
                key: peer,
                height,
                hash,
            },
        );
        if !was_better && self.is_better(height, hash) {
            out.events.push(Event::PeerAhead { peer, height });
        }
    }

    pub(crate) fn on_status(&mut self, from: PublicKey, m: Status, out: &mut Output) {
        if m.height < self.tip.height || !self.membership.is_chain_node(&from) {
            // Behind, or not a chain node (chain nodes only broadcast to each other).
            Engine::send(out, from, ChainMessage::Status(self.status()));
        }
        self.note_peer_height(from, m.height, Some(m.hash), out);
    }

    pub(crate) fn on_get_blocks(
        &mut self,
        view: &dyn ChainView,
        from: PublicKey,
        m: GetBlocks,
        out: &mut Output,
    ) {
        let count = (m.count_max as usize).min(BLOCKS_MAX);
        // Height 0 is served too: a chain node that has no chain yet fetches the genesis
        // (which it verifies against the cell key) before its engine can start.
        let blocks = if count == 0 {
            Vec::new()
        } else {
            match view.blocks(m.from_height, count, BLOCKS_BYTES_MAX) {
                Ok(blocks) => blocks,
                Err(e) => return storage_error(out, &e),
            }
        };
        Engine::send(
            out,
            from,
            ChainMessage::Blocks(Blocks {
                request_id: m.request_id,
                tip: self.status(),
                blocks,
            }),
        );
    }

    pub(crate) fn on_blocks(
        &mut self,
        view: &dyn ChainView,
        now_ms: u64,
        from: PublicKey,
        m: Blocks,
        out: &mut Output,
    ) {
        let Some(request) = self.sync.in_flight else {
            return reject(out, Some(from), "blocks that were not asked for");
        };
        if request.peer != from || request.request_id != m.request_id {
            return reject(out, Some(from), "blocks that were not asked for");
        }
        self.sync.in_flight = None;
        self.note_peer_height(from, m.tip.height, Some(m.tip.hash), out);
        let blocks = m.blocks;
        if blocks.is_empty() {
            if self.is_better(m.tip.height, Some(m.tip.hash)) && self.tip.height > 0 {
                // A better tip but nothing above ours: the branches differ below.
                self.look_further_back();
                return self.request_blocks(now_ms, out);
            }
            self.sync.back = 0;
            return;
        }
        for (i, block) in blocks.iter().enumerate() {
            if block.header.height != request.from_height + i as u64 {
                return reject(out, Some(from), "blocks not at the heights asked for");
            }
        }
        let below = match view.header(request.from_height - 1) {
            Ok(Some(header)) => header,
            Ok(None) => return,
            Err(e) => return storage_error(out, &e),
        };
        if blocks[0].header.previous != below.hash() {
            if request.from_height == 1 {
                return reject(
                    out,
                    Some(from),
                    "the peer's chain has another genesis block",
                );
            }
            // The fork is lower: look further back.
            self.look_further_back();
            return self.request_blocks(now_ms, out);
        }
        // Skip the blocks this node already has.
        let mut first_new = 0;
        while first_new < blocks.len() && blocks[first_new].header.height <= self.tip.height {
            let height = blocks[first_new].header.height;
            match view.header(height) {
                Ok(Some(header)) if header.hash() == blocks[first_new].hash() => first_new += 1,
                Ok(_) => break,
                Err(e) => return storage_error(out, &e),
            }
        }
        self.sync.back = 0;
        if first_new == blocks.len() {
            return self.request_blocks(now_ms, out);
        }
        let fork_height = blocks[first_new].header.height;
        let new_blocks = &blocks[first_new..];
        // Verify the whole branch before writing anything.
        let mut previous = match first_new {
            0 => below,
            i => blocks[i - 1].header.clone(),
        };
        // Each block against the membership in force at its height.
        let mut membership = if fork_height <= self.tip.height {
            match membership_at(view, &self.initial, fork_height - 1) {
                Ok(membership) => membership,
                Err(e) => return storage_error(out, &e),
            }
        } else {
            self.membership.clone()
        };
        for block in new_blocks {
            if let Err(e) = block.verify(&previous, &membership) {
                return reject(
                    out,
                    Some(from),
                    format!("invalid block from chain sync: {e}"),
                );
            }
            membership.apply_block(block);
            previous = block.header.clone();
        }
        if fork_height <= self.tip.height {
            if !self.is_better(m.tip.height, Some(m.tip.hash)) {
                return;
            }
            if let Err(e) = self.truncate_from(view, fork_height, out) {
                return storage_error(out, &e);
            }
        }
        for block in new_blocks {
            self.commit_block(block.clone(), now_ms, out);
        }
        self.request_blocks(now_ms, out);
    }

    /// Drops the blocks from `height` on: their operations return to the pending store.
    fn truncate_from(
        &mut self,
        view: &dyn ChainView,
        height: u64,
        out: &mut Output,
    ) -> Result<(), crate::chain::StoreError> {
        let below = view
            .header(height - 1)?
            .ok_or_else(|| crate::chain::StoreError::Corrupt {
                what: format!("block at height {}", height - 1),
                reason: "missing below a fork".into(),
            })?;
        let mut returned: Vec<Block> = Vec::new();
        for h in height..=self.tip.height {
            if let Some(block) = view.block(h)? {
                returned.push(block);
            }
        }
        let mut ids = Vec::new();
        for block in returned {
            for op in block.operations {
                ids.push(op.id);
                self.pending.insert(op);
            }
        }
        out.writes.push(StoreWrite::TruncateFrom(height));
        out.events.push(Event::ChainTruncated {
            from_height: height,
            returned: ids,
        });
        // The membership goes back with the chain (the store still holds the blocks below).
        self.membership = membership_at(view, &self.initial, below.height)?;
        self.chain_nodes = super::proposer_order(&self.membership);
        self.tip = below;
        Ok(())
    }
}
