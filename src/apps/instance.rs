//! One running instance of an app: its wasmi store (memory limit, fuel), the host functions
//! of `spec/apps.md` section 2.1, the calls into its exports, and what went wrong as a
//! [`Fault`] (never a panic).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use exocore_protocol::app::{send_status, AppEvent, AppRequest};
use exocore_protocol::wire;
use tracing::{debug, error, info, trace, warn};
use wasmi::{
    Caller, Engine, Extern, Linker, Memory, Store, StoreLimits, StoreLimitsBuilder, TrapCode,
    TypedFunc,
};

use super::limits::{
    Limits, LOG_LINES_PER_CALL, LOG_LINE_BYTES_MAX, RECENT_LOGS_MAX, REQUEST_BYTES_MAX,
    TIMER_DELAY_MS_MAX,
};
use super::module::AppModule;

/// Why an instance was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// It could not be instantiated (e.g. it declares more memory than allowed).
    Instantiate(String),
    /// A call used all of its fuel.
    OutOfFuel {
        /// The export called.
        call: &'static str,
        /// The fuel it had.
        fuel: u64,
    },
    /// It tried to grow its memory past the limit.
    MemoryLimit {
        /// The export called.
        call: &'static str,
        /// The limit.
        bytes_max: usize,
    },
    /// It trapped.
    Trap {
        /// The export called.
        call: &'static str,
        /// The trap.
        reason: String,
    },
    /// It passed a buffer outside its memory to a host function, or `alloc` returned one.
    BadBuffer {
        /// The host function, or `alloc`.
        function: &'static str,
        /// The pointer.
        ptr: u32,
        /// The length.
        len: u32,
        /// The memory's size then.
        memory_bytes: usize,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Instantiate(e) => write!(f, "cannot start: {e}"),
            Fault::OutOfFuel { call, fuel } => {
                write!(f, "ran out of fuel in `{call}` (used all its {fuel} units)")
            }
            Fault::MemoryLimit { call, bytes_max } => write!(
                f,
                "exceeded its memory limit in `{call}` (tried to grow past {bytes_max} bytes)"
            ),
            Fault::Trap { call, reason } => write!(f, "trapped in `{call}`: {reason}"),
            Fault::BadBuffer {
                function,
                ptr,
                len,
                memory_bytes,
            } => write!(
                f,
                "{function}: buffer (ptr {ptr}, len {len}) is outside the app's memory of \
                 {memory_bytes} bytes"
            ),
        }
    }
}

/// What the app asked for its timer during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerChange {
    /// Nothing.
    Unchanged,
    /// Call `on_timer` after this delay.
    Set(Duration),
    /// No timer.
    Cancel,
}

/// The host's side of an instance, reachable from the host functions.
pub struct HostState {
    app: String,
    limits: StoreLimits,
    in_flight_max: usize,
    /// Ids of requests and watches sent and not ended.
    unanswered: BTreeSet<u32>,
    /// Requests accepted during the current call.
    requests: Vec<AppRequest>,
    timer: TimerChange,
    fault: Option<Fault>,
    log_lines: u32,
    recent_logs: Vec<String>,
}

/// What a call left for the host to do.
#[derive(Debug)]
pub struct CallOutcome {
    /// Requests the app sent, in order.
    pub requests: Vec<AppRequest>,
    /// Its timer.
    pub timer: TimerChange,
    /// Fuel the call used.
    pub fuel_used: u64,
}

/// The host functions, shared by every instance of an engine.
pub fn linker(engine: &Engine) -> Linker<HostState> {
    let mut linker = Linker::new(engine);
    // The names are distinct, so defining them cannot fail.
    let _ = linker.func_wrap("exo", "log", host_log);
    let _ = linker.func_wrap("exo", "now_us", |_: Caller<'_, HostState>| -> i64 {
        crate::clock::now_us() as i64
    });
    let _ = linker.func_wrap(
        "exo",
        "set_timer",
        |mut caller: Caller<'_, HostState>, delay_ms: i64| {
            caller.data_mut().timer = if delay_ms < 0 {
                TimerChange::Cancel
            } else {
                TimerChange::Set(Duration::from_millis(
                    (delay_ms as u64).min(TIMER_DELAY_MS_MAX),
                ))
            };
        },
    );
    let _ = linker.func_wrap("exo", "send", host_send);
    linker
}

/// Copies `(ptr, len)` out of the caller's memory, at most `keep` bytes of it; a buffer
/// outside the memory records a fault and traps.
fn read_buffer(
    caller: &mut Caller<'_, HostState>,
    function: &'static str,
    ptr: i32,
    len: i32,
    keep: usize,
) -> Result<Vec<u8>, wasmi::Error> {
    let (ptr, len) = (ptr as u32, len as u32);
    let memory = caller.get_export("memory").and_then(Extern::into_memory);
    let size = memory.map(|m| m.data_size(&*caller)).unwrap_or(0);
    let end = (ptr as u64) + (len as u64);
    let Some(memory) = memory.filter(|_| end <= size as u64) else {
        let fault = Fault::BadBuffer {
            function,
            ptr,
            len,
            memory_bytes: size,
        };
        let message = fault.to_string();
        caller.data_mut().fault = Some(fault);
        return Err(wasmi::Error::new(message));
    };
    let start = ptr as usize;
    let take = (len as usize).min(keep);
    Ok(memory.data(&*caller)[start..start + take].to_vec())
}

