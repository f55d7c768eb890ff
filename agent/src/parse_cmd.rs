//! `routerstats-agent parse <kind> <file>`: runs one parser on a file and renders JSON.
//!
//! This is the troubleshooting tool for a router whose output looks odd: it shows exactly what
//! the agent would make of a captured file, including every line it skipped and why.

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use crate::sources::{self, ParseError, Parsed};
use crate::uci;

/// The parser kinds, with a one-line description each (shown in `--help`).
pub const KINDS: &[(&str, &str)] = &[
    ("iw-dev", "output of `iw dev`"),
    ("station-dump", "output of `iw dev <if> station dump` (or `station get`)"),
    ("leases", "a dnsmasq lease file (dhcp.leases)"),
    ("wg-dump", "output of `wg show all dump`, `wg show <if> dump` (named by the file name) or `wg show`"),
    ("openvpn", "an OpenVPN status file (v1, v2, v3 or client STATISTICS)"),
    ("net-dev", "/proc/net/dev"),
    ("meminfo", "/proc/meminfo"),
    ("stat", "/proc/stat"),
    ("loadavg", "/proc/loadavg"),
    ("uptime", "/proc/uptime"),
    ("board", "/etc/board.json"),
    ("openwrt-release", "/etc/openwrt_release"),
    ("uci-network", "/etc/config/network (WireGuard peer descriptions)"),
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

fn render<T: Serialize>(kind: &str, res: Result<Parsed<T>, ParseError>, file: &str) -> Result<Value, ParseCmdError> {
    let parsed = res.map_err(|err| ParseCmdError::Parse { file: file.to_string(), err })?;
    Ok(json!({
        "kind": kind,
        "value": serde_json::to_value(&parsed.value).unwrap_or(Value::Null),
        "skipped": parsed.skipped.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    }))
}

/// Parses `text` (read from `file`) as `kind`.
pub fn parse_text(kind: &str, text: &str, file: &str) -> Result<Value, ParseCmdError> {
    let stem = Path::new(file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match kind {
        "iw-dev" => render(kind, sources::iw_dev::parse(text), file),
        "station-dump" => render(kind, sources::station_dump::parse(text, ""), file),
        "leases" => render(kind, sources::dhcp_leases::parse(text), file),
        // A per-interface dump does not name its interface: the file name does (`wg0.txt`).
        "wg-dump" => render(kind, sources::wireguard::parse(text, stdin_or(&stem)), file),
        "openvpn" => render(kind, sources::openvpn::parse(text, &stem), file),
        "net-dev" => render(kind, sources::net_dev::parse(text), file),
        "meminfo" => render(kind, sources::meminfo::parse(text), file),
        "stat" => render(kind, sources::proc_stat::parse(text), file),
        "loadavg" => render(kind, sources::loadavg::parse(text), file),
        "uptime" => render(kind, sources::uptime::parse(text), file),
        "board" => render(kind, sources::board::parse(text), file),
        "openwrt-release" => render(kind, sources::openwrt_release::parse(text), file),
        "uci-network" => render(kind, sources::uci_network::parse(text), file),
        "uci" => render(kind, uci::parse(text), file),
        "df" => render(kind, sources::disk::parse_df(text), file),
        other => Err(ParseCmdError::UnknownKind(other.to_string())),
    }
}

/// `stem`, or `(stdin)` for input read from standard input (`-`).
fn stdin_or(stem: &str) -> &str {
    if stem.is_empty() || stem == "-" { "(stdin)" } else { stem }
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
        assert!(matches!(parse_text("nope", "", "x"), Err(ParseCmdError::UnknownKind(_))));
    }

    #[test]
    fn skipped_lines_are_shown() {
        let v = parse_text("uci", "config a 'b'\nbogus line\n", "f").unwrap();
        assert_eq!(v["kind"], "uci");
        assert_eq!(v["skipped"][0], "line 2: not a config/option/list line");
    }

    #[test]
    fn per_interface_wg_dump_is_named_by_the_file() {
        let text = "PRIV=\tPUB=\t51820\toff\nPEER=\t(none)\t(none)\t10.0.0.2/32\t0\t0\t0\toff\n";
        let v = parse_text("wg-dump", text, "/tmp/wg7.txt").unwrap();
        assert_eq!(v["value"][0]["name"], "wg7");
        assert_eq!(v["value"][0]["public_key"], "PUB=");
        assert_eq!(v["value"][0]["peers"][0]["public_key"], "PEER=");
        assert!(!v.to_string().contains("PRIV="));
        let v = parse_text("wg-dump", text, "-").unwrap();
        assert_eq!(v["value"][0]["name"], "(stdin)");
    }
}
