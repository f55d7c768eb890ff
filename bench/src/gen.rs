//! A realistic router, generated as the text its tools print.
//!
//! [`RouterText::generate`] writes `iw dev`, one `iw dev <if> station dump` per access point,
//! `/tmp/dhcp.leases`, `wg show all dump`, an OpenVPN status file (version 2), `/proc/net/dev`
//! and the small /proc and /etc files, in the formats of the real tools (numbers vary per station
//! from a fixed seed, so runs repeat). [`RouterText::parse_report`] turns that text into a
//! [`Report`] with the agent's own parsers, exactly as a collection cycle would, and
//! [`RouterText::cgi_output`] prints what the shell CGI scripts of the "OpenWrt Router Stats"
//! set-up (`info.cgi` + `dhcp.cgi`) would print for the same router.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use routerstats_agent::collect::AGENT_VERSION;
use routerstats_agent::sources::{
    board, dhcp_leases, disk, iw_dev, loadavg, meminfo, net_dev, openvpn, openwrt_release,
    proc_stat, station_dump, uptime, wireguard, ParseError,
};
use routerstats_shared::{Report, RouterFacts, SourceKind, SourceState, SourceStatus, SystemStats};

/// How big the generated router is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Wireless stations, spread over the access points.
    pub stations: usize,
    /// Access point interfaces, one SSID each.
    pub ssids: usize,
    pub leases: usize,
    pub wg_peers: usize,
    pub ovpn_clients: usize,
    /// Rows of /proc/net/dev (at least the access points, `wg0` and `tun0` when present).
    pub interfaces: usize,
}

impl Shape {
    /// The router of the benchmark issue: 30 stations over 2 SSIDs, 30 leases, 10 WireGuard
    /// peers, 10 OpenVPN clients, 8 interfaces.
    pub const REALISTIC: Shape = Shape {
        stations: 30,
        ssids: 2,
        leases: 30,
        wg_peers: 10,
        ovpn_clients: 10,
        interfaces: 8,
    };

    /// The ingest benchmark's report: 20 stations over 2 SSIDs and 8 interfaces (no leases,
    /// tunnels or VPN clients, so the plain-SQLite baseline writes exactly the same rows).
    pub const INGEST: Shape = Shape {
        stations: 20,
        ssids: 2,
        leases: 0,
        wg_peers: 0,
        ovpn_clients: 0,
        interfaces: 8,
    };
}

/// Why generated text did not parse (a bug in the generator or in a parser).
#[derive(Debug, thiserror::Error)]
#[error("the agent's {source_name} parser refused the generated text: {err}")]
pub struct GenParseError {
    pub source_name: &'static str,
    pub err: ParseError,
}

fn refused(source_name: &'static str) -> impl FnOnce(ParseError) -> GenParseError {
    move |err| GenParseError { source_name, err }
}

/// A tiny deterministic generator (xorshift64*), so the text is the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi.saturating_sub(lo) + 1)
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = (self.next_u64() >> 24) as u8;
        }
        out
    }
}

/// The text of every source of one router.
#[derive(Debug, Clone)]
pub struct RouterText {
    pub hostname: String,
    pub iw_dev: String,
    /// `(interface, SSID, station dump text)` for each access point.
    pub station_dumps: Vec<(String, String, String)>,
    pub leases: String,
    pub wg_dump: String,
    pub openvpn_status: String,
    pub net_dev: String,
    /// /proc/uptime
    pub proc_uptime: String,
    /// What busybox `uptime` prints.
    pub uptime_cmd: String,
    pub meminfo: String,
    pub stat: String,
    pub loadavg: String,
    pub board_json: String,
    pub openwrt_release: String,
    pub df: String,
}

const VENDORS: [[u8; 3]; 8] = [
    [0x3c, 0x22, 0xfb],
    [0xa4, 0x83, 0xe7],
    [0xf4, 0x60, 0xe2],
    [0xd2, 0x1f, 0x8e],
    [0x68, 0xff, 0x7b],
    [0x00, 0x17, 0x88],
    [0xe0, 0xd5, 0x5e],
    [0xb8, 0x27, 0xeb],
];

const NAMES: [&str; 12] = [
    "Alices-MacBook-Pro",
    "Bobs-iPhone",
    "Galaxy-S23",
    "tapo-plug",
    "desktop-gaming",
    "Philips-hue",
    "living-room-tv",
    "printer-office",
    "Pixel-8",
    "ipad-kids",
    "ring-doorbell",
    "nas",
];

