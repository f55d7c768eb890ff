//! Alert lifecycle: pending -> firing -> resolved, with for-duration and hold-down, and its
//! persistence in SQLite (`alerts`, `alert_silences`, `alert_deliveries`, schema version 6).
//!
//! [`Engine::step`] is pure: it turns the conditions of one evaluation into [`Transition`]s.
//! [`apply`] writes them in one transaction: a new firing row (the partial unique index keeps
//! one firing row per key), a resolution, and one queued delivery per receiver and event unless
//! a silence matches. Firing alerts are loaded back at start ([`load_firing`]), so they survive
//! a restart; so are pending conditions (not yet held for their `for` duration, table
//! `alert_pending`, [`load_pending`]/[`save_pending`]), so a restart does not restart their wait.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::rules::{AlertKey, Condition, RULES};

/// A firing alert the engine tracks.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub id: i64,
    /// The last evaluation at which its condition held.
    pub last_true_ms: i64,
    pub keep_firing_for_ms: i64,
}

/// What one evaluation changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The condition held for its `for` duration: a new alert, started at `started_ms`.
    Fire { cond: Condition, started_ms: i64 },
    /// Still firing: its latest values.
    Update { id: i64, cond: Condition },
    /// False for its hold-down: resolved at `ended_ms`.
    Resolve {
        id: i64,
        key: AlertKey,
        ended_ms: i64,
    },
}

/// The in-memory lifecycle state.
#[derive(Debug, Default)]
pub struct Engine {
    /// Conditions that hold but not yet for their `for` duration: since when.
    pending: HashMap<AlertKey, i64>,
    firing: HashMap<AlertKey, Firing>,
    /// `pending` changed since [`Engine::take_pending_changed`] was last called.
    pending_changed: bool,
}

impl Engine {
    /// An engine that knows the alerts already firing (from [`load_firing`]).
    pub fn with_firing(firing: impl IntoIterator<Item = (AlertKey, Firing)>) -> Self {
        Engine {
            pending: HashMap::new(),
            firing: firing.into_iter().collect(),
            pending_changed: false,
        }
    }

    /// Adds the pending conditions of an earlier run (from [`load_pending`]); a key that is
    /// already firing is not pending.
    pub fn with_pending(mut self, pending: impl IntoIterator<Item = (AlertKey, i64)>) -> Self {
        for (k, since) in pending {
            if !self.firing.contains_key(&k) {
                self.pending.insert(k, since);
            }
        }
        self
    }

    /// Conditions waiting out their `for` duration, and since when.
    pub fn pending(&self) -> &HashMap<AlertKey, i64> {
        &self.pending
    }

    /// Whether the pending set changed since the last call (then it should be saved).
    pub fn take_pending_changed(&mut self) -> bool {
        std::mem::take(&mut self.pending_changed)
    }

    /// Alerts firing now.
    pub fn firing(&self) -> &HashMap<AlertKey, Firing> {
        &self.firing
    }

    /// One evaluation: `conds` hold at `now_ms`; the alerts of routers in `hold` keep their
    /// state (their data is stale).
    pub fn step(
        &mut self,
        conds: Vec<Condition>,
        hold: &HashSet<i64>,
        now_ms: i64,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut seen = HashSet::with_capacity(conds.len());
        for c in conds {
            seen.insert(c.key.clone());
            if let Some(f) = self.firing.get_mut(&c.key) {
                f.last_true_ms = now_ms;
                f.keep_firing_for_ms = c.keep_firing_for.as_millis() as i64;
                out.push(Transition::Update { id: f.id, cond: c });
                continue;
            }
            let since = *self.pending.entry(c.key.clone()).or_insert_with(|| {
                self.pending_changed = true;
                now_ms
            });
            if now_ms - since >= c.for_.as_millis() as i64 {
                self.pending.remove(&c.key);
                self.pending_changed = true;
                out.push(Transition::Fire {
                    cond: c,
                    started_ms: since,
                });
            }
        }
        let before = self.pending.len();
        self.pending.retain(|k, _| seen.contains(k));
        self.pending_changed |= self.pending.len() != before;
        for (key, f) in &mut self.firing {
            if seen.contains(key) {
                continue;
            }
            if hold.contains(&key.router_id) && key.rule != "offline" {
                f.last_true_ms = now_ms;
                continue;
            }
            if now_ms - f.last_true_ms >= f.keep_firing_for_ms {
                out.push(Transition::Resolve {
                    id: f.id,
                    key: key.clone(),
                    ended_ms: now_ms,
                });
            }
        }
        for t in &out {
            if let Transition::Resolve { key, .. } = t {
                self.firing.remove(key);
            }
        }
        out
    }

