//! Every route of the five documents in `../shared/api/`, replayed from the document's own example
//! request against a collector with a reporting fleet on loopback, checking that the answer has
//! the document's field names with the document's JSON types. One table, [`ROWS`], written from
//! the documents; a row with a `pending` reason names the work that brings the route to its
//! document path or shape: the test prints those rows (and what they answer today) instead of
//! failing on them, and fails if a pending row already passes (so it gets turned on).
//!
//! Shape syntax: space-separated `path:type` items. `path` is a field name, `a.b` for a nested
//! field, `a[].b` for a field of the array's elements (checked on every element; an empty array
//! passes). Types: `string`, `number`, `bool`, `array`, `object`, `any` (present, any value);
//! a trailing `?` also allows `null` (the document shows null, or the value has no source here:
//! see docs/api/). The shape `file:ovpn` ([`OVPN_DOWNLOAD`]) is the document's ".ovpn file
//! download" instead: checked by its headers and its `client` directive, not as JSON.

use std::path::Path;
use std::time::Duration;

use routerstats_tests::easyrsa;
use routerstats_tests::harness::{http_exchange, uci_bin, wait_for, Fleet, RunningAgent};
use routerstats_tests::percent_encode as percent;
use serde_json::Value;

/// One documented route: document, method, example request path (with placeholders, see
/// [`Ids`]), example body, the answer's shape, and the pending work if the route is not at its
/// document path or shape yet.
struct Row {
    doc: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    shape: &'static str,
    pending: Option<&'static str>,
}

const fn row(
    doc: &'static str,
    method: &'static str,
    path: &'static str,
    shape: &'static str,
) -> Row {
    Row {
        doc,
        method,
        path,
        body: None,
        shape,
        pending: None,
    }
}

const fn body(
    doc: &'static str,
    method: &'static str,
    path: &'static str,
    body: &'static str,
    shape: &'static str,
) -> Row {
    Row {
        doc,
        method,
        path,
        body: Some(body),
        shape,
        pending: None,
    }
}

const fn pending(
    doc: &'static str,
    method: &'static str,
    path: &'static str,
    shape: &'static str,
    why: &'static str,
) -> Row {
    Row {
        doc,
        method,
        path,
        body: None,
        shape,
        pending: Some(why),
    }
}

const OPENWRT: &str = "openwrt-router-stats.md";
const ROUTEROS: &str = "routeros-monitor.md";
const GATEWAY: &str = "gateway-wan-stats.md";
const ISP: &str = "isp-middleware.md";
const WG: &str = "wireguard-manager.md";

const ENVELOPE: &str = "success:bool data:any timestamp:string";

/// The document's "File download (.ovpn)": a 200 with `Content-Disposition: attachment` naming a
/// `.ovpn` file, `Content-Type: application/x-openvpn-profile`, and a body with a `client`
/// directive (not JSON).
const OVPN_DOWNLOAD: &str = "file:ovpn";

/// Why the one pending row waits.
const NO_CLIENT: &str = "needs a connected OpenVPN client: the test fleet runs no OpenVPN server (its server.conf and PKI are files only), so `kill` on the management interface fails (400); tests/tests/openvpn.rs disconnects a real client from a real server";

