//! Parser for `iw dev` (and `iw dev <if> info`) output: one [`WirelessInterface`] per
//! `Interface <name>` block, with the `phy#N` header it sits under.
//!
//! The parser works on keywords, not indentation: every line is trimmed first, so tabs, spaces
//! and the extra leading tab of copied-from-Markdown text all parse alike. Choices:
//! - An interface before any `phy#N` header has `phy: None`, unless a `wiphy N` line (printed by
//!   `iw dev <if> info`) names it.
//! - Lines that are not known fields (the `multicast TXQ:` table, `4addr: on`, lines of newer iw
//!   versions) are listed with [`Parsed::unused`] (one entry per TXQ table). A known field with
//!   a malformed value is reported with [`Parsed::skip`] and the rest of the interface is kept.
//! - The first value of an interface field wins.
//! - Wi-Fi 7 multi-link (MLD) interfaces: after `MLD with links:`, each `- link ID <n> link addr
//!   <mac>` line opens a [`WifiLink`], and the `channel` and `txpower` lines under it belong to
//!   that link, not to the interface: every link is kept (a 5 GHz 160 MHz link and a 6 GHz
//!   320 MHz link stay two links), and the interface-level channel stays as `iw` printed it
//!   (usually absent for an MLD). A link line without an ID is skipped with its channel lines.
//! - `Unnamed/non-netdev interface` blocks (P2P-device wdevs) are not kept (the model's
//!   interfaces are netdevs: they have a name to read stations and counters from); the block is
//!   listed with [`Parsed::unused`], with its type and wdev.
//! - An interface without a `type` line gets `WifiIfType::Other("")` (the model needs a type).
//! - A width of `80+80 MHz` is stored as 160 (the two segments are told apart by `center2`).
//!   Fractional frequencies (`902.5 MHz`, S1G) keep their whole MHz.

use routerstats_shared::{MacAddr, WifiIfType, WifiLink, WirelessInterface};

use super::{run_command, ParseError, Parsed, SourceError};

/// Runs `<iw> dev` and parses its output. A successful run that prints nothing means the
/// router has no wireless interfaces: that is an empty list, not an error.
pub fn read(iw: &str) -> Result<Parsed<Vec<WirelessInterface>>, SourceError> {
    let text = run_command(iw, &["dev"])?;
    if text.trim().is_empty() {
        return Ok(Parsed::new(Vec::new()));
    }
    Ok(parse(&text)?)
}

/// Parses `iw dev` output. Returns `Err` only when no `Interface` block was found.
pub fn parse(text: &str) -> Result<Parsed<Vec<WirelessInterface>>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut out = Parsed::new(Vec::new());
    let mut phy: Option<u32> = None;
    // The interface being filled; `Discard` swallows the fields of a block that cannot be kept.
    let mut current = Block::None;
    // Inside the `MLD with links:` section of the current interface: where link lines go.
    let mut mld = Mld::Off;
    // Inside a `multicast TXQ:` table (its header and value rows are one unused entry).
    let mut in_txq = false;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim_start().trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            continue;
        }
        let (keyword, rest) = match line.split_once(char::is_whitespace) {
            Some((k, r)) => (k, r),
            None => (line, ""),
        };
        if in_txq && (keyword == "qsz-byt" || keyword.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        in_txq = false;

        if let Some(num) = keyword.strip_prefix("phy#") {
            current.finish_noting(&mut out);
            mld = Mld::Off;
            phy = match num.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    out.skip(line_no, format!("bad phy header {:?}", short(line)));
                    None
                }
            };
            continue;
        }
        if keyword == "Interface" {
            current.finish_noting(&mut out);
            mld = Mld::Off;
            let name = rest.trim();
            if name.is_empty() {
                out.skip(line_no, "Interface line without a name");
                current = Block::Discard;
            } else {
                current = Block::Iface(Box::new(new_interface(phy, name)));
            }
            continue;
        }
        if keyword == "Unnamed/non-netdev" {
            current.finish_noting(&mut out);
            mld = Mld::Off;
            current = Block::Unnamed {
                line: line_no,
                wdev: None,
                iftype: None,
            };
            continue;
        }
        if let Block::Unnamed { wdev, iftype, .. } = &mut current {
            match keyword {
                "wdev" => *wdev = Some(short(rest.trim())),
                "type" => *iftype = Some(short(rest.trim())),
                _ => {}
            }
            continue;
        }
        let iface = match &mut current {
            Block::Iface(iface) => iface,
            Block::Discard | Block::Unnamed { .. } => continue,
            Block::None => {
                if is_field(keyword) {
                    out.skip(
                        line_no,
                        format!("{keyword} line outside an Interface block"),
                    );
                } else {
                    out.unused(
                        line_no,
                        format!("line {:?} outside an Interface block", short(line)),
                    );
                }
                continue;
            }
        };
        if line.starts_with("MLD with links") {
            mld = Mld::Section;
            continue;
        }
        if keyword == "-" && rest.trim_start().starts_with("link") && mld != Mld::Off {
            match parse_link_header(rest) {
                Ok(link) => {
                    iface.links.push(link);
                    mld = Mld::Link;
                }
                Err(reason) => {
                    out.skip(line_no, reason);
                    mld = Mld::BadLink;
                }
            }
            continue;
        }
        if keyword == "multicast" {
            in_txq = true;
            out.unused(line_no, "multicast TXQ statistics");
            continue;
        }
        if !is_field(keyword) {
            out.unused(line_no, format!("{:?}", short(line)));
            continue;
        }
        let result = match (keyword, &mld) {
            ("channel" | "txpower", Mld::BadLink) => Ok(()),
            ("channel" | "txpower", Mld::Link) => match iface.links.last_mut() {
                Some(link) => apply_link_field(link, keyword, rest),
                None => Ok(()),
            },
            _ => apply_field(iface, keyword, rest),
        };
        if let Err(reason) = result {
            out.skip(line_no, format!("{keyword}: {reason}"));
        }
    }
    current.finish_noting(&mut out);

    if out.value.is_empty() {
        return Err(out.nothing_usable("no usable Interface block"));
    }
    Ok(out)
}

