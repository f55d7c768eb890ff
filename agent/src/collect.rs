//! One collection cycle: reads every enabled source and assembles a [`Report`].
//!
//! Each source is read independently; a failure in one (a missing tool, an unreadable file, a
//! malformed line) becomes a [`SourceStatus`] in the report and never stops the others.
//! `seq`, `boot_id` and `dropped_reports` are filled in by the uplink, which owns the sequence.

use std::path::PathBuf;

use routerstats_shared::{Report, RouterFacts, SourceKind, SourceState, SourceStatus, SystemStats};

use crate::config::AgentConfig;
use crate::probes::{self, routes, routes::DefaultRoute};
use crate::sources::wan::IfAddr;
use crate::sources::{self, proc_stat::CpuTimes, Parsed, SourceError};

/// Version of this agent, reported in every report.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds each cycle's report from the sources, remembering what CPU-busy deltas need between
/// cycles (it collects from the router; the collector is the server).
pub struct ReportBuilder {
    cfg: AgentConfig,
    prev_cpu: Option<CpuTimes>,
}

/// Turns a source result into its value, recording the outcome in `statuses`.
fn record<T>(
    statuses: &mut Vec<SourceStatus>,
    kind: SourceKind,
    name: impl Into<String>,
    result: Result<Parsed<T>, SourceError>,
) -> Option<T> {
    let name = name.into();
    match result {
        Ok(parsed) => {
            statuses.push(SourceStatus {
                kind,
                name,
                state: parsed.state(),
            });
            Some(parsed.value)
        }
        Err(err) => {
            let state = match &err {
                SourceError::Read(r) => r.state(),
                SourceError::Parse(p) => SourceState::Error(p.to_string()),
            };
            statuses.push(SourceStatus { kind, name, state });
            None
        }
    }
}

/// Marks a source as turned off in the configuration.
fn disabled(statuses: &mut Vec<SourceStatus>, kind: SourceKind) {
    statuses.push(SourceStatus {
        kind,
        name: String::new(),
        state: SourceState::Disabled,
    });
}

