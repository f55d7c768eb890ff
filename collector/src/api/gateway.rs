//! Route group `gateway`: the cloud-dashboard gateway WAN port statistics, over the fleet.
//!
//! The collector is the organization, sites are the routers' `site` values and every router is
//! a gateway whose ports are its network interfaces (from its latest report) except `lo`.
//! Answers use the dashboard's envelope `{"success": true, "data": ...}`.
//!
//! - `GET /api/organization`: name (`routerstats`), id (the CA hash) and counts.
//! - `GET /api/sites`: one entry per site with its router counts.
//! - `GET /api/gateways?duration=15m|1h|1d|7d[&site_id=]`: every router with per-port RX/TX
//!   totals for the window: sums of deltas, not cumulative counters. 15m and 1h sum the raw
//!   samples (for the whole fleet: the raw samples of the partial 5-minute buckets at the edges
//!   and the 5-minute rollups of the whole buckets inside, which hold the same sums); 1d sums
//!   the 5-minute rollups (1-hour rollups for the whole hours inside the window, which hold the
//!   same sums); 7d sums the 1-hour rollups. The whole fleet is read with one bucket-range query
//!   per table, a site's routers port by port through the per-key indexes. The WAN-health
//!   figures (probes) come from the per-router probe rollups and the raw probe samples of the
//!   partial edges (`fleet::probe_figures_of`); with `site_id` only the site's routers are read.
//! - `GET /api/gateway/{id}/ports`: each port's latest cumulative counters and rates.
//! - `GET /api/gateway/{id}/port/{port}/traffic?duration=`: exactly [`POINTS`] points of
//!   `duration / 20` each (45 s, 180 s, 4320 s, 30240 s); see [`port_traffic_series`].
//!
//! Window membership: the window is `[end - duration, end]` with `end` the current time rounded
//! up to a whole second. A raw
//! sample belongs to it when its `ts_ms` does (its delta is the traffic since the previous
//! sample); a rollup bucket when its `bucket_start_ms` does. The series puts each sample or
//! bucket in the interval holding that time, so its points always sum to the window totals of
//! `/api/gateways`. `{id}` is the numeric router id or the router name.

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::envelope::{envelope, Envelope};
use super::extract::bad_query;
use super::fleet::{self, find_router, RouterInfo};
use super::monitor::to_u64;
use super::paging::{bounds, page_arg, set_next_headers, PageBounds};
use super::readpool::db_err;
use super::times::iso_ms;
use super::window::{window_bounds, window_totals, Source, SumScope, Totals, Window, POINTS};
use super::{require_role, with_read, ApiError, ApiState};
use crate::clock::now_ms;
use crate::pki::tokens::Role;

/// Name of the organization (the collector) until the configuration has a key for it.
pub const ORG_NAME: &str = "routerstats";
/// Longest accepted gateway id or name, port name and site filter.
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_PORT_CHARS: usize = 64;

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/organization", get(organization))
        .route("/api/sites", get(sites))
        .route("/api/gateways", get(gateways))
        .route("/api/gateway/{id}/ports", get(gateway_ports))
        .route("/api/gateway/{id}/port/{port}/traffic", get(port_traffic))
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(organization, sites, gateways, gateway_ports, port_traffic))]
pub struct Doc;

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// The router's ports: its interfaces in its newest report, `lo` excluded.
const PORTS_SQL: &str = "SELECT r.id, s.name, s.kind, s.rx_bytes, s.tx_bytes, s.rx_packets, s.tx_packets, \
     s.rx_errs, s.tx_errs, s.rx_bps, s.tx_bps \
     FROM routers r CROSS JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE s.name <> 'lo' AND s.kind <> 'loopback'";

/// One port's raw deltas in `[?3, ?4]` (index `interface_samples_key`).
const RAW_SERIES_SQL: &str =
    "SELECT ts_ms, coalesce(rx_delta, 0), coalesce(tx_delta, 0) FROM interface_samples \
     WHERE router_id = ?1 AND name = ?2 AND ts_ms BETWEEN ?3 AND ?4";

/// One port's rollup buckets starting in `[?3, ?4]` (primary key).
const ROLLUP_SERIES_SQL: &str = "SELECT bucket_start_ms, rx_bytes, tx_bytes FROM {table} \
     WHERE router_id = ?1 AND name = ?2 AND bucket_start_ms BETWEEN ?3 AND ?4";

/// A port's latest counters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortRow {
    name: String,
    kind: String,
    rx_bytes: u64,
    tx_bytes: u64,
    rx_packets: u64,
    tx_packets: u64,
    rx_errs: u64,
    tx_errs: u64,
    rx_bps: Option<u64>,
    tx_bps: Option<u64>,
}

/// Ports by router id of the routers with `after < id <= last` (one page, or one router as
/// `(id - 1, id)`), each router's ports by name.
fn load_ports(
    conn: &Connection,
    (after, last): (i64, i64),
) -> Result<HashMap<i64, Vec<PortRow>>, ApiError> {
    let sql = format!("{PORTS_SQL} AND r.id > ?1 AND r.id <= ?2 ORDER BY r.id, s.name");
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let map_row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, PortRow)> {
        Ok((
            r.get(0)?,
            PortRow {
                name: r.get(1)?,
                kind: r.get(2)?,
                rx_bytes: to_u64(r.get(3)?),
                tx_bytes: to_u64(r.get(4)?),
                rx_packets: to_u64(r.get(5)?),
                tx_packets: to_u64(r.get(6)?),
                rx_errs: to_u64(r.get(7)?),
                tx_errs: to_u64(r.get(8)?),
                rx_bps: r.get::<_, Option<i64>>(9)?.map(to_u64),
                tx_bps: r.get::<_, Option<i64>>(10)?.map(to_u64),
            },
        ))
    };
    let rows = st.query_map([after, last], map_row).map_err(db_err)?;
    let mut out: HashMap<i64, Vec<PortRow>> = HashMap::new();
    for row in rows {
        let (id, port) = row.map_err(db_err)?;
        out.entry(id).or_default().push(port);
    }
    Ok(out)
}

/// `template` with `{table}` replaced by the rollup table of `source`.
fn rollup_sql(template: &str, source: Source) -> String {
    let table = if source == Source::Rollup1h {
        "interface_rollup_1h"
    } else {
        "interface_rollup_5m"
    };
    template.replace("{table}", table)
}

/// `wan` for PPPoE and `wan*` interfaces, `vpn` for WireGuard and tunnels, `lan` otherwise.
pub fn port_usage(name: &str, kind: &str) -> &'static str {
    if kind == "pppoe" || name.starts_with("wan") || name.starts_with("pppoe") {
        "wan"
    } else if kind == "wireguard" || kind == "tunnel" {
        "vpn"
    } else {
        "lan"
    }
}