/// The block the parser is in.
enum Block {
    None,
    Iface(Box<WirelessInterface>),
    Discard,
    /// An `Unnamed/non-netdev interface` block starting at `line`: listed as unused on finish.
    Unnamed {
        line: usize,
        wdev: Option<String>,
        iftype: Option<String>,
    },
}

/// Where the lines of an interface's `MLD with links:` section go.
#[derive(PartialEq)]
enum Mld {
    /// Not in an MLD section: `channel` and `txpower` are the interface's.
    Off,
    /// After `MLD with links:`, before the first link line.
    Section,
    /// In the section of the last link of the interface.
    Link,
    /// In the section of a link line that could not be read: its lines are dropped.
    BadLink,
}

impl Block {
    /// Moves a finished interface into the output and resets the state.
    fn finish(&mut self, out: &mut Vec<WirelessInterface>) {
        if let Block::Iface(iface) = std::mem::replace(self, Block::None) {
            out.push(*iface);
        }
    }

    /// Like [`Block::finish`], and lists a finished unnamed (non-netdev) block as unused.
    fn finish_noting(&mut self, out: &mut Parsed<Vec<WirelessInterface>>) {
        if let Block::Unnamed { line, wdev, iftype } = self {
            let (line, what) = (
                *line,
                format!(
                    "non-netdev interface (type {}, wdev {}): no netdev to read",
                    iftype.as_deref().unwrap_or("unknown"),
                    wdev.as_deref().unwrap_or("unknown"),
                ),
            );
            out.unused(line, what);
        }
        self.finish(&mut out.value);
    }
}

fn new_interface(phy: Option<u32>, name: &str) -> WirelessInterface {
    WirelessInterface {
        phy,
        name: name.to_string(),
        ifindex: None,
        wdev: None,
        addr: None,
        iftype: WifiIfType::Other(String::new()),
        ssid: None,
        channel: None,
        freq_mhz: None,
        width_mhz: None,
        center1_mhz: None,
        center2_mhz: None,
        txpower_dbm: None,
        links: Vec::new(),
    }
}

fn is_field(keyword: &str) -> bool {
    matches!(
        keyword,
        "ifindex" | "wdev" | "addr" | "ssid" | "type" | "channel" | "txpower" | "wiphy"
    )
}

/// Sets one field of `iface` from the text after its keyword (first value wins).
fn apply_field(iface: &mut WirelessInterface, keyword: &str, rest: &str) -> Result<(), String> {
    let value = rest.trim();
    match keyword {
        "ifindex" if iface.ifindex.is_none() => iface.ifindex = Some(parse_num(value)?),
        "wiphy" if iface.phy.is_none() => iface.phy = Some(parse_num(value)?),
        "wdev" if iface.wdev.is_none() => {
            let hex = value
                .strip_prefix("0x")
                .or_else(|| value.strip_prefix("0X"))
                .unwrap_or(value);
            let wdev = u64::from_str_radix(hex, 16)
                .map_err(|_| format!("not a hex number: {:?}", short(value)))?;
            iface.wdev = Some(wdev);
        }
        "addr" if iface.addr.is_none() => {
            let mac: MacAddr = value
                .parse()
                .map_err(|_| format!("not a MAC address: {:?}", short(value)))?;
            iface.addr = Some(mac);
        }
        // Everything after `ssid ` is the SSID, inner and trailing spaces included.
        "ssid" if iface.ssid.is_none() => iface.ssid = Some(rest.to_string()),
        "type" if iface.iftype == WifiIfType::Other(String::new()) => {
            if value.is_empty() {
                return Err("empty type".into());
            }
            iface.iftype = WifiIfType::from_iw(value);
        }
        "channel" if iface.channel.is_none() && iface.freq_mhz.is_none() => set_channel(
            [
                &mut iface.channel,
                &mut iface.freq_mhz,
                &mut iface.width_mhz,
                &mut iface.center1_mhz,
                &mut iface.center2_mhz,
            ],
            value,
        )?,
        "txpower" if iface.txpower_dbm.is_none() => iface.txpower_dbm = Some(parse_power(value)?),
        _ => {}
    }
    Ok(())
}

