//! The ISP middleware's hotspot, PPPoE and bridge routes end to end: the real collector sends
//! the actions over the agent's mTLS session, the real agent applies them on a fake router root
//! with OpenWrt's real `uci` CLI (built from the libuci-sys sources by `scripts/build-uci`), and
//! the tests assert the files `uci` wrote (`network`, `dhcp`, `pppoe`, `opennds`), pppd's
//! secrets files, and the answers in the middleware's shapes.
//!
//! Stand-ins, said plainly: openNDS is not in Debian, so `ndsctl` is a script that records its
//! argument vector (the tests check the exact vector); the init scripts (`network reload`,
//! `opennds restart`, ...) record their calls too, as a router's would restart daemons.

use std::path::Path;
use std::time::Duration;

use routerstats_tests::harness::{
    api_call, http_request, uci_bin, wait_for, AgentSetup, Collector, RunningAgent,
};
use serde_json::{json, Value};

struct Bench {
    _dir: tempfile::TempDir,
    collector: Collector,
    admin: String,
    setup: AgentSetup,
    agent: RunningAgent,
}

impl Bench {
    fn new(name: &str) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let collector = Collector::start(&dir.path().join("collector"));
        let admin = collector.api_key("admin", "t-admin");
        let setup = AgentSetup::new(&dir.path().join(name), name);
        let conf = setup
            .router
            .write_agent_config(Some(uci_bin().as_path()))
            .unwrap();
        setup.enroll_at(&collector, name);
        let agent = setup.run(
            collector.ingest,
            "1s",
            &["--config", &conf.display().to_string()],
        );
        let c = &collector;
        wait_for(Duration::from_secs(30), "the router's leases", || {
            let n: i64 = c
                .db()
                .query_row("SELECT count(*) FROM leases", [], |r| r.get(0))
                .unwrap_or(0);
            (n > 0).then_some(())
        });
        Bench {
            _dir: dir,
            collector,
            admin,
            setup,
            agent,
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let key = [("X-API-Key", self.admin.as_str())];
        let b = body.map(|b| b.to_string());
        http_request(self.collector.api, method, path, &key, b.as_deref()).unwrap()
    }

    /// POSTs `body` to `/api/mikrotik/<route>?wait=8`; (status, JSON answer, raw text).
    fn post(&self, route: &str, body: Value) -> (u16, Value, String) {
        api_call(
            self.collector.api,
            "POST",
            &format!("/api/mikrotik/{route}?wait=8"),
            &self.admin,
            Some(&body),
        )
    }

    fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap_or_default()
    }

    fn root(&self) -> &Path {
        &self.setup.router.root
    }
}

/// The error shape of the document: `success: false`, an `error` text and a `timestamp`.
fn assert_error(status: u16, body: &Value, want_status: u16, want_text: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(body["timestamp"].is_string(), "{body}");
    let e = body["error"].as_str().unwrap_or_default();
    assert!(e.contains(want_text), "error {e:?} lacks {want_text:?}");
}

/// The UCI section `config <kind> '<name>'` of `text` with its lines, or "".
fn section(text: &str, head: &str) -> String {
    let Some(start) = text.find(head) else {
        return String::new();
    };
    let rest = &text[start..];
    rest[..rest[1..]
        .find("\nconfig ")
        .map(|i| i + 1)
        .unwrap_or(rest.len())]
        .to_string()
}

