//! Request statistics of the API: the middleware [`record_request`] (hooked in
//! [`super::router`]) counts every answered request by route and status and times it;
//! `/api/performance` ([`super::monitor`]) reads the counters through [`RequestStats::snapshot`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

/// API request counters since the collector started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestCounts {
    pub total: u64,
    /// Answered with 1xx-3xx.
    pub successful: u64,
    /// Answered with 4xx (including 401 and 429).
    pub client_errors: u64,
    /// Answered with 5xx.
    pub server_errors: u64,
    pub unauthorized: u64,
    pub rate_limited: u64,
    pub average_response_ms: f64,
    pub max_response_ms: f64,
}

/// Counters of one route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointStats {
    /// `METHOD /route/pattern`.
    pub endpoint: String,
    pub count: u64,
    /// 4xx and 5xx answers.
    pub errors: u64,
    pub average_response_ms: f64,
    pub max_response_ms: f64,
}

/// Counters of one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RouteAgg {
    count: u64,
    errors: u64,
    total_us: u64,
    max_us: u64,
}

impl RouteAgg {
    fn add(&mut self, status: StatusCode, us: u64) {
        self.count += 1;
        if status.is_client_error() || status.is_server_error() {
            self.errors += 1;
        }
        self.total_us = self.total_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }
}

#[derive(Debug, Default)]
struct StatsInner {
    all: RouteAgg,
    successful: u64,
    client_errors: u64,
    server_errors: u64,
    unauthorized: u64,
    rate_limited: u64,
    /// "METHOD /matched/path" -> counters (bounded by the route table).
    routes: HashMap<String, RouteAgg>,
}

/// Request counts and response times of the API since it started.
#[derive(Debug, Default)]
pub struct RequestStats {
    inner: Mutex<StatsInner>,
}

/// The method as a bounded label.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl RequestStats {
    /// Records one answered request. `route` is the matched route pattern (None: no route).
    pub fn record(&self, method: &Method, route: Option<&str>, status: StatusCode, micros: u64) {
        let key = format!("{} {}", method_label(method), route.unwrap_or("(no route)"));
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.all.add(status, micros);
        if status.is_server_error() {
            s.server_errors += 1;
        } else if status.is_client_error() {
            s.client_errors += 1;
        } else {
            s.successful += 1;
        }
        if status == StatusCode::UNAUTHORIZED {
            s.unauthorized += 1;
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            s.rate_limited += 1;
        }
        s.routes.entry(key).or_default().add(status, micros);
    }

    /// Requests answered so far.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .all
            .count
    }

    pub(crate) fn snapshot(&self) -> (RequestCounts, Vec<EndpointStats>) {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let avg = |a: &RouteAgg| {
            if a.count == 0 {
                0.0
            } else {
                a.total_us as f64 / a.count as f64 / 1000.0
            }
        };
        let counts = RequestCounts {
            total: s.all.count,
            successful: s.successful,
            client_errors: s.client_errors,
            server_errors: s.server_errors,
            unauthorized: s.unauthorized,
            rate_limited: s.rate_limited,
            average_response_ms: avg(&s.all),
            max_response_ms: s.all.max_us as f64 / 1000.0,
        };
        let mut endpoints: Vec<EndpointStats> = s
            .routes
            .iter()
            .map(|(k, a)| EndpointStats {
                endpoint: k.clone(),
                count: a.count,
                errors: a.errors,
                average_response_ms: avg(a),
                max_response_ms: a.max_us as f64 / 1000.0,
            })
            .collect();
        endpoints.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.endpoint.cmp(&b.endpoint))
        });
        (counts, endpoints)
    }
}

/// Middleware recording every request in [`RequestStats`] (hooked in `api::router`).
pub async fn record_request(
    State(stats): State<Arc<RequestStats>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let resp = next.run(req).await;
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    stats.record(&method, route.as_deref(), resp.status(), us);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_stats_count_by_route_and_status() {
        let s = RequestStats::default();
        s.record(&Method::GET, Some("/api/gateways"), StatusCode::OK, 2000);
        s.record(
            &Method::GET,
            Some("/api/gateways"),
            StatusCode::BAD_REQUEST,
            4000,
        );
        s.record(&Method::GET, None, StatusCode::NOT_FOUND, 100);
        s.record(
            &Method::from_bytes(b"BREW").unwrap(),
            None,
            StatusCode::TOO_MANY_REQUESTS,
            100,
        );
        s.record(
            &Method::GET,
            Some("/api/health"),
            StatusCode::INTERNAL_SERVER_ERROR,
            100,
        );
        let (c, e) = s.snapshot();
        assert_eq!(
            (
                c.total,
                c.successful,
                c.client_errors,
                c.server_errors,
                c.rate_limited
            ),
            (5, 1, 3, 1, 1)
        );
        assert_eq!(s.total(), 5);
        let gw = e
            .iter()
            .find(|x| x.endpoint == "GET /api/gateways")
            .unwrap();
        assert_eq!((gw.count, gw.errors), (2, 1));
        assert!((gw.average_response_ms - 3.0).abs() < 1e-9);
        assert!((gw.max_response_ms - 4.0).abs() < 1e-9);
        assert!(e.iter().any(|x| x.endpoint == "OTHER (no route)"));
        assert_eq!(
            e.first().map(|x| x.endpoint.as_str()),
            Some("GET /api/gateways")
        );
    }
}
