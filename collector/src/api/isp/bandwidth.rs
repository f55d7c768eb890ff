//! Bandwidth routes from the Wi-Fi station counters: `/api/bandwidth/usage/real-time`,
//! `/api/bandwidth/usage/peak`, `/api/bandwidth/monitoring/{top-users, network-summary,
//! alerts, quality}`, `/api/bandwidth/health`.
//!
//! A user's download is what the access point sent to the station (the station's tx counter in
//! `iw station dump`), the upload what the station sent (its rx counter). Traffic over a window
//! is the sum of the deltas between reports: raw samples for the first partial hour and the
//! hourly station rollup for whole hours (see [`super::station_totals`]); fleet-wide
//! (`top-users`, `network-summary`, `alerts`) the 5-minute station rollup covers the sub-hour
//! part down to the first whole 5-minute bucket ([`fleet_station_totals`]). The fleet-wide
//! real-time series (up to [`RAW_FLEET_MINUTES`]) reads `fleet_totals_1s`, one row per second
//! with the fleet's station delta sums and counts, instead of one row per station.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use rusqlite::{params, Connection};
use serde::Serialize;
use utoipa::ToSchema;

use super::devices::{stations_at, StationRow};
use super::{
    auth, db, device_filter, device_or_page, device_page, isp_query, kbps_to_mbps, lease_for_mac,
    mbps, mib, ok, page_after, page_limit, push_rows, read, resolve_user, round, username_of,
    with_next, ErrorEnvelope, IspError, IspResult, LeaseInfo, NoQuery, Params, RawQuery,
    StampedEnvelope, StationTotal,
};
use super::{cached_envelope, cached_flat, FlatEnvelope};
use crate::api::cache;
use crate::api::paging::{self, Page};
use crate::api::times::iso_ms_opt;
use crate::api::ApiState;
use crate::clock::now_ms;
use crate::store::recent::{window_start, FleetWindow, RankBy, RecentStations};
use crate::store::{bucket_start, BUCKET_1H_MS, BUCKET_5M_MS};

/// Bounds of `minutes` on `/usage/real-time` and `/monitoring/quality`.
pub const MAX_MINUTES_LONG: i64 = 1440;
/// Bounds of `minutes` on `/monitoring/top-users`, `/network-summary` and `/alerts`.
pub const MAX_MINUTES_SHORT: i64 = 180;
/// Bounds of `hours` on `/usage/peak`.
pub const MAX_HOURS: i64 = 168;
/// Bounds of `limit` on `/monitoring/top-users`.
pub const MAX_LIMIT: i64 = 100;
/// Largest accepted alert `threshold`, in Mbit/s.
pub const MAX_THRESHOLD_MBPS: f64 = 100_000.0;
/// Fleet-wide real-time windows longer than this come from the hourly rollup.
const RAW_FLEET_MINUTES: i64 = 60;
const MINUTE_MS: i64 = 60_000;

/// `GET /api/bandwidth/usage/real-time`, its fields at the top level beside `success`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::RealTimeUsage)]
pub struct RealTimeUsage {
    pub period_minutes: i64,
    pub username: Option<String>,
    pub device: Option<String>,
    /// Length of one point.
    pub resolution_seconds: i64,
    /// `station_samples` or `station_rollup_1h`.
    pub source: String,
    /// Oldest first; only periods with samples.
    pub bandwidth_data: Vec<RatePoint>,
    pub summary: RateSummary,
}

/// Average rate of one period: the bytes counted in it (deltas of the reports made in it) over
/// its length.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::RatePoint)]
pub struct RatePoint {
    /// Start of the period.
    pub timestamp: String,
    /// The user asked for; null for the sum over all users.
    pub username: Option<String>,
    pub download_mbps: f64,
    pub upload_mbps: f64,
    pub total_mbps: f64,
    /// Mean round-trip time of the active probes (gateways and configured targets) of the
    /// device (`device`, else the user's last router; the whole fleet for the fleet-wide sum)
    /// in the period; null without replies
    /// (no probe samples: agents before active probes, or probes turned off).
    pub latency_ms: Option<f64>,
    /// Share of those probes' echo requests lost in the period; null without probe samples
    /// (see `/monitoring/quality` for Wi-Fi tx failures).
    pub packet_loss_percent: Option<f64>,
    /// The device's address (the `device` asked for, else the one the user's station was last
    /// seen on): its WAN IPv4 address from its newest report, else the address it connects to
    /// the collector from while connected; null for the fleet-wide sum.
    pub nas_ip: Option<String>,
    /// The user's DHCP lease address (the lease book the routers report); null for the
    /// fleet-wide sum and without a lease.
    pub user_ip: Option<String>,
    pub download_bytes: i64,
    pub upload_bytes: i64,
    /// Counter deltas (per station and direction) counted in the period.
    pub samples: i64,
}

/// Summary of a series.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(as = isp::RateSummary)]
pub struct RateSummary {
    pub peak_download_mbps: f64,
    pub avg_download_mbps: f64,
    pub peak_upload_mbps: f64,
    pub avg_upload_mbps: f64,
    pub data_points: usize,
    pub total_download_bytes: i64,
    pub total_upload_bytes: i64,
}

/// `data` of `GET /api/bandwidth/usage/peak`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::PeakUsage)]
pub struct PeakUsage {
    pub period_hours: i64,
    pub username: Option<String>,
    /// Highest per-report rate of a single station in the period.
    pub peak_download_mbps: f64,
    /// The hour that rate was seen in.
    pub peak_download_at: Option<String>,
    pub peak_upload_mbps: f64,
    pub peak_upload_at: Option<String>,
    /// The hour with the most bytes.
    pub busiest_hour: Option<HourUsage>,
    /// Oldest first; only hours with samples.
    pub hourly: Vec<HourUsage>,
}

/// Traffic of one hour bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = isp::HourUsage)]
pub struct HourUsage {
    /// Start of the hour.
    pub hour: String,
    pub download_bytes: i64,
    pub upload_bytes: i64,
    pub total_bytes: i64,
    /// Bytes over the hour (over the elapsed part for the current hour).
    pub avg_download_mbps: f64,
    pub avg_upload_mbps: f64,
    pub peak_download_mbps: f64,
    pub peak_upload_mbps: f64,
    /// Stations (a MAC on a device) with samples in the hour.
    pub stations: i64,
}

/// `data` of `GET /api/bandwidth/monitoring/top-users`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::TopUsers)]
pub struct TopUsers {
    pub period_minutes: i64,
    /// `total`, `download` or `upload`.
    pub sort_by: String,
    /// Users with samples in the period.
    pub total_users: usize,
    pub top_users: Vec<UserTraffic>,
}

/// Traffic of one user (station MAC) over a window, all devices.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = isp::UserTraffic)]
pub struct UserTraffic {
    pub rank: usize,
    pub username: String,
    pub hostname: Option<String>,
    pub mac_address: String,
    pub ip_address: Option<String>,
    /// Devices the station was seen on, by name.
    pub devices: Vec<String>,
    pub download_bytes: i64,
    pub upload_bytes: i64,
    pub total_bytes: i64,
    pub download_mb: f64,
    pub upload_mb: f64,
    pub total_mb: f64,
    /// Bytes over the whole window.
    pub avg_download_mbps: f64,
    pub avg_upload_mbps: f64,
    /// Highest per-report rate.
    pub peak_download_mbps: f64,
    pub peak_upload_mbps: f64,
}

/// `data` of `GET /api/bandwidth/monitoring/network-summary`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::NetworkSummary)]
pub struct NetworkSummary {
    pub period_minutes: i64,
    pub total_download_bytes: i64,
    pub total_upload_bytes: i64,
    pub total_bytes: i64,
    pub total_download_mb: f64,
    pub total_upload_mb: f64,
    /// Bytes over the whole window.
    pub avg_download_mbps: f64,
    pub avg_upload_mbps: f64,
    /// Highest per-report rate of a single station.
    pub peak_user_download_mbps: f64,
    pub peak_user_upload_mbps: f64,
    /// Distinct station MACs with samples in the window.
    pub active_users: usize,
    pub devices_total: usize,
    pub devices_connected: usize,
    /// Every device by name, also those without traffic.
    pub devices: Vec<DeviceTraffic>,
}

/// Station traffic through one device.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::DeviceTraffic)]
pub struct DeviceTraffic {
    pub device_name: String,
    pub connected: bool,
    pub download_bytes: i64,
    pub upload_bytes: i64,
    pub total_bytes: i64,
    pub avg_download_mbps: f64,
    pub avg_upload_mbps: f64,
    pub users: usize,
}

/// `data` of `GET /api/bandwidth/monitoring/alerts`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::BandwidthAlerts)]
pub struct BandwidthAlerts {
    pub threshold_mbps: f64,
    pub period_minutes: i64,
    pub total_alerts: usize,
    /// Highest peak first.
    pub alerts: Vec<BandwidthAlert>,
}

/// A user whose per-report rate in one direction reached the threshold.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::BandwidthAlert)]
pub struct BandwidthAlert {
    pub username: String,
    pub hostname: Option<String>,
    pub mac_address: String,
    pub ip_address: Option<String>,
    pub devices: Vec<String>,
    /// `download` or `upload`.
    pub direction: String,
    pub peak_mbps: f64,
    /// Bytes over the whole window.
    pub avg_mbps: f64,
    pub threshold_mbps: f64,
    /// `critical` at twice the threshold or more, else `warning`.
    pub severity: String,
    pub message: String,
}

/// `data` of `GET /api/bandwidth/monitoring/quality`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::QualityReport)]
pub struct QualityReport {
    pub period_minutes: i64,
    pub username: Option<String>,
    pub summary: QualitySummary,
    /// Stations in the newest report of each connected device.
    pub stations: Vec<StationQuality>,
}

/// Fleet view of Wi-Fi link quality.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(as = isp::QualitySummary)]
pub struct QualitySummary {
    pub stations: usize,
    pub avg_signal_dbm: Option<f64>,
    /// Stations below -75 dBm.
    pub weak_signal_stations: usize,
    pub total_tx_retries: i64,
    pub total_tx_failed: i64,
    pub avg_retry_rate_percent: Option<f64>,
    pub excellent: usize,
    pub good: usize,
    pub fair: usize,
    pub poor: usize,
}

