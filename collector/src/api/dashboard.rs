//! Route group `dashboard`: the web dashboard an operator keeps open on a wall screen or a
//! tablet, and the two JSON endpoints it reads.
//!
//! - `GET /` and `GET /assets/{file}`: the page (HTML, CSS, JS, icon), embedded in the binary
//!   with `include_str!`, no CDN, no login needed to load it (the page asks for an API key and
//!   keeps it in `sessionStorage`). Served with a strict Content-Security-Policy.
//!   `GET /` is also the WireGuard manager's "backend status" (`../shared/api/wireguard-manager.md`):
//!   API clients (an `Accept` preferring `application/json`, any `Accept` without `text/html`,
//!   or none) get `{status, wireguard_config}` as JSON ([`RootStatus`]); browsers get the page.
//! - `GET /api/fleet?duration=15m|1h|1d|7d&site=&q=` (read key): one row per router (not
//!   revoked) with online state, facts, system numbers from its newest report, wireless client
//!   count and WAN traffic over the window, plus fleet totals.
//! - `GET /api/routers/{id}?duration=` (read key; id or name): one router with its interfaces
//!   (traffic over the window), wireless clients grouped by SSID (hostname and IP from DHCP
//!   leases), leases, WireGuard peers (handshake age and status), OpenVPN clients and the state
//!   of each data source.
//!
//! Everything comes from the router's newest report (`routers.last_report_id` /
//! `last_report_ms`, range scans on the sample tables' primary keys) and, for windowed traffic,
//! from raw interface samples (15m, 1h; index `interface_samples_key`), the 5-minute rollup (1d)
//! or the 1-hour rollup (7d), by their primary keys, like the gateway group's `/api/gateways`.
//! From 64 routers on, `/api/fleet` reads each table once for all routers instead (newest
//! interfaces and stations by the sample tables' keys, window sums by bucket ranges: raw edges
//! plus 5-minute buckets for 15m/1h, 5-minute edges plus 1-hour buckets for 1d), with the very
//! same sums.
//! The charts use the gateway group's
//! `/api/gateway/{id}/port/{port}/traffic`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::readpool::db_err;
use super::window::{open_bounds, parse_duration, port_traffic, window_sums, SumScope, Window};
use super::{require_role, with_read, ApiError, ApiState};
use crate::clock::now_ms;
use crate::pki::tokens::Role;
use crate::store::MAX_NAME_CHARS;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const DASHBOARD_CSS: &str = include_str!("../../assets/dashboard.css");
const DASHBOARD_JS: &str = include_str!("../../assets/dashboard.js");
const ICON_SVG: &str = include_str!("../../assets/icon.svg");

/// Content-Security-Policy of the page: only its own scripts, styles and API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A WireGuard peer whose latest handshake is older than this has no live session (WireGuard
/// rekeys every 2 minutes and drops keys after 3).
pub const WG_ACTIVE_S: i64 = 180;
/// Longest `q` / `site` filter and router id accepted.
const MAX_FILTER_CHARS: usize = MAX_NAME_CHARS;
#[cfg(test)]
const HOUR_MS: i64 = 3_600_000;

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/api/fleet", get(fleet))
        .route("/api/routers/{id}", get(router_detail))
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(index, fleet, router_detail),
    components(schemas(
        RootStatus,
        FleetResponse,
        FleetTotals,
        FleetRouter,
        RouterDetail,
        RouterFactsOut,
        InterfaceOut,
        SsidGroup,
        WirelessInterfaceOut,
        WirelessClient,
        LeaseOut,
        WgPeerOut,
        OvpnClientOut,
        SourceOut,
        ProbeOut,
        WanAddressOut
    )),
    tags((name = "dashboard", description = "The JSON the web dashboard at / reads"))
)]
pub struct Doc;

// ---------------------------------------------------------------------------------------------
// Static page

fn with_page_headers(mut resp: Response, content_type: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    resp
}

/// `GET /` for API clients: the WireGuard manager's backend status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RootStatus {
    /// `running`: the collector answers (the manager's "backend is up").
    pub status: String,
    /// Where the WireGuard configuration lives. The manager answers its own config directory;
    /// on this fleet each router keeps its WireGuard interfaces and peers in UCI, in
    /// `/etc/config/network` (the file the write routes change through `uci`).
    pub wireguard_config: String,
    /// *(added)* `routerstats-collector`.
    pub service: String,
    /// *(added)* The collector's version.
    pub version: String,
}

/// Where the routers keep their WireGuard configuration (UCI `network`).
pub const WIREGUARD_CONFIG: &str = "/etc/config/network";

/// The q-value of the first media range in `accept` matching `pred` (0 when none does).
fn accept_q(accept: &str, pred: impl Fn(&str) -> bool) -> f32 {
    accept
        .split(',')
        .find_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if !pred(&media) {
                return None;
            }
            // No q: 1; an unreadable q: 0 (the range is ignored).
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
            Some(if q.is_finite() {
                q.clamp(0.0, 1.0)
            } else {
                0.0
            })
        })
        .unwrap_or(0.0)
}

/// True when the client asked for the HTML page: its `Accept` names `text/html` with a
/// q-value above 0 and at least that of `application/json`. No `Accept`, `*/*` alone or an
/// `Accept` without `text/html` means an API client.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let html = accept_q(&accept, |m| m == "text/html");
    let json = accept_q(&accept, |m| m == "application/json");
    html > 0.0 && html >= json
}

/// The dashboard page for browsers; `{status, wireguard_config}` for API clients (open).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "root_status",
    tag = "dashboard",
    security(()),
    params(("Accept" = Option<String>, Header, description = "`text/html` (preferred over `application/json`) gets the dashboard page; anything else, or none, the JSON status")),
    responses(
        (status = 200, description = "JSON `{status, wireguard_config}` for API clients (the WireGuard manager's backend status), the dashboard HTML for browsers; `Vary: Accept`",
         content(
            (RootStatus = "application/json"),
            (String = "text/html")
         )),
    )
)]
pub async fn index(headers: HeaderMap) -> Response {
    let mut resp = if wants_html(&headers) {
        with_page_headers(INDEX_HTML.into_response(), "text/html; charset=utf-8")
    } else {
        let mut r = Json(RootStatus {
            status: "running".into(),
            wireguard_config: WIREGUARD_CONFIG.into(),
            service: "routerstats-collector".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "dashboard.css" => (DASHBOARD_CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON_SVG, "image/svg+xml"),
        _ => return ApiError::new(StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    with_page_headers(body.into_response(), content_type)
}

// ---------------------------------------------------------------------------------------------
// Query input

/// Query of `GET /api/fleet`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FleetQuery {
    /// Window of the WAN traffic sums: `15m`, `1h` (default), `1d` or `7d`.
    #[param(schema_with = Window::schema_or_empty)]
    pub duration: Option<String>,
    /// Only routers of this site (exact, case-insensitive; at most 64 characters).
    #[param(schema_with = super::openapi::pattern::text_64)]
    pub site: Option<String>,
    /// Only routers whose name or site contains this (case-insensitive; at most 64 characters).
    #[param(schema_with = super::openapi::pattern::text_64)]
    pub q: Option<String>,
    /// Routers per page (default 100; above 1000 means 1000).
    #[param(schema_with = super::paging::limit_schema)]
    pub limit: Option<String>,
    /// The cursor of the next page, from the previous page's `X-Next-Cursor` header (or its
    /// `Link` rel="next"); absent: the first page.
    #[param(schema_with = super::paging::cursor_schema)]
    pub cursor: Option<String>,
}

/// Query of `GET /api/routers/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    /// Window of the per-interface traffic sums: `15m`, `1h` (default), `1d` or `7d`.
    #[param(schema_with = Window::schema_or_empty)]
    pub duration: Option<String>,
}

/// A filter string: trimmed, lower-cased, None when empty; 400 when too long or with control
/// characters.
fn filter_arg(name: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > MAX_FILTER_CHARS {
        return Err(ApiError::bad_request(format!(
            "{name} is longer than {MAX_FILTER_CHARS} characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name} has control characters"
        )));
    }
    Ok(Some(v.to_lowercase()))
}

// ---------------------------------------------------------------------------------------------
// Response types

/// Answer of `GET /api/fleet`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FleetResponse {
    /// Collector time of the answer (Unix ms).
    pub generated_at_ms: i64,
    /// The window of the traffic sums (`15m`, `1h`, `1d`, `7d`).
    pub duration: String,
    pub totals: FleetTotals,
    /// Every site of the (unfiltered) fleet, sorted; routers without a site are not listed.
    pub sites: Vec<String>,
    /// The routers of this page (`limit`/`cursor`, see the route), by name.
    pub routers: Vec<FleetRouter>,
}

/// Sums over the routers listed (those of this page).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct FleetTotals {
    pub routers: u64,
    pub routers_online: u64,
    /// Wireless clients of the online routers.
    pub clients: u64,
    /// WAN bytes received over the window (all listed routers).
    pub wan_rx_bytes: u64,
    pub wan_tx_bytes: u64,
    /// Current WAN rates of the online routers (bit/s).
    pub wan_rx_bps: u64,
    pub wan_tx_bps: u64,
}

/// One router of the overview.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FleetRouter {
    pub id: i64,
    pub name: String,
    pub site: Option<String>,
    pub hostname: String,
    pub model: Option<String>,
    pub online: bool,
    /// `online`, `offline`, `never` (no report yet) or `revoked`.
    pub status: String,
    /// Collector time of the newest report (Unix ms).
    pub last_seen_ms: Option<i64>,
    /// Seconds since then.
    pub last_seen_age_s: Option<i64>,
    /// Milliseconds between the two newest reports (agent clock: the agent's interval).
    pub report_interval_ms: Option<i64>,
    pub uptime_s: Option<i64>,
    /// CPU busy share over the agent's last interval.
    pub cpu_percent: Option<f64>,
    pub load1: Option<f64>,
    pub mem_total_kb: Option<i64>,
    pub mem_available_kb: Option<i64>,
    pub mem_used_percent: Option<f64>,
    /// The first disk the agent reports (`/overlay` by default).
    pub disk_mount: Option<String>,
    pub disk_used_bytes: Option<i64>,
    pub disk_total_bytes: Option<i64>,
    pub disk_used_percent: Option<f64>,
    /// Stations on AP interfaces (mesh and client-mode links are not clients).
    pub clients: i64,
    /// The interface counted as WAN: a PPPoE interface, else `wan`/`wanN`; None when neither.
    pub wan_interface: Option<String>,
    /// WAN bytes over the window; None when no sample in it had a delta.
    pub wan_rx_bytes: Option<i64>,
    pub wan_tx_bytes: Option<i64>,
    /// WAN rates of the newest report (bit/s).
    pub wan_rx_bps: Option<i64>,
    pub wan_tx_bps: Option<i64>,
}