fn mac_of(i: usize) -> [u8; 6] {
    let v = VENDORS.get(i % VENDORS.len()).copied().unwrap_or([2, 0, 0]);
    [
        v[0],
        v[1],
        v[2],
        0x10 + (i / 256) as u8,
        (i % 256) as u8,
        0x5a,
    ]
}

fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn station_block(out: &mut String, rng: &mut Rng, mac: &str, iface: &str, five_ghz: bool) {
    let rx = rng.range(100_000, 4_000_000_000);
    let tx = rng.range(100_000, 4_000_000_000);
    let sig = -(rng.range(38, 82) as i64);
    let connected = rng.range(30, 400_000);
    let (txr, rxr) = if five_ghz {
        let mcs = rng.range(5, 11);
        (
            format!(
                "{}.{} MBit/s HE-MCS {mcs} HE-NSS 2 HE-GI 0 HE-DCM 0",
                200 + rng.range(0, 1000),
                rng.range(0, 9)
            ),
            format!(
                "{}.{} MBit/s HE-MCS {} HE-NSS 2 HE-GI 0 HE-DCM 0",
                150 + rng.range(0, 900),
                rng.range(0, 9),
                mcs - 1
            ),
        )
    } else {
        let mcs = rng.range(3, 15);
        (
            format!(
                "{}.{} MBit/s MCS {mcs} short GI",
                30 + rng.range(0, 120),
                rng.range(0, 9)
            ),
            format!("{}.0 MBit/s MCS {mcs}", 26 + rng.range(0, 100)),
        )
    };
    let _ = write!(
        out,
        "Station {mac} (on {iface})\n\
         \tinactive time:\t{} ms\n\
         \trx bytes:\t{rx}\n\
         \trx packets:\t{}\n\
         \ttx bytes:\t{tx}\n\
         \ttx packets:\t{}\n\
         \ttx retries:\t{}\n\
         \ttx failed:\t{}\n\
         \trx drop misc:\t{}\n\
         \tsignal:  \t{sig} [{}, {}] dBm\n\
         \tsignal avg:\t{} [{}, {}] dBm\n\
         \ttx bitrate:\t{txr}\n\
         \ttx duration:\t{} us\n\
         \trx bitrate:\t{rxr}\n\
         \trx duration:\t{} us\n\
         \tlast ack signal:{} dBm\n\
         \tavg ack signal:\t{} dBm\n\
         \tairtime weight: 256\n\
         \texpected throughput:\t{}.{}Mbps\n\
         \tauthorized:\tyes\n\
         \tauthenticated:\tyes\n\
         \tassociated:\tyes\n\
         \tpreamble:\tshort\n\
         \tWMM/WME:\tyes\n\
         \tMFP:\t\tno\n\
         \tTDLS peer:\tno\n\
         \tDTIM period:\t2\n\
         \tbeacon interval:100\n\
         \tshort preamble:\tyes\n\
         \tshort slot time:yes\n\
         \tconnected time:\t{connected} seconds\n\
         \tassociated at [boottime]:\t{}.{:03}s\n\
         \tassociated at:\t{} ms\n\
         \tcurrent time:\t1763877123456 ms\n",
        rng.range(0, 30_000),
        rx / 900,
        tx / 1100,
        rng.range(0, 50_000),
        rng.range(0, 100),
        rng.range(0, 500),
        sig - 2,
        sig - 3,
        sig + 1,
        sig - 1,
        sig - 2,
        rng.range(1_000_000, 900_000_000),
        rng.range(1_000_000, 900_000_000),
        sig - 1,
        sig,
        rng.range(10, 400),
        rng.range(0, 999),
        328_925u64.saturating_sub(connected),
        rng.range(0, 999),
        1_763_877_123_456u64.saturating_sub(connected * 1000),
    );
}

fn wg_key(rng: &mut Rng) -> String {
    base64::engine::general_purpose::STANDARD.encode(rng.bytes::<32>())
}

impl RouterText {
    /// Generates a router of the given shape. `seed` varies the numbers and addresses.
    pub fn generate(shape: Shape, seed: u64) -> RouterText {
        let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(7));
        let hostname = format!("bench-router-{seed}");
        let ssids = shape.ssids.max(1);
        let aps: Vec<(String, String, bool)> = (0..ssids)
            .map(|i| {
                let five = i % 2 == 1;
                let ssid = if i == 0 {
                    "HomeNet".to_string()
                } else if i == 1 {
                    "HomeNet-5G".to_string()
                } else {
                    format!("Guest-{i}")
                };
                (format!("phy{}-ap{}", i % 2, i / 2), ssid, five)
            })
            .collect();

