//! Prometheus remote-write output (`[remote_write]` in the config file): hands the fleet's series
//! to an existing time-series engine (Prometheus with `--web.enable-remote-write-receiver`,
//! VictoriaMetrics, Mimir, Thanos receive...) for long-term or replicated history.
//!
//! Every `interval` a snapshot of the series `/metrics` serves (the same computation,
//! `crate::api::prometheus::render_fleet`, read back from its text) is taken at the collector's
//! clock, filtered by metric family (`families` name prefixes to send, `exclude` prefixes to
//! leave out, e.g. `routerstats_station_` for the per-station series of a large fleet) and cut
//! into batches of at most `batch_samples` samples. Batches wait in a queue bounded by
//! `max_pending_samples`: when the receiver is down for long, the oldest batches are dropped
//! (counted and logged) so memory stays bounded. A sender task POSTs the oldest batch (protobuf +
//! snappy, see [`wire`]); a network error, a 5xx or a 429 is retried with exponential backoff
//! (`retry_base` doubling up to `retry_max`), any other 4xx drops the batch (the receiver will not
//! take it however often it is sent) and is logged.

pub mod wire;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::alerts::config::FileDuration;
use crate::api::prometheus::FamilyFilter;
use crate::api::readpool::ReadPool;
use wire::{Point, TimeSeries};

/// Settings of the remote-write output.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    /// The receiver's URL (`http://host:9090/api/v1/write` for Prometheus); `None`: off.
    pub url: Option<String>,
    /// How often a snapshot is taken.
    pub interval: Duration,
    /// Metric name prefixes to send (empty: every family).
    pub families: Vec<String>,
    /// Metric name prefixes never sent (checked after `families`).
    pub exclude: Vec<String>,
    /// Samples per request at most.
    pub batch_samples: usize,
    /// Samples waiting in memory at most; older batches are dropped first.
    pub max_pending_samples: usize,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub bearer_token: Option<String>,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: None,
            interval: Duration::from_secs(30),
            families: Vec::new(),
            exclude: Vec::new(),
            batch_samples: 2000,
            max_pending_samples: 500_000,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            bearer_token: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRemoteWrite {
    url: Option<String>,
    interval: Option<FileDuration>,
    families: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    batch_samples: Option<usize>,
    max_pending_samples: Option<usize>,
    retry_base: Option<FileDuration>,
    retry_max: Option<FileDuration>,
    timeout: Option<FileDuration>,
    bearer_token: Option<String>,
}

impl RemoteWriteConfig {
    /// Reads the `[remote_write]` table; errors name the key.
    pub fn from_value(v: toml::Value) -> Result<RemoteWriteConfig, String> {
        let f: FileRemoteWrite = v.try_into().map_err(|e: toml::de::Error| e.to_string())?;
        let mut c = RemoteWriteConfig::default();
        let d = |v: &Option<FileDuration>, key: &str, cur: Duration| match v {
            Some(v) => v.resolve(key),
            None => Ok(cur),
        };
        c.interval = d(&f.interval, "interval", c.interval)?;
        c.retry_base = d(&f.retry_base, "retry_base", c.retry_base)?;
        c.retry_max = d(&f.retry_max, "retry_max", c.retry_max)?;
        c.timeout = d(&f.timeout, "timeout", c.timeout)?;
        c.url = f.url;
        c.families = f.families.unwrap_or_default();
        c.exclude = f.exclude.unwrap_or_default();
        c.batch_samples = f.batch_samples.unwrap_or(c.batch_samples);
        c.max_pending_samples = f.max_pending_samples.unwrap_or(c.max_pending_samples);
        c.bearer_token = f.bearer_token;
        c.validate()?;
        Ok(c)
    }

