//! DHCP leases from dnsmasq lease files (and odhcpd's lease/hosts file).
//!
//! dnsmasq writes one IPv4 lease per line, `<expiry> <mac> <ip> <hostname|*> <client-id|*>`
//! (expiry 0 = infinite), then, with DHCPv6, a `duid <server-duid>` line followed by IPv6 leases
//! `<expiry> <iaid> <ipv6> <hostname|*> <client-duid|*>` (the IAID is decimal, prefixed with `T`
//! for temporary addresses). Non-Ethernet hardware addresses are printed with a `<type>-` prefix;
//! those leases are kept without a MAC.
//!
//! odhcpd's file (OpenWrt's `/tmp/hosts/odhcpd`) is hosts-style: `<ip>\t<hostname>` lines, plus
//! one `# <iface> <duid> <iaid-hex> <hostname|-> <valid-until|-1> <assigned-hex> <prefix-len>
//! <addr/len>...` comment line per lease. The comment lines are parsed (with or without the
//! `#`), one lease per address (a delegated prefix is recorded by its base address); the hosts
//! lines repeat what they say and are ignored.

use std::net::IpAddr;
use std::path::PathBuf;

use routerstats_shared::{DhcpLease, MacAddr};

use super::{read_text, ParseError, Parsed, SourceError};

/// Parses one lease file (dnsmasq or odhcpd format; both may even be mixed).
pub fn parse(text: &str) -> Result<Parsed<Vec<DhcpLease>>, ParseError> {
    let mut out = Parsed::new(Vec::new());
    // Lines that were understood without giving a lease: `duid`, odhcpd hosts lines.
    let mut recognised = false;
    for (idx, raw) in text.lines().enumerate() {
        let n = idx + 1;
        let line = raw.trim();
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let fields: Vec<&str> = body.split_whitespace().collect();
        match fields.as_slice() {
            [] => {}
            ["duid", _] if !commented => recognised = true,
            [_iface, duid, iaid, host, valid, _assigned, plen, addrs @ ..]
                if !addrs.is_empty()
                    && valid.parse::<i64>().is_ok()
                    && plen.parse::<u8>().is_ok() =>
            {
                let before = out.value.len();
                let notes = parse_odhcpd(duid, iaid, host, valid, addrs, &mut out.value);
                recognised |= out.value.len() > before;
                for note in notes {
                    out.skip(n, note);
                }
            }
            _ if commented => {}
            [ip, _hostname] if ip.parse::<IpAddr>().is_ok() => recognised = true,
            [expiry, id, ip, host, client] => match parse_dnsmasq(expiry, id, ip, host, client) {
                Ok(lease) => out.value.push(lease),
                Err(reason) => out.skip(n, reason),
            },
            other => out.skip(n, format!("expected 5 fields, found {}", other.len())),
        }
    }
    if !out.value.is_empty() || recognised {
        Ok(out)
    } else if out.skipped.is_empty() {
        Err(ParseError::Empty)
    } else {
        Err(ParseError::Invalid(format!(
            "no lease found ({} lines skipped)",
            out.skipped.len()
        )))
    }
}

/// Reads several lease files (e.g. dnsmasq's and odhcpd's) into one list. A missing or
/// unusable file is reported in `skipped`; the result is an error only when no file could be
/// used at all. An empty file is a usable file with no leases; an empty `paths` is no leases.
pub fn read(paths: &[PathBuf]) -> Result<Parsed<Vec<DhcpLease>>, SourceError> {
    let mut out = Parsed::new(Vec::new());
    let mut first_err: Option<SourceError> = None;
    let mut any_usable = paths.is_empty();
    for path in paths {
        let text = match read_text(path) {
            Ok(t) => t,
            Err(e) => {
                out.skip(0, e.to_string());
                first_err.get_or_insert(e.into());
                continue;
            }
        };
        if text.trim().is_empty() {
            any_usable = true;
            continue;
        }
        match parse(&text) {
            Ok(p) => {
                any_usable = true;
                out.value.extend(p.value);
                for s in p.skipped {
                    out.skip(s.line, format!("{}: {}", path.display(), s.reason));
                }
            }
            Err(e) => {
                out.skip(0, format!("{}: {e}", path.display()));
                first_err.get_or_insert(e.into());
            }
        }
    }
    match first_err {
        Some(err) if !any_usable => Err(err),
        _ => Ok(out),
    }
}

