//! The `openvpn` action family: the router's OpenVPN server and its easy-rsa PKI, as OpenWrt
//! packages them (`openvpn-openssl`, `openvpn-easy-rsa`: `/usr/bin/easyrsa`, the PKI in
//! `/etc/easy-rsa/pki`, the server config in `/etc/openvpn/server.conf`, all settable in
//! `/etc/config/routerstats`).
//!
//! - create: `easyrsa build-client-full <name> nopass` (`EASYRSA_PKI`, `EASYRSA_BATCH=1`), then a
//!   client `.ovpn` built from the server's own settings with `<ca>`, `<cert>`, `<key>` and the
//!   server's `<tls-crypt>`/`<tls-auth>` key inline. Refused before anything changes when the
//!   name exists, the PKI or the server config is missing; files of a failed run are removed.
//! - revoke: `easyrsa revoke <name>`, `easyrsa gen-crl`, the CRL copied where the server's
//!   `crl-verify` reads it (OpenVPN reloads a changed CRL file on the next handshake), then
//!   `kill <name>` on the management interface. Refused when the server has no `crl-verify`.
//! - disconnect: `kill <name>` on the management interface (`management` in the server config,
//!   TCP or unix socket, with its password file).
//! - server info: the config with inline keys and secret files' contents never read or sent, a
//!   client template, and the newest log lines (the config's `log`/`log-append` file, else
//!   `logread -e openvpn`).
//!
//! The parsers ([`parse_config`], [`parse_index`], [`pem_block`]) are pure; the client's key is
//! never logged and never kept in the agent's journal.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use routerstats_shared::action::{check_client_name, ActionDetail, OvpnServerDetail};

use super::tools;

/// What the family needs from the agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvpnConfig {
    /// The server's config file (relative paths in it are relative to its directory, as
    /// OpenWrt's init script runs `openvpn --cd <dir> --config <file>`).
    pub config: PathBuf,
    pub easyrsa: String,
    pub pki: PathBuf,
    /// The server's public address for clients' `remote` lines.
    pub remote: Option<String>,
    pub logread: String,
}

/// Most bytes of log text read.
const MAX_LOG_BYTES: u64 = 512 * 1024;
/// Time the management interface may take to answer.
const MGMT_TIMEOUT: Duration = Duration::from_secs(10);
/// Inline blocks whose content is secret.
const SECRET_BLOCKS: &[&str] = &[
    "key",
    "tls-auth",
    "tls-crypt",
    "tls-crypt-v2",
    "secret",
    "pkcs12",
    "auth-user-pass",
    "http-proxy-user-pass",
];

/// One directive of an OpenVPN config: its name and arguments, or an inline block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Directive { name: String, args: Vec<String> },
    Inline { name: String, body: String },
}

/// A parsed server config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConf {
    pub items: Vec<Item>,
    /// The config's lines with secrets redacted.
    pub redacted: Vec<String>,
}

/// Splits a config line into words: whitespace separated, `"..."` and `'...'` quoting, `\`
/// escapes inside double quotes; `#` or `;` starts a comment outside quotes.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' | ';' if !has => break,
            c if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            '"' => {
                has = true;
                loop {
                    match chars.next() {
                        None => return Err("unterminated double quote".into()),
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or("backslash at end of line")?),
                        Some(c) => cur.push(c),
                    }
                }
            }
            '\'' => {
                has = true;
                loop {
                    match chars.next() {
                        None => return Err("unterminated single quote".into()),
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                    }
                }
            }
            '\\' => {
                has = true;
                cur.push(chars.next().unwrap_or('\\'));
            }
            c => {
                has = true;
                cur.push(c);
            }
        }
    }
    if has {
        out.push(cur);
    }
    Ok(out)
}

