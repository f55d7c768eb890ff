//! ISP actions: the openNDS captive portal (`hotspot`), rp-pppoe-server accounts and settings
//! (`pppoe`), and bridges, interfaces and address pools (`bridge`).
//!
//! - hotspot: `ndsctl auth <mac> "" <up kbit/s> <down kbit/s> "" "" <username>` (session
//!   timeout and quotas from openNDS's own config), `ndsctl deauth <mac>`; the server settings in
//!   the `config opennds` section of `/etc/config/opennds`, then `/etc/init.d/opennds restart`.
//! - pppoe: accounts as `"user" * "password" *` lines of `/etc/ppp/chap-secrets` and
//!   `/etc/ppp/pap-secrets` (written whole to a temporary file and renamed, mode 0600; pppd reads
//!   them at each login, so nothing restarts); the server as a `config pppoe_server` section of
//!   `/etc/config/pppoe` (the package's init script turns it into `pppoe-server` flags), then
//!   `/etc/init.d/pppoe-server reload`. The password is never logged nor put in the output.
//! - bridge: `config device` sections of type `bridge` in `/etc/config/network`, a static
//!   `config interface` on a bridge and a `config dhcp` pool in `/etc/config/dhcp`, then
//!   `/etc/init.d/network reload` (and `/etc/init.d/dnsmasq reload` for a pool).
//!
//! Every UCI change goes through [`uci_cli::change`] (all steps or none). A router without the
//! package a family needs refuses its actions with that reason ([`missing_package`]).

use std::net::Ipv4Addr;
use std::path::Path;

use routerstats_shared::action::{
    uci_name, ActionDetail, ActionKind, FAMILY_HOTSPOT, FAMILY_PPPOE,
};

use super::{tools, uci_cli, ActionConfig};
use crate::uci::Section;

type Outcome = Result<(String, Option<ActionDetail>), String>;

/// Why the router cannot run `kind`: the package its family needs is not installed (its init
/// script is missing). None when nothing is missing.
pub fn missing_package(cfg: &ActionConfig, kind: &ActionKind) -> Option<String> {
    let (script, package) = match kind.family() {
        f if f == FAMILY_HOTSPOT => ("opennds", "openNDS (package opennds)"),
        f if f == FAMILY_PPPOE => ("pppoe-server", "rp-pppoe-server"),
        _ => return None,
    };
    let path = cfg.init_script(script);
    (!path.exists()).then(|| {
        format!(
            "{package} is not installed on this router (no {})",
            path.display()
        )
    })
}

/// `uci set <r>.<key>=<value>` (`<r>=<value>` with an empty key: a section of that type).
fn set(r: &str, key: &str, value: &str) -> Vec<String> {
    let mut arg = String::from(r);
    if !key.is_empty() {
        arg.push('.');
        arg.push_str(key);
    }
    arg.push('=');
    arg.push_str(value);
    vec!["set".to_string(), arg]
}

/// Runs `/etc/init.d/<script> <verb>`; the line to show.
fn service(cfg: &ActionConfig, script: &str, verb: &str) -> Result<String, String> {
    let path = cfg.init_script(script).display().to_string();
    tools::run(&path, &[verb]).map_err(|e| format!("the change is committed in UCI, but {e}"))?;
    Ok(format!("{path} {verb}\n"))
}

/// Network devices the kernel has now (`/proc/net/dev`).
fn kernel_devices(cfg: &ActionConfig) -> Vec<String> {
    std::fs::read_to_string(cfg.proc_root.join("net/dev"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, _)| n.trim().to_string())
        .filter(|n| !n.is_empty() && !n.contains('|'))
        .collect()
}

/// Index of the `config device` of type bridge called `name`.
fn bridge_index(net: &[Section], name: &str) -> Option<usize> {
    net.iter().position(|s| {
        s.kind == "device" && s.option("type") == Some("bridge") && s.option("name") == Some(name)
    })
}

