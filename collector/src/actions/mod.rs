//! Fleet actions on the collector side: store, deliver, expire and answer.
//!
//! [`Hub`] is shared by the HTTP API (which requests actions and waits for them) and the ingest
//! connections (which deliver them and report results). It owns its own [`Store`] connection and
//! the map of routers with a live connection, behind one lock, so an action stored while its
//! router connects is delivered exactly once by one of the two paths.
//!
//! Life of an action:
//! 1. [`Hub::request`] validates the typed parameters (the same checks the agent runs), stores
//!    the row `queued` (or `refused` for a revoked router) and, if the router is connected,
//!    marks it `sent` and hands it to the connection.
//! 2. A connecting router gets every `queued` or `sent` action of its own whose deadline has
//!    not passed ([`Hub::connect`]); an action sent on a connection that died unanswered is sent
//!    again (the agent remembers the ids it ran and answers a repeat with the first result, so
//!    nothing is applied twice).
//! 3. [`Hub::finish`] stores the router's `ActionResult` (one autocommit statement with
//!    `synchronous=FULL`) before anything else happens with it; a collector killed before that
//!    leaves the action `sent`, and the agent answers it again on the next connection.
//! 4. An expirer marks open actions past their deadline `expired` ([`spawn_expirer`]).
//!
//! [`wg_peers`] keeps the client configurations of WireGuard peers added through the API;
//! [`backups`] keeps the routers' backup archives; [`ovpn_clients`] the `.ovpn` of OpenVPN
//! clients issued by the routers' PKI.

pub mod backups;
pub mod ovpn_clients;
pub mod wg_peers;

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use routerstats_shared::action::{Action, ActionKind, ActionResult};
use tokio::sync::{mpsc, watch};

use crate::clock::unix_now;
use crate::store::{ActionFilter, ActionRow, NewAction, Store, StoreError};

/// Default time an action may wait for its router.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Longest accepted time to live.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// Defaults of the WireGuard manager routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgDefaults {
    /// Router of `POST /add-peer` when the body names none.
    pub router: Option<String>,
    pub interface: String,
    /// `host` or `host:port` written as the peers' `Endpoint`; default: the address the router
    /// connects to the collector from, with the interface's listen port.
    pub endpoint: Option<String>,
    /// `DNS =` of client configurations.
    pub dns: Option<String>,
}

impl Default for WgDefaults {
    fn default() -> Self {
        WgDefaults {
            router: None,
            interface: "wg0".into(),
            endpoint: None,
            dns: None,
        }
    }
}

/// Settings of the hub.
#[derive(Debug, Clone)]
pub struct ActionSettings {
    /// The collector's data directory (peer configurations live under `wireguard/`).
    pub data_dir: PathBuf,
    pub ttl: Duration,
    pub wg: WgDefaults,
    /// Backup archives kept per router (the oldest files go first).
    pub backup_keep: usize,
}

