//! Bandwidth limits and anti-sharing end to end, measured on real traffic.
//!
//! Three network namespaces this test creates, joined by veth pairs: a client (10.66.1.2), a
//! router (LAN 10.66.1.1, WAN 10.66.2.1, forwarding, NAT on the WAN) and a server (10.66.2.2)
//! running `iperf3 -s`. The real collector sends the ISP middleware's throttle, queue and
//! anti-sharing requests as fleet actions over mTLS to the real agent binary, whose `tc` and
//! `nft` are the real tools run inside the router namespace (`ip netns exec <router> tc ...`: the
//! agent itself stays in the host namespace to reach the collector on loopback), and whose UCI
//! changes are made by OpenWrt's real `uci` CLI on a fake root. `iperf3` then measures the
//! client's download and upload through the router.
//!
//! Needs root, `ip`, `tc`, `nft`, `iperf3` and `ping` (scripts/test installs iperf3);
//! `ROUTERSTATS_SKIP_NETNS=1` skips it on machines without them (and says so).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use routerstats_tests::harness::{
    http_request, uci_bin, wait_for, AgentSetup, Collector, RunningAgent,
};
use routerstats_tests::netns::{self, sh, sh_in, Netns};
use serde_json::{json, Value};

/// The throttle the issue measures: 5 Mbit/s down, 2 up.
const DOWN_MBPS: f64 = 5.0;
const UP_MBPS: f64 = 2.0;
const CLIENT_MAC: &str = "02:00:00:66:01:02";

/// The namespaces and the iperf3 server, removed on drop.
struct Lab {
    client: String,
    router: String,
    server: String,
    lan: String,
    wan: String,
    net: Netns,
}

impl Lab {
    fn new() -> Lab {
        let tag = netns::tag();
        let mut lab = Lab {
            client: format!("rs{tag}cl"),
            router: format!("rs{tag}rt"),
            server: format!("rs{tag}sv"),
            lan: format!("rs{tag}lan"),
            wan: format!("rs{tag}wan"),
            net: Netns::new(),
        };
        for ns in [&lab.client, &lab.router, &lab.server] {
            lab.net.add(ns);
        }
        let (cl_if, sv_if) = (format!("rs{tag}c0"), format!("rs{tag}s0"));
        lab.net.veth(
            (&lab.router, &lab.lan, "10.66.1.1/24"),
            (&lab.client, &cl_if, "10.66.1.2/24"),
        );
        lab.net.veth(
            (&lab.router, &lab.wan, "10.66.2.1/24"),
            (&lab.server, &sv_if, "10.66.2.2/24"),
        );
        sh(&[
            "ip",
            "-n",
            &lab.client,
            "link",
            "set",
            &cl_if,
            "address",
            CLIENT_MAC,
        ]);
        sh(&[
            "ip",
            "-n",
            &lab.client,
            "route",
            "add",
            "default",
            "via",
            "10.66.1.1",
        ]);
        sh_in(&lab.router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // NAT on the WAN, as on a real router: the server has no route back to the LAN, so only
        // masqueraded traffic works, and upload marks must survive the address rewrite.
        let nat = format!(
            "table ip labnat {{\n\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\toifname \"{}\" masquerade\n\t}}\n}}\n",
            lab.wan
        );
        let dir = std::env::temp_dir().join(format!("{}-nat.nft", lab.router));
        std::fs::write(&dir, nat).unwrap();
        sh_in(&lab.router, &["nft", "-f", dir.to_str().unwrap()]);
        let _ = std::fs::remove_file(dir);
        lab
    }

    fn start_iperf_server(&mut self) {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.server,
                "iperf3",
                "-s",
                "-B",
                "10.66.2.2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iperf3 -s");
        self.net.keep(child);
    }

    fn in_router(&self, args: &[&str]) -> String {
        sh_in(&self.router, args)
    }

    /// Mbit/s the client receives (`reverse`: download) or sends (upload), as the receiving
    /// side counts it, over 5 s after a 1 s warm-up that is not counted.
    fn iperf(&self, reverse: bool) -> f64 {
        let mut args = vec![
            "netns",
            "exec",
            &self.client,
            "iperf3",
            "-c",
            "10.66.2.2",
            "-t",
            "5",
            "-O",
            "1",
            "-J",
        ];
        if reverse {
            args.push("-R");
        }
        let out = wait_for(Duration::from_secs(20), "an iperf3 run", || {
            let o = Command::new("ip").args(&args).output().ok()?;
            o.status.success().then_some(o.stdout)
        });
        let v: Value = serde_json::from_slice(&out).expect("iperf3 -J output");
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or_else(|| panic!("no received rate in {v}"))
            / 1e6
    }

