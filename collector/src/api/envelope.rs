//! The JSON envelopes of the API's answers, side by side. Each tool the API replaces wraps its
//! answers its own way, so there are two success shapes:
//!
//! - [`Envelope`] `{"success": true, "data": ...}`: the gateway manager's routes ([`super::gateway`]).
//! - [`StampedEnvelope`] `{"success": true, "data": ..., "timestamp": "...Z"}`: the ISP
//!   middleware's routes ([`super::isp`]), with its error shape [`ErrorEnvelope`]
//!   (`{"success": false, "error", "timestamp"}`, answered by `isp::IspError`).
//!
//! Both are built here ([`envelope`], [`stamped`]); the response cache stores a stamped answer
//! with the time its body was made (`isp::cached_envelope`).

use serde::Serialize;

use super::times::iso_now;

/// `{"success": true, "data": ...}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: T,
}

/// Wraps `data` in the [`Envelope`].
pub fn envelope<T>(data: T) -> Envelope<T> {
    Envelope {
        success: true,
        data,
    }
}

/// The success envelope: `{"success": true, "data": ..., "timestamp": "...Z"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = isp::Envelope<T>)]
pub struct StampedEnvelope<T> {
    /// Always true.
    pub success: bool,
    pub data: T,
    /// When the answer was made, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
}

/// Wraps `data` in the [`StampedEnvelope`], stamped now.
pub fn stamped<T>(data: T) -> StampedEnvelope<T> {
    StampedEnvelope {
        success: true,
        data,
        timestamp: iso_now(),
    }
}

/// The error envelope: `{"success": false, "error": "...", "timestamp": "...Z"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = isp::ErrorEnvelope)]
pub struct ErrorEnvelope {
    /// Always false.
    pub success: bool,
    /// What went wrong.
    pub error: String,
    pub timestamp: String,
}
