//! CORS for browser clients on other origins (the WireGuard manager's frontend runs on its own
//! origin): an operator-configured allow-list of origins (`cors_allowed_origins` in the config
//! file, `--cors-origin` on the command line), none by default.
//!
//! - No origins configured: no CORS layer at all, so no `Access-Control-*` header is ever sent
//!   and a preflight `OPTIONS` is answered like any unknown method (405).
//! - Origins configured: tower-http's `CorsLayer` answers preflights (`OPTIONS` with
//!   `Access-Control-Request-Method`) itself with 200, and adds `Access-Control-Allow-Origin`
//!   to answers for an allowed `Origin` only; other origins get no CORS header (the browser
//!   then blocks the read). `*` allows every origin. Credentials (cookies) are not allowed:
//!   the API authenticates with headers (`X-API-Key`, `Authorization`), which are allowed.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The allowed origins, checked at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins {
    /// Every origin (`*`).
    pub any: bool,
    /// Exact origins (`scheme://host[:port]`, lower-cased).
    pub origins: Vec<HeaderValue>,
}

/// Why an origin cannot be allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CORS origin {origin:?}: {reason}")]
pub struct CorsOriginError {
    pub origin: String,
    pub reason: &'static str,
}

impl CorsOrigins {
    /// Parses origins like `https://vpn.example.net` or `http://localhost:5173`, or `*`.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<CorsOrigins, CorsOriginError> {
        let mut out = CorsOrigins::default();
        for o in list {
            let o = o.as_ref().trim();
            let err = |reason| CorsOriginError {
                origin: o.chars().take(80).collect(),
                reason,
            };
            if o == "*" {
                out.any = true;
                continue;
            }
            let (scheme, rest) = o
                .split_once("://")
                .ok_or_else(|| err("must be scheme://host[:port]"))?;
            if scheme != "http" && scheme != "https" {
                return Err(err("scheme must be http or https"));
            }
            if rest.is_empty()
                || rest.contains('/')
                || rest.contains('?')
                || rest.contains('#')
                || rest.contains('@')
            {
                return Err(err(
                    "must be scheme://host[:port] with no path, query or user",
                ));
            }
            if !rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            {
                return Err(err("host holds characters an origin cannot have"));
            }
            let v = HeaderValue::from_str(&o.to_ascii_lowercase())
                .map_err(|_| err("not a valid header value"))?;
            if !out.origins.contains(&v) {
                out.origins.push(v);
            }
        }
        Ok(out)
    }

    /// True when no origin is allowed (no CORS layer).
    pub fn is_empty(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    /// The layer, or None when no origin is allowed.
    pub fn layer(&self) -> Option<CorsLayer> {
        if self.is_empty() {
            return None;
        }
        let origin = if self.any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(self.origins.clone())
        };
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::ACCEPT,
                    HeaderName::from_static("x-api-key"),
                    HeaderName::from_static("idempotency-key"),
                ])
                .expose_headers([
                    header::RETRY_AFTER,
                    header::CONTENT_DISPOSITION,
                    header::WWW_AUTHENTICATE,
                    header::LINK,
                    super::paging::NEXT_CURSOR,
                ])
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_bad_ones_are_named() {
        let o = CorsOrigins::parse(&[
            "https://VPN.example.net",
            "http://localhost:5173",
            "http://[::1]:8080",
        ])
        .unwrap();
        assert_eq!(o.origins.len(), 3);
        assert_eq!(o.origins[0], "https://vpn.example.net");
        assert!(!o.any && !o.is_empty());
        assert!(CorsOrigins::parse(&["*"]).unwrap().any);
        assert!(CorsOrigins::parse::<&str>(&[]).unwrap().is_empty());
        assert!(CorsOrigins::parse::<&str>(&[]).unwrap().layer().is_none());
        for bad in [
            "vpn.example.net",
            "ftp://x",
            "https://x/path",
            "https://",
            "https://u@x",
            "https://x y",
            "https://x?q",
        ] {
            let e = CorsOrigins::parse(&[bad]).unwrap_err();
            assert!(e.to_string().contains("CORS origin"), "{bad}: {e}");
        }
    }
}
