//! The collector's one wall clock.
//!
//! Every "now" of the collector comes from here: Unix milliseconds ([`now_ms`]) for reports,
//! windows, online rules and API timestamps, Unix seconds ([`unix_now`]) for certificates,
//! enrollment tokens and API keys. Durations (timeouts, latencies, uptime) use
//! `std::time::Instant` where they are measured, never this clock.
//!
//! A process can pin the clock to a fixed instant ([`pin_ms`]) so that what the API answers
//! depends only on the database: the golden dump of every route (`apibench`'s
//! `golden` test) does this. Nothing in the collector itself pins it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The pinned time in Unix milliseconds; `i64::MIN` when the real clock is used.
static PINNED_MS: AtomicI64 = AtomicI64::new(i64::MIN);

/// Current Unix time in milliseconds (0 before 1970, `i64::MAX` past year 292 million).
pub fn now_ms() -> i64 {
    let pinned = PINNED_MS.load(Ordering::Relaxed);
    if pinned != i64::MIN {
        return pinned;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    now_ms().div_euclid(1000)
}

/// Pins the clock of this whole process to `ms` (Unix milliseconds), or back to the real clock
/// with `None`. For tests and benchmarks that need answers independent of the time they run.
#[doc(hidden)]
pub fn pin_ms(ms: Option<i64>) {
    // i64::MIN itself means "not pinned"; pinning to it pins to the next millisecond.
    let stored = match ms {
        Some(ms) => ms.max(i64::MIN + 1),
        None => i64::MIN,
    };
    PINNED_MS.store(stored, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_the_milliseconds_floored() {
        let s = unix_now();
        let ms = now_ms();
        assert!(ms / 1000 - s <= 1 && ms / 1000 >= s, "{ms} ms vs {s} s");
        assert!(s > 1_600_000_000, "the real clock is read: {s}");
    }
}
