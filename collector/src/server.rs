//! Starting and stopping the whole collector: data dir, PKI, database, writer, registry,
//! revocation poller, the ingest listener and the HTTP API.
//!
//! [`serve`] returns once both listeners are bound (so callers, tests included, can bind port 0
//! and read the real addresses from the [`ServeHandle`]); [`ServeHandle::shutdown`] stops
//! accepting, tells open connections to close, waits for them and flushes the writer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::http_server::{self, HttpLimits};
use crate::ingest::control::Control;
use crate::ingest::guard::{EnrollLimiter, EnrollLimits, PreAuthPool};
use crate::ingest::listener::{self, IngestCtx, IngestSettings, TlsSetupError};
use crate::ingest::revocation::{spawn_poller, OpenConns, Poller};
use crate::ingest::writer::{Writer, WriterConfig, WriterSpawnError};
use crate::pki::{Pki, PkiError};
use crate::store::{Store, StoreError};

/// How long shutdown waits for open connections and for the writer to flush.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot use data dir {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    DataDirNotDir { path: PathBuf, reason: &'static str },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Jwt(#[from] crate::api::jwt::JwtSetupError),
    #[error("cannot open the database {}: {source}", path.display())]
    Store { path: PathBuf, source: StoreError },
    #[error("{what} port {addr} is already in use (is another collector running? choose another address with {flag})")]
    PortInUse {
        what: &'static str,
        addr: SocketAddr,
        flag: &'static str,
    },
    #[error(
        "cannot listen on {what} address {addr}: {source} (choose another address with {flag})"
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        flag: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    Writer(#[from] WriterSpawnError),
    #[error("cannot start a background thread: {0}")]
    Thread(std::io::Error),
}

/// A running collector.
pub struct ServeHandle {
    ingest_addr: SocketAddr,
    api_addr: SocketAddr,
    ca_hash: [u8; 32],
    shutdown_tx: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
    api_task: Option<JoinHandle<std::io::Result<()>>>,
    ctx: Arc<IngestCtx>,
    writer: Writer,
    _poller: Poller,
    alerts: Option<crate::alerts::AlertService>,
    remote_write: Option<crate::remote_write::RemoteWrite>,
    recent: Arc<crate::store::recent::RecentStations>,
}

impl ServeHandle {
    /// Whether the recent station traffic index finished its rebuild after the start (the
    /// monitoring routes read the database until it covers their window).
    pub fn recent_rebuilt(&self) -> bool {
        self.recent.rebuilt()
    }

    /// The recent station traffic index's stations and heap bytes (`RecentStations::heap_bytes`).
    pub fn recent_memory(&self) -> (usize, usize) {
        (self.recent.stations(), self.recent.heap_bytes())
    }

    /// The bound ingest (TLS) address.
    pub fn ingest_addr(&self) -> SocketAddr {
        self.ingest_addr
    }

    /// The bound HTTP API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// SHA-256 of the CA certificate (what enrollment tokens carry).
    pub fn ca_hash(&self) -> [u8; 32] {
        self.ca_hash
    }

    /// Open ingest connections right now.
    pub fn active_connections(&self) -> usize {
        self.ctx.active_connections()
    }

