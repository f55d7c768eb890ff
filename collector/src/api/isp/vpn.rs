//! VPN routes from the OpenVPN status files every router reports: `/api/vpn/status`,
//! `/api/vpn/clients`, `/api/vpn/clients/connected`, `/api/vpn/clients/{name}/details`,
//! `/api/vpn/statistics/usage`, `/api/vpn/health`.
//!
//! A client is a common name on a router's OpenVPN server; it is connected when it is listed in
//! the newest report of a connected router. Instances come from the agent's source status (one
//! per status file), so client-side instances (`OpenVPN STATISTICS` files) are listed too, with
//! no clients; their counters are not stored by the collector.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use rusqlite::{params, Connection};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    auth, db, isp_query, mib, ok, ok_flat, page_after, page_bounds, page_limit, path_name, read,
    routers_in, with_next, ErrorEnvelope, IspError, IspResult, NoQuery, PageQuery, Params,
    RawQuery, RouterCache, RouterFacts, StampedEnvelope,
};
use super::{cached_envelope, cached_flat, FlatEnvelope};
use crate::api::cache;
use crate::api::paging::{self, id_span, Page, PageBounds};
use crate::api::times::{date_ms, iso_ms_opt, plain_datetime_s};
use crate::api::ApiState;
use crate::clock::now_ms;
use axum::response::Response;

/// Longest accepted `days` of `/api/vpn/statistics/usage`.
pub const MAX_USAGE_DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;

/// `GET /api/vpn/status`, its fields at the top level beside `success`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnStatus)]
pub struct VpnStatus {
    /// The fleet as one server.
    pub server_status: ServerStatus,
    /// Every OpenVPN instance of every router.
    pub servers: Vec<VpnServer>,
}

/// Fleet-wide OpenVPN state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::ServerStatus)]
pub struct ServerStatus {
    /// Some instance's status file was read in the newest report of a connected router.
    pub service_running: bool,
    /// Always null: the agent does not probe the listening port.
    pub port_listening: Option<bool>,
    /// Sessions listed by the running instances.
    pub connected_clients: usize,
    /// Common names of those sessions, sorted, each once.
    pub client_list: Vec<String>,
    /// Mean of the instances' scores; null without instances.
    pub health_score: Option<u8>,
    pub instances: usize,
    pub instances_running: usize,
}

/// One OpenVPN instance (status file) of one router.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnServer)]
pub struct VpnServer {
    pub device_name: String,
    pub device_connected: bool,
    /// The status file name without directory and extension.
    pub instance: String,
    /// The status file path on the router (null when only samples name the instance).
    pub status_file: Option<String>,
    /// How the agent read the file: `ok`, `partial`, `error`, ...
    pub state: Option<String>,
    pub detail: Option<String>,
    /// The file was read (`ok` or `partial`) and the router is connected.
    pub service_running: bool,
    pub connected_clients: usize,
    pub client_list: Vec<String>,
    /// 100 running and read cleanly, 75 running with skipped lines, 0 otherwise.
    pub health_score: u8,
    /// When the state last changed.
    pub updated: Option<String>,
}

/// One OpenVPN client session as its server lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = isp::VpnSession)]
pub struct VpnSession {
    pub common_name: String,
    /// The router running the server.
    pub device_name: String,
    pub instance: String,
    pub real_address: String,
    pub virtual_address: Option<String>,
    pub virtual_ipv6: Option<String>,
    /// Received by the server from the client.
    pub bytes_received: i64,
    /// Sent by the server to the client.
    pub bytes_sent: i64,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    pub connected_since: Option<String>,
    /// Null when OpenVPN printed `UNDEF`.
    pub username: Option<String>,
    pub cipher: Option<String>,
    /// Rates over the last report interval; null without a previous sample of the session.
    pub receive_bps: Option<i64>,
    pub send_bps: Option<i64>,
    pub is_connected: bool,
    /// The time of the report the session was last listed in.
    pub last_seen: Option<String>,
}

/// `GET /api/vpn/clients`, its fields at the top level beside `success`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnClients)]
pub struct VpnClients {
    pub clients: Vec<VpnClient>,
    pub statistics: VpnClientStatistics,
}

/// A client (common name) on one router's server.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnClient)]
pub struct VpnClient {
    pub name: String,
    /// The common name (there is no name prefix to strip).
    pub full_name: String,
    pub device_name: String,
    pub is_connected: bool,
    /// Always null: certificates are not reported.
    pub is_valid: Option<bool>,
    /// Always null: certificates are not reported.
    pub created_at: Option<String>,
    /// Always null: certificates are not reported.
    pub expires_at: Option<String>,
    /// Sessions of this name on this router in the newest report (1 for a last sighting).
    pub sessions: usize,
    pub last_seen: Option<String>,
    /// The newest session.
    pub connection_info: Option<VpnSession>,
}

/// Counts of `GET /api/vpn/clients`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnClientStatistics)]
pub struct VpnClientStatistics {
    pub total_clients: usize,
    pub connected_clients: usize,
    /// Always null: certificates are not reported.
    pub valid_certificates: Option<usize>,
}

/// `GET /api/vpn/clients/connected`, its fields at the top level beside `success`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::ConnectedClients)]
pub struct ConnectedClients {
    pub connected_clients: Vec<VpnSession>,
    pub total_connected: usize,
    pub bandwidth_summary: BandwidthSummary,
}

/// Sums of the connected sessions' counters, in MiB.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnBandwidthSummary)]
pub struct BandwidthSummary {
    pub total_mb_received: f64,
    pub total_mb_sent: f64,
}

/// `data` of `GET /api/vpn/clients/{name}/details`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnClientDetails)]
pub struct VpnClientDetails {
    pub name: String,
    pub full_name: String,
    pub is_connected: bool,
    /// Routers whose servers list the sessions below.
    pub devices: Vec<String>,
    /// Connected sessions; when none, the sessions of the last sighting.
    pub sessions: Vec<VpnSession>,
    /// Sum of the listed sessions' counters.
    pub total_bytes_received: i64,
    pub total_bytes_sent: i64,
    /// Traffic counted between reports over the last 24 hours, all routers.
    pub usage_24h: VpnTraffic,
    /// The oldest stored sample of the name (raw samples are kept for the retention period).
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Always null: certificates are not reported.
    pub is_valid: Option<bool>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
}

/// Bytes in both directions, seen from the server.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
#[schema(as = isp::VpnTraffic)]
pub struct VpnTraffic {
    pub bytes_received: i64,
    pub bytes_sent: i64,
}

/// `data` of `GET /api/vpn/statistics/usage`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnUsage)]
pub struct VpnUsage {
    pub period_days: i64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub total_bytes_received: i64,
    pub total_bytes_sent: i64,
    pub total_mb_received: f64,
    pub total_mb_sent: f64,
    /// Distinct common names with samples in the period.
    pub unique_clients: usize,
    /// Distinct sessions (router, instance, common name, real address, connect time).
    pub total_sessions: usize,
    /// By bytes (received + sent), largest first.
    pub clients: Vec<VpnClientUsage>,
    /// By UTC date, oldest first; only days with samples.
    pub daily: Vec<VpnDailyUsage>,
}

