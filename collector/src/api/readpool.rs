//! A small pool of read-only SQLite connections for the API, so queries do not queue behind one
//! another or behind the writer (WAL lets readers and the writer work at the same time).
//!
//! With a gate ([`ReadPool::with_gate`], the writer's [`DbHealth`]) each read runs in one read
//! transaction whose snapshot holds the rollup sums of every committed report: when the writer
//! holds some in memory, the read first has it write them (`DbHealth::settle_for_read`), but
//! under a backlog, where the writer allows reads to lag by up to its `read_lag` (the config's
//! `rollup_read_lag`).
//!
//! With read threads ([`ReadPool::with_threads`], the collector's `api_read_threads` and
//! `api_read_nice`), [`ReadPool::run`] runs the reads on that many threads of their own
//! (`api-read`), at a lower CPU priority on Linux (a higher nice value, set per thread): reads
//! wait for a free thread instead of piling onto the cores, and while the machine is busy the
//! database writer and the agents' TLS connections, which run at the normal priority, get the
//! CPU first, so clients reading the API as fast as they can no longer starve ingest. Without
//! read threads, `run` uses tokio's blocking pool.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::ApiError;
use crate::ingest::writer::{DbHealth, READ_WAIT};

/// Read-only connections, opened lazily and reused.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    gate: Option<Arc<DbHealth>>,
    /// The read threads' queue (None: reads run on tokio's blocking pool).
    jobs: Option<Mutex<mpsc::Sender<Job>>>,
}

/// One read for a read thread.
type Job = Box<dyn FnOnce() + Send>;

/// The name of the read threads.
pub const READ_THREAD_NAME: &str = "api-read";

/// The page cache of each read connection, as SQLite's `cache_size` (negative: KiB): at most
/// 64 MiB per connection, so up to `api_read_threads` x 64 MiB while the API is read hard.
pub const READ_CACHE_KIB: i64 = -64 * 1024;

impl ReadPool {
    pub fn new(path: PathBuf, max_idle: usize) -> Self {
        crate::store::install_raw_tables();
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
            gate: None,
            jobs: None,
        }
    }

    /// Runs [`ReadPool::run`]'s reads on `threads` threads of their own at nice value `nice`
    /// (0 to 19; 0 keeps the process's priority; the nice value is set on Linux only). The
    /// threads end when the pool is dropped. A thread that cannot be started is logged and
    /// the reads use the others (or tokio's blocking pool if none started).
    pub fn with_threads(mut self, threads: usize, nice: i32) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(READ_THREAD_NAME.into())
                .spawn(move || {
                    lower_priority(nice);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        job();
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, thread = i, "cannot start an API read thread"),
            }
        }
        if started > 0 {
            self.jobs = Some(Mutex::new(tx));
        }
        self
    }

    /// Runs `f` like [`ReadPool::with`] on a read thread (or on tokio's blocking pool when the
    /// pool has none) and waits for its answer without blocking the async runtime.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let lost = |e: String| ApiError::internal(format!("database task failed: {e}"));
        let Some(jobs) = &self.jobs else {
            let pool = self.clone();
            return tokio::task::spawn_blocking(move || pool.with(f))
                .await
                .map_err(|e| lost(e.to_string()))?;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let pool = self.clone();
        let job: Job = Box::new(move || {
            let _ = tx.send(pool.with(f));
        });
        jobs.lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| lost("the API read threads stopped".into()))?;
        rx.await
            .map_err(|_| lost("an API read thread stopped during the read".into()))?
    }

    /// Reads see the rollup sums the writer (of `health`) holds in memory: see the module doc.
    pub fn with_gate(mut self, health: Arc<DbHealth>) -> Self {
        self.gate = Some(health);
        self
    }

    fn open(&self) -> Result<Connection, ApiError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "cannot open a read connection");
            ApiError::internal("database unavailable; see the collector log")
        })?;
        let _ = conn.busy_timeout(Duration::from_secs(5));
        // Each connection has a page cache of its own (the workspace builds SQLite without
        // ENABLE_MEMORY_MANAGEMENT, `.cargo/config.toml`), allocated as pages are read: large
        // enough for the index pages of a fleet-wide read (one seek per router at 10,000
        // routers) to stay cached between requests.
        let _ = conn.pragma_update(None, "cache_size", READ_CACHE_KIB);
        Ok(conn)
    }

    /// Runs `f` on an idle connection (or a new one) and returns the connection to the pool.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => self.open()?,
        };
        let out = match &self.gate {
            Some(gate) => gated(&conn, gate, f),
            None => f(&conn),
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        out
    }
}

