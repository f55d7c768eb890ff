//! `routerstats-agent parse <kind> <file>`: runs one parser on a file and renders JSON.
//!
//! This is the troubleshooting tool for a router whose output looks odd: it shows exactly what
//! the agent would make of a captured file, including every line it skipped and why.

use std::path::Path;

use serde::Serialize;

use crate::json::{self, Value};
use crate::sources::{self, ParseError, Parsed};
use crate::uci;

/// The parser kinds, with a one-line description each (shown in `--help`).
pub const KINDS: &[(&str, &str)] = &[
    ("iw-dev", "output of `iw dev`"),
    (
        "station-dump",
        "output of `iw dev <if> station dump` (or `station get`)",
    ),
    ("leases", "a dnsmasq lease file (dhcp.leases)"),
    (
        "wg-dump",
        "output of `wg show all dump`, `wg show <if> dump` (named by the file name) or `wg show`",
    ),
    (
        "openvpn",
        "an OpenVPN status file (v1, v2, v3 or client STATISTICS)",
    ),
    ("net-dev", "/proc/net/dev"),
    ("meminfo", "/proc/meminfo"),
    ("stat", "/proc/stat"),
    ("loadavg", "/proc/loadavg"),
    ("uptime", "/proc/uptime"),
    ("board", "/etc/board.json"),
    ("openwrt-release", "/etc/openwrt_release"),
    (
        "uci-network",
        "/etc/config/network (WireGuard peer descriptions)",
    ),
    ("uci", "any UCI config file"),
    ("df", "output of `df -k`"),
];

/// Why `parse` failed.
#[derive(Debug, thiserror::Error)]
pub enum ParseCmdError {
    #[error("unknown kind {0:?}; run `routerstats-agent parse --help` for the list")]
    UnknownKind(String),
    #[error("nothing usable in {file}: {err}")]
    Parse { file: String, err: ParseError },
}

/// How `parse` turns a parser's value and skipped lines into its output: [`JsonOutput`] in the
/// binary (the tests also render with serde_json, the way `parse` did before, to compare).
trait Render {
    type Out;
    fn render<T: Serialize>(&self, kind: &str, value: &T, skipped: Vec<String>) -> Self::Out;
}

/// `{"kind": ..., "skipped": [...], "value": ...}` (keys sorted, as serde_json's `Value` sorts
/// them); a value that cannot be rendered is `null`.
struct JsonOutput;

impl Render for JsonOutput {
    type Out = Value;
    fn render<T: Serialize>(&self, kind: &str, value: &T, skipped: Vec<String>) -> Value {
        Value::Object(vec![
            ("kind".to_string(), Value::String(kind.to_string())),
            (
                "skipped".to_string(),
                Value::Array(skipped.into_iter().map(Value::String).collect()),
            ),
            (
                "value".to_string(),
                json::to_value(value).unwrap_or(Value::Null),
            ),
        ])
    }
}

fn render<R: Render, T: Serialize>(
    r: &R,
    kind: &str,
    res: Result<Parsed<T>, ParseError>,
    file: &str,
) -> Result<R::Out, ParseCmdError> {
    let parsed = res.map_err(|err| ParseCmdError::Parse {
        file: file.to_string(),
        err,
    })?;
    let skipped = parsed.skipped.iter().map(|s| s.to_string()).collect();
    Ok(r.render(kind, &parsed.value, skipped))
}

/// Parses `text` (read from `file`) as `kind`; print the result with [`json::to_string_pretty`].
pub fn parse_text(kind: &str, text: &str, file: &str) -> Result<Value, ParseCmdError> {
    parse_with(&JsonOutput, kind, text, file)
}

fn parse_with<R: Render>(
    r: &R,
    kind: &str,
    text: &str,
    file: &str,
) -> Result<R::Out, ParseCmdError> {
    let stem = Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match kind {
        "iw-dev" => render(r, kind, sources::iw_dev::parse(text), file),
        "station-dump" => render(r, kind, sources::station_dump::parse(text, ""), file),
        "leases" => render(r, kind, sources::dhcp_leases::parse(text), file),
        // A per-interface dump does not name its interface: the file name does (`wg0.txt`).
        "wg-dump" => render(
            r,
            kind,
            sources::wireguard::parse(text, stdin_or(&stem)),
            file,
        ),
        "openvpn" => render(r, kind, sources::openvpn::parse(text, &stem), file),
        "net-dev" => render(r, kind, sources::net_dev::parse(text), file),
        "meminfo" => render(r, kind, sources::meminfo::parse(text), file),
        "stat" => render(r, kind, sources::proc_stat::parse(text), file),
        "loadavg" => render(r, kind, sources::loadavg::parse(text), file),
        "uptime" => render(r, kind, sources::uptime::parse(text), file),
        "board" => render(r, kind, sources::board::parse(text), file),
        "openwrt-release" => render(r, kind, sources::openwrt_release::parse(text), file),
        "uci-network" => render(r, kind, sources::uci_network::parse(text), file),
        "uci" => render(r, kind, uci::parse(text), file),
        "df" => render(r, kind, sources::disk::parse_df(text), file),
        other => Err(ParseCmdError::UnknownKind(other.to_string())),
    }
}

