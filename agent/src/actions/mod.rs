//! The action executor: runs the typed actions the collector sends, only those the router's UCI
//! config allows, through OpenWrt's own tools with argument vectors (never a shell).
//!
//! For each action, in order:
//! 1. An id already running in this process is not started again (its result follows).
//! 2. An id found in the [`journal`] is answered with the result recorded there (a redelivery
//!    after a lost answer or a reconnect never runs an action twice); an id that was started but
//!    has no result (the agent died while running it) is answered `failed` without running again.
//! 3. `refused` with the reason: the deadline passed (collector clock), the kind is unknown to
//!    this agent, a parameter fails the shared checks, or its family is not in
//!    `list allow_actions` of `/etc/config/routerstats` (none by default; a `ping` needs no
//!    grant: it reads and changes nothing).
//! 4. Otherwise it runs ([`wireguard`]), and the result is journaled before it is sent.

pub mod backup;
pub mod isp;
pub mod journal;
pub mod limits;
pub mod openvpn;
pub mod status;
pub mod tools;
pub mod uci_cli;
pub mod wireguard;

use std::path::PathBuf;
use std::sync::Mutex;

use routerstats_shared::action::{Action, ActionKind, ActionResult, ActionState};
use routerstats_shared::Message;

use crate::config::AgentConfig;
use crate::uplink::{log, ActionRunner};
use journal::{Journal, Recall};

/// What the executor needs from the agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionConfig {
    /// Action families the router accepts (`list allow_actions`).
    pub allow: Vec<String>,
    /// The `uci` tool, its config directory (`-c`, default: the tool's own `/etc/config`) and
    /// its directory of uncommitted changes (`-t`).
    pub uci: String,
    pub uci_confdir: Option<PathBuf>,
    pub uci_savedir: Option<PathBuf>,
    pub wg: String,
    /// Restarts an interface (`ifup <iface>`).
    pub ifup: String,
    /// Where the recent action ids and results are kept.
    pub journal: PathBuf,
    /// `sysupgrade` (backups) and the directory its archive is written to for a moment.
    pub sysupgrade: String,
    pub backup_dir: PathBuf,
    /// Where the status action reads `/proc` and `/etc`.
    pub proc_root: PathBuf,
    pub etc_root: PathBuf,
    /// The OpenVPN server of the `openvpn` family (see [`openvpn`]).
    pub openvpn: openvpn::OvpnConfig,
    /// `tc`, `nft`, the devices limits shape (see [`limits`]) and the lease files that say which
    /// hosts are on the router.
    pub tc: String,
    pub nft: String,
    pub limits_lan_device: Option<String>,
    pub limits_wan_device: Option<String>,
    pub lease_files: Vec<PathBuf>,
    /// openNDS's control tool (hotspot family).
    pub ndsctl: String,
}

impl ActionConfig {
    pub fn from_agent(cfg: &AgentConfig) -> ActionConfig {
        ActionConfig {
            allow: cfg.allow_actions.clone(),
            uci: cfg.uci.clone(),
            uci_confdir: cfg.uci_confdir.clone(),
            uci_savedir: cfg.uci_savedir.clone(),
            wg: cfg.wg.clone(),
            ifup: cfg.ifup.clone(),
            journal: cfg.config_dir.join("actions.journal"),
            sysupgrade: cfg.sysupgrade.clone(),
            backup_dir: cfg.backup_dir.clone(),
            proc_root: cfg.proc_root.clone(),
            etc_root: cfg.etc_root.clone(),
            openvpn: openvpn::OvpnConfig {
                config: cfg.openvpn_config.clone(),
                easyrsa: cfg.easyrsa.clone(),
                pki: cfg.easyrsa_pki.clone(),
                remote: cfg.openvpn_remote.clone(),
                logread: cfg.logread.clone(),
            },
            tc: cfg.tc.clone(),
            nft: cfg.nft.clone(),
            limits_lan_device: cfg.limits_lan_device.clone(),
            limits_wan_device: cfg.limits_wan_device.clone(),
            lease_files: cfg.lease_files.clone(),
            ndsctl: cfg.ndsctl.clone(),
        }
    }

