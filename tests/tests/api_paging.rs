//! Paging of the whole-fleet lists of the ISP middleware and OpenWrt stats groups (`limit`,
//! `cursor`; see collector/src/api/paging.rs), over a fleet of three routers fed by real agents on
//! fake routers built from agent/fixtures: walking the pages with `limit=1` (more routers than
//! `limit`) by the `X-Next-Cursor` / `Link` headers shows every entry of the unpaged answer
//! (`limit=1000`) exactly once, and bad `limit`/`cursor` values are 400s in the group's error
//! shape.

use std::collections::BTreeMap;

use routerstats_tests::harness::{http_get_patient, Fleet};
use serde_json::Value;

const ROUTERS: [(&str, &str); 3] = [
    ("ap-one", "home"),
    ("ap-two", "home"),
    ("ap-three", "office"),
];

/// A GET with the read key (waiting out the key's rate limit: the walks send many requests):
/// status, headers (names lowercase) and the JSON body.
fn get(fleet: &Fleet, path: &str) -> (u16, Vec<(String, String)>, Value) {
    let (status, headers, body) = http_get_patient(
        fleet.collector.api,
        path,
        &[("X-API-Key", fleet.read_key.as_str())],
    )
    .expect("http request");
    let headers = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
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

/// The entries of an answer (each serialized), and the count the answer states for them.
type Entries = fn(&Value) -> (Vec<String>, Option<u64>);

fn list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(Value::to_string)
        .collect()
}

fn openwrt(v: &Value) -> (Vec<String>, Option<u64>) {
    let mut out: Vec<String> = v["clients"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(list)
        .collect();
    let clients = out.len();
    // The uptimes: one key per router.
    out.extend(
        v.as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.ends_with(" uptime"))
            .map(|(k, u)| format!("{k}={u}")),
    );
    // Each SSID's "[n]" counts the page's clients of that SSID.
    for (ssid, list) in v["clients"].as_object().unwrap() {
        let n = list.as_array().unwrap().len();
        assert_eq!(v[ssid], format!("[{n}]"), "{ssid}");
    }
    assert_eq!(v["total clients"], clients as u64);
    (out, v["total clients"].as_u64())
}

fn devices(v: &Value) -> (Vec<String>, Option<u64>) {
    (list(&v["devices"]), v["total_devices"].as_u64())
}
fn interfaces(v: &Value) -> (Vec<String>, Option<u64>) {
    (
        list(&v["data"]["interfaces"]),
        v["data"]["total_interfaces"].as_u64(),
    )
}
fn users(v: &Value) -> (Vec<String>, Option<u64>) {
    (
        list(&v["data"]["active_users"]),
        v["data"]["active_users_count"].as_u64(),
    )
}
fn vpn_status(v: &Value) -> (Vec<String>, Option<u64>) {
    (
        list(&v["servers"]),
        v["server_status"]["instances"].as_u64(),
    )
}
fn vpn_clients(v: &Value) -> (Vec<String>, Option<u64>) {
    (
        list(&v["clients"]),
        v["statistics"]["total_clients"].as_u64(),
    )
}
fn vpn_connected(v: &Value) -> (Vec<String>, Option<u64>) {
    (list(&v["connected_clients"]), v["total_connected"].as_u64())
}
fn vpn_usage(v: &Value) -> (Vec<String>, Option<u64>) {
    (
        list(&v["data"]["clients"]),
        v["data"]["total_sessions"].as_u64(),
    )
}
fn quality(v: &Value) -> (Vec<String>, Option<u64>) {
    (
        list(&v["data"]["stations"]),
        v["data"]["summary"]["stations"].as_u64(),
    )
}

/// The paged routes (path, how to read its entries, whether it answers in the ISP envelope).
const ROUTES: &[(&str, Entries, bool)] = &[
    ("/api/openwrt", openwrt, false),
    ("/api/mikrotik/devices", devices, true),
    ("/api/devices", devices, true),
    ("/api/mikrotik/interfaces", interfaces, true),
    ("/api/interfaces", interfaces, true),
    ("/api/mikrotik/users/active", users, true),
    ("/api/users/active", users, true),
    ("/api/vpn/status", vpn_status, true),
    ("/api/vpn/clients", vpn_clients, true),
    ("/api/vpn/clients/connected", vpn_connected, true),
    ("/api/vpn/statistics/usage", vpn_usage, true),
    ("/api/vpn/statistics/usage?days=1", vpn_usage, true),
    ("/api/bandwidth/monitoring/quality", quality, true),
    (
        "/api/bandwidth/monitoring/quality?minutes=30",
        quality,
        true,
    ),
];

