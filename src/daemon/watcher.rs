//! Where a watched query's results go (`spec/store.md` section 9.1): a member's Store
//! subscription over the network, or an app of this node's app host. Both keep only the
//! newest results not yet taken, so a slow watcher gets fewer events, never a stale final
//! state.

use exocore_protocol::message::ErrorBody;
use exocore_protocol::store::StoreResponse;
use exocore_protocol::wire;
use tracing::warn;

use crate::apps::store::{WatchReceiver, WATCH_QUEUE_LEN};
use crate::net::EventSink;

/// A watcher of one query.
#[derive(Debug)]
pub enum Watcher {
    /// A member's subscription: results go out as encoded Events.
    Peer(EventSink),
    /// An app on this node: results go to the host's receiver as they are.
    App(async_channel::Sender<StoreResponse>),
}

impl Watcher {
    /// A watcher for an app, and the receiver its host reads (dropping it ends the watch).
    pub fn app() -> (Watcher, WatchReceiver) {
        let (sender, receiver) = async_channel::bounded(WATCH_QUEUE_LEN);
        (Watcher::App(sender), receiver)
    }

    /// Pushes results; they replace the ones not yet taken.
    pub fn push(&self, cell: &str, results: StoreResponse) {
        match self {
            Watcher::Peer(sink) => match wire::encode(&results) {
                Ok(payload) => {
                    sink.send(payload);
                }
                Err(e) => warn!("cell `{cell}`: watched query results do not encode: {e}"),
            },
            Watcher::App(sender) => {
                // Fails only when the app's watch ended: it is pruned at the next batch.
                let _ = sender.force_send(results);
            }
        }
    }

    /// Whether the watcher went away (unsubscribed, disconnected, or the app's watch ended).
    pub fn is_closed(&self) -> bool {
        match self {
            Watcher::Peer(sink) => sink.is_closed(),
            Watcher::App(sender) => sender.is_closed(),
        }
    }

    /// Ends the watch with an error: the peer gets it; the app's host sees the watch end
    /// (and tells the app the store ended it).
    pub fn fail(self, error: ErrorBody) {
        match self {
            Watcher::Peer(sink) => sink.fail(error),
            Watcher::App(sender) => drop(sender),
        }
    }
}
