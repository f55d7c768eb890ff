//! JWT bearer tokens: `Authorization: Bearer <jwt>` accepted beside API keys on every route that
//! takes a key, when the operator configures a verification key (`[jwt]` in the config file or
//! the `--jwt-*` flags of `serve`).
//!
//! - Key: an HS256 shared secret (a file, or `ROUTERSTATS_JWT_SECRET`), or an ES256 / RS256
//!   public key in PEM. Exactly one algorithm is accepted: the key's. A token signed with any
//!   other algorithm, or unsigned (`alg: none`), is 401.
//! - Claims: `exp` and `sub` are required; `exp` and `nbf` are checked with a leeway (default
//!   30 s); `iss` and `aud` are checked when configured (a token with an `aud` is refused while
//!   no audience is configured). The role comes from the configured claim (default `role`): the
//!   string `read` or `admin`, or an array holding them (the highest counts).
//! - Caller: the subject (`sub`) is the caller's name in logs and in the actions audit
//!   (`requested_by` = `jwt:<sub>`).
//! - Errors: a token that is expired, not yet valid, wrongly signed, of another algorithm,
//!   unsigned or malformed is 401 with a message saying which; an authentic token whose role
//!   claim holds no known role is **403** (the caller is known but has no role here).
//!
//! Verification uses the `jsonwebtoken` crate with its RustCrypto backend (no aws-lc); this
//! module only loads the key and maps the crate's errors to answers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::pki::tokens::Role;

/// Default name of the role claim.
pub const DEFAULT_ROLE_CLAIM: &str = "role";
/// Default leeway of `exp` / `nbf` checks.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Shortest HS256 secret accepted (RFC 7518 3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest token looked at (bytes); longer bearer values are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The verification key, as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum JwtKeySource {
    /// HS256 with the secret in this file (its bytes, one trailing newline removed).
    SecretFile(PathBuf),
    /// HS256 with this secret (library callers and tests).
    Secret(Vec<u8>),
    /// A PEM public key file: ES256 for a P-256 EC key, RS256 for an RSA key.
    PublicKeyFile(PathBuf),
}

impl std::fmt::Debug for JwtKeySource {
    /// Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKeySource::SecretFile(p) => f.debug_tuple("SecretFile").field(p).finish(),
            JwtKeySource::Secret(_) => f.write_str("Secret(<redacted>)"),
            JwtKeySource::PublicKeyFile(p) => f.debug_tuple("PublicKeyFile").field(p).finish(),
        }
    }
}

/// `[jwt]` settings (absent: JWTs are not accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub key: JwtKeySource,
    /// The claim holding the role.
    pub role_claim: String,
    /// Accepted `iss` values (none: not checked).
    pub issuer: Option<String>,
    /// This collector's audience (none: a token carrying `aud` is refused).
    pub audience: Option<String>,
    pub leeway: Duration,
}

impl JwtConfig {
    /// Settings with the defaults around `key`.
    pub fn new(key: JwtKeySource) -> JwtConfig {
        JwtConfig {
            key,
            role_claim: DEFAULT_ROLE_CLAIM.to_string(),
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
        }
    }
}

/// Why the JWT settings cannot be used (at start).
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("cannot read the JWT key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the JWT public key {} is neither a P-256 EC nor an RSA public key in PEM ({reason})", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("the JWT HS256 secret must be at least {MIN_SECRET_BYTES} bytes (got {0})")]
    ShortSecret(usize),
    #[error("the JWT role claim name must be 1-64 printable characters")]
    RoleClaim,
}

