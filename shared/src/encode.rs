//! The payloads an agent sends (`Hello`, `Report`, `EnrollRequest`, `RenewRequest`,
//! `ActionResult`), encoded by hand with [`codec::Writer`] in exactly the bytes
//! [`codec::encode`] (bincode 2.0.1 through serde) writes for them.
//!
//! Why: serde's derived `Serialize` instantiated for bincode's encoder was ~30 KB of code in the
//! agent's `mips_24kc` binary, where the agent must stay under 1.5 MiB (packaging/README.md,
//! "Size"); [`Message::to_request_frame`](crate::Message::to_request_frame) uses this instead.
//! The serde derives stay the definition of the wire format (the collector decodes with them);
//! the tests encode thousands of random values of every message both ways and compare the bytes.
//!
//! Each struct's encoder destructures the struct without `..`, so a field added to the model
//! without being added here is a compile error; its place in the order is checked by the tests.

use std::net::{IpAddr, SocketAddr};

use crate::action::{ActionDetail, ActionResult, ActionState, OvpnServerDetail};
use crate::codec::Writer;
use crate::message::{EnrollRequest, Hello, RenewRequest};
use crate::model::*;

/// A value with a hand-written bincode encoding, byte-identical to its serde one.
pub trait Encode {
    fn encode(&self, w: &mut Writer);
}

/// `value` encoded: the bytes of `codec::encode(value)` (which cannot fail for these types).
pub fn to_payload<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut w = Writer::new();
    value.encode(&mut w);
    w.into_bytes()
}

/// A primitive: the `Writer` method that writes it (`u16`/`u32` widened to the u64 varint,
/// which is the same bytes).
macro_rules! primitives {
    ($($ty:ty => |$w:ident, $v:ident| $body:expr;)*) => {$(
        impl Encode for $ty {
            fn encode(&self, $w: &mut Writer) {
                let $v = *self;
                $body
            }
        }
    )*};
}

primitives! {
    u8 => |w, v| w.u8(v);
    bool => |w, v| w.bool(v);
    u16 => |w, v| w.u64(u64::from(v));
    u32 => |w, v| w.u64(u64::from(v));
    u64 => |w, v| w.u64(v);
    i32 => |w, v| w.i32(v);
    i64 => |w, v| w.i64(v);
    f32 => |w, v| w.f32(v);
}

impl Encode for String {
    fn encode(&self, w: &mut Writer) {
        w.str(self);
    }
}

/// `0`, or `1` and the value.
impl<T: Encode> Encode for Option<T> {
    fn encode(&self, w: &mut Writer) {
        match self {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.encode(w);
            }
        }
    }
}

/// The length as a varint, then the items.
impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.len() as u64);
        for v in self {
            v.encode(w);
        }
    }
}

/// A fixed-size array is a tuple: the items, no length.
impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, w: &mut Writer) {
        for v in self {
            v.encode(w);
        }
    }
}

impl<T: Encode + ?Sized> Encode for Box<T> {
    fn encode(&self, w: &mut Writer) {
        (**self).encode(w);
    }
}

/// serde's compact form: variant `V4` (0) or `V6` (1), then the 4 or 16 octets.
impl Encode for IpAddr {
    fn encode(&self, w: &mut Writer) {
        match self {
            IpAddr::V4(a) => {
                w.u64(0);
                w.raw(&a.octets());
            }
            IpAddr::V6(a) => {
                w.u64(1);
                w.raw(&a.octets());
            }
        }
    }
}

/// serde's compact form: variant `V4` (0) or `V6` (1), the octets, the port (an IPv6 address's
/// flow info and scope id are not encoded).
impl Encode for SocketAddr {
    fn encode(&self, w: &mut Writer) {
        IpAddr::encode(&self.ip(), w);
        w.u64(u64::from(self.port()));
    }
}

/// The 6 bytes (the model's compact form).
impl Encode for MacAddr {
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.0);
    }
}

/// The address, then the prefix length (the model's compact form).
impl Encode for IpNet {
    fn encode(&self, w: &mut Writer) {
        self.addr.encode(w);
        w.u8(self.prefix);
    }
}

/// A field-less enum: its variant index (declaration order: none of them sets a discriminant).
macro_rules! unit_enums {
    ($($ty:ty),* $(,)?) => {$(
        impl Encode for $ty {
            fn encode(&self, w: &mut Writer) {
                w.u64(*self as u64);
            }
        }
    )*};
}

unit_enums!(
    ProbeRole,
    IfKind,
    WifiStandard,
    Preamble,
    OvpnFormat,
    SourceKind,
    ActionState
);

/// A struct: its fields in declaration order, nothing else.
macro_rules! structs {
    ($($ty:ident { $($field:ident),* $(,)? })*) => {$(
        impl Encode for $ty {
            fn encode(&self, w: &mut Writer) {
                let $ty { $($field),* } = self;
                $($field.encode(w);)*
            }
        }
    )*};
}

