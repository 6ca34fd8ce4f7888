//! The Noise session: preamble and `Noise_XX_25519_ChaChaPoly_BLAKE2s` handshake as initiator
//! or responder, then encrypted application messages, chunked to fit Noise messages,
//! reassembled, and rekeyed every [`REKEY_INTERVAL_MESSAGES`] messages in each direction.
//!
//! Wire rules (see `spec/protocol.md`): each handshake and transport message is a frame (2-byte
//! big-endian length, then the bytes). A transport message's plaintext is one header byte
//! ([`CHUNK_MORE`] or [`CHUNK_FINAL`]) then up to [`CHUNK_DATA_BYTES_MAX`] bytes of the
//! application message.
//!
//! Architecture invariant: the chunking, reassembly and rekey counting live in [`Sealer`] and
//! [`Opener`], which do no I/O; [`Session`], [`SendHalf`] and [`ReceiveHalf`] only move their
//! frames over a stream.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use snow::{HandshakeState, TransportState};

use crate::envelope::Envelope;
use crate::error::{Error, FrameError, HandshakeError, PreambleError, SessionError};
use crate::frame::{self, FRAME_LEN_MAX, HANDSHAKE_FRAME_LEN_MAX};
use crate::identity::{Keypair, PublicKey};
use crate::preamble::{self, Answer, Preamble};
use crate::{
    HANDSHAKE_TIMEOUT, MESSAGE_SIZE_BYTES_MAX, NOISE_PARAMS, PROTOCOL_VERSION,
    REKEY_INTERVAL_MESSAGES,
};

/// Bytes of the Noise authentication tag on every transport message.
pub const TAG_BYTES: usize = 16;
/// Chunk header byte: more chunks of this message follow.
pub const CHUNK_MORE: u8 = 0x00;
/// Chunk header byte: the last chunk of this message.
pub const CHUNK_FINAL: u8 = 0x01;
/// Largest number of application-message bytes in one chunk: 65,535 − 16 (tag) − 1 (header).
pub const CHUNK_DATA_BYTES_MAX: usize = FRAME_LEN_MAX - TAG_BYTES - 1;
/// Smallest transport frame: a tag and a header byte.
pub const TRANSPORT_FRAME_LEN_MIN: usize = TAG_BYTES + 1;

/// Smallest handshake message of each step with empty payloads (ephemeral key; ephemeral key
/// + encrypted static key + tag; encrypted static key + tag).
const HANDSHAKE_LEN_MIN: [usize; 3] = [32, 32 + 48 + TAG_BYTES, 48 + TAG_BYTES];

/// Options of a handshake. [`Default`] is what production uses.
#[derive(Debug, Clone)]
pub struct HandshakeOptions {
    /// The preamble and handshake must finish within this time.
    pub timeout: Duration,
    /// A fixed X25519 ephemeral secret, to reproduce test vectors. Never set it otherwise:
    /// a reused ephemeral key destroys forward secrecy.
    #[doc(hidden)]
    pub ephemeral_for_testing_only: Option<[u8; 32]>,
    /// Transport messages per direction between rekeys (tests lower it).
    #[doc(hidden)]
    pub rekey_interval_messages: u64,
}

impl Default for HandshakeOptions {
    fn default() -> Self {
        HandshakeOptions {
            timeout: HANDSHAKE_TIMEOUT,
            ephemeral_for_testing_only: None,
            rekey_interval_messages: REKEY_INTERVAL_MESSAGES,
        }
    }
}

/// What the handshake established, besides the ciphers.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The cell of this connection, fixed by the preamble.
    pub cell: PublicKey,
    /// The remote node or client: the allowed key whose Noise static key it proved it holds.
    pub remote: PublicKey,
    /// The Noise handshake hash, the same on both sides (usable for channel binding).
    pub handshake_hash: [u8; 32],
}

/// Connects as initiator on an open stream: preamble for `cell`, then the handshake. The
/// responder must prove it holds one of the `allowed` keys.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    keypair: &Keypair,
    cell: &PublicKey,
    allowed: &[PublicKey],
) -> Result<Session<S>, HandshakeError> {
    initiate_with(stream, keypair, cell, allowed, &HandshakeOptions::default()).await
}