/// Why a token was not accepted. `Forbidden` is answered 403, everything else 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error(
        "JWT bearer tokens are not enabled on this collector (configure [jwt]); send an API key"
    )]
    Disabled,
    #[error("unsigned JWT (alg \"none\") refused")]
    Unsigned,
    #[error("JWT algorithm {got} not accepted; this collector accepts {want} only")]
    Algorithm { got: String, want: &'static str },
    #[error("JWT expired")]
    Expired,
    #[error("JWT not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("JWT signature does not verify with the configured key")]
    Signature,
    #[error("JWT lacks the required claim {0}")]
    MissingClaim(String),
    #[error("JWT issuer not accepted")]
    Issuer,
    #[error("JWT audience not accepted (this collector's audience: {0})")]
    Audience(String),
    #[error("malformed JWT: {0}")]
    Malformed(String),
    #[error("JWT claim {claim:?} holds no known role (read or admin)")]
    Forbidden { claim: String },
}

impl JwtError {
    /// True for the 403 case (authentic token, no role).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, JwtError::Forbidden { .. })
    }
}

/// The caller a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtCaller {
    pub subject: String,
    pub role: Role,
}

/// A loaded verifier.
pub struct JwtVerifier {
    key: DecodingKey,
    algorithm: Algorithm,
    validation: Validation,
    role_claim: String,
    audience: Option<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("role_claim", &self.role_claim)
            .finish_non_exhaustive()
    }
}

fn alg_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::HS256 => "HS256",
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        _ => "another algorithm",
    }
}

/// Loads a PEM public key: (key, ES256) for EC, (key, RS256) for RSA.
fn load_pem(path: &Path) -> Result<(DecodingKey, Algorithm), JwtSetupError> {
    let pem = std::fs::read(path).map_err(|source| JwtSetupError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match DecodingKey::from_ec_pem(&pem) {
        Ok(k) => Ok((k, Algorithm::ES256)),
        Err(ec) => match DecodingKey::from_rsa_pem(&pem) {
            Ok(k) => Ok((k, Algorithm::RS256)),
            Err(rsa) => Err(JwtSetupError::Pem {
                path: path.to_path_buf(),
                reason: format!("as EC: {ec}; as RSA: {rsa}"),
            }),
        },
    }
}

/// Reads a secret file, without one trailing newline.
fn read_secret(path: &Path) -> Result<Vec<u8>, JwtSetupError> {
    let mut b = std::fs::read(path).map_err(|source| JwtSetupError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if b.last() == Some(&b'\n') {
        b.pop();
        if b.last() == Some(&b'\r') {
            b.pop();
        }
    }
    Ok(b)
}

/// An HS256 key from a secret of at least [`MIN_SECRET_BYTES`].
fn hs_key(secret: &[u8]) -> Result<(DecodingKey, Algorithm), JwtSetupError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(JwtSetupError::ShortSecret(secret.len()));
    }
    let k = DecodingKey::from_secret(secret).map_err(|_| JwtSetupError::ShortSecret(0))?;
    Ok((k, Algorithm::HS256))
}

impl JwtVerifier {
    /// Loads the key and builds the checks.
    pub fn new(cfg: &JwtConfig) -> Result<JwtVerifier, JwtSetupError> {
        if cfg.role_claim.is_empty()
            || cfg.role_claim.len() > 64
            || cfg.role_claim.chars().any(char::is_control)
        {
            return Err(JwtSetupError::RoleClaim);
        }
        let (key, algorithm) = match &cfg.key {
            JwtKeySource::SecretFile(p) => hs_key(&read_secret(p)?)?,
            JwtKeySource::Secret(s) => hs_key(s)?,
            JwtKeySource::PublicKeyFile(p) => load_pem(p)?,
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = cfg.leeway.as_secs();
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        if let Some(aud) = &cfg.audience {
            validation.set_audience(&[aud]);
        }
        Ok(JwtVerifier {
            key,
            algorithm,
            validation,
            role_claim: cfg.role_claim.clone(),
            audience: cfg.audience.clone(),
        })
    }

    /// The accepted algorithm's name.
    pub fn algorithm(&self) -> &'static str {
        alg_name(self.algorithm)
    }

