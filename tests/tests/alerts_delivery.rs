//! Alert delivery to real receivers on loopback, from a real collector whose rules fire on what
//! real agents reported (a router stops reporting: `offline`; it reports again: resolved):
//! - Debian's `prometheus-alertmanager`: the alert shows up in its `/api/v2/alerts` and leaves
//!   the active list once resolved;
//! - Debian's `aiosmtpd` (python3-aiosmtpd) with STARTTLS required and a certificate from a
//!   private CA the receiver's `ca_file` trusts: both mails land in its Maildir;
//! - local HTTP receivers: a signed generic webhook (HMAC-SHA256 checked here with ring), a
//!   Slack-style webhook, one that answers 500 twice (retried with the same delivery id), one
//!   that accepts and never answers (timed out, retried), and an address where nothing listens.
//!   While the slow one holds its connection the API answers and ingest stores reports.
//!
//! The receivers come from `scripts/install-alert-receivers` (scripts/test runs it); this test
//! fails, never skips, when they are missing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use routerstats_tests::harness::{free_port, http_get, wait_for, Fleet};
use serde_json::Value;

const SECRET: &str = "s3cret-for-tests";

/// What a local HTTP receiver answers.
#[derive(Clone, Copy)]
enum Mode {
    Ok,
    /// 500 for the first n requests.
    FailFirst(usize),
    /// Accepts, reads the request, answers nothing for this long.
    Hang(Duration),
}

#[derive(Debug, Clone)]
struct Hit {
    headers: HashMap<String, String>,
    body: String,
}

/// A tiny HTTP server that records every request.
struct HttpReceiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Requests being held (Hang mode) right now.
    holding: Arc<AtomicUsize>,
}

