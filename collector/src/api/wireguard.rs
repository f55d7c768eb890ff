//! Route group `wireguard`: the routes of a WireGuard manager (Lightway VPN's `/api/metrics/...`,
//! `/peers`, `/peer/{name}...`, `/server-info`), answered over the WireGuard interfaces of every
//! (unrevoked) router in the fleet.
//!
//! Sources: the peer samples of each router's newest report (`wg_peer_samples` at
//! `routers.last_report_ms`, one primary-key range per router), per-key history from
//! `wg_peer_samples` (index `(public_key, ts_ms)`) for windows up to
//! [`RAW_HISTORY_MAX_HOURS`] and from `wg_rollup_1h` beyond, peer names from the routers' peer
//! descriptions in `/etc/config/network`, interface counters from `interface_samples`, the
//! interfaces' public keys, listen ports and fwmarks from `wg_interfaces` (current state of each
//! router's newest report).
//!
//! Conventions (see docs/api/wireguard.md): the router is the WireGuard "server", so `sent` is
//! what the router sent to the peer (`tx`) and `received` what it got from it (`rx`); `*_mb` and
//! `*_gb` are MiB and GiB; `*_kbps`/`*_mbps` are kilo-/megabits per second; a peer is active when
//! its latest handshake is at most [`ACTIVE_WITHIN_S`] seconds old (collector clock). A key or
//! name present on several routers answers all of them (`occurrences`), with the occurrence of
//! the most recent handshake at the top level.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{path, query};
use super::paging::{bounds, paged_json, PageBounds, PageQuery};
use super::readpool::db_err;
use super::times::{human_age, iso_utc};
use super::{require_role, with_read, ApiError, ApiState};
use crate::clock::now_ms;
use crate::pki::tokens::Role;
use crate::store::BUCKET_1H_MS;

/// A peer is active when its latest handshake is at most this old (seconds).
pub const ACTIVE_WITHIN_S: i64 = 180;
/// The manager's server interface: `server_public_key` and `wg0_conf_exists` are about it.
const SERVER_INTERFACE: &str = "wg0";
/// Largest `hours` of a history.
pub const MAX_HOURS: u32 = 24;
/// Histories up to this many hours come from raw samples; longer ones from hourly rollups.
pub const RAW_HISTORY_MAX_HOURS: u32 = 6;
/// Longest accepted public key in a path (a valid one is 44 characters).
const MAX_KEY_LEN: usize = 128;
/// Longest accepted peer name in a path.
const MAX_NAME_LEN: usize = 256;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The routes of this group.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/metrics/summary", get(summary))
        .route("/api/metrics/health", get(health))
        .route("/api/metrics/peers", get(metrics_peers))
        .route("/api/metrics/peers/active", get(metrics_active_peers))
        .route("/api/metrics/peer/{public_key}", get(metrics_peer))
        .route("/api/metrics/bandwidth", get(metrics_bandwidth))
        .route(
            "/api/metrics/peer/{public_key}/bandwidth",
            get(metrics_peer_bandwidth),
        )
        .route(
            "/api/metrics/peer/{public_key}/history",
            get(metrics_peer_history),
        )
        .route("/peers", get(peers))
        .route("/peer/{name}", get(peer))
        .route("/peer/{name}/metrics", get(peer_metrics))
        .route("/server-info", get(server_info))
}

/// The OpenAPI description of this group's routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        summary,
        health,
        metrics_peers,
        metrics_active_peers,
        metrics_peer,
        metrics_bandwidth,
        metrics_peer_bandwidth,
        metrics_peer_history,
        peers,
        peer,
        peer_metrics,
        server_info
    ),
    components(schemas(
        WgSummary,
        WgHealth,
        WgPeerStats,
        WgPeerList,
        WgActivePeerList,
        WgPeerDetail,
        WgPeerBandwidth,
        WgBandwidthList,
        WgPeerBandwidthDetail,
        WgHistoryPoint,
        WgKeyHistory,
        WgHistory,
        WgPeersResponse,
        WgPeerEntry,
        WgPeerEntryMetrics,
        WgTraffic,
        WgEntryBandwidth,
        WgPeersCount,
        WgPeerConfig,
        WgPeerMetrics,
        WgServerInfo,
        WgServerInterface
    )),
    tags((name = "wireguard", description = "WireGuard peers of every router (VPN manager routes)"))
)]
pub struct Doc;

// ---------------------------------------------------------------------------------------------
// Response types.

/// `GET /api/metrics/summary`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgSummary {
    /// Peers over every router and interface (a key on two routers counts twice).
    pub total_peers: u64,
    pub active_peers: u64,
    pub inactive_peers: u64,
    /// GiB sent by the routers to their peers (counters of the newest report).
    pub total_sent_gb: f64,
    /// GiB received by the routers from their peers.
    pub total_received_gb: f64,
    pub total_traffic_gb: f64,
    /// Megabits per second, summed over the newest sample of every peer.
    pub current_bandwidth_sent_mbps: f64,
    pub current_bandwidth_recv_mbps: f64,
    pub current_bandwidth_total_mbps: f64,
    /// Routers with at least one WireGuard peer.
    pub routers: u64,
}

/// `GET /api/metrics/health`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgHealth {
    /// Always `up` when this answers.
    pub api_status: String,
    /// State of the metrics store (the collector's database): `up` or `down`.
    pub prometheus_status: String,
    /// Where the fleet's Prometheus exposition is served (`/metrics`).
    pub prometheus_url: String,
    /// `ok`, or `failing: <error>` while database writes fail.
    pub database: String,
}

/// One peer on one router interface, from that router's newest report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerStats {
    /// Base64 public key.
    pub public_key: String,
    pub interface: String,
    /// Allowed IPs, comma-separated (`10.77.0.2/32,fd77::2/128`).
    pub allowed_ips: String,
    /// Bytes the router sent to the peer (transfer counter `tx`).
    pub sent_bytes: u64,
    /// Bytes the router received from the peer (`rx`).
    pub received_bytes: u64,
    pub total_bytes: u64,
    /// MiB, two decimals.
    pub sent_mb: f64,
    pub received_mb: f64,
    pub total_mb: f64,
    /// Unix seconds of the latest handshake; null when there has been none.
    pub last_handshake_timestamp: Option<i64>,
    /// Latest handshake, ISO 8601 UTC (`2025-11-18T10:30:45Z`); null when none.
    pub last_handshake: Option<String>,
    /// Age of the latest handshake (`2m 15s`); null when none.
    pub time_since_handshake: Option<String>,
    /// Latest handshake at most 180 s old.
    pub is_active: bool,
    /// `active` or `inactive`.
    pub status: String,
    /// The router holding this peer.
    pub router: String,
    pub site: Option<String>,
    /// The peer's description on the router (null when it has none).
    pub name: Option<String>,
    /// Current endpoint `ip:port`, null when unknown.
    pub endpoint: Option<String>,
    /// Unix seconds of the report these values come from.
    pub sample_timestamp: i64,
}

/// `GET /api/metrics/peers`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerList {
    pub peers: Vec<WgPeerStats>,
    pub count: usize,
}

/// `GET /api/metrics/peers/active`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgActivePeerList {
    pub active_peers: Vec<WgPeerStats>,
    pub count: usize,
}

/// `GET /api/metrics/peer/{public_key}`: the occurrence with the most recent handshake at the
/// top level, every occurrence (one per router and interface holding the key) in `occurrences`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerDetail {
    #[serde(flatten)]
    pub stats: WgPeerStats,
    pub occurrences: Vec<WgPeerStats>,
}

/// Current bandwidth of one peer (rates of the newest sample; null when the newest sample has
/// no previous one to compare with).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerBandwidth {
    pub public_key: String,
    pub sent_bytes_per_sec: Option<f64>,
    pub recv_bytes_per_sec: Option<f64>,
    pub total_bytes_per_sec: Option<f64>,
    /// Kilobits per second (1000 bits).
    pub sent_kbps: Option<f64>,
    pub recv_kbps: Option<f64>,
    /// Megabits per second (10^6 bits).
    pub sent_mbps: Option<f64>,
    pub recv_mbps: Option<f64>,
    pub router: String,
    pub interface: String,
    pub name: Option<String>,
}

/// `GET /api/metrics/bandwidth`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgBandwidthList {
    pub bandwidth: Vec<WgPeerBandwidth>,
    pub count: usize,
}

/// `GET /api/metrics/peer/{public_key}/bandwidth`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerBandwidthDetail {
    #[serde(flatten)]
    pub bandwidth: WgPeerBandwidth,
    pub occurrences: Vec<WgPeerBandwidth>,
}

/// One point of a bandwidth history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgHistoryPoint {
    /// Unix seconds: the sample time (raw) or the start of the hour (rollup).
    pub timestamp: i64,
    /// The same, ISO 8601 UTC.
    pub datetime: String,
    /// Rate of the sample (raw) or the hour's average (rollup).
    pub sent_bytes_per_sec: f64,
    pub recv_bytes_per_sec: f64,
    pub sent_kbps: f64,
    pub recv_kbps: f64,
    pub sent_mbps: f64,
    pub recv_mbps: f64,
    pub router: String,
    pub interface: String,
}