/// `connected`, `disconnected` or `revoked` (the dashboard's device status words).
fn gateway_status(r: &RouterInfo, now: i64) -> &'static str {
    match r.status(now) {
        "online" => "connected",
        "revoked" => "revoked",
        _ => "disconnected",
    }
}

fn check_len(what: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.is_empty() || v.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{what} must be 1 to {max} characters"
        )));
    }
    Ok(())
}

fn not_found_gateway(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no gateway (router) with id or name {id:?}"),
    )
}

/// A gateway (router) by id or name: 400 for an oversized value, 404 when unknown.
pub fn resolve_gateway(conn: &Connection, id: &str) -> Result<RouterInfo, ApiError> {
    check_len("gateway id", id, MAX_ID_CHARS)?;
    find_router(conn, id)?.ok_or_else(|| not_found_gateway(id))
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// `GET /api/organization` data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Organization {
    /// Hex SHA-256 of the collector's CA certificate (stable per installation).
    pub org_id: String,
    pub org_name: String,
    /// No source: null.
    pub created_time: Option<i64>,
    /// No source: null.
    pub updated_time: Option<i64>,
    pub num_sites: usize,
    pub num_gateways: usize,
    pub num_gateways_online: usize,
    pub num_gateways_revoked: usize,
}

fn ok<T>(data: T) -> Json<Envelope<T>> {
    Json(envelope(data))
}

/// Per router what [`RouterInfo::online`] needs, and its site: site, revoked, last seen and the
/// report interval, the latter looked up (one `reports_router_ts` seek) only for an unrevoked
/// router not seen since `?1` (now minus [`fleet::ONLINE_FLOOR_MS`]): one seen since is online
/// whatever its interval. No names, no sort: the fleet in one pass over `routers`.
const SITE_FACTS_SQL: &str = "SELECT r.site, r.revoked_at IS NOT NULL, r.last_seen_ms, \
     CASE WHEN r.revoked_at IS NULL AND r.last_seen_ms < ?1 THEN r.last_report_ms - \
     (SELECT p.ts_ms FROM reports p WHERE p.router_id = r.id AND p.ts_ms < r.last_report_ms \
     ORDER BY p.ts_ms DESC LIMIT 1) END FROM routers r";

/// The fleet by site: router and online counts per distinct `site` value (`None` for routers
/// without one), and how many routers are revoked.
#[derive(Debug, Default, PartialEq, Eq)]
struct SiteCounts {
    /// site -> (routers, online)
    sites: BTreeMap<Option<String>, (usize, usize)>,
    revoked: usize,
}

impl SiteCounts {
    fn routers(&self) -> usize {
        self.sites.values().map(|(n, _)| n).sum()
    }

    fn online(&self) -> usize {
        self.sites.values().map(|(_, on)| on).sum()
    }
}

/// [`SiteCounts`] of every router at `now` (see [`SITE_FACTS_SQL`]).
fn site_counts(conn: &Connection, now: i64) -> Result<SiteCounts, ApiError> {
    let mut st = conn.prepare_cached(SITE_FACTS_SQL).map_err(db_err)?;
    let mut rows = st
        .query([now.saturating_sub(fleet::ONLINE_FLOOR_MS)])
        .map_err(db_err)?;
    let mut out = SiteCounts::default();
    while let Some(r) = rows.next().map_err(db_err)? {
        let site: Option<String> = r.get(0).map_err(db_err)?;
        let revoked: bool = r.get(1).map_err(db_err)?;
        let seen: Option<i64> = r.get(2).map_err(db_err)?;
        let interval: Option<i64> = r.get(3).map_err(db_err)?;
        let online = !revoked && fleet::is_online(now, seen, interval);
        out.revoked += usize::from(revoked);
        let e = out.sites.entry(site).or_default();
        e.0 += 1;
        e.1 += usize::from(online);
    }
    Ok(out)
}

/// The collector as the organization: name, id and counts.
#[utoipa::path(get, path = "/api/organization", tag = "gateway",
    responses((status = 200, description = "The organization", body = Envelope<Organization>),
              (status = 401, description = "Missing or unknown API key")),
    security(("api_key" = [])))]
pub async fn organization(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Envelope<Organization>>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let now = now_ms();
    let counts = with_read(&state, move |c| site_counts(c, now)).await?;
    Ok(ok(Organization {
        org_id: routerstats_shared::token::hex(&state.ca_hash),
        org_name: ORG_NAME.to_string(),
        created_time: None,
        updated_time: None,
        num_sites: counts.sites.len(),
        num_gateways: counts.routers(),
        num_gateways_online: counts.online(),
        num_gateways_revoked: counts.revoked,
    }))
}

/// One site.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Site {
    /// The site name (null for routers enrolled without a site).
    pub id: Option<String>,
    pub name: Option<String>,
    /// No source: null.
    pub address: Option<String>,
    /// No source: null.
    pub timezone: Option<String>,
    pub num_devices: usize,
    pub num_online: usize,
}

/// The sites with their router counts.
#[utoipa::path(get, path = "/api/sites", tag = "gateway",
    responses((status = 200, description = "Sites", body = Envelope<Vec<Site>>),
              (status = 401, description = "Missing or unknown API key")),
    security(("api_key" = [])))]
pub async fn sites(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Envelope<Vec<Site>>>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let now = now_ms();
    let list = with_read(&state, move |c| site_counts(c, now))
        .await?
        .sites
        .into_iter()
        .map(|(site, (n, online))| Site {
            id: site.clone(),
            name: site,
            address: None,
            timezone: None,
            num_devices: n,
            num_online: online,
        })
        .collect();
    Ok(ok(list))
}

/// One port of `/api/gateways`, with its window totals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayPort {
    pub name: String,
    /// The agent's interface kind (`pppoe`, `ethernet`, `bridge`, `wifi`, ...).
    pub kind: String,
    /// `wan`, `vpn` or `lan` (from the kind and name).
    pub usage: String,
    /// True: the port was in the router's latest report.
    pub enabled: bool,
    /// In the latest report of an online router.
    pub up: bool,
    /// Bytes received in the window (sum of deltas).
    pub rx_bytes: u64,
    /// Bytes sent in the window (sum of deltas).
    pub tx_bytes: u64,
    /// Cumulative error counters from the latest report.
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// No source (no per-window packet deltas): null.
    pub rx_pkts: Option<u64>,
    pub tx_pkts: Option<u64>,
    /// No source (the agent reads no interface configuration): null.
    pub wan_name: Option<String>,
    pub description: Option<String>,
    /// A WAN port's address and prefix length (`/24`), from the agent's WAN addresses (its
    /// first IPv4, else IPv6); null on other ports.
    pub ip: Option<String>,
    pub netmask: Option<String>,
    /// No source: null.
    pub gateway: Option<String>,
    #[serde(rename = "type")]
    pub ip_type: Option<String>,
    pub vlan_id: Option<String>,
    #[serde(rename = "override")]
    pub override_: Option<String>,
    pub speed: Option<u64>,
    pub mac: Option<String>,
}