    /// Checks the values: an http(s) URL, non-zero sizes and times, a queue that holds a batch.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(u) = &self.url {
            let ok = reqwest::Url::parse(u)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(format!("url: {u:?} is not an http(s) URL"));
            }
        }
        if self.interval.is_zero() || self.timeout.is_zero() || self.retry_base.is_zero() {
            return Err("interval, timeout and retry_base must be above zero".into());
        }
        if self.retry_max < self.retry_base {
            return Err("retry_max must be at least retry_base".into());
        }
        if self.batch_samples == 0 || self.max_pending_samples < self.batch_samples {
            return Err(
                "batch_samples must be at least 1 and max_pending_samples at least batch_samples"
                    .into(),
            );
        }
        Ok(())
    }

    /// The families sent, as the `/metrics` filter.
    pub(crate) fn filter(&self) -> FamilyFilter {
        FamilyFilter {
            include: self.families.clone(),
            exclude: self.exclude.clone(),
            // Pushed snapshots carry the per-station series unless `exclude` names them.
            stations: true,
        }
    }

    /// Whether the family of metric `name` is sent.
    pub fn sends(&self, name: &str) -> bool {
        self.filter().keeps(name)
    }
}

/// Batches waiting to be sent, bounded by a number of samples.
#[derive(Debug, Default)]
pub struct Queue {
    batches: VecDeque<Vec<TimeSeries>>,
    samples: usize,
    /// Samples dropped because the queue was full, since start.
    pub dropped: u64,
}

impl Queue {
    /// Adds `series` in batches of `batch` samples; drops the oldest batches while more than
    /// `max` samples wait.
    pub fn push(&mut self, series: Vec<TimeSeries>, batch: usize, max: usize) {
        let mut it = series.into_iter().peekable();
        while it.peek().is_some() {
            let b: Vec<TimeSeries> = it.by_ref().take(batch.max(1)).collect();
            self.samples += b.len();
            self.batches.push_back(b);
        }
        while self.samples > max {
            match self.batches.pop_front() {
                Some(b) => {
                    self.samples -= b.len();
                    self.dropped += b.len() as u64;
                }
                None => break,
            }
        }
    }

    /// The oldest batch (left in place until [`Queue::done`]).
    pub fn front(&self) -> Option<Vec<TimeSeries>> {
        self.batches.front().cloned()
    }

    /// Removes the oldest batch once sent (or refused for good).
    pub fn done(&mut self) {
        if let Some(b) = self.batches.pop_front() {
            self.samples -= b.len();
        }
    }

    pub fn samples(&self) -> usize {
        self.samples
    }
}

/// What sending one batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// Try again later (network error, 5xx, 429).
    Retry(String),
    /// The receiver refused it for good (other 4xx).
    Refused(String),
}

/// Sends one batch.
pub async fn send(
    client: &reqwest::Client,
    cfg: &RemoteWriteConfig,
    url: &str,
    batch: Vec<TimeSeries>,
) -> SendOutcome {
    let mut req = client
        .post(url)
        .timeout(cfg.timeout)
        .body(wire::encode(batch));
    for (k, v) in wire::HEADERS {
        req = req.header(k, v);
    }
    if let Some(t) = &cfg.bearer_token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Err(e) => SendOutcome::Retry(e.to_string()),
        Ok(r) if r.status().is_success() => SendOutcome::Sent,
        Ok(r) => {
            let status = r.status();
            let text: String = r
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let why = format!("{status}: {}", text.trim());
            if status.is_server_error() || status.as_u16() == 429 {
                SendOutcome::Retry(why)
            } else {
                SendOutcome::Refused(why)
            }
        }
    }
}

/// The text `GET /metrics` serves at `now_ms` (uncached) with the families `cfg` sends, for the
/// output and the benchmarks.
pub fn exposition(
    conn: &rusqlite::Connection,
    now_ms: i64,
    cfg: &RemoteWriteConfig,
) -> Result<String, String> {
    crate::api::prometheus::render_fleet_filtered(conn, now_ms, &cfg.filter())
        .map_err(|e| format!("{e:?}"))
}

