//! The collector's certificate authority and certificates.
//!
//! On first start the collector creates an ECDSA P-256 CA (10 years) in its data dir and a server
//! certificate (2 years) for `localhost`, `127.0.0.1`, `::1`, the machine hostname and the
//! configured names; later starts load them, and the server certificate is re-issued when the
//! configured names changed, when it expires within 30 days, or when it no longer matches the CA or
//! its key. Routers send a CSR for a key they generated; [`Pki::sign_client_csr`] turns it into a
//! client certificate whose CN is the router name. Key files are written with mode 0600.
//! [`tokens`] holds the one-time enrollment tokens and API keys.

pub mod tokens;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::prelude::FromDer;

use crate::clock::unix_now;

/// File names inside the data dir.
pub const CA_KEY_FILE: &str = "ca.key";
pub const CA_CERT_FILE: &str = "ca.pem";
pub const SERVER_KEY_FILE: &str = "server.key";
pub const SERVER_CERT_FILE: &str = "server.pem";

/// Validity of the CA certificate.
const CA_DAYS: i64 = 3650;
/// Validity of the server certificate.
const SERVER_DAYS: i64 = 730;
/// The server certificate is re-issued when it expires within this many days.
const SERVER_RENEW_BEFORE_DAYS: i64 = 30;
/// Certificates are back-dated this much to tolerate clocks that are slightly behind.
const BACKDATE_SECS: i64 = 300;
/// The longest client certificate validity we issue (10 years).
pub const MAX_CLIENT_CERT_DAYS: u32 = 3650;

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} exists but {} is missing; restore it from a backup (or move both away to create a new CA, which makes every enrolled router re-enroll)", present.display(), missing.display())]
    HalfCa { present: PathBuf, missing: PathBuf },
    #[error("{} is not a usable {what}: {reason}", path.display())]
    BadFile {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the CA key {} does not belong to the CA certificate {}", key.display(), cert.display())]
    CaKeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("invalid server name {name:?}: {reason}")]
    BadServerName { name: String, reason: String },
    #[error("bad certificate signing request: {0}")]
    BadCsr(String),
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

fn gen_err(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// A freshly signed client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCert {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// SHA-256 hex of the DER (see [`cert_fingerprint`]).
    pub fingerprint: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// Validity and identity facts of a certificate, read from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub common_name: Option<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// The CA and the server identity, loaded or created in the data dir.
pub struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    ca_hash: [u8; 32],
    issuer: Issuer<'static, KeyPair>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    server_not_after: i64,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca_hash", &routerstats_shared::token::hex(&self.ca_hash))
            .field("server_not_after", &self.server_not_after)
            .finish_non_exhaustive()
    }
}

/// SHA-256 hex of a certificate's DER: how the collector identifies a router's certificate.
pub fn cert_fingerprint(der: &[u8]) -> String {
    routerstats_shared::token::hex(&Sha256::digest(der))
}

/// The machine's hostname, if it can be read and is usable as a DNS name.
pub fn machine_hostname() -> Option<String> {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .ok()?;
    let name = raw.trim().to_ascii_lowercase();
    if is_dns_name(&name) {
        Some(name)
    } else {
        None
    }
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Normalises a configured server name: IP addresses in canonical form, DNS names lowercased.
pub fn normalize_server_name(name: &str) -> Result<String, PkiError> {
    let trimmed = name.trim();
    let bracketless = trimmed.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bracketless.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let lower = trimmed.trim_end_matches('.').to_ascii_lowercase();
    let wildcard_ok = lower.strip_prefix("*.").map(is_dns_name).unwrap_or(false);
    if is_dns_name(&lower) || wildcard_ok {
        Ok(lower)
    } else {
        Err(PkiError::BadServerName {
            name: name.to_string(),
            reason: "expected a DNS name (letters, digits, '-', '.') or an IP address".into(),
        })
    }
}

/// The full set of names the server certificate must carry.
pub fn server_name_set(configured: &[String]) -> Result<BTreeSet<String>, PkiError> {
    let mut set: BTreeSet<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(h) = machine_hostname() {
        set.insert(h);
    }
    for n in configured {
        set.insert(normalize_server_name(n)?);
    }
    Ok(set)
}

/// Reads validity and CN from a certificate's DER.
pub fn cert_facts(der: &[u8]) -> Result<CertFacts, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Ok(CertFacts {
        common_name,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Parses every certificate of a PEM text into DER.
pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok(certs)
}

/// Writes `contents` to `path` atomically (temp file + rename) with the given mode.
pub fn write_file_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| PkiError::Io {
            action,
            path: p,
            source,
        }
    };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(contents).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    drop(f);
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io("chmod", &tmp))?;
    fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    Ok(())
}

