//! Stored bytes per report: a fleet of generated routers (20 stations over 2 SSIDs, 8
//! interfaces, 3 WireGuard peers, 2 OpenVPN clients, 20 leases) reports every 30 s for a
//! while through the collector's own ingest (`Store::ingest`, in process, one batch per
//! round of the fleet), then the database is measured page by page with SQLite's `dbstat`
//! virtual table (compiled into rusqlite's bundled SQLite with `SQLITE_ENABLE_DBSTAT_VTAB`).
//!
//! "Raw level" tables are those kept as long as the raw samples (the `reports` rows, the
//! per-report samples and the per-report/5-minute summaries retention deletes with them, and
//! the sealed blocks `raw_blocks`/`raw_block_keys`/`raw_block_tails`); their bytes divided by the stored reports
//! are the bytes per report. The rest (1-hour and 5-minute interface rollups, current state,
//! registry) is printed apart.
//!
//! Sealing runs as in the collector's writer: after every batch one `Store::seal_step` at the
//! batch's (simulated) time, so closed hours older than the hot window move into blocks while
//! the fleet reports; its time is measured apart from the ingest time. The hot window (the
//! current hour and the two closed hours before it) stays rows: a constant per router, not a
//! cost per report, so the steady-state figure is the sealed part's bytes per sealed report
//! plus the row tables every report keeps (`reports` and the two summaries) per report.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use routerstats_collector::store::{IngestItem, Store};
use routerstats_shared::Report;
use rusqlite::Connection;

use crate::gen::{steady_state_later, GenParseError, RouterText, Shape};

/// The report of the storage target: 20 stations, 8 interfaces, 3 WireGuard peers,
/// 2 OpenVPN clients.
pub const SHAPE: Shape = Shape {
    stations: 20,
    ssids: 2,
    leases: 20,
    wg_peers: 3,
    ovpn_clients: 2,
    interfaces: 8,
};

/// Report interval of the simulated fleet.
pub const INTERVAL_S: u64 = 30;

/// Tables deleted by raw retention (kept as long as the raw samples): the collector's list.
pub const RAW_LEVEL: &[&str] = routerstats_collector::store::RAW_LEVEL_TABLES;

/// The row tables holding only the hot window once sealing runs.
const HOT_TABLES: [&str; 8] = [
    "reports",
    "station_rollup_5m",
    "interface_samples",
    "station_samples",
    "station_link_samples",
    "wg_peer_samples",
    "ovpn_client_samples",
    "probe_samples",
];

