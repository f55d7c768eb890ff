//! The MikroTik blueprint's read routes over the fleet: devices (routers) and users (client
//! hosts): `/api/mikrotik/devices`, `/api/mikrotik/devices/status`,
//! `/api/mikrotik/devices/{name}/currentstatus`, `/api/mikrotik/interfaces`,
//! `/api/mikrotik/users/active`, `/api/mikrotik/users/{name}/stats`, `/api/mikrotik/health`
//! (the earlier `/api/devices...`, `/api/interfaces`, `/api/users...` are deprecated aliases of
//! the same handlers, `super::ALIASES`).
//!
//! A device's "VPN connection" is an OpenVPN client session whose common name is the device's
//! name, on any router's OpenVPN server (as a router dialling the middleware's VPN would be).

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cached_envelope;
use super::{
    all_routers, auth, db, device_filter, device_or_page, device_page, isp_query, kbps_to_mbps,
    lease_for_mac, mib, ok, ok_flat, page_after, page_limit, path_name, read, resolve_user,
    router_by_name, routers_in, station_totals, username_of, with_next, ErrorEnvelope,
    FlatEnvelope, IspError, IspResult, NoQuery, PageQuery, Params, RawQuery, RouterCache,
    RouterFacts, Scope, StampedEnvelope, MAX_IDENTITIES,
};
use crate::api::cache;
use crate::api::paging::{self, id_span, Page};
use crate::api::times::{iso_ms_opt, plain_datetime_s, routeros_uptime};
use crate::api::ApiState;
use crate::clock::now_ms;
use axum::response::Response;

/// `GET /api/mikrotik/devices`, its fields at the top level beside `success`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::DeviceList)]
pub struct DeviceList {
    pub devices: Vec<Device>,
    #[schema(minimum = 0)]
    pub total_devices: usize,
    /// Devices heard from within the last 5 minutes.
    #[schema(minimum = 0)]
    pub connected_devices: usize,
}

/// One router.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::Device)]
pub struct Device {
    pub name: String,
    /// The router's hostname (agents push to the collector; the router's address is not known).
    pub host: String,
    /// Always null: there is no management port, the agent connects to the collector.
    pub port: Option<u16>,
    /// Always true: agents report over mutual TLS.
    pub use_ssl: bool,
    /// Not revoked and heard from within the last 5 minutes.
    pub connected: bool,
    pub system_info: SystemInfo,
    pub site: Option<String>,
    pub model: Option<String>,
    pub agent_version: Option<String>,
    pub revoked: bool,
    /// When the collector last heard from the router.
    pub last_seen: Option<String>,
}

/// System facts of a router's newest report (RouterOS-style strings, as the middleware gives).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::SystemInfo)]
pub struct SystemInfo {
    /// Like `2w3d4h15m10s`.
    pub uptime: Option<String>,
    /// OpenWrt release, like `23.05.3`.
    pub version: Option<String>,
    /// CPU busy percent over the last report interval, like `5`.
    pub cpu_load: Option<String>,
    /// Available memory in bytes.
    pub free_memory: Option<String>,
    /// Total memory in bytes.
    pub total_memory: Option<String>,
}

/// VPN state of one device (`GET /api/mikrotik/devices/status`, `/currentstatus`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::DeviceStatus)]
pub struct DeviceStatus {
    pub device_name: String,
    /// The device itself is reporting (heard from within 5 minutes, not revoked).
    pub connected: bool,
    /// An OpenVPN session with the device's name as common name is in the newest report of an
    /// online router.
    pub vpn_connected: bool,
    /// The newest such session (also when it has ended); null when none was ever seen.
    pub vpn_connection_info: Option<VpnConnectionInfo>,
    pub last_seen: Option<String>,
    /// Null for an enrolled device; for a name of `identities` no device has, the reason
    /// (`unknown device`), with `connected` and `vpn_connected` false.
    pub error: Option<String>,
}

/// One OpenVPN session of a device, as its server reports it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::VpnConnectionInfo)]
pub struct VpnConnectionInfo {
    pub real_address: String,
    pub virtual_address: Option<String>,
    /// Received by the server from the device.
    pub bytes_received: i64,
    /// Sent by the server to the device.
    pub bytes_sent: i64,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    pub connected_since: Option<String>,
    /// The router running the OpenVPN server.
    pub server_device: String,
    /// The server instance (status file name).
    pub instance: String,
    /// The time of the report the session was last seen in.
    pub last_seen: Option<String>,
}

/// `data` of `GET /api/mikrotik/interfaces`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::InterfaceList)]
pub struct InterfaceList {
    pub interfaces: Vec<InterfaceStat>,
    pub total_interfaces: usize,
}

/// Counters of one network interface in a router's newest report (/proc/net/dev).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::InterfaceStat)]
pub struct InterfaceStat {
    pub device_name: String,
    pub name: String,
    /// `wifi`, `ethernet`, `bridge`, `pppoe`, `wireguard`, `tunnel`, `loopback`, `other`.
    #[serde(rename = "type")]
    pub kind: String,
    pub rx_bytes: i64,
    pub tx_bytes: i64,
    pub rx_packets: i64,
    pub tx_packets: i64,
    pub rx_errors: i64,
    pub tx_errors: i64,
    pub rx_drops: i64,
    pub tx_drops: i64,
    /// Receive rate over the last report interval; null without a previous sample.
    pub rx_bps: Option<i64>,
    pub tx_bps: Option<i64>,
    /// Wi-Fi settings when `iw dev` lists the interface.
    pub wireless: Option<WirelessInfo>,
    pub sampled_at: Option<String>,
}

