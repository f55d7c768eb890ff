//! WireGuard peer names from /etc/config/network (UCI syntax).
//!
//! Peers are `config wireguard_<iface> ['name']` sections; the map goes from each peer's
//! `public_key` to its `description`, or to the section name when a named section has no
//! description. Every other section and option is ignored, and the interface sections'
//! `private_key` / peers' `preshared_key` options are never kept nor quoted: skip reasons never
//! carry line content.

use std::collections::HashMap;
use std::path::Path;

use routerstats_shared::WgInterface;

use super::{read_text, ParseError, Parsed, SourceError};

/// Public key -> peer description, from UCI network config text.
pub fn parse(text: &str) -> Result<Parsed<HashMap<String, String>>, ParseError> {
    let mut out = Parsed::new(HashMap::new());
    let mut sections = 0usize;
    let mut current: Option<PeerSection> = None;
    for (idx, line) in text.lines().enumerate() {
        let n = idx + 1;
        let tokens = match tokenize(line) {
            Ok(t) => t,
            Err(reason) => {
                out.skip(n, reason);
                continue;
            }
        };
        let words: Vec<&str> = tokens.iter().map(String::as_str).collect();
        match words.as_slice() {
            [] | ["package", ..] | ["list", ..] => {}
            ["config", rest @ ..] => {
                finish_section(&mut out, current.take());
                let Some(ty) = rest.first() else {
                    out.skip(n, "config line without a section type");
                    continue;
                };
                sections += 1;
                if ty.starts_with("wireguard_") {
                    current = Some(PeerSection {
                        line: n,
                        name: rest.get(1).filter(|s| !s.is_empty()).map(|s| s.to_string()),
                        public_key: None,
                        description: None,
                    });
                }
            }
            ["option", rest @ ..] => match rest {
                [opt, value, ..] => {
                    if let Some(sec) = current.as_mut() {
                        match *opt {
                            "public_key" => sec.public_key = Some(value.to_string()),
                            "description" => sec.description = Some(value.to_string()),
                            _ => {}
                        }
                    }
                }
                _ => out.skip(n, "option line without name and value"),
            },
            _ => out.skip(n, "unrecognised line"),
        }
    }
    finish_section(&mut out, current.take());
    if sections > 0 {
        Ok(out)
    } else if text.trim().is_empty() {
        Err(ParseError::Empty)
    } else {
        Err(ParseError::Invalid(
            "no UCI config section found".to_string(),
        ))
    }
}

/// Reads and parses a UCI network config file (normally /etc/config/network).
pub fn read(path: &Path) -> Result<Parsed<HashMap<String, String>>, SourceError> {
    let text = read_text(path)?;
    Ok(parse(&text)?)
}

/// Sets each peer's name from `names` (keyed by public key); peers not in it keep theirs.
pub fn apply_names(ifaces: &mut [WgInterface], names: &HashMap<String, String>) {
    for peer in ifaces.iter_mut().flat_map(|i| i.peers.iter_mut()) {
        if let Some(name) = names.get(&peer.public_key) {
            peer.name = Some(name.clone());
        }
    }
}

/// A `wireguard_*` section being read.
struct PeerSection {
    /// Line of its `config` statement.
    line: usize,
    name: Option<String>,
    public_key: Option<String>,
    description: Option<String>,
}

fn finish_section(out: &mut Parsed<HashMap<String, String>>, section: Option<PeerSection>) {
    let Some(sec) = section else { return };
    let Some(key) = sec.public_key.filter(|k| !k.is_empty()) else {
        out.skip(sec.line, "wireguard peer section without public_key");
        return;
    };
    let Some(name) = sec
        .description
        .filter(|d| !d.trim().is_empty())
        .or(sec.name)
    else {
        return;
    };
    match out.value.entry(key) {
        std::collections::hash_map::Entry::Occupied(_) => out.skipped.push(super::Skipped {
            line: sec.line,
            reason: "duplicate wireguard peer public_key, first name kept".to_string(),
            unused: false,
        }),
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(name);
        }
    }
}

