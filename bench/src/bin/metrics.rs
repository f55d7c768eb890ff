//! `bench-metrics`: size and time of `GET /metrics` (the default scrape, each option and
//! selector, gzip) and of a remote-write snapshot on a stored fleet (see
//! `routerstats_bench::metrics`).
//!
//! `--dir D` measures the database `bench-storage --dir D` left there (`D/storage.db`);
//! without it, `--routers N` routers (default 200) report twice through the collector's own
//! ingest into a temporary database first.

use std::process::ExitCode;

use routerstats_bench::{flag, flags, metrics, storage};

const USAGE: &str = "bench-metrics [--dir PATH (a bench-storage --dir)] [--routers N]";

fn main() -> ExitCode {
    let opts = flags(USAGE).map_err(|e| e.to_string()).and_then(|f| {
        Ok((
            flag::<String>(&f, "dir", String::new())?,
            flag(&f, "routers", 200usize)?,
        ))
    });
    let (dir, routers) = match opts {
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
    let db = if dir.is_empty() {
        let db = tmp.path().join("storage.db");
        println!("bench-metrics: generating {routers} routers x 2 reports");
        if let Err(e) = storage::run(&db, routers, 2, false) {
            eprintln!("bench-metrics: {e}");
            return ExitCode::FAILURE;
        }
        db
    } else {
        std::path::Path::new(&dir).join("storage.db")
    };
    if !db.exists() {
        eprintln!(
            "bench-metrics: {} does not exist (run bench-storage --dir first)",
            db.display()
        );
        return ExitCode::FAILURE;
    }
    match metrics::run(&db) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-metrics: {e}");
            ExitCode::FAILURE
        }
    }
}
