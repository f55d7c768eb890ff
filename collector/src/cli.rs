//! The `routerstats-collector` command line: `serve`, `token`, `router` and `apikey` commands.
//!
//! Output meant for scripts (tokens, keys, tables, JSON) goes to stdout; hints for people go to
//! stderr. Exit codes: 0 success, 1 runtime error (the message says what to do), 2 usage error.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::api::times::utc_s;
use crate::clock::unix_now;
use crate::config::{Config, ConfigError, DB_FILE, DEFAULT_DATA_DIR};
use crate::pki::tokens::{
    create_api_key, create_token, parse_ttl, validate_router_name, Role, TokenError,
};
use crate::pki::{ca_hash_in, machine_hostname, PkiError};
use crate::store::{RouterRow, Store, StoreError, TokenRow};

/// routerstats collector: enrolls OpenWrt routers, ingests their reports over mutual TLS into
/// SQLite and serves the HTTP API and the dashboard.
#[derive(Debug, Parser)]
#[command(
    name = "routerstats-collector",
    version,
    after_help = "Exit codes: 0 success, 1 failure (the message says why), 2 usage error.\nLogging: set RUST_LOG (e.g. RUST_LOG=debug)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The data directory option shared by every command.
#[derive(Debug, Clone, Args)]
pub struct DataDirArg {
    /// Data directory (CA, server certificate, database) [default: ./routerstats-data]
    #[arg(long, env = "ROUTERSTATS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    fn resolve(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector (ingest listener, HTTP API and dashboard).
    Serve(ServeArgs),
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Enrolled routers.
    #[command(subcommand)]
    Router(RouterCmd),
    /// API keys for the HTTP API.
    #[command(subcommand)]
    Apikey(ApikeyCmd),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// TOML configuration file (see collector.example.toml: listeners, retention, alerts, and
    /// `[isp_rate_limits]`, the ISP routes' hourly limits per route and key); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the TLS listener for routers [default: 0.0.0.0:7443]
    #[arg(long, value_name = "ADDR")]
    pub ingest_listen: Option<SocketAddr>,
    /// Address of the HTTP API [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub api_listen: Option<SocketAddr>,
    /// Extra DNS name or IP address for the server certificate (repeatable; added to the file's).
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_names: Vec<String>,
    /// Accept `Authorization: Bearer <jwt>` signed HS256 with the secret in FILE (at least 32 bytes)
    #[arg(
        long,
        value_name = "FILE",
        env = "ROUTERSTATS_JWT_SECRET_FILE",
        conflicts_with = "jwt_public_key"
    )]
    pub jwt_secret_file: Option<PathBuf>,
    /// Accept `Authorization: Bearer <jwt>` signed ES256 or RS256, verified with this PEM public key
    #[arg(long, value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,
    /// JWT claim holding the role (`read` or `admin`) [default: role]
    #[arg(long, value_name = "CLAIM")]
    pub jwt_role_claim: Option<String>,
    /// Accepted JWT issuer (`iss`); unchecked when unset
    #[arg(long, value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// This collector's JWT audience (`aud`); tokens with an `aud` are refused when unset
    #[arg(long, value_name = "AUD")]
    pub jwt_audience: Option<String>,
    /// Browser origin allowed to call the API (CORS), like https://vpn.example.net; repeatable, `*` for any [default: none]
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
}

