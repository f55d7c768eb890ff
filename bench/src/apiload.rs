//! API read load beside another benchmark: a few clients, each on its own thread and keep-alive
//! connection, request the API benchmark's GET route mix ([`routerstats_apibench::routes`]) one
//! request after another, round and round, until the end of the run; latencies and statuses
//! inside the measuring window are kept per route group.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use routerstats_apibench::client::Client;
use routerstats_apibench::routes::group;

/// One route and the API key it is requested with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub route: String,
    pub key: String,
}

/// What the requests of one route group measured inside the window.
#[derive(Debug, Default, Clone)]
pub struct GroupStats {
    /// Request-to-last-byte times (sorted once merged).
    pub latencies: Vec<Duration>,
    /// Responses by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
}

/// What all clients measured inside the window.
#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    pub groups: BTreeMap<&'static str, GroupStats>,
    /// Request-to-last-byte times per route (sorted once merged): which route of a group is slow.
    pub routes: BTreeMap<String, Vec<Duration>>,
    /// Requests answered inside the window.
    pub requests: u64,
    /// Requests that failed below HTTP (connection errors, timeouts), and the first such error.
    pub io_errors: u64,
    pub first_error: Option<String>,
}

impl LoadStats {
    fn merge(&mut self, other: LoadStats) {
        for (g, s) in other.groups {
            let mine = self.groups.entry(g).or_default();
            mine.latencies.extend(s.latencies);
            for (status, n) in s.statuses {
                *mine.statuses.entry(status).or_default() += n;
            }
        }
        for (r, l) in other.routes {
            self.routes.entry(r).or_default().extend(l);
        }
        self.requests += other.requests;
        self.io_errors += other.io_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Responses with `status` over every group.
    pub fn with_status(&self, status: u16) -> u64 {
        self.groups
            .values()
            .filter_map(|g| g.statuses.get(&status))
            .sum()
    }
}

/// The running load (its client threads).
pub struct ApiLoad {
    threads: Vec<JoinHandle<LoadStats>>,
}

/// How the clients read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub clients: usize,
    /// Requests per second per client (None: each sends its next request as soon as the last
    /// one is answered).
    pub per_client_rps: Option<f64>,
}

/// Starts `pace.clients` threads requesting `targets` at `addr` until `stop_at`; client `i`
/// starts at route `i * len / clients`. Requests answered between `measure_from` and `stop_at`
/// count.
pub fn start(
    addr: SocketAddr,
    targets: Arc<Vec<Target>>,
    pace: Pace,
    measure_from: Instant,
    stop_at: Instant,
) -> ApiLoad {
    let clients = pace.clients.max(1);
    let gap = pace
        .per_client_rps
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let threads = (0..clients)
        .map(|i| {
            let targets = targets.clone();
            let first = i * targets.len() / clients;
            std::thread::spawn(move || {
                client_loop(addr, &targets, first, gap, measure_from, stop_at)
            })
        })
        .collect();
    ApiLoad { threads }
}

impl ApiLoad {
    /// Waits for every client (each ends after its request in flight at `stop_at`).
    pub fn join(self) -> LoadStats {
        let mut all = LoadStats::default();
        for t in self.threads {
            match t.join() {
                Ok(s) => all.merge(s),
                Err(_) => {
                    all.io_errors += 1;
                    all.first_error
                        .get_or_insert_with(|| "an API client thread panicked".into());
                }
            }
        }
        for g in all.groups.values_mut() {
            g.latencies.sort();
        }
        for l in all.routes.values_mut() {
            l.sort();
        }
        all
    }
}

