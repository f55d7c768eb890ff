//! Alerts: built-in rules evaluated from what ingest already stores, their lifecycle (firing,
//! resolved, for-duration, hold-down, deduplication, silences) kept in SQLite, and delivery to
//! webhooks, Slack/Mattermost, e-mail and Alertmanager. See docs/alerts.md.
//!
//! - [`config`]: the `[alerts]` settings (thresholds per fleet, site and router; receivers).
//! - [`rules`]: the rules, a pure function of a fleet snapshot.
//! - [`snapshot`]: reads that snapshot on a read-only connection.
//! - [`state`]: the lifecycle engine and the alert tables.
//! - [`delivery`]: the delivery queue and the receivers.
//!
//! Off the ingest hot path: the evaluator is a thread of its own, at a lower priority (nice 10),
//! with its own read-only connection for the snapshot and its own connection for the (small)
//! alert writes; delivery is a tokio task with its own connection. Ingest never waits for either beyond SQLite's single
//! write lock for the few rows an evaluation changes. When the OpenVPN client rule is on, the
//! snapshot reads `ovpn_rollup_1h`: it then has the writer write the rollup sums it holds in
//! memory first, like an API read (`crate::api::readpool::gated`).

pub mod config;
pub mod delivery;
pub mod rules;
pub mod snapshot;
pub mod state;

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Notify;

pub use config::AlertsConfig;

use crate::ingest::writer::DbHealth;
use crate::store::{Store, StoreError};
use rules::RuleMemory;
use state::{Engine, Transition};

/// What one evaluation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalStats {
    pub routers: usize,
    pub conditions: usize,
    pub fired: usize,
    pub resolved: usize,
}

/// The evaluator: snapshot, rules, lifecycle, persistence.
pub struct Evaluator {
    cfg: AlertsConfig,
    read: Connection,
    write: Store,
    /// Loaded from the firing alerts at the first evaluation.
    engine: Option<Engine>,
    mem: RuleMemory,
    receivers: Vec<String>,
    last_prune: Option<Instant>,
    last_refresh: Instant,
    /// The first evaluation's time: the collector listens for reports since about then.
    started_ms: Option<i64>,
    /// The database writer's health: snapshots that read rollup tables first have it write the
    /// rollup sums it holds in memory (like the API's reads; see `crate::api::readpool`).
    gate: Option<Arc<DbHealth>>,
}

/// Wall clock in Unix milliseconds: the collector's one clock.
pub use crate::clock::now_ms;

impl Evaluator {
    /// Opens its connections to the database at `path`.
    pub fn open(cfg: AlertsConfig, path: &Path) -> Result<Self, StoreError> {
        let write = Store::open(path)?;
        let read = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        read.busy_timeout(Duration::from_secs(5))?;
        let receivers = cfg.receivers.iter().map(|r| r.name.clone()).collect();
        Ok(Evaluator {
            cfg,
            read,
            write,
            engine: None,
            mem: RuleMemory::default(),
            receivers,
            last_prune: None,
            last_refresh: Instant::now(),
            started_ms: None,
            gate: None,
        })
    }

    /// Snapshots see the rollup sums the writer (of `health`) holds in memory.
    pub fn with_gate(mut self, health: Option<Arc<DbHealth>>) -> Self {
        self.gate = health;
        self
    }

