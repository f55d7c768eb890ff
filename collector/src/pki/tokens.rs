//! Secrets handed to people: enrollment tokens for routers and API keys for the HTTP API.
//!
//! Both are random (the thread-local CSPRNG of `rand`), shown once, and stored only as SHA-256.
//! An enrollment token is `rs1.<id>.<secret>.<ca-hash>` (see `routerstats_shared::token`); an API
//! key is `rsk_<40 lowercase letters or digits>`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use routerstats_shared::token::EnrollToken;
use sha2::{Digest, Sha256};

use crate::duration::{parse_duration, DurationError};
use crate::store::{NewToken, Store, StoreError};

/// Shortest and longest token lifetime.
pub const MIN_TTL: Duration = Duration::from_secs(1);
pub const MAX_TTL: Duration = Duration::from_secs(365 * 86_400);
/// Default token lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);
/// Longest router name.
pub const MAX_NAME_LEN: usize = 64;
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "rsk_";

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Why a token or key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Ttl(#[from] DurationError),
    #[error("token lifetime must be between 1s and 365d")]
    TtlRange,
    #[error("max uses must be at least 1")]
    Uses,
    #[error("invalid router name {0:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, not only digits")]
    Name(String),
    #[error("invalid site {0:?}: at most 128 printable characters")]
    Site(String),
    #[error("unknown role {0:?} (expected read or admin)")]
    Role(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token that was just created: the full token (shown once) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: EnrollToken,
    pub name: String,
    pub site: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    pub max_uses: u32,
}

/// Random lowercase letters and digits.
pub fn random_alnum(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let i = rng.random_range(0..ALPHABET.len());
            char::from(ALPHABET.get(i).copied().unwrap_or(b'a'))
        })
        .collect()
}

/// SHA-256 of a secret's text.
pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Parses a token lifetime like `24h`, `30m`, `7d` and checks its range.
pub fn parse_ttl(s: &str) -> Result<Duration, TokenError> {
    let d = parse_duration(s)?;
    check_ttl(d)?;
    Ok(d)
}

fn check_ttl(d: Duration) -> Result<(), TokenError> {
    if d < MIN_TTL || d > MAX_TTL {
        Err(TokenError::TtlRange)
    } else {
        Ok(())
    }
}

/// Checks a router name against the one rule ([`crate::store::check_router_name`]).
pub fn validate_router_name(name: &str) -> Result<(), TokenError> {
    crate::store::check_router_name(name)
        .map_err(|_| TokenError::Name(name.chars().take(80).collect()))
}

fn validate_site(site: &str) -> Result<(), TokenError> {
    if site.is_empty() || site.chars().count() > 128 || site.chars().any(char::is_control) {
        Err(TokenError::Site(site.chars().take(80).collect()))
    } else {
        Ok(())
    }
}

/// Creates an enrollment token valid for `ttl` and `max_uses` enrollments; stores only the hash
/// of its secret. `ca_hash` is the SHA-256 of the CA certificate the router will pin.
pub fn create_token(
    store: &Store,
    ca_hash: [u8; 32],
    name: &str,
    site: Option<&str>,
    ttl: Duration,
    max_uses: u32,
    now: i64,
) -> Result<IssuedToken, TokenError> {
    validate_router_name(name)?;
    if let Some(s) = site {
        validate_site(s)?;
    }
    check_ttl(ttl)?;
    if max_uses == 0 {
        return Err(TokenError::Uses);
    }
    let token = EnrollToken {
        id: random_alnum(8),
        secret: random_alnum(32),
        ca_hash,
    };
    let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl_secs);
    store.insert_token(&NewToken {
        id: token.id.clone(),
        secret_hash: sha256(&token.secret),
        name: name.to_string(),
        site: site.map(str::to_string),
        created_at: now,
        expires_at,
        max_uses,
    })?;
    Ok(IssuedToken {
        token,
        name: name.to_string(),
        site: site.map(str::to_string),
        expires_at,
        max_uses,
    })
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read-only API access.
    Read,
    /// Everything, including creating tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(TokenError::Role(other.chars().take(32).collect())),
        }
    }
}

