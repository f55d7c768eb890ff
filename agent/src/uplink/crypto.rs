//! The agent's rustls crypto provider: only what the collector speaks, nothing else linked.
//!
//! `rustls::crypto::ring::default_provider()` names every cipher suite, key exchange group,
//! signature algorithm and private key type rustls supports, so none of that code can be dropped
//! at link time (about 150 KB on MIPS). The collector (`collector/src/ingest/listener.rs`, `pki/mod.rs`)
//! speaks TLS 1.3 only, and its CA and server keys are ECDSA P-256 (rcgen's
//! `PKCS_ECDSA_P256_SHA256`), as is the key the agent generates for itself. So the agent offers:
//!
//! - cipher suites `TLS13_CHACHA20_POLY1305_SHA256` (first: fast without AES instructions, as on
//!   MIPS) and `TLS13_AES_128_GCM_SHA256` (the suite every TLS 1.3 peer must support);
//! - key exchange over P-256 (`secp256r1`) only;
//! - signature verification (certificate chains and the server's `CertificateVerify`) with
//!   ECDSA P-256/SHA-256 only;
//! - private keys: ECDSA P-256 in PKCS#8 (what `enroll` writes) or SEC1, signing with
//!   `ecdsa_secp256r1_sha256`.
//!
//! A collector with another kind of CA or server key fails the handshake with a clear rustls
//! error (no common signature scheme), it does not silently downgrade.

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{alg_id, PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::{public_key_to_spki, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// ECDSA P-256 with SHA-256, the only signature the agent verifies.
static SIG_ALGS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[webpki::ring::ECDSA_P256_SHA256],
    mapping: &[(
        SignatureScheme::ECDSA_NISTP256_SHA256,
        &[webpki::ring::ECDSA_P256_SHA256],
    )],
};

/// The provider (see the module doc).
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::SECP256R1],
        signature_verification_algorithms: SIG_ALGS,
        secure_random: &Ring,
        key_provider: &Ring,
    }
}

/// ring's system random generator and the P-256 key loader.
#[derive(Debug)]
struct Ring;

impl SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        ring::rand::SecureRandom::fill(&SystemRandom::new(), buf).map_err(|_| GetRandomFailed)
    }
}

impl KeyProvider for Ring {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        P256Key::from_der(&key_der).map(|k| Arc::new(k) as Arc<dyn SigningKey>)
    }
}

/// An ECDSA P-256 private key, signing `ecdsa_secp256r1_sha256`.
#[derive(Debug)]
struct P256Key(Arc<EcdsaKeyPair>);

/// PKCS#8 `version` and `privateKeyAlgorithm` (id-ecPublicKey, prime256v1): the prefix that turns
/// a SEC1 `ECPrivateKey` into a PKCS#8 `PrivateKeyInfo` (ring reads only PKCS#8).
const PKCS8_PREFIX_P256: &[u8] = b"\x02\x01\x00\
      \x30\x13\
      \x06\x07\x2a\x86\x48\xce\x3d\x02\x01\
      \x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";

impl P256Key {
    fn from_der(der: &PrivateKeyDer<'_>) -> Result<Self, rustls::Error> {
        let rng = SystemRandom::new();
        let pkcs8 = match der {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            PrivateKeyDer::Sec1(k) => {
                let mut body = PKCS8_PREFIX_P256.to_vec();
                body.extend(der_wrap(0x04, k.secret_sec1_der()));
                der_wrap(0x30, &body)
            }
            _ => return Err(rustls::Error::General(
                "unsupported private key type: the agent uses ECDSA P-256 keys (PKCS#8 or SEC1)"
                    .into(),
            )),
        };
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
            .map(|k| P256Key(Arc::new(k)))
            .map_err(|e| rustls::Error::General(format!("not an ECDSA P-256 private key: {e}")))
    }
}

/// One DER element: tag, definite length, contents.
pub(crate) fn der_wrap(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(contents);
    out
}

