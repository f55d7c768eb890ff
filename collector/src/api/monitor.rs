//! Route group `monitor`: the RouterOS-style monitoring routes, applied to the OpenWrt fleet.
//!
//! - `GET /api/health` (open): collector status; with a read key also every router
//!   online/offline with last-seen (without a key only the collector part). A router is online
//!   when its latest report arrived within `max(3 x its report interval, 90 s)` (see
//!   [`super::fleet::is_online`]); the interval is estimated from its two latest reports.
//! - `POST /api/health` (read key; the monitor's "test connection with custom parameters"): a
//!   round trip to one router's agent over its live ingest connection (a `ping` fleet action,
//!   which every agent answers without an `allow_actions` grant), with the measured latency.
//!   Body `{router?, host?, timeout?}`; see [`health_test`].
//! - `GET /api/performance`: API request counts and response times (from the
//!   [`super::request_stats`] middleware), ingest rate (reports stored in the last 5 minutes) and uptime.
//! - `GET /api/export`: every router's current data as a timestamped JSON download.
//! - `GET /api/logs[?count=&level=&clear=true]`: recent collector log lines from an in-memory
//!   ring buffer fed by the [`super::log_capture`] tracing layer; clearing needs an admin key.
//! - `GET /api/pppoe_interfaces`: PPPoE interfaces (kind `pppoe`) of every router with their
//!   latest counters and rates.
//!
//! The router rows and the online rule come from [`super::fleet`], time formats from
//! [`super::times`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::extract::bad_query;
use super::fleet::{RouterInfo, ONLINE_FLOOR_MS, ONLINE_INTERVALS};
use super::log_capture::{log_ring, parse_level, LogLine, LOG_CAPACITY};
use super::paging::{bounds, paged_json, set_next_headers, Page, PageQuery};
use super::readpool::db_err;
use super::request_stats::{EndpointStats, RequestCounts, RequestStats};
use super::times::{compact_utc, iso_ms};
use super::{require_role, with_read, ApiError, ApiState};
use crate::clock::now_ms;
use crate::pki::tokens::Role;

/// Window over which `/api/performance` measures the ingest rate.
pub const INGEST_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Default and largest `count` of `/api/logs`.
pub const LOG_COUNT_DEFAULT: usize = 100;
pub const LOG_COUNT_MAX: usize = LOG_CAPACITY;

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/health", get(health).post(health_test))
        .route("/api/performance", get(performance))
        .route("/api/export", get(export))
        .route("/api/logs", get(logs))
        .route("/api/pppoe_interfaces", get(pppoe_interfaces))
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(health, health_test, performance, export, logs, pppoe_interfaces),
    components(schemas(HealthTest, HealthTestAnswer))
)]
pub struct Doc;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Non-negative SQLite integer as u64 (negative values, which the store never writes, become 0).
pub fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// GET /api/health
// ---------------------------------------------------------------------------------------------

/// One router in `/api/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RouterHealth {
    pub id: i64,
    pub name: String,
    pub site: Option<String>,
    /// `online`, `offline`, `revoked` or `never_reported`.
    pub status: String,
    pub online: bool,
    /// RFC 3339 time the latest report arrived (collector clock); null before the first.
    pub last_seen: Option<String>,
    pub last_seen_ms: Option<i64>,
    pub seconds_since_seen: Option<i64>,
    /// Estimated from the two latest reports (agent clock); null with fewer than two.
    pub report_interval_s: Option<f64>,
}

/// Router counts of `/api/health`: of the routers in `router_status` (this page).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RouterCounts {
    pub total: usize,
    pub online: usize,
    /// Not revoked and not online (including routers that never reported).
    pub offline: usize,
    pub revoked: usize,
}

/// The collector part of `/api/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CollectorHealth {
    /// Always `up` (an answer means the collector runs).
    pub status: String,
    pub version: String,
    pub uptime_s: u64,
    /// `ok`, or `failing: <error>` while database writes fail.
    pub database: String,
    pub ingest_connections: usize,
}

/// Answer of `GET /api/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthResponse {
    /// `healthy`, or `degraded` while database writes fail.
    pub status: String,
    pub timestamp: String,
    pub collector: CollectorHealth,
    /// The online rule, in words.
    pub online_rule: String,
    /// With a read key only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routers: Option<RouterCounts>,
    /// With a read key only: one page of routers (`limit`, `cursor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_status: Option<Vec<RouterHealth>>,
}

/// Collector status; with a read key also every router online/offline with last-seen, a page
/// of routers at a time. Without a key only the collector's own health is answered (router
/// names, sites and last-seen times are not for anonymous callers); an unknown key is 401.
#[utoipa::path(get, path = "/api/health", tag = "monitor", security((), ("api_key" = []), ("bearer" = [])),
    params(PageQuery),
    responses((status = 200, description = "Collector status (and router status with a key). `router_status` is one page \
        of routers in router id order (`limit`, default 100, at most 1000; `cursor`), listed by name, and `routers` counts \
        that page; the next page's cursor is in the `X-Next-Cursor` and `Link` (rel=\"next\") headers (with a key), \
        absent on the last page", body = HealthResponse),
        (status = 400, description = "Bad limit or cursor"),
        (status = 401, description = "Unknown API key")))]
pub async fn health(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let keyed = crate::api::api_key_from_headers(&headers).is_some();
    if keyed {
        require_role(&state, &headers, Role::Read).await?;
    }
    let page = q.map_err(bad_query)?.0.page()?;
    let (routers, next) = if keyed {
        with_read(&state, move |c| {
            let b = bounds(c, page).map_err(db_err)?;
            Ok((super::fleet::load_routers_of(c, &b)?, b.next_cursor))
        })
        .await?
    } else {
        (Vec::new(), None)
    };
    let now = now_ms();
    let failing = state.health.is_failing();
    let database = match state.health.last_error() {
        Some(e) if failing => format!("failing: {e}"),
        _ => "ok".to_string(),
    };
    let mut counts = RouterCounts {
        total: routers.len(),
        online: 0,
        offline: 0,
        revoked: 0,
    };
    let router_status: Vec<RouterHealth> = routers
        .iter()
        .map(|r| {
            let status = r.status(now);
            match status {
                "online" => counts.online += 1,
                "revoked" => counts.revoked += 1,
                _ => counts.offline += 1,
            }
            RouterHealth {
                id: r.id,
                name: r.name.clone(),
                site: r.site.clone(),
                status: status.to_string(),
                online: status == "online",
                last_seen: r.last_seen_ms.map(iso_ms),
                last_seen_ms: r.last_seen_ms,
                seconds_since_seen: r.last_seen_ms.map(|s| now.saturating_sub(s).max(0) / 1000),
                report_interval_s: r.interval_ms.filter(|i| *i > 0).map(|i| i as f64 / 1000.0),
            }
        })
        .collect();
    let body = HealthResponse {
        status: if failing { "degraded" } else { "healthy" }.to_string(),
        timestamp: iso_ms(now),
        collector: CollectorHealth {
            status: "up".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: state.started.elapsed().as_secs(),
            database,
            ingest_connections: state.max_connections.saturating_sub(state.permits.available_permits()),
        },
        online_rule: format!(
            "online when the latest report arrived within max({ONLINE_INTERVALS} x the router's report interval, {} s); \
             the interval is the time between its two latest reports",
            ONLINE_FLOOR_MS / 1000
        ),
        routers: keyed.then_some(counts),
        router_status: keyed.then_some(router_status),
    };
    Ok(paged_json(&body, &uri, next.as_deref()))
}