/// The series of `/metrics` at `now_ms` that `cfg` sends (the families it leaves out are not
/// even read).
pub fn snapshot(
    conn: &rusqlite::Connection,
    cfg: &RemoteWriteConfig,
    now_ms: i64,
) -> Result<Vec<TimeSeries>, String> {
    let text = exposition(conn, now_ms, cfg)?;
    let points: Vec<Point> = wire::parse_exposition(&text).map_err(|e| e.to_string())?;
    Ok(points.into_iter().map(|p| p.into_series(now_ms)).collect())
}

/// The running output: a snapshot task and a sender task.
pub struct RemoteWrite {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pub queue: Arc<Mutex<Queue>>,
}

impl RemoteWrite {
    /// Starts the output for the database at `path`; `None` when no `url` is configured.
    pub fn spawn(cfg: RemoteWriteConfig, path: &Path) -> Option<RemoteWrite> {
        let url = cfg.url.clone()?;
        let queue = Arc::new(Mutex::new(Queue::default()));
        let wake = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let pool = Arc::new(ReadPool::new(path.to_path_buf(), 1));
        let snap_task = {
            let (cfg, queue, wake, mut stop_rx) =
                (cfg.clone(), queue.clone(), wake.clone(), stop_rx.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(cfg.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop_rx.changed() => return,
                        _ = tick.tick() => {}
                    }
                    let (pool, c) = (pool.clone(), cfg.clone());
                    let now = crate::clock::now_ms();
                    let got = tokio::task::spawn_blocking(move || {
                        pool.with(|conn| Ok(snapshot(conn, &c, now)))
                    })
                    .await;
                    match got {
                        Ok(Ok(Ok(series))) => {
                            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                            let before = q.dropped;
                            q.push(series, cfg.batch_samples, cfg.max_pending_samples);
                            if q.dropped > before {
                                tracing::warn!(
                                    dropped = q.dropped - before,
                                    pending = q.samples(),
                                    "remote write queue full; oldest samples dropped"
                                );
                            }
                            drop(q);
                            wake.notify_one();
                        }
                        Ok(Ok(Err(e))) => {
                            tracing::warn!(error = %e, "remote write snapshot failed")
                        }
                        Ok(Err(e)) => tracing::warn!(error = ?e, "remote write snapshot failed"),
                        Err(e) => tracing::warn!(error = %e, "remote write snapshot task failed"),
                    }
                }
            })
        };
        let send_task = {
            let (queue, mut stop_rx) = (queue.clone(), stop_rx);
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut backoff = cfg.retry_base;
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).front();
                    let Some(batch) = next else {
                        tokio::select! {
                            _ = stop_rx.changed() => return,
                            _ = wake.notified() => continue,
                        }
                    };
                    let n = batch.len();
                    match send(&client, &cfg, &url, batch).await {
                        SendOutcome::Sent => {
                            backoff = cfg.retry_base;
                            queue.lock().unwrap_or_else(|e| e.into_inner()).done();
                            tracing::debug!(samples = n, "remote write batch sent");
                        }
                        SendOutcome::Refused(why) => {
                            queue.lock().unwrap_or_else(|e| e.into_inner()).done();
                            tracing::warn!(samples = n, reason = %why, "remote write batch refused; dropped");
                        }
                        SendOutcome::Retry(why) => {
                            tracing::warn!(samples = n, reason = %why, retry_in_ms = backoff.as_millis() as u64, "remote write failed; will retry");
                            tokio::select! {
                                _ = stop_rx.changed() => return,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(cfg.retry_max);
                        }
                    }
                }
            })
        };
        Some(RemoteWrite {
            stop,
            tasks: vec![snap_task, send_task],
            queue,
        })
    }

    /// Stops both tasks (a batch being sent is given `grace`).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(grace, t).await;
        }
    }
}

#[cfg(test)]
mod tests;
