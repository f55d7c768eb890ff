//! The fleet route groups end to end (real agents on fake routers, real collector): `/api/openwrt`,
//! the monitor routes (`/api/health`, `/api/performance`, `/api/export`, `/api/logs`,
//! `/api/pppoe_interfaces`), the gateway routes (`/api/organization`, `/api/sites`,
//! `/api/gateways`, `/api/gateway/{id}/...`), and the rate limiter.

use std::net::SocketAddr;
use std::time::Duration;

use routerstats_tests::harness::{head_text, http_exchange_within, wait_for, Fleet};
use serde_json::Value;

/// The fixture's pppoe-wan counters (agent/fixtures/proc/net-dev) before any tick.
const PPPOE_RX_BASE: u64 = 48_318_382_117;
const PPPOE_TX_BASE: u64 = 6_553_120_911;
/// A wlan0 station of agent/fixtures/iw/station-dump-wlan0.txt, and one more.
const TABLET_MAC: &str = "3c:22:fb:7a:10:01";
const PHONE_MAC: &str = "f0:18:98:44:9a:21";

/// GET returning status, header lines and body.
fn raw_get(addr: SocketAddr, path: &str, key: Option<&str>) -> (u16, String, String) {
    let auth: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
    let (status, headers, body) =
        http_exchange_within(addr, "GET", path, &auth, None, Duration::from_secs(20)).unwrap();
    (status, head_text(&headers), body)
}

/// GET with a key; a 429 is waited out (the limiter is tested on its own below).
fn get_key(fleet: &Fleet, path: &str, key: Option<&str>) -> (u16, Value) {
    for _ in 0..20 {
        let (status, body) = fleet.get_as(path, key);
        if status != 429 {
            return (status, body);
        }
        let secs = body["retry_after"].as_u64().unwrap_or(1);
        std::thread::sleep(Duration::from_secs(secs));
    }
    panic!("{path} stayed rate limited");
}

fn get(fleet: &Fleet, path: &str) -> (u16, Value) {
    get_key(fleet, path, Some(&fleet.read_key))
}

/// GET that must answer 200.
fn ok(fleet: &Fleet, path: &str) -> Value {
    let (status, body) = get(fleet, path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn status_of(fleet: &Fleet, path: &str) -> u16 {
    get(fleet, path).0
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Adds lease lines to a fake router's dnsmasq lease file (atomically, as dnsmasq does).
fn add_leases(fleet: &Fleet, router: usize, lines: &[&str]) {
    let path = fleet.routers[router].router.root.join("tmp/dhcp.leases");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// The client entry of `mac` on `router` in an `/api/openwrt` answer.
fn client<'a>(doc: &'a Value, ssid: &str, router: &str, mac: &str) -> &'a Value {
    doc["clients"][ssid]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["router"] == router && c["mac"] == mac))
        .unwrap_or_else(|| panic!("no client {mac} on {router} under {ssid}: {doc}"))
}