/// Parses OpenVPN config text. A malformed line is an error naming it.
pub fn parse_config(text: &str) -> Result<ServerConf, String> {
    let mut conf = ServerConf::default();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim();
        if let Some(name) = line
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix('>'))
            .filter(|n| !n.starts_with('/'))
        {
            let end = format!("</{name}>");
            let mut body = String::new();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if l.trim() == end {
                    closed = true;
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            if !closed {
                return Err(format!("line {}: <{name}> is never closed", i + 1));
            }
            let shown = if SECRET_BLOCKS.contains(&name) {
                "[redacted]".to_string()
            } else {
                format!("[{} lines]", body.lines().count())
            };
            conf.redacted.push(format!("<{name}>"));
            conf.redacted.push(shown);
            conf.redacted.push(end);
            conf.items.push(Item::Inline {
                name: name.to_string(),
                body,
            });
            continue;
        }
        let w = words(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let Some((name, args)) = w.split_first() else {
            conf.redacted.push(raw.to_string());
            continue;
        };
        let name = name.trim_start_matches("--").to_string();
        // A password given on the line itself (`management ... <pw-file>` names a file, which
        // is fine; `auth-user-pass`/`askpass` name files too). Nothing else carries a secret
        // in the clear, but keep the rule simple: a `secret`-like directive's args are hidden.
        let shown = if name == "http-proxy" && args.len() > 2 {
            format!("{name} {} {} [redacted]", args[0], args[1])
        } else {
            raw.to_string()
        };
        conf.redacted.push(shown);
        conf.items.push(Item::Directive {
            name,
            args: args.to_vec(),
        });
    }
    Ok(conf)
}

impl ServerConf {
    /// The arguments of the last occurrence of a directive (OpenVPN keeps the last one).
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.items.iter().rev().find_map(|i| match i {
            Item::Directive { name: n, args } if n == name => Some(args.as_slice()),
            _ => None,
        })
    }

    fn inline(&self, name: &str) -> Option<&str> {
        self.items.iter().rev().find_map(|i| match i {
            Item::Inline { name: n, body } if n == name => Some(body.as_str()),
            _ => None,
        })
    }

    fn first_arg(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|a| a.first()).map(String::as_str)
    }

    /// The listening port (`port` or `lport`, default 1194).
    pub fn port(&self) -> u16 {
        self.first_arg("port")
            .or_else(|| self.first_arg("lport"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1194)
    }

    /// The protocol as a client writes it (`tcp-server` becomes `tcp-client`).
    pub fn client_proto(&self) -> String {
        match self.first_arg("proto").unwrap_or("udp") {
            "tcp-server" | "tcp" => "tcp-client".into(),
            "tcp4-server" | "tcp4" => "tcp4-client".into(),
            "tcp6-server" | "tcp6" => "tcp6-client".into(),
            p => p.to_string(),
        }
    }

    /// A client template matching this server (no certificates, no `remote` unless given).
    pub fn template(&self, remote: Option<&str>) -> String {
        let dev = match self.first_arg("dev-type").or_else(|| self.first_arg("dev")) {
            Some(d) if d.starts_with("tap") => "tap",
            _ => "tun",
        };
        let mut t = format!("client\ndev {dev}\nproto {}\n", self.client_proto());
        if let Some(host) = remote {
            t.push_str(&format!("remote {host} {}\n", self.port()));
        }
        t.push_str(
            "resolv-retry infinite\nnobind\npersist-key\npersist-tun\nremote-cert-tls server\n",
        );
        for d in [
            "data-ciphers",
            "cipher",
            "auth",
            "compress",
            "comp-lzo",
            "tls-version-min",
        ] {
            if let Some(args) = self.get(d) {
                t.push_str(&format!("{d} {}\n", args.join(" ")).replace(" \n", "\n"));
            }
        }
        if self.get("tls-auth").is_some() || self.inline("tls-auth").is_some() {
            t.push_str("key-direction 1\n");
        }
        t.push_str("verb 3\n");
        t
    }
}

/// Reads and parses the server config.
fn load(cfg: &OvpnConfig) -> Result<ServerConf, String> {
    let text = std::fs::read_to_string(&cfg.config).map_err(|e| {
        format!(
            "no OpenVPN server config at {}: {e} (install openvpn and configure its server, or set option openvpn_config in /etc/config/routerstats)",
            cfg.config.display()
        )
    })?;
    parse_config(&text).map_err(|e| format!("{}: {e}", cfg.config.display()))
}

/// A path of the server config, relative to its `cd` directory or to the config's directory.
fn resolve(cfg: &OvpnConfig, conf: &ServerConf, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let base = conf
        .first_arg("cd")
        .map(PathBuf::from)
        .or_else(|| cfg.config.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    base.join(p)
}

/// One line of easy-rsa's `index.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// `V` valid, `R` revoked, `E` expired.
    pub status: char,
    pub expires: String,
    pub serial: String,
    pub cn: String,
}

