//! Async frame I/O over tokio streams (feature `io`).
//!
//! The header is read and validated before the payload, so a peer announcing an oversized frame
//! is refused after eight bytes, never buffered. The payload buffer grows with the bytes that
//! actually arrive (in steps of at most [`READ_CHUNK`] beyond them), so a header announcing
//! 1 MiB followed by silence costs a few kilobytes, not a megabyte.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{FrameError, FrameHeader, MessageKind, HEADER_LEN};
use crate::message::Message;

/// Why reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("connection closed by peer")]
    Closed,
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. Returns [`IoError::Closed`] on a clean end of stream before a header.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: u32,
) -> Result<Message, IoError> {
    read_with(r, max_len, Message::decode_payload).await
}

/// Reads one frame the collector sends to an agent ([`Message::decode_reply`]): any other kind
/// is an error ([`FrameError::Unexpected`]) and its payload is not decoded. The agent reads with
/// this, so that it links no decoder of the messages it only sends.
pub async fn read_reply<R: AsyncRead + Unpin>(r: &mut R, max_len: u32) -> Result<Message, IoError> {
    read_with(r, max_len, Message::decode_reply).await
}

async fn read_with<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: u32,
    decode: fn(MessageKind, &[u8]) -> Result<Message, FrameError>,
) -> Result<Message, IoError> {
    let (kind, payload) = read_frame(r, max_len).await?;
    Ok(decode(kind, &payload)?)
}

/// How much the payload buffer grows ahead of the bytes received.
pub const READ_CHUNK: usize = 16 * 1024;

/// Reads one frame without decoding it: its kind and payload bytes. The collector reads with
/// this, so it keeps the report payload a later `ReportPatch` is relative to.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: u32,
) -> Result<(MessageKind, Vec<u8>), IoError> {
    read_frame_capped(r, || max_len).await
}

/// Like [`read_frame`], with the size limit asked for once the header has arrived, so a limit
/// that changes while the reader waits (the collector lifts it once a router has authenticated)
/// applies to the frame whose header comes next.
pub async fn read_frame_capped<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: impl FnOnce() -> u32,
) -> Result<(MessageKind, Vec<u8>), IoError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Err(IoError::Closed)
            } else {
                Err(FrameError::Truncated {
                    need: HEADER_LEN,
                    have: got,
                }
                .into())
            };
        }
        got += n;
    }
    let h = FrameHeader::parse(&header, max_len())?;
    let len = h.len as usize;
    // Grow with the bytes received: never allocate the announced length up front.
    let mut payload = Vec::new();
    let mut have = 0;
    while have < len {
        if have == payload.len() {
            let grow = (len - have).min(READ_CHUNK.max(have));
            payload.resize(have + grow, 0);
        }
        let n = r.read(&mut payload[have..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                need: HEADER_LEN + len,
                have: HEADER_LEN + have,
            }
            .into());
        }
        have += n;
    }
    Ok((h.kind, payload))
}

/// Writes one frame and flushes.
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, msg: &Message) -> Result<(), IoError> {
    write_frame(w, &msg.to_frame()?).await
}

