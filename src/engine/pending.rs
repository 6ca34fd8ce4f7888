//! Pending sync: range reconciliation of the pending stores of two nodes.
//!
//! A session compares fingerprints (count and hash) of ranges of operation ids. A range
//! whose fingerprints differ is answered with the responder's operation headers when it
//! holds at most [`RANGE_HEADERS_MAX`] there, or split into [`RANGE_SPLIT`] sub-ranges
//! with their fingerprints otherwise. A node that receives headers fetches what it lacks
//! ([`GetOperations`]) and pushes what the other lacks ([`Operations`]). Each answer is
//! bounded ([`RANGE_ITEMS_MAX`] items, [`RECONCILE_DEPTH_MAX`] messages per session); a
//! session cut short by a bound is completed by the next one.
//!
//! Local writes are also pushed to every chain node at once, so reconciliation is the
//! repair path, not the fast path.

use std::collections::BTreeMap;
use std::ops::Bound;

use exocore_protocol::identity::PublicKey;

use super::message::{
    ChainMessage, GetOperations, OperationHeader, Operations, RangeContent, RangeItem, Reconcile,
    GET_OPERATIONS_IDS_MAX, OPERATIONS_BYTES_MAX, OPERATIONS_MAX, RANGE_HEADERS_MAX,
    RANGE_ITEMS_MAX, RANGE_SPLIT, RECONCILE_DEPTH_MAX,
};
use super::{key_id, reject, storage_error, ChainView, Engine, Event, Output, StoreWrite};
use crate::chain::{Operation, OperationId, Payload};

/// The pending operations of this node, mirrored in memory (bounded by
/// `Config::pending_operations_max`), with their hashes.
#[derive(Debug, Default)]
pub(crate) struct PendingSet {
    ops: BTreeMap<OperationId, (Operation, [u8; 32])>,
}

