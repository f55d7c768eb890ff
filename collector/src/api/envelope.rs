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
    // axum's own rejections answer in plain text: 400 for a body that is not JSON, 415 for a
    // missing JSON content type, 422 for JSON of the wrong shape (the group's document knows no
    // 422: its 400). Their text becomes the envelope's error.
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if text.is_none() && !empty && plain {
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        let (mut parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&bytes).into_owned();
        let (new_parts, body) = isp_error(status, &message).into_parts();
        parts.status = status;
        for (name, value) in &new_parts.headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.extensions.insert(IspShaped);
        return Response::from_parts(parts, Body::new(body));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    /// A router with one ISP route and one of another group, behind [`shape_errors`].
    fn app() -> Router {
        Router::new()
            .route(
                "/api/mikrotik/devices",
                get(|| async { "ok" }).post(|| async {
                    crate::api::ApiError::bad_request("bad body").into_response()
                }),
            )
            .route(
                "/api/vpn/limited",
                get(|| async { crate::api::rate_limit::too_many_requests(7) }),
            )
            .route(
                "/api/vpn/unreadable",
                // axum's own 422 (a JSON body rejection), with its text body.
                get(|| async {
                    (StatusCode::UNPROCESSABLE_ENTITY, "unknown field `x`").into_response()
                })
                .post(|| async {
                    (StatusCode::BAD_REQUEST, "trailing characters").into_response()
                }),
            )
            .route(
                "/api/gateways",
                get(|| async { crate::api::rate_limit::too_many_requests(7) }),
            )
            .fallback(|| async {
                crate::api::ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
            })
            .layer(axum::middleware::from_fn(shape_errors))
    }

    async fn call(
        method: &str,
        path: &str,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, parts.headers, json)
    }

    fn assert_isp_error(v: &serde_json::Value, message: &str) {
        assert_eq!(v["success"], false, "{v}");
        assert!(v["error"].as_str().unwrap().contains(message), "{v}");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
        assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    }

    #[tokio::test]
    async fn isp_paths_answer_errors_in_the_isp_shape() {
        // axum's empty 405, with its Allow header kept.
        let (s, h, v) = call("DELETE", "/api/mikrotik/devices").await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_isp_error(&v, "method not allowed");
        assert!(h.get(header::ALLOW).is_some(), "{h:?}");
        assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json");
        // A shared helper's `{"error"}` and the fallback's 404.
        let (s, _, v) = call("POST", "/api/mikrotik/devices").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_isp_error(&v, "bad body");
        let (s, _, v) = call("GET", "/api/bandwidth/nothing/here").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_isp_error(&v, "no such endpoint");
        // A limiter's 429: the document's body, the wait as a string and in the header.
        let (s, h, v) = call("GET", "/api/vpn/limited").await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            v,
            serde_json::json!({"success": false, "error": "Rate limit exceeded", "retry_after": "7"})
        );
        assert_eq!(h.get(header::RETRY_AFTER).unwrap(), "7");
        // axum's 422 for an unreadable body is the document's 400, its text kept.
        let (s, _, v) = call("GET", "/api/vpn/unreadable").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_isp_error(&v, "unknown field `x`");
        let (s, _, v) = call("POST", "/api/vpn/unreadable").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_isp_error(&v, "trailing characters");
        // Successes pass unchanged.
        let (s, _, _) = call("GET", "/api/mikrotik/devices").await;
        assert_eq!(s, StatusCode::OK);
    }

    #[tokio::test]
    async fn other_groups_keep_their_shapes() {
        let (s, _, v) = call("GET", "/api/gateways").await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(v["retry_after"], 7, "a number there: {v}");
        assert!(v.get("success").is_none(), "{v}");
        let (s, _, v) = call("GET", "/no/such/route").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v, serde_json::json!({"error": "no such endpoint"}));
    }

    #[test]
    fn paths_of_the_isp_group() {
        for p in [
            "/api/mikrotik",
            "/api/mikrotik/devices",
            "/api/vpn/status",
            "/api/bandwidth/health",
            "/api/devices",
            "/api/devices/ap-1/currentstatus",
            "/api/users/x/stats",
            "/api/interfaces",
        ] {
            assert_eq!(ErrorShape::for_path(p), ErrorShape::Isp, "{p}");
        }
        for p in [
            "/api/mikrotikx",
            "/api/gateways",
            "/api/devicesx",
            "/api/devices/a/b/c",
            "/api/users",
            "/api/interfaces/x",
            "/metrics",
        ] {
            assert_eq!(ErrorShape::for_path(p), ErrorShape::Plain, "{p}");
        }
    }
}
