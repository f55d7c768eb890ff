//! The `actions` table: fleet actions, their delivery state and the routers' results.
//!
//! Every state change is one statement (autocommit, `synchronous=FULL`), so a result is durable
//! when [`Store::finish_action`] returns. State changes are guarded by the current state, so a
//! duplicate result or a late delivery never moves an action backwards.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use routerstats_shared::action::{ActionKind, ActionResult};

use super::{Store, StoreError};

/// One stored action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRow {
    pub id: i64,
    pub router_id: i64,
    pub router: String,
    pub kind: String,
    /// The typed parameters (the serde form of `ActionKind`).
    pub params: serde_json::Value,
    pub idempotency_key: Option<String>,
    pub requested_by: String,
    /// Unix seconds.
    pub created_at: i64,
    pub deadline: i64,
    pub sent_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Deliveries to the router so far (a reconnect delivers an unanswered action again).
    pub attempts: i64,
    /// `queued`, `sent`, `done`, `failed`, `expired` or `refused`.
    pub state: String,
    /// The typed detail the router returned (JSON), if any.
    pub result: Option<serde_json::Value>,
    pub output: Option<String>,
}

impl ActionRow {
    /// Whether the action reached a final state.
    pub fn is_final(&self) -> bool {
        !matches!(self.state.as_str(), "queued" | "sent")
    }

    /// The typed parameters back.
    pub fn kind(&self) -> Option<ActionKind> {
        serde_json::from_value(self.params.clone()).ok()
    }
}

/// A new action.
#[derive(Debug, Clone)]
pub struct NewAction<'a> {
    pub router_id: i64,
    pub kind: &'a ActionKind,
    pub idempotency_key: Option<&'a str>,
    pub requested_by: &'a str,
    pub now: i64,
    pub deadline: i64,
    /// `Some(reason)` stores the action as `refused` right away (a revoked router).
    pub refused: Option<&'a str>,
}

/// Filters of [`Store::list_actions`].
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub router_id: Option<i64>,
    pub state: Option<String>,
    pub kind: Option<String>,
    /// Only ids below this (paging backwards from the newest).
    pub before_id: Option<i64>,
    pub limit: u32,
}

const COLUMNS: &str =
    "a.id, a.router_id, r.name, a.kind, a.params, a.idempotency_key, a.requested_by, \
     a.created_at, a.deadline, a.sent_at, a.finished_at, a.attempts, a.state, a.result, a.output";

fn row(r: &Row<'_>) -> rusqlite::Result<ActionRow> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(ActionRow {
        id: r.get(0)?,
        router_id: r.get(1)?,
        router: r.get(2)?,
        kind: r.get(3)?,
        params: json(r.get(4)?).unwrap_or(serde_json::Value::Null),
        idempotency_key: r.get(5)?,
        requested_by: r.get(6)?,
        created_at: r.get(7)?,
        deadline: r.get(8)?,
        sent_at: r.get(9)?,
        finished_at: r.get(10)?,
        attempts: r.get(11)?,
        state: r.get(12)?,
        result: json(r.get(13)?),
        output: r.get(14)?,
    })
}

