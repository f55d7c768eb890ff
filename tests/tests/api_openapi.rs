//! `GET /api/openapi.json` from a running collector: an OpenAPI 3 document with the API key
//! security schemes, every operation with described responses, every `$ref` resolving, every
//! path parameter declared, and the routes of the wireguard, prometheus and openapi groups and
//! of api/mod.rs documented (tagged, with the right security, open ones really open).

use std::collections::HashSet;

use routerstats_tests::harness::{http_get, Fleet};
use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every `$ref` string in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(s)) => out.push(s),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The `{name}` parameters of a path template.
fn template_params(path: &str) -> HashSet<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// Security of an operation: its own, else the document's.
fn security<'a>(doc: &'a Value, op: &'a Value) -> &'a Value {
    op.get("security").unwrap_or(&doc["security"])
}

fn is_open(doc: &Value, op: &Value) -> bool {
    security(doc, op).as_array().is_some_and(|a| {
        a.iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    })
}

fn needs_key(doc: &Value, op: &Value) -> bool {
    let sec = security(doc, op).as_array().cloned().unwrap_or_default();
    !is_open(doc, op)
        && sec.iter().any(|r| r.get("api_key").is_some())
        && sec.iter().any(|r| r.get("bearer").is_some())
}

#[test]
fn openapi_document_is_valid_and_lists_our_routes() {
    let fleet = Fleet::start(&[], 0);
    // Open: no key needed.
    let (status, doc) = fleet.get_as("/api/openapi.json", None);
    assert_eq!(status, 200, "{doc}");
    let (_, raw) = http_get(fleet.collector.api, "/api/openapi.json", &[]).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&raw).unwrap(), doc);

    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(doc["info"]["title"], "routerstats");
    assert!(doc["info"]["version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["api_key"],
        serde_json::json!({"type": "apiKey", "in": "header", "name": "X-API-Key"})
    );
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    // By default every operation needs a key (either scheme).
    let default_sec = doc["security"].as_array().expect("document security");
    assert!(default_sec.contains(&serde_json::json!({"api_key": []})));
    assert!(default_sec.contains(&serde_json::json!({"bearer": []})));

    // Every operation has a response, its path parameters declared, and a tag.
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    let mut operations = 0;
    let mut ids = HashSet::new();
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_string()), "operationId {id} used twice");
            }
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for (code, r) in responses {
                let range = code.len() == 3
                    && code.starts_with(['1', '2', '3', '4', '5'])
                    && code.ends_with("XX");
                let exact = code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c));
                assert!(
                    code == "default" || range || exact,
                    "{path}: response code {code}"
                );
                assert!(
                    r["description"].is_string(),
                    "{method} {path} {code}: no description"
                );
            }
            let declared: HashSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(
                declared,
                template_params(path),
                "{method} {path}: path parameters"
            );
        }
    }
    assert!(operations > 0);

    // Every $ref points at a defined schema.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {r}"
        );
    }

    // Our routes, with their security.
    let open = ["/health", "/api/metrics/health", "/api/openapi.json"];
    let read = [
        "/api/metrics/summary",
        "/api/metrics/peers",
        "/api/metrics/peers/active",
        "/api/metrics/peer/{public_key}",
        "/api/metrics/bandwidth",
        "/api/metrics/peer/{public_key}/bandwidth",
        "/api/metrics/peer/{public_key}/history",
        "/peers",
        "/peer/{name}",
        "/peer/{name}/metrics",
        "/server-info",
        "/metrics",
    ];
    for path in open {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} not documented"))["get"];
        assert!(is_open(&doc, op), "{path} should be open: {op}");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{path}: no tag"
        );
        let (s, _) = fleet.get_as(path, None);
        assert_eq!(s, 200, "{path} is documented open but needs a key");
    }
    for path in read {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} not documented"))["get"];
        assert!(needs_key(&doc, op), "{path} should need a key: {op}");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{path}: no tag"
        );
        assert!(
            op["responses"].get("401").is_some(),
            "{path}: 401 not documented"
        );
    }
    let tokens = &paths["/api/admin/tokens"]["post"];
    assert!(needs_key(&doc, tokens));
    for code in ["201", "400", "401", "403"] {
        assert!(
            tokens["responses"].get(code).is_some(),
            "POST /api/admin/tokens {code}"
        );
    }
    let body = &tokens["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/CreateTokenRequest");

    // Parameters and shapes of the WireGuard routes.
    let history = &paths["/api/metrics/peer/{public_key}/history"]["get"];
    let hours = history["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hours")
        .expect("hours");
    assert_eq!(hours["in"], "query");
    assert_eq!(hours["schema"]["minimum"], 1);
    assert_eq!(hours["schema"]["maximum"], 24);
    for code in ["200", "400", "404"] {
        assert!(history["responses"].get(code).is_some(), "history {code}");
    }
    let summary = &doc["components"]["schemas"]["WgSummary"]["properties"];
    for field in [
        "total_peers",
        "active_peers",
        "inactive_peers",
        "total_sent_gb",
        "total_received_gb",
        "total_traffic_gb",
        "current_bandwidth_sent_mbps",
        "current_bandwidth_recv_mbps",
        "current_bandwidth_total_mbps",
    ] {
        assert!(summary.get(field).is_some(), "WgSummary.{field}");
    }
    let metrics = &paths["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(
        metrics
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("text/plain")),
        "{metrics}"
    );
}

/// The whole-fleet lists of the WireGuard manager, gateway, dashboard and RouterOS monitor groups
/// declare `limit` and `cursor` (query, optional, the shared paging schemas) and keep their other
/// parameters.
#[test]
fn paged_lists_declare_limit_and_cursor() {
    let fleet = Fleet::start(&[], 0);
    let (status, doc) = fleet.get_as("/api/openapi.json", None);
    assert_eq!(status, 200, "{doc}");
    let routes: [(&str, &[&str]); 10] = [
        ("/api/metrics/peers", &[]),
        ("/api/metrics/peers/active", &[]),
        ("/api/metrics/bandwidth", &[]),
        ("/peers", &["metrics"]),
        ("/server-info", &[]),
        ("/api/gateways", &["duration", "site_id"]),
        ("/api/fleet", &["duration", "site", "q"]),
        ("/api/health", &[]),
        ("/api/pppoe_interfaces", &[]),
        ("/api/export", &[]),
    ];
    for (path, others) in routes {
        let params = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no parameters"));
        let by_name = |n: &str| params.iter().find(|p| p["name"] == n);
        for name in ["limit", "cursor"] {
            let p = by_name(name).unwrap_or_else(|| panic!("{path}: no {name} parameter"));
            assert_eq!(p["in"], "query", "{path} {name}");
            assert_ne!(p["required"], true, "{path} {name}");
            let pattern = p["schema"]["pattern"].as_str().unwrap_or_default();
            let marker = if name == "limit" { "[1-9]" } else { "(r" };
            assert!(pattern.contains(marker), "{path} {name}: {p}");
        }
        for name in others.iter() {
            assert!(by_name(name).is_some(), "{path}: lost {name}");
        }
    }
}
