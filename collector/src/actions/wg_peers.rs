//! Client configurations of WireGuard peers added through the API.
//!
//! The peer's key pair is generated here (x25519); only the public key travels to the router.
//! The private key waits in `<data_dir>/wireguard/<router id>/<peer>/pending-<key>.json` (0600)
//! until the router answers; a `done` answer turns it into `<peer>.conf` (mode 0600) with the
//! address the router picked and the router's public key and port; a `failed` or `refused` answer
//! removes it, and so does a done `wg_delete_peer`. Neither file is ever logged or put in the
//! database.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine;
use routerstats_shared::action::{check_peer_name, ActionDetail, ActionKind};
use serde::{Deserialize, Serialize};

use super::write_private;
use crate::store::ActionRow;

/// Port written when the router did not report its listen port.
pub const DEFAULT_PORT: u16 = 51820;

/// What waits for the router's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPeer {
    pub private_key: String,
    /// `host` or `host:port`.
    pub endpoint: Option<String>,
    pub dns: Option<String>,
}

/// A fresh key pair: (private, public), base64 as `wg` prints them.
pub fn generate_keypair() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let secret = x25519_dalek::StaticSecret::from(bytes);
    let public = x25519_dalek::PublicKey::from(&secret);
    let b64 = base64::engine::general_purpose::STANDARD;
    (b64.encode(secret.to_bytes()), b64.encode(public.as_bytes()))
}

/// The directory of one peer (the name is checked: no path tricks).
pub fn peer_dir(data_dir: &Path, router_id: i64, name: &str) -> Option<PathBuf> {
    check_peer_name(name).ok()?;
    Some(
        data_dir
            .join("wireguard")
            .join(router_id.to_string())
            .join(name),
    )
}

/// The name of a peer's configuration file.
pub fn conf_file(name: &str) -> String {
    format!("{name}.conf")
}

/// The pending file of the key pair whose public key is `public_key` (one per request, so a
/// repeated request cannot overwrite the key of the first).
fn pending_file(dir: &Path, public_key: &str) -> PathBuf {
    let tag: String = public_key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    dir.join(format!("pending-{tag}.json"))
}

/// Stores the private key of a peer being added.
pub fn save_pending(
    data_dir: &Path,
    router_id: i64,
    name: &str,
    public_key: &str,
    p: &PendingPeer,
) -> std::io::Result<()> {
    let dir = peer_dir(data_dir, router_id, name)
        .ok_or_else(|| std::io::Error::other("bad peer name"))?;
    let json = serde_json::to_vec(p).map_err(std::io::Error::other)?;
    write_private(&pending_file(&dir, public_key), &json)
}

/// Removes a pending key pair that no action uses (a repeated request).
pub fn drop_pending(data_dir: &Path, router_id: i64, name: &str, public_key: &str) {
    if let Some(dir) = peer_dir(data_dir, router_id, name) {
        let _ = std::fs::remove_file(pending_file(&dir, public_key));
    }
}

/// The stored client configuration of a peer.
pub fn read_conf(data_dir: &Path, router_id: i64, name: &str) -> Option<String> {
    let dir = peer_dir(data_dir, router_id, name)?;
    std::fs::read_to_string(dir.join(conf_file(name))).ok()
}

/// `host:port` for the client's `Endpoint`.
pub fn endpoint(host: &str, port: Option<u16>) -> String {
    let port = port.unwrap_or(DEFAULT_PORT);
    if host.parse::<SocketAddr>().is_ok() {
        return host.to_string();
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return SocketAddr::new(ip, port).to_string();
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => host.to_string(),
        _ => format!("{host}:{port}"),
    }
}

/// The network of an interface address: `10.0.3.1/24` -> `10.0.3.0/24`.
fn network_of(cidr: &str) -> Option<String> {
    let (ip, len) = cidr.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Some(format!(
                "{}/{len}",
                std::net::Ipv4Addr::from(u32::from(v4) & mask)
            ))
        }
        IpAddr::V6(v6) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Some(format!(
                "{}/{len}",
                std::net::Ipv6Addr::from(u128::from(v6) & mask)
            ))
        }
        _ => None,
    }
}

