//! Every message of the protocol, and how it maps to a frame.
//!
//! The ingest connection (client certificate required):
//! agent `Hello` -> collector `HelloAck`, then agent `Report`* -> collector `Ack`* (each ack sent
//! after the report's SQLite transaction committed); `RenewRequest` -> `RenewResponse` at any time.
//! After the first `Report` of a connection, a report may come as a `ReportPatch`: a
//! [`crate::patch`] of its payload against the previous report payload of that connection; the
//! collector applies it and handles the result exactly like a `Report` payload.
//!
//! On the same ingest connection, at any time after `HelloAck`: collector `Action` -> agent, and
//! agent `ActionResult` -> collector when the action ended (see [`crate::action`]).
//!
//! The enrollment connection (no client certificate): agent `EnrollRequest` -> collector
//! `EnrollResponse` or `Error`, then the connection closes.

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionResult};
use crate::codec;
use crate::encode;
use crate::frame::{FrameError, FrameHeader, MessageKind, HEADER_LEN, MAX_FRAME_LEN};
use crate::model::Report;

/// First message on an ingest connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub agent_version: String,
    pub hostname: String,
    pub boot_id: [u8; 16],
    /// Reports waiting in the agent's spool when it connected.
    pub spooled: u32,
}

/// The collector's answer to `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    pub router_id: i64,
    pub router_name: String,
    /// Unix time (seconds) at the collector, so the agent can tell if its clock is off.
    pub server_time: u64,
    /// Unix time (seconds) when the agent's certificate expires.
    pub cert_not_after: u64,
    /// Whether the agent should renew its certificate now.
    pub renew_now: bool,
}

/// The collector stored the report `(boot_id, seq)` durably (or already had it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub boot_id: [u8; 16],
    pub seq: u64,
}

/// A router asks to join the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The whole enrollment token string (`rs1.<id>.<secret>.<ca-hash>`).
    pub token: String,
    /// PEM certificate signing request for the key generated on the router.
    pub csr_pem: String,
    /// Requested router name; the token's name is used when absent.
    pub name: Option<String>,
    pub hostname: String,
}

/// Enrollment succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub router_id: i64,
    pub router_name: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

/// An enrolled router asks for a fresh certificate for a new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    pub csr_pem: String,
}

/// The renewed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewResponse {
    pub cert_pem: String,
}

/// Machine-readable reason of an [`ErrorMsg`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    InvalidToken,
    ExpiredToken,
    UsedToken,
    BadCsr,
    Revoked,
    Protocol,
    Internal,
    Unavailable,
}

/// The collector refuses a request; the connection closes after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMsg {
    pub code: ErrorCode,
    pub message: String,
}

/// How a message says when to come back: it ends with `retry in <N> s` (kept in the text so
/// that older agents and collectors still read the frame).
const RETRY_HINT: &str = "retry in ";

impl ErrorMsg {
    /// `Unavailable` with a hint to come back after `secs` seconds.
    pub fn unavailable_retry(message: impl Into<String>, secs: u64) -> ErrorMsg {
        ErrorMsg {
            code: ErrorCode::Unavailable,
            message: format!("{}; {RETRY_HINT}{secs} s", message.into()),
        }
    }

    /// The collector's hint of when to come back, if the message carries one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        retry_hint(&self.message)
    }
}

/// Reads a `retry in <N> s` hint at the end of an error message.
pub fn retry_hint(message: &str) -> Option<std::time::Duration> {
    let at = message.rfind(RETRY_HINT)?;
    let secs = message.get(at + RETRY_HINT.len()..)?.strip_suffix(" s")?;
    let secs: u64 = secs.parse().ok()?;
    Some(std::time::Duration::from_secs(secs.min(86_400)))
}

// The collector's replies, decoded by hand with `codec::Reader` in what `codec::decode` reads
// (fields in declaration order), so the agent links no serde decoder (packaging/README.md, Size);
// tests compare both on random values and random bytes.

impl HelloAck {
    pub fn decode(payload: &[u8]) -> Result<HelloAck, codec::CodecError> {
        let mut r = codec::Reader::new(payload);
        let m = HelloAck {
            router_id: r.i64()?,
            router_name: r.string()?,
            server_time: r.u64()?,
            cert_not_after: r.u64()?,
            renew_now: r.bool()?,
        };
        r.finish()?;
        Ok(m)
    }
}

