//! The HTTP API (axum), with API-key authentication. One submodule per route group, each with
//! `routes()` and an OpenAPI fragment (`Doc`) merged into `/api/openapi.json`:
//!
//! - [`openwrt`] — `/api/openwrt` (the OpenWrt CGI-script stats tool this project replaces)
//! - [`monitor`] — `/api/health`, `/api/performance`, `/api/export`, `/api/logs`, `/api/pppoe_interfaces`
//! - [`gateway`] — `/api/organization`, `/api/sites`, `/api/gateways`, `/api/gateway/{id}/...`
//! - [`isp`] — `/api/devices...`, `/api/users...`, `/api/vpn/...`, `/api/bandwidth/...`
//! - [`wireguard`] — `/api/metrics/...`, `/peers`, `/peer/{name}...`, `/server-info`
//! - [`wg_writes`] — `POST /add-peer`, `DELETE /peer/{name}`, `POST /reload-wireguard`, `/peer/{name}/qr`
//! - [`actions`] — `/api/actions...` (the audit trail of fleet actions)
//! - [`device_status`] — `POST /api/mikrotik/devices/{name}/status` (a fresh status)
//! - [`backups`] — `POST /api/mikrotik/backup/create`, `POST /api/vpn/server/backup`, `/api/backups...`
//! - [`prometheus`] — `/metrics`
//! - [`openapi`] — `/api/openapi.json`
//! - [`cache`] — the response cache of the fleet-wide answers
//!
//! Keys are sent as `X-API-Key: <key>` or `Authorization: Bearer <key>` and looked up by their
//! SHA-256. [`require_role`] is the reusable check: 401 for a missing or unknown key, 403 for a
//! key whose role is too low. Database work runs on the blocking pool through [`with_store`].
//!
//! - `GET /health` -> `{"status":"ok"|"degraded", "version", "database", "ingest_connections",
//!   "routers_connected", "uptime_s", "timestamp"}` (503 while database writes fail).
//!
//! Every route is rate limited ([`rate_limit`]): a token bucket per API key, and per client IP
//! for requests without a (valid) key; over the limit the answer is 429 with
//! `{"error", "retry_after"}` and a `Retry-After` header.
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
pub mod backups;
pub mod cache;
pub mod dashboard;
pub mod device_status;
pub mod gateway;
pub mod isp;
pub mod monitor;
pub mod openapi;
pub mod openwrt;
pub mod prometheus;
pub mod readpool;
pub mod wg_writes;
pub mod wireguard;

use crate::pki::unix_now;
use crate::ingest::revocation::OpenConns;
use crate::store::{Store, StoreError};
use crate::pki::tokens::{create_token, parse_ttl, sha256, Role, TokenError, DEFAULT_TTL};
use crate::ingest::writer::DbHealth;

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

/// The caller behind a valid API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// The key's id.
    pub key: String,
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

/// Checks the request's API key: 401 when missing or unknown, 403 when its role is below `min`.
pub async fn require_role(
    state: &ApiState,
    headers: &HeaderMap,
    min: Role,
) -> Result<Caller, ApiError> {
    let key = api_key_from_headers(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API key (send X-API-Key or Authorization: Bearer)",
        )
    })?;
    let hash = sha256(&key);
    let found = with_store(state, move |s| Ok(s.api_key_role(&hash)?)).await?;
    let Some((role, id)) = found.as_ref().and_then(role_of) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unknown API key"));
    };
    if role < min {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this API key has role {role}; {min} is required"),
        ));
    }
    Ok(Caller { role, key: id })
}