impl ServeArgs {
    /// Applies the JWT and CORS flags over the file's settings.
    fn apply_auth(&self, config: &mut Config) -> Result<(), CliError> {
        use crate::api::jwt::{JwtConfig, JwtKeySource};
        let key = match (&self.jwt_secret_file, &self.jwt_public_key) {
            (Some(f), _) => Some(JwtKeySource::SecretFile(f.clone())),
            (None, Some(f)) => Some(JwtKeySource::PublicKeyFile(f.clone())),
            (None, None) => None,
        };
        if let Some(key) = key {
            match &mut config.jwt {
                Some(j) => j.key = key,
                None => config.jwt = Some(JwtConfig::new(key)),
            }
        }
        let extra = [&self.jwt_role_claim, &self.jwt_issuer, &self.jwt_audience];
        if config.jwt.is_none() && extra.iter().any(|v| v.is_some()) {
            return Err(CliError::Runtime(
                "--jwt-role-claim, --jwt-issuer and --jwt-audience need a JWT key (--jwt-secret-file or --jwt-public-key, or [jwt] in the config file)".into(),
            ));
        }
        if let Some(j) = &mut config.jwt {
            if let Some(v) = &self.jwt_role_claim {
                j.role_claim = v.clone();
            }
            if let Some(v) = &self.jwt_issuer {
                j.issuer = Some(v.clone());
            }
            if let Some(v) = &self.jwt_audience {
                j.audience = Some(v.clone());
            }
        }
        if !self.cors_origins.is_empty() {
            let added = crate::api::cors::CorsOrigins::parse(&self.cors_origins)
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            config.cors.any |= added.any;
            for o in added.origins {
                if !config.cors.origins.contains(&o) {
                    config.cors.origins.push(o);
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an enrollment token (printed on stdout; the agent command goes to stderr).
    Create {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Name the router gets (unless the agent asks for another).
        #[arg(long)]
        name: String,
        /// Site the router belongs to.
        #[arg(long)]
        site: Option<String>,
        /// Lifetime, like 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// How many routers may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Collector address routers dial, for the printed agent command [default: <hostname>:7443]
        #[arg(long, value_name = "HOST:PORT")]
        collector: Option<String>,
    },
    /// List enrollment tokens.
    List {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RouterCmd {
    /// List routers.
    List {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one router (by name or id) as JSON.
    Show {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// The router: a number is its id, anything else its name; `id:N` or `name:NAME` to say which.
        router: String,
    },
    /// Revoke a router: its certificate is refused and its open connections close within a second.
    Revoke {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// The router: a number is its id, anything else its name; `id:N` or `name:NAME` to say which.
        router: String,
    },
    /// Rename a router.
    Rename {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// The router: a number is its id, anything else its name; `id:N` or `name:NAME` to say which.
        router: String,
        new_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCmd {
    /// Create an API key (printed once on stdout).
    Create {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// read (read-only API) or admin (everything).
        #[arg(long, value_parser = ["read", "admin"])]
        role: String,
        /// A note saying who or what uses the key.
        #[arg(long, default_value = "")]
        name: String,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Serve(#[from] crate::ServeError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("database {}: {source}", path.display())]
    Store { path: PathBuf, source: StoreError },
    #[error("no collector database in {}: start `routerstats-collector serve --data-dir {}` once first, or point --data-dir / ROUTERSTATS_DATA_DIR at the right directory", dir.display(), dir.display())]
    NoDatabase { dir: PathBuf },
    #[error("no router named or numbered {0:?} (see `routerstats-collector router list`)")]
    NoRouter(String),
    #[error("{0}")]
    Runtime(String),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Besides stderr, events go to the in-memory ring served by `GET /api/logs`.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .finish()
        .with(crate::api::log_capture::LogCapture)
        .try_init();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    match run(cli, &mut out, &mut err) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(err, "routerstats-collector: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs one parsed command, writing to `out` (results) and `err` (hints).
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(TokenCmd::Create {
            data_dir,
            name,
            site,
            ttl,
            uses,
            collector,
        }) => {
            let dir = data_dir.resolve();
            let ttl = parse_ttl(&ttl)?;
            let store = open_existing(&dir)?;
            let ca_hash = ca_hash_in(&dir)?;
            let issued = create_token(
                &store,
                ca_hash,
                &name,
                site.as_deref(),
                ttl,
                uses,
                unix_now(),
            )
            .map_err(|e| store_ctx(e, &dir))?;
            let token = issued.token.to_string();
            let _ = writeln!(out, "{token}");
            let collector = collector.unwrap_or_else(|| {
                format!(
                    "{}:7443",
                    machine_hostname().unwrap_or_else(|| "COLLECTOR-HOST".into())
                )
            });
            let uses_text = if uses == 1 {
                "1 use".to_string()
            } else {
                format!("{uses} uses")
            };
            let _ = writeln!(
                err,
                "Enrollment token {} for router {:?} ({}, expires {}).\nOn the router, run (the token on stdin stays out of the process list):\n  echo {} | routerstats-agent enroll --collector {} --token-file -",
                issued.token.id,
                issued.name,
                uses_text,
                utc_s(issued.expires_at),
                token,
                collector
            );
            Ok(())
        }
        Command::Token(TokenCmd::List { data_dir, json }) => {
            let dir = data_dir.resolve();
            let store = open_existing(&dir)?;
            let tokens = store
                .list_tokens()
                .map_err(|source| store_err(&dir, source))?;
            if json {
                let _ = writeln!(out, "{}", to_json(&tokens)?);
            } else {
                write_token_table(out, &tokens, unix_now());
            }
            Ok(())
        }
        Command::Router(RouterCmd::List { data_dir, json }) => {
            let dir = data_dir.resolve();
            let store = open_existing(&dir)?;
            let routers = store
                .list_routers()
                .map_err(|source| store_err(&dir, source))?;
            if json {
                let _ = writeln!(out, "{}", to_json(&routers)?);
            } else {
                write_router_table(out, &routers);
            }
            Ok(())
        }
        Command::Router(RouterCmd::Show { data_dir, router }) => {
            let dir = data_dir.resolve();
            let store = open_existing(&dir)?;
            let row = store
                .router(&router)
                .map_err(|source| store_err(&dir, source))?;
            let row = row.ok_or(CliError::NoRouter(router))?;
            let _ = writeln!(out, "{}", to_json(&row)?);
            Ok(())
        }
        Command::Router(RouterCmd::Revoke { data_dir, router }) => {
            let dir = data_dir.resolve();
            let mut store = open_existing(&dir)?;
            let row = match store.revoke_router(&router, unix_now()) {
                Ok(r) => r,
                Err(StoreError::NotFound(_)) => return Err(CliError::NoRouter(router)),
                Err(source) => return Err(store_err(&dir, source)),
            };
            let _ = writeln!(out, "revoked router {} (id {})", row.name, row.id);
            let _ = writeln!(
                err,
                "Its certificate is refused from now on; a running collector closes its open connections within a second.\nTo bring the router back, create a token and enroll it again with `routerstats-agent enroll --force`."
            );
            Ok(())
        }
        Command::Router(RouterCmd::Rename {
            data_dir,
            router,
            new_name,
        }) => {
            let dir = data_dir.resolve();
            validate_router_name(&new_name)?;
            let mut store = open_existing(&dir)?;
            let row = match store.rename_router(&router, &new_name) {
                Ok(r) => r,
                Err(StoreError::NotFound(_)) => return Err(CliError::NoRouter(router)),
                Err(StoreError::NameTaken(n)) => {
                    return Err(CliError::Runtime(format!(
                        "another router is already named {n:?}"
                    )))
                }
                Err(source) => return Err(store_err(&dir, source)),
            };
            let _ = writeln!(
                out,
                "renamed router {router} to {} (id {})",
                row.name, row.id
            );
            let _ = writeln!(
                err,
                "The router's certificate keeps its old name until it is renewed; that does not affect reporting."
            );
            Ok(())
        }
        Command::Apikey(ApikeyCmd::Create {
            data_dir,
            role,
            name,
        }) => {
            let dir = data_dir.resolve();
            let role: Role = role.parse()?;
            let store = open_existing(&dir)?;
            let key =
                create_api_key(&store, role, &name, unix_now()).map_err(|e| store_ctx(e, &dir))?;
            let _ = writeln!(out, "{}", key.key);
            let _ = writeln!(
                err,
                "API key {} (role {}) created. It is shown only this once; send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`.",
                key.id, key.role
            );
            Ok(())
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), CliError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    args.apply_auth(&mut config)?;
    if let Some(d) = args.data_dir.data_dir {
        config.data_dir = d;
    }
    if let Some(a) = args.ingest_listen {
        config.ingest_listen = a;
    }
    if let Some(a) = args.api_listen {
        config.api_listen = a;
    }
    config
        .server_names
        .extend(args.server_names.iter().cloned());
    config.validate()?;
    // The runtime's threads yield to the database writer, which `serve` starts on this thread
    // (the one `block_on` runs on) at the process's own priority.
    let nice = config.network_nice;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            // Told once: the runtime starts blocking-pool threads again and again.
            static TOLD: std::sync::Once = std::sync::Once::new();
            if let Err(e) = crate::thread_priority::set_this_thread_nice(nice) {
                TOLD.call_once(|| {
                    tracing::warn!(error = %e, nice, "cannot lower the priority of the network threads");
                });
            }
        })
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let handle = crate::serve(config).await?;
        handle
            .run_until_signal()
            .await
            .map_err(|e| CliError::Runtime(format!("API server failed: {e}")))
    })
}

/// Opens the database of a data dir that must already exist.
fn open_existing(dir: &Path) -> Result<Store, CliError> {
    let db = dir.join(DB_FILE);
    if !db.is_file() {
        return Err(CliError::NoDatabase {
            dir: dir.to_path_buf(),
        });
    }
    Store::open(&db).map_err(|source| CliError::Store { path: db, source })
}

fn store_err(dir: &Path, source: StoreError) -> CliError {
    CliError::Store {
        path: dir.join(DB_FILE),
        source,
    }
}

fn store_ctx(e: TokenError, dir: &Path) -> CliError {
    match e {
        TokenError::Store(s) => store_err(dir, s),
        other => CliError::Token(other),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(v)
        .map_err(|e| CliError::Runtime(format!("cannot encode JSON: {e}")))
}

fn write_token_table(out: &mut dyn Write, tokens: &[TokenRow], now: i64) {
    let _ = writeln!(
        out,
        "{:<10} {:<24} {:<16} {:>7} {:<24} STATE",
        "ID", "NAME", "SITE", "USES", "EXPIRES"
    );
    for t in tokens {
        let state = if t.uses >= t.max_uses {
            "used"
        } else if now >= t.expires_at {
            "expired"
        } else {
            "valid"
        };
        let _ = writeln!(
            out,
            "{:<10} {:<24} {:<16} {:>7} {:<24} {}",
            t.id,
            t.name,
            t.site.as_deref().unwrap_or("-"),
            format!("{}/{}", t.uses, t.max_uses),
            utc_s(t.expires_at),
            state
        );
    }
}

fn write_router_table(out: &mut dyn Write, routers: &[RouterRow]) {
    let _ = writeln!(
        out,
        "{:>5} {:<24} {:<16} {:<24} {:<24} {:<24} STATUS",
        "ID", "NAME", "SITE", "HOSTNAME", "LAST SEEN", "CERT EXPIRES"
    );
    for r in routers {
        let last_seen = r
            .last_seen_ms
            .map(|ms| utc_s(ms.div_euclid(1000)))
            .unwrap_or_else(|| "never".into());
        let status = if r.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        };
        let _ = writeln!(
            out,
            "{:>5} {:<24} {:<16} {:<24} {:<24} {:<24} {}",
            r.id,
            r.name,
            r.site.as_deref().unwrap_or("-"),
            r.hostname,
            last_seen,
            utc_s(r.cert_not_after),
            status
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::times::utc_s as format_unix;

    fn run_args(args: &[&str]) -> (Result<(), CliError>, String, String) {
        let cli = Cli::try_parse_from(
            std::iter::once("routerstats-collector").chain(args.iter().copied()),
        )
        .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = run(cli, &mut out, &mut err);
        (
            r,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn data_dir_with_db() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        Store::open(&dir.path().join(DB_FILE)).unwrap();
        dir
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        assert!(Cli::try_parse_from(["routerstats-collector", "token", "create"]).is_err());
        assert!(Cli::try_parse_from([
            "routerstats-collector",
            "apikey",
            "create",
            "--role",
            "root"
        ])
        .is_err());
        assert!(
            Cli::try_parse_from(["routerstats-collector", "serve", "--ingest-listen", "nope"])
                .is_err()
        );
        let ok = Cli::try_parse_from([
            "routerstats-collector",
            "serve",
            "--server-name",
            "a",
            "--server-name",
            "b",
        ])
        .unwrap();
        assert!(
            matches!(ok.command, Command::Serve(ServeArgs { ref server_names, .. }) if server_names.len() == 2)
        );
    }

    #[test]
    fn jwt_and_cors_flags_override_the_file() {
        let parse = |extra: &[&str]| {
            let cli = Cli::try_parse_from(
                ["routerstats-collector", "serve"]
                    .iter()
                    .chain(extra.iter())
                    .copied(),
            )
            .unwrap();
            let Command::Serve(args) = cli.command else {
                unreachable!("serve parses as serve")
            };
            let mut c = Config::default();
            args.apply_auth(&mut c).map(|_| c)
        };
        let c = parse(&[
            "--jwt-public-key",
            "/k.pem",
            "--jwt-role-claim",
            "r",
            "--jwt-audience",
            "rs",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example",
        ])
        .unwrap();
        let j = c.jwt.unwrap();
        assert_eq!(
            j.key,
            crate::api::jwt::JwtKeySource::PublicKeyFile("/k.pem".into())
        );
        assert_eq!(
            (j.role_claim.as_str(), j.audience.as_deref()),
            ("r", Some("rs"))
        );
        assert_eq!(c.cors.origins.len(), 2);
        assert!(parse(&[]).unwrap().jwt.is_none());
        assert!(parse(&["--jwt-issuer", "x"]).is_err());
        assert!(parse(&["--cors-origin", "nope"]).is_err());
        assert!(Cli::try_parse_from([
            "routerstats-collector",
            "serve",
            "--jwt-secret-file",
            "/s",
            "--jwt-public-key",
            "/p"
        ])
        .is_err());
    }

    #[test]
    fn commands_refuse_a_data_dir_without_database() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let (r, _, _) = run_args(&["router", "list", "--data-dir", d]);
        let e = r.unwrap_err();
        assert!(matches!(e, CliError::NoDatabase { .. }));
        assert!(e.to_string().contains("serve --data-dir"), "{e}");
        assert!(
            !dir.path().join(DB_FILE).exists(),
            "a wrong data dir must not get a new database"
        );
    }

    #[test]
    fn token_create_prints_token_and_agent_command_then_lists_it() {
        let dir = data_dir_with_db();
        let d = dir.path().to_str().unwrap();
        let (r, out, err) = run_args(&[
            "token",
            "create",
            "--data-dir",
            d,
            "--name",
            "ap-1",
            "--site",
            "home",
            "--ttl",
            "2h",
            "--uses",
            "3",
            "--collector",
            "stats.example:7443",
        ]);
        r.unwrap();
        let token: routerstats_shared::token::EnrollToken = out.trim().parse().unwrap();
        assert_eq!(token.ca_hash, ca_hash_in(dir.path()).unwrap());
        assert!(
            err.contains("echo rs1.")
                && err.contains(
                    "| routerstats-agent enroll --collector stats.example:7443 --token-file -"
                ),
            "{err}"
        );
        let (r, out, _) = run_args(&["token", "list", "--data-dir", d]);
        r.unwrap();
        assert!(
            out.contains(&token.id)
                && out.contains("ap-1")
                && out.contains("0/3")
                && out.contains("valid"),
            "{out}"
        );
        let (r, out, _) = run_args(&["token", "list", "--data-dir", d, "--json"]);
        r.unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["max_uses"], 3);
        assert_eq!(v[0]["site"], "home");
        assert!(
            !out.contains(&token.secret),
            "the secret is never stored or listed"
        );
    }

    #[test]
    fn token_create_rejects_bad_input() {
        let dir = data_dir_with_db();
        let d = dir.path().to_str().unwrap();
        let (r, _, _) = run_args(&["token", "create", "--data-dir", d, "--name", "bad name"]);
        assert!(matches!(r, Err(CliError::Token(TokenError::Name(_)))));
        let (r, _, _) = run_args(&[
            "token",
            "create",
            "--data-dir",
            d,
            "--name",
            "ok",
            "--ttl",
            "forever",
        ]);
        assert!(matches!(r, Err(CliError::Token(TokenError::Ttl(_)))));
        let (r, _, _) = run_args(&[
            "token",
            "create",
            "--data-dir",
            d,
            "--name",
            "ok",
            "--uses",
            "0",
        ]);
        assert!(matches!(r, Err(CliError::Token(TokenError::Uses))));
    }

    #[test]
    fn apikey_create_prints_a_key_that_authenticates() {
        let dir = data_dir_with_db();
        let d = dir.path().to_str().unwrap();
        let (r, out, err) = run_args(&[
            "apikey",
            "create",
            "--data-dir",
            d,
            "--role",
            "admin",
            "--name",
            "ops",
        ]);
        r.unwrap();
        let key = out.trim();
        assert!(key.starts_with("rsk_"));
        assert!(err.contains("shown only this once"));
        let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
        let (_, role) = store
            .api_key_role(&crate::pki::tokens::sha256(key))
            .unwrap()
            .unwrap();
        assert_eq!(role, "admin");
    }

    #[test]
    fn router_commands_report_unknown_routers() {
        let dir = data_dir_with_db();
        let d = dir.path().to_str().unwrap();
        let (r, out, _) = run_args(&["router", "list", "--data-dir", d]);
        r.unwrap();
        assert!(out.starts_with("   ID NAME"), "{out}");
        for args in [
            vec!["router", "show", "--data-dir", d, "ghost"],
            vec!["router", "revoke", "--data-dir", d, "ghost"],
            vec!["router", "rename", "--data-dir", d, "ghost", "new"],
        ] {
            let (r, _, _) = run_args(&args);
            assert!(matches!(r, Err(CliError::NoRouter(_))), "{args:?}");
        }
    }

    #[test]
    fn formats_unix_time() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_unix(i64::MAX), i64::MAX.to_string());
    }
}
