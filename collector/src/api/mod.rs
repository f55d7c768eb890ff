//! The HTTP API (axum), with API-key authentication. One submodule per route group, each with
//! `routes()` and an OpenAPI fragment (`Doc`) merged into `/api/openapi.json`:
//!
//! - [`openwrt`] — `/api/openwrt` (the OpenWrt CGI-script stats tool this project replaces)
//! - [`monitor`] — `/api/health`, `/api/performance`, `/api/export`, `/api/logs`, `/api/pppoe_interfaces`
//! - [`gateway`] — `/api/organization`, `/api/sites`, `/api/gateways`, `/api/gateway/{id}/...`
//! - [`isp`] — `/api/mikrotik/...`, `/api/vpn/...`, `/api/bandwidth/...` (and the deprecated
//!   aliases `/api/devices...`, `/api/users...`, `/api/interfaces`)
//! - [`wireguard`] — `/api/metrics/...`, `/peers`, `/peer/{name}...`, `/server-info`
//! - [`wg_writes`] — `POST /add-peer`, `DELETE /peer/{name}`, `POST /reload-wireguard`, `/peer/{name}/qr`
//! - [`actions`] — `/api/actions...` (the audit trail of fleet actions)
//! - [`device_status`] — `POST /api/mikrotik/devices/{name}/status` (a fresh status)
//! - [`backups`] — `POST /api/mikrotik/backup/create`, `POST /api/vpn/server/backup`, `/api/backups...`
//! - [`limits`] — the middleware's queue, throttle and anti-sharing writes (`/api/mikrotik/users/queue/...`,
//!   `/api/bandwidth/management/...`, `/api/mikrotik/anti-sharing/enable`)
//! - [`prometheus`] — `/metrics`
//! - [`alerts`] — `/api/alerts`, `/api/alerts/silences...`
//! - [`series`] — `/api/routers/{id}/interfaces/{name}/series` (the dashboard chart, with gaps)
//! - [`openapi`] — `/api/openapi.json`
//! - [`dashboard`] — `/`, `/assets/{file}`, `/api/fleet`, `/api/routers/{id}`
//!
//! The concepts several groups share each have one home here, never in the group that needed
//! them first (docs/api/layout.md):
//!
//! - [`fleet`] — the fleet read model: router rows and the two online rules
//! - [`window`] — `duration` windows, their bounds and the one traffic-sum function
//! - [`times`] — time and duration formatting (the wall clock itself is `crate::clock`)
//! - [`envelope`] — the `{success, data[, timestamp]}` envelopes
//! - [`cache`] — the response cache of the fleet-wide answers
//! - [`readpool`] — read-only database connections
//! - [`rate_limit`], [`request_stats`] — the middleware every request passes
//! - [`log_capture`] — the tracing layer behind `/api/logs`
//!
//! Keys are sent as `X-API-Key: <key>` or `Authorization: Bearer <key>` and looked up by their
//! SHA-256; when the operator configures a JWT key, `Authorization: Bearer <jwt>` is accepted
//! too ([`jwt`]). [`require_role`] is the reusable check: 401 for a missing or unknown key or a
//! bad token, 403 for a key or token whose role is too low (or a token with no known role).
//! Database work runs on the blocking pool through [`with_store`].
//!
//! Browsers on other origins (the WireGuard manager's frontend) are let in by [`cors`]: an
//! operator-configured origin allow-list, none by default.
//!
//! - `GET /health` -> `{"status":"ok"|"degraded", "version", "database", "integrity",
//!   "ingest_connections", "routers_connected", "uptime_s", "timestamp"}` (503 while database
//!   writes fail or the quick integrity check at start found corruption).
//!
//! Every route is rate limited ([`rate_limit`]): a token bucket per API key, and per client IP
//! for requests without a (valid) key; over the limit the answer is 429 with
//! `{"error", "retry_after"}` and a `Retry-After` header. The ISP middleware's routes have
//! per-route hourly limits besides, and answer every error in their own shape
//! ([`envelope::shape_errors`]).
//! - `POST /api/admin/tokens` (admin) with `{name, site?, ttl?, max_uses?}` -> 201
//!   `{token, id, name, site, expires_at, max_uses}`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;