/// `iw dev` facts of a wireless interface.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::WirelessInfo)]
pub struct WirelessInfo {
    /// `AP`, `mesh point`, `managed`, ...
    pub mode: String,
    pub ssid: Option<String>,
    pub channel: Option<i64>,
    pub frequency_mhz: Option<i64>,
    pub width_mhz: Option<i64>,
    pub txpower_dbm: Option<f64>,
    /// The links of a Wi-Fi 7 multi-link (MLD) interface, each with its own channel, width
    /// and power (the interface-level fields above are then usually null); empty otherwise.
    pub links: Vec<WirelessLinkInfo>,
}

/// One link of a multi-link (MLD) interface (read from `wireless_interfaces.links`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::WirelessLinkInfo)]
pub struct WirelessLinkInfo {
    pub link_id: i64,
    pub addr: Option<String>,
    pub channel: Option<i64>,
    pub frequency_mhz: Option<i64>,
    pub width_mhz: Option<i64>,
    pub center1_mhz: Option<i64>,
    pub center2_mhz: Option<i64>,
    pub txpower_dbm: Option<f64>,
}

impl From<routerstats_shared::WifiLink> for WirelessLinkInfo {
    fn from(l: routerstats_shared::WifiLink) -> Self {
        WirelessLinkInfo {
            link_id: l.link_id.into(),
            addr: l.addr.map(|a| a.to_string()),
            channel: l.channel.map(i64::from),
            frequency_mhz: l.freq_mhz.map(i64::from),
            width_mhz: l.width_mhz.map(i64::from),
            center1_mhz: l.center1_mhz.map(i64::from),
            center2_mhz: l.center2_mhz.map(i64::from),
            // iw prints two decimals: keep them, not the f32's binary tail (22.3, not 22.2999...).
            txpower_dbm: l
                .txpower_dbm
                .map(|p| (f64::from(p) * 100.0).round() / 100.0),
        }
    }
}

/// Per-link figures of a multi-link station in the same report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = isp::StationLinkInfo)]
pub struct StationLinkInfo {
    pub link_id: i64,
    pub addr: Option<String>,
    pub signal_dbm: Option<i64>,
    /// Bytes sent to the station on this link since it associated.
    pub bytes_downloaded: Option<i64>,
    pub bytes_uploaded: Option<i64>,
    pub tx_bitrate_kbps: Option<i64>,
    pub rx_bitrate_kbps: Option<i64>,
    pub tx_retries: Option<i64>,
    pub tx_failed: Option<i64>,
    /// Airtime counters of the link (microseconds since association).
    pub tx_duration_us: Option<i64>,
    pub rx_duration_us: Option<i64>,
}

/// `data` of `GET /api/mikrotik/users/active`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::ActiveUsers)]
pub struct ActiveUsers {
    pub active_users: Vec<ActiveUser>,
    pub active_users_count: usize,
}

/// One associated Wi-Fi station. Download is what the access point sent to it (its tx
/// counter), upload what it sent (its rx counter).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = isp::ActiveUser)]
pub struct ActiveUser {
    /// DHCP lease hostname, else the MAC.
    pub username: String,
    pub hostname: Option<String>,
    pub mac_address: String,
    /// From the DHCP lease; null without one.
    pub ip_address: Option<String>,
    pub device_name: String,
    pub interface: String,
    pub ssid: Option<String>,
    pub signal_dbm: Option<i64>,
    pub signal_avg_dbm: Option<i64>,
    pub connected_seconds: Option<i64>,
    pub inactive_ms: Option<i64>,
    pub tx_bitrate_mbps: Option<f64>,
    pub rx_bitrate_mbps: Option<f64>,
    /// Bytes sent to the station since it associated.
    pub bytes_downloaded: Option<i64>,
    /// Bytes received from the station since it associated.
    pub bytes_uploaded: Option<i64>,
    pub download_bps: Option<i64>,
    pub upload_bps: Option<i64>,
    /// Airtime the access point spent sending to / receiving from the station over the last
    /// report interval (microseconds); null without a previous sample.
    pub tx_airtime_us: Option<i64>,
    pub rx_airtime_us: Option<i64>,
    /// Their share of that interval, in per mille (above 1000 for a multi-link station).
    pub airtime_permille: Option<i64>,
    /// The station's weight in the airtime-fairness scheduler (256 by default).
    pub airtime_weight: Option<i64>,
    /// Per-link figures of a Wi-Fi 7 multi-link station; empty for other stations.
    pub links: Vec<StationLinkInfo>,
    /// True when the station is in the newest report of a connected device.
    pub is_active: bool,
    pub last_seen: Option<String>,
}

/// `data` of `GET /api/mikrotik/users/{name}/stats`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::UserStats)]
pub struct UserStats {
    pub username: String,
    pub hostname: Option<String>,
    /// Every MAC counted for this user (all MACs leased under the hostname).
    pub mac_addresses: Vec<String>,
    pub ip_address: Option<String>,
    /// The `device` filter, when given.
    pub device: Option<String>,
    pub is_active: bool,
    /// Where the user is associated now; when nowhere, its last sighting (`is_active` false).
    pub sessions: Vec<ActiveUser>,
    pub usage: UserUsage,
}

/// Traffic of a user over fixed windows ending now.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::UserUsage)]
pub struct UserUsage {
    pub last_hour: Usage,
    pub last_24h: Usage,
    pub last_7d: Usage,
}

/// Bytes and peak rates over a window.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(as = isp::Usage)]
pub struct Usage {
    pub download_bytes: i64,
    pub upload_bytes: i64,
    pub total_bytes: i64,
    pub total_mb: f64,
    /// Highest per-sample rate of any of the user's stations.
    pub peak_download_mbps: f64,
    pub peak_upload_mbps: f64,
}

/// `data` of `GET /api/mikrotik/health`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::MikrotikHealth)]
pub struct MikrotikHealth {
    /// `healthy`, or `degraded` when no enrolled, unrevoked device is reporting.
    #[schema(pattern = "^(healthy|degraded)$")]
    pub status: String,
    /// Always `mikrotik` (the blueprint's name).
    pub service: String,
    /// Enrolled devices, revoked ones included.
    pub devices: usize,
    /// Devices heard from within the last 5 minutes (not revoked).
    pub devices_connected: usize,
}

