//! The agent's run loop: collect a report every interval, spool it, and keep one long-lived
//! mutual-TLS connection to the collector that delivers the spool.
//!
//! Two tasks share the spool:
//! - the collection loop (the caller's task) calls `collect` on the blocking pool every
//!   `interval`, numbers the report (`boot_id` random per start, `seq` from 1), records the
//!   running total of reports the spool has dropped in this run, and pushes the encoded frame;
//! - the connection task connects (`Hello` -> `HelloAck`), writes every spooled frame not yet
//!   written on this connection, in order, and removes a report when its `Ack` arrives. On any
//!   error or disconnect it reconnects with exponential backoff and jitter and, on the new
//!   connection, writes everything still unacked again (the collector acks duplicates), so
//!   nothing is lost unless the bounded spool overflows, and every drop is reported.
//!
//! On one connection, every report after the first goes out as a `ReportPatch` of its encoded
//! payload against the payload written just before it on the same connection, when that is
//! smaller (a steady-state report shrinks to about a sixth: mostly counters change). The agent
//! works on the encoded bytes only; the spool keeps full frames, and every new connection starts
//! with a full one. If a collector refuses a patch with a protocol error (one that predates
//! `ReportPatch`), the agent sends only full reports for the rest of the run.
//!
//! Renewal: when `HelloAck.renew_now` is set, or less than a third of the certificate's
//! lifetime remains (judged by the collector's clock from `HelloAck.server_time`, since a router
//! may boot with a wrong clock), the agent generates a new key and sends a `RenewRequest`; the
//! `RenewResponse` certificate is checked and installed atomically, and used from the next
//! connection on (the identity is re-read before every connection).
//!
//! With a spool file, the spool is saved after every new report and at shutdown. Acks received
//! since the last save are forgotten by a crash, so those reports are sent again after the
//! restart; the collector recognises and acks them as duplicates.
//!
//! Actions: an `Action` from the collector goes to the [`ActionRunner`] of [`RunOptions::actions`]
//! on the blocking pool (without one, it is answered `refused`); the result frame is written on
//! whichever connection is up when it is ready. A result lost with a connection is not resent by
//! the agent: the collector delivers the unanswered action again, and the runner answers from its
//! journal.
//!
//! `Error{Revoked}` is logged and retried at the maximum backoff: the agent never exits on its
//! own, so re-enrolling (or un-revoking) recovers without touching the service.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use routerstats_shared::frame::HEADER_LEN;
use routerstats_shared::io::{read_reply, write_request, IoError};
use routerstats_shared::message::frame_bytes;
use routerstats_shared::message::{ErrorCode, ErrorMsg, Hello, HelloAck, RenewRequest};
use routerstats_shared::{patch, FrameHeader, Message, MessageKind, Report, MAX_FRAME_LEN};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::enroll::{install_renewed, load_identity, make_key_and_csr, EnrollError, Identity};
use super::spool::{save_image, Spool, SpoolConfig};
use super::tls::{mtls_client_config, CollectorAddr, TlsError};
use super::{log, random_bytes, unix_now, unix_now_ms, ActionRunner, Jitter};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `host:port` of the collector; empty means the address recorded at enrollment.
    pub collector: String,
    pub config_dir: PathBuf,
    /// Time between two reports (default 30 s).
    pub interval: Duration,
    /// The first report is built after a random delay up to this (default: `interval`), so a
    /// fleet restarted together does not report in lockstep. 0 in tests.
    pub initial_jitter: Duration,
    pub spool: SpoolConfig,
    /// Reconnect delays grow from `backoff_min` (default 1 s) to `backoff_max` (default 15 s),
    /// each spread over its upper half; a collector's `retry in N s` hint replaces them.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Bound on connecting, the handshake, the HelloAck and each write (default 30 s).
    pub io_timeout: Duration,
    /// A connection with sent reports and no message from the collector for this long is
    /// considered dead and replaced (default 90 s).
    pub ack_timeout: Duration,
    pub hostname: String,
    pub agent_version: String,
    /// Runs the collector's actions; None answers every action `refused`.
    pub actions: Option<Runner>,
}

/// A shared [`ActionRunner`].
#[derive(Clone)]
pub struct Runner(pub Arc<dyn ActionRunner>);

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

impl RunOptions {
    /// Defaults for everything but the directory and the identity strings.
    pub fn new(config_dir: PathBuf, hostname: String, agent_version: String) -> Self {
        let interval = Duration::from_secs(30);
        RunOptions {
            collector: String::new(),
            config_dir,
            interval,
            initial_jitter: interval,
            spool: SpoolConfig::default(),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15),
            io_timeout: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(90),
            hostname,
            agent_version,
            actions: None,
        }
    }
}

/// Counters of one [`run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Reports built by `collect`.
    pub reports_built: u64,
    /// Report frames written to a connection (resends included).
    pub reports_sent: u64,
    /// Of those, sent as a `ReportPatch`.
    pub patches_sent: u64,
    /// Reports acked by the collector and removed from the spool.
    pub reports_acked: u64,
    /// Reports lost to spool overflow (or too large to encode).
    pub reports_dropped: u64,
    /// Connection attempts after the first one.
    pub reconnects: u64,
    /// Connections that got as far as a `HelloAck`.
    pub connections: u64,
    /// Certificates renewed and installed.
    pub renewals: u64,
    /// Reports still spooled when the run ended.
    pub spooled: u64,
}

/// Why [`run`] could not start or had to stop. Network trouble is never one: it is retried.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Identity(#[from] EnrollError),
    #[error("bad collector address: {0}")]
    Address(TlsError),
    #[error("collecting a report panicked: {0}")]
    CollectPanicked(String),
}