/// `GET /api/metrics/peer/{public_key}/history`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgKeyHistory {
    pub public_key: String,
    pub duration_hours: u32,
    pub history: Vec<WgHistoryPoint>,
    pub data_points: usize,
    /// `raw` (one point per report) or `1h` (hourly averages).
    pub resolution: String,
}

/// A history inside `/peer/{name}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgHistory {
    pub duration_hours: u32,
    pub data_points: usize,
    pub data: Vec<WgHistoryPoint>,
    /// `raw` or `1h`.
    pub resolution: String,
}

/// Traffic totals of a `/peers` entry (MiB).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgTraffic {
    pub sent_mb: f64,
    pub received_mb: f64,
    pub total_mb: f64,
}

/// Metrics of a `/peers` entry.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerEntryMetrics {
    pub status: String,
    pub is_active: bool,
    pub traffic: WgTraffic,
    pub last_handshake: Option<String>,
    pub time_since_handshake: Option<String>,
}

/// Bandwidth of a `/peers` entry.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgEntryBandwidth {
    pub sent_kbps: Option<f64>,
    pub recv_kbps: Option<f64>,
    pub sent_mbps: Option<f64>,
    pub recv_mbps: Option<f64>,
}

/// One entry of `GET /peers`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerEntry {
    /// The peer's description, or its public key when it has none.
    pub name: String,
    /// The first allowed IP (without `/32` or `/128` for a single host).
    pub ip: Option<String>,
    pub router: String,
    pub site: Option<String>,
    pub interface: String,
    pub public_key: String,
    pub allowed_ips: String,
    /// Left out with `?metrics=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<WgPeerEntryMetrics>,
    /// Left out with `?metrics=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<WgEntryBandwidth>,
}

/// Peer counts of `GET /peers`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeersCount {
    pub total_peers: u64,
    pub active_peers: u64,
    pub inactive_peers: u64,
}

/// `GET /peers`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeersResponse {
    pub peers: Vec<WgPeerEntry>,
    pub count: usize,
    pub summary: WgPeersCount,
}

/// `GET /peer/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerConfig {
    pub peer_name: String,
    /// The client `.conf` (with its private key) of a peer added through `POST /add-peer`, for
    /// admin keys only; null otherwise (the routers never hold a peer's private key).
    pub config: Option<String>,
    /// The key of the occurrence with the most recent handshake.
    pub public_key: String,
    pub occurrences: Vec<WgPeerStats>,
    /// With `?metrics=true`: the stats of `public_key`'s occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<WgPeerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<WgPeerBandwidth>,
    /// With `?metrics=true`: the last hour, every occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<WgHistory>,
}

/// `GET /peer/{name}/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgPeerMetrics {
    pub peer_name: String,
    pub public_key: String,
    pub stats: WgPeerStats,
    pub bandwidth: WgPeerBandwidth,
    pub history: WgHistory,
    pub occurrences: Vec<WgPeerStats>,
}

/// One WireGuard interface of one router in `GET /server-info`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgServerInterface {
    pub router: String,
    pub site: Option<String>,
    pub interface: String,
    /// The interface's public key (`wg show` dump); null when the interface has no private key
    /// set, or is not (yet) in `wg_interfaces` (seen only through `/proc/net/dev` or its peers).
    pub public_key: Option<String>,
    /// *(added)* UDP listen port; null when unknown or not listening.
    pub listen_port: Option<u16>,
    /// *(added)* fwmark; null when off or unknown.
    pub fwmark: Option<u32>,
    pub peers_count: u64,
    pub active_peers: u64,
    /// Interface byte counters from `/proc/net/dev`; null when the interface is not listed there.
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
}

/// `GET /server-info`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WgServerInfo {
    /// The public key of the fleet's `wg0` interfaces (the manager's server interface) when they
    /// all have the same one; null when no `wg0` has a key or they differ (see `interfaces`).
    pub server_public_key: Option<String>,
    /// True when some router's `wg0` has a public key, false when it has none (or no router has
    /// a `wg0`), null when no router has reported its WireGuard interfaces yet.
    pub publickey_server_exists: Option<bool>,
    /// True when some router reports a WireGuard interface called `wg0`.
    pub wg0_conf_exists: bool,
    /// Peers over every router and interface.
    pub existing_peers_count: u64,
    /// Always null: there is no manager directory on the routers.
    pub wireguard_path: Option<String>,
    pub interfaces: Vec<WgServerInterface>,
}

// ---------------------------------------------------------------------------------------------
// Query parameters.

/// `?hours=` of history routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoursQuery {
    /// History window in hours, 1 to 24 (default 1).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 24)]
    pub hours: Option<String>,
}

/// `?metrics=` of `/peers` and `/peer/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `true` or `false` (default `true` for `/peers`, `false` for `/peer/{name}`).
    #[param(schema_with = super::openapi::pattern::flag)]
    pub metrics: Option<String>,
}

/// Query of `GET /peers`: `metrics` and the page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeersQuery {
    /// `true` or `false` (default `true`).
    #[param(schema_with = super::openapi::pattern::flag)]
    pub metrics: Option<String>,
    /// Routers per page (default 100; above 1000 means 1000).
    #[param(schema_with = super::paging::limit_schema)]
    pub limit: Option<String>,
    /// The cursor of the next page, from the previous page's `X-Next-Cursor` header (or its
    /// `Link` rel="next"); absent: the first page.
    #[param(schema_with = super::paging::cursor_schema)]
    pub cursor: Option<String>,
}

/// Parses `hours`: 1..=24, default 1.
pub fn parse_hours(raw: Option<&str>) -> Result<u32, ApiError> {
    let Some(raw) = raw else { return Ok(1) };
    let bad = || ApiError::bad_request(format!("hours must be an integer from 1 to {MAX_HOURS}"));
    if raw.len() > 8 {
        return Err(bad());
    }
    match raw.trim().parse::<u32>() {
        Ok(h) if (1..=MAX_HOURS).contains(&h) => Ok(h),
        _ => Err(bad()),
    }
}

/// Parses a `true`/`false` flag.
pub fn parse_flag(raw: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match raw.map(str::trim) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(_) => Err(ApiError::bad_request("metrics must be true or false")),
    }
}

/// Validates a public key from a path (already percent-decoded) and returns it in standard
/// padded base64. Accepts the URL-safe alphabet, a missing `=`, and a space for `+`.
pub fn normalize_key(raw: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "malformed WireGuard public key: expected 32 bytes in base64 \
             (percent-encode +, / and = in the path)",
        )
    };
    if raw.is_empty() || raw.len() > MAX_KEY_LEN {
        return Err(bad());
    }
    let std: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = STANDARD_NO_PAD
        .decode(std.trim_end_matches('='))
        .map_err(|_| bad())?;
    if bytes.len() != 32 {
        return Err(bad());
    }
    Ok(STANDARD.encode(bytes))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!(
            "peer name must be 1 to {MAX_NAME_LEN} characters"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Data.

/// One peer sample of a router's newest report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerRow {
    router_id: i64,
    router: String,
    site: Option<String>,
    iface: String,
    public_key: String,
    name: Option<String>,
    endpoint: Option<String>,
    allowed_ips: String,
    latest_handshake: Option<i64>,
    rx_bytes: i64,
    tx_bytes: i64,
    rx_bps: Option<i64>,
    tx_bps: Option<i64>,
    ts_ms: i64,
}

