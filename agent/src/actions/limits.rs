//! Per-user bandwidth limits (queues and throttles) and anti-sharing: one mechanism, kept in UCI
//! and applied with the kernel's own tools.
//!
//! **Kept in UCI** (`/etc/config/routerstats`, written with the `uci` CLI, so it survives a
//! reboot; the agent applies it again when it starts, [`restore`]):
//!
//! ```text
//! config limit 'rs_limit_laptop'
//!     option user 'laptop'                 # the collector's user name (DHCP hostname or MAC)
//!     option mac 'aa:bb:cc:dd:ee:ff'       # the host (its current lease gives the IPv4 address)
//!     option ip '192.168.1.20'             # the address when the limit was set
//!     option download_kbit '10000'         # the queue (the user's package) ...
//!     option upload_kbit '5000'
//!     option throttle_download_kbit '5000' # ... and a throttle over it, which wins while set
//!     option throttle_upload_kbit '2000'
//!
//! config anti_sharing 'rs_anti_sharing_br_lan'
//!     option interface 'br-lan'
//! ```
//!
//! **Applied** as a whole each time (so an action never leaves a half-applied state: when a tool
//! fails, the previous state is applied again and UCI is not changed; when `uci` fails, its
//! uncommitted changes are reverted and the previous state is applied again):
//! - nftables table `inet routerstats` (replaced atomically with `nft -f`): a `forward` chain at
//!   mangle priority sets the priority of packets from and to each limited host to its HTB
//!   class (`meta priority set 5253:<minor>`; HTB takes a packet whose priority names one of
//!   its classes straight into that class, so no tc classifier module is needed and packet
//!   marks stay free for the firewall), and with anti-sharing on, sets the TTL (hop limit) of
//!   every packet forwarded out of that interface to 1: a client's own host accepts it, a router
//!   the client puts behind it (to share the connection) drops it.
//! - tc: an HTB qdisc `5253:` as the root of the LAN device (downloads) and of the WAN device
//!   (uploads; the priority is set before NAT rewrites the source and survives it), one class
//!   per host with `rate` = `ceil` = its limit. Other traffic passes HTB unclassified,
//!   unshaped. With no limit left, the qdiscs are deleted (only ours: handle `5253:`).

use std::net::Ipv4Addr;

use routerstats_shared::action::{
    check_kbit, ActionDetail, ActionKind, LimitLayer, LimitMode, NOT_FOUND,
};

use super::{tools, uci_cli, ActionConfig};
use crate::uci::{self, Section};

type Outcome = Result<(String, Option<ActionDetail>), String>;

/// The UCI package (file) holding limits and anti-sharing.
pub const PACKAGE: &str = "routerstats";
/// The project's nftables table (family `inet`).
pub const NFT_TABLE: &str = "routerstats";
/// Major number of our HTB qdiscs ("RS").
pub const HTB_MAJOR: &str = "5253";
/// Minor number of the first class.
const FIRST_CLASS: u32 = 0x10;
/// Most limited hosts on one router.
pub const MAX_LIMITS: usize = 4096;

/// One host's limit as UCI keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The `uci` reference (`routerstats.<name>` or `routerstats.@limit[i]`).
    pub reference: String,
    pub user: String,
    pub mac: Option<String>,
    pub ip: Option<String>,
    /// (download, upload) in kbit/s.
    pub queue: Option<(u32, u32)>,
    pub throttle: Option<(u32, u32)>,
}

impl Limit {
    /// The limit in force: the throttle while it is set, else the queue.
    pub fn effective(&self) -> Option<(u32, u32)> {
        self.throttle.or(self.queue)
    }

    fn layer(&self, l: LimitLayer) -> Option<(u32, u32)> {
        match l {
            LimitLayer::Queue => self.queue,
            LimitLayer::Throttle => self.throttle,
        }
    }

    fn set_layer(&mut self, l: LimitLayer, v: Option<(u32, u32)>) {
        match l {
            LimitLayer::Queue => self.queue = v,
            LimitLayer::Throttle => self.throttle = v,
        }
    }

    fn is(&self, user: &str, mac: Option<&str>) -> bool {
        self.user.eq_ignore_ascii_case(user) || (mac.is_some() && self.mac.as_deref() == mac)
    }
}