/// Link quality of one associated station.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = isp::StationQuality)]
pub struct StationQuality {
    pub username: String,
    pub hostname: Option<String>,
    pub mac_address: String,
    pub ip_address: Option<String>,
    pub device_name: String,
    pub interface: String,
    pub ssid: Option<String>,
    pub signal_dbm: Option<i64>,
    /// The driver's running average.
    pub signal_avg_dbm: Option<i64>,
    /// Over the window's samples; only with `username` (null otherwise).
    pub signal_min_dbm: Option<i64>,
    pub signal_max_dbm: Option<i64>,
    pub signal_mean_dbm: Option<f64>,
    pub inactive_time_ms: Option<i64>,
    pub connected_seconds: Option<i64>,
    pub tx_bitrate_mbps: Option<f64>,
    pub rx_bitrate_mbps: Option<f64>,
    pub expected_throughput_mbps: Option<f64>,
    /// Counted over the window (since association when that is later); null when unknown.
    pub tx_packets: Option<i64>,
    pub tx_retries: Option<i64>,
    pub tx_failed: Option<i64>,
    /// Retries per transmitted packet.
    pub retry_rate_percent: Option<f64>,
    /// Failed per attempted packet: Wi-Fi frames dropped after all retries.
    pub packet_loss_percent: Option<f64>,
    /// Mean round-trip time of the active probes of the station's router over the window (its
    /// WAN path, not the Wi-Fi hop); null without probe samples.
    pub latency_ms: Option<f64>,
    /// From the signal: `excellent` (>= -55 dBm), `good` (>= -65), `fair` (>= -75), `poor`,
    /// or `unknown`.
    pub quality: String,
}

/// `data` of `GET /api/bandwidth/health`.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = isp::BandwidthHealth)]
pub struct BandwidthHealth {
    /// `healthy`, or `degraded` when devices are enrolled but none is reporting.
    pub status: String,
    pub service: String,
    pub devices_total: usize,
    pub devices_reporting: usize,
    /// Stations in the newest reports of the reporting devices.
    pub active_stations: i64,
    pub latest_report_at: Option<String>,
}

/// Parameters `username` and `device` resolved.
struct Who {
    user: Option<super::User>,
    device: Option<super::RouterFacts>,
}

/// The newest station sample of a MAC: its router.
const NAS_OF_MAC_SQL: &str =
    "SELECT router_id, ts_ms FROM station_samples_all WHERE mac = ?1 ORDER BY ts_ms DESC LIMIT 1";

/// The router serving a series: the device asked for, else the one the user's stations were
/// last seen on; None for the whole fleet.
fn nas_router(c: &Connection, who: &Who) -> Result<Option<i64>, IspError> {
    if let Some(d) = &who.device {
        return Ok(Some(d.id));
    }
    let Some(user) = &who.user else {
        return Ok(None);
    };
    let mut st = c.prepare_cached(NAS_OF_MAC_SQL).map_err(db)?;
    let mut newest: Option<(i64, i64)> = None;
    for mac in &user.macs {
        let mut rows = st.query([mac]).map_err(db)?;
        if let Some(r) = rows.next().map_err(db)? {
            let (id, ts): (i64, i64) = (r.get(0).map_err(db)?, r.get(1).map_err(db)?);
            if newest.is_none_or(|(_, t)| ts > t) {
                newest = Some((id, ts));
            }
        }
    }
    Ok(newest.map(|(id, _)| id))
}

fn resolve(c: &Connection, username: Option<&str>, device: Option<&str>) -> Result<Who, IspError> {
    let device = device_filter(c, device)?;
    let user = username.map(|u| resolve_user(c, u)).transpose()?;
    Ok(Who { user, device })
}

/// Rows of the raw series: (bucket index, tx bytes, rx bytes, deltas counted); several rows
/// may have the same bucket (they are summed).
pub(super) type BucketRow = (i64, i64, i64, i64);

/// The fleet-wide raw series rows (for tests against the station samples).
#[cfg(test)]
pub(super) fn fleet_raw_series(
    c: &Connection,
    start: i64,
    now: i64,
    step: i64,
) -> Result<Vec<BucketRow>, IspError> {
    let who = Who {
        user: None,
        device: None,
    };
    raw_series(c, &who, start, now, step)
}

/// Which stations a raw series covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeriesScope {
    /// `?4` MAC, `?5` router id or NULL.
    Mac,
    /// `?4` router id.
    Router,
    Fleet,
}

/// Per bucket and station: `?1` window start, `?2` bucket length, `?3` now.
fn raw_series_sql(scope: SeriesScope) -> String {
    let cols =
        "(s.ts_ms - ?1) / ?2 AS b, sum(coalesce(s.tx_delta, 0)), sum(coalesce(s.rx_delta, 0)), \
                count(s.tx_delta) + count(s.rx_delta)";
    let group = "GROUP BY b";
    match scope {
        SeriesScope::Mac => format!(
            "SELECT {cols} FROM station_samples_all s WHERE s.mac = ?4 AND s.ts_ms >= ?1 AND s.ts_ms <= ?3 \
             AND (?5 IS NULL OR s.router_id = ?5) {group}"
        ),
        SeriesScope::Router => format!(
            "SELECT {cols} FROM station_samples_all s WHERE s.router_id = ?4 AND s.ts_ms >= ?1 AND s.ts_ms <= ?3 {group}"
        ),
        // One row per second of report time (`fleet_totals_1s` holds the fleet's station sums
        // and delta counts of the reports made in it), not one per report or station, each
        // counted at the start of its second: `?1` must be a whole second (the fleet-wide
        // window starts on one, see [`real_time`]), and the last second is read whole (a
        // report stamped after `now` within it counts too). Not grouped here
        // ([`points_from_raw`] sums the rows of a period, which spares sorting them).
        SeriesScope::Fleet => "SELECT (second * 1000 - ?1) / ?2, tx_bytes, rx_bytes, \
             tx_deltas + rx_deltas FROM fleet_totals_1s WHERE second >= ?1 / 1000 AND second <= ?3 / 1000"
            .to_string(),
    }
}

fn raw_series(
    c: &Connection,
    who: &Who,
    start: i64,
    now: i64,
    step: i64,
) -> Result<Vec<BucketRow>, IspError> {
    let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
    let router = who.device.as_ref().map(|d| d.id);
    let mut out = Vec::new();
    let prepare = |scope| c.prepare_cached(&raw_series_sql(scope)).map_err(db);
    match (&who.user, router) {
        (Some(u), router) => {
            let mut st = prepare(SeriesScope::Mac)?;
            for mac in &u.macs {
                push_rows(
                    &mut st,
                    params![start, step, now, mac, router],
                    map,
                    &mut out,
                )?;
            }
        }
        (None, Some(id)) => push_rows(
            &mut *prepare(SeriesScope::Router)?,
            params![start, step, now, id],
            map,
            &mut out,
        )?,
        (None, None) => push_rows(
            &mut *prepare(SeriesScope::Fleet)?,
            params![start, step, now],
            map,
            &mut out,
        )?,
    }
    Ok(out)
}

/// One point per period: (start ms, download bps, upload bps, download bytes, upload bytes,
/// deltas counted).
type Point = (i64, f64, f64, i64, i64, i64);

/// Points of `step` ms from `start` to `now`: the bytes counted in a period over its length. A
/// sample at exactly `now` belongs to the last period.
fn points_from_raw(rows: Vec<BucketRow>, start: i64, now: i64, step: i64) -> Vec<Point> {
    let step = step.max(1000);
    let last = (now.saturating_sub(start).saturating_sub(1) / step).max(0);
    let mut by_bucket: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for (b, tx, rx, n) in rows {
        let e = by_bucket.entry(b.clamp(0, last)).or_default();
        e.0 = e.0.saturating_add(tx);
        e.1 = e.1.saturating_add(rx);
        e.2 = e.2.saturating_add(n);
    }
    let secs = (step / 1000) as f64;
    by_bucket
        .into_iter()
        .filter(|(_, e)| e.2 > 0)
        .map(|(b, (tx, rx, n))| {
            let t = start.saturating_add(b.saturating_mul(step));
            (t, tx as f64 * 8.0 / secs, rx as f64 * 8.0 / secs, tx, rx, n)
        })
        .collect()
}

/// Seconds of the hour bucket starting at `b` that have passed by `now` (1..=3600).
fn hour_seconds(b: i64, now: i64) -> f64 {
    (now.saturating_sub(b).clamp(1000, BUCKET_1H_MS) / 1000) as f64
}

const ROLLUP_SERIES_SQL: &str =
    "SELECT bucket_start_ms, sum(tx_bytes), sum(rx_bytes), sum(samples) \
     FROM station_rollup_1h WHERE bucket_start_ms >= ?1 AND bucket_start_ms <= ?2 \
     GROUP BY bucket_start_ms ORDER BY bucket_start_ms";
const PEAK_COLS: &str =
    "bucket_start_ms, sum(tx_bytes), sum(rx_bytes), max(max_tx_bps), max(max_rx_bps), count(*)";

/// Hour buckets of one MAC: `?1` MAC, `?2` first bucket, `?3` now.
fn peak_mac_sql() -> String {
    format!(
        "SELECT {PEAK_COLS} FROM station_rollup_1h WHERE mac = ?1 AND bucket_start_ms >= ?2 \
         AND bucket_start_ms <= ?3 GROUP BY bucket_start_ms"
    )
}

/// Hour buckets of every station: `?1` first bucket, `?2` now; one `station_fleet_1h` row per
/// hour (the fleet's `station_rollup_1h` sums, maxima and row count) in [`PEAK_COLS`]'s shape.
fn peak_fleet_sql() -> String {
    "SELECT bucket_start_ms, tx_bytes, rx_bytes, max_tx_bps, max_rx_bps, stations FROM station_fleet_1h \
     WHERE bucket_start_ms >= ?1 AND bucket_start_ms <= ?2"
        .to_string()
}

/// A fleet peak hour: (bucket, tx, rx, max tx bps, max rx bps, stations).
#[cfg(test)]
pub(super) type PeakRow = (i64, i64, i64, Option<i64>, Option<i64>, i64);

