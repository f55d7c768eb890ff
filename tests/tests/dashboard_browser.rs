//! The web dashboard over a collector fed by real agents: its JSON endpoints (`/api/fleet`,
//! `/api/routers/{id}`) over plain HTTP, and the page itself in headless Chromium driven over
//! W3C WebDriver (`routerstats_tests::webdriver`). Screenshots of each page go to
//! `<target dir>/screenshots/` for a reviewer.
//!
//! The browser test needs `chromium` and `chromedriver` (scripts/install-browser installs them;
//! scripts/test runs it first).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use routerstats_tests::fake_router::FakeRouter;
use routerstats_tests::harness::{http_get, uci_bin, wait_for, Fleet, FAST_ALERTS};
use routerstats_tests::webdriver::{
    base64_decode, ChromeDriver, Element, Session, WdError, WdResult,
};
use serde_json::{json, Value};

const ROUTERS: &[(&str, &str)] = &[
    ("ap-kitchen", "home"),
    ("ap-office", "office"),
    ("mesh-garden", "home"),
];
/// The first station of agent/fixtures/iw/station-dump-wlan0.txt.
const KNOWN_MAC: &str = "3c:22:fb:7a:10:01";
/// No lease in agent/fixtures/dhcp/dhcp.leases has a MAC of the station dumps, so the tests add
/// one for [`KNOWN_MAC`] to the fake router's lease file (the agent reads it on its next cycle).
const KNOWN_HOST: &str = "kitchen-tablet";
const KNOWN_IP: &str = "192.168.1.77";
const WAIT: Duration = Duration::from_secs(30);

/// Advances the fake routers' counters every 200 ms until dropped, so rates stay non-zero.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(fleet: &Fleet) -> Ticker {
        let routers: Vec<FakeRouter> = fleet.routers.iter().map(|r| r.router.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                for r in &routers {
                    let _ = r.tick(30);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Adds a dnsmasq lease for [`KNOWN_MAC`] on `router` and waits until the API shows it.
fn add_known_lease(fleet: &Fleet, router: &str) {
    let setup = fleet
        .routers
        .iter()
        .find(|r| r.router.hostname == router)
        .expect("router in fleet");
    let path = setup.router.root.join("tmp/dhcp.leases");
    let mut text = std::fs::read_to_string(&path).expect("lease file");
    text.push_str(&format!(
        "1893456000 {KNOWN_MAC} {KNOWN_IP} {KNOWN_HOST} 01:{KNOWN_MAC}\n"
    ));
    std::fs::write(&path, text).expect("write lease file");
    wait_for(WAIT, "the added lease in /api/routers", || {
        let (s, d) = fleet.get(&format!("/api/routers/{router}"));
        (s == 200 && client_by_mac(&d, KNOWN_MAC).is_some_and(|c| c["hostname"] == KNOWN_HOST))
            .then_some(())
    });
}

fn client_by_mac<'a>(detail: &'a Value, mac: &str) -> Option<&'a Value> {
    detail["ssids"]
        .as_array()?
        .iter()
        .flat_map(|g| g["clients"].as_array().into_iter().flatten())
        .find(|c| c["mac"] == mac)
}