/// What UCI says should be applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub limits: Vec<Limit>,
    /// (uci reference, interface)
    pub anti_sharing: Vec<(String, String)>,
}

fn kbit_pair(s: &Section, down: &str, up: &str) -> Option<(u32, u32)> {
    let get = |k: &str| {
        s.option(k)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|v| check_kbit(k, *v).is_ok())
    };
    Some((get(down)?, get(up)?))
}

/// Parses the `limit` and `anti_sharing` sections of the package's text.
pub fn parse_state(text: &str) -> State {
    let sections = match uci::parse(text) {
        Ok(p) => p.value,
        Err(_) => return State::default(),
    };
    let mut state = State::default();
    for (i, s) in sections.iter().enumerate() {
        let reference = uci_cli::reference(PACKAGE, &sections, i);
        match s.kind.as_str() {
            "limit" => {
                let Some(user) = s.option("user") else {
                    continue;
                };
                state.limits.push(Limit {
                    reference,
                    user: user.to_string(),
                    mac: s.option("mac").map(String::from),
                    ip: s.option("ip").map(String::from),
                    queue: kbit_pair(s, "download_kbit", "upload_kbit"),
                    throttle: kbit_pair(s, "throttle_download_kbit", "throttle_upload_kbit"),
                });
            }
            "anti_sharing" => {
                if let Some(i) = s.option("interface") {
                    state.anti_sharing.push((reference, i.to_string()));
                }
            }
            _ => {}
        }
    }
    state
}

