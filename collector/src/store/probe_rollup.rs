//! Per-router probe rollups (`probe_rollup_5m`, `probe_rollup_1h`, schema version 19): the sums
//! of each router's `probe_samples` rows per 5-minute and per 1-hour bucket (rows, echo
//! requests sent, replies received, the RTT average weighted by its replies and the replies
//! that carried an average, the largest RTT), kept at ingest with the other rollup sums (held
//! across batches by the writer, rebuilt from the raw rows after a crash, see
//! `super::ingest::Held`) and deleted by retention: the 5-minute rows with the raw samples (at
//! least 8 days, the longest window and its edge), the 1-hour rows with the other hour rollups.
//!
//! Every figure is a sum or a maximum, so a window's probe figures are the rollup rows of its
//! whole hours, the 5-minute rows of the whole 5-minute buckets at its edges and the raw rows
//! of the partial buckets: [`window_probe_sums`] reads at most 2 x 11 five-minute and one row
//! per hour per router, plus at most 2 x 5 minutes of raw rows, whatever the window's length.
//!
//! The rollups are complete from `probe_rollup_start.start_ms` on (the first hour after the
//! newest report stored when the migration ran; 0 on a database created at this version): the
//! migration backfills nothing, so it takes no time on a database of any size, and the part of
//! a window before that time is read from the raw rows as before.

use std::collections::HashMap;

use rusqlite::{params, Connection, Transaction};

use super::ingest::{bucket_start, max_nullable, sat_sum, BUCKET_1H_MS, BUCKET_5M_MS};

/// Version 19: the probe rollups and the time from which they are complete.
pub(super) const MIGRATION_19: &str = r#"
CREATE TABLE probe_rollup_5m (
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    probes           INTEGER NOT NULL,
    sent             INTEGER NOT NULL,
    received         INTEGER NOT NULL,
    rtt_weighted     INTEGER NOT NULL,
    rtt_received     INTEGER NOT NULL,
    rtt_max_us       INTEGER,
    PRIMARY KEY (bucket_start_ms, router_id)
) WITHOUT ROWID;
CREATE TABLE probe_rollup_1h (
    bucket_start_ms  INTEGER NOT NULL,
    router_id        INTEGER NOT NULL,
    probes           INTEGER NOT NULL,
    sent             INTEGER NOT NULL,
    received         INTEGER NOT NULL,
    rtt_weighted     INTEGER NOT NULL,
    rtt_received     INTEGER NOT NULL,
    rtt_max_us       INTEGER,
    PRIMARY KEY (bucket_start_ms, router_id)
) WITHOUT ROWID;
CREATE TABLE probe_rollup_start (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    start_ms  INTEGER NOT NULL
);
INSERT INTO probe_rollup_start (id, start_ms)
SELECT 1, coalesce((max(m) / 3600000 + 1) * 3600000, 0) FROM (
    SELECT max(coalesce(r.last_report_ms, 0),
               coalesce((SELECT max(p.ts_ms) FROM probe_samples p WHERE p.router_id = r.id), 0)) AS m
    FROM routers r
);
"#;

/// Fills the probe rollups from the `probe_samples` rows and makes them complete from the start
/// (for a database whose samples were written directly, the API benchmark's generator, before
/// any sealing). Run on empty rollup tables.
pub fn backfill() -> &'static str {
    "INSERT INTO probe_rollup_5m (bucket_start_ms, router_id, probes, sent, received, rtt_weighted, \
         rtt_received, rtt_max_us) \
     SELECT ts_ms / 300000 * 300000, router_id, count(*), sum(sent), sum(received), \
         coalesce(sum(rtt_avg_us * received), 0), \
         coalesce(sum(CASE WHEN rtt_avg_us IS NOT NULL THEN received END), 0), max(rtt_max_us) \
     FROM probe_samples GROUP BY 1, 2; \
     INSERT INTO probe_rollup_1h (bucket_start_ms, router_id, probes, sent, received, rtt_weighted, \
         rtt_received, rtt_max_us) \
     SELECT bucket_start_ms / 3600000 * 3600000, router_id, sum(probes), sum(sent), sum(received), \
         sum(rtt_weighted), sum(rtt_received), max(rtt_max_us) \
     FROM probe_rollup_5m GROUP BY 1, 2; \
     UPDATE probe_rollup_start SET start_ms = 0;"
}

