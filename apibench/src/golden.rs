//! Golden dump of every GET route: the API's answers on one fixed database at one fixed "now".
//!
//! A small fleet is generated with the benchmark's deterministic generator, the collector's
//! clock is pinned ([`routerstats_collector::clock::pin_ms`]), the real server is started and
//! every GET route of `/api/openapi.json` is requested: each path parameter with known and
//! unknown values, each documented query parameter with good, bad, empty and repeated values,
//! and an unknown parameter. Every answer's status, length and SHA-256 are compared with
//! `apibench/golden/routes.txt`, so a refactor of the API layer that changes any body by a byte
//! fails here. Only fields that read a stopwatch, not the database or the clock, and the CA
//! fingerprint (a fresh random CA per run) are blanked first (see [`normalise`]).
//! Then every hour before the previous one is sealed into blocks (`Store::seal_all_before`)
//! and every route is requested again: the answers must not change by a byte.
//!
//! The full bodies of the last run are written to `target/apibench-golden-bodies.txt` for
//! diffing. `GOLDEN_UPDATE=1 cargo test -p routerstats-apibench golden` rewrites the golden
//! file (only for an intended change of the answers; say so in the commit); `GOLDEN_KEEP=1`
//! keeps the generated database in the temp dir.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;

/// 2026-01-01T00:37:13.500Z: not on a minute, 5-minute or hour boundary.
const NOW_MS: i64 = 1_767_227_833_500;
const ROUTERS: usize = 6;
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/routes.txt");
const BODIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/apibench-golden-bodies.txt"
);
/// Requests per API key, inside the default rate-limit burst.
const PER_KEY: usize = 80;
/// API keys: half for the dump of the rows, half for the dump after sealing.
const KEYS: usize = 80;

/// Values tried for a path parameter of `template`.
fn path_values(template: &str, param: &str) -> Vec<String> {
    let routers = || (0..ROUTERS).map(router_name).collect::<Vec<_>>();
    let mut v = match (template, param) {
        (_, "port") => vec!["pppoe-wan".into(), "wlan0".into(), "br-lan".into()],
        (_, "file") => vec![
            "dashboard.css".into(),
            "dashboard.js".into(),
            "icon.svg".into(),
            "index.html".into(),
        ],
        (_, "public_key") => vec![pct_encode(&wg_key(1, 1)), pct_encode(&wg_key(4, 0))],
        (t, "name") if t.starts_with("/api/users/") || t.starts_with("/api/mikrotik/users/") => {
            vec![
                station_host(1, 3),
                station_mac(1, 4),
                station_mac(5, 0).to_uppercase(),
            ]
        }
        (t, "name") if t.starts_with("/api/vpn/") => vec![ovpn_cn(1, 0), ovpn_cn(4, 1)],
        (t, "name") if t.starts_with("/peer/") => vec![wg_name(1, 1), wg_name(4, 0)],
        (t, "id") if t.starts_with("/api/routers/") => {
            let mut v = routers();
            v.extend(["1".into(), "4".into(), "99".into()]);
            v
        }
        _ => routers(),
    };
    v.push("unknown-x".into());
    v
}

/// Good values tried for a query parameter (bad ones are added for every parameter).
fn query_values(param: &str) -> Vec<String> {
    let v: &[&str] = match param {
        "duration" => &["15m", "1h", "2h", "1d", "7d", "30d", "90s", "1w"],
        "hours" => &["1", "6", "24", "168", "1000"],
        "minutes" => &["5", "30", "60", "1440"],
        "limit" | "top" | "count" | "n" => &["1", "3", "100", "100000"],
        "site" | "site_id" => &["site-00", "site-03", "nowhere"],
        "identities" => &["ap-0000,ap-0003", "ap-0001", "ap-0000,unknown-x"],
        "router" | "gateway" | "device" => &["ap-0001", "ap-0005", "unknown-x"],
        _ => &["1", "true", "ap-0001", "10"],
    };
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.extend(["bogus", "", "-1", "0", "1.5", "%20"].map(String::from));
    v
}