/// Answer of `GET /api/routers/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouterDetail {
    pub generated_at_ms: i64,
    pub duration: String,
    pub router: FleetRouter,
    pub facts: RouterFactsOut,
    /// Interfaces of the newest report (loopback left out), by name.
    pub interfaces: Vec<InterfaceOut>,
    /// Wireless interfaces and their clients, one group per SSID (interfaces without an SSID,
    /// like mesh points, get a group each with `ssid` null).
    pub ssids: Vec<SsidGroup>,
    pub leases: Vec<LeaseOut>,
    pub wireguard: Vec<WgPeerOut>,
    pub openvpn: Vec<OvpnClientOut>,
    pub sources: Vec<SourceOut>,
    /// The agent's active ICMP probes over the window, one row per target (gateways first);
    /// empty for agents before active probes or with probes turned off.
    pub probes: Vec<ProbeOut>,
    /// WAN addresses (`address/prefix`, by device) from the newest report.
    pub wan_addresses: Vec<WanAddressOut>,
}

/// One probed target of the router page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProbeOut {
    pub target: String,
    /// `gateway` (a default route's next hop) or `target` (configured).
    pub role: String,
    pub name: String,
    pub sent: i64,
    pub received: i64,
    pub loss_percent: Option<f64>,
    /// Mean and largest round-trip time of the replies, ms.
    pub latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
}

/// One WAN address of the router page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WanAddressOut {
    pub device: String,
    pub addr: String,
}

/// Facts of a router beyond the overview row.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouterFactsOut {
    pub board: Option<String>,
    pub release: Option<String>,
    pub revision: Option<String>,
    pub target: Option<String>,
    pub kernel: Option<String>,
    pub agent_version: Option<String>,
    pub arch: Option<String>,
    /// Unix seconds.
    pub enrolled_at: i64,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    /// Agent time of the newest report (Unix ms).
    pub last_report_ms: Option<i64>,
    pub load: Option<[f64; 3]>,
}

/// One network interface.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InterfaceOut {
    pub name: String,
    /// `ethernet`, `wifi`, `bridge`, `pppoe`, `wireguard`, `tunnel`, `other`.
    pub kind: String,
    pub wan: bool,
    /// Counters as read.
    pub rx_bytes: i64,
    pub tx_bytes: i64,
    /// Rates of the newest report (bit/s).
    pub rx_bps: Option<i64>,
    pub tx_bps: Option<i64>,
    /// Bytes over the window.
    pub window_rx_bytes: Option<i64>,
    pub window_tx_bytes: Option<i64>,
    pub rx_errs: i64,
    pub tx_errs: i64,
    pub rx_drop: i64,
    pub tx_drop: i64,
}

/// Wireless interfaces sharing an SSID, and their clients.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SsidGroup {
    pub ssid: Option<String>,
    pub interfaces: Vec<WirelessInterfaceOut>,
    /// By hostname (clients without one last), then MAC.
    pub clients: Vec<WirelessClient>,
}

/// One wireless interface (`iw dev`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WirelessInterfaceOut {
    pub name: String,
    /// `AP`, `mesh point`, `managed`, ...
    #[serde(rename = "type")]
    pub iftype: String,
    pub channel: Option<i64>,
    pub freq_mhz: Option<i64>,
    pub width_mhz: Option<i64>,
    pub txpower_dbm: Option<f64>,
    /// The links of a Wi-Fi 7 multi-link (MLD) interface, as the agent reports them
    /// (`link_id`, `addr`, `channel`, `freq_mhz`, `width_mhz`, `center1_mhz`, `center2_mhz`,
    /// `txpower_dbm`); empty for a single-link interface.
    #[schema(value_type = Vec<Object>)]
    pub links: Vec<routerstats_shared::WifiLink>,
}

/// One associated station.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WirelessClient {
    pub mac: String,
    pub interface: String,
    /// From a DHCP lease with this MAC (this router's leases first, then any router's).
    pub hostname: Option<String>,
    pub ip: Option<String>,
    pub signal_dbm: Option<i64>,
    pub signal_avg_dbm: Option<i64>,
    pub tx_bitrate_kbps: Option<i64>,
    pub rx_bitrate_kbps: Option<i64>,
    pub expected_throughput_kbps: Option<i64>,
    pub rx_bytes: Option<i64>,
    pub tx_bytes: Option<i64>,
    pub rx_bps: Option<i64>,
    pub tx_bps: Option<i64>,
    pub connected_s: Option<i64>,
    pub inactive_ms: Option<i64>,
    /// Share of the last report interval the radio spent sending to and receiving from the
    /// station, per mille (from the driver's airtime counters; null without them).
    pub airtime_permille: Option<i64>,
}

/// One DHCP lease.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeaseOut {
    pub ip: String,
    pub mac: Option<String>,
    pub hostname: Option<String>,
    pub client_id: Option<String>,
    /// Unix seconds; None for an infinite lease.
    pub expires: Option<i64>,
    /// Seconds left (negative once expired); None for an infinite lease.
    pub expires_in_s: Option<i64>,
}

/// One WireGuard peer of the newest report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WgPeerOut {
    pub interface: String,
    pub public_key: String,
    /// The peer's `description` in /etc/config/network.
    pub name: Option<String>,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    /// Unix seconds; None when there has been no handshake.
    pub latest_handshake: Option<i64>,
    /// Seconds between the handshake and the report (router clock on both sides).
    pub handshake_age_s: Option<i64>,
    /// `active` (handshake at most 180 s old), `inactive` or `never`.
    pub status: String,
    pub rx_bytes: i64,
    pub tx_bytes: i64,
    pub rx_bps: Option<i64>,
    pub tx_bps: Option<i64>,
}

/// One OpenVPN client of the newest report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OvpnClientOut {
    /// The status file's instance name.
    pub instance: String,
    pub common_name: String,
    pub real_address: String,
    pub virtual_address: Option<String>,
    pub virtual_ipv6: Option<String>,
    /// Bytes received by the server from the client.
    pub rx_bytes: i64,
    pub tx_bytes: i64,
    pub rx_bps: Option<i64>,
    pub tx_bps: Option<i64>,
    /// Unix seconds.
    pub connected_since: Option<i64>,
    /// Seconds connected as of the report.
    pub connected_s: Option<i64>,
    pub username: Option<String>,
    pub cipher: Option<String>,
}

/// How reading one data source went on the router, as of its newest report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceOut {
    pub kind: String,
    pub name: String,
    /// `ok`, `partial`, `error`, `tool_missing`, `disabled`.
    pub state: String,
    pub skipped: Option<i64>,
    pub detail: Option<String>,
    /// Report time when the state last changed (Unix ms).
    pub updated_ms: i64,
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// The fleet overview.
#[utoipa::path(
    get,
    path = "/api/fleet",
    operation_id = "dashboard_fleet",
    tag = "dashboard",
    params(FleetQuery),
    responses(
        (status = 200, description = "Routers and totals: one page of routers in router id order (`limit`, default \
            100, at most 1000; `cursor`), filtered by `site` and `q` (a page may then hold fewer or none), listed by \
            name; `totals` sum this page's routers, `sites` lists the whole fleet's. The next page's cursor is in the \
            `X-Next-Cursor` and `Link` (rel=\"next\") headers, absent on the last page. \
            Served from the response cache (see `X-Cache`): \
            at most `api_cache_max_age` (default 10 s) old, so the window's end and the online states may lag \
            the request by that much; after new reports a cached answer is still served while one background \
            task recomputes it; a revocation, rename or enrollment shows at once.", body = FleetResponse),
        (status = 400, description = "Bad duration, site, q, limit or cursor"),
        (status = 401, description = "Missing or unknown API key")
    ),
    security(("api_key" = []))
)]
pub async fn fleet(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    query: Result<Query<FleetQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = query.map_err(super::extract::query_rejected)?;
    let window = parse_duration(q.duration.as_deref())?;
    let site = filter_arg("site", q.site.as_deref())?;
    let text = filter_arg("q", q.q.as_deref())?;
    let page = super::paging::page_arg(q.limit.as_deref(), q.cursor.as_deref())?;
    let page = super::with_read(&state, move |c| {
        super::paging::bounds(c, page).map_err(db_err)
    })
    .await?;
    let key = fleet_key(window, site.as_deref(), text.as_deref(), &page);
    let next = page.next_cursor.clone();
    let mut resp = super::cache::cached_json(&state, &key, move |conn| {
        // The window ends when the answer is computed (possibly in a background refresh).
        fleet_answer(
            conn,
            now_ms(),
            window,
            site.as_deref(),
            text.as_deref(),
            &page,
        )
    })
    .await?;
    super::paging::set_next_headers(&mut resp, &uri, next.as_deref());
    Ok(resp)
}

/// The response-cache key of `/api/fleet`: the parsed window, the normalized filters and the
/// page.
fn fleet_key(
    window: Window,
    site: Option<&str>,
    text: Option<&str>,
    page: &super::paging::PageBounds,
) -> String {
    super::cache::key(
        "/api/fleet",
        &[
            ("duration", &window),
            ("site", &site),
            ("q", &text),
            ("page", page),
        ],
    )
}

