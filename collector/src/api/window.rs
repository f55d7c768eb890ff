//! Windows and their traffic sums: one home for the `duration` windows of the gateway routes
//! and the dashboard, their bounds, and the ONE function that sums interface traffic over a
//! window ([`window_sums`]). `/api/gateways` ([`window_totals`]) and the dashboard's WAN and
//! per-interface figures both read it, so they show the same numbers for the same bounds.
//!
//! A window's traffic is the sum of the interface counter deltas of its samples. Short windows
//! (15m, 1h) read raw samples at their partial 5-minute edges and the 5-minute rollup in between
//! (which holds exactly the sums of its samples); 1d reads 5-minute buckets at its partial-hour
//! edges and 1-hour buckets in between; 7d reads 1-hour buckets. A rollup bucket counts when it
//! starts inside the window.
//!
//! Bounds: the gateway routes use [`window_bounds`] (`[end - duration, end]`, `end` = now
//! rounded up to a whole second); the dashboard uses [`open_bounds`] (`[now - duration, ..)`,
//! no end), as each did before the two shared this module.
//!
//! The ISP routes' windows (`minutes`/`hours` of station traffic) are sums of station counters:
//! `isp::station_totals`.

use std::collections::HashMap;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::monitor::to_u64;
use super::readpool::db_err;
use super::ApiError;
use crate::store::{BUCKET_1H_MS, BUCKET_5M_MS};

/// Points of a traffic series.
pub const POINTS: usize = 20;

/// A statistics window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Window {
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "1d")]
    D1,
    #[serde(rename = "7d")]
    D7,
}

/// Where a window's data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Raw,
    Rollup5m,
    Rollup1h,
}

impl Window {
    pub const ALL: [Window; 4] = [Window::M15, Window::H1, Window::D1, Window::D7];

    /// The window named `s` (`15m`, `1h`, `1d` or `7d`, surrounding white space ignored).
    pub fn named(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == s.trim())
    }

    /// Parses `15m`, `1h`, `1d` or `7d`; anything else is a 400.
    /// The `duration` parameter's schema: one of the window names.
    pub fn schema() -> utoipa::openapi::Object {
        super::openapi::string_enum(&["15m", "1h", "1d", "7d"])
    }

    /// Like [`Window::schema`], also allowing `""` (the default), as [`parse_duration`] does.
    pub fn schema_or_empty() -> utoipa::openapi::Object {
        super::openapi::string_enum(&["", "15m", "1h", "1d", "7d"])
    }

    pub fn parse(s: &str) -> Result<Window, ApiError> {
        Window::named(s)
            .ok_or_else(|| ApiError::bad_request("duration must be one of 15m, 1h, 1d, 7d"))
    }

    /// `duration` query value: None is `default`.
    pub(crate) fn from_query(v: Option<&str>, default: Window) -> Result<Window, ApiError> {
        v.map(Window::parse).unwrap_or(Ok(default))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::M15 => "15m",
            Window::H1 => "1h",
            Window::D1 => "1d",
            Window::D7 => "7d",
        }
    }

    pub fn duration_ms(self) -> i64 {
        match self {
            Window::M15 => 15 * 60 * 1000,
            Window::H1 => 60 * 60 * 1000,
            Window::D1 => 24 * 60 * 60 * 1000,
            Window::D7 => 7 * 24 * 60 * 60 * 1000,
        }
    }

    /// `duration / 20`: 45 s, 180 s, 4320 s, 30240 s.
    pub fn interval_ms(self) -> i64 {
        self.duration_ms() / POINTS as i64
    }

    /// Whether the window is summed from a rollup (5-minute for 1d, 1-hour for 7d) rather than
    /// raw samples.
    pub fn uses_rollup(self) -> bool {
        self.source() != Source::Raw
    }

    pub(crate) fn source(self) -> Source {
        match self {
            Window::M15 | Window::H1 => Source::Raw,
            Window::D1 => Source::Rollup5m,
            Window::D7 => Source::Rollup1h,
        }
    }
}

