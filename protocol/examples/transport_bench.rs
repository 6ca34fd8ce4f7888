//! Transport benchmark: what the wire costs, on loopback (127.0.0.1 only).
//!
//! ```text
//! cargo build --release --example transport_bench -p exocore-protocol
//! target/release/examples/transport_bench [--quick]
//! ```
//!
//! Measures, and prints as one JSON object on stdout (figures named with their unit last):
//! - `handshake`: sequential full connections (TCP connect, preamble, Noise XX, both sides'
//!   key checks) against an in-process responder, for [`HANDSHAKE_SECONDS_MAX`] or
//!   [`HANDSHAKES_MAX`] connections, whichever comes first;
//! - `throughput`: for 1 KiB and 64 KiB application messages, one way, a fixed byte count:
//!   `full_stack` (`Session::send` → TCP → `Session::receive`, the chunking, framing,
//!   encryption and reassembly of the crate), `in_process` (the same chunks encrypted and
//!   decrypted by snow on one thread, no sockets: the ceiling the issue names), `raw_tcp`
//!   (the same messages over TCP with no encryption);
//! - `idle`: resident memory (VmRSS) and heap per idle established connection, both ends in
//!   this process, over [`IDLE_CONNECTIONS`] connections.
//!
//! Sender and receiver run on two threads (the caller's and smol's executor thread), as two
//! peers would; the in-process ceiling runs on one. Each throughput figure is the best of
//! [`THROUGHPUT_RUNS`] runs. Every loop is bounded; the whole run takes about 15 s on a
//! 2-core x86-64 VM (`--quick` divides the byte counts by 16).
//! Nothing is written to disk and no address but 127.0.0.1 is used.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use exocore_protocol::frame::FRAME_LEN_MAX;
use exocore_protocol::identity::{Keypair, PublicKey};
use exocore_protocol::session::{
    self, Session, CHUNK_DATA_BYTES_MAX, CHUNK_FINAL, CHUNK_MORE, TAG_BYTES,
};
use exocore_protocol::{NOISE_PARAMS, REKEY_INTERVAL_MESSAGES};

/// Handshakes are measured for at most this long...
const HANDSHAKE_SECONDS_MAX: f64 = 3.0;
/// ...or this many connections.
const HANDSHAKES_MAX: usize = 20_000;
/// Idle connections opened for the memory figure (each is two sockets in this process).
const IDLE_CONNECTIONS: usize = 200;
/// (message size, total bytes sent) of each throughput case.
const THROUGHPUT_CASES: [(usize, usize); 2] = [(1024, 64 << 20), (64 * 1024, 256 << 20)];
/// Each throughput figure is the best of this many runs.
const THROUGHPUT_RUNS: usize = 3;

// ---------------------------------------------------------------------------------------
// Live heap bytes, for the idle-connection figure.

struct CountingAllocator;

static HEAP_LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only a counter is updated.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP_LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP_LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        HEAP_LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP_LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        HEAP_LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

// ---------------------------------------------------------------------------------------

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Keys {
    client: Keypair,
    server: Keypair,
    cell: PublicKey,
}

fn keys() -> Keys {
    // Fixed seeds: the same keys as the test vectors; never use them outside tests.
    Keys {
        client: Keypair::from_seed(&[1; 32]),
        server: Keypair::from_seed(&[2; 32]),
        cell: Keypair::from_seed(&[3; 32]).public(),
    }
}

/// A responder task that accepts `count` connections and hands each established session
/// to `serve` (spawned). Returns the address.
async fn responder<F, Fut>(count: usize, serve: F) -> Result<std::net::SocketAddr, BoxError>
where
    F: Fn(Session<TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    smol::spawn(async move {
        let keys = keys();
        let members = vec![keys.client.public()];
        for _ in 0..count {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let cell = keys.cell;
            let members = members.clone();
            let members_of = move |asked: &PublicKey| (*asked == cell).then_some(members);
            match session::respond(stream, &keys.server, members_of).await {
                Ok(session) => smol::spawn(serve(session)).detach(),
                Err(e) => eprintln!("transport_bench: responder: {e}"),
            }
        }
    })
    .detach();
    Ok(addr)
}

async fn connect(addr: std::net::SocketAddr, keys: &Keys) -> Result<Session<TcpStream>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let allowed = [keys.server.public()];
    Ok(session::initiate(stream, &keys.client, &keys.cell, &allowed).await?)
}