    /// Serves until SIGINT/SIGTERM (or until the API server fails), then shuts down.
    pub async fn run_until_signal(mut self) -> std::io::Result<()> {
        let api_result = match self.api_task.as_mut() {
            Some(task) => tokio::select! {
                _ = shutdown_signal() => {
                    tracing::info!("shutting down");
                    None
                }
                r = task => Some(r),
            },
            None => None,
        };
        if api_result.is_some() {
            self.api_task = None;
        }
        let failed = match api_result {
            Some(Ok(Err(e))) => Some(e),
            Some(Err(e)) => Some(std::io::Error::other(e.to_string())),
            _ => None,
        };
        self.shutdown().await;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops accepting, closes open connections (they get `Error{Unavailable}`), waits for them,
    /// flushes the writer and returns.
    pub async fn shutdown(self) {
        let ServeHandle {
            shutdown_tx,
            accept_task,
            api_task,
            ctx,
            writer,
            _poller,
            alerts,
            remote_write,
            recent,
            ..
        } = self;
        let _ = shutdown_tx.send(true);
        recent.cancel_rebuild();
        if let Some(alerts) = alerts {
            alerts.shutdown(SHUTDOWN_GRACE).await;
        }
        if let Some(rw) = remote_write {
            rw.shutdown(SHUTDOWN_GRACE).await;
        }
        let _ = accept_task.await;
        // Every connection holds one permit: getting them all back means all are closed.
        let all = u32::try_from(ctx.settings.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(SHUTDOWN_GRACE, ctx.permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("some ingest connections did not close in time");
        }
        if let Some(api_task) = api_task {
            if tokio::time::timeout(SHUTDOWN_GRACE, api_task)
                .await
                .is_err()
            {
                tracing::warn!("the API server did not stop in time");
            }
        }
        drop(ctx);
        let _ = tokio::task::spawn_blocking(move || writer.join(SHUTDOWN_GRACE)).await;
        tracing::info!("collector stopped");
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Creates the data dir (mode 0700) if needed and checks that it is a writable directory.
pub fn prepare_data_dir(path: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io_err = |source| ServeError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => {
            return Err(ServeError::DataDirNotDir {
                path: path.to_path_buf(),
                reason: "exists but is not a directory",
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_err)?;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
        }
        Err(e) => return Err(io_err(e)),
    }
    std::fs::read_dir(path).map_err(io_err)?;
    let probe = path.join(".write-test");
    std::fs::write(&probe, b"").map_err(io_err)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Descriptors the caps can hold at once, plus a margin for the database, logs and listeners.
pub fn descriptors_needed(config: &Config) -> u64 {
    (config.max_connections + config.preauth_max_connections + config.api_max_connections) as u64
        + 64
}

/// Raises the soft open-files limit to the hard limit, and warns when even that is below what
/// the connection caps can hold (a flood would then exhaust descriptors before the caps act).
fn check_descriptors(config: &Config) {
    let need = descriptors_needed(config);
    match http_server::raise_nofile_limit() {
        Ok((soft, _)) if soft < need => tracing::warn!(
            open_files_limit = soft,
            needed = need,
            "the open-files limit is below what the connection caps can hold; raise it (LimitNOFILE= in the systemd unit, ulimit -n) or lower max_connections, preauth_max_connections, api_max_connections"
        ),
        Ok((soft, _)) => tracing::debug!(open_files_limit = soft, needed = need, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
    }
}

/// Makes `path` no more open than `mode` (drops the extra permission bits) and warns when it
/// had to; a missing path is left alone. Returns whether it changed something.
pub fn tighten_mode(path: &Path, mode: u32) -> std::io::Result<bool> {
    let Some((was, now)) = routerstats_shared::filemode::tighten_mode(path, mode)? else {
        return Ok(false);
    };
    tracing::warn!(
        path = %path.display(),
        was = format!("{was:o}"),
        now = format!("{now:o}"),
        "file was open to other users; its mode was tightened"
    );
    Ok(true)
}

/// The data dir (0700), the private keys and the database files (0600): tightened at start.
fn tighten_data_dir(data_dir: &Path) {
    let files = [
        crate::pki::CA_KEY_FILE,
        crate::pki::SERVER_KEY_FILE,
        crate::config::DB_FILE,
        "routerstats.db-wal",
        "routerstats.db-shm",
    ];
    let paths = std::iter::once((data_dir.to_path_buf(), 0o700))
        .chain(files.iter().map(|f| (data_dir.join(f), 0o600)));
    for (p, mode) in paths {
        if let Err(e) = tighten_mode(&p, mode) {
            tracing::warn!(path = %p.display(), error = %e, "cannot check or tighten this file's mode");
        }
    }
}

/// How long the integrity check at start may run before it is interrupted.
pub const INTEGRITY_CHECK_LIMIT: Duration = Duration::from_secs(5);

/// `PRAGMA quick_check` of the database on its own connection, interrupted after `limit`.
pub fn quick_check(path: &Path, limit: Duration) -> crate::ingest::writer::Integrity {
    use crate::ingest::writer::Integrity;
    let conn = match rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => return Integrity::Failed(e.to_string()),
    };
    let interrupt = conn.get_interrupt_handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            interrupt.interrupt();
        }
    });
    let result = (|| -> rusqlite::Result<Vec<String>> {
        let mut st = conn.prepare("PRAGMA quick_check(20)")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    let _ = done_tx.send(());
    let _ = watchdog.join();
    match result {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Integrity::Ok,
        Ok(lines) => Integrity::Failed(lines.join("; ")),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
            Integrity::Unfinished
        }
        Err(e) => Integrity::Failed(e.to_string()),
    }
}

/// Opens the database, with the path in the error.
pub fn open_store(path: &Path) -> Result<Store, ServeError> {
    Store::open(path).map_err(|source| ServeError::Store {
        path: path.to_path_buf(),
        source,
    })
}

/// Opens the read transaction the recent-traffic index is rebuilt from (its snapshot starts
/// at its first read, here).
fn recent_snapshot(store: &Store) -> Result<(), crate::store::StoreError> {
    let c = store.connection();
    c.execute_batch("BEGIN")?;
    let _: i64 = c.query_row("SELECT count(*) FROM routers", [], |r| r.get(0))?;
    Ok(())
}

/// Rebuilds the recent-traffic index from `store`'s snapshot on a thread of its own.
fn spawn_recent_rebuild(
    store: Store,
    recent: Arc<crate::store::recent::RecentStations>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("recent-rebuild".into())
        .spawn(move || {
            let t = Instant::now();
            match recent.rebuild(store.connection(), crate::clock::now_ms()) {
                Ok(s) => tracing::info!(
                    rows = s.rows,
                    stations = recent.stations(),
                    complete_from_ms = s.complete_from_ms,
                    took_ms = t.elapsed().as_millis() as u64,
                    "rebuilt the recent station traffic index"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "rebuilding the recent station traffic index failed; the monitoring routes \
                     read the database for windows it does not cover"
                ),
            }
            let _ = store.connection().execute_batch("COMMIT");
        })
        .map(|_| ())
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse { what, addr, flag }
        } else {
            ServeError::Bind {
                what,
                addr,
                flag,
                source,
            }
        }
    })
}