/// Parses `index.txt` (tab-separated: status, expiry, revocation, serial, file, subject);
/// lines that do not fit are skipped.
pub fn parse_index(text: &str) -> Vec<IndexEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 6 {
                return None;
            }
            let status = f[0].chars().next()?;
            let cn = f[5]
                .split('/')
                .find_map(|part| part.strip_prefix("CN="))?
                .to_string();
            Some(IndexEntry {
                status,
                expires: f[1].to_string(),
                serial: f[3].to_string(),
                cn,
            })
        })
        .collect()
}

/// The valid certificate of `name`, if the PKI has one.
fn valid_entry(cfg: &OvpnConfig, name: &str) -> Option<IndexEntry> {
    let text = std::fs::read_to_string(cfg.pki.join("index.txt")).ok()?;
    parse_index(&text)
        .into_iter()
        .rev()
        .find(|e| e.status == 'V' && e.cn == name)
}

/// The first PEM block of `label` in `text` (easy-rsa's issued certificates start with a
/// human-readable dump).
pub fn pem_block(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(format!("{}\n", &text[start..stop]))
}

fn easyrsa(cfg: &OvpnConfig, args: &[&str]) -> Result<String, String> {
    let env = [
        ("EASYRSA_PKI", cfg.pki.as_os_str()),
        ("EASYRSA_BATCH", std::ffi::OsStr::new("1")),
    ];
    tools::run_env(&cfg.easyrsa, args, &env, 4096).map_err(|e| {
        if e.starts_with("cannot run") {
            format!("easy-rsa is not installed ({e}; opkg install openvpn-easy-rsa, or set option easyrsa)")
        } else {
            e
        }
    })
}

fn require_pki(cfg: &OvpnConfig) -> Result<(), String> {
    for f in ["ca.crt", "private/ca.key", "index.txt"] {
        if !cfg.pki.join(f).is_file() {
            return Err(format!(
                "no easy-rsa PKI with a CA at {} ({f} is missing: easyrsa init-pki; easyrsa build-ca nopass; or set option easyrsa_pki)",
                cfg.pki.display()
            ));
        }
    }
    Ok(())
}

/// The server's TLS wrapping key as client config text (`<tls-crypt>` or `<tls-auth>`).
fn tls_wrap(cfg: &OvpnConfig, conf: &ServerConf) -> Result<String, String> {
    if conf.get("tls-crypt-v2").is_some() || conf.inline("tls-crypt-v2").is_some() {
        return Err("the server uses tls-crypt-v2, whose per-client keys this agent does not make yet; use tls-crypt or tls-auth".into());
    }
    for name in ["tls-crypt", "tls-auth"] {
        if let Some(body) = conf.inline(name) {
            return Ok(format!("<{name}>\n{body}</{name}>\n"));
        }
        if let Some(file) = conf.first_arg(name) {
            let path = resolve(cfg, conf, file);
            let body = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "cannot read the server's {name} key {}: {e}",
                    path.display()
                )
            })?;
            let body = pem_block(&body, "OpenVPN Static key V1")
                .ok_or_else(|| format!("{} is not an OpenVPN static key", path.display()))?;
            return Ok(format!("<{name}>\n{body}</{name}>\n"));
        }
    }
    Ok(String::new())
}

/// Issues a client certificate and returns its `.ovpn`.
pub fn create_client(
    cfg: &OvpnConfig,
    name: &str,
) -> Result<(String, Option<ActionDetail>), String> {
    check_client_name(name)?;
    let conf = load(cfg)?;
    require_pki(cfg)?;
    let files = [
        cfg.pki.join("issued").join(format!("{name}.crt")),
        cfg.pki.join("private").join(format!("{name}.key")),
        cfg.pki.join("reqs").join(format!("{name}.req")),
    ];
    if valid_entry(cfg, name).is_some() || files.iter().any(|f| f.exists()) {
        return Err(format!(
            "client {name} already exists in {}",
            cfg.pki.display()
        ));
    }
    let wrap = tls_wrap(cfg, &conf)?;
    let ca = std::fs::read_to_string(cfg.pki.join("ca.crt"))
        .ok()
        .and_then(|t| pem_block(&t, "CERTIFICATE"))
        .ok_or("cannot read the CA certificate of the PKI")?;
    if let Err(e) = easyrsa(cfg, &["build-client-full", name, "nopass"]) {
        // Nothing half-made: the files of this run go, unless the CA already signed them.
        if valid_entry(cfg, name).is_none() {
            for f in &files {
                let _ = std::fs::remove_file(f);
            }
        }
        return Err(e);
    }
    let entry = valid_entry(cfg, name);
    let read = |p: &Path, label: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| pem_block(&t, label))
            .ok_or_else(|| format!("easyrsa made no {label} at {}", p.display()))
    };
    let cert = read(&files[0], "CERTIFICATE")?;
    let key = read(&files[1], "PRIVATE KEY")?;
    let ovpn = format!(
        "{}<ca>\n{ca}</ca>\n<cert>\n{cert}</cert>\n<key>\n{key}</key>\n{wrap}",
        conf.template(cfg.remote.as_deref())
    );
    Ok((
        format!("client certificate {name} issued"),
        Some(ActionDetail::OvpnClient {
            name: name.to_string(),
            ovpn,
            serial: entry.as_ref().map(|e| e.serial.clone()),
            expires: entry.map(|e| e.expires),
            port: conf.port(),
            proto: conf.client_proto(),
        }),
    ))
}

