//! Enrollment: turn a one-time token into the agent's identity files, and load them again.
//!
//! The agent generates an ECDSA P-256 key on the router (it never leaves the router), sends a
//! CSR with the whole token to the collector over a connection verified only by the token's CA
//! hash, checks the returned CA against that hash and the returned certificate against the CA
//! and the key, and writes into the config directory:
//! `key.pem` (0600), `cert.pem`, `ca.pem` and, last, `enrollment.json`
//! `{"router_id":..,"name":"..","collector":"host:port"}`. Every file is written atomically.
//!
//! Re-running is safe: when the directory already holds a complete identity whose certificate
//! is currently valid, for the same collector address and for the CA the token names, `enroll`
//! reports "already enrolled" and succeeds without contacting the collector (the token stays
//! unused). `force` enrolls anew regardless. Any other existing identity (different collector,
//! different CA, expired or broken files) is replaced by a fresh enrollment.
//!
//! Certificate renewal ([`install_renewed`]) writes `key.pem.new` and `cert.pem.new` first and
//! then renames them into place; [`load_identity`] completes an interrupted renewal, so a power
//! cut never leaves a key that does not match its certificate.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use routerstats_shared::io::{read_reply, write_request, IoError};
use routerstats_shared::message::{EnrollRequest, ErrorCode};
use routerstats_shared::token::{hex, EnrollToken};
use routerstats_shared::{Message, MAX_FRAME_LEN};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::json::{self, Value};

use super::tls::{self, CollectorAddr, PinOutcome, TlsError, Validity};
use super::{log, unix_now, write_atomic};

pub const KEY_FILE: &str = "key.pem";
pub const CERT_FILE: &str = "cert.pem";
pub const CA_FILE: &str = "ca.pem";
pub const ENROLLMENT_FILE: &str = "enrollment.json";
const KEY_NEW: &str = "key.pem.new";
const CERT_NEW: &str = "cert.pem.new";

/// What `routerstats-agent enroll` was asked to do.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// `host:port` of the collector's ingest listener.
    pub collector: String,
    pub token: EnrollToken,
    /// Requested router name; the collector uses the token's name when absent.
    pub name: Option<String>,
    pub hostname: String,
    pub config_dir: PathBuf,
    /// Bound on the whole exchange (connect, handshake, request, response).
    pub timeout: Duration,
    /// Enroll again even when a valid identity for this collector is already present.
    pub force: bool,
}

/// The outcome of [`enroll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub router_id: i64,
    pub name: String,
    pub collector: String,
    /// Unix time the certificate expires.
    pub cert_not_after: i64,
    /// True when a valid identity was already present and the token was not used.
    pub already_enrolled: bool,
}

/// Why enrollment (or loading the identity) failed. Each message is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment token is not valid for this collector")]
    InvalidToken,
    #[error("the enrollment token has expired; create a new one on the collector")]
    ExpiredToken,
    #[error("the enrollment token was already used; create a new one on the collector")]
    UsedToken,
    #[error("{}", tls::CA_MISMATCH)]
    CaMismatch,
    #[error("cannot reach the collector at {addr}: {err}")]
    Unreachable { addr: String, err: std::io::Error },
    #[error("no answer from the collector within {0:?}")]
    Timeout(Duration),
    #[error("TLS with the collector failed: {0}")]
    Tls(String),
    #[error("unexpected answer from the collector: {0}")]
    Protocol(String),
    #[error("the collector refused enrollment ({code:?}): {message}")]
    Rejected { code: ErrorCode, message: String },
    #[error("bad collector address: {0}")]
    Address(TlsError),
    #[error("cannot create a key or CSR: {0}")]
    Key(String),
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("not enrolled: {} is missing (run `routerstats-agent enroll` first)", .0.display())]
    NotEnrolled(PathBuf),
    #[error("{}: {reason}", path.display())]
    BadIdentity { path: PathBuf, reason: String },
}

/// The contents of `enrollment.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentFile {
    pub router_id: i64,
    pub name: String,
    pub collector: String,
}

