//! Fleet actions: the typed commands a collector sends to an agent over the ingest session, their
//! results, and the parameter checks both sides run.
//!
//! - collector -> agent [`Action`]: an id (the collector's row id, unique per collector), a
//!   deadline (Unix seconds, collector clock) after which the agent refuses it, and an
//!   [`ActionKind`] with typed parameters.
//! - agent -> collector [`ActionResult`]: the id, a final [`ActionState`], bounded output
//!   ([`MAX_OUTPUT`] bytes) and an optional typed [`ActionDetail`].
//!
//! On the wire the kind travels as its own encoded byte string inside the action payload, so an
//! agent that does not know a kind (a newer collector) still reads the id and answers
//! `refused` ([`ActionKind::Unsupported`]) instead of dropping the connection.
//!
//! [`ActionKind::validate`] is the one set of parameter rules: the collector runs it before it
//! stores an action, the agent again before it runs one. Names that reach a command line are
//! restricted to `[A-Za-z0-9_-]`, so no shell metacharacter, option prefix or UCI syntax can pass
//! (the agent never uses a shell anyway: every tool runs with an argument vector).

use serde::{Deserialize, Serialize};

use crate::codec;

/// Largest output text kept from an action (bytes); longer output is cut at a char boundary.
pub const MAX_OUTPUT: usize = 8 * 1024;
/// Longest peer name.
pub const MAX_PEER_NAME: usize = 32;
/// Longest interface name (Linux IFNAMSIZ - 1).
pub const MAX_IFACE: usize = 15;

/// One command for a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub id: i64,
    /// Unix seconds (collector clock); the agent refuses the action from this instant on.
    pub deadline: u64,
    pub kind: ActionKind,
}

/// What to do, with typed parameters. Add variants at the end only (the wire uses the index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Add a WireGuard peer to `interface` through UCI (a `wireguard_<interface>` section named
    /// after the peer) and to the running interface; the agent picks the next free address in
    /// the interface's subnet.
    WgAddPeer {
        interface: String,
        name: String,
        public_key: String,
    },
    /// Remove the peer named `name` from `interface` (UCI and the running interface).
    WgDeletePeer { interface: String, name: String },
    /// Restart the WireGuard interface (`ifup <interface>`), as the manager's reload does.
    WgReload { interface: String },
    /// Not sent by anyone: what an agent decodes when it does not know the kind.
    Unsupported { reason: String },
    /// A configuration backup: the router's `sysupgrade -b` archive, returned in the result
    /// (at most [`MAX_BACKUP`] bytes, with its SHA-256).
    Backup {},
    /// A fresh look at the router's system state (uptime, release, CPU, memory), read when the
    /// action runs rather than from the last report.
    Status {},
    /// A round trip over the live session (`POST /api/health`): the agent answers `done` at
    /// once. It reads and changes nothing, so it needs no `allow_actions` grant.
    Ping {},
    /// Issue an OpenVPN client certificate from the router's easy-rsa PKI (`easyrsa
    /// build-client-full <name> nopass`) and return the client's `.ovpn` with inline
    /// certificates and key ([`ActionDetail::OvpnClient`]).
    OvpnCreateClient { name: String },
    /// Revoke a client's certificate (`easyrsa revoke`, `easyrsa gen-crl`), put the new CRL where
    /// the server's `crl-verify` reads it, and end the client's sessions.
    OvpnRevokeClient { name: String },
    /// End a client's sessions through the server's management interface (`kill <name>`).
    OvpnDisconnectClient { name: String },
    /// Read the OpenVPN server's configuration (keys redacted), a client template and the last
    /// `log_lines` lines of its log ([`ActionDetail::OvpnServer`]).
    OvpnServerInfo { log_lines: u32 },
    /// Sets one layer (a queue: the user's package, or a throttle over it) of a user's
    /// download/upload limit, kept in UCI (`routerstats`, `config limit`) and applied with tc
    /// HTB classes fed by nftables marks. `mac`/`ip` say which host (at least one; the router
    /// checks its own leases).
    LimitSet {
        user: String,
        mac: Option<String>,
        ip: Option<String>,
        layer: LimitLayer,
        mode: LimitMode,
        download_kbit: u32,
        upload_kbit: u32,
    },
    /// Removes one layer of a user's limit (the user named `user`, or the host with `mac`).
    LimitRemove {
        user: String,
        mac: Option<String>,
        layer: LimitLayer,
    },
    /// Sets (or with `enable: false` removes) the TTL of packets forwarded out of `interface`
    /// to 1 (nftables, the project's own table), so clients cannot share their connection
    /// through a router of their own.
    AntiSharing { interface: String, enable: bool },
    /// Let a client through the openNDS captive portal: `ndsctl auth <mac> "" <up> <down> "" ""
    /// <username>` (rates in kbit/s, 0 = unlimited).
    HotspotAuthorize {
        username: String,
        mac: String,
        ip: Option<String>,
        download_kbps: u32,
        upload_kbps: u32,
    },
    /// Send a client back to the portal: `ndsctl deauth <mac>`.
    HotspotDeauthorize { username: String, mac: String },
    /// openNDS's UCI section: the gateway interface and name, the idle timeout (minutes, 0 =
    /// none), after checking that the address pool exists in UCI `dhcp`.
    HotspotConfigure {
        interface: String,
        name: String,
        address_pool: String,
        idle_timeout_min: u32,
    },
    /// A PPPoE account in `/etc/ppp/chap-secrets` and `pap-secrets`.
    PppoeSecretCreate { username: String, password: String },
    /// Removes a PPPoE account from both secrets files.
    PppoeSecretRemove { username: String },
    /// rp-pppoe-server's UCI section (`pppoe.rs_<interface>`): interface, service name, local
    /// address, first remote address (an address or a pool of UCI `dhcp`), session timeout.
    PppoeServerConfigure {
        interface: String,
        service_name: String,
        local_address: String,
        remote: String,
        timeout_s: u32,
    },
    /// A bridge device in UCI `network` (`config device`, `type bridge`), optionally with a MAC.
    BridgeCreate { name: String, mac: Option<String> },
    /// Adds a port (an interface of the router) to a bridge device made by [`Self::BridgeCreate`]
    /// or already in UCI.
    BridgeAddPort { bridge: String, port: String },
    /// A bridge, a static interface on it with `address` (`a.b.c.d/len`) and a DHCP pool
    /// `pool` from `start` to `end` in UCI `dhcp`.
    NetworkSetup {
        bridge: String,
        pool: String,
        address: String,
        start: String,
        end: String,
    },
}

