//! Rate limiting of every route: token buckets per API key and per client IP.
//!
//! A request with a key draws from that key's bucket (keyed by the key's SHA-256, never the key).
//! A key not yet seen answered with anything but 401 also draws from its client IP's bucket, so
//! trying many invented keys is limited like unauthenticated requests; requests without a key
//! draw from the IP's bucket. The client IP comes from axum's `ConnectInfo<SocketAddr>` (the
//! server must be started with `into_make_service_with_connect_info::<SocketAddr>()`); without
//! it every keyless client shares one bucket. The table of buckets is bounded: when full, idle
//! (refilled) buckets are dropped, and new clients beyond it share one overflow bucket.
//!
//! The ISP middleware's routes have their own limits besides, per route and key, as its
//! document gives them ([`RouteLimits`], `[isp_rate_limits]` in the collector config): by
//! default 1000 requests per hour per route; `POST /api/mikrotik/backup/create` 5,
//! `POST /api/vpn/server/backup` 2, `POST /api/vpn/clients/create` 10,
//! `POST /api/vpn/clients/{name}/revoke` 20, `POST /api/vpn/clients/{name}/disconnect` 30
//! (certificate and backup operations), `GET /api/bandwidth/usage/real-time` 3600 (real-time
//! polling). Each is a bucket of that many requests refilled evenly over the hour
//! ([`RouteLimiter`], hooked after routing so it sees the matched route). Over a limit the
//! answer is 429 with `Retry-After`; the ISP group's routes answer it in their shape
//! (`envelope::shape_errors`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
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

    /// Buckets currently kept.
    #[cfg(test)]
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
                let verified = kc == Client::Key(k) && t.map.get(&kc).is_some_and(|b| b.verified);
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
pub async fn limit(State(limiter): State<Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    guarded(&limiter, None, req, next).await
}

/// Runs the request when `limiter` has a token for its key (and address), 429 otherwise; then
/// records whether the key turned out valid.
async fn guarded(limiter: &RateLimiter, route: Option<&str>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let key = api_key_from_headers(req.headers()).map(|k| sha256(&k));
    if let Err(retry) = limiter.check(key, ip, Instant::now()) {
        tracing::debug!(
            ?ip,
            keyed = key.is_some(),
            route,
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

/// A per-route limit: `per_hour` requests of `method` on `path` (a route template, `{x}` for a
/// path parameter) per API key (per client address without a valid key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    pub method: Method,
    pub path: String,
    pub per_hour: u32,
}

/// The ISP group's per-route limits (`[isp_rate_limits]` in the collector config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLimits {
    /// Requests per hour per route and key for a route without its own rule.
    pub default_per_hour: u32,
    /// Routes with their own limit.
    pub rules: Vec<RouteRule>,
}

/// Largest per-hour figure accepted (one request per millisecond).
pub const MAX_PER_HOUR: u32 = 3_600_000;

impl Default for RouteLimits {
    /// The middleware document's limits (see the module doc).
    fn default() -> Self {
        let rule = |method: Method, path: &str, per_hour| RouteRule {
            method,
            path: path.to_string(),
            per_hour,
        };
        RouteLimits {
            default_per_hour: 1000,
            rules: vec![
                rule(Method::POST, "/api/mikrotik/backup/create", 5),
                rule(Method::POST, "/api/vpn/server/backup", 2),
                rule(Method::POST, "/api/vpn/clients/create", 10),
                rule(Method::POST, "/api/vpn/clients/{name}/revoke", 20),
                rule(Method::POST, "/api/vpn/clients/{name}/disconnect", 30),
                rule(Method::GET, "/api/bandwidth/usage/real-time", 3600),
            ],
        }
    }
}

/// A bad `[isp_rate_limits]` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteLimitError {
    #[error("{0}: the limit must be from 1 to {MAX_PER_HOUR} requests per hour")]
    Range(String),
    #[error("route {0:?}: write it as \"METHOD /path\", like \"POST /api/vpn/clients/create\"")]
    Route(String),
}

impl RouteLimits {
    /// Sets the default and overrides (or adds) the rules of `routes` (`"METHOD /path"` -> per
    /// hour), checking every figure.
    pub fn apply(
        &mut self,
        default_per_hour: Option<u32>,
        routes: &[(String, u32)],
    ) -> Result<(), RouteLimitError> {
        let check = |what: &str, n: u32| {
            if (1..=MAX_PER_HOUR).contains(&n) {
                Ok(n)
            } else {
                Err(RouteLimitError::Range(what.to_string()))
            }
        };
        if let Some(d) = default_per_hour {
            self.default_per_hour = check("default_per_hour", d)?;
        }
        for (route, n) in routes {
            let n = check(route, *n)?;
            let (m, path) = route
                .trim()
                .split_once(' ')
                .ok_or_else(|| RouteLimitError::Route(route.clone()))?;
            let method = Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
                .map_err(|_| RouteLimitError::Route(route.clone()))?;
            let path = path.trim();
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                return Err(RouteLimitError::Route(route.clone()));
            }
            match self
                .rules
                .iter_mut()
                .find(|r| r.method == method && same_template(&r.path, path))
            {
                Some(r) => r.per_hour = n,
                None => self.rules.push(RouteRule {
                    method,
                    path: path.to_string(),
                    per_hour: n,
                }),
            }
        }
        Ok(())
    }
}