/// Usage of one common name on one router.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnClientUsage)]
pub struct VpnClientUsage {
    pub common_name: String,
    pub device_name: String,
    pub bytes_received: i64,
    pub bytes_sent: i64,
    pub total_bytes: i64,
    pub sessions: usize,
    pub last_seen: Option<String>,
}

/// Usage of one UTC day.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnDailyUsage)]
pub struct VpnDailyUsage {
    /// `YYYY-MM-DD`
    pub date: String,
    pub bytes_received: i64,
    pub bytes_sent: i64,
    pub unique_clients: usize,
}

/// `data` of `GET /api/vpn/health`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnHealth)]
pub struct VpnHealth {
    /// `healthy`, or `degraded` when an instance of a connected router could not be read.
    pub status: String,
    pub service: String,
    pub instances: usize,
    pub instances_running: usize,
    pub connected_clients: usize,
    pub devices_reporting: usize,
}

const SESSION_COLS: &str = "o.router_id, o.ts_ms, o.instance, o.common_name, o.real_address, o.virtual_address, \
     o.virtual_ipv6, o.rx_bytes, o.tx_bytes, o.connected_since, o.username, o.cipher, o.rx_bps, o.tx_bps";

/// A session with its router id, sample time and connect time.
type Sighting = (i64, i64, Option<i64>, VpnSession);

/// A session row read with [`SESSION_COLS`], before the router name is known.
struct SessionRow {
    router_id: i64,
    ts_ms: i64,
    connected_since: Option<i64>,
    session: VpnSession,
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let ts_ms: i64 = r.get(1)?;
    let since: Option<i64> = r.get(9)?;
    Ok(SessionRow {
        router_id: r.get(0)?,
        ts_ms,
        connected_since: since,
        session: VpnSession {
            common_name: r.get(3)?,
            device_name: String::new(),
            instance: r.get(2)?,
            real_address: r.get(4)?,
            virtual_address: r.get(5)?,
            virtual_ipv6: r.get(6)?,
            bytes_received: r.get(7)?,
            bytes_sent: r.get(8)?,
            connected_since: since.and_then(plain_datetime_s),
            username: r.get(10)?,
            cipher: r.get(11)?,
            receive_bps: r.get(12)?,
            send_bps: r.get(13)?,
            is_connected: false,
            last_seen: iso_ms_opt(ts_ms),
        },
    })
}

impl SessionRow {
    /// (router id, sample time, connect time, session).
    fn finish(mut self, routers: &HashMap<i64, RouterFacts>, now: i64) -> Sighting {
        let router = routers.get(&self.router_id);
        self.session.device_name = router.map(|r| r.name.clone()).unwrap_or_default();
        self.session.is_connected =
            router.is_some_and(|r| r.connected(now) && r.last_report_ms == Some(self.ts_ms));
        (
            self.router_id,
            self.ts_ms,
            self.connected_since,
            self.session,
        )
    }
}

fn by_id(routers: Vec<RouterFacts>) -> HashMap<i64, RouterFacts> {
    routers.into_iter().map(|r| (r.id, r)).collect()
}

/// Sessions in the newest reports: `?1` common name or NULL, `?2` oldest `last_seen_ms` counted,
/// routers with `?3 < id <= ?4`.
fn connected_sql() -> String {
    format!(
        "SELECT {SESSION_COLS} FROM routers r CROSS JOIN ovpn_client_samples o ON o.router_id = r.id \
         AND o.ts_ms = r.last_report_ms WHERE (?1 IS NULL OR +o.common_name = ?1) AND r.revoked_at IS NULL \
         AND r.last_seen_ms >= ?2 AND r.id > ?3 AND r.id <= ?4"
    )
}

/// Whether common name `?1` is connected now anywhere (listed in the newest report of a
/// connected router, `?2` the oldest `last_seen_ms` counted), read through its `(common_name,
/// ts_ms)` index.
const NAME_CONNECTED_SQL: &str = "SELECT EXISTS (SELECT 1 FROM ovpn_client_samples o CROSS JOIN routers r \
     ON r.id = o.router_id WHERE o.common_name = ?1 AND o.ts_ms = r.last_report_ms AND r.revoked_at IS NULL \
     AND r.last_seen_ms >= ?2)";
/// [`connected_sql`] for one common name `?1`, read through its `(common_name, ts_ms)` index
/// (its own samples, each checked against its router's newest report).
fn client_connected_sql() -> String {
    format!(
        "SELECT {SESSION_COLS} FROM ovpn_client_samples o CROSS JOIN routers r ON r.id = o.router_id \
         WHERE o.common_name = ?1 AND o.ts_ms = r.last_report_ms AND r.revoked_at IS NULL \
         AND r.last_seen_ms >= ?2"
    )
}

/// The newest sample time of a common name and its sessions then: `?1` common name.
fn last_sighting_sql() -> String {
    format!(
        "SELECT {SESSION_COLS} FROM ovpn_client_samples_all o WHERE o.common_name = ?1 AND o.ts_ms = \
         (SELECT max(ts_ms) FROM ovpn_client_samples_all WHERE common_name = ?1) ORDER BY o.router_id, o.real_address"
    )
}

/// The common names with stored samples on the routers with `?1 < id <= ?2`
/// (`ovpn_client_names`, kept at ingest: `store::vpnstate`), each once.
const PAGE_NAMES_SQL: &str = "SELECT DISTINCT common_name FROM ovpn_client_names \
     WHERE router_id > ?1 AND router_id <= ?2 ORDER BY common_name";
/// The OpenVPN status files (not disabled) of every router with `?1 < id <= ?2`, by router and name.
const ALL_SOURCES_SQL: &str =
    "SELECT router_id, name, state, detail, updated_ms FROM source_status \
     WHERE router_id > ?1 AND router_id <= ?2 AND kind = 'openvpn' AND state != 'disabled' \
     ORDER BY router_id, name";
/// The OpenVPN sessions of the newest report of every router with `?1 < id <= ?2`, by router,
/// instance and name.
const ALL_CLIENTS_AT_SQL: &str = "SELECT r.id, o.ts_ms, o.instance, o.common_name FROM routers r \
     CROSS JOIN ovpn_client_samples o ON o.router_id = r.id AND o.ts_ms = r.last_report_ms \
     WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.id, o.instance, o.common_name";
/// Every router's id and whether it is connected (`?1` the oldest `last_seen_ms` counted, as
/// [`RouterFacts::connected`]): the narrow facts `/api/vpn/health` needs.
const HEALTH_ROUTERS_SQL: &str =
    "SELECT id, revoked_at IS NULL AND last_seen_ms >= ?1 FROM routers";
