//! Client configurations (`.ovpn`) of OpenVPN clients issued through the API.
//!
//! The router's easy-rsa makes the client's key and certificate and returns the `.ovpn` in an
//! [`ActionDetail::OvpnClient`]; [`receive`] writes it to `<data_dir>/openvpn/<router id>/<name>.ovpn`
//! (mode 0600) and empties it before the result reaches the database, so the key is only ever in
//! that file (never in a log, a row or an audit answer). A `.ovpn` without a `remote` line (the
//! router does not know its public address) gets the address the router connects from. A done
//! revoke removes the file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use routerstats_shared::action::{
    check_client_name, ActionDetail, ActionKind, ActionResult, ActionState,
};

use super::write_private;
use crate::store::ActionRow;

/// The `.ovpn` of a client on a router (None for a name that fails the checks).
pub fn file(data_dir: &Path, router_id: i64, name: &str) -> Option<PathBuf> {
    check_client_name(name).ok()?;
    Some(
        data_dir
            .join("openvpn")
            .join(router_id.to_string())
            .join(format!("{name}.ovpn")),
    )
}

/// The stored `.ovpn` of a client.
pub fn read(data_dir: &Path, router_id: i64, name: &str) -> Option<String> {
    std::fs::read_to_string(file(data_dir, router_id, name)?).ok()
}

/// Adds `remote <host> <port> <proto>` after the first line when the configuration has none.
pub fn with_remote(ovpn: &str, host: &str, port: u16, proto: &str) -> String {
    if ovpn.lines().any(|l| l.trim_start().starts_with("remote ")) {
        return ovpn.to_string();
    }
    let (first, rest) = ovpn.split_once('\n').unwrap_or((ovpn, ""));
    format!("{first}\nremote {host} {port} {proto}\n{rest}")
}

/// Stores the `.ovpn` of a create result and removes it from the result; a result that cannot
/// be stored becomes `failed` (the certificate exists on the router: revoke it and create again).
pub fn receive(
    data_dir: &Path,
    router_id: i64,
    mut r: ActionResult,
    router_addr: Option<IpAddr>,
) -> ActionResult {
    let Some(ActionDetail::OvpnClient {
        name,
        ovpn,
        port,
        proto,
        ..
    }) = r.detail.as_mut()
    else {
        return r;
    };
    let id = r.id;
    let fail = |why: String| ActionResult::new(id, ActionState::Failed, why, None);
    if ovpn.is_empty() {
        // A repeat answered from the agent's journal, which keeps no keys.
        return if file(data_dir, router_id, name).is_some_and(|f| f.exists()) {
            r
        } else {
            fail(format!(
                "the router issued {name} but its configuration was lost before it reached the collector; revoke {name} and create it again"
            ))
        };
    }
    let text = match router_addr {
        Some(ip) => with_remote(ovpn, &ip.to_string(), *port, proto),
        None => ovpn.clone(),
    };
    let Some(path) = file(data_dir, router_id, name) else {
        return fail(format!("bad client name {name:?}"));
    };
    if let Err(e) = write_private(&path, text.as_bytes()) {
        tracing::error!(action = id, error = %e, "cannot store an OpenVPN client configuration");
        return fail(format!(
            "the collector could not store the configuration of {name} ({e}); revoke {name} and create it again"
        ));
    }
    ovpn.clear();
    r
}

/// Removes the stored configuration of a client revoked through the API.
pub fn on_finished(data_dir: &Path, row: &ActionRow) {
    if row.state != "done" {
        return;
    }
    if let Some(ActionKind::OvpnRevokeClient { name }) = row.kind() {
        if let Some(f) = file(data_dir, row.router_id, &name) {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The routers (ids) holding a stored configuration of `name`.
pub fn routers_with(data_dir: &Path, name: &str) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("openvpn")) else {
        return Vec::new();
    };
    let mut ids: Vec<i64> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|id| file(data_dir, *id, name).is_some_and(|f| f.is_file()))
        .collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn created(ovpn: &str) -> ActionResult {
        ActionResult::new(
            7,
            ActionState::Done,
            "issued",
            Some(ActionDetail::OvpnClient {
                name: "alice".into(),
                ovpn: ovpn.into(),
                serial: Some("AB".into()),
                expires: None,
                port: 1194,
                proto: "udp".into(),
            }),
        )
    }

    #[test]
    fn the_ovpn_goes_to_a_private_file_and_out_of_the_result() {
        let dir = tempfile::tempdir().unwrap();
        let r = receive(
            dir.path(),
            3,
            created("client\ndev tun\n<key>\nSECRET\n</key>\n"),
            Some("192.0.2.9".parse().unwrap()),
        );
        assert_eq!(r.state, ActionState::Done);
        assert!(!format!("{r:?}").contains("SECRET"));
        let path = file(dir.path(), 3, "alice").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = read(dir.path(), 3, "alice").unwrap();
        assert!(
            text.starts_with("client\nremote 192.0.2.9 1194 udp\ndev tun\n"),
            "{text}"
        );
        assert_eq!(routers_with(dir.path(), "alice"), vec![3]);
        // A journal repeat (no ovpn) is fine while the file is there.
        assert_eq!(
            receive(dir.path(), 3, created(""), None).state,
            ActionState::Done
        );
        std::fs::remove_file(&path).unwrap();
        let r = receive(dir.path(), 3, created(""), None);
        assert!(r.state == ActionState::Failed && r.output.contains("revoke alice"));
        assert!(file(dir.path(), 3, "../x").is_none());
    }

    #[test]
    fn a_remote_line_is_kept() {
        let t = "client\nremote vpn.example.net 1194\n";
        assert_eq!(with_remote(t, "192.0.2.1", 1, "udp"), t);
    }
}