/// One router in detail.
#[utoipa::path(
    get,
    path = "/api/routers/{id}",
    operation_id = "dashboard_router_detail",
    tag = "dashboard",
    params(
        ("id" = String, Path, description = "Router id, or its name (case-insensitive)", pattern = "^[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]{0,63}[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$"),
        DetailQuery
    ),
    responses(
        (status = 200, description = "The router", body = RouterDetail),
        (status = 400, description = "Bad duration or id"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 404, description = "No such router")
    ),
    security(("api_key" = []))
)]
pub async fn router_detail(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Result<Json<RouterDetail>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = query.map_err(super::extract::query_rejected)?;
    let window = parse_duration(q.duration.as_deref())?;
    let key = id.trim().to_string();
    if key.is_empty() || key.chars().count() > MAX_FILTER_CHARS || key.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "router id must be a number or a name of 1 to {MAX_FILTER_CHARS} characters"
        )));
    }
    let now = now_ms();
    let out = with_read(&state, move |conn| detail_answer(conn, now, window, &key)).await?;
    match out {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no router with id or name {id:?}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// A `routers` row joined with its newest `reports` row.
#[derive(Debug, Clone)]
struct Base {
    id: i64,
    name: String,
    site: Option<String>,
    hostname: String,
    model: Option<String>,
    last_seen_ms: Option<i64>,
    last_report_ms: Option<i64>,
    uptime_s: Option<i64>,
    revoked_at: Option<i64>,
    cpu_permille: Option<i64>,
    load: [Option<f64>; 3],
    mem_total_kb: Option<i64>,
    mem_available_kb: Option<i64>,
    disk_mount: Option<String>,
    disk_used_bytes: Option<i64>,
    disk_total_bytes: Option<i64>,
    facts: RouterFactsOut,
}

const BASE_SQL: &str =
    "SELECT r.id, r.name, r.site, r.hostname, r.model, r.last_seen_ms, r.last_report_ms, \
     coalesce(p.uptime_s, r.uptime_s), r.revoked_at, p.cpu_permille, p.load1, p.load5, p.load15, \
     p.mem_total_kb, p.mem_available_kb, p.disk_mount, p.disk_used_bytes, p.disk_total_bytes, \
     r.board, r.release, r.revision, r.target, r.kernel, r.agent_version, r.arch, r.enrolled_at \
     FROM routers r LEFT JOIN reports p ON p.id = r.last_report_id";

const LATEST_IFACES_SQL: &str = "SELECT name, kind, rx_bps, tx_bps FROM interface_samples \
     WHERE router_id = ?1 AND ts_ms = ?2 ORDER BY name";
const INTERVAL_SQL: &str =
    "SELECT ts_ms FROM reports WHERE router_id = ?1 ORDER BY ts_ms DESC LIMIT 2";
/// [`INTERVAL_SQL`] when the rows hold fewer than two reports (the router was silent for longer
/// than the hot window): the rows and the router's latest sealed `reports` block (`tbl` 6,
/// `store::sealed::REPORTS_TBL`), which together hold its two newest reports.
const INTERVAL_SEALED_SQL: &str = "SELECT ts_ms FROM reports_all WHERE router_id = ?1 \
     AND ts_ms >= (SELECT max(hour_ms) FROM raw_blocks WHERE router_id = ?1 AND tbl = 6) \
     ORDER BY ts_ms DESC LIMIT 2";
const CLIENT_COUNT_SQL: &str =
    "SELECT count(*) FROM station_samples s WHERE s.router_id = ?1 AND s.ts_ms = ?2 \
     AND coalesce((SELECT w.type FROM wireless_interfaces w \
     WHERE w.router_id = s.router_id AND w.name = s.iface), 'AP') IN ('AP', 'AP/VLAN')";
const IFACES_SQL: &str = "SELECT name, kind, rx_bytes, tx_bytes, rx_bps, tx_bps, rx_errs, tx_errs, rx_drop, tx_drop \
     FROM interface_samples WHERE router_id = ?1 AND ts_ms = ?2 AND kind != 'loopback' ORDER BY name";
const LEASES_SQL: &str =
    "SELECT ip, mac, hostname, client_id, expires FROM leases WHERE router_id = ?1";
const LEASE_BY_MAC_SQL: &str = "SELECT hostname, ip FROM leases WHERE mac = ?1 ORDER BY hostname IS NULL, updated_ms DESC LIMIT 1";
const WIRELESS_SQL: &str =
    "SELECT name, type, ssid, channel, freq_mhz, width_mhz, txpower_dbm, links \
     FROM wireless_interfaces WHERE router_id = ?1 ORDER BY name";
const STATIONS_SQL: &str =
    "SELECT iface, mac, ssid, signal_dbm, signal_avg_dbm, tx_bitrate_kbps, rx_bitrate_kbps, \
     expected_throughput_kbps, rx_bytes, tx_bytes, rx_bps, tx_bps, connected_s, inactive_ms, airtime_permille \
     FROM station_samples WHERE router_id = ?1 AND ts_ms = ?2";
const WG_SQL: &str = "SELECT iface, public_key, name, endpoint, allowed_ips, latest_handshake, rx_bytes, tx_bytes, \
     rx_bps, tx_bps FROM wg_peer_samples WHERE router_id = ?1 AND ts_ms = ?2 ORDER BY iface, name, public_key";
const OVPN_SQL: &str = "SELECT instance, common_name, real_address, virtual_address, virtual_ipv6, rx_bytes, tx_bytes, \
     rx_bps, tx_bps, connected_since, username, cipher FROM ovpn_client_samples \
     WHERE router_id = ?1 AND ts_ms = ?2 ORDER BY instance, common_name, real_address";
const SOURCES_SQL: &str =
    "SELECT kind, name, state, skipped, detail, updated_ms FROM source_status \
     WHERE router_id = ?1 ORDER BY kind, name";

fn base_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Base> {
    let load = [r.get(10)?, r.get(11)?, r.get(12)?];
    let revoked_at: Option<i64> = r.get(8)?;
    let last_report_ms: Option<i64> = r.get(6)?;
    Ok(Base {
        id: r.get(0)?,
        name: r.get(1)?,
        site: r.get(2)?,
        hostname: r.get(3)?,
        model: r.get(4)?,
        last_seen_ms: r.get(5)?,
        last_report_ms,
        uptime_s: r.get(7)?,
        revoked_at,
        cpu_permille: r.get(9)?,
        load,
        mem_total_kb: r.get(13)?,
        mem_available_kb: r.get(14)?,
        disk_mount: r.get(15)?,
        disk_used_bytes: r.get(16)?,
        disk_total_bytes: r.get(17)?,
        facts: RouterFactsOut {
            board: r.get(18)?,
            release: r.get(19)?,
            revision: r.get(20)?,
            target: r.get(21)?,
            kernel: r.get(22)?,
            agent_version: r.get(23)?,
            arch: r.get(24)?,
            enrolled_at: r.get(25)?,
            revoked_at,
            last_report_ms,
            load: match load {
                [Some(a), Some(b), Some(c)] => Some([a, b, c]),
                _ => None,
            },
        },
    })
}

/// Finds a router by numeric id, else by name (case-insensitive).
fn find_base(conn: &Connection, key: &str) -> Result<Option<Base>, ApiError> {
    if let Ok(id) = key.parse::<i64>() {
        let sql = format!("{BASE_SQL} WHERE r.id = ?1");
        let found = conn
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_row([id], base_from_row).optional())
            .map_err(db_err)?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let sql = format!("{BASE_SQL} WHERE r.name = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.query_row([key], base_from_row).optional())
        .map_err(db_err)
}

/// An interface of a router's newest report.
#[derive(Debug)]
struct LatestIface {
    name: String,
    kind: String,
    rx_bps: Option<i64>,
    tx_bps: Option<i64>,
}

/// Every row `sql` gives with `params`, each made by `map`.
fn rows_of<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, ApiError> {
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    let rows = st.query_map(params, map).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// The newest sample of each interface.
fn latest_interfaces(
    conn: &Connection,
    router_id: i64,
    ts_ms: i64,
) -> Result<Vec<LatestIface>, ApiError> {
    rows_of(conn, LATEST_IFACES_SQL, params![router_id, ts_ms], |r| {
        Ok(LatestIface {
            name: r.get(0)?,
            kind: r.get(1)?,
            rx_bps: r.get(2)?,
            tx_bps: r.get(3)?,
        })
    })
}

/// Picks the WAN interface among `(name, kind)` pairs: the first PPPoE interface, else `wan`,
/// else a DSA wan port (`wan1`, `wan.7`).
pub fn pick_wan<'a>(ifaces: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<&'a str> {
    let mut named: Vec<(&str, &str)> = ifaces.into_iter().collect();
    named.sort_unstable();
    if let Some((n, _)) = named.iter().find(|(_, kind)| *kind == "pppoe") {
        return Some(n);
    }
    if let Some((n, _)) = named.iter().find(|(n, _)| *n == "wan") {
        return Some(n);
    }
    named
        .iter()
        .find(|(n, _)| {
            n.strip_prefix("wan")
                .and_then(|rest| rest.chars().next())
                .is_some_and(|c| c.is_ascii_digit() || c == '.')
        })
        .map(|(n, _)| *n)
}

/// Bytes received and sent on one interface over the window ending now ([`port_traffic`], the
/// sums `/api/gateways` reads too); None for a direction without a known delta.
fn window_traffic(
    conn: &Connection,
    router_id: i64,
    name: &str,
    window: Window,
    now: i64,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let sums = port_traffic(conn, window, open_bounds(window, now), router_id, name)?;
    Ok(as_i64(sums))
}

/// Byte sums as the dashboard's JSON numbers.
fn as_i64((rx, tx): (Option<u64>, Option<u64>)) -> (Option<i64>, Option<i64>) {
    let v = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    (rx.map(v), tx.map(v))
}

/// Milliseconds between the router's two newest reports.
fn report_interval_ms(conn: &Connection, router_id: i64) -> Result<Option<i64>, ApiError> {
    let mut ts: Vec<i64> = rows_of(conn, INTERVAL_SQL, [router_id], |r| r.get(0))?;
    if ts.len() < 2 {
        ts = rows_of(conn, INTERVAL_SEALED_SQL, [router_id], |r| r.get(0))?;
    }
    Ok(match ts.as_slice() {
        [a, b] => Some(a.saturating_sub(*b).max(0)),
        _ => None,
    })
}

/// Stations of the newest report on AP interfaces (or interfaces `iw dev` did not list).
fn client_count(conn: &Connection, router_id: i64, ts_ms: i64) -> Result<i64, ApiError> {
    conn.prepare_cached(CLIENT_COUNT_SQL)
        .and_then(|mut st| st.query_row(params![router_id, ts_ms], |r| r.get(0)))
        .map_err(db_err)
}

fn percent(part: Option<i64>, whole: Option<i64>) -> Option<f64> {
    let (p, w) = (part?, whole?);
    (w > 0).then(|| round1(p as f64 * 100.0 / w as f64))
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// What the overview needs of a router besides its `routers` / newest `reports` row.
#[derive(Debug, Default)]
struct RouterExtras {
    /// Milliseconds between the two newest reports.
    interval: Option<i64>,
    /// Wireless clients in the newest report (see [`CLIENT_COUNT_SQL`]).
    clients: i64,
    /// Interfaces of the newest report, by name.
    ifaces: Vec<LatestIface>,
    /// WAN bytes received and sent in the window (see [`window_traffic`]).
    wan_traffic: (Option<i64>, Option<i64>),
}

/// A router's [`RouterExtras`] from keyed queries on its rows.
fn router_extras(
    conn: &Connection,
    b: &Base,
    window: Window,
    now: i64,
) -> Result<RouterExtras, ApiError> {
    let mut x = RouterExtras {
        interval: report_interval_ms(conn, b.id)?,
        ..RouterExtras::default()
    };
    if let Some(ts) = b.last_report_ms {
        x.clients = client_count(conn, b.id, ts)?;
        x.ifaces = latest_interfaces(conn, b.id, ts)?;
        let picked = pick_wan(x.ifaces.iter().map(|i| (i.name.as_str(), i.kind.as_str())));
        if let Some(name) = picked {
            x.wan_traffic = window_traffic(conn, b.id, name, window, now)?;
        }
    }
    Ok(x)
}

fn fleet_row(b: &Base, x: RouterExtras, now: i64) -> FleetRouter {
    let interval = x.interval;
    let online = b.revoked_at.is_none() && super::fleet::is_online(now, b.last_seen_ms, interval);
    let status = if b.revoked_at.is_some() {
        "revoked"
    } else if b.last_seen_ms.is_none() {
        "never"
    } else if online {
        "online"
    } else {
        "offline"
    };
    let (mut wan, mut wan_rates) = (None, (None, None));
    let clients = if b.last_report_ms.is_some() {
        x.clients
    } else {
        0
    };
    if b.last_report_ms.is_some() {
        let picked = pick_wan(x.ifaces.iter().map(|i| (i.name.as_str(), i.kind.as_str())));
        if let Some(name) = picked {
            wan = Some(name.to_string());
            if let Some(i) = x.ifaces.iter().find(|i| i.name == name) {
                wan_rates = (i.rx_bps, i.tx_bps);
            }
        }
    }
    let (wan_rx_bytes, wan_tx_bytes) = match &wan {
        Some(_) => x.wan_traffic,
        None => (None, None),
    };
    let mem_used = match (b.mem_total_kb, b.mem_available_kb) {
        (Some(t), Some(a)) => Some(t.saturating_sub(a)),
        _ => None,
    };
    FleetRouter {
        id: b.id,
        name: b.name.clone(),
        site: b.site.clone(),
        hostname: b.hostname.clone(),
        model: b.model.clone(),
        online,
        status: status.to_string(),
        last_seen_ms: b.last_seen_ms,
        last_seen_age_s: b.last_seen_ms.map(|t| now.saturating_sub(t).max(0) / 1000),
        report_interval_ms: interval,
        uptime_s: b.uptime_s,
        cpu_percent: b.cpu_permille.map(|p| round1(p as f64 / 10.0)),
        load1: b.load[0],
        mem_total_kb: b.mem_total_kb,
        mem_available_kb: b.mem_available_kb,
        mem_used_percent: percent(mem_used, b.mem_total_kb),
        disk_mount: b.disk_mount.clone(),
        disk_used_bytes: b.disk_used_bytes,
        disk_total_bytes: b.disk_total_bytes,
        disk_used_percent: percent(b.disk_used_bytes, b.disk_total_bytes),
        clients,
        wan_interface: wan,
        wan_rx_bytes,
        wan_tx_bytes,
        wan_rx_bps: wan_rates.0,
        wan_tx_bps: wan_rates.1,
    }
}

/// From this many routers on, the overview reads each table once for all of them
/// ([`fleet_extras`]) instead of a few keyed queries per router ([`router_extras`]).
const FLEET_BATCH_MIN: usize = 64;

/// The newest-report interfaces of the routers with `?1 < id <= ?2`.
const LATEST_IFACES_ALL_SQL: &str = "SELECT r.id, s.name, s.kind, s.rx_bps, s.tx_bps \
     FROM routers r CROSS JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE r.id > ?1 AND r.id <= ?2";
/// The newest-report stations of the routers with `?1 < id <= ?2`, counted per interface.
const STATIONS_ALL_SQL: &str = "SELECT r.id, s.iface, count(*) \
     FROM routers r CROSS JOIN station_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE r.id > ?1 AND r.id <= ?2 GROUP BY r.id, s.iface";
const WIRELESS_TYPES_SQL: &str =
    "SELECT router_id, name, type FROM wireless_interfaces WHERE router_id > ?1 AND router_id <= ?2";
/// [`RouterExtras`] of `selected` routers, with one query per table for the id range they span
/// (one page of routers, or the whole fleet).
///
/// The WAN window sums come from [`window_sums`] over the whole fleet, the function
/// `/api/gateways` reads; a raw window whose 5-minute buckets hold 0 bytes and whose raw edge
/// has no known delta is read again with [`window_traffic`] (to tell unknown from zero).
fn fleet_extras(
    conn: &Connection,
    selected: &[&Base],
    window: Window,
    now: i64,
) -> Result<HashMap<i64, RouterExtras>, ApiError> {
    let mut out: HashMap<i64, RouterExtras> = HashMap::with_capacity(selected.len());
    let ids = match (
        selected.iter().map(|b| b.id).min(),
        selected.iter().map(|b| b.id).max(),
    ) {
        (Some(lo), Some(hi)) => [lo.saturating_sub(1), hi],
        _ => return Ok(out),
    };
    for b in selected {
        let interval = report_interval_ms(conn, b.id)?;
        out.insert(
            b.id,
            RouterExtras {
                interval,
                ..RouterExtras::default()
            },
        );
    }
    let mut st = conn.prepare_cached(LATEST_IFACES_ALL_SQL).map_err(db_err)?;
    let mut rows = st.query(ids).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        if let Some(x) = out.get_mut(&r.get::<_, i64>(0).map_err(db_err)?) {
            x.ifaces.push(LatestIface {
                name: r.get(1).map_err(db_err)?,
                kind: r.get(2).map_err(db_err)?,
                rx_bps: r.get(3).map_err(db_err)?,
                tx_bps: r.get(4).map_err(db_err)?,
            });
        }
    }
    for x in out.values_mut() {
        x.ifaces.sort_by(|a, b| a.name.cmp(&b.name));
    }
    // Client counts: stations on AP interfaces, or interfaces `iw dev` did not list.
    let mut types: HashMap<(i64, String), String> = HashMap::new();
    let mut st = conn.prepare_cached(WIRELESS_TYPES_SQL).map_err(db_err)?;
    let mut rows = st.query(ids).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        types.insert(
            (r.get(0).map_err(db_err)?, r.get(1).map_err(db_err)?),
            r.get(2).map_err(db_err)?,
        );
    }
    let mut st = conn.prepare_cached(STATIONS_ALL_SQL).map_err(db_err)?;
    let mut rows = st.query(ids).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        let id: i64 = r.get(0).map_err(db_err)?;
        let iface: String = r.get(1).map_err(db_err)?;
        let n: i64 = r.get(2).map_err(db_err)?;
        let ap = types
            .get(&(id, iface))
            .is_none_or(|t| t == "AP" || t == "AP/VLAN");
        if let (true, Some(x)) = (ap, out.get_mut(&id)) {
            x.clients = x.clients.saturating_add(n);
        }
    }
    // WAN window sums.
    let wan: HashMap<i64, String> = out
        .iter()
        .filter_map(|(id, x)| {
            pick_wan(x.ifaces.iter().map(|i| (i.name.as_str(), i.kind.as_str())))
                .map(|n| (*id, n.to_string()))
        })
        .collect();
    // The same sums as /api/gateways (window::window_sums), WAN ports picked.
    let (since, until) = open_bounds(window, now);
    let sums = window_sums(conn, window, since, until, SumScope::FleetPorts(&wan))?;
    for (id, name) in &wan {
        let Some(x) = out.get_mut(id) else { continue };
        let Some(e) = sums.get(&(*id, name.clone())) else {
            continue;
        };
        x.wan_traffic = if e.buckets && !window.uses_rollup() && !(e.rx_known && e.tx_known) {
            window_traffic(conn, *id, name, window, now)?
        } else {
            as_i64(e.known(window))
        };
    }
    Ok(out)
}

fn nonneg(v: Option<i64>) -> u64 {
    v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// The overview: the routers of one page not revoked, filtered by `site` (exact) and `text`
/// (substring of name or site), both lower-case.
pub fn fleet_answer(
    conn: &Connection,
    now: i64,
    window: Window,
    site: Option<&str>,
    text: Option<&str>,
    page: &super::paging::PageBounds,
) -> Result<FleetResponse, ApiError> {
    fleet_answer_with(conn, now, window, (site, text), page, None)
}

/// Every site of the fleet's routers not revoked, sorted and deduplicated case-insensitively.
const SITES_SQL: &str =
    "SELECT DISTINCT site FROM routers WHERE revoked_at IS NULL AND site IS NOT NULL ORDER BY site";

/// [`fleet_answer`]; `batch` forces the fleet-wide reads (true) or the per-router ones
/// (false), None picks by the number of routers.
fn fleet_answer_with(
    conn: &Connection,
    now: i64,
    window: Window,
    (site, text): (Option<&str>, Option<&str>),
    page: &super::paging::PageBounds,
    batch: Option<bool>,
) -> Result<FleetResponse, ApiError> {
    let sql = format!(
        "{BASE_SQL} WHERE r.revoked_at IS NULL AND r.id > ?1 AND r.id <= ?2 ORDER BY r.name"
    );
    let bases: Vec<Base> = rows_of(conn, &sql, [page.after, page.last], base_from_row)?;
    let mut sites: Vec<String> = rows_of(conn, SITES_SQL, [], |r| r.get(0))?;
    sites.sort_by_key(|s| s.to_lowercase());
    sites.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let selected: Vec<&Base> = bases
        .iter()
        .filter(|b| {
            let site_lc = b.site.as_deref().unwrap_or("").to_lowercase();
            site.is_none_or(|s| s == site_lc)
                && text.is_none_or(|t| b.name.to_lowercase().contains(t) || site_lc.contains(t))
        })
        .collect();
    let mut batch = if batch.unwrap_or(selected.len() >= FLEET_BATCH_MIN) {
        Some(fleet_extras(conn, &selected, window, now)?)
    } else {
        None
    };
    let mut routers = Vec::new();
    let mut totals = FleetTotals::default();
    for b in selected {
        let extras = match batch.as_mut() {
            Some(m) => m.remove(&b.id).unwrap_or_default(),
            None => router_extras(conn, b, window, now)?,
        };
        let row = fleet_row(b, extras, now);
        totals.routers += 1;
        if row.online {
            totals.routers_online += 1;
            totals.clients += nonneg(Some(row.clients));
            totals.wan_rx_bps = totals.wan_rx_bps.saturating_add(nonneg(row.wan_rx_bps));
            totals.wan_tx_bps = totals.wan_tx_bps.saturating_add(nonneg(row.wan_tx_bps));
        }
        totals.wan_rx_bytes = totals.wan_rx_bytes.saturating_add(nonneg(row.wan_rx_bytes));
        totals.wan_tx_bytes = totals.wan_tx_bytes.saturating_add(nonneg(row.wan_tx_bytes));
        routers.push(row);
    }
    Ok(FleetResponse {
        generated_at_ms: now,
        duration: window.as_str().to_string(),
        totals,
        sites,
        routers,
    })
}

/// One router in detail; None when there is no such router.
pub fn detail_answer(
    conn: &Connection,
    now: i64,
    window: Window,
    key: &str,
) -> Result<Option<RouterDetail>, ApiError> {
    let Some(b) = find_base(conn, key)? else {
        return Ok(None);
    };
    let router = fleet_row(&b, router_extras(conn, &b, window, now)?, now);
    let leases = leases_of(conn, b.id, now)?;
    let (interfaces, ssids, wireguard, openvpn) = match b.last_report_ms {
        Some(ts) => (
            interfaces_of(conn, b.id, ts, window, now, router.wan_interface.as_deref())?,
            ssids_of(conn, b.id, ts, &leases)?,
            wg_peers_of(conn, b.id, ts)?,
            ovpn_clients_of(conn, b.id, ts)?,
        ),
        None => (
            Vec::new(),
            ssids_of(conn, b.id, i64::MIN, &leases)?,
            Vec::new(),
            Vec::new(),
        ),
    };
    Ok(Some(RouterDetail {
        generated_at_ms: now,
        duration: window.as_str().to_string(),
        facts: b.facts.clone(),
        router,
        interfaces,
        ssids,
        leases,
        wireguard,
        openvpn,
        sources: sources_of(conn, b.id)?,
        probes: probes_of(conn, b.id, window, now)?,
        wan_addresses: super::fleet::wan_addresses(conn, Some(b.id))
            .map_err(db_err)?
            .remove(&b.id)
            .unwrap_or_default()
            .into_iter()
            .map(|a| WanAddressOut {
                device: a.device,
                addr: a.addr,
            })
            .collect(),
    }))
}

fn probes_of(
    conn: &Connection,
    router_id: i64,
    window: Window,
    now: i64,
) -> Result<Vec<ProbeOut>, ApiError> {
    let (start, end) = open_bounds(window, now);
    let rows = super::fleet::probe_targets(conn, router_id, start, end).map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|t| ProbeOut {
            loss_percent: t.figures.loss_percent(),
            latency_ms: t.figures.latency_ms,
            max_latency_ms: t.figures.max_latency_ms,
            sent: t.figures.sent,
            received: t.figures.received,
            target: t.target,
            role: t.role,
            name: t.name,
        })
        .collect())
}