/// The window `[end - duration, end]`, `end` being `now_ms` rounded up to a whole second (so
/// the newest sample is always inside).
pub fn window_bounds(window: Window, now_ms: i64) -> (i64, i64) {
    let secs = now_ms
        .div_euclid(1000)
        .saturating_add(i64::from(now_ms.rem_euclid(1000) != 0));
    let end = secs.saturating_mul(1000);
    (end.saturating_sub(window.duration_ms()), end)
}

/// The `duration` of `/api/fleet` and `/api/routers/{id}`: `15m`, `1h`, `1d` or `7d` (absent or
/// empty: `1h`); anything else is a 400.
pub fn parse_duration(s: Option<&str>) -> Result<Window, ApiError> {
    match s.map(str::trim) {
        None | Some("") => Ok(Window::H1),
        Some(other) => Window::named(other).ok_or_else(|| {
            ApiError::bad_request(format!(
                "duration must be one of 15m, 1h, 1d, 7d (got {:?})",
                other.chars().take(20).collect::<String>()
            ))
        }),
    }
}

/// The dashboard's window `[now - duration, i64::MAX]`: from the exact millisecond, no end (a
/// sample stamped after now by a router's fast clock counts).
pub fn open_bounds(window: Window, now_ms: i64) -> (i64, i64) {
    (now_ms.saturating_sub(window.duration_ms()), i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Sums
// ---------------------------------------------------------------------------------------------

/// Raw deltas in `[?1, ?2]`: one primary-key range per router. Summed in Rust (a GROUP BY
/// here would sort every sample).
pub(crate) const RAW_ROWS_SQL: &str = "SELECT s.router_id, s.name, s.rx_delta, s.tx_delta \
     FROM routers r CROSS JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms BETWEEN ?1 AND ?2";

/// One router's raw deltas in `[?1, ?2]` (its primary-key range).
pub(crate) const RAW_ROUTER_ROWS_SQL: &str = "SELECT s.router_id, s.name, s.rx_delta, s.tx_delta \
     FROM routers r CROSS JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms BETWEEN ?1 AND ?2 \
     WHERE r.id = ?3";

/// One port's raw deltas in `[?3, ?4]` (index `interface_samples_key`).
pub(crate) const RAW_PORT_ROWS_SQL: &str =
    "SELECT router_id, name, rx_delta, tx_delta FROM interface_samples \
     WHERE router_id = ?1 AND name = ?2 AND ts_ms BETWEEN ?3 AND ?4";

/// Every router's rollup rows with `bucket_start_ms` in `[?1, ?2]` (primary-key range).
pub(crate) const ROLLUP_RANGE_SQL: &str =
    "SELECT router_id, name, rx_bytes, tx_bytes FROM {table} WHERE bucket_start_ms BETWEEN ?1 AND ?2";

/// The (router, name) of every current port: the interfaces of its newest report, `lo` excluded.
pub(crate) const PORT_KEYS_SQL: &str = "SELECT r.id, s.name \
     FROM routers r CROSS JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms = r.last_report_ms \
     WHERE s.name <> 'lo' AND s.kind <> 'loopback'";

/// One port's rollup bucket count and sums: 5-minute buckets starting in `[?3, ?4]` and `[?7, ?8]`, 1-hour
/// buckets starting in `[?5, ?6]` (primary-key ranges; an empty range is `lo > hi`).
pub(crate) const ROLLUP_PORT_SUM_SQL: &str =
    "SELECT count(*), coalesce(sum(rx), 0), coalesce(sum(tx), 0) FROM ( \
     SELECT rx_bytes AS rx, tx_bytes AS tx FROM interface_rollup_5m \
       WHERE router_id = ?1 AND name = ?2 AND bucket_start_ms BETWEEN ?3 AND ?4 \
     UNION ALL SELECT rx_bytes, tx_bytes FROM interface_rollup_1h \
       WHERE router_id = ?1 AND name = ?2 AND bucket_start_ms BETWEEN ?5 AND ?6 \
     UNION ALL SELECT rx_bytes, tx_bytes FROM interface_rollup_5m \
       WHERE router_id = ?1 AND name = ?2 AND bucket_start_ms BETWEEN ?7 AND ?8)";

/// Which interfaces a sum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SumScope<'a> {
    /// Every interface of every router.
    Fleet,
    /// The routers named, only the one interface named for each (the queries of `Routers`
    /// over the id range the map covers, rows of other interfaces skipped before their values
    /// are read).
    FleetPorts(&'a HashMap<i64, String>),
    /// Every interface of the routers with `after < id <= last` (one page, see
    /// `super::paging`): the queries of `Fleet`, each bucket's rows one key range.
    Routers(i64, i64),
    /// One router: every interface with samples (raw windows) or its current ports (rollup
    /// windows).
    Router(i64),
    /// One interface of one router.
    Port(i64, &'a str),
}

/// One interface's traffic over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowSum {
    /// Bytes received (sum of the known deltas; 0 when none is known).
    pub rx: u64,
    /// Bytes sent.
    pub tx: u64,
    /// A raw delta was known, or a rollup bucket held a non-zero sum.
    pub rx_known: bool,
    pub tx_known: bool,
    /// Some part came from rollup buckets.
    pub buckets: bool,
}

impl SumScope<'_> {
    /// Whether the scope reads the whole fleet (one range query per table).
    fn is_fleet(&self) -> bool {
        matches!(
            self,
            SumScope::Fleet | SumScope::FleetPorts(_) | SumScope::Routers(..)
        )
    }

    /// The router id range `(after, last]` a fleet-like scope reads (None: every router).
    fn ids(&self) -> Option<(i64, i64)> {
        match self {
            SumScope::Routers(after, last) => Some((*after, *last)),
            SumScope::FleetPorts(ports) => Some(match (ports.keys().min(), ports.keys().max()) {
                (Some(lo), Some(hi)) => (lo.saturating_sub(1), *hi),
                _ => (0, 0),
            }),
            _ => None,
        }
    }

    /// The one interface per router that `FleetPorts` keeps.
    fn only(&self) -> Option<&HashMap<i64, String>> {
        match self {
            SumScope::FleetPorts(ports) => Some(ports),
            _ => None,
        }
    }
}

impl WindowSum {
    /// The sums, None for a direction without any known delta (rollup windows: Some whenever
    /// a bucket exists). A raw window summed partly from 5-minute buckets cannot tell a bucket
    /// of unknown deltas from one of zero bytes: read it again with [`SumScope::Port`] when
    /// `buckets` is set and a direction is not known.
    pub fn known(&self, window: Window) -> (Option<u64>, Option<u64>) {
        if window.uses_rollup() {
            (Some(self.rx), Some(self.tx))
        } else {
            (
                self.rx_known.then_some(self.rx),
                self.tx_known.then_some(self.tx),
            )
        }
    }
}

/// Sums per router, each router's interfaces in a short list (a router has few): rows arrive
/// router by router or bucket by bucket, and this avoids allocating a key per row.
#[derive(Debug, Default)]
struct RouterSums(HashMap<i64, Vec<(String, WindowSum)>>);

impl RouterSums {
    fn add(&mut self, id: i64, name: &str, rx: Option<i64>, tx: Option<i64>, bucket: bool) {
        let list = self.0.entry(id).or_default();
        let e = match list.iter().position(|(n, _)| n == name) {
            Some(i) => &mut list[i].1,
            None => {
                list.push((name.to_string(), WindowSum::default()));
                &mut list.last_mut().expect("just pushed").1
            }
        };
        e.rx = e.rx.saturating_add(rx.map_or(0, to_u64));
        e.tx = e.tx.saturating_add(tx.map_or(0, to_u64));
        e.buckets |= bucket;
        // A bucket's sum of 0 may be a bucket of unknown deltas.
        e.rx_known |= rx.is_some() && (!bucket || rx != Some(0));
        e.tx_known |= tx.is_some() && (!bucket || tx != Some(0));
    }

    /// Adds every row of `st` (columns router id, name, rx, tx; rx and tx may be NULL).
    fn add_rows(
        &mut self,
        st: &mut rusqlite::CachedStatement<'_>,
        params: impl rusqlite::Params,
        bucket: bool,
        only: Option<&HashMap<i64, String>>,
    ) -> Result<(), ApiError> {
        let mut rows = st.query(params).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let id: i64 = r.get(0).map_err(db_err)?;
            let name = r
                .get_ref(1)
                .and_then(|v| v.as_str().map_err(Into::into))
                .map_err(db_err)?;
            if only.is_some_and(|o| o.get(&id).map(String::as_str) != Some(name)) {
                continue;
            }
            let rx = r.get::<_, Option<i64>>(2).map_err(db_err)?;
            let tx = r.get::<_, Option<i64>>(3).map_err(db_err)?;
            self.add(id, name, rx, tx, bucket);
        }
        Ok(())
    }

    fn into_sums(self, acc: &mut Sums) {
        for (id, list) in self.0 {
            for (name, s) in list {
                let e = acc.entry((id, name)).or_default();
                e.rx = e.rx.saturating_add(s.rx);
                e.tx = e.tx.saturating_add(s.tx);
                e.rx_known |= s.rx_known;
                e.tx_known |= s.tx_known;
                e.buckets |= s.buckets;
            }
        }
    }
}

