//! `bench-storage`: stored bytes per report, per stored value and per router-day, with the
//! table-by-table split from SQLite's `dbstat` (see `routerstats_bench::storage`).
//!
//! `--routers N` (default 200) routers report every 30 s for `--hours H` (default 2) through
//! the collector's own ingest into a database in `--dir PATH` (default: a temp dir), sealing
//! closed hours into blocks after each batch as the collector's writer does (`--no-blocks`:
//! the row layout, nothing sealed, for a baseline), and with
//! `--metrics` the size and time of `/metrics` and of the remote-write snapshots, measured as
//! `bench-metrics` measures them (`routerstats_bench::metrics`; `--reuse` with `--dir` measures
//! those on the database an earlier run left there). `--upgrade` (also with `--reuse` and the run's `--hours`): then the upgrade of a
//! schema-10 database (its `reports` and 5-minute rows sealed by the writer's steps after
//! migration 11), rebuilt from this one and timed (`routerstats_bench::storage::upgrade`).

use std::process::ExitCode;

use routerstats_bench::{dir_or_temp, flag, metrics, run_sync, storage, switch};

const USAGE: &str =
    "bench-storage [--routers N] [--hours H] [--dir PATH] [--no-blocks] [--metrics] [--reuse] [--upgrade]";

fn main() -> ExitCode {
    let parse = |f: &[(String, String)]| {
        Ok((
            flag(f, "routers", 200usize)?,
            flag(f, "hours", 2.0f64)?,
            flag::<String>(f, "dir", String::new())?,
            !switch(f, "no-blocks"),
            switch(f, "metrics"),
            switch(f, "reuse"),
            switch(f, "upgrade"),
        ))
    };
    run_sync("bench-storage", USAGE, parse, |opts| {
        let (routers, hours, dir, with_blocks, with_metrics, reuse, with_upgrade) = opts;
        let (dir, _tmp) = dir_or_temp(&dir)?;
        let rounds = ((hours * 3600.0) / storage::INTERVAL_S as f64)
            .round()
            .max(1.0) as u64;
        let db = dir.join("storage.db");
        let now = storage::START_MS as i64 + rounds as i64 * storage::INTERVAL_S as i64 * 1000;
        let upgrade = |db: &std::path::Path| -> Result<(), String> {
            let u = storage::upgrade(db, now).map_err(|e| e.to_string())?;
            print!("{}", u.render(&[(1_000, 8), (10_000, 8)]));
            Ok(())
        };
        if reuse {
            // Measure the database an earlier run left in --dir (/metrics, the upgrade; give
            // the same --hours).
            if with_metrics {
                metrics::run(&db)?;
            }
            return if with_upgrade { upgrade(&db) } else { Ok(()) };
        }
        println!(
            "bench-storage: {routers} routers x {rounds} reports ({hours} h at {} s), report shape {:?}",
            storage::INTERVAL_S,
            storage::SHAPE
        );
        let f = storage::run(&db, routers, rounds, with_blocks).map_err(|e| e.to_string())?;
        print!("{}", f.render());
        if with_metrics {
            metrics::run(&db)?;
        }
        if with_blocks {
            month(&f);
        }
        if with_upgrade && with_blocks {
            upgrade(&db)?;
        }
        Ok(())
    })
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
