//! SQLite storage of the collector: routers, enrollment tokens, API keys and every report.
//!
//! One [`Store`] wraps one `rusqlite::Connection`. See [`schema`] for the tables and indexes.
//!
//! - Durability: WAL journal with `synchronous=FULL`, so a transaction that returned from commit
//!   survives a process kill and a power loss; `ingest` acks may be sent right after it returns.
//! - Threads: `Store` is `Send`, not `Sync`. Keep the ingesting store in one writer thread;
//!   readers (HTTP API, CLI) open their own `Store` (WAL lets them read while it writes).
//! - Throughput comes from batching: one [`Store::ingest`] call is one transaction and one
//!   fsync, and its cost is dominated by the pages it dirties (about one per router and table),
//!   so pass every report that is waiting (hundreds) in one call rather than one at a time.
//! - Units: `*_at` and `expires_at` are Unix seconds, `*_ms` Unix milliseconds, `*_bps` bits per
//!   second.

mod actions;
pub mod blocks;
pub mod delta;
mod fleetagg;
mod ingest;
mod legacy_layout;
pub mod probe_rollup;
pub mod recent;
mod registry;
mod retention;
pub mod schema;
pub mod sealed;
mod station_peaks;
#[cfg(test)]
pub(crate) mod testutil;
pub mod vpnstate;
pub mod wg_latest;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

use routerstats_shared::model::Report;

pub use actions::{ActionFilter, ActionRow, NewAction};
pub use fleetagg::BUCKET_1D_MS;
pub use ingest::{bucket_start, mark_rollups_written, wifi_links, BUCKET_1H_MS, BUCKET_5M_MS};
pub use registry::{
    check_router_name, name_from_hostname, normalize_name, ApiKeyRow, MAX_NAME_CHARS,
};
pub use retention::{Retention, RetentionStats, RAW_LEVEL_TABLES};
pub use schema::SCHEMA_VERSION;
pub use sealed::{install as install_raw_tables, SealStats};

use schema::MIGRATIONS;

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

/// Hash map of the database writer's hot path (per-router caches of the previous samples, the
/// rollup sums, the recent-traffic index): foldhash, seeded per process, instead of std's
/// SipHash, which was about 6% of the writer's time under ingest (perf; BENCHMARKS.md). The keys
/// (interface names, MACs, router ids) come from enrolled routers only.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// The set of [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The SQLite store. One ingesting `Store` per database file (its caches assume it is the only
/// writer of samples); other processes may open it for the CLI's router/token commands.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    cache: FastMap<i64, ingest::RouterCache>,
    seal: sealed::SealState,
    /// Rollup sums held in memory across batches (see `ingest::Held`).
    held: ingest::Held,
    /// The in-memory index of recent station traffic this store feeds after each commit.
    recent: Option<std::sync::Arc<recent::RecentStations>>,
}

/// The database writer's connection settings (after WAL mode): durable commits, a large page
/// cache, and rare checkpoints. Public so that the ingest benchmark's plain-SQLite baseline runs
/// with exactly these settings.
pub fn writer_settings(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 64 MiB page cache: the sample tables' index pages stay hot during ingest.
    conn.pragma_update(None, "cache_size", -65536)?;
    // Checkpoint every 65536 pages (256 MiB of WAL) instead of 1000: a page rewritten by many
    // batches (rollup and current-state rows, the tails of the sample tables) is copied into
    // the database once. 8192 halved ingest CPU against 1000; 32768 took the writer from 131 to
    // 120-128 us per report (148-153 from 161 under API reads); 65536 the durable rate from
    // 9,885 to 10,533 reports/s (plain SQLite gains little from it; BENCHMARKS.md).
    conn.pragma_update(None, "wal_autocheckpoint", 65536)?;
    // Keep up to 512 MiB of WAL file after a checkpoint, more than it grows to between two
    // (256 MiB and the batch that crosses it): frames are then written over blocks the file
    // already has. With 64 MiB, every cycle truncated the file and grew it again, and ext4
    // allocated and zeroed its blocks under each partial-page frame write (8% of the writer's
    // CPU; the WAL's frame writes fell from 25% to 16% of it, BENCHMARKS.md).
    conn.pragma_update(None, "journal_size_limit", 512 * 1024 * 1024)?;
    Ok(())
}

