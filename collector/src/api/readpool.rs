//! A small pool of read-only SQLite connections for the API, so queries do not queue behind one
//! another or behind the writer (WAL lets readers and the writer work at the same time).
//!
//! With a gate ([`ReadPool::with_gate`], the writer's [`DbHealth`]) each read runs in one read
//! transaction whose snapshot holds the rollup sums of every committed report: when the writer
//! holds some in memory, the read first has it write them (`DbHealth::settle_for_read`).

use std::path::PathBuf;
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
}

impl ReadPool {
    pub fn new(path: PathBuf, max_idle: usize) -> Self {
        crate::store::install_raw_tables();
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
            gate: None,
        }
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

/// Runs `f` in a read transaction whose snapshot began while no rollup sums were pending (at
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
        if pinned.is_ok() && before & 1 == 0 && gate.rollup_state() == before {
            let out = f(conn);
            let _ = conn.execute_batch("COMMIT");
            return out;
        }
        let _ = conn.execute_batch("ROLLBACK");
    }
    f(conn)
}

/// Maps a query error to a 500 with the details in the log only.
pub fn db_err(e: rusqlite::Error) -> ApiError {
    tracing::error!(error = %e, "API query failed");
    ApiError::internal("database error; see the collector log")
}
