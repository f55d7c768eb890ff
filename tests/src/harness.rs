//! Process harness for end-to-end tests: a real `routerstats-collector serve` on ephemeral
//! loopback ports in a temporary data directory, real `routerstats-agent` processes enrolled
//! against it, and a TCP proxy that can cut the network between them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::bin_path;
use crate::fake_router::FakeRouter;

/// The real `uci` binary: `$ROUTERSTATS_UCI`, or built once by `scripts/build-uci`.
pub fn uci_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("ROUTERSTATS_UCI") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Command::new(root.join("scripts/build-uci"))
            .output()
            .expect("run scripts/build-uci");
        assert!(
            out.status.success(),
            "scripts/build-uci: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .lines()
                .last()
                .unwrap_or_default(),
        )
    })
    .clone()
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` every 50 ms until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 GET on loopback; returns (status, body).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, headers, None)
}

/// A minimal HTTP/1.1 request on loopback, with a JSON body when `body` is given; returns
/// (status, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    http_exchange(addr, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// A request to the collector's API with `X-API-Key: key` and an optional JSON body (10 s read
/// timeout): (status, the answer as JSON or `Null` when it is not JSON, the raw answer).
pub fn api_call(
    api: SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value, String) {
    let b = body.map(|b| b.to_string());
    let (status, text) =
        http_request(api, method, path, &[("X-API-Key", key)], b.as_deref()).unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        text,
    )
}

/// Response headers: (name in lowercase, value), in order.
pub type Headers = Vec<(String, String)>;

/// A GET by [`http_exchange`] that waits out rate limiting as a polite client does: on a 429 it
/// sleeps what the answer's `Retry-After` header says (1 to 5 s) and asks again, at most five
/// times. For tests that send more requests with one key than its burst (100, then 20/s).
pub fn http_get_patient(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, Headers, String)> {
    let mut tries = 0;
    loop {
        let (status, h, body) = http_exchange(addr, "GET", path, headers, None)?;
        tries += 1;
        if status != 429 || tries > 5 {
            return Ok((status, h, body));
        }
        let wait: u64 = h
            .iter()
            .find(|(k, _)| k == "retry-after")
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(1);
        std::thread::sleep(std::time::Duration::from_millis(
            wait.clamp(1, 5) * 1000 + 100,
        ));
    }
}

/// [`http_request`] that also returns the response headers.
pub fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, Headers, String)> {
    http_exchange_within(addr, method, path, headers, body, Duration::from_secs(10))
}

/// The response headers as the answer's head wrote them, one `name: value` line each (for
/// tests that look for a header line).
pub fn head_text(headers: &Headers) -> String {
    let lines: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    lines.join("\r\n")
}

/// [`http_exchange`] that waits up to `read_timeout` for the answer (the action routes can
/// wait a minute for a router).
pub fn http_exchange_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    read_timeout: Duration,
) -> std::io::Result<(u16, Headers, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(read_timeout))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some(b) => req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None if method == "GET" => req.push_str("\r\n"),
        None => req.push_str("Content-Length: 0\r\n\r\n"),
    }
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

/// Alert rules for tests: evaluated every second, a router offline after 2 missed 1-second
/// intervals, resolved at once (for [`Fleet::start_with_config`]).
pub const FAST_ALERTS: &str = r#"
[alerts]
eval_interval = "1s"
report_interval = "1s"
[alerts.fleet]
offline_intervals = 2
keep_firing_for = "0s"
"#;

/// A running collector process.
pub struct Collector {
    pub data_dir: PathBuf,
    pub ingest: SocketAddr,
    pub api: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
    /// A config file passed with `--config` (see [`Collector::start_with_config`]).
    config: Option<PathBuf>,
}

impl Collector {
    /// Starts a collector with its data in `data_dir` on free loopback ports and waits until it
    /// answers `/health`.
    pub fn start(data_dir: &Path) -> Collector {
        let ingest: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut c = Collector {
            data_dir: data_dir.to_path_buf(),
            ingest,
            api,
            child: None,
            log: data_dir.join("collector.log"),
            config: None,
        };
        c.spawn();
        c
    }

    /// Like [`Collector::start`], with these settings (TOML) in a `--config` file.
    pub fn start_with_config(data_dir: &Path, toml: &str) -> Collector {
        let ingest: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        std::fs::create_dir_all(data_dir).unwrap();
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, toml).unwrap();
        let mut c = Collector {
            data_dir: data_dir.to_path_buf(),
            ingest,
            api,
            child: None,
            log: data_dir.join("collector.log"),
            config: Some(config),
        };
        c.spawn();
        c
    }

    /// The collector's process id (0 when it is not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.data_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(bin_path("routerstats-collector"));
        cmd.arg("serve");
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        let child = cmd
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--ingest-listen",
                &self.ingest.to_string(),
                "--api-listen",
                &self.api.to_string(),
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn collector");
        self.child = Some(child);
        let api = self.api;
        let log_path = self.log.clone();
        let child = self.child.as_mut().unwrap();
        wait_for(Duration::from_secs(30), "collector /health", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "collector exited early ({status}); log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            matches!(http_get(api, "/health", &[]), Ok((200, _))).then_some(())
        });
    }

    /// Kills the collector with SIGKILL: no graceful shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The collector's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a collector CLI command against this data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin_path("routerstats-collector"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()
            .expect("run collector cli")
    }

    /// [`Collector::cli`] that must succeed (a panic with its stderr otherwise): its output.
    pub fn cli_ok(&self, args: &[&str]) -> Output {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Creates an enrollment token for `name` (extra args like `--ttl`, `--uses` appended).
    pub fn token(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["token", "create", "--name", name];
        args.extend_from_slice(extra);
        let out = self.cli_ok(&args);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates an API key with `role` called `name` (`apikey create`): the key.
    pub fn api_key(&self, role: &str, name: &str) -> String {
        let out = self.cli_ok(&["apikey", "create", "--role", role, "--name", name]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits (30 s at most) until more than `seen` reports of `router` are stored.
    pub fn wait_for_reports(&self, router: &str, seen: usize, what: &str) {
        wait_for(Duration::from_secs(30), what, || {
            (self.stored_seqs(router).len() > seen).then_some(())
        });
    }

    /// A read-only connection to the collector's database.
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open_with_flags(
            self.data_dir.join("routerstats.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("open db");
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c
    }

    /// Sequence numbers stored for a router, in order.
    pub fn stored_seqs(&self, router: &str) -> Vec<u64> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT r.seq FROM reports r JOIN routers t ON t.id = r.router_id WHERE t.name = ?1 ORDER BY r.seq")
            .unwrap();
        st.query_map([router], |row| row.get::<_, i64>(0))
            .unwrap()
            .map(|r| r.unwrap() as u64)
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An agent identity directory plus its fake router root.
pub struct AgentSetup {
    pub router: FakeRouter,
    pub config_dir: PathBuf,
}

impl AgentSetup {
    /// A fake router called `hostname` under `dir`.
    pub fn new(dir: &Path, hostname: &str) -> AgentSetup {
        let router = FakeRouter::create(&dir.join("root"), hostname).unwrap();
        AgentSetup {
            router,
            config_dir: dir.join("identity"),
        }
    }

    /// The agent command with this router's sources and identity directory.
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin_path("routerstats-agent"));
        c.args(["--config", "/dev/null"])
            .args(self.router.agent_args())
            .arg("--config-dir")
            .arg(&self.config_dir);
        c
    }

    /// `routerstats-agent enroll`.
    pub fn enroll(&self, collector: SocketAddr, token: &str) -> Output {
        self.command()
            .args([
                "--collector",
                &collector.to_string(),
                "--token",
                token,
                "enroll",
            ])
            .output()
            .unwrap()
    }

    /// Enrolls this router as `name` at `collector` with a fresh token; fails the test if the
    /// agent refuses or the collector does.
    pub fn enroll_at(&self, collector: &Collector, name: &str) {
        let out = self.enroll(collector.ingest, &collector.token(name, &[]));
        assert!(
            out.status.success(),
            "enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `routerstats-agent enroll --token-file -` with the token written to its standard input;
    /// `cmdline` gets the process's `/proc/<pid>/cmdline` (read before the token is written).
    pub fn enroll_stdin(&self, collector: SocketAddr, token: &str) -> (Output, String) {
        use std::io::Write;
        let mut child = self
            .command()
            .args([
                "--collector",
                &collector.to_string(),
                "enroll",
                "--token-file",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Right after exec the kernel may still show an empty command line: read it until the
        // agent's own shows (it waits on stdin, so it is still running), for at most 2 s.
        let mut cmdline = Vec::new();
        for _ in 0..200 {
            cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
            if !cmdline.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{token}").unwrap();
        drop(stdin);
        (
            child.wait_with_output().unwrap(),
            String::from_utf8_lossy(&cmdline).replace('\0', " "),
        )
    }

    /// `routerstats-agent run` in the background, reporting every `interval`.
    pub fn run(&self, collector: SocketAddr, interval: &str, extra: &[&str]) -> RunningAgent {
        let log = self.config_dir.with_extension("log");
        let file = std::fs::File::create(&log).unwrap();
        let child = self
            .command()
            .args([
                "--collector",
                &collector.to_string(),
                "--interval",
                interval,
                "--initial-delay",
                "0",
            ])
            .args(extra)
            .arg("run")
            // Info lines go to stdout, warnings and errors to stderr: one log for both.
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        RunningAgent {
            child: Some(child),
            log,
        }
    }
}

/// A running `routerstats-agent run`.
pub struct RunningAgent {
    child: Option<Child>,
    log: PathBuf,
}

impl RunningAgent {
    /// Stops it with SIGTERM and returns its log.
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.log()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A loopback TCP proxy whose link can be cut: while cut, open connections are closed and new
/// ones are refused (closed at once), like a network outage between agent and collector.
pub struct CutProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (up2, conns2, stop2) = (up.clone(), conns.clone(), stop.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(inbound) = inbound else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(target) else {
                    continue;
                };
                let mut list = conns2.lock().unwrap();
                for s in [&inbound, &outbound] {
                    if let Ok(c) = s.try_clone() {
                        list.push(c);
                    }
                }
                drop(list);
                for (mut from, mut to) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CutProxy {
            addr,
            up,
            conns,
            stop,
        }
    }

    /// Cuts the link: closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Restores the link.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(self.addr);
    }
}

/// Parses the agent's closing line: (built, acked, dropped, still spooled).
pub fn agent_stats(log: &str) -> Option<(u64, u64, u64, u64)> {
    let line = log.lines().rev().find(|l| l.contains("reports built"))?;
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums.as_slice() {
        [.., b, a, d, s] => Some((*b, *a, *d, *s)),
        _ => None,
    }
}

/// A small fleet for API and dashboard tests: a collector, routers enrolled with tokens and
/// reporting from fake roots through the real pipeline, and a read and an admin API key.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub collector: Collector,
    pub routers: Vec<AgentSetup>,
    agents: Vec<RunningAgent>,
    pub read_key: String,
    pub admin_key: String,
}

impl Fleet {
    /// Starts a collector and one agent per `(name, site)` reporting every 200 ms, advances the
    /// fake counters between cycles, and returns once each router has stored `cycles` reports.
    /// The agents keep running until [`Fleet::stop_agents`] (or drop).
    pub fn start(routers: &[(&str, &str)], cycles: usize) -> Fleet {
        Self::start_with_config(routers, cycles, None)
    }

    /// [`Fleet::start`] with a collector config file (TOML text).
    pub fn start_with_config(
        routers: &[(&str, &str)],
        cycles: usize,
        config: Option<&str>,
    ) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let collector = match config {
            Some(text) => Collector::start_with_config(&dir.path().join("collector"), text),
            None => Collector::start(&dir.path().join("collector")),
        };
        let key = |role: &str| collector.api_key(role, &format!("test-{role}"));
        let (read_key, admin_key) = (key("read"), key("admin"));
        let mut setups = Vec::new();
        let mut agents = Vec::new();
        for (name, site) in routers {
            let setup = AgentSetup::new(&dir.path().join(name), name);
            let token = collector.token(name, &["--site", site]);
            let out = setup.enroll(collector.ingest, &token);
            assert!(
                out.status.success(),
                "enroll {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            agents.push(setup.run(collector.ingest, "200ms", &[]));
            setups.push(setup);
        }
        wait_for(Duration::from_secs(60), "every router's reports", || {
            for s in &setups {
                s.router.tick(30).unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
            setups
                .iter()
                .all(|s| collector.stored_seqs(&s.router.hostname).len() >= cycles)
                .then_some(())
        });
        Fleet {
            dir,
            collector,
            routers: setups,
            agents,
            read_key,
            admin_key,
        }
    }

    /// Stops every agent (their data stays), so answers no longer change under a test.
    pub fn stop_agents(&mut self) {
        for a in &mut self.agents {
            a.stop();
        }
    }

    /// Stops the agent of router `name` (the others keep reporting).
    pub fn stop_agent(&mut self, name: &str) {
        if let Some(i) = self.routers.iter().position(|r| r.router.hostname == name) {
            if let Some(a) = self.agents.get_mut(i) {
                a.stop();
            }
        }
    }

    /// Starts the agents again (after [`Fleet::stop_agents`]), reporting every 200 ms.
    pub fn restart_agents(&mut self) {
        self.stop_agents();
        self.agents = self
            .routers
            .iter()
            .map(|s| s.run(self.collector.ingest, "200ms", &[]))
            .collect();
    }

    /// A request with a JSON body and an optional API key; returns the status and the parsed body.
    pub fn send_as(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let headers: Vec<(&str, &str)> = key.map(|k| vec![("X-API-Key", k)]).unwrap_or_default();
        let (status, body) =
            http_request(self.collector.api, method, path, &headers, body).expect("http request");
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// GET with an optional API key; returns the status and the body parsed as JSON (Null when
    /// the body is not JSON).
    pub fn get_as(&self, path: &str, key: Option<&str>) -> (u16, serde_json::Value) {
        let headers: Vec<(&str, &str)> = key.map(|k| vec![("X-API-Key", k)]).unwrap_or_default();
        let (status, body) = http_get(self.collector.api, path, &headers).expect("http get");
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// GET with the read key.
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_as(path, Some(&self.read_key))
    }
}