/// One gateway of `/api/gateways`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Gateway {
    /// `routers.id`.
    pub id: i64,
    pub name: String,
    pub hostname: String,
    pub site_id: Option<String>,
    pub site_name: Option<String>,
    pub model: Option<String>,
    /// The OpenWrt release.
    pub version: Option<String>,
    /// `connected`, `disconnected` or `revoked`.
    pub status: String,
    /// Seconds, from the latest report.
    pub uptime: Option<i64>,
    pub last_seen: Option<String>,
    /// The first WAN IPv4 address (else IPv6) from the newest report; null for agents before
    /// WAN addresses or a router without a default route.
    pub ip: Option<String>,
    /// No source: null.
    pub mac: Option<String>,
    /// WAN health from the agent's active probes (default gateways and configured targets)
    /// over the window: mean round-trip time in ms (null without replies), lost share of the
    /// echo requests in percent and requests sent (null / 0 without probe samples).
    pub latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub packet_loss_percent: Option<f64>,
    pub probes_sent: i64,
    pub ports: Vec<GatewayPort>,
    pub num_ports: usize,
    /// Sums over the ports.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Answer of `GET /api/gateways`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewaysResponse {
    pub success: bool,
    pub duration: Window,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
    pub data: Vec<Gateway>,
}

/// Query of `GET /api/gateways`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GatewaysQuery {
    /// `15m`, `1h`, `1d` or `7d` (default `7d`).
    #[param(schema_with = Window::schema)]
    pub duration: Option<String>,
    /// Only the routers of this site.
    #[param(max_length = 128)]
    pub site_id: Option<String>,
    /// Routers per page (default 100; above 1000 means 1000).
    #[param(schema_with = super::paging::limit_schema)]
    pub limit: Option<String>,
    /// The cursor of the next page, from the previous page's `X-Next-Cursor` header (or its
    /// `Link` rel="next"); absent: the first page.
    #[param(schema_with = super::paging::cursor_schema)]
    pub cursor: Option<String>,
}

/// The gateways of one page of routers (of the site, if one is given) with their ports'
/// RX/TX totals over the window.
pub fn gateways_in_window(
    conn: &Connection,
    window: Window,
    now: i64,
    site: Option<&str>,
    page: &PageBounds,
) -> Result<GatewaysResponse, ApiError> {
    let (start, end) = window_bounds(window, now);
    let ids = (page.after, page.last);
    let routers = fleet::load_routers_of(conn, page)?;
    let selected: Vec<&RouterInfo> = routers
        .iter()
        .filter(|r| site.is_none_or(|s| r.site.as_deref() == Some(s)))
        .collect();
    // The page's ports in one query, a site's router by router.
    let mut ports = match site {
        None => load_ports(conn, ids)?,
        Some(_) => {
            let mut m = HashMap::new();
            for r in &selected {
                m.extend(load_ports(conn, (r.id.saturating_sub(1), r.id))?);
            }
            m
        }
    };
    // A site's totals are summed for its routers only; the page's routers in one pass
    // otherwise.
    let totals = match site {
        // A page holding the whole fleet reads each table's bucket range once.
        None if ids == (0, i64::MAX) => window_totals(conn, window, start, end, SumScope::Fleet)?,
        None => window_totals(conn, window, start, end, SumScope::Routers(ids.0, ids.1))?,
        Some(_) => {
            let mut acc = Totals::new();
            for r in &selected {
                acc.extend(window_totals(
                    conn,
                    window,
                    start,
                    end,
                    SumScope::Router(r.id),
                )?);
            }
            acc
        }
    };
    // A site's routers one by one (a site is a few of the page's routers), the page in one pass.
    let probes = match site {
        None => fleet::probe_figures_of(conn, ids, start, end).map_err(db_err)?,
        Some(_) => {
            let mut m = HashMap::new();
            for r in &selected {
                let one = (r.id.saturating_sub(1), r.id);
                m.extend(fleet::probe_figures_of(conn, one, start, end).map_err(db_err)?);
            }
            m
        }
    };
    let mut wan = fleet::wan_addresses_of(conn, ids).map_err(db_err)?;
    let data = selected
        .into_iter()
        .map(|r| {
            let link = (
                probes.get(&r.id).copied().unwrap_or_default(),
                wan.remove(&r.id).unwrap_or_default(),
            );
            gateway_entry(
                r,
                ports.remove(&r.id).unwrap_or_default(),
                &totals,
                now,
                link,
            )
        })
        .collect();
    Ok(GatewaysResponse {
        success: true,
        duration: window,
        start: start / 1000,
        end: end / 1000,
        data,
    })
}

fn gateway_entry(
    r: &RouterInfo,
    ports: Vec<PortRow>,
    totals: &Totals,
    now: i64,
    (probe, wan): (fleet::ProbeFigures, Vec<fleet::WanAddr>),
) -> Gateway {
    let online = r.online(now);
    // WAN addresses come IPv4 first: a port's first one is its IPv4 when it has one.
    let port_addr = |name: &str| wan.iter().find(|a| a.device == name);
    let ports: Vec<GatewayPort> = ports
        .into_iter()
        .map(|p| {
            let (rx, tx) = totals
                .get(&(r.id, p.name.clone()))
                .copied()
                .unwrap_or((0, 0));
            GatewayPort {
                usage: port_usage(&p.name, &p.kind).to_string(),
                enabled: true,
                up: online,
                rx_bytes: rx,
                tx_bytes: tx,
                rx_errors: p.rx_errs,
                tx_errors: p.tx_errs,
                rx_pkts: None,
                tx_pkts: None,
                wan_name: None,
                description: None,
                ip: port_addr(&p.name).map(|a| a.ip().to_string()),
                netmask: port_addr(&p.name)
                    .and_then(|a| a.addr.split_once('/'))
                    .map(|(_, n)| format!("/{n}")),
                gateway: None,
                ip_type: None,
                vlan_id: None,
                override_: None,
                speed: None,
                mac: None,
                name: p.name,
                kind: p.kind,
            }
        })
        .collect();
    Gateway {
        id: r.id,
        name: r.name.clone(),
        hostname: r.hostname.clone(),
        site_id: r.site.clone(),
        site_name: r.site.clone(),
        model: r.model.clone(),
        version: r.release.clone(),
        status: gateway_status(r, now).to_string(),
        uptime: r.uptime_s,
        last_seen: r.last_seen_ms.map(iso_ms),
        ip: wan.first().map(|a| a.ip().to_string()),
        mac: None,
        latency_ms: probe.latency_ms,
        max_latency_ms: probe.max_latency_ms,
        packet_loss_percent: probe.loss_percent(),
        probes_sent: probe.sent,
        num_ports: ports.len(),
        rx_bytes: ports.iter().fold(0u64, |a, p| a.saturating_add(p.rx_bytes)),
        tx_bytes: ports.iter().fold(0u64, |a, p| a.saturating_add(p.tx_bytes)),
        ports,
    }
}