impl EnrollmentFile {
    /// The file's text: a pretty JSON object with `router_id`, `name` and `collector`.
    pub fn to_json(&self) -> String {
        json::to_string_pretty(&Value::Object(vec![
            (
                "router_id".to_string(),
                Value::Number(self.router_id.to_string()),
            ),
            ("name".to_string(), Value::String(self.name.clone())),
            (
                "collector".to_string(),
                Value::String(self.collector.clone()),
            ),
        ]))
    }

    /// Reads the file's text. The three members must be there with their types (`router_id` an
    /// integer); other members are ignored.
    pub fn from_json(text: &str) -> Result<EnrollmentFile, String> {
        let doc = json::parse(text).map_err(|e| e.to_string())?;
        if !matches!(doc, Value::Object(_)) {
            return Err(format!("expected a JSON object, found {}", doc.kind()));
        }
        let member = |key: &str| doc.get(key).ok_or_else(|| format!("missing field `{key}`"));
        let string = |key: &str| match member(key)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("`{key}` is {}, expected a string", other.kind())),
        };
        let router_id = match member("router_id")? {
            Value::Number(n) => n
                .parse::<i64>()
                .map_err(|_| format!("`router_id` {n} is not a 64-bit integer"))?,
            other => {
                return Err(format!(
                    "`router_id` is {}, expected an integer",
                    other.kind()
                ))
            }
        };
        Ok(EnrollmentFile {
            router_id,
            name: string("name")?,
            collector: string("collector")?,
        })
    }
}

/// Everything the agent needs to connect with mutual TLS, read from the config directory.
#[derive(Clone)]
pub struct Identity {
    pub router_id: i64,
    pub name: String,
    /// The collector address recorded at enrollment.
    pub collector: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the CA certificate's DER.
    pub ca_hash: [u8; 32],
    pub ca_der: Vec<u8>,
    pub validity: Validity,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("Identity")
            .field("router_id", &self.router_id)
            .field("name", &self.name)
            .field("collector", &self.collector)
            .field("ca_hash", &hex(&self.ca_hash))
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EnrollError + '_ {
    move |err| EnrollError::Io {
        path: path.to_path_buf(),
        err,
    }
}

fn read_file(path: &Path) -> Result<String, EnrollError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// Finishes a renewal interrupted between writing `*.pem.new` and renaming them (see module doc).
fn finish_pending_renewal(dir: &Path) -> Result<(), EnrollError> {
    let (key_new, cert_new) = (dir.join(KEY_NEW), dir.join(CERT_NEW));
    let (has_key, has_cert) = (key_new.exists(), cert_new.exists());
    if has_key && has_cert {
        std::fs::rename(&key_new, dir.join(KEY_FILE)).map_err(io_err(&key_new))?;
    } else if has_key {
        // The certificate never arrived on disk: the renewal did not happen.
        std::fs::remove_file(&key_new).map_err(io_err(&key_new))?;
    }
    if has_cert {
        std::fs::rename(&cert_new, dir.join(CERT_FILE)).map_err(io_err(&cert_new))?;
        log!(
            "info",
            "completed an interrupted certificate renewal in {}",
            dir.display()
        );
    }
    Ok(())
}

