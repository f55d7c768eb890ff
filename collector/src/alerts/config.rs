//! Alert settings: the `[alerts]` table of the collector's TOML file.
//!
//! Thresholds are set for the whole fleet (`[alerts.fleet]`) and overridden per site
//! (`[alerts.site."name"]`) and per router (`[alerts.router."name"]`); the most specific value
//! wins. A threshold of `0` (or `"0s"` for an age) turns its rule off. Receivers are listed as
//! `[[alerts.receivers]]` tables (see [`Receiver`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::parse_duration;

/// A duration written as `"5m"` or a number of seconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum FileDuration {
    Secs(u64),
    Text(String),
}

impl FileDuration {
    pub(crate) fn resolve(&self, key: &str) -> Result<Duration, String> {
        match self {
            FileDuration::Secs(s) => Ok(Duration::from_secs(*s)),
            FileDuration::Text(t) => parse_duration(t).map_err(|e| format!("{key}: {e}")),
        }
    }
}

/// The effective thresholds for one router (fleet, then site, then router overrides).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Router offline after this many report intervals without a report (0: off).
    pub offline_intervals: u32,
    /// WAN interface gone from the router's reports (PPPoE/LTE links drop their interface).
    pub wan_down: bool,
    /// CPU busy above this percentage for `cpu_for` (0: off).
    pub cpu_percent: f64,
    pub cpu_for: Duration,
    /// Memory used (total minus available) above this percentage for `memory_for` (0: off).
    pub memory_percent: f64,
    pub memory_for: Duration,
    /// Overlay disk used above this percentage for `disk_for` (0: off).
    pub disk_percent: f64,
    pub disk_for: Duration,
    /// Wireless clients above `clients_max` / below `clients_min` for `clients_for` (0: off).
    pub clients_max: u32,
    pub clients_min: u32,
    pub clients_for: Duration,
    /// A WireGuard peer without a handshake for longer than this (0s: off).
    pub wg_handshake_age: Duration,
    /// An OpenVPN client seen within `ovpn_lookback` missing from the newest report.
    pub ovpn_client_gone: bool,
    pub ovpn_lookback: Duration,
    /// A station's receive or send rate above this many Mbit/s for `rate_for` (0: off).
    pub station_mbps: f64,
    /// The WAN interface's receive or send rate above this many Mbit/s for `rate_for` (0: off).
    pub wan_mbps: f64,
    pub rate_for: Duration,
    /// The agent's spool dropped reports (its running total went up).
    pub spool_drops: bool,
    /// The router's client certificate expires within this many days (renewal is due from the
    /// last third of its validity, so it has been failing) (0: off).
    pub cert_days: u32,
    /// A firing alert resolves only after its condition has been false this long (hold-down
    /// against flapping; the offline rule resolves at the first report).
    pub keep_firing_for: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            offline_intervals: 3,
            wan_down: true,
            cpu_percent: 90.0,
            cpu_for: Duration::from_secs(300),
            memory_percent: 90.0,
            memory_for: Duration::from_secs(300),
            disk_percent: 90.0,
            disk_for: Duration::from_secs(600),
            clients_max: 0,
            clients_min: 0,
            clients_for: Duration::from_secs(300),
            wg_handshake_age: Duration::ZERO,
            ovpn_client_gone: false,
            ovpn_lookback: Duration::from_secs(3600),
            station_mbps: 0.0,
            wan_mbps: 0.0,
            rate_for: Duration::from_secs(60),
            spool_drops: true,
            cert_days: 14,
            keep_firing_for: Duration::from_secs(120),
        }
    }
}

