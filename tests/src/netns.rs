//! Network namespaces for the end-to-end tests that need real network stacks (WireGuard,
//! OpenVPN, shaping, probes): the skip switch and tool check those tests share, a command
//! runner, and [`Netns`], which owns the namespaces, processes and leftover sockets of one test
//! and removes them on drop, so that a failed assertion leaves nothing behind on the machine.
//!
//! Every namespace is one the test creates itself; traffic never leaves them and loopback.
//! `ROUTERSTATS_SKIP_NETNS=1` skips these tests on machines without root or the tools.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::wait_for;

/// True (and says so on stderr) when `ROUTERSTATS_SKIP_NETNS=1` asks to skip namespace tests.
pub fn skipped() -> bool {
    let skip = std::env::var("ROUTERSTATS_SKIP_NETNS").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED: ROUTERSTATS_SKIP_NETNS=1");
    }
    skip
}

/// Fails the test, naming the missing tool and `installs` (what scripts/test installs for it),
/// unless every one of `tools` is on PATH.
pub fn require_tools(tools: &[&str], installs: &str) {
    for tool in tools {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing (scripts/test installs {installs}; ROUTERSTATS_SKIP_NETNS=1 skips this test)"
        );
    }
}

/// A number that keeps this test process's namespace and device names apart from those of
/// other test processes running at the same time (interface names have at most 15 bytes).
pub fn tag() -> u32 {
    std::process::id() % 100_000
}

/// Runs `args[0]` with the rest as arguments: its stdout, or the command and its stderr.
pub fn try_sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// [`try_sh`] that fails the test when the command fails.
pub fn sh(args: &[&str]) -> String {
    try_sh(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `args` run inside namespace `ns` (`ip netns exec <ns> ...`), failing the test if it fails.
pub fn sh_in(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    sh(&full)
}

/// The namespaces, processes and sockets of one test, removed on drop (processes first).
#[derive(Default)]
pub struct Netns {
    names: Vec<String>,
    children: Vec<Child>,
    sockets: Vec<PathBuf>,
}

impl Netns {
    pub fn new() -> Netns {
        Netns::default()
    }

    /// Creates namespace `name` (removed on drop) with its loopback up.
    pub fn add(&mut self, name: &str) {
        self.names.push(name.to_string());
        sh(&["ip", "netns", "add", name]);
        sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
    }

    /// A veth pair between two namespaces: `a` = (namespace, device, address/prefix) and `b`
    /// likewise; both ends get their address and are up.
    pub fn veth(&mut self, a: (&str, &str, &str), b: (&str, &str, &str)) {
        sh(&[
            "ip", "link", "add", a.1, "netns", a.0, "type", "veth", "peer", "name", b.1, "netns",
            b.0,
        ]);
        for (ns, dev, addr) in [a, b] {
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// A server and a client namespace, `<prefix><tag>srv` and `<prefix><tag>cli` (tag: this
    /// process's [`tag`]), joined by a veth pair with `<subnet>.1/24` on the server side and
    /// `<subnet>.2/24` on the client side: (server namespace, client namespace).
    pub fn server_and_client(&mut self, prefix: &str, subnet: &str) -> (String, String) {
        let tag = tag();
        let (srv, cli) = (format!("{prefix}{tag}srv"), format!("{prefix}{tag}cli"));
        self.add(&srv);
        self.add(&cli);
        self.veth(
            (&srv, &format!("{prefix}{tag}vs"), &format!("{subnet}.1/24")),
            (&cli, &format!("{prefix}{tag}vc"), &format!("{subnet}.2/24")),
        );
        (srv, cli)
    }

    /// Keeps `child` (killed and reaped on drop).
    pub fn keep(&mut self, child: Child) {
        self.children.push(child);
    }

    /// `wireguard-go <iface>` in the foreground inside `ns`, waiting for its UAPI socket (which
    /// a killed wireguard-go leaves behind: removed on drop).
    pub fn wireguard_go(&mut self, ns: &str, iface: &str) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "wireguard-go", iface])
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wireguard-go");
        self.children.push(child);
        let sock = PathBuf::from(format!("/var/run/wireguard/{iface}.sock"));
        wait_for(Duration::from_secs(10), "wireguard-go's socket", || {
            sock.exists().then_some(())
        });
        self.sockets.push(sock);
    }

    /// A TCP echo server (python3) on `addr:port` inside `ns`, killed on drop: it sends back the
    /// first 100 bytes of each connection and closes it.
    pub fn echo_server(&mut self, ns: &str, addr: &str, port: u16) {
        let code = format!(
            "import socket\nl = socket.socket()\nl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\nl.bind(('{addr}', {port}))\nl.listen(8)\nwhile True:\n    c, _ = l.accept()\n    c.sendall(c.recv(100))\n    c.close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", &code])
            .spawn()
            .expect("start the echo server");
        self.children.push(child);
    }
}

/// A TCP exchange from namespace `ns` to an [`Netns::echo_server`] at `addr:port`, sending
/// `text` (3 s timeout): the echoed text, or why it failed.
pub fn exchange(ns: &str, addr: &str, port: u16, text: &str) -> Result<String, String> {
    let code = format!(
        "import socket\ns = socket.create_connection(('{addr}', {port}), timeout=3)\ns.sendall(b'{text}')\nprint(s.recv(100).decode())"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &code])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}