// ---------------------------------------------------------------------------------------------
// POST /api/health
// ---------------------------------------------------------------------------------------------

/// Default and longest wait for a router's answer to `POST /api/health`, in seconds.
pub const HEALTH_TEST_TIMEOUT_S: u64 = 5;
pub const HEALTH_TEST_TIMEOUT_MAX_S: u64 = 30;

/// Body of `POST /api/health`. The RouterOS monitor's form also sends `username`, `password`,
/// `port` and `use_ssl`: routers here are reached over their own mTLS session, so those are
/// accepted, never read and never stored.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct HealthTest {
    /// The router to test, by name or id. Default: `host`, else the fleet's only router.
    #[schema(max_length = 64)]
    pub router: Option<String>,
    /// The monitor's router address field, taken as the router's name or id when `router` is absent.
    #[schema(max_length = 64)]
    pub host: Option<String>,
    /// Seconds to wait for the answer, 1 to 30 (default 5).
    #[schema(minimum = 1, maximum = 30)]
    pub timeout: Option<u64>,
}

/// Answer of `POST /api/health` when the router answered.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthTestAnswer {
    /// Always `success`.
    pub status: String,
    pub message: String,
    pub router: String,
    pub router_id: i64,
    /// Always true (an offline router is 503).
    pub connected: bool,
    /// Milliseconds from queuing the ping to storing the agent's answer: the round trip over the
    /// router's live session plus two small database writes on the collector.
    pub latency_ms: f64,
    /// The agent's answer: `done` (`refused` from an agent older than the `ping` action, which
    /// still proves the round trip).
    pub answer: String,
    /// The `ping` row in the actions audit (`/api/actions`).
    pub action_id: i64,
    pub timestamp: String,
}

/// Round trip to one router's agent over its live connection, with the latency.
#[utoipa::path(post, path = "/api/health", operation_id = "health_test", tag = "monitor",
    security(("api_key" = []), ("bearer" = [])),
    request_body(content = HealthTest, description = "Which router, how long to wait; an empty body tests the fleet's only router"),
    responses(
        (status = 200, description = "The router answered over its live connection", body = HealthTestAnswer),
        (status = 400, description = "Bad body, no router named (with several routers), or timeout out of 1-30"),
        (status = 401, description = "Missing or unknown API key or invalid token"),
        (status = 403, description = "Token without a known role"),
        (status = 404, description = "Unknown router"),
        (status = 503, description = "The router is offline (no live connection) or revoked"),
        (status = 504, description = "The router is connected but did not answer within the timeout"),
    ))]
pub async fn health_test(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<HealthTestAnswer>, ApiError> {
    use axum::http::StatusCode;
    let caller = require_role(&state, &headers, Role::Read).await?;
    let req: HealthTest = if body.iter().all(u8::is_ascii_whitespace) {
        HealthTest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let timeout = req.timeout.unwrap_or(HEALTH_TEST_TIMEOUT_S);
    if !(1..=HEALTH_TEST_TIMEOUT_MAX_S).contains(&timeout) {
        return Err(ApiError::bad_request(format!(
            "timeout must be between 1 and {HEALTH_TEST_TIMEOUT_MAX_S} seconds"
        )));
    }
    for (field, v) in [("router", &req.router), ("host", &req.host)] {
        if v.as_ref()
            .is_some_and(|v| v.chars().count() > crate::store::MAX_NAME_CHARS)
        {
            return Err(ApiError::bad_request(format!(
                "{field} must be at most {} characters",
                crate::store::MAX_NAME_CHARS
            )));
        }
    }
    let target = match req.router.or(req.host).filter(|t| !t.trim().is_empty()) {
        Some(t) => t,
        None => state.actions.only_router().await?.ok_or_else(|| {
            ApiError::bad_request("name the router to test: {\"router\": \"<name or id>\"}")
        })?,
    };
    let router_id = state.actions.router_id(target.clone()).await?;
    if !state.actions.is_live(router_id) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("router {target} is offline: it has no live connection to the collector"),
        ));
    }
    let started = std::time::Instant::now();
    let wait = std::time::Duration::from_secs(timeout);
    let (row, _) = state
        .actions
        .request(crate::actions::Request {
            router: router_id.to_string(),
            kind: routerstats_shared::action::ActionKind::Ping {},
            idempotency_key: None,
            requested_by: caller.who(),
            ttl: Some(wait),
        })
        .await?;
    let row = if row.is_final() {
        row
    } else {
        state.actions.wait(row.id, wait).await?.unwrap_or(row)
    };
    let latency_ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    // The hub refuses, without sending, an action for a revoked router.
    let revoked = row.state == "refused"
        && row
            .output
            .as_deref()
            .is_some_and(|o| o.contains("is revoked"));
    if revoked {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("router {} is revoked", row.router),
        ));
    }
    if !matches!(row.state.as_str(), "done" | "refused" | "failed") {
        return Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "router {} is connected but did not answer within {timeout} s",
                row.router
            ),
        ));
    }
    Ok(Json(HealthTestAnswer {
        status: "success".into(),
        message: format!(
            "router {} answered over its live connection in {latency_ms} ms",
            row.router
        ),
        router: row.router.clone(),
        router_id,
        connected: true,
        latency_ms,
        answer: row.state.clone(),
        action_id: row.id,
        timestamp: iso_ms(now_ms()),
    }))
}

// ---------------------------------------------------------------------------------------------
// GET /api/performance
// ---------------------------------------------------------------------------------------------

/// Ingest activity over the last 5 minutes (from the stored reports).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestStats {
    pub window_s: i64,
    /// Reports whose agent timestamp falls in the window.
    pub reports_in_window: u64,
    pub reports_per_second: f64,
    /// Routers with at least one report in the window.
    pub routers_reporting: u64,
    pub ingest_connections: usize,
}

/// Answer of `GET /api/performance`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PerformanceResponse {
    pub timestamp: String,
    pub uptime_s: u64,
    pub requests: RequestCounts,
    pub endpoints: Vec<EndpointStats>,
    pub ingest: IngestStats,
}

