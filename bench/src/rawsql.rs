//! The baseline of the ingest benchmark: the same rows the collector writes for a report
//! (the `reports` row, one `interface_samples` row per interface, one `station_samples` row per
//! station, with each router's own station MACs as the simulated agents send them
//! ([`crate::sim::own_macs`]), and the `routers` update), inserted with plain rusqlite prepared statements in
//! batched transactions, on the collector's own schema and with its writer's settings (WAL and
//! [`routerstats_collector::store::writer_settings`]: `synchronous=FULL`, 64 MiB page cache, its
//! checkpoint interval and WAL size limit). What the baseline leaves out is the collector's own work: decoding,
//! TLS, the per-counter deltas and rates, rollup upserts and current-state diffs.

use std::path::Path;
use std::time::{Duration, Instant};

use routerstats_collector::store::Store;
use routerstats_shared::Report;
use rusqlite::{params, Connection, TransactionBehavior};

/// Result of one baseline run.
#[derive(Debug, Clone, Copy)]
pub struct RawRun {
    pub reports: u64,
    pub elapsed: Duration,
    /// CPU time (user + system) of the inserting thread.
    pub cpu: Duration,
    pub batch: usize,
}

impl RawRun {
    pub fn per_second(&self) -> f64 {
        self.reports as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU time per report, in microseconds.
    pub fn cpu_us_per_report(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.reports.max(1) as f64
    }
}

/// Why the baseline could not run.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("creating the collector schema: {0}")]
    Schema(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Inserts `reports` copies of `template` spread over `routers` routers (each with its own
/// station MACs), `batch` reports per transaction, into a fresh database at `path`.
pub fn run(
    path: &Path,
    template: &Report,
    routers: usize,
    reports: u64,
    batch: usize,
) -> Result<RawRun, RawError> {
    let runs = run_segments(
        path,
        template,
        routers,
        &[Segment {
            skip: 0,
            measure: reports,
        }],
        batch,
    )?;
    Ok(runs[0])
}

/// A stretch of the baseline: `skip` reports inserted unmeasured (the database grows as the
/// collector's did before its measuring window), then `measure` reports measured.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub skip: u64,
    pub measure: u64,
}

/// Inserts the reports of each segment in turn into one fresh database at `path` (as [`run`]),
/// and measures the `measure` part of each: the baseline of a measuring window then starts on
/// a database of the same size as the collector's did. Which matters once the
/// `station_samples_mac` index outgrows the page cache: with 20,000 distinct MACs a batch of
/// 2,000 reports writes into about as many of its leaf pages.
pub fn run_segments(
    path: &Path,
    template: &Report,
    routers: usize,
    segments: &[Segment],
    batch: usize,
) -> Result<Vec<RawRun>, RawError> {
    // The collector's schema, created by the collector's own code; then a plain connection.
    drop(Store::open(path).map_err(|e| RawError::Schema(e.to_string()))?);
    let mut conn = Connection::open(path)?;
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    // The collector writer's own settings (checkpoint interval, page cache, durability).
    routerstats_collector::store::writer_settings(&conn)?;
    {
        let tx = conn.transaction()?;
        let mut st = tx.prepare(
            "INSERT INTO routers (name, hostname, cert_fingerprint, cert_not_after, enrolled_at) VALUES (?1, ?1, ?2, 0, 0)",
        )?;
        for i in 0..routers.max(1) {
            st.execute(params![format!("raw-{i:05}"), format!("{i:064x}")])?;
        }
        drop(st);
        tx.commit()?;
    }
    let routers = routers.max(1) as u64;
    let batch = batch.max(1);
    let r = template;
    let sys = r.system.as_ref();
    let disk = sys.and_then(|s| s.disks.first());
    let load = |i: usize| sys.and_then(|s| s.load.get(i).copied());
    let ssid_of = |iface: &str| {
        r.wireless
            .iter()
            .find(|w| w.name == iface)
            .and_then(|w| w.ssid.clone())
    };
    // Each router's own station MACs, as the simulated agents send them: with one set of MACs
    // for all routers the `station_samples_mac` index would take its inserts at 20 places
    // instead of 20 per router, and the baseline would be cheaper than the rows the collector
    // gets.
    let macs: Vec<Vec<String>> = (0..routers as usize)
        .map(|i| {
            crate::sim::own_macs(r, i)
                .stations
                .iter()
                .map(|s| s.mac.to_string())
                .collect()
        })
        .collect();
    let base_ts = 1_700_000_000_000i64;

    let mut done = 0u64;
    let mut insert = |conn: &mut Connection, reports: u64| -> Result<(), RawError> {
        let reports = done + reports;
        while done < reports {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut rep = tx.prepare_cached(
                "INSERT INTO reports (router_id, boot_id, seq, ts_ms, received_ms, dropped_reports, uptime_s, \
                 load1, load5, load15, cpu_permille, mem_total_kb, mem_available_kb, mem_available_derived, \
                 disk_mount, disk_used_bytes, disk_total_bytes, interface_count, station_count, lease_count, \
                 wg_peer_count, ovpn_client_count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22) \
                 ON CONFLICT (router_id, boot_id, seq) DO NOTHING",
            )?;
                let mut ifs = tx.prepare_cached(
                "INSERT INTO interface_samples (router_id, ts_ms, name, kind, rx_bytes, rx_packets, rx_errs, rx_drop, \
                 tx_bytes, tx_packets, tx_errs, tx_drop, rx_delta, tx_delta, rx_bps, tx_bps) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING",
            )?;
                let mut sts = tx.prepare_cached(
                "INSERT INTO station_samples (router_id, ts_ms, iface, mac, ssid, signal_dbm, signal_avg_dbm, rx_bytes, \
                 tx_bytes, rx_packets, tx_packets, rx_delta, tx_delta, rx_bps, tx_bps, tx_retries, tx_failed, inactive_ms, \
                 connected_s, tx_bitrate_kbps, rx_bitrate_kbps, expected_throughput_kbps) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22) \
                 ON CONFLICT DO NOTHING",
            )?;
                let mut upd = tx.prepare_cached(
                "UPDATE routers SET hostname = ?2, model = ?3, board = ?4, kernel = ?5, agent_version = ?6, arch = ?7, \
                 uptime_s = ?8, last_report_id = ?9, last_boot_id = ?10, last_seq = ?11, last_report_ms = ?12, \
                 last_seen_ms = ?12 WHERE id = ?1",
            )?;
                for _ in 0..batch {
                    if done >= reports {
                        break;
                    }
                    let rid = (done % routers + 1) as i64;
                    let seq = (done / routers + 1) as i64;
                    let ts = base_ts + seq * 30_000;
                    rep.execute(params![
                        rid,
                        &r.boot_id[..],
                        seq,
                        ts,
                        ts + 5,
                        0i64,
                        sys.map(|s| sat(s.uptime_s)),
                        load(0),
                        load(1),
                        load(2),
                        sys.and_then(|s| s.cpu_busy_permille),
                        sys.map(|s| sat(s.mem_total_kb)),
                        sys.map(|s| sat(s.mem_available_kb)),
                        sys.map(|s| s.mem_available_derived),
                        disk.map(|d| d.mount.as_str()),
                        disk.map(|d| sat(d.used_bytes)),
                        disk.map(|d| sat(d.total_bytes)),
                        r.interfaces.len() as i64,
                        r.stations.len() as i64,
                        r.leases.len() as i64,
                        0i64,
                        0i64,
                    ])?;
                    let report_id = tx.last_insert_rowid();
                    for i in &r.interfaces {
                        ifs.execute(params![
                            rid,
                            ts,
                            i.name,
                            i.kind.as_str(),
                            sat(i.rx_bytes),
                            sat(i.rx_packets),
                            sat(i.rx_errs),
                            sat(i.rx_drop),
                            sat(i.tx_bytes),
                            sat(i.tx_packets),
                            sat(i.tx_errs),
                            sat(i.tx_drop),
                            1000i64,
                            1000i64,
                            266i64,
                            266i64,
                        ])?;
                    }
                    let own = &macs[(rid - 1) as usize];
                    for (sta, mac) in r.stations.iter().zip(own) {
                        let s = &sta.stats;
                        sts.execute(params![
                            rid,
                            ts,
                            sta.interface,
                            mac,
                            ssid_of(&sta.interface),
                            s.signal.as_ref().map(|x| x.dbm),
                            s.signal_avg.as_ref().map(|x| x.dbm),
                            s.rx_bytes.map(sat),
                            s.tx_bytes.map(sat),
                            s.rx_packets.map(sat),
                            s.tx_packets.map(sat),
                            1000i64,
                            1000i64,
                            266i64,
                            266i64,
                            s.tx_retries.map(sat),
                            s.tx_failed.map(sat),
                            s.inactive_ms.map(sat),
                            sta.connected_s.map(sat),
                            s.tx_bitrate.as_ref().map(|b| b.kbps),
                            s.rx_bitrate.as_ref().map(|b| b.kbps),
                            s.expected_throughput_kbps,
                        ])?;
                    }
                    upd.execute(params![
                        rid,
                        r.router.hostname,
                        r.router.model,
                        r.router.board,
                        r.router.kernel,
                        r.router.agent_version,
                        r.router.arch,
                        sys.map(|s| sat(s.uptime_s)),
                        report_id,
                        &r.boot_id[..],
                        seq,
                        ts,
                    ])?;
                    done += 1;
                }
            }
            tx.commit()?;
        }
        Ok(())
    };
    let mut runs = Vec::with_capacity(segments.len());
    for seg in segments {
        insert(&mut conn, seg.skip)?;
        let started = Instant::now();
        let cpu0 = crate::sys::cpu_this_thread();
        insert(&mut conn, seg.measure)?;
        runs.push(RawRun {
            reports: seg.measure,
            elapsed: started.elapsed(),
            cpu: crate::sys::cpu_this_thread().saturating_sub(cpu0),
            batch,
        });
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{RouterText, Shape};

    #[test]
    fn segments_grow_one_database_and_measure_their_own_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.db");
        let report = RouterText::generate(Shape::INGEST, 1)
            .parse_report()
            .unwrap();
        let seg = |skip, measure| Segment { skip, measure };
        let runs = run_segments(&path, &report, 3, &[seg(5, 10), seg(3, 4)], 4).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].reports, runs[1].reports), (10, 4));
        assert!(runs.iter().all(|r| r.cpu > Duration::ZERO));
        let c = Connection::open(&path).unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 5 + 10 + 3 + 4);
    }

    #[test]
    fn baseline_writes_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.db");
        let report = RouterText::generate(Shape::INGEST, 1)
            .parse_report()
            .unwrap();
        let run = run(&path, &report, 3, 10, 4).unwrap();
        assert_eq!(run.reports, 10);
        assert!(run.cpu > Duration::ZERO && run.cpu_us_per_report() > 0.0);
        let c = Connection::open(&path).unwrap();
        let n = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(n("SELECT COUNT(*) FROM reports"), 10);
        assert_eq!(n("SELECT COUNT(*) FROM station_samples"), 10 * 20);
        assert_eq!(n("SELECT COUNT(*) FROM interface_samples"), 10 * 8);
        // Each router's own MACs, as the simulated agents send them.
        assert_eq!(n("SELECT COUNT(DISTINCT mac) FROM station_samples"), 3 * 20);
        assert_eq!(
            n("SELECT COUNT(*) FROM (SELECT mac FROM station_samples GROUP BY mac HAVING COUNT(DISTINCT router_id) > 1)"),
            0
        );
        assert_eq!(
            n("SELECT COUNT(*) FROM routers WHERE last_seq IS NOT NULL"),
            3
        );
    }
}
