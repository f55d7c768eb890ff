//! Parser for `iw dev <if> station dump` (and `station get`) output: one [`Station`] per
//! `Station <mac> (on <if>)` block, with counters, signal, bitrates, flags, mesh peer link
//! fields and the per-link sections of MLO stations.
//!
//! Every line is trimmed and split at its first `:`, so tabs, spaces, an extra leading tab and
//! keys glued to their values (`beacon interval:100`, `last ack signal:-95 dBm`) all parse.
//! Field order does not matter. A line the parser does not use (`beacon interval`, `DTIM
//! period`, `associated at [boottime]`, keys of newer iw versions, lines without a key) is listed
//! with [`Parsed::unused`], by its key; a known key with a malformed value is reported with
//! [`Parsed::skip`] and the rest of the station is kept. Values are kept as
//! printed: positive dBm from buggy drivers, an `inactive time` that wrapped at 2^32.
//!
//! Choices:
//! - `(on <if>)` in the header names the interface; the `interface` argument is the fallback.
//! - A body without a `Station <mac>` header (`station get` output cut above its first line)
//!   has no MAC: [`parse`] drops it with a skip reason, [`parse_station_get`] takes the MAC the
//!   caller asked for and keeps it.
//! - A truncated dump keeps every complete station plus the fields of the cut-off last one that
//!   were read (its MAC is known from its header, and every counter read is a real value).
//! - A key repeated within one station: the last value wins. Within `Link N:` sections the
//!   counters go to that link; station-level fields repeated there (`connected time`,
//!   `associated at`) do not override the station's own.
//! - `expected throughput` is printed by iw as `thr / 1000` `.` `thr % 1000` without zero
//!   padding (`20.49Mbps` is 20049), so the digits after the dot are read as the remainder.
//! - A bare `MCS n` (802.11n) with n <= 31 implies `n / 8 + 1` spatial streams; a bitrate of
//!   `(unknown)` has `kbps` 0.
//! - A bitrate without a width token is 20 MHz: iw prints a width only for 40 MHz and up (the
//!   kernel has no 20 MHz flag), so `width_mhz` is `Some(20)`; except with `HE-RU-ALLOC` or
//!   `EHT-RU-ALLOC`, where the rate is a resource unit, not a channel width (`None`).
//! - Airtime: `tx duration`/`rx duration` (microseconds) and `airtime weight` go to the
//!   station's or the link's stats like the other counters; `current time` (the router's clock
//!   when iw printed the station) and the mesh gate/auth-server flags are station fields.

use routerstats_shared::{
    Bitrate, MacAddr, MeshPeer, Preamble, Signal, Station, StationLink, StationLinkStats,
    WifiStandard,
};

use super::{run_command, ParseError, Parsed, SourceError};

/// Runs `<iw> dev <interface> station dump` and parses it. A successful run that prints
/// nothing means no station is associated: that is an empty list, not an error.
pub fn read(iw: &str, interface: &str) -> Result<Parsed<Vec<Station>>, SourceError> {
    let text = run_command(iw, &["dev", interface, "station", "dump"])?;
    if text.trim().is_empty() {
        return Ok(Parsed::new(Vec::new()));
    }
    Ok(parse(&text, interface)?)
}

/// Parses station dump text. `interface` is used for stations whose header lacks `(on <if>)`.
/// Returns `Err` only when no station was found.
pub fn parse(text: &str, interface: &str) -> Result<Parsed<Vec<Station>>, ParseError> {
    parse_with(text, interface, None)
}

/// Parses `iw dev <interface> station get <mac>` output. Fields before any `Station` header
/// belong to the station `mac`; blocks with a header are parsed as in [`parse`].
pub fn parse_station_get(
    text: &str,
    interface: &str,
    mac: MacAddr,
) -> Result<Parsed<Vec<Station>>, ParseError> {
    parse_with(text, interface, Some(mac))
}

fn parse_with(
    text: &str,
    interface: &str,
    headerless_mac: Option<MacAddr>,
) -> Result<Parsed<Vec<Station>>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut out = Parsed::new(Vec::new());
    let mut target = Target::None;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(("Station", rest)) = line.split_once(char::is_whitespace) {
            target.finish(&mut out);
            target = match parse_header(rest, interface) {
                Ok((mac, ifname)) => Target::Open(Box::new(Open::new(mac, ifname, line_no, true))),
                Err(reason) => {
                    out.skip(line_no, reason);
                    Target::Discard
                }
            };
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            out.unused(line_no, format!("line without a key {:?}", short(line)));
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        let Some(field) = Field::from_key(&key) else {
            out.unused(line_no, format!("{:?}", short(&key)));
            continue;
        };

        if matches!(target, Target::None) {
            // Fields before any header: a header-less `station get` body.
            let mac = headerless_mac.unwrap_or_default();
            target = Target::Open(Box::new(Open::new(
                mac,
                interface.to_string(),
                line_no,
                headerless_mac.is_some(),
            )));
        }
        let Target::Open(open) = &mut target else {
            continue;
        };
        if let Err(reason) = open.apply(field, &key, value) {
            out.skip(line_no, format!("{key}: {reason}"));
        }
    }
    target.finish(&mut out);

    if out.value.is_empty() {
        return Err(out.nothing_usable("no usable `Station <mac>` block"));
    }
    Ok(out)
}

/// Where field lines go.
enum Target {
    /// Before the first header.
    None,
    Open(Box<Open>),
    /// After a malformed header: fields up to the next header are dropped.
    Discard,
}

impl Target {
    /// Moves the station being filled into the output (or reports a header-less one).
    fn finish(&mut self, out: &mut Parsed<Vec<Station>>) {
        if let Target::Open(open) = std::mem::replace(self, Target::Discard) {
            if open.mac_known {
                out.value.push(open.station);
            } else {
                out.skip(
                    open.first_line,
                    "station fields without a `Station <mac> (on <if>)` header (station get output?): \
                     MAC unknown, dropped",
                );
            }
        }
    }
}

/// A station being filled.
struct Open {
    station: Station,
    /// The header line, or the first field line of a header-less body.
    first_line: usize,
    /// False for a header-less body parsed without a caller-given MAC.
    mac_known: bool,
    link: LinkCtx,
}

/// Whether the fields being read belong to an MLO `Link N:` section.
#[derive(PartialEq)]
enum LinkCtx {
    Station,
    /// The last entry of `station.links`.
    Link,
    /// A `Link` header with a bad id: its counters are dropped.
    BadLink,
}

/// The keys the parser knows.
#[derive(Clone, Copy)]
enum Field {
    Inactive,
    RxBytes,
    RxPackets,
    TxBytes,
    TxPackets,
    TxRetries,
    TxFailed,
    BeaconLoss,
    RxDropMisc,
    Signal,
    SignalAvg,
    LastAckSignal,
    TxBitrate,
    RxBitrate,
    ExpectedThroughput,
    Connected,
    Authorized,
    Authenticated,
    Associated,
    Wmm,
    Mfp,
    TdlsPeer,
    Preamble,
    Llid,
    Plid,
    Plink,
    AirtimeMetric,
    ConnectedToGate,
    ConnectedToAuthServer,
    AssociatedAt,
    CurrentTime,
    TxDuration,
    RxDuration,
    AirtimeWeight,
    LinkHeader,
    LinkAddress,
}

impl Field {
    /// Maps a lower-cased key to a field.
    fn from_key(key: &str) -> Option<Field> {
        Some(match key {
            "inactive time" => Field::Inactive,
            "rx bytes" => Field::RxBytes,
            "rx packets" => Field::RxPackets,
            "tx bytes" => Field::TxBytes,
            "tx packets" => Field::TxPackets,
            "tx retries" => Field::TxRetries,
            "tx failed" => Field::TxFailed,
            "beacon loss" => Field::BeaconLoss,
            "rx drop misc" => Field::RxDropMisc,
            "signal" => Field::Signal,
            "signal avg" => Field::SignalAvg,
            "last ack signal" => Field::LastAckSignal,
            "tx bitrate" => Field::TxBitrate,
            "rx bitrate" => Field::RxBitrate,
            "expected throughput" => Field::ExpectedThroughput,
            "connected time" => Field::Connected,
            "authorized" => Field::Authorized,
            "authenticated" => Field::Authenticated,
            "associated" => Field::Associated,
            "wmm/wme" => Field::Wmm,
            "mfp" => Field::Mfp,
            "tdls peer" => Field::TdlsPeer,
            "preamble" => Field::Preamble,
            "mesh llid" => Field::Llid,
            "mesh plid" => Field::Plid,
            "mesh plink" => Field::Plink,
            "mesh airtime link metric" => Field::AirtimeMetric,
            "mesh connected to gate" => Field::ConnectedToGate,
            "mesh connected to auth server" => Field::ConnectedToAuthServer,
            "associated at" => Field::AssociatedAt,
            "current time" => Field::CurrentTime,
            "tx duration" => Field::TxDuration,
            "rx duration" => Field::RxDuration,
            "airtime weight" => Field::AirtimeWeight,
            "address" => Field::LinkAddress,
            k if k.starts_with("link ") => Field::LinkHeader,
            _ => return None,
        })
    }
}

