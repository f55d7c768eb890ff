//! `/proc/net/dev`: per-interface traffic counters, plus a name-based guess of each interface's
//! kind.
//!
//! The kernel prints `%6s:%8llu %7llu ...`, so names of up to six characters are right-aligned
//! and longer names (`pppoe-wan`, `gretap0`) run straight into the colon, and a first counter of
//! eight or more digits runs straight after it (`pppoe-wan:48318382117 ...`). Counters are
//! 64-bit. Counters never contain a colon, so the row is split at its last colon, which also
//! keeps old-style alias names such as `eth0:1` whole.

use std::path::Path;

use routerstats_shared::{IfKind, NetInterface};

use super::{read_text, ParseError, Parsed, SourceError};

/// Number of counters on every row: eight receive and eight transmit.
const COUNTERS: usize = 16;

/// Parses the text of `/proc/net/dev`. The two header lines (they contain `|`) are passed over;
/// rows without a name or without exactly sixteen counters are skipped.
pub fn parse(text: &str) -> Result<Parsed<Vec<NetInterface>>, ParseError> {
    let mut out = Parsed::new(Vec::new());
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.contains('|') {
            continue;
        }
        match parse_row(line) {
            Ok(iface) => out.value.push(iface),
            Err(reason) => out.skip(line_no, reason),
        }
    }
    if out.value.is_empty() {
        return Err(if text.trim().is_empty() {
            ParseError::Empty
        } else {
            out.nothing_usable("no usable interface rows")
        });
    }
    Ok(out)
}

/// One row: `name: 16 counters`.
fn parse_row(line: &str) -> Result<NetInterface, String> {
    let Some((name, rest)) = line.rsplit_once(':') else {
        return Err("no ':' after the interface name".to_string());
    };
    let name = name.trim();
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(format!("bad interface name {:?}", clip(name)));
    }
    let mut c = [0u64; COUNTERS];
    let mut count = 0usize;
    for tok in rest.split_whitespace() {
        let v: u64 = tok.parse().map_err(|_| {
            format!(
                "{name}: counter {} is not a number: {:?}",
                count + 1,
                clip(tok)
            )
        })?;
        if let Some(slot) = c.get_mut(count) {
            *slot = v;
        }
        count += 1;
    }
    if count != COUNTERS {
        return Err(format!(
            "{name}: expected {COUNTERS} counters, found {count}"
        ));
    }
    let [rx_bytes, rx_packets, rx_errs, rx_drop, rx_fifo, rx_frame, rx_compressed, rx_multicast, tx_bytes, tx_packets, tx_errs, tx_drop, tx_fifo, tx_colls, tx_carrier, tx_compressed] =
        c;
    Ok(NetInterface {
        name: name.to_string(),
        kind: classify(name),
        rx_bytes,
        rx_packets,
        rx_errs,
        rx_drop,
        rx_fifo,
        rx_frame,
        rx_compressed,
        rx_multicast,
        tx_bytes,
        tx_packets,
        tx_errs,
        tx_drop,
        tx_fifo,
        tx_colls,
        tx_carrier,
        tx_compressed,
    })
}

/// At most 40 characters of untrusted text, for a skip reason.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Reads and parses a `/proc/net/dev` file (the caller joins the configured /proc root).
pub fn read(path: &Path) -> Result<Parsed<Vec<NetInterface>>, SourceError> {
    Ok(parse(&read_text(path)?)?)
}

/// Guesses an interface's kind from its name, following OpenWrt's and the kernel's naming
/// conventions. Names the heuristics do not recognise (including `ifb*`) are [`IfKind::Other`].
pub fn classify(name: &str) -> IfKind {
    // First match wins: `wg`/`pppoe-` names are decided before the wifi and tunnel prefixes.
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    if name == "lo" {
        IfKind::Loopback
    } else if starts(&["br-", "br"]) {
        IfKind::Bridge
    } else if starts(&["pppoe-", "pppoa-", "ppp"]) {
        IfKind::Pppoe
    } else if starts(&["wg"]) {
        IfKind::Wireguard
    } else if is_wifi_name(name) {
        IfKind::Wifi
    } else if starts(&[
        "tun",
        "tap",
        "gre",
        "ip6gre",
        "ip6tnl",
        "sit",
        "6in4-",
        "6to4-",
        "6rd-",
        "4in6-",
        "ds-",
        "vxlan",
        "ipip",
        "ip_vti",
        "ip6_vti",
        "erspan",
        "ip6erspan",
        "l2tp",
    ]) {
        IfKind::Tunnel
    } else if starts(&["eth", "lan", "en"]) || is_wan_port(name) {
        IfKind::Ethernet
    } else {
        IfKind::Other
    }
}