/// (router id, interface) -> its traffic in a window.
pub type Sums = HashMap<(i64, String), WindowSum>;

/// (router id, interface) -> (rx bytes, tx bytes) in a window, unknown as 0.
pub type Totals = HashMap<(i64, String), (u64, u64)>;

/// Adds the raw deltas in `[lo, hi]` (of every router, one router or one port) into `acc`.
fn add_raw_sums(
    conn: &Connection,
    lo: i64,
    hi: i64,
    scope: SumScope<'_>,
    acc: &mut Sums,
) -> Result<(), ApiError> {
    if lo > hi {
        return Ok(());
    }
    let mut sums = RouterSums::default();
    match scope {
        SumScope::Fleet => {
            let mut st = conn.prepare_cached(RAW_ROWS_SQL).map_err(db_err)?;
            sums.add_rows(&mut st, params![lo, hi], false, None)?;
        }
        SumScope::FleetPorts(_) | SumScope::Routers(..) => {
            let (after, last) = scope.ids().unwrap_or((0, 0));
            let sql = format!("{RAW_ROWS_SQL} WHERE r.id > ?3 AND r.id <= ?4");
            let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
            sums.add_rows(&mut st, params![lo, hi, after, last], false, scope.only())?;
        }
        SumScope::Router(id) => {
            let mut st = conn.prepare_cached(RAW_ROUTER_ROWS_SQL).map_err(db_err)?;
            sums.add_rows(&mut st, params![lo, hi, id], false, None)?;
        }
        SumScope::Port(id, name) => {
            let mut st = conn.prepare_cached(RAW_PORT_ROWS_SQL).map_err(db_err)?;
            sums.add_rows(&mut st, params![id, name, lo, hi], false, None)?;
        }
    }
    sums.into_sums(acc);
    Ok(())
}