/// Which layer of a user's limit an action sets: the package (queue) or a throttle over it.
/// The throttle wins while it is set; removing it brings the queue's limit back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitLayer {
    Queue,
    Throttle,
}

impl LimitLayer {
    /// Reads the variant index [`codec::encode`] writes (see [`ActionKind::decode`]).
    fn decode(r: &mut codec::Reader) -> Result<LimitLayer, codec::CodecError> {
        match r.u32()? {
            0 => Ok(LimitLayer::Queue),
            1 => Ok(LimitLayer::Throttle),
            n => Err(codec::CodecError::Decode(format!(
                "unknown limit layer {n}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LimitLayer::Queue => "queue",
            LimitLayer::Throttle => "throttle",
        }
    }
}

/// How [`ActionKind::LimitSet`] treats an existing layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    /// The layer must not exist yet.
    Create,
    /// The layer must exist.
    Update,
    /// Either.
    Set,
}

impl LimitMode {
    /// Reads the variant index [`codec::encode`] writes (see [`ActionKind::decode`]).
    fn decode(r: &mut codec::Reader) -> Result<LimitMode, codec::CodecError> {
        match r.u32()? {
            0 => Ok(LimitMode::Create),
            1 => Ok(LimitMode::Update),
            2 => Ok(LimitMode::Set),
            n => Err(codec::CodecError::Decode(format!("unknown limit mode {n}"))),
        }
    }
}

/// Smallest and largest limit (kbit/s): 8 kbit/s, 10 Gbit/s.
pub const MIN_LIMIT_KBIT: u32 = 8;
pub const MAX_LIMIT_KBIT: u32 = 10_000_000;
/// Longest user name (a DHCP hostname, a MAC, a hotspot or PPPoE login) and PPPoE password.
pub const MAX_USER: usize = 64;
/// An agent's failure output that starts with this means "no such thing" (the API's 404).
pub const NOT_FOUND: &str = "not found: ";

/// Largest backup archive an agent returns (bytes); it travels in one result frame.
pub const MAX_BACKUP: usize = 512 * 1024;

/// The family an action belongs to: what `list allow_actions` names on the router.
pub const FAMILY_WIREGUARD: &str = "wireguard";
/// The backup family (`sysupgrade -b`).
pub const FAMILY_BACKUP: &str = "backup";
/// The on-demand status family (reads /proc and /etc only).
pub const FAMILY_STATUS: &str = "status";
/// The ping family: answered by every agent, no grant needed (see [`ActionKind::needs_grant`]).
pub const FAMILY_PING: &str = "ping";
/// The OpenVPN server family (easy-rsa client certificates, management interface, logs).
pub const FAMILY_OPENVPN: &str = "openvpn";
/// Longest OpenVPN client name (an X.509 common name has at most 64 characters).
pub const MAX_CLIENT_NAME: usize = 64;
/// Most log lines an [`ActionKind::OvpnServerInfo`] returns.
pub const MAX_LOG_LINES: u32 = 1000;
/// Per-user bandwidth limits (queues and throttles: tc HTB + nftables marks).
pub const FAMILY_LIMITS: &str = "limits";
/// The TTL rule against connection sharing (nftables).
pub const FAMILY_ANTI_SHARING: &str = "anti_sharing";
/// The captive portal family (openNDS).
pub const FAMILY_HOTSPOT: &str = "hotspot";
/// The PPPoE server family (rp-pppoe-server).
pub const FAMILY_PPPOE: &str = "pppoe";
/// Bridges, interfaces and address pools in UCI `network` and `dhcp`.
pub const FAMILY_BRIDGE: &str = "bridge";

impl ActionKind {
    /// The kind's name in the API and the database (`wg_add_peer`...).
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::WgAddPeer { .. } => "wg_add_peer",
            ActionKind::WgDeletePeer { .. } => "wg_delete_peer",
            ActionKind::WgReload { .. } => "wg_reload",
            ActionKind::Unsupported { .. } => "unsupported",
            ActionKind::Backup {} => "backup",
            ActionKind::Status {} => "status",
            ActionKind::Ping {} => "ping",
            ActionKind::OvpnCreateClient { .. } => "ovpn_create_client",
            ActionKind::OvpnRevokeClient { .. } => "ovpn_revoke_client",
            ActionKind::OvpnDisconnectClient { .. } => "ovpn_disconnect_client",
            ActionKind::OvpnServerInfo { .. } => "ovpn_server_info",
            ActionKind::LimitSet { .. } => "limit_set",
            ActionKind::LimitRemove { .. } => "limit_remove",
            ActionKind::AntiSharing { .. } => "anti_sharing",
            ActionKind::HotspotAuthorize { .. } => "hotspot_authorize",
            ActionKind::HotspotDeauthorize { .. } => "hotspot_deauthorize",
            ActionKind::HotspotConfigure { .. } => "hotspot_configure",
            ActionKind::PppoeSecretCreate { .. } => "pppoe_secret_create",
            ActionKind::PppoeSecretRemove { .. } => "pppoe_secret_remove",
            ActionKind::PppoeServerConfigure { .. } => "pppoe_server_configure",
            ActionKind::BridgeCreate { .. } => "bridge_create",
            ActionKind::BridgeAddPort { .. } => "bridge_add_port",
            ActionKind::NetworkSetup { .. } => "network_setup",
        }
    }

