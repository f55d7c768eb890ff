//! The report model: everything one agent cycle observed on a router.
//!
//! Field types are chosen for a compact encoding: MAC addresses are 6 bytes, IP addresses are
//! binary (`std::net::IpAddr`), and integer counters become varints in the codec. Optional values
//! are `Option` so "not reported by this router" is distinct from zero.
//!
//! Secrets never appear here: WireGuard private and preshared keys are dropped by the agent's
//! parser, and the model has no field that could carry them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A 48-bit MAC address, 6 bytes on the wire, `aa:bb:cc:dd:ee:ff` in text and JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error for text that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address: {0:?}")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.chars().take(64).collect());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(MacAddr(<[u8; 6]>::deserialize(d)?))
        }
    }
}

/// An IP network: address plus prefix length (`10.0.0.0/24`, `fd00::/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Error for text that is not `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP network: {0:?}")]
pub struct IpNetParseError(pub String);

impl FromStr for IpNet {
    type Err = IpNetParseError;
    /// Accepts `addr/prefix`, or a bare address meaning a host route (/32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetParseError(s.chars().take(64).collect());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            (self.addr, self.prefix).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let (addr, prefix) = <(IpAddr, u8)>::deserialize(d)?;
            Ok(IpNet { addr, prefix })
        }
    }
}

/// One agent cycle: the unit the agent sends and the collector stores exactly once.
///
/// `(boot_id, seq)` identifies a report from a router: `seq` restarts at 1 whenever the agent
/// starts, and `boot_id` is fresh for every agent start (the kernel boot id combined with the
/// agent's start time), so a resend after a reconnect is recognised as a duplicate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    pub seq: u64,
    pub boot_id: [u8; 16],
    /// Unix time in milliseconds when the cycle started.
    pub timestamp_ms: u64,
    /// Reports this agent run (this `boot_id`) has dropped from its full spool so far, as a
    /// running total: any report that gets through tells the whole count, and a resend or a
    /// lost ack cannot skew it. The gap of a run is the largest value stored for its boot id.
    pub dropped_reports: u64,
    pub router: RouterFacts,
    pub system: Option<SystemStats>,
    pub interfaces: Vec<NetInterface>,
    pub wireless: Vec<WirelessInterface>,
    pub stations: Vec<Station>,
    pub leases: Vec<DhcpLease>,
    pub wireguard: Vec<WgInterface>,
    pub openvpn: Vec<OvpnInstance>,
    /// One entry per source read in this cycle, so a missing tool or a parse problem is visible.
    pub sources: Vec<SourceStatus>,
    /// Active ICMP echo probes of this cycle: the default gateways and the configured targets.
    /// A target that could not be probed at all (no route, no permission) has no entry here and
    /// a [`SourceKind::Probe`] status instead. (Since model version 3, kind `Report` = 14.)
    pub probes: Vec<ProbeResult>,
    /// The addresses of the router's WAN devices (the devices its default routes leave by).
    pub wan: Vec<WanAddress>,
}

/// Why a target was probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ProbeRole {
    /// A next hop of a default route (`/proc/net/route`, `/proc/net/ipv6_route`).
    #[default]
    Gateway,
    /// A target from the agent's configuration (`list probe_target`).
    Target,
}

impl ProbeRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProbeRole::Gateway => "gateway",
            ProbeRole::Target => "target",
        }
    }
}

/// The outcome of one cycle's ICMP echo probe of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub role: ProbeRole,
    /// The address probed.
    pub target: IpAddr,
    /// The configured name of a target (as written in the config), or the device of a gateway's
    /// route (`eth0.2`, `pppoe-wan`).
    pub name: String,
    /// Echo requests sent and matching replies received (duplicates counted once).
    pub sent: u32,
    pub received: u32,
    /// Round-trip times of the replies, microseconds; None when no reply came.
    pub rtt_min_us: Option<u32>,
    pub rtt_avg_us: Option<u32>,
    pub rtt_max_us: Option<u32>,
}

impl ProbeResult {
    /// Lost share of the requests sent, in percent (0 to 100); None when nothing was sent.
    pub fn loss_percent(&self) -> Option<f64> {
        (self.sent > 0).then(|| {
            let lost = self.sent.saturating_sub(self.received.min(self.sent));
            f64::from(lost) * 100.0 / f64::from(self.sent)
        })
    }
}

/// One address of a WAN device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WanAddress {
    /// The kernel device (`eth0.2`, `pppoe-wan`, `wan`).
    pub device: String,
    pub addr: IpNet,
}

