//! The JSON envelopes of the API's answers, side by side. Each tool the API replaces wraps its
//! answers its own way, so there are two success shapes:
//!
//! - [`Envelope`] `{"success": true, "data": ...}`: the gateway manager's routes ([`super::gateway`]).
//! - [`StampedEnvelope`] `{"success": true, "data": ..., "timestamp": "...Z"}`: the ISP
//!   middleware's routes ([`super::isp`]), with its error shape [`ErrorEnvelope`]
//!   (`{"success": false, "error", "timestamp"}`, answered by `isp::IspError`).
//!
//! Both are built here ([`envelope`], [`stamped`]); the response cache stores a stamped answer
//! with the time its body was made (`isp::cached_envelope`). Where the middleware's document
//! shows an answer's fields at the top level (`/api/mikrotik/devices`, `/api/vpn/status`, ...),
//! [`FlatEnvelope`] puts them there: `{"success": true, <fields>..., "timestamp"}`.
//!
//! The error shape of a request is decided here too, by its path ([`ErrorShape::for_path`]):
//! the ISP middleware's routes (`/api/mikrotik/...`, `/api/vpn/...`, `/api/bandwidth/...` and
//! the deprecated aliases of `isp::ALIASES`) answer every error in [`ErrorEnvelope`] and a 429 as
//! `{"success": false, "error": "Rate limit exceeded", "retry_after": "<seconds>"}` (the
//! document's [`RateLimitEnvelope`]), whichever handler, extractor, fallback or limiter made the
//! error: [`shape_errors`] rewrites the group's error answers that are not in its shape yet (an
//! `ApiError` of a shared helper, axum's empty 405, the 404 fallback, the limiters' 429). The
//! other groups keep their own shapes (`{"error"}`, `{"error", "retry_after"}` as a number).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
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

/// The success answer of a route whose document shows its fields at the top level:
/// `{"success": true, <the fields of data>..., "timestamp": "...Z"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = isp::FlatEnvelope<T>)]
pub struct FlatEnvelope<T> {
    /// Always true.
    pub success: bool,
    #[serde(flatten)]
    pub data: T,
    /// When the answer was made, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
}

/// Wraps `data` in the [`FlatEnvelope`], stamped now.
pub fn flat<T>(data: T) -> FlatEnvelope<T> {
    FlatEnvelope {
        success: true,
        data,
        timestamp: iso_now(),
    }
}

/// The ISP middleware's 429 body: `{"success": false, "error": "Rate limit exceeded",
/// "retry_after": "60"}` (the seconds to wait, as a string, as the document writes it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = isp::RateLimitEnvelope)]
pub struct RateLimitEnvelope {
    /// Always false.
    pub success: bool,
    /// Always `Rate limit exceeded`.
    pub error: String,
    /// Seconds until a request is allowed again (also in the `Retry-After` header), as a string.
    #[schema(pattern = "^[0-9]+$")]
    pub retry_after: String,
}

/// The text of an error answered by a shared helper (`ApiError`), kept in the response's
/// extensions so that [`shape_errors`] can answer it in the group's shape.
#[derive(Debug, Clone)]
pub struct ErrorText(pub String);

/// Marks a response already in the ISP error shape.
#[derive(Debug, Clone, Copy)]
pub struct IspShaped;

/// Which error shape a request's answers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error"}` (429: `{"error", "retry_after": <number>}`): every group but the ISP one.
    Plain,
    /// [`ErrorEnvelope`] (429: [`RateLimitEnvelope`]): the ISP middleware's routes.
    Isp,
}

impl ErrorShape {
    /// The shape of the answers to `path`.
    pub fn for_path(path: &str) -> ErrorShape {
        if super::isp::is_group_path(path) {
            ErrorShape::Isp
        } else {
            ErrorShape::Plain
        }
    }
}

/// The ISP error answer: `status` with `{"success": false, "error", "timestamp"}`.
pub fn isp_error(status: StatusCode, message: &str) -> Response {
    let body = ErrorEnvelope {
        success: false,
        error: message.to_string(),
        timestamp: iso_now(),
    };
    let mut resp = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp.extensions_mut().insert(IspShaped);
    resp
}

/// The ISP 429 answer, with `Retry-After`.
pub fn isp_rate_limited(retry_after: u64) -> Response {
    let body = RateLimitEnvelope {
        success: false,
        error: "Rate limit exceeded".to_string(),
        retry_after: retry_after.to_string(),
    };
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp.extensions_mut().insert(IspShaped);
    resp
}

/// The middleware (hooked in `api::router_with_limits`) that answers the ISP group's errors in
/// its shape: a 429 becomes [`RateLimitEnvelope`] (the wait from its `Retry-After`), an error
/// with an [`ErrorText`] or without a body (axum's 405, for one) becomes [`ErrorEnvelope`] with
/// the same status and headers. Answers already shaped ([`IspShaped`]), successes and the other
/// groups' answers pass unchanged.
pub async fn shape_errors(req: Request, next: Next) -> Response {
    let shape = ErrorShape::for_path(req.uri().path());
    let resp = next.run(req).await;
    let status = resp.status();
    if shape != ErrorShape::Isp
        || !(status.is_client_error() || status.is_server_error())
        || resp.extensions().get::<IspShaped>().is_some()
    {
        return resp;
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(60);
        return isp_rate_limited(retry);
    }
    let text = resp.extensions().get::<ErrorText>().map(|t| t.0.clone());
    let empty = axum::body::HttpBody::size_hint(resp.body()).exact() == Some(0);
    let message = match text {
        Some(t) => t,
        None if empty => default_message(status, resp.headers().get(header::ALLOW)),
        None => return resp,
    };
    let (mut parts, _) = resp.into_parts();
    let new = isp_error(status, &message);
    // The new body's headers (content type and length) over the old ones (Allow, Retry-After,
    // WWW-Authenticate, ... stay).
    let (new_parts, body) = new.into_parts();
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.insert(IspShaped);
    Response::from_parts(parts, Body::new(body))
}

/// The message of an error answered without a body.
fn default_message(status: StatusCode, allow: Option<&HeaderValue>) -> String {
    match (status, allow.and_then(|a| a.to_str().ok())) {
        (StatusCode::METHOD_NOT_ALLOWED, Some(allow)) => {
            format!("method not allowed; this route accepts: {allow}")
        }
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    }
}