/// Which peers to load.
#[derive(Debug, Clone, Copy)]
enum PeerFilter<'a> {
    /// The routers of one page (`after < id <= last`).
    Page(i64, i64),
    Key(&'a str),
    NameOrKey(&'a str),
}

/// The newest report's peers of every unrevoked router: routers drive the join (CROSS JOIN
/// keeps that order) and each router's samples are one primary-key range.
const LATEST_PEERS_SQL: &str = "SELECT r.id, r.name, r.site, w.iface, w.public_key, w.name, w.endpoint, \
     w.allowed_ips, w.latest_handshake, w.rx_bytes, w.tx_bytes, w.rx_bps, w.tx_bps, w.ts_ms \
     FROM routers r CROSS JOIN wg_peer_samples w ON w.router_id = r.id AND w.ts_ms = r.last_report_ms \
     WHERE r.revoked_at IS NULL";

/// The newest samples of one key's or one name's occurrences: `wg_peers` (the newest report's
/// peers, indexed by key and name) names the routers and interfaces, then each occurrence's
/// newest sample is one primary-key lookup: the cost follows the occurrences, not the fleet.
/// The sample must match too, so a `wg_peers` row that ingest has not yet replaced (or one
/// whose samples retention deleted) never shows a wrong peer. `{filter}`: the condition on
/// `c` (the `wg_peers` row) and `w` (the sample).
const PEER_BY_SQL: &str =
    "SELECT r.id, r.name, r.site, w.iface, w.public_key, w.name, w.endpoint, \
     w.allowed_ips, w.latest_handshake, w.rx_bytes, w.tx_bytes, w.rx_bps, w.tx_bps, w.ts_ms \
     FROM wg_peers c CROSS JOIN routers r ON r.id = c.router_id \
     CROSS JOIN wg_peer_samples w ON w.router_id = c.router_id AND w.ts_ms = r.last_report_ms \
     AND w.iface = c.iface AND w.public_key = c.public_key \
     WHERE r.revoked_at IS NULL AND {filter} ORDER BY r.name, w.iface";
/// [`PEER_BY_SQL`]'s filter for one public key.
const BY_KEY: &str = "c.public_key = ?1";
/// [`PEER_BY_SQL`]'s filter for a name, or the key of a peer without one.
const BY_NAME_OR_KEY: &str =
    "(c.name = ?1 OR c.public_key = ?1) AND (w.name = ?1 OR w.public_key = ?1)";

fn peer_row(r: &Row<'_>) -> rusqlite::Result<PeerRow> {
    Ok(PeerRow {
        router_id: r.get(0)?,
        router: r.get(1)?,
        site: r.get(2)?,
        iface: r.get(3)?,
        public_key: r.get(4)?,
        name: r.get(5)?,
        endpoint: r.get(6)?,
        allowed_ips: r.get(7)?,
        latest_handshake: r.get(8)?,
        rx_bytes: r.get(9)?,
        tx_bytes: r.get(10)?,
        rx_bps: r.get(11)?,
        tx_bps: r.get(12)?,
        ts_ms: r.get(13)?,
    })
}

fn latest_peers(conn: &Connection, filter: PeerFilter<'_>) -> Result<Vec<PeerRow>, ApiError> {
    let (sql, arg) = match filter {
        PeerFilter::Page(after, last) => {
            let sql = format!("{LATEST_PEERS_SQL} AND r.id > ?1 AND r.id <= ?2 ORDER BY r.name, w.iface, w.public_key");
            let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
            let rows = st.query_map([after, last], peer_row).map_err(db_err)?;
            return rows.collect::<Result<Vec<_>, _>>().map_err(db_err);
        }
        PeerFilter::Key(k) => (PEER_BY_SQL.replace("{filter}", BY_KEY), Some(k)),
        PeerFilter::NameOrKey(n) => (PEER_BY_SQL.replace("{filter}", BY_NAME_OR_KEY), Some(n)),
    };
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = match arg {
        Some(a) => st.query_map([a], peer_row),
        None => st.query_map([], peer_row),
    }
    .map_err(db_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Rounds to `places` decimals.
fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// Whether a handshake at `hs` (Unix s) counts as active at `now`.
pub fn is_active(hs: Option<i64>, now: i64) -> bool {
    hs.is_some_and(|h| now.saturating_sub(h) <= ACTIVE_WITHIN_S)
}

impl PeerRow {
    fn stats(&self, now: i64) -> WgPeerStats {
        let sent = non_negative(self.tx_bytes);
        let received = non_negative(self.rx_bytes);
        let total = sent.saturating_add(received);
        let active = is_active(self.latest_handshake, now);
        WgPeerStats {
            public_key: self.public_key.clone(),
            interface: self.iface.clone(),
            allowed_ips: self.allowed_ips.clone(),
            sent_bytes: sent,
            received_bytes: received,
            total_bytes: total,
            sent_mb: round(sent as f64 / MIB, 2),
            received_mb: round(received as f64 / MIB, 2),
            total_mb: round(total as f64 / MIB, 2),
            last_handshake_timestamp: self.latest_handshake,
            last_handshake: self.latest_handshake.map(iso_utc),
            time_since_handshake: self
                .latest_handshake
                .map(|h| human_age(now.saturating_sub(h))),
            is_active: active,
            status: if active { "active" } else { "inactive" }.to_string(),
            router: self.router.clone(),
            site: self.site.clone(),
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            sample_timestamp: self.ts_ms.div_euclid(1000),
        }
    }

    /// (sent, received) bytes per second of the newest sample.
    fn rates(&self) -> (Option<f64>, Option<f64>) {
        let per_sec = |bps: Option<i64>| bps.map(|b| b.max(0) as f64 / 8.0);
        (per_sec(self.tx_bps), per_sec(self.rx_bps))
    }

    fn bandwidth(&self) -> WgPeerBandwidth {
        let (sent, recv) = self.rates();
        let kbps = |b: Option<f64>| b.map(|v| round(v * 8.0 / 1000.0, 2));
        let mbps = |b: Option<f64>| b.map(|v| round(v * 8.0 / 1_000_000.0, 3));
        WgPeerBandwidth {
            public_key: self.public_key.clone(),
            sent_bytes_per_sec: sent.map(|v| round(v, 2)),
            recv_bytes_per_sec: recv.map(|v| round(v, 2)),
            total_bytes_per_sec: sent.zip(recv).map(|(s, r)| round(s + r, 2)),
            sent_kbps: kbps(sent),
            recv_kbps: kbps(recv),
            sent_mbps: mbps(sent),
            recv_mbps: mbps(recv),
            router: self.router.clone(),
            interface: self.iface.clone(),
            name: self.name.clone(),
        }
    }

    fn entry(&self, now: i64, with_metrics: bool) -> WgPeerEntry {
        let ip = self
            .allowed_ips
            .split(',')
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(|first| {
                first
                    .strip_suffix("/32")
                    .or_else(|| first.strip_suffix("/128"))
                    .unwrap_or(first)
                    .to_string()
            });
        let (metrics, bandwidth) = if with_metrics {
            let s = self.stats(now);
            let b = self.bandwidth();
            (
                Some(WgPeerEntryMetrics {
                    status: s.status,
                    is_active: s.is_active,
                    traffic: WgTraffic {
                        sent_mb: s.sent_mb,
                        received_mb: s.received_mb,
                        total_mb: s.total_mb,
                    },
                    last_handshake: s.last_handshake,
                    time_since_handshake: s.time_since_handshake,
                }),
                Some(WgEntryBandwidth {
                    sent_kbps: b.sent_kbps,
                    recv_kbps: b.recv_kbps,
                    sent_mbps: b.sent_mbps,
                    recv_mbps: b.recv_mbps,
                }),
            )
        } else {
            (None, None)
        };
        WgPeerEntry {
            name: self.name.clone().unwrap_or_else(|| self.public_key.clone()),
            ip,
            router: self.router.clone(),
            site: self.site.clone(),
            interface: self.iface.clone(),
            public_key: self.public_key.clone(),
            allowed_ips: self.allowed_ips.clone(),
            metrics,
            bandwidth,
        }
    }
}

/// Index of the occurrence shown at the top level: the most recent handshake, then the first
/// in (router, interface) order. None for an empty slice.
fn primary(rows: &[PeerRow]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, r) in rows.iter().enumerate() {
        match best.and_then(|b| rows.get(b)) {
            Some(b) if r.latest_handshake <= b.latest_handshake => {}
            _ => best = Some(i),
        }
    }
    best
}

/// Active and total counts.
fn counts(rows: &[PeerRow], now: i64) -> WgPeersCount {
    let total = rows.len() as u64;
    let active = rows
        .iter()
        .filter(|r| is_active(r.latest_handshake, now))
        .count() as u64;
    WgPeersCount {
        total_peers: total,
        active_peers: active,
        inactive_peers: total - active,
    }
}

/// `/api/metrics/summary` of `rows`, row by row: the definition [`fleet_summary`] computes in
/// SQL (its tests compare the two).
#[cfg(test)]
fn summarize(rows: &[PeerRow], now: i64) -> WgSummary {
    let c = counts(rows, now);
    let sent: f64 = rows.iter().map(|r| non_negative(r.tx_bytes) as f64).sum();
    let recv: f64 = rows.iter().map(|r| non_negative(r.rx_bytes) as f64).sum();
    let sent_bps: f64 = rows
        .iter()
        .filter_map(|r| r.tx_bps)
        .map(|b| b.max(0) as f64)
        .sum();
    let recv_bps: f64 = rows
        .iter()
        .filter_map(|r| r.rx_bps)
        .map(|b| b.max(0) as f64)
        .sum();
    let routers: HashSet<i64> = rows.iter().map(|r| r.router_id).collect();
    WgSummary {
        total_peers: c.total_peers,
        active_peers: c.active_peers,
        inactive_peers: c.inactive_peers,
        total_sent_gb: round(sent / GIB, 2),
        total_received_gb: round(recv / GIB, 2),
        total_traffic_gb: round((sent + recv) / GIB, 2),
        current_bandwidth_sent_mbps: round(sent_bps / 1e6, 3),
        current_bandwidth_recv_mbps: round(recv_bps / 1e6, 3),
        current_bandwidth_total_mbps: round((sent_bps + recv_bps) / 1e6, 3),
        routers: routers.len() as u64,
    }
}

/// One history point from (sent, received) bytes per second.
fn point(ts_s: i64, sent: f64, recv: f64, router: String, iface: String) -> WgHistoryPoint {
    WgHistoryPoint {
        timestamp: ts_s,
        datetime: iso_utc(ts_s),
        sent_bytes_per_sec: round(sent, 2),
        recv_bytes_per_sec: round(recv, 2),
        sent_kbps: round(sent * 8.0 / 1000.0, 2),
        recv_kbps: round(recv * 8.0 / 1000.0, 2),
        sent_mbps: round(sent * 8.0 / 1e6, 3),
        recv_mbps: round(recv * 8.0 / 1e6, 3),
        router,
        interface: iface,
    }
}

/// The bandwidth history over the last `hours` of the given occurrences (router id, interface,
/// key): raw samples (a primary-key range per router) up to [`RAW_HISTORY_MAX_HOURS`], hourly
/// rollups (primary key `(public_key, bucket_start_ms, ...)`) beyond. Raw samples without a
/// rate (first sample after a restart or reset) are left out.
fn history(
    conn: &Connection,
    occurrences: &[PeerRow],
    hours: u32,
    now_ms: i64,
) -> Result<(Vec<WgHistoryPoint>, &'static str), ApiError> {
    let wanted: HashSet<(i64, &str, &str)> = occurrences
        .iter()
        .map(|r| (r.router_id, r.iface.as_str(), r.public_key.as_str()))
        .collect();
    let keys: std::collections::BTreeSet<&str> =
        occurrences.iter().map(|r| r.public_key.as_str()).collect();
    let window_ms = i64::from(hours) * BUCKET_1H_MS;
    let start_ms = now_ms.saturating_sub(window_ms);
    let raw = hours <= RAW_HISTORY_MAX_HOURS;
    let mut points = Vec::new();
    for key in keys {
        if raw {
            // One range scan of the primary key (router_id, ts_ms, iface, public_key) per
            // occurrence: a router has few peers, and no index on the key alone is kept.
            let mut st = conn
                .prepare_cached(
                    "SELECT ts_ms, tx_bps, rx_bps FROM wg_peer_samples_all \
                     WHERE router_id = ?1 AND ts_ms >= ?2 AND iface = ?3 AND public_key = ?4 \
                     ORDER BY ts_ms",
                )
                .map_err(db_err)?;
            for occ in occurrences.iter().filter(|o| o.public_key == key) {
                let mut rows = st
                    .query(params![occ.router_id, start_ms, occ.iface, key])
                    .map_err(db_err)?;
                while let Some(r) = rows.next().map_err(db_err)? {
                    let ts_ms: i64 = r.get(0).map_err(db_err)?;
                    let (tx, rx): (Option<i64>, Option<i64>) =
                        (r.get(1).map_err(db_err)?, r.get(2).map_err(db_err)?);
                    let (Some(tx), Some(rx)) = (tx, rx) else {
                        continue;
                    };
                    points.push(point(
                        ts_ms.div_euclid(1000),
                        tx.max(0) as f64 / 8.0,
                        rx.max(0) as f64 / 8.0,
                        occ.router.clone(),
                        occ.iface.clone(),
                    ));
                }
            }
        } else {
            let first_bucket = start_ms
                .div_euclid(BUCKET_1H_MS)
                .saturating_mul(BUCKET_1H_MS);
            let mut st = conn
                .prepare_cached(
                    "SELECT g.router_id, r.name, g.iface, g.bucket_start_ms, g.tx_bytes, g.rx_bytes \
                     FROM wg_rollup_1h g JOIN routers r ON r.id = g.router_id \
                     WHERE g.public_key = ?1 AND g.bucket_start_ms >= ?2 ORDER BY g.bucket_start_ms",
                )
                .map_err(db_err)?;
            let mut rows = st.query(params![key, first_bucket]).map_err(db_err)?;
            while let Some(r) = rows.next().map_err(db_err)? {
                let (rid, router, iface): (i64, String, String) = (
                    r.get(0).map_err(db_err)?,
                    r.get(1).map_err(db_err)?,
                    r.get(2).map_err(db_err)?,
                );
                if !wanted.contains(&(rid, iface.as_str(), key)) {
                    continue;
                }
                let bucket: i64 = r.get(3).map_err(db_err)?;
                let (tx, rx): (i64, i64) = (r.get(4).map_err(db_err)?, r.get(5).map_err(db_err)?);
                // The running hour is averaged over its elapsed part.
                let span_ms = now_ms.saturating_sub(bucket).clamp(1000, BUCKET_1H_MS);
                let secs = span_ms as f64 / 1000.0;
                points.push(point(
                    bucket.div_euclid(1000),
                    tx.max(0) as f64 / secs,
                    rx.max(0) as f64 / secs,
                    router,
                    iface,
                ));
            }
        }
    }
    points.sort_by(|a, b| {
        (a.timestamp, &a.router, &a.interface).cmp(&(b.timestamp, &b.router, &b.interface))
    });
    Ok((points, if raw { "raw" } else { "1h" }))
}

fn not_found_key(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no WireGuard peer with public key {key} on any router"),
    )
}

fn not_found_name(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no WireGuard peer named {name:?} on any router"),
    )
}