/// Facts about the router that rarely change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RouterFacts {
    pub hostname: String,
    /// Human model name from /etc/board.json `model.name` (or /tmp/sysinfo/model).
    pub model: Option<String>,
    /// Board id from /etc/board.json `model.id` (or /tmp/sysinfo/board_name).
    pub board: Option<String>,
    pub release: Option<OpenWrtRelease>,
    /// Kernel release (`uname -r` / /proc/sys/kernel/osrelease).
    pub kernel: Option<String>,
    pub agent_version: String,
    /// CPU architecture the agent was built for (`mips`, `aarch64`, ...).
    pub arch: String,
}

/// The fields of /etc/openwrt_release.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OpenWrtRelease {
    pub distrib_id: Option<String>,
    pub release: Option<String>,
    pub revision: Option<String>,
    pub target: Option<String>,
    pub arch: Option<String>,
    pub description: Option<String>,
    pub taints: Option<String>,
    pub codename: Option<String>,
}

/// System counters from /proc and statvfs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SystemStats {
    pub uptime_s: u64,
    pub load: [f32; 3],
    /// CPU busy share in per mille over the interval since the previous cycle (None on the first).
    pub cpu_busy_permille: Option<u16>,
    pub mem_total_kb: u64,
    pub mem_available_kb: u64,
    /// True when MemAvailable was missing from /proc/meminfo and was derived
    /// (MemFree + Buffers + Cached + SReclaimable - Shmem).
    pub mem_available_derived: bool,
    pub disks: Vec<DiskUsage>,
}

/// Used and total space of one mount point.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DiskUsage {
    /// The mount point: `/overlay` or `/`.
    pub mount: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
}

/// What kind of network interface a /proc/net/dev entry is, where the agent can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum IfKind {
    Wifi,
    Ethernet,
    Bridge,
    Pppoe,
    Wireguard,
    Tunnel,
    Loopback,
    #[default]
    Other,
}

impl IfKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            IfKind::Wifi => "wifi",
            IfKind::Ethernet => "ethernet",
            IfKind::Bridge => "bridge",
            IfKind::Pppoe => "pppoe",
            IfKind::Wireguard => "wireguard",
            IfKind::Tunnel => "tunnel",
            IfKind::Loopback => "loopback",
            IfKind::Other => "other",
        }
    }
}

/// One /proc/net/dev row: all sixteen u64 counters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetInterface {
    pub name: String,
    pub kind: IfKind,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub rx_fifo: u64,
    pub rx_frame: u64,
    pub rx_compressed: u64,
    pub rx_multicast: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
    pub tx_fifo: u64,
    pub tx_colls: u64,
    pub tx_carrier: u64,
    pub tx_compressed: u64,
}

/// The interface type `iw dev` reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WifiIfType {
    Ap,
    ApVlan,
    MeshPoint,
    Managed,
    Monitor,
    Ibss,
    P2pClient,
    P2pGo,
    P2pDevice,
    Wds,
    Ocb,
    Nan,
    Other(String),
}

impl WifiIfType {
    /// Maps `iw`'s wording (`AP`, `mesh point`, `managed`, ...) to a type.
    pub fn from_iw(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "ap" => WifiIfType::Ap,
            "ap/vlan" => WifiIfType::ApVlan,
            "mesh point" => WifiIfType::MeshPoint,
            "managed" => WifiIfType::Managed,
            "monitor" => WifiIfType::Monitor,
            "ibss" => WifiIfType::Ibss,
            "p2p-client" => WifiIfType::P2pClient,
            "p2p-go" => WifiIfType::P2pGo,
            "p2p-device" => WifiIfType::P2pDevice,
            "wds" => WifiIfType::Wds,
            "outside context of a bss" | "ocb" => WifiIfType::Ocb,
            "nan" => WifiIfType::Nan,
            other => WifiIfType::Other(other.to_string()),
        }
    }

    /// Whether `iw dev <if> station dump` should be read for this interface.
    pub fn has_stations(&self) -> bool {
        matches!(
            self,
            WifiIfType::Ap | WifiIfType::ApVlan | WifiIfType::MeshPoint | WifiIfType::P2pGo
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            WifiIfType::Ap => "AP",
            WifiIfType::ApVlan => "AP/VLAN",
            WifiIfType::MeshPoint => "mesh point",
            WifiIfType::Managed => "managed",
            WifiIfType::Monitor => "monitor",
            WifiIfType::Ibss => "IBSS",
            WifiIfType::P2pClient => "P2P-client",
            WifiIfType::P2pGo => "P2P-GO",
            WifiIfType::P2pDevice => "P2P-device",
            WifiIfType::Wds => "WDS",
            WifiIfType::Ocb => "OCB",
            WifiIfType::Nan => "NAN",
            WifiIfType::Other(s) => s,
        }
    }
}

