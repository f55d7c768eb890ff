//! The pipeline end to end: real `routerstats-agent` processes enrolled with one-time tokens,
//! reporting over real mutual TLS to a real `routerstats-collector`, stored in SQLite exactly
//! once across a collector crash and a network cut.

use std::time::Duration;

use routerstats_tests::harness::{agent_stats, wait_for, AgentSetup, Collector, CutProxy};

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

#[test]
fn enrolled_agent_reports_land_in_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let token = collector.token("ap-kitchen", &["--site", "home"]);
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-kitchen");

    let out = setup.enroll(collector.ingest, &token);
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled as ap-kitchen"));
    // The key never leaves the router and is readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(setup.config_dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Re-running is safe: no second router, the token is not needed again.
    let again = setup.enroll(collector.ingest, &token);
    assert!(
        again.status.success(),
        "re-enroll: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("already enrolled"));

    let mut agent = setup.run(collector.ingest, "300ms", &[]);
    // Let counters move between cycles so rates can be computed.
    wait_for(WAIT, "4 stored reports", || {
        setup.router.tick(5).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        (collector.stored_seqs("ap-kitchen").len() >= 4).then_some(())
    });
    agent.stop();

    let db = collector.db();
    let one = |sql: &str| -> i64 {
        db.query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    assert_eq!(one("SELECT COUNT(*) FROM routers"), 1);
    assert_eq!(
        db.query_row("SELECT site FROM routers", [], |r| r
            .get::<_, Option<String>>(0))
            .unwrap()
            .as_deref(),
        Some("home")
    );
    let reports = one("SELECT COUNT(*) FROM reports");
    assert!(reports >= 4);
    assert_contiguous(&collector.stored_seqs("ap-kitchen"));
    // Six stations per report, every report.
    assert_eq!(one("SELECT COUNT(*) FROM station_samples"), reports * 6);
    assert_eq!(one("SELECT COUNT(DISTINCT mac) FROM station_samples"), 6);
    assert_eq!(one("SELECT COUNT(*) FROM leases"), 10);
    assert!(one("SELECT COUNT(*) FROM interface_samples") >= reports * 10);
    assert!(one("SELECT COUNT(*) FROM wg_peer_samples") >= reports * 6);
    assert!(one("SELECT COUNT(*) FROM ovpn_client_samples") >= reports);
    assert_eq!(one("SELECT COUNT(*) FROM wireless_interfaces"), 3);
    // Rates come from counter deltas: the WAN interface moved between cycles.
    assert!(
        one("SELECT COUNT(*) FROM interface_samples WHERE name = 'pppoe-wan' AND rx_bps > 0") >= 1
    );
}

#[test]
fn collector_killed_and_restarted_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(&dir.path().join("collector"));
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-crash");
    assert!(setup
        .enroll(collector.ingest, &collector.token("ap-crash", &[]))
        .status
        .success());
    let mut agent = setup.run(collector.ingest, "100ms", &[]);

    wait_for(WAIT, "10 stored reports", || {
        (collector.stored_seqs("ap-crash").len() >= 10).then_some(())
    });
    collector.kill(); // SIGKILL while the agent is sending
    std::thread::sleep(Duration::from_millis(1500)); // the agent keeps collecting and spools
    collector.restart();
    let before = collector.stored_seqs("ap-crash").len();
    wait_for(WAIT, "the spooled backlog to arrive", || {
        (collector.stored_seqs("ap-crash").len() >= before + 20).then_some(())
    });

    let log = agent.stop();
    let (built, _acked, dropped, spooled) =
        agent_stats(&log).unwrap_or_else(|| panic!("no stats line in:\n{log}"));
    let seqs = collector.stored_seqs("ap-crash");
    assert_eq!(dropped, 0);
    assert_contiguous(&seqs);
    // Every report built was stored, or is still in the agent's spool at exit.
    assert_eq!(seqs.len() as u64 + spooled, built, "log:\n{log}");
}

#[test]
fn network_cut_is_bridged_by_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let proxy = CutProxy::start(collector.ingest);
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-cut");
    assert!(setup
        .enroll(proxy.addr, &collector.token("ap-cut", &[]))
        .status
        .success());
    let mut agent = setup.run(proxy.addr, "100ms", &[]);

    wait_for(WAIT, "5 stored reports", || {
        (collector.stored_seqs("ap-cut").len() >= 5).then_some(())
    });
    proxy.cut();
    std::thread::sleep(Duration::from_millis(300));
    let during = collector.stored_seqs("ap-cut").len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        collector.stored_seqs("ap-cut").len(),
        during,
        "nothing arrives while the link is cut"
    );
    proxy.restore();
    wait_for(WAIT, "the backlog after the cut", || {
        (collector.stored_seqs("ap-cut").len() >= during + 25).then_some(())
    });

    let log = agent.stop();
    let (built, _, dropped, spooled) = agent_stats(&log).unwrap();
    let seqs = collector.stored_seqs("ap-cut");
    assert_eq!(dropped, 0);
    assert_contiguous(&seqs);
    assert_eq!(seqs.len() as u64 + spooled, built);
}