/// One scope's overrides, as written in the file (every key optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdOverrides {
    offline_intervals: Option<u32>,
    wan_down: Option<bool>,
    cpu_percent: Option<f64>,
    cpu_for: Option<FileDuration>,
    memory_percent: Option<f64>,
    memory_for: Option<FileDuration>,
    disk_percent: Option<f64>,
    disk_for: Option<FileDuration>,
    clients_max: Option<u32>,
    clients_min: Option<u32>,
    clients_for: Option<FileDuration>,
    wg_handshake_age: Option<FileDuration>,
    ovpn_client_gone: Option<bool>,
    ovpn_lookback: Option<FileDuration>,
    station_mbps: Option<f64>,
    wan_mbps: Option<f64>,
    rate_for: Option<FileDuration>,
    spool_drops: Option<bool>,
    cert_days: Option<u32>,
    keep_firing_for: Option<FileDuration>,
}

impl ThresholdOverrides {
    /// Applies these overrides to `t`.
    fn apply(&self, t: &mut Thresholds) -> Result<(), String> {
        macro_rules! plain {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { t.$f = v.clone(); } )* };
        }
        macro_rules! dur {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { t.$f = v.resolve(stringify!($f))?; } )* };
        }
        plain!(
            offline_intervals,
            wan_down,
            cpu_percent,
            memory_percent,
            disk_percent,
            clients_max,
            clients_min,
            ovpn_client_gone,
            station_mbps,
            wan_mbps,
            spool_drops,
            cert_days
        );
        dur!(
            cpu_for,
            memory_for,
            disk_for,
            clients_for,
            wg_handshake_age,
            ovpn_lookback,
            rate_for,
            keep_firing_for
        );
        for (k, v) in [
            ("cpu_percent", t.cpu_percent),
            ("memory_percent", t.memory_percent),
            ("disk_percent", t.disk_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!(
                    "{k} must be between 0 and 100 (0 turns the rule off)"
                ));
            }
        }
        for (k, v) in [("station_mbps", t.station_mbps), ("wan_mbps", t.wan_mbps)] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{k} must be 0 or more (0 turns the rule off)"));
            }
        }
        Ok(())
    }
}

/// How a receiver is reached.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ReceiverKind {
    /// Generic webhook: the documented JSON body (docs/alerts.md), signed with HMAC-SHA256 of
    /// `secret` in `X-Routerstats-Signature` when a secret is set.
    Webhook {
        url: String,
        #[serde(default)]
        secret: Option<String>,
    },
    /// Slack- or Mattermost-compatible incoming webhook (`{"text": ...}`).
    Slack { url: String },
    /// Prometheus Alertmanager: `POST {url}/api/v2/alerts`.
    Alertmanager { url: String },
    /// E-mail over SMTP.
    Email(EmailReceiver),
}

/// SMTP settings of an e-mail receiver.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailReceiver {
    pub smtp_host: String,
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    /// `"starttls"` (the default: refuse a server without STARTTLS), `"tls"` (implicit TLS,
    /// port 465) or `"none"` (plain text; loopback relays only).
    #[serde(default = "default_security")]
    pub security: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// Extra PEM root certificate to trust for the SMTP server (a private CA).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_security() -> String {
    "starttls".into()
}

/// One place alerts are sent to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Receiver {
    pub name: String,
    #[serde(flatten)]
    pub kind: ReceiverKind,
}

/// The `[alerts]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    enabled: Option<bool>,
    eval_interval: Option<FileDuration>,
    report_interval: Option<FileDuration>,
    history_days: Option<u32>,
    queue_max: Option<usize>,
    max_attempts: Option<u32>,
    retry_base: Option<FileDuration>,
    retry_max: Option<FileDuration>,
    send_timeout: Option<FileDuration>,
    fleet: Option<ThresholdOverrides>,
    #[serde(default)]
    site: BTreeMap<String, ThresholdOverrides>,
    #[serde(default)]
    router: BTreeMap<String, ThresholdOverrides>,
    #[serde(default)]
    receivers: Vec<Receiver>,
}

