//! Active probes end to end: a real `routerstats-agent` probes its default gateway (a fake
//! `/proc/net/route` whose default route leaves by `lo` through 127.0.0.1) and a configured
//! target in a network namespace this test creates (a veth pair; inside, nftables drops every
//! second echo request), reports over mutual TLS, and the collector serves the figures on
//! `/api/gateways`. Traffic goes only to loopback and to the namespace.
//!
//! Needs root (network namespaces, raw ICMP sockets), `ip` and `nft` (scripts/test installs
//! nftables); fails where they are missing, unless `ROUTERSTATS_SKIP_NETNS=1` skips it (and says
//! so), as for the other namespace test.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use routerstats_tests::bin_path;
use routerstats_tests::harness::{http_get, wait_for, AgentSetup, Collector};
use routerstats_tests::netns::{self, try_sh};

const WAIT: Duration = Duration::from_secs(60);

/// A namespace at the end of a veth pair: host side `10.231.<n>.1/30`, namespace side `.2`,
/// where every second echo request is dropped. Removed on drop.
struct LossyPeer {
    ns: String,
    host_if: String,
    host_addr: String,
    peer: String,
}

impl LossyPeer {
    fn create() -> Result<LossyPeer, String> {
        let n = std::process::id() % 250;
        let ns = format!("rsprobe{}", std::process::id());
        let (host_if, ns_if) = (format!("rsp{n}a"), format!("rsp{n}b"));
        let me = LossyPeer {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host_addr: format!("10.231.{n}.1"),
            peer: format!("10.231.{n}.2"),
        };
        try_sh(&["ip", "netns", "add", &ns])?;
        try_sh(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        try_sh(&["ip", "link", "set", &ns_if, "netns", &ns])?;
        try_sh(&[
            "ip",
            "addr",
            "add",
            &format!("10.231.{n}.1/30"),
            "dev",
            &host_if,
        ])?;
        try_sh(&["ip", "link", "set", &host_if, "up"])?;
        let inns = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", ns.as_str()];
            full.extend_from_slice(args);
            try_sh(&full)
        };
        inns(&[
            "ip",
            "addr",
            "add",
            &format!("10.231.{n}.2/30"),
            "dev",
            &ns_if,
        ])?;
        inns(&["ip", "link", "set", &ns_if, "up"])?;
        inns(&["ip", "link", "set", "lo", "up"])?;
        inns(&["nft", "add table inet lossy"])?;
        inns(&[
            "nft",
            "add chain inet lossy input { type filter hook input priority 0 ; }",
        ])?;
        inns(&[
            "nft",
            "add rule inet lossy input icmp type echo-request numgen inc mod 2 == 1 drop",
        ])?;
        Ok(me)
    }
}