/// Reports and reporting routers since `since_ms` (index `reports_router_ts`, one range per router).
const INGEST_SQL: &str = "SELECT count(*), count(DISTINCT r.id) FROM routers r \
     CROSS JOIN reports p ON p.router_id = r.id AND p.ts_ms >= ?1";

/// API request counts, response times, ingest rate and uptime.
#[utoipa::path(get, path = "/api/performance", tag = "monitor",
    responses((status = 200, description = "Performance statistics", body = PerformanceResponse),
              (status = 401, description = "Missing or unknown API key")),
    security(("api_key" = [])))]
pub async fn performance(
    State(state): State<ApiState>,
    stats: Option<Extension<Arc<RequestStats>>>,
    headers: HeaderMap,
) -> Result<Json<PerformanceResponse>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let now = now_ms();
    let since = now.saturating_sub(INGEST_WINDOW_MS);
    let (reports, routers) = with_read(&state, move |c| {
        c.prepare_cached(INGEST_SQL)
            .and_then(|mut st| {
                st.query_row([since], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            })
            .map_err(db_err)
    })
    .await?;
    let (requests, endpoints) = match stats {
        Some(Extension(s)) => s.snapshot(),
        None => RequestStats::default().snapshot(),
    };
    let window_s = INGEST_WINDOW_MS / 1000;
    Ok(Json(PerformanceResponse {
        timestamp: iso_ms(now),
        uptime_s: state.started.elapsed().as_secs(),
        requests,
        endpoints,
        ingest: IngestStats {
            window_s,
            reports_in_window: to_u64(reports),
            reports_per_second: to_u64(reports) as f64 / window_s as f64,
            routers_reporting: to_u64(routers),
            ingest_connections: state
                .max_connections
                .saturating_sub(state.permits.available_permits()),
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// GET /api/export
// ---------------------------------------------------------------------------------------------

/// Runs `sql` (one parameter-less query ordered by router id, router id in column 0) and groups
/// the rows, read by `row`, under their router id.
fn rows_by_router<T>(
    conn: &Connection,
    sql: &str,
    ids: (i64, i64),
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<HashMap<i64, Vec<T>>, ApiError> {
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = st.query([ids.0, ids.1]).map_err(db_err)?;
    let mut out: HashMap<i64, Vec<T>> = HashMap::new();
    while let Some(r) = rows.next().map_err(db_err)? {
        let id: i64 = r.get(0).map_err(db_err)?;
        out.entry(id).or_default().push(row(r).map_err(db_err)?);
    }
    Ok(out)
}

// The export's objects. Fields are in alphabetical order: the order the document always had (it
// was built as `serde_json::Map`s); `export_fields_are_in_map_order` checks it.

#[derive(Serialize)]
struct ExportIface {
    kind: String,
    name: String,
    rx_bps: Option<i64>,
    rx_bytes: i64,
    rx_drop: i64,
    rx_errors: i64,
    rx_packets: i64,
    tx_bps: Option<i64>,
    tx_bytes: i64,
    tx_drop: i64,
    tx_errors: i64,
    tx_packets: i64,
}

#[derive(Serialize)]
struct ExportStation {
    connected_time: Option<i64>,
    inactive_ms: Option<i64>,
    interface: String,
    mac: String,
    rx_bitrate_kbps: Option<i64>,
    rx_bps: Option<i64>,
    rx_bytes: Option<i64>,
    signal_avg_dbm: Option<i64>,
    signal_dbm: Option<i64>,
    ssid: Option<String>,
    tx_bitrate_kbps: Option<i64>,
    tx_bps: Option<i64>,
    tx_bytes: Option<i64>,
}

#[derive(Serialize)]
struct ExportWgPeer {
    allowed_ips: String,
    endpoint: Option<String>,
    interface: String,
    latest_handshake: Option<i64>,
    name: Option<String>,
    public_key: String,
    rx_bps: Option<i64>,
    rx_bytes: i64,
    tx_bps: Option<i64>,
    tx_bytes: i64,
}

#[derive(Serialize)]
struct ExportOvpnClient {
    common_name: String,
    connected_since: Option<i64>,
    instance: String,
    real_address: String,
    rx_bps: Option<i64>,
    rx_bytes: i64,
    tx_bps: Option<i64>,
    tx_bytes: i64,
    username: Option<String>,
    virtual_address: Option<String>,
    virtual_ipv6: Option<String>,
}

#[derive(Serialize)]
struct ExportWireless {
    addr: Option<String>,
    channel: Option<i64>,
    freq_mhz: Option<i64>,
    /// The links of a Wi-Fi 7 multi-link interface (empty otherwise), as the agent reports them
    /// (as JSON values, so that their keys are sorted like the rest of the export).
    links: Vec<serde_json::Value>,
    name: String,
    ssid: Option<String>,
    txpower_dbm: Option<f64>,
    #[serde(rename = "type")]
    kind: String,
    width_mhz: Option<i64>,
}

#[derive(Serialize)]
struct ExportLease {
    client_id: Option<String>,
    expires: Option<i64>,
    hostname: Option<String>,
    ip: String,
    mac: Option<String>,
}

#[derive(Serialize)]
struct ExportSource {
    detail: Option<String>,
    kind: String,
    name: String,
    skipped: Option<i64>,
    state: String,
    updated: String,
}

#[derive(Serialize)]
struct ExportSystem {
    cpu_permille: Option<i64>,
    disk_mount: Option<String>,
    disk_total_bytes: Option<i64>,
    disk_used_bytes: Option<i64>,
    load: [Option<f64>; 3],
    mem_available_kb: Option<i64>,
    mem_total_kb: Option<i64>,
    report_time: String,
    uptime_s: Option<i64>,
}

#[derive(Serialize)]
struct ExportRouter<'a> {
    agent_version: &'a Option<String>,
    hostname: &'a str,
    id: i64,
    interfaces: Vec<ExportIface>,
    last_seen: Option<String>,
    leases: Vec<ExportLease>,
    model: &'a Option<String>,
    name: &'a str,
    openvpn_clients: Vec<ExportOvpnClient>,
    release: &'a Option<String>,
    revoked_at: Option<i64>,
    site: &'a Option<String>,
    sources: Vec<ExportSource>,
    stations: Vec<ExportStation>,
    status: &'static str,
    system: Option<ExportSystem>,
    uptime_s: Option<i64>,
    wireguard_peers: Vec<ExportWgPeer>,
    wireless: Vec<ExportWireless>,
}

#[derive(Serialize)]
struct ExportCollector {
    uptime_s: u64,
    version: &'static str,
}

#[derive(Serialize)]
struct ExportDoc<'a> {
    collector: ExportCollector,
    exported_at: String,
    exported_at_ms: i64,
    /// The `cursor` of the next page, `null` on the last one.
    next_cursor: Option<String>,
    router_count: usize,
    routers: Vec<ExportRouter<'a>>,
}

/// Latest samples: each router's newest report, found through `routers.last_report_ms`.
const EXPORT_IFACES_SQL: &str = "SELECT r.id, s.name, s.kind, s.rx_bytes, s.tx_bytes, s.rx_packets, s.tx_packets, \
     s.rx_errs, s.tx_errs, s.rx_drop, s.tx_drop, s.rx_bps, s.tx_bps \
     FROM routers r CROSS JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.id, s.name";
const EXPORT_STATIONS_SQL: &str = "SELECT r.id, s.iface, s.mac, s.ssid, s.signal_dbm, s.signal_avg_dbm, s.rx_bytes, \
     s.tx_bytes, s.rx_bps, s.tx_bps, s.connected_s, s.inactive_ms, s.tx_bitrate_kbps, s.rx_bitrate_kbps \
     FROM routers r CROSS JOIN station_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.id, s.iface, s.mac";
const EXPORT_WG_SQL: &str = "SELECT r.id, s.iface, s.public_key, s.name, s.endpoint, s.allowed_ips, \
     s.latest_handshake, s.rx_bytes, s.tx_bytes, s.rx_bps, s.tx_bps \
     FROM routers r CROSS JOIN wg_peer_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.id, s.iface, s.public_key";
const EXPORT_OVPN_SQL: &str = "SELECT r.id, s.instance, s.common_name, s.real_address, s.virtual_address, \
     s.virtual_ipv6, s.rx_bytes, s.tx_bytes, s.rx_bps, s.tx_bps, s.connected_since, s.username \
     FROM routers r CROSS JOIN ovpn_client_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.id, s.instance, s.common_name";
/// Current-state tables (one row set per router, replaced on each report).
const EXPORT_WIRELESS_SQL: &str =
    "SELECT router_id, name, type, ssid, channel, freq_mhz, width_mhz, txpower_dbm, addr, links \
     FROM wireless_interfaces WHERE router_id > ?1 AND router_id <= ?2 ORDER BY router_id, name";
const EXPORT_LEASES_SQL: &str =
    "SELECT router_id, ip, mac, hostname, client_id, expires FROM leases WHERE router_id > ?1 AND router_id <= ?2 ORDER BY router_id, ip";
const EXPORT_SOURCES_SQL: &str =
    "SELECT router_id, kind, name, state, skipped, detail, updated_ms FROM source_status WHERE router_id > ?1 AND router_id <= ?2 ORDER BY router_id, kind, name";
/// The newest report row of each router (primary key lookups).
const EXPORT_SYSTEM_SQL: &str =
    "SELECT r.id, p.ts_ms, p.uptime_s, p.load1, p.load5, p.load15, p.cpu_permille, \
     p.mem_total_kb, p.mem_available_kb, p.disk_mount, p.disk_used_bytes, p.disk_total_bytes \
     FROM routers r CROSS JOIN reports p ON p.id = r.last_report_id WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.id";

/// The export document, pretty-printed.
fn export_body(
    conn: &Connection,
    now: i64,
    uptime_s: u64,
    page: &super::paging::PageBounds,
) -> Result<Vec<u8>, ApiError> {
    // The page: the routers with the next `limit` ids after the cursor, listed by name.
    // (Only the page's routers are read: the fleet's would cost a router row and an interval
    // lookup per router, 10,000 of them at 10,000 routers, for every page.)
    let routers = super::fleet::load_routers_of(conn, page)?;
    let next_cursor = page.next_cursor.clone();
    let ids = (page.after, page.last);
    let mut ifaces = rows_by_router(conn, EXPORT_IFACES_SQL, ids, |r| {
        Ok(ExportIface {
            name: r.get(1)?,
            kind: r.get(2)?,
            rx_bytes: r.get(3)?,
            tx_bytes: r.get(4)?,
            rx_packets: r.get(5)?,
            tx_packets: r.get(6)?,
            rx_errors: r.get(7)?,
            tx_errors: r.get(8)?,
            rx_drop: r.get(9)?,
            tx_drop: r.get(10)?,
            rx_bps: r.get(11)?,
            tx_bps: r.get(12)?,
        })
    })?;
    let mut stations = rows_by_router(conn, EXPORT_STATIONS_SQL, ids, |r| {
        Ok(ExportStation {
            interface: r.get(1)?,
            mac: r.get(2)?,
            ssid: r.get(3)?,
            signal_dbm: r.get(4)?,
            signal_avg_dbm: r.get(5)?,
            rx_bytes: r.get(6)?,
            tx_bytes: r.get(7)?,
            rx_bps: r.get(8)?,
            tx_bps: r.get(9)?,
            connected_time: r.get(10)?,
            inactive_ms: r.get(11)?,
            tx_bitrate_kbps: r.get(12)?,
            rx_bitrate_kbps: r.get(13)?,
        })
    })?;
    let mut wg = rows_by_router(conn, EXPORT_WG_SQL, ids, |r| {
        Ok(ExportWgPeer {
            interface: r.get(1)?,
            public_key: r.get(2)?,
            name: r.get(3)?,
            endpoint: r.get(4)?,
            allowed_ips: r.get(5)?,
            latest_handshake: r.get(6)?,
            rx_bytes: r.get(7)?,
            tx_bytes: r.get(8)?,
            rx_bps: r.get(9)?,
            tx_bps: r.get(10)?,
        })
    })?;
    let mut ovpn = rows_by_router(conn, EXPORT_OVPN_SQL, ids, |r| {
        Ok(ExportOvpnClient {
            instance: r.get(1)?,
            common_name: r.get(2)?,
            real_address: r.get(3)?,
            virtual_address: r.get(4)?,
            virtual_ipv6: r.get(5)?,
            rx_bytes: r.get(6)?,
            tx_bytes: r.get(7)?,
            rx_bps: r.get(8)?,
            tx_bps: r.get(9)?,
            connected_since: r.get(10)?,
            username: r.get(11)?,
        })
    })?;
    let mut wireless = rows_by_router(conn, EXPORT_WIRELESS_SQL, ids, |r| {
        Ok(ExportWireless {
            name: r.get(1)?,
            kind: r.get(2)?,
            ssid: r.get(3)?,
            channel: r.get(4)?,
            freq_mhz: r.get(5)?,
            width_mhz: r.get(6)?,
            txpower_dbm: r.get(7)?,
            addr: r.get(8)?,
            links: crate::store::wifi_links(r.get(9)?)
                .iter()
                .filter_map(|l| serde_json::to_value(l).ok())
                .collect(),
        })
    })?;
    let mut leases = rows_by_router(conn, EXPORT_LEASES_SQL, ids, |r| {
        Ok(ExportLease {
            ip: r.get(1)?,
            mac: r.get(2)?,
            hostname: r.get(3)?,
            client_id: r.get(4)?,
            expires: r.get(5)?,
        })
    })?;
    let mut sources = rows_by_router(conn, EXPORT_SOURCES_SQL, ids, |r| {
        Ok(ExportSource {
            kind: r.get(1)?,
            name: r.get(2)?,
            state: r.get(3)?,
            skipped: r.get(4)?,
            detail: r.get(5)?,
            updated: iso_ms(r.get(6)?),
        })
    })?;
    let mut system = rows_by_router(conn, EXPORT_SYSTEM_SQL, ids, |r| {
        Ok(ExportSystem {
            report_time: iso_ms(r.get(1)?),
            uptime_s: r.get(2)?,
            load: [r.get(3)?, r.get(4)?, r.get(5)?],
            cpu_permille: r.get(6)?,
            mem_total_kb: r.get(7)?,
            mem_available_kb: r.get(8)?,
            disk_mount: r.get(9)?,
            disk_used_bytes: r.get(10)?,
            disk_total_bytes: r.get(11)?,
        })
    })?;
    let list: Vec<ExportRouter<'_>> = routers
        .iter()
        .map(|r| ExportRouter {
            id: r.id,
            name: &r.name,
            site: &r.site,
            hostname: &r.hostname,
            model: &r.model,
            release: &r.release,
            agent_version: &r.agent_version,
            status: r.status(now),
            last_seen: r.last_seen_ms.map(iso_ms),
            revoked_at: r.revoked_at,
            uptime_s: r.uptime_s,
            system: system.remove(&r.id).and_then(|mut v| v.pop()),
            interfaces: ifaces.remove(&r.id).unwrap_or_default(),
            wireless: wireless.remove(&r.id).unwrap_or_default(),
            stations: stations.remove(&r.id).unwrap_or_default(),
            leases: leases.remove(&r.id).unwrap_or_default(),
            wireguard_peers: wg.remove(&r.id).unwrap_or_default(),
            openvpn_clients: ovpn.remove(&r.id).unwrap_or_default(),
            sources: sources.remove(&r.id).unwrap_or_default(),
        })
        .collect();
    let doc = ExportDoc {
        exported_at: iso_ms(now),
        exported_at_ms: now,
        next_cursor,
        collector: ExportCollector {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s,
        },
        router_count: list.len(),
        routers: list,
    };
    let mut body = Vec::with_capacity(1 << 20);
    serde_json::to_writer_pretty(&mut body, &doc)
        .map_err(|e| ApiError::internal(format!("cannot encode the export: {e}")))?;
    Ok(body)
}

/// Query of `GET /api/export`: one page of the fleet (see `super::paging`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Routers per page (default 100; above 1000 means 1000).
    #[param(schema_with = super::paging::limit_schema)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (absent: the first page).
    #[param(schema_with = super::paging::cursor_schema)]
    pub cursor: Option<String>,
}

/// Every router's current data (latest report's samples and current state) as a JSON download,
/// a page of routers at a time (`limit`, `cursor`; `next_cursor` names the next page).
#[utoipa::path(get, path = "/api/export", tag = "monitor", params(ExportQuery),
    responses((status = 200, description = "JSON document, served as an attachment `routerstats-export-<UTC time>.json`. \
               One page of at most `limit` routers (default 100); `next_cursor` is \
               the `cursor` of the next page, `null` on the last (also in the `Link` (rel=\"next\") and `X-Next-Cursor` headers). \
               Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old; after new \
               reports a cached answer is still served while one background task recomputes it; `exported_at` is when it was made",
               body = Object, content_type = "application/json"),
              (status = 400, description = "Bad `limit` or `cursor`"),
              (status = 401, description = "Missing or unknown API key")),
    security(("api_key" = [])))]
pub async fn export(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = q.map_err(bad_query)?;
    let page = Page::parse(q.limit.as_deref(), q.cursor.as_deref())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let started = state.started;
    let bounds = super::with_read(&state, move |c| bounds(c, page).map_err(db_err)).await?;
    let key = super::cache::key("/api/export", &[("page", &bounds)]);
    let next = bounds.next_cursor.clone();
    let mut resp = super::cache::cached(&state, &key, "application/json", move |c| {
        export_body(c, now_ms(), started.elapsed().as_secs(), &bounds).map(Into::into)
    })
    .await?;
    set_next_headers(&mut resp, &uri, next.as_deref());
    // The file is named after the download time (`exported_at` in it is when it was made).
    let name = format!(
        "attachment; filename=\"routerstats-export-{}.json\"",
        compact_utc(now_ms())
    );
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// GET /api/logs
// ---------------------------------------------------------------------------------------------

/// Query of `GET /api/logs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Lines to return, newest last (1..=1000, default 100).
    #[param(pattern = "^\\s*0*([1-9][0-9]{0,2}|1000)\\s*$")]
    pub count: Option<String>,
    /// Minimum level: `error`, `warn`, `info`, `debug` or `trace`.
    #[param(
        pattern = "^\\s*([Ee][Rr][Rr][Oo][Rr]|[Ww][Aa][Rr][Nn]([Ii][Nn][Gg])?|[Ii][Nn][Ff][Oo]|[Dd][Ee][Bb][Uu][Gg]|[Tt][Rr][Aa][Cc][Ee])\\s*$"
    )]
    pub level: Option<String>,
    /// `true` empties the buffer (admin key required); also `1/yes/on`, `0/no/off`, any case.
    #[param(
        pattern = "^\\s*([Tt][Rr][Uu][Ee]|1|[Yy][Ee][Ss]|[Oo][Nn]|[Ff][Aa][Ll][Ss][Ee]|0|[Nn][Oo]|[Oo][Ff][Ff]|)\\s*$"
    )]
    pub clear: Option<String>,
}