/// The alert settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// Evaluate rules at all.
    pub enabled: bool,
    /// How often the rules are evaluated.
    pub eval_interval: Duration,
    /// The agents' report interval (the offline rule counts in these).
    pub report_interval: Duration,
    /// Resolved alerts older than this many days are deleted.
    pub history_days: u32,
    /// Pending deliveries kept at most; the oldest are dropped (and logged) beyond.
    pub queue_max: usize,
    /// Attempts per delivery before it is given up.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Time allowed for one delivery attempt.
    pub send_timeout: Duration,
    pub fleet: Thresholds,
    site: BTreeMap<String, ThresholdOverrides>,
    router: BTreeMap<String, ThresholdOverrides>,
    pub receivers: Vec<Receiver>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            eval_interval: Duration::from_secs(15),
            report_interval: Duration::from_secs(30),
            history_days: 90,
            queue_max: 10_000,
            max_attempts: 12,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
            send_timeout: Duration::from_secs(10),
            fleet: Thresholds::default(),
            site: BTreeMap::new(),
            router: BTreeMap::new(),
            receivers: Vec::new(),
        }
    }
}

impl AlertsConfig {
    /// Reads the `[alerts]` table (a parsed TOML value) over the defaults.
    pub fn from_value(v: toml::Value) -> Result<AlertsConfig, String> {
        let f: FileAlerts = v.try_into().map_err(|e: toml::de::Error| e.to_string())?;
        let mut c = AlertsConfig::default();
        if let Some(v) = f.enabled {
            c.enabled = v;
        }
        let d = |v: &Option<FileDuration>, key: &str, cur: Duration| match v {
            Some(v) => v.resolve(key),
            None => Ok(cur),
        };
        c.eval_interval = d(&f.eval_interval, "eval_interval", c.eval_interval)?;
        c.report_interval = d(&f.report_interval, "report_interval", c.report_interval)?;
        c.retry_base = d(&f.retry_base, "retry_base", c.retry_base)?;
        c.retry_max = d(&f.retry_max, "retry_max", c.retry_max)?;
        c.send_timeout = d(&f.send_timeout, "send_timeout", c.send_timeout)?;
        if let Some(v) = f.history_days {
            c.history_days = v;
        }
        if let Some(v) = f.queue_max {
            c.queue_max = v;
        }
        if let Some(v) = f.max_attempts {
            c.max_attempts = v;
        }
        if let Some(o) = &f.fleet {
            o.apply(&mut c.fleet).map_err(|e| format!("fleet: {e}"))?;
        }
        // Check every scope now so a bad override fails at start, not at evaluation.
        for (name, o) in &f.site {
            o.apply(&mut c.fleet.clone())
                .map_err(|e| format!("site {name}: {e}"))?;
        }
        for (name, o) in &f.router {
            o.apply(&mut c.fleet.clone())
                .map_err(|e| format!("router {name}: {e}"))?;
        }
        c.site = f.site;
        c.router = f
            .router
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect();
        c.receivers = f.receivers;
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges and receivers.
    pub fn validate(&self) -> Result<(), String> {
        if self.eval_interval < Duration::from_secs(1) {
            return Err("eval_interval must be at least 1s".into());
        }
        if self.report_interval < Duration::from_secs(1) {
            return Err("report_interval must be at least 1s".into());
        }
        if self.history_days == 0 {
            return Err("history_days must be at least 1".into());
        }
        if self.queue_max == 0 || self.max_attempts == 0 {
            return Err("queue_max and max_attempts must be at least 1".into());
        }
        if self.retry_base.is_zero() || self.retry_max < self.retry_base {
            return Err("retry_base must be above 0 and retry_max at least retry_base".into());
        }
        if self.send_timeout.is_zero() {
            return Err("send_timeout must be above 0".into());
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.receivers {
            if r.name.trim().is_empty() || !names.insert(r.name.as_str()) {
                return Err(format!(
                    "receiver names must be set and unique ({:?})",
                    r.name
                ));
            }
            let url = match &r.kind {
                ReceiverKind::Webhook { url, .. }
                | ReceiverKind::Slack { url }
                | ReceiverKind::Alertmanager { url } => Some(url),
                ReceiverKind::Email(e) => {
                    if !matches!(e.security.as_str(), "starttls" | "tls" | "none") {
                        return Err(format!(
                            "receiver {}: security must be starttls, tls or none",
                            r.name
                        ));
                    }
                    if e.to.is_empty() {
                        return Err(format!("receiver {}: `to` must list an address", r.name));
                    }
                    None
                }
            };
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "receiver {}: url must be http:// or https://",
                        r.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The thresholds of one router: fleet values, then its site's, then its own overrides.
    pub fn thresholds_for(&self, site: Option<&str>, router: &str) -> Thresholds {
        let mut t = self.fleet.clone();
        if let Some(o) = site.and_then(|s| self.site.get(s)) {
            let _ = o.apply(&mut t);
        }
        if let Some(o) = self.router.get(&router.to_lowercase()) {
            let _ = o.apply(&mut t);
        }
        t
    }

    /// Whether any scope turns on a rule whose data must be queried (`pick` reads the setting).
    pub fn any_scope(&self, mut pick: impl FnMut(&Thresholds) -> bool) -> bool {
        if pick(&self.fleet) {
            return true;
        }
        let scopes = self.site.values().chain(self.router.values());
        scopes.into_iter().any(|o| {
            let mut t = self.fleet.clone();
            o.apply(&mut t).is_ok() && pick(&t)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig, String> {
        let v: toml::Value = toml::from_str(text).unwrap();
        AlertsConfig::from_value(v)
    }

    #[test]
    fn scopes_override_in_order() {
        let c = parse(
            r#"
            [fleet]
            cpu_percent = 80
            cpu_for = "2m"
            [site.north]
            cpu_percent = 70
            wan_mbps = 100
            [router.Edge1]
            cpu_percent = 0
            "#,
        )
        .unwrap();
        assert_eq!(c.thresholds_for(None, "x").cpu_percent, 80.0);
        assert_eq!(
            c.thresholds_for(None, "x").cpu_for,
            Duration::from_secs(120)
        );
        let north = c.thresholds_for(Some("north"), "x");
        assert_eq!((north.cpu_percent, north.wan_mbps), (70.0, 100.0));
        let edge = c.thresholds_for(Some("north"), "edge1");
        assert_eq!((edge.cpu_percent, edge.wan_mbps), (0.0, 100.0));
        assert!(c.any_scope(|t| t.wan_mbps > 0.0));
        assert!(!c.any_scope(|t| t.station_mbps > 0.0));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(parse("[fleet]\ncpu_percent = 120")
            .unwrap_err()
            .contains("cpu_percent"));
        assert!(parse("[router.a]\ncpu_for = \"soon\"")
            .unwrap_err()
            .contains("router a"));
        assert!(parse("[fleet]\ncpu_percnt = 1")
            .unwrap_err()
            .contains("cpu_percnt"));
        assert!(parse("[[receivers]]\nname = \"a\"\nkind = \"pager\"").is_err());
        let dup = "[[receivers]]\nname = \"a\"\nkind = \"slack\"\nurl = \"http://x\"\n\
                   [[receivers]]\nname = \"a\"\nkind = \"slack\"\nurl = \"http://y\"";
        assert!(parse(dup).unwrap_err().contains("unique"));
        assert!(
            parse("[[receivers]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"ftp://x\"")
                .unwrap_err()
                .contains("http")
        );
    }

    #[test]
    fn receivers_parse() {
        let c = parse(
            r#"
            [[receivers]]
            name = "hook"
            kind = "webhook"
            url = "http://127.0.0.1:9/x"
            secret = "s3"
            [[receivers]]
            name = "mail"
            kind = "email"
            smtp_host = "127.0.0.1"
            from = "a@example.net"
            to = ["b@example.net"]
            "#,
        )
        .unwrap();
        assert_eq!(c.receivers.len(), 2);
        assert!(
            matches!(&c.receivers[0].kind, ReceiverKind::Webhook { secret: Some(s), .. } if s == "s3")
        );
        assert!(
            matches!(&c.receivers[1].kind, ReceiverKind::Email(e) if e.smtp_port == 587 && e.security == "starttls")
        );
    }
}
