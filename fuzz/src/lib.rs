//! The checks behind the cargo-fuzz targets in `fuzz_targets/`: one function per decoder of
//! `exocore-protocol`, each asserting the decoder's guarantees on arbitrary input. The
//! targets are one line each, so the same checks run from `cargo test` on the seeds below
//! (`cargo test --manifest-path fuzz/Cargo.toml`), without a nightly toolchain.
//!
//! Guarantees checked for every input:
//! - no panic (libFuzzer reports a panic as a crash; debug assertions are on);
//! - a value that decodes re-encodes to exactly the input bytes it used (the encodings are
//!   canonical), so nothing decoded can be larger than the input;
//! - the decoder's peak heap use is bounded by what the input justifies: the bytes actually
//!   present, plus the fixed buffer of its protocol point (a frame body up to its limit).
//!   A length field alone must never make a decoder allocate. Measured by a counting global
//!   allocator ([`measure`]).
//!
//! Setting `EXO_FUZZ_ALLOC_CHECK=0` turns the heap bound off (while a known over-allocation
//! is being fixed, so that a run still explores for panics); everything else stays on.
//!
//! Architecture invariant: everything here is deterministic. Keys, Noise ephemeral keys and
//! the rekey interval are fixed, so a crash input reproduces on any machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bincode::{Decode, Encode};
use futures_lite::{AsyncRead, AsyncWrite};

use exocore_protocol::wire;

pub mod session;

// ---------------------------------------------------------------------------------------
// Heap accounting

/// A global allocator that counts, per thread, live heap bytes and their peak. Per thread so
/// that `cargo test` running checks in parallel does not mix their figures; a block freed on
/// another thread than the one that allocated it skews both threads' counts, which no
/// decoder here does.
pub struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add_live(delta: isize) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn size(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated, and
// updating them does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            add_live(size(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            add_live(size(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        add_live(-size(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            // Counted as a fresh block then a free: a moving realloc briefly holds both.
            add_live(size(new_size));
            add_live(-size(layout.size()));
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result and the peak number of heap bytes this thread had live
/// at once during `f`, beyond what was live when it started.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(base));
    let out = f();
    let peak = PEAK_BYTES.with(Cell::get);
    (out, usize::try_from(peak - base).unwrap_or(0))
}

fn alloc_check_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("EXO_FUZZ_ALLOC_CHECK").map_or(true, |v| v != "0"))
}

/// Panics (a fuzzing crash) if `peak_bytes` is over `bound_bytes`.
pub fn assert_heap_within(what: &str, peak_bytes: usize, bound_bytes: usize, input_len: usize) {
    if alloc_check_enabled() && peak_bytes > bound_bytes {
        panic!(
            "{what}: allocated {peak_bytes} bytes at peak for a {input_len}-byte input \
             (bound {bound_bytes}); a length field is trusted before the bytes are there"
        );
    }
}

/// Allocation slack every decoder gets on top of its input: small bookkeeping (error
/// values, formatting), never a buffer sized by a length field.
pub const SLACK_BYTES: usize = 1024;

// ---------------------------------------------------------------------------------------
// An in-memory stream

/// A stream that reads from fixed bytes, at most `read_chunk` bytes per read (to exercise
/// short reads), and keeps what is written to it.
pub struct MemStream {
    input: Vec<u8>,
    pos: usize,
    read_chunk: usize,
    /// Everything written so far.
    pub written: Vec<u8>,
}

impl MemStream {
    /// A stream whose reads return `input` then end of stream.
    pub fn new(input: Vec<u8>, read_chunk: usize) -> MemStream {
        MemStream {
            input,
            pos: 0,
            read_chunk: read_chunk.max(1),
            written: Vec::new(),
        }
    }