/// Every request of the dump, in order.
fn requests(doc: &Value) -> Vec<String> {
    let mut out = vec!["/".to_string(), "/no/such/route".to_string()];
    let paths = doc["paths"].as_object().expect("openapi paths");
    for (template, item) in paths {
        let Some(get) = item.get("get") else { continue };
        let params = get["parameters"].as_array().cloned().unwrap_or_default();
        let named = |kind: &str| -> Vec<String> {
            params
                .iter()
                .filter(|p| p["in"] == kind)
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect()
        };
        // Path parameters: every combination of the tried values (at most two parameters).
        let mut concrete = vec![template.clone()];
        for p in named("path") {
            let values = path_values(template, &p);
            let slot = format!("{{{p}}}");
            concrete = concrete
                .iter()
                .flat_map(|c| values.iter().map(|v| c.replace(&slot, v)))
                .collect();
        }
        out.extend(concrete.iter().cloned());
        let base = concrete[0].clone();
        for q in named("query") {
            for v in query_values(&q) {
                out.push(format!("{base}?{q}={v}"));
            }
            out.push(format!("{base}?{q}=1&{q}=2"));
            out.push(format!(
                "{base}?{}={}",
                q.to_uppercase(),
                query_values(&q)[0]
            ));
        }
        out.push(format!("{base}?unknown_param=1"));
        out.push(format!("{base}?&&=x&novalue"));
    }
    // The benchmark's own list (windows and sites in combination).
    let o = Opts {
        routers: ROUTERS,
        ..golden_opts(std::path::PathBuf::new())
    };
    out.extend(routes(&o));
    out
}

fn golden_opts(dir: std::path::PathBuf) -> Opts {
    Opts {
        routers: ROUTERS,
        raw_hours: 2.0,
        days: 3,
        requests: 1,
        dir,
        keep: false,
        reuse: false,
        cache_max_age: None,
        only: Vec::new(),
        seal: false,
    }
}

/// Blanks what reads a stopwatch rather than the database or the clock (uptimes, and the
/// request statistics of `/api/performance`, which time the dump's own requests) and the
/// organization id (the fingerprint of the randomly generated CA).
fn normalise(path: &str, content_type: &str, body: Vec<u8>) -> Vec<u8> {
    if !content_type.starts_with("application/json") {
        return body;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    fn walk(v: &mut Value, path: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    let stopwatch = (!x.is_object() && (k == "uptime_s" || k == "uptime_seconds"))
                        || (path.starts_with("/api/performance")
                            && (k == "requests" || k == "endpoints"));
                    if stopwatch {
                        *x = Value::String("<stopwatch>".into());
                    } else if k == "org_id" {
                        // The fingerprint of the CA, whose key is generated at first start.
                        *x = Value::String("<ca fingerprint>".into());
                    } else {
                        walk(x, path);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, path)),
            _ => {}
        }
    }
    walk(&mut v, path);
    serde_json::to_vec(&v).expect("json")
}

