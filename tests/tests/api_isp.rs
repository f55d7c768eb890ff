//! The ISP middleware routes (devices, users, VPN, bandwidth) over a fleet fed by real agents on
//! fake routers built from agent/fixtures.
//!
//! The fixtures' station MACs (iw/station-dump-*.txt) have no DHCP lease in dhcp/dhcp.leases, so
//! the test adds two leases for station MACs to one router's lease file, adds a client named
//! like the other router to its OpenVPN server status, and bumps a few counters, then checks the
//! answers against the fixture values and against sums computed from the collector's database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use routerstats_tests::harness::{http_exchange, wait_for, Fleet};
use serde_json::Value;

const KITCHEN: &str = "ap-kitchen";
const OFFICE: &str = "ap-office";
/// Station MACs of the fixtures' station dumps (wlan0, wlan1, mesh0).
const STATIONS: [&str; 6] = [
    "3c:22:fb:7a:10:01",
    "50:02:91:0c:4b:7e",
    "6c:7e:67:a1:b2:c3",
    "96:83:c4:5e:6f:71",
    "a4:83:e7:5d:2e:90",
    "f0:18:98:44:9a:21",
];
/// Station of wlan0 given the lease `living-room-tv` by the test.
const TV: &str = "3c:22:fb:7a:10:01";
/// Station of wlan1 given the lease `work-laptop` by the test.
const LAPTOP: &str = "6c:7e:67:a1:b2:c3";
/// What the test adds to the TV's upload and the laptop's download on ap-kitchen.
const BUMP: u64 = 5_000_000_000;

/// Asserts a success envelope and returns its `data`.
fn data(fleet: &Fleet, path: &str) -> Value {
    let (status, body) = fleet.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(body["success"], true, "{path}: {body}");
    let ts = body["timestamp"].as_str().unwrap_or_default();
    assert!(
        ts.len() == 24 && ts.ends_with('Z'),
        "{path}: timestamp {ts:?}"
    );
    body["data"].clone()
}

/// Asserts a success answer whose fields are at the top level (the document's shapes for
/// devices, VPN status/clients/connected and real-time bandwidth) and returns the whole body.
fn flat(fleet: &Fleet, path: &str) -> Value {
    let (status, body) = fleet.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(body["success"], true, "{path}: {body}");
    assert!(
        body.get("data").is_none(),
        "{path}: no data wrapper: {body}"
    );
    let ts = body["timestamp"].as_str().unwrap_or_default();
    assert!(
        ts.len() == 24 && ts.ends_with('Z'),
        "{path}: timestamp {ts:?}"
    );
    body
}

/// Asserts an error envelope with `status` (read key unless `key` says otherwise) and returns
/// the message.
fn error_as(fleet: &Fleet, path: &str, key: Option<&str>, status: u16) -> String {
    let (s, body) = fleet.get_as(path, key);
    assert_eq!(s, status, "{path}: {body}");
    assert_eq!(body["success"], false, "{path}: {body}");
    assert!(
        body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{path}: {body}"
    );
    assert!(body.get("data").is_none(), "{path}: {body}");
    let msg = body["error"].as_str().unwrap_or_default().to_string();
    assert!(!msg.is_empty(), "{path}: {body}");
    msg
}

fn error(fleet: &Fleet, path: &str, status: u16) -> String {
    error_as(fleet, path, Some(&fleet.read_key), status)
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("test-tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// Adds `by` to the `key` counter (`rx bytes`, `tx bytes`) of station `mac` in a station dump.
fn bump_station(root: &Path, iface: &str, mac: &str, key: &str, by: u64) {
    let path = root.join(format!("data/iw/station-dump-{iface}.txt"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut current = String::new();
    let mut hit = false;
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            if let Some(rest) = line.strip_prefix("Station ") {
                current = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
            let trimmed = line.trim_start();
            if current == mac && trimmed.starts_with(&format!("{key}:")) {
                let n: u64 = trimmed.split(':').nth(1).unwrap().trim().parse().unwrap();
                hit = true;
                return format!("\t{key}:\t{}", n + by);
            }
            line.to_string()
        })
        .collect();
    assert!(hit, "{mac} {key} not found in {}", path.display());
    write_atomic(&path, &(out.join("\n") + "\n"));
}

fn query_i64(fleet: &Fleet, sql: &str) -> i64 {
    fleet
        .collector
        .db()
        .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .unwrap()
        .unwrap_or(0)
}

/// Per station MAC over every stored sample: (upload = rx deltas, download = tx deltas, max rx
/// bps, max tx bps).
fn station_sums(fleet: &Fleet) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let db = fleet.collector.db();
    let mut st = db
        .prepare(
            "SELECT mac, coalesce(sum(rx_delta), 0), coalesce(sum(tx_delta), 0), coalesce(max(rx_bps), 0), \
             coalesce(max(tx_bps), 0) FROM station_samples GROUP BY mac",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
            ))
        })
        .unwrap()
        .collect::<Result<BTreeMap<_, _>, _>>()
        .unwrap();
    rows
}

