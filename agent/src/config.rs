//! Agent configuration: built-in defaults for a stock OpenWrt router, overridden by the UCI file
//! `/etc/config/routerstats` (section `config agent`), overridden by command-line flags.
//!
//! Every path and command the agent reads is here, so tests and users can point the agent at a
//! fake root or at other tools.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::uci;

/// Default location of the UCI config file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/config/routerstats";

/// Action families an agent knows (`list allow_actions` values).
pub const KNOWN_FAMILIES: &[&str] = &[
    routerstats_shared::action::FAMILY_WIREGUARD,
    routerstats_shared::action::FAMILY_BACKUP,
    routerstats_shared::action::FAMILY_STATUS,
    routerstats_shared::action::FAMILY_LIMITS,
    routerstats_shared::action::FAMILY_ANTI_SHARING,
    routerstats_shared::action::FAMILY_OPENVPN,
    routerstats_shared::action::FAMILY_HOTSPOT,
    routerstats_shared::action::FAMILY_PPPOE,
    routerstats_shared::action::FAMILY_BRIDGE,
];

/// Which sources a cycle reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub wifi: bool,
    pub dhcp: bool,
    pub wireguard: bool,
    pub openvpn: bool,
    pub system: bool,
    pub interfaces: bool,
    /// Active ICMP probes (gateways and `probe_target`s).
    pub probes: bool,
    /// WAN device addresses.
    pub wan: bool,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            wifi: true,
            dhcp: true,
            wireguard: true,
            openvpn: true,
            system: true,
            interfaces: true,
            probes: true,
            wan: true,
        }
    }
}

/// What the active probes target and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Probe the default gateways (`option probe_gateway`).
    pub gateway: bool,
    /// `list probe_target` (`addr` or `name=addr`).
    pub targets: Vec<crate::probes::Target>,
    pub options: crate::probes::ProbeOptions,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            gateway: true,
            targets: Vec::new(),
            options: Default::default(),
        }
    }
}