impl Store {
    /// Opens (creating it if missing, with mode 0600) and migrates the database.
    ///
    /// Settings: WAL journal, `synchronous=FULL` (a committed transaction survives a process
    /// kill and a power loss, so acks sent after `ingest` returns are safe), `busy_timeout` 5 s,
    /// foreign keys on. Refuses a database written by a newer collector
    /// ([`StoreError::NewerSchema`]) and a file that is not an SQLite database, is corrupt, or is
    /// some other program's database ([`StoreError::NotADatabase`]).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_private(path)?;
        sealed::install();
        let not_a_db = |e: rusqlite::Error| not_a_database(path, e);
        let mut conn = Connection::open(path).map_err(not_a_db)?;
        warn_on_shared_page_cache(&conn);
        conn.busy_timeout(Duration::from_secs(5))?;
        // The first read of the header: garbage and corrupt files fail here.
        let _: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(not_a_db)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(not_a_db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "could not switch the database to WAL mode");
        }
        writer_settings(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            cache: FastMap::default(),
            seal: sealed::SealState::default(),
            held: ingest::Held::default(),
            recent: None,
        })
    }

    /// Feeds `index` with the station samples of every batch this store commits (the
    /// collector's writer; see [`recent`]).
    pub fn set_recent_stations(&mut self, index: std::sync::Arc<recent::RecentStations>) {
        self.recent = Some(index);
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

    /// The underlying connection, for read queries (the HTTP API). Do not write samples
    /// through it: the ingest caches assume `Store` is their only writer.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

// The collector moves the store into its writer thread: this fails to compile if it is not Send.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
};

/// Creates the database file with mode 0600 when it does not exist yet (SQLite gives its
/// `-wal` and `-shm` files the same mode). Warns about an existing file readable by others.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path) {
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "database file is accessible by other users; expected 0600");
                    }
                }
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Io(e)),
    }
}

/// Maps "not a database" and "corrupt" SQLite errors to [`StoreError::NotADatabase`].
fn not_a_database(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::NotADatabase {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        _ => StoreError::Sqlite(e),
    }
}