/// Adds the rollup rows of the scope's routers with `bucket_start_ms` in `[lo, hi]` of `table`
/// into `acc`: every router: one primary-key range (the rollups are clustered by bucket); an
/// id range ([`SumScope::ids`]): one primary-key range per bucket ([`ROLLUP_IDS_SQL`]), so a
/// page of routers reads its own rows only.
fn add_rollup_range(
    conn: &Connection,
    table: &str,
    lo: i64,
    hi: i64,
    scope: SumScope<'_>,
    acc: &mut RouterSums,
) -> Result<(), ApiError> {
    if lo > hi {
        return Ok(());
    }
    let Some((after, last)) = scope.ids() else {
        let mut st = conn
            .prepare_cached(&ROLLUP_RANGE_SQL.replace("{table}", table))
            .map_err(db_err)?;
        return acc.add_rows(&mut st, params![lo, hi], true, None);
    };
    // Buckets start at whole multiples of their length.
    let len = if table.ends_with("_1h") {
        BUCKET_1H_MS
    } else {
        BUCKET_5M_MS
    };
    // The newest bucket bounds the walk (an open window ends at i64::MAX).
    let newest: Option<i64> = conn
        .prepare_cached(&format!("SELECT max(bucket_start_ms) FROM {table}"))
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(db_err)?;
    let Some(hi) = newest.map(|n| n.min(hi)) else {
        return Ok(());
    };
    let first = ceil_to(lo, len);
    if first > hi {
        return Ok(());
    }
    let mut st = conn
        .prepare_cached(&ROLLUP_IDS_SQL.replace("{table}", table))
        .map_err(db_err)?;
    acc.add_rows(
        &mut st,
        params![first, hi, after, last, len],
        true,
        scope.only(),
    )
}

