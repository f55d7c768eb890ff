//! The built-in rules: a pure function from a snapshot of the fleet (what ingest stored, read by
//! [`super::snapshot`]) and the thresholds to the conditions that hold right now.
//!
//! Rules and the data they read:
//! - `offline`: no report received for `offline_intervals` x the report interval (collector
//!   clock). Its resolution is the "back online" notification.
//! - `wan_down`: the router's WAN interface (PPPoE first, else `wan`, else `wanN`) was in an
//!   earlier report and is missing from the newest one. Reports carry interface counters, not
//!   link state or addresses: an Ethernet WAN whose cable is pulled keeps its interface and is
//!   not seen; a WAN address change cannot be seen at all (no rule).
//! - `cpu`, `memory`, `disk`: the newest report's CPU busy share, memory used (total minus
//!   available) and the first reported disk (the overlay) above a percentage.
//! - `clients_high`, `clients_low`: the newest report's wireless station count.
//! - `wg_handshake`: a WireGuard peer whose latest handshake is older than the limit (or never).
//! - `ovpn_client_gone`: an OpenVPN client seen within the lookback, missing from the newest
//!   report.
//! - `station_rate`, `wan_rate`: a station's or the WAN interface's rate above a threshold
//!   (the ISP middleware's bandwidth alerts).
//! - `spool_drops`: the agent's running total of dropped reports went up.
//! - `cert_renewal`: the client certificate expires within `cert_days` while the agent renews
//!   from the last third of its validity, so renewal has been failing.
//!
//! - `probe_loss`, `probe_latency`: a target of the agent's active ICMP probes (a default
//!   gateway or a configured target) lost more than a percentage of its echo requests, or
//!   answered slower than a mean round-trip time, in the newest report, for `probe_for`.
//! - `wan_address_change`: the router's WAN addresses (from its newest report) differ from
//!   those of its previous report (an empty set, an old agent or no default route, is not a
//!   change; WAN loss is `wan_down`). Seen between evaluations of one collector run: a change
//!   while the collector was down is not reported.
//!
//! Rules on a router that is offline hold their state (neither refreshed nor resolved) until it
//! reports again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use super::config::{AlertsConfig, Thresholds};

/// A router and the parts of its newest report the rules read.
#[derive(Debug, Clone, Default)]
pub struct RouterSnap {
    pub id: i64,
    pub name: String,
    pub site: Option<String>,
    /// When the collector last received a report (ms).
    pub last_seen_ms: Option<i64>,
    /// Client certificate expiry (Unix seconds).
    pub cert_not_after: i64,
    pub report: Option<ReportSnap>,
}