/// Runs a read-only query `f` on a pooled connection on the blocking pool.
pub async fn with_read<T, F>(state: &ApiState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
{
    let pool = state.readers.clone();
    tokio::task::spawn_blocking(move || pool.with(f))
        .await
        .map_err(|e| ApiError::internal(format!("database task failed: {e}")))?
}

/// The API routes, with the default rate limits.
pub fn router(state: ApiState) -> Router {
    router_with_limits(state, rate_limit::RateLimitConfig::default())
}

/// The API routes with the given rate limits. Every request passes the request-stats middleware
/// (read by `/api/performance`) and then the rate limiter.
pub fn router_with_limits(state: ApiState, limits: rate_limit::RateLimitConfig) -> Router {
    let limiter = Arc::new(rate_limit::RateLimiter::new(limits));
    let stats = Arc::new(monitor::RequestStats::default());
    Router::new()
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
        .merge(prometheus::routes())
        .merge(openapi::routes())
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            rate_limit::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            stats.clone(),
            monitor::record_request,
        ))
        .layer(axum::Extension(stats))
        .with_state(state)
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
        (status = 503, description = "Database writes are failing (`status: \"degraded\"`)", content_type = "application/json"),
    )
)]
async fn health(State(state): State<ApiState>) -> Response {
    let failing = state.health.is_failing();
    let database = match state.health.last_error() {
        Some(e) if failing => format!("failing: {e}"),
        _ => "ok".to_string(),
    };
    let body = json!({
        "status": if failing { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": database,
        "ingest_connections": state.max_connections.saturating_sub(state.permits.available_permits()),
        "routers_connected": state.conns.routers(),
        "uptime_s": state.started.elapsed().as_secs(),
        "timestamp": monitor::iso_ms(crate::ingest::writer::now_ms()),
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
    pub name: String,
    pub site: Option<String>,
    /// Like `24h`, `30m`, `7d`; default 24h.
    pub ttl: Option<String>,
    /// Default 1.
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
}

/// Rate limiting of every route: token buckets per API key and per client IP.
///
/// A request with a key draws from that key's bucket (keyed by the key's SHA-256, never the key).
/// A key not yet seen answered with anything but 401 also draws from its client IP's bucket, so
/// trying many invented keys is limited like unauthenticated requests; requests without a key
/// draw from the IP's bucket. The client IP comes from axum's `ConnectInfo<SocketAddr>` (the
/// server must be started with `into_make_service_with_connect_info::<SocketAddr>()`); without
/// it every keyless client shares one bucket. The table of buckets is bounded: when full, idle
/// (refilled) buckets are dropped, and new clients beyond it share one overflow bucket.
pub mod rate_limit {
    use std::collections::HashMap;
    use std::net::{IpAddr, SocketAddr};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::extract::{ConnectInfo, Request, State};
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};
    use axum::Json;
    use serde_json::json;

    use super::api_key_from_headers;
    use crate::pki::tokens::sha256;

    /// Limits: a bucket holds `burst` tokens and refills `per_second`; a request takes one.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct RateLimitConfig {
        pub per_second: f64,
        pub burst: f64,
        /// Buckets kept at most.
        pub max_tracked: usize,
    }

    impl Default for RateLimitConfig {
        /// 20 requests per second, bursts of 100.
        fn default() -> Self {
            RateLimitConfig {
                per_second: 20.0,
                burst: 100.0,
                max_tracked: 100_000,
            }
        }
    }

    /// Whose bucket.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Client {
        Key([u8; 32]),
        /// None: no client address known, or the overflow bucket.
        Ip(Option<IpAddr>),
    }

    #[derive(Debug, Clone, Copy)]
    struct Bucket {
        tokens: f64,
        last: Instant,
        /// The key was answered with something else than 401 (keys only).
        verified: bool,
    }

    impl Bucket {
        fn refill(&mut self, now: Instant, cfg: &RateLimitConfig) {
            let dt = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * cfg.per_second).min(cfg.burst);
            self.last = now;
        }

        /// Time until one token is available.
        fn wait(&self, cfg: &RateLimitConfig) -> Duration {
            if self.tokens >= 1.0 {
                return Duration::ZERO;
            }
            if cfg.per_second <= 0.0 {
                return Duration::from_secs(86_400);
            }
            Duration::from_secs_f64(((1.0 - self.tokens) / cfg.per_second).min(86_400.0))
        }
    }

    #[derive(Debug, Default)]
    struct Table {
        map: HashMap<Client, Bucket>,
        last_prune: Option<Instant>,
    }

    /// The buckets of one API instance.
    #[derive(Debug)]
    pub struct RateLimiter {
        cfg: RateLimitConfig,
        table: Mutex<Table>,
    }

    impl RateLimiter {
        pub fn new(cfg: RateLimitConfig) -> Self {
            let cfg = RateLimitConfig {
                per_second: if cfg.per_second.is_finite() {
                    cfg.per_second.max(0.0)
                } else {
                    0.0
                },
                burst: if cfg.burst.is_finite() {
                    cfg.burst.max(1.0)
                } else {
                    1.0
                },
                max_tracked: cfg.max_tracked.max(1),
            };
            RateLimiter {
                cfg,
                table: Mutex::new(Table::default()),
            }
        }

        pub fn config(&self) -> RateLimitConfig {
            self.cfg
        }

        /// Buckets currently kept.
        pub fn tracked(&self) -> usize {
            self.table
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map
                .len()
        }

        /// Takes a token for a request with key hash `key` (None: no key) from `ip`; Err holds
        /// the seconds to wait (at least 1).
        pub fn check(
            &self,
            key: Option<[u8; 32]>,
            ip: Option<IpAddr>,
            now: Instant,
        ) -> Result<(), u64> {
            let cfg = self.cfg;
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            if t.map.len() >= cfg.max_tracked
                && t.last_prune
                    .is_none_or(|p| now.saturating_duration_since(p) >= Duration::from_secs(1))
            {
                t.last_prune = Some(now);
                t.map.retain(|_, b| {
                    let mut b = *b;
                    b.refill(now, &cfg);
                    b.tokens < cfg.burst
                });
            }
            let slot = |c: Client, t: &mut Table| -> Client {
                if t.map.contains_key(&c) {
                    return c;
                }
                if t.map.len() < cfg.max_tracked {
                    t.map.insert(
                        c,
                        Bucket {
                            tokens: cfg.burst,
                            last: now,
                            verified: false,
                        },
                    );
                    return c;
                }
                let overflow = Client::Ip(None);
                t.map.entry(overflow).or_insert(Bucket {
                    tokens: cfg.burst,
                    last: now,
                    verified: false,
                });
                overflow
            };
            let mut draw: Vec<Client> = Vec::with_capacity(2);
            match key {
                Some(k) => {
                    let kc = slot(Client::Key(k), &mut t);
                    let verified =
                        kc == Client::Key(k) && t.map.get(&kc).is_some_and(|b| b.verified);
                    draw.push(kc);
                    if !verified {
                        let ic = slot(Client::Ip(ip), &mut t);
                        if !draw.contains(&ic) {
                            draw.push(ic);
                        }
                    }
                }
                None => draw.push(slot(Client::Ip(ip), &mut t)),
            }
            let mut wait = Duration::ZERO;
            for c in &draw {
                if let Some(b) = t.map.get_mut(c) {
                    b.refill(now, &cfg);
                    wait = wait.max(b.wait(&cfg));
                }
            }
            if !wait.is_zero() {
                return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
            }
            for c in &draw {
                if let Some(b) = t.map.get_mut(c) {
                    b.tokens -= 1.0;
                }
            }
            Ok(())
        }

        /// Records whether a key turned out valid (its request was answered with anything but 401).
        pub fn settle(&self, key: [u8; 32], valid: bool) {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(b) = t.map.get_mut(&Client::Key(key)) {
                b.verified = valid;
            }
        }
    }

    /// The 429 answer.
    pub fn too_many_requests(retry_after: u64) -> Response {
        let body = json!({
            "error": format!("rate limit exceeded; retry in {retry_after} s"),
            "retry_after": retry_after,
        });
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        resp
    }

    /// The middleware (hooked in [`super::router`]).
    pub async fn limit(
        State(limiter): State<Arc<RateLimiter>>,
        req: Request,
        next: Next,
    ) -> Response {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let key = api_key_from_headers(req.headers()).map(|k| sha256(&k));
        if let Err(retry) = limiter.check(key, ip, Instant::now()) {
            tracing::debug!(
                ?ip,
                keyed = key.is_some(),
                retry,
                "API request rate limited"
            );
            return too_many_requests(retry);
        }
        let resp = next.run(req).await;
        if let Some(k) = key {
            limiter.settle(k, resp.status() != StatusCode::UNAUTHORIZED);
        }
        resp
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn cfg(per_second: f64, burst: f64) -> RateLimitConfig {
            RateLimitConfig {
                per_second,
                burst,
                max_tracked: 1000,
            }
        }

        const IP1: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
        const IP2: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

        #[test]
        fn burst_then_refill() {
            let l = RateLimiter::new(cfg(2.0, 3.0));
            let t0 = Instant::now();
            for _ in 0..3 {
                assert_eq!(l.check(None, IP1, t0), Ok(()));
            }
            assert_eq!(l.check(None, IP1, t0), Err(1));
            // Another client has its own bucket.
            assert_eq!(l.check(None, IP2, t0), Ok(()));
            // Half a second refills one token at 2/s.
            assert_eq!(l.check(None, IP1, t0 + Duration::from_millis(500)), Ok(()));
            assert!(l.check(None, IP1, t0 + Duration::from_millis(500)).is_err());
            // Never more than the burst.
            let later = t0 + Duration::from_secs(3600);
            for _ in 0..3 {
                assert_eq!(l.check(None, IP1, later), Ok(()));
            }
            assert!(l.check(None, IP1, later).is_err());
        }

        #[test]
        fn retry_after_counts_whole_seconds() {
            let l = RateLimiter::new(cfg(0.25, 1.0));
            let t0 = Instant::now();
            assert_eq!(l.check(None, IP1, t0), Ok(()));
            assert_eq!(l.check(None, IP1, t0), Err(4));
            assert_eq!(l.check(None, IP1, t0 + Duration::from_secs(3)), Err(1));
        }

        #[test]
        fn keys_have_their_own_buckets_once_valid() {
            let l = RateLimiter::new(cfg(1.0, 2.0));
            let t0 = Instant::now();
            let good = [1u8; 32];
            // First use of a key also draws from the IP.
            assert_eq!(l.check(Some(good), IP1, t0), Ok(()));
            l.settle(good, true);
            assert_eq!(l.check(Some(good), IP1, t0), Ok(()));
            assert!(l.check(Some(good), IP1, t0).is_err(), "key bucket empty");
            // The IP still has a token for keyless requests (only one was drawn from it).
            assert_eq!(l.check(None, IP1, t0), Ok(()));
            assert!(l.check(None, IP1, t0).is_err());
            // Invented keys cannot escape the IP's limit.
            let t1 = t0 + Duration::from_secs(2);
            let mut allowed = 0;
            for i in 0..10u8 {
                if l.check(Some([100 + i; 32]), IP1, t1).is_ok() {
                    l.settle([100 + i; 32], false);
                    allowed += 1;
                }
            }
            assert_eq!(allowed, 2);
        }

        #[test]
        fn table_is_bounded() {
            let l = RateLimiter::new(RateLimitConfig {
                per_second: 1.0,
                burst: 1.0,
                max_tracked: 4,
            });
            let t0 = Instant::now();
            for i in 0..50u8 {
                let ip = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i)));
                let _ = l.check(None, ip, t0);
            }
            assert!(l.tracked() <= 5, "{}", l.tracked());
            // Idle buckets are dropped later, making room for new clients.
            let t1 = t0 + Duration::from_secs(5);
            assert_eq!(l.check(None, IP2, t1), Ok(()));
            assert!(l.tracked() <= 4, "{}", l.tracked());
        }

        #[test]
        fn odd_settings_do_not_panic() {
            for c in [cfg(f64::NAN, f64::INFINITY), cfg(0.0, 0.0), cfg(-1.0, -5.0)] {
                let l = RateLimiter::new(c);
                let t0 = Instant::now();
                assert_eq!(l.check(None, None, t0), Ok(()));
                let e = l.check(None, None, t0);
                assert!(matches!(e, Err(n) if n >= 1), "{e:?}");
            }
        }

        #[test]
        fn answer_has_header_and_body() {
            let r = too_many_requests(3);
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                r.headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                Some("3")
            );
        }
    }
}
