//! routerstats benchmarks: binaries that print figures (see BENCHMARKS.md), and the pieces they
//! share.
//!
//! - [`gen`]: a realistic router generated as the text its tools print, parsed with the agent's
//!   parsers into a report, and printed the way the shell CGI scripts print it.
//! - [`sys`]: memory and CPU time of processes, and the open-file limit.
//! - [`cproc`]: the real collector binary as a child process.
//! - [`sim`]: simulated agents speaking the real protocol over real mutual TLS.
//! - [`rawsql`]: the plain-SQLite baseline of the ingest benchmark.
//! - [`apiload`]: the API benchmark's route mix read while another benchmark runs.
//! - [`storage`]: stored bytes per report, split by table with `dbstat`.
//! - [`metrics`]: size and time of `/metrics` and of a remote-write snapshot on a stored fleet.

pub mod apiload;
pub mod cproc;
pub mod gen;
pub mod metrics;
pub mod rawsql;
pub mod sim;
pub mod storage;
pub mod sys;

/// Why the command line could not be used.
#[derive(Debug, thiserror::Error)]
#[error("unexpected argument {0:?} (flags are --name VALUE or --name=VALUE; see BENCHMARKS.md)")]
pub struct FlagError(pub String);

/// Parses `--name value`, `--name=value` and bare `--switch` flags into (name, value) pairs.
/// With `-h` or `--help` anywhere, prints `usage` and exits with status 0 instead.
pub fn flags(usage: &str) -> Result<Vec<(String, String)>, FlagError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if wants_help(&args) {
        println!("{}", usage.trim_end());
        std::process::exit(0);
    }
    parse_flags(args)
}

fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "-h" || a == "--help")
}

fn parse_flags(args: impl IntoIterator<Item = String>) -> Result<Vec<(String, String)>, FlagError> {
    let mut out = Vec::new();
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--") else {
            return Err(FlagError(arg));
        };
        if let Some((n, v)) = name.split_once('=') {
            out.push((n.to_string(), v.to_string()));
        } else if it.peek().is_some_and(|v| !v.starts_with("--")) {
            let v = it.next().unwrap_or_default();
            out.push((name.to_string(), v));
        } else {
            out.push((name.to_string(), String::new()));
        }
    }
    Ok(out)
}

/// The value of flag `name` parsed as `T`, or `default`.
pub fn flag<T: std::str::FromStr>(
    flags: &[(String, String)],
    name: &str,
    default: T,
) -> Result<T, String> {
    match flags.iter().rev().find(|(n, _)| n == name) {
        None => Ok(default),
        Some((_, v)) => v.parse().map_err(|_| format!("--{name}: cannot use {v:?}")),
    }
}

/// Whether switch `name` was given.
pub fn switch(flags: &[(String, String)], name: &str) -> bool {
    flags.iter().any(|(n, _)| n == name)
}

/// Runs a benchmark that needs no runtime: `parse` reads its flags (on an error: the error and
/// `usage` on stderr, exit status 2), then `bench` runs with them (on an error: `name: error` on
/// stderr, exit status 1).
pub fn run_sync<O>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(&[(String, String)]) -> Result<O, String>,
    bench: impl FnOnce(O) -> Result<(), String>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let opts = match flags(usage)
        .map_err(|e| e.to_string())
        .and_then(|f| parse(&f))
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\nusage: {usage}");
            return ExitCode::from(2);
        }
    };
    match bench(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The directory `--dir` names, or a new temporary one when it is empty (kept until the
/// returned guard is dropped).
pub fn dir_or_temp(dir: &str) -> Result<(std::path::PathBuf, Option<tempfile::TempDir>), String> {
    if !dir.is_empty() {
        return Ok((std::path::PathBuf::from(dir), None));
    }
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    Ok((tmp.path().to_path_buf(), Some(tmp)))
}

/// Runs an async benchmark on a multi-threaded runtime with its parsed options, mapping the
/// outcome to the exit codes every benchmark uses: 2 for bad flags, 1 for a failed run.
pub fn run_async<O, F, Fut>(opts: Result<O, String>, bench: F) -> std::process::ExitCode
where
    F: FnOnce(O) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    use std::process::ExitCode;
    let opts = match opts {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(bench(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_values_both_ways_and_switches() {
        let args = ["--agents", "200", "--secs=5", "--quick", "--window", "2"].map(String::from);
        let f = parse_flags(args).unwrap();
        assert_eq!(flag(&f, "agents", 0usize).unwrap(), 200);
        assert_eq!(flag(&f, "secs", 0u64).unwrap(), 5);
        assert_eq!(flag(&f, "window", 0usize).unwrap(), 2);
        assert!(switch(&f, "quick"));
        assert!(flag(&f, "quick", 1usize).is_err());
        assert_eq!(flag(&f, "missing", 7u8).unwrap(), 7);
        assert!(parse_flags(["stray".to_string()]).is_err());
    }

    #[test]
    fn dir_is_the_given_one_or_a_temporary_one_kept_by_its_guard() {
        let (dir, guard) = dir_or_temp("some/where").unwrap();
        assert_eq!(dir, std::path::PathBuf::from("some/where"));
        assert!(guard.is_none());
        let (dir, guard) = dir_or_temp("").unwrap();
        assert!(dir.is_dir() && guard.is_some());
        drop(guard);
        assert!(!dir.exists(), "the temporary directory goes with its guard");
    }

    #[test]
    fn help_is_recognised_anywhere() {
        assert!(wants_help(&[
            "--agents".into(),
            "5".into(),
            "--help".into()
        ]));
        assert!(wants_help(&["-h".into()]));
        assert!(!wants_help(&["--agents".into(), "5".into()]));
    }
}
