//! Fleet-wide aggregates kept at ingest (schema `MIGRATION_10`), so that the fleet-wide API
//! windows read a number of rows that does not grow with the length of the window:
//!
//! - `ovpn_rollup_1d`: OpenVPN client deltas per UTC day and session, the sums of that day's
//!   `ovpn_rollup_1h` rows (same key, `bucket_start_ms` a multiple of a day). A window of `d`
//!   days (`/api/vpn/statistics/usage`) reads at most one hour of raw samples, up to 23 hourly
//!   buckets and `d + 1` daily buckets per session instead of `24 d` hourly ones.
//!
//! - `fleet_totals_1s`: per second of report time, the fleet's station delta sums (those of
//!   its `station_samples` rows) and probe sums (its `probe_samples` rows). The fleet-wide
//!   real-time series (`/api/bandwidth/usage/real-time` without a user or device) reads one row
//!   per second of its window (at most 3,600 for an hour; 86,400 for the longest, a day, of
//!   probe figures) instead of one per report and router.
//!
//! Filled with the other rollup sums when they are written (`super::ingest::Held`): the daily
//! rows from the hourly contributions
//! ([`flush_ovpn_days`]), the per-second rows from each stored report's station totals and
//! probe rows ([`FleetSeconds`]). Backfilled from the rows they summarize by the migration
//! ([`super::schema::fleet_aggregates_backfill`]), deleted by retention ([`apply_retention`]):
//! a day once it ended by the 1-hour rollup cutoff, a second once it is older than the raw
//! cutoff.

use std::collections::HashMap;

use rusqlite::{params, Transaction};

use super::StoreError;

/// Length of a daily bucket.
pub const BUCKET_1D_MS: i64 = 24 * 60 * 60 * 1000;

/// One hourly OpenVPN contribution of a batch: key (hour bucket, router, instance, common name,
/// real address, connected since or -1) and sums (rx, tx, newest sample time, samples).
pub(super) type OvpnHour<'a> = ((i64, i64, &'a str, &'a str, &'a str, i64), OvpnSums);

/// Sums of one OpenVPN rollup bucket: (rx bytes, tx bytes, newest sample time, samples).
pub(super) type OvpnSums = (i64, i64, i64, i64);

use super::ingest::{max_nullable, sat_sum};

/// UPSERTs OpenVPN session sums into `table` (`ovpn_rollup_1h` or `ovpn_rollup_1d`, the same
/// key and columns): sums added, the newest sample time kept.
pub(super) fn flush_ovpn_hours<'a>(
    tx: &Transaction<'_>,
    table: &str,
    rows: impl IntoIterator<Item = OvpnHour<'a>>,
) -> Result<(), StoreError> {
    let (rx, txb, n) = (sat_sum("rx_bytes"), sat_sum("tx_bytes"), sat_sum("samples"));
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO {table} (bucket_start_ms, router_id, instance, common_name, real_address, \
         connected_since, rx_bytes, tx_bytes, last_ts_ms, samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (bucket_start_ms, router_id, instance, common_name, real_address, connected_since) \
         DO UPDATE SET rx_bytes = {rx}, tx_bytes = {txb}, last_ts_ms = max(last_ts_ms, excluded.last_ts_ms), \
         samples = {n}"
    ))?;
    for ((bucket, router, inst, cn, real, since), (rx, txb, last, n)) in rows {
        st.execute(params![
            bucket, router, inst, cn, real, since, rx, txb, last, n
        ])?;
    }
    Ok(())
}

