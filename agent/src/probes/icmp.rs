//! ICMP echo packets: building requests, parsing replies, the Internet checksum. Pure: no I/O.
//!
//! Requests carry [`MAGIC`] and the sequence number in their payload, so a reply is matched to
//! this agent's request even on a raw socket, which sees every ICMP packet the host receives.

/// Which IP version a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Length of the ICMP echo header (type, code, checksum, identifier, sequence).
pub const HEADER_LEN: usize = 8;
/// The first payload bytes of every request this agent sends.
pub const MAGIC: &[u8; 8] = b"rtrstats";

/// A reply that is not an answer to one of this agent's echo requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("truncated packet: {0} bytes")]
    Truncated(usize),
    #[error("not an IPv4 ICMP packet (version {version}, protocol {protocol})")]
    NotIcmpV4 { version: u8, protocol: u8 },
    #[error("bad IPv4 header length {0}")]
    BadIpHeader(usize),
    #[error("not an echo reply (type {ty}, code {code})")]
    NotEchoReply { ty: u8, code: u8 },
    #[error("bad ICMP checksum")]
    BadChecksum,
    #[error("echo reply without this agent's payload")]
    ForeignPayload,
}

/// The identifying fields of an echo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    pub id: u16,
    pub seq: u16,
}

/// The Internet checksum (RFC 1071) of `data`: the ones' complement of the ones' complement sum
/// of its 16-bit big-endian words, an odd last byte padded with zero.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: header, then [`MAGIC`] and `seq` again (big endian) as payload. The
/// checksum is filled in for IPv4; for ICMPv6 the kernel computes it (it covers a pseudo-header
/// with addresses only the kernel knows for sure).
pub fn echo_request(family: Family, id: u16, seq: u16) -> Vec<u8> {
    let ty = match family {
        Family::V4 => ECHO_REQUEST_V4,
        Family::V6 => ECHO_REQUEST_V6,
    };
    let mut p = Vec::with_capacity(HEADER_LEN + MAGIC.len() + 2);
    p.extend_from_slice(&[ty, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&seq.to_be_bytes());
    if family == Family::V4 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Parses a received packet as an echo reply to one of this agent's requests.
///
/// `with_ip_header`: raw IPv4 sockets deliver the IP header in front of the ICMP message;
/// ICMP datagram sockets and ICMPv6 sockets do not. The IPv4 checksum is verified; an ICMPv6
/// checksum was verified by the kernel.
pub fn parse_reply(
    family: Family,
    buf: &[u8],
    with_ip_header: bool,
) -> Result<EchoReply, ReplyError> {
    let icmp = if with_ip_header && family == Family::V4 {
        let first = *buf.first().ok_or(ReplyError::Truncated(0))?;
        let (version, ihl) = (first >> 4, usize::from(first & 0x0f) * 4);
        if buf.len() < 20 {
            return Err(ReplyError::Truncated(buf.len()));
        }
        if version != 4 || buf[9] != 1 {
            return Err(ReplyError::NotIcmpV4 {
                version,
                protocol: buf[9],
            });
        }
        if ihl < 20 || ihl > buf.len() {
            return Err(ReplyError::BadIpHeader(ihl));
        }
        &buf[ihl..]
    } else {
        buf
    };
    if icmp.len() < HEADER_LEN {
        return Err(ReplyError::Truncated(icmp.len()));
    }
    let (ty, code) = (icmp[0], icmp[1]);
    let reply = match family {
        Family::V4 => ECHO_REPLY_V4,
        Family::V6 => ECHO_REPLY_V6,
    };
    if ty != reply || code != 0 {
        return Err(ReplyError::NotEchoReply { ty, code });
    }
    if family == Family::V4 && checksum(icmp) != 0 {
        return Err(ReplyError::BadChecksum);
    }
    let id = u16::from_be_bytes([icmp[4], icmp[5]]);
    let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    let payload = &icmp[HEADER_LEN..];
    if payload.len() < MAGIC.len() + 2
        || &payload[..MAGIC.len()] != MAGIC
        || payload[MAGIC.len()..MAGIC.len() + 2] != seq.to_be_bytes()
    {
        return Err(ReplyError::ForeignPayload);
    }
    Ok(EchoReply { id, seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply a host sends back to `request`: type changed, checksum recomputed (IPv4).
    fn reply_to(family: Family, request: &[u8]) -> Vec<u8> {
        let mut r = request.to_vec();
        r[0] = match family {
            Family::V4 => ECHO_REPLY_V4,
            Family::V6 => ECHO_REPLY_V6,
        };
        r[2] = 0;
        r[3] = 0;
        if family == Family::V4 {
            let c = checksum(&r);
            r[2..4].copy_from_slice(&c.to_be_bytes());
        }
        r
    }

    fn ipv4_header(payload_len: usize) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
        h
    }

    #[test]
    fn checksum_matches_rfc_1071_examples() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // An odd length pads with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[]), 0xffff);
        // A packet with its checksum in place sums to zero.
        let req = echo_request(Family::V4, 0x1234, 7);
        assert_eq!(checksum(&req), 0);
    }

    #[test]
    fn request_layout() {
        let req = echo_request(Family::V4, 0xbeef, 0x0102);
        assert_eq!(&req[..2], &[8, 0]);
        assert_eq!(&req[4..8], &[0xbe, 0xef, 0x01, 0x02]);
        assert_eq!(&req[8..16], MAGIC);
        let v6 = echo_request(Family::V6, 1, 2);
        assert_eq!((v6[0], v6[2], v6[3]), (128, 0, 0));
    }

    #[test]
    fn replies_parse_with_and_without_ip_header() {
        let rep = reply_to(Family::V4, &echo_request(Family::V4, 42, 3));
        assert_eq!(
            parse_reply(Family::V4, &rep, false),
            Ok(EchoReply { id: 42, seq: 3 })
        );
        let mut raw = ipv4_header(rep.len());
        raw.extend_from_slice(&rep);
        assert_eq!(
            parse_reply(Family::V4, &raw, true),
            Ok(EchoReply { id: 42, seq: 3 })
        );
        let rep6 = reply_to(Family::V6, &echo_request(Family::V6, 9, 65535));
        assert_eq!(
            parse_reply(Family::V6, &rep6, false),
            Ok(EchoReply { id: 9, seq: 65535 })
        );
    }

    #[test]
    fn bad_replies_are_typed_errors() {
        let req = echo_request(Family::V4, 42, 3);
        let rep = reply_to(Family::V4, &req);
        // Every truncation is an error, never a panic.
        for n in 0..rep.len() {
            assert!(parse_reply(Family::V4, &rep[..n], false).is_err(), "{n}");
            assert!(parse_reply(Family::V4, &rep[..n], true).is_err(), "{n}");
        }
        assert_eq!(
            parse_reply(Family::V4, &rep[..5], false),
            Err(ReplyError::Truncated(5))
        );
        // Our own request (a raw socket sees it on loopback) is not a reply.
        assert_eq!(
            parse_reply(Family::V4, &req, false),
            Err(ReplyError::NotEchoReply { ty: 8, code: 0 })
        );
        // A flipped bit fails the checksum.
        let mut bad = rep.clone();
        bad[9] ^= 1;
        assert_eq!(
            parse_reply(Family::V4, &bad, false),
            Err(ReplyError::BadChecksum)
        );
        // Someone else's ping: right type, other payload.
        let mut foreign = rep.clone();
        foreign[8..16].copy_from_slice(b"abcdefgh");
        let foreign = reply_to(Family::V4, &foreign);
        assert_eq!(
            parse_reply(Family::V4, &foreign, false),
            Err(ReplyError::ForeignPayload)
        );
        // The sequence in the payload must match the header's.
        let mut swapped = rep.clone();
        swapped[7] = 4;
        let swapped = reply_to(Family::V4, &swapped);
        assert_eq!(
            parse_reply(Family::V4, &swapped, false),
            Err(ReplyError::ForeignPayload)
        );
        // IP header problems.
        let mut raw = ipv4_header(rep.len());
        raw[0] = 0x4f; // IHL 60 > packet
        raw.extend_from_slice(&rep);
        assert_eq!(
            parse_reply(Family::V4, &raw[..30], true),
            Err(ReplyError::BadIpHeader(60))
        );
        let mut udp = ipv4_header(rep.len());
        udp[9] = 17;
        udp.extend_from_slice(&rep);
        assert!(matches!(
            parse_reply(Family::V4, &udp, true),
            Err(ReplyError::NotIcmpV4 { protocol: 17, .. })
        ));
        assert!(matches!(
            parse_reply(Family::V4, &[0x60; 40], true),
            Err(ReplyError::NotIcmpV4 { version: 6, .. })
        ));
        // Destination unreachable (type 3) is not a reply; an IPv4 reply read as ICMPv6 is not either.
        let mut unreach = rep.clone();
        unreach[0] = 3;
        assert!(matches!(
            parse_reply(Family::V4, &unreach, false),
            Err(ReplyError::NotEchoReply { ty: 3, .. })
        ));
        assert!(matches!(
            parse_reply(Family::V6, &rep, false),
            Err(ReplyError::NotEchoReply { ty: 0, .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..200usize {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for fam in [Family::V4, Family::V6] {
                // Random bytes never carry the magic payload: always an error, never a panic.
                assert!(parse_reply(fam, &buf, true).is_err());
                assert!(parse_reply(fam, &buf, false).is_err());
            }
        }
    }
}