    /// The family the router's allow list must name.
    pub fn family(&self) -> &'static str {
        match self {
            ActionKind::WgAddPeer { .. }
            | ActionKind::WgDeletePeer { .. }
            | ActionKind::WgReload { .. } => FAMILY_WIREGUARD,
            ActionKind::Unsupported { .. } => "unsupported",
            ActionKind::Backup {} => FAMILY_BACKUP,
            ActionKind::Status {} => FAMILY_STATUS,
            ActionKind::Ping {} => FAMILY_PING,
            ActionKind::OvpnCreateClient { .. }
            | ActionKind::OvpnRevokeClient { .. }
            | ActionKind::OvpnDisconnectClient { .. }
            | ActionKind::OvpnServerInfo { .. } => FAMILY_OPENVPN,
            ActionKind::LimitSet { .. } | ActionKind::LimitRemove { .. } => FAMILY_LIMITS,
            ActionKind::AntiSharing { .. } => FAMILY_ANTI_SHARING,
            ActionKind::HotspotAuthorize { .. }
            | ActionKind::HotspotDeauthorize { .. }
            | ActionKind::HotspotConfigure { .. } => FAMILY_HOTSPOT,
            ActionKind::PppoeSecretCreate { .. }
            | ActionKind::PppoeSecretRemove { .. }
            | ActionKind::PppoeServerConfigure { .. } => FAMILY_PPPOE,
            ActionKind::BridgeCreate { .. }
            | ActionKind::BridgeAddPort { .. }
            | ActionKind::NetworkSetup { .. } => FAMILY_BRIDGE,
        }
    }

    /// Whether the router's `allow_actions` must name the family. A ping reads and changes
    /// nothing on the router, so every agent answers it.
    pub fn needs_grant(&self) -> bool {
        !matches!(self, ActionKind::Ping {})
    }

    /// Whether running it twice changes nothing on the router (a backup). The agent does not
    /// journal those (their results can be large) and simply runs a repeat again.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            ActionKind::Backup {}
                | ActionKind::Status {}
                | ActionKind::Ping {}
                | ActionKind::OvpnServerInfo { .. }
        )
    }

    /// Checks every parameter; the error names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ActionKind::WgAddPeer {
                interface,
                name,
                public_key,
            } => {
                check_iface(interface)?;
                check_peer_name(name)?;
                check_wg_key(public_key)
            }
            ActionKind::WgDeletePeer { interface, name } => {
                check_iface(interface)?;
                check_peer_name(name)
            }
            ActionKind::WgReload { interface } => check_iface(interface),
            ActionKind::Unsupported { reason } => Err(format!("unsupported action: {reason}")),
            ActionKind::Backup {} | ActionKind::Status {} | ActionKind::Ping {} => Ok(()),
            ActionKind::OvpnCreateClient { name }
            | ActionKind::OvpnRevokeClient { name }
            | ActionKind::OvpnDisconnectClient { name } => check_client_name(name),
            ActionKind::OvpnServerInfo { log_lines } => {
                if *log_lines > MAX_LOG_LINES {
                    return Err(format!(
                        "lines must be from 0 to {MAX_LOG_LINES} (got {log_lines})"
                    ));
                }
                Ok(())
            }
            ActionKind::LimitSet {
                user,
                mac,
                ip,
                download_kbit,
                upload_kbit,
                ..
            } => {
                check_user(user)?;
                if mac.is_none() && ip.is_none() {
                    return Err("a limit needs the host's mac or ip".into());
                }
                if let Some(m) = mac {
                    check_mac_lowercase(m)?;
                }
                if let Some(i) = ip {
                    check_ipv4("ip", i)?;
                }
                check_kbit("download", *download_kbit)?;
                check_kbit("upload", *upload_kbit)
            }
            ActionKind::LimitRemove { user, mac, .. } => {
                check_user(user)?;
                mac.as_deref().map_or(Ok(()), check_mac_lowercase)
            }
            ActionKind::AntiSharing { interface, .. } => check_device(interface),
            ActionKind::HotspotAuthorize {
                username, mac, ip, ..
            } => {
                check_user(username)?;
                check_mac(mac)?;
                ip.as_deref()
                    .map_or(Ok(()), |ip| check_ipv4("ip_address", ip))
            }
            ActionKind::HotspotDeauthorize { username, mac } => {
                check_user(username)?;
                check_mac(mac)
            }
            ActionKind::HotspotConfigure {
                interface,
                name,
                address_pool,
                idle_timeout_min,
            } => {
                check_device(interface)?;
                check_name("hotspot_name", name)?;
                check_name("address_pool", address_pool)?;
                check_range("idle_timeout", *idle_timeout_min, 0, 10_080)
            }
            ActionKind::PppoeSecretCreate { username, password } => {
                check_user(username)?;
                check_password(password)
            }
            ActionKind::PppoeSecretRemove { username } => check_user(username),
            ActionKind::PppoeServerConfigure {
                interface,
                service_name,
                local_address,
                remote,
                timeout_s,
            } => {
                check_device(interface)?;
                check_name("service_name", service_name)?;
                check_ipv4("local_address", local_address)?;
                if check_ipv4("remote_address", remote).is_err() {
                    check_name("remote_address", remote).map_err(|_| {
                        format!(
                            "remote_address must be an IPv4 address or an address pool name (got {:?})",
                            clip(remote)
                        )
                    })?;
                }
                check_range("keepalive_timeout", *timeout_s, 1, 86_400)
            }
            ActionKind::BridgeCreate { name, mac } => {
                check_device(name)?;
                mac.as_deref().map_or(Ok(()), check_mac)
            }
            ActionKind::BridgeAddPort { bridge, port } => {
                check_device(bridge)?;
                check_device(port)
            }
            ActionKind::NetworkSetup {
                bridge,
                pool,
                address,
                start,
                end,
            } => {
                check_device(bridge)?;
                check_name("pool", pool)?;
                check_cidr(address)?;
                check_ipv4("ip_pool_range", start)?;
                check_ipv4("ip_pool_range", end)
            }
        }
    }
}