/// A new API key: the key itself (shown once) and its id in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedApiKey {
    pub id: String,
    pub key: String,
    pub role: Role,
    pub name: String,
}

/// Creates an API key with the given role; stores its SHA-256.
pub fn create_api_key(
    store: &Store,
    role: Role,
    name: &str,
    now: i64,
) -> Result<IssuedApiKey, TokenError> {
    if name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(TokenError::Site(name.chars().take(80).collect()));
    }
    let id = random_alnum(8);
    let key = format!("{API_KEY_PREFIX}{}", random_alnum(40));
    store.insert_api_key(&id, &sha256(&key), role.as_str(), name, now)?;
    Ok(IssuedApiKey {
        id,
        key,
        role,
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing_and_range() {
        assert_eq!(parse_ttl("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert!(parse_ttl("30s").is_ok());
        assert!(parse_ttl("0s").is_err());
        assert!(matches!(parse_ttl("400d"), Err(TokenError::TtlRange)));
        assert!(matches!(parse_ttl("soon"), Err(TokenError::Ttl(_))));
    }

    #[test]
    fn random_parts_fit_the_token_format() {
        let t = EnrollToken {
            id: random_alnum(8),
            secret: random_alnum(32),
            ca_hash: [9; 32],
        };
        let parsed: EnrollToken = t.to_string().parse().unwrap();
        assert_eq!(parsed, t);
        assert_ne!(random_alnum(32), random_alnum(32));
    }

    #[test]
    fn router_names() {
        for ok in ["ap-1", "Kitchen_AP", "r1.site2", "7a"] {
            validate_router_name(ok).unwrap();
        }
        for bad in ["", "-ap", "ap 1", "ap/1", "é", &"a".repeat(65), "7", "<b>"] {
            assert!(validate_router_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_parse() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!("read".parse::<Role>().unwrap(), Role::Read);
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Admin > Role::Read);
    }

    #[test]
    fn created_token_stores_only_the_secret_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let issued =
            create_token(&store, [3; 32], "ap-1", Some("home"), DEFAULT_TTL, 2, 1_000).unwrap();
        assert_eq!(issued.expires_at, 1_000 + 86_400);
        assert_eq!(issued.token.ca_hash, [3; 32]);
        let (hash, name): (Vec<u8>, String) = store
            .connection()
            .query_row(
                "SELECT secret_hash, name FROM tokens WHERE id = ?1",
                [&issued.token.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(hash, sha256(&issued.token.secret).to_vec());
        assert_eq!(name, "ap-1");
        let listed = store.list_tokens().unwrap();
        assert_eq!(
            (listed[0].max_uses, listed[0].site.as_deref()),
            (2, Some("home"))
        );
        assert!(matches!(
            create_token(&store, [3; 32], "ap 1", None, DEFAULT_TTL, 1, 0),
            Err(TokenError::Name(_))
        ));
        assert!(matches!(
            create_token(&store, [3; 32], "ap", None, DEFAULT_TTL, 0, 0),
            Err(TokenError::Uses)
        ));
        assert!(matches!(
            create_token(
                &store,
                [3; 32],
                "ap",
                None,
                Duration::from_millis(500),
                1,
                0
            ),
            Err(TokenError::TtlRange)
        ));
    }

    #[test]
    fn api_keys_are_stored_hashed_with_their_role() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let k = create_api_key(&store, Role::Read, "grafana", 5).unwrap();
        assert!(k.key.starts_with(API_KEY_PREFIX) && k.key.len() == API_KEY_PREFIX.len() + 40);
        assert_eq!(
            store.api_key_role(&sha256(&k.key)).unwrap(),
            Some((k.id.clone(), "read".to_string()))
        );
        assert_eq!(store.api_key_role(&sha256("rsk_other")).unwrap(), None);
    }
}