fn host_log(
    mut caller: Caller<'_, HostState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> Result<(), wasmi::Error> {
    let bytes = read_buffer(&mut caller, "log", ptr, len, LOG_LINE_BYTES_MAX)?;
    let state = caller.data_mut();
    state.log_lines += 1;
    if state.log_lines > LOG_LINES_PER_CALL {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&bytes);
    let app = &state.app;
    match level {
        1 => error!("app {app}: {text}"),
        2 => warn!("app {app}: {text}"),
        4 => debug!("app {app}: {text}"),
        5 => trace!("app {app}: {text}"),
        _ => info!("app {app}: {text}"),
    }
    if state.recent_logs.len() >= RECENT_LOGS_MAX {
        state.recent_logs.remove(0);
    }
    state.recent_logs.push(text.into_owned());
    Ok(())
}

fn host_send(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> Result<i32, wasmi::Error> {
    if len as u32 as usize > REQUEST_BYTES_MAX {
        return Ok(send_status::TOO_LARGE);
    }
    let bytes = read_buffer(&mut caller, "send", ptr, len, REQUEST_BYTES_MAX)?;
    let state = caller.data_mut();
    let request = match wire::decode::<AppRequest>(&bytes) {
        Ok(request) => request,
        Err(e) => {
            warn!("app {}: sent a malformed request: {e}", state.app);
            return Ok(send_status::MALFORMED);
        }
    };
    if state.unanswered.contains(&request.id) {
        return Ok(send_status::DUPLICATE);
    }
    if state.unanswered.len() >= state.in_flight_max {
        return Ok(send_status::BUSY);
    }
    state.unanswered.insert(request.id);
    state.requests.push(request);
    Ok(send_status::ACCEPTED)
}

/// A running instance.
pub struct Instance {
    store: Store<HostState>,
    memory: Memory,
    fuel_per_call: u64,
    memory_bytes_max: usize,
    init: TypedFunc<(), ()>,
    on_timer: Option<TypedFunc<(), ()>>,
    alloc: Option<TypedFunc<i32, i32>>,
    on_message: Option<TypedFunc<(i32, i32), ()>>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("app", &self.store.data().app)
            .finish()
    }
}

impl Instance {
    /// Instantiates `module` (running its start function) and calls `init`.
    pub fn start(
        linker: &Linker<HostState>,
        module: &AppModule,
        app: &str,
        limits: &Limits,
    ) -> Result<(Instance, CallOutcome), Fault> {
        let state = HostState {
            app: app.to_string(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes_max)
                .memories(1)
                .tables(4)
                .table_elements(100_000)
                .instances(1)
                .trap_on_grow_failure(true)
                .build(),
            in_flight_max: limits.in_flight_max,
            unanswered: BTreeSet::new(),
            requests: Vec::new(),
            timer: TimerChange::Unchanged,
            fault: None,
            log_lines: 0,
            recent_logs: Vec::new(),
        };
        let mut store = Store::new(module.module.engine(), state);
        store.limiter(|state| &mut state.limits);
        set_fuel(&mut store, limits.fuel_per_call)?;
        let instance = linker
            .instantiate_and_start(&mut store, &module.module)
            .map_err(|e| {
                match classify(
                    &mut store,
                    "start",
                    e,
                    limits.fuel_per_call,
                    limits.memory_bytes_max,
                ) {
                    Fault::Trap { reason, .. } => Fault::Instantiate(reason),
                    fault => fault,
                }
            })?;
        // The module was checked against the ABI: these exports exist with these types.
        let missing = |name: &str| Fault::Instantiate(format!("export `{name}` not found"));
        let memory = instance
            .get_memory(&store, "memory")
            .ok_or_else(|| missing("memory"))?;
        let init = instance
            .get_typed_func::<(), ()>(&store, "init")
            .map_err(|_| missing("init"))?;
        let on_timer = instance.get_typed_func::<(), ()>(&store, "on_timer").ok();
        let alloc = instance.get_typed_func::<i32, i32>(&store, "alloc").ok();
        let on_message = instance
            .get_typed_func::<(i32, i32), ()>(&store, "on_message")
            .ok();
        let mut instance = Instance {
            store,
            memory,
            fuel_per_call: limits.fuel_per_call,
            memory_bytes_max: limits.memory_bytes_max,
            init,
            on_timer,
            alloc,
            on_message,
        };
        let init = instance.init;
        let ((), outcome) = instance.call("init", init, ())?;
        Ok((instance, outcome))
    }

