//! Active probes: ICMP echo to the router's default gateways and to configured targets, every
//! cycle, summarised as count, loss and min/avg/max round-trip time per target.
//!
//! - [`icmp`]: echo request/reply packets and the checksum (pure).
//! - [`routes`]: default routes from `/proc/net/route` and `/proc/net/ipv6_route` (pure).
//! - [`Tally`]: the replies of one target and their summary (pure).
//! - [`socket`]: the I/O: one ICMP socket per target (an unprivileged datagram socket where
//!   `net.ipv4.ping_group_range` allows it, a raw socket otherwise), all polled together, so a
//!   cycle's probes take at most `(count - 1) * interval + timeout` however many targets fail.
//!
//! A target that cannot be probed (no route, no permission) is a [`SourceKind::Probe`] status
//! entry, never a crash; a target that answers nothing has a result with 100% loss and an error
//! status.

pub mod icmp;
pub mod routes;
pub mod socket;

use std::net::IpAddr;
use std::time::Duration;

use routerstats_shared::{ProbeResult, ProbeRole};

/// One address to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub role: ProbeRole,
    /// The configured name, or the gateway's device.
    pub name: String,
    pub addr: IpAddr,
    /// The device a link-local IPv6 next hop is reached through (its scope).
    pub scope_device: Option<String>,
}

/// How each target is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Echo requests per target per cycle.
    pub count: u16,
    /// Time between two requests to the same target.
    pub interval: Duration,
    /// How long after the last request replies are still waited for.
    pub timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            count: 3,
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
        }
    }
}

impl ProbeOptions {
    /// The longest a cycle's probes can take.
    pub fn budget(&self) -> Duration {
        self.interval * u32::from(self.count.saturating_sub(1)) + self.timeout
    }
}

/// A configured target: `addr` or `name=addr` (`list probe_target 'dns=9.9.9.9'`).
pub fn parse_target(text: &str) -> Result<Target, String> {
    let (name, addr) = match text.split_once('=') {
        Some((n, a)) => (n.trim(), a.trim()),
        None => (text.trim(), text.trim()),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("not an IP address: {addr:?}"))?;
    if addr.is_unspecified() || addr.is_multicast() {
        return Err(format!("{addr} cannot be probed"));
    }
    if name.is_empty() {
        return Err("empty name".into());
    }
    Ok(Target {
        role: ProbeRole::Target,
        name: name.to_string(),
        addr,
        scope_device: None,
    })
}

/// The targets of one cycle: each default route's gateway (first route per family per device),
/// then the configured targets; an address is probed once.
pub fn targets(gateways: &[routes::DefaultRoute], configured: &[Target]) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for r in gateways {
        let Some(addr) = r.gateway else { continue };
        if out.iter().any(|t| t.addr == addr) {
            continue;
        }
        let link_local = matches!(addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80);
        out.push(Target {
            role: ProbeRole::Gateway,
            name: r.device.clone(),
            addr,
            scope_device: link_local.then(|| r.device.clone()),
        });
    }
    for t in configured {
        if !out.iter().any(|o| o.addr == t.addr) {
            out.push(t.clone());
        }
    }
    out
}

/// Why a reply was not counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallyError {
    #[error("reply to sequence {0}, which was not sent")]
    UnknownSeq(u16),
    #[error("duplicate reply to sequence {0}")]
    Duplicate(u16),
}

/// The requests sent to one target and the round-trip times of their replies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Per sequence number: None until its reply comes, then its RTT in microseconds.
    rtt_us: Vec<Option<u32>>,
}

impl Tally {
    /// Notes that request number `self.sent()` went out; returns its sequence number.
    pub fn sent_one(&mut self) -> u16 {
        self.rtt_us.push(None);
        (self.rtt_us.len() - 1) as u16
    }

    pub fn sent(&self) -> u32 {
        self.rtt_us.len() as u32
    }

    /// Replies counted so far.
    pub fn replies(&self) -> u32 {
        self.rtt_us.iter().flatten().count() as u32
    }