#[test]
fn bridges_pools_pppoe_and_hotspot_through_real_uci_with_errors_and_nothing_half_applied() {
    let b = Bench::new("isp-ap");

    // /network/setup, the document's body as written (MikroTik login fields ignored).
    let setup = json!({"username": "admin", "password": "mikrotik_password", "host": "192.168.1.1", "port": 8728,
        "ip_pool_range": "172.31.0.2-172.31.255.254", "network_address": "172.31.0.1/16"});
    let (status, body, _) = b.post("network/setup", setup.clone());
    assert_eq!(status, 200, "{body}\n{}", b.agent.log());
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["bridge_name"], "f2net_bridge");
    assert_eq!(body["data"]["pool_name"], "f2net_pool");
    let net = b.file("etc/config/network");
    let dev = section(&net, "config device 'rs_f2net_bridge'");
    for line in [
        "option name 'f2net_bridge'",
        "option type 'bridge'",
        "option bridge_empty '1'",
    ] {
        assert!(dev.contains(line), "{line} missing in:\n{net}");
    }
    let iface = section(&net, "config interface 'f2net_bridge'");
    for line in [
        "option device 'f2net_bridge'",
        "option proto 'static'",
        "option ipaddr '172.31.0.1/16'",
    ] {
        assert!(iface.contains(line), "{line} missing in:\n{net}");
    }
    // The fixture's own sections are still there.
    assert!(net.contains("config interface 'wg0'") && net.contains("option name 'br-lan'"));
    let dhcp = b.file("etc/config/dhcp");
    let pool = section(&dhcp, "config dhcp 'f2net_pool'");
    for line in [
        "option interface 'f2net_bridge'",
        "option start '2'",
        "option limit '65533'",
    ] {
        assert!(pool.contains(line), "{line} missing in:\n{dhcp}");
    }
    assert!(b
        .file("data/init.log")
        .contains("network reload\ndnsmasq reload\n"));

    // A second /network/setup: a duplicate, refused before anything changes.
    let (status, body, _) = b.post("network/setup", setup);
    assert_error(status, &body, 400, "already exists");
    assert_eq!(b.file("etc/config/network"), net);
    assert_eq!(b.file("etc/config/dhcp"), dhcp);
    let (status, body, _) = b.post(
        "network/setup",
        json!({"ip_pool_range": "10.9.0.1-10.9.0.9", "network_address": "10.9.0.1/24"}),
    );
    assert_error(status, &body, 400, "contains the router's own address");

    // /bridge/create with the document's body, then /bridge/add-port.
    let (status, body, _) = b.post("bridge/create", json!({"bridge_name": "bridge-local", "auto_mac": false, "admin_mac": "00:00:00:00:00:00", "device_name": "isp-ap"}));
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = b.post(
        "bridge/create",
        json!({"bridge_name": "bridge-mac", "auto_mac": false, "admin_mac": "02:AA:BB:CC:DD:EE"}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = b.post(
        "bridge/add-port",
        json!({"bridge_name": "bridge-local", "interface": "lan3", "device_name": "isp-ap"}),
    );
    assert_eq!(status, 200, "{body}");
    let net = b.file("etc/config/network");
    let dev = section(&net, "config device 'rs_bridge_local'");
    assert!(
        dev.contains("option name 'bridge-local'") && dev.contains("list ports 'lan3'"),
        "{net}"
    );
    assert!(
        !dev.contains("macaddr"),
        "the all-zero admin_mac sets no MAC:\n{dev}"
    );
    assert!(
        section(&net, "config device 'rs_bridge_mac'")
            .contains("option macaddr '02:aa:bb:cc:dd:ee'"),
        "{net}"
    );

    // Bad input: each a clear answer in the error shape, and the file as it was.
    let cases = [
        (
            "bridge/create",
            json!({"bridge_name": "bridge-local"}),
            400,
            "already exists",
        ),
        (
            "bridge/create",
            json!({"bridge_name": "br0;reboot"}),
            400,
            "interface names must be",
        ),
        (
            "bridge/create",
            json!({"bridge_name": "x'y"}),
            400,
            "interface names must be",
        ),
        (
            "bridge/create",
            json!({"bridge_name": "br.x", "device_name": "no-such-router"}),
            404,
            "no-such-router",
        ),
        (
            "bridge/add-port",
            json!({"bridge_name": "bridge-local", "interface": "ether2"}),
            404,
            "interface ether2 does not exist",
        ),
        (
            "bridge/add-port",
            json!({"bridge_name": "bridge-local", "interface": "lan1"}),
            400,
            "already a port of bridge br-lan",
        ),
        (
            "bridge/add-port",
            json!({"bridge_name": "no-bridge", "interface": "lan4"}),
            404,
            "bridge no-bridge does not exist",
        ),
        (
            "bridge/add-port",
            json!({"bridge_name": "bridge-local", "interface": "lan4 lan1"}),
            400,
            "interface names must be",
        ),
        (
            "bridge/add-port",
            json!({"bridge_name": "bridge-local"}),
            400,
            "bad body",
        ),
    ];
    for (route, body_in, want, text) in cases {
        let (status, body, _) = b.post(route, body_in.clone());
        assert_error(status, &body, want, text);
        assert_eq!(
            b.file("etc/config/network"),
            net,
            "{route} {body_in} changed the network file"
        );
    }

    // /pppoe/server/configure with the pool made above: rp-pppoe-server's UCI section.
    let (status, body, _) = b.post("pppoe/server/configure", json!({"interface": "bridge-local", "service_name": "service",
        "local_address": "172.31.0.1", "remote_address": "f2net_pool", "use_encryption": true,
        "authentication": "pap,chap,mschap1,mschap2", "keepalive_timeout": 60, "device_name": "isp-ap"}));
    assert_eq!(status, 200, "{body}");
    let pppoe = b.file("etc/config/pppoe");
    let s = section(&pppoe, "config pppoe_server 'rs_bridge_local'");
    for line in [
        "option interface 'bridge-local'",
        "option service_name 'service'",
        "option localip '172.31.0.1'",
        "option firstremoteip '172.31.0.2'",
        "option maxsessions '65533'",
        "option timeout '60'",
    ] {
        assert!(s.contains(line), "{line} missing in:\n{pppoe}");
    }
    assert!(b.file("data/init.log").contains("pppoe-server reload\n"));
    let (status, body, _) = b.post(
        "pppoe/server/configure",
        json!({"interface": "bridge-local", "service_name": "s",
        "local_address": "172.31.0.1", "remote_address": "hotspot-pool"}),
    );
    assert_error(
        status,
        &body,
        404,
        "address pool hotspot-pool does not exist",
    );

    // PPPoE secrets: in both files, the password in no answer, listing or log.
    let (status, body, text) = b.post(
        "pppoe/secret/create",
        json!({"username": "user123", "password": "s3cr.t-Pw",
        "package_info": {"download_speed": 10, "upload_speed": 5, "pppoe_profile": "default"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(!text.contains("s3cr.t-Pw"), "{text}");
    for f in ["etc/ppp/chap-secrets", "etc/ppp/pap-secrets"] {
        let t = b.file(f);
        assert!(
            t.starts_with("# Secrets for authentication")
                && t.ends_with("\"user123\" * \"s3cr.t-Pw\" *\n"),
            "{f}:\n{t}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(b.root().join(f)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let (_, listing) = b.send("GET", "/api/actions?kind=pppoe_secret_create", None);
    assert!(
        listing.contains("user123") && !listing.contains("s3cr.t-Pw"),
        "{listing}"
    );
    let stored: String = b
        .collector
        .db()
        .query_row("SELECT group_concat(params) FROM actions", [], |r| r.get(0))
        .unwrap();
    assert!(
        !stored.contains("s3cr.t-Pw"),
        "the database kept the password: {stored}"
    );
    assert!(!b.agent.log().contains("s3cr.t-Pw") && !b.collector.log().contains("s3cr.t-Pw"));
    let (status, body, _) = b.post(
        "pppoe/secret/create",
        json!({"username": "user123", "password": "other"}),
    );
    assert_error(status, &body, 400, "PPPoE user user123 already exists");
    let (status, body, text) = b.post(
        "pppoe/secret/create",
        json!({"username": "eve", "password": "a\"b c"}),
    );
    assert_error(status, &body, 400, "password must be");
    assert!(!text.contains("a\\\"b c"), "{text}");
    let (status, body, _) = b.post(
        "pppoe/secret/create",
        json!({"username": "$(reboot)", "password": "x"}),
    );
    assert_error(status, &body, 400, "username must be");
    let (status, body, _) = b.post("pppoe/secret/remove", json!({"username": "user123"}));
    assert_eq!(status, 200, "{body}");
    for f in ["etc/ppp/chap-secrets", "etc/ppp/pap-secrets"] {
        assert!(
            !b.file(f).contains("user123") && b.file(f).starts_with("# Secrets"),
            "{f}"
        );
    }
    let (status, body, _) = b.post("pppoe/secret/remove", json!({"username": "user123"}));
    assert_error(status, &body, 404, "PPPoE user user123 does not exist");

    // The hotspot server: openNDS's UCI section, then a restart.
    let (status, body, _) = b.post("hotspot/server/configure", json!({"interface": "bridge-local", "hotspot_name": "hotspot1",
        "address_pool": "f2net_pool", "profile": "hotspot-profile", "addresses_per_mac": 1, "idle_timeout": "none",
        "keepalive_timeout": "2m", "device_name": "isp-ap"}));
    assert_eq!(status, 200, "{body}");
    let nds = b.file("etc/config/opennds");
    for line in [
        "option enabled '1'",
        "option gatewayinterface 'bridge-local'",
        "option gatewayname 'hotspot1'",
        "option authidletimeout '0'",
    ] {
        assert!(nds.contains(line), "{line} missing in:\n{nds}");
    }
    assert!(b.file("data/init.log").contains("opennds restart\n"));
    let (status, body, _) = b.post(
        "hotspot/server/configure",
        json!({"interface": "bridge-local", "hotspot_name": "h",
        "address_pool": "nope", "idle_timeout": "5x"}),
    );
    assert_error(status, &body, 400, "idle_timeout must be");

    // Authorize a client leased on the router (fixture lease a4:83:e7:2b:91:0c = 192.168.1.142):
    // the exact ndsctl vector, rates in kbit/s, session timeout and quotas left to openNDS.
    let (status, body, _) = b.post("hotspot/authorize", json!({"username": "user123", "mac_address": "A4:83:E7:2B:91:0C",
        "ip_address": "192.168.1.142", "package_info": {"download_speed": 10, "upload_speed": 5, "hotspot_profile": "default"}}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["router"], "isp-ap");
    assert_eq!(
        b.file("data/ndsctl.log"),
        "auth\ta4:83:e7:2b:91:0c\t\t5000\t10000\t\t\tuser123\n"
    );
    let bad = [
        (
            json!({"username": "u", "mac_address": "02:00:00:00:00:99", "package_info": {"download_speed": 1, "upload_speed": 1}}),
            404,
            "is not on any router",
        ),
        (
            json!({"username": "u", "mac_address": "a4:83:e7:2b:91:0c", "ip_address": "192.168.1.9", "package_info": {"download_speed": 1, "upload_speed": 1}}),
            400,
            "is not the address of",
        ),
        (
            json!({"username": "u", "mac_address": "a4:83:e7:2b:91:0c", "package_info": {"download_speed": 0, "upload_speed": 1}}),
            400,
            "download_speed must be a number of Mbit/s greater than 0",
        ),
        (
            json!({"username": "u", "mac_address": "a4:83:e7:2b:91:0c", "package_info": {"download_speed": -5, "upload_speed": 1}}),
            400,
            "download_speed must be a number of Mbit/s greater than 0",
        ),
        (
            json!({"username": "u", "mac_address": "a4:83:e7:2b:91:0c", "package_info": {"download_speed": 1, "upload_speed": 1e12}}),
            400,
            "upload_speed must be a number of Mbit/s greater than 0",
        ),
        (
            json!({"username": "u;id", "mac_address": "a4:83:e7:2b:91:0c", "package_info": {"download_speed": 1, "upload_speed": 1}}),
            400,
            "username must be",
        ),
        (
            json!({"username": "u", "mac_address": "not-a-mac", "package_info": {"download_speed": 1, "upload_speed": 1}}),
            400,
            "mac_address must look like",
        ),
    ];
    for (body_in, want, text) in bad {
        let (status, body, _) = b.post("hotspot/authorize", body_in);
        assert_error(status, &body, want, text);
    }
    let (status, body, _) = b.post("hotspot/deauthorize", json!({"username": "user123"}));
    assert_eq!(status, 200, "{body}");
    assert!(b
        .file("data/ndsctl.log")
        .ends_with("deauth\ta4:83:e7:2b:91:0c\n"));
    let (status, body, _) = b.post("hotspot/deauthorize", json!({"username": "nobody"}));
    assert_error(status, &body, 404, "unknown user nobody");

    // A router without openNDS or rp-pppoe-server refuses with that reason.
    std::fs::remove_file(b.root().join("etc/init.d/opennds")).unwrap();
    std::fs::remove_file(b.root().join("etc/init.d/pppoe-server")).unwrap();
    let calls = b.file("data/ndsctl.log");
    let (status, body, _) = b.post(
        "hotspot/authorize",
        json!({"username": "user123", "mac_address": "a4:83:e7:2b:91:0c",
        "package_info": {"download_speed": 10, "upload_speed": 5}}),
    );
    assert_error(
        status,
        &body,
        409,
        "openNDS (package opennds) is not installed on this router",
    );
    assert_eq!(
        b.file("data/ndsctl.log"),
        calls,
        "ndsctl ran on a router without openNDS"
    );
    let (status, body, _) = b.post(
        "pppoe/secret/create",
        json!({"username": "user9", "password": "pw"}),
    );
    assert_error(
        status,
        &body,
        409,
        "rp-pppoe-server is not installed on this router",
    );
    assert!(!b.file("etc/ppp/chap-secrets").contains("user9"));
}

#[test]
fn families_are_refused_until_the_router_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"));
    let admin = collector.api_key("admin", "t-admin");
    let setup = AgentSetup::new(&dir.path().join("plain"), "plain");
    let conf = setup.router.write_agent_config(None).unwrap();
    setup.enroll_at(&collector, "plain");
    let agent = setup.run(
        collector.ingest,
        "1s",
        &["--config", &conf.display().to_string()],
    );
    collector.wait_for_reports("plain", 0, "the first report");
    let before = std::fs::read_to_string(setup.router.root.join("etc/config/network")).unwrap();
    for (route, body, family) in [
        ("bridge/create", json!({"bridge_name": "br-x"}), "bridge"),
        (
            "pppoe/secret/create",
            json!({"username": "u", "password": "p"}),
            "pppoe",
        ),
        (
            "hotspot/server/configure",
            json!({"interface": "br-lan", "hotspot_name": "h", "address_pool": "lan"}),
            "hotspot",
        ),
    ] {
        let key = [("X-API-Key", admin.as_str())];
        let (status, text) = http_request(
            collector.api,
            "POST",
            &format!("/api/mikrotik/{route}?wait=8"),
            &key,
            Some(&body.to_string()),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_error(status, &v, 409, &format!("list allow_actions '{family}'"));
    }
    assert_eq!(
        std::fs::read_to_string(setup.router.root.join("etc/config/network")).unwrap(),
        before
    );
    drop(agent);
}