impl Ack {
    pub fn decode(payload: &[u8]) -> Result<Ack, codec::CodecError> {
        let mut r = codec::Reader::new(payload);
        let m = Ack {
            boot_id: r.array()?,
            seq: r.u64()?,
        };
        r.finish()?;
        Ok(m)
    }
}

impl EnrollResponse {
    pub fn decode(payload: &[u8]) -> Result<EnrollResponse, codec::CodecError> {
        let mut r = codec::Reader::new(payload);
        let m = EnrollResponse {
            router_id: r.i64()?,
            router_name: r.string()?,
            cert_pem: r.string()?,
            ca_pem: r.string()?,
        };
        r.finish()?;
        Ok(m)
    }
}

impl RenewResponse {
    pub fn decode(payload: &[u8]) -> Result<RenewResponse, codec::CodecError> {
        let mut r = codec::Reader::new(payload);
        let m = RenewResponse {
            cert_pem: r.string()?,
        };
        r.finish()?;
        Ok(m)
    }
}

impl ErrorMsg {
    pub fn decode(payload: &[u8]) -> Result<ErrorMsg, codec::CodecError> {
        let mut r = codec::Reader::new(payload);
        let code = match r.u32()? {
            0 => ErrorCode::InvalidToken,
            1 => ErrorCode::ExpiredToken,
            2 => ErrorCode::UsedToken,
            3 => ErrorCode::BadCsr,
            4 => ErrorCode::Revoked,
            5 => ErrorCode::Protocol,
            6 => ErrorCode::Internal,
            7 => ErrorCode::Unavailable,
            n => return Err(codec::CodecError::Decode(format!("unknown error code {n}"))),
        };
        let m = ErrorMsg {
            code,
            message: r.string()?,
        };
        r.finish()?;
        Ok(m)
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello(Hello),
    HelloAck(HelloAck),
    Report(Box<Report>),
    Ack(Ack),
    EnrollRequest(EnrollRequest),
    EnrollResponse(EnrollResponse),
    RenewRequest(RenewRequest),
    RenewResponse(RenewResponse),
    Error(ErrorMsg),
    /// The raw patch bytes of a `ReportPatch` frame; only the connection that received the
    /// previous report payload can resolve it (see [`crate::patch::apply`]).
    ReportPatch(Vec<u8>),
    Action(Action),
    ActionResult(ActionResult),
}

impl Message {
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Hello(_) => MessageKind::Hello,
            Message::HelloAck(_) => MessageKind::HelloAck,
            Message::Report(_) => MessageKind::Report,
            Message::Ack(_) => MessageKind::Ack,
            Message::EnrollRequest(_) => MessageKind::EnrollRequest,
            Message::EnrollResponse(_) => MessageKind::EnrollResponse,
            Message::RenewRequest(_) => MessageKind::RenewRequest,
            Message::RenewResponse(_) => MessageKind::RenewResponse,
            Message::Error(_) => MessageKind::Error,
            Message::ReportPatch(_) => MessageKind::ReportPatch,
            Message::Action(_) => MessageKind::Action,
            Message::ActionResult(_) => MessageKind::ActionResult,
        }
    }

    /// Encodes the payload alone.
    pub fn encode_payload(&self) -> Result<Vec<u8>, codec::CodecError> {
        match self {
            Message::Hello(m) => codec::encode(m),
            Message::HelloAck(m) => codec::encode(m),
            Message::Report(m) => codec::encode(m.as_ref()),
            Message::Ack(m) => codec::encode(m),
            Message::EnrollRequest(m) => codec::encode(m),
            Message::EnrollResponse(m) => codec::encode(m),
            Message::RenewRequest(m) => codec::encode(m),
            Message::RenewResponse(m) => codec::encode(m),
            Message::Error(m) => codec::encode(m),
            Message::ReportPatch(p) => Ok(p.clone()),
            Message::Action(a) => a.encode(),
            Message::ActionResult(m) => codec::encode(m),
        }
    }

    /// Encodes a whole frame: header plus payload. Fails if the payload exceeds the frame limit.
    pub fn to_frame(&self) -> Result<Vec<u8>, FrameError> {
        let payload = self.encode_payload().map_err(|e| FrameError::BadPayload {
            kind: self.kind(),
            reason: e.to_string(),
        })?;
        frame_bytes(self.kind(), &payload)
    }

    /// Encodes a frame an agent sends: `Hello`, `Report`, `ReportPatch`, `EnrollRequest`,
    /// `RenewRequest` or `ActionResult`; any other message is [`FrameError::Unexpected`]. The
    /// agent frames with this instead of [`Message::to_frame`], so its binary holds no encoder
    /// for what only the collector sends (the mirror of [`Message::decode_reply`]; the
    /// `Action` encoder alone is ~3 KB on MIPS), and with the hand-written encoders of
    /// [`crate::encode`] instead of serde's (~30 KB less on MIPS). The bytes are those of
    /// `to_frame` (tests: `encode::tests`).
    pub fn to_request_frame(&self) -> Result<Vec<u8>, FrameError> {
        let payload = match self {
            Message::Hello(m) => encode::to_payload(m),
            Message::Report(m) => encode::to_payload(m),
            Message::EnrollRequest(m) => encode::to_payload(m),
            Message::RenewRequest(m) => encode::to_payload(m),
            Message::ReportPatch(p) => return frame_bytes(self.kind(), p),
            Message::ActionResult(m) => encode::to_payload(m),
            _ => {
                return Err(FrameError::Unexpected {
                    got: self.kind(),
                    expected: "a message an agent sends",
                })
            }
        };
        frame_bytes(self.kind(), &payload)
    }

    /// Decodes a payload of the given kind.
    pub fn decode_payload(kind: MessageKind, payload: &[u8]) -> Result<Message, FrameError> {
        let bad = |e: codec::CodecError| FrameError::BadPayload {
            kind,
            reason: e.to_string(),
        };
        Ok(match kind {
            MessageKind::Hello => Message::Hello(codec::decode(payload).map_err(bad)?),
            MessageKind::Report => Message::Report(Box::new(codec::decode(payload).map_err(bad)?)),
            MessageKind::ReportV1 => {
                let v1: crate::model_v1::Report = codec::decode(payload).map_err(bad)?;
                Message::Report(Box::new(v1.into()))
            }
            MessageKind::ReportV2 => {
                let v2: crate::model_v2::Report = codec::decode(payload).map_err(bad)?;
                Message::Report(Box::new(v2.into()))
            }
            MessageKind::EnrollRequest => {
                Message::EnrollRequest(codec::decode(payload).map_err(bad)?)
            }
            MessageKind::RenewRequest => {
                Message::RenewRequest(codec::decode(payload).map_err(bad)?)
            }
            MessageKind::ReportPatch => Message::ReportPatch(payload.to_vec()),
            MessageKind::ActionResult => {
                Message::ActionResult(codec::decode(payload).map_err(bad)?)
            }
            MessageKind::Action
            | MessageKind::HelloAck
            | MessageKind::Ack
            | MessageKind::EnrollResponse
            | MessageKind::RenewResponse
            | MessageKind::Error => return Self::decode_reply(kind, payload),
        })
    }

    /// Decodes a payload the collector sends to an agent: `HelloAck`, `Ack`, `EnrollResponse`,
    /// `RenewResponse`, `Error` or `Action`; any other kind is [`FrameError::Unexpected`], not decoded.
    ///
    /// The agent reads with this instead of [`Message::decode_payload`], so its binary holds no
    /// decoder for the messages it only sends (the `Report` decoder alone is ~50 KB on MIPS);
    /// the replies are decoded by hand (`HelloAck::decode`...), so it holds no serde decoder.
    pub fn decode_reply(kind: MessageKind, payload: &[u8]) -> Result<Message, FrameError> {
        let bad = |e: codec::CodecError| FrameError::BadPayload {
            kind,
            reason: e.to_string(),
        };
        Ok(match kind {
            MessageKind::HelloAck => Message::HelloAck(HelloAck::decode(payload).map_err(bad)?),
            MessageKind::Ack => Message::Ack(Ack::decode(payload).map_err(bad)?),
            MessageKind::EnrollResponse => {
                Message::EnrollResponse(EnrollResponse::decode(payload).map_err(bad)?)
            }
            MessageKind::RenewResponse => {
                Message::RenewResponse(RenewResponse::decode(payload).map_err(bad)?)
            }
            MessageKind::Error => Message::Error(ErrorMsg::decode(payload).map_err(bad)?),
            MessageKind::Action => Message::Action(Action::decode(payload).map_err(bad)?),
            MessageKind::Hello
            | MessageKind::Report
            | MessageKind::ReportV1
            | MessageKind::ReportV2
            | MessageKind::EnrollRequest
            | MessageKind::RenewRequest
            | MessageKind::ReportPatch
            | MessageKind::ActionResult => {
                return Err(FrameError::Unexpected {
                    got: kind,
                    expected: "a collector reply",
                })
            }
        })
    }

    /// Decodes one whole frame from the start of `bytes`; returns the message and the bytes used.
    pub fn from_frame(bytes: &[u8], max_len: u32) -> Result<(Message, usize), FrameError> {
        let header = FrameHeader::parse(bytes, max_len)?;
        let end = HEADER_LEN + header.len as usize;
        if bytes.len() < end {
            return Err(FrameError::Truncated {
                need: end,
                have: bytes.len(),
            });
        }
        Ok((
            Self::decode_payload(header.kind, &bytes[HEADER_LEN..end])?,
            end,
        ))
    }
}

