//! The publisher's side of one subscription a peer opened (`spec/protocol.md` section 10): an
//! [`EventSink`] a service pushes Events into, and the connection task that writes them.
//!
//! Coalescing policy: a sink holds at most **one** pending event. [`EventSink::send`] never
//! blocks: it replaces the pending event, if any, with the new one, and the connection's
//! writer task takes the pending event when the connection's send queue has room. A slow
//! peer therefore gets fewer events, each one the newest state at the time it was taken, and
//! always the last one sent: events are full states (watched query results), so dropping an
//! intermediate one loses nothing. Events are only written after the Response accepting the
//! subscription.
//!
//! Ends: the peer's Unsubscribe or the connection's end closes the sink
//! ([`EventSink::is_closed`], [`EventSink::closed`]), and further sends are ignored. The
//! service ends it by dropping the sink (an Unsubscribe follows the last pending event) or
//! with [`EventSink::fail`] (an Error follows it).

use std::sync::{Arc, Mutex};

use exocore_protocol::envelope::{error_envelope, Envelope, Kind, Service};
use exocore_protocol::message::ErrorBody;
use futures_lite::future;

/// What the sink and its writer task share.
struct Slot {
    /// The newest event not yet queued for the peer.
    event: Option<Vec<u8>>,
    /// How the service ended the subscription, once it did: `None` in it is a normal end.
    end: Option<Option<ErrorBody>>,
}

/// Where a service pushes the Events of one subscription (see the module docs).
pub struct EventSink {
    id: u64,
    slot: Arc<Mutex<Slot>>,
    /// A token wakes the writer task; dropping the sink closes it.
    wake: async_channel::Sender<()>,
    /// Closed by the connection on Unsubscribe or at its end.
    cancel: async_channel::Receiver<()>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventSink#{}", self.id)
    }
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EventSink {
    /// The subscription's id (the Subscribe's request id).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Pushes an event; replaces the one still pending, if any. Never blocks. Returns false
    /// when the subscription has ended (the event is dropped: nobody wants it).
    pub fn send(&self, payload: Vec<u8>) -> bool {
        if self.is_closed() {
            return false;
        }
        lock(&self.slot).event = Some(payload);
        let _ = self.wake.try_send(());
        true
    }

    /// Whether the peer unsubscribed or the connection ended.
    pub fn is_closed(&self) -> bool {
        self.cancel.is_closed()
    }

    /// Waits until the peer unsubscribes or the connection ends.
    pub async fn closed(&self) {
        while self.cancel.recv().await.is_ok() {}
    }

    /// Ends the subscription with an Error (after the pending event).
    pub fn fail(self, error: ErrorBody) {
        lock(&self.slot).end = Some(Some(error));
    }
}

/// The connection's end of a sink: writes its events, then its end.
pub(super) struct SinkWriter {
    service: Service,
    id: u64,
    slot: Arc<Mutex<Slot>>,
    wake: async_channel::Receiver<()>,
    cancel: async_channel::Receiver<()>,
}

/// A new sink for subscription `id` of `service`, its writer, and the handle that cancels it
/// (close it on Unsubscribe or at the connection's end).
pub(super) fn sink(
    service: Service,
    id: u64,
) -> (EventSink, SinkWriter, async_channel::Sender<()>) {
    let slot = Arc::new(Mutex::new(Slot {
        event: None,
        end: None,
    }));
    let (wake_tx, wake) = async_channel::bounded(1);
    let (cancel_tx, cancel) = async_channel::bounded(1);
    (
        EventSink {
            id,
            slot: slot.clone(),
            wake: wake_tx,
            cancel: cancel.clone(),
        },
        SinkWriter {
            service,
            id,
            slot,
            wake,
            cancel,
        },
        cancel_tx,
    )
}

impl SinkWriter {
    /// Queues the sink's events into `outbox` (waiting for room) until the subscription ends;
    /// returns when it has. Call it once the Response accepting the subscription is queued.
    pub(super) async fn run(self, outbox: async_channel::Sender<Envelope>) {
        enum Next {
            Woken(bool),
            Cancelled,
        }
        loop {
            let next = future::or(
                async { Next::Woken(self.wake.recv().await.is_ok()) },
                async {
                    while self.cancel.recv().await.is_ok() {}
                    Next::Cancelled
                },
            )
            .await;
            let sink_alive = match next {
                Next::Cancelled => return,
                Next::Woken(alive) => alive,
            };
            let event = lock(&self.slot).event.take();
            if let Some(payload) = event {
                let envelope = Envelope {
                    service: self.service,
                    kind: Kind::Event,
                    request_id: self.id,
                    payload,
                };
                if !self.queue(&outbox, envelope).await {
                    return;
                }
            }
            if !sink_alive {
                // The service dropped the sink: its last event is queued, now its end.
                let end = lock(&self.slot).end.take().flatten();
                let envelope = match end {
                    Some(error) => {
                        match error_envelope(self.service, self.id, error.code, &error.message) {
                            Ok(envelope) => envelope,
                            Err(_) => return,
                        }
                    }
                    None => Envelope {
                        service: self.service,
                        kind: Kind::Unsubscribe,
                        request_id: self.id,
                        payload: Vec::new(),
                    },
                };
                self.queue(&outbox, envelope).await;
                return;
            }
        }
    }

    /// Queues one envelope, waiting for room; false if the subscription or the connection
    /// ended meanwhile.
    async fn queue(&self, outbox: &async_channel::Sender<Envelope>, envelope: Envelope) -> bool {
        future::or(async { outbox.send(envelope).await.is_ok() }, async {
            while self.cancel.recv().await.is_ok() {}
            false
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(outbox: &async_channel::Receiver<Envelope>) -> Vec<(Kind, Vec<u8>)> {
        std::iter::from_fn(|| outbox.try_recv().ok())
            .map(|e| (e.kind, e.payload))
            .collect()
    }

    #[test]
    fn a_full_queue_coalesces_to_the_newest_event_then_the_end() {
        smol::block_on(async {
            let (outbox_tx, outbox) = async_channel::bounded(1);
            let (sink, writer, _cancel) = sink(Service::Store, 7);
            // The connection's queue is full: the writer cannot queue anything yet.
            outbox_tx
                .send(Envelope::request(Service::Ping, 1, vec![]))
                .await
                .unwrap();
            let task = smol::spawn(writer.run(outbox_tx));
            for i in 0..10u8 {
                assert!(sink.send(vec![i]));
                smol::Timer::after(std::time::Duration::from_millis(2)).await;
            }
            drop(sink);
            let mut seen = Vec::new();
            while !task.is_finished() || !outbox.is_empty() {
                if let Ok(e) = outbox.recv().await {
                    seen.push((e.kind, e.payload));
                }
                seen.extend(payloads(&outbox));
            }
            task.await;
            // The filler, at most the event taken before the queue had room, the newest
            // event, then the end.
            assert_eq!(seen.first().unwrap().0, Kind::Request);
            assert!(seen.len() <= 4, "{seen:?}");
            assert_eq!(seen[seen.len() - 2], (Kind::Event, vec![9]));
            assert_eq!(seen.last().unwrap().0, Kind::Unsubscribe);
        });
    }

    #[test]
    fn a_cancelled_sink_is_closed_and_takes_nothing() {
        let (sink, _writer, cancel) = sink(Service::Store, 1);
        assert!(!sink.is_closed());
        cancel.close();
        assert!(sink.is_closed());
        assert!(!sink.send(vec![1]));
        smol::block_on(sink.closed());
    }
}
