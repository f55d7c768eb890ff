//! WireGuard interfaces and peers, from `wg show all dump` (tab-separated, the format the agent
//! runs), from the per-interface `wg show <interface> dump` (the same columns without the
//! interface name), or from the human `wg show` output (all three detected automatically).
//!
//! Secrets are dropped at parse time: the private key field of an interface line (and the
//! `private key:` line of `wg show`) is never bound to anything, and a preshared key is reduced
//! to [`WgPeer::has_preshared_key`]. Skip reasons never quote line content, so even a malformed
//! interface line cannot echo its private key.

use std::net::SocketAddr;

use routerstats_shared::{IpNet, WgInterface, WgPeer};

use super::{run_command, ParseError, Parsed, SourceError};

/// A handshake computed from `wg show`'s relative time that lands before this Unix time
/// (2015-01-01, before WireGuard existed) is treated as bogus: some userspace implementations
/// report "never" as a handshake at the epoch, which `wg show` prints as "55 years, ... ago".
const PLAUSIBLE_HANDSHAKE_AFTER: u64 = 1_420_070_400;

/// Parses `wg show all dump`, `wg show <interface> dump` or `wg show` output, detecting which
/// one it is. For the human format, relative handshake times are resolved against the current
/// system time. A per-interface dump does not name its interface: `interface` names it.
pub fn parse(text: &str, interface: &str) -> Result<Parsed<Vec<WgInterface>>, ParseError> {
    if is_show_format(text) {
        parse_show(text, u64::try_from(crate::clock::unix_now()).unwrap_or(0))
    } else if is_interface_dump(text) {
        parse_interface_dump(text, interface)
    } else {
        parse_dump(text)
    }
}

/// Whether `text` is a per-interface `wg show <interface> dump`: its first line is the
/// interface line of 4 fields (private key, public key, listen port, fwmark). wg always prints
/// that line first. No line of `wg show all dump` can pass for it, not even a cut-off one: the
/// third field of such a line is a key, a preshared key or `(none)`, never a port number.
pub fn is_interface_dump(text: &str) -> bool {
    let Some(first) = text.lines().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    matches!(
        first.split_whitespace().collect::<Vec<_>>().as_slice(),
        [_, _, port, fwmark] if port.parse::<u16>().is_ok() && parse_fwmark(fwmark).is_ok()
    )
}

/// Whether `text` is the human `wg show` format (it has `interface:` or `peer:` lines, which a
/// dump cannot have: interface names never contain `:`).
pub fn is_show_format(text: &str) -> bool {
    text.lines().any(|l| {
        let l = strip_ansi(l);
        let t = l.trim_start();
        t.starts_with("interface:") || t.starts_with("peer:")
    })
}

/// Runs `<wg> show all dump` and parses it. No WireGuard interface at all (empty output) is an
/// empty list, not an error.
pub fn read(wg: &str) -> Result<Parsed<Vec<WgInterface>>, SourceError> {
    let text = run_command(wg, &["show", "all", "dump"])?;
    if text.trim().is_empty() {
        return Ok(Parsed::new(Vec::new()));
    }
    Ok(parse_dump(&text)?)
}

/// Parses `wg show all dump`: interface lines of 5 fields (name, private key, public key, listen
/// port, fwmark) and peer lines of 9 fields (name, public key, preshared key, endpoint, allowed
/// ips, latest handshake, rx, tx, persistent keepalive). Fields are split on runs of whitespace,
/// so a dump whose tabs became spaces still parses.
pub fn parse_dump(text: &str) -> Result<Parsed<Vec<WgInterface>>, ParseError> {
    parse_dump_lines(text, None)
}

/// Parses `wg show <interface> dump`: the columns of [`parse_dump`] without the leading
/// interface name (an interface line of 4 fields, peer lines of 8), all of them belonging to
/// `interface`. The first field of the interface line is the private key, dropped as in
/// [`parse_dump`].
pub fn parse_interface_dump(
    text: &str,
    interface: &str,
) -> Result<Parsed<Vec<WgInterface>>, ParseError> {
    parse_dump_lines(text, Some(interface))
}

/// The dump grammar of both forms: `interface` is the name a per-interface dump leaves out
/// (None for `wg show all dump`, whose lines start with it).
fn parse_dump_lines(
    text: &str,
    interface: Option<&str>,
) -> Result<Parsed<Vec<WgInterface>>, ParseError> {
    // Field counts of the interface and peer lines as printed in this form.
    let (iface_fields, peer_fields) = if interface.is_some() { (4, 8) } else { (5, 9) };
    let mut out = Parsed::new(Vec::new());
    for (idx, line) in text.lines().enumerate() {
        let n = idx + 1;
        let fields: Vec<&str> = interface
            .into_iter()
            .chain(line.split_whitespace())
            .collect();
        if fields.len() == usize::from(interface.is_some()) {
            continue;
        }
        match fields.as_slice() {
            [] => {}
            // The second field is the private key: matched by `_`, never bound.
            [name, _, public, port, fwmark] => {
                // A peer line cut off after its endpoint also has 5 fields, with its preshared key
                // where the public key goes; its endpoint is never a bare port, so requiring a
                // valid port (and fwmark) keeps such a line from being read as an interface.
                let (Ok(listen_port), Ok(fwmark)) = (port.parse::<u16>(), parse_fwmark(fwmark))
                else {
                    out.skip(
                        n,
                        "malformed interface line (invalid listen port or fwmark)",
                    );
                    continue;
                };
                let iface = iface_entry(&mut out.value, name);
                iface.public_key = none_if_none(public).map(str::to_string);
                iface.listen_port = Some(listen_port);
                iface.fwmark = fwmark;
            }
            [name, public, psk, endpoint, ips, handshake, rx, tx, keepalive] => {
                let mut notes = Vec::new();
                let peer = WgPeer {
                    public_key: public.to_string(),
                    name: None,
                    has_preshared_key: *psk != "(none)",
                    endpoint: match none_if_none(endpoint) {
                        None => None,
                        Some(e) => parse_endpoint(e, &mut notes),
                    },
                    allowed_ips: parse_allowed_ips(ips, &mut notes),
                    latest_handshake: match handshake.parse::<u64>() {
                        Ok(0) => None,
                        Ok(t) => Some(t),
                        Err(_) => {
                            notes.push("invalid latest handshake");
                            None
                        }
                    },
                    rx_bytes: parse_counter(rx, "invalid rx byte counter", &mut notes),
                    tx_bytes: parse_counter(tx, "invalid tx byte counter", &mut notes),
                    keepalive_s: match *keepalive {
                        "off" => None,
                        k => match k.parse::<u16>() {
                            Ok(0) => None,
                            Ok(s) => Some(s),
                            Err(_) => {
                                notes.push("invalid persistent keepalive");
                                None
                            }
                        },
                    },
                };
                for note in notes {
                    out.skip(n, note);
                }
                iface_entry(&mut out.value, name).peers.push(peer);
            }
            other if other.len() < 7 => {
                out.skip(
                    n,
                    format!("malformed interface line ({iface_fields} fields expected)"),
                );
            }
            _ => out.skip(
                n,
                format!("malformed peer line ({peer_fields} fields expected)"),
            ),
        }
    }
    finish(text, out)
}