/// [`initiate`] with options.
pub async fn initiate_with<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    keypair: &Keypair,
    cell: &PublicKey,
    allowed: &[PublicKey],
    options: &HandshakeOptions,
) -> Result<Session<S>, HandshakeError> {
    let steps = initiator_steps(&mut stream, keypair, cell, allowed, options);
    let (transport, peer) = with_timeout(options.timeout, steps).await?;
    Ok(Session::new(
        stream,
        transport,
        peer,
        options.rekey_interval_messages,
    ))
}

/// Accepts as responder on an open stream. `members_of` is called with the cell the initiator
/// named and returns the keys allowed to connect to it, or `None` if this node does not serve
/// that cell.
pub async fn respond<S, F>(
    stream: S,
    keypair: &Keypair,
    members_of: F,
) -> Result<Session<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&PublicKey) -> Option<Vec<PublicKey>>,
{
    respond_with(stream, keypair, members_of, &HandshakeOptions::default()).await
}

/// [`respond`] with options.
pub async fn respond_with<S, F>(
    mut stream: S,
    keypair: &Keypair,
    members_of: F,
    options: &HandshakeOptions,
) -> Result<Session<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&PublicKey) -> Option<Vec<PublicKey>>,
{
    let steps = responder_steps(&mut stream, keypair, members_of, options);
    let (transport, peer) = with_timeout(options.timeout, steps).await?;
    Ok(Session::new(
        stream,
        transport,
        peer,
        options.rekey_interval_messages,
    ))
}

async fn with_timeout<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    futures_lite::future::or(future, async {
        async_io::Timer::after(timeout).await;
        Err(HandshakeError::TimedOut)
    })
    .await
}

fn builder<'a>(
    noise_secret: &'a [u8; 32],
    prologue: &'a [u8],
    options: &'a HandshakeOptions,
) -> Result<snow::Builder<'a>, HandshakeError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| HandshakeError::Noise(e))?;
    let mut builder = snow::Builder::new(params)
        .local_private_key(noise_secret)?
        .prologue(prologue)?;
    if let Some(ephemeral) = &options.ephemeral_for_testing_only {
        builder = builder.fixed_ephemeral_key_for_testing_only(ephemeral);
    }
    Ok(builder)
}

/// The allowed key whose Noise static key is `remote_static`.
fn member_of(
    handshake: &HandshakeState,
    allowed: &[PublicKey],
) -> Result<PublicKey, HandshakeError> {
    let mut remote_static = [0u8; 32];
    match handshake.get_remote_static() {
        Some(bytes) if bytes.len() == 32 => remote_static.copy_from_slice(bytes),
        // XX always transmits the static key; its absence is a broken handshake.
        _ => return Err(HandshakeError::Noise(snow::Error::Input)),
    }
    allowed
        .iter()
        .find(|key| key.noise_public() == remote_static)
        .copied()
        .ok_or(HandshakeError::NotAMember { remote_static })
}

fn finish(
    handshake: HandshakeState,
    cell: PublicKey,
    remote: PublicKey,
) -> Result<(TransportState, Peer), HandshakeError> {
    let mut handshake_hash = [0u8; 32];
    let hash = handshake.get_handshake_hash();
    if hash.len() != 32 {
        return Err(HandshakeError::Noise(snow::Error::Input));
    }
    handshake_hash.copy_from_slice(hash);
    let transport = handshake.into_transport_mode()?;
    Ok((
        transport,
        Peer {
            cell,
            remote,
            handshake_hash,
        },
    ))
}

async fn write_handshake<S: AsyncWrite + Unpin>(
    stream: &mut S,
    handshake: &mut HandshakeState,
) -> Result<(), HandshakeError> {
    let mut message = vec![0u8; HANDSHAKE_FRAME_LEN_MAX];
    let len = handshake.write_message(&[], &mut message)?;
    frame::write_frame(stream, &message[..len]).await?;
    Ok(())
}

