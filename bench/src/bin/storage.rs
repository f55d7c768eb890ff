//! `bench-storage`: stored bytes per report, per stored value and per router-day, with the
//! table-by-table split from SQLite's `dbstat` (see `routerstats_bench::storage`).
//!
//! `--routers N` (default 200) routers report every 30 s for `--hours H` (default 2) through
//! the collector's own ingest into a database in `--dir PATH` (default: a temp dir).

use std::path::PathBuf;
use std::process::ExitCode;

use routerstats_bench::{blocks, flag, flags, storage};

const USAGE: &str = "bench-storage [--routers N] [--hours H] [--dir PATH]";

fn main() -> ExitCode {
    let opts = flags(USAGE).map_err(|e| e.to_string()).and_then(|f| {
        Ok((
            flag(&f, "routers", 200usize)?,
            flag(&f, "hours", 2.0f64)?,
            flag::<String>(&f, "dir", String::new())?,
        ))
    });
    let (routers, hours, dir) = match opts {
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
    println!(
        "bench-storage: {routers} routers x {rounds} reports ({hours} h at {} s), report shape {:?}",
        storage::INTERVAL_S,
        storage::SHAPE
    );
    let db = dir.join("storage.db");
    match storage::run(&db, routers, rounds) {
        Ok(f) => {
            print!("{}", f.render());
            block_layout(&db, &dir.join("blocks.db"), &f);
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
        println!("  {t:<22} {:>8.1} B/report deflated", *bytes as f64 / reports);
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
