//! One module per input source. Each has a pure parser over text, `parse(&str)`, plus a small
//! reader at the I/O edge. Parsers never panic: they keep every well-formed record and list what
//! they skipped in [`Parsed::skipped`]. They return `Err` only when nothing usable was found.
//!
//! `skipped` holds two kinds of entries: malformed input ([`Parsed::skip`]), which makes the
//! source [`SourceState::Partial`], and well-formed lines the parser deliberately does not use
//! ([`Parsed::unused`], e.g. `beacon interval` of a station dump), listed so that nothing is
//! dropped silently (`routerstats-agent parse` shows them) without flagging a healthy source.

pub mod board;
pub mod dhcp_leases;
pub mod disk;
pub mod iw_dev;
pub mod loadavg;
pub mod meminfo;
pub mod net_dev;
pub mod openvpn;
pub mod openwrt_release;
pub mod proc_stat;
pub mod station_dump;
pub mod uci_network;
pub mod uptime;
pub mod wan;
pub mod wireguard;

use std::path::Path;
use std::process::Command;

use routerstats_shared::SourceState;

/// What a parser produced: the well-formed records, plus what it had to skip.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Parsed<T> {
    pub value: T,
    pub skipped: Vec<Skipped>,
}

impl<T> Parsed<T> {
    pub fn new(value: T) -> Self {
        Parsed {
            value,
            skipped: Vec::new(),
        }
    }

    /// Records that `line` (1-based; 0 when not tied to a line) was not understood.
    pub fn skip(&mut self, line: usize, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            line,
            reason: reason.into(),
            unused: false,
        });
    }

    /// Records that `line` is well formed but not used: `what` names it (never the whole line).
    pub fn unused(&mut self, line: usize, what: impl std::fmt::Display) {
        self.skipped.push(Skipped {
            line,
            reason: format!("not used: {what}"),
            unused: true,
        });
    }

    /// The malformed entries of `skipped` (those that are not [`Parsed::unused`] notes).
    pub fn malformed(&self) -> impl Iterator<Item = &Skipped> {
        self.skipped.iter().filter(|s| !s.unused)
    }

    /// The error for input that yielded nothing usable: `what`, plus the first skipped line's
    /// reason when there is one (the most likely explanation).
    pub fn nothing_usable(&self, what: &str) -> ParseError {
        match self.malformed().next().or(self.skipped.first()) {
            Some(first) => ParseError::Invalid(format!("{what} ({first})")),
            None => ParseError::Invalid(what.to_string()),
        }
    }

    /// The source state this parse result should report: `unused` notes do not count.
    pub fn state(&self) -> SourceState {
        match self.malformed().next() {
            None => SourceState::Ok,
            Some(first) => SourceState::Partial {
                skipped: self.malformed().count().min(u32::MAX as usize) as u32,
                first_error: first.to_string(),
            },
        }
    }
}

/// A line or record a parser could not use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
    /// A well-formed line the parser does not use, not an error ([`Parsed::unused`]).
    pub unused: bool,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

/// Why a parser found nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty input")]
    Empty,
    #[error("{0}")]
    Invalid(String),
}

/// Why a reader could not get the text to parse.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("command not found: {0}")]
    ToolMissing(String),
    #[error("{cmd} exited with {status}: {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("cannot read {path}: {err}")]
    File { path: String, err: std::io::Error },
    #[error("cannot run {cmd}: {err}")]
    Spawn { cmd: String, err: std::io::Error },
}

impl ReadError {
    /// The source state this read failure should report.
    pub fn state(&self) -> SourceState {
        match self {
            ReadError::ToolMissing(t) => SourceState::ToolMissing(t.clone()),
            other => SourceState::Error(other.to_string()),
        }
    }
}

/// Why a source produced nothing: it could not be read, or its text had nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Largest output the agent reads from one command or file (a safety cap on small routers).
pub const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