/// The occurrences of a key (404 when none) and the primary one's index.
fn key_rows(conn: &Connection, key: &str) -> Result<(Vec<PeerRow>, usize), ApiError> {
    let rows = latest_peers(conn, PeerFilter::Key(key))?;
    let p = primary(&rows).ok_or_else(|| not_found_key(key))?;
    Ok((rows, p))
}

/// The occurrences of a peer name (or, for peers without one, public key).
fn name_rows(conn: &Connection, name: &str) -> Result<(Vec<PeerRow>, usize), ApiError> {
    let rows = latest_peers(conn, PeerFilter::NameOrKey(name))?;
    let p = primary(&rows).ok_or_else(|| not_found_name(name))?;
    Ok((rows, p))
}

/// The newest peers of the routers of one page, and the page's next cursor.
async fn peer_page(
    state: &ApiState,
    q: PageQuery,
) -> Result<(Vec<PeerRow>, Option<String>), ApiError> {
    let page = q.page()?;
    with_read(state, move |c| {
        let b = bounds(c, page).map_err(db_err)?;
        Ok((
            latest_peers(c, PeerFilter::Page(b.after, b.last))?,
            b.next_cursor,
        ))
    })
    .await
}

fn pick(rows: &[PeerRow], i: usize) -> Result<&PeerRow, ApiError> {
    rows.get(i)
        .ok_or_else(|| ApiError::internal("peer lookup failed"))
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// Global VPN summary over every router's WireGuard peers.
#[utoipa::path(
    get,
    path = "/api/metrics/summary",
    operation_id = "wg_summary",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Fleet-wide peer counts, traffic and current bandwidth", body = WgSummary),
        (status = 401, description = "Missing or unknown API key"),
    )
)]
pub async fn summary(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<WgSummary>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let now = crate::clock::unix_now();
    Ok(Json(
        with_read(&state, move |c| fleet_summary(c, now)).await?,
    ))
}

/// The sums and counts of [`summarize`] over the newest peers of every unrevoked router
/// ([`LATEST_PEERS_SQL`]'s rows), computed by SQLite in one pass over `wg_peers`, where ingest
/// keeps each current peer's newest sample values (`store::wg_latest`): one narrow row per
/// peer, clustered by router, instead of a primary-key probe per router into `wg_peer_samples`.
/// A row counts where its values are of the router's newest report (`ts_ms = last_report_ms`),
/// the rows the join over the newest samples found. The byte and rate sums are of integers
/// below 2^53 in practice, so their floating-point totals are exact in any order (as
/// `summarize`'s).
const SUMMARY_SQL: &str = "SELECT count(*), \
     coalesce(sum(w.latest_handshake IS NOT NULL AND ?1 - w.latest_handshake <= ?2), 0), \
     total(max(w.tx_bytes, 0)), total(max(w.rx_bytes, 0)), total(max(w.tx_bps, 0)), \
     total(max(w.rx_bps, 0)), count(DISTINCT r.id) \
     FROM routers r CROSS JOIN wg_peers w ON w.router_id = r.id AND w.ts_ms = r.last_report_ms \
     WHERE r.revoked_at IS NULL";

