//! A small response cache for the fleet-wide "current state" answers (`/api/openwrt`,
//! `/api/export`, `/metrics`, `/api/users/active`, `/api/interfaces`, `/api/vpn/clients`,
//! `/api/vpn/status`) and the fleet-wide windowed answers (`/api/gateways`, `/api/fleet`,
//! `/api/bandwidth/...`, `/api/vpn/statistics/usage`), whose uncached computation reads the
//! whole fleet. A windowed answer's window ends when it was computed, so it lags by at most
//! `max_age` like the others.
//!
//! Entries are keyed by route + normalized query ([`key`]: every parameter that changes the
//! answer, after parsing, defaults filled in) and hold the serialized body. Freshness rule,
//! with `max_age` from the collector config (`api_cache_max_age`):
//!
//! - an entry younger than `max_age` computed from the current data generation is served as is
//!   (`X-Cache: hit`). The generation changes when the writer commits reports
//!   ([`DbHealth::generation`], bumped after each commit) and when any other connection or
//!   process commits to the database (SQLite's `PRAGMA data_version` on a connection of the
//!   cache's own: `router revoke`, renames, enrollment, retention);
//! - an entry younger than `max_age` with reports committed since is still served
//!   (`X-Cache: stale`) while exactly one background task per key recomputes it;
//! - after any other change (only `data_version` moved: a revocation, a rename...) the entry is
//!   recomputed before answering, so such changes show at once;
//! - an entry `max_age` old or older (or none) is recomputed before answering (`X-Cache: miss`);
//!   concurrent requests for that key wait for the one computation;
//! - `max_age` 0 disables the cache (`X-Cache: bypass`).
//!
//! So an answer is never older than `max_age` (plus its computation time). Memory is bounded by
//! a number of entries and a total of body bytes: the least recently used entries are dropped,
//! and a body larger than the whole budget is not kept. Authentication and rate limiting run
//! before the handler, so they apply to cached answers too. Errors are never cached.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::{with_read, ApiError, ApiState};
use crate::ingest::writer::DbHealth;

/// Entries (keys) kept at most.
pub const MAX_ENTRIES: usize = 64;

/// The header telling how an answer was served.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// How an answer was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From the cache, computed from the current data.
    Hit,
    /// From the cache while newer reports exist (a background recompute runs).
    Stale,
    /// Computed for this request (none cached or too old).
    Miss,
    /// The cache is disabled.
    Bypass,
}

