//! What the engine reads of committed state: [`ChainView`], implemented by
//! [`ChainStore`](crate::chain::ChainStore).
//!
//! Reads keep the engine deterministic: the stored chain changes only through writes the
//! engine itself emitted, which the glue applies before the next step. Within one step the
//! engine never reads back what that step wrote (it tracks its own tip and pending set in
//! memory).

use super::vote::VoteState;
use crate::chain::membership::may_carry_change;
use crate::chain::{
    Block, BlockHeader, ChainStore, Location, Membership, Operation, OperationId, SignedMembership,
    StoreError,
};

/// Read access to the committed chain and the pending store.
pub trait ChainView {
    /// The header at `height`.
    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError>;
    /// The last block's header.
    fn last_header(&self) -> Result<Option<BlockHeader>, StoreError>;
    /// The block at `height`.
    fn block(&self, height: u64) -> Result<Option<Block>, StoreError>;
    /// Up to `limit` consecutive blocks from `from_height`, within `size_bytes_max` (at least
    /// one if any).
    fn blocks(
        &self,
        from_height: u64,
        limit: usize,
        size_bytes_max: usize,
    ) -> Result<Vec<Block>, StoreError>;
    /// Whether operation `id` is in a committed block.
    fn is_committed(&self, id: &OperationId) -> Result<bool, StoreError>;
    /// Up to `limit` pending operations with ids after `after` (all if `None`), in id order.
    fn pending_after(
        &self,
        after: Option<OperationId>,
        limit: usize,
    ) -> Result<Vec<Operation>, StoreError>;
    /// Whether the block at `height` may carry a membership change (false only if it
    /// certainly does not: see [`may_carry_change`](crate::chain::membership::may_carry_change)).
    fn block_may_carry_change(&self, height: u64) -> Result<bool, StoreError>;
    /// The last block this node signed.
    fn last_signed(&self) -> Result<Option<(u64, [u8; 32])>, StoreError>;
    /// This node's durable consensus vote (`None` if it never voted). A vote that does not
    /// decode is [`StoreError::Corrupt`]: the node must not vote again without its memory.
    fn vote(&self) -> Result<Option<VoteState>, StoreError>;
}

/// The membership in force after block `height`, that is for block `height + 1`: `initial`
/// (the cell's membership before block 1) with the changes of blocks `1..=height` applied.
/// Walks those blocks' framing and decodes only the ones carrying a change: the engine calls it
/// at startup and after a truncation, not per block.
pub fn membership_at(
    view: &dyn ChainView,
    initial: &Membership,
    height: u64,
) -> Result<Membership, StoreError> {
    fold_membership(view, initial, height).map(|(membership, _)| membership)
}

/// The last membership change that took effect in blocks `1..=height`, if any: the signed
/// document in force after `height` (the daemon rewrites `cell.toml` from it when the file is
/// behind the chain, after a crash between a commit and the rewrite).
pub fn last_change(
    view: &dyn ChainView,
    initial: &Membership,
    height: u64,
) -> Result<Option<SignedMembership>, StoreError> {
    fold_membership(view, initial, height).map(|(_, change)| change)
}

fn fold_membership(
    view: &dyn ChainView,
    initial: &Membership,
    height: u64,
) -> Result<(Membership, Option<SignedMembership>), StoreError> {
    let mut membership = initial.clone();
    let mut last = None;
    for h in 1..=height {
        // Most blocks carry entries only: their framing says so without decoding them.
        if !view.block_may_carry_change(h)? {
            continue;
        }
        let Some(block) = view.block(h)? else { break };
        if let Some(change) = membership.apply_block(&block) {
            last = Some(change);
        }
    }
    Ok((membership, last))
}

impl ChainView for ChainStore {
    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.get_header(height)
    }

    fn last_header(&self) -> Result<Option<BlockHeader>, StoreError> {
        ChainStore::last_header(self)
    }

    fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.get_block(height)
    }

    fn blocks(
        &self,
        from_height: u64,
        limit: usize,
        size_bytes_max: usize,
    ) -> Result<Vec<Block>, StoreError> {
        ChainStore::blocks(self, from_height, limit, size_bytes_max)
    }

    fn is_committed(&self, id: &OperationId) -> Result<bool, StoreError> {
        Ok(matches!(
            self.operation(id)?,
            Some((_, Location::Committed { .. }))
        ))
    }

    fn pending_after(
        &self,
        after: Option<OperationId>,
        limit: usize,
    ) -> Result<Vec<Operation>, StoreError> {
        match after {
            None => self.pending_range(.., limit),
            Some(id) => self.pending_range(
                (std::ops::Bound::Excluded(id), std::ops::Bound::Unbounded),
                limit,
            ),
        }
    }

    fn block_may_carry_change(&self, height: u64) -> Result<bool, StoreError> {
        Ok(self
            .get_block_bytes(height)?
            .is_some_and(|bytes| may_carry_change(&bytes)))
    }

    fn last_signed(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        ChainStore::last_signed(self)
    }

    fn vote(&self) -> Result<Option<VoteState>, StoreError> {
        match ChainStore::vote(self)? {
            None => Ok(None),
            Some(bytes) => {
                VoteState::from_bytes(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        what: "consensus vote".into(),
                        reason: e.to_string(),
                    })
            }
        }
    }
}
