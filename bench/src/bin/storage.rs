//! `bench-storage`: stored bytes per report, per stored value and per router-day, with the
//! table-by-table split from SQLite's `dbstat` (see `routerstats_bench::storage`).
//!
//! `--routers N` (default 200) routers report every 30 s for `--hours H` (default 2) through
//! the collector's own ingest into a database in `--dir PATH` (default: a temp dir), sealing
//! closed hours into blocks after each batch as the collector's writer does (`--no-blocks`:
//! the row layout, nothing sealed, for a baseline), and with
//! `--metrics` the size and time of `/metrics` and of one remote-write snapshot (`--reuse` with
//! `--dir` measures those on the database an earlier run left there).

use std::path::PathBuf;
use std::process::ExitCode;

use routerstats_bench::{flag, flags, storage};

const USAGE: &str =
    "bench-storage [--routers N] [--hours H] [--dir PATH] [--no-blocks] [--metrics] [--reuse]";

fn main() -> ExitCode {
    let opts = flags(USAGE).map_err(|e| e.to_string()).and_then(|f| {
        Ok((
            flag(&f, "routers", 200usize)?,
            flag(&f, "hours", 2.0f64)?,
            flag::<String>(&f, "dir", String::new())?,
            !routerstats_bench::switch(&f, "no-blocks"),
            routerstats_bench::switch(&f, "metrics"),
            routerstats_bench::switch(&f, "reuse"),
        ))
    });
    let (routers, hours, dir, with_blocks, with_metrics, reuse) = match opts {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\nusage: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("temp dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = if dir.is_empty() {
        tmp.path().to_path_buf()
    } else {
        PathBuf::from(dir)
    };
    let rounds = ((hours * 3600.0) / storage::INTERVAL_S as f64)
        .round()
        .max(1.0) as u64;
    let db = dir.join("storage.db");
    if !reuse {
        println!(
            "bench-storage: {routers} routers x {rounds} reports ({hours} h at {} s), report shape {:?}",
            storage::INTERVAL_S,
            storage::SHAPE
        );
    }
    if reuse {
        // Measure the database an earlier run left in --dir (sizes and /metrics only).
        if with_metrics {
            metrics(&db);
        }
        return ExitCode::SUCCESS;
    }
    match storage::run(&db, routers, rounds, with_blocks) {
        Ok(f) => {
            print!("{}", f.render());
            if with_metrics {
                metrics(&db);
            }
            if with_blocks {
                month(&f);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-storage: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A month of history for 10,000 routers at the default retention, from the measured figures:
/// 8 days of raw level at the steady-state bytes per report, the hot window's rows, and the
/// rollups (about 0.22 MB per router-day, section "Scale model" of BENCHMARKS.md) for 30 days.
fn month(f: &storage::Figures) {
    let Some(per_report) = f.sealed_bytes_per_report() else {
        return println!("a month at 10,000 routers: nothing sealed yet (run longer than 3 h)");
    };
    let routers = 10_000.0;
    let per_day = 86_400.0 / storage::INTERVAL_S as f64;
    let raw = per_report * per_day * 8.0 * routers;
    let hot = f.hot_bytes_per_router() * routers;
    let rollups = 0.22e6 * 30.0 * routers;
    println!(
        "a month of history for 10,000 routers (8 days raw, rollups 0.22 MB per router-day): raw {:.0} GB + hot rows {:.0} GB + rollups {:.0} GB = {:.0} GB",
        raw / 1e9,
        hot / 1e9,
        rollups / 1e9,
        (raw + hot + rollups) / 1e9
    );
}

/// Size and time of `/metrics` (uncached) on the stored fleet, and of one remote-write
/// snapshot of it (protobuf + snappy), with and without the per-station families.
fn metrics(db: &std::path::Path) {
    use routerstats_collector::remote_write::{exposition, snapshot, wire, RemoteWriteConfig};
    let conn = match rusqlite::Connection::open(db) {
        Ok(c) => c,
        Err(e) => return eprintln!("metrics: {e}"),
    };
    let now: i64 = conn
        .query_row("SELECT max(last_report_ms) FROM routers", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .ok()
        .flatten()
        .unwrap_or(0);
    let configs = [
        ("every family", RemoteWriteConfig::default()),
        (
            "exclude=routerstats_station_",
            RemoteWriteConfig {
                exclude: vec!["routerstats_station_".into()],
                ..RemoteWriteConfig::default()
            },
        ),
    ];
    for (what, cfg) in &configs {
        let t = std::time::Instant::now();
        match exposition(&conn, now, cfg) {
            Ok(text) => println!(
                "/metrics, {what} (uncached, this build): {} bytes, {} series, rendered in {:.0} ms",
                text.len(),
                text.lines().filter(|l| !l.starts_with('#')).count(),
                t.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => eprintln!("metrics: {e}"),
        }
        let t = std::time::Instant::now();
        match snapshot(&conn, cfg, now) {
            Ok(s) => {
                let bytes: usize = s
                    .chunks(cfg.batch_samples)
                    .map(|c| wire::encode(c.to_vec()).len())
                    .sum();
                println!(
                    "remote-write snapshot, {what}: {} samples, {bytes} bytes on the wire (protobuf + snappy, {} per request), {:.0} ms",
                    s.len(),
                    cfg.batch_samples,
                    t.elapsed().as_secs_f64() * 1e3
                );
            }
            Err(e) => eprintln!("snapshot: {e}"),
        }
    }
}
