//! The rendezvous server's I/O: a TCP listener, one task per connection (a reader here and a
//! writer draining the connection's queue), and a sweeper that closes expired slots. Every
//! decision is the [`Registry`]'s; this file moves frames and writes the log.
//!
//! The server never sees a PIN's secret digits, only slot numbers, and relays opaque bytes.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_net::{TcpListener, TcpStream};
use futures_lite::future;

use super::frame::{self, ClientFrame, ErrorCode, FrameError, ServerFrame, MAGIC};
use super::registry::{Limits, Party, Registry};

/// How long a new connection may take to say what it wants.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for one connection before its peer counts as stalled.
const QUEUE_FRAMES_MAX: usize = 16;

type Handle = Sender<ServerFrame>;

struct Shared {
    registry: Mutex<Registry<Handle>>,
    started: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry<Handle>> {
        // A panic while holding the lock cannot leave the registry half-updated in a way
        // that matters more than stopping the server would.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: TcpListener, limits: Limits) {
    let tick = Duration::from_millis((limits.ttl_ms / 4).clamp(20, 1000));
    let shared = Arc::new(Shared {
        registry: Mutex::new(Registry::new(limits)),
        started: Instant::now(),
    });
    // Dropping a task cancels it: the binding keeps the sweeper alive with the server.
    let _sweeper = smol::spawn(sweep(shared.clone(), tick));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("accept failed: {err}");
                async_io::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        smol::spawn(async move {
            let ip = peer.ip();
            let admitted = shared.registry().connect(ip);
            if let Err(refusal) = admitted {
                tracing::info!("refused a connection from {ip}: {refusal}");
                let mut stream = stream;
                let _ = frame::write(
                    &mut stream,
                    &ServerFrame::error(refusal.code(), refusal.to_string()).encode(),
                )
                .await;
                return;
            }
            connection(stream, peer, &shared).await;
            shared.registry().disconnect(ip);
        })
        .detach();
    }
}

async fn sweep(shared: Arc<Shared>, tick: Duration) {
    loop {
        async_io::Timer::after(tick).await;
        let expired = shared.registry().expire(shared.now_ms());
        for (slot, parties) in expired {
            tracing::info!("slot {slot} expired");
            for party in parties {
                let _ = party.try_send(ServerFrame::error(
                    ErrorCode::Expired,
                    "the PIN expired before the join finished",
                ));
            }
        }
    }
}

/// Where a connection stands: which slot it is in, as which party.
struct Seat {
    slot: u32,
    party: Party,
}

async fn connection(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let (tx, rx) = async_channel::bounded(QUEUE_FRAMES_MAX);
    let writer = smol::spawn(write_queue(stream.clone(), rx));
    let mut reader = stream.clone();
    let mut seat = None;
    let outcome = serve_connection(&mut reader, peer.ip(), &tx, shared, &mut seat).await;
    if let Err(Some(last)) = outcome {
        let _ = tx.try_send(last);
    }
    if let Some(Seat { slot, party }) = seat {
        if let Some(other) = shared.registry().leave(slot, party, shared.now_ms()) {
            tracing::info!("slot {slot} closed: the {} disconnected", party_name(party));
            let _ = other.try_send(ServerFrame::PeerLeft);
        }
    }
    drop(tx);
    writer.await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn party_name(party: Party) -> &'static str {
    match party {
        Party::Joiner => "joining node",
        Party::Member => "member",
    }
}