/// Starts the collector; returns once both listeners are bound.
pub async fn serve(config: Config) -> Result<ServeHandle, ServeError> {
    let started = Instant::now();
    config.validate()?;
    check_descriptors(&config);
    prepare_data_dir(&config.data_dir)?;
    // Bind first: a second instance on the same ports must fail before touching any file.
    let ingest_listener = bind(config.ingest_listen, "ingest", "--ingest-listen").await?;
    let api_listener = bind(config.api_listen, "API", "--api-listen").await?;
    let ingest_addr = ingest_listener.local_addr().map_err(ServeError::Thread)?;
    let api_addr = api_listener.local_addr().map_err(ServeError::Thread)?;
    let data_dir = config.data_dir.clone();
    let names = config.server_names.clone();
    let pki = tokio::task::spawn_blocking(move || Pki::load_or_create(&data_dir, &names))
        .await
        .map_err(|e| ServeError::Thread(std::io::Error::other(e.to_string())))??;
    let pki = Arc::new(pki);
    tighten_data_dir(&config.data_dir);
    let db_path = config.db_path();
    // The first open creates and migrates the database; the others just connect.
    let mut writer_store = open_store(&db_path)?;
    writer_store.set_rollup_hold(config.rollup_hold);
    let recent = Arc::new(crate::store::recent::RecentStations::new());
    writer_store.set_recent_stations(recent.clone());
    // The rebuild's snapshot: taken before the writer commits anything (see store::recent).
    let rebuild_store = open_store(&db_path)?;
    recent_snapshot(&rebuild_store).map_err(|source| ServeError::Store {
        path: db_path.clone(),
        source,
    })?;
    let control_store = open_store(&db_path)?;
    let poller_store = open_store(&db_path)?;
    let api_store = open_store(&db_path)?;
    let actions = crate::actions::Hub::new(
        open_store(&db_path)?,
        crate::actions::ActionSettings {
            data_dir: config.data_dir.clone(),
            ttl: config.action_ttl,
            wg: config.wireguard.clone(),
            backup_keep: config.backup_keep,
        },
    );

    let tls = listener::tls_server_config(&pki)?;
    let mut writer_config = WriterConfig::new(
        config.batch_max,
        config.batch_latency,
        config.retention,
        config.retention_interval,
    );
    writer_config.read_lag = config.rollup_read_lag;
    let writer = Writer::spawn(writer_store, writer_config)?;
    {
        let (health, path) = (writer.health(), db_path.clone());
        tokio::task::spawn_blocking(move || {
            let result = quick_check(&path, INTEGRITY_CHECK_LIMIT);
            match &result {
                crate::ingest::writer::Integrity::Ok => tracing::debug!("database quick check: ok"),
                crate::ingest::writer::Integrity::Unfinished => tracing::info!(
                    limit_s = INTEGRITY_CHECK_LIMIT.as_secs(),
                    "database quick check did not finish in time; not checked"
                ),
                crate::ingest::writer::Integrity::Failed(why) => {
                    tracing::error!(problem = %why, "database quick check found corruption; restore a backup or run `sqlite3 routerstats.db .recover`")
                }
            }
            health.set_integrity(result);
        });
    }
    spawn_recent_rebuild(rebuild_store, recent.clone()).map_err(ServeError::Thread)?;
    let writer_tx = writer
        .sender()
        .ok_or_else(|| ServeError::Thread(std::io::Error::other("writer closed at start")))?;
    let control = Control::spawn(control_store, pki.clone(), config.client_cert_days)
        .map_err(ServeError::Thread)?;
    let conns = OpenConns::default();
    let poller = spawn_poller(poller_store, conns.clone(), config.revocation_poll)
        .map_err(ServeError::Thread)?;
    // Alerts: their own thread and connections, off the ingest path (see crate::alerts).
    let alerts = if config.alerts.enabled {
        Some(
            crate::alerts::AlertService::spawn(
                config.alerts.clone(),
                &db_path,
                Some(writer.health()),
            )
            .map_err(|source| ServeError::Store {
                path: db_path.clone(),
                source,
            })?,
        )
    } else {
        None
    };
    // Prometheus remote-write output, when a URL is configured (see crate::remote_write).
    let remote_write =
        crate::remote_write::RemoteWrite::spawn(config.remote_write.clone(), &db_path);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let ctx = Arc::new(IngestCtx {
        settings: IngestSettings {
            handshake_timeout: config.handshake_timeout,
            read_timeout: config.read_timeout,
            max_frame: config.max_frame,
            max_connections: config.max_connections,
            preauth_timeout: config.preauth_timeout,
        },
        acceptor: TlsAcceptor::from(tls),
        writer: writer_tx,
        control,
        conns: conns.clone(),
        health: writer.health(),
        permits: permits.clone(),
        preauth: PreAuthPool::new(config.preauth_max_connections, config.preauth_per_address),
        enroll_limiter: Arc::new(EnrollLimiter::new(EnrollLimits::default())),
        preauth_log: Default::default(),
        shutdown: shutdown_rx.clone(),
        actions: actions.clone(),
    });
    let _expirer = crate::actions::spawn_expirer(actions.clone(), shutdown_rx.clone());
    let accept_task = tokio::spawn(listener::accept_loop(ingest_listener, ctx.clone()));

    let jwt = match &config.jwt {
        Some(j) => {
            let v = api::jwt::JwtVerifier::new(j)?;
            tracing::info!(algorithm = v.algorithm(), role_claim = %j.role_claim, "JWT bearer tokens accepted");
            Some(Arc::new(v))
        }
        None => None,
    };
    let api_state = ApiState {
        store: Arc::new(Mutex::new(api_store)),
        ca_hash: pki.ca_hash(),
        cache: Arc::new(api::cache::ResponseCache::new(
            config.api_cache_max_age,
            api::cache::MAX_ENTRIES,
            config.api_cache_max_bytes,
            writer.health(),
            Some(config.db_path()),
        )),
        health: writer.health(),
        permits,
        max_connections: config.max_connections,
        conns,
        started,
        readers: Arc::new(
            api::readpool::ReadPool::new(config.db_path(), config.api_read_threads)
                .with_gate(writer.health())
                .with_threads(config.api_read_threads, config.api_read_nice),
        ),
        actions,
        isp_limits: config.isp_rate_limits.clone(),
        jwt,
        cors: config.cors.clone(),
        metrics_stations: config.metrics_stations,
        recent: recent.clone(),
    };
    let api_limits = HttpLimits {
        max_connections: config.api_max_connections,
        per_address: config.api_max_per_address,
        header_timeout: config.api_header_timeout,
    };
    let api_task = tokio::spawn(http_server::serve(
        api_listener,
        api::router(api_state).layer(axum::middleware::map_response(http_server::nosniff)),
        api_limits,
        shutdown_rx,
    ));
    tracing::info!(
        ingest = %ingest_addr,
        api = %api_addr,
        data_dir = %config.data_dir.display(),
        ca_hash = %routerstats_shared::token::hex(&pki.ca_hash()),
        "collector listening"
    );
    Ok(ServeHandle {
        ingest_addr,
        api_addr,
        ca_hash: pki.ca_hash(),
        shutdown_tx,
        accept_task,
        api_task: Some(api_task),
        ctx,
        writer,
        _poller: poller,
        alerts,
        remote_write,
        recent,
    })
}