impl CacheStatus {
    /// The `X-Cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Stale => "stale",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// The data generation: (writer commits, SQLite `data_version`).
type Generation = (u64, i64);

struct Entry {
    body: Bytes,
    /// Data generation read before the computation started.
    generation: Generation,
    /// When the computation started (the data is at least this old).
    computed: Instant,
}

struct Slot {
    entry: Option<Entry>,
    last_used: Instant,
    /// A background recompute is running.
    refreshing: bool,
    /// Held while this key is computed (single flight).
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    fn new(now: Instant) -> Slot {
        Slot {
            entry: None,
            last_used: now,
            refreshing: false,
            lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// The cache (one per API server).
pub struct ResponseCache {
    max_age: Duration,
    max_entries: usize,
    max_bytes: usize,
    data: Arc<DbHealth>,
    /// The database, for `PRAGMA data_version` (None: writer commits only).
    db_path: Option<PathBuf>,
    /// The connection `data_version` is read on (opened on first use) and the last value read.
    version_conn: Mutex<(Option<rusqlite::Connection>, i64)>,
    slots: Mutex<HashMap<String, Slot>>,
}

/// Clears a slot's `refreshing` flag when the background task ends, even by a panic.
struct RefreshDone {
    cache: Arc<ResponseCache>,
    key: String,
}

impl Drop for RefreshDone {
    fn drop(&mut self) {
        if let Some(s) = self.cache.slots().get_mut(&self.key) {
            s.refreshing = false;
        }
    }
}

impl ResponseCache {
    /// A cache serving entries up to `max_age` old (0 disables it), with at most `max_entries`
    /// keys and `max_bytes` body bytes; "data changed" is read from `data`'s generation and,
    /// with `db_path`, from the database's `data_version`.
    pub fn new(
        max_age: Duration,
        max_entries: usize,
        max_bytes: usize,
        data: Arc<DbHealth>,
        db_path: Option<PathBuf>,
    ) -> Self {
        ResponseCache {
            max_age,
            max_entries,
            max_bytes,
            data,
            db_path,
            version_conn: Mutex::new((None, 0)),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The current data generation. When `data_version` cannot be read, the last value read
    /// stands (then only writer commits and the max age refresh answers).
    fn generation(&self) -> Generation {
        let writer = self.data.generation();
        let Some(path) = &self.db_path else {
            return (writer, 0);
        };
        let mut guard = self.version_conn.lock().unwrap_or_else(|e| e.into_inner());
        let (conn, last) = &mut *guard;
        if conn.is_none() {
            *conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .ok();
        }
        if let Some(v) = conn
            .as_ref()
            .and_then(|c| c.query_row("PRAGMA data_version", [], |r| r.get(0)).ok())
        {
            *last = v;
        }
        (writer, *last)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (entries, total body bytes) held now.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        let slots = self.slots();
        let bytes = slots
            .values()
            .filter_map(|s| s.entry.as_ref())
            .map(|e| e.body.len())
            .sum();
        (slots.len(), bytes)
    }

    /// The body for `key`: cached when the freshness rule allows, else computed by `compute`
    /// (see the module doc). `compute` may also run later in a background task.
    pub async fn get_or_compute<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        compute: F,
    ) -> Result<(Bytes, CacheStatus), ApiError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, ApiError>> + Send + 'static,
    {
        if self.max_age.is_zero() {
            return compute().await.map(|b| (b, CacheStatus::Bypass));
        }
        let lock = {
            let now = Instant::now();
            let generation = self.generation();
            let mut slots = self.slots();
            let slot = slots
                .entry(key.to_string())
                .or_insert_with(|| Slot::new(now));
            slot.last_used = now;
            if let Some(e) = &slot.entry {
                let young = now.duration_since(e.computed) < self.max_age;
                if young && e.generation == generation {
                    return Ok((e.body.clone(), CacheStatus::Hit));
                }
                // Only reports were committed since (the writer's count moved): serve it while
                // one background task recomputes it.
                if young && e.generation.0 != generation.0 {
                    let body = e.body.clone();
                    if !slot.refreshing {
                        slot.refreshing = true;
                        self.spawn_refresh(key.to_string(), compute, slot.lock.clone());
                    }
                    return Ok((body, CacheStatus::Stale));
                }
            }
            slot.lock.clone()
        };
        let _flight = lock.lock().await;
        // Another request may have computed it while this one waited.
        {
            let now = Instant::now();
            let generation = self.generation();
            if let Some(e) = self.slots().get(key).and_then(|s| s.entry.as_ref()) {
                if now.duration_since(e.computed) < self.max_age {
                    if e.generation == generation {
                        return Ok((e.body.clone(), CacheStatus::Hit));
                    }
                    if e.generation.0 != generation.0 {
                        return Ok((e.body.clone(), CacheStatus::Stale));
                    }
                }
            }
        }
        let generation = self.generation();
        let started = Instant::now();
        match compute().await {
            Ok(body) => {
                self.store(key, body.clone(), generation, started);
                Ok((body, CacheStatus::Miss))
            }
            Err(e) => {
                // Do not keep an empty slot for a key that only fails (e.g. an unknown device).
                let mut slots = self.slots();
                if slots
                    .get(key)
                    .is_some_and(|s| s.entry.is_none() && !s.refreshing)
                {
                    slots.remove(key);
                }
                Err(e)
            }
        }
    }

    fn spawn_refresh<F, Fut>(
        self: &Arc<Self>,
        key: String,
        compute: F,
        lock: Arc<tokio::sync::Mutex<()>>,
    ) where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, ApiError>> + Send + 'static,
    {
        let cache = self.clone();
        tokio::spawn(async move {
            let done = RefreshDone {
                cache: cache.clone(),
                key: key.clone(),
            };
            let _flight = lock.lock().await;
            let generation = cache.generation();
            // A request may have recomputed it meanwhile.
            let current = cache
                .slots()
                .get(&key)
                .and_then(|s| s.entry.as_ref())
                .is_some_and(|e| e.generation == generation);
            if !current {
                let started = Instant::now();
                match compute().await {
                    Ok(body) => cache.store(&key, body, generation, started),
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e.message, "background API cache refresh failed")
                    }
                }
            }
            drop(done);
        });
    }

    /// Keeps `body` for `key` and drops least recently used entries beyond the bounds.
    fn store(&self, key: &str, body: Bytes, generation: Generation, computed: Instant) {
        let mut slots = self.slots();
        if body.len() > self.max_bytes {
            if let Some(s) = slots.get_mut(key) {
                s.entry = None;
            }
            return;
        }
        let slot = slots
            .entry(key.to_string())
            .or_insert_with(|| Slot::new(computed));
        slot.entry = Some(Entry {
            body,
            generation,
            computed,
        });
        loop {
            let bytes: usize = slots
                .values()
                .filter_map(|s| s.entry.as_ref())
                .map(|e| e.body.len())
                .sum();
            if slots.len() <= self.max_entries && bytes <= self.max_bytes {
                break;
            }
            let victim = slots
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    slots.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// A cached answer: the body with its content type and `X-Cache`.
pub fn response(body: Bytes, content_type: &'static str, status: CacheStatus) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (X_CACHE, HeaderValue::from_static(status.as_str())),
        ],
        body,
    )
        .into_response()
}

/// A route answer through the cache: `compute` makes the body on a pooled read connection
/// (on the blocking pool) each time the cache needs it.
pub async fn cached<F>(
    state: &ApiState,
    key: &str,
    content_type: &'static str,
    compute: F,
) -> Result<Response, ApiError>
where
    F: Fn(&rusqlite::Connection) -> Result<Bytes, ApiError> + Clone + Send + Sync + 'static,
{
    let run = {
        let state = state.clone();
        move || {
            let state = state.clone();
            let compute = compute.clone();
            async move { with_read(&state, compute).await }
        }
    };
    let (body, status) = state.cache.get_or_compute(key, run).await?;
    Ok(response(body, content_type, status))
}

/// A JSON route answer through the cache: `compute` makes the value (serialized with
/// [`json_bytes`]) each time the cache needs a new body.
pub async fn cached_json<T, F>(
    state: &ApiState,
    key: &str,
    compute: F,
) -> Result<Response, ApiError>
where
    T: serde::Serialize,
    F: Fn(&rusqlite::Connection) -> Result<T, ApiError> + Clone + Send + Sync + 'static,
{
    cached(state, key, "application/json", move |c| {
        json_bytes(&compute(c)?)
    })
    .await
}

/// The cache key of a route answer: `route` then every parameter that changes the answer, in the
/// handler's fixed order, each as `name=<Debug of its parsed value>` (defaults already filled in,
/// so an absent parameter and its explicit default share a key). Debug quotes and escapes
/// strings, so a value cannot imitate another parameter.
pub fn key(route: &str, params: &[(&str, &dyn std::fmt::Debug)]) -> String {
    let mut k = String::from(route);
    for (i, (name, value)) in params.iter().enumerate() {
        k.push(if i == 0 { '?' } else { '&' });
        k.push_str(name);
        k.push('=');
        k.push_str(&format!("{value:?}"));
    }
    k
}

/// Serializes `value` as JSON straight into bytes (no `serde_json::Value` tree).
pub fn json_bytes<T: serde::Serialize + ?Sized>(value: &T) -> Result<Bytes, ApiError> {
    let mut buf = Vec::with_capacity(64 * 1024);
    serde_json::to_writer(&mut buf, value)
        .map_err(|e| ApiError::internal(format!("cannot serialize the answer: {e}")))?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A cache over a fresh generation counter, and a compute function counting its calls that
    /// answers "v<call number>" after `delay`.
    fn setup(
        max_age: Duration,
        max_entries: usize,
        max_bytes: usize,
    ) -> (Arc<ResponseCache>, Arc<DbHealth>) {
        let data = Arc::new(DbHealth::default());
        (
            Arc::new(ResponseCache::new(
                max_age,
                max_entries,
                max_bytes,
                data.clone(),
                None,
            )),
            data,
        )
    }

    fn counter(
        calls: &Arc<AtomicUsize>,
        delay: Duration,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<Bytes, ApiError>> + Send>>
           + Send
           + Sync
           + 'static {
        let calls = calls.clone();
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(Bytes::from(format!("v{n}")))
            })
        }
    }

