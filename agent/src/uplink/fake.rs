//! Test-only fake collector: a CA made with rcgen, a TLS 1.3 listener on 127.0.0.1 whose chain
//! is [server leaf, CA] and whose client certificates are optional, speaking the shared protocol
//! (enrollment and ingest), driven by a [`Script`] of behaviours and recording what it [`Seen`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CertifiedIssuer, DnType,
    DnValue, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use routerstats_shared::io::{read_frame, read_message, write_message};
use routerstats_shared::message::{
    Ack, EnrollRequest, EnrollResponse, ErrorCode, ErrorMsg, Hello, HelloAck, RenewResponse,
};
use routerstats_shared::token::EnrollToken;
use routerstats_shared::{patch, MessageKind};
use routerstats_shared::{Message, MAX_FRAME_LEN};
use rustls::pki_types::PrivateKeyDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::tls::{cert_fingerprint, cert_validity, provider, sha256};
use super::unix_now;

/// A CA of the fake collector.
pub struct FakeCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn set_validity(p: &mut CertificateParams, from: i64, to: i64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    p.not_before = epoch + Duration::from_secs(from.max(0) as u64);
    p.not_after = epoch + Duration::from_secs(to.max(0) as u64);
}

impl FakeCa {
    pub fn new() -> Self {
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, "fake routerstats CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = unix_now();
        set_validity(&mut p, now - 86_400, now + 3650 * 86_400);
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        FakeCa { issuer }
    }

    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn ca_hash(&self) -> [u8; 32] {
        sha256(self.issuer.der())
    }

    /// TLS 1.3 server config: chain [leaf for 127.0.0.1/localhost/::1, CA], optional client certs.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "fake collector");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = unix_now();
        set_validity(&mut p, now - 86_400, now + 700 * 86_400);
        let leaf = p.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![leaf.der().clone(), self.issuer.der().clone()];
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .unwrap();
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap();
        Arc::new(config)
    }

    /// Signs a CSR as a client certificate valid from `now + from_offset` for `lifetime` seconds.
    pub fn sign_csr(&self, csr_pem: &str, from_offset: i64, lifetime: i64) -> String {
        self.sign_csr_with_cn(csr_pem, from_offset, lifetime).0
    }

    fn sign_csr_with_cn(&self, csr_pem: &str, from_offset: i64, lifetime: i64) -> (String, String) {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
        let cn = match csr.params.distinguished_name.get(&DnType::CommonName) {
            Some(DnValue::Utf8String(s)) => s.clone(),
            other => format!("{other:?}"),
        };
        let from = unix_now() + from_offset;
        set_validity(&mut csr.params, from, from + lifetime);
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (csr.signed_by(&self.issuer).unwrap().pem(), cn)
    }
}

/// How the fake collector behaves.
#[derive(Debug, Clone)]
pub struct Script {
    /// Answer enrollment with this error instead of a certificate.
    pub enroll_error: Option<ErrorCode>,
    /// Answer enrollment with another CA's certificate as `ca_pem`.
    pub answer_with_other_ca: bool,
    /// Issued certificates start at now + this many seconds...
    pub cert_from_offset: i64,
    /// ...and last this long.
    pub cert_lifetime: i64,
    /// Ack every report (except on a connection being dropped by `drop_first_conn_after`).
    pub ack: bool,
    /// Close the first ingest connection, unacked, after receiving this many reports on it.
    pub drop_first_conn_after: Option<usize>,
    /// HelloAck says renew_now until one renewal happened.
    pub renew_now: bool,
    /// Close the connection right after answering a RenewRequest.
    pub close_after_renew: bool,
    /// Answer every Hello with Error{Revoked}.
    pub revoked: bool,
    /// Answer a `ReportPatch` with `Error{Protocol}`, as a collector without patches would.
    pub refuse_patches: bool,
    /// Answer every Hello with this error (e.g. `Unavailable` with a retry hint).
    pub hello_error: Option<ErrorMsg>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            enroll_error: None,
            answer_with_other_ca: false,
            cert_from_offset: -60,
            cert_lifetime: 90 * 86_400,
            ack: true,
            drop_first_conn_after: None,
            renew_now: false,
            close_after_renew: false,
            revoked: false,
            refuse_patches: false,
            hello_error: None,
        }
    }
}

