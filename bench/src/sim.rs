//! Simulated agents: many enrolled identities in one process, each with its own mutual-TLS
//! connection to the collector, speaking the real protocol (`Hello` -> `HelloAck`, `Report`s ->
//! `Ack`s). Enrollment goes through the real path (the agent library's `enroll` with a
//! multi-use token), so every simulated router has its own key and certificate.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use routerstats_agent::uplink::tls::mtls_client_config;
use routerstats_agent::uplink::{enroll, load_identity, EnrollOptions};
use routerstats_shared::io::{read_message, write_message};
use routerstats_shared::message::Hello;
use routerstats_shared::token::EnrollToken;
use routerstats_shared::{Message, Report, MAX_FRAME_LEN};
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// Why a simulated agent failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("enroll {name}: {reason}")]
    Enroll { name: String, reason: String },
    #[error("connect: {0}")]
    Connect(String),
    #[error("TLS handshake: {0}")]
    Handshake(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("collector said {0}")]
    Refused(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

/// One enrolled simulated router.
#[derive(Clone)]
pub struct SimAgent {
    pub name: String,
    pub tls: Arc<ClientConfig>,
}

/// Enrolls `n` routers named `<prefix>-00000`.. with one multi-use `token`, `concurrency` at a
/// time, each with its identity directory under `dir`.
pub async fn enroll_fleet(
    collector: SocketAddr,
    token: &str,
    dir: &Path,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<SimAgent>, SimError> {
    let token: EnrollToken = token.parse().map_err(|e| SimError::Enroll {
        name: "-".into(),
        reason: format!("bad token: {e}"),
    })?;
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{prefix}-{i:05}");
        let opts = EnrollOptions {
            collector: collector.to_string(),
            token: token.clone(),
            name: Some(name.clone()),
            hostname: name.clone(),
            config_dir: dir.join(&name),
            timeout: Duration::from_secs(120),
            force: false,
        };
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let fail = |reason: String| SimError::Enroll {
                name: name.clone(),
                reason,
            };
            // enroll() creates the identity directory itself (mode 0700).
            let dir = opts.config_dir.clone();
            enroll(opts).await.map_err(|e| fail(e.to_string()))?;
            let id = load_identity(&dir).map_err(|e| fail(e.to_string()))?;
            let tls = mtls_client_config(&id.ca_pem, &id.cert_pem, &id.key_pem)
                .map_err(|e| fail(e.to_string()))?;
            Ok(SimAgent { name, tls })
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        let agent = t.await.map_err(|e| SimError::Enroll {
            name: "-".into(),
            reason: e.to_string(),
        })??;
        out.push(agent);
    }
    Ok(out)
}

/// A connected simulated agent, after `Hello` -> `HelloAck`.
pub type Conn = TlsStream<TcpStream>;

/// A fresh random-enough boot id (time plus a counter; uniqueness is all that matters).
pub fn boot_id(salt: u64) -> [u8; 16] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0) as u64;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&nanos.to_le_bytes());
    b[8..].copy_from_slice(&salt.to_le_bytes());
    b
}

/// Opens a mutual-TLS connection as `agent` and says `Hello`; returns after `HelloAck`. A
/// connection the collector closes before or during the handshake (its per-address cap on
/// unauthenticated connections, when many simulated routers connect at once from one address)
/// is retried a few times after a short pause, as a real agent's backoff would.
pub async fn connect(addr: SocketAddr, agent: &SimAgent, boot: [u8; 16]) -> Result<Conn, SimError> {
    let mut tries = 0u32;
    loop {
        match connect_once(addr, agent, boot).await {
            Err(SimError::Handshake(_) | SimError::Connect(_)) if tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100 + 50 * u64::from(tries))).await;
            }
            other => return other,
        }
    }
}

async fn connect_once(
    addr: SocketAddr,
    agent: &SimAgent,
    boot: [u8; 16],
) -> Result<Conn, SimError> {
    let io = timeout(Duration::from_secs(60), async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| SimError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
        let mut tls = TlsConnector::from(agent.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| SimError::Handshake(e.to_string()))?;
        let hello = Hello {
            agent_version: "bench".into(),
            hostname: agent.name.clone(),
            boot_id: boot,
            spooled: 0,
        };
        write_message(&mut tls, &Message::Hello(hello))
            .await
            .map_err(|e| SimError::Protocol(e.to_string()))?;
        match read_message(&mut tls, MAX_FRAME_LEN).await {
            Ok(Message::HelloAck(_)) => Ok(tls),
            Ok(Message::Error(e)) => Err(SimError::Refused(format!("{:?}: {}", e.code, e.message))),
            Ok(other) => Err(SimError::Protocol(format!(
                "expected HelloAck, got {:?}",
                other.kind()
            ))),
            Err(e) => Err(SimError::Protocol(e.to_string())),
        }
    });
    io.await
        .map_err(|_| SimError::Timeout("connect and Hello"))?
}

