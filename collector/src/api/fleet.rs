//! The fleet read model: what the route groups read about each enrolled router, and when a
//! router counts as online. One home for every route group (monitor, gateway, dashboard,
//! OpenWrt stats, ISP, WireGuard) instead of a copy per group.
//!
//! One row, read two ways:
//! - [`RouterInfo`] ([`load_routers_of`], [`find_router`]): identity, last seen, revocation and the
//!   estimated report interval; monitor, gateway, OpenWrt stats and (through its own query) the
//!   dashboard.
//! - [`RouterFacts`] ([`load_router_facts`], [`router_facts_by_name`]): the same [`RouterInfo`]
//!   plus the facts of the newest report (CPU, memory, stations); the ISP routes.
//!
//! Two online rules, side by side, because two contracts define them differently:
//! - [`is_online`]: heard from within `max(3 x the router's report interval, 90 s)`. The
//!   RouterOS-style monitor, the gateway manager and the dashboard say "online" for a router
//!   that keeps its own rhythm, so a router reporting every 5 minutes is not flapping, while a
//!   30-second router is offline after 90 s.
//! - [`is_connected`]: heard from within a fixed 5 minutes. The ISP middleware's contract
//!   (docs/api/isp.md) defines "connected" that way, whatever the router's interval.
//!
//! Active probes and WAN addresses (agents since report model 3): [`probe_figures`] sums the
//! `probe_samples` of a window (the ISP routes' `latency_ms`/`packet_loss_percent`, gateway
//! WAN health, the dashboard), [`wan_addresses`] reads the current `wan_addresses`.
//!
//! The CLI's `routers` table reads `store::RouterRow` (certificates, enrollment), not these.

use rusqlite::{Connection, OptionalExtension};

use super::readpool::db_err;
use super::ApiError;

/// A router counts as online for at least this long after its latest report.
pub const ONLINE_FLOOR_MS: i64 = 90_000;
/// ... or for this many report intervals, when that is longer.
pub const ONLINE_INTERVALS: i64 = 3;
/// A router whose last report arrived within this window counts as connected ([`is_connected`]).
pub const ONLINE_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Whether a router whose latest report arrived at `last_seen_ms` counts as online at `now_ms`:
/// within `max(3 x interval, 90 s)`, where `interval_ms` is its estimated report interval.
pub fn is_online(now_ms: i64, last_seen_ms: Option<i64>, interval_ms: Option<i64>) -> bool {
    let Some(seen) = last_seen_ms else {
        return false;
    };
    let by_interval = interval_ms
        .filter(|i| *i > 0)
        .map(|i| i.saturating_mul(ONLINE_INTERVALS))
        .unwrap_or(0);
    now_ms.saturating_sub(seen) <= by_interval.max(ONLINE_FLOOR_MS)
}

/// Whether a router whose latest report arrived at `last_seen_ms` counts as connected at
/// `now_ms`: within [`ONLINE_WINDOW_MS`] (5 minutes), whatever its report interval.
pub fn is_connected(now_ms: i64, last_seen_ms: Option<i64>) -> bool {
    last_seen_ms.is_some_and(|t| t >= now_ms.saturating_sub(ONLINE_WINDOW_MS))
}

/// One router with what the fleet routes show about it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterInfo {
    pub id: i64,
    pub name: String,
    pub site: Option<String>,
    pub hostname: String,
    pub model: Option<String>,
    pub release: Option<String>,
    pub agent_version: Option<String>,
    /// Collector time of the latest report.
    pub last_seen_ms: Option<i64>,
    /// Agent time of the latest (newest) report: the `ts_ms` of its samples.
    pub last_report_ms: Option<i64>,
    pub last_report_id: Option<i64>,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    pub uptime_s: Option<i64>,
    /// Agent time between its two latest reports.
    pub interval_ms: Option<i64>,
}

impl RouterInfo {
    /// `online`, `offline`, `revoked` or `never_reported`.
    pub fn status(&self, now_ms: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.last_seen_ms.is_none() {
            "never_reported"
        } else if is_online(now_ms, self.last_seen_ms, self.interval_ms) {
            "online"
        } else {
            "offline"
        }
    }

    pub fn online(&self, now_ms: i64) -> bool {
        self.status(now_ms) == "online"
    }
}