const ROWS: &[Row] = &[
    // openwrt-router-stats.md: one route; its answer aggregates info.cgi (iw dev, station dumps,
    // uptime) and dhcp.cgi (leases) per router.
    // The document shows no field of the answer ("a JSON object containing aggregated
    // statistics"): the row checks that the example request answers a JSON object.
    row(OPENWRT, "GET", "/api/openwrt", "any:any"),
    // routeros-monitor.md
    row(ROUTEROS, "GET", "/api/health", "status:string"),
    Row { doc: ROUTEROS, method: "POST", path: "/api/health", body: Some(r#"{"router": "{router}"}"#), shape: "status:string latency_ms:number", pending: None },
    row(ROUTEROS, "GET", "/api/performance", "any:any"),
    row(ROUTEROS, "GET", "/api/export", "any:any"),
    row(ROUTEROS, "GET", "/api/logs", "logs:array"),
    row(ROUTEROS, "GET", "/api/pppoe_interfaces", "any:any"),
    // gateway-wan-stats.md
    row(GATEWAY, "GET", "/health", "status:string"),
    row(GATEWAY, "GET", "/api/organization", "any:any"),
    row(GATEWAY, "GET", "/api/sites", "any:any"),
    row(GATEWAY, "GET", "/api/gateways?duration=1h", "any:any"),
    row(GATEWAY, "GET", "/api/gateway/{router}/ports", "any:any"),
    row(GATEWAY, "GET", "/api/gateway/{router}/port/{port}/traffic", "any:any"),
    // wireguard-manager.md (the peer added here is deleted by the table's last row)
    row(WG, "GET", "/", "status:any wireguard_config:any"),
    Row { doc: WG, method: "POST", path: "/add-peer", body: Some(r#"{"name": "doc-phone"}"#), shape: "message:string peer_name:string ip_address:string public_key:string config_file:string directory:string", pending: None },
    row(WG, "GET", "/server-info", "server_public_key:string? publickey_server_exists:bool wg0_conf_exists:bool existing_peers_count:number wireguard_path:string?"),
    row(WG, "GET", "/peers?metrics=true", "peers:array count:number summary:object"),
    row(WG, "GET", "/peer/{peer}?metrics=true", "peer_name:string config:any"),
    row(WG, "GET", "/peer/{peer}/metrics?hours=6", "peer_name:string public_key:string stats:any bandwidth:any history:any"),
    row(WG, "GET", "/api/metrics/summary", "total_peers:number active_peers:number inactive_peers:number total_sent_gb:number total_received_gb:number total_traffic_gb:number"),
    row(WG, "GET", "/api/metrics/health", "api_status:string prometheus_status:string prometheus_url:string?"),
    row(WG, "GET", "/api/metrics/peers", "peers:array count:number"),
    row(WG, "GET", "/api/metrics/peers/active", "active_peers:array count:number"),
    row(WG, "GET", "/api/metrics/peer/{key}", "public_key:string interface:string allowed_ips:any sent_bytes:number received_bytes:number total_bytes:number sent_mb:number received_mb:number total_mb:number last_handshake:any time_since_handshake:any is_active:bool status:string"),
    row(WG, "GET", "/api/metrics/bandwidth", "bandwidth:array count:number"),
    row(WG, "GET", "/api/metrics/peer/{key}/bandwidth", "public_key:string sent_bytes_per_sec:number recv_bytes_per_sec:number total_bytes_per_sec:number sent_kbps:number recv_kbps:number sent_mbps:number recv_mbps:number"),
    row(WG, "GET", "/api/metrics/peer/{key}/history?hours=6", "public_key:string duration_hours:number history:array data_points:number"),
    // isp-middleware.md: MikroTik API
    row(ISP, "GET", "/api/mikrotik/devices", "success:bool devices:array devices[].name:string devices[].host:string devices[].port:number? devices[].use_ssl:bool devices[].connected:bool devices[].system_info:object total_devices:number connected_devices:number"),
    row(ISP, "GET", "/api/mikrotik/devices/status?identities={router}", "success:bool data:array data[].device_name:string data[].connected:bool data[].vpn_connected:bool timestamp:string"),
    row(ISP, "GET", "/api/mikrotik/devices/{router}/currentstatus", "success:bool data:any timestamp:string"),
    Row { doc: ISP, method: "POST", path: "/api/mikrotik/devices/{router}/status", body: None, shape: "success:bool data:object data.device_name:string data.connected:bool data.system_resources:object data.system_resources.uptime:string data.system_resources.version:string data.system_resources.cpu_load:string? data.system_resources.free_memory:string data.system_resources.total_memory:string data.interface_stats:array data.active_users_count:number data.active_users:array", pending: None },
    // The queue rows run in the order create, update, remove (the document lists remove before
    // update; an update after the remove has no queue to change). `user123` has no lease on the
    // fleet: the user is the fake router's lease hostname `Alices-MacBook-Pro`, and
    // `core_router` is the fleet's router.
    body(ISP, "POST", "/api/mikrotik/users/queue/create", r#"{"username": "Alices-MacBook-Pro", "package_info": {"download_speed": 10, "upload_speed": 5}, "device_name": "{router}"}"#, ENVELOPE),
    body(ISP, "PUT", "/api/mikrotik/users/queue/update", r#"{"username": "Alices-MacBook-Pro", "package_info": {"download_speed": 20, "upload_speed": 10}}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/users/queue/remove", r#"{"username": "Alices-MacBook-Pro", "device_name": "{router}"}"#, ENVELOPE),
    row(ISP, "GET", "/api/mikrotik/users/{user}/stats", ENVELOPE),
    row(ISP, "GET", "/api/mikrotik/users/active", ENVELOPE),
    // Hotspot: the document's MAC and address have no lease on the fleet; the fake router's
    // lease `a4:83:e7:2b:91:0c` / `192.168.1.142` stands in.
    body(ISP, "POST", "/api/mikrotik/hotspot/authorize", r#"{"username": "user123", "mac_address": "a4:83:e7:2b:91:0c", "ip_address": "192.168.1.142", "package_info": {"download_speed": 10, "upload_speed": 5, "hotspot_profile": "default"}}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/hotspot/deauthorize", r#"{"username": "user123"}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/pppoe/secret/create", r#"{"username": "user123", "password": "userpass", "package_info": {"download_speed": 10, "upload_speed": 5, "pppoe_profile": "default"}}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/pppoe/secret/remove", r#"{"username": "user123"}"#, ENVELOPE),
    // Network infrastructure: `network/setup` first (as docs/api/isp.md's walk-through does), so
    // the pool `f2net_pool` it creates stands in for the document's `hotspot-pool`, which the
    // fleet does not have; `ether2` (a MikroTik name) is the fake router's free port `lan3`.
    body(ISP, "POST", "/api/mikrotik/network/setup", r#"{"username": "admin", "password": "mikrotik_password", "host": "192.168.1.1", "port": 8728, "ip_pool_range": "172.31.0.2-172.31.255.254", "network_address": "172.31.0.1/16"}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/bridge/create", r#"{"bridge_name": "bridge-local", "auto_mac": false, "admin_mac": "00:00:00:00:00:00", "device_name": "{router}"}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/bridge/add-port", r#"{"bridge_name": "bridge-local", "interface": "lan3", "device_name": "{router}"}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/pppoe/server/configure", r#"{"interface": "bridge-local", "service_name": "service", "local_address": "172.31.0.1", "remote_address": "f2net_pool", "use_encryption": true, "authentication": "pap,chap,mschap1,mschap2", "keepalive_timeout": 60, "device_name": "{router}"}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/hotspot/server/configure", r#"{"interface": "bridge-local", "hotspot_name": "hotspot1", "address_pool": "f2net_pool", "profile": "hotspot-profile", "addresses_per_mac": 1, "idle_timeout": "none", "keepalive_timeout": "2m", "device_name": "{router}"}"#, ENVELOPE),
    body(ISP, "POST", "/api/mikrotik/anti-sharing/enable", r#"{"interface": "bridge-local", "device_name": "{router}"}"#, ENVELOPE),
    row(ISP, "GET", "/api/mikrotik/interfaces", ENVELOPE),
    row(ISP, "POST", "/api/mikrotik/backup/create?device={router}", ENVELOPE),
    // After the backup above (the route serves the newest backup's client profile: the fake
    // root's etc/openvpn/ap-doc.conf, see [`add_openvpn`]).
    row(ISP, "GET", "/api/mikrotik/devices/{router}/config", OVPN_DOWNLOAD),
    row(ISP, "GET", "/api/mikrotik/health", "success:bool"),
    // isp-middleware.md: VPN API
    row(ISP, "GET", "/api/vpn/status", "success:bool server_status:object server_status.service_running:bool server_status.port_listening:bool? server_status.connected_clients:number server_status.client_list:array server_status.health_score:number"),
    row(ISP, "GET", "/api/vpn/server/logs?lines=100", ENVELOPE),
    row(ISP, "POST", "/api/vpn/server/backup?device={router}", ENVELOPE),
    row(ISP, "GET", "/api/vpn/server/config", ENVELOPE),
    row(ISP, "GET", "/api/vpn/server/ip", ENVELOPE),
    row(ISP, "GET", "/api/vpn/client/template", ENVELOPE),
    row(ISP, "GET", "/api/vpn/clients", "success:bool clients:array clients[].name:string clients[].is_connected:bool statistics:object statistics.total_clients:number statistics.connected_clients:number statistics.valid_certificates:number?"),
    row(ISP, "GET", "/api/vpn/clients/connected", "success:bool connected_clients:array connected_clients[].common_name:string connected_clients[].real_address:string connected_clients[].virtual_address:string? connected_clients[].bytes_received:number connected_clients[].bytes_sent:number total_connected:number bandwidth_summary:object bandwidth_summary.total_mb_received:number bandwidth_summary.total_mb_sent:number"),
    // The client the document's example creates (real easy-rsa on the fake root's PKI), then
    // its profile, revocation and disconnection.
    body(ISP, "POST", "/api/vpn/clients/create", r#"{"client_name": "new_client", "email": "client@example.com"}"#, ENVELOPE),
    row(ISP, "GET", "/api/vpn/clients/new_client/config", OVPN_DOWNLOAD),
    row(ISP, "GET", "/api/vpn/clients/{vpnclient}/details", ENVELOPE),
    row(ISP, "POST", "/api/vpn/clients/new_client/revoke", ENVELOPE),
    pending(ISP, "POST", "/api/vpn/clients/new_client/disconnect", ENVELOPE, NO_CLIENT),
    row(ISP, "GET", "/api/vpn/statistics/usage?days=7", ENVELOPE),
    row(ISP, "GET", "/api/vpn/health", "success:bool"),
    // isp-middleware.md: Bandwidth API
    row(ISP, "GET", "/api/bandwidth/usage/real-time?minutes=60", "success:bool period_minutes:number bandwidth_data:array bandwidth_data[].timestamp:string bandwidth_data[].username:string? bandwidth_data[].download_mbps:number bandwidth_data[].upload_mbps:number bandwidth_data[].total_mbps:number bandwidth_data[].latency_ms:number? bandwidth_data[].packet_loss_percent:number? bandwidth_data[].nas_ip:string? bandwidth_data[].user_ip:string? summary:object"),
    row(ISP, "GET", "/api/bandwidth/usage/peak?hours=24", ENVELOPE),
    row(ISP, "GET", "/api/bandwidth/monitoring/top-users?limit=20&sort_by=total&minutes=30", ENVELOPE),
    row(ISP, "GET", "/api/bandwidth/monitoring/network-summary?minutes=30", ENVELOPE),
    row(ISP, "GET", "/api/bandwidth/monitoring/alerts", ENVELOPE),
    row(ISP, "GET", "/api/bandwidth/monitoring/quality", ENVELOPE),
    // The user is the fake router's lease hostname (the document's `user123` has no lease).
    body(ISP, "POST", "/api/bandwidth/management/throttle", r#"{"username": "Alices-MacBook-Pro", "download_speed": 5, "upload_speed": 2, "device_name": "{router}"}"#, ENVELOPE),
    body(ISP, "POST", "/api/bandwidth/management/remove-throttle", r#"{"username": "Alices-MacBook-Pro", "device_name": "{router}"}"#, ENVELOPE),
    row(ISP, "GET", "/api/bandwidth/health", "success:bool"),
    // wireguard-manager.md, last: removes the peer POST /add-peer created, then restarts wg0.
    row(WG, "DELETE", "/peer/doc-phone", "message:string"),
    row(WG, "POST", "/reload-wireguard", "message:string"),
];

/// JSON type name of a value.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `path` (`a.b`, `a[].b`) of `v` against `want`; problems go to `out`.
fn check(v: &Value, path: &str, want: &str, at: &str, out: &mut Vec<String>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let (name, each) = match head.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (head, false),
    };
    let here = format!("{at}{name}");
    let Some(field) = v.get(name) else {
        out.push(format!("{here} missing"));
        return;
    };
    match (rest, each) {
        (Some(rest), true) => match field.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, item)| check(item, rest, want, &format!("{here}[{i}]."), out)),
            None => out.push(format!("{here} is {}, not an array", type_of(field))),
        },
        (Some(rest), false) => check(field, rest, want, &format!("{here}."), out),
        (None, _) => {
            let (ty, nullable) = match want.strip_suffix('?') {
                Some(t) => (t, true),
                None => (want, false),
            };
            let got = type_of(field);
            if !(ty == "any" || got == ty || (nullable && got == "null")) {
                out.push(format!("{here} is {got}, the document says {want}"));
            }
        }
    }
}

/// Problems of `answer` against `shape` (empty: it matches), each once.
fn mismatches(answer: &Value, shape: &str) -> Vec<String> {
    let mut out = problems(answer, shape);
    out.dedup();
    out
}

fn problems(answer: &Value, shape: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !answer.is_object() {
        out.push(format!(
            "the answer is {}, not a JSON object",
            type_of(answer)
        ));
        return out;
    }
    for item in shape.split_whitespace() {
        let (path, want) = item.split_once(':').expect("shape item is path:type");
        if path == "any" {
            continue;
        }
        check(answer, path, want, "", &mut out);
    }
    out
}

/// Identifiers of the fleet the example paths' placeholders stand for.
struct Ids {
    router: String,
    key: String,
    peer: String,
    port: String,
    vpnclient: String,
    user: String,
}

/// The first string under key `key` anywhere in `v` (depth first).
fn find_key(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::Object(m) => m
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

fn first_str(v: &Value, array: &str, fields: &[&str]) -> Option<String> {
    let items = v.pointer(array)?.as_array()?;
    items.iter().find_map(|i| {
        fields
            .iter()
            .find_map(|f| i.get(*f)?.as_str().map(str::to_string))
    })
}

impl Ids {
    fn find(fleet: &Fleet, router: &str) -> Ids {
        let (_, peers) = fleet.get("/api/metrics/peers");
        let key = first_str(&peers, "/peers", &["public_key"])
            .expect("the fake router has WireGuard peers");
        let (_, wg) = fleet.get("/peers?metrics=false");
        let peer = first_str(&wg, "/peers", &["peer_name", "name"]).unwrap_or_else(|| key.clone());
        let (_, ports) = fleet.get(&format!("/api/gateway/{router}/ports"));
        let port = first_str(&ports, "/data/ports", &["port_id", "id", "name"])
            .or_else(|| first_str(&ports, "/data", &["port_id", "id", "name"]))
            .unwrap_or_else(|| "wan".into());
        let (_, clients) = fleet.get("/api/vpn/clients");
        let vpnclient = first_str(&clients, "/data/clients", &["name"])
            .or_else(|| first_str(&clients, "/clients", &["name"]))
            .unwrap_or_else(|| "client1".into());
        let (_, users) = fleet.get("/api/mikrotik/users/active");
        let user = find_key(&users, "username")
            .or_else(|| find_key(&users, "name"))
            .unwrap_or_else(|| "user1".into());
        Ids {
            user: percent(&user),
            router: router.into(),
            key: percent(&key),
            peer: percent(&peer),
            port: percent(&port),
            vpnclient: percent(&vpnclient),
        }
    }

    fn fill(&self, s: &str) -> String {
        s.replace("{router}", &self.router)
            .replace("{key}", &self.key)
            .replace("{peer}", &self.peer)
            .replace("{port}", &self.port)
            .replace("{vpnclient}", &self.vpnclient)
            .replace("{user}", &self.user)
    }
}

/// Problems of a file download against [`OVPN_DOWNLOAD`] (empty: it matches).
fn download_problems(headers: &[(String, String)], text: &str) -> Vec<String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut out = Vec::new();
    let disposition = header("content-disposition");
    if !(disposition.starts_with("attachment") && disposition.contains(".ovpn")) {
        out.push(format!(
            "Content-Disposition is {disposition:?}, not an attachment named *.ovpn"
        ));
    }
    let ty = header("content-type");
    if !ty.starts_with("application/x-openvpn-profile") {
        out.push(format!(
            "Content-Type is {ty:?}, not application/x-openvpn-profile"
        ));
    }
    if !text.lines().any(|l| l.trim() == "client") {
        out.push("the file has no `client` directive".into());
    }
    out
}

/// Gives the fake root what the OpenVPN rows need, where the agent config of
/// `write_agent_config` looks for it: a real easy-rsa PKI (CA, server certificate, CRL) at
/// etc/easy-rsa/pki with bin/easyrsa running the real easy-rsa, a server config at
/// etc/openvpn/server.conf using them, its log file (two lines as OpenVPN 2.6 writes them: no
/// server runs here, so the log is a fixture), and a client profile etc/openvpn/ap-doc.conf that
/// the router's backups then hold (`GET /api/mikrotik/devices/{name}/config`).
fn add_openvpn(root: &Path) {
    let tool = easyrsa::required();
    let pki = root.join("etc/easy-rsa/pki");
    std::fs::create_dir_all(pki.parent().expect("pki has a parent")).expect("etc/easy-rsa");
    easyrsa::server_pki(&tool, &pki, "routerstats-doc-ca");
    let wrapper = root.join("bin/easyrsa");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec '{}' \"$@\"\n", tool.display()),
    )
    .expect("bin/easyrsa");
    std::fs::set_permissions(
        &wrapper,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod bin/easyrsa");
    let ovpn = root.join("etc/openvpn");
    std::fs::create_dir_all(&ovpn).expect("etc/openvpn");
    let log = root.join("tmp/openvpn.log");
    std::fs::write(
        &log,
        "2026-12-06 10:00:00 OpenVPN 2.6.3 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL]\n\
         2026-12-06 10:00:01 Initialization Sequence Completed\n",
    )
    .expect("openvpn log");
    let p = pki.display();
    std::fs::write(
        ovpn.join("server.conf"),
        format!(
            "port 1194\nproto udp\ndev tun\ntopology subnet\nserver 10.88.0.0 255.255.255.0\nca {p}/ca.crt\ncert {p}/issued/server.crt\nkey {p}/private/server.key\ndh none\ncrl-verify {p}/crl.pem\nmanagement {} unix\nlog-append {}\nkeepalive 10 60\nverb 3\n",
            root.join("var/run/openvpn-mgmt.sock").display(),
            log.display()
        ),
    )
    .expect("server.conf");
    std::fs::write(
        ovpn.join("ap-doc.conf"),
        "client\ndev tun\nproto udp\nremote 192.168.1.1 1194\nnobind\nremote-cert-tls server\n",
    )
    .expect("client profile");
}

/// Runs the fleet's router again with every action family allowed (its real `uci` on the fake
/// root), so the write routes' examples (WireGuard peers, backups, status) run end to end.
fn run_with_actions(fleet: &Fleet) -> RunningAgent {
    let setup = &fleet.routers[0];
    let conf = setup
        .router
        .write_agent_config(Some(uci_bin().as_path()))
        .expect("agent config");
    let before = fleet.collector.stored_seqs(&setup.router.hostname).len();
    let agent = setup.run(
        fleet.collector.ingest,
        "1s",
        &["--config", &conf.display().to_string()],
    );
    // Two reports of the new process: its rates (per-peer bandwidth) compare two samples.
    wait_for(
        Duration::from_secs(30),
        "two reports from the router with actions allowed",
        || {
            setup.router.tick(5).ok()?;
            std::thread::sleep(Duration::from_millis(200));
            (fleet.collector.stored_seqs(&setup.router.hostname).len() >= before + 2).then_some(())
        },
    );
    agent
}

#[test]
fn document_examples_answer_in_the_documents_shapes() {
    let config = "[wireguard]\ndefault_router = \"ap-doc\"\n";
    let mut fleet = Fleet::start_with_config(&[("ap-doc", "home")], 3, Some(config));
    fleet.stop_agents();
    add_openvpn(&fleet.routers[0].router.root);
    let _agent = run_with_actions(&fleet);
    let ids = Ids::find(&fleet, "ap-doc");
    let (mut passed, mut waiting, mut failed) = (0, Vec::new(), Vec::new());
    for r in ROWS {
        let path = ids.fill(r.path);
        let body = r.body.map(|b| ids.fill(b));
        let headers = [
            ("X-API-Key", fleet.admin_key.as_str()),
            ("Accept", "application/json"),
        ];
        let (status, got_headers, text) = http_exchange(
            fleet.collector.api,
            r.method,
            &path,
            &headers,
            body.as_deref(),
        )
        .unwrap_or_else(|e| panic!("{} {path}: {e}", r.method));
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let problems = if !(200..300).contains(&status) {
            vec![format!(
                "status {status}: {}",
                text.chars().take(160).collect::<String>()
            )]
        } else if r.shape == OVPN_DOWNLOAD {
            download_problems(&got_headers, &text)
        } else {
            mismatches(&answer, r.shape)
        };
        match (r.pending, problems.is_empty()) {
            (None, true) => passed += 1,
            (None, false) => failed.push(format!(
                "{} {} {path}: {}",
                r.doc,
                r.method,
                problems.join("; ")
            )),
            (Some(why), false) => waiting.push(format!(
                "{} {} {path} [{why}]: {}",
                r.doc,
                r.method,
                problems.join("; ")
            )),
            (Some(why), true) => failed.push(format!(
                "{} {} {path} is marked pending ({why}) but passes: turn it on",
                r.doc, r.method
            )),
        }
    }
    for w in &waiting {
        println!("pending: {w}");
    }
    println!(
        "document examples: {passed} passed, {} pending, {} failed, of {} rows",
        waiting.len(),
        failed.len(),
        ROWS.len()
    );
    assert!(
        failed.is_empty(),
        "routes not in their document's shape:\n{}",
        failed.join("\n")
    );
}

#[test]
fn the_shape_checker_finds_missing_fields_and_wrong_types() {
    let v: Value =
        serde_json::json!({"a": 1, "b": {"c": "x"}, "d": [{"e": true}, {"e": 3}], "n": null});
    assert!(mismatches(&v, "a:number b:object b.c:string n:string? d:array").is_empty());
    let found = mismatches(&v, "a:string b.z:any d[].e:bool n:string missing:any");
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(
        found.iter().any(|p| p.contains("d[1].e is number")),
        "{found:?}"
    );
    assert!(!mismatches(&serde_json::json!([1]), "a:any").is_empty());
}

#[test]
fn the_download_checker_wants_an_ovpn_attachment_with_a_client_directive() {
    let good = vec![
        (
            "content-disposition".to_string(),
            "attachment; filename=\"a.ovpn\"".to_string(),
        ),
        (
            "content-type".to_string(),
            "application/x-openvpn-profile".to_string(),
        ),
    ];
    assert!(download_problems(&good, "client\ndev tun\n").is_empty());
    assert_eq!(download_problems(&good, "dev tun\n").len(), 1);
    let found = download_problems(&[], "{\"success\": true}");
    assert_eq!(found.len(), 3, "{found:?}");
}
