//! Closing the open connections of revoked routers.
//!
//! `router revoke` runs in another process and only writes the database, so a poller thread
//! (own [`Store`]) reads `revoked_router_ids()` every ~250 ms and signals every open connection
//! of those routers through [`OpenConns`]: one `watch` channel per router with open connections,
//! whose value turns `true` on revocation. The poll is stateless, so a connection that registers
//! just after a poll is still caught by the next one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;

/// Routers with open ingest connections, each with a revocation signal, and the address each
/// connects from (the NAS address of the ISP routes, `api::isp`).
#[derive(Clone, Default)]
pub struct OpenConns {
    inner: Arc<Mutex<HashMap<i64, watch::Sender<bool>>>>,
    addrs: Arc<Mutex<HashMap<i64, std::net::IpAddr>>>,
}

/// Held by a connection while it serves a router; unregisters on drop.
pub struct ConnGuard {
    conns: OpenConns,
    router_id: i64,
    rx: watch::Receiver<bool>,
}

impl ConnGuard {
    /// Resolves once the router is revoked.
    pub async fn revoked(&mut self) {
        loop {
            if *self.rx.borrow_and_update() {
                return;
            }
            if self.rx.changed().await.is_err() {
                // The sender lives in the map while this guard exists; never reached in practice.
                std::future::pending::<()>().await;
            }
        }
    }

    #[cfg(test)]
    pub fn is_revoked(&self) -> bool {
        *self.rx.borrow()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut map = self.conns.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Our own receiver still counts: remove the entry when we are the last one.
        if map
            .get(&self.router_id)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            map.remove(&self.router_id);
            self.conns
                .addrs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.router_id);
        }
    }
}

impl OpenConns {
    /// Registers a connection of `router_id`.
    pub fn register(&self, router_id: i64) -> ConnGuard {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rx = map
            .entry(router_id)
            .or_insert_with(|| watch::channel(false).0)
            .subscribe();
        ConnGuard {
            conns: self.clone(),
            router_id,
            rx,
        }
    }

    /// Notes the address a router's (newest) connection comes from.
    pub fn note_addr(&self, router_id: i64, addr: std::net::IpAddr) {
        self.addrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(router_id, addr);
    }

    /// The address a connected router's connection comes from; None while it has none.
    pub fn addr_of(&self, router_id: i64) -> Option<std::net::IpAddr> {
        self.addrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&router_id)
            .copied()
    }

    /// Signals the connections of every listed router; returns how many routers had some.
    pub fn revoke(&self, router_ids: &[i64]) -> usize {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut hit = 0;
        for id in router_ids {
            if let Some(tx) = map.get(id) {
                if !*tx.borrow() {
                    tracing::info!(
                        router_id = id,
                        connections = tx.receiver_count(),
                        "closing the connections of a revoked router"
                    );
                    tx.send_replace(true);
                }
                hit += 1;
            }
        }
        hit
    }

    /// Number of routers with at least one open connection.
    pub fn routers(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Handle on the poller thread; stops it on drop.
pub struct Poller {
    stop: Arc<AtomicBool>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Starts the thread polling `store` for revoked routers every `interval`.
pub fn spawn_poller(store: Store, conns: OpenConns, interval: Duration) -> std::io::Result<Poller> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::Builder::new().name("revocation-poll".into()).spawn(move || {
        let mut failing = false;
        while !s.load(Ordering::Acquire) {
            if conns.routers() > 0 {
                match store.revoked_router_ids() {
                    Ok(ids) => {
                        failing = false;
                        conns.revoke(&ids);
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot read revoked routers; will keep trying");
                    }
                    Err(_) => {}
                }
            }
            std::thread::sleep(interval);
        }
    })?;
    Ok(Poller { stop })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoke_signals_every_connection_of_that_router_only() {
        let conns = OpenConns::default();
        let mut a1 = conns.register(1);
        let mut a2 = conns.register(1);
        let b = conns.register(2);
        assert_eq!(conns.routers(), 2);
        assert_eq!(conns.revoke(&[1, 99]), 1);
        tokio::time::timeout(Duration::from_secs(1), a1.revoked())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), a2.revoked())
            .await
            .unwrap();
        assert!(!b.is_revoked());
        // A connection registering after the signal sees it at once.
        let late = conns.register(1);
        assert!(late.is_revoked());
    }

    #[test]
    fn entries_go_away_with_the_last_connection() {
        let conns = OpenConns::default();
        let a = conns.register(7);
        let b = conns.register(7);
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        conns.note_addr(7, ip);
        assert_eq!(conns.addr_of(7), Some(ip));
        drop(a);
        assert_eq!(conns.routers(), 1);
        assert_eq!(conns.addr_of(7), Some(ip), "one connection is still open");
        drop(b);
        assert_eq!(conns.routers(), 0);
        assert_eq!(conns.addr_of(7), None);
        assert_eq!(conns.revoke(&[7]), 0);
    }
}
