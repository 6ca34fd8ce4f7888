//! The scheduler: one thread runs every app of a node. It sleeps until the earliest timer or
//! restart is due or something arrives in its inbox (an installation, a store answer); it
//! never polls. Store requests run as tasks on the thread's executor, so a slow store never
//! holds an app's call, and their answers come back through the inbox, tagged with the
//! instance's generation so an answer for an instance that was since restarted is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use exocore_protocol::app::{AppEvent, AppRequest, AppRequestBody};
use exocore_protocol::message::{ErrorBody, ErrorCode};
use exocore_protocol::store::{StoreRequest, StoreResponse};
use futures_lite::future;
use smol::{LocalExecutor, Task, Timer};
use tracing::{error, info};
use wasmi::{Engine, Linker};

use super::instance::{self, CallOutcome, Fault, HostState, Instance, TimerChange};
use super::limits::{Limits, RECENT_LOGS_MAX};
use super::module::{self, AppModule, ModuleError};
use super::package::VerifiedApp;
use super::permissions::Permissions;
use super::store::AppStore;

/// Why the host refused something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The host thread could not start.
    Thread(String),
    /// The module does not follow the ABI.
    Module(ModuleError),
    /// The host has stopped.
    Stopped,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Thread(e) => write!(f, "cannot start the app host thread: {e}"),
            HostError::Module(e) => write!(f, "{e}"),
            HostError::Stopped => write!(f, "the app host has stopped"),
        }
    }
}

impl std::error::Error for HostError {}

/// Whether an app runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppState {
    /// Waiting to start (just installed).
    Starting,
    /// Its instance is alive (waiting for its timer or messages, or in a call).
    Running,
    /// Stopped by a fault; restarts after the backoff.
    Stopped {
        /// The fault.
        reason: String,
        /// The backoff it waits.
        restart_in_ms: u64,
    },
}

/// What the host knows of one app, for `exo cell app list` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStatus {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Running or why not.
    pub state: AppState,
    /// Instances started (the first start included).
    pub starts: u32,
    /// Faults so far.
    pub faults: u32,
    /// The last fault's reason.
    pub last_fault: Option<String>,
    /// Its most recent log lines, oldest first.
    pub logs: Vec<String>,
    /// Fuel used by its last call.
    pub fuel_last_call: u64,
    /// Linear memory of its instance.
    pub memory_bytes: usize,
}

enum Input {
    Install(Box<VerifiedApp>, AppModule),
    Remove(String),
    Answer {
        app: String,
        generation: u64,
        event: AppEvent,
    },
    Stop,
}

type Statuses = Arc<Mutex<BTreeMap<String, AppStatus>>>;

/// The running app host of a node (or of one cell).
pub struct AppHost {
    engine: Engine,
    inputs: async_channel::Sender<Input>,
    statuses: Statuses,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for AppHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppHost").finish_non_exhaustive()
    }
}