/// The response-cache key of `/api/gateways`: the parsed window, site and page.
fn gateways_key(window: Window, site: Option<&str>, page: &PageBounds) -> String {
    super::cache::key(
        "/api/gateways",
        &[("duration", &window), ("site_id", &site), ("page", page)],
    )
}

/// Every router with windowed per-port RX/TX totals, a page of routers at a time.
#[utoipa::path(get, path = "/api/gateways", tag = "gateway", params(GatewaysQuery),
    responses((status = 200, description = "Gateways with window totals: one page of routers in router id order \
        (`limit`, default 100, at most 1000; `cursor`), those of `site_id` when given (a page may then hold fewer \
        or none); the next page's cursor is in the `X-Next-Cursor` and `Link` (rel=\"next\") headers, absent on \
        the last page. Served from the response cache \
        (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old, so the window's end (`end`) may lag \
        the request by that much; after new reports a cached answer is still served while one background \
        task recomputes it.", body = GatewaysResponse),
              (status = 400, description = "Unknown duration, oversized site_id, bad limit or cursor"),
              (status = 401, description = "Missing or unknown API key")),
    security(("api_key" = [])))]
pub async fn gateways(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<GatewaysQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Query(q) = q.map_err(bad_query)?;
    let window = Window::from_query(q.duration.as_deref(), Window::D7)?;
    let site = q.site_id.filter(|s| !s.is_empty());
    if let Some(s) = &site {
        check_len("site_id", s, MAX_ID_CHARS)?;
    }
    let page = page_arg(q.limit.as_deref(), q.cursor.as_deref())?;
    let page = with_read(&state, move |c| bounds(c, page).map_err(db_err)).await?;
    let key = gateways_key(window, site.as_deref(), &page);
    let next = page.next_cursor.clone();
    let mut resp = super::cache::cached_json(&state, &key, move |c| {
        // The window ends when the answer is computed (possibly in a background refresh).
        gateways_in_window(c, window, now_ms(), site.as_deref(), &page)
    })
    .await?;
    set_next_headers(&mut resp, &uri, next.as_deref());
    Ok(resp)
}

/// One port of `/api/gateway/{id}/ports`: latest cumulative counters and rates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortStat {
    pub kind: String,
    pub usage: String,
    pub up: bool,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_pkts: u64,
    pub tx_pkts: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Bits per second over the last report interval (null right after an agent start).
    pub rx_bps: Option<u64>,
    pub tx_bps: Option<u64>,
    /// No source: null.
    pub speed: Option<u64>,
    pub mac: Option<String>,
    pub full_duplex: Option<bool>,
}

/// `GET /api/gateway/{id}/ports` data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayPorts {
    pub gateway_id: i64,
    pub gateway_name: String,
    pub ports: BTreeMap<String, PortStat>,
    /// Unix seconds of the latest report (collector clock); null before the first.
    pub timestamp: Option<i64>,
}

/// A gateway's ports with their latest cumulative counters and rates.
pub fn gateway_port_stats(conn: &Connection, id: &str, now: i64) -> Result<GatewayPorts, ApiError> {
    let r = resolve_gateway(conn, id)?;
    let online = r.online(now);
    let ports = load_ports(conn, (r.id.saturating_sub(1), r.id))?
        .remove(&r.id)
        .unwrap_or_default();
    Ok(GatewayPorts {
        gateway_id: r.id,
        gateway_name: r.name.clone(),
        timestamp: r.last_seen_ms.map(|ms| ms / 1000),
        ports: ports
            .into_iter()
            .map(|p| {
                let stat = PortStat {
                    usage: port_usage(&p.name, &p.kind).to_string(),
                    kind: p.kind,
                    up: online,
                    rx_bytes: p.rx_bytes,
                    tx_bytes: p.tx_bytes,
                    rx_pkts: p.rx_packets,
                    tx_pkts: p.tx_packets,
                    rx_errors: p.rx_errs,
                    tx_errors: p.tx_errs,
                    rx_bps: p.rx_bps,
                    tx_bps: p.tx_bps,
                    speed: None,
                    mac: None,
                    full_duplex: None,
                };
                (p.name, stat)
            })
            .collect(),
    })
}

/// A gateway's ports with their latest counters.
#[utoipa::path(get, path = "/api/gateway/{id}/ports", tag = "gateway",
    params(("id" = String, Path, description = "Router id or name", min_length = 1, max_length = 128)),
    responses((status = 200, description = "Ports", body = Envelope<GatewayPorts>),
              (status = 400, description = "Oversized id"),
              (status = 401, description = "Missing or unknown API key"),
              (status = 404, description = "Unknown gateway")),
    security(("api_key" = [])))]
pub async fn gateway_ports(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<GatewayPorts>>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let now = now_ms();
    Ok(ok(with_read(&state, move |c| {
        gateway_port_stats(c, &id, now)
    })
    .await?))
}

/// One interval of a traffic series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TrafficPoint {
    /// Unix seconds of the interval's start.
    pub timestamp: i64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Average bits per second over the interval.
    pub rx_bps: u64,
    pub tx_bps: u64,
}

/// A port's traffic over a window in [`POINTS`] equal intervals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TrafficSeries {
    pub gateway_id: i64,
    pub gateway_name: String,
    pub port_id: String,
    pub duration: Window,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
    /// Seconds per point.
    pub interval: i64,
    /// Window totals (the sums of the points).
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The dashboard's arrays: interval starts and rates, point by point.
    pub timestamps: Vec<i64>,
    pub rx_bps: Vec<u64>,
    pub tx_bps: Vec<u64>,
    pub points: Vec<TrafficPoint>,
}