/// Writes a file with mode 0600 atomically (temp file, fsync, rename), creating its directory.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Why an action could not be requested or read.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("invalid action: {0}")]
    Invalid(String),
    #[error("no router named {0:?}")]
    NoRouter(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A request for an action.
#[derive(Debug, Clone)]
pub struct Request {
    /// Router name or id.
    pub router: String,
    pub kind: ActionKind,
    pub idempotency_key: Option<String>,
    /// API key id (or JWT subject) of the caller.
    pub requested_by: String,
    pub ttl: Option<Duration>,
}

struct Live {
    tx: mpsc::UnboundedSender<Action>,
    conn: u64,
    peer: IpAddr,
}

struct State {
    store: Store,
    live: HashMap<i64, Live>,
    next_conn: u64,
}

struct Inner {
    state: Mutex<State>,
    /// Bumped whenever an action reaches a final state (long-polls wake on it).
    finished: watch::Sender<u64>,
    settings: ActionSettings,
}

/// Handle on the fleet actions (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A connection's registration: its actions arrive on `rx`.
pub struct Connected {
    pub rx: mpsc::UnboundedReceiver<Action>,
    pub conn: u64,
}

fn to_action(row: &ActionRow) -> Option<Action> {
    Some(Action {
        id: row.id,
        deadline: u64::try_from(row.deadline).ok()?,
        kind: row.kind()?,
    })
}

impl Hub {
    pub fn new(store: Store, settings: ActionSettings) -> Hub {
        let state = State {
            store,
            live: HashMap::new(),
            next_conn: 0,
        };
        Hub {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                finished: watch::channel(0).0,
                settings,
            }),
        }
    }

    pub fn settings(&self) -> &ActionSettings {
        &self.inner.settings
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with the state on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Hub, &mut State) -> Result<T, HubError> + Send + 'static,
    ) -> Result<T, HubError> {
        let hub = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut st = hub.lock();
            f(&hub, &mut st)
        })
        .await
        .map_err(|e| HubError::Internal(e.to_string()))?
    }

    /// Validates, stores and (if the router is connected) sends an action. Returns the row and
    /// whether it is new (an idempotency key seen before returns the first row).
    pub async fn request(&self, req: Request) -> Result<(ActionRow, bool), HubError> {
        req.kind.validate().map_err(HubError::Invalid)?;
        if let Some(k) = &req.idempotency_key {
            if k.is_empty()
                || k.chars().count() > MAX_IDEMPOTENCY_KEY
                || k.chars().any(char::is_control)
            {
                return Err(HubError::Invalid(format!(
                    "idempotency key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"
                )));
            }
        }
        let ttl = req.ttl.unwrap_or(self.inner.settings.ttl);
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(HubError::Invalid(format!(
                "ttl must be between 1 s and {} s",
                MAX_TTL.as_secs()
            )));
        }
        self.blocking(move |_, st| {
            let router = st
                .store
                .router(&req.router)?
                .ok_or_else(|| HubError::NoRouter(req.router.clone()))?;
            let now = unix_now();
            let revoked = router.revoked_at.map(|_| {
                format!(
                    "router {} is revoked; actions are not sent to it",
                    router.name
                )
            });
            let (row, fresh) = st.store.insert_action(&NewAction {
                router_id: router.id,
                kind: &req.kind,
                idempotency_key: req.idempotency_key.as_deref(),
                requested_by: &req.requested_by,
                now,
                deadline: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
                refused: revoked.as_deref(),
            })?;
            if fresh && row.state == "queued" {
                if let Some(live) = st.live.get(&router.id) {
                    for r in st.store.take_deliverable(router.id, now, Some(row.id))? {
                        if let Some(a) = to_action(&r) {
                            let _ = live.tx.send(a);
                        }
                    }
                    return Ok((st.store.action(row.id)?.unwrap_or(row), fresh));
                }
            }
            Ok((row, fresh))
        })
        .await
    }

    /// Registers a router's connection and queues its deliverable actions on it.
    pub async fn connect(&self, router_id: i64, peer: IpAddr) -> Result<Connected, HubError> {
        self.blocking(move |_, st| {
            let (tx, rx) = mpsc::unbounded_channel();
            st.next_conn += 1;
            let conn = st.next_conn;
            for r in st.store.take_deliverable(router_id, unix_now(), None)? {
                if let Some(a) = to_action(&r) {
                    let _ = tx.send(a);
                }
            }
            st.live.insert(router_id, Live { tx, conn, peer });
            Ok(Connected { rx, conn })
        })
        .await
    }

    /// Unregisters a connection (unless a newer one of the same router replaced it).
    pub fn disconnect(&self, router_id: i64, conn: u64) {
        let mut st = self.lock();
        if st.live.get(&router_id).is_some_and(|l| l.conn == conn) {
            st.live.remove(&router_id);
        }
    }

    /// Whether the router has a live ingest connection right now.
    pub fn is_live(&self, router_id: i64) -> bool {
        self.lock().live.contains_key(&router_id)
    }

    /// The address a connected router talks to the collector from.
    pub fn peer_ip(&self, router_id: i64) -> Option<IpAddr> {
        self.lock().live.get(&router_id).map(|l| l.peer)
    }

    /// Stores a router's result (durably, before returning) and wakes the waiters.
    pub async fn finish(
        &self,
        router_id: i64,
        result: ActionResult,
    ) -> Result<Option<ActionRow>, HubError> {
        let updated = self
            .blocking(move |hub, st| {
                let settings = &hub.inner.settings;
                // A backup archive goes to its file before the row says done.
                let result =
                    backups::receive(&settings.data_dir, router_id, result, settings.backup_keep);
                // So does an issued OpenVPN client's configuration (with its key).
                let peer = st.live.get(&router_id).map(|l| l.peer);
                let result = ovpn_clients::receive(&settings.data_dir, router_id, result, peer);
                let row = st.store.finish_action(router_id, &result, unix_now())?;
                if let Some(row) = &row {
                    wg_peers::on_finished(
                        &hub.inner.settings.data_dir,
                        row,
                        result.detail.as_ref(),
                    );
                    ovpn_clients::on_finished(&settings.data_dir, row);
                }
                Ok(row)
            })
            .await?;
        if updated.is_some() {
            self.inner.finished.send_modify(|n| *n += 1);
        }
        Ok(updated)
    }

    /// Marks open actions past their deadline `expired`.
    pub async fn expire(&self) -> Result<usize, HubError> {
        let n = self
            .blocking(|_, st| Ok(st.store.expire_actions(unix_now())?))
            .await?;
        if n > 0 {
            self.inner.finished.send_modify(|c| *c += 1);
        }
        Ok(n)
    }

    pub async fn get(&self, id: i64) -> Result<Option<ActionRow>, HubError> {
        self.blocking(move |_, st| Ok(st.store.action(id)?)).await
    }

    pub async fn list(&self, filter: ActionFilter) -> Result<Vec<ActionRow>, HubError> {
        self.blocking(move |_, st| Ok(st.store.list_actions(&filter)?))
            .await
    }

    /// The id of a router by name or id.
    pub async fn router_id(&self, name_or_id: String) -> Result<i64, HubError> {
        self.blocking(move |_, st| {
            Ok(st
                .store
                .router(&name_or_id)?
                .ok_or_else(|| HubError::NoRouter(name_or_id.clone()))?
                .id)
        })
        .await
    }

    /// The name of the fleet's only (unrevoked) router, if it has exactly one.
    pub async fn only_router(&self) -> Result<Option<String>, HubError> {
        self.blocking(|_, st| {
            let live: Vec<_> = st
                .store
                .list_routers()?
                .into_iter()
                .filter(|r| r.revoked_at.is_none())
                .collect();
            Ok((live.len() == 1).then(|| live[0].name.clone()))
        })
        .await
    }

    /// The newest successful `wg_add_peer` of a peer name.
    pub async fn peer_added(&self, name: String) -> Result<Option<ActionRow>, HubError> {
        self.blocking(move |_, st| Ok(st.store.latest_peer_add(&name)?))
            .await
    }

    /// The action once it is final, or as it is after `wait` (None if it does not exist).
    pub async fn wait(&self, id: i64, wait: Duration) -> Result<Option<ActionRow>, HubError> {
        let mut rx = self.inner.finished.subscribe();
        let until = tokio::time::Instant::now() + wait;
        loop {
            rx.borrow_and_update();
            let row = self.get(id).await?;
            match &row {
                Some(r) if !r.is_final() => {}
                _ => return Ok(row),
            }
            // Deadlines pass without any result arriving: look again at least every second.
            let tick = (tokio::time::Instant::now() + Duration::from_secs(1)).min(until);
            if tokio::time::timeout_at(tick, rx.changed()).await.is_err() {
                if tokio::time::Instant::now() >= until {
                    return Ok(row);
                }
                self.expire().await?;
            }
        }
    }
}