/// Where the management interface listens, and its password file.
enum Mgmt {
    Tcp(String, Option<PathBuf>),
    Unix(PathBuf, Option<PathBuf>),
}

fn management(cfg: &OvpnConfig, conf: &ServerConf) -> Result<Mgmt, String> {
    let args = conf.get("management").ok_or(
        "the server config has no management interface (add e.g. `management /var/run/openvpn.sock unix`)",
    )?;
    match args {
        [path, unix, rest @ ..] if unix == "unix" => Ok(Mgmt::Unix(
            resolve(cfg, conf, path),
            rest.first().map(|p| resolve(cfg, conf, p)),
        )),
        [host, port, rest @ ..] => Ok(Mgmt::Tcp(
            format!("{host}:{port}"),
            rest.first().map(|p| resolve(cfg, conf, p)),
        )),
        _ => Err(format!("cannot use `management {}`", args.join(" "))),
    }
}

/// Sends `kill <name>`; Ok(true) when sessions were killed, Ok(false) when none was found.
fn mgmt_kill(cfg: &OvpnConfig, conf: &ServerConf, name: &str) -> Result<bool, String> {
    fn talk<S: std::io::Read + Write>(
        s: S,
        pw: Option<String>,
        name: &str,
    ) -> std::io::Result<String> {
        let mut r = BufReader::new(s);
        let mut line = String::new();
        // The greeting, or a password prompt (which has no newline).
        if let Some(pw) = pw {
            let mut prompt = Vec::new();
            while !String::from_utf8_lossy(&prompt).contains("PASSWORD:") {
                let mut b = [0u8; 1];
                if std::io::Read::read(&mut r, &mut b)? == 0 {
                    break;
                }
                prompt.push(b[0]);
            }
            r.get_mut().write_all(format!("{pw}\n").as_bytes())?;
        }
        r.get_mut().write_all(format!("kill {name}\n").as_bytes())?;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(String::new());
            }
            let l = line.trim();
            if l.starts_with("SUCCESS: common name") || l.starts_with("ERROR:") {
                let _ = r.get_mut().write_all(b"quit\n");
                return Ok(l.to_string());
            }
        }
    }
    let read_pw = |p: &Option<PathBuf>| -> Result<Option<String>, String> {
        p.as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|t| t.lines().next().unwrap_or_default().to_string())
                    .map_err(|e| {
                        format!(
                            "cannot read the management password file {}: {e}",
                            p.display()
                        )
                    })
            })
            .transpose()
    };
    let unreachable = |what: &str, e: std::io::Error| {
        format!("cannot talk to the OpenVPN management interface at {what}: {e} (is the server running?)")
    };
    let answer = match management(cfg, conf)? {
        Mgmt::Unix(path, pw) => {
            let pw = read_pw(&pw)?;
            let s = std::os::unix::net::UnixStream::connect(&path)
                .map_err(|e| unreachable(&path.display().to_string(), e))?;
            let _ = s.set_read_timeout(Some(MGMT_TIMEOUT));
            talk(s, pw, name).map_err(|e| unreachable(&path.display().to_string(), e))?
        }
        Mgmt::Tcp(addr, pw) => {
            let pw = read_pw(&pw)?;
            let sa = std::net::ToSocketAddrs::to_socket_addrs(&addr)
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("bad management address {addr}"))?;
            let s = std::net::TcpStream::connect_timeout(&sa, MGMT_TIMEOUT)
                .map_err(|e| unreachable(&addr, e))?;
            let _ = s.set_read_timeout(Some(MGMT_TIMEOUT));
            talk(s, pw, name).map_err(|e| unreachable(&addr, e))?
        }
    };
    if answer.starts_with("SUCCESS") {
        Ok(true)
    } else if answer.contains("not found") {
        Ok(false)
    } else {
        Err(format!("the management interface answered: {answer:?}"))
    }
}