        // iw dev: one block per phy, interfaces under it.
        let mut iw_dev = String::new();
        for phy in (0..ssids.min(2)).rev() {
            let _ = writeln!(iw_dev, "phy#{phy}");
            for (idx, (name, ssid, five)) in aps.iter().enumerate().filter(|(i, _)| i % 2 == phy) {
                let (chan, freq, width, center) = if *five {
                    (36, 5180, 80, 5210)
                } else {
                    (6, 2437, 20, 2437)
                };
                let _ = write!(
                    iw_dev,
                    "\tInterface {name}\n\t\tifindex {}\n\t\twdev 0x{:x}\n\t\taddr 94:83:c4:1a:2b:{:02x}\n\t\tssid {ssid}\n\t\ttype AP\n\
                     \t\tchannel {chan} ({freq} MHz), width: {width} MHz, center1: {center} MHz\n\t\ttxpower {}.00 dBm\n\
                     \t\tmulticast TXQ:\n\t\t\tqsz-byt\tqsz-pkt\tflows\tdrops\tmarks\toverlmt\thashcol\ttx-bytes\ttx-packets\n\
                     \t\t\t0\t0\t{}\t0\t0\t0\t0\t{}\t{}\n",
                    9 + idx,
                    (phy as u64) << 32 | (idx as u64 + 1),
                    0x3c + idx,
                    if *five { 23 } else { 20 },
                    rng.range(100, 9000),
                    rng.range(10_000, 2_000_000),
                    rng.range(100, 9000),
                );
            }
        }

        // Station dumps: stations dealt round-robin-ish (more on 5 GHz).
        let mut station_dumps: Vec<(String, String, String)> = aps
            .iter()
            .map(|(n, s, _)| (n.clone(), s.clone(), String::new()))
            .collect();
        for i in 0..shape.stations {
            let ap = i % ssids;
            if let (Some(dump), Some((name, _, five))) = (station_dumps.get_mut(ap), aps.get(ap)) {
                station_block(&mut dump.2, &mut rng, &mac_text(mac_of(i)), name, *five);
            }
        }

        // dnsmasq leases: stations first, then wired clients; one IPv6 block at the end.
        let mut leases = String::new();
        let v4 = shape.leases.saturating_sub(shape.leases / 6);
        for i in 0..v4 {
            let mac = mac_text(mac_of(i));
            let name = NAMES.get(i % NAMES.len()).copied().unwrap_or("host");
            let host = if i % 7 == 4 {
                "*".to_string()
            } else {
                format!("{name}-{i}")
            };
            let _ = writeln!(
                leases,
                "{} {mac} 192.168.1.{} {host} 01:{mac}",
                1_732_350_000 + rng.range(0, 86_400),
                100 + i
            );
        }
        if shape.leases > v4 {
            let _ = writeln!(leases, "duid 00:01:00:01:2c:91:0a:3e:94:83:c4:1f:22:50");
            for i in v4..shape.leases {
                let name = NAMES.get(i % NAMES.len()).copied().unwrap_or("host");
                let _ = writeln!(
                    leases,
                    "{} {} fd3a:71b2:9c4e::{:x} {name}-{i} 00:01:00:01:2b:7c:e1:90:{}",
                    1_732_350_000 + rng.range(0, 86_400),
                    rng.range(1000, 4_000_000_000),
                    0x100 + i,
                    mac_text(mac_of(i)),
                );
            }
        }

        // wg show all dump: wg0 with its peers.
        let mut wg_dump = String::new();
        if shape.wg_peers > 0 {
            let _ = writeln!(
                wg_dump,
                "wg0\t{}\t{}\t51820\toff",
                wg_key(&mut rng),
                wg_key(&mut rng)
            );
            for i in 0..shape.wg_peers {
                let psk = if i % 3 == 0 {
                    wg_key(&mut rng)
                } else {
                    "(none)".to_string()
                };
                let (endpoint, hs, rx, tx) = if i % 5 == 4 {
                    ("(none)".to_string(), 0, 0, 0)
                } else {
                    (
                        format!("198.51.100.{}:{}", 10 + i, 40_000 + rng.range(0, 20_000)),
                        1_763_877_000 - rng.range(0, 600),
                        rng.range(1000, 9_000_000_000),
                        rng.range(1000, 9_000_000_000),
                    )
                };
                let _ = writeln!(
                    wg_dump,
                    "wg0\t{}\t{psk}\t{endpoint}\t10.77.0.{}/32,fd77::{:x}/128\t{hs}\t{rx}\t{tx}\t25",
                    wg_key(&mut rng),
                    2 + i,
                    2 + i
                );
            }
        }

