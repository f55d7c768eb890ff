//! `bench-attack`: the collector's descriptors and memory under unauthenticated floods, while
//! enrolled agents keep reporting (their acked rate is printed for every phase).
//!
//! Starts the real collector binary (`--collector-bin`, so two builds can be compared) with its
//! open-file limit set to `--collector-nofile` (soft and hard, after start), enrolls
//! `--agents N` simulated routers (real protocol, real mutual TLS) and has each report every
//! `--interval-ms` (reconnecting after 1 s when a connection fails, as an agent does). Then,
//! after a baseline phase, one phase per attack, each `--secs S` long, from `--attack-addrs K`
//! loopback source addresses (127.0.1.1 ..) so per-address limits are not the only defence
//! measured:
//!
//! - `api-idle`: `--api-conns` TCP connections to the API port that send nothing, each reopened
//!   as soon as the collector closes it (the "opened" column counts every opening);
//! - `big-header`: `--big-conns` TLS connections without a client certificate, each sending an
//!   8-byte frame header announcing a 1 MiB payload and then nothing;
//! - `preauth`: `--preauth-conns` TLS connections without a certificate that send nothing,
//!   reopened when closed;
//! - `enroll`: `--enroll-workers` tasks sending enrollment requests with wrong tokens as fast
//!   as answered.
//!
//! Every 500 ms it samples the collector's open descriptors and VmRSS; every second a `/health`
//! request (3 s timeout) and a fresh router connection (connect + handshake + Hello, 5 s
//! timeout) from 127.0.0.1 probe whether the collector still serves. Per phase it prints the
//! agents' acked reports per second (and against the baseline), connection failures, the
//! probes' success, peak descriptors and memory, memory 5 s after the attack stopped, and the
//! bytes the collector logged.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use routerstats_bench::cproc::{collector_bin, CollectorProc};
use routerstats_bench::gen::{RouterText, Shape};
use routerstats_bench::sim::{self, ReportMaker, SimAgent};
use routerstats_bench::sys;
use routerstats_bench::{flag, flags};
use routerstats_shared::io::{read_message, write_message};
use routerstats_shared::message::EnrollRequest;
use routerstats_shared::{FrameHeader, Message, MessageKind, MAX_FRAME_LEN};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const USAGE: &str = "bench-attack: collector descriptors and memory under unauthenticated floods while agents report
(see BENCHMARKS.md and SECURITY.md).

Usage: bench-attack [--agents N] [--interval-ms MS] [--secs S] [--attack-addrs K]
                    [--api-conns N] [--big-conns N] [--preauth-conns N] [--enroll-workers N]
                    [--collector-nofile N] [--max-connections N] [--only a,b] [--collector-bin PATH]
  --agents N            reporting routers (default 100)
  --interval-ms MS      their report interval (default 1000)
  --secs S              length of each phase (default 20)
  --attack-addrs K      loopback source addresses of the attacks (default 64)
  --api-conns N         idle API connections (default 10000)
  --big-conns N         1-MiB-header connections (default 1000)
  --preauth-conns N     bare TLS connections (default 2048)
  --enroll-workers N    concurrent bad enrollments (default 32)
  --collector-nofile N  the collector's open-file limit (default 8192)
  --max-connections N   the collector's max_connections (default 1024)
  --only LIST           phases to run: api-idle,big-header,preauth,enroll (default all)
  --collector-bin PATH  collector binary (default: routerstats-collector next to this one)
  -h, --help            print this help";

struct Opts {
    agents: usize,
    interval: Duration,
    secs: u64,
    addrs: u8,
    api_conns: usize,
    big_conns: usize,
    preauth_conns: usize,
    enroll_workers: usize,
    nofile: u64,
    max_connections: usize,
    only: Vec<String>,
    collector: Option<PathBuf>,
    /// The collector's CA hash (hex), once known.
    ca_hash: String,
}

/// What the reporting agents and the probes count.
#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    agent_failures: AtomicU64,
    health_ok: AtomicU64,
    health_fail: AtomicU64,
    health_max_ms: AtomicU64,
    connect_ok: AtomicU64,
    connect_fail: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 7] {
        [
            self.acked.load(Ordering::Relaxed),
            self.agent_failures.load(Ordering::Relaxed),
            self.health_ok.load(Ordering::Relaxed),
            self.health_fail.load(Ordering::Relaxed),
            self.health_max_ms.swap(0, Ordering::Relaxed),
            self.connect_ok.load(Ordering::Relaxed),
            self.connect_fail.load(Ordering::Relaxed),
        ]
    }
}

fn attack_addr(i: usize, k: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        1,
        1 + (i % usize::from(k.max(1))) as u8,
    ))
}