    /// Records the id [`apply`] gave a fired alert.
    pub fn fired(&mut self, key: AlertKey, id: i64, now_ms: i64, keep_firing_for_ms: i64) {
        self.firing.insert(
            key,
            Firing {
                id,
                last_true_ms: now_ms,
                keep_firing_for_ms,
            },
        );
    }
}

/// Maps a stored rule name to the static one (unknown names, from a newer collector, are None).
pub fn rule_name(s: &str) -> Option<&'static str> {
    RULES.iter().copied().find(|r| *r == s)
}

/// The firing alerts in the database, with the rule memory they imply (WAN names that are down).
pub fn load_firing(
    conn: &Connection,
    now_ms: i64,
    keep_firing_for_ms: i64,
) -> rusqlite::Result<Vec<(AlertKey, Firing)>> {
    let mut st =
        conn.prepare("SELECT id, rule, router_id, subject FROM alerts WHERE state = 'firing'")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, rule, router_id, subject) = row?;
        if let Some(rule) = rule_name(&rule) {
            let key = AlertKey {
                rule,
                router_id,
                subject,
            };
            // Restarted: give each condition one hold-down to show up again (offline resolves
            // at the first report, as always).
            let keep = if rule == "offline" {
                0
            } else {
                keep_firing_for_ms
            };
            out.push((
                key,
                Firing {
                    id,
                    last_true_ms: now_ms,
                    keep_firing_for_ms: keep,
                },
            ));
        }
    }
    Ok(out)
}

/// The pending conditions saved by [`save_pending`] (rules this collector does not know are
/// left out).
pub fn load_pending(conn: &Connection) -> rusqlite::Result<Vec<(AlertKey, i64)>> {
    let mut st = conn.prepare("SELECT rule, router_id, subject, since_ms FROM alert_pending")?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (rule, router_id, subject, since) = row?;
        if let Some(rule) = rule_name(&rule) {
            out.push((
                AlertKey {
                    rule,
                    router_id,
                    subject,
                },
                since,
            ));
        }
    }
    Ok(out)
}

/// Replaces the saved pending conditions with `pending`, in one transaction.
pub fn save_pending(conn: &Connection, pending: &HashMap<AlertKey, i64>) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM alert_pending", [])?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO alert_pending (rule, router_id, subject, since_ms) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (k, since) in pending {
            ins.execute(params![k.rule, k.router_id, k.subject, since])?;
        }
    }
    tx.commit()
}

/// Whether an active silence matches this alert.
pub fn silenced(
    conn: &Connection,
    rule: &str,
    router: &str,
    site: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM alert_silences WHERE starts_ms <= ?4 AND expires_ms > ?4 \
         AND (rule IS NULL OR rule = ?1) AND (router IS NULL OR router = ?2) \
         AND (site IS NULL OR site = ?3) LIMIT 1",
    )?
    .query_row(params![rule, router, site, now_ms], |_| Ok(()))
    .optional()
    .map(|o| o.is_some())
}