/// The columns of [`RouterInfo`] (`r`: `routers`); the interval comes from the
/// `reports_router_ts` index, or when the report before the newest is no longer a row (the
/// router was silent for longer than the hot window), from the router's latest sealed
/// `reports` block (`tbl` 6, `store::sealed::REPORTS_TBL`) through `reports_all`.
macro_rules! router_info_columns {
    () => {
        "r.id, r.name, r.site, r.hostname, r.model, r.release, r.agent_version, \
     r.last_seen_ms, r.last_report_ms, r.last_report_id, r.revoked_at, r.uptime_s, \
     r.last_report_ms - coalesce((SELECT p.ts_ms FROM reports p WHERE p.router_id = r.id AND p.ts_ms < r.last_report_ms \
                         ORDER BY p.ts_ms DESC LIMIT 1), \
       (SELECT max(a.ts_ms) FROM reports_all a WHERE a.router_id = r.id AND a.ts_ms < r.last_report_ms \
        AND a.ts_ms >= (SELECT max(b.hour_ms) FROM raw_blocks b WHERE b.router_id = r.id AND b.tbl = 6 \
                        AND b.hour_ms < r.last_report_ms)))"
    };
}

/// [`RouterInfo`] rows.
pub(crate) const ROUTER_INFO_SQL: &str =
    concat!("SELECT ", router_info_columns!(), " FROM routers r");

fn router_info_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RouterInfo> {
    Ok(RouterInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        site: r.get(2)?,
        hostname: r.get(3)?,
        model: r.get(4)?,
        release: r.get(5)?,
        agent_version: r.get(6)?,
        last_seen_ms: r.get(7)?,
        last_report_ms: r.get(8)?,
        last_report_id: r.get(9)?,
        revoked_at: r.get(10)?,
        uptime_s: r.get(11)?,
        interval_ms: r.get(12)?,
    })
}