/// Expands the configured OpenVPN status paths: a directory stands for every file in it whose
/// name contains `status`.
pub fn openvpn_status_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let Ok(entries) = std::fs::read_dir(p) else {
                continue;
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file())
                .filter(|f| {
                    f.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains("status"))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// The router's hostname as the kernel knows it (under the configured proc root); None when
/// unreadable or empty. The one reader: reports fall back to `unknown`, enrollment and the
/// session hello to `openwrt` (`cli_uplink::hostname`).
pub fn kernel_hostname(cfg: &AgentConfig) -> Option<String> {
    read_trimmed(cfg.proc_path("sys/kernel/hostname"))
}

fn read_trimmed(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The WAN source: the addresses of the default routes' devices.
fn wan(
    report: &mut Report,
    st: &mut Vec<SourceStatus>,
    routes: &Result<Vec<DefaultRoute>, String>,
    addrs: &Result<Vec<IfAddr>, String>,
) {
    let state = match (routes, addrs) {
        (Err(e), _) | (_, Err(e)) => SourceState::Error(e.clone()),
        (Ok(r), Ok(a)) => {
            report.wan = sources::wan::select(r, a);
            SourceState::Ok
        }
    };
    st.push(SourceStatus {
        kind: SourceKind::Wan,
        name: String::new(),
        state,
    });
}

impl ReportBuilder {
    pub fn new(cfg: AgentConfig) -> Self {
        ReportBuilder {
            cfg,
            prev_cpu: None,
        }
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    /// Reads /proc/stat now so the next [`ReportBuilder::collect`] can report CPU busy share.
    pub fn prime_cpu(&mut self) {
        if let Ok(p) = sources::proc_stat::read(&self.cfg.proc_path("stat")) {
            self.prev_cpu = Some(p.value);
        }
    }

    /// Runs one cycle.
    pub fn collect(&mut self) -> Report {
        let cfg = self.cfg.clone();
        let mut st = Vec::new();
        let mut report = Report {
            timestamp_ms: crate::clock::unix_now_ms(),
            ..Default::default()
        };

        report.router = self.router_facts(&mut st);
        if cfg.sources.system {
            report.system = self.system(&mut st);
        } else {
            disabled(&mut st, SourceKind::System);
        }

        if cfg.sources.wifi {
            let wifi = record(
                &mut st,
                SourceKind::IwDev,
                "",
                sources::iw_dev::read(&cfg.iw),
            );
            for iface in wifi.iter().flatten().filter(|w| w.iftype.has_stations()) {
                let res = sources::station_dump::read(&cfg.iw, &iface.name);
                if let Some(mut stations) =
                    record(&mut st, SourceKind::StationDump, iface.name.clone(), res)
                {
                    report.stations.append(&mut stations);
                }
            }
            report.wireless = wifi.unwrap_or_default();
        } else {
            disabled(&mut st, SourceKind::IwDev);
        }

        if cfg.sources.dhcp {
            let res = sources::dhcp_leases::read(&cfg.lease_files);
            report.leases = record(&mut st, SourceKind::DhcpLeases, "", res).unwrap_or_default();
        } else {
            disabled(&mut st, SourceKind::DhcpLeases);
        }

        if cfg.sources.wireguard {
            let res = sources::wireguard::read(&cfg.wg);
            let mut wg = record(&mut st, SourceKind::WireGuard, "", res).unwrap_or_default();
            if !wg.is_empty() {
                // Peer names are a nicety: a missing /etc/config/network is not worth a status entry.
                if let Ok(names) = sources::uci_network::read(&cfg.etc_path("config/network")) {
                    sources::uci_network::apply_names(&mut wg, &names.value);
                }
            }
            report.wireguard = wg;
        } else {
            disabled(&mut st, SourceKind::WireGuard);
        }

        if cfg.sources.openvpn {
            let files = openvpn_status_files(&cfg.openvpn_status);
            for (path, res) in sources::openvpn::read_all(&files) {
                if let Some(inst) = record(
                    &mut st,
                    SourceKind::OpenVpn,
                    path.display().to_string(),
                    res,
                ) {
                    report.openvpn.push(inst);
                }
            }
        } else {
            disabled(&mut st, SourceKind::OpenVpn);
        }

        if cfg.sources.interfaces {
            let res = sources::net_dev::read(&cfg.proc_path("net/dev"));
            let mut ifs = record(&mut st, SourceKind::NetDev, "", res).unwrap_or_default();
            let wifi_names: Vec<String> = report.wireless.iter().map(|w| w.name.clone()).collect();
            let wg_names: Vec<String> = report.wireguard.iter().map(|w| w.name.clone()).collect();
            for i in &mut ifs {
                i.kind = sources::net_dev::classify_with(&i.name, &wifi_names, &wg_names);
            }
            report.interfaces = ifs;
        } else {
            disabled(&mut st, SourceKind::NetDev);
        }

        if cfg.sources.probes || cfg.sources.wan {
            let (routes, addrs) = self.default_routes();
            if cfg.sources.wan {
                wan(&mut report, &mut st, &routes, &addrs);
            } else {
                disabled(&mut st, SourceKind::Wan);
            }
            if cfg.sources.probes {
                self.probes(&mut report, &mut st, &routes);
            } else {
                disabled(&mut st, SourceKind::Probe);
            }
        } else {
            disabled(&mut st, SourceKind::Wan);
            disabled(&mut st, SourceKind::Probe);
        }

        report.sources = st;
        report
    }

    /// The default routes of both families (IPv4 first), a route without a gateway given its
    /// device's point-to-point peer, or why there are none; and the devices' addresses. A
    /// missing `/proc/net/ipv6_route` (a kernel without IPv6) is not an error.
    fn default_routes(
        &self,
    ) -> (
        Result<Vec<DefaultRoute>, String>,
        Result<Vec<IfAddr>, String>,
    ) {
        let routes = (|| {
            let v4 =
                sources::read_text(&self.cfg.proc_path("net/route")).map_err(|e| e.to_string())?;
            let mut all = routes::parse_ipv4(&v4)
                .map_err(|e| format!("/proc/net/route: {e}"))?
                .value;
            if let Ok(v6) = sources::read_text(&self.cfg.proc_path("net/ipv6_route")) {
                all.extend(routes::parse_ipv6(&v6).value);
            }
            if all.is_empty() {
                return Err("no default route".to_string());
            }
            Ok(all)
        })();
        let Ok(mut routes) = routes else {
            return (routes, Ok(Vec::new()));
        };
        let addrs = sources::wan::interface_addresses().map_err(|e| format!("getifaddrs: {e}"));
        if let Ok(a) = &addrs {
            sources::wan::fill_peers(&mut routes, a);
        }
        (Ok(routes), addrs)
    }

    fn probes(
        &self,
        report: &mut Report,
        st: &mut Vec<SourceStatus>,
        routes: &Result<Vec<DefaultRoute>, String>,
    ) {
        let pc = &self.cfg.probe;
        // A default route with neither a gateway nor a point-to-point peer (a WireGuard default
        // route) has no next hop to probe: it is left out without a status.
        let gateways: &[DefaultRoute] = match routes {
            Ok(r) if pc.gateway => r,
            Err(e) if pc.gateway => {
                st.push(SourceStatus {
                    kind: SourceKind::Probe,
                    name: "gateway".into(),
                    state: SourceState::Error(e.clone()),
                });
                &[]
            }
            _ => &[],
        };
        let targets = probes::targets(gateways, &pc.targets);
        for out in probes::socket::probe(&targets, pc.options) {
            let name = out.target.addr.to_string();
            let state = match out.result {
                Ok(r) => {
                    let state = if r.received == 0 {
                        let why = out.note.map(|n| format!(" ({n})")).unwrap_or_default();
                        SourceState::Error(format!("no reply to {} echo requests{why}", r.sent))
                    } else {
                        SourceState::Ok
                    };
                    report.probes.push(r);
                    state
                }
                Err(e) => SourceState::Error(e.to_string()),
            };
            st.push(SourceStatus {
                kind: SourceKind::Probe,
                name,
                state,
            });
        }
    }

    fn router_facts(&self, st: &mut Vec<SourceStatus>) -> RouterFacts {
        let cfg = &self.cfg;
        let mut facts = RouterFacts {
            hostname: kernel_hostname(cfg).unwrap_or_else(|| "unknown".into()),
            kernel: read_trimmed(cfg.proc_path("sys/kernel/osrelease")),
            agent_version: AGENT_VERSION.into(),
            arch: std::env::consts::ARCH.into(),
            ..Default::default()
        };
        let board = sources::board::read(&cfg.etc_path("board.json"));
        if let Some(b) = record(st, SourceKind::RouterFacts, "board.json", board) {
            facts.model = b.model_name;
            facts.board = b.model_id;
        }
        let release = sources::openwrt_release::read(&cfg.etc_path("openwrt_release"));
        facts.release = record(st, SourceKind::RouterFacts, "openwrt_release", release);
        facts
    }

    fn system(&mut self, st: &mut Vec<SourceStatus>) -> Option<SystemStats> {
        let cfg = self.cfg.clone();
        let mem = record(
            st,
            SourceKind::System,
            "meminfo",
            sources::meminfo::read(&cfg.proc_path("meminfo")),
        )?;
        let mut sys = SystemStats {
            mem_total_kb: mem.total_kb,
            mem_available_kb: mem.available_kb,
            mem_available_derived: mem.available_derived,
            ..Default::default()
        };
        if let Some(up) = record(
            st,
            SourceKind::System,
            "uptime",
            sources::uptime::read(&cfg.proc_path("uptime")),
        ) {
            sys.uptime_s = up;
        }
        if let Some(load) = record(
            st,
            SourceKind::System,
            "loadavg",
            sources::loadavg::read(&cfg.proc_path("loadavg")),
        ) {
            sys.load = load;
        }
        if let Some(cpu) = record(
            st,
            SourceKind::System,
            "stat",
            sources::proc_stat::read(&cfg.proc_path("stat")),
        ) {
            sys.cpu_busy_permille = self
                .prev_cpu
                .as_ref()
                .and_then(|prev| sources::proc_stat::busy_permille(prev, &cpu));
            self.prev_cpu = Some(cpu);
        }
        let mounts: Vec<&str> = cfg.disks.iter().map(String::as_str).collect();
        if !mounts.is_empty() {
            if let Some(disks) = record(
                st,
                SourceKind::System,
                "df",
                sources::disk::read(&cfg.df, &mounts),
            ) {
                // `df` may print more than was asked for (busybox without arguments, a wrapper).
                sys.disks = disks
                    .into_iter()
                    .filter(|d| mounts.contains(&d.mount.as_str()))
                    .collect();
            }
        }
        Some(sys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;
    use std::time::Duration;

    /// A config that reads only the probes and WAN sources, under `root` as /proc.
    fn cfg(root: &std::path::Path) -> AgentConfig {
        let mut c = AgentConfig {
            proc_root: root.to_path_buf(),
            sources: Sources {
                wifi: false,
                dhcp: false,
                wireguard: false,
                openvpn: false,
                system: false,
                interfaces: false,
                probes: true,
                wan: true,
            },
            ..AgentConfig::default()
        };
        c.probe.options = probes::ProbeOptions {
            count: 2,
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(300),
        };
        c
    }

    fn status(r: &Report, kind: SourceKind, name: &str) -> Option<SourceState> {
        r.sources
            .iter()
            .find(|s| s.kind == kind && s.name == name)
            .map(|s| s.state.clone())
    }

    #[test]
    fn no_route_table_or_no_default_route_is_a_status() {
        let dir = tempfile::tempdir().unwrap();
        let r = ReportBuilder::new(cfg(dir.path())).collect();
        let Some(SourceState::Error(e)) = status(&r, SourceKind::Probe, "gateway") else {
            panic!("{:?}", r.sources)
        };
        assert!(e.contains("net/route"), "{e}");
        assert!(matches!(
            status(&r, SourceKind::Wan, ""),
            Some(SourceState::Error(_))
        ));
        assert!(r.probes.is_empty() && r.wan.is_empty());

        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(
            dir.path().join("net/route"),
            "Iface\tDestination\tGateway\tFlags\n",
        )
        .unwrap();
        let r = ReportBuilder::new(cfg(dir.path())).collect();
        assert_eq!(
            status(&r, SourceKind::Probe, "gateway"),
            Some(SourceState::Error("no default route".into()))
        );
        assert_eq!(
            status(&r, SourceKind::Wan, ""),
            Some(SourceState::Error("no default route".into()))
        );
    }

    #[test]
    fn loopback_gateway_and_target_are_probed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        let gw = format!("{:08X}", u32::from_ne_bytes([127, 0, 0, 1]));
        std::fs::write(
            dir.path().join("net/route"),
            format!("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nlo\t00000000\t{gw}\t0003\t0\t0\t0\t00000000\n"),
        )
        .unwrap();
        let mut c = cfg(dir.path());
        c.probe.targets = vec![probes::parse_target("six=::1").unwrap()];
        let r = ReportBuilder::new(c.clone()).collect();
        let got: Vec<_> = r
            .probes
            .iter()
            .map(|p| (p.name.as_str(), p.target.to_string(), p.sent, p.received))
            .collect();
        assert_eq!(
            got,
            [
                ("lo", "127.0.0.1".to_string(), 2, 2),
                ("six", "::1".to_string(), 2, 2)
            ]
        );
        assert_eq!(
            status(&r, SourceKind::Probe, "127.0.0.1"),
            Some(SourceState::Ok)
        );
        assert!(
            r.wan
                .iter()
                .any(|w| w.device == "lo" && w.addr.to_string() == "127.0.0.1/8"),
            "{:?}",
            r.wan
        );
        // Turned off: one Disabled status each, nothing probed.
        c.sources.probes = false;
        c.sources.wan = false;
        let r = ReportBuilder::new(c).collect();
        assert!(r.probes.is_empty() && r.wan.is_empty());
        assert_eq!(
            status(&r, SourceKind::Probe, ""),
            Some(SourceState::Disabled)
        );
        assert_eq!(status(&r, SourceKind::Wan, ""), Some(SourceState::Disabled));
    }
}
