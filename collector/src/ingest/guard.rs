//! Limits on what an ingest peer may do before it has authenticated.
//!
//! - [`PreAuthPool`]: every accepted connection holds a slot here from accept until its first
//!   frame (`Hello` from a router with a certificate, or an enrollment, which is all a connection
//!   without one may do). The pool is small and separate from the routers' connection cap, so
//!   unauthenticated peers cannot take the slots of enrolled routers. While the pool is at least
//!   half full, an address (an IPv4 address, or an IPv6 /64) holds at most `per_address` slots
//!   (below that, many routers behind one NAT may connect at once); when the pool is full, a
//!   newcomer takes the oldest slot of the address holding the most, if that address holds more
//!   than the newcomer's (the evicted connection is told through its [`PreAuthSlot::evicted`]),
//!   so a flood from a few addresses cannot keep a router out.
//! - [`EnrollLimiter`]: failed enrollments per address are counted in a token bucket; an address
//!   over its budget is refused without touching the database, and the log gets one line per
//!   address and period instead of one per failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// An address as the limits count it: IPv4 as is, IPv6 by its /64 (one subscriber's prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey(u128);

impl AddrKey {
    pub fn of(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(u128::from(u32::from(v4))),
                None => AddrKey((u128::from(v6) >> 64 << 64) | (1 << 32)),
            },
        }
    }
}

#[derive(Default)]
struct PoolState {
    next_id: u64,
    /// Open slots by age (id), with the handle that tells each it was evicted.
    open: BTreeMap<u64, Arc<Notify>>,
    by_addr: HashMap<AddrKey, BTreeSet<u64>>,
    evicted: u64,
}

/// The pool of not-yet-authenticated ingest connections.
pub struct PreAuthPool {
    cap: usize,
    per_address: usize,
    state: Mutex<PoolState>,
}

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already holds `per_address` unauthenticated connections, and the pool is at
    /// least half full.
    PerAddress,
    /// The pool is full and its address holds as many slots as any other.
    Full,
}

/// One connection's place in the pool; freed on drop.
pub struct PreAuthSlot {
    pool: Arc<PreAuthPool>,
    id: u64,
    addr: AddrKey,
    evict: Arc<Notify>,
}

