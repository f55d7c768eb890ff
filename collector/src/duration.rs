//! Human-written durations: `250ms`, `10s`, `30m`, `24h`, `7d`, `2w`, and sums like `1h30m`.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (examples: 250ms, 10s, 30m, 24h, 7d, 1h30m)")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses a duration made of `<number><unit>` parts; units are ms, s, m, h, d, w.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.chars().take(64).collect(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let (num, after) = rest.split_at(digits);
        let value: u64 = num.parse().map_err(|_| err("number too large"))?;
        let unit_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let (unit, after) = after.split_at(unit_len);
        let factor_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        let part = value
            .checked_mul(factor_ms)
            .ok_or_else(|| err("too large"))?;
        total_ms = total_ms.checked_add(part).ok_or_else(|| err("too large"))?;
        rest = after.trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration in the largest exact unit (`90s` -> `90s`, `86400s` -> `1d`).
#[cfg(test)]
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, factor) in [
        ("w", 7 * 86_400_000u128),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= factor && ms.is_multiple_of(factor) {
            return format!("{}{unit}", ms / factor);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_duration(" 7d ").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
    }

    #[test]
    fn refuses_bad_input_with_reason() {
        assert_eq!(parse_duration("").unwrap_err().reason, "empty");
        assert_eq!(parse_duration("24").unwrap_err().reason, "missing unit");
        assert_eq!(parse_duration("5y").unwrap_err().reason, "unknown unit");
        assert_eq!(parse_duration("h").unwrap_err().reason, "expected a number");
        assert_eq!(
            parse_duration("-1h").unwrap_err().reason,
            "expected a number"
        );
        assert_eq!(
            parse_duration("99999999999999999999h").unwrap_err().reason,
            "number too large"
        );
        assert_eq!(
            parse_duration("9999999999999999w").unwrap_err().reason,
            "too large"
        );
        assert!(parse_duration("1h30").is_err());
    }

    #[test]
    fn formats_in_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(86_400)), "1d");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn format_round_trips(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