/// Sequential connections until the time or count bound.
async fn handshakes() -> Result<serde_like::Object, BoxError> {
    let keys = keys();
    // The responder drops each session once the initiator is done with it.
    let addr = responder(HANDSHAKES_MAX + 1, |mut session| async move {
        let _ = session.receive().await;
    })
    .await?;
    drop(connect(addr, &keys).await?); // warm-up
    let start = Instant::now();
    let mut count = 0usize;
    while count < HANDSHAKES_MAX && start.elapsed().as_secs_f64() < HANDSHAKE_SECONDS_MAX {
        drop(connect(addr, &keys).await?);
        count += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut out = serde_like::Object::new();
    out.int("connections", count as u64);
    out.num("seconds", seconds);
    out.num("handshakes_per_s", count as f64 / seconds);
    out.num("handshake_mean_ms", seconds * 1000.0 / count as f64);
    Ok(out)
}

/// `messages` application messages of `size` bytes through the whole stack; returns seconds
/// from the first send until the receiver has the last message.
async fn full_stack(size: usize, messages: usize) -> Result<f64, BoxError> {
    let keys = keys();
    let (done_tx, done_rx) = async_channel_like::oneshot();
    let addr = responder(1, move |mut session| {
        let done_tx = done_tx.clone();
        async move {
            let mut received = 0usize;
            for _ in 0..messages {
                match session.receive().await {
                    Ok(message) => received += message.len(),
                    Err(e) => {
                        eprintln!("transport_bench: receive: {e}");
                        break;
                    }
                }
            }
            done_tx.send((Instant::now(), received));
        }
    })
    .await?;
    let mut session = connect(addr, &keys).await?;
    let message = vec![0x5au8; size];
    let start = Instant::now();
    for _ in 0..messages {
        session.send(&message).await?;
    }
    let (end, received) = done_rx.recv().await;
    if received != size * messages {
        return Err(format!("received {received} of {} bytes", size * messages).into());
    }
    Ok((end - start).as_secs_f64())
}

/// The same messages over plain TCP, no encryption or framing.
async fn raw_tcp(size: usize, messages: usize) -> Result<f64, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = smol::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let mut buf = vec![0u8; size];
        for _ in 0..messages {
            stream.read_exact(&mut buf).await?;
        }
        Ok::<_, std::io::Error>(Instant::now())
    });
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let message = vec![0x5au8; size];
    let start = Instant::now();
    for _ in 0..messages {
        stream.write_all(&message).await?;
        stream.flush().await?;
    }
    let end = receiver.await?;
    Ok((end - start).as_secs_f64())
}

/// The ceiling: the chunks the session would make, encrypted and decrypted by snow on one
/// thread, with the same per-chunk copy into a plaintext buffer and the same rekey counting.
fn in_process(size: usize, messages: usize) -> Result<f64, BoxError> {
    let keys = keys();
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse()?;
    let (a, b) = (keys.client.noise_secret(), keys.server.noise_secret());
    let mut i = snow::Builder::new(params.clone())
        .local_private_key(&a)?
        .build_initiator()?;
    let mut r = snow::Builder::new(params)
        .local_private_key(&b)?
        .build_responder()?;
    let (mut m, mut p) = (vec![0u8; 1024], vec![0u8; 1024]);
    let n = i.write_message(&[], &mut m)?;
    r.read_message(&m[..n], &mut p)?;
    let n = r.write_message(&[], &mut m)?;
    i.read_message(&m[..n], &mut p)?;
    let n = i.write_message(&[], &mut m)?;
    r.read_message(&m[..n], &mut p)?;
    let (mut sender, mut receiver) = (i.into_transport_mode()?, r.into_transport_mode()?);

    let message = vec![0x5au8; size];
    let mut plaintext = Vec::with_capacity(FRAME_LEN_MAX);
    let mut frame = vec![0u8; FRAME_LEN_MAX];
    let mut opened = vec![0u8; FRAME_LEN_MAX];
    let mut reassembled = Vec::with_capacity(size);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut total = 0usize;
    let start = Instant::now();
    for _ in 0..messages {
        let count = message.len().div_ceil(CHUNK_DATA_BYTES_MAX).max(1);
        reassembled.clear();
        for (index, chunk) in message.chunks(CHUNK_DATA_BYTES_MAX).enumerate() {
            plaintext.clear();
            plaintext.push(if index + 1 == count {
                CHUNK_FINAL
            } else {
                CHUNK_MORE
            });
            plaintext.extend_from_slice(chunk);
            let len = sender.write_message(&plaintext, &mut frame)?;
            sent += 1;
            if sent % REKEY_INTERVAL_MESSAGES == 0 {
                sender.rekey_outgoing();
            }
            debug_assert_eq!(len, plaintext.len() + TAG_BYTES);
            let len = receiver.read_message(&frame[..len], &mut opened)?;
            received += 1;
            if received % REKEY_INTERVAL_MESSAGES == 0 {
                receiver.rekey_incoming();
            }
            reassembled.extend_from_slice(&opened[1..len]);
        }
        total += reassembled.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    if total != size * messages {
        return Err("in-process round trip lost bytes".into());
    }
    Ok(seconds)
}

fn mib_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds
}