/// Every router, by name (tests; the routes read a page of routers: [`load_routers_of`]).
#[cfg(test)]
pub fn load_routers(conn: &Connection) -> Result<Vec<RouterInfo>, ApiError> {
    let sql = format!("{ROUTER_INFO_SQL} ORDER BY r.name");
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = st.query_map([], router_info_from_row).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// The routers of one page (`after < id <= last`, see `super::paging`), by name.
pub fn load_routers_of(
    conn: &Connection,
    page: &super::paging::PageBounds,
) -> Result<Vec<RouterInfo>, ApiError> {
    let sql = format!("{ROUTER_INFO_SQL} WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.name");
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = st
        .query_map([page.after, page.last], router_info_from_row)
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// A router by numeric id (when one has that id) or else by name (case-insensitive).
pub fn find_router(conn: &Connection, id_or_name: &str) -> Result<Option<RouterInfo>, ApiError> {
    if let Ok(id) = id_or_name.parse::<i64>() {
        let sql = format!("{ROUTER_INFO_SQL} WHERE r.id = ?1");
        let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = st.query_map([id], router_info_from_row).map_err(db_err)?;
        if let Some(row) = rows.next() {
            return row.map(Some).map_err(db_err);
        }
    }
    let sql = format!("{ROUTER_INFO_SQL} WHERE r.name = ?1");
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st
        .query_map([id_or_name], router_info_from_row)
        .map_err(db_err)?;
    rows.next().transpose().map_err(db_err)
}

/// One enrolled router with the facts of its newest report (the ISP routes' row): a
/// [`RouterInfo`] (its fields read through `Deref`) plus CPU, memory and stations.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterFacts {
    pub router: RouterInfo,
    pub cpu_permille: Option<i64>,
    pub mem_total_kb: Option<i64>,
    pub mem_available_kb: Option<i64>,
    /// Stations in the newest report.
    pub station_count: Option<i64>,
}

impl std::ops::Deref for RouterFacts {
    type Target = RouterInfo;

    fn deref(&self) -> &RouterInfo {
        &self.router
    }
}

impl RouterFacts {
    /// Not revoked and [`is_connected`].
    pub fn connected(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && is_connected(now_ms, self.last_seen_ms)
    }
}

/// [`RouterFacts`] rows (`n`: the newest report).
pub(crate) const ROUTER_FACTS_SQL: &str = concat!(
    "SELECT ",
    router_info_columns!(),
    ", n.cpu_permille, n.mem_total_kb, n.mem_available_kb, n.station_count \
     FROM routers r LEFT JOIN reports n ON n.id = r.last_report_id"
);

fn router_facts_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RouterFacts> {
    Ok(RouterFacts {
        router: router_info_from_row(r)?,
        cpu_permille: r.get(13)?,
        mem_total_kb: r.get(14)?,
        mem_available_kb: r.get(15)?,
        station_count: r.get(16)?,
    })
}

/// Every enrolled router with its newest report's facts, by name.
pub fn load_router_facts(conn: &Connection) -> rusqlite::Result<Vec<RouterFacts>> {
    let mut st = conn.prepare_cached(&format!("{ROUTER_FACTS_SQL} ORDER BY r.name"))?;
    let rows = st.query_map([], router_facts_from_row)?;
    rows.collect()
}

/// The routers with `after < id <= last` (one page of `paging::bounds`), by name.
pub fn load_router_facts_in(
    conn: &Connection,
    after: i64,
    last: i64,
) -> rusqlite::Result<Vec<RouterFacts>> {
    let mut st = conn.prepare_cached(&format!(
        "{ROUTER_FACTS_SQL} WHERE r.id > ?1 AND r.id <= ?2 ORDER BY r.name"
    ))?;
    let rows = st.query_map(rusqlite::params![after, last], router_facts_from_row)?;
    rows.collect()
}

/// The router with this id with its newest report's facts (None: no such router).
pub fn router_facts_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<RouterFacts>> {
    let mut st = conn.prepare_cached(&format!("{ROUTER_FACTS_SQL} WHERE r.id = ?1"))?;
    st.query_row([id], router_facts_from_row).optional()
}

/// The router called `name` (case-insensitive) with its newest report's facts.
pub fn router_facts_by_name(
    conn: &Connection,
    name: &str,
) -> rusqlite::Result<Option<RouterFacts>> {
    let mut st = conn.prepare_cached(&format!("{ROUTER_FACTS_SQL} WHERE r.name = ?1"))?;
    st.query_row([name], router_facts_from_row).optional()
}

/// Active-probe figures of a window: every probed target (gateways and configured targets).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbeFigures {
    /// Echo requests sent and replies received.
    pub sent: i64,
    pub received: i64,
    /// Mean round-trip time of the replies, milliseconds (each cycle's average weighted by its
    /// replies); None without replies.
    pub latency_ms: Option<f64>,
    /// Largest round-trip time seen, milliseconds.
    pub max_latency_ms: Option<f64>,
}

impl ProbeFigures {
    /// Lost share of the requests, percent, two decimals; None when nothing was sent.
    pub fn loss_percent(&self) -> Option<f64> {
        (self.sent > 0).then(|| {
            let lost = (self.sent - self.received.min(self.sent)) as f64;
            (lost * 10_000.0 / self.sent as f64).round() / 100.0
        })
    }
}

/// The sums `probe_figures` and `probe_buckets` select, after their group key.
const PROBE_SUMS: &str = "sum(sent), sum(received), \
     sum(rtt_avg_us * received) * 1.0 / nullif(sum(CASE WHEN rtt_avg_us IS NOT NULL THEN received END), 0), \
     max(rtt_max_us)";

fn probe_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, ProbeFigures)> {
    let us_to_ms = |v: Option<f64>| v.map(|v| (v / 10.0).round() / 100.0);
    Ok((
        r.get::<_, i64>(0)?,
        ProbeFigures {
            sent: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            received: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
            latency_ms: us_to_ms(r.get(3)?),
            max_latency_ms: us_to_ms(r.get::<_, Option<i64>>(4)?.map(|v| v as f64)),
        },
    ))
}