/// Why one connection ended (internal; logged, then retried).
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Identity(#[from] EnrollError),
    #[error(transparent)]
    Setup(#[from] TlsError),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("connection closed by the collector")]
    Closed,
    #[error("connection error: {0}")]
    Io(IoError),
    #[error("the collector revoked this router ({0}); re-enroll with a new token to recover")]
    Revoked(String),
    #[error("the collector refused ({code:?}): {message}")]
    Rejected { code: ErrorCode, message: String },
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl From<ErrorMsg> for SessionError {
    fn from(e: ErrorMsg) -> Self {
        match e.code {
            ErrorCode::Revoked => SessionError::Revoked(e.message),
            code => SessionError::Rejected {
                code,
                message: e.message,
            },
        }
    }
}

impl From<IoError> for SessionError {
    fn from(e: IoError) -> Self {
        match e {
            IoError::Closed => SessionError::Closed,
            e => SessionError::Io(e),
        }
    }
}

struct Shared {
    spool: Spool,
    stats: RunStats,
}

/// State shared by the collection loop and the connection task.
struct Ctx {
    shared: Mutex<Shared>,
    /// Signalled when a report was spooled.
    wake: Notify,
    addr: CollectorAddr,
    config_dir: PathBuf,
    boot_id: [u8; 16],
    hostname: String,
    agent_version: String,
    io_timeout: Duration,
    ack_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    /// Cleared when the collector refused a `ReportPatch`: full reports only from then on.
    patches: AtomicBool,
    /// Whether the current connection has sent a `ReportPatch`.
    patched_on_conn: AtomicBool,
    actions: Option<Runner>,
    /// Result frames of finished actions, written by whichever connection is up.
    results_tx: mpsc::UnboundedSender<Vec<u8>>,
    results_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    /// Collector clock minus local clock (seconds), from the last `HelloAck`. 32 bits: 32-bit
    /// MIPS (mips_24kc) has no 64-bit atomics; ±68 years is plenty.
    clock_offset: std::sync::atomic::AtomicI32,
}

impl Ctx {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> RunStats {
        let sh = self.lock();
        RunStats {
            reports_dropped: sh.spool.dropped_total(),
            spooled: sh.spool.len() as u64,
            ..sh.stats.clone()
        }
    }
}

/// Runs the agent until `shutdown` completes (see the module doc). Fails only when the agent is
/// not enrolled, the address is unusable, or `collect` panics.
pub async fn run<C>(
    opts: RunOptions,
    collect: C,
    shutdown: impl Future<Output = ()>,
) -> Result<RunStats, RunError>
where
    C: FnMut() -> Report + Send + 'static,
{
    let identity = load_identity(&opts.config_dir)?;
    let collector = if opts.collector.trim().is_empty() {
        identity.collector.clone()
    } else {
        opts.collector.clone()
    };
    let addr = CollectorAddr::parse(&collector).map_err(RunError::Address)?;
    let (spool, warnings) = Spool::open(opts.spool.clone());
    for w in warnings {
        log!("warn", "{w}");
    }
    if !spool.is_empty() {
        log!(
            "info",
            "{} reports from the spool file wait for delivery",
            spool.len()
        );
    }
    let (results_tx, results_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        shared: Mutex::new(Shared {
            spool,
            stats: RunStats::default(),
        }),
        wake: Notify::new(),
        addr,
        config_dir: opts.config_dir.clone(),
        boot_id: random_bytes::<16>(),
        hostname: opts.hostname.clone(),
        agent_version: opts.agent_version.clone(),
        io_timeout: opts.io_timeout,
        ack_timeout: opts.ack_timeout,
        backoff_min: opts.backoff_min.max(Duration::from_millis(1)),
        backoff_max: opts
            .backoff_max
            .max(opts.backoff_min)
            .max(Duration::from_millis(1)),
        patches: AtomicBool::new(true),
        patched_on_conn: AtomicBool::new(false),
        actions: opts.actions.clone(),
        results_tx,
        results_rx: tokio::sync::Mutex::new(results_rx),
        clock_offset: std::sync::atomic::AtomicI32::new(0),
    });
    log!(
        "info",
        "reporting to {} as {:?} (router id {}) every {:?}",
        ctx.addr,
        identity.name,
        identity.router_id,
        opts.interval
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conn = tokio::spawn(connection_loop(ctx.clone(), stop_rx));
    let result = collect_loop(&ctx, &opts, collect, shutdown).await;
    let _ = stop_tx.send(true);
    if timeout(Duration::from_secs(2), &mut conn).await.is_err() {
        conn.abort();
    }
    save_spool(&ctx).await;
    let stats = ctx.stats();
    log!(
        "info",
        "stopped: {} reports built, {} acked, {} dropped, {} still spooled",
        stats.reports_built,
        stats.reports_acked,
        stats.reports_dropped,
        stats.spooled
    );
    result.map(|()| stats)
}

/// Saves the spool to its file (if any) off the async threads.
async fn save_spool(ctx: &Ctx) {
    let image = {
        let sh = ctx.lock();
        sh.spool
            .config()
            .file
            .clone()
            .map(|path| (path, sh.spool.encode()))
    };
    if let Some((path, image)) = image {
        let res = tokio::task::spawn_blocking(move || save_image(&path, &image)).await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log!("warn", "cannot save the spool: {e}"),
            Err(e) => log!("warn", "cannot save the spool: {e}"),
        }
    }
}

async fn collect_loop<C>(
    ctx: &Ctx,
    opts: &RunOptions,
    mut collect: C,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError>
where
    C: FnMut() -> Report + Send + 'static,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let interval = opts.interval.max(Duration::from_millis(1));
    let mut next = later(Instant::now(), Jitter::new().up_to(opts.initial_jitter));
    let mut seq = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(()),
            _ = sleep_until(next) => {}
        }
        let (back, mut report) = tokio::task::spawn_blocking(move || {
            let report = collect();
            (collect, report)
        })
        .await
        .map_err(|e| RunError::CollectPanicked(e.to_string()))?;
        collect = back;

        seq += 1;
        report.seq = seq;
        report.boot_id = ctx.boot_id;
        if report.timestamp_ms == 0 {
            report.timestamp_ms = unix_now_ms();
        }
        if report.router.hostname.is_empty() {
            report.router.hostname = opts.hostname.clone();
        }
        if report.router.agent_version.is_empty() {
            report.router.agent_version = opts.agent_version.clone();
        }
        {
            let mut sh = ctx.lock();
            sh.stats.reports_built += 1;
            // A running total for this agent run (this boot id): whichever report gets through
            // tells the collector the whole count, and resends or lost acks cannot skew it.
            report.dropped_reports = sh.spool.dropped_total();
            match Message::Report(Box::new(report)).to_request_frame() {
                Ok(frame) => {
                    sh.spool.push(ctx.boot_id, seq, frame);
                }
                Err(e) => {
                    log!("error", "report {seq} cannot be encoded, dropped: {e}");
                    sh.spool.note_dropped(1);
                }
            }
        }
        ctx.wake.notify_one();
        if opts.spool.file.is_some() {
            save_spool(ctx).await;
        }
        next = later(next, interval);
        let now = Instant::now();
        if next <= now {
            // `collect` took longer than an interval: skip the missed ticks.
            next = later(now, interval);
        }
    }
}