/// Ends a client's sessions.
pub fn disconnect_client(
    cfg: &OvpnConfig,
    name: &str,
) -> Result<(String, Option<ActionDetail>), String> {
    check_client_name(name)?;
    let conf = load(cfg)?;
    if mgmt_kill(cfg, &conf, name)? {
        Ok((format!("client {name} disconnected"), None))
    } else {
        Err(format!("client {name} is not connected"))
    }
}

/// Revokes a client's certificate and publishes the new CRL.
pub fn revoke_client(
    cfg: &OvpnConfig,
    name: &str,
) -> Result<(String, Option<ActionDetail>), String> {
    check_client_name(name)?;
    let conf = load(cfg)?;
    require_pki(cfg)?;
    let crl = conf.get("crl-verify").map(<[String]>::to_vec).ok_or_else(|| {
        format!(
            "the server config has no crl-verify, so a revoked certificate would still connect (add `crl-verify {}`)",
            cfg.pki.join("crl.pem").display()
        )
    })?;
    let Some(entry) = valid_entry(cfg, name) else {
        return Err(format!(
            "no client named {name} with a valid certificate in {}",
            cfg.pki.display()
        ));
    };
    easyrsa(cfg, &["revoke", name])?;
    easyrsa(cfg, &["gen-crl"]).map_err(|e| {
        format!(
            "{name} is revoked in the PKI but the CRL was not made, so it can still connect: {e}"
        )
    })?;
    let made = cfg.pki.join("crl.pem");
    let target = resolve(cfg, &conf, &crl[0]);
    let published = if crl.get(1).is_some_and(|f| f == "dir") {
        // Directory mode: a file named by the decimal serial marks it revoked.
        let serial = u128::from_str_radix(&entry.serial, 16).map_err(|_| {
            format!(
                "serial {} does not fit the crl-verify directory mode",
                entry.serial
            )
        })?;
        std::fs::write(target.join(serial.to_string()), b"")
    } else if target != made {
        let tmp = target.with_extension("rs-tmp");
        std::fs::copy(&made, &tmp)
            .and_then(|_| {
                std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            })
            .and_then(|_| std::fs::rename(&tmp, &target))
    } else {
        // easy-rsa writes it 0600; the server may read it after dropping privileges.
        std::fs::set_permissions(&made, std::os::unix::fs::PermissionsExt::from_mode(0o644))
    };
    published.map_err(|e| {
        format!(
            "{name} is revoked but the CRL could not be put at {}: {e}",
            target.display()
        )
    })?;
    let killed = match mgmt_kill(cfg, &conf, name) {
        Ok(true) => "; its sessions were ended".to_string(),
        Ok(false) => String::new(),
        Err(e) => format!("; its sessions could not be ended: {e}"),
    };
    Ok((
        format!(
            "client {name} revoked (serial {}), CRL updated{killed}",
            entry.serial
        ),
        None,
    ))
}

/// The newest `n` lines of `text` that `keep` accepts, oldest first.
fn tail(text: &str, n: usize, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .rev()
        .filter(|l| keep(l))
        .take(n)
        .map(String::from)
        .collect();
    v.reverse();
    v
}

