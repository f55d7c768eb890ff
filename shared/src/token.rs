//! Enrollment tokens: `rs1.<id>.<secret>.<ca-sha256-hex>`.
//!
//! The id names the token in the collector's database (where only a hash of the secret is kept);
//! the secret proves the router was given the token; the SHA-256 of the collector's CA certificate
//! (DER) lets the router verify the collector before it holds any certificate of its own, like
//! kubeadm's `--discovery-token-ca-cert-hash`.

use std::fmt;
use std::str::FromStr;

/// Prefix and format version of a token.
pub const TOKEN_PREFIX: &str = "rs1";

/// A parsed enrollment token.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollToken {
    /// 8 lowercase alphanumerics.
    pub id: String,
    /// 32 lowercase alphanumerics (about 165 bits).
    pub secret: String,
    /// SHA-256 of the CA certificate in DER form.
    pub ca_hash: [u8; 32],
}

impl fmt::Debug for EnrollToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret in logs.
        f.debug_struct("EnrollToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for EnrollToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}.{}.{}.{}",
            self.id,
            self.secret,
            hex(&self.ca_hash)
        )
    }
}

/// Why a string is not an enrollment token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenParseError {
    #[error("not a routerstats enrollment token (expected rs1.<id>.<secret>.<ca-hash>)")]
    Format,
    #[error("token id must be 8 lowercase letters or digits")]
    Id,
    #[error("token secret must be 32 lowercase letters or digits")]
    Secret,
    #[error("token CA hash must be 64 hex digits")]
    Hash,
}

fn is_token_chars(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl FromStr for EnrollToken {
    type Err = TokenParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('.');
        let (Some(prefix), Some(id), Some(secret), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenParseError::Format);
        };
        if prefix != TOKEN_PREFIX {
            return Err(TokenParseError::Format);
        }
        if !is_token_chars(id, 8) {
            return Err(TokenParseError::Id);
        }
        if !is_token_chars(secret, 32) {
            return Err(TokenParseError::Secret);
        }
        let ca_hash = parse_hex32(hash).ok_or(TokenParseError::Hash)?;
        Ok(EnrollToken {
            id: id.to_string(),
            secret: secret.to_string(),
            ca_hash,
        })
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses exactly 64 hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EnrollToken {
        EnrollToken {
            id: "abcd1234".into(),
            secret: "0123456789abcdefghijklmnopqrstuv".into(),
            ca_hash: [0xab; 32],
        }
    }

    #[test]
    fn round_trips_and_hides_secret_in_debug() {
        let t = sample();
        let s = t.to_string();
        assert!(s.starts_with("rs1.abcd1234.0123"));
        assert_eq!(s.parse::<EnrollToken>().unwrap(), t);
        assert!(!format!("{t:?}").contains("0123456789"));
    }

    #[test]
    fn malformed_tokens_have_specific_errors() {
        let good = sample().to_string();
        assert_eq!("".parse::<EnrollToken>(), Err(TokenParseError::Format));
        assert_eq!(
            good.replace("rs1", "rs2").parse::<EnrollToken>(),
            Err(TokenParseError::Format)
        );
        assert_eq!(
            good.replace("abcd1234", "ABCD1234").parse::<EnrollToken>(),
            Err(TokenParseError::Id)
        );
        assert_eq!(
            good.replace("0123456789", "012345678")
                .parse::<EnrollToken>(),
            Err(TokenParseError::Secret)
        );
        let mut short_hash = good.clone();
        short_hash.pop();
        assert_eq!(
            short_hash.parse::<EnrollToken>(),
            Err(TokenParseError::Hash)
        );
        assert_eq!(
            format!("{good}.x").parse::<EnrollToken>(),
            Err(TokenParseError::Format)
        );
        assert_eq!(
            good.replace("abab", "zzab").parse::<EnrollToken>(),
            Err(TokenParseError::Hash)
        );
    }
}