/// Runs `f` in a read transaction whose snapshot began while no rollup sums were pending, or
/// while the writer allowed reads to lag (under a backlog, by at most its `read_lag`; at
/// most a few tries: a writer that keeps failing leaves the last one without them). Also used
/// by the readers outside the API that read rollup tables (the alert evaluator).
pub(crate) fn gated<T, E>(
    conn: &Connection,
    gate: &DbHealth,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    for _ in 0..3 {
        let before = gate.settle_for_read(READ_WAIT);
        if conn.execute_batch("BEGIN").is_err() {
            // Cannot happen on an open connection outside a transaction; `f` reports its own
            // errors on the last try.
            continue;
        }
        // The first read starts the snapshot.
        let pinned = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        });
        // Complete (no sums pending from before the snapshot to now), or pending sums the
        // writer allows reads to lag behind (`DbHealth::allow_lagging_reads`).
        let complete = before & 1 == 0 && gate.rollup_state() == before;
        if pinned.is_ok() && (complete || gate.lagging_read_ok()) {
            let out = f(conn);
            let _ = conn.execute_batch("COMMIT");
            return out;
        }
        let _ = conn.execute_batch("ROLLBACK");
    }
    f(conn)
}

/// Sets the calling read thread's nice value to `nice` ([`crate::thread_priority`]); a failure
/// is logged, and the thread then reads at the priority it has.
fn lower_priority(nice: i32) {
    if let Err(e) = crate::thread_priority::set_this_thread_nice(nice) {
        tracing::warn!(error = %e, nice, "cannot lower the priority of an API read thread");
    }
}

/// Maps a query error to a 500 with the details in the log only.
pub fn db_err(e: rusqlite::Error) -> ApiError {
    tracing::error!(error = %e, "API query failed");
    ApiError::internal("database error; see the collector log")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with one table of `n` rows.
    fn db(n: i64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER);")
            .unwrap();
        for v in 0..n {
            c.execute("INSERT INTO t VALUES (?1)", [v]).unwrap();
        }
        (dir, path)
    }

    /// Each read connection keeps a page cache of its own of [`READ_CACHE_KIB`] (with private
    /// caches the default 2 MiB made fleet-wide reads at 10,000 routers 2.7x slower).
    #[test]
    fn read_connections_have_a_large_page_cache() {
        let (_dir, path) = db(1);
        let pool = ReadPool::new(path, 1);
        let size: i64 = pool
            .with(|c| {
                c.query_row("PRAGMA cache_size", [], |r| r.get(0))
                    .map_err(db_err)
            })
            .unwrap();
        assert_eq!(size, READ_CACHE_KIB);
    }

    #[tokio::test]
    async fn reads_run_on_their_own_threads_at_a_lower_priority() {
        let (_dir, path) = db(10);
        // Above this process's own nice value (which an unprivileged thread cannot go below).
        #[cfg(target_os = "linux")]
        let want = (crate::thread_priority::this_thread_nice() + 3).min(19);
        #[cfg(not(target_os = "linux"))]
        let want = 3;
        let pool = Arc::new(ReadPool::new(path, 2).with_threads(2, want));
        let (count, name, _nice) = pool
            .run(|c| {
                let n: i64 = c
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(db_err)?;
                #[cfg(target_os = "linux")]
                let nice = crate::thread_priority::this_thread_nice();
                #[cfg(not(target_os = "linux"))]
                let nice = 0;
                Ok((n, std::thread::current().name().map(String::from), nice))
            })
            .await
            .unwrap();
        assert_eq!(count, 10);
        assert_eq!(name.as_deref(), Some(READ_THREAD_NAME));
        #[cfg(target_os = "linux")]
        assert_eq!(_nice, want);
        // An error of the read comes back as it is.
        let e = pool
            .run(|c| {
                c.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0))
                    .map_err(db_err)
            })
            .await
            .unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn more_reads_than_threads_wait_their_turn_and_all_finish() {
        let (_dir, path) = db(100);
        let pool = Arc::new(ReadPool::new(path, 2).with_threads(2, 0));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut reads = Vec::new();
        for i in 0..20_i64 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            reads.push(tokio::spawn(async move {
                pool.run(move |c| {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    let n: Result<i64, ApiError> = c
                        .query_row("SELECT count(*) FROM t WHERE v >= ?1", [i], |r| r.get(0))
                        .map_err(db_err);
                    running.fetch_sub(1, SeqCst);
                    n
                })
                .await
            }));
        }
        for (i, r) in reads.into_iter().enumerate() {
            assert_eq!(r.await.unwrap().unwrap(), 100 - i as i64);
        }
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (1..=2).contains(&most),
            "{most} reads ran at once on 2 threads"
        );
    }

    #[tokio::test]
    async fn without_threads_reads_use_the_blocking_pool() {
        let (_dir, path) = db(3);
        let pool = Arc::new(ReadPool::new(path, 1));
        let (n, name) = pool
            .run(|c| {
                let n: i64 = c
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(db_err)?;
                Ok((n, std::thread::current().name().map(String::from)))
            })
            .await
            .unwrap();
        assert_eq!(n, 3);
        assert_ne!(name.as_deref(), Some(READ_THREAD_NAME));
    }
}