/// Writes the transitions in one transaction and queues their deliveries to `receivers`;
/// returns the ids of the fired alerts (in the order of the `Fire` transitions).
pub fn apply(
    conn: &Connection,
    transitions: &[Transition],
    receivers: &[String],
    queue_max: usize,
    now_ms: i64,
) -> rusqlite::Result<Vec<(AlertKey, i64)>> {
    let tx = conn.unchecked_transaction()?;
    let mut fired = Vec::new();
    let mut queued = 0usize;
    for t in transitions {
        match t {
            Transition::Fire { cond, started_ms } => {
                let sil = silenced(
                    &tx,
                    cond.key.rule,
                    &cond.router,
                    cond.site.as_deref(),
                    now_ms,
                )?;
                tx.prepare_cached(
                    "INSERT INTO alerts (rule, router_id, router, site, subject, severity, state, summary, \"values\", \
                     silenced, started_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'firing', ?7, ?8, ?9, ?10, ?11) \
                     ON CONFLICT (rule, router_id, subject) WHERE state = 'firing' DO UPDATE SET \
                     summary = excluded.summary, \"values\" = excluded.\"values\", updated_ms = excluded.updated_ms",
                )?
                .execute(params![
                    cond.key.rule,
                    cond.key.router_id,
                    cond.router,
                    cond.site,
                    cond.key.subject,
                    cond.severity,
                    cond.summary,
                    cond.values.to_string(),
                    sil,
                    started_ms,
                    now_ms
                ])?;
                let id: i64 = tx
                    .prepare_cached("SELECT id FROM alerts WHERE rule = ?1 AND router_id = ?2 AND subject = ?3 AND state = 'firing'")?
                    .query_row(params![cond.key.rule, cond.key.router_id, cond.key.subject], |r| r.get(0))?;
                if !sil {
                    queued += enqueue(&tx, id, "firing", receivers, now_ms)?;
                }
                fired.push((cond.key.clone(), id));
            }
            Transition::Update { id, cond } => {
                tx.prepare_cached("UPDATE alerts SET summary = ?2, \"values\" = ?3, updated_ms = ?4 WHERE id = ?1 AND state = 'firing'")?
                    .execute(params![id, cond.summary, cond.values.to_string(), now_ms])?;
            }
            Transition::Resolve { id, ended_ms, .. } => {
                let row: Option<(String, String, Option<String>, bool)> = tx
                    .prepare_cached("SELECT rule, router, site, silenced FROM alerts WHERE id = ?1 AND state = 'firing'")?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()?;
                let Some((rule, router, site, was_silenced)) = row else {
                    continue;
                };
                tx.prepare_cached("UPDATE alerts SET state = 'resolved', ended_ms = ?2, updated_ms = ?2 WHERE id = ?1")?
                    .execute(params![id, ended_ms])?;
                if !was_silenced && !silenced(&tx, &rule, &router, site.as_deref(), now_ms)? {
                    queued += enqueue(&tx, *id, "resolved", receivers, now_ms)?;
                }
            }
        }
    }
    if queued > 0 {
        trim_queue(&tx, queue_max)?;
    }
    tx.commit()?;
    Ok(fired)
}

fn enqueue(
    conn: &Connection,
    alert_id: i64,
    event: &str,
    receivers: &[String],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let mut st = conn.prepare_cached(
        "INSERT INTO alert_deliveries (alert_id, event, receiver, next_attempt_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?;
    for r in receivers {
        st.execute(params![alert_id, event, r, now_ms])?;
    }
    Ok(receivers.len())
}

/// Keeps the newest `max` queued deliveries; logs how many older ones were dropped.
pub fn trim_queue(conn: &Connection, max: usize) -> rusqlite::Result<usize> {
    let n = conn.execute(
        "DELETE FROM alert_deliveries WHERE id IN (SELECT id FROM alert_deliveries ORDER BY id DESC LIMIT -1 OFFSET ?1)",
        [max as i64],
    )?;
    if n > 0 {
        tracing::warn!(
            dropped = n,
            max,
            "alert delivery queue full: dropped the oldest deliveries"
        );
    }
    Ok(n)
}

/// Deletes resolved alerts that ended before `before_ms`; returns how many.
pub fn prune(conn: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM alerts WHERE state = 'resolved' AND ended_ms < ?1",
        [before_ms],
    )
}