        // OpenVPN status, version 2.
        let mut openvpn_status = String::from(
            "TITLE,OpenVPN 2.6.8 mips-openwrt-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [MH/PKTINFO] [AEAD] [DCO]\n\
             TIME,2025-11-23 05:52:03,1763877123\n\
             HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher\n",
        );
        let mut routes =
            String::from("HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)\n");
        for i in 0..shape.ovpn_clients {
            let cn = format!("client-{i:02}");
            let real = format!("203.0.113.{}:{}", 20 + i, 30_000 + rng.range(0, 30_000));
            let since = 1_763_800_000 + rng.range(0, 70_000);
            let _ = writeln!(
                openvpn_status,
                "CLIENT_LIST,{cn},{real},10.8.0.{},fd42:8::{:x},{},{},2025-11-22 08:02:11,{since},UNDEF,{i},{i},AES-256-GCM",
                2 + i,
                0x1000 + i,
                rng.range(1000, 900_000_000),
                rng.range(1000, 900_000_000),
            );
            let _ = writeln!(
                routes,
                "ROUTING_TABLE,10.8.0.{},{cn},{real},2025-11-23 05:52:01,1763877121",
                2 + i
            );
        }
        openvpn_status.push_str(&routes);
        openvpn_status.push_str(
            "GLOBAL_STATS,Max bcast/mcast queue length,1\nGLOBAL_STATS,dco_enabled,0\nEND\n",
        );

        // /proc/net/dev: lo, eth0, br-lan, pppoe-wan, the access points, wg0, tun0, then lanN.
        let mut names: Vec<String> = vec![
            "lo".into(),
            "eth0".into(),
            "br-lan".into(),
            "pppoe-wan".into(),
        ];
        names.extend(aps.iter().map(|a| a.0.clone()));
        if shape.wg_peers > 0 {
            names.push("wg0".into());
        }
        if shape.ovpn_clients > 0 {
            names.push("tun0".into());
        }
        let mut n = 1;
        while names.len() < shape.interfaces {
            names.push(format!("lan{n}"));
            n += 1;
        }
        names.truncate(shape.interfaces.max(1));
        let mut net_dev = String::from(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
        );
        for name in &names {
            let rx = rng.range(1_000_000, 60_000_000_000);
            let tx = rng.range(1_000_000, 60_000_000_000);
            let _ = writeln!(
                net_dev,
                "{name:>6}:{rx:>8} {:>7}    0 {:>4}    0     0          0 {:>9} {tx:>8} {:>7}    0 {:>4}    0     0       0          0",
                rx / 1200,
                rng.range(0, 300),
                rng.range(0, 100_000),
                tx / 1200,
                rng.range(0, 100),
            );
        }

