//! Reads what the rules need from what ingest already stores, on the alert service's own
//! read-only connection: one query for the routers and their newest reports (through
//! `routers.last_report_id`), then one query per sample table joined on each router's newest
//! report time, each run only when some scope turns on a rule that needs it.

use std::collections::HashMap;

use rusqlite::Connection;

use super::config::AlertsConfig;
use super::rules::{IfaceSnap, OvpnGoneSnap, ReportSnap, RouterSnap, StationSnap, WgPeerSnap};

const ROUTERS_SQL: &str = "SELECT r.id, r.name, r.site, r.last_seen_ms, r.cert_not_after, \
     p.ts_ms, p.boot_id, p.dropped_reports, p.cpu_permille, p.mem_total_kb, p.mem_available_kb, \
     p.disk_mount, p.disk_used_bytes, p.disk_total_bytes, p.station_count \
     FROM routers r LEFT JOIN reports p ON p.id = r.last_report_id \
     WHERE r.revoked_at IS NULL ORDER BY r.id";

const IFACES_SQL: &str = "SELECT r.id, s.name, s.kind, s.rx_bps, s.tx_bps FROM routers r \
     JOIN reports p ON p.id = r.last_report_id \
     JOIN interface_samples s ON s.router_id = r.id AND s.ts_ms = p.ts_ms WHERE r.revoked_at IS NULL";

const STATIONS_SQL: &str = "SELECT r.id, s.iface, s.mac, s.rx_bps, s.tx_bps FROM routers r \
     JOIN reports p ON p.id = r.last_report_id \
     JOIN station_samples s ON s.router_id = r.id AND s.ts_ms = p.ts_ms \
     WHERE r.revoked_at IS NULL AND max(coalesce(s.rx_bps, 0), coalesce(s.tx_bps, 0)) > ?1";

const WG_SQL: &str = "SELECT r.id, s.iface, s.public_key, s.name, s.latest_handshake FROM routers r \
     JOIN reports p ON p.id = r.last_report_id \
     JOIN wg_peer_samples s ON s.router_id = r.id AND s.ts_ms = p.ts_ms WHERE r.revoked_at IS NULL";

/// OpenVPN clients seen since ?1 whose newest sample is older than their router's newest report.
const OVPN_GONE_SQL: &str = "SELECT r.id, s.instance, s.common_name, max(s.ts_ms) AS last FROM routers r \
     JOIN reports p ON p.id = r.last_report_id \
     JOIN ovpn_client_samples s ON s.router_id = r.id AND s.ts_ms >= ?1 AND s.ts_ms <= p.ts_ms \
     WHERE r.revoked_at IS NULL GROUP BY r.id, s.instance, s.common_name HAVING last < max(p.ts_ms)";

/// Reads the fleet snapshot at `now_ms`.
pub fn read(conn: &Connection, cfg: &AlertsConfig, now_ms: i64) -> rusqlite::Result<Vec<RouterSnap>> {
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
    let mut with = |sql: &str, p: &[&dyn rusqlite::ToSql], f: &mut dyn FnMut(&mut ReportSnap, &rusqlite::Row<'_>) -> rusqlite::Result<()>| -> rusqlite::Result<()> {
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
        rep.interfaces.push(IfaceSnap { name: r.get(1)?, kind: r.get(2)?, rx_bps: r.get(3)?, tx_bps: r.get(4)? });
        Ok(())
    })?;
    if cfg.any_scope(|t| t.station_mbps > 0.0) {
        // Only stations above the lowest threshold of any scope come back.
        let lowest = lowest_station_bps(cfg);
        with(STATIONS_SQL, &[&lowest], &mut |rep, r| {
            rep.stations.push(StationSnap { iface: r.get(1)?, mac: r.get(2)?, rx_bps: r.get(3)?, tx_bps: r.get(4)? });
            Ok(())
        })?;
    }
    if cfg.any_scope(|t| !t.wg_handshake_age.is_zero()) {
        with(WG_SQL, &[], &mut |rep, r| {
            rep.wg_peers.push(WgPeerSnap { iface: r.get(1)?, public_key: r.get(2)?, name: r.get(3)?, latest_handshake: r.get(4)? });
            Ok(())
        })?;
    }
    if cfg.any_scope(|t| t.ovpn_client_gone) {
        let lookback = longest_ovpn_lookback(cfg);
        let since = now_ms - lookback;
        with(OVPN_GONE_SQL, &[&since], &mut |rep, r| {
            rep.ovpn_gone.push(OvpnGoneSnap { instance: r.get(1)?, common_name: r.get(2)?, last_seen_ms: r.get(3)? });
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