/// The client `.conf` of a peer (None for a detail that is not a peer's).
pub fn client_conf(p: &PendingPeer, detail: &ActionDetail, fallback_host: &str) -> Option<String> {
    let ActionDetail::WgPeer {
        address,
        router_public_key,
        listen_port,
        interface_addresses,
        ..
    } = detail
    else {
        return None;
    };
    let allowed: Vec<String> = interface_addresses
        .iter()
        .filter_map(|a| network_of(a))
        .collect();
    let allowed = if allowed.is_empty() {
        address.clone()
    } else {
        allowed.join(", ")
    };
    let mut s = format!(
        "[Interface]\nPrivateKey = {}\nAddress = {address}\n",
        p.private_key
    );
    if let Some(dns) = &p.dns {
        s.push_str(&format!("DNS = {dns}\n"));
    }
    s.push_str("\n[Peer]\n");
    if let Some(k) = router_public_key {
        s.push_str(&format!("PublicKey = {k}\n"));
    }
    let host = p.endpoint.as_deref().unwrap_or(fallback_host);
    s.push_str(&format!(
        "Endpoint = {}\nAllowedIPs = {allowed}\nPersistentKeepalive = 25\n",
        endpoint(host, *listen_port)
    ));
    Some(s)
}

/// Reacts to a finished action: writes or removes a peer's files.
pub fn on_finished(data_dir: &Path, row: &ActionRow, detail: Option<&ActionDetail>) {
    let Some(kind) = row.kind() else { return };
    match (kind, row.state.as_str()) {
        (
            ActionKind::WgAddPeer {
                name, public_key, ..
            },
            "done",
        ) => {
            let Some(dir) = peer_dir(data_dir, row.router_id, &name) else {
                return;
            };
            let pending_path = pending_file(&dir, &public_key);
            let pending = std::fs::read(&pending_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<PendingPeer>(&b).ok());
            let conf = pending
                .as_ref()
                .zip(detail)
                .and_then(|(p, d)| client_conf(p, d, "router.invalid"));
            match conf {
                Some(conf) => match write_private(&dir.join(conf_file(&name)), conf.as_bytes()) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&pending_path);
                    }
                    Err(e) => {
                        tracing::error!(action = row.id, error = %e, "cannot store a peer configuration")
                    }
                },
                _ => tracing::warn!(
                    action = row.id,
                    "peer added but its pending key or detail is missing; no client configuration"
                ),
            }
        }
        // A failed add drops only its own pending key: the directory may hold the stored
        // configuration of the peer already added under this name (the router refuses a second
        // one) or another request's pending key; an emptied directory goes too.
        (
            ActionKind::WgAddPeer {
                name, public_key, ..
            },
            "failed" | "refused",
        ) => {
            if let Some(dir) = peer_dir(data_dir, row.router_id, &name) {
                let _ = std::fs::remove_file(pending_file(&dir, &public_key));
                let _ = std::fs::remove_dir(dir);
            }
        }
        (ActionKind::WgDeletePeer { name, .. }, "done") => {
            if let Some(dir) = peer_dir(data_dir, row.router_id, &name) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        _ => {}
    }
}

