//! The app's side of the host's calls: a task list polled after each event, the answers and
//! watch results waiting for their futures, and the host timer armed for the earliest sleep.
//! Called by the exports [`crate::app!`] defines; apps use the crate's functions instead.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use exocore_protocol::app::{AppEvent, AppRequest, AppRequestBody};
use exocore_protocol::message::ErrorBody;
use exocore_protocol::store::StoreResponse;
use exocore_protocol::wire;

use crate::ffi;

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// An answer: the store's response, or why there is none.
pub type Answer = Result<StoreResponse, ErrorBody>;

#[derive(Default)]
struct Runtime {
    tasks: Vec<Task>,
    inbox: Vec<u8>,
    next_id: u32,
    /// Requests sent, with their answer once it came.
    answers: BTreeMap<u32, Option<Answer>>,
    /// Live watches: their newest results not taken yet, and whether they ended.
    watches: BTreeMap<u32, (VecDeque<Answer>, bool)>,
    /// Times some sleep wants to be woken at (µs).
    wakeups: BTreeSet<u64>,
    /// What the host timer is set for.
    timer_us: Option<u64>,
}

thread_local! {
    static RUNTIME: RefCell<Runtime> = RefCell::new(Runtime::default());
}

fn with<T>(f: impl FnOnce(&mut Runtime) -> T) -> T {
    RUNTIME.with(|r| f(&mut r.borrow_mut()))
}

/// Runs `future` from `init` on.
pub fn start(future: impl Future<Output = ()> + 'static) {
    spawn(Box::pin(future));
    run();
}

/// Adds a task; it is polled at the next event (or now, during one).
pub fn spawn(task: Task) {
    with(|r| r.tasks.push(task));
}

/// The host's timer fired.
pub fn on_timer() {
    let now = crate::now_us();
    with(|r| {
        r.timer_us = None;
        r.wakeups.retain(|&at| at > now);
    });
    run();
}

/// A buffer of `len` bytes for the next event.
pub fn alloc(len: i32) -> i32 {
    with(|r| {
        r.inbox.clear();
        r.inbox.resize(len.max(0) as usize, 0);
        r.inbox.as_ptr() as i32
    })
}

/// An event arrived in the buffer [`alloc`] gave.
pub fn on_message(_ptr: i32, len: i32) {
    with(|r| {
        let len = (len.max(0) as usize).min(r.inbox.len());
        let event = match wire::decode::<AppEvent>(&r.inbox[..len]) {
            Ok(event) => event,
            Err(_) => return,
        };
        match event {
            AppEvent::Reply { id, response } => {
                if let Some(slot) = r.answers.get_mut(&id) {
                    *slot = Some(Ok(response));
                }
            }
            AppEvent::Failed { id, error } => {
                if let Some((queue, ended)) = r.watches.get_mut(&id) {
                    queue.push_back(Err(error));
                    *ended = true;
                } else if let Some(slot) = r.answers.get_mut(&id) {
                    *slot = Some(Err(error));
                }
            }
            AppEvent::Watched { id, response } => {
                if let Some((queue, _)) = r.watches.get_mut(&id) {
                    // Results are full states: only the newest matters.
                    queue.clear();
                    queue.push_back(Ok(response));
                }
            }
            AppEvent::Done { .. } => {}
        }
    });
    run();
}

/// Sends a request; returns its id, or the host's status when it refused it.
pub fn send(body: AppRequestBody, watch: bool) -> Result<u32, i32> {
    let id = with(|r| {
        r.next_id = r.next_id.wrapping_add(1);
        r.next_id
    });
    let bytes = wire::encode(&AppRequest { id, body }).map_err(|_| 3)?;
    match ffi::send(&bytes) {
        0 => {
            with(|r| {
                if watch {
                    r.watches.insert(id, (VecDeque::new(), false));
                } else {
                    r.answers.insert(id, None);
                }
            });
            Ok(id)
        }
        status => Err(status),
    }
}

/// The answer to request `id`, once it came (and then forgets the request).
pub fn take_answer(id: u32) -> Option<Answer> {
    with(|r| match r.answers.get(&id) {
        Some(Some(_)) => r.answers.remove(&id).flatten(),
        _ => None,
    })
}

/// The next results of watch `id`: `Some(None)` when it ended, `None` when nothing is new.
pub fn take_watched(id: u32) -> Option<Option<Answer>> {
    with(|r| {
        let (queue, ended) = r.watches.get_mut(&id)?;
        if let Some(answer) = queue.pop_front() {
            return Some(Some(answer));
        }
        if *ended {
            r.watches.remove(&id);
            return Some(None);
        }
        None
    })
}

/// Forgets watch `id` and tells the host.
pub fn unwatch(id: u32) {
    let live = with(|r| r.watches.remove(&id).is_some_and(|(_, ended)| !ended));
    if live {
        let _ = send(AppRequestBody::Unwatch { watch: id }, false).map(|unwatch| {
            // Nobody waits for the Done.
            with(|r| r.answers.remove(&unwatch));
        });
    }
}

/// Asks to be woken at `at_us`.
pub fn wake_at(at_us: u64) {
    with(|r| {
        r.wakeups.insert(at_us);
    });
}

/// Polls every task until none is added, then arms the host timer for the earliest wakeup.
fn run() {
    let mut context = Context::from_waker(Waker::noop());
    loop {
        let tasks = with(|r| std::mem::take(&mut r.tasks));
        if tasks.is_empty() {
            break;
        }
        let mut pending = Vec::with_capacity(tasks.len());
        let mut polled_any = false;
        for mut task in tasks {
            polled_any = true;
            if task.as_mut().poll(&mut context) == Poll::Pending {
                pending.push(task);
            }
        }
        let spawned = with(|r| {
            let spawned = !r.tasks.is_empty();
            pending.append(&mut r.tasks);
            r.tasks = pending;
            spawned
        });
        if !spawned || !polled_any {
            break;
        }
    }
    let now = crate::now_us();
    let (earliest, armed) = with(|r| (r.wakeups.iter().next().copied(), r.timer_us));
    if let Some(at) = earliest {
        if armed != Some(at) {
            ffi::set_timer((at.saturating_sub(now) / 1000) as i64 + 1);
            with(|r| r.timer_us = Some(at));
        }
    }
}
