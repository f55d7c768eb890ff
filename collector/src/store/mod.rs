//! SQLite storage of the collector: routers, enrollment tokens, API keys and every report.
//!
//! One [`Store`] wraps one `rusqlite::Connection`. See [`schema`] for the tables and indexes.
//! Durability: WAL journal with `synchronous=FULL`, so a transaction that returned from commit
//! survives a process kill and a power loss; `ingest` acks may be sent right after it returns.

pub mod delta;
mod ingest;
mod registry;
mod retention;
pub mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use routerstats_shared::model::Report;

pub use retention::{Retention, RetentionStats};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this collector supports ({supported})")]
    NewerSchema { found: i64, supported: i64 },
    #[error("{path} is not a routerstats database (or it is corrupt): {detail}")]
    NotADatabase { path: PathBuf, detail: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("name already taken: {0}")]
    NameTaken(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// A new enrollment token (only the SHA-256 of its secret is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub id: String,
    pub secret_hash: [u8; 32],
    /// Router name given to a router enrolling without a requested name.
    pub name: String,
    pub site: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the token is refused from this instant on.
    pub expires_at: i64,
    pub max_uses: u32,
}

/// A stored enrollment token (without its secret hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub site: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: u32,
    pub uses: u32,
    /// Unix seconds of the latest successful enrollment with this token.
    pub last_used_at: Option<i64>,
}

/// What the certificate signer returns to [`Store::enroll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Lowercase hex SHA-256 of the certificate DER.
    pub fingerprint: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// An enrolled router with the facts from its latest report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterRow {
    pub id: i64,
    pub name: String,
    pub site: Option<String>,
    pub hostname: String,
    pub model: Option<String>,
    pub board: Option<String>,
    /// OpenWrt release (`DISTRIB_RELEASE`).
    pub release: Option<String>,
    /// OpenWrt revision (`DISTRIB_REVISION`).
    pub revision: Option<String>,
    /// OpenWrt target (`DISTRIB_TARGET`).
    pub target: Option<String>,
    pub kernel: Option<String>,
    pub agent_version: Option<String>,
    pub arch: Option<String>,
    pub cert_fingerprint: String,
    /// Unix seconds.
    pub cert_not_after: i64,
    /// Unix seconds.
    pub enrolled_at: i64,
    pub token_id: Option<String>,
    /// Collector time (Unix ms) when the latest report was received.
    pub last_seen_ms: Option<i64>,
    /// Agent time (Unix ms) of the latest report.
    pub last_report_ms: Option<i64>,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    pub uptime_s: Option<u64>,
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("unknown token or wrong secret")]
    Unknown,
    #[error("token expired")]
    Expired,
    #[error("token already used")]
    Used,
    #[error("signing the certificate failed: {0}")]
    Sign(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for EnrollError {
    fn from(e: rusqlite::Error) -> Self {
        EnrollError::Store(StoreError::Sqlite(e))
    }
}

/// One report to ingest.
#[derive(Debug, Clone, Copy)]
pub struct IngestItem<'a> {
    pub router_id: i64,
    /// Collector time (Unix ms) when the report arrived.
    pub received_at_ms: i64,
    pub report: &'a Report,
}

/// What happened to one [`IngestItem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Written (and committed when `ingest` returned Ok).
    Stored,
    /// `(router_id, boot_id, seq)` was already stored; nothing was written for it.
    Duplicate,
}

/// The SQLite store. One ingesting `Store` per database file (its caches assume it is the only
/// writer of samples); other processes may open it for the CLI's router/token commands.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    cache: HashMap<i64, ingest::RouterCache>,
}

impl Store {
    /// Opens (creating if missing, mode 0600) and migrates the database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let _ = path;
        Err(StoreError::InvalidInput("not yet".into()))
    }

    /// The schema version recorded in the database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for read queries (the HTTP API).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}