/// The newest report of a router.
#[derive(Debug, Clone, Default)]
pub struct ReportSnap {
    pub ts_ms: i64,
    pub boot_id: Vec<u8>,
    pub dropped_reports: i64,
    pub cpu_permille: Option<i64>,
    pub mem_total_kb: Option<i64>,
    pub mem_available_kb: Option<i64>,
    pub disk_mount: Option<String>,
    pub disk_used_bytes: Option<i64>,
    pub disk_total_bytes: Option<i64>,
    pub station_count: i64,
    pub interfaces: Vec<IfaceSnap>,
    pub stations: Vec<StationSnap>,
    pub wg_peers: Vec<WgPeerSnap>,
    /// OpenVPN clients seen within the lookback but not in this report.
    pub ovpn_gone: Vec<OvpnGoneSnap>,
    /// The active probes of this report.
    pub probes: Vec<ProbeSnap>,
    /// The router's current WAN addresses (`address/prefix`), sorted.
    pub wan_addrs: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ProbeSnap {
    pub target: String,
    pub name: String,
    pub sent: i64,
    pub received: i64,
    pub rtt_avg_us: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct IfaceSnap {
    pub name: String,
    pub kind: String,
    pub rx_bps: Option<i64>,
    pub tx_bps: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct StationSnap {
    pub iface: String,
    pub mac: String,
    pub rx_bps: Option<i64>,
    pub tx_bps: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct WgPeerSnap {
    pub iface: String,
    pub public_key: String,
    pub name: Option<String>,
    /// Unix seconds; None when there was never a handshake.
    pub latest_handshake: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct OvpnGoneSnap {
    pub instance: String,
    pub common_name: String,
    pub last_seen_ms: i64,
}

/// The rules, by their stable names (used in the API, the config and the receivers' bodies).
pub const RULES: &[&str] = &[
    "offline",
    "wan_down",
    "cpu",
    "memory",
    "disk",
    "clients_high",
    "clients_low",
    "wg_handshake",
    "ovpn_client_gone",
    "station_rate",
    "wan_rate",
    "spool_drops",
    "cert_renewal",
    "probe_loss",
    "probe_latency",
    "wan_address_change",
];

/// Identifies one alert: the same key is the same alert (deduplication).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub rule: &'static str,
    pub router_id: i64,
    /// What in the router (interface, peer, station, client); empty for router-wide rules.
    pub subject: String,
}

/// A rule's condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: AlertKey,
    pub router: String,
    pub site: Option<String>,
    pub severity: &'static str,
    pub summary: String,
    /// The values that triggered it (and the threshold).
    pub values: Value,
    /// How long it must hold before the alert fires.
    pub for_: Duration,
    /// How long it must be false before the alert resolves.
    pub keep_firing_for: Duration,
}

/// What the rules remember between evaluations (WAN names seen, spool drop totals).
#[derive(Debug, Default)]
pub struct RuleMemory {
    /// The WAN interface each router reported last time one was present.
    pub wan: HashMap<i64, String>,
    /// (boot id, dropped total) of each router's newest report at the last evaluation.
    pub drops: HashMap<i64, (Vec<u8>, i64)>,
    /// The WAN addresses each router had at the last evaluation that saw some.
    pub wan_addrs: HashMap<i64, Vec<String>>,
}

/// The result of one evaluation.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub conditions: Vec<Condition>,
    /// Routers whose data is stale (offline): their other alerts hold as they are.
    pub hold: HashSet<i64>,
}

fn pct(used: f64, total: f64) -> Option<f64> {
    (total > 0.0).then(|| (used / total * 100.0 * 10.0).round() / 10.0)
}

fn mbps(bps: Option<i64>) -> f64 {
    bps.unwrap_or(0).max(0) as f64 / 1e6
}

/// Picks the WAN interface: the first PPPoE interface, else `wan`, else `wanN`/`wan.N`.
pub fn pick_wan(ifaces: &[IfaceSnap]) -> Option<&IfaceSnap> {
    let mut v: Vec<&IfaceSnap> = ifaces.iter().collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v.iter()
        .find(|i| i.kind == "pppoe")
        .or_else(|| v.iter().find(|i| i.name == "wan"))
        .or_else(|| {
            v.iter().find(|i| {
                i.name
                    .strip_prefix("wan")
                    .and_then(|r| r.chars().next())
                    .is_some_and(|c| c.is_ascii_digit() || c == '.')
            })
        })
        .copied()
}

/// Evaluates every rule for every router at `now_ms` (collector clock). `listening_since_ms`:
/// when this collector started receiving reports; silence before it does not count towards
/// `offline` (a restarted collector does not call the whole fleet offline before the agents
/// had a chance to reconnect).
pub fn evaluate(
    cfg: &AlertsConfig,
    routers: &[RouterSnap],
    mem: &mut RuleMemory,
    now_ms: i64,
    listening_since_ms: i64,
) -> Evaluation {
    let mut out = Evaluation::default();
    for r in routers {
        let t = cfg.thresholds_for(r.site.as_deref(), &r.name);
        evaluate_router(cfg, &t, r, mem, (now_ms, listening_since_ms), &mut out);
    }
    out
}

fn evaluate_router(
    cfg: &AlertsConfig,
    t: &Thresholds,
    r: &RouterSnap,
    mem: &mut RuleMemory,
    (now_ms, listening_since_ms): (i64, i64),
    out: &mut Evaluation,
) {
    let mut push = |rule: &'static str,
                    subject: String,
                    severity: &'static str,
                    summary: String,
                    values: Value,
                    for_: Duration,
                    keep: Duration| {
        out.conditions.push(Condition {
            key: AlertKey {
                rule,
                router_id: r.id,
                subject,
            },
            router: r.name.clone(),
            site: r.site.clone(),
            severity,
            summary,
            values,
            for_,
            keep_firing_for: keep,
        });
    };
    let keep = t.keep_firing_for;
    let Some(seen) = r.last_seen_ms else {
        return; // enrolled, never reported: nothing to judge
    };
    if t.offline_intervals > 0 {
        let limit = cfg.report_interval.as_millis() as i64 * i64::from(t.offline_intervals);
        let silent = now_ms - seen;
        if silent > limit {
            // Silent for longer than the limit. Right after this collector started, silence
            // while it was down is not judged yet: the condition then waits until the limit has
            // passed since the start (a router already offline stays offline across the
            // restart, without a false "back online"; a router that reports in time resolves).
            let wait = (limit - (now_ms - listening_since_ms)).max(0);
            push(
                "offline",
                String::new(),
                "critical",
                format!("{} has sent no report for {}s", r.name, silent / 1000),
                json!({"last_report_ms": seen, "silent_s": silent / 1000, "threshold_s": limit / 1000}),
                Duration::from_millis(wait as u64),
                Duration::ZERO,
            );
            out.hold.insert(r.id);
            return;
        }
    }
    if t.cert_days > 0 {
        let left_s = r.cert_not_after - now_ms / 1000;
        if left_s < i64::from(t.cert_days) * 86_400 {
            push(
                "cert_renewal",
                String::new(),
                "warning",
                format!(
                    "{}'s client certificate expires in {:.1} days and has not been renewed",
                    r.name,
                    left_s as f64 / 86_400.0
                ),
                json!({"cert_not_after": r.cert_not_after, "days_left": left_s / 86_400, "threshold_days": t.cert_days}),
                Duration::ZERO,
                keep,
            );
        }
    }
    let Some(rep) = &r.report else { return };

    // System.
    if let Some(c) = rep.cpu_permille {
        let v = c as f64 / 10.0;
        if t.cpu_percent > 0.0 && v > t.cpu_percent {
            push(
                "cpu",
                String::new(),
                "warning",
                format!("{} CPU at {v:.1}% (above {}%)", r.name, t.cpu_percent),
                json!({"cpu_percent": v, "threshold": t.cpu_percent, "report_ms": rep.ts_ms}),
                t.cpu_for,
                keep,
            );
        }
    }
    if let (Some(total), Some(avail)) = (rep.mem_total_kb, rep.mem_available_kb) {
        if let Some(v) = pct((total - avail) as f64, total as f64) {
            if t.memory_percent > 0.0 && v > t.memory_percent {
                push(
                    "memory",
                    String::new(),
                    "warning",
                    format!(
                        "{} memory {v:.1}% used (above {}%)",
                        r.name, t.memory_percent
                    ),
                    json!({"memory_percent": v, "mem_total_kb": total, "mem_available_kb": avail, "threshold": t.memory_percent, "report_ms": rep.ts_ms}),
                    t.memory_for,
                    keep,
                );
            }
        }
    }
    if let (Some(used), Some(total)) = (rep.disk_used_bytes, rep.disk_total_bytes) {
        if let Some(v) = pct(used as f64, total as f64) {
            if t.disk_percent > 0.0 && v > t.disk_percent {
                let mount = rep.disk_mount.clone().unwrap_or_else(|| "/overlay".into());
                push(
                    "disk",
                    mount.clone(),
                    "warning",
                    format!(
                        "{} disk {mount} {v:.1}% used (above {}%)",
                        r.name, t.disk_percent
                    ),
                    json!({"disk_percent": v, "used_bytes": used, "total_bytes": total, "threshold": t.disk_percent, "report_ms": rep.ts_ms}),
                    t.disk_for,
                    keep,
                );
            }
        }
    }
    // Wireless clients.
    let n = rep.station_count;
    if t.clients_max > 0 && n > i64::from(t.clients_max) {
        push(
            "clients_high",
            String::new(),
            "warning",
            format!(
                "{} has {n} wireless clients (above {})",
                r.name, t.clients_max
            ),
            json!({"clients": n, "threshold": t.clients_max, "report_ms": rep.ts_ms}),
            t.clients_for,
            keep,
        );
    }
    if t.clients_min > 0 && n < i64::from(t.clients_min) {
        push(
            "clients_low",
            String::new(),
            "warning",
            format!(
                "{} has {n} wireless clients (below {})",
                r.name, t.clients_min
            ),
            json!({"clients": n, "threshold": t.clients_min, "report_ms": rep.ts_ms}),
            t.clients_for,
            keep,
        );
    }
    // WAN.
    let wan = pick_wan(&rep.interfaces);
    match (wan, mem.wan.get(&r.id)) {
        (Some(w), _) => {
            mem.wan.insert(r.id, w.name.clone());
        }
        (None, Some(last)) if t.wan_down => {
            push(
                "wan_down",
                last.clone(),
                "critical",
                format!("{}: WAN interface {last} is gone", r.name),
                json!({"interface": last, "report_ms": rep.ts_ms}),
                Duration::ZERO,
                keep,
            );
        }
        _ => {}
    }
    if let Some(w) = wan {
        let v = mbps(w.rx_bps).max(mbps(w.tx_bps));
        if t.wan_mbps > 0.0 && v > t.wan_mbps {
            push(
                "wan_rate",
                w.name.clone(),
                "warning",
                format!(
                    "{} WAN {} at {v:.1} Mbit/s (above {})",
                    r.name, w.name, t.wan_mbps
                ),
                json!({"rx_mbps": mbps(w.rx_bps), "tx_mbps": mbps(w.tx_bps), "threshold_mbps": t.wan_mbps, "report_ms": rep.ts_ms}),
                t.rate_for,
                keep,
            );
        }
    }
    if t.station_mbps > 0.0 {
        for s in &rep.stations {
            let v = mbps(s.rx_bps).max(mbps(s.tx_bps));
            if v > t.station_mbps {
                push(
                    "station_rate",
                    s.mac.clone(),
                    "warning",
                    format!(
                        "{} station {} on {} at {v:.1} Mbit/s (above {})",
                        r.name, s.mac, s.iface, t.station_mbps
                    ),
                    json!({"mac": s.mac, "interface": s.iface, "rx_mbps": mbps(s.rx_bps), "tx_mbps": mbps(s.tx_bps), "threshold_mbps": t.station_mbps, "report_ms": rep.ts_ms}),
                    t.rate_for,
                    keep,
                );
            }
        }
    }
    // VPNs.
    if !t.wg_handshake_age.is_zero() {
        let limit = t.wg_handshake_age.as_secs() as i64;
        let report_s = rep.ts_ms / 1000;
        for p in &rep.wg_peers {
            let age = p.latest_handshake.map(|h| report_s - h);
            if age.is_none_or(|a| a > limit) {
                let who = p.name.clone().unwrap_or_else(|| p.public_key.clone());
                let when = match age {
                    Some(a) => format!("{} min ago", a / 60),
                    None => "never".to_string(),
                };
                push(
                    "wg_handshake",
                    format!("{}/{}", p.iface, p.public_key),
                    "warning",
                    format!(
                        "{}: WireGuard peer {who} on {} last handshake {when}",
                        r.name, p.iface
                    ),
                    json!({"interface": p.iface, "public_key": p.public_key, "name": p.name, "latest_handshake": p.latest_handshake, "threshold_s": limit}),
                    Duration::ZERO,
                    keep,
                );
            }
        }
    }
    if t.ovpn_client_gone {
        for c in &rep.ovpn_gone {
            push(
                "ovpn_client_gone",
                format!("{}/{}", c.instance, c.common_name),
                "warning",
                format!(
                    "{}: OpenVPN client {} left {}",
                    r.name, c.common_name, c.instance
                ),
                json!({"instance": c.instance, "common_name": c.common_name, "last_seen_ms": c.last_seen_ms}),
                Duration::ZERO,
                keep,
            );
        }
    }
    // Active probes.
    for p in rep.probes.iter().filter(|p| p.sent > 0) {
        let loss =
            ((p.sent - p.received.min(p.sent)) as f64 * 1000.0 / p.sent as f64).round() / 10.0;
        if t.probe_loss_percent > 0.0 && loss > t.probe_loss_percent {
            push(
                "probe_loss",
                p.target.clone(),
                "warning",
                format!(
                    "{}: {}% of the echo requests to {} ({}) lost (above {}%)",
                    r.name, loss, p.target, p.name, t.probe_loss_percent
                ),
                json!({"target": p.target, "name": p.name, "sent": p.sent, "received": p.received, "loss_percent": loss, "threshold": t.probe_loss_percent, "report_ms": rep.ts_ms}),
                t.probe_for,
                keep,
            );
        }
        if let Some(avg) = p.rtt_avg_us {
            let ms = (avg as f64 / 10.0).round() / 100.0;
            if t.probe_latency_ms > 0.0 && ms > t.probe_latency_ms {
                push(
                    "probe_latency",
                    p.target.clone(),
                    "warning",
                    format!(
                        "{}: round trip to {} ({}) {ms} ms (above {} ms)",
                        r.name, p.target, p.name, t.probe_latency_ms
                    ),
                    json!({"target": p.target, "name": p.name, "latency_ms": ms, "threshold_ms": t.probe_latency_ms, "report_ms": rep.ts_ms}),
                    t.probe_for,
                    keep,
                );
            }
        }
    }
    // WAN addresses.
    if !rep.wan_addrs.is_empty() {
        let prev = mem.wan_addrs.insert(r.id, rep.wan_addrs.clone());
        if let Some(prev) = prev.filter(|p| t.wan_address_change && *p != rep.wan_addrs) {
            push(
                "wan_address_change",
                String::new(),
                "info",
                format!(
                    "{}: WAN address changed from {} to {}",
                    r.name,
                    prev.join(", "),
                    rep.wan_addrs.join(", ")
                ),
                json!({"previous": prev, "current": rep.wan_addrs, "report_ms": rep.ts_ms}),
                Duration::ZERO,
                keep,
            );
        }
    }
    // Agent spool.
    let prev = mem
        .drops
        .insert(r.id, (rep.boot_id.clone(), rep.dropped_reports));
    if t.spool_drops {
        let grew = match &prev {
            Some((boot, d)) if *boot == rep.boot_id => rep.dropped_reports - d,
            // A new agent run: its running total starts over; any drops are new.
            Some(_) => rep.dropped_reports,
            None => 0,
        };
        if grew > 0 {
            push(
                "spool_drops",
                String::new(),
                "warning",
                format!(
                    "{}'s agent dropped {grew} reports from its full spool",
                    r.name
                ),
                json!({"dropped": grew, "dropped_total": rep.dropped_reports, "report_ms": rep.ts_ms}),
                Duration::ZERO,
                keep,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(now: i64) -> RouterSnap {
        RouterSnap {
            id: 1,
            name: "r1".into(),
            site: None,
            last_seen_ms: Some(now - 1000),
            cert_not_after: now / 1000 + 60 * 86_400,
            report: Some(ReportSnap {
                ts_ms: now - 1000,
                boot_id: vec![1; 16],
                cpu_permille: Some(100),
                mem_total_kb: Some(1000),
                mem_available_kb: Some(800),
                disk_used_bytes: Some(10),
                disk_total_bytes: Some(100),
                station_count: 3,
                interfaces: vec![IfaceSnap {
                    name: "wan".into(),
                    kind: "ethernet".into(),
                    rx_bps: Some(1_000_000),
                    tx_bps: None,
                }],
                ..Default::default()
            }),
        }
    }

    fn rules(e: &Evaluation) -> Vec<&str> {
        e.conditions.iter().map(|c| c.key.rule).collect()
    }

    #[test]
    fn healthy_router_raises_nothing() {
        let now = 1_700_000_000_000;
        let e = evaluate(
            &AlertsConfig::default(),
            &[router(now)],
            &mut RuleMemory::default(),
            now,
            0,
        );
        assert!(e.conditions.is_empty(), "{:?}", e.conditions);
    }

    #[test]
    fn each_threshold_fires() {
        let now = 1_700_000_000_000;
        let mut cfg = AlertsConfig::default();
        cfg.fleet.clients_max = 2;
        cfg.fleet.wan_mbps = 0.5;
        cfg.fleet.station_mbps = 10.0;
        cfg.fleet.wg_handshake_age = Duration::from_secs(600);
        cfg.fleet.ovpn_client_gone = true;
        let mut r = router(now);
        r.cert_not_after = now / 1000 + 86_400;
        let rep = r.report.as_mut().unwrap();
        rep.cpu_permille = Some(955);
        rep.mem_available_kb = Some(50);
        rep.disk_used_bytes = Some(95);
        rep.stations.push(StationSnap {
            iface: "wlan0".into(),
            mac: "aa:bb:cc:dd:ee:ff".into(),
            rx_bps: Some(20_000_000),
            tx_bps: None,
        });
        rep.wg_peers.push(WgPeerSnap {
            iface: "wg0".into(),
            public_key: "K=".into(),
            name: None,
            latest_handshake: Some(rep.ts_ms / 1000 - 3600),
        });
        rep.wg_peers.push(WgPeerSnap {
            iface: "wg0".into(),
            public_key: "L=".into(),
            name: None,
            latest_handshake: Some(rep.ts_ms / 1000 - 60),
        });
        rep.ovpn_gone.push(OvpnGoneSnap {
            instance: "server".into(),
            common_name: "alice".into(),
            last_seen_ms: now - 60_000,
        });
        let e = evaluate(&cfg, &[r], &mut RuleMemory::default(), now, 0);
        let mut got = rules(&e);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "cert_renewal",
                "clients_high",
                "cpu",
                "disk",
                "memory",
                "ovpn_client_gone",
                "station_rate",
                "wan_rate",
                "wg_handshake"
            ]
        );
        let cpu = e.conditions.iter().find(|c| c.key.rule == "cpu").unwrap();
        assert_eq!(cpu.values["cpu_percent"], 95.5);
        assert_eq!(cpu.for_, Duration::from_secs(300));
        let wg = e
            .conditions
            .iter()
            .find(|c| c.key.rule == "wg_handshake")
            .unwrap();
        assert_eq!(wg.key.subject, "wg0/K=");
    }

    #[test]
    fn offline_router_holds_its_other_alerts() {
        let now = 1_700_000_000_000;
        let mut r = router(now);
        r.last_seen_ms = Some(now - 91_000);
        r.report.as_mut().unwrap().cpu_permille = Some(999);
        let e = evaluate(
            &AlertsConfig::default(),
            &[r],
            &mut RuleMemory::default(),
            now,
            0,
        );
        assert_eq!(rules(&e), ["offline"]);
        assert!(e.hold.contains(&1));
        assert_eq!(e.conditions[0].values["silent_s"], 91);
        // A collector that started listening 30 s ago waits for the agents to reconnect: the
        // condition holds but must wait the remaining 60 s before it can fire (an alert that
        // was already firing before the restart is kept by it, without a false resolution).
        let mut r = router(now);
        r.last_seen_ms = Some(now - 3_600_000);
        let e = evaluate(
            &AlertsConfig::default(),
            &[r.clone()],
            &mut RuleMemory::default(),
            now,
            now - 30_000,
        );
        assert_eq!(rules(&e), ["offline"]);
        assert_eq!(e.conditions[0].for_, Duration::from_secs(60));
        let e = evaluate(
            &AlertsConfig::default(),
            &[r],
            &mut RuleMemory::default(),
            now + 61_000,
            now - 30_000,
        );
        assert_eq!(rules(&e), ["offline"]);
        assert_eq!(e.conditions[0].values["silent_s"], 3661);
        assert_eq!(e.conditions[0].for_, Duration::ZERO);
        // 89 s is under 3 x 30 s.
        let mut r = router(now);
        r.last_seen_ms = Some(now - 89_000);
        assert!(evaluate(
            &AlertsConfig::default(),
            &[r],
            &mut RuleMemory::default(),
            now,
            0
        )
        .conditions
        .is_empty());
    }

    #[test]
    fn wan_gone_and_spool_drops_need_an_earlier_report() {
        let now = 1_700_000_000_000;
        let cfg = AlertsConfig::default();
        let mut mem = RuleMemory::default();
        let mut r = router(now);
        r.report.as_mut().unwrap().interfaces[0] = IfaceSnap {
            name: "pppoe-wan".into(),
            kind: "pppoe".into(),
            ..Default::default()
        };
        r.report.as_mut().unwrap().dropped_reports = 5;
        assert!(evaluate(&cfg, &[r.clone()], &mut mem, now, 0)
            .conditions
            .is_empty());
        let rep = r.report.as_mut().unwrap();
        rep.interfaces.clear();
        rep.dropped_reports = 7;
        let e = evaluate(&cfg, &[r.clone()], &mut mem, now, 0);
        let mut got = rules(&e);
        got.sort_unstable();
        assert_eq!(got, ["spool_drops", "wan_down"]);
        assert_eq!(
            e.conditions
                .iter()
                .find(|c| c.key.rule == "spool_drops")
                .unwrap()
                .values["dropped"],
            2
        );
        assert_eq!(
            e.conditions
                .iter()
                .find(|c| c.key.rule == "wan_down")
                .unwrap()
                .key
                .subject,
            "pppoe-wan"
        );
        // Same report again: no new drops; the WAN is still gone.
        assert_eq!(rules(&evaluate(&cfg, &[r], &mut mem, now, 0)), ["wan_down"]);
    }

    #[test]
    fn probe_loss_latency_and_wan_address_change() {
        let now = 1_700_000_000_000;
        let v: toml::Value = toml::from_str(
            "[fleet]\nprobe_loss_percent = 20\nprobe_latency_ms = 100\n[router.r1]\nprobe_for = \"1m\"",
        )
        .unwrap();
        let cfg = AlertsConfig::from_value(v).unwrap();
        let mut mem = RuleMemory::default();
        let mut r = router(now);
        let rep = r.report.as_mut().unwrap();
        rep.probes = vec![
            ProbeSnap {
                target: "192.0.2.1".into(),
                name: "wan".into(),
                sent: 4,
                received: 4,
                rtt_avg_us: Some(150_000),
            },
            ProbeSnap {
                target: "192.0.2.53".into(),
                name: "dns".into(),
                sent: 4,
                received: 2,
                rtt_avg_us: Some(20_000),
            },
            ProbeSnap {
                target: "192.0.2.99".into(),
                name: "gone".into(),
                sent: 0,
                received: 0,
                rtt_avg_us: None,
            },
        ];
        rep.wan_addrs = vec!["203.0.113.7/24".into()];
        let e = evaluate(&cfg, &[r.clone()], &mut mem, now, 0);
        let got: Vec<(&str, &str)> = e
            .conditions
            .iter()
            .map(|c| (c.key.rule, c.key.subject.as_str()))
            .collect();
        assert_eq!(
            got,
            [("probe_latency", "192.0.2.1"), ("probe_loss", "192.0.2.53")]
        );
        let loss = e
            .conditions
            .iter()
            .find(|c| c.key.rule == "probe_loss")
            .unwrap();
        assert_eq!(
            (loss.values["loss_percent"].as_f64(), loss.for_),
            (Some(50.0), Duration::from_secs(60))
        );
        // A new WAN address: one change condition; the same again is no change; none is no change.
        let rep = r.report.as_mut().unwrap();
        rep.probes.clear();
        rep.wan_addrs = vec!["203.0.113.9/24".into()];
        let e = evaluate(&cfg, &[r.clone()], &mut mem, now, 0);
        assert_eq!(rules(&e), ["wan_address_change"]);
        assert_eq!(e.conditions[0].values["previous"][0], "203.0.113.7/24");
        assert!(evaluate(&cfg, &[r.clone()], &mut mem, now, 0)
            .conditions
            .is_empty());
        r.report.as_mut().unwrap().wan_addrs.clear();
        assert!(evaluate(&cfg, &[r.clone()], &mut mem, now, 0)
            .conditions
            .is_empty());
        // Out-of-range thresholds are refused.
        for bad in ["probe_loss_percent = 101", "probe_latency_ms = -1"] {
            let v: toml::Value = toml::from_str(&format!("[fleet]\n{bad}")).unwrap();
            assert!(AlertsConfig::from_value(v).is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_turns_rules_off_and_router_scope_wins() {
        let now = 1_700_000_000_000;
        let v: toml::Value =
            toml::from_str("[fleet]\ncpu_percent = 50\n[router.r1]\ncpu_percent = 0").unwrap();
        let cfg = AlertsConfig::from_value(v).unwrap();
        let mut r = router(now);
        r.report.as_mut().unwrap().cpu_permille = Some(990);
        assert!(
            evaluate(&cfg, &[r.clone()], &mut RuleMemory::default(), now, 0)
                .conditions
                .is_empty()
        );
        r.name = "r2".into();
        assert_eq!(
            rules(&evaluate(&cfg, &[r], &mut RuleMemory::default(), now, 0)),
            ["cpu"]
        );
    }

    #[test]
    fn odd_values_do_not_panic() {
        let now = 1_700_000_000_000;
        let mut r = router(now);
        let rep = r.report.as_mut().unwrap();
        rep.mem_total_kb = Some(0);
        rep.disk_total_bytes = Some(0);
        rep.cpu_permille = Some(i64::MAX);
        rep.interfaces[0].rx_bps = Some(i64::MIN);
        r.cert_not_after = i64::MIN / 2;
        let _ = evaluate(
            &AlertsConfig::default(),
            &[r],
            &mut RuleMemory::default(),
            now,
            0,
        );
    }
}
