//! Fleet-wide aggregates kept at ingest (schema `MIGRATION_10`), so that the fleet-wide API
//! windows read a number of rows that does not grow with the length of the window:
//!
//! - `ovpn_rollup_1d`: OpenVPN client deltas per UTC day and session, the sums of that day's
//!   `ovpn_rollup_1h` rows (same key, `bucket_start_ms` a multiple of a day). A window of `d`
//!   days (`/api/vpn/statistics/usage`) reads at most one hour of raw samples, up to 23 hourly
//!   buckets and `d + 1` daily buckets per session instead of `24 d` hourly ones.
//!
//! Filled in the ingest transaction from the batch's hourly contributions
//! ([`flush_ovpn_days`]), backfilled from `ovpn_rollup_1h` by the migration, deleted by
//! retention once the whole day is older than the 1-hour rollup cutoff ([`apply_retention`]).

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

/// `{c} + excluded.{c}`, saturating at `i64::MAX` (SQLite would turn an overflow into a REAL).
fn sat_sum(c: &str) -> String {
    format!(
        "CASE WHEN {c} > 9223372036854775807 - excluded.{c} THEN 9223372036854775807 \
         ELSE {c} + excluded.{c} END"
    )
}

/// UPSERTs the batch's hourly OpenVPN contributions into their days of `ovpn_rollup_1d` (one
/// statement per day and session of the batch).
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
    let (rx, txb, n) = (sat_sum("rx_bytes"), sat_sum("tx_bytes"), sat_sum("samples"));
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO ovpn_rollup_1d (bucket_start_ms, router_id, instance, common_name, real_address, \
         connected_since, rx_bytes, tx_bytes, last_ts_ms, samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (bucket_start_ms, router_id, instance, common_name, real_address, connected_since) \
         DO UPDATE SET rx_bytes = {rx}, tx_bytes = {txb}, last_ts_ms = max(last_ts_ms, excluded.last_ts_ms), \
         samples = {n}"
    ))?;
    for ((day, router, inst, cn, real, since), (rx, txb, last, n)) in days {
        st.execute(params![
            day, router, inst, cn, real, since, rx, txb, last, n
        ])?;
    }
    Ok(())
}

/// Deletes the daily buckets that ended at or before `cutoff_ms` (the 1-hour rollup cutoff:
/// hourly buckets are deleted once they ended by then). A day that straddles the cutoff keeps
/// its row, with the sums of hours already deleted from `ovpn_rollup_1h`: a window reaching
/// past `rollup_1h_days` (at most 90 days are asked for; the default keeps 400) would count them.
/// Returns the rows deleted.
pub(super) fn apply_retention(tx: &Transaction<'_>, cutoff_ms: i64) -> Result<u64, StoreError> {
    let n = tx
        .prepare_cached("DELETE FROM ovpn_rollup_1d WHERE bucket_start_ms <= ?1")?
        .execute([cutoff_ms.saturating_sub(BUCKET_1D_MS)])?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{enrolled_router, open_temp, rich_report};
    use crate::store::{IngestItem, Retention, Store};

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
        for (a, b) in [(DAYS_FROM_HOURS, DAYS), (DAYS, DAYS_FROM_HOURS)] {
            assert_eq!(
                i64_query(store, &format!("SELECT count(*) FROM ({a} EXCEPT {b})")),
                0,
                "{what}: {a} EXCEPT {b}"
            );
        }
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
            .execute_batch(&format!("DELETE FROM ovpn_rollup_1d; {backfill}"))
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
}