fn read_state(cfg: &ActionConfig) -> Result<State, String> {
    let path = cfg.config_file(PACKAGE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_state(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The router's IPv4 leases: (mac, ip).
fn leases(cfg: &ActionConfig) -> Vec<(Option<String>, Ipv4Addr)> {
    let Ok(parsed) = crate::sources::dhcp_leases::read(&cfg.lease_files) else {
        return Vec::new();
    };
    parsed
        .value
        .into_iter()
        .filter_map(|l| match l.ip {
            std::net::IpAddr::V4(ip) => Some((l.mac.map(|m| m.to_string()), ip)),
            _ => None,
        })
        .collect()
}

/// The address of a host on this router: the lease of its MAC, else a lease of its IP.
fn host_ip(
    leases: &[(Option<String>, Ipv4Addr)],
    mac: Option<&str>,
    ip: Option<&str>,
) -> Option<Ipv4Addr> {
    if let Some(m) = mac {
        if let Some((_, ip)) = leases.iter().find(|(lm, _)| lm.as_deref() == Some(m)) {
            return Some(*ip);
        }
    }
    let ip: Ipv4Addr = ip?.parse().ok()?;
    leases.iter().any(|(_, l)| *l == ip).then_some(ip)
}

/// The devices limits shape: (LAN, WAN).
fn devices(cfg: &ActionConfig) -> Result<(String, String), String> {
    let net = std::fs::read_to_string(cfg.config_file("network"))
        .ok()
        .and_then(|t| uci::parse(&t).ok())
        .map(|p| p.value)
        .unwrap_or_default();
    let of = |iface: &str| {
        net.iter()
            .find(|s| s.kind == "interface" && s.name.as_deref() == Some(iface))
            .and_then(|s| s.option("device").or_else(|| s.option("ifname")))
            .map(String::from)
    };
    let lan = cfg
        .limits_lan_device
        .clone()
        .or_else(|| of("lan"))
        .unwrap_or_else(|| "br-lan".into());
    let wan = cfg.limits_wan_device.clone().or_else(|| of("wan")).ok_or(
        "no WAN device to shape uploads on: set `option limits_wan_device` in /etc/config/routerstats or a device on network.wan",
    )?;
    for d in [&lan, &wan] {
        routerstats_shared::action::check_device(d)?;
    }
    Ok((lan, wan))
}

/// One shaped host: its HTB class minor, address, (download, upload) kbit/s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub minor: u32,
    pub ip: Ipv4Addr,
    pub down: u32,
    pub up: u32,
}

/// What gets applied: the shaped hosts and the anti-sharing interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// (LAN, WAN) devices; None when nothing is shaped.
    pub devices: Option<(String, String)>,
    pub classes: Vec<Class>,
    pub anti_sharing: Vec<String>,
    /// Limits with no address on this router now (not applied).
    pub absent: Vec<String>,
}

/// Turns a state into a plan; the devices are looked up only when a limit needs them.
pub fn plan(
    state: &State,
    leases: &[(Option<String>, Ipv4Addr)],
    devices: impl FnOnce() -> Result<(String, String), String>,
) -> Result<Plan, String> {
    let mut p = Plan::default();
    for l in &state.limits {
        let Some((down, up)) = l.effective() else {
            continue;
        };
        // The current lease of the MAC, else the address kept in UCI.
        let ip = host_ip(leases, l.mac.as_deref(), None)
            .or_else(|| l.ip.as_deref().and_then(|i| i.parse().ok()));
        let Some(ip) = ip else {
            p.absent.push(l.user.clone());
            continue;
        };
        if p.classes.len() >= MAX_LIMITS {
            return Err(format!("more than {MAX_LIMITS} limits on one router"));
        }
        let minor = FIRST_CLASS + p.classes.len() as u32;
        p.classes.push(Class {
            minor,
            ip,
            down,
            up,
        });
    }
    if !p.classes.is_empty() {
        p.devices = Some(devices()?);
    }
    p.anti_sharing = state.anti_sharing.iter().map(|(_, i)| i.clone()).collect();
    Ok(p)
}

/// The nftables script that replaces the project's table in one transaction (it only deletes
/// the table when the plan is empty).
pub fn nft_script(p: &Plan) -> String {
    let mut s = format!("table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n");
    if p.classes.is_empty() && p.anti_sharing.is_empty() {
        return s;
    }
    s.push_str(&format!(
        "table inet {NFT_TABLE} {{\n\tchain forward {{\n\t\ttype filter hook forward priority mangle; policy accept;\n"
    ));
    for c in &p.classes {
        s.push_str(&format!(
            "\t\tip saddr {ip} meta priority set {HTB_MAJOR}:{m:x}\n\t\tip daddr {ip} meta priority set {HTB_MAJOR}:{m:x}\n",
            ip = c.ip,
            m = c.minor
        ));
    }
    for i in &p.anti_sharing {
        s.push_str(&format!(
            "\t\toifname \"{i}\" ip ttl set 1\n\t\toifname \"{i}\" ip6 hoplimit set 1\n"
        ));
    }
    s.push_str("\t}\n}\n");
    s
}

/// The `tc` commands that build the HTB tree of one device (classes only: the nftables rules
/// classify by priority) (after ours was deleted); `down`
/// picks the download rates (LAN) or the upload rates (WAN).
pub fn tc_build(dev: &str, classes: &[Class], down: bool) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let root = format!("{HTB_MAJOR}:");
    let mut out = vec![v(&[
        "qdisc", "add", "dev", dev, "root", "handle", &root, "htb",
    ])];
    for c in classes {
        let id = format!("{HTB_MAJOR}:{:x}", c.minor);
        let rate = format!("{}kbit", if down { c.down } else { c.up });
        out.push(v(&[
            "class", "add", "dev", dev, "parent", &root, "classid", &id, "htb", "rate", &rate,
            "ceil", &rate,
        ]));
    }
    out
}

fn tc(cfg: &ActionConfig, args: &[String], log: &mut String) -> Result<String, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    log.push_str(&format!("tc {}\n", a.join(" ")));
    tools::run(&cfg.tc, &a)
}

/// Deletes our HTB root of `dev` if it is there (another root qdisc is left alone).
fn tc_clear(cfg: &ActionConfig, dev: &str, log: &mut String) -> Result<(), String> {
    let shown = tools::run(&cfg.tc, &["qdisc", "show", "dev", dev])
        .map_err(|e| format!("{NOT_FOUND}network device {dev} is not on this router ({e})"))?;
    if shown.contains(&format!("htb {HTB_MAJOR}: root")) {
        tc(
            cfg,
            &["qdisc", "del", "dev", dev, "root"].map(String::from),
            log,
        )?;
    }
    Ok(())
}

