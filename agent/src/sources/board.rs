//! `/etc/board.json`: the board's model id and name, and which devices make up its default
//! `lan` and `wan` networks.
//!
//! A network role names its devices in one of three ways, depending on the release:
//! `"ifname": "eth0.1"` (a string that may list several space-separated names, up to 19.07/21.02),
//! `"device": "wan"` (22.03 and later), or `"ports": ["lan1", "lan2"]` (DSA boards, 22.03 and
//! later). They are merged, `ports` first, then `device`, then `ifname`, without repeats. The swconfig
//! `switch` section and everything else in the file are ignored.

use std::path::Path;

use crate::json::{self, Value};

use super::{read_text, ParseError, Parsed, SourceError};

/// What the agent takes from board.json.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct BoardInfo {
    /// `model.id`, e.g. `tplink,archer-c5-v4`.
    pub model_id: Option<String>,
    /// `model.name`, e.g. `TP-Link Archer C5 v4`.
    pub model_name: Option<String>,
    /// Network role (`lan`, `wan`, ...) and its device names, in role-name order.
    pub network: Vec<(String, Vec<String>)>,
}

/// Parses the text of `/etc/board.json`. Invalid JSON is [`ParseError::Invalid`] carrying the
/// reader's message and position; a document with neither a model nor a usable network is also
/// invalid. A repeated key counts once, with its last value; roles are taken in name order.
pub fn parse(text: &str) -> Result<Parsed<BoardInfo>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let root = json::parse(text).map_err(|e| ParseError::Invalid(e.to_string()))?;
    if !matches!(root, Value::Object(_)) {
        return Err(ParseError::Invalid(
            "board.json is not a JSON object".to_string(),
        ));
    }
    let mut out = Parsed::new(BoardInfo::default());
    match root.get("model") {
        None => {}
        Some(model @ Value::Object(_)) => {
            out.value.model_id = string_field(model, "model.id", "id", &mut out.skipped);
            out.value.model_name = string_field(model, "model.name", "name", &mut out.skipped);
        }
        Some(_) => out.skip(0, "model is not an object"),
    }
    match root.get("network") {
        None => {}
        Some(network @ Value::Object(_)) => {
            for (role, section) in network.sorted_members() {
                if let Some(names) = devices(role, section, &mut out.skipped) {
                    out.value.network.push((role.to_string(), names));
                }
            }
        }
        Some(_) => out.skip(0, "network is not an object"),
    }
    let b = &out.value;
    if b.model_id.is_none() && b.model_name.is_none() && b.network.is_empty() {
        return Err(out.nothing_usable("no model or network in board.json"));
    }
    Ok(out)
}

/// A string member of `obj`; anything else is noted and dropped.
fn string_field(
    obj: &Value,
    what: &str,
    key: &str,
    skipped: &mut Vec<super::Skipped>,
) -> Option<String> {
    match obj.get(key) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            skipped.push(super::Skipped {
                line: 0,
                reason: format!("{what} is not a string"),
                unused: false,
            });
            None
        }
    }
}

