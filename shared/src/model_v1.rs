//! The report model as version 1 agents send it (message kind [`crate::MessageKind::ReportV1`]),
//! frozen: bincode is positional, so a report of an older agent decodes only with the exact
//! field list it was encoded with. Only the types that changed since are copied here; the
//! others are shared with [`crate::model`]. A decoded v1 report converts into the current
//! [`Report`], with the fields v1 did not have left empty.
//!
//! Collector-only in practice: the agent never decodes reports, so none of this is linked
//! into it.

use serde::Deserialize;

use crate::model::{
    self, Bitrate, DhcpLease, MacAddr, NetInterface, OvpnClient, OvpnFormat, OvpnRoute,
    OvpnStatistics, Preamble, RouterFacts, Signal, SourceStatus, SystemStats, WgInterface,
    WifiIfType,
};

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Report {
    seq: u64,
    boot_id: [u8; 16],
    timestamp_ms: u64,
    dropped_reports: u64,
    router: RouterFacts,
    system: Option<SystemStats>,
    interfaces: Vec<NetInterface>,
    wireless: Vec<WirelessInterface>,
    stations: Vec<Station>,
    leases: Vec<DhcpLease>,
    wireguard: Vec<WgInterface>,
    openvpn: Vec<OvpnInstance>,
    sources: Vec<SourceStatus>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct WirelessInterface {
    phy: Option<u32>,
    name: String,
    ifindex: Option<u32>,
    wdev: Option<u64>,
    addr: Option<MacAddr>,
    iftype: WifiIfType,
    ssid: Option<String>,
    channel: Option<u32>,
    freq_mhz: Option<u32>,
    width_mhz: Option<u32>,
    center1_mhz: Option<u32>,
    center2_mhz: Option<u32>,
    txpower_dbm: Option<f32>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct MeshPeer {
    llid: Option<u32>,
    plid: Option<u32>,
    plink: Option<String>,
    airtime_metric: Option<u32>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct StationLinkStats {
    inactive_ms: Option<u64>,
    rx_bytes: Option<u64>,
    rx_packets: Option<u64>,
    tx_bytes: Option<u64>,
    tx_packets: Option<u64>,
    tx_retries: Option<u64>,
    tx_failed: Option<u64>,
    beacon_loss: Option<u64>,
    rx_drop_misc: Option<u64>,
    signal: Option<Signal>,
    signal_avg: Option<Signal>,
    last_ack_signal_dbm: Option<i32>,
    tx_bitrate: Option<Bitrate>,
    rx_bitrate: Option<Bitrate>,
    expected_throughput_kbps: Option<u32>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct StationLink {
    link_id: u8,
    addr: Option<MacAddr>,
    stats: StationLinkStats,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct Station {
    mac: MacAddr,
    interface: String,
    stats: StationLinkStats,
    connected_s: Option<u64>,
    authorized: Option<bool>,
    authenticated: Option<bool>,
    associated: Option<bool>,
    wmm: Option<bool>,
    mfp: Option<bool>,
    tdls_peer: Option<bool>,
    preamble: Option<Preamble>,
    mesh: Option<MeshPeer>,
    associated_at_ms: Option<u64>,
    links: Vec<StationLink>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct OvpnInstance {
    name: String,
    format: OvpnFormat,
    title: Option<String>,
    updated: Option<u64>,
    clients: Vec<OvpnClient>,
    routes: Vec<OvpnRoute>,
    statistics: Option<OvpnStatistics>,
}

impl From<Report> for model::Report {
    fn from(r: Report) -> Self {
        model::Report {
            seq: r.seq,
            boot_id: r.boot_id,
            timestamp_ms: r.timestamp_ms,
            dropped_reports: r.dropped_reports,
            router: r.router,
            system: r.system,
            interfaces: r.interfaces,
            wireless: r.wireless.into_iter().map(Into::into).collect(),
            stations: r.stations.into_iter().map(Into::into).collect(),
            leases: r.leases,
            wireguard: r.wireguard,
            openvpn: r.openvpn.into_iter().map(Into::into).collect(),
            sources: r.sources,
            probes: Vec::new(),
            wan: Vec::new(),
        }
    }
}

impl From<WirelessInterface> for model::WirelessInterface {
    fn from(w: WirelessInterface) -> Self {
        model::WirelessInterface {
            phy: w.phy,
            name: w.name,
            ifindex: w.ifindex,
            wdev: w.wdev,
            addr: w.addr,
            iftype: w.iftype,
            ssid: w.ssid,
            channel: w.channel,
            freq_mhz: w.freq_mhz,
            width_mhz: w.width_mhz,
            center1_mhz: w.center1_mhz,
            center2_mhz: w.center2_mhz,
            txpower_dbm: w.txpower_dbm,
            links: Vec::new(),
        }
    }
}

impl From<StationLinkStats> for model::StationLinkStats {
    fn from(s: StationLinkStats) -> Self {
        model::StationLinkStats {
            inactive_ms: s.inactive_ms,
            rx_bytes: s.rx_bytes,
            rx_packets: s.rx_packets,
            tx_bytes: s.tx_bytes,
            tx_packets: s.tx_packets,
            tx_retries: s.tx_retries,
            tx_failed: s.tx_failed,
            beacon_loss: s.beacon_loss,
            rx_drop_misc: s.rx_drop_misc,
            signal: s.signal,
            signal_avg: s.signal_avg,
            last_ack_signal_dbm: s.last_ack_signal_dbm,
            tx_bitrate: s.tx_bitrate,
            rx_bitrate: s.rx_bitrate,
            expected_throughput_kbps: s.expected_throughput_kbps,
            tx_duration_us: None,
            rx_duration_us: None,
            airtime_weight: None,
        }
    }
}

impl From<Station> for model::Station {
    fn from(s: Station) -> Self {
        model::Station {
            mac: s.mac,
            interface: s.interface,
            stats: s.stats.into(),
            connected_s: s.connected_s,
            authorized: s.authorized,
            authenticated: s.authenticated,
            associated: s.associated,
            wmm: s.wmm,
            mfp: s.mfp,
            tdls_peer: s.tdls_peer,
            preamble: s.preamble,
            mesh: s.mesh.map(|m| model::MeshPeer {
                llid: m.llid,
                plid: m.plid,
                plink: m.plink,
                airtime_metric: m.airtime_metric,
                connected_to_gate: None,
                connected_to_auth_server: None,
            }),
            associated_at_ms: s.associated_at_ms,
            current_time_ms: None,
            links: s
                .links
                .into_iter()
                .map(|l| model::StationLink {
                    link_id: l.link_id,
                    addr: l.addr,
                    stats: l.stats.into(),
                })
                .collect(),
        }
    }
}

impl From<OvpnInstance> for model::OvpnInstance {
    fn from(o: OvpnInstance) -> Self {
        model::OvpnInstance {
            name: o.name,
            format: o.format,
            title: o.title,
            updated: o.updated,
            clients: o.clients,
            routes: o.routes,
            statistics: o.statistics,
            global: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::{frame::MessageKind, MAX_FRAME_LEN};

    fn stats(rx: u64) -> StationLinkStats {
        StationLinkStats {
            inactive_ms: Some(5),
            rx_bytes: Some(rx),
            rx_packets: None,
            tx_bytes: Some(rx * 2),
            tx_packets: None,
            tx_retries: None,
            tx_failed: None,
            beacon_loss: None,
            rx_drop_misc: None,
            signal: Some(Signal {
                dbm: -50,
                chains: vec![-51, -52],
            }),
            signal_avg: None,
            last_ack_signal_dbm: None,
            tx_bitrate: Some(Bitrate {
                kbps: 866_700,
                width_mhz: Some(80),
                ..Bitrate::default()
            }),
            rx_bitrate: None,
            expected_throughput_kbps: Some(500_000),
        }
    }

    /// A report as a version 1 agent encodes it: every type that changed since, populated.
    fn v1_report() -> Report {
        Report {
            seq: 7,
            boot_id: [3; 16],
            timestamp_ms: 1_700_000_000_000,
            dropped_reports: 1,
            router: RouterFacts {
                hostname: "old-ap".into(),
                agent_version: "0.1.0".into(),
                ..Default::default()
            },
            system: None,
            interfaces: vec![],
            wireless: vec![WirelessInterface {
                phy: Some(1),
                name: "wlan1".into(),
                ifindex: Some(9),
                wdev: Some(1),
                addr: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                iftype: WifiIfType::Ap,
                ssid: Some("Home".into()),
                channel: Some(36),
                freq_mhz: Some(5180),
                width_mhz: Some(80),
                center1_mhz: Some(5210),
                center2_mhz: None,
                txpower_dbm: Some(23.0),
            }],
            stations: vec![Station {
                mac: MacAddr([2, 0, 0, 0, 0, 9]),
                interface: "wlan1".into(),
                stats: stats(100),
                connected_s: Some(60),
                authorized: Some(true),
                authenticated: None,
                associated: None,
                wmm: None,
                mfp: None,
                tdls_peer: None,
                preamble: Some(Preamble::Short),
                mesh: Some(MeshPeer {
                    llid: Some(1),
                    plid: Some(2),
                    plink: Some("ESTAB".into()),
                    airtime_metric: Some(99),
                }),
                associated_at_ms: Some(1_699_999_999_000),
                links: vec![StationLink {
                    link_id: 1,
                    addr: None,
                    stats: stats(40),
                }],
            }],
            leases: vec![],
            wireguard: vec![],
            openvpn: vec![OvpnInstance {
                name: "server".into(),
                format: OvpnFormat::V2,
                title: None,
                updated: Some(5),
                clients: vec![],
                routes: vec![],
                statistics: None,
            }],
            sources: vec![],
        }
    }

    #[test]
    fn a_version_1_report_frame_decodes_into_the_current_model() {
        let payload = crate::codec::encode(&v1_report()).unwrap();
        let frame = crate::message::frame_bytes(MessageKind::ReportV1, &payload).unwrap();
        let (Message::Report(r), _) = Message::from_frame(&frame, MAX_FRAME_LEN).unwrap() else {
            panic!("not a report")
        };
        assert_eq!((r.seq, r.router.hostname.as_str()), (7, "old-ap"));
        let w = &r.wireless[0];
        assert_eq!(
            (w.name.as_str(), w.channel, w.width_mhz, w.txpower_dbm),
            ("wlan1", Some(36), Some(80), Some(23.0))
        );
        assert!(w.links.is_empty());
        let st = &r.stations[0];
        assert_eq!(
            (
                st.stats.rx_bytes,
                st.stats.tx_duration_us,
                st.current_time_ms
            ),
            (Some(100), None, None)
        );
        assert_eq!(
            st.mesh
                .as_ref()
                .map(|m| (m.airtime_metric, m.connected_to_gate)),
            Some((Some(99), None))
        );
        assert_eq!(st.links[0].stats.rx_bytes, Some(40));
        assert_eq!(st.stats.tx_bitrate.as_ref().map(|b| b.kbps), Some(866_700));
        assert_eq!(
            (r.openvpn[0].updated, r.openvpn[0].global.clone()),
            (Some(5), None)
        );
        // The same bytes are not a current-model report: the kind tells the two apart.
        let wrong = crate::message::frame_bytes(MessageKind::Report, &payload).unwrap();
        assert!(Message::from_frame(&wrong, MAX_FRAME_LEN).is_err());
    }

    #[test]
    fn current_reports_use_the_new_kind() {
        let m = Message::Report(Box::default());
        assert_eq!(m.kind(), MessageKind::Report);
        assert_eq!(MessageKind::Report as u8, 14);
        assert_eq!(MessageKind::ReportV1 as u8, 2);
        assert!(MessageKind::ReportV1.is_full_report() && MessageKind::Report.is_full_report());
        assert!(!MessageKind::ReportPatch.is_full_report());
    }
}
