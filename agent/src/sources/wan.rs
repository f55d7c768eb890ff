//! WAN addresses: the addresses of the devices the router's default routes leave by.
//!
//! The devices come from the kernel's routing tables ([`crate::probes::routes`]); the addresses
//! from `getifaddrs(3)` (the kernel's view, whatever configured them: netifd, PPPoE, DHCP, a
//! static UCI address), so this works on OpenWrt and on any Linux host the tests run on.
//! [`select`] is the pure part; [`read`] the I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use routerstats_shared::{IpNet, WanAddress};

use crate::probes::routes::DefaultRoute;

/// The addresses of `routes`' devices among `all` (device, address), in route order, without
/// IPv6 link-local addresses (they are not reachable from outside the link) and duplicates.
pub fn select(routes: &[DefaultRoute], all: &[(String, IpNet)]) -> Vec<WanAddress> {
    let mut out: Vec<WanAddress> = Vec::new();
    for r in routes {
        for (dev, net) in all.iter().filter(|(d, _)| *d == r.device) {
            let link_local =
                matches!(net.addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80);
            let entry = WanAddress {
                device: dev.clone(),
                addr: *net,
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

/// Every address of every device (`getifaddrs(3)`).
pub fn interface_addresses() -> std::io::Result<Vec<(String, IpNet)>> {
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
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family says its real type;
        // the netmask, when set, has the same family.
        let net = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    let addr = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
                    let prefix = match ifa.ifa_netmask.is_null() {
                        true => 32,
                        false => prefix_len(
                            &(*ifa.ifa_netmask.cast::<libc::sockaddr_in>())
                                .sin_addr
                                .s_addr
                                .to_ne_bytes(),
                        ),
                    };
                    IpNet {
                        addr: IpAddr::V4(addr),
                        prefix,
                    }
                }
                libc::AF_INET6 => {
                    let a = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                    let prefix = match ifa.ifa_netmask.is_null() {
                        true => 128,
                        false => prefix_len(
                            &(*ifa.ifa_netmask.cast::<libc::sockaddr_in6>())
                                .sin6_addr
                                .s6_addr,
                        ),
                    };
                    IpNet {
                        addr: IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)),
                        prefix,
                    }
                }
                _ => continue,
            }
        };
        out.push((name, net));
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
        }
    }

    #[test]
    fn selects_the_default_route_devices_addresses() {
        let all: Vec<(String, IpNet)> = [
            ("br-lan", "192.168.1.1/24"),
            ("eth0.2", "203.0.113.7/24"),
            ("eth0.2", "fe80::1/64"),
            ("eth0.2", "2001:db8::7/64"),
            ("pppoe-wan", "198.51.100.2/32"),
        ]
        .iter()
        .map(|(d, n)| (d.to_string(), n.parse().unwrap()))
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
            all.iter()
                .any(|(d, n)| d == "lo" && n.to_string() == "127.0.0.1/8"),
            "{all:?}"
        );
    }
}