async fn tcp_from(src: IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(src, 0)).ok()?;
    timeout(Duration::from_secs(3), sock.connect(to))
        .await
        .ok()?
        .ok()
}

async fn tls_from(
    src: IpAddr,
    to: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = tcp_from(src, to).await?;
    let name = ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
    timeout(
        Duration::from_secs(10),
        TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .ok()?
    .ok()
}

/// Reports every `interval` on its own connection until `stop`, reconnecting after 1 s.
async fn agent_loop(
    addr: SocketAddr,
    agent: SimAgent,
    salt: u64,
    interval: Duration,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
    template: routerstats_shared::Report,
) {
    let boot = sim::boot_id(salt);
    let mut maker = ReportMaker::new(template, boot);
    while !stop.load(Ordering::Relaxed) {
        let conn = timeout(Duration::from_secs(10), sim::connect(addr, &agent, boot)).await;
        let Ok(Ok(mut conn)) = conn else {
            c.agent_failures.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let (_, frame) = maker.next_frame();
            let ok = timeout(Duration::from_secs(10), async {
                conn.write_all(&frame).await.ok()?;
                conn.flush().await.ok()?;
                match read_message(&mut conn, MAX_FRAME_LEN).await.ok()? {
                    Message::Ack(_) => Some(()),
                    _ => None,
                }
            })
            .await;
            if !matches!(ok, Ok(Some(()))) {
                c.agent_failures.fetch_add(1, Ordering::Relaxed);
                break;
            }
            c.acked.fetch_add(1, Ordering::Relaxed);
            next += interval;
            tokio::time::sleep_until(next).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Once a second: `/health`, and a fresh router connection.
async fn probes(
    api: SocketAddr,
    ingest: SocketAddr,
    probe: SimAgent,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let health = timeout(Duration::from_secs(3), async {
            let mut s = TcpStream::connect(api).await.ok()?;
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.ok()?;
            String::from_utf8_lossy(&buf)
                .starts_with("HTTP/1.1 200")
                .then_some(())
        })
        .await;
        if matches!(health, Ok(Some(()))) {
            c.health_ok.fetch_add(1, Ordering::Relaxed);
            c.health_max_ms
                .fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        } else {
            c.health_fail.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
        let conn = timeout(
            Duration::from_secs(5),
            sim::connect(ingest, &probe, sim::boot_id(1_000_000 + n)),
        )
        .await;
        if matches!(conn, Ok(Ok(_))) {
            c.connect_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            c.connect_fail.fetch_add(1, Ordering::Relaxed);
        }
        let spent = t.elapsed();
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(spent)).await;
    }
}

/// Holds what an attack opened until `stop`; returns how many connections it held at most.
async fn run_attack(
    name: &str,
    o: &Opts,
    col: &CollectorProc,
    tls: Arc<ClientConfig>,
    stop: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
    attempts: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let (api, ingest, k) = (col.api, col.ingest, o.addrs);
    match name {
        "api-idle" | "big-header" | "preauth" => {
            let n = match name {
                "api-idle" => o.api_conns,
                "big-header" => o.big_conns,
                _ => o.preauth_conns,
            };
            // Openers: 256 at a time, each opening its share and holding (reopening when cut).
            let workers = 256.min(n.max(1));
            for w in 0..workers {
                let share: Vec<usize> = (w..n).step_by(workers).collect();
                let (stop, held, attempts, tls, name) = (
                    stop.clone(),
                    held.clone(),
                    attempts.clone(),
                    tls.clone(),
                    name.to_string(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut open: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
                    for i in share {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let src = attack_addr(i, k);
                        match name.as_str() {
                            "api-idle" => {
                                // Held, and reopened as soon as the collector closes it.
                                let (stop, held) = (stop.clone(), held.clone());
                                tokio::spawn(async move {
                                    while !stop.load(Ordering::Relaxed) {
                                        let Some(mut t) = tcp_from(src, api).await else {
                                            tokio::time::sleep(Duration::from_millis(200)).await;
                                            continue;
                                        };
                                        held.fetch_add(1, Ordering::Relaxed);
                                        let mut b = [0u8; 64];
                                        loop {
                                            tokio::select! {
                                                r = t.read(&mut b) => if matches!(r, Ok(0) | Err(_)) { break },
                                                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                                                    if stop.load(Ordering::Relaxed) { return; }
                                                }
                                            }
                                        }
                                    }
                                });
                            }
                            "big-header" => {
                                if let Some(mut t) = tls_from(src, ingest, tls.clone()).await {
                                    let h = FrameHeader::new(MessageKind::EnrollRequest, MAX_FRAME_LEN)
                                        .to_bytes();
                                    if t.write_all(&h).await.is_ok() && t.flush().await.is_ok() {
                                        open.push(Box::new(t));
                                    }
                                }
                            }
                            _ => {
                                if let Some(t) = tls_from(src, ingest, tls.clone()).await {
                                    open.push(Box::new(t));
                                }
                            }
                        }
                    }
                    held.fetch_add(open.len(), Ordering::Relaxed);
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    drop(open);
                }));
            }
        }
        "enroll" => {
            // Tokens with this collector's CA hash and a valid CSR, so each attempt reaches the
            // token lookup (unknown token) as a guessing attacker's would.
            let csr = routerstats_agent::uplink::csr::generate_p256_pkcs8()
                .and_then(|k| routerstats_agent::uplink::csr::csr_der(&k, "attacker"))
                .map(|d| routerstats_agent::uplink::csr::pem("CERTIFICATE REQUEST", &d))
                .unwrap_or_default();
            for w in 0..o.enroll_workers {
                let (stop, attempts, tls) = (stop.clone(), attempts.clone(), tls.clone());
                let (csr, ca_hash) = (csr.clone(), o.ca_hash.clone());
                tasks.push(tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let src = attack_addr(w, k);
                        let Some(mut t) = tls_from(src, ingest, tls.clone()).await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let req = EnrollRequest {
                            token: format!("rs1.bogus{w:03}.{i:032}.{ca_hash}"),
                            csr_pem: csr.clone(),
                            name: Some(format!("<img src=x onerror=alert({i})>")),
                            hostname: "x".repeat(200),
                        };
                        let _ = write_message(&mut t, &Message::EnrollRequest(req)).await;
                        let _ =
                            timeout(Duration::from_secs(5), read_message(&mut t, MAX_FRAME_LEN))
                                .await;
                    }
                }));
            }
        }
        _ => {}
    }
    tasks
}

