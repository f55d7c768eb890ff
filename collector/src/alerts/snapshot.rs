//! Reads what the rules need from what ingest already stores, on the alert service's own
//! read-only connection: one query for the routers and their newest reports (through
//! `routers.last_report_id`), then one query per sample table joined on each router's newest
//! report time, each run only when some scope turns on a rule that needs it.
//!
//! Cost: the joins are written `CROSS JOIN` so SQLite keeps the order routers -> report (rowid)
//! -> samples (primary key `router_id, ts_ms`): left to itself, without table statistics, it
//! scans the whole sample table instead (a test checks the plans). OpenVPN clients come from
//! `ovpn_rollup_1h` (one row per session and hour) rather than the raw samples.

use std::collections::HashMap;

use rusqlite::Connection;

use super::config::AlertsConfig;
use super::rules::{
    IfaceSnap, OvpnGoneSnap, ProbeSnap, ReportSnap, RouterSnap, StationSnap, WgPeerSnap,
};

const ROUTERS_SQL: &str = "SELECT r.id, r.name, r.site, r.last_seen_ms, r.cert_not_after, \
     p.ts_ms, p.boot_id, p.dropped_reports, p.cpu_permille, p.mem_total_kb, p.mem_available_kb, \
     p.disk_mount, p.disk_used_bytes, p.disk_total_bytes, p.station_count \
     FROM routers r LEFT JOIN reports p ON p.id = r.last_report_id \
     WHERE r.revoked_at IS NULL ORDER BY r.id";

const IFACES_SQL: &str = "SELECT r.id, s.name, s.kind, s.rx_bps, s.tx_bps FROM routers r \
     CROSS JOIN reports p ON p.id = r.last_report_id \
     CROSS JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms = p.ts_ms WHERE r.revoked_at IS NULL";

const STATIONS_SQL: &str = "SELECT r.id, s.iface, s.mac, s.rx_bps, s.tx_bps FROM routers r \
     CROSS JOIN reports p ON p.id = r.last_report_id \
     CROSS JOIN station_samples s ON s.router_id = r.id AND s.ts_ms = p.ts_ms \
     WHERE r.revoked_at IS NULL AND max(coalesce(s.rx_bps, 0), coalesce(s.tx_bps, 0)) > ?1";

const WG_SQL: &str = "SELECT r.id, s.iface, s.public_key, s.name, s.latest_handshake FROM routers r \
     CROSS JOIN reports p ON p.id = r.last_report_id \
     CROSS JOIN wg_peer_samples s ON s.router_id = r.id AND s.ts_ms = p.ts_ms WHERE r.revoked_at IS NULL";

const PROBES_SQL: &str = "SELECT r.id, s.target, s.name, s.sent, s.received, s.rtt_avg_us FROM routers r \
     CROSS JOIN reports p ON p.id = r.last_report_id \
     CROSS JOIN probe_samples s ON s.router_id = r.id AND s.ts_ms = p.ts_ms WHERE r.revoked_at IS NULL";

/// Current WAN addresses (primary key `router_id, device, addr`).
const WAN_SQL: &str = "SELECT w.router_id, w.addr FROM routers r \
     CROSS JOIN wan_addresses w ON w.router_id = r.id WHERE r.revoked_at IS NULL ORDER BY w.router_id, w.addr";

/// OpenVPN sessions' newest sample time per client, over the 1-hour buckets from ?1 on.
const OVPN_SQL: &str =
    "SELECT router_id, instance, common_name, max(last_ts_ms) FROM ovpn_rollup_1h \
     WHERE bucket_start_ms >= ?1 GROUP BY router_id, instance, common_name";