async fn read_handshake<S: AsyncRead + Unpin>(
    stream: &mut S,
    handshake: &mut HandshakeState,
    step: usize,
) -> Result<(), HandshakeError> {
    let mut message = Vec::new();
    frame::read_frame(
        stream,
        HANDSHAKE_LEN_MIN[step],
        HANDSHAKE_FRAME_LEN_MAX,
        &mut message,
    )
    .await?;
    // Version 1 payloads are empty; any payload is read and ignored.
    let mut payload = vec![0u8; HANDSHAKE_FRAME_LEN_MAX];
    handshake.read_message(&message, &mut payload)?;
    Ok(())
}

async fn initiator_steps<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    keypair: &Keypair,
    cell: &PublicKey,
    allowed: &[PublicKey],
    options: &HandshakeOptions,
) -> Result<(TransportState, Peer), HandshakeError> {
    let preamble = Preamble::new(cell);
    let prologue = preamble.to_bytes();
    preamble::write_preamble(stream, &preamble).await?;
    match preamble::read_answer(stream).await? {
        Answer::Accepted => {}
        Answer::UnsupportedVersion { supported } => {
            return Err(PreambleError::VersionRefused {
                ours: PROTOCOL_VERSION,
                supported,
            }
            .into())
        }
        Answer::UnknownCell => return Err(PreambleError::CellRefused.into()),
    }
    let secret = keypair.noise_secret();
    let mut handshake = builder(&secret, &prologue, options)?.build_initiator()?;
    write_handshake(stream, &mut handshake).await?; // -> e
    read_handshake(stream, &mut handshake, 1).await?; // <- e, ee, s, es
    let remote = member_of(&handshake, allowed)?;
    write_handshake(stream, &mut handshake).await?; // -> s, se
    finish(handshake, *cell, remote)
}

async fn responder_steps<S, F>(
    stream: &mut S,
    keypair: &Keypair,
    members_of: F,
    options: &HandshakeOptions,
) -> Result<(TransportState, Peer), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&PublicKey) -> Option<Vec<PublicKey>>,
{
    let preamble = preamble::read_preamble(stream).await?;
    if preamble.version != PROTOCOL_VERSION {
        let answer = Answer::UnsupportedVersion {
            supported: PROTOCOL_VERSION,
        };
        // The refusal is best effort: the peer may already be gone.
        let _ = preamble::write_answer(stream, &answer).await;
        let _ = stream.close().await;
        return Err(PreambleError::VersionUnsupported {
            requested: preamble.version,
        }
        .into());
    }
    let cell_and_members = PublicKey::from_bytes(&preamble.cell)
        .ok()
        .and_then(|cell| members_of(&cell).map(|members| (cell, members)));
    let Some((cell, members)) = cell_and_members else {
        let _ = preamble::write_answer(stream, &Answer::UnknownCell).await;
        let _ = stream.close().await;
        return Err(PreambleError::UnknownCell {
            cell: preamble.cell,
        }
        .into());
    };
    preamble::write_answer(stream, &Answer::Accepted).await?;
    let prologue = preamble.to_bytes();
    let secret = keypair.noise_secret();
    let mut handshake = builder(&secret, &prologue, options)?.build_responder()?;
    read_handshake(stream, &mut handshake, 0).await?; // -> e
    write_handshake(stream, &mut handshake).await?; // <- e, ee, s, es
    read_handshake(stream, &mut handshake, 2).await?; // -> s, se
    let remote = member_of(&handshake, &members)?;
    finish(handshake, cell, remote)
}

/// The transport ciphers, shared by the two halves of a session: each half uses its own
/// direction, and holds the lock only while encrypting or decrypting one message.
type Ciphers = Arc<Mutex<TransportState>>;

fn lock(ciphers: &Ciphers) -> MutexGuard<'_, TransportState> {
    // A poisoned lock only means another thread panicked mid-call; the state is still usable
    // or the next call fails with a decrypt error, closing the session.
    ciphers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Turns application messages into transport frames: chunks, encrypts, counts, rekeys.
/// Does no I/O.
#[derive(Debug)]
pub struct Sealer {
    ciphers: Ciphers,
    sent: u64,
    rekey_interval: u64,
    plaintext: Vec<u8>,
    /// The frame being written, kept between messages to save an allocation per send.
    out: Vec<u8>,
}