/// Applies a plan: the nftables table, then the tc trees. The commands run, or the first error.
fn apply(cfg: &ActionConfig, p: &Plan, stale: &[String], log: &mut String) -> Result<(), String> {
    let file = cfg
        .backup_dir
        .join(format!("routerstats-{}.nft", std::process::id()));
    std::fs::write(&file, nft_script(p))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let shown = file.display().to_string();
    log.push_str(&format!("nft -f {shown}\n"));
    let r = tools::run(&cfg.nft, &["-f", &shown]);
    let _ = std::fs::remove_file(&file);
    r?;
    // Devices shaped before but not now (a changed configuration) lose our qdisc too.
    for dev in stale {
        if p.devices.as_ref().is_none_or(|(l, w)| l != dev && w != dev) {
            tc_clear(cfg, dev, log)?;
        }
    }
    if let Some((lan, wan)) = &p.devices {
        for (dev, down) in [(lan, true), (wan, false)] {
            tc_clear(cfg, dev, log)?;
            for cmd in tc_build(dev, &p.classes, down) {
                tc(cfg, &cmd, log)?;
            }
        }
    }
    Ok(())
}

/// The devices a plan (or a failed lookup) touches, to clear them when they are not used.
fn used_devices(p: &Plan) -> Vec<String> {
    p.devices
        .as_ref()
        .map(|(l, w)| vec![l.clone(), w.clone()])
        .unwrap_or_default()
}

/// Attempts of [`restore`] at agent start, and the pause between them (ten minutes in all).
pub const RESTORE_ATTEMPTS: u32 = 40;
pub const RESTORE_RETRY: std::time::Duration = std::time::Duration::from_secs(15);

/// Applies what UCI holds (agent start). A summary, None when UCI holds nothing.
pub fn restore(cfg: &ActionConfig) -> Result<Option<String>, String> {
    let _one_at_a_time = APPLYING.lock().unwrap_or_else(|e| e.into_inner());
    let state = read_state(cfg)?;
    if state.limits.is_empty() && state.anti_sharing.is_empty() {
        return Ok(None);
    }
    let p = plan(&state, &leases(cfg), || devices(cfg))?;
    let mut log = String::new();
    apply(cfg, &p, &[], &mut log)?;
    let mut summary = format!(
        "{} limit(s), anti-sharing on {} interface(s)",
        p.classes.len(),
        p.anti_sharing.len()
    );
    if !p.absent.is_empty() {
        summary.push_str(&format!(
            "; not applied (no address): {}",
            p.absent.join(", ")
        ));
    }
    Ok(Some(summary))
}