    /// One evaluation at `now_ms`.
    pub fn run_once(&mut self, now_ms: i64) -> Result<EvalStats, StoreError> {
        if self.engine.is_none() {
            let keep = self.cfg.fleet.keep_firing_for.as_millis() as i64;
            let firing = state::load_firing(self.write.connection(), now_ms, keep)?;
            for (k, _) in &firing {
                if k.rule == "wan_down" {
                    self.mem.wan.insert(k.router_id, k.subject.clone());
                }
            }
            let pending = state::load_pending(self.write.connection())?;
            self.engine = Some(Engine::with_firing(firing).with_pending(pending));
        }
        let engine = self.engine.get_or_insert_with(Engine::default);
        let routers = match &self.gate {
            // Only the OpenVPN rule reads a rollup table (`ovpn_rollup_1h`).
            Some(gate) if snapshot::reads_rollups(&self.cfg) => {
                crate::api::readpool::gated(&self.read, gate, |c| {
                    snapshot::read(c, &self.cfg, now_ms)
                })?
            }
            _ => snapshot::read(&self.read, &self.cfg, now_ms)?,
        };
        let since = *self.started_ms.get_or_insert(now_ms);
        let eval = rules::evaluate(&self.cfg, &routers, &mut self.mem, now_ms, since);
        let conditions = eval.conditions.len();
        let transitions = engine.step(eval.conditions, &eval.hold, now_ms);
        if engine.take_pending_changed() {
            state::save_pending(self.write.connection(), engine.pending())?;
        }
        let mut stats = EvalStats {
            routers: routers.len(),
            conditions,
            ..Default::default()
        };
        let writes = transitions
            .iter()
            .any(|t| !matches!(t, Transition::Update { .. }));
        // Updates refresh the stored values of firing alerts: written with other changes, else
        // once a minute, to keep the evaluator's writes (and its share of the write lock) small.
        let refresh =
            !transitions.is_empty() && self.last_refresh.elapsed() >= Duration::from_secs(60);
        if writes || refresh {
            self.last_refresh = Instant::now();
            let fired = state::apply(
                self.write.connection(),
                &transitions,
                &self.receivers,
                self.cfg.queue_max,
                now_ms,
            )?;
            for t in &transitions {
                match t {
                    Transition::Fire { cond, .. } => {
                        stats.fired += 1;
                        if let Some((_, id)) = fired.iter().find(|(k, _)| *k == cond.key) {
                            engine.fired(
                                cond.key.clone(),
                                *id,
                                now_ms,
                                cond.keep_firing_for.as_millis() as i64,
                            );
                        }
                    }
                    Transition::Resolve { .. } => stats.resolved += 1,
                    Transition::Update { .. } => {}
                }
            }
        }
        if self
            .last_prune
            .is_none_or(|t| t.elapsed() > Duration::from_secs(3600))
        {
            self.last_prune = Some(Instant::now());
            let before = now_ms - i64::from(self.cfg.history_days) * 86_400_000;
            state::prune(self.write.connection(), before)?;
            state::trim_queue(self.write.connection(), self.cfg.queue_max)?;
        }
        Ok(stats)
    }
}