/// The configuration as an SVG QR code, for phones.
pub fn qr_svg(conf: &str) -> Option<String> {
    let code = qrcode::QrCode::new(conf.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(256, 256)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keypair_is_wg_shaped_and_public_matches() {
        let (private, public) = generate_keypair();
        assert!(
            routerstats_shared::action::check_wg_key(&public).is_ok(),
            "{public}"
        );
        assert!(routerstats_shared::action::check_wg_key(&private).is_ok());
        // The same private key gives the same public key.
        let raw: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(&private)
            .unwrap()
            .try_into()
            .unwrap();
        let again = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(raw));
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(again.as_bytes()),
            public
        );
    }

    #[test]
    fn endpoints_and_networks() {
        assert_eq!(endpoint("203.0.113.7", Some(51821)), "203.0.113.7:51821");
        assert_eq!(endpoint("vpn.example.net", None), "vpn.example.net:51820");
        assert_eq!(
            endpoint("vpn.example.net:443", Some(1)),
            "vpn.example.net:443"
        );
        assert_eq!(endpoint("2001:db8::1", Some(5)), "[2001:db8::1]:5");
        assert_eq!(network_of("10.0.3.1/24").unwrap(), "10.0.3.0/24");
        assert_eq!(network_of("fd00::1/64").unwrap(), "fd00::/64");
        assert!(network_of("nonsense").is_none());
    }

    #[test]
    fn done_writes_a_private_conf_and_delete_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = PendingPeer {
            private_key: "PRIV".into(),
            endpoint: Some("198.51.100.1".into()),
            dns: Some("10.0.3.1".into()),
        };
        save_pending(dir.path(), 3, "laptop-alice", "PUB+/=", &p).unwrap();
        let kind = ActionKind::WgAddPeer {
            interface: "wg0".into(),
            name: "laptop-alice".into(),
            public_key: "PUB+/=".into(),
        };
        let mut row = ActionRow {
            id: 1,
            router_id: 3,
            router: "r".into(),
            kind: "wg_add_peer".into(),
            params: serde_json::to_value(&kind).unwrap(),
            idempotency_key: None,
            requested_by: "k".into(),
            created_at: 0,
            deadline: 0,
            sent_at: None,
            finished_at: None,
            attempts: 1,
            state: "done".into(),
            result: None,
            output: None,
        };
        let detail = ActionDetail::WgPeer {
            interface: "wg0".into(),
            address: "10.0.3.2/32".into(),
            router_public_key: Some("RPK".into()),
            listen_port: Some(51820),
            interface_addresses: vec!["10.0.3.1/24".into()],
        };
        on_finished(dir.path(), &row, Some(&detail));
        let conf = read_conf(dir.path(), 3, "laptop-alice").unwrap();
        assert!(client_conf(
            &p,
            &ActionDetail::Backup {
                size: 0,
                sha256: String::new(),
                data: vec![]
            },
            "h"
        )
        .is_none());
        assert!(
            conf.contains("PrivateKey = PRIV\nAddress = 10.0.3.2/32\nDNS = 10.0.3.1\n"),
            "{conf}"
        );
        assert!(
            conf.contains(
                "PublicKey = RPK\nEndpoint = 198.51.100.1:51820\nAllowedIPs = 10.0.3.0/24\n"
            ),
            "{conf}"
        );
        let path = peer_dir(dir.path(), 3, "laptop-alice")
            .unwrap()
            .join("laptop-alice.conf");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!path.with_file_name("pending-PUB.json").exists());
        assert!(qr_svg(&conf).unwrap().starts_with("<?xml"));
        // Adding the same name again fails on the router ("already exists"): the failure drops
        // that request's pending key and keeps the first peer's configuration (and a third
        // request's pending key).
        let again = PendingPeer {
            private_key: "PRIV2".into(),
            endpoint: None,
            dns: None,
        };
        save_pending(dir.path(), 3, "laptop-alice", "SECOND", &again).unwrap();
        save_pending(dir.path(), 3, "laptop-alice", "THIRD", &again).unwrap();
        let second = ActionKind::WgAddPeer {
            interface: "wg0".into(),
            name: "laptop-alice".into(),
            public_key: "SECOND".into(),
        };
        let failed = ActionRow {
            params: serde_json::to_value(&second).unwrap(),
            state: "failed".into(),
            ..row.clone()
        };
        on_finished(dir.path(), &failed, None);
        assert_eq!(
            read_conf(dir.path(), 3, "laptop-alice").as_deref(),
            Some(conf.as_str())
        );
        assert!(!path.with_file_name("pending-SECOND.json").exists());
        assert!(path.with_file_name("pending-THIRD.json").exists());
        // A failed add under a name with nothing else stored leaves no directory behind.
        save_pending(dir.path(), 3, "phone", "ONLY", &again).unwrap();
        let lone = ActionKind::WgAddPeer {
            interface: "wg0".into(),
            name: "phone".into(),
            public_key: "ONLY".into(),
        };
        let failed = ActionRow {
            params: serde_json::to_value(&lone).unwrap(),
            state: "refused".into(),
            ..row.clone()
        };
        on_finished(dir.path(), &failed, None);
        assert!(!peer_dir(dir.path(), 3, "phone").unwrap().exists());
        let del = ActionKind::WgDeletePeer {
            interface: "wg0".into(),
            name: "laptop-alice".into(),
        };
        row.params = serde_json::to_value(&del).unwrap();
        on_finished(dir.path(), &row, None);
        assert!(read_conf(dir.path(), 3, "laptop-alice").is_none());
        assert!(peer_dir(dir.path(), 3, "../x").is_none());
    }
}
