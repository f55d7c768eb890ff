//! Test helpers: a store in a temporary directory, tokens, routers and a rich report.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use routerstats_shared::model::*;

use super::{CertInfo, IngestItem, NewToken, RouterRow, Store};

/// A fresh store in a temporary directory (keep the directory alive while using the store).
pub(crate) fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("routerstats.db")).unwrap();
    (dir, store)
}

/// A store with router `gw1` whose report of `now_ms - 60 s` (boot `boot`, seq 1) is written
/// with its rollup sums, and a rollup hold of 5 minutes set: the rollup sums of the reports
/// ingested next are held in memory. Returns the router's id too.
pub(crate) fn store_holding_rollups(boot: u8, now_ms: i64) -> (tempfile::TempDir, Store, i64) {
    let (dir, mut store) = open_temp();
    let router = enrolled_router(&mut store, "gw1").id;
    let ts = now_ms - 60_000;
    ingest_one(
        &mut store,
        router,
        ts,
        &rich_report([boot; 16], 1, ts as u64, 2),
    );
    store.set_rollup_hold(std::time::Duration::from_secs(300));
    (dir, store, router)
}

/// A token for site `site-a`, created at 0, expiring at 100_000.
pub(crate) fn new_token(id: &str, secret_hash: [u8; 32], name: &str, max_uses: u32) -> NewToken {
    NewToken {
        id: id.to_string(),
        secret_hash,
        name: name.to_string(),
        site: Some("site-a".to_string()),
        created_at: 0,
        expires_at: 100_000,
        max_uses,
    }
}

/// Enrolls a router called `name` with a fresh single-use token.
pub(crate) fn enrolled_router(store: &mut Store, name: &str) -> RouterRow {
    let id = format!("t{:07}", store.list_tokens().unwrap().len());
    store
        .insert_token(&new_token(&id, [9; 32], name, 1))
        .unwrap();
    let fp = format!("fp-{name}");
    store
        .enroll(&id, &[9; 32], None, "OpenWrt", 10, |_| {
            Ok(CertInfo {
                fingerprint: fp,
                not_after: 1_000_000,
            })
        })
        .unwrap()
}

/// Stores one `report` of router `router_id`, received at `received_at_ms`.
pub(crate) fn ingest_one(store: &mut Store, router_id: i64, received_at_ms: i64, report: &Report) {
    store
        .ingest(&[IngestItem {
            router_id,
            received_at_ms,
            report,
        }])
        .unwrap();
}

/// Asserts that two queries return the same rows (as sets: each one `EXCEPT` the other is empty).
pub(crate) fn assert_same_rows(store: &Store, a: &str, b: &str, what: &str) {
    for (x, y) in [(a, b), (b, a)] {
        let n: i64 = store
            .connection()
            .query_row(&format!("SELECT count(*) FROM ({x} EXCEPT {y})"), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 0, "{what}: {x} EXCEPT {y}");
    }
}

pub(crate) fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, last])
}