/// Whether `name` is a device of the router: in the kernel now, or a device in UCI `network`.
fn device_known(cfg: &ActionConfig, net: &[Section], name: &str) -> bool {
    kernel_devices(cfg).iter().any(|d| d == name)
        || net
            .iter()
            .any(|s| s.kind == "device" && s.option("name") == Some(name))
}

fn has_section(secs: &[Section], name: &str) -> bool {
    secs.iter().any(|s| s.name.as_deref() == Some(name))
}

// ---- hotspot (openNDS) -------------------------------------------------------------------

/// Authorizes a client with ndsctl.
pub fn hotspot_authorize(
    cfg: &ActionConfig,
    username: &str,
    mac: &str,
    down: u32,
    up: u32,
) -> Outcome {
    let (up, down) = (up.to_string(), down.to_string());
    let args = ["auth", mac, "", &up, &down, "", "", username];
    let out = tools::run(&cfg.ndsctl, &args)?;
    Ok((
        format!(
            "{} auth {mac} \"\" {up} {down} \"\" \"\" {username}\n{out}",
            cfg.ndsctl
        ),
        None,
    ))
}

/// Deauthorizes a client with ndsctl.
pub fn hotspot_deauthorize(cfg: &ActionConfig, mac: &str) -> Outcome {
    let out = tools::run(&cfg.ndsctl, &["deauth", mac])?;
    Ok((format!("{} deauth {mac}\n{out}", cfg.ndsctl), None))
}

/// openNDS's server settings (see the module doc).
pub fn hotspot_configure(
    cfg: &ActionConfig,
    interface: &str,
    name: &str,
    pool: &str,
    idle_min: u32,
) -> Outcome {
    let nds = uci_cli::read(cfg, "opennds")?;
    let i = nds
        .iter()
        .position(|s| s.kind == "opennds")
        .ok_or("openNDS's UCI config /etc/config/opennds has no `config opennds` section")?;
    let net = uci_cli::read(cfg, "network")?;
    if !device_known(cfg, &net, interface) {
        return Err(format!(
            "interface {interface} does not exist on this router"
        ));
    }
    let dhcp = uci_cli::read(cfg, "dhcp")?;
    if !dhcp
        .iter()
        .any(|s| s.kind == "dhcp" && s.name.as_deref() == Some(uci_name(pool).as_str()))
    {
        return Err(format!(
            "address pool {pool} does not exist in UCI dhcp (create it with /network/setup)"
        ));
    }
    let r = uci_cli::reference("opennds", &nds, i);
    let steps = vec![
        set(&r, "enabled", "1"),
        set(&r, "gatewayinterface", interface),
        set(&r, "gatewayname", name),
        set(&r, "authidletimeout", &idle_min.to_string()),
    ];
    let mut out = uci_cli::change(cfg, &["opennds"], &steps)?;
    out.push_str(&service(cfg, "opennds", "restart")?);
    Ok((out, None))
}

// ---- PPPoE (rp-pppoe-server) -------------------------------------------------------------

const SECRETS: [&str; 2] = ["ppp/chap-secrets", "ppp/pap-secrets"];

/// The client (first word, quotes removed) of a secrets line; None for comments and blanks.
fn secret_client(line: &str) -> Option<&str> {
    let w = line.split_whitespace().next()?;
    (!w.starts_with('#')).then(|| w.trim_matches('"'))
}