impl AppHost {
    /// Starts the host thread over `store`.
    pub fn start(limits: Limits, store: Arc<dyn AppStore>) -> Result<AppHost, HostError> {
        let engine = module::engine();
        // Unbounded, but bounded in practice: installations come from the operator, and
        // store answers from at most `in_flight_max` requests per instance.
        let (inputs, receiver) = async_channel::unbounded();
        let statuses: Statuses = Arc::default();
        let thread = std::thread::Builder::new()
            .name("apps".into())
            .spawn({
                let scheduler = Scheduler {
                    linker: instance::linker(&engine),
                    limits,
                    store,
                    inputs: inputs.clone(),
                    slots: BTreeMap::new(),
                    statuses: statuses.clone(),
                };
                move || scheduler.run(receiver)
            })
            .map_err(|e| HostError::Thread(e.to_string()))?;
        Ok(AppHost {
            engine,
            inputs,
            statuses,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Installs (or replaces) a verified app; it starts at once.
    pub fn install(&self, app: VerifiedApp) -> Result<(), HostError> {
        let module = AppModule::compile(&self.engine, &app.module).map_err(HostError::Module)?;
        self.inputs
            .try_send(Input::Install(Box::new(app), module))
            .map_err(|_| HostError::Stopped)
    }

    /// Stops and forgets an app.
    pub fn remove(&self, name: &str) -> Result<(), HostError> {
        self.inputs
            .try_send(Input::Remove(name.to_string()))
            .map_err(|_| HostError::Stopped)
    }

    /// Every app's status, by name.
    pub fn statuses(&self) -> Vec<AppStatus> {
        let statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        statuses.values().cloned().collect()
    }

    /// One app's status.
    pub fn status(&self, name: &str) -> Option<AppStatus> {
        let statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        statuses.get(name).cloned()
    }

    /// Stops every app and the thread.
    pub fn stop(&self) {
        let _ = self.inputs.try_send(Input::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                error!("the app host thread panicked");
            }
        }
    }
}

impl Drop for AppHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One installed app and its instance, if running.
struct Slot {
    module: AppModule,
    permissions: Arc<Permissions>,
    instance: Option<Instance>,
    generation: u64,
    restart_at: Instant,
    started_at: Instant,
    timer_at: Option<Instant>,
    /// Answers waiting for delivery, in arrival order.
    events: VecDeque<AppEvent>,
    /// The newest undelivered results of each watch.
    watched: BTreeMap<u32, StoreResponse>,
    /// Live watches: dropping the task ends the watch.
    watches: HashMap<u32, Task<()>>,
    failures: u32,
    status: AppStatus,
}

struct Scheduler {
    linker: Linker<HostState>,
    limits: Limits,
    store: Arc<dyn AppStore>,
    inputs: async_channel::Sender<Input>,
    slots: BTreeMap<String, Slot>,
    statuses: Statuses,
}

impl Scheduler {
    fn run(mut self, receiver: async_channel::Receiver<Input>) {
        let executor = LocalExecutor::new();
        future::block_on(executor.run(async {
            loop {
                while let Ok(input) = receiver.try_recv() {
                    if !self.take(input) {
                        return;
                    }
                }
                let now = Instant::now();
                let names: Vec<String> = self.slots.keys().cloned().collect();
                for name in names {
                    self.step(&executor, &name, now);
                }
                self.publish();
                let input = match self.next_due() {
                    Some(due) if due <= Instant::now() => continue,
                    Some(due) => {
                        future::or(async { receiver.recv().await.ok() }, async {
                            Timer::at(due).await;
                            None
                        })
                        .await
                    }
                    None => receiver.recv().await.ok(),
                };
                if let Some(input) = input {
                    if !self.take(input) {
                        return;
                    }
                }
            }
        }));
        info!("app host stopped");
    }

    /// The earliest time something is due: a restart, a timer, or now for queued events.
    fn next_due(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|slot| match &slot.instance {
                None => Some(slot.restart_at),
                Some(_) if !slot.events.is_empty() || !slot.watched.is_empty() => {
                    Some(Instant::now())
                }
                Some(_) => slot.timer_at,
            })
            .min()
    }

    /// Takes one input; false to stop.
    fn take(&mut self, input: Input) -> bool {
        match input {
            Input::Stop => return false,
            Input::Install(app, module) => {
                let name = app.manifest.name.clone();
                info!("app {name} {} installed", app.manifest.version);
                let now = Instant::now();
                let status = AppStatus {
                    name: name.clone(),
                    version: app.manifest.version.clone(),
                    state: AppState::Starting,
                    starts: 0,
                    faults: 0,
                    last_fault: None,
                    logs: Vec::new(),
                    fuel_last_call: 0,
                    memory_bytes: 0,
                };
                let permissions = Arc::new(app.manifest.permissions());
                self.slots.insert(
                    name,
                    Slot {
                        module,
                        permissions,
                        instance: None,
                        generation: 0,
                        restart_at: now,
                        started_at: now,
                        timer_at: None,
                        events: VecDeque::new(),
                        watched: BTreeMap::new(),
                        watches: HashMap::new(),
                        failures: 0,
                        status,
                    },
                );
            }
            Input::Remove(name) => {
                if self.slots.remove(&name).is_some() {
                    info!("app {name} removed");
                }
            }
            Input::Answer {
                app,
                generation,
                event,
            } => {
                let Some(slot) = self.slots.get_mut(&app) else {
                    return true;
                };
                if slot.generation != generation || slot.instance.is_none() {
                    return true;
                }
                match event {
                    AppEvent::Watched { id, response } => {
                        if slot.watches.contains_key(&id) {
                            slot.watched.insert(id, response);
                        }
                    }
                    AppEvent::Failed { id, .. } if slot.watches.contains_key(&id) => {
                        slot.watches.remove(&id);
                        slot.watched.remove(&id);
                        slot.events.push_back(event);
                    }
                    event => slot.events.push_back(event),
                }
            }
        }
        true
    }

    /// Starts, feeds or wakes one app as due.
    fn step(&mut self, executor: &LocalExecutor<'_>, name: &str, now: Instant) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.instance.is_none() {
            if slot.restart_at > now {
                return;
            }
            slot.generation += 1;
            slot.started_at = now;
            slot.status.starts += 1;
            match Instance::start(&self.linker, &slot.module, name, &self.limits) {
                Ok((instance, outcome)) => {
                    slot.instance = Some(instance);
                    slot.status.state = AppState::Running;
                    self.after_call(executor, name, outcome);
                }
                Err(fault) => self.fault(name, fault),
            }
            return;
        }
        // What is queued now; what these calls queue waits for the next round.
        let mut due: Vec<AppEvent> = slot.events.drain(..).collect();
        due.extend(
            std::mem::take(&mut slot.watched)
                .into_iter()
                .map(|(id, response)| AppEvent::Watched { id, response }),
        );
        for event in due {
            let Some(instance) = self.slots.get_mut(name).and_then(|s| s.instance.as_mut()) else {
                return;
            };
            match instance.deliver(&event) {
                Ok(outcome) => self.after_call(executor, name, outcome),
                Err(fault) => return self.fault(name, fault),
            }
        }
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.timer_at.is_some_and(|at| at <= now) {
            slot.timer_at = None;
            if let Some(instance) = slot.instance.as_mut() {
                match instance.on_timer() {
                    Ok(outcome) => self.after_call(executor, name, outcome),
                    Err(fault) => self.fault(name, fault),
                }
            }
        }
    }

