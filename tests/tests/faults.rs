//! Faults, end to end, on loopback and bounded in time: the real collector and real agents
//! (tests/src/harness.rs) while the collector's disk fills up, and while it holds many agent
//! connections plus TLS connections that never finish their handshake.
//!
//! The disk-full test mounts a small tmpfs as the collector's data directory, which needs root
//! (CAP_SYS_ADMIN). Where mounting is not allowed it says so on stderr and checks nothing; the
//! test machines run as root, where it runs in full.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use routerstats_shared::io::{read_message, write_message};
use routerstats_shared::message::Hello;
use routerstats_shared::{Message, Report, RouterFacts, MAX_FRAME_LEN};
use routerstats_tests::harness::{agent_stats, http_get, wait_for, AgentSetup, Collector};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(60);

/// Asserts `seqs` is exactly 1..=n: nothing lost, nothing doubled.
fn assert_contiguous(seqs: &[u64]) {
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(
        seqs,
        expected.as_slice(),
        "stored sequence numbers have gaps or duplicates"
    );
}

/// A tmpfs mounted for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (like "16m") on `path`; None when mounting is not allowed.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the file system refuses (ENOSPC); returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
    written
}

#[test]
fn full_disk_stops_acks_agents_spool_and_ingest_resumes_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let Some(_fs) = Tmpfs::mount(&data, "24m") else {
        eprintln!("SKIPPED full_disk test: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    // The log lives outside the small file system, so the collector can still say why.
    std::os::unix::fs::symlink(dir.path().join("collector.log"), data.join("collector.log"))
        .unwrap();
    let collector = Collector::start(&data);
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-full");
    assert!(setup
        .enroll(collector.ingest, &collector.token("ap-full", &[]))
        .status
        .success());
    let mut agent = setup.run(collector.ingest, "100ms", &[]);
    wait_for(WAIT, "5 stored reports", || {
        (collector.stored_seqs("ap-full").len() >= 5).then_some(())
    });

    // Disk full: the next commits fail.
    let filler = data.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "the filler wrote nothing");
    // Acks stop: the stored count stays put for 2 s (a commit in flight may still land first).
    let stalled_at = wait_for(
        Duration::from_secs(30),
        "ingest to stop while the disk is full",
        || {
            let before = collector.stored_seqs("ap-full").len();
            std::thread::sleep(Duration::from_secs(2));
            (collector.stored_seqs("ap-full").len() == before).then_some(before)
        },
    );
    wait_for(Duration::from_secs(15), "the collector to log why", || {
        collector
            .log()
            .contains("database write failed")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2)); // the agent keeps collecting and spooling
    assert_eq!(
        collector.stored_seqs("ap-full").len(),
        stalled_at,
        "nothing is stored while the disk is full"
    );
    assert!(
        agent.is_running(),
        "the agent keeps running while the collector cannot store"
    );
    assert!(
        matches!(http_get(collector.api, "/health", &[]), Ok((_, _))),
        "the collector process stays up"
    );

    // Space returns: the writer's retry commits, agents reconnect and deliver their spools.
    std::fs::remove_file(&filler).unwrap();
    wait_for(WAIT, "the spooled backlog after space returned", || {
        (collector.stored_seqs("ap-full").len() >= stalled_at + 30).then_some(())
    });
    let log = agent.stop();
    let (built, acked, dropped, spooled) =
        agent_stats(&log).unwrap_or_else(|| panic!("no stats line in:\n{log}"));
    let seqs = collector.stored_seqs("ap-full");
    assert_eq!(dropped, 0);
    assert_contiguous(&seqs);
    // No acked report is lost: each was stored; every report built is stored or still spooled.
    assert!(
        acked <= seqs.len() as u64,
        "acked {acked}, stored {}",
        seqs.len()
    );
    assert_eq!(seqs.len() as u64 + spooled, built, "agent log:\n{log}");
    let clog = collector.log();
    assert!(
        clog.contains("database writes work again"),
        "collector log:\n{clog}"
    );
    eprintln!(
        "faults: disk filled with {filled} bytes; ingest stopped at {stalled_at} reports; agent built {built}, \
         acked {acked}, dropped {dropped}, still spooled {spooled}; {} stored, contiguous",
        seqs.len()
    );
}

