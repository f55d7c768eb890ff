//! The uplink to the collector: enrollment, TLS, the report spool and the long-lived session.
//!
//! - [`crypto`]: the trimmed rustls crypto provider (TLS 1.3, P-256, ECDSA P-256 only).
//! - [`csr`]: the agent's P-256 key and PKCS#10 request (ring and a few lines of DER).
//! - [`tls`]: client TLS configurations (CA-pinned enrollment, mutual TLS), collector address
//!   parsing, certificate helpers.
//! - [`enroll`]: one-time enrollment with a token; the identity files in the config directory.
//! - [`spool`]: the bounded queue of encoded reports waiting for the collector's ack.
//! - [`session`]: the agent's run loop: collect every interval, keep one connection, resend
//!   whatever was not acked, renew the certificate when due, hand actions to an [`ActionRunner`].
//!
//! Logging is one line per event with a level prefix: `info` on stdout, `warn` and `error` on
//! stderr. procd logs an instance's stdout as `daemon.info` and its stderr as `daemon.err`, so
//! the priority in `logread` follows the level.

pub mod crypto;
pub mod csr;
pub mod enroll;
pub mod session;
pub mod spool;
pub mod tls;

#[cfg(test)]
pub(crate) mod fake;

use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use enroll::{enroll, load_identity, EnrollError, EnrollOptions, Enrollment, Identity};
pub use session::{run, RunError, RunOptions, RunStats};
pub use spool::{Spool, SpoolConfig};

/// Writes one log line, `routerstats-agent <level>: <message>`, where [`log_to_stderr`] says.
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        $crate::uplink::log_line($level, format_args!($($arg)*))
    };
}
pub(crate) use log;

/// Whether a log level goes to stderr (procd: `daemon.err`): warnings and errors. Everything
/// else (`info`) goes to stdout (`daemon.info`).
pub fn log_to_stderr(level: &str) -> bool {
    matches!(level, "warn" | "error")
}

/// One log line on stdout or stderr (see [`log_to_stderr`]). A closed stream loses the line
/// rather than panicking the agent.
pub fn log_line(level: &str, args: std::fmt::Arguments<'_>) {
    let line = format!("routerstats-agent {level}: {args}\n");
    let _ = if log_to_stderr(level) {
        std::io::stderr().lock().write_all(line.as_bytes())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes()).and_then(|()| out.flush())
    };
}

/// Makes `path` no more open than `mode` (removes the extra permission bits, keeps the rest) and
/// says so; Ok(true) when it changed something. A missing path is left alone.
pub fn tighten_mode(path: &Path, mode: u32) -> std::io::Result<bool> {
    let Some((was, now)) = routerstats_shared::filemode::tighten_mode(path, mode)? else {
        return Ok(false);
    };
    log!(
        "warn",
        "{} was mode {was:o}, open to other users; set it to {now:o}",
        path.display()
    );
    Ok(true)
}

/// The clock, for the uplink's modules (`super::unix_now`).
pub(crate) use crate::clock::{unix_now, unix_now_ms};

/// Runs the fleet actions that arrive on the session (see `crate::actions::Executor`).
pub trait ActionRunner: Send + Sync + 'static {
    /// Runs (or recalls) `action`, given the collector's clock now; returns the encoded
    /// `ActionResult` frame, or None when the action is already running (its result follows).
    /// Called on the blocking pool.
    fn run(
        &self,
        action: routerstats_shared::action::Action,
        collector_now: i64,
    ) -> Option<Vec<u8>>;
}

/// `N` random bytes from `/dev/urandom`. If it cannot be read (a very unusual router), falls back
/// to hashing the time, the process id and a counter: unique enough for a boot id or for jitter,
/// which is all this is used for (keys come from rcgen/ring).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let from_urandom = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .is_ok();
    if !from_urandom {
        // 32 bits: 32-bit MIPS (mips_24kc) has no 64-bit atomics; the counter only makes hashes differ.
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (block, chunk) in out.chunks_mut(32).enumerate() {
            let mut h = ring::digest::Context::new(&ring::digest::SHA256);
            h.update(&nanos.to_le_bytes());
            h.update(&std::process::id().to_le_bytes());
            h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            h.update(&(block as u64).to_le_bytes());
            let digest = h.finish();
            for (o, d) in chunk.iter_mut().zip(digest.as_ref()) {
                *o = *d;
            }
        }
    }
    out
}

/// A small non-cryptographic generator (xorshift64*) for backoff jitter.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Self {
        Jitter(u64::from_le_bytes(random_bytes::<8>()) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniformly spread duration in `[0, max]`.
    pub(crate) fn up_to(&mut self, max: Duration) -> Duration {
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if max_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.next_u64() % max_ms.saturating_add(1))
    }

    /// "Equal jitter": half of `base` plus a random share of the other half.
    pub(crate) fn spread(&mut self, base: Duration) -> Duration {
        let half = base / 2;
        half + self.up_to(base - half)
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same directory with `mode`,
/// fsync, then rename over the target. Readers see the old or the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The file may have existed with other permissions; the mode above applies only on create.
        f.set_permissions(Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        // Best effort: make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_goes_to_stdout_warnings_and_errors_to_stderr() {
        // procd: stdout is logged as daemon.info, stderr as daemon.err.
        assert!(!log_to_stderr("info"));
        assert!(log_to_stderr("warn"));
        assert!(log_to_stderr("error"));
    }

    #[test]
    fn random_bytes_differ() {
        let a = random_bytes::<16>();
        let b = random_bytes::<16>();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 16]);
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut j = Jitter::new();
        let base = Duration::from_millis(1000);
        for _ in 0..1000 {
            let d = j.spread(base);
            assert!(d >= Duration::from_millis(500) && d <= base, "{d:?}");
            assert!(j.up_to(Duration::from_millis(10)) <= Duration::from_millis(10));
        }
        assert_eq!(j.up_to(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.pem");
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }

    #[test]
    fn atomic_write_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("x");
        assert!(write_atomic(&p, b"x", 0o600).is_err());
    }

    #[test]
    fn tighten_mode_removes_only_extra_bits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        std::fs::write(&p, b"k").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        assert!(tighten_mode(&p, 0o600).unwrap());
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!tighten_mode(&p, 0o600).unwrap());
        std::fs::set_permissions(&p, Permissions::from_mode(0o400)).unwrap();
        assert!(!tighten_mode(&p, 0o600).unwrap(), "a stricter mode is kept");
        assert!(!tighten_mode(&dir.path().join("missing"), 0o600).unwrap());
    }
}
