//! `bench-storage`: stored bytes per report, per stored value and per router-day, with the
//! table-by-table split from SQLite's `dbstat` (see `routerstats_bench::storage`).
//!
//! `--routers N` (default 200) routers report every 30 s for `--hours H` (default 2) through
//! the collector's own ingest into a database in `--dir PATH` (default: a temp dir). Then what a
//! compressed block layout would store for the same rows (`--no-blocks` skips it), and with
//! `--metrics` the size and time of `/metrics` and of one remote-write snapshot (`--reuse` with
//! `--dir` measures those on the database an earlier run left there).

use std::path::PathBuf;
use std::process::ExitCode;

use routerstats_bench::{blocks, flag, flags, storage};

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
    match storage::run(&db, routers, rounds) {
        Ok(f) => {
            print!("{}", f.render());
            if with_metrics {
                metrics(&db);
            }
            if with_blocks {
                block_layout(&db, &dir.join("blocks.db"), &f);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-storage: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints what the block layout (`routerstats_bench::blocks`) would store for the same rows,
/// next to the row layout's bytes.
fn block_layout(db: &std::path::Path, scratch: &std::path::Path, rows: &storage::Figures) {
    let conn = match rusqlite::Connection::open(db) {
        Ok(c) => c,
        Err(e) => return eprintln!("block layout: {e}"),
    };
    let b = match blocks::measure(&conn, scratch) {
        Ok(b) => b,
        Err(e) => return eprintln!("block layout: {e}"),
    };
    let reports = rows.reports.max(1) as f64;
    // The per-report summaries stay row tables next to the blocks (fleet queries read them).
    let kept: u64 = rows
        .tables
        .iter()
        .filter(|t| t.table == "station_report_totals" || t.table == "station_rollup_5m")
        .map(|t| t.bytes())
        .sum();
    println!(
        "block layout (measured, not the store): {} blocks (router x table x hour), {} B encoded -> {} B deflated, {} B of SQLite pages",
        b.blocks, b.encoded, b.compressed, b.pages
    );
    for (t, bytes) in &b.per_table {
        println!(
            "  {t:<22} {:>8.1} B/report deflated",
            *bytes as f64 / reports
        );
    }
    println!(
        "  = {:.0} B per report in blocks + {:.0} B of per-report summaries kept as rows = {:.0} B per report ({:.2} B per value, {:.2} MB per router-day)",
        b.pages as f64 / reports,
        kept as f64 / reports,
        (b.pages + kept) as f64 / reports,
        b.pages as f64 / b.values.max(1) as f64,
        (b.pages + kept) as f64 / reports * (86_400 / storage::INTERVAL_S) as f64 / 1e6
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