#[test]
fn a_cut_longer_than_the_spool_reports_the_drop_count() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let proxy = CutProxy::start(collector.ingest);
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-small");
    assert!(setup
        .enroll(proxy.addr, &collector.token("ap-small", &[]))
        .status
        .success());
    let mut agent = setup.run(proxy.addr, "100ms", &["--spool-size", "5"]);

    wait_for(WAIT, "first reports", || {
        (collector.stored_seqs("ap-small").len() >= 2).then_some(())
    });
    proxy.cut();
    std::thread::sleep(Duration::from_secs(2)); // ~20 reports into a spool of 5
    proxy.restore();
    let db = collector.db();
    // The running total per agent run: its largest stored value is the run's drop count.
    let total = || {
        db.query_row("SELECT COALESCE(SUM(m), 0) FROM (SELECT MAX(dropped_reports) AS m FROM reports GROUP BY boot_id)", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    wait_for(WAIT, "reports carrying the drop count", || {
        (total() >= 10).then_some(())
    });
    // Let the backlog drain so the last report built after the cut has arrived.
    std::thread::sleep(Duration::from_millis(500));
    let log = agent.stop();
    let (built, _, agent_dropped, spooled) = agent_stats(&log).unwrap();
    let stored = collector.stored_seqs("ap-small");
    // The gap shows in the data: the collector knows exactly as many drops as the agent counted.
    assert_eq!(total(), agent_dropped, "stored {stored:?}");
    // The count covers every missing sequence number. It may exceed them by reports that were
    // stored but whose acks the cut swallowed (the agent cannot tell those from undelivered
    // ones); at most a spool's worth (5) can be in flight.
    let missing = (1..=built).filter(|s| !stored.contains(s)).count() as u64 - spooled;
    assert!(
        agent_dropped >= missing && agent_dropped <= missing + 5,
        "dropped {agent_dropped}, missing {missing}"
    );
    assert!(!agent.is_running());
}

#[test]
fn revoked_router_is_cut_off_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-revoke");
    assert!(setup
        .enroll(collector.ingest, &collector.token("ap-revoke", &[]))
        .status
        .success());
    let mut agent = setup.run(collector.ingest, "100ms", &[]);
    wait_for(WAIT, "reports", || {
        (collector.stored_seqs("ap-revoke").len() >= 3).then_some(())
    });

    collector.cli_ok(&["router", "revoke", "ap-revoke"]);
    // Within a second the open connection is closed; allow in-flight reports to settle.
    std::thread::sleep(Duration::from_millis(1200));
    let after = collector.stored_seqs("ap-revoke").len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        collector.stored_seqs("ap-revoke").len(),
        after,
        "a revoked router's reports are not stored"
    );
    assert!(
        agent.is_running(),
        "the agent keeps running (and retrying) after revocation"
    );
    agent.stop();
}

#[test]
fn bad_tokens_get_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));

    let used = collector.token("r-used", &[]);
    let first = AgentSetup::new(&dir.path().join("a1"), "r-used");
    assert!(first.enroll(collector.ingest, &used).status.success());
    let second = AgentSetup::new(&dir.path().join("a2"), "r-used-2");
    let out = second.enroll(collector.ingest, &used);
    // 3: the collector refused the token; no retry can help (the runner stops retrying).
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.to_lowercase().contains("used"), "{err}");

    let expired = collector.token("r-exp", &["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let out = AgentSetup::new(&dir.path().join("a3"), "r-exp").enroll(collector.ingest, &expired);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr)
        .to_lowercase()
        .contains("expired"));

    // A token whose CA hash belongs to another collector: the agent refuses this collector.
    let other = Collector::start(&dir.path().join("other"));
    let foreign = other.token("r-foreign", &[]);
    let out =
        AgentSetup::new(&dir.path().join("a4"), "r-foreign").enroll(collector.ingest, &foreign);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CA"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Malformed token: usage error; unreachable collector: failure naming the address.
    let setup = AgentSetup::new(&dir.path().join("a5"), "r5");
    assert_eq!(
        setup.enroll(collector.ingest, "not-a-token").status.code(),
        Some(2)
    );
    let closed = format!("127.0.0.1:{}", routerstats_tests::harness::free_port());
    let out = setup.enroll(closed.parse().unwrap(), &collector.token("r5", &[]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&closed));
    assert_eq!(collector.stored_seqs("r5").len(), 0);
}