pub mod actions;
pub mod alerts;
pub mod backups;
pub mod cache;
pub mod cors;
pub mod dashboard;
pub mod device_status;
pub mod envelope;
pub(crate) mod extract;
pub mod fleet;
pub mod fleet_action;
pub mod gateway;
pub mod isp;
pub mod jwt;
pub mod limits;
pub mod log_capture;
pub mod monitor;
pub mod openapi;
pub mod openwrt;
pub mod paging;
pub mod prometheus;
pub mod rate_limit;
pub mod readpool;
pub mod request_stats;
pub mod series;
pub mod times;
pub mod wg_writes;
pub mod window;
pub mod wireguard;

use crate::clock::unix_now;
use crate::ingest::revocation::OpenConns;
use crate::ingest::writer::DbHealth;
use crate::pki::tokens::{create_token, parse_ttl, sha256, Role, TokenError, DEFAULT_TTL};
use crate::store::{Store, StoreError};

/// Shared state of every handler.
#[derive(Clone)]
pub struct ApiState {
    /// The API's own database connection.
    pub store: Arc<Mutex<Store>>,
    pub ca_hash: [u8; 32],
    pub health: Arc<DbHealth>,
    /// Ingest connection permits (open connections = max - available).
    pub permits: Arc<Semaphore>,
    pub max_connections: usize,
    pub conns: OpenConns,
    pub started: Instant,
    /// Read-only connections for queries, so reads run side by side with each other.
    pub readers: Arc<readpool::ReadPool>,
    /// Cached fleet-wide answers.
    pub cache: Arc<cache::ResponseCache>,
    /// Fleet actions (the write routes).
    pub actions: crate::actions::Hub,
    /// The ISP group's per-route rate limits (`[isp_rate_limits]` in the config).
    pub isp_limits: rate_limit::RouteLimits,
    /// The JWT verifier, when JWTs are configured.
    pub jwt: Option<Arc<jwt::JwtVerifier>>,
    /// Origins allowed to call the API from a browser (empty: no CORS headers at all).
    pub cors: cors::CorsOrigins,
    /// Whether `GET /metrics` writes the per-station families when the query does not say
    /// (`[metrics] stations` in the config).
    pub metrics_stations: bool,
    /// Recent station traffic, kept by the writer (the monitoring routes' windows).
    pub recent: Arc<crate::store::recent::RecentStations>,
}

/// An error answered as `{"error": message}` with a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The ISP group answers the same error in its own shape (envelope::shape_errors).
        resp.extensions_mut()
            .insert(envelope::ErrorText(self.message));
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("not found: {m}"))
            }
            StoreError::NameTaken(m) => {
                ApiError::new(StatusCode::CONFLICT, format!("name already taken: {m}"))
            }
            StoreError::AlreadyExists(m) => {
                ApiError::new(StatusCode::CONFLICT, format!("already exists: {m}"))
            }
            StoreError::InvalidInput(m) => ApiError::bad_request(m),
            other => {
                tracing::error!(error = %other, "API database error");
                ApiError::internal("database error; see the collector log")
            }
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Store(s) => s.into(),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// Runs `f` with the API's store on the blocking pool.
pub async fn with_store<T, F>(state: &ApiState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
{
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    })
    .await
    .map_err(|e| ApiError::internal(format!("database task failed: {e}")))?
}

/// How a caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    ApiKey,
    Jwt,
}

/// The caller behind a valid API key or JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// The key's id, or the JWT's subject (`sub`).
    pub key: String,
    pub via: AuthVia,
}

impl Caller {
    /// Who asked, as the actions audit records it: `key:<id>` or `jwt:<sub>`.
    pub fn who(&self) -> String {
        match self.via {
            AuthVia::ApiKey => format!("key:{}", self.key),
            AuthVia::Jwt => format!("jwt:{}", self.key),
        }
    }
}

