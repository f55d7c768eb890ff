//! OpenVPN client management end to end, with real parts only: a real `openvpn` server (with a
//! management socket, `crl-verify` and an inline `tls-crypt` key) and a real `easy-rsa` PKI in a
//! network namespace this test creates; the real collector sends `openvpn` actions over the real
//! agent's mTLS session; the `.ovpn` that `POST /api/vpn/clients/create` issues connects a real
//! `openvpn` client from a second namespace over a veth pair (userspace tun, /dev/net/tun); the
//! agent's report lists it connected; `disconnect` drops it; after `revoke` the same `.ovpn` is
//! rejected by the server's CRL.
//!
//! Needs root, `ip`, `openvpn`, easy-rsa (`easyrsa` on PATH or Debian's
//! /usr/share/easy-rsa/easyrsa) and /dev/net/tun (scripts/test installs openvpn and easy-rsa);
//! `ROUTERSTATS_SKIP_NETNS=1` skips it on machines without them (and says so).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use routerstats_tests::easyrsa;
use routerstats_tests::harness::{
    api_call as call, http_request, wait_for, AgentSetup, Collector, RunningAgent,
};
use routerstats_tests::netns::{self, exchange, sh, Netns};
use serde_json::{json, Value};

/// Asserts the middleware's error shape and that the message contains `needle`.
fn assert_error(r: &(u16, Value, String), status: u16, needle: &str) {
    assert_eq!(r.0, status, "{}", r.2);
    assert_eq!(r.1["success"], false, "{}", r.2);
    assert!(r.1["timestamp"].is_string(), "{}", r.2);
    let err = r.1["error"].as_str().unwrap_or_default();
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

/// A `openvpn` client in `ns` with `conf`, its log in `log`; a restart request (the server
/// dropped it, or refused it) ends the process instead of reconnecting.
fn start_client(ns: &str, conf: &Path, log: &Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "openvpn", "--config"])
        .arg(conf)
        .args([
            "--remap-usr1",
            "SIGTERM",
            "--connect-retry-max",
            "1",
            "--log",
        ])
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the openvpn client")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The common names the collector lists as connected.
fn connected(api: std::net::SocketAddr, key: &str) -> Vec<String> {
    let (_, v, _) = call(api, "GET", "/api/vpn/clients/connected", key, None);
    v["connected_clients"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["common_name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_client_issued_through_the_api_connects_is_disconnected_and_after_revoke_is_refused() {
    if netns::skipped() {
        return;
    }
    netns::require_tools(&["ip", "openvpn"], "openvpn");
    let tool = easyrsa::required();
    assert!(
        Path::new("/dev/net/tun").exists(),
        "no /dev/net/tun: OpenVPN needs a tun device"
    );

    let mut net = Netns::new();
    let (srv_ns, cli_ns) = net.server_and_client("ov", "192.168.78");

    // The router: a collector-enrolled agent whose OpenVPN server is real.
    let dir = tempfile::tempdir().unwrap();
    // This test sends more creates than the document's 10 per hour (bad inputs included).
    let collector = Collector::start_with_config(
        &dir.path().join("collector"),
        "[isp_rate_limits.routes]\n\"POST /api/vpn/clients/create\" = 100\n",
    );
    let (admin, reader) = (
        collector.api_key("admin", "t-admin"),
        collector.api_key("read", "t-read"),
    );
    let setup = AgentSetup::new(&dir.path().join("ap-vpn"), "ap-vpn");
    let root = setup.router.root.clone();
    // Only this server's status file (not the fixtures) in the status directory.
    let status_dir = root.join("var/run/openvpn");
    for e in std::fs::read_dir(&status_dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let srv = dir.path().join("server");
    std::fs::create_dir_all(&srv).unwrap();
    let pki = srv.join("pki");
    easyrsa::server_pki(&tool, &pki, "routerstats-test-ca");
    let ta = srv.join("ta.key");
    sh(&["openvpn", "--genkey", "secret", ta.to_str().unwrap()]);
    let ta_text = read(&ta);
    let ta_secret_line = ta_text
        .lines()
        .find(|l| l.len() == 32 && !l.starts_with('#'))
        .unwrap()
        .to_string();
    let mgmt = srv.join("mgmt.sock");
    let server_log = srv.join("openvpn.log");
    std::fs::write(
        srv.join("server.conf"),
        format!(
            "port 1194\nproto udp\ndev tun\ntopology subnet\nserver 10.88.0.0 255.255.255.0\nca pki/ca.crt\ncert pki/issued/server.crt\nkey pki/private/server.key\ndh none\ncrl-verify pki/crl.pem\nmanagement {} unix\nstatus {} 1\nstatus-version 2\nlog-append {}\nkeepalive 1 4\nverb 3\n<tls-crypt>\n{}</tls-crypt>\n",
            mgmt.display(),
            status_dir.join("server.status").display(),
            server_log.display(),
            ta_text.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect::<String>(),
        ),
    )
    .unwrap();
    let conf_path = root.join("etc/config/routerstats");
    std::fs::write(
        &conf_path,
        format!(
            "config agent 'main'\n\tlist allow_actions 'openvpn'\n\toption openvpn_config '{}'\n\toption easyrsa '{}'\n\toption easyrsa_pki '{}'\n\toption openvpn_remote '192.168.78.1'\n",
            srv.join("server.conf").display(),
            tool.display(),
            pki.display()
        ),
    )
    .unwrap();
    net.keep(
        Command::new("ip")
            .args(["netns", "exec", &srv_ns, "openvpn", "--cd"])
            .arg(&srv)
            .args(["--config", "server.conf"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the openvpn server"),
    );
    wait_for(Duration::from_secs(15), "the OpenVPN server", || {
        read(&server_log)
            .contains("Initialization Sequence Completed")
            .then_some(())
    });
    assert!(mgmt.exists());

    setup.enroll_at(&collector, "ap-vpn");
    let conf_arg = conf_path.display().to_string();
    let mut agent: RunningAgent = setup.run(collector.ingest, "1s", &["--config", &conf_arg]);
    collector.wait_for_reports("ap-vpn", 0, "the router's first report");
    let api = collector.api;

    // A second router with the family allowed but no OpenVPN installed.
    let plain = AgentSetup::new(&dir.path().join("ap-plain"), "ap-plain");
    let plain_conf = plain.router.root.join("etc/config/routerstats");
    std::fs::write(
        &plain_conf,
        format!(
            "config agent 'main'\n\tlist allow_actions 'openvpn'\n\toption openvpn_config '{}'\n\toption easyrsa '{}'\n\toption easyrsa_pki '{}'\n",
            plain.router.root.join("etc/openvpn/server.conf").display(),
            plain.router.root.join("usr/bin/easyrsa").display(),
            plain.router.root.join("etc/easy-rsa/pki").display(),
        ),
    )
    .unwrap();
    plain.enroll_at(&collector, "ap-plain");
    // Not connected yet: a read is refused at once, nothing queued.
    assert_error(
        &call(
            api,
            "GET",
            "/api/vpn/server/config?device=ap-plain",
            &reader,
            None,
        ),
        409,
        "not connected",
    );
    let plain_arg = plain_conf.display().to_string();
    let _plain_agent = plain.run(collector.ingest, "1s", &["--config", &plain_arg]);
    collector.wait_for_reports("ap-plain", 0, "the second router's first report");

    // Server information (read key), keys redacted.
    let r = call(
        api,
        "GET",
        "/api/vpn/server/config?device=ap-vpn",
        &reader,
        None,
    );
    assert_eq!(r.0, 200, "{}\n{}", r.2, agent.log());
    assert!(
        !r.2.contains(&ta_secret_line),
        "the tls-crypt key leaked: {}",
        r.2
    );
    let lines: Vec<&str> = r.1["data"]["config"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        lines.contains(&"crl-verify pki/crl.pem") && lines.contains(&"[redacted]"),
        "{lines:?}"
    );
    let r = call(
        api,
        "GET",
        "/api/vpn/server/ip?device=ap-vpn",
        &reader,
        None,
    );
    assert_eq!(
        (
            r.1["data"]["server_ip"].as_str(),
            r.1["data"]["port"].as_u64()
        ),
        (Some("192.168.78.1"), Some(1194)),
        "{}",
        r.2
    );
    let r = call(
        api,
        "GET",
        "/api/vpn/client/template?device=ap-vpn",
        &reader,
        None,
    );
    let template = r.1["data"]["template"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        template.starts_with("client\ndev tun\nproto udp\nremote 192.168.78.1 1194\n"),
        "{}",
        r.2
    );
    let r = call(
        api,
        "GET",
        "/api/vpn/server/logs?device=ap-vpn&lines=3",
        &reader,
        None,
    );
    assert_eq!(r.0, 200, "{}", r.2);
    let logs = r.1["data"]["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 3, "{}", r.2);
    assert!(
        read(&server_log)
            .trim_end()
            .ends_with(logs[2].as_str().unwrap()),
        "{}",
        r.2
    );
    assert_error(
        &call(
            api,
            "GET",
            "/api/vpn/server/logs?device=ap-vpn&lines=1001",
            &reader,
            None,
        ),
        400,
        "lines",
    );
    assert_error(
        &call(api, "GET", "/api/vpn/server/logs?lines=5", &reader, None),
        400,
        "device",
    );
    assert_error(
        &call(
            api,
            "GET",
            "/api/vpn/server/config?device=nope",
            &reader,
            None,
        ),
        404,
        "nope",
    );
    // No key: 401 before the query is even looked at.
    assert_eq!(
        http_request(api, "GET", "/api/vpn/server/logs?lines=abc", &[], None)
            .unwrap()
            .0,
        401
    );

    // Bad input, refused before any action exists.
    let create =
        |body: Value, key: &str| call(api, "POST", "/api/vpn/clients/create", key, Some(&body));
    for bad in ["a;reboot", "../etc", "$(id)", "a b", "x'y", ""] {
        assert_error(
            &create(json!({"client_name": bad, "device_name": "ap-vpn"}), &admin),
            400,
            "client name",
        );
    }
    assert_error(
        &create(
            json!({"client_name": "alice", "email": "not an email", "device_name": "ap-vpn"}),
            &admin,
        ),
        400,
        "email",
    );
    assert_error(
        &create(json!({"name": "alice", "device_name": "ap-vpn"}), &admin),
        400,
        "bad body",
    );
    // The optional body of revoke and disconnect: `null` is no body (so, with two routers, the
    // router must be named); JSON that is not the object is a 400 in the envelope (axum's bare
    // 422 before).
    for verb in ["revoke", "disconnect"] {
        let path = format!("/api/vpn/clients/alice/{verb}");
        assert_error(
            &call(api, "POST", &path, &admin, Some(&Value::Null)),
            400,
            "give the router",
        );
        assert_error(
            &call(
                api,
                "POST",
                &path,
                &admin,
                Some(&json!({"device_name": 42})),
            ),
            400,
            "device_name",
        );
    }
    assert_eq!(
        create(
            json!({"client_name": "alice", "device_name": "ap-vpn"}),
            &reader
        )
        .0,
        403
    );
    let r = call(
        api,
        "GET",
        "/api/actions?router=ap-vpn&kind=ovpn_create_client",
        &admin,
        None,
    );
    assert_eq!(r.1["count"], 0, "{}", r.2);
    // The router without OpenVPN: a clear reason, nothing made.
    assert_error(
        &create(
            json!({"client_name": "alice", "device_name": "ap-plain"}),
            &admin,
        ),
        409,
        "no OpenVPN server config",
    );

    // Issue alice.
    let r = create(
        json!({"client_name": "alice", "email": "alice@example.com", "device_name": "ap-vpn"}),
        &admin,
    );
    assert_eq!(r.0, 201, "{}\n{}", r.2, agent.log());
    let d = &r.1["data"];
    assert_eq!(
        (
            d["client_name"].as_str(),
            d["email"].as_str(),
            d["device_name"].as_str()
        ),
        (Some("alice"), Some("alice@example.com"), Some("ap-vpn"))
    );
    assert!(
        d["serial"].as_str().is_some_and(|s| !s.is_empty())
            && d["expires_at"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{}",
        r.2
    );
    assert!(read(&pki.join("index.txt")).contains("/CN=alice"));
    assert_error(
        &create(
            json!({"client_name": "alice", "device_name": "ap-vpn"}),
            &admin,
        ),
        400,
        "already exists",
    );

    // The .ovpn: admin only, a 0600 file on the collector, in no log, row or audit answer.
    assert_eq!(
        call(api, "GET", "/api/vpn/clients/alice/config", &reader, None).0,
        403
    );
    let (status, ovpn) = http_request(
        api,
        "GET",
        "/api/vpn/clients/alice/config",
        &[("X-API-Key", &admin)],
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{ovpn}");
    for part in [
        "<ca>",
        "<cert>",
        "<key>",
        "-----BEGIN PRIVATE KEY-----",
        "<tls-crypt>",
        "remote 192.168.78.1 1194",
    ] {
        assert!(ovpn.contains(part), "{part} missing from\n{ovpn}");
    }
    let key_line = ovpn
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY"))
        .nth(1)
        .unwrap()
        .to_string();
    let stored = wait_for(Duration::from_secs(5), "the stored .ovpn", || {
        let dir = collector.data_dir.join("openvpn");
        std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("alice.ovpn"))
            .find(|p| p.exists())
    });
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&stored).unwrap().permissions())
            & 0o777,
        0o600
    );
    let audit = call(api, "GET", "/api/actions?router=ap-vpn", &admin, None).2;
    let db_dump: String = collector
        .db()
        .prepare("SELECT coalesce(result, '') || coalesce(output, '') || params FROM actions")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let journal: String = std::fs::read_dir(&setup.config_dir)
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    for (what, text) in [
        ("audit", audit),
        ("database", db_dump),
        ("collector log", collector.log()),
        ("agent log", agent.log()),
        ("agent state", journal),
    ] {
        assert!(
            !text.contains(&key_line) && !text.contains(&ta_secret_line),
            "the client's key is in the {what}"
        );
    }

    // The .ovpn connects a real client; the agent reports it.
    let client_conf = dir.path().join("alice.ovpn");
    std::fs::write(&client_conf, &ovpn).unwrap();
    let client_log = dir.path().join("client.log");
    let mut client = start_client(&cli_ns, &client_conf, &client_log);
    wait_for(Duration::from_secs(30), "the client's tunnel", || {
        read(&client_log)
            .contains("Initialization Sequence Completed")
            .then_some(())
    });
    // Traffic through the tunnel: a TCP echo on the server's tunnel address.
    net.echo_server(&srv_ns, "10.88.0.1", 7777);
    let echoed = wait_for(
        Duration::from_secs(10),
        "traffic through the tunnel",
        || exchange(&cli_ns, "10.88.0.1", 7777, "hello through openvpn").ok(),
    );
    assert_eq!(echoed, "hello through openvpn");
    wait_for(
        Duration::from_secs(20),
        "alice in the router's report",
        || {
            connected(api, &reader)
                .contains(&"alice".to_string())
                .then_some(())
        },
    );

    // Disconnect: the server ends the session (the client's restart ends its process).
    let r = call(
        api,
        "POST",
        "/api/vpn/clients/alice/disconnect",
        &admin,
        Some(&json!({"device_name": "ap-vpn"})),
    );
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(
        r.1["data"]["message"],
        "Client alice disconnected successfully"
    );
    assert!(read(&server_log).contains("MANAGEMENT: CMD 'kill alice'"));
    wait_for(
        Duration::from_secs(20),
        "alice gone from the router's report",
        || (!connected(api, &reader).contains(&"alice".to_string())).then_some(()),
    );
    wait_for(
        Duration::from_secs(30),
        "the dropped client to stop",
        || client.try_wait().ok().flatten(),
    );
    assert_error(
        &call(
            api,
            "POST",
            "/api/vpn/clients/alice/disconnect",
            &admin,
            Some(&json!({"device_name": "ap-vpn"})),
        ),
        404,
        "not connected",
    );

    // Revoke: CRL made and read by the server; the stored .ovpn goes; the same .ovpn is refused.
    let r = call(
        api,
        "POST",
        "/api/vpn/clients/alice/revoke",
        &admin,
        Some(&json!({"device_name": "ap-vpn"})),
    );
    assert_eq!(r.0, 200, "{}\n{}", r.2, agent.log());
    assert!(read(&pki.join("index.txt"))
        .lines()
        .any(|l| l.starts_with('R') && l.ends_with("/CN=alice")));
    assert_error(
        &call(api, "GET", "/api/vpn/clients/alice/config", &admin, None),
        404,
        "no configuration",
    );
    assert_error(
        &call(
            api,
            "POST",
            "/api/vpn/clients/alice/revoke",
            &admin,
            Some(&json!({"device_name": "ap-vpn"})),
        ),
        404,
        "no client named alice",
    );
    assert_error(
        &call(
            api,
            "POST",
            "/api/vpn/clients/nobody/revoke",
            &admin,
            Some(&json!({"device_name": "ap-vpn"})),
        ),
        404,
        "no client named nobody",
    );
    let before = read(&server_log).len();
    let retry_log = dir.path().join("client-retry.log");
    let mut retry = start_client(&cli_ns, &client_conf, &retry_log);
    wait_for(
        Duration::from_secs(30),
        "the server to refuse the revoked certificate",
        || {
            read(&server_log)[before..]
                .contains("certificate revoked")
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !read(&retry_log).contains("Initialization Sequence Completed"),
        "a revoked client connected:\n{}",
        read(&retry_log)
    );
    let _ = retry.kill();
    let _ = retry.wait();
    agent.stop();
}