/// `stem`, or `(stdin)` for input read from standard input (`-`).
fn stdin_or(stem: &str) -> &str {
    if stem.is_empty() || stem == "-" {
        "(stdin)"
    } else {
        stem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_dispatched() {
        for (kind, _) in KINDS {
            // Empty input: every parser answers (an error or an empty value), none is unknown.
            let res = parse_text(kind, "", "x");
            assert!(!matches!(res, Err(ParseCmdError::UnknownKind(_))), "{kind}");
        }
        assert!(matches!(
            parse_text("nope", "", "x"),
            Err(ParseCmdError::UnknownKind(_))
        ));
    }

    /// The output as serde_json reads it back, for indexing in assertions.
    fn parsed(kind: &str, text: &str, file: &str) -> serde_json::Value {
        let v = parse_text(kind, text, file).unwrap();
        serde_json::from_str(&json::to_string_pretty(&v)).unwrap()
    }

    /// What `parse` printed when it rendered with serde_json.
    struct SerdeJsonOutput;

    impl Render for SerdeJsonOutput {
        type Out = String;
        fn render<T: Serialize>(&self, kind: &str, value: &T, skipped: Vec<String>) -> String {
            serde_json::to_string_pretty(&serde_json::json!({
                "kind": kind,
                "value": serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
                "skipped": skipped,
            }))
            .unwrap()
        }
    }

    /// Every kind on every fixture (shared and the agent's own) and on a few broken inputs prints
    /// byte-for-byte what serde_json printed, or fails with the same error.
    #[test]
    fn output_is_what_serde_json_printed_on_every_fixture() {
        let mut inputs: Vec<(String, String)> = Vec::new();
        for dir in ["iw", "dhcp", "openvpn", "proc", "wg"] {
            inputs.extend(crate::testutil::shared_fixtures_in(dir));
        }
        for dir in ["etc", "iw", "dhcp", "openvpn", "proc", "wg", "uci"] {
            let d = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(dir);
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                inputs.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
        for bad in [
            "",
            "\0\u{1}\t\n",
            "{\"model\": {\"id\": \"\\u00e9\\n\"}, \"network\": 5}",
            "x\ty\tz\n\"é\"\n",
        ] {
            inputs.push(("bad".to_string(), bad.to_string()));
        }
        let mut compared = 0;
        for (file, text) in &inputs {
            for (kind, _) in KINDS {
                let ours =
                    parse_with(&JsonOutput, kind, text, file).map(|v| json::to_string_pretty(&v));
                let theirs = parse_with(&SerdeJsonOutput, kind, text, file);
                match (ours, theirs) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a, b, "{kind} on {file}");
                        compared += 1;
                    }
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    (a, b) => panic!("{kind} on {file}: {a:?} vs {b:?}"),
                }
            }
        }
        assert!(compared > 100, "{compared}");
    }

    #[test]
    fn skipped_lines_are_shown() {
        let v = parsed("uci", "config a 'b'\nbogus line\n", "f");
        assert_eq!(v["kind"], "uci");
        assert_eq!(v["skipped"][0], "line 2: not a config/option/list line");
    }

    #[test]
    fn per_interface_wg_dump_is_named_by_the_file() {
        let text = "PRIV=\tPUB=\t51820\toff\nPEER=\t(none)\t(none)\t10.0.0.2/32\t0\t0\t0\toff\n";
        let v = parsed("wg-dump", text, "/tmp/wg7.txt");
        assert_eq!(v["value"][0]["name"], "wg7");
        assert_eq!(v["value"][0]["public_key"], "PUB=");
        assert_eq!(v["value"][0]["peers"][0]["public_key"], "PEER=");
        assert!(!v.to_string().contains("PRIV="));
        let v = parsed("wg-dump", text, "-");
        assert_eq!(v["value"][0]["name"], "(stdin)");
    }
}
