//! Collector configuration: defaults, an optional TOML file (`--config FILE`) and validation.
//!
//! Every key is optional; `collector/collector.example.toml` documents them all. Durations are
//! strings like `"10s"` or `"250ms"` (see `crate::duration`) or integers meaning seconds.
//! Command-line flags override the file; [`Config::validate`] checks the merged result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use routerstats_shared::MAX_FRAME_LEN;
use serde::Deserialize;

use crate::duration::parse_duration;
use crate::pki::MAX_CLIENT_CERT_DAYS;
use crate::store::Retention;

/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "routerstats-data";
/// Name of the SQLite database inside the data dir.
pub const DB_FILE: &str = "routerstats.db";

/// The collector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Holds the CA, the server certificate and the database.
    pub data_dir: PathBuf,
    /// TLS listener for enrollment and reports.
    pub ingest_listen: SocketAddr,
    /// HTTP listener of the API.
    pub api_listen: SocketAddr,
    /// Extra DNS names / IP addresses for the server certificate.
    pub server_names: Vec<String>,
    /// Validity of issued router certificates.
    pub client_cert_days: u32,
    /// Authenticated router connections at most (after `Hello`); more are refused.
    pub max_connections: usize,
    /// Not-yet-authenticated ingest connections at most (from accept to the first frame, and
    /// enrollments); a separate pool, so they cannot take the routers' slots.
    pub preauth_max_connections: usize,
    /// Not-yet-authenticated ingest connections per address (IPv4, or IPv6 /64) at most, while
    /// that pool is at least half full.
    pub preauth_per_address: usize,
    /// Time from accept to the first frame (TLS handshake included).
    pub preauth_timeout: Duration,
    /// Open HTTP API connections at most (when full, a client from another address takes the
    /// oldest connection of the address holding the most; otherwise it is closed).
    pub api_max_connections: usize,
    /// Open HTTP API connections per client address at most while at least half of
    /// `api_max_connections` are open (more are closed at once).
    pub api_max_per_address: usize,
    /// Time a client has to send a request's headers, counted from the connection's start or
    /// from the previous response: slow headers and idle keep-alive connections are closed.
    pub api_header_timeout: Duration,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Idle time after which an ingest connection is closed (longer than the agents' interval).
    pub read_timeout: Duration,
    /// Largest accepted frame payload (at most [`MAX_FRAME_LEN`]).
    pub max_frame: u32,
    /// Reports committed in one SQLite transaction at most.
    pub batch_max: usize,
    /// How long the writer waits to fill a batch after its first report.
    pub batch_latency: Duration,
    /// How long the writer may hold rollup sums in memory (zero: write them with every batch).
    pub rollup_hold: Duration,
    /// While the writer has a backlog and the API is read, how stale the rollup sums that API
    /// reads see may be (zero: every read waits for every acked report's sums).
    pub rollup_read_lag: Duration,
    /// How often the database is polled for revoked routers.
    pub revocation_poll: Duration,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// How long data is kept.
    pub retention: Retention,
    /// Longest age of a cached fleet-wide API answer (see `api::cache`); zero disables the cache.
    pub api_cache_max_age: Duration,
    /// Total body bytes the API response cache holds at most.
    pub api_cache_max_bytes: usize,
    /// Threads that run the API's database reads (at most this many reads at once).
    pub api_read_threads: usize,
    /// Nice value of those threads (0 to 19; 0: the process's priority): ingest first when busy.
    pub api_read_nice: i32,
    /// Nice value of the network runtime's threads (TLS, frames, acks, HTTP; 0 to 19; 0: the
    /// process's priority): the database writer first when the CPU is contended.
    pub network_nice: i32,
    /// Alert rules, thresholds and receivers (`[alerts]`, see `crate::alerts::config`).
    pub alerts: crate::alerts::AlertsConfig,
    /// Prometheus remote-write output (`[remote_write]`, see `crate::remote_write`); off without a URL.
    pub remote_write: crate::remote_write::RemoteWriteConfig,
    /// How long an action waits for its router before it expires (requests may ask less).
    pub action_ttl: Duration,
    /// Defaults of the WireGuard manager's write routes (`[wireguard]` in the file).
    pub wireguard: crate::actions::WgDefaults,
    /// Backup archives kept per router.
    pub backup_keep: usize,
    /// The ISP middleware routes' per-route limits (`[isp_rate_limits]`: `default_per_hour`, and
    /// `[isp_rate_limits.routes]` with `"METHOD /path" = per_hour` entries).
    pub isp_rate_limits: crate::api::rate_limit::RouteLimits,
    /// JWT bearer tokens (`[jwt]`); None: only API keys are accepted.
    pub jwt: Option<crate::api::jwt::JwtConfig>,
    /// Browser origins allowed to call the API (`cors_allowed_origins`); none by default.
    pub cors: crate::api::cors::CorsOrigins,
    /// Whether `GET /metrics` writes the per-station families when its query does not say
    /// (`[metrics] stations`; default false: 1 million series at 10,000 routers).
    pub metrics_stations: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            ingest_listen: SocketAddr::from(([0, 0, 0, 0], 7443)),
            api_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            server_names: Vec::new(),
            client_cert_days: 90,
            max_connections: 4096,
            preauth_max_connections: 1024,
            preauth_per_address: 128,
            preauth_timeout: Duration::from_secs(10),
            api_max_connections: 1024,
            api_max_per_address: 256,
            api_header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            max_frame: MAX_FRAME_LEN,
            batch_max: 2048,
            batch_latency: Duration::from_millis(20),
            rollup_hold: Duration::from_secs(10),
            rollup_read_lag: Duration::from_secs(1),
            revocation_poll: Duration::from_millis(250),
            retention_interval: Duration::from_secs(3600),
            retention: Retention::default(),
            api_cache_max_age: Duration::from_secs(10),
            api_cache_max_bytes: 256 * 1024 * 1024,
            api_read_threads: 4,
            api_read_nice: 10,
            network_nice: 5,
            alerts: crate::alerts::AlertsConfig::default(),
            remote_write: crate::remote_write::RemoteWriteConfig::default(),
            action_ttl: crate::actions::DEFAULT_TTL,
            wireguard: crate::actions::WgDefaults::default(),
            backup_keep: 10,
            isp_rate_limits: crate::api::rate_limit::RouteLimits::default(),
            jwt: None,
            cors: crate::api::cors::CorsOrigins::default(),
            metrics_stations: false,
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// A duration in the file: `"10s"` or an integer number of seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileDuration {
    Secs(u64),
    Text(String),
}

