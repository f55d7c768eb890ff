//! The WireGuard manager routes and `/metrics` over a fleet fed by real agents on fake routers.
//!
//! Every router reports agent/fixtures/wg/wg-show-all-dump.txt (wg0 with 4 peers, wg1 with 2)
//! named from agent/fixtures/uci/network. The fake router's tick sets the handshake of every
//! peer that ever had one to "20 s ago" and adds 3000·k received and 9000·k sent bytes per tick,
//! so those peers are active and their counters grow; carol never had a handshake.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use routerstats_tests::harness::{http_get, wait_for, Fleet};
use routerstats_tests::percent_encode as enc;
use serde_json::Value;

const ALICE: &str = "osLnROAeI/bSVcmSkwREDfqR9tlRUumi48+CGm3bf2s=";
const BOB: &str = "oU28QzYDQCqrphwcKeRHdGPVK3/EG5wWQ6l1cGWAd0g=";
const CAROL: &str = "zgLKuAbOIVTrVe1NdegrO1uk+5KE4sQLm77TnNKj/7M=";
const OFFICE: &str = "BlEJmBoZM4StM4bgBNJO2C6WNB5xEQs4+01sagkPbpE=";
const MULLVAD: &str = "a3Ywcg3TrKXtmFiePuNEcsmMhYMXAn1AOTcGI2Em78o=";
const UNNAMED: &str = "GnK+WCYOFo1l1k8NlzaZP82F11kXfUsmak62DfUPL/Y=";
/// The interfaces' public and private keys in the fixture's interface lines.
const WG0_PUBLIC: &str = "3diIUq1AMjVtE+qeqAWHmcg5891wauoA14pyyLiq/tY=";
const WG0_PRIVATE: &str = "Jix1X509DCn78TbyH7LXzvSyL7u32dy0iEiLG5ld9qk=";
const WG1_PUBLIC: &str = "yEZstwxYlQEK2AEexLvmaVUOoN/ZqRLNaeeJGim41NY=";
const WG1_PRIVATE: &str = "jGgsvcTole2hki4VohMCQFg7VQ6FIk2wwbXWLk0oogg=";
/// A valid key no router has.
const STRANGER: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// Alice's counters in the fixture before any tick.
const ALICE_RX0: u64 = 48_213_377;
const ALICE_TX0: u64 = 912_345_678;
const ROUTERS: [(&str, &str); 2] = [("ap-kitchen", "home"), ("ap-office", "office")];

fn ok(fleet: &Fleet, path: &str) -> Value {
    let (s, body) = fleet.get(path);
    assert_eq!(s, 200, "{path}: {body}");
    body
}

fn status(fleet: &Fleet, path: &str) -> (u16, Value) {
    fleet.get(path)
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

fn occurrence<'a>(detail: &'a Value, router: &str) -> &'a Value {
    detail["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["router"] == router)
        .unwrap_or_else(|| panic!("no occurrence on {router}: {detail}"))
}