/// The rollup rows of the buckets starting at ?1, ?1 + ?5, ... up to ?2, of the routers with
/// `?3 < router_id <= ?4`: one primary-key range `(bucket_start_ms, router_id)` per bucket.
pub(crate) const ROLLUP_IDS_SQL: &str =
    "WITH RECURSIVE b(t) AS (SELECT ?1 UNION ALL SELECT t + ?5 FROM b WHERE t + ?5 <= ?2) \
     SELECT x.router_id, x.name, x.rx_bytes, x.tx_bytes FROM b CROSS JOIN {table} x \
     ON x.bucket_start_ms = b.t AND x.router_id > ?3 AND x.router_id <= ?4";

/// `v` rounded up to a multiple of `len` (> 0).
pub(crate) fn ceil_to(v: i64, len: i64) -> i64 {
    v.div_euclid(len)
        .saturating_add(i64::from(v.rem_euclid(len) != 0))
        .saturating_mul(len)
}

/// How a raw window `[start, end]` (samples by `ts_ms`) is read: the whole 5-minute buckets
/// inside it from `interface_rollup_5m` (which holds exactly the sums of their samples), the
/// partial buckets at the edges from raw samples. Returns (raw ranges, 5-minute bucket-start
/// range); an empty range is `lo > hi`.
pub(crate) fn raw_window_split(start: i64, end: i64) -> ([(i64, i64); 2], (i64, i64)) {
    const EMPTY: (i64, i64) = (1, 0);
    // Buckets [b, b + 5m) with start <= b and b + 5m - 1 <= end.
    let first = ceil_to(start, BUCKET_5M_MS);
    let stop = end
        .saturating_add(1)
        .div_euclid(BUCKET_5M_MS)
        .saturating_mul(BUCKET_5M_MS);
    if first >= stop {
        return ([(start, end), EMPTY], EMPTY);
    }
    (
        [(start, first - 1), (stop, end)],
        (first, stop - BUCKET_5M_MS),
    )
}

/// The (router, name) of the current ports (of one router, or all).
fn port_keys(conn: &Connection, router: Option<i64>) -> Result<Vec<(i64, String)>, ApiError> {
    let sql = match router {
        Some(_) => format!("{PORT_KEYS_SQL} AND r.id = ?1"),
        None => PORT_KEYS_SQL.to_string(),
    };
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let map_row =
        |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, String)> { Ok((r.get(0)?, r.get(1)?)) };
    let rows = match router {
        Some(id) => st.query_map([id], map_row),
        None => st.query_map([], map_row),
    }
    .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// The three bucket ranges of [`ROLLUP_PORT_SUM_SQL`] for a window: 5-minute, 1-hour,
/// 5-minute (an empty range is `(1, 0)`).
fn rollup_ranges(window: Window, start: i64, end: i64) -> [(i64, i64); 3] {
    const EMPTY: (i64, i64) = (1, 0);
    match window.source() {
        Source::Rollup1h => [EMPTY, (start, end), EMPTY],
        _ => {
            // 5-minute buckets starting in [start, end], read as: the 5-minute buckets before
            // the first whole hour and from the last hour on, and the 1-hour buckets (the sums
            // of their twelve 5-minute buckets) in between.
            let first_hour = start
                .div_euclid(BUCKET_1H_MS)
                .saturating_add(i64::from(start.rem_euclid(BUCKET_1H_MS) != 0))
                .saturating_mul(BUCKET_1H_MS);
            let last_hour = end.div_euclid(BUCKET_1H_MS).saturating_mul(BUCKET_1H_MS);
            if first_hour < last_hour {
                [
                    (start, first_hour - 1),
                    (first_hour, last_hour - 1),
                    (last_hour, end),
                ]
            } else {
                [(start, end), EMPTY, EMPTY]
            }
        }
    }
}