/// UCI section name for a new section: `<prefix>` + the name with other characters as `_`,
/// made unique among `taken`.
fn section_name(prefix: &str, name: &str, taken: &[&str]) -> String {
    let base: String = format!("{prefix}{name}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.contains(&candidate.as_str()) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    candidate
}

fn layer_keys(l: LimitLayer) -> (&'static str, &'static str) {
    match l {
        LimitLayer::Queue => ("download_kbit", "upload_kbit"),
        LimitLayer::Throttle => ("throttle_download_kbit", "throttle_upload_kbit"),
    }
}

/// The new state and the `uci` commands for one action; errors for duplicates, missing things
/// and hosts that are not on this router (checked against `leases`).
pub fn change(
    state: &State,
    kind: &ActionKind,
    leases: &[(Option<String>, Ipv4Addr)],
) -> Result<(State, Vec<Vec<String>>, String), String> {
    let mut next = state.clone();
    let mut steps: Vec<Vec<String>> = Vec::new();
    let set = |r: &str, k: &str, v: &str| vec!["set".to_string(), format!("{r}.{k}={v}")];
    let message;
    match kind {
        ActionKind::LimitSet {
            user,
            mac,
            ip,
            layer,
            mode,
            download_kbit,
            upload_kbit,
        } => {
            let Some(addr) = host_ip(leases, mac.as_deref(), ip.as_deref()) else {
                return Err(format!(
                    "{NOT_FOUND}host {} of user {user} is not on this router (no DHCP lease)",
                    mac.as_deref().or(ip.as_deref()).unwrap_or("?")
                ));
            };
            let what = layer.as_str();
            let pos = next.limits.iter().position(|l| l.is(user, mac.as_deref()));
            let existing = pos.and_then(|i| next.limits[i].layer(*layer));
            match (mode, existing) {
                (LimitMode::Create, Some(_)) => {
                    return Err(format!("user {user} already has a {what}"))
                }
                (LimitMode::Update, None) => {
                    return Err(format!("{NOT_FOUND}user {user} has no {what} to update"))
                }
                _ => {}
            }
            let i = match pos {
                Some(i) => i,
                None => {
                    let taken: Vec<&str> = state
                        .limits
                        .iter()
                        .map(|l| l.reference.trim_start_matches("routerstats."))
                        .collect();
                    let name = section_name("rs_limit_", user, &taken);
                    let reference = format!("{PACKAGE}.{name}");
                    steps.push(vec!["set".into(), format!("{reference}=limit")]);
                    steps.push(set(&reference, "user", user));
                    next.limits.push(Limit {
                        reference,
                        user: user.clone(),
                        mac: None,
                        ip: None,
                        queue: None,
                        throttle: None,
                    });
                    next.limits.len() - 1
                }
            };
            let l = &mut next.limits[i];
            let r = l.reference.clone();
            if let Some(m) = mac {
                steps.push(set(&r, "mac", m));
                l.mac = Some(m.clone());
            }
            steps.push(set(&r, "ip", &addr.to_string()));
            l.ip = Some(addr.to_string());
            let (dk, uk) = layer_keys(*layer);
            steps.push(set(&r, dk, &download_kbit.to_string()));
            steps.push(set(&r, uk, &upload_kbit.to_string()));
            l.set_layer(*layer, Some((*download_kbit, *upload_kbit)));
            message = format!(
                "{what} of {user} ({addr}): {download_kbit} kbit/s down, {upload_kbit} kbit/s up"
            );
        }
        ActionKind::LimitRemove { user, mac, layer } => {
            let what = layer.as_str();
            let i = next
                .limits
                .iter()
                .position(|l| l.is(user, mac.as_deref()) && l.layer(*layer).is_some())
                .ok_or_else(|| format!("{NOT_FOUND}user {user} has no {what}"))?;
            let l = &mut next.limits[i];
            l.set_layer(*layer, None);
            let r = l.reference.clone();
            if l.queue.is_none() && l.throttle.is_none() {
                steps.push(vec!["delete".into(), r]);
                next.limits.remove(i);
            } else {
                let (dk, uk) = layer_keys(*layer);
                steps.push(vec!["delete".into(), format!("{r}.{dk}")]);
                steps.push(vec!["delete".into(), format!("{r}.{uk}")]);
            }
            message = format!("{what} of {user} removed");
        }
        ActionKind::AntiSharing { interface, enable } => {
            let pos = next.anti_sharing.iter().position(|(_, i)| i == interface);
            match (enable, pos) {
                (true, Some(_)) => {
                    return Err(format!("anti-sharing is already enabled on {interface}"))
                }
                (false, None) => {
                    return Err(format!(
                        "{NOT_FOUND}anti-sharing is not enabled on {interface}"
                    ))
                }
                (true, None) => {
                    let taken: Vec<&str> = state
                        .anti_sharing
                        .iter()
                        .map(|(r, _)| r.trim_start_matches("routerstats."))
                        .collect();
                    let name = section_name("rs_anti_sharing_", interface, &taken);
                    let reference = format!("{PACKAGE}.{name}");
                    steps.push(vec!["set".into(), format!("{reference}=anti_sharing")]);
                    steps.push(set(&reference, "interface", interface));
                    next.anti_sharing.push((reference, interface.clone()));
                    message = format!("anti-sharing enabled on {interface} (forwarded TTL 1)");
                }
                (false, Some(i)) => {
                    let (r, _) = next.anti_sharing.remove(i);
                    steps.push(vec!["delete".into(), r]);
                    message = format!("anti-sharing disabled on {interface}");
                }
            }
        }
        other => return Err(format!("not a limits action: {}", other.name())),
    }
    Ok((next, steps, message))
}

/// One limits change at a time: each reads the whole state, applies it and writes UCI.
static APPLYING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs a limits or anti-sharing action (see the module doc for the rollback rules).
pub fn run(cfg: &ActionConfig, kind: &ActionKind) -> Outcome {
    let _one_at_a_time = APPLYING.lock().unwrap_or_else(|e| e.into_inner());
    let old = read_state(cfg)?;
    let leases = leases(cfg);
    let (next, steps, message) = change(&old, kind, &leases)?;
    if let ActionKind::AntiSharing {
        interface,
        enable: true,
    } = kind
    {
        tools::run(&cfg.tc, &["qdisc", "show", "dev", interface]).map_err(|e| {
            format!("{NOT_FOUND}network device {interface} is not on this router ({e})")
        })?;
    }
    let new_plan = plan(&next, &leases, || devices(cfg))?;
    let old_plan = plan(&old, &leases, || devices(cfg)).unwrap_or_default();
    let mut log = String::new();
    let rollback = |log: &mut String| {
        let mut undo = String::new();
        match apply(cfg, &old_plan, &used_devices(&new_plan), &mut undo) {
            Ok(()) => log.push_str("the previous limits were applied again\n"),
            Err(e) => log.push_str(&format!("applying the previous limits again failed: {e}\n")),
        }
    };
    if let Err(e) = apply(cfg, &new_plan, &used_devices(&old_plan), &mut log) {
        let mut msg = format!("{e}\n{log}");
        rollback(&mut msg);
        return Err(msg);
    }
    match uci_cli::change(cfg, &[PACKAGE], &steps) {
        Ok(uci_log) => Ok((format!("{message}\n{log}{uci_log}"), None)),
        Err(e) => {
            let mut msg = format!("{e}\n");
            rollback(&mut msg);
            Err(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UCI: &str = "config agent 'main'\n\tlist allow_actions 'limits'\n\nconfig limit 'rs_limit_laptop'\n\toption user 'laptop'\n\toption mac 'aa:bb:cc:00:00:01'\n\toption ip '192.168.1.20'\n\toption download_kbit '10000'\n\toption upload_kbit '5000'\n\nconfig limit\n\toption user 'tv'\n\toption ip '192.168.1.30'\n\toption download_kbit '0'\n\toption upload_kbit '100'\n\toption throttle_download_kbit '800'\n\toption throttle_upload_kbit '200'\n\nconfig anti_sharing 'rs_anti_sharing_br_lan'\n\toption interface 'br-lan'\n";

    fn leases() -> Vec<(Option<String>, Ipv4Addr)> {
        vec![
            (
                Some("aa:bb:cc:00:00:01".into()),
                Ipv4Addr::new(192, 168, 1, 21),
            ),
            (
                Some("aa:bb:cc:00:00:02".into()),
                Ipv4Addr::new(192, 168, 1, 30),
            ),
        ]
    }

    fn set(user: &str, mac: Option<&str>, mode: LimitMode, layer: LimitLayer) -> ActionKind {
        ActionKind::LimitSet {
            user: user.into(),
            mac: mac.map(String::from),
            ip: None,
            layer,
            mode,
            download_kbit: 5000,
            upload_kbit: 2000,
        }
    }

    #[test]
    fn state_plan_and_rules() {
        let s = parse_state(UCI);
        assert_eq!(s.limits.len(), 2);
        assert_eq!(s.limits[0].reference, "routerstats.rs_limit_laptop");
        assert_eq!(s.limits[1].reference, "routerstats.@limit[1]");
        // A bad queue value (0) drops that layer; the throttle stands.
        assert_eq!(s.limits[1].queue, None);
        assert_eq!(s.limits[1].effective(), Some((800, 200)));
        let p = plan(&s, &leases(), || Ok(("br-lan".into(), "wan".into()))).unwrap();
        // The MAC's current lease wins over the address kept in UCI.
        assert_eq!(p.classes[0].ip, Ipv4Addr::new(192, 168, 1, 21));
        assert_eq!(p.classes[1].minor, 0x11);
        let nft = nft_script(&p);
        assert!(nft.starts_with("table inet routerstats\ndelete table inet routerstats\n"));
        assert!(
            nft.contains("ip daddr 192.168.1.21 meta priority set 5253:10\n"),
            "{nft}"
        );
        assert!(
            nft.contains("ip saddr 192.168.1.30 meta priority set 5253:11\n"),
            "{nft}"
        );
        assert!(nft.contains("oifname \"br-lan\" ip ttl set 1\n"), "{nft}");
        let lan = tc_build("br-lan", &p.classes, true);
        assert_eq!(
            lan[0].join(" "),
            "qdisc add dev br-lan root handle 5253: htb"
        );
        assert_eq!(
            lan[1].join(" "),
            "class add dev br-lan parent 5253: classid 5253:10 htb rate 10000kbit ceil 10000kbit"
        );
        assert_eq!(lan.len(), 3);
        assert_eq!(tc_build("wan", &p.classes, false)[2][10], "200kbit");
        // Nothing left: only the table's deletion.
        assert_eq!(
            nft_script(&Plan::default()),
            "table inet routerstats\ndelete table inet routerstats\n"
        );
        // No WAN device: an error that says what to set, but only when something is shaped.
        let e = plan(&s, &leases(), || {
            devices(&crate::actions::tests_cfg(std::path::Path::new(
                "/nonexistent",
            )))
        })
        .unwrap_err();
        assert!(e.contains("limits_wan_device"), "{e}");
        assert!(plan(&State::default(), &[], || Err("unused".into())).is_ok());
    }

    #[test]
    fn changes_check_duplicates_missing_and_absent_hosts() {
        let s = parse_state(UCI);
        let l = leases();
        // A new host: a named section with the user, host and layer.
        let (next, steps, _) = change(
            &s,
            &set(
                "phone.x",
                Some("aa:bb:cc:00:00:02"),
                LimitMode::Create,
                LimitLayer::Queue,
            ),
            &l,
        )
        .unwrap();
        let joined: Vec<String> = steps.iter().map(|s| s.join(" ")).collect();
        assert_eq!(
            joined,
            vec![
                "set routerstats.rs_limit_phone_x=limit",
                "set routerstats.rs_limit_phone_x.user=phone.x",
                "set routerstats.rs_limit_phone_x.mac=aa:bb:cc:00:00:02",
                "set routerstats.rs_limit_phone_x.ip=192.168.1.30",
                "set routerstats.rs_limit_phone_x.download_kbit=5000",
                "set routerstats.rs_limit_phone_x.upload_kbit=2000",
            ]
        );
        assert_eq!(next.limits.len(), 3);
        // Duplicate create, update of nothing, remove of nothing, host not on the router.
        let e = change(
            &s,
            &set("laptop", None, LimitMode::Create, LimitLayer::Queue),
            &l,
        );
        assert!(e.is_err(), "no mac/ip is not on the router either");
        let e = change(
            &s,
            &set(
                "laptop",
                Some("aa:bb:cc:00:00:01"),
                LimitMode::Create,
                LimitLayer::Queue,
            ),
            &l,
        )
        .unwrap_err();
        assert!(e.contains("already has a queue"), "{e}");
        let e = change(
            &s,
            &set(
                "laptop",
                Some("aa:bb:cc:00:00:01"),
                LimitMode::Update,
                LimitLayer::Throttle,
            ),
            &l,
        )
        .unwrap_err();
        assert!(
            e.starts_with(NOT_FOUND) && e.contains("no throttle to update"),
            "{e}"
        );
        let e = change(
            &s,
            &set(
                "ghost",
                Some("aa:bb:cc:00:00:99"),
                LimitMode::Set,
                LimitLayer::Throttle,
            ),
            &l,
        )
        .unwrap_err();
        assert!(
            e.starts_with(NOT_FOUND) && e.contains("not on this router"),
            "{e}"
        );
        let rm = |user: &str, layer| ActionKind::LimitRemove {
            user: user.into(),
            mac: None,
            layer,
        };
        let e = change(&s, &rm("laptop", LimitLayer::Throttle), &l).unwrap_err();
        assert!(e.starts_with(NOT_FOUND), "{e}");
        // A throttle over a queue, then its removal keeps the queue.
        let (next, _, _) = change(
            &s,
            &set(
                "LAPTOP",
                Some("aa:bb:cc:00:00:01"),
                LimitMode::Set,
                LimitLayer::Throttle,
            ),
            &l,
        )
        .unwrap();
        assert_eq!(next.limits[0].effective(), Some((5000, 2000)));
        let (after, steps, _) = change(&next, &rm("laptop", LimitLayer::Throttle), &l).unwrap();
        assert_eq!(after.limits[0].effective(), Some((10000, 5000)));
        assert_eq!(
            steps[0].join(" "),
            "delete routerstats.rs_limit_laptop.throttle_download_kbit"
        );
        // The last layer removed: the section goes.
        let (after, steps, _) = change(&s, &rm("tv", LimitLayer::Throttle), &l).unwrap();
        assert_eq!(after.limits.len(), 1);
        assert_eq!(steps[0].join(" "), "delete routerstats.@limit[1]");
        // Anti-sharing: twice is an error, disabling what is off is a not-found.
        let on = |i: &str, enable| ActionKind::AntiSharing {
            interface: i.into(),
            enable,
        };
        assert!(change(&s, &on("br-lan", true), &l)
            .unwrap_err()
            .contains("already enabled"));
        assert!(change(&s, &on("wlan0", false), &l)
            .unwrap_err()
            .starts_with(NOT_FOUND));
        let (_, steps, _) = change(&s, &on("br-guest", true), &l).unwrap();
        assert_eq!(
            steps[0].join(" "),
            "set routerstats.rs_anti_sharing_br_guest=anti_sharing"
        );
    }

    #[test]
    fn section_names_are_unique_and_uci_safe() {
        assert_eq!(
            section_name("rs_limit_", "aa:bb:cc:00:00:01", &[]),
            "rs_limit_aa_bb_cc_00_00_01"
        );
        assert_eq!(
            section_name("rs_limit_", "a-b", &["rs_limit_a_b"]),
            "rs_limit_a_b_2"
        );
    }

    fn script(path: &std::path::Path, text: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    /// `uci` fails at `commit`: its changes are reverted, UCI keeps the old text, and the old
    /// state is applied again after the new one (nftables saw the new rules, then the old).
    #[test]
    fn a_uci_failure_applies_the_previous_state_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("routerstats"), UCI).unwrap();
        std::fs::write(
            d.join("leases"),
            "0 aa:bb:cc:00:00:01 192.168.1.21 laptop *\n0 aa:bb:cc:00:00:02 192.168.1.30 tv *\n0 aa:bb:cc:00:00:03 192.168.1.40 phone *\n",
        )
        .unwrap();
        let log = d.join("calls.log");
        let rec = format!("echo \"$(basename \"$0\") $*\" >> {}\n", log.display());
        let cfg = ActionConfig {
            uci: script(&d.join("uci"), &format!("#!/bin/sh\n{rec}case \"$*\" in *commit*) echo 'uci: I/O error' >&2; exit 1 ;; esac\n")),
            tc: script(&d.join("tc"), &format!("#!/bin/sh\n{rec}")),
            nft: script(
                &d.join("nft"),
                &format!("#!/bin/sh\n{rec}cat \"$2\" >> {}\n", d.join("nft.log").display()),
            ),
            limits_lan_device: Some("br-lan".into()),
            limits_wan_device: Some("wan".into()),
            lease_files: vec![d.join("leases")],
            ..crate::actions::tests_cfg(d)
        };
        let kind = ActionKind::LimitSet {
            user: "phone".into(),
            mac: Some("aa:bb:cc:00:00:03".into()),
            ip: None,
            layer: LimitLayer::Queue,
            mode: LimitMode::Create,
            download_kbit: 3000,
            upload_kbit: 1000,
        };
        let e = run(&cfg, &kind).unwrap_err();
        assert!(
            e.contains("uncommitted changes reverted")
                && e.contains("the previous limits were applied again"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(d.join("routerstats")).unwrap(), UCI);
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(
            calls.contains("uci -c ") && calls.contains(" revert routerstats"),
            "{calls}"
        );
        // The new class was built, then the old tree again (two classes, no third).
        let tc: Vec<&str> = calls
            .lines()
            .filter(|l| l.starts_with("tc class add dev br-lan"))
            .collect();
        assert_eq!(tc.len(), 3 + 2, "{calls}");
        assert!(tc[2].ends_with("rate 3000kbit ceil 3000kbit"), "{calls}");
        let nft = std::fs::read_to_string(d.join("nft.log")).unwrap();
        let runs: Vec<&str> = nft
            .split("table inet routerstats\ndelete table inet routerstats\n")
            .collect();
        assert!(
            runs.last().unwrap().contains("ip daddr 192.168.1.30")
                && !runs.last().unwrap().contains("192.168.1.40"),
            "{nft}"
        );
        assert!(nft.contains("192.168.1.40"), "{nft}");
    }
}