/// One stored alert, as the API and the receivers see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRow {
    pub id: i64,
    /// Rule name (`offline`, `cpu`, ...; see docs/alerts.md).
    pub rule: String,
    pub router_id: i64,
    pub router: String,
    pub site: Option<String>,
    /// Interface, disk, peer, client or station the alert is about; empty for router-wide rules.
    pub subject: String,
    /// `critical` or `warning`.
    pub severity: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub summary: String,
    /// The values that triggered it, with the threshold.
    #[schema(value_type = Object)]
    pub values: serde_json::Value,
    /// A silence matched when it fired (no notification was sent).
    pub silenced: bool,
    /// Unix milliseconds (collector clock).
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub updated_ms: i64,
}

/// The columns [`AlertRow::from_row`] reads, in order.
pub const ALERT_COLUMNS: &str =
    "id, rule, router_id, router, site, subject, severity, state, summary, \"values\", silenced, started_ms, ended_ms, updated_ms";

impl AlertRow {
    pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRow> {
        let values: String = r.get(9)?;
        Ok(AlertRow {
            id: r.get(0)?,
            rule: r.get(1)?,
            router_id: r.get(2)?,
            router: r.get(3)?,
            site: r.get(4)?,
            subject: r.get(5)?,
            severity: r.get(6)?,
            state: r.get(7)?,
            summary: r.get(8)?,
            values: serde_json::from_str(&values).unwrap_or(serde_json::Value::Null),
            silenced: r.get(10)?,
            started_ms: r.get(11)?,
            ended_ms: r.get(12)?,
            updated_ms: r.get(13)?,
        })
    }
}

