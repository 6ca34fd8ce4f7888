//! The host functions (`spec/apps.md` section 2.1). Only this file uses `unsafe`.

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "exo")]
    extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: usize);
        pub fn now_us() -> i64;
        pub fn set_timer(delay_ms: i64);
        pub fn send(ptr: *const u8, len: usize) -> i32;
    }
}

/// Logs `text` at `level`.
#[cfg(target_arch = "wasm32")]
pub fn log(level: i32, text: &[u8]) {
    // SAFETY: the host reads `len` bytes at `ptr`, inside this slice, during the call.
    unsafe { imports::log(level, text.as_ptr(), text.len()) }
}

/// Wall-clock µs.
#[cfg(target_arch = "wasm32")]
pub fn now_us() -> i64 {
    // SAFETY: no arguments.
    unsafe { imports::now_us() }
}

/// Asks for `on_timer` after `delay_ms` (negative: none).
#[cfg(target_arch = "wasm32")]
pub fn set_timer(delay_ms: i64) {
    // SAFETY: a plain integer.
    unsafe { imports::set_timer(delay_ms) }
}

/// Sends an encoded `AppRequest`; returns the host's status.
#[cfg(target_arch = "wasm32")]
pub fn send(request: &[u8]) -> i32 {
    // SAFETY: the host copies `len` bytes at `ptr`, inside this slice, during the call.
    unsafe { imports::send(request.as_ptr(), request.len()) }
}

// Off wasm32 (docs, `cargo check` on the host) there is no host: nothing is logged or sent.
#[cfg(not(target_arch = "wasm32"))]
pub fn log(_: i32, _: &[u8]) {}
#[cfg(not(target_arch = "wasm32"))]
pub fn now_us() -> i64 {
    0
}
#[cfg(not(target_arch = "wasm32"))]
pub fn set_timer(_: i64) {}
#[cfg(not(target_arch = "wasm32"))]
pub fn send(_: &[u8]) -> i32 {
    2
}