/// Keeps one connection up (reconnecting with backoff) until told to stop.
async fn connection_loop(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut jitter = Jitter::new();
    let mut backoff = ctx.backoff_min;
    let mut attempts = 0u64;
    let mut last_error = String::new();
    let mut repeats = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        if attempts > 0 {
            ctx.lock().stats.reconnects += 1;
        }
        attempts += 1;
        let started = Instant::now();
        let mut progress = false;
        let err = match session(&ctx, &mut stop, &mut progress).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if matches!(
            err,
            SessionError::Rejected {
                code: ErrorCode::Protocol,
                ..
            }
        ) && ctx.patched_on_conn.load(Ordering::Relaxed)
            && ctx.patches.swap(false, Ordering::Relaxed)
        {
            log!(
                "warn",
                "the collector refused a report patch ({err}); sending full reports from now on"
            );
        }
        if progress || started.elapsed() >= ctx.backoff_max {
            backoff = ctx.backoff_min;
        }
        let revoked = matches!(err, SessionError::Revoked(_));
        // The collector may say when to come back (e.g. it is restarting): follow that, within
        // [backoff_min, backoff_max], instead of the growing backoff.
        let hint = match &err {
            SessionError::Rejected {
                code: ErrorCode::Unavailable,
                message,
            } => routerstats_shared::message::retry_hint(message),
            _ => None,
        };
        let delay = if revoked {
            jitter.spread(ctx.backoff_max)
        } else if let Some(h) = hint {
            jitter.spread(h.clamp(ctx.backoff_min, ctx.backoff_max))
        } else {
            jitter.spread(backoff)
        };
        if !revoked && hint.is_none() {
            backoff = backoff.saturating_mul(2).min(ctx.backoff_max);
        }
        let msg = err.to_string();
        if msg != last_error || progress {
            repeats = 0;
            let level = if revoked { "error" } else { "warn" };
            log!(
                level,
                "connection to {}: {msg}; retrying in {:.1}s",
                ctx.addr,
                delay.as_secs_f32()
            );
            last_error = msg;
        } else {
            repeats += 1;
            if repeats >= 10 {
                repeats = 0;
                log!(
                    "warn",
                    "connection to {} still failing (10 more times): {msg}",
                    ctx.addr
                );
            }
        }
        tokio::select! {
            _ = sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Closes the reader task when the session ends, whichever way.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Writer = WriteHalf<TlsStream<TcpStream>>;

async fn send(ctx: &Ctx, wr: &mut Writer, msg: &Message) -> Result<(), SessionError> {
    timeout(ctx.io_timeout, write_request(wr, msg))
        .await
        .map_err(|_| SessionError::Timeout("a write"))??;
    Ok(())
}

/// `t + d`, saturating at about a year ahead for absurd durations instead of panicking.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(t)
}

/// The frame to write for the spooled report `frame` on a connection whose previous report
/// payload was `prev`: a `ReportPatch` against `prev` when that is smaller, else the frame itself.
/// Remembers this report's payload in `prev` for the next one. Only current-model reports are
/// patched or patched against: a `ReportV1` frame left in the spool by an older agent version
/// goes out whole and resets `prev`.
fn compact(prev: &mut Option<Vec<u8>>, frame: Vec<u8>, patches: bool) -> (Vec<u8>, bool) {
    let is_report = FrameHeader::parse(&frame, MAX_FRAME_LEN)
        .is_ok_and(|h| h.kind == MessageKind::Report && h.len as usize + HEADER_LEN == frame.len());
    let Some(payload) = frame.get(HEADER_LEN..).filter(|_| is_report) else {
        *prev = None;
        return (frame, false);
    };
    let patched = prev
        .as_deref()
        .filter(|_| patches)
        .map(|base| patch::encode(base, payload))
        .filter(|p| p.len() < payload.len())
        .and_then(|p| frame_bytes(MessageKind::ReportPatch, &p).ok());
    *prev = Some(payload.to_vec());
    match patched {
        Some(p) => (p, true),
        None => (frame, false),
    }
}

/// How long a stopping connection still waits for acks of reports it already wrote.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// One connection, from connect to the first error (or `Ok` when told to stop).
async fn session(
    ctx: &Ctx,
    stop: &mut watch::Receiver<bool>,
    progress: &mut bool,
) -> Result<(), SessionError> {
    let mut conn = connect(ctx).await?;
    let ack = handshake(ctx, &mut conn).await?;
    let (local_now, server_now) = store_clock_offset(ctx, &ack);
    let mut results = ctx.results_rx.lock().await;
    warn_clock_skew(&ack, local_now, server_now);

    let mut waiting_since: Option<Instant> = None;
    let mut pending_key: Option<String> = None;
    let judge_now = if ack.server_time > 0 {
        server_now
    } else {
        local_now
    };
    renew_if_due(
        ctx,
        &mut conn,
        &ack,
        judge_now,
        &mut pending_key,
        &mut waiting_since,
    )
    .await?;

    let mut next_id = 0u64;
    // The payload of the last report written on this connection (what a patch is against).
    let mut prev_payload: Option<Vec<u8>> = None;
    ctx.patched_on_conn.store(false, Ordering::Relaxed);
    loop {
        let wrote = write_spooled(
            ctx,
            &mut conn,
            &mut next_id,
            &mut prev_payload,
            &mut waiting_since,
            &mut pending_key,
            progress,
        )
        .await?;
        if wrote {
            timeout(ctx.io_timeout, conn.wr.flush())
                .await
                .map_err(|_| SessionError::Timeout("a write"))?
                .map_err(|e| SessionError::Io(e.into()))?;
        }
        let deadline = waiting_since.map(|t| later(t, ctx.ack_timeout));
        let Conn { id, wr, rx, .. } = &mut conn;
        tokio::select! {
            _ = stop.changed() => {
                shut_down(ctx, id, wr, rx, &mut pending_key, next_id).await;
                return Ok(());
            }
            _ = ctx.wake.notified() => {}
            Some(frame) = results.recv() => {
                timeout(ctx.io_timeout, async { wr.write_all(&frame).await?; wr.flush().await })
                    .await
                    .map_err(|_| SessionError::Timeout("a write"))?
                    .map_err(|e| SessionError::Io(e.into()))?;
            }
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                return Err(SessionError::Timeout("acks from the collector"));
            }
            msg = rx.recv() => {
                let msg = msg.unwrap_or(Err(IoError::Closed));
                on_message(ctx, id, &mut pending_key, msg)?;
                *progress = true;
                let outstanding = pending_key.is_some() || ctx.lock().spool.has_sent_unacked(next_id);
                waiting_since = outstanding.then(Instant::now);
            }
        }
    }
}