#[test]
fn wireguard_routes_and_metrics_over_a_fleet() {
    let mut fleet = Fleet::start(&ROUTERS, 3);

    // Bytes grow between reports (agents still running).
    let path = format!("/api/metrics/peer/{}", enc(ALICE));
    let before = u(&occurrence(&ok(&fleet, &path), "ap-kitchen")["sent_bytes"]);
    let seqs = fleet.collector.stored_seqs("ap-kitchen").len();
    wait_for(Duration::from_secs(30), "two more reports", || {
        for r in &fleet.routers {
            r.router.tick(30).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        (fleet.collector.stored_seqs("ap-kitchen").len() >= seqs + 2).then_some(())
    });
    let after = u(&occurrence(&ok(&fleet, &path), "ap-kitchen")["sent_bytes"]);
    assert!(
        after > before,
        "sent bytes did not grow: {before} -> {after}"
    );
    fleet.stop_agents();

    summary_and_lists(&fleet);
    peer_by_key(&fleet);
    history_routes(&fleet);
    peers_by_name(&fleet);
    server_info(&fleet);
    bad_input_and_auth(&fleet);
    prometheus(&fleet);
}

fn summary_and_lists(fleet: &Fleet) {
    let s = ok(fleet, "/api/metrics/summary");
    assert_eq!(u(&s["total_peers"]), 12, "{s}");
    assert_eq!(u(&s["active_peers"]), 10, "{s}");
    assert_eq!(u(&s["inactive_peers"]), 2, "{s}");
    assert_eq!(u(&s["routers"]), 2, "{s}");
    // The fixture alone holds > 5 GiB received (Office Zagreb) per router.
    assert!(s["total_received_gb"].as_f64().unwrap() > 10.0, "{s}");
    let total = s["total_traffic_gb"].as_f64().unwrap();
    let parts = s["total_sent_gb"].as_f64().unwrap() + s["total_received_gb"].as_f64().unwrap();
    assert!((total - parts).abs() < 0.02, "{s}");
    assert!(s["current_bandwidth_total_mbps"].as_f64().unwrap() >= 0.0);

    let h = fleet.get_as("/api/metrics/health", None);
    assert_eq!(h.0, 200, "{}", h.1);
    assert_eq!(h.1["api_status"], "up");
    assert_eq!(h.1["prometheus_status"], "up");
    assert_eq!(h.1["prometheus_url"], "/metrics");

    let p = ok(fleet, "/api/metrics/peers");
    let peers = p["peers"].as_array().unwrap();
    assert_eq!(u(&p["count"]), 12);
    assert_eq!(peers.len(), 12);
    for (router, site) in ROUTERS {
        let mine: Vec<&Value> = peers.iter().filter(|x| x["router"] == router).collect();
        assert_eq!(mine.len(), 6, "{router}");
        assert!(mine.iter().all(|x| x["site"] == site));
        let keys: HashSet<&str> = mine
            .iter()
            .map(|x| x["public_key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            HashSet::from([ALICE, BOB, CAROL, OFFICE, MULLVAD, UNNAMED])
        );
        let carol = mine.iter().find(|x| x["public_key"] == CAROL).unwrap();
        assert_eq!(carol["name"], "carol");
        assert_eq!(carol["interface"], "wg0");
        assert_eq!(carol["allowed_ips"], "10.77.0.4/32");
        assert_eq!(carol["is_active"], false);
        assert_eq!(carol["status"], "inactive");
        assert!(carol["last_handshake"].is_null() && carol["last_handshake_timestamp"].is_null());
        assert_eq!(
            (u(&carol["sent_bytes"]), u(&carol["received_bytes"])),
            (0, 0)
        );
        let unnamed = mine.iter().find(|x| x["public_key"] == UNNAMED).unwrap();
        assert!(unnamed["name"].is_null());
        assert_eq!(unnamed["interface"], "wg1");
        assert_eq!(unnamed["is_active"], true);
    }

    let a = ok(fleet, "/api/metrics/peers/active");
    let active = a["active_peers"].as_array().unwrap();
    assert_eq!(u(&a["count"]), 10);
    assert_eq!(active.len(), 10);
    assert!(active
        .iter()
        .all(|x| x["is_active"] == true && x["public_key"] != CAROL));

    let b = ok(fleet, "/api/metrics/bandwidth");
    let bw = b["bandwidth"].as_array().unwrap();
    assert_eq!(u(&b["count"]), 12);
    assert_eq!(bw.len(), 12);
    let alice = bw
        .iter()
        .find(|x| x["public_key"] == ALICE && x["router"] == "ap-office")
        .unwrap();
    assert_eq!(alice["interface"], "wg0");
    assert_eq!(alice["name"], "Alice laptop");
    let sent = alice["sent_bytes_per_sec"]
        .as_f64()
        .expect("newest sample has a rate");
    assert!(
        (alice["sent_kbps"].as_f64().unwrap() - sent * 8.0 / 1000.0).abs() < 0.01,
        "{alice}"
    );
}

fn peer_by_key(fleet: &Fleet) {
    // Percent-encoded (+ / =), lower-case escapes, and the unpadded URL-safe form all work.
    let encoded = enc(ALICE);
    let lower = encoded.replace("%2F", "%2f").replace("%2B", "%2b");
    let url_safe = ALICE
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string();
    for path_key in [encoded.as_str(), lower.as_str(), url_safe.as_str()] {
        let d = ok(fleet, &format!("/api/metrics/peer/{path_key}"));
        assert_eq!(d["public_key"], ALICE, "{path_key}");
    }
    let d = ok(fleet, &format!("/api/metrics/peer/{encoded}"));
    assert_eq!(d["interface"], "wg0");
    assert_eq!(d["allowed_ips"], "10.77.0.2/32,fd77::2/128");
    assert_eq!(d["name"], "Alice laptop");
    assert_eq!(d["endpoint"], "84.115.201.17:51820");
    assert_eq!(d["is_active"], true);
    assert_eq!(d["status"], "active");
    let occ = d["occurrences"].as_array().unwrap();
    assert_eq!(occ.len(), 2, "a key on both routers answers both: {d}");
    let routers: HashSet<&str> = occ.iter().map(|o| o["router"].as_str().unwrap()).collect();
    assert_eq!(routers, HashSet::from(["ap-kitchen", "ap-office"]));
    for o in occ {
        let (sent, recv) = (u(&o["sent_bytes"]), u(&o["received_bytes"]));
        assert!(sent > ALICE_TX0 && recv > ALICE_RX0, "{o}");
        // Every tick adds 9000·k sent and 3000·k received.
        assert_eq!(sent - ALICE_TX0, 3 * (recv - ALICE_RX0), "{o}");
        assert_eq!(u(&o["total_bytes"]), sent + recv);
        assert!((o["sent_mb"].as_f64().unwrap() - sent as f64 / 1_048_576.0).abs() < 0.01);
        let hs = o["last_handshake_timestamp"].as_i64().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(now - hs < 180, "handshake {hs} vs now {now}");
        assert!(o["last_handshake"].as_str().unwrap().ends_with('Z'));
        assert!(o["time_since_handshake"].as_str().unwrap().ends_with('s'));
    }
    // The top level is one of the occurrences.
    assert!(occ
        .iter()
        .any(|o| o["router"] == d["router"] && o["sent_bytes"] == d["sent_bytes"]));

    let c = ok(fleet, &format!("/api/metrics/peer/{}", enc(CAROL)));
    assert_eq!(c["is_active"], false);
    assert_eq!(c["name"], "carol");
    assert!(c["endpoint"].is_null());

    let b = ok(fleet, &format!("/api/metrics/peer/{}/bandwidth", enc(BOB)));
    assert_eq!(b["public_key"], BOB);
    assert_eq!(b["name"], "Bob's phone");
    assert_eq!(b["occurrences"].as_array().unwrap().len(), 2);
    assert!(b["sent_mbps"].as_f64().is_some(), "{b}");

    let (s, body) = status(fleet, &format!("/api/metrics/peer/{}", enc(STRANGER)));
    assert_eq!(s, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains(STRANGER));
    for suffix in ["/bandwidth", "/history"] {
        let (s, body) = status(
            fleet,
            &format!("/api/metrics/peer/{}{suffix}", enc(STRANGER)),
        );
        assert_eq!(s, 404, "{suffix}: {body}");
    }
}

fn history_routes(fleet: &Fleet) {
    let base = format!("/api/metrics/peer/{}/history", enc(OFFICE));
    let h = ok(fleet, &base);
    assert_eq!(h["public_key"], OFFICE);
    assert_eq!(u(&h["duration_hours"]), 1);
    assert_eq!(h["resolution"], "raw");
    let pts = h["history"].as_array().unwrap();
    assert_eq!(u(&h["data_points"]), pts.len() as u64);
    // At least 3 reports each; the first has no rate.
    for (router, _) in ROUTERS {
        let mine: Vec<&Value> = pts.iter().filter(|p| p["router"] == router).collect();
        assert!(mine.len() >= 2, "{router}: {h}");
        assert!(mine.iter().all(|p| p["interface"] == "wg0"));
        assert!(
            mine.iter()
                .any(|p| p["sent_bytes_per_sec"].as_f64().unwrap() > 0.0),
            "{router}: {h}"
        );
    }
    let ts: Vec<i64> = pts
        .iter()
        .map(|p| p["timestamp"].as_i64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    assert!(pts[0]["datetime"].as_str().unwrap().ends_with('Z'));

    let h6 = ok(fleet, &format!("{base}?hours=6"));
    assert_eq!(
        (u(&h6["duration_hours"]), h6["resolution"].as_str()),
        (6, Some("raw"))
    );
    assert_eq!(h6["data_points"], h["data_points"]);

    let h24 = ok(fleet, &format!("{base}?hours=24"));
    assert_eq!(
        (u(&h24["duration_hours"]), h24["resolution"].as_str()),
        (24, Some("1h"))
    );
    let pts = h24["history"].as_array().unwrap();
    assert!(
        pts.len() >= 2 && pts.len() <= 4,
        "one or two hourly buckets per router: {h24}"
    );
    assert!(
        pts.iter()
            .any(|p| p["sent_bytes_per_sec"].as_f64().unwrap() > 0.0),
        "{h24}"
    );

    for bad in ["0", "25", "-1", "abc", "1.5", "", "100000000000"] {
        let (s, body) = status(fleet, &format!("{base}?hours={bad}"));
        assert_eq!(s, 400, "hours={bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains("hours"), "{body}");
    }
}

fn peers_by_name(fleet: &Fleet) {
    let p = ok(fleet, "/peers");
    assert_eq!(u(&p["count"]), 12);
    assert_eq!(
        p["summary"],
        serde_json::json!({"total_peers": 12, "active_peers": 10, "inactive_peers": 2})
    );
    let peers = p["peers"].as_array().unwrap();
    let names: HashSet<&str> = peers.iter().map(|x| x["name"].as_str().unwrap()).collect();
    let expected = [
        "Alice laptop",
        "Bob's phone",
        "carol",
        "Office Zagreb (site-to-site)",
        "Mullvad se-sto-wg-001",
        UNNAMED,
    ];
    assert_eq!(names, HashSet::from(expected));
    let alice = peers
        .iter()
        .find(|x| x["name"] == "Alice laptop" && x["router"] == "ap-kitchen")
        .unwrap();
    assert_eq!(alice["ip"], "10.77.0.2");
    assert_eq!(alice["site"], "home");
    assert_eq!(alice["metrics"]["status"], "active");
    assert!(
        alice["metrics"]["traffic"]["sent_mb"].as_f64().unwrap() > ALICE_TX0 as f64 / 1_048_576.0
    );
    assert!(alice["bandwidth"]["sent_kbps"].is_number(), "{alice}");
    let mullvad = peers.iter().find(|x| x["public_key"] == MULLVAD).unwrap();
    assert_eq!(mullvad["ip"], "0.0.0.0/0");
    let bare = ok(fleet, "/peers?metrics=false");
    assert!(bare["peers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x.get("metrics").is_none() && x.get("bandwidth").is_none()));
    assert_eq!(u(&bare["count"]), 12);

    let b = ok(fleet, &format!("/peer/{}", enc("Bob's phone")));
    assert_eq!(b["peer_name"], "Bob's phone");
    assert_eq!(b["public_key"], BOB);
    assert!(b["config"].is_null());
    assert!(b.get("metrics").is_none(), "metrics default to false: {b}");
    let occ = b["occurrences"].as_array().unwrap();
    assert_eq!(occ.len(), 2);
    assert!(occ
        .iter()
        .all(|o| o["endpoint"] == "[2a02:8071:4a2:1f00::3c]:41734"));

    let o = ok(
        fleet,
        &format!("/peer/{}?metrics=true", enc("Office Zagreb (site-to-site)")),
    );
    assert_eq!(o["public_key"], OFFICE);
    assert_eq!(
        o["metrics"]["allowed_ips"],
        "10.77.0.10/32,192.168.50.0/24,192.168.51.0/24"
    );
    assert!(u(&o["metrics"]["received_bytes"]) > 5_368_709_120);
    assert_eq!(u(&o["history"]["duration_hours"]), 1);
    assert!(u(&o["history"]["data_points"]) >= 4, "{o}");
    assert!(o["bandwidth"]["recv_mbps"].is_number());

    // A peer without a description is found by its key.
    let n = ok(fleet, &format!("/peer/{}", enc(UNNAMED)));
    assert_eq!(n["public_key"], UNNAMED);
    assert_eq!(n["occurrences"][0]["interface"], "wg1");

    let m = ok(fleet, "/peer/carol/metrics?hours=2");
    assert_eq!(m["peer_name"], "carol");
    assert_eq!(m["public_key"], CAROL);
    assert_eq!(m["stats"]["is_active"], false);
    assert_eq!(m["history"]["duration_hours"], 2);
    // carol's counters never move: every rate is zero.
    let data = m["history"]["data"].as_array().unwrap();
    assert!(!data.is_empty());
    assert!(
        data.iter()
            .all(|p| p["sent_bytes_per_sec"] == 0.0 && p["recv_bytes_per_sec"] == 0.0),
        "{m}"
    );

    let m = ok(
        fleet,
        &format!("/peer/{}/metrics?hours=12", enc("Alice laptop")),
    );
    assert_eq!(m["history"]["resolution"], "1h");
    assert_eq!(m["stats"]["public_key"], ALICE);
    assert_eq!(m["bandwidth"]["public_key"], ALICE);

    for (path, code) in [
        ("/peer/nobody".to_string(), 404),
        ("/peer/nobody/metrics".to_string(), 404),
        ("/peer/ALICE%20LAPTOP".to_string(), 404),
        ("/peer/carol?metrics=maybe".to_string(), 400),
        ("/peer/carol/metrics?hours=25".to_string(), 400),
        ("/peer/carol/metrics?hours=0".to_string(), 400),
        ("/peers?metrics=2".to_string(), 400),
        (format!("/peer/{}", "x".repeat(300)), 400),
        ("/peer/%FF%FE".to_string(), 400),
    ] {
        let (s, body) = status(fleet, &path);
        assert_eq!(s, code, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

fn server_info(fleet: &Fleet) {
    let s = ok(fleet, "/server-info");
    assert_eq!(u(&s["existing_peers_count"]), 12);
    assert_eq!(s["wg0_conf_exists"], true);
    // Both routers' wg0 have the fixture's key: it is the server's.
    assert_eq!(s["server_public_key"], WG0_PUBLIC, "{s}");
    assert_eq!(s["publickey_server_exists"], true);
    assert!(s["wireguard_path"].is_null());
    let text = s.to_string();
    for private in [WG0_PRIVATE, WG1_PRIVATE] {
        assert!(!text.contains(private), "private key in {text}");
    }
    let ifs = s["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 4, "{s}");
    for (router, site) in ROUTERS {
        let wg0 = ifs
            .iter()
            .find(|i| i["router"] == router && i["interface"] == "wg0")
            .unwrap();
        assert_eq!(wg0["site"], site);
        assert_eq!(
            (&wg0["public_key"], &wg0["listen_port"], &wg0["fwmark"]),
            (&Value::from(WG0_PUBLIC), &Value::from(51820), &Value::Null),
            "{wg0}"
        );
        assert_eq!((u(&wg0["peers_count"]), u(&wg0["active_peers"])), (4, 3));
        // wg0 is in /proc/net/dev (ticks add 5·50000·k); wg1 only shows through its peers.
        assert!(u(&wg0["rx_bytes"]) >= 221_334_012, "{wg0}");
        let wg1 = ifs
            .iter()
            .find(|i| i["router"] == router && i["interface"] == "wg1")
            .unwrap();
        assert_eq!((u(&wg1["peers_count"]), u(&wg1["active_peers"])), (2, 2));
        assert!(wg1["rx_bytes"].is_null());
        // fwmark 0xca6c in the dump.
        assert_eq!(
            (&wg1["public_key"], &wg1["listen_port"], &wg1["fwmark"]),
            (
                &Value::from(WG1_PUBLIC),
                &Value::from(51821),
                &Value::from(0xca6c)
            ),
            "{wg1}"
        );
    }
}

fn bad_input_and_auth(fleet: &Fleet) {
    let bad_keys = [
        "not-a-key".to_string(),
        "AAAA".into(),
        "osLnROAeI".into(),
        "A".repeat(200),
        "%FF%FE".into(),
        enc(&STRANGER.replace('=', "!")),
    ];
    for key in &bad_keys {
        for suffix in ["", "/bandwidth", "/history"] {
            let path = format!("/api/metrics/peer/{key}{suffix}");
            let (s, body) = status(fleet, &path);
            assert_eq!(s, 400, "{path}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("key")
                    || body["error"].as_str().unwrap().contains("path"),
                "{body}"
            );
        }
    }
    let routes = [
        "/api/metrics/summary".to_string(),
        "/api/metrics/peers".to_string(),
        "/api/metrics/peers/active".to_string(),
        format!("/api/metrics/peer/{}", enc(ALICE)),
        "/api/metrics/bandwidth".to_string(),
        format!("/api/metrics/peer/{}/bandwidth", enc(ALICE)),
        format!("/api/metrics/peer/{}/history", enc(ALICE)),
        "/peers".to_string(),
        "/peer/carol".to_string(),
        "/peer/carol/metrics".to_string(),
        "/server-info".to_string(),
        "/metrics".to_string(),
    ];
    for path in &routes {
        let (s, _) = fleet.get_as(path, None);
        assert_eq!(s, 401, "{path} without a key");
        let (s, _) = fleet.get_as(path, Some("rsk_not_a_real_key"));
        assert_eq!(s, 401, "{path} with an unknown key");
        let (s, _) = fleet.get_as(path, Some(&fleet.admin_key));
        assert_eq!(s, 200, "{path} with the admin key");
        let bearer = format!("Bearer {}", fleet.read_key);
        let (s, _) = http_get(fleet.collector.api, path, &[("Authorization", &bearer)]).unwrap();
        assert_eq!(s, 200, "{path} with a bearer read key");
    }
    // Bad input is checked after the key: no key -> 401, not 400.
    assert_eq!(fleet.get_as("/api/metrics/peer/AAAA", None).0, 401);
}

/// A parsed sample: name, labels, value.
type Sample = (String, HashMap<String, String>, f64);

/// The text-format checker: every line is `# HELP name text`, `# TYPE name gauge|counter`, or
/// `name{label="value",...} value`, every sample's family was typed before it, counters end in
/// `_total`, and no series repeats.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let valid = |n: &str| {
        let mut c = n.chars();
        matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_' || x == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid(name), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                valid(name) && (kind == "gauge" || kind == "counter"),
                "{line}"
            );
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "family typed twice: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..end];
        assert!(valid(name), "{line}");
        assert!(types.contains_key(name), "sample before its TYPE: {line}");
        let mut rest = &line[end..];
        let mut labels = HashMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let (l, after) = parse_labels(body, line);
            labels = l;
            rest = after;
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line}"));
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value {v:?}: {line}")),
        };
        let mut key: Vec<(String, String)> = labels.clone().into_iter().collect();
        key.sort();
        assert!(seen.insert((name.to_string(), key)), "series twice: {line}");
        out.push((name.to_string(), labels, v));
    }
    out
}

/// Parses `k="v",...}` (after the `{`) and returns the labels and the text after the `}`.
fn parse_labels<'a>(body: &'a str, line: &str) -> (HashMap<String, String>, &'a str) {
    let mut labels = HashMap::new();
    let mut rest = body;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let eq = rest.find("=\"").unwrap_or_else(|| panic!("label: {line}"));
        let key = &rest[..eq];
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "label name {key:?}: {line}"
        );
        assert!(
            !key.starts_with(|c: char| c.is_ascii_digit()),
            "label name {key:?}: {line}"
        );
        let mut value = String::new();
        let mut it = rest[eq + 2..].char_indices();
        let end = loop {
            match it.next() {
                Some((_, '\\')) => match it.next().map(|x| x.1) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                Some((i, '"')) => break eq + 2 + i + 1,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        assert!(
            labels.insert(key.to_string(), value).is_none(),
            "label twice: {line}"
        );
        rest = &rest[end..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn one(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].2
}

fn prometheus(fleet: &Fleet) {
    let get = |path: &str| {
        http_get(fleet.collector.api, path, &[("X-API-Key", &fleet.read_key)]).unwrap()
    };
    // Every family, the per-station ones asked for (they are off by default).
    let (s, text) = get("/metrics?stations=true");
    assert_eq!(s, 200, "{text}");
    // The default answer: the same lines without the per-station families.
    let (s, default) = get("/metrics");
    assert_eq!(s, 200, "{default}");
    assert!(!default.contains("routerstats_station_"), "{default}");
    assert_eq!(
        default.lines().collect::<Vec<_>>(),
        text.lines()
            .filter(|l| !l.contains("routerstats_station_"))
            .collect::<Vec<_>>()
    );
    // Selectors: one router, and two shards that together are the fleet.
    let (s, one_router) = get(&format!("/metrics?router={}", ROUTERS[0].0));
    assert_eq!(s, 200, "{one_router}");
    let routers_in = |text: &str| -> std::collections::BTreeSet<String> {
        parse_exposition(text)
            .into_iter()
            .filter_map(|(_, l, _)| l.get("router").cloned())
            .collect()
    };
    assert_eq!(
        routers_in(&one_router).into_iter().collect::<Vec<_>>(),
        [ROUTERS[0].0]
    );
    let office = get(&format!("/metrics?site={}", ROUTERS[1].1)).1;
    assert_eq!(
        routers_in(&office).into_iter().collect::<Vec<_>>(),
        [ROUTERS[1].0]
    );
    let (a, b) = (get("/metrics?shard=0/2").1, get("/metrics?shard=1/2").1);
    assert!(routers_in(&a).is_disjoint(&routers_in(&b)));
    assert_eq!(routers_in(&a).union(&routers_in(&b)).count(), ROUTERS.len());
    // Bad values: a 400 that names the parameter.
    for (q, word) in [
        ("stations=maybe", "stations"),
        ("shard=2/0", "shard"),
        ("shard=x", "shard"),
        ("router=no%20such", "router"),
        ("families=a%20b", "families"),
    ] {
        let (s, body) = get(&format!("/metrics?{q}"));
        assert_eq!(s, 400, "{q}: {body}");
        assert!(body.contains(word), "{q}: {body}");
    }
    let samples = parse_exposition(&text);
    assert_eq!(one(&samples, "routerstats_routers", &[]), 2.0);
    for (router, site) in ROUTERS {
        let r = [("router", router)];
        assert_eq!(
            one(
                &samples,
                "routerstats_router_up",
                &[("router", router), ("site", site)]
            ),
            1.0
        );
        assert_eq!(
            one(
                &samples,
                "routerstats_router_info",
                &[("router", router), ("hostname", router)]
            ),
            1.0
        );
        assert!(
            one(
                &samples,
                "routerstats_router_last_seen_timestamp_seconds",
                &r
            ) > 1.7e9
        );
        assert!(one(&samples, "routerstats_router_uptime_seconds", &r) > 0.0);
        assert_eq!(one(&samples, "routerstats_router_stations", &r), 6.0);
        assert_eq!(one(&samples, "routerstats_router_dhcp_leases", &r), 10.0);
        assert_eq!(one(&samples, "routerstats_router_wireguard_peers", &r), 6.0);
        assert_eq!(one(&samples, "routerstats_router_openvpn_clients", &r), 4.0);
        assert_eq!(
            one(&samples, "routerstats_router_dropped_reports_total", &r),
            0.0
        );
        // CPU is missing from a report when /proc/stat did not move since the previous one.
        let cpu = find(&samples, "routerstats_router_cpu_busy_ratio", &r);
        assert!(
            cpu.len() <= 1 && cpu.iter().all(|c| (0.0..=1.0).contains(&c.2)),
            "{cpu:?}"
        );
        assert!(
            one(&samples, "routerstats_router_memory_total_bytes", &r)
                > one(&samples, "routerstats_router_memory_available_bytes", &r)
        );
        let disk = [("router", router), ("mount", "/overlay")];
        assert_eq!(
            one(&samples, "routerstats_router_disk_total_bytes", &disk),
            102_400.0 * 1024.0
        );
        // Interfaces: lo never moves, pppoe-wan only grows.
        let lo = [
            ("router", router),
            ("interface", "lo"),
            ("kind", "loopback"),
        ];
        assert_eq!(
            one(&samples, "routerstats_interface_receive_bytes_total", &lo),
            2_847_316.0
        );
        let wan = [("router", router), ("interface", "pppoe-wan")];
        assert!(
            one(&samples, "routerstats_interface_receive_bytes_total", &wan) > 48_318_382_117.0
        );
        // Stations with SSID from the wireless interface.
        assert_eq!(
            find(&samples, "routerstats_station_signal_dbm", &r).len(),
            6
        );
        let sta = [
            ("router", router),
            ("interface", "wlan0"),
            ("ssid", "HomeNet"),
            ("mac", "3c:22:fb:7a:10:01"),
        ];
        assert_eq!(one(&samples, "routerstats_station_signal_dbm", &sta), -52.0);
        assert_eq!(
            one(&samples, "routerstats_station_signal_avg_dbm", &sta),
            -51.0
        );
        assert!(one(&samples, "routerstats_station_transmit_bytes_total", &sta) > 254_678_901.0);
        let mesh = [
            ("router", router),
            ("interface", "mesh0"),
            ("mac", "96:83:c4:5e:6f:71"),
        ];
        assert_eq!(
            find(&samples, "routerstats_station_signal_dbm", &mesh)[0].1["ssid"],
            ""
        );
        // WireGuard peers, names with quotes and parentheses intact.
        assert_eq!(
            find(
                &samples,
                "routerstats_wireguard_peer_receive_bytes_total",
                &r
            )
            .len(),
            6
        );
        let bob = [
            ("router", router),
            ("public_key", BOB),
            ("name", "Bob's phone"),
            ("interface", "wg0"),
        ];
        assert!(
            one(
                &samples,
                "routerstats_wireguard_peer_transmit_bytes_total",
                &bob
            ) > 20_033_412.0
        );
        let carol = [("router", router), ("public_key", CAROL), ("name", "carol")];
        assert_eq!(
            one(
                &samples,
                "routerstats_wireguard_peer_latest_handshake_seconds",
                &carol
            ),
            0.0
        );
        assert_eq!(
            one(
                &samples,
                "routerstats_wireguard_peer_receive_bytes_total",
                &carol
            ),
            0.0
        );
        let unnamed = [("router", router), ("public_key", UNNAMED), ("name", "")];
        assert!(
            one(
                &samples,
                "routerstats_wireguard_peer_latest_handshake_seconds",
                &unnamed
            ) > 1.7e9
        );
        // The same peers under prometheus_wireguard_exporter's names and labels (what Grafana
        // dashboards built for that exporter query), plus the router label.
        for (name, kind) in [
            ("wireguard_sent_bytes_total", "counter"),
            ("wireguard_received_bytes_total", "counter"),
            ("wireguard_latest_handshake_seconds", "gauge"),
        ] {
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
            assert_eq!(find(&samples, name, &r).len(), 6, "{name}");
        }
        let bob_wge = [
            ("interface", "wg0"),
            ("public_key", BOB),
            ("allowed_ips", "10.77.0.3/32,fd77::3/128"),
            ("friendly_name", "Bob's phone"),
            ("router", router),
        ];
        assert_eq!(
            one(&samples, "wireguard_sent_bytes_total", &bob_wge),
            one(
                &samples,
                "routerstats_wireguard_peer_transmit_bytes_total",
                &bob
            )
        );
        assert_eq!(
            one(&samples, "wireguard_received_bytes_total", &bob_wge),
            one(
                &samples,
                "routerstats_wireguard_peer_receive_bytes_total",
                &bob
            )
        );
        assert_eq!(
            one(&samples, "wireguard_latest_handshake_seconds", &bob_wge),
            one(
                &samples,
                "routerstats_wireguard_peer_latest_handshake_seconds",
                &bob
            )
        );
        let carol_wge = [
            ("public_key", CAROL),
            ("allowed_ips", "10.77.0.4/32"),
            ("router", router),
        ];
        assert_eq!(
            one(&samples, "wireguard_latest_handshake_seconds", &carol_wge),
            0.0
        );
        // A peer without a name has no friendly_name label (as the exporter without -n).
        let unnamed_wge = find(
            &samples,
            "wireguard_sent_bytes_total",
            &[("router", router), ("public_key", UNNAMED)],
        );
        assert_eq!(unnamed_wge.len(), 1);
        assert!(
            !unnamed_wge[0].1.contains_key("friendly_name"),
            "{unnamed_wge:?}"
        );
        assert_eq!(unnamed_wge[0].1.len(), 4, "{unnamed_wge:?}");
        // OpenVPN: 4 clients of the server instance, laptop-anna twice (two addresses).
        assert_eq!(
            find(
                &samples,
                "routerstats_openvpn_client_receive_bytes_total",
                &r
            )
            .len(),
            4
        );
        assert_eq!(
            find(
                &samples,
                "routerstats_openvpn_client_receive_bytes_total",
                &[("router", router), ("common_name", "laptop-anna")]
            )
            .len(),
            2
        );
        let office = [
            ("router", router),
            ("instance", "server"),
            ("common_name", "router-office"),
        ];
        assert_eq!(
            one(
                &samples,
                "routerstats_openvpn_client_receive_bytes_total",
                &office
            ),
            98_234_411.0
        );
        assert_eq!(
            one(
                &samples,
                "routerstats_openvpn_client_transmit_bytes_total",
                &office
            ),
            12_004_556.0
        );
        assert_eq!(
            one(
                &samples,
                "routerstats_openvpn_client_connected_since_seconds",
                &office
            ),
            1_715_465_703.0
        );
    }
}

#[test]
fn empty_fleet_answers_zeros_and_404() {
    let fleet = Fleet::start(&[], 0);
    let s = ok(&fleet, "/api/metrics/summary");
    assert_eq!(
        (
            u(&s["total_peers"]),
            u(&s["active_peers"]),
            u(&s["routers"])
        ),
        (0, 0, 0)
    );
    assert_eq!(s["total_traffic_gb"], 0.0);
    for (path, list) in [
        ("/api/metrics/peers", "peers"),
        ("/api/metrics/peers/active", "active_peers"),
        ("/api/metrics/bandwidth", "bandwidth"),
        ("/peers", "peers"),
    ] {
        let b = ok(&fleet, path);
        assert_eq!(b[list], serde_json::json!([]), "{path}");
        assert_eq!(b["count"], 0, "{path}");
    }
    let info = ok(&fleet, "/server-info");
    assert_eq!(info["existing_peers_count"], 0);
    assert_eq!(info["wg0_conf_exists"], false);
    assert_eq!(info["interfaces"], serde_json::json!([]));
    assert!(info["server_public_key"].is_null() && info["publickey_server_exists"].is_null());
    for path in [
        format!("/api/metrics/peer/{}", enc(ALICE)),
        format!("/api/metrics/peer/{}/history?hours=24", enc(ALICE)),
        "/peer/carol".to_string(),
        "/peer/carol/metrics".to_string(),
    ] {
        let (s, body) = fleet.get(&path);
        assert_eq!(s, 404, "{path}: {body}");
    }
    assert_eq!(fleet.get("/api/metrics/peer/AAAA").0, 400);
    let (s, text) = http_get(
        fleet.collector.api,
        "/metrics",
        &[("X-API-Key", &fleet.read_key)],
    )
    .unwrap();
    assert_eq!(s, 200);
    let samples = parse_exposition(&text);
    assert_eq!(samples.len(), 1, "{text}");
    assert_eq!(one(&samples, "routerstats_routers", &[]), 0.0);
}