    /// Verifies `token` and reads its caller.
    pub fn verify(&self, token: &str) -> Result<JwtCaller, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        // The header first: `none` and foreign algorithms get their own answer.
        let alg = header_alg(token)?;
        if alg.eq_ignore_ascii_case("none") {
            return Err(JwtError::Unsigned);
        }
        if alg != alg_name(self.algorithm) {
            return Err(JwtError::Algorithm {
                got: alg.chars().take(16).collect(),
                want: alg_name(self.algorithm),
            });
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| self.map_error(e.into_kind()))?;
        let claims = data.claims;
        let subject = match claims.get("sub") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                s.chars().filter(|c| !c.is_control()).take(128).collect()
            }
            _ => return Err(JwtError::MissingClaim("sub".into())),
        };
        let role = role_of(claims.get(&self.role_claim)).ok_or_else(|| JwtError::Forbidden {
            claim: self.role_claim.clone(),
        })?;
        Ok(JwtCaller { subject, role })
    }

    fn map_error(&self, kind: ErrorKind) -> JwtError {
        match kind {
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::ImmatureSignature => JwtError::NotYetValid,
            ErrorKind::InvalidSignature => JwtError::Signature,
            ErrorKind::InvalidAlgorithm => JwtError::Algorithm {
                got: "of the token".into(),
                want: alg_name(self.algorithm),
            },
            ErrorKind::MissingRequiredClaim(c) => JwtError::MissingClaim(c),
            ErrorKind::InvalidIssuer => JwtError::Issuer,
            ErrorKind::InvalidAudience => JwtError::Audience(
                self.audience
                    .clone()
                    .unwrap_or_else(|| "none configured".into()),
            ),
            ErrorKind::InvalidClaimFormat(c) => {
                JwtError::Malformed(format!("claim {c} has a wrong type"))
            }
            ErrorKind::InvalidToken => JwtError::Malformed("not three base64url parts".into()),
            ErrorKind::Base64(e) => JwtError::Malformed(format!("bad base64url: {e}")),
            ErrorKind::Json(e) => JwtError::Malformed(format!("bad JSON: {e}")),
            ErrorKind::Utf8(_) => JwtError::Malformed("not UTF-8".into()),
            // Key errors mean the signature cannot be checked with this key.
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => JwtError::Signature,
            other => JwtError::Malformed(format!("{other:?}")),
        }
    }
}