impl Store {
    /// Stores a new action (or returns the existing one with the same caller and idempotency
    /// key; the second value is `false` then).
    pub fn insert_action(&self, a: &NewAction<'_>) -> Result<(ActionRow, bool), StoreError> {
        if let Some(key) = a.idempotency_key {
            let found: Option<i64> = self
                .conn
                .query_row(
                    "SELECT id FROM actions WHERE requested_by = ?1 AND idempotency_key = ?2",
                    params![a.requested_by, key],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = found {
                return Ok((
                    self.action(id)?
                        .ok_or_else(|| StoreError::NotFound(format!("action {id}")))?,
                    false,
                ));
            }
        }
        let params =
            serde_json::to_string(a.kind).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        let (state, finished, output) = match a.refused {
            Some(why) => ("refused", Some(a.now), Some(why)),
            None => ("queued", None, None),
        };
        self.conn.execute(
            "INSERT INTO actions (router_id, kind, params, idempotency_key, requested_by, created_at, deadline, \
             finished_at, state, output) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![a.router_id, a.kind.name(), params, a.idempotency_key, a.requested_by, a.now, a.deadline, finished, state, output],
        )?;
        let id = self.conn.last_insert_rowid();
        if a.refused.is_some() {
            self.forget_secrets()?;
        }
        Ok((
            self.action(id)?
                .ok_or_else(|| StoreError::NotFound(format!("action {id}")))?,
            true,
        ))
    }

    /// One action by id.
    pub fn action(&self, id: i64) -> Result<Option<ActionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM actions a JOIN routers r ON r.id = a.router_id WHERE a.id = ?1"
        );
        Ok(self.conn.query_row(&sql, [id], row).optional()?)
    }

    /// Actions, newest first.
    pub fn list_actions(&self, f: &ActionFilter) -> Result<Vec<ActionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM actions a JOIN routers r ON r.id = a.router_id \
             WHERE (?1 IS NULL OR a.router_id = ?1) AND (?2 IS NULL OR a.state = ?2) \
             AND (?3 IS NULL OR a.kind = ?3) AND (?4 IS NULL OR a.id < ?4) ORDER BY a.id DESC LIMIT ?5"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st
            .query_map(
                params![f.router_id, f.state, f.kind, f.before_id, f.limit],
                row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The router's actions still to deliver (queued, or sent without an answer) whose deadline
    /// has not passed, oldest first; marks them `sent` (one more attempt) at `now`.
    pub fn take_deliverable(
        &self,
        router_id: i64,
        now: i64,
        only_id: Option<i64>,
    ) -> Result<Vec<ActionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM actions a JOIN routers r ON r.id = a.router_id \
             WHERE a.router_id = ?1 AND a.state IN ('queued', 'sent') AND a.deadline > ?2 \
             AND (?3 IS NULL OR a.id = ?3) ORDER BY a.id"
        );
        let mut out = {
            let mut st = self.conn.prepare_cached(&sql)?;
            let rows = st
                .query_map(params![router_id, now, only_id], row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        for a in &mut out {
            self.conn.execute(
                "UPDATE actions SET state = 'sent', sent_at = ?2, attempts = attempts + 1 \
                 WHERE id = ?1 AND state IN ('queued', 'sent')",
                params![a.id, now],
            )?;
            a.state = "sent".into();
            a.sent_at = Some(now);
            a.attempts += 1;
        }
        Ok(out)
    }

    /// Records a router's result. Accepted while the action is queued, sent, or expired (a
    /// late answer still tells what happened); a result for another router's action or a
    /// duplicate of a final one changes nothing. Returns the updated row when it changed.
    pub fn finish_action(
        &self,
        router_id: i64,
        r: &ActionResult,
        now: i64,
    ) -> Result<Option<ActionRow>, StoreError> {
        let detail = r
            .detail
            .as_ref()
            .and_then(|d| serde_json::to_string(d).ok());
        let n = self.conn.execute(
            "UPDATE actions SET state = ?3, finished_at = ?4, output = ?5, result = ?6 \
             WHERE id = ?1 AND router_id = ?2 AND state IN ('queued', 'sent', 'expired')",
            params![r.id, router_id, r.state.as_str(), now, r.output, detail],
        )?;
        if n == 0 {
            return Ok(None);
        }
        self.forget_secrets()?;
        self.action(r.id)
    }

    /// Replaces the password of final PPPoE account actions by `********`: the router has it
    /// (or never will), and the database keeps no copy.
    fn forget_secrets(&self) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE actions SET params = json_set(params, '$.pppoe_secret_create.password', ?1) \
             WHERE kind = 'pppoe_secret_create' AND state NOT IN ('queued', 'sent') \
             AND json_extract(params, '$.pppoe_secret_create.password') IS NOT ?1",
            [routerstats_shared::action::REDACTED],
        )?;
        Ok(())
    }

    /// The newest successful `wg_add_peer` of a peer name (which router and interface hold it).
    pub fn latest_peer_add(&self, name: &str) -> Result<Option<ActionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM actions a JOIN routers r ON r.id = a.router_id \
             WHERE a.kind = 'wg_add_peer' AND a.state = 'done' \
             AND json_extract(a.params, '$.wg_add_peer.name') = ?1 ORDER BY a.id DESC LIMIT 1"
        );
        Ok(self.conn.query_row(&sql, [name], row).optional()?)
    }

    /// Marks every open action whose deadline passed as `expired`; returns how many. Looks
    /// first with a read, so the once-a-second call takes no write lock when nothing is due.
    pub fn expire_actions(&self, now: i64) -> Result<usize, StoreError> {
        let due: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM actions WHERE state IN ('queued', 'sent') AND deadline <= ?1 LIMIT 1",
                [now],
                |r| r.get(0),
            )
            .optional()?;
        if due.is_none() {
            return Ok(0);
        }
        let n = self.conn.execute(
            "UPDATE actions SET state = 'expired', finished_at = ?1, \
             output = 'the deadline passed before the router answered' \
             WHERE state IN ('queued', 'sent') AND deadline <= ?1",
            [now],
        )?;
        self.forget_secrets()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::*;
    use routerstats_shared::action::{ActionDetail, ActionState, REDACTED};

    fn new<'a>(
        router_id: i64,
        kind: &'a ActionKind,
        key: Option<&'a str>,
        deadline: i64,
    ) -> NewAction<'a> {
        NewAction {
            router_id,
            kind,
            idempotency_key: key,
            requested_by: "k1",
            now: 100,
            deadline,
            refused: None,
        }
    }

    #[test]
    fn pppoe_passwords_are_kept_only_while_the_action_is_open() {
        let (_dir, mut store) = open_temp();
        let rid = enrolled_router(&mut store, "ap1").id;
        let kind = |pw: &str| ActionKind::PppoeSecretCreate {
            username: "u".into(),
            password: pw.into(),
        };
        let pw = |id: i64| match store.action(id).unwrap().unwrap().kind() {
            Some(ActionKind::PppoeSecretCreate { password, .. }) => password,
            other => panic!("{other:?}"),
        };
        let (done, _) = store
            .insert_action(&new(rid, &kind("pw-done"), None, 200))
            .unwrap();
        let (late, _) = store
            .insert_action(&new(rid, &kind("pw-late"), None, 120))
            .unwrap();
        let (open, _) = store
            .insert_action(&new(rid, &kind("pw-open"), None, 900))
            .unwrap();
        // Queued and sent actions keep it: the router still needs it.
        assert_eq!(store.take_deliverable(rid, 110, None).unwrap().len(), 3);
        assert_eq!(pw(done.id), "pw-done");
        let r = ActionResult::new(done.id, ActionState::Done, "ok", None);
        store.finish_action(rid, &r, 115).unwrap().unwrap();
        assert_eq!(store.expire_actions(130).unwrap(), 1);
        assert_eq!(
            (pw(done.id).as_str(), pw(late.id).as_str()),
            (REDACTED, REDACTED)
        );
        assert_eq!(pw(open.id), "pw-open");
        // Refused at creation (a revoked router): never kept.
        let k = kind("pw-refused");
        let refused = NewAction {
            refused: Some("revoked"),
            ..new(rid, &k, None, 900)
        };
        let (r, _) = store.insert_action(&refused).unwrap();
        assert_eq!(pw(r.id), REDACTED);
    }

    #[test]
    fn lifecycle_idempotency_and_expiry() {
        let (_dir, mut store) = open_temp();
        let rid = enrolled_router(&mut store, "ap1").id;
        let kind = ActionKind::WgReload {
            interface: "wg0".into(),
        };
        let (a, fresh) = store
            .insert_action(&new(rid, &kind, Some("x"), 200))
            .unwrap();
        assert!(fresh);
        assert_eq!(
            (a.state.as_str(), a.kind.as_str(), a.router.as_str()),
            ("queued", "wg_reload", "ap1")
        );
        assert_eq!(a.kind(), Some(kind.clone()));
        let (again, fresh) = store
            .insert_action(&new(rid, &kind, Some("x"), 200))
            .unwrap();
        assert!(!fresh);
        assert_eq!(again.id, a.id);

        let sent = store.take_deliverable(rid, 150, None).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].state.as_str(), sent[0].attempts), ("sent", 1));
        // A reconnect delivers the unanswered action again.
        assert_eq!(
            store.take_deliverable(rid, 160, None).unwrap()[0].attempts,
            2
        );

        let res = ActionResult::new(
            a.id,
            ActionState::Done,
            "ok",
            Some(ActionDetail::WgPeer {
                interface: "wg0".into(),
                address: "10.0.0.2/32".into(),
                router_public_key: None,
                listen_port: None,
                interface_addresses: vec![],
            }),
        );
        // Another router cannot finish it.
        assert!(store.finish_action(rid + 1, &res, 170).unwrap().is_none());
        let done = store.finish_action(rid, &res, 170).unwrap().unwrap();
        assert_eq!(done.state, "done");
        assert!(done.is_final());
        assert_eq!(done.result.unwrap()["WgPeer"]["address"], "10.0.0.2/32");
        // A duplicate result changes nothing.
        assert!(store.finish_action(rid, &res, 180).unwrap().is_none());
        assert!(store.take_deliverable(rid, 180, None).unwrap().is_empty());

        let (b, _) = store.insert_action(&new(rid, &kind, None, 200)).unwrap();
        assert_eq!(store.expire_actions(199).unwrap(), 0);
        assert_eq!(store.expire_actions(200).unwrap(), 1);
        assert_eq!(store.action(b.id).unwrap().unwrap().state, "expired");
        assert!(store.take_deliverable(rid, 150, None).unwrap().is_empty());
        // A late answer is still recorded.
        let late = ActionResult::new(b.id, ActionState::Failed, "boom", None);
        assert_eq!(
            store.finish_action(rid, &late, 300).unwrap().unwrap().state,
            "failed"
        );

        assert!(store.latest_peer_add("x").unwrap().is_none());
        let add = ActionKind::WgAddPeer {
            interface: "wg0".into(),
            name: "x".into(),
            public_key: "k".into(),
        };
        let (c, _) = store.insert_action(&new(rid, &add, None, 10_000)).unwrap();
        store
            .finish_action(
                rid,
                &ActionResult::new(c.id, ActionState::Done, "", None),
                120,
            )
            .unwrap();
        assert_eq!(store.latest_peer_add("x").unwrap().unwrap().id, c.id);
        let all = store
            .list_actions(&ActionFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            all.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![c.id, b.id, a.id]
        );
        let failed = store
            .list_actions(&ActionFilter {
                state: Some("failed".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(failed.len(), 1);
        let page = store
            .list_actions(&ActionFilter {
                before_id: Some(b.id),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.len(), 1);
    }
}