impl SigningKey for P256Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(P256Signer(self.0.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(public_key_to_spki(&alg_id::ECDSA_P256, self.0.public_key()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

/// Signs one handshake with a [`P256Key`].
#[derive(Debug)]
struct P256Signer(Arc<EcdsaKeyPair>);

impl Signer for P256Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.0
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| rustls::Error::General("ECDSA signing failed".into()))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair as RcgenKeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
    use rustls::sign::CertifiedKey;

    fn p256_cert() -> (RcgenKeyPair, CertificateDer<'static>) {
        let key = RcgenKeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = CertificateParams::new(vec!["k".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (key, cert.der().clone())
    }

    #[test]
    fn offers_tls13_p256_and_ecdsa_p256_only() {
        let p = provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites,
            [
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
            ]
        );
        assert!(p
            .cipher_suites
            .iter()
            .all(|s| s.version() == &rustls::version::TLS13));
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, [rustls::NamedGroup::secp256r1]);
        assert_eq!(
            p.signature_verification_algorithms.supported_schemes(),
            [SignatureScheme::ECDSA_NISTP256_SHA256]
        );
        let mut buf = [0u8; 32];
        p.secure_random.fill(&mut buf).unwrap();
        assert_ne!(buf, [0u8; 32]);
    }

    #[test]
    fn p256_keys_load_in_pkcs8_and_sec1_and_match_their_certificate() {
        let (key, cert) = p256_cert();
        let pkcs8 = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let loaded = provider().key_provider.load_private_key(pkcs8).unwrap();
        let ck = CertifiedKey::new(vec![cert.clone()], loaded);
        ck.keys_match().unwrap();
        let signer = ck
            .key
            .choose_scheme(&[
                SignatureScheme::ED25519,
                SignatureScheme::ECDSA_NISTP256_SHA256,
            ])
            .unwrap();
        assert_eq!(signer.scheme(), SignatureScheme::ECDSA_NISTP256_SHA256);
        let sig = signer.sign(b"hello").unwrap();
        // The signature verifies with the certificate's public key.
        let spki = ck.key.public_key().unwrap();
        let pubkey = spki.as_ref().get(spki.as_ref().len() - 65..).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, pubkey)
            .verify(b"hello", &sig)
            .unwrap();
        assert!(ck.key.choose_scheme(&[SignatureScheme::ED25519]).is_none());

        // The same key as SEC1 (`EC PRIVATE KEY`): the PKCS#8 wrapper holds it as an OCTET
        // STRING at the end; openssl's `ec -outform DER` gives the same bytes.
        let sec1 = sec1_of(&key.serialize_der());
        let loaded = provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(sec1)))
            .unwrap();
        assert_eq!(loaded.public_key().unwrap(), spki);
    }

    /// The `ECPrivateKey` inside a PKCS#8 P-256 key: the contents of its last OCTET STRING.
    fn sec1_of(pkcs8: &[u8]) -> Vec<u8> {
        // SEQUENCE { INTEGER 0, SEQUENCE {...}, OCTET STRING { ECPrivateKey } }
        let header = |b: &[u8]| {
            if b[1] & 0x80 == 0 {
                2
            } else {
                2 + usize::from(b[1] & 0x7f)
            }
        };
        let inner = &pkcs8[header(pkcs8)..];
        assert!(inner.starts_with(PKCS8_PREFIX_P256));
        let octets = &inner[PKCS8_PREFIX_P256.len()..];
        assert_eq!(octets[0], 0x04);
        octets[header(octets)..].to_vec()
    }

    #[test]
    fn other_key_types_are_refused_with_a_reason() {
        let ed = RcgenKeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let err = provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                ed.serialize_der(),
            )))
            .unwrap_err();
        assert!(err.to_string().contains("P-256"), "{err}");
        let p384 = RcgenKeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(
            PrivateKeyDer::from_pem_slice(p384.serialize_pem().as_bytes())
                .map(|k| provider().key_provider.load_private_key(k).is_err())
                .unwrap()
        );
    }

    #[test]
    fn der_lengths_use_the_short_and_long_forms() {
        assert_eq!(der_wrap(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = der_wrap(0x30, &[0u8; 200]);
        assert_eq!(&long[..3], &[0x30, 0x81, 200]);
        assert_eq!(long.len(), 203);
        let longer = der_wrap(0x30, &[0u8; 300]);
        assert_eq!(&longer[..4], &[0x30, 0x82, 0x01, 0x2c]);
    }
}