/// [`write_message`] for an agent: frames with [`Message::to_request_frame`] (only the messages
/// an agent sends).
pub async fn write_request<W: AsyncWrite + Unpin>(w: &mut W, msg: &Message) -> Result<(), IoError> {
    write_frame(w, &msg.to_request_frame()?).await
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), IoError> {
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MAX_FRAME_LEN;
    use crate::message::Ack;

    #[tokio::test]
    async fn round_trip_over_a_pipe() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let m = Message::Ack(Ack {
            boot_id: [3; 16],
            seq: 7,
        });
        write_message(&mut a, &m).await.unwrap();
        drop(a);
        assert_eq!(read_message(&mut b, MAX_FRAME_LEN).await.unwrap(), m);
        assert!(matches!(
            read_message(&mut b, MAX_FRAME_LEN).await,
            Err(IoError::Closed)
        ));
    }

    #[tokio::test]
    async fn read_reply_takes_replies_and_refuses_agent_messages() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let ack = Message::Ack(Ack {
            boot_id: [3; 16],
            seq: 7,
        });
        let hello = Message::Hello(crate::message::Hello {
            agent_version: "0.1".into(),
            hostname: "h".into(),
            boot_id: [1; 16],
            spooled: 0,
        });
        write_message(&mut a, &ack).await.unwrap();
        write_message(&mut a, &hello).await.unwrap();
        drop(a);
        assert_eq!(read_reply(&mut b, MAX_FRAME_LEN).await.unwrap(), ack);
        assert!(matches!(
            read_reply(&mut b, MAX_FRAME_LEN).await,
            Err(IoError::Frame(FrameError::Unexpected {
                got: MessageKind::Hello,
                ..
            }))
        ));
        assert!(matches!(
            read_reply(&mut b, MAX_FRAME_LEN).await,
            Err(IoError::Closed)
        ));
    }

    #[tokio::test]
    async fn oversized_header_is_refused_before_the_body() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let h = FrameHeader::new(crate::MessageKind::Report, 10_000).to_bytes();
        a.write_all(&h).await.unwrap();
        let err = read_message(&mut b, 1000).await.unwrap_err();
        assert!(matches!(
            err,
            IoError::Frame(FrameError::TooLarge {
                len: 10_000,
                max: 1000
            })
        ));
    }

    /// Largest single allocation made on this thread since the last reset (test allocator).
    mod alloc_probe {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        pub struct Probe;
        thread_local! {
            static LARGEST: Cell<usize> = const { Cell::new(0) };
        }
        unsafe impl GlobalAlloc for Probe {
            unsafe fn alloc(&self, l: Layout) -> *mut u8 {
                let _ = LARGEST.try_with(|c| c.set(c.get().max(l.size())));
                System.alloc(l)
            }
            unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
                let _ = LARGEST.try_with(|c| c.set(c.get().max(l.size())));
                System.alloc_zeroed(l)
            }
            unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
                let _ = LARGEST.try_with(|c| c.set(c.get().max(n)));
                System.realloc(p, l, n)
            }
            unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
                System.dealloc(p, l)
            }
        }
        pub fn reset() {
            LARGEST.with(|c| c.set(0));
        }
        pub fn largest() -> usize {
            LARGEST.with(|c| c.get())
        }
    }

    #[global_allocator]
    static PROBE: alloc_probe::Probe = alloc_probe::Probe;

    #[tokio::test(flavor = "current_thread")]
    async fn announced_length_is_not_allocated_before_its_bytes_arrive() {
        // A 1 MiB header followed by 100 bytes and the end of the stream: the reader must fail
        // with Truncated having allocated about what arrived, not the announced megabyte.
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let h = FrameHeader::new(crate::MessageKind::Report, MAX_FRAME_LEN).to_bytes();
        a.write_all(&h).await.unwrap();
        a.write_all(&[7u8; 100]).await.unwrap();
        drop(a);
        alloc_probe::reset();
        let err = read_frame(&mut b, MAX_FRAME_LEN).await.unwrap_err();
        let largest = alloc_probe::largest();
        assert!(
            matches!(err, IoError::Frame(FrameError::Truncated { have: 108, .. })),
            "{err:?}"
        );
        assert!(
            largest <= READ_CHUNK,
            "allocated {largest} bytes for 100 received"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn large_frames_arriving_in_pieces_read_whole() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let len = 300_000u32;
        let writer = tokio::spawn(async move {
            a.write_all(&FrameHeader::new(crate::MessageKind::Report, len).to_bytes())
                .await
                .unwrap();
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for piece in body.chunks(7001) {
                a.write_all(piece).await.unwrap();
            }
            a.write_all(b"next").await.unwrap();
            a
        });
        let (kind, payload) = read_frame(&mut b, MAX_FRAME_LEN).await.unwrap();
        assert_eq!(kind, crate::MessageKind::Report);
        assert_eq!(payload.len(), len as usize);
        assert!(payload
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i % 251) as u8));
        // Not a byte past the frame was consumed.
        let _a = writer.await.unwrap();
        let mut rest = [0u8; 4];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"next");
    }

    #[tokio::test]
    async fn cap_is_asked_after_the_header() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&FrameHeader::new(crate::MessageKind::Report, 5000).to_bytes())
            .await
            .unwrap();
        let err = read_frame_capped(&mut b, || crate::MAX_PREAUTH_FRAME_LEN.min(4096))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                IoError::Frame(FrameError::TooLarge {
                    len: 5000,
                    max: 4096
                })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(matches!(
            read_message(&mut b, MAX_FRAME_LEN).await,
            Err(IoError::Frame(FrameError::BadMagic(_)))
        ));
    }

    #[tokio::test]
    async fn body_cut_short_is_truncated() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let frame = Message::Ack(Ack {
            boot_id: [3; 16],
            seq: 7,
        })
        .to_frame()
        .unwrap();
        a.write_all(&frame[..frame.len() - 2]).await.unwrap();
        drop(a);
        assert!(matches!(
            read_message(&mut b, MAX_FRAME_LEN).await,
            Err(IoError::Frame(FrameError::Truncated { .. }))
        ));
    }
}
