//! Client TLS for the uplink (rustls with the trimmed ring provider of [`super::crypto`], TLS 1.3 only).
//!
//! - Enrollment: the agent holds no certificate yet and trusts nothing but the CA hash in its
//!   token. [`enroll_client_config`] installs [`CaPinVerifier`], which finds the certificate in
//!   the collector's presented chain whose SHA-256 (DER) equals that hash and then verifies the
//!   server's end-entity certificate against it with webpki for the dialed name.
//! - Reports: [`mtls_client_config`] trusts the stored `ca.pem` and presents `cert.pem`/`key.pem`.
//!
//! Also here: parsing of `host:port` collector addresses, PEM helpers, and a minimal DER reader
//! for a certificate's validity period (the agent does not link an X.509 parser for that).

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Port of the collector's ingest listener when the address names none.
pub const DEFAULT_PORT: u16 = 7443;

/// What the enrollment verifier says when no presented certificate has the token's hash.
pub const CA_MISMATCH: &str = "collector's CA does not match the token's CA hash";

/// Why a TLS configuration or a certificate could not be built or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("bad collector address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: &'static str },
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("certificate rejected: {0}")]
    Certificate(String),
}

/// The agent's trimmed ring provider (TLS 1.3, P-256, ECDSA P-256; see [`super::crypto`]).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(super::crypto::provider())
}

/// SHA-256 of some bytes (a certificate's DER, for pinning and fingerprints).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    // ring's SHA-256, which TLS links anyway (the sha2 crate cost 6 KB more on mips_24kc).
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// Lowercase hex SHA-256 of a certificate's DER: how the collector names a client certificate.
pub fn cert_fingerprint(der: &[u8]) -> String {
    routerstats_shared::token::hex(&sha256(der))
}

/// A parsed collector address: `host:port`, `1.2.3.4:port`, `[::1]:port`, or a bare host
/// (port [`DEFAULT_PORT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorAddr {
    pub host: String,
    pub port: u16,
    /// The name the server certificate must be valid for: a DNS name or an IP address.
    pub server_name: ServerName<'static>,
}

impl CollectorAddr {
    pub fn parse(s: &str) -> Result<Self, TlsError> {
        let bad = |reason| TlsError::BadAddress {
            addr: s.chars().take(200).collect(),
            reason,
        };
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Err(bad("empty"));
        }
        let (host, port) = if let Some(rest) = s_trim.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected ':' after ']'"))?,
                ),
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("brackets must hold an IPv6 address"));
            }
            (host, port)
        } else if s_trim.parse::<IpAddr>().is_ok() {
            // A bare IPv4 or IPv6 address without port.
            (s_trim, None)
        } else {
            match s_trim.rsplit_once(':') {
                Some((h, p)) => {
                    if h.contains(':') {
                        return Err(bad("IPv6 addresses with a port need brackets: [addr]:port"));
                    }
                    (h, Some(p))
                }
                None => (s_trim, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("port must be a number from 1 to 65535")),
                Ok(p) => p,
            },
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let server_name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => {
                ServerName::try_from(host.to_string()).map_err(|_| bad("invalid host name"))?
            }
        };
        Ok(CollectorAddr {
            host: host.to_string(),
            port,
            server_name,
        })
    }
}

impl fmt::Display for CollectorAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What the enrollment verifier saw in the collector's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PinOutcome {
    /// No handshake reached certificate verification.
    #[default]
    NotChecked,
    /// No presented certificate hashed to the token's CA hash.
    Mismatch,
    /// This certificate (DER) matched the hash; webpki verification ran against it.
    Matched(Vec<u8>),
}

/// Shared view of the [`PinOutcome`] of the handshakes made with one enrollment config.
#[derive(Debug, Clone, Default)]
pub struct PinHandle(Arc<Mutex<PinOutcome>>);