fn read_opt(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn offset_from_unix(secs: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PkiError::Generate(e.to_string()))
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte, so the DER INTEGER is minimal and 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// A public key taken from a verified CSR, ready to be put into a certificate.
struct CsrKey {
    raw: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Parses a PEM CSR, verifies its self-signature and accepts only ECDSA P-256 and Ed25519 keys.
fn parse_csr(csr_pem: &str) -> Result<CsrKey, PkiError> {
    let bad = |m: &str| PkiError::BadCsr(m.to_string());
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes())
        .map_err(|e| PkiError::BadCsr(format!("not PEM: {e}")))?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(PkiError::BadCsr(format!(
            "PEM block is {:?}, expected \"CERTIFICATE REQUEST\"",
            pem.label
        )));
    }
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| PkiError::BadCsr(format!("not a PKCS#10 request: {e}")))?;
    csr.verify_signature()
        .map_err(|e| PkiError::BadCsr(format!("signature does not verify: {e}")))?;
    let spki = &csr.certification_request_info.subject_pki;
    let alg: &'static SignatureAlgorithm = if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
    {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| bad("EC key without a named curve"))?;
        if curve != OID_EC_P256 {
            return Err(PkiError::BadCsr(format!(
                "EC curve {curve} is not supported (use P-256)"
            )));
        }
        &rcgen::PKCS_ECDSA_P256_SHA256
    } else if spki.algorithm.algorithm == OID_SIG_ED25519 {
        &rcgen::PKCS_ED25519
    } else {
        return Err(PkiError::BadCsr(format!(
            "key type {} is not supported (use ECDSA P-256 or Ed25519)",
            spki.algorithm.algorithm
        )));
    };
    Ok(CsrKey {
        raw: spki.subject_public_key.data.to_vec(),
        alg,
    })
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "routerstats");
    dn.push(DnType::CommonName, "routerstats collector CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The DNS names and IP addresses of a certificate's subjectAltName, normalised as in
/// [`normalize_server_name`].
fn san_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> BTreeSet<String> {
    let mut have = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for gn in &san.value.general_names {
            match gn {
                GeneralName::DNSName(d) => {
                    have.insert(d.to_ascii_lowercase());
                }
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        have.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    have
}

/// Loads the CA from `data_dir`, creating it when neither `ca.key` nor `ca.pem` exists.
#[allow(clippy::type_complexity)]
fn load_or_create_ca(
    data_dir: &Path,
) -> Result<
    (
        CertificateDer<'static>,
        String,
        [u8; 32],
        Issuer<'static, KeyPair>,
    ),
    PkiError,
> {
    let ca_key_path = data_dir.join(CA_KEY_FILE);
    let ca_cert_path = data_dir.join(CA_CERT_FILE);
    let (ca_key_pem, ca_cert_pem) = match (read_opt(&ca_key_path)?, read_opt(&ca_cert_path)?) {
        (Some(k), Some(c)) => (k, c),
        (None, None) => {
            let (k, c) = create_ca()?;
            write_file_mode(&ca_key_path, k.as_bytes(), 0o600)?;
            write_file_mode(&ca_cert_path, c.as_bytes(), 0o644)?;
            tracing::info!(path = %ca_cert_path.display(), "created a new collector CA");
            (k, c)
        }
        (Some(_), None) => {
            return Err(PkiError::HalfCa {
                present: ca_key_path,
                missing: ca_cert_path,
            })
        }
        (None, Some(_)) => {
            return Err(PkiError::HalfCa {
                present: ca_cert_path,
                missing: ca_key_path,
            })
        }
    };
    let bad = |path: &Path, what: &'static str| {
        let path = path.to_path_buf();
        move |reason: String| PkiError::BadFile { path, what, reason }
    };
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .map_err(|e| bad(&ca_key_path, "private key")(e.to_string()))?;
    let ca_der = pem_certs(&ca_cert_pem)
        .map_err(bad(&ca_cert_path, "certificate"))?
        .into_iter()
        .next()
        .ok_or_else(|| bad(&ca_cert_path, "certificate")("empty".into()))?;
    {
        let (_, cert) = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|e| bad(&ca_cert_path, "certificate")(e.to_string()))?;
        if cert.public_key().subject_public_key.data.as_ref() != ca_key.public_key_raw() {
            return Err(PkiError::CaKeyMismatch {
                key: ca_key_path,
                cert: ca_cert_path,
            });
        }
    }
    let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key)
        .map_err(|e| bad(&ca_cert_path, "CA certificate")(e.to_string()))?;
    let ca_hash: [u8; 32] = Sha256::digest(&ca_der).into();
    let ca_pem = ca_cert_pem;
    Ok((ca_der, ca_pem, ca_hash, issuer))
}

