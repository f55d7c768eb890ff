//! Per-router station peak rates per 5 minutes (`station_peak_5m`, schema `MIGRATION_13`), kept
//! at ingest so that `/api/bandwidth/monitoring/alerts` finds the stations that may have reached
//! its threshold by index seeks instead of summing every station of the fleet.
//!
//! A row (5-minute bucket, router) holds `peak_bps`: the highest per-report rate, in either
//! direction, of any station of that router in that bucket, i.e. the largest `max_rx_bps` /
//! `max_tx_bps` of the router's `station_rollup_5m` rows of the bucket (a router or bucket
//! without any known station rate has no row). A station's rate over a window reached a
//! threshold only if its router's row of one of the window's buckets did, so the routers of
//! the rows at or over it (index `station_peak_5m_peak`: one seek per bucket) are the only ones
//! whose stations need summing.
//!
//! Written in the ingest transaction from the batch's 5-minute station contributions
//! ([`flush`], `max` with the stored peak), backfilled from `station_rollup_5m` by the migration
//! ([`super::schema::station_peaks_backfill`], the last [`KEEP_MS`] before its newest bucket),
//! and deleted by retention once older than [`KEEP_MS`] ([`apply_retention`]): the alerts
//! window is at most 180 minutes.

use rusqlite::{params, Transaction};

use super::StoreError;

/// How long the rows are kept: the longest alerts window (180 minutes) plus the 5-minute bucket
/// it starts in, with an hour to spare.
pub const KEEP_MS: i64 = 4 * 60 * 60 * 1000;

/// UPSERTs a batch's contributions, given as (5-minute bucket, router, station peak rate in
/// either direction or None): one statement per bucket and router of the batch.
pub(super) fn flush(
    tx: &Transaction<'_>,
    stations: impl IntoIterator<Item = (i64, i64, Option<i64>)>,
) -> Result<(), StoreError> {
    let peaks = super::max_per_key(
        stations
            .into_iter()
            .filter_map(|(bucket, router, peak)| Some(((bucket, router), peak?))),
    );
    if peaks.is_empty() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO station_peak_5m (bucket_start_ms, router_id, peak_bps) VALUES (?1, ?2, ?3) \
         ON CONFLICT (bucket_start_ms, router_id) DO UPDATE SET peak_bps = excluded.peak_bps \
         WHERE excluded.peak_bps > peak_bps",
    )?;
    for ((bucket, router), peak) in peaks {
        st.execute(params![bucket, router, peak])?;
    }
    Ok(())
}

/// Deletes the buckets that started more than [`KEEP_MS`] before `now_ms`; returns how many.
pub(super) fn apply_retention(tx: &Transaction<'_>, now_ms: i64) -> Result<u64, StoreError> {
    let n = tx
        .prepare_cached("DELETE FROM station_peak_5m WHERE bucket_start_ms < ?1")?
        .execute([now_ms.saturating_sub(KEEP_MS)])?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use crate::store::testutil::{assert_same_rows, enrolled_router, open_temp, rich_report};
    use crate::store::{IngestItem, Retention, Store};

    /// A 5-minute boundary: 2023-11-15T00:00:00Z.
    const T0: u64 = 1_700_006_400_000;

    /// `station_rollup_5m` reduced to `station_peak_5m`'s shape.
    const PEAKS_FROM_ROLLUP: &str = "SELECT bucket_start_ms, router_id, \
         max(max(coalesce(max_rx_bps, -1), coalesce(max_tx_bps, -1))) AS p FROM station_rollup_5m \
         GROUP BY bucket_start_ms, router_id HAVING p >= 0";
    const PEAKS: &str = "SELECT bucket_start_ms, router_id, peak_bps FROM station_peak_5m";

    fn count(store: &Store, sql: &str) -> i64 {
        store.connection().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn assert_peaks_equal_rollup(store: &Store, what: &str) {
        assert_same_rows(store, PEAKS_FROM_ROLLUP, PEAKS, what);
    }

    /// Two routers report every 40 s for an hour, in batches of 4 reports per router (several
    /// batches add to one bucket's row, and a counter reset gives a report without rates): the
    /// peaks equal the per-router maxima of `station_rollup_5m`, as kept at ingest and as the
    /// migration backfills them; retention keeps [`super::KEEP_MS`].
    #[test]
    fn peaks_are_the_maxima_of_the_station_rollup() {
        let (_dir, mut store) = open_temp();
        let ids = ["ap-a", "ap-b"].map(|n| enrolled_router(&mut store, n).id);
        let mut items = Vec::new();
        let mut c = 1000;
        for seq in 1..=90u64 {
            // Growth that rises per report, so that every bucket has its own peak.
            c = if seq == 30 { 10 } else { c + seq * seq * 1_000 };
            for (i, id) in ids.iter().enumerate() {
                let r = rich_report(
                    [i as u8 + 1; 16],
                    seq,
                    T0 + seq * 40_000,
                    c * (i as u64 + 1),
                );
                items.push((*id, r));
            }
        }
        for chunk in items.chunks(8) {
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
        let rows = count(&store, "SELECT count(*) FROM station_peak_5m");
        assert!(rows >= 2 * 12, "{rows} rows: two routers, 12 buckets");
        let distinct = count(
            &store,
            "SELECT count(DISTINCT peak_bps) FROM station_peak_5m",
        );
        assert!(distinct > 5, "{distinct} different peaks");
        assert_peaks_equal_rollup(&store, "ingest");

        let backfill = crate::store::schema::station_peaks_backfill();
        assert!(
            backfill.starts_with("INSERT INTO station_peak_5m"),
            "{backfill}"
        );
        store
            .connection()
            .execute_batch(&format!("DELETE FROM station_peak_5m; {backfill}"))
            .unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM station_peak_5m"), rows);
        assert_peaks_equal_rollup(&store, "migration");

        // Retention 3.5 hours after the last report keeps the buckets of the last 4 hours: the
        // first half hour goes.
        let now = (T0 + 90 * 40_000) as i64 + 12_600_000;
        store.apply_retention(now, &Retention::default()).unwrap();
        let first = count(&store, "SELECT min(bucket_start_ms) FROM station_peak_5m");
        assert!(first >= now - super::KEEP_MS, "{first}");
        let left = count(&store, "SELECT count(*) FROM station_peak_5m");
        assert!(left > 0 && left < rows, "{left} of {rows} rows left");
    }
}