impl PinHandle {
    pub fn outcome(&self) -> PinOutcome {
        self.0
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn set(&self, o: PinOutcome) {
        match self.0.lock() {
            Ok(mut g) => *g = o,
            Err(e) => *e.into_inner() = o,
        }
    }
}

/// Verifies the collector's certificate chain against fixed roots and the dialed name: what
/// rustls's `WebPkiServerVerifier` does without revocation lists (the agent has none), through
/// the same rustls functions and so with the same errors. Written out because the builder of
/// `WebPkiServerVerifier` links CRL parsing the agent never uses (packaging/README.md, "Size").
#[derive(Debug)]
pub struct CollectorVerifier {
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
}

impl CollectorVerifier {
    pub fn new(roots: RootCertStore, provider: Arc<CryptoProvider>) -> Self {
        CollectorVerifier { roots, provider }
    }
}

impl ServerCertVerifier for CollectorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        verify_server_name(&cert, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies the collector during enrollment by the CA hash of the token (see module docs).
#[derive(Debug)]
pub struct CaPinVerifier {
    ca_hash: [u8; 32],
    /// Verifies the handshake signatures; the chain is checked by one made per handshake with the
    /// matching certificate as its root.
    signatures: CollectorVerifier,
    pin: PinHandle,
}

impl CaPinVerifier {
    pub fn new(ca_hash: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
        CaPinVerifier {
            ca_hash,
            signatures: CollectorVerifier::new(RootCertStore::empty(), provider),
            pin: PinHandle::default(),
        }
    }

    pub fn pin(&self) -> PinHandle {
        self.pin.clone()
    }
}

impl ServerCertVerifier for CaPinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = std::iter::once(end_entity)
            .chain(intermediates.iter())
            .find(|c| sha256(c.as_ref()) == self.ca_hash);
        let Some(ca) = found else {
            self.pin.set(PinOutcome::Mismatch);
            return Err(rustls::Error::General(CA_MISMATCH.to_string()));
        };
        self.pin.set(PinOutcome::Matched(ca.as_ref().to_vec()));
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = CollectorVerifier::new(roots, self.signatures.provider.clone());
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

fn tls13_builder(
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsError> {
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// The enrollment client config: no client certificate, the server verified by the CA hash.
/// The returned handle tells, after a handshake, whether and which CA certificate matched.
pub fn enroll_client_config(ca_hash: [u8; 32]) -> Result<(Arc<ClientConfig>, PinHandle), TlsError> {
    let provider = provider();
    let verifier = Arc::new(CaPinVerifier::new(ca_hash, provider.clone()));
    let pin = verifier.pin();
    let config = tls13_builder(provider)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), pin))
}

/// The ingest client config: trusts the certificates of `ca_pem`, presents `cert_pem` (plus any
/// chain in it) with `key_pem`.
pub fn mtls_client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in parse_certs_pem(ca_pem, "ca.pem")? {
        roots
            .add(ca)
            .map_err(|e| TlsError::Certificate(format!("ca.pem: {e}")))?;
    }
    let chain = parse_certs_pem(cert_pem, "cert.pem")?;
    let key = parse_key_pem(key_pem)?;
    let provider = provider();
    let verifier = Arc::new(CollectorVerifier::new(roots, provider.clone()));
    let config = tls13_builder(provider)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError::Certificate(format!("cert.pem/key.pem: {e}")))?;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM text; at least one is required.
pub fn parse_certs_pem(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate found".to_string(),
        });
    }
    Ok(certs)
}

/// The private key of a PEM text (PKCS#8, SEC1 or PKCS#1).
pub fn parse_key_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "key.pem",
        reason: e.to_string(),
    })
}

/// Checks that `key_pem` is the private key of the first certificate of `cert_pem`.
pub fn check_key_matches(cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
    let chain = parse_certs_pem(cert_pem, "cert.pem")?;
    let key = parse_key_pem(key_pem)?;
    let ck = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| TlsError::Certificate(format!("cert.pem/key.pem: {e}")))?;
    ck.keys_match()
        .map_err(|e| TlsError::Certificate(format!("cert.pem/key.pem: {e}")))
}