/// Reads and checks the identity in `config_dir`: enrollment.json, ca.pem, cert.pem and key.pem
/// must all be present, parse, and the key must match the certificate. Completes an
/// interrupted renewal first.
pub fn load_identity(config_dir: &Path) -> Result<Identity, EnrollError> {
    let enrollment_path = config_dir.join(ENROLLMENT_FILE);
    if !enrollment_path.exists() {
        return Err(EnrollError::NotEnrolled(enrollment_path));
    }
    finish_pending_renewal(config_dir)?;
    // Key and directory no more open than enrollment made them (a copy or restore may not be).
    for (p, mode) in [
        (config_dir.to_path_buf(), 0o700),
        (config_dir.join(KEY_FILE), 0o600),
    ] {
        super::tighten_mode(&p, mode).map_err(io_err(&p))?;
    }
    let meta = EnrollmentFile::from_json(&read_file(&enrollment_path)?).map_err(|reason| {
        EnrollError::BadIdentity {
            path: enrollment_path.clone(),
            reason,
        }
    })?;
    let bad = |file: &str, e: TlsError| EnrollError::BadIdentity {
        path: config_dir.join(file),
        reason: e.to_string(),
    };
    let ca_pem = read_file(&config_dir.join(CA_FILE))?;
    let cert_pem = read_file(&config_dir.join(CERT_FILE))?;
    let key_pem = read_file(&config_dir.join(KEY_FILE))?;
    let ca_der = tls::parse_certs_pem(&ca_pem, "ca.pem")
        .map_err(|e| bad(CA_FILE, e))?
        .into_iter()
        .next()
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let leaf = tls::parse_certs_pem(&cert_pem, "cert.pem").map_err(|e| bad(CERT_FILE, e))?;
    let validity = leaf
        .first()
        .and_then(|c| tls::cert_validity(c.as_ref()))
        .ok_or_else(|| EnrollError::BadIdentity {
            path: config_dir.join(CERT_FILE),
            reason: "cannot read the certificate's validity".to_string(),
        })?;
    tls::check_key_matches(&cert_pem, &key_pem).map_err(|e| bad(KEY_FILE, e))?;
    Ok(Identity {
        router_id: meta.router_id,
        name: meta.name,
        collector: meta.collector,
        ca_hash: tls::sha256(&ca_der),
        ca_der,
        ca_pem,
        cert_pem,
        key_pem,
        validity,
    })
}

/// A fresh ECDSA P-256 key (PEM) and a CSR for it with `CN = common_name` (PEM).
pub fn make_key_and_csr(common_name: &str) -> Result<(String, String), EnrollError> {
    let key = |e: super::csr::CsrError| EnrollError::Key(e.to_string());
    let pkcs8 = super::csr::generate_p256_pkcs8().map_err(key)?;
    let csr = super::csr::csr_der(&pkcs8, common_name).map_err(key)?;
    Ok((
        super::csr::pem("PRIVATE KEY", &pkcs8),
        super::csr::pem("CERTIFICATE REQUEST", &csr),
    ))
}

/// Atomically replaces key.pem and cert.pem with a renewed pair (see module doc), after checking
/// the certificate matches the key and chains to the CA.
pub fn install_renewed(
    config_dir: &Path,
    ca_der: &[u8],
    key_pem: &str,
    cert_pem: &str,
) -> Result<Validity, EnrollError> {
    let bad = |e: TlsError| EnrollError::BadIdentity {
        path: PathBuf::from("renewed certificate"),
        reason: e.to_string(),
    };
    tls::check_key_matches(cert_pem, key_pem).map_err(bad)?;
    tls::check_client_cert(ca_der, cert_pem).map_err(bad)?;
    let validity = tls::parse_certs_pem(cert_pem, "renewed certificate")
        .map_err(bad)?
        .first()
        .and_then(|c| tls::cert_validity(c.as_ref()))
        .ok_or_else(|| {
            bad(TlsError::Certificate(
                "cannot read its validity".to_string(),
            ))
        })?;
    let (key_new, cert_new) = (config_dir.join(KEY_NEW), config_dir.join(CERT_NEW));
    write_atomic(&key_new, key_pem.as_bytes(), 0o600).map_err(io_err(&key_new))?;
    write_atomic(&cert_new, cert_pem.as_bytes(), 0o644).map_err(io_err(&cert_new))?;
    std::fs::rename(&key_new, config_dir.join(KEY_FILE)).map_err(io_err(&key_new))?;
    std::fs::rename(&cert_new, config_dir.join(CERT_FILE)).map_err(io_err(&cert_new))?;
    Ok(validity)
}

/// Whether `config_dir` already holds a usable identity for this collector and token CA.
fn existing_enrollment(opts: &EnrollOptions) -> Option<Enrollment> {
    let id = load_identity(&opts.config_dir).ok()?;
    let usable = id.collector.trim() == opts.collector.trim()
        && id.ca_hash == opts.token.ca_hash
        && id.validity.is_valid_at(unix_now());
    usable.then_some(Enrollment {
        router_id: id.router_id,
        name: id.name,
        collector: id.collector,
        cert_not_after: id.validity.not_after,
        already_enrolled: true,
    })
}