/// Sets the `channel` or `txpower` of an MLD link (first value wins, as for interfaces).
fn apply_link_field(link: &mut WifiLink, keyword: &str, rest: &str) -> Result<(), String> {
    let value = rest.trim();
    match keyword {
        "channel" if link.channel.is_none() && link.freq_mhz.is_none() => set_channel(
            [
                &mut link.channel,
                &mut link.freq_mhz,
                &mut link.width_mhz,
                &mut link.center1_mhz,
                &mut link.center2_mhz,
            ],
            value,
        )?,
        "txpower" if link.txpower_dbm.is_none() => link.txpower_dbm = Some(parse_power(value)?),
        _ => {}
    }
    Ok(())
}

/// Sets `[channel, freq, width, center1, center2]` from a `channel` line (of an interface or
/// of an MLD link): the parts that parse are set even when another part is malformed.
fn set_channel(slots: [&mut Option<u32>; 5], value: &str) -> Result<(), String> {
    let (ch, problems) = parse_channel(value);
    let [channel, freq, width, center1, center2] = slots;
    *channel = ch.channel;
    *freq = ch.freq_mhz;
    *width = ch.width_mhz;
    *center1 = ch.center1_mhz;
    *center2 = ch.center2_mhz;
    problems
}

/// `- link ID  1 link addr 02:00:00:00:01:01` (the text after the `-`): the link ID is
/// required, the address optional (iw prints each only when the kernel sent it).
fn parse_link_header(rest: &str) -> Result<WifiLink, String> {
    let mut words = rest.split_whitespace().skip(1);
    let mut link = None;
    let mut addr = None;
    while let Some(w) = words.next() {
        match w {
            "ID" => {
                let id = words.next().unwrap_or("");
                link = Some(
                    id.parse::<u8>()
                        .map_err(|_| format!("MLD link: bad link ID {:?}", short(id)))?,
                );
            }
            "addr" => {
                let mac = words.next().unwrap_or("");
                addr = Some(
                    mac.parse::<MacAddr>()
                        .map_err(|_| format!("MLD link: not a MAC address: {:?}", short(mac)))?,
                );
            }
            _ => {}
        }
    }
    let link_id = link.ok_or("MLD link without an ID: its lines are dropped")?;
    Ok(WifiLink {
        link_id,
        addr,
        ..WifiLink::default()
    })
}

/// `20.00 dBm` -> 20.0.
fn parse_power(value: &str) -> Result<f32, String> {
    let num = value.split_whitespace().next().unwrap_or("");
    match super::parse_decimal(num).map(|v| v as f32) {
        Some(p) if p.is_finite() => Ok(p),
        _ => Err(format!("not a power: {:?}", short(value))),
    }
}

/// The parts of a `channel` line.
#[derive(Default)]
struct Channel {
    channel: Option<u32>,
    freq_mhz: Option<u32>,
    width_mhz: Option<u32>,
    center1_mhz: Option<u32>,
    center2_mhz: Option<u32>,
}

/// Parses `11 (2462 MHz), width: 20 MHz, center1: 2462 MHz[, center2: ...]` (the text after
/// `channel`), also old iw's `1 (2412 MHz) HT20`. Parts that parse are kept even when another
/// part is malformed; the malformed parts are returned as the error beside them.
fn parse_channel(value: &str) -> (Channel, Result<(), String>) {
    let mut iface = Channel::default();
    let mut problems: Vec<String> = Vec::new();
    let mut parts = value.split(',');
    let head = parts.next().unwrap_or("").trim();

    // `11 (2462 MHz)` plus, on old iw, a channel type after the parenthesis.
    let (num, after_num) = match head.split_once(char::is_whitespace) {
        Some((n, r)) => (n, r.trim()),
        None => (head, ""),
    };
    match num.parse::<u32>() {
        Ok(c) => iface.channel = Some(c),
        Err(_) => problems.push(format!("bad channel number {:?}", short(num))),
    }
    let mut channel_type = after_num;
    if let Some(inner) = after_num.strip_prefix('(') {
        match inner.split_once(')') {
            Some((freq, after)) => {
                match parse_mhz(freq) {
                    Some(f) => iface.freq_mhz = Some(f),
                    None => problems.push(format!("bad frequency {:?}", short(freq))),
                }
                channel_type = after.trim();
            }
            None => problems.push("unclosed frequency".into()),
        }
    }
    match channel_type.to_ascii_uppercase().as_str() {
        "" => {}
        "NO HT" | "HT20" => iface.width_mhz = Some(20),
        "HT40-" | "HT40+" => iface.width_mhz = Some(40),
        _ => {} // unknown channel annotations are ignored
    }

    for part in parts {
        let Some((key, val)) = part.split_once(':') else {
            continue;
        };
        let val = val.trim();
        match key.trim() {
            "width" => match parse_width(val) {
                Ok(w) => iface.width_mhz = w,
                Err(e) => problems.push(e),
            },
            "center1" => match parse_mhz(val) {
                Some(f) => iface.center1_mhz = Some(f),
                None => problems.push(format!("bad center1 {:?}", short(val))),
            },
            "center2" => match parse_mhz(val) {
                Some(f) => iface.center2_mhz = Some(f),
                None => problems.push(format!("bad center2 {:?}", short(val))),
            },
            _ => {}
        }
    }
    let problems = if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    };
    (iface, problems)
}