/// Reads the connection's frames until it ends. `Err(Some(frame))`: send that error, close.
async fn serve_connection(
    reader: &mut TcpStream,
    ip: IpAddr,
    tx: &Handle,
    shared: &Shared,
    seat: &mut Option<Seat>,
) -> Result<(), Option<ServerFrame>> {
    let mut magic = [0u8; 8];
    let hello = within(
        futures_lite::AsyncReadExt::read_exact(reader, &mut magic),
        "the greeting",
    )
    .await?;
    match hello {
        Ok(()) if &magic == MAGIC => {}
        Ok(()) => {
            tracing::info!("refused {ip}: not an exo join client");
            return Err(Some(ServerFrame::error(
                ErrorCode::Version,
                "not an exo join client, or another version of the join protocol (expected EXOJOIN1)",
            )));
        }
        Err(_) => return Err(None),
    }
    let first = decode(within(frame::read(reader), "OPEN or CLAIM").await?)?;
    let now = shared.now_ms();
    match first {
        ClientFrame::Open => {
            let opened = shared
                .registry()
                .open(ip, tx.clone(), now, fastrand::u64(..));
            match opened {
                Ok((slot, _)) => {
                    let ttl_secs = (shared.registry().limits().ttl_ms / 1000).max(1) as u32;
                    tracing::info!("slot {slot} opened by {ip} (expires in {ttl_secs} s)");
                    *seat = Some(Seat {
                        slot,
                        party: Party::Joiner,
                    });
                    let _ = tx.try_send(ServerFrame::Opened { slot, ttl_secs });
                }
                Err(refusal) => {
                    tracing::info!("refused to open a slot for {ip}: {refusal}");
                    return Err(Some(ServerFrame::error(
                        refusal.code(),
                        refusal.to_string(),
                    )));
                }
            }
        }
        ClientFrame::Claim(slot) => {
            let claimed = shared.registry().claim(slot, ip, tx.clone(), now);
            match claimed {
                Ok(joiner) => {
                    tracing::info!("slot {slot} claimed by {ip}");
                    *seat = Some(Seat {
                        slot,
                        party: Party::Member,
                    });
                    let _ = tx.try_send(ServerFrame::Claimed);
                    let _ = joiner.try_send(ServerFrame::PeerJoined);
                }
                Err(refusal) => {
                    tracing::info!("refused a claim of slot {slot} by {ip}: {refusal}");
                    return Err(Some(ServerFrame::error(
                        refusal.code(),
                        refusal.to_string(),
                    )));
                }
            }
        }
        ClientFrame::Relay(_) => {
            return Err(Some(ServerFrame::error(
                ErrorCode::Malformed,
                "the first frame must be OPEN or CLAIM",
            )))
        }
    }
    let (slot, party) = match seat {
        Some(Seat { slot, party }) => (*slot, *party),
        None => return Ok(()),
    };
    loop {
        let frame = match frame::read(reader).await {
            Err(FrameError::Io(_)) => return Ok(()),
            other => decode(other)?,
        };
        let ClientFrame::Relay(data) = frame else {
            return Err(Some(ServerFrame::error(
                ErrorCode::Malformed,
                "only RELAY frames are expected once in a slot",
            )));
        };
        let to = shared.registry().relay(slot, party);
        match to {
            Ok(to) => match to.try_send(ServerFrame::Relay(data)) {
                Ok(()) => {}
                // The other party's connection is ending: it left.
                Err(async_channel::TrySendError::Closed(_)) => {
                    return Err(Some(ServerFrame::PeerLeft))
                }
                Err(async_channel::TrySendError::Full(_)) => {
                    return Err(Some(ServerFrame::error(
                        ErrorCode::PeerStalled,
                        "the other party does not read its messages",
                    )))
                }
            },
            Err(refusal) => {
                tracing::info!("slot {slot}: {refusal}");
                return Err(Some(ServerFrame::error(
                    refusal.code(),
                    refusal.to_string(),
                )));
            }
        }
    }
}

/// `reading`'s result if it comes within [`HELLO_TIMEOUT`], else the TIMEOUT error to send.
async fn within<T>(
    reading: impl std::future::Future<Output = T>,
    what: &str,
) -> Result<T, Option<ServerFrame>> {
    let timeout = async {
        async_io::Timer::after(HELLO_TIMEOUT).await;
        Err(Some(ServerFrame::error(
            ErrorCode::Timeout,
            format!(
                "nothing received in {} s while waiting for {what}",
                HELLO_TIMEOUT.as_secs()
            ),
        )))
    };
    future::or(async { Ok(reading.await) }, timeout).await
}

fn decode(read: Result<(u8, Vec<u8>), FrameError>) -> Result<ClientFrame, Option<ServerFrame>> {
    match read {
        Ok((kind, body)) => ClientFrame::decode(kind, body)
            .map_err(|e| Some(ServerFrame::error(ErrorCode::Malformed, e.to_string()))),
        Err(FrameError::TooLarge(len)) => Err(Some(ServerFrame::error(
            ErrorCode::TooLarge,
            FrameError::TooLarge(len).to_string(),
        ))),
        Err(FrameError::Malformed(what)) => {
            Err(Some(ServerFrame::error(ErrorCode::Malformed, what)))
        }
        Err(FrameError::Io(_)) => Err(None),
    }
}

/// Writes the connection's queued frames; stops after a last frame (`PEER_LEFT`, `ERROR`)
/// or when the queue closes, and shuts the socket so the reader ends too.
async fn write_queue(mut stream: TcpStream, rx: Receiver<ServerFrame>) {
    while let Ok(frame) = rx.recv().await {
        if frame::write(&mut stream, &frame.encode()).await.is_err() || frame.is_last() {
            break;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