fn names(fleet_json: &Value) -> Vec<String> {
    fleet_json["routers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A raw GET returning (status, lower-cased header lines, body).
fn raw_get(fleet: &Fleet, path: &str) -> (u16, Vec<String>, String) {
    let addr = fleet.collector.api;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        // As a browser asks (`GET /` answers API clients without text/html with JSON).
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/html,*/*;q=0.8\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        head.lines()
            .skip(1)
            .map(|l| l.to_ascii_lowercase())
            .collect(),
        body.to_string(),
    )
}

#[test]
fn json_endpoints_answer_with_auth_bounds_and_404() {
    let fleet = Fleet::start(ROUTERS, 3);
    let _ticker = Ticker::start(&fleet);
    add_known_lease(&fleet, "ap-kitchen");
    // Enough cycles for deltas (and so WAN traffic) inside the 15-minute window.
    wait_for(WAIT, "WAN traffic in the 15m window", || {
        let (_, f) = fleet.get("/api/fleet?duration=15m");
        f["routers"]
            .as_array()
            .filter(|a| {
                a.len() == 3
                    && a.iter()
                        .all(|r| r["wan_rx_bytes"].as_i64().unwrap_or(0) > 0)
            })
            .map(|_| ())
    });

    // Authentication: a read key is needed; admin keys are read keys too.
    for path in ["/api/fleet", "/api/routers/ap-kitchen"] {
        let (s, body) = fleet.get_as(path, None);
        assert_eq!(s, 401, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or("")
                .contains("missing API key"),
            "{body}"
        );
        let (s, body) = fleet.get_as(path, Some("rsk_not_a_key"));
        assert_eq!(s, 401, "{path}: {body}");
        assert_eq!(fleet.get_as(path, Some(&fleet.admin_key)).0, 200, "{path}");
    }

    // The overview.
    let (s, f) = fleet.get("/api/fleet?duration=15m");
    assert_eq!(s, 200, "{f}");
    assert_eq!(names(&f), vec!["ap-kitchen", "ap-office", "mesh-garden"]);
    assert_eq!(f["duration"], "15m");
    assert_eq!(f["sites"], json!(["home", "office"]));
    for r in f["routers"].as_array().unwrap() {
        assert_eq!(r["status"], "online", "{r}");
        assert_eq!(r["online"], true);
        assert_eq!(r["model"], "D-Link DIR-878 A1", "from etc/board.json");
        // wlan0 (3) and wlan1 (2) are APs; the mesh0 peer is not a client.
        assert_eq!(r["clients"], 5, "{r}");
        assert_eq!(r["wan_interface"], "pppoe-wan");
        assert!(r["wan_tx_bytes"].as_i64().unwrap() > 0, "{r}");
        assert!(r["uptime_s"].as_i64().unwrap() > 0, "{r}");
        assert_eq!(r["disk_mount"], "/overlay");
        assert!(
            (r["disk_used_percent"].as_f64().unwrap() - 22.6).abs() < 0.1,
            "{r}"
        );
        assert!(
            r["mem_used_percent"]
                .as_f64()
                .is_some_and(|p| p > 0.0 && p < 100.0),
            "{r}"
        );
        assert!(r["last_seen_age_s"].as_i64().is_some_and(|a| a < 60), "{r}");
    }
    let t = &f["totals"];
    assert_eq!(
        (
            t["routers"].as_u64(),
            t["routers_online"].as_u64(),
            t["clients"].as_u64()
        ),
        (Some(3), Some(3), Some(15))
    );
    let sum_rx: i64 = f["routers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["wan_rx_bytes"].as_i64().unwrap())
        .sum();
    assert_eq!(t["wan_rx_bytes"].as_i64(), Some(sum_rx));

    // Filters and windows.
    let (_, f) = fleet.get("/api/fleet?site=HOME");
    assert_eq!(names(&f), vec!["ap-kitchen", "mesh-garden"]);
    assert_eq!(f["totals"]["routers"], 2);
    let (_, f) = fleet.get("/api/fleet?q=OFF");
    assert_eq!(names(&f), vec!["ap-office"], "matches the site too");
    for d in ["15m", "1h", "1d", "7d"] {
        let (s, f) = fleet.get(&format!("/api/fleet?duration={d}"));
        assert_eq!((s, f["duration"].as_str()), (200, Some(d)), "{f}");
        assert!(
            f["totals"]["wan_rx_bytes"].as_u64().unwrap() > 0,
            "{d}: rollups hold today's traffic too: {f}"
        );
    }

    // Bounds: 400 with a message, never a 500.
    let long = "x".repeat(65);
    for path in [
        "/api/fleet?duration=2w".to_string(),
        "/api/fleet?duration=".to_string() + &"9".repeat(30),
        format!("/api/fleet?q={long}"),
        format!("/api/fleet?site={long}"),
        "/api/fleet?q=%07".to_string(),
        "/api/routers/ap-kitchen?duration=1y".to_string(),
        format!("/api/routers/{long}"),
        "/api/routers/%01".to_string(),
    ] {
        let (s, body) = fleet.get(&path);
        assert_eq!(s, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }

    // Unknown routers: 404 with a message.
    for path in [
        "/api/routers/999999",
        "/api/routers/no-such-router",
        "/api/routers/0",
    ] {
        let (s, body) = fleet.get(path);
        assert_eq!(s, 404, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains("no router"),
            "{body}"
        );
    }

    // The detail, by name (any case) and by id. The WAN rate is the newest sample's: an agent
    // cycle that ran between two ticks of the fake router legitimately reports 0 B/s, so wait
    // for a detail whose newest WAN sample saw traffic.
    let d = wait_for(WAIT, "a detail whose newest WAN sample has traffic", || {
        let (s, d) = fleet.get("/api/routers/AP-Kitchen?duration=15m");
        assert_eq!(s, 200, "{d}");
        let wan_rx_bps = d["interfaces"]
            .as_array()?
            .iter()
            .find(|i| i["name"] == "pppoe-wan")?["rx_bps"]
            .as_i64()?;
        (wan_rx_bps > 0).then_some(d)
    });
    let id = d["router"]["id"].as_i64().unwrap();
    let (s, by_id) = fleet.get(&format!("/api/routers/{id}"));
    assert_eq!(
        (s, by_id["router"]["name"].as_str()),
        (200, Some("ap-kitchen"))
    );
    assert_eq!(d["facts"]["kernel"], "5.15.150");

    let ifaces: Vec<&str> = d["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        ifaces.contains(&"pppoe-wan") && ifaces.contains(&"br-lan") && !ifaces.contains(&"lo"),
        "{ifaces:?}"
    );
    let wan = d["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "pppoe-wan")
        .unwrap();
    assert_eq!(
        (wan["wan"].as_bool(), wan["kind"].as_str()),
        (Some(true), Some("pppoe"))
    );
    assert!(wan["window_rx_bytes"].as_i64().unwrap() > 0, "{wan}");
    assert!(wan["rx_bps"].as_i64().unwrap() > 0, "{wan}");

    // Wireless clients grouped by SSID; the known client's hostname and IP come from its lease.
    let groups = d["ssids"].as_array().unwrap();
    let home = groups
        .iter()
        .find(|g| g["ssid"] == "HomeNet")
        .expect("HomeNet group");
    let home_ifaces: Vec<&str> = home["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(home_ifaces, vec!["wlan0", "wlan1"]);
    assert_eq!(home["clients"].as_array().unwrap().len(), 5);
    let mesh = groups
        .iter()
        .find(|g| g["ssid"].is_null())
        .expect("mesh group");
    assert_eq!(mesh["interfaces"][0]["type"], "mesh point");
    assert_eq!(mesh["clients"].as_array().unwrap().len(), 1);
    let known = client_by_mac(&d, KNOWN_MAC).unwrap();
    assert_eq!(
        (known["hostname"].as_str(), known["ip"].as_str()),
        (Some(KNOWN_HOST), Some(KNOWN_IP))
    );
    assert_eq!(
        (known["interface"].as_str(), known["signal_dbm"].as_i64()),
        (Some("wlan0"), Some(-52))
    );
    assert_eq!(known["tx_bitrate_kbps"], 144_400);

    // Leases, WireGuard, OpenVPN from the fixtures.
    let leases = d["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 11, "10 fixture leases plus the added one");
    let alice = leases
        .iter()
        .find(|l| l["hostname"] == "Alices-MacBook-Pro" && l["mac"].is_string())
        .unwrap();
    assert_eq!(alice["ip"], "192.168.1.142");
    let nas = leases.iter().find(|l| l["hostname"] == "nas").unwrap();
    assert!(
        nas["expires"].is_null() && nas["expires_in_s"].is_null(),
        "infinite lease: {nas}"
    );
    let peers = d["wireguard"].as_array().unwrap();
    assert_eq!(peers.len(), 6);
    let alice_peer = peers.iter().find(|p| p["name"] == "Alice laptop").unwrap();
    assert_eq!(
        alice_peer["status"], "active",
        "the fake router handshakes 20 s before each report: {alice_peer}"
    );
    assert!(
        alice_peer["handshake_age_s"]
            .as_i64()
            .is_some_and(|a| a < 60),
        "{alice_peer}"
    );
    let carol = peers
        .iter()
        .find(|p| p["public_key"] == "zgLKuAbOIVTrVe1NdegrO1uk+5KE4sQLm77TnNKj/7M=")
        .unwrap();
    assert_eq!(
        (carol["status"].as_str(), carol["handshake_age_s"].as_i64()),
        (Some("never"), None)
    );
    assert!(peers
        .iter()
        .any(|p| p["name"] == "Mullvad se-sto-wg-001" && p["interface"] == "wg1"));
    let ovpn = d["openvpn"].as_array().unwrap();
    let cns: Vec<&str> = ovpn
        .iter()
        .map(|c| c["common_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cns,
        vec!["laptop-anna", "laptop-anna", "phone-ben", "router-office"]
    );
    assert!(ovpn
        .iter()
        .any(|c| c["cipher"] == "CHACHA20-POLY1305" && c["virtual_ipv6"] == "fd42:8::1001"));
    assert!(d["sources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == "station_dump"));

    // The page and its assets: no key needed, embedded, strict CSP, nothing from elsewhere.
    let (s, headers, html) = raw_get(&fleet, "/");
    assert_eq!(s, 200);
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("content-type: text/html")),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("content-security-policy:") && h.contains("default-src 'none'")),
        "{headers:?}"
    );
    assert!(html.contains(r#"<script src="/assets/dashboard.js" defer></script>"#));
    for (path, kind) in [
        ("/assets/dashboard.js", "javascript"),
        ("/assets/dashboard.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let (s, headers, body) = raw_get(&fleet, path);
        assert_eq!(s, 200, "{path}");
        assert!(
            headers
                .iter()
                .any(|h| h.starts_with("content-type:") && h.contains(kind)),
            "{path}: {headers:?}"
        );
        for external in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "@import",
            "fetch(\"http",
            "//cdn",
        ] {
            assert!(
                !body.contains(external) && !html.contains(external),
                "{path} loads something from elsewhere: {external}"
            );
        }
    }
    assert_eq!(raw_get(&fleet, "/assets/nope.js").0, 404);
}

#[test]
fn json_endpoints_on_an_empty_fleet() {
    let fleet = Fleet::start(&[], 0);
    let (s, f) = fleet.get("/api/fleet?duration=7d");
    assert_eq!(s, 200, "{f}");
    assert_eq!(f["routers"], json!([]));
    assert_eq!(f["sites"], json!([]));
    assert_eq!(
        f["totals"],
        json!({"routers": 0, "routers_online": 0, "clients": 0, "wan_rx_bytes": 0, "wan_tx_bytes": 0, "wan_rx_bps": 0, "wan_tx_bps": 0})
    );
    let (s, body) = fleet.get("/api/routers/1");
    assert_eq!(s, 404, "{body}");
    assert_eq!(fleet.get_as("/api/fleet", None).0, 401);
}

// ---------------------------------------------------------------------------------------------
// The browser test.

/// `<target dir>/screenshots`, next to the test binary's profile directory.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary> -> target/screenshots
    let target = exe
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

fn save(png: WdResult<Vec<u8>>, name: &str) -> PathBuf {
    let png = png.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
    let path = screenshot_dir().join(format!("dashboard-{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    // Straight to stderr (not eprintln!, which the test harness captures), so the paths show
    // in every run's output.
    let _ = writeln!(std::io::stderr(), "screenshot: {}", path.display());
    path
}

fn texts(s: &Session, css: &str) -> WdResult<Vec<String>> {
    s.find_all(css)?.iter().map(|e| s.text(e)).collect()
}

/// Waits until the texts of `css` equal `want`.
fn wait_texts(s: &Session, css: &str, want: &[&str]) -> WdResult<()> {
    s.wait(WAIT, &format!("{css} to read {want:?}"), |s| {
        Ok((texts(s, css)? == want).then_some(()))
    })
}

fn wait_displayed(s: &Session, css: &str) -> WdResult<Element> {
    s.wait(WAIT, &format!("{css} to be displayed"), |s| {
        let el = s.find(css)?;
        Ok(s.is_displayed(&el)?.then_some(el))
    })
}

fn script_str(s: &Session, script: &str) -> Option<String> {
    s.execute(script, vec![])
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
}

/// Waits for the chart: 20 intervals, one RX and one TX point per measured interval (at least
/// one), a gap band for each interval without data; returns the number of measured intervals.
fn wait_chart(s: &Session) -> WdResult<usize> {
    s.wait(WAIT, "the chart with its measured intervals", |s| {
        let v = s.execute(
            "const c = document.getElementById('traffic-chart'); if (!c) return null; \
             return [Number(c.dataset.points), Number(c.dataset.present), \
               c.querySelectorAll('circle.pt.rx').length, c.querySelectorAll('circle.pt.tx').length, \
               c.querySelectorAll('rect.gap').length];",
            vec![],
        )?;
        let n: Vec<usize> = v
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect())
            .unwrap_or_default();
        Ok(match n[..] {
            [20, present, rx, tx, gaps] if present >= 1 && rx == present && tx == present && gaps == 20 - present => Some(present),
            _ => None,
        })
    })
}

#[test]
fn dashboard_in_headless_chromium() {
    let fleet = Fleet::start(ROUTERS, 3);
    let _ticker = Ticker::start(&fleet);
    add_known_lease(&fleet, "ap-kitchen");
    let driver = match ChromeDriver::start(&fleet.dir.path().join("chromedriver")) {
        Ok(d) => d,
        Err(e @ WdError::NotInstalled(_)) => panic!("the browser test needs Chromium: {e}"),
        Err(e) => panic!("chromedriver did not start: {e}"),
    };
    let result = browse(&fleet, &driver);
    if let Err(e) = result {
        panic!(
            "{e}\nchromedriver log tail:\n{}\ncollector log tail:\n{}",
            driver.log_tail(30),
            {
                let log = fleet.collector.log();
                log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            }
        );
    }
}

fn browse(fleet: &Fleet, driver: &ChromeDriver) -> WdResult<()> {
    let base = format!("http://{}", fleet.collector.api);
    let mut s = driver.new_session(&fleet.dir.path().join("chrome-profile"), 1366, 900)?;
    let (_, f) = fleet.get("/api/fleet");
    let kitchen_id = f["routers"][0]["id"].as_i64().expect("router id");

    // Login page; a wrong key shows an error and no data.
    s.navigate(&format!("{base}/"))?;
    let key_input = wait_displayed(&s, "#api-key")?;
    save(s.screenshot(), "login");
    s.send_keys(&key_input, "rsk_wrong_key")?;
    s.click(&s.find("#login-submit")?)?;
    let err = wait_displayed(&s, "#login-error")?;
    let msg = s.text(&err)?;
    assert!(
        msg.contains("rejected") && msg.contains("unknown API key"),
        "{msg}"
    );
    assert!(
        s.find_all("#fleet-body tr")?.is_empty(),
        "no data without a valid key"
    );
    assert!(!s.is_displayed(&s.find("#overview-view")?)?);
    assert!(!s.is_displayed(&s.find("#controls")?)?);
    assert_eq!(
        script_str(&s, "return sessionStorage.getItem('routerstats.apiKey');"),
        None
    );
    save(s.screenshot(), "login-error");

    // The right key: the overview lists every router.
    s.clear(&key_input)?;
    s.send_keys(&key_input, &fleet.read_key)?;
    s.click(&s.find("#login-submit")?)?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-kitchen", "ap-office", "mesh-garden"],
    )?;
    assert!(!s.is_displayed(&s.find("#login-error")?)?);
    assert_eq!(
        script_str(&s, "return sessionStorage.getItem('routerstats.apiKey');").as_deref(),
        Some(fleet.read_key.as_str())
    );
    let url = s.current_url()?;
    assert!(
        !url.contains(&fleet.read_key),
        "the key is never in the URL: {url}"
    );
    let local = s.execute(
        "return JSON.stringify(Object.assign({}, localStorage));",
        vec![],
    )?;
    assert!(
        !local.as_str().unwrap_or("").contains(&fleet.read_key),
        "the key is not kept in localStorage: {local}"
    );
    s.wait(WAIT, "totals", |s| {
        Ok(s.text(&s.find("#totals")?)?.contains("3 / 3").then_some(()))
    })?;
    let statuses = texts(&s, "#fleet-body .badge")?;
    assert_eq!(statuses, vec!["online"; 3]);
    let clients = texts(&s, "#fleet-body td[data-label=Clients]")?;
    assert_eq!(clients, vec!["5"; 3]);
    // "Updated" is set when the whole load() finishes, which may be a moment after the totals.
    s.wait(WAIT, "the updated time", |s| {
        let updated = s.text(&s.find("#updated")?)?;
        Ok(updated.starts_with("Updated ").then_some(()))
    })?;
    save(s.full_screenshot(1366, 2400), "overview");

    // Search and site filter.
    let search = s.find("#search")?;
    s.send_keys(&search, "office")?;
    wait_texts(&s, "#fleet-body tr th a", &["ap-office"])?;
    s.clear(&search)?;
    s.send_keys(&search, "GARD")?;
    wait_texts(&s, "#fleet-body tr th a", &["mesh-garden"])?;
    s.clear(&search)?;
    s.execute(
        "const e = document.getElementById('search'); e.dispatchEvent(new Event('input'));",
        vec![],
    )?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-kitchen", "ap-office", "mesh-garden"],
    )?;
    s.click(&s.find("#site-filter option[value=home]")?)?;
    wait_texts(&s, "#fleet-body tr th a", &["ap-kitchen", "mesh-garden"])?;
    s.send_keys(&search, "kitchen")?;
    wait_texts(&s, "#fleet-body tr th a", &["ap-kitchen"])?;
    s.clear(&search)?;
    s.execute(
        "document.getElementById('search').dispatchEvent(new Event('input'));",
        vec![],
    )?;
    s.click(&s.find("#site-filter option[value='']")?)?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-kitchen", "ap-office", "mesh-garden"],
    )?;

    // Sorting by column, both directions, with aria-sort on the header.
    s.click(&s.find("button[data-sort=name]")?)?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["mesh-garden", "ap-office", "ap-kitchen"],
    )?;
    let th = s.find("th[aria-sort]")?;
    assert_eq!(
        s.attribute(&th, "aria-sort")?.as_deref(),
        Some("descending")
    );
    s.click(&s.find("button[data-sort=site]")?)?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-kitchen", "mesh-garden", "ap-office"],
    )?;
    s.click(&s.find("button[data-sort=site]")?)?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-office", "ap-kitchen", "mesh-garden"],
    )?;
    s.click(&s.find("button[data-sort=name]")?)?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-kitchen", "ap-office", "mesh-garden"],
    )?;
    let caption = s.text(&s.find("#fleet-caption")?)?;
    assert!(
        caption.contains("3 of 3") && caption.contains("Router ascending"),
        "{caption}"
    );

    // Auto-refresh: at 5 s the "updated" time moves on by itself.
    s.click(&s.find("#refresh option[value='5']")?)?;
    let before = s.text(&s.find("#updated")?)?;
    s.wait(Duration::from_secs(15), "an automatic refresh", |s| {
        let now = s.text(&s.find("#updated")?)?;
        Ok((now != before && now.starts_with("Updated ")).then_some(()))
    })?;

    // Detail page: the known client's hostname from its DHCP lease, leases, peers, clients.
    s.click(&s.find(&format!("#fleet-body a[href='#/router/{kitchen_id}']"))?)?;
    wait_displayed(&s, "#detail-view")?;
    s.wait(WAIT, "the known client's hostname", |s| {
        Ok(texts(s, "#ssid-groups table.ssid tbody th")?
            .iter()
            .any(|t| t == KNOWN_HOST)
            .then_some(()))
    })?;
    assert_eq!(s.text(&s.find("#detail-title")?)?, "ap-kitchen");
    let captions = texts(&s, "#ssid-groups caption")?;
    assert!(
        captions
            .iter()
            .any(|c| c
                .starts_with("HomeNet: 5 clients on wlan0 (2.4 GHz, ch 6), wlan1 (5 GHz, ch 36)")),
        "{captions:?}"
    );
    let known_row = s.execute(
        "const th = [...document.querySelectorAll('#ssid-groups tbody th')].find(t => t.textContent === arguments[0]); \
         return [...th.parentElement.children].map(c => c.textContent);",
        vec![json!(KNOWN_HOST)],
    )?;
    let cells: Vec<&str> = known_row
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        cells.get(..5),
        Some(&[KNOWN_HOST, KNOWN_IP, KNOWN_MAC, "wlan0", "-52 dBm"][..]),
        "{cells:?}"
    );
    assert!(texts(&s, "#lease-table tbody th")?
        .iter()
        .any(|t| t == "Alices-MacBook-Pro"));
    assert_eq!(s.find_all("#wg-table tbody tr")?.len(), 6);
    assert!(texts(&s, "#wg-table tbody th")?
        .iter()
        .any(|t| t == "Alice laptop"));
    assert_eq!(s.find_all("#ovpn-table tbody tr")?.len(), 4);
    let iface_names = texts(&s, "#iface-table tbody th")?;
    assert!(
        iface_names
            .iter()
            .any(|t| t.starts_with("pppoe-wan") && t.contains("WAN")),
        "{iface_names:?}"
    );
    save(s.full_screenshot(1366, 4000), "detail");

    // A port's RX opens its chart: 20 intervals, a point where something was measured (the
    // agents started seconds ago, so most intervals are gaps, never zeros), for each window.
    s.click(&s.find("#iface-table button[data-port='pppoe-wan'][data-dir=rx]")?)?;
    wait_displayed(&s, "#chart-panel")?;
    wait_chart(&s)?;
    assert!(s
        .current_url()?
        .ends_with(&format!("#/router/{kitchen_id}/port/pppoe-wan")));
    let svg = s.find("#traffic-chart")?;
    assert_eq!(s.attribute(&svg, "data-points")?.as_deref(), Some("20"));
    assert_eq!(s.find_all("#chart-table tbody tr")?.len(), 20);
    let title = s.text(&s.find("#chart-title")?)?;
    assert_eq!(title, "pppoe-wan traffic");
    // Traffic went through pppoe-wan, so a measured RX point stands above the zero line.
    let ys = s.execute(
        "return [...document.querySelectorAll('#traffic-chart circle.pt.rx')].map(c => Number(c.getAttribute('cy')));",
        vec![],
    )?;
    let ys: Vec<f64> = ys
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let zero = s
        .execute(
            "return Number(document.querySelector('#traffic-chart line.grid').getAttribute('y1'));",
            vec![],
        )?
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        ys.iter().any(|y| zero - y > 1.0),
        "every RX point on the zero line {zero}: {ys:?}"
    );
    for w in ["15m", "1d", "7d", "1h"] {
        s.click(&s.find(&format!("#chart-windows button[data-window='{w}']"))?)?;
        s.wait(WAIT, &format!("the {w} chart"), |s| {
            let pressed = s.attribute(
                &s.find(&format!("#chart-windows button[data-window='{w}']"))?,
                "aria-pressed",
            )?;
            let label = s.execute(
                "return document.getElementById('chart-svg-title').textContent;",
                vec![],
            )?;
            let want = match w {
                "15m" => "15 min",
                "1h" => "1 hour",
                "1d" => "1 day",
                _ => "7 days",
            };
            let shown = label
                .as_str()
                .is_some_and(|l| l.ends_with(&format!("over the last {want}")));
            Ok((pressed.as_deref() == Some("true") && shown).then_some(()))
        })?;
        wait_chart(&s)?;
        if w == "15m" {
            save(s.screenshot(), "chart");
        }
    }
    // The TX cell opens the same port's chart from the overview's WAN column too.
    s.navigate(&format!("{base}/#/"))?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-kitchen", "ap-office", "mesh-garden"],
    )?;
    s.click(&s.find("#fleet-body td[data-label='WAN TX'] button")?)?;
    wait_chart(&s)?;

    // Only the collector was contacted (no CDN, nothing external).
    let resources = s.execute(
        "return performance.getEntriesByType('resource').map(e => e.name);",
        vec![],
    )?;
    for r in resources.as_array().into_iter().flatten() {
        let r = r.as_str().unwrap_or("");
        assert!(r.starts_with(&base), "request outside the collector: {r}");
    }

    // Phone-size viewport: the fleet table turns into cards.
    s.set_window_size(390, 844)?;
    s.navigate(&format!("{base}/#/"))?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-kitchen", "ap-office", "mesh-garden"],
    )?;
    let width = s
        .execute("return window.innerWidth;", vec![])?
        .as_u64()
        .unwrap_or(0);
    assert!(width <= 420, "viewport is {width} px wide");
    let display = script_str(
        &s,
        "return getComputedStyle(document.querySelector('#fleet-body td')).display;",
    );
    assert_eq!(
        display.as_deref(),
        Some("flex"),
        "phone layout: cells as label/value lines"
    );
    let overflow = s
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )?
        .as_i64()
        .unwrap_or(99);
    assert!(
        overflow <= 0,
        "the page scrolls sideways on a phone by {overflow} px"
    );
    save(s.screenshot(), "phone-overview");
    s.navigate(&format!("{base}/#/router/{kitchen_id}/port/pppoe-wan"))?;
    wait_chart(&s)?;
    save(s.screenshot(), "phone-chart");

    // Tablet in landscape.
    s.set_window_size(1024, 768)?;
    s.navigate(&format!("{base}/#/"))?;
    wait_texts(
        &s,
        "#fleet-body tr th a",
        &["ap-kitchen", "ap-office", "mesh-garden"],
    )?;
    let right = s.execute(
        "return document.querySelector('#fleet-body td[data-label=\"WAN TX\"]').getBoundingClientRect().right - window.innerWidth;",
        vec![],
    )?;
    assert!(
        right.as_f64().is_some_and(|r| r <= 0.0),
        "the WAN TX column is cut off on a tablet by {right} px"
    );
    save(s.screenshot(), "tablet-overview");

    // Signing out forgets the key and the data.
    s.click(&s.find("#logout")?)?;
    wait_displayed(&s, "#api-key")?;
    assert_eq!(
        script_str(&s, "return sessionStorage.getItem('routerstats.apiKey');"),
        None
    );
    assert!(s.find_all("#fleet-body tr")?.is_empty());
    s.delete()?;
    Ok(())
}

/// The `textContent` of every element matching `css` (also inside a closed `<details>`, where
/// WebDriver's rendered text is empty).
fn text_contents(s: &Session, css: &str) -> WdResult<Vec<String>> {
    let v = s.execute(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);",
        vec![json!(css)],
    )?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

fn sign_in(s: &Session, base: &str, key: &str) -> WdResult<()> {
    s.navigate(&format!("{base}/#/"))?;
    let input = wait_displayed(s, "#api-key")?;
    s.clear(&input)?;
    s.send_keys(&input, key)?;
    s.click(&s.find("#login-submit")?)?;
    wait_displayed(s, "#overview-view").map(drop)
}

/// Firing alerts on the overview and the router page, silences from the UI (a read key is told
/// it needs an admin key; an admin key silences and expires), and the chart's gaps and hover tip.
#[test]
fn dashboard_alerts_silences_and_chart_gaps_in_headless_chromium() {
    let mut fleet = Fleet::start_with_config(
        &[("ap-kitchen", "home"), ("ap-office", "office")],
        3,
        Some(FAST_ALERTS),
    );
    let _ticker = Ticker::start(&fleet);
    fleet.stop_agent("ap-office");
    wait_for(WAIT, "the offline alert", || {
        let (_, b) = fleet.get("/api/alerts?state=firing&rule=offline");
        (b["total"] == 1).then_some(())
    });
    let driver = match ChromeDriver::start(&fleet.dir.path().join("chromedriver")) {
        Ok(d) => d,
        Err(e @ WdError::NotInstalled(_)) => panic!("the browser test needs Chromium: {e}"),
        Err(e) => panic!("chromedriver did not start: {e}"),
    };
    if let Err(e) = browse_alerts(&fleet, &driver) {
        panic!("{e}\nchromedriver log tail:\n{}", driver.log_tail(30));
    }
}

fn browse_alerts(fleet: &Fleet, driver: &ChromeDriver) -> WdResult<()> {
    let base = format!("http://{}", fleet.collector.api);
    let mut s = driver.new_session(&fleet.dir.path().join("chrome-profile"), 1366, 900)?;

    // Overview with a read key: the firing alert, and silencing is refused with a reason.
    sign_in(&s, &base, &fleet.read_key)?;
    wait_texts(
        &s,
        "#alerts-table tbody tr[data-alert] th a",
        &["ap-office"],
    )?;
    let row = texts(&s, "#alerts-table tbody tr[data-alert] td")?;
    assert_eq!(row[0], "critical", "{row:?}");
    assert_eq!(row[1], "offline", "{row:?}");
    assert!(row[2].contains("ap-office has sent no report"), "{row:?}");
    assert!(s.text(&s.find("#alerts-title")?)?.contains("(1)"));
    save(s.full_screenshot(1366, 2400), "alerts-overview");
    s.click(&s.find("#alerts-table button.silence")?)?;
    s.wait(WAIT, "the read-only message", |s| {
        Ok(s.text(&s.find("#alerts-msg")?)?
            .contains("needs an admin API key")
            .then_some(()))
    })?;
    assert_eq!(
        texts(&s, "#silences-table tbody tr[data-silence]")?.len(),
        0
    );

    // The router page lists it too.
    s.click(&s.find("#alerts-table tbody tr[data-alert] th a")?)?;
    wait_texts(
        &s,
        "#router-alerts-table tbody tr[data-alert] th",
        &["offline"],
    )?;
    let cells = texts(&s, "#router-alerts-table tbody tr[data-alert] td")?;
    assert_eq!(cells[0], "firing", "{cells:?}");
    assert!(s
        .text(&s.find("#router-alerts-title")?)?
        .contains("1 firing"));

    // An admin key silences it from the router page, then expires the silence on the overview.
    s.click(&s.find("#logout")?)?;
    sign_in(&s, &base, &fleet.admin_key)?;
    wait_texts(
        &s,
        "#alerts-table tbody tr[data-alert] th a",
        &["ap-office"],
    )?;
    s.click(&s.find("#alerts-table button.silence")?)?;
    s.wait(WAIT, "the silence", |s| {
        Ok((s.find_all("#silences-table tbody tr[data-silence]")?.len() == 1).then_some(()))
    })?;
    let sil = texts(&s, "#silences-table tbody tr[data-silence] td")?;
    assert_eq!(sil[0], "rule offline, router ap-office", "{sil:?}");
    assert_eq!(sil[1], "silenced from the dashboard");
    wait_texts(
        &s,
        "#alerts-table tbody tr[data-alert] td .badge.silenced",
        &["silenced"],
    )?;
    assert!(s
        .text(&s.find("#alerts-msg")?)?
        .starts_with("Silenced offline on ap-office"));
    let (_, api) = fleet.get("/api/alerts/silences");
    assert_eq!(api["silences"][0]["router"], "ap-office");
    save(s.full_screenshot(1366, 2400), "alerts-silenced");
    s.click(&s.find("#silences-table button.expire")?)?;
    s.wait(WAIT, "no active silence", |s| {
        Ok((s
            .find_all("#silences-table tbody tr[data-silence]")?
            .is_empty())
        .then_some(()))
    })?;
    assert_eq!(
        fleet.get("/api/alerts/silences").1["silences"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );

    // The chart of a router whose agent started seconds ago: measured intervals are points, the
    // rest are gaps (never zeros), in the chart and in its table.
    let (_, f) = fleet.get("/api/fleet");
    let kitchen = f["routers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ap-kitchen")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    s.navigate(&format!("{base}/#/router/{kitchen}/port/pppoe-wan"))?;
    s.click(&wait_displayed(
        &s,
        "#chart-windows button[data-window='1h']",
    )?)?;
    let present = wait_chart(&s)?;
    assert!(
        present < 20,
        "an agent that just started cannot fill an hour: {present}"
    );
    let rows = text_contents(&s, "#chart-table tbody tr")?;
    assert_eq!(rows.len(), 20, "the data table keeps every interval");
    assert_eq!(
        rows.iter().filter(|r| r.contains("no data")).count(),
        20 - present,
        "{rows:?}"
    );
    let summary = s.text(&s.find("#chart-summary")?)?;
    assert!(
        summary.starts_with(&format!("{present} of 20 intervals")),
        "{summary}"
    );

    // Hovering a point shows its time and values; hovering a gap says so. (Hovered again when
    // a refresh redrew the chart in between.)
    let hover_tip = |css: &'static str| {
        s.wait(WAIT, &format!("the tip over {css}"), move |s| {
            let el = s.find(css)?;
            let i: usize = s
                .attribute(&el, "data-i")?
                .and_then(|v| v.parse().ok())
                .expect("index");
            s.hover(&el)?;
            let tip = s.find("#chart-tip")?;
            if !s.is_displayed(&tip)?
                || s.attribute(&tip, "data-i")?.as_deref() != Some(i.to_string().as_str())
            {
                return Ok(None);
            }
            Ok(Some((i, s.text(&tip)?)))
        })
    };
    let (i, text) = hover_tip("#traffic-chart circle.pt.rx")?;
    let time = text_contents(&s, "#chart-table tbody tr th")?[i].clone();
    assert!(
        text.starts_with(&time)
            && text.contains("RX ")
            && text.contains("TX ")
            && text.contains("bit/s"),
        "{text} at {time}"
    );
    save(s.screenshot(), "chart-hover");
    let (gi, text) = hover_tip("#traffic-chart rect.gap")?;
    let time = text_contents(&s, "#chart-table tbody tr th")?[gi].clone();
    assert_eq!(text, format!("{time} · no data"));
    s.delete()?;
    Ok(())
}

/// A router page's fleet actions and WireGuard writes: an admin adds a peer (its configuration
/// and QR code shown once, gone from the page after Done), the actions panel lists the action as
/// done, Delete (confirmed) removes the peer; a read key sees the peers, no write buttons, and is
/// told writes need an admin key. The router's agent applies the actions with OpenWrt's real
/// `uci` on its fake root (`wg` and `ifup` are the fake root's recording stand-ins).
#[test]
fn dashboard_fleet_actions_and_wireguard_peers_in_headless_chromium() {
    let mut fleet = Fleet::start(&[("ap-office", "office")], 2);
    // Run the router's agent again with a config that allows the action families.
    fleet.stop_agent("ap-office");
    let setup = &fleet.routers[0];
    let conf = setup
        .router
        .write_agent_config(Some(&uci_bin()))
        .expect("agent config");
    let mut agent = setup.run(
        fleet.collector.ingest,
        "200ms",
        &["--config", &conf.display().to_string()],
    );
    let _ticker = Ticker::start(&fleet);
    let driver = match ChromeDriver::start(&fleet.dir.path().join("chromedriver")) {
        Ok(d) => d,
        Err(e @ WdError::NotInstalled(_)) => panic!("the browser test needs Chromium: {e}"),
        Err(e) => panic!("chromedriver did not start: {e}"),
    };
    if let Err(e) = browse_actions(&fleet, &driver) {
        panic!(
            "{e}\nchromedriver log tail:\n{}\nagent log:\n{}",
            driver.log_tail(30),
            agent.stop()
        );
    }
}

fn browse_actions(fleet: &Fleet, driver: &ChromeDriver) -> WdResult<()> {
    const PEER: &str = "phone-dana";
    let slow = Duration::from_secs(90);
    let base = format!("http://{}", fleet.collector.api);
    let root = fleet.routers[0].router.root.clone();
    let network = || std::fs::read_to_string(root.join("etc/config/network")).unwrap_or_default();
    let (_, f) = fleet.get("/api/fleet");
    let id = f["routers"][0]["id"].as_i64().expect("router id");
    let mut s = driver.new_session(&fleet.dir.path().join("chrome-profile"), 1366, 900)?;

    // Admin: the form, Delete buttons on named peers, no actions yet.
    sign_in(&s, &base, &fleet.admin_key)?;
    s.navigate(&format!("{base}/#/router/{id}"))?;
    let input = wait_displayed(&s, "#wg-peer-name")?;
    wait_texts(
        &s,
        "#actions-table tbody td.empty",
        &["No fleet actions for this router."],
    )?;
    assert!(!s.find_all("#wg-table button.delete-peer")?.is_empty());
    assert_eq!(s.text(&s.find("#wg-peer-iface option")?)?, "wg0");

    // Add a peer: the router's answer, then its configuration and QR code, once.
    s.send_keys(&input, PEER)?;
    s.click(&s.find("#wg-add-submit")?)?;
    let conf = s.wait(slow, "the new peer's configuration", |s| {
        let el = s.find("#wg-config")?;
        s.is_displayed(&el)?.then(|| s.text(&el)).transpose()
    })?;
    assert!(conf.starts_with("[Interface]\nPrivateKey = "), "{conf}");
    // The fixture's wg0 is 10.77.0.1/24 with peers on .2, .3, .4 and .10.
    assert!(conf.contains("Address = 10.77.0.5/32"), "{conf}");
    assert!(conf.contains("AllowedIPs = 10.77.0.0/24"), "{conf}");
    let private_key = conf
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .expect("private key")
        .to_string();
    let qr = s.find("#wg-qr")?;
    assert!(s.is_displayed(&qr)?);
    let src = s.attribute(&qr, "src")?.unwrap_or_default();
    let svg = src
        .strip_prefix("data:image/svg+xml;base64,")
        .map(base64_decode)
        .transpose()?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (status, api_svg) = http_get(
        fleet.collector.api,
        &format!("/peer/{PEER}/qr"),
        &[("X-API-Key", fleet.admin_key.as_str())],
    )?;
    assert_eq!(status, 200);
    assert!(
        svg.contains("<svg") && svg == api_svg,
        "the QR shown is the API's"
    );
    // A drawn QR code: the image has loaded with a size.
    let loaded = s.execute(
        "const i = document.getElementById('wg-qr'); return i.complete && i.naturalWidth > 0;",
        vec![],
    )?;
    assert_eq!(loaded, json!(true), "the QR image did not load");
    assert!(s.text(&s.find("#wg-msg")?)?.starts_with(&format!(
        "Peer {PEER} created successfully: {PEER} has address 10.77.0.5"
    )));
    assert!(network().contains(&format!("option description '{PEER}'")));

    // The actions panel lists the add as done, with who asked and what the router did.
    s.wait(slow, "the add action as done", |s| {
        Ok((s
            .find_all("#actions-table tbody tr[data-kind='wg_add_peer'][data-state='done']")?
            .len()
            == 1)
            .then_some(()))
    })?;
    let row = texts(&s, "#actions-table tbody tr[data-kind='wg_add_peer'] > *")?;
    assert_eq!(row[0], format!("wg_add_peer {PEER} on wg0"), "{row:?}");
    assert_eq!(row[1], "done", "{row:?}");
    assert!(row[2].starts_with("key:"), "{row:?}");
    assert!(row[5].contains("uci"), "{row:?}");
    // The peer shows in the table once the router reports it.
    wait_displayed(&s, &format!("#wg-table tbody tr[data-peer='{PEER}']"))?;
    save(s.full_screenshot(1366, 3200), "actions-peer-added");

    // Done: the configuration is gone from the page.
    s.click(&s.find("#wg-config-dismiss")?)?;
    let gone = s.execute(
        "return document.getElementById('wg-new-config').hidden \
           && document.getElementById('wg-config').textContent === '' \
           && !document.getElementById('wg-qr').hasAttribute('src') \
           && !document.documentElement.outerHTML.includes(arguments[0]);",
        vec![json!(private_key)],
    )?;
    assert_eq!(gone, json!(true), "the configuration stayed in the page");

    // Delete, confirmed: the peer leaves the router's UCI config and the table.
    let delete_css = format!("#wg-table tbody tr[data-peer='{PEER}'] button.delete-peer");
    s.wait(WAIT, "the delete button", |s| {
        Ok(s.click(&s.find(&delete_css)?).ok())
    })?;
    let question = s.wait(WAIT, "the confirm dialog", |s| Ok(s.alert_text().ok()))?;
    assert!(
        question.contains(PEER) && question.contains("ap-office"),
        "{question}"
    );
    s.accept_alert()?;
    s.wait(slow, "the delete message", |s| {
        Ok(s.text(&s.find("#wg-msg")?)?
            .contains(&format!("Peer {PEER} deleted successfully"))
            .then_some(()))
    })?;
    assert!(!network().contains(PEER), "{}", network());
    s.wait(slow, "the peer gone from the table", |s| {
        Ok(
            s.find_all(&format!("#wg-table tbody tr[data-peer='{PEER}']"))?
                .is_empty()
                .then_some(()),
        )
    })?;
    s.wait(slow, "the delete action as done", |s| {
        Ok((s
            .find_all("#actions-table tbody tr[data-kind='wg_delete_peer'][data-state='done']")?
            .len()
            == 1)
            .then_some(()))
    })?;

    // A read key: the peers, no write buttons, and why.
    s.click(&s.find("#logout")?)?;
    sign_in(&s, &base, &fleet.read_key)?;
    s.navigate(&format!("{base}/#/router/{id}"))?;
    s.wait(WAIT, "the read-only message", |s| {
        Ok(s.text(&s.find("#wg-msg")?)?
            .contains("need an admin API key")
            .then_some(()))
    })?;
    assert!(!s.find_all("#wg-table tbody tr[data-peer]")?.is_empty());
    assert!(s.find_all("#wg-table button.delete-peer")?.is_empty());
    assert!(!s.is_displayed(&s.find("#wg-add-form")?)?);
    assert!(s.text(&s.find("#actions-msg")?)?.contains("read-only"));
    save(s.full_screenshot(1366, 3200), "actions-read-only");
    s.delete()?;
    Ok(())
}