    async fn get(
        c: &Arc<ResponseCache>,
        key: &str,
        calls: &Arc<AtomicUsize>,
    ) -> (String, CacheStatus) {
        let (b, s) = c
            .get_or_compute(key, counter(calls, Duration::from_millis(50)))
            .await
            .unwrap();
        (String::from_utf8_lossy(&b).into_owned(), s)
    }

    #[test]
    fn keys_name_every_parameter_and_quote_values() {
        assert_eq!(key("/r", &[]), "/r");
        assert_eq!(
            key("/r", &[("a", &1i64), ("b", &Some("x"))]),
            "/r?a=1&b=Some(\"x\")"
        );
        // A value holding `&b=` cannot pass for a second parameter.
        assert_ne!(
            key("/r", &[("a", &"1&b=2")]),
            key("/r", &[("a", &"1"), ("b", &"2")])
        );
        assert_ne!(
            key("/r", &[("a", &None::<String>)]),
            key("/r", &[("a", &Some(String::new()))])
        );
    }

    #[tokio::test]
    async fn hit_while_the_data_is_unchanged() {
        let (c, _) = setup(Duration::from_secs(60), 8, 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(get(&c, "a", &calls).await, ("v1".into(), CacheStatus::Miss));
        assert_eq!(get(&c, "a", &calls).await, ("v1".into(), CacheStatus::Hit));
        // Another key (another query) is its own entry.
        assert_eq!(get(&c, "b", &calls).await, ("v2".into(), CacheStatus::Miss));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn new_data_serves_stale_while_one_task_recomputes() {
        let (c, data) = setup(Duration::from_secs(60), 8, 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(get(&c, "a", &calls).await.0, "v1");
        data.bump_generation();
        // Many requests during the recompute: all get the old body at once, one recompute runs.
        for _ in 0..10 {
            assert_eq!(
                get(&c, "a", &calls).await,
                ("v1".into(), CacheStatus::Stale)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "single flight");
        assert_eq!(get(&c, "a", &calls).await, ("v2".into(), CacheStatus::Hit));
        assert_eq!(c.usage().0, 1);
    }

    #[tokio::test]
    async fn a_commit_by_another_connection_is_new_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")
            .unwrap();
        let data = Arc::new(DbHealth::default());
        let c = Arc::new(ResponseCache::new(
            Duration::from_secs(60),
            8,
            1 << 20,
            data,
            Some(path),
        ));
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(get(&c, "a", &calls).await.1, CacheStatus::Miss);
        assert_eq!(get(&c, "a", &calls).await.1, CacheStatus::Hit);
        // E.g. `router revoke` in another process: not a report; recomputed before answering.
        other.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert_eq!(get(&c, "a", &calls).await, ("v2".into(), CacheStatus::Miss));
        assert_eq!(get(&c, "a", &calls).await, ("v2".into(), CacheStatus::Hit));
    }

    #[tokio::test]
    async fn too_old_entries_are_recomputed_before_answering() {
        let (c, data) = setup(Duration::from_millis(100), 8, 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(get(&c, "a", &calls).await.0, "v1");
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Same data, but older than max_age: recomputed (time-dependent fields such as
        // "online" must not freeze).
        assert_eq!(get(&c, "a", &calls).await, ("v2".into(), CacheStatus::Miss));
        data.bump_generation();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(get(&c, "a", &calls).await, ("v3".into(), CacheStatus::Miss));
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let (c, _) = setup(Duration::from_secs(60), 8, 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (c, calls) = (c.clone(), calls.clone());
            tasks.push(tokio::spawn(async move { get(&c, "a", &calls).await.0 }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "v1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn max_age_zero_disables_the_cache() {
        let (c, _) = setup(Duration::ZERO, 8, 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            get(&c, "a", &calls).await,
            ("v1".into(), CacheStatus::Bypass)
        );
        assert_eq!(
            get(&c, "a", &calls).await,
            ("v2".into(), CacheStatus::Bypass)
        );
        assert_eq!(c.usage(), (0, 0));
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let (c, _) = setup(Duration::from_secs(60), 8, 1 << 20);
        let fail = || async { Err::<Bytes, _>(ApiError::internal("boom")) };
        assert!(c.get_or_compute("a", fail).await.is_err());
        assert_eq!(c.usage(), (0, 0), "no slot kept for a failing key");
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(get(&c, "a", &calls).await, ("v1".into(), CacheStatus::Miss));
    }

    #[tokio::test]
    async fn memory_is_bounded_by_entries_and_bytes() {
        // Bodies are 2 bytes ("v1"...); 3 entries or 5 bytes at most.
        let (c, _) = setup(Duration::from_secs(60), 3, 5);
        let calls = Arc::new(AtomicUsize::new(0));
        get(&c, "a", &calls).await;
        get(&c, "b", &calls).await;
        assert_eq!(c.usage(), (2, 4));
        get(&c, "a", &calls).await; // "a" is now the most recently used
        get(&c, "c", &calls).await; // 6 bytes > 5: the least recently used ("b") goes
        assert_eq!(c.usage(), (2, 4));
        assert_eq!(get(&c, "a", &calls).await.1, CacheStatus::Hit);
        assert_eq!(get(&c, "b", &calls).await.1, CacheStatus::Miss);
        // Entry count bound, with big byte budget.
        let (c, _) = setup(Duration::from_secs(60), 3, 1 << 20);
        for k in ["a", "b", "c", "d", "e"] {
            get(&c, k, &calls).await;
        }
        assert_eq!(c.usage().0, 3);
        // A body larger than the whole budget is served but not kept.
        let (c, _) = setup(Duration::from_secs(60), 3, 1);
        assert_eq!(get(&c, "a", &calls).await.1, CacheStatus::Miss);
        assert_eq!(get(&c, "a", &calls).await.1, CacheStatus::Miss);
        assert_eq!(c.usage().1, 0);
    }

    #[test]
    fn json_bytes_match_serde_json() {
        let v = serde_json::json!({"a": [1, 2], "b": "x"});
        assert_eq!(
            json_bytes(&v).unwrap().as_ref(),
            serde_json::to_vec(&v).unwrap().as_slice()
        );
    }
}