/// Enrolls `n` simulated routers with one multi-use token through the agent library's real
/// enrollment, and returns their mutual-TLS client configurations.
async fn enroll_many(
    addr: SocketAddr,
    token: &str,
    dir: &Path,
    n: usize,
) -> Vec<(String, Arc<tokio_rustls::rustls::ClientConfig>)> {
    use routerstats_agent::uplink::{
        enroll, load_identity, tls::mtls_client_config, EnrollOptions,
    };
    let token: routerstats_shared::token::EnrollToken = token.parse().unwrap();
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let name = format!("sim-{i:04}");
            let opts = EnrollOptions {
                collector: addr.to_string(),
                token: token.clone(),
                name: Some(name.clone()),
                hostname: name.clone(),
                config_dir: dir.join(&name),
                timeout: Duration::from_secs(60),
                force: false,
            };
            tasks.push(tokio::spawn(async move {
                // enroll() creates the identity directory itself (mode 0700).
                let d = opts.config_dir.clone();
                enroll(opts)
                    .await
                    .unwrap_or_else(|e| panic!("enroll {name}: {e}"));
                let id = load_identity(&d).unwrap();
                (
                    name,
                    mtls_client_config(&id.ca_pem, &id.cert_pem, &id.key_pem).unwrap(),
                )
            }));
        }
        for t in tasks {
            out.push(t.await.unwrap());
        }
    }
    out
}

