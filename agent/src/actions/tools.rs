//! Running OpenWrt's tools for actions: an argument vector (never a shell), no stdin, a time
//! limit, and the output kept bounded.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ActionConfig;

/// Time a tool may take before it is killed.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// Output bytes kept per stream.
const MAX_STREAM: u64 = 4096;

/// Runs `program args...`; its stdout on success, or a message with its status and stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    run_with(program, args, TOOL_TIMEOUT)
}

/// [`run`] with a time limit.
pub fn run_with(program: &str, args: &[&str], limit: Duration) -> Result<String, String> {
    let shown = || format!("{program} {}", args.first().copied().unwrap_or_default());
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {} s; killed",
                    shown(),
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let read = |r: Option<&mut dyn Read>| {
        let mut s = String::new();
        if let Some(r) = r {
            let _ = r.take(MAX_STREAM).read_to_string(&mut s);
        }
        s
    };
    let out = read(child.stdout.as_mut().map(|s| s as &mut dyn Read));
    let err = read(child.stderr.as_mut().map(|s| s as &mut dyn Read));
    if status.success() {
        Ok(out)
    } else {
        let why = if err.trim().is_empty() {
            out.trim()
        } else {
            err.trim()
        };
        Err(format!("{} failed ({status}): {why}", shown()))
    }
}

/// The `uci` arguments for `rest`, with the configured `-c`/`-t` directories.
fn uci_args(cfg: &ActionConfig, rest: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(d) = &cfg.uci_confdir {
        v.extend(["-c".to_string(), d.display().to_string()]);
    }
    if let Some(d) = &cfg.uci_savedir {
        v.extend(["-t".to_string(), d.display().to_string()]);
    }
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// Runs `uci <rest...>` with the configured directories.
pub fn uci(cfg: &ActionConfig, rest: &[&str]) -> Result<String, String> {
    let args = uci_args(cfg, rest);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&cfg.uci, &args)
}

/// Runs a sequence of `uci` commands, then `uci commit <package>`; on a failure reverts the
/// package's uncommitted changes. The commands run, one per line, or the error after them.
pub fn uci_change(
    cfg: &ActionConfig,
    package: &str,
    steps: &[Vec<String>],
) -> Result<String, String> {
    let mut log = String::new();
    let commit = vec!["commit".to_string(), package.to_string()];
    for step in steps.iter().chain(std::iter::once(&commit)) {
        let rest: Vec<&str> = step.iter().map(String::as_str).collect();
        log.push_str(&format!("uci {}\n", rest.join(" ")));
        if let Err(e) = uci(cfg, &rest) {
            let _ = uci(cfg, &["revert", package]);
            return Err(format!("{log}{e}; uncommitted changes reverted"));
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_not_interpreted_by_a_shell() {
        // A shell would run `id`; echo prints the characters as they are.
        assert_eq!(
            run("echo", &["$(id)", ";", "`id`"]).unwrap(),
            "$(id) ; `id`\n"
        );
    }

    #[test]
    fn failures_and_timeouts_are_messages() {
        assert!(run("/nonexistent/tool", &[])
            .unwrap_err()
            .contains("cannot run"));
        assert!(run("false", &[]).unwrap_err().contains("failed"));
        let e = run_with("sleep", &["5"], Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("killed"), "{e}");
    }
}