/// Reads the fleet snapshot at `now_ms`.
pub fn read(
    conn: &Connection,
    cfg: &AlertsConfig,
    now_ms: i64,
) -> rusqlite::Result<Vec<RouterSnap>> {
    let mut routers = Vec::new();
    let mut index = HashMap::new();
    {
        let mut st = conn.prepare_cached(ROUTERS_SQL)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let ts: Option<i64> = r.get(5)?;
            let report = match ts {
                Some(ts_ms) => Some(ReportSnap {
                    ts_ms,
                    boot_id: r.get(6)?,
                    dropped_reports: r.get(7)?,
                    cpu_permille: r.get(8)?,
                    mem_total_kb: r.get(9)?,
                    mem_available_kb: r.get(10)?,
                    disk_mount: r.get(11)?,
                    disk_used_bytes: r.get(12)?,
                    disk_total_bytes: r.get(13)?,
                    station_count: r.get(14)?,
                    ..Default::default()
                }),
                None => None,
            };
            let id: i64 = r.get(0)?;
            index.insert(id, routers.len());
            routers.push(RouterSnap {
                id,
                name: r.get(1)?,
                site: r.get(2)?,
                last_seen_ms: r.get(3)?,
                cert_not_after: r.get(4)?,
                report,
            });
        }
    }
    let mut with =
        |sql: &str,
         p: &[&dyn rusqlite::ToSql],
         f: &mut dyn FnMut(&mut ReportSnap, &rusqlite::Row<'_>) -> rusqlite::Result<()>|
         -> rusqlite::Result<()> {
            let mut st = conn.prepare_cached(sql)?;
            let mut rows = st.query(p)?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                if let Some(rep) = index.get(&id).and_then(|&i| routers[i].report.as_mut()) {
                    f(rep, r)?;
                }
            }
            Ok(())
        };
    // Interfaces: the WAN rules are on by default and the table has few rows per report.
    with(IFACES_SQL, &[], &mut |rep, r| {
        rep.interfaces.push(IfaceSnap {
            name: r.get(1)?,
            kind: r.get(2)?,
            rx_bps: r.get(3)?,
            tx_bps: r.get(4)?,
        });
        Ok(())
    })?;
    if cfg.any_scope(|t| t.station_mbps > 0.0) {
        // Only stations above the lowest threshold of any scope come back.
        let lowest = lowest_station_bps(cfg);
        with(STATIONS_SQL, &[&lowest], &mut |rep, r| {
            rep.stations.push(StationSnap {
                iface: r.get(1)?,
                mac: r.get(2)?,
                rx_bps: r.get(3)?,
                tx_bps: r.get(4)?,
            });
            Ok(())
        })?;
    }
    if cfg.any_scope(|t| t.probe_loss_percent > 0.0 || t.probe_latency_ms > 0.0) {
        with(PROBES_SQL, &[], &mut |rep, r| {
            rep.probes.push(ProbeSnap {
                target: r.get(1)?,
                name: r.get(2)?,
                sent: r.get(3)?,
                received: r.get(4)?,
                rtt_avg_us: r.get(5)?,
            });
            Ok(())
        })?;
    }
    if cfg.any_scope(|t| t.wan_address_change) {
        with(WAN_SQL, &[], &mut |rep, r| {
            rep.wan_addrs.push(r.get(1)?);
            Ok(())
        })?;
    }
    if cfg.any_scope(|t| !t.wg_handshake_age.is_zero()) {
        with(WG_SQL, &[], &mut |rep, r| {
            rep.wg_peers.push(WgPeerSnap {
                iface: r.get(1)?,
                public_key: r.get(2)?,
                name: r.get(3)?,
                latest_handshake: r.get(4)?,
            });
            Ok(())
        })?;
    }
    if reads_rollups(cfg) {
        // Clients seen within the lookback whose newest sample is older than the router's
        // newest report: gone from it.
        let since = now_ms - longest_ovpn_lookback(cfg);
        let bucket = since - since.rem_euclid(crate::store::BUCKET_1H_MS);
        with(OVPN_SQL, &[&bucket], &mut |rep, r| {
            let last: i64 = r.get(3)?;
            if last >= since && last < rep.ts_ms {
                rep.ovpn_gone.push(OvpnGoneSnap {
                    instance: r.get(1)?,
                    common_name: r.get(2)?,
                    last_seen_ms: last,
                });
            }
            Ok(())
        })?;
    }
    Ok(routers)
}