/// The API key of a request, from `X-API-Key` or `Authorization: Bearer`.
pub fn api_key_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if !v.is_empty() {
            return Some(v.to_string());
        }
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = auth.split_once(' ')?;
    let key = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then(|| key.to_string())
}

/// Reads the store's `(key id, role)` pair.
fn role_of(pair: &(String, String)) -> Option<(Role, String)> {
    pair.1.parse::<Role>().ok().map(|r| (r, pair.0.clone()))
}

/// The JWT of a request: an `Authorization: Bearer` value shaped like a JWT (three dot-separated
/// parts, not an `rsk_` API key). `X-API-Key` always carries an API key.
fn bearer_jwt(headers: &HeaderMap) -> Option<String> {
    if headers.contains_key("x-api-key") {
        return None;
    }
    api_key_from_headers(headers).filter(|v| jwt::looks_like_jwt(v))
}

/// Verifies a bearer JWT into a caller (401, or 403 for a token with no known role).
fn jwt_caller(state: &ApiState, token: &str) -> Result<Caller, ApiError> {
    let verified = match &state.jwt {
        Some(v) => v.verify(token),
        None => Err(jwt::JwtError::Disabled),
    };
    match verified {
        Ok(c) => Ok(Caller {
            role: c.role,
            key: c.subject,
            via: AuthVia::Jwt,
        }),
        Err(e) if e.is_forbidden() => Err(ApiError::new(StatusCode::FORBIDDEN, e.to_string())),
        Err(e) => Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())),
    }
}

/// Checks the request's API key or JWT: 401 when missing, unknown or invalid, 403 when its role
/// is below `min` (or a JWT names no known role).
pub async fn require_role(
    state: &ApiState,
    headers: &HeaderMap,
    min: Role,
) -> Result<Caller, ApiError> {
    let caller = match bearer_jwt(headers) {
        Some(token) => jwt_caller(state, &token)?,
        None => {
            let key = api_key_from_headers(headers).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing API key (send X-API-Key or Authorization: Bearer with a key or a JWT)",
                )
            })?;
            let hash = sha256(&key);
            let found = with_store(state, move |s| Ok(s.api_key_role(&hash)?)).await?;
            let Some((role, id)) = found.as_ref().and_then(role_of) else {
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unknown API key"));
            };
            Caller {
                role,
                key: id,
                via: AuthVia::ApiKey,
            }
        }
    };
    if caller.role < min {
        let what = match caller.via {
            AuthVia::ApiKey => "API key",
            AuthVia::Jwt => "token",
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this {what} has role {}; {min} is required", caller.role),
        ));
    }
    Ok(caller)
}

/// Runs a read-only query `f` on a pooled connection on a read thread ([`readpool::ReadPool::run`]).
pub async fn with_read<T, F>(state: &ApiState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
{
    state.readers.run(f).await
}

/// The API routes, with the default rate limits.
pub fn router(state: ApiState) -> Router {
    router_with_limits(state, rate_limit::RateLimitConfig::default())
}

/// The API routes with the given rate limits. Every request passes the request-stats middleware
/// (read by `/api/performance`), the ISP group's error shaping (`envelope::shape_errors`), the
/// rate limiter, and, once routed, the ISP group's per-route limits (`state.isp_limits`).
pub fn router_with_limits(state: ApiState, limits: rate_limit::RateLimitConfig) -> Router {
    let limiter = Arc::new(rate_limit::RateLimiter::new(limits));
    let route_limiter = Arc::new(rate_limit::RouteLimiter::new(
        state.isp_limits.clone(),
        isp::is_group_path,
    ));
    let stats = Arc::new(request_stats::RequestStats::default());
    let cors = state.cors.layer();
    let router = Router::new()
        .route("/health", get(health))
        .route("/api/admin/tokens", post(create_token_handler))
        .merge(openwrt::routes())
        .merge(monitor::routes())
        .merge(gateway::routes())
        .merge(isp::routes())
        .merge(wireguard::routes())
        .merge(wg_writes::routes())
        .merge(actions::routes())
        .merge(backups::routes())
        .merge(device_status::routes())
        .merge(limits::routes())
        .merge(prometheus::routes())
        .merge(openapi::routes())
        .merge(dashboard::routes())
        .merge(alerts::routes())
        .merge(series::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            route_limiter,
            rate_limit::route_limit,
        ))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            rate_limit::limit,
        ))
        .layer(axum::middleware::from_fn(envelope::shape_errors))
        .layer(axum::middleware::from_fn_with_state(
            stats.clone(),
            request_stats::record_request,
        ))
        .layer(axum::Extension(stats))
        .layer(compression());
    // Outermost: preflights are answered before the rate limiter and the routes.
    match cors {
        Some(layer) => router.layer(layer).with_state(state),
        None => router.with_state(state),
    }
}