#[test]
fn fleet_routes_serve_real_values() {
    let mut fleet = Fleet::start(
        &[
            ("ap-kitchen", "home"),
            ("ap-hall", "home"),
            ("ap-office", "office"),
        ],
        3,
    );
    // The fixture stations have no leases in the fixture lease file: give the tablet one on
    // ap-kitchen (seen by ap-hall, same site, but not by ap-office) and the phone an unnamed one
    // on ap-office.
    add_leases(
        &fleet,
        0,
        &["4102444800 3c:22:fb:7a:10:01 192.168.1.77 kitchen-tablet 01:3c:22:fb:7a:10:01"],
    );
    add_leases(
        &fleet,
        2,
        &["4102444800 f0:18:98:44:9a:21 10.20.0.78 * 01:f0:18:98:44:9a:21"],
    );

    // Keep traffic flowing until the leases are reported and every pppoe-wan has live rates.
    let pppoe = wait_for(
        Duration::from_secs(60),
        "leases reported and live PPPoE rates",
        || {
            for r in &fleet.routers {
                r.router.tick(30).unwrap();
            }
            std::thread::sleep(Duration::from_millis(150));
            let doc = ok(&fleet, "/api/openwrt");
            // Both added leases must have been reported (each router reports on its own clock).
            let resolved = doc["clients"]["homenet"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|c| c["router"] == "ap-hall" && c["hostname"] == "kitchen-tablet")
                    && l.iter().any(|c| {
                        c["router"] == "ap-office"
                            && c["mac"] == PHONE_MAC
                            && c["ip"] == "10.20.0.78"
                    })
            });
            let p = ok(&fleet, "/api/pppoe_interfaces");
            let live = p["pppoe_interfaces"].as_array().is_some_and(|l| {
                l.len() == 3
                    && l.iter().all(|i| {
                        i["rx_rate"].as_u64().unwrap_or(0) > 0
                            && i["tx_rate"].as_u64().unwrap_or(0) > 0
                    })
            });
            (resolved && live).then_some(p)
        },
    );
    // PPPoE interfaces: pppoe-wan of every router, live rates, totals adding up.
    let list = pppoe["pppoe_interfaces"].as_array().unwrap();
    let routers: Vec<&str> = list.iter().filter_map(|i| i["router"].as_str()).collect();
    assert_eq!(routers, ["ap-hall", "ap-kitchen", "ap-office"]);
    for i in list {
        assert_eq!(i["name"], "pppoe-wan");
        assert_eq!(i["type"], "pppoe");
        assert_eq!(i["running"], true);
        assert!(u(&i["rx_bytes"]) > PPPOE_RX_BASE, "{i}");
        assert!(u(&i["tx_bytes"]) > PPPOE_TX_BASE, "{i}");
        assert_eq!(i["address"], Value::Null);
    }
    let agg = &pppoe["aggregate_stats"];
    assert_eq!(agg["active_sessions"], 3);
    assert_eq!(agg["online_accounts"], 3);
    assert_eq!(
        u(&agg["total_download_bytes"]),
        list.iter().map(|i| u(&i["rx_bytes"])).sum::<u64>()
    );
    assert_eq!(
        u(&agg["total_rx_rate"]),
        list.iter().map(|i| u(&i["rx_rate"])).sum::<u64>()
    );
    assert_eq!(pppoe["success"], true);

    fleet.stop_agents();

    // /api/openwrt: uptimes, SSID counts, clients with hostnames from the site's leases.
    let doc = ok(&fleet, "/api/openwrt");
    for r in ["ap-kitchen", "ap-hall", "ap-office"] {
        let up = doc[format!("{r} uptime")].as_str().unwrap_or_default();
        assert!(
            up.ends_with('m') || up.ends_with('h') || up.ends_with('d'),
            "{r}: {up}"
        );
    }
    // Per router: 3 stations on wlan0 and 2 on wlan1 (SSID HomeNet), 1 mesh peer on mesh0.
    assert_eq!(doc["homenet"], "[15]");
    assert_eq!(doc["unknown_ssid"], "[3]");
    assert_eq!(doc["total clients"], 18);
    for r in ["ap-kitchen", "ap-hall"] {
        let c = client(&doc, "homenet", r, TABLET_MAC);
        assert_eq!(c["hostname"], "kitchen-tablet", "{r}");
        assert_eq!(c["ip"], "192.168.1.77", "{r}");
        assert_eq!(c["interface"], "wlan0");
        assert_eq!(c["site"], "home");
        assert!(
            u(&c["rx_bytes"]) > 18_234_567 && u(&c["tx_bytes"]) > 254_678_901,
            "{c}"
        );
        assert!(u(&c["connected_time"]) >= 5123);
        // The tool's text: "17.4 MB / 242.9 MB".
        let text = c["rx/tx"].as_str().unwrap_or_default();
        let parts: Vec<&str> = text.split(" / ").collect();
        assert_eq!(parts.len(), 2, "{c}");
        for part in parts {
            let (num, unit) = part.split_once(' ').unwrap_or_default();
            assert!(
                num.parse::<f64>().is_ok() && ["MB", "GB"].contains(&unit),
                "{c}"
            );
        }
        // The phone's lease is at the office: not visible at home.
        assert_eq!(client(&doc, "homenet", r, PHONE_MAC)["hostname"], PHONE_MAC);
    }
    let office_tablet = client(&doc, "homenet", "ap-office", TABLET_MAC);
    assert_eq!(office_tablet["hostname"], TABLET_MAC);
    assert_eq!(office_tablet["ip"], Value::Null);
    // A lease without a hostname ("*") gives the IP.
    let office_phone = client(&doc, "homenet", "ap-office", PHONE_MAC);
    assert_eq!(office_phone["hostname"], "10.20.0.78");
    assert_eq!(office_phone["ip"], "10.20.0.78");
    assert_eq!(
        client(&doc, "unknown_ssid", "ap-hall", "96:83:c4:5e:6f:71")["interface"],
        "mesh0"
    );

    // /api/health: open, but without a key only the collector's own health (no router names,
    // sites or last-seen times); with a read key all three online, with the estimated interval
    // of 200 ms.
    let (s, anon) = get_key(&fleet, "/api/health", None);
    assert_eq!(s, 200, "{anon}");
    assert_eq!(anon["collector"]["status"], "up");
    assert!(
        anon.get("router_status").is_none() && anon.get("routers").is_none(),
        "{anon}"
    );
    assert!(!anon.to_string().contains("ap-hall"), "{anon}");
    let (s, health) = get_key(&fleet, "/api/health", Some(&fleet.read_key));
    assert_eq!(s, 200, "{health}");
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["collector"]["status"], "up");
    assert_eq!(
        (
            u(&health["routers"]["total"]),
            u(&health["routers"]["online"])
        ),
        (3, 3)
    );
    assert!(health["online_rule"]
        .as_str()
        .is_some_and(|r| r.contains("90 s")));
    for r in health["router_status"].as_array().unwrap() {
        assert_eq!(r["status"], "online", "{r}");
        assert!(
            r["last_seen"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{r}"
        );
        let iv = r["report_interval_s"].as_f64().unwrap();
        assert!(iv > 0.0 && iv < 10.0, "{r}");
    }

    // Organization and sites.
    let org = ok(&fleet, "/api/organization");
    assert_eq!(org["success"], true);
    assert_eq!(org["data"]["org_name"], "routerstats");
    assert_eq!(org["data"]["org_id"].as_str().map(str::len), Some(64));
    assert_eq!(
        (
            u(&org["data"]["num_gateways"]),
            u(&org["data"]["num_sites"])
        ),
        (3, 2)
    );
    let sites = ok(&fleet, "/api/sites");
    let sites: Vec<(String, u64)> = sites["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                u(&s["num_devices"]),
            )
        })
        .collect();
    assert_eq!(sites, [("home".to_string(), 2), ("office".to_string(), 1)]);

    // Gateways: windowed totals are sums of deltas (= last counter - first counter here, all
    // data being minutes old), the same for every window, and the 20-point series sums to them.
    let gws = ok(&fleet, "/api/gateways?duration=15m");
    assert_eq!(gws["duration"], "15m");
    assert_eq!(u(&gws["end"]) - u(&gws["start"]), 900);
    let list = gws["data"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let kitchen = list.iter().find(|g| g["name"] == "ap-kitchen").unwrap();
    assert_eq!(kitchen["status"], "connected");
    assert_eq!(kitchen["site_id"], "home");
    let id = u(&kitchen["id"]);
    let ports: Vec<&str> = kitchen["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["pppoe-wan", "br-lan", "wlan0", "eth0", "wg0"] {
        assert!(ports.contains(&p), "{p} missing: {ports:?}");
    }
    assert!(!ports.contains(&"lo"));
    assert_eq!(u(&kitchen["num_ports"]), ports.len() as u64);
    let port = |g: &Value, name: &str| -> (u64, u64) {
        let p = g["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone();
        (u(&p["rx_bytes"]), u(&p["tx_bytes"]))
    };
    let wan_port = kitchen["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "pppoe-wan")
        .unwrap();
    assert_eq!(wan_port["usage"], "wan");
    let (rx15, tx15) = port(kitchen, "pppoe-wan");
    let db = fleet.collector.db();
    let (first_rx, first_tx): (i64, i64) = db
        .query_row(
            "SELECT rx_bytes, tx_bytes FROM interface_samples WHERE router_id = ?1 AND name = 'pppoe-wan' ORDER BY ts_ms LIMIT 1",
            [id as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let latest = ok(&fleet, &format!("/api/gateway/{id}/ports"));
    assert_eq!(latest["data"]["gateway_name"], "ap-kitchen");
    let wan = &latest["data"]["ports"]["pppoe-wan"];
    assert_eq!(rx15, u(&wan["rx_bytes"]) - first_rx as u64);
    assert_eq!(tx15, u(&wan["tx_bytes"]) - first_tx as u64);
    assert!(rx15 > 0 && tx15 > 0);
    assert!(latest["data"]["ports"].get("lo").is_none());
    for (duration, interval) in [("15m", 45), ("1h", 180), ("1d", 4320), ("7d", 30240)] {
        let g = ok(&fleet, &format!("/api/gateways?duration={duration}"));
        let k = g["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "ap-kitchen")
            .unwrap();
        assert_eq!(port(k, "pppoe-wan"), (rx15, tx15), "{duration}");
        for gw in [id.to_string(), "ap-kitchen".to_string()] {
            let t = ok(
                &fleet,
                &format!("/api/gateway/{gw}/port/pppoe-wan/traffic?duration={duration}"),
            );
            let d = &t["data"];
            let points = d["points"].as_array().unwrap();
            assert_eq!(points.len(), 20, "{duration}");
            assert_eq!(u(&d["interval"]), interval);
            assert_eq!(d["timestamps"].as_array().map(Vec::len), Some(20));
            assert_eq!(
                u(&points[1]["timestamp"]) - u(&points[0]["timestamp"]),
                interval
            );
            let rx: u64 = points.iter().map(|p| u(&p["rx_bytes"])).sum();
            let tx: u64 = points.iter().map(|p| u(&p["tx_bytes"])).sum();
            assert_eq!((rx, tx), (rx15, tx15), "{duration} via {gw}");
            assert_eq!((u(&d["rx_bytes"]), u(&d["tx_bytes"])), (rx15, tx15));
            for p in points {
                assert_eq!(u(&p["rx_bps"]), u(&p["rx_bytes"]) * 8 / interval, "{p}");
            }
            // All of the traffic is recent: it is in the last point(s), and early points are zeros.
            assert_eq!(u(&points[0]["rx_bytes"]), 0, "{duration}");
        }
    }
    let site = ok(&fleet, "/api/gateways?duration=1h&site_id=office");
    let names: Vec<&str> = site["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["ap-office"]);
    // The site's totals are the router's own, the same as in the unfiltered answer.
    let all = ok(&fleet, "/api/gateways?duration=1h");
    let office = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "ap-office")
        .unwrap();
    assert_eq!(site["data"][0]["ports"], office["ports"]);
    assert!(
        office["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["rx_bytes"].as_u64().unwrap_or(0) > 0),
        "{office}"
    );

    // Export: a timestamped download of everything current.
    let (s, head, body) = raw_get(fleet.collector.api, "/api/export", Some(&fleet.read_key));
    assert_eq!(s, 200, "{body}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-disposition: attachment; filename=\"routerstats-export-"),
        "{head}"
    );
    assert!(head.contains("content-type: application/json"), "{head}");
    let export: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(export["router_count"], 3);
    let ex = export["routers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ap-kitchen")
        .unwrap();
    assert!(ex["leases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["hostname"] == "kitchen-tablet"));
    assert_eq!(ex["stations"].as_array().map(Vec::len), Some(6));
    assert_eq!(ex["wireguard_peers"].as_array().map(Vec::len), Some(6));
    assert_eq!(ex["openvpn_clients"].as_array().map(Vec::len), Some(4));
    let ex_wan = ex["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "pppoe-wan")
        .unwrap();
    assert_eq!(ex_wan["rx_bytes"], wan["rx_bytes"]);
    assert!(ex["system"]["uptime_s"].as_u64().is_some());

    // Performance: the requests above are counted per route; reports arrived.
    let perf = ok(&fleet, "/api/performance");
    assert!(u(&perf["requests"]["total"]) >= 20, "{perf}");
    let openwrt = perf["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == "GET /api/openwrt")
        .unwrap();
    assert!(u(&openwrt["count"]) >= 2, "{openwrt}");
    assert!(openwrt["average_response_ms"]
        .as_f64()
        .is_some_and(|ms| ms > 0.0));
    assert!(u(&perf["ingest"]["reports_in_window"]) >= 9, "{perf}");
    assert_eq!(perf["ingest"]["routers_reporting"], 3);

    // Logs: the collector's own lines; level filter; clearing needs the admin key.
    let logs = ok(&fleet, "/api/logs?count=1000");
    let lines = logs["logs"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("collector listening"))),
        "{logs}"
    );
    let warn = ok(&fleet, "/api/logs?level=warn&count=1000");
    assert!(warn["logs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"));
    assert_eq!(
        ok(&fleet, "/api/logs?count=1")["logs"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(status_of(&fleet, "/api/logs?clear=true"), 403);
    let (s, cleared) = get_key(&fleet, "/api/logs?clear=true", Some(&fleet.admin_key));
    assert_eq!(s, 200, "{cleared}");
    assert_eq!(cleared["status"], "success");
    assert!(u(&cleared["cleared"]) >= 1);
    let after = ok(&fleet, "/api/logs?count=1000");
    assert!(!after["logs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("collector listening"))));

    // Bounds: 400 with a message, never a 500.
    for path in [
        "/api/gateways?duration=2h".to_string(),
        "/api/gateways?duration=".to_string(),
        format!("/api/gateways?site_id={}", "s".repeat(200)),
        format!("/api/gateway/{id}/port/pppoe-wan/traffic?duration=2h"),
        format!("/api/gateway/{id}/port/{}/traffic", "p".repeat(100)),
        format!("/api/gateway/{}/ports", "9".repeat(300)),
        "/api/logs?count=0".to_string(),
        "/api/logs?count=abc".to_string(),
        "/api/logs?level=loud".to_string(),
        "/api/logs?clear=maybe".to_string(),
    ] {
        let (s, body) = get(&fleet, &path);
        assert_eq!(s, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }
    // Unknown gateways and ports: 404.
    for path in [
        "/api/gateway/no-such-router/ports".to_string(),
        "/api/gateway/999999/ports".to_string(),
        "/api/gateway/no-such-router/port/pppoe-wan/traffic".to_string(),
        format!("/api/gateway/{id}/port/eth9/traffic"),
        format!("/api/gateway/{id}/port/lo/traffic"),
    ] {
        let (s, body) = get(&fleet, &path);
        assert_eq!(s, 404, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Auth: every read route wants a key; health routes are open.
    for path in [
        "/api/openwrt",
        "/api/performance",
        "/api/export",
        "/api/logs",
        "/api/pppoe_interfaces",
        "/api/organization",
        "/api/sites",
        "/api/gateways",
        "/api/gateway/1/ports",
        "/api/gateway/1/port/pppoe-wan/traffic",
    ] {
        assert_eq!(get_key(&fleet, path, None).0, 401, "{path}");
        assert_eq!(
            get_key(&fleet, path, Some("rsk_not_a_key")).0,
            401,
            "{path}"
        );
    }
    assert_eq!(get_key(&fleet, "/health", None).0, 200);
    let (_, h) = get_key(&fleet, "/health", None);
    assert!(
        h["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{h}"
    );

    // A revoked router: listed as revoked, no longer among the connected clients.
    let fleet_names = |doc: Value| -> Vec<String> {
        doc["routers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|r| r["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Cached before the revocation (served from the cache on the second request)...
    assert!(fleet_names(ok(&fleet, "/api/fleet?duration=1h")).contains(&"ap-office".to_string()));
    let (_, head, _) = raw_get(
        fleet.collector.api,
        "/api/fleet?duration=1h",
        Some(&fleet.read_key),
    );
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("x-cache: hit") || head.contains("x-cache: stale"),
        "{head}"
    );
    fleet.collector.cli_ok(&["router", "revoke", "ap-office"]);
    let health = get_key(&fleet, "/api/health", Some(&fleet.read_key)).1;
    assert_eq!(
        (
            u(&health["routers"]["revoked"]),
            u(&health["routers"]["online"])
        ),
        (1, 2)
    );
    let office = health["router_status"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ap-office")
        .unwrap();
    assert_eq!(
        (office["status"].as_str(), office["online"].as_bool()),
        (Some("revoked"), Some(false))
    );
    let doc = ok(&fleet, "/api/openwrt");
    assert_eq!(doc["total clients"], 12);
    assert!(doc.get("ap-office uptime").is_none());
    assert_eq!(
        ok(&fleet, "/api/pppoe_interfaces")["pppoe_interfaces"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let gws = ok(&fleet, "/api/gateways?duration=1h");
    let office = gws["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "ap-office")
        .unwrap();
    assert_eq!(office["status"], "revoked");
    // ...and the overview drops it at once (the revocation is not a report: recomputed).
    let names = fleet_names(ok(&fleet, "/api/fleet?duration=1h"));
    assert!(
        !names.is_empty() && !names.contains(&"ap-office".to_string()),
        "{names:?}"
    );
}

#[test]
fn empty_fleet_and_rate_limits() {
    let fleet = Fleet::start(&[], 0);
    // Empty fleet: empty lists and zeros.
    assert_eq!(
        ok(&fleet, "/api/openwrt"),
        serde_json::json!({ "total clients": 0, "clients": {} })
    );
    for d in ["15m", "1h", "1d", "7d"] {
        let g = ok(&fleet, &format!("/api/gateways?duration={d}"));
        assert_eq!(g["data"], serde_json::json!([]), "{d}");
    }
    assert_eq!(ok(&fleet, "/api/gateways")["duration"], "7d");
    assert_eq!(ok(&fleet, "/api/sites")["data"], serde_json::json!([]));
    let org = ok(&fleet, "/api/organization");
    assert_eq!(
        (
            u(&org["data"]["num_gateways"]),
            u(&org["data"]["num_sites"])
        ),
        (0, 0)
    );
    let p = ok(&fleet, "/api/pppoe_interfaces");
    assert_eq!(p["pppoe_interfaces"], serde_json::json!([]));
    assert_eq!(
        (
            u(&p["aggregate_stats"]["active_sessions"]),
            u(&p["aggregate_stats"]["total_download_bytes"])
        ),
        (0, 0)
    );
    let (s, health) = get_key(&fleet, "/api/health", Some(&fleet.read_key));
    assert_eq!(s, 200);
    assert_eq!(health["routers"]["total"], 0);
    assert_eq!(health["router_status"], serde_json::json!([]));
    let (s, head, body) = raw_get(fleet.collector.api, "/api/export", Some(&fleet.read_key));
    assert_eq!(s, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-disposition: attachment"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["router_count"],
        0
    );
    assert_eq!(
        ok(&fleet, "/api/performance")["ingest"]["reports_in_window"],
        0
    );
    assert_eq!(status_of(&fleet, "/api/gateway/1/ports"), 404);
    assert_eq!(
        status_of(&fleet, "/api/gateway/1/port/eth0/traffic?duration=15m"),
        404
    );
    assert_eq!(status_of(&fleet, "/api/gateways?duration=2h"), 400);
    assert_eq!(get_key(&fleet, "/api/gateways", None).0, 401);

    // Rate limit per key: a fresh key gets its burst, then 429 with retry_after and Retry-After.
    let out = fleet
        .collector
        .cli(&["apikey", "create", "--role", "read", "--name", "hammer"]);
    assert!(out.status.success());
    let hammer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut ok_before = 0;
    let limited = (0..400).find_map(|_| {
        let (s, head, body) = raw_get(fleet.collector.api, "/api/sites", Some(&hammer));
        if s == 429 {
            return Some((head, body));
        }
        assert_eq!(s, 200, "{body}");
        ok_before += 1;
        None
    });
    let (head, body) = limited.expect("no 429 after 400 quick requests");
    assert!(
        ok_before >= 100,
        "only {ok_before} requests before the limit"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    let retry = u(&body["retry_after"]);
    assert!(retry >= 1, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("rate limit")),
        "{body}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("retry-after: {retry}")),
        "{head}"
    );
    // Other keys have their own buckets.
    let (s, _, _) = raw_get(fleet.collector.api, "/api/sites", Some(&fleet.read_key));
    assert_eq!(s, 200);
    // The bucket refills: after Retry-After the key works again.
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(
        raw_get(fleet.collector.api, "/api/sites", Some(&hammer)).0,
        200
    );

    // Requests without a key are limited per client too (health routes included).
    let unauth = (0..400).find(|_| raw_get(fleet.collector.api, "/api/health", None).0 == 429);
    assert!(unauth.is_some_and(|n| n >= 50), "{unauth:?}");
    // ... as are invented keys, which cannot buy fresh buckets.
    let invented = (0..50).find(|i| {
        raw_get(
            fleet.collector.api,
            "/api/sites",
            Some(&format!("rsk_made_up_{i}")),
        )
        .0 == 429
    });
    assert!(invented.is_some(), "invented keys were not limited");

    let perf = ok(&fleet, "/api/performance");
    assert!(u(&perf["requests"]["rate_limited"]) >= 3, "{perf}");
    assert!(u(&perf["requests"]["unauthorized"]) >= 1, "{perf}");
}

/// The station counters of `mac` on `router` in an `/api/openwrt` answer, if listed.
fn station_rx(doc: &Value, router: &str, mac: &str) -> Option<u64> {
    doc["clients"].as_object()?.values().find_map(|list| {
        list.as_array()?
            .iter()
            .find(|c| c["router"] == router && c["mac"] == mac)
            .and_then(|c| c["rx_bytes"].as_u64())
    })
}

/// The fleet-wide answers are cached (`X-Cache`), yet a report stored after an answer was cached
/// shows up within a few seconds, well before the cache's max age (10 s): committed reports mark
/// cached answers stale and one background task recomputes them. Keys are still checked first.
#[test]
fn cached_fleet_answers_follow_new_reports() {
    let fleet = Fleet::start(&[("ap-cache", "home")], 2);
    let api = fleet.collector.api;
    let first = ok(&fleet, "/api/openwrt");
    let cached_at = std::time::Instant::now();
    let before = station_rx(&first, "ap-cache", TABLET_MAC).expect("tablet listed");
    let (s, head, _) = raw_get(api, "/api/openwrt", Some(&fleet.read_key));
    assert_eq!(s, 200);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("x-cache: hit") || head.contains("x-cache: stale"),
        "second request not served from the cache: {head}"
    );
    assert_eq!(get_key(&fleet, "/api/openwrt", None).0, 401);
    assert_eq!(get_key(&fleet, "/api/export", Some("rsk_unknown")).0, 401);
    // Fleet-wide windowed answers are cached too (per normalized query): the router's last
    // report time and the window's station bytes as first served.
    let gw_seen = |doc: &serde_json::Value| {
        doc["data"].as_array().and_then(|l| {
            l.iter()
                .find(|g| g["name"] == "ap-cache")
                .and_then(|g| g["last_seen"].as_str().map(str::to_string))
        })
    };
    let fleet_seen = |doc: &serde_json::Value| {
        doc["routers"].as_array().and_then(|l| {
            l.iter()
                .find(|r| r["name"] == "ap-cache")
                .and_then(|r| r["last_seen_ms"].as_i64())
        })
    };
    let summary_bytes = |doc: &serde_json::Value| doc["data"]["total_bytes"].as_i64();
    const GW: &str = "/api/gateways?duration=15m";
    const FLEET: &str = "/api/fleet?duration=15m";
    const SUMMARY: &str = "/api/bandwidth/monitoring/network-summary?minutes=30";
    let gw_before = gw_seen(&ok(&fleet, GW)).expect("gateway listed");
    let fleet_before = fleet_seen(&ok(&fleet, FLEET)).expect("router listed");
    let summary_before = summary_bytes(&ok(&fleet, SUMMARY)).expect("summary totals");
    for route in [
        GW,
        "/api/gateways?duration=15m&site_id=",
        FLEET,
        SUMMARY,
        "/api/bandwidth/monitoring/network-summary?minutes=%2030",
    ] {
        let (s, head, _) = raw_get(api, route, Some(&fleet.read_key));
        assert_eq!(s, 200, "{route}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("x-cache: hit") || head.contains("x-cache: stale"),
            "{route} not served from the cache: {head}"
        );
    }
    // Another window is another answer.
    let (s, head, _) = raw_get(api, "/api/gateways?duration=1h", Some(&fleet.read_key));
    assert_eq!(s, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-cache: miss"),
        "{head}"
    );

    // New counters on the router; wait for a stored report carrying them.
    fleet.routers[0].router.tick(30).unwrap();
    let stored: u64 = wait_for(
        Duration::from_secs(5),
        "a report with the new counters",
        || {
            let rx: Option<i64> = fleet
            .collector
            .db()
            .query_row(
                "SELECT s.rx_bytes FROM routers r JOIN station_samples s ON s.router_id = r.id \
                 AND s.ts_ms = r.last_report_ms WHERE r.name = 'ap-cache' AND s.mac = ?1",
                [TABLET_MAC],
                |r| r.get(0),
            )
            .ok()
            .flatten();
            rx.map(|v| v as u64).filter(|v| *v > before)
        },
    );
    let seen = wait_for(
        Duration::from_secs(3),
        "/api/openwrt to show the new report",
        || station_rx(&ok(&fleet, "/api/openwrt"), "ap-cache", TABLET_MAC).filter(|v| *v >= stored),
    );
    assert!(seen >= stored && seen > before);
    assert!(
        cached_at.elapsed() < Duration::from_secs(9),
        "the new report must show before the cached answer ages out (10 s)"
    );
    // The same for an ISP-envelope route (`bytes_uploaded` is the station's rx counter).
    let uploaded = wait_for(
        Duration::from_secs(3),
        "/api/mikrotik/users/active to show it",
        || {
            let doc = ok(&fleet, "/api/mikrotik/users/active");
            doc["data"]["active_users"]
                .as_array()
                .and_then(|l| {
                    l.iter()
                        .find(|u| u["mac_address"] == TABLET_MAC && u["device_name"] == "ap-cache")
                })
                .and_then(|u| u["bytes_uploaded"].as_u64())
                .filter(|v| *v >= stored)
        },
    );
    assert!(uploaded > before);
    // The cached windowed answers follow the new report as well.
    wait_for(Duration::from_secs(3), "/api/gateways to show it", || {
        gw_seen(&ok(&fleet, GW)).filter(|s| *s != gw_before)
    });
    wait_for(Duration::from_secs(3), "/api/fleet to show it", || {
        fleet_seen(&ok(&fleet, FLEET)).filter(|s| *s > fleet_before)
    });
    wait_for(
        Duration::from_secs(3),
        "network-summary to count it",
        || summary_bytes(&ok(&fleet, SUMMARY)).filter(|s| *s > summary_before),
    );
    assert!(
        cached_at.elapsed() < Duration::from_secs(9),
        "the new report must show before the cached answers age out (10 s)"
    );
}
