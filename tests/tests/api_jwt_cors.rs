//! JWT bearer tokens, CORS, `GET /` for API clients and the `POST /api/health` round trip, end
//! to end: a real collector (configured with a `[jwt]` HS256 secret file and a CORS allow-list)
//! and a real agent on a fake router over mTLS. The agent has no `allow_actions` grant at all:
//! the `ping` behind `POST /api/health` needs none.

use std::net::SocketAddr;
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use routerstats_tests::harness::{
    head_text, http_exchange_within, wait_for, AgentSetup, Collector,
};
use serde_json::{json, Value};

const SECRET: &str = "e2e-secret-0123456789abcdef0123456789";
const FRONTEND: &str = "http://localhost:5173";

/// One HTTP/1.1 exchange: (status, lower-cased header lines, body).
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let (status, h, body) =
        http_exchange_within(addr, method, path, headers, body, Duration::from_secs(40)).unwrap();
    (status, head_text(&h).to_ascii_lowercase(), body)
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token_with(alg: Algorithm, secret: &[u8], claims: Value) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn token(sub: &str, role: &str) -> String {
    token_with(
        Algorithm::HS256,
        SECRET.as_bytes(),
        json!({"sub": sub, "role": role, "exp": now() + 300}),
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn b64(v: &Value) -> String {
    let s = v.to_string();
    // base64url without padding, by hand (the tests crate has no base64 dependency).
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A collector with JWTs and CORS configured, a read API key, and an enrolled agent reporting.
struct Bench {
    _dir: tempfile::TempDir,
    collector: Collector,
    read_key: String,
    setup: AgentSetup,
    agent: Option<routerstats_tests::harness::RunningAgent>,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("jwt.secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        let toml = format!(
            "cors_allowed_origins = [\"{FRONTEND}\"]\n[jwt]\nsecret_file = \"{}\"\nrole_claim = \"role\"\n",
            secret.display()
        );
        let collector = Collector::start_with_config(&dir.path().join("collector"), &toml);
        let read_key = collector.api_key("read", "grafana");
        let setup = AgentSetup::new(&dir.path().join("ap-ping"), "ap-ping");
        let tok = collector.token("ap-ping", &[]);
        let out = setup.enroll(collector.ingest, &tok);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let agent = setup.run(collector.ingest, "1s", &[]);
        wait_for(Duration::from_secs(30), "the first report", || {
            (!collector.stored_seqs("ap-ping").is_empty()).then_some(())
        });
        Bench {
            _dir: dir,
            collector,
            read_key,
            setup,
            agent: Some(agent),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String, Value) {
        let a = auth.map(bearer);
        let mut h: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &a {
            h.push(("Authorization", a));
        }
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        let (s, head, body) = exchange(self.collector.api, method, path, &h, body);
        (s, head, json_of(&body))
    }
}

#[test]
fn jwt_bearer_tokens_on_every_kind_of_route() {
    let b = Bench::new();
    let admin = token("alice", "admin");
    let read = token("grafana-sa", "read");
    // Read routes of several groups, and an admin route, with tokens of each role.
    for path in [
        "/peers",
        "/api/fleet",
        "/api/health",
        "/api/users/active",
        "/metrics",
        "/api/openwrt",
    ] {
        let (s, _, body) = b.call("GET", path, Some(&read), None);
        assert_eq!(s, 200, "{path} with a read JWT: {body}");
    }
    assert_eq!(b.call("GET", "/api/actions", Some(&admin), None).0, 200);
    let (s, _, body) = b.call("GET", "/api/actions", Some(&read), None);
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"], "this token has role read; admin is required");
    // API keys keep working beside JWTs, in both headers.
    assert_eq!(b.call("GET", "/peers", Some(&b.read_key), None).0, 200);
    let (s, _, _) = exchange(
        b.collector.api,
        "GET",
        "/peers",
        &[("X-API-Key", &b.read_key)],
        None,
    );
    assert_eq!(s, 200);

    // Refused tokens: 401 with a message naming the reason and WWW-Authenticate.
    let claims = |exp: i64| json!({"sub": "mallory", "role": "admin", "exp": exp});
    let cases = [
        (
            token_with(Algorithm::HS256, SECRET.as_bytes(), claims(now() - 600)),
            "JWT expired",
        ),
        (
            token_with(
                Algorithm::HS256,
                SECRET.as_bytes(),
                json!({"sub": "m", "role": "admin", "exp": now() + 600, "nbf": now() + 300}),
            ),
            "not valid yet",
        ),
        (
            token_with(
                Algorithm::HS256,
                b"a-different-secret-of-enough-length!!",
                claims(now() + 60),
            ),
            "signature does not verify",
        ),
        (
            token_with(Algorithm::HS512, SECRET.as_bytes(), claims(now() + 60)),
            "algorithm HS512 not accepted",
        ),
        (
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims(now() + 60))
            ),
            "unsigned JWT",
        ),
        ("eyJ.not-a.jwt".to_string(), "malformed JWT"),
    ];
    for (t, want) in &cases {
        let (s, head, body) = b.call("GET", "/api/actions", Some(t), None);
        assert_eq!(s, 401, "{want}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(want),
            "{want}: {body}"
        );
        assert!(head.contains("www-authenticate: bearer"), "{head}");
    }
    // The ISP group answers in its own error envelope, with the same reason.
    let (s, _, body) = b.call("GET", "/api/users/active", Some(&cases[0].0), None);
    assert_eq!(s, 401);
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // An authentic token without a known role: 403.
    let (s, _, body) = b.call("GET", "/peers", Some(&token("bob", "root")), None);
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no known role"),
        "{body}"
    );
    drop(b);
}