/// An open connection: the reader task feeding `rx`, the write half, and the identity used.
/// Fields drop in this order: the reader is aborted first, the identity dropped last.
struct Conn {
    _reader: AbortOnDrop,
    rx: mpsc::Receiver<Result<Message, IoError>>,
    wr: Writer,
    id: Identity,
}

/// Connects over TCP and mutual TLS with the stored identity and starts the reader task.
async fn connect(ctx: &Ctx) -> Result<Conn, SessionError> {
    let id = load_identity(&ctx.config_dir)?;
    let config = mtls_client_config(&id.ca_pem, &id.cert_pem, &id.key_pem)?;
    let tcp = timeout(
        ctx.io_timeout,
        TcpStream::connect((ctx.addr.host.as_str(), ctx.addr.port)),
    )
    .await
    .map_err(|_| SessionError::Timeout("the TCP connection"))?
    .map_err(SessionError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let tls = timeout(
        ctx.io_timeout,
        TlsConnector::from(config).connect(ctx.addr.server_name.clone(), tcp),
    )
    .await
    .map_err(|_| SessionError::Timeout("the TLS handshake"))?
    .map_err(SessionError::Tls)?;
    let (mut rd, wr) = tokio::io::split(tls);
    let (tx, rx) = mpsc::channel::<Result<Message, IoError>>(64);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        loop {
            let m = read_reply(&mut rd, MAX_FRAME_LEN).await;
            let end = m.is_err();
            if tx.send(m).await.is_err() || end {
                break;
            }
        }
    }));
    Ok(Conn {
        _reader,
        rx,
        wr,
        id,
    })
}

/// Sends `Hello`, waits for the collector's `HelloAck` and counts the connection.
async fn handshake(ctx: &Ctx, conn: &mut Conn) -> Result<HelloAck, SessionError> {
    let Conn { wr, rx, .. } = conn;
    let spooled = u32::try_from(ctx.lock().spool.len()).unwrap_or(u32::MAX);
    let hello = Hello {
        agent_version: ctx.agent_version.clone(),
        hostname: ctx.hostname.clone(),
        boot_id: ctx.boot_id,
        spooled,
    };
    send(ctx, wr, &Message::Hello(hello)).await?;
    let ack = match timeout(ctx.io_timeout, rx.recv()).await {
        Err(_) => return Err(SessionError::Timeout("the collector's HelloAck")),
        Ok(None) => return Err(SessionError::Closed),
        Ok(Some(Err(e))) => return Err(e.into()),
        Ok(Some(Ok(Message::HelloAck(a)))) => a,
        Ok(Some(Ok(Message::Error(e)))) => return Err(e.into()),
        Ok(Some(Ok(other))) => {
            return Err(SessionError::Protocol(format!(
                "{:?} instead of HelloAck",
                other.kind()
            )))
        }
    };
    ctx.lock().stats.connections += 1;
    log!(
        "info",
        "connected to {} as {:?} ({} reports spooled)",
        ctx.addr,
        ack.router_name,
        spooled
    );
    Ok(ack)
}