    /// The UCI file `name` the executor reads (`/etc/config/<name>` by default).
    pub fn config_file(&self, name: &str) -> PathBuf {
        self.uci_confdir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/config"))
            .join(name)
    }

    /// An init script of the router (`/etc/init.d/<name>`).
    pub fn init_script(&self, name: &str) -> PathBuf {
        self.etc_root.join("init.d").join(name)
    }
}

fn now_u64(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// Runs actions (see the module doc).
pub struct Executor {
    cfg: ActionConfig,
    journal: Mutex<Journal>,
    /// Ids being run by this process (a few at most: a list, not a hash set, for code size).
    running: Mutex<Vec<i64>>,
}

impl Executor {
    pub fn new(cfg: ActionConfig) -> Executor {
        let (journal, warning) = Journal::open(cfg.journal.clone());
        if let Some(w) = warning {
            log!("warn", "{w}");
        }
        Executor {
            cfg,
            journal: Mutex::new(journal),
            running: Mutex::new(Vec::new()),
        }
    }

    /// Applies the limits and anti-sharing rules kept in UCI (at agent start: tc and nftables
    /// state does not survive a reboot), when the router allows those families; after a
    /// failure (a device not up yet) again every [`limits::RESTORE_RETRY`] in the background.
    pub fn restore(&self) {
        let allowed = |f: &str| self.cfg.allow.iter().any(|a| a == f);
        if !allowed(routerstats_shared::action::FAMILY_LIMITS)
            && !allowed(routerstats_shared::action::FAMILY_ANTI_SHARING)
        {
            return;
        }
        let cfg = self.cfg.clone();
        let attempt = move |n: u32| match limits::restore(&cfg) {
            Ok(Some(summary)) => {
                log!("info", "restored from UCI: {summary}");
                true
            }
            Ok(None) => true,
            Err(e) => {
                log!("warn", "cannot restore limits from UCI (attempt {n}): {e}");
                false
            }
        };
        if attempt(1) {
            return;
        }
        // At boot the WAN device may come up after the agent: try again for ten minutes.
        std::thread::spawn(move || {
            for n in 2..=limits::RESTORE_ATTEMPTS {
                std::thread::sleep(limits::RESTORE_RETRY);
                if attempt(n) {
                    return;
                }
            }
        });
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides whether an action may run; the refusal reason otherwise.
    pub fn check(&self, action: &Action, collector_now: i64) -> Result<(), String> {
        if let ActionKind::Unsupported { reason } = &action.kind {
            return Err(reason.clone());
        }
        if i64::try_from(action.deadline).unwrap_or(i64::MAX) <= collector_now {
            return Err("the action's deadline passed before it reached the router".into());
        }
        action.kind.validate()?;
        let family = action.kind.family();
        if action.kind.needs_grant() && !self.cfg.allow.iter().any(|f| f == family) {
            return Err(format!(
                "action family '{family}' is not allowed on this router (add `list allow_actions '{family}'` to /etc/config/routerstats)"
            ));
        }
        if let Some(why) = isp::missing_package(&self.cfg, &action.kind) {
            return Err(why);
        }
        Ok(())
    }

    fn execute(&self, action: &Action) -> ActionResult {
        let outcome = match &action.kind {
            ActionKind::WgAddPeer {
                interface,
                name,
                public_key,
            } => wireguard::add_peer(&self.cfg, interface, name, public_key),
            ActionKind::WgDeletePeer { interface, name } => {
                wireguard::delete_peer(&self.cfg, interface, name)
            }
            ActionKind::WgReload { interface } => wireguard::reload(&self.cfg, interface),
            ActionKind::Backup {} => backup::create(&self.cfg, action.id),
            ActionKind::Status {} => Ok(status::read(&self.cfg)),
            ActionKind::Ping {} => Ok(("pong".to_string(), None)),
            ActionKind::OvpnCreateClient { name } => {
                openvpn::create_client(&self.cfg.openvpn, name)
            }
            ActionKind::OvpnRevokeClient { name } => {
                openvpn::revoke_client(&self.cfg.openvpn, name)
            }
            ActionKind::OvpnDisconnectClient { name } => {
                openvpn::disconnect_client(&self.cfg.openvpn, name)
            }
            ActionKind::OvpnServerInfo { log_lines } => {
                openvpn::server_info(&self.cfg.openvpn, *log_lines)
            }
            ActionKind::LimitSet { .. }
            | ActionKind::LimitRemove { .. }
            | ActionKind::AntiSharing { .. } => limits::run(&self.cfg, &action.kind),
            ActionKind::Unsupported { reason } => Err(reason.clone()),
            ActionKind::HotspotAuthorize {
                username,
                mac,
                download_kbps,
                upload_kbps,
                ..
            } => isp::hotspot_authorize(&self.cfg, username, mac, *download_kbps, *upload_kbps),
            ActionKind::HotspotDeauthorize { mac, .. } => isp::hotspot_deauthorize(&self.cfg, mac),
            ActionKind::HotspotConfigure {
                interface,
                name,
                address_pool,
                idle_timeout_min,
            } => {
                isp::hotspot_configure(&self.cfg, interface, name, address_pool, *idle_timeout_min)
            }
            ActionKind::PppoeSecretCreate { username, password } => {
                isp::pppoe_secret_create(&self.cfg, username, password)
            }
            ActionKind::PppoeSecretRemove { username } => {
                isp::pppoe_secret_remove(&self.cfg, username)
            }
            ActionKind::PppoeServerConfigure {
                interface,
                service_name,
                local_address,
                remote,
                timeout_s,
            } => isp::pppoe_server_configure(
                &self.cfg,
                interface,
                service_name,
                local_address,
                remote,
                *timeout_s,
            ),
            ActionKind::BridgeCreate { name, mac } => {
                isp::bridge_create(&self.cfg, name, mac.as_deref())
            }
            ActionKind::BridgeAddPort { bridge, port } => {
                isp::bridge_add_port(&self.cfg, bridge, port)
            }
            ActionKind::NetworkSetup {
                bridge,
                pool,
                address,
                start,
                end,
            } => isp::network_setup(&self.cfg, bridge, pool, address, start, end),
        };
        match outcome {
            Ok((output, detail)) => ActionResult::new(action.id, ActionState::Done, output, detail),
            Err(e) => ActionResult::new(action.id, ActionState::Failed, e, None),
        }
    }

    /// Runs or recalls one action; the encoded `ActionResult` frame, or None while it runs.
    pub fn handle(&self, action: Action, collector_now: i64) -> Option<Vec<u8>> {
        let id = action.id;
        // Claim the id first: while this process runs it, a redelivery waits for its result.
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if running.contains(&id) {
                return None;
            }
            running.push(id);
        }
        let frame = self.handle_claimed(action, collector_now);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|r| *r != id);
        frame
    }

    fn handle_claimed(&self, action: Action, collector_now: i64) -> Option<Vec<u8>> {
        let id = action.id;
        // Bound first: a guard in the match scrutinee would be held through the arms.
        let recalled = if action.kind.is_read_only() {
            Recall::Unknown
        } else {
            self.journal().recall(id)
        };
        match recalled {
            Recall::Result(frame) => {
                log!(
                    "info",
                    "action {id} was already handled; sending its result again"
                );
                return Some(frame);
            }
            Recall::Started => {
                let r = ActionResult::new(
                    id,
                    ActionState::Failed,
                    "the agent stopped while this action was running; it was not run again (check the router)",
                    None,
                );
                return self.record(&r, action.deadline, collector_now);
            }
            Recall::Unknown => {}
        }
        let result = match self.check(&action, collector_now) {
            Err(reason) => {
                log!(
                    "warn",
                    "action {id} ({}) refused: {reason}",
                    action.kind.name()
                );
                ActionResult::new(id, ActionState::Refused, reason, None)
            }
            // A ping changes nothing and is answered at once, without writing the journal to
            // the router's flash (a repeat simply pings again).
            Ok(()) if matches!(action.kind, ActionKind::Ping {}) => {
                return Message::ActionResult(self.execute(&action))
                    .to_request_frame()
                    .ok();
            }
            Ok(()) => {
                let started = self
                    .journal()
                    .started(id, action.deadline, now_u64(collector_now));
                if let Err(e) = started {
                    log!(
                        "warn",
                        "action {id} refused: cannot write the action journal: {e}"
                    );
                    let r = ActionResult::new(
                        id,
                        ActionState::Refused,
                        format!("cannot write the action journal: {e}"),
                        None,
                    );
                    return Message::ActionResult(r).to_request_frame().ok();
                }
                log!("info", "running action {id} ({})", action.kind.name());
                let r = self.execute(&action);
                log!(
                    "info",
                    "action {id} ({}): {}",
                    action.kind.name(),
                    r.state.as_str()
                );
                r
            }
        };
        self.record(&result, action.deadline, collector_now)
    }

    fn record(&self, r: &ActionResult, deadline: u64, collector_now: i64) -> Option<Vec<u8>> {
        let frame = Message::ActionResult(r.clone()).to_request_frame().ok()?;
        // The journal never holds secrets (an issued client's key): a repeat gets the result
        // without them.
        let kept = Message::ActionResult(r.without_secrets())
            .to_request_frame()
            .ok()?;
        let saved = self
            .journal()
            .finished(r.id, deadline, &kept, now_u64(collector_now));
        if let Err(e) = saved {
            log!("warn", "cannot journal the result of action {}: {e}", r.id);
        }
        Some(frame)
    }
}