/// Answer of `GET /api/logs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogsResponse {
    pub logs: Vec<LogLine>,
    /// Lines in the buffer (all levels).
    pub buffered: usize,
    pub capacity: usize,
}

/// Answer of `GET /api/logs?clear=true`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogsCleared {
    /// Lines removed.
    pub cleared: usize,
    pub message: String,
    /// `success`.
    pub status: String,
}

/// The two answers of `GET /api/logs` (for the document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LogsAnswer {
    Lines(LogsResponse),
    Cleared(LogsCleared),
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be true or false"
        ))),
    }
}

/// Recent collector log lines, or `?clear=true` (admin) to empty the buffer.
#[utoipa::path(get, path = "/api/logs", tag = "monitor", params(LogsQuery),
    responses((status = 200, description = "Log lines, or `{status, message, cleared}` after a clear", body = LogsAnswer),
              (status = 400, description = "Bad count, level or clear value"),
              (status = 401, description = "Missing or unknown API key"),
              (status = 403, description = "Clearing needs an admin key")),
    security(("api_key" = [])))]
pub async fn logs(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = q.map_err(bad_query)?;
    let clear = match q.clear.as_deref() {
        Some(v) => parse_bool("clear", v)?,
        None => false,
    };
    let count = match q.count.as_deref() {
        None => LOG_COUNT_DEFAULT,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=LOG_COUNT_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "count must be a whole number from 1 to {LOG_COUNT_MAX}"
                )))
            }
        },
    };
    let min = match q.level.as_deref() {
        None => 1,
        Some(v) => parse_level(v).ok_or_else(|| {
            ApiError::bad_request("level must be one of error, warn, info, debug, trace")
        })?,
    };
    let ring = log_ring();
    if clear {
        let caller = require_role(&state, &headers, Role::Admin).await?;
        let cleared = ring.clear();
        tracing::info!(by = %caller.key, cleared, "log buffer cleared via API");
        return Ok(Json(LogsAnswer::Cleared(LogsCleared {
            cleared,
            message: "Logs cleared".into(),
            status: "success".into(),
        }))
        .into_response());
    }
    Ok(Json(LogsAnswer::Lines(LogsResponse {
        logs: ring.recent(count, min),
        buffered: ring.len(),
        capacity: ring.capacity(),
    }))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// GET /api/pppoe_interfaces
// ---------------------------------------------------------------------------------------------

/// One PPPoE interface of `/api/pppoe_interfaces`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PppoeInterface {
    pub router_id: i64,
    pub router: String,
    pub site: Option<String>,
    pub name: String,
    /// Always `pppoe` (RouterOS says `pppoe-in`/`pppoe-out`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The router is online (the interface was in its latest report).
    pub running: bool,
    /// Cumulative counters from the latest report.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Latest rates (bits per second over the last report interval); null right after an agent
    /// start or a counter reset.
    pub rx_rate: Option<u64>,
    pub tx_rate: Option<u64>,
    /// No source (the agent does not read PPP addresses): always null.
    pub address: Option<String>,
    pub last_update: Option<String>,
}