/// Why the measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Gen(#[from] GenParseError),
    #[error("store: {0}")]
    Store(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Bytes of one table (its b-tree and those of its indexes).
#[derive(Debug, Clone, Default)]
pub struct TableBytes {
    pub table: String,
    /// Pages of the table's own b-tree, in bytes.
    pub table_bytes: u64,
    /// Pages of its indexes, in bytes.
    pub index_bytes: u64,
    /// Payload bytes (cell contents) of table and indexes.
    pub payload: u64,
    pub rows: u64,
    /// Non-NULL column values stored.
    pub values: u64,
}

impl TableBytes {
    pub fn bytes(&self) -> u64 {
        self.table_bytes + self.index_bytes
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    pub routers: usize,
    pub reports: u64,
    pub ingest: Duration,
    /// Thread CPU time spent in `Store::seal_step` and what it sealed.
    pub seal: Duration,
    /// Thread CPU time of `Store::ingest`.
    pub ingest_cpu: Duration,
    /// Per sealed table: blob bytes (before SQLite pages).
    pub block_bytes: Vec<(String, u64)>,
    pub sealed_groups: u64,
    /// Reports whose samples are in blocks.
    pub sealed_reports: u64,
    /// `raw_block_keys` entries of hours still in rows (schema 20: the ingest lists the MACs
    /// of the station rows it stores); their share of the table's bytes counts for the hot
    /// window, not for the sealed reports.
    pub hot_key_rows: u64,
    pub file_bytes: u64,
    pub page_size: u64,
    pub free_pages: u64,
    pub tables: Vec<TableBytes>,
}

impl Figures {
    fn raw(&self) -> impl Iterator<Item = &TableBytes> {
        self.tables
            .iter()
            .filter(|t| RAW_LEVEL.contains(&t.table.as_str()))
    }
    /// Bytes of the raw-level tables (pages of tables and indexes).
    pub fn raw_bytes(&self) -> u64 {
        self.raw().map(TableBytes::bytes).sum()
    }
    /// Non-NULL values stored in the raw-level tables.
    pub fn raw_values(&self) -> u64 {
        self.raw().map(|t| t.values).sum()
    }
    pub fn bytes_per_report(&self) -> f64 {
        self.raw_bytes() as f64 / self.reports.max(1) as f64
    }
    pub fn bytes_per_value(&self) -> f64 {
        self.raw_bytes() as f64 / self.raw_values().max(1) as f64
    }
    /// Raw-level bytes one router stores per day at [`INTERVAL_S`].
    pub fn bytes_per_router_day(&self) -> f64 {
        self.bytes_per_report() * (86_400 / INTERVAL_S) as f64
    }

    fn bytes_of(&self, names: &[&str]) -> u64 {
        self.tables
            .iter()
            .filter(|t| names.contains(&t.table.as_str()))
            .map(TableBytes::bytes)
            .sum()
    }

    /// Bytes per report once sealed: blocks, their keys and the `reports` blocks' sequence
    /// runs per sealed report (since schema 11 every raw-level table, `reports` and
    /// `station_rollup_5m` too, keeps rows for the hot window only). None when nothing was
    /// sealed.
    pub fn sealed_bytes_per_report(&self) -> Option<f64> {
        if self.sealed_reports == 0 {
            return None;
        }
        let blocks = self.bytes_of(&["raw_blocks", "report_seq_runs", "raw_block_tails"]) as f64;
        let keys = self.key_bytes().0;
        Some((blocks + keys) / self.sealed_reports as f64)
    }

    /// Bytes of `raw_block_keys` split by its entries' hours: (sealed, still rows).
    fn key_bytes(&self) -> (f64, f64) {
        let Some(t) = self.tables.iter().find(|t| t.table == "raw_block_keys") else {
            return (0.0, 0.0);
        };
        let hot = if t.rows == 0 {
            0.0
        } else {
            self.hot_key_rows.min(t.rows) as f64 / t.rows as f64
        };
        let bytes = t.bytes() as f64;
        (bytes * (1.0 - hot), bytes * hot)
    }

    /// Values one report stores: those of the rows per report still in rows (the hot window).
    pub fn values_per_report(&self) -> f64 {
        let values: u64 = self
            .tables
            .iter()
            .filter(|t| HOT_TABLES.contains(&t.table.as_str()))
            .map(|t| t.values)
            .sum();
        let hot = self.reports.saturating_sub(self.sealed_reports).max(1) as f64;
        values as f64 / hot
    }

    /// Bytes of the hot window's rows per router (the sample tables' rows left unsealed, and
    /// the key entries of their hours).
    pub fn hot_bytes_per_router(&self) -> f64 {
        let rows = self.bytes_of(&HOT_TABLES) as f64 + self.key_bytes().1;
        rows / self.routers.max(1) as f64
    }

    /// The printed table.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} routers, {} reports stored in {:.1} s ({:.0} reports/s in process); file {} bytes, page {} B, {} free pages",
            self.routers,
            self.reports,
            self.ingest.as_secs_f64(),
            self.reports as f64 / self.ingest.as_secs_f64().max(1e-9),
            self.file_bytes,
            self.page_size,
            self.free_pages
        );
        let _ = writeln!(
            out,
            "{:<24} {:>12} {:>12} {:>10} {:>11} {:>12} {:>9}",
            "table", "table B", "index B", "rows", "values", "B/report", "B/value"
        );
        for t in &self.tables {
            let raw = if RAW_LEVEL.contains(&t.table.as_str()) {
                "*"
            } else {
                " "
            };
            let _ = writeln!(
                out,
                "{raw}{:<23} {:>12} {:>12} {:>10} {:>11} {:>12.1} {:>9.2}",
                t.table,
                t.table_bytes,
                t.index_bytes,
                t.rows,
                t.values,
                t.bytes() as f64 / self.reports.max(1) as f64,
                t.bytes() as f64 / t.values.max(1) as f64
            );
        }
        let _ = writeln!(
            out,
            "raw level (*): {} bytes = {:.0} bytes per report, {:.2} bytes per stored value ({:.0} values per report), {:.2} MB per router-day at {} s (hot rows included)",
            self.raw_bytes(),
            self.bytes_per_report(),
            self.bytes_per_value(),
            self.raw_values() as f64 / self.reports.max(1) as f64,
            self.bytes_per_router_day() / 1e6,
            INTERVAL_S
        );
        if let Some(b) = self.sealed_bytes_per_report() {
            let values = self.values_per_report();
            let _ = writeln!(
                out,
                "sealed: {} of {} reports in {} (router, hour) groups; steady state {:.0} bytes per report, {:.2} bytes per value, {:.2} MB per router-day; hot window rows {:.2} MB per router (constant)",
                self.sealed_reports,
                self.reports,
                self.sealed_groups,
                b,
                b / values.max(1.0),
                b * (86_400 / INTERVAL_S) as f64 / 1e6,
                self.hot_bytes_per_router() / 1e6
            );
            let _ = writeln!(
                out,
                "sealing: {:.1} s thread CPU in seal_step = {:.0} us per sealed report; ingest {:.0} us thread CPU per report (same process, this build)",
                self.seal.as_secs_f64(),
                self.seal.as_secs_f64() * 1e6 / self.sealed_reports.max(1) as f64,
                self.ingest_cpu.as_secs_f64() * 1e6 / self.reports.max(1) as f64
            );
            for (t, b) in &self.block_bytes {
                let _ = writeln!(
                    out,
                    "  blocks of {t:<22} {:>8.1} B per sealed report (compressed blob bytes)",
                    *b as f64 / self.sealed_reports.max(1) as f64
                );
            }
        }
        out
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Creates routers `bench-00000`.. directly in the registry table; returns their ids.
fn add_routers(conn: &Connection, n: usize) -> Result<Vec<i64>, rusqlite::Error> {
    let mut ids = Vec::with_capacity(n);
    let mut st = conn.prepare(
        "INSERT INTO routers (name, hostname, cert_fingerprint, cert_not_after, enrolled_at) VALUES (?1, ?1, ?2, 0, 0)",
    )?;
    for i in 0..n {
        st.execute(rusqlite::params![
            format!("bench-{i:05}"),
            format!("{i:064x}")
        ])?;
        ids.push(conn.last_insert_rowid());
    }
    Ok(ids)
}

/// `steady_state_later` raises a station's bitrates by a tenth every other cycle (one step of a
/// link getting better); over hours that compounds without bound (and overflows), so a bitrate
/// that passed twice its first value goes back to it: a sawtooth in the generated link's range.
fn settle_bitrates(r: &mut Report, base: &Report) {
    for (s, b) in r.stations.iter_mut().zip(&base.stations) {
        let (st, bs) = (&mut s.stats, &b.stats);
        for (rate, first) in [
            (st.tx_bitrate.as_mut(), bs.tx_bitrate.as_ref()),
            (st.rx_bitrate.as_mut(), bs.rx_bitrate.as_ref()),
        ] {
            if let (Some(rate), Some(first)) = (rate, first) {
                if rate.kbps > first.kbps.saturating_mul(2) {
                    *rate = first.clone();
                }
            }
        }
        if let (Some(t), Some(first)) = (
            st.expected_throughput_kbps.as_mut(),
            bs.expected_throughput_kbps,
        ) {
            if *t > first.saturating_mul(2) {
                *t = first;
            }
        }
    }
}

/// The time of the first report of [`run`] (2026-01-01T00:00:00Z).
pub const START_MS: u64 = 1_767_225_600_000;

/// Runs `routers` routers for `rounds` reports each (one batch per round) into a fresh
/// database at `path`, sealing after each batch when `seal` (as the collector's writer does),
/// then measures it.
pub fn run(path: &Path, routers: usize, rounds: u64, seal: bool) -> Result<Figures, StorageError> {
    let mut store = Store::open(path).map_err(|e| StorageError::Store(e.to_string()))?;
    let ids = add_routers(store.connection(), routers)?;
    let mut current: Vec<Report> = (0..routers)
        .map(|i| RouterText::generate(SHAPE, i as u64 + 1).parse_report())
        .collect::<Result<_, _>>()?;
    let base = current.clone();
    let start_ms = START_MS;
    for (i, r) in current.iter_mut().enumerate() {
        r.seq = 1;
        r.timestamp_ms = start_ms + (i as u64 * INTERVAL_S * 1000) / routers.max(1) as u64;
    }
    let mut ingest = Duration::ZERO;
    let mut ingest_cpu = Duration::ZERO;
    let (mut seal_time, mut sealed_groups) = (Duration::ZERO, 0u64);
    let mut reports = 0u64;
    for round in 0..rounds {
        if round > 0 {
            for (i, r) in current.iter_mut().enumerate() {
                *r = steady_state_later(r, INTERVAL_S, round * 1_000_003 + i as u64);
                settle_bitrates(r, &base[i]);
            }
        }
        let batch: Vec<IngestItem<'_>> = ids
            .iter()
            .zip(&current)
            .map(|(&router_id, report)| IngestItem {
                router_id,
                received_at_ms: report.timestamp_ms as i64,
                report,
            })
            .collect();
        let t = Instant::now();
        let c = thread_cpu();
        store
            .ingest(&batch)
            .map_err(|e| StorageError::Store(e.to_string()))?;
        ingest += t.elapsed();
        ingest_cpu += thread_cpu().saturating_sub(c);
        reports += batch.len() as u64;
        if seal {
            let now = current.iter().map(|r| r.timestamp_ms).max().unwrap_or(0) as i64;
            let c = thread_cpu();
            let s = store
                .seal_step(now)
                .map_err(|e| StorageError::Store(e.to_string()))?;
            seal_time += thread_cpu().saturating_sub(c);
            sealed_groups += s.groups;
        }
    }
    let mut f = measure(store.connection())?;
    f.routers = routers;
    f.ingest = ingest;
    f.seal = seal_time;
    f.ingest_cpu = ingest_cpu;
    let mut st = store
        .connection()
        .prepare("SELECT tbl, sum(length(data)) FROM (SELECT tbl, data FROM raw_blocks UNION ALL SELECT tbl, data FROM raw_block_tails) GROUP BY tbl ORDER BY tbl")?;
    f.block_bytes = st
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        .map(|r| {
            r.map(|(t, b)| {
                let name = routerstats_collector::store::sealed::SEALED
                    .get(t as usize)
                    .map_or_else(
                        || {
                            if t == routerstats_collector::store::sealed::STATION_5M_TBL {
                                "station_rollup_5m"
                            } else {
                                "?"
                            }
                        },
                        |s| s.name,
                    );
                (name.to_string(), b as u64)
            })
        })
        .collect::<Result<_, _>>()?;
    drop(st);
    f.sealed_groups = sealed_groups;
    f.sealed_reports = store.connection().query_row(
        "SELECT count(*) FROM reports_all p WHERE EXISTS (SELECT 1 FROM raw_blocks b \
         WHERE b.router_id = p.router_id AND b.tbl = 0 AND b.hour_ms = p.ts_ms / 3600000 * 3600000)",
        [],
        |r| r.get(0),
    )?;
    f.hot_key_rows = store.connection().query_row(
        "SELECT count(*) FROM raw_block_keys k WHERE NOT EXISTS (SELECT 1 FROM raw_blocks b \
         WHERE b.router_id = k.router_id AND b.tbl = k.tbl AND b.hour_ms = k.hour_ms)",
        [],
        |r| r.get(0),
    )?;
    f.file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let stored: u64 =
        store
            .connection()
            .query_row("SELECT count(*) FROM reports_all", [], |r| r.get(0))?;
    debug_assert_eq!(stored, reports);
    f.reports = stored;
    Ok(f)
}

/// The table-by-table split of the database behind `conn` (after a checkpoint, so every
/// page is in the main file).
pub fn measure(conn: &Connection) -> Result<Figures, StorageError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let free_pages: u64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    // b-tree name -> owning table
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut st = conn.prepare(
        "SELECT name, tbl_name, type FROM sqlite_master WHERE type IN ('table', 'index')",
    )?;
    let objects: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut tables: BTreeMap<String, TableBytes> = BTreeMap::new();
    for (name, tbl, kind) in &objects {
        owner.insert(name.clone(), tbl.clone());
        if kind == "table" && !name.starts_with("sqlite_") {
            tables.entry(tbl.clone()).or_insert_with(|| TableBytes {
                table: tbl.clone(),
                ..Default::default()
            });
        }
    }
    let mut st =
        conn.prepare("SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name")?;
    let pages: Vec<(String, u64, u64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (name, bytes, payload) in pages {
        let tbl = owner.get(&name).cloned().unwrap_or_else(|| name.clone());
        let is_table = objects.iter().any(|(n, _, k)| n == &name && k == "table");
        let e = tables.entry(tbl.clone()).or_insert_with(|| TableBytes {
            table: tbl,
            ..Default::default()
        });
        if is_table || name.starts_with("sqlite_") {
            e.table_bytes += bytes;
        } else {
            e.index_bytes += bytes;
        }
        e.payload += payload;
    }
    for t in tables.values_mut() {
        if t.table.starts_with("sqlite_") {
            continue;
        }
        let mut cols = Vec::new();
        let mut st = conn.prepare(&format!(
            "SELECT name FROM pragma_table_info('{}')",
            t.table
        ))?;
        for c in st.query_map([], |r| r.get::<_, String>(0))? {
            cols.push(format!("(\"{}\" IS NOT NULL)", c?));
        }
        if cols.is_empty() {
            continue;
        }
        let (rows, values): (u64, Option<u64>) = conn.query_row(
            &format!(
                "SELECT count(*), sum({}) FROM \"{}\"",
                cols.join(" + "),
                t.table
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        t.rows = rows;
        t.values = values.unwrap_or(0);
    }
    let mut tables: Vec<TableBytes> = tables.into_values().filter(|t| t.bytes() > 0).collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.bytes()));
    Ok(Figures {
        routers: 0,
        reports: 0,
        ingest: Duration::ZERO,
        seal: Duration::ZERO,
        ingest_cpu: Duration::ZERO,
        block_bytes: Vec::new(),
        sealed_groups: 0,
        sealed_reports: 0,
        hot_key_rows: 0,
        file_bytes: 0,
        page_size,
        free_pages,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key entries of hours still in rows count for the hot window, the others for the
    /// sealed reports.
    #[test]
    fn key_bytes_split_by_their_hours() {
        let keys = TableBytes {
            table: "raw_block_keys".into(),
            table_bytes: 600,
            index_bytes: 400,
            payload: 0,
            rows: 100,
            values: 400,
        };
        let blocks = TableBytes {
            table: "raw_blocks".into(),
            table_bytes: 9_000,
            index_bytes: 0,
            payload: 0,
            rows: 10,
            values: 50,
        };
        let f = Figures {
            routers: 2,
            reports: 20,
            ingest: Duration::ZERO,
            seal: Duration::ZERO,
            ingest_cpu: Duration::ZERO,
            block_bytes: Vec::new(),
            sealed_groups: 1,
            sealed_reports: 10,
            hot_key_rows: 25,
            file_bytes: 0,
            page_size: 4096,
            free_pages: 0,
            tables: vec![keys, blocks],
        };
        assert_eq!(f.key_bytes(), (750.0, 250.0));
        assert_eq!(f.sealed_bytes_per_report(), Some((9_000.0 + 750.0) / 10.0));
        assert_eq!(f.hot_bytes_per_router(), 250.0 / 2.0);
    }

    #[test]
    fn dbstat_split_adds_up_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let f = run(&path, 3, 4, true).unwrap();
        assert_eq!(f.reports, 12);
        assert_eq!(f.sealed_reports, 0, "nothing older than the hot window");
        let pages: u64 = f.tables.iter().map(TableBytes::bytes).sum();
        // every page but the free ones belongs to some b-tree
        assert_eq!(pages + f.free_pages * f.page_size, f.file_bytes);
        let st = f
            .tables
            .iter()
            .find(|t| t.table == "station_samples")
            .unwrap();
        assert_eq!(st.rows, 12 * 20);
        assert!(st.values > st.rows * 10, "{st:?}");
        assert!(f.bytes_per_report() > 0.0 && f.render().contains("bytes per report"));
    }

    /// Five hours of 2 routers: the writer's sealing steps move the closed hours before the hot
    /// window into blocks, far smaller than the rows.
    #[test]
    fn sealing_while_reporting_moves_old_hours_into_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let f = run(&dir.path().join("s.db"), 2, 5 * 120, true).unwrap();
        assert!(f.sealed_reports >= 2 * 120, "{f:?}");
        let sealed = f.sealed_bytes_per_report().unwrap();
        let rows = run(&dir.path().join("r.db"), 2, 5 * 120, false).unwrap();
        assert_eq!(rows.sealed_reports, 0);
        assert!(
            sealed * 3.0 < rows.bytes_per_report(),
            "{sealed} vs {}",
            rows.bytes_per_report()
        );
        assert!(f.render().contains("steady state"));
    }
}

/// What re-sealing a database upgraded from schema 10 cost (see [`upgrade`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Upgrade {
    /// (router, hour) groups whose `reports` and `station_rollup_5m` rows were sealed.
    pub groups: u64,
    /// `Store::seal_step` calls it took.
    pub steps: u64,
    /// Their wall time and thread CPU time.
    pub wall: Duration,
    pub cpu: Duration,
}

/// The writer's pause between two sealing steps while it is idle and work is waiting
/// (`SEAL_IDLE` in the collector's `ingest::writer`); while reports arrive it also seals a
/// step after every batch.
pub const WRITER_SEAL_IDLE: Duration = Duration::from_millis(20);

impl Upgrade {
    /// Wall seconds per 1,000 router-hours at the pace of an idle writer: each step's own time
    /// plus [`WRITER_SEAL_IDLE`] between steps.
    pub fn idle_writer_s_per_1000(&self) -> f64 {
        let wall = self.wall + WRITER_SEAL_IDLE * self.steps as u32;
        wall.as_secs_f64() * 1000.0 / self.groups.max(1) as f64
    }

    pub fn render(&self, routers_days: &[(u64, u64)]) -> String {
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / self.groups.max(1) as f64;
        let mut out = format!(
            "upgrade from schema 10: {} router-hours of reports and 5-minute rows re-sealed in {} steps: \
             {:.2} s wall, {:.2} s thread CPU = {:.2} s CPU per 1,000 router-hours; at an idle writer's pace \
             (a step every {} ms) {:.1} s per 1,000 router-hours\n",
            self.groups,
            self.steps,
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            per(self.cpu),
            WRITER_SEAL_IDLE.as_millis(),
            self.idle_writer_s_per_1000(),
        );
        for &(routers, days) in routers_days {
            let hours = (routers * days * 24) as f64;
            out.push_str(&format!(
                "  {routers} routers x {days} days of raw data ({hours:.0} router-hours): {:.1} h at an idle writer's pace\n",
                hours / 1000.0 * self.idle_writer_s_per_1000() / 3600.0
            ));
        }
        out
    }
}

/// The upgrade of a schema-10 database, rebuilt from the database at `path` (a run of
/// [`run`] with sealing, everything sealable at `now_ms` sealed first): its sealed `reports`
/// and `station_rollup_5m` blocks go back to rows
/// (`Store::rebuild_schema10_layout`, the layout schema 10 had), then `Store::seal_step` runs
/// as the writer runs it, at `now_ms`, until nothing is left, timed.
pub fn upgrade(path: &Path, now_ms: i64) -> Result<Upgrade, StorageError> {
    let store_err =
        |e: routerstats_collector::store::StoreError| StorageError::Store(e.to_string());
    let mut store = Store::open(path).map_err(store_err)?;
    // Everything sealable sealed first (the writer may have been behind at the end of the
    // run), so the steps below do the upgrade's work only.
    store.seal_all(now_ms).map_err(store_err)?;
    let groups = store.rebuild_schema10_layout().map_err(store_err)?;
    let mut u = Upgrade {
        groups,
        ..Upgrade::default()
    };
    let (t, c) = (Instant::now(), thread_cpu());
    loop {
        let s = store.seal_step(now_ms).map_err(store_err)?;
        u.steps += 1;
        if !s.more {
            break;
        }
    }
    u.wall = t.elapsed();
    u.cpu = thread_cpu().saturating_sub(c);
    let left: i64 = store.connection().query_row(
        "SELECT count(*) FROM raw_blocks WHERE tbl = ?1",
        [routerstats_collector::store::sealed::REPORTS_TBL],
        |r| r.get(0),
    )?;
    if left as u64 != groups {
        return Err(StorageError::Store(format!(
            "re-sealed {left} reports blocks of {groups}"
        )));
    }
    Ok(u)
}
