//! Paging (`limit`/`cursor`, `collector/src/api/paging.rs`) of the whole-fleet lists of the
//! WireGuard manager, gateway, dashboard and RouterOS monitor groups, over a fleet of real
//! agents on fake routers: walking the pages with the `X-Next-Cursor` header lists every entry
//! exactly once, the pages together answer what one page with a high `limit` answers, the
//! `Link` header names the next page with the request's other parameters, and bad `limit` or
//! `cursor` values are a 400 in the group's error shape.

use std::collections::BTreeMap;

use routerstats_tests::harness::{http_exchange, http_get_patient, Fleet};
use serde_json::Value;

/// Four routers: more than the `limit`s the walks use (1 and 3).
const ROUTERS: [(&str, &str); 4] = [
    ("ap-one", "home"),
    ("ap-two", "home"),
    ("ap-three", "office"),
    ("ap-four", "office"),
];

/// A paged route: its path (with its other parameters), where its list is in the answer, and
/// the fields that identify one entry.
struct Paged {
    path: &'static str,
    list: &'static [&'static str],
    id: &'static [&'static str],
}

const PAGED: [Paged; 10] = [
    Paged {
        path: "/api/metrics/peers",
        list: &["peers"],
        id: &["router", "interface", "public_key"],
    },
    Paged {
        path: "/api/metrics/peers/active",
        list: &["active_peers"],
        id: &["router", "interface", "public_key"],
    },
    Paged {
        path: "/api/metrics/bandwidth",
        list: &["bandwidth"],
        id: &["router", "interface", "public_key"],
    },
    Paged {
        path: "/peers?metrics=true",
        list: &["peers"],
        id: &["router", "interface", "public_key"],
    },
    Paged {
        path: "/server-info",
        list: &["interfaces"],
        id: &["router", "interface"],
    },
    Paged {
        path: "/api/gateways?duration=1h",
        list: &["data"],
        id: &["id"],
    },
    Paged {
        path: "/api/gateways?duration=7d&site_id=office",
        list: &["data"],
        id: &["id"],
    },
    Paged {
        path: "/api/fleet?duration=15m",
        list: &["routers"],
        id: &["id"],
    },
    Paged {
        path: "/api/health",
        list: &["router_status"],
        id: &["id"],
    },
    Paged {
        path: "/api/pppoe_interfaces",
        list: &["pppoe_interfaces"],
        id: &["router_id", "name"],
    },
];

/// Fields that move with the clock between two requests (ages), left out of the comparison.
const MOVING: [&str; 4] = [
    "time_since_handshake",
    "seconds_since_seen",
    "last_seen_age_s",
    "last_update",
];

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in MOVING {
                m.remove(k);
            }
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// `path` plus `extra` query parameters.
fn with(path: &str, extra: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{extra}")
}

/// GET with the read key (waiting out the key's rate limit: the walks send more than its
/// burst): status, headers, JSON body.
fn get(fleet: &Fleet, path: &str) -> (u16, Vec<(String, String)>, Value) {
    let (status, headers, body) =
        http_get_patient(fleet.collector.api, path, &[("X-API-Key", &fleet.read_key)])
            .expect("http");
    let json =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, headers, json)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn entries<'a>(route: &Paged, doc: &'a Value) -> &'a Vec<Value> {
    let mut v = doc;
    for k in route.list {
        v = &v[*k];
    }
    v.as_array()
        .unwrap_or_else(|| panic!("{}: no list {:?} in {doc}", route.path, route.list))
}

fn key(route: &Paged, e: &Value) -> String {
    route
        .id
        .iter()
        .map(|f| e[*f].to_string())
        .collect::<Vec<_>>()
        .join("|")
}

/// Walks every page of `route` with `limit`: (the entries by key, how many pages). Panics when
/// an entry comes twice.
fn walk(fleet: &Fleet, route: &Paged, limit: usize) -> (BTreeMap<String, Value>, usize) {
    let mut seen = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = with(route.path, &format!("limit={limit}"));
        if let Some(c) = &cursor {
            path = with(&path, &format!("cursor={c}"));
        }
        let (status, headers, doc) = get(fleet, &path);
        assert_eq!(status, 200, "{path}: {doc}");
        pages += 1;
        assert!(
            pages <= ROUTERS.len() + 1,
            "{path}: more pages than routers"
        );
        for e in entries(route, &doc) {
            let mut e = e.clone();
            strip(&mut e);
            let k = key(route, &e);
            assert!(
                seen.insert(k.clone(), e).is_none(),
                "{path}: {k} listed twice"
            );
        }
        let next = header(&headers, "x-next-cursor").map(str::to_string);
        match (&next, header(&headers, "link")) {
            (Some(c), Some(link)) => {
                // The Link names the same page: the request's parameters, the new cursor.
                let target = link.trim_start_matches('<').split('>').next().unwrap_or("");
                assert!(
                    target.ends_with(&format!("cursor={c}")),
                    "{path}: Link {link}"
                );
                assert!(
                    target.contains(&format!("limit={limit}")),
                    "{path}: Link {link}"
                );
                assert!(
                    target.starts_with(route.path.split('?').next().unwrap()),
                    "{path}: Link {link}"
                );
                if let Some((_, q)) = route.path.split_once('?') {
                    assert!(target.contains(q), "{path}: Link {link} lost {q}");
                }
            }
            (None, None) => break,
            other => panic!("{path}: X-Next-Cursor and Link disagree: {other:?}"),
        }
        cursor = next;
    }
    (seen, pages)
}