/// HTTP compression of every answer: gzip or brotli as the request's `Accept-Encoding` prefers,
/// none without it. The fastest level: the whole-fleet answers are megabytes, compressed per
/// request (the response cache keeps them uncompressed), and the fastest levels already take
/// JSON to about a tenth. Bodies under 32 bytes, images and event streams go as they are.
pub fn compression() -> tower_http::compression::CompressionLayer {
    tower_http::compression::CompressionLayer::new()
        .gzip(true)
        .br(true)
        .quality(tower_http::CompressionLevel::Fastest)
}

/// Collector health (open): database state, ingest connections, uptime.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "collector_health",
    tag = "collector",
    security(()),
    responses(
        (status = 200, description = "Healthy: `{status: \"ok\", version, database, ingest_connections, routers_connected, uptime_s}`", content_type = "application/json"),
        (status = 503, description = "Database writes are failing, or the integrity check at start found corruption (`status: \"degraded\"`)", content_type = "application/json"),
    )
)]
async fn health(State(state): State<ApiState>) -> Response {
    use crate::ingest::writer::Integrity;
    let integrity = state.health.integrity();
    let corrupt = matches!(integrity, Some(Integrity::Failed(_)));
    let failing = state.health.is_failing() || corrupt;
    let database = match (state.health.last_error(), &integrity) {
        (Some(e), _) if state.health.is_failing() => format!("failing: {e}"),
        (_, Some(Integrity::Failed(why))) => format!("corrupt: {why}"),
        _ => "ok".to_string(),
    };
    let integrity = match integrity {
        None => "checking",
        Some(Integrity::Ok) => "ok",
        Some(Integrity::Unfinished) => "not checked (the quick check did not finish in time)",
        Some(Integrity::Failed(_)) => "failed",
    };
    let body = json!({
        "status": if failing { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": database,
        "integrity": integrity,
        "ingest_connections": state.max_connections.saturating_sub(state.permits.available_permits()),
        "routers_connected": state.conns.routers(),
        "uptime_s": state.started.elapsed().as_secs(),
        "timestamp": times::iso_ms(crate::clock::now_ms()),
    });
    let status = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

/// Body of `POST /api/admin/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    #[schema(schema_with = openapi::pattern::router_name)]
    pub name: String,
    /// 1-128 characters without control characters.
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$", nullable)]
    pub site: Option<String>,
    /// Like `24h`, `30m`, `7d`: one number and unit, from 1 s to 365 days; default 24h (the
    /// server also takes sums like `1h30m`).
    #[schema(
        nullable,
        pattern = "^([1-9][0-9]{0,6}s|[1-9][0-9]{0,4}m|([1-9][0-9]{0,2}|[1-7][0-9]{3}|8[0-6][0-9]{2}|87[0-5][0-9]|8760)h|([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-5])d)$"
    )]
    pub ttl: Option<String>,
    /// Default 1.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4294967295_i64)]
    #[serde(default, deserialize_with = "extract::opt_integer")]
    pub max_uses: Option<u32>,
}

/// Answer of `POST /api/admin/tokens`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CreateTokenResponse {
    pub token: String,
    pub id: String,
    pub name: String,
    pub site: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    pub max_uses: u32,
}