    /// Records the reply to `seq` after `rtt`. A reply to a request never sent or a duplicate
    /// is refused (and not counted).
    pub fn reply(&mut self, seq: u16, rtt: Duration) -> Result<(), TallyError> {
        let slot = self
            .rtt_us
            .get_mut(usize::from(seq))
            .ok_or(TallyError::UnknownSeq(seq))?;
        if slot.is_some() {
            return Err(TallyError::Duplicate(seq));
        }
        let us = rtt
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(rtt.subsec_micros()));
        *slot = Some(u32::try_from(us).unwrap_or(u32::MAX));
        Ok(())
    }

    /// The summary of `target`.
    pub fn result(&self, target: &Target) -> ProbeResult {
        let got: Vec<u32> = self.rtt_us.iter().flatten().copied().collect();
        let avg = (!got.is_empty())
            .then(|| (got.iter().map(|&v| u64::from(v)).sum::<u64>() / got.len() as u64) as u32);
        ProbeResult {
            role: target.role,
            target: target.addr,
            name: target.name.clone(),
            sent: self.sent(),
            received: got.len() as u32,
            rtt_min_us: got.iter().min().copied(),
            rtt_avg_us: avg,
            rtt_max_us: got.iter().max().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routes::DefaultRoute;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn tally_summarises_loss_and_rtts() {
        let t = parse_target("dns=192.0.2.53").unwrap();
        let mut tally = Tally::default();
        for _ in 0..4 {
            tally.sent_one();
        }
        tally.reply(0, ms(10)).unwrap();
        tally.reply(2, ms(30)).unwrap();
        tally.reply(3, ms(20)).unwrap();
        assert_eq!(tally.reply(3, ms(1)), Err(TallyError::Duplicate(3)));
        assert_eq!(tally.reply(9, ms(1)), Err(TallyError::UnknownSeq(9)));
        let r = tally.result(&t);
        assert_eq!((r.sent, r.received), (4, 3));
        assert_eq!(
            (r.rtt_min_us, r.rtt_avg_us, r.rtt_max_us),
            (Some(10_000), Some(20_000), Some(30_000))
        );
        assert_eq!(r.loss_percent(), Some(25.0));
        assert_eq!((r.name.as_str(), r.role), ("dns", ProbeRole::Target));
    }

    #[test]
    fn no_reply_is_full_loss_without_rtts() {
        let t = parse_target("192.0.2.1").unwrap();
        let mut tally = Tally::default();
        tally.sent_one();
        tally.sent_one();
        let r = tally.result(&t);
        assert_eq!((r.sent, r.received, r.rtt_avg_us), (2, 0, None));
        assert_eq!(r.loss_percent(), Some(100.0));
        assert_eq!(Tally::default().result(&t).loss_percent(), None);
    }

    #[test]
    fn targets_parse_or_say_why_not() {
        assert_eq!(parse_target("2001:db8::1").unwrap().name, "2001:db8::1");
        assert_eq!(parse_target(" isp = 192.0.2.9 ").unwrap().name, "isp");
        for bad in [
            "",
            "example.com",
            "x=",
            "=192.0.2.1",
            "0.0.0.0",
            "224.0.0.1",
            "192.0.2.1/24",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateways_come_first_and_addresses_are_probed_once() {
        let gw4: IpAddr = "192.168.2.1".parse().unwrap();
        let gw6: IpAddr = "fe80::1".parse().unwrap();
        let routes = vec![
            DefaultRoute {
                device: "wan".into(),
                gateway: Some(gw4),
                metric: 0,
                ipv4: true,
            },
            DefaultRoute {
                device: "wwan".into(),
                gateway: Some(gw4),
                metric: 5,
                ipv4: true,
            },
            DefaultRoute {
                device: "pppoe-wan".into(),
                gateway: None,
                metric: 9,
                ipv4: true,
            },
            DefaultRoute {
                device: "wan".into(),
                gateway: Some(gw6),
                metric: 0,
                ipv4: false,
            },
        ];
        let configured = vec![
            parse_target("192.168.2.1").unwrap(),
            parse_target("dns=192.0.2.53").unwrap(),
        ];
        let t = targets(&routes, &configured);
        let got: Vec<_> = t
            .iter()
            .map(|t| (t.role, t.name.as_str(), t.scope_device.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (ProbeRole::Gateway, "wan", None),
                (ProbeRole::Gateway, "wan", Some("wan")),
                (ProbeRole::Target, "dns", None)
            ]
        );
    }

    #[test]
    fn budget_bounds_the_cycle() {
        let o = ProbeOptions {
            count: 5,
            interval: ms(100),
            timeout: ms(700),
        };
        assert_eq!(o.budget(), ms(1100));
        assert_eq!(ProbeOptions { count: 0, ..o }.budget(), ms(700));
    }
}
