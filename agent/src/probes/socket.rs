//! The I/O of the probes: one connected ICMP socket per target, nonblocking, all polled together.
//!
//! An unprivileged ICMP datagram socket (`SOCK_DGRAM`, `IPPROTO_ICMP`/`IPPROTO_ICMPV6`) is tried
//! first: Linux allows it to groups in `net.ipv4.ping_group_range` and fills in the echo
//! identifier itself, handing the socket only replies to its own requests. Where it is refused,
//! a raw socket is used (root or `CAP_NET_RAW`, as the agent runs on OpenWrt); a raw socket sees
//! every echo reply for the connected peer, so replies are matched by identifier and payload.
//! `connect` pins each socket to its target, so the kernel reports a missing route up front.

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use routerstats_shared::ProbeResult;

use super::icmp::{self, Family};
use super::{ProbeOptions, Tally, Target};

/// Why a target could not be probed at all.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no permission to open an ICMP socket (not in net.ipv4.ping_group_range and no CAP_NET_RAW): {0}")]
    NoPermission(io::Error),
    #[error("cannot open an ICMP socket: {0}")]
    Socket(io::Error),
    #[error("no route to {0}")]
    NoRoute(IpAddr),
    #[error("device {0} of the link-local address {1} does not exist")]
    NoDevice(String, IpAddr),
    #[error("cannot connect an ICMP socket to {addr}: {err}")]
    Connect { addr: IpAddr, err: io::Error },
}

/// What probing one target gave: a result, or why there is none. `note` keeps the last
/// send or receive error of a target that was probed (`Host unreachable`, ...).
#[derive(Debug)]
pub struct Outcome {
    pub target: Target,
    pub result: Result<ProbeResult, ProbeError>,
    pub note: Option<String>,
}

struct Probe {
    fd: OwnedFd,
    family: Family,
    raw: bool,
    id: u16,
    tally: Tally,
    sent_at: Vec<Instant>,
    note: Option<String>,
}

/// Echo identifiers of raw sockets: distinct per target and per cycle.
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// Probes every target at once and returns one outcome per target, in order. Takes at most
/// [`ProbeOptions::budget`] (less when every reply is in early).
pub fn probe(targets: &[Target], opts: ProbeOptions) -> Vec<Outcome> {
    let base = (std::process::id() as u16).wrapping_mul(31);
    let mut slots: Vec<Result<Probe, ProbeError>> = targets
        .iter()
        .map(|t| {
            open(
                t,
                base.wrapping_add(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            )
        })
        .collect();
    run(&mut slots, opts);
    targets
        .iter()
        .zip(slots)
        .map(|(t, slot)| match slot {
            Ok(p) => Outcome {
                target: t.clone(),
                result: Ok(p.tally.result(t)),
                note: p.note,
            },
            Err(e) => Outcome {
                target: t.clone(),
                result: Err(e),
                note: None,
            },
        })
        .collect()
}

fn run(slots: &mut [Result<Probe, ProbeError>], opts: ProbeOptions) {
    let count = opts.count.max(1);
    let start = Instant::now();
    let mut rounds = 0u16;
    let mut last_round = start;
    let mut buf = [0u8; 1500];
    loop {
        let now = Instant::now();
        while rounds < count && now >= start + opts.interval * u32::from(rounds) {
            for p in slots.iter_mut().flatten() {
                send_one(p);
            }
            rounds += 1;
            last_round = Instant::now();
        }
        let all_in = slots.iter().flatten().all(|p| p.tally.result_complete());
        let deadline = if rounds < count {
            start + opts.interval * u32::from(rounds)
        } else {
            last_round + opts.timeout
        };
        let now = Instant::now();
        if rounds == count && (all_in || now >= deadline) {
            return;
        }
        let mut fds: Vec<libc::pollfd> = slots
            .iter()
            .flatten()
            .map(|p| libc::pollfd {
                fd: p.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if fds.is_empty() {
            // Nothing could be opened: nothing to wait for.
            return;
        }
        let wait = deadline.saturating_duration_since(now);
        // Whole milliseconds, rounded up, in u64 arithmetic (u128 division is a libcall on MIPS).
        let ms = wait
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(wait.subsec_nanos().div_ceil(1_000_000)));
        let ms = ms.clamp(1, i32::MAX as u64) as libc::c_int;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n <= 0 {
            continue; // timeout or EINTR: the loop re-checks the clock
        }
        for (p, pfd) in slots.iter_mut().flatten().zip(&fds) {
            if pfd.revents != 0 {
                receive_all(p, &mut buf);
            }
        }
    }
}

impl Tally {
    /// Whether every request sent so far has its reply.
    fn result_complete(&self) -> bool {
        let r = self.sent();
        r > 0 && self.replies() == r
    }
}

fn send_one(p: &mut Probe) {
    let seq = p.tally.sent_one();
    let pkt = icmp::echo_request(p.family, p.id, seq);
    p.sent_at.push(Instant::now());
    // SAFETY: `pkt` is a live buffer of `pkt.len()` bytes; the fd is open for `p`'s lifetime.
    let n = unsafe {
        libc::send(
            p.fd.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        // Counted as sent and lost: an unreachable target is loss, not a smaller sample.
        p.note = Some(io::Error::last_os_error().to_string());
    }
}

fn receive_all(p: &mut Probe, buf: &mut [u8]) {
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let n = unsafe {
            libc::recv(
                p.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let now = Instant::now();
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => return,
                // An ICMP error for this socket (host unreachable...): keep it, keep waiting.
                _ => {
                    p.note = Some(err.to_string());
                    return;
                }
            }
        }
        let Ok(reply) = icmp::parse_reply(p.family, &buf[..n as usize], p.raw) else {
            continue;
        };
        if !is_ours(p.raw, p.id, reply) {
            continue;
        }
        if let Some(sent) = p.sent_at.get(usize::from(reply.seq)) {
            let _ = p
                .tally
                .reply(reply.seq, now.saturating_duration_since(*sent));
        }
    }
}

/// Whether a parsed echo reply answers this socket's requests: a raw socket sees every echo
/// reply from its peer, so the identifier must be ours; a datagram socket gets only its own
/// replies, with the identifier the kernel chose (not ours).
fn is_ours(raw: bool, our_id: u16, reply: icmp::EchoReply) -> bool {
    !raw || reply.id == our_id
}

fn open(t: &Target, id: u16) -> Result<Probe, ProbeError> {
    let family = if t.addr.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let scope = match &t.scope_device {
        Some(dev) => {
            let c = CString::new(dev.as_str())
                .map_err(|_| ProbeError::NoDevice(dev.clone(), t.addr))?;
            // SAFETY: `c` is a valid NUL-terminated string.
            match unsafe { libc::if_nametoindex(c.as_ptr()) } {
                0 => return Err(ProbeError::NoDevice(dev.clone(), t.addr)),
                i => i,
            }
        }
        None => 0,
    };
    let (fd, raw) = socket(family)?;
    let (addr, len) = sockaddr(t.addr, scope);
    // SAFETY: `addr` is a valid sockaddr of `len` bytes for the family of `fd`.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => ProbeError::NoRoute(t.addr),
            _ => ProbeError::Connect { addr: t.addr, err },
        });
    }
    Ok(Probe {
        fd,
        family,
        raw,
        id,
        tally: Tally::default(),
        sent_at: Vec::new(),
        note: None,
    })
}