fn mbps(bps: i64) -> f64 {
    (bps as f64 / 1000.0).round() / 1000.0
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Starts the fleet, applies the test's changes to the fake routers, waits until they are
/// stored, and stops the agents.
fn prepared_fleet() -> Fleet {
    let mut fleet = Fleet::start(&[(KITCHEN, "home"), (OFFICE, "office")], 3);
    let kitchen = fleet.routers[0].router.root.clone();
    assert!(kitchen.to_string_lossy().contains(KITCHEN));

    // Leases for two station MACs, before the fixture's own leases.
    let leases = kitchen.join("tmp/dhcp.leases");
    let old = std::fs::read_to_string(&leases).unwrap();
    let extra = format!("1732360000 {TV} 192.168.1.50 living-room-tv *\n1732360000 {LAPTOP} 192.168.1.51 work-laptop *\n");
    write_atomic(&leases, &(extra + &old));

    // ap-office dials ap-kitchen's OpenVPN server; laptop-anna's first session moves 1000/2000 bytes.
    let status = kitchen.join("var/run/openvpn/server.status");
    let text = std::fs::read_to_string(&status).unwrap();
    let anna_old =
        "CLIENT_LIST,laptop-anna,203.0.113.45:40123,10.8.0.2,fd42:8::1000,1848213,23909112,";
    let anna_new =
        "CLIENT_LIST,laptop-anna,203.0.113.45:40123,10.8.0.2,fd42:8::1000,1849213,23911112,";
    assert!(text.contains(anna_old));
    let office = "CLIENT_LIST,ap-office,198.51.100.20:51000,10.8.0.22,,4096,8192,2024-05-12 09:30:00,1715506200,UNDEF,9,4,AES-256-GCM\n";
    let text = text.replace(anna_old, anna_new).replacen(
        "HEADER,ROUTING_TABLE",
        &format!("{office}HEADER,ROUTING_TABLE"),
        1,
    );
    write_atomic(&status, &text);

    bump_station(&kitchen, "wlan0", TV, "rx bytes", BUMP);
    bump_station(&kitchen, "wlan1", LAPTOP, "tx bytes", BUMP);

    wait_for(
        Duration::from_secs(60),
        "the test's changes in stored reports",
        || {
            let leased = query_i64(
                &fleet,
                "SELECT count(*) FROM leases WHERE hostname IN ('living-room-tv', 'work-laptop')",
            );
            let vpn = query_i64(
                &fleet,
                "SELECT count(*) FROM ovpn_client_samples WHERE common_name = 'ap-office'",
            );
            let anna = query_i64(
                &fleet,
                "SELECT count(*) FROM ovpn_client_samples WHERE rx_bytes = 1849213",
            );
            let tv = query_i64(&fleet, &format!("SELECT count(*) FROM station_samples WHERE mac = '{TV}' AND rx_delta >= {BUMP}"));
            let laptop =
            query_i64(&fleet, &format!("SELECT count(*) FROM station_samples WHERE mac = '{LAPTOP}' AND tx_delta >= {BUMP}"));
            (leased == 2 && vpn >= 2 && anna >= 2 && tv == 1 && laptop == 1).then_some(())
        },
    );
    fleet.stop_agents();
    fleet
}

#[test]
fn isp_routes_over_a_live_fleet() {
    let fleet = prepared_fleet();
    devices_and_interfaces(&fleet);
    users(&fleet);
    vpn(&fleet);
    top_users_summary_and_alerts(&fleet);
    series_peak_and_quality(&fleet);
    auth_and_bounds(&fleet);
}

fn devices_and_interfaces(fleet: &Fleet) {
    let d = flat(fleet, "/api/mikrotik/devices");
    assert_eq!(
        (d["total_devices"].as_u64(), d["connected_devices"].as_u64()),
        (Some(2), Some(2)),
        "{d}"
    );
    assert_eq!(names(&d["devices"], "name"), [KITCHEN, OFFICE]);
    let k = &d["devices"][0];
    assert_eq!(k["host"], KITCHEN);
    assert_eq!(
        (k["site"].as_str(), k["model"].as_str()),
        (Some("home"), Some("D-Link DIR-878 A1"))
    );
    assert_eq!(
        (
            k["use_ssl"].as_bool(),
            k["port"].is_null(),
            k["connected"].as_bool()
        ),
        (Some(true), true, Some(true))
    );
    assert_eq!(k["system_info"]["version"], "23.05.3");
    let uptime = k["system_info"]["uptime"].as_str().unwrap();
    // /proc/uptime of the fixture: 328925 s = 3d19h22m5s plus the ticks.
    assert!(
        uptime.starts_with("3d") && uptime.ends_with('s'),
        "{uptime}"
    );
    let total_mem: u64 = k["system_info"]["total_memory"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(total_mem > 0 && total_mem.is_multiple_of(1024));

    let s = data(
        fleet,
        &format!("/api/mikrotik/devices/status?identities={OFFICE},{KITCHEN}"),
    );
    assert_eq!(names(&s, "device_name"), [OFFICE, KITCHEN]);
    let o = &s[0];
    assert_eq!(
        (o["connected"].as_bool(), o["vpn_connected"].as_bool()),
        (Some(true), Some(true)),
        "{o}"
    );
    let info = &o["vpn_connection_info"];
    assert_eq!(info["real_address"], "198.51.100.20:51000");
    assert_eq!(info["virtual_address"], "10.8.0.22");
    assert_eq!(
        (info["bytes_received"].as_i64(), info["bytes_sent"].as_i64()),
        (Some(4096), Some(8192))
    );
    assert_eq!(info["connected_since"], "2024-05-12 09:30:00");
    assert_eq!(
        (info["server_device"].as_str(), info["instance"].as_str()),
        (Some(KITCHEN), Some("server"))
    );
    assert_eq!(
        (
            s[1]["vpn_connected"].as_bool(),
            s[1]["vpn_connection_info"].is_null()
        ),
        (Some(false), true)
    );

    let one = data(
        fleet,
        &format!("/api/mikrotik/devices/{OFFICE}/currentstatus"),
    );
    assert_eq!(
        (one["device_name"].as_str(), one["vpn_connected"].as_bool()),
        (Some(OFFICE), Some(true))
    );
    assert_eq!(one["vpn_connection_info"]["bytes_sent"], 8192);
    let msg = error(fleet, "/api/mikrotik/devices/ap-garage/currentstatus", 404);
    assert!(
        msg.contains("unknown device") && msg.contains("ap-garage"),
        "{msg}"
    );
    // An unknown name is answered in its own entry; the known ones as usual.
    let mixed = data(
        fleet,
        &format!("/api/mikrotik/devices/status?identities={KITCHEN},ap-garage&_=123"),
    );
    assert_eq!(names(&mixed, "device_name"), [KITCHEN, "ap-garage"]);
    assert_eq!(
        (mixed[0]["connected"].as_bool(), mixed[0]["error"].is_null()),
        (Some(true), true),
        "{mixed}"
    );
    assert_eq!(
        (
            mixed[1]["connected"].as_bool(),
            mixed[1]["vpn_connected"].as_bool(),
            mixed[1]["vpn_connection_info"].is_null(),
            mixed[1]["error"].as_str()
        ),
        (Some(false), Some(false), true, Some("unknown device")),
        "{mixed}"
    );
    let msg = error(fleet, "/api/mikrotik/devices/status", 400);
    assert!(msg.contains("identities"), "{msg}");
    error(fleet, "/api/mikrotik/devices/status?identities=,,", 400);
    let many: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
    error(
        fleet,
        &format!("/api/mikrotik/devices/status?identities={}", many.join(",")),
        400,
    );

    let i = data(fleet, &format!("/api/mikrotik/interfaces?device={KITCHEN}"));
    let list = &i["interfaces"];
    assert_eq!(i["total_interfaces"].as_u64(), Some(13), "{i}");
    let by_name = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name("pppoe-wan")["type"], "pppoe");
    assert_eq!(by_name("lo")["type"], "loopback");
    let wlan0 = by_name("wlan0");
    assert_eq!(
        (wlan0["type"].as_str(), wlan0["device_name"].as_str()),
        (Some("wifi"), Some(KITCHEN))
    );
    assert_eq!(
        (
            wlan0["wireless"]["ssid"].as_str(),
            wlan0["wireless"]["channel"].as_i64()
        ),
        (Some("HomeNet"), Some(6))
    );
    assert_eq!(by_name("mesh0")["wireless"]["mode"], "mesh point");
    assert!(by_name("eth0")["wireless"].is_null());
    // lo: the tick adds nothing to it.
    assert_eq!(by_name("lo")["rx_bytes"], 2847316);
    assert!(by_name("wan")["rx_drops"].as_i64().unwrap() >= 14);
    assert_eq!(
        data(fleet, "/api/mikrotik/interfaces")["total_interfaces"].as_u64(),
        Some(26)
    );
    error(fleet, "/api/mikrotik/interfaces?device=nope", 404);
}

fn users(fleet: &Fleet) {
    let a = data(fleet, "/api/mikrotik/users/active");
    assert_eq!(a["active_users_count"].as_u64(), Some(12), "{a}");
    let list = a["active_users"].as_array().unwrap();
    let macs: BTreeSet<&str> = list
        .iter()
        .map(|u| u["mac_address"].as_str().unwrap())
        .collect();
    assert_eq!(macs, STATIONS.into_iter().collect());
    let tv: Vec<&Value> = list.iter().filter(|u| u["mac_address"] == TV).collect();
    assert_eq!(tv.len(), 2);
    for u in &tv {
        // The lease is on ap-kitchen only; the station on ap-office gets it too.
        assert_eq!(
            (u["username"].as_str(), u["ip_address"].as_str()),
            (Some("living-room-tv"), Some("192.168.1.50")),
            "{u}"
        );
        assert_eq!(
            (
                u["interface"].as_str(),
                u["ssid"].as_str(),
                u["signal_dbm"].as_i64()
            ),
            (Some("wlan0"), Some("HomeNet"), Some(-52))
        );
        assert_eq!(u["is_active"], true);
    }
    let mesh = list
        .iter()
        .find(|u| u["mac_address"] == "96:83:c4:5e:6f:71" && u["device_name"] == KITCHEN)
        .unwrap();
    assert_eq!(
        (
            mesh["username"].as_str(),
            mesh["hostname"].is_null(),
            mesh["ssid"].is_null()
        ),
        (Some("96:83:c4:5e:6f:71"), true, true)
    );
    assert_eq!(
        (mesh["interface"].as_str(), mesh["tx_bitrate_mbps"].as_f64()),
        (Some("mesh0"), Some(780.0))
    );
    let office = data(
        fleet,
        &format!("/api/mikrotik/users/active?device={OFFICE}"),
    );
    assert_eq!(office["active_users_count"].as_u64(), Some(6));
    assert!(names(&office["active_users"], "device_name")
        .iter()
        .all(|d| d == OFFICE));
    error(fleet, "/api/mikrotik/users/active?device=nope", 404);

    let sums = station_sums(fleet);
    let s = data(fleet, "/api/mikrotik/users/living-room-tv/stats");
    assert_eq!(
        (
            s["username"].as_str(),
            s["ip_address"].as_str(),
            s["is_active"].as_bool()
        ),
        (Some("living-room-tv"), Some("192.168.1.50"), Some(true))
    );
    assert_eq!(s["mac_addresses"], serde_json::json!([TV]));
    assert_eq!(names(&s["sessions"], "device_name"), [KITCHEN, OFFICE]);
    let (up, down, _, _) = sums[TV];
    assert!(up >= BUMP as i64);
    for w in ["last_hour", "last_24h", "last_7d"] {
        let u = &s["usage"][w];
        assert_eq!(
            (u["upload_bytes"].as_i64(), u["download_bytes"].as_i64()),
            (Some(up), Some(down)),
            "{w}: {u}"
        );
        assert_eq!(u["total_bytes"].as_i64(), Some(up + down));
    }
    // Only the traffic through ap-office.
    let s = data(
        fleet,
        &format!("/api/mikrotik/users/LIVING-ROOM-TV/stats?device={OFFICE}"),
    );
    let office_up = query_i64(
        fleet,
        &format!("SELECT sum(s.rx_delta) FROM station_samples s JOIN routers r ON r.id = s.router_id WHERE s.mac = '{TV}' AND r.name = '{OFFICE}'"),
    );
    assert_eq!(
        s["usage"]["last_hour"]["upload_bytes"].as_i64(),
        Some(office_up)
    );
    assert!(office_up < BUMP as i64);
    assert_eq!(names(&s["sessions"], "device_name"), [OFFICE]);

    let by_mac = data(fleet, "/api/mikrotik/users/6C-7E-67-A1-B2-C3/stats");
    assert_eq!(
        (by_mac["username"].as_str(), by_mac["hostname"].as_str()),
        (Some("work-laptop"), Some("work-laptop"))
    );
    let unnamed = data(fleet, "/api/mikrotik/users/f0:18:98:44:9a:21/stats");
    assert_eq!(
        (unnamed["username"].as_str(), unnamed["hostname"].is_null()),
        (Some("f0:18:98:44:9a:21"), true)
    );
    assert_eq!(unnamed["sessions"][0]["inactive_ms"], 920); // from agent/fixtures/iw/station-dump-wlan1.txt
                                                            // A lease-only host from the fixture leases: known, not associated, no traffic.
    let alice = data(fleet, "/api/mikrotik/users/Alices-MacBook-Pro/stats");
    assert_eq!(
        alice["mac_addresses"],
        serde_json::json!(["a4:83:e7:2b:91:0c"])
    );
    assert_eq!(
        (alice["ip_address"].as_str(), alice["is_active"].as_bool()),
        (Some("192.168.1.142"), Some(false))
    );
    assert_eq!(alice["sessions"].as_array().map(Vec::len), Some(0));
    assert_eq!(alice["usage"]["last_7d"]["total_bytes"], 0);
    let msg = error(fleet, "/api/mikrotik/users/nobody/stats", 404);
    assert!(msg.contains("unknown user"), "{msg}");
    error(fleet, "/api/mikrotik/users/02:00:00:00:00:99/stats", 404);
    error(
        fleet,
        "/api/mikrotik/users/living-room-tv/stats?device=nope",
        404,
    );
}

fn vpn(fleet: &Fleet) {
    let s = flat(fleet, "/api/vpn/status");
    let st = &s["server_status"];
    assert_eq!(
        (
            st["service_running"].as_bool(),
            st["port_listening"].is_null()
        ),
        (Some(true), true)
    );
    assert_eq!(st["connected_clients"].as_u64(), Some(9), "{s}");
    assert_eq!(
        st["client_list"],
        serde_json::json!(["ap-office", "laptop-anna", "phone-ben", "router-office"])
    );
    assert_eq!(
        (st["instances"].as_u64(), st["instances_running"].as_u64()),
        (Some(4), Some(4))
    );
    let servers = s["servers"].as_array().unwrap();
    let find = |dev: &str, inst: &str| {
        servers
            .iter()
            .find(|x| x["device_name"] == dev && x["instance"] == inst)
            .unwrap()
    };
    let ks = find(KITCHEN, "server");
    assert_eq!(ks["connected_clients"].as_u64(), Some(5));
    assert!(ks["status_file"]
        .as_str()
        .unwrap()
        .ends_with("server.status"));
    assert_eq!(
        find(OFFICE, "server")["client_list"],
        serde_json::json!(["laptop-anna", "phone-ben", "router-office"])
    );
    let client = find(KITCHEN, "client");
    assert_eq!(
        (
            client["connected_clients"].as_u64(),
            client["service_running"].as_bool()
        ),
        (Some(0), Some(true))
    );
    assert_eq!(client["state"], "ok");

    let c = flat(fleet, "/api/vpn/clients");
    assert_eq!(c["statistics"]["total_clients"].as_u64(), Some(7), "{c}");
    assert_eq!(c["statistics"]["connected_clients"].as_u64(), Some(7));
    assert!(c["statistics"]["valid_certificates"].is_null());
    let list = c["clients"].as_array().unwrap();
    let anna = list
        .iter()
        .find(|x| x["name"] == "laptop-anna" && x["device_name"] == KITCHEN)
        .unwrap();
    assert_eq!(
        (
            anna["sessions"].as_u64(),
            anna["is_connected"].as_bool(),
            anna["is_valid"].is_null()
        ),
        (Some(2), Some(true), true)
    );
    // The newest session: connected 2024-05-12 09:40:58 from ::ffff:192.0.2.80.
    assert_eq!(anna["connection_info"]["real_address"], "::ffff:192.0.2.80");
    assert_eq!(
        anna["connection_info"]["connected_since"],
        "2024-05-12 09:40:58"
    );

    let con = flat(fleet, "/api/vpn/clients/connected");
    assert_eq!(con["total_connected"].as_u64(), Some(9));
    let sessions = con["connected_clients"].as_array().unwrap();
    let ben = sessions
        .iter()
        .find(|x| x["common_name"] == "phone-ben")
        .unwrap();
    assert_eq!(
        (
            ben["virtual_address"].is_null(),
            ben["virtual_ipv6"].as_str()
        ),
        (true, Some("fd42:8::1001"))
    );
    assert_eq!(
        (ben["real_address"].as_str(), ben["username"].is_null()),
        (Some("udp6:[2001:db8:42::17]:55003"), true)
    );
    assert_eq!(ben["cipher"], "CHACHA20-POLY1305");
    let ro = sessions
        .iter()
        .find(|x| x["common_name"] == "router-office")
        .unwrap();
    assert_eq!(
        (ro["bytes_received"].as_i64(), ro["bytes_sent"].as_i64()),
        (Some(98234411), Some(12004556))
    );
    assert_eq!(
        (ro["connected_since"].as_str(), ro["real_address"].as_str()),
        (
            Some("2024-05-11 22:15:03"),
            Some("tcp4-server:198.51.100.7:33018")
        )
    );
    let anna_k = sessions
        .iter()
        .find(|x| {
            x["common_name"] == "laptop-anna"
                && x["device_name"] == KITCHEN
                && x["virtual_address"] == "10.8.0.2"
        })
        .unwrap();
    assert_eq!(
        (
            anna_k["bytes_received"].as_i64(),
            anna_k["bytes_sent"].as_i64()
        ),
        (Some(1849213), Some(23911112))
    );
    assert_eq!(anna_k["username"], "anna");
    let rx: i64 = sessions
        .iter()
        .map(|x| x["bytes_received"].as_i64().unwrap())
        .sum();
    let expected_rx = 1849213 + 1848213 + 2 * (402117 + 98234411 + 5120) + 4096;
    assert_eq!(rx, expected_rx);
    let mb = (expected_rx as f64 / 1_048_576.0 * 100.0).round() / 100.0;
    assert_eq!(
        con["bandwidth_summary"]["total_mb_received"].as_f64(),
        Some(mb)
    );

    let d = data(fleet, "/api/vpn/clients/laptop-anna/details");
    assert_eq!(
        (d["is_connected"].as_bool(), d["devices"].clone()),
        (Some(true), serde_json::json!([KITCHEN, OFFICE]))
    );
    assert_eq!(d["sessions"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        d["total_bytes_received"].as_i64(),
        Some(1849213 + 1848213 + 2 * 5120)
    );
    assert_eq!(
        (
            d["usage_24h"]["bytes_received"].as_i64(),
            d["usage_24h"]["bytes_sent"].as_i64()
        ),
        (Some(1000), Some(2000))
    );
    let msg = error(fleet, "/api/vpn/clients/laptop-bob/details", 404);
    assert!(msg.contains("laptop-bob"), "{msg}");

    let u = data(fleet, "/api/vpn/statistics/usage?days=1");
    assert_eq!(
        (
            u["total_bytes_received"].as_i64(),
            u["total_bytes_sent"].as_i64()
        ),
        (Some(1000), Some(2000)),
        "{u}"
    );
    assert_eq!(
        (
            u["unique_clients"].as_u64(),
            u["total_sessions"].as_u64(),
            u["period_days"].as_i64()
        ),
        (Some(4), Some(9), Some(1))
    );
    let top = &u["clients"][0];
    assert_eq!(
        (
            top["common_name"].as_str(),
            top["device_name"].as_str(),
            top["bytes_received"].as_i64()
        ),
        (Some("laptop-anna"), Some(KITCHEN), Some(1000))
    );
    assert_eq!(top["sessions"].as_u64(), Some(2));
    let daily_rx: i64 = u["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["bytes_received"].as_i64().unwrap())
        .sum();
    assert_eq!(daily_rx, 1000);
    assert_eq!(data(fleet, "/api/vpn/statistics/usage")["period_days"], 7);
    assert_eq!(
        data(fleet, "/api/vpn/statistics/usage?days=90")["total_bytes_sent"],
        2000
    );
    for bad in ["0", "91", "-1", "seven", "1.5", ""] {
        let msg = error(fleet, &format!("/api/vpn/statistics/usage?days={bad}"), 400);
        assert!(msg.contains("days"), "{bad}: {msg}");
    }

    let (status, h) = fleet.get_as("/api/vpn/health", None);
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (h["success"].as_bool(), h["data"]["status"].as_str()),
        (Some(true), Some("healthy"))
    );
    assert_eq!(
        (
            h["data"]["instances"].as_u64(),
            h["data"]["connected_clients"].as_u64()
        ),
        (Some(4), Some(9))
    );
}

fn top_users_summary_and_alerts(fleet: &Fleet) {
    let sums = station_sums(fleet);
    assert_eq!(
        sums.keys().map(String::as_str).collect::<Vec<_>>(),
        STATIONS
    );
    let rank = |key: fn(&(i64, i64, i64, i64)) -> i64| {
        let mut v: Vec<(&String, i64)> = sums.iter().map(|(m, s)| (m, key(s))).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(m, _)| m.clone()).collect::<Vec<_>>()
    };
    for (sort, key) in [
        (
            "total",
            (|s: &(i64, i64, i64, i64)| s.0 + s.1) as fn(&(i64, i64, i64, i64)) -> i64,
        ),
        ("download", |s| s.1),
        ("upload", |s| s.0),
    ] {
        let t = data(
            fleet,
            &format!("/api/bandwidth/monitoring/top-users?minutes=180&limit=100&sort_by={sort}"),
        );
        assert_eq!(
            (t["total_users"].as_u64(), t["sort_by"].as_str()),
            (Some(6), Some(sort))
        );
        let got = names(&t["top_users"], "mac_address");
        assert_eq!(got, rank(key), "{sort}");
        for u in t["top_users"].as_array().unwrap() {
            let s = sums[u["mac_address"].as_str().unwrap()];
            assert_eq!(
                (u["upload_bytes"].as_i64(), u["download_bytes"].as_i64()),
                (Some(s.0), Some(s.1)),
                "{u}"
            );
            assert_eq!(u["devices"], serde_json::json!([KITCHEN, OFFICE]));
            assert_eq!(u["peak_download_mbps"].as_f64(), Some(mbps(s.3)));
        }
    }
    let by_down = data(
        fleet,
        "/api/bandwidth/monitoring/top-users?sort_by=download&minutes=180&limit=2",
    );
    assert_eq!(by_down["top_users"].as_array().map(Vec::len), Some(2));
    let first = &by_down["top_users"][0];
    assert_eq!(
        (
            first["rank"].as_u64(),
            first["mac_address"].as_str(),
            first["username"].as_str()
        ),
        (Some(1), Some(LAPTOP), Some("work-laptop"))
    );
    assert_eq!(first["ip_address"], "192.168.1.51");
    let by_up = data(
        fleet,
        "/api/bandwidth/monitoring/top-users?sort_by=UPLOAD&minutes=180",
    );
    assert_eq!(by_up["top_users"][0]["username"], "living-room-tv");
    assert_eq!(
        data(fleet, "/api/bandwidth/monitoring/top-users")["period_minutes"],
        30
    );

    let n = data(
        fleet,
        "/api/bandwidth/monitoring/network-summary?minutes=180",
    );
    let up: i64 = sums.values().map(|s| s.0).sum();
    let down: i64 = sums.values().map(|s| s.1).sum();
    assert_eq!(
        (
            n["total_upload_bytes"].as_i64(),
            n["total_download_bytes"].as_i64()
        ),
        (Some(up), Some(down)),
        "{n}"
    );
    assert_eq!(
        (
            n["active_users"].as_u64(),
            n["devices_total"].as_u64(),
            n["devices_connected"].as_u64()
        ),
        (Some(6), Some(2), Some(2))
    );
    let kitchen_down = query_i64(
        fleet,
        &format!("SELECT sum(s.tx_delta) FROM station_samples s JOIN routers r ON r.id = s.router_id WHERE r.name = '{KITCHEN}'"),
    );
    assert_eq!(n["devices"][0]["device_name"], KITCHEN);
    assert_eq!(
        (
            n["devices"][0]["download_bytes"].as_i64(),
            n["devices"][0]["users"].as_u64()
        ),
        (Some(kitchen_down), Some(6))
    );
    let max_tx = sums.values().map(|s| s.3).max().unwrap();
    assert_eq!(n["peak_user_download_mbps"].as_f64(), Some(mbps(max_tx)));

    // Alerts: a threshold just under the largest per-report rate flags exactly the directions
    // that reached it.
    let peaks: Vec<(String, &str, i64)> = sums
        .iter()
        .flat_map(|(m, s)| [(m.clone(), "download", s.3), (m.clone(), "upload", s.2)])
        .collect();
    let top_peak = peaks.iter().map(|p| p.2).max().unwrap();
    assert!(
        top_peak > 2_000_000,
        "rates too small to test alerts: {top_peak}"
    );
    // Thresholds above 100000 Mbit/s are refused, so the largest one is capped there.
    for threshold_kbps in [top_peak / 1000, top_peak / 2000, 1].map(|t| t.min(100_000_000)) {
        let threshold = threshold_kbps as f64 / 1000.0;
        let a = data(
            fleet,
            &format!("/api/bandwidth/monitoring/alerts?minutes=180&threshold={threshold}"),
        );
        let mut want: Vec<(String, String)> = peaks
            .iter()
            .filter(|p| p.2 as f64 >= threshold * 1_000_000.0)
            .map(|p| (p.0.clone(), p.1.to_string()))
            .collect();
        want.sort();
        let mut got: Vec<(String, String)> = a["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["mac_address"].as_str().unwrap().to_string(),
                    x["direction"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "threshold {threshold}");
        assert_eq!(a["total_alerts"].as_u64(), Some(want.len() as u64));
        assert!(!want.is_empty());
        for x in a["alerts"].as_array().unwrap() {
            let peak = x["peak_mbps"].as_f64().unwrap();
            let sev = if peak * 1e6 >= 2.0 * threshold * 1e6 {
                "critical"
            } else {
                "warning"
            };
            // Rounding of peak_mbps to 3 decimals can only matter right at twice the threshold.
            if (peak - 2.0 * threshold).abs() > 0.001 {
                assert_eq!(x["severity"], sev, "{x}");
            }
        }
        let peaks_sorted: Vec<f64> = a["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["peak_mbps"].as_f64().unwrap())
            .collect();
        assert!(
            peaks_sorted.windows(2).all(|w| w[0] >= w[1]),
            "{peaks_sorted:?}"
        );
    }
    let none = data(
        fleet,
        "/api/bandwidth/monitoring/alerts?threshold=100000&minutes=180",
    );
    let over_max = peaks.iter().filter(|p| p.2 >= 100_000_000_000).count();
    assert_eq!(none["total_alerts"].as_u64(), Some(over_max as u64));
    let d = data(fleet, "/api/bandwidth/monitoring/alerts");
    assert_eq!(
        (d["threshold_mbps"].as_f64(), d["period_minutes"].as_i64()),
        (Some(50.0), Some(30))
    );
}

fn series_peak_and_quality(fleet: &Fleet) {
    let sums = station_sums(fleet);
    let down: i64 = sums.values().map(|s| s.1).sum();
    let up: i64 = sums.values().map(|s| s.0).sum();

    let r = flat(fleet, "/api/bandwidth/usage/real-time?username=work-laptop");
    assert_eq!(
        (
            r["username"].as_str(),
            r["period_minutes"].as_i64(),
            r["resolution_seconds"].as_i64()
        ),
        (Some("work-laptop"), Some(60), Some(60))
    );
    let points = r["bandwidth_data"].as_array().unwrap();
    assert!(!points.is_empty());
    assert!(points.iter().all(|p| p["username"] == "work-laptop"
        && p["user_ip"] == "192.168.1.51"
        && p["latency_ms"].is_null()));
    assert_eq!(
        r["summary"]["total_download_bytes"].as_i64(),
        Some(sums[LAPTOP].1)
    );
    assert_eq!(
        r["summary"]["data_points"].as_u64(),
        Some(points.len() as u64)
    );
    let peak = points
        .iter()
        .map(|p| p["download_mbps"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(r["summary"]["peak_download_mbps"].as_f64(), Some(peak));

    let k = flat(
        fleet,
        &format!("/api/bandwidth/usage/real-time?device={KITCHEN}&minutes=15"),
    );
    let kitchen_up = query_i64(
        fleet,
        &format!("SELECT sum(s.rx_delta) FROM station_samples s JOIN routers r ON r.id = s.router_id WHERE r.name = '{KITCHEN}'"),
    );
    assert_eq!(
        (
            k["device"].as_str(),
            k["summary"]["total_upload_bytes"].as_i64()
        ),
        (Some(KITCHEN), Some(kitchen_up))
    );
    assert!(k["bandwidth_data"][0]["username"].is_null());
    let all = flat(fleet, "/api/bandwidth/usage/real-time?minutes=60");
    assert_eq!(
        (
            all["source"].as_str(),
            all["summary"]["total_download_bytes"].as_i64()
        ),
        (Some("station_samples"), Some(down))
    );
    let long = flat(fleet, "/api/bandwidth/usage/real-time?minutes=1440");
    assert_eq!(
        (long["source"].as_str(), long["resolution_seconds"].as_i64()),
        (Some("station_rollup_1h"), Some(3600))
    );
    assert_eq!(
        (
            long["summary"]["total_download_bytes"].as_i64(),
            long["summary"]["total_upload_bytes"].as_i64()
        ),
        (Some(down), Some(up))
    );

    let p = data(fleet, "/api/bandwidth/usage/peak?hours=2");
    let hourly = p["hourly"].as_array().unwrap();
    assert!(!hourly.is_empty() && hourly.len() <= 2);
    let hd: i64 = hourly
        .iter()
        .map(|h| h["download_bytes"].as_i64().unwrap())
        .sum();
    assert_eq!(hd, down);
    let max_tx = sums.values().map(|s| s.3).max().unwrap();
    assert_eq!(p["peak_download_mbps"].as_f64(), Some(mbps(max_tx)));
    assert!(p["peak_download_at"]
        .as_str()
        .is_some_and(|t| t.ends_with(":00:00.000Z")));
    // Six MACs on two devices.
    assert_eq!(
        hourly.iter().map(|h| h["stations"].as_u64().unwrap()).max(),
        Some(12)
    );
    let pu = data(
        fleet,
        "/api/bandwidth/usage/peak?username=living-room-tv&hours=168",
    );
    assert_eq!(
        (pu["username"].as_str(), pu["peak_upload_mbps"].as_f64()),
        (Some("living-room-tv"), Some(mbps(sums[TV].2)))
    );
    let st = pu["busiest_hour"]["stations"].as_u64().unwrap();
    assert!((1..=2).contains(&st), "{pu}");
    assert_eq!(data(fleet, "/api/bandwidth/usage/peak")["period_hours"], 24);

    let q = data(fleet, "/api/bandwidth/monitoring/quality");
    let stations = q["stations"].as_array().unwrap();
    assert_eq!(
        (q["summary"]["stations"].as_u64(), stations.len()),
        (Some(12), 12)
    );
    let weak = stations
        .iter()
        .find(|s| s["mac_address"] == "50:02:91:0c:4b:7e" && s["device_name"] == KITCHEN)
        .unwrap();
    assert_eq!(
        (
            weak["signal_dbm"].as_i64(),
            weak["signal_avg_dbm"].as_i64(),
            weak["quality"].as_str()
        ),
        (Some(-71), Some(-72), Some("fair"))
    );
    assert_eq!(
        (
            weak["inactive_time_ms"].as_i64(),
            weak["tx_bitrate_mbps"].as_f64()
        ),
        (Some(28740), Some(54.0))
    );
    assert_eq!(
        (
            weak["expected_throughput_mbps"].as_f64(),
            weak["rx_bitrate_mbps"].as_f64()
        ),
        (Some(19.5), Some(1.0))
    );
    // The fake routers never change retries or failures, only the packet counters.
    assert_eq!(
        (
            weak["tx_retries"].as_i64(),
            weak["tx_failed"].as_i64(),
            weak["retry_rate_percent"].as_f64()
        ),
        (Some(0), Some(0), Some(0.0))
    );
    assert!(weak["tx_packets"].as_i64().unwrap() > 0);
    assert!(weak["signal_min_dbm"].is_null());
    let best = stations
        .iter()
        .find(|s| s["mac_address"] == "a4:83:e7:5d:2e:90")
        .unwrap();
    assert_eq!(best["quality"], "excellent");
    assert_eq!(q["summary"]["weak_signal_stations"].as_u64(), Some(0));
    assert_eq!(q["summary"]["fair"].as_u64(), Some(2));
    let mine = data(
        fleet,
        "/api/bandwidth/monitoring/quality?username=living-room-tv&minutes=1440",
    );
    let mine_st = mine["stations"].as_array().unwrap();
    assert_eq!(mine_st.len(), 2);
    for s in mine_st {
        assert_eq!(
            (
                s["signal_min_dbm"].as_i64(),
                s["signal_max_dbm"].as_i64(),
                s["signal_mean_dbm"].as_f64()
            ),
            (Some(-52), Some(-52), Some(-52.0))
        );
        assert_eq!(
            (s["username"].as_str(), s["quality"].as_str()),
            (Some("living-room-tv"), Some("excellent"))
        );
    }

    let (status, h) = fleet.get_as("/api/bandwidth/health", None);
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (
            h["data"]["status"].as_str(),
            h["data"]["devices_reporting"].as_u64()
        ),
        (Some("healthy"), Some(2))
    );
    assert_eq!(h["data"]["active_stations"].as_i64(), Some(12));
}

/// Every read route of the group.
const READ_ROUTES: [&str; 17] = [
    "/api/mikrotik/devices",
    "/api/mikrotik/devices/status?identities=ap-kitchen",
    "/api/mikrotik/devices/ap-kitchen/currentstatus",
    "/api/mikrotik/interfaces",
    "/api/mikrotik/users/active",
    "/api/mikrotik/users/living-room-tv/stats",
    "/api/vpn/status",
    "/api/vpn/clients",
    "/api/vpn/clients/connected",
    "/api/vpn/clients/laptop-anna/details",
    "/api/vpn/statistics/usage",
    "/api/bandwidth/usage/real-time",
    "/api/bandwidth/usage/peak",
    "/api/bandwidth/monitoring/top-users",
    "/api/bandwidth/monitoring/network-summary",
    "/api/bandwidth/monitoring/alerts",
    "/api/bandwidth/monitoring/quality",
];

fn auth_and_bounds(fleet: &Fleet) {
    for route in READ_ROUTES {
        let msg = error_as(fleet, route, None, 401);
        assert!(msg.contains("API key"), "{route}: {msg}");
        error_as(fleet, route, Some("rsk_not_a_key"), 401);
        let (status, body) = fleet.get_as(route, Some(&fleet.admin_key));
        assert_eq!(
            (status, body["success"].as_bool()),
            (200, Some(true)),
            "{route}: {body}"
        );
    }
    for open in [
        "/api/vpn/health",
        "/api/bandwidth/health",
        "/api/mikrotik/health",
    ] {
        assert_eq!(fleet.get_as(open, None).0, 200, "{open}");
    }
    // Unknown parameters (cache busters, misspellings) are ignored on every read route.
    for route in READ_ROUTES {
        let sep = if route.contains('?') { '&' } else { '?' };
        let (status, body) = fleet.get(&format!("{route}{sep}_=1700000000123&verbose=1"));
        assert_eq!(
            (status, body["success"].as_bool()),
            (200, Some(true)),
            "{route}: {body}"
        );
    }
    let bad = [
        ("/api/bandwidth/usage/real-time?minutes=1441", "minutes"),
        ("/api/bandwidth/usage/real-time?minutes=0", "minutes"),
        ("/api/bandwidth/usage/real-time?minutes=ten", "minutes"),
        ("/api/bandwidth/usage/peak?hours=169", "hours"),
        ("/api/bandwidth/usage/peak?hours=0", "hours"),
        ("/api/bandwidth/monitoring/top-users?limit=101", "limit"),
        ("/api/bandwidth/monitoring/top-users?limit=0", "limit"),
        (
            "/api/bandwidth/monitoring/top-users?sort_by=latency",
            "sort_by",
        ),
        ("/api/bandwidth/monitoring/top-users?minutes=181", "minutes"),
        (
            "/api/bandwidth/monitoring/network-summary?minutes=181",
            "minutes",
        ),
        ("/api/bandwidth/monitoring/alerts?threshold=0", "threshold"),
        ("/api/bandwidth/monitoring/alerts?threshold=-3", "threshold"),
        (
            "/api/bandwidth/monitoring/alerts?threshold=lots",
            "threshold",
        ),
        (
            "/api/bandwidth/monitoring/alerts?threshold=100001",
            "threshold",
        ),
        ("/api/bandwidth/monitoring/alerts?minutes=999", "minutes"),
        ("/api/bandwidth/monitoring/quality?minutes=1441", "minutes"),
        (
            "/api/bandwidth/monitoring/quality?minutes=2&minutes=3",
            "more than once",
        ),
    ];
    for (path, word) in bad {
        let msg = error(fleet, path, 400);
        assert!(msg.contains(word), "{path}: {msg}");
    }
    let long = "x".repeat(300);
    error(
        fleet,
        &format!("/api/bandwidth/usage/real-time?username={long}"),
        400,
    );
    error(fleet, &format!("/api/mikrotik/users/{long}/stats"), 400);
    error(fleet, "/api/bandwidth/usage/real-time?username=nobody", 404);
    error(fleet, "/api/bandwidth/usage/real-time?device=nope", 404);
    error(fleet, "/api/bandwidth/usage/peak?username=nobody", 404);
    error(
        fleet,
        "/api/bandwidth/monitoring/quality?username=nobody",
        404,
    );
}

/// One request with an optional key: (status, headers in lowercase, body as JSON or Null).
fn raw(
    fleet: &Fleet,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> (u16, Vec<(String, String)>, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| vec![("X-API-Key", k)]).unwrap_or_default();
    let (status, headers, body) =
        http_exchange(fleet.collector.api, method, path, &headers, None).expect("http request");
    (
        status,
        headers,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Asserts the group's error envelope: exactly `success: false`, a non-empty `error` string and
/// an RFC 3339 `timestamp`.
fn assert_error_envelope(what: &str, body: &Value) {
    let o = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {body}"));
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "success", "timestamp"], "{what}: {body}");
    assert_eq!(o["success"], false, "{what}");
    assert!(
        o["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {body}"
    );
    assert!(
        o["timestamp"]
            .as_str()
            .is_some_and(|t| t.len() == 24 && t.ends_with('Z')),
        "{what}: {body}"
    );
}

/// JSON type names of a value's fields, for shape checks.
fn types(v: &Value) -> BTreeMap<String, &'static str> {
    let name = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    v.as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), name(v))).collect())
        .unwrap_or_default()
}