/// Parses the human `wg show` format. `latest handshake: 1 minute, 2 seconds ago` is relative,
/// so it is resolved against `now_unix`; `transfer:` amounts are printed with two decimals in
/// B/KiB/MiB/GiB/TiB, so the byte counters are approximate.
pub fn parse_show(text: &str, now_unix: u64) -> Result<Parsed<Vec<WgInterface>>, ParseError> {
    let mut out = Parsed::new(Vec::new());
    let mut iface: Option<WgInterface> = None;
    let mut peer: Option<WgPeer> = None;
    // True after a `peer:` line that had no interface to belong to: its fields are ignored.
    let mut orphan = false;
    for (idx, raw) in text.lines().enumerate() {
        let n = idx + 1;
        let line = strip_ansi(raw);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((label, value)) = line.split_once(':') else {
            out.skip(n, "unrecognised line");
            continue;
        };
        let label = label.trim();
        let value = value.trim();
        match label {
            // Never bound, never echoed, whatever it holds ("(hidden)" or the key itself).
            "private key" => {}
            "interface" => {
                flush_peer(&mut iface, &mut peer);
                flush_iface(&mut out.value, &mut iface);
                orphan = false;
                iface = Some(WgInterface {
                    name: value.to_string(),
                    ..Default::default()
                });
            }
            "peer" => {
                flush_peer(&mut iface, &mut peer);
                if iface.is_some() {
                    orphan = false;
                    peer = Some(WgPeer {
                        public_key: value.to_string(),
                        ..Default::default()
                    });
                } else {
                    orphan = true;
                    out.skip(n, "peer before any interface line");
                }
            }
            "public key" | "listening port" | "fwmark" => {
                let Some(i) = iface.as_mut().filter(|_| peer.is_none() && !orphan) else {
                    out.skip(n, format!("{label} outside an interface section"));
                    continue;
                };
                match label {
                    "public key" => i.public_key = none_if_none(value).map(str::to_string),
                    "listening port" => match value.parse::<u16>() {
                        Ok(p) => i.listen_port = Some(p),
                        Err(_) => out.skip(n, "invalid listening port"),
                    },
                    _ => match parse_fwmark(value) {
                        Ok(m) => i.fwmark = m,
                        Err(()) => out.skip(n, "invalid fwmark"),
                    },
                }
            }
            "preshared key"
            | "endpoint"
            | "allowed ips"
            | "latest handshake"
            | "transfer"
            | "persistent keepalive" => {
                if orphan {
                    continue;
                }
                let Some(p) = peer.as_mut() else {
                    out.skip(n, format!("{label} outside a peer section"));
                    continue;
                };
                let mut notes = Vec::new();
                match label {
                    "preshared key" => p.has_preshared_key = value != "(none)",
                    "endpoint" => {
                        p.endpoint = none_if_none(value).and_then(|e| parse_endpoint(e, &mut notes))
                    }
                    "allowed ips" => p.allowed_ips = parse_allowed_ips(value, &mut notes),
                    "latest handshake" => {
                        p.latest_handshake = parse_relative_time(value, now_unix, &mut notes)
                    }
                    "transfer" => match parse_transfer(value) {
                        Some((rx, tx)) => {
                            p.rx_bytes = rx;
                            p.tx_bytes = tx;
                        }
                        None => notes.push("invalid transfer line"),
                    },
                    _ => match parse_keepalive(value) {
                        Ok(k) => p.keepalive_s = k,
                        Err(()) => notes.push("invalid persistent keepalive"),
                    },
                }
                for note in notes {
                    out.skip(n, note);
                }
            }
            other if is_safe_label(other) => out.skip(n, format!("unrecognised field {other:?}")),
            _ => out.skip(n, "unrecognised line"),
        }
    }
    flush_peer(&mut iface, &mut peer);
    flush_iface(&mut out.value, &mut iface);
    finish(text, out)
}

/// Returns the parse result, or an error when no interface at all was found.
fn finish(
    text: &str,
    out: Parsed<Vec<WgInterface>>,
) -> Result<Parsed<Vec<WgInterface>>, ParseError> {
    if !out.value.is_empty() {
        Ok(out)
    } else if text.trim().is_empty() {
        Err(ParseError::Empty)
    } else {
        Err(ParseError::Invalid(format!(
            "no WireGuard interface or peer found ({} lines skipped)",
            out.skipped.len()
        )))
    }
}