/// Creates an enrollment token (admin key).
#[utoipa::path(
    post,
    path = "/api/admin/tokens",
    operation_id = "create_enrollment_token",
    tag = "collector",
    security(("api_key" = []), ("bearer" = [])),
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "The token (shown once)", body = CreateTokenResponse),
        (status = 400, description = "Bad body, name or ttl"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 403, description = "Not an admin key"),
        (status = 409, description = "Name already taken"),
    )
)]
async fn create_token_handler(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<CreateTokenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreateTokenResponse>), ApiError> {
    let caller = require_role(&state, &headers, Role::Admin).await?;
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ttl = match req.ttl.as_deref() {
        Some(t) => parse_ttl(t)?,
        None => DEFAULT_TTL,
    };
    let ca_hash = state.ca_hash;
    let issued = with_store(&state, move |s| {
        Ok(create_token(
            s,
            ca_hash,
            &req.name,
            req.site.as_deref(),
            ttl,
            req.max_uses.unwrap_or(1),
            unix_now(),
        )?)
    })
    .await?;
    tracing::info!(token = %issued.token.id, name = %issued.name, by = %caller.key, "enrollment token created via API");
    Ok((
        StatusCode::CREATED,
        Json(CreateTokenResponse {
            token: issued.token.to_string(),
            id: issued.token.id.clone(),
            name: issued.name,
            site: issued.site,
            expires_at: issued.expires_at,
            max_uses: issued.max_uses,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(api_key_from_headers(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer rsk_abc"),
        );
        assert_eq!(api_key_from_headers(&h).as_deref(), Some("rsk_abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Zm9vOmJhcg=="),
        );
        assert_eq!(api_key_from_headers(&h), None);
        h.insert("x-api-key", HeaderValue::from_static(" rsk_xyz "));
        assert_eq!(api_key_from_headers(&h).as_deref(), Some("rsk_xyz"));
    }

    #[test]
    fn role_pair_from_store() {
        assert_eq!(
            role_of(&("k1".into(), "admin".into())),
            Some((Role::Admin, "k1".into()))
        );
        assert_eq!(
            role_of(&("k2".into(), "read".into())),
            Some((Role::Read, "k2".into()))
        );
        assert_eq!(role_of(&("k3".into(), "root".into())), None);
    }

    /// The compression layer negotiates: gzip and brotli bodies decode to the very bytes sent
    /// without `Accept-Encoding`, and are several times smaller on JSON.
    #[tokio::test]
    async fn answers_are_compressed_as_negotiated() {
        use axum::body::Body;
        use axum::http::Request;
        use std::io::Read;
        use tower::ServiceExt;

        let json: String = (0..2000)
            .map(|i| {
                format!(
                    "{{\"mac\":\"aa:bb:cc:00:{:02x}:{:02x}\",\"rx_bytes\":{}}},",
                    i / 256,
                    i % 256,
                    i * 7919
                )
            })
            .collect();
        let app = Router::new()
            .route("/x", get(move || async move { json }))
            .layer(compression());
        let fetch = |enc: Option<&'static str>| {
            let app = app.clone();
            async move {
                let mut req = Request::builder().uri("/x");
                if let Some(e) = enc {
                    req = req.header(header::ACCEPT_ENCODING, e);
                }
                let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
                let ce = resp
                    .headers()
                    .get(header::CONTENT_ENCODING)
                    .map(|v| v.to_str().unwrap().to_string());
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (ce, body.to_vec())
            }
        };
        let (ce, plain) = fetch(None).await;
        assert_eq!(ce, None);
        let (ce, gz) = fetch(Some("gzip")).await;
        assert_eq!(ce.as_deref(), Some("gzip"));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
        assert!(
            gz.len() * 4 < plain.len(),
            "{} of {}",
            gz.len(),
            plain.len()
        );
        let (ce, br) = fetch(Some("br;q=1.0, gzip;q=0.5")).await;
        assert_eq!(ce.as_deref(), Some("br"));
        let mut out = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
        let (ce, same) = fetch(Some("identity")).await;
        assert_eq!((ce, same), (None, plain));
    }
}