/// Asserts that `v` has every `(field, type)` of `want` (other fields may sit beside them).
fn assert_fields(what: &str, v: &Value, want: &[(&str, &str)]) {
    let have = types(v);
    for (field, ty) in want {
        assert_eq!(have.get(*field).copied(), Some(*ty), "{what}.{field}: {v}");
    }
}

/// The document's shapes by field names and JSON types, the group's error envelopes for
/// 401/403/404/405 and a 400, the 429 shape and header under configured per-route limits, the
/// deprecated aliases answering as their documented paths, and `nas_ip` from a live connection.
#[test]
fn documented_shapes_errors_limits_and_aliases() {
    let config = r#"
[isp_rate_limits]
default_per_hour = 1000
[isp_rate_limits.routes]
"GET /api/vpn/health" = 3
"GET /api/mikrotik/devices/{device}/currentstatus" = 2
"#;
    let fleet = Fleet::start_with_config(&[(KITCHEN, "home")], 3, Some(config));

    // Shapes, field by field, as the document writes them.
    let d = flat(&fleet, "/api/mikrotik/devices");
    assert_fields(
        "devices",
        &d,
        &[
            ("success", "boolean"),
            ("devices", "array"),
            ("total_devices", "number"),
            ("connected_devices", "number"),
        ],
    );
    let dev = &d["devices"][0];
    assert_fields(
        "device",
        dev,
        &[
            ("name", "string"),
            ("host", "string"),
            ("use_ssl", "boolean"),
            ("connected", "boolean"),
            ("system_info", "object"),
        ],
    );
    // `port`: no management port here (the agent dials out), documented as null.
    assert!(dev["port"].is_null(), "{dev}");
    assert_fields(
        "system_info",
        &dev["system_info"],
        &[
            ("uptime", "string"),
            ("version", "string"),
            ("cpu_load", "string"),
        ],
    );
    let s = flat(&fleet, "/api/vpn/status");
    assert_fields(
        "vpn status",
        &s,
        &[("success", "boolean"), ("server_status", "object")],
    );
    assert_fields(
        "server_status",
        &s["server_status"],
        &[
            ("service_running", "boolean"),
            ("connected_clients", "number"),
            ("client_list", "array"),
            ("health_score", "number"),
        ],
    );
    assert!(s["server_status"]
        .as_object()
        .unwrap()
        .contains_key("port_listening"));
    let c = flat(&fleet, "/api/vpn/clients");
    assert_fields(
        "vpn clients",
        &c,
        &[
            ("success", "boolean"),
            ("clients", "array"),
            ("statistics", "object"),
        ],
    );
    assert_fields(
        "statistics",
        &c["statistics"],
        &[("total_clients", "number"), ("connected_clients", "number")],
    );
    assert_fields(
        "client",
        &c["clients"][0],
        &[
            ("name", "string"),
            ("full_name", "string"),
            ("is_connected", "boolean"),
            ("connection_info", "object"),
        ],
    );
    let con = flat(&fleet, "/api/vpn/clients/connected");
    assert_fields(
        "connected",
        &con,
        &[
            ("success", "boolean"),
            ("connected_clients", "array"),
            ("total_connected", "number"),
            ("bandwidth_summary", "object"),
        ],
    );
    assert_fields(
        "bandwidth_summary",
        &con["bandwidth_summary"],
        &[("total_mb_received", "number"), ("total_mb_sent", "number")],
    );
    assert_fields(
        "session",
        &con["connected_clients"][0],
        &[
            ("common_name", "string"),
            ("real_address", "string"),
            ("virtual_address", "string"),
            ("bytes_received", "number"),
            ("bytes_sent", "number"),
            ("connected_since", "string"),
        ],
    );
    let rt = flat(
        &fleet,
        &format!("/api/bandwidth/usage/real-time?device={KITCHEN}&minutes=60"),
    );
    assert_fields(
        "real-time",
        &rt,
        &[
            ("success", "boolean"),
            ("period_minutes", "number"),
            ("bandwidth_data", "array"),
            ("summary", "object"),
        ],
    );
    assert_fields(
        "summary",
        &rt["summary"],
        &[
            ("peak_download_mbps", "number"),
            ("avg_download_mbps", "number"),
            ("data_points", "number"),
        ],
    );
    let point = &rt["bandwidth_data"][0];
    assert_fields(
        "point",
        point,
        &[
            ("timestamp", "string"),
            ("download_mbps", "number"),
            ("upload_mbps", "number"),
            ("total_mbps", "number"),
        ],
    );
    // The agent is connected: the NAS address is the address its session comes from.
    assert!(
        rt["bandwidth_data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["nas_ip"] == "127.0.0.1"),
        "{rt}"
    );
    // Routes whose document shows only the common envelope keep {success, data, timestamp}.
    let st = data(
        &fleet,
        &format!("/api/mikrotik/devices/status?identities={KITCHEN}"),
    );
    assert_fields(
        "device status",
        &st[0],
        &[
            ("device_name", "string"),
            ("connected", "boolean"),
            ("vpn_connected", "boolean"),
        ],
    );
    let h = data(&fleet, "/api/mikrotik/health");
    assert_eq!(
        (h["service"].as_str(), h["devices"].as_u64()),
        (Some("mikrotik"), Some(1)),
        "{h}"
    );

    // Deprecated aliases: the same handler, the same answer.
    for (old, new) in [
        ("/api/devices", "/api/mikrotik/devices"),
        ("/api/interfaces", "/api/mikrotik/interfaces"),
        ("/api/users/active", "/api/mikrotik/users/active"),
    ] {
        let (mut a, mut b) = (fleet.get(old).1, fleet.get(new).1);
        a.as_object_mut().unwrap().remove("timestamp");
        b.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(a, b, "{old} answers as {new}");
    }

    // Errors in the group's envelope, whoever answers them.
    let (status, h, body) = raw(
        &fleet,
        "POST",
        "/api/mikrotik/devices",
        Some(&fleet.read_key),
    );
    assert_eq!(status, 405, "{body}");
    assert_error_envelope("405", &body);
    assert!(
        header(&h, "allow").is_some_and(|a| a.contains("GET")),
        "{h:?}"
    );
    let (status, _, body) = raw(&fleet, "DELETE", "/api/vpn/status", Some(&fleet.read_key));
    assert_eq!(status, 405);
    assert_error_envelope("405 vpn", &body);
    let (status, _, body) = raw(
        &fleet,
        "GET",
        "/api/mikrotik/no-such-route",
        Some(&fleet.read_key),
    );
    assert_eq!(status, 404);
    assert_error_envelope("404 fallback", &body);
    let (status, h, body) = raw(&fleet, "GET", "/api/mikrotik/devices", None);
    assert_eq!(status, 401);
    assert_error_envelope("401", &body);
    assert_eq!(header(&h, "www-authenticate"), Some("Bearer"));
    let (status, _, body) = raw(
        &fleet,
        "GET",
        &format!("/api/mikrotik/devices/{KITCHEN}/config"),
        Some(&fleet.read_key),
    );
    assert_eq!(status, 403);
    assert_error_envelope("403", &body);
    let (status, _, body) = raw(
        &fleet,
        "GET",
        "/api/mikrotik/devices/ap-garage/currentstatus",
        Some(&fleet.read_key),
    );
    assert_eq!(status, 404);
    assert_error_envelope("404", &body);
    let (status, _, body) = raw(
        &fleet,
        "GET",
        "/api/bandwidth/usage/peak?hours=999",
        Some(&fleet.read_key),
    );
    assert_eq!(status, 400);
    assert_error_envelope("400", &body);
    // Other groups keep their own shape.
    let (status, _, body) = raw(&fleet, "GET", "/no/such/route", None);
    assert_eq!(status, 404);
    assert!(
        body.get("success").is_none() && body["error"].is_string(),
        "{body}"
    );

    // Per-route limits from the config: 3 per hour on /api/vpn/health (open: per address).
    for i in 0..3 {
        assert_eq!(
            raw(&fleet, "GET", "/api/vpn/health", None).0,
            200,
            "request {i}"
        );
    }
    let (status, h, body) = raw(&fleet, "GET", "/api/vpn/health", None);
    assert_eq!(status, 429, "{body}");
    let o = body.as_object().unwrap();
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "retry_after", "success"], "{body}");
    assert_eq!(
        (&o["success"], &o["error"]),
        (&Value::Bool(false), &Value::from("Rate limit exceeded"))
    );
    let retry = o["retry_after"].as_str().expect("retry_after is a string");
    // 3 per hour: one request back every 1200 s.
    assert_eq!(retry, "1200", "{body}");
    assert_eq!(header(&h, "retry-after"), Some(retry));
    // Other routes have their own budget; 2 per hour per key on currentstatus, counted per route
    // whatever the device name (the 404 for ap-garage above was the first).
    assert_eq!(raw(&fleet, "GET", "/api/bandwidth/health", None).0, 200);
    let cs = |dev: &str| {
        raw(
            &fleet,
            "GET",
            &format!("/api/mikrotik/devices/{dev}/currentstatus"),
            Some(&fleet.read_key),
        )
    };
    assert_eq!(cs(KITCHEN).0, 200);
    let (status, h, body) = cs(KITCHEN);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["retry_after"], "1800", "{body}");
    assert_eq!(header(&h, "retry-after"), Some("1800"));
    // Another key has its own bucket.
    assert_eq!(cs_with(&fleet, KITCHEN, &fleet.admin_key), 200);
}