/// True when two route templates name the same route (`{a}` and `{b}` are both a parameter).
fn same_template(a: &str, b: &str) -> bool {
    let norm = |t: &str| -> Vec<String> {
        t.split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    "{}".to_string()
                } else {
                    s.to_string()
                }
            })
            .collect()
    };
    norm(a) == norm(b)
}

/// The per-route limiters of a group: one [`RateLimiter`] per (method, route) in use, made on
/// first use from the rule of that route or the default.
#[derive(Debug)]
pub struct RouteLimiter {
    limits: RouteLimits,
    /// Which matched routes (templates) the limits apply to.
    applies: fn(&str) -> bool,
    limiters: Mutex<HashMap<(Method, String), Arc<RateLimiter>>>,
}

impl RouteLimiter {
    pub fn new(limits: RouteLimits, applies: fn(&str) -> bool) -> Self {
        RouteLimiter {
            limits,
            applies,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Requests per hour allowed on a route.
    pub fn per_hour(&self, method: &Method, route: &str) -> u32 {
        self.limits
            .rules
            .iter()
            .find(|r| r.method == *method && same_template(&r.path, route))
            .map_or(self.limits.default_per_hour, |r| r.per_hour)
    }

    /// The limiter of a route, or None when the limits do not apply to it.
    fn limiter(&self, method: &Method, route: &str) -> Option<Arc<RateLimiter>> {
        if !(self.applies)(route) {
            return None;
        }
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        let l = map
            .entry((method.clone(), route.to_string()))
            .or_insert_with(|| {
                let n = f64::from(self.per_hour(method, route));
                Arc::new(RateLimiter::new(RateLimitConfig {
                    per_second: n / 3600.0,
                    burst: n,
                    max_tracked: RateLimitConfig::default().max_tracked,
                }))
            });
        Some(l.clone())
    }
}

/// The per-route middleware (hooked with `route_layer` in [`super::router_with_limits`], after
/// routing: it reads the matched route).
pub async fn route_limit(
    State(limits): State<Arc<RouteLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    match route
        .as_deref()
        .and_then(|r| limits.limiter(req.method(), r))
    {
        Some(limiter) => guarded(&limiter, route.as_deref(), req, next).await,
        None => next.run(req).await,
    }
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

    #[test]
    fn route_limits_default_and_overrides() {
        let mut l = RouteLimits::default();
        assert_eq!(l.default_per_hour, 1000);
        l.apply(
            Some(50),
            &[
                ("post /api/vpn/clients/{client}/revoke".into(), 7),
                ("GET /api/mikrotik/devices".into(), 3),
            ],
        )
        .unwrap();
        let r = RouteLimiter::new(l, |p| p.starts_with("/api/"));
        assert_eq!(
            r.per_hour(&Method::POST, "/api/vpn/clients/{name}/revoke"),
            7
        );
        assert_eq!(r.per_hour(&Method::POST, "/api/mikrotik/backup/create"), 5);
        assert_eq!(r.per_hour(&Method::GET, "/api/mikrotik/devices"), 3);
        assert_eq!(r.per_hour(&Method::GET, "/api/vpn/status"), 50);
        assert!(r.limiter(&Method::GET, "/metrics").is_none());
        // The bucket holds the hour's figure and refills evenly.
        let g = r.limiter(&Method::GET, "/api/mikrotik/devices").unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(g.check(None, IP1, t0), Ok(()));
        }
        assert_eq!(g.check(None, IP1, t0), Err(1200));
        // Another route has its own bucket.
        let v = r.limiter(&Method::GET, "/api/vpn/status").unwrap();
        assert_eq!(v.check(None, IP1, t0), Ok(()));
    }

    #[test]
    fn bad_route_limits_are_errors() {
        let mut l = RouteLimits::default();
        assert!(matches!(
            l.apply(Some(0), &[]),
            Err(RouteLimitError::Range(_))
        ));
        for bad in ["/api/x", "GET api/x", "G@T /api/x", "GET /api/x y"] {
            assert!(
                matches!(
                    l.apply(None, &[(bad.into(), 1)]),
                    Err(RouteLimitError::Route(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            l.apply(None, &[("GET /api/x".into(), MAX_PER_HOUR + 1)]),
            Err(RouteLimitError::Range(_))
        ));
    }
}