/// One dnsmasq line: an IPv4 lease (MAC in the 2nd field) or an IPv6 lease (IAID there).
fn parse_dnsmasq(
    expiry: &str,
    id: &str,
    ip: &str,
    host: &str,
    client: &str,
) -> Result<DhcpLease, &'static str> {
    let expires = match expiry.parse::<u64>() {
        Ok(0) => None,
        Ok(t) => Some(t),
        Err(_) => return Err("invalid expiry time"),
    };
    let (mac, iaid) = if id.contains([':', '-']) {
        match id.parse::<MacAddr>() {
            Ok(m) => (Some(m), None),
            Err(_) if has_hwtype_prefix(id) => (None, None),
            Err(_) => return Err("invalid MAC address"),
        }
    } else {
        let digits = id.strip_prefix('T').unwrap_or(id);
        match digits.parse::<u32>() {
            Ok(i) => (None, Some(i)),
            Err(_) => return Err("invalid MAC address or IAID"),
        }
    };
    let ip: IpAddr = ip.parse().map_err(|_| "invalid IP address")?;
    Ok(DhcpLease {
        expires,
        mac,
        ip,
        hostname: star_is_none(host),
        client_id: star_is_none(client),
        iaid,
    })
}

/// dnsmasq's `<hw type>-<hex bytes>` for non-Ethernet hardware (`20-80:00:...`, `00-`).
fn has_hwtype_prefix(s: &str) -> bool {
    match s.split_once('-') {
        Some((ty, rest)) => {
            ty.len() == 2
                && ty.chars().all(|c| c.is_ascii_hexdigit())
                && rest.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
        }
        None => false,
    }
}

fn star_is_none(s: &str) -> Option<String> {
    (s != "*" && !s.is_empty()).then(|| s.to_string())
}

/// One odhcpd lease line, one lease per `addr/len`. Returns notes for unusable addresses.
fn parse_odhcpd(
    duid: &str,
    iaid: &str,
    host: &str,
    valid: &str,
    addrs: &[&str],
    leases: &mut Vec<DhcpLease>,
) -> Vec<&'static str> {
    let mut notes = Vec::new();
    // -1 is infinite; 0 is an expired lease; other negatives are not written by odhcpd.
    let expires = match valid.parse::<i64>() {
        Ok(v) if v >= 0 => Some(v.unsigned_abs()),
        _ => None,
    };
    // DHCPv4 lines carry `ipv4` instead of an IAID and the MAC as 12 hex digits instead of a DUID.
    let (mac, iaid, client_id) = if iaid == "ipv4" {
        (parse_bare_mac(duid), None, None)
    } else {
        (None, u32::from_str_radix(iaid, 16).ok(), star_is_none(duid))
    };
    let hostname = (host != "-").then(|| host.to_string());
    for addr in addrs {
        let text = addr.split_once('/').map_or(*addr, |(a, _)| a);
        match text.parse::<IpAddr>() {
            Ok(ip) => leases.push(DhcpLease {
                expires,
                mac,
                ip,
                hostname: hostname.clone(),
                client_id: client_id.clone(),
                iaid,
            }),
            Err(_) => notes.push("invalid address in odhcpd lease line"),
        }
    }
    notes
}

