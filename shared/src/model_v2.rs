//! The report model as version 2 agents send it (message kind [`crate::MessageKind::ReportV2`]):
//! the model before active probes and WAN addresses, frozen. bincode is positional, so such a
//! report decodes only with the exact field list it was encoded with. Only [`Report`] changed
//! since; every other type is shared with [`crate::model`]. A decoded v2 report converts into
//! the current [`model::Report`] with no probes and no WAN addresses.
//!
//! Collector-only in practice: the agent never decodes reports.

use serde::Deserialize;

use crate::model::{
    self, DhcpLease, NetInterface, OvpnInstance, RouterFacts, SourceStatus, Station, SystemStats,
    WgInterface, WirelessInterface,
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
            wireless: r.wireless,
            stations: r.stations,
            leases: r.leases,
            wireguard: r.wireguard,
            openvpn: r.openvpn,
            sources: r.sources,
            probes: Vec::new(),
            wan: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::{frame::MessageKind, MAX_FRAME_LEN};

    #[test]
    fn a_version_2_report_frame_decodes_into_the_current_model() {
        let v2 = Report {
            seq: 4,
            boot_id: [1; 16],
            timestamp_ms: 1_700_000_000_000,
            dropped_reports: 0,
            router: RouterFacts {
                hostname: "v2-ap".into(),
                ..Default::default()
            },
            system: None,
            interfaces: vec![],
            wireless: vec![],
            stations: vec![],
            leases: vec![],
            wireguard: vec![],
            openvpn: vec![],
            sources: vec![SourceStatus {
                kind: model::SourceKind::NetDev,
                name: String::new(),
                state: model::SourceState::Ok,
            }],
        };
        let payload = crate::codec::encode(&v2).unwrap();
        let frame = crate::message::frame_bytes(MessageKind::ReportV2, &payload).unwrap();
        let (Message::Report(r), _) = Message::from_frame(&frame, MAX_FRAME_LEN).unwrap() else {
            panic!("not a report")
        };
        assert_eq!(
            (r.seq, r.router.hostname.as_str(), r.sources.len()),
            (4, "v2-ap", 1)
        );
        assert!(r.probes.is_empty() && r.wan.is_empty());
        // The same bytes are not a current-model report: the kind tells the two apart.
        let wrong = crate::message::frame_bytes(MessageKind::Report, &payload).unwrap();
        assert!(Message::from_frame(&wrong, MAX_FRAME_LEN).is_err());
    }

    #[test]
    fn current_reports_use_kind_14() {
        assert_eq!(Message::Report(Box::default()).kind(), MessageKind::Report);
        assert_eq!(
            (MessageKind::Report as u8, MessageKind::ReportV2 as u8),
            (14, 11)
        );
        assert!(MessageKind::ReportV2.is_full_report());
    }
}