impl FileDuration {
    fn resolve(self, key: &'static str) -> Result<Duration, ConfigError> {
        match self {
            FileDuration::Secs(s) => Ok(Duration::from_secs(s)),
            FileDuration::Text(t) => parse_duration(&t).map_err(|e| ConfigError::Invalid {
                key,
                reason: e.to_string(),
            }),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetention {
    raw_days: Option<u32>,
    rollup_5m_days: Option<u32>,
    rollup_1h_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    ingest_listen: Option<SocketAddr>,
    api_listen: Option<SocketAddr>,
    server_names: Option<Vec<String>>,
    client_cert_days: Option<u32>,
    max_connections: Option<usize>,
    preauth_max_connections: Option<usize>,
    preauth_per_address: Option<usize>,
    preauth_timeout: Option<FileDuration>,
    api_max_connections: Option<usize>,
    api_max_per_address: Option<usize>,
    api_header_timeout: Option<FileDuration>,
    handshake_timeout: Option<FileDuration>,
    read_timeout: Option<FileDuration>,
    max_frame: Option<u32>,
    batch_max: Option<usize>,
    batch_latency: Option<FileDuration>,
    rollup_hold: Option<FileDuration>,
    rollup_read_lag: Option<FileDuration>,
    revocation_poll: Option<FileDuration>,
    retention_interval: Option<FileDuration>,
    retention: Option<FileRetention>,
    api_cache_max_age: Option<FileDuration>,
    api_cache_max_bytes: Option<usize>,
    api_read_threads: Option<usize>,
    api_read_nice: Option<i32>,
    network_nice: Option<i32>,
    alerts: Option<toml::Value>,
    remote_write: Option<toml::Value>,
    action_ttl: Option<FileDuration>,
    backup_keep: Option<usize>,
    wireguard: Option<FileWireguard>,
    isp_rate_limits: Option<FileIspRateLimits>,
    jwt: Option<FileJwt>,
    cors_allowed_origins: Option<Vec<String>>,
    metrics: Option<FileMetrics>,
}

/// `[metrics]`: defaults of `GET /metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    stations: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIspRateLimits {
    default_per_hour: Option<u32>,
    /// `"METHOD /path" = per_hour`.
    routes: Option<std::collections::BTreeMap<String, u32>>,
}

/// `[jwt]`: exactly one of `secret_file` (HS256) and `public_key_file` (ES256/RS256 PEM).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJwt {
    secret_file: Option<PathBuf>,
    public_key_file: Option<PathBuf>,
    role_claim: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Option<FileDuration>,
}

impl FileJwt {
    fn resolve(self) -> Result<crate::api::jwt::JwtConfig, ConfigError> {
        use crate::api::jwt::{JwtConfig, JwtKeySource};
        let key = match (self.secret_file, self.public_key_file) {
            (Some(s), None) => JwtKeySource::SecretFile(s),
            (None, Some(p)) => JwtKeySource::PublicKeyFile(p),
            _ => {
                return Err(ConfigError::Invalid {
                    key: "jwt",
                    reason: "set exactly one of secret_file (HS256) and public_key_file (ES256 or RS256 PEM)".into(),
                })
            }
        };
        let mut c = JwtConfig::new(key);
        if let Some(v) = self.role_claim {
            c.role_claim = v;
        }
        c.issuer = self.issuer;
        c.audience = self.audience;
        if let Some(v) = self.leeway {
            c.leeway = v.resolve("jwt.leeway")?;
        }
        Ok(c)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWireguard {
    default_router: Option<String>,
    default_interface: Option<String>,
    endpoint: Option<String>,
    dns: Option<String>,
}

impl Config {
    /// Loads a TOML file over the defaults (and validates it).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text over the defaults (and validates it).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            message: e.to_string(),
        })?;
        let mut c = Config::default();
        if let Some(v) = file.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = file.ingest_listen {
            c.ingest_listen = v;
        }
        if let Some(v) = file.api_listen {
            c.api_listen = v;
        }
        if let Some(v) = file.server_names {
            c.server_names = v;
        }
        if let Some(v) = file.client_cert_days {
            c.client_cert_days = v;
        }
        if let Some(v) = file.max_connections {
            c.max_connections = v;
        }
        if let Some(v) = file.preauth_max_connections {
            c.preauth_max_connections = v;
        }
        if let Some(v) = file.preauth_per_address {
            c.preauth_per_address = v;
        }
        if let Some(v) = file.preauth_timeout {
            c.preauth_timeout = v.resolve("preauth_timeout")?;
        }
        if let Some(v) = file.api_max_connections {
            c.api_max_connections = v;
        }
        if let Some(v) = file.api_max_per_address {
            c.api_max_per_address = v;
        }
        if let Some(v) = file.api_header_timeout {
            c.api_header_timeout = v.resolve("api_header_timeout")?;
        }
        if let Some(v) = file.handshake_timeout {
            c.handshake_timeout = v.resolve("handshake_timeout")?;
        }
        if let Some(v) = file.read_timeout {
            c.read_timeout = v.resolve("read_timeout")?;
        }
        if let Some(v) = file.max_frame {
            c.max_frame = v;
        }
        if let Some(v) = file.batch_max {
            c.batch_max = v;
        }
        if let Some(v) = file.batch_latency {
            c.batch_latency = v.resolve("batch_latency")?;
        }
        if let Some(v) = file.rollup_hold {
            c.rollup_hold = v.resolve("rollup_hold")?;
        }
        if let Some(v) = file.rollup_read_lag {
            c.rollup_read_lag = v.resolve("rollup_read_lag")?;
        }
        if let Some(v) = file.revocation_poll {
            c.revocation_poll = v.resolve("revocation_poll")?;
        }
        if let Some(v) = file.retention_interval {
            c.retention_interval = v.resolve("retention_interval")?;
        }
        if let Some(v) = file.api_cache_max_age {
            c.api_cache_max_age = v.resolve("api_cache_max_age")?;
        }
        if let Some(v) = file.api_cache_max_bytes {
            c.api_cache_max_bytes = v;
        }
        if let Some(v) = file.api_read_threads {
            c.api_read_threads = v;
        }
        if let Some(v) = file.api_read_nice {
            c.api_read_nice = v;
        }
        if let Some(v) = file.network_nice {
            c.network_nice = v;
        }
        if let Some(v) = file.alerts {
            c.alerts = crate::alerts::AlertsConfig::from_value(v).map_err(|reason| {
                ConfigError::Invalid {
                    key: "alerts",
                    reason,
                }
            })?;
        }
        if let Some(v) = file.remote_write {
            c.remote_write =
                crate::remote_write::RemoteWriteConfig::from_value(v).map_err(|reason| {
                    ConfigError::Invalid {
                        key: "remote_write",
                        reason,
                    }
                })?;
        }
        if let Some(v) = file.action_ttl {
            c.action_ttl = v.resolve("action_ttl")?;
        }
        if let Some(v) = file.backup_keep {
            c.backup_keep = v;
        }
        if let Some(j) = file.jwt {
            c.jwt = Some(j.resolve()?);
        }
        if let Some(m) = file.metrics {
            c.metrics_stations = m.stations.unwrap_or(c.metrics_stations);
        }
        if let Some(o) = file.cors_allowed_origins {
            c.cors =
                crate::api::cors::CorsOrigins::parse(&o).map_err(|e| ConfigError::Invalid {
                    key: "cors_allowed_origins",
                    reason: e.to_string(),
                })?;
        }
        if let Some(w) = file.wireguard {
            c.wireguard.router = w.default_router.or(c.wireguard.router);
            c.wireguard.interface = w.default_interface.unwrap_or(c.wireguard.interface);
            c.wireguard.endpoint = w.endpoint.or(c.wireguard.endpoint);
            c.wireguard.dns = w.dns.or(c.wireguard.dns);
        }
        if let Some(l) = file.isp_rate_limits {
            let routes: Vec<(String, u32)> = l.routes.unwrap_or_default().into_iter().collect();
            c.isp_rate_limits
                .apply(l.default_per_hour, &routes)
                .map_err(|e| ConfigError::Invalid {
                    key: "isp_rate_limits",
                    reason: e.to_string(),
                })?;
        }
        if let Some(r) = file.retention {
            if let Some(v) = r.raw_days {
                c.retention.raw_days = v;
            }
            if let Some(v) = r.rollup_5m_days {
                c.retention.rollup_5m_days = v;
            }
            if let Some(v) = r.rollup_1h_days {
                c.retention.rollup_1h_days = v;
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks the ranges of every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if self.action_ttl.is_zero() || self.action_ttl > crate::actions::MAX_TTL {
            return invalid("action_ttl", "must be between 1s and 7d");
        }
        if self.backup_keep == 0 {
            return invalid("backup_keep", "must be at least 1");
        }
        if let Some(j) = &self.jwt {
            if j.role_claim.is_empty() || j.role_claim.len() > 64 {
                return invalid("jwt.role_claim", "must be 1-64 characters");
            }
            if j.leeway > Duration::from_secs(600) {
                return invalid("jwt.leeway", "must be at most 10m");
            }
        }
        if let Err(e) = routerstats_shared::action::check_iface(&self.wireguard.interface) {
            return invalid("wireguard.default_interface", &e);
        }
        if self.ingest_listen == self.api_listen && self.api_listen.port() != 0 {
            return invalid("api_listen", "must differ from ingest_listen");
        }
        if self.client_cert_days == 0 || self.client_cert_days > MAX_CLIENT_CERT_DAYS {
            return invalid(
                "client_cert_days",
                &format!("must be between 1 and {MAX_CLIENT_CERT_DAYS}"),
            );
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        for (key, v) in [
            ("preauth_max_connections", self.preauth_max_connections),
            ("preauth_per_address", self.preauth_per_address),
            ("api_max_connections", self.api_max_connections),
            ("api_max_per_address", self.api_max_per_address),
        ] {
            if v == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        for (key, v) in [
            ("preauth_timeout", self.preauth_timeout),
            ("api_header_timeout", self.api_header_timeout),
        ] {
            if v.is_zero() || v > Duration::from_secs(3600) {
                return invalid(key, "must be between 1ms and 1h");
            }
        }
        if self.handshake_timeout.is_zero() {
            return invalid("handshake_timeout", "must be longer than 0");
        }
        if self.read_timeout < Duration::from_secs(1) {
            return invalid(
                "read_timeout",
                "must be at least 1s (and longer than the agents' report interval)",
            );
        }
        if self.max_frame < 1024 || self.max_frame > MAX_FRAME_LEN {
            return invalid(
                "max_frame",
                &format!("must be between 1024 and {MAX_FRAME_LEN} bytes"),
            );
        }
        if self.batch_max == 0 {
            return invalid("batch_max", "must be at least 1");
        }
        if self.batch_latency > Duration::from_secs(5) {
            return invalid("batch_latency", "must be at most 5s (agents wait for acks)");
        }
        if self.rollup_hold > Duration::from_secs(300) {
            return invalid("rollup_hold", "must be at most 5m");
        }
        if self.rollup_read_lag > Duration::from_secs(60) {
            return invalid("rollup_read_lag", "must be at most 1m");
        }
        if self.api_read_threads == 0 || self.api_read_threads > 64 {
            return invalid("api_read_threads", "must be between 1 and 64");
        }
        if !(0..=19).contains(&self.api_read_nice) {
            return invalid("api_read_nice", "must be between 0 and 19");
        }
        if !(0..=19).contains(&self.network_nice) {
            return invalid("network_nice", "must be between 0 and 19");
        }
        if self.revocation_poll.is_zero() || self.revocation_poll > Duration::from_secs(60) {
            return invalid("revocation_poll", "must be between 1ms and 60s");
        }
        if self.retention_interval < Duration::from_secs(1) {
            return invalid("retention_interval", "must be at least 1s");
        }
        if self.api_cache_max_age > Duration::from_secs(3600) {
            return invalid(
                "api_cache_max_age",
                "must be at most 1h (0 disables the cache)",
            );
        }
        if let Err(reason) = self.alerts.validate() {
            return Err(ConfigError::Invalid {
                key: "alerts",
                reason,
            });
        }
        let r = &self.retention;
        if r.raw_days == 0 || r.rollup_5m_days == 0 || r.rollup_1h_days == 0 {
            return invalid("retention", "every *_days value must be at least 1");
        }
        Ok(())
    }

    /// The SQLite database path.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.ingest_listen.to_string(), "0.0.0.0:7443");
        assert_eq!(c.api_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.read_timeout, Duration::from_secs(120));
        assert_eq!(c.max_frame, MAX_FRAME_LEN);
    }

    /// `[metrics] stations` turns the per-station series of `GET /metrics` on by default; an
    /// unknown key or a non-boolean is an error naming it.
    #[test]
    fn metrics_station_default() {
        assert!(!Config::default().metrics_stations);
        let stations = |text: &str| Config::from_toml(text).unwrap().metrics_stations;
        assert!(stations("[metrics]\nstations = true"));
        assert!(!stations("[metrics]\nstations = false"));
        assert!(!stations("[metrics]"));
        for bad in ["[metrics]\nstations = \"yes\"", "[metrics]\nstation = true"] {
            let e = Config::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains("station"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_key_is_read() {
        let c = Config::from_toml(
            r#"
            data_dir = "/var/lib/routerstats"
            ingest_listen = "[::]:9443"
            api_listen = "127.0.0.1:9080"
            server_names = ["stats.example.net", "192.0.2.7"]
            client_cert_days = 30
            max_connections = 100
            handshake_timeout = "5s"
            read_timeout = 300
            max_frame = 65536
            batch_max = 64
            batch_latency = "5ms"
            rollup_read_lag = "250ms"
            revocation_poll = "100ms"
            retention_interval = "30m"
            api_cache_max_age = "3s"
            api_cache_max_bytes = 1000000
            api_read_threads = 2
            api_read_nice = 5
            network_nice = 0
            [retention]
            raw_days = 3
            rollup_5m_days = 10
            rollup_1h_days = 100
            "#,
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/routerstats"));
        assert_eq!(c.ingest_listen.to_string(), "[::]:9443");
        assert_eq!(c.api_listen.to_string(), "127.0.0.1:9080");
        assert_eq!(c.server_names, vec!["stats.example.net", "192.0.2.7"]);
        assert_eq!(c.client_cert_days, 30);
        assert_eq!(c.max_connections, 100);
        assert_eq!(c.handshake_timeout, Duration::from_secs(5));
        assert_eq!(c.read_timeout, Duration::from_secs(300));
        assert_eq!(c.max_frame, 65536);
        assert_eq!(c.batch_max, 64);
        assert_eq!(c.batch_latency, Duration::from_millis(5));
        assert_eq!(c.rollup_read_lag, Duration::from_millis(250));
        assert_eq!(c.revocation_poll, Duration::from_millis(100));
        assert_eq!(c.retention_interval, Duration::from_secs(1800));
        assert_eq!(c.api_cache_max_age, Duration::from_secs(3));
        assert_eq!(c.api_cache_max_bytes, 1_000_000);
        assert_eq!((c.api_read_threads, c.api_read_nice), (2, 5));
        assert_eq!(c.network_nice, 0);
        assert_eq!(
            c.retention,
            Retention {
                raw_days: 3,
                rollup_5m_days: 10,
                rollup_1h_days: 100
            }
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Config::from_toml("ingest_port = 1").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Parse { message, .. } if message.contains("ingest_port")),
            "{e}"
        );
        let e = Config::from_toml("read_timeout = \"2 fortnights\"").unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Invalid {
                key: "read_timeout",
                ..
            }
        ));
        assert!(matches!(
            Config::from_toml("api_cache_max_age = \"2h\"").unwrap_err(),
            ConfigError::Invalid {
                key: "api_cache_max_age",
                ..
            }
        ));
        let e = Config::from_toml("max_frame = 99999999").unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Invalid {
                key: "max_frame",
                ..
            }
        ));
        let e = Config::from_toml("max_connections = 0").unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Invalid {
                key: "max_connections",
                ..
            }
        ));
        for (bad, key) in [
            ("api_read_threads = 0", "api_read_threads"),
            ("api_read_threads = 65", "api_read_threads"),
            ("api_read_nice = -1", "api_read_nice"),
            ("api_read_nice = 20", "api_read_nice"),
            ("network_nice = -1", "network_nice"),
            ("network_nice = 20", "network_nice"),
            ("rollup_read_lag = \"2m\"", "rollup_read_lag"),
            ("rollup_read_lag = \"soon\"", "rollup_read_lag"),
        ] {
            let e = Config::from_toml(bad).unwrap_err();
            assert!(
                matches!(e, ConfigError::Invalid { key: k, .. } if k == key),
                "{bad}: {e}"
            );
        }
        let e = Config::from_toml("ingest_listen = \"nonsense\"").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }));
        let e = Config::from_toml("[retention]\nraw_days = 0").unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Invalid {
                key: "retention",
                ..
            }
        ));
    }

    #[test]
    fn example_file_parses_and_documents_every_key() {
        let text = include_str!("../collector.example.toml");
        // Uncommenting every `# key = value` line must give a valid config.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") || rest.starts_with('[') => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        Config::from_toml(&uncommented).unwrap();
        for key in [
            "data_dir",
            "ingest_listen",
            "api_listen",
            "server_names",
            "client_cert_days",
            "max_connections",
            "handshake_timeout",
            "read_timeout",
            "max_frame",
            "batch_max",
            "batch_latency",
            "rollup_hold",
            "rollup_read_lag",
            "api_read_threads",
            "api_read_nice",
            "network_nice",
            "revocation_poll",
            "retention_interval",
            "raw_days",
            "rollup_5m_days",
            "rollup_1h_days",
            "stations",
        ] {
            assert!(
                uncommented.contains(&format!("{key} = ")),
                "{key} not documented"
            );
        }
    }

    #[test]
    fn jwt_and_cors_settings() {
        let c = Config::from_toml(
            r#"
            cors_allowed_origins = ["https://vpn.example.net", "http://localhost:5173"]
            [jwt]
            public_key_file = "/etc/routerstats/jwt.pub.pem"
            role_claim = "routerstats_role"
            issuer = "https://idp.example.net"
            audience = "routerstats"
            leeway = "5s"
            "#,
        )
        .unwrap();
        let j = c.jwt.unwrap();
        assert_eq!(
            j.key,
            crate::api::jwt::JwtKeySource::PublicKeyFile("/etc/routerstats/jwt.pub.pem".into())
        );
        assert_eq!(j.role_claim, "routerstats_role");
        assert_eq!(j.issuer.as_deref(), Some("https://idp.example.net"));
        assert_eq!(j.audience.as_deref(), Some("routerstats"));
        assert_eq!(j.leeway, Duration::from_secs(5));
        assert_eq!(c.cors.origins.len(), 2);
        let c = Config::from_toml("[jwt]\nsecret_file = \"/s\"").unwrap();
        assert_eq!(c.jwt.unwrap().role_claim, "role");
        for bad in [
            "[jwt]\nrole_claim = \"x\"",
            "[jwt]\nsecret_file = \"/s\"\npublic_key_file = \"/p\"",
            "[jwt]\nsecret_file = \"/s\"\nleeway = \"1h\"",
            "cors_allowed_origins = [\"vpn.example.net/path\"]",
        ] {
            assert!(
                matches!(Config::from_toml(bad), Err(ConfigError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(Config::from_toml("[jwt]\nsecret = \"inline\"").is_err());
    }

    #[test]
    fn load_reports_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = Config::load(&missing).unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "max_connections = \"many\"").unwrap();
        let e = Config::load(&bad).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Parse { path, .. } if path == &bad),
            "{e}"
        );
    }

    #[test]
    fn isp_rate_limits_from_the_file() {
        let c = Config::from_toml(
            "[isp_rate_limits]\ndefault_per_hour = 50\n[isp_rate_limits.routes]\n\"GET /api/mikrotik/devices\" = 7\n\"post /api/vpn/server/backup\" = 1\n",
        )
        .unwrap();
        let l = &c.isp_rate_limits;
        assert_eq!(l.default_per_hour, 50);
        let per = |m: &str, p: &str| {
            l.rules
                .iter()
                .find(|r| r.method.as_str() == m && r.path == p)
                .map(|r| r.per_hour)
        };
        assert_eq!(per("GET", "/api/mikrotik/devices"), Some(7));
        assert_eq!(per("POST", "/api/vpn/server/backup"), Some(1));
        assert_eq!(
            per("POST", "/api/mikrotik/backup/create"),
            Some(5),
            "defaults stay"
        );
        assert_eq!(Config::default().isp_rate_limits.default_per_hour, 1000);
        for bad in [
            "[isp_rate_limits]\ndefault_per_hour = 0\n",
            "[isp_rate_limits.routes]\n\"/api/x\" = 3\n",
            "[isp_rate_limits.routes]\n\"GET /api/x\" = 0\n",
            "[isp_rate_limits]\nper_minute = 3\n",
        ] {
            let e = Config::from_toml(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    ConfigError::Invalid {
                        key: "isp_rate_limits",
                        ..
                    } | ConfigError::Parse { .. }
                ),
                "{bad}: {e}"
            );
        }
    }
}
