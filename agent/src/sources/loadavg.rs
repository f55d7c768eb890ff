//! `/proc/loadavg`: the 1, 5 and 15 minute load averages.
//!
//! The file is one line, `0.42 0.31 0.27 2/112 4821`; only the first three fields are read.

use std::path::Path;

use super::{read_text, ParseError, Parsed, SourceError};

/// Parses the text of `/proc/loadavg`. The three averages must be finite, non-negative numbers.
pub fn parse(text: &str) -> Result<Parsed<[f32; 3]>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut toks = text.split_whitespace();
    let mut load = [0f32; 3];
    for (i, slot) in load.iter_mut().enumerate() {
        let tok = toks
            .next()
            .ok_or_else(|| ParseError::Invalid(format!("only {i} of 3 load averages")))?;
        *slot = super::parse_decimal(tok)
            .map(|v| v as f32)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                let tok: String = tok.chars().take(40).collect();
                ParseError::Invalid(format!("load average {} is not a number: {tok:?}", i + 1))
            })?;
    }
    Ok(Parsed::new(load))
}

/// Reads and parses a `/proc/loadavg` file (the caller joins the configured /proc root).
pub fn read(path: &Path) -> Result<Parsed<[f32; 3]>, SourceError> {
    Ok(parse(&read_text(path)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::own_fixture;
    use proptest::prelude::*;

    #[test]
    fn reads_own_fixture() {
        let p = parse(&own_fixture("proc/loadavg")).unwrap();
        assert_eq!(p.value, [0.42, 0.31, 0.27]);
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn only_three_fields_needed() {
        assert_eq!(parse("1.00 2.50 12.75").unwrap().value, [1.0, 2.5, 12.75]);
        assert_eq!(parse("3 0 0\n").unwrap().value, [3.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("\n"), Err(ParseError::Empty));
        for bad in [
            "0.42 0.31",
            "0.42 x 0.27 1/2 3",
            "-1 0 0",
            "NaN 0 0",
            "inf 0 0",
            "0.4",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn read_fixture_and_missing_file() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/proc");
        assert_eq!(read(&dir.join("loadavg")).unwrap().value[2], 0.27);
        assert!(matches!(read(&dir.join("nope")), Err(SourceError::Read(_))));
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,200}") {
            if let Ok(p) = parse(&s) {
                prop_assert!(p.value.iter().all(|v| v.is_finite() && *v >= 0.0));
            }
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..40) {
            let text = own_fixture("proc/loadavg");
            if let Some(prefix) = text.get(..cut.min(text.len())) {
                let _ = parse(prefix);
            }
        }
    }
}