structs! {
    Report {
        seq, boot_id, timestamp_ms, dropped_reports, router, system, interfaces, wireless,
        stations, leases, wireguard, openvpn, sources, probes, wan,
    }
    ProbeResult { role, target, name, sent, received, rtt_min_us, rtt_avg_us, rtt_max_us }
    WanAddress { device, addr }
    RouterFacts { hostname, model, board, release, kernel, agent_version, arch }
    OpenWrtRelease {
        distrib_id, release, revision, target, arch, description, taints, codename,
    }
    SystemStats {
        uptime_s, load, cpu_busy_permille, mem_total_kb, mem_available_kb,
        mem_available_derived, disks,
    }
    DiskUsage { mount, total_bytes, used_bytes }
    NetInterface {
        name, kind, rx_bytes, rx_packets, rx_errs, rx_drop, rx_fifo, rx_frame, rx_compressed,
        rx_multicast, tx_bytes, tx_packets, tx_errs, tx_drop, tx_fifo, tx_colls, tx_carrier,
        tx_compressed,
    }
    WirelessInterface {
        phy, name, ifindex, wdev, addr, iftype, ssid, channel, freq_mhz, width_mhz,
        center1_mhz, center2_mhz, txpower_dbm, links,
    }
    WifiLink {
        link_id, addr, channel, freq_mhz, width_mhz, center1_mhz, center2_mhz, txpower_dbm,
    }
    Bitrate { kbps, standard, mcs, nss, width_mhz, short_gi, gi, dcm }
    Signal { dbm, chains }
    MeshPeer {
        llid, plid, plink, airtime_metric, connected_to_gate, connected_to_auth_server,
    }
    StationLinkStats {
        inactive_ms, rx_bytes, rx_packets, tx_bytes, tx_packets, tx_retries, tx_failed,
        beacon_loss, rx_drop_misc, signal, signal_avg, last_ack_signal_dbm, tx_bitrate,
        rx_bitrate, expected_throughput_kbps, tx_duration_us, rx_duration_us, airtime_weight,
    }
    StationLink { link_id, addr, stats }
    Station {
        mac, interface, stats, connected_s, authorized, authenticated, associated, wmm, mfp,
        tdls_peer, preamble, mesh, associated_at_ms, current_time_ms, links,
    }
    DhcpLease { expires, mac, ip, hostname, client_id, iaid }
    WgInterface { name, public_key, listen_port, fwmark, peers }
    WgPeer {
        public_key, name, has_preshared_key, endpoint, allowed_ips, latest_handshake, rx_bytes,
        tx_bytes, keepalive_s,
    }
    OvpnInstance { name, format, title, updated, clients, routes, statistics, global }
    OvpnGlobalStats { max_bcast_mcast_queue_len, dco_enabled }
    OvpnClient {
        common_name, real_address, virtual_address, virtual_ipv6, bytes_received, bytes_sent,
        connected_since, username, client_id, peer_id, cipher,
    }
    OvpnRoute { virtual_address, common_name, real_address, last_ref, cached }
    OvpnStatistics {
        tun_read_bytes, tun_write_bytes, link_read_bytes, link_write_bytes, auth_read_bytes,
        pre_compress_bytes, post_compress_bytes, pre_decompress_bytes, post_decompress_bytes,
    }
    SourceStatus { kind, name, state }
    Hello { agent_version, hostname, boot_id, spooled }
    EnrollRequest { token, csr_pem, name, hostname }
    RenewRequest { csr_pem }
    ActionResult { id, state, output, detail }
    OvpnServerDetail {
        config_file, config, template, remote, port, proto, logs, log_source, log_error,
    }
}

/// Variant index, then the variant's fields in order.
impl Encode for WifiIfType {
    fn encode(&self, w: &mut Writer) {
        let index = match self {
            WifiIfType::Ap => 0,
            WifiIfType::ApVlan => 1,
            WifiIfType::MeshPoint => 2,
            WifiIfType::Managed => 3,
            WifiIfType::Monitor => 4,
            WifiIfType::Ibss => 5,
            WifiIfType::P2pClient => 6,
            WifiIfType::P2pGo => 7,
            WifiIfType::P2pDevice => 8,
            WifiIfType::Wds => 9,
            WifiIfType::Ocb => 10,
            WifiIfType::Nan => 11,
            WifiIfType::Other(s) => {
                w.u64(12);
                return w.str(s);
            }
        };
        w.u64(index);
    }
}

impl Encode for SourceState {
    fn encode(&self, w: &mut Writer) {
        match self {
            SourceState::Ok => w.u64(0),
            SourceState::Partial {
                skipped,
                first_error,
            } => {
                w.u64(1);
                skipped.encode(w);
                w.str(first_error);
            }
            SourceState::Error(e) => {
                w.u64(2);
                w.str(e);
            }
            SourceState::ToolMissing(t) => {
                w.u64(3);
                w.str(t);
            }
            SourceState::Disabled => w.u64(4),
        }
    }
}