/// The `alg` of a token's header, read without trusting anything else in it.
fn header_alg(token: &str) -> Result<String, JwtError> {
    let head = token
        .split('.')
        .next()
        .filter(|h| !h.is_empty() && token.matches('.').count() == 2)
        .ok_or_else(|| JwtError::Malformed("not three base64url parts".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .map_err(|e| JwtError::Malformed(format!("bad base64url header: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| JwtError::Malformed(format!("bad JSON header: {e}")))?;
    match v.get("alg") {
        Some(serde_json::Value::String(a)) => Ok(a.clone()),
        // A header without `alg` is as unsigned as `none`.
        _ => Err(JwtError::Unsigned),
    }
}

/// The role a claim value names: `"read"`, `"admin"`, or an array holding them (highest wins).
fn role_of(v: Option<&serde_json::Value>) -> Option<Role> {
    match v? {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str()?.parse::<Role>().ok())
            .max(),
        _ => None,
    }
}

/// Whether a bearer value looks like a JWT (three dot-separated parts) rather than an API key.
pub fn looks_like_jwt(value: &str) -> bool {
    !value.starts_with(crate::pki::tokens::API_KEY_PREFIX) && value.matches('.').count() == 2
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn now() -> i64 {
        crate::clock::unix_now()
    }

    pub fn hs_token(claims: &serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap()
    }

    fn hs() -> JwtVerifier {
        JwtVerifier::new(&JwtConfig::new(JwtKeySource::Secret(SECRET.to_vec()))).unwrap()
    }

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn hs256_token_gives_subject_and_role() {
        let v = hs();
        let t = hs_token(&json!({"sub": "alice", "role": "admin", "exp": now() + 60}));
        assert_eq!(
            v.verify(&t).unwrap(),
            JwtCaller {
                subject: "alice".into(),
                role: Role::Admin
            }
        );
        let t = hs_token(&json!({"sub": "bob", "role": ["viewer", "read"], "exp": now() + 60}));
        assert_eq!(v.verify(&t).unwrap().role, Role::Read);
    }

    #[test]
    fn expired_immature_and_wrongly_signed_are_named() {
        let v = hs();
        let t = hs_token(&json!({"sub": "a", "role": "read", "exp": now() - 120}));
        assert_eq!(v.verify(&t).unwrap_err(), JwtError::Expired);
        let t =
            hs_token(&json!({"sub": "a", "role": "read", "exp": now() + 600, "nbf": now() + 300}));
        assert_eq!(v.verify(&t).unwrap_err(), JwtError::NotYetValid);
        let other = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "a", "role": "read", "exp": now() + 60}),
            &EncodingKey::from_secret(b"another-secret-of-enough-length-000000").unwrap(),
        )
        .unwrap();
        assert_eq!(v.verify(&other).unwrap_err(), JwtError::Signature);
        // A valid token with one claim changed.
        let t = hs_token(&json!({"sub": "a", "role": "read", "exp": now() + 60}));
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(&json!({"sub": "a", "role": "admin", "exp": now() + 60})),
            parts[2]
        );
        assert_eq!(v.verify(&forged).unwrap_err(), JwtError::Signature);
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let v = hs();
        let claims = json!({"sub": "a", "role": "admin", "exp": now() + 60});
        for alg in ["none", "None", "NONE"] {
            let t = format!(
                "{}.{}.",
                b64(&json!({"alg": alg, "typ": "JWT"})),
                b64(&claims)
            );
            assert_eq!(v.verify(&t).unwrap_err(), JwtError::Unsigned, "{alg}");
        }
        let t = format!("{}.{}.", b64(&json!({"typ": "JWT"})), b64(&claims));
        assert_eq!(v.verify(&t).unwrap_err(), JwtError::Unsigned);
        let t = format!("{}.{}.c2ln", b64(&json!({"alg": "HS512"})), b64(&claims));
        assert!(matches!(
            v.verify(&t).unwrap_err(),
            JwtError::Algorithm { want: "HS256", .. }
        ));
    }

    #[test]
    fn missing_claims_unknown_roles_and_garbage() {
        let v = hs();
        let t = hs_token(&json!({"sub": "a", "role": "read"}));
        assert_eq!(
            v.verify(&t).unwrap_err(),
            JwtError::MissingClaim("exp".into())
        );
        let t = hs_token(&json!({"role": "read", "exp": now() + 60}));
        assert_eq!(
            v.verify(&t).unwrap_err(),
            JwtError::MissingClaim("sub".into())
        );
        for role in [
            json!("root"),
            json!(7),
            json!(["x"]),
            serde_json::Value::Null,
        ] {
            let t = hs_token(&json!({"sub": "a", "role": role, "exp": now() + 60}));
            let e = v.verify(&t).unwrap_err();
            assert!(e.is_forbidden(), "{e}");
        }
        let t = hs_token(&json!({"sub": "a", "exp": now() + 60}));
        assert!(v.verify(&t).unwrap_err().is_forbidden());
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!!.x.y",
            &"a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(
                matches!(v.verify(bad).unwrap_err(), JwtError::Malformed(_)),
                "{bad:?}"
            );
        }
        // A token with an audience while none is configured.
        let t = hs_token(&json!({"sub": "a", "role": "read", "exp": now() + 60, "aud": "x"}));
        assert!(matches!(v.verify(&t).unwrap_err(), JwtError::Audience(_)));
    }

    #[test]
    fn custom_claim_issuer_and_audience() {
        let mut cfg = JwtConfig::new(JwtKeySource::Secret(SECRET.to_vec()));
        cfg.role_claim = "routerstats_role".into();
        cfg.issuer = Some("https://idp.example".into());
        cfg.audience = Some("routerstats".into());
        let v = JwtVerifier::new(&cfg).unwrap();
        let good = json!({"sub": "a", "routerstats_role": "admin", "exp": now() + 60,
            "iss": "https://idp.example", "aud": "routerstats"});
        assert_eq!(v.verify(&hs_token(&good)).unwrap().role, Role::Admin);
        let mut bad = good.clone();
        bad["iss"] = json!("https://evil.example");
        assert_eq!(v.verify(&hs_token(&bad)).unwrap_err(), JwtError::Issuer);
        let mut bad = good.clone();
        bad["aud"] = json!("other");
        assert!(matches!(
            v.verify(&hs_token(&bad)).unwrap_err(),
            JwtError::Audience(_)
        ));
    }

    #[test]
    fn es256_public_key_from_pem() {
        let dir = tempfile::tempdir().unwrap();
        let kp = rcgen::KeyPair::generate().unwrap();
        let pub_file = dir.path().join("jwt.pub.pem");
        std::fs::write(&pub_file, kp.public_key_pem()).unwrap();
        let v = JwtVerifier::new(&JwtConfig::new(JwtKeySource::PublicKeyFile(pub_file))).unwrap();
        assert_eq!(v.algorithm(), "ES256");
        let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
        let claims = json!({"sub": "grafana", "role": "read", "exp": now() + 60});
        let t = encode(&Header::new(Algorithm::ES256), &claims, &enc).unwrap();
        assert_eq!(v.verify(&t).unwrap().subject, "grafana");
        // An HS256 token made with the public key as secret (the classic confusion attack).
        let pem = std::fs::read(dir.path().join("jwt.pub.pem")).unwrap();
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&pem).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            v.verify(&confused).unwrap_err(),
            JwtError::Algorithm { want: "ES256", .. }
        ));
    }

    #[test]
    fn rs256_public_key_from_pem() {
        let dir = tempfile::tempdir().unwrap();
        let pub_file = dir.path().join("rsa.pub.pem");
        std::fs::write(&pub_file, include_str!("../../testdata/jwt-rsa.pub.pem")).unwrap();
        let v = JwtVerifier::new(&JwtConfig::new(JwtKeySource::PublicKeyFile(pub_file))).unwrap();
        assert_eq!(v.algorithm(), "RS256");
        let enc =
            EncodingKey::from_rsa_pem(include_bytes!("../../testdata/jwt-rsa.key.pem")).unwrap();
        let t = encode(
            &Header::new(Algorithm::RS256),
            &json!({"sub": "ops", "role": "admin", "exp": now() + 60}),
            &enc,
        )
        .unwrap();
        assert_eq!(v.verify(&t).unwrap().role, Role::Admin);
    }

    #[test]
    fn bad_setup_is_a_clear_error() {
        let e =
            JwtVerifier::new(&JwtConfig::new(JwtKeySource::Secret(b"short".to_vec()))).unwrap_err();
        assert!(matches!(e, JwtSetupError::ShortSecret(5)), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let e =
            JwtVerifier::new(&JwtConfig::new(JwtKeySource::PublicKeyFile(missing))).unwrap_err();
        assert!(e.to_string().contains("none.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let e = JwtVerifier::new(&JwtConfig::new(JwtKeySource::PublicKeyFile(junk))).unwrap_err();
        assert!(matches!(e, JwtSetupError::Pem { .. }), "{e}");
        let mut cfg = JwtConfig::new(JwtKeySource::Secret(SECRET.to_vec()));
        cfg.role_claim = String::new();
        assert!(matches!(
            JwtVerifier::new(&cfg).unwrap_err(),
            JwtSetupError::RoleClaim
        ));
    }

    #[test]
    fn jwt_or_api_key() {
        assert!(looks_like_jwt("eyJh.eyJz.sig"));
        assert!(!looks_like_jwt("rsk_abc.def.ghi"));
        assert!(!looks_like_jwt("rsk_abcdef"));
    }
}
