//! `routerstats-agent snapshot`: one collection, printed as JSON or as a summary a person reads.

use std::fmt::Write as _;
use std::time::Duration;

use routerstats_shared::{Message, Report, SourceState};

use crate::collect::ReportBuilder;
use crate::config::AgentConfig;

/// How long `snapshot` waits between its two /proc/stat samples to report CPU busy share.
pub const CPU_SAMPLE: Duration = Duration::from_millis(250);

/// Collects one report, sampling /proc/stat twice so CPU busy share is filled in.
pub fn take(cfg: AgentConfig) -> Report {
    let mut c = ReportBuilder::new(cfg);
    c.prime_cpu();
    std::thread::sleep(CPU_SAMPLE);
    let mut r = c.collect();
    r.seq = 1;
    r
}

/// Why a snapshot could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot render JSON: {0}")]
    Json(#[from] crate::json::JsonError),
    #[error("report does not fit in a frame: {0}")]
    Frame(#[from] routerstats_shared::FrameError),
}

/// Renders a report: pretty JSON, or a summary with the encoded frame size.
pub fn render(report: &Report, json: bool) -> Result<String, RenderError> {
    if json {
        return Ok(crate::json::to_string_pretty(
            &crate::json::to_value_in_order(report)?,
        ));
    }
    let frame = Message::Report(Box::new(report.clone())).to_request_frame()?;
    let r = &report.router;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "router     {} ({})",
        r.hostname,
        r.model.as_deref().unwrap_or("unknown model")
    );
    if let Some(rel) = &r.release {
        let _ = writeln!(
            s,
            "release    {}",
            rel.description
                .as_deref()
                .or(rel.release.as_deref())
                .unwrap_or("?")
        );
    }
    if let Some(sys) = &report.system {
        let _ = writeln!(
            s,
            "system     up {}s, load {:.2} {:.2} {:.2}, cpu {}, mem {}/{} kB available",
            sys.uptime_s,
            sys.load[0],
            sys.load[1],
            sys.load[2],
            sys.cpu_busy_permille
                .map(|p| format!("{:.1}%", p as f32 / 10.0))
                .unwrap_or_else(|| "?".into()),
            sys.mem_available_kb,
            sys.mem_total_kb
        );
        for d in &sys.disks {
            let _ = writeln!(
                s,
                "disk       {} {}/{} bytes used",
                d.mount, d.used_bytes, d.total_bytes
            );
        }
    }
    let peers: usize = report.wireguard.iter().map(|w| w.peers.len()).sum();
    let clients: usize = report.openvpn.iter().map(|o| o.clients.len()).sum();
    let _ = writeln!(
        s,
        "counts     {} interfaces, {} wireless, {} stations, {} leases, {} wireguard peers, {} openvpn clients",
        report.interfaces.len(),
        report.wireless.len(),
        report.stations.len(),
        report.leases.len(),
        peers,
        clients
    );
    for src in &report.sources {
        let name = if src.name.is_empty() {
            String::new()
        } else {
            format!(" {}", src.name)
        };
        let state = match &src.state {
            SourceState::Ok => "ok".to_string(),
            SourceState::Partial {
                skipped,
                first_error,
            } => format!("partial: {skipped} skipped ({first_error})"),
            SourceState::Error(e) => format!("error: {e}"),
            SourceState::ToolMissing(t) => format!("tool missing: {t}"),
            SourceState::Disabled => "disabled".into(),
        };
        let _ = writeln!(s, "source     {}{name}: {state}", src.kind.as_str());
    }
    let _ = write!(s, "frame      {} bytes", frame.len());
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources;
    use crate::testutil::own_fixture;
    use routerstats_shared::model::*;

    /// A report with every part filled from the agent's fixtures, odd floats and text included.
    fn full_report() -> Report {
        let mut r = Report {
            seq: 1,
            boot_id: [0xab; 16],
            timestamp_ms: 1_765_000_000_123,
            dropped_reports: 2,
            router: RouterFacts {
                hostname: "ap-\"1\"\n\u{1}é".into(),
                model: Some("D-Link DIR-878 A1".into()),
                release: Some(sources::openwrt_release::parse(&own_fixture("etc/openwrt_release")).unwrap().value),
                agent_version: "0.1.0".into(),
                arch: "mips_24kc".into(),
                ..Default::default()
            },
            system: Some(SystemStats {
                uptime_s: 12345,
                load: [0.05, 20.125, 1e-7],
                cpu_busy_permille: Some(415),
                mem_total_kb: 125_000,
                mem_available_kb: 80_000,
                disks: sources::disk::parse_df("Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/root 4096 4096 0 100% /rom\n").unwrap().value,
                ..Default::default()
            }),
            interfaces: sources::net_dev::parse(&own_fixture("proc/net-dev")).unwrap().value,
            wireless: sources::iw_dev::parse(&own_fixture("iw/iw-dev.txt")).unwrap().value,
            stations: sources::station_dump::parse(&own_fixture("iw/station-dump-wlan0.txt"), "wlan0").unwrap().value,
            leases: sources::dhcp_leases::parse(&own_fixture("dhcp/dhcp.leases")).unwrap().value,
            wireguard: sources::wireguard::parse_dump(&own_fixture("wg/wg-show-all-dump.txt")).unwrap().value,
            openvpn: vec![sources::openvpn::parse(&own_fixture("openvpn/server-v3.status"), "server").unwrap().value],
            sources: vec![
                SourceStatus { kind: SourceKind::IwDev, name: String::new(), state: SourceState::Ok },
                SourceStatus {
                    kind: SourceKind::StationDump,
                    name: "wlan0".into(),
                    state: SourceState::Partial { skipped: 1, first_error: "line 3: bad".into() },
                },
                SourceStatus { kind: SourceKind::DhcpLeases, name: "x".into(), state: SourceState::Error("gone".into()) },
            ],
            probes: vec![],
            wan: vec![],
        };
        r.stations.extend(
            sources::station_dump::parse(&own_fixture("iw/station-dump-mlo-wlan2.txt"), "wlan2")
                .unwrap()
                .value,
        );
        r
    }

    /// The frames the agent sends are encoded by hand (`routerstats_shared::encode`): on a
    /// report of every part of the agent's fixtures, and on reports made from every file of
    /// `../shared/fixtures` by every parser that accepts it, they are byte-for-byte the frames of
    /// the serde/bincode encoder the collector decodes with.
    #[test]
    fn frames_are_the_serde_encoders_on_every_fixture() {
        let same = |r: Report| {
            let m = Message::Report(Box::new(r));
            let frame = m.to_request_frame().unwrap();
            assert_eq!(frame, m.to_frame().unwrap(), "{m:?}");
            frame.len()
        };
        assert!(same(full_report()) > 2_000);
        let mut filled = 0;
        for dir in ["iw", "dhcp", "openvpn", "proc", "wg"] {
            for (file, text) in crate::testutil::shared_fixtures_in(dir) {
                let mut r = Report {
                    seq: 7,
                    boot_id: [3; 16],
                    timestamp_ms: 1_765_000_000_123,
                    ..Default::default()
                };
                r.wireless = sources::iw_dev::parse(&text)
                    .map(|p| p.value)
                    .unwrap_or_default();
                r.stations = sources::station_dump::parse(&text, "wlan0")
                    .map(|p| p.value)
                    .unwrap_or_default();
                r.leases = sources::dhcp_leases::parse(&text)
                    .map(|p| p.value)
                    .unwrap_or_default();
                r.wireguard = sources::wireguard::parse(&text, "wg0")
                    .map(|p| p.value)
                    .unwrap_or_default();
                r.openvpn = sources::openvpn::parse(&text, &file)
                    .map(|p| vec![p.value])
                    .unwrap_or_default();
                r.interfaces = sources::net_dev::parse(&text)
                    .map(|p| p.value)
                    .unwrap_or_default();
                if let Ok(load) = sources::loadavg::parse(&text) {
                    r.system = Some(SystemStats {
                        load: load.value,
                        ..Default::default()
                    });
                }
                let parts = r.wireless.len()
                    + r.stations.len()
                    + r.leases.len()
                    + r.wireguard.len()
                    + r.openvpn.len()
                    + r.interfaces.len();
                filled += usize::from(parts > 0);
                same(r);
            }
        }
        assert!(filled > 20, "{filled}");
    }

    /// `snapshot --json` prints byte-for-byte what it printed with serde_json.
    #[test]
    fn json_is_what_serde_json_printed() {
        let r = full_report();
        assert!(
            !r.stations.is_empty() && !r.wireguard.is_empty() && !r.openvpn[0].clients.is_empty()
        );
        assert_eq!(
            render(&r, true).unwrap(),
            serde_json::to_string_pretty(&r).unwrap()
        );
        let empty = Report::default();
        assert_eq!(
            render(&empty, true).unwrap(),
            serde_json::to_string_pretty(&empty).unwrap()
        );
    }
}