impl Sealer {
    /// Appends the frames (length prefixes included) carrying `message` to `out`.
    pub fn seal(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<(), SessionError> {
        check_message_size(message)?;
        for (chunk, last) in chunks(message) {
            self.seal_chunk(chunk, last, out)?;
        }
        Ok(())
    }

    /// Appends one frame carrying `chunk` (at most [`CHUNK_DATA_BYTES_MAX`] bytes) to `out`.
    pub fn seal_chunk(
        &mut self,
        chunk: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        debug_assert!(chunk.len() <= CHUNK_DATA_BYTES_MAX);
        debug_assert!(last || !chunk.is_empty());
        self.plaintext.clear();
        self.plaintext
            .push(if last { CHUNK_FINAL } else { CHUNK_MORE });
        self.plaintext.extend_from_slice(chunk);
        let start = out.len();
        let body_start = start + frame::LEN_PREFIX_BYTES;
        out.resize(body_start + self.plaintext.len() + TAG_BYTES, 0);
        let written = {
            let mut ciphers = lock(&self.ciphers);
            let written = ciphers
                .write_message(&self.plaintext, &mut out[body_start..])
                .map_err(SessionError::Encrypt)?;
            self.sent += 1;
            if self.sent.is_multiple_of(self.rekey_interval) {
                ciphers.rekey_outgoing();
            }
            written
        };
        let len = u16::try_from(written).map_err(|_| {
            SessionError::Frame(FrameError::TooLong {
                len: written,
                max: FRAME_LEN_MAX,
            })
        })?;
        out[start..body_start].copy_from_slice(&len.to_be_bytes());
        out.truncate(body_start + written);
        Ok(())
    }
}

fn check_message_size(message: &[u8]) -> Result<(), SessionError> {
    if message.len() > MESSAGE_SIZE_BYTES_MAX {
        return Err(SessionError::MessageTooLarge {
            size_bytes: message.len(),
            max: MESSAGE_SIZE_BYTES_MAX,
        });
    }
    Ok(())
}

/// The chunks of a message and whether each is the last; an empty message is one empty
/// final chunk.
fn chunks(message: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    let count = message.len().div_ceil(CHUNK_DATA_BYTES_MAX).max(1);
    (0..count).map(move |i| {
        let start = i * CHUNK_DATA_BYTES_MAX;
        let end = (start + CHUNK_DATA_BYTES_MAX).min(message.len());
        (&message[start..end], i + 1 == count)
    })
}

/// Turns transport frame bodies into application messages: decrypts, counts, rekeys,
/// reassembles, enforces the message size limit. Does no I/O.
#[derive(Debug)]
pub struct Opener {
    ciphers: Ciphers,
    received: u64,
    rekey_interval: u64,
    plaintext: Vec<u8>,
    partial: Vec<u8>,
    /// The frame being read, kept between messages to save an allocation per receive.
    frame: Vec<u8>,
}

impl Opener {
    /// Opens one transport message (a frame body); returns the application message it
    /// completes, if any.
    pub fn open(&mut self, frame_body: &[u8]) -> Result<Option<Vec<u8>>, SessionError> {
        if frame_body.len() < TRANSPORT_FRAME_LEN_MIN {
            return Err(SessionError::Frame(FrameError::TooShort {
                len: frame_body.len(),
                min: TRANSPORT_FRAME_LEN_MIN,
            }));
        }
        self.plaintext.resize(frame_body.len(), 0);
        let len = {
            let mut ciphers = lock(&self.ciphers);
            let len = ciphers
                .read_message(frame_body, &mut self.plaintext)
                .map_err(|_| SessionError::Decrypt)?;
            self.received += 1;
            if self.received.is_multiple_of(self.rekey_interval) {
                ciphers.rekey_incoming();
            }
            len
        };
        let Some((&header, data)) = self.plaintext[..len].split_first() else {
            return Err(SessionError::Frame(FrameError::TooShort { len: 0, min: 1 }));
        };
        let last = match header {
            CHUNK_MORE => false,
            CHUNK_FINAL => true,
            other => return Err(SessionError::BadChunkHeader(other)),
        };
        if !last && data.is_empty() {
            return Err(SessionError::EmptyChunk);
        }
        let size_bytes = self.partial.len() + data.len();
        if size_bytes > MESSAGE_SIZE_BYTES_MAX {
            return Err(SessionError::MessageTooLarge {
                size_bytes,
                max: MESSAGE_SIZE_BYTES_MAX,
            });
        }
        self.partial.extend_from_slice(data);
        if last {
            Ok(Some(std::mem::take(&mut self.partial)))
        } else {
            Ok(None)
        }
    }
}

/// An established, authenticated, encrypted connection.
#[derive(Debug)]
pub struct Session<S> {
    stream: S,
    peer: Peer,
    sealer: Sealer,
    opener: Opener,
}

fn halves(transport: TransportState, rekey_interval: u64) -> (Sealer, Opener) {
    let ciphers = Arc::new(Mutex::new(transport));
    let rekey_interval = rekey_interval.max(1);
    (
        Sealer {
            ciphers: ciphers.clone(),
            sent: 0,
            rekey_interval,
            plaintext: Vec::new(),
            out: Vec::new(),
        },
        Opener {
            ciphers,
            received: 0,
            rekey_interval,
            plaintext: Vec::new(),
            partial: Vec::new(),
            frame: Vec::new(),
        },
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S, transport: TransportState, peer: Peer, rekey_interval: u64) -> Session<S> {
        let (sealer, opener) = halves(transport, rekey_interval);
        Session {
            stream,
            peer,
            sealer,
            opener,
        }
    }

    /// Who is on the other side, and for which cell.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Sends one application message.
    pub async fn send(&mut self, message: &[u8]) -> Result<(), SessionError> {
        send(&mut self.stream, &mut self.sealer, message).await
    }

    /// Receives one application message.
    pub async fn receive(&mut self) -> Result<Vec<u8>, SessionError> {
        receive(&mut self.stream, &mut self.opener).await
    }

    /// Encodes and sends an envelope.
    pub async fn send_envelope(&mut self, envelope: &Envelope) -> Result<(), Error> {
        Ok(self.send(&envelope.encode()?).await?)
    }

    /// Receives and decodes an envelope.
    pub async fn receive_envelope(&mut self) -> Result<Envelope, Error> {
        Ok(Envelope::decode(&self.receive().await?)?)
    }

    /// Orderly close: sends a Close envelope with `reason`, then shuts down the write half.
    pub async fn close(&mut self, reason: &str) -> Result<(), Error> {
        self.send_envelope(&Envelope::close(reason)?).await?;
        self.stream
            .close()
            .await
            .map_err(|e| Error::Session(SessionError::Frame(FrameError::Io(e))))
    }

    /// Splits into a sending and a receiving half, usable from two tasks.
    pub fn split(self) -> (SendHalf<WriteHalf<S>>, ReceiveHalf<ReadHalf<S>>) {
        let (reader, writer) = futures_lite::io::split(self.stream);
        (
            SendHalf {
                writer,
                sealer: self.sealer,
            },
            ReceiveHalf {
                reader,
                opener: self.opener,
                peer: self.peer,
            },
        )
    }
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    sealer: &mut Sealer,
    message: &[u8],
) -> Result<(), SessionError> {
    check_message_size(message)?;
    let mut out = std::mem::take(&mut sealer.out);
    let result = async {
        let io = |e| SessionError::Frame(FrameError::Io(e));
        for (chunk, last) in chunks(message) {
            out.clear();
            sealer.seal_chunk(chunk, last, &mut out)?;
            writer.write_all(&out).await.map_err(io)?;
        }
        writer.flush().await.map_err(io)
    }
    .await;
    sealer.out = out;
    result
}

async fn receive<R: AsyncRead + Unpin>(
    reader: &mut R,
    opener: &mut Opener,
) -> Result<Vec<u8>, SessionError> {
    let mut body = std::mem::take(&mut opener.frame);
    let result = async {
        loop {
            frame::read_frame(reader, TRANSPORT_FRAME_LEN_MIN, FRAME_LEN_MAX, &mut body).await?;
            if let Some(message) = opener.open(&body)? {
                return Ok(message);
            }
        }
    }
    .await;
    opener.frame = body;
    result
}

/// The sending half of a session.
#[derive(Debug)]
pub struct SendHalf<W> {
    writer: W,
    sealer: Sealer,
}

impl<W: AsyncWrite + Unpin> SendHalf<W> {
    /// Sends one application message.
    pub async fn send(&mut self, message: &[u8]) -> Result<(), SessionError> {
        send(&mut self.writer, &mut self.sealer, message).await
    }