/// One interface from `iw dev`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WirelessInterface {
    /// The `phy#N` index the interface sits under.
    pub phy: Option<u32>,
    pub name: String,
    pub ifindex: Option<u32>,
    pub wdev: Option<u64>,
    pub addr: Option<MacAddr>,
    pub iftype: WifiIfType,
    pub ssid: Option<String>,
    pub channel: Option<u32>,
    pub freq_mhz: Option<u32>,
    pub width_mhz: Option<u32>,
    pub center1_mhz: Option<u32>,
    pub center2_mhz: Option<u32>,
    pub txpower_dbm: Option<f32>,
    /// The links of a Wi-Fi 7 multi-link (MLD) interface (`MLD with links:`), in the order
    /// printed; empty for a single-link interface. An MLD's channel, width and power are per
    /// link: the interface-level channel fields above hold only what `iw` printed for the
    /// interface itself (usually nothing for an MLD).
    pub links: Vec<WifiLink>,
}

/// One link of a multi-link (MLD) interface: `- link ID  1 link addr ...` and the `channel`
/// and `txpower` lines under it (a link that is set up but not active has no channel).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WifiLink {
    pub link_id: u8,
    pub addr: Option<MacAddr>,
    pub channel: Option<u32>,
    pub freq_mhz: Option<u32>,
    pub width_mhz: Option<u32>,
    pub center1_mhz: Option<u32>,
    pub center2_mhz: Option<u32>,
    pub txpower_dbm: Option<f32>,
}

/// The PHY generation a bitrate was negotiated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WifiStandard {
    #[default]
    Legacy,
    /// 802.11n
    Ht,
    /// 802.11ac
    Vht,
    /// 802.11ax
    He,
    /// 802.11be
    Eht,
}

/// A tx or rx bitrate line: `866.7 MBit/s VHT-MCS 9 80MHz short GI VHT-NSS 2`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bitrate {
    pub kbps: u32,
    pub standard: WifiStandard,
    pub mcs: Option<u8>,
    pub nss: Option<u8>,
    /// Channel width the rate was sent at. `iw` prints a width token only above 20 MHz, so a
    /// rate without one is 20 MHz (`Some(20)`); None when the rate was an HE/EHT resource unit
    /// (`HE-RU-ALLOC`/`EHT-RU-ALLOC`, no channel width).
    pub width_mhz: Option<u16>,
    pub short_gi: bool,
    /// HE/EHT guard interval index (`HE-GI 0` is 0.8 us, 1 is 1.6 us, 2 is 3.2 us).
    pub gi: Option<u8>,
    pub dcm: Option<u8>,
}

/// A signal line: `-41 [-41, -42] dBm` (combined value plus one value per antenna chain).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Signal {
    pub dbm: i32,
    pub chains: Vec<i32>,
}

/// Mesh peer link fields of a station on a mesh point interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MeshPeer {
    pub llid: Option<u32>,
    pub plid: Option<u32>,
    /// Peer link state: `ESTAB`, `LISTEN`, `OPN_SNT`, `BLOCKED`, ...
    pub plink: Option<String>,
    pub airtime_metric: Option<u32>,
    /// `mesh connected to gate`: the peer reaches a mesh gate (a way out of the mesh).
    pub connected_to_gate: Option<bool>,
    /// `mesh connected to auth server`.
    pub connected_to_auth_server: Option<bool>,
}

/// Counters and link state of one associated station (or mesh peer), from a station dump.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StationLinkStats {
    pub inactive_ms: Option<u64>,
    pub rx_bytes: Option<u64>,
    pub rx_packets: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub tx_packets: Option<u64>,
    pub tx_retries: Option<u64>,
    pub tx_failed: Option<u64>,
    pub beacon_loss: Option<u64>,
    pub rx_drop_misc: Option<u64>,
    pub signal: Option<Signal>,
    pub signal_avg: Option<Signal>,
    pub last_ack_signal_dbm: Option<i32>,
    pub tx_bitrate: Option<Bitrate>,
    pub rx_bitrate: Option<Bitrate>,
    pub expected_throughput_kbps: Option<u32>,
    /// Airtime counters (`tx duration`/`rx duration`, microseconds since association): the
    /// basis of airtime-fairness monitoring.
    pub tx_duration_us: Option<u64>,
    pub rx_duration_us: Option<u64>,
    /// `airtime weight` of the station in the airtime-fairness scheduler (default 256).
    pub airtime_weight: Option<u16>,
}