/// The device names of one network role, or None (noted) when it names none.
fn devices(role: &str, section: &Value, skipped: &mut Vec<super::Skipped>) -> Option<Vec<String>> {
    let mut note = |reason: String| {
        skipped.push(super::Skipped {
            line: 0,
            reason,
            unused: false,
        })
    };
    if !matches!(section, Value::Object(_)) {
        note(format!("network.{role} is not an object"));
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    match section.get("ports") {
        None => {}
        Some(Value::Array(ports)) => {
            for port in ports {
                match port {
                    Value::String(p) => add(p.trim()),
                    _ => note(format!("network.{role}.ports has a non-string entry")),
                }
            }
        }
        Some(_) => note(format!("network.{role}.ports is not an array")),
    }
    for key in ["device", "ifname"] {
        match section.get(key) {
            None => {}
            Some(Value::String(s)) => s.split_whitespace().for_each(&mut add),
            Some(_) => note(format!("network.{role}.{key} is not a string")),
        }
    }
    if names.is_empty() {
        note(format!("network.{role} names no device"));
        return None;
    }
    Some(names)
}

/// Reads and parses a board.json file (the caller joins the configured /etc root).
pub fn read(path: &Path) -> Result<Parsed<BoardInfo>, SourceError> {
    Ok(parse(&read_text(path)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{own_fixture, shared_fixture};
    use proptest::prelude::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn own_fixture_dsa_ports_and_device() {
        let p = parse(&own_fixture("etc/board.json")).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(
            p.value,
            BoardInfo {
                model_id: Some("dlink,dir-878-a1".into()),
                model_name: Some("D-Link DIR-878 A1".into()),
                network: vec![
                    ("lan".into(), strings(&["lan1", "lan2", "lan3", "lan4"])),
                    ("wan".into(), strings(&["wan"])),
                ],
            }
        );
    }

    #[test]
    fn space_separated_ifname_of_old_releases() {
        let text = r#"{"model":{"id":"x,y","name":"Y"},"network":{"lan":{"ifname":"eth0.1  eth0.3 ","protocol":"static"}}}"#;
        let b = parse(text).unwrap().value;
        assert_eq!(
            b.network,
            vec![("lan".to_string(), strings(&["eth0.1", "eth0.3"]))]
        );
    }

    #[test]
    fn sources_merge_without_repeats() {
        let text =
            r#"{"network":{"lan":{"ports":["lan1","lan2"],"device":"lan2","ifname":"lan1 eth9"}}}"#;
        let p = parse(text).unwrap();
        assert_eq!(
            p.value.network,
            vec![("lan".to_string(), strings(&["lan1", "lan2", "eth9"]))]
        );
        assert_eq!(p.value.model_id, None);
    }

    #[test]
    fn switch_section_is_ignored() {
        let b = parse(&shared_fixture(
            "proc/board-json-archer-c5v4-swconfig-2switches-leds.txt",
        ))
        .unwrap();
        assert!(b.skipped.is_empty(), "{:?}", b.skipped);
        // The switch ports (`"device": "eth0"`, roles with "eth0.1") do not leak into network.
        let all: Vec<&String> = b.value.network.iter().flat_map(|(_, d)| d).collect();
        assert_eq!(all, ["eth0.1", "eth0.2"]);
    }

    #[test]
    fn odd_members_are_noted_and_the_rest_kept() {
        let text = r#"{"model":{"id":5,"name":"N"},"network":{"lan":{"ports":["lan1",7]},"wan":"eth1",
                       "wan6":{"protocol":"dhcpv6"},"guest":{"device":["x"]}}}"#;
        let p = parse(text).unwrap();
        assert_eq!(p.value.model_id, None);
        assert_eq!(p.value.model_name.as_deref(), Some("N"));
        assert_eq!(
            p.value.network,
            vec![("lan".to_string(), strings(&["lan1"]))]
        );
        let reasons: Vec<&str> = p.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "model.id is not a string",
                "network.guest.device is not a string",
                "network.guest names no device",
                "network.lan.ports has a non-string entry",
                "network.wan is not an object",
                "network.wan6 names no device",
            ]
        );
    }

    #[test]
    fn invalid_json_carries_the_readers_message() {
        let err = parse("{\n\t\"model\": {\n\t\t\"id\": \"a\",\n").unwrap_err();
        match err {
            ParseError::Invalid(m) => assert!(m.contains("EOF") && m.contains("line 4"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("{\"a\":1} trailing"),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn unusable_documents_are_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse(" \n"), Err(ParseError::Empty));
        assert!(
            matches!(parse("[1,2]"), Err(ParseError::Invalid(m)) if m.contains("not a JSON object"))
        );
        assert!(matches!(parse("{}"), Err(ParseError::Invalid(_))));
        assert!(
            matches!(parse(r#"{"led":{},"network":{"lan":{}}}"#), Err(ParseError::Invalid(m)) if m.contains("names no device"))
        );
        assert!(matches!(
            parse(r#"{"model":"x","network":[]}"#),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(parse(&deep), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn read_fixture_and_missing_file() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/etc");
        assert_eq!(
            read(&dir.join("board.json"))
                .unwrap()
                .value
                .model_name
                .as_deref(),
            Some("D-Link DIR-878 A1")
        );
        assert!(matches!(read(&dir.join("nope")), Err(SourceError::Read(_))));
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s);
        }

        #[test]
        fn jsonish_text_never_panics(s in r#"[{}\[\]":, a-z0-9]{0,200}"#) {
            let _ = parse(&s);
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..1400) {
            for text in [own_fixture("etc/board.json"),
                         shared_fixture("proc/board-json-archer-c5v4-swconfig-2switches-leds.txt")] {
                if let Some(prefix) = text.get(..cut.min(text.len())) {
                    // Only the whole document is valid JSON.
                    prop_assert_eq!(parse(prefix).is_ok(), prefix.trim_end() == text.trim_end());
                }
            }
        }
    }
}