fn client_loop(
    addr: SocketAddr,
    targets: &[Target],
    first: usize,
    gap: Option<Duration>,
    measure_from: Instant,
    stop_at: Instant,
) -> LoadStats {
    let mut st = LoadStats::default();
    if targets.is_empty() {
        return st;
    }
    let fail = |st: &mut LoadStats, e: String| {
        st.io_errors += 1;
        st.first_error.get_or_insert(e);
        // Do not spin on a refused connection.
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut client = None;
    let mut i = first;
    let mut next = Instant::now();
    while Instant::now() < stop_at {
        if let Some(gap) = gap {
            // A fixed schedule: a slow answer is not followed by a burst to catch up.
            let now = Instant::now();
            if next > now {
                std::thread::sleep((next - now).min(stop_at.saturating_duration_since(now)));
            }
            next = next.max(now) + gap;
            if Instant::now() >= stop_at {
                break;
            }
        }
        let c = match client.take() {
            Some(c) => c,
            None => match Client::connect(addr) {
                Ok(c) => c,
                Err(e) => {
                    fail(&mut st, format!("connect: {e}"));
                    continue;
                }
            },
        };
        let mut c = c;
        let t = &targets[i % targets.len()];
        i += 1;
        let sent = Instant::now();
        match c.get(&t.route, &t.key) {
            Ok((status, _, _)) => {
                let done = Instant::now();
                if done >= measure_from && done <= stop_at {
                    let g = st.groups.entry(group(&t.route)).or_default();
                    g.latencies.push(done - sent);
                    *g.statuses.entry(status).or_default() += 1;
                    st.routes
                        .entry(t.route.clone())
                        .or_default()
                        .push(done - sent);
                    st.requests += 1;
                }
                client = Some(c);
            }
            Err(e) => fail(&mut st, format!("{}: {e}", t.route)),
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A server answering every request on a connection with 200 (404 for paths with "gone").
    fn tiny_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let status = if line.contains("gone") { 404 } else { 200 };
                        // Headers up to the blank line.
                        let mut h = String::new();
                        while r.read_line(&mut h).unwrap_or(0) > 0 && h != "\r\n" {
                            h.clear();
                        }
                        let _ = write!(w, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn clients_cycle_the_routes_and_count_by_group_and_status() {
        let addr = tiny_server();
        let t = |route: &str| Target {
            route: route.into(),
            key: "k".into(),
        };
        let targets = Arc::new(vec![t("/api/vpn/status"), t("/peer/gone"), t("/metrics")]);
        let now = Instant::now();
        let unpaced = Pace {
            clients: 2,
            per_client_rps: None,
        };
        let stats = start(
            addr,
            targets,
            unpaced,
            now + Duration::from_millis(50),
            now + Duration::from_millis(400),
        )
        .join();
        assert_eq!(stats.io_errors, 0, "{:?}", stats.first_error);
        assert!(stats.requests >= 3, "{stats:?}");
        let n = |g: &str, status: u16| stats.groups[g].statuses.get(&status).copied().unwrap_or(0);
        assert!(n("isp: vpn", 200) > 0 && n("collector", 200) > 0);
        assert!(n("wireguard manager", 404) > 0);
        assert_eq!(n("wireguard manager", 200), 0);
        assert_eq!(stats.with_status(404), n("wireguard manager", 404));
        let counted: u64 = stats
            .groups
            .values()
            .map(|g| g.latencies.len() as u64)
            .sum();
        assert_eq!(counted, stats.requests);
        let by_route: usize = stats.routes.values().map(Vec::len).sum();
        assert_eq!(by_route as u64, stats.requests);
        assert!(stats.routes.contains_key("/peer/gone"));
        assert!(stats
            .routes
            .values()
            .all(|l| l.windows(2).all(|w| w[0] <= w[1])));
    }

    #[test]
    fn an_unreachable_api_is_counted_not_fatal() {
        // A port nobody listens on (bound, then closed).
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let now = Instant::now();
        let targets = Arc::new(vec![Target {
            route: "/health".into(),
            key: "k".into(),
        }]);
        let one = Pace {
            clients: 1,
            per_client_rps: None,
        };
        let stats = start(addr, targets, one, now, now + Duration::from_millis(200)).join();
        assert_eq!(stats.requests, 0);
        assert!(stats.io_errors > 0);
        assert!(stats.first_error.is_some_and(|e| e.starts_with("connect")));
    }

    #[test]
    fn paced_clients_keep_to_their_rate() {
        let addr = tiny_server();
        let targets = Arc::new(vec![Target {
            route: "/health".into(),
            key: "k".into(),
        }]);
        let now = Instant::now();
        let pace = Pace {
            clients: 2,
            per_client_rps: Some(20.0),
        };
        let stats = start(addr, targets, pace, now, now + Duration::from_millis(500)).join();
        // 2 clients x 20/s x 0.5 s = 20 requests at most (one each at the start, then every 50 ms).
        assert!(
            stats.requests >= 4 && stats.requests <= 22,
            "{}",
            stats.requests
        );
    }
}