impl Open {
    fn new(mac: MacAddr, interface: String, first_line: usize, mac_known: bool) -> Self {
        Open {
            station: Station {
                mac,
                interface,
                ..Station::default()
            },
            first_line,
            mac_known,
            link: LinkCtx::Station,
        }
    }

    /// Applies one `key: value` line.
    fn apply(&mut self, field: Field, key: &str, value: &str) -> Result<(), String> {
        let in_link = self.link != LinkCtx::Station;
        let st = &mut self.station;
        match field {
            Field::LinkHeader => {
                let id = key.strip_prefix("link ").unwrap_or("").trim();
                match id.parse::<u8>() {
                    Ok(link_id) => {
                        st.links.push(StationLink {
                            link_id,
                            ..StationLink::default()
                        });
                        self.link = LinkCtx::Link;
                    }
                    Err(_) => {
                        self.link = LinkCtx::BadLink;
                        return Err(format!("bad link id {:?}", short(id)));
                    }
                }
            }
            Field::LinkAddress => {
                // `address:` only appears inside a link section.
                if let (LinkCtx::Link, Some(link)) = (&self.link, st.links.last_mut()) {
                    link.addr = Some(parse_mac(value)?);
                }
            }
            Field::Connected => put(&mut st.connected_s, first_u64(value)?, in_link),
            Field::AssociatedAt => put(&mut st.associated_at_ms, first_u64(value)?, in_link),
            Field::CurrentTime => put(&mut st.current_time_ms, first_u64(value)?, in_link),
            Field::ConnectedToGate => {
                st.mesh
                    .get_or_insert_with(MeshPeer::default)
                    .connected_to_gate = Some(yes_no(value)?)
            }
            Field::ConnectedToAuthServer => {
                st.mesh
                    .get_or_insert_with(MeshPeer::default)
                    .connected_to_auth_server = Some(yes_no(value)?)
            }
            Field::Authorized => put(&mut st.authorized, yes_no(value)?, in_link),
            Field::Authenticated => put(&mut st.authenticated, yes_no(value)?, in_link),
            Field::Associated => put(&mut st.associated, yes_no(value)?, in_link),
            Field::Wmm => put(&mut st.wmm, yes_no(value)?, in_link),
            Field::Mfp => put(&mut st.mfp, yes_no(value)?, in_link),
            Field::TdlsPeer => put(&mut st.tdls_peer, yes_no(value)?, in_link),
            Field::Preamble => {
                let p = match value.to_ascii_lowercase().as_str() {
                    "short" => Preamble::Short,
                    "long" => Preamble::Long,
                    _ => return Err(format!("expected short or long, got {:?}", short(value))),
                };
                put(&mut st.preamble, p, in_link);
            }
            Field::Llid => {
                st.mesh.get_or_insert_with(MeshPeer::default).llid = Some(first_u32(value)?)
            }
            Field::Plid => {
                st.mesh.get_or_insert_with(MeshPeer::default).plid = Some(first_u32(value)?)
            }
            Field::AirtimeMetric => {
                st.mesh.get_or_insert_with(MeshPeer::default).airtime_metric =
                    Some(first_u32(value)?)
            }
            Field::Plink => {
                if value.is_empty() {
                    return Err("empty peer link state".into());
                }
                st.mesh.get_or_insert_with(MeshPeer::default).plink = Some(short(value));
            }
            stat => {
                let stats = match self.link {
                    LinkCtx::Station => &mut st.stats,
                    LinkCtx::Link => match st.links.last_mut() {
                        Some(link) => &mut link.stats,
                        None => &mut st.stats,
                    },
                    LinkCtx::BadLink => return Ok(()),
                };
                apply_stat(stats, stat, value)?;
            }
        }
        Ok(())
    }
}

/// Sets `slot`, except that inside a link section a station-level value already read wins.
fn put<T>(slot: &mut Option<T>, value: T, in_link: bool) {
    if !(in_link && slot.is_some()) {
        *slot = Some(value);
    }
}

/// Sets one counter, signal or bitrate of a station or link.
fn apply_stat(stats: &mut StationLinkStats, field: Field, value: &str) -> Result<(), String> {
    match field {
        Field::Inactive => stats.inactive_ms = Some(first_u64(value)?),
        Field::RxBytes => stats.rx_bytes = Some(first_u64(value)?),
        Field::RxPackets => stats.rx_packets = Some(first_u64(value)?),
        Field::TxBytes => stats.tx_bytes = Some(first_u64(value)?),
        Field::TxPackets => stats.tx_packets = Some(first_u64(value)?),
        Field::TxRetries => stats.tx_retries = Some(first_u64(value)?),
        Field::TxFailed => stats.tx_failed = Some(first_u64(value)?),
        Field::BeaconLoss => stats.beacon_loss = Some(first_u64(value)?),
        Field::RxDropMisc => stats.rx_drop_misc = Some(first_u64(value)?),
        Field::Signal => stats.signal = Some(parse_signal(value)?),
        Field::SignalAvg => stats.signal_avg = Some(parse_signal(value)?),
        Field::LastAckSignal => stats.last_ack_signal_dbm = Some(parse_dbm(value)?),
        Field::TxBitrate => stats.tx_bitrate = Some(parse_bitrate(value)?),
        Field::RxBitrate => stats.rx_bitrate = Some(parse_bitrate(value)?),
        Field::ExpectedThroughput => {
            stats.expected_throughput_kbps = Some(parse_throughput(value)?)
        }
        Field::TxDuration => stats.tx_duration_us = Some(parse_us(value)?),
        Field::RxDuration => stats.rx_duration_us = Some(parse_us(value)?),
        Field::AirtimeWeight => {
            let tok = value.split_whitespace().next().unwrap_or("");
            stats.airtime_weight = Some(
                tok.parse()
                    .map_err(|_| format!("not a weight: {:?}", short(tok)))?,
            );
        }
        _ => {}
    }
    Ok(())
}

/// `<mac> (on <if>)` -> MAC and interface (the fallback when `(on ...)` is missing or empty).
fn parse_header(rest: &str, fallback_if: &str) -> Result<(MacAddr, String), String> {
    let rest = rest.trim();
    let (mac_text, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let mac = mac_text.parse::<MacAddr>().map_err(|_| {
        format!(
            "bad Station header: not a MAC address {:?}",
            short(mac_text)
        )
    })?;
    let iface = after
        .trim()
        .strip_prefix("(on ")
        .and_then(|r| r.split_once(')'))
        .map(|(name, _)| name.trim())
        .filter(|name| !name.is_empty())
        .unwrap_or(fallback_if);
    Ok((mac, iface.to_string()))
}

fn parse_mac(value: &str) -> Result<MacAddr, String> {
    let text = value.split_whitespace().next().unwrap_or("");
    text.parse()
        .map_err(|_| format!("not a MAC address: {:?}", short(text)))
}

fn first_u64(value: &str) -> Result<u64, String> {
    let tok = value.split_whitespace().next().unwrap_or("");
    tok.parse()
        .map_err(|_| format!("not a number: {:?}", short(tok)))
}

fn first_u32(value: &str) -> Result<u32, String> {
    let tok = value.split_whitespace().next().unwrap_or("");
    tok.parse()
        .map_err(|_| format!("not a number: {:?}", short(tok)))
}

/// `123456 us` -> 123456 (the unit, when printed, must be `us`).
fn parse_us(value: &str) -> Result<u64, String> {
    let mut toks = value.split_whitespace();
    let n = first_u64(value)?;
    toks.next();
    match toks.next() {
        None | Some("us") if toks.next().is_none() => Ok(n),
        _ => Err(format!("expected microseconds, got {:?}", short(value))),
    }
}

fn yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("expected yes or no, got {:?}", short(value))),
    }
}