/// The SHA-256 of the CA certificate in `data_dir` (creating the CA if there is none yet), for
/// commands that issue enrollment tokens without starting the server.
pub fn ca_hash_in(data_dir: &Path) -> Result<[u8; 32], PkiError> {
    load_or_create_ca(data_dir).map(|(_, _, hash, _)| hash)
}

fn create_ca() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
    let mut params = ca_params();
    let now = unix_now();
    params.not_before = offset_from_unix(now - BACKDATE_SECS)?;
    params.not_after = offset_from_unix(now + CA_DAYS * 86_400)?;
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key).map_err(gen_err)?;
    Ok((key.serialize_pem(), cert.pem()))
}

impl Pki {
    /// Loads the CA and server identity from `data_dir`, creating what is missing.
    pub fn load_or_create(data_dir: &Path, server_names: &[String]) -> Result<Pki, PkiError> {
        let names = server_name_set(server_names)?;
        let (ca_der, ca_pem, ca_hash, issuer) = load_or_create_ca(data_dir)?;

        let server_key_path = data_dir.join(SERVER_KEY_FILE);
        let server_cert_path = data_dir.join(SERVER_CERT_FILE);
        let existing = Self::load_server(&server_key_path, &server_cert_path, &ca_der, &names);
        let (server_der, server_key_der, server_not_after) = match existing {
            Ok(Some(v)) => v,
            other => {
                match other {
                    Err(reason) => tracing::warn!(%reason, "re-issuing the server certificate"),
                    _ => tracing::info!(names = ?names, "issuing the server certificate"),
                }
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
                let mut params = CertificateParams::new(names.iter().cloned().collect::<Vec<_>>())
                    .map_err(gen_err)?;
                let mut dn = DistinguishedName::new();
                dn.push(DnType::OrganizationName, "routerstats");
                dn.push(DnType::CommonName, "routerstats collector");
                params.distinguished_name = dn;
                let now = unix_now();
                let not_after = now + SERVER_DAYS * 86_400;
                params.not_before = offset_from_unix(now - BACKDATE_SECS)?;
                params.not_after = offset_from_unix(not_after)?;
                params.serial_number = Some(random_serial());
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.use_authority_key_identifier_extension = true;
                let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
                write_file_mode(&server_key_path, key.serialize_pem().as_bytes(), 0o600)?;
                write_file_mode(&server_cert_path, cert.pem().as_bytes(), 0o644)?;
                (cert.der().clone(), key.serialize_der(), not_after)
            }
        };
        Ok(Pki {
            ca_der,
            ca_pem,
            ca_hash,
            issuer,
            server_der,
            server_key_der,
            server_not_after,
        })
    }