/// One report as the fake collector received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenReport {
    /// Index of the ingest connection it arrived on.
    pub conn: usize,
    pub boot_id: [u8; 16],
    pub seq: u64,
    pub dropped: u64,
    pub timestamp_ms: u64,
    pub hostname: String,
}

/// What the fake collector saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub enroll_requests: Vec<EnrollRequest>,
    pub enrolled_cns: Vec<String>,
    pub hellos: Vec<Hello>,
    /// Client certificate fingerprint of each ingest connection, in order.
    pub conn_fingerprints: Vec<String>,
    pub reports: Vec<SeenReport>,
    /// How many of `reports` came as a `ReportPatch`.
    pub patches: usize,
    /// (connection, boot id, seq) of every ack sent.
    pub acked: Vec<(usize, [u8; 16], u64)>,
    pub renew_cns: Vec<String>,
    pub renewed_certs: Vec<String>,
}

/// A running fake collector on 127.0.0.1.
pub struct FakeCollector {
    pub addr: SocketAddr,
    pub ca: Arc<FakeCa>,
    pub script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Drop for FakeCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeCollector {
    pub async fn start(script: Script) -> Self {
        let ca = Arc::new(FakeCa::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(ca.server_config());
        let script = Arc::new(Mutex::new(script));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ca2, script2, seen2) = (ca.clone(), script.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, ca, script, seen) = (
                    acceptor.clone(),
                    ca2.clone(),
                    script2.clone(),
                    seen2.clone(),
                );
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        handle(tls, ca, script, seen).await;
                    }
                });
            }
        });
        FakeCollector {
            addr,
            ca,
            script,
            seen,
            task,
        }
    }

    pub fn collector(&self) -> String {
        self.addr.to_string()
    }

    pub fn token(&self) -> EnrollToken {
        EnrollToken {
            id: "abcd1234".to_string(),
            secret: "0123456789abcdefghijklmnopqrstuv".to_string(),
            ca_hash: self.ca.ca_hash(),
        }
    }

    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    pub fn set_script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap());
    }

    /// Polls until `cond` holds; panics (failing the test) after 20 s.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if cond(&self.seen()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}: {:?}", self.seen());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

type Stream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

