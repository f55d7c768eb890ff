//! The layout of a schema-10 database, rebuilt from a current one, for the upgrade benchmark
//! (`bench-storage --upgrade`) and the tests of a half-done upgrade.
//!
//! Schema 10 sealed the raw sample tables only: `reports` and `station_rollup_5m` stayed rows.
//! Migration 11 converts nothing; the writer's sealing then finds those rows in closed hours
//! and seals them a few router-hours per step (`super::sealed`). [`Store::rebuild_schema10_layout`]
//! moves the sealed `reports` and `station_rollup_5m` blocks of a database back into rows
//! (read through the store's own readers: `reports_all` and
//! `sealed::for_each_sealed_station_5m`), which is that layout: the same answers, and the same
//! work left for the writer.

use rusqlite::{params, TransactionBehavior};

use super::sealed::{for_each_sealed_station_5m, Station5m, REPORTS_TBL, STATION_5M_TBL};
use super::{Store, StoreError};

impl Store {
    /// Moves every sealed `reports` and `station_rollup_5m` block back into rows (the layout of
    /// a schema-10 database; see the module doc), in one transaction. Returns the number of
    /// (router, hour) groups whose reports went back to rows: the sealing work it leaves.
    pub fn rebuild_schema10_layout(&mut self) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let groups: i64 = tx.query_row(
            "SELECT count(*) FROM raw_blocks WHERE tbl = ?1",
            [REPORTS_TBL],
            |r| r.get(0),
        )?;
        // Rows and blocks alike (a late row of a sealed hour is both a row and, once merged,
        // a block row: the id keeps one).
        tx.execute_batch("CREATE TEMP TABLE schema10_reports AS SELECT * FROM reports_all;")?;
        tx.execute("DELETE FROM raw_blocks WHERE tbl = ?1", [REPORTS_TBL])?;
        tx.execute("DELETE FROM raw_block_tails WHERE tbl = ?1", [REPORTS_TBL])?;
        tx.execute_batch(
            "DELETE FROM report_seq_runs;
             INSERT OR IGNORE INTO reports SELECT * FROM temp.schema10_reports;
             DROP TABLE temp.schema10_reports;",
        )?;
        let mut sealed_5m: Vec<(i64, Station5m)> = Vec::new();
        for_each_sealed_station_5m(&tx, i64::MIN, i64::MAX, None, |router, s| {
            sealed_5m.push((router, s))
        })?;
        {
            // A bucket both sealed and a row (late rows not merged yet) sums like the readers.
            let mut ins = tx.prepare(
                "INSERT INTO station_rollup_5m (mac, bucket_start_ms, router_id, rx_bytes, \
                 tx_bytes, max_rx_bps, max_tx_bps, samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (bucket_start_ms, router_id, mac) DO UPDATE SET \
                 rx_bytes = rx_bytes + excluded.rx_bytes, tx_bytes = tx_bytes + excluded.tx_bytes, \
                 max_rx_bps = max(coalesce(max_rx_bps, excluded.max_rx_bps), coalesce(excluded.max_rx_bps, max_rx_bps)), \
                 max_tx_bps = max(coalesce(max_tx_bps, excluded.max_tx_bps), coalesce(excluded.max_tx_bps, max_tx_bps)), \
                 samples = samples + excluded.samples",
            )?;
            for (router, s) in &sealed_5m {
                ins.execute(params![
                    s.mac,
                    s.bucket_start_ms,
                    router,
                    s.rx_bytes,
                    s.tx_bytes,
                    s.max_rx_bps,
                    s.max_tx_bps,
                    s.samples
                ])?;
            }
        }
        tx.execute("DELETE FROM raw_blocks WHERE tbl = ?1", [STATION_5M_TBL])?;
        tx.execute(
            "DELETE FROM raw_block_tails WHERE tbl = ?1",
            [STATION_5M_TBL],
        )?;
        tx.execute(
            "DELETE FROM raw_block_keys WHERE tbl = ?1",
            [STATION_5M_TBL],
        )?;
        tx.commit()?;
        // The writer's work list is rebuilt from the new layout.
        self.seal = Default::default();
        Ok(groups as u64)
    }
}