/// A report with something in every section. Every counter is `c` times a per-item factor,
/// so two reports with counters `c1 < c2` have known deltas (`c` up to `u64::MAX / 1000`).
pub(crate) fn rich_report(boot_id: [u8; 16], seq: u64, ts_ms: u64, c: u64) -> Report {
    let link = |kbps| StationLinkStats {
        inactive_ms: Some(120),
        rx_bytes: Some(c * 10),
        tx_bytes: Some(c * 20),
        rx_packets: Some(c),
        tx_packets: Some(c * 2),
        tx_retries: Some(c / 10),
        tx_failed: Some(1),
        signal: Some(Signal {
            dbm: -55,
            chains: vec![-56, -58],
        }),
        signal_avg: Some(Signal {
            dbm: -54,
            chains: vec![],
        }),
        tx_bitrate: Some(Bitrate {
            kbps,
            standard: WifiStandard::He,
            mcs: Some(9),
            nss: Some(2),
            width_mhz: Some(80),
            ..Default::default()
        }),
        rx_bitrate: Some(Bitrate {
            kbps: kbps / 2,
            ..Default::default()
        }),
        expected_throughput_kbps: Some(kbps / 2),
        ..Default::default()
    };
    Report {
        seq,
        boot_id,
        timestamp_ms: ts_ms,
        dropped_reports: 0,
        router: RouterFacts {
            hostname: "gw-lab".into(),
            model: Some("GL.iNet GL-MT6000".into()),
            board: Some("glinet,gl-mt6000".into()),
            release: Some(OpenWrtRelease {
                distrib_id: Some("OpenWrt".into()),
                release: Some("23.05.3".into()),
                revision: Some("r23809-234f1a2efa".into()),
                target: Some("mediatek/filogic".into()),
                ..Default::default()
            }),
            kernel: Some("5.15.150".into()),
            agent_version: "0.1.0".into(),
            arch: "aarch64".into(),
        },
        system: Some(SystemStats {
            uptime_s: seq.saturating_mul(30).saturating_add(3600),
            load: [0.25, 0.5, 0.75],
            cpu_busy_permille: Some(123),
            mem_total_kb: 1_000_000,
            mem_available_kb: 600_000,
            mem_available_derived: false,
            disks: vec![DiskUsage {
                mount: "/overlay".into(),
                total_bytes: 100_000_000,
                used_bytes: 5_000_000,
            }],
        }),
        interfaces: vec![
            NetInterface {
                name: "eth0".into(),
                kind: IfKind::Ethernet,
                rx_bytes: c * 1000,
                tx_bytes: c * 500,
                rx_packets: c,
                tx_packets: c,
                ..Default::default()
            },
            NetInterface {
                name: "phy0-ap0".into(),
                kind: IfKind::Wifi,
                rx_bytes: c * 300,
                tx_bytes: c * 700,
                rx_errs: 2,
                tx_drop: 1,
                ..Default::default()
            },
        ],
        wireless: vec![WirelessInterface {
            phy: Some(0),
            name: "phy0-ap0".into(),
            ifindex: Some(12),
            wdev: Some(1),
            addr: Some(mac(0xf0)),
            iftype: WifiIfType::Ap,
            ssid: Some("lab".into()),
            channel: Some(36),
            freq_mhz: Some(5180),
            width_mhz: Some(80),
            center1_mhz: Some(5210),
            center2_mhz: None,
            txpower_dbm: Some(23.0),
            links: vec![],
        }],
        stations: vec![
            Station {
                mac: mac(1),
                interface: "phy0-ap0".into(),
                stats: link(866_700),
                connected_s: Some(seq.saturating_mul(30).saturating_add(100)),
                ..Default::default()
            },
            // An MLO station: counters only in its links.
            Station {
                mac: mac(2),
                interface: "phy0-ap0".into(),
                connected_s: Some(seq.saturating_mul(30).saturating_add(50)),
                links: vec![
                    StationLink {
                        link_id: 0,
                        addr: Some(mac(0x20)),
                        stats: link(1_200_000),
                    },
                    StationLink {
                        link_id: 1,
                        addr: Some(mac(0x21)),
                        stats: link(600_000),
                    },
                ],
                ..Default::default()
            },
        ],
        leases: vec![
            DhcpLease {
                expires: Some(1_700_000_000),
                mac: Some(mac(1)),
                ip: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
                hostname: Some("laptop".into()),
                client_id: Some("01:02:11:22:33:44:01".into()),
                iaid: None,
            },
            DhcpLease {
                expires: None,
                mac: None,
                ip: "fd00::10".parse().unwrap(),
                hostname: None,
                client_id: Some("00:01:00:01".into()),
                iaid: Some(7),
            },
        ],
        wireguard: vec![WgInterface {
            name: "wg0".into(),
            public_key: Some("SERVERKEY=".into()),
            listen_port: Some(51820),
            fwmark: None,
            peers: vec![WgPeer {
                public_key: "PEERKEY1=".into(),
                name: Some("phone".into()),
                has_preshared_key: true,
                endpoint: Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
                    40000,
                )),
                allowed_ips: vec![
                    "10.70.0.2/32".parse().unwrap(),
                    "fd70::2/128".parse().unwrap(),
                ],
                latest_handshake: Some(1_700_000_000),
                rx_bytes: c * 40,
                tx_bytes: c * 80,
                keepalive_s: Some(25),
            }],
        }],
        openvpn: vec![OvpnInstance {
            name: "server".into(),
            format: OvpnFormat::V2,
            clients: vec![OvpnClient {
                common_name: "alice".into(),
                real_address: Some("203.0.113.5:51000".into()),
                virtual_address: Some(IpAddr::V4(Ipv4Addr::new(10, 8, 0, 6))),
                virtual_ipv6: None,
                bytes_received: c * 60,
                bytes_sent: c * 90,
                connected_since: Some(1_699_999_000),
                username: None,
                client_id: Some(3),
                peer_id: Some(0),
                cipher: Some("AES-256-GCM".into()),
            }],
            ..Default::default()
        }],
        sources: vec![
            SourceStatus {
                kind: SourceKind::StationDump,
                name: "phy0-ap0".into(),
                state: SourceState::Ok,
            },
            SourceStatus {
                kind: SourceKind::OpenVpn,
                name: "/var/run/openvpn.server.status".into(),
                state: SourceState::Partial {
                    skipped: 1,
                    first_error: "bad row".into(),
                },
            },
            SourceStatus {
                kind: SourceKind::WireGuard,
                name: String::new(),
                state: SourceState::ToolMissing("wg".into()),
            },
        ],
        probes: Vec::new(),
        wan: Vec::new(),
    }
}

/// A Wi-Fi 7 multi-link AP interface `ap-mld0` (SSID `Seven`): a 5 GHz 160 MHz link and a 6 GHz
/// 320 MHz link, no interface-level channel.
pub(crate) fn mld_interface() -> WirelessInterface {
    WirelessInterface {
        phy: Some(0),
        name: "ap-mld0".into(),
        ifindex: None,
        wdev: None,
        addr: None,
        iftype: WifiIfType::Ap,
        ssid: Some("Seven".into()),
        channel: None,
        freq_mhz: None,
        width_mhz: None,
        center1_mhz: None,
        center2_mhz: None,
        txpower_dbm: None,
        links: vec![
            WifiLink {
                link_id: 1,
                channel: Some(36),
                freq_mhz: Some(5180),
                width_mhz: Some(160),
                ..WifiLink::default()
            },
            WifiLink {
                link_id: 2,
                addr: Some(mac(0x62)),
                channel: Some(37),
                freq_mhz: Some(6135),
                width_mhz: Some(320),
                txpower_dbm: Some(21.5),
                ..WifiLink::default()
            },
        ],
    }
}