/// One MLO link of a multi-link station (`Link N:` section).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StationLink {
    pub link_id: u8,
    pub addr: Option<MacAddr>,
    pub stats: StationLinkStats,
}

/// Whether the station uses short or long preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preamble {
    Short,
    Long,
}

/// One station from `iw dev <if> station dump`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Station {
    pub mac: MacAddr,
    /// The interface the station is associated with.
    pub interface: String,
    pub stats: StationLinkStats,
    pub connected_s: Option<u64>,
    pub authorized: Option<bool>,
    pub authenticated: Option<bool>,
    pub associated: Option<bool>,
    pub wmm: Option<bool>,
    pub mfp: Option<bool>,
    pub tdls_peer: Option<bool>,
    pub preamble: Option<Preamble>,
    pub mesh: Option<MeshPeer>,
    /// `associated at: <ms> ms` (Unix time in milliseconds, newer iw).
    pub associated_at_ms: Option<u64>,
    /// `current time: <ms> ms`: the router's clock (Unix ms) when `iw` printed the station.
    pub current_time_ms: Option<u64>,
    /// Per-link sections of an MLO station, in the order printed.
    pub links: Vec<StationLink>,
}

/// One DHCP lease from a dnsmasq lease file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpLease {
    /// Unix time the lease expires; None for an infinite lease (expiry 0).
    pub expires: Option<u64>,
    /// Client MAC (IPv4 leases); IPv6 leases carry an IAID and DUID instead.
    pub mac: Option<MacAddr>,
    pub ip: IpAddr,
    pub hostname: Option<String>,
    /// Client id (IPv4) or DUID (IPv6), as printed.
    pub client_id: Option<String>,
    pub iaid: Option<u32>,
}

/// One WireGuard interface from `wg show all dump`. The private key is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WgInterface {
    pub name: String,
    /// Base64 public key, as printed (kept even when its length is invalid).
    pub public_key: Option<String>,
    pub listen_port: Option<u16>,
    pub fwmark: Option<u32>,
    pub peers: Vec<WgPeer>,
}

/// One WireGuard peer. The preshared key is reduced to whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WgPeer {
    pub public_key: String,
    /// From the `description` option of the peer's section in /etc/config/network.
    pub name: Option<String>,
    pub has_preshared_key: bool,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<IpNet>,
    /// Unix time of the latest handshake; None when there has been none (0 in the dump).
    pub latest_handshake: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub keepalive_s: Option<u16>,
}

/// Which OpenVPN status format a file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OvpnFormat {
    /// `--status-version 1`: `OpenVPN CLIENT LIST` sections.
    #[default]
    V1,
    /// `--status-version 2`: comma-separated `HEADER`/`CLIENT_LIST` rows.
    V2,
    /// `--status-version 3`: tab-separated rows.
    V3,
    /// A client or static-key instance: `OpenVPN STATISTICS`.
    ClientStatistics,
}

/// One OpenVPN instance (one status file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OvpnInstance {
    /// Instance name: the status file's name without directory and extension.
    pub name: String,
    pub format: OvpnFormat,
    pub title: Option<String>,
    /// Unix time the status file was written (`TIME`/`Updated`).
    pub updated: Option<u64>,
    pub clients: Vec<OvpnClient>,
    pub routes: Vec<OvpnRoute>,
    /// Counters of a client-side `OpenVPN STATISTICS` file.
    pub statistics: Option<OvpnStatistics>,
    /// The server's `GLOBAL_STATS` rows (`GLOBAL STATS` section in v1).
    pub global: Option<OvpnGlobalStats>,
}

/// The `GLOBAL_STATS` rows of an OpenVPN server status file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OvpnGlobalStats {
    /// `Max bcast/mcast queue length`.
    pub max_bcast_mcast_queue_len: Option<u64>,
    /// `dco_enabled` (OpenVPN 2.6+): whether data channel offload is in use.
    pub dco_enabled: Option<bool>,
}

/// One connected client of an OpenVPN server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OvpnClient {
    pub common_name: String,
    /// `ip:port` or `proto:ip:port` as printed (may be an IPv6 address or `UNDEF`-free text).
    pub real_address: Option<String>,
    pub virtual_address: Option<IpAddr>,
    pub virtual_ipv6: Option<IpAddr>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Unix time the client connected.
    pub connected_since: Option<u64>,
    /// None when OpenVPN printed `UNDEF`.
    pub username: Option<String>,
    pub client_id: Option<u64>,
    pub peer_id: Option<u64>,
    pub cipher: Option<String>,
}

