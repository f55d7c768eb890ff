//! The `enroll` and `run` commands: turn the agent configuration into uplink options, run them on
//! a single-threaded tokio runtime (the agent is small), and report the outcome in one line.

use std::process::ExitCode;
use std::time::Duration;

use routerstats_shared::token::EnrollToken;

use crate::collect::{Collector, AGENT_VERSION};
use crate::config::AgentConfig;
use crate::uplink::{self, EnrollOptions, RunOptions, SpoolConfig};

/// Bound on the whole enrollment exchange.
pub const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// The router's hostname as the kernel knows it (under the configured proc root).
pub fn hostname(cfg: &AgentConfig) -> String {
    std::fs::read_to_string(cfg.proc_path("sys/kernel/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "openwrt".into())
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(code)
}

/// `routerstats-agent enroll`.
pub fn enroll(cfg: AgentConfig, token: Option<String>, name: Option<String>, force: bool) -> ExitCode {
    let Some(collector) = cfg.collector.clone() else {
        return fail(2, "enroll needs --collector HOST:PORT (or `option collector` in the config file)");
    };
    let Some(token) = token else {
        return fail(2, "enroll needs --token TOKEN (printed by `routerstats-collector token create`)");
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
    let mut opts = RunOptions::new(cfg.config_dir.clone(), hostname(cfg), AGENT_VERSION.to_string());
    opts.collector = cfg.collector.clone().unwrap_or_default();
    opts.interval = cfg.interval;
    opts.initial_jitter = cfg.initial_delay.unwrap_or(cfg.interval);
    opts.spool = SpoolConfig { max_reports: cfg.spool_reports, file: cfg.spool_file.clone(), ..SpoolConfig::default() };
    let executor = crate::actions::Executor::new(crate::actions::ActionConfig::from_agent(cfg));
    opts.actions = Some(uplink::session::Runner(std::sync::Arc::new(executor)));
    opts
}

/// `routerstats-agent run`.
pub fn run(cfg: AgentConfig) -> ExitCode {
    let opts = run_options(&cfg);
    let mut collector = Collector::new(cfg);
    collector.prime_cpu();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
    };
    match rt.block_on(uplink::run(opts, move || collector.collect(), shutdown_signal())) {
        Ok(stats) => {
            eprintln!(
                "routerstats-agent info: stopped: {} reports built, {} acked, {} dropped, {} still spooled",
                stats.reports_built, stats.reports_acked, stats.reports_dropped, stats.spooled
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, e),
    }
}
