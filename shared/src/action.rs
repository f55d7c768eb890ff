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
}

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
            ActionKind::Backup {} | ActionKind::Status {} | ActionKind::Ping {}
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
        }
    }
}

/// What [`check_iface`] accepts, as an ECMA-262 regular expression (for API documents).
pub const IFACE_PATTERN: &str = "^[A-Za-z0-9_]{1,15}$";
/// What [`check_peer_name`] accepts, as an ECMA-262 regular expression.
pub const PEER_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$";
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
    pub(crate) fn decode(payload: &[u8]) -> Result<Action, codec::CodecError> {
        let w: ActionWire = codec::decode(payload)?;
        let kind = codec::decode(&w.kind).unwrap_or_else(|e| ActionKind::Unsupported {
            reason: format!("unknown action kind for this agent ({e})"),
        });
        Ok(Action {
            id: w.id,
            deadline: w.deadline,
            kind,
        })
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