#[test]
fn token_on_stdin_stays_out_of_the_process_list() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let token = collector.token("ap-stdin", &[]);
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-stdin");
    let (out, cmdline) = setup.enroll_stdin(collector.ingest, &token);
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled as ap-stdin"));
    assert!(
        cmdline.contains("--token-file -"),
        "read the wrong process: {cmdline:?}"
    );
    assert!(
        !cmdline.contains(&token),
        "the token is in /proc/<pid>/cmdline: {cmdline:?}"
    );
    // A pipe with no token in it: a usage error (exit 2) naming standard input.
    let other = AgentSetup::new(&dir.path().join("other"), "ap-empty");
    let (out, _) = other.enroll_stdin(collector.ingest, "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token in standard input"));
}

#[test]
fn info_on_stdout_warnings_on_stderr_and_one_stop_summary() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-logs");
    assert!(setup
        .enroll(collector.ingest, &collector.token("ap-logs", &[]))
        .status
        .success());
    // A collector address nobody listens on: the agent warns that it cannot connect.
    let closed = format!("127.0.0.1:{}", routerstats_tests::harness::free_port());
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let child = setup
        .command()
        .args([
            "--collector",
            &closed,
            "--interval",
            "100ms",
            "--initial-delay",
            "0",
            "run",
        ])
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_for(WAIT, "a warning on stderr", || {
        read(&stderr).contains("warn:").then_some(())
    });
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait_with_output().unwrap().status;
    assert!(status.success(), "{status}");
    let (out, err) = (read(&stdout), read(&stderr));
    // procd logs stdout as daemon.info and stderr as daemon.err.
    assert!(
        out.lines()
            .all(|l| l.starts_with("routerstats-agent info: ")),
        "stdout:\n{out}"
    );
    assert!(out.contains("info: reporting to"), "stdout:\n{out}");
    assert!(!err.contains("info:"), "stderr:\n{err}");
    assert!(
        err.lines()
            .all(|l| l.starts_with("routerstats-agent warn: ")),
        "stderr:\n{err}"
    );
    let summaries = format!("{out}{err}").matches("stopped:").count();
    assert_eq!(summaries, 1, "the stop summary is logged once:\n{out}{err}");
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let other = Collector::start(&dir.path().join("other"));
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-stranger");
    assert!(setup
        .enroll(other.ingest, &other.token("ap-stranger", &[]))
        .status
        .success());
    // Point the agent, enrolled with the other collector, at ours.
    let mut agent = setup.run(collector.ingest, "100ms", &[]);
    std::thread::sleep(Duration::from_secs(2));
    let db = collector.db();
    let reports: i64 = db
        .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reports, 0);
    let log = agent.stop();
    assert!(!log.is_empty(), "the agent says why it cannot connect");
}

#[test]
fn garbage_and_oversized_frames_close_only_that_connection() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-good");
    assert!(setup
        .enroll(collector.ingest, &collector.token("ap-good", &[]))
        .status
        .success());
    let mut agent = setup.run(collector.ingest, "100ms", &[]);
    wait_for(WAIT, "reports", || {
        (collector.stored_seqs("ap-good").len() >= 2).then_some(())
    });

    // Plain TCP garbage.
    for payload in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0u8; 4096][..],
        b"\x16\x03\x01\xff\xff garbage",
    ] {
        let mut s = std::net::TcpStream::connect(collector.ingest).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(payload);
        let mut buf = [0u8; 256];
        // The collector closes the connection (EOF or reset), it does not hang or crash.
        let _ = s.read(&mut buf);
    }
    // An oversized frame over a real mTLS connection with a valid client certificate.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let id = routerstats_agent::uplink::load_identity(&setup.config_dir).unwrap();
        let cfg = routerstats_agent::uplink::tls::mtls_client_config(
            &id.ca_pem,
            &id.cert_pem,
            &id.key_pem,
        )
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(collector.ingest)
            .await
            .unwrap();
        let name =
            rustls_pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        let mut tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .unwrap();
        let header = routerstats_shared::FrameHeader::new(
            routerstats_shared::MessageKind::Report,
            routerstats_shared::MAX_FRAME_LEN + 1,
        );
        tls.write_all(&header.to_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        // The collector says why (an Error frame) and closes: read to the end, within a bound.
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut got))
            .await
            .expect("closed promptly");
        if !got.is_empty() {
            let (msg, _) =
                routerstats_shared::Message::from_frame(&got, routerstats_shared::MAX_FRAME_LEN)
                    .unwrap();
            assert!(
                matches!(msg, routerstats_shared::Message::Error(_)),
                "{msg:?}"
            );
        }
    });

    // The well-behaved agent keeps reporting.
    let before = collector.stored_seqs("ap-good").len();
    wait_for(WAIT, "more reports", || {
        (collector.stored_seqs("ap-good").len() >= before + 3).then_some(())
    });
    agent.stop();
    assert_contiguous(&collector.stored_seqs("ap-good"));
}