/// A station sample row (the columns of [`STATION_COLS`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationRow {
    pub router_id: i64,
    pub ts_ms: i64,
    pub iface: String,
    pub mac: String,
    pub ssid: Option<String>,
    pub signal_dbm: Option<i64>,
    pub signal_avg_dbm: Option<i64>,
    pub rx_bytes: Option<i64>,
    pub tx_bytes: Option<i64>,
    pub rx_packets: Option<i64>,
    pub tx_packets: Option<i64>,
    pub rx_bps: Option<i64>,
    pub tx_bps: Option<i64>,
    pub tx_retries: Option<i64>,
    pub tx_failed: Option<i64>,
    pub inactive_ms: Option<i64>,
    pub connected_s: Option<i64>,
    pub tx_bitrate_kbps: Option<i64>,
    pub rx_bitrate_kbps: Option<i64>,
    pub expected_throughput_kbps: Option<i64>,
    pub tx_airtime_us: Option<i64>,
    pub rx_airtime_us: Option<i64>,
    pub airtime_permille: Option<i64>,
    pub airtime_weight: Option<i64>,
    pub links: Vec<StationLinkInfo>,
}

/// The columns [`station_row`] reads, table alias `s`. The last one is the station's links
/// in the same report, as a JSON array (a primary-key range of `station_link_samples`).
pub const STATION_COLS: &str = "s.router_id, s.ts_ms, s.iface, s.mac, s.ssid, s.signal_dbm, s.signal_avg_dbm, \
     s.rx_bytes, s.tx_bytes, s.rx_packets, s.tx_packets, s.rx_bps, s.tx_bps, s.tx_retries, s.tx_failed, \
     s.inactive_ms, s.connected_s, s.tx_bitrate_kbps, s.rx_bitrate_kbps, s.expected_throughput_kbps, \
     s.tx_airtime_us, s.rx_airtime_us, s.airtime_permille, s.airtime_weight, \
     (SELECT json_group_array(json_object('link_id', l.link_id, 'addr', l.addr, 'signal_dbm', l.signal_dbm, \
     'bytes_downloaded', l.tx_bytes, 'bytes_uploaded', l.rx_bytes, 'tx_bitrate_kbps', l.tx_bitrate_kbps, \
     'rx_bitrate_kbps', l.rx_bitrate_kbps, 'tx_retries', l.tx_retries, 'tx_failed', l.tx_failed, \
     'tx_duration_us', l.tx_duration_us, 'rx_duration_us', l.rx_duration_us)) \
     FROM station_link_samples l WHERE l.router_id = s.router_id AND l.ts_ms = s.ts_ms \
     AND l.iface = s.iface AND l.mac = s.mac)";

/// [`STATION_COLS`] for samples that may be sealed (older than the hot window): links read
/// from `station_link_samples_all`.
fn station_cols_all() -> String {
    STATION_COLS.replace(
        "FROM station_link_samples l",
        "FROM station_link_samples_all l",
    )
}

/// The links JSON of [`STATION_COLS`]; a malformed value (never written by the collector)
/// reads as no links.
fn links_from_json(text: Option<String>) -> Vec<StationLinkInfo> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Reads a row selected with [`STATION_COLS`].
pub fn station_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StationRow> {
    Ok(StationRow {
        router_id: r.get(0)?,
        ts_ms: r.get(1)?,
        iface: r.get(2)?,
        mac: r.get(3)?,
        ssid: r.get(4)?,
        signal_dbm: r.get(5)?,
        signal_avg_dbm: r.get(6)?,
        rx_bytes: r.get(7)?,
        tx_bytes: r.get(8)?,
        rx_packets: r.get(9)?,
        tx_packets: r.get(10)?,
        rx_bps: r.get(11)?,
        tx_bps: r.get(12)?,
        tx_retries: r.get(13)?,
        tx_failed: r.get(14)?,
        inactive_ms: r.get(15)?,
        connected_s: r.get(16)?,
        tx_bitrate_kbps: r.get(17)?,
        rx_bitrate_kbps: r.get(18)?,
        expected_throughput_kbps: r.get(19)?,
        tx_airtime_us: r.get(20)?,
        rx_airtime_us: r.get(21)?,
        airtime_permille: r.get(22)?,
        airtime_weight: r.get(23)?,
        links: links_from_json(r.get(24)?),
    })
}

fn stations_at_sql() -> String {
    format!(
        "SELECT {} FROM station_samples_all s WHERE s.router_id = ?1 AND s.ts_ms = ?2 ORDER BY s.iface, s.mac",
        station_cols_all()
    )
}

/// The stations of the newest report of every router with `?1 < id <= ?2`, by router and in
/// [`stations_at`] order.
fn all_stations_sql() -> String {
    format!(
        "SELECT {STATION_COLS} FROM routers r CROSS JOIN station_samples s ON s.router_id = r.id \
         AND s.ts_ms = r.last_report_ms WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.id, s.iface, s.mac"
    )
}