/// An OpenVPN client name (its certificate's common name and its easy-rsa file name): 1-64 of
/// `[A-Za-z0-9_-]`, starting with a letter or digit. No dot, slash, space, quote or `$` can
/// reach easy-rsa's file names, its shell code, the management interface or a UCI file.
pub fn check_client_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_CLIENT_NAME
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(format!(
            "client name must be 1-{MAX_CLIENT_NAME} characters of A-Z a-z 0-9 _ -, starting with a letter or digit (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

impl ActionKind {
    /// Decodes a kind as [`codec::encode`] writes it (the variant index, then the fields in
    /// order), by hand: serde's derived decoder for this enum cost ~850 bytes of code per variant
    /// on mips_24kc. A new variant needs its arm here; `every_kind_decodes_by_hand` fails
    /// until it has one.
    pub fn decode(bytes: &[u8]) -> Result<ActionKind, codec::CodecError> {
        let mut r = codec::Reader::new(bytes);
        let k = match r.u32()? {
            0 => ActionKind::WgAddPeer {
                interface: r.string()?,
                name: r.string()?,
                public_key: r.string()?,
            },
            1 => ActionKind::WgDeletePeer {
                interface: r.string()?,
                name: r.string()?,
            },
            2 => ActionKind::WgReload {
                interface: r.string()?,
            },
            3 => ActionKind::Unsupported {
                reason: r.string()?,
            },
            4 => ActionKind::Backup {},
            5 => ActionKind::Status {},
            6 => ActionKind::Ping {},
            7 => ActionKind::OvpnCreateClient { name: r.string()? },
            8 => ActionKind::OvpnRevokeClient { name: r.string()? },
            9 => ActionKind::OvpnDisconnectClient { name: r.string()? },
            10 => ActionKind::OvpnServerInfo {
                log_lines: r.u32()?,
            },
            11 => ActionKind::LimitSet {
                user: r.string()?,
                mac: r.opt_string()?,
                ip: r.opt_string()?,
                layer: LimitLayer::decode(&mut r)?,
                mode: LimitMode::decode(&mut r)?,
                download_kbit: r.u32()?,
                upload_kbit: r.u32()?,
            },
            12 => ActionKind::LimitRemove {
                user: r.string()?,
                mac: r.opt_string()?,
                layer: LimitLayer::decode(&mut r)?,
            },
            13 => ActionKind::AntiSharing {
                interface: r.string()?,
                enable: r.bool()?,
            },
            14 => ActionKind::HotspotAuthorize {
                username: r.string()?,
                mac: r.string()?,
                ip: r.opt_string()?,
                download_kbps: r.u32()?,
                upload_kbps: r.u32()?,
            },
            15 => ActionKind::HotspotDeauthorize {
                username: r.string()?,
                mac: r.string()?,
            },
            16 => ActionKind::HotspotConfigure {
                interface: r.string()?,
                name: r.string()?,
                address_pool: r.string()?,
                idle_timeout_min: r.u32()?,
            },
            17 => ActionKind::PppoeSecretCreate {
                username: r.string()?,
                password: r.string()?,
            },
            18 => ActionKind::PppoeSecretRemove {
                username: r.string()?,
            },
            19 => ActionKind::PppoeServerConfigure {
                interface: r.string()?,
                service_name: r.string()?,
                local_address: r.string()?,
                remote: r.string()?,
                timeout_s: r.u32()?,
            },
            20 => ActionKind::BridgeCreate {
                name: r.string()?,
                mac: r.opt_string()?,
            },
            21 => ActionKind::BridgeAddPort {
                bridge: r.string()?,
                port: r.string()?,
            },
            22 => ActionKind::NetworkSetup {
                bridge: r.string()?,
                pool: r.string()?,
                address: r.string()?,
                start: r.string()?,
                end: r.string()?,
            },
            n => {
                return Err(codec::CodecError::Decode(format!(
                    "unknown action kind {n}"
                )))
            }
        };
        r.finish()?;
        Ok(k)
    }
}

/// What a redacted secret reads as.
pub const REDACTED: &str = "********";

/// A user name (hotspot, PPPoE, limits): 1-64 of `[A-Za-z0-9_.:@-]`, starting with a letter or
/// digit: a DHCP hostname, a MAC address or a login. No quote, space, `#`, `=` or `$`, which a
/// shell, UCI or the secrets files would read as syntax.
pub fn check_user(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_USER
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b));
    if !ok {
        return Err(format!(
            "username must be 1-{MAX_USER} characters of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

/// A PPPoE password: 1-64 printable ASCII characters without space, quotes, backslash or `#`
/// (pppd's secrets files would read those as syntax).
pub fn check_password(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_USER
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'\\#".contains(&b));
    if !ok {
        // The password itself is never echoed.
        return Err(format!(
            "password must be 1-{MAX_USER} printable ASCII characters without space, quotes, backslash or #"
        ));
    }
    Ok(())
}

/// A limit in kbit/s: [`MIN_LIMIT_KBIT`] to [`MAX_LIMIT_KBIT`].
pub fn check_kbit(what: &str, v: u32) -> Result<(), String> {
    if !(MIN_LIMIT_KBIT..=MAX_LIMIT_KBIT).contains(&v) {
        return Err(format!(
            "{what} limit must be {MIN_LIMIT_KBIT} kbit/s to {MAX_LIMIT_KBIT} kbit/s (got {v} kbit/s)"
        ));
    }
    Ok(())
}

/// A Linux device name (bridge, port, gateway interface): 1-15 of `[A-Za-z0-9_.-]`, starting
/// with a letter or digit.
pub fn check_device(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_IFACE
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        return Err(format!(
            "interface names must be 1-{MAX_IFACE} characters of A-Z a-z 0-9 _ . -, starting with a letter or digit (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

/// A name that becomes part of a UCI section name (pools, hotspot and service names): 1-32 of
/// `[A-Za-z0-9_-]`, starting with a letter or digit.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    check_peer_name(s).map_err(|_| {
        format!(
            "{what} must be 1-{MAX_PEER_NAME} characters of A-Z a-z 0-9 _ -, starting with a letter or digit (got {:?})",
            clip(s)
        )
    })
}

/// A MAC address `aa:bb:cc:dd:ee:ff` (either case).
pub fn check_mac(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = b.len() == 17
        && b.iter().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                *c == b':'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if !ok {
        return Err(format!(
            "mac_address must look like 00:11:22:33:44:55 (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

/// A MAC address as the agent's lease book writes it (lowercase): limits compare it with the
/// leases byte for byte.
pub fn check_mac_lowercase(s: &str) -> Result<(), String> {
    check_mac(s)?;
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "mac must be lowercase aa:bb:cc:dd:ee:ff (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

/// A dotted IPv4 address.
pub fn check_ipv4(what: &str, s: &str) -> Result<(), String> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|_| ())
        .map_err(|_| format!("{what} must be an IPv4 address (got {:?})", clip(s)))
}

/// `a.b.c.d/len` with a prefix of 8 to 30.
pub fn check_cidr(s: &str) -> Result<(), String> {
    let ok = s.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::Ipv4Addr>().is_ok()
            && len.parse::<u8>().is_ok_and(|l| (8..=30).contains(&l))
    });
    if !ok {
        return Err(format!(
            "network_address must be an IPv4 address with a prefix of 8 to 30, like 172.31.0.1/16 (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

fn check_range(what: &str, v: u32, min: u32, max: u32) -> Result<(), String> {
    if v < min || v > max {
        return Err(format!("{what} must be from {min} to {max} (got {v})"));
    }
    Ok(())
}

/// The UCI section name for a user-given name: every character but `[A-Za-z0-9_]` becomes `_`
/// (UCI allows no others).
pub fn uci_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
/// What [`check_iface`] accepts, as an ECMA-262 regular expression (for API documents).
pub const IFACE_PATTERN: &str = "^[A-Za-z0-9_]{1,15}$";
/// What [`check_peer_name`] accepts, as an ECMA-262 regular expression.
pub const PEER_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$";
/// What [`check_client_name`] accepts (`MAX_CLIENT_NAME` = 64), as an ECMA-262 regular expression.
pub const CLIENT_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";
/// What [`check_wg_key`] accepts, as an ECMA-262 regular expression.
pub const WG_KEY_PATTERN: &str = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$";

/// A WireGuard interface name: 1-15 of `[A-Za-z0-9_]` (UCI section names allow no more).
pub fn check_iface(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > MAX_IFACE
        || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "interface must be 1-{MAX_IFACE} characters of A-Z a-z 0-9 _ (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

/// A peer name: 1-32 of `[A-Za-z0-9_-]`, starting with a letter or digit.
pub fn check_peer_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_PEER_NAME
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(format!(
            "peer name must be 1-{MAX_PEER_NAME} characters of A-Z a-z 0-9 _ -, starting with a letter or digit (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

/// A WireGuard key: 44 characters of standard base64 for 32 bytes (43 symbols and `=`).
pub fn check_wg_key(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = b.len() == 44
        && b[43] == b'='
        && b[..43].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        // The last symbol carries 2 bits of padding that must be zero: one of AEIMQUYcgkosw048.
        && b"AEIMQUYcgkosw048".contains(&b[42]);
    if !ok {
        return Err(format!(
            "public_key must be a base64 WireGuard key of 44 characters (got {:?})",
            clip(s)
        ));
    }
    Ok(())
}

/// The UCI section name of a peer: `rs_` + the name with `-` as `_`.
pub fn peer_section(name: &str) -> String {
    format!("rs_{}", name.replace('-', "_"))
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// How an action ended on the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionState {
    Done,
    Failed,
    /// Not run: not allowed by the router's config, expired, unknown or invalid.
    Refused,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Done => "done",
            ActionState::Failed => "failed",
            ActionState::Refused => "refused",
        }
    }
}

/// Typed facts an action returns besides its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionDetail {
    /// A peer added to a WireGuard interface.
    WgPeer {
        interface: String,
        /// The peer's address with prefix (`10.0.3.5/32`).
        address: String,
        /// The interface's public key and port, for the peer's client configuration.
        router_public_key: Option<String>,
        listen_port: Option<u16>,
        /// The interface's own addresses (`10.0.3.1/24`).
        interface_addresses: Vec<String>,
    },
    /// A backup archive. The collector stores `data` in a file and keeps only the size and
    /// checksum in the database (`data` is then empty).
    Backup {
        size: u64,
        /// Lowercase hex SHA-256 of `data`, computed by the agent and checked by the collector.
        sha256: String,
        data: Vec<u8>,
    },
    /// The router's system state when the action ran.
    Status {
        uptime_s: Option<u64>,
        /// OpenWrt release (`DISTRIB_RELEASE`).
        release: Option<String>,
        /// CPU busy over 250 ms, in permille.
        cpu_permille: Option<u16>,
        mem_total_kb: Option<u64>,
        mem_available_kb: Option<u64>,
    },
    /// A client certificate issued by the router's PKI. `ovpn` is secret (it holds the client's
    /// private key): the collector writes it to a 0600 file and empties it before the result
    /// reaches the database; the agent's journal keeps the result without it
    /// ([`ActionResult::without_secrets`]).
    OvpnClient {
        name: String,
        /// The client configuration with `<ca>`, `<cert>`, `<key>` (and the server's
        /// `<tls-crypt>`/`<tls-auth>` key) inline. Without a `remote` line when the router does
        /// not know its public address; the collector then adds one.
        ovpn: String,
        /// easy-rsa's serial (hex) and expiry (`YYMMDDHHMMSSZ`) from `index.txt`.
        serial: Option<String>,
        expires: Option<String>,
        /// Server port and protocol, for a `remote` line the collector adds.
        port: u16,
        proto: String,
    },
    /// What the router knows about its OpenVPN server (boxed: the largest detail).
    OvpnServer(Box<OvpnServerDetail>),
}

/// [`ActionDetail::OvpnServer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvpnServerDetail {
    /// The server configuration file read.
    pub config_file: String,
    /// Its lines, inline key material and passwords replaced by `[redacted]`.
    pub config: Vec<String>,
    /// A client configuration template (no certificates); has a `remote` line when the
    /// router knows its public address (`option openvpn_remote`).
    pub template: String,
    /// The public address from `option openvpn_remote`, if set.
    pub remote: Option<String>,
    pub port: u16,
    pub proto: String,
    /// The newest log lines (oldest first), and where they came from (a `log`/`log-append`
    /// file, or `logread`); `log_error` says why there are none.
    pub logs: Vec<String>,
    pub log_source: String,
    pub log_error: Option<String>,
}

/// The router's answer to an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub id: i64,
    pub state: ActionState,
    /// What the tools printed, or why the action was refused; at most [`MAX_OUTPUT`] bytes.
    pub output: String,
    pub detail: Option<ActionDetail>,
}

impl ActionResult {
    /// A result with its output cut to [`MAX_OUTPUT`].
    pub fn new(
        id: i64,
        state: ActionState,
        output: impl Into<String>,
        detail: Option<ActionDetail>,
    ) -> Self {
        ActionResult {
            id,
            state,
            output: bound_output(output.into()),
            detail,
        }
    }
}

impl ActionResult {
    /// The result without secret material (an issued client's `.ovpn`), for the agent's journal.
    pub fn without_secrets(&self) -> ActionResult {
        let mut r = self.clone();
        if let Some(ActionDetail::OvpnClient { ovpn, .. }) = r.detail.as_mut() {
            *ovpn = String::new();
        }
        r
    }
}

/// Cuts `s` to at most [`MAX_OUTPUT`] bytes at a char boundary, marking the cut.
pub fn bound_output(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT - 16;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("\n[output cut]");
    }
    s
}

/// The action as it travels: the kind as a nested byte string (see the module doc).
#[derive(Serialize, Deserialize)]
struct ActionWire {
    id: i64,
    deadline: u64,
    kind: Vec<u8>,
}

impl Action {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, codec::CodecError> {
        codec::encode(&ActionWire {
            id: self.id,
            deadline: self.deadline,
            kind: codec::encode(&self.kind)?,
        })
    }

    /// Decodes an action payload; an unknown or malformed kind becomes
    /// [`ActionKind::Unsupported`] with the id kept, so the agent can answer it.
    /// The outer `ActionWire` is read by hand as well (what `codec::decode::<ActionWire>` reads:
    /// `id`, `deadline`, the kind's length and bytes), so the agent links no serde decoder.
    pub(crate) fn decode(payload: &[u8]) -> Result<Action, codec::CodecError> {
        let mut r = codec::Reader::new(payload);
        let id = r.i64()?;
        let deadline = r.u64()?;
        let kind_bytes = r.bytes()?;
        r.finish()?;
        let kind = ActionKind::decode(kind_bytes).unwrap_or_else(|e| ActionKind::Unsupported {
            reason: format!("unknown action kind for this agent ({e})"),
        });
        Ok(Action { id, deadline, kind })
    }

    /// An action whose kind bytes are given as is (tests of unknown kinds).
    pub fn raw_frame(id: i64, deadline: u64, kind: &[u8]) -> Result<Vec<u8>, crate::FrameError> {
        let payload = codec::encode(&ActionWire {
            id,
            deadline,
            kind: kind.to_vec(),
        })
        .map_err(|e| crate::FrameError::BadPayload {
            kind: crate::MessageKind::Action,
            reason: e.to_string(),
        })?;
        crate::message::frame_bytes(crate::MessageKind::Action, &payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "8BGW2iCuYLoHQfgdPmfOoLfn2jPBw7/oNaUEbfjKNR0=";

    #[test]
    fn names_and_keys() {
        assert!(check_peer_name("laptop-alice").is_ok());
        assert!(check_peer_name("a").is_ok());
        for bad in [
            "",
            "-x",
            "a b",
            "a;rm -rf /",
            "$(id)",
            "a`b`",
            "x'y",
            "a\nb",
            "é",
            &"a".repeat(33),
        ] {
            assert!(check_peer_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_iface("wg0").is_ok());
        for bad in ["", "wg-0", "wg0;", "abcdefghijklmnop", "wg 0"] {
            assert!(check_iface(bad).is_err(), "{bad:?}");
        }
        assert!(check_wg_key(KEY).is_ok());
        for bad in [
            "",
            "abc=",
            &KEY[1..],
            &format!("{}x", &KEY[..43]),
            "8BGW2iCuYLoHQfgdPmfOoLfn2jPBw7/oNaUEbfjKNR1=",
        ] {
            assert!(check_wg_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(peer_section("laptop-alice"), "rs_laptop_alice");
    }

    #[test]
    fn validate_names_the_parameter() {
        let k = ActionKind::WgAddPeer {
            interface: "wg0".into(),
            name: "a|b".into(),
            public_key: KEY.into(),
        };
        assert!(k.validate().unwrap_err().contains("peer name"));
        let k = ActionKind::WgAddPeer {
            interface: "wg0".into(),
            name: "ok".into(),
            public_key: "x".into(),
        };
        assert!(k.validate().unwrap_err().contains("public_key"));
        assert!(ActionKind::WgReload {
            interface: "wg0".into()
        }
        .validate()
        .is_ok());
        assert_eq!(
            ActionKind::WgReload {
                interface: "wg0".into()
            }
            .family(),
            "wireguard"
        );
    }

    #[test]
    fn openvpn_names_lines_and_secrets() {
        assert!(check_client_name("f2net_client1").is_ok());
        assert!(check_client_name(&"a".repeat(64)).is_ok());
        for bad in [
            "",
            "-a",
            "a.b",
            "../x",
            "a b",
            "a'b",
            "a;b",
            "$(id)",
            "a\nb",
            "é",
            &"a".repeat(65),
        ] {
            assert!(check_client_name(bad).is_err(), "{bad:?}");
        }
        let k = ActionKind::OvpnRevokeClient { name: "x y".into() };
        assert!(k.validate().unwrap_err().contains("client name"));
        assert_eq!(k.family(), FAMILY_OPENVPN);
        assert!(ActionKind::OvpnServerInfo { log_lines: 1000 }
            .validate()
            .is_ok());
        assert!(ActionKind::OvpnServerInfo { log_lines: 1001 }
            .validate()
            .is_err());
        let r = ActionResult::new(
            1,
            ActionState::Done,
            "ok",
            Some(ActionDetail::OvpnClient {
                name: "a".into(),
                ovpn: "<key>SECRET</key>".into(),
                serial: None,
                expires: None,
                port: 1194,
                proto: "udp".into(),
            }),
        );
        let clean = r.without_secrets();
        assert!(!format!("{clean:?}").contains("SECRET"));
        assert!(format!("{r:?}").contains("SECRET"));
    }

    #[test]
    fn limit_parameters_are_checked() {
        let set = |user: &str, mac: Option<&str>, ip: Option<&str>, d: u32, u: u32| {
            ActionKind::LimitSet {
                user: user.into(),
                mac: mac.map(String::from),
                ip: ip.map(String::from),
                layer: LimitLayer::Throttle,
                mode: LimitMode::Set,
                download_kbit: d,
                upload_kbit: u,
            }
            .validate()
        };
        let mac = Some("aa:bb:cc:00:11:22");
        assert!(set("laptop-alice", mac, None, 5000, 2000).is_ok());
        assert!(set(
            "aa:bb:cc:00:11:22",
            None,
            Some("192.168.1.20"),
            8,
            MAX_LIMIT_KBIT
        )
        .is_ok());
        for bad in [
            "", "a b", "x;reboot", "$(id)", "a'b", "a\nb", "-x", "a.b=c", "é",
        ] {
            assert!(
                set(bad, mac, None, 5000, 2000)
                    .unwrap_err()
                    .contains("username"),
                "{bad:?}"
            );
        }
        assert!(set("u", None, None, 5000, 2000)
            .unwrap_err()
            .contains("mac or ip"));
        assert!(set("u", Some("AA:BB:CC:00:11:22"), None, 5000, 2000).is_err());
        assert!(set("u", Some("aa:bb:cc:00:11"), None, 5000, 2000).is_err());
        assert!(set("u", None, Some("192.168.1.300"), 5000, 2000).is_err());
        assert!(set("u", mac, None, 0, 2000)
            .unwrap_err()
            .contains("download"));
        assert!(set("u", mac, None, 5000, 7).unwrap_err().contains("upload"));
        assert!(set("u", mac, None, MAX_LIMIT_KBIT + 1, 2000).is_err());
        for ok in ["br-lan", "eth0.2", "wlan0", "phy0-ap0"] {
            assert!(check_device(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "br lan", "br-lan;", "a/b", "abcdefghijklmnop"] {
            assert!(check_device(bad).is_err(), "{bad:?}");
        }
        let k = ActionKind::AntiSharing {
            interface: "br-lan".into(),
            enable: true,
        };
        assert_eq!((k.family(), k.name()), ("anti_sharing", "anti_sharing"));
    }

    #[test]
    fn isp_parameters_are_checked_and_passwords_redacted() {
        assert!(check_user("user123").is_ok() && check_user("a.b@c-d_e").is_ok());
        for bad in [
            "",
            "-x",
            "a b",
            "a;b",
            "$(id)",
            "a\"b",
            "a#b",
            &"a".repeat(65),
        ] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("s3cr.t-Pw!").is_ok());
        for bad in [
            "",
            "a b",
            "a\"b",
            "a'b",
            "a\\b",
            "a#b",
            "é",
            &"a".repeat(65),
        ] {
            let e = check_password(bad).unwrap_err();
            assert!(
                bad.is_empty() || !e.contains(bad),
                "the password is echoed: {e}"
            );
        }
        assert!(check_device("bridge-local").is_ok() && check_device("br.x").is_ok());
        for bad in ["", "x;y", "a b", "abcdefghijklmnop", "-a", "a'b"] {
            assert!(check_device(bad).is_err(), "{bad:?}");
        }
        assert!(check_mac("A4:83:e7:2b:91:0c").is_ok());
        assert!(check_mac("a4-83-e7-2b-91-0c").is_err() && check_mac("a4:83:e7:2b:91").is_err());
        assert!(check_cidr("172.31.0.1/16").is_ok());
        for bad in ["172.31.0.1", "172.31.0.1/31", "x/16", "172.31.0.1/7"] {
            assert!(check_cidr(bad).is_err(), "{bad:?}");
        }
        let k = ActionKind::PppoeSecretCreate {
            username: "u".into(),
            password: "pw".into(),
        };
        assert_eq!(k.family(), FAMILY_PPPOE);
        let k = ActionKind::PppoeServerConfigure {
            interface: "br-x".into(),
            service_name: "svc".into(),
            local_address: "10.0.0.1".into(),
            remote: "pool;x".into(),
            timeout_s: 60,
        };
        assert!(k.validate().unwrap_err().contains("remote_address"));
        assert_eq!(uci_name("bridge-local.x"), "bridge_local_x");
    }

    /// One value of every kind, in variant order (the match makes a new variant a compile error
    /// here until it is added, and the test then checks its hand-written decoder).
    fn one_of_each() -> Vec<ActionKind> {
        let s = |v: &str| v.to_string();
        let all = vec![
            ActionKind::WgAddPeer {
                interface: s("wg0"),
                name: s("a"),
                public_key: s(KEY),
            },
            ActionKind::WgDeletePeer {
                interface: s("wg0"),
                name: s("b"),
            },
            ActionKind::WgReload {
                interface: s("wg1"),
            },
            ActionKind::Unsupported { reason: s("why") },
            ActionKind::Backup {},
            ActionKind::Status {},
            ActionKind::Ping {},
            ActionKind::OvpnCreateClient { name: s("c1") },
            ActionKind::OvpnRevokeClient { name: s("c2") },
            ActionKind::OvpnDisconnectClient { name: s("c3") },
            ActionKind::OvpnServerInfo { log_lines: 1000 },
            ActionKind::LimitSet {
                user: s("laptop"),
                mac: Some(s("aa:bb:cc:00:11:22")),
                ip: None,
                layer: LimitLayer::Throttle,
                mode: LimitMode::Set,
                download_kbit: 5000,
                upload_kbit: MAX_LIMIT_KBIT,
            },
            ActionKind::LimitRemove {
                user: s("laptop"),
                mac: None,
                layer: LimitLayer::Queue,
            },
            ActionKind::AntiSharing {
                interface: s("br-lan"),
                enable: true,
            },
            ActionKind::HotspotAuthorize {
                username: s("u"),
                mac: s("00:11:22:33:44:55"),
                ip: Some(s("10.0.0.9")),
                download_kbps: 300,
                upload_kbps: 70_000,
            },
            ActionKind::HotspotDeauthorize {
                username: s("u"),
                mac: s("00:11:22:33:44:55"),
            },
            ActionKind::HotspotConfigure {
                interface: s("br-x"),
                name: s("h"),
                address_pool: s("p"),
                idle_timeout_min: 251,
            },
            ActionKind::PppoeSecretCreate {
                username: s("u"),
                password: s("pw"),
            },
            ActionKind::PppoeSecretRemove { username: s("u") },
            ActionKind::PppoeServerConfigure {
                interface: s("br-x"),
                service_name: s("svc"),
                local_address: s("10.0.0.1"),
                remote: s("pool"),
                timeout_s: 86_400,
            },
            ActionKind::BridgeCreate {
                name: s("br-x"),
                mac: None,
            },
            ActionKind::BridgeAddPort {
                bridge: s("br-x"),
                port: s("lan3"),
            },
            ActionKind::NetworkSetup {
                bridge: s("b"),
                pool: s("p"),
                address: s("10.1.0.1/16"),
                start: s("10.1.0.2"),
                end: s("10.1.0.9"),
            },
        ];
        for k in &all {
            match k {
                ActionKind::WgAddPeer { .. }
                | ActionKind::WgDeletePeer { .. }
                | ActionKind::WgReload { .. }
                | ActionKind::Unsupported { .. }
                | ActionKind::Backup {}
                | ActionKind::Status {}
                | ActionKind::Ping {}
                | ActionKind::OvpnCreateClient { .. }
                | ActionKind::OvpnRevokeClient { .. }
                | ActionKind::OvpnDisconnectClient { .. }
                | ActionKind::OvpnServerInfo { .. }
                | ActionKind::LimitSet { .. }
                | ActionKind::LimitRemove { .. }
                | ActionKind::AntiSharing { .. }
                | ActionKind::HotspotAuthorize { .. }
                | ActionKind::HotspotDeauthorize { .. }
                | ActionKind::HotspotConfigure { .. }
                | ActionKind::PppoeSecretCreate { .. }
                | ActionKind::PppoeSecretRemove { .. }
                | ActionKind::PppoeServerConfigure { .. }
                | ActionKind::BridgeCreate { .. }
                | ActionKind::BridgeAddPort { .. }
                | ActionKind::NetworkSetup { .. } => {}
            }
        }
        all
    }

    /// The outer action (`id`, `deadline`, kind bytes) read by hand is what serde reads: random
    /// actions of every kind, random kind bytes, and random payloads (accepted and refused alike).
    #[test]
    fn action_payloads_are_read_as_serde_reads_them() {
        use crate::random_value::random;
        let kinds = one_of_each();
        for seed in 0..3_000u64 {
            let (id, deadline, junk): (i64, u64, Vec<u8>) = random(seed);
            let kind = if seed % 2 == 0 {
                codec::encode(&kinds[seed as usize / 2 % kinds.len()]).unwrap()
            } else {
                junk
            };
            let payload = codec::encode(&ActionWire {
                id,
                deadline,
                kind: kind.clone(),
            })
            .unwrap();
            let a = Action::decode(&payload).unwrap();
            assert_eq!((a.id, a.deadline), (id, deadline));
            match ActionKind::decode(&kind) {
                Ok(k) => assert_eq!(a.kind, k),
                Err(_) => assert!(matches!(a.kind, ActionKind::Unsupported { .. })),
            }
            // Any cut of it, and anything after it, is refused by both.
            let cut = (seed as usize * 7) % payload.len();
            assert!(Action::decode(&payload[..cut]).is_err());
            assert!(codec::decode::<ActionWire>(&payload[..cut]).is_err());
            let mut longer = payload.clone();
            longer.push(1);
            assert!(
                Action::decode(&longer).is_err() && codec::decode::<ActionWire>(&longer).is_err()
            );
        }
        let forms: [&[u8]; 8] = [
            &[0],
            &[7],
            &[251, 1, 1],
            &[252, 1, 0, 0, 0],
            &[253, 1, 0, 0, 0, 0, 0, 0, 0],
            &[254],
            &[255],
            &[2, 6, 1],
        ];
        for a in forms {
            for b in forms {
                for c in forms {
                    let bytes = [a, b, c].concat();
                    let ours = Action::decode(&bytes).map(|x| (x.id, x.deadline));
                    let theirs = codec::decode::<ActionWire>(&bytes).map(|w| (w.id, w.deadline));
                    assert_eq!(ours.is_ok(), theirs.is_ok(), "{bytes:?}");
                    if let (Ok(x), Ok(y)) = (ours, theirs) {
                        assert_eq!(x, y, "{bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_kind_decodes_by_hand() {
        let all = one_of_each();
        for (i, k) in all.iter().enumerate() {
            let bytes = codec::encode(k).unwrap();
            assert_eq!(
                bytes[0] as usize, i,
                "{k:?} is not variant {i}: keep one_of_each in order"
            );
            assert_eq!(&ActionKind::decode(&bytes).unwrap(), k);
            // Cut anywhere, or with a byte more, it is an error, never a panic.
            for n in 0..bytes.len() {
                assert!(ActionKind::decode(&bytes[..n]).is_err(), "{k:?} cut at {n}");
            }
            let mut more = bytes.clone();
            more.push(0);
            assert!(ActionKind::decode(&more).is_err());
        }
        let with_mac = ActionKind::BridgeCreate {
            name: "b".into(),
            mac: Some("02:00:00:00:00:01".into()),
        };
        assert_eq!(
            ActionKind::decode(&codec::encode(&with_mac).unwrap()).unwrap(),
            with_mac
        );
        assert!(ActionKind::decode(&[all.len() as u8]).is_err());
    }

    #[test]
    fn output_is_bounded() {
        let s = bound_output("é".repeat(MAX_OUTPUT));
        assert!(s.len() <= MAX_OUTPUT && s.ends_with("[output cut]"));
        assert_eq!(bound_output("short".into()), "short");
    }

    #[test]
    fn ping_needs_no_grant_and_keeps_its_wire_index() {
        let p = ActionKind::Ping {};
        assert!(!p.needs_grant() && p.is_read_only() && p.validate().is_ok());
        assert_eq!((p.name(), p.family()), ("ping", FAMILY_PING));
        assert!(ActionKind::Status {}.needs_grant());
        // Variants travel by index: Ping is the 7th (index 6); earlier indexes never move.
        assert_eq!(codec::encode(&p).unwrap(), vec![6]);
        assert_eq!(codec::encode(&ActionKind::Status {}).unwrap(), vec![5]);
    }

    #[test]
    fn unknown_kind_keeps_the_id() {
        // Variant index 77 does not exist.
        let frame = Action::raw_frame(42, 100, &[77, 1, 2]).unwrap();
        let payload = &frame[crate::frame::HEADER_LEN..];
        let a = Action::decode(payload).unwrap();
        assert_eq!(a.id, 42);
        assert!(matches!(a.kind, ActionKind::Unsupported { .. }));
        assert!(a.kind.validate().is_err());
    }
}