/// The interface called `name`, created (without public key) if it was not seen yet: peers
/// whose interface line is missing still belong to an interface entry.
fn iface_entry<'a>(ifaces: &'a mut Vec<WgInterface>, name: &str) -> &'a mut WgInterface {
    let pos = ifaces
        .iter()
        .position(|i| i.name == name)
        .unwrap_or_else(|| {
            ifaces.push(WgInterface {
                name: name.to_string(),
                ..Default::default()
            });
            ifaces.len() - 1
        });
    // `pos` indexes `ifaces` by construction (found in it, or the element just pushed).
    &mut ifaces[pos]
}

fn flush_peer(iface: &mut Option<WgInterface>, peer: &mut Option<WgPeer>) {
    if let (Some(i), Some(p)) = (iface.as_mut(), peer.take()) {
        i.peers.push(p);
    }
}

fn flush_iface(ifaces: &mut Vec<WgInterface>, iface: &mut Option<WgInterface>) {
    if let Some(i) = iface.take() {
        let entry = iface_entry(ifaces, &i.name);
        entry.public_key = i.public_key.or(entry.public_key.take());
        entry.listen_port = i.listen_port.or(entry.listen_port);
        entry.fwmark = i.fwmark.or(entry.fwmark);
        entry.peers.extend(i.peers);
    }
}

fn none_if_none(s: &str) -> Option<&str> {
    if s == "(none)" || s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// `off` (or 0) is no fwmark; otherwise `0x`-prefixed hex (what `wg` prints) or decimal.
fn parse_fwmark(s: &str) -> Result<Option<u32>, ()> {
    if s == "off" {
        return Ok(None);
    }
    let mark = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).map_err(|_| ())?,
        None => s.parse::<u32>().map_err(|_| ())?,
    };
    Ok((mark != 0).then_some(mark))
}

/// `ip:port` or `[v6]:port`; anything else (e.g. a redacted `mypublicip:51820`) is no endpoint.
fn parse_endpoint(s: &str, notes: &mut Vec<&'static str>) -> Option<SocketAddr> {
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            notes.push("endpoint is not ip:port, kept as none");
            None
        }
    }
}

/// Comma-separated networks (`, ` in `wg show`), or `(none)`. Bad entries are dropped.
fn parse_allowed_ips(s: &str, notes: &mut Vec<&'static str>) -> Vec<IpNet> {
    if none_if_none(s).is_none() {
        return Vec::new();
    }
    let mut nets = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<IpNet>() {
            Ok(net) => nets.push(net),
            Err(_) => notes.push("invalid allowed ip dropped"),
        }
    }
    nets
}

fn parse_counter(s: &str, note: &'static str, notes: &mut Vec<&'static str>) -> u64 {
    s.parse::<u64>().unwrap_or_else(|_| {
        notes.push(note);
        0
    })
}

/// `wg show`'s relative time: `Now`, or `1 minute, 2 seconds ago`.
fn parse_relative_time(s: &str, now: u64, notes: &mut Vec<&'static str>) -> Option<u64> {
    if s.eq_ignore_ascii_case("now") {
        return Some(now);
    }
    let Some(secs) = s.strip_suffix("ago").and_then(|d| parse_duration(d.trim())) else {
        notes.push("unreadable latest handshake");
        return None;
    };
    match now.checked_sub(secs) {
        Some(t) if t >= PLAUSIBLE_HANDSHAKE_AFTER => Some(t),
        _ => {
            notes.push("implausible latest handshake (before 2015), kept as none");
            None
        }
    }
}