    /// Applies what a call left: timer, requests, logs.
    fn after_call(&mut self, executor: &LocalExecutor<'_>, name: &str, outcome: CallOutcome) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        match outcome.timer {
            TimerChange::Unchanged => {}
            TimerChange::Set(delay) => slot.timer_at = Some(Instant::now() + delay),
            TimerChange::Cancel => slot.timer_at = None,
        }
        slot.status.fuel_last_call = outcome.fuel_used;
        if let Some(instance) = slot.instance.as_mut() {
            slot.status.memory_bytes = instance.memory_bytes();
            let logs = &mut slot.status.logs;
            logs.extend(instance.take_logs());
            let over = logs.len().saturating_sub(RECENT_LOGS_MAX);
            logs.drain(..over);
        }
        for request in outcome.requests {
            self.dispatch(executor, name, request);
        }
    }

    /// Starts the work of one accepted request.
    fn dispatch(&mut self, executor: &LocalExecutor<'_>, name: &str, request: AppRequest) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        let id = request.id;
        let answer = {
            let inputs = self.inputs.clone();
            let app = name.to_string();
            let generation = slot.generation;
            move |event: AppEvent| {
                let _ = inputs.try_send(Input::Answer {
                    app: app.clone(),
                    generation,
                    event,
                });
            }
        };
        let store = self.store.clone();
        let permissions = slot.permissions.clone();
        match request.body {
            AppRequestBody::Unwatch { watch } => {
                if slot.watches.remove(&watch).is_some() {
                    slot.watched.remove(&watch);
                    if let Some(instance) = slot.instance.as_mut() {
                        instance.end(watch);
                    }
                    slot.events.push_back(AppEvent::Done { id });
                } else {
                    slot.events.push_back(AppEvent::Failed {
                        id,
                        error: ErrorBody {
                            code: ErrorCode::UNKNOWN_SUBSCRIPTION,
                            message: format!("no live watch has id {watch}"),
                        },
                    });
                }
            }
            AppRequestBody::Store(StoreRequest::Watch { query }) => {
                let task = executor.spawn(async move {
                    let receiver = match permissions.watch(&*store, &query).await {
                        Ok(receiver) => receiver,
                        Err(error) => return answer(AppEvent::Failed { id, error }),
                    };
                    while let Ok(response) = receiver.recv().await {
                        answer(AppEvent::Watched { id, response });
                    }
                    answer(AppEvent::Failed {
                        id,
                        error: ErrorBody {
                            code: ErrorCode::SHUTTING_DOWN,
                            message: "the store ended the watch".into(),
                        },
                    });
                });
                slot.watches.insert(id, task);
            }
            AppRequestBody::Store(request) => {
                executor
                    .spawn(async move {
                        answer(match permissions.request(&*store, request).await {
                            Ok(response) => AppEvent::Reply { id, response },
                            Err(error) => AppEvent::Failed { id, error },
                        });
                    })
                    .detach();
            }
        }
    }

    /// Stops an app after a fault and schedules its restart.
    fn fault(&mut self, name: &str, fault: Fault) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        let now = Instant::now();
        slot.instance = None;
        slot.timer_at = None;
        slot.events.clear();
        slot.watched.clear();
        slot.watches.clear();
        if now.duration_since(slot.started_at)
            >= Duration::from_millis(self.limits.healthy_after_ms)
        {
            slot.failures = 0;
        }
        slot.failures += 1;
        let delay_ms = self.limits.backoff_ms(slot.failures);
        slot.restart_at = now + Duration::from_millis(delay_ms);
        let reason = fault.to_string();
        error!(
            "app {name} stopped: {reason}; restart in {:.1} s",
            delay_ms as f64 / 1000.0
        );
        slot.status.faults += 1;
        slot.status.last_fault = Some(reason.clone());
        slot.status.state = AppState::Stopped {
            reason,
            restart_in_ms: delay_ms,
        };
    }

    fn publish(&self) {
        let mut statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        statuses.clear();
        for (name, slot) in &self.slots {
            statuses.insert(name.clone(), slot.status.clone());
        }
    }
}