/// `20 MHz`, `20 MHz (no HT)`, `80+80 MHz` (160), `unknown` (None).
fn parse_width(val: &str) -> Result<Option<u32>, String> {
    let num = val.split_whitespace().next().unwrap_or("");
    if num.eq_ignore_ascii_case("unknown") {
        return Ok(None);
    }
    if num == "80+80" {
        return Ok(Some(160));
    }
    num.parse::<u32>()
        .map(Some)
        .map_err(|_| format!("bad width {:?}", short(val)))
}

/// `2462 MHz` or `902.5 MHz` -> whole MHz.
fn parse_mhz(val: &str) -> Option<u32> {
    let num = val.split_whitespace().next()?;
    let whole = match num.split_once('.') {
        Some((w, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => w,
        Some(_) => return None,
        None => num,
    };
    whole.parse().ok()
}

fn parse_num(value: &str) -> Result<u32, String> {
    value
        .parse()
        .map_err(|_| format!("not a number: {:?}", short(value)))
}

/// At most 40 characters of `s`, so skip reasons stay short on garbage input.
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::ReadError;
    use crate::testutil::{own_fixture, shared_fixture, shared_fixtures_in};
    use proptest::prelude::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_dual_band_router() {
        let p = parse(&own_fixture("iw/iw-dev.txt")).unwrap();
        assert_eq!(p.malformed().count(), 0, "{:?}", p.skipped);
        let names: Vec<&str> = p.value.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["mesh0", "wlan1", "wlan0"]);
        let wlan0 = &p.value[2];
        assert_eq!(wlan0.phy, Some(0));
        assert_eq!(wlan0.ifindex, Some(9));
        assert_eq!(wlan0.wdev, Some(1));
        assert_eq!(wlan0.addr, Some(mac("94:83:c4:1a:2b:3c")));
        assert_eq!(wlan0.ssid.as_deref(), Some("HomeNet"));
        assert_eq!(wlan0.iftype, WifiIfType::Ap);
        assert_eq!(
            (
                wlan0.channel,
                wlan0.freq_mhz,
                wlan0.width_mhz,
                wlan0.center1_mhz
            ),
            (Some(6), Some(2437), Some(20), Some(2437))
        );
        assert_eq!(wlan0.txpower_dbm, Some(20.0));
        let wlan1 = &p.value[1];
        assert_eq!(wlan1.phy, Some(1));
        assert_eq!(wlan1.wdev, Some(0x1_0000_0001));
        assert_eq!(
            (
                wlan1.channel,
                wlan1.freq_mhz,
                wlan1.width_mhz,
                wlan1.center1_mhz
            ),
            (Some(36), Some(5180), Some(80), Some(5210))
        );
        assert_eq!(wlan1.txpower_dbm, Some(23.0));
        let mesh0 = &p.value[0];
        assert_eq!(mesh0.phy, Some(1));
        assert_eq!(mesh0.iftype, WifiIfType::MeshPoint);
        assert_eq!(mesh0.ssid, None);
        assert!(mesh0.iftype.has_stations());
    }

    #[test]
    fn ssid_keeps_inner_and_trailing_spaces() {
        let p = parse("phy#0\n\tInterface wlan0\n\t\tssid  My Home  Net \n\t\ttype AP\n").unwrap();
        assert_eq!(p.value[0].ssid.as_deref(), Some(" My Home  Net "));
        assert_eq!(p.value[0].iftype, WifiIfType::Ap);
    }

    #[test]
    fn md_indent_and_spaces_parse_alike() {
        let tabs = "phy#2\n\tInterface wlan5\n\t\tifindex 7\n\t\ttype managed\n";
        let md = "\tphy#2\n\t        Interface wlan5\n\t                ifindex 7\n\t                type managed\n";
        let spaces = "phy#2\n    Interface wlan5\n        ifindex 7\n        type managed\n";
        let a = parse(tabs).unwrap().value;
        assert_eq!(a, parse(md).unwrap().value);
        assert_eq!(a, parse(spaces).unwrap().value);
        assert_eq!(a[0].phy, Some(2));
        assert_eq!(a[0].iftype, WifiIfType::Managed);
    }

    #[test]
    fn interface_without_phy_header_and_wiphy_line() {
        let p = parse("Interface wlan0\n\tifindex 3\n\ttype monitor\n").unwrap();
        assert_eq!(p.value[0].phy, None);
        assert_eq!(p.value[0].iftype, WifiIfType::Monitor);
        let p = parse("Interface wlan0\n\twiphy 4\n\ttype AP\n").unwrap();
        assert_eq!(p.value[0].phy, Some(4));
    }

    #[test]
    fn no_ht_width_center2_and_80p80() {
        let p = parse(
            "Interface a\n\tchannel 1 (2412 MHz), width: 20 MHz (no HT), center1: 2412 MHz\n\
             Interface b\n\tchannel 42 (5210 MHz), width: 80+80 MHz, center1: 5210 MHz, center2: 5530 MHz\n\
             Interface c\n\tchannel 11 (2462 MHz) HT40-\n\
             Interface d\n\tchannel 36 (5180 MHz), width: unknown\n",
        )
        .unwrap();
        assert_eq!(p.malformed().count(), 0, "{:?}", p.skipped);
        let v = &p.value;
        assert_eq!((v[0].width_mhz, v[0].center1_mhz), (Some(20), Some(2412)));
        assert_eq!(
            (v[1].width_mhz, v[1].center1_mhz, v[1].center2_mhz),
            (Some(160), Some(5210), Some(5530))
        );
        assert_eq!(
            (v[2].channel, v[2].freq_mhz, v[2].width_mhz),
            (Some(11), Some(2462), Some(40))
        );
        assert_eq!((v[3].channel, v[3].width_mhz), (Some(36), None));
    }

    #[test]
    fn old_iw_prints_fewer_fields() {
        let p = parse("phy#0\n\tInterface wlan0\n\t\tifindex 4\n\t\ttype AP\n").unwrap();
        let i = &p.value[0];
        assert_eq!(
            (
                i.ifindex,
                i.wdev,
                i.addr,
                i.ssid.as_ref(),
                i.channel,
                i.txpower_dbm
            ),
            (Some(4), None, None, None, None, None)
        );
    }

    #[test]
    fn malformed_fields_are_skipped_rest_kept() {
        let p = parse(
            "phy#0\n\tInterface wlan0\n\t\tifindex x\n\t\twdev 0xZZ\n\t\taddr 00:11:22\n\t\ttype AP\n\
             \t\tchannel x (2412 MHz), width: wide, center1: 2412 MHz\n\t\ttxpower high dBm\n",
        )
        .unwrap();
        let i = &p.value[0];
        assert_eq!(i.iftype, WifiIfType::Ap);
        assert_eq!(
            (i.ifindex, i.wdev, i.addr, i.channel, i.txpower_dbm),
            (None, None, None, None, None)
        );
        // The parts of the channel line that were fine are kept.
        assert_eq!((i.freq_mhz, i.center1_mhz), (Some(2412), Some(2412)));
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [3, 4, 5, 7, 8]);
        assert!(
            p.skipped[3].reason.contains("bad channel number"),
            "{}",
            p.skipped[3].reason
        );
        assert!(
            p.skipped[3].reason.contains("bad width"),
            "{}",
            p.skipped[3].reason
        );
    }

    #[test]
    fn bad_phy_header_does_not_leak_previous_phy() {
        let p = parse("phy#1\nInterface a\nphy#x\nInterface b\n").unwrap();
        assert_eq!(p.value[0].phy, Some(1));
        assert_eq!(p.value[1].phy, None);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 3);
    }

    #[test]
    fn mld_keeps_every_link_and_unused_lines_are_listed() {
        let p = parse(&own_fixture("iw/iw-dev-mld.txt")).unwrap();
        assert_eq!(p.malformed().count(), 0, "{:?}", p.skipped);
        let names: Vec<&str> = p.value.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["ap-mld0", "phy0.0-ap0"]);
        let mld = &p.value[0];
        assert_eq!(
            (mld.iftype.clone(), mld.ssid.as_deref()),
            (WifiIfType::Ap, Some("Attic Wi-Fi 7"))
        );
        // No interface-level channel: a 160 MHz and a 320 MHz link are not one 160 MHz radio.
        assert_eq!(
            (mld.channel, mld.width_mhz, mld.txpower_dbm),
            (None, None, None)
        );
        let [l1, l2, l0] = &mld.links[..] else {
            panic!("{:?}", mld.links)
        };
        assert_eq!(
            *l1,
            WifiLink {
                link_id: 1,
                addr: Some(mac("02:1c:55:40:01:24")),
                channel: Some(36),
                freq_mhz: Some(5180),
                width_mhz: Some(160),
                center1_mhz: Some(5250),
                center2_mhz: None,
                txpower_dbm: Some(23.0),
            }
        );
        assert_eq!(
            (
                l2.link_id,
                l2.channel,
                l2.freq_mhz,
                l2.width_mhz,
                l2.center1_mhz,
                l2.txpower_dbm
            ),
            (2, Some(37), Some(6135), Some(320), Some(6265), Some(21.5))
        );
        // A link that is set up but not active: ID and address only.
        assert_eq!(
            (l0.link_id, l0.addr, l0.channel, l0.txpower_dbm),
            (0, Some(mac("02:1c:55:40:00:26")), None, None)
        );
        let plain = &p.value[1];
        assert!(plain.links.is_empty());
        assert_eq!(
            (plain.channel, plain.width_mhz, plain.txpower_dbm),
            (Some(6), Some(20), Some(20.0))
        );
        let notes: Vec<String> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            notes,
            [
                "line 2: not used: non-netdev interface (type P2P-device, wdev 0x3): no netdev to read",
                "line 12: not used: multicast TXQ statistics",
                "line 31: not used: \"4addr: on\"",
            ]
        );
        assert_eq!(p.state(), routerstats_shared::SourceState::Ok);
    }

    #[test]
    fn mld_link_lines_and_their_errors() {
        let text = "Interface wlan0\n\ttype managed\n\tMLD with links:\n\t - link ID x link addr 02:00:00:00:00:01\n\
                    \t   channel 6 (2437 MHz), width: 20 MHz, center1: 2437 MHz\n\t - link ID 3\n\
                    \t   channel 37 (6135 MHz), width: 320 MHz, center1: 6105 MHz\n\t   txpower 22.00 dBm\n\
                    \t - link ID 4 link addr nope\n\t   txpower 1.00 dBm\n";
        let p = parse(text).unwrap();
        let i = &p.value[0];
        // The bad links' lines are dropped, never moved to a neighbour or the interface.
        assert_eq!((i.channel, i.txpower_dbm), (None, None));
        assert_eq!(i.links.len(), 1);
        assert_eq!(
            (
                i.links[0].link_id,
                i.links[0].addr,
                i.links[0].width_mhz,
                i.links[0].txpower_dbm
            ),
            (3, None, Some(320), Some(22.0))
        );
        let lines: Vec<usize> = p.malformed().map(|s| s.line).collect();
        assert_eq!(lines, [4, 9]);
        // Link lines outside an MLD section are not links.
        let p = parse("Interface wlan0\n\t - link ID 1\n\tchannel 1 (2412 MHz)\n").unwrap();
        assert!(p.value[0].links.is_empty());
        assert_eq!(p.value[0].channel, Some(1));
        // A new interface ends the MLD section.
        let p = parse(
            "Interface a\n\tMLD with links:\n\t - link ID 1\nInterface b\n\tchannel 1 (2412 MHz)\n",
        )
        .unwrap();
        assert_eq!((p.value[0].links.len(), p.value[1].channel), (1, Some(1)));
    }

    #[test]
    fn unnamed_interface_fields_do_not_leak() {
        let text = "phy#0\n\tUnnamed/non-netdev interface\n\t\twdev 0x2\n\t\ttype P2P-device\n\
                    \tInterface wlan0\n\t\twdev 0x1\n\t\ttype managed\n";
        let p = parse(text).unwrap();
        assert_eq!(p.value.len(), 1);
        assert_eq!(p.value[0].wdev, Some(1));
        assert_eq!(p.malformed().count(), 0);
        assert_eq!(p.skipped.len(), 1);
        assert!(
            p.skipped[0].reason.contains("P2P-device, wdev 0x2"),
            "{:?}",
            p.skipped
        );
        // Also when it is the last block.
        let p = parse("Interface wlan0\n\ttype AP\nUnnamed/non-netdev interface\n\twdev 0x9\n")
            .unwrap();
        assert!(
            p.skipped[0].reason.contains("type unknown, wdev 0x9"),
            "{:?}",
            p.skipped
        );
    }

    #[test]
    fn fields_before_any_interface_are_reported() {
        let p = parse("\t\tifindex 3\nInterface wlan0\n\ttype AP\n").unwrap();
        assert_eq!(p.value.len(), 1);
        assert_eq!(p.value[0].ifindex, None);
        assert_eq!(p.skipped.len(), 1);
    }

    #[test]
    fn empty_and_garbage_are_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse(" \n\t\n"), Err(ParseError::Empty));
        assert!(matches!(
            parse("hello world\n"),
            Err(ParseError::Invalid(_))
        ));
        assert!(
            matches!(parse("Interface \n"), Err(ParseError::Invalid(m)) if m.contains("without a name"))
        );
    }

    /// Writes an executable shell script standing in for `iw`.
    fn fake_iw(dir: &std::path::Path, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Runs `read`, retrying while the fresh script is still "text file busy" (ETXTBSY: another
    /// test thread forked while the script was open for writing).
    fn read_retrying(iw: &str) -> Result<Parsed<Vec<WirelessInterface>>, SourceError> {
        for _ in 0..50 {
            match read(iw) {
                Err(SourceError::Read(ReadError::Spawn { err, .. }))
                    if err.raw_os_error() == Some(26) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
        read(iw)
    }

    #[test]
    fn read_runs_iw_dev() {
        let dir = tempfile::tempdir().unwrap();
        let iw = fake_iw(
            dir.path(),
            "iw",
            "[ \"$1\" = dev ] || exit 2\nprintf 'phy#0\\n\\tInterface wlan0\\n\\t\\ttype AP\\n'",
        );
        let p = read_retrying(&iw).unwrap();
        assert_eq!(p.value[0].name, "wlan0");
        assert_eq!(p.value[0].iftype, WifiIfType::Ap);
        let empty = fake_iw(dir.path(), "iw-empty", "exit 0");
        assert!(read_retrying(&empty).unwrap().value.is_empty());
        let garbage = fake_iw(dir.path(), "iw-garbage", "echo nothing useful");
        assert!(matches!(
            read_retrying(&garbage),
            Err(SourceError::Parse(ParseError::Invalid(_)))
        ));
        let failing = fake_iw(
            dir.path(),
            "iw-fail",
            "echo 'nl80211 not found.' >&2; exit 1",
        );
        assert!(matches!(
            read_retrying(&failing),
            Err(SourceError::Read(ReadError::Failed { .. }))
        ));
        let missing = read("/nonexistent/routerstats-iw");
        assert!(matches!(
            missing,
            Err(SourceError::Read(ReadError::ToolMissing(_)))
        ));
    }

    /// Whether a shared iw fixture is `iw dev` output (the station dumps never have these lines).
    fn is_iw_dev_text(text: &str) -> bool {
        text.lines()
            .map(str::trim)
            .any(|l| l.starts_with("Interface ") || l.starts_with("phy#"))
    }

    #[test]
    fn shared_iw_dev_fixtures() {
        let mut seen = 0;
        for (name, text) in shared_fixtures_in("iw") {
            if !is_iw_dev_text(&text) {
                continue;
            }
            seen += 1;
            let p = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.malformed().count(), 0, "{name}: {:?}", p.skipped);
            let expected = match name.as_str() {
                "doc-tomesh-iwdev-meshpoint-plus-AP-2phy-txpower-MDINDENT.txt" => 2,
                "gotest-openmanet-iwdev-halow-meshpoint-plus-AP-TRIMMED.txt" => 2,
                "issue-mwlwifi68-iwdev-2phy-AP-old-iw.txt" => 2,
                "iwdev-info-blog2016-mesh-point-noHT.txt" => 1,
                other => panic!("unexpected iw dev fixture {other}: add its expectations"),
            };
            assert_eq!(p.value.len(), expected, "{name}");
        }
        assert_eq!(seen, 4);
    }

    #[test]
    fn shared_tomesh_mdindent_values() {
        let p = parse(&shared_fixture(
            "iw/doc-tomesh-iwdev-meshpoint-plus-AP-2phy-txpower-MDINDENT.txt",
        ))
        .unwrap();
        let [a, b] = &p.value[..] else {
            panic!("{:?}", p.value)
        };
        assert_eq!(
            (a.phy, a.name.as_str(), a.ifindex, a.wdev),
            (Some(0), "wlan1", Some(4), Some(1))
        );
        assert_eq!(a.iftype, WifiIfType::MeshPoint);
        assert_eq!(a.addr, Some(mac("84:16:f9:10:76:56")));
        assert_eq!(
            (a.channel, a.freq_mhz, a.width_mhz, a.center1_mhz),
            (Some(1), Some(2412), Some(40), Some(2422))
        );
        assert_eq!(a.txpower_dbm, Some(20.0));
        assert_eq!(a.ssid, None);
        assert_eq!(
            (b.phy, b.name.as_str(), b.wdev),
            (Some(1), "wlan0", Some(0x1_0000_0001))
        );
        assert_eq!(b.ssid.as_deref(), Some("bloor"));
        assert_eq!(b.iftype, WifiIfType::Ap);
        assert_eq!(b.txpower_dbm, Some(31.0));
    }

    #[test]
    fn shared_openmanet_values() {
        let p = parse(&shared_fixture(
            "iw/gotest-openmanet-iwdev-halow-meshpoint-plus-AP-TRIMMED.txt",
        ))
        .unwrap();
        let [a, b] = &p.value[..] else {
            panic!("{:?}", p.value)
        };
        assert_eq!(
            (a.name.as_str(), a.channel, a.freq_mhz, a.center1_mhz),
            ("wlan2", Some(108), Some(5540), Some(5550))
        );
        assert_eq!(a.txpower_dbm, Some(24.0));
        assert_eq!((b.name.as_str(), b.phy), ("wlan3", Some(1)));
        assert_eq!(b.ssid.as_deref(), Some("MANET-EUD-6773d442"));
        assert_eq!(b.txpower_dbm, Some(5.0));
        assert_eq!(b.addr, Some(mac("2c:cf:67:73:d4:43")));
    }

    #[test]
    fn shared_old_iw_values() {
        let p = parse(&shared_fixture(
            "iw/issue-mwlwifi68-iwdev-2phy-AP-old-iw.txt",
        ))
        .unwrap();
        let [a, b] = &p.value[..] else {
            panic!("{:?}", p.value)
        };
        assert_eq!(
            (a.phy, a.name.as_str(), a.ssid.as_deref()),
            (Some(1), "wlan1", Some("Hotspot"))
        );
        assert_eq!(
            (a.channel, a.freq_mhz, a.width_mhz, a.center1_mhz),
            (Some(149), Some(5745), Some(80), Some(5775))
        );
        assert_eq!(a.txpower_dbm, None);
        assert_eq!(
            (b.phy, b.name.as_str(), b.ssid.as_deref()),
            (Some(0), "wlan0", Some("Hotspot_2Ghz"))
        );
        assert_eq!((b.width_mhz, b.center1_mhz), (Some(40), Some(2452)));
    }

    #[test]
    fn shared_info_no_ht_values() {
        let p = parse(&shared_fixture(
            "iw/iwdev-info-blog2016-mesh-point-noHT.txt",
        ))
        .unwrap();
        let i = &p.value[0];
        assert_eq!(
            (i.phy, i.name.as_str(), i.ifindex),
            (Some(0), "wlan0", Some(3))
        );
        assert_eq!(i.iftype, WifiIfType::MeshPoint);
        assert_eq!(
            (i.channel, i.freq_mhz, i.width_mhz, i.center1_mhz),
            (Some(1), Some(2412), Some(20), Some(2412))
        );
    }

    fn corpus() -> &'static Vec<String> {
        static CORPUS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        CORPUS.get_or_init(|| {
            let mut v: Vec<String> = shared_fixtures_in("iw")
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            v.push(own_fixture("iw/iw-dev.txt"));
            v.push(own_fixture("iw/iw-dev-mld.txt"));
            v
        })
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn iw_like_tokens_never_panic(parts in prop::collection::vec(prop::sample::select(vec![
            "phy#", "phy#1", "Interface ", "wlan0", "\n", "\t", " ", "ifindex ", "wdev ", "0x", "addr ",
            "ssid ", "type ", "channel ", "(", ")", "MHz", ", width: ", "center1: ", "center2: ",
            "txpower ", "dBm", "1", "-", ".", "80+80", "ü", "wiphy ", "Unnamed/non-netdev interface",
            "MLD with links:", " - link ID ", " link addr ", "02:00:00:00:00:01", "multicast TXQ:", "qsz-byt",
        ]), 0..60)) {
            let _ = parse(&parts.concat());
        }

        #[test]
        fn every_generated_mld_link_is_kept(
            links in prop::collection::vec((0u8..15, any::<[u8; 6]>(), prop::option::of((1u32..234, 2400u32..7200, prop::sample::select(vec![20u32, 40, 80, 160, 320]))), prop::option::of(0u8..40)), 0..6),
            indent in prop::sample::select(vec!["\t\t", "        ", "\t        "]),
        ) {
            let mut text = format!("phy#1\n\tInterface ap-mld0\n{indent}type AP\n{indent}MLD with links:\n");
            for (id, addr, chan, power) in &links {
                text.push_str(&format!("{indent} - link ID {id:2} link addr {}\n", MacAddr(*addr)));
                if let Some((c, f, w)) = chan {
                    text.push_str(&format!("{indent}   channel {c} ({f} MHz), width: {w} MHz, center1: {f} MHz\n"));
                }
                if let Some(pw) = power {
                    text.push_str(&format!("{indent}   txpower {pw}.00 dBm\n"));
                }
            }
            let p = parse(&text).unwrap();
            prop_assert_eq!(p.skipped.len(), 0);
            let got = &p.value[0].links;
            prop_assert_eq!(got.len(), links.len());
            for (link, (id, addr, chan, power)) in got.iter().zip(&links) {
                prop_assert_eq!(link.link_id, *id);
                prop_assert_eq!(link.addr, Some(MacAddr(*addr)));
                prop_assert_eq!(link.channel, chan.map(|c| c.0));
                prop_assert_eq!(link.freq_mhz, chan.map(|c| c.1));
                prop_assert_eq!(link.width_mhz, chan.map(|c| c.2));
                prop_assert_eq!(link.txpower_dbm, power.map(f32::from));
            }
            prop_assert_eq!(p.value[0].channel, None);
        }

        #[test]
        fn truncated_fixtures_never_panic(file in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
            let text = file.get(corpus());
            let chars: Vec<char> = text.chars().collect();
            let n = cut.index(chars.len() + 1);
            let truncated: String = chars.iter().take(n).collect();
            if let Ok(p) = parse(&truncated) {
                prop_assert!(!p.value.is_empty());
            }
        }
    }
}