impl Encode for ActionDetail {
    fn encode(&self, w: &mut Writer) {
        match self {
            ActionDetail::WgPeer {
                interface,
                address,
                router_public_key,
                listen_port,
                interface_addresses,
            } => {
                w.u64(0);
                interface.encode(w);
                address.encode(w);
                router_public_key.encode(w);
                listen_port.encode(w);
                interface_addresses.encode(w);
            }
            ActionDetail::Backup { size, sha256, data } => {
                w.u64(1);
                size.encode(w);
                sha256.encode(w);
                // A `Vec<u8>` is a sequence of `u8`s: the length, then the bytes as they are.
                w.u64(data.len() as u64);
                w.raw(data);
            }
            ActionDetail::Status {
                uptime_s,
                release,
                cpu_permille,
                mem_total_kb,
                mem_available_kb,
            } => {
                w.u64(2);
                uptime_s.encode(w);
                release.encode(w);
                cpu_permille.encode(w);
                mem_total_kb.encode(w);
                mem_available_kb.encode(w);
            }
            ActionDetail::OvpnClient {
                name,
                ovpn,
                serial,
                expires,
                port,
                proto,
            } => {
                w.u64(3);
                name.encode(w);
                ovpn.encode(w);
                serial.encode(w);
                expires.encode(w);
                port.encode(w);
                proto.encode(w);
            }
            ActionDetail::OvpnServer(d) => {
                w.u64(4);
                d.encode(w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every message an agent sends, generated at random thousands of times (every field, every
    //! enum variant, integers around the varint steps, any float bits, non-ASCII text, empty and
    //! longer lists) and encoded both ways: the bytes must be those of `codec::encode`.

    use serde::Deserialize;

    use super::*;
    use crate::codec;
    use crate::message::Message;
    use crate::random_value::random;

    /// `n` random values of `T` encoded both ways; returns how many bytes were compared.
    fn same_bytes<T>(n: u64, salt: u64) -> usize
    where
        T: Encode + serde::Serialize + for<'de> Deserialize<'de> + std::fmt::Debug,
    {
        let mut compared = 0;
        for seed in 0..n {
            let v: T = random(seed ^ salt << 32);
            let serde = codec::encode(&v).unwrap();
            let hand = to_payload(&v);
            assert_eq!(hand, serde, "seed {seed}: {v:?}");
            compared += serde.len();
        }
        compared
    }

    #[test]
    fn random_reports_encode_as_serde_does() {
        let bytes = same_bytes::<Report>(3_000, 1);
        // The generator makes big reports too (many stations, long strings).
        assert!(bytes > 3_000 * 1_000, "{bytes}");
    }

    #[test]
    fn every_model_part_and_message_encodes_as_serde_does() {
        same_bytes::<Hello>(2_000, 2);
        same_bytes::<EnrollRequest>(2_000, 3);
        same_bytes::<RenewRequest>(500, 4);
        same_bytes::<ActionResult>(5_000, 5);
        // Every variant and field type on its own, many times (a report holds few of some).
        same_bytes::<SourceStatus>(2_000, 6);
        same_bytes::<WirelessInterface>(2_000, 7);
        same_bytes::<Station>(2_000, 8);
        same_bytes::<DhcpLease>(2_000, 9);
        same_bytes::<WgPeer>(2_000, 10);
        same_bytes::<OvpnInstance>(1_000, 11);
        same_bytes::<ProbeResult>(2_000, 12);
        same_bytes::<WanAddress>(2_000, 13);
        same_bytes::<SystemStats>(2_000, 14);
        same_bytes::<NetInterface>(1_000, 15);
    }

    #[test]
    fn the_generator_reaches_every_variant() {
        let mut seen = std::collections::BTreeSet::new();
        // The variant's name: what `Debug` prints before a space or parenthesis.
        let mut variant = |debug: String| {
            seen.insert(
                debug
                    .split([' ', '('])
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        };
        for seed in 0..2_000 {
            if let Some(d) = random::<Option<ActionDetail>>(seed) {
                variant(format!("{d:?}"));
            }
            variant(format!("{:?}", random::<SourceState>(seed)));
            variant(format!("{:?}", random::<WifiIfType>(seed)));
            let a: SocketAddr = random(seed);
            variant(if a.is_ipv4() { "SocketV4" } else { "SocketV6" }.to_string());
        }
        // 5 ActionDetail + 5 SourceState + 13 WifiIfType + 2 SocketAddr.
        assert_eq!(seen.len(), 25, "{seen:?}");
    }

    #[test]
    fn request_frames_are_the_serde_frames() {
        for seed in 0..300 {
            let msgs = [
                Message::Report(Box::new(random(seed))),
                Message::Hello(random(seed)),
                Message::EnrollRequest(random(seed)),
                Message::RenewRequest(random(seed)),
                Message::ActionResult(random(seed)),
                Message::ReportPatch(random(seed)),
            ];
            for m in msgs {
                assert_eq!(
                    m.to_request_frame().unwrap(),
                    m.to_frame().unwrap(),
                    "{m:?}"
                );
            }
        }
    }
}