/// [`peak_fleet_sql`]'s rows (for tests against `station_rollup_1h`).
#[cfg(test)]
pub(super) fn peak_fleet_rows(c: &Connection, first: i64, now: i64) -> Vec<PeakRow> {
    let mut st = c.prepare(&peak_fleet_sql()).unwrap();
    let rows = st
        .query_map(params![first, now], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The time of a router's first station sample at or after `?2`, from `{src}`:
/// `station_samples` (a primary-key seek) when the window touches none of the router's sealed
/// hours, else `station_samples_all` (see `store::sealed::router_source`).
const FIRST_TS_SQL: &str = "SELECT min(ts_ms) FROM {src} WHERE router_id = ?1 AND ts_ms >= ?2";
const SIGNAL_SQL: &str =
    "SELECT min(signal_dbm), max(signal_dbm), avg(signal_dbm) FROM station_samples_all \
     WHERE mac = ?1 AND ts_ms >= ?2 AND +router_id = ?3 AND +iface = ?4";

/// The columns [`window_counters`] compares, of a router's stations at one time (`{src}`: as
/// in [`FIRST_TS_SQL`]).
const FIRST_COUNTERS_SQL: &str =
    "SELECT iface, mac, connected_s, tx_packets, tx_retries, tx_failed \
     FROM {src} WHERE router_id = ?1 AND ts_ms = ?2";

/// The stations of router `rid` at `ts` with only the fields [`window_counters`] reads (the
/// window's first report: no links, no other figures).
fn first_counters(c: &Connection, rid: i64, ts: i64) -> Result<Vec<StationRow>, IspError> {
    let src = crate::store::sealed::router_source(c, "station_samples", rid, ts, ts).map_err(db)?;
    let mut st = c
        .prepare_cached(&FIRST_COUNTERS_SQL.replace("{src}", &src))
        .map_err(db)?;
    let rows = st
        .query_map(params![rid, ts], |r| {
            Ok(StationRow {
                router_id: rid,
                ts_ms: ts,
                iface: r.get(0)?,
                mac: r.get(1)?,
                connected_s: r.get(2)?,
                tx_packets: r.get(3)?,
                tx_retries: r.get(4)?,
                tx_failed: r.get(5)?,
                ..StationRow::default()
            })
        })
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// The queries of this module, for plan checks.
#[cfg(test)]
pub(crate) fn queries() -> Vec<(&'static str, String)> {
    vec![
        ("nas_of_mac", NAS_OF_MAC_SQL.to_string()),
        ("series_mac", raw_series_sql(SeriesScope::Mac)),
        ("series_router", raw_series_sql(SeriesScope::Router)),
        ("series_fleet", raw_series_sql(SeriesScope::Fleet)),
        ("rollup_series", ROLLUP_SERIES_SQL.to_string()),
        ("peak_mac", peak_mac_sql()),
        ("peak_fleet", peak_fleet_sql()),
        ("first_ts", FIRST_TS_SQL.replace("{src}", "station_samples")),
        (
            "first_ts_all",
            FIRST_TS_SQL.replace("{src}", "station_samples_all"),
        ),
        (
            "first_counters",
            FIRST_COUNTERS_SQL.replace("{src}", "station_samples"),
        ),
        (
            "first_counters_all",
            FIRST_COUNTERS_SQL.replace("{src}", "station_samples_all"),
        ),
        ("fleet_raw", FLEET_RAW_SQL.to_string()),
        (
            "fleet_5m",
            FLEET_ROLLUP_SQL.replace("{table}", "station_rollup_5m"),
        ),
        (
            "fleet_1h",
            FLEET_ROLLUP_SQL.replace("{table}", "station_rollup_1h"),
        ),
        ("signal", SIGNAL_SQL.to_string()),
        ("router_raw", ROUTER_RAW_SQL.to_string()),
        (
            "router_5m",
            ROUTER_ROLLUP_SQL.replace("{table}", "station_rollup_5m"),
        ),
        (
            "router_1h",
            ROUTER_ROLLUP_SQL.replace("{table}", "station_rollup_1h"),
        ),
        ("peak_routers", PEAK_ROUTERS_SQL.to_string()),
        ("mac_routers", MAC_ROUTERS_SQL.to_string()),
    ]
}

fn rollup_series(c: &Connection, start: i64, now: i64) -> Result<Vec<Point>, IspError> {
    let mut st = c.prepare_cached(ROLLUP_SERIES_SQL).map_err(db)?;
    let rows = st
        .query_map(params![bucket_start(start, BUCKET_1H_MS), now], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(db)?;
    let mut out = Vec::new();
    for row in rows {
        let (b, tx, rx, n) = row.map_err(db)?;
        let secs = hour_seconds(b, now);
        out.push((b, tx as f64 * 8.0 / secs, rx as f64 * 8.0 / secs, tx, rx, n));
    }
    Ok(out)
}

/// The response-cache key of `/api/bandwidth/usage/real-time` (parsed parameters, defaults filled
/// in).
fn real_time_key(username: Option<&str>, minutes: i64, device: Option<&str>) -> String {
    cache::key(
        "/api/bandwidth/usage/real-time",
        &[
            ("username", &username),
            ("minutes", &minutes),
            ("device", &device),
        ],
    )
}

/// The response-cache key of `/api/bandwidth/monitoring/top-users`.
fn top_users_key(limit: i64, sort_by: &str, minutes: i64) -> String {
    cache::key(
        "/api/bandwidth/monitoring/top-users",
        &[
            ("limit", &limit),
            ("sort_by", &sort_by),
            ("minutes", &minutes),
        ],
    )
}

/// The response-cache key of `/api/bandwidth/monitoring/alerts`.
fn alerts_key(threshold: f64, minutes: i64) -> String {
    cache::key(
        "/api/bandwidth/monitoring/alerts",
        &[("threshold", &threshold), ("minutes", &minutes)],
    )
}

isp_query! {
    /// The query of [`real_time`].
    RealTimeQuery {
        username: Option<String> = |p: &Params| p.text("username"),
        minutes: i64 = |p: &Params| p.int("minutes", 60, 1, MAX_MINUTES_LONG),
        device: Option<String> = |p: &Params| p.text("device"),
    }
}

isp_query! {
    /// The query of [`peak`].
    PeakQuery {
        username: Option<String> = |p: &Params| p.text("username"),
        hours: i64 = |p: &Params| p.int("hours", 24, 1, MAX_HOURS),
    }
}

/// The accepted `sort_by` values (any case).
pub const SORT_BY: [&str; 3] = ["total", "download", "upload"];

/// The orders of `/monitoring/top-users` (`sort_by`, parsed from [`SORT_BY`]), for the OpenAPI
/// document (a test checks the two agree).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = isp::SortBy)]
pub enum SortBy {
    Total,
    Download,
    Upload,
}

isp_query! {
    /// The query of [`top_users`].
    TopUsersQuery {
        limit: i64 = |p: &Params| p.int("limit", 20, 1, MAX_LIMIT),
        sort_by: &'static str =
            |p: &Params| p.choice("sort_by", &SORT_BY, "total"),
        minutes: i64 = |p: &Params| p.int("minutes", 30, 1, MAX_MINUTES_SHORT),
    }
}

isp_query! {
    /// The query of [`network_summary`].
    NetworkSummaryQuery {
        minutes: i64 = |p: &Params| p.int("minutes", 30, 1, MAX_MINUTES_SHORT),
    }
}

isp_query! {
    /// The query of [`alerts`].
    AlertsQuery {
        threshold: f64 = |p: &Params| p.positive_number("threshold", 50.0, MAX_THRESHOLD_MBPS),
        minutes: i64 = |p: &Params| p.int("minutes", 30, 1, MAX_MINUTES_SHORT),
    }
}

isp_query! {
    /// The query of [`quality`].
    QualityQuery {
        minutes: i64 = |p: &Params| p.int("minutes", 60, 1, MAX_MINUTES_LONG),
        username: Option<String> = |p: &Params| p.text("username"),
        limit: usize = page_limit,
        cursor: i64 = page_after,
    }
}

/// Bandwidth over the last minutes: one user, one device or the whole fleet.
#[utoipa::path(get, path = "/api/bandwidth/usage/real-time",
    operation_id = "isp_bandwidth_usage_real_time", tag = "isp",
    params(
        ("username" = Option<String>, Query, description = "DHCP hostname or MAC; all users when absent or empty; at most 253 characters", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"),
        ("minutes" = Option<i64>, Query, description = "1 to 1440, default 60", minimum = 1, maximum = 1440),
        ("device" = Option<String>, Query, description = "Only this device (at most 253 characters; empty means all)", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"),
    ),
    responses(
        (status = 200, description = "`{success, period_minutes, bandwidth_data, summary, ..., timestamp}`: rate series. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old, so the window may end up to that much before the request; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = FlatEnvelope<RealTimeUsage>),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "Unknown user or device", body = ErrorEnvelope),
    ))]
pub async fn real_time(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let RealTimeQuery {
        username,
        minutes,
        device,
    } = RealTimeQuery::parse(q)?;
    let key = real_time_key(username.as_deref(), minutes, device.as_deref());
    let conns = state.conns.clone();
    cached_flat(&state, &key, move |c| {
        // The window ends when the answer is computed (possibly in a background refresh).
        let now = now_ms();
        let (who, points, step, source, start) = (|| -> Result<_, IspError> {
            let who = resolve(c, username.as_deref(), device.as_deref())?;
            let fleet = who.user.is_none() && who.device.is_none();
            let start = now - minutes * MINUTE_MS;
            if fleet && minutes > RAW_FLEET_MINUTES {
                return Ok((
                    who,
                    rollup_series(c, start, now)?,
                    BUCKET_1H_MS,
                    "station_rollup_1h",
                    start,
                ));
            }
            // The fleet-wide series sums whole seconds (`fleet_totals_1s`): its periods start
            // on a whole second (the window start rounded down, at most 999 ms earlier).
            let start = if fleet {
                bucket_start(start, 1000)
            } else {
                start
            };
            let step = (minutes * 1000).max(MINUTE_MS);
            let rows = raw_series(c, &who, start, now, step)?;
            Ok((
                who,
                points_from_raw(rows, start, now, step),
                step,
                "station_samples",
                start,
            ))
        })()?;
        let name = who.user.as_ref().map(|u| u.username.clone());
        let ip = who.user.as_ref().and_then(|u| u.ip.clone());
        let nas = nas_router(c, &who)?;
        let link = crate::api::fleet::probes_for_series(c, nas, start, now, step).map_err(db)?;
        let nas_ip = link
            .nas_ip
            .clone()
            .or_else(|| nas.and_then(|id| conns.addr_of(id)).map(|a| a.to_string()));
        let data: Vec<RatePoint> = points
            .iter()
            .map(|&(t, d, u, db_, ub, n)| RatePoint {
                timestamp: iso_ms_opt(t).unwrap_or_default(),
                username: name.clone(),
                download_mbps: mbps(d),
                upload_mbps: mbps(u),
                total_mbps: mbps(d + u),
                latency_ms: link.at(t).and_then(|f| f.latency_ms),
                packet_loss_percent: link.at(t).and_then(|f| f.loss_percent()),
                nas_ip: nas_ip.clone(),
                user_ip: ip.clone(),
                download_bytes: db_,
                upload_bytes: ub,
                samples: n,
            })
            .collect();
        let n = data.len();
        let mean = |f: fn(&RatePoint) -> f64| {
            if n == 0 {
                0.0
            } else {
                round(data.iter().map(f).sum::<f64>() / n as f64, 3)
            }
        };
        let peak = |f: fn(&RatePoint) -> f64| data.iter().map(f).fold(0.0, f64::max);
        let summary = RateSummary {
            peak_download_mbps: peak(|p| p.download_mbps),
            avg_download_mbps: mean(|p| p.download_mbps),
            peak_upload_mbps: peak(|p| p.upload_mbps),
            avg_upload_mbps: mean(|p| p.upload_mbps),
            data_points: n,
            total_download_bytes: data
                .iter()
                .map(|p| p.download_bytes)
                .fold(0, i64::saturating_add),
            total_upload_bytes: data
                .iter()
                .map(|p| p.upload_bytes)
                .fold(0, i64::saturating_add),
        };
        Ok(RealTimeUsage {
            period_minutes: minutes,
            username: name,
            device: who.device.map(|d| d.router.name),
            resolution_seconds: step / 1000,
            source: source.to_string(),
            bandwidth_data: data,
            summary,
        })
    })
    .await
}

/// Peak usage per hour over the last hours.
#[utoipa::path(get, path = "/api/bandwidth/usage/peak",
    operation_id = "isp_bandwidth_usage_peak", tag = "isp",
    params(
        ("username" = Option<String>, Query, description = "DHCP hostname or MAC; all users when absent or empty; at most 253 characters", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"),
        ("hours" = Option<i64>, Query, description = "1 to 168, default 24: the last N hour buckets, current included", minimum = 1, maximum = 168),
    ),
    responses(
        (status = 200, description = "Peaks and hourly usage", body = StampedEnvelope<PeakUsage>),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "Unknown user", body = ErrorEnvelope),
    ))]
pub async fn peak(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> IspResult<PeakUsage> {
    auth(&state, &headers).await?;
    let PeakQuery { username, hours } = PeakQuery::parse(q)?;
    let now = now_ms();
    let first = bucket_start(now, BUCKET_1H_MS) - (hours - 1) * BUCKET_1H_MS;
    // bucket -> (tx, rx, max tx bps, max rx bps, station entries)
    type Hour = (i64, i64, Option<i64>, Option<i64>, i64);
    let (name, hours_map) = read(&state, move |c| {
        let user = username
            .as_deref()
            .map(|u| resolve_user(c, u))
            .transpose()?;
        let mut map: BTreeMap<i64, Hour> = BTreeMap::new();
        let mut add = |r: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
            let h = map.entry(r.get(0)?).or_default();
            h.0 = h.0.saturating_add(r.get(1)?);
            h.1 = h.1.saturating_add(r.get(2)?);
            h.2 = h.2.max(r.get(3)?);
            h.3 = h.3.max(r.get(4)?);
            h.4 = h.4.saturating_add(r.get(5)?);
            Ok(())
        };
        match &user {
            Some(u) => {
                let mut st = c.prepare_cached(&peak_mac_sql()).map_err(db)?;
                for mac in &u.macs {
                    let mut rows = st.query(params![mac, first, now]).map_err(db)?;
                    while let Some(r) = rows.next().map_err(db)? {
                        add(r).map_err(db)?;
                    }
                }
            }
            None => {
                let mut st = c.prepare_cached(&peak_fleet_sql()).map_err(db)?;
                let mut rows = st.query(params![first, now]).map_err(db)?;
                while let Some(r) = rows.next().map_err(db)? {
                    add(r).map_err(db)?;
                }
            }
        }
        Ok((user.map(|u| u.username), map))
    })
    .await?;
    let hourly: Vec<HourUsage> = hours_map
        .iter()
        .map(|(&b, (tx, rx, mtx, mrx, stations))| {
            let secs = hour_seconds(b, now);
            HourUsage {
                hour: iso_ms_opt(b).unwrap_or_default(),
                download_bytes: *tx,
                upload_bytes: *rx,
                total_bytes: tx.saturating_add(*rx),
                avg_download_mbps: mbps(*tx as f64 * 8.0 / secs),
                avg_upload_mbps: mbps(*rx as f64 * 8.0 / secs),
                peak_download_mbps: mbps(mtx.unwrap_or(0) as f64),
                peak_upload_mbps: mbps(mrx.unwrap_or(0) as f64),
                stations: *stations,
            }
        })
        .collect();
    let top = |f: fn(&Hour) -> Option<i64>| {
        hours_map
            .iter()
            .filter_map(|(b, h)| f(h).map(|v| (v, *b)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
    };
    let (pd, pd_at) = top(|h| h.2).map_or((0, None), |(v, b)| (v, iso_ms_opt(b)));
    let (pu, pu_at) = top(|h| h.3).map_or((0, None), |(v, b)| (v, iso_ms_opt(b)));
    let busiest = hourly
        .iter()
        .max_by(|a, b| a.total_bytes.cmp(&b.total_bytes).then(b.hour.cmp(&a.hour)))
        .cloned();
    ok(PeakUsage {
        period_hours: hours,
        username: name,
        peak_download_mbps: mbps(pd as f64),
        peak_download_at: pd_at,
        peak_upload_mbps: mbps(pu as f64),
        peak_upload_at: pu_at,
        busiest_hour: busiest.filter(|h| h.total_bytes > 0),
        hourly,
    })
}

/// Raw station rows of every device in `[?1, ?2)`, in the shape of the rollup rows.
const FLEET_RAW_SQL: &str =
    "SELECT s.router_id, s.mac, coalesce(s.rx_delta, 0), coalesce(s.tx_delta, 0), \
     s.rx_bps, s.tx_bps, 1 FROM routers r CROSS JOIN station_samples_all s ON s.router_id = r.id \
     AND s.ts_ms >= ?1 AND s.ts_ms < ?2";
/// Station rollup rows of every device with `bucket_start_ms` in `[?1, ?2]` (primary-key range).
const FLEET_ROLLUP_SQL: &str =
    "SELECT router_id, mac, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples \
     FROM {table} WHERE bucket_start_ms >= ?1 AND bucket_start_ms <= ?2";

/// The three parts of a fleet-wide window `[start_ms, now_ms]` (see [`fleet_station_totals`]):
/// raw samples in `raw` (`[lo, hi)`), `station_rollup_5m` buckets starting in `five` and
/// `station_rollup_1h` buckets starting in `hour` (`[lo, hi]`; empty when `lo > hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WindowParts {
    raw: (i64, i64),
    five: (i64, i64),
    hour: (i64, i64),
}

impl WindowParts {
    fn of(start_ms: i64, now_ms: i64) -> Self {
        let (_, hour) = super::split_window(start_ms, now_ms);
        let five = bucket_start(start_ms.saturating_add(BUCKET_5M_MS - 1), BUCKET_5M_MS).min(hour);
        let raw_end = five.min(now_ms.saturating_add(1));
        let five_last = hour.saturating_sub(BUCKET_5M_MS).min(now_ms);
        WindowParts {
            raw: (start_ms, raw_end),
            five: (five, five_last),
            hour: (hour, now_ms),
        }
    }

    /// The 5-minute buckets holding every sample the parts count: from the one `start_ms` is in
    /// to the last one of the newest bucket read (the current hour's, when whole hours are read).
    fn five_minute_buckets(&self) -> impl Iterator<Item = i64> {
        let first = bucket_start(self.raw.0, BUCKET_5M_MS);
        let last = if self.hour.0 <= self.hour.1 {
            bucket_start(self.hour.1, BUCKET_1H_MS).saturating_add(BUCKET_1H_MS - BUCKET_5M_MS)
        } else {
            bucket_start(self.five.1.max(self.raw.0), BUCKET_5M_MS)
        };
        buckets(first, last, BUCKET_5M_MS)
    }
}

/// Bucket starts `first, first + len, ...` up to `last`.
fn buckets(first: i64, last: i64, len: i64) -> impl Iterator<Item = i64> {
    std::iter::successors(Some(first), move |b| b.checked_add(len)).take_while(move |b| *b <= last)
}

/// Adds one row in the shape of [`FLEET_RAW_SQL`] / [`FLEET_ROLLUP_SQL`] to per-device,
/// per-MAC totals.
fn add_station_row(
    by: &mut HashMap<i64, HashMap<String, StationTotal>>,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<()> {
    add_station_total(
        by,
        r.get(0)?,
        r.get_ref(1)?.as_str()?,
        [r.get(2)?, r.get(3)?],
        [r.get(4)?, r.get(5)?],
        r.get(6)?,
    );
    Ok(())
}

/// [`super::station_totals`] of the whole fleet over `[start_ms, now_ms]`, read in three parts and
/// summed here per (device, MAC): raw samples before the first whole 5-minute bucket,
/// `station_rollup_5m` up to the first whole hour, `station_rollup_1h` from it on (each bucket
/// holds exactly its samples' sums; the current ones the samples so far). The same totals as
/// [`super::station_totals`] (which reads up to an hour of raw samples), in no particular
/// order.
pub(super) fn fleet_station_totals(
    c: &Connection,
    start_ms: i64,
    now_ms: i64,
) -> Result<Vec<StationTotal>, IspError> {
    let w = WindowParts::of(start_ms, now_ms);
    let mut by: HashMap<i64, HashMap<String, StationTotal>> = HashMap::new();
    let parts = [
        (FLEET_RAW_SQL.to_string(), w.raw),
        (
            FLEET_ROLLUP_SQL.replace("{table}", "station_rollup_5m"),
            w.five,
        ),
        (
            FLEET_ROLLUP_SQL.replace("{table}", "station_rollup_1h"),
            w.hour,
        ),
    ];
    for (i, (sql, (lo, hi))) in parts.iter().enumerate() {
        // The raw part's bound is exclusive.
        if (i == 0 && lo >= hi) || lo > hi {
            continue;
        }
        let mut st = c.prepare_cached(sql).map_err(db)?;
        let mut rows = st.query(params![lo, hi]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            add_station_row(&mut by, r).map_err(db)?;
        }
        if i == 1 {
            // Hours older than the hot window: their 5-minute buckets are sealed blocks.
            add_sealed_station_5m(c, *lo, *hi, None, &mut by)?;
        }
    }
    Ok(by.into_values().flat_map(HashMap::into_values).collect())
}

/// Raw station rows of one device (`?3`) in `[?1, ?2)`, in the shape of [`FLEET_RAW_SQL`].
const ROUTER_RAW_SQL: &str =
    "SELECT s.router_id, s.mac, coalesce(s.rx_delta, 0), coalesce(s.tx_delta, 0), \
     s.rx_bps, s.tx_bps, 1 FROM routers r CROSS JOIN station_samples_all s ON s.router_id = r.id \
     AND s.ts_ms >= ?1 AND s.ts_ms < ?2 WHERE r.id = ?3";
/// Station rollup rows of one device (`?2`) and bucket (`?1`): a primary-key prefix.
const ROUTER_ROLLUP_SQL: &str =
    "SELECT router_id, mac, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples \
     FROM {table} WHERE bucket_start_ms = ?1 AND router_id = ?2";
/// The devices whose stations reached `?2` bit/s in the 5-minute bucket `?1`.
const PEAK_ROUTERS_SQL: &str =
    "SELECT router_id FROM station_peak_5m WHERE bucket_start_ms = ?1 AND peak_bps >= ?2";
/// The devices a MAC (`?1`) has hourly station rows on from hour `?2` to `?3`.
const MAC_ROUTERS_SQL: &str = "SELECT DISTINCT router_id FROM station_rollup_1h \
     WHERE mac = ?1 AND bucket_start_ms >= ?2 AND bucket_start_ms <= ?3";

/// Devices past which [`alert_station_totals`] gives up (summing the fleet is cheaper then).
const MAX_ALERT_ROUTERS: usize = 200;

/// [`fleet_station_totals`]'s rows of the devices `routers`, with the same three parts read per
/// device: raw samples, then one primary-key lookup per device and rollup bucket.
fn routers_station_totals(
    c: &Connection,
    routers: &BTreeSet<i64>,
    w: &WindowParts,
) -> Result<Vec<StationTotal>, IspError> {
    let mut by: HashMap<i64, HashMap<String, StationTotal>> = HashMap::new();
    let mut raw = c.prepare_cached(ROUTER_RAW_SQL).map_err(db)?;
    let mut five = c
        .prepare_cached(&ROUTER_ROLLUP_SQL.replace("{table}", "station_rollup_5m"))
        .map_err(db)?;
    let mut hour = c
        .prepare_cached(&ROUTER_ROLLUP_SQL.replace("{table}", "station_rollup_1h"))
        .map_err(db)?;
    for &id in routers {
        if w.raw.0 < w.raw.1 {
            let mut rows = raw.query(params![w.raw.0, w.raw.1, id]).map_err(db)?;
            while let Some(r) = rows.next().map_err(db)? {
                add_station_row(&mut by, r).map_err(db)?;
            }
        }
        for (st, (lo, hi), len) in [
            (&mut five, w.five, BUCKET_5M_MS),
            (&mut hour, w.hour, BUCKET_1H_MS),
        ] {
            for b in buckets(lo, hi, len) {
                let mut rows = st.query(params![b, id]).map_err(db)?;
                while let Some(r) = rows.next().map_err(db)? {
                    add_station_row(&mut by, r).map_err(db)?;
                }
            }
        }
        if w.five.0 <= w.five.1 {
            // The device's sealed hours of 5-minute buckets, as in the fleet-wide read.
            add_sealed_station_5m(c, w.five.0, w.five.1, Some(id), &mut by)?;
        }
    }
    Ok(by.into_values().flat_map(HashMap::into_values).collect())
}

/// Adds the sealed 5-minute station buckets in `[lo, hi]` (of every device, or of `router`) to
/// `by`: the hours older than the hot window, whose `station_rollup_5m` rows are blocks.
fn add_sealed_station_5m(
    c: &Connection,
    lo: i64,
    hi: i64,
    router: Option<i64>,
    by: &mut HashMap<i64, HashMap<String, StationTotal>>,
) -> Result<(), IspError> {
    crate::store::sealed::for_each_sealed_station_5m(c, lo, hi, router, |router, s| {
        add_station_total(
            by,
            router,
            &s.mac,
            [s.rx_bytes, s.tx_bytes],
            [s.max_rx_bps, s.max_tx_bps],
            s.samples,
        );
    })
    .map_err(db)
}

/// Adds one row of station sums (upload/download bytes, their peaks, samples) to `by`
/// (router -> MAC -> totals).
fn add_station_total(
    by: &mut HashMap<i64, HashMap<String, StationTotal>>,
    router: i64,
    mac: &str,
    bytes: [i64; 2],
    peaks: [Option<i64>; 2],
    samples: i64,
) {
    let macs = by.entry(router).or_default();
    if !macs.contains_key(mac) {
        macs.insert(
            mac.to_string(),
            StationTotal {
                router_id: router,
                mac: mac.to_string(),
                ..StationTotal::default()
            },
        );
    }
    if let Some(t) = macs.get_mut(mac) {
        t.upload_bytes = t.upload_bytes.saturating_add(bytes[0]);
        t.download_bytes = t.download_bytes.saturating_add(bytes[1]);
        t.max_upload_bps = t.max_upload_bps.max(peaks[0]);
        t.max_download_bps = t.max_download_bps.max(peaks[1]);
        t.samples = t.samples.saturating_add(samples);
    }
}

/// The window totals of every station (all its devices) of the MACs whose rate may have
/// reached `min_bps` over `[start_ms, now_ms]`, or None when too many devices would have to be
/// read ([`MAX_ALERT_ROUTERS`]; then [`fleet_station_totals`] is the cheaper way).
///
/// 1. The devices with a `station_peak_5m` row at or over `min_bps` in a 5-minute bucket of the
///    window (one index seek per bucket): a station's rate can only have reached it on those.
/// 2. Their stations' window totals; the MACs among them whose peak reached `min_bps`.
/// 3. The other devices those MACs were seen on in the window (`station_rollup_1h` by MAC),
///    and those MACs' totals there.
///
/// Every MAC that [`fleet_station_totals`] shows at or over `min_bps` on some device is in the
/// answer with the same per-device totals; the answer holds no other MAC.
pub(super) fn alert_station_totals(
    c: &Connection,
    start_ms: i64,
    now_ms: i64,
    min_bps: i64,
) -> Result<Option<Vec<StationTotal>>, IspError> {
    let w = WindowParts::of(start_ms, now_ms);
    let mut routers = BTreeSet::new();
    let mut st = c.prepare_cached(PEAK_ROUTERS_SQL).map_err(db)?;
    for b in w.five_minute_buckets() {
        let mut rows = st.query(params![b, min_bps]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            routers.insert(r.get::<_, i64>(0).map_err(db)?);
        }
        if routers.len() > MAX_ALERT_ROUTERS {
            return Ok(None);
        }
    }
    let reached = |t: &StationTotal| {
        t.max_download_bps.is_some_and(|p| p >= min_bps)
            || t.max_upload_bps.is_some_and(|p| p >= min_bps)
    };
    let mut totals = routers_station_totals(c, &routers, &w)?;
    let macs: BTreeSet<String> = totals
        .iter()
        .filter(|&t| reached(t))
        .map(|t| t.mac.clone())
        .collect();
    let mut others = BTreeSet::new();
    let mut st = c.prepare_cached(MAC_ROUTERS_SQL).map_err(db)?;
    for mac in &macs {
        let first_hour = bucket_start(start_ms, BUCKET_1H_MS);
        let mut rows = st.query(params![mac, first_hour, now_ms]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let id: i64 = r.get(0).map_err(db)?;
            if !routers.contains(&id) {
                others.insert(id);
            }
        }
    }
    if routers.len() + others.len() > MAX_ALERT_ROUTERS {
        return Ok(None);
    }
    totals.extend(routers_station_totals(c, &others, &w)?);
    totals.retain(|t| macs.contains(&t.mac));
    Ok(Some(totals))
}

/// Station totals merged per MAC across devices.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct MacTotal {
    mac: String,
    download: i64,
    upload: i64,
    max_down: Option<i64>,
    max_up: Option<i64>,
    /// Router id -> bytes through it.
    routers: BTreeMap<i64, i64>,
}

fn merge_by_mac(totals: Vec<StationTotal>) -> Vec<MacTotal> {
    let mut by: BTreeMap<String, MacTotal> = BTreeMap::new();
    for t in totals {
        let m = by.entry(t.mac.clone()).or_insert_with(|| MacTotal {
            mac: t.mac.clone(),
            ..Default::default()
        });
        m.download = m.download.saturating_add(t.download_bytes);
        m.upload = m.upload.saturating_add(t.upload_bytes);
        m.max_down = m.max_down.max(t.max_download_bps);
        m.max_up = m.max_up.max(t.max_upload_bps);
        let r = m.routers.entry(t.router_id).or_default();
        *r = r.saturating_add(t.download_bytes.saturating_add(t.upload_bytes));
    }
    by.into_values().collect()
}

/// The lease of a merged station, looked up on the device with the most of its traffic.
fn lease_of(c: &Connection, m: &MacTotal) -> Result<LeaseInfo, IspError> {
    let main = m
        .routers
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(id, _)| *id);
    lease_for_mac(c, &m.mac, main)
}

/// The names of the devices a merged station was seen on, sorted (each device read once per
/// answer, not the whole fleet's list).
fn device_list(
    c: &Connection,
    routers: &mut super::RouterCache,
    m: &MacTotal,
) -> Result<Vec<String>, IspError> {
    let mut v = Vec::new();
    for &id in m.routers.keys() {
        if let Some(r) = routers.get(c, id)? {
            v.push(r.router.name.clone());
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn avg_mbps(bytes: i64, window_ms: i64) -> f64 {
    mbps(bytes as f64 * 8.0 / (window_ms.max(1000) / 1000) as f64)
}

/// The users with the most traffic.
#[utoipa::path(get, path = "/api/bandwidth/monitoring/top-users",
    operation_id = "isp_bandwidth_monitoring_top_users", tag = "isp",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20", minimum = 1, maximum = 100),
        ("sort_by" = Option<SortBy>, Query, description = "total (default), download or upload (any case)"),
        ("minutes" = Option<i64>, Query, description = "1 to 180, default 30", minimum = 1, maximum = 180),
    ),
    responses(
        (status = 200, description = "Users by traffic, largest first (ties by MAC), over the window starting on the minute boundary at or before now - minutes. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old, so the window may end up to that much before the request; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = StampedEnvelope<TopUsers>),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn top_users(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let TopUsersQuery {
        limit,
        sort_by,
        minutes,
    } = TopUsersQuery::parse(q)?;
    let key = top_users_key(limit, sort_by, minutes);
    let recent = state.recent.clone();
    cached_envelope(&state, &key, move |c| {
        // The window ends when the answer is computed (possibly in a background refresh).
        let now = now_ms();
        let window = minutes * MINUTE_MS;
        let start = window_start(now, minutes);
        let limit = usize::try_from(limit).unwrap_or(20);
        let (total_users, top) = (|| -> Result<_, IspError> {
            let mut routers = super::RouterCache::default();
            let (total, ranked) = top_macs(c, &recent, start, now, sort_by, limit)?;
            let mut out = Vec::new();
            for (i, m) in ranked.iter().enumerate() {
                let lease = lease_of(c, m)?;
                let total_bytes = m.download.saturating_add(m.upload);
                out.push(UserTraffic {
                    rank: i + 1,
                    username: username_of(&m.mac, &lease),
                    hostname: lease.hostname,
                    mac_address: m.mac.clone(),
                    ip_address: lease.ip,
                    devices: device_list(c, &mut routers, m)?,
                    download_bytes: m.download,
                    upload_bytes: m.upload,
                    total_bytes,
                    download_mb: mib(m.download),
                    upload_mb: mib(m.upload),
                    total_mb: mib(total_bytes),
                    avg_download_mbps: avg_mbps(m.download, window),
                    avg_upload_mbps: avg_mbps(m.upload, window),
                    peak_download_mbps: mbps(m.max_down.unwrap_or(0) as f64),
                    peak_upload_mbps: mbps(m.max_up.unwrap_or(0) as f64),
                });
            }
            Ok((total, out))
        })()?;
        Ok(TopUsers {
            period_minutes: minutes,
            sort_by: sort_by.to_string(),
            total_users,
            top_users: top,
        })
    })
    .await
}

/// The MACs seen over `[start_ms, now_ms]` (how many) and the `limit` with the most traffic by
/// `sort_by`, largest first, ties by MAC: from the recent-traffic index when it covers the
/// window, else summed from the database.
fn top_macs(
    c: &Connection,
    recent: &RecentStations,
    start_ms: i64,
    now_ms: i64,
    sort_by: &str,
    limit: usize,
) -> Result<(usize, Vec<MacTotal>), IspError> {
    let by = match sort_by {
        "download" => RankBy::Download,
        "upload" => RankBy::Upload,
        _ => RankBy::Total,
    };
    if let Some(t) = recent.top(start_ms, now_ms, by, limit) {
        let top = t
            .top
            .into_iter()
            .map(|stations| {
                let mut m = MacTotal::default();
                for s in stations {
                    m.mac = s.mac.to_string();
                    m.download = m.download.saturating_add(s.download);
                    m.upload = m.upload.saturating_add(s.upload);
                    m.max_down = m.max_down.max(s.max_download_bps);
                    m.max_up = m.max_up.max(s.max_upload_bps);
                    let r = m.routers.entry(s.router_id).or_default();
                    *r = r.saturating_add(s.download.saturating_add(s.upload));
                }
                m
            })
            .collect();
        return Ok((t.total, top));
    }
    let mut all = merge_by_mac(fleet_station_totals(c, start_ms, now_ms)?);
    let key = |m: &MacTotal| match by {
        RankBy::Download => m.download,
        RankBy::Upload => m.upload,
        RankBy::Total => m.download.saturating_add(m.upload),
    };
    all.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.mac.cmp(&b.mac)));
    let total = all.len();
    all.truncate(limit);
    Ok((total, all))
}

/// The fleet's station totals over `[start_ms, now_ms]`: from the recent-traffic index when it
/// covers the window, else summed from the database.
fn fleet_window(
    c: &Connection,
    recent: &RecentStations,
    start_ms: i64,
    now_ms: i64,
) -> Result<FleetWindow, IspError> {
    if let Some(f) = recent.fleet(start_ms, now_ms) {
        return Ok(f);
    }
    let totals = fleet_station_totals(c, start_ms, now_ms)?;
    let mut f = FleetWindow::default();
    let mut users = BTreeSet::new();
    for t in &totals {
        let e = f.per_router.entry(t.router_id).or_default();
        e.0 = e.0.saturating_add(t.download_bytes);
        e.1 = e.1.saturating_add(t.upload_bytes);
        // One total per (device, MAC).
        e.2 += 1;
        f.download = f.download.saturating_add(t.download_bytes);
        f.upload = f.upload.saturating_add(t.upload_bytes);
        f.max_download_bps = f.max_download_bps.max(t.max_download_bps);
        f.max_upload_bps = f.max_upload_bps.max(t.max_upload_bps);
        users.insert(t.mac.as_str());
    }
    f.active_users = users.len();
    Ok(f)
}

/// Station traffic of the whole network and per device.
#[utoipa::path(get, path = "/api/bandwidth/monitoring/network-summary",
    operation_id = "isp_bandwidth_monitoring_network_summary", tag = "isp",
    params(("minutes" = Option<i64>, Query, description = "1 to 180, default 30", minimum = 1, maximum = 180)),
    responses(
        (status = 200, description = "Totals over the window starting on the minute boundary at or before now - minutes. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old, so the window may end up to that much before the request; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = StampedEnvelope<NetworkSummary>),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn network_summary(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let NetworkSummaryQuery { minutes } = NetworkSummaryQuery::parse(q)?;
    let key = cache::key(
        "/api/bandwidth/monitoring/network-summary",
        &[("minutes", &minutes)],
    );
    let recent = state.recent.clone();
    cached_envelope(&state, &key, move |c| {
        // The window ends when the answer is computed (possibly in a background refresh).
        let now = now_ms();
        let window = minutes * MINUTE_MS;
        let start = window_start(now, minutes);
        let (routers, f) = (|| -> Result<_, IspError> {
            Ok((
                device_states(c, now)?,
                fleet_window(c, &recent, start, now)?,
            ))
        })()?;
        let devices: Vec<DeviceTraffic> = routers
            .iter()
            .map(|r| {
                let (d, u, users) = f.per_router.get(&r.id).copied().unwrap_or_default();
                DeviceTraffic {
                    device_name: r.name.clone(),
                    connected: r.connected,
                    download_bytes: d,
                    upload_bytes: u,
                    total_bytes: d.saturating_add(u),
                    avg_download_mbps: avg_mbps(d, window),
                    avg_upload_mbps: avg_mbps(u, window),
                    users,
                }
            })
            .collect();
        let (down, up) = (f.download, f.upload);
        Ok(NetworkSummary {
            period_minutes: minutes,
            total_download_bytes: down,
            total_upload_bytes: up,
            total_bytes: down.saturating_add(up),
            total_download_mb: mib(down),
            total_upload_mb: mib(up),
            avg_download_mbps: avg_mbps(down, window),
            avg_upload_mbps: avg_mbps(up, window),
            peak_user_download_mbps: mbps(f.max_download_bps.unwrap_or(0) as f64),
            peak_user_upload_mbps: mbps(f.max_upload_bps.unwrap_or(0) as f64),
            active_users: f.active_users,
            devices_total: routers.len(),
            devices_connected: routers.iter().filter(|r| r.connected).count(),
            devices,
        })
    })
    .await
}

/// One device of network-summary's list.
struct DeviceState {
    id: i64,
    name: String,
    /// Not revoked and heard from recently (`RouterFacts::connected`).
    connected: bool,
}

/// Every device's id, name and connectivity, by name: the narrow read of network-summary's
/// device list (no report facts, which cost a lookup or two per device).
fn device_states(c: &Connection, now: i64) -> Result<Vec<DeviceState>, IspError> {
    let mut st = c
        .prepare_cached("SELECT id, name, revoked_at, last_seen_ms FROM routers r ORDER BY r.name")
        .map_err(db)?;
    let rows = st
        .query_map([], |r| {
            let revoked: Option<i64> = r.get(2)?;
            Ok(DeviceState {
                id: r.get(0)?,
                name: r.get(1)?,
                connected: revoked.is_none() && crate::api::fleet::is_connected(now, r.get(3)?),
            })
        })
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// Users whose rate reached a threshold.
#[utoipa::path(get, path = "/api/bandwidth/monitoring/alerts",
    operation_id = "isp_bandwidth_monitoring_alerts", tag = "isp",
    params(
        ("threshold" = Option<f64>, Query, description = "Mbit/s, greater than 0 and at most 100000, default 50", exclusive_minimum = 0.0, maximum = 100000.0),
        ("minutes" = Option<i64>, Query, description = "1 to 180, default 30", minimum = 1, maximum = 180),
    ),
    responses(
        (status = 200, description = "One alert per user and direction at or over the threshold. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old, so the window may end up to that much before the request; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = StampedEnvelope<BandwidthAlerts>),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ))]
pub async fn alerts(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let AlertsQuery { threshold, minutes } = AlertsQuery::parse(q)?;
    let key = alerts_key(threshold, minutes);
    cached_envelope(&state, &key, move |c| {
        // The window ends when the answer is computed (possibly in a background refresh).
        let now = now_ms();
        let window = minutes * MINUTE_MS;
        let limit_bps = threshold * 1_000_000.0;
        let mut alerts = (|| -> Result<_, IspError> {
            // The stations that may have reached the threshold (found by index seeks), or the
            // whole fleet's when too many devices did; the same alerts either way.
            let min_bps = limit_bps.ceil() as i64;
            let totals = match alert_station_totals(c, now - window, now, min_bps)? {
                Some(t) => t,
                None => fleet_station_totals(c, now - window, now)?,
            };
            let mut routers = super::RouterCache::default();
            let mut out = Vec::new();
            for m in merge_by_mac(totals) {
                let hits: Vec<(&str, i64, i64)> = [("download", m.max_down, m.download), ("upload", m.max_up, m.upload)]
                    .into_iter()
                    .filter_map(|(dir, peak, bytes)| peak.filter(|p| *p as f64 >= limit_bps).map(|p| (dir, p, bytes)))
                    .collect();
                if hits.is_empty() {
                    continue;
                }
                let lease = lease_of(c, &m)?;
                let devices = device_list(c, &mut routers, &m)?;
                for (dir, peak, bytes) in hits {
                    let peak_mbps = mbps(peak as f64);
                    let severity = if peak as f64 >= 2.0 * limit_bps { "critical" } else { "warning" };
                    let username = username_of(&m.mac, &lease);
                    out.push(BandwidthAlert {
                        message: format!("{username} reached {peak_mbps} Mbit/s {dir} (threshold {threshold} Mbit/s)"),
                        username,
                        hostname: lease.hostname.clone(),
                        mac_address: m.mac.clone(),
                        ip_address: lease.ip.clone(),
                        devices: devices.clone(),
                        direction: dir.to_string(),
                        peak_mbps,
                        avg_mbps: avg_mbps(bytes, window),
                        threshold_mbps: threshold,
                        severity: severity.to_string(),
                    });
                }
            }
            Ok(out)
        })()?;
        alerts.sort_by(|a, b| {
            b.peak_mbps
                .total_cmp(&a.peak_mbps)
                .then_with(|| a.mac_address.cmp(&b.mac_address))
                .then_with(|| a.direction.cmp(&b.direction))
        });
        Ok(BandwidthAlerts {
            threshold_mbps: threshold,
            period_minutes: minutes,
            total_alerts: alerts.len(),
            alerts,
        })
    })
    .await
}

fn quality_of(signal: Option<i64>) -> &'static str {
    match signal {
        Some(s) if s >= -55 => "excellent",
        Some(s) if s >= -65 => "good",
        Some(s) if s >= -75 => "fair",
        Some(_) => "poor",
        None => "unknown",
    }
}

/// Counter growth between two samples of one association, or since association when the
/// station associated inside the window. (packets, retries, failed)
pub fn window_counters(
    first: Option<&StationRow>,
    last: &StationRow,
    window_ms: i64,
) -> Option<(i64, i64, i64)> {
    let triple = |s: &StationRow| Some((s.tx_packets?, s.tx_retries?, s.tx_failed?));
    let now = triple(last)?;
    let same_association = first.filter(|f| {
        let span_s = last.ts_ms.saturating_sub(f.ts_ms) / 1000;
        matches!((f.connected_s, last.connected_s), (Some(a), Some(b)) if b >= a && b.saturating_sub(a) + 2 >= span_s)
    });
    match same_association.and_then(triple) {
        Some(then) if now.0 >= then.0 && now.1 >= then.1 && now.2 >= then.2 => {
            Some((now.0 - then.0, now.1 - then.1, now.2 - then.2))
        }
        Some(_) => None,
        None => last
            .connected_s
            .filter(|c| c.saturating_mul(1000) <= window_ms)
            .map(|_| now),
    }
}

fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| round(part as f64 * 100.0 / whole as f64, 2))
}

/// Wi-Fi link quality of the associated stations.
#[utoipa::path(get, path = "/api/bandwidth/monitoring/quality",
    operation_id = "isp_bandwidth_monitoring_quality", tag = "isp",
    params(
        ("minutes" = Option<i64>, Query, description = "1 to 1440, default 60", minimum = 1, maximum = 1440),
        ("username" = Option<String>, Query, description = "DHCP hostname or MAC; all users when absent or empty (when given, `limit` and `cursor` do not apply: every router is searched); at most 253 characters", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"),
        paging::PageQuery,
    ),
    responses(
        (status = 200, description = "Stations by device, interface and MAC, of one page of routers without `username` (`limit`, default 100, in router id order; \
            `summary` describes the page); the next page is named in the `Link` (rel=\"next\") and `X-Next-Cursor` headers, absent on the last page. Served from the response cache (see `X-Cache`): at most `api_cache_max_age` (default 10 s) old, so the window may end up to that much before the request; after new reports a cached answer is still served while one background task recomputes it; `timestamp` is when the answer was made.", body = StampedEnvelope<QualityReport>),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "Unknown user", body = ErrorEnvelope),
    ))]
pub async fn quality(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, IspError> {
    auth(&state, &headers).await?;
    let QualityQuery {
        minutes,
        username,
        limit,
        cursor,
    } = QualityQuery::parse(q)?;
    let page = Page {
        after: cursor,
        limit,
    };
    let b = device_page(&state, &username, page).await?;
    let key = cache::key(
        "/api/bandwidth/monitoring/quality",
        &[("minutes", &minutes), ("username", &username), ("page", &b)],
    );
    let next = b.as_ref().and_then(|b| b.next_cursor.clone());
    let resp = cached_envelope(&state, &key, move |c| {
        // The window ends when the answer is computed (possibly in a background refresh).
        let now = now_ms();
        let window = minutes * MINUTE_MS;
        let start = now - window;
        let (name, stations) = (|| -> Result<_, IspError> {
            let user = username
                .as_deref()
                .map(|u| resolve_user(c, u))
                .transpose()?;
            // One snapshot for every read of the answer: the choice between rows and blocks
            // (`router_source`) and the read it picks see the same sealed state.
            let snapshot = crate::store::sealed::read_snapshot(c).map_err(db)?;
            let mut signal = c.prepare_cached(SIGNAL_SQL).map_err(db)?;
            let mut out = Vec::new();
            // A user: every router; else the page's routers, whose newest stations and their
            // leases are read with one statement each (not one per router and per station).
            let routers = device_or_page(c, None, b.as_ref())?;
            let page = b
                .as_ref()
                .filter(|_| user.is_none())
                .map(|_| paging::id_span(routers.iter().map(|r| r.id)));
            let (mut newest, book) = match page {
                Some(span) => (
                    super::devices::newest_stations_in(c, span)?,
                    Some(super::LeaseBook::for_page(c, span)?),
                ),
                None => (HashMap::new(), None),
            };
            for r in routers.iter().filter(|r| r.connected(now)) {
                let Some(last_ts) = r.last_report_ms else {
                    continue;
                };
                let last: Vec<StationRow> = match page {
                    Some(_) => newest.remove(&r.id).unwrap_or_default(),
                    None => stations_at(c, r.id, last_ts)?,
                }
                .into_iter()
                .filter(|s| user.as_ref().is_none_or(|u| u.macs.contains(&s.mac)))
                .collect();
                if last.is_empty() {
                    continue;
                }
                let src = crate::store::sealed::router_source(
                    c,
                    "station_samples",
                    r.id,
                    start,
                    i64::MAX,
                )
                .map_err(db)?;
                let first_at: Option<i64> = c
                    .prepare_cached(&FIRST_TS_SQL.replace("{src}", &src))
                    .and_then(|mut st| st.query_row(params![r.id, start], |x| x.get(0)))
                    .map_err(db)?;
                let first: Vec<StationRow> = match first_at {
                    Some(t) if t < last_ts => first_counters(c, r.id, t)?,
                    _ => Vec::new(),
                };
                let link =
                    crate::api::fleet::probe_figures(c, Some(r.id), start, now).map_err(db)?;
                for s in last {
                    let before = first.iter().find(|f| f.mac == s.mac && f.iface == s.iface);
                    let counters = window_counters(before, &s, window);
                    let (smin, smax, smean) = if user.is_some() {
                        signal
                            .query_row(params![s.mac, start, r.id, s.iface], |x| {
                                Ok((
                                    x.get::<_, Option<i64>>(0)?,
                                    x.get::<_, Option<i64>>(1)?,
                                    x.get::<_, Option<f64>>(2)?,
                                ))
                            })
                            .map_err(db)?
                    } else {
                        (None, None, None)
                    };
                    let lease = match &book {
                        Some(book) => book.get(&s.mac, Some(r.id)),
                        None => lease_for_mac(c, &s.mac, Some(r.id))?,
                    };
                    let sig = s.signal_avg_dbm.or(s.signal_dbm);
                    out.push(StationQuality {
                        username: username_of(&s.mac, &lease),
                        hostname: lease.hostname,
                        mac_address: s.mac.clone(),
                        ip_address: lease.ip,
                        device_name: r.name.clone(),
                        interface: s.iface.clone(),
                        ssid: s.ssid.clone(),
                        signal_dbm: s.signal_dbm,
                        signal_avg_dbm: s.signal_avg_dbm,
                        signal_min_dbm: smin,
                        signal_max_dbm: smax,
                        signal_mean_dbm: smean.map(|v| round(v, 1)),
                        inactive_time_ms: s.inactive_ms,
                        connected_seconds: s.connected_s,
                        tx_bitrate_mbps: kbps_to_mbps(s.tx_bitrate_kbps),
                        rx_bitrate_mbps: kbps_to_mbps(s.rx_bitrate_kbps),
                        expected_throughput_mbps: kbps_to_mbps(s.expected_throughput_kbps),
                        tx_packets: counters.map(|c| c.0),
                        tx_retries: counters.map(|c| c.1),
                        tx_failed: counters.map(|c| c.2),
                        retry_rate_percent: counters.and_then(|c| percent(c.1, c.0)),
                        packet_loss_percent: counters
                            .and_then(|c| percent(c.2, c.0.saturating_add(c.2))),
                        latency_ms: link.get(&r.id).and_then(|f| f.latency_ms),
                        quality: quality_of(sig).to_string(),
                    });
                }
            }
            drop(snapshot);
            Ok((user.map(|u| u.username), out))
        })()?;
        let signals: Vec<i64> = stations
            .iter()
            .filter_map(|s| s.signal_avg_dbm.or(s.signal_dbm))
            .collect();
        let rates: Vec<f64> = stations
            .iter()
            .filter_map(|s| s.retry_rate_percent)
            .collect();
        let count = |q: &str| stations.iter().filter(|s| s.quality == q).count();
        let summary = QualitySummary {
            stations: stations.len(),
            avg_signal_dbm: (!signals.is_empty())
                .then(|| round(signals.iter().sum::<i64>() as f64 / signals.len() as f64, 1)),
            weak_signal_stations: signals.iter().filter(|s| **s < -75).count(),
            total_tx_retries: stations
                .iter()
                .filter_map(|s| s.tx_retries)
                .fold(0, i64::saturating_add),
            total_tx_failed: stations
                .iter()
                .filter_map(|s| s.tx_failed)
                .fold(0, i64::saturating_add),
            avg_retry_rate_percent: (!rates.is_empty())
                .then(|| round(rates.iter().sum::<f64>() / rates.len() as f64, 2)),
            excellent: count("excellent"),
            good: count("good"),
            fair: count("fair"),
            poor: count("poor"),
        };
        Ok(QualityReport {
            period_minutes: minutes,
            username: name,
            summary,
            stations,
        })
    })
    .await?;
    Ok(with_next(resp, &uri, next.as_deref()))
}

/// Bandwidth service health (no key needed).
#[utoipa::path(get, path = "/api/bandwidth/health",
    operation_id = "isp_bandwidth_health", tag = "isp", security(()),
    responses((status = 200, description = "Reporting devices and stations", body = StampedEnvelope<BandwidthHealth>)))]
pub async fn health(State(state): State<ApiState>, q: RawQuery) -> IspResult<BandwidthHealth> {
    NoQuery::parse(q)?;
    let now = now_ms();
    ok(read(&state, move |c| health_counts(c, now)).await?)
}

/// The fleet counts of `/api/bandwidth/health` in one aggregate over `routers` and each one's
/// newest report row (`?1`: the oldest `last_seen_ms` that counts as connected, as
/// [`crate::api::fleet::is_connected`]): every enrolled router, the unrevoked connected ones
/// and the station counts of their newest reports, and the newest report time of any router.
/// No router's facts are built or sorted.
const HEALTH_SQL: &str = "SELECT count(*), \
     coalesce(sum(r.revoked_at IS NULL AND r.last_seen_ms >= ?1), 0), \
     coalesce(sum(CASE WHEN r.revoked_at IS NULL AND r.last_seen_ms >= ?1 THEN n.station_count END), 0), \
     max(r.last_report_ms) \
     FROM routers r LEFT JOIN reports n ON n.id = r.last_report_id";

/// `/api/bandwidth/health` at `now` (Unix ms), from [`HEALTH_SQL`].
fn health_counts(c: &Connection, now: i64) -> Result<BandwidthHealth, IspError> {
    let since = now.saturating_sub(crate::api::fleet::ONLINE_WINDOW_MS);
    let (total, reporting, stations, latest): (i64, i64, i64, Option<i64>) = c
        .prepare_cached(HEALTH_SQL)
        .and_then(|mut st| {
            st.query_row([since], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
        })
        .map_err(db)?;
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    Ok(BandwidthHealth {
        status: if total > 0 && reporting == 0 {
            "degraded"
        } else {
            "healthy"
        }
        .to_string(),
        service: "bandwidth".to_string(),
        devices_total: count(total),
        devices_reporting: count(reporting),
        active_stations: stations,
        latest_report_at: latest.and_then(iso_ms_opt),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Query;

    /// The counts of [`health_counts`] as the route computed them before: from every router's
    /// facts.
    fn health_from_facts(c: &Connection, now: i64) -> BandwidthHealth {
        let routers = super::super::all_routers(c).unwrap();
        let reporting: Vec<_> = routers.iter().filter(|r| r.connected(now)).collect();
        BandwidthHealth {
            status: if !routers.is_empty() && reporting.is_empty() {
                "degraded"
            } else {
                "healthy"
            }
            .to_string(),
            service: "bandwidth".to_string(),
            devices_total: routers.len(),
            devices_reporting: reporting.len(),
            active_stations: reporting
                .iter()
                .filter_map(|r| r.station_count)
                .fold(0, i64::saturating_add),
            latest_report_at: routers
                .iter()
                .filter_map(|r| r.last_report_ms)
                .max()
                .and_then(iso_ms_opt),
        }
    }

    /// Connected, offline, revoked and never-reporting routers, one whose newest report row is
    /// missing (`quiet`: no station count), and an empty fleet: the one aggregate equals the count over every
    /// router's facts at every time.
    #[test]
    fn health_counts_equal_the_counts_over_every_routers_facts() {
        let c = crate::api::monitor::tests::empty_db();
        assert_eq!(health_counts(&c, 0).unwrap(), health_from_facts(&c, 0));
        c.execute_batch(
            "INSERT INTO routers (id, name, hostname, cert_fingerprint, cert_not_after, enrolled_at, \
             last_seen_ms, last_report_id, last_report_ms, revoked_at) VALUES \
             (1, 'up', 'h1', 'f1', 0, 0, 1000000, 11, 990000, NULL), \
             (2, 'late', 'h2', 'f2', 0, 0, 500000, 12, 2000000, NULL), \
             (3, 'gone', 'h3', 'f3', 0, 0, 1000000, 13, 1000000, 7), \
             (4, 'new', 'h4', 'f4', 0, 0, NULL, NULL, NULL, NULL), \
             (5, 'quiet', 'h5', 'f5', 0, 0, 1000000, 15, 995000, NULL); \
             INSERT INTO reports (id, router_id, boot_id, seq, ts_ms, received_ms, dropped_reports, \
             interface_count, station_count, lease_count, wg_peer_count, ovpn_client_count) VALUES \
             (11, 1, x'00', 1, 990000, 1000000, 0, 1, 7, 0, 0, 0), \
             (12, 2, x'00', 1, 2000000, 500000, 0, 1, 5, 0, 0, 0), \
             (13, 3, x'00', 1, 1000000, 1000000, 0, 1, 9, 0, 0, 0);",
        )
        .unwrap();
        for now in [
            0, 500_000, 800_000, 1_000_000, 1_300_000, 1_300_001, 5_000_000,
        ] {
            let h = health_counts(&c, now).unwrap();
            assert_eq!(h, health_from_facts(&c, now), "at {now}");
        }
        let h = health_counts(&c, 1_000_000).unwrap();
        assert_eq!(
            (h.devices_total, h.devices_reporting, h.active_stations),
            (5, 2, 7)
        );
        assert_eq!(health_counts(&c, 5_000_000).unwrap().status, "degraded");
    }

    fn params(q: &[(&str, &str)], allowed: &[&str]) -> Params {
        let pairs = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::parse(Ok(Query(pairs)), allowed).unwrap()
    }

    fn top_key(q: &[(&str, &str)]) -> String {
        let p = params(q, &["limit", "sort_by", "minutes"]);
        top_users_key(
            p.int("limit", 20, 1, MAX_LIMIT).unwrap(),
            p.choice("sort_by", &["total", "download", "upload"], "total")
                .unwrap(),
            p.int("minutes", 30, 1, MAX_MINUTES_SHORT).unwrap(),
        )
    }

    #[test]
    fn cache_keys_fill_in_defaults_and_tell_answers_apart() {
        // Absent, explicit-default and empty-choice queries are the same answer.
        assert_eq!(
            top_key(&[]),
            top_key(&[("limit", "20"), ("minutes", " 30")])
        );
        assert_eq!(top_key(&[]), top_key(&[("sort_by", "")]));
        assert_eq!(top_key(&[]), top_key(&[("sort_by", "TOTAL")]));
        let keys: std::collections::HashSet<String> = [
            top_key(&[]),
            top_key(&[("limit", "5")]),
            top_key(&[("sort_by", "upload")]),
            top_key(&[("sort_by", "download")]),
            top_key(&[("minutes", "60")]),
        ]
        .into_iter()
        .collect();
        assert_eq!(keys.len(), 5);
        assert_eq!(alerts_key(50.0, 30), {
            let p = params(&[("threshold", "50")], &["threshold"]);
            alerts_key(
                p.positive_number("threshold", 50.0, MAX_THRESHOLD_MBPS)
                    .unwrap(),
                30,
            )
        });
        assert_ne!(alerts_key(50.0, 30), alerts_key(50.5, 30));
        assert_ne!(alerts_key(50.0, 30), alerts_key(50.0, 31));
        let rt = |q: &[(&str, &str)]| {
            let p = params(q, &["username", "minutes", "device"]);
            real_time_key(
                p.text("username").unwrap().as_deref(),
                p.int("minutes", 60, 1, MAX_MINUTES_LONG).unwrap(),
                p.text("device").unwrap().as_deref(),
            )
        };
        assert_eq!(
            rt(&[]),
            rt(&[("minutes", "60"), ("username", " "), ("device", "")])
        );
        assert_ne!(rt(&[]), rt(&[("minutes", "61")]));
        assert_ne!(rt(&[("username", "a")]), rt(&[("device", "a")]));
    }

    /// A fleet reporting through the real ingest every 30 s for 200 minutes up to the wall
    /// clock (the index's ring follows it): 4 devices x 5 stations with uneven traffic and
    /// rates, one MAC roaming over two devices, one station leaving an hour ago, one joining
    /// 20 minutes ago; the store feeds `recent`.
    fn recent_fleet(
        recent: &std::sync::Arc<RecentStations>,
    ) -> (tempfile::TempDir, Connection, std::path::PathBuf) {
        use crate::store::testutil::{enrolled_router, open_temp};
        use crate::store::IngestItem;
        use routerstats_shared::model::{MacAddr, Report, Station, StationLinkStats};
        let (dir, mut store) = open_temp();
        store.set_recent_stations(recent.clone());
        // A collector started on an empty database: nothing to rebuild, complete from now on.
        recent.rebuild(store.connection(), now_ms()).unwrap();
        let ids: Vec<i64> = (0..4)
            .map(|r| enrolled_router(&mut store, &format!("ap-{r}")).id)
            .collect();
        let now = now_ms();
        let steps = 400u64;
        let mut seed = 11u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut counters = [[0u64; 2]; 20];
        for seq in 1..=steps {
            let mut reports = Vec::new();
            for (r, _) in ids.iter().enumerate() {
                let ts = now - i64::try_from(steps - seq).unwrap() * 30_000 - r as i64 * 1_700;
                let mut stations = Vec::new();
                for s in 0..5 {
                    let k = r * 5 + s;
                    let away = (k == 3 && seq > steps - 120) || (k == 7 && seq < steps - 40);
                    if away {
                        continue;
                    }
                    counters[k][0] += next(5_000_000) * (1 + k as u64 % 3);
                    counters[k][1] += next(800_000);
                    // Station 0 of device 1 is the roaming MAC of device 0's station 0.
                    let m = if k == 5 { 0 } else { k as u8 };
                    stations.push(Station {
                        mac: MacAddr([2, 0, 0, 0, 1, m]),
                        interface: "wlan0".into(),
                        connected_s: Some(seq * 30 + 5),
                        stats: StationLinkStats {
                            rx_bytes: Some(counters[k][1]),
                            tx_bytes: Some(counters[k][0]),
                            ..Default::default()
                        },
                        ..Default::default()
                    });
                }
                reports.push(Report {
                    seq,
                    boot_id: [3; 16],
                    timestamp_ms: u64::try_from(ts).unwrap(),
                    stations,
                    ..Default::default()
                });
            }
            let batch: Vec<IngestItem<'_>> = reports
                .iter()
                .zip(&ids)
                .map(|(report, &router_id)| IngestItem {
                    router_id,
                    received_at_ms: now,
                    report,
                })
                .collect();
            store.ingest(&batch).unwrap();
        }
        let path = store.path().to_path_buf();
        let conn = Connection::open(&path).unwrap();
        (dir, conn, path)
    }

    const WINDOWS: [i64; 11] = [1, 2, 5, 29, 30, 31, 60, 61, 119, 179, 180];

    /// Both paths of both routes, for every window of [`WINDOWS`].
    fn answers(
        c: &Connection,
        recent: &RecentStations,
        now: i64,
    ) -> Vec<(usize, Vec<MacTotal>, FleetWindow)> {
        WINDOWS
            .iter()
            .map(|&minutes| {
                let start = window_start(now, minutes);
                let (n, top) = top_macs(c, recent, start, now, "total", 100).unwrap();
                (n, top, fleet_window(c, recent, start, now).unwrap())
            })
            .collect()
    }

    #[test]
    fn the_index_answers_like_the_database_cold_warm_and_rebuilt() {
        let live = std::sync::Arc::new(RecentStations::new());
        let (_dir, c, _) = recent_fleet(&live);
        let now = now_ms();
        // Cold (a collector whose rebuild has not run yet): the database path.
        let from_db = answers(&c, &RecentStations::new(), now);
        // A rebuild from the database (a restart), then the live index marked complete.
        let rebuilt = RecentStations::new();
        let stats = rebuilt.rebuild(&c, now).unwrap();
        assert!(rebuilt.rebuilt() && stats.rows > 0, "{stats:?}");
        for (name, index) in [("live", &*live), ("rebuilt", &rebuilt)] {
            for minutes in WINDOWS {
                assert!(
                    index.serves(window_start(now, minutes), now),
                    "{name} {minutes}"
                );
            }
            let got = answers(&c, index, now);
            for (k, minutes) in WINDOWS.iter().enumerate() {
                assert_eq!(got[k], from_db[k], "{name}: {minutes} minutes");
            }
        }
        // The checks can fail: totals, several devices, peaks and both leavers are there.
        let (n, top, f) = &from_db[WINDOWS.len() - 1];
        assert_eq!(*n, 19, "20 stations, one MAC on two devices");
        assert!(top.iter().any(|m| m.routers.len() == 2));
        assert!(top.iter().all(|m| m.max_down.is_some_and(|p| p > 0)));
        assert_eq!(f.per_router.len(), 4);
        assert!(f.download > 0 && f.upload > 0);
        let (n, _, _) = &from_db[4];
        assert_eq!(*n, 18, "30 minutes: one left an hour ago");
        let (n, _, _) = &from_db[0];
        assert_eq!(*n, 18, "1 minute");
    }

    #[test]
    fn raw_rows_deleted_by_retention_limit_what_a_rebuild_serves() {
        let live = std::sync::Arc::new(RecentStations::new());
        let (_dir, c, _) = recent_fleet(&live);
        let now = now_ms();
        // As if raw retention had deleted everything older than 100 minutes.
        c.execute(
            "DELETE FROM station_samples WHERE ts_ms < ?1",
            [now - 100 * 60_000],
        )
        .unwrap();
        let rebuilt = RecentStations::new();
        rebuilt.rebuild(&c, now).unwrap();
        assert!(rebuilt.serves(window_start(now, 60), now));
        assert!(!rebuilt.serves(window_start(now, 120), now));
        let with = answers(&c, &rebuilt, now);
        let cold = answers(&c, &RecentStations::new(), now);
        assert_eq!(with, cold, "the database path where the rows are missing");
    }
}