/// Enrolls this router with the collector (see the module doc for what is checked and written).
pub async fn enroll(opts: EnrollOptions) -> Result<Enrollment, EnrollError> {
    if !opts.force {
        if let Some(existing) = existing_enrollment(&opts) {
            log!(
                "info",
                "already enrolled with {} as {:?} (router id {}); use --force to enroll again",
                existing.collector,
                existing.name,
                existing.router_id
            );
            return Ok(existing);
        }
    }
    let addr = CollectorAddr::parse(&opts.collector).map_err(EnrollError::Address)?;
    let common_name = opts.name.clone().unwrap_or_else(|| opts.hostname.clone());
    let (key_pem, csr_pem) = make_key_and_csr(&common_name)?;
    let request = EnrollRequest {
        token: opts.token.to_string(),
        csr_pem,
        name: opts.name.clone(),
        hostname: opts.hostname.clone(),
    };
    let response = tokio::time::timeout(opts.timeout, exchange(&addr, &opts.token, request))
        .await
        .map_err(|_| EnrollError::Timeout(opts.timeout))??;

    // The CA the collector hands out must be the one the token names.
    let ca_der = tls::parse_certs_pem(&response.ca_pem, "CA from the collector")
        .map_err(|e| EnrollError::Protocol(e.to_string()))?
        .into_iter()
        .next()
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    if tls::sha256(&ca_der) != opts.token.ca_hash {
        return Err(EnrollError::CaMismatch);
    }
    tls::check_key_matches(&response.cert_pem, &key_pem).map_err(|e| {
        EnrollError::Protocol(format!("issued certificate is not for our key: {e}"))
    })?;
    tls::check_client_cert(&ca_der, &response.cert_pem)
        .map_err(|e| EnrollError::Protocol(format!("issued certificate does not verify: {e}")))?;
    let validity = tls::parse_certs_pem(&response.cert_pem, "certificate")
        .ok()
        .and_then(|c| c.first().and_then(|c| tls::cert_validity(c.as_ref())))
        .ok_or_else(|| {
            EnrollError::Protocol("cannot read the certificate's validity".to_string())
        })?;

    let dir = &opts.config_dir;
    {
        use std::os::unix::fs::DirBuilderExt;
        // 0700 whatever the umask: the directory holds the router's private key.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        super::tighten_mode(dir, 0o700).map_err(io_err(dir))?;
    }
    // A stale enrollment.json must not pair with the new files if we stop halfway.
    let enrollment_path = dir.join(ENROLLMENT_FILE);
    match std::fs::remove_file(&enrollment_path) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_err(&enrollment_path)(e)),
        _ => {}
    }
    for stale in [KEY_NEW, CERT_NEW] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let meta = EnrollmentFile {
        router_id: response.router_id,
        name: response.router_name.clone(),
        collector: opts.collector.trim().to_string(),
    };
    let json = meta.to_json();
    for (file, data, mode) in [
        (KEY_FILE, key_pem.as_bytes(), 0o600),
        (CERT_FILE, response.cert_pem.as_bytes(), 0o644),
        (CA_FILE, response.ca_pem.as_bytes(), 0o644),
        (ENROLLMENT_FILE, json.as_bytes(), 0o644),
    ] {
        let path = dir.join(file);
        write_atomic(&path, data, mode).map_err(io_err(&path))?;
    }
    log!(
        "info",
        "enrolled with {} as {:?} (router id {})",
        meta.collector,
        meta.name,
        meta.router_id
    );
    Ok(Enrollment {
        router_id: meta.router_id,
        name: meta.name,
        collector: meta.collector,
        cert_not_after: validity.not_after,
        already_enrolled: false,
    })
}

