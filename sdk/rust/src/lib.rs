//! Write Exocore apps in Rust. An app is a `cdylib` built for `wasm32-unknown-unknown`; this
//! crate is the guest side of the ABI of `spec/apps.md`: it provides the exports the host
//! calls (through [`app!`]), a small executor so the app is written with `async`, and
//! futures for store requests, watches and timers.
//!
//! ```ignore
//! use exocore_app::{app, info, sleep, store};
//! use std::time::Duration;
//!
//! app!(async {
//!     info("started");
//!     sleep(Duration::from_secs(1)).await;
//!     let page = store::query_text("type:task").await.unwrap();
//!     info(&format!("{} tasks", page.total));
//! });
//! ```
//!
//! Build: `cargo build --release --target wasm32-unknown-unknown`, then `exo app package`
//! with `module = "target/wasm32-unknown-unknown/release/NAME.wasm"` in `app.toml`.
//!
//! The executor polls every live task after each event (start, timer, message): apps are
//! small and single-threaded, so this is simpler than wakers and just as correct.

#![warn(missing_docs, rust_2018_idioms)]

mod ffi;
pub mod runtime;
pub mod store;
pub mod value;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use exocore_protocol::app::{AppEvent, AppRequest, AppRequestBody};
pub use exocore_protocol::message::ErrorBody;
pub use exocore_protocol::store::{EntityState, StoreRequest, StoreResponse};

/// Defines the app's exports (`init`, `on_timer`, `alloc`, `on_message`) around `future`,
/// which runs from `init` on.
#[macro_export]
macro_rules! app {
    ($future:expr) => {
        #[no_mangle]
        pub extern "C" fn init() {
            $crate::runtime::start($future);
        }
        #[no_mangle]
        pub extern "C" fn on_timer() {
            $crate::runtime::on_timer();
        }
        #[no_mangle]
        pub extern "C" fn alloc(len: i32) -> i32 {
            $crate::runtime::alloc(len)
        }
        #[no_mangle]
        pub extern "C" fn on_message(ptr: i32, len: i32) {
            $crate::runtime::on_message(ptr, len);
        }
    };
}

/// Log levels of the host's `log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// 1
    Error = 1,
    /// 2
    Warn = 2,
    /// 3
    Info = 3,
    /// 4
    Debug = 4,
}

/// Logs one line at `level`.
pub fn log(level: Level, text: &str) {
    ffi::log(level as i32, text.as_bytes());
}

/// Logs at info level.
pub fn info(text: &str) {
    log(Level::Info, text);
}

/// Logs at warn level.
pub fn warn(text: &str) {
    log(Level::Warn, text);
}

/// Logs at error level.
pub fn error(text: &str) {
    log(Level::Error, text);
}

/// Wall-clock time, microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    ffi::now_us().max(0) as u64
}

/// Runs `future` alongside the others.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    runtime::spawn(Box::pin(future));
}

/// Completes after `delay`.
pub fn sleep(delay: Duration) -> Sleep {
    Sleep {
        deadline_us: now_us().saturating_add(delay.as_micros().min(u64::MAX as u128) as u64),
        armed: false,
    }
}

/// The future of [`sleep`].
pub struct Sleep {
    deadline_us: u64,
    armed: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if now_us() >= self.deadline_us {
            return Poll::Ready(());
        }
        if !self.armed {
            self.armed = true;
            runtime::wake_at(self.deadline_us);
        }
        Poll::Pending
    }
}
