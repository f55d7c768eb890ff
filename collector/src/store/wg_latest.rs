//! The newest values of each current WireGuard peer, kept at ingest in `wg_peers` (schema
//! [`MIGRATION_17`]), so that `/api/metrics/summary` sums the fleet's peers from one narrow,
//! router-clustered table instead of looking up every router's newest `wg_peer_samples` rows
//! (one primary-key probe per router into the largest raw table).
//!
//! - `wg_peers.ts_ms`, `latest_handshake`, `rx_bytes`, `tx_bytes`, `rx_bps`, `tx_bps`: the
//!   stored sample of that peer at the router's newest report time, copied from the
//!   `wg_peer_samples` row itself ([`refresh`], in the ingest transaction of each newest report,
//!   after `wg_peers` follows the report's peer set), so the values are the stored sample's
//!   exactly, also when an earlier report with the same time was stored first (its samples
//!   win). A peer without a sample at that time gets `NULL`s.
//! - Readers take a row only where `ts_ms` equals the router's `last_report_ms`: exactly the rows
//!   the old join over the newest samples found (the one known difference is the one of
//!   `wg_peers` itself: see `super::ingest::sync_wg_peers`).
//! - Retention clears the values of rows whose sample it deletes ([`apply_retention`]), so a
//!   router silent for longer than the raw retention drops out of the sums as it did when they
//!   were read from the samples.
//!
//! Backfilled by the migration from the newest samples (one primary-key lookup per peer;
//! [`backfill`]: seconds at 10,000 routers).

use rusqlite::{params, Transaction};

use super::StoreError;

/// Version 17: the newest values of each `wg_peers` row (see the module documentation).
pub(super) const MIGRATION_17: &str = r#"
ALTER TABLE wg_peers ADD COLUMN ts_ms INTEGER;
ALTER TABLE wg_peers ADD COLUMN latest_handshake INTEGER;
ALTER TABLE wg_peers ADD COLUMN rx_bytes INTEGER;
ALTER TABLE wg_peers ADD COLUMN tx_bytes INTEGER;
ALTER TABLE wg_peers ADD COLUMN rx_bps INTEGER;
ALTER TABLE wg_peers ADD COLUMN tx_bps INTEGER;

UPDATE wg_peers SET (ts_ms, latest_handshake, rx_bytes, tx_bytes, rx_bps, tx_bps) = (
    SELECT w.ts_ms, w.latest_handshake, w.rx_bytes, w.tx_bytes, w.rx_bps, w.tx_bps
    FROM routers r CROSS JOIN wg_peer_samples w ON w.router_id = r.id AND w.ts_ms = r.last_report_ms
    AND w.iface = wg_peers.iface AND w.public_key = wg_peers.public_key
    WHERE r.id = wg_peers.router_id);
"#;

/// The statement of [`MIGRATION_17`] that fills the values from the newest samples, for a
/// database whose samples and `wg_peers` rows were written directly (the API benchmark's
/// generator, after `schema::wg_peers_backfill`).
pub fn backfill() -> &'static str {
    MIGRATION_17
        .find("UPDATE")
        .map_or("", |i| &MIGRATION_17[i..])
}

/// Copies the stored samples of router `rid` at its newest report time `ts` into its `wg_peers`
/// rows (run after `wg_peers` follows that report's peer set).
pub(super) fn refresh(tx: &Transaction<'_>, rid: i64, ts: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE wg_peers SET (ts_ms, latest_handshake, rx_bytes, tx_bytes, rx_bps, tx_bps) = (\
         SELECT w.ts_ms, w.latest_handshake, w.rx_bytes, w.tx_bytes, w.rx_bps, w.tx_bps \
         FROM wg_peer_samples w WHERE w.router_id = ?1 AND w.ts_ms = ?2 \
         AND w.iface = wg_peers.iface AND w.public_key = wg_peers.public_key) \
         WHERE router_id = ?1",
    )?
    .execute(params![rid, ts])?;
    Ok(())
}