/// Runs a command (program plus arguments) and returns its stdout as text (lossy UTF-8).
/// A program that does not exist is [`ReadError::ToolMissing`].
pub fn run_command(program: &str, args: &[&str]) -> Result<String, ReadError> {
    let cmd = || {
        std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let out = match Command::new(program).args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReadError::ToolMissing(program.to_string()))
        }
        Err(err) => return Err(ReadError::Spawn { cmd: cmd(), err }),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ReadError::Failed {
            cmd: cmd(),
            status: out.status.to_string(),
            stderr: stderr.trim().chars().take(300).collect(),
        });
    }
    let mut stdout = out.stdout;
    stdout.truncate(MAX_INPUT_BYTES as usize);
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Reads a text file (lossy UTF-8, capped at [`MAX_INPUT_BYTES`]).
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    let file_err = |err| ReadError::File {
        path: path.display().to_string(),
        err,
    };
    let f = std::fs::File::open(path).map_err(file_err)?;
    let mut buf = Vec::new();
    f.take(MAX_INPUT_BYTES)
        .read_to_end(&mut buf)
        .map_err(file_err)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_is_reported_as_such() {
        let err = run_command("/nonexistent/routerstats-no-such-tool", &[]).unwrap_err();
        assert!(matches!(err, ReadError::ToolMissing(_)));
        assert!(matches!(err.state(), SourceState::ToolMissing(_)));
    }

    #[test]
    fn failing_command_keeps_stderr() {
        let err = run_command("sh", &["-c", "echo nope >&2; exit 3"]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn partial_state_names_first_problem() {
        let mut p = Parsed::new(());
        assert_eq!(p.state(), SourceState::Ok);
        p.skip(4, "bad mac");
        p.skip(9, "bad ip");
        assert_eq!(
            p.state(),
            SourceState::Partial {
                skipped: 2,
                first_error: "line 4: bad mac".into()
            }
        );
    }

    #[test]
    fn unused_lines_are_listed_but_do_not_make_a_source_partial() {
        let mut p = Parsed::new(());
        p.unused(3, "beacon interval");
        assert_eq!(p.state(), SourceState::Ok);
        assert_eq!(
            p.skipped[0].to_string(),
            "line 3: not used: beacon interval"
        );
        p.skip(5, "bad mac");
        assert_eq!(
            p.state(),
            SourceState::Partial {
                skipped: 1,
                first_error: "line 5: bad mac".into()
            }
        );
        assert_eq!(p.malformed().count(), 1);
    }
}

/// Parses a plain decimal number as the kernel and OpenWrt's tools print it (`-3`, `0.42`,
/// `13.88`): an optional `-`, digits, an optional `.` and digits; no exponent, `inf` or `nan`.
/// Up to 15 significant digits the result is exactly `str::parse::<f64>`'s (one correctly
/// rounded division of two exact values); it replaces core's float parser, whose tables cost
/// 17 KB on mips_24kc (packaging/README.md, Size).
pub fn parse_decimal(s: &str) -> Option<f64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 19
        || frac.len() > 22
    {
        return None;
    }
    let mantissa: u64 = int
        .bytes()
        .chain(frac.bytes())
        .fold(0, |m, b| m * 10 + u64::from(b - b'0'));
    let v = mantissa as f64 / 10f64.powi(frac.len() as i32);
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod decimal_tests {
    use super::parse_decimal;

    #[test]
    fn same_as_core_for_what_routers_print() {
        for s in [
            "0",
            "0.42",
            "20.00",
            "-3.00",
            "13.88",
            "866.7",
            "1234567.891",
            "0.001",
            "3.",
            ".5",
            "100000000000000",
        ] {
            assert_eq!(parse_decimal(s), Some(s.parse::<f64>().unwrap()), "{s}");
            assert_eq!(
                parse_decimal(s).map(|v| v as f32),
                Some(s.parse::<f32>().unwrap()),
                "{s}"
            );
        }
        for bad in [
            "",
            "-",
            ".",
            "1e5",
            "inf",
            "nan",
            "+1",
            "1.2.3",
            "1,5",
            " 1",
            "--1",
            "12345678901234567890",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }
}
