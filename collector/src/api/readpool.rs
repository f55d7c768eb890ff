//! A small pool of read-only SQLite connections for the API, so queries do not queue behind one
//! another or behind the writer (WAL lets readers and the writer work at the same time).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::ApiError;

/// Read-only connections, opened lazily and reused.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReadPool {
    pub fn new(path: PathBuf, max_idle: usize) -> Self {
        crate::store::install_raw_tables();
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
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
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        out
    }
}

/// Maps a query error to a 500 with the details in the log only.
pub fn db_err(e: rusqlite::Error) -> ApiError {
    tracing::error!(error = %e, "API query failed");
    ApiError::internal("database error; see the collector log")
}