fn interfaces_of(
    conn: &Connection,
    router_id: i64,
    ts: i64,
    window: Window,
    now: i64,
    wan: Option<&str>,
) -> Result<Vec<InterfaceOut>, ApiError> {
    let mut out: Vec<InterfaceOut> = rows_of(conn, IFACES_SQL, params![router_id, ts], |r| {
        let name: String = r.get(0)?;
        Ok(InterfaceOut {
            wan: wan == Some(name.as_str()),
            name,
            kind: r.get(1)?,
            rx_bytes: r.get(2)?,
            tx_bytes: r.get(3)?,
            rx_bps: r.get(4)?,
            tx_bps: r.get(5)?,
            window_rx_bytes: None,
            window_tx_bytes: None,
            rx_errs: r.get(6)?,
            tx_errs: r.get(7)?,
            rx_drop: r.get(8)?,
            tx_drop: r.get(9)?,
        })
    })?;
    if window.uses_rollup() {
        for i in &mut out {
            (i.window_rx_bytes, i.window_tx_bytes) =
                window_traffic(conn, router_id, &i.name, window, now)?;
        }
    } else {
        // One range scan of the router's samples in the window, summed per interface.
        let (since, until) = open_bounds(window, now);
        let sums = window_sums(conn, window, since, until, SumScope::Router(router_id))?;
        for i in &mut out {
            if let Some(e) = sums.get(&(router_id, i.name.clone())) {
                (i.window_rx_bytes, i.window_tx_bytes) = as_i64(e.known(window));
            }
        }
    }
    Ok(out)
}