/// Builds a frame from a kind and an already encoded payload.
pub fn frame_bytes(kind: MessageKind, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&FrameHeader::new(kind, len).to_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_hints_round_trip_and_are_optional() {
        let e = ErrorMsg::unavailable_retry("collector is shutting down", 2);
        assert_eq!(e.message, "collector is shutting down; retry in 2 s");
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(2)));
        for no in [
            "try again later",
            "retry in x s",
            "retry in 5",
            "retry in -1 s",
        ] {
            assert_eq!(retry_hint(no), None, "{no}");
        }
        assert_eq!(
            retry_hint("retry in 99999999 s"),
            Some(std::time::Duration::from_secs(86_400))
        );
    }

    use super::*;
    use crate::action::*;
    use crate::model::*;
    use proptest::prelude::*;

    fn sample_report() -> Report {
        Report {
            seq: 42,
            boot_id: [7; 16],
            timestamp_ms: 1_700_000_000_000,
            router: RouterFacts {
                hostname: "ap-1".into(),
                agent_version: "0.1.0".into(),
                arch: "mips".into(),
                ..Default::default()
            },
            stations: vec![Station {
                mac: "00:11:22:33:44:55".parse().unwrap(),
                interface: "wlan0".into(),
                stats: StationLinkStats {
                    rx_bytes: Some(4_574_667_204),
                    signal: Some(Signal {
                        dbm: -60,
                        chains: vec![-61, -62],
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }],
            wireguard: vec![WgInterface {
                name: "wg0".into(),
                peers: vec![WgPeer {
                    public_key: "abc=".into(),
                    endpoint: Some("[2001:db8::1]:51820".parse().unwrap()),
                    allowed_ips: vec!["10.0.0.0/24".parse().unwrap()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn every_message_round_trips() {
        let msgs = vec![
            Message::Hello(Hello {
                agent_version: "0.1".into(),
                hostname: "h".into(),
                boot_id: [1; 16],
                spooled: 3,
            }),
            Message::HelloAck(HelloAck {
                router_id: 5,
                router_name: "r".into(),
                server_time: 9,
                cert_not_after: 10,
                renew_now: false,
            }),
            Message::Report(Box::new(sample_report())),
            Message::Ack(Ack {
                boot_id: [2; 16],
                seq: 99,
            }),
            Message::EnrollRequest(EnrollRequest {
                token: "t".into(),
                csr_pem: "c".into(),
                name: None,
                hostname: "h".into(),
            }),
            Message::EnrollResponse(EnrollResponse {
                router_id: 1,
                router_name: "r".into(),
                cert_pem: "c".into(),
                ca_pem: "a".into(),
            }),
            Message::RenewRequest(RenewRequest {
                csr_pem: "c".into(),
            }),
            Message::RenewResponse(RenewResponse {
                cert_pem: "c".into(),
            }),
            Message::Error(ErrorMsg {
                code: ErrorCode::UsedToken,
                message: "used".into(),
            }),
            Message::ReportPatch(vec![3, 1, 2, 3]),
            Message::Action(Action {
                id: 7,
                deadline: 99,
                kind: ActionKind::WgReload {
                    interface: "wg0".into(),
                },
            }),
            Message::ActionResult(ActionResult::new(
                7,
                ActionState::Done,
                "ok",
                Some(ActionDetail::WgPeer {
                    interface: "wg0".into(),
                    address: "10.0.3.2/32".into(),
                    router_public_key: None,
                    listen_port: Some(51820),
                    interface_addresses: vec!["10.0.3.1/24".into()],
                }),
            )),
        ];
        for m in msgs {
            let frame = m.to_frame().unwrap();
            let (back, used) = Message::from_frame(&frame, MAX_FRAME_LEN).unwrap();
            assert_eq!(used, frame.len());
            assert_eq!(back, m);
        }
    }

    #[test]
    fn replies_decode_and_agent_messages_are_refused_as_replies() {
        let replies = vec![
            Message::HelloAck(HelloAck {
                router_id: 5,
                router_name: "r".into(),
                server_time: 9,
                cert_not_after: 10,
                renew_now: true,
            }),
            Message::Ack(Ack {
                boot_id: [2; 16],
                seq: 99,
            }),
            Message::EnrollResponse(EnrollResponse {
                router_id: 1,
                router_name: "r".into(),
                cert_pem: "c".into(),
                ca_pem: "a".into(),
            }),
            Message::RenewResponse(RenewResponse {
                cert_pem: "c".into(),
            }),
            Message::Error(ErrorMsg {
                code: ErrorCode::Revoked,
                message: "no".into(),
            }),
            Message::Action(Action {
                id: 1,
                deadline: 2,
                kind: ActionKind::WgDeletePeer {
                    interface: "wg0".into(),
                    name: "a".into(),
                },
            }),
        ];
        for m in replies {
            let payload = m.encode_payload().unwrap();
            assert_eq!(Message::decode_reply(m.kind(), &payload).unwrap(), m);
            assert_eq!(Message::decode_payload(m.kind(), &payload).unwrap(), m);
            // An agent does not frame what only the collector sends.
            assert!(
                matches!(m.to_request_frame(), Err(FrameError::Unexpected { got, .. }) if got == m.kind())
            );
        }
        let sent = vec![
            Message::Hello(Hello {
                agent_version: "0.1".into(),
                hostname: "h".into(),
                boot_id: [1; 16],
                spooled: 3,
            }),
            Message::Report(Box::new(sample_report())),
            Message::EnrollRequest(EnrollRequest {
                token: "t".into(),
                csr_pem: "c".into(),
                name: None,
                hostname: "h".into(),
            }),
            Message::RenewRequest(RenewRequest {
                csr_pem: "c".into(),
            }),
            Message::ActionResult(ActionResult::new(1, ActionState::Refused, "no", None)),
        ];
        let patch = Message::ReportPatch(vec![1, 2, 3]);
        assert_eq!(patch.to_request_frame().unwrap(), patch.to_frame().unwrap());
        for m in sent {
            assert_eq!(m.to_request_frame().unwrap(), m.to_frame().unwrap());
            let payload = m.encode_payload().unwrap();
            assert!(matches!(
                Message::decode_reply(m.kind(), &payload),
                Err(FrameError::Unexpected { got, .. }) if got == m.kind()
            ));
            assert_eq!(Message::decode_payload(m.kind(), &payload).unwrap(), m);
        }
        // A reply kind with a payload of another kind is a typed error, not a panic.
        let ack = Message::Ack(Ack {
            boot_id: [0; 16],
            seq: 1,
        })
        .encode_payload()
        .unwrap();
        assert!(matches!(
            Message::decode_reply(MessageKind::EnrollResponse, &ack),
            Err(FrameError::BadPayload {
                kind: MessageKind::EnrollResponse,
                ..
            })
        ));
    }

    #[test]
    fn payload_of_wrong_kind_is_a_typed_error() {
        let frame = Message::Ack(Ack {
            boot_id: [0; 16],
            seq: 1,
        })
        .to_frame()
        .unwrap();
        let mut bad = frame.clone();
        bad[3] = MessageKind::EnrollResponse as u8;
        assert!(matches!(
            Message::from_frame(&bad, MAX_FRAME_LEN),
            Err(FrameError::BadPayload { .. })
        ));
        assert!(matches!(
            Message::from_frame(&frame[..frame.len() - 1], MAX_FRAME_LEN),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_payload_is_refused_on_encode() {
        let big = vec![0u8; MAX_FRAME_LEN as usize + 1];
        assert!(matches!(
            frame_bytes(MessageKind::Report, &big),
            Err(FrameError::TooLarge { .. })
        ));
    }

    /// The hand decoders of the replies read what serde's decoders read: random values of
    /// every reply, encoded by `codec::encode`, come back equal.
    #[test]
    fn replies_decoded_by_hand_equal_serdes() {
        use crate::random_value::random;
        fn check<T>(seed: u64, hand: fn(&[u8]) -> Result<T, codec::CodecError>)
        where
            T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
        {
            let v: T = random(seed);
            let bytes = codec::encode(&v).unwrap();
            assert_eq!(hand(&bytes).unwrap(), v);
            // One byte short or one byte more: an error both ways.
            assert!(hand(&bytes[..bytes.len() - 1]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(hand(&longer).is_err() && codec::decode::<T>(&longer).is_err());
        }
        for seed in 0..3_000 {
            check(seed, HelloAck::decode);
            check(seed, Ack::decode);
            check(seed, EnrollResponse::decode);
            check(seed, RenewResponse::decode);
            check(seed, ErrorMsg::decode);
        }
    }

    /// On any bytes, a hand decoder accepts exactly what serde's decoder accepts, with the same
    /// value.
    fn same_as_serde<T>(
        bytes: &[u8],
        hand: fn(&[u8]) -> Result<T, codec::CodecError>,
    ) -> Result<(), TestCaseError>
    where
        T: for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        match (hand(bytes), codec::decode::<T>(bytes)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "hand {:?}, serde {:?} on {:?}", a, b, bytes),
        }
        Ok(())
    }

    /// Integers written in a longer form than needed (a varint tag for a wider type), bad tags,
    /// booleans other than 0 and 1: the hand decoders accept and refuse as serde's do.
    #[test]
    fn hand_decoders_treat_odd_integer_forms_as_serde_does() {
        let forms: [&[u8]; 12] = [
            &[251, 3, 0],
            &[252, 3, 0, 0, 0],
            &[253, 3, 0, 0, 0, 0, 0, 0, 0],
            &[253, 0, 0, 0, 0, 1, 0, 0, 0],
            &[254, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[255],
            &[9],
            &[2],
            &[7],
            &[251, 7, 0],
            &[0],
            &[],
        ];
        for a in forms {
            for b in forms {
                let mut bytes = a.to_vec();
                bytes.extend_from_slice(b);
                bytes.push(0);
                for tail in [&[][..], &[1][..], &[0, 0, 0][..], &[2, b'a', b'b', 1][..]] {
                    let mut bytes = bytes.clone();
                    bytes.extend_from_slice(tail);
                    same_as_serde(&bytes, HelloAck::decode).unwrap();
                    same_as_serde(&bytes, Ack::decode).unwrap();
                    same_as_serde(&bytes, EnrollResponse::decode).unwrap();
                    same_as_serde(&bytes, RenewResponse::decode).unwrap();
                    same_as_serde(&bytes, ErrorMsg::decode).unwrap();
                }
            }
        }
    }

    proptest! {
        #[test]
        fn hand_decoders_accept_what_serde_accepts(bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(251), Just(252), Just(253), Just(254), Just(255), any::<u8>()], 0..40)) {
            same_as_serde(&bytes, HelloAck::decode)?;
            same_as_serde(&bytes, Ack::decode)?;
            same_as_serde(&bytes, EnrollResponse::decode)?;
            same_as_serde(&bytes, RenewResponse::decode)?;
            same_as_serde(&bytes, ErrorMsg::decode)?;
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::from_frame(&bytes, MAX_FRAME_LEN);
        }

        #[test]
        fn random_payload_behind_valid_header_never_panics(kind in 1u8..=13, payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let kind = MessageKind::from_u8(kind).unwrap();
            let frame = frame_bytes(kind, &payload).unwrap();
            let _ = Message::from_frame(&frame, MAX_FRAME_LEN);
            let _ = Message::decode_reply(kind, &payload);
        }

        #[test]
        fn truncated_valid_frames_are_errors(cut in 0usize..200) {
            let frame = Message::Report(Box::new(sample_report())).to_frame().unwrap();
            let cut = cut.min(frame.len() - 1);
            prop_assert!(Message::from_frame(&frame[..cut], MAX_FRAME_LEN).is_err());
        }
    }
}
