//! Retention: deletes raw reports and samples older than `raw_days`, and rollup buckets that
//! ended more than their days ago (one transaction per router, then one for the rollups).
//!
//! Raw tables are clustered by `(router_id, ts_ms, ...)`, so the delete runs as one range per
//! router; rollups have an index on `bucket_start_ms`. Sealed blocks (`store::sealed`) are
//! deleted whole, per router, once all of their hour is older than `raw_days` (so up to an hour
//! more than the rows is kept), and their keys by one range of `raw_block_keys`.

use std::collections::BTreeSet;

use rusqlite::{params, TransactionBehavior};

use super::ingest::{BUCKET_1H_MS, BUCKET_5M_MS};
use super::{Store, StoreError};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How long data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Reports and raw samples (default 8 days).
    pub raw_days: u32,
    /// Interface 5-minute rollups (default 35 days; station 5-minute rollups are kept
    /// `raw_days`).
    pub rollup_5m_days: u32,
    /// 1-hour rollups (default 400 days).
    pub rollup_1h_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_days: 8,
            rollup_5m_days: 35,
            rollup_1h_days: 400,
        }
    }
}

/// Rows deleted by [`Store::apply_retention`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    pub reports: u64,
    /// Raw interface, station, WireGuard, OpenVPN and probe samples, and per-report station
    /// totals.
    pub samples: u64,
    pub rollup_5m: u64,
    /// Interface, station, WireGuard, OpenVPN and probe 1-hour rollups, and fleet station hours.
    pub rollup_1h: u64,
}

/// Every table deleted at `raw_days` (the raw level): `reports`, the sample tables and the
/// 5-minute station rollup (for the storage benchmark's bytes per report).
pub const RAW_LEVEL_TABLES: &[&str] = &[
    "reports",
    "interface_samples",
    "station_samples",
    "station_link_samples",
    "wg_peer_samples",
    "ovpn_client_samples",
    "probe_samples",
    "station_rollup_5m",
    "raw_blocks",
    "raw_block_keys",
    "report_seq_runs",
    "raw_block_tails",
];

/// Tables of raw samples, all with `router_id` and `ts_ms` leading their primary key.
const SAMPLE_TABLES: &[&str] = &[
    "interface_samples",
    "station_samples",
    "station_link_samples",
    "wg_peer_samples",
    "ovpn_client_samples",
    "probe_samples",
];
const ROLLUP_1H_TABLES: &[&str] = &[
    "interface_rollup_1h",
    "station_rollup_1h",
    "wg_rollup_1h",
    "ovpn_rollup_1h",
    "station_fleet_1h",
    "probe_rollup_1h",
];