/// Numbers and encodes reports from a template: `seq` from 1, the current time, and counters
/// that grow between reports so the collector computes real deltas.
pub struct ReportMaker {
    report: Report,
}

impl ReportMaker {
    pub fn new(mut template: Report, boot: [u8; 16]) -> ReportMaker {
        template.boot_id = boot;
        template.seq = 0;
        template.timestamp_ms = 0;
        ReportMaker { report: template }
    }

    /// The next report's sequence number and frame.
    pub fn next_frame(&mut self) -> (u64, Vec<u8>) {
        let r = &mut self.report;
        r.seq += 1;
        // The current time, but always after the previous report's: reports sent back to back
        // (a window of several unacked) would otherwise share a millisecond, and the collector
        // keeps one sample per router, time and interface or station (the samples of the others
        // would be dropped as duplicates, and the benchmark would store less than it claims).
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        r.timestamp_ms = now.max(r.timestamp_ms.saturating_add(1));
        for s in &mut r.stations {
            s.stats.rx_bytes = s.stats.rx_bytes.map(|v| v + 15_000);
            s.stats.tx_bytes = s.stats.tx_bytes.map(|v| v + 90_000);
            s.connected_s = s.connected_s.map(|v| v + 1);
        }
        for i in &mut r.interfaces {
            i.rx_bytes += 120_000;
            i.tx_bytes += 30_000;
        }
        if let Some(sys) = &mut r.system {
            sys.uptime_s += 1;
        }
        let frame = Message::Report(Box::new(r.clone()))
            .to_frame()
            .unwrap_or_default();
        (r.seq, frame)
    }
}

/// What one simulated agent saw while reporting.
#[derive(Debug, Default, Clone)]
pub struct DriveStats {
    /// Reports acked before the measuring window (the warm-up).
    pub acked_before_window: u64,
    /// Reports acked inside the measuring window.
    pub acked_in_window: u64,
    /// Reports acked in all.
    pub acked: u64,
    /// Send-to-ack times of reports acked inside the window.
    pub latencies: Vec<Duration>,
    /// Why the connection ended before `stop_at`, if it did.
    pub error: Option<SimError>,
}

/// Sends reports on `conn` until `stop_at`: every `pace` (None: as fast as acks allow), with at
/// most `window` reports unacked. Acks and latencies between `measure_from` and `stop_at`
/// count for the window figures.
pub async fn drive(
    conn: Conn,
    mut maker: ReportMaker,
    window: usize,
    pace: Option<Duration>,
    measure_from: Instant,
    stop_at: Instant,
) -> DriveStats {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let (tx, mut rx) = mpsc::channel::<Result<Message, String>>(64);
    let reader = tokio::spawn(async move {
        loop {
            let m = read_message(&mut rd, MAX_FRAME_LEN)
                .await
                .map_err(|e| e.to_string());
            let last = m.is_err();
            if tx.send(m).await.is_err() || last {
                return;
            }
        }
    });
    let mut st = DriveStats::default();
    let mut inflight: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut next_send = Instant::now();
    let window = window.max(1);
    'outer: loop {
        // Send what the window and the pace allow.
        while inflight.len() < window && Instant::now() >= next_send && Instant::now() < stop_at {
            let (seq, frame) = maker.next_frame();
            let sent = timeout(Duration::from_secs(30), async {
                wr.write_all(&frame).await?;
                wr.flush().await
            })
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                st.error = Some(SimError::Protocol("write failed".into()));
                break 'outer;
            }
            inflight.push_back((seq, Instant::now()));
            if let Some(p) = pace {
                next_send += p;
            }
        }
        if Instant::now() >= stop_at && inflight.is_empty() {
            break;
        }
        let wake = if inflight.len() < window && pace.is_some() {
            next_send.min(stop_at)
        } else {
            stop_at + Duration::from_secs(30)
        };
        tokio::select! {
            m = rx.recv() => match m {
                Some(Ok(Message::Ack(ack))) => {
                    let now = Instant::now();
                    while let Some((seq, sent_at)) = inflight.pop_front() {
                        if seq == ack.seq {
                            st.acked += 1;
                            if now < measure_from {
                                st.acked_before_window += 1;
                            } else if now <= stop_at {
                                st.acked_in_window += 1;
                                st.latencies.push(now - sent_at);
                            }
                            break;
                        }
                    }
                }
                Some(Ok(Message::Error(e))) => {
                    st.error = Some(SimError::Refused(format!("{:?}: {}", e.code, e.message)));
                    break;
                }
                Some(Ok(other)) => {
                    st.error = Some(SimError::Protocol(format!("unexpected {:?}", other.kind())));
                    break;
                }
                Some(Err(e)) => {
                    if Instant::now() < stop_at {
                        st.error = Some(SimError::Protocol(e));
                    }
                    break;
                }
                None => break,
            },
            _ = sleep_until(wake) => {
                if Instant::now() >= stop_at + Duration::from_secs(29) {
                    st.error = Some(SimError::Timeout("acks after the end of the run"));
                    break;
                }
            }
        }
    }
    reader.abort();
    let _ = wr.shutdown().await;
    st
}