/// The sums of some probe rows (one bucket, or a window of one router).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeSums {
    /// Rows summed.
    pub probes: i64,
    pub sent: i64,
    pub received: i64,
    /// Sum of `rtt_avg_us * received` over the rows with an average.
    pub rtt_weighted: i64,
    /// Sum of `received` over the rows with an average.
    pub rtt_received: i64,
    pub rtt_max_us: Option<i64>,
}

impl ProbeSums {
    /// One `probe_samples` row.
    pub(super) fn add(
        &mut self,
        sent: u32,
        received: u32,
        rtt_avg_us: Option<u32>,
        rtt_max_us: Option<u32>,
    ) {
        let received = i64::from(received);
        self.merge(&ProbeSums {
            probes: 1,
            sent: i64::from(sent),
            received,
            rtt_weighted: rtt_avg_us.map_or(0, |a| i64::from(a).saturating_mul(received)),
            rtt_received: if rtt_avg_us.is_some() { received } else { 0 },
            rtt_max_us: rtt_max_us.map(i64::from),
        });
    }

    /// Adds `o`'s sums (saturating) and maximum.
    pub fn merge(&mut self, o: &ProbeSums) {
        self.probes = self.probes.saturating_add(o.probes);
        self.sent = self.sent.saturating_add(o.sent);
        self.received = self.received.saturating_add(o.received);
        self.rtt_weighted = self.rtt_weighted.saturating_add(o.rtt_weighted);
        self.rtt_received = self.rtt_received.saturating_add(o.rtt_received);
        self.rtt_max_us = match (self.rtt_max_us, o.rtt_max_us) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Read from columns `i..i + 6` (probes, sent, received, rtt_weighted, rtt_received,
    /// rtt_max_us; the sums may be NULL).
    fn from_row(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<ProbeSums> {
        let n = |k: usize| -> rusqlite::Result<i64> {
            Ok(r.get::<_, Option<i64>>(i + k)?.unwrap_or(0))
        };
        Ok(ProbeSums {
            probes: n(0)?,
            sent: n(1)?,
            received: n(2)?,
            rtt_weighted: n(3)?,
            rtt_received: n(4)?,
            rtt_max_us: r.get(i + 5)?,
        })
    }
}

/// Probe sums per (bucket, router) of 5 minutes and of 1 hour, held with the other rollup sums.
#[derive(Debug, Default)]
pub(super) struct ProbeRollups {
    by_5m: HashMap<(i64, i64), ProbeSums>,
    by_1h: HashMap<(i64, i64), ProbeSums>,
}

impl ProbeRollups {
    /// A `probe_samples` row of `router_id` written for a report made at `ts_ms`.
    pub(super) fn add(
        &mut self,
        router_id: i64,
        ts_ms: i64,
        (sent, received): (u32, u32),
        rtt_avg_us: Option<u32>,
        rtt_max_us: Option<u32>,
    ) {
        for (map, len) in [
            (&mut self.by_5m, BUCKET_5M_MS),
            (&mut self.by_1h, BUCKET_1H_MS),
        ] {
            map.entry((bucket_start(ts_ms, len), router_id))
                .or_default()
                .add(sent, received, rtt_avg_us, rtt_max_us);
        }
    }

    /// Rows [`ProbeRollups::write`] would write.
    pub(super) fn rows(&self) -> usize {
        self.by_5m.len() + self.by_1h.len()
    }

    /// UPSERTs the sums into the rollup tables, in `tx`.
    pub(super) fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        for (table, map) in [
            ("probe_rollup_5m", &self.by_5m),
            ("probe_rollup_1h", &self.by_1h),
        ] {
            if map.is_empty() {
                continue;
            }
            let [probes, sent, received, weighted, rtt_received] =
                ["probes", "sent", "received", "rtt_weighted", "rtt_received"].map(sat_sum);
            let mut st = tx.prepare_cached(&format!(
                "INSERT INTO {table} (bucket_start_ms, router_id, probes, sent, received, \
                 rtt_weighted, rtt_received, rtt_max_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT(bucket_start_ms, router_id) DO UPDATE SET probes = {probes}, \
                 sent = {sent}, received = {received}, rtt_weighted = {weighted}, \
                 rtt_received = {rtt_received}, rtt_max_us = {}",
                max_nullable("rtt_max_us")
            ))?;
            for ((bucket, router), s) in map {
                st.execute(params![
                    bucket,
                    router,
                    s.probes,
                    s.sent,
                    s.received,
                    s.rtt_weighted,
                    s.rtt_received,
                    s.rtt_max_us
                ])?;
            }
        }
        Ok(())
    }
}

/// How a window `[start, end)` of report times is read: raw ranges (half-open, empty when
/// `lo >= hi`), and the first and last bucket starts of the 5-minute and 1-hour rollup ranges
/// (empty when first > last). `from` is when the rollups are complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlan {
    pub raw: [(i64, i64); 2],
    pub rollup_5m: [(i64, i64); 2],
    pub rollup_1h: (i64, i64),
}

/// `v` rounded down to a multiple of `len`.
fn floor_to(v: i64, len: i64) -> i64 {
    v.div_euclid(len).saturating_mul(len)
}

/// `v` rounded up to a multiple of `len`.
fn ceil_to(v: i64, len: i64) -> i64 {
    floor_to(v, len).saturating_add(if v.rem_euclid(len) != 0 { len } else { 0 })
}

/// The [`WindowPlan`] of `[start, end)` with rollups complete from `from` on.
pub fn plan(start: i64, end: i64, from: i64) -> WindowPlan {
    const EMPTY: (i64, i64) = (1, 0);
    let all_raw = WindowPlan {
        raw: [(start, end), (end, end)],
        rollup_5m: [EMPTY, EMPTY],
        rollup_1h: EMPTY,
    };
    // Whole 5-minute buckets [first5, stop5) inside [max(start, from), end).
    let first5 = ceil_to(start.max(from), BUCKET_5M_MS);
    let stop5 = floor_to(end, BUCKET_5M_MS);
    if first5 >= stop5 {
        return all_raw;
    }
    let raw = [(start, first5), (stop5, end)];
    let first1 = ceil_to(first5, BUCKET_1H_MS);
    let stop1 = floor_to(stop5, BUCKET_1H_MS);
    if first1 >= stop1 {
        return WindowPlan {
            raw,
            rollup_5m: [(first5, stop5 - BUCKET_5M_MS), EMPTY],
            rollup_1h: EMPTY,
        };
    }
    WindowPlan {
        raw,
        rollup_5m: [
            (first5, first1 - BUCKET_5M_MS),
            (stop1, stop5 - BUCKET_5M_MS),
        ],
        rollup_1h: (first1, stop1 - BUCKET_1H_MS),
    }
}

/// When the probe rollups are complete from (`probe_rollup_start`).
pub fn rollup_start(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT start_ms FROM probe_rollup_start")?
        .query_row([], |r| r.get(0))
}

/// The raw sums per router of `[lo, hi)` for the routers with `after < id <= last`.
const RAW_SQL: &str = "SELECT r.id, count(*), sum(sent), sum(received), sum(rtt_avg_us * received), \
     sum(CASE WHEN rtt_avg_us IS NOT NULL THEN received END), max(rtt_max_us) \
     FROM routers r CROSS JOIN probe_samples_all ON router_id = r.id AND ts_ms >= ?1 AND ts_ms < ?2 \
     WHERE r.id > ?3 AND r.id <= ?4 GROUP BY r.id";

/// The rollup rows of the buckets `?1, ?1 + ?5, ... <= ?2` of the routers `?3 < id <= ?4`.
const ROLLUP_SQL: &str =
    "WITH RECURSIVE b(t) AS (SELECT ?1 UNION ALL SELECT t + ?5 FROM b WHERE t + ?5 <= ?2) \
     SELECT x.router_id, x.probes, x.sent, x.received, x.rtt_weighted, x.rtt_received, x.rtt_max_us \
     FROM b CROSS JOIN {table} x ON x.bucket_start_ms = b.t AND x.router_id > ?3 AND x.router_id <= ?4";

/// The probe sums of `[start, end)` of each router with `after < id <= last` that has probe rows
/// in it (see the module doc for what is read). The caller holds a read transaction, so the
/// rollups and raw rows are of one state.
pub fn window_probe_sums(
    conn: &Connection,
    (after, last): (i64, i64),
    start: i64,
    end: i64,
) -> rusqlite::Result<HashMap<i64, ProbeSums>> {
    let p = plan(start, end, rollup_start(conn)?);
    let mut out: HashMap<i64, ProbeSums> = HashMap::new();
    let mut add = |id: i64, s: ProbeSums| {
        if s.probes > 0 {
            out.entry(id).or_default().merge(&s);
        }
    };
    for (lo, hi) in p.raw {
        if lo >= hi {
            continue;
        }
        let mut st = conn.prepare_cached(RAW_SQL)?;
        let mut rows = st.query(params![lo, hi, after, last])?;
        while let Some(r) = rows.next()? {
            add(r.get(0)?, ProbeSums::from_row(r, 1)?);
        }
    }
    let ranges = [
        ("probe_rollup_5m", BUCKET_5M_MS, p.rollup_5m[0]),
        ("probe_rollup_5m", BUCKET_5M_MS, p.rollup_5m[1]),
        ("probe_rollup_1h", BUCKET_1H_MS, p.rollup_1h),
    ];
    for (table, len, (first, last_bucket)) in ranges {
        if first > last_bucket {
            continue;
        }
        let mut st = conn.prepare_cached(&ROLLUP_SQL.replace("{table}", table))?;
        let mut rows = st.query(params![first, last_bucket, after, last, len])?;
        while let Some(r) = rows.next()? {
            add(r.get(0)?, ProbeSums::from_row(r, 1)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fleet::{probe_figures, probe_figures_of};
    use crate::store::testutil::{enrolled_router, ingest_one, open_temp, rich_report};
    use crate::store::Store;
    use routerstats_shared::model::{ProbeResult, ProbeRole};

    const H: i64 = BUCKET_1H_MS;
    const M5: i64 = BUCKET_5M_MS;
    /// An hour boundary.
    const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % BUCKET_1H_MS;

    #[test]
    fn plan_splits_a_window_into_raw_edges_5_minute_and_hour_buckets() {
        // Inside one 5-minute bucket: all raw.
        let p = plan(T0 + 1_000, T0 + 200_000, 0);
        assert_eq!(p.raw[0], (T0 + 1_000, T0 + 200_000));
        assert!(p.rollup_1h.0 > p.rollup_1h.1 && p.rollup_5m[0].0 > p.rollup_5m[0].1);
        // 1 hour 20 minutes, unaligned: raw edges, 5-minute buckets, one whole hour.
        let p = plan(T0 + 17 * 60_000, T0 + 2 * H + 7 * 60_000 + 1, 0);
        assert_eq!(
            p.raw,
            [
                (T0 + 17 * 60_000, T0 + 20 * 60_000),
                (T0 + 2 * H + 5 * 60_000, T0 + 2 * H + 7 * 60_000 + 1)
            ]
        );
        assert_eq!(p.rollup_5m[0], (T0 + 20 * 60_000, T0 + H - M5));
        assert_eq!(p.rollup_1h, (T0 + H, T0 + H));
        assert_eq!(p.rollup_5m[1], (T0 + 2 * H, T0 + 2 * H));
        // Rollups complete only from T0 + 2h: everything before is raw.
        let p = plan(T0 + 17 * 60_000, T0 + 4 * H, T0 + 2 * H);
        assert_eq!(p.raw[0], (T0 + 17 * 60_000, T0 + 2 * H));
        assert_eq!(p.rollup_1h, (T0 + 2 * H, T0 + 3 * H));
        // Rollups complete only after the window: all raw.
        assert_eq!(plan(T0, T0 + H, T0 + 5 * H).raw[0], (T0, T0 + H));
    }

    fn probe(
        target: &str,
        role: ProbeRole,
        sent: u32,
        received: u32,
        avg: Option<u32>,
    ) -> ProbeResult {
        ProbeResult {
            role,
            target: target.parse().unwrap(),
            name: "wan".into(),
            sent,
            received,
            rtt_min_us: avg.map(|a| a / 2),
            rtt_avg_us: avg,
            rtt_max_us: avg.map(|a| a * 2 + 13),
        }
    }

    /// Two routers reporting every 35 s (the second from 50 minutes on) for 3.5 hours, each
    /// report with a gateway probe and a target probe, some without replies or with losses.
    fn store_with_probes() -> (tempfile::TempDir, Store, [i64; 2]) {
        let (dir, mut store) = open_temp();
        let ids = [
            enrolled_router(&mut store, "gw").id,
            enrolled_router(&mut store, "ap").id,
        ];
        for seq in 1..=360u64 {
            for (i, id) in ids.iter().enumerate() {
                let ts = T0 + 2_000 + seq as i64 * 35_000 + i as i64 * 3_000;
                if i == 1 && seq < 86 {
                    continue;
                }
                let mut r = rich_report([i as u8 + 1; 16], seq, ts as u64, seq * 100);
                let k = seq as u32;
                r.probes = vec![
                    probe(
                        "192.0.2.1",
                        ProbeRole::Gateway,
                        3,
                        3 - u32::from(k.is_multiple_of(7)),
                        Some(900 + k * 37 % 5000),
                    ),
                    probe(
                        "2001:db8::1",
                        ProbeRole::Target,
                        4,
                        if k.is_multiple_of(11) { 0 } else { 4 },
                        (!k.is_multiple_of(11)).then_some(20_000 + k * 101 % 7919),
                    ),
                ];
                ingest_one(&mut store, *id, 0, &r);
            }
        }
        (dir, store, ids)
    }

    /// Windows over the data: unaligned and aligned edges, within one bucket, across hours,
    /// starting before and ending after the data.
    fn windows() -> Vec<(i64, i64)> {
        let mut w = Vec::new();
        for s in [
            T0 - H,
            T0,
            T0 + 1,
            T0 + 299_999,
            T0 + 17 * 60_000 + 333,
            T0 + H,
            T0 + 95 * 60_000,
        ] {
            for len in [
                1_000,
                M5,
                7 * 60_000 + 1,
                H,
                H + 1,
                2 * H - 1,
                3 * H + 11 * 60_000,
                24 * H,
            ] {
                w.push((s, s + len));
            }
        }
        w
    }

    fn assert_rollups_give_the_raw_figures(store: &Store, ids: [i64; 2], what: &str) {
        let conn = store.connection();
        let mut nonempty = 0;
        for (s, e) in windows() {
            let raw = probe_figures(conn, None, s, e).unwrap();
            let page = probe_figures_of(conn, (0, i64::MAX), s, e).unwrap();
            assert_eq!(page, raw, "{what}: window [{s}, {e})");
            for id in ids {
                let one = probe_figures_of(conn, (id - 1, id), s, e).unwrap();
                assert_eq!(
                    one.get(&id),
                    raw.get(&id),
                    "{what}: router {id}, [{s}, {e})"
                );
            }
            nonempty += usize::from(!raw.is_empty());
        }
        assert!(nonempty > 40, "{what}: the windows hold probe rows");
    }

    /// The rollup rows hold exactly the sums of the raw rows of their bucket.
    #[test]
    fn rollup_rows_equal_the_raw_sums() {
        let (_dir, store, _) = store_with_probes();
        let conn = store.connection();
        for (table, len) in [("probe_rollup_5m", M5), ("probe_rollup_1h", H)] {
            let raw = format!(
                "SELECT ts_ms / {len} * {len} AS b, router_id, count(*), sum(sent), sum(received), \
                 coalesce(sum(rtt_avg_us * received), 0), \
                 coalesce(sum(CASE WHEN rtt_avg_us IS NOT NULL THEN received END), 0), max(rtt_max_us) \
                 FROM probe_samples GROUP BY 1, 2"
            );
            let rollup = format!(
                "SELECT bucket_start_ms, router_id, probes, sent, received, rtt_weighted, \
                 rtt_received, rtt_max_us FROM {table}"
            );
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM ({raw})"), [], |r| r.get(0))
                .unwrap();
            assert!(n > 3, "{table}: buckets with probes");
            for (a, b) in [(&raw, &rollup), (&rollup, &raw)] {
                let diff: i64 = conn
                    .query_row(&format!("SELECT count(*) FROM ({a} EXCEPT {b})"), [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert_eq!(diff, 0, "{table}: rows of one not in the other");
            }
        }
    }

    /// The figures read from the rollups equal those of the raw rows for every window, for the
    /// whole page and router by router, before and after sealing.
    #[test]
    fn window_figures_equal_the_raw_figures() {
        let (_dir, mut store, ids) = store_with_probes();
        assert_eq!(rollup_start(store.connection()).unwrap(), 0);
        assert_rollups_give_the_raw_figures(&store, ids, "rows");
        store.seal_all(T0 + 30 * H).unwrap();
        let blocks: i64 = store
            .connection()
            .query_row("SELECT count(*) FROM raw_blocks", [], |r| r.get(0))
            .unwrap();
        assert!(blocks > 0, "sealed");
        assert_rollups_give_the_raw_figures(&store, ids, "sealed");
    }

    /// Retention deletes 5-minute probe buckets with the raw samples (`raw_days`, at least 8
    /// days: they serve the edges of windows of up to 7 days) and hour buckets with the other
    /// hour rollups (`rollup_1h_days`).
    #[test]
    fn retention_deletes_old_probe_rollups() {
        use crate::store::Retention;
        const DAY: i64 = 24 * H;
        let (_dir, mut store) = open_temp();
        let id = enrolled_router(&mut store, "gw").id;
        // One report every 6 hours over 40 days.
        for i in 0..160u64 {
            let ts = T0 + i as i64 * 6 * H;
            let mut r = rich_report([1; 16], i + 1, ts as u64, 1000 + i * 100);
            r.probes = vec![probe("192.0.2.1", ProbeRole::Gateway, 3, 3, Some(1000))];
            ingest_one(&mut store, id, 0, &r);
        }
        let count = |store: &Store, t: &str| -> i64 {
            store
                .connection()
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(
            (
                count(&store, "probe_rollup_5m"),
                count(&store, "probe_rollup_1h")
            ),
            (160, 160)
        );
        let now = T0 + 40 * DAY;
        let policy = Retention {
            raw_days: 8,
            rollup_5m_days: 35,
            rollup_1h_days: 400,
        };
        store.apply_retention(now, &policy).unwrap();
        // Buckets that ended by now - 8 days (raw retention) are gone (the first 32 days, 4
        // reports a day).
        let min5: i64 = store
            .connection()
            .query_row(
                "SELECT min(bucket_start_ms) FROM probe_rollup_5m",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(min5, now - 8 * DAY);
        assert_eq!(count(&store, "probe_rollup_5m"), 160 - 128);
        // Kept at least 8 days when raw samples are kept less.
        let (_dir2, mut short) = open_temp();
        let id2 = enrolled_router(&mut short, "gw").id;
        for i in 0..160u64 {
            let ts = T0 + i as i64 * 6 * H;
            let mut r = rich_report([1; 16], i + 1, ts as u64, 1000 + i * 100);
            r.probes = vec![probe("192.0.2.1", ProbeRole::Gateway, 3, 3, Some(1000))];
            ingest_one(&mut short, id2, 0, &r);
        }
        let two_days = Retention {
            raw_days: 2,
            ..policy
        };
        short.apply_retention(now, &two_days).unwrap();
        assert_eq!(count(&short, "probe_rollup_5m"), 32);
        assert_eq!(count(&store, "probe_rollup_1h"), 160);
        let all = Retention {
            raw_days: 0,
            rollup_5m_days: 0,
            rollup_1h_days: 0,
        };
        store.apply_retention(now + 9 * DAY, &all).unwrap();
        assert_eq!(
            (
                count(&store, "probe_rollup_5m"),
                count(&store, "probe_rollup_1h")
            ),
            (0, 0)
        );
    }

    /// A database migrated with data (rollups empty before their start): windows reaching
    /// before the start read that part from the raw rows and are still right.
    #[test]
    fn windows_before_the_rollup_start_read_raw_rows() {
        let (_dir, store, ids) = store_with_probes();
        let conn = store.connection();
        // As if the migration ran at T0 + 2h: nothing summed before it.
        let start = T0 + 2 * H;
        conn.execute_batch(&format!(
            "UPDATE probe_rollup_start SET start_ms = {start}; \
             DELETE FROM probe_rollup_5m WHERE bucket_start_ms < {start}; \
             DELETE FROM probe_rollup_1h WHERE bucket_start_ms < {start};"
        ))
        .unwrap();
        assert_eq!(rollup_start(conn).unwrap(), start);
        let before: i64 = conn
            .query_row(
                "SELECT count(*) FROM probe_samples WHERE ts_ms < ?1",
                [start],
                |r| r.get(0),
            )
            .unwrap();
        assert!(before > 100, "raw rows before the start");
        assert_rollups_give_the_raw_figures(&store, ids, "rollups from T0 + 2h");
    }

    /// The migration on a database with reports: complete from the hour after the newest
    /// report, and an empty database from the start.
    #[test]
    fn migration_marks_the_start_after_the_newest_report() {
        let conn = Connection::open_in_memory().unwrap();
        let migrations = super::super::schema::MIGRATIONS;
        // Up to version 18: MIGRATION_19 is the one tested.
        let before = &migrations[..18];
        for m in before {
            conn.execute_batch(m).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO routers (id, name, hostname, cert_fingerprint, cert_not_after, enrolled_at, last_report_ms) \
             VALUES (1, 'a', 'a', 'f1', 0, 0, 1700000123456), (2, 'b', 'b', 'f2', 0, 0, NULL); \
             INSERT INTO probe_samples (router_id, ts_ms, target, role, name, sent, received) \
             VALUES (2, 1700007300000, '192.0.2.1', 'gateway', 'wan', 3, 3);",
        )
        .unwrap();
        conn.execute_batch(MIGRATION_19).unwrap();
        // The newest probe row (1700007300000) is 15 minutes into its hour: the next one starts at
        // 1700010000000.
        assert_eq!(rollup_start(&conn).unwrap(), 1_700_010_000_000);
        let empty = Connection::open_in_memory().unwrap();
        for m in super::super::schema::MIGRATIONS {
            empty.execute_batch(m).unwrap();
        }
        assert_eq!(rollup_start(&empty).unwrap(), 0);
    }
}