/// Everything the agent needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// `host:port` of the collector's ingest listener.
    pub collector: Option<String>,
    /// Where the key, certificate, CA and enrollment record live.
    pub config_dir: PathBuf,
    pub interval: Duration,
    /// Delay before the first report; a random delay up to `interval` when None, so a fleet
    /// that boots together does not report in lockstep.
    pub initial_delay: Option<Duration>,
    /// Reports kept while the collector is unreachable; the oldest are dropped beyond this.
    pub spool_reports: usize,
    /// Optional file that keeps the spool across agent restarts.
    pub spool_file: Option<PathBuf>,
    /// Root of the proc filesystem (`/proc`).
    pub proc_root: PathBuf,
    /// Root of the configuration files (`/etc`): board.json, openwrt_release, config/network.
    pub etc_root: PathBuf,
    pub iw: String,
    pub wg: String,
    pub df: String,
    pub lease_files: Vec<PathBuf>,
    /// OpenVPN status files; a directory means every file in it whose name contains `status`.
    pub openvpn_status: Vec<PathBuf>,
    /// Mount points whose usage is reported.
    pub disks: Vec<String>,
    pub sources: Sources,
    pub probe: ProbeConfig,
    /// Action families the collector may run here (`list allow_actions`); none by default.
    pub allow_actions: Vec<String>,
    /// The `uci` tool for actions, its config directory (`-c`) and change directory (`-t`).
    pub uci: String,
    pub uci_confdir: Option<PathBuf>,
    pub uci_savedir: Option<PathBuf>,
    /// Restarts an interface (the WireGuard reload action).
    pub ifup: String,
    /// Makes configuration backups (`sysupgrade -b FILE`), written under `backup_dir`.
    pub sysupgrade: String,
    pub backup_dir: PathBuf,
    /// The OpenVPN server the `openvpn` actions manage: its config file, easy-rsa and its PKI,
    /// the public address written into client configurations, and the syslog reader.
    pub openvpn_config: PathBuf,
    pub easyrsa: String,
    pub easyrsa_pki: PathBuf,
    pub openvpn_remote: Option<String>,
    pub logread: String,
    /// `tc` and `nft` (bandwidth limits and anti-sharing).
    pub tc: String,
    pub nft: String,
    /// Devices the limits shape: downloads on the LAN side, uploads on the WAN side. None: the
    /// `device` of UCI network's `lan` / `wan` interface (`br-lan` when `lan` has none).
    pub limits_lan_device: Option<String>,
    pub limits_wan_device: Option<String>,
    /// openNDS's control tool (hotspot actions).
    pub ndsctl: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            collector: None,
            config_dir: PathBuf::from("/etc/routerstats"),
            interval: Duration::from_secs(30),
            initial_delay: None,
            spool_reports: 1000,
            spool_file: None,
            proc_root: PathBuf::from("/proc"),
            etc_root: PathBuf::from("/etc"),
            iw: "iw".into(),
            wg: "wg".into(),
            df: "df".into(),
            lease_files: vec![PathBuf::from("/tmp/dhcp.leases")],
            openvpn_status: vec![PathBuf::from("/var/run")],
            disks: vec!["/overlay".into(), "/".into()],
            sources: Sources::default(),
            probe: ProbeConfig::default(),
            allow_actions: Vec::new(),
            uci: "uci".into(),
            uci_confdir: None,
            uci_savedir: None,
            ifup: "ifup".into(),
            sysupgrade: "sysupgrade".into(),
            backup_dir: PathBuf::from("/tmp"),
            openvpn_config: PathBuf::from("/etc/openvpn/server.conf"),
            easyrsa: "easyrsa".into(),
            easyrsa_pki: PathBuf::from("/etc/easy-rsa/pki"),
            openvpn_remote: None,
            logread: "logread".into(),
            tc: "tc".into(),
            nft: "nft".into(),
            limits_lan_device: None,
            limits_wan_device: None,
            ndsctl: "ndsctl".into(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("config file {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("invalid value for {key}: {value:?} ({reason})")]
    Value {
        key: String,
        value: String,
        reason: &'static str,
    },
    #[error(
        "invalid value for probe_target: {value:?} ({reason}; expected an address or name=address)"
    )]
    Target { value: String, reason: String },
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "yes" | "on" | "true" | "enabled" => Ok(true),
        "0" | "no" | "off" | "false" | "disabled" => Ok(false),
        _ => Err(ConfigError::Value {
            key: key.into(),
            value: v.into(),
            reason: "expected 0 or 1",
        }),
    }
}

/// Parses a duration in seconds, or with a unit suffix: `30`, `30s`, `5m`, `1h`, `500ms`.
pub fn parse_duration(key: &str, v: &str) -> Result<Duration, ConfigError> {
    let bad = |reason| ConfigError::Value {
        key: key.into(),
        value: v.into(),
        reason,
    };
    if let Some(ms) = v.strip_suffix("ms") {
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| bad("expected seconds, or a number with ms/s/m/h"))?;
        if ms == 0 {
            return Err(bad("must be more than 0"));
        }
        return Ok(Duration::from_millis(ms));
    }
    let (num, mult) = match v.strip_suffix('s') {
        Some(n) => (n, 1),
        None => match v.strip_suffix('m') {
            Some(n) => (n, 60),
            None => match v.strip_suffix('h') {
                Some(n) => (n, 3600),
                None => (v, 1),
            },
        },
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| bad("expected seconds, or a number with ms/s/m/h"))?;
    let secs = n.checked_mul(mult).ok_or_else(|| bad("too large"))?;
    if secs == 0 {
        return Err(bad("must be at least 1 second"));
    }
    Ok(Duration::from_secs(secs))
}