#[test]
fn post_api_health_round_trips_to_the_agent_and_audits_the_jwt_subject() {
    let mut b = Bench::new();
    let admin = token("alice", "admin");
    let read = token("noc-screen", "read");
    let (s, _, body) = b.call(
        "POST",
        "/api/health",
        Some(&read),
        Some(r#"{"router": "ap-ping", "timeout": 10}"#),
    );
    assert_eq!(s, 200, "{body}\n{}", b.agent.as_ref().unwrap().log());
    assert_eq!(body["status"], "success");
    assert_eq!(body["router"], "ap-ping");
    assert_eq!(body["connected"], true);
    assert_eq!(
        body["answer"], "done",
        "the agent answers a ping without any grant"
    );
    let latency = body["latency_ms"].as_f64().unwrap();
    assert!(latency > 0.0 && latency < 10_000.0, "{body}");
    eprintln!("POST /api/health round trip: {latency} ms");
    // The RouterOS monitor's form (host and credentials) and an empty body (the only router).
    let form = r#"{"host": "ap-ping", "username": "admin", "password": "x", "port": 8728}"#;
    assert_eq!(
        b.call("POST", "/api/health", Some(&read), Some(form)).0,
        200
    );
    let (s, _, body) = b.call("POST", "/api/health", Some(&b.read_key), None);
    assert_eq!(s, 200, "{body}");
    // Who asked is in the audit: the JWT subject, or the API key's id.
    let (s, _, list) = b.call("GET", "/api/actions?router=ap-ping", Some(&admin), None);
    assert_eq!(s, 200, "{list}");
    let actions = list["actions"].as_array().unwrap();
    let pings: Vec<&Value> = actions.iter().filter(|a| a["kind"] == "ping").collect();
    assert_eq!(pings.len(), 3, "{list}");
    assert!(pings.iter().all(|a| a["state"] == "done"), "{list}");
    assert!(
        pings.iter().any(|a| a["requested_by"] == "jwt:noc-screen"),
        "{list}"
    );
    assert!(
        pings
            .iter()
            .any(|a| a["requested_by"].as_str().unwrap().starts_with("key:")),
        "{list}"
    );

    // Bad input: 400; an unknown router: 404.
    for bad in [
        r#"{"router": "ap-ping", "timeout": 0}"#,
        r#"{"router": "ap-ping", "timeout": 31}"#,
        "{nope",
        r#"{"router": 5}"#,
    ] {
        let (s, _, body) = b.call("POST", "/api/health", Some(&read), Some(bad));
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let long = format!(r#"{{"router": "ap-ping", "host": "{}"}}"#, "h".repeat(65));
    assert_eq!(
        b.call("POST", "/api/health", Some(&read), Some(&long)).0,
        400
    );
    let (s, _, body) = b.call(
        "POST",
        "/api/health",
        Some(&read),
        Some(r#"{"router": "ghost"}"#),
    );
    assert_eq!(s, 404, "{body}");
    assert_eq!(b.call("POST", "/api/health", None, Some("{}")).0, 401);

    // The agent stops: the router is offline, answered at once with 503.
    b.agent.take().unwrap().stop();
    let body = wait_for(
        Duration::from_secs(30),
        "the router to be seen offline",
        || {
            let (s, _, body) = b.call(
                "POST",
                "/api/health",
                Some(&read),
                Some(r#"{"router": "ap-ping"}"#),
            );
            (s == 503).then_some(body)
        },
    );
    assert!(
        body["error"].as_str().unwrap().contains("offline"),
        "{body}"
    );
    let _ = &b.setup;
}

#[test]
fn cors_preflights_and_root_json_with_an_allow_list() {
    let b = Bench::new();
    let api = b.collector.api;
    let preflight = |origin: &str| {
        exchange(
            api,
            "OPTIONS",
            "/peers",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
            None,
        )
    };
    let (s, head, _) = preflight(FRONTEND);
    assert_eq!(s, 200, "{head}");
    assert!(
        head.contains(&format!("access-control-allow-origin: {FRONTEND}")),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers:") && head.contains("authorization"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-methods:") && head.contains("get"),
        "{head}"
    );
    assert!(head.contains("access-control-max-age: 600"), "{head}");
    // A denied origin: no CORS header (the browser blocks the call).
    let (_, head, _) = preflight("http://evil.example");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    // Simple requests: the header for the allowed origin only.
    let read = token("ui", "read");
    let auth = bearer(&read);
    let (s, head, _) = exchange(
        api,
        "GET",
        "/peers",
        &[("Origin", FRONTEND), ("Authorization", &auth)],
        None,
    );
    assert_eq!(s, 200);
    assert!(
        head.contains(&format!("access-control-allow-origin: {FRONTEND}")),
        "{head}"
    );
    let (s, head, _) = exchange(
        api,
        "GET",
        "/peers",
        &[("Origin", "http://evil.example"), ("Authorization", &auth)],
        None,
    );
    assert_eq!(s, 200);
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    // GET /: JSON for API clients, the page for browsers.
    for accept in [None, Some("application/json"), Some("*/*")] {
        let h: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let (s, head, body) = exchange(api, "GET", "/", &h, None);
        assert_eq!(s, 200);
        assert!(
            head.contains("content-type: application/json"),
            "{accept:?}: {head}"
        );
        let v = json_of(&body);
        assert_eq!(v["status"], "running", "{v}");
        assert_eq!(v["wireguard_config"], "/etc/config/network", "{v}");
    }
    let (s, head, body) = exchange(
        api,
        "GET",
        "/",
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
        None,
    );
    assert_eq!(s, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        body.starts_with("<!doctype html>"),
        "{}",
        &body[..40.min(body.len())]
    );
}

#[test]
fn no_cors_and_no_jwt_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(&dir.path().join("collector"));
    let (s, head, _) = exchange(
        c.api,
        "OPTIONS",
        "/peers",
        &[
            ("Origin", FRONTEND),
            ("Access-Control-Request-Method", "GET"),
        ],
        None,
    );
    assert_eq!(s, 405, "{head}");
    assert!(!head.contains("access-control-"), "{head}");
    let (_, head, _) = exchange(c.api, "GET", "/health", &[("Origin", FRONTEND)], None);
    assert!(!head.contains("access-control-"), "{head}");
    let auth = bearer(&token("alice", "admin"));
    let (s, _, body) = exchange(c.api, "GET", "/peers", &[("Authorization", &auth)], None);
    assert_eq!(s, 401);
    assert!(
        json_of(&body)["error"]
            .as_str()
            .unwrap()
            .contains("not enabled"),
        "{body}"
    );
}
