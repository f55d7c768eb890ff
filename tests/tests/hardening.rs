//! Hardening against unauthenticated peers, end to end: the real collector binary, real agents,
//! loopback only (attackers use other 127.0.0.0/8 source addresses, which are loopback too).
//! Lighter, bounded versions of the floods `bench-attack` measures (BENCHMARKS.md).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use routerstats_tests::harness::{http_get, wait_for, AgentSetup, Collector};

/// A blocking TCP connection to `to` from the loopback address `src` (std cannot bind before
/// connecting; tokio's socket can).
fn connect_from(src: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(SocketAddr::from((src, 0)))?;
        tokio::time::timeout(Duration::from_secs(2), s.connect(to))
            .await
            .map_err(|_| std::io::Error::other("connect timeout"))?
    })?;
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    Ok(s)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn idle_api_flood_is_capped_and_agents_keep_reporting() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with_config(
        &dir.path().join("collector"),
        "api_max_connections = 64\napi_max_per_address = 8\napi_header_timeout = \"2s\"\n",
    );
    let agent = AgentSetup::new(&dir.path().join("ap-flood"), "ap-flood");
    assert!(agent
        .enroll(collector.ingest, &collector.token("ap-flood", &[]))
        .status
        .success());
    let mut running = agent.run(collector.ingest, "200ms", &[]);
    wait_for(Duration::from_secs(20), "first reports", || {
        (collector.stored_seqs("ap-flood").len() >= 3).then_some(())
    });
    let fds_before = open_fds(collector.pid());

    // 400 idle connections from 40 addresses (10 each: 2 over the per-address cap).
    let mut idle = Vec::new();
    for i in 0..400u32 {
        let src = [127, 0, 2, 1 + (i % 40) as u8];
        if let Ok(s) = connect_from(src, collector.api) {
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let fds_during = open_fds(collector.pid());
    // The API holds at most its 64 slots (plus a few being closed), whatever the flood.
    assert!(
        fds_during <= fds_before + 64 + 16,
        "collector fds {fds_before} -> {fds_during}"
    );

    // /health still answers from another address (within the header timeout turnover), and the
    // agent keeps storing reports in order.
    let stored = collector.stored_seqs("ap-flood").len();
    let t = Instant::now();
    let (status, body) = http_get(collector.api, "/health", &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "/health took {:?}",
        t.elapsed()
    );
    wait_for(Duration::from_secs(10), "reports during the flood", || {
        (collector.stored_seqs("ap-flood").len() >= stored + 5).then_some(())
    });
    // Idle connections were cut by the header timeout.
    let mut cut = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut b = [0u8; 16];
        if matches!(s.read(&mut b), Ok(0) | Err(_)) {
            cut += 1;
        }
    }
    assert!(
        cut > 300,
        "only {cut} of {} idle connections were closed",
        idle.len()
    );
    let seqs = collector.stored_seqs("ap-flood");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gaps: {seqs:?}");
    running.stop();
}

#[test]
fn enrollment_names_follow_the_cli_rule() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    for bad in ["<img src=x onerror=alert(1)>", "-1", "2", "a b"] {
        let agent = AgentSetup::new(&dir.path().join(format!("bad{}", bad.len())), "OpenWrt");
        let token = collector.token("ap-any", &[]);
        let out = agent
            .command()
            .args([
                "--collector",
                &collector.ingest.to_string(),
                "--token",
                &token,
                "--name",
                bad,
                "enroll",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(err.contains("not allowed"), "{bad:?}: {err}");
    }
    let listed = collector.cli(&["router", "list", "--json"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("onerror"));
    // The CLI's own rule is the same one.
    let out = collector.cli(&["token", "create", "--name", "2"]);
    assert!(!out.status.success());
    // A good name still enrolls, and `id:`/`name:` pick explicitly.
    let agent = AgentSetup::new(&dir.path().join("good"), "OpenWrt");
    assert!(agent
        .enroll(collector.ingest, &collector.token("ap-good", &[]))
        .status
        .success());
    let by_name = collector.cli_ok(&["router", "show", "name:ap-good"]);
    let shown = String::from_utf8_lossy(&by_name.stdout).into_owned();
    assert!(shown.contains("ap-good"), "{shown}");
}

/// The nice value of each thread of process `pid`, by thread name (Linux).
fn thread_nices(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // "tid (comm) state ..." ; the nice value is field 19, the 17th after the name.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head.split_once(" (").map_or("", |(_, n)| n).to_string();
        if let Some(nice) = rest.split(' ').nth(16).and_then(|n| n.parse().ok()) {
            out.push((name, nice));
        }
    }
    out
}

/// Under CPU contention the database writer (the ingest's critical path) is not kept waiting
/// behind the collector's busy threads: they run at the configured nice values, it at the
/// process's own.
#[test]
#[cfg(target_os = "linux")]
fn the_writer_keeps_the_process_priority_and_busy_threads_yield() {
    let own = thread_nices(std::process::id())[0].1;
    let (network, api) = ((own + 3).min(19), (own + 7).min(19));
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with_config(
        &dir.path().join("c"),
        &format!("network_nice = {network}\napi_read_nice = {api}\n"),
    );
    // The API's read threads start with the server; read once so that every kind is running.
    let _ = http_get(collector.api, "/api/routers", &[]);
    let nices = thread_nices(collector.pid());
    let of = |name: &str| -> Vec<i32> {
        nices
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(of("db-writer"), vec![own], "{nices:?}");
    let workers = of("tokio-rt-worker");
    assert!(!workers.is_empty(), "{nices:?}");
    assert!(workers.iter().all(|n| *n == network), "{nices:?}");
    let readers = of("api-read");
    assert!(!readers.is_empty(), "{nices:?}");
    assert!(readers.iter().all(|n| *n == api), "{nices:?}");
}
