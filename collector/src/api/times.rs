//! Time and duration formatting of every route group: one home, written with the `time`
//! crate's format descriptions instead of hand-written calendars. "Now" itself comes from
//! [`crate::clock`].
//!
//! Each tool the API replaces has its own formats, so several live side by side here:
//!
//! | function | example | used by |
//! |---|---|---|
//! | [`iso_ms`] / [`iso_ms_opt`] | `2025-01-31T12:00:00.123Z` | monitor, gateway, dashboard, ISP envelopes |
//! | [`iso_now`] | the same, for now | ISP envelope `timestamp` |
//! | [`iso_utc`] | `2024-11-18T10:30:45Z` | WireGuard manager |
//! | [`plain_datetime_s`] | `2025-11-19 06:42:49` | ISP VPN (OpenVPN status style) |
//! | [`date_ms`] | `2025-11-19` | ISP usage by day |
//! | [`compact_utc`] | `20250131T120000Z` | export file names |
//! | [`utc_s`] | `2023-11-14 22:13:20 UTC` | the CLI's tables |
//! | [`routeros_uptime`] | `2w3d4h15m10s` | ISP device uptime |
//! | [`human_age`] | `2m 15s`, `2d 5h` | WireGuard handshake age |
//!
//! Out-of-range times (beyond year 9999) give the raw number (String forms) or `None`.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const ISO_MS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const ISO_S: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
const PLAIN: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");
const COMPACT: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// The UTC time of Unix milliseconds, when representable.
fn utc_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// The UTC time of Unix seconds, when representable.
fn utc_secs(s: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(s).ok()
}

fn format(t: OffsetDateTime, f: &[BorrowedFormatItem<'_>]) -> Option<String> {
    t.format(f).ok()
}

/// RFC 3339 UTC with milliseconds, like `2025-01-31T12:00:00.123Z`; the number itself when out
/// of range.
pub fn iso_ms(ms: i64) -> String {
    iso_ms_opt(ms).unwrap_or_else(|| ms.to_string())
}

/// [`iso_ms`], None when out of range.
pub fn iso_ms_opt(ms: i64) -> Option<String> {
    format(utc_ms(ms)?, ISO_MS)
}

/// Now ([`crate::clock::now_ms`]) in [`iso_ms`] form: the ISP envelope's `timestamp`.
pub fn iso_now() -> String {
    iso_ms_opt(crate::clock::now_ms()).unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
}

/// ISO 8601 UTC of Unix seconds, like `2025-11-18T10:30:45Z`; the number itself when out of range.
pub fn iso_utc(unix_s: i64) -> String {
    utc_secs(unix_s)
        .and_then(|t| format(t, ISO_S))
        .unwrap_or_else(|| unix_s.to_string())
}

/// `2025-11-19 06:42:49` (UTC) for Unix seconds, the OpenVPN status file style.
pub fn plain_datetime_s(s: i64) -> Option<String> {
    format(utc_ms(s.checked_mul(1000)?)?, PLAIN)
}

/// `2025-11-19` (UTC) for Unix milliseconds.
pub fn date_ms(ms: i64) -> Option<String> {
    format(utc_ms(ms)?, DATE)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds (the number itself if out of range).
pub fn utc_s(secs: i64) -> String {
    utc_secs(secs)
        .and_then(|t| format(t, PLAIN))
        .map(|s| format!("{s} UTC"))
        .unwrap_or_else(|| secs.to_string())
}

/// Compact UTC time for file names, like `20250131T120000Z`. Out of range: the digits of the
/// first 19 characters of the number, then `Z`.
pub fn compact_utc(ms: i64) -> String {
    if let Some(s) = utc_ms(ms).and_then(|t| format(t, COMPACT)) {
        return s;
    }
    let digits: String = ms
        .to_string()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit())
        .collect();
    format!("{digits}Z")
}

/// RouterOS-style uptime: `2w3d4h15m10s` (zero units left out, `0s` for zero).
pub fn routeros_uptime(secs: u64) -> String {
    let units = [
        ("w", 7 * 86_400),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ];
    let mut left = secs;
    let mut out = String::new();
    for (name, len) in units {
        let n = left / len;
        left %= len;
        if n > 0 {
            out.push_str(&format!("{n}{name}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// A duration like the WireGuard manager prints it: `45s`, `2m 15s`, `3h 4m`, `2d 5h`
/// (negative: `0s`).
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The hand-written calendar formatting these functions replaced, as the reference.
    fn old_iso_ms(ms: i64) -> String {
        let nanos = i128::from(ms).saturating_mul(1_000_000);
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            Err(_) => ms.to_string(),
        }
    }

    fn old_compact_utc(ms: i64) -> String {
        let digits: String = old_iso_ms(ms)
            .chars()
            .take(19)
            .filter(|c| c.is_ascii_digit() || *c == 'T')
            .collect();
        format!("{digits}Z")
    }

    /// Year 0 to 9999 (the records of the store are never before 1970).
    const FIRST_MS: i64 = -62_167_219_200_000;
    const LAST_MS: i64 = 253_402_300_799_999;

    proptest! {
        #[test]
        fn same_text_as_the_hand_written_calendar(ms in FIRST_MS..=LAST_MS) {
            let s = ms.div_euclid(1000);
            let old = old_iso_ms(ms);
            prop_assert_eq!(iso_ms(ms), old.clone());
            prop_assert_eq!(iso_utc(s), format!("{}Z", &old_iso_ms(s * 1000)[..19]));
            prop_assert_eq!(plain_datetime_s(s), Some(old_iso_ms(s * 1000)[..19].replace('T', " ")));
            prop_assert_eq!(utc_s(s), format!("{} UTC", &old_iso_ms(s * 1000)[..19].replace('T', " ")));
            prop_assert_eq!(date_ms(ms), Some(old[..10].to_string()));
            prop_assert_eq!(compact_utc(ms), old_compact_utc(ms));
        }
    }

    #[test]
    fn out_of_range_gives_the_number_or_none() {
        for ms in [i64::MAX, i64::MIN, LAST_MS + 1] {
            assert_eq!(iso_ms(ms), old_iso_ms(ms));
            assert_eq!(iso_ms_opt(ms), None);
            assert_eq!(compact_utc(ms), old_compact_utc(ms));
            assert_eq!(date_ms(ms), None);
        }
        assert_eq!(iso_utc(i64::MAX), i64::MAX.to_string());
        assert_eq!(utc_s(i64::MIN), i64::MIN.to_string());
        assert_eq!(plain_datetime_s(i64::MAX), None);
    }

    #[test]
    fn examples() {
        assert_eq!(iso_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_utc(1_731_925_845), "2024-11-18T10:30:45Z");
        assert_eq!(utc_s(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(compact_utc(1_700_000_000_123), "20231114T221320Z");
        assert_eq!(routeros_uptime(61), "1m1s");
        assert_eq!(human_age(135), "2m 15s");
    }
}