/// The stations in a router's report at `ts_ms` (its newest report: `last_report_ms`).
pub fn stations_at(
    conn: &Connection,
    router_id: i64,
    ts_ms: i64,
) -> Result<Vec<StationRow>, IspError> {
    // The row tables when neither the stations nor their links of that time are sealed (the
    // newest report, windows inside the hot window): plain primary-key reads, instead of the
    // virtual tables (one for the stations plus one per station for its links, each
    // materializing its rows).
    use crate::store::sealed::{read_snapshot, router_source};
    let _snapshot = read_snapshot(conn).map_err(db)?;
    let rows_only = router_source(conn, "station_samples", router_id, ts_ms, ts_ms).map_err(db)?
        == "station_samples"
        && router_source(conn, "station_link_samples", router_id, ts_ms, ts_ms).map_err(db)?
            == "station_link_samples";
    let sql = if rows_only {
        rows_stations_at_sql()
    } else {
        stations_at_sql()
    };
    let mut st = conn.prepare_cached(&sql).map_err(db)?;
    let rows = st
        .query_map(params![router_id, ts_ms], station_row)
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// [`stations_at_sql`] from the row tables only (nothing of that time sealed).
fn rows_stations_at_sql() -> String {
    format!(
        "SELECT {STATION_COLS} FROM station_samples s WHERE s.router_id = ?1 AND s.ts_ms = ?2 ORDER BY s.iface, s.mac"
    )
}

/// The stations of the newest report of every router in the id range `span`
/// (`paging::id_span`), by router, each router's in [`stations_at`] order: one statement for
/// a page of routers instead of one per router.
pub fn newest_stations_in(
    conn: &Connection,
    span: (i64, i64),
) -> Result<HashMap<i64, Vec<StationRow>>, IspError> {
    let mut out: HashMap<i64, Vec<StationRow>> = HashMap::new();
    let mut st = conn.prepare_cached(&all_stations_sql()).map_err(db)?;
    let mut rows = st.query(params![span.0, span.1]).map_err(db)?;
    while let Some(row) = rows.next().map_err(db)? {
        let s = station_row(row).map_err(db)?;
        out.entry(s.router_id).or_default().push(s);
    }
    Ok(out)
}

/// An [`ActiveUser`] from a station row, its lease and its router's name.
pub fn active_user(
    s: &StationRow,
    device_name: &str,
    lease: super::LeaseInfo,
    is_active: bool,
) -> ActiveUser {
    ActiveUser {
        username: username_of(&s.mac, &lease),
        hostname: lease.hostname,
        mac_address: s.mac.clone(),
        ip_address: lease.ip,
        device_name: device_name.to_string(),
        interface: s.iface.clone(),
        ssid: s.ssid.clone(),
        signal_dbm: s.signal_dbm,
        signal_avg_dbm: s.signal_avg_dbm,
        connected_seconds: s.connected_s,
        inactive_ms: s.inactive_ms,
        tx_bitrate_mbps: kbps_to_mbps(s.tx_bitrate_kbps),
        rx_bitrate_mbps: kbps_to_mbps(s.rx_bitrate_kbps),
        bytes_downloaded: s.tx_bytes,
        bytes_uploaded: s.rx_bytes,
        download_bps: s.tx_bps,
        upload_bps: s.rx_bps,
        tx_airtime_us: s.tx_airtime_us,
        rx_airtime_us: s.rx_airtime_us,
        airtime_permille: s.airtime_permille,
        airtime_weight: s.airtime_weight,
        links: s.links.clone(),
        is_active,
        last_seen: iso_ms_opt(s.ts_ms),
    }
}

fn device(r: &RouterFacts, now: i64) -> Device {
    let kb_bytes = |kb: Option<i64>| kb.map(|k| k.saturating_mul(1024).to_string());
    Device {
        name: r.name.clone(),
        host: r.hostname.clone(),
        port: None,
        use_ssl: true,
        connected: r.connected(now),
        system_info: SystemInfo {
            uptime: r
                .uptime_s
                .and_then(|u| u64::try_from(u).ok())
                .map(routeros_uptime),
            version: r.release.clone(),
            cpu_load: r.cpu_permille.map(|p| format!("{}", (p + 5) / 10)),
            free_memory: kb_bytes(r.mem_available_kb),
            total_memory: kb_bytes(r.mem_total_kb),
        },
        site: r.site.clone(),
        model: r.model.clone(),
        agent_version: r.agent_version.clone(),
        revoked: r.revoked_at.is_some(),
        last_seen: r.last_seen_ms.and_then(iso_ms_opt),
    }
}

isp_query! {
    /// The query of [`status`].
    StatusQuery {
        identities: Option<String> =
            |p: &Params| p.text_max("identities", MAX_IDENTITIES * (super::MAX_TEXT_CHARS + 1)),
    }
}

isp_query! {
    /// The query of [`interfaces`] and [`active_users`]: one device, or a page of the fleet.
    DeviceOrPageQuery {
        device: Option<String> = |p: &Params| p.text("device"),
        limit: usize = page_limit,
        cursor: i64 = page_after,
    }
}

impl DeviceOrPageQuery {
    fn page(&self) -> Page {
        Page {
            after: self.cursor,
            limit: self.limit,
        }
    }
}

isp_query! {
    /// The query of [`user_stats`].
    UserStatsQuery {
        device: Option<String> = |p: &Params| p.text("device"),
    }
}

/// List the enrolled routers, a page at a time.
#[utoipa::path(get, path = "/api/mikrotik/devices",
    operation_id = "isp_devices", tag = "isp", params(paging::PageQuery),
    responses(
        (status = 200, description = "One page of the enrolled routers (`limit`, default 100, in router id order; by name within the page): \
            `{success, devices, total_devices, connected_devices, timestamp}`; the counts describe the page. \
            The next page is named in the `Link` (rel=\"next\") and `X-Next-Cursor` headers, absent on the last page.", body = FlatEnvelope<DeviceList>),
        (status = 400, description = "Bad `limit` or `cursor`", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let page = PageQuery::parse(q)?.page();
    let now = now_ms();
    let (routers, next) = read(&state, move |c| {
        let b = paging::bounds(c, page).map_err(db)?;
        Ok((routers_in(c, &b)?, b.next_cursor))
    })
    .await?;
    let devices: Vec<Device> = routers.iter().map(|r| device(r, now)).collect();
    let connected_devices = devices.iter().filter(|d| d.connected).count();
    let resp = ok_flat(DeviceList {
        total_devices: devices.len(),
        connected_devices,
        devices,
    })?;
    Ok(with_next(resp, &uri, next.as_deref()))
}

const VPN_LINK_SQL: &str =
    "SELECT router_id, ts_ms, instance, real_address, virtual_address, rx_bytes, tx_bytes, \
     connected_since FROM ovpn_client_samples_all WHERE common_name = ?1 \
     AND ts_ms = (SELECT max(ts_ms) FROM ovpn_client_samples_all WHERE common_name = ?1) \
     ORDER BY connected_since DESC, router_id LIMIT 1";

/// The newest OpenVPN session whose common name is `name`, and whether it is connected now.
fn vpn_link(
    conn: &Connection,
    name: &str,
    routers: &mut RouterCache,
    now: i64,
) -> Result<(bool, Option<VpnConnectionInfo>), IspError> {
    let mut st = conn.prepare_cached(VPN_LINK_SQL).map_err(db)?;
    let row = st
        .query_map([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<i64>>(7)?,
            ))
        })
        .map_err(db)?
        .next()
        .transpose()
        .map_err(db)?;
    let Some((router_id, ts, instance, real_address, virtual_address, rx, tx, since)) = row else {
        return Ok((false, None));
    };
    let server = routers.get(conn, router_id)?;
    let connected = server.is_some_and(|s| s.connected(now) && s.last_report_ms == Some(ts));
    let info = VpnConnectionInfo {
        real_address,
        virtual_address,
        bytes_received: rx,
        bytes_sent: tx,
        connected_since: since.and_then(plain_datetime_s),
        server_device: server.map(|s| s.name.clone()).unwrap_or_default(),
        instance,
        last_seen: iso_ms_opt(ts),
    };
    Ok((connected, Some(info)))
}