async fn handle(
    mut tls: Stream,
    ca: Arc<FakeCa>,
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Seen>>,
) {
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let sc = script.lock().unwrap().clone();
    let Ok(first) = read_message(&mut tls, MAX_FRAME_LEN).await else {
        return;
    };
    let Some(peer) = peer else {
        let Message::EnrollRequest(req) = first else {
            let _ = write_message(&mut tls, &err(ErrorCode::Protocol, "enroll only")).await;
            return;
        };
        seen.lock().unwrap().enroll_requests.push(req.clone());
        let reply = match sc.enroll_error {
            Some(code) => err(code, "scripted refusal"),
            None => {
                let (cert_pem, cn) =
                    ca.sign_csr_with_cn(&req.csr_pem, sc.cert_from_offset, sc.cert_lifetime);
                seen.lock().unwrap().enrolled_cns.push(cn.clone());
                let ca_pem = if sc.answer_with_other_ca {
                    FakeCa::new().ca_pem()
                } else {
                    ca.ca_pem()
                };
                Message::EnrollResponse(EnrollResponse {
                    router_id: 1,
                    router_name: cn,
                    cert_pem,
                    ca_pem,
                })
            }
        };
        let _ = write_message(&mut tls, &reply).await;
        return;
    };

    let Message::Hello(hello) = first else { return };
    let conn = {
        let mut s = seen.lock().unwrap();
        s.hellos.push(hello);
        s.conn_fingerprints.push(cert_fingerprint(&peer));
        s.conn_fingerprints.len() - 1
    };
    if sc.revoked {
        let _ = write_message(&mut tls, &err(ErrorCode::Revoked, "router revoked")).await;
        return;
    }
    if let Some(e) = sc.hello_error.clone() {
        let _ = write_message(&mut tls, &Message::Error(e)).await;
        return;
    }
    let renewed_before = !seen.lock().unwrap().renewed_certs.is_empty();
    let ack = HelloAck {
        router_id: 1,
        router_name: "ap-kitchen".to_string(),
        server_time: unix_now() as u64,
        cert_not_after: cert_validity(&peer)
            .map(|v| v.not_after as u64)
            .unwrap_or(0),
        renew_now: sc.renew_now && !renewed_before,
    };
    if write_message(&mut tls, &Message::HelloAck(ack))
        .await
        .is_err()
    {
        return;
    }
    let dropping = if conn == 0 {
        sc.drop_first_conn_after
    } else {
        None
    };
    let mut received = 0usize;
    let mut prev: Option<Vec<u8>> = None;
    loop {
        let Ok((mut kind, mut payload)) = read_frame(&mut tls, MAX_FRAME_LEN).await else {
            return;
        };
        if kind == MessageKind::ReportPatch && script.lock().unwrap().refuse_patches {
            let _ = write_message(&mut tls, &err(ErrorCode::Protocol, "unknown kind 10")).await;
            return;
        }
        if kind == MessageKind::ReportPatch {
            let Some(Ok(full)) = prev
                .as_deref()
                .map(|b| patch::apply(b, &payload, MAX_FRAME_LEN))
            else {
                let _ = write_message(&mut tls, &err(ErrorCode::Protocol, "bad patch")).await;
                return;
            };
            seen.lock().unwrap().patches += 1;
            (kind, payload) = (MessageKind::Report, full);
        }
        if kind == MessageKind::Report {
            prev = Some(payload.clone());
        }
        let Ok(msg) = Message::decode_payload(kind, &payload) else {
            return;
        };
        match msg {
            Message::Report(r) => {
                seen.lock().unwrap().reports.push(SeenReport {
                    conn,
                    boot_id: r.boot_id,
                    seq: r.seq,
                    dropped: r.dropped_reports,
                    timestamp_ms: r.timestamp_ms,
                    hostname: r.router.hostname.clone(),
                });
                received += 1;
                if let Some(n) = dropping {
                    if received >= n {
                        return;
                    }
                    continue;
                }
                if script.lock().unwrap().ack {
                    let a = Ack {
                        boot_id: r.boot_id,
                        seq: r.seq,
                    };
                    if write_message(&mut tls, &Message::Ack(a)).await.is_err() {
                        return;
                    }
                    seen.lock().unwrap().acked.push((conn, r.boot_id, r.seq));
                }
            }
            Message::RenewRequest(req) => {
                let (cert_pem, cn) =
                    ca.sign_csr_with_cn(&req.csr_pem, sc.cert_from_offset.max(-60), 90 * 86_400);
                {
                    let mut s = seen.lock().unwrap();
                    s.renew_cns.push(cn);
                    s.renewed_certs.push(cert_pem.clone());
                }
                let reply = Message::RenewResponse(RenewResponse { cert_pem });
                if write_message(&mut tls, &reply).await.is_err() || sc.close_after_renew {
                    return;
                }
            }
            _ => {
                let _ = write_message(&mut tls, &err(ErrorCode::Protocol, "unexpected")).await;
                return;
            }
        }
    }
}

fn err(code: ErrorCode, message: &str) -> Message {
    Message::Error(ErrorMsg {
        code,
        message: message.to_string(),
    })
}
