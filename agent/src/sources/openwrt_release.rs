//! `/etc/openwrt_release`: the release a router runs, as shell variable assignments.
//!
//! Lines are `DISTRIB_RELEASE='23.05.3'`; old releases use double quotes, hand-edited files may
//! use no quotes, and `'it'\''s'`-style concatenation is valid shell. Values are kept exactly
//! as written: nothing is expanded, so vendor templates that were never filled in (`%C`, `%t`)
//! stay visible. Missing keys are None, an empty value is `Some("")`, comments and unknown
//! variables are passed over, and a repeated key keeps its last value, as sourcing the file
//! would.

use std::path::Path;

use routerstats_shared::OpenWrtRelease;

use super::{read_text, ParseError, Parsed, SourceError};

/// Parses the text of `/etc/openwrt_release`. Lines that are not `NAME=value` assignments are
/// skipped; a file without a single `DISTRIB_*` field the model knows is an error.
pub fn parse(text: &str) -> Result<Parsed<OpenWrtRelease>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut out = Parsed::new(OpenWrtRelease::default());
    let mut known = 0usize;
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            out.skip(idx + 1, "not a NAME=value line");
            continue;
        };
        if !is_shell_name(key) {
            out.skip(
                idx + 1,
                format!(
                    "bad variable name {:?}",
                    key.chars().take(40).collect::<String>()
                ),
            );
            continue;
        }
        let value = match shell_word(value) {
            Ok(v) => v,
            Err(reason) => {
                out.skip(idx + 1, format!("{key}: {reason}"));
                continue;
            }
        };
        let r = &mut out.value;
        let slot = match key {
            "DISTRIB_ID" => &mut r.distrib_id,
            "DISTRIB_RELEASE" => &mut r.release,
            "DISTRIB_REVISION" => &mut r.revision,
            "DISTRIB_TARGET" => &mut r.target,
            "DISTRIB_ARCH" => &mut r.arch,
            "DISTRIB_DESCRIPTION" => &mut r.description,
            "DISTRIB_TAINTS" => &mut r.taints,
            "DISTRIB_CODENAME" => &mut r.codename,
            _ => continue,
        };
        *slot = Some(value);
        known += 1;
    }
    if known == 0 {
        return Err(out.nothing_usable("no DISTRIB_ fields"));
    }
    Ok(out)
}