/// Clears the values of router `rid`'s rows whose sample is older than `raw_cut` (Unix ms),
/// in the transaction that deletes those samples.
pub(super) fn apply_retention(
    tx: &Transaction<'_>,
    rid: i64,
    raw_cut: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE wg_peers SET ts_ms = NULL, latest_handshake = NULL, rx_bytes = NULL, \
         tx_bytes = NULL, rx_bps = NULL, tx_bps = NULL WHERE router_id = ?1 AND ts_ms < ?2",
    )?
    .execute(params![rid, raw_cut])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{assert_same_rows, enrolled_router, ingest_one, rich_report};
    use crate::store::{Retention, Store};

    const BOOT: [u8; 16] = [7; 16];
    const DAY: u64 = 24 * 3_600_000;
    /// 2023-11-15T00:00:00Z.
    const T0: u64 = 1_700_006_400_000;

    /// Each unrevoked router's newest peers as the old summary read them: the samples at the
    /// router's newest report time.
    const FROM_SAMPLES: &str = "SELECT w.router_id, w.iface, w.public_key, w.ts_ms, \
         w.latest_handshake, w.rx_bytes, w.tx_bytes, w.rx_bps, w.tx_bps \
         FROM routers r CROSS JOIN wg_peer_samples w ON w.router_id = r.id \
         AND w.ts_ms = r.last_report_ms WHERE r.revoked_at IS NULL";
    /// The same from the values kept in `wg_peers` (what `/api/metrics/summary` sums).
    const FROM_CURRENT: &str = "SELECT w.router_id, w.iface, w.public_key, w.ts_ms, \
         w.latest_handshake, w.rx_bytes, w.tx_bytes, w.rx_bps, w.tx_bps \
         FROM routers r CROSS JOIN wg_peers w ON w.router_id = r.id \
         AND w.ts_ms = r.last_report_ms WHERE r.revoked_at IS NULL";

    fn count(store: &Store, sql: &str) -> i64 {
        store
            .connection()
            .query_row(&format!("SELECT count(*) FROM ({sql})"), [], |r| r.get(0))
            .unwrap()
    }

    /// The kept values equal the newest samples (and there are `n` of them, `rated` with a rate).
    fn check(store: &Store, what: &str, n: i64, rated: i64) {
        assert_same_rows(store, FROM_SAMPLES, FROM_CURRENT, what);
        assert_eq!(count(store, FROM_CURRENT), n, "{what}: rows");
        let with_rate = format!("{FROM_CURRENT} AND w.rx_bps IS NOT NULL");
        assert_eq!(count(store, &with_rate), rated, "{what}: rows with a rate");
    }

    #[test]
    fn kept_values_equal_the_newest_samples_across_restart_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routerstats.db");
        let mut store = Store::open(&path).unwrap();
        let a = enrolled_router(&mut store, "gw").id;
        let b = enrolled_router(&mut store, "ap").id;
        let ts = |t: u64| i64::try_from(t).unwrap();
        ingest_one(&mut store, a, ts(T0), &rich_report(BOOT, 1, T0, 1000));
        ingest_one(&mut store, b, ts(T0), &rich_report(BOOT, 1, T0, 1000));
        check(&store, "first reports", 2, 0);

        // A second report with one more peer: rates for the peer seen before.
        let mut second = rich_report(BOOT, 2, T0 + 30_000, 1100);
        let mut laptop = second.wireguard[0].peers[0].clone();
        laptop.public_key = "PEERKEY2=".into();
        laptop.latest_handshake = None;
        second.wireguard[0].peers.push(laptop);
        ingest_one(&mut store, a, ts(T0 + 30_000), &second);
        check(&store, "second report", 3, 1);

        // A newer report with the very same time: its samples are not stored (the first one's
        // stay), and the kept values stay those samples'.
        let mut same_time = rich_report(BOOT, 3, T0 + 30_000, 5000);
        same_time.wireguard[0]
            .peers
            .push(second.wireguard[0].peers[1].clone());
        ingest_one(&mut store, a, ts(T0 + 30_000), &same_time);
        check(&store, "same time", 3, 1);

        // A late (older) report changes nothing; revoking a router drops it from both.
        ingest_one(
            &mut store,
            a,
            ts(T0),
            &rich_report(BOOT, 0, T0 - 30_000, 900),
        );
        check(&store, "late report", 3, 1);
        store
            .connection()
            .execute("UPDATE routers SET revoked_at = 1 WHERE id = ?1", [b])
            .unwrap();
        check(&store, "revoked", 2, 1);
        store
            .connection()
            .execute("UPDATE routers SET revoked_at = NULL WHERE id = ?1", [b])
            .unwrap();

        // After a restart (cold caches), the peer set and values follow the next report.
        drop(store);
        let mut store = Store::open(&path).unwrap();
        ingest_one(
            &mut store,
            a,
            ts(T0 + DAY),
            &rich_report(BOOT, 4, T0 + DAY, 2000),
        );
        check(&store, "after restart", 2, 1);

        // Retention deletes `b`'s newest samples (older than 8 days), not `a`'s.
        let late = T0 + 9 * DAY;
        ingest_one(&mut store, a, ts(late), &rich_report(BOOT, 5, late, 3000));
        let stats = store
            .apply_retention(ts(late), &Retention::default())
            .unwrap();
        assert!(stats.samples > 0, "{stats:?}");
        check(&store, "after retention", 1, 1);
        let kept: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM wg_peers WHERE router_id = ?1 AND ts_ms IS NOT NULL",
                [b],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            kept, 0,
            "retention cleared the values of b's deleted samples"
        );

        // The migration's backfill computes the same values from the samples.
        store
            .connection()
            .execute_batch(&format!(
                "UPDATE wg_peers SET ts_ms = NULL, rx_bytes = NULL, rx_bps = NULL; {}",
                backfill()
            ))
            .unwrap();
        check(&store, "backfill", 1, 1);
    }
}
