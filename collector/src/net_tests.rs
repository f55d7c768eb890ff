//! Loopback tests of the whole collector: real TLS enrollment with a minimal client written here,
//! mutual-TLS Hello/Report/Ack, duplicates, bad frames, foreign certificates, revocation, the
//! connection cap, renewal, startup errors and the HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, DnType, KeyPair};
use routerstats_shared::frame::{FrameHeader, MessageKind, MAX_FRAME_LEN};
use routerstats_shared::io::{read_message, write_message, IoError};
use routerstats_shared::message::*;
use routerstats_shared::model::{Report, RouterFacts};
use routerstats_shared::token::EnrollToken;
use routerstats_shared::Message;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::clock::unix_now;
use crate::config::Config;
use crate::pki::tokens::{create_api_key, create_token, sha256, Role};
use crate::pki::{cert_facts, cert_fingerprint, pem_certs, CA_CERT_FILE};
use crate::store::{NewToken, Store};
use crate::{serve, ServeError, ServeHandle};

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    _dir: tempfile::TempDir,
    data: PathBuf,
    handle: ServeHandle,
}

/// A router identity after enrollment.
struct Identity {
    router_id: i64,
    name: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn test_config(data: PathBuf) -> Config {
    Config {
        data_dir: data,
        ingest_listen: loopback(),
        api_listen: loopback(),
        batch_latency: Duration::from_millis(5),
        ..Config::default()
    }
}

async fn start_with(f: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = test_config(data.clone());
    f(&mut config);
    let handle = serve(config).await.unwrap();
    Harness {
        _dir: dir,
        data,
        handle,
    }
}

async fn start() -> Harness {
    start_with(|_| {}).await
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn report(boot_id: [u8; 16], seq: u64) -> Report {
    Report {
        seq,
        boot_id,
        timestamp_ms: u64::try_from(crate::clock::now_ms()).unwrap(),
        router: RouterFacts {
            hostname: "ap-test".into(),
            agent_version: "0.1.0".into(),
            arch: "mipsel".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn csr(key: &KeyPair) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "router");
    params.serialize_request(key).unwrap().pem().unwrap()
}

impl Harness {
    fn addr(&self) -> SocketAddr {
        self.handle.ingest_addr()
    }

    fn store(&self) -> Store {
        Store::open(&self.data.join("routerstats.db")).unwrap()
    }

    fn roots(&self) -> RootCertStore {
        let pem = std::fs::read_to_string(self.data.join(CA_CERT_FILE)).unwrap();
        let mut roots = RootCertStore::empty();
        for c in pem_certs(&pem).unwrap() {
            roots.add(c).unwrap();
        }
        roots
    }

    fn token(&self, name: &str, uses: u32) -> EnrollToken {
        let store = self.store();
        create_token(
            &store,
            self.handle.ca_hash(),
            name,
            None,
            Duration::from_secs(3600),
            uses,
            unix_now(),
        )
        .unwrap()
        .token
    }

    fn client_config(&self, identity: Option<&Identity>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(self.roots());
        Arc::new(match identity {
            Some(id) => builder
                .with_client_auth_cert(
                    vec![id.cert_der.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.serialize_der())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    async fn connect_with(
        &self,
        config: Arc<ClientConfig>,
        name: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr()).await?;
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        tokio::time::timeout(WAIT, TlsConnector::from(config).connect(server_name, tcp))
            .await
            .map_err(|_| std::io::Error::other("handshake timeout"))?
    }

    async fn connect(&self, identity: Option<&Identity>) -> TlsStream<TcpStream> {
        self.connect_with(self.client_config(identity), "localhost")
            .await
            .unwrap()
    }

    async fn enroll_request(&self, req: EnrollRequest) -> Message {
        let mut s = self.connect(None).await;
        send(&mut s, &Message::EnrollRequest(req)).await;
        let reply = recv(&mut s).await.unwrap();
        expect_closed(&mut s).await;
        reply
    }

    async fn enroll(&self, name: &str) -> Identity {
        let token = self.token(name, 1);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let req = EnrollRequest {
            token: token.to_string(),
            csr_pem: csr(&key),
            name: None,
            hostname: "OpenWrt".into(),
        };
        match self.enroll_request(req).await {
            Message::EnrollResponse(r) => {
                let cert_der = pem_certs(&r.cert_pem).unwrap().remove(0);
                Identity {
                    router_id: r.router_id,
                    name: r.router_name,
                    cert_der,
                    key,
                }
            }
            other => panic!("enrollment failed: {other:?}"),
        }
    }

    /// An ingest connection after Hello/HelloAck.
    async fn ingest(&self, id: &Identity) -> (TlsStream<TcpStream>, HelloAck) {
        let mut s = self.connect(Some(id)).await;
        send(&mut s, &hello()).await;
        match recv(&mut s).await.unwrap() {
            Message::HelloAck(a) => (s, a),
            other => panic!("expected HelloAck, got {other:?}"),
        }
    }

    fn count_reports(&self, router_id: i64) -> i64 {
        self.store()
            .connection()
            .query_row(
                "SELECT count(*) FROM reports WHERE router_id = ?1",
                [router_id],
                |r| r.get(0),
            )
            .unwrap()
    }
}

fn hello() -> Message {
    Message::Hello(Hello {
        agent_version: "0.1.0".into(),
        hostname: "OpenWrt".into(),
        boot_id: [1; 16],
        spooled: 0,
    })
}

async fn send<S: AsyncWriteExt + Unpin>(s: &mut S, m: &Message) {
    write_message(s, m).await.unwrap();
}

async fn recv(s: &mut TlsStream<TcpStream>) -> Result<Message, IoError> {
    tokio::time::timeout(WAIT, read_message(s, MAX_FRAME_LEN))
        .await
        .expect("no answer within 10 s")
}

/// The server closed the connection (clean close or reset), with nothing more to read.
async fn expect_closed(s: &mut TlsStream<TcpStream>) {
    match recv(s).await {
        Err(IoError::Closed) | Err(IoError::Io(_)) => {}
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}

async fn expect_error(s: &mut TlsStream<TcpStream>, code: ErrorCode) -> String {
    match recv(s).await {
        Ok(Message::Error(e)) if e.code == code => {
            expect_closed(s).await;
            e.message
        }
        other => panic!("expected Error {code:?}, got {other:?}"),
    }
}

async fn send_report_expect_ack(s: &mut TlsStream<TcpStream>, boot: [u8; 16], seq: u64) {
    send(s, &Message::Report(Box::new(report(boot, seq)))).await;
    match recv(s).await.unwrap() {
        Message::Ack(a) => assert_eq!((a.boot_id, a.seq), (boot, seq)),
        other => panic!("expected Ack, got {other:?}"),
    }
}

#[tokio::test]
async fn enrollment_then_reports_acked_and_duplicates_stored_once() {
    let h = start().await;
    // The presented chain is [leaf, CA] and the CA matches the token's hash.
    let token = h.token("ap-kitchen", 1);
    let mut s = h.connect(None).await;
    let chain: Vec<Vec<u8>> = s
        .get_ref()
        .1
        .peer_certificates()
        .unwrap()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    assert_eq!(chain.len(), 2);
    assert!(chain
        .iter()
        .any(|c| <[u8; 32]>::from(Sha256::digest(c)) == token.ca_hash));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let req = EnrollRequest {
        token: token.to_string(),
        csr_pem: csr(&key),
        name: None,
        hostname: "OpenWrt".into(),
    };
    send(&mut s, &Message::EnrollRequest(req.clone())).await;
    let resp = match recv(&mut s).await.unwrap() {
        Message::EnrollResponse(r) => r,
        other => panic!("{other:?}"),
    };
    expect_closed(&mut s).await;
    assert_eq!(resp.router_name, "ap-kitchen");
    assert_eq!(
        resp.ca_pem,
        std::fs::read_to_string(h.data.join(CA_CERT_FILE)).unwrap()
    );
    let cert_der = pem_certs(&resp.cert_pem).unwrap().remove(0);
    let facts = cert_facts(&cert_der).unwrap();
    assert_eq!(facts.common_name.as_deref(), Some("ap-kitchen"));
    let row = h
        .store()
        .router_by_fingerprint(&cert_fingerprint(&cert_der))
        .unwrap()
        .unwrap();
    assert_eq!(row.id, resp.router_id);

    // The single-use token is spent.
    let again = h.enroll_request(req).await;
    assert!(
        matches!(
            again,
            Message::Error(ErrorMsg {
                code: ErrorCode::UsedToken,
                ..
            })
        ),
        "{again:?}"
    );

    let id = Identity {
        router_id: resp.router_id,
        name: resp.router_name,
        cert_der,
        key,
    };
    let (mut s, ack) = h.ingest(&id).await;
    assert_eq!(
        (ack.router_id, ack.router_name.as_str()),
        (id.router_id, id.name.as_str())
    );
    assert!(!ack.renew_now);
    assert_eq!(i64::try_from(ack.cert_not_after).unwrap(), facts.not_after);
    assert!(ack.server_time.abs_diff(u64::try_from(unix_now()).unwrap()) < 5);

    let boot = [7; 16];
    send_report_expect_ack(&mut s, boot, 1).await;
    send_report_expect_ack(&mut s, boot, 1).await; // duplicate: acked again
    send_report_expect_ack(&mut s, boot, 2).await;
    assert_eq!(h.count_reports(id.router_id), 2);

    // Pipelined reports are all acked, in order.
    for seq in 3..=20 {
        send(&mut s, &Message::Report(Box::new(report(boot, seq)))).await;
    }
    for seq in 3..=20 {
        match recv(&mut s).await.unwrap() {
            Message::Ack(a) => assert_eq!(a.seq, seq),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(h.count_reports(id.router_id), 20);

    // Shutdown tells the open connection.
    h.handle.shutdown().await;
    expect_error(&mut s, ErrorCode::Unavailable).await;
}

#[tokio::test]
async fn server_cert_verifies_for_ip_names_too() {
    let h = start_with(|c| c.server_names = vec!["stats.example.net".into()]).await;
    for name in ["127.0.0.1", "stats.example.net", "localhost"] {
        h.connect_with(h.client_config(None), name).await.unwrap();
    }
    assert!(h
        .connect_with(h.client_config(None), "other.example.net")
        .await
        .is_err());
}

#[tokio::test]
async fn enrollment_refusals_have_specific_codes() {
    let h = start().await;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let good = h.token("ap-1", 1);
    let req = |token: String, csr_pem: String| EnrollRequest {
        token,
        csr_pem,
        name: None,
        hostname: "h".into(),
    };
    let code = |m: Message| match m {
        Message::Error(e) => e.code,
        other => panic!("{other:?}"),
    };

    assert_eq!(
        code(h.enroll_request(req("nonsense".into(), csr(&key))).await),
        ErrorCode::InvalidToken
    );
    let mut wrong_secret = good.clone();
    wrong_secret.secret = "a".repeat(32);
    assert_eq!(
        code(
            h.enroll_request(req(wrong_secret.to_string(), csr(&key)))
                .await
        ),
        ErrorCode::InvalidToken
    );
    let mut wrong_ca = good.clone();
    wrong_ca.ca_hash = [0; 32];
    assert_eq!(
        code(h.enroll_request(req(wrong_ca.to_string(), csr(&key))).await),
        ErrorCode::InvalidToken
    );
    assert_eq!(
        code(
            h.enroll_request(req(good.to_string(), "garbage".into()))
                .await
        ),
        ErrorCode::BadCsr
    );

    // An expired token.
    let expired = EnrollToken {
        id: "expired1".into(),
        secret: "s".repeat(32),
        ca_hash: h.handle.ca_hash(),
    };
    h.store()
        .insert_token(&NewToken {
            id: expired.id.clone(),
            secret_hash: sha256(&expired.secret),
            name: "late".into(),
            site: None,
            created_at: unix_now() - 7200,
            expires_at: unix_now() - 3600,
            max_uses: 1,
        })
        .unwrap();
    assert_eq!(
        code(h.enroll_request(req(expired.to_string(), csr(&key))).await),
        ErrorCode::ExpiredToken
    );

    // The refusals above did not spend the good token; a requested name wins over the token's.
    let mut r = req(good.to_string(), csr(&key));
    r.name = Some("garage".into());
    match h.enroll_request(r).await {
        Message::EnrollResponse(resp) => assert_eq!(resp.router_name, "garage"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_frames_close_only_that_connection() {
    let h = start().await;
    let a = h.enroll("ap-a").await;
    let b = h.enroll("ap-b").await;
    let (mut good, _) = h.ingest(&a).await;
    send_report_expect_ack(&mut good, [1; 16], 1).await;

    // Garbage bytes on an enrollment-type connection.
    let mut s = h.connect(None).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    s.flush().await.unwrap();
    let msg = expect_error(&mut s, ErrorCode::Protocol).await;
    assert!(msg.contains("magic"), "{msg}");

    // An oversized frame header.
    let mut s = h.connect(None).await;
    s.write_all(&FrameHeader::new(MessageKind::Report, MAX_FRAME_LEN + 1).to_bytes())
        .await
        .unwrap();
    s.flush().await.unwrap();
    let msg = expect_error(&mut s, ErrorCode::Protocol).await;
    assert!(msg.contains("exceeds"), "{msg}");

    // A wrong protocol version, on an established ingest connection of another router.
    let (mut sb, _) = h.ingest(&b).await;
    let mut frame = Message::Report(Box::new(report([2; 16], 1)))
        .to_frame()
        .unwrap();
    frame[2] = 99;
    sb.write_all(&frame).await.unwrap();
    sb.flush().await.unwrap();
    let msg = expect_error(&mut sb, ErrorCode::Protocol).await;
    assert!(msg.contains("version"), "{msg}");

    // A valid header with an undecodable payload.
    let (mut sb, _) = h.ingest(&b).await;
    let junk = routerstats_shared::message::frame_bytes(MessageKind::Report, &[0xff; 40]).unwrap();
    sb.write_all(&junk).await.unwrap();
    sb.flush().await.unwrap();
    expect_error(&mut sb, ErrorCode::Protocol).await;

    // The first connection is unaffected.
    send_report_expect_ack(&mut good, [1; 16], 2).await;
    assert_eq!(h.count_reports(a.router_id), 2);
}

#[tokio::test]
async fn smaller_configured_frame_cap_is_enforced() {
    let h = start_with(|c| c.max_frame = 2048).await;
    let a = h.enroll("ap-a").await;
    let (mut s, _) = h.ingest(&a).await;
    let mut big = report([3; 16], 1);
    big.router.hostname = "x".repeat(4000);
    send(&mut s, &Message::Report(Box::new(big))).await;
    let msg = expect_error(&mut s, ErrorCode::Protocol).await;
    assert!(msg.contains("2048"), "{msg}");
}

/// A client identity `name` with `key`: a client-auth certificate `issuer` signs, after `edit`
/// (validity dates, say) changed its parameters.
fn client_identity(
    issuer: &rcgen::Issuer<'_, KeyPair>,
    name: &str,
    key: KeyPair,
    edit: impl FnOnce(&mut CertificateParams),
) -> Identity {
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, name);
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    edit(&mut leaf);
    let cert = leaf.signed_by(&key, issuer).unwrap();
    Identity {
        router_id: 0,
        name: name.into(),
        cert_der: cert.der().clone(),
        key,
    }
}

/// Connecting with `id` is refused: at the handshake or, since in TLS 1.3 the client may finish
/// its side first, at the first read (`what` names the identity in the panic).
async fn assert_refused(h: &Harness, id: &Identity, what: &str) {
    match h.connect_with(h.client_config(Some(id)), "localhost").await {
        Err(_) => {}
        Ok(mut s) => {
            let _ = write_message(&mut s, &hello()).await;
            if let Ok(m) = recv(&mut s).await {
                panic!("{what} got an answer: {m:?}");
            }
        }
    }
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_at_handshake() {
    let h = start().await;
    let _enrolled = h.enroll("ap-a").await;
    // A look-alike CA and a client certificate it issued.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "routerstats collector CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let _ = ca_cert;
    let id = client_identity(&issuer, "ap-a", KeyPair::generate().unwrap(), |_| {});
    assert_refused(&h, &id, "a foreign certificate").await;
    // The collector still serves its own routers.
    let ok = h.enroll("ap-b").await;
    let (mut s, _) = h.ingest(&ok).await;
    send_report_expect_ack(&mut s, [4; 16], 1).await;
}

#[tokio::test]
async fn expired_certificate_from_our_ca_is_refused_at_handshake() {
    let h = start().await;
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(h.data.join(crate::pki::CA_KEY_FILE)).unwrap())
            .unwrap();
    let ca_pem = std::fs::read_to_string(h.data.join(CA_CERT_FILE)).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let id = client_identity(&issuer, "ap-old", key, |leaf| {
        leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    assert_refused(&h, &id, "an expired certificate").await;
}

#[tokio::test]
async fn revoked_router_is_disconnected_within_a_second_and_refused_after() {
    let h = start().await;
    let id = h.enroll("ap-doomed").await;
    let other = h.enroll("ap-fine").await;
    let (mut s, _) = h.ingest(&id).await;
    let (mut s2, _) = h.ingest(&other).await;
    send_report_expect_ack(&mut s, [5; 16], 1).await;

    let started = Instant::now();
    h.store().revoke_router("ap-doomed", unix_now()).unwrap();
    let msg =
        match tokio::time::timeout(Duration::from_secs(1), read_message(&mut s, MAX_FRAME_LEN))
            .await
        {
            Ok(Ok(Message::Error(e))) => {
                assert_eq!(e.code, ErrorCode::Revoked);
                e.message
            }
            other => panic!("revoked connection not closed within 1 s: {other:?}"),
        };
    assert!(msg.contains("ap-doomed"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(1));
    expect_closed(&mut s).await;

    // A new connection is refused at Hello.
    let mut s = h.connect(Some(&id)).await;
    send(&mut s, &hello()).await;
    expect_error(&mut s, ErrorCode::Revoked).await;

    // Other routers are unaffected.
    send_report_expect_ack(&mut s2, [6; 16], 1).await;
}

#[tokio::test]
async fn no_client_certificate_may_only_enroll() {
    let h = start().await;
    let mut s = h.connect(None).await;
    send(&mut s, &Message::Report(Box::new(report([1; 16], 1)))).await;
    let msg = expect_error(&mut s, ErrorCode::Protocol).await;
    assert!(msg.contains("client certificate"), "{msg}");

    let mut s = h.connect(None).await;
    send(&mut s, &hello()).await;
    expect_error(&mut s, ErrorCode::Protocol).await;

    // With a certificate, Hello must come first.
    let id = h.enroll("ap-a").await;
    let mut s = h.connect(Some(&id)).await;
    send(&mut s, &Message::Report(Box::new(report([1; 16], 1)))).await;
    expect_error(&mut s, ErrorCode::Protocol).await;
    // And collector-side messages are refused after it.
    let (mut s, _) = h.ingest(&id).await;
    send(
        &mut s,
        &Message::Ack(Ack {
            boot_id: [0; 16],
            seq: 1,
        }),
    )
    .await;
    expect_error(&mut s, ErrorCode::Protocol).await;
    assert_eq!(h.count_reports(id.router_id), 0);
}

#[tokio::test]
async fn router_connection_cap_refuses_extra_routers() {
    let h = start_with(|c| c.max_connections = 2).await;
    let ids = [
        h.enroll("ap-a").await,
        h.enroll("ap-b").await,
        h.enroll("ap-c").await,
    ];
    let (c1, _) = h.ingest(&ids[0]).await;
    let (_c2, _) = h.ingest(&ids[1]).await;
    assert_eq!(h.handle.active_connections(), 2);
    // A third router is told to come back later.
    let mut s = h.connect(Some(&ids[2])).await;
    send(&mut s, &hello()).await;
    let why = expect_error(&mut s, ErrorCode::Unavailable).await;
    assert!(why.contains("connection cap"), "{why}");
    // Unauthenticated connections do not count against the routers' cap.
    let _bare = h.connect(None).await;
    // Closing one frees a slot.
    drop(c1);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = h.connect(Some(&ids[2])).await;
        send(&mut s, &hello()).await;
        match recv(&mut s).await {
            Ok(Message::HelloAck(_)) => break,
            other if Instant::now() < deadline => {
                assert!(matches!(other, Ok(Message::Error(_))), "{other:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("the freed slot was not given to ap-c: {other:?}"),
        }
    }
}

#[tokio::test]
async fn idle_and_silent_connections_are_closed() {
    let h = start_with(|c| {
        c.read_timeout = Duration::from_secs(1);
        c.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    // No TLS at all: the handshake times out.
    let mut raw = TcpStream::connect(h.addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(
        n, 0,
        "silent TCP connection should be closed after the handshake timeout"
    );
    // TLS but no frame: closed after the read timeout.
    let mut s = h.connect(None).await;
    let started = Instant::now();
    expect_closed(&mut s).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn renewal_issues_a_new_certificate_and_retires_the_old() {
    let h = start().await;
    let id = h.enroll("ap-renew").await;
    let (mut s, _) = h.ingest(&id).await;
    let new_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    send(
        &mut s,
        &Message::RenewRequest(RenewRequest {
            csr_pem: csr(&new_key),
        }),
    )
    .await;
    let cert_pem = match recv(&mut s).await.unwrap() {
        Message::RenewResponse(r) => r.cert_pem,
        other => panic!("{other:?}"),
    };
    // Reports keep flowing on the same connection.
    send_report_expect_ack(&mut s, [8; 16], 1).await;
    let cert_der = pem_certs(&cert_pem).unwrap().remove(0);
    let row = h
        .store()
        .router(&id.router_id.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(row.cert_fingerprint, cert_fingerprint(&cert_der));
    let renewed = Identity {
        router_id: id.router_id,
        name: id.name.clone(),
        cert_der,
        key: new_key,
    };
    let (_s, ack) = h.ingest(&renewed).await;
    assert_eq!(ack.router_id, id.router_id);
    // The old certificate is no longer accepted.
    let mut old = h.connect(Some(&id)).await;
    send(&mut old, &hello()).await;
    expect_error(&mut old, ErrorCode::Revoked).await;
    // A bad CSR is refused and closes the connection.
    let (mut s, _) = h.ingest(&renewed).await;
    send(
        &mut s,
        &Message::RenewRequest(RenewRequest {
            csr_pem: "nope".into(),
        }),
    )
    .await;
    expect_error(&mut s, ErrorCode::BadCsr).await;
}

#[tokio::test]
async fn startup_errors_are_actionable() {
    let h = start().await;
    // Busy port.
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(dir.path().join("d2"));
    c.ingest_listen = h.addr();
    let e = serve(c).await.err().unwrap();
    assert!(
        matches!(e, ServeError::PortInUse { what: "ingest", .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("ingest port {} is already in use", h.addr())),
        "{e}"
    );
    assert!(
        !dir.path().join("d2").join(CA_CERT_FILE).exists(),
        "a refused start must not create a CA"
    );
    let mut c = test_config(dir.path().join("d3"));
    c.api_listen = h.handle.api_addr();
    let e = serve(c).await.err().unwrap();
    assert!(e.to_string().contains("API port"), "{e}");

    // A data dir that is a file.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let e = serve(test_config(file)).await.err().unwrap();
    assert!(matches!(e, ServeError::DataDirNotDir { .. }), "{e}");

    // A corrupt database.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("routerstats.db"), vec![0x42u8; 8192]).unwrap();
    let e = serve(test_config(bad)).await.err().unwrap();
    assert!(matches!(e, ServeError::Store { .. }), "{e}");
    assert!(e.to_string().contains("routerstats.db"), "{e}");

    // A database written by a newer collector.
    let newer = dir.path().join("newer");
    std::fs::create_dir_all(&newer).unwrap();
    drop(Store::open(&newer.join("routerstats.db")).unwrap());
    let conn = rusqlite::Connection::open(newer.join("routerstats.db")).unwrap();
    conn.execute_batch("PRAGMA user_version = 9999").unwrap();
    drop(conn);
    let e = serve(test_config(newer)).await.err().unwrap();
    assert!(e.to_string().contains("newer"), "{e}");
}

/// A minimal HTTP/1.1 request; returns (status, JSON body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn api_health_and_token_creation_with_roles() {
    let h = start().await;
    let api = h.handle.api_addr();
    let (status, body) = http(api, "GET", "/health", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");

    let store = h.store();
    let admin = create_api_key(&store, Role::Admin, "ops", unix_now())
        .unwrap()
        .key;
    let read = create_api_key(&store, Role::Read, "grafana", unix_now())
        .unwrap()
        .key;
    let body = r#"{"name":"ap-api","site":"lab","ttl":"2h","max_uses":2}"#;

    let (status, _) = http(api, "POST", "/api/admin/tokens", &[], body).await;
    assert_eq!(status, 401);
    let (status, _) = http(
        api,
        "POST",
        "/api/admin/tokens",
        &[("X-API-Key", "rsk_wrong")],
        body,
    )
    .await;
    assert_eq!(status, 401);
    let (status, err) = http(
        api,
        "POST",
        "/api/admin/tokens",
        &[("X-API-Key", &read)],
        body,
    )
    .await;
    assert_eq!(status, 403, "{err}");
    let bearer = format!("Bearer {admin}");
    let (status, err) = http(
        api,
        "POST",
        "/api/admin/tokens",
        &[("Authorization", &bearer)],
        r#"{"name":"x","ttl":"1y"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("duration"), "{err}");
    let (status, err) = http(
        api,
        "POST",
        "/api/admin/tokens",
        &[("Authorization", &bearer)],
        "{",
    )
    .await;
    assert_eq!(status, 400, "{err}");

    let (status, created) = http(
        api,
        "POST",
        "/api/admin/tokens",
        &[("Authorization", &bearer)],
        body,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "ap-api");
    assert_eq!(created["max_uses"], 2);
    let expires = created["expires_at"].as_i64().unwrap();
    assert!((expires - unix_now() - 7200).abs() < 10);
    let token: EnrollToken = created["token"].as_str().unwrap().parse().unwrap();
    assert_eq!(token.ca_hash, h.handle.ca_hash());

    // The token enrolls a router (twice).
    for _ in 0..2 {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let req = EnrollRequest {
            token: token.to_string(),
            csr_pem: csr(&key),
            name: None,
            hostname: "h".into(),
        };
        assert!(matches!(
            h.enroll_request(req).await,
            Message::EnrollResponse(_)
        ));
    }
    let (status, _) = http(api, "GET", "/nope", &[], "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn many_routers_report_concurrently() {
    let h = Arc::new(start().await);
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(h.enroll(&format!("ap-{i}")).await);
    }
    let mut tasks = Vec::new();
    for id in ids {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let (mut s, _) = h.ingest(&id).await;
            let boot = [u8::try_from(id.router_id).unwrap(); 16];
            for seq in 1..=40 {
                send(&mut s, &Message::Report(Box::new(report(boot, seq)))).await;
            }
            for seq in 1..=40 {
                match recv(&mut s).await.unwrap() {
                    Message::Ack(a) => assert_eq!((a.boot_id, a.seq), (boot, seq)),
                    other => panic!("{other:?}"),
                }
            }
            id.router_id
        }));
    }
    for t in tasks {
        let router_id = t.await.unwrap();
        assert_eq!(h.count_reports(router_id), 40);
    }
}

/// A report with a station, an interface, a WireGuard peer and a lease, counters grown by `seq`.
fn rich_report(seq: u64) -> Report {
    use routerstats_shared::model::*;
    let mut r = report([9; 16], seq);
    r.timestamp_ms = 1_700_000_000_000 + seq * 30_000;
    r.system = Some(SystemStats {
        uptime_s: 1000 + seq * 30,
        mem_total_kb: 256_000,
        mem_available_kb: 100_000 + seq * 7,
        ..Default::default()
    });
    r.interfaces = vec![NetInterface {
        name: "eth0".into(),
        kind: IfKind::Ethernet,
        rx_bytes: 5_000_000_000 + seq * 3_000_000,
        tx_bytes: 900_000_000 + seq * 1_000_000,
        rx_packets: 4_000_000 + seq * 2_500,
        ..Default::default()
    }];
    r.stations = vec![Station {
        mac: "02:11:22:33:44:55".parse().unwrap(),
        interface: "phy0-ap0".into(),
        stats: StationLinkStats {
            rx_bytes: Some(70_000_000 + seq * 400_000),
            tx_bytes: Some(300_000_000 + seq * 800_000),
            inactive_ms: Some(seq * 13 % 400),
            ..Default::default()
        },
        connected_s: Some(5000 + seq * 30),
        ..Default::default()
    }];
    r.wireguard = vec![WgInterface {
        name: "wg0".into(),
        peers: vec![WgPeer {
            public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=".into(),
            latest_handshake: Some(1_700_000_000 + seq * 30),
            rx_bytes: 1_000_000 + seq * 20_000,
            tx_bytes: 2_000_000 + seq * 10_000,
            ..Default::default()
        }],
        ..Default::default()
    }];
    r.leases = vec![DhcpLease {
        expires: Some(1_700_043_200),
        mac: Some("02:11:22:33:44:55".parse().unwrap()),
        ip: "192.168.1.20".parse().unwrap(),
        hostname: Some("laptop".into()),
        client_id: None,
        iaid: None,
    }];
    r
}

fn report_payload(seq: u64) -> Vec<u8> {
    Message::Report(Box::new(rich_report(seq)))
        .encode_payload()
        .unwrap()
}

/// A `ReportPatch` frame of report `seq` against report `base_seq`.
fn patch_frame(base_seq: u64, seq: u64) -> Vec<u8> {
    let p = routerstats_shared::patch::encode(&report_payload(base_seq), &report_payload(seq));
    frame_bytes(MessageKind::ReportPatch, &p).unwrap()
}

async fn expect_ack(s: &mut TlsStream<TcpStream>, seq: u64) {
    match recv(s).await.unwrap() {
        Message::Ack(a) => assert_eq!((a.boot_id, a.seq), ([9; 16], seq)),
        other => panic!("expected Ack {seq}, got {other:?}"),
    }
}

impl Harness {
    /// Every row of `table` for a router, without the router id, row id and arrival time.
    fn rows(&self, table: &str, router_id: i64) -> Vec<String> {
        let store = self.store();
        let conn = store.connection();
        let mut st = conn
            .prepare(&format!("SELECT * FROM {table} WHERE router_id = ?1"))
            .unwrap();
        let names: Vec<String> = st.column_names().iter().map(|n| n.to_string()).collect();
        let mut q = st.query([router_id]).unwrap();
        let mut out = Vec::new();
        while let Some(row) = q.next().unwrap() {
            let mut line = String::new();
            for (i, n) in names.iter().enumerate() {
                if !matches!(n.as_str(), "id" | "router_id" | "received_ms") {
                    let v: rusqlite::types::Value = row.get(i).unwrap();
                    line.push_str(&format!("{n}={v:?};"));
                }
            }
            out.push(line);
        }
        out.sort();
        out
    }
}

#[tokio::test]
async fn report_patches_ingest_the_same_rows_as_full_reports() {
    let h = start().await;
    let full = h.enroll("ap-full").await;
    let patched = h.enroll("ap-patched").await;

    let (mut a, _) = h.ingest(&full).await;
    for seq in 1..=3 {
        send(&mut a, &Message::Report(Box::new(rich_report(seq)))).await;
        expect_ack(&mut a, seq).await;
    }

    let (mut b, _) = h.ingest(&patched).await;
    send(&mut b, &Message::Report(Box::new(rich_report(1)))).await;
    expect_ack(&mut b, 1).await;
    let p2 = patch_frame(1, 2);
    assert!(
        p2.len() * 3 < report_payload(2).len(),
        "patch of {} bytes",
        p2.len()
    );
    b.write_all(&p2).await.unwrap();
    expect_ack(&mut b, 2).await;
    // The next patch is against the payload the collector rebuilt from the previous one.
    b.write_all(&patch_frame(2, 3)).await.unwrap();
    expect_ack(&mut b, 3).await;
    // A resent report (a duplicate) as a patch is acked and stored once.
    b.write_all(&patch_frame(3, 3)).await.unwrap();
    expect_ack(&mut b, 3).await;

    for table in [
        "reports",
        "interface_samples",
        "station_samples",
        "wg_peer_samples",
        "leases",
    ] {
        let (rf, rp) = (
            h.rows(table, full.router_id),
            h.rows(table, patched.router_id),
        );
        assert!(!rf.is_empty(), "no rows in {table}");
        assert_eq!(rf, rp, "{table} differs");
    }
    assert_eq!(h.count_reports(patched.router_id), 3);
}

#[tokio::test]
async fn patch_without_a_base_or_garbage_is_refused() {
    let h = start().await;
    let r = h.enroll("ap-p").await;
    let (mut good, _) = h.ingest(&r).await;
    send(&mut good, &Message::Report(Box::new(rich_report(1)))).await;
    expect_ack(&mut good, 1).await;

    // A patch as the first report of a connection: there is nothing to apply it to.
    let (mut s, _) = h.ingest(&r).await;
    s.write_all(&patch_frame(1, 2)).await.unwrap();
    let msg = expect_error(&mut s, ErrorCode::Protocol).await;
    assert!(msg.contains("needs a full Report"), "{msg}");

    // A patch as the very first frame, before Hello.
    let mut s = h.connect(Some(&r)).await;
    s.write_all(&patch_frame(1, 2)).await.unwrap();
    let msg = expect_error(&mut s, ErrorCode::Protocol).await;
    assert!(msg.contains("ReportPatch"), "{msg}");

    // Garbage after a full report.
    let (mut s, _) = h.ingest(&r).await;
    send(&mut s, &Message::Report(Box::new(rich_report(2)))).await;
    expect_ack(&mut s, 2).await;
    let junk = frame_bytes(MessageKind::ReportPatch, &[0xff; 40]).unwrap();
    s.write_all(&junk).await.unwrap();
    let msg = expect_error(&mut s, ErrorCode::Protocol).await;
    assert!(msg.contains("ReportPatch"), "{msg}");

    // A patch that applies but does not decode as a report.
    let (mut s, _) = h.ingest(&r).await;
    send(&mut s, &Message::Report(Box::new(rich_report(3)))).await;
    expect_ack(&mut s, 3).await;
    let p = routerstats_shared::patch::encode(&report_payload(3), &[0xff; 30]);
    s.write_all(&frame_bytes(MessageKind::ReportPatch, &p).unwrap())
        .await
        .unwrap();
    expect_error(&mut s, ErrorCode::Protocol).await;

    // The first connection is unaffected and still patches.
    good.write_all(&patch_frame(1, 4)).await.unwrap();
    expect_ack(&mut good, 4).await;
    assert_eq!(h.count_reports(r.router_id), 4);
}

// --- Hardening against unauthenticated peers (issue 15) ---

/// A TCP connection to the ingest port from a chosen loopback source address (the whole
/// 127.0.0.0/8 is loopback on Linux), so tests can play several clients.
async fn tcp_from(h: &Harness, src: [u8; 4]) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((src, 0))).unwrap();
    sock.connect(h.addr()).await.unwrap()
}

async fn tls_from(h: &Harness, src: [u8; 4], id: Option<&Identity>) -> TlsStream<TcpStream> {
    let tcp = tcp_from(h, src).await;
    let name = ServerName::try_from("localhost".to_string()).unwrap();
    tokio::time::timeout(
        WAIT,
        TlsConnector::from(h.client_config(id)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Whether the server closes `tcp` within `within` (read returns 0 or an error).
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(within, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn oversized_first_frame_is_refused_after_its_header() {
    let h = start().await;
    // No client certificate: a header announcing 1 MiB is refused at once, before any body.
    let mut s = h.connect(None).await;
    s.write_all(&FrameHeader::new(MessageKind::EnrollRequest, MAX_FRAME_LEN).to_bytes())
        .await
        .unwrap();
    s.flush().await.unwrap();
    let why = tokio::time::timeout(Duration::from_secs(3), async {
        expect_error(&mut s, ErrorCode::Protocol).await
    })
    .await
    .expect("refused within 3 s, without waiting for the body");
    assert!(why.contains("exceeds the limit of 8192"), "{why}");
    // The same for a router's first frame before its Hello was accepted.
    let id = h.enroll("ap-big").await;
    let mut s = h.connect(Some(&id)).await;
    s.write_all(&FrameHeader::new(MessageKind::Hello, 100_000).to_bytes())
        .await
        .unwrap();
    expect_error(&mut s, ErrorCode::Protocol).await;
    // After Hello, frames up to max_frame are fine: a 40 KB report is acked.
    let (mut s, _) = h.ingest(&id).await;
    let mut r = report([9; 16], 1);
    r.router.hostname = "h".repeat(40_000);
    send(&mut s, &Message::Report(Box::new(r))).await;
    assert!(matches!(recv(&mut s).await.unwrap(), Message::Ack(_)));
}

#[tokio::test]
async fn unauthenticated_connections_get_a_short_deadline() {
    let h = start_with(|c| c.preauth_timeout = Duration::from_millis(500)).await;
    // TLS without a certificate and no frame: closed after the pre-auth deadline, not after
    // the 120 s read timeout.
    let mut s = h.connect(None).await;
    let started = Instant::now();
    expect_closed(&mut s).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // A router that authenticated in time stays, past that deadline.
    let id = h.enroll("ap-slow").await;
    let (mut s, _) = h.ingest(&id).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    send_report_expect_ack(&mut s, [4; 16], 1).await;
}

#[tokio::test]
async fn per_address_cap_closes_extra_unauthenticated_connections() {
    let h = start_with(|c| {
        c.preauth_per_address = 3;
        c.preauth_max_connections = 6;
    })
    .await;
    let id = h.enroll("ap-neighbour").await;
    let attacker = [127, 0, 0, 2];
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tcp_from(&h, attacker).await);
    }
    // Let the collector account for them, then a fourth from the same address is closed at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tcp_from(&h, attacker).await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)).await,
        "fourth connection kept open"
    );
    for t in &mut held {
        assert!(
            !closed_within(t, Duration::from_millis(50)).await,
            "held connection closed early"
        );
    }
    // Another address is not affected.
    let (mut s, _) = {
        let mut s = tls_from(&h, [127, 0, 0, 1], Some(&id)).await;
        send(&mut s, &hello()).await;
        match recv(&mut s).await.unwrap() {
            Message::HelloAck(a) => (s, a),
            other => panic!("{other:?}"),
        }
    };
    send_report_expect_ack(&mut s, [5; 16], 1).await;
}

#[tokio::test]
async fn full_preauth_pool_does_not_keep_routers_out() {
    let h = start_with(|c| {
        c.preauth_max_connections = 8;
        c.preauth_per_address = 8;
    })
    .await;
    let id = h.enroll("ap-real").await;
    // Eight silent TCP connections from one address fill the unauthenticated pool.
    let mut flood = Vec::new();
    for _ in 0..8 {
        flood.push(tcp_from(&h, [127, 0, 0, 3]).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A router from another address still gets in (taking the flood's oldest slot) and reports.
    let mut s = tls_from(&h, [127, 0, 0, 1], Some(&id)).await;
    send(&mut s, &hello()).await;
    assert!(matches!(recv(&mut s).await.unwrap(), Message::HelloAck(_)));
    send_report_expect_ack(&mut s, [6; 16], 1).await;
    assert!(
        closed_within(&mut flood[0], Duration::from_secs(2)).await,
        "the flood's oldest connection was not evicted"
    );
    // The router left the pool after Hello: the flood may fill it again, but not beyond.
    let mut refill = tcp_from(&h, [127, 0, 0, 3]).await;
    assert!(!closed_within(&mut refill, Duration::from_millis(300)).await);
    let mut again = tcp_from(&h, [127, 0, 0, 3]).await;
    assert!(closed_within(&mut again, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn failed_enrollments_are_rate_limited_per_address() {
    let h = start().await;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let bad = |secret: &str| EnrollRequest {
        token: format!(
            "rs1.nosuchtoken.{secret}.{}",
            routerstats_shared::token::hex(&h.handle.ca_hash())
        ),
        csr_pem: csr(&key),
        name: None,
        hostname: "prober".into(),
    };
    let ask = |src: [u8; 4], req: EnrollRequest| {
        let h = &h;
        async move {
            let mut s = tls_from(h, src, None).await;
            send(&mut s, &Message::EnrollRequest(req)).await;
            recv(&mut s).await.unwrap()
        }
    };
    let mut codes = Vec::new();
    for i in 0..14 {
        let secret = format!("{:032}", i);
        match ask([127, 0, 0, 4], bad(&secret)).await {
            Message::Error(e) => codes.push(e.code),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(codes[..10], [ErrorCode::InvalidToken; 10], "{codes:?}");
    assert_eq!(codes[10..], [ErrorCode::Unavailable; 4], "{codes:?}");
    // Another address still enrolls, with a good token.
    let token = h.token("ap-ok", 1);
    let reply = ask(
        [127, 0, 0, 5],
        EnrollRequest {
            token: token.to_string(),
            csr_pem: csr(&key),
            name: None,
            hostname: "OpenWrt".into(),
        },
    )
    .await;
    assert!(matches!(reply, Message::EnrollResponse(_)), "{reply:?}");
}

/// A TCP connection to the API port from a chosen loopback source address.
async fn api_tcp_from(h: &Harness, src: [u8; 4]) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((src, 0))).unwrap();
    sock.connect(h.handle.api_addr()).await.unwrap()
}

/// Sends a keep-alive `GET /health` on `tcp` and reads the answer's status line.
async fn api_health_on(tcp: &mut TcpStream) -> Option<String> {
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_string)
}

#[tokio::test]
async fn api_cuts_slow_headers_and_idle_keep_alive_connections() {
    let h = start_with(|c| c.api_header_timeout = Duration::from_millis(600)).await;
    // Slowloris: a header line every 200 ms never completes; cut after the header timeout.
    let mut slow = api_tcp_from(&h, [127, 0, 0, 1]).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut cut = false;
    for i in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow
            .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            cut = true;
            break;
        }
        if closed_within(&mut slow, Duration::from_millis(1)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "slow headers still open after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(4));
    // Keep-alive: answered, then closed once idle for the header timeout.
    let mut ka = api_tcp_from(&h, [127, 0, 0, 1]).await;
    let status = api_health_on(&mut ka).await.unwrap();
    assert!(status.contains("200"), "{status}");
    let idle = Instant::now();
    assert!(
        closed_within(&mut ka, Duration::from_secs(4)).await,
        "idle keep-alive kept open"
    );
    assert!(
        idle.elapsed() >= Duration::from_millis(400),
        "{:?}",
        idle.elapsed()
    );
}

#[tokio::test]
async fn api_connection_caps_per_address_and_in_total() {
    let h = start_with(|c| {
        c.api_max_connections = 5;
        c.api_max_per_address = 3;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(api_tcp_from(&h, [127, 0, 0, 6]).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fourth from the same address is closed at once.
    let mut extra = api_tcp_from(&h, [127, 0, 0, 6]).await;
    assert!(closed_within(&mut extra, Duration::from_secs(2)).await);
    // Another address is served.
    let mut other = api_tcp_from(&h, [127, 0, 0, 7]).await;
    assert!(api_health_on(&mut other).await.unwrap().contains("200"));
    let _other2 = api_tcp_from(&h, [127, 0, 0, 7]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Five open (the cap): a client from a new address takes the oldest connection of the
    // address holding the most, and is served at once.
    let mut newcomer = api_tcp_from(&h, [127, 0, 0, 8]).await;
    assert!(api_health_on(&mut newcomer).await.unwrap().contains("200"));
    assert!(
        closed_within(&mut held[0], Duration::from_secs(2)).await,
        "the flooding address's oldest connection was not evicted"
    );
    // The flooding address cannot take it back: it does not hold fewer than the others.
    let mut again = api_tcp_from(&h, [127, 0, 0, 6]).await;
    assert!(closed_within(&mut again, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn json_answers_say_nosniff() {
    let h = start().await;
    for path in ["/health", "/api/health", "/no/such/route"] {
        let mut tcp = api_tcp_from(&h, [127, 0, 0, 1]).await;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        assert!(
            text.contains("content-type: application/json"),
            "{path}: {text}"
        );
        assert!(
            text.contains("x-content-type-options: nosniff"),
            "{path}: {text}"
        );
    }
}

#[tokio::test]
async fn api_health_without_a_key_tells_only_the_collector_health() {
    let h = start().await;
    let id = h.enroll("ap-secret-name").await;
    let (mut s, _) = h.ingest(&id).await;
    send_report_expect_ack(&mut s, [2; 16], 1).await;
    let api = h.handle.api_addr();
    let (status, body) = http(api, "GET", "/api/health", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(body["collector"]["status"], "up");
    assert!(body.get("router_status").is_none(), "{body}");
    assert!(!body.to_string().contains("ap-secret-name"), "{body}");
    let read = create_api_key(&h.store(), Role::Read, "grafana", unix_now())
        .unwrap()
        .key;
    let (status, body) = http(api, "GET", "/api/health", &[("X-API-Key", &read)], "").await;
    assert_eq!(status, 200);
    assert_eq!(body["router_status"][0]["name"], "ap-secret-name", "{body}");
    let (status, _) = http(api, "GET", "/api/health", &[("X-API-Key", "rsk_wrong")], "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn loose_modes_of_the_data_dir_and_keys_are_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    serve(test_config(data.clone()))
        .await
        .unwrap()
        .shutdown()
        .await;
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    set(&data, 0o777);
    set(&data.join("ca.key"), 0o644);
    set(&data.join("server.key"), 0o640);
    set(&data.join("routerstats.db"), 0o666);
    set(&data.join("ca.pem"), 0o644);
    let h = serve(test_config(data.clone())).await.unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("ca.key")), 0o600);
    assert_eq!(mode(&data.join("server.key")), 0o600);
    assert_eq!(mode(&data.join("routerstats.db")), 0o600);
    assert_eq!(
        mode(&data.join("ca.pem")),
        0o644,
        "public files are left alone"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn corrupted_database_pages_show_in_health() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let h = serve(test_config(data.clone())).await.unwrap();
    let api = h.api_addr();
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let (status, body) = http(api, "GET", "/health", &[], "").await;
        if body["integrity"] != "checking" || Instant::now() > deadline {
            assert_eq!(status, 200);
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["integrity"], "ok", "{body}");
    h.shutdown().await;
    // Garbage over the last pages of the file (table and index pages, not the schema page).
    let db = data.join("routerstats.db");
    {
        // A table written last, so the file's last pages are its leaves (startup never reads
        // them; the quick check does).
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE filler(x BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO filler SELECT randomblob(300) FROM n;",
        )
        .unwrap();
        let busy: i64 = c
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "checkpoint blocked");
    }
    let mut bytes = std::fs::read(&db).unwrap();
    let len = bytes.len();
    assert!(len > 8 * 4096, "{len}");
    for (i, b) in bytes[len - 4 * 4096..].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&db, bytes).unwrap();
    let h = serve(test_config(data.clone())).await.unwrap();
    let api = h.api_addr();
    let deadline = Instant::now() + WAIT;
    let (status, body) = loop {
        let (status, body) = http(api, "GET", "/health", &[], "").await;
        if body["integrity"] != "checking" || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["integrity"], "failed", "{body}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert!(
        body["database"].as_str().unwrap().starts_with("corrupt: "),
        "{body}"
    );
    h.shutdown().await;
}