/// Probe figures per router over `[start_ms, end_ms)`; `router` limits it to one router.
/// Routers without probe samples in the window are absent.
pub fn probe_figures(
    conn: &Connection,
    router: Option<i64>,
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<std::collections::HashMap<i64, ProbeFigures>> {
    // One router: `router_id = ?3` reaches `probe_samples_all` as a constraint, so it reads that
    // router's rows and blocks only (an `(?3 IS NULL OR router_id = ?3)` filter would not, and
    // the virtual table would read every router's); when the window touches none of its sealed
    // hours, the row table alone (SQLite sums a primary-key range, nothing is materialized).
    // The check and the read see the same sealed state (`read_snapshot`).
    let _snapshot = crate::store::sealed::read_snapshot(conn)?;
    let (filter, src) = match router {
        Some(id) => (
            "router_id = ?3",
            crate::store::sealed::router_source(
                conn,
                "probe_samples",
                id,
                start_ms,
                end_ms.saturating_sub(1),
            )?,
        ),
        None => ("?3 IS NULL", "probe_samples_all".into()),
    };
    let sql = format!(
        "SELECT router_id, {PROBE_SUMS} FROM {src} \
         WHERE ts_ms >= ?1 AND ts_ms < ?2 AND {filter} GROUP BY router_id"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(rusqlite::params![start_ms, end_ms, router], probe_row)?;
    rows.collect()
}

/// [`probe_figures`] of the routers with `after < id <= last` (one page of routers, see
/// `super::paging`, or one router as `(id - 1, id)`): the probe rollups of the window's whole
/// hours and 5-minute buckets and the raw rows of its partial buckets (and of any part before
/// the rollups are complete), so the cost does not grow with the window
/// (`store::probe_rollup::window_probe_sums`). Same figures as the raw rows give.
pub fn probe_figures_of(
    conn: &Connection,
    ids: (i64, i64),
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<std::collections::HashMap<i64, ProbeFigures>> {
    // The rollups, the start mark and the raw rows (and blocks) are read in one state.
    let _snapshot = crate::store::sealed::read_snapshot(conn)?;
    let sums = crate::store::probe_rollup::window_probe_sums(conn, ids, start_ms, end_ms)?;
    Ok(sums
        .into_iter()
        .map(|(id, s)| (id, ProbeFigures::from_sums(&s)))
        .collect())
}

impl ProbeFigures {
    /// The figures of some probe rows' sums, as [`PROBE_SUMS`] computes them in SQL (the same
    /// floating-point operations: the weighted sum over the replies, then microseconds to
    /// milliseconds with two decimals).
    pub fn from_sums(s: &crate::store::probe_rollup::ProbeSums) -> ProbeFigures {
        let us_to_ms = |v: f64| (v / 10.0).round() / 100.0;
        ProbeFigures {
            sent: s.sent,
            received: s.received,
            latency_ms: (s.rtt_received != 0)
                .then(|| us_to_ms(s.rtt_weighted as f64 / s.rtt_received as f64)),
            max_latency_ms: s.rtt_max_us.map(|v| us_to_ms(v as f64)),
        }
    }
}

/// Probe figures of one router (or the whole fleet) per period of `step_ms` from `start_ms`,
/// keyed by the period's start; periods without samples are absent.
pub fn probe_buckets(
    conn: &Connection,
    router: Option<i64>,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> rusqlite::Result<std::collections::HashMap<i64, ProbeFigures>> {
    // The whole fleet from its per-second sums (`fleet_totals_1s`, one row per second of
    // report time instead of one per router and target): each second counts at its start, so
    // `start_ms` and `step_ms` should be whole seconds, and the last second is read whole.
    let sql = match router {
        Some(_) => format!(
            "SELECT ?1 + (ts_ms - ?1) / ?4 * ?4, {PROBE_SUMS} FROM probe_samples_all \
             WHERE ts_ms >= ?1 AND ts_ms < ?2 AND router_id = ?3 GROUP BY 1"
        ),
        None => "SELECT ?1 + (second * 1000 - ?1) / ?4 * ?4, sum(probe_sent), sum(probe_received), \
             sum(probe_rtt_weighted) * 1.0 / nullif(sum(probe_rtt_received), 0), max(probe_rtt_max_us) \
             FROM fleet_totals_1s WHERE second >= (?1 + 999) / 1000 AND second < (?2 + 999) / 1000 \
             AND probes > 0 AND ?3 IS NULL GROUP BY 1"
            .to_string(),
    };
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(
        rusqlite::params![start_ms, end_ms, router, step_ms.max(1)],
        probe_row,
    )?;
    rows.collect()
}

/// One probed target of a router and its figures over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFigures {
    pub target: String,
    /// `gateway` or `target`.
    pub role: String,
    /// The configured name, or the gateway route's device.
    pub name: String,
    pub figures: ProbeFigures,
}

/// Probe figures of one router per target over `[start_ms, end_ms)`, gateways first.
pub fn probe_targets(
    conn: &Connection,
    router: i64,
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<Vec<TargetFigures>> {
    let sql = format!(
        "SELECT 0, {PROBE_SUMS}, target, role, max(name) FROM probe_samples_all \
         WHERE router_id = ?3 AND ts_ms >= ?1 AND ts_ms < ?2 GROUP BY target, role ORDER BY role, target"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(rusqlite::params![start_ms, end_ms, router], |r| {
        Ok(TargetFigures {
            target: r.get(5)?,
            role: r.get(6)?,
            name: r.get(7)?,
            figures: probe_row(r)?.1,
        })
    })?;
    rows.collect()
}

/// What a rate series shows of a router's link: its probe figures per period and its WAN IPv4
/// address (the ISP routes' `latency_ms`, `packet_loss_percent`, `nas_ip`).
#[derive(Debug, Default)]
pub struct LinkSeries {
    pub by_period: std::collections::HashMap<i64, ProbeFigures>,
    pub nas_ip: Option<String>,
}

impl LinkSeries {
    /// The figures of the period starting at `t`.
    pub fn at(&self, t: i64) -> Option<&ProbeFigures> {
        self.by_period.get(&t)
    }
}

/// [`LinkSeries`] of one router (the fleet's probes and no address when None) for a series
/// of `step_ms` periods from `start_ms`; hour steps are aligned to the hour as rollups are.
pub fn probes_for_series(
    conn: &Connection,
    router: Option<i64>,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> rusqlite::Result<LinkSeries> {
    const HOUR_MS: i64 = 3_600_000;
    let origin = if step_ms == HOUR_MS {
        start_ms - start_ms.rem_euclid(HOUR_MS)
    } else {
        start_ms
    };
    let by_period = probe_buckets(conn, router, origin, end_ms, step_ms)?;
    let nas_ip = match router {
        Some(id) => wan_addresses(conn, Some(id))?
            .remove(&id)
            .and_then(|v| v.into_iter().find(WanAddr::is_ipv4))
            .map(|a| a.ip().to_string()),
        None => None,
    };
    Ok(LinkSeries { by_period, nas_ip })
}

/// One WAN address of a router (current state from its newest report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanAddr {
    pub device: String,
    /// `address/prefix`.
    pub addr: String,
}

impl WanAddr {
    /// The address without its prefix.
    pub fn ip(&self) -> &str {
        self.addr.split('/').next().unwrap_or(&self.addr)
    }

    pub fn is_ipv4(&self) -> bool {
        !self.addr.contains(':')
    }
}

/// The WAN addresses of every router (or one), IPv4 first, by device.
pub fn wan_addresses(
    conn: &Connection,
    router: Option<i64>,
) -> rusqlite::Result<std::collections::HashMap<i64, Vec<WanAddr>>> {
    match router {
        Some(id) => wan_addresses_of(conn, (id.saturating_sub(1), id)),
        None => wan_addresses_of(conn, (i64::MIN, i64::MAX)),
    }
}

/// [`wan_addresses`] of the routers with `after < id <= last` (one primary-key range).
pub fn wan_addresses_of(
    conn: &Connection,
    (after, last): (i64, i64),
) -> rusqlite::Result<std::collections::HashMap<i64, Vec<WanAddr>>> {
    let mut st = conn.prepare_cached(
        "SELECT router_id, device, addr FROM wan_addresses WHERE router_id > ?1 AND router_id <= ?2 \
         ORDER BY router_id, instr(addr, ':') > 0, device, addr",
    )?;
    let mut out: std::collections::HashMap<i64, Vec<WanAddr>> = std::collections::HashMap::new();
    let rows = st.query_map([after, last], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            WanAddr {
                device: r.get(1)?,
                addr: r.get(2)?,
            },
        ))
    })?;
    for row in rows {
        let (id, a) = row?;
        out.entry(id).or_default().push(a);
    }
    Ok(out)
}