/// A shell variable name: a letter or `_`, then letters, digits and `_`.
fn is_shell_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value of an assignment, quoted the way `sh` reads it: `'...'` literally, `"..."` with
/// `\"`, `\\`, `\$` and `` \` `` escapes, bare text up to the first unquoted blank, and any mix
/// of these run together. After the value only a `#` comment may follow.
fn shell_word(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    None => return Err("unclosed single quote".to_string()),
                    Some((_, '\'')) => break,
                    Some((_, c)) => out.push(c),
                }
            },
            '"' => loop {
                match chars.next() {
                    None => return Err("unclosed double quote".to_string()),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.peek() {
                        Some(&(_, e @ ('"' | '\\' | '$' | '`'))) => {
                            out.push(e);
                            chars.next();
                        }
                        _ => out.push('\\'),
                    },
                    Some((_, c)) => out.push(c),
                }
            },
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => return Err("line continuation is not supported".to_string()),
            },
            c if c.is_whitespace() => {
                let rest = s.get(pos..).unwrap_or("").trim_start();
                if rest.is_empty() || rest.starts_with('#') {
                    break;
                }
                return Err("unquoted text after the value".to_string());
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Reads and parses an openwrt_release file (the caller joins the configured /etc root).
pub fn read(path: &Path) -> Result<Parsed<OpenWrtRelease>, SourceError> {
    Ok(parse(&read_text(path)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{own_fixture, shared_fixture};
    use proptest::prelude::*;

    #[test]
    fn own_fixture_23_05() {
        let p = parse(&own_fixture("etc/openwrt_release")).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(
            p.value,
            OpenWrtRelease {
                distrib_id: Some("OpenWrt".into()),
                release: Some("23.05.3".into()),
                revision: Some("r23809-234f1a2efa".into()),
                target: Some("ramips/mt7621".into()),
                arch: Some("mipsel_24kc".into()),
                description: Some("OpenWrt 23.05.3 r23809-234f1a2efa".into()),
                taints: Some(String::new()),
                codename: None,
            }
        );
    }

    #[test]
    fn quoting_styles() {
        let text = "DISTRIB_ID=OpenWrt\nDISTRIB_RELEASE=\"Bleeding Edge\"\n\
                    DISTRIB_DESCRIPTION='It'\\''s \"fine\"'\nDISTRIB_TARGET=\"a\\\"b\\\\c\\d\"\n\
                    DISTRIB_ARCH=mips\\ el\n";
        let p = parse(text).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let r = p.value;
        assert_eq!(r.distrib_id.as_deref(), Some("OpenWrt"));
        assert_eq!(r.release.as_deref(), Some("Bleeding Edge"));
        assert_eq!(r.description.as_deref(), Some("It's \"fine\""));
        assert_eq!(r.target.as_deref(), Some("a\"b\\c\\d"));
        assert_eq!(r.arch.as_deref(), Some("mips el"));
    }

    #[test]
    fn unexpanded_placeholders_are_kept() {
        let r = parse("DISTRIB_CODENAME='%C'\nDISTRIB_TAINTS=\"%t\"\nDISTRIB_REVISION='$REV'\n")
            .unwrap()
            .value;
        assert_eq!(r.codename.as_deref(), Some("%C"));
        assert_eq!(r.taints.as_deref(), Some("%t"));
        assert_eq!(r.revision.as_deref(), Some("$REV"));
    }

    #[test]
    fn comments_blank_lines_export_and_unknown_keys() {
        let text = "# generated\n\n  export DISTRIB_ID='OpenWrt' # trailing comment\r\nDISTRIB_SUBTARGET='x'\n\
                    DISTRIB_RELEASE='1'\nDISTRIB_RELEASE='2'\n";
        let p = parse(text).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.value.distrib_id.as_deref(), Some("OpenWrt"));
        assert_eq!(p.value.release.as_deref(), Some("2"));
        assert_eq!(p.value.arch, None);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "DISTRIB_ID='OpenWrt'\njunk\nDISTRIB_RELEASE='23.05\n1X=2\nDISTRIB_ARCH=a b\n\
                    DISTRIB_TARGET=\"x\nDISTRIB_REVISION=r1\\";
        let p = parse(text).unwrap();
        assert_eq!(p.value.distrib_id.as_deref(), Some("OpenWrt"));
        assert_eq!(
            (
                p.value.release.clone(),
                p.value.arch.clone(),
                p.value.target.clone()
            ),
            (None, None, None)
        );
        assert_eq!(p.value.revision, None);
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
        assert!(
            p.skipped[1].reason.contains("unclosed single quote"),
            "{:?}",
            p.skipped
        );
    }

    #[test]
    fn double_quoted_shared_fixture_without_arch_or_taints() {
        let r = parse(&shared_fixture(
            "proc/openwrt_release-attitude_adjustment-DOUBLE-QUOTES-no-arch-no-taints.txt",
        ))
        .unwrap()
        .value;
        assert_eq!(
            r.description.as_deref(),
            Some("OpenWrt Attitude Adjustment r31568")
        );
        assert_eq!((r.arch, r.taints), (None, None));
    }

    #[test]
    fn nothing_usable_is_an_error() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert!(matches!(
            parse("# only a comment\n"),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(parse("FOO=bar\n"), Err(ParseError::Invalid(_))));
        assert!(
            matches!(parse("DISTRIB_ID='x\n"), Err(ParseError::Invalid(m)) if m.contains("unclosed"))
        );
    }

    #[test]
    fn read_fixture_and_missing_file() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/etc");
        assert_eq!(
            read(&dir.join("openwrt_release"))
                .unwrap()
                .value
                .arch
                .as_deref(),
            Some("mipsel_24kc")
        );
        assert!(matches!(read(&dir.join("nope")), Err(SourceError::Read(_))));
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s);
        }

        #[test]
        fn assignment_like_text_never_panics(s in "(DISTRIB_[A-Z]{0,8}=['\"\\\\ a-z%#$]{0,20}\n){0,6}") {
            let _ = parse(&s);
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..260) {
            let text = own_fixture("etc/openwrt_release");
            if let Some(prefix) = text.get(..cut.min(text.len())) {
                let _ = parse(prefix);
            }
        }
    }
}