/// Counts of each entry.
fn multiset(entries: Vec<String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        *m.entry(e).or_insert(0) += 1;
    }
    m
}

fn with_query(route: &str, q: &str) -> String {
    let sep = if route.contains('?') { '&' } else { '?' };
    format!("{route}{sep}{q}")
}

#[test]
fn whole_fleet_lists_page_by_router() {
    let mut fleet = Fleet::start(&ROUTERS, 3);
    fleet.stop_agents();
    for &(route, entries, _) in ROUTES {
        let (status, h, all) = get(&fleet, &with_query(route, "limit=1000"));
        assert_eq!(status, 200, "{route}: {all}");
        assert_eq!(header(&h, "x-next-cursor"), None, "{route}: one page");
        assert_eq!(header(&h, "link"), None, "{route}: one page");
        let (want, want_count) = entries(&all);
        assert!(
            !want.is_empty(),
            "{route}: the fleet's answer is empty: {all}"
        );
        // The default page (100 routers) holds this whole fleet.
        let (_, h, default) = get(&fleet, route);
        assert_eq!(header(&h, "x-next-cursor"), None, "{route}");
        assert_eq!(
            multiset(entries(&default).0),
            multiset(want.clone()),
            "{route}"
        );

        // Walk the pages one router at a time.
        let mut got: Vec<String> = Vec::new();
        let mut count = 0;
        let mut pages = 0;
        let mut path = with_query(route, "limit=1");
        loop {
            let (status, h, body) = get(&fleet, &path);
            assert_eq!(status, 200, "{path}: {body}");
            pages += 1;
            let (e, c) = entries(&body);
            count += c.unwrap_or(0);
            got.extend(e);
            let Some(next) = header(&h, "x-next-cursor") else {
                assert_eq!(header(&h, "link"), None, "{path}");
                break;
            };
            let link = header(&h, "link").unwrap_or_else(|| panic!("{path}: no Link"));
            let want_link = format!(
                "<{}>; rel=\"next\"",
                with_query(route, &format!("limit=1&cursor={next}"))
            );
            assert_eq!(link, want_link, "{path}");
            path = with_query(route, &format!("limit=1&cursor={next}"));
            assert!(pages < 10, "{route}: the pages do not end");
        }
        assert_eq!(pages, ROUTERS.len(), "{route}: one page per router");
        assert_eq!(
            multiset(got),
            multiset(want),
            "{route}: the pages' union is the whole answer"
        );
        // The pages' counts add up to the whole answer's.
        assert_eq!(Some(count), want_count, "{route}");

        // A cursor past the last router: an empty page, no next.
        let (status, h, body) = get(&fleet, &with_query(route, "cursor=r999999"));
        assert_eq!(status, 200, "{route}: {body}");
        assert!(entries(&body).0.is_empty(), "{route}: {body}");
        assert_eq!(header(&h, "x-next-cursor"), None, "{route}");
    }
}

#[test]
fn bad_limit_or_cursor_is_a_400_in_the_groups_error_shape() {
    let mut fleet = Fleet::start(&ROUTERS[..2], 2);
    fleet.stop_agents();
    for &(route, _, isp) in ROUTES {
        for bad in [
            "limit=0",
            "limit=-1",
            "limit=ten",
            "limit=1.5",
            "cursor=17",
            "cursor=rx",
            "cursor=r-1",
        ] {
            let path = with_query(route, bad);
            let (status, _, body) = get(&fleet, &path);
            assert_eq!(status, 400, "{path}: {body}");
            let msg = body["error"].as_str().unwrap_or_default();
            assert!(
                msg.contains("limit") || msg.contains("cursor"),
                "{path}: {body}"
            );
            if isp {
                assert_eq!(body["success"], false, "{path}: {body}");
                assert!(
                    body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
                    "{path}: {body}"
                );
            } else {
                assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{path}: {body}");
            }
        }
        // `limit` above the maximum is the maximum, not an error.
        let (status, _, body) = get(&fleet, &with_query(route, "limit=100000"));
        assert_eq!(status, 200, "{route}: {body}");
    }
}