/// `1c6f65a1b2c3` -> MAC.
fn parse_bare_mac(s: &str) -> Option<MacAddr> {
    if s.len() != 12 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(MacAddr(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{own_fixture, shared_fixtures_in};
    use proptest::prelude::*;

    fn lease_by_ip<'a>(leases: &'a [DhcpLease], ip: &str) -> &'a DhcpLease {
        let ip: IpAddr = ip.parse().unwrap();
        leases
            .iter()
            .find(|l| l.ip == ip)
            .unwrap_or_else(|| panic!("no lease for {ip}"))
    }

    #[test]
    fn own_fixture_v4_and_v6_leases() {
        let p = parse(&own_fixture("dhcp/dhcp.leases")).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.value.len(), 10);
        assert_eq!(p.value.iter().filter(|l| l.ip.is_ipv4()).count(), 8);
        assert!(p
            .value
            .iter()
            .filter(|l| l.ip.is_ipv4())
            .all(|l| l.mac.is_some() && l.iaid.is_none()));

        let alice = lease_by_ip(&p.value, "192.168.1.142");
        assert_eq!(alice.expires, Some(1_732_355_521));
        assert_eq!(alice.mac, Some("a4:83:e7:2b:91:0c".parse().unwrap()));
        assert_eq!(alice.hostname.as_deref(), Some("Alices-MacBook-Pro"));
        assert_eq!(alice.client_id.as_deref(), Some("01:a4:83:e7:2b:91:0c"));

        let nas = lease_by_ip(&p.value, "192.168.1.10");
        assert_eq!(nas.expires, None, "expiry 0 is an infinite lease");
        assert_eq!(nas.client_id, None);

        assert_eq!(lease_by_ip(&p.value, "192.168.1.156").hostname, None);

        let v6 = lease_by_ip(&p.value, "fd3a:71b2:9c4e::8a1");
        assert_eq!((v6.mac, v6.iaid), (None, Some(2_319_770_380)));
        assert_eq!(v6.hostname.as_deref(), Some("Alices-MacBook-Pro"));
        assert_eq!(
            v6.client_id.as_deref(),
            Some("00:01:00:01:2b:7c:e1:90:a4:83:e7:2b:91:0c")
        );
        let v6b = lease_by_ip(&p.value, "fd3a:71b2:9c4e::b27");
        assert_eq!((v6b.hostname.as_deref(), v6b.iaid), (None, Some(1033)));
    }

    #[test]
    fn no_trailing_newline_and_crlf() {
        let text = "0 00:11:22:33:44:55 10.0.0.2 a *\r\n1700000000 00:11:22:33:44:56 10.0.0.3 b 01:00:11:22:33:44:56";
        let p = parse(text).unwrap();
        assert_eq!(p.value.len(), 2);
        assert_eq!(
            p.value.get(1).unwrap().client_id.as_deref(),
            Some("01:00:11:22:33:44:56")
        );
        assert_eq!(p.value.first().unwrap().client_id, None);
    }

    #[test]
    fn temporary_iaid_and_non_ethernet_hardware() {
        let text = "duid 00:01:00:01:aa:bb\n\
                    1700000000 T42 fd00::9 laptop 00:01:00:01:cc\n\
                    1700000000 20-80:00:02:08:fe:80 10.0.0.9 ib-host *\n\
                    1700000000 00- 10.0.0.10 no-hw *\n";
        let p = parse(text).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(lease_by_ip(&p.value, "fd00::9").iaid, Some(42));
        assert_eq!(lease_by_ip(&p.value, "10.0.0.9").mac, None);
        assert_eq!(lease_by_ip(&p.value, "10.0.0.10").mac, None);
    }

    #[test]
    fn malformed_lines_are_skipped_with_reasons() {
        let text = "1700000000 00:11:22:33:44:55 10.0.0.2 ok *\n\
                    soon 00:11:22:33:44:55 10.0.0.3 a *\n\
                    1700000000 00:11:22:33:44 10.0.0.4 a *\n\
                    1700000000 zz 10.0.0.5 a *\n\
                    1700000000 00:11:22:33:44:55 10.0.0.256 a *\n\
                    1700000000 00:11:22:33:44:55 10.0.0.7\n\
                    \n\
                    1700000000 00:11:22:33:44:55 10.0.0.8 a * extra\n";
        let p = parse(text).unwrap();
        assert_eq!(p.value.len(), 1);
        let reasons: Vec<_> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "line 2: invalid expiry time",
                "line 3: invalid MAC address",
                "line 4: invalid MAC address or IAID",
                "line 5: invalid IP address",
                "line 6: expected 5 fields, found 3",
                "line 8: expected 5 fields, found 6",
            ]
        );
    }

    #[test]
    fn odhcpd_lease_lines() {
        let text = "# br-lan 00010001aabbccddeeff 0a0b0c0d pc -1 3fd 64 fd00:1::3fd/64 2001:db8::3fd/128 \n\
                    fd00:1::3fd\tpc\n\
                    # br-lan 1c6f65a1b2c3 ipv4 - 1700000000 a 32 192.168.1.10/32\n\
                    # br-lan 0001 1 x 0 1 128 not-an-ip/128\n\
                    # just a comment\n";
        let p = parse(text).unwrap();
        assert_eq!(p.value.len(), 3);
        let pc = lease_by_ip(&p.value, "fd00:1::3fd");
        assert_eq!((pc.expires, pc.iaid), (None, Some(0x0a0b_0c0d)));
        assert_eq!(pc.client_id.as_deref(), Some("00010001aabbccddeeff"));
        assert_eq!(
            lease_by_ip(&p.value, "2001:db8::3fd").hostname.as_deref(),
            Some("pc")
        );
        let v4 = lease_by_ip(&p.value, "192.168.1.10");
        assert_eq!(v4.mac, Some("1c:6f:65:a1:b2:c3".parse().unwrap()));
        assert_eq!(
            (v4.hostname.as_deref(), v4.iaid, v4.expires),
            (None, None, Some(1_700_000_000))
        );
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(
            p.skipped.first().unwrap().to_string(),
            "line 4: invalid address in odhcpd lease line"
        );
    }

    #[test]
    fn duid_only_file_is_usable_garbage_is_not() {
        assert_eq!(parse("duid 00:01:00:01:aa\n").unwrap().value, vec![]);
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("# comment only\n\n"), Err(ParseError::Empty));
        assert_eq!(
            parse("hello there\n"),
            Err(ParseError::Invalid(
                "no lease found (1 lines skipped)".into()
            ))
        );
    }

    #[test]
    fn every_shared_fixture() {
        for (name, text) in shared_fixtures_in("dhcp") {
            let p = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            match name.as_str() {
                "dnsmasq_exporter-leases-expiry0-zero-macs-no-trailing-newline.txt" => {
                    assert!(p.skipped.is_empty());
                    assert_eq!(p.value.len(), 2);
                    let first = lease_by_ip(&p.value, "10.10.10.10");
                    assert_eq!(first.expires, Some(1_625_595_932));
                    assert_eq!(first.mac, Some(MacAddr([0; 6])));
                    assert_eq!(first.hostname.as_deref(), Some("host-1"));
                    assert_eq!(first.client_id.as_deref(), Some("00:00:00:00:00:00"));
                    let second = lease_by_ip(&p.value, "10.10.10.11");
                    assert_eq!(second.expires, None);
                    assert_eq!(second.mac, Some(MacAddr([0, 0, 0, 0, 0, 1])));
                    assert_eq!(second.hostname.as_deref(), Some("host-2"));
                }
                "issue-mcwrt59-odhcpd-hosts-2014-HASH-STRIPPED.txt" => {
                    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
                    assert_eq!(p.value.len(), 4);
                    let kevin = lease_by_ip(&p.value, "2001:470:3008::3fd");
                    assert_eq!(kevin.hostname.as_deref(), Some("KEVIN-NB"));
                    assert_eq!(kevin.expires, Some(1_413_845_671));
                    assert_eq!(kevin.iaid, Some(0x1700_249b));
                    assert_eq!(
                        kevin.client_id.as_deref(),
                        Some("000100011829adcee0ca94c7c143")
                    );
                    assert_eq!(
                        lease_by_ip(&p.value, "fd01:a19:f898::3fd")
                            .hostname
                            .as_deref(),
                        Some("KEVIN-NB")
                    );
                    let gypsy = lease_by_ip(&p.value, "fd01:a19:f898::ef0");
                    assert_eq!(gypsy.hostname.as_deref(), Some("GYPSY-DESIGNS"));
                    assert_eq!(
                        (gypsy.expires, gypsy.iaid),
                        (Some(1_413_845_609), Some(0x0e00_1111))
                    );
                }
                other => panic!("new dhcp fixture {other}: add its expectations here"),
            }
        }
    }

    #[test]
    fn read_merges_files_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let leases = dir.path().join("dhcp.leases");
        let empty = dir.path().join("empty");
        let garbage = dir.path().join("garbage");
        let missing = dir.path().join("missing");
        std::fs::write(&leases, own_fixture("dhcp/dhcp.leases")).unwrap();
        std::fs::write(&empty, "").unwrap();
        std::fs::write(&garbage, "not a lease file\n").unwrap();

        let p = read(&[missing.clone(), leases.clone(), garbage.clone()]).unwrap();
        assert_eq!(p.value.len(), 10);
        assert_eq!(p.skipped.len(), 2);
        assert!(p.skipped.first().unwrap().reason.contains("missing"));
        assert!(p.skipped.get(1).unwrap().reason.contains("garbage"));

        let p = read(&[missing.clone(), empty]).unwrap();
        assert!(p.value.is_empty());
        assert_eq!(p.skipped.len(), 1);

        assert!(matches!(
            read(std::slice::from_ref(&missing)),
            Err(SourceError::Read(_))
        ));
        assert!(matches!(
            read(&[garbage, missing]),
            Err(SourceError::Parse(_))
        ));
        assert!(read(&[]).unwrap().value.is_empty());
    }

    #[test]
    fn read_prefixes_line_notes_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases");
        std::fs::write(&path, "0 00:11:22:33:44:55 10.0.0.2 a *\nbad line\n").unwrap();
        let p = read(std::slice::from_ref(&path)).unwrap();
        let s = p.skipped.first().unwrap();
        assert_eq!(s.line, 2);
        assert_eq!(
            s.reason,
            format!("{}: expected 5 fields, found 2", path.display())
        );
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn lease_like_lines_never_panic(
            lines in proptest::collection::vec(
                proptest::collection::vec("[#T*0-9a-f:./-]{0,14}", 0..12), 0..8),
        ) {
            let text: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
            let _ = parse(&text);
        }

        #[test]
        fn truncated_fixtures_never_panic(idx in 0usize..16, cut in 0usize..2048) {
            let mut texts: Vec<String> = shared_fixtures_in("dhcp").into_iter().map(|(_, t)| t).collect();
            texts.push(own_fixture("dhcp/dhcp.leases"));
            let text = texts.get(idx % texts.len()).unwrap();
            let mut cut = cut.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Ok(p) = parse(&text[..cut]) {
                // A cut never invents leases: no more than the whole file has, each IP in the text.
                prop_assert!(p.value.len() <= parse(text).map(|f| f.value.len()).unwrap_or(0));
                for lease in &p.value {
                    prop_assert!(text.contains(&lease.ip.to_string()));
                }
            }
        }
    }
}