/// Records the collector's clock minus ours from the `HelloAck`; returns (local, server) now.
fn store_clock_offset(ctx: &Ctx, ack: &HelloAck) -> (i64, i64) {
    let local_now = unix_now();
    let server_now = i64::try_from(ack.server_time).unwrap_or(i64::MAX);
    if ack.server_time > 0 {
        let offset = server_now.saturating_sub(local_now);
        let offset = i32::try_from(offset).unwrap_or(if offset < 0 { i32::MIN } else { i32::MAX });
        ctx.clock_offset.store(offset, Ordering::Relaxed);
    }
    (local_now, server_now)
}

/// Warns when the local clock is more than five minutes off the collector's.
fn warn_clock_skew(ack: &HelloAck, local_now: i64, server_now: i64) {
    if ack.server_time > 0 && (server_now - local_now).abs() > 300 {
        log!(
            "warn",
            "the local clock differs from the collector's by {} s",
            server_now - local_now
        );
    }
}

/// Asks for a new certificate when the collector says so or the current one is due.
async fn renew_if_due(
    ctx: &Ctx,
    conn: &mut Conn,
    ack: &HelloAck,
    judge_now: i64,
    pending_key: &mut Option<String>,
    waiting_since: &mut Option<Instant>,
) -> Result<(), SessionError> {
    let Conn { id, wr, .. } = conn;
    if ack.renew_now || id.validity.renew_due(judge_now) {
        let cn = if ack.router_name.is_empty() {
            id.name.clone()
        } else {
            ack.router_name.clone()
        };
        match make_key_and_csr(&cn) {
            Ok((key_pem, csr_pem)) => {
                log!(
                    "info",
                    "renewing the client certificate (expires at unix time {})",
                    id.validity.not_after
                );
                send(ctx, wr, &Message::RenewRequest(RenewRequest { csr_pem })).await?;
                *pending_key = Some(key_pem);
                *waiting_since = Some(Instant::now());
            }
            Err(e) => log!("warn", "cannot renew the certificate: {e}"),
        }
    }
    Ok(())
}

/// Writes every spooled report not yet written on this connection, taking replies meanwhile;
/// returns whether anything was written (and so needs a flush).
async fn write_spooled(
    ctx: &Ctx,
    conn: &mut Conn,
    next_id: &mut u64,
    prev_payload: &mut Option<Vec<u8>>,
    waiting_since: &mut Option<Instant>,
    pending_key: &mut Option<String>,
    progress: &mut bool,
) -> Result<bool, SessionError> {
    let Conn { id, wr, rx, .. } = conn;
    let mut wrote = false;
    loop {
        let next = ctx
            .lock()
            .spool
            .next_unsent(*next_id)
            .map(|e| (e.id, e.frame.clone()));
        let Some((entry_id, frame)) = next else { break };
        let (frame, is_patch) = compact(prev_payload, frame, ctx.patches.load(Ordering::Relaxed));
        if is_patch {
            ctx.patched_on_conn.store(true, Ordering::Relaxed);
        }
        timeout(ctx.io_timeout, wr.write_all(&frame))
            .await
            .map_err(|_| SessionError::Timeout("a write"))?
            .map_err(|e| SessionError::Io(e.into()))?;
        *next_id = entry_id.saturating_add(1);
        wrote = true;
        {
            let mut sh = ctx.lock();
            sh.stats.reports_sent += 1;
            sh.stats.patches_sent += u64::from(is_patch);
        }
        waiting_since.get_or_insert_with(Instant::now);
        // Take acks while a long backlog goes out, so neither side stalls on a full buffer.
        while let Ok(msg) = rx.try_recv() {
            on_message(ctx, id, pending_key, msg)?;
            *progress = true;
        }
    }
    Ok(wrote)
}