/// THE traffic sum of a window: every interface (of the fleet, one router or one port) with
/// traffic data in `[start, end]`; an interface without any is absent. See the module doc for
/// which tables a window reads.
///
/// The whole fleet is read with one range query per source table (the raw edges, the
/// 5-minute and the 1-hour buckets), summed here; one router's ports are read port by port
/// through the per-key indexes.
pub fn window_sums(
    conn: &Connection,
    window: Window,
    start: i64,
    end: i64,
    scope: SumScope<'_>,
) -> Result<Sums, ApiError> {
    let mut acc = Sums::new();
    if window.source() == Source::Raw {
        if !scope.is_fleet() {
            add_raw_sums(conn, start, end, scope, &mut acc)?;
            return Ok(acc);
        }
        let ([r0, r1], b) = raw_window_split(start, end);
        add_raw_sums(conn, r0.0, r0.1, scope, &mut acc)?;
        add_raw_sums(conn, r1.0, r1.1, scope, &mut acc)?;
        let mut sums = RouterSums::default();
        add_rollup_range(conn, "interface_rollup_5m", b.0, b.1, scope, &mut sums)?;
        sums.into_sums(&mut acc);
        return Ok(acc);
    }
    let [a, b, c] = rollup_ranges(window, start, end);
    let keys = match scope {
        SumScope::Fleet | SumScope::FleetPorts(_) | SumScope::Routers(..) => {
            let mut sums = RouterSums::default();
            add_rollup_range(conn, "interface_rollup_5m", a.0, a.1, scope, &mut sums)?;
            add_rollup_range(conn, "interface_rollup_1h", b.0, b.1, scope, &mut sums)?;
            add_rollup_range(conn, "interface_rollup_5m", c.0, c.1, scope, &mut sums)?;
            sums.into_sums(&mut acc);
            return Ok(acc);
        }
        SumScope::Router(id) => port_keys(conn, Some(id))?,
        SumScope::Port(id, name) => vec![(id, name.to_string())],
    };
    let mut st = conn.prepare_cached(ROLLUP_PORT_SUM_SQL).map_err(db_err)?;
    for (id, name) in keys {
        let (n, rx, tx) = st
            .query_row(params![id, name, a.0, a.1, b.0, b.1, c.0, c.1], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(db_err)?;
        if n == 0 && matches!(scope, SumScope::Port(..)) {
            continue;
        }
        acc.insert(
            (id, name),
            WindowSum {
                rx: to_u64(rx),
                tx: to_u64(tx),
                rx_known: n > 0,
                tx_known: n > 0,
                buckets: true,
            },
        );
    }
    Ok(acc)
}

/// [`window_sums`] as the gateway routes show it: unknown traffic as 0 bytes.
pub fn window_totals(
    conn: &Connection,
    window: Window,
    start: i64,
    end: i64,
    scope: SumScope<'_>,
) -> Result<Totals, ApiError> {
    Ok(window_sums(conn, window, start, end, scope)?
        .into_iter()
        .map(|(k, s)| (k, (s.rx, s.tx)))
        .collect())
}

/// One interface's traffic as the dashboard shows it: None for a direction without a known
/// delta (see [`WindowSum::known`]).
pub fn port_traffic(
    conn: &Connection,
    window: Window,
    (start, end): (i64, i64),
    router_id: i64,
    name: &str,
) -> Result<(Option<u64>, Option<u64>), ApiError> {
    let sums = window_sums(conn, window, start, end, SumScope::Port(router_id, name))?;
    Ok(sums
        .values()
        .next()
        .map_or((None, None), |s| s.known(window)))
}
