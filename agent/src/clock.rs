//! The agent's one wall clock: report timestamps ([`unix_now_ms`]), certificate validity and
//! WireGuard handshake ages ([`unix_now`]). Both read 0 when the clock is before 1970 (a router
//! without RTC that has not synced yet).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let s = unix_now();
        let ms = unix_now_ms();
        assert!(s > 1_600_000_000, "the real clock is read: {s}");
        assert!((ms / 1000).abs_diff(s as u64) <= 1, "{ms} ms vs {s} s");
    }
}