/// UPSERTs the station sums of whole hours into `station_fleet_1h`: per hour, the sums
/// `[rx bytes, tx bytes, samples, new station rows]` and maxima `[rx, tx]` of the
/// `station_rollup_1h` rows just written.
pub(super) fn flush_station_hours(
    tx: &Transaction<'_>,
    hours: impl IntoIterator<Item = (i64, [i64; 4], [Option<i64>; 2])>,
) -> Result<(), StoreError> {
    let [rx, txb, n, stations] = ["rx_bytes", "tx_bytes", "samples", "stations"].map(sat_sum);
    let [max_rx, max_tx] = ["max_rx_bps", "max_tx_bps"].map(max_nullable);
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO station_fleet_1h (bucket_start_ms, rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples, \
         stations) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (bucket_start_ms) DO UPDATE SET \
         rx_bytes = {rx}, tx_bytes = {txb}, max_rx_bps = {max_rx}, max_tx_bps = {max_tx}, samples = {n}, \
         stations = {stations}"
    ))?;
    for (bucket, [rx, txb, n, new_rows], [mrx, mtx]) in hours {
        st.execute(params![bucket, rx, txb, mrx, mtx, n, new_rows])?;
    }
    Ok(())
}

/// UPSERTs hourly OpenVPN contributions into their days of `ovpn_rollup_1d` (one
/// statement per day and session).
pub(super) fn flush_ovpn_days<'a>(
    tx: &Transaction<'_>,
    hours: impl IntoIterator<Item = OvpnHour<'a>>,
) -> Result<(), StoreError> {
    let mut days: HashMap<(i64, i64, &str, &str, &str, i64), OvpnSums> = HashMap::new();
    for ((bucket, router, inst, cn, real, since), (rx, txb, last, n)) in hours {
        let day = bucket.div_euclid(BUCKET_1D_MS).saturating_mul(BUCKET_1D_MS);
        match days.entry((day, router, inst, cn, real, since)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((rx, txb, last, n));
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let a = o.get_mut();
                a.0 = a.0.saturating_add(rx);
                a.1 = a.1.saturating_add(txb);
                a.2 = a.2.max(last);
                a.3 = a.3.saturating_add(n);
            }
        }
    }
    if days.is_empty() {
        return Ok(());
    }
    flush_ovpn_hours(tx, "ovpn_rollup_1d", days)
}

/// Sums of one second of `fleet_totals_1s`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SecondSums {
    rx: i64,
    tx: i64,
    rx_deltas: i64,
    tx_deltas: i64,
    probes: i64,
    sent: i64,
    received: i64,
    rtt_weighted: i64,
    rtt_received: i64,
    rtt_max_us: Option<i64>,
}

/// Contributions to `fleet_totals_1s`, by second, UPSERTed once per second when the rollup
/// sums they belong to are written (`super::ingest::Held`; [`FleetSeconds::flush`]).
#[derive(Debug, Default)]
pub(super) struct FleetSeconds(HashMap<i64, SecondSums>);

impl FleetSeconds {
    fn at(&mut self, ts_ms: i64) -> &mut SecondSums {
        self.0.entry(ts_ms.div_euclid(1000)).or_default()
    }

    /// The sums of a report's stored station samples, for a report made at `ts_ms`.
    pub(super) fn add_stations(
        &mut self,
        ts_ms: i64,
        rx: i64,
        tx: i64,
        rx_deltas: i64,
        tx_deltas: i64,
    ) {
        let s = self.at(ts_ms);
        s.rx = s.rx.saturating_add(rx);
        s.tx = s.tx.saturating_add(tx);
        s.rx_deltas = s.rx_deltas.saturating_add(rx_deltas);
        s.tx_deltas = s.tx_deltas.saturating_add(tx_deltas);
    }

    /// A `probe_samples` row inserted for a report made at `ts_ms`.
    pub(super) fn add_probe(
        &mut self,
        ts_ms: i64,
        sent: u32,
        received: u32,
        rtt_avg_us: Option<u32>,
        rtt_max_us: Option<u32>,
    ) {
        let s = self.at(ts_ms);
        let received = i64::from(received);
        s.probes = s.probes.saturating_add(1);
        s.sent = s.sent.saturating_add(i64::from(sent));
        s.received = s.received.saturating_add(received);
        if let Some(avg) = rtt_avg_us {
            s.rtt_weighted = s
                .rtt_weighted
                .saturating_add(i64::from(avg).saturating_mul(received));
            s.rtt_received = s.rtt_received.saturating_add(received);
        }
        if let Some(max) = rtt_max_us {
            s.rtt_max_us = Some(
                s.rtt_max_us
                    .map_or(i64::from(max), |m| m.max(i64::from(max))),
            );
        }
    }