/// `-95 dBm` (a single value, kept as printed even when positive).
fn parse_dbm(value: &str) -> Result<i32, String> {
    let mut toks = value.split_whitespace();
    let num = toks.next().unwrap_or("");
    let dbm = num
        .parse()
        .map_err(|_| format!("not a dBm value: {:?}", short(num)))?;
    match toks.next() {
        None => Ok(dbm),
        Some(unit) if unit.eq_ignore_ascii_case("dBm") && toks.next().is_none() => Ok(dbm),
        Some(_) => Err(format!("unexpected text in {:?}", short(value))),
    }
}

/// `-90 [-92, -93, -95, -95] dBm`, `-36 [-36] dBm` or `-95 dBm`.
fn parse_signal(value: &str) -> Result<Signal, String> {
    let bad = || format!("not a signal: {:?}", short(value));
    let (num, rest) = match value.split_once(|c: char| c.is_whitespace() || c == '[') {
        // Put the `[` back when it was the separator.
        Some((n, r)) => (n, value.get(n.len()..).unwrap_or(r)),
        None => (value, ""),
    };
    let dbm: i32 = num.parse().map_err(|_| bad())?;
    let mut chains = Vec::new();
    let mut rest = rest.trim_start();
    if let Some(list) = rest.strip_prefix('[') {
        let (inner, after) = list.split_once(']').ok_or_else(bad)?;
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            chains.push(part.parse::<i32>().map_err(|_| bad())?);
        }
        rest = after;
    }
    let rest = rest.trim();
    if rest.is_empty() || rest.eq_ignore_ascii_case("dBm") {
        Ok(Signal { dbm, chains })
    } else {
        Err(bad())
    }
}

/// A bitrate line: `866.7 MBit/s VHT-MCS 9 80MHz short GI VHT-NSS 2`,
/// `1200.9 MBit/s 80MHz HE-MCS 11 HE-NSS 2 HE-GI 0 HE-DCM 0`, `54.0 MBit/s`, `(unknown)`.
/// Unknown words are ignored; a known word with a bad number fails the whole line.
fn parse_bitrate(value: &str) -> Result<Bitrate, String> {
    let mut toks = value.split_whitespace().peekable();
    let mut br = Bitrate::default();
    let first = toks.next().ok_or("empty bitrate")?;
    if first != "(unknown)" {
        let unit = toks.next().unwrap_or("");
        if !unit.eq_ignore_ascii_case("MBit/s") {
            return Err(format!("expected MBit/s in {:?}", short(value)));
        }
        let kbps = decimal_milli(first).ok_or_else(|| format!("not a rate: {:?}", short(first)))?;
        br.kbps = u32::try_from(kbps).map_err(|_| format!("rate too large: {:?}", short(first)))?;
    }
    let (mut ht, mut vht, mut he, mut eht) = (false, false, false, false);
    let mut resource_unit = false;
    while let Some(tok) = toks.next() {
        let mut number = |what: &str| -> Result<u8, String> {
            let n = toks.next().unwrap_or("");
            n.parse()
                .map_err(|_| format!("{what} without a number in {:?}", short(value)))
        };
        match tok {
            "MCS" => (br.mcs, ht) = (Some(number(tok)?), true),
            "VHT-MCS" => (br.mcs, vht) = (Some(number(tok)?), true),
            "HE-MCS" => (br.mcs, he) = (Some(number(tok)?), true),
            "EHT-MCS" => (br.mcs, eht) = (Some(number(tok)?), true),
            "NSS" => br.nss = Some(number(tok)?),
            "VHT-NSS" => (br.nss, vht) = (Some(number(tok)?), true),
            "HE-NSS" => (br.nss, he) = (Some(number(tok)?), true),
            "EHT-NSS" => (br.nss, eht) = (Some(number(tok)?), true),
            "HE-GI" => (br.gi, he) = (Some(number(tok)?), true),
            "EHT-GI" => (br.gi, eht) = (Some(number(tok)?), true),
            "HE-DCM" => (br.dcm, he) = (Some(number(tok)?), true),
            "HE-RU-ALLOC" => (_, he, resource_unit) = (number(tok)?, true, true),
            "EHT-RU-ALLOC" => (_, eht, resource_unit) = (number(tok)?, true, true),
            "short" => {
                if toks.next_if_eq(&"GI").is_some() {
                    br.short_gi = true;
                }
            }
            w => {
                if let Some(mhz) = w.strip_suffix("MHz") {
                    let width = if mhz.eq_ignore_ascii_case("80P80") {
                        Ok(160)
                    } else {
                        mhz.parse::<u16>()
                    };
                    br.width_mhz = Some(width.map_err(|_| format!("bad width {:?}", short(w)))?);
                }
            }
        }
    }
    br.standard = if eht {
        WifiStandard::Eht
    } else if he {
        WifiStandard::He
    } else if vht {
        WifiStandard::Vht
    } else if ht {
        WifiStandard::Ht
    } else {
        WifiStandard::Legacy
    };
    if br.width_mhz.is_none() && !resource_unit {
        br.width_mhz = Some(20);
    }
    if br.standard == WifiStandard::Ht && br.nss.is_none() {
        br.nss = br.mcs.filter(|m| *m <= 31).map(|m| m / 8 + 1);
    }
    Ok(br)
}

/// `25.882Mbps` -> 25882 kbps. iw prints `thr / 1000` and `thr % 1000` without zero padding,
/// so up to three digits after the dot are the remainder in kbps (`20.49Mbps` is 20049).
fn parse_throughput(value: &str) -> Result<u32, String> {
    let bad = || format!("not a throughput: {:?}", short(value));
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let num = value.get(..end).unwrap_or("");
    let unit = value.get(end..).unwrap_or("").trim();
    if !(unit.is_empty() || unit.eq_ignore_ascii_case("Mbps")) {
        return Err(bad());
    }
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    let kbps = if frac.len() <= 3 {
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let rem: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        whole.checked_mul(1000).and_then(|w| w.checked_add(rem))
    } else {
        decimal_milli(num)
    };
    kbps.and_then(|k| u32::try_from(k).ok()).ok_or_else(bad)
}