/// Checks that the client certificate chain in `cert_pem` was issued by the CA `ca_der` and is
/// currently valid for client authentication (what the collector will check in the handshake).
/// webpki directly, as rustls's `WebPkiClientVerifier` calls it without revocation lists (its
/// builder links CRL parsing), with rustls's error for each outcome ([`pki_error`]).
pub fn check_client_cert(ca_der: &[u8], cert_pem: &str) -> Result<(), TlsError> {
    let chain = parse_certs_pem(cert_pem, "certificate")?;
    let (end_entity, intermediates) = chain
        .split_first()
        .ok_or_else(|| TlsError::Certificate("empty certificate chain".to_string()))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| TlsError::Certificate(format!("CA: {e}")))?;
    let cert = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| TlsError::Certificate(pki_error(e).to_string()))?;
    cert.verify_for_usage(
        provider().signature_verification_algorithms.all,
        &roots.roots,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| TlsError::Certificate(pki_error(e).to_string()))
}

/// The rustls error rustls's verifiers make of a webpki error (rustls keeps its own mapping
/// private): the same variants for every outcome of a check without revocation lists, and
/// `Other` for the rest, as rustls does.
fn pki_error(error: webpki::Error) -> rustls::Error {
    use rustls::{CertificateError as C, ExtendedKeyPurpose, OtherError};
    use webpki::Error::*;
    let purpose = |values: Vec<usize>| match values.as_slice() {
        webpki::KeyUsage::CLIENT_AUTH_REPR => ExtendedKeyPurpose::ClientAuth,
        webpki::KeyUsage::SERVER_AUTH_REPR => ExtendedKeyPurpose::ServerAuth,
        _ => ExtendedKeyPurpose::Other(values),
    };
    #[allow(deprecated)]
    let e = match error {
        BadDer | BadDerTime | TrailingData(_) => C::BadEncoding,
        CertNotValidYet { time, not_before } => C::NotValidYetContext { time, not_before },
        CertExpired { time, not_after } => C::ExpiredContext { time, not_after },
        InvalidCertValidity => C::Expired,
        UnknownIssuer => C::UnknownIssuer,
        CertNotValidForName(webpki::InvalidNameContext {
            expected,
            presented,
        }) => C::NotValidForNameContext {
            expected,
            presented,
        },
        InvalidSignatureForPublicKey => C::BadSignature,
        UnsupportedSignatureAlgorithm | UnsupportedSignatureAlgorithmForPublicKey => {
            C::UnsupportedSignatureAlgorithm
        }
        UnsupportedSignatureAlgorithmContext(cx) => C::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id: cx.signature_algorithm_id,
            supported_algorithms: cx.supported_algorithms,
        },
        UnsupportedSignatureAlgorithmForPublicKeyContext(cx) => {
            C::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: cx.signature_algorithm_id,
                public_key_algorithm_id: cx.public_key_algorithm_id,
            }
        }
        RequiredEkuNotFound => C::InvalidPurpose,
        RequiredEkuNotFoundContext(webpki::RequiredEkuNotFoundContext { required, present }) => {
            C::InvalidPurposeContext {
                required: purpose(required.oid_values().collect()),
                presented: present.into_iter().map(purpose).collect(),
            }
        }
        other => C::Other(OtherError(Arc::new(other))),
    };
    e.into()
}

/// A certificate's validity period, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    pub fn lifetime(&self) -> i64 {
        self.not_after.saturating_sub(self.not_before)
    }

    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Renewal is due when less than a third of the lifetime remains (or the cert has expired).
    pub fn renew_due(&self, now: i64) -> bool {
        let remaining = self.not_after.saturating_sub(now);
        remaining.saturating_mul(3) < self.lifetime()
    }
}