/// `/api/metrics/summary` at `now` (Unix s), from [`SUMMARY_SQL`].
fn fleet_summary(conn: &Connection, now: i64) -> Result<WgSummary, ApiError> {
    let (total, active, sent, recv, sent_bps, recv_bps, routers): (
        i64,
        i64,
        f64,
        f64,
        f64,
        f64,
        i64,
    ) = conn
        .prepare_cached(SUMMARY_SQL)
        .and_then(|mut st| {
            st.query_row(params![now, ACTIVE_WITHIN_S], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
        })
        .map_err(db_err)?;
    let (total, active) = (non_negative(total), non_negative(active));
    Ok(WgSummary {
        total_peers: total,
        active_peers: active,
        inactive_peers: total.saturating_sub(active),
        total_sent_gb: round(sent / GIB, 2),
        total_received_gb: round(recv / GIB, 2),
        total_traffic_gb: round((sent + recv) / GIB, 2),
        current_bandwidth_sent_mbps: round(sent_bps / 1e6, 3),
        current_bandwidth_recv_mbps: round(recv_bps / 1e6, 3),
        current_bandwidth_total_mbps: round((sent_bps + recv_bps) / 1e6, 3),
        routers: non_negative(routers),
    })
}

/// API and metrics-store health (open).
#[utoipa::path(
    get,
    path = "/api/metrics/health",
    operation_id = "wg_health",
    tag = "wireguard",
    security(()),
    responses((status = 200, description = "API and database state", body = WgHealth))
)]
pub async fn health(State(state): State<ApiState>) -> Json<WgHealth> {
    let failing = state.health.is_failing();
    let database = match state.health.last_error() {
        Some(e) if failing => format!("failing: {e}"),
        _ => "ok".to_string(),
    };
    Json(WgHealth {
        api_status: "up".into(),
        prometheus_status: if failing { "down" } else { "up" }.into(),
        prometheus_url: "/metrics".into(),
        database,
    })
}

/// Every peer of every router with its counters and handshake.
#[utoipa::path(
    get,
    path = "/api/metrics/peers",
    operation_id = "wg_metrics_peers",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "One entry per router, interface and peer. One page of routers in router id order (`limit`, default 100, at most 1000; `cursor`): the next page's cursor is in the `X-Next-Cursor` and `Link` (rel=\"next\") headers, absent on the last page; `count` is the entries of this page", body = WgPeerList),
        (status = 400, description = "Bad limit or cursor"),
        (status = 401, description = "Missing or unknown API key"),
    )
)]
pub async fn metrics_peers(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let now = crate::clock::unix_now();
    let (rows, next) = peer_page(&state, query(q)?).await?;
    let peers: Vec<WgPeerStats> = rows.iter().map(|r| r.stats(now)).collect();
    let body = WgPeerList {
        count: peers.len(),
        peers,
    };
    Ok(paged_json(&body, &uri, next.as_deref()))
}

/// Peers whose latest handshake is at most 180 s old.
#[utoipa::path(
    get,
    path = "/api/metrics/peers/active",
    operation_id = "wg_metrics_active_peers",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "The active peers. One page of routers in router id order (`limit`, default 100, at most 1000; `cursor`): the next page's cursor is in the `X-Next-Cursor` and `Link` (rel=\"next\") headers, absent on the last page; `count` is the active peers of this page; a page may hold none while later pages do", body = WgActivePeerList),
        (status = 400, description = "Bad limit or cursor"),
        (status = 401, description = "Missing or unknown API key"),
    )
)]
pub async fn metrics_active_peers(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let now = crate::clock::unix_now();
    let (rows, next) = peer_page(&state, query(q)?).await?;
    let active: Vec<WgPeerStats> = rows
        .iter()
        .filter(|r| is_active(r.latest_handshake, now))
        .map(|r| r.stats(now))
        .collect();
    let body = WgActivePeerList {
        count: active.len(),
        active_peers: active,
    };
    Ok(paged_json(&body, &uri, next.as_deref()))
}

/// Complete stats of one peer by public key, on every router holding it.
#[utoipa::path(
    get,
    path = "/api/metrics/peer/{public_key}",
    operation_id = "wg_metrics_peer",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(("public_key" = String, Path, description = "Base64 public key, percent-encoded (+ %2B, / %2F, = %3D); the URL-safe alphabet and a missing `=` are accepted", pattern = "^[A-Za-z0-9+/_-][A-Za-z0-9+/_ -]{41}[AEIMQUYcgkosw048]=*$", max_length = 128)),
    responses(
        (status = 200, description = "The peer", body = WgPeerDetail),
        (status = 400, description = "Malformed key"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 404, description = "No router has this peer"),
    )
)]
pub async fn metrics_peer(
    State(state): State<ApiState>,
    headers: HeaderMap,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<WgPeerDetail>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let key = normalize_key(&path(key)?)?;
    let now = crate::clock::unix_now();
    let (rows, p) = with_read(&state, move |c| key_rows(c, &key)).await?;
    Ok(Json(WgPeerDetail {
        stats: pick(&rows, p)?.stats(now),
        occurrences: rows.iter().map(|r| r.stats(now)).collect(),
    }))
}

/// Current bandwidth of every peer.
#[utoipa::path(
    get,
    path = "/api/metrics/bandwidth",
    operation_id = "wg_metrics_bandwidth",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Rates of each peer's newest sample. One page of routers in router id order (`limit`, default 100, at most 1000; `cursor`): the next page's cursor is in the `X-Next-Cursor` and `Link` (rel=\"next\") headers, absent on the last page; `count` is the entries of this page", body = WgBandwidthList),
        (status = 400, description = "Bad limit or cursor"),
        (status = 401, description = "Missing or unknown API key"),
    )
)]
pub async fn metrics_bandwidth(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let (rows, next) = peer_page(&state, query(q)?).await?;
    let bandwidth: Vec<WgPeerBandwidth> = rows.iter().map(PeerRow::bandwidth).collect();
    let body = WgBandwidthList {
        count: bandwidth.len(),
        bandwidth,
    };
    Ok(paged_json(&body, &uri, next.as_deref()))
}

/// Current bandwidth of one peer by public key.
#[utoipa::path(
    get,
    path = "/api/metrics/peer/{public_key}/bandwidth",
    operation_id = "wg_metrics_peer_bandwidth",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(("public_key" = String, Path, description = "Base64 public key, percent-encoded", pattern = "^[A-Za-z0-9+/_-][A-Za-z0-9+/_ -]{41}[AEIMQUYcgkosw048]=*$", max_length = 128)),
    responses(
        (status = 200, description = "The peer's bandwidth", body = WgPeerBandwidthDetail),
        (status = 400, description = "Malformed key"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 404, description = "No router has this peer"),
    )
)]
pub async fn metrics_peer_bandwidth(
    State(state): State<ApiState>,
    headers: HeaderMap,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<WgPeerBandwidthDetail>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let key = normalize_key(&path(key)?)?;
    let (rows, p) = with_read(&state, move |c| key_rows(c, &key)).await?;
    Ok(Json(WgPeerBandwidthDetail {
        bandwidth: pick(&rows, p)?.bandwidth(),
        occurrences: rows.iter().map(PeerRow::bandwidth).collect(),
    }))
}

/// Bandwidth history of one peer by public key.
#[utoipa::path(
    get,
    path = "/api/metrics/peer/{public_key}/history",
    operation_id = "wg_metrics_peer_history",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(("public_key" = String, Path, description = "Base64 public key, percent-encoded", pattern = "^[A-Za-z0-9+/_-][A-Za-z0-9+/_ -]{41}[AEIMQUYcgkosw048]=*$", max_length = 128), HoursQuery),
    responses(
        (status = 200, description = "Bandwidth points, oldest first", body = WgKeyHistory),
        (status = 400, description = "Malformed key or hours outside 1-24"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 404, description = "No router has this peer"),
    )
)]
pub async fn metrics_peer_history(
    State(state): State<ApiState>,
    headers: HeaderMap,
    key: Result<Path<String>, PathRejection>,
    q: Result<Query<HoursQuery>, QueryRejection>,
) -> Result<Json<WgKeyHistory>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let key = normalize_key(&path(key)?)?;
    let hours = parse_hours(query(q)?.hours.as_deref())?;
    let now = now_ms();
    let out_key = key.clone();
    let (points, resolution) = with_read(&state, move |c| {
        let (rows, _) = key_rows(c, &key)?;
        history(c, &rows, hours, now)
    })
    .await?;
    Ok(Json(WgKeyHistory {
        public_key: out_key,
        duration_hours: hours,
        data_points: points.len(),
        history: points,
        resolution: resolution.into(),
    }))
}

/// Every peer with its name, address and (by default) metrics.
#[utoipa::path(
    get,
    path = "/peers",
    operation_id = "wg_peers",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(PeersQuery),
    responses(
        (status = 200, description = "One entry per router, interface and peer. One page of routers in router id order (`limit`, default 100, at most 1000; `cursor`): the next page's cursor is in the `X-Next-Cursor` and `Link` (rel=\"next\") headers, absent on the last page; `count` and `summary` count the peers of this page (fleet-wide: `/api/metrics/summary`)", body = WgPeersResponse),
        (status = 400, description = "metrics is not true or false, or a bad limit or cursor"),
        (status = 401, description = "Missing or unknown API key"),
    )
)]
pub async fn peers(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<PeersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let q = query(q)?;
    let with_metrics = parse_flag(q.metrics.as_deref(), true)?;
    let now = crate::clock::unix_now();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (rows, next) = peer_page(&state, page).await?;
    let peers: Vec<WgPeerEntry> = rows.iter().map(|r| r.entry(now, with_metrics)).collect();
    let body = WgPeersResponse {
        count: peers.len(),
        peers,
        summary: counts(&rows, now),
    };
    Ok(paged_json(&body, &uri, next.as_deref()))
}