    /// The TTL of the replies the client gets to a ping of the server.
    fn reply_ttl(&self) -> String {
        let out = sh_in(&self.client, &["ping", "-c", "1", "-W", "2", "10.66.2.2"]);
        out.split_whitespace()
            .find_map(|w| w.strip_prefix("ttl="))
            .unwrap_or_else(|| panic!("no ttl in {out}"))
            .to_string()
    }
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Bench {
    _dir: tempfile::TempDir,
    collector: Collector,
    admin: String,
    setup: AgentSetup,
    agent: Option<RunningAgent>,
    name: String,
    conf: PathBuf,
    /// The fake root's `config agent` section, as the harness wrote it.
    agent_section: String,
}

impl Bench {
    fn post(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let (s, b) = http_request(
            self.collector.api,
            method,
            path,
            &[("X-API-Key", &self.admin)],
            Some(&body.to_string()),
        )
        .unwrap();
        (s, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }

    fn get(&self, path: &str) -> Value {
        let (_, b) = http_request(
            self.collector.api,
            "GET",
            path,
            &[("X-API-Key", &self.admin)],
            None,
        )
        .unwrap();
        serde_json::from_str(&b).unwrap_or(Value::Null)
    }

    fn uci_file(&self) -> String {
        std::fs::read_to_string(&self.conf).unwrap()
    }

    /// (Re)starts the agent reporting every `interval`, its UCI section being the fake root's
    /// plus `extra` (allow lists, tools); the sections `uci` wrote after it are kept.
    fn start_agent(&mut self, extra: &str, interval: &str) {
        if let Some(mut a) = self.agent.take() {
            a.stop();
        }
        let text = std::fs::read_to_string(&self.conf).unwrap();
        let rest = text[1..]
            .find("\nconfig ")
            .map(|i| &text[i + 2..])
            .unwrap_or("");
        let extra: String = extra.lines().map(|l| format!("\t{l}\n")).collect();
        std::fs::write(&self.conf, format!("{}{extra}\n{rest}", self.agent_section)).unwrap();
        let conf = self.conf.display().to_string();
        self.agent = Some(
            self.setup
                .run(self.collector.ingest, interval, &["--config", &conf]),
        );
        let n = self.collector.stored_seqs(&self.name).len();
        self.collector
            .wait_for_reports(&self.name, n, "a report from the agent");
    }

    fn agent_log(&self) -> String {
        self.agent.as_ref().map(|a| a.log()).unwrap_or_default()
    }
}

fn setup(lab: &Lab, name: &str) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let admin = collector.api_key("admin", "t-admin");
    let setup = AgentSetup::new(&dir.path().join(name), name);
    let root = setup.router.root.clone();
    // The client's lease, and `tc`/`nft` that run inside the router namespace.
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    std::fs::write(
        root.join("tmp/dhcp.leases"),
        format!("{expiry} {CLIENT_MAC} 10.66.1.2 iperf-client 01:{CLIENT_MAC}\n"),
    )
    .unwrap();
    for tool in ["tc", "nft"] {
        write_exec(
            &root.join(format!("bin/{tool}")),
            &format!(
                "#!/bin/sh\nexec ip netns exec {} {tool} \"$@\"\n",
                lab.router
            ),
        );
    }
    let conf = setup.router.write_agent_config(Some(&uci_bin())).unwrap();
    setup.enroll_at(&collector, name);
    // The harness allows every family; this test turns `limits` and `anti_sharing` on itself.
    let agent_section: String = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.contains("allow_actions 'limits'") && !l.contains("allow_actions 'anti_sharing'")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    Bench {
        _dir: dir,
        collector,
        admin,
        setup,
        agent: None,
        name: name.to_string(),
        conf,
        agent_section,
    }
}

fn tools_extra(b: &Bench, lab: &Lab, allow: &[&str]) -> String {
    let root = &b.setup.router.root;
    let mut s: String = allow
        .iter()
        .map(|f| format!("list allow_actions '{f}'\n"))
        .collect();
    s.push_str(&format!(
        "option tc '{}'\noption nft '{}'\noption limits_lan_device '{}'\noption limits_wan_device '{}'\n",
        root.join("bin/tc").display(),
        root.join("bin/nft").display(),
        lab.lan,
        lab.wan
    ));
    s
}

fn assert_err(r: &(u16, Value), status: u16, needle: &str) {
    assert_eq!(r.0, status, "{}", r.1);
    assert_eq!(r.1["success"], false, "{}", r.1);
    assert!(r.1["timestamp"].is_string(), "{}", r.1);
    let e = r.1["error"].as_str().unwrap_or_default();
    assert!(e.contains(needle), "{needle:?} not in {:?}", r.1);
}

#[test]
fn a_throttle_shapes_real_traffic_and_removing_it_restores_the_rate() {
    if netns::skipped() {
        return;
    }
    netns::require_tools(&["ip", "tc", "nft", "iperf3", "ping"], "iperf3");
    let mut lab = Lab::new();
    lab.start_iperf_server();
    let mut b = setup(&lab, "ap-shape");

    // Not allowed yet: refused with the line to add, nothing written.
    b.start_agent(&tools_extra(&b, &lab, &[]), "1s");
    let before = b.uci_file();
    wait_for(
        Duration::from_secs(20),
        "the client's lease at the collector",
        || {
            let n: i64 = b
                .collector
                .db()
                .query_row(
                    "SELECT count(*) FROM leases WHERE hostname = 'iperf-client'",
                    [],
                    |r| r.get(0),
                )
                .ok()?;
            (n > 0).then_some(())
        },
    );
    let throttle = json!({"username": "iperf-client", "download_speed": DOWN_MBPS, "upload_speed": UP_MBPS, "device_name": "ap-shape"});
    let r = b.post(
        "POST",
        "/api/bandwidth/management/throttle?wait=8",
        throttle.clone(),
    );
    assert_err(&r, 409, "list allow_actions 'limits'");
    assert_eq!(b.uci_file(), before);

    b.start_agent(&tools_extra(&b, &lab, &["limits", "anti_sharing"]), "1s");
    let down0 = lab.iperf(true);
    let up0 = lab.iperf(false);
    println!("unshaped: download {down0:.1} Mbit/s, upload {up0:.1} Mbit/s");

    // Throttle 5/2: the document's body, the envelope back, UCI written by the real uci.
    let r = b.post(
        "POST",
        "/api/bandwidth/management/throttle?wait=8",
        throttle.clone(),
    );
    assert_eq!(r.0, 200, "{}\n{}", r.1, b.agent_log());
    assert_eq!(r.1["success"], true);
    assert_eq!(r.1["data"]["username"], "iperf-client");
    assert_eq!(r.1["data"]["mac_address"], CLIENT_MAC);
    assert_eq!(r.1["data"]["ip_address"], "10.66.1.2");
    assert_eq!(r.1["data"]["download_speed"], 5.0);
    let uci = b.uci_file();
    let section = format!(
        "config limit 'rs_limit_iperf_client'\n\toption user 'iperf-client'\n\toption mac '{CLIENT_MAC}'\n\toption ip '10.66.1.2'\n\toption throttle_download_kbit '5000'\n\toption throttle_upload_kbit '2000'\n"
    );
    assert!(uci.contains(&section), "{uci}");
    assert!(uci.contains("config agent 'main'"), "{uci}");
    let classes = lab.in_router(&["tc", "class", "show", "dev", &lab.lan]);
    assert!(
        classes.contains("class htb 5253:10") && classes.contains("rate 5Mbit"),
        "{classes}"
    );

    let down = lab.iperf(true);
    let up = lab.iperf(false);
    println!(
        "throttled {DOWN_MBPS}/{UP_MBPS}: download {down:.2} Mbit/s ({:.0}% of the limit), upload {up:.2} Mbit/s ({:.0}%)",
        100.0 * down / DOWN_MBPS,
        100.0 * up / UP_MBPS
    );
    assert!(
        down <= 1.10 * DOWN_MBPS,
        "download {down} over 110% of {DOWN_MBPS}"
    );
    assert!(up <= 1.10 * UP_MBPS, "upload {up} over 110% of {UP_MBPS}");
    // Shaped, not cut: traffic still flows at a good part of the limit.
    assert!(
        down >= 0.5 * DOWN_MBPS && up >= 0.5 * UP_MBPS,
        "{down} {up}"
    );

    // A reboot loses tc and nftables state: the agent applies UCI again when it starts.
    lab.in_router(&["nft", "delete", "table", "inet", "routerstats"]);
    lab.in_router(&["tc", "qdisc", "del", "dev", &lab.lan, "root"]);
    lab.in_router(&["tc", "qdisc", "del", "dev", &lab.wan, "root"]);
    // And the WAN device comes up after the agent: the first attempt fails, a later one works.
    let late = format!("{}x", lab.wan);
    lab.in_router(&["ip", "link", "set", &lab.wan, "name", &late]);
    // From here on the agent reports once (at start): the collector keeps the lease it saw.
    b.start_agent(&tools_extra(&b, &lab, &["limits", "anti_sharing"]), "1h");
    assert!(
        b.agent_log()
            .contains("cannot restore limits from UCI (attempt 1)"),
        "{}",
        b.agent_log()
    );
    lab.in_router(&["ip", "link", "set", &late, "name", &lab.wan]);
    wait_for(
        Duration::from_secs(40),
        "the restore's next attempt",
        || {
            b.agent_log()
                .contains("restored from UCI: 1 limit(s)")
                .then_some(())
        },
    );
    let classes = lab.in_router(&["tc", "class", "show", "dev", &lab.wan]);
    assert!(classes.contains("rate 2Mbit"), "{classes}");
    let ruleset = lab.in_router(&["nft", "list", "table", "inet", "routerstats"]);
    assert!(
        ruleset.contains("ip saddr 10.66.1.2 meta priority set 5253:10"),
        "{ruleset}"
    );

    // Remove the throttle: UCI section and qdiscs gone, the unshaped rate is back.
    let r = b.post(
        "POST",
        "/api/bandwidth/management/remove-throttle?wait=8",
        json!({"username": "iperf-client", "device_name": "ap-shape"}),
    );
    assert_eq!(r.0, 200, "{}\n{}", r.1, b.agent_log());
    assert!(!b.uci_file().contains("config limit"), "{}", b.uci_file());
    assert!(!lab
        .in_router(&["tc", "qdisc", "show", "dev", &lab.lan])
        .contains("htb"));
    let down2 = lab.iperf(true);
    let up2 = lab.iperf(false);
    println!("after remove-throttle: download {down2:.1} Mbit/s, upload {up2:.1} Mbit/s");
    assert!(
        down2 > 3.0 * DOWN_MBPS && up2 > 3.0 * UP_MBPS,
        "not restored: {down2} {up2}"
    );
    let r = b.post(
        "POST",
        "/api/bandwidth/management/remove-throttle?wait=8",
        json!({"username": "iperf-client", "device_name": "ap-shape"}),
    );
    assert_err(&r, 404, "has no throttle");

    // Queues: one mechanism with the throttle; duplicates and updates of nothing are refused.
    let queue = |d: f64, u: f64| json!({"username": "iperf-client", "package_info": {"download_speed": d, "upload_speed": u}, "device_name": "ap-shape"});
    let r = b.post(
        "PUT",
        "/api/mikrotik/users/queue/update?wait=8",
        queue(20.0, 10.0),
    );
    assert_err(&r, 404, "no queue to update");
    let r = b.post(
        "POST",
        "/api/mikrotik/users/queue/create?wait=8",
        queue(10.0, 5.0),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let r = b.post(
        "POST",
        "/api/mikrotik/users/queue/create?wait=8",
        queue(10.0, 5.0),
    );
    assert_err(&r, 400, "already has a queue");
    let r = b.post("PUT", "/api/mikrotik/users/queue/update?wait=8", json!({"username": "iperf-client", "package_info": {"download_speed": 20, "upload_speed": 10}}));
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["data"]["device_name"], "ap-shape");
    let classes = lab.in_router(&["tc", "class", "show", "dev", &lab.lan]);
    assert!(classes.contains("rate 20Mbit"), "{classes}");

    // Nothing half-applied: the WAN device vanishes, the throttle fails, UCI is unchanged and the
    // queue's class is applied again on the LAN.
    let uci = b.uci_file();
    let gone = format!("{}x", lab.wan);
    lab.in_router(&["ip", "link", "set", &lab.wan, "name", &gone]);
    let r = b.post(
        "POST",
        "/api/bandwidth/management/throttle?wait=8",
        throttle.clone(),
    );
    assert_err(&r, 404, "not on this router");
    assert!(
        r.1["error"]
            .as_str()
            .unwrap()
            .contains("the previous limits were applied again")
            || r.1["error"]
                .as_str()
                .unwrap()
                .contains("applying the previous limits again failed"),
        "{}",
        r.1
    );
    assert_eq!(b.uci_file(), uci);
    let classes = lab.in_router(&["tc", "class", "show", "dev", &lab.lan]);
    assert!(
        classes.contains("rate 20Mbit") && !classes.contains("rate 5Mbit"),
        "{classes}"
    );
    lab.in_router(&["ip", "link", "set", &gone, "name", &lab.wan]);

    // Bad input: each a clear answer in the document's error shape.
    let bad = |body: Value| b.post("POST", "/api/bandwidth/management/throttle?wait=8", body);
    assert_err(
        &bad(
            json!({"username": "iperf-client", "download_speed": 0, "upload_speed": 2, "device_name": "ap-shape"}),
        ),
        400,
        "download_speed",
    );
    assert_err(
        &bad(
            json!({"username": "iperf-client", "download_speed": 5, "upload_speed": -2, "device_name": "ap-shape"}),
        ),
        400,
        "upload_speed",
    );
    assert_err(
        &bad(
            json!({"username": "iperf-client", "download_speed": 1e9, "upload_speed": 2, "device_name": "ap-shape"}),
        ),
        400,
        "at most 10000",
    );
    assert_err(
        &bad(json!({"username": "x; reboot", "download_speed": 5, "upload_speed": 2})),
        400,
        "username",
    );
    assert_err(
        &bad(json!({"username": "$(id)", "download_speed": 5, "upload_speed": 2})),
        400,
        "username",
    );
    assert_err(
        &bad(json!({"username": "nobody-here", "download_speed": 5, "upload_speed": 2})),
        404,
        "unknown user",
    );
    assert_err(
        &bad(
            json!({"username": "iperf-client", "download_speed": 5, "upload_speed": 2, "device_name": "nope"}),
        ),
        404,
        "unknown device",
    );
    let (s, body) = http_request(
        b.collector.api,
        "POST",
        "/api/bandwidth/management/throttle",
        &[("X-API-Key", &b.admin)],
        Some("{not json"),
    )
    .unwrap();
    assert_eq!(s, 400, "{body}");
    // A host the collector knows but the router no longer leases: the router says so.
    std::fs::write(b.setup.router.root.join("tmp/dhcp.leases"), "").unwrap();
    let r = b.post(
        "POST",
        "/api/bandwidth/management/throttle?wait=8",
        throttle.clone(),
    );
    assert_err(&r, 404, "not on this router");
    assert_eq!(b.uci_file(), uci);

    // Anti-sharing: replies forwarded to the client leave the router with TTL 1.
    assert_eq!(lab.reply_ttl(), "63");
    let r = b.post(
        "POST",
        "/api/mikrotik/anti-sharing/enable?wait=8",
        json!({"interface": lab.lan, "device_name": "ap-shape"}),
    );
    assert_eq!(r.0, 200, "{}\n{}", r.1, b.agent_log());
    assert_eq!(lab.reply_ttl(), "1");
    assert!(b
        .uci_file()
        .contains(&format!("\toption interface '{}'\n", lab.lan)));
    let r = b.post(
        "POST",
        "/api/mikrotik/anti-sharing/enable?wait=8",
        json!({"interface": lab.lan, "device_name": "ap-shape"}),
    );
    assert_err(&r, 400, "already enabled");
    let r = b.post(
        "POST",
        "/api/mikrotik/anti-sharing/enable?wait=8",
        json!({"interface": "br-lan;reboot", "device_name": "ap-shape"}),
    );
    assert_err(&r, 400, "interface");
    let r = b.post(
        "POST",
        "/api/mikrotik/anti-sharing/enable?wait=8",
        json!({"interface": "nosuch0", "device_name": "ap-shape"}),
    );
    assert_err(&r, 404, "nosuch0");

    // Queue removal: the last layer gone, so is the section; the anti-sharing rule stays.
    let r = b.post(
        "POST",
        "/api/mikrotik/users/queue/remove?wait=8",
        json!({"username": "iperf-client", "device_name": "ap-shape"}),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    assert!(!b.uci_file().contains("config limit"));
    assert_eq!(lab.reply_ttl(), "1");

    // The audit trail.
    let list = b.get("/api/actions?router=ap-shape&limit=100");
    let kinds: Vec<String> = list["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["kind"].as_str().unwrap(),
                a["state"].as_str().unwrap()
            )
        })
        .collect();
    for k in [
        "limit_set:refused",
        "limit_set:done",
        "limit_remove:done",
        "limit_remove:failed",
        "limit_set:failed",
        "anti_sharing:done",
        "anti_sharing:failed",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} not in {kinds:?}");
    }
}
