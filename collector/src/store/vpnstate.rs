//! OpenVPN client names per router, kept at ingest (schema `MIGRATION_12`), so that
//! `/api/vpn/clients` reads the names of one page of routers instead of walking every common
//! name of the fleet to place the clients connected nowhere:
//!
//! - `ovpn_client_names`: one row per router and common name with stored samples: the newest
//!   sample time of that name on that router (`last_ts_ms`). Clustered by `(router_id,
//!   common_name)`: a page of routers is one range, and a batch dirties about one page per router
//!   (like the raw samples), no secondary index.
//!
//! - `ovpn_instance_sessions`: per router and OpenVPN instance, the sessions its newest report
//!   lists (current state, replaced from each newest report: [`set_instance_sessions`], from the
//!   rows just stored, so it is the stored samples' count exactly; the writer skips it for a
//!   report without clients once it knows the router has no rows left). `/api/vpn/health`
//!   counts the fleet from it (one narrow row per router and instance) instead of reading every
//!   router's newest `ovpn_client_samples` rows.
//!
//! `ovpn_client_names` is filled in the ingest transaction from the batch's hourly OpenVPN contributions
//! ([`flush_client_names`], one UPSERT per router and name of the batch), backfilled by the
//! migration from `ovpn_rollup_1d` (the daily sums: their `last_ts_ms` is the newest sample of
//! the day; [`backfill`]), deleted by retention with the raw samples ([`apply_retention`]): a
//! name whose samples on a router are all older than the raw cutoff is no longer listed there.
//! A row is a candidate: readers confirm a client's last sighting from the samples themselves.

use rusqlite::{params, Transaction};

use super::StoreError;

/// Version 12: `ovpn_client_names` and `ovpn_instance_sessions` (see the module
/// documentation), backfilled from `ovpn_rollup_1d` (one row per session and day: about
/// 20,000 x 8 rows at 10,000 routers) and from each router's newest report (one primary-key
/// range per router).
pub(super) const MIGRATION_12: &str = r#"
CREATE TABLE ovpn_client_names (
    router_id    INTEGER NOT NULL,
    common_name  TEXT NOT NULL,
    last_ts_ms   INTEGER NOT NULL,
    PRIMARY KEY (router_id, common_name)
) WITHOUT ROWID;

CREATE TABLE ovpn_instance_sessions (
    router_id  INTEGER NOT NULL,
    instance   TEXT NOT NULL,
    sessions   INTEGER NOT NULL,
    PRIMARY KEY (router_id, instance)
) WITHOUT ROWID;

INSERT INTO ovpn_client_names (router_id, common_name, last_ts_ms)
SELECT router_id, common_name, max(last_ts_ms) FROM ovpn_rollup_1d
GROUP BY router_id, common_name;

INSERT INTO ovpn_instance_sessions (router_id, instance, sessions)
SELECT r.id, o.instance, count(*) FROM routers r
CROSS JOIN ovpn_client_samples o ON o.router_id = r.id AND o.ts_ms = r.last_report_ms
GROUP BY r.id, o.instance;
"#;

/// The statement of [`MIGRATION_12`] that fills `ovpn_client_names` from `ovpn_rollup_1d` (the
/// migration's backfill), for a database whose rollup rows were written directly (the API
/// benchmark's generator). Run on an empty version-12 table, after `ovpn_rollup_1d` is filled.
pub fn backfill() -> &'static str {
    MIGRATION_12
        .find("INSERT INTO")
        .map_or("", |i| &MIGRATION_12[i..])
}

/// UPSERTs the newest sample time of each (router, common name) of a batch: `names` yields
/// (router id, common name, sample time), as many times as the batch has samples or buckets.
pub(super) fn flush_client_names<'a>(
    tx: &Transaction<'_>,
    names: impl IntoIterator<Item = (i64, &'a str, i64)>,
) -> Result<(), StoreError> {
    let newest = super::max_per_key(names.into_iter().map(|(router, cn, ts)| ((router, cn), ts)));
    if newest.is_empty() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO ovpn_client_names (router_id, common_name, last_ts_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT (router_id, common_name) DO UPDATE SET last_ts_ms = excluded.last_ts_ms \
         WHERE excluded.last_ts_ms > last_ts_ms",
    )?;
    for ((router, cn), ts) in newest {
        st.execute(params![router, cn, ts])?;
    }
    Ok(())
}