fn cs_with(fleet: &Fleet, dev: &str, key: &str) -> u16 {
    raw(
        fleet,
        "GET",
        &format!("/api/mikrotik/devices/{dev}/currentstatus"),
        Some(key),
    )
    .0
}

#[test]
fn empty_fleet_answers_empty() {
    let fleet = Fleet::start(&[], 0);
    let d = flat(&fleet, "/api/mikrotik/devices");
    assert_eq!(
        (
            d["total_devices"].as_u64(),
            d["devices"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        data(&fleet, "/api/mikrotik/interfaces")["total_interfaces"],
        0
    );
    assert_eq!(
        data(&fleet, "/api/mikrotik/users/active")["active_users_count"],
        0
    );
    let v = flat(&fleet, "/api/vpn/status");
    assert_eq!(
        (
            v["server_status"]["service_running"].as_bool(),
            v["server_status"]["health_score"].is_null()
        ),
        (Some(false), true)
    );
    assert_eq!(
        flat(&fleet, "/api/vpn/clients")["statistics"]["total_clients"],
        0
    );
    assert_eq!(
        flat(&fleet, "/api/vpn/clients/connected")["total_connected"],
        0
    );
    let u = data(&fleet, "/api/vpn/statistics/usage?days=90");
    assert_eq!(
        (
            u["total_bytes_received"].as_i64(),
            u["clients"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        flat(&fleet, "/api/bandwidth/usage/real-time")["summary"]["data_points"],
        0
    );
    assert_eq!(
        flat(&fleet, "/api/bandwidth/usage/real-time?minutes=1440")["bandwidth_data"],
        serde_json::json!([])
    );
    assert_eq!(
        data(&fleet, "/api/bandwidth/usage/peak?hours=168")["peak_download_mbps"].as_f64(),
        Some(0.0)
    );
    assert_eq!(
        data(&fleet, "/api/bandwidth/monitoring/top-users")["total_users"],
        0
    );
    let n = data(&fleet, "/api/bandwidth/monitoring/network-summary");
    assert_eq!(
        (
            n["total_bytes"].as_i64(),
            n["devices"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        data(&fleet, "/api/bandwidth/monitoring/alerts?threshold=0.001")["total_alerts"],
        0
    );
    assert_eq!(
        data(&fleet, "/api/bandwidth/monitoring/quality")["summary"]["stations"],
        0
    );
    for h in ["/api/vpn/health", "/api/bandwidth/health"] {
        let (status, body) = fleet.get_as(h, None);
        assert_eq!(
            (status, body["data"]["status"].as_str()),
            (200, Some("healthy")),
            "{h}"
        );
    }
    let st = data(&fleet, "/api/mikrotik/devices/status?identities=ap-kitchen");
    assert_eq!(st[0]["error"], "unknown device", "{st}");
    error(
        &fleet,
        "/api/mikrotik/devices/ap-kitchen/currentstatus",
        404,
    );
    error(&fleet, "/api/mikrotik/users/anyone/stats", 404);
    error(&fleet, "/api/vpn/clients/anyone/details", 404);
    error_as(&fleet, "/api/mikrotik/devices", None, 401);
}