/// Reads the validity of a DER certificate. `None` when the DER is not a certificate this
/// minimal reader understands.
pub fn cert_validity(der: &[u8]) -> Option<Validity> {
    let (tag, cert, _) = der_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = der_tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    // Optional explicit version [0].
    let (tag, _, after) = der_tlv(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer: skip three elements.
    for expected in [0x02u8, 0x30, 0x30] {
        let (tag, _, after) = der_tlv(rest)?;
        if tag != expected {
            return None;
        }
        rest = after;
    }
    let (tag, validity, _) = der_tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, nb, after) = der_tlv(validity)?;
    let (t2, na, _) = der_tlv(after)?;
    Some(Validity {
        not_before: der_time(t1, nb)?,
        not_after: der_time(t2, na)?,
    })
}

/// One DER element: (tag, contents, remaining bytes). Single-byte tags only.
fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2usize)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, b.get(header..end)?, b.get(end..)?))
}

/// UTCTime (0x17, `YYMMDDHHMMSSZ`) or GeneralizedTime (0x18, `YYYYMMDDHHMMSSZ`) to Unix seconds.
fn der_time(tag: u8, b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let digits = s.strip_suffix('Z')?;
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match tag {
        0x17 if digits.len() == 12 => {
            let yy: i64 = digits.get(0..2)?.parse().ok()?;
            (
                if yy >= 50 { 1900 + yy } else { 2000 + yy },
                digits.get(2..)?,
            )
        }
        0x18 if digits.len() == 14 => (digits.get(0..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| -> Option<i64> { rest.get(r)?.parse().ok() };
    let (month, day, hour, min, sec) =
        (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{date_time_ymd, CertificateParams, KeyPair};
    use rustls::client::WebPkiServerVerifier as WebPkiServerVerifierForTest;

    #[test]
    fn sha256_is_sha2s() {
        use sha2::Digest;
        for len in [0, 1, 55, 56, 63, 64, 65, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(
                sha256(&data),
                <[u8; 32]>::from(sha2::Sha256::digest(&data)),
                "{len}"
            );
        }
    }

    /// [`check_client_cert`] gives the answers (and errors) of rustls's `WebPkiClientVerifier`.
    #[test]
    fn client_cert_check_answers_as_rustls_client_verifier() {
        use rcgen::{BasicConstraints, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa};
        let ca = |name: &str| {
            let mut p = CertificateParams::default();
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
        };
        let (ours_ca, other_ca) = (ca("ca"), ca("other"));
        let leaf = |eku: Vec<ExtendedKeyUsagePurpose>, from: (i32, u8, u8), to: (i32, u8, u8)| {
            let mut p = CertificateParams::new(vec!["router-1".to_string()]).unwrap();
            p.extended_key_usages = eku;
            p.not_before = date_time_ymd(from.0, from.1, from.2);
            p.not_after = date_time_ymd(to.0, to.1, to.2);
            p.signed_by(&KeyPair::generate().unwrap(), &ours_ca)
                .unwrap()
                .pem()
        };
        let client = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cases = [
            leaf(client.clone(), (2020, 1, 1), (2090, 1, 1)),
            leaf(vec![], (2020, 1, 1), (2090, 1, 1)),
            leaf(client.clone(), (2020, 1, 1), (2021, 1, 1)),
            leaf(client, (2080, 1, 1), (2090, 1, 1)),
            leaf(
                vec![ExtendedKeyUsagePurpose::ServerAuth],
                (2020, 1, 1),
                (2090, 1, 1),
            ),
            leaf(
                vec![ExtendedKeyUsagePurpose::Other(vec![1, 2, 3, 4])],
                (2020, 1, 1),
                (2090, 1, 1),
            ),
        ];
        let mut outcomes = Vec::new();
        for root in [&ours_ca, &other_ca] {
            let mut roots = RootCertStore::empty();
            roots.add(root.der().clone()).unwrap();
            let theirs = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            for pem in &cases {
                let chain = parse_certs_pem(pem, "certificate").unwrap();
                let want = theirs
                    .verify_client_cert(&chain[0], &[], UnixTime::now())
                    .map(|_| ())
                    .map_err(|e| TlsError::Certificate(e.to_string()));
                let got = check_client_cert(root.der(), pem);
                assert_eq!(got, want);
                outcomes.push(got.map_err(|e| e.to_string()));
            }
        }
        // Passes, expired, not yet valid, wrong purpose, unknown issuer: all seen.
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            2,
            "{outcomes:#?}"
        );
        let text = format!("{outcomes:?}");
        for what in [
            "expired",
            "not valid yet",
            "extended key usage",
            "UnknownIssuer",
        ] {
            assert!(text.contains(what), "{what}: {text}");
        }
        let garbage = "-----BEGIN CERTIFICATE-----\nMAMBAgM=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            check_client_cert(ours_ca.der(), garbage),
            Err(TlsError::Certificate(
                rustls::Error::from(rustls::CertificateError::BadEncoding).to_string()
            ))
        );
    }

    /// [`CollectorVerifier`] gives the answers (and errors) of rustls's own verifier built with
    /// the same roots and no revocation lists.
    #[test]
    fn collector_verifier_answers_as_rustls_webpki_verifier() {
        use rcgen::{BasicConstraints, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa};
        let ca = |name: &str| {
            let mut p = CertificateParams::default();
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
        };
        let (ours_ca, other_ca) = (ca("ca"), ca("other"));
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = p
            .signed_by(&KeyPair::generate().unwrap(), &ours_ca)
            .unwrap();
        let mut client_only = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        client_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_leaf = client_only
            .signed_by(&KeyPair::generate().unwrap(), &ours_ca)
            .unwrap();

        let now = UnixTime::now();
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(300_000_000_000));
        let garbage = CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
        let name = |n: &str| ServerName::try_from(n.to_string()).unwrap();
        let mut checked = 0;
        for root in [&ours_ca, &other_ca] {
            let mut roots = RootCertStore::empty();
            roots.add(root.der().clone()).unwrap();
            let theirs = WebPkiServerVerifierForTest::builder_with_provider(
                Arc::new(roots.clone()),
                provider(),
            )
            .build()
            .unwrap();
            let ours = CollectorVerifier::new(roots, provider());
            for (ee, chain, server, at) in [
                (leaf.der(), vec![], name("localhost"), now),
                (leaf.der(), vec![root.der().clone()], name("127.0.0.1"), now),
                (leaf.der(), vec![], name("collector.example"), now),
                (leaf.der(), vec![], name("localhost"), later),
                (client_leaf.der(), vec![], name("localhost"), now),
                (&garbage, vec![], name("localhost"), now),
            ] {
                let a = ours
                    .verify_server_cert(ee, &chain, &server, &[], at)
                    .map(|_| ());
                let b = theirs
                    .verify_server_cert(ee, &chain, &server, &[], at)
                    .map(|_| ());
                assert_eq!(format!("{a:?}"), format!("{b:?}"));
                checked += usize::from(a.is_ok());
            }
            assert_eq!(
                ours.supported_verify_schemes(),
                theirs.supported_verify_schemes()
            );
        }
        assert_eq!(checked, 2, "the good chain passes, under its own root only");
    }

    #[test]
    fn collector_addresses_parse() {
        let a = CollectorAddr::parse("collector.example.net:7443").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("collector.example.net", 7443));
        assert!(matches!(a.server_name, ServerName::DnsName(_)));
        assert_eq!(a.to_string(), "collector.example.net:7443");

        let a = CollectorAddr::parse("192.0.2.7:9000").unwrap();
        assert_eq!(
            a.server_name,
            ServerName::IpAddress("192.0.2.7".parse::<IpAddr>().unwrap().into())
        );
        assert_eq!(a.port, 9000);

        let a = CollectorAddr::parse("[::1]:7443").unwrap();
        assert_eq!(a.host, "::1");
        assert_eq!(
            a.server_name,
            ServerName::IpAddress("::1".parse::<IpAddr>().unwrap().into())
        );
        assert_eq!(a.to_string(), "[::1]:7443");

        assert_eq!(
            CollectorAddr::parse("collector").unwrap().port,
            DEFAULT_PORT
        );
        assert_eq!(CollectorAddr::parse("fd00::5").unwrap().port, DEFAULT_PORT);
        assert_eq!(CollectorAddr::parse("[fd00::5]").unwrap().host, "fd00::5");
    }

    #[test]
    fn bad_collector_addresses_are_refused() {
        for bad in [
            "",
            "  ",
            "host:",
            "host:0",
            "host:99999",
            "host:x",
            ":7443",
            "[::1",
            "[::1]7443",
            "[host]:1",
            "fd00::5:7443:",
            "bad_host!:1",
        ] {
            assert!(CollectorAddr::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn validity_is_read_from_utc_and_generalized_time() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        p.not_before = date_time_ymd(2024, 2, 29);
        p.not_after = date_time_ymd(2060, 1, 1); // after 2049: GeneralizedTime
        let cert = p.self_signed(&key).unwrap();
        let v = cert_validity(cert.der()).unwrap();
        assert_eq!(v.not_before, 1_709_164_800);
        assert_eq!(v.not_after, 2_840_140_800);

        p.not_before = date_time_ymd(1999, 12, 31);
        p.not_after = date_time_ymd(2000, 3, 1);
        let cert = p.self_signed(&key).unwrap();
        let v = cert_validity(cert.der()).unwrap();
        assert_eq!(v.not_before, 946_598_400);
        assert_eq!(v.not_after, 951_868_800);
    }

    #[test]
    fn renewal_is_due_in_the_last_third() {
        let v = Validity {
            not_before: 0,
            not_after: 90,
        };
        assert!(!v.renew_due(0));
        assert!(!v.renew_due(59));
        assert!(v.renew_due(61));
        assert!(v.renew_due(1000));
        assert!(v.is_valid_at(90) && !v.is_valid_at(91) && !v.is_valid_at(-1));
    }

    #[test]
    fn garbage_is_not_a_validity() {
        assert_eq!(cert_validity(b""), None);
        assert_eq!(cert_validity(&[0x30, 0x82, 0xff]), None);
        assert_eq!(cert_validity(&[0x30, 0x00]), None);
        assert_eq!(der_time(0x17, b"991301000000Z"), None);
        assert_eq!(der_time(0x18, b"20240101000000"), None);
    }

    #[test]
    fn pem_helpers_report_what_is_wrong() {
        assert!(matches!(
            parse_certs_pem("", "ca.pem"),
            Err(TlsError::Pem { what: "ca.pem", .. })
        ));
        assert!(parse_key_pem("not a key").is_err());
        let key = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(check_key_matches(&cert.pem(), &key.serialize_pem()).is_ok());
        assert!(matches!(
            check_key_matches(&cert.pem(), &other.serialize_pem()),
            Err(TlsError::Certificate(_))
        ));
        assert!(mtls_client_config(&cert.pem(), &cert.pem(), &other.serialize_pem()).is_err());
        assert!(mtls_client_config(&cert.pem(), &cert.pem(), &key.serialize_pem()).is_ok());
    }

    proptest! {
        #[test]
        fn validity_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = cert_validity(&bytes);
        }

        #[test]
        fn truncated_certificates_never_panic(cut in 0usize..600) {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec!["t".to_string()]).unwrap().self_signed(&key).unwrap();
            let der = cert.der().as_ref();
            let cut = cut.min(der.len());
            let _ = cert_validity(&der[..cut]);
        }

        #[test]
        fn addresses_never_panic(s in ".{0,40}") {
            let _ = CollectorAddr::parse(&s);
        }
    }
}