/// The traffic series of port `port` of gateway `gateway` (id or name) over `window` ending at
/// `now_ms`: exactly [`POINTS`] points, empty intervals as zeros. 400 for oversized ids, 404 for
/// an unknown gateway or a port that is not in the router's latest report (or is `lo`).
pub fn port_traffic_series(
    conn: &Connection,
    gateway: &str,
    port: &str,
    window: Window,
    now_ms: i64,
) -> Result<TrafficSeries, ApiError> {
    check_len("port id", port, MAX_PORT_CHARS)?;
    let r = resolve_gateway(conn, gateway)?;
    let ports = load_ports(conn, (r.id.saturating_sub(1), r.id))?
        .remove(&r.id)
        .unwrap_or_default();
    if !ports.iter().any(|p| p.name == port) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "gateway {} has no port {port:?} (see /api/gateway/{}/ports)",
                r.name, r.id
            ),
        ));
    }
    let (start, end) = window_bounds(window, now_ms);
    let interval = window.interval_ms();
    let mut rx = [0u64; POINTS];
    let mut tx = [0u64; POINTS];
    let sql = match window.source() {
        Source::Raw => RAW_SERIES_SQL.to_string(),
        source => rollup_sql(ROLLUP_SERIES_SQL, source),
    };
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = st
        .query_map(params![r.id, port, start, end], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .map_err(db_err)?;
    for row in rows {
        let (ts, drx, dtx) = row.map_err(db_err)?;
        let i = usize::try_from(ts.saturating_sub(start) / interval.max(1))
            .unwrap_or(0)
            .min(POINTS - 1);
        if let (Some(a), Some(b)) = (rx.get_mut(i), tx.get_mut(i)) {
            *a = a.saturating_add(to_u64(drx));
            *b = b.saturating_add(to_u64(dtx));
        }
    }
    let secs = (interval / 1000).max(1) as u64;
    let points: Vec<TrafficPoint> = (0..POINTS)
        .map(|i| {
            let (a, b) = (
                rx.get(i).copied().unwrap_or(0),
                tx.get(i).copied().unwrap_or(0),
            );
            TrafficPoint {
                timestamp: (start + i as i64 * interval) / 1000,
                rx_bytes: a,
                tx_bytes: b,
                rx_bps: a.saturating_mul(8) / secs,
                tx_bps: b.saturating_mul(8) / secs,
            }
        })
        .collect();
    Ok(TrafficSeries {
        gateway_id: r.id,
        gateway_name: r.name,
        port_id: port.to_string(),
        duration: window,
        start: start / 1000,
        end: end / 1000,
        interval: interval / 1000,
        rx_bytes: points
            .iter()
            .fold(0u64, |s, p| s.saturating_add(p.rx_bytes)),
        tx_bytes: points
            .iter()
            .fold(0u64, |s, p| s.saturating_add(p.tx_bytes)),
        timestamps: points.iter().map(|p| p.timestamp).collect(),
        rx_bps: points.iter().map(|p| p.rx_bps).collect(),
        tx_bps: points.iter().map(|p| p.tx_bps).collect(),
        points,
    })
}

/// Query of the traffic route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrafficQuery {
    /// `15m`, `1h`, `1d` or `7d` (default `1h`).
    #[param(schema_with = Window::schema)]
    pub duration: Option<String>,
}

/// A port's traffic as 20 points of `duration / 20`.
#[utoipa::path(get, path = "/api/gateway/{id}/port/{port}/traffic", tag = "gateway",
    params(("id" = String, Path, description = "Router id or name", min_length = 1, max_length = 128),
           ("port" = String, Path, description = "Interface name", min_length = 1, max_length = 64), TrafficQuery),
    responses((status = 200, description = "Series", body = Envelope<TrafficSeries>),
              (status = 400, description = "Unknown duration or oversized id"),
              (status = 401, description = "Missing or unknown API key"),
              (status = 404, description = "Unknown gateway or port")),
    security(("api_key" = [])))]