#[test]
fn every_route_answers_as_recorded() {
    routerstats_collector::clock::pin_ms(Some(NOW_MS));
    let dir = std::env::temp_dir().join(format!("routerstats-golden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    routerstats_collector::server::prepare_data_dir(&dir).expect("data dir");
    let o = golden_opts(dir.clone());
    let mut config = Config {
        data_dir: dir.clone(),
        ingest_listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.retention_interval = Duration::from_secs(86_400);
    let store = Store::open(&config.db_path()).expect("open store");
    generate(&store, &o, NOW_MS).expect("generate");
    // The store keeps every 1-hour interface bucket equal to the sum of its 5-minute buckets
    // (the benchmark's generator writes them independently): routes that read the same hours
    // from either table must agree, as they do on a real database.
    store
        .connection()
        .execute_batch(
            "INSERT OR REPLACE INTO interface_rollup_1h (router_id, name, bucket_start_ms, \
             rx_bytes, tx_bytes, max_rx_bps, max_tx_bps, samples) \
             SELECT router_id, name, bucket_start_ms - bucket_start_ms % 3600000, sum(rx_bytes), \
             sum(tx_bytes), max(max_rx_bps), max(max_tx_bps), sum(samples) \
             FROM interface_rollup_5m GROUP BY 1, 2, 3",
        )
        .expect("consistent rollups");
    // Last heard 0 s, 70 s, 140 s, 210 s, 400 s and 3 h ago: online by both rules, by the
    // 5-minute rule only, and by neither.
    store
        .connection()
        .execute(
            "UPDATE routers SET last_seen_ms = ?1 - CASE WHEN id = ?2 THEN 10800000 \
             ELSE (id - 1) * 70000 + (id / 5) * 120000 END",
            params![NOW_MS, ROUTERS as i64],
        )
        .expect("last_seen_ms");
    let db_path = config.db_path();
    let keys: Vec<String> = (0..KEYS)
        .map(|i| {
            create_api_key(&store, Role::Admin, &format!("golden-{i}"), NOW_MS / 1000)
                .expect("api key")
                .key
        })
        .collect();
    drop(store);

    let (rt, handle) = start_server(config);
    let mut client = Client::connect(handle.api_addr()).expect("connect");
    let (status, _, doc) = client
        .get_full("/api/openapi.json", &keys[0])
        .expect("openapi");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&doc).expect("openapi json");
    let list = requests(&doc);
    assert!(KEYS / 2 * PER_KEY >= list.len(), "{} requests", list.len());

    let mut dump = |first_key: usize| {
        let mut summary = String::new();
        let mut bodies = String::new();
        for (i, path) in list.iter().enumerate() {
            let (status, content_type, body) = client
                .get_full(path, &keys[first_key + i / PER_KEY])
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let body = normalise(path, &content_type, body);
            let hash = Sha256::digest(&body);
            let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
            writeln!(summary, "{status} {:>7} {hex} GET {path}", body.len()).unwrap();
            writeln!(
                bodies,
                "### GET {path} -> {status} {content_type}\n{}",
                String::from_utf8_lossy(&body)
            )
            .unwrap();
        }
        (summary, bodies)
    };
    let (summary, bodies) = dump(0);
    // The same answers once the closed hours are sealed into blocks (store::sealed): every
    // hour before the previous one (what readers of rows rely on; the writer keeps two closed
    // hours as rows, this forces one more into blocks).
    let sealed = Store::open(&db_path)
        .expect("reopen store")
        .seal_all_before(NOW_MS - 3_600_000)
        .expect("seal");
    assert!(sealed.rows > 0, "{sealed:?}");
    let (summary_sealed, bodies_sealed) = dump(KEYS / 2);
    if summary_sealed != summary {
        let _ = std::fs::write(BODIES, &bodies_sealed);
        let changed: Vec<String> = summary
            .lines()
            .zip(summary_sealed.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("  rows   {a}\n  sealed {b}"))
            .collect();
        panic!(
            "{} answers changed when sealed (bodies in {BODIES}):\n{}",
            changed.len(),
            changed.join("\n")
        );
    }
    // The real server compresses when asked (the requests above asked for no encoding).
    let (_, _, plain) = client.get_full("/api/export", &keys[0]).expect("export");
    let gz = get_gzip(handle.api_addr(), "/api/export", &keys[0]);
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
        .expect("gzip body");
    assert_eq!(
        normalise("/api/export", "application/json", unzipped),
        normalise("/api/export", "application/json", plain.clone())
    );
    assert!(
        gz.len() * 4 < plain.len(),
        "gzip {} of {} bytes",
        gz.len(),
        plain.len()
    );
    rt.block_on(handle.shutdown());
    routerstats_collector::clock::pin_ms(None);
    if std::env::var_os("GOLDEN_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::write(BODIES, &bodies);

    if std::env::var_os("GOLDEN_UPDATE").is_some() {
        std::fs::write(GOLDEN, &summary).expect("write golden");
        return;
    }
    let golden = std::fs::read_to_string(GOLDEN).expect("golden file (GOLDEN_UPDATE=1 writes it)");
    let changed: Vec<String> = golden
        .lines()
        .zip(summary.lines())
        .filter(|(g, s)| g != s)
        .map(|(g, s)| format!("  was {g}\n  now {s}"))
        .collect();
    assert!(
        changed.is_empty() && golden.lines().count() == summary.lines().count(),
        "{} of {} answers changed ({} requests recorded, {} now); bodies in {BODIES}:\n{}",
        changed.len(),
        summary.lines().count(),
        golden.lines().count(),
        summary.lines().count(),
        changed.join("\n")
    );
}

/// The body of `GET path` asked with `Accept-Encoding: gzip`, which must be answered gzipped.
fn get_gzip(addr: SocketAddr, path: &str, key: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut body = &raw[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return body.to_vec();
    }
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let n = usize::from_str_radix(std::str::from_utf8(&body[..eol]).expect("hex").trim(), 16)
            .expect("chunk size");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + n]);
        body = &body[eol + 4 + n..];
    }
}
