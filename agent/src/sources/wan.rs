//! WAN addresses: the addresses of the devices the router's default routes leave by.
//!
//! The devices come from the kernel's routing tables ([`crate::probes::routes`]); the addresses
//! from `getifaddrs(3)` (the kernel's view, whatever configured them: netifd, PPPoE, DHCP, a
//! static UCI address), so this works on OpenWrt and on any Linux host the tests run on.
//! [`select`] is the pure part; [`read`] the I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use routerstats_shared::{IpNet, WanAddress};

use crate::probes::routes::DefaultRoute;

/// One address of a device, as `getifaddrs(3)` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub device: String,
    pub net: IpNet,
    /// The other end of a point-to-point link (PPPoE, some tunnels): the next hop of a default
    /// route through it that names no gateway.
    pub peer: Option<IpAddr>,
}

/// The addresses of `routes`' devices among `all`, in route order, without IPv6 link-local
/// addresses (they are not reachable from outside the link) and duplicates.
pub fn select(routes: &[DefaultRoute], all: &[IfAddr]) -> Vec<WanAddress> {
    let mut out: Vec<WanAddress> = Vec::new();
    for r in routes {
        for a in all.iter().filter(|a| a.device == r.device) {
            let link_local =
                matches!(a.net.addr, IpAddr::V6(x) if (x.segments()[0] & 0xffc0) == 0xfe80);
            let entry = WanAddress {
                device: a.device.clone(),
                addr: a.net,
            };
            if !link_local && !out.contains(&entry) {
                out.push(entry);
            }
        }
    }
    out
}

/// The prefix length of a netmask: its leading one bits (a non-contiguous mask counts up to
/// the first zero).
pub fn prefix_len(mask: &[u8]) -> u8 {
    let mut n = 0u8;
    for b in mask {
        n += b.leading_ones() as u8;
        if *b != 0xff {
            break;
        }
    }
    n
}

/// Default routes that name no gateway get the point-to-point peer of their device, where it
/// has one (`pppoe-wan`: `inet 100.64.1.2 peer 100.64.0.1`); the others stay without.
pub fn fill_peers(routes: &mut [DefaultRoute], all: &[IfAddr]) {
    for r in routes.iter_mut().filter(|r| r.gateway.is_none()) {
        r.gateway = all
            .iter()
            .filter(|a| a.device == r.device)
            .filter_map(|a| a.peer)
            .find(|p| p.is_ipv4() == r.ipv4);
    }
}

fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: a non-null sockaddr from getifaddrs; its family says which struct it is.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::from(
                (*sa.cast::<libc::sockaddr_in>())
                    .sin_addr
                    .s_addr
                    .to_ne_bytes(),
            ))),
            libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
                (*sa.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr,
            ))),
            _ => None,
        }
    }
}

fn sockaddr_prefix(sa: *const libc::sockaddr, max: u8) -> u8 {
    match sockaddr_ip(sa) {
        Some(IpAddr::V4(m)) => prefix_len(&m.octets()),
        Some(IpAddr::V6(m)) => prefix_len(&m.octets()),
        None => max,
    }
}

/// Every address of every device (`getifaddrs(3)`).
pub fn interface_addresses() -> std::io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        let Some(addr) = sockaddr_ip(ifa.ifa_addr) else {
            continue;
        };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let device = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let net = IpNet {
            addr,
            prefix: sockaddr_prefix(ifa.ifa_netmask, max),
        };
        let p2p = ifa.ifa_flags & libc::IFF_POINTOPOINT as libc::c_uint != 0;
        let peer = if p2p { sockaddr_ip(ifa.ifa_ifu) } else { None };
        out.push(IfAddr { device, net, peer });
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dev: &str) -> DefaultRoute {
        DefaultRoute {
            device: dev.into(),
            gateway: None,
            metric: 0,
            ipv4: true,
        }
    }

    fn addr(dev: &str, net: &str, peer: Option<&str>) -> IfAddr {
        IfAddr {
            device: dev.into(),
            net: net.parse().unwrap(),
            peer: peer.map(|p| p.parse().unwrap()),
        }
    }

    #[test]
    fn selects_the_default_route_devices_addresses() {
        let all: Vec<IfAddr> = [
            ("br-lan", "192.168.1.1/24"),
            ("eth0.2", "203.0.113.7/24"),
            ("eth0.2", "fe80::1/64"),
            ("eth0.2", "2001:db8::7/64"),
            ("pppoe-wan", "198.51.100.2/32"),
        ]
        .iter()
        .map(|(d, n)| addr(d, n, None))
        .collect();
        let got = select(
            &[route("eth0.2"), route("eth0.2"), route("pppoe-wan")],
            &all,
        );
        let text: Vec<String> = got
            .iter()
            .map(|w| format!("{} {}", w.device, w.addr))
            .collect();
        assert_eq!(
            text,
            [
                "eth0.2 203.0.113.7/24",
                "eth0.2 2001:db8::7/64",
                "pppoe-wan 198.51.100.2/32"
            ]
        );
        assert!(select(&[], &all).is_empty());
        assert!(select(&[route("wwan0")], &all).is_empty());
    }

    #[test]
    fn point_to_point_peers_become_gateways() {
        let all = [
            addr("pppoe-wan", "198.51.100.2/32", Some("198.51.100.1")),
            addr("wg0", "10.9.0.2/24", None),
        ];
        let mut routes = vec![
            route("pppoe-wan"),
            route("wg0"),
            DefaultRoute {
                ipv4: false,
                ..route("pppoe-wan")
            },
        ];
        fill_peers(&mut routes, &all);
        let gws: Vec<_> = routes
            .iter()
            .map(|r| r.gateway.map(|g| g.to_string()))
            .collect();
        // An IPv6 default route does not take the IPv4 peer; a device without a peer has none.
        assert_eq!(gws, [Some("198.51.100.1".to_string()), None, None]);
    }

    #[test]
    fn prefix_lengths() {
        assert_eq!(prefix_len(&[255, 255, 255, 0]), 24);
        assert_eq!(prefix_len(&[255, 255, 240, 0]), 20);
        assert_eq!(prefix_len(&[0; 4]), 0);
        assert_eq!(prefix_len(&[0xff; 16]), 128);
        assert_eq!(prefix_len(&[255, 0, 255, 0]), 8);
    }

    #[test]
    fn loopback_address_is_listed() {
        let all = interface_addresses().unwrap();
        assert!(
            all.iter().any(|a| a.device == "lo"
                && a.net.to_string() == "127.0.0.1/8"
                && a.peer.is_none()),
            "{all:?}"
        );
    }
}