fn cutoff(now_ms: i64, days: u32) -> i64 {
    now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

impl Store {
    /// Deletes data older than the policy allows, relative to `now_ms` (Unix ms): raw rows with
    /// `ts_ms < now - raw_days`, and rollup buckets that ended at or before their cutoff.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        policy: &Retention,
    ) -> Result<RetentionStats, StoreError> {
        // Held rollup sums are rebuilt from raw rows and add to rollup rows: write them first.
        self.flush_rollups_before(i64::MAX)?;
        let raw_cut = cutoff(now_ms, policy.raw_days);
        // A bucket is deleted once all of it is older than the cutoff.
        let cut_5m = cutoff(now_ms, policy.rollup_5m_days).saturating_sub(BUCKET_5M_MS);
        let cut_1h = cutoff(now_ms, policy.rollup_1h_days).saturating_sub(BUCKET_1H_MS);
        let mut stats = RetentionStats::default();
        // One transaction per router, so the write lock is never held for long.
        for id in self.router_ids_with_data()? {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx
                .prepare_cached("DELETE FROM reports WHERE router_id = ?1 AND ts_ms < ?2")?
                .execute(params![id, raw_cut])?;
            stats.reports += n as u64;
            for table in SAMPLE_TABLES {
                let sql = format!("DELETE FROM {table} WHERE router_id = ?1 AND ts_ms < ?2");
                stats.samples += tx.prepare_cached(&sql)?.execute(params![id, raw_cut])? as u64;
            }
            super::wg_latest::apply_retention(&tx, id, raw_cut)?;
            tx.commit()?;
            let (reports, samples) = self.delete_old_blocks(id, raw_cut)?;
            stats.reports += reports;
            stats.samples += samples;
        }
        self.delete_old_block_keys(raw_cut)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        stats.rollup_5m += tx
            .prepare_cached("DELETE FROM interface_rollup_5m WHERE bucket_start_ms <= ?1")?
            .execute([cut_5m])? as u64;
        // Probe 5-minute buckets only serve the edges of windows of at most 7 days: kept as
        // long as raw samples, and at least 8 days.
        let probe_cut = raw_cut.min(now_ms.saturating_sub(8 * DAY_MS));
        stats.rollup_5m += tx
            .prepare_cached("DELETE FROM probe_rollup_5m WHERE bucket_start_ms <= ?1")?
            .execute([probe_cut.saturating_sub(BUCKET_5M_MS)])? as u64;
        // Station 5-minute buckets only serve sub-hour parts of recent windows: raw retention.
        stats.rollup_5m += tx
            .prepare_cached("DELETE FROM station_rollup_5m WHERE bucket_start_ms <= ?1")?
            .execute([raw_cut.saturating_sub(BUCKET_5M_MS)])? as u64;
        for table in ROLLUP_1H_TABLES {
            let sql = format!("DELETE FROM {table} WHERE bucket_start_ms <= ?1");
            stats.rollup_1h += tx.prepare_cached(&sql)?.execute([cut_1h])? as u64;
        }
        let (days, seconds) =
            super::fleetagg::apply_retention(&tx, cutoff(now_ms, policy.rollup_1h_days), raw_cut)?;
        stats.rollup_1h += days;
        stats.samples += seconds;
        // Names (current state, not samples): not counted in the stats.
        super::vpnstate::apply_retention(&tx, raw_cut)?;
        stats.rollup_5m += super::station_peaks::apply_retention(&tx, now_ms)?;
        tx.commit()?;
        // Keep the planner's statistics fresh; cheap when nothing changed much.
        self.conn.execute_batch("PRAGMA optimize")?;
        Ok(stats)
    }

    /// Router ids present in the raw tables (also of routers no longer in `routers`), found by
    /// skipping along each table's leading `router_id` key: a few seeks per router.
    fn router_ids_with_data(&self) -> Result<BTreeSet<i64>, StoreError> {
        let mut ids = BTreeSet::new();
        for table in ["reports", "raw_blocks"].iter().chain(SAMPLE_TABLES) {
            super::sealed::router_ids_in(&self.conn, table, &mut ids)?;
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{enrolled_router, open_temp, rich_report};
    use crate::store::IngestItem;

    const HOUR: u64 = 3_600_000;
    const DAY: u64 = 24 * HOUR;
    /// A day boundary: 2023-11-15T00:00:00Z.
    const T0: u64 = 1_700_006_400_000;

    /// The raw level is what `run` deletes at `raw_days`: `reports`, the sample tables and the
    /// 5-minute station rollup.
    #[test]
    fn raw_level_lists_what_raw_retention_deletes() {
        let mut expected = vec!["reports"];
        expected.extend(SAMPLE_TABLES);
        expected.extend([
            "station_rollup_5m",
            "raw_blocks",
            "raw_block_keys",
            "report_seq_runs",
            "raw_block_tails",
        ]);
        assert_eq!(RAW_LEVEL_TABLES, expected.as_slice());
    }

    fn counts(store: &Store) -> Vec<(String, i64)> {
        [
            "reports",
            "interface_samples",
            "station_samples",
            "wg_peer_samples",
            "ovpn_client_samples",
            "interface_rollup_5m",
            "interface_rollup_1h",
            "station_rollup_1h",
            "wg_rollup_1h",
            "ovpn_rollup_1h",
            "station_fleet_1h",
            "station_rollup_5m",
            "leases",
        ]
        .iter()
        .map(|t| {
            (
                t.to_string(),
                store
                    .connection()
                    .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                    .unwrap(),
            )
        })
        .collect()
    }

    fn min_ts(store: &Store, table: &str, col: &str) -> i64 {
        store
            .connection()
            .query_row(&format!("SELECT min({col}) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn retention_deletes_old_rows_only() {
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        // One report every 6 hours over 40 days (the 5-minute rollups are sparse but present).
        let reports: Vec<_> = (0..160u64)
            .map(|i| rich_report([1; 16], i + 1, T0 + i * 6 * HOUR, 1000 + i * 100))
            .collect();
        let batch: Vec<IngestItem<'_>> = reports
            .iter()
            .map(|rep| IngestItem {
                router_id: r.id,
                received_at_ms: 0,
                report: rep,
            })
            .collect();
        store.ingest(&batch).unwrap();
        let before = counts(&store);
        let now = T0 + 40 * DAY;
        // Nothing is old enough under a generous policy.
        let generous = Retention {
            raw_days: 100,
            rollup_5m_days: 100,
            rollup_1h_days: 100,
        };
        assert_eq!(
            store.apply_retention(now as i64, &generous).unwrap(),
            RetentionStats::default()
        );
        assert_eq!(counts(&store), before);

        let policy = Retention {
            raw_days: 8,
            rollup_5m_days: 35,
            rollup_1h_days: 400,
        };
        let stats = store.apply_retention(now as i64, &policy).unwrap();
        let raw_cut = (now - 8 * DAY) as i64;
        // Reports at T0 + 32 days and later stay: 8 days * 4 per day.
        assert_eq!(stats.reports, 160 - 32);
        assert_eq!(min_ts(&store, "reports", "ts_ms"), raw_cut);
        for table in [
            "interface_samples",
            "station_samples",
            "station_link_samples",
            "wg_peer_samples",
            "ovpn_client_samples",
        ] {
            assert_eq!(min_ts(&store, table, "ts_ms"), raw_cut, "{table}");
        }
        // Two interfaces, two stations, the two links of the MLO station, one peer and one
        // client per report, and its second of `fleet_totals_1s`.
        assert_eq!(stats.samples, (160 - 32) * 9);
        // 5-minute buckets that ended by now - 35 days are gone; the bucket at the cutoff stays.
        let cut_5m = (now - 35 * DAY) as i64;
        assert_eq!(
            min_ts(&store, "interface_rollup_5m", "bucket_start_ms"),
            cut_5m
        );
        // Interfaces: reports in the first 5 days (4 a day), two each; stations (raw
        // retention): the 128 reports before the raw cutoff, two each.
        assert_eq!(stats.rollup_5m, 5 * 4 * 2 + (160 - 32) * 2);
        assert_eq!(
            min_ts(&store, "station_rollup_5m", "bucket_start_ms"),
            raw_cut
        );
        assert_eq!(stats.rollup_1h, 0);
        // Current state and the router are untouched.
        let after = counts(&store);
        assert_eq!(
            after.iter().find(|(t, _)| t == "leases"),
            before.iter().find(|(t, _)| t == "leases")
        );
        assert_eq!(
            after.iter().find(|(t, _)| t == "interface_rollup_1h"),
            before.iter().find(|(t, _)| t == "interface_rollup_1h")
        );
        assert!(store.router("gw").unwrap().is_some());

        // Rows of a router deleted behind the store's back are found too.
        store
            .connection()
            .execute_batch(
                "PRAGMA foreign_keys = OFF; DELETE FROM routers; PRAGMA foreign_keys = ON;",
            )
            .unwrap();
        assert_eq!(
            store
                .router_ids_with_data()
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![r.id]
        );
        // Everything raw goes with raw_days = 0 relative to a time after the last report.
        let all = Retention {
            raw_days: 0,
            rollup_5m_days: 0,
            rollup_1h_days: 0,
        };
        store.apply_retention((now + DAY) as i64, &all).unwrap();
        for (table, n) in counts(&store) {
            if table != "leases" {
                assert_eq!(n, 0, "{table}");
            }
        }
    }

    #[test]
    fn default_policy() {
        assert_eq!(
            Retention::default(),
            Retention {
                raw_days: 8,
                rollup_5m_days: 35,
                rollup_1h_days: 400
            }
        );
        assert_eq!(cutoff(i64::MIN + 1, u32::MAX), i64::MIN);
    }
}