/// Expires overdue actions every second until `shutdown` turns true.
pub fn spawn_expirer(hub: Hub, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = crate::ingest::listener::wait_true(&mut shutdown) => return,
                _ = tick.tick() => {
                    if let Err(e) = hub.expire().await {
                        tracing::warn!(error = %e, "expiring actions failed");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{enrolled_router, open_temp};
    use routerstats_shared::action::ActionState;

    fn hub() -> (tempfile::TempDir, Hub) {
        let (dir, mut store) = open_temp();
        enrolled_router(&mut store, "ap1");
        let settings = ActionSettings {
            data_dir: dir.path().to_path_buf(),
            ttl: DEFAULT_TTL,
            wg: WgDefaults::default(),
            backup_keep: 10,
        };
        (dir, Hub::new(store, settings))
    }

    fn req(kind: ActionKind) -> Request {
        Request {
            router: "ap1".into(),
            kind,
            idempotency_key: None,
            requested_by: "k".into(),
            ttl: None,
        }
    }

    #[tokio::test]
    async fn queued_then_delivered_on_connect_then_finished() {
        let (_d, hub) = hub();
        let (row, _) = hub
            .request(req(ActionKind::WgReload {
                interface: "wg0".into(),
            }))
            .await
            .unwrap();
        assert_eq!(row.state, "queued");
        let mut c = hub
            .connect(row.router_id, "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        let a = c.rx.try_recv().unwrap();
        assert_eq!(a.id, row.id);
        // Live: a new action goes straight to the connection.
        let (row2, _) = hub
            .request(req(ActionKind::WgReload {
                interface: "wg1".into(),
            }))
            .await
            .unwrap();
        assert_eq!(row2.state, "sent");
        assert_eq!(c.rx.try_recv().unwrap().id, row2.id);
        let waiter = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.wait(row.id, Duration::from_secs(10)).await })
        };
        hub.finish(
            row.router_id,
            ActionResult::new(row.id, ActionState::Done, "ok", None),
        )
        .await
        .unwrap();
        let done = waiter.await.unwrap().unwrap().unwrap();
        assert_eq!(done.state, "done");
        // A reconnect gets the unanswered one again, not the finished one.
        hub.disconnect(row.router_id, c.conn);
        let mut c2 = hub
            .connect(row.router_id, "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(c2.rx.try_recv().unwrap().id, row2.id);
        assert!(c2.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn bad_requests_are_refused_before_storing() {
        let (_d, hub) = hub();
        let bad = ActionKind::WgDeletePeer {
            interface: "wg0".into(),
            name: "x; reboot".into(),
        };
        assert!(matches!(
            hub.request(req(bad)).await,
            Err(HubError::Invalid(_))
        ));
        let mut r = req(ActionKind::WgReload {
            interface: "wg0".into(),
        });
        r.router = "nope".into();
        assert!(matches!(hub.request(r).await, Err(HubError::NoRouter(_))));
        let mut r = req(ActionKind::WgReload {
            interface: "wg0".into(),
        });
        r.ttl = Some(Duration::ZERO);
        assert!(matches!(hub.request(r).await, Err(HubError::Invalid(_))));
        assert!(hub
            .list(ActionFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty());
    }
}