#[test]
fn whole_fleet_lists_page_by_router() {
    let mut fleet = Fleet::start(&ROUTERS, 3);
    fleet.stop_agents();

    for route in &PAGED {
        // One page with room for every router: the whole answer, no next page.
        let (status, headers, mut all) = get(&fleet, &with(route.path, "limit=1000"));
        assert_eq!(status, 200, "{}: {all}", route.path);
        assert_eq!(header(&headers, "x-next-cursor"), None, "{}", route.path);
        strip(&mut all);
        let unpaged: BTreeMap<String, Value> = entries(route, &all)
            .iter()
            .map(|e| (key(route, e), e.clone()))
            .collect();
        assert_eq!(
            unpaged.len(),
            entries(route, &all).len(),
            "{}: duplicate keys",
            route.path
        );
        assert!(
            !unpaged.is_empty(),
            "{}: nothing to page through: {all}",
            route.path
        );
        // The default limit (100) holds this fleet too.
        let (_, headers, mut default) = get(&fleet, route.path);
        assert_eq!(header(&headers, "x-next-cursor"), None, "{}", route.path);
        strip(&mut default);
        assert_eq!(
            entries(route, &default).len(),
            unpaged.len(),
            "{}",
            route.path
        );

        for limit in [1, 3] {
            let (paged, pages) = walk(&fleet, route, limit);
            assert_eq!(
                paged.keys().collect::<Vec<_>>(),
                unpaged.keys().collect::<Vec<_>>(),
                "{} limit={limit}: the pages do not hold the same entries",
                route.path
            );
            assert_eq!(
                paged, unpaged,
                "{} limit={limit}: entries differ",
                route.path
            );
            // Pages are of routers: ceil(4 / limit) of them (the last without a next cursor).
            assert_eq!(
                pages,
                ROUTERS.len().div_ceil(limit),
                "{} limit={limit}",
                route.path
            );
        }

        // Bad values: a 400 with the group's `{"error": ...}`, naming the parameter.
        for (bad, word) in [
            ("limit=0", "limit"),
            ("limit=-3", "limit"),
            ("limit=ten", "limit"),
            ("cursor=17", "cursor"),
            ("cursor=r-1", "cursor"),
            ("cursor=rx", "cursor"),
        ] {
            let (status, _, doc) = get(&fleet, &with(route.path, bad));
            assert_eq!(status, 400, "{} {bad}: {doc}", route.path);
            let msg = doc["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{} {bad}: {doc}", route.path));
            assert!(msg.contains(word), "{} {bad}: {msg}", route.path);
        }
    }

    // The page's counts describe the page: `/peers` with one router per page counts that
    // router's peers, and the pages' counts add up to the whole answer's.
    let (_, _, all) = get(&fleet, "/peers?limit=1000");
    let mut total = 0;
    let mut cursor = String::new();
    loop {
        let (_, headers, page) = get(&fleet, &format!("/peers?limit=1{cursor}"));
        assert_eq!(
            page["count"],
            page["peers"].as_array().unwrap().len(),
            "{page}"
        );
        assert_eq!(page["summary"]["total_peers"], page["count"], "{page}");
        total += page["count"].as_u64().unwrap();
        match header(&headers, "x-next-cursor") {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(total, all["count"].as_u64().unwrap());
    assert_eq!(all["summary"]["total_peers"], all["count"]);

    // `/api/fleet` totals sum the page's routers; `sites` lists the whole fleet on every page.
    let (_, headers, first) = get(&fleet, "/api/fleet?duration=15m&limit=1");
    assert_eq!(first["totals"]["routers"], 1, "{first}");
    assert_eq!(
        first["sites"],
        serde_json::json!(["home", "office"]),
        "{first}"
    );
    assert!(header(&headers, "x-next-cursor").is_some());
    // `/api/health` without a key: the collector part only, no router page.
    let (status, headers, body) =
        http_exchange(fleet.collector.api, "GET", "/api/health?limit=1", &[], None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("router_status"), "{body}");
    assert_eq!(header(&headers, "x-next-cursor"), None);
}