        RouterText {
            hostname,
            iw_dev,
            station_dumps,
            leases,
            wg_dump,
            openvpn_status,
            net_dev,
            proc_uptime: "328925.61 1185449.37\n".into(),
            uptime_cmd: " 05:52:03 up 3 days, 19:22,  load average: 0.42, 0.31, 0.27\n".into(),
            meminfo: "MemTotal:         245760 kB\nMemFree:           98212 kB\nMemAvailable:     131604 kB\nBuffers:            6120 kB\n\
                      Cached:            39844 kB\nSwapCached:            0 kB\nActive:            41212 kB\nInactive:          22340 kB\n\
                      Shmem:               912 kB\nSReclaimable:       5120 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
                .into(),
            stat: "cpu  5337739 841 3515660 118545107 159973 0 3275634 0 0 0\ncpu0 2702331 412 1803311 59213220 81213 0 2632110 0 0 0\n\
                   cpu1 2635408 429 1712349 59331887 78760 0 643524 0 0 0\nintr 1202331 0 0\nctxt 89231223\nbtime 1763548198\n\
                   processes 482123\nprocs_running 1\nprocs_blocked 0\n"
                .into(),
            loadavg: "0.42 0.31 0.27 2/112 4821\n".into(),
            board_json: "{\n\t\"model\": {\n\t\t\"id\": \"glinet,gl-mt6000\",\n\t\t\"name\": \"GL.iNet GL-MT6000\"\n\t},\n\t\"network\": {\n\
                         \t\t\"lan\": {\n\t\t\t\"ports\": [ \"lan1\", \"lan2\", \"lan3\", \"lan4\", \"lan5\" ],\n\t\t\t\"protocol\": \"static\"\n\t\t},\n\
                         \t\t\"wan\": {\n\t\t\t\"device\": \"eth1\",\n\t\t\t\"protocol\": \"pppoe\"\n\t\t}\n\t}\n}\n"
                .into(),
            openwrt_release: "DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='24.10.0'\nDISTRIB_REVISION='r28427-6df0e3d02a'\n\
                              DISTRIB_TARGET='mediatek/filogic'\nDISTRIB_ARCH='aarch64_cortex-a53'\n\
                              DISTRIB_DESCRIPTION='OpenWrt 24.10.0 r28427-6df0e3d02a'\nDISTRIB_TAINTS=''\n"
                .into(),
            df: "Filesystem           1K-blocks      Used Available Use% Mounted on\n/dev/root                 4352      4352         0 100% /rom\n\
                 overlayfs:/overlay      102400     23120     79280  23% /\n/dev/mtdblock6          102400     23120     79280  23% /overlay\n"
                .into(),
        }
    }

    /// What `info.cgi` and `dhcp.cgi` print for this router (their bodies, headers included as
    /// the scripts echo them): `iw dev`, a station dump per access point, `uptime`, and the
    /// lease file.
    pub fn cgi_output(&self) -> (String, String) {
        let h = &self.hostname;
        let mut info = format!(
            "Content-type: text/plain\n\n=== iw dev {h} ===\n{}",
            self.iw_dev
        );
        for (iface, _, dump) in &self.station_dumps {
            let _ = write!(info, "\n=== {iface} station dump {h} ===\n{dump}");
        }
        let _ = write!(info, "\n=== uptime {h} ===\n{}", self.uptime_cmd);
        let dhcp = format!("Content-type: text/plain\n\n{}", self.leases);
        (info, dhcp)
    }

    /// Parses every source with the agent's parsers and assembles the report a collection
    /// cycle of this router would send (seq 1, a fixed boot id and timestamp).
    pub fn parse_report(&self) -> Result<Report, GenParseError> {
        let ok = |kind, name: &str| SourceStatus {
            kind,
            name: name.to_string(),
            state: SourceState::Ok,
        };
        let mut sources = Vec::new();
        let board = board::parse(&self.board_json)
            .map_err(refused("board.json"))?
            .value;
        let release = openwrt_release::parse(&self.openwrt_release)
            .map_err(refused("openwrt_release"))?
            .value;
        sources.push(ok(SourceKind::RouterFacts, "board.json"));
        sources.push(ok(SourceKind::RouterFacts, "openwrt_release"));
        let mem = meminfo::parse(&self.meminfo)
            .map_err(refused("meminfo"))?
            .value;
        let up = uptime::parse(&self.proc_uptime)
            .map_err(refused("uptime"))?
            .value;
        let load = loadavg::parse(&self.loadavg)
            .map_err(refused("loadavg"))?
            .value;
        let cpu = proc_stat::parse(&self.stat).map_err(refused("stat"))?.value;
        let disks = disk::parse_df(&self.df).map_err(refused("df"))?.value;
        for n in ["meminfo", "uptime", "loadavg", "stat", "df"] {
            sources.push(ok(SourceKind::System, n));
        }
        let wireless = iw_dev::parse(&self.iw_dev)
            .map_err(refused("iw dev"))?
            .value;
        sources.push(ok(SourceKind::IwDev, ""));
        let mut stations = Vec::new();
        for (iface, _, dump) in &self.station_dumps {
            if dump.is_empty() {
                continue;
            }
            stations.extend(
                station_dump::parse(dump, iface)
                    .map_err(refused("station dump"))?
                    .value,
            );
            sources.push(ok(SourceKind::StationDump, iface));
        }
        let leases = if self.leases.is_empty() {
            Vec::new()
        } else {
            dhcp_leases::parse(&self.leases)
                .map_err(refused("dhcp leases"))?
                .value
        };
        sources.push(ok(SourceKind::DhcpLeases, ""));
        let wg = if self.wg_dump.is_empty() {
            Vec::new()
        } else {
            wireguard::parse_dump(&self.wg_dump)
                .map_err(refused("wg dump"))?
                .value
        };
        sources.push(ok(SourceKind::WireGuard, ""));
        let mut ovpn = Vec::new();
        if self
            .openvpn_status
            .lines()
            .any(|l| l.starts_with("CLIENT_LIST,"))
        {
            ovpn.push(
                openvpn::parse(&self.openvpn_status, "server")
                    .map_err(refused("openvpn status"))?
                    .value,
            );
            sources.push(ok(SourceKind::OpenVpn, "/var/run/openvpn/server.status"));
        }
        let mut interfaces = net_dev::parse(&self.net_dev)
            .map_err(refused("net/dev"))?
            .value;
        let wifi_names: Vec<String> = wireless.iter().map(|w| w.name.clone()).collect();
        let wg_names: Vec<String> = wg.iter().map(|w| w.name.clone()).collect();
        for i in &mut interfaces {
            i.kind = net_dev::classify_with(&i.name, &wifi_names, &wg_names);
        }
        sources.push(ok(SourceKind::NetDev, ""));
        let _ = cpu;
        Ok(Report {
            seq: 1,
            boot_id: [0x5a; 16],
            timestamp_ms: 1_763_877_123_456,
            dropped_reports: 0,
            router: RouterFacts {
                hostname: self.hostname.clone(),
                model: board.model_name,
                board: board.model_id,
                release: Some(release),
                kernel: Some("6.6.73".into()),
                agent_version: AGENT_VERSION.into(),
                arch: "aarch64".into(),
            },
            system: Some(SystemStats {
                uptime_s: up,
                load,
                cpu_busy_permille: Some(87),
                mem_total_kb: mem.total_kb,
                mem_available_kb: mem.available_kb,
                mem_available_derived: mem.available_derived,
                disks: disks
                    .into_iter()
                    .filter(|d| d.mount == "/overlay")
                    .collect(),
            }),
            interfaces,
            wireless,
            stations,
            leases,
            wireguard: wg,
            openvpn: ovpn,
            sources,
            // No probe or WAN source in the generated routers (they have no network to probe).
            probes: Vec::new(),
            wan: Vec::new(),
        })
    }

    /// The same report restricted to what the CGI scripts carry: wireless interfaces,
    /// stations, leases and uptime.
    pub fn cgi_equivalent(report: &Report) -> Report {
        Report {
            seq: report.seq,
            boot_id: report.boot_id,
            timestamp_ms: report.timestamp_ms,
            router: RouterFacts {
                hostname: report.router.hostname.clone(),
                ..Default::default()
            },
            system: report.system.as_ref().map(|s| SystemStats {
                uptime_s: s.uptime_s,
                load: s.load,
                ..Default::default()
            }),
            wireless: report.wireless.clone(),
            stations: report.stations.clone(),
            leases: report.leases.clone(),
            ..Default::default()
        }
    }

    /// Writes this router's text over a fake router root made by
    /// `routerstats_tests::fake_router::FakeRouter::create`: the /proc and /etc files, the lease
    /// file, the OpenVPN status directory and the data the fake `iw` and `wg` scripts print.
    pub fn write_root(&self, root: &Path) -> std::io::Result<()> {
        let w = |rel: &str, text: &str| std::fs::write(root.join(rel), text);
        w("proc/net/dev", &self.net_dev)?;
        w("proc/uptime", &self.proc_uptime)?;
        w("proc/meminfo", &self.meminfo)?;
        w("proc/stat", &self.stat)?;
        w("proc/loadavg", &self.loadavg)?;
        w("proc/sys/kernel/hostname", &format!("{}\n", self.hostname))?;
        w("etc/board.json", &self.board_json)?;
        w("etc/openwrt_release", &self.openwrt_release)?;
        w("tmp/dhcp.leases", &self.leases)?;
        for entry in std::fs::read_dir(root.join("var/run/openvpn"))? {
            std::fs::remove_file(entry?.path())?;
        }
        w("var/run/openvpn/server.status", &self.openvpn_status)?;
        for entry in std::fs::read_dir(root.join("data/iw"))? {
            std::fs::remove_file(entry?.path())?;
        }
        w("data/iw/iw-dev.txt", &self.iw_dev)?;
        for (iface, _, dump) in &self.station_dumps {
            w(&format!("data/iw/station-dump-{iface}.txt"), dump)?;
        }
        w("data/wg/dump.txt", &self.wg_dump)
    }
}