/// The OpenVPN status files (not disabled) of every router: router, path, state (in the order
/// of [`ALL_SOURCES_SQL`]).
const HEALTH_SOURCES_SQL: &str = "SELECT router_id, name, state FROM source_status \
     WHERE kind = 'openvpn' AND state != 'disabled' ORDER BY router_id, kind, name";
/// Sessions per instance in the newest report of every connected router (`?1` as in
/// [`HEALTH_ROUTERS_SQL`]): `ovpn_instance_sessions`, kept at ingest (`store::vpnstate`), one
/// narrow row per router and instance instead of the newest report's sample rows.
const HEALTH_SESSIONS_SQL: &str = "SELECT r.id, s.instance, s.sessions FROM routers r \
     CROSS JOIN ovpn_instance_sessions s ON s.router_id = r.id \
     WHERE r.revoked_at IS NULL AND r.last_seen_ms >= ?1";
const SPAN_SQL: &str =
    "SELECT min(ts_ms), max(ts_ms) FROM ovpn_client_samples_all WHERE common_name = ?1";
const CN_USAGE_SQL: &str =
    "SELECT coalesce(sum(rx_delta), 0), coalesce(sum(tx_delta), 0) FROM ovpn_client_samples_all \
     WHERE common_name = ?1 AND ts_ms >= ?2";
/// Raw part of the usage window: samples in `[?1, ?2)` (at most the first partial hour) of the
/// routers with `?3 < id <= ?4`.
const USAGE_SQL: &str = "SELECT o.router_id, o.common_name, o.ts_ms / 86400000, o.connected_since, o.instance, \
     o.real_address, coalesce(sum(o.rx_delta), 0), coalesce(sum(o.tx_delta), 0), max(o.ts_ms) \
     FROM routers r CROSS JOIN ovpn_client_samples_all o ON o.router_id = r.id AND o.ts_ms >= ?1 AND o.ts_ms < ?2 \
     WHERE r.id > ?3 AND r.id <= ?4 GROUP BY o.router_id, o.common_name, o.ts_ms / 86400000, o.connected_since, o.instance, o.real_address";
/// Hourly part of the usage window: whole hour buckets starting in `[?1, ?2]` (`?1` a bucket
/// start; the current hour's bucket holds the samples so far) of the routers with
/// `?3 < id <= ?4`, in the shape of [`USAGE_SQL`]'s rows. The buckets are listed (`IN`), so each
/// is one range of the primary key `(bucket_start_ms, router_id, ...)`: a page of routers reads
/// its own rows only.
const USAGE_ROLLUP_SQL: &str = "WITH RECURSIVE b(x) AS (SELECT ?1 UNION ALL SELECT x + 3600000 FROM b \
     WHERE x + 3600000 <= ?2) SELECT router_id, common_name, bucket_start_ms / 86400000, \
     nullif(connected_since, -1), instance, real_address, rx_bytes, tx_bytes, last_ts_ms \
     FROM ovpn_rollup_1h WHERE bucket_start_ms IN (SELECT x FROM b) AND router_id > ?3 AND router_id <= ?4";
/// Daily part of the usage window: whole UTC days starting in `[?1, ?2]` (`?1` a day start;
/// `ovpn_rollup_1d`, the sums of each day's hourly rows; the current day's holds the samples so
/// far) of the routers with `?3 < id <= ?4`, in the shape of [`USAGE_SQL`]'s rows (days listed
/// like [`USAGE_ROLLUP_SQL`]'s hours).
const USAGE_DAILY_SQL: &str = "WITH RECURSIVE b(x) AS (SELECT ?1 UNION ALL SELECT x + 86400000 FROM b \
     WHERE x + 86400000 <= ?2) SELECT router_id, common_name, bucket_start_ms / 86400000, \
     nullif(connected_since, -1), instance, real_address, rx_bytes, tx_bytes, last_ts_ms \
     FROM ovpn_rollup_1d WHERE bucket_start_ms IN (SELECT x FROM b) AND router_id > ?3 AND router_id <= ?4";

/// The queries of this module, for plan checks.
#[cfg(test)]
pub(crate) fn queries() -> Vec<(&'static str, String)> {
    vec![
        ("connected", connected_sql()),
        ("name_connected", NAME_CONNECTED_SQL.to_string()),
        ("client_connected", client_connected_sql()),
        ("last_sighting", last_sighting_sql()),
        ("page_names", PAGE_NAMES_SQL.to_string()),
        ("all_sources", ALL_SOURCES_SQL.to_string()),
        ("all_clients_at", ALL_CLIENTS_AT_SQL.to_string()),
        ("span", SPAN_SQL.to_string()),
        ("health_routers", HEALTH_ROUTERS_SQL.to_string()),
        ("health_sources", HEALTH_SOURCES_SQL.to_string()),
        ("health_sessions", HEALTH_SESSIONS_SQL.to_string()),
        ("cn_usage", CN_USAGE_SQL.to_string()),
        ("usage", USAGE_SQL.to_string()),
        ("usage_rollup", USAGE_ROLLUP_SQL.to_string()),
        ("usage_daily", USAGE_DAILY_SQL.to_string()),
    ]
}

/// Sessions in the newest report of each connected router of `routers` (only `common_name`
/// when given).
fn connected_sessions(
    conn: &Connection,
    routers: &HashMap<i64, RouterFacts>,
    common_name: Option<&str>,
    now: i64,
) -> Result<Vec<VpnSession>, IspError> {
    let mut st = conn.prepare_cached(&connected_sql()).map_err(db)?;
    let (after, last) = id_span(routers.keys().copied());
    let rows = st
        .query_map(
            params![
                common_name,
                now - crate::api::fleet::ONLINE_WINDOW_MS,
                after,
                last
            ],
            session_row,
        )
        .map_err(db)?;
    let mut out = Vec::new();
    for row in rows {
        let (_, _, _, s) = row.map_err(db)?.finish(routers, now);
        if s.is_connected {
            out.push(s);
        }
    }
    sort_sessions(&mut out);
    Ok(out)
}

/// Sessions by device, instance, common name and real address.
fn sort_sessions(sessions: &mut [VpnSession]) {
    sessions.sort_by(|a, b| {
        (
            a.device_name.as_str(),
            a.instance.as_str(),
            a.common_name.as_str(),
            a.real_address.as_str(),
        )
            .cmp(&(
                b.device_name.as_str(),
                b.instance.as_str(),
                b.common_name.as_str(),
                b.real_address.as_str(),
            ))
    });
}