impl PreAuthPool {
    pub fn new(cap: usize, per_address: usize) -> Arc<PreAuthPool> {
        Arc::new(PreAuthPool {
            cap: cap.max(1),
            per_address: per_address.max(1),
            state: Mutex::new(PoolState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unauthenticated connections holding a slot right now.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// Connections evicted so far to make room for another address.
    #[cfg(test)]
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// A slot for a connection from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PreAuthSlot, Refusal> {
        let addr = AddrKey::of(ip);
        let mut st = self.lock();
        let mine = st.by_addr.get(&addr).map_or(0, |s| s.len());
        if mine >= self.per_address && st.open.len() * 2 >= self.cap {
            return Err(Refusal::PerAddress);
        }
        if st.open.len() >= self.cap {
            // Take the oldest slot of the address holding the most, if it holds more than us.
            let victim = st
                .by_addr
                .iter()
                .max_by_key(|(_, ids)| ids.len())
                .filter(|(_, ids)| ids.len() > mine + 1)
                .and_then(|(a, ids)| Some((*a, *ids.first()?)));
            let Some((victim_addr, victim)) = victim else {
                return Err(Refusal::Full);
            };
            // Forget it at once (it closes as soon as it is told); its drop finds nothing.
            if let Some(ids) = st.by_addr.get_mut(&victim_addr) {
                ids.remove(&victim);
            }
            if let Some(n) = st.open.remove(&victim) {
                n.notify_one();
                st.evicted += 1;
            }
        }
        st.next_id += 1;
        let id = st.next_id;
        let evict = Arc::new(Notify::new());
        st.open.insert(id, evict.clone());
        st.by_addr.entry(addr).or_default().insert(id);
        Ok(PreAuthSlot {
            pool: self.clone(),
            id,
            addr,
            evict,
        })
    }
}

impl PreAuthSlot {
    /// Resolves when this connection was evicted to make room for another address.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        let mut st = self.pool.lock();
        st.open.remove(&self.id);
        if let Some(ids) = st.by_addr.get_mut(&self.addr) {
            ids.remove(&self.id);
            if ids.is_empty() {
                st.by_addr.remove(&self.addr);
            }
        }
    }
}

/// Limits of failed enrollments per address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnrollLimits {
    /// Failures an address may have in a burst.
    pub burst: f64,
    /// Failures per second an address earns back.
    pub per_second: f64,
    /// How often a summary of refusals and failures is logged.
    pub summary_every: Duration,
}

impl Default for EnrollLimits {
    /// 10 failures at once, then one per 6 s (10 a minute); a summary line per minute.
    fn default() -> Self {
        EnrollLimits {
            burst: 10.0,
            per_second: 1.0 / 6.0,
            summary_every: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    failed: u64,
    refused: u64,
}

struct EnrollState {
    /// Failure budget per address: (tokens, last refill).
    buckets: HashMap<AddrKey, (f64, Instant)>,
    /// Per address since the last summary.
    tally: HashMap<IpAddr, Tally>,
    last_summary: Instant,
    last_prune: Instant,
}

/// Counts failed enrollments per address and decides whether the next attempt is allowed.
pub struct EnrollLimiter {
    limits: EnrollLimits,
    state: Mutex<EnrollState>,
}

/// Buckets kept at most (full ones are dropped first).
const MAX_TRACKED: usize = 100_000;

impl EnrollLimiter {
    pub fn new(limits: EnrollLimits) -> EnrollLimiter {
        let now = Instant::now();
        EnrollLimiter {
            limits,
            state: Mutex::new(EnrollState {
                buckets: HashMap::new(),
                tally: HashMap::new(),
                last_summary: now,
                last_prune: now,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EnrollState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tokens(&self, st: &mut EnrollState, key: AddrKey, now: Instant) -> f64 {
        let l = self.limits;
        let (tokens, last) = st.buckets.get(&key).copied().unwrap_or((l.burst, now));
        let dt = now.saturating_duration_since(last).as_secs_f64();
        (tokens + dt * l.per_second).min(l.burst)
    }

    /// Whether `ip` may try an enrollment now; Err holds the seconds until it may.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut st = self.lock();
        let tokens = self.tokens(&mut st, AddrKey::of(ip), now);
        if tokens >= 1.0 {
            return Ok(());
        }
        st.tally.entry(ip).or_default().refused += 1;
        let wait = if self.limits.per_second > 0.0 {
            ((1.0 - tokens) / self.limits.per_second)
                .ceil()
                .clamp(1.0, 86_400.0)
        } else {
            86_400.0
        };
        Err(wait as u64)
    }

    /// Records a failed enrollment from `ip`. Returns true when it is the address's first since
    /// the last summary (log it in full; the others go into the summary).
    pub fn failed(&self, ip: IpAddr, now: Instant) -> bool {
        let mut st = self.lock();
        let key = AddrKey::of(ip);
        let tokens = self.tokens(&mut st, key, now);
        if st.buckets.len() >= MAX_TRACKED
            && now.saturating_duration_since(st.last_prune) >= Duration::from_secs(1)
        {
            st.last_prune = now;
            let l = self.limits;
            st.buckets.retain(|_, (t, last)| {
                *t + now.saturating_duration_since(*last).as_secs_f64() * l.per_second < l.burst
            });
        }
        if st.buckets.len() < MAX_TRACKED || st.buckets.contains_key(&key) {
            st.buckets.insert(key, ((tokens - 1.0).max(0.0), now));
        }
        let t = st.tally.entry(ip).or_default();
        t.failed += 1;
        t.failed == 1 && t.refused == 0
    }

    /// The summary due now, if any: per address (most first, at most 10 listed) the failures and
    /// refusals since the last one, beyond the first failure of each address that was logged.
    pub fn take_summary(&self, now: Instant) -> Option<String> {
        let mut st = self.lock();
        if now.saturating_duration_since(st.last_summary) < self.limits.summary_every {
            return None;
        }
        st.last_summary = now;
        let mut rows: Vec<(IpAddr, Tally)> = st
            .tally
            .drain()
            .filter(|(_, t)| t.failed > 1 || t.refused > 0)
            .collect();
        if rows.is_empty() {
            return None;
        }
        rows.sort_by_key(|(ip, t)| (std::cmp::Reverse(t.failed + t.refused), *ip));
        let (failed, refused) = rows
            .iter()
            .fold((0, 0), |(f, r), (_, t)| (f + t.failed, r + t.refused));
        let listed: Vec<String> = rows
            .iter()
            .take(10)
            .map(|(ip, t)| format!("{ip}: {} failed, {} refused", t.failed, t.refused))
            .collect();
        Some(format!(
            "{failed} failed and {refused} rate-limited enrollments from {} addresses in the last {} s ({}{})",
            rows.len(),
            self.limits.summary_every.as_secs(),
            listed.join("; "),
            if rows.len() > 10 { "; ..." } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_cap_and_release() {
        let pool = PreAuthPool::new(4, 2);
        let a = pool.admit(ip("192.0.2.1")).unwrap();
        let _b = pool.admit(ip("192.0.2.1")).unwrap();
        // Half full: the address is at its cap.
        assert_eq!(pool.admit(ip("192.0.2.1")).err(), Some(Refusal::PerAddress));
        let _c = pool.admit(ip("192.0.2.2")).unwrap();
        drop(a);
        let _a = pool.admit(ip("192.0.2.1")).unwrap();
        // One IPv6 /64 counts as one address.
        let pool = PreAuthPool::new(4, 2);
        let _c = pool.admit(ip("2001:db8::1")).unwrap();
        let _d = pool.admit(ip("2001:db8::ffff:2")).unwrap();
        assert_eq!(
            pool.admit(ip("2001:db8::3")).err(),
            Some(Refusal::PerAddress)
        );
        assert!(pool.admit(ip("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn per_address_cap_applies_only_under_pressure() {
        // Many routers behind one NAT may connect at once while the pool is less than half full.
        let pool = PreAuthPool::new(100, 2);
        let held: Vec<_> = (0..49)
            .map(|_| pool.admit(ip("192.0.2.1")).unwrap())
            .collect();
        assert_eq!(held.len(), 49);
        let _fiftieth = pool.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(pool.admit(ip("192.0.2.1")).err(), Some(Refusal::PerAddress));
        assert!(pool.admit(ip("192.0.2.2")).is_ok());
    }

    #[tokio::test]
    async fn full_pool_evicts_the_oldest_of_the_biggest_address() {
        let pool = PreAuthPool::new(4, 10);
        let flood: Vec<_> = (0..4)
            .map(|_| pool.admit(ip("198.51.100.7")).unwrap())
            .collect();
        assert_eq!(pool.open(), 4);
        // A newcomer from another address takes the flood's oldest slot.
        let router = pool.admit(ip("192.0.2.9")).unwrap();
        assert_eq!(pool.open(), 4);
        assert_eq!(pool.evicted(), 1);
        tokio::time::timeout(Duration::from_secs(1), flood[0].evicted())
            .await
            .expect("oldest flood slot told to go");
        // The flood cannot take it back: it holds more than anyone else.
        assert_eq!(pool.admit(ip("198.51.100.7")).err(), Some(Refusal::Full));
        // Dropping an evicted slot does not free a second place.
        drop(flood);
        assert_eq!(pool.open(), 1);
        drop(router);
        assert_eq!(pool.open(), 0);
    }

    #[test]
    fn equal_addresses_do_not_evict_each_other() {
        let pool = PreAuthPool::new(2, 10);
        let _a = pool.admit(ip("192.0.2.1")).unwrap();
        let _b = pool.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(pool.admit(ip("192.0.2.3")).err(), Some(Refusal::Full));
        assert_eq!(pool.evicted(), 0);
    }

    #[test]
    fn failed_enrollments_are_budgeted_and_summarised() {
        let l = EnrollLimiter::new(EnrollLimits {
            burst: 3.0,
            per_second: 0.5,
            summary_every: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        let bad = ip("203.0.113.5");
        let mut logged = 0;
        for _ in 0..3 {
            assert_eq!(l.check(bad, t0), Ok(()));
            logged += usize::from(l.failed(bad, t0));
        }
        assert_eq!(logged, 1, "only the first failure is logged in full");
        assert_eq!(l.check(bad, t0), Err(2));
        assert_eq!(l.check(bad, t0), Err(2));
        // Others are not affected; the budget refills.
        assert_eq!(l.check(ip("203.0.113.6"), t0), Ok(()));
        assert_eq!(l.check(bad, t0 + Duration::from_secs(2)), Ok(()));
        assert!(l.take_summary(t0 + Duration::from_secs(30)).is_none());
        let s = l.take_summary(t0 + Duration::from_secs(61)).unwrap();
        assert!(s.contains("3 failed and 2 rate-limited"), "{s}");
        assert!(s.contains("203.0.113.5: 3 failed, 2 refused"), "{s}");
        assert!(l.take_summary(t0 + Duration::from_secs(200)).is_none());
    }
}