pub async fn port_traffic(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<TrafficQuery>, QueryRejection>,
) -> Result<Json<Envelope<TrafficSeries>>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let Path((id, port)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(q) = q.map_err(bad_query)?;
    let window = Window::from_query(q.duration.as_deref(), Window::H1)?;
    let now = now_ms();
    Ok(ok(with_read(&state, move |c| {
        port_traffic_series(c, &id, &port, window, now)
    })
    .await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::monitor::tests::{assert_no_big_scan, empty_db, plan};
    use crate::api::window::{
        ceil_to, raw_window_split, PORT_KEYS_SQL, RAW_ROWS_SQL, ROLLUP_PORT_SUM_SQL,
        ROLLUP_RANGE_SQL,
    };
    use crate::store::{BUCKET_1H_MS, BUCKET_5M_MS};

    const HOUR: i64 = BUCKET_1H_MS;
    /// A day boundary (2023-11-15T00:00:00Z).
    const T0: i64 = 1_700_006_400_000;

    /// Every router on one page.
    fn every() -> PageBounds {
        PageBounds {
            after: 0,
            last: i64::MAX,
            next_cursor: None,
        }
    }

    #[test]
    fn gateways_cache_key_normalizes_the_query() {
        let parsed = |d: Option<&str>| Window::from_query(d, Window::D7).unwrap();
        // No duration is the default window.
        assert_eq!(
            gateways_key(parsed(None), None, &every()),
            gateways_key(parsed(Some("7d")), None, &every())
        );
        let keys: std::collections::HashSet<String> = ["15m", "1h", "1d", "7d"]
            .into_iter()
            .flat_map(|d| {
                [
                    gateways_key(parsed(Some(d)), None, &every()),
                    gateways_key(parsed(Some(d)), Some("s1"), &every()),
                    gateways_key(parsed(Some(d)), Some("s2"), &every()),
                ]
            })
            .collect();
        assert_eq!(keys.len(), 12);
    }

    #[test]
    fn windows_parse_and_divide_into_twenty() {
        let secs: Vec<i64> = Window::ALL.iter().map(|w| w.interval_ms() / 1000).collect();
        assert_eq!(secs, [45, 180, 4320, 30240]);
        for w in Window::ALL {
            assert_eq!(Window::parse(w.as_str()).unwrap(), w);
            assert_eq!(w.interval_ms() * POINTS as i64, w.duration_ms());
        }
        for bad in ["2h", "", "15M", "1w", "7d;", "1d1d"] {
            assert_eq!(
                Window::parse(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        assert_eq!(Window::from_query(None, Window::D7).unwrap(), Window::D7);
        assert_eq!(
            window_bounds(Window::M15, 1_000_001),
            (1_001_000 - 900_000, 1_001_000)
        );
        assert_eq!(
            window_bounds(Window::M15, 1_000_000),
            (1_000_000 - 900_000, 1_000_000)
        );
        assert_eq!(window_bounds(Window::D7, i64::MAX).1, i64::MAX);
    }

    #[test]
    fn usage_words() {
        assert_eq!(port_usage("pppoe-wan", "pppoe"), "wan");
        assert_eq!(port_usage("wan", "ethernet"), "wan");
        assert_eq!(port_usage("wg0", "wireguard"), "vpn");
        assert_eq!(port_usage("br-lan", "bridge"), "lan");
    }

    #[test]
    fn queries_use_indexes() {
        let c = empty_db();
        let p = plan(&c, RAW_ROWS_SQL, 2);
        assert_no_big_scan(&p);
        assert!(p.contains("PRIMARY KEY"), "{p}");
        assert_no_big_scan(&plan(&c, &format!("{RAW_ROWS_SQL} WHERE r.id = ?3"), 3));
        assert_no_big_scan(&plan(&c, PORT_KEYS_SQL, 0));
        for table in ["interface_rollup_5m", "interface_rollup_1h"] {
            let p = plan(&c, &ROLLUP_RANGE_SQL.replace("{table}", table), 2);
            assert_no_big_scan(&p);
            assert!(
                p.contains("PRIMARY KEY (bucket_start_ms>? AND bucket_start_ms<?)"),
                "{p}"
            );
        }
        let p = plan(&c, ROLLUP_PORT_SUM_SQL, 8);
        assert_no_big_scan(&p);
        // Each of the three rollup reads is a keyed search (primary key or the per-key index).
        assert_eq!(p.matches("SEARCH interface_rollup").count(), 3, "{p}");
        assert_eq!(
            p.matches("PRIMARY KEY").count() + p.matches("USING INDEX interface_rollup").count(),
            3,
            "{p}"
        );
        for source in [Source::Rollup5m, Source::Rollup1h] {
            let series = plan(&c, &rollup_sql(ROLLUP_SERIES_SQL, source), 4);
            assert_no_big_scan(&series);
            assert!(
                series.contains("PRIMARY KEY") || series.contains("USING INDEX interface_rollup"),
                "{series}"
            );
        }
        let p = plan(&c, RAW_SERIES_SQL, 4);
        assert_no_big_scan(&p);
        assert!(
            p.contains("interface_samples_key") || p.contains("PRIMARY KEY"),
            "{p}"
        );
        assert_no_big_scan(&plan(&c, &format!("{PORTS_SQL} ORDER BY r.id, s.name"), 0));
        assert_no_big_scan(&plan(
            &c,
            &format!("{PORTS_SQL} AND r.id = ?1 ORDER BY s.name"),
            1,
        ));
    }

    /// A router with interface `eth0` (and `lo`) in its newest report at `last`, and rollup and
    /// raw rows as given.
    fn seed(
        c: &Connection,
        last: i64,
        raw: &[(i64, i64, i64)],
        r5: &[(i64, i64, i64)],
        r1: &[(i64, i64, i64)],
    ) {
        c.execute(
            "INSERT INTO routers (id, name, site, hostname, cert_fingerprint, cert_not_after, enrolled_at, last_seen_ms, last_report_ms) \
             VALUES (1, 'gw', 'home', 'gw', 'f', 0, 0, ?1, ?1)",
            [last],
        )
        .unwrap();
        for name in ["eth0", "lo"] {
            c.execute(
                "INSERT INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, rx_packets, rx_errs, rx_drop, \
                 tx_bytes, tx_packets, tx_errs, tx_drop) VALUES (1, ?1, ?2, 'ethernet', 5, 0, 0, 0, 6, 0, 0, 0)",
                params![last, name],
            )
            .unwrap();
        }
        for (ts, rx, tx) in raw {
            c.execute(
                "INSERT OR REPLACE INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, rx_packets, rx_errs, rx_drop, \
                 tx_bytes, tx_packets, tx_errs, tx_drop, rx_delta, tx_delta) VALUES (1, ?1, 'eth0', 'ethernet', 5, 0, 0, 0, 6, 0, 0, 0, ?2, ?3)",
                params![ts, rx, tx],
            )
            .unwrap();
        }
        for (table, rows) in [("interface_rollup_5m", r5), ("interface_rollup_1h", r1)] {
            for (b, rx, tx) in rows {
                c.execute(
                    &format!("INSERT INTO {table} (router_id, name, bucket_start_ms, rx_bytes, tx_bytes, samples) VALUES (1, 'eth0', ?1, ?2, ?3, 1)"),
                    params![b, rx, tx],
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn day_window_reads_hours_in_the_middle_and_five_minutes_at_the_edges() {
        let c = empty_db();
        let now = T0 + 30 * HOUR + 17 * 60_000 + 500; // 06:17:00.5 on day 2
        let (start, end) = window_bounds(Window::D1, now);
        // 5-minute buckets: one before the window, one at each edge, one in the middle hour.
        let b_before = start - 5 * 60_000 - (start % (5 * 60_000));
        let b_first = start - start % (5 * 60_000) + 5 * 60_000; // first bucket starting inside
        let b_mid = T0 + 20 * HOUR;
        let b_last = end - end % (5 * 60_000);
        let r5 = [
            (b_before, 1000, 1),
            (b_first, 1, 10),
            (b_mid, 7, 70),
            (b_last, 100, 1000),
        ];
        // The 1-hour rows hold the sums of their 5-minute rows; the middle one is read from here.
        let r1 = [(T0 + 20 * HOUR, 7, 70)];
        seed(&c, end, &[], &r5, &r1);
        let t = window_totals(&c, Window::D1, start, end, SumScope::Fleet).unwrap();
        assert_eq!(t.get(&(1, "eth0".into())), Some(&(108, 1080)));
        // The series agrees with the totals, point by point and in sum.
        let s = port_traffic_series(&c, "gw", "eth0", Window::D1, now).unwrap();
        assert_eq!(s.points.len(), POINTS);
        assert_eq!((s.rx_bytes, s.tx_bytes), (108, 1080));
        assert_eq!(s.interval, 4320);
        assert_eq!(s.points.last().map(|p| p.rx_bytes), Some(100));
        assert_eq!(s.points.first().map(|p| p.rx_bytes), Some(1));
        assert_eq!(s.end - s.start, 86_400);
        assert_eq!(s.timestamps.get(1).copied(), Some(s.start + 4320));
        // 100 bytes in 4320 s.
        assert_eq!(s.rx_bps.last().copied(), Some(100 * 8 / 4320));
        // By id too; the week window reads the 1-hour rows.
        let w = port_traffic_series(&c, "1", "eth0", Window::D7, now).unwrap();
        assert_eq!((w.rx_bytes, w.tx_bytes), (7, 70));
    }

    #[test]
    fn raw_windows_sum_deltas_and_the_series_matches() {
        let c = empty_db();
        let now = T0 + 10 * HOUR;
        let (start, end) = window_bounds(Window::M15, now);
        let raw = [
            (start - 1, 1_000_000, 1),
            (start, 1, 2),
            (start + 44_999, 10, 20),
            (start + 45_000, 100, 200),
            (end, 1000, 2000),
        ];
        seed(&c, end, &raw, &[], &[]);
        derive_rollups(&c);
        let t = window_totals(&c, Window::M15, start, end, SumScope::Router(1)).unwrap();
        assert_eq!(t.get(&(1, "eth0".into())), Some(&(1111, 2222)));
        let s = port_traffic_series(&c, "gw", "eth0", Window::M15, now).unwrap();
        let rx: Vec<u64> = s.points.iter().map(|p| p.rx_bytes).collect();
        assert_eq!(rx.first(), Some(&11));
        assert_eq!(rx.get(1), Some(&100));
        // A sample at the very end belongs to the last interval.
        assert_eq!(rx.last(), Some(&1000));
        assert_eq!(rx.iter().sum::<u64>(), 1111);
        assert_eq!(s.points.iter().filter(|p| p.rx_bytes == 0).count(), 17);
        let g = gateways_in_window(&c, Window::M15, now, None, &every()).unwrap();
        let gw = g.data.first().unwrap();
        // `lo` is not a port.
        assert_eq!(
            gw.ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["eth0"]
        );
        assert_eq!((gw.rx_bytes, gw.tx_bytes), (1111, 2222));
        assert!(
            gateways_in_window(&c, Window::M15, now, Some("office"), &every())
                .unwrap()
                .data
                .is_empty()
        );
    }

    /// Rebuilds `interface_rollup_5m` and `interface_rollup_1h` from the raw samples (what
    /// ingest writes).
    fn derive_rollups(c: &Connection) {
        for (table, len) in [
            ("interface_rollup_5m", BUCKET_5M_MS),
            ("interface_rollup_1h", HOUR),
        ] {
            c.execute_batch(&format!(
                "DELETE FROM {table}; INSERT INTO {table} (router_id, name, bucket_start_ms, rx_bytes, tx_bytes, samples) \
                 SELECT router_id, name, (ts_ms / {len}) * {len}, sum(coalesce(rx_delta, 0)), sum(coalesce(tx_delta, 0)), count(*) \
                 FROM interface_samples GROUP BY 1, 2, 3"
            ))
            .unwrap();
        }
    }

    #[test]
    fn raw_window_split_covers_the_window_once() {
        let m5 = BUCKET_5M_MS;
        // Aligned: only buckets.
        assert_eq!(
            raw_window_split(T0, T0 + 15 * 60_000 - 1),
            (
                [(T0, T0 - 1), (T0 + 15 * 60_000, T0 + 15 * 60_000 - 1)],
                (T0, T0 + 10 * 60_000)
            )
        );
        // Unaligned: raw edges around whole buckets.
        let (start, end) = (T0 + 1000, T0 + 15 * 60_000 + 1000);
        assert_eq!(
            raw_window_split(start, end),
            (
                [(start, T0 + m5 - 1), (T0 + 15 * 60_000, end)],
                (T0 + m5, T0 + 2 * m5)
            )
        );
        // Shorter than a bucket: raw only.
        let (r, b) = raw_window_split(T0 + 1, T0 + m5 - 1);
        assert_eq!(r[0], (T0 + 1, T0 + m5 - 1));
        assert!(r[1].0 > r[1].1 && b.0 > b.1);
        assert_eq!(ceil_to(-1, 10), 0);
        assert_eq!(ceil_to(11, 10), 20);
    }

    /// The fleet-wide path (range queries, 5-minute buckets for the whole buckets of raw
    /// windows) equals the straightforward sums of the old per-port path, on a store filled
    /// through the real ingest.
    #[test]
    fn fleet_totals_equal_straightforward_sums_after_ingest() {
        use crate::store::testutil::{enrolled_router, open_temp, rich_report};
        use crate::store::IngestItem;
        let (dir, mut store) = open_temp();
        let a = enrolled_router(&mut store, "gw-a").id;
        let b = enrolled_router(&mut store, "gw-b").id;
        let first = T0 + 17_000;
        // Three and a half hours of 30-second reports with uneven traffic; router b skips a
        // stretch (no samples in some buckets).
        for seq in 1..=420u64 {
            let ts = first + i64::try_from(seq).unwrap() * 30_000;
            let ra = rich_report(
                [1; 16],
                seq,
                u64::try_from(ts).unwrap(),
                seq * seq % 977 + seq * 40,
            );
            let rb = rich_report([2; 16], seq, u64::try_from(ts + 11_000).unwrap(), seq * 7);
            let mut batch = vec![IngestItem {
                router_id: a,
                received_at_ms: ts,
                report: &ra,
            }];
            if !(100..160).contains(&seq) {
                batch.push(IngestItem {
                    router_id: b,
                    received_at_ms: ts,
                    report: &rb,
                });
            }
            store.ingest(&batch).unwrap();
        }
        let c = Connection::open(dir.path().join("routerstats.db")).unwrap();
        let sums = |sql: &str, lo: i64, hi: i64| -> Totals {
            let mut st = c.prepare(sql).unwrap();
            let rows = st
                .query_map(params![lo, hi], |r| {
                    Ok((
                        (r.get::<_, i64>(0)?, r.get::<_, String>(1)?),
                        (to_u64(r.get(2)?), to_u64(r.get(3)?)),
                    ))
                })
                .unwrap();
            rows.map(Result::unwrap).collect()
        };
        let mut checked = 0;
        for offset_s in [0, 1, 299, 300, 3599, 3600, 4321, 7777, 10_800, 12_601] {
            let now = first + offset_s * 1000 + 250;
            for w in Window::ALL {
                let (start, end) = window_bounds(w, now);
                let expected = match w.source() {
                    Source::Raw => sums("SELECT router_id, name, coalesce(sum(rx_delta), 0), coalesce(sum(tx_delta), 0) FROM interface_samples WHERE ts_ms BETWEEN ?1 AND ?2 GROUP BY 1, 2", start, end),
                    Source::Rollup5m => sums("SELECT router_id, name, sum(rx_bytes), sum(tx_bytes) FROM interface_rollup_5m WHERE bucket_start_ms BETWEEN ?1 AND ?2 GROUP BY 1, 2", start, end),
                    Source::Rollup1h => sums("SELECT router_id, name, sum(rx_bytes), sum(tx_bytes) FROM interface_rollup_1h WHERE bucket_start_ms BETWEEN ?1 AND ?2 GROUP BY 1, 2", start, end),
                };
                let fleet = window_totals(&c, w, start, end, SumScope::Fleet).unwrap();
                let mut per_router = Totals::new();
                for id in [a, b] {
                    per_router
                        .extend(window_totals(&c, w, start, end, SumScope::Router(id)).unwrap());
                }
                let keys: std::collections::BTreeSet<&(i64, String)> = expected
                    .keys()
                    .chain(fleet.keys())
                    .chain(per_router.keys())
                    .collect();
                for k in keys {
                    let get = |t: &Totals| t.get(k).copied().unwrap_or((0, 0));
                    assert_eq!(get(&fleet), get(&expected), "{w:?} at +{offset_s} s: {k:?}");
                    assert_eq!(
                        get(&per_router),
                        get(&expected),
                        "{w:?} at +{offset_s} s: {k:?}"
                    );
                    if get(&expected).0 > 0 {
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn unknown_gateways_ports_and_oversized_ids() {
        let c = empty_db();
        let e = port_traffic_series(&c, "nope", "eth0", Window::H1, T0).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        seed(&c, T0, &[], &[], &[]);
        let e = port_traffic_series(&c, "gw", "lo", Window::H1, T0).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = port_traffic_series(&c, "gw", "wlan9", Window::H1, T0).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = port_traffic_series(&c, "gw", &"x".repeat(MAX_PORT_CHARS + 1), Window::H1, T0)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = gateway_port_stats(&c, &"9".repeat(MAX_ID_CHARS + 1), T0).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let p = gateway_port_stats(&c, "GW", T0).unwrap();
        assert_eq!(p.ports.keys().collect::<Vec<_>>(), ["eth0"]);
        assert_eq!(
            p.ports.get("eth0").map(|s| (s.rx_bytes, s.tx_bytes)),
            Some((5, 6))
        );
        // Empty intervals are zeros.
        let s = port_traffic_series(&c, "gw", "eth0", Window::H1, T0).unwrap();
        assert_eq!(s.points.len(), POINTS);
        assert!(s.points.iter().all(|p| p.rx_bytes == 0 && p.tx_bps == 0));
    }

    #[test]
    fn empty_fleet() {
        let c = empty_db();
        for w in Window::ALL {
            let g = gateways_in_window(&c, w, T0, None, &every()).unwrap();
            assert!(g.data.is_empty());
        }
        assert_eq!(site_counts(&c, T0).unwrap(), SiteCounts::default());
    }

    /// The narrow counts equal those of every router's [`RouterInfo`]: routers seen just now,
    /// within the online floor, later but within 3 report intervals, too long ago, never,
    /// revoked, with and without a site.
    #[test]
    fn site_counts_are_those_of_every_routers_status() {
        let c = empty_db();
        /// (id, site, last seen, revoked, report times)
        type Row<'a> = (i64, Option<&'a str>, Option<i64>, Option<i64>, &'a [i64]);
        #[rustfmt::skip]
        let fleet: [Row<'_>; 7] = [
            (1, Some("home"), Some(T0), None, &[T0 - 30_000, T0]),
            (2, Some("home"), Some(T0 - 80_000), None, &[T0 - 140_000, T0 - 80_000]),
            (3, Some("office"), Some(T0 - 250_000), None, &[T0 - 350_000, T0 - 250_000]),
            (4, Some("office"), Some(T0 - 250_000), None, &[T0 - 280_000, T0 - 250_000]),
            (5, None, None, None, &[]),
            (6, None, Some(T0), Some(5), &[T0 - 30_000, T0]),
            (7, None, Some(T0 - 100_000), None, &[T0 - 100_000]),
        ];
        for (id, site, seen, revoked, reports) in fleet {
            let last = reports.last().copied();
            c.execute(
                "INSERT INTO routers (id, name, site, hostname, cert_fingerprint, cert_not_after, \
                 enrolled_at, last_seen_ms, last_report_ms, revoked_at) \
                 VALUES (?1, ?2, ?3, 'h', ?2, 0, 0, ?4, ?5, ?6)",
                rusqlite::params![id, format!("r{id}"), site, seen, last, revoked],
            )
            .unwrap();
            for (seq, ts) in reports.iter().enumerate() {
                c.execute(
                    "INSERT INTO reports (router_id, boot_id, seq, ts_ms, received_ms, dropped_reports, \
                     uptime_s, load1, load5, load15, mem_total_kb, mem_available_kb, \
                     mem_available_derived, interface_count, station_count, lease_count, \
                     wg_peer_count, ovpn_client_count) \
                     VALUES (?1, x'00', ?2, ?3, ?3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
                    rusqlite::params![id, seq as i64, ts],
                )
                .unwrap();
            }
        }
        for now in [T0, T0 + 20_000, T0 + 100_000, T0 + 400_000] {
            let routers = fleet::load_routers(&c).unwrap();
            let mut want = SiteCounts::default();
            for r in &routers {
                let e = want.sites.entry(r.site.clone()).or_default();
                e.0 += 1;
                e.1 += usize::from(r.online(now));
                want.revoked += usize::from(r.revoked_at.is_some());
            }
            assert_eq!(site_counts(&c, now).unwrap(), want, "at {now}");
        }
        // At T0: 1 and 2 (within the floor), 3 (within 3 x 100 s); not 4 (3 x 30 s), 5, 6, 7.
        let at = site_counts(&c, T0).unwrap();
        assert_eq!((at.routers(), at.online(), at.revoked), (7, 3, 1));
    }

    #[test]
    fn site_counts_look_up_intervals_by_key() {
        let c = empty_db();
        let p = plan(&c, SITE_FACTS_SQL, 1);
        assert!(p.contains("reports_router_ts"), "{p}");
        assert_no_big_scan(&p);
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc = <Doc as utoipa::OpenApi>::openapi();
        for path in [
            "/api/organization",
            "/api/sites",
            "/api/gateways",
            "/api/gateway/{id}/ports",
            "/api/gateway/{id}/port/{port}/traffic",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
        assert!(serde_json::to_string(&doc).is_ok());
    }
}
