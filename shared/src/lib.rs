//! The routerstats wire protocol, shared by the agent and the collector.
//!
//! - [`model`]: the `Report` an agent produces each cycle, with compact field types
//!   (MAC addresses as 6 bytes, IP addresses binary, counters encoded as varints).
//! - [`model_v1`], [`model_v2`]: the frozen report models of older agents, decoded and converted.
//! - [`frame`]: the frame header (magic, protocol version, message kind, length), the size limit
//!   and the typed decode errors.
//! - [`message`]: every message that crosses the wire (hello, report, ack, enrollment, renewal).
//! - [`action`]: fleet actions (collector -> agent) and their results, with the parameter checks.
//! - [`patch`]: binary patches of a payload against the previous one (`ReportPatch` frames).
//! - [`token`]: the enrollment token format (`rs1.<id>.<secret>.<ca-hash>`).
//! - [`codec`]: the one place that knows the payload encoding (bincode 2.0.1 in serde mode).
//! - [`encode`]: the payloads an agent sends, encoded by hand in the same bytes (smaller code).
//! - [`io`] (feature `io`): async helpers that read and write whole frames on tokio streams.
//! - [`filemode`]: tightening the mode of private files and directories (both sides).

pub mod action;
pub mod codec;
pub mod encode;
pub mod filemode;
pub mod frame;
#[cfg(feature = "io")]
pub mod io;
pub mod message;
pub mod model;
pub mod model_v1;
pub mod model_v2;
pub mod patch;
#[cfg(test)]
mod random_value;
pub mod token;

pub use frame::{
    FrameError, FrameHeader, MessageKind, MAX_FRAME_LEN, MAX_PREAUTH_FRAME_LEN, PROTOCOL_VERSION,
};
pub use message::Message;
pub use model::*;