/// `wg`'s pretty time: comma-separated `<n> <unit>` parts, units year/day/hour/minute/second
/// (singular or plural; a year is 365 days). None on anything else or on overflow.
fn parse_duration(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut any = false;
    for part in s.split(',') {
        let mut words = part.split_whitespace();
        let (Some(num), Some(unit), None) = (words.next(), words.next(), words.next()) else {
            return None;
        };
        let n: u64 = num.parse().ok()?;
        let mult: u64 = match unit.strip_suffix('s').unwrap_or(unit) {
            "year" => 365 * 24 * 3600,
            "day" => 24 * 3600,
            "hour" => 3600,
            "minute" => 60,
            "second" => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        any = true;
    }
    any.then_some(total)
}

/// `every 25 seconds` (or `off`).
fn parse_keepalive(s: &str) -> Result<Option<u16>, ()> {
    if s == "off" {
        return Ok(None);
    }
    let secs = s
        .strip_prefix("every")
        .and_then(|d| parse_duration(d.trim()))
        .ok_or(())?;
    match u16::try_from(secs) {
        Ok(0) => Ok(None),
        Ok(k) => Ok(Some(k)),
        Err(_) => Err(()),
    }
}

/// `1.23 MiB received, 4.56 KiB sent` -> (rx, tx) in bytes (rounded).
fn parse_transfer(s: &str) -> Option<(u64, u64)> {
    let (mut rx, mut tx) = (None, None);
    for part in s.split(',').map(str::trim) {
        if let Some(amount) = part.strip_suffix("received") {
            rx = Some(parse_bytes(amount.trim())?);
        } else if let Some(amount) = part.strip_suffix("sent") {
            tx = Some(parse_bytes(amount.trim())?);
        } else {
            return None;
        }
    }
    Some((rx?, tx?))
}

/// `948 B`, `13.88 MiB` -> bytes.
fn parse_bytes(s: &str) -> Option<u64> {
    let mut words = s.split_whitespace();
    let (Some(num), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let value = super::parse_decimal(num)?;
    let mult: f64 = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = (value * mult).round();
    // u64::MAX as f64 rounds up to 2^64, which does not fit: compare strictly below it.
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// A field label that is safe to quote in a skip reason: short, letters and spaces only.
fn is_safe_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphabetic() || c == ' ')
}

/// Removes terminal colour sequences (`ESC [ ... letter`) that `wg show` prints on a terminal.
fn strip_ansi(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{own_fixture, shared_fixtures_in};
    use proptest::prelude::*;

    const OWN_DUMP: &str = "wg/wg-show-all-dump.txt";
    /// `wg show wg0 dump` of the same router: the wg0 lines of [`OWN_DUMP`] without their name.
    const OWN_WG0_DUMP: &str = "wg/wg-show-wg0-dump.txt";
    const WG0_PRIVATE: &str = "Jix1X509DCn78TbyH7LXzvSyL7u32dy0iEiLG5ld9qk=";
    const WG1_PRIVATE: &str = "jGgsvcTole2hki4VohMCQFg7VQ6FIk2wwbXWLk0oogg=";
    const ALICE_PSK: &str = "pJ5h+BKjhsSRB0sqDKXL4Wfxwj9zagk682SrSouiZY4=";
    /// 2024-11-22T22:00:00Z, the "now" of the own `wg show` fixture.
    const NOW: u64 = 1_732_312_800;

    fn peer<'a>(ifaces: &'a [WgInterface], key_prefix: &str) -> &'a WgPeer {
        ifaces
            .iter()
            .flat_map(|i| &i.peers)
            .find(|p| p.public_key.starts_with(key_prefix))
            .unwrap_or_else(|| panic!("no peer {key_prefix}"))
    }

    /// Every way a parse result leaves the parser: Debug, JSON, the wire codec, skip reasons.
    fn renderings(p: &Parsed<Vec<WgInterface>>) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("debug", format!("{p:?}").into_bytes()),
            ("json", serde_json::to_vec(p).expect("json")),
            (
                "bincode",
                routerstats_shared::codec::encode(&p.value).expect("encode"),
            ),
            (
                "skipped",
                p.skipped
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into_bytes(),
            ),
            ("state", format!("{:?}", p.state()).into_bytes()),
        ]
    }

    fn assert_no_secret(p: &Parsed<Vec<WgInterface>>, secret: &str) {
        for (what, bytes) in renderings(p) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret leaked into {what}"
            );
        }
    }

    #[test]
    fn own_dump_parses_interfaces_and_peers() {
        let p = parse(&own_fixture(OWN_DUMP), "wg0").unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let names: Vec<_> = p
            .value
            .iter()
            .map(|i| (i.name.as_str(), i.peers.len()))
            .collect();
        assert_eq!(names, [("wg0", 4), ("wg1", 2)]);
        let wg0 = &p.value.first().unwrap();
        assert_eq!(
            wg0.public_key.as_deref(),
            Some("3diIUq1AMjVtE+qeqAWHmcg5891wauoA14pyyLiq/tY=")
        );
        assert_eq!(wg0.listen_port, Some(51820));
        assert_eq!(wg0.fwmark, None);
        let wg1 = &p.value.get(1).unwrap();
        assert_eq!(wg1.fwmark, Some(0xca6c));

        let alice = peer(&p.value, "osLn");
        assert!(alice.has_preshared_key);
        assert_eq!(alice.endpoint, Some("84.115.201.17:51820".parse().unwrap()));
        assert_eq!(alice.latest_handshake, Some(1_732_312_345));
        assert_eq!((alice.rx_bytes, alice.tx_bytes), (48_213_377, 912_345_678));
        assert_eq!(alice.keepalive_s, None);

        let bob = peer(&p.value, "oU28");
        assert!(!bob.has_preshared_key);
        assert_eq!(
            bob.endpoint,
            Some("[2a02:8071:4a2:1f00::3c]:41734".parse().unwrap())
        );
        assert_eq!(bob.keepalive_s, Some(25));
        assert_eq!(
            bob.allowed_ips,
            vec![
                "10.77.0.3/32".parse().unwrap(),
                "fd77::3/128".parse().unwrap()
            ]
        );

        let carol = peer(&p.value, "zgLK");
        assert_eq!(carol.latest_handshake, None);
        assert_eq!(carol.endpoint, None);
        assert_eq!((carol.rx_bytes, carol.tx_bytes), (0, 0));

        let office = peer(&p.value, "BlEJ");
        assert_eq!(office.allowed_ips.len(), 3);
        assert_eq!(office.rx_bytes, 5_368_709_120);

        let vpn = peer(&p.value, "a3Yw");
        assert_eq!(
            vpn.allowed_ips.iter().map(|n| n.prefix).collect::<Vec<_>>(),
            [0, 0]
        );
    }

    #[test]
    fn private_and_preshared_keys_never_leave_the_parser() {
        let text = own_fixture(OWN_DUMP);
        assert!(
            text.contains(WG0_PRIVATE) && text.contains(ALICE_PSK),
            "fixture carries the secrets"
        );
        let p = parse(&text, "wg0").unwrap();
        for secret in [WG0_PRIVATE, WG1_PRIVATE, ALICE_PSK] {
            assert_no_secret(&p, secret);
        }
    }

    #[test]
    fn malformed_interface_line_does_not_echo_its_private_key() {
        let text = format!(
            "wg0\t{WG0_PRIVATE}\t3diIUq1AMjVtE+qeqAWHmcg5891wauoA14pyyLiq/tY=\t51820\n\
             wg1\t{WG1_PRIVATE}\tpub\t51821\toff\textra\n\
             wg2\t{WG1_PRIVATE}\tpub\tnotaport\t0xZZ\n\
             wg0\tpeerkey=\t{ALICE_PSK}\t(none)\t10.0.0.2/32\t0\t0\t0\toff\n"
        );
        let p = parse(&text, "wg0").unwrap();
        let reasons: Vec<String> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "line 1: malformed interface line (5 fields expected)",
                "line 2: malformed interface line (5 fields expected)",
                "line 3: malformed interface line (invalid listen port or fwmark)",
            ]
        );
        for secret in [WG0_PRIVATE, WG1_PRIVATE, ALICE_PSK] {
            assert_no_secret(&p, secret);
        }
        // The peer of the dropped interface line still belongs to a wg0 entry.
        assert_eq!(
            p.value.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["wg0"]
        );
    }

    #[test]
    fn peer_line_cut_after_its_endpoint_is_not_an_interface() {
        // Found by the truncation property test: 5 fields, the preshared key in 3rd place.
        for tail in [
            "84.115.201.17:51820\t1",
            "(none)\t10.0.0.2/32",
            "[fd00::1]:5\t0",
        ] {
            let text = format!("wg0\tpeer=\t{ALICE_PSK}\t{tail}");
            let Err(ParseError::Invalid(msg)) = parse(&text, "wg0") else {
                panic!("{tail}: cut peer line was accepted");
            };
            assert!(!msg.contains(ALICE_PSK));
        }
        let p = parse(
            "wg0\tpriv\tpub=\t51820\t0xZZ\nwg0\tpriv\tpub=\t51820\t0x10\n",
            "wg0",
        )
        .unwrap();
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.value.first().unwrap().fwmark, Some(16));
    }

    #[test]
    fn show_format_private_key_line_is_dropped_even_when_shown() {
        let text = format!(
            "interface: wg0\n  public key: pub=\n  private key: {WG0_PRIVATE}\n  listening port: 1\n\
             peer: peer=\n  preshared key: {ALICE_PSK}\n  allowed ips: (none)\n  junk line {WG1_PRIVATE}\n"
        );
        let p = parse_show(&text, NOW).unwrap();
        let wg0 = p.value.first().unwrap();
        assert_eq!(wg0.public_key.as_deref(), Some("pub="));
        let peer = wg0.peers.first().unwrap();
        assert!(peer.has_preshared_key);
        assert!(peer.allowed_ips.is_empty());
        assert_eq!(p.skipped.len(), 1);
        for secret in [WG0_PRIVATE, WG1_PRIVATE, ALICE_PSK] {
            assert_no_secret(&p, secret);
        }
    }

    #[test]
    fn peers_without_interface_line_get_an_interface_entry() {
        let p = parse("wg9\tKEY=\t(none)\t(none)\t(none)\t0\t0\t0\toff\n", "wg0").unwrap();
        let wg9 = p.value.first().unwrap();
        assert_eq!(wg9.name, "wg9");
        assert_eq!(wg9.public_key, None);
        assert_eq!(wg9.listen_port, None);
        assert_eq!(wg9.peers.len(), 1);
        assert!(wg9.peers.first().unwrap().allowed_ips.is_empty());
    }

    #[test]
    fn interface_line_after_its_peers_completes_the_entry() {
        let p = parse(
            "wg0\tA=\t(none)\t(none)\t(none)\t0\t0\t0\toff\nwg0\tpriv\tPUB=\t51820\toff\n",
            "wg0",
        )
        .unwrap();
        assert_eq!(p.value.len(), 1);
        let wg0 = p.value.first().unwrap();
        assert_eq!(
            (wg0.public_key.as_deref(), wg0.listen_port, wg0.peers.len()),
            (Some("PUB="), Some(51820), 1)
        );
    }

    #[test]
    fn invalid_key_lengths_are_kept_as_printed() {
        let p = parse(
            "wg0\tpriv\tshort=\t51820\toff\nwg0\tabc\t(none)\t(none)\t10.0.0.1/32\t0\t0\t0\toff\n",
            "wg0",
        )
        .unwrap();
        let wg0 = p.value.first().unwrap();
        assert_eq!(wg0.public_key.as_deref(), Some("short="));
        assert_eq!(wg0.peers.first().unwrap().public_key, "abc");
    }

    #[test]
    fn unparseable_endpoint_is_none_with_a_note() {
        let p = parse(
            "wg0\tK=\t(none)\tmypublicip:51820\t10.0.0.2/32\t1700000000\t1\t2\toff\n",
            "wg0",
        )
        .unwrap();
        let peer = p.value.first().unwrap().peers.first().unwrap();
        assert_eq!(peer.endpoint, None);
        assert_eq!(peer.latest_handshake, Some(1_700_000_000));
        assert_eq!(p.skipped.len(), 1);
        assert!(!p.skipped.first().unwrap().reason.contains("mypublicip"));
    }

    #[test]
    fn spaces_instead_of_tabs_and_indentation_are_tolerated() {
        let text = own_fixture(OWN_DUMP);
        let spaced: String = text
            .lines()
            .map(|l| format!("\t{}  \n", l.replace('\t', "    ")))
            .collect();
        assert_eq!(parse(&spaced, "wg0").unwrap(), parse(&text, "wg0").unwrap());
    }

    #[test]
    fn bad_fields_of_a_peer_are_noted_and_the_peer_kept() {
        let p = parse(
            "wg0\tK=\t(none)\t(none)\t10.0.0.2/33,10.0.0.3/32\tsoon\t-1\tx\t99999\n",
            "wg0",
        )
        .unwrap();
        let peer = p.value.first().unwrap().peers.first().unwrap();
        assert_eq!(peer.allowed_ips, vec!["10.0.0.3/32".parse().unwrap()]);
        assert_eq!(
            (
                peer.latest_handshake,
                peer.rx_bytes,
                peer.tx_bytes,
                peer.keepalive_s
            ),
            (None, 0, 0, None)
        );
        assert_eq!(p.skipped.len(), 5, "{:?}", p.skipped);
    }

    #[test]
    fn per_interface_dump_equals_its_part_of_the_all_dump() {
        let text = own_fixture(OWN_WG0_DUMP);
        assert!(is_interface_dump(&text));
        let p = parse(&text, "wg0").unwrap();
        assert_eq!(p, parse_interface_dump(&text, "wg0").unwrap());
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let all = parse(&own_fixture(OWN_DUMP), "unused").unwrap();
        assert_eq!(p.value, all.value[..1]);
        assert_eq!(p.value[0].peers.len(), 4);
        assert_eq!(p.value[0].listen_port, Some(51820));
        assert_no_secret(&p, WG0_PRIVATE);
        assert_no_secret(&p, ALICE_PSK);
        // Named by the caller: the dump itself has no name column.
        assert_eq!(parse(&text, "vpn").unwrap().value[0].name, "vpn");
    }

    #[test]
    fn per_interface_dump_without_peers_and_with_bad_lines() {
        let p = parse("PRIV=\tPUB=\t51820\t0x10\n", "wg5").unwrap();
        assert_eq!(
            (
                p.value[0].name.as_str(),
                p.value[0].public_key.as_deref(),
                p.value[0].fwmark
            ),
            ("wg5", Some("PUB="), Some(16))
        );
        assert!(p.value[0].peers.is_empty());
        let p = parse(
            "PRIV=\tPUB=\t51820\toff\nP1=\t(none)\t(none)\n\
             P2=\t(none)\t(none)\t10.0.0.2/32\t0\t0\t0\toff\textra\n\
             P3=\t(none)\t1.2.3.4:5\t10.0.0.3/32\t1700000000\t1\t2\t25\n",
            "wg0",
        )
        .unwrap();
        let reasons: Vec<_> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "line 2: malformed interface line (4 fields expected)",
                "line 3: malformed peer line (8 fields expected)",
            ]
        );
        let peers = &p.value[0].peers;
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].endpoint, Some("1.2.3.4:5".parse().unwrap()));
        assert_eq!(
            (peers[0].rx_bytes, peers[0].tx_bytes, peers[0].keepalive_s),
            (1, 2, Some(25))
        );
        // The all-dump form still names its own counts.
        let p = parse("wg0\tpriv\tPUB=\t1\toff\nwg0\tA\tB\n", "x").unwrap();
        assert_eq!(
            p.skipped[0].reason,
            "malformed interface line (5 fields expected)"
        );
    }

    #[test]
    fn no_cut_of_an_all_dump_passes_for_a_per_interface_dump() {
        let mut texts: Vec<String> = shared_fixtures_in("wg")
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| !is_show_format(t))
            .collect();
        texts.push(own_fixture(OWN_DUMP));
        let mut cuts = 0;
        for text in &texts {
            for cut in (0..=text.len()).filter(|c| text.is_char_boundary(*c)) {
                let part = &text[..cut];
                cuts += 1;
                assert!(!is_interface_dump(part), "{part:?}");
            }
        }
        assert!(cuts > 1000);
        // Every cut of the per-interface dump that holds its whole first line is one.
        let text = own_fixture(OWN_WG0_DUMP);
        let first_len = text.find('\n').unwrap();
        assert!((first_len..=text.len()).all(|c| is_interface_dump(&text[..c])));
    }

    #[test]
    fn empty_and_garbage_input_are_errors() {
        assert_eq!(parse("", "wg0"), Err(ParseError::Empty));
        assert_eq!(parse(" \n\n", "wg0"), Err(ParseError::Empty));
        assert!(matches!(
            parse("hello world\n", "wg0"),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_show("peer: x\n  endpoint: 1.2.3.4:5\n", NOW),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn own_show_fixture_matches_the_dump() {
        let text = own_fixture("wg/wg-show.txt");
        assert!(is_show_format(&text));
        let p = parse_show(&text, NOW).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let names: Vec<_> = p
            .value
            .iter()
            .map(|i| (i.name.as_str(), i.peers.len()))
            .collect();
        assert_eq!(names, [("wg0", 4), ("wg1", 2)]);
        let dump = parse(&own_fixture(OWN_DUMP), "wg0").unwrap();
        for (show_if, dump_if) in p.value.iter().zip(&dump.value) {
            assert_eq!(
                (&show_if.public_key, show_if.listen_port, show_if.fwmark),
                (&dump_if.public_key, dump_if.listen_port, dump_if.fwmark)
            );
            for sp in &show_if.peers {
                let dp = peer(&dump.value, &sp.public_key);
                assert_eq!(
                    (&sp.endpoint, &sp.allowed_ips),
                    (&dp.endpoint, &dp.allowed_ips)
                );
                assert_eq!(
                    (sp.has_preshared_key, sp.keepalive_s),
                    (dp.has_preshared_key, dp.keepalive_s)
                );
            }
        }
        let office = peer(&p.value, "BlEJ");
        assert_eq!(office.latest_handshake, Some(NOW - 107));
        assert_eq!((office.rx_bytes, office.tx_bytes), (5 << 30, 7 << 30));
        let bob = peer(&p.value, "oU28");
        assert_eq!(bob.latest_handshake, Some(NOW - 3721));
        assert_eq!(bob.rx_bytes, (1.76f64 * 1048576.0).round() as u64);
        assert_eq!(
            peer(&p.value, "osLn").latest_handshake,
            Some(NOW - (2 * 86400 + 3 * 3600 + 12))
        );
        assert_eq!(peer(&p.value, "a3Yw").latest_handshake, Some(NOW));
        assert_eq!(peer(&p.value, "GnK+").rx_bytes, 1024);
        let carol = peer(&p.value, "zgLK");
        assert_eq!(
            (carol.latest_handshake, carol.rx_bytes, carol.endpoint),
            (None, 0, None)
        );
    }

    #[test]
    fn show_format_quirks() {
        let text = "\u{1b}[1minterface\u{1b}[0m: wg0\n\
                    \tlistening port: 70000\n\
                    peer: P=\n\
                    \tendpoint: [2600:REDACTED]:56309\n\
                    \tlatest handshake: 55 years, 258 days, 13 hours, 48 minutes, 5 seconds ago\n\
                    \ttransfer: 13.88 MiB received, 1.5 TiB sent\n\
                    \tpersistent keepalive: every 1 minute, 5 seconds\n\
                    \tfrobnicate: 3\n";
        let p = parse_show(text, NOW).unwrap();
        let wg0 = p.value.first().unwrap();
        assert_eq!(wg0.listen_port, None);
        let peer = wg0.peers.first().unwrap();
        assert_eq!(peer.endpoint, None);
        assert_eq!(peer.latest_handshake, None);
        assert_eq!(peer.rx_bytes, 14_554_235);
        assert_eq!(peer.tx_bytes, 3 << 39);
        assert_eq!(peer.keepalive_s, Some(65));
        let reasons: Vec<_> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "line 2: invalid listening port",
                "line 4: endpoint is not ip:port, kept as none",
                "line 5: implausible latest handshake (before 2015), kept as none",
                "line 8: unrecognised field \"frobnicate\"",
            ]
        );
    }

    #[test]
    fn duration_and_byte_units() {
        assert_eq!(
            parse_duration("1 year, 1 day, 1 hour, 1 minute, 1 second"),
            Some(31_626_061)
        );
        assert_eq!(parse_duration("2 weeks"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999 years"), None);
        assert_eq!(parse_bytes("948 B"), Some(948));
        assert_eq!(parse_bytes("4.56 KiB"), Some(4669));
        assert_eq!(parse_bytes("1.00 GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("-1 B"), None);
        assert_eq!(parse_bytes("1e300 TiB"), None);
        assert_eq!(parse_bytes("99999999999999999999 TiB"), None);
        assert_eq!(parse_transfer("1 B received"), None);
        assert_eq!(parse_fwmark("off"), Ok(None));
        assert_eq!(parse_fwmark("0x0"), Ok(None));
        assert_eq!(parse_fwmark("51820"), Ok(Some(51820)));
        assert_eq!(parse_fwmark("0xzz"), Err(()));
    }

    /// Private keys of the shared fixtures: the 2nd field of dump interface lines, and the value of
    /// `private key:` lines that are not `(hidden)`.
    fn private_keys_in(text: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let show = is_show_format(text);
        let per_interface = is_interface_dump(text);
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !show && !per_interface && fields.len() == 5 {
                keys.extend(fields.get(1).map(|k| k.to_string()));
            }
            if per_interface && fields.len() == 4 {
                keys.extend(fields.first().map(|k| k.to_string()));
            }
            if let Some(v) = line.trim().strip_prefix("private key:") {
                let v = v.trim();
                if v != "(hidden)" {
                    keys.push(v.to_string());
                }
            }
        }
        keys
    }

    #[test]
    fn every_shared_fixture_parses_without_leaking_keys() {
        let mut dump_keys = 0;
        for (name, text) in shared_fixtures_in("wg") {
            let p = parse_show_or_dump_at(&text, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
            for key in private_keys_in(&text) {
                dump_keys += 1;
                assert_no_secret(&p, &key);
            }
            let shape: Vec<(&str, usize)> = p
                .value
                .iter()
                .map(|i| (i.name.as_str(), i.peers.len()))
                .collect();
            let expected: &[(&str, usize)] = match name.as_str() {
                "doc-cloudgateway-wg-server-bytes-B-units.txt" => &[("wg0", 1)],
                "doc-pia-wg-show-keepalive-21s.txt" => &[("wg0", 1)],
                "doc-wgagent-wg-show-interface-no-peers.txt" => &[("wg_100", 0)],
                "issue-boringtun447-wg-show-no-pubkey-bogus-handshake-REDACTED.txt" => {
                    &[("wg0", 2)]
                }
                "mindflavor-exporter-issue19-dump.txt" => &[("wg0", 17)],
                "mindflavor-exporter-test-dump-multi-iface.txt" => {
                    &[("wg0", 5), ("wg2", 1), ("pollo", 1)]
                }
                other => panic!("new wg fixture {other}: add its expected shape here"),
            };
            assert_eq!(shape, expected, "{name}");
            let first = p.value.first().unwrap();
            let first_peer = first.peers.first();
            match name.as_str() {
                "doc-cloudgateway-wg-server-bytes-B-units.txt" => {
                    assert_eq!(first.listen_port, Some(8765));
                    let pe = first_peer.unwrap();
                    assert_eq!(pe.endpoint, Some("172.24.0.2:55748".parse().unwrap()));
                    assert_eq!((pe.rx_bytes, pe.tx_bytes), (948, 860));
                    assert_eq!(pe.latest_handshake, Some(NOW - 154));
                    assert!(p.skipped.is_empty());
                }
                "doc-pia-wg-show-keepalive-21s.txt" => {
                    let pe = first_peer.unwrap();
                    assert_eq!(pe.keepalive_s, Some(21));
                    assert_eq!(pe.latest_handshake, Some(NOW - 14));
                    assert_eq!(pe.allowed_ips, vec!["10.100.100.1/32".parse().unwrap()]);
                }
                "doc-wgagent-wg-show-interface-no-peers.txt" => {
                    assert_eq!(first.listen_port, Some(51233));
                    assert_eq!(
                        first.public_key.as_deref(),
                        Some("2dZgHj/Md9Gy7+ChJWpGwNZ3UaVh+ywaCoQ7vY68Xw4=")
                    );
                }
                "issue-boringtun447-wg-show-no-pubkey-bogus-handshake-REDACTED.txt" => {
                    assert_eq!(first.public_key, None);
                    assert_eq!(first.listen_port, Some(58593));
                    let pe = first_peer.unwrap();
                    assert_eq!(pe.public_key, "REDACTED1=");
                    assert!(pe.has_preshared_key);
                    assert_eq!((pe.endpoint, pe.latest_handshake), (None, None));
                    assert_eq!(pe.allowed_ips.len(), 2);
                    assert_eq!(pe.rx_bytes, (13.88f64 * 1048576.0).round() as u64);
                    assert_eq!(pe.tx_bytes, (241.09f64 * 1048576.0).round() as u64);
                    // The redacted endpoint and the bogus handshake are noted.
                    assert_eq!(p.skipped.len(), 2, "{:?}", p.skipped);
                }
                "mindflavor-exporter-issue19-dump.txt" => {
                    assert_eq!(
                        first.public_key.as_deref(),
                        Some("VfjHGauX8OxotDMm2vi3JdwOUTDsFbxCnyInJ/wAXlk=")
                    );
                    let pe = peer(&p.value, "yjeB");
                    assert_eq!(pe.latest_handshake, Some(1_574_770_705));
                    assert_eq!((pe.rx_bytes, pe.tx_bytes), (18_576_788_764, 10_642_564_136));
                    assert_eq!(peer(&p.value, "923V").latest_handshake, None);
                    assert!(p.skipped.is_empty());
                }
                "mindflavor-exporter-test-dump-multi-iface.txt" => {
                    let pollo = p.value.get(2).unwrap();
                    assert_eq!(pollo.public_key, None);
                    // 42 characters: an invalid key length, kept as printed.
                    assert_eq!(pollo.peers.first().unwrap().public_key.len(), 42);
                    let pe = peer(&p.value, "2S7m");
                    assert_eq!(pe.endpoint, Some("37.159.76.245:29159".parse().unwrap()));
                    assert_eq!(pe.allowed_ips.len(), 2);
                    // The peer after the wg2/pollo lines still belongs to wg0.
                    assert_eq!(
                        first.peers.last().unwrap().public_key,
                        "928vO9Lf4+Mo84cWu4k1oRyzf0AR7FTGoPKHGoTMSHk="
                    );
                    assert!(p.skipped.is_empty());
                }
                _ => unreachable!(),
            }
        }
        assert_eq!(dump_keys, 2, "both dump fixtures carry one private key");
    }

    fn parse_show_or_dump_at(text: &str, now: u64) -> Result<Parsed<Vec<WgInterface>>, ParseError> {
        if is_show_format(text) {
            parse_show(text, now)
        } else if is_interface_dump(text) {
            parse_interface_dump(text, "wg0")
        } else {
            parse_dump(text)
        }
    }

    #[test]
    fn read_reports_a_missing_tool() {
        let err = read("/nonexistent/routerstats-wg").unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::Read(crate::sources::ReadError::ToolMissing(_))
            ),
            "{err:?}"
        );
    }

    fn all_fixture_texts() -> Vec<String> {
        let mut texts: Vec<String> = shared_fixtures_in("wg")
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        texts.push(own_fixture(OWN_DUMP));
        texts.push(own_fixture("wg/wg-show.txt"));
        texts.push(own_fixture(OWN_WG0_DUMP));
        texts
    }

    #[test]
    fn every_truncation_of_every_fixture_keeps_secrets() {
        let mut checked = 0;
        for text in all_fixture_texts() {
            let mut secrets = private_keys_in(&text);
            secrets.extend([
                WG0_PRIVATE.to_string(),
                WG1_PRIVATE.to_string(),
                ALICE_PSK.to_string(),
            ]);
            let prefixes: Vec<&str> = secrets.iter().filter_map(|k| k.get(..12)).collect();
            for cut in (0..=text.len()).filter(|c| text.is_char_boundary(*c)) {
                if let Ok(p) = parse_show_or_dump_at(text.get(..cut).unwrap_or_default(), NOW) {
                    checked += 1;
                    for prefix in &prefixes {
                        assert_no_secret(&p, prefix);
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} truncations parsed");
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC*") {
            let _ = parse(&s, "wg0");
            let _ = parse_show(&s, NOW);
            let _ = parse_dump(&s);
        }

        #[test]
        fn random_wg_like_lines_never_panic(
            lines in proptest::collection::vec(
                proptest::collection::vec("[a-z0-9=:./,\\[\\]()+-]{0,12}", 0..11), 0..8),
            show in any::<bool>(),
        ) {
            let text: String = lines.iter().map(|l| l.join(if show { ": " } else { "\t" }) + "\n").collect();
            let _ = parse_dump(&text);
            let _ = parse_show(&text, NOW);
        }

        #[test]
        fn random_per_interface_dumps_never_panic_nor_leak(
            port in any::<u16>(),
            peers in proptest::collection::vec(
                proptest::collection::vec("[a-zA-Z0-9=:./,\\[\\]()+-]{0,12}", 6..10), 0..6),
        ) {
            let mut text = format!("SECRETPRIVATEKEY=\tPUB=\t{port}\toff\n");
            for p in &peers {
                text.push_str(&p.join("\t"));
                text.push('\n');
            }
            prop_assert!(is_interface_dump(&text));
            let p = parse(&text, "wg0").unwrap();
            prop_assert_eq!(p.value.len(), 1);
            prop_assert_eq!(p.value[0].listen_port, Some(port));
            // Every line is a peer of wg0 or named in `skipped`.
            prop_assert_eq!(p.value[0].peers.len() + p.skipped.iter().filter(|s| s.reason.starts_with("malformed")).count(), peers.len());
            assert_no_secret(&p, "SECRETPRIVATEKEY");
        }

        #[test]
        fn truncated_fixtures_never_panic_nor_leak(idx in 0usize..64, cut in 0usize..4096) {
            let texts = all_fixture_texts();
            let text = texts.get(idx % texts.len()).unwrap();
            let mut cut = cut.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let part = &text[..cut];
            if let Ok(p) = parse(part, "wg0") {
                let mut keys = private_keys_in(text);
                keys.extend([WG0_PRIVATE.to_string(), ALICE_PSK.to_string()]);
                for key in keys {
                    // Even a cut-off key must not show up: look for its first 12 characters.
                    assert_no_secret(&p, key.get(..12).unwrap());
                }
            }
        }
    }
}
