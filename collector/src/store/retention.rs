//! Retention: deletes raw reports and samples older than `raw_days`, and rollup buckets that
//! ended more than their days ago, in one transaction.
//!
//! Raw tables are clustered by `(router_id, ts_ms, ...)`, so the delete runs as one range per
//! router; rollups have an index on `bucket_start_ms`.

use rusqlite::{params, TransactionBehavior};

use super::ingest::{BUCKET_1H_MS, BUCKET_5M_MS};
use super::{Store, StoreError};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How long data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Reports and raw samples (default 8 days).
    pub raw_days: u32,
    /// 5-minute rollups (default 35 days).
    pub rollup_5m_days: u32,
    /// 1-hour rollups (default 400 days).
    pub rollup_1h_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { raw_days: 8, rollup_5m_days: 35, rollup_1h_days: 400 }
    }
}

/// Rows deleted by [`Store::apply_retention`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    pub reports: u64,
    /// Raw interface, station, WireGuard and OpenVPN samples.
    pub samples: u64,
    pub rollup_5m: u64,
    /// Interface, station and WireGuard 1-hour rollups.
    pub rollup_1h: u64,
}

/// Tables of raw samples, all with `router_id` and `ts_ms` leading their primary key.
const SAMPLE_TABLES: &[&str] = &["interface_samples", "station_samples", "wg_peer_samples", "ovpn_client_samples"];
const ROLLUP_1H_TABLES: &[&str] = &["interface_rollup_1h", "station_rollup_1h", "wg_rollup_1h"];

fn cutoff(now_ms: i64, days: u32) -> i64 {
    now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

impl Store {
    /// Deletes data older than the policy allows, relative to `now_ms` (Unix ms): raw rows with
    /// `ts_ms < now - raw_days`, and rollup buckets that ended at or before their cutoff.
    pub fn apply_retention(&mut self, now_ms: i64, policy: &Retention) -> Result<RetentionStats, StoreError> {
        let raw_cut = cutoff(now_ms, policy.raw_days);
        // A bucket is deleted once all of it is older than the cutoff.
        let cut_5m = cutoff(now_ms, policy.rollup_5m_days).saturating_sub(BUCKET_5M_MS);
        let cut_1h = cutoff(now_ms, policy.rollup_1h_days).saturating_sub(BUCKET_1H_MS);
        let mut stats = RetentionStats::default();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let routers: Vec<i64> = {
            let mut st = tx.prepare("SELECT id FROM routers UNION SELECT DISTINCT router_id FROM reports")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in &routers {
            let n = tx
                .prepare_cached("DELETE FROM reports WHERE router_id = ?1 AND ts_ms < ?2")?
                .execute(params![id, raw_cut])?;
            stats.reports += n as u64;
            for table in SAMPLE_TABLES {
                let sql = format!("DELETE FROM {table} WHERE router_id = ?1 AND ts_ms < ?2");
                stats.samples += tx.prepare_cached(&sql)?.execute(params![id, raw_cut])? as u64;
            }
        }
        stats.rollup_5m +=
            tx.prepare_cached("DELETE FROM interface_rollup_5m WHERE bucket_start_ms <= ?1")?.execute([cut_5m])? as u64;
        for table in ROLLUP_1H_TABLES {
            let sql = format!("DELETE FROM {table} WHERE bucket_start_ms <= ?1");
            stats.rollup_1h += tx.prepare_cached(&sql)?.execute([cut_1h])? as u64;
        }
        tx.commit()?;
        // Keep the planner's statistics fresh; cheap when nothing changed much.
        self.conn.execute_batch("PRAGMA optimize")?;
        Ok(stats)
    }
}