    /// Loads the server identity; `Ok(None)` when absent, `Err(reason)` when it must be re-issued.
    #[allow(clippy::type_complexity)]
    fn load_server(
        key_path: &Path,
        cert_path: &Path,
        ca_der: &[u8],
        names: &BTreeSet<String>,
    ) -> Result<Option<(CertificateDer<'static>, Vec<u8>, i64)>, String> {
        let (key_pem, cert_pem) = match (read_opt(key_path), read_opt(cert_path)) {
            (Ok(Some(k)), Ok(Some(c))) => (k, c),
            (Ok(None), Ok(None)) => return Ok(None),
            (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
            _ => return Err("server key or certificate is missing".into()),
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| format!("server key unreadable: {e}"))?;
        let der = pem_certs(&cert_pem)?
            .into_iter()
            .next()
            .ok_or("server certificate is empty")?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
        let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| e.to_string())?;
        if cert.issuer().as_raw() != ca.subject().as_raw()
            || cert.verify_signature(Some(ca.public_key())).is_err()
        {
            return Err("server certificate was not issued by the current CA".into());
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err("server key does not match the server certificate".into());
        }
        let not_after = cert.validity().not_after.timestamp();
        if not_after < unix_now() + SERVER_RENEW_BEFORE_DAYS * 86_400 {
            return Err("server certificate expires within 30 days".into());
        }
        let have = san_names(&cert);
        if &have != names {
            return Err(format!(
                "server names changed (certificate has {have:?}, want {names:?})"
            ));
        }
        let der = der.into_owned();
        Ok(Some((der, key.serialize_der(), not_after)))
    }

    /// SHA-256 of the CA certificate DER (the hash carried in enrollment tokens).
    pub fn ca_hash(&self) -> [u8; 32] {
        self.ca_hash
    }