fn device_status(
    conn: &Connection,
    r: &RouterFacts,
    routers: &mut RouterCache,
    now: i64,
) -> Result<DeviceStatus, IspError> {
    let (vpn_connected, info) = vpn_link(conn, &r.name, routers, now)?;
    Ok(DeviceStatus {
        device_name: r.name.clone(),
        connected: r.connected(now),
        vpn_connected,
        vpn_connection_info: info,
        last_seen: r.last_seen_ms.and_then(iso_ms_opt),
        error: None,
    })
}

/// The entry of a name of `identities` that no device has.
fn unknown_device(name: &str) -> DeviceStatus {
    DeviceStatus {
        device_name: name.to_string(),
        connected: false,
        vpn_connected: false,
        vpn_connection_info: None,
        last_seen: None,
        error: Some("unknown device".to_string()),
    }
}

/// VPN status of several devices.
#[utoipa::path(get, path = "/api/mikrotik/devices/status",
    operation_id = "isp_devices_status", tag = "isp",
    params(("identities" = String, Query, description = "Comma-separated device names: 1 to 100 names (empty items are skipped, a name repeated is answered once), each at most 253 characters (the document declares at most 4096 characters in all, which keeps any such query under the HTTP server's 64 KiB request-target limit even percent-encoded)", min_length = 1, max_length = 4096, pattern = "^ *[^,\\s\\u0000-\\u001F\\u007F-\\u009F][^,\\u0000-\\u001F\\u007F-\\u009F]{0,252}(,[^,\\u0000-\\u001F\\u007F-\\u009F]{0,253}){0,99}$")),
    responses(
        (status = 200, description = "One entry per named device, in the order given; a name no device has is answered in its entry (`error: \"unknown device\"`, `connected: false`)", body = StampedEnvelope<Vec<DeviceStatus>>),
        (status = 400, description = "Missing or bad identities", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> IspResult<Vec<DeviceStatus>> {
    auth(&state, &headers).await?;
    let q = StatusQuery::parse(q)?;
    let raw = q.identities.unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for n in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if n.chars().count() > super::MAX_TEXT_CHARS {
            return Err(IspError::bad_request(
                "each name in identities must be at most 253 characters",
            ));
        }
        if !names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            names.push(n.to_string());
        }
    }
    if names.is_empty() {
        return Err(IspError::bad_request(
            "identities is required: comma-separated device names",
        ));
    }
    if names.len() > MAX_IDENTITIES {
        return Err(IspError::bad_request(format!(
            "identities may name at most {MAX_IDENTITIES} devices"
        )));
    }
    let now = now_ms();
    let out = read(&state, move |c| {
        // The named routers only (routers.name is UNIQUE COLLATE NOCASE: ASCII case-insensitive).
        let mut routers = RouterCache::default();
        let mut out = Vec::with_capacity(names.len());
        for n in &names {
            out.push(
                match crate::api::fleet::router_facts_by_name(c, n).map_err(db)? {
                    Some(r) => device_status(c, &r, &mut routers, now)?,
                    None => unknown_device(n),
                },
            );
        }
        Ok(out)
    })
    .await?;
    ok(out)
}

/// VPN status of one device.
#[utoipa::path(get, path = "/api/mikrotik/devices/{name}/currentstatus",
    operation_id = "isp_devices_name_currentstatus", tag = "isp",
    params(("name" = String, Path, description = "Device (router) name, 1 to 253 characters", min_length = 1, max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$")),
    responses(
        (status = 200, description = "The device's VPN state", body = StampedEnvelope<DeviceStatus>),
        (status = 400, description = "Bad device name", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "Unknown device", body = ErrorEnvelope),
    ))]
pub async fn current_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: RawQuery,
) -> IspResult<DeviceStatus> {
    auth(&state, &headers).await?;
    let name = path_name(name, "device name")?;
    NoQuery::parse(q)?;
    let now = now_ms();
    let out = read(&state, move |c| {
        let r = router_by_name(c, &name)?;
        device_status(c, &r, &mut RouterCache::default(), now)
    })
    .await?;
    ok(out)
}

const IFACES_SQL: &str = "SELECT name, kind, rx_bytes, tx_bytes, rx_packets, tx_packets, rx_errs, tx_errs, rx_drop, \
     tx_drop, rx_bps, tx_bps FROM interface_samples WHERE router_id = ?1 AND ts_ms = ?2 ORDER BY name";