    /// Calls `on_timer`.
    pub fn on_timer(&mut self) -> Result<CallOutcome, Fault> {
        match self.on_timer {
            Some(f) => Ok(self.call("on_timer", f, ())?.1),
            None => Ok(self.idle()),
        }
    }

    /// Writes `event` into the app's memory (through its `alloc`) and calls `on_message`.
    /// Ends the request (or watch) the event finishes.
    pub fn deliver(&mut self, event: &AppEvent) -> Result<CallOutcome, Fault> {
        match event {
            AppEvent::Reply { id, .. } | AppEvent::Failed { id, .. } | AppEvent::Done { id } => {
                self.store.data_mut().unanswered.remove(id);
            }
            AppEvent::Watched { .. } => {}
        }
        let (Some(alloc), Some(on_message)) = (self.alloc, self.on_message) else {
            return Ok(self.idle());
        };
        let bytes = match wire::encode(event) {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(
                    "app {}: an event does not encode: {e}",
                    self.store.data().app
                );
                return Ok(self.idle());
            }
        };
        let len = bytes.len() as i32;
        let (ptr, mut outcome) = self.call("alloc", alloc, len)?;
        let ptr = ptr as u32;
        let size = self.memory.data_size(&self.store);
        if ptr as u64 + bytes.len() as u64 > size as u64 {
            return Err(Fault::BadBuffer {
                function: "alloc",
                ptr,
                len: len as u32,
                memory_bytes: size,
            });
        }
        self.memory.data_mut(&mut self.store)[ptr as usize..ptr as usize + bytes.len()]
            .copy_from_slice(&bytes);
        let ((), second) = self.call("on_message", on_message, (ptr as i32, len))?;
        outcome.requests.extend(second.requests);
        if second.timer != TimerChange::Unchanged {
            outcome.timer = second.timer;
        }
        outcome.fuel_used += second.fuel_used;
        Ok(outcome)
    }

    /// Forgets the watch `id` (ended by an `Unwatch`): its id may be used again.
    pub fn end(&mut self, id: u32) {
        self.store.data_mut().unanswered.remove(&id);
    }

    /// The app's recent log lines, oldest first (taken: each line is returned once).
    pub fn take_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.store.data_mut().recent_logs)
    }

    /// Bytes of linear memory the instance has now.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    fn idle(&self) -> CallOutcome {
        CallOutcome {
            requests: Vec::new(),
            timer: TimerChange::Unchanged,
            fuel_used: 0,
        }
    }

    /// Calls `function` with a fresh allowance of fuel; returns its result and what the call
    /// left for the host.
    fn call<P: wasmi::WasmParams, R: wasmi::WasmResults>(
        &mut self,
        name: &'static str,
        function: TypedFunc<P, R>,
        params: P,
    ) -> Result<(R, CallOutcome), Fault> {
        set_fuel(&mut self.store, self.fuel_per_call)?;
        let result = function.call(&mut self.store, params);
        let left = self.store.get_fuel().unwrap_or(0);
        let value = result.map_err(|e| {
            classify(
                &mut self.store,
                name,
                e,
                self.fuel_per_call,
                self.memory_bytes_max,
            )
        })?;
        let state = self.store.data_mut();
        let dropped = state.log_lines.saturating_sub(LOG_LINES_PER_CALL);
        if dropped > 0 {
            warn!(
                "app {}: {dropped} log line(s) dropped in `{name}` (at most \
                 {LOG_LINES_PER_CALL} per call)",
                state.app
            );
        }
        state.log_lines = 0;
        let outcome = CallOutcome {
            requests: std::mem::take(&mut state.requests),
            timer: std::mem::replace(&mut state.timer, TimerChange::Unchanged),
            fuel_used: self.fuel_per_call.saturating_sub(left),
        };
        Ok((value, outcome))
    }
}

fn set_fuel(store: &mut Store<HostState>, fuel: u64) -> Result<(), Fault> {
    // Fuel metering is on in every engine of the host (module::engine).
    store.set_fuel(fuel).map_err(|e| Fault::Trap {
        call: "set_fuel",
        reason: e.to_string(),
    })
}

/// Names what went wrong in a call: a fault a host function recorded, else the trap.
fn classify(
    store: &mut Store<HostState>,
    call: &'static str,
    error: wasmi::Error,
    fuel: u64,
    bytes_max: usize,
) -> Fault {
    if let Some(fault) = store.data_mut().fault.take() {
        return fault;
    }
    match error.as_trap_code() {
        Some(TrapCode::OutOfFuel) => Fault::OutOfFuel { call, fuel },
        Some(TrapCode::GrowthOperationLimited) => Fault::MemoryLimit { call, bytes_max },
        Some(code) => Fault::Trap {
            call,
            reason: code.to_string(),
        },
        None => Fault::Trap {
            call,
            reason: error.to_string(),
        },
    }
}
