//! The whole API against its OpenAPI document: every route the API issue names is documented,
//! and every documented GET route enforces its key and never answers 500, on a real fleet.

use routerstats_tests::harness::Fleet;
use serde_json::Value;

/// Every route issue 4 and the dashboard name (path parameters written as `{}`).
const ROUTES: &[&str] = &[
    "/api/openwrt",
    "/api/health",
    "/api/performance",
    "/api/export",
    "/api/logs",
    "/api/pppoe_interfaces",
    "/health",
    "/api/organization",
    "/api/sites",
    "/api/gateways",
    "/api/gateway/{}/ports",
    "/api/gateway/{}/port/{}/traffic",
    "/api/devices",
    "/api/devices/status",
    "/api/devices/{}/currentstatus",
    "/api/interfaces",
    "/api/users/active",
    "/api/users/{}/stats",
    // The same at the ISP middleware's own paths (the ones above are deprecated aliases).
    "/api/mikrotik/devices",
    "/api/mikrotik/devices/status",
    "/api/mikrotik/devices/{}/currentstatus",
    "/api/mikrotik/devices/{}/config",
    "/api/mikrotik/interfaces",
    "/api/mikrotik/users/active",
    "/api/mikrotik/users/{}/stats",
    "/api/mikrotik/health",
    "/api/vpn/status",
    "/api/vpn/clients",
    "/api/vpn/clients/connected",
    "/api/vpn/clients/{}/details",
    "/api/vpn/statistics/usage",
    "/api/vpn/health",
    "/api/bandwidth/usage/real-time",
    "/api/bandwidth/usage/peak",
    "/api/bandwidth/monitoring/top-users",
    "/api/bandwidth/monitoring/network-summary",
    "/api/bandwidth/monitoring/alerts",
    "/api/bandwidth/monitoring/quality",
    "/api/bandwidth/health",
    "/api/metrics/summary",
    "/api/metrics/health",
    "/api/metrics/peers",
    "/api/metrics/peers/active",
    "/api/metrics/peer/{}",
    "/api/metrics/bandwidth",
    "/api/metrics/peer/{}/bandwidth",
    "/api/metrics/peer/{}/history",
    "/peers",
    "/peer/{}",
    "/peer/{}/metrics",
    "/server-info",
    "/metrics",
    "/api/openapi.json",
    "/api/admin/tokens",
    "/api/fleet",
    "/api/routers/{}",
    "/api/alerts",
    "/api/alerts/silences",
    "/api/alerts/silences/{}",
    "/api/routers/{}/interfaces/{}/series",
    // Fleet actions (issue 13): the audit trail, the WireGuard manager's writes, backups, status.
    "/api/actions",
    "/api/actions/{}",
    "/add-peer",
    "/peer/{}/qr",
    "/reload-wireguard",
    "/api/mikrotik/backup/create",
    "/api/vpn/server/backup",
    "/api/backups",
    "/api/backups/{}",
    "/api/mikrotik/devices/{}/status",
    // OpenVPN server and clients (issue 16).
    "/api/vpn/server/logs",
    "/api/vpn/server/config",
    "/api/vpn/server/ip",
    "/api/vpn/client/template",
    "/api/vpn/clients/create",
    "/api/vpn/clients/{}/config",
    "/api/vpn/clients/{}/revoke",
    "/api/vpn/clients/{}/disconnect",
];

/// `/a/{id}/b` -> `/a/{}/b`.
fn normalize(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_is_documented_and_guarded() {
    let mut fleet = Fleet::start(&[("ap-doc", "home")], 2);
    fleet.stop_agents();
    let (status, doc) = fleet.get_as("/api/openapi.json", None);
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    let documented: Vec<String> = paths.keys().map(|p| normalize(p)).collect();
    for route in ROUTES {
        assert!(
            documented.iter().any(|d| d == route),
            "{route} is not in /api/openapi.json"
        );
    }

    let open_by_default = doc["security"].as_array().is_some_and(|s| s.is_empty());
    let mut checked = 0;
    for (path, item) in paths {
        let Some(get) = item.get("get") else { continue };
        // An operation is open when its own security list is empty (or holds an empty requirement).
        let security = get.get("security").or_else(|| doc.get("security"));
        let open = match security.and_then(Value::as_array) {
            None => open_by_default,
            Some(reqs) => {
                reqs.is_empty()
                    || reqs
                        .iter()
                        .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            }
        };
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "unknown-x"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let (anon, body) = fleet.get_as(&concrete, None);
        if open {
            assert_ne!(
                anon, 401,
                "{path} is documented as open but wants a key: {body}"
            );
        } else {
            assert_eq!(anon, 401, "{path} answered {anon} without a key: {body}");
        }
        let (with_key, body) = fleet.get(&concrete);
        assert!(with_key < 500, "{path} answered {with_key}: {body}");
        if !path.contains('{') {
            assert_ne!(with_key, 404, "{path} is documented but not served");
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} GET operations documented");
}