/// Wireless names: `wlan0`, `wl0` (Broadcom), `phy0-ap0`/`phy1-sta0`/`phy0-mesh0` (OpenWrt 23.05+),
/// `mesh0`, `ath0` (madwifi/qca), `ra0`/`rai0`/`rax0` (MediaTek vendor drivers), `wifi0`.
fn is_wifi_name(name: &str) -> bool {
    if ["wlan", "wl", "mesh", "ath", "wifi"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return true;
    }
    if let Some(rest) = name.strip_prefix("phy") {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && rest.get(digits..).is_some_and(|r| r.starts_with('-')) {
            return true;
        }
    }
    // `ra0`, `rai0`, `rax0`, `ra0.1`: `ra` plus at most one letter, then a digit.
    if let Some(rest) = name.strip_prefix("ra") {
        let rest = rest.strip_prefix(['i', 'x']).unwrap_or(rest);
        return rest.starts_with(|c: char| c.is_ascii_digit());
    }
    false
}

/// DSA wan ports: `wan`, `wan1`, `wan2`, and VLANs on them (`wan.7`), but not `wan-foo` names.
fn is_wan_port(name: &str) -> bool {
    match name.strip_prefix("wan") {
        Some(rest) => rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'),
        None => false,
    }
}

/// Like [`classify`], but names that `iw dev` listed are Wifi and names `wg show` listed are
/// WireGuard, whatever they are called; the heuristics decide only for the rest.
pub fn classify_with(name: &str, wifi_names: &[String], wg_names: &[String]) -> IfKind {
    if wifi_names.iter().any(|n| n == name) {
        IfKind::Wifi
    } else if wg_names.iter().any(|n| n == name) {
        IfKind::Wireguard
    } else {
        classify(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{own_fixture, shared_fixtures_in};
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn find<'a>(ifs: &'a [NetInterface], name: &str) -> &'a NetInterface {
        ifs.iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no {name} in {ifs:?}"))
    }

    #[test]
    fn own_fixture_has_every_interface_with_kinds() {
        let p = parse(&own_fixture("proc/net-dev")).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let names: Vec<&str> = p.value.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lo",
                "eth0",
                "lan1",
                "lan2",
                "lan3",
                "lan4",
                "wan",
                "br-lan",
                "wlan0",
                "wlan1",
                "mesh0",
                "pppoe-wan",
                "wg0"
            ]
        );
        let kinds: Vec<IfKind> = p.value.iter().map(|i| i.kind).collect();
        use IfKind::*;
        assert_eq!(
            kinds,
            [
                Loopback, Ethernet, Ethernet, Ethernet, Ethernet, Ethernet, Ethernet, Bridge, Wifi,
                Wifi, Wifi, Pppoe, Wireguard
            ]
        );
    }

    #[test]
    fn unpadded_long_name_and_counters_above_u32() {
        let p = parse(&own_fixture("proc/net-dev")).unwrap();
        let ppp = find(&p.value, "pppoe-wan");
        assert_eq!(ppp.rx_bytes, 48_318_382_117);
        assert!(ppp.rx_bytes > u64::from(u32::MAX));
        assert_eq!(ppp.rx_packets, 49_871_223);
        assert_eq!(ppp.tx_bytes, 6_553_120_911);
        assert_eq!(ppp.tx_packets, 19_101_203);
        // br-lan is exactly six characters: no padding before it, digits straight after ':'.
        let br = find(&p.value, "br-lan");
        assert_eq!(
            (br.rx_bytes, br.rx_drop, br.rx_multicast),
            (7_901_277_311, 311, 102_344)
        );
        let wg = find(&p.value, "wg0");
        assert_eq!((wg.tx_errs, wg.tx_drop), (3, 12));
        let wlan1 = find(&p.value, "wlan1");
        assert_eq!(wlan1.tx_drop, 117);
        assert_eq!(wlan1.tx_compressed, 0);
    }

    #[test]
    fn every_column_lands_in_its_field() {
        let text = "x: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let i = parse(text).unwrap().value.remove(0);
        assert_eq!(
            [
                i.rx_bytes,
                i.rx_packets,
                i.rx_errs,
                i.rx_drop,
                i.rx_fifo,
                i.rx_frame,
                i.rx_compressed,
                i.rx_multicast,
                i.tx_bytes,
                i.tx_packets,
                i.tx_errs,
                i.tx_drop,
                i.tx_fifo,
                i.tx_colls,
                i.tx_carrier,
                i.tx_compressed
            ],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        );
    }

    #[test]
    fn no_space_after_colon_with_small_first_counter() {
        let p = parse("gretap0:0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n").unwrap();
        assert_eq!(p.value[0].name, "gretap0");
        assert_eq!(p.value[0].kind, IfKind::Tunnel);
    }

    #[test]
    fn alias_name_with_colon_is_kept_whole() {
        let p = parse("eth0:1: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n").unwrap();
        assert_eq!(p.value[0].name, "eth0:1");
        assert_eq!(p.value[0].rx_bytes, 10);
        assert_eq!(p.value[0].tx_bytes, 20);
    }

    #[test]
    fn u64_max_parses_and_overflow_is_skipped() {
        let max = u64::MAX;
        let text = format!("a: {max} 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\nb: 18446744073709551616 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
        let p = parse(&text).unwrap();
        assert_eq!(p.value.len(), 1);
        assert_eq!(p.value[0].rx_bytes, max);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 2);
        assert!(
            p.skipped[0].reason.contains("not a number"),
            "{:?}",
            p.skipped
        );
    }

    #[test]
    fn short_long_and_nameless_rows_are_skipped_with_reasons() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes|bytes\n\
                    eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
                    eth1: 1 2 3\n\
                    eth2: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n\
                    : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
                    no colon here\n";
        let p = parse(text).unwrap();
        assert_eq!(p.value.len(), 1);
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [4, 5, 6, 7]);
        assert!(
            p.skipped[0].reason.contains("found 3"),
            "{:?}",
            p.skipped[0]
        );
        assert!(
            p.skipped[1].reason.contains("found 17"),
            "{:?}",
            p.skipped[1]
        );
    }

    #[test]
    fn header_only_empty_and_garbage_are_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("  \n\n"), Err(ParseError::Empty));
        let own = own_fixture("proc/net-dev");
        let header: String = own.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(matches!(parse(&header), Err(ParseError::Invalid(_))));
        let err = parse("eth0: 1 2\n").unwrap_err();
        assert!(
            matches!(&err, ParseError::Invalid(m) if m.contains("found 2")),
            "{err:?}"
        );
    }

    #[test]
    fn read_reports_missing_file_and_reads_fixture() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/proc");
        assert_eq!(read(&dir.join("net-dev")).unwrap().value.len(), 13);
        let err = read(&dir.join("no-such-file")).unwrap_err();
        assert!(matches!(err, SourceError::Read(_)), "{err:?}");
        let t = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(
            read(t.path()),
            Err(SourceError::Parse(ParseError::Empty))
        ));
    }

    #[test]
    fn classify_by_name() {
        use IfKind::*;
        let cases = [
            ("lo", Loopback),
            ("br-lan", Bridge),
            ("br-guest", Bridge),
            ("br0", Bridge),
            ("pppoe-wan", Pppoe),
            ("ppp0", Pppoe),
            ("wg0", Wireguard),
            ("wg_office", Wireguard),
            ("wlan0", Wifi),
            ("wlan1-1", Wifi),
            ("wlan0.sta1", Wifi),
            ("wl0", Wifi),
            ("wl1.2", Wifi),
            ("phy0-ap0", Wifi),
            ("phy1-sta0", Wifi),
            ("phy0-mesh0", Wifi),
            ("mesh0", Wifi),
            ("ath0", Wifi),
            ("ra0", Wifi),
            ("rai0", Wifi),
            ("rax1", Wifi),
            ("wifi0", Wifi),
            ("eth0", Ethernet),
            ("eth0.2", Ethernet),
            ("lan1", Ethernet),
            ("lan", Ethernet),
            ("wan", Ethernet),
            ("wan2", Ethernet),
            ("enp3s0", Ethernet),
            ("tun0", Tunnel),
            ("tunl0", Tunnel),
            ("tap0", Tunnel),
            ("gre0", Tunnel),
            ("gretap0", Tunnel),
            ("gre4-mygre", Tunnel),
            ("ip6tnl0", Tunnel),
            ("ip6gre0", Tunnel),
            ("sit0", Tunnel),
            ("6in4-henet", Tunnel),
            ("ds-wan6", Tunnel),
            ("vxlan0", Tunnel),
            ("ifb0", Other),
            ("ifb4eth1", Other),
            ("bond0", Other),
            ("phy0", Other),
            ("radio", Other),
            ("wan-foo", Other),
            ("dummy0", Other),
            ("", Other),
        ];
        for (name, kind) in cases {
            assert_eq!(classify(name), kind, "{name:?}");
        }
    }

    #[test]
    fn classify_with_prefers_reported_names() {
        let wifi = vec!["guest".to_string(), "wg-ap".to_string()];
        let wg = vec!["office".to_string()];
        assert_eq!(classify_with("guest", &wifi, &wg), IfKind::Wifi);
        // iw knows better than the `wg` prefix.
        assert_eq!(classify_with("wg-ap", &wifi, &wg), IfKind::Wifi);
        assert_eq!(classify_with("office", &wifi, &wg), IfKind::Wireguard);
        // Not reported by either tool: heuristics.
        assert_eq!(classify_with("wlan0", &wifi, &wg), IfKind::Wifi);
        assert_eq!(classify_with("eth1", &wifi, &wg), IfKind::Ethernet);
        assert_eq!(classify_with("office2", &wifi, &wg), IfKind::Other);
    }

    /// Every shared /proc-kind fixture, routed by file-name prefix to its parser, with values
    /// read from the files by eye.
    #[test]
    fn all_shared_proc_fixtures() {
        let mut routed = 0;
        for (name, text) in shared_fixtures_in("proc") {
            if name.starts_with("meminfo-") {
                let m = crate::sources::meminfo::parse(&text).unwrap().value;
                assert!(m.available_derived, "{name}");
                match name.as_str() {
                    "meminfo-issue-openwrt-arm-128M-no-MemAvailable.txt" => {
                        assert_eq!(m.total_kb, 125_128);
                        // 80288 + 7652 + 21700 + 6144 - 5416
                        assert_eq!(m.available_kb, 110_368);
                    }
                    "meminfo-issue-rt5350-ralink-no-MemAvailable-SPACES-COLLAPSED.txt" => {
                        assert_eq!(m.total_kb, 28_616);
                        // 4104 + 0 + 17860 + 620, no Shmem line
                        assert_eq!(m.available_kb, 22_584);
                        assert_eq!((m.free_kb, m.buffers_kb, m.cached_kb), (4104, 0, 17_860));
                    }
                    other => panic!("unexpected meminfo fixture {other}: add its values"),
                }
            } else if name.starts_with("net-dev-") {
                let p = parse(&text).unwrap();
                assert!(p.skipped.is_empty(), "{name}: {:?}", p.skipped);
                let ifs = &p.value;
                assert_eq!(ifs.len(), 9, "{name}");
                assert_eq!(find(ifs, "wl0").rx_bytes, 29_398_014);
                assert_eq!(find(ifs, "wl0").tx_bytes, 200_768_120);
                assert_eq!(find(ifs, "wl1").rx_errs, 300);
                assert_eq!(find(ifs, "eth1").rx_drop, 10);
                assert_eq!(find(ifs, "ifb0").tx_drop, 15);
                assert_eq!(find(ifs, "gretap0").kind, IfKind::Tunnel);
                assert_eq!(find(ifs, "wl0").kind, IfKind::Wifi);
                assert_eq!(find(ifs, "ifb0").kind, IfKind::Other);
                assert_eq!(find(ifs, "lo").kind, IfKind::Loopback);
            } else if name.starts_with("board-json-") {
                let b = crate::sources::board::parse(&text).unwrap().value;
                let net = |role: &str| {
                    b.network
                        .iter()
                        .find(|(r, _)| r == role)
                        .map(|(_, d)| d.clone())
                };
                match name.as_str() {
                    "board-json-archer-c5v4-swconfig-2switches-leds.txt" => {
                        assert_eq!(b.model_name.as_deref(), Some("TP-Link Archer C5 v4"));
                        assert_eq!(b.model_id.as_deref(), Some("tplink,archer-c5-v4"));
                        assert_eq!(net("lan"), Some(vec!["eth0.1".to_string()]));
                        assert_eq!(net("wan"), Some(vec!["eth0.2".to_string()]));
                        assert_eq!(b.network.len(), 2);
                    }
                    "board-json-rpi3bplus-19.07-ifname-lan-only.txt" => {
                        assert_eq!(
                            b.model_name.as_deref(),
                            Some("Raspberry Pi 3 Model B Plus Rev 1.3")
                        );
                        assert_eq!(net("lan"), Some(vec!["eth0".to_string()]));
                        assert_eq!(b.network.len(), 1);
                    }
                    "board-json-x86-virtualbox-lan-wan.txt" => {
                        assert_eq!(b.model_id.as_deref(), Some("innotek-gmbh-virtualbox"));
                        assert_eq!(net("wan"), Some(vec!["eth1".to_string()]));
                    }
                    other => panic!("unexpected board.json fixture {other}: add its values"),
                }
            } else if name.starts_with("openwrt_release-") {
                let r = crate::sources::openwrt_release::parse(&text).unwrap();
                assert!(r.skipped.is_empty(), "{name}: {:?}", r.skipped);
                let r = r.value;
                let expect = match name.as_str() {
                    "openwrt_release-15.05.1-chaos_calmer-ar71xx.txt" => "15.05.1",
                    "openwrt_release-19.07.1-rpi3-aarch64.txt" => "19.07.1",
                    "openwrt_release-23.05-SNAPSHOT-x86_64.txt" => "23.05-SNAPSHOT",
                    "openwrt_release-QSDK-vendor-no-arch-codename-unexpanded-taints.txt" => {
                        assert_eq!(r.distrib_id.as_deref(), Some("QSDK"));
                        assert_eq!(r.arch, None);
                        assert_eq!(r.taints.as_deref(), Some("%t"));
                        "QCA9558.LN"
                    }
                    "openwrt_release-SNAPSHOT-r13573-taints-glibc-busybox.txt" => {
                        assert_eq!(r.taints.as_deref(), Some("glibc busybox"));
                        "SNAPSHOT"
                    }
                    "openwrt_release-attitude_adjustment-DOUBLE-QUOTES-no-arch-no-taints.txt" => {
                        assert_eq!(r.codename.as_deref(), Some("attitude_adjustment"));
                        assert_eq!(r.taints, None);
                        assert_eq!(r.target.as_deref(), Some("ar71xx/generic"));
                        "Bleeding Edge"
                    }
                    other => panic!("unexpected openwrt_release fixture {other}: add its values"),
                };
                assert_eq!(r.release.as_deref(), Some(expect), "{name}");
            } else {
                panic!("shared proc fixture {name} has no parser routed to it");
            }
            routed += 1;
        }
        assert_eq!(routed, 12);
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,400}") {
            let _ = parse(&s);
            let _ = classify(&s);
        }

        #[test]
        fn rowlike_text_never_panics(s in "([ a-z0-9.:-]{0,20}:[ 0-9]{0,80}\n){0,6}") {
            if let Ok(p) = parse(&s) {
                prop_assert!(!p.value.is_empty());
            }
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..4000) {
            for text in [own_fixture("proc/net-dev"), crate::testutil::shared_fixture(
                "proc/net-dev-issue-openwrtinvasion116-xiaomi-stock-wl0-gretap0-TRUNCATED.txt")] {
                let end = text.char_indices().map(|(i, _)| i).chain([text.len()])
                    .take_while(|&i| i <= cut).last().unwrap_or(0);
                if let Ok(p) = parse(&text[..end]) {
                    for i in &p.value {
                        prop_assert!(!i.name.is_empty());
                    }
                }
            }
        }
    }
}