/// On stop: takes the answers to what was already written for a moment, then closes the TLS
/// session, so a clean restart neither resends those reports nor loses a renewal.
async fn shut_down(
    ctx: &Ctx,
    id: &Identity,
    wr: &mut Writer,
    rx: &mut mpsc::Receiver<Result<Message, IoError>>,
    pending_key: &mut Option<String>,
    next_id: u64,
) {
    let grace = Instant::now() + SHUTDOWN_GRACE;
    while pending_key.is_some() || ctx.lock().spool.has_sent_unacked(next_id) {
        match tokio::time::timeout_at(grace, rx.recv()).await {
            Ok(Some(msg)) => {
                if on_message(ctx, id, pending_key, msg).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let _ = timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// Hands an action to the runner on the blocking pool; its result frame goes to `results_tx`.
fn start_action(ctx: &Ctx, action: routerstats_shared::action::Action) {
    let tx = ctx.results_tx.clone();
    let Some(Runner(runner)) = ctx.actions.clone() else {
        let r = routerstats_shared::action::ActionResult::new(
            action.id,
            routerstats_shared::action::ActionState::Refused,
            "this agent runs no actions",
            None,
        );
        if let Ok(frame) = Message::ActionResult(r).to_request_frame() {
            let _ = tx.send(frame);
        }
        return;
    };
    let collector_now =
        unix_now().saturating_add(i64::from(ctx.clock_offset.load(Ordering::Relaxed)));
    tokio::task::spawn_blocking(move || {
        if let Some(frame) = runner.run(action, collector_now) {
            let _ = tx.send(frame);
        }
    });
}

/// Handles one message from the collector on an established connection.
fn on_message(
    ctx: &Ctx,
    id: &Identity,
    pending_key: &mut Option<String>,
    msg: Result<Message, IoError>,
) -> Result<(), SessionError> {
    match msg? {
        Message::Ack(a) => {
            let mut sh = ctx.lock();
            if sh.spool.ack(a.boot_id, a.seq) {
                sh.stats.reports_acked += 1;
            }
            Ok(())
        }
        Message::RenewResponse(r) => {
            match pending_key.take() {
                Some(key_pem) => {
                    match install_renewed(&ctx.config_dir, &id.ca_der, &key_pem, &r.cert_pem) {
                        Ok(v) => {
                            ctx.lock().stats.renewals += 1;
                            log!(
                            "info",
                            "certificate renewed, valid until unix time {}; used from the next connection",
                            v.not_after
                        );
                        }
                        Err(e) => log!("warn", "renewed certificate not installed: {e}"),
                    }
                }
                None => log!("warn", "ignoring a RenewResponse nobody asked for"),
            }
            Ok(())
        }
        Message::Error(e) => Err(e.into()),
        Message::Action(action) => {
            start_action(ctx, action);
            Ok(())
        }
        other => Err(SessionError::Protocol(format!(
            "unexpected {:?} message",
            other.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::enroll::{enroll, EnrollOptions, CERT_FILE, KEY_FILE};
    use crate::uplink::fake::{FakeCollector, Script};
    use crate::uplink::tls::{cert_fingerprint, check_key_matches, parse_certs_pem};
    use routerstats_shared::RouterFacts;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use tokio::sync::oneshot;

    async fn enrolled(fake: &FakeCollector, dir: &Path) {
        let opts = EnrollOptions {
            collector: fake.collector(),
            token: fake.token(),
            name: Some("ap-kitchen".to_string()),
            hostname: "OpenWrt".to_string(),
            config_dir: dir.to_path_buf(),
            timeout: Duration::from_secs(10),
            force: false,
        };
        enroll(opts).await.unwrap();
    }

    fn fast_options(dir: &Path) -> RunOptions {
        let mut o = RunOptions::new(
            dir.to_path_buf(),
            "ap-kitchen".to_string(),
            "0.1.0-test".to_string(),
        );
        o.interval = Duration::from_millis(30);
        o.initial_jitter = Duration::ZERO;
        o.backoff_min = Duration::from_millis(10);
        o.backoff_max = Duration::from_millis(100);
        o.io_timeout = Duration::from_secs(5);
        o
    }

    fn collect() -> impl FnMut() -> Report + Send + 'static {
        || Report {
            router: RouterFacts {
                arch: "mipsel".to_string(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Runs the agent until `driver` finishes, then shuts it down and returns its stats.
    async fn run_until(opts: RunOptions, driver: impl Future<Output = ()>) -> RunStats {
        let (tx, rx) = oneshot::channel::<()>();
        let agent = run(opts, collect(), async move {
            let _ = rx.await;
        });
        let drive = async move {
            driver.await;
            let _ = tx.send(());
        };
        let (stats, ()) = tokio::join!(agent, drive);
        stats.unwrap()
    }

    fn assert_conserved(s: &RunStats) {
        assert_eq!(
            s.reports_built,
            s.reports_acked + s.reports_dropped + s.spooled,
            "{s:?}"
        );
    }

    #[test]
    fn run_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let f = run(
            RunOptions::new(PathBuf::from("/nonexistent"), String::new(), String::new()),
            collect(),
            async {},
        );
        is_send(&f);
    }

    #[tokio::test]
    async fn not_enrolled_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(fast_options(dir.path()), collect(), async {})
            .await
            .unwrap_err();
        assert!(
            matches!(err, RunError::Identity(EnrollError::NotEnrolled(_))),
            "{err}"
        );
    }

    #[tokio::test]
    async fn reports_are_sent_acked_and_removed() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let stats = run_until(
            fast_options(dir.path()),
            fake.wait_for("3 acks", |s| s.acked.len() >= 3),
        )
        .await;
        assert!(stats.reports_acked >= 3, "{stats:?}");
        assert!(stats.reports_sent >= 3);
        assert_eq!(stats.connections, 1);
        assert_eq!(stats.reconnects, 0);
        assert_conserved(&stats);
        // After the first full report, the others went as patches the fake resolved.
        assert!(stats.patches_sent >= 2, "{stats:?}");
        assert_eq!(fake.seen().patches as u64, stats.patches_sent);
        assert!(
            stats.spooled <= 1,
            "acked reports stay in the spool: {stats:?}"
        );

        let seen = fake.seen();
        let first: Vec<_> = seen.reports.iter().take(3).map(|r| r.seq).collect();
        assert_eq!(first, vec![1, 2, 3]);
        assert!(seen
            .reports
            .iter()
            .all(|r| r.boot_id == seen.reports[0].boot_id && r.boot_id != [0; 16]));
        assert!(seen
            .reports
            .iter()
            .all(|r| r.timestamp_ms > 1_600_000_000_000 && r.hostname == "ap-kitchen"));
        let hello = &seen.hellos[0];
        assert_eq!(
            (hello.hostname.as_str(), hello.agent_version.as_str()),
            ("ap-kitchen", "0.1.0-test")
        );
        assert_eq!(hello.boot_id, seen.reports[0].boot_id);
    }

    #[tokio::test]
    async fn unacked_reports_are_resent_after_a_reconnect() {
        let fake = FakeCollector::start(Script {
            drop_first_conn_after: Some(3),
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let stats = run_until(
            fast_options(dir.path()),
            fake.wait_for("acks on the second connection", |s| {
                s.acked.iter().filter(|a| a.0 == 1).count() >= 3
            }),
        )
        .await;
        assert!(stats.reconnects >= 1, "{stats:?}");
        assert_conserved(&stats);
        let seen = fake.seen();
        let on_first: Vec<u64> = seen
            .reports
            .iter()
            .filter(|r| r.conn == 0)
            .map(|r| r.seq)
            .collect();
        assert_eq!(on_first, vec![1, 2, 3]);
        let on_second: Vec<u64> = seen
            .reports
            .iter()
            .filter(|r| r.conn == 1)
            .map(|r| r.seq)
            .take(3)
            .collect();
        assert_eq!(
            on_second,
            vec![1, 2, 3],
            "the unacked reports come again, in order"
        );
        let acked: Vec<u64> = seen.acked.iter().map(|a| a.2).collect();
        for seq in 1..=3 {
            assert!(acked.contains(&seq), "report {seq} lost");
        }
        assert_eq!(stats.reports_dropped, 0);
    }

    #[tokio::test]
    async fn a_collector_refusing_patches_gets_full_reports() {
        let fake = FakeCollector::start(Script {
            refuse_patches: true,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let stats = run_until(
            fast_options(dir.path()),
            fake.wait_for("4 acks", |s| s.acked.len() >= 4),
        )
        .await;
        // One patch refused (the connection closed), then full reports only.
        assert_eq!(stats.patches_sent, 1, "{stats:?}");
        assert_eq!(stats.reconnects, 1, "{stats:?}");
        assert_eq!(fake.seen().patches, 0);
        let acked: Vec<u64> = fake.seen().acked.iter().map(|a| a.2).collect();
        for seq in 1..=3 {
            assert!(acked.contains(&seq), "report {seq} lost: {acked:?}");
        }
        assert_conserved(&stats);
    }

    #[test]
    fn compact_patches_reports_after_the_first_only() {
        let report = |seq: u64| {
            Message::Report(Box::new(Report {
                seq,
                timestamp_ms: 1_700_000_000_000 + seq * 30_000,
                router: RouterFacts {
                    hostname: "ap-kitchen-with-a-long-name".to_string(),
                    ..Default::default()
                },
                ..Default::default()
            }))
            .to_frame()
            .unwrap()
        };
        let mut prev = None;
        let (first, p) = compact(&mut prev, report(1), true);
        assert!(!p);
        assert_eq!(first, report(1));
        let (second, p) = compact(&mut prev, report(2), true);
        assert!(p);
        assert!(second.len() < report(2).len());
        let h = FrameHeader::parse(&second, MAX_FRAME_LEN).unwrap();
        assert_eq!(h.kind, MessageKind::ReportPatch);
        let base = &report(1)[HEADER_LEN..];
        let back = patch::apply(base, &second[HEADER_LEN..], MAX_FRAME_LEN).unwrap();
        assert_eq!(back, &report(2)[HEADER_LEN..]);
        // Disabled: the full frame, but the payload is still remembered.
        let (third, p) = compact(&mut prev, report(3), false);
        assert!(!p);
        assert_eq!(third, report(3));
        assert_eq!(prev.as_deref(), Some(&report(3)[HEADER_LEN..]));
        // A version 1 report left in the spool by an older agent goes out whole, and is no base
        // for the next patch (the collector would decode a patch on it as version 1).
        let old = frame_bytes(MessageKind::ReportV1, &report(4)[HEADER_LEN..]).unwrap();
        let (fourth, p) = compact(&mut prev, old.clone(), true);
        assert!(!p);
        assert_eq!((fourth, prev.as_ref()), (old, None));
        let (fifth, p) = compact(&mut prev, report(5), true);
        assert!(!p);
        assert_eq!(fifth, report(5));
    }

    #[tokio::test]
    async fn spool_overflow_drops_oldest_and_reports_the_count() {
        let fake = FakeCollector::start(Script {
            ack: false,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let mut opts = fast_options(dir.path());
        opts.spool.max_reports = 2;
        let stats = run_until(
            opts,
            fake.wait_for("a report carrying drops", |s| {
                s.reports.iter().any(|r| r.dropped > 0)
            }),
        )
        .await;
        assert!(stats.reports_dropped >= 1, "{stats:?}");
        assert!(stats.spooled <= 2);
        assert_eq!(stats.reports_acked, 0);
        assert_conserved(&stats);
        let seen = fake.seen();
        let carrier = seen.reports.iter().find(|r| r.dropped > 0).unwrap();
        // Capacity 2: pushing report 3 drops report 1, so report 4 is the first to say so.
        assert!(carrier.seq >= 4, "{carrier:?}");
        assert_eq!(carrier.dropped, 1);
        assert!(seen
            .reports
            .iter()
            .filter(|r| r.seq < 4)
            .all(|r| r.dropped == 0));
    }

    #[tokio::test]
    async fn renew_now_replaces_the_certificate() {
        let fake = FakeCollector::start(Script {
            renew_now: true,
            close_after_renew: true,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let old_cert = std::fs::read_to_string(dir.path().join(CERT_FILE)).unwrap();
        let old_key = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        let stats = run_until(
            fast_options(dir.path()),
            fake.wait_for("a connection after the renewal", |s| {
                !s.renewed_certs.is_empty() && s.conn_fingerprints.len() >= 2
            }),
        )
        .await;
        assert_eq!(stats.renewals, 1, "{stats:?}");
        let new_cert = std::fs::read_to_string(dir.path().join(CERT_FILE)).unwrap();
        let new_key = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert_ne!(new_cert, old_cert);
        assert_ne!(new_key, old_key, "a renewal uses a fresh key");
        check_key_matches(&new_cert, &new_key).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let seen = fake.seen();
        assert_eq!(seen.renewed_certs[0], new_cert);
        assert_eq!(seen.renew_cns, vec!["ap-kitchen".to_string()]);
        let new_fp = cert_fingerprint(parse_certs_pem(&new_cert, "cert").unwrap()[0].as_ref());
        let old_fp = cert_fingerprint(parse_certs_pem(&old_cert, "cert").unwrap()[0].as_ref());
        assert_eq!(seen.conn_fingerprints[0], old_fp);
        assert_eq!(
            seen.conn_fingerprints[1], new_fp,
            "the next connection uses the new certificate"
        );
    }

    #[tokio::test]
    async fn certificate_in_its_last_third_is_renewed_without_being_asked() {
        // Issued 80 days ago for 90 days: 10 days left, less than a third.
        let fake = FakeCollector::start(Script {
            cert_from_offset: -80 * 86_400,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let stats = run_until(
            fast_options(dir.path()),
            fake.wait_for("a renewal", |s| !s.renewed_certs.is_empty()),
        )
        .await;
        // renew_now was false: the agent decided from the certificate's validity.
        assert_eq!(stats.renewals, 1, "{stats:?}");
        let installed = std::fs::read_to_string(dir.path().join(CERT_FILE)).unwrap();
        assert_eq!(installed, fake.seen().renewed_certs[0]);
        let v = load_identity(dir.path()).unwrap().validity;
        assert!(
            !v.renew_due(unix_now()),
            "the new certificate is fresh: {v:?}"
        );
    }

    #[tokio::test]
    async fn revoked_router_keeps_retrying_at_max_backoff() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        fake.set_script(|s| s.revoked = true);
        let started = Instant::now();
        let stats = run_until(
            fast_options(dir.path()),
            fake.wait_for("3 refused connections", |s| s.hellos.len() >= 3),
        )
        .await;
        // Two waits of at least half of backoff_max (100 ms) between three attempts.
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        assert!(stats.reconnects >= 2, "{stats:?}");
        assert_eq!(stats.connections, 0);
        assert_eq!(stats.reports_acked, 0);
        assert_conserved(&stats);
    }

    #[tokio::test]
    async fn collector_retry_hint_sets_the_reconnect_delay() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        fake.set_script(|s| {
            s.hello_error = Some(ErrorMsg::unavailable_retry("collector is shutting down", 1))
        });
        let mut opts = fast_options(dir.path());
        opts.backoff_max = Duration::from_secs(5);
        let started = Instant::now();
        let stats = run_until(
            opts,
            fake.wait_for("3 refused connections", |s| s.hellos.len() >= 3),
        )
        .await;
        // Two waits of 0.5-1 s (the hint, spread) instead of 10 + 20 ms of backoff.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1000), "{took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert!(stats.reconnects >= 2, "{stats:?}");
        assert_conserved(&stats);
    }

    #[test]
    fn backoff_is_capped_at_15_seconds_by_default() {
        let o = RunOptions::new(PathBuf::from("/x"), "n".into(), "v".into());
        assert_eq!(o.backoff_max, Duration::from_secs(15));
    }

    #[tokio::test]
    async fn reports_are_kept_while_the_collector_is_down() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down = l.local_addr().unwrap().to_string();
        drop(l);
        let mut opts = fast_options(dir.path());
        opts.collector = down;
        let stats = run_until(opts, tokio::time::sleep(Duration::from_millis(400))).await;
        assert!(stats.reports_built >= 3, "{stats:?}");
        assert_eq!(stats.spooled, stats.reports_built);
        assert!(stats.reconnects >= 2);
        assert_eq!(stats.connections, 0);
    }

    #[tokio::test]
    async fn spool_file_carries_reports_across_restarts() {
        let fake = FakeCollector::start(Script {
            ack: false,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let spool_file = dir.path().join("spool.bin");
        let mut opts = fast_options(dir.path());
        opts.spool.file = Some(spool_file.clone());

        let first = run_until(
            opts.clone(),
            fake.wait_for("3 reports", |s| s.reports.len() >= 3),
        )
        .await;
        assert_eq!(first.reports_acked, 0);
        let (saved, warnings) = Spool::open(opts.spool.clone());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(saved.len() as u64, first.spooled);
        assert!(saved.len() >= 3);
        let old_boot = fake.seen().reports[0].boot_id;

        fake.set_script(|s| s.ack = true);
        let second = run_until(
            opts.clone(),
            fake.wait_for("the old reports acked", |s| {
                s.acked.iter().filter(|a| a.1 == old_boot).count() >= saved.len()
            }),
        )
        .await;
        assert!(second.reports_acked >= saved.len() as u64, "{second:?}");
        let (after, _) = Spool::open(opts.spool.clone());
        assert!(
            after.iter().all(|e| e.boot_id != old_boot),
            "acked reports left in the spool file"
        );
        let seen = fake.seen();
        let new_boot = seen.hellos.last().unwrap().boot_id;
        assert_ne!(new_boot, old_boot, "a fresh boot id per start");
    }

    #[tokio::test]
    async fn corrupt_spool_file_does_not_stop_the_agent() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        enrolled(&fake, dir.path()).await;
        let spool_file = dir.path().join("spool.bin");
        std::fs::write(
            &spool_file,
            b"RSSPOOL1 garbage garbage garbage garbage garbage",
        )
        .unwrap();
        let mut opts = fast_options(dir.path());
        opts.spool.file = Some(spool_file.clone());
        let stats = run_until(opts, fake.wait_for("an ack", |s| !s.acked.is_empty())).await;
        assert!(stats.reports_acked >= 1);
        assert!(dir.path().join("spool.bin.corrupt").exists());
        assert!(Spool::open(SpoolConfig {
            file: Some(spool_file),
            ..SpoolConfig::default()
        })
        .1
        .is_empty());
    }
}