fn range(from: OperationId, to: Option<OperationId>) -> (Bound<OperationId>, Bound<OperationId>) {
    (
        Bound::Included(from),
        to.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

impl PendingSet {
    pub(crate) fn insert(&mut self, op: Operation) {
        let hash = op.hash();
        self.ops.insert(op.id, (op, hash));
    }

    pub(crate) fn remove(&mut self, id: &OperationId) -> bool {
        self.ops.remove(id).is_some()
    }

    pub(crate) fn contains(&self, id: &OperationId) -> bool {
        self.ops.contains_key(id)
    }

    pub(crate) fn hash_of(&self, id: &OperationId) -> Option<[u8; 32]> {
        self.ops.get(id).map(|(_, h)| *h)
    }

    pub(crate) fn get(&self, id: &OperationId) -> Option<&Operation> {
        self.ops.get(id).map(|(op, _)| op)
    }

    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Operations in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Operation> {
        self.ops.values().map(|(op, _)| op)
    }

    /// Count and fingerprint of a range: BLAKE3 of the operation hashes in id order.
    pub(crate) fn fingerprint(
        &self,
        from: OperationId,
        to: Option<OperationId>,
    ) -> (u32, [u8; 32]) {
        let mut hasher = blake3::Hasher::new();
        let mut count = 0u32;
        for (_, (_, hash)) in self.ops.range(range(from, to)) {
            hasher.update(hash);
            count = count.saturating_add(1);
        }
        (count, *hasher.finalize().as_bytes())
    }

    fn headers(&self, from: OperationId, to: Option<OperationId>) -> Vec<OperationHeader> {
        self.ops
            .range(range(from, to))
            .map(|(id, (_, hash))| OperationHeader {
                id: *id,
                hash: *hash,
            })
            .collect()
    }

    fn count(&self, from: OperationId, to: Option<OperationId>) -> usize {
        self.ops.range(range(from, to)).count()
    }

    /// Splits `[from, to)` into up to `parts` contiguous sub-ranges holding about as many of
    /// this node's operations each, with their fingerprints.
    fn split(&self, from: OperationId, to: Option<OperationId>, parts: usize) -> Vec<RangeItem> {
        let ids: Vec<OperationId> = self.ops.range(range(from, to)).map(|(id, _)| *id).collect();
        let mut bounds = vec![from];
        for k in 1..parts {
            let id = ids[k * ids.len() / parts];
            if id > *bounds.last().unwrap_or(&from) {
                bounds.push(id);
            }
        }
        let mut items = Vec::with_capacity(bounds.len());
        for (i, start) in bounds.iter().enumerate() {
            let end = bounds.get(i + 1).copied().or(to);
            let (count, hash) = self.fingerprint(*start, end);
            items.push(RangeItem {
                from: *start,
                to: end,
                content: RangeContent::Fingerprint { count, hash },
            });
        }
        items
    }

    /// What to send for a range at the start of a session or when fingerprints differ.
    fn describe(&self, from: OperationId, to: Option<OperationId>) -> Vec<RangeItem> {
        if self.count(from, to) <= RANGE_HEADERS_MAX {
            vec![RangeItem {
                from,
                to,
                content: RangeContent::Headers(self.headers(from, to)),
            }]
        } else {
            self.split(from, to, RANGE_SPLIT)
        }
    }
}

/// Splits operations into [`Operations`] messages within the bounds.
fn chunk_operations(ops: Vec<Operation>, reply_to: Option<u64>) -> Vec<ChainMessage> {
    let mut messages = Vec::new();
    let mut chunk: Vec<Operation> = Vec::new();
    let mut bytes = 0usize;
    for op in ops {
        let size = op.size_bytes();
        if !chunk.is_empty()
            && (chunk.len() == OPERATIONS_MAX || bytes + size > OPERATIONS_BYTES_MAX)
        {
            messages.push(ChainMessage::Operations(Operations {
                reply_to,
                operations: std::mem::take(&mut chunk),
            }));
            bytes = 0;
        }
        bytes += size;
        chunk.push(op);
    }
    if !chunk.is_empty() {
        messages.push(ChainMessage::Operations(Operations {
            reply_to,
            operations: chunk,
        }));
    }
    messages
}

impl Engine {
    /// Opens a session with each peer every `pending_sync_interval_ms`.
    pub(crate) fn pending_tick(&mut self, now_ms: u64, out: &mut Output) {
        let peers: Vec<PublicKey> = self.peers().collect();
        for peer in peers {
            let last = self.last_reconcile_ms.get(&key_id(&peer)).copied();
            if last.is_some_and(|last| {
                now_ms.saturating_sub(last) < self.config.pending_sync_interval_ms
            }) {
                continue;
            }
            self.last_reconcile_ms.insert(key_id(&peer), now_ms);
            let (count, hash) = self.pending.fingerprint(OperationId::MIN, None);
            let session = self.request_id();
            Engine::send(
                out,
                peer,
                ChainMessage::Reconcile(Reconcile {
                    session,
                    depth: 0,
                    items: vec![RangeItem {
                        from: OperationId::MIN,
                        to: None,
                        content: RangeContent::Fingerprint { count, hash },
                    }],
                }),
            );
        }
    }

    pub(crate) fn on_reconcile(&mut self, from: PublicKey, message: Reconcile, out: &mut Output) {
        let mut reply = Vec::new();
        let mut wants = Vec::new();
        let mut pushes = Vec::new();
        for item in message.items {
            match item.content {
                RangeContent::Fingerprint { count, hash } => {
                    if self.pending.fingerprint(item.from, item.to) != (count, hash) {
                        reply.extend(self.pending.describe(item.from, item.to));
                    }
                }
                RangeContent::Headers(theirs) => {
                    let in_range =
                        |id: &OperationId| *id >= item.from && item.to.is_none_or(|to| *id < to);
                    if !theirs.iter().all(|h| in_range(&h.id)) {
                        return reject(out, Some(from), "reconcile headers outside their range");
                    }
                    let theirs_by_id: BTreeMap<OperationId, [u8; 32]> =
                        theirs.iter().map(|h| (h.id, h.hash)).collect();
                    for header in &theirs {
                        if !self.pending.contains(&header.id) {
                            wants.push(header.id);
                        }
                    }
                    if self.pending.count(item.from, item.to) > RANGE_HEADERS_MAX {
                        // Too many to push here: let them compare sub-ranges with us.
                        reply.extend(self.pending.split(item.from, item.to, RANGE_SPLIT));
                    } else {
                        for ours in self.pending.headers(item.from, item.to) {
                            if !theirs_by_id.contains_key(&ours.id) {
                                if let Some(op) = self.pending.get(&ours.id) {
                                    pushes.push(op.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
        reply.truncate(RANGE_ITEMS_MAX);
        if !reply.is_empty() && message.depth < RECONCILE_DEPTH_MAX {
            Engine::send(
                out,
                from,
                ChainMessage::Reconcile(Reconcile {
                    session: message.session,
                    depth: message.depth + 1,
                    items: reply,
                }),
            );
        }
        for ids in wants.chunks(GET_OPERATIONS_IDS_MAX) {
            let request_id = self.request_id();
            Engine::send(
                out,
                from,
                ChainMessage::GetOperations(GetOperations {
                    request_id,
                    ids: ids.to_vec(),
                }),
            );
        }
        for message in chunk_operations(pushes, None) {
            Engine::send(out, from, message);
        }
    }

    pub(crate) fn on_get_operations(
        &mut self,
        from: PublicKey,
        message: GetOperations,
        out: &mut Output,
    ) {
        let ops: Vec<Operation> = message
            .ids
            .iter()
            .filter_map(|id| self.pending.get(id).cloned())
            .collect();
        if ops.is_empty() {
            return;
        }
        for reply in chunk_operations(ops, Some(message.request_id)) {
            Engine::send(out, from, reply);
        }
    }

    pub(crate) fn on_operations(
        &mut self,
        view: &dyn ChainView,
        from: PublicKey,
        message: Operations,
        out: &mut Output,
    ) {
        let added = self.add_operations(view, Some(from), message.operations, out);
        if !added.is_empty() {
            out.events.push(Event::OperationsAdded {
                ids: added,
                local: false,
            });
        }
    }

    /// A local write: verified like any operation, made durable, pushed to every chain node.
    pub(crate) fn local_write(
        &mut self,
        view: &dyn ChainView,
        operations: Vec<Operation>,
        out: &mut Output,
    ) {
        let ops_before = out.writes.len();
        let added = self.add_operations(view, None, operations, out);
        if added.is_empty() {
            return;
        }
        let new_ops: Vec<Operation> = added
            .iter()
            .filter_map(|id| self.pending.get(id).cloned())
            .collect();
        debug_assert_eq!(out.writes.len(), ops_before + 1);
        for message in chunk_operations(new_ops, None) {
            self.broadcast(out, &message);
        }
        out.events.push(Event::OperationsAdded {
            ids: added,
            local: true,
        });
    }

    /// Verifies operations and adds the new ones to the pending store (one `PutPending`).
    /// Returns the ids added.
    pub(crate) fn add_operations(
        &mut self,
        view: &dyn ChainView,
        peer: Option<PublicKey>,
        operations: Vec<Operation>,
        out: &mut Output,
    ) -> Vec<OperationId> {
        let mut new_ops = Vec::new();
        for op in operations {
            if let Some(hash) = self.pending.hash_of(&op.id) {
                if hash != op.hash() {
                    reject(
                        out,
                        peer,
                        format!(
                            "operation {} conflicts with a pending one of the same id",
                            op.id
                        ),
                    );
                }
                continue;
            }
            if new_ops.iter().any(|o: &Operation| o.id == op.id) {
                continue;
            }
            if let Err(e) = op.verify(&self.membership) {
                reject(out, peer, format!("invalid operation: {e}"));
                continue;
            }
            if let Payload::Membership(change) = &op.payload {
                let in_force = self.membership.version();
                if change.document.version <= in_force {
                    reject(
                        out,
                        peer,
                        format!(
                            "operation {}: membership change to version {} is not newer than version {in_force} in force (an old or replayed document)",
                            op.id, change.document.version
                        ),
                    );
                    continue;
                }
            }
            match view.is_committed(&op.id) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    storage_error(out, &e);
                    continue;
                }
            }
            if self.pending.len() + new_ops.len() >= self.config.pending_operations_max {
                reject(
                    out,
                    peer,
                    format!("pending store full ({} operations)", self.pending.len()),
                );
                break;
            }
            new_ops.push(op);
        }
        if new_ops.is_empty() {
            return Vec::new();
        }
        let ids = new_ops.iter().map(|op| op.id).collect();
        for op in &new_ops {
            self.pending.insert(op.clone());
        }
        out.writes.push(StoreWrite::PutPending(new_ops));
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{EntryKey, Operation};
    use exocore_protocol::identity::Keypair;

    fn ops(count: u64) -> Vec<Operation> {
        let cell = Keypair::generate();
        let node = Keypair::generate();
        let key = EntryKey::from_cell_keypair(&cell);
        (0..count)
            .map(|t| {
                Operation::new_entry(
                    &cell.public(),
                    &key,
                    OperationId::new(t + 1, &node.public()),
                    &node,
                    b"x",
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn split_covers_the_range_contiguously() {
        let mut set = PendingSet::default();
        for op in ops(200) {
            set.insert(op);
        }
        let items = set.split(OperationId::MIN, None, RANGE_SPLIT);
        assert_eq!(items.len(), RANGE_SPLIT);
        assert_eq!(items[0].from, OperationId::MIN);
        assert_eq!(items.last().unwrap().to, None);
        let mut total = 0;
        for pair in items.windows(2) {
            assert_eq!(pair[0].to, Some(pair[1].from));
        }
        for item in &items {
            let RangeContent::Fingerprint { count, .. } = item.content else {
                panic!()
            };
            total += count;
        }
        assert_eq!(total, 200);
        assert_eq!(set.describe(OperationId::MIN, None).len(), RANGE_SPLIT);
    }

    #[test]
    fn operations_are_chunked_within_bounds() {
        let messages = chunk_operations(ops(600), Some(3));
        assert_eq!(messages.len(), 3);
        for m in &messages {
            m.check_bounds().unwrap();
        }
    }
}