/// The same router `secs` seconds later, as the next collection cycle would see it: `seq` + 1,
/// the clock and uptime advanced, load, CPU and free memory moved; every interface and
/// station counter grown (two stations in three active with 100-900 KB each way per 30 s, the
/// rest a few KB), inactive times, signals and some bitrates changed; WireGuard and OpenVPN
/// counters grown, a third of the WireGuard handshakes renewed, the OpenVPN status rewritten.
/// Leases, interface names and facts stay as they were (no station joins or leaves).
pub fn steady_state_later(report: &Report, secs: u64, seed: u64) -> Report {
    let mut r = report.clone();
    let mut rng = Rng::new(seed ^ 0x5eed_1a7e);
    let scale = secs.max(1);
    let grow = |v: &mut u64, rng: &mut Rng, lo: u64, hi: u64| {
        *v = v.saturating_add(rng.range(lo, hi) * scale / 30);
    };
    let grow_opt = |v: &mut Option<u64>, rng: &mut Rng, lo: u64, hi: u64| {
        if let Some(x) = v.as_mut() {
            *x = x.saturating_add(rng.range(lo, hi) * scale / 30);
        }
    };
    r.seq += 1;
    r.timestamp_ms += secs * 1000;
    let now_s = r.timestamp_ms / 1000;
    if let Some(sys) = r.system.as_mut() {
        sys.uptime_s += secs;
        for l in sys.load.iter_mut() {
            *l = (*l + rng.range(0, 20) as f32 / 100.0 - 0.1).max(0.0);
        }
        sys.cpu_busy_permille = Some(rng.range(20, 300) as u16);
        sys.mem_available_kb =
            sys.mem_available_kb.saturating_sub(rng.range(0, 800)) + rng.range(0, 800);
        for d in sys.disks.iter_mut() {
            d.used_bytes = d.used_bytes.saturating_add(rng.range(0, 64) * 4096);
        }
    }
    for i in r.interfaces.iter_mut() {
        let busy = i.rx_bytes > 0;
        if busy {
            grow(&mut i.rx_bytes, &mut rng, 2_000_000, 20_000_000);
            grow(&mut i.tx_bytes, &mut rng, 1_000_000, 10_000_000);
            grow(&mut i.rx_packets, &mut rng, 2_000, 15_000);
            grow(&mut i.tx_packets, &mut rng, 1_000, 9_000);
            grow(&mut i.rx_multicast, &mut rng, 0, 40);
            grow(&mut i.rx_drop, &mut rng, 0, 2);
        }
    }
    for s in r.stations.iter_mut() {
        let active = rng.range(0, 2) > 0;
        let (lo, hi) = if active {
            (100_000, 900_000)
        } else {
            (200, 8_000)
        };
        let st = &mut s.stats;
        grow_opt(&mut st.rx_bytes, &mut rng, lo, hi);
        grow_opt(&mut st.tx_bytes, &mut rng, lo, hi);
        grow_opt(&mut st.rx_packets, &mut rng, lo / 900, hi / 700);
        grow_opt(&mut st.tx_packets, &mut rng, lo / 900, hi / 700);
        grow_opt(&mut st.tx_retries, &mut rng, 0, hi / 20_000);
        grow_opt(&mut st.tx_failed, &mut rng, 0, 1);
        if let Some(x) = st.inactive_ms.as_mut() {
            *x = if active {
                rng.range(0, 400)
            } else {
                rng.range(500, 20_000)
            };
        }
        for sig in [st.signal.as_mut(), st.signal_avg.as_mut()]
            .into_iter()
            .flatten()
        {
            let d = rng.range(0, 4) as i32 - 2;
            sig.dbm += d;
            for c in sig.chains.iter_mut() {
                *c += rng.range(0, 4) as i32 - 2;
            }
        }
        if let Some(x) = st.last_ack_signal_dbm.as_mut() {
            *x += rng.range(0, 4) as i32 - 2;
        }
        if rng.range(0, 2) == 0 {
            for b in [st.tx_bitrate.as_mut(), st.rx_bitrate.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Some(m) = b.mcs.as_mut() {
                    *m = (*m + 1).min(11);
                }
                b.kbps = b.kbps + b.kbps / 10;
            }
            if let Some(t) = st.expected_throughput_kbps.as_mut() {
                *t += *t / 12;
            }
        }
        if let Some(c) = s.connected_s.as_mut() {
            *c += secs;
        }
    }
    for wg in r.wireguard.iter_mut() {
        for p in wg.peers.iter_mut() {
            if p.latest_handshake.is_some() {
                grow(&mut p.rx_bytes, &mut rng, 5_000, 500_000);
                grow(&mut p.tx_bytes, &mut rng, 5_000, 500_000);
                if rng.range(0, 2) == 0 {
                    p.latest_handshake = Some(now_s - rng.range(0, secs));
                }
            }
        }
    }
    for o in r.openvpn.iter_mut() {
        if let Some(u) = o.updated.as_mut() {
            *u += secs;
        }
        for c in o.clients.iter_mut() {
            grow(&mut c.bytes_received, &mut rng, 2_000, 300_000);
            grow(&mut c.bytes_sent, &mut rng, 2_000, 300_000);
        }
        for rt in o.routes.iter_mut() {
            if let Some(l) = rt.last_ref.as_mut() {
                *l = now_s - rng.range(0, secs);
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_router_parses_completely() {
        let t = RouterText::generate(Shape::REALISTIC, 1);
        let r = t.parse_report().unwrap();
        assert_eq!(r.stations.len(), 30);
        assert_eq!(r.wireless.len(), 2);
        let ssids: std::collections::BTreeSet<_> =
            r.wireless.iter().filter_map(|w| w.ssid.clone()).collect();
        assert_eq!(ssids.len(), 2);
        assert_eq!(r.leases.len(), 30);
        assert_eq!(r.wireguard.iter().map(|w| w.peers.len()).sum::<usize>(), 10);
        assert_eq!(r.openvpn.iter().map(|o| o.clients.len()).sum::<usize>(), 10);
        assert_eq!(r.interfaces.len(), 8);
        // Every station line was understood: none malformed (lines iw prints that the parser
        // does not use, such as `preamble`, are listed as unused notes, not as errors).
        for (iface, _, dump) in &t.station_dumps {
            let parsed = station_dump::parse(dump, iface).unwrap();
            let malformed: Vec<_> = parsed.malformed().collect();
            assert!(malformed.is_empty(), "{iface}: {malformed:?}");
        }
        assert!(dhcp_leases::parse(&t.leases).unwrap().skipped.is_empty());
        assert!(wireguard::parse_dump(&t.wg_dump)
            .unwrap()
            .skipped
            .is_empty());
        assert!(net_dev::parse(&t.net_dev).unwrap().skipped.is_empty());
    }

    #[test]
    fn steady_state_grows_counters_and_patches_small() {
        use routerstats_shared::{patch, Message, MAX_FRAME_LEN};
        let r = RouterText::generate(Shape::REALISTIC, 1)
            .parse_report()
            .unwrap();
        let later = steady_state_later(&r, 30, 1);
        assert_eq!(later.seq, r.seq + 1);
        assert_eq!(later.timestamp_ms, r.timestamp_ms + 30_000);
        assert_eq!(later.stations.len(), r.stations.len());
        for (a, b) in r.stations.iter().zip(&later.stations) {
            assert!(b.stats.rx_bytes > a.stats.rx_bytes, "{:?}", b.mac);
        }
        assert_eq!(later.leases, r.leases);
        let enc = |r: &Report| {
            Message::Report(Box::new(r.clone()))
                .encode_payload()
                .unwrap()
        };
        let (p1, p2) = (enc(&r), enc(&later));
        let diff = patch::encode(&p1, &p2);
        assert_eq!(patch::apply(&p1, &diff, MAX_FRAME_LEN).unwrap(), p2);
        // The target: <= 10% of the 28,657 CGI bytes.
        assert!(diff.len() + 8 <= 2_865, "{} bytes", diff.len());
    }

    #[test]
    fn ingest_shape_has_only_stations_and_interfaces() {
        let r = RouterText::generate(Shape::INGEST, 3)
            .parse_report()
            .unwrap();
        assert_eq!(r.stations.len(), 20);
        assert_eq!(r.interfaces.len(), 8);
        assert!(r.leases.is_empty() && r.wireguard.is_empty() && r.openvpn.is_empty());
    }

    #[test]
    fn cgi_output_names_every_access_point() {
        let t = RouterText::generate(Shape::REALISTIC, 2);
        let (info, dhcp) = t.cgi_output();
        assert!(info.contains("=== phy0-ap0 station dump"));
        assert!(info.contains("=== phy1-ap0 station dump"));
        assert!(info.contains("load average"));
        assert_eq!(
            dhcp.lines().filter(|l| l.contains(" 192.168.1.")).count(),
            25
        );
    }
}
