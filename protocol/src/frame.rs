//! Length-prefixed frames: a 2-byte big-endian length, then that many bytes.
//!
//! Every Noise message on the wire (handshake and transport) is one frame, so a frame is at
//! most 65,535 bytes, the Noise limit. Readers also take the smallest and largest length
//! allowed at their point of the protocol, so an absurd length is refused before any byte of
//! the body is read or any buffer is grown.

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::FrameError;

/// Size of the length prefix.
pub const LEN_PREFIX_BYTES: usize = 2;

/// Largest frame body: the Noise message size limit.
pub const FRAME_LEN_MAX: usize = u16::MAX as usize;

/// Largest handshake frame body accepted. The three XX messages with empty payloads are 32,
/// 96 and 64 bytes; this leaves room for future payloads while keeping unauthenticated
/// peers from making us read much.
pub const HANDSHAKE_FRAME_LEN_MAX: usize = 1024;

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
pub(crate) async fn read_full<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads one frame into `body` (replacing its contents). The body must be between `min` and
/// `max` bytes long (`max` ≤ [`FRAME_LEN_MAX`]).
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    min: usize,
    max: usize,
    body: &mut Vec<u8>,
) -> Result<(), FrameError> {
    debug_assert!(min <= max && max <= FRAME_LEN_MAX);
    let mut prefix = [0u8; LEN_PREFIX_BYTES];
    let got = read_full(reader, &mut prefix)
        .await
        .map_err(FrameError::Io)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < LEN_PREFIX_BYTES {
        return Err(FrameError::Truncated {
            expected: LEN_PREFIX_BYTES,
            received: got,
        });
    }
    let len = usize::from(u16::from_be_bytes(prefix));
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    if len < min {
        return Err(FrameError::TooShort { len, min });
    }
    body.clear();
    body.resize(len, 0);
    let got = read_full(reader, body).await.map_err(FrameError::Io)?;
    if got < len {
        return Err(FrameError::Truncated {
            expected: LEN_PREFIX_BYTES + len,
            received: LEN_PREFIX_BYTES + got,
        });
    }
    Ok(())
}

/// Appends `body` as one frame (prefix and body) to `out`.
pub fn encode_frame(body: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u16::try_from(body.len()).map_err(|_| FrameError::TooLong {
        len: body.len(),
        max: FRAME_LEN_MAX,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Writes one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> Result<(), FrameError> {
    let mut out = Vec::with_capacity(LEN_PREFIX_BYTES + body.len());
    encode_frame(body, &mut out)?;
    writer.write_all(&out).await.map_err(FrameError::Io)?;
    writer.flush().await.map_err(FrameError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], min: usize, max: usize) -> Result<Vec<u8>, FrameError> {
        let mut reader = bytes;
        let mut body = Vec::new();
        futures_lite::future::block_on(read_frame(&mut reader, min, max, &mut body))?;
        Ok(body)
    }

    #[test]
    fn frame_round_trips() {
        let mut out = Vec::new();
        encode_frame(b"hello", &mut out).unwrap();
        assert_eq!(out, b"\x00\x05hello");
        assert_eq!(read(&out, 0, FRAME_LEN_MAX).unwrap(), b"hello");
    }

    #[test]
    fn over_long_body_is_refused_when_encoding() {
        let body = vec![0u8; FRAME_LEN_MAX + 1];
        assert!(matches!(
            encode_frame(&body, &mut Vec::new()),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn length_over_the_limit_is_refused_before_reading_the_body() {
        assert!(matches!(
            read(b"\xff\xff", 0, HANDSHAKE_FRAME_LEN_MAX),
            Err(FrameError::TooLong {
                len: 65535,
                max: 1024
            })
        ));
    }

    #[test]
    fn short_length_is_refused() {
        assert!(matches!(
            read(b"\x00\x01x", 16, FRAME_LEN_MAX),
            Err(FrameError::TooShort { len: 1, min: 16 })
        ));
    }

    #[test]
    fn truncation_is_named() {
        assert!(matches!(read(b"", 0, 10), Err(FrameError::Closed)));
        assert!(matches!(
            read(b"\x00", 0, 10),
            Err(FrameError::Truncated {
                expected: 2,
                received: 1
            })
        ));
        assert!(matches!(
            read(b"\x00\x05abc", 0, 10),
            Err(FrameError::Truncated {
                expected: 7,
                received: 5
            })
        ));
    }
}