/// The rows of a [`SESSION_COLS`] query.
fn session_rows<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> Result<Vec<SessionRow>, IspError> {
    let mut st = conn.prepare_cached(sql).map_err(db)?;
    let rows = st.query_map(params, session_row).map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// [`SessionRow::finish`] with the facts of only the routers these rows name (one lookup per
/// router instead of loading the fleet: for routes about one client).
fn finish_rows(
    conn: &Connection,
    rows: Vec<SessionRow>,
    now: i64,
) -> Result<Vec<Sighting>, IspError> {
    let mut cache = RouterCache::default();
    for row in &rows {
        cache.get(conn, row.router_id)?;
    }
    let routers = cache.into_found();
    Ok(rows.into_iter().map(|r| r.finish(&routers, now)).collect())
}

/// The connected sessions of one common name (as [`connected_sessions`] with a name), found
/// through the `(common_name, ts_ms)` index instead of every router's newest report.
fn client_connected_sessions(
    conn: &Connection,
    common_name: &str,
    now: i64,
) -> Result<Vec<VpnSession>, IspError> {
    let rows = session_rows(
        conn,
        &client_connected_sql(),
        params![common_name, now - crate::api::fleet::ONLINE_WINDOW_MS],
    )?;
    let mut out: Vec<VpnSession> = finish_rows(conn, rows, now)?
        .into_iter()
        .map(|(.., s)| s)
        .filter(|s| s.is_connected)
        .collect();
    sort_sessions(&mut out);
    Ok(out)
}

/// The sessions of `common_name` in its newest sample time (one router's report), as
/// [`SessionRow::finish`] returns them.
fn last_sighting(
    conn: &Connection,
    routers: &HashMap<i64, RouterFacts>,
    common_name: &str,
    now: i64,
) -> Result<Vec<Sighting>, IspError> {
    let mut st = conn.prepare_cached(&last_sighting_sql()).map_err(db)?;
    let rows = st.query_map([common_name], session_row).map_err(db)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(db)?.finish(routers, now));
    }
    Ok(out)
}

/// Whether `name` is connected now on any router (see [`NAME_CONNECTED_SQL`]).
fn name_connected(conn: &Connection, name: &str, now: i64) -> Result<bool, IspError> {
    let mut st = conn.prepare_cached(NAME_CONNECTED_SQL).map_err(db)?;
    st.query_row(
        params![name, now - crate::api::fleet::ONLINE_WINDOW_MS],
        |r| r.get(0),
    )
    .map_err(db)
}