    /// How many input bytes were read.
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl AsyncRead for MemStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf
            .len()
            .min(self.read_chunk)
            .min(self.input.len() - self.pos);
        let start = self.pos;
        buf[..n].copy_from_slice(&self.input[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The read size of a stream from one input byte: 0 means unlimited, else 1..=255.
pub fn read_chunk_of(byte: u8) -> usize {
    if byte == 0 {
        usize::MAX
    } else {
        usize::from(byte)
    }
}

// ---------------------------------------------------------------------------------------
// Decoders

/// `wire::decode::<T>`: never panics, allocates no more than the input, and a decoded value
/// re-encodes to exactly the input (the wire encoding is canonical).
pub fn wire_round_trip<T>(what: &str, data: &[u8])
where
    T: Decode<()> + Encode + Debug + PartialEq,
{
    let (decoded, peak) = measure(|| wire::decode::<T>(data));
    assert_heap_within(what, peak, data.len() + SLACK_BYTES, data.len());
    if let Ok(value) = decoded {
        let again = wire::encode(&value).expect("a decoded value encodes");
        assert_eq!(again, data, "{what}: re-encoding differs from the input");
        assert_eq!(wire::decode::<T>(&again).expect("re-decodes"), value);
    }
}

/// `Envelope::decode`, plus the payload decoders a node applies to it.
pub fn envelope(data: &[u8]) {
    use exocore_protocol::envelope::{Envelope, Kind};
    use exocore_protocol::error::WireError;
    use exocore_protocol::message::CloseBody;

    let (decoded, peak) = measure(|| Envelope::decode(data));
    assert_heap_within(
        "Envelope::decode",
        peak,
        data.len() + SLACK_BYTES,
        data.len(),
    );
    match decoded {
        Ok(envelope) => {
            let again = envelope.encode().expect("a decoded envelope encodes");
            assert_eq!(again, data, "Envelope: re-encoding differs from the input");
            let payload = &envelope.payload;
            match envelope.kind {
                Kind::Error => {
                    let (body, peak) = measure(|| envelope.error_body());
                    assert_heap_within("error_body", peak, payload.len() + SLACK_BYTES, data.len());
                    if let Ok(body) = body {
                        let _ = body.to_string();
                    }
                }
                Kind::Close => wire_round_trip::<CloseBody>("CloseBody in envelope", payload),
                _ => {}
            }
        }
        Err(WireError::UnknownService {
            service,
            kind,
            request_id,
        }) => {
            // The header fields are reported as they are on the wire.
            assert!(data.len() >= 16);
            assert_eq!(service.to_le_bytes(), data[0..4]);
            assert_eq!(kind.to_le_bytes(), data[4..8]);
            assert_eq!(request_id.to_le_bytes(), data[8..16]);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `frame::read_frame` with the real limits of each protocol point, over a stream that may
/// return short reads; then `encode_frame` of each body gives back the bytes read.
pub fn frame(data: &[u8]) {
    use exocore_protocol::frame::{
        encode_frame, read_frame, FRAME_LEN_MAX, HANDSHAKE_FRAME_LEN_MAX,
    };
    use exocore_protocol::session::TRANSPORT_FRAME_LEN_MIN;

    let [point, chunk, rest @ ..] = data else {
        return;
    };
    // The (min, max) body lengths of spec/protocol.md section 4.
    let (min, max) = match point % 4 {
        0 => (32, HANDSHAKE_FRAME_LEN_MAX),
        1 => (96, HANDSHAKE_FRAME_LEN_MAX),
        2 => (64, HANDSHAKE_FRAME_LEN_MAX),
        _ => (TRANSPORT_FRAME_LEN_MIN, FRAME_LEN_MAX),
    };
    let mut stream = MemStream::new(rest.to_vec(), read_chunk_of(*chunk));
    let mut body = Vec::new();
    // Each good frame consumes at least its 2-byte prefix: the loop is bounded by the input.
    for _ in 0..=rest.len() / 2 {
        let before = stream.consumed();
        let (result, peak) = measure(|| {
            futures_lite::future::block_on(read_frame(&mut stream, min, max, &mut body))
        });
        // The body buffer is sized by the length prefix once it is checked against `max`:
        // bounded by the limit of that protocol point (at most one Noise message).
        assert_heap_within("read_frame", peak, max + SLACK_BYTES, rest.len());
        match result {
            Ok(()) => {
                assert!((min..=max).contains(&body.len()));
                let mut again = Vec::new();
                encode_frame(&body, &mut again).expect("a read frame encodes");
                assert_eq!(again, rest[before..stream.consumed()]);
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
}

/// The preamble (responder side) and its answer (initiator side).
pub fn preamble(data: &[u8]) {
    use exocore_protocol::preamble::{read_answer, read_preamble, Preamble, PREAMBLE_LEN};

    let [chunk, rest @ ..] = data else {
        return;
    };
    let read_chunk = read_chunk_of(*chunk);
    if let Some(fixed) = rest.first_chunk::<PREAMBLE_LEN>() {
        if let Ok(preamble) = Preamble::parse(fixed) {
            assert_eq!(&preamble.to_bytes(), fixed);
        }
    }
    let mut stream = MemStream::new(rest.to_vec(), read_chunk);
    let (result, peak) = measure(|| futures_lite::future::block_on(read_preamble(&mut stream)));
    assert_heap_within("read_preamble", peak, SLACK_BYTES, rest.len());
    match result {
        Ok(preamble) => assert_eq!(preamble.to_bytes(), rest[..PREAMBLE_LEN]),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let mut stream = MemStream::new(rest.to_vec(), read_chunk);
    let (result, peak) = measure(|| futures_lite::future::block_on(read_answer(&mut stream)));
    assert_heap_within("read_answer", peak, SLACK_BYTES, rest.len());
    match result {
        Ok(answer) => assert_eq!(answer.to_bytes(), rest[..stream.consumed()]),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The text forms of keys (`pk_...`, `sk_...`), which arrive in config files, CLI arguments
/// and member lists.
pub fn key_text(data: &[u8]) {
    use exocore_protocol::identity::{Keypair, PublicKey};

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (public, peak) = measure(|| text.parse::<PublicKey>());
    assert_heap_within(
        "PublicKey::from_str",
        peak,
        data.len() + SLACK_BYTES,
        data.len(),
    );
    match public {
        Ok(key) => assert!(key.to_string().eq_ignore_ascii_case(text.trim())),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let (secret, peak) = measure(|| Keypair::from_secret_text(text));
    assert_heap_within(
        "Keypair::from_secret_text",
        peak,
        data.len() + SLACK_BYTES,
        data.len(),
    );
    if let Ok(keypair) = secret {
        assert!(keypair.secret_text().eq_ignore_ascii_case(text.trim()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exocore_protocol::envelope::{Envelope, Service};
    use exocore_protocol::message::{CloseBody, ErrorBody, ErrorCode, Ping};

    #[test]
    fn good_values_pass() {
        let ping = wire::encode(&Ping { nonce: 7 }).unwrap();
        wire_round_trip::<Ping>("Ping", &ping);
        let body = ErrorBody {
            code: ErrorCode::INTERNAL,
            message: "x".repeat(100),
        };
        wire_round_trip::<ErrorBody>("ErrorBody", &wire::encode(&body).unwrap());
        let close = CloseBody {
            reason: "bye".into(),
        };
        wire_round_trip::<CloseBody>("CloseBody", &wire::encode(&close).unwrap());
        let envelope = Envelope::request(Service::Ping, 1, ping).encode().unwrap();
        super::envelope(&envelope);
        super::envelope(&Envelope::close("done").unwrap().encode().unwrap());
        let mut framed = vec![3, 0, 0, 17];
        framed.extend_from_slice(&[9; 17]);
        frame(&framed);
        let mut answer = vec![0];
        answer.extend_from_slice(b"EXO\x01\x01");
        preamble(&answer);
        key_text(b"pk_rkeohxlubhyzl7ks3mwtzos5olfgocn7dwkbeg7toseadnapn5opwbghxa");
    }

    #[test]
    fn the_counting_allocator_sees_a_buffer() {
        let (v, peak) = measure(|| vec![0u8; 100_000]);
        assert_eq!(v.len(), 100_000);
        assert!(peak >= 100_000);
    }
}
