//! `/proc/uptime`: seconds since boot.
//!
//! The file is `328925.61 1185449.37` (uptime, then idle time summed over all CPUs). Only the
//! first field is read, and its whole seconds are kept. It is parsed as decimal text rather
//! than through a float, so large uptimes stay exact.

use std::path::Path;

use super::{read_text, ParseError, Parsed, SourceError};

/// Parses the text of `/proc/uptime` into whole seconds.
pub fn parse(text: &str) -> Result<Parsed<u64>, ParseError> {
    let Some(first) = text.split_whitespace().next() else {
        return Err(ParseError::Empty);
    };
    let bad = || {
        ParseError::Invalid(format!(
            "uptime is not a number: {:?}",
            first.chars().take(40).collect::<String>()
        ))
    };
    let (whole, frac) = first.split_once('.').unwrap_or((first, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let seconds = whole.parse::<u64>().map_err(|_| bad())?;
    Ok(Parsed::new(seconds))
}

/// Reads and parses a `/proc/uptime` file (the caller joins the configured /proc root).
pub fn read(path: &Path) -> Result<Parsed<u64>, SourceError> {
    Ok(parse(&read_text(path)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::own_fixture;
    use proptest::prelude::*;

    #[test]
    fn reads_own_fixture() {
        assert_eq!(parse(&own_fixture("proc/uptime")).unwrap().value, 328_925);
    }

    #[test]
    fn forms_of_the_first_field() {
        assert_eq!(parse("12.99 1.00\n").unwrap().value, 12);
        assert_eq!(parse("7").unwrap().value, 7);
        assert_eq!(parse("7.").unwrap().value, 7);
        // Beyond f64's exact integers: still exact.
        assert_eq!(parse("18446744073709551615.50 0").unwrap().value, u64::MAX);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("  \n"), Err(ParseError::Empty));
        for bad in [
            ".5 1",
            "-3.0 1",
            "+3.0",
            "1e5",
            "12.3.4",
            "abc",
            "18446744073709551616.0",
            "12,5",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn read_fixture_and_missing_file() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/proc");
        assert_eq!(read(&dir.join("uptime")).unwrap().value, 328_925);
        assert!(matches!(read(&dir.join("nope")), Err(SourceError::Read(_))));
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,100}") {
            let _ = parse(&s);
        }

        #[test]
        fn decimal_values_round_down(secs in any::<u64>(), centis in 0u32..100) {
            prop_assert_eq!(parse(&format!("{secs}.{centis:02} 5.00\n")).unwrap().value, secs);
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..30) {
            let text = own_fixture("proc/uptime");
            if let Some(prefix) = text.get(..cut.min(text.len())) {
                let _ = parse(prefix);
            }
        }
    }
}