/// An ICMP datagram socket where allowed, else a raw one; `true` when raw.
fn socket(family: Family) -> Result<(OwnedFd, bool), ProbeError> {
    let (domain, proto) = match family {
        Family::V4 => (libc::AF_INET, libc::IPPROTO_ICMP),
        Family::V6 => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
    };
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    let open = |ty: libc::c_int| {
        // SAFETY: plain socket(2) call; a non-negative result is a new fd we own.
        let fd = unsafe { libc::socket(domain, ty | flags, proto) };
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    };
    if let Some(fd) = open(libc::SOCK_DGRAM) {
        return Ok((fd, false));
    }
    match open(libc::SOCK_RAW) {
        Some(fd) => Ok((fd, true)),
        None => {
            let err = io::Error::last_os_error();
            Err(match err.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => ProbeError::NoPermission(err),
                _ => ProbeError::Socket(err),
            })
        }
    }
}

fn sockaddr(addr: IpAddr, scope: u32) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.octets(),
            };
            sin6.sin6_scope_id = scope;
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerstats_shared::ProbeRole;
    use std::time::Duration;

    fn target(addr: &str) -> Target {
        Target {
            role: ProbeRole::Target,
            name: addr.into(),
            addr: addr.parse().unwrap(),
            scope_device: None,
        }
    }

    fn quick() -> ProbeOptions {
        ProbeOptions {
            count: 3,
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(300),
        }
    }

    /// Loopback answers every echo (the test runs as root, or where ping_group_range allows).
    #[test]
    fn loopback_answers_every_request() {
        let out = probe(&[target("127.0.0.1"), target("::1")], quick());
        for o in &out {
            match &o.result {
                Ok(r) => {
                    assert_eq!((r.sent, r.received), (3, 3), "{:?}", o.target);
                    assert!(r.rtt_min_us <= r.rtt_avg_us && r.rtt_avg_us <= r.rtt_max_us);
                    assert!(r.rtt_max_us.unwrap() < 300_000);
                }
                // Without CAP_NET_RAW and outside ping_group_range the outcome must say so.
                Err(e) => assert!(matches!(e, ProbeError::NoPermission(_)), "{e}"),
            }
        }
    }

    #[test]
    fn raw_sockets_take_only_replies_with_their_identifier() {
        let reply = icmp::EchoReply { id: 7, seq: 0 };
        assert!(is_ours(true, 7, reply));
        assert!(
            !is_ours(true, 8, reply),
            "another process's ping on a raw socket"
        );
        assert!(
            is_ours(false, 8, reply),
            "datagram sockets: the kernel's identifier"
        );
    }

    #[test]
    fn unusable_targets_are_errors_and_do_not_stall_the_others() {
        let mut lo = target("127.0.0.1");
        lo.name = "lo".into();
        let mut bad_scope = target("fe80::1");
        bad_scope.scope_device = Some("no-such-dev0".into());
        let started = Instant::now();
        let out = probe(&[bad_scope, lo], quick());
        assert!(started.elapsed() < quick().budget() + Duration::from_millis(500));
        assert!(
            matches!(out[0].result, Err(ProbeError::NoDevice(..))),
            "{:?}",
            out[0].result
        );
        if let Ok(r) = &out[1].result {
            assert_eq!(r.received, 3);
        }
    }
}
