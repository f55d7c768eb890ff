//! The agent's key and certificate signing request, built with ring and a few lines of DER.
//!
//! The agent needs exactly one kind of request: a fresh ECDSA P-256 key and a PKCS#10 CSR for it
//! with `CN = <name>`, no attributes, signed `ecdsa-with-SHA256`. rcgen made it before, which
//! links a general DER writer (yasna), a PEM encoder and the signing code of every key type rcgen
//! supports (Ed25519 with its 24 KB table, RSA): about 75 KB on MIPS for a fixed template. The
//! bytes produced are the same as rcgen's for the same key (a test compares them); the signature
//! differs only because ECDSA signatures are randomized.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::crypto::der_wrap;

/// DER of the OID 2.5.4.3 (commonName).
const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
/// `AlgorithmIdentifier` contents of an EC P-256 public key: id-ecPublicKey, prime256v1.
const ALG_EC_P256: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    0x03, 0x01, 0x07,
];
/// `AlgorithmIdentifier` contents of ecdsa-with-SHA256 (no parameters).
const ALG_ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// Why a key or request could not be made (the system random source failed, in practice).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("cannot generate an ECDSA P-256 key: {0}")]
    Generate(String),
    #[error("cannot sign the certificate request: {0}")]
    Sign(String),
}

/// A fresh ECDSA P-256 key: its PKCS#8 DER.
pub fn generate_p256_pkcs8() -> Result<Vec<u8>, CsrError> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|e| CsrError::Generate(e.to_string()))
}

/// The DER of a PKCS#10 request for the P-256 key `pkcs8` with subject `CN = common_name`.
pub fn csr_der(pkcs8: &[u8], common_name: &str) -> Result<Vec<u8>, CsrError> {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
        .map_err(|e| CsrError::Generate(e.to_string()))?;
    // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue)
    let mut atv = OID_COMMON_NAME.to_vec();
    atv.extend(der_wrap(0x0c, common_name.as_bytes())); // UTF8String
    let subject = der_wrap(0x30, &der_wrap(0x31, &der_wrap(0x30, &atv)));
    // SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }
    let mut spki = der_wrap(0x30, ALG_EC_P256);
    spki.extend(bit_string(key.public_key().as_ref()));
    // CertificationRequestInfo ::= SEQUENCE { version 0, subject, spki, attributes [0] {} }
    let mut info = vec![0x02, 0x01, 0x00];
    info.extend(subject);
    info.extend(der_wrap(0x30, &spki));
    info.extend([0xa0, 0x00]);
    let info = der_wrap(0x30, &info);
    let signature = key
        .sign(&rng, &info)
        .map_err(|e| CsrError::Sign(e.to_string()))?;
    let mut req = info;
    req.extend(der_wrap(0x30, ALG_ECDSA_SHA256));
    req.extend(bit_string(signature.as_ref()));
    Ok(der_wrap(0x30, &req))
}

/// A BIT STRING with no unused bits.
fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut contents = Vec::with_capacity(bytes.len() + 1);
    contents.push(0);
    contents.extend_from_slice(bytes);
    der_wrap(0x03, &contents)
}

/// Standard base64 (RFC 4648 alphabet, `=` padding) of `bytes`. By hand for the one CSR the
/// agent encodes: the base64 crate's engine cost about 3 KB on mips_24kc (packaging/README.md,
/// "Size"); a test compares the two.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let at = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (at(0) << 16) | (at(1) << 8) | at(2);
        for i in 0..4 {
            // A chunk of k bytes gives k + 1 characters, then padding.
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// PEM text of one DER object: 64-column base64 lines, LF line ends.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
        PublicKeyData,
    };
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

    /// (contents of the outer SEQUENCE's first element, i.e. the whole CertificationRequestInfo
    /// element, and the rest)
    fn split_first_element(der: &[u8]) -> (&[u8], &[u8]) {
        let header = |b: &[u8]| -> (usize, usize) {
            if b[1] & 0x80 == 0 {
                (2, usize::from(b[1]))
            } else {
                let n = usize::from(b[1] & 0x7f);
                let len = b[2..2 + n]
                    .iter()
                    .fold(0usize, |a, x| a << 8 | usize::from(*x));
                (2 + n, len)
            }
        };
        let (h, _) = header(der);
        let body = &der[h..];
        let (h2, l2) = header(body);
        (&body[..h2 + l2], &body[h2 + l2..])
    }

    #[test]
    fn request_info_is_byte_identical_to_rcgen_and_the_signature_verifies() {
        for cn in ["ap-kitchen", "", "ünïcödé router", &"x".repeat(300)] {
            let pkcs8 = generate_p256_pkcs8().unwrap();
            let ours = csr_der(&pkcs8, cn).unwrap();

            let key = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            params.distinguished_name = dn;
            let theirs = params.serialize_request(&key).unwrap();

            let (our_info, our_sig) = split_first_element(&ours);
            let (their_info, their_sig) = split_first_element(theirs.der());
            assert_eq!(our_info, their_info, "CN {cn:?}");
            // Same signature algorithm element; the signature values differ (random k).
            assert_eq!(our_sig[..12], their_sig[..12]);

            // The signature verifies over the request info with the key's public key.
            let pair = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &pkcs8,
                &SystemRandom::new(),
            )
            .unwrap();
            // BIT STRING, short length (a P-256 signature is at most 72 bytes), 0 unused bits.
            let sig_bits = &our_sig[12..];
            assert_eq!(sig_bits[..3], [0x03, sig_bits.len() as u8 - 2, 0]);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, pair.public_key().as_ref())
                .verify(our_info, &sig_bits[3..])
                .unwrap();

            // rcgen (x509-parser) reads it back with the same key and subject.
            let parsed =
                CertificateSigningRequestParams::from_pem(&pem("CERTIFICATE REQUEST", &ours))
                    .unwrap();
            assert_eq!(parsed.public_key.der_bytes(), key.public_key_raw());
        }
    }

    #[test]
    fn keys_are_fresh_pkcs8_p256() {
        let a = generate_p256_pkcs8().unwrap();
        let b = generate_p256_pkcs8().unwrap();
        assert_ne!(a, b);
        assert!(rcgen::KeyPair::try_from(a.as_slice()).is_ok());
        assert!(matches!(
            csr_der(b"not a key", "x"),
            Err(CsrError::Generate(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn base64_is_the_base64_crates(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            use ::base64::Engine;
            proptest::prop_assert_eq!(base64(&bytes), ::base64::engine::general_purpose::STANDARD.encode(&bytes));
        }
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let text = pem("TEST", &[0u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN TEST-----"));
        assert_eq!(lines.last(), Some(&"-----END TEST-----"));
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.len(), 5); // 136 base64 characters: 64 + 64 + 8
        assert!(text.ends_with("-----\n"));
    }
}