/// One peer by name (its description on the router, or its public key when it has none).
#[utoipa::path(
    get,
    path = "/peer/{name}",
    operation_id = "wg_peer",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Peer description (percent-encoded) or public key", min_length = 1, max_length = 256), MetricsQuery),
    responses(
        (status = 200, description = "The peer on every router holding it", body = WgPeerConfig),
        (status = 400, description = "Bad name or metrics flag"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 404, description = "No router has a peer of this name"),
    )
)]
pub async fn peer(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<WgPeerConfig>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let name = path(name)?;
    check_name(&name)?;
    let with_metrics = parse_flag(query(q)?.metrics.as_deref(), false)?;
    let now = crate::clock::unix_now();
    let now_ms = now_ms();
    let lookup = name.clone();
    let (rows, p, hist) = with_read(&state, move |c| {
        let (rows, p) = name_rows(c, &lookup)?;
        let hist = if with_metrics {
            Some(history(c, &rows, 1, now_ms)?)
        } else {
            None
        };
        Ok((rows, p, hist))
    })
    .await?;
    // Admin callers get the client configuration of a peer added through `POST /add-peer`.
    let config = super::wg_writes::stored_config(&state, &headers, &name).await;
    let top = pick(&rows, p)?;
    Ok(Json(WgPeerConfig {
        peer_name: name,
        config,
        public_key: top.public_key.clone(),
        occurrences: rows.iter().map(|r| r.stats(now)).collect(),
        metrics: with_metrics.then(|| top.stats(now)),
        bandwidth: with_metrics.then(|| top.bandwidth()),
        history: hist.map(|(data, res)| WgHistory {
            duration_hours: 1,
            data_points: data.len(),
            data,
            resolution: res.into(),
        }),
    }))
}

/// Detailed metrics of one peer by name.
#[utoipa::path(
    get,
    path = "/peer/{name}/metrics",
    operation_id = "wg_peer_metrics",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Peer description (percent-encoded) or public key", min_length = 1, max_length = 256), HoursQuery),
    responses(
        (status = 200, description = "Stats, bandwidth and history", body = WgPeerMetrics),
        (status = 400, description = "Bad name or hours outside 1-24"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 404, description = "No router has a peer of this name"),
    )
)]
pub async fn peer_metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<HoursQuery>, QueryRejection>,
) -> Result<Json<WgPeerMetrics>, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let name = path(name)?;
    check_name(&name)?;
    let hours = parse_hours(query(q)?.hours.as_deref())?;
    let now = crate::clock::unix_now();
    let now_ms = now_ms();
    let lookup = name.clone();
    let (rows, p, (data, res)) = with_read(&state, move |c| {
        let (rows, p) = name_rows(c, &lookup)?;
        let hist = history(c, &rows, hours, now_ms)?;
        Ok((rows, p, hist))
    })
    .await?;
    let top = pick(&rows, p)?;
    Ok(Json(WgPeerMetrics {
        peer_name: name,
        public_key: top.public_key.clone(),
        stats: top.stats(now),
        bandwidth: top.bandwidth(),
        history: WgHistory {
            duration_hours: hours,
            data_points: data.len(),
            data,
            resolution: res.into(),
        },
        occurrences: rows.iter().map(|r| r.stats(now)).collect(),
    }))
}

/// The stored WireGuard interfaces of every unrevoked router (one primary-key range per router).
const WG_INTERFACES_SQL: &str =
    "SELECT r.name, r.site, w.name, w.public_key, w.listen_port, w.fwmark \
     FROM routers r CROSS JOIN wg_interfaces w ON w.router_id = r.id WHERE r.revoked_at IS NULL \
     AND r.id > ?1 AND r.id <= ?2";

/// The WireGuard interfaces of every unrevoked router: its `wg_interfaces` rows (key, port,
/// fwmark), interfaces of kind `wireguard` in its newest `/proc/net/dev` sample (counters), and
/// interfaces that only appear through their peers.
fn server_interfaces(
    conn: &Connection,
    now: i64,
    page: &PageBounds,
) -> Result<ServerInterfaces, ApiError> {
    let ids = [page.after, page.last];
    let peers = latest_peers(conn, PeerFilter::Page(page.after, page.last))?;
    // (router name, interface) -> entry; BTreeMap keeps a stable order.
    let mut map: BTreeMap<(String, String), WgServerInterface> = BTreeMap::new();
    let blank = |router: &str, site: Option<String>, iface: &str| WgServerInterface {
        router: router.to_string(),
        site,
        interface: iface.to_string(),
        public_key: None,
        listen_port: None,
        fwmark: None,
        peers_count: 0,
        active_peers: 0,
        rx_bytes: None,
        tx_bytes: None,
    };
    let mut st = conn.prepare_cached(WG_INTERFACES_SQL).map_err(db_err)?;
    let mut rows = st.query(ids).map_err(db_err)?;
    let mut stored = 0usize;
    while let Some(r) = rows.next().map_err(db_err)? {
        let router: String = r.get(0).map_err(db_err)?;
        let iface: String = r.get(2).map_err(db_err)?;
        let mut e = blank(&router, r.get(1).map_err(db_err)?, &iface);
        e.public_key = r.get(3).map_err(db_err)?;
        // Out-of-range values (never written by the ingest) read as unknown.
        e.listen_port = r
            .get::<_, Option<i64>>(4)
            .map_err(db_err)?
            .and_then(|v| u16::try_from(v).ok());
        e.fwmark = r
            .get::<_, Option<i64>>(5)
            .map_err(db_err)?
            .and_then(|v| u32::try_from(v).ok());
        map.insert((router, iface), e);
        stored += 1;
    }
    drop(rows);
    let mut st = conn
        .prepare_cached(
            "SELECT r.name, r.site, i.name, i.rx_bytes, i.tx_bytes \
             FROM routers r CROSS JOIN interface_samples i ON i.router_id = r.id AND i.ts_ms = r.last_report_ms \
             WHERE r.revoked_at IS NULL AND i.kind = 'wireguard' AND r.id > ?1 AND r.id <= ?2",
        )
        .map_err(db_err)?;
    let mut rows = st.query(ids).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        let router: String = r.get(0).map_err(db_err)?;
        let iface: String = r.get(2).map_err(db_err)?;
        let rx: i64 = r.get(3).map_err(db_err)?;
        let tx: i64 = r.get(4).map_err(db_err)?;
        let site: Option<String> = r.get(1).map_err(db_err)?;
        let e = map
            .entry((router.clone(), iface.clone()))
            .or_insert_with(|| blank(&router, site, &iface));
        e.rx_bytes = Some(non_negative(rx));
        e.tx_bytes = Some(non_negative(tx));
    }
    let mut by_iface: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for p in &peers {
        let e = by_iface
            .entry((p.router.clone(), p.iface.clone()))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(is_active(p.latest_handshake, now));
        map.entry((p.router.clone(), p.iface.clone()))
            .or_insert_with(|| blank(&p.router, p.site.clone(), &p.iface));
    }
    for (k, v) in map.iter_mut() {
        if let Some((n, a)) = by_iface.get(k) {
            v.peers_count = *n;
            v.active_peers = *a;
        }
    }
    Ok(ServerInterfaces {
        interfaces: map.into_values().collect(),
        peers: peers.len() as u64,
        stored,
    })
}

/// What `/server-info` is computed from.
#[derive(Debug)]
struct ServerInterfaces {
    interfaces: Vec<WgServerInterface>,
    /// Peer occurrences over the fleet.
    peers: u64,
    /// How many interfaces came from `wg_interfaces`.
    stored: usize,
}

impl ServerInterfaces {
    fn info(self) -> WgServerInfo {
        let keys: HashSet<&str> = self
            .interfaces
            .iter()
            .filter(|i| i.interface == SERVER_INTERFACE)
            .filter_map(|i| i.public_key.as_deref())
            .collect();
        let publickey_server_exists = (self.stored > 0).then_some(!keys.is_empty());
        let server_public_key = match keys.len() {
            1 => keys.into_iter().next().map(str::to_string),
            _ => None,
        };
        WgServerInfo {
            server_public_key,
            publickey_server_exists,
            wg0_conf_exists: self
                .interfaces
                .iter()
                .any(|i| i.interface == SERVER_INTERFACE),
            existing_peers_count: self.peers,
            wireguard_path: None,
            interfaces: self.interfaces,
        }
    }
}

