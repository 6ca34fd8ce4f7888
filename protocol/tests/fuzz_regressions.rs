//! Inputs found by the fuzz targets in `fuzz/` (see `docs/fuzzing.md`), kept as plain tests
//! so that `cargo test` guards them on stable without libFuzzer.
//!
//! Finding 1 (fixed in `wire::decode_exact`): a length field alone makes `wire::decode` allocate. bincode 2 checks a
//! `Vec<u8>` or `String` length against the configured limit (16 MiB) and then allocates the
//! whole buffer before it reads a byte, so a 24-byte envelope whose payload length says
//! 16 MiB − 24 makes the receiver zero 16 MiB, then fail with "unexpected end". Bounded, but
//! not justified by the input: a member can make a node churn 16 MiB per 24-byte message,
//! and the same holds for `ErrorBody::message` and `CloseBody::reason`. The decoder's budget
//! is now charged down to what the input can justify before decoding, which keeps every
//! documented byte layout (the last test).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use exocore_protocol::envelope::Envelope;
use exocore_protocol::message::{CloseBody, ErrorBody};
use exocore_protocol::wire;
use exocore_protocol::MESSAGE_SIZE_BYTES_MAX;

// Heap accounting per thread (tests run in parallel threads).
struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add_live(delta: isize) {
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn signed(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded to `System` unchanged; the counters do not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add_live(signed(layout.size()));
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add_live(signed(layout.size()));
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_live(-signed(layout.size()));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add_live(signed(new_size));
        add_live(-signed(layout.size()));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The peak heap bytes `f` had live at once on this thread.
fn peak_heap_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(base));
    let out = f();
    let peak = PEAK_BYTES.with(Cell::get);
    (out, usize::try_from(peak - base).unwrap_or(0))
}

/// What a decoder may allocate beyond its input: bookkeeping, never a buffer.
const SLACK_BYTES: usize = 1024;

/// An envelope header (service Ping, kind Request, request id 0) whose payload length claims
/// `claimed` bytes, and no payload.
fn envelope_claiming(claimed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; 16];
    bytes.extend_from_slice(&claimed.to_le_bytes());
    bytes
}

#[test]
fn an_envelope_payload_length_alone_does_not_allocate() {
    let input = envelope_claiming(MESSAGE_SIZE_BYTES_MAX as u64 - 24);
    let (result, peak) = peak_heap_bytes(|| Envelope::decode(&input));
    assert!(result.is_err());
    assert!(
        peak <= input.len() + SLACK_BYTES,
        "a {}-byte envelope made the decoder allocate {peak} bytes",
        input.len()
    );
}

#[test]
fn the_first_fuzz_crashes_allocate_no_more_than_their_input() {
    // The first crash of each target (fuzz/artifacts/TARGET/crash-...): an envelope of 49
    // bytes whose payload length says 65,536; a CloseBody of 11 bytes whose reason length
    // says 6,422,531; an ErrorBody of 18 bytes whose message length says 4,111.
    let envelope: &[u8] = &[
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0,
        0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 255, 255, 255, 255, 0, 8, 0, 255,
    ];
    let close: &[u8] = &[3, 0, 98, 0, 0, 0, 0, 0, 121, 0, 101];
    let error: &[u8] = &[
        2, 0, 15, 16, 0, 0, 0, 0, 0, 0, 117, 110, 107, 110, 111, 119, 99, 101,
    ];
    let (result, peak) = peak_heap_bytes(|| Envelope::decode(envelope));
    assert!(result.is_err());
    assert!(
        peak <= envelope.len() + SLACK_BYTES,
        "envelope: allocated {peak} bytes"
    );
    let (result, peak) = peak_heap_bytes(|| wire::decode::<CloseBody>(close));
    assert!(result.is_err());
    assert!(
        peak <= close.len() + SLACK_BYTES,
        "close: allocated {peak} bytes"
    );
    let (result, peak) = peak_heap_bytes(|| wire::decode::<ErrorBody>(error));
    assert!(result.is_err());
    assert!(
        peak <= error.len() + SLACK_BYTES,
        "error: allocated {peak} bytes"
    );
}

#[test]
fn an_error_message_length_alone_does_not_allocate() {
    // code 1, then a message length of 16 MiB - 10 and no message.
    let mut input = vec![1u8, 0];
    input.extend_from_slice(&(MESSAGE_SIZE_BYTES_MAX as u64 - 10).to_le_bytes());
    let (result, peak) = peak_heap_bytes(|| wire::decode::<ErrorBody>(&input));
    assert!(result.is_err());
    assert!(peak <= input.len() + SLACK_BYTES, "allocated {peak} bytes");
}

#[test]
fn a_close_reason_length_alone_does_not_allocate() {
    let input = (MESSAGE_SIZE_BYTES_MAX as u64 - 8).to_le_bytes();
    let (result, peak) = peak_heap_bytes(|| wire::decode::<CloseBody>(&input));
    assert!(result.is_err());
    assert!(peak <= input.len() + SLACK_BYTES, "allocated {peak} bytes");
}

#[test]
fn length_fields_are_refused_before_allocating_and_layouts_are_kept() {
    let input = envelope_claiming(MESSAGE_SIZE_BYTES_MAX as u64 - 24);
    let (result, peak) = peak_heap_bytes(|| Envelope::decode(&input));
    assert!(result.is_err());
    assert!(peak <= input.len() + SLACK_BYTES, "allocated {peak} bytes");

    // Valid messages of every family, up to a 1 MiB payload, decode as before.
    for size in [0usize, 1, 1000, 1 << 20] {
        let envelope = Envelope::request(
            exocore_protocol::envelope::Service::Store,
            7,
            vec![0xab; size],
        );
        let bytes = envelope.encode().unwrap();
        let (decoded, peak) = peak_heap_bytes(|| Envelope::decode(&bytes));
        assert_eq!(decoded.unwrap(), envelope);
        assert!(peak <= bytes.len() + SLACK_BYTES);
        assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
    }
    let body = ErrorBody {
        code: exocore_protocol::message::ErrorCode::TIMEOUT,
        message: "slow".into(),
    };
    let bytes = wire::encode(&body).unwrap();
    assert_eq!(wire::decode::<ErrorBody>(&bytes).unwrap(), body);
    let close = CloseBody {
        reason: "bye".into(),
    };
    let bytes = wire::encode(&close).unwrap();
    assert_eq!(wire::decode::<CloseBody>(&bytes).unwrap(), close);
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(wire::decode::<CloseBody>(&trailing).is_err());
}