/// Connect, verify the collector by the token's CA hash, send the request, read the answer.
async fn exchange(
    addr: &CollectorAddr,
    token: &EnrollToken,
    request: EnrollRequest,
) -> Result<routerstats_shared::message::EnrollResponse, EnrollError> {
    let (config, pin) =
        tls::enroll_client_config(token.ca_hash).map_err(|e| EnrollError::Tls(e.to_string()))?;
    let tcp = TcpStream::connect((addr.host.as_str(), addr.port))
        .await
        .map_err(|err| EnrollError::Unreachable {
            addr: addr.to_string(),
            err,
        })?;
    let _ = tcp.set_nodelay(true);
    let mut stream = TlsConnector::from(config)
        .connect(addr.server_name.clone(), tcp)
        .await
        .map_err(|e| match pin.outcome() {
            PinOutcome::Mismatch => EnrollError::CaMismatch,
            _ => EnrollError::Tls(e.to_string()),
        })?;
    let proto = |e: IoError| EnrollError::Protocol(e.to_string());
    write_request(&mut stream, &Message::EnrollRequest(request))
        .await
        .map_err(proto)?;
    match read_reply(&mut stream, MAX_FRAME_LEN)
        .await
        .map_err(proto)?
    {
        Message::EnrollResponse(r) => Ok(r),
        Message::Error(e) => Err(match e.code {
            ErrorCode::InvalidToken => EnrollError::InvalidToken,
            ErrorCode::ExpiredToken => EnrollError::ExpiredToken,
            ErrorCode::UsedToken => EnrollError::UsedToken,
            code => EnrollError::Rejected {
                code,
                message: e.message,
            },
        }),
        other => Err(EnrollError::Protocol(format!(
            "{:?} instead of an enrollment response",
            other.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::fake::{FakeCollector, Script};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn enrollment_file_is_what_serde_json_wrote_and_reads_back() {
        let meta = EnrollmentFile {
            router_id: -7,
            name: "ap \"kitchen\"\n".into(),
            collector: "[::1]:7443".into(),
        };
        let text = meta.to_json();
        // What the agent wrote with serde_json: its derived Serialize, fields in this order.
        #[derive(serde::Serialize)]
        struct Old<'a> {
            router_id: i64,
            name: &'a str,
            collector: &'a str,
        }
        let by_serde = Old {
            router_id: -7,
            name: &meta.name,
            collector: &meta.collector,
        };
        assert_eq!(text, serde_json::to_string_pretty(&by_serde).unwrap());
        assert_eq!(EnrollmentFile::from_json(&text), Ok(meta.clone()));
        // Members in any order, unknown ones ignored, as serde's derived reader took them.
        let other =
            r#"{"collector":"[::1]:7443","extra":[1,{}],"name":"ap \"kitchen\"\n","router_id":-7}"#;
        assert_eq!(EnrollmentFile::from_json(other), Ok(meta));
    }

    #[test]
    fn bad_enrollment_files_are_errors() {
        for (text, want) in [
            ("", "EOF while parsing a value at line 1 column 0"),
            ("[]", "expected a JSON object, found an array"),
            (r#"{"router_id":1,"name":"a"}"#, "missing field `collector`"),
            (
                r#"{"router_id":"1","name":"a","collector":"c"}"#,
                "`router_id` is a string, expected an integer",
            ),
            (
                r#"{"router_id":1.5,"name":"a","collector":"c"}"#,
                "`router_id` 1.5 is not a 64-bit integer",
            ),
            (
                r#"{"router_id":9223372036854775808,"name":"a","collector":"c"}"#,
                "`router_id` 9223372036854775808 is not a 64-bit integer",
            ),
            (
                r#"{"router_id":1,"name":null,"collector":"c"}"#,
                "`name` is null, expected a string",
            ),
            (
                r#"{"router_id":1,"name":"a","collector":"c"}x"#,
                "trailing characters at line 1 column 43",
            ),
        ] {
            assert_eq!(
                EnrollmentFile::from_json(text),
                Err(want.to_string()),
                "{text}"
            );
        }
    }

    fn options(fake: &FakeCollector, dir: &Path) -> EnrollOptions {
        EnrollOptions {
            collector: fake.collector(),
            token: fake.token(),
            name: Some("ap-kitchen".to_string()),
            hostname: "OpenWrt".to_string(),
            config_dir: dir.to_path_buf(),
            timeout: Duration::from_secs(10),
            force: false,
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn config_dir_is_private_and_loose_modes_are_fixed_at_load() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("etc/routerstats");
        enroll(options(&fake, &cfg)).await.unwrap();
        assert_eq!(mode(&cfg), 0o700, "config dir must not follow the umask");
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(cfg.join(KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        load_identity(&cfg).unwrap();
        assert_eq!(mode(&cfg), 0o700);
        assert_eq!(mode(&cfg.join(KEY_FILE)), 0o600);
    }

    #[tokio::test]
    async fn enrollment_writes_identity_files() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("etc/routerstats");
        let e = enroll(options(&fake, &cfg)).await.unwrap();
        assert!(!e.already_enrolled);
        assert_eq!((e.router_id, e.name.as_str()), (1, "ap-kitchen"));
        assert_eq!(mode(&cfg.join(KEY_FILE)), 0o600);
        for f in [CERT_FILE, CA_FILE, ENROLLMENT_FILE] {
            assert!(cfg.join(f).is_file(), "{f} missing");
        }
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(cfg.join(ENROLLMENT_FILE)).unwrap())
                .unwrap();
        assert_eq!(meta["router_id"], 1);
        assert_eq!(meta["name"], "ap-kitchen");
        assert_eq!(meta["collector"], fake.collector());

        // The request carried the whole token and a CSR with the requested name.
        let seen = fake.seen();
        let req = seen.enroll_requests.first().unwrap();
        assert_eq!(req.token, fake.token().to_string());
        assert_eq!(req.hostname, "OpenWrt");
        assert!(req.csr_pem.contains("BEGIN CERTIFICATE REQUEST"));
        assert_eq!(seen.enrolled_cns, vec!["ap-kitchen".to_string()]);
        drop(seen);

        let id = load_identity(&cfg).unwrap();
        assert_eq!(id.ca_hash, fake.ca.ca_hash());
        assert!(id.validity.is_valid_at(unix_now()));
        assert!(!format!("{id:?}").contains("PRIVATE KEY"));
    }

    #[tokio::test]
    async fn rerun_is_a_no_op_unless_forced() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let first = enroll(options(&fake, dir.path())).await.unwrap();
        let cert_before = std::fs::read(dir.path().join(CERT_FILE)).unwrap();
        let second = enroll(options(&fake, dir.path())).await.unwrap();
        assert!(second.already_enrolled);
        assert_eq!(second.router_id, first.router_id);
        assert_eq!(
            fake.seen().enroll_requests.len(),
            1,
            "token must not be used again"
        );
        assert_eq!(
            std::fs::read(dir.path().join(CERT_FILE)).unwrap(),
            cert_before
        );

        let mut forced = options(&fake, dir.path());
        forced.force = true;
        assert!(!enroll(forced).await.unwrap().already_enrolled);
        assert_eq!(fake.seen().enroll_requests.len(), 2);
        assert_ne!(
            std::fs::read(dir.path().join(CERT_FILE)).unwrap(),
            cert_before
        );

        // Another collector address is not "already enrolled" either.
        let other_collector = FakeCollector::start(Script::default()).await;
        let mut other = options(&other_collector, dir.path());
        other.name = None;
        let e = enroll(other).await.unwrap();
        assert!(!e.already_enrolled);
        assert_eq!(
            other_collector.seen().enrolled_cns,
            vec!["OpenWrt".to_string()]
        );
    }

    #[tokio::test]
    async fn wrong_ca_hash_is_refused() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(&fake, dir.path());
        opts.token.ca_hash = [0x42; 32];
        let err = enroll(opts).await.unwrap_err();
        assert!(matches!(err, EnrollError::CaMismatch), "{err}");
        assert_eq!(
            err.to_string(),
            "collector's CA does not match the token's CA hash"
        );
        assert!(
            fake.seen().enroll_requests.is_empty(),
            "token must not reach an unverified server"
        );
        assert!(!dir.path().join(KEY_FILE).exists());
    }

    #[tokio::test]
    async fn response_with_another_ca_is_refused() {
        let fake = FakeCollector::start(Script {
            answer_with_other_ca: true,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let err = enroll(options(&fake, dir.path())).await.unwrap_err();
        assert!(matches!(err, EnrollError::CaMismatch), "{err}");
        assert!(!dir.path().join(ENROLLMENT_FILE).exists());
    }

    #[tokio::test]
    async fn collector_errors_map_to_variants() {
        for (code, check) in [
            (
                ErrorCode::UsedToken,
                (|e: &EnrollError| matches!(e, EnrollError::UsedToken)) as fn(&EnrollError) -> bool,
            ),
            (ErrorCode::ExpiredToken, |e| {
                matches!(e, EnrollError::ExpiredToken)
            }),
            (ErrorCode::InvalidToken, |e| {
                matches!(e, EnrollError::InvalidToken)
            }),
            (ErrorCode::BadCsr, |e| {
                matches!(
                    e,
                    EnrollError::Rejected {
                        code: ErrorCode::BadCsr,
                        ..
                    }
                )
            }),
        ] {
            let fake = FakeCollector::start(Script {
                enroll_error: Some(code),
                ..Script::default()
            })
            .await;
            let dir = tempfile::tempdir().unwrap();
            let err = enroll(options(&fake, dir.path())).await.unwrap_err();
            assert!(check(&err), "{code:?} gave {err}");
            assert!(!err.to_string().contains('\n'));
            assert!(!dir.path().join(ENROLLMENT_FILE).exists());
        }
    }

    #[tokio::test]
    async fn unreachable_collector() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(&fake, dir.path());
        opts.collector = format!("127.0.0.1:{port}");
        let err = enroll(opts).await.unwrap_err();
        match &err {
            EnrollError::Unreachable { addr, .. } => assert_eq!(addr, &format!("127.0.0.1:{port}")),
            other => panic!("expected Unreachable, got {other}"),
        }
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                conns.push(s);
            }
        });
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(&fake, dir.path());
        opts.collector = format!("127.0.0.1:{port}");
        opts.timeout = Duration::from_millis(300);
        let err = enroll(opts).await.unwrap_err();
        assert!(matches!(err, EnrollError::Timeout(_)), "{err}");
        hold.abort();
    }

    #[test]
    fn load_identity_without_enrollment_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_identity(dir.path()).unwrap_err();
        assert!(matches!(err, EnrollError::NotEnrolled(_)), "{err}");
        std::fs::write(dir.path().join(ENROLLMENT_FILE), "{not json").unwrap();
        assert!(matches!(
            load_identity(dir.path()),
            Err(EnrollError::BadIdentity { .. })
        ));
    }

    #[tokio::test]
    async fn interrupted_renewal_is_completed_or_discarded() {
        let fake = FakeCollector::start(Script::default()).await;
        let dir = tempfile::tempdir().unwrap();
        enroll(options(&fake, dir.path())).await.unwrap();
        let id = load_identity(dir.path()).unwrap();
        let (key_pem, csr_pem) = make_key_and_csr("ap-kitchen").unwrap();
        let cert_pem = fake.ca.sign_csr(&csr_pem, -60, 90 * 86_400);

        // Crash after both .new files were written: load finishes the renewal.
        write_atomic(&dir.path().join(KEY_NEW), key_pem.as_bytes(), 0o600).unwrap();
        write_atomic(&dir.path().join(CERT_NEW), cert_pem.as_bytes(), 0o644).unwrap();
        let renewed = load_identity(dir.path()).unwrap();
        assert_eq!(renewed.key_pem, key_pem);
        assert_eq!(renewed.cert_pem, cert_pem);
        assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);

        // Crash while writing the certificate: the orphan key is dropped, the old pair stays.
        let (orphan_key, _) = make_key_and_csr("ap-kitchen").unwrap();
        write_atomic(&dir.path().join(KEY_NEW), orphan_key.as_bytes(), 0o600).unwrap();
        let same = load_identity(dir.path()).unwrap();
        assert_eq!(same.key_pem, key_pem);
        assert!(!dir.path().join(KEY_NEW).exists());

        // A mismatching pair is refused by install_renewed and leaves the files alone.
        let (other_key, _) = make_key_and_csr("x").unwrap();
        assert!(install_renewed(dir.path(), &id.ca_der, &other_key, &cert_pem).is_err());
        assert_eq!(load_identity(dir.path()).unwrap().key_pem, key_pem);
    }
}
