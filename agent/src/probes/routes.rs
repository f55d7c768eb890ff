//! Default routes from the kernel's routing tables (`/proc/net/route`, `/proc/net/ipv6_route`):
//! which devices lead out (the WAN devices) and through which next hop (the gateway to probe).
//! Pure parsers over the file text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::sources::{ParseError, Parsed};

/// One default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub device: String,
    /// The next hop; None for a point-to-point default route (`pppoe-wan`, a tunnel).
    pub gateway: Option<IpAddr>,
    pub metric: u32,
    /// From `/proc/net/route` (else `/proc/net/ipv6_route`).
    pub ipv4: bool,
}

const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

/// Parses `/proc/net/route`. Addresses there are the kernel's `__be32` printed as a host-order
/// integer, so the bytes in memory order (`to_ne_bytes`) are the address: `0102A8C0` is
/// 192.168.2.1 on a little-endian router and `C0A80201` the same on a big-endian one (MIPS).
pub fn parse_ipv4(text: &str) -> Result<Parsed<Vec<DefaultRoute>>, ParseError> {
    let mut out = Parsed::new(Vec::new());
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.split_whitespace().next() == Some("Iface") => {}
        Some(_) => {
            return Err(ParseError::Invalid(
                "no `Iface Destination Gateway` header".into(),
            ))
        }
        None => return Err(ParseError::Empty),
    }
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            out.skip(i + 1, format!("{} fields, expected at least 8", f.len()));
            continue;
        }
        let hex = |s: &str| u32::from_str_radix(s, 16);
        let (Ok(dest), Ok(gw), Ok(flags), Ok(metric), Ok(mask)) = (
            hex(f[1]),
            hex(f[2]),
            hex(f[3]),
            f[6].parse::<u32>(),
            hex(f[7]),
        ) else {
            out.skip(i + 1, "malformed number");
            continue;
        };
        if dest != 0 || mask != 0 || flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
            continue;
        }
        let gateway = (gw != 0).then(|| IpAddr::V4(Ipv4Addr::from(gw.to_ne_bytes())));
        insert_by_metric(
            &mut out.value,
            DefaultRoute {
                device: f[0].to_string(),
                gateway,
                metric,
                ipv4: true,
            },
        );
    }
    Ok(out)
}

/// Parses `/proc/net/ipv6_route` (`dest plen src plen nexthop metric refcnt use flags device`,
/// addresses as 32 hex digits in network order). Rejecting routes (the `lo` catch-alls) are not
/// default routes.
pub fn parse_ipv6(text: &str) -> Parsed<Vec<DefaultRoute>> {
    let mut out = Parsed::new(Vec::new());
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            out.skip(i + 1, format!("{} fields, expected 10", f.len()));
            continue;
        }
        let (Some(dest), Ok(plen), Some(hop), Ok(metric), Ok(flags)) = (
            hex128(f[0]),
            u8::from_str_radix(f[1], 16),
            hex128(f[4]),
            u32::from_str_radix(f[5], 16),
            u32::from_str_radix(f[8], 16),
        ) else {
            out.skip(i + 1, "malformed number");
            continue;
        };
        if dest != 0 || plen != 0 || flags & RTF_UP == 0 || flags & RTF_REJECT != 0 || f[9] == "lo"
        {
            continue;
        }
        let gateway = (hop != 0).then(|| IpAddr::V6(Ipv6Addr::from(hop)));
        insert_by_metric(
            &mut out.value,
            DefaultRoute {
                device: f[9].to_string(),
                gateway,
                metric,
                ipv4: false,
            },
        );
    }
    out
}

/// Keeps `routes` in metric order, equal metrics in table order (a binary search and an insert:
/// no generic sort linked into the agent for a handful of routes).
fn insert_by_metric(routes: &mut Vec<DefaultRoute>, r: DefaultRoute) {
    let at = routes.partition_point(|x| x.metric <= r.metric);
    routes.insert(at, r);
}

fn hex128(s: &str) -> Option<u128> {
    (s.len() == 32)
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/net/route`'s spelling of `a` on the machine running the test.
    fn kernel_hex(a: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(a.octets()))
    }

    #[test]
    fn ipv4_default_routes_in_metric_order() {
        let gw = kernel_hex(Ipv4Addr::new(192, 168, 2, 1));
        let text = format!(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth1\t00000000\t{gw}\t0003\t0\t0\t20\t00000000\t0\t0\t0\n\
             eth0.2\t00000000\t{gw}\t0003\t0\t0\t10\t00000000\t0\t0\t0\n\
             br-lan\t{lan}\t00000000\t0001\t0\t0\t0\t{mask}\t0\t0\t0\n\
             pppoe-wan\t00000000\t00000000\t0001\t0\t0\t30\t00000000\t0\t0\t0\n",
            lan = kernel_hex(Ipv4Addr::new(192, 168, 1, 0)),
            mask = kernel_hex(Ipv4Addr::new(255, 255, 255, 0)),
        );
        let p = parse_ipv4(&text).unwrap();
        assert_eq!(p.skipped, vec![]);
        let got: Vec<_> = p
            .value
            .iter()
            .map(|r| (r.device.as_str(), r.gateway, r.metric))
            .collect();
        let gw = Some(IpAddr::V4(Ipv4Addr::new(192, 168, 2, 1)));
        assert_eq!(
            got,
            vec![
                ("eth0.2", gw, 10),
                ("eth1", gw, 20),
                ("pppoe-wan", None, 30)
            ]
        );
    }

    #[test]
    fn ipv4_bad_input() {
        assert_eq!(parse_ipv4(""), Err(ParseError::Empty));
        assert!(parse_ipv4("garbage\n").is_err());
        let p = parse_ipv4("Iface Destination\neth0 0000 zz\neth0 XYZ 0 0 0 0 0 0\n").unwrap();
        assert!(p.value.is_empty());
        assert_eq!(p.skipped.len(), 2);
        // A header alone: no default route, not an error.
        assert!(parse_ipv4("Iface\tDestination\tGateway\n")
            .unwrap()
            .value
            .is_empty());
    }

    #[test]
    fn ipv6_default_route_with_link_local_next_hop() {
        let text = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 br-lan
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe80000000000000022233fffe445566 00000400 00000002 00000000 00000003 eth0.2
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
short line
00000000000000000000000000000000 00 00000000000000000000000000000000 00 zz000000000000000000000000000000 00000400 00000002 00000000 00000003 eth1
";
        let p = parse_ipv6(text);
        assert_eq!(p.value.len(), 1);
        assert_eq!(p.value[0].device, "eth0.2");
        assert_eq!(
            p.value[0].gateway,
            Some("fe80::222:33ff:fe44:5566".parse().unwrap())
        );
        assert_eq!(p.value[0].metric, 0x400);
        assert_eq!(p.skipped.len(), 2);
    }
}