/// WireGuard "server" information over the fleet.
#[utoipa::path(
    get,
    path = "/server-info",
    operation_id = "wg_server_info",
    tag = "wireguard",
    security(("api_key" = []), ("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Every router's WireGuard interfaces. One page of routers in router id order (`limit`, default 100, at most 1000; `cursor`): the next page's cursor is in the `X-Next-Cursor` and `Link` (rel=\"next\") headers, absent on the last page; `interfaces` and the fields above it (`server_public_key`, `publickey_server_exists`, `wg0_conf_exists`, `existing_peers_count`) describe the routers of this page (fleet-wide peer counts: `/api/metrics/summary`)", body = WgServerInfo),
        (status = 400, description = "Bad limit or cursor"),
        (status = 401, description = "Missing or unknown API key"),
    )
)]
pub async fn server_info(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_role(&state, &headers, Role::Read).await?;
    let page = query(q)?.page()?;
    let now = crate::clock::unix_now();
    let (found, next) = with_read(&state, move |c| {
        let b = bounds(c, page).map_err(db_err)?;
        Ok((server_interfaces(c, now, &b)?, b.next_cursor))
    })
    .await?;
    Ok(paged_json(&found.info(), &uri, next.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::monitor::tests::{assert_no_big_scan, empty_db, plan};

    const KEY: &str = "osLnROAeI/bSVcmSkwREDfqR9tlRUumi48+CGm3bf2s=";

    fn row(router: &str, hs: Option<i64>) -> PeerRow {
        PeerRow {
            router_id: 1,
            router: router.into(),
            site: None,
            iface: "wg0".into(),
            public_key: KEY.into(),
            name: Some("Alice laptop".into()),
            endpoint: None,
            allowed_ips: "10.77.0.2/32,fd77::2/128".into(),
            latest_handshake: hs,
            rx_bytes: 1_048_576,
            tx_bytes: 3 * 1_048_576,
            rx_bps: Some(8000),
            tx_bps: None,
            ts_ms: 1_700_000_000_500,
        }
    }

    #[test]
    fn keys_are_validated_and_normalized() {
        assert_eq!(normalize_key(KEY).unwrap(), KEY);
        assert_eq!(normalize_key(KEY.trim_end_matches('=')).unwrap(), KEY);
        let url_safe = KEY.replace('+', "-").replace('/', "_");
        assert_eq!(normalize_key(&url_safe).unwrap(), KEY);
        assert_eq!(normalize_key(&KEY.replace('+', " ")).unwrap(), KEY);
        for bad in [
            "",
            "abc",
            "not a key at all!",
            &"A".repeat(200),
            "osLnROAeI/bSVcmSkwREDfqR9tlRUumi48+CGm3bf2s",
            "AAAA",
        ] {
            if bad == KEY.trim_end_matches('=') {
                continue;
            }
            let e = normalize_key(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        // 31 bytes and 33 bytes.
        assert!(normalize_key(&STANDARD.encode([7u8; 31])).is_err());
        assert!(normalize_key(&STANDARD.encode([7u8; 33])).is_err());
        // Non-zero trailing bits are not a canonical key.
        assert!(normalize_key("osLnROAeI/bSVcmSkwREDfqR9tlRUumi48+CGm3bf2t=").is_err());
    }

    #[test]
    fn hours_and_flags_are_bounded() {
        assert_eq!(parse_hours(None).unwrap(), 1);
        assert_eq!(parse_hours(Some("24")).unwrap(), 24);
        assert_eq!(parse_hours(Some("1")).unwrap(), 1);
        for bad in ["0", "25", "-1", "1.5", "abc", "", "99999999999999"] {
            assert_eq!(
                parse_hours(Some(bad)).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        assert!(parse_flag(None, true).unwrap());
        assert!(!parse_flag(Some("false"), true).unwrap());
        assert!(parse_flag(Some("TRUE"), false).unwrap());
        assert!(parse_flag(Some("yes"), false).is_err());
    }

    #[test]
    fn times_are_formatted() {
        assert_eq!(iso_utc(1_731_925_845), "2024-11-18T10:30:45Z");
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(i64::MAX), i64::MAX.to_string());
        assert_eq!(human_age(135), "2m 15s");
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(-5), "0s");
        assert_eq!(human_age(3 * 3600 + 240), "3h 4m");
        assert_eq!(human_age(2 * 86_400 + 5 * 3600), "2d 5h");
    }

    #[test]
    fn activity_uses_the_three_minute_window() {
        assert!(is_active(Some(1000), 1000 + ACTIVE_WITHIN_S));
        assert!(!is_active(Some(1000), 1001 + ACTIVE_WITHIN_S));
        assert!(!is_active(None, 0));
        assert!(
            is_active(Some(2000), 1000),
            "a handshake ahead of the clock is recent"
        );
    }

    #[test]
    fn stats_bandwidth_and_entries() {
        let r = row("ap", Some(1_000_000));
        let s = r.stats(1_000_135);
        assert_eq!(
            (s.sent_bytes, s.received_bytes, s.total_bytes),
            (3 * 1_048_576, 1_048_576, 4 * 1_048_576)
        );
        assert_eq!((s.sent_mb, s.received_mb, s.total_mb), (3.0, 1.0, 4.0));
        assert_eq!(s.time_since_handshake.as_deref(), Some("2m 15s"));
        assert!(s.is_active);
        assert_eq!(s.status, "active");
        assert_eq!(s.sample_timestamp, 1_700_000_000);
        let b = r.bandwidth();
        assert_eq!(b.recv_bytes_per_sec, Some(1000.0));
        assert_eq!(b.recv_kbps, Some(8.0));
        assert_eq!(b.recv_mbps, Some(0.008));
        assert_eq!(b.sent_bytes_per_sec, None);
        assert_eq!(b.total_bytes_per_sec, None);
        let e = r.entry(1_000_135, true);
        assert_eq!(e.ip.as_deref(), Some("10.77.0.2"));
        assert_eq!(e.name, "Alice laptop");
        assert!(e.metrics.is_some());
        let mut unnamed = row("ap", None);
        unnamed.name = None;
        unnamed.allowed_ips = "0.0.0.0/0,::/0".into();
        let e = unnamed.entry(0, false);
        assert_eq!(e.name, KEY);
        assert_eq!(e.ip.as_deref(), Some("0.0.0.0/0"));
        assert!(e.metrics.is_none() && e.bandwidth.is_none());
        let s = unnamed.stats(0);
        assert_eq!(
            (s.last_handshake.as_deref(), s.is_active, s.status.as_str()),
            (None, false, "inactive")
        );
    }

    #[test]
    fn primary_is_the_most_recent_handshake() {
        assert_eq!(primary(&[]), None);
        let rows = [
            row("a", None),
            row("b", Some(10)),
            row("c", Some(30)),
            row("d", Some(30)),
        ];
        assert_eq!(primary(&rows), Some(2));
        assert_eq!(primary(&rows[..1]), Some(0));
    }

    #[test]
    fn summary_sums_every_occurrence() {
        let rows = [row("a", Some(100)), row("b", None)];
        let s = summarize(&rows, 100);
        assert_eq!((s.total_peers, s.active_peers, s.inactive_peers), (2, 1, 1));
        assert_eq!(s.routers, 1);
        assert_eq!(s.current_bandwidth_recv_mbps, 0.016);
        assert_eq!(s.current_bandwidth_sent_mbps, 0.0);
        assert_eq!(s.total_traffic_gb, round(8.0 * 1_048_576.0 / GIB, 2));
        assert_eq!(summarize(&[], 0).total_peers, 0);
    }

    /// Two routers with WireGuard: `gw` with `wg0` (key, port, fwmark, one peer, counters) and
    /// `wg1` (no private key), `ap` with `wg0` only seen through `/proc/net/dev`; `old` is
    /// revoked.
    fn fleet() -> Connection {
        let c = empty_db();
        c.execute_batch(&format!(
            "INSERT INTO routers (id, name, site, hostname, cert_fingerprint, cert_not_after, enrolled_at, \
             last_report_ms, revoked_at) VALUES (1, 'gw', 'home', 'h1', 'f1', 0, 0, 100, NULL), \
             (2, 'ap', NULL, 'h2', 'f2', 0, 0, 100, NULL), (3, 'old', NULL, 'h3', 'f3', 0, 0, 100, 5); \
             INSERT INTO wg_interfaces (router_id, name, public_key, listen_port, fwmark, peers, updated_ms) \
             VALUES (1, 'wg0', '{KEY}', 51820, 51820, 1, 100), (1, 'wg1', 'wg1key', NULL, NULL, 0, 100), \
             (3, 'wg0', 'revokedKeyrevokedKeyrevokedKeyrevokedKey00=', 1, NULL, 0, 100); \
             INSERT INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, tx_bytes, rx_packets, \
             tx_packets, rx_errs, tx_errs, rx_drop, tx_drop) VALUES \
             (1, 100, 'wg0', 'wireguard', 10, 20, 0, 0, 0, 0, 0, 0), \
             (2, 100, 'wg0', 'wireguard', 30, 40, 0, 0, 0, 0, 0, 0); \
             INSERT INTO wg_peer_samples (router_id, ts_ms, iface, public_key, allowed_ips, latest_handshake, \
             rx_bytes, tx_bytes) VALUES (1, 100, 'wg0', 'peerkey', '10.0.0.2/32', 1000, 1, 2);"
        ))
        .unwrap();
        c
    }

    /// The SQL summary equals [`summarize`] of the rows it sums, for peers active, inactive and
    /// never handshaken, negative counters and rates, several routers and a revoked one.
    #[test]
    fn fleet_summary_is_the_summary_of_the_newest_peers() {
        let c = fleet();
        c.execute_batch(
            "INSERT INTO wg_peer_samples (router_id, ts_ms, iface, public_key, allowed_ips, latest_handshake, \
             rx_bytes, tx_bytes, rx_bps, tx_bps) VALUES \
             (1, 100, 'wg1', 'k2', '10.0.0.3/32', NULL, 5000000000, -7, 8000, NULL), \
             (2, 100, 'wg0', 'k3', '10.0.0.4/32', 1170, 123456789, 987654321, -5, 4000000), \
             (2, 90, 'wg0', 'k4', '10.0.0.5/32', 1175, 999, 999, 999, 999), \
             (3, 100, 'wg0', 'k5', '10.0.0.6/32', 1175, 999, 999, 999, 999);",
        )
        .unwrap();
        // `wg_peers` and its newest values as ingest keeps them, by the migrations' backfills.
        c.execute_batch(crate::store::schema::wg_peers_backfill())
            .unwrap();
        c.execute_batch(crate::store::wg_latest::backfill())
            .unwrap();
        let rows = latest_peers(&c, PeerFilter::Page(0, i64::MAX)).unwrap();
        assert_eq!(
            rows.len(),
            3,
            "router 2's older sample and revoked router 3 are left out"
        );
        for now in [0, 1000, 1180, 1200, 1351, 10_000] {
            let s = fleet_summary(&c, now).unwrap();
            assert_eq!(s, summarize(&rows, now), "at {now}");
        }
        let s = fleet_summary(&c, 1180).unwrap();
        assert_eq!((s.total_peers, s.active_peers, s.routers), (3, 2, 2));
        let empty = empty_db();
        assert_eq!(fleet_summary(&empty, 0).unwrap(), summarize(&[], 0));
    }

    /// Every router on one page.
    fn all() -> PageBounds {
        PageBounds {
            after: 0,
            last: i64::MAX,
            next_cursor: None,
        }
    }

    #[test]
    fn server_info_reads_the_stored_interfaces() {
        let c = fleet();
        let info = server_interfaces(&c, 1000, &all()).unwrap().info();
        type Keyed<'a> = (&'a str, &'a str, Option<&'a str>, Option<u16>, Option<u32>);
        let by_name: Vec<Keyed<'_>> = info
            .interfaces
            .iter()
            .map(|i| {
                (
                    i.router.as_str(),
                    i.interface.as_str(),
                    i.public_key.as_deref(),
                    i.listen_port,
                    i.fwmark,
                )
            })
            .collect();
        assert_eq!(
            by_name,
            vec![
                ("ap", "wg0", None, None, None),
                ("gw", "wg0", Some(KEY), Some(51820), Some(51820)),
                ("gw", "wg1", Some("wg1key"), None, None),
            ]
        );
        let gw0 = &info.interfaces[1];
        assert_eq!(
            (
                gw0.peers_count,
                gw0.active_peers,
                gw0.rx_bytes,
                gw0.site.as_deref()
            ),
            (1, 1, Some(10), Some("home"))
        );
        assert_eq!(info.interfaces[0].rx_bytes, Some(30));
        assert_eq!(info.interfaces[2].rx_bytes, None);
        // One distinct wg0 key in the (unrevoked) fleet: it is the server's (wg1's is not).
        assert_eq!(info.server_public_key.as_deref(), Some(KEY));
        assert_eq!(info.publickey_server_exists, Some(true));
        assert!(info.wg0_conf_exists);
        assert_eq!(info.existing_peers_count, 1);

        // A second router's wg0 with another key makes the server key ambiguous.
        c.execute_batch(
            "INSERT INTO wg_interfaces (router_id, name, public_key, listen_port, fwmark, peers, updated_ms) \
             VALUES (2, 'wg0', 'otherkey', 51821, NULL, 0, 100)",
        )
        .unwrap();
        let info = server_interfaces(&c, 1000, &all()).unwrap().info();
        assert_eq!(info.server_public_key, None);
        assert_eq!(info.publickey_server_exists, Some(true));
        assert_eq!(info.interfaces[0].listen_port, Some(51821));
        assert_eq!(info.interfaces[0].rx_bytes, Some(30));

        // wg0 without keys: false (wg1's key does not count); no stored interface: unknown.
        c.execute_batch("UPDATE wg_interfaces SET public_key = NULL WHERE name = 'wg0'")
            .unwrap();
        let info = server_interfaces(&c, 1000, &all()).unwrap().info();
        assert_eq!(info.publickey_server_exists, Some(false));
        c.execute_batch("DELETE FROM wg_interfaces").unwrap();
        let info = server_interfaces(&c, 1000, &all()).unwrap().info();
        assert_eq!(info.publickey_server_exists, None);
        assert_eq!(info.server_public_key, None);
        assert_eq!(
            info.interfaces.len(),
            2,
            "counters and peers still list interfaces"
        );
    }

    #[test]
    fn fleet_summary_reads_the_current_peers_not_the_samples() {
        let c = empty_db();
        let p = plan(&c, SUMMARY_SQL, 2);
        assert!(
            p.contains("SEARCH w USING PRIMARY KEY (router_id=?)"),
            "{p}"
        );
        assert!(!p.contains("wg_peer_samples"), "{p}");
        assert_no_big_scan(&p);
    }

    #[test]
    fn stored_interfaces_are_read_without_a_table_scan() {
        let c = empty_db();
        let p = plan(&c, WG_INTERFACES_SQL, 2);
        assert!(
            p.contains("SEARCH w USING PRIMARY KEY (router_id=?)"),
            "{p}"
        );
        assert_no_big_scan(&p);
    }

    #[test]
    fn one_peer_is_found_through_wg_peers() {
        let c = fleet();
        // The peer of the newest report (router 1), one stale `wg_peers` row whose sample is
        // gone (router 2: not shown) and a revoked router's peer (router 3: not shown).
        c.execute_batch(
            "UPDATE wg_peer_samples SET name = 'Bob'; \
             INSERT INTO wg_peer_samples (router_id, ts_ms, iface, public_key, allowed_ips, \
             latest_handshake, rx_bytes, tx_bytes) VALUES (3, 100, 'wg0', 'peerkey', '10.0.0.9/32', 1, 1, 1); \
             INSERT INTO wg_peers (router_id, iface, public_key, name) VALUES \
             (1, 'wg0', 'peerkey', 'Bob'), (2, 'wg0', 'peerkey', 'Bob'), (3, 'wg0', 'peerkey', 'Bob');",
        )
        .unwrap();
        let (rows, p) = key_rows(&c, "peerkey").unwrap();
        assert_eq!((rows.len(), p), (1, 0));
        assert_eq!(
            (rows[0].router.as_str(), rows[0].allowed_ips.as_str()),
            ("gw", "10.0.0.2/32")
        );
        assert_eq!(name_rows(&c, "Bob").unwrap().0, rows);
        assert_eq!(name_rows(&c, "peerkey").unwrap().0, rows);
        assert!(key_rows(&c, "otherkey").is_err());
        assert!(name_rows(&c, "Alice").is_err());
        // The same rows as the fleet-wide newest samples.
        let all: Vec<PeerRow> = latest_peers(&c, PeerFilter::Page(i64::MIN, i64::MAX))
            .unwrap()
            .into_iter()
            .filter(|r| r.public_key == "peerkey")
            .collect();
        assert_eq!(all, rows);
    }

    #[test]
    fn one_peer_is_read_without_visiting_every_router() {
        let c = empty_db();
        for (filter, index) in [
            (BY_KEY, "USING COVERING INDEX wg_peers_key (public_key=?)"),
            (BY_NAME_OR_KEY, "wg_peers_name (name=?)"),
        ] {
            let p = plan(&c, &PEER_BY_SQL.replace("{filter}", filter), 1);
            assert!(p.contains(index), "{p}");
            assert!(
                p.contains("SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"),
                "{p}"
            );
            assert!(
                p.contains("SEARCH w USING PRIMARY KEY (router_id=? AND ts_ms=? AND iface=? AND public_key=?)"),
                "{p}"
            );
            assert!(!p.lines().any(|l| l.starts_with("SCAN")), "{p}");
            assert_no_big_scan(&p);
        }
    }
}
