//! `bench-storage`: stored bytes per report, per stored value and per router-day, with the
//! table-by-table split from SQLite's `dbstat` (see `routerstats_bench::storage`).
//!
//! `--routers N` (default 200) routers report every 30 s for `--hours H` (default 2) through
//! the collector's own ingest into a database in `--dir PATH` (default: a temp dir).

use std::path::PathBuf;
use std::process::ExitCode;

use routerstats_bench::{flag, flags, storage};

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
    match storage::run(&dir.join("storage.db"), routers, rounds) {
        Ok(f) => {
            print!("{}", f.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-storage: {e}");
            ExitCode::FAILURE
        }
    }
}