/// The common names with stored samples on the routers of page `b` (see [`PAGE_NAMES_SQL`]):
/// every client whose last sighting is on one of them is among these.
fn page_names(conn: &Connection, b: &PageBounds) -> Result<Vec<String>, IspError> {
    let mut st = conn.prepare_cached(PAGE_NAMES_SQL).map_err(db)?;
    let rows = st
        .query_map(params![b.after, b.last], |r| r.get(0))
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

fn instance_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

fn score(state: Option<&str>, running: bool) -> u8 {
    match (running, state) {
        (true, Some("ok")) => 100,
        (true, _) => 75,
        (false, _) => 0,
    }
}

/// Every OpenVPN instance of every router.
fn servers(
    conn: &Connection,
    routers: &[RouterFacts],
    now: i64,
) -> Result<Vec<VpnServer>, IspError> {
    // Two statements for the whole fleet (status files, sessions of the newest reports) instead
    // of two per router.
    type Source = (String, String, Option<String>, i64);
    let (after, last) = id_span(routers.iter().map(|r| r.id));
    let mut sources: HashMap<i64, Vec<Source>> = HashMap::new();
    {
        let mut st = conn.prepare_cached(ALL_SOURCES_SQL).map_err(db)?;
        let mut rows = st.query(params![after, last]).map_err(db)?;
        while let Some(x) = rows.next().map_err(db)? {
            sources.entry(x.get(0).map_err(db)?).or_default().push((
                x.get(1).map_err(db)?,
                x.get(2).map_err(db)?,
                x.get(3).map_err(db)?,
                x.get(4).map_err(db)?,
            ));
        }
    }
    let mut sessions: HashMap<(i64, i64), Vec<(String, String)>> = HashMap::new();
    {
        let mut st = conn.prepare_cached(ALL_CLIENTS_AT_SQL).map_err(db)?;
        let mut rows = st.query(params![after, last]).map_err(db)?;
        while let Some(x) = rows.next().map_err(db)? {
            sessions
                .entry((x.get(0).map_err(db)?, x.get(1).map_err(db)?))
                .or_default()
                .push((x.get(2).map_err(db)?, x.get(3).map_err(db)?));
        }
    }
    let mut out = Vec::new();
    for r in routers {
        let online = r.connected(now);
        let mut by_instance: BTreeMap<String, VpnServer> = BTreeMap::new();
        for (path, state, detail, updated) in sources.remove(&r.id).unwrap_or_default() {
            let running = online && (state == "ok" || state == "partial");
            by_instance.insert(
                instance_name(&path),
                VpnServer {
                    device_name: r.name.clone(),
                    device_connected: online,
                    instance: instance_name(&path),
                    status_file: Some(path),
                    health_score: score(Some(&state), running),
                    state: Some(state),
                    detail,
                    service_running: running,
                    connected_clients: 0,
                    client_list: Vec::new(),
                    updated: iso_ms_opt(updated),
                },
            );
        }
        if let (true, Some(ts)) = (online, r.last_report_ms) {
            for (instance, cn) in sessions.remove(&(r.id, ts)).unwrap_or_default() {
                let entry = by_instance
                    .entry(instance.clone())
                    .or_insert_with(|| VpnServer {
                        device_name: r.name.clone(),
                        device_connected: online,
                        instance,
                        status_file: None,
                        state: None,
                        detail: None,
                        service_running: true,
                        connected_clients: 0,
                        client_list: Vec::new(),
                        health_score: score(None, true),
                        updated: None,
                    });
                entry.connected_clients += 1;
                if !entry.client_list.contains(&cn) {
                    entry.client_list.push(cn);
                }
            }
        }
        out.extend(by_instance.into_values());
    }
    Ok(out)
}

isp_query! {
    /// The query of [`usage`]: the window and a page of routers.
    UsageQuery {
        days: i64 = |p: &Params| p.int("days", 7, 1, MAX_USAGE_DAYS),
        limit: usize = page_limit,
        cursor: i64 = page_after,
    }
}

/// OpenVPN servers of the fleet, a page of routers at a time.
#[utoipa::path(get, path = "/api/vpn/status",
    operation_id = "isp_vpn_status", tag = "isp", params(paging::PageQuery),
    responses(
        (status = 200, description = "`{success, server_status, servers, timestamp}`: every instance of one page of routers (`limit`, default 100, in router id order) \
            and `server_status`, the summary of that page; the next page is named in the `Link` (rel=\"next\") and `X-Next-Cursor` headers, absent on the last page. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = FlatEnvelope<VpnStatus>),
        (status = 400, description = "Bad `limit` or `cursor`", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let b = page_bounds(&state, PageQuery::parse(q)?.page()).await?;
    let key = cache::key("/api/vpn/status", &[("page", &b)]);
    let next = b.next_cursor.clone();
    let resp = cached_flat(&state, &key, move |c| {
        vpn_status(servers(c, &routers_in(c, &b)?, now_ms())?)
    })
    .await?;
    Ok(with_next(resp, &uri, next.as_deref()))
}

/// The `/api/vpn/status` summary of every OpenVPN instance.
fn vpn_status(servers: Vec<VpnServer>) -> Result<VpnStatus, IspError> {
    let running: Vec<&VpnServer> = servers.iter().filter(|s| s.service_running).collect();
    let clients: BTreeSet<String> = running
        .iter()
        .flat_map(|s| s.client_list.iter().cloned())
        .collect();
    let health_score = (!servers.is_empty()).then(|| {
        let sum: usize = servers.iter().map(|s| usize::from(s.health_score)).sum();
        u8::try_from((sum + servers.len() / 2) / servers.len()).unwrap_or(100)
    });
    Ok(VpnStatus {
        server_status: ServerStatus {
            service_running: !running.is_empty(),
            port_listening: None,
            connected_clients: running.iter().map(|s| s.connected_clients).sum(),
            client_list: clients.into_iter().collect(),
            health_score,
            instances: servers.len(),
            instances_running: running.len(),
        },
        servers,
    })
}

/// Every client: connected ones per router, others at their last sighting; a page of routers at
/// a time.
#[utoipa::path(get, path = "/api/vpn/clients",
    operation_id = "isp_vpn_clients", tag = "isp", params(paging::PageQuery),
    responses(
        (status = 200, description = "`{success, clients, statistics, timestamp}`: clients by name and router, of one page of routers \
            (`limit`, default 100, in router id order): a client connected now is listed on the page of each router it is connected to, \
            another on the page of the router of its last sighting; `statistics` counts the page. The next page is named in the \
            `Link` (rel=\"next\") and `X-Next-Cursor` headers, absent on the last page. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = FlatEnvelope<VpnClients>),
        (status = 400, description = "Bad `limit` or `cursor`", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn clients(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let b = page_bounds(&state, PageQuery::parse(q)?.page()).await?;
    let key = cache::key("/api/vpn/clients", &[("page", &b)]);
    let next = b.next_cursor.clone();
    let resp = cached_flat(&state, &key, move |c| {
        let list = vpn_client_list(c, &b, now_ms())?;
        let connected = list.iter().filter(|c| c.is_connected).count();
        Ok(VpnClients {
            statistics: VpnClientStatistics {
                total_clients: list.len(),
                connected_clients: connected,
                valid_certificates: None,
            },
            clients: list,
        })
    })
    .await?;
    Ok(with_next(resp, &uri, next.as_deref()))
}

/// The clients of one page of `/api/vpn/clients`: sessions connected to the page's routers
/// grouped by name and router, and the clients connected nowhere whose last sighting is on one
/// of the page's routers.
fn vpn_client_list(c: &Connection, b: &PageBounds, now: i64) -> Result<Vec<VpnClient>, IspError> {
    {
        let routers = by_id(routers_in(c, b)?);
        // (name, device) -> sessions
        let mut groups: BTreeMap<(String, String), Vec<VpnSession>> = BTreeMap::new();
        for s in connected_sessions(c, &routers, None, now)? {
            groups
                .entry((s.common_name.clone(), s.device_name.clone()))
                .or_default()
                .push(s);
        }
        // Clients connected nowhere: of the names seen on the page's routers, those not
        // connected on them nor anywhere else, placed by their last sighting (O(page), not a
        // walk over every name of the fleet).
        let connected_here: BTreeSet<String> = groups.keys().map(|(n, _)| n.clone()).collect();
        for name in page_names(c, b)? {
            if connected_here.contains(&name) || name_connected(c, &name, now)? {
                continue;
            }
            let sighting = last_sighting(c, &routers, &name, now)?.into_iter().take(1);
            for (_, _, _, s) in sighting.filter(|(rid, ..)| b.after < *rid && *rid <= b.last) {
                groups
                    .entry((name.clone(), s.device_name.clone()))
                    .or_default()
                    .push(s);
            }
        }
        let mut out = Vec::new();
        for ((name, device), sessions) in groups {
            let newest = sessions
                .iter()
                .max_by(|a, b| a.connected_since.cmp(&b.connected_since))
                .cloned();
            out.push(VpnClient {
                full_name: name.clone(),
                name,
                device_name: device,
                is_connected: sessions.iter().any(|s| s.is_connected),
                is_valid: None,
                created_at: None,
                expires_at: None,
                sessions: sessions.len(),
                last_seen: newest.as_ref().and_then(|s| s.last_seen.clone()),
                connection_info: newest,
            });
        }
        Ok(out)
    }
}

/// The sums (saturating) of the sessions' received and sent byte counters.
fn session_bytes(sessions: &[VpnSession]) -> (i64, i64) {
    sessions.iter().fold((0, 0), |(rx, tx), s| {
        (
            rx.saturating_add(s.bytes_received),
            tx.saturating_add(s.bytes_sent),
        )
    })
}

/// Sessions connected now, a page of routers at a time.
#[utoipa::path(get, path = "/api/vpn/clients/connected",
    operation_id = "isp_vpn_clients_connected", tag = "isp", params(paging::PageQuery),
    responses(
        (status = 200, description = "`{success, connected_clients, total_connected, bandwidth_summary, timestamp}`: connected sessions by router, instance and name, \
            of one page of routers (`limit`, default 100, in router id order); `total_connected` and `bandwidth_summary` describe the page. \
            The next page is named in the `Link` (rel=\"next\") and `X-Next-Cursor` headers, absent on the last page.", body = FlatEnvelope<ConnectedClients>),
        (status = 400, description = "Bad `limit` or `cursor`", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn connected(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let page = PageQuery::parse(q)?.page();
    let now = now_ms();
    let (list, next) = read(&state, move |c| {
        let b = paging::bounds(c, page).map_err(db)?;
        let list = connected_sessions(c, &by_id(routers_in(c, &b)?), None, now)?;
        Ok((list, b.next_cursor))
    })
    .await?;
    let (rx, tx) = session_bytes(&list);
    let resp = ok_flat(ConnectedClients {
        total_connected: list.len(),
        connected_clients: list,
        bandwidth_summary: BandwidthSummary {
            total_mb_received: mib(rx),
            total_mb_sent: mib(tx),
        },
    })?;
    Ok(with_next(resp, &uri, next.as_deref()))
}

/// One client (common name) across all routers.
#[utoipa::path(get, path = "/api/vpn/clients/{name}/details",
    operation_id = "isp_vpn_clients_name_details", tag = "isp",
    params(("name" = String, Path, description = "Common name (exact), 1 to 253 characters", min_length = 1, max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$")),
    responses(
        (status = 200, description = "Sessions and traffic of the client", body = StampedEnvelope<VpnClientDetails>),
        (status = 400, description = "Bad common name", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No stored session has this common name", body = ErrorEnvelope),
    ))]
pub async fn details(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: RawQuery,
) -> IspResult<VpnClientDetails> {
    auth(&state, &headers).await?;
    let name = path_name(name, "client name")?;
    NoQuery::parse(q)?;
    let now = now_ms();
    let out = read(&state, move |c| {
        let (first, last): (Option<i64>, Option<i64>) = c
            .prepare_cached(SPAN_SQL)
            .and_then(|mut st| st.query_row([&name], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(db)?;
        let Some(last) = last else {
            return Err(IspError::not_found(format!(
                "unknown VPN client {name:?}: no stored session has this common name"
            )));
        };
        let mut sessions = client_connected_sessions(c, &name, now)?;
        if sessions.is_empty() {
            let rows = session_rows(c, &last_sighting_sql(), [&name])?;
            sessions = finish_rows(c, rows, now)?
                .into_iter()
                .map(|(.., s)| s)
                .collect();
        }
        let usage: (i64, i64) = c
            .prepare_cached(CN_USAGE_SQL)
            .and_then(|mut st| {
                st.query_row(params![&name, now - DAY_MS], |r| Ok((r.get(0)?, r.get(1)?)))
            })
            .map_err(db)?;
        let mut devices: Vec<String> = sessions.iter().map(|s| s.device_name.clone()).collect();
        devices.sort_unstable();
        devices.dedup();
        let (total_bytes_received, total_bytes_sent) = session_bytes(&sessions);
        Ok(VpnClientDetails {
            full_name: name.clone(),
            name,
            is_connected: sessions.iter().any(|s| s.is_connected),
            devices,
            total_bytes_received,
            total_bytes_sent,
            sessions,
            usage_24h: VpnTraffic {
                bytes_received: usage.0,
                bytes_sent: usage.1,
            },
            first_seen: first.and_then(iso_ms_opt),
            last_seen: iso_ms_opt(last),
            is_valid: None,
            created_at: None,
            expires_at: None,
        })
    })
    .await?;
    ok(out)
}

/// Per-session usage rows: (router, common name, UTC day, connect time, instance, real address)
/// with summed deltas and the newest sample time.
pub(super) type UsageRow = (i64, String, i64, Option<i64>, String, String, i64, i64, i64);

/// Per-session usage rows of `[start, now]`: raw samples before the first whole hour, the
/// hourly rollup (`ovpn_rollup_1h`) from it up to the first whole UTC day, the daily rollup
/// (`ovpn_rollup_1d`) from that day on, so a window reads at most an hour of raw samples,
/// 23 hourly buckets and one bucket per day and session, however long it is. The current
/// hour's (day's) bucket holds the samples so far (also one stamped after `now` by an agent
/// whose clock runs ahead: the daily bucket holds those of the rest of the day too). A
/// session's rows of one day may come from several parts; the caller sums them (and takes the
/// newest sample time). Only the routers with `after < id <= last` (a page; `(0, i64::MAX)`:
/// every router).
pub(super) fn usage_rows(
    c: &Connection,
    start: i64,
    now: i64,
    (after, last): (i64, i64),
) -> Result<Vec<UsageRow>, IspError> {
    let (raw_end, boundary) = super::split_window(start, now);
    let day = crate::store::bucket_start(
        boundary.saturating_add(DAY_MS - 1),
        crate::store::BUCKET_1D_MS,
    );
    let map = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
        ))
    };
    let mut rows: Vec<UsageRow> = Vec::new();
    for (sql, lo, hi) in [
        (USAGE_SQL, start, raw_end),
        (USAGE_ROLLUP_SQL, boundary, now.min(day.saturating_sub(1))),
        (USAGE_DAILY_SQL, day, now),
    ] {
        if lo > hi {
            continue;
        }
        let mut st = c.prepare_cached(sql).map_err(db)?;
        super::push_rows(&mut st, params![lo, hi, after, last], map, &mut rows)?;
    }
    Ok(rows)
}

/// VPN traffic over the last `days` days.
#[utoipa::path(get, path = "/api/vpn/statistics/usage",
    operation_id = "isp_vpn_statistics_usage", tag = "isp",
    params(("days" = Option<i64>, Query, description = "1 to 90, default 7", minimum = 1, maximum = 90), paging::PageQuery),
    responses(
        (status = 200, description = "Traffic by client and by day of one page of routers (`limit`, default 100, in router id order): \
            `clients` lists the clients of the page's routers, and the totals, `unique_clients`, `total_sessions` and `daily` describe the page. \
            The next page is named in the `Link` (rel=\"next\") and `X-Next-Cursor` headers, absent on the last page. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old, so the window may end up to that much before the request; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = StampedEnvelope<VpnUsage>),
        (status = 400, description = "days out of bounds, bad `limit` or `cursor`", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn usage(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let UsageQuery {
        days,
        limit,
        cursor,
    } = UsageQuery::parse(q)?;
    let b = page_bounds(
        &state,
        Page {
            after: cursor,
            limit,
        },
    )
    .await?;
    let key = cache::key(
        "/api/vpn/statistics/usage",
        &[("days", &days), ("page", &b)],
    );
    let next = b.next_cursor.clone();
    let resp = cached_envelope(&state, &key, move |c| {
        // The window ends when the answer is computed (possibly in a background refresh).
        let now = now_ms();
        let start = now - days * DAY_MS;
        let (rows, routers) = (|| -> Result<_, IspError> {
            Ok((
                usage_rows(c, start, now, (b.after, b.last))?,
                routers_in(c, &b)?,
            ))
        })()?;
        let names = super::router_names(&routers);
        #[derive(Default)]
        struct Acc {
            rx: i64,
            tx: i64,
            sessions: BTreeSet<(Option<i64>, String, String)>,
            last: i64,
        }
        let mut per_client: BTreeMap<(String, i64), Acc> = BTreeMap::new();
        let mut per_day: BTreeMap<i64, (i64, i64, BTreeSet<String>)> = BTreeMap::new();
        let mut all_sessions = BTreeSet::new();
        for (router, cn, day, since, instance, real, rx, tx, last) in rows {
            let a = per_client.entry((cn.clone(), router)).or_default();
            a.rx = a.rx.saturating_add(rx);
            a.tx = a.tx.saturating_add(tx);
            a.last = a.last.max(last);
            a.sessions.insert((since, instance.clone(), real.clone()));
            all_sessions.insert((router, cn.clone(), since, instance, real));
            let d = per_day.entry(day).or_default();
            d.0 = d.0.saturating_add(rx);
            d.1 = d.1.saturating_add(tx);
            d.2.insert(cn);
        }
        let mut clients: Vec<VpnClientUsage> = per_client
            .into_iter()
            .map(|((cn, router), a)| VpnClientUsage {
                common_name: cn,
                device_name: names.get(&router).cloned().unwrap_or_default(),
                bytes_received: a.rx,
                bytes_sent: a.tx,
                total_bytes: a.rx.saturating_add(a.tx),
                sessions: a.sessions.len(),
                last_seen: iso_ms_opt(a.last),
            })
            .collect();
        clients.sort_by(|a, b| {
            b.total_bytes
                .cmp(&a.total_bytes)
                .then_with(|| a.common_name.cmp(&b.common_name))
                .then_with(|| a.device_name.cmp(&b.device_name))
        });
        let total_rx = clients
            .iter()
            .map(|c| c.bytes_received)
            .fold(0, i64::saturating_add);
        let total_tx = clients
            .iter()
            .map(|c| c.bytes_sent)
            .fold(0, i64::saturating_add);
        let unique: BTreeSet<&str> = clients.iter().map(|c| c.common_name.as_str()).collect();
        let daily = per_day
            .into_iter()
            .map(|(day, (rx, tx, cns))| VpnDailyUsage {
                date: date_ms(day.saturating_mul(DAY_MS)).unwrap_or_default(),
                bytes_received: rx,
                bytes_sent: tx,
                unique_clients: cns.len(),
            })
            .collect();
        Ok(VpnUsage {
            period_days: days,
            from: iso_ms_opt(start),
            to: iso_ms_opt(now),
            total_bytes_received: total_rx,
            total_bytes_sent: total_tx,
            total_mb_received: mib(total_rx),
            total_mb_sent: mib(total_tx),
            unique_clients: unique.len(),
            total_sessions: all_sessions.len(),
            clients,
            daily,
        })
    })
    .await?;
    Ok(with_next(resp, &uri, next.as_deref()))
}

/// VPN service health (no key needed).
#[utoipa::path(get, path = "/api/vpn/health",
    operation_id = "isp_vpn_health", tag = "isp", security(()),
    responses((status = 200, description = "Instance and client counts", body = StampedEnvelope<VpnHealth>)))]
pub async fn health(State(state): State<ApiState>, q: RawQuery) -> IspResult<VpnHealth> {
    NoQuery::parse(q)?;
    let now = now_ms();
    let counts = read(&state, move |c| health_counts(c, now)).await?;
    ok(counts)
}

/// The fleet counts of `/api/vpn/health`: the instances [`servers`] lists for every router
/// (status files by instance name, plus the instances only the sessions of a connected
/// router's newest report name), counted from three narrow statements (router ids and
/// connectivity, status file states, sessions per instance) instead of building every
/// router's facts and servers.
fn health_counts(c: &Connection, now: i64) -> Result<VpnHealth, IspError> {
    let since = now - crate::api::fleet::ONLINE_WINDOW_MS;
    // router -> (connected, instance -> running)
    let mut routers: HashMap<i64, (bool, BTreeMap<String, bool>)> = HashMap::new();
    {
        let mut st = c.prepare_cached(HEALTH_ROUTERS_SQL).map_err(db)?;
        let mut rows = st.query([since]).map_err(db)?;
        while let Some(x) = rows.next().map_err(db)? {
            let online: Option<bool> = x.get(1).map_err(db)?;
            routers.insert(
                x.get(0).map_err(db)?,
                (online.unwrap_or(false), BTreeMap::new()),
            );
        }
    }
    {
        let mut st = c.prepare_cached(HEALTH_SOURCES_SQL).map_err(db)?;
        let mut rows = st.query([]).map_err(db)?;
        while let Some(x) = rows.next().map_err(db)? {
            let id: i64 = x.get(0).map_err(db)?;
            let Some((online, instances)) = routers.get_mut(&id) else {
                continue;
            };
            let path: String = x.get(1).map_err(db)?;
            let state: String = x.get(2).map_err(db)?;
            // As in `servers`: a later file of the same instance name replaces an earlier one.
            instances.insert(
                instance_name(&path),
                *online && (state == "ok" || state == "partial"),
            );
        }
    }
    let mut connected_clients = 0usize;
    {
        let mut st = c.prepare_cached(HEALTH_SESSIONS_SQL).map_err(db)?;
        let mut rows = st.query([since]).map_err(db)?;
        while let Some(x) = rows.next().map_err(db)? {
            let id: i64 = x.get(0).map_err(db)?;
            let Some((_, instances)) = routers.get_mut(&id) else {
                continue;
            };
            let instance: String = x.get(1).map_err(db)?;
            let n: i64 = x.get(2).map_err(db)?;
            // An instance only the sessions name is running.
            if *instances.entry(instance).or_insert(true) {
                connected_clients += usize::try_from(n).unwrap_or(0);
            }
        }
    }
    let (mut instances, mut running, mut failing, mut reporting) = (0, 0, false, 0);
    for (online, list) in routers.values() {
        reporting += usize::from(*online);
        instances += list.len();
        for run in list.values() {
            running += usize::from(*run);
            failing |= *online && !run;
        }
    }
    Ok(VpnHealth {
        status: if failing { "degraded" } else { "healthy" }.to_string(),
        service: "vpn".to_string(),
        instances,
        instances_running: running,
        connected_clients,
        devices_reporting: reporting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(rx: i64, tx: i64) -> VpnSession {
        VpnSession {
            common_name: "c".to_string(),
            device_name: "r".to_string(),
            instance: "server".to_string(),
            real_address: "192.0.2.1:1194".to_string(),
            virtual_address: None,
            virtual_ipv6: None,
            bytes_received: rx,
            bytes_sent: tx,
            connected_since: None,
            username: None,
            cipher: None,
            receive_bps: None,
            send_bps: None,
            is_connected: true,
            last_seen: None,
        }
    }

    use crate::store::testutil::{enrolled_router, rich_report};
    use crate::store::{IngestItem, Store};
    use routerstats_shared::model::{OvpnClient, SourceKind, SourceState, SourceStatus};

    const T: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;

    /// One report of the router at `ts` (received then) with these OpenVPN clients of instance
    /// `server` and its OpenVPN status file in `state`.
    fn ingest(store: &mut Store, id: i64, seq: u64, ts: i64, clients: &[&str], state: SourceState) {
        let mut r = rich_report([id as u8; 16], seq, ts as u64, seq * 1000);
        let template = r.openvpn[0].clients[0].clone();
        r.openvpn[0].clients = clients
            .iter()
            .map(|cn| OvpnClient {
                common_name: cn.to_string(),
                ..template.clone()
            })
            .collect();
        r.sources.retain(|s| s.kind != SourceKind::OpenVpn);
        r.sources.push(SourceStatus {
            kind: SourceKind::OpenVpn,
            name: "/var/run/openvpn.server.status".into(),
            state,
        });
        store
            .ingest(&[IngestItem {
                router_id: id,
                received_at_ms: ts,
                report: &r,
            }])
            .unwrap();
    }

    /// Routers r1..r4 (ids in that order): r1 and r2 report up to `T + 1.5 min` (bob leaves r1,
    /// then r2); r3 reported an hour earlier (erin, and alice, connected on r1 now); r4 is
    /// revoked and its status file fails (dave).
    fn fleet() -> (tempfile::TempDir, Connection, [i64; 4]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routerstats.db");
        let mut store = Store::open(&path).unwrap();
        let ids = ["r1", "r2", "r3", "r4"].map(|n| enrolled_router(&mut store, n).id);
        let ok = || SourceState::Ok;
        let err = || SourceState::Error("unreadable".into());
        ingest(
            &mut store,
            ids[2],
            1,
            T - 60 * MIN,
            &["erin", "alice"],
            ok(),
        );
        ingest(&mut store, ids[3], 1, T, &["dave"], err());
        ingest(&mut store, ids[0], 1, T, &["alice", "bob"], ok());
        ingest(&mut store, ids[1], 1, T + MIN / 2, &["bob", "carol"], err());
        ingest(&mut store, ids[0], 2, T + MIN, &["alice"], ok());
        ingest(&mut store, ids[1], 2, T + 3 * MIN / 2, &["carol"], err());
        store.revoke_router("r4", T / 1000).unwrap();
        (dir, Connection::open(&path).unwrap(), ids)
    }

    fn page(after: i64, last: i64) -> PageBounds {
        PageBounds {
            after,
            last,
            next_cursor: None,
        }
    }

    fn listed(list: &[VpnClient]) -> Vec<(String, String, bool)> {
        list.iter()
            .map(|c| (c.name.clone(), c.device_name.clone(), c.is_connected))
            .collect()
    }

    #[test]
    fn clients_connected_nowhere_are_listed_on_the_page_of_their_last_sighting() {
        let (_dir, c, ids) = fleet();
        let now = T + 2 * MIN;
        let own = |n: &str, d: &str, on: bool| (n.to_string(), d.to_string(), on);
        let all = listed(&vpn_client_list(&c, &page(0, i64::MAX), now).unwrap());
        assert_eq!(
            all,
            vec![
                own("alice", "r1", true),
                own("bob", "r2", false),
                own("carol", "r2", true),
                own("dave", "r4", false),
                own("erin", "r3", false),
            ]
        );
        // One router per page: each client on exactly one page, the same entries.
        let mut union = Vec::new();
        let mut after = 0;
        for id in ids {
            union.extend(listed(&vpn_client_list(&c, &page(after, id), now).unwrap()));
            after = id;
        }
        union.sort();
        assert_eq!(union, all);
        // Once r1 and r2 are offline too, nobody is connected; alice's last sighting is r1's.
        let later = listed(&vpn_client_list(&c, &page(0, i64::MAX), now + 10 * MIN).unwrap());
        assert!(later.iter().all(|(.., on)| !on), "{later:?}");
        assert!(later.contains(&own("alice", "r1", false)), "{later:?}");
        assert_eq!(later.len(), 5);
    }

    #[test]
    fn client_names_kept_at_ingest_equal_the_backfill_and_go_with_retention() {
        let (_dir, c, ids) = fleet();
        let read = |c: &Connection| -> Vec<(i64, String, i64)> {
            let mut st = c
                .prepare("SELECT router_id, common_name, last_ts_ms FROM ovpn_client_names ORDER BY 1, 2")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let kept = read(&c);
        assert_eq!(kept.len(), 7, "{kept:?}");
        assert!(kept.contains(&(ids[0], "bob".to_string(), T)), "{kept:?}");
        assert!(
            kept.contains(&(ids[1], "bob".to_string(), T + MIN / 2)),
            "{kept:?}"
        );
        let sessions = |c: &Connection| -> Vec<(i64, String, i64)> {
            let mut st = c
                .prepare("SELECT router_id, instance, sessions FROM ovpn_instance_sessions ORDER BY 1, 2")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let kept_sessions = sessions(&c);
        // r1 (alice), r2 (carol), r3 (erin, alice), r4 (dave): the newest reports' sessions.
        let server = |id: i64, n: i64| (id, "server".to_string(), n);
        assert_eq!(
            kept_sessions,
            vec![
                server(ids[0], 1),
                server(ids[1], 1),
                server(ids[2], 2),
                server(ids[3], 1)
            ]
        );
        c.execute_batch("DELETE FROM ovpn_client_names; DELETE FROM ovpn_instance_sessions")
            .unwrap();
        c.execute_batch(crate::store::vpnstate::backfill()).unwrap();
        assert_eq!(
            sessions(&c),
            kept_sessions,
            "the backfill from the newest reports"
        );
        assert_eq!(
            read(&c),
            kept,
            "the migration's backfill from ovpn_rollup_1d"
        );
        drop(c);
        // Raw retention (1 day) at T + 1 day - 30 min: only r3's names (an hour older) go.
        let path = _dir.path().join("routerstats.db");
        let mut store = Store::open(&path).unwrap();
        let policy = crate::store::Retention {
            raw_days: 1,
            ..Default::default()
        };
        store
            .apply_retention(T + 24 * 60 * MIN - 30 * MIN, &policy)
            .unwrap();
        let left = read(store.connection());
        assert_eq!(left.len(), 5, "{left:?}");
        assert!(left.iter().all(|(r, ..)| *r != ids[2]), "{left:?}");
    }

    #[test]
    fn health_counts_are_those_of_every_routers_servers() {
        let (_dir, c, _) = fleet();
        for now in [
            T - 50 * MIN,
            T + 2 * MIN,
            T + 5 * MIN + MIN / 2,
            T + 20 * MIN,
        ] {
            let servers = servers(&c, &crate::api::isp::all_routers(&c).unwrap(), now).unwrap();
            let running: Vec<&VpnServer> = servers.iter().filter(|s| s.service_running).collect();
            let failing = servers
                .iter()
                .any(|s| s.device_connected && !s.service_running);
            let want = (
                if failing { "degraded" } else { "healthy" },
                servers.len(),
                running.len(),
                running.iter().map(|s| s.connected_clients).sum::<usize>(),
            );
            let got = health_counts(&c, now).unwrap();
            assert_eq!(
                (
                    got.status.as_str(),
                    got.instances,
                    got.instances_running,
                    got.connected_clients
                ),
                want,
                "at {now}"
            );
            let reporting = crate::api::isp::all_routers(&c)
                .unwrap()
                .iter()
                .filter(|r| r.connected(now))
                .count();
            assert_eq!(got.devices_reporting, reporting, "at {now}");
        }
        // At T + 2 min r1 (ok) and r2 (unreadable file, carol's session in `server`) report.
        let h = health_counts(&c, T + 2 * MIN).unwrap();
        assert_eq!(
            (
                h.status.as_str(),
                h.instances,
                h.instances_running,
                h.connected_clients
            ),
            ("degraded", 6, 3, 2)
        );
    }

    #[test]
    fn session_bytes_sum_each_direction_and_saturate() {
        assert_eq!(session_bytes(&[]), (0, 0));
        assert_eq!(session_bytes(&[session(1, 10), session(2, 20)]), (3, 30));
        assert_eq!(
            session_bytes(&[session(i64::MAX, 5), session(1, 5)]),
            (i64::MAX, 10)
        );
    }
}