fn leases_of(conn: &Connection, router_id: i64, now: i64) -> Result<Vec<LeaseOut>, ApiError> {
    let now_s = now / 1000;
    let mut out: Vec<LeaseOut> = rows_of(conn, LEASES_SQL, [router_id], |r| {
        let expires: Option<i64> = r.get(4)?;
        Ok(LeaseOut {
            ip: r.get(0)?,
            mac: r.get(1)?,
            hostname: r.get(2)?,
            client_id: r.get(3)?,
            expires,
            expires_in_s: expires.map(|e| e.saturating_sub(now_s)),
        })
    })?;
    // IPv4 before IPv6, numerically; unparsable addresses last, as text.
    out.sort_by(
        |a, b| match (a.ip.parse::<IpAddr>(), b.ip.parse::<IpAddr>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.ip.cmp(&b.ip),
        },
    );
    Ok(out)
}

/// A MAC's hostname and IP from another router's lease (newest lease first).
fn lease_elsewhere(
    conn: &Connection,
    mac: &str,
) -> Result<Option<(Option<String>, String)>, ApiError> {
    conn.prepare_cached(LEASE_BY_MAC_SQL)
        .and_then(|mut st| {
            st.query_row([mac], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db_err)
}

fn ssids_of(
    conn: &Connection,
    router_id: i64,
    ts: i64,
    leases: &[LeaseOut],
) -> Result<Vec<SsidGroup>, ApiError> {
    let ifaces: Vec<(Option<String>, WirelessInterfaceOut)> =
        rows_of(conn, WIRELESS_SQL, [router_id], |r| {
            Ok((
                r.get(2)?,
                WirelessInterfaceOut {
                    name: r.get(0)?,
                    iftype: r.get(1)?,
                    channel: r.get(3)?,
                    freq_mhz: r.get(4)?,
                    width_mhz: r.get(5)?,
                    txpower_dbm: r.get(6)?,
                    links: crate::store::wifi_links(r.get(7)?),
                },
            ))
        })?;

    // Leases by MAC: an IPv4 lease with a hostname wins.
    let mut by_mac: HashMap<&str, &LeaseOut> = HashMap::new();
    for l in leases {
        let Some(mac) = l.mac.as_deref() else {
            continue;
        };
        let better = |old: &LeaseOut| {
            (l.hostname.is_some(), l.ip.contains('.'))
                > (old.hostname.is_some(), old.ip.contains('.'))
        };
        if by_mac.get(mac).is_none_or(|old| better(old)) {
            by_mac.insert(mac, l);
        }
    }

    let stations: Vec<(Option<String>, WirelessClient)> =
        rows_of(conn, STATIONS_SQL, params![router_id, ts], |r| {
            Ok((
                r.get(2)?,
                WirelessClient {
                    interface: r.get(0)?,
                    mac: r.get(1)?,
                    hostname: None,
                    ip: None,
                    signal_dbm: r.get(3)?,
                    signal_avg_dbm: r.get(4)?,
                    tx_bitrate_kbps: r.get(5)?,
                    rx_bitrate_kbps: r.get(6)?,
                    expected_throughput_kbps: r.get(7)?,
                    rx_bytes: r.get(8)?,
                    tx_bytes: r.get(9)?,
                    rx_bps: r.get(10)?,
                    tx_bps: r.get(11)?,
                    connected_s: r.get(12)?,
                    inactive_ms: r.get(13)?,
                    airtime_permille: r.get(14)?,
                },
            ))
        })?;

    // Group key: the SSID, or the interface name for interfaces without one.
    #[derive(PartialEq, Eq, PartialOrd, Ord, Clone)]
    enum Key {
        Ssid(String),
        Iface(String),
    }
    let mut groups: BTreeMap<Key, SsidGroup> = BTreeMap::new();
    let key_of = |ssid: &Option<String>, iface: &str| match ssid {
        Some(s) => Key::Ssid(s.clone()),
        None => Key::Iface(iface.to_string()),
    };
    for (ssid, w) in ifaces {
        let k = key_of(&ssid, &w.name);
        groups
            .entry(k)
            .or_insert_with(|| SsidGroup {
                ssid: ssid.clone(),
                interfaces: Vec::new(),
                clients: Vec::new(),
            })
            .interfaces
            .push(w);
    }
    for (ssid, mut c) in stations {
        match by_mac.get(c.mac.as_str()) {
            Some(l) => {
                c.hostname = l.hostname.clone();
                c.ip = Some(l.ip.clone());
            }
            None => {
                if let Some((hostname, ip)) = lease_elsewhere(conn, &c.mac)? {
                    c.hostname = hostname;
                    c.ip = Some(ip);
                }
            }
        }
        let k = key_of(&ssid, &c.interface);
        groups
            .entry(k)
            .or_insert_with(|| SsidGroup {
                ssid: ssid.clone(),
                interfaces: Vec::new(),
                clients: Vec::new(),
            })
            .clients
            .push(c);
    }
    let mut out: Vec<SsidGroup> = groups.into_values().collect();
    for g in &mut out {
        g.clients.sort_by(|a, b| {
            let ha = a.hostname.as_deref().map(str::to_lowercase);
            let hb = b.hostname.as_deref().map(str::to_lowercase);
            (ha.is_none(), ha, &a.mac).cmp(&(hb.is_none(), hb, &b.mac))
        });
    }
    Ok(out)
}

/// `active` / `inactive` / `never` for a handshake `age_s` old.
pub fn wg_status(handshake: Option<i64>, age_s: Option<i64>) -> &'static str {
    match (handshake, age_s) {
        (None, _) => "never",
        (Some(_), Some(a)) if a <= WG_ACTIVE_S => "active",
        _ => "inactive",
    }
}

fn wg_peers_of(conn: &Connection, router_id: i64, ts: i64) -> Result<Vec<WgPeerOut>, ApiError> {
    let report_s = ts / 1000;
    rows_of(conn, WG_SQL, params![router_id, ts], |r| {
        let handshake: Option<i64> = r.get::<_, Option<i64>>(5)?.filter(|h| *h > 0);
        let age = handshake.map(|h| report_s.saturating_sub(h).max(0));
        let allowed: String = r.get(4)?;
        Ok(WgPeerOut {
            interface: r.get(0)?,
            public_key: r.get(1)?,
            name: r.get(2)?,
            endpoint: r.get(3)?,
            allowed_ips: allowed
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            latest_handshake: handshake,
            handshake_age_s: age,
            status: wg_status(handshake, age).to_string(),
            rx_bytes: r.get(6)?,
            tx_bytes: r.get(7)?,
            rx_bps: r.get(8)?,
            tx_bps: r.get(9)?,
        })
    })
}

fn ovpn_clients_of(
    conn: &Connection,
    router_id: i64,
    ts: i64,
) -> Result<Vec<OvpnClientOut>, ApiError> {
    let report_s = ts / 1000;
    rows_of(conn, OVPN_SQL, params![router_id, ts], |r| {
        let since: Option<i64> = r.get(9)?;
        Ok(OvpnClientOut {
            instance: r.get(0)?,
            common_name: r.get(1)?,
            real_address: r.get(2)?,
            virtual_address: r.get(3)?,
            virtual_ipv6: r.get(4)?,
            rx_bytes: r.get(5)?,
            tx_bytes: r.get(6)?,
            rx_bps: r.get(7)?,
            tx_bps: r.get(8)?,
            connected_since: since,
            connected_s: since.map(|s| report_s.saturating_sub(s).max(0)),
            username: r.get(10)?,
            cipher: r.get(11)?,
        })
    })
}

fn sources_of(conn: &Connection, router_id: i64) -> Result<Vec<SourceOut>, ApiError> {
    rows_of(conn, SOURCES_SQL, [router_id], |r| {
        Ok(SourceOut {
            kind: r.get(0)?,
            name: r.get(1)?,
            state: r.get(2)?,
            skipped: r.get(3)?,
            detail: r.get(4)?,
            updated_ms: r.get(5)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn root_negotiates_html_for_browsers_and_json_for_api_clients() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(&accept(Some(browser))));
        assert!(wants_html(&accept(Some("text/html"))));
        assert!(wants_html(&accept(Some(
            "application/json;q=0.5, text/html"
        ))));
        for api in [
            None,
            Some("application/json"),
            Some("*/*"),
            Some("application/json, text/html;q=0.9"),
            Some("text/html;q=0"),
            Some("text/plain"),
            Some("text/html;q=nonsense, application/json"),
        ] {
            assert!(!wants_html(&accept(api)), "{api:?}");
        }
    }

    #[tokio::test]
    async fn root_answers_json_status_or_the_page() {
        let r = index(accept(Some("application/json"))).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::VARY], "Accept");
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "running");
        assert_eq!(v["wireguard_config"], WIREGUARD_CONFIG);
        let r = index(accept(Some("text/html"))).await;
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert!(
            body.starts_with(b"<!") || body.starts_with(b"<html"),
            "not the page"
        );
    }
    // The window queries the dashboard read itself before it shared api::window with
    // /api/gateways, under their old names.
    use crate::api::window::{
        RAW_PORT_ROWS_SQL as WINDOW_RAW_SQL, RAW_ROUTER_ROWS_SQL as IFACE_WINDOW_SUMS_SQL,
        RAW_ROWS_SQL as RAW_EDGE_SQL, ROLLUP_PORT_SUM_SQL as WINDOW_5M_SQL,
        ROLLUP_PORT_SUM_SQL as WINDOW_1H_SQL, ROLLUP_RANGE_SQL as ROLLUP_ALL_SQL,
    };

    #[test]
    fn fleet_cache_key_normalizes_the_query() {
        let k = |d: Option<&str>, site: Option<&str>, q: Option<&str>| {
            fleet_key(
                parse_duration(d).unwrap(),
                filter_arg("site", site).unwrap().as_deref(),
                filter_arg("q", q).unwrap().as_deref(),
                &every(),
            )
        };
        // Defaults and spelling variants of the same query share a key.
        assert_eq!(k(None, None, None), k(Some("1h"), Some(""), Some(" ")));
        assert_eq!(
            k(Some("1d"), Some("North"), None),
            k(Some(" 1d"), Some(" north "), None)
        );
        // Every window and filter is a key of its own.
        let keys: std::collections::HashSet<String> = ["15m", "1h", "1d", "7d"]
            .into_iter()
            .flat_map(|d| {
                [
                    k(Some(d), None, None),
                    k(Some(d), Some("a"), None),
                    k(Some(d), None, Some("a")),
                    k(Some(d), Some("a"), Some("a")),
                ]
            })
            .collect();
        assert_eq!(keys.len(), 16);
        // Every page is a key of its own.
        let page = |after: i64, last: i64| crate::api::paging::PageBounds {
            after,
            last,
            next_cursor: (last < i64::MAX).then(|| crate::api::paging::cursor_of(last)),
        };
        let d = parse_duration(None).unwrap();
        assert_ne!(
            fleet_key(d, None, None, &page(0, 100)),
            fleet_key(d, None, None, &page(100, i64::MAX))
        );
        assert_ne!(fleet_key(d, None, None, &page(0, 100)), k(None, None, None));
    }

    /// Every router on one page.
    fn every() -> crate::api::paging::PageBounds {
        crate::api::paging::PageBounds {
            after: 0,
            last: i64::MAX,
            next_cursor: None,
        }
    }
    use crate::store::schema::MIGRATIONS;

    const NOW: i64 = 1_750_000_000_000;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        // `reports_all` and the other `<table>_all` virtual tables, as every collector
        // connection has them.
        crate::store::sealed::register(&c).unwrap();
        for m in MIGRATIONS {
            c.execute_batch(m).unwrap();
        }
        c
    }

    /// A router `id` with its newest report at `ts` (seen at `seen`), and an older report 30 s
    /// before it.
    fn router(c: &Connection, id: i64, name: &str, site: Option<&str>, ts: i64, seen: i64) {
        c.execute(
            "INSERT INTO routers (id, name, site, hostname, model, cert_fingerprint, cert_not_after, enrolled_at, \
             last_seen_ms, last_report_ms, last_report_id, uptime_s) \
             VALUES (?1, ?2, ?3, ?2, 'Test Model', ?2, 0, 1, ?4, ?5, ?1 * 100, 999)",
            params![id, name, site, seen, ts],
        )
        .unwrap();
        for (rid, t) in [(id * 100 - 1, ts - 30_000), (id * 100, ts)] {
            c.execute(
                "INSERT INTO reports (id, router_id, boot_id, seq, ts_ms, received_ms, dropped_reports, uptime_s, \
                 cpu_permille, mem_total_kb, mem_available_kb, disk_mount, disk_used_bytes, disk_total_bytes, \
                 load1, load5, load15, interface_count, station_count, lease_count, wg_peer_count, ovpn_client_count) \
                 VALUES (?1, ?2, x'00', ?1, ?3, ?3, 0, 3600, 125, 1000, 250, '/overlay', 25, 100, 0.5, 0.25, 0.125, \
                 0, 0, 0, 0, 0)",
                params![rid, id, t],
            )
            .unwrap();
        }
    }

    fn iface(c: &Connection, id: i64, ts: i64, name: &str, kind: &str, delta: Option<i64>) {
        c.execute(
            "INSERT INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, rx_packets, rx_errs, rx_drop, \
             tx_bytes, tx_packets, tx_errs, tx_drop, rx_delta, tx_delta, rx_bps, tx_bps) \
             VALUES (?1, ?2, ?3, ?4, 5000, 1, 0, 0, 7000, 1, 0, 0, ?5, ?5 * 2, 800, 1600)",
            params![id, ts, name, kind, delta],
        )
        .unwrap();
    }

    /// EXPLAIN QUERY PLAN of `sql` (parameters bound to NULL), one line per step.
    fn plan(c: &Connection, sql: &str) -> String {
        let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = st.parameter_count();
        let params: Vec<rusqlite::types::Value> = vec![rusqlite::types::Value::Null; n];
        let rows = st
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn queries_use_keys_not_scans() {
        let c = db();
        let sample_tables = [
            "interface_samples",
            "station_samples",
            "wg_peer_samples",
            "ovpn_client_samples",
            "interface_rollup_5m",
            "interface_rollup_1h",
            "reports",
            "leases",
            "wireless_interfaces",
            "source_status",
        ];
        let by_id = format!("{BASE_SQL} WHERE r.id = ?1");
        let by_name = format!("{BASE_SQL} WHERE r.name = ?1");
        let all = format!("{BASE_SQL} WHERE r.revoked_at IS NULL ORDER BY r.name");
        let rollup_5m = ROLLUP_ALL_SQL.replace("{table}", "interface_rollup_5m");
        let rollup_1h = ROLLUP_ALL_SQL.replace("{table}", "interface_rollup_1h");
        let queries = [
            by_id.as_str(),
            by_name.as_str(),
            all.as_str(),
            LATEST_IFACES_ALL_SQL,
            STATIONS_ALL_SQL,
            RAW_EDGE_SQL,
            rollup_5m.as_str(),
            rollup_1h.as_str(),
            LATEST_IFACES_SQL,
            WINDOW_RAW_SQL,
            WINDOW_5M_SQL,
            WINDOW_1H_SQL,
            INTERVAL_SQL,
            INTERVAL_SEALED_SQL,
            CLIENT_COUNT_SQL,
            IFACES_SQL,
            IFACE_WINDOW_SUMS_SQL,
            LEASES_SQL,
            LEASE_BY_MAC_SQL,
            WIRELESS_SQL,
            STATIONS_SQL,
            WG_SQL,
            OVPN_SQL,
            SOURCES_SQL,
        ];
        for sql in queries {
            let p = plan(&c, sql);
            for line in p.lines() {
                for t in sample_tables {
                    // `<table>_all` constrained by router (`r` in its index string) reads
                    // that router's rows and blocks only.
                    let keyed_vtab = line
                        .starts_with(&format!("SCAN {t}_all VIRTUAL TABLE INDEX "))
                        && line
                            .rsplit(':')
                            .next()
                            .is_some_and(|codes| codes.contains('r'));
                    let full_scan = !keyed_vtab
                        && (line.starts_with(&format!("SCAN {t}"))
                            || (line.starts_with("SCAN ")
                                && line.contains(&format!("{t} "))
                                && !line.contains("USING")));
                    assert!(!full_scan, "full scan of {t}:\n{p}\nin {sql}");
                }
            }
        }
        // The by-id and by-name lookups and the newest report use keys.
        assert!(
            plan(&c, &by_id).contains("USING INTEGER PRIMARY KEY"),
            "{}",
            plan(&c, &by_id)
        );
        assert!(
            plan(&c, &by_name).contains("USING INDEX sqlite_autoindex_routers"),
            "{}",
            plan(&c, &by_name)
        );
        // Fleet-wide reads: one keyed range per router, or one bucket range.
        for sql in [LATEST_IFACES_ALL_SQL, STATIONS_ALL_SQL, RAW_EDGE_SQL] {
            let p = plan(&c, sql);
            assert!(p.contains("PRIMARY KEY (router_id=? AND ts_ms"), "{p}");
        }
        for sql in [&rollup_5m, &rollup_1h] {
            let p = plan(&c, sql);
            assert!(
                p.contains("PRIMARY KEY (bucket_start_ms>? AND bucket_start_ms<?)"),
                "{p}"
            );
        }
        // A page of routers: one key range of the page's routers per bucket.
        for table in ["interface_rollup_5m", "interface_rollup_1h"] {
            let p = plan(
                &c,
                &crate::api::window::ROLLUP_IDS_SQL.replace("{table}", table),
            );
            assert!(
                p.contains("PRIMARY KEY (bucket_start_ms=? AND router_id>? AND router_id<?)"),
                "{p}"
            );
        }
        // Raw windows: a range of one router's samples, by the clustered key or the per-name index.
        let raw = plan(&c, WINDOW_RAW_SQL);
        assert!(
            raw.contains("(router_id=? AND ts_ms>?)")
                || raw.contains("(router_id=? AND ts_ms>? AND ts_ms<?)")
                || raw.contains("interface_samples_key"),
            "{raw}"
        );
        assert!(
            plan(&c, INTERVAL_SQL).contains("reports_router_ts"),
            "{}",
            plan(&c, INTERVAL_SQL)
        );
        assert!(
            plan(&c, LEASE_BY_MAC_SQL).contains("leases_mac"),
            "{}",
            plan(&c, LEASE_BY_MAC_SQL)
        );
    }

    #[test]
    fn openapi_fragment_lists_both_routes() {
        use utoipa::OpenApi;
        let doc = Doc::openapi();
        let json = serde_json::to_value(&doc).unwrap();
        for (path, op) in [
            ("/api/fleet", "dashboard_fleet"),
            ("/api/routers/{id}", "dashboard_router_detail"),
        ] {
            assert_eq!(json["paths"][path]["get"]["operationId"], op, "{path}");
        }
        assert!(
            json["components"]["schemas"]["FleetRouter"]["properties"]["wan_rx_bytes"].is_object()
        );
        let params = &json["paths"]["/api/fleet"]["get"]["parameters"];
        let names: Vec<&str> = params
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, vec!["duration", "site", "q", "limit", "cursor"]);
    }

    #[test]
    fn window_parsing() {
        assert_eq!(parse_duration(None).unwrap(), Window::H1);
        assert_eq!(parse_duration(Some("15m")).unwrap(), Window::M15);
        assert_eq!(
            parse_duration(Some("7d")).unwrap().duration_ms(),
            604_800_000
        );
        let e = parse_duration(Some("2w")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("15m, 1h, 1d, 7d"), "{}", e.message);
        assert!(Window::D1.uses_rollup() && !Window::H1.uses_rollup());
    }

    #[test]
    fn wan_heuristic() {
        let v = [
            ("eth0", "ethernet"),
            ("pppoe-wan", "pppoe"),
            ("wan", "ethernet"),
        ];
        assert_eq!(pick_wan(v.iter().copied()), Some("pppoe-wan"));
        let v = [
            ("lan1", "ethernet"),
            ("wan", "ethernet"),
            ("wan2", "ethernet"),
        ];
        assert_eq!(pick_wan(v.iter().copied()), Some("wan"));
        let v = [("wan-guest", "bridge"), ("wan.7", "ethernet")];
        assert_eq!(pick_wan(v.iter().copied()), Some("wan.7"));
        let v = [("br-lan", "bridge"), ("wanda", "other")];
        assert_eq!(pick_wan(v.iter().copied()), None);
    }

    #[test]
    fn online_rule_and_wg_status() {
        use crate::api::fleet::is_online as online;
        assert!(online(NOW, Some(NOW - 89_000), None));
        assert!(!online(NOW, Some(NOW - 91_000), None));
        assert!(online(NOW, Some(NOW - 800_000), Some(300_000)));
        assert!(!online(NOW, Some(NOW - 901_000), Some(300_000)));
        assert!(!online(NOW, None, Some(30_000)));
        assert_eq!(wg_status(None, None), "never");
        assert_eq!(wg_status(Some(5), Some(180)), "active");
        assert_eq!(wg_status(Some(5), Some(181)), "inactive");
    }

    #[test]
    fn filters_are_bounded() {
        assert_eq!(
            filter_arg("q", Some("  Home ")).unwrap().as_deref(),
            Some("home")
        );
        assert_eq!(filter_arg("q", Some("   ")).unwrap(), None);
        let long = "x".repeat(65);
        assert_eq!(
            filter_arg("q", Some(&long)).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            filter_arg("site", Some("a\u{7}")).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn fleet_rows_totals_and_filters() {
        let c = db();
        let ts = NOW - 10_000;
        router(&c, 1, "ap-kitchen", Some("home"), ts, NOW - 5_000);
        router(&c, 2, "ap-office", Some("Office"), ts, NOW - 600_000);
        for id in [1, 2] {
            iface(&c, id, ts - 30_000, "pppoe-wan", "pppoe", Some(100));
            iface(&c, id, ts, "pppoe-wan", "pppoe", Some(1000));
            iface(&c, id, ts, "lo", "loopback", Some(1));
            iface(&c, id, ts, "br-lan", "bridge", Some(7));
        }
        // An old sample outside 15m but inside 1h.
        iface(&c, 1, NOW - 30 * 60_000, "pppoe-wan", "pppoe", Some(50_000));
        c.execute_batch(&format!(
            "INSERT INTO wireless_interfaces (router_id, name, type, ssid, updated_ms) VALUES \
             (1, 'wlan0', 'AP', 'HomeNet', 0), (1, 'mesh0', 'mesh point', NULL, 0);
             INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid) VALUES \
             (1, {ts}, 'wlan0', 'aa:aa:aa:aa:aa:01', 'HomeNet'), (1, {ts}, 'wlan0', 'aa:aa:aa:aa:aa:02', 'HomeNet'), \
             (1, {ts}, 'mesh0', 'aa:aa:aa:aa:aa:03', NULL), (1, {old}, 'wlan0', 'aa:aa:aa:aa:aa:04', 'HomeNet');",
            old = ts - 30_000
        ))
        .unwrap();

        let f = fleet_answer(&c, NOW, Window::M15, None, None, &every()).unwrap();
        assert_eq!(f.routers.len(), 2);
        assert_eq!(f.sites, vec!["home".to_string(), "Office".to_string()]);
        let k = &f.routers[0];
        assert_eq!(
            (k.name.as_str(), k.status.as_str(), k.online),
            ("ap-kitchen", "online", true)
        );
        assert_eq!(k.report_interval_ms, Some(30_000));
        assert_eq!(k.clients, 2, "mesh peer and older samples are not clients");
        assert_eq!(k.wan_interface.as_deref(), Some("pppoe-wan"));
        assert_eq!((k.wan_rx_bytes, k.wan_tx_bytes), (Some(1100), Some(2200)));
        assert_eq!((k.wan_rx_bps, k.wan_tx_bps), (Some(800), Some(1600)));
        assert_eq!(
            (k.cpu_percent, k.mem_used_percent, k.disk_used_percent),
            (Some(12.5), Some(75.0), Some(25.0))
        );
        assert_eq!(k.uptime_s, Some(3600));
        let o = &f.routers[1];
        assert_eq!(
            (o.status.as_str(), o.online, o.last_seen_age_s),
            ("offline", false, Some(600))
        );
        assert_eq!(f.totals.routers, 2);
        assert_eq!(f.totals.routers_online, 1);
        assert_eq!(f.totals.clients, 2);
        assert_eq!(f.totals.wan_rx_bytes, 2200);
        assert_eq!(
            f.totals.wan_rx_bps, 800,
            "offline routers have no current rate"
        );

        let h = fleet_answer(&c, NOW, Window::H1, None, None, &every()).unwrap();
        assert_eq!(h.routers[0].wan_rx_bytes, Some(51_100));

        assert_eq!(
            fleet_answer(&c, NOW, Window::H1, Some("office"), None, &every())
                .unwrap()
                .routers
                .len(),
            1
        );
        let q = fleet_answer(&c, NOW, Window::H1, None, Some("kitch"), &every()).unwrap();
        assert_eq!(q.routers.len(), 1);
        assert_eq!(q.totals.routers, 1);
        assert_eq!(q.sites.len(), 2, "sites list the whole fleet");

        // Revoked routers leave the overview.
        c.execute("UPDATE routers SET revoked_at = 5 WHERE id = 2", [])
            .unwrap();
        assert_eq!(
            fleet_answer(&c, NOW, Window::H1, None, None, &every())
                .unwrap()
                .routers
                .len(),
            1
        );
    }

    /// The fleet-wide reads give the very answer of the per-router queries, on a store filled
    /// through the real ingest: steady traffic, a router that stops reporting, one with zero
    /// traffic (0-byte buckets: read again per router) and one that starts late (its first
    /// sample has no delta).
    #[test]
    fn batched_fleet_equals_per_router_queries_after_ingest() {
        use crate::store::testutil::{enrolled_router, open_temp, rich_report};
        use crate::store::IngestItem;
        let (dir, mut store) = open_temp();
        let ids: Vec<i64> = ["r-a", "r-b", "r-c", "r-d"]
            .iter()
            .map(|n| enrolled_router(&mut store, n).id)
            .collect();
        let first = NOW - 3 * HOUR_MS - 7_000;
        for seq in 1..=360u64 {
            let ts = first + i64::try_from(seq).unwrap() * 30_000;
            let counters = [seq * seq % 911 + seq * 50, seq * 3, 5, seq * 11];
            let reports: Vec<_> = counters
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut r = rich_report([i as u8 + 1; 16], seq, u64::try_from(ts).unwrap(), *c);
                    if let Some(ifc) = r.interfaces.first_mut() {
                        ifc.name = "wan".into();
                    }
                    r
                })
                .collect();
            let batch: Vec<IngestItem<'_>> = ids
                .iter()
                .zip(&reports)
                .enumerate()
                .filter(|(i, _)| (*i != 1 || seq <= 300) && (*i != 3 || seq >= 340))
                .map(|(_, (id, r))| IngestItem {
                    router_id: *id,
                    received_at_ms: ts,
                    report: r,
                })
                .collect();
            store.ingest(&batch).unwrap();
        }
        let c = Connection::open(dir.path().join("routerstats.db")).unwrap();
        let mut some = 0;
        for offset in [0, 1, 150_001, 299_999, 1_234_567] {
            let now = NOW + offset;
            for w in [Window::M15, Window::H1, Window::D1, Window::D7] {
                let per_router =
                    fleet_answer_with(&c, now, w, (None, None), &every(), Some(false)).unwrap();
                let batched =
                    fleet_answer_with(&c, now, w, (None, None), &every(), Some(true)).unwrap();
                assert_eq!(
                    serde_json::to_value(&batched).unwrap(),
                    serde_json::to_value(&per_router).unwrap(),
                    "{w:?} at +{offset} ms"
                );
                some += per_router
                    .routers
                    .iter()
                    .filter(|r| r.wan_rx_bytes.is_some_and(|b| b > 0))
                    .count();
            }
        }
        assert!(some > 20, "{some}");
        // The zero-traffic router has known zero sums, not nulls.
        let f =
            fleet_answer_with(&c, NOW, Window::M15, (None, None), &every(), Some(true)).unwrap();
        let zero = f.routers.iter().find(|r| r.name == "r-c").unwrap();
        assert_eq!((zero.wan_rx_bytes, zero.clients), (Some(0), 2));
    }

    #[test]
    fn rollup_windows_sum_whole_buckets_in_the_window() {
        let c = db();
        router(&c, 1, "gw", None, NOW - 1000, NOW - 1000);
        iface(&c, 1, NOW - 1000, "wan", "ethernet", Some(1));
        let hour = |h: i64| (NOW - h * HOUR_MS) - (NOW - h * HOUR_MS).rem_euclid(HOUR_MS);
        for table in ["interface_rollup_5m", "interface_rollup_1h"] {
            for (h, bytes) in [
                (0, 10),
                (5, 100),
                (23, 1000),
                (30, 10_000),
                (24 * 8, 100_000),
            ] {
                c.execute(
                    &format!(
                        "INSERT INTO {table} (router_id, name, bucket_start_ms, rx_bytes, tx_bytes, samples) \
                         VALUES (1, 'wan', ?1, ?2, ?2, 1)"
                    ),
                    params![hour(h), bytes],
                )
                .unwrap();
            }
        }
        // A 5-minute bucket 10 minutes before the 1d window starts, only in the 5-minute rollup.
        c.execute(
            "INSERT INTO interface_rollup_5m (router_id, name, bucket_start_ms, rx_bytes, tx_bytes, samples) \
             VALUES (1, 'wan', ?1, 7, 7, 1)",
            params![NOW - 24 * HOUR_MS - 600_000],
        )
        .unwrap();
        let d = fleet_answer(&c, NOW, Window::D1, None, None, &every()).unwrap();
        assert_eq!(d.routers[0].wan_rx_bytes, Some(1110));
        let w = fleet_answer(&c, NOW, Window::D7, None, None, &every()).unwrap();
        assert_eq!(w.routers[0].wan_rx_bytes, Some(11_110));
    }

    #[test]
    fn detail_shows_mld_links_and_station_airtime() {
        let c = db();
        let ts = NOW - 1000;
        router(&c, 1, "ap-attic", Some("home"), ts, ts);
        iface(&c, 1, ts, "ap-mld0", "wifi", Some(5));
        c.execute_batch(&format!(
            "INSERT INTO wireless_interfaces (router_id, name, type, ssid, links, updated_ms) VALUES \
             (1, 'ap-mld0', 'AP', 'Seven', '[{{\"link_id\":1,\"addr\":null,\"channel\":36,\"freq_mhz\":5180,\
             \"width_mhz\":160,\"center1_mhz\":5250,\"center2_mhz\":null,\"txpower_dbm\":23.0}},\
             {{\"link_id\":2,\"addr\":\"02:00:00:00:00:62\",\"channel\":37,\"freq_mhz\":6135,\"width_mhz\":320,\
             \"center1_mhz\":6265,\"center2_mhz\":null,\"txpower_dbm\":21.5}}]', 0);
             INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid, airtime_permille) VALUES \
             (1, {ts}, 'ap-mld0', 'aa:aa:aa:aa:aa:01', 'Seven', 125);"
        ))
        .unwrap();
        let d = detail_answer(&c, NOW, Window::H1, "1").unwrap().unwrap();
        let g = &d.ssids[0];
        let links = &g.interfaces[0].links;
        let widths: Vec<_> = links
            .iter()
            .map(|l| (l.link_id, l.freq_mhz, l.width_mhz))
            .collect();
        assert_eq!(
            widths,
            [(1, Some(5180), Some(160)), (2, Some(6135), Some(320))]
        );
        assert_eq!(
            links[1].addr.map(|a| a.to_string()).as_deref(),
            Some("02:00:00:00:00:62")
        );
        assert_eq!(g.clients[0].airtime_permille, Some(125));
    }

    #[test]
    fn detail_groups_clients_by_ssid_with_lease_names() {
        let c = db();
        let ts = NOW - 1000;
        router(&c, 1, "ap-kitchen", Some("home"), ts, ts);
        router(&c, 2, "gw-main", Some("home"), ts, ts);
        iface(&c, 1, ts, "wlan0", "wifi", Some(5));
        iface(&c, 1, ts, "lo", "loopback", Some(5));
        c.execute_batch(&format!(
            "INSERT INTO wireless_interfaces (router_id, name, type, ssid, channel, updated_ms) VALUES \
             (1, 'wlan0', 'AP', 'HomeNet', 6, 0), (1, 'wlan1', 'AP', 'HomeNet', 36, 0), \
             (1, 'wlan2', 'AP', 'Guest', 1, 0), (1, 'mesh0', 'mesh point', NULL, 36, 0);
             INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid, signal_dbm) VALUES \
             (1, {ts}, 'wlan0', 'aa:aa:aa:aa:aa:01', 'HomeNet', -50), (1, {ts}, 'wlan1', 'aa:aa:aa:aa:aa:02', 'HomeNet', -60), \
             (1, {ts}, 'mesh0', 'aa:aa:aa:aa:aa:03', NULL, -70), (1, {ts}, 'wlan0', 'aa:aa:aa:aa:aa:04', 'HomeNet', -40);
             INSERT INTO leases (router_id, ip, mac, hostname, expires, updated_ms) VALUES \
             (1, '192.168.1.20', 'aa:aa:aa:aa:aa:01', 'zed-laptop', {exp}, 0), \
             (1, 'fd00::20', 'aa:aa:aa:aa:aa:01', NULL, NULL, 0), \
             (1, '192.168.1.3', NULL, NULL, NULL, 0), \
             (2, '192.168.1.30', 'aa:aa:aa:aa:aa:02', 'amy-phone', NULL, 0);
             INSERT INTO wg_peer_samples (router_id, ts_ms, iface, public_key, name, allowed_ips, latest_handshake, \
             rx_bytes, tx_bytes) VALUES \
             (1, {ts}, 'wg0', 'k1', 'anna', '10.0.0.2/32,fd00::2/128', {hs_new}, 1, 2), \
             (1, {ts}, 'wg0', 'k2', 'ben', '10.0.0.3/32', {hs_old}, 1, 2), \
             (1, {ts}, 'wg0', 'k3', NULL, '10.0.0.4/32', NULL, 0, 0);
             INSERT INTO ovpn_client_samples (router_id, ts_ms, instance, common_name, real_address, rx_bytes, \
             tx_bytes, connected_since) VALUES (1, {ts}, 'server', 'laptop-anna', '203.0.113.45:40123', 5, 6, {since});",
            exp = NOW / 1000 + 600,
            hs_new = ts / 1000 - 20,
            hs_old = ts / 1000 - 600,
            since = ts / 1000 - 3600,
        ))
        .unwrap();

        assert!(detail_answer(&c, NOW, Window::H1, "nope")
            .unwrap()
            .is_none());
        assert!(detail_answer(&c, NOW, Window::H1, "999").unwrap().is_none());
        let by_name = detail_answer(&c, NOW, Window::H1, "AP-KITCHEN")
            .unwrap()
            .unwrap();
        assert_eq!(by_name.router.id, 1);
        let d = detail_answer(&c, NOW, Window::H1, "1").unwrap().unwrap();
        assert_eq!(d.interfaces.len(), 1, "loopback is left out");
        assert_eq!(d.interfaces[0].window_rx_bytes, Some(5));

        let names: Vec<Option<&str>> = d.ssids.iter().map(|g| g.ssid.as_deref()).collect();
        assert_eq!(names, vec![Some("Guest"), Some("HomeNet"), None]);
        let home = &d.ssids[1];
        assert_eq!(
            home.interfaces
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            vec!["wlan0", "wlan1"]
        );
        let hosts: Vec<(Option<&str>, Option<&str>)> = home
            .clients
            .iter()
            .map(|c| (c.hostname.as_deref(), c.ip.as_deref()))
            .collect();
        assert_eq!(
            hosts,
            vec![
                (Some("amy-phone"), Some("192.168.1.30")),
                (Some("zed-laptop"), Some("192.168.1.20")),
                (None, None)
            ]
        );
        assert!(d.ssids[0].clients.is_empty());
        assert_eq!(d.ssids[2].clients.len(), 1);
        assert_eq!(d.ssids[2].interfaces[0].iftype, "mesh point");

        assert_eq!(
            d.leases.iter().map(|l| l.ip.as_str()).collect::<Vec<_>>(),
            vec!["192.168.1.3", "192.168.1.20", "fd00::20"]
        );
        assert_eq!(d.leases[1].expires_in_s, Some(600));

        let wg: Vec<(&str, Option<i64>)> = d
            .wireguard
            .iter()
            .map(|p| (p.status.as_str(), p.handshake_age_s))
            .collect();
        assert_eq!(
            wg,
            vec![
                ("never", None),
                ("active", Some(20)),
                ("inactive", Some(600))
            ]
        );
        assert_eq!(
            d.wireguard[1].allowed_ips,
            vec!["10.0.0.2/32", "fd00::2/128"]
        );
        assert_eq!(d.openvpn.len(), 1);
        assert_eq!(d.openvpn[0].connected_s, Some(3600));
    }

    #[test]
    fn empty_fleet_and_router_without_reports() {
        let c = db();
        let f = fleet_answer(&c, NOW, Window::H1, None, None, &every()).unwrap();
        assert!(f.routers.is_empty() && f.sites.is_empty());
        assert_eq!(f.totals.routers, 0);
        c.execute(
            "INSERT INTO routers (id, name, hostname, cert_fingerprint, cert_not_after, enrolled_at) \
             VALUES (7, 'fresh', 'fresh', 'fp', 0, 1)",
            [],
        )
        .unwrap();
        let f = fleet_answer(&c, NOW, Window::H1, None, None, &every()).unwrap();
        assert_eq!(f.routers[0].status, "never");
        assert_eq!(f.routers[0].wan_interface, None);
        let d = detail_answer(&c, NOW, Window::D7, "fresh")
            .unwrap()
            .unwrap();
        assert!(d.interfaces.is_empty() && d.ssids.is_empty() && d.leases.is_empty());
    }
}