/// Applies the pending migrations in one IMMEDIATE transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(StoreError::NotADatabase {
            path: path.to_path_buf(),
            detail: format!("negative schema version {found}"),
        });
    }
    if found == 0 {
        let objects: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if objects > 0 {
            return Err(StoreError::NotADatabase {
                path: path.to_path_buf(),
                detail: format!("an SQLite database with {objects} schema objects but no routerstats schema version"),
            });
        }
    }
    let start = usize::try_from(found).unwrap_or(usize::MAX);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(sql)?;
        tracing::info!(version = i + 1, "applied database migration");
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Constant-time equality of two 32-byte hashes.
pub(crate) fn ct_eq(a: &[u8], b: &[u8; 32]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The largest value of each key in `items` (the rows of a batch, once per key, for an UPSERT
/// that keeps the larger value).
pub(crate) fn max_per_key<K: std::hash::Hash + Eq>(
    items: impl IntoIterator<Item = (K, i64)>,
) -> HashMap<K, i64> {
    let mut max: HashMap<K, i64> = HashMap::new();
    for (k, v) in items {
        let e = max.entry(k).or_insert(v);
        *e = (*e).max(v);
    }
    max
}

/// A u64 as an SQLite integer, saturating at `i64::MAX` (bogus input never fails a batch).
pub(crate) fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An optional u64 as an optional SQLite integer, saturating.
pub(crate) fn sat_opt(v: Option<u64>) -> Option<i64> {
    v.map(sat)
}

/// Whether an SQLite error is a UNIQUE/PRIMARY KEY/CHECK constraint violation.
pub(crate) fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// The compile options of the linked SQLite that slow the writer down while the API reads:
/// `ENABLE_MEMORY_MANAGEMENT` (one page cache, one mutex and one LRU for every connection of the
/// process) and memory statistics left on (a global lock on every allocation). The workspace's
/// `.cargo/config.toml` builds the bundled SQLite without both.
pub fn shared_sqlite_options(conn: &Connection) -> Vec<String> {
    let options: Vec<String> = conn
        .prepare("PRAGMA compile_options")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_default();
    let mut found: Vec<String> = options
        .iter()
        .filter(|o| o.as_str() == "ENABLE_MEMORY_MANAGEMENT")
        .cloned()
        .collect();
    if !options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0") {
        found.push("DEFAULT_MEMSTATUS (not 0)".into());
    }
    found
}

/// Logs (once per process) when [`shared_sqlite_options`] finds any: a build made outside the
/// workspace's cargo settings still works, with slower ingest while the API is read.
fn warn_on_shared_page_cache(conn: &Connection) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let found = shared_sqlite_options(conn);
        if !found.is_empty() {
            tracing::warn!(
                options = %found.join(", "),
                "this SQLite shares one page cache (or one allocation lock) between the writer \
                 and the API readers; build with the workspace's .cargo/config.toml \
                 (LIBSQLITE3_FLAGS) for full ingest speed while the API is read"
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace builds SQLite with a page cache per connection and no allocation counting
    /// (`.cargo/config.toml`): see [`shared_sqlite_options`].
    #[test]
    fn sqlite_connections_have_private_page_caches() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(shared_sqlite_options(&conn), Vec::<String>::new());
    }

    fn db_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("routerstats.db")
    }

    #[test]
    fn open_creates_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            assert_eq!(store.path(), path.as_path());
            let mode: String = store
                .connection()
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            // FULL = 2
            let sync: i64 = store
                .connection()
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(sync, 2);
            let fk: i64 = store
                .connection()
                .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                .unwrap();
            assert_eq!(fk, 1);
            store.insert_api_key("k", &[1; 32], "read", "n", 1).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(
            store.list_api_keys().unwrap().len(),
            1,
            "data survives reopening"
        );
    }

    #[cfg(unix)]
    #[test]
    fn new_database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        let store = Store::open(&path).unwrap();
        store.insert_api_key("k", &[1; 32], "read", "n", 1).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let wal = dir.path().join("routerstats.db-wal");
        let wal_mode = std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777;
        assert_eq!(wal_mode, 0o600);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        drop(Store::open(&path).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        match Store::open(&path) {
            Err(StoreError::NewerSchema { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("newer schema accepted"),
        }
    }

    #[test]
    fn garbage_file_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        std::fs::write(
            &path,
            b"this is certainly not an SQLite database, just some text\n".repeat(100),
        )
        .unwrap();
        match Store::open(&path) {
            Err(StoreError::NotADatabase { path: p, detail }) => {
                assert_eq!(p, path);
                assert!(!detail.is_empty());
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("garbage accepted"),
        }
        // The file was left untouched.
        assert!(std::fs::read(&path)
            .unwrap()
            .starts_with(b"this is certainly"));
    }

    #[test]
    fn corrupt_database_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        drop(Store::open(&path).unwrap());
        // Checkpointed on close; now smash the pages after the header page.
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 8192);
        for b in bytes.iter_mut().skip(100).take(8000) {
            *b = 0xa5;
        }
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::NotADatabase { .. })
        ));
    }

    #[test]
    fn foreign_sqlite_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, blob BLOB)")
                .unwrap();
        }
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::NotADatabase { .. })
        ));
    }

    #[test]
    fn empty_existing_file_is_initialised() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        std::fs::write(&path, b"").unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/routerstats.db");
        assert!(matches!(Store::open(&path), Err(StoreError::Io(_))));
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(&[5; 32], &[5; 32]));
        let mut other = [5u8; 32];
        other[0] = 4;
        assert!(!ct_eq(&other, &[5; 32]));
        assert!(!ct_eq(&[5; 31], &[5; 32]));
        assert_eq!(sat(u64::MAX), i64::MAX);
        assert_eq!(sat(7), 7);
    }
}