impl Drop for LossyPeer {
    fn drop(&mut self) {
        let _ = try_sh(&["ip", "link", "del", &self.host_if]);
        let _ = try_sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// `/proc/net/route`'s spelling of an IPv4 address on this machine.
fn kernel_hex(a: [u8; 4]) -> String {
    format!("{:08X}", u32::from_ne_bytes(a))
}

fn get_json(api: SocketAddr, path: &str, key: &str) -> serde_json::Value {
    let (status, body) = http_get(api, path, &[("X-API-Key", key)]).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn probe_figures_reach_the_gateway_api() {
    if netns::skipped() {
        return;
    }
    let peer = LossyPeer::create().unwrap_or_else(|e| {
        panic!("cannot build the lossy network namespace: {e} (needs root, `ip` and `nft`; scripts/test installs nftables; ROUTERSTATS_SKIP_NETNS=1 skips this test)")
    });
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let token = collector.token("ap-probe", &[]);
    let setup = AgentSetup::new(&dir.path().join("agent"), "ap-probe");
    let root = &setup.router.root;
    // The default route leaves by the host side of the veth pair (so the WAN addresses are
    // its 10.231.n.1/30), through 127.0.0.1 (so the gateway answers every echo); the device is
    // added to the fake /proc/net/dev so that it is a port of the gateway API.
    std::fs::write(
        root.join("proc/net/route"),
        format!(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n{}\t00000000\t{}\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
            peer.host_if,
            kernel_hex([127, 0, 0, 1])
        ),
    )
    .unwrap();
    let mut dev = std::fs::read_to_string(root.join("proc/net/dev")).unwrap();
    dev.push_str(&format!(
        "{:>6}: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n",
        peer.host_if
    ));
    std::fs::write(root.join("proc/net/dev"), dev).unwrap();
    let conf = root.join("etc/config/routerstats-probes");
    std::fs::write(
        &conf,
        format!(
            "config agent 'main'\n\tlist probe_target 'lossy={}'\n\toption probe_count '4'\n\toption probe_interval '50ms'\n\toption probe_timeout '500ms'\n",
            peer.peer
        ),
    )
    .unwrap();
    let agent = |extra: &[&str]| {
        let mut c = Command::new(bin_path("routerstats-agent"));
        c.arg("--config")
            .arg(&conf)
            .args(setup.router.agent_args())
            .arg("--config-dir")
            .arg(&setup.config_dir);
        c.args(["--collector", &collector.ingest.to_string()])
            .args(extra);
        c
    };
    let out = agent(&["--token", &token, "enroll"]).output().unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = dir.path().join("agent.log");
    let mut child = agent(&["--interval", "1s", "--initial-delay", "0", "run"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("agent.err")).unwrap())
        .spawn()
        .unwrap();
    let db = collector.db();
    let rows = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap_or(0) };
    wait_for(WAIT, "3 reports with probes", || {
        (rows("SELECT count(DISTINCT ts_ms) FROM probe_samples") >= 3).then_some(())
    });
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();

    // Every cycle: 4 requests to each target; loopback answers all, the namespace every second.
    let per_target: Vec<(String, String, i64, i64, Option<i64>)> = {
        let mut st = db
            .prepare("SELECT target, role, sent, received, rtt_avg_us FROM probe_samples ORDER BY ts_ms, role")
            .unwrap();
        st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    assert!(per_target.len() >= 6, "{per_target:?}");
    for (target, role, sent, received, avg) in &per_target {
        assert_eq!(*sent, 4, "{target}");
        if role == "gateway" {
            assert_eq!((target.as_str(), *received), ("127.0.0.1", 4));
        } else {
            assert_eq!((target.as_str(), *received), (peer.peer.as_str(), 2));
        }
        assert!(
            avg.is_some_and(|us| us > 0 && us < 500_000),
            "{target}: {avg:?}"
        );
    }
    // WAN addresses: the addresses of the default route's device (its IPv6 link-local left out).
    let wan: Vec<String> = {
        let mut st = db
            .prepare("SELECT device || ' ' || addr FROM wan_addresses")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(wan, [format!("{} {}/30", peer.host_if, peer.host_addr)]);
    let status: String = db
        .query_row(
            "SELECT state FROM source_status WHERE kind = 'probe' AND name = ?1",
            [&peer.peer],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "ok");

    let key = collector.api_key("read", "probes");
    let v = get_json(collector.api, "/api/gateways?duration=15m", &key);
    let g = &v["data"][0];
    // 8 requests per cycle, 2 lost: 25%, whatever the number of cycles in the window.
    assert_eq!(g["packet_loss_percent"], serde_json::json!(25.0), "{g}");
    assert!(
        g["latency_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0 && ms < 500.0),
        "{g}"
    );
    assert!(
        g["probes_sent"]
            .as_i64()
            .is_some_and(|n| n >= 24 && n % 8 == 0),
        "{g}"
    );
    assert_eq!(g["ip"].as_str(), Some(peer.host_addr.as_str()));
    // The WAN port carries its address; the other ports none.
    let ports = g["ports"].as_array().unwrap();
    let wan_port = ports
        .iter()
        .find(|p| p["name"] == peer.host_if.as_str())
        .expect("WAN port");
    assert_eq!(
        (wan_port["ip"].as_str(), wan_port["netmask"].as_str()),
        (Some(peer.host_addr.as_str()), Some("/30"))
    );
    assert!(
        ports
            .iter()
            .filter(|p| p["name"] != peer.host_if.as_str())
            .all(|p| p["ip"].is_null()),
        "{g}"
    );

    // The dashboard's router page: one row per target, and the WAN addresses.
    let d = get_json(collector.api, "/api/routers/ap-probe?duration=15m", &key);
    let probes = d["probes"].as_array().unwrap();
    let row = |role: &str| {
        probes
            .iter()
            .find(|p| p["role"] == role)
            .unwrap_or_else(|| panic!("{role}: {d}"))
    };
    assert_eq!(
        (
            row("gateway")["target"].as_str(),
            row("gateway")["loss_percent"].as_f64()
        ),
        (Some("127.0.0.1"), Some(0.0))
    );
    assert_eq!(
        (
            row("target")["name"].as_str(),
            row("target")["loss_percent"].as_f64()
        ),
        (Some("lossy"), Some(50.0))
    );
    assert_eq!(
        d["wan_addresses"][0]["addr"].as_str(),
        Some(format!("{}/30", peer.host_addr).as_str())
    );
    // The ISP real-time series of the device: latency and loss per period, the NAS address.
    let v = get_json(
        collector.api,
        "/api/bandwidth/usage/real-time?device=ap-probe&minutes=5",
        &key,
    );
    let points = v["data"]["bandwidth_data"]
        .as_array()
        .or(v["bandwidth_data"].as_array())
        .unwrap_or_else(|| panic!("{v}"));
    assert!(!points.is_empty(), "{v}");
    for p in points {
        assert_eq!(p["nas_ip"].as_str(), Some(peer.host_addr.as_str()), "{p}");
        assert!(p["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{p}");
        assert_eq!(p["packet_loss_percent"].as_f64(), Some(25.0), "{p}");
    }
    // The ISP quality route: each station's latency is its router's probe latency.
    let v = get_json(
        collector.api,
        "/api/bandwidth/monitoring/quality?minutes=5",
        &key,
    );
    let stations = v["data"]["stations"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(!stations.is_empty(), "{v}");
    assert!(
        stations
            .iter()
            .all(|s| s["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0)),
        "{v}"
    );
}