async fn throughput(size: usize, total_bytes: usize) -> Result<serde_like::Object, BoxError> {
    let messages = total_bytes / size;
    let bytes = messages * size;
    // Warm-ups: page in the buffers and the code paths.
    full_stack(size, (messages / 16).max(1)).await?;
    raw_tcp(size, (messages / 16).max(1)).await?;
    // Best of RUNS for each, interleaved, so a noisy neighbour on a shared machine (or a
    // frequency change) does not land on one variant only.
    let (mut full, mut ceiling, mut raw) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..THROUGHPUT_RUNS {
        full = full.min(full_stack(size, messages).await?);
        ceiling = ceiling.min(in_process(size, messages)?);
        raw = raw.min(raw_tcp(size, messages).await?);
    }
    let mut out = serde_like::Object::new();
    out.int("message_bytes", size as u64);
    out.int("messages", messages as u64);
    out.int("total_bytes", bytes as u64);
    out.int("runs_best_of", THROUGHPUT_RUNS as u64);
    out.int(
        "frames_per_message",
        size.div_ceil(CHUNK_DATA_BYTES_MAX).max(1) as u64,
    );
    out.num("full_stack_mib_per_s", mib_per_s(bytes, full));
    out.num("in_process_mib_per_s", mib_per_s(bytes, ceiling));
    out.num("raw_tcp_mib_per_s", mib_per_s(bytes, raw));
    out.num("full_stack_messages_per_s", messages as f64 / full);
    out.num("full_stack_vs_in_process_ratio", ceiling / full);
    out.num("full_stack_vs_raw_tcp_ratio", raw / full);
    Ok(out)
}

/// Opens idle connections and keeps both ends; the growth of RSS and heap per connection.
async fn idle() -> Result<serde_like::Object, BoxError> {
    let keys = keys();
    let (park_tx, park_rx) = std::sync::mpsc::channel::<Session<TcpStream>>();
    let park_tx = std::sync::Mutex::new(park_tx);
    let park = std::sync::Arc::new(park_tx);
    let addr = responder(IDLE_CONNECTIONS + 1, move |session| {
        let park = park.clone();
        async move {
            // Keep the responder's end alive, idle, until the benchmark ends.
            if let Ok(tx) = park.lock() {
                let _ = tx.send(session);
            }
        }
    })
    .await?;
    let warm = connect(addr, &keys).await?; // the reactor, executor and allocator warmed up
    smol::Timer::after(Duration::from_millis(50)).await;
    let mut clients = Vec::with_capacity(IDLE_CONNECTIONS);
    let mut servers = Vec::with_capacity(IDLE_CONNECTIONS + 1);
    let (rss_before, heap_before) = (rss_bytes(), HEAP_LIVE_BYTES.load(Ordering::Relaxed));
    for _ in 0..IDLE_CONNECTIONS {
        clients.push(connect(addr, &keys).await?);
    }
    // Wait until the responder has parked its end of every connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while servers.len() < IDLE_CONNECTIONS + 1 && Instant::now() < deadline {
        match park_rx.try_recv() {
            Ok(session) => servers.push(session),
            Err(_) => {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
        }
    }
    let (rss_after, heap_after) = (rss_bytes(), HEAP_LIVE_BYTES.load(Ordering::Relaxed));
    let count = IDLE_CONNECTIONS as f64;
    let mut out = serde_like::Object::new();
    out.int("connections", IDLE_CONNECTIONS as u64);
    out.int(
        "responder_ends_parked",
        servers.len().saturating_sub(1) as u64,
    );
    out.num(
        "rss_bytes_per_connection_both_ends",
        rss_after.saturating_sub(rss_before) as f64 / count,
    );
    out.num(
        "heap_bytes_per_connection_both_ends",
        heap_after.saturating_sub(heap_before) as f64 / count,
    );
    drop(clients);
    drop(servers);
    drop(warm);
    Ok(out)
}