    /// The CA certificate in PEM form (sent to enrolling routers).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate in DER form (trust root for client certificates).
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The chain the TLS server presents: `[server leaf, CA]`.
    pub fn server_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server_der.clone(), self.ca_der.clone()]
    }

    /// The server's private key for rustls.
    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()))
    }

    /// When the server certificate expires (Unix seconds).
    pub fn server_not_after(&self) -> i64 {
        self.server_not_after
    }

    /// Checks a CSR (signature, key type) without signing it.
    pub fn check_csr(csr_pem: &str) -> Result<(), PkiError> {
        parse_csr(csr_pem).map(|_| ())
    }

    /// Signs a router's CSR into a client certificate with CN = `router_name`, valid for `days`.
    ///
    /// Only the CSR's public key is used; its subject and requested extensions are ignored.
    pub fn sign_client_csr(
        &self,
        csr_pem: &str,
        router_name: &str,
        days: u32,
    ) -> Result<SignedCert, PkiError> {
        let key = parse_csr(csr_pem)?;
        let days = days.clamp(1, MAX_CLIENT_CERT_DAYS);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, router_name);
        params.distinguished_name = dn;
        let now = unix_now();
        let not_before = now - BACKDATE_SECS;
        let not_after = now + i64::from(days) * 86_400;
        params.not_before = offset_from_unix(not_before)?;
        params.not_after = offset_from_unix(not_after)?;
        params.serial_number = Some(random_serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        let cert_der = cert.der().to_vec();
        Ok(SignedCert {
            cert_pem: cert.pem(),
            fingerprint: cert_fingerprint(&cert_der),
            cert_der,
            not_before,
            not_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn csr_for(key: &KeyPair) -> String {
        let mut params = CertificateParams::new(vec!["ignored.example".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "requested-by-router");
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    #[test]
    fn creates_ca_and_server_with_0600_keys_and_reloads_them() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["stats.example.net".into()]).unwrap();
        for f in [CA_KEY_FILE, SERVER_KEY_FILE] {
            let mode = fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let again = Pki::load_or_create(dir.path(), &["stats.example.net".into()]).unwrap();
        assert_eq!(pki.ca_hash(), again.ca_hash());
        assert_eq!(
            pki.server_chain(),
            again.server_chain(),
            "unchanged names keep the server cert"
        );
        let hash: [u8; 32] = Sha256::digest(pki.ca_der()).into();
        assert_eq!(pki.ca_hash(), hash);
    }

    #[test]
    fn chain_includes_ca_and_server_sans() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["10.1.2.3".into(), "Stats.Example.NET".into()])
            .unwrap();
        let chain = pki.server_chain();
        assert_eq!(chain.len(), 2);
        assert_eq!(&chain[1], pki.ca_der());
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let names = san_names(&leaf);
        for want in [
            "localhost",
            "stats.example.net",
            "10.1.2.3",
            "127.0.0.1",
            "::1",
        ] {
            assert!(names.contains(want), "{want} missing from {names:?}");
        }
    }

    #[test]
    fn server_cert_reissued_when_names_change_but_ca_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &[]).unwrap();
        let b = Pki::load_or_create(dir.path(), &["new.example".into()]).unwrap();
        assert_eq!(a.ca_hash(), b.ca_hash());
        assert_ne!(a.server_chain()[0], b.server_chain()[0]);
    }

    #[test]
    fn half_ca_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path(), &[]).unwrap();
        fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        let err = Pki::load_or_create(dir.path(), &[]).unwrap_err();
        assert!(matches!(err, PkiError::HalfCa { .. }), "{err}");
    }

    #[test]
    fn signs_p256_and_ed25519_csrs_with_router_cn() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
            let key = KeyPair::generate_for(alg).unwrap();
            let signed = pki
                .sign_client_csr(&csr_for(&key), "ap-kitchen", 90)
                .unwrap();
            let facts = cert_facts(&signed.cert_der).unwrap();
            assert_eq!(facts.common_name.as_deref(), Some("ap-kitchen"));
            assert!((facts.not_after - unix_now() - 90 * 86_400).abs() < 10);
            assert_eq!(signed.fingerprint, cert_fingerprint(&signed.cert_der));
            let (_, cert) = x509_parser::parse_x509_certificate(&signed.cert_der).unwrap();
            let (_, ca) = x509_parser::parse_x509_certificate(pki.ca_der()).unwrap();
            cert.verify_signature(Some(ca.public_key())).unwrap();
            assert_eq!(
                cert.public_key().subject_public_key.data.as_ref(),
                key.public_key_raw()
            );
            // The CSR's requested SAN is not copied.
            assert!(cert.subject_alternative_name().unwrap().is_none());
        }
    }

    #[test]
    fn rejects_garbage_and_foreign_key_types() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        for garbage in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(
                matches!(
                    pki.sign_client_csr(garbage, "r", 90),
                    Err(PkiError::BadCsr(_))
                ),
                "{garbage:?}"
            );
        }
        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let err = pki.sign_client_csr(&csr_for(&p384), "r", 90).unwrap_err();
        assert!(
            matches!(&err, PkiError::BadCsr(m) if m.contains("curve")),
            "{err}"
        );
        // A certificate is not a CSR.
        let cert_pem = fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap();
        assert!(matches!(
            pki.sign_client_csr(&cert_pem, "r", 90),
            Err(PkiError::BadCsr(_))
        ));
    }

    #[test]
    fn rejects_csr_with_broken_signature() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut der = params.serialize_request(&key).unwrap().der().to_vec();
        // Flip a bit in the last byte (inside the signature value).
        if let Some(last) = der.last_mut() {
            *last ^= 0x01;
        }
        let pem = x509_pem("CERTIFICATE REQUEST", &der);
        let err = pki.sign_client_csr(&pem, "r", 90).unwrap_err();
        assert!(
            matches!(&err, PkiError::BadCsr(m) if m.contains("signature")),
            "{err}"
        );
    }

    fn x509_pem(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    #[test]
    fn server_names_are_validated_and_normalised() {
        assert_eq!(normalize_server_name("[::1]").unwrap(), "::1");
        assert_eq!(
            normalize_server_name("Stats.Example.").unwrap(),
            "stats.example"
        );
        assert!(normalize_server_name("bad name").is_err());
        assert!(normalize_server_name("").is_err());
    }
}
