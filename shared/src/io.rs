//! Async frame I/O over tokio streams (feature `io`).
//!
//! The header is read and validated before the payload, so a peer announcing an oversized frame
//! is refused after eight bytes, never buffered.

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
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R, max_len: u32) -> Result<Message, IoError> {
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

/// Reads one frame without decoding it: its kind and payload bytes. The collector reads with
/// this, so it keeps the report payload a later `ReportPatch` is relative to.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: u32,
) -> Result<(MessageKind, Vec<u8>), IoError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Err(IoError::Closed)
            } else {
                Err(FrameError::Truncated { need: HEADER_LEN, have: got }.into())
            };
        }
        got += n;
    }
    let h = FrameHeader::parse(&header, max_len)?;
    let mut payload = vec![0u8; h.len as usize];
    r.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            IoError::Frame(FrameError::Truncated { need: HEADER_LEN + h.len as usize, have: HEADER_LEN })
        } else {
            IoError::Io(e)
        }
    })?;
    Ok((h.kind, payload))
}

/// Writes one frame and flushes.
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, msg: &Message) -> Result<(), IoError> {
    let frame = msg.to_frame()?;
    w.write_all(&frame).await?;
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
        let m = Message::Ack(Ack { boot_id: [3; 16], seq: 7 });
        write_message(&mut a, &m).await.unwrap();
        drop(a);
        assert_eq!(read_message(&mut b, MAX_FRAME_LEN).await.unwrap(), m);
        assert!(matches!(read_message(&mut b, MAX_FRAME_LEN).await, Err(IoError::Closed)));
    }

    #[tokio::test]
    async fn read_reply_takes_replies_and_refuses_agent_messages() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let ack = Message::Ack(Ack { boot_id: [3; 16], seq: 7 });
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
            Err(IoError::Frame(FrameError::Unexpected { got: MessageKind::Hello, .. }))
        ));
        assert!(matches!(read_reply(&mut b, MAX_FRAME_LEN).await, Err(IoError::Closed)));
    }

    #[tokio::test]
    async fn oversized_header_is_refused_before_the_body() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let h = FrameHeader::new(crate::MessageKind::Report, 10_000).to_bytes();
        a.write_all(&h).await.unwrap();
        let err = read_message(&mut b, 1000).await.unwrap_err();
        assert!(matches!(err, IoError::Frame(FrameError::TooLarge { len: 10_000, max: 1000 })));
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(matches!(read_message(&mut b, MAX_FRAME_LEN).await, Err(IoError::Frame(FrameError::BadMagic(_)))));
    }

    #[tokio::test]
    async fn body_cut_short_is_truncated() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let frame = Message::Ack(Ack { boot_id: [3; 16], seq: 7 }).to_frame().unwrap();
        a.write_all(&frame[..frame.len() - 2]).await.unwrap();
        drop(a);
        assert!(matches!(read_message(&mut b, MAX_FRAME_LEN).await, Err(IoError::Frame(FrameError::Truncated { .. }))));
    }
}
