//! Fleet actions end to end: the real collector sends WireGuard actions over the agent's mTLS
//! session, the real agent applies them with OpenWrt's real `uci` CLI (built from the C sources
//! in the libuci-sys crate by `scripts/build-uci`) on a fake router root, and the tests assert
//! the resulting `/etc/config/network`, the `wg`/`ifup` calls, the answers in the WireGuard
//! manager's shapes, and the audit trail in `/api/actions`.
//!
//! In the first tests `wg` and `ifup` are stand-ins (scripts that record their arguments and keep
//! the fake `wg show all dump` in step); the last test runs a real userspace WireGuard interface
//! (`wireguard-go` + `wg`) in network namespaces it creates, and passes traffic through a peer
//! added through the API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use routerstats_tests::harness::{
    http_exchange_within, uci_bin, wait_for, AgentSetup, Collector, RunningAgent,
};
use routerstats_tests::netns::{self, exchange, sh, Netns};
use serde_json::{json, Value};

/// One HTTP/1.1 request on loopback; (status, raw body). The body must not be chunked.
fn http_raw(addr: SocketAddr, method: &str, path: &str, key: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(k) = key {
        req.push_str(&format!("X-API-Key: {k}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, buf[end..].to_vec())
}

/// One HTTP/1.1 request on loopback, waiting up to 90 s (the action routes wait for routers);
/// (status, body as JSON, or as a string when it is not JSON).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
    let payload = body.map(|b| b.to_string());
    let (status, _, body) = http_exchange_within(
        addr,
        method,
        path,
        &auth,
        payload.as_deref(),
        Duration::from_secs(90),
    )
    .unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The fixture's wg0 public key (`wg show wg0 public-key` of the fake router).
const ROUTER_PUBLIC_KEY: &str = "3diIUq1AMjVtE+qeqAWHmcg5891wauoA14pyyLiq/tY=";

/// `MemTotal` and `DISTRIB_RELEASE` of the fake root's fixtures.
const FIXTURE_MEM_TOTAL_KB: u64 = 122_560;
const FIXTURE_RELEASE: &str = "23.05.3";

/// A collector, an admin key, and one enrolled router whose UCI config allows `allow`.
struct Bench {
    _dir: tempfile::TempDir,
    collector: Collector,
    admin: String,
    read: String,
    setup: AgentSetup,
    agent: Option<RunningAgent>,
    name: String,
}

impl Bench {
    fn new(name: &str, allow: &[&str], ifup_delay: u32) -> Bench {
        let uci = uci_bin();
        let dir = tempfile::tempdir().unwrap();
        let collector = Collector::start(&dir.path().join("collector"));
        let (admin, read) = (
            collector.api_key("admin", "t-admin"),
            collector.api_key("read", "t-read"),
        );
        let setup = AgentSetup::new(&dir.path().join(name), name);
        let root = setup.router.root.clone();
        if ifup_delay > 0 {
            write_exec(
                &root.join("bin/ifup"),
                &format!("#!/bin/sh\nsleep {ifup_delay}\necho \"$*\" >> \"$(dirname \"$0\")/../data/ifup.log\"\n"),
            );
        }
        let conf = setup
            .router
            .write_agent_config((!allow.is_empty()).then_some(uci.as_path()))
            .unwrap();
        assert!(
            allow.is_empty() || allow == ["all"],
            "the fake root allows every family or none"
        );
        let _ = conf;
        setup.enroll_at(&collector, name);
        let mut b = Bench {
            _dir: dir,
            collector,
            admin,
            read,
            setup,
            agent: None,
            name: name.to_string(),
        };
        b.start_agent();
        b
    }

    fn start_agent(&mut self) {
        let conf = self
            .setup
            .router
            .root
            .join("etc/config/routerstats")
            .display()
            .to_string();
        self.agent = Some(
            self.setup
                .run(self.collector.ingest, "1s", &["--config", &conf]),
        );
        self.collector
            .wait_for_reports(&self.name, 0, "the router's first report");
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        http(
            self.collector.api,
            "POST",
            path,
            Some(&self.admin),
            Some(&body),
        )
    }

    fn get(&self, path: &str) -> (u16, Value) {
        http(self.collector.api, "GET", path, Some(&self.admin), None)
    }

    fn root(&self) -> &Path {
        &self.setup.router.root
    }

    fn network(&self) -> String {
        std::fs::read_to_string(self.root().join("etc/config/network")).unwrap()
    }

    fn read_log(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap_or_default()
    }

    fn agent_log(&self) -> String {
        self.agent.as_ref().map(|a| a.log()).unwrap_or_default()
    }
}

#[test]
fn add_peer_writes_uci_and_answers_in_the_managers_shape_then_delete_and_reload() {
    let b = Bench::new("ap-wg", &["all"], 0);
    let before = b.network();
    let (status, body) = b.post("/add-peer", json!({"name": "laptop-alice", "router": "ap-wg", "endpoint": "192.0.2.1", "dns": "10.77.0.1"}));
    assert_eq!(status, 200, "{body}\n{}", b.agent_log());
    assert_eq!(body["message"], "Peer laptop-alice created successfully");
    assert_eq!(body["peer_name"], "laptop-alice");
    // The fixture's wg0 is 10.77.0.1/24 with peers on .2, .3, .4 and .10: the next free is .5.
    assert_eq!(body["ip_address"], "10.77.0.5");
    assert_eq!(body["config_file"], "laptop-alice.conf");
    assert_eq!(body["directory"], "laptop-alice");
    let peer_key = body["public_key"].as_str().unwrap().to_string();
    assert_eq!(peer_key.len(), 44);

    // The real uci wrote a named section and kept everything else.
    let net = b.network();
    let section = format!(
        "config wireguard_wg0 'rs_laptop_alice'\n\toption description 'laptop-alice'\n\toption public_key '{peer_key}'\n\tlist allowed_ips '10.77.0.5/32'\n"
    );
    assert!(net.contains(&section), "{net}");
    for kept in [
        "option description 'Alice laptop'",
        "config wireguard_wg0 'carol'",
        "list allowed_ips '192.168.51.0/24'",
        "config interface 'wg1'",
    ] {
        assert!(
            before.contains(kept) && net.contains(kept),
            "{kept} lost:\n{net}"
        );
    }
    // Applied to the running interface with an argument vector.
    assert!(b
        .read_log("data/wg/calls.log")
        .contains(&format!("set wg0 peer {peer_key} allowed-ips 10.77.0.5/32")));

    // The client configuration: admin only, 0600 on the collector, with the router's key.
    let conf_path = b
        .collector
        .data_dir
        .join("wireguard/1/laptop-alice/laptop-alice.conf");
    assert_eq!(
        std::fs::metadata(&conf_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (status, peer) = wait_for(Duration::from_secs(20), "the new peer in a report", || {
        let (s, v) = b.get("/peer/laptop-alice");
        (s == 200).then_some((s, v))
    });
    assert_eq!(status, 200);
    let conf = peer["config"].as_str().unwrap_or_else(|| panic!("{peer}"));
    assert!(conf.starts_with("[Interface]\nPrivateKey = "), "{conf}");
    for line in [
        "Address = 10.77.0.5/32",
        "DNS = 10.77.0.1",
        &format!("PublicKey = {ROUTER_PUBLIC_KEY}"),
        "Endpoint = 192.0.2.1:51820",
        "AllowedIPs = 10.77.0.0/24",
    ] {
        assert!(conf.contains(line), "{line} missing:\n{conf}");
    }
    assert_eq!(peer["public_key"], peer_key.as_str());
    let (status, as_reader) = http(
        b.collector.api,
        "GET",
        "/peer/laptop-alice",
        Some(&b.read),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        as_reader["config"].is_null(),
        "a read key got the private config"
    );
    let (status, svg) = b.get("/peer/laptop-alice/qr");
    assert_eq!(status, 200);
    assert!(svg.as_str().unwrap_or_default().contains("<svg"), "{svg}");
    assert_eq!(
        http(
            b.collector.api,
            "GET",
            "/peer/laptop-alice/qr",
            Some(&b.read),
            None
        )
        .0,
        403
    );
    // The private key is in no log and not in the database.
    let private = conf
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .unwrap();
    assert!(!b.collector.log().contains(private) && !b.agent_log().contains(private));
    let db = std::fs::read(b.collector.data_dir.join("routerstats.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(private));

    // The same name again: the router refuses, the document's 400, nothing changes.
    let net = b.network();
    let (status, body) = b.post(
        "/add-peer",
        json!({"name": "laptop-alice", "router": "ap-wg"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("already exists"),
        "{body}"
    );
    assert_eq!(b.network(), net);

    let (status, body) = b.post("/reload-wireguard", json!({"router": "ap-wg"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(b.read_log("data/ifup.log"), "wg0\n");

    let (status, body) = http(
        b.collector.api,
        "DELETE",
        "/peer/laptop-alice",
        Some(&b.admin),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Peer laptop-alice deleted successfully");
    let net = b.network();
    assert!(
        !net.contains("rs_laptop_alice") && !net.contains(&peer_key),
        "{net}"
    );
    assert!(net.contains("config wireguard_wg0 'carol'"));
    assert!(b
        .read_log("data/wg/calls.log")
        .contains(&format!("set wg0 peer {peer_key} remove")));
    assert!(!conf_path.exists(), "the client config outlived its peer");
    let (status, body) = http(
        b.collector.api,
        "DELETE",
        "/peer/laptop-alice?router=ap-wg",
        Some(&b.admin),
        None,
    );
    assert_eq!(status, 404, "{body}");

    // The audit trail, newest first, admin only.
    let (status, list) = b.get("/api/actions?router=ap-wg");
    assert_eq!(status, 200);
    let kinds: Vec<(&str, &str)> = list["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("wg_delete_peer", "failed"),
            ("wg_delete_peer", "done"),
            ("wg_reload", "done"),
            ("wg_add_peer", "failed"),
            ("wg_add_peer", "done")
        ]
    );
    assert!(list["actions"][4]["requested_by"]
        .as_str()
        .unwrap()
        .starts_with("key:"));
    assert_eq!(
        http(b.collector.api, "GET", "/api/actions", Some(&b.read), None).0,
        403
    );
    assert_eq!(
        http(b.collector.api, "GET", "/api/actions", None, None).0,
        401
    );
}

/// `GET /api/mikrotik/devices/{name}/config`: the OpenVPN client profile of the device's newest
/// backup, secrets redacted, admin only; a clear 404 before any backup and for a missing profile.
#[test]
fn device_config_is_the_newest_backups_client_profile_redacted() {
    let b = Bench::new("ap-cfg", &["all"], 0);
    let path = "/api/mikrotik/devices/ap-cfg/config";
    let (status, body) = b.get(path);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no backup of ap-cfg"),
        "{body}"
    );
    let dir = b.root().join("etc/openvpn");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ap-cfg.ovpn"),
        "client\ndev tun\nremote vpn.example.net 1194\n<ca>\nTHE-CA\n</ca>\n<key>\nTHE-PRIVATE-KEY\n</key>\n<tls-crypt>\nTHE-STATIC-KEY\n</tls-crypt>\n",
    )
    .unwrap();
    std::fs::write(dir.join("server.conf"), "server 10.8.0.0 255.255.255.0\n").unwrap();
    let (status, made) = b.post("/api/mikrotik/backup/create?device=ap-cfg", json!({}));
    assert_eq!(status, 200, "{made}\n{}", b.agent_log());
    let (status, bytes) = http_raw(b.collector.api, "GET", path, Some(&b.admin));
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.starts_with("client\ndev tun\nremote vpn.example.net 1194\n"),
        "{text}"
    );
    assert!(text.contains("THE-CA"), "{text}");
    assert!(
        !text.contains("THE-PRIVATE-KEY") && !text.contains("THE-STATIC-KEY"),
        "{text}"
    );
    assert!(
        text.contains("<key>\n# redacted by routerstats: a secret\n</key>"),
        "{text}"
    );
    // Read keys get the group's 403; an unknown profile and device are 404s.
    let (status, body) = http(b.collector.api, "GET", path, Some(&b.read), None);
    assert_eq!((status, &body["success"]), (403, &json!(false)), "{body}");
    assert!(body["timestamp"].is_string(), "{body}");
    let (status, body) = b.get(&format!("{path}?profile=nope"));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("ap-cfg"), "{body}");
    let (status, body) = b.get("/api/mikrotik/devices/nope/config");
    assert_eq!((status, &body["success"]), (404, &json!(false)), "{body}");
}

#[test]
fn backups_are_made_checked_stored_listed_and_downloaded() {
    let b = Bench::new("ap-bak", &["all"], 0);
    let (status, body) = b.post("/api/mikrotik/backup/create", json!({}));
    assert_eq!(status, 200, "{body}\n{}", b.agent_log());
    assert_eq!(body["success"], true);
    let backup = &body["data"]["backup"];
    let (id, size, sha) = (
        backup["id"].as_i64().unwrap(),
        backup["size"].as_u64().unwrap(),
        backup["sha256"].as_str().unwrap().to_string(),
    );
    assert!(size > 0 && backup["available"] == true, "{body}");
    // The VPN API's route makes one too, for a named device.
    let (status, body) = b.post("/api/vpn/server/backup?device=ap-bak", json!({}));
    assert_eq!(status, 200, "{body}");
    let (_, list) = b.get("/api/backups?router=ap-bak");
    assert_eq!(list["count"], 2, "{list}");

    let (status, bytes) = http_raw(
        b.collector.api,
        "GET",
        &format!("/api/backups/{id}"),
        Some(&b.admin),
    );
    assert_eq!(status, 200);
    assert_eq!(bytes.len() as u64, size);
    let file = b.root().join("downloaded.tar.gz");
    std::fs::write(&file, &bytes).unwrap();
    let sum = Command::new("sha256sum").arg(&file).output().unwrap();
    assert!(
        String::from_utf8_lossy(&sum.stdout).starts_with(&sha),
        "checksum differs"
    );
    let listing = Command::new("tar").arg("-tzf").arg(&file).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("etc/config/network") && listing.contains("etc/config/routerstats"),
        "{listing}"
    );
    // The archive is stored 0600 and its bytes are not in the database.
    let stored = b.collector.data_dir.join(format!("backups/1/{id}.tar.gz"));
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (_, action) = b.get(&format!("/api/actions/{id}"));
    assert_eq!(action["result"]["Backup"]["data"], json!([]), "{action}");
    // The archive never stays on the router.
    assert!(!std::fs::read_dir(b.root().join("tmp")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("backup")));
    // A fresh status, in the middleware's shape; its RouterOS credentials are ignored.
    let (status, body) = b.post(
        "/api/mikrotik/devices/ap-bak/status",
        json!({"username": "admin", "password": "secret", "host": "192.168.1.100", "port": 8728}),
    );
    assert_eq!(status, 200, "{body}");
    let res = &body["data"]["system_resources"];
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["device_name"], "ap-bak");
    assert_eq!(
        res["total_memory"],
        (FIXTURE_MEM_TOTAL_KB * 1024).to_string(),
        "{body}"
    );
    assert_eq!(res["version"], FIXTURE_RELEASE, "{body}");
    assert_eq!(res["uptime"], "3d19h22m5s", "{body}"); // the fixture's /proc/uptime
                                                       // The fake /proc/stat does not move during the 250 ms sample: no CPU figure, said as null.
    assert!(res["cpu_load"].is_null(), "{body}");
    assert!(!b.collector.log().contains("secret"));
    // Beside the fresh look, from the newest report: the interfaces and the associated users
    // (the fixture's wlan0/wlan1/mesh0 stations), as the document's status shows them.
    let d = &body["data"];
    let ifaces = d["interface_stats"].as_array().expect("interface_stats");
    assert!(
        ifaces
            .iter()
            .any(|i| i["name"] == "wlan0" && i["rx_bytes"].is_number()),
        "{body}"
    );
    let users = d["active_users"].as_array().expect("active_users");
    assert_eq!(
        d["active_users_count"].as_u64(),
        Some(users.len() as u64),
        "{body}"
    );
    assert!(
        !users.is_empty() && users.iter().all(|u| u["mac_address"].is_string()),
        "{body}"
    );
    let (status, body) = b.post("/api/mikrotik/devices/nope/status", json!({}));
    assert_eq!(status, 404);
    // The ISP group's error envelope, from the shared actions code too.
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["timestamp"].is_string() && body["error"].is_string(),
        "{body}"
    );
    // Admin only.
    assert_eq!(
        http_raw(
            b.collector.api,
            "GET",
            &format!("/api/backups/{id}"),
            Some(&b.read)
        )
        .0,
        403
    );
    assert_eq!(
        http_raw(b.collector.api, "GET", "/api/backups/999", Some(&b.admin)).0,
        404
    );
}

#[test]
fn refused_invalid_unknown_and_revoked() {
    let b = Bench::new("ap-closed", &[], 0);
    // Not allowed by the router: refused with the reason, nothing written.
    let net = b.network();
    let (status, body) = b.post("/add-peer", json!({"name": "phone", "router": "ap-closed"}));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("list allow_actions 'wireguard'"),
        "{body}"
    );
    assert_eq!(b.network(), net);
    assert!(
        !b.root().join("tmp/uci").exists()
            || std::fs::read_dir(b.root().join("tmp/uci")).unwrap().count() == 0
    );

    // Shell metacharacters and oversized names never reach the router (nor the database).
    for name in [
        "x; reboot",
        "$(id)",
        "a`b`",
        "-rf",
        "x\ny",
        &"a".repeat(1000),
    ] {
        let (status, body) = b.post("/add-peer", json!({"name": name, "router": "ap-closed"}));
        assert_eq!(status, 400, "{name:?}: {body}");
    }
    let (status, body) = b.post(
        "/api/actions",
        json!({"router": "ap-closed", "action": {"format_disk": {}}}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = b.post(
        "/api/actions",
        json!({"router": "ap-closed", "action": {"wg_reload": {"interface": "wg0 && reboot"}}}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = b.post(
        "/api/actions",
        json!({"router": "nope", "action": {"wg_reload": {"interface": "wg0"}}}),
    );
    assert_eq!(status, 404, "{body}");
    let (_, list) = b.get("/api/actions");
    assert_eq!(list["count"], 1, "{list}");

    // Idempotency: the same key returns the first action.
    let body = json!({"router": "ap-closed", "action": {"wg_reload": {"interface": "wg0"}}, "idempotency_key": "k1"});
    let (s1, a1) = b.post("/api/actions", body.clone());
    let (s2, a2) = b.post("/api/actions", body);
    assert_eq!((s1, s2), (201, 200), "{a1} {a2}");
    assert_eq!(a1["id"], a2["id"]);

    let (status, body) = b.post("/api/mikrotik/devices/ap-closed/status", json!({}));
    assert_eq!(status, 409, "{body}");
    // Backups are a family of their own.
    let (status, body) = b.post("/api/mikrotik/backup/create?device=ap-closed", json!({}));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("list allow_actions 'backup'"),
        "{body}"
    );

    // A revoked router: stored as refused with the reason, never sent.
    b.collector.cli_ok(&["router", "revoke", "ap-closed"]);
    let (status, body) = b.post(
        "/api/actions",
        json!({"router": "ap-closed", "action": {"wg_reload": {"interface": "wg0"}}}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["action"]["state"], "refused");
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
}

#[test]
fn an_offline_router_gets_its_action_on_reconnect_and_an_expired_one_never() {
    let mut b = Bench::new("ap-away", &["all"], 0);
    b.agent.as_mut().unwrap().stop();
    let (status, body) = b.post(
        "/add-peer?wait=0",
        json!({"name": "tablet", "router": "ap-away"}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["action_id"].as_i64().unwrap();
    // Queued (or sent to a connection the collector had not yet seen close: sent again later).
    let state = b.get(&format!("/api/actions/{id}")).1["state"].clone();
    assert!(state == "queued" || state == "sent", "{state}");
    let (status, body) = b.post(
        "/api/actions",
        json!({"router": "ap-away", "action": {"wg_reload": {"interface": "wg0"}}, "ttl": "1s"}),
    );
    assert_eq!(status, 201, "{body}");
    let short = body["id"].as_i64().unwrap();
    let (_, body) = b.get(&format!("/api/actions/{short}?wait=5"));
    assert_eq!(body["state"], "expired", "{body}");

    b.start_agent();
    let (status, body) = b.get(&format!("/api/actions/{id}?wait=30"));
    assert_eq!(status, 200);
    assert_eq!(body["state"], "done", "{body}\n{}", b.agent_log());
    assert_eq!(body["result"]["WgPeer"]["address"], "10.77.0.5/32");
    assert!(b.network().contains("config wireguard_wg0 'rs_tablet'"));
    // The expired reload never reached the router.
    std::thread::sleep(Duration::from_millis(500));
    assert!(b.read_log("data/ifup.log").is_empty());
    assert!(
        !b.agent_log().contains(&format!("action {short} (")),
        "{}",
        b.agent_log()
    );
    assert_eq!(
        b.get(&format!("/api/actions/{short}")).1["state"],
        "expired"
    );
}

#[test]
fn collector_killed_mid_action_then_agent_killed_mid_action_nothing_runs_twice() {
    let mut b = Bench::new("ap-crash", &["all"], 3);
    // The collector dies (kill -9) while the router runs a slow reload.
    let (status, body) = b.post("/reload-wireguard?wait=0", json!({"router": "ap-crash"}));
    assert_eq!(status, 202, "{body}");
    let id = body["action_id"].as_i64().unwrap();
    wait_for(
        Duration::from_secs(10),
        "the agent to start the action",
        || {
            b.agent_log()
                .contains(&format!("running action {id}"))
                .then_some(())
        },
    );
    b.collector.restart();
    let (status, body) = b.get(&format!("/api/actions/{id}?wait=40"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "done", "{body}\n{}", b.agent_log());
    assert_eq!(b.read_log("data/ifup.log"), "wg0\n", "ran more than once");
    // The result was stored before the collector acknowledged anything: it survives another kill.
    b.collector.restart();
    assert_eq!(b.get(&format!("/api/actions/{id}")).1["state"], "done");

    // The agent dies (kill -9) while running one: after its restart the journal says it started,
    // so it is answered failed and not run again.
    let (_, body) = b.post("/reload-wireguard?wait=0", json!({"router": "ap-crash"}));
    let id2 = body["action_id"].as_i64().unwrap();
    wait_for(
        Duration::from_secs(20),
        "the agent to start the second action",
        || {
            b.agent_log()
                .contains(&format!("running action {id2}"))
                .then_some(())
        },
    );
    drop(b.agent.take()); // SIGKILL
    std::thread::sleep(Duration::from_secs(4)); // the orphaned ifup finishes: one run
    b.start_agent();
    let (_, body) = b.get(&format!("/api/actions/{id2}?wait=40"));
    assert_eq!(body["state"], "failed", "{body}\n{}", b.agent_log());
    assert!(
        body["output"].as_str().unwrap().contains("not run again"),
        "{body}"
    );
    assert_eq!(b.read_log("data/ifup.log"), "wg0\nwg0\n");
}

/// The real WireGuard proof: the router side is a real userspace WireGuard interface
/// (`wireguard-go` + `wg`) in a network namespace; the agent adds a peer through the real `uci`
/// and `wg set`; the returned client configuration, used with `wg` in a second namespace,
/// completes a handshake and passes TCP traffic; deleting the peer stops it.
/// Needs root, `ip`, `wireguard-go`, `wg` and `python3` (scripts/test installs them);
/// `ROUTERSTATS_SKIP_NETNS=1` skips it on machines without them (and says so).
#[test]
fn a_peer_added_through_the_api_passes_traffic_over_real_wireguard() {
    if netns::skipped() {
        return;
    }
    netns::require_tools(
        &["ip", "wireguard-go", "wg", "python3"],
        "wireguard-go and wireguard-tools",
    );
    let tag = netns::tag();
    let (srv_if, cli_if) = (format!("rs{tag}s"), format!("rs{tag}c"));
    let mut net = Netns::new();
    let (srv_ns, cli_ns) = net.server_and_client("rs", "192.168.77");

    // The router's WireGuard interface: 10.99.0.1/24, port 51820.
    let dir = tempfile::tempdir().unwrap();
    net.wireguard_go(&srv_ns, &srv_if);
    let key = dir.path().join("server.key");
    std::fs::write(&key, sh(&["wg", "genkey"])).unwrap();
    sh(&[
        "wg",
        "set",
        &srv_if,
        "private-key",
        key.to_str().unwrap(),
        "listen-port",
        "51820",
    ]);
    sh(&[
        "ip",
        "-n",
        &srv_ns,
        "addr",
        "add",
        "10.99.0.1/24",
        "dev",
        &srv_if,
    ]);
    sh(&["ip", "-n", &srv_ns, "link", "set", &srv_if, "up"]);
    net.echo_server(&srv_ns, "10.99.0.1", 7777);

    // The agent's router: UCI knows the interface; `wg` is the real one (its UAPI socket is
    // reachable from the host namespace).
    let b = Bench::new("ap-real", &["all"], 0);
    std::fs::write(
        b.root().join("etc/config/network"),
        format!("config interface '{srv_if}'\n\toption proto 'wireguard'\n\toption listen_port '51820'\n\tlist addresses '10.99.0.1/24'\n"),
    )
    .unwrap();
    write_exec(&b.root().join("bin/wg"), "#!/bin/sh\nexec wg \"$@\"\n");

    let (status, body) = b.post("/add-peer", json!({"name": "phone", "router": "ap-real", "interface": srv_if, "endpoint": "192.168.77.1"}));
    assert_eq!(status, 200, "{body}\n{}", b.agent_log());
    assert_eq!(body["ip_address"], "10.99.0.2");
    let peer_key = body["public_key"].as_str().unwrap().to_string();
    assert!(
        sh(&["wg", "show", &srv_if, "allowed-ips"]).contains(&format!("{peer_key}\t10.99.0.2/32"))
    );
    assert!(b.network().contains("config wireguard_"));

    let (_, peer) = wait_for(Duration::from_secs(20), "the new peer in a report", || {
        let (s, v) = b.get("/peer/phone");
        (s == 200).then_some((s, v))
    });
    let conf = peer["config"]
        .as_str()
        .unwrap_or_else(|| panic!("{peer}"))
        .to_string();
    let server_public = sh(&["wg", "show", &srv_if, "public-key"])
        .trim()
        .to_string();
    assert!(
        conf.contains(&format!("PublicKey = {server_public}")),
        "{conf}"
    );

    // The phone: the .conf's keys and peer in `wg setconf` form (Address/DNS are wg-quick's).
    net.wireguard_go(&cli_ns, &cli_if);
    let setconf: String = conf
        .lines()
        .filter(|l| !l.starts_with("Address") && !l.starts_with("DNS"))
        .map(|l| format!("{l}\n"))
        .collect();
    let address = conf
        .lines()
        .find_map(|l| l.strip_prefix("Address = "))
        .unwrap()
        .to_string();
    let conf_path = dir.path().join("phone.conf");
    std::fs::write(&conf_path, setconf).unwrap();
    sh(&["wg", "setconf", &cli_if, conf_path.to_str().unwrap()]);
    sh(&["ip", "-n", &cli_ns, "addr", "add", &address, "dev", &cli_if]);
    sh(&["ip", "-n", &cli_ns, "link", "set", &cli_if, "up"]);
    sh(&[
        "ip",
        "-n",
        &cli_ns,
        "route",
        "add",
        "10.99.0.0/24",
        "dev",
        &cli_if,
    ]);

    let echoed = wait_for(
        Duration::from_secs(30),
        "traffic through the tunnel",
        || exchange(&cli_ns, "10.99.0.1", 7777, "hello through wireguard").ok(),
    );
    assert_eq!(echoed, "hello through wireguard");
    let handshakes = sh(&["wg", "show", &srv_if, "latest-handshakes"]);
    let when: u64 = handshakes
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{peer_key}\t")))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    assert!(when > 0, "no handshake recorded: {handshakes}");

    // Delete: gone from UCI and from the running interface; the tunnel no longer passes traffic.
    let (status, body) = http(
        b.collector.api,
        "DELETE",
        "/peer/phone",
        Some(&b.admin),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(!sh(&["wg", "show", &srv_if, "peers"]).contains(&peer_key));
    assert!(!b.network().contains(&peer_key));
    let after = exchange(&cli_ns, "10.99.0.1", 7777, "hello through wireguard");
    assert!(
        after.is_err(),
        "traffic still passes after the delete: {after:?}"
    );
}