fn parse_count(key: &str, v: &str) -> Result<usize, ConfigError> {
    v.parse().map_err(|_| ConfigError::Value {
        key: key.into(),
        value: v.into(),
        reason: "expected a whole number",
    })
}

impl AgentConfig {
    /// Applies one `key = value` setting (the UCI option names; command-line flags use the same).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "collector" => self.collector = Some(value.to_string()).filter(|v| !v.is_empty()),
            "config_dir" => self.config_dir = value.into(),
            "interval" => self.interval = parse_duration(key, value)?,
            "initial_delay" => {
                self.initial_delay = Some(if value == "0" {
                    Duration::ZERO
                } else {
                    parse_duration(key, value)?
                })
            }
            "spool_reports" | "spool_size" => self.spool_reports = parse_count(key, value)?.max(1),
            "spool_file" => {
                self.spool_file = Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty())
            }
            "proc_root" => self.proc_root = value.into(),
            "etc_root" => self.etc_root = value.into(),
            "iw" => self.iw = value.into(),
            "wg" => self.wg = value.into(),
            "df" => self.df = value.into(),
            "wifi" => self.sources.wifi = parse_bool(key, value)?,
            "dhcp" => self.sources.dhcp = parse_bool(key, value)?,
            "wireguard" => self.sources.wireguard = parse_bool(key, value)?,
            "openvpn" => self.sources.openvpn = parse_bool(key, value)?,
            "system" => self.sources.system = parse_bool(key, value)?,
            "interfaces" => self.sources.interfaces = parse_bool(key, value)?,
            "probes" => self.sources.probes = parse_bool(key, value)?,
            "wan" => self.sources.wan = parse_bool(key, value)?,
            "probe_gateway" => self.probe.gateway = parse_bool(key, value)?,
            "probe_count" => {
                let n = parse_count(key, value)?;
                if !(1..=20).contains(&n) {
                    return Err(ConfigError::Value {
                        key: key.into(),
                        value: value.into(),
                        reason: "expected 1 to 20",
                    });
                }
                self.probe.options.count = n as u16;
            }
            "probe_interval" | "probe_timeout" => {
                let d = parse_duration(key, value)?;
                if d > Duration::from_secs(10) {
                    return Err(ConfigError::Value {
                        key: key.into(),
                        value: value.into(),
                        reason: "at most 10 seconds",
                    });
                }
                if key == "probe_interval" {
                    self.probe.options.interval = d;
                } else {
                    self.probe.options.timeout = d;
                }
            }
            "uci" => self.uci = value.into(),
            "uci_confdir" => {
                self.uci_confdir = Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty())
            }
            "uci_savedir" => {
                self.uci_savedir = Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty())
            }
            "ifup" => self.ifup = value.into(),
            "sysupgrade" => self.sysupgrade = value.into(),
            "backup_dir" => self.backup_dir = value.into(),
            "openvpn_config" => self.openvpn_config = value.into(),
            "easyrsa" => self.easyrsa = value.into(),
            "easyrsa_pki" => self.easyrsa_pki = value.into(),
            "openvpn_remote" => {
                self.openvpn_remote = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "logread" => self.logread = value.into(),
            "tc" => self.tc = value.into(),
            "nft" => self.nft = value.into(),
            "limits_lan_device" => {
                self.limits_lan_device = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "limits_wan_device" => {
                self.limits_wan_device = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "ndsctl" => self.ndsctl = value.into(),
            // Options the init script uses, not the agent.
            "enabled" | "token" | "name" => {}
            _ => {
                return Err(ConfigError::Value {
                    key: key.into(),
                    value: value.into(),
                    reason: "unknown setting",
                })
            }
        }
        Ok(())
    }

    /// Replaces a list setting (`lease_file`, `openvpn_status`, `disk`, `allow_actions`,
    /// `probe_target`).
    pub fn set_list(&mut self, key: &str, values: Vec<String>) -> Result<(), ConfigError> {
        match key {
            "lease_file" => self.lease_files = values.into_iter().map(PathBuf::from).collect(),
            "openvpn_status" => {
                self.openvpn_status = values.into_iter().map(PathBuf::from).collect()
            }
            "disk" => self.disks = values,
            "probe_target" => {
                let mut targets = Vec::with_capacity(values.len());
                for v in &values {
                    let t =
                        crate::probes::parse_target(v).map_err(|reason| ConfigError::Target {
                            value: v.clone(),
                            reason,
                        })?;
                    targets.push(t);
                }
                self.probe.targets = targets;
            }
            "allow_actions" => {
                for v in &values {
                    if !KNOWN_FAMILIES.contains(&v.as_str()) {
                        return Err(ConfigError::Value { key: key.into(), value: v.clone(), reason: "unknown action family (known: wireguard, backup, status, limits, anti_sharing, openvpn, hotspot, pppoe, bridge)" });
                    }
                }
                self.allow_actions = values;
            }
            _ => {
                return Err(ConfigError::Value {
                    key: key.into(),
                    value: values.join(" "),
                    reason: "unknown list",
                })
            }
        }
        Ok(())
    }

    /// Applies the `config agent` section of UCI text.
    pub fn apply_uci(&mut self, text: &str, path: &str) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.into(),
            reason,
        };
        if text.trim().is_empty() {
            // An empty file configures nothing: the defaults stand.
            return Ok(());
        }
        let parsed = uci::parse(text).map_err(|e| invalid(e.to_string()))?;
        if let Some(first) = parsed.skipped.first() {
            return Err(invalid(first.to_string()));
        }
        let Some(section) = parsed.value.iter().find(|s| s.kind == "agent") else {
            return Err(invalid("no `config agent` section".into()));
        };
        for (k, v) in &section.options {
            if matches!(
                k.as_str(),
                "lease_file" | "openvpn_status" | "disk" | "allow_actions" | "probe_target"
            ) {
                self.set_list(k, vec![v.clone()])?;
            } else {
                self.set(k, v)?;
            }
        }
        for key in [
            "lease_file",
            "openvpn_status",
            "disk",
            "allow_actions",
            "probe_target",
        ] {
            let values = section.list(key);
            if !values.is_empty() {
                self.set_list(key, values.into_iter().map(String::from).collect())?;
            }
        }
        Ok(())
    }

    /// Loads the UCI file at `path` over the defaults. A missing file at the default path is fine
    /// (the defaults stand); a missing file the user named is an error.
    pub fn load(path: Option<&Path>) -> Result<AgentConfig, ConfigError> {
        let mut cfg = AgentConfig::default();
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => cfg.apply_uci(&text, &path.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {}
            Err(err) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    err,
                })
            }
        }
        Ok(cfg)
    }

    /// A path under the proc root: `proc_path("net/dev")`.
    pub fn proc_path(&self, rel: &str) -> PathBuf {
        self.proc_root.join(rel)
    }

    /// A path under the etc root: `etc_path("board.json")`.
    pub fn etc_path(&self, rel: &str) -> PathBuf {
        self.etc_root.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uci_overrides_defaults() {
        let text = "config agent 'main'\n\toption collector 'c:7443'\n\toption interval '10'\n\toption wireguard '0'\n\tlist lease_file '/a'\n\tlist lease_file '/b'\n\toption proc_root '/fake/proc'\n";
        let mut cfg = AgentConfig::default();
        cfg.apply_uci(text, "test").unwrap();
        assert_eq!(cfg.collector.as_deref(), Some("c:7443"));
        assert_eq!(cfg.interval, Duration::from_secs(10));
        assert!(!cfg.sources.wireguard);
        assert!(cfg.sources.wifi);
        assert_eq!(
            cfg.lease_files,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(
            cfg.proc_path("net/dev"),
            PathBuf::from("/fake/proc/net/dev")
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut cfg = AgentConfig::default();
        let err = cfg.set("interval", "soon").unwrap_err().to_string();
        assert!(err.contains("interval") && err.contains("soon"), "{err}");
        assert!(cfg.set("wifi", "maybe").is_err());
        assert!(cfg
            .set("nonsense", "1")
            .unwrap_err()
            .to_string()
            .contains("unknown setting"));
        assert!(cfg
            .apply_uci("config other 'x'\n", "f")
            .unwrap_err()
            .to_string()
            .contains("no `config agent`"));
        assert!(cfg.apply_uci("config agent\n\toption x 'y\n", "f").is_err());
    }

    #[test]
    fn allow_actions_list_and_tools() {
        let text = "config agent 'main'\n\tlist allow_actions 'wireguard'\n\toption uci '/usr/bin/uci'\n\toption uci_confdir '/r/etc/config'\n";
        let mut cfg = AgentConfig::default();
        assert!(cfg.allow_actions.is_empty());
        cfg.apply_uci(text, "t").unwrap();
        assert_eq!(cfg.allow_actions, vec!["wireguard".to_string()]);
        assert_eq!(
            (cfg.uci.as_str(), cfg.uci_confdir.as_deref()),
            ("/usr/bin/uci", Some(Path::new("/r/etc/config")))
        );
        let err = cfg
            .apply_uci("config agent\n\tlist allow_actions 'everything'\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown action family"), "{err}");
    }

    #[test]
    fn probe_settings() {
        let text = "config agent 'main'\n\tlist probe_target 'dns=192.0.2.53'\n\tlist probe_target '2001:db8::1'\n\toption probe_count '5'\n\toption probe_timeout '500ms'\n\toption probe_gateway '0'\n";
        let mut cfg = AgentConfig::default();
        assert!(cfg.sources.probes && cfg.probe.gateway && cfg.probe.targets.is_empty());
        cfg.apply_uci(text, "t").unwrap();
        let names: Vec<_> = cfg
            .probe
            .targets
            .iter()
            .map(|t| (t.name.as_str(), t.addr.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("dns", "192.0.2.53".to_string()),
                ("2001:db8::1", "2001:db8::1".to_string())
            ]
        );
        assert_eq!(
            (cfg.probe.options.count, cfg.probe.options.timeout),
            (5, Duration::from_millis(500))
        );
        assert!(!cfg.probe.gateway);
        let err = cfg
            .apply_uci("config agent\n\tlist probe_target 'example.com'\n", "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("probe_target") && err.contains("example.com"),
            "{err}"
        );
        assert!(cfg.set("probe_count", "0").is_err());
        assert!(cfg.set("probe_count", "21").is_err());
        assert!(cfg.set("probe_timeout", "11s").is_err());
        assert!(cfg.set("probes", "maybe").is_err());
    }

    /// The config file the package installs parses, and its probe settings are the defaults.
    #[test]
    fn packaged_default_config_parses() {
        let text = include_str!("../../packaging/files/etc/config/routerstats");
        let mut cfg = AgentConfig::default();
        cfg.apply_uci(text, "packaging/files/etc/config/routerstats")
            .unwrap();
        assert!(cfg.sources.probes && cfg.sources.wan && cfg.probe.gateway);
        assert_eq!(cfg.probe, ProbeConfig::default());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("i", "45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("i", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("i", "1h").unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_duration("i", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_duration("i", "0ms").is_err());
        assert!(parse_duration("i", "0").is_err());
        assert!(parse_duration("i", "-1").is_err());
    }

    #[test]
    fn missing_default_file_is_fine_but_named_file_is_not() {
        assert!(AgentConfig::load(Some(Path::new("/nonexistent/routerstats"))).is_err());
        assert_eq!(
            AgentConfig::load(Some(Path::new("/dev/null"))).unwrap(),
            AgentConfig::default()
        );
    }
}