/// Reads the server's config, template and logs.
pub fn server_info(
    cfg: &OvpnConfig,
    log_lines: u32,
) -> Result<(String, Option<ActionDetail>), String> {
    let conf = load(cfg)?;
    let n = log_lines as usize;
    let log_file = conf
        .first_arg("log-append")
        .or_else(|| conf.first_arg("log"));
    let (logs, log_source, log_error) = if n == 0 {
        (Vec::new(), String::new(), None)
    } else if let Some(f) = log_file {
        let path = resolve(cfg, &conf, f);
        match std::fs::read(&path) {
            Ok(b) => {
                let start = b.len().saturating_sub(MAX_LOG_BYTES as usize);
                let text = String::from_utf8_lossy(&b[start..]);
                (tail(&text, n, |_| true), path.display().to_string(), None)
            }
            Err(e) => (
                Vec::new(),
                path.display().to_string(),
                Some(format!("cannot read {}: {e}", path.display())),
            ),
        }
    } else {
        match tools::run_env(&cfg.logread, &["-e", "openvpn"], &[], MAX_LOG_BYTES) {
            Ok(text) => (
                tail(&text, n, |l| l.contains("openvpn")),
                "logread".into(),
                None,
            ),
            Err(e) => (Vec::new(), "logread".into(), Some(e)),
        }
    };
    Ok((
        format!("OpenVPN server config {} read", cfg.config.display()),
        Some(ActionDetail::OvpnServer(Box::new(OvpnServerDetail {
            config_file: cfg.config.display().to_string(),
            template: conf.template(cfg.remote.as_deref()),
            remote: cfg.remote.clone(),
            port: conf.port(),
            proto: conf.client_proto(),
            config: conf.redacted,
            logs,
            log_source,
            log_error,
        }))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "# OpenWrt server\nport 1195\nproto udp\ndev tun\nca /etc/easy-rsa/pki/ca.crt\ndata-ciphers AES-256-GCM:CHACHA20-POLY1305\nmanagement /var/run/openvpn.sock unix\ncrl-verify crl.pem\nlog-append \"/tmp/open vpn.log\" ; comment\n<tls-crypt>\n-----BEGIN OpenVPN Static key V1-----\nSECRETKEY\n-----END OpenVPN Static key V1-----\n</tls-crypt>\n<dh>\nA\nB\n</dh>\n";

    #[test]
    fn config_is_parsed_and_secrets_redacted() {
        let c = parse_config(SERVER).unwrap();
        assert_eq!(c.port(), 1195);
        assert_eq!(c.client_proto(), "udp");
        assert_eq!(c.first_arg("log-append"), Some("/tmp/open vpn.log"));
        assert_eq!(
            c.get("management").unwrap(),
            &["/var/run/openvpn.sock", "unix"]
        );
        let red = c.redacted.join("\n");
        assert!(!red.contains("SECRETKEY"), "{red}");
        assert!(
            red.contains("<tls-crypt>\n[redacted]\n</tls-crypt>"),
            "{red}"
        );
        assert!(red.contains("<dh>\n[2 lines]\n</dh>"), "{red}");
        let t = c.template(Some("vpn.example.net"));
        assert!(
            t.starts_with("client\ndev tun\nproto udp\nremote vpn.example.net 1195\n"),
            "{t}"
        );
        assert!(
            t.contains("data-ciphers AES-256-GCM:CHACHA20-POLY1305\n"),
            "{t}"
        );
        assert!(!c.template(None).contains("remote "));
        assert!(parse_config("<key>\nx\n")
            .unwrap_err()
            .contains("never closed"));
        assert!(parse_config("ca \"x\n").unwrap_err().contains("line 1"));
        let tcp = parse_config("proto tcp-server\nport 443\ntls-auth ta.key 0\n").unwrap();
        assert_eq!(tcp.client_proto(), "tcp-client");
        assert!(tcp.template(None).contains("key-direction 1\n"));
    }

    #[test]
    fn index_and_pem() {
        let idx = "V\t270101000000Z\t\tA1B2\tunknown\t/CN=alice\nR\t270101000000Z\t250101000000Z\tC3\tunknown\t/CN=bob\nbroken line\nV\t280101000000Z\t\t0F\tunknown\t/C=US/CN=carol/emailAddress=c@x\n";
        let e = parse_index(idx);
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[0].status, e[0].serial.as_str(), e[0].cn.as_str()),
            ('V', "A1B2", "alice")
        );
        assert_eq!((e[1].status, e[1].cn.as_str()), ('R', "bob"));
        assert_eq!(e[2].cn, "carol");
        let t = "Certificate:\n  Data: ...\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_block(t, "CERTIFICATE").unwrap(),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        );
        assert!(pem_block("nothing", "CERTIFICATE").is_none());
    }

    fn cfg(dir: &Path) -> OvpnConfig {
        OvpnConfig {
            config: dir.join("server.conf"),
            easyrsa: "/nonexistent/easyrsa".into(),
            pki: dir.join("pki"),
            remote: None,
            logread: "/nonexistent/logread".into(),
        }
    }

    #[test]
    fn a_router_without_openvpn_or_easy_rsa_gets_clear_errors_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        for r in [
            create_client(&c, "alice"),
            revoke_client(&c, "alice"),
            disconnect_client(&c, "alice"),
            server_info(&c, 10),
        ] {
            assert!(
                r.as_ref().unwrap_err().contains("no OpenVPN server config"),
                "{r:?}"
            );
        }
        std::fs::write(&c.config, "dev tun\n").unwrap();
        let e = create_client(&c, "alice").unwrap_err();
        assert!(e.contains("no easy-rsa PKI"), "{e}");
        let e = revoke_client(&c, "alice").unwrap_err();
        assert!(e.contains("no easy-rsa PKI"), "{e}");
        let e = disconnect_client(&c, "alice").unwrap_err();
        assert!(e.contains("no management interface"), "{e}");
        // A PKI, but no easyrsa tool.
        for d in ["pki/private", "pki/issued", "pki/reqs"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(
            dir.path().join("pki/ca.crt"),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("pki/private/ca.key"), "k").unwrap();
        std::fs::write(
            dir.path().join("pki/index.txt"),
            "V\t270101000000Z\t\tA1\tunknown\t/CN=bob\n",
        )
        .unwrap();
        let e = create_client(&c, "alice").unwrap_err();
        assert!(e.contains("easy-rsa is not installed"), "{e}");
        assert!(!dir.path().join("pki/private/alice.key").exists());
        let e = create_client(&c, "bob").unwrap_err();
        assert!(e.contains("already exists"), "{e}");
        let e = revoke_client(&c, "bob").unwrap_err();
        assert!(e.contains("no crl-verify"), "{e}");
        std::fs::write(&c.config, "dev tun\ncrl-verify crl.pem\n").unwrap();
        let e = revoke_client(&c, "alice").unwrap_err();
        assert!(e.contains("no client named alice"), "{e}");
        let e = create_client(&c, "a;reboot").unwrap_err();
        assert!(e.contains("client name"), "{e}");
        let e = disconnect_client(&c, "$(id)").unwrap_err();
        assert!(e.contains("client name"), "{e}");
        // The management socket is not there: a clear error.
        std::fs::write(
            &c.config,
            format!(
                "management {} unix\n",
                dir.path().join("none.sock").display()
            ),
        )
        .unwrap();
        let e = disconnect_client(&c, "bob").unwrap_err();
        assert!(e.contains("management interface at"), "{e}");
        // Logs from logread that is missing: the info still comes, with the reason.
        let (_, d) = server_info(&c, 5).unwrap();
        match d {
            Some(ActionDetail::OvpnServer(d)) => {
                assert!(d.logs.is_empty());
                assert!(d.log_error.unwrap().contains("cannot run"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn management_kill_speaks_the_protocol_with_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("m.sock");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let mut got = Vec::new();
            for answer in [
                "SUCCESS: common name 'alice' found, 1 client(s) killed",
                "ERROR: common name 'zed' not found",
            ] {
                let (s, _) = listener.accept().unwrap();
                let mut w = s.try_clone().unwrap();
                w.write_all(b"ENTER PASSWORD:").unwrap();
                let mut r = BufReader::new(s);
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                got.push(l.clone());
                w.write_all(b"SUCCESS: password is correct\r\n>INFO:OpenVPN Management Interface Version 5\r\n").unwrap();
                l.clear();
                r.read_line(&mut l).unwrap();
                got.push(l.clone());
                w.write_all(format!("{answer}\r\n").as_bytes()).unwrap();
            }
            got
        });
        let c = cfg(dir.path());
        std::fs::write(
            &c.config,
            format!("management {} unix pw\n", sock.display()),
        )
        .unwrap();
        assert_eq!(
            disconnect_client(&c, "alice").unwrap().0,
            "client alice disconnected"
        );
        let e = disconnect_client(&c, "zed").unwrap_err();
        assert!(e.contains("is not connected"), "{e}");
        let got = server.join().unwrap();
        assert_eq!(
            got,
            vec!["s3cret\n", "kill alice\n", "s3cret\n", "kill zed\n"]
        );
    }

    #[test]
    fn logs_come_from_the_log_file_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        let lines: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(dir.path().join("vpn.log"), lines).unwrap();
        std::fs::write(&c.config, "log-append vpn.log\n").unwrap();
        let (_, d) = server_info(&c, 3).unwrap();
        let Some(ActionDetail::OvpnServer(d)) = d else {
            panic!()
        };
        assert_eq!(d.logs, vec!["line 48", "line 49", "line 50"]);
        assert!(d.log_source.ends_with("vpn.log"));
    }
}
