//! The one database writer: batches reports from every connection into few SQLite transactions.
//!
//! Connections send [`IngestJob`]s through a bounded channel. The writer (its own thread, owning
//! the ingesting [`Store`]) takes the first job, then whatever else arrives within the batch
//! latency up to the batch size (without waiting once it holds an eighth of the batch size and
//! nothing more is queued), writes them in one transaction, and only after the commit sends
//! each job's [`Ack`] to its connection. When the commit fails (disk full, read-only file system,
//! ...) nothing is acknowledged: the writer records the failure in [`DbHealth`] (connections then
//! refuse new reports with `Unavailable`, so agents keep them spooled), retries the same batch with
//! backoff, and resumes when the database works again. It also runs retention periodically,
//! and after each commit (and while idle, until done) seals a few closed hours of raw samples
//! into blocks (`store::sealed`), each in its own small transaction after the acks were sent.
//!
//! Rollup sums: a store with a rollup hold (`Store::set_rollup_hold`) keeps the rollup sums of
//! committed reports in memory and writes them with a later batch. API readers must see them:
//! while a reader read within [`READ_QUIET`] the writer writes them with every batch (but with a
//! backlog, see below); otherwise
//! it marks them pending in [`DbHealth`] before committing, and a reader that finds them
//! pending asks the writer to write them and waits ([`DbHealth::settle_for_read`], used by the
//! API's read pool and by the alert evaluator's OpenVPN client rule, the one reader outside the
//! API that reads a rollup table; the remote-write output reads only raw rows). At start the writer first writes whatever a crash left unwritten (the store
//! rebuilds it from the raw rows), and at shutdown whatever it holds.
//!
//! Under a backlog (more jobs wait when the writer takes a batch) with readers active and a
//! non-zero [`WriterConfig::read_lag`], the writer writes the sums only when they are older than
//! half the lag, and allows reads while they are pending until the lag has passed since the
//! last write ([`DbHealth::allow_lagging_reads`]): such a read sees the rollup sums of every
//! report acked more than `read_lag` ago. Writing ~28 rollup rows per report with every batch
//! cost the writer 16% of its time per report under reads (BENCHMARKS.md).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

use routerstats_shared::message::{Ack, ErrorCode, ErrorMsg};
use routerstats_shared::model::Report;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::store::{
    IngestItem, IngestOutcome, Retention, RetentionStats, SealStats, Store, StoreError,
};

/// One report on its way to the database.
#[derive(Debug)]
pub struct IngestJob {
    pub router_id: i64,
    /// Collector time (Unix ms) when the report arrived.
    pub received_at_ms: i64,
    pub report: Box<Report>,
    /// Where the answer goes once the report is committed (or refused).
    pub reply: mpsc::UnboundedSender<WriterReply>,
}

/// The writer's answer for one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterReply {
    /// Committed (or already stored): send this ack.
    Ack(Ack),
    /// The database refuses the report itself (retrying cannot help): send this error and close.
    Rejected(ErrorMsg),
}