/// Rewrites both secrets files with `edit` applied to each (all or nothing: both new files are
/// written before either replaces its old one; a failed second rename puts the first back).
fn edit_secrets(cfg: &ActionConfig, edit: impl Fn(&str) -> String) -> Result<String, String> {
    let mut staged = Vec::new();
    for rel in SECRETS {
        let path = cfg.etc_root.join(rel);
        let old = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let new = edit(old.as_deref().unwrap_or(""));
        let tmp = path.with_extension("routerstats-new");
        write_private(&tmp, &new).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        staged.push((path, tmp, old));
    }
    let mut log = String::new();
    for (i, (path, tmp, _)) in staged.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, path) {
            for (p, t, old) in &staged[..i] {
                match old {
                    Some(o) => drop(write_private(p, o)),
                    None => drop(std::fs::remove_file(p)),
                }
                let _ = std::fs::remove_file(t);
            }
            for (_, t, _) in &staged[i..] {
                let _ = std::fs::remove_file(t);
            }
            return Err(format!(
                "cannot replace {}: {e}; nothing changed",
                path.display()
            ));
        }
        log.push_str(&format!("wrote {}\n", path.display()));
    }
    Ok(log)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn secret_users(cfg: &ActionConfig) -> Vec<String> {
    SECRETS
        .iter()
        .filter_map(|rel| std::fs::read_to_string(cfg.etc_root.join(rel)).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(secret_client)
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Adds a PPPoE account (see the module doc).
pub fn pppoe_secret_create(cfg: &ActionConfig, username: &str, password: &str) -> Outcome {
    if secret_users(cfg).iter().any(|u| u == username) {
        return Err(format!("PPPoE user {username} already exists"));
    }
    let line = format!("\"{username}\" * \"{password}\" *\n");
    let out = edit_secrets(cfg, |old| {
        let mut t = old.to_string();
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str(&line);
        t
    })?;
    Ok((format!("added PPPoE user {username}\n{out}"), None))
}

/// Removes a PPPoE account from both files.
pub fn pppoe_secret_remove(cfg: &ActionConfig, username: &str) -> Outcome {
    if !secret_users(cfg).iter().any(|u| u == username) {
        return Err(format!("PPPoE user {username} does not exist"));
    }
    let out = edit_secrets(cfg, |old| {
        old.lines()
            .filter(|l| secret_client(l) != Some(username))
            .map(|l| format!("{l}\n"))
            .collect()
    })?;
    Ok((format!("removed PPPoE user {username}\n{out}"), None))
}

/// `a.b.c.d/len` or `ipaddr` + `netmask` of a UCI interface section.
fn interface_net(sec: &Section) -> Option<(u32, u8)> {
    let ip = sec
        .option("ipaddr")
        .or_else(|| sec.list("ipaddr").first().copied())?;
    let (ip, len) = match ip.split_once('/') {
        Some((ip, len)) => (ip, len.parse().ok()?),
        None => {
            let m: Ipv4Addr = sec.option("netmask")?.parse().ok()?;
            (ip, u32::from(m).count_ones() as u8)
        }
    };
    let ip: Ipv4Addr = ip.parse().ok()?;
    (len <= 32).then_some((u32::from(ip) & mask(len), len))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

/// The first address and size of a UCI `dhcp` pool: its interface's network + `start`, `limit`.
fn pool_range(net: &[Section], dhcp: &[Section], pool: &str) -> Result<(Ipv4Addr, u32), String> {
    let p = dhcp
        .iter()
        .find(|s| s.kind == "dhcp" && s.name.as_deref() == Some(uci_name(pool).as_str()))
        .ok_or_else(|| {
            format!(
                "address pool {pool} does not exist in UCI dhcp (create it with /network/setup)"
            )
        })?;
    let iface = p.option("interface").unwrap_or_default();
    let (base, _) = net
        .iter()
        .find(|s| s.kind == "interface" && s.name.as_deref() == Some(iface))
        .and_then(interface_net)
        .ok_or_else(|| {
            format!("address pool {pool}: interface {iface:?} has no IPv4 address in UCI network")
        })?;
    let num = |k: &str, d: u32| p.option(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(d);
    Ok((
        Ipv4Addr::from(base.wrapping_add(num("start", 100))),
        num("limit", 150),
    ))
}

/// rp-pppoe-server's settings for one interface (see the module doc).
pub fn pppoe_server_configure(
    cfg: &ActionConfig,
    interface: &str,
    service_name: &str,
    local: &str,
    remote: &str,
    timeout_s: u32,
) -> Outcome {
    uci_cli::read(cfg, "pppoe")?;
    let net = uci_cli::read(cfg, "network")?;
    if !device_known(cfg, &net, interface) {
        return Err(format!(
            "interface {interface} does not exist on this router"
        ));
    }
    let (first, count) = match remote.parse::<Ipv4Addr>() {
        Ok(ip) => (ip, None),
        Err(_) => {
            let (ip, n) = pool_range(&net, &uci_cli::read(cfg, "dhcp")?, remote)?;
            (ip, Some(n))
        }
    };
    let sec = format!("pppoe.rs_{}", uci_name(interface));
    let mut steps = vec![
        set(&sec, "", "pppoe_server"),
        set(&sec, "interface", interface),
        set(&sec, "service_name", service_name),
        set(&sec, "localip", local),
        set(&sec, "firstremoteip", &first.to_string()),
        set(&sec, "timeout", &timeout_s.to_string()),
        set(&sec, "optionsfile", "/etc/ppp/pppoe-server-options"),
    ];
    if let Some(n) = count {
        steps.push(set(&sec, "maxsessions", &n.to_string()));
    }
    let mut out = uci_cli::change(cfg, &["pppoe"], &steps)?;
    out.push_str(&service(cfg, "pppoe-server", "reload")?);
    Ok((out, None))
}

// ---- bridges, interfaces, pools ----------------------------------------------------------

fn bridge_steps(name: &str, mac: Option<&str>) -> (String, Vec<Vec<String>>) {
    let sec = format!("network.rs_{}", uci_name(name));
    let mut steps = vec![
        set(&sec, "", "device"),
        set(&sec, "name", name),
        set(&sec, "type", "bridge"),
        set(&sec, "bridge_empty", "1"),
    ];
    if let Some(m) = mac {
        steps.push(set(&sec, "macaddr", &m.to_ascii_lowercase()));
    }
    (sec, steps)
}

fn check_new_bridge(cfg: &ActionConfig, net: &[Section], name: &str) -> Result<(), String> {
    if device_known(cfg, net, name) || has_section(net, &format!("rs_{}", uci_name(name))) {
        return Err(format!("bridge {name} already exists"));
    }
    Ok(())
}

/// A bridge device in UCI network.
pub fn bridge_create(cfg: &ActionConfig, name: &str, mac: Option<&str>) -> Outcome {
    let net = uci_cli::read(cfg, "network")?;
    check_new_bridge(cfg, &net, name)?;
    let (_, steps) = bridge_steps(name, mac);
    let mut out = uci_cli::change(cfg, &["network"], &steps)?;
    out.push_str(&service(cfg, "network", "reload")?);
    Ok((out, None))
}

/// Adds `port` to the bridge device `bridge`.
pub fn bridge_add_port(cfg: &ActionConfig, bridge: &str, port: &str) -> Outcome {
    let net = uci_cli::read(cfg, "network")?;
    let i = bridge_index(&net, bridge)
        .ok_or_else(|| format!("bridge {bridge} does not exist in UCI network"))?;
    if port == bridge {
        return Err(format!("a bridge cannot be a port of itself ({port})"));
    }
    if !kernel_devices(cfg).iter().any(|d| d == port) {
        return Err(format!("interface {port} does not exist on this router"));
    }
    if let Some(other) = net.iter().find(|s| {
        s.kind == "device" && s.option("type") == Some("bridge") && s.list("ports").contains(&port)
    }) {
        let b = other.option("name").unwrap_or("?");
        return Err(format!("interface {port} is already a port of bridge {b}"));
    }
    let r = uci_cli::reference("network", &net, i);
    let mut out = uci_cli::change(
        cfg,
        &["network"],
        &[vec!["add_list".to_string(), format!("{r}.ports={port}")]],
    )?;
    out.push_str(&service(cfg, "network", "reload")?);
    Ok((out, None))
}

/// A bridge with a static address and a DHCP pool (see the module doc).
pub fn network_setup(
    cfg: &ActionConfig,
    bridge: &str,
    pool: &str,
    address: &str,
    start: &str,
    end: &str,
) -> Outcome {
    let bad = |m: String| Err(m);
    let (ip, len) = address
        .split_once('/')
        .ok_or("network_address needs a prefix")?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| "bad network_address")?;
    let len: u8 = len.parse().map_err(|_| "bad network_address prefix")?;
    let (a, b): (Ipv4Addr, Ipv4Addr) = (
        start.parse().map_err(|_| "bad range")?,
        end.parse().map_err(|_| "bad range")?,
    );
    let net = u32::from(ip) & mask(len);
    let bcast = net | !mask(len);
    let inside = |x: Ipv4Addr| (net + 1..bcast).contains(&u32::from(x));
    if !inside(a) || !inside(b) || a > b {
        return bad(format!(
            "ip_pool_range {a}-{b} must be inside {}/{len} (no network or broadcast address), lowest first",
            Ipv4Addr::from(net)
        ));
    }
    if (a..=b).contains(&ip) {
        return bad(format!(
            "ip_pool_range {a}-{b} contains the router's own address {ip}"
        ));
    }
    let netw = uci_cli::read(cfg, "network")?;
    let dhcp = uci_cli::read(cfg, "dhcp")?;
    check_new_bridge(cfg, &netw, bridge)?;
    let iface = uci_name(bridge);
    if has_section(&netw, &iface) {
        return bad(format!("interface {iface} already exists in UCI network"));
    }
    let pool_sec = uci_name(pool);
    if has_section(&dhcp, &pool_sec) {
        return bad(format!("address pool {pool} already exists in UCI dhcp"));
    }
    let (_, mut steps) = bridge_steps(bridge, None);
    let i = format!("network.{iface}");
    steps.extend([
        set(&i, "", "interface"),
        set(&i, "device", bridge),
        set(&i, "proto", "static"),
        set(&i, "ipaddr", address),
    ]);
    let p = format!("dhcp.{pool_sec}");
    steps.extend([
        set(&p, "", "dhcp"),
        set(&p, "interface", &iface),
        set(&p, "start", &(u32::from(a) - net).to_string()),
        set(&p, "limit", &(u32::from(b) - u32::from(a) + 1).to_string()),
        set(&p, "leasetime", "12h"),
    ]);
    let mut out = uci_cli::change(cfg, &["network", "dhcp"], &steps)?;
    out.push_str(&service(cfg, "network", "reload")?);
    out.push_str(&service(cfg, "dnsmasq", "reload")?);
    Ok((out, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// The real `uci` (`$ROUTERSTATS_UCI`, else what `scripts/build-uci` puts in target/uci).
    fn uci() -> String {
        let p = std::env::var("ROUTERSTATS_UCI")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/uci/bin/uci")
            });
        assert!(
            p.exists(),
            "no uci at {} (run scripts/build-uci)",
            p.display()
        );
        p.display().to_string()
    }

    fn root() -> (tempfile::TempDir, ActionConfig) {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("etc/config");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/uci/network"),
            conf.join("network"),
        )
        .unwrap();
        std::fs::write(
            conf.join("dhcp"),
            "config dhcp 'lan'\n\toption interface 'lan'\n\toption start '100'\n",
        )
        .unwrap();
        let cfg = ActionConfig {
            uci: uci(),
            uci_confdir: Some(conf),
            uci_savedir: Some(dir.path().join("tmp")),
            etc_root: dir.path().join("etc"),
            ..super::super::tests_cfg(dir.path())
        };
        (dir, cfg)
    }

    #[test]
    fn a_failed_step_reverts_every_config_the_change_touched() {
        let (dir, cfg) = root();
        let read =
            |n: &str| std::fs::read_to_string(dir.path().join("etc/config").join(n)).unwrap();
        let (net, dhcp) = (read("network"), read("dhcp"));
        let steps = vec![
            s(&["set", "network.rs_x=device"]),
            s(&["set", "dhcp.rs_pool=dhcp"]),
            // No such config: uci fails here, after two good steps.
            s(&["set", "nosuch.rs_y=thing"]),
        ];
        let e = uci_cli::change(&cfg, &["network", "dhcp"], &steps).unwrap_err();
        assert!(e.contains("uncommitted changes reverted"), "{e}");
        assert_eq!((read("network"), read("dhcp")), (net.clone(), dhcp.clone()));
        // Nothing is left pending either: a later commit writes nothing of it.
        let pending = tools::run(
            &cfg.uci,
            &[
                "-c",
                &cfg.uci_confdir.as_ref().unwrap().display().to_string(),
                "-t",
                &dir.path().join("tmp").display().to_string(),
                "changes",
            ],
        )
        .unwrap();
        assert_eq!(pending.trim(), "", "pending changes: {pending}");
        // The same steps without the bad one commit both files.
        uci_cli::change(&cfg, &["network", "dhcp"], &steps[..2]).unwrap();
        assert!(
            read("network").contains("config device 'rs_x'")
                && read("dhcp").contains("config dhcp 'rs_pool'")
        );
    }

    #[test]
    fn secrets_are_added_once_removed_once_and_private() {
        let (dir, cfg) = root();
        let chap = dir.path().join("etc/ppp/chap-secrets");
        std::fs::create_dir_all(chap.parent().unwrap()).unwrap();
        std::fs::write(&chap, "# client server secret IP\n\"old\" * \"x\" *").unwrap();
        let (out, _) = pppoe_secret_create(&cfg, "alice", "pw-1").unwrap();
        assert!(!out.contains("pw-1"), "{out}");
        assert_eq!(
            std::fs::read_to_string(&chap).unwrap(),
            "# client server secret IP\n\"old\" * \"x\" *\n\"alice\" * \"pw-1\" *\n"
        );
        // pap-secrets did not exist: it is created with the line alone.
        let pap = dir.path().join("etc/ppp/pap-secrets");
        assert_eq!(
            std::fs::read_to_string(&pap).unwrap(),
            "\"alice\" * \"pw-1\" *\n"
        );
        for f in [&chap, &pap] {
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(f).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(pppoe_secret_create(&cfg, "alice", "other")
            .unwrap_err()
            .contains("already exists"));
        assert!(pppoe_secret_create(&cfg, "old", "other")
            .unwrap_err()
            .contains("already exists"));
        pppoe_secret_remove(&cfg, "alice").unwrap();
        assert_eq!(
            std::fs::read_to_string(&chap).unwrap(),
            "# client server secret IP\n\"old\" * \"x\" *\n"
        );
        assert!(pppoe_secret_remove(&cfg, "alice")
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn missing_packages_are_named() {
        let (dir, cfg) = root();
        let auth = ActionKind::HotspotDeauthorize {
            username: "u".into(),
            mac: "00:11:22:33:44:55".into(),
        };
        assert!(missing_package(&cfg, &auth)
            .unwrap()
            .contains("openNDS (package opennds) is not installed"));
        std::fs::create_dir_all(dir.path().join("etc/init.d")).unwrap();
        std::fs::write(dir.path().join("etc/init.d/opennds"), "").unwrap();
        assert_eq!(missing_package(&cfg, &auth), None);
        let bridge = ActionKind::BridgeCreate {
            name: "br-x".into(),
            mac: None,
        };
        assert_eq!(missing_package(&cfg, &bridge), None);
    }
}
