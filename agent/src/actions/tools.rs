//! Running OpenWrt's tools for actions: an argument vector (never a shell), no stdin, a time
//! limit, and the output kept bounded.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    run_inner(program, args, &[], MAX_STREAM, limit)
}

/// Runs `program args...` with extra environment variables; stdout is kept up to `max` bytes.
pub fn run_env(
    program: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
    max: u64,
) -> Result<String, String> {
    run_inner(program, args, env, max, TOOL_TIMEOUT)
}

/// Both pipes are read while the tool runs (a large output cannot block it), each kept up to
/// its limit and the rest drained.
fn run_inner(
    program: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
    max: u64,
    limit: Duration,
) -> Result<String, String> {
    let shown = || format!("{program} {}", args.first().copied().unwrap_or_default());
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let pipe = |r: Option<Box<dyn Read + Send>>, max: u64| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.by_ref().take(max).read_to_end(&mut buf);
                let _ = std::io::copy(&mut r, &mut std::io::sink());
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = pipe(child.stdout.take().map(|s| Box::new(s) as _), max);
    let err = pipe(child.stderr.take().map(|s| Box::new(s) as _), MAX_STREAM);
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
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
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

    #[test]
    fn run_env_passes_variables_and_survives_large_output() {
        let v = std::ffi::OsStr::new("x y;$(id)");
        let out = run_env("sh", &["-c", "printf %s \"$RS_T\""], &[("RS_T", v)], 100).unwrap();
        assert_eq!(out, "x y;$(id)");
        // 1 MB of output (more than a pipe holds) is read, cut at the limit, and nothing blocks.
        let out = run_env("head", &["-c", "1000000", "/dev/zero"], &[], 1000).unwrap();
        assert_eq!(out.len(), 1000);
        assert!(run_env("false", &[], &[], 10)
            .unwrap_err()
            .contains("failed"));
    }
}