/// What the writer needs from the database (implemented by [`Store`]; tests use fakes).
pub trait IngestSink: Send + 'static {
    fn ingest(&mut self, items: &[IngestItem<'_>]) -> Result<Vec<IngestOutcome>, StoreError>;
    fn apply_retention(
        &mut self,
        now_ms: i64,
        policy: &Retention,
    ) -> Result<RetentionStats, StoreError>;
    /// Seals a bounded number of closed hours of raw samples (none by default).
    fn seal_step(&mut self, _now_ms: i64) -> Result<SealStats, StoreError> {
        Ok(SealStats::default())
    }
    /// Whether rollup sums may be held across batches (none by default).
    fn holds_rollups(&self) -> bool {
        false
    }
    /// Whether some committed reports' rollup sums are not in the rollup tables yet.
    fn rollups_pending(&self) -> bool {
        false
    }
    /// Write the held rollup sums with the next batch.
    fn flush_rollups_next_batch(&mut self) {}
    /// Writes the held rollup sums now.
    fn flush_rollups(&mut self) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// Writes the held rollup sums if their time has come (hold passed, another bucket).
    fn flush_due_rollups(&mut self) -> Result<bool, StoreError> {
        Ok(false)
    }
}

impl IngestSink for Store {
    fn ingest(&mut self, items: &[IngestItem<'_>]) -> Result<Vec<IngestOutcome>, StoreError> {
        Store::ingest(self, items)
    }
    fn apply_retention(
        &mut self,
        now_ms: i64,
        policy: &Retention,
    ) -> Result<RetentionStats, StoreError> {
        Store::apply_retention(self, now_ms, policy)
    }
    fn seal_step(&mut self, now_ms: i64) -> Result<SealStats, StoreError> {
        Store::seal_step(self, now_ms)
    }
    fn holds_rollups(&self) -> bool {
        Store::holds_rollups(self)
    }
    fn rollups_pending(&self) -> bool {
        Store::rollups_pending(self)
    }
    fn flush_rollups_next_batch(&mut self) {
        Store::flush_rollups_next_batch(self)
    }
    fn flush_rollups(&mut self) -> Result<bool, StoreError> {
        Store::flush_rollups(self)
    }
    fn flush_due_rollups(&mut self) -> Result<bool, StoreError> {
        Store::flush_due_rollups(self)
    }
}

/// The writer holds rollup sums across batches only when no API reader read for this long.
pub const READ_QUIET: Duration = Duration::from_secs(5);

/// How long a reader waits for pending rollup sums to be written before it reads anyway (the
/// database is failing, or the writer is stuck in a long commit).
pub const READ_WAIT: Duration = Duration::from_secs(10);

/// Milliseconds since the first call (the clock of [`DbHealth`]'s read times).
fn mono_ms() -> u64 {
    static START: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    u64::try_from(START.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// Whether the writer can currently commit, shared with connections and the API.
#[derive(Debug, Default)]
pub struct DbHealth {
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Bumped after every commit that wrote reports (the API response cache's "data changed").
    generation: AtomicU64,
    /// Result of the integrity check at start: None until it ran.
    integrity: Mutex<Option<Integrity>>,
    /// Rollup sums for readers: `epoch << 1 | pending`. The writer sets `pending` (in a new
    /// epoch) before a commit whose rollup sums it may hold, and clears it once they are
    /// written; a reader whose read snapshot began and ended in the same epoch, not pending,
    /// saw every committed report's rollup sums.
    rollups: AtomicU64,
    /// When a reader last read ([`mono_ms`]; 0: never).
    last_read_ms: AtomicU64,
    /// A reader waits for the pending sums.
    flush_wanted: AtomicBool,
    wake_writer: tokio::sync::Notify,
    rollups_written: (Mutex<()>, Condvar),
    /// When the sums were last all written ([`mono_ms`]).
    written_ms: AtomicU64,
    /// Until when ([`mono_ms`]) a reader may read while sums are pending (0: never).
    lag_until_ms: AtomicU64,
}

/// What the quick integrity check at start found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Ok,
    /// It did not finish within its time bound (the database is large or the disk slow).
    Unfinished,
    /// Corruption (SQLite's own words), or the error that stopped the check.
    Failed(String),
}

impl DbHealth {
    /// True while commits fail.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// The error of the latest failed commit while failing.
    pub fn last_error(&self) -> Option<String> {
        if !self.is_failing() {
            return None;
        }
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_failing(&self, err: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
        self.failing.store(true, Ordering::Release);
    }

    fn set_ok(&self) {
        self.failing.store(false, Ordering::Release);
    }

    /// Records the integrity check's result.
    pub fn set_integrity(&self, result: Integrity) {
        *self.integrity.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    }

    /// The integrity check's result (None while it runs).
    pub fn integrity(&self) -> Option<Integrity> {
        self.integrity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The data generation: changes after every committed batch of reports.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks that new data was committed.
    pub fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The rollup state (`epoch << 1 | pending`), see [`DbHealth::settle_for_read`].
    pub fn rollup_state(&self) -> u64 {
        self.rollups.load(Ordering::SeqCst)
    }

    /// Writer: rollup sums of committed reports are (or may be, from the next commit on) held
    /// in memory, or are all written.
    pub fn set_rollups_pending(&self, pending: bool) {
        let s = self.rollups.load(Ordering::SeqCst);
        if pending && s & 1 == 0 {
            self.rollups
                .store(((s >> 1) + 1) << 1 | 1, Ordering::SeqCst);
        } else if !pending {
            self.written_ms.store(mono_ms(), Ordering::SeqCst);
        }
        if !pending && s & 1 == 1 {
            let _guard = self
                .rollups_written
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.rollups.store(s & !1, Ordering::SeqCst);
            self.rollups_written.1.notify_all();
        }
    }

    /// Writer, before a commit whose sums it holds: reads may go on without them until
    /// `lag` has passed since they were last all written (zero: not at all).
    pub fn allow_lagging_reads(&self, lag: Duration) {
        let until = if lag.is_zero() {
            0
        } else {
            let lag = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX);
            self.written_ms.load(Ordering::SeqCst).saturating_add(lag)
        };
        self.lag_until_ms.store(until, Ordering::SeqCst);
    }

    /// Whether a read may go on now while sums are pending ([`DbHealth::allow_lagging_reads`]):
    /// its snapshot then holds the sums of every report acked before the last write.
    pub fn lagging_read_ok(&self) -> bool {
        mono_ms() <= self.lag_until_ms.load(Ordering::SeqCst)
    }

    /// Milliseconds since the rollup sums were last all written (0 when none are pending).
    pub fn rollups_age_ms(&self) -> u64 {
        if self.rollup_state() & 1 == 0 {
            return 0;
        }
        mono_ms().saturating_sub(self.written_ms.load(Ordering::SeqCst))
    }

    /// Reader, before it reads rollup tables: notes the read (the writer then writes the sums
    /// with every batch for [`READ_QUIET`]) and, when sums are pending, asks the writer to write
    /// them and waits up to `wait` (unless a lagging read is allowed). Returns the state to read
    /// in: the read is complete when its snapshot began while [`DbHealth::rollup_state`] still
    /// equals it (even, not pending), or lags by at most the writer's `read_lag` when
    /// [`DbHealth::lagging_read_ok`].
    pub fn settle_for_read(&self, wait: Duration) -> u64 {
        self.last_read_ms.store(mono_ms(), Ordering::Relaxed);
        let s = self.rollup_state();
        if s & 1 == 0 || self.lagging_read_ok() {
            return s;
        }
        self.flush_wanted.store(true, Ordering::SeqCst);
        self.wake_writer.notify_one();
        let guard = self
            .rollups_written
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (_guard, timeout) = self
            .rollups_written
            .1
            .wait_timeout_while(guard, wait, |_| self.rollup_state() & 1 == 1)
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() {
            tracing::debug!("rollup sums still pending after the read wait; reading without them");
        }
        self.rollup_state()
    }

    /// Whether a reader waits for the sums, or one read within `within`.
    fn readers(&self, within: Duration) -> Readers {
        let last = self.last_read_ms.load(Ordering::Relaxed);
        let within = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
        if self.flush_wanted.swap(false, Ordering::SeqCst) {
            Readers::Waiting
        } else if last > 0 && mono_ms().saturating_sub(last) <= within {
            Readers::Active
        } else {
            Readers::Quiet
        }
    }
}

/// What the writer knows of the readers before a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readers {
    /// None read within [`READ_QUIET`].
    Quiet,
    /// One read within [`READ_QUIET`].
    Active,
    /// One waits for the pending sums.
    Waiting,
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub batch_max: usize,
    pub batch_latency: Duration,
    pub retention: Retention,
    pub retention_interval: Duration,
    /// First retry delay after a failed commit; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Capacity of the job channel.
    pub queue: usize,
    /// With a backlog and readers active, how far the rollup sums readers see may lag (see the
    /// module doc; zero: they are written with every batch while readers are active).
    pub read_lag: Duration,
}

impl WriterConfig {
    /// Settings for a batch size and latency, with defaults for the rest.
    pub fn new(
        batch_max: usize,
        batch_latency: Duration,
        retention: Retention,
        retention_interval: Duration,
    ) -> Self {
        WriterConfig {
            batch_max: batch_max.max(1),
            batch_latency,
            retention,
            retention_interval,
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(10),
            queue: batch_max.max(1).saturating_mul(2),
            read_lag: Duration::ZERO,
        }
    }
}

/// Handle on the running writer thread.
pub struct Writer {
    tx: Option<mpsc::Sender<IngestJob>>,
    health: Arc<DbHealth>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why the writer could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the database writer thread: {0}")]
pub struct WriterSpawnError(#[from] std::io::Error);

impl Writer {
    /// Starts the writer thread around `sink`.
    pub fn spawn<S: IngestSink>(sink: S, cfg: WriterConfig) -> Result<Writer, WriterSpawnError> {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let health = Arc::new(DbHealth::default());
        let (stop, stop_rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let h = health.clone();
        let thread = std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || rt.block_on(run(sink, rx, cfg, h, stop_rx)))?;
        Ok(Writer {
            tx: Some(tx),
            health,
            stop,
            thread: Some(thread),
        })
    }

    /// A sender for jobs. Returns a closed sender after [`Writer::join`] started.
    pub fn sender(&self) -> Option<mpsc::Sender<IngestJob>> {
        self.tx.clone()
    }

    pub fn health(&self) -> Arc<DbHealth> {
        self.health.clone()
    }

    /// Drops this handle's sender and waits (blocking) until the thread has written every queued
    /// job. The writer exits when every other sender is dropped too; after `grace` it stops taking
    /// jobs and gives up on a batch that cannot be committed (those reports stay unacknowledged,
    /// so agents resend them).
    pub fn join(mut self, grace: Duration) {
        self.tx = None;
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = std::time::Instant::now() + grace;
        while !thread.is_finished() {
            if std::time::Instant::now() >= deadline {
                let _ = self.stop.send(true);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = thread.join();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A writer dropped without `join` stops taking jobs and does not retry forever.
        let _ = self.stop.send(true);
    }
}

/// The batch size from which the writer stops waiting `batch_latency` for more reports when
/// none is queued: an eighth of `batch_max` (256 by default).
fn full_enough(cfg: &WriterConfig) -> usize {
    cfg.batch_max.div_ceil(8)
}

/// Nice value of the thread that frees committed batches ([`Release`]).
const RELEASE_NICE: i32 = 5;

/// Batches waiting for the release thread at most; beyond, the writer frees them itself.
const RELEASE_QUEUE: usize = 4;

/// Frees committed batches (the decoded reports: their strings and vectors) on a thread of
/// their own at a lower priority: freeing them was about 4% of the writer's time per report
/// (perf; BENCHMARKS.md), and the writer is the ingest's critical path.
struct Release<T: Send + 'static>(Option<std::sync::mpsc::SyncSender<T>>);

impl<T: Send + 'static> Release<T> {
    /// Starts the release thread; without one (it could not start) values are dropped in place.
    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<T>(RELEASE_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("db-release".into())
            .spawn(move || {
                let _ = crate::thread_priority::set_this_thread_nice(RELEASE_NICE);
                for value in rx {
                    drop(value);
                }
            });
        match spawned {
            Ok(_) => Release(Some(tx)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the release thread; the writer frees its batches itself");
                Release(None)
            }
        }
    }

    /// Hands `value` to the release thread (dropped here when its queue is full or it is gone).
    fn give(&self, value: T) {
        if let Some(tx) = &self.0 {
            // A full queue or a gone thread hands the value back in the error, dropped here.
            let _ = tx.try_send(value);
        }
    }
}

async fn run<S: IngestSink>(
    mut sink: S,
    mut rx: mpsc::Receiver<IngestJob>,
    cfg: WriterConfig,
    health: Arc<DbHealth>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = cfg.retention_interval.max(Duration::from_secs(1));
    let mut next_retention = Instant::now() + interval.min(Duration::from_secs(60));
    let mut stopping = false;
    // Sealing work may be waiting from the start (a database from before the block layout).
    let mut seal_more = true;
    // Rollup sums a crash left unwritten: rebuilt from the raw rows and written first.
    flush_rollups(&mut sink, &health);
    let release = Release::start();
    loop {
        let first = tokio::select! {
            job = rx.recv() => match job {
                Some(j) => j,
                None => break,
            },
            _ = health.wake_writer.notified() => {
                flush_rollups(&mut sink, &health);
                continue;
            }
            // Idle with held sums: write them once their time has come.
            _ = tokio::time::sleep(ROLLUP_IDLE_CHECK), if !stopping && sink.rollups_pending() => {
                if let Err(e) = sink.flush_due_rollups() {
                    tracing::warn!(error = %e, "writing the held rollup sums failed; will try again");
                }
                health.set_rollups_pending(sink.rollups_pending());
                continue;
            }
            _ = stop.changed(), if !stopping => {
                // Give-up time: take no more jobs, write what is queued and exit.
                stopping = true;
                rx.close();
                continue;
            }
            _ = tokio::time::sleep_until(next_retention) => {
                run_retention(&mut sink, &cfg.retention);
                next_retention = Instant::now() + interval;
                seal_more = true;
                continue;
            }
            _ = tokio::time::sleep(SEAL_IDLE), if seal_more && !stopping => {
                seal_more = run_seal(&mut sink, &health);
                continue;
            }
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + cfg.batch_latency;
        while batch.len() < cfg.batch_max {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                // Nothing more waiting. A batch that already shares its commit among many
                // reports is written at once: waiting would idle the writer, the ingest's
                // critical path, while a backlog builds up behind it (BENCHMARKS.md).
                Err(mpsc::error::TryRecvError::Empty) if batch.len() >= full_enough(&cfg) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(j)) => batch.push(j),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        let readers = health.readers(READ_QUIET);
        if sink.holds_rollups()
            && readers == Readers::Active
            && may_lag(&cfg, &health, &rx, batch.len())
        {
            health.allow_lagging_reads(cfg.read_lag);
            health.set_rollups_pending(true);
        } else if readers != Readers::Quiet {
            // (A lag allowed before still holds: the written sums are as old as it says.)
            sink.flush_rollups_next_batch();
        } else if sink.holds_rollups() {
            health.set_rollups_pending(true);
        }
        commit(&mut sink, batch, &cfg, &health, &mut stop, &release).await;
        health.set_rollups_pending(sink.rollups_pending());
        if !stopping {
            seal_more = run_seal(&mut sink, &health) || seal_more;
        }
    }
    flush_rollups(&mut sink, &health);
    tracing::debug!("database writer stopped");
}

/// Whether the batch about to be written may leave its rollup sums held while readers are
/// active: the writer is working through a backlog, a lag is allowed, and the sums written last
/// are younger than half of it (reads made during this batch's commit then lag by less than it).
///
/// A backlog: more jobs are queued, or the batch found at least [`full_enough`] of them queued
/// at once (a batch of one never counts). The second matters since batches stop waiting at that
/// size: agents send their next reports once acked, so under a backlog the queue is often empty
/// for the moment the writer looks.
fn may_lag(
    cfg: &WriterConfig,
    health: &DbHealth,
    rx: &mpsc::Receiver<IngestJob>,
    batch_len: usize,
) -> bool {
    let half = u64::try_from(cfg.read_lag.as_millis() / 2).unwrap_or(u64::MAX);
    let backlog = !rx.is_empty() || batch_len >= full_enough(cfg).max(2);
    !cfg.read_lag.is_zero() && backlog && health.rollups_age_ms() < half
}

/// Writes the held rollup sums; a failure is logged (the sums stay pending and are rebuilt
/// from the raw rows at the next try).
fn flush_rollups<S: IngestSink>(sink: &mut S, health: &DbHealth) {
    if let Err(e) = sink.flush_rollups() {
        tracing::warn!(error = %e, "writing the held rollup sums failed; will try again");
    }
    health.set_rollups_pending(sink.rollups_pending());
}

/// How often an idle writer holding rollup sums checks whether to write them.
const ROLLUP_IDLE_CHECK: Duration = Duration::from_secs(1);

/// How long the writer waits idle before sealing more while sealing work is waiting.
const SEAL_IDLE: Duration = Duration::from_millis(20);

/// One sealing step; returns whether more work is waiting. Failures are logged and retried at
/// the next step (the rows stay rows meanwhile, so nothing is lost).
fn run_seal<S: IngestSink>(sink: &mut S, health: &DbHealth) -> bool {
    if health.is_failing() {
        return false;
    }
    match sink.seal_step(now_ms()) {
        Ok(s) => {
            // Sealing changes no answer, so the API's cached answers stay valid.
            if s.groups > 0 {
                tracing::debug!(
                    groups = s.groups,
                    rows = s.rows,
                    blocks = s.blocks,
                    "sealed raw samples"
                );
            }
            s.more
        }
        Err(e) => {
            tracing::warn!(error = %e, "sealing raw samples failed; will try again");
            false
        }
    }
}

fn run_retention<S: IngestSink>(sink: &mut S, policy: &Retention) {
    let started = std::time::Instant::now();
    match sink.apply_retention(now_ms(), policy) {
        Ok(stats) => tracing::info!(
            reports = stats.reports,
            samples = stats.samples,
            rollup_5m = stats.rollup_5m,
            rollup_1h = stats.rollup_1h,
            took_ms = started.elapsed().as_millis() as u64,
            "retention applied"
        ),
        Err(e) => tracing::warn!(error = %e, "retention failed; will try again next interval"),
    }
}

/// Whether a failed write may succeed later unchanged (disk full, read-only, locked, I/O), as
/// opposed to a report the database refuses for what it is.
pub fn is_transient(e: &StoreError) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        StoreError::Io(_) => true,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => !matches!(
            f.code,
            C::ConstraintViolation
                | C::TypeMismatch
                | C::TooBig
                | C::ParameterOutOfRange
                | C::ApiMisuse
        ),
        _ => false,
    }
}

fn items(batch: &[IngestJob]) -> Vec<IngestItem<'_>> {
    batch
        .iter()
        .map(|j| IngestItem {
            router_id: j.router_id,
            received_at_ms: j.received_at_ms,
            report: &j.report,
        })
        .collect()
}

fn ack(job: &IngestJob) {
    // A closed connection simply misses its ack; the agent resends and gets a duplicate ack later.
    let _ = job.reply.send(WriterReply::Ack(Ack {
        boot_id: job.report.boot_id,
        seq: job.report.seq,
    }));
}

fn reject(job: &IngestJob, e: &StoreError) {
    tracing::error!(
        router_id = job.router_id,
        seq = job.report.seq,
        error = %e,
        "the database refuses this report; it is not acknowledged"
    );
    let code = if matches!(e, StoreError::NotFound(_)) {
        ErrorCode::Revoked
    } else {
        ErrorCode::Internal
    };
    let message = format!("the collector cannot store report {}: {e}", job.report.seq);
    let _ = job
        .reply
        .send(WriterReply::Rejected(ErrorMsg { code, message }));
}

/// Writes one batch, retrying until it commits (or the writer is told to give up), then acks it.
///
/// A transient failure keeps the whole batch and retries it with backoff. A permanent one (the
/// database refuses some report itself) must not block everybody else: the batch is retried one
/// report at a time, and only the refused reports are rejected.
async fn commit<S: IngestSink>(
    sink: &mut S,
    mut batch: Vec<IngestJob>,
    cfg: &WriterConfig,
    health: &DbHealth,
    stop: &mut watch::Receiver<bool>,
    release: &Release<Vec<IngestJob>>,
) {
    let mut delay = cfg.retry_min;
    loop {
        let started = std::time::Instant::now();
        let result = sink.ingest(&items(&batch));
        match result {
            Ok(outcomes) => {
                if health.is_failing() {
                    tracing::info!("database writes work again; acknowledging reports");
                }
                health.set_ok();
                health.bump_generation();
                let duplicates = outcomes
                    .iter()
                    .filter(|o| **o == IngestOutcome::Duplicate)
                    .count();
                tracing::debug!(
                    reports = batch.len(),
                    duplicates,
                    took_ms = started.elapsed().as_millis() as u64,
                    "batch committed"
                );
                batch.iter().for_each(ack);
                release.give(batch);
                return;
            }
            Err(e) if !is_transient(&e) => {
                health.set_ok();
                if let [job] = batch.as_slice() {
                    reject(job, &e);
                    return;
                }
                tracing::warn!(error = %e, reports = batch.len(), "batch refused; writing its reports one by one");
                let mut again = Vec::new();
                for job in batch {
                    match sink.ingest(&items(std::slice::from_ref(&job))) {
                        Ok(_) => {
                            health.bump_generation();
                            ack(&job)
                        }
                        Err(e) if is_transient(&e) => again.push(job),
                        Err(e) => reject(&job, &e),
                    }
                }
                if again.is_empty() {
                    return;
                }
                batch = again;
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    reports = batch.len(),
                    retry_in_ms = delay.as_millis() as u64,
                    "database write failed; reports are not acknowledged and stay spooled on the routers"
                );
                health.set_failing(e.to_string());
                if *stop.borrow() {
                    tracing::warn!(
                        reports = batch.len(),
                        "giving up on an uncommitted batch at shutdown"
                    );
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {}
                }
                delay = (delay * 2).min(cfg.retry_max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A report the fake database always refuses.
    const POISON: u64 = 666;

    /// Sends the name of the thread it is dropped on.
    struct DropProbe(std::sync::mpsc::Sender<Option<String>>);

    impl Drop for DropProbe {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().name().map(String::from));
        }
    }

    #[test]
    fn committed_batches_are_freed_on_the_release_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        let release = Release::start();
        release.give(vec![DropProbe(tx.clone()), DropProbe(tx.clone())]);
        for _ in 0..2 {
            let on = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(on.as_deref(), Some("db-release"));
        }
        // Without a release thread (it could not start) the value is dropped in place.
        Release(None).give(vec![DropProbe(tx)]);
        let here = std::thread::current().name().map(String::from);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), here);
    }

    /// (router id, seq) of every report of one committed batch.
    type Batch = Vec<(i64, u64)>;

    /// A sink that fails while `fail` is set and records every batch it committed.
    #[derive(Clone, Default)]
    struct FakeSink {
        fail: Arc<AtomicBool>,
        batches: Arc<Mutex<Vec<Batch>>>,
        attempts: Arc<AtomicUsize>,
        retention_runs: Arc<AtomicUsize>,
    }

    impl IngestSink for FakeSink {
        fn ingest(&mut self, items: &[IngestItem<'_>]) -> Result<Vec<IngestOutcome>, StoreError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Io(std::io::Error::other("disk full")));
            }
            if items.iter().any(|i| i.report.seq == POISON) {
                return Err(StoreError::InvalidInput("poison".into()));
            }
            let mut seen = self.batches.lock().unwrap();
            let all: Vec<(i64, u64)> = seen.iter().flatten().copied().collect();
            let outcomes = items
                .iter()
                .map(|i| {
                    if all.contains(&(i.router_id, i.report.seq)) {
                        IngestOutcome::Duplicate
                    } else {
                        IngestOutcome::Stored
                    }
                })
                .collect();
            seen.push(items.iter().map(|i| (i.router_id, i.report.seq)).collect());
            Ok(outcomes)
        }
        fn apply_retention(
            &mut self,
            _now_ms: i64,
            _p: &Retention,
        ) -> Result<RetentionStats, StoreError> {
            self.retention_runs.fetch_add(1, Ordering::SeqCst);
            Ok(RetentionStats::default())
        }
    }

    fn job(seq: u64, reply: &mpsc::UnboundedSender<WriterReply>) -> IngestJob {
        let report = Report {
            seq,
            boot_id: [5; 16],
            ..Default::default()
        };
        IngestJob {
            router_id: 1,
            received_at_ms: 0,
            report: Box::new(report),
            reply: reply.clone(),
        }
    }

    async fn next_reply(rx: &mut mpsc::UnboundedReceiver<WriterReply>) -> WriterReply {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    async fn next_ack(rx: &mut mpsc::UnboundedReceiver<WriterReply>) -> Ack {
        match next_reply(rx).await {
            WriterReply::Ack(a) => a,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    /// Sends a job of each sequence number, in order, replying on `reply`.
    async fn send_jobs(
        tx: &mpsc::Sender<IngestJob>,
        seqs: impl IntoIterator<Item = u64>,
        reply: &mpsc::UnboundedSender<WriterReply>,
    ) {
        for seq in seqs {
            tx.send(job(seq, reply)).await.unwrap();
        }
    }

    /// Closes the test's sender and waits for the writer to finish.
    async fn stop(writer: Writer, tx: mpsc::Sender<IngestJob>) {
        drop(tx);
        tokio::task::spawn_blocking(move || writer.join(Duration::from_secs(1)))
            .await
            .unwrap();
    }

    fn cfg(batch_max: usize, latency_ms: u64) -> WriterConfig {
        let mut c = WriterConfig::new(
            batch_max,
            Duration::from_millis(latency_ms),
            Retention::default(),
            Duration::from_secs(3600),
        );
        c.retry_min = Duration::from_millis(20);
        c.retry_max = Duration::from_millis(40);
        c
    }

    #[tokio::test]
    async fn batches_many_reports_and_acks_after_commit() {
        let sink = FakeSink::default();
        let writer = Writer::spawn(sink.clone(), cfg(512, 50)).unwrap();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let tx = writer.sender().unwrap();
        send_jobs(&tx, 1..=100, &ack_tx).await;
        for seq in 1..=100 {
            let ack = next_ack(&mut ack_rx).await;
            assert_eq!(ack.seq, seq);
            assert_eq!(ack.boot_id, [5; 16]);
        }
        let batches = sink.batches.lock().unwrap().len();
        assert!(
            batches < 10,
            "100 quick reports should need few transactions, took {batches}"
        );
        stop(writer, tx).await;
    }

    #[tokio::test]
    async fn a_batch_large_enough_is_written_without_waiting_for_more() {
        let sink = FakeSink::default();
        // batch_max 64: from 8 reports on, an empty queue ends the batch; the latency is long.
        let writer = Writer::spawn(sink.clone(), cfg(64, 60_000)).unwrap();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let tx = writer.sender().unwrap();
        send_jobs(&tx, 1..=20, &ack_tx).await;
        // Waiting out the latency would take a minute; `next_ack` gives up after 5 s.
        for seq in 1..=20 {
            assert_eq!(next_ack(&mut ack_rx).await.seq, seq);
        }
        stop(writer, tx).await;
        // Below that size it still waits for more: two reports, then two more within the
        // latency, all in one batch.
        let sink = FakeSink::default();
        let writer = Writer::spawn(sink.clone(), cfg(64, 2_000)).unwrap();
        let tx = writer.sender().unwrap();
        send_jobs(&tx, 1..=2, &ack_tx).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        send_jobs(&tx, 3..=4, &ack_tx).await;
        for _ in 1..=4 {
            next_ack(&mut ack_rx).await;
        }
        assert_eq!(
            *sink.batches.lock().unwrap(),
            vec![(1..=4).map(|s| (1, s)).collect::<Batch>()]
        );
        stop(writer, tx).await;
    }

    /// A sink that holds rollup sums like the store: it writes them with a batch only when
    /// asked (`flush_rollups_next_batch`), and records per committed batch whether it did.
    #[derive(Clone, Default)]
    struct HoldingSink {
        wrote: Arc<Mutex<Vec<bool>>>,
        flush_next: bool,
        pending: bool,
        /// How long each batch takes.
        delay: Duration,
    }

    impl IngestSink for HoldingSink {
        fn ingest(&mut self, items: &[IngestItem<'_>]) -> Result<Vec<IngestOutcome>, StoreError> {
            std::thread::sleep(self.delay);
            let wrote = std::mem::take(&mut self.flush_next);
            self.pending = !wrote;
            self.wrote.lock().unwrap().push(wrote);
            Ok(items.iter().map(|_| IngestOutcome::Stored).collect())
        }
        fn apply_retention(&mut self, _: i64, _: &Retention) -> Result<RetentionStats, StoreError> {
            Ok(RetentionStats::default())
        }
        fn holds_rollups(&self) -> bool {
            true
        }
        fn rollups_pending(&self) -> bool {
            self.pending
        }
        fn flush_rollups_next_batch(&mut self) {
            self.flush_next = true;
        }
        fn flush_rollups(&mut self) -> Result<bool, StoreError> {
            Ok(std::mem::take(&mut self.pending))
        }
    }

    /// Runs 20 one-report batches of 20 ms each, queued at once, while a reader reads; checks
    /// a read in the middle of the backlog. Returns per batch whether it wrote the sums.
    async fn backlog_with_reader(read_lag: Duration) -> Vec<bool> {
        let sink = HoldingSink {
            delay: Duration::from_millis(20),
            ..Default::default()
        };
        let mut c = cfg(1, 0);
        c.queue = 64;
        c.read_lag = read_lag;
        let writer = Writer::spawn(sink.clone(), c).unwrap();
        let health = writer.health();
        health.settle_for_read(Duration::from_secs(5));
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let tx = writer.sender().unwrap();
        send_jobs(&tx, 1..=20, &ack_tx).await;
        for seq in 1..=20 {
            assert_eq!(next_ack(&mut ack_rx).await.seq, seq);
            if seq == 8 {
                let h = health.clone();
                let started = std::time::Instant::now();
                let state = tokio::task::spawn_blocking(move || h.settle_for_read(READ_WAIT))
                    .await
                    .unwrap();
                if read_lag.is_zero() {
                    assert_eq!(state & 1, 0, "every batch wrote its sums: none pending");
                } else {
                    assert_eq!(state & 1, 1, "sums held under the backlog");
                    assert!(health.lagging_read_ok(), "the read may lag");
                    assert!(
                        started.elapsed() < Duration::from_secs(5),
                        "the read did not wait"
                    );
                }
            }
        }
        stop(writer, tx).await;
        let wrote = sink.wrote.lock().unwrap().clone();
        assert_eq!(wrote.len(), 20);
        wrote
    }

    #[tokio::test]
    async fn under_a_backlog_readers_may_lag_instead_of_a_write_per_batch() {
        let wrote = backlog_with_reader(Duration::from_secs(60)).await;
        // The first batch may find the queue still empty; the backlog's batches hold the sums
        // (the last written less than 30 s ago), the last one, with nothing queued, writes them.
        assert!(
            wrote[1..19].iter().all(|w| !w),
            "held under the backlog: {wrote:?}"
        );
        assert!(wrote[19], "written once the backlog is gone: {wrote:?}");
    }

    #[test]
    fn a_batch_that_found_many_reports_queued_is_a_backlog_even_with_the_queue_empty() {
        let mut c = cfg(64, 20);
        c.read_lag = Duration::from_secs(60);
        let health = DbHealth::default();
        let (tx, rx) = mpsc::channel::<IngestJob>(4);
        // full_enough(64) = 8: the writer stopped waiting for more at that size.
        assert!(may_lag(&c, &health, &rx, 8));
        assert!(
            !may_lag(&c, &health, &rx, 7),
            "a small batch with nothing queued"
        );
        let (ack_tx, _ack_rx) = mpsc::unbounded_channel();
        tx.try_send(job(1, &ack_tx)).unwrap();
        assert!(may_lag(&c, &health, &rx, 1), "more reports queued");
        // A batch of one alone is never a backlog (batch_max 1: full_enough is 1).
        let mut one = cfg(1, 20);
        one.read_lag = Duration::from_secs(60);
        let (_tx, empty) = mpsc::channel::<IngestJob>(4);
        assert!(!may_lag(&one, &health, &empty, 1));
        // No lag configured: never.
        c.read_lag = Duration::ZERO;
        assert!(!may_lag(&c, &health, &rx, 64));
    }

    #[tokio::test]
    async fn without_a_read_lag_every_batch_writes_the_sums_while_read() {
        let wrote = backlog_with_reader(Duration::ZERO).await;
        assert!(wrote.iter().all(|w| *w), "{wrote:?}");
    }

    #[test]
    fn a_lagging_read_is_allowed_until_the_lag_passed_since_the_last_write() {
        let h = DbHealth::default();
        h.set_rollups_pending(false);
        assert!(!h.lagging_read_ok(), "no allowance yet");
        h.allow_lagging_reads(Duration::from_secs(60));
        h.set_rollups_pending(true);
        assert!(h.lagging_read_ok());
        let before = std::time::Instant::now();
        let state = h.settle_for_read(Duration::from_secs(30));
        assert_eq!(state & 1, 1, "read with the sums pending");
        assert!(
            before.elapsed() < Duration::from_secs(30),
            "without waiting"
        );
        assert!(
            !h.flush_wanted.load(Ordering::SeqCst),
            "nor asking the writer"
        );
        // An allowance of 1 ms from a write that long ago has passed.
        h.allow_lagging_reads(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!h.lagging_read_ok());
        assert!(h.rollups_age_ms() >= 5);
        h.allow_lagging_reads(Duration::ZERO);
        assert!(!h.lagging_read_ok(), "zero: no lag");
        h.set_rollups_pending(false);
        assert_eq!(h.rollups_age_ms(), 0);
    }

    #[tokio::test]
    async fn respects_batch_max() {
        let sink = FakeSink::default();
        let writer = Writer::spawn(sink.clone(), cfg(3, 200)).unwrap();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let tx = writer.sender().unwrap();
        send_jobs(&tx, 1..=7, &ack_tx).await;
        for _ in 1..=7 {
            next_ack(&mut ack_rx).await;
        }
        assert!(sink.batches.lock().unwrap().iter().all(|b| b.len() <= 3));
        stop(writer, tx).await;
    }

    #[tokio::test]
    async fn failing_database_means_no_ack_until_it_recovers() {
        let sink = FakeSink::default();
        sink.fail.store(true, Ordering::SeqCst);
        let writer = Writer::spawn(sink.clone(), cfg(16, 1)).unwrap();
        let health = writer.health();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        writer
            .sender()
            .unwrap()
            .send(job(1, &ack_tx))
            .await
            .unwrap();
        // Several attempts, no ack, health reports the failure.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(sink.attempts.load(Ordering::SeqCst) >= 2);
        assert!(
            ack_rx.try_recv().is_err(),
            "nothing may be acked while commits fail"
        );
        assert!(health.is_failing());
        assert!(health.last_error().unwrap().contains("disk full"));
        assert_eq!(health.generation(), 0, "no commit, no new data generation");
        // The database recovers: the same batch commits and is acked.
        sink.fail.store(false, Ordering::SeqCst);
        let ack = next_ack(&mut ack_rx).await;
        assert_eq!(ack.seq, 1);
        // The generation is bumped before the ack is sent.
        assert_eq!(health.generation(), 1);
        assert!(!health.is_failing());
        assert_eq!(health.last_error(), None);
        tokio::task::spawn_blocking(move || writer.join(Duration::from_secs(1)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_gives_up_on_a_batch_that_cannot_commit() {
        let sink = FakeSink::default();
        sink.fail.store(true, Ordering::SeqCst);
        let writer = Writer::spawn(sink.clone(), cfg(16, 1)).unwrap();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        writer
            .sender()
            .unwrap()
            .send(job(1, &ack_tx))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || writer.join(Duration::from_millis(100)))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(ack_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn retention_runs_on_its_interval() {
        let sink = FakeSink::default();
        let mut c = cfg(16, 1);
        c.retention_interval = Duration::from_millis(1);
        let writer = Writer::spawn(sink.clone(), c).unwrap();
        // The first run waits min(interval, 60s) = the 1 s floor.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(sink.retention_runs.load(Ordering::SeqCst) >= 2);
        tokio::task::spawn_blocking(move || writer.join(Duration::from_secs(1)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_refused_report_does_not_block_the_others() {
        let sink = FakeSink::default();
        let writer = Writer::spawn(sink.clone(), cfg(16, 50)).unwrap();
        let health = writer.health();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let tx = writer.sender().unwrap();
        send_jobs(&tx, [1, 2, POISON, 4, 5], &ack_tx).await;
        let mut acked = Vec::new();
        let mut rejected = Vec::new();
        for _ in 0..5 {
            match next_reply(&mut ack_rx).await {
                WriterReply::Ack(a) => acked.push(a.seq),
                WriterReply::Rejected(e) => rejected.push(e),
            }
        }
        acked.sort_unstable();
        assert_eq!(acked, vec![1, 2, 4, 5]);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].code, ErrorCode::Internal);
        assert!(
            rejected[0].message.contains("666"),
            "{}",
            rejected[0].message
        );
        assert!(
            !health.is_failing(),
            "a refused report is not a database outage"
        );
        // Later reports are written normally.
        tx.send(job(6, &ack_tx)).await.unwrap();
        assert_eq!(next_ack(&mut ack_rx).await.seq, 6);
        stop(writer, tx).await;
    }

    #[test]
    fn transient_errors_are_told_apart() {
        assert!(is_transient(&StoreError::Io(std::io::Error::other("x"))));
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(is_transient(&StoreError::Sqlite(full)));
        let ro = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            None,
        );
        assert!(is_transient(&StoreError::Sqlite(ro)));
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(!is_transient(&StoreError::Sqlite(constraint)));
        assert!(!is_transient(&StoreError::NotFound("router 1".into())));
        assert!(!is_transient(&StoreError::InvalidInput("x".into())));
    }
}
