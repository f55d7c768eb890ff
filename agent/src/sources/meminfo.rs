//! `/proc/meminfo`: total and available memory.
//!
//! Lines are `Key:   value kB` (some kernels and busybox-era captures collapse the padding to
//! one space; a few keys such as `HugePages_Total` have no unit). Kernels before 3.14 have no
//! `MemAvailable`; it is then estimated as `MemFree + Buffers + Cached + SReclaimable - Shmem`
//! (missing terms count as 0, capped at `MemTotal`) and flagged as derived.

use std::path::Path;

use super::{read_text, ParseError, Parsed, SourceError};

/// The memory figures the agent reports, all in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MemInfo {
    pub total_kb: u64,
    pub available_kb: u64,
    /// True when `MemAvailable` was missing and `available_kb` was estimated.
    pub available_derived: bool,
    pub free_kb: u64,
    pub buffers_kb: u64,
    pub cached_kb: u64,
}

/// Parses the text of `/proc/meminfo`. Malformed lines and repeated keys are skipped; a missing
/// `MemTotal` is an error.
pub fn parse(text: &str) -> Result<Parsed<MemInfo>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut out = Parsed::new(MemInfo::default());
    // A list rather than a hash map: some fifty keys, and less code on the router.
    let mut values: Vec<(&str, u64)> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok((key, value)) => {
                if values.iter().any(|(k, _)| *k == key) {
                    out.skip(idx + 1, format!("repeated key {key}"));
                } else {
                    values.push((key, value));
                }
            }
            Err(reason) => out.skip(idx + 1, reason),
        }
    }
    let get = |k: &str| values.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let Some(total_kb) = get("MemTotal") else {
        return Err(out.nothing_usable("no MemTotal"));
    };
    let free_kb = get("MemFree").unwrap_or(0);
    let buffers_kb = get("Buffers").unwrap_or(0);
    let cached_kb = get("Cached").unwrap_or(0);
    let (available_kb, available_derived) = match get("MemAvailable") {
        Some(v) => (v, false),
        None => {
            let estimate = free_kb
                .saturating_add(buffers_kb)
                .saturating_add(cached_kb)
                .saturating_add(get("SReclaimable").unwrap_or(0))
                .saturating_sub(get("Shmem").unwrap_or(0));
            (estimate.min(total_kb), true)
        }
    };
    out.value = MemInfo {
        total_kb,
        available_kb,
        available_derived,
        free_kb,
        buffers_kb,
        cached_kb,
    };
    Ok(out)
}

/// `Key: 123 kB` -> (`Key`, 123).
fn parse_line(line: &str) -> Result<(&str, u64), String> {
    let clip = |s: &str| s.chars().take(40).collect::<String>();
    let Some((key, rest)) = line.split_once(':') else {
        return Err(format!("no ':' in {:?}", clip(line)));
    };
    let key = key.trim();
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!("bad key {:?}", clip(key)));
    }
    let mut toks = rest.split_whitespace();
    let value = toks
        .next()
        .ok_or_else(|| format!("{key}: no value"))?
        .parse::<u64>()
        .map_err(|_| format!("{key}: value is not a number"))?;
    match (toks.next(), toks.next()) {
        (None, _) => Ok((key, value)),
        (Some(unit), None) if unit.eq_ignore_ascii_case("kB") => Ok((key, value)),
        _ => Err(format!("{key}: unexpected text after the value")),
    }
}

/// Reads and parses a `/proc/meminfo` file (the caller joins the configured /proc root).
pub fn read(path: &Path) -> Result<Parsed<MemInfo>, SourceError> {
    Ok(parse(&read_text(path)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{own_fixture, shared_fixture};
    use proptest::prelude::*;

    #[test]
    fn own_fixture_uses_mem_available() {
        let p = parse(&own_fixture("proc/meminfo")).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(
            p.value,
            MemInfo {
                total_kb: 122_560,
                available_kb: 52_604,
                available_derived: false,
                free_kb: 38_212,
                buffers_kb: 3_120,
                cached_kb: 19_844,
            }
        );
    }

    #[test]
    fn missing_mem_available_is_derived() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n\
                    Shmem: 50 kB\nSReclaimable: 30 kB\n";
        let m = parse(text).unwrap().value;
        assert!(m.available_derived);
        assert_eq!(m.available_kb, 100 + 20 + 300 + 30 - 50);
    }

    #[test]
    fn derivation_saturates_and_caps_at_total() {
        let m = parse("MemTotal: 100 kB\nMemFree: 10 kB\nShmem: 50 kB\n")
            .unwrap()
            .value;
        assert_eq!(m.available_kb, 0);
        let m = parse("MemTotal: 100 kB\nMemFree: 18446744073709551615 kB\nCached: 9 kB\n")
            .unwrap()
            .value;
        assert_eq!(m.available_kb, 100);
        // Only MemTotal: every other term counts as zero.
        let m = parse("MemTotal: 100 kB\n").unwrap().value;
        assert_eq!(
            (m.available_kb, m.free_kb, m.available_derived),
            (0, 0, true)
        );
    }

    #[test]
    fn collapsed_and_wide_spacing_and_unitless_keys() {
        let text = "MemTotal: 28616 kB\nMemFree:\t\t4104 kB\nHugePages_Total:       0\nMemAvailable:   9000 kB";
        let p = parse(text).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(
            (p.value.total_kb, p.value.free_kb, p.value.available_kb),
            (28_616, 4_104, 9_000)
        );
    }

    #[test]
    fn bad_lines_are_skipped_and_first_duplicate_wins() {
        let text = "MemTotal: 500 kB\ngarbage\nMemFree: lots kB\nCached: 5 MB\nMemTotal: 900 kB\n: 3 kB\nBuffers:\n";
        let p = parse(text).unwrap();
        assert_eq!(p.value.total_kb, 500);
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
        assert!(p.skipped[3].reason.contains("repeated key MemTotal"));
    }

    #[test]
    fn no_mem_total_is_an_error() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse(" \n "), Err(ParseError::Empty));
        let err = parse("MemFree: 3 kB\n").unwrap_err();
        assert!(
            matches!(&err, ParseError::Invalid(m) if m.contains("MemTotal")),
            "{err:?}"
        );
        // A cut-off MemTotal line is not a MemTotal.
        assert!(parse("MemTotal:   ").is_err());
    }

    #[test]
    fn read_fixture_and_missing_file() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/proc");
        assert_eq!(read(&dir.join("meminfo")).unwrap().value.total_kb, 122_560);
        assert!(matches!(read(&dir.join("nope")), Err(SourceError::Read(_))));
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn linelike_text_never_panics(s in "([A-Za-z_()]{0,12}:[ \t]{0,8}[0-9]{0,22}( kB)?\n){0,8}") {
            if let Ok(p) = parse(&s) {
                prop_assert!(p.value.available_kb <= p.value.total_kb || !p.value.available_derived);
            }
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..1200) {
            for text in [own_fixture("proc/meminfo"),
                         shared_fixture("proc/meminfo-issue-openwrt-arm-128M-no-MemAvailable.txt")] {
                let cut = cut.min(text.len());
                if let Some(prefix) = text.get(..cut) {
                    let _ = parse(prefix);
                }
            }
        }
    }
}