fn lowest_station_bps(cfg: &AlertsConfig) -> i64 {
    let mut lowest = f64::MAX;
    cfg.any_scope(|t| {
        if t.station_mbps > 0.0 {
            lowest = lowest.min(t.station_mbps);
        }
        false
    });
    (lowest * 1e6) as i64
}

/// Whether [`read`] reads a rollup table (whose newest sums the database writer may hold in
/// memory): `ovpn_rollup_1h`, when some scope turns on the OpenVPN client rule. The other
/// queries read `routers`, `reports`, raw samples and `wan_addresses`, which every commit
/// writes in full.
pub fn reads_rollups(cfg: &AlertsConfig) -> bool {
    cfg.any_scope(|t| t.ovpn_client_gone)
}

fn longest_ovpn_lookback(cfg: &AlertsConfig) -> i64 {
    let mut longest = 0i64;
    cfg.any_scope(|t| {
        if t.ovpn_client_gone {
            longest = longest.max(t.ovpn_lookback.as_millis() as i64);
        }
        false
    });
    longest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::MIGRATIONS;

    /// Every query reads the sample tables by key: only `routers` may be scanned.
    #[test]
    fn queries_read_by_keys() {
        let c = Connection::open_in_memory().unwrap();
        // `reports_all` and the other `<table>_all` virtual tables, as every collector
        // connection has them.
        crate::store::sealed::register(&c).unwrap();
        for m in MIGRATIONS {
            c.execute_batch(m).unwrap();
        }
        for (sql, n) in [
            (ROUTERS_SQL, 0),
            (IFACES_SQL, 0),
            (STATIONS_SQL, 1),
            (WG_SQL, 0),
            (OVPN_SQL, 1),
            (PROBES_SQL, 0),
            (WAN_SQL, 0),
        ] {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(vec![0i64; n]), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for line in &plan {
                let scan = line.starts_with("SCAN") && !line.starts_with("SCAN r");
                assert!(!scan, "{sql}\n{plan:#?}");
            }
        }
    }

    #[test]
    fn snapshot_of_a_stored_report() {
        use crate::store::testutil::{enrolled_router, ingest_one, open_temp, rich_report};
        let (_dir, mut store) = open_temp();
        let r = enrolled_router(&mut store, "gw");
        let now = 1_700_000_000_000i64;
        for (seq, ts) in [(1u64, now - 60_000), (2, now - 30_000)] {
            let mut rep = rich_report([2; 16], seq, ts as u64, seq * 10);
            if seq == 2 {
                rep.openvpn.clear();
            }
            ingest_one(&mut store, r.id, ts, &rep);
        }
        let mut cfg = AlertsConfig::default();
        cfg.fleet.station_mbps = 0.000001;
        cfg.fleet.wg_handshake_age = std::time::Duration::from_secs(60);
        cfg.fleet.ovpn_client_gone = true;
        let snap = read(store.connection(), &cfg, now).unwrap();
        assert_eq!(snap.len(), 1);
        let rep = snap[0].report.as_ref().unwrap();
        assert_eq!(rep.ts_ms, now - 30_000);
        assert_eq!(rep.cpu_permille, Some(123));
        assert_eq!(rep.interfaces.len(), 2);
        assert!(!rep.stations.is_empty());
        assert!(!rep.wg_peers.is_empty());
        assert!(
            !rep.ovpn_gone.is_empty(),
            "the clients of the first report are gone from the second"
        );
        assert!(rep.ovpn_gone.iter().all(|c| c.last_seen_ms == now - 60_000));
    }
}