fn read_request(stream: &mut TcpStream) -> Option<Hit> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Hit {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

impl HttpReceiver {
    fn start(mode: Mode) -> HttpReceiver {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    fn start_on(listener: TcpListener, mode: Mode) -> HttpReceiver {
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let holding = Arc::new(AtomicUsize::new(0));
        let (h, hold) = (hits.clone(), holding.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (h, hold) = (h.clone(), hold.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let Some(hit) = read_request(&mut stream) else {
                        return;
                    };
                    let n = {
                        let mut v = h.lock().unwrap();
                        v.push(hit);
                        v.len()
                    };
                    let status = match mode {
                        Mode::Ok => "200 OK",
                        Mode::FailFirst(k) if n <= k => "500 Internal Server Error",
                        Mode::FailFirst(_) => "200 OK",
                        Mode::Hang(d) => {
                            hold.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(d);
                            hold.fetch_sub(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                });
            }
        });
        HttpReceiver {
            addr,
            hits,
            holding,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// A child process killed on drop.
struct Proc(Child, &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(addr: SocketAddr, proc: &mut Proc) {
    wait_for(Duration::from_secs(30), proc.1, || {
        if let Ok(Some(s)) = proc.0.try_wait() {
            panic!("{} exited early: {s}", proc.1);
        }
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    });
}

fn require(cmd: &Path, what: &str) {
    assert!(
        cmd.exists(),
        "{} is missing: run scripts/install-alert-receivers (scripts/test does) to install {what}",
        cmd.display()
    );
}

/// Debian's Alertmanager on a loopback port, clustering off, one receiver that drops everything.
fn start_alertmanager(dir: &Path) -> (Proc, SocketAddr) {
    let bin = PathBuf::from("/usr/bin/prometheus-alertmanager");
    require(&bin, "prometheus-alertmanager");
    let conf = dir.join("alertmanager.yml");
    std::fs::write(
        &conf,
        "route:\n  receiver: sink\nreceivers:\n  - name: sink\n",
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus-alertmanager");
    let mut p = Proc(child, "prometheus-alertmanager");
    wait_port(addr, &mut p);
    wait_for(Duration::from_secs(30), "alertmanager ready", || {
        matches!(http_get(addr, "/-/ready", &[]), Ok((200, _))).then_some(())
    });
    (p, addr)
}

/// A CA and a server certificate for 127.0.0.1 signed by it; returns (ca.pem, cert.pem, key.pem).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alerts test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("smtp.pem"),
        dir.join("smtp.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// Debian's aiosmtpd with STARTTLS required, storing mail in a Maildir.
fn start_smtp(dir: &Path, cert: &Path, key: &Path) -> (Proc, SocketAddr, PathBuf) {
    let python = PathBuf::from("/usr/bin/python3");
    require(&python, "python3");
    let ok = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3-aiosmtpd is missing: run scripts/install-alert-receivers"
    );
    let maildir = dir.join("maildir");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(dir.join("smtp.log")).unwrap();
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string()])
        .arg("--tlscert")
        .arg(cert)
        .arg("--tlskey")
        .arg(key)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start aiosmtpd");
    let mut p = Proc(child, "aiosmtpd");
    wait_port(addr, &mut p);
    (p, addr, maildir)
}

fn mails(maildir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks `sha256=<hex>` against an HMAC-SHA256 of the body computed here.
fn signature_ok(hit: &Hit) -> bool {
    let Some(sig) = hit.headers.get("x-routerstats-signature") else {
        return false;
    };
    let Some(hexsig) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    hex(ring::hmac::sign(&key, hit.body.as_bytes()).as_ref()) == hexsig
}

fn events(r: &HttpReceiver) -> Vec<(String, Value)> {
    r.hits()
        .into_iter()
        .map(|h| {
            let v: Value = serde_json::from_str(&h.body).unwrap_or(Value::Null);
            (
                h.headers
                    .get("x-routerstats-event")
                    .cloned()
                    .unwrap_or_default(),
                v,
            )
        })
        .collect()
}

fn am_alerts(addr: SocketAddr) -> Vec<Value> {
    let (s, body) = http_get(addr, "/api/v2/alerts", &[]).unwrap();
    assert_eq!(s, 200, "{body}");
    serde_json::from_str::<Vec<Value>>(&body).unwrap()
}

fn am_active_for(addr: SocketAddr, router: &str) -> bool {
    am_alerts(addr).iter().any(|a| {
        a["labels"]["router"] == router
            && a["labels"]["alertname"] == "offline"
            && a["status"]["state"] == "active"
    })
}

/// Collector configuration with 1 s evaluation, a router offline after two missed 1 s reports,
/// delivery retries from 200 ms up to `retry_max`, each send cut after `send_timeout`, and
/// `receivers` (`[[alerts.receivers]]` tables) appended.
fn fast_alerts(retry_max: &str, send_timeout: &str, receivers: &str) -> String {
    format!(
        r#"
[alerts]
eval_interval = "1s"
report_interval = "1s"
retry_base = "200ms"
retry_max = "{retry_max}"
send_timeout = "{send_timeout}"
max_attempts = 1000
[alerts.fleet]
offline_intervals = 2
keep_firing_for = "0s"
cert_days = 0
{receivers}"#
    )
}

/// A `[[alerts.receivers]]` webhook table called `name` posting to `url`, signed with [`SECRET`].
fn signed_webhook(name: &str, url: &str) -> String {
    format!(
        r#"
[[alerts.receivers]]
name = "{name}"
kind = "webhook"
url = "{url}"
secret = "{SECRET}"
"#
    )
}

#[test]
fn alerts_reach_real_receivers_and_bad_receivers_block_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut am, am_addr) = start_alertmanager(dir.path());
    let (ca, cert, key) = private_ca(dir.path());
    let (mut smtp, smtp_addr, maildir) = start_smtp(dir.path(), &cert, &key);
    let signed = HttpReceiver::start(Mode::Ok);
    let chat = HttpReceiver::start(Mode::Ok);
    let flaky = HttpReceiver::start(Mode::FailFirst(2));
    let slow = HttpReceiver::start(Mode::Hang(Duration::from_secs(6)));
    let down = format!("http://127.0.0.1:{}/nothing-here", free_port());
    let receivers = signed_webhook("signed", &signed.url())
        + &format!(
            r#"
[[alerts.receivers]]
name = "chat"
kind = "slack"
url = "{chat}"
[[alerts.receivers]]
name = "flaky"
kind = "webhook"
url = "{flaky}"
[[alerts.receivers]]
name = "slow"
kind = "webhook"
url = "{slow}"
[[alerts.receivers]]
name = "down"
kind = "webhook"
url = "{down}"
[[alerts.receivers]]
name = "am"
kind = "alertmanager"
url = "http://{am_addr}"
[[alerts.receivers]]
name = "mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
security = "starttls"
from = "routerstats@example.net"
to = ["noc@example.net"]
ca_file = "{ca}"
"#,
            chat = chat.url(),
            flaky = flaky.url(),
            slow = slow.url(),
            smtp_port = smtp_addr.port(),
            ca = ca.display(),
        );
    let config = fast_alerts("1s", "4s", &receivers);
    let mut fleet = Fleet::start_with_config(&[("edge-m", "lab")], 2, Some(&config));
    let wait = Duration::from_secs(60);

    // The router stops reporting: offline fires everywhere.
    fleet.stop_agents();
    let firing = wait_for(wait, "signed webhook: firing", || {
        events(&signed)
            .into_iter()
            .find(|(e, _)| e == "firing")
            .map(|(_, v)| v)
    });
    assert_eq!(firing["version"], 1);
    assert_eq!(firing["event"], "firing");
    assert_eq!(firing["alert"]["rule"], "offline");
    assert_eq!(firing["alert"]["router"], "edge-m");
    assert_eq!(firing["alert"]["site"], "lab");
    assert_eq!(firing["alert"]["state"], "firing");
    assert!(
        firing["alert"]["started_at"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{firing}"
    );
    assert!(firing["alert"]["values"]["silent_s"].as_i64().unwrap() >= 2);
    for hit in signed.hits() {
        assert!(signature_ok(&hit), "bad signature on {hit:?}");
        assert_eq!(
            hit.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
    }
    let text = wait_for(wait, "slack webhook", || {
        chat.hits().first().map(|h| {
            serde_json::from_str::<Value>(&h.body).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
    });
    assert!(text.starts_with("[FIRING] critical offline"), "{text}");
    wait_for(wait, "alertmanager lists the alert", || {
        am_active_for(am_addr, "edge-m").then_some(())
    });
    let am_alert = am_alerts(am_addr)
        .into_iter()
        .find(|a| a["labels"]["router"] == "edge-m")
        .unwrap();
    assert_eq!(am_alert["labels"]["site"], "lab");
    assert_eq!(am_alert["labels"]["severity"], "critical");
    let mail = wait_for(wait, "mail through STARTTLS", || {
        mails(&maildir).into_iter().find(|m| m.contains("[FIRING]"))
    });
    assert!(
        mail.contains("Subject: [FIRING] critical offline"),
        "{mail}"
    );
    assert!(mail.contains("To: noc@example.net"), "{mail}");
    assert!(mail.contains("router: edge-m"), "{mail}");

    // 500 twice, then accepted: three attempts of one delivery.
    let tries = wait_for(wait, "flaky receiver's third attempt", || {
        let h = flaky.hits();
        (h.len() >= 3).then_some(h)
    });
    let ids: Vec<_> = tries
        .iter()
        .take(3)
        .map(|h| h.headers.get("x-routerstats-delivery").cloned())
        .collect();
    assert!(
        ids[0].is_some() && ids.iter().all(|i| *i == ids[0]),
        "{ids:?}"
    );

    // Nothing listening: retried with the error kept in the queue.
    let db = fleet.collector.db();
    wait_for(wait, "retries of the unreachable receiver", || {
        db.query_row(
            "SELECT attempts, last_error FROM alert_deliveries WHERE receiver = 'down'",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
        )
        .ok()
        .filter(|(a, e)| *a >= 2 && e.is_some())
    });

    // The slow receiver holds a connection: the API answers and ingest stores reports meanwhile.
    wait_for(wait, "slow receiver holding a request", || {
        (slow.holding.load(Ordering::SeqCst) > 0).then_some(())
    });
    let before = fleet.collector.stored_seqs("edge-m").len();
    fleet.restart_agents();
    let mut served = 0;
    wait_for(
        wait,
        "reports stored and API answers while the slow receiver holds on",
        || {
            let (s, _) = fleet.get("/api/alerts?rule=offline");
            assert_eq!(s, 200);
            served += 1;
            let stored = fleet.collector.stored_seqs("edge-m").len() > before;
            (stored && slow.holding.load(Ordering::SeqCst) > 0 && served >= 3).then_some(())
        },
    );

    // Back online: resolved everywhere.
    let resolved = wait_for(wait, "signed webhook: resolved", || {
        events(&signed)
            .into_iter()
            .find(|(e, _)| e == "resolved")
            .map(|(_, v)| v)
    });
    assert_eq!(resolved["alert"]["state"], "resolved");
    assert!(resolved["alert"]["ended_at"].is_string(), "{resolved}");
    assert_eq!(resolved["alert"]["id"], firing["alert"]["id"]);
    wait_for(wait, "slack resolved", || {
        chat.hits()
            .iter()
            .any(|h| h.body.contains("[RESOLVED]"))
            .then_some(())
    });
    wait_for(wait, "alertmanager resolves the alert", || {
        (!am_active_for(am_addr, "edge-m")).then_some(())
    });
    wait_for(wait, "resolved mail", || {
        mails(&maildir)
            .iter()
            .any(|m| m.contains("[RESOLVED]"))
            .then_some(())
    });
    assert!(slow.hits().len() >= 2, "the slow receiver was retried");
    for hit in signed.hits() {
        assert!(signature_ok(&hit), "bad signature on {hit:?}");
    }
    // The processes are still up (no crash on the way).
    assert!(am.0.try_wait().unwrap().is_none());
    assert!(smtp.0.try_wait().unwrap().is_none());
}

/// A webhook delivery queued while its receiver is down survives a collector restart: the
/// restarted collector sends it (once) when the receiver comes up.
#[test]
fn queued_webhook_delivery_resumes_after_a_collector_restart() {
    let port = free_port();
    let receivers = signed_webhook("late", &format!("http://127.0.0.1:{port}/hook"));
    let config = fast_alerts("500ms", "2s", &receivers);
    let mut fleet = Fleet::start_with_config(&[("edge-r", "lab")], 2, Some(&config));
    let wait = Duration::from_secs(60);
    fleet.stop_agents();
    // Offline fires; its delivery fails (nothing listens) and stays queued.
    let (delivery, alert) = wait_for(wait, "a queued delivery with a failed attempt", || {
        fleet.collector.db().query_row(
            "SELECT id, alert_id FROM alert_deliveries WHERE receiver = 'late' AND attempts >= 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .ok()
    });
    fleet.collector.restart();
    // Still queued after the restart, then delivered once the receiver listens.
    let queued = |fleet: &Fleet| -> i64 {
        fleet
            .collector
            .db()
            .query_row(
                "SELECT count(*) FROM alert_deliveries WHERE id = ?1",
                [delivery],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(
        queued(&fleet),
        1,
        "the queued delivery is kept across the restart"
    );
    let late = HttpReceiver::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), Mode::Ok);
    let (_, body) = wait_for(wait, "the queued firing event", || {
        events(&late).into_iter().find(|(e, _)| e == "firing")
    });
    assert!(
        signature_ok(&late.hits()[0]),
        "signed with the configured secret"
    );
    assert_eq!(
        (body["alert"]["id"].as_i64(), body["alert"]["rule"].as_str()),
        (Some(alert), Some("offline")),
        "{body}"
    );
    wait_for(wait, "the delivery leaves the queue", || {
        (queued(&fleet) == 0).then_some(())
    });
    // Sent once: the restarted collector did not fire the alert again.
    std::thread::sleep(Duration::from_secs(2));
    let seen: Vec<(String, i64)> = events(&late)
        .into_iter()
        .map(|(e, b)| (e, b["alert"]["id"].as_i64().unwrap_or(0)))
        .collect();
    assert_eq!(seen, [("firing".to_string(), alert)]);
}
