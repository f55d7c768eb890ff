//! WireGuard actions: add and delete peers through UCI (`wireguard_<iface>` sections of
//! `/etc/config/network`, as LuCI writes them), apply them to the running interface with `wg set`,
//! and restart an interface with `ifup`.
//!
//! The network file is read with the agent's own UCI parser; every change goes through the `uci`
//! CLI (`set`, `add_list`, `delete`, `commit`), so OpenWrt's own code writes the file. A failed
//! `uci` step reverts the uncommitted changes. A peer added by the collector gets a named section
//! (`rs_<name>`, see [`routerstats_shared::action::peer_section`]) with `description` = its name.

use std::net::Ipv4Addr;

use routerstats_shared::action::{peer_section, ActionDetail};

use super::{tools, uci_cli, ActionConfig};
use crate::uci::Section;

type Outcome = Result<(String, Option<ActionDetail>), String>;

/// Runs a sequence of `uci` commands, then `uci commit network`; reverts on a failure.
fn uci_change(cfg: &ActionConfig, steps: &[Vec<String>]) -> Result<String, String> {
    uci_cli::change(cfg, &["network"], steps)
}

fn read_network(cfg: &ActionConfig) -> Result<Vec<Section>, String> {
    uci_cli::read(cfg, "network")
}

/// The peer sections of `iface` with the `uci` reference of each (`network.<name>` or
/// `network.@wireguard_<iface>[i]` for anonymous ones).
fn peers<'a>(sections: &'a [Section], iface: &str) -> Vec<(String, &'a Section)> {
    let ty = format!("wireguard_{iface}");
    sections
        .iter()
        .filter(|s| s.kind == ty)
        .enumerate()
        .map(|(i, s)| {
            let r = match &s.name {
                Some(n) => format!("network.{n}"),
                None => format!("network.@{ty}[{i}]"),
            };
            (r, s)
        })
        .collect()
}

fn is_named(s: &Section, name: &str) -> bool {
    s.option("description") == Some(name) || s.name.as_deref() == Some(peer_section(name).as_str())
}