/// Splits a UCI line into words: unquoted words (with `\` escapes), `'single'` (literal) and
/// `"double"` (with `\` escapes) quoted parts, adjacent parts joined into one word (`'it'\''s'`).
/// A `#` at the start of a word starts a comment.
fn tokenize(line: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(out),
            Some(_) => {}
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            match c {
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated quote"),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch) => word.push(ch),
                            None => return Err("unterminated quote"),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated quote"),
                    }
                },
                '\\' => {
                    if let Some(ch) = chars.next() {
                        word.push(ch);
                    }
                }
                _ => word.push(c),
            }
        }
        out.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::own_fixture;
    use proptest::prelude::*;
    use routerstats_shared::WgPeer;

    const WG0_PRIVATE: &str = "Jix1X509DCn78TbyH7LXzvSyL7u32dy0iEiLG5ld9qk=";
    const WG1_PRIVATE: &str = "jGgsvcTole2hki4VohMCQFg7VQ6FIk2wwbXWLk0oogg=";
    const ALICE_PSK: &str = "pJ5h+BKjhsSRB0sqDKXL4Wfxwj9zagk682SrSouiZY4=";

    fn name_of<'a>(p: &'a Parsed<HashMap<String, String>>, key_prefix: &str) -> Option<&'a str> {
        p.value
            .iter()
            .find(|(k, _)| k.starts_with(key_prefix))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn own_fixture_maps_keys_to_descriptions() {
        let p = parse(&own_fixture("uci/network")).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.value.len(), 5);
        assert_eq!(name_of(&p, "osLn"), Some("Alice laptop"));
        assert_eq!(name_of(&p, "oU28"), Some("Bob's phone"));
        // Named section without description: the section name.
        assert_eq!(name_of(&p, "zgLK"), Some("carol"));
        // Trailing comment after the quoted value is not part of it.
        assert_eq!(name_of(&p, "BlEJ"), Some("Office Zagreb (site-to-site)"));
        assert_eq!(name_of(&p, "a3Yw"), Some("Mullvad se-sto-wg-001"));
        // Anonymous section without description: no name.
        assert_eq!(name_of(&p, "GnK+"), None);
    }

    #[test]
    fn secrets_in_the_config_are_not_kept() {
        let text = own_fixture("uci/network");
        let p = parse(&text).unwrap();
        let rendered = format!("{p:?}{}", serde_json::to_string(&p).unwrap());
        for secret in [WG0_PRIVATE, WG1_PRIVATE, ALICE_PSK] {
            assert!(text.contains(secret));
            assert!(!rendered.contains(secret));
        }
        // Not even from broken lines.
        let broken =
            format!("config interface 'wg0'\n\toption private_key '{WG0_PRIVATE}\n{WG1_PRIVATE}\n");
        let p = parse(&broken).unwrap();
        assert_eq!(p.skipped.len(), 2);
        let rendered = format!("{p:?}{:?}", p.state());
        assert!(!rendered.contains(&WG0_PRIVATE[..12]) && !rendered.contains(WG1_PRIVATE));
    }

    #[test]
    fn quoting_styles() {
        let tokens = tokenize(r#"  option description 'it'\''s "fine"' # comment"#).unwrap();
        assert_eq!(tokens, ["option", "description", r#"it's "fine""#]);
        assert_eq!(
            tokenize(r#"option x "a \"b\" c""#).unwrap(),
            ["option", "x", r#"a "b" c"#]
        );
        assert_eq!(
            tokenize("option x plain\\ word").unwrap(),
            ["option", "x", "plain word"]
        );
        assert_eq!(tokenize("# only a comment").unwrap(), Vec::<String>::new());
        assert_eq!(tokenize("option x ''").unwrap(), ["option", "x", ""]);
        assert!(tokenize("option x 'open").is_err());
        assert!(tokenize("option x \"open\\").is_err());
    }

    #[test]
    fn sections_edge_cases() {
        let text = "package network\n\
                    config wireguard_wg0\n\toption description 'no key'\n\
                    config wireguard_wg0\n\toption public_key 'K1='\n\toption description 'first'\n\
                    config wireguard_wg0\n\toption public_key 'K1='\n\toption description 'second'\n\
                    config wireguard_wg1\n\toption public_key K2=\n\toption description \"\"\n\
                    config\n\
                    option\n\
                    bogus line\n";
        let p = parse(text).unwrap();
        assert_eq!(p.value.get("K1=").map(String::as_str), Some("first"));
        assert!(
            !p.value.contains_key("K2="),
            "empty description and anonymous section: no name"
        );
        let reasons: Vec<_> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "line 2: wireguard peer section without public_key",
                "line 7: duplicate wireguard peer public_key, first name kept",
                "line 13: config line without a section type",
                "line 14: option line without name and value",
                "line 15: unrecognised line",
            ]
        );
    }

    #[test]
    fn options_outside_wireguard_sections_are_ignored() {
        let p =
            parse("config interface 'wg0'\n\toption public_key 'X='\n\toption description 'wan'\n")
                .unwrap();
        assert!(p.value.is_empty());
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn empty_and_sectionless_input_are_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(
            parse("\n# nothing\n"),
            Err(ParseError::Invalid("no UCI config section found".into()))
        );
        assert!(matches!(parse("option a b\n"), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn names_are_applied_by_public_key() {
        let mut ifaces = vec![WgInterface {
            name: "wg0".into(),
            peers: vec![
                WgPeer {
                    public_key: "A=".into(),
                    ..Default::default()
                },
                WgPeer {
                    public_key: "B=".into(),
                    name: Some("kept".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }];
        let names = HashMap::from([("A=".to_string(), "Alice".to_string())]);
        apply_names(&mut ifaces, &names);
        let peers = &ifaces.first().unwrap().peers;
        assert_eq!(peers.first().unwrap().name.as_deref(), Some("Alice"));
        assert_eq!(peers.get(1).unwrap().name.as_deref(), Some("kept"));
    }

    #[test]
    fn own_fixtures_together_name_the_dump_peers() {
        let mut ifaces =
            crate::sources::wireguard::parse(&own_fixture("wg/wg-show-all-dump.txt"), "wg0")
                .unwrap()
                .value;
        let names = parse(&own_fixture("uci/network")).unwrap().value;
        apply_names(&mut ifaces, &names);
        let named: Vec<Option<&str>> = ifaces
            .iter()
            .flat_map(|i| &i.peers)
            .map(|p| p.name.as_deref())
            .collect();
        assert_eq!(
            named,
            [
                Some("Alice laptop"),
                Some("Bob's phone"),
                Some("carol"),
                Some("Office Zagreb (site-to-site)"),
                Some("Mullvad se-sto-wg-001"),
                None
            ]
        );
    }

    #[test]
    fn read_missing_file_is_a_read_error() {
        let err = read(Path::new("/nonexistent/routerstats/network")).unwrap_err();
        assert!(matches!(err, SourceError::Read(_)), "{err:?}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("network");
        std::fs::write(&path, own_fixture("uci/network")).unwrap();
        assert_eq!(read(&path).unwrap().value.len(), 5);
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn uci_like_text_never_panics(s in "(([ \t]*(config|option|list|package|#)[ \t]+('[^'\n]{0,8}'?|\"[^\"\n]{0,8}\"?|[a-z_\\\\]{0,8})[ \t]*){0,4}\n){0,12}") {
            let _ = parse(&s);
        }

        #[test]
        fn truncated_fixture_never_panics_nor_leaks(cut in 0usize..4096) {
            let text = own_fixture("uci/network");
            let mut cut = cut.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Ok(p) = parse(&text[..cut]) {
                let rendered = format!("{p:?}");
                prop_assert!(!rendered.contains(&WG0_PRIVATE[..12]));
                prop_assert!(!rendered.contains(&ALICE_PSK[..12]));
            }
        }
    }
}