/// Totals of `/api/pppoe_interfaces`: over the interfaces listed (this page's routers).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PppoeAggregate {
    /// PPP accounts (secrets) have no source on OpenWrt: null.
    pub total_accounts: Option<u64>,
    /// PPPoE interfaces in the routers' latest reports.
    pub active_sessions: u64,
    /// PPPoE interfaces on online routers.
    pub online_accounts: u64,
    /// PPPoE interfaces on routers that are not online.
    pub offline_accounts: u64,
    pub enabled_accounts: Option<u64>,
    pub disabled_accounts: Option<u64>,
    /// Sum of the rx (download) counters.
    pub total_download_bytes: u64,
    pub total_upload_bytes: u64,
    pub total_rx_rate: u64,
    pub total_tx_rate: u64,
    pub last_updated: String,
}

/// Answer of `GET /api/pppoe_interfaces`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PppoeResponse {
    pub pppoe_interfaces: Vec<PppoeInterface>,
    pub aggregate_stats: PppoeAggregate,
    pub current_time: String,
    pub success: bool,
}

/// The PPPoE interfaces of the newest report of the non-revoked routers with `?1 < id <= ?2`.
const PPPOE_SQL: &str = "SELECT r.id, s.name, s.rx_bytes, s.tx_bytes, s.rx_packets, s.tx_packets, s.rx_bps, s.tx_bps, s.ts_ms \
     FROM routers r CROSS JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE r.revoked_at IS NULL AND s.kind = 'pppoe' AND r.id > ?1 AND r.id <= ?2 ORDER BY r.name, s.name";