impl ActionRunner for Executor {
    fn run(&self, action: Action, collector_now: i64) -> Option<Vec<u8>> {
        self.handle(action, collector_now)
    }
}

/// A configuration for unit tests: nothing allowed, tools that do not exist, all under `dir`.
#[cfg(test)]
pub(crate) fn tests_cfg(dir: &std::path::Path) -> ActionConfig {
    ActionConfig {
        allow: vec![],
        uci: "/nonexistent/uci".into(),
        uci_confdir: Some(dir.to_path_buf()),
        uci_savedir: None,
        wg: "/nonexistent/wg".into(),
        ifup: "true".into(),
        journal: dir.join("journal"),
        sysupgrade: "/nonexistent/sysupgrade".into(),
        backup_dir: dir.to_path_buf(),
        proc_root: dir.to_path_buf(),
        etc_root: dir.to_path_buf(),
        openvpn: openvpn::OvpnConfig {
            config: dir.join("openvpn/server.conf"),
            easyrsa: "/nonexistent/easyrsa".into(),
            pki: dir.join("pki"),
            remote: None,
            logread: "/nonexistent/logread".into(),
        },
        tc: "/nonexistent/tc".into(),
        nft: "/nonexistent/nft".into(),
        limits_lan_device: None,
        limits_wan_device: None,
        lease_files: vec![],
        ndsctl: "/nonexistent/ndsctl".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerstats_shared::frame::HEADER_LEN;
    use routerstats_shared::MAX_FRAME_LEN;

    fn cfg(dir: &std::path::Path, allow: &[&str]) -> ActionConfig {
        ActionConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            ..tests_cfg(dir)
        }
    }

    fn result_of(frame: &[u8]) -> ActionResult {
        // The agent links no ActionResult decoder; the codec does, in tests.
        let _ = MAX_FRAME_LEN;
        routerstats_shared::codec::decode(&frame[HEADER_LEN..]).unwrap()
    }

    /// Collector time in these tests: deadlines are an hour after.
    fn now() -> i64 {
        crate::uplink::unix_now()
    }

    fn deadline() -> u64 {
        crate::uplink::unix_now() as u64 + 3600
    }

    fn reload(id: i64) -> Action {
        Action {
            id,
            deadline: deadline(),
            kind: ActionKind::WgReload {
                interface: "wg0".into(),
            },
        }
    }

    #[test]
    fn refused_by_default_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Executor::new(cfg(dir.path(), &[]));
        let r = result_of(&ex.handle(reload(1), now()).unwrap());
        assert_eq!(r.state, ActionState::Refused);
        assert!(
            r.output.contains("list allow_actions 'wireguard'"),
            "{}",
            r.output
        );
    }

    #[test]
    fn ping_is_answered_without_a_grant_and_not_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Executor::new(cfg(dir.path(), &[]));
        let ping = Action {
            id: 7,
            deadline: deadline(),
            kind: ActionKind::Ping {},
        };
        let r = result_of(&ex.handle(ping.clone(), now()).unwrap());
        assert_eq!((r.state, r.output.as_str()), (ActionState::Done, "pong"));
        assert!(
            !dir.path().join("journal").exists()
                || std::fs::read(dir.path().join("journal"))
                    .unwrap()
                    .is_empty(),
            "a ping is not journaled"
        );
        // Past its deadline it is refused like any action.
        let r = result_of(&ex.handle(ping, now() + 7200).unwrap());
        assert_eq!(r.state, ActionState::Refused);
    }

    #[test]
    fn expired_unknown_and_invalid_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Executor::new(cfg(dir.path(), &["wireguard"]));
        let r = result_of(&ex.handle(reload(1), now() + 3600).unwrap());
        assert!(
            r.state == ActionState::Refused && r.output.contains("deadline"),
            "{r:?}"
        );
        let unknown = Action {
            id: 2,
            deadline: deadline(),
            kind: ActionKind::Unsupported {
                reason: "unknown action kind".into(),
            },
        };
        assert_eq!(
            result_of(&ex.handle(unknown, now()).unwrap()).state,
            ActionState::Refused
        );
        let bad = Action {
            id: 3,
            deadline: deadline(),
            kind: ActionKind::WgDeletePeer {
                interface: "wg0".into(),
                name: "$(reboot)".into(),
            },
        };
        let r = result_of(&ex.handle(bad, now()).unwrap());
        assert!(
            r.state == ActionState::Refused && r.output.contains("peer name"),
            "{r:?}"
        );
    }

    #[test]
    fn a_repeat_is_answered_from_the_journal_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let mut c = cfg(dir.path(), &["wireguard"]);
        // `ifup` appends to a file each time it runs: it must run once.
        let script = dir.path().join("ifup");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$1\" >> {}\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        c.ifup = script.display().to_string();
        let ex = Executor::new(c.clone());
        let first = ex.handle(reload(9), now()).unwrap();
        assert_eq!(result_of(&first).state, ActionState::Done);
        assert_eq!(ex.handle(reload(9), now()).unwrap(), first);
        drop(ex);
        let ex = Executor::new(c);
        assert_eq!(ex.handle(reload(9), now()).unwrap(), first);
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "wg0\n");
    }

    #[test]
    fn a_redelivery_while_running_waits_for_the_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path(), &["wireguard"]);
        let script = dir.path().join("ifup");
        std::fs::write(&script, "#!/bin/sh\nsleep 1\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        c.ifup = script.display().to_string();
        let ex = std::sync::Arc::new(Executor::new(c));
        let first = {
            let ex = ex.clone();
            std::thread::spawn(move || ex.handle(reload(4), now()))
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            ex.handle(reload(4), now()).is_none(),
            "a second run started"
        );
        assert_eq!(
            result_of(&first.join().unwrap().unwrap()).state,
            ActionState::Done
        );
    }

    #[test]
    fn started_without_result_is_not_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &["wireguard"]);
        Journal::open(c.journal.clone())
            .0
            .started(5, deadline(), now() as u64)
            .unwrap();
        let ex = Executor::new(c);
        let r = result_of(&ex.handle(reload(5), now()).unwrap());
        assert!(
            r.state == ActionState::Failed && r.output.contains("not run again"),
            "{r:?}"
        );
    }
}