    /// UPSERTs the batch's seconds into `fleet_totals_1s`.
    pub(super) fn flush(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let cols = [
            "rx_bytes",
            "tx_bytes",
            "rx_deltas",
            "tx_deltas",
            "probes",
            "probe_sent",
            "probe_received",
            "probe_rtt_weighted",
            "probe_rtt_received",
        ];
        let sums: Vec<String> = cols
            .iter()
            .map(|c| format!("{c} = {}", sat_sum(c)))
            .collect();
        let mut st = tx.prepare_cached(&format!(
            "INSERT INTO fleet_totals_1s (second, {}, probe_rtt_max_us) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (second) DO UPDATE SET {}, \
             probe_rtt_max_us = {}",
            cols.join(", "),
            sums.join(", "),
            max_nullable("probe_rtt_max_us")
        ))?;
        for (second, s) in &self.0 {
            st.execute(params![
                second,
                s.rx,
                s.tx,
                s.rx_deltas,
                s.tx_deltas,
                s.probes,
                s.sent,
                s.received,
                s.rtt_weighted,
                s.rtt_received,
                s.rtt_max_us
            ])?;
        }
        Ok(())
    }
}

/// Deletes the daily buckets that ended at or before `cutoff_ms` (the 1-hour rollup cutoff:
/// hourly buckets are deleted once they ended by then). A day that straddles the cutoff keeps
/// its row, with the sums of hours already deleted from `ovpn_rollup_1h`: a window reaching
/// past `rollup_1h_days` (at most 90 days are asked for; the default keeps 400) would count them.
/// Returns the rows deleted: (days, seconds).
/// Also deletes the seconds of `fleet_totals_1s` wholly before `raw_cutoff_ms` (raw samples
/// are deleted when `ts_ms < raw_cutoff_ms`).
pub(super) fn apply_retention(
    tx: &Transaction<'_>,
    cutoff_ms: i64,
    raw_cutoff_ms: i64,
) -> Result<(u64, u64), StoreError> {
    let days = tx
        .prepare_cached("DELETE FROM ovpn_rollup_1d WHERE bucket_start_ms <= ?1")?
        .execute([cutoff_ms.saturating_sub(BUCKET_1D_MS)])?;
    let seconds = tx
        .prepare_cached("DELETE FROM fleet_totals_1s WHERE second < ?1")?
        .execute([raw_cutoff_ms.div_euclid(1000)])?;
    Ok((days as u64, seconds as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{assert_same_rows, enrolled_router, open_temp, rich_report};
    use crate::store::{IngestItem, Retention, Store};
    use routerstats_shared::model::{ProbeResult, ProbeRole, Report};
    use rusqlite::params;

    const HOUR: u64 = 3_600_000;
    /// A day boundary: 2023-11-15T00:00:00Z.
    const T0: u64 = 1_700_006_400_000;
    const BOOT: [u8; 16] = [7; 16];

    fn i64_query(store: &Store, sql: &str) -> i64 {
        store.connection().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// `ovpn_rollup_1h` summed per day, in `ovpn_rollup_1d`'s shape.
    const DAYS_FROM_HOURS: &str = "SELECT bucket_start_ms - bucket_start_ms % 86400000, router_id, instance, \
         common_name, real_address, connected_since, sum(rx_bytes), sum(tx_bytes), max(last_ts_ms), sum(samples) \
         FROM ovpn_rollup_1h GROUP BY 1, 2, 3, 4, 5, 6";
    const DAYS: &str =
        "SELECT bucket_start_ms, router_id, instance, common_name, real_address, connected_since, \
         rx_bytes, tx_bytes, last_ts_ms, samples FROM ovpn_rollup_1d";

    fn assert_days_equal_hours(store: &Store, what: &str) {
        assert_same_rows(store, DAYS_FROM_HOURS, DAYS, what);
    }

    /// Two routers report every 50 minutes for 40 hours (across two day boundaries), in batches
    /// of 3 reports (so several batches add to the same day and hour rows), with a counter
    /// reset at report 20: the daily rows are the sums of the hourly rows, as written at ingest
    /// and as the migration backfills them; retention deletes the days that ended by its
    /// cutoff. (Revoking a router changes no rollup row: the route reads revoked routers' rows
    /// from both tables alike.)
    #[test]
    fn daily_openvpn_rows_are_the_sums_of_the_hourly_rows() {
        let (_dir, mut store) = open_temp();
        let a = enrolled_router(&mut store, "ap-a");
        let b = enrolled_router(&mut store, "ap-b");
        let mut reports = Vec::new();
        let mut c = 1000;
        for seq in 1..=48u64 {
            c = if seq == 20 { 10 } else { c + seq * 7 };
            reports.push(rich_report(BOOT, seq, T0 - 4 * HOUR + seq * 50 * 60_000, c));
        }
        for chunk in reports.chunks(3) {
            let batch: Vec<IngestItem<'_>> = chunk
                .iter()
                .flat_map(|rep| {
                    [a.id, b.id].map(|router_id| IngestItem {
                        router_id,
                        received_at_ms: 0,
                        report: rep,
                    })
                })
                .collect();
            store.ingest(&batch).unwrap();
        }
        let days = i64_query(
            &store,
            "SELECT count(DISTINCT bucket_start_ms) FROM ovpn_rollup_1d",
        );
        let hours = i64_query(
            &store,
            "SELECT count(DISTINCT bucket_start_ms) FROM ovpn_rollup_1h",
        );
        assert_eq!(days, 3, "T0 - 4 h .. T0 + 36 h spans three days");
        assert!(hours > 30, "{hours} hourly buckets");
        let bytes = i64_query(
            &store,
            "SELECT sum(rx_bytes) + sum(tx_bytes) FROM ovpn_rollup_1d",
        );
        assert!(bytes > 0, "{bytes} bytes");
        assert_days_equal_hours(&store, "ingest");

        // The migration's backfill computes the same rows from `ovpn_rollup_1h`.
        let backfill = super::super::schema::fleet_aggregates_backfill();
        assert!(
            backfill.starts_with("INSERT INTO ovpn_rollup_1d"),
            "{backfill}"
        );
        store
            .connection()
            .execute_batch(&format!(
                "DELETE FROM ovpn_rollup_1d; DELETE FROM fleet_totals_1s; {backfill}"
            ))
            .unwrap();
        assert_eq!(
            i64_query(&store, "SELECT count(*) FROM ovpn_rollup_1d"),
            i64_query(&store, &format!("SELECT count(*) FROM ({DAYS_FROM_HOURS})"))
        );
        assert_days_equal_hours(&store, "migration");

        // Retention with 1-hour rollups kept for one day, at T0 + 2 days + 1 h (cutoff T0 +
        // 1 day + 1 h): the days starting at T0 - 1 day and T0 ended by then and go; the day
        // starting at T0 + 1 day straddles the cutoff and stays.
        let policy = Retention {
            raw_days: 1,
            rollup_5m_days: 1,
            rollup_1h_days: 1,
        };
        let now = (T0 + 2 * 24 * HOUR + HOUR) as i64;
        store.apply_retention(now, &policy).unwrap();
        let left: Vec<i64> = store
            .connection()
            .prepare("SELECT DISTINCT bucket_start_ms FROM ovpn_rollup_1d ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, vec![T0 as i64 + BUCKET_1D_MS]);
    }

    /// `station_samples` and `probe_samples` summed per second, in `fleet_totals_1s`'s shape
    /// (seconds without probes have a NULL maximum). Written apart from the backfill statement
    /// (`schema::fleet_aggregates_backfill`), which is checked against it.
    const SECONDS_FROM_ROWS: &str = "SELECT s, sum(rx), sum(tx), sum(rxn), sum(txn), sum(n), sum(sent), \
         sum(recv), sum(w), sum(wr), max(mx) FROM ( \
         SELECT ts_ms / 1000 AS s, ifnull(rx_delta, 0) AS rx, ifnull(tx_delta, 0) AS tx, \
         iif(rx_delta IS NULL, 0, 1) AS rxn, iif(tx_delta IS NULL, 0, 1) AS txn, 0 AS n, \
         0 AS sent, 0 AS recv, 0 AS w, 0 AS wr, NULL AS mx FROM station_samples UNION ALL \
         SELECT ts_ms / 1000, 0, 0, 0, 0, 1, sent, received, coalesce(rtt_avg_us * received, 0), \
         CASE WHEN rtt_avg_us IS NOT NULL THEN received ELSE 0 END, rtt_max_us FROM probe_samples) GROUP BY s";
    const SECONDS: &str = "SELECT second, rx_bytes, tx_bytes, rx_deltas, tx_deltas, probes, probe_sent, \
         probe_received, probe_rtt_weighted, probe_rtt_received, probe_rtt_max_us FROM fleet_totals_1s";

    fn assert_seconds_equal_rows(store: &Store, what: &str) {
        assert_same_rows(store, SECONDS_FROM_ROWS, SECONDS, what);
    }

    fn probe(target: &str, sent: u32, received: u32, avg: Option<u32>) -> ProbeResult {
        ProbeResult {
            role: ProbeRole::Gateway,
            target: target.parse().unwrap(),
            name: "eth0.2".into(),
            sent,
            received,
            rtt_min_us: avg.map(|a| a / 2),
            rtt_avg_us: avg,
            rtt_max_us: avg.map(|a| a * 2),
        }
    }

    /// Three routers report every 30 s, two of them in the same second (200 ms apart) and one
    /// 1.5 s later, in batches of 4 reports per router (several batches add to the same
    /// second's row: the third router's reports land in the second of the next batch's first
    /// ones), with a counter reset, probes with and without replies, and a second report of a
    /// router with the same time (its station totals add up, its probe rows are ignored like
    /// in `probe_samples`): `fleet_totals_1s` equals the per-second sums of the rows it
    /// summarizes, as written at ingest and as the migration backfills it; retention deletes
    /// the seconds wholly before the raw cutoff.
    #[test]
    fn fleet_seconds_are_the_sums_of_the_report_rows() {
        let (_dir, mut store) = open_temp();
        let ids = ["ap-a", "ap-b", "ap-c"].map(|n| enrolled_router(&mut store, n).id);
        let mut items: Vec<(i64, Report)> = Vec::new();
        let mut c = 1000;
        for seq in 1..=40u64 {
            c = if seq == 20 { 10 } else { c + seq * 11 };
            let ts = T0 + seq * 30_000;
            for (i, id) in ids.iter().enumerate() {
                let offset = [0, 200, 31_500][i];
                let mut r = rich_report([i as u8 + 1; 16], seq, ts + offset, c);
                let lost = seq % 5 == 0;
                r.probes = vec![
                    probe(
                        "192.0.2.1",
                        4,
                        if lost { 0 } else { 4 },
                        (!lost).then_some(900 + seq as u32),
                    ),
                    probe("192.0.2.53", 3, 2, Some(20_000)),
                ];
                items.push((*id, r));
            }
        }
        // A second report of router a at the time of its report 7 (another boot).
        let mut again = rich_report([9; 16], 1, T0 + 7 * 30_000, 5);
        again.probes = vec![probe("192.0.2.1", 4, 4, Some(1))];
        items.push((ids[0], again));
        for chunk in items.chunks(12) {
            let batch: Vec<IngestItem<'_>> = chunk
                .iter()
                .map(|(router_id, report)| IngestItem {
                    router_id: *router_id,
                    received_at_ms: 0,
                    report,
                })
                .collect();
            store.ingest(&batch).unwrap();
        }
        let seconds = i64_query(&store, "SELECT count(*) FROM fleet_totals_1s");
        let reports = i64_query(&store, "SELECT count(DISTINCT ts_ms) FROM station_samples");
        assert_eq!(
            seconds, 80,
            "two seconds per cycle ({reports} report times)"
        );
        let with_rtt = i64_query(
            &store,
            "SELECT count(*) FROM fleet_totals_1s WHERE probe_rtt_received > 0",
        );
        let bytes = i64_query(
            &store,
            "SELECT sum(rx_bytes + tx_bytes) FROM fleet_totals_1s",
        );
        assert!(
            with_rtt > 0 && bytes > 0,
            "{with_rtt} seconds with replies, {bytes} bytes"
        );
        assert_seconds_equal_rows(&store, "ingest");

        // The fleet's probe figures per period (`api::fleet::probe_buckets` without a router,
        // from these rows) equal the old query over `probe_samples`, for periods and windows
        // starting on whole seconds (as the fleet-wide real-time series does), an hour-aligned
        // hour step, and windows ending inside a second.
        let old_sql = "SELECT ?1 + (ts_ms - ?1) / ?3 * ?3, sum(sent), sum(received), \
             sum(rtt_avg_us * received) * 1.0 / nullif(sum(CASE WHEN rtt_avg_us IS NOT NULL THEN received END), 0), \
             max(rtt_max_us) FROM probe_samples WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY 1";
        let mut periods = 0;
        for (start, end, step) in [
            (T0, T0 + 1_300_000, 60_000),
            (T0 + 45_000, T0 + 600_250, 60_000),
            (T0 + 31_000, T0 + 1_231_000, 120_000),
            (T0 - 3_000 * 1000, T0 + 1_500_000, 3_600_000),
            (T0 + 212_000, T0 + 240_400, 60_000),
        ] {
            let (start, end) = (start as i64, end as i64);
            let new = crate::api::fleet::probe_buckets(store.connection(), None, start, end, step)
                .unwrap();
            let mut st = store.connection().prepare(old_sql).unwrap();
            let old: HashMap<i64, (i64, i64, Option<f64>, Option<i64>)> = st
                .query_map(params![start, end, step], |r| {
                    Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            type Figures = (i64, i64, Option<f64>, Option<f64>);
            let new: HashMap<i64, Figures> = new
                .into_iter()
                .map(|(t, f)| (t, (f.sent, f.received, f.latency_ms, f.max_latency_ms)))
                .collect();
            // As `probe_row` turns the microseconds into milliseconds (two decimals).
            let ms = |v: Option<f64>| v.map(|v| (v / 10.0).round() / 100.0);
            let old: HashMap<i64, Figures> = old
                .into_iter()
                .map(|(t, (a, b, l, m))| (t, (a, b, ms(l), ms(m.map(|m| m as f64)))))
                .collect();
            assert_eq!(new, old, "{start}..{end} step {step}");
            periods += old.len();
        }
        assert!(periods > 30, "{periods} periods compared");

        let backfill = super::super::schema::fleet_aggregates_backfill();
        store
            .connection()
            .execute_batch(&format!(
                "DELETE FROM ovpn_rollup_1d; DELETE FROM fleet_totals_1s; {backfill}"
            ))
            .unwrap();
        assert_eq!(
            i64_query(&store, "SELECT count(*) FROM fleet_totals_1s"),
            seconds
        );
        assert_seconds_equal_rows(&store, "migration");

        // Raw retention of one day, one day after report 20 of router c (T0 + 600 s + 31.5 s):
        // its second is cut in the middle and stays, every earlier one goes.
        let policy = Retention {
            raw_days: 1,
            rollup_5m_days: 2,
            rollup_1h_days: 2,
        };
        store
            .apply_retention((T0 + 631_500 + 24 * HOUR) as i64, &policy)
            .unwrap();
        let first = i64_query(&store, "SELECT min(second) FROM fleet_totals_1s");
        assert_eq!(first, ((T0 + 631_500) / 1000) as i64);
        assert_seconds_equal_rows(&store, "after retention");
    }
}