/// Parses `a.b.c.d/len` (or a bare address as /32).
fn parse_v4(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = match cidr.split_once('/') {
        Some((ip, len)) => (ip, len.parse().ok()?),
        None => (cidr, 32),
    };
    (len <= 32).then_some(())?;
    Some((ip.trim().parse().ok()?, len))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

/// The lowest free host address of the interface's first IPv4 subnet: not the network or
/// broadcast address, not an interface address, and not inside any peer's allowed IPs.
pub fn next_free(iface_addrs: &[String], used: &[String]) -> Result<Ipv4Addr, String> {
    let (addr, len) = iface_addrs
        .iter()
        .find_map(|a| parse_v4(a))
        .ok_or("the interface has no IPv4 address in UCI (`list addresses`)")?;
    if len > 30 {
        return Err(format!("the interface subnet /{len} has no room for peers"));
    }
    let net = u32::from(addr) & mask(len);
    let bcast = net | !mask(len);
    // Peers' allowed IPs block their whole prefix; the interface's own addresses one host each.
    let taken: Vec<(u32, u32)> = used
        .iter()
        .filter_map(|a| parse_v4(a))
        .map(|(ip, l)| (u32::from(ip) & mask(l), mask(l)))
        .chain(
            iface_addrs
                .iter()
                .filter_map(|a| parse_v4(a))
                .map(|(ip, _)| (u32::from(ip), u32::MAX)),
        )
        .collect();
    (net + 1..bcast)
        .find(|h| !taken.iter().any(|(n, m)| h & m == *n))
        .map(Ipv4Addr::from)
        .ok_or_else(|| format!("no free address left in {}/{len}", Ipv4Addr::from(net)))
}

fn wg_show(cfg: &ActionConfig, iface: &str, what: &str) -> Option<String> {
    tools::run(&cfg.wg, &["show", iface, what])
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Adds a peer (see the module doc).
pub fn add_peer(cfg: &ActionConfig, iface: &str, name: &str, public_key: &str) -> Outcome {
    let sections = read_network(cfg)?;
    let iface_sec = sections
        .iter()
        .find(|s| s.kind == "interface" && s.name.as_deref() == Some(iface) && s.option("proto") == Some("wireguard"))
        .ok_or_else(|| format!("no WireGuard interface '{iface}' in UCI network (config interface '{iface}' with proto 'wireguard')"))?;
    let mut addrs: Vec<String> = iface_sec
        .list("addresses")
        .into_iter()
        .flat_map(|v| v.split_whitespace())
        .map(String::from)
        .collect();
    addrs.retain(|a| !a.is_empty());
    let existing = peers(&sections, iface);
    if existing.iter().any(|(_, s)| is_named(s, name)) {
        return Err(format!("a peer named '{name}' already exists on {iface}"));
    }
    if existing
        .iter()
        .any(|(_, s)| s.option("public_key") == Some(public_key))
    {
        return Err(format!("this public key is already a peer of {iface}"));
    }
    let used: Vec<String> = existing
        .iter()
        .flat_map(|(_, s)| {
            s.list("allowed_ips")
                .into_iter()
                .flat_map(|v| v.split_whitespace())
                .map(String::from)
        })
        .collect();
    let ip = next_free(&addrs, &used)?;
    let address = format!("{ip}/32");
    let sec = format!("network.{}", peer_section(name));
    let steps = vec![
        vec!["set".into(), format!("{sec}=wireguard_{iface}")],
        vec!["set".into(), format!("{sec}.description={name}")],
        vec!["set".into(), format!("{sec}.public_key={public_key}")],
        vec!["add_list".into(), format!("{sec}.allowed_ips={address}")],
    ];
    let mut out = uci_change(cfg, &steps)?;
    match tools::run(
        &cfg.wg,
        &["set", iface, "peer", public_key, "allowed-ips", &address],
    ) {
        Ok(_) => out.push_str(&format!(
            "wg set {iface} peer {public_key} allowed-ips {address}\n"
        )),
        Err(e) => out.push_str(&format!(
            "stored in UCI; not applied to the running interface ({e}); a reload applies it\n"
        )),
    }
    let detail = ActionDetail::WgPeer {
        interface: iface.to_string(),
        address,
        router_public_key: wg_show(cfg, iface, "public-key"),
        listen_port: wg_show(cfg, iface, "listen-port")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p != 0),
        interface_addresses: addrs,
    };
    Ok((out, Some(detail)))
}

/// Deletes the peer named `name` (description or `rs_` section name).
pub fn delete_peer(cfg: &ActionConfig, iface: &str, name: &str) -> Outcome {
    let sections = read_network(cfg)?;
    let existing = peers(&sections, iface);
    let (reference, sec) = existing
        .iter()
        .find(|(_, s)| is_named(s, name))
        .ok_or_else(|| format!("no peer named '{name}' on {iface}"))?;
    let key = sec.option("public_key").map(String::from);
    let mut out = uci_change(cfg, &[vec!["delete".into(), reference.clone()]])?;
    if let Some(key) = key.filter(|k| routerstats_shared::action::check_wg_key(k).is_ok()) {
        match tools::run(&cfg.wg, &["set", iface, "peer", &key, "remove"]) {
            Ok(_) => out.push_str(&format!("wg set {iface} peer {key} remove\n")),
            Err(e) => out.push_str(&format!(
                "removed from UCI; not from the running interface ({e})\n"
            )),
        }
    }
    Ok((out, None))
}

/// Restarts the interface (`ifup <iface>`, OpenWrt's way to re-apply its UCI config).
pub fn reload(cfg: &ActionConfig, iface: &str) -> Outcome {
    let out = tools::run(&cfg.ifup, &[iface])?;
    Ok((format!("{} {iface}\n{out}", cfg.ifup), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn next_free_skips_used_and_special_addresses() {
        assert_eq!(
            next_free(&s(&["10.0.3.1/24"]), &[]).unwrap(),
            Ipv4Addr::new(10, 0, 3, 2)
        );
        assert_eq!(
            next_free(&s(&["10.0.3.1/24"]), &s(&["10.0.3.2/32", "10.0.3.3"])).unwrap(),
            Ipv4Addr::new(10, 0, 3, 4)
        );
        // A peer routing a whole /30 blocks all of it.
        assert_eq!(
            next_free(&s(&["10.0.3.1/24"]), &s(&["10.0.3.0/29"])).unwrap(),
            Ipv4Addr::new(10, 0, 3, 8)
        );
        // The interface address need not be the first one.
        assert_eq!(
            next_free(&s(&["10.0.3.2/29"]), &[]).unwrap(),
            Ipv4Addr::new(10, 0, 3, 1)
        );
        // IPv6 addresses are skipped for the IPv4 subnet; garbage is ignored.
        assert_eq!(
            next_free(&s(&["fd00::1/64", "192.168.9.1/30"]), &s(&["junk"])).unwrap(),
            Ipv4Addr::new(192, 168, 9, 2)
        );
        assert!(next_free(&s(&["192.168.9.1/30"]), &s(&["192.168.9.2/32"]))
            .unwrap_err()
            .contains("no free address"));
        assert!(next_free(&s(&["fd00::1/64"]), &[]).is_err());
        assert!(next_free(&s(&["10.0.0.1/32"]), &[]).is_err());
    }

    #[test]
    fn peers_get_uci_references() {
        let text = "config interface 'wg0'\n\toption proto 'wireguard'\n\nconfig wireguard_wg0\n\toption description 'phone'\n\nconfig wireguard_wg0 'rs_laptop_alice'\n\toption description 'laptop-alice'\n\nconfig wireguard_wg1\n";
        let secs = crate::uci::parse(text).unwrap().value;
        let p = peers(&secs, "wg0");
        assert_eq!(
            p.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
            vec!["network.@wireguard_wg0[0]", "network.rs_laptop_alice"]
        );
        assert!(is_named(p[0].1, "phone"));
        assert!(is_named(p[1].1, "laptop-alice"));
    }
}
