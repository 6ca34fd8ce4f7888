//! Subscriptions: the per-subscription buffer filled by the reader, and the [`Subscription`]
//! handle that drains it.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use event_listener::EventListener;
use futures_lite::{ready, Future, Stream};

use super::Handle;
use crate::envelope::Service;
use crate::error::Error;

/// One event of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The service-specific event body.
    pub payload: Vec<u8>,
    /// How many events the node sent just before this one that were dropped because the
    /// consumer was slow and the buffer was full (0 almost always). The newest events are
    /// kept: a consumer of full states loses nothing it needs; a consumer of changes should
    /// resynchronise.
    pub skipped_before: u64,
}

/// How a subscription ends.
pub(super) enum End {
    /// The publisher's Unsubscribe, or the error below already delivered.
    Finished,
    /// The publisher's Error, or the connection's end: delivered once, after the events.
    Failed(Error),
}

struct Buffered {
    events: VecDeque<Event>,
    /// Payload bytes in `events`.
    bytes: usize,
    end: Option<End>,
}

/// The buffer of one subscription: filled by the reader, drained by the [`Subscription`].
pub(super) struct Queue {
    buffered: Mutex<Buffered>,
    ready: event_listener::Event,
    events_max: usize,
    bytes_max: usize,
}

impl Queue {
    pub(super) fn new(events_max: usize, bytes_max: usize) -> Queue {
        debug_assert!(events_max >= 1);
        Queue {
            buffered: Mutex::new(Buffered {
                events: VecDeque::new(),
                bytes: 0,
                end: None,
            }),
            ready: event_listener::Event::new(),
            events_max,
            bytes_max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffered> {
        self.buffered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds the newest event; drops the oldest ones while over a limit, never the newest.
    pub(super) fn push(&self, payload: Vec<u8>) {
        let mut buffered = self.lock();
        if buffered.end.is_some() {
            return;
        }
        buffered.bytes += payload.len();
        buffered.events.push_back(Event {
            payload,
            skipped_before: 0,
        });
        while buffered.events.len() > 1
            && (buffered.events.len() > self.events_max || buffered.bytes > self.bytes_max)
        {
            let Some(dropped) = buffered.events.pop_front() else {
                break;
            };
            buffered.bytes -= dropped.payload.len();
            if let Some(next) = buffered.events.front_mut() {
                next.skipped_before = next
                    .skipped_before
                    .saturating_add(dropped.skipped_before)
                    .saturating_add(1);
            }
        }
        debug_assert!(buffered.events.len() <= self.events_max);
        drop(buffered);
        self.ready.notify(usize::MAX);
    }

    /// Records the end; the first one wins, and events pushed afterwards are ignored.
    pub(super) fn end(&self, end: End) {
        let mut buffered = self.lock();
        if buffered.end.is_none() {
            buffered.end = Some(end);
        }
        drop(buffered);
        self.ready.notify(usize::MAX);
    }

    /// The next item if there is one: `Some(Some(item))`, `Some(None)` at the end, or `None`
    /// when the consumer must wait.
    fn try_next(&self) -> Option<Option<Result<Event, Error>>> {
        let mut buffered = self.lock();
        if let Some(event) = buffered.events.pop_front() {
            buffered.bytes -= event.payload.len();
            return Some(Some(Ok(event)));
        }
        match buffered.end.take() {
            None => None,
            Some(End::Failed(error)) => {
                buffered.end = Some(End::Finished);
                Some(Some(Err(error)))
            }
            Some(End::Finished) => {
                buffered.end = Some(End::Finished);
                Some(None)
            }
        }
    }
}

/// An open subscription: yields the node's events in order, then ends (`None`) when the node
/// ends it with Unsubscribe. A failure (the node's Error, or the connection's end) is
/// yielded once as `Some(Err(_))`, after the buffered events, then `None`.
///
/// Dropping it (or [`Subscription::cancel`]) sends Unsubscribe. It keeps the connection open
/// even if every [`super::Client`] handle is dropped.
pub struct Subscription {
    id: u64,
    service: Service,
    response: Vec<u8>,
    queue: Arc<Queue>,
    handle: Arc<Handle>,
    listener: Option<EventListener>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(super) fn new(
        id: u64,
        service: Service,
        response: Vec<u8>,
        queue: Arc<Queue>,
        handle: Arc<Handle>,
    ) -> Subscription {
        Subscription {
            id,
            service,
            response,
            queue,
            handle,
            listener: None,
        }
    }

    /// The subscription's id on this connection (the Subscribe's request id).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The payload of the node's Response accepting the subscription (service-specific,
    /// possibly empty).
    pub fn response(&self) -> &[u8] {
        &self.response
    }

    /// The next event; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Event, Error>> {
        futures_lite::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Ends the subscription: sends Unsubscribe (unless it already ended). Events already
    /// sent by the node are ignored. The same as dropping it.
    pub fn cancel(self) {}
}

impl Stream for Subscription {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.queue.try_next() {
                this.listener = None;
                return Poll::Ready(item);
            }
            match &mut this.listener {
                // Listen, then look again: an event pushed in between is not missed.
                None => this.listener = Some(this.queue.ready.listen()),
                Some(listener) => {
                    ready!(Pin::new(listener).poll(cx));
                    this.listener = None;
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.handle.shared.unsubscribe(self.id, self.service);
    }
}
