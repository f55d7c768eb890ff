//! The `enroll` and `run` commands: turn the agent configuration into uplink options, run them on
//! a single-threaded tokio runtime (the agent is small), and report the outcome in one line.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use routerstats_shared::token::EnrollToken;

use crate::collect::{ReportBuilder, AGENT_VERSION};
use crate::config::AgentConfig;
use crate::uplink::{self, EnrollOptions, RunOptions, SpoolConfig};

/// Bound on the whole enrollment exchange.
pub const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The router's hostname as the kernel knows it (under the configured proc root).
pub fn hostname(cfg: &AgentConfig) -> String {
    crate::collect::kernel_hostname(cfg).unwrap_or_else(|| "openwrt".into())
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(code)
}

/// Longest token file read: a token is about 120 bytes.
const TOKEN_FILE_MAX: u64 = 4096;

/// The enrollment token from `--token TOKEN` or `--token-file FILE` (`-`: standard input).
/// A file or a pipe keeps the token out of the process list (`/proc/<pid>/cmdline`), where
/// `--token` shows it to every user of the router. The first non-empty line is the token.
pub fn token_argument(
    token: Option<String>,
    file: Option<&Path>,
) -> Result<Option<String>, String> {
    let path = match (token, file) {
        (Some(_), Some(_)) => return Err("give --token or --token-file, not both".into()),
        (token, None) => return Ok(token),
        (None, Some(path)) => path,
    };
    let (what, read) = if path == Path::new("-") {
        (
            "standard input".to_string(),
            read_token_text(std::io::stdin().lock()),
        )
    } else {
        let what = path.display().to_string();
        let read = std::fs::File::open(path).and_then(read_token_text);
        (what, read)
    };
    let text = read.map_err(|e| format!("cannot read the token from {what}: {e}"))?;
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(t) => Ok(Some(t.to_string())),
        None => Err(format!("no token in {what}")),
    }
}

fn read_token_text(r: impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.take(TOKEN_FILE_MAX).read_to_end(&mut buf)?;
    String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// `routerstats-agent enroll`. Exit status 2 for what no retry can fix without a change of the
/// configuration (no collector, a malformed token), 3 when the collector refused the token
/// (unknown, expired, used, or for another CA), 1 for other failures (unreachable, timeouts).
pub fn enroll(
    cfg: AgentConfig,
    token: Option<String>,
    name: Option<String>,
    force: bool,
) -> ExitCode {
    let Some(collector) = cfg.collector.clone() else {
        return fail(
            2,
            "enroll needs --collector HOST:PORT (or `option collector` in the config file)",
        );
    };
    let Some(token) = token else {
        return fail(2, "enroll needs --token-file FILE or --token TOKEN (printed by `routerstats-collector token create`)");
    };
    let token: EnrollToken = match token.parse() {
        Ok(t) => t,
        Err(e) => return fail(2, e),
    };
    let opts = EnrollOptions {
        collector,
        token,
        name,
        hostname: hostname(&cfg),
        config_dir: cfg.config_dir.clone(),
        timeout: ENROLL_TIMEOUT,
        force,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
    };
    match rt.block_on(uplink::enroll(opts)) {
        Ok(e) if e.already_enrolled => {
            println!(
                "already enrolled as {} (router {}) with {}; the token was not used (use --force to enroll again)",
                e.name, e.router_id, e.collector
            );
            ExitCode::SUCCESS
        }
        Ok(e) => {
            println!(
                "enrolled as {} (router {}) with {}; identity stored in {}",
                e.name,
                e.router_id,
                e.collector,
                cfg.config_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(
            e @ (uplink::EnrollError::InvalidToken
            | uplink::EnrollError::ExpiredToken
            | uplink::EnrollError::UsedToken
            | uplink::EnrollError::CaMismatch),
        ) => fail(3, e),
        Err(e) => fail(1, e),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The uplink options for a configuration.
pub fn run_options(cfg: &AgentConfig) -> RunOptions {
    let mut opts = RunOptions::new(
        cfg.config_dir.clone(),
        hostname(cfg),
        AGENT_VERSION.to_string(),
    );
    opts.collector = cfg.collector.clone().unwrap_or_default();
    opts.interval = cfg.interval;
    opts.initial_jitter = cfg.initial_delay.unwrap_or(cfg.interval);
    opts.spool = SpoolConfig {
        max_reports: cfg.spool_reports,
        file: cfg.spool_file.clone(),
        ..SpoolConfig::default()
    };
    let executor = crate::actions::Executor::new(crate::actions::ActionConfig::from_agent(cfg));
    executor.restore();
    opts.actions = Some(uplink::session::Runner(std::sync::Arc::new(executor)));
    opts
}

/// `routerstats-agent run`.
pub fn run(cfg: AgentConfig) -> ExitCode {
    let opts = run_options(&cfg);
    let mut collector = ReportBuilder::new(cfg);
    collector.prime_cpu();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
    };
    // uplink::run logs the stop summary itself.
    match rt.block_on(uplink::run(
        opts,
        move || collector.collect(),
        shutdown_signal(),
    )) {
        Ok(_stats) => ExitCode::SUCCESS,
        Err(e) => fail(1, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_a_file_first_non_empty_line_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "\n  rs1.abc  \nignored\n").unwrap();
        assert_eq!(
            token_argument(None, Some(&f)).unwrap().as_deref(),
            Some("rs1.abc")
        );
        assert_eq!(
            token_argument(Some("rs1.x".into()), None)
                .unwrap()
                .as_deref(),
            Some("rs1.x")
        );
        assert_eq!(token_argument(None, None).unwrap(), None);
    }

    #[test]
    fn token_file_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n \n").unwrap();
        let e = token_argument(None, Some(&empty)).unwrap_err();
        assert!(e.contains("no token in") && e.contains("empty"), "{e}");
        let missing = dir.path().join("missing");
        let e = token_argument(None, Some(&missing)).unwrap_err();
        assert!(
            e.contains("cannot read the token from") && e.contains("missing"),
            "{e}"
        );
        let e = token_argument(Some("t".into()), Some(&empty)).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe, 0]).unwrap();
        assert!(token_argument(None, Some(&binary))
            .unwrap_err()
            .contains("UTF-8"));
    }

    #[test]
    fn token_file_read_is_bounded() {
        let big = vec![b'a'; 1 << 20];
        let text = read_token_text(&big[..]).unwrap();
        assert_eq!(text.len() as u64, TOKEN_FILE_MAX);
    }
}
