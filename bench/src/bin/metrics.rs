//! `bench-metrics`: size and time of `GET /metrics` (the default scrape, each option and
//! selector, gzip) and of a remote-write snapshot on a stored fleet (see
//! `routerstats_bench::metrics`).
//!
//! `--dir D` measures the database `bench-storage --dir D` left there (`D/storage.db`);
//! without it, `--routers N` routers (default 200) report twice through the collector's own
//! ingest into a temporary database first.

use std::process::ExitCode;

use routerstats_bench::{dir_or_temp, flag, metrics, run_sync, storage};

const USAGE: &str = "bench-metrics [--dir PATH (a bench-storage --dir)] [--routers N]";

fn main() -> ExitCode {
    let parse = |f: &[(String, String)]| {
        Ok((
            flag::<String>(f, "dir", String::new())?,
            flag(f, "routers", 200usize)?,
        ))
    };
    run_sync("bench-metrics", USAGE, parse, |(dir, routers)| {
        let generate = dir.is_empty();
        let (dir, _tmp) = dir_or_temp(&dir)?;
        let db = dir.join("storage.db");
        if generate {
            println!("bench-metrics: generating {routers} routers x 2 reports");
            storage::run(&db, routers, 2, false).map_err(|e| e.to_string())?;
        } else if !db.exists() {
            return Err(format!(
                "{} does not exist (run bench-storage --dir first)",
                db.display()
            ));
        }
        metrics::run(&db).map(drop)
    })
}
