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