/// Reads one alert.
pub fn get_alert(conn: &Connection, id: i64) -> rusqlite::Result<Option<AlertRow>> {
    conn.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?
        .query_row([id], AlertRow::from_row)
        .optional()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::store::schema::MIGRATIONS;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", true).unwrap();
        for m in MIGRATIONS {
            c.execute_batch(m).unwrap();
        }
        c
    }

    fn cond(rule: &'static str, for_s: u64, keep_s: u64) -> Condition {
        Condition {
            key: AlertKey {
                rule,
                router_id: 7,
                subject: String::new(),
            },
            router: "r7".into(),
            site: Some("north".into()),
            severity: "warning",
            summary: "s".into(),
            values: json!({"v": 1}),
            for_: Duration::from_secs(for_s),
            keep_firing_for: Duration::from_secs(keep_s),
        }
    }

    fn kinds(ts: &[Transition]) -> Vec<&'static str> {
        ts.iter()
            .map(|t| match t {
                Transition::Fire { .. } => "fire",
                Transition::Update { .. } => "update",
                Transition::Resolve { .. } => "resolve",
            })
            .collect()
    }

    #[test]
    fn for_duration_and_hold_down_stop_flapping() {
        let mut e = Engine::default();
        let none = HashSet::new();
        // Holds for 60 s before firing; a blip in between restarts the wait.
        assert!(e.step(vec![cond("cpu", 60, 120)], &none, 0).is_empty());
        assert!(e.step(vec![], &none, 30_000).is_empty());
        assert!(e.step(vec![cond("cpu", 60, 120)], &none, 40_000).is_empty());
        assert!(e.step(vec![cond("cpu", 60, 120)], &none, 90_000).is_empty());
        let t = e.step(vec![cond("cpu", 60, 120)], &none, 100_000);
        assert_eq!(kinds(&t), ["fire"]);
        assert!(matches!(
            &t[0],
            Transition::Fire {
                started_ms: 40_000,
                ..
            }
        ));
        e.fired(cond("cpu", 60, 120).key, 1, 100_000, 120_000);
        // False for less than the hold-down: still firing, and a new true refreshes it.
        assert!(e.step(vec![], &none, 200_000).is_empty());
        assert_eq!(
            kinds(&e.step(vec![cond("cpu", 60, 120)], &none, 210_000)),
            ["update"]
        );
        assert!(e.step(vec![], &none, 300_000).is_empty());
        assert_eq!(kinds(&e.step(vec![], &none, 330_000)), ["resolve"]);
        assert!(e.firing().is_empty());
        assert!(e.step(vec![], &none, 400_000).is_empty());
    }

    #[test]
    fn held_routers_keep_their_alerts() {
        let mut e = Engine::default();
        e.fired(cond("cpu", 0, 0).key, 1, 0, 0);
        let hold: HashSet<i64> = [7].into();
        assert!(e.step(vec![], &hold, 1_000_000).is_empty());
        assert_eq!(
            kinds(&e.step(vec![], &HashSet::new(), 1_000_001)),
            ["resolve"]
        );
    }

    #[test]
    fn apply_stores_dedups_silences_and_queues() {
        let c = db();
        let receivers = vec!["hook".to_string(), "mail".to_string()];
        let now = 1_000_000;
        let fire = |cond: Condition| Transition::Fire {
            cond,
            started_ms: now - 5,
        };
        let ids = apply(&c, &[fire(cond("cpu", 0, 0))], &receivers, 100, now).unwrap();
        assert_eq!(ids.len(), 1);
        let queued: i64 = c
            .query_row("SELECT count(*) FROM alert_deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(queued, 2);
        // The same key again (e.g. a second collector process) does not make a second row.
        let again = apply(&c, &[fire(cond("cpu", 0, 0))], &[], 100, now + 1).unwrap();
        assert_eq!(again[0].1, ids[0].1);
        let rows: i64 = c
            .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        // A silence on the site: a new alert there is stored, marked, not queued.
        c.execute(
            "INSERT INTO alert_silences (site, comment, created_ms, starts_ms, expires_ms) VALUES ('north', 'works', 0, 0, ?1)",
            [now + 10],
        )
        .unwrap();
        let mem = apply(&c, &[fire(cond("memory", 0, 0))], &receivers, 100, now + 2).unwrap();
        let a = get_alert(&c, mem[0].1).unwrap().unwrap();
        assert!(a.silenced);
        assert_eq!(a.values, json!({"v": 1}));
        let queued: i64 = c
            .query_row("SELECT count(*) FROM alert_deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(queued, 2);
        // After the silence expired, resolving the CPU alert queues "resolved" for each receiver.
        let cpu = AlertKey {
            rule: "cpu",
            router_id: 7,
            subject: String::new(),
        };
        apply(
            &c,
            &[Transition::Resolve {
                id: ids[0].1,
                key: cpu,
                ended_ms: now + 20,
            }],
            &receivers,
            100,
            now + 20,
        )
        .unwrap();
        let a = get_alert(&c, ids[0].1).unwrap().unwrap();
        assert_eq!(
            (a.state.as_str(), a.ended_ms, a.started_ms),
            ("resolved", Some(now + 20), now - 5)
        );
        let resolved: i64 = c
            .query_row(
                "SELECT count(*) FROM alert_deliveries WHERE event = 'resolved'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(resolved, 2);
        // The firing one is loaded back after a restart; the resolved one is not.
        let firing = load_firing(&c, now + 30, 0).unwrap();
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].0.rule, "memory");
        // Pruning deletes resolved history and its queued deliveries.
        assert_eq!(prune(&c, now + 21).unwrap(), 1);
        let left: i64 = c
            .query_row("SELECT count(*) FROM alert_deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn queue_is_bounded() {
        let c = db();
        let receivers: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
        apply(
            &c,
            &[Transition::Fire {
                cond: cond("cpu", 0, 0),
                started_ms: 0,
            }],
            &receivers,
            3,
            10,
        )
        .unwrap();
        let ids: Vec<String> = c
            .prepare("SELECT receiver FROM alert_deliveries ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, ["r2", "r3", "r4"]);
    }
}