/// Replaces router `router_id`'s `ovpn_instance_sessions` rows with the sessions per instance
/// of its samples at `ts_ms` (its newest report, just stored); returns the rows it wrote.
pub(super) fn set_instance_sessions(
    tx: &Transaction<'_>,
    router_id: i64,
    ts_ms: i64,
) -> Result<usize, StoreError> {
    tx.prepare_cached("DELETE FROM ovpn_instance_sessions WHERE router_id = ?1")?
        .execute([router_id])?;
    let rows = tx
        .prepare_cached(
            "INSERT INTO ovpn_instance_sessions (router_id, instance, sessions) \
             SELECT router_id, instance, count(*) FROM ovpn_client_samples \
             WHERE router_id = ?1 AND ts_ms = ?2 GROUP BY instance",
        )?
        .execute(params![router_id, ts_ms])?;
    Ok(rows)
}

/// Deletes the names whose newest sample on their router is older than `raw_cutoff_ms` (raw
/// samples are deleted when `ts_ms < raw_cutoff_ms`). Returns the rows deleted.
pub(super) fn apply_retention(tx: &Transaction<'_>, raw_cutoff_ms: i64) -> Result<u64, StoreError> {
    let n = tx
        .prepare_cached("DELETE FROM ovpn_client_names WHERE last_ts_ms < ?1")?
        .execute([raw_cutoff_ms])?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use crate::store::testutil::{enrolled_router, ingest_one, open_temp, rich_report};
    use crate::store::Store;

    const BOOT: [u8; 16] = [9; 16];
    /// 2023-11-15T00:00:00Z.
    const T0: u64 = 1_700_006_400_000;

    fn sessions(store: &Store, router_id: i64) -> Vec<(String, i64)> {
        let mut st = store
            .connection()
            .prepare(
                "SELECT instance, sessions FROM ovpn_instance_sessions WHERE router_id = ?1 \
                 ORDER BY instance",
            )
            .unwrap();
        st.query_map([router_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn instance_sessions_follow_the_newest_report_with_and_without_clients() {
        let (dir, mut store) = open_temp();
        let gw = enrolled_router(&mut store, "gw");
        let plain = enrolled_router(&mut store, "plain");
        let with = |seq: u64| rich_report(BOOT, seq, T0 + seq * 30_000, seq * 100);
        let without = |seq: u64| {
            let mut r = with(seq);
            r.openvpn.clear();
            r
        };
        let at = |seq: u64| i64::try_from(T0 + seq * 30_000).unwrap();
        ingest_one(&mut store, gw.id, at(1), &with(1));
        ingest_one(&mut store, plain.id, at(1), &without(1));
        assert_eq!(sessions(&store, gw.id), [("server".to_string(), 1)]);
        assert!(sessions(&store, plain.id).is_empty());
        // The clients are gone: so are the rows, and they stay gone while none come back.
        for seq in 2..=3 {
            ingest_one(&mut store, gw.id, at(seq), &without(seq));
            ingest_one(&mut store, plain.id, at(seq), &without(seq));
            assert!(sessions(&store, gw.id).is_empty(), "report {seq}");
            assert!(sessions(&store, plain.id).is_empty(), "report {seq}");
        }
        ingest_one(&mut store, gw.id, at(4), &with(4));
        assert_eq!(sessions(&store, gw.id), [("server".to_string(), 1)]);
        // A restarted writer does not know what is stored: a report without clients still
        // clears the rows.
        drop(store);
        let mut store = Store::open(&dir.path().join("routerstats.db")).unwrap();
        ingest_one(&mut store, gw.id, at(5), &without(5));
        assert!(sessions(&store, gw.id).is_empty());
    }
}