/// PPPoE interfaces of every router with their latest counters and rates, a page of routers
/// at a time.
#[utoipa::path(get, path = "/api/pppoe_interfaces", tag = "monitor", params(PageQuery),
    responses((status = 200, description = "PPPoE interfaces and totals: the interfaces of one page of routers in router \
        id order (`limit`, default 100, at most 1000; `cursor`), listed by router name; `aggregate_stats` sums this page; \
        the next page's cursor is in the `X-Next-Cursor` and `Link` (rel=\"next\") headers, absent on the last page", body = PppoeResponse),
              (status = 400, description = "Bad limit or cursor"),
              (status = 401, description = "Missing or unknown API key")),
    security(("api_key" = [])))]
pub async fn pppoe_interfaces(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let page = q.map_err(bad_query)?.0.page()?;
    let now = now_ms();
    let (routers, rows, next) = with_read(&state, move |c| {
        let b = bounds(c, page).map_err(db_err)?;
        let routers = super::fleet::load_routers_of(c, &b)?;
        let mut st = c.prepare_cached(PPPOE_SQL).map_err(db_err)?;
        let rows = st
            .query_map([b.after, b.last], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    [
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ],
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            })
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        Ok((routers, rows, b.next_cursor))
    })
    .await?;
    let by_id: HashMap<i64, &RouterInfo> = routers.iter().map(|r| (r.id, r)).collect();
    let mut agg = PppoeAggregate {
        total_accounts: None,
        active_sessions: 0,
        online_accounts: 0,
        offline_accounts: 0,
        enabled_accounts: None,
        disabled_accounts: None,
        total_download_bytes: 0,
        total_upload_bytes: 0,
        total_rx_rate: 0,
        total_tx_rate: 0,
        last_updated: iso_ms(now),
    };
    let mut list = Vec::with_capacity(rows.len());
    for (rid, name, [rx, tx, rxp, txp], rx_bps, tx_bps, ts) in rows {
        let Some(r) = by_id.get(&rid) else { continue };
        let running = r.online(now);
        agg.active_sessions += 1;
        if running {
            agg.online_accounts += 1;
        } else {
            agg.offline_accounts += 1;
        }
        agg.total_download_bytes = agg.total_download_bytes.saturating_add(to_u64(rx));
        agg.total_upload_bytes = agg.total_upload_bytes.saturating_add(to_u64(tx));
        agg.total_rx_rate = agg
            .total_rx_rate
            .saturating_add(rx_bps.map(to_u64).unwrap_or(0));
        agg.total_tx_rate = agg
            .total_tx_rate
            .saturating_add(tx_bps.map(to_u64).unwrap_or(0));
        list.push(PppoeInterface {
            router_id: rid,
            router: r.name.clone(),
            site: r.site.clone(),
            name,
            kind: "pppoe".to_string(),
            running,
            rx_bytes: to_u64(rx),
            tx_bytes: to_u64(tx),
            rx_packets: to_u64(rxp),
            tx_packets: to_u64(txp),
            rx_rate: rx_bps.map(to_u64),
            tx_rate: tx_bps.map(to_u64),
            address: None,
            last_update: Some(iso_ms(ts)),
        });
    }
    let body = PppoeResponse {
        pppoe_interfaces: list,
        aggregate_stats: agg,
        current_time: iso_ms(now),
        success: true,
    };
    Ok(paged_json(&body, &uri, next.as_deref()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::fleet::{find_router, is_online, ROUTER_INFO_SQL};
    use crate::api::log_capture::LogCapture;
    use crate::store::schema::MIGRATIONS;
    use serde_json::{json, Value};

    pub(crate) fn empty_db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        // `reports_all` and the other `<table>_all` virtual tables, as every collector
        // connection has them.
        crate::store::sealed::register(&c).unwrap();
        for m in MIGRATIONS {
            c.execute_batch(m).unwrap();
        }
        c
    }

    /// The plan of `sql` as text, one detail per line.
    pub(crate) fn plan(c: &Connection, sql: &str, n_params: usize) -> String {
        let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let params: Vec<i64> = vec![0; n_params];
        let rows = st
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
    }

    /// No full scan of a sample, report or rollup table.
    pub(crate) fn assert_no_big_scan(plan: &str) {
        for t in [
            "interface_samples",
            "station_samples",
            "wg_peer_samples",
            "ovpn_client_samples",
            "reports",
            "interface_rollup_5m",
            "interface_rollup_1h",
        ] {
            for line in plan.lines() {
                let scans = line.starts_with("SCAN") && line.split_whitespace().nth(1) == Some(t);
                assert!(!scans, "full scan of {t}:\n{plan}");
            }
        }
    }

    #[test]
    fn queries_use_indexes() {
        let c = empty_db();
        for (sql, n) in [
            (format!("{ROUTER_INFO_SQL} ORDER BY r.name"), 0),
            (INGEST_SQL.to_string(), 1),
            (PPPOE_SQL.to_string(), 2),
            (EXPORT_IFACES_SQL.to_string(), 2),
            (EXPORT_STATIONS_SQL.to_string(), 2),
            (EXPORT_WG_SQL.to_string(), 2),
            (EXPORT_OVPN_SQL.to_string(), 2),
            (EXPORT_SYSTEM_SQL.to_string(), 2),
            (EXPORT_WIRELESS_SQL.to_string(), 2),
            (EXPORT_LEASES_SQL.to_string(), 2),
            (EXPORT_SOURCES_SQL.to_string(), 2),
        ] {
            let p = plan(&c, &sql, n);
            assert_no_big_scan(&p);
        }
        // The interval subquery and the ingest count use the (router_id, ts_ms) index.
        assert!(plan(&c, &format!("{ROUTER_INFO_SQL} ORDER BY r.name"), 0)
            .contains("reports_router_ts"));
        assert!(plan(&c, INGEST_SQL, 1).contains("reports_router_ts"));
        assert!(plan(&c, PPPOE_SQL, 2).contains("PRIMARY KEY"));
        // A page reads only its routers' range.
        for sql in [EXPORT_STATIONS_SQL, EXPORT_LEASES_SQL] {
            let p = plan(&c, sql, 2);
            assert!(p.contains(">? AND") && p.contains("<?)"), "{p}");
        }
    }

    #[test]
    fn online_rule() {
        let now = 1_000_000_000;
        assert!(!is_online(now, None, Some(30_000)));
        // The 90 s floor applies to short intervals.
        assert!(is_online(now, Some(now - 89_000), Some(200)));
        assert!(is_online(now, Some(now - 90_000), None));
        assert!(!is_online(now, Some(now - 90_001), Some(200)));
        // Three intervals when that is longer.
        assert!(is_online(now, Some(now - 179_000), Some(60_000)));
        assert!(!is_online(now, Some(now - 181_000), Some(60_000)));
        // Nonsense intervals fall back to the floor.
        assert!(!is_online(now, Some(now - 100_000), Some(-5)));
        // A clock ahead of ours still counts as seen.
        assert!(is_online(now, Some(now + 5_000), None));
        // Extremes saturate instead of overflowing.
        assert!(!is_online(i64::MAX, Some(i64::MIN), None));
        assert!(is_online(i64::MAX, Some(i64::MIN), Some(i64::MAX)));
    }

    #[test]
    fn router_status_words() {
        let base = RouterInfo {
            id: 1,
            name: "a".into(),
            site: None,
            hostname: "a".into(),
            model: None,
            release: None,
            agent_version: None,
            last_seen_ms: Some(1000),
            last_report_ms: Some(1000),
            last_report_id: Some(1),
            revoked_at: None,
            uptime_s: None,
            interval_ms: None,
        };
        assert_eq!(base.status(2000), "online");
        assert_eq!(base.status(1000 + ONLINE_FLOOR_MS + 1), "offline");
        assert_eq!(
            RouterInfo {
                last_seen_ms: None,
                ..base.clone()
            }
            .status(0),
            "never_reported"
        );
        assert_eq!(
            RouterInfo {
                revoked_at: Some(5),
                ..base
            }
            .status(2000),
            "revoked"
        );
    }

    #[test]
    fn times_format() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(compact_utc(1_700_000_000_123), "20231114T221320Z");
        // Out of range: the number itself, no panic.
        assert_eq!(iso_ms(i64::MAX), i64::MAX.to_string());
        assert!(!iso_ms(i64::MIN).is_empty());
    }

    #[test]
    fn capture_layer_records_message_and_fields() {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(LogCapture);
        let marker = "capture-test-7f3a";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(router = "ap-1", count = 3, "{marker} happened");
        });
        let line = log_ring()
            .recent(LOG_CAPACITY, 1)
            .into_iter()
            .find(|l| l.message.contains(marker))
            .unwrap();
        assert_eq!(line.level, "WARN");
        assert!(line.message.contains("router=ap-1"), "{}", line.message);
        assert!(line.message.contains("count=3"), "{}", line.message);
        assert!(line.target.contains("monitor"), "{}", line.target);
    }

    #[test]
    fn bool_and_router_lookup() {
        assert!(parse_bool("clear", "TRUE").unwrap());
        assert!(!parse_bool("clear", "0").unwrap());
        assert!(parse_bool("clear", "maybe").is_err());
        let c = empty_db();
        c.execute_batch(
            "INSERT INTO routers (id, name, site, hostname, cert_fingerprint, cert_not_after, enrolled_at) VALUES \
             (7, 'ap-7', 'home', 'h7', 'f7', 0, 0), (8, '7', 'home', 'h8', 'f8', 0, 0);",
        )
        .unwrap();
        assert_eq!(find_router(&c, "7").unwrap().map(|r| r.id), Some(7));
        assert_eq!(find_router(&c, "AP-7").unwrap().map(|r| r.id), Some(7));
        assert_eq!(find_router(&c, "nope").unwrap(), None);
        assert_eq!(find_router(&c, "99").unwrap(), None);
        assert_eq!(super::super::fleet::load_routers(&c).unwrap().len(), 2);
    }

    #[test]
    fn export_of_an_empty_fleet() {
        let c = empty_db();
        let doc: Value = serde_json::from_slice(
            &export_body(
                &c,
                1_700_000_000_000,
                5,
                &bounds(&c, Page::default()).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(doc["router_count"], 0);
        assert_eq!(doc["routers"], json!([]));
        assert_eq!(doc["exported_at"], "2023-11-14T22:13:20.000Z");
    }

    /// The typed export serializes byte for byte like the `serde_json::Value` document it
    /// replaced (whose maps sort their keys): every field is in alphabetical order.
    #[test]
    fn export_fields_are_in_map_order() {
        let c = empty_db();
        c.execute_batch(
            "INSERT INTO routers (id, name, site, hostname, cert_fingerprint, cert_not_after, enrolled_at, \
             last_seen_ms, last_report_ms, last_report_id) VALUES (1, 'ap-1', 'home', 'h1', 'f1', 0, 0, 100, 100, 1); \
             INSERT INTO reports (id, router_id, boot_id, seq, ts_ms, received_ms, dropped_reports, uptime_s, load1, \
             load5, load15, cpu_permille, mem_total_kb, mem_available_kb, disk_mount, disk_used_bytes, disk_total_bytes, \
             interface_count, station_count, lease_count, wg_peer_count, ovpn_client_count) \
             VALUES (1, 1, x'00', 1, 100, 100, 0, 5, 0.5, NULL, 0.25, 10, 1000, 500, '/overlay', 1, 2, 1, 1, 1, 0, 0); \
             INSERT INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, tx_bytes, rx_packets, tx_packets, \
             rx_errs, tx_errs, rx_drop, tx_drop, rx_bps, tx_bps) VALUES (1, 100, 'eth0', 'ethernet', 1, 2, 3, 4, 5, 6, 7, 8, 9, NULL); \
             INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid, rx_bytes, tx_bytes, connected_s) \
             VALUES (1, 100, 'wlan0', 'aa:bb:cc:dd:ee:ff', 'Home', 1, 2, 3); \
             INSERT INTO wireless_interfaces (router_id, name, type, ssid, txpower_dbm, updated_ms) VALUES (1, 'wlan0', 'AP', 'Home', 20.5, 0); \
             INSERT INTO wireless_interfaces (router_id, name, type, ssid, links, updated_ms) VALUES (1, 'ap-mld0', 'AP', 'Seven', \
             '[{\"link_id\":2,\"addr\":null,\"channel\":37,\"freq_mhz\":6135,\"width_mhz\":320,\"center1_mhz\":6265,\"center2_mhz\":null,\"txpower_dbm\":21.5}]', 0); \
             INSERT INTO leases (router_id, ip, mac, hostname, updated_ms) VALUES (1, '10.0.0.2', 'aa:bb:cc:dd:ee:ff', 'tab', 0); \
             INSERT INTO source_status (router_id, kind, name, state, updated_ms) VALUES (1, 'openvpn', '/tmp/x.status', 'ok', 0);",
        )
        .unwrap();
        let body = export_body(
            &c,
            1_700_000_000_000,
            5,
            &bounds(&c, Page::default()).unwrap(),
        )
        .unwrap();
        let as_map: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, serde_json::to_vec_pretty(&as_map).unwrap());
        let r = &as_map["routers"][0];
        assert_eq!(r["system"]["load"], json!([0.5, null, 0.25]));
        assert_eq!(r["interfaces"][0]["rx_errors"], 5);
        assert_eq!(r["stations"][0]["connected_time"], 3);
        assert_eq!(r["wireless"][0]["type"], "AP");
        // ap-mld0 sorts first: its links, each with its own width.
        assert_eq!(r["wireless"][0]["links"][0]["width_mhz"], 320);
        assert_eq!(r["wireless"][1]["links"], json!([]));
        assert_eq!(r["leases"][0]["hostname"], "tab");
        assert_eq!(r["sources"][0]["state"], "ok");
        assert_eq!(r["status"], "offline");
        assert_eq!(as_map["collector"]["uptime_s"], 5);
    }

    /// Pages partition the fleet by router id: every router once, each with only its own rows,
    /// `next_cursor` chaining the pages and `null` on the last.
    #[test]
    fn export_pages_through_the_fleet() {
        let c = empty_db();
        for id in [3, 5, 9] {
            c.execute_batch(&format!(
                "INSERT INTO routers (id, name, hostname, cert_fingerprint, cert_not_after, enrolled_at, last_report_ms) \
                 VALUES ({id}, 'ap-{id}', 'h', 'f{id}', 0, 0, 100); \
                 INSERT INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, tx_bytes, rx_packets, tx_packets, \
                 rx_errs, tx_errs, rx_drop, tx_drop) VALUES ({id}, 100, 'eth{id}', 'ethernet', 1, 2, 3, 4, 5, 6, 7, 8); \
                 INSERT INTO leases (router_id, ip, mac, hostname, updated_ms) VALUES ({id}, '10.0.0.{id}', NULL, NULL, 0);"
            ))
            .unwrap();
        }
        let page = |limit: &str, cursor: Option<&str>| -> Value {
            let p = Page::parse(Some(limit), cursor).unwrap();
            serde_json::from_slice(
                &export_body(&c, 1_700_000_000_000, 5, &bounds(&c, p).unwrap()).unwrap(),
            )
            .unwrap()
        };
        let all = page("100", None);
        assert_eq!(all["router_count"], 3);
        assert_eq!(all["next_cursor"], Value::Null);
        let mut cursor: Option<String> = None;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let p = page("2", cursor.as_deref());
            for r in p["routers"].as_array().unwrap() {
                let id = r["id"].as_i64().unwrap();
                assert_eq!(r["interfaces"][0]["name"], format!("eth{id}"));
                assert_eq!(r["leases"].as_array().unwrap().len(), 1);
                seen.push(id);
            }
            cursor = p["next_cursor"].as_str().map(String::from);
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, vec![3, 5, 9]);
        assert_eq!(page("2", None)["next_cursor"], "r5");
        assert_eq!(page("2", Some("r9"))["routers"], json!([]));
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc = <Doc as utoipa::OpenApi>::openapi();
        for path in [
            "/api/health",
            "/api/performance",
            "/api/export",
            "/api/logs",
            "/api/pppoe_interfaces",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
        assert!(serde_json::to_string(&doc).is_ok());
    }
}