    /// Encodes and sends an envelope.
    pub async fn send_envelope(&mut self, envelope: &Envelope) -> Result<(), Error> {
        Ok(self.send(&envelope.encode()?).await?)
    }

    /// Orderly close: sends a Close envelope with `reason`, then shuts down the write half.
    pub async fn close(&mut self, reason: &str) -> Result<(), Error> {
        self.send_envelope(&Envelope::close(reason)?).await?;
        self.shutdown().await
    }

    /// Shuts down the write half of the stream without sending anything: for a sender that
    /// has already sent its Close envelope.
    pub async fn shutdown(&mut self) -> Result<(), Error> {
        self.writer
            .close()
            .await
            .map_err(|e| Error::Session(SessionError::Frame(FrameError::Io(e))))
    }
}

/// The receiving half of a session.
#[derive(Debug)]
pub struct ReceiveHalf<R> {
    reader: R,
    opener: Opener,
    peer: Peer,
}

impl<R: AsyncRead + Unpin> ReceiveHalf<R> {
    /// Who is on the other side, and for which cell.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Receives one application message.
    pub async fn receive(&mut self) -> Result<Vec<u8>, SessionError> {
        receive(&mut self.reader, &mut self.opener).await
    }

    /// Receives and decodes an envelope.
    pub async fn receive_envelope(&mut self) -> Result<Envelope, Error> {
        Ok(Envelope::decode(&self.receive().await?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealer/opener pair for each side, from an in-memory XX handshake.
    fn pair(rekey_interval: u64) -> ((Sealer, Opener), (Sealer, Opener)) {
        let a = Keypair::from_seed(&[1; 32]).noise_secret();
        let b = Keypair::from_seed(&[2; 32]).noise_secret();
        let params: snow::params::NoiseParams = NOISE_PARAMS.parse().unwrap();
        let mut i = snow::Builder::new(params.clone())
            .local_private_key(&a)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::new(params)
            .local_private_key(&b)
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut m, mut p) = ([0u8; 1024], [0u8; 1024]);
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut p).unwrap();
        let n = r.write_message(&[], &mut m).unwrap();
        i.read_message(&m[..n], &mut p).unwrap();
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut p).unwrap();
        (
            halves(i.into_transport_mode().unwrap(), rekey_interval),
            halves(r.into_transport_mode().unwrap(), rekey_interval),
        )
    }