struct Sample {
    fds_max: usize,
    rss_max_kb: u64,
}

async fn sample_until(pid: u32, end: Instant) -> Sample {
    let mut s = Sample {
        fds_max: 0,
        rss_max_kb: 0,
    };
    while Instant::now() < end {
        s.fds_max = s.fds_max.max(sys::open_fds(pid));
        s.rss_max_kb = s
            .rss_max_kb
            .max(sys::mem_of(&pid.to_string()).map(|m| m.rss_kb).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    s
}

async fn bench(o: Opts) -> Result<(), String> {
    let want = (o.api_conns.max(o.preauth_conns).max(o.big_conns) + o.agents * 2 + 512) as u64;
    let soft = sys::raise_nofile(want);
    if soft < want {
        return Err(format!(
            "open-file limit {soft} is below the {want} this run needs"
        ));
    }
    let parent = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = collector_bin(o.collector.clone()).map_err(|e| e.to_string())?;
    let toml = format!("max_connections = {}\n", o.max_connections);
    let col = CollectorProc::start(&bin, &parent.path().join("data"), &toml, "info")
        .map_err(|e| e.to_string())?;
    let pid = col.pid();
    let nofile_set = sys::set_nofile_of(pid, o.nofile);
    println!(
        "collector {} (pid {pid}); open-file limit set to {} ({}); max_connections {}",
        bin.display(),
        o.nofile,
        if nofile_set { "ok" } else { "FAILED" },
        o.max_connections
    );
    let token = col
        .token("attack", o.agents + 1)
        .map_err(|e| e.to_string())?;
    let mut o = o;
    o.ca_hash = token.rsplit('.').next().unwrap_or_default().to_string();
    let mut fleet = sim::enroll_fleet(
        col.ingest,
        &token,
        &parent.path().join("agents"),
        "agent",
        o.agents + 1,
        8,
    )
    .await
    .map_err(|e| e.to_string())?;
    let probe = fleet.pop().ok_or("no probe agent")?;
    let ca_pem = std::fs::read(parent.path().join("data/ca.pem")).map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca_pem) {
        let c: rustls_pki_types::CertificateDer<'static> = c.map_err(|e| e.to_string())?;
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls = Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&tokio_rustls::rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let template = RouterText::generate(Shape::INGEST, 11)
        .parse_report()
        .map_err(|e| e.to_string())?;

    let counters = Arc::new(Counters::default());
    let stop_all = Arc::new(AtomicBool::new(false));
    let n = fleet.len().max(1);
    let mut agents = Vec::new();
    for (i, a) in fleet.into_iter().enumerate() {
        let (c, stop, template) = (counters.clone(), stop_all.clone(), template.clone());
        let (addr, interval) = (col.ingest, o.interval);
        agents.push(tokio::spawn(async move {
            tokio::time::sleep(interval.mul_f64(i as f64 / n as f64)).await;
            agent_loop(addr, a, i as u64, interval, c, stop, template).await
        }));
    }
    let probe_task = tokio::spawn(probes(
        col.api,
        col.ingest,
        probe,
        counters.clone(),
        stop_all.clone(),
    ));
    tokio::time::sleep(o.interval * 3).await;

    println!(
        "{} agents reporting every {} ms; phases of {} s; attacks from {} loopback addresses",
        o.agents,
        o.interval.as_millis(),
        o.secs,
        o.addrs
    );
    println!(
        "| phase | attack conns opened / tried | agents acked/s | vs baseline | agent conn failures | /health ok (max ms) | new router connects ok | collector fds peak | VmRSS peak | VmRSS 5 s after | log bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut phases = vec!["baseline".to_string()];
    for p in ["api-idle", "big-header", "preauth", "enroll"] {
        if o.only.is_empty() || o.only.iter().any(|x| x == p) {
            phases.push(p.to_string());
        }
    }
    let mut baseline_rate = 0.0f64;
    for phase in phases {
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let attempts = Arc::new(AtomicU64::new(0));
        let log0 = std::fs::metadata(&col.log_path)
            .map(|m| m.len())
            .unwrap_or(0);
        let tasks = run_attack(
            &phase,
            &o,
            &col,
            tls.clone(),
            stop.clone(),
            held.clone(),
            attempts.clone(),
        )
        .await;
        // Let the attack build up for a fifth of the phase, then measure the rest.
        let ramp = Duration::from_secs(o.secs / 5);
        let s_ramp = sample_until(pid, Instant::now() + ramp).await;
        let before = counters.snapshot();
        let t0 = Instant::now();
        let s = sample_until(pid, t0 + Duration::from_secs(o.secs) - ramp).await;
        let after = counters.snapshot();
        let secs = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = timeout(Duration::from_secs(10), t).await;
        }
        let log1 = std::fs::metadata(&col.log_path)
            .map(|m| m.len())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss_after = col.mem().rss_kb;
        let rate = (after[0] - before[0]) as f64 / secs;
        if phase == "baseline" {
            baseline_rate = rate;
        }
        println!(
            "| {phase} | {} / {} | {:.1} | {:.0}% | {} | {} of {} ({}) | {} of {} | {} | {} MB | {} MB | {} |",
            held.load(Ordering::Relaxed),
            attempts.load(Ordering::Relaxed),
            rate,
            if baseline_rate > 0.0 { rate / baseline_rate * 100.0 } else { 0.0 },
            after[1] - before[1],
            after[2] - before[2],
            (after[2] - before[2]) + (after[3] - before[3]),
            after[4],
            after[5] - before[5],
            (after[5] - before[5]) + (after[6] - before[6]),
            s.fds_max.max(s_ramp.fds_max),
            s.rss_max_kb.max(s_ramp.rss_max_kb) / 1024,
            rss_after / 1024,
            log1.saturating_sub(log0),
        );
    }
    stop_all.store(true, Ordering::Relaxed);
    let _ = timeout(Duration::from_secs(15), probe_task).await;
    for a in agents {
        let _ = timeout(Duration::from_secs(15), a).await;
    }
    let log = col.log();
    let emfile = log.matches("Too many open files").count();
    println!(
        "collector log: {} bytes, {emfile} lines with \"Too many open files\"",
        log.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let parse = || -> Result<Opts, String> {
        let f = flags(USAGE).map_err(|e| e.to_string())?;
        Ok(Opts {
            agents: flag(&f, "agents", 100usize)?.max(1),
            interval: Duration::from_millis(flag(&f, "interval-ms", 1000u64)?.max(10)),
            secs: flag(&f, "secs", 20u64)?.max(5),
            addrs: flag(&f, "attack-addrs", 64u8)?.max(1),
            api_conns: flag(&f, "api-conns", 10_000usize)?,
            big_conns: flag(&f, "big-conns", 1000usize)?,
            preauth_conns: flag(&f, "preauth-conns", 2048usize)?,
            enroll_workers: flag(&f, "enroll-workers", 32usize)?,
            nofile: flag(&f, "collector-nofile", 8192u64)?,
            max_connections: flag(&f, "max-connections", 1024usize)?,
            only: flag(&f, "only", String::new())?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            collector: f
                .iter()
                .find(|(n, _)| n == "collector-bin")
                .map(|(_, v)| PathBuf::from(v)),
            ca_hash: String::new(),
        })
    };
    routerstats_bench::run_async(parse(), bench)
}