/// A plain decimal number (`1733.3`) times 1000, rounded half up; None when not a number.
fn decimal_milli(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) {
        return None;
    }
    let frac = frac.as_bytes();
    let digit = |i: usize| {
        frac.get(i)
            .and_then(|b| char::from(*b).to_digit(10))
            .map_or(0, u64::from)
    };
    let milli = digit(0) * 100 + digit(1) * 10 + digit(2) + u64::from(digit(3) >= 5);
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(1000)?
        .checked_add(milli)
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

    fn sig(dbm: i32, chains: &[i32]) -> Option<Signal> {
        Some(Signal {
            dbm,
            chains: chains.to_vec(),
        })
    }

    fn one(text: &str) -> Station {
        let p = parse(text, "wlan0").unwrap();
        assert_eq!(p.malformed().count(), 0, "{:?}", p.skipped);
        assert_eq!(p.value.len(), 1);
        p.value.into_iter().next().unwrap()
    }

    fn rate(line: &str) -> Bitrate {
        parse_bitrate(line).unwrap()
    }

    #[test]
    fn own_wlan0_three_stations() {
        let p = parse(&own_fixture("iw/station-dump-wlan0.txt"), "wlan0").unwrap();
        assert_eq!(p.malformed().count(), 0, "{:?}", p.skipped);
        let [ht, he, legacy] = &p.value[..] else {
            panic!("{:?}", p.value)
        };

        assert_eq!(ht.mac, mac("3c:22:fb:7a:10:01"));
        assert_eq!(ht.interface, "wlan0");
        assert_eq!(ht.stats.inactive_ms, Some(1250));
        assert_eq!(ht.stats.rx_bytes, Some(18_234_567));
        assert_eq!(ht.stats.tx_bytes, Some(254_678_901));
        assert_eq!(
            (
                ht.stats.tx_retries,
                ht.stats.tx_failed,
                ht.stats.rx_drop_misc
            ),
            (Some(3456), Some(12), Some(87))
        );
        assert_eq!(ht.stats.signal, sig(-52, &[-54, -55]));
        assert_eq!(ht.stats.signal_avg, sig(-51, &[-53, -54]));
        assert_eq!(ht.stats.last_ack_signal_dbm, Some(-53));
        let tx = ht.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (tx.kbps, tx.standard, tx.mcs, tx.nss, tx.short_gi),
            (144_400, WifiStandard::Ht, Some(15), Some(2), true)
        );
        assert_eq!(ht.stats.expected_throughput_kbps, Some(68_359));
        assert_eq!(ht.preamble, Some(Preamble::Short));
        assert_eq!(
            (ht.authorized, ht.authenticated, ht.associated),
            (Some(true), Some(true), Some(true))
        );
        assert_eq!(
            (ht.wmm, ht.mfp, ht.tdls_peer),
            (Some(true), Some(false), Some(false))
        );
        assert_eq!(ht.connected_s, Some(5123));
        assert_eq!(ht.associated_at_ms, Some(1_763_872_000_123));
        assert_eq!(ht.mesh, None);
        assert!(ht.links.is_empty());

        let tx = he.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (
                tx.kbps,
                tx.standard,
                tx.mcs,
                tx.nss,
                tx.gi,
                tx.dcm,
                tx.width_mhz
            ),
            (
                286_800,
                WifiStandard::He,
                Some(11),
                Some(2),
                Some(0),
                Some(0),
                Some(20)
            )
        );
        assert_eq!(he.stats.expected_throughput_kbps, Some(164_062));
        assert_eq!(he.mfp, Some(true));

        let tx = legacy.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (tx.kbps, tx.standard, tx.mcs, tx.nss),
            (54_000, WifiStandard::Legacy, None, None)
        );
        assert_eq!(legacy.stats.rx_bitrate.as_ref().map(|b| b.kbps), Some(1000));
        assert_eq!(legacy.preamble, Some(Preamble::Long));
        assert_eq!(legacy.wmm, Some(false));
        assert_eq!(legacy.stats.inactive_ms, Some(28_740));
    }

    #[test]
    fn own_wlan1_he_and_vht() {
        let p = parse(&own_fixture("iw/station-dump-wlan1.txt"), "wlan1").unwrap();
        assert_eq!(p.malformed().count(), 0, "{:?}", p.skipped);
        let [he, vht] = &p.value[..] else {
            panic!("{:?}", p.value)
        };
        assert_eq!(he.mac, mac("6c:7e:67:a1:b2:c3"));
        assert_eq!(he.stats.rx_bytes, Some(48_213_456_789));
        assert_eq!(he.stats.tx_bytes, Some(131_972_345_123));
        let tx = he.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (tx.kbps, tx.standard, tx.mcs, tx.nss, tx.width_mhz, tx.gi),
            (
                1_201_000,
                WifiStandard::He,
                Some(11),
                Some(2),
                Some(80),
                Some(0)
            )
        );
        assert_eq!(he.stats.expected_throughput_kbps, Some(761_718));
        let rx = vht.stats.rx_bitrate.as_ref().unwrap();
        assert_eq!(
            (
                rx.kbps,
                rx.standard,
                rx.mcs,
                rx.nss,
                rx.width_mhz,
                rx.short_gi
            ),
            (650_000, WifiStandard::Vht, Some(7), Some(2), Some(80), true)
        );
        assert_eq!(vht.stats.signal_avg, sig(-62, &[-64, -66]));
    }

    #[test]
    fn own_mesh0_peer() {
        let s = parse(&own_fixture("iw/station-dump-mesh0.txt"), "mesh0")
            .unwrap()
            .value;
        assert_eq!(s.len(), 1);
        let peer = &s[0];
        assert_eq!(
            (peer.mac, peer.interface.as_str()),
            (mac("96:83:c4:5e:6f:71"), "mesh0")
        );
        assert_eq!(
            peer.mesh,
            Some(MeshPeer {
                llid: Some(17543),
                plid: Some(40211),
                plink: Some("ESTAB".into()),
                airtime_metric: Some(171),
                connected_to_gate: Some(false),
                connected_to_auth_server: Some(false),
            })
        );
        assert_eq!(peer.stats.rx_bytes, Some(9_123_456_789));
        let rx = peer.stats.rx_bitrate.as_ref().unwrap();
        assert_eq!((rx.kbps, rx.short_gi, rx.nss), (702_000, false, Some(2)));
    }

    #[test]
    fn mlo_links_get_their_own_counters() {
        let p = parse(&own_fixture("iw/station-dump-mlo-wlan2.txt"), "wlan2").unwrap();
        assert_eq!(p.malformed().count(), 0, "{:?}", p.skipped);
        let st = &p.value[0];
        assert_eq!(st.interface, "wlan2");
        assert_eq!(st.stats.rx_bytes, Some(912_345_678));
        assert_eq!(st.stats.signal, None);
        // The link's own `connected time` does not override the station's.
        assert_eq!(st.connected_s, Some(812));
        assert_eq!(st.mfp, Some(true));
        let [l0, l1] = &st.links[..] else {
            panic!("{:?}", st.links)
        };
        assert_eq!((l0.link_id, l0.addr), (0, Some(mac("5a:11:22:33:44:56"))));
        assert_eq!(l0.stats.rx_bytes, Some(512_345_678));
        assert_eq!(l0.stats.signal, sig(-41, &[-43, -44]));
        assert_eq!(l0.stats.last_ack_signal_dbm, Some(-42));
        let tx = l0.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (tx.kbps, tx.standard, tx.mcs, tx.nss, tx.width_mhz, tx.gi),
            (
                2_882_400,
                WifiStandard::Eht,
                Some(13),
                Some(2),
                Some(160),
                Some(0)
            )
        );
        assert_eq!((l1.link_id, l1.addr), (1, Some(mac("5a:11:22:33:44:57"))));
        assert_eq!(l1.stats.tx_failed, Some(1));
        assert_eq!(
            l1.stats.tx_bitrate.as_ref().map(|b| (b.kbps, b.width_mhz)),
            Some((5_764_700, Some(320)))
        );
    }

    #[test]
    fn airtime_current_time_and_unused_lines() {
        let p = parse(&own_fixture("iw/station-dump-airtime.txt"), "x").unwrap();
        assert_eq!(p.malformed().count(), 0, "{:?}", p.skipped);
        let [a, mlo] = &p.value[..] else {
            panic!("{:?}", p.value)
        };
        assert_eq!(a.interface, "phy1-ap0");
        assert_eq!(
            (
                a.stats.tx_duration_us,
                a.stats.rx_duration_us,
                a.stats.airtime_weight
            ),
            (Some(91_833_120), Some(4_018_230), Some(256))
        );
        assert_eq!(a.current_time_ms, Some(1_764_993_620_450));
        assert_eq!(a.stats.tx_bitrate.as_ref().unwrap().width_mhz, Some(20));
        assert_eq!(a.stats.rx_bitrate.as_ref().unwrap().width_mhz, None);
        // Every line the parser does not use is listed, by its key, without making the source partial.
        let notes: Vec<String> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            notes,
            [
                "line 17: not used: \"avg ack signal\"",
                "line 27: not used: \"dtim period\"",
                "line 28: not used: \"beacon interval\"",
                "line 29: not used: \"short slot time\"",
                "line 31: not used: \"associated at [boottime]\"",
            ]
        );
        assert_eq!(p.state(), routerstats_shared::SourceState::Ok);
        // Multi-link: the station's totals and each link's own airtime.
        assert_eq!(
            (mlo.stats.tx_duration_us, mlo.stats.airtime_weight),
            (Some(5100), Some(512))
        );
        assert_eq!(mlo.current_time_ms, Some(1_764_993_620_451));
        let airtime: Vec<_> = mlo
            .links
            .iter()
            .map(|l| (l.link_id, l.stats.tx_duration_us, l.stats.rx_duration_us))
            .collect();
        assert_eq!(
            airtime,
            [(1, Some(4000), Some(1500)), (2, Some(1100), Some(800))]
        );
    }

    #[test]
    fn mesh_gate_flags_and_bad_airtime_values() {
        let st = one("Station 02:00:00:00:00:01 (on mesh0)\n\tmesh plink:\tESTAB\n\tmesh connected to gate:\tyes\n\tmesh connected to auth server:\tno\n");
        let mesh = st.mesh.unwrap();
        assert_eq!(
            (mesh.connected_to_gate, mesh.connected_to_auth_server),
            (Some(true), Some(false))
        );
        let p = parse(
            "Station 02:00:00:00:00:01 (on wlan0)\n\ttx duration:\t5 ms\n\trx duration:\tlots us\n\tairtime weight: 70000\n\
             \tmesh connected to gate:\tmaybe\n\tcurrent time:\tnow\n\ttx duration:\t7\n",
            "wlan0",
        )
        .unwrap();
        let lines: Vec<usize> = p.malformed().map(|s| s.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6]);
        // A bare number is taken as microseconds.
        assert_eq!(p.value[0].stats.tx_duration_us, Some(7));
        assert_eq!(
            (p.value[0].stats.airtime_weight, p.value[0].current_time_ms),
            (None, None)
        );
    }

    #[test]
    fn bad_link_id_drops_that_links_counters() {
        let p = parse("Station 02:00:00:00:00:01 (on wlan0)\n\trx bytes:\t5\n\tLink x:\n\t\trx bytes:\t9\n\tLink 3:\n\t\trx bytes:\t7\n", "wlan0").unwrap();
        let st = &p.value[0];
        assert_eq!(st.stats.rx_bytes, Some(5));
        assert_eq!(st.links.len(), 1);
        assert_eq!(
            (st.links[0].link_id, st.links[0].stats.rx_bytes),
            (3, Some(7))
        );
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 3);
    }

    #[test]
    fn header_interface_overrides_argument() {
        let st = one("Station 02:00:00:00:00:01 (on wlan1-1)\n\trx bytes:\t1\n");
        assert_eq!(st.interface, "wlan1-1");
        let st = one("Station 02:00:00:00:00:01\n\trx bytes:\t1\n");
        assert_eq!(st.interface, "wlan0");
    }

    #[test]
    fn separators_and_indentation_vary() {
        let tabs = "Station 02:00:00:00:00:01 (on wlan0)\n\tinactive time:\t5 ms\n\tsignal:  \t-40 [-41, -42] dBm\n\tlast ack signal:-44 dBm\n";
        let spaces = "Station 02:00:00:00:00:01 (on wlan0)\n    inactive time:  5 ms\n    signal:    -40 [-41, -42] dBm\n    last ack signal:-44 dBm\n";
        let md = "\tStation 02:00:00:00:00:01 (on wlan0)\n\t        inactive time:  5 ms\n\t        signal:         -40 [-41, -42] dBm\n\t        last ack signal:-44 dBm\n";
        let glued = "Station 02:00:00:00:00:01 (on wlan0)\ninactive time:5 ms\nsignal:-40 [-41,-42]dBm\nlast ack signal:-44 dBm\n";
        let a = one(tabs);
        assert_eq!(a.stats.inactive_ms, Some(5));
        assert_eq!(a.stats.signal, sig(-40, &[-41, -42]));
        assert_eq!(a.stats.last_ack_signal_dbm, Some(-44));
        for other in [spaces, md, glued] {
            assert_eq!(one(other), a, "{other:?}");
        }
    }

    #[test]
    fn field_order_does_not_matter_and_unknown_keys_are_ignored() {
        let a = one("Station 02:00:00:00:00:01 (on wlan0)\n\tmesh plink:\tESTAB\n\tauthorized:\tyes\n\trx bytes:\t7\n\tfuture field:\t42 zorks\n\tbeacon interval:100\n\tshort slot time:yes\n");
        let b = one("Station 02:00:00:00:00:01 (on wlan0)\n\trx bytes:\t7\n\tauthorized:\tyes\n\tmesh plink:\tESTAB\n");
        assert_eq!(a, b);
        assert_eq!(
            a.mesh.as_ref().and_then(|m| m.plink.as_deref()),
            Some("ESTAB")
        );
    }

    #[test]
    fn mesh_only_for_mesh_peers() {
        let st = one(
            "Station 02:00:00:00:00:01 (on wlan0)\n\trx bytes:\t7\n\tmesh local PS mode:\tACTIVE\n",
        );
        assert_eq!(st.mesh, None);
        let st = one("Station 02:00:00:00:00:01 (on mesh0)\n\tmesh llid:\t0\n\tmesh plid:\t0\n");
        assert_eq!(
            st.mesh,
            Some(MeshPeer {
                llid: Some(0),
                plid: Some(0),
                plink: None,
                airtime_metric: None,
                ..MeshPeer::default()
            })
        );
    }

    #[test]
    fn wrapped_and_positive_values_kept_as_printed() {
        let st = one("Station 02:00:00:00:00:01 (on wlan0)\n\tinactive time:\t4294967295 ms\n\tsignal:  \t59 [59, 56] dBm\n\tsignal avg:\t-8 [-8, 11] dBm\n\tlast ack signal:3 dBm\n\tToffset:\t-262757995 us\n");
        assert_eq!(st.stats.inactive_ms, Some(4_294_967_295));
        assert_eq!(st.stats.signal, sig(59, &[59, 56]));
        assert_eq!(st.stats.signal_avg, sig(-8, &[-8, 11]));
        assert_eq!(st.stats.last_ack_signal_dbm, Some(3));
    }

    #[test]
    fn signal_chain_lists_of_one_to_four() {
        assert_eq!(
            parse_signal("-95 dBm").unwrap(),
            Signal {
                dbm: -95,
                chains: vec![]
            }
        );
        assert_eq!(
            parse_signal("-36 [-36] dBm").unwrap(),
            Signal {
                dbm: -36,
                chains: vec![-36]
            }
        );
        assert_eq!(
            parse_signal("-25 [-28, -30, -33] dBm").unwrap().chains,
            [-28, -30, -33]
        );
        assert_eq!(
            parse_signal("-90 [-92, -93, -95, -95] dBm").unwrap().chains,
            [-92, -93, -95, -95]
        );
        assert_eq!(
            parse_signal("-70").unwrap(),
            Signal {
                dbm: -70,
                chains: vec![]
            }
        );
        for bad in [
            "",
            "dBm",
            "-40 [-41, x] dBm",
            "-40 [-41 dBm",
            "-40 dBm extra",
            "--4 dBm",
        ] {
            assert!(parse_signal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bitrates_of_every_generation() {
        let b = rate("48.0 MBit/s");
        assert_eq!(
            (b.kbps, b.standard, b.mcs, b.nss, b.width_mhz, b.short_gi),
            (48_000, WifiStandard::Legacy, None, None, Some(20), false)
        );
        let b = rate("6.5 MBit/s MCS 0");
        assert_eq!(
            (b.kbps, b.standard, b.mcs, b.nss),
            (6_500, WifiStandard::Ht, Some(0), Some(1))
        );
        let b = rate("300.0 MBit/s MCS 15 40MHz short GI");
        assert_eq!(
            (b.standard, b.mcs, b.nss, b.width_mhz, b.short_gi),
            (WifiStandard::Ht, Some(15), Some(2), Some(40), true)
        );
        let b = rate("1733.3 MBit/s VHT-MCS 9 160MHz short GI VHT-NSS 2");
        assert_eq!(
            (b.kbps, b.standard, b.mcs, b.nss, b.width_mhz),
            (1_733_300, WifiStandard::Vht, Some(9), Some(2), Some(160))
        );
        let b = rate("1040.0 MBit/s VHT-MCS 9 80P80MHz VHT-NSS 2");
        assert_eq!(b.width_mhz, Some(160));
        let b = rate("1200.9 MBit/s 80MHz HE-MCS 11 HE-NSS 2 HE-GI 1 HE-DCM 1 HE-RU-ALLOC 3");
        assert_eq!(
            (b.kbps, b.standard, b.mcs, b.nss, b.gi, b.dcm),
            (
                1_200_900,
                WifiStandard::He,
                Some(11),
                Some(2),
                Some(1),
                Some(1)
            )
        );
        let b = rate("5764.7 MBit/s 320MHz EHT-MCS 13 EHT-NSS 2 EHT-GI 2 EHT-RU-ALLOC 0");
        assert_eq!(
            (b.kbps, b.standard, b.mcs, b.nss, b.width_mhz, b.gi),
            (
                5_764_700,
                WifiStandard::Eht,
                Some(13),
                Some(2),
                Some(320),
                Some(2)
            )
        );
        // No width token is 20 MHz; a resource unit has no channel width.
        assert_eq!(rate("6.5 MBit/s MCS 0").width_mhz, Some(20));
        assert_eq!(
            rate("143.4 MBit/s HE-MCS 7 HE-NSS 2 HE-GI 0 HE-DCM 0").width_mhz,
            Some(20)
        );
        assert_eq!(
            rate("6.5 MBit/s HE-MCS 0 HE-NSS 1 HE-GI 0 HE-DCM 0 HE-RU-ALLOC 106").width_mhz,
            None
        );
        assert_eq!(
            rate("8.6 MBit/s EHT-MCS 1 EHT-NSS 1 EHT-GI 0 EHT-RU-ALLOC 52").width_mhz,
            None
        );
        let b = rate("(unknown) VHT-MCS 3 VHT-NSS 1");
        assert_eq!((b.kbps, b.standard, b.mcs), (0, WifiStandard::Vht, Some(3)));
        let b = rate("72.2 MBit/s MCS 7 short GI future-token 5");
        assert_eq!((b.mcs, b.nss, b.short_gi), (Some(7), Some(1), true));
        for bad in [
            "",
            "fast",
            "12.0 GBit/s",
            "x MBit/s",
            "1e3 MBit/s",
            "-6.0 MBit/s",
            "6.5 MBit/s MCS",
            "6.5 MBit/s MCS x",
            "6.5 MBit/s HE-NSS 300",
            "6.5 MBit/s wideMHz",
            "99999999.0 MBit/s",
        ] {
            assert!(parse_bitrate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kbps_rounds_extra_decimals() {
        assert_eq!(decimal_milli("1733.3"), Some(1_733_300));
        assert_eq!(decimal_milli("0.0005"), Some(1));
        assert_eq!(decimal_milli("0.0004"), Some(0));
        assert_eq!(decimal_milli("7"), Some(7000));
        for bad in ["", ".5", "1.2.3", "nan", "inf", "99999999999999999999"] {
            assert_eq!(decimal_milli(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expected_throughput_remainder_is_not_zero_padded() {
        assert_eq!(parse_throughput("25.882Mbps"), Ok(25_882));
        assert_eq!(parse_throughput("20.49Mbps"), Ok(20_049));
        assert_eq!(parse_throughput("58.43Mbps"), Ok(58_043));
        assert_eq!(parse_throughput("1733.0Mbps"), Ok(1_733_000));
        assert_eq!(parse_throughput("5.5 Mbps"), Ok(5_005));
        assert_eq!(parse_throughput("12"), Ok(12_000));
        for bad in ["", "Mbps", "fast Mbps", "1.2 Gbps", "5000000.0Mbps"] {
            assert!(parse_throughput(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_known_fields_are_skipped_rest_kept() {
        let text = "Station 02:00:00:00:00:01 (on wlan0)\n\trx bytes:\tlots\n\ttx bytes:\t-5\n\tsignal:\t-40 [x] dBm\n\
                    \tauthorized:\tmaybe\n\tpreamble:\tmedium\n\ttx bitrate:\tfast\n\tmesh plink:\t\n\taddress: zz\n\
                    \ttx packets:\t9\n";
        let p = parse(text, "wlan0").unwrap();
        let st = &p.value[0];
        assert_eq!(st.stats.tx_packets, Some(9));
        assert_eq!(
            (
                st.stats.rx_bytes,
                st.stats.tx_bytes,
                st.authorized,
                st.preamble
            ),
            (None, None, None, None)
        );
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8]);
        assert!(
            p.skipped[0].reason.starts_with("rx bytes:"),
            "{}",
            p.skipped[0]
        );
    }

    #[test]
    fn bad_header_does_not_leak_into_previous_station() {
        let text = "Station 02:00:00:00:00:01 (on wlan0)\n\trx bytes:\t1\nStation 02:00:zz (on wlan0)\n\trx bytes:\t99\n\
                    Station 02:00:00:00:00:03 (on wlan0)\n\trx bytes:\t3\n";
        let p = parse(text, "wlan0").unwrap();
        let rx: Vec<Option<u64>> = p.value.iter().map(|s| s.stats.rx_bytes).collect();
        assert_eq!(rx, [Some(1), Some(3)]);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 3);
    }

    #[test]
    fn truncated_dump_keeps_partial_last_station() {
        let text = own_fixture("iw/station-dump-wlan1.txt");
        let cut = text.find("\ttx failed:\t76").unwrap();
        let p = parse(&text[..cut], "wlan1").unwrap();
        assert_eq!(p.value.len(), 2);
        let last = &p.value[1];
        assert_eq!(last.mac, mac("f0:18:98:44:9a:21"));
        assert_eq!(last.stats.tx_retries, Some(98_765));
        assert_eq!(
            (last.stats.tx_failed, last.stats.signal.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn headerless_body_needs_the_mac() {
        let body = "\tinactive time:\t10 ms\n\trx bytes:\t7\n";
        let err = parse(body, "wlan0").unwrap_err();
        assert!(
            matches!(&err, ParseError::Invalid(m) if m.contains("MAC unknown")),
            "{err:?}"
        );
        let p = parse_station_get(body, "wlan0", mac("02:00:00:00:00:09")).unwrap();
        assert_eq!(
            (p.value[0].mac, p.value[0].stats.rx_bytes),
            (mac("02:00:00:00:00:09"), Some(7))
        );
        // A header-less body followed by a real station: the station is kept, the body reported.
        let p = parse(
            &format!("{body}Station 02:00:00:00:00:01 (on wlan0)\n\trx bytes:\t1\n"),
            "wlan0",
        )
        .unwrap();
        assert_eq!(p.value.len(), 1);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 1);
    }

    #[test]
    fn empty_and_garbage_are_errors() {
        assert_eq!(parse("", "wlan0"), Err(ParseError::Empty));
        assert_eq!(parse("\n \t\n", "wlan0"), Err(ParseError::Empty));
        assert!(matches!(
            parse("hello\nworld: 3\n", "wlan0"),
            Err(ParseError::Invalid(_))
        ));
        assert!(
            matches!(parse("Station nope (on wlan0)\n", "wlan0"), Err(ParseError::Invalid(m)) if m.contains("not a MAC"))
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
    fn read_retrying(iw: &str, interface: &str) -> Result<Parsed<Vec<Station>>, SourceError> {
        for _ in 0..50 {
            match read(iw, interface) {
                Err(SourceError::Read(ReadError::Spawn { err, .. }))
                    if err.raw_os_error() == Some(26) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
        read(iw, interface)
    }

    #[test]
    fn read_runs_station_dump() {
        let dir = tempfile::tempdir().unwrap();
        let iw = fake_iw(
            dir.path(),
            "iw",
            "[ \"$*\" = 'dev wlan1 station dump' ] || exit 2\nprintf 'Station 02:00:00:00:00:01 (on wlan1)\\n\\trx bytes:\\t42\\n'",
        );
        let p = read_retrying(&iw, "wlan1").unwrap();
        assert_eq!(
            (p.value[0].interface.as_str(), p.value[0].stats.rx_bytes),
            ("wlan1", Some(42))
        );
        assert!(matches!(
            read_retrying(&iw, "wlan0"),
            Err(SourceError::Read(ReadError::Failed { .. }))
        ));
        let empty = fake_iw(dir.path(), "iw-empty", "exit 0");
        assert!(read_retrying(&empty, "wlan0").unwrap().value.is_empty());
        let garbage = fake_iw(dir.path(), "iw-garbage", "echo nothing useful");
        assert!(matches!(
            read_retrying(&garbage, "wlan0"),
            Err(SourceError::Parse(ParseError::Invalid(_)))
        ));
        assert!(matches!(
            read("/nonexistent/routerstats-iw", "wlan0"),
            Err(SourceError::Read(ReadError::ToolMissing(_)))
        ));
    }

    /// `iw dev` output has `Interface`/`phy#` lines; everything else in `iw/` is station text.
    fn is_iw_dev_text(text: &str) -> bool {
        text.lines()
            .map(str::trim)
            .any(|l| l.starts_with("Interface ") || l.starts_with("phy#"))
    }

    /// Every shared iw fixture: routed to the right parser, with the expected record count.
    /// Header-less station bodies are an error for `parse` and one station for `parse_station_get`.
    #[test]
    fn every_shared_iw_fixture() {
        let probe = mac("02:00:00:00:00:99");
        let mut seen = 0;
        for (name, text) in shared_fixtures_in("iw") {
            seen += 1;
            if is_iw_dev_text(&text) {
                let n = crate::sources::iw_dev::parse(&text)
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .value
                    .len();
                let expected = if name.starts_with("iwdev-info") { 1 } else { 2 };
                assert_eq!(n, expected, "{name}");
                continue;
            }
            let expected_stations = match name.as_str() {
                "issue-mt76-17-station-get-body-no-header-tabs.txt"
                | "issue-ath10k-ct224-qca9984-VHT160-4chain-fragments.txt" => {
                    let err = parse(&text, "wlan0").unwrap_err();
                    assert!(
                        matches!(&err, ParseError::Invalid(m) if m.contains("MAC unknown")),
                        "{name}: {err:?}"
                    );
                    let p = parse_station_get(&text, "wlan0", probe).unwrap();
                    assert_eq!(p.value.len(), 1, "{name}");
                    assert_eq!(p.value[0].mac, probe);
                    continue;
                }
                "issue-mwlwifi68-station-dump-wrt1900ac-TRUNCATED.txt"
                | "pyscript-mesh-sae-2stations-mfp-llid0-spaces.txt" => 2,
                "blog2016-mesh-ar9300-3chain-negative-toffset-legacy-rates.txt"
                | "chatlog2025-managed-client-HE80-2ss-associated-at.txt"
                | "doc-ath10k-mesh2-VHT80-4ss-llid0-indented.txt"
                | "doc-tomesh-station-dump-rpi-brcmfmac-1chain-no-avg-MDINDENT.txt"
                | "libremesh-docs-mesh-newiw-fields-first-4chain.txt"
                | "libremesh-mesh-station-get-wlan0-mesh-toffset-wrap.txt"
                | "libremesh-mesh-station-get-wlan1-mesh-spaces.txt"
                | "lkml-ath12k-HE80-ack-signal-no-space-ELLIPSIS.txt" => 1,
                other => panic!("unexpected iw fixture {other}: add its expectations"),
            };
            let p = parse(&text, "fallback0").unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.malformed().count(), 0, "{name}: {:?}", p.skipped);
            assert_eq!(p.value.len(), expected_stations, "{name}");
            assert!(
                p.value.iter().all(|s| s.interface != "fallback0"),
                "{name}: header names the interface"
            );
        }
        assert_eq!(seen, 16);
    }

    fn shared(name: &str) -> Vec<Station> {
        parse(&shared_fixture(&format!("iw/{name}")), "wlan0")
            .unwrap()
            .value
    }

    #[test]
    fn shared_ar9300_three_chains_legacy_mesh() {
        let s = &shared("blog2016-mesh-ar9300-3chain-negative-toffset-legacy-rates.txt")[0];
        assert_eq!(s.mac, mac("00:1b:11:20:dc:2c"));
        assert_eq!(s.stats.signal, sig(-25, &[-28, -30, -33]));
        assert_eq!(s.stats.signal_avg, sig(-26, &[-29, -31, -33]));
        assert_eq!(
            s.stats.tx_bitrate.as_ref().map(|b| (b.kbps, b.standard)),
            Some((48_000, WifiStandard::Legacy))
        );
        assert_eq!(s.stats.rx_bitrate.as_ref().map(|b| b.kbps), Some(9_000));
        assert_eq!(
            s.mesh,
            Some(MeshPeer {
                llid: Some(22429),
                plid: Some(44255),
                plink: Some("ESTAB".into()),
                airtime_metric: None,
                ..MeshPeer::default()
            })
        );
        assert_eq!(
            (s.preamble, s.mfp, s.associated),
            (Some(Preamble::Long), Some(false), None)
        );
    }

    #[test]
    fn shared_he80_client_with_associated_at() {
        let s = &shared("chatlog2025-managed-client-HE80-2ss-associated-at.txt")[0];
        assert_eq!(s.interface, "wlp3s0");
        assert_eq!(s.stats.rx_bytes, Some(2_157_947));
        assert_eq!(
            (s.stats.beacon_loss, s.stats.rx_drop_misc),
            (Some(0), Some(82))
        );
        let tx = s.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (
                tx.kbps,
                tx.standard,
                tx.mcs,
                tx.nss,
                tx.width_mhz,
                tx.gi,
                tx.dcm
            ),
            (
                1_200_900,
                WifiStandard::He,
                Some(11),
                Some(2),
                Some(80),
                Some(0),
                Some(0)
            )
        );
        assert_eq!(
            (s.connected_s, s.associated_at_ms),
            (Some(387), Some(1_758_482_472_753))
        );
        assert_eq!(s.mesh, None);
    }

    #[test]
    fn shared_ath10k_vht80_4ss_indented() {
        let s = &shared("doc-ath10k-mesh2-VHT80-4ss-llid0-indented.txt")[0];
        assert_eq!(
            (s.mac, s.interface.as_str()),
            (mac("00:03:7f:12:bb:97"), "mesh2")
        );
        assert_eq!(
            (s.stats.signal.clone(), s.stats.signal_avg.clone()),
            (sig(-95, &[]), sig(-67, &[]))
        );
        let tx = s.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (
                tx.kbps,
                tx.standard,
                tx.mcs,
                tx.nss,
                tx.width_mhz,
                tx.short_gi
            ),
            (
                1_733_300,
                WifiStandard::Vht,
                Some(9),
                Some(4),
                Some(80),
                true
            )
        );
        assert_eq!(
            s.mesh.as_ref().map(|m| (m.llid, m.plid)),
            Some((Some(0), Some(0)))
        );
        assert_eq!(s.connected_s, Some(536));
    }

    #[test]
    fn shared_brcmfmac_one_chain_no_avg_mdindent() {
        let s = &shared("doc-tomesh-station-dump-rpi-brcmfmac-1chain-no-avg-MDINDENT.txt")[0];
        assert_eq!(s.mac, mac("b8:e8:56:2b:30:c6"));
        assert_eq!(
            (s.stats.signal.clone(), s.stats.signal_avg.clone()),
            (sig(-36, &[-36]), None)
        );
        assert_eq!((s.stats.tx_failed, s.stats.tx_retries), (Some(10), None));
        assert_eq!(
            s.stats.tx_bitrate.as_ref().map(|b| (b.kbps, b.standard)),
            Some((72_200, WifiStandard::Legacy))
        );
        assert_eq!((s.tdls_peer, s.preamble), (Some(true), None));
    }

    #[test]
    fn shared_truncated_wrt1900ac() {
        let s = shared("issue-mwlwifi68-station-dump-wrt1900ac-TRUNCATED.txt");
        assert_eq!(s[0].stats.inactive_ms, Some(72_320));
        assert_eq!(s[0].stats.signal, sig(-53, &[]));
        let tx = s[0].stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (tx.kbps, tx.standard, tx.mcs, tx.nss, tx.short_gi),
            (72_200, WifiStandard::Ht, Some(7), Some(1), true)
        );
        assert_eq!(s[0].preamble, Some(Preamble::Short));
        assert_eq!(s[1].mac, mac("00:cd:fe:8f:95:55"));
        assert_eq!(
            (s[1].stats.tx_bytes, s[1].stats.tx_failed),
            (Some(40_239_068), Some(0))
        );
        assert_eq!((s[1].stats.signal.as_ref(), s[1].authorized), (None, None));
    }

    #[test]
    fn shared_libremesh_4chain_64bit_counters() {
        let s = &shared("libremesh-docs-mesh-newiw-fields-first-4chain.txt")[0];
        assert_eq!(s.interface, "wlan0-mesh");
        assert_eq!(
            (s.stats.rx_bytes, s.stats.tx_bytes),
            (Some(4_574_667_204), Some(15_062_972_181))
        );
        assert_eq!(s.stats.signal, sig(-90, &[-92, -93, -95, -95]));
        assert_eq!(s.stats.signal_avg, sig(-90, &[-93, -93, -95, -95]));
        assert_eq!(s.stats.last_ack_signal_dbm, Some(-95));
        assert_eq!(s.stats.expected_throughput_kbps, Some(25_882));
        assert_eq!(s.mesh.as_ref().and_then(|m| m.airtime_metric), Some(427));
        let tx = s.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (
                tx.kbps,
                tx.standard,
                tx.mcs,
                tx.nss,
                tx.width_mhz,
                tx.short_gi
            ),
            (30_000, WifiStandard::Ht, Some(8), Some(2), Some(40), true)
        );
        assert_eq!(
            (s.connected_s, s.associated_at_ms),
            (Some(1_550_343), Some(1_784_846_913_134))
        );
    }

    #[test]
    fn shared_libremesh_station_get_files() {
        let s = &shared("libremesh-mesh-station-get-wlan0-mesh-toffset-wrap.txt")[0];
        assert_eq!(
            (s.mac, s.interface.as_str()),
            (mac("c0:4a:00:be:7b:09"), "wlan0-mesh")
        );
        assert_eq!(s.stats.signal, sig(-14, &[-17, -18]));
        assert_eq!(
            s.stats.rx_bitrate.as_ref().map(|b| (b.kbps, b.mcs, b.nss)),
            Some((39_000, Some(10), Some(2)))
        );
        assert_eq!(s.stats.expected_throughput_kbps, Some(2_197));
        assert_eq!(
            s.mesh.as_ref().map(|m| (m.llid, m.plid)),
            Some((Some(63041), Some(61249)))
        );
        let s = &shared("libremesh-mesh-station-get-wlan1-mesh-spaces.txt")[0];
        assert_eq!(
            (s.mac, s.interface.as_str()),
            (mac("c0:4a:00:be:7b:0a"), "wlan1-mesh")
        );
        assert_eq!(s.stats.signal_avg, sig(-12, &[-14, -15]));
        assert_eq!(s.stats.expected_throughput_kbps, Some(58_043));
        assert_eq!((s.stats.rx_drop_misc, s.mfp), (Some(3), Some(false)));
    }

    #[test]
    fn shared_ath12k_ack_signal_no_space() {
        let s = &shared("lkml-ath12k-HE80-ack-signal-no-space-ELLIPSIS.txt")[0];
        assert_eq!(s.interface, "wlo1");
        assert_eq!(
            (s.stats.signal.clone(), s.stats.last_ack_signal_dbm),
            (sig(0, &[]), Some(-51))
        );
        assert_eq!(s.stats.tx_bitrate, None);
        let rx = s.stats.rx_bitrate.as_ref().unwrap();
        assert_eq!(
            (rx.kbps, rx.standard, rx.mcs, rx.nss, rx.width_mhz),
            (1_441_100, WifiStandard::He, Some(9), Some(3), Some(80))
        );
        assert_eq!(s.authorized, Some(true));
    }

    #[test]
    fn shared_two_sae_mesh_peers() {
        let s = shared("pyscript-mesh-sae-2stations-mfp-llid0-spaces.txt");
        assert_eq!(s[0].stats.rx_bytes, Some(98_665_737));
        assert_eq!(s[0].stats.expected_throughput_kbps, Some(6_682));
        assert_eq!(s[1].mac, mac("00:30:1a:4e:97:c8"));
        assert_eq!(s[1].stats.signal, sig(-71, &[-71, -83]));
        assert_eq!(s[1].stats.signal_avg, sig(-71, &[-71, -82]));
        assert_eq!(s[1].stats.expected_throughput_kbps, Some(20_049));
        assert!(s
            .iter()
            .all(|st| st.mfp == Some(true) && st.mesh.as_ref().and_then(|m| m.llid) == Some(0)));
    }

    #[test]
    fn shared_headerless_bodies_with_station_get() {
        let probe = mac("02:00:00:00:00:99");
        let text = shared_fixture("iw/issue-mt76-17-station-get-body-no-header-tabs.txt");
        let s = &parse_station_get(&text, "wlan0", probe).unwrap().value[0];
        assert_eq!(s.stats.tx_bytes, Some(121_123_183));
        assert_eq!(s.stats.signal, sig(59, &[59, 56]));
        assert_eq!(s.stats.signal_avg, sig(-8, &[-8, 11]));
        let tx = s.stats.tx_bitrate.as_ref().unwrap();
        assert_eq!(
            (
                tx.kbps,
                tx.standard,
                tx.mcs,
                tx.nss,
                tx.width_mhz,
                tx.short_gi
            ),
            (300_000, WifiStandard::Ht, Some(15), Some(2), Some(40), true)
        );
        assert_eq!(s.stats.expected_throughput_kbps, Some(5_859));
        assert_eq!(s.connected_s, Some(1714));

        // Two fragments (dd-wrt, then OpenWrt) of one header-less station: the last value wins.
        let text = shared_fixture("iw/issue-ath10k-ct224-qca9984-VHT160-4chain-fragments.txt");
        let s = &parse_station_get(&text, "wlan0", probe).unwrap().value[0];
        assert_eq!(s.stats.signal, sig(-42, &[-50, -44]));
        assert_eq!(s.stats.last_ack_signal_dbm, Some(-40));
        assert_eq!(
            s.stats
                .rx_bitrate
                .as_ref()
                .map(|b| (b.kbps, b.mcs, b.nss, b.width_mhz)),
            Some((1_170_000, Some(6), Some(2), Some(160)))
        );
        assert_eq!(s.stats.expected_throughput_kbps, Some(1_733_000));
        let ddwrt = text.split("openwrt:").next().unwrap();
        let s = &parse_station_get(ddwrt, "wlan0", probe).unwrap().value[0];
        assert_eq!(s.stats.signal, sig(-41, &[-49, -42, -53, -49]));
        assert_eq!(s.stats.signal_avg, sig(-40, &[-47, -40, -52, -49]));
    }

    fn corpus() -> &'static Vec<String> {
        static CORPUS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        CORPUS.get_or_init(|| {
            let mut v: Vec<String> = shared_fixtures_in("iw")
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            for f in [
                "station-dump-wlan0.txt",
                "station-dump-wlan1.txt",
                "station-dump-mesh0.txt",
                "station-dump-mlo-wlan2.txt",
                "station-dump-airtime.txt",
            ] {
                v.push(own_fixture(&format!("iw/{f}")));
            }
            v
        })
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC*") {
            let _ = parse(&s, "wlan0");
            let _ = parse_station_get(&s, "wlan0", MacAddr::default());
        }

        #[test]
        fn iw_like_tokens_never_panic(parts in prop::collection::vec(prop::sample::select(vec![
            "Station ", "02:00:00:00:00:01", "(on wlan0)", "(on ", ")", "\n", "\t", " ", ":", "signal",
            "signal avg", "[", "]", ",", "-", "9", "dBm", "tx bitrate", "MBit/s", "MCS", "HE-MCS",
            "VHT-NSS", "EHT-GI", "short GI", "80P80MHz", "160MHz", "MHz", ".", "expected throughput",
            "Mbps", "Link 0", "Link", "address", "rx bytes", "mesh plink", "yes", "ü", "(unknown)",
        ]), 0..80)) {
            let _ = parse(&parts.concat(), "wlan0");
        }

        #[test]
        fn generated_airtime_lines_round_trip(
            tx in any::<u64>(), rx in any::<u64>(), weight in any::<u16>(), now in any::<u64>(),
            gate in any::<bool>(), links in prop::collection::vec((0u8..15, any::<u64>()), 0..4),
        ) {
            let yn = |b: bool| if b { "yes" } else { "no" };
            let mut text = format!(
                "Station 02:00:00:00:00:01 (on mesh0)\n\ttx duration:\t{tx} us\n\trx duration:\t{rx} us\n\
                 \tairtime weight: {weight}\n\tmesh connected to gate:\t{}\n\tcurrent time:\t{now} ms\n",
                yn(gate)
            );
            for (id, d) in &links {
                text.push_str(&format!("\tLink {id}:\n\t\ttx duration:\t{d} us\n"));
            }
            let p = parse(&text, "mesh0").unwrap();
            prop_assert_eq!(p.skipped.len(), 0);
            let st = &p.value[0];
            prop_assert_eq!((st.stats.tx_duration_us, st.stats.rx_duration_us), (Some(tx), Some(rx)));
            prop_assert_eq!(st.stats.airtime_weight, Some(weight));
            prop_assert_eq!(st.current_time_ms, Some(now));
            prop_assert_eq!(st.mesh.as_ref().and_then(|m| m.connected_to_gate), Some(gate));
            let got: Vec<_> = st.links.iter().map(|l| (l.link_id, l.stats.tx_duration_us)).collect();
            let want: Vec<_> = links.iter().map(|(i, d)| (*i, Some(*d))).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn truncated_fixtures_never_panic(file in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
            let text = file.get(corpus());
            let chars: Vec<char> = text.chars().collect();
            let n = cut.index(chars.len() + 1);
            let truncated: String = chars.iter().take(n).collect();
            if let Ok(p) = parse(&truncated, "wlan0") {
                prop_assert!(!p.value.is_empty());
            }
            let p = parse_station_get(&truncated, "wlan0", MacAddr([2, 0, 0, 0, 0, 1]));
            if let Ok(p) = p {
                prop_assert!(!p.value.is_empty());
            }
        }
    }
}