/// One simulated router: connects, says Hello, then sends a small report every `every` until
/// `stop_at`, one at a time; returns how many were acked.
async fn simulated_router(
    addr: SocketAddr,
    name: String,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
    every: Duration,
    stop_at: Instant,
) -> Result<u64, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let server = rustls_pki_types::ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(server, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut boot = [0u8; 16];
    boot[..name.len().min(16)].copy_from_slice(&name.as_bytes()[..name.len().min(16)]);
    let hello = Hello {
        agent_version: "sim".into(),
        hostname: name.clone(),
        boot_id: boot,
        spooled: 0,
    };
    write_message(&mut s, &Message::Hello(hello))
        .await
        .map_err(|e| e.to_string())?;
    match read_message(&mut s, MAX_FRAME_LEN)
        .await
        .map_err(|e| e.to_string())?
    {
        Message::HelloAck(_) => {}
        other => return Err(format!("expected HelloAck, got {other:?}")),
    }
    let mut acked = 0;
    let mut seq = 0;
    while Instant::now() < stop_at {
        seq += 1;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let report = Report {
            seq,
            boot_id: boot,
            timestamp_ms: now_ms,
            router: RouterFacts {
                hostname: name.clone(),
                agent_version: "sim".into(),
                arch: "x86_64".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        write_message(&mut s, &Message::Report(Box::new(report)))
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(20), read_message(&mut s, MAX_FRAME_LEN))
            .await
        {
            Ok(Ok(Message::Ack(a))) if a.seq == seq => acked += 1,
            Ok(Ok(other)) => return Err(format!("expected Ack {seq}, got {other:?}")),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no ack for {seq} within 20 s")),
        }
        tokio::time::sleep(every).await;
    }
    let _ = s.shutdown().await;
    Ok(acked)
}

#[test]
fn many_connections_and_stalled_handshakes_do_not_starve_real_agents() {
    const SIMULATED: usize = 200;
    const STALLED: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let real: Vec<AgentSetup> = ["ap-real-1", "ap-real-2"]
        .iter()
        .map(|name| {
            let s = AgentSetup::new(&dir.path().join(name), name);
            assert!(s
                .enroll(collector.ingest, &collector.token(name, &[]))
                .status
                .success());
            s
        })
        .collect();
    let mut agents: Vec<_> = real
        .iter()
        .map(|s| s.run(collector.ingest, "200ms", &[]))
        .collect();
    let token = collector.token("sim", &["--uses", &SIMULATED.to_string()]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = collector.ingest;
    let sims = rt.block_on(enroll_many(
        addr,
        &token,
        &dir.path().join("sims"),
        SIMULATED,
    ));

    // Stalled handshakes: five bytes of a TLS record, then nothing; reopened when closed.
    let stop_stalling = Instant::now() + Duration::from_secs(120);
    let cuts = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let stalled: Vec<_> = (0..STALLED)
        .map(|_| {
            let (cuts, opened) = (cuts.clone(), opened.clone());
            rt.spawn(async move {
                use tokio::io::AsyncReadExt;
                while Instant::now() < stop_stalling {
                    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::SeqCst);
                    let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await;
                    let mut buf = [0u8; 16];
                    let _ = tcp.read(&mut buf).await;
                    cuts.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    wait_for(Duration::from_secs(10), "the stalled connections", || {
        (opened.load(Ordering::SeqCst) >= STALLED as u64).then_some(())
    });

    // All simulated routers report every 500 ms for 8 s while the stalled connections are open.
    let before: Vec<usize> = real
        .iter()
        .map(|s| collector.stored_seqs(&s.router.hostname).len())
        .collect();
    let window = Duration::from_secs(8);
    let stop_at = Instant::now() + window;
    let tasks: Vec<_> = sims
        .into_iter()
        .map(|(name, tls)| {
            rt.spawn(simulated_router(
                addr,
                name,
                tls,
                Duration::from_millis(500),
                stop_at,
            ))
        })
        .collect();
    let results: Vec<Result<u64, String>> = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let after: Vec<usize> = real
        .iter()
        .map(|s| collector.stored_seqs(&s.router.hostname).len())
        .collect();

    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} simulated routers failed; first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        results.iter().all(|r| matches!(r, Ok(n) if *n >= 1)),
        "every simulated router got acks"
    );
    // The real agents (200 ms interval) kept reporting during the 8 s window: at least a
    // quarter of their cycles landed, in order.
    for ((b, a), s) in before.iter().zip(&after).zip(&real) {
        assert!(
            a - b >= 10,
            "{} stored only {} reports in {window:?}",
            s.router.hostname,
            a - b
        );
    }
    for a in &mut agents {
        a.stop();
    }
    for s in &real {
        assert_contiguous(&collector.stored_seqs(&s.router.hostname));
    }
    for t in &stalled {
        t.abort();
    }
    // The stalled connections were held open (the collector cuts them only after its 10 s
    // handshake timeout, so a few may have been cut and reopened).
    assert!(opened.load(Ordering::SeqCst) >= STALLED as u64);
    eprintln!(
        "faults: {} simulated routers acked {} reports; {} stalled connections opened, {} cut by the collector",
        results.len(),
        results.iter().filter_map(|r| r.as_ref().ok()).sum::<u64>(),
        opened.load(Ordering::SeqCst),
        cuts.load(Ordering::SeqCst)
    );
}

/// Rows of the raw samples whose per-bucket sums differ from their rollup rows, or rollup rows
/// without matching raw rows (interface and station rollups, 5-minute and hourly).
fn rollup_mismatches(c: &rusqlite::Connection) -> i64 {
    let mut total = 0;
    for (rollup, raw, key, len) in [
        ("interface_rollup_5m", "interface_samples", "name", 300_000),
        (
            "interface_rollup_1h",
            "interface_samples",
            "name",
            3_600_000,
        ),
        ("station_rollup_5m", "station_samples", "mac", 300_000),
        ("station_rollup_1h", "station_samples", "mac", 3_600_000),
    ] {
        let from_raw = format!(
            "SELECT router_id, {key}, (ts_ms / {len}) * {len}, CAST(total(rx_delta) AS INTEGER), \
             CAST(total(tx_delta) AS INTEGER), count(*) FROM {raw} GROUP BY 1, 2, 3"
        );
        let from_rollup = format!(
            "SELECT router_id, {key}, bucket_start_ms, rx_bytes, tx_bytes, samples FROM {rollup}"
        );
        for (a, b) in [(&from_raw, &from_rollup), (&from_rollup, &from_raw)] {
            let n: i64 = c
                .query_row(&format!("SELECT count(*) FROM ({a} EXCEPT {b})"), [], |r| {
                    r.get(0)
                })
                .unwrap();
            total += n;
        }
    }
    total
}

/// Raw interface samples, and the samples their 5-minute rollup rows count.
fn counted(c: &rusqlite::Connection) -> (i64, i64) {
    c.query_row(
        "SELECT (SELECT count(*) FROM interface_samples), \
         (SELECT coalesce(sum(samples), 0) FROM interface_rollup_5m)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// The collector holds rollup sums in memory between writes (`rollup_hold`, here 5 minutes):
/// an API read first has them written (its answer counts every acked report), and after a
/// SIGKILL between writes the restarted collector rebuilds them from the raw rows, so every
/// rollup row equals the sums of its raw samples again: no rollup loses data.
#[test]
fn killed_between_rollup_writes_loses_no_rollup_sum() {
    // Sums are also written when the wall clock enters another 5-minute bucket: start well
    // inside one, so the checks below see sums still held.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let left = 300_000 - now_ms % 300_000;
    if left < 150_000 {
        std::thread::sleep(Duration::from_millis(left + 1_000));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start_with_config(
        &dir.path().join("collector"),
        "rollup_hold = \"5m\"\napi_cache_max_age = \"0s\"\n",
    );
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-roll");
    assert!(setup
        .enroll(collector.ingest, &collector.token("ap-roll", &[]))
        .status
        .success());
    let key = collector.api_key("read", "t-read");
    let run = |collector: &Collector, more: usize| {
        let before = collector.stored_seqs("ap-roll").len();
        let mut agent = setup.run(collector.ingest, "100ms", &[]);
        wait_for(WAIT, "reports", || {
            (collector.stored_seqs("ap-roll").len() >= before + more).then_some(())
        });
        agent.stop();
        // The last acks follow their commits.
        std::thread::sleep(Duration::from_millis(500));
    };

    // 1. Sums are held: the rollups count fewer samples than the raw rows.
    run(&collector, 15);
    let (raw, rolled) = counted(&collector.db());

    assert!(
        raw > 0 && rolled < raw,
        "held: {rolled} of {raw} samples in the rollups"
    );
    // An API read has them written first.
    let (status, _) = http_get(
        collector.api,
        "/api/gateways?duration=1d",
        &[("X-API-Key", key.as_str())],
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(rollup_mismatches(&collector.db()), 0, "after an API read");

    // 2. More reports, held (once no reader read for 5 s); SIGKILL before any write.
    std::thread::sleep(Duration::from_secs(6));
    run(&collector, 15);
    let (raw2, rolled2) = counted(&collector.db());
    assert!(raw2 > raw && rolled2 < raw2, "held: {rolled2} of {raw2}");
    collector.kill();
    let db = collector.db();
    assert_eq!(
        counted(&db),
        (raw2, rolled2),
        "nothing moved while it was down"
    );
    assert!(rollup_mismatches(&db) > 0);
    drop(db);

    // 3. Restart (no agent): the writer rebuilds the sums from the raw rows and writes them.
    collector.restart();
    wait_for(WAIT, "the rebuilt rollup sums", || {
        (rollup_mismatches(&collector.db()) == 0).then_some(())
    });
    assert_eq!(counted(&collector.db()), (raw2, raw2));
    assert!(
        collector.log().contains("rebuilt the rollup sums"),
        "log:\n{}",
        collector.log()
    );
    eprintln!(
        "faults: {raw2} interface samples, {rolled2} in the rollups at the SIGKILL, all after the restart"
    );
}