/// Interface counters of the newest report of each device of a page (or of one device).
#[utoipa::path(get, path = "/api/mikrotik/interfaces",
    operation_id = "isp_interfaces", tag = "isp",
    params(("device" = Option<String>, Query, description = "Only this device (at most 253 characters; empty means all; when given, `limit` and `cursor` do not apply)", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"), paging::PageQuery),
    responses(
        (status = 200, description = "Interfaces by device and name, of one page of routers (`limit`, default 100, in router id order; \
            `total_interfaces` counts the page); the next page is named in the `Link` (rel=\"next\") and `X-Next-Cursor` headers, absent on the last page. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = StampedEnvelope<InterfaceList>),
        (status = 400, description = "Bad device name, bad `limit` or `cursor`, or a parameter given twice", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "Unknown device", body = ErrorEnvelope),
    ))]
pub async fn interfaces(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let q = DeviceOrPageQuery::parse(q)?;
    cached_device_or_page(&state, &uri, "/api/mikrotik/interfaces", q, interfaces_of).await
}

/// The answer of a route with a `device` or a page of the fleet ([`DeviceOrPageQuery`]) through
/// the cache: `data` of the routers it names, keyed by `route` and the query, with the next page
/// in the headers.
async fn cached_device_or_page<T, F>(
    state: &ApiState,
    uri: &Uri,
    route: &str,
    q: DeviceOrPageQuery,
    data: F,
) -> Result<Response, IspError>
where
    T: Serialize + 'static,
    F: Fn(&Connection, &[RouterFacts]) -> Result<T, IspError> + Clone + Send + Sync + 'static,
{
    let b = device_page(state, &q.device, q.page()).await?;
    let key = cache::key(route, &[("device", &q.device), ("page", &b)]);
    let next = b.as_ref().and_then(|b| b.next_cursor.clone());
    let device = q.device;
    let resp = cached_envelope(state, &key, move |c| {
        data(c, &device_or_page(c, device.as_deref(), b.as_ref())?)
    })
    .await?;
    Ok(with_next(resp, uri, next.as_deref()))
}

/// The interfaces of the newest report of each of `routers`.
pub fn interfaces_of(c: &Connection, routers: &[RouterFacts]) -> Result<InterfaceList, IspError> {
    let fleet = routers.len() > 1;
    // Several routers (a page of the fleet): two statements over their id range (every current
    // wireless interface, every interface of every newest report) instead of two per router.
    let span = id_span(routers.iter().map(|r| r.id));
    let mut wireless = if fleet {
        wireless_in(c, span)?
    } else {
        HashMap::new()
    };
    let mut samples: HashMap<i64, Vec<InterfaceStat>> = HashMap::new();
    if fleet {
        let mut st = c.prepare_cached(ALL_IFACES_SQL).map_err(db)?;
        let mut rows = st.query(params![span.0, span.1]).map_err(db)?;
        while let Some(i) = rows.next().map_err(db)? {
            let id: i64 = i.get(0).map_err(db)?;
            let ts: i64 = i.get(1).map_err(db)?;
            samples
                .entry(id)
                .or_default()
                .push(interface_stat(i, 2, ts).map_err(db)?);
        }
    }
    let mut ifaces = c.prepare_cached(IFACES_SQL).map_err(db)?;
    let mut out = Vec::new();
    for r in routers {
        let Some(ts) = r.last_report_ms else { continue };
        let mut wifi = if fleet {
            wireless.remove(&r.id).unwrap_or_default()
        } else {
            wireless_in(c, id_span([r.id]))?
                .remove(&r.id)
                .unwrap_or_default()
        };
        let rows = if fleet {
            samples.remove(&r.id).unwrap_or_default()
        } else {
            ifaces
                .query_map(params![r.id, ts], |i| interface_stat(i, 0, ts))
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?
        };
        for mut row in rows {
            row.device_name.clone_from(&r.name);
            row.wireless = wifi.remove(&row.name);
            out.push(row);
        }
    }
    Ok(InterfaceList {
        total_interfaces: out.len(),
        interfaces: out,
    })
}

/// Every interface of the newest report of every router with `?1 < id <= ?2` (primary-key
/// lookup per router).
const ALL_IFACES_SQL: &str =
    "SELECT r.id, r.last_report_ms, i.name, i.kind, i.rx_bytes, i.tx_bytes, i.rx_packets, \
     i.tx_packets, i.rx_errs, i.tx_errs, i.rx_drop, i.tx_drop, i.rx_bps, i.tx_bps FROM routers r \
     CROSS JOIN interface_samples i ON i.router_id = r.id AND i.ts_ms = r.last_report_ms \
     WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.id, i.name";
/// The current wireless interfaces of the routers with `?1 < router_id <= ?2`.
const ALL_WIFI_SQL: &str =
    "SELECT router_id, name, type, ssid, channel, freq_mhz, width_mhz, txpower_dbm, links \
     FROM wireless_interfaces WHERE router_id > ?1 AND router_id <= ?2";

/// An interface row (the columns of [`IFACES_SQL`] from column `at` on), without its device name.
fn interface_stat(i: &rusqlite::Row<'_>, at: usize, ts: i64) -> rusqlite::Result<InterfaceStat> {
    Ok(InterfaceStat {
        device_name: String::new(),
        name: i.get(at)?,
        kind: i.get(at + 1)?,
        rx_bytes: i.get(at + 2)?,
        tx_bytes: i.get(at + 3)?,
        rx_packets: i.get(at + 4)?,
        tx_packets: i.get(at + 5)?,
        rx_errors: i.get(at + 6)?,
        tx_errors: i.get(at + 7)?,
        rx_drops: i.get(at + 8)?,
        tx_drops: i.get(at + 9)?,
        rx_bps: i.get(at + 10)?,
        tx_bps: i.get(at + 11)?,
        wireless: None,
        sampled_at: iso_ms_opt(ts),
    })
}

/// Current wireless interfaces by router id and name, of the routers in the id range `span`
/// (`paging::id_span`).
pub(super) fn wireless_in(
    c: &Connection,
    span: (i64, i64),
) -> Result<HashMap<i64, HashMap<String, WirelessInfo>>, IspError> {
    let mut st = c.prepare_cached(ALL_WIFI_SQL).map_err(db)?;
    let mut rows = st.query(params![span.0, span.1]).map_err(db)?;
    let mut out: HashMap<i64, HashMap<String, WirelessInfo>> = HashMap::new();
    while let Some(w) = rows.next().map_err(db)? {
        let info = WirelessInfo {
            mode: w.get(2).map_err(db)?,
            ssid: w.get(3).map_err(db)?,
            channel: w.get(4).map_err(db)?,
            frequency_mhz: w.get(5).map_err(db)?,
            width_mhz: w.get(6).map_err(db)?,
            txpower_dbm: w.get(7).map_err(db)?,
            links: crate::store::wifi_links(w.get(8).map_err(db)?)
                .into_iter()
                .map(Into::into)
                .collect(),
        };
        out.entry(w.get(0).map_err(db)?)
            .or_default()
            .insert(w.get(1).map_err(db)?, info);
    }
    Ok(out)
}

/// Stations associated now: those in the newest report of every connected device of a page (or
/// of one device).
#[utoipa::path(get, path = "/api/mikrotik/users/active",
    operation_id = "isp_users_active", tag = "isp",
    params(("device" = Option<String>, Query, description = "Only this device (at most 253 characters; empty means all; when given, `limit` and `cursor` do not apply)", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"), paging::PageQuery),
    responses(
        (status = 200, description = "Associated stations by device, interface and MAC, of one page of routers (`limit`, default 100, in router id order; \
            `active_users_count` counts the page); the next page is named in the `Link` (rel=\"next\") and `X-Next-Cursor` headers, absent on the last page. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = StampedEnvelope<ActiveUsers>),
        (status = 400, description = "Bad device name, bad `limit` or `cursor`, or a parameter given twice", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "Unknown device", body = ErrorEnvelope),
    ))]
pub async fn active_users(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let q = DeviceOrPageQuery::parse(q)?;
    cached_device_or_page(&state, &uri, "/api/mikrotik/users/active", q, |c, r| {
        active_users_of(c, r, now_ms())
    })
    .await
}

/// The stations in the newest report of each of `routers` that is connected at `now`.
pub fn active_users_of(
    c: &Connection,
    routers: &[RouterFacts],
    now: i64,
) -> Result<ActiveUsers, IspError> {
    // Several routers (a page of the fleet): the leases of their stations' MACs read with one
    // statement instead of a lookup per station...
    let fleet = routers.len() > 1;
    // ... and one statement over their id range for their newest stations instead of one per router.
    let span = id_span(routers.iter().map(|r| r.id));
    let mut fleet_stations = if fleet {
        newest_stations_in(c, span)?
    } else {
        HashMap::new()
    };
    let book = if fleet {
        Some(super::LeaseBook::for_page(c, span)?)
    } else {
        None
    };
    let mut out = Vec::new();
    for r in routers.iter().filter(|r| r.connected(now)) {
        let Some(ts) = r.last_report_ms else { continue };
        let stations = if fleet {
            fleet_stations.remove(&r.id).unwrap_or_default()
        } else {
            stations_at(c, r.id, ts)?
        };
        for s in stations {
            let lease = match &book {
                Some(b) => b.get(&s.mac, Some(r.id)),
                None => lease_for_mac(c, &s.mac, Some(r.id))?,
            };
            out.push(active_user(&s, &r.name, lease, true));
        }
    }
    Ok(ActiveUsers {
        active_users_count: out.len(),
        active_users: out,
    })
}

fn usage(totals: &[super::StationTotal]) -> Usage {
    let download: i64 = totals
        .iter()
        .map(|t| t.download_bytes)
        .fold(0, i64::saturating_add);
    let upload: i64 = totals
        .iter()
        .map(|t| t.upload_bytes)
        .fold(0, i64::saturating_add);
    let peak = |f: fn(&super::StationTotal) -> Option<i64>| {
        totals.iter().filter_map(f).max().unwrap_or(0) as f64
    };
    Usage {
        download_bytes: download,
        upload_bytes: upload,
        total_bytes: download.saturating_add(upload),
        total_mb: mib(download.saturating_add(upload)),
        peak_download_mbps: super::mbps(peak(|t| t.max_download_bps)),
        peak_upload_mbps: super::mbps(peak(|t| t.max_upload_bps)),
    }
}

/// A MAC in the newest report of every router: `?1` MAC, `?2` router id or NULL, `?3` the
/// oldest newest report of a connected router ([`CONNECTED_OLDEST_SQL`]). Read through the
/// MAC's (hour, router) entries in `raw_block_keys` since `?3`'s hour (schema 20), then each
/// such router's newest report by primary key, not by visiting every router's newest report;
/// `?3` keeps a MAC seen in many hours or at many routers from reading all of them.
fn user_now_sql() -> String {
    format!(
        "SELECT {STATION_COLS} FROM routers r CROSS JOIN station_samples s \
         ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
         WHERE r.id IN (SELECT router_id FROM raw_block_keys WHERE tbl = {tbl} AND key = ?1 \
         AND hour_ms >= ?3 - 3600000) \
         AND s.mac = ?1 AND r.last_report_ms >= ?3 AND (?2 IS NULL OR r.id = ?2) \
         ORDER BY r.name, s.iface",
        tbl = crate::store::sealed::STATION_TBL
    )
}

/// The time of the oldest newest report among the routers connected at `?1` minus the online
/// window (not revoked, seen since): no connected router's newest report is older. NULL when
/// none is connected.
const CONNECTED_OLDEST_SQL: &str = "SELECT min(last_report_ms) FROM routers \
     WHERE revoked_at IS NULL AND last_seen_ms >= ?1";

/// The newest sample of a MAC: `?1` MAC, `?2` router id or NULL.
fn user_last_sql() -> String {
    format!(
        "SELECT {} FROM station_samples_all s WHERE s.mac = ?1 AND (?2 IS NULL OR s.router_id = ?2) \
         ORDER BY s.ts_ms DESC LIMIT 1",
        station_cols_all()
    )
}

/// The queries of this module, for plan checks.
#[cfg(test)]
pub(crate) fn queries() -> Vec<(&'static str, String)> {
    vec![
        ("stations_at", stations_at_sql()),
        ("stations_at_rows", rows_stations_at_sql()),
        ("all_stations", all_stations_sql()),
        ("vpn_link", VPN_LINK_SQL.to_string()),
        ("interfaces", IFACES_SQL.to_string()),
        ("all_interfaces", ALL_IFACES_SQL.to_string()),
        ("all_wireless", ALL_WIFI_SQL.to_string()),
        ("user_now", user_now_sql()),
        ("connected_oldest", CONNECTED_OLDEST_SQL.to_string()),
        ("user_last", user_last_sql()),
    ]
}

/// Traffic and association of one user (hostname or MAC).
#[utoipa::path(get, path = "/api/mikrotik/users/{name}/stats",
    operation_id = "isp_users_name_stats", tag = "isp",
    params(
        ("name" = String, Path, description = "DHCP lease hostname (case-insensitive) or MAC address, 1 to 253 characters", min_length = 1, max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"),
        ("device" = Option<String>, Query, description = "Only traffic through this device (at most 253 characters; empty means all)", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"),
    ),
    responses(
        (status = 200, description = "The user's sessions and traffic", body = StampedEnvelope<UserStats>),
        (status = 400, description = "Bad user name or device", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "Unknown user or device", body = ErrorEnvelope),
    ))]
pub async fn user_stats(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: RawQuery,
) -> IspResult<UserStats> {
    auth(&state, &headers).await?;
    let name = path_name(name, "user name")?;
    let UserStatsQuery { device } = UserStatsQuery::parse(q)?;
    let now = now_ms();
    let out = read(&state, move |c| {
        let filter = device_filter(c, device.as_deref())?;
        let user = resolve_user(c, &name)?;
        let mut routers = RouterCache::default();
        let router_id = filter.as_ref().map(|r| r.id);
        let mut now_st = c.prepare_cached(&user_now_sql()).map_err(db)?;
        let mut last_st = c.prepare_cached(&user_last_sql()).map_err(db)?;
        // Only the newest reports of connected routers can hold an active session.
        let since: Option<i64> = c
            .prepare_cached(CONNECTED_OLDEST_SQL)
            .and_then(|mut st| {
                st.query_row(
                    [now.saturating_sub(crate::api::fleet::ONLINE_WINDOW_MS)],
                    |r| r.get(0),
                )
            })
            .map_err(db)?;
        // The user's leases, read once (a station of many routers has a lease on each).
        let leases = super::LeaseBook::for_macs(c, &user.macs)?;
        let mut sessions = Vec::new();
        for mac in &user.macs {
            let current: Vec<StationRow> = match since {
                Some(since) => now_st
                    .query_map(params![mac, router_id, since], station_row)
                    .map_err(db)?
                    .collect::<Result<_, _>>()
                    .map_err(db)?,
                None => Vec::new(),
            };
            let mut active = Vec::new();
            for s in current {
                if routers
                    .get(c, s.router_id)?
                    .is_some_and(|r| r.connected(now))
                {
                    active.push(s);
                }
            }
            let (rows, is_active) = if active.is_empty() {
                let last: Vec<StationRow> = last_st
                    .query_map(params![mac, router_id], station_row)
                    .map_err(db)?
                    .collect::<Result<_, _>>()
                    .map_err(db)?;
                (last, false)
            } else {
                (active, true)
            };
            for s in rows {
                let lease = leases.get(&s.mac, Some(s.router_id));
                let dev = routers
                    .get(c, s.router_id)?
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                sessions.push(active_user(&s, &dev, lease, is_active));
            }
        }
        let scope = Scope::Macs(&user.macs, router_id);
        let hour = 3_600_000;
        let usage = UserUsage {
            last_hour: usage(&station_totals(c, scope, now - hour, now)?),
            last_24h: usage(&station_totals(c, scope, now - 24 * hour, now)?),
            last_7d: usage(&station_totals(c, scope, now - 7 * 24 * hour, now)?),
        };
        Ok(UserStats {
            is_active: sessions.iter().any(|s| s.is_active),
            username: user.username,
            hostname: user.hostname,
            mac_addresses: user.macs.clone(),
            ip_address: user.ip,
            device: filter.map(|r| r.router.name),
            sessions,
            usage,
        })
    })
    .await?;
    ok(out)
}

/// Device service health (no key needed).
#[utoipa::path(get, path = "/api/mikrotik/health",
    operation_id = "isp_mikrotik_health", tag = "isp", security(()),
    responses((status = 200, description = "Device counts", body = StampedEnvelope<MikrotikHealth>)))]
pub async fn health(State(state): State<ApiState>, q: RawQuery) -> IspResult<MikrotikHealth> {
    NoQuery::parse(q)?;
    let now = now_ms();
    let routers = read(&state, all_routers).await?;
    let active = routers.iter().filter(|r| r.revoked_at.is_none()).count();
    let connected = routers.iter().filter(|r| r.connected(now)).count();
    ok(MikrotikHealth {
        status: if active > 0 && connected == 0 {
            "degraded"
        } else {
            "healthy"
        }
        .to_string(),
        service: "mikrotik".to_string(),
        devices: routers.len(),
        devices_connected: connected,
    })
}