/// The evaluator thread's nice value: ingest and the API get the CPU first.
const EVAL_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`EVAL_NICE`] (Linux keeps a nice value
/// per thread); a failure is only logged.
fn lower_priority() {
    if let Err(e) = crate::thread_priority::set_this_thread_nice(EVAL_NICE) {
        tracing::debug!(error = %e, "cannot lower the alert evaluator's priority");
    }
}

/// The running alert service: the evaluator thread and the delivery task.
pub struct AlertService {
    stop_eval: Option<mpsc::Sender<()>>,
    eval: Option<JoinHandle<()>>,
    stop_delivery: tokio::sync::watch::Sender<bool>,
    delivery: Option<tokio::task::JoinHandle<()>>,
}

impl AlertService {
    /// Starts the evaluator thread and the delivery task (must run inside a tokio runtime).
    /// `gate`: the database writer's health, so that snapshots see the rollup sums it holds.
    pub fn spawn(
        cfg: AlertsConfig,
        path: &Path,
        gate: Option<Arc<DbHealth>>,
    ) -> Result<AlertService, StoreError> {
        let mut evaluator = Evaluator::open(cfg.clone(), path)?.with_gate(gate);
        let deliverer = delivery::Deliverer::open(cfg.clone(), path)?;
        let wake = Arc::new(Notify::new());
        let (stop_delivery, stop_rx) = tokio::sync::watch::channel(false);
        let delivery = tokio::spawn(deliverer.run(wake.clone(), stop_rx));
        let (stop_eval, stop) = mpsc::channel::<()>();
        let interval = cfg.eval_interval;
        let eval = std::thread::Builder::new()
            .name("alerts-eval".into())
            .spawn(move || {
                lower_priority();
                loop {
                    let t = Instant::now();
                    match evaluator.run_once(now_ms()) {
                        Ok(s) => {
                            let took_us = t.elapsed().as_micros() as u64;
                            tracing::debug!(
                                routers = s.routers,
                                conditions = s.conditions,
                                took_us,
                                "alerts evaluated"
                            );
                            if s.fired + s.resolved > 0 {
                                tracing::info!(
                                    fired = s.fired,
                                    resolved = s.resolved,
                                    "alerts changed"
                                );
                                wake.notify_one();
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "alert evaluation failed"),
                    }
                    match stop.recv_timeout(interval) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })?;
        Ok(AlertService {
            stop_eval: Some(stop_eval),
            eval: Some(eval),
            stop_delivery,
            delivery: Some(delivery),
        })
    }

    /// Stops both and waits for them (the delivery task up to `grace`).
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop_eval.take();
        let _ = self.stop_delivery.send(true);
        if let Some(t) = self.eval.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        if let Some(d) = self.delivery.take() {
            let _ = tokio::time::timeout(grace, d).await;
        }
    }
}

impl Drop for AlertService {
    fn drop(&mut self) {
        self.stop_eval.take();
        let _ = self.stop_delivery.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{enrolled_router, ingest_one, open_temp, rich_report};

    fn ingest(store: &mut Store, router_id: i64, seq: u64, ts_ms: i64, cpu_permille: u16) {
        let mut r = rich_report([4; 16], seq, ts_ms as u64, seq + 1);
        r.system.as_mut().unwrap().cpu_busy_permille = Some(cpu_permille);
        ingest_one(store, router_id, ts_ms, &r);
    }

    fn states(store: &Store) -> Vec<(String, String)> {
        let mut st = store
            .connection()
            .prepare("SELECT rule, state FROM alerts ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The writer holds the rollup sums of the newest report (`rollup_hold`): `ovpn_rollup_1h`
    /// still says the OpenVPN clients were last seen in the report before. Read as it is, the
    /// client rule sees them gone from the newest report (a false alert); the evaluator with
    /// the writer's gate has the sums written first and sees them in it.
    #[test]
    fn the_evaluator_sees_the_rollup_sums_the_writer_holds() {
        use crate::ingest::writer::{IngestJob, Writer, WriterConfig, WriterReply};
        use crate::store::Retention;
        // Wall-clock time: reports of a closed hour outside the hot window would be sealed by the
        // idle writer within milliseconds, and sealing writes the held sums first.
        let now: i64 = crate::clock::now_ms();
        let (dir, store, router) = crate::store::testutil::store_holding_rollups(4, now);
        let path = dir.path().join("routerstats.db");
        let writer = Writer::spawn(
            store,
            WriterConfig::new(
                16,
                Duration::from_millis(1),
                Retention::default(),
                Duration::from_secs(3600),
            ),
        )
        .unwrap();
        let (reply, mut replies) = tokio::sync::mpsc::unbounded_channel();
        writer
            .sender()
            .unwrap()
            .blocking_send(IngestJob {
                router_id: router,
                received_at_ms: now - 30_000,
                report: Box::new(rich_report([4; 16], 2, (now - 30_000) as u64, 3)),
                reply,
            })
            .unwrap();
        assert!(matches!(replies.blocking_recv(), Some(WriterReply::Ack(_))));
        assert!(writer.health().rollup_state() & 1 == 1, "sums held");
        let cfg = AlertsConfig::from_value(
            toml::from_str("[fleet]\ncert_days = 0\novpn_client_gone = true").unwrap(),
        )
        .unwrap();
        let gone = |ev: &Evaluator| -> usize {
            snapshot::read(&ev.read, &ev.cfg, now).unwrap()[0]
                .report
                .as_ref()
                .unwrap()
                .ovpn_gone
                .len()
        };
        // Without the gate: the held sums are not seen, the clients look gone.
        let ungated = Evaluator::open(cfg.clone(), &path).unwrap();
        assert!(gone(&ungated) > 0, "the test needs sums held");
        drop(ungated);
        // With it: no client is gone, nothing fires.
        let mut ev = Evaluator::open(cfg, &path)
            .unwrap()
            .with_gate(Some(writer.health()));
        let s = ev.run_once(now).unwrap();
        assert_eq!((s.conditions, s.fired), (0, 0), "{s:?}");
        assert_eq!(writer.health().rollup_state() & 1, 0, "sums written");
        assert_eq!(gone(&ev), 0);
        assert!(states(&ev.write).is_empty());
        drop(ev);
        writer.join(Duration::from_secs(5));
    }

    #[test]
    fn evaluator_fires_resolves_and_survives_a_restart() {
        let (dir, mut store) = open_temp();
        let path = dir.path().join("routerstats.db");
        let router = enrolled_router(&mut store, "gw1");
        let t0: i64 = 1_700_000_000_000;
        ingest(&mut store, router.id, 1, t0, 995);
        let v: toml::Value = toml::from_str(
            "[fleet]\ncert_days = 0\ncpu_for = \"30s\"\nkeep_firing_for = \"20s\"\n\
             [[receivers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"",
        )
        .unwrap();
        let cfg = AlertsConfig::from_value(v).unwrap();
        let mut ev = Evaluator::open(cfg.clone(), &path).unwrap();
        let s = ev.run_once(t0 + 1_000).unwrap();
        assert_eq!(
            (s.routers, s.conditions, s.fired),
            (1, 1, 0),
            "cpu is pending for 30 s"
        );
        ingest(&mut store, router.id, 2, t0 + 30_000, 990);
        let s = ev.run_once(t0 + 31_000).unwrap();
        assert_eq!(s.fired, 1);
        assert_eq!(states(&store), [("cpu".into(), "firing".into())]);
        // Values of the firing alert and one queued delivery.
        let values: String = store
            .connection()
            .query_row("SELECT \"values\" FROM alerts", [], |r| r.get(0))
            .unwrap();
        assert!(values.contains("\"cpu_percent\":99.0"), "{values}");
        let queued: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM alert_deliveries WHERE receiver = 'hook'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(queued, 1);

        // The router goes silent: offline fires, the CPU alert is held as it is.
        let s = ev.run_once(t0 + 30_000 + 91_000).unwrap();
        assert_eq!((s.fired, s.resolved), (1, 0));
        drop(ev);
        // Restart: both are loaded back; a normal report resolves offline at once (back online)
        // and CPU after its hold-down.
        let mut ev = Evaluator::open(cfg, &path).unwrap();
        ingest(&mut store, router.id, 3, t0 + 130_000, 100);
        let s = ev.run_once(t0 + 130_500).unwrap();
        assert_eq!(s.resolved, 1);
        assert_eq!(
            states(&store),
            [
                ("cpu".into(), "firing".into()),
                ("offline".into(), "resolved".into())
            ]
        );
        let s = ev.run_once(t0 + 130_500 + 25_000).unwrap();
        assert_eq!(s.resolved, 1);
        assert_eq!(
            states(&store),
            [
                ("cpu".into(), "resolved".into()),
                ("offline".into(), "resolved".into())
            ]
        );
        let events: Vec<String> = store
            .connection()
            .prepare("SELECT event FROM alert_deliveries ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events, ["firing", "firing", "resolved", "resolved"]);
    }

    /// A condition waiting out its for-duration keeps its start across a restart: the CPU alert
    /// fires 30 s after the condition first held, though the evaluator restarted in between.
    #[test]
    fn pending_for_duration_survives_a_restart() {
        let (dir, mut store) = open_temp();
        let path = dir.path().join("routerstats.db");
        let router = enrolled_router(&mut store, "gw1");
        let t0: i64 = 1_700_000_000_000;
        ingest(&mut store, router.id, 1, t0, 995);
        let v: toml::Value = toml::from_str("[fleet]\ncert_days = 0\ncpu_for = \"30s\"").unwrap();
        let cfg = AlertsConfig::from_value(v).unwrap();
        let mut ev = Evaluator::open(cfg.clone(), &path).unwrap();
        assert_eq!(
            ev.run_once(t0 + 1_000).unwrap().fired,
            0,
            "pending for 30 s"
        );
        drop(ev);
        let mut ev = Evaluator::open(cfg.clone(), &path).unwrap();
        ingest(&mut store, router.id, 2, t0 + 30_000, 990);
        let s = ev.run_once(t0 + 31_000).unwrap();
        assert_eq!(
            s.fired, 1,
            "30 s after the first evaluation, restart or not"
        );
        assert_eq!(states(&store), [("cpu".into(), "firing".into())]);
        let started: i64 = store
            .connection()
            .query_row("SELECT started_ms FROM alerts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(started, t0 + 1_000);
        // Fired: no longer pending, in memory or on disk.
        let left: i64 = store
            .connection()
            .query_row("SELECT count(*) FROM alert_pending", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        // A condition that stops holding is forgotten on disk too.
        let router2 = enrolled_router(&mut store, "gw2");
        ingest(&mut store, router2.id, 1, t0 + 40_000, 995);
        ev.run_once(t0 + 41_000).unwrap();
        let n = |s: &Store| -> i64 {
            s.connection()
                .query_row("SELECT count(*) FROM alert_pending", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(n(&store), 1);
        ingest(&mut store, router2.id, 2, t0 + 45_000, 100);
        ev.run_once(t0 + 46_000).unwrap();
        assert_eq!(n(&store), 0);
    }

    #[test]
    fn certificate_near_expiry_fires_from_stored_data() {
        let (dir, mut store) = open_temp();
        let router = enrolled_router(&mut store, "gw2");
        let now = 1_700_000_000_000;
        ingest(&mut store, router.id, 1, now, 10);
        let mut ev =
            Evaluator::open(AlertsConfig::default(), &dir.path().join("routerstats.db")).unwrap();
        // The test CA gave it not_after = 1_000_000 (1970): long expired and never renewed.
        assert_eq!(ev.run_once(now + 1).unwrap().fired, 1);
        assert_eq!(states(&store), [("cert_renewal".into(), "firing".into())]);
    }
}