/// Holds a TCP connection to `addr` that sends the first bytes of a TLS record and then
/// nothing, reopening it whenever the collector closes it, until `stop_at`. Counts in `closed`
/// how many times the collector closed it. It comes from 127.0.0.2 (loopback too), an address
/// other than the simulated routers' 127.0.0.1, as an attacker is not behind the fleet's NAT.
pub async fn stalled_handshake(addr: SocketAddr, stop_at: Instant, closed: Arc<AtomicU64>) {
    use tokio::io::AsyncReadExt;
    let open = || async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(SocketAddr::from(([127, 0, 0, 2], 0)))?;
        sock.connect(addr).await
    };
    while Instant::now() < stop_at {
        let Ok(mut tcp) = open().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // A handshake record header announcing 512 bytes that never come.
        let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await;
        let mut buf = [0u8; 64];
        match timeout(
            stop_at.saturating_duration_since(Instant::now()),
            tcp.read(&mut buf),
        )
        .await
        {
            Ok(_) => {
                closed.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => break,
        }
    }
}

/// Sum of acks, all latencies sorted, and the errors of many [`DriveStats`].
pub fn merge(stats: &[DriveStats]) -> (u64, Vec<Duration>, Vec<SimError>) {
    let acked = stats.iter().map(|s| s.acked_in_window).sum();
    let mut lat: Vec<Duration> = stats
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    lat.sort();
    let errors = stats.iter().filter_map(|s| s.error.clone()).collect();
    (acked, lat, errors)
}

/// The template as simulated router `i` sends it: its stations' (and their leases') MACs made
/// its own, as each real router has its own clients, and its lease host names suffixed with
/// `-i`. A MAC keeps its vendor prefix (bytes 0-2); bytes 3-4 become the router's index and
/// byte 5 the template MAC's byte 4, which the generator numbers its stations by
/// (`gen::mac_of`), so the MACs of all routers are distinct (for up to 65,536 routers of up to
/// 256 stations). Without this every router would report the same 20 MACs, and a per-user
/// route would answer for 1,000 simultaneous sessions of one client. The plain-SQLite baseline
/// (`crate::rawsql`) inserts the same MACs.
pub fn own_macs(template: &Report, i: usize) -> Report {
    let mut r = template.clone();
    let [hi, lo] = u16::try_from(i).unwrap_or(u16::MAX).to_be_bytes();
    let own = |m: &mut routerstats_shared::model::MacAddr| {
        m.0[5] = m.0[4];
        m.0[3] = hi;
        m.0[4] = lo;
    };
    for s in &mut r.stations {
        own(&mut s.mac);
    }
    for l in &mut r.leases {
        if let Some(m) = &mut l.mac {
            own(m);
        }
        if let Some(h) = &mut l.hostname {
            h.push_str(&format!("-{i}"));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{RouterText, Shape};

    fn timestamp(frame: &[u8]) -> u64 {
        match Message::from_frame(frame, MAX_FRAME_LEN).unwrap().0 {
            Message::Report(r) => r.timestamp_ms,
            other => panic!("not a report: {other:?}"),
        }
    }

    #[test]
    fn reports_sent_back_to_back_have_distinct_times() {
        let template = RouterText::generate(Shape::INGEST, 1)
            .parse_report()
            .unwrap();
        let mut maker = ReportMaker::new(template, [7; 16]);
        let times: Vec<u64> = (0..50).map(|_| timestamp(&maker.next_frame().1)).collect();
        assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        // Near the current time: at most one millisecond ahead per report.
        assert!(
            times[0] + 60_000 > now && times[49] <= now + 50,
            "{times:?} vs {now}"
        );
    }

    #[test]
    fn own_macs_differ_between_routers_and_within_one() {
        let template = RouterText::generate(Shape::INGEST, 1)
            .parse_report()
            .unwrap();
        let mut all = std::collections::HashSet::new();
        for i in 0..300 {
            for s in own_macs(&template, i).stations {
                assert!(all.insert(s.mac), "router {i} repeats {:?}", s.mac);
            }
        }
        assert_eq!(all.len(), 300 * template.stations.len());
    }
}
