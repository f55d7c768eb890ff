//! Frame header and limits.
//!
//! Every message travels as one frame:
//!
//! ```text
//! +--------+--------+---------+------+----------------+-----------------+
//! | 'R'    | 'S'    | version | kind | length (u32 BE)| payload (length)|
//! +--------+--------+---------+------+----------------+-----------------+
//!   magic (2 bytes)   1 byte    1 byte   4 bytes
//! ```
//!
//! The header is checked before any payload byte is read, so a wrong magic, a wrong version, an
//! unknown kind or an oversized length is refused without buffering the body.

/// The two bytes that start every frame.
pub const MAGIC: [u8; 2] = *b"RS";
/// The protocol version carried in every header. Bump it when the payload encoding changes.
pub const PROTOCOL_VERSION: u8 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 8;
/// Hard upper bound of a payload. A report of a busy router is a few kilobytes; 1 MiB leaves room
/// for hundreds of stations while bounding what a peer can make us buffer.
pub const MAX_FRAME_LEN: u32 = 1024 * 1024;
/// Largest frame the collector reads from a peer that has not authenticated yet (the first frame
/// of a connection: `EnrollRequest` or `Hello`). An enrollment request (token, CSR, names) is
/// well under 2 KiB; anything larger before authentication is refused after its 8-byte header.
pub const MAX_PREAUTH_FRAME_LEN: u32 = 8 * 1024;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageKind {
    Hello = 1,
    /// A report in the version 1 model ([`crate::model_v1`]), as agents before the Wi-Fi 7 /
    /// airtime fields send it (and as their spools still hold it after an upgrade). The
    /// collector decodes it and converts it to the current model.
    ReportV1 = 2,
    Ack = 3,
    EnrollRequest = 4,
    EnrollResponse = 5,
    RenewRequest = 6,
    RenewResponse = 7,
    Error = 8,
    HelloAck = 9,
    /// A report as a patch of the previous report payload sent on the same connection
    /// (see [`crate::patch`]).
    ReportPatch = 10,
    /// A report in the version 2 model ([`crate::model_v2`]): agents before active probes and
    /// WAN addresses. The collector decodes it and converts it to the current model.
    ReportV2 = 11,
    /// Collector -> agent: a fleet action (see [`crate::action`]).
    Action = 12,
    /// Agent -> collector: the result of an action.
    ActionResult = 13,
    /// A report in the current model. A new kind rather than a new header version, so that old
    /// agents keep talking to a new collector unchanged; a new agent talking to an old
    /// collector is refused with "unknown message kind 14" (upgrade collectors first).
    Report = 14,
}

impl MessageKind {
    /// Every kind, in wire order.
    pub const ALL: [MessageKind; 14] = [
        MessageKind::Hello,
        MessageKind::ReportV1,
        MessageKind::Ack,
        MessageKind::EnrollRequest,
        MessageKind::EnrollResponse,
        MessageKind::RenewRequest,
        MessageKind::RenewResponse,
        MessageKind::Error,
        MessageKind::HelloAck,
        MessageKind::ReportPatch,
        MessageKind::ReportV2,
        MessageKind::Action,
        MessageKind::ActionResult,
        MessageKind::Report,
    ];

    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u8 == b)
    }

    /// Whether frames of this kind carry a whole report payload (of either model version).
    pub fn is_full_report(self) -> bool {
        matches!(
            self,
            MessageKind::Report | MessageKind::ReportV2 | MessageKind::ReportV1
        )
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic {0:02x?}: not a routerstats frame")]
    BadMagic([u8; 2]),
    #[error("unsupported protocol version {got} (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion { got: u8 },
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u32, max: u32 },
    #[error("truncated frame: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("bad {kind:?} payload: {reason}")]
    BadPayload { kind: MessageKind, reason: String },
    #[error("unexpected {got:?} message, expected {expected}")]
    Unexpected {
        got: MessageKind,
        expected: &'static str,
    },
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub version: u8,
    pub kind: MessageKind,
    pub len: u32,
}

impl FrameHeader {
    pub fn new(kind: MessageKind, len: u32) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            kind,
            len,
        }
    }

    /// Writes the header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..2].copy_from_slice(&MAGIC);
        b[2] = self.version;
        b[3] = self.kind as u8;
        b[4..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// Parses and validates a header against `max_len` (at most [`MAX_FRAME_LEN`]).
    pub fn parse(bytes: &[u8], max_len: u32) -> Result<Self, FrameError> {
        if bytes.len() < HEADER_LEN {
            return Err(FrameError::Truncated {
                need: HEADER_LEN,
                have: bytes.len(),
            });
        }
        let magic = [bytes[0], bytes[1]];
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        if bytes[2] != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion { got: bytes[2] });
        }
        let kind = MessageKind::from_u8(bytes[3]).ok_or(FrameError::UnknownKind(bytes[3]))?;
        let len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let max = max_len.min(MAX_FRAME_LEN);
        if len > max {
            return Err(FrameError::TooLarge { len, max });
        }
        Ok(Self {
            version: bytes[2],
            kind,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = FrameHeader::new(MessageKind::Report, 1234);
        assert_eq!(FrameHeader::parse(&h.to_bytes(), MAX_FRAME_LEN).unwrap(), h);
    }

    #[test]
    fn header_errors_are_typed() {
        let good = FrameHeader::new(MessageKind::Ack, 10).to_bytes();
        let mut b = good;
        b[0] = b'X';
        assert!(matches!(
            FrameHeader::parse(&b, MAX_FRAME_LEN),
            Err(FrameError::BadMagic(_))
        ));
        let mut b = good;
        b[2] = 99;
        assert_eq!(
            FrameHeader::parse(&b, MAX_FRAME_LEN),
            Err(FrameError::UnsupportedVersion { got: 99 })
        );
        let mut b = good;
        b[3] = 200;
        assert_eq!(
            FrameHeader::parse(&b, MAX_FRAME_LEN),
            Err(FrameError::UnknownKind(200))
        );
        let big = FrameHeader::new(MessageKind::Report, MAX_FRAME_LEN + 1).to_bytes();
        assert!(matches!(
            FrameHeader::parse(&big, MAX_FRAME_LEN),
            Err(FrameError::TooLarge { .. })
        ));
        let small_cap = FrameHeader::new(MessageKind::Report, 100).to_bytes();
        assert!(matches!(
            FrameHeader::parse(&small_cap, 99),
            Err(FrameError::TooLarge { len: 100, max: 99 })
        ));
        assert!(matches!(
            FrameHeader::parse(&good[..5], MAX_FRAME_LEN),
            Err(FrameError::Truncated { .. })
        ));
    }
}