fn main() -> std::process::ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let result = smol::block_on(async {
        let started = Instant::now();
        let mut out = serde_like::Object::new();
        out.int(
            "cpus",
            std::thread::available_parallelism().map_or(1, |n| n.get()) as u64,
        );
        out.str("noise", NOISE_PARAMS);
        // Idle memory first, before the throughput runs have grown the allocator's pools.
        out.obj("idle", idle().await?);
        out.obj("handshake", handshakes().await?);
        let mut cases = Vec::new();
        for (size, total) in THROUGHPUT_CASES {
            let total = if quick { total / 16 } else { total };
            cases.push(throughput(size, total).await?);
        }
        out.arr("throughput", cases);
        out.num("bench_seconds", started.elapsed().as_secs_f64());
        Ok::<_, BoxError>(out)
    });
    match result {
        Ok(out) => {
            println!("{}", out.render());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("transport_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A one-shot channel from the responder task to the benchmark, on std primitives.
mod async_channel_like {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    pub struct Sender<T>(Arc<Mutex<Option<T>>>);
    pub struct Receiver<T>(Arc<Mutex<Option<T>>>);

    impl<T> Clone for Sender<T> {
        fn clone(&self) -> Self {
            Sender(self.0.clone())
        }
    }

    pub fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
        let slot = Arc::new(Mutex::new(None));
        (Sender(slot.clone()), Receiver(slot))
    }

    impl<T> Sender<T> {
        pub fn send(&self, value: T) {
            if let Ok(mut slot) = self.0.lock() {
                *slot = Some(value);
            }
        }
    }

    impl<T> Receiver<T> {
        /// Polls every 100 µs (the receive end-time is taken by the sender, so the polling
        /// interval does not enter the measurement).
        pub async fn recv(self) -> T {
            loop {
                if let Some(value) = self.0.lock().ok().and_then(|mut slot| slot.take()) {
                    return value;
                }
                smol::Timer::after(Duration::from_micros(100)).await;
            }
        }
    }
}

/// Just enough JSON output for flat figures (the protocol crate has no serde dependency).
mod serde_like {
    pub enum Value {
        Int(u64),
        Num(f64),
        Str(String),
        Obj(Object),
        Arr(Vec<Object>),
    }

    #[derive(Default)]
    pub struct Object(Vec<(&'static str, Value)>);

    impl Object {
        pub fn new() -> Object {
            Object::default()
        }
        pub fn int(&mut self, key: &'static str, value: u64) {
            self.0.push((key, Value::Int(value)));
        }
        pub fn num(&mut self, key: &'static str, value: f64) {
            self.0.push((key, Value::Num(value)));
        }
        pub fn str(&mut self, key: &'static str, value: &str) {
            self.0.push((key, Value::Str(value.to_owned())));
        }
        pub fn obj(&mut self, key: &'static str, value: Object) {
            self.0.push((key, Value::Obj(value)));
        }
        pub fn arr(&mut self, key: &'static str, value: Vec<Object>) {
            self.0.push((key, Value::Arr(value)));
        }

        pub fn render(&self) -> String {
            let fields: Vec<String> = self
                .0
                .iter()
                .map(|(key, value)| format!("\"{key}\": {}", render(value)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }

    fn render(value: &Value) -> String {
        match value {
            Value::Int(n) => n.to_string(),
            Value::Num(x) if x.is_finite() => format!("{x:.3}"),
            Value::Num(_) => "null".into(),
            // Keys and the values used here are ASCII without quotes or backslashes.
            Value::Str(s) => format!("\"{s}\""),
            Value::Obj(o) => o.render(),
            Value::Arr(items) => {
                let items: Vec<String> = items.iter().map(Object::render).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}