/// One routing table row of an OpenVPN server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OvpnRoute {
    /// Virtual address as printed: an IP, a network, or a MAC on tap servers.
    pub virtual_address: String,
    pub common_name: String,
    pub real_address: Option<String>,
    pub last_ref: Option<u64>,
    /// Rows flagged `C`: cached, learned from traffic rather than configured.
    pub cached: bool,
}

/// Counters of a client-side or static-key OpenVPN instance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OvpnStatistics {
    pub tun_read_bytes: Option<u64>,
    pub tun_write_bytes: Option<u64>,
    pub link_read_bytes: Option<u64>,
    pub link_write_bytes: Option<u64>,
    pub auth_read_bytes: Option<u64>,
    pub pre_compress_bytes: Option<u64>,
    pub post_compress_bytes: Option<u64>,
    pub pre_decompress_bytes: Option<u64>,
    pub post_decompress_bytes: Option<u64>,
}

/// Which input a [`SourceStatus`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceKind {
    IwDev,
    StationDump,
    DhcpLeases,
    WireGuard,
    OpenVpn,
    NetDev,
    System,
    RouterFacts,
    /// Active ICMP probes; one status per target (name: the address probed).
    Probe,
    /// WAN device addresses.
    Wan,
}

impl SourceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceKind::IwDev => "iw_dev",
            SourceKind::StationDump => "station_dump",
            SourceKind::DhcpLeases => "dhcp_leases",
            SourceKind::WireGuard => "wireguard",
            SourceKind::OpenVpn => "openvpn",
            SourceKind::NetDev => "net_dev",
            SourceKind::System => "system",
            SourceKind::RouterFacts => "router_facts",
            SourceKind::Probe => "probe",
            SourceKind::Wan => "wan",
        }
    }
}

/// How reading one source went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceState {
    Ok,
    /// Parsed, but `skipped` lines or records were malformed; `first_error` says what.
    Partial {
        skipped: u32,
        first_error: String,
    },
    /// The source could not be read or parsed at all.
    Error(String),
    /// The command is not installed (e.g. no `wg` on a router without WireGuard).
    ToolMissing(String),
    /// Turned off in the agent configuration.
    Disabled,
}

/// The outcome of reading one source in a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub kind: SourceKind,
    /// Which instance: an interface name, a file path; empty when there is one instance.
    pub name: String,
    pub state: SourceState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "1A:61:b4:51:77:F0".parse().unwrap();
        assert_eq!(m.0, [0x1a, 0x61, 0xb4, 0x51, 0x77, 0xf0]);
        assert_eq!(m.to_string(), "1a:61:b4:51:77:f0");
        assert_eq!("1a-61-b4-51-77-f0".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "1a:61:b4:51:77",
            "1a:61:b4:51:77:f0:00",
            "zz:61:b4:51:77:f0",
            "1a:61:b4:51:77:f00",
            "1a::b4:51:77:f0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipnet_parses() {
        let n: IpNet = "10.70.0.0/24".parse().unwrap();
        assert_eq!(n.prefix, 24);
        assert_eq!("fd00::1".parse::<IpNet>().unwrap().prefix, 128);
        assert_eq!("10.0.0.1".parse::<IpNet>().unwrap().prefix, 32);
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("x/3".parse::<IpNet>().is_err());
    }

    #[test]
    fn mac_and_ipnet_are_compact_on_the_wire_and_text_in_json() {
        let m: MacAddr = "00:11:22:33:44:55".parse().unwrap();
        assert_eq!(crate::codec::encode(&m).unwrap().len(), 6);
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        // enum tag + 4 address bytes + prefix
        assert_eq!(crate::codec::encode(&n).unwrap().len(), 6);
        let back: MacAddr = crate::codec::decode(&crate::codec::encode(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn wifi_types_map_from_iw() {
        assert_eq!(WifiIfType::from_iw("mesh point"), WifiIfType::MeshPoint);
        assert_eq!(WifiIfType::from_iw("AP"), WifiIfType::Ap);
        assert!(WifiIfType::from_iw("AP").has_stations());
        assert!(!WifiIfType::from_iw("managed").has_stations());
        assert_eq!(
            WifiIfType::from_iw("weird"),
            WifiIfType::Other("weird".into())
        );
    }
}