    /// The frame bodies (without length prefixes) in a sealed buffer.
    fn bodies(mut sealed: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !sealed.is_empty() {
            let len = usize::from(u16::from_be_bytes([sealed[0], sealed[1]]));
            out.push(sealed[2..2 + len].to_vec());
            sealed = &sealed[2 + len..];
        }
        out
    }

    fn open_all(opener: &mut Opener, frames: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, SessionError> {
        let mut messages = Vec::new();
        for frame in frames {
            if let Some(message) = opener.open(frame)? {
                messages.push(message);
            }
        }
        Ok(messages)
    }

    #[test]
    fn messages_are_chunked_at_the_noise_limit() {
        let ((mut seal, _), (_, mut open)) = pair(REKEY_INTERVAL_MESSAGES);
        for size in [
            0,
            1,
            CHUNK_DATA_BYTES_MAX,
            CHUNK_DATA_BYTES_MAX + 1,
            3 * CHUNK_DATA_BYTES_MAX + 7,
        ] {
            let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut sealed = Vec::new();
            seal.seal(&message, &mut sealed).unwrap();
            let frames = bodies(&sealed);
            assert_eq!(frames.len(), size.div_ceil(CHUNK_DATA_BYTES_MAX).max(1));
            assert!(frames.iter().all(|f| f.len() <= FRAME_LEN_MAX));
            assert_eq!(open_all(&mut open, &frames).unwrap(), vec![message]);
        }
    }

    #[test]
    fn rekeying_keeps_both_sides_in_step() {
        let ((mut seal_a, mut open_a), (mut seal_b, mut open_b)) = pair(3);
        for round in 0..20u8 {
            let mut sealed = Vec::new();
            seal_a.seal(&[round; 10], &mut sealed).unwrap();
            assert_eq!(
                open_all(&mut open_b, &bodies(&sealed)).unwrap(),
                vec![vec![round; 10]]
            );
            let mut sealed = Vec::new();
            seal_b.seal(&[round; 5], &mut sealed).unwrap();
            assert_eq!(
                open_all(&mut open_a, &bodies(&sealed)).unwrap(),
                vec![vec![round; 5]]
            );
        }
    }

    #[test]
    fn replayed_and_reordered_frames_fail_to_decrypt() {
        let ((mut seal, _), (_, mut open)) = pair(REKEY_INTERVAL_MESSAGES);
        let mut sealed = Vec::new();
        seal.seal(b"first", &mut sealed).unwrap();
        seal.seal(b"second", &mut sealed).unwrap();
        let frames = bodies(&sealed);
        assert_eq!(open.open(&frames[0]).unwrap(), Some(b"first".to_vec()));
        assert!(matches!(open.open(&frames[0]), Err(SessionError::Decrypt)));
        let ((mut seal, _), (_, mut open)) = pair(REKEY_INTERVAL_MESSAGES);
        let mut sealed = Vec::new();
        seal.seal(b"first", &mut sealed).unwrap();
        seal.seal(b"second", &mut sealed).unwrap();
        let frames = bodies(&sealed);
        assert!(matches!(open.open(&frames[1]), Err(SessionError::Decrypt)));
    }

    #[test]
    fn bad_chunks_are_errors() {
        let ((mut seal, _), (_, mut open)) = pair(REKEY_INTERVAL_MESSAGES);
        // A plaintext whose header byte is 7: sealed by hand.
        let mut sealed = Vec::new();
        seal.plaintext.clear();
        let mut out = vec![0u8; 64];
        let n = lock(&seal.ciphers)
            .write_message(&[7, 1, 2], &mut out)
            .unwrap();
        sealed.extend_from_slice(&out[..n]);
        assert!(matches!(
            open.open(&sealed),
            Err(SessionError::BadChunkHeader(7))
        ));

        let ((seal, _), (_, mut open)) = pair(REKEY_INTERVAL_MESSAGES);
        let n = lock(&seal.ciphers)
            .write_message(&[CHUNK_MORE], &mut out)
            .unwrap();
        assert!(matches!(
            open.open(&out[..n]),
            Err(SessionError::EmptyChunk)
        ));

        let ((_, _), (_, mut open)) = pair(REKEY_INTERVAL_MESSAGES);
        assert!(open.open(&[0u8; 5]).is_err());
        assert!(matches!(open.open(&[0u8; 40]), Err(SessionError::Decrypt)));
    }

    #[test]
    fn over_large_messages_are_refused_on_both_sides() {
        let ((mut seal, _), (_, mut open)) = pair(REKEY_INTERVAL_MESSAGES);
        let big = vec![0u8; MESSAGE_SIZE_BYTES_MAX + 1];
        assert!(matches!(
            seal.seal(&big, &mut Vec::new()),
            Err(SessionError::MessageTooLarge { .. })
        ));
        // A peer that keeps sending non-final chunks past the limit is stopped.
        let chunk = vec![0u8; CHUNK_DATA_BYTES_MAX];
        let mut result = Ok(None);
        for _ in 0..=(MESSAGE_SIZE_BYTES_MAX / CHUNK_DATA_BYTES_MAX + 1) {
            let mut sealed = Vec::new();
            seal.seal_chunk(&chunk, false, &mut sealed).unwrap();
            result = open.open(&sealed[2..]);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(SessionError::MessageTooLarge { .. })));
    }
}
