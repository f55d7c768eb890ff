//! The registry: enrollment tokens, enrollment itself, routers and API keys.

use rusqlite::{params, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::Serialize;

use super::{
    ct_eq, is_constraint, CertInfo, EnrollError, NewToken, RouterRow, Store, StoreError, TokenRow,
};

/// Longest router name (it becomes the certificate CN, limited to 64 characters).
pub const MAX_NAME_CHARS: usize = 64;
/// Suffixes `-2` .. `-MAX_SUFFIX` are tried before giving up on a taken name.
const MAX_SUFFIX: u32 = 10_000;

/// The columns [`router_from_row`] reads, in order.
const ROUTER_COLUMNS: &str =
    "id, name, site, hostname, model, board, release, revision, target, kernel, \
     agent_version, arch, cert_fingerprint, cert_not_after, enrolled_at, token_id, last_seen_ms, \
     last_report_ms, revoked_at, uptime_s";

fn router_from_row(r: &Row<'_>) -> rusqlite::Result<RouterRow> {
    Ok(RouterRow {
        id: r.get(0)?,
        name: r.get(1)?,
        site: r.get(2)?,
        hostname: r.get(3)?,
        model: r.get(4)?,
        board: r.get(5)?,
        release: r.get(6)?,
        revision: r.get(7)?,
        target: r.get(8)?,
        kernel: r.get(9)?,
        agent_version: r.get(10)?,
        arch: r.get(11)?,
        cert_fingerprint: r.get(12)?,
        cert_not_after: r.get(13)?,
        enrolled_at: r.get(14)?,
        token_id: r.get(15)?,
        last_seen_ms: r.get(16)?,
        last_report_ms: r.get(17)?,
        revoked_at: r.get(18)?,
        uptime_s: r
            .get::<_, Option<i64>>(19)?
            .and_then(|v| u64::try_from(v).ok()),
    })
}

/// A stored API key (without its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub role: String,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The one rule for router names, wherever a name comes from (token, enrollment request,
/// rename, CLI, API): 1-64 of `[A-Za-z0-9._-]`, starting with a letter or digit, and not all
/// digits (a number always means a router id). So a name is never HTML, a shell word with
/// metacharacters, an option (`-1`) or someone else's id (`2`).
pub fn check_router_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "router name {:?} is not allowed: use 1-{MAX_NAME_CHARS} letters, digits, '.', '_' or '-', starting with a letter or digit, not only digits",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// A router name as stored: trimmed, and following [`check_router_name`]; None otherwise.
pub fn normalize_name(name: &str) -> Option<String> {
    let trimmed = name.trim();
    check_router_name(trimmed)
        .ok()
        .map(|()| trimmed.to_string())
}

/// A name made from a router's hostname when neither the request nor the token names it:
/// characters outside the rule become `-`, leading ones that cannot start a name are dropped,
/// it is cut to [`MAX_NAME_CHARS`], and an all-digit result gets a `router-` prefix.
pub fn name_from_hostname(hostname: &str) -> Option<String> {
    let mapped: String = hostname
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .collect();
    let mut name = if !mapped.is_empty() && mapped.bytes().all(|b| b.is_ascii_digit()) {
        format!("router-{mapped}")
    } else {
        mapped
    };
    name.truncate(MAX_NAME_CHARS);
    normalize_name(&name)
}

/// `base-n`, cutting `base` so the result stays within [`MAX_NAME_CHARS`].
fn with_suffix(base: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let keep = MAX_NAME_CHARS.saturating_sub(suffix.len());
    let mut s: String = base.chars().take(keep).collect();
    s.push_str(&suffix);
    s
}

fn name_taken(
    tx: &Transaction<'_>,
    name: &str,
    except_id: Option<i64>,
) -> Result<bool, StoreError> {
    let mut st = tx.prepare_cached("SELECT id FROM routers WHERE name = ?1")?;
    let id: Option<i64> = st.query_row([name], |r| r.get(0)).optional()?;
    Ok(matches!(id, Some(id) if Some(id) != except_id))
}

/// The first free name among `base`, `base-2`, `base-3`, ... (names compare case-insensitively).
fn free_name(tx: &Transaction<'_>, base: &str) -> Result<String, StoreError> {
    if !name_taken(tx, base, None)? {
        return Ok(base.to_string());
    }
    for n in 2..=MAX_SUFFIX {
        let candidate = with_suffix(base, n);
        if !name_taken(tx, &candidate, None)? {
            return Ok(candidate);
        }
    }
    Err(StoreError::NameTaken(base.to_string()))
}

fn router_by_id_conn(
    conn: &rusqlite::Connection,
    id: i64,
) -> Result<Option<RouterRow>, StoreError> {
    let sql = format!("SELECT {ROUTER_COLUMNS} FROM routers WHERE id = ?1");
    let mut st = conn.prepare_cached(&sql)?;
    Ok(st.query_row([id], router_from_row).optional()?)
}

fn router_by_name_conn(
    conn: &rusqlite::Connection,
    name: &str,
) -> Result<Option<RouterRow>, StoreError> {
    let sql = format!("SELECT {ROUTER_COLUMNS} FROM routers WHERE name = ?1");
    let mut st = conn.prepare_cached(&sql)?;
    Ok(st.query_row([name], router_from_row).optional()?)
}

/// A numeric argument is tried as an id first, then as a name.
fn find_router(
    conn: &rusqlite::Connection,
    name_or_id: &str,
) -> Result<Option<RouterRow>, StoreError> {
    let key = name_or_id.trim();
    // Explicit forms first: `id:7` is only an id, `name:ap-7` only a name.
    if let Some(id) = key.strip_prefix("id:") {
        return match id.trim().parse::<i64>() {
            Ok(id) => router_by_id_conn(conn, id),
            Err(_) => Err(StoreError::InvalidInput(format!(
                "{key:?}: id: needs a number"
            ))),
        };
    }
    if let Some(name) = key.strip_prefix("name:") {
        return router_by_name_conn(conn, name.trim());
    }
    // A number is an id (names cannot be all digits); a database from before that rule may
    // hold an all-digit name, found when no router has that id, and refused as ambiguous when
    // one does.
    if let Ok(id) = key.parse::<i64>() {
        if let Some(row) = router_by_id_conn(conn, id)? {
            if router_by_name_conn(conn, key)?.is_some_and(|other| other.id != row.id) {
                return Err(StoreError::InvalidInput(format!(
                    "{key:?} is router id {id} and another router's name: say id:{id} or name:{key}"
                )));
            }
            return Ok(Some(row));
        }
    }
    router_by_name_conn(conn, key)
}

fn map_unique(e: rusqlite::Error, what: &str) -> StoreError {
    if is_constraint(&e) {
        StoreError::AlreadyExists(what.to_string())
    } else {
        StoreError::Sqlite(e)
    }
}

impl Store {
    /// Stores a new enrollment token. A token id already present is [`StoreError::AlreadyExists`].
    pub fn insert_token(&self, t: &NewToken) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO tokens (id, secret_hash, name, site, created_at, expires_at, max_uses) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![t.id, &t.secret_hash[..], t.name, t.site, t.created_at, t.expires_at, t.max_uses],
            )
            .map_err(|e| map_unique(e, &format!("token {}", t.id)))?;
        Ok(())
    }

    /// All tokens, newest first.
    pub fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, name, site, created_at, expires_at, max_uses, uses, last_used_at FROM tokens \
             ORDER BY created_at DESC, id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TokenRow {
                id: r.get(0)?,
                name: r.get(1)?,
                site: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                max_uses: r.get(5)?,
                uses: r.get(6)?,
                last_used_at: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a token (routers enrolled with it keep working; their `token_id` becomes None).
    pub fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        match self
            .conn
            .execute("DELETE FROM tokens WHERE id = ?1", [id])?
        {
            0 => Err(StoreError::NotFound(format!("token {id}"))),
            _ => Ok(()),
        }
    }

    /// Enrolls a router with a token, in one transaction.
    ///
    /// The token must exist with the same secret hash (compared in constant time), not be
    /// expired (`now >= expires_at` is expired) and have uses left. The router's name is the
    /// requested name, else the token's name, else the hostname (after [`normalize_name`]);
    /// when another router has it, `-2`, `-3`, ... is appended. `sign` is called with that final
    /// name and must return the signed certificate's fingerprint and expiry; if it fails,
    /// nothing is written. The router gets the token's site; the token's use count goes up.
    pub fn enroll<F>(
        &mut self,
        token_id: &str,
        secret_hash: &[u8; 32],
        requested_name: Option<&str>,
        hostname: &str,
        now: i64,
        sign: F,
    ) -> Result<RouterRow, EnrollError>
    where
        F: FnOnce(&str) -> Result<CertInfo, String>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        struct Tok {
            hash: Vec<u8>,
            name: String,
            site: Option<String>,
            expires_at: i64,
            max_uses: i64,
            uses: i64,
        }
        let tok = tx
            .query_row(
                "SELECT secret_hash, name, site, expires_at, max_uses, uses FROM tokens WHERE id = ?1",
                [token_id],
                |r| {
                    Ok(Tok {
                        hash: r.get(0)?,
                        name: r.get(1)?,
                        site: r.get(2)?,
                        expires_at: r.get(3)?,
                        max_uses: r.get(4)?,
                        uses: r.get(5)?,
                    })
                },
            )
            .optional()?;
        let Some(tok) = tok else {
            return Err(EnrollError::Unknown);
        };
        if !ct_eq(&tok.hash, secret_hash) {
            return Err(EnrollError::Unknown);
        }
        if now >= tok.expires_at {
            return Err(EnrollError::Expired);
        }
        if tok.uses >= tok.max_uses {
            return Err(EnrollError::Used);
        }
        // A name the router asks for must follow the rule (refused otherwise, not replaced).
        let requested = match requested_name.filter(|n| !n.trim().is_empty()) {
            Some(n) => Some(normalize_name(n).ok_or_else(|| {
                EnrollError::Store(StoreError::InvalidInput(
                    check_router_name(n.trim()).err().unwrap_or_default(),
                ))
            })?),
            None => None,
        };
        let base = requested
            .or_else(|| normalize_name(&tok.name))
            .or_else(|| name_from_hostname(hostname))
            .unwrap_or_else(|| "router".to_string());
        let name = free_name(&tx, &base)?;
        let cert = sign(&name).map_err(EnrollError::Sign)?;
        tx.execute(
            "INSERT INTO routers (name, site, hostname, cert_fingerprint, cert_not_after, enrolled_at, token_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![name, tok.site, hostname, cert.fingerprint.trim().to_ascii_lowercase(), cert.not_after, now, token_id],
        )
        .map_err(|e| map_unique(e, &format!("certificate fingerprint {}", cert.fingerprint)))?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE tokens SET uses = uses + 1, last_used_at = ?2 WHERE id = ?1",
            params![token_id, now],
        )?;
        let row = router_by_id_conn(&tx, id)?
            .ok_or_else(|| StoreError::NotFound(format!("router {id}")))?;
        tx.commit()?;
        Ok(row)
    }

    /// The router holding the certificate with this fingerprint (revoked ones included).
    pub fn router_by_fingerprint(&self, fp: &str) -> Result<Option<RouterRow>, StoreError> {
        let sql = format!("SELECT {ROUTER_COLUMNS} FROM routers WHERE cert_fingerprint = ?1");
        let mut st = self.conn.prepare_cached(&sql)?;
        Ok(st
            .query_row([fp.trim().to_ascii_lowercase()], router_from_row)
            .optional()?)
    }

    /// A router by id (a numeric argument that is an existing id) or by name (case-insensitive).
    pub fn router(&self, name_or_id: &str) -> Result<Option<RouterRow>, StoreError> {
        find_router(&self.conn, name_or_id)
    }

    /// All routers, by name.
    pub fn list_routers(&self) -> Result<Vec<RouterRow>, StoreError> {
        let sql = format!("SELECT {ROUTER_COLUMNS} FROM routers ORDER BY name");
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map([], router_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a router (its certificate is refused from now on). Revoking again keeps the
    /// first revocation time.
    pub fn revoke_router(&mut self, name_or_id: &str, now: i64) -> Result<RouterRow, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = find_router(&tx, name_or_id)?
            .ok_or_else(|| StoreError::NotFound(format!("router {name_or_id}")))?;
        tx.execute(
            "UPDATE routers SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            params![row.id, now],
        )?;
        let row = router_by_id_conn(&tx, row.id)?
            .ok_or_else(|| StoreError::NotFound(format!("router {name_or_id}")))?;
        tx.commit()?;
        Ok(row)
    }

    /// Renames a router. The new name is normalized ([`normalize_name`]); a name used by another
    /// router is [`StoreError::NameTaken`], an unusable one [`StoreError::InvalidInput`].
    pub fn rename_router(
        &mut self,
        name_or_id: &str,
        new_name: &str,
    ) -> Result<RouterRow, StoreError> {
        let name = normalize_name(new_name).ok_or_else(|| {
            StoreError::InvalidInput(check_router_name(new_name.trim()).err().unwrap_or_default())
        })?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = find_router(&tx, name_or_id)?
            .ok_or_else(|| StoreError::NotFound(format!("router {name_or_id}")))?;
        if name_taken(&tx, &name, Some(row.id))? {
            return Err(StoreError::NameTaken(name));
        }
        tx.execute(
            "UPDATE routers SET name = ?2 WHERE id = ?1",
            params![row.id, name],
        )?;
        let row = router_by_id_conn(&tx, row.id)?
            .ok_or_else(|| StoreError::NotFound(format!("router {name_or_id}")))?;
        tx.commit()?;
        Ok(row)
    }

    /// Records a renewed certificate of a router.
    pub fn update_router_cert(
        &mut self,
        router_id: i64,
        fp: &str,
        not_after: i64,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE routers SET cert_fingerprint = ?2, cert_not_after = ?3 WHERE id = ?1",
                params![router_id, fp.trim().to_ascii_lowercase(), not_after],
            )
            .map_err(|e| map_unique(e, &format!("certificate fingerprint {fp}")))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("router {router_id}")));
        }
        Ok(())
    }

    /// Ids of all revoked routers.
    pub fn revoked_router_ids(&self) -> Result<Vec<i64>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM routers WHERE revoked_at IS NOT NULL ORDER BY id")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores an API key's SHA-256. `role` is `read` or `admin`.
    pub fn insert_api_key(
        &self,
        id: &str,
        key_hash: &[u8; 32],
        role: &str,
        name: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        if role != "read" && role != "admin" {
            return Err(StoreError::InvalidInput(format!(
                "API key role {role:?} (expected read or admin)"
            )));
        }
        self.conn
            .execute(
                "INSERT INTO api_keys (id, key_hash, role, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, &key_hash[..], role, name, created_at],
            )
            .map_err(|e| map_unique(e, &format!("API key {id}")))?;
        Ok(())
    }

    /// `(id, role)` of the unrevoked API key with this SHA-256.
    pub fn api_key_role(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(String, String)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, role FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
        )?;
        Ok(st
            .query_row([&key_hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// All API keys, by id.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, role, name, created_at, revoked_at FROM api_keys ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ApiKeyRow {
                id: r.get(0)?,
                role: r.get(1)?,
                name: r.get(2)?,
                created_at: r.get(3)?,
                revoked_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes an API key (keeps the first revocation time).
    pub fn revoke_api_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        match self.conn.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            params![id, now],
        )? {
            0 => Err(StoreError::NotFound(format!("API key {id}"))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{new_token, open_temp};

    fn cert(fp: &str) -> impl FnOnce(&str) -> Result<CertInfo, String> + '_ {
        move |_name| {
            Ok(CertInfo {
                fingerprint: fp.to_string(),
                not_after: 9_000_000,
            })
        }
    }

    #[test]
    fn enroll_success_consumes_the_token() {
        let (_dir, mut store) = open_temp();
        store
            .insert_token(&new_token("tok00001", [7; 32], "gw", 1))
            .unwrap();
        let mut signed_name = String::new();
        let row = store
            .enroll(
                "tok00001",
                &[7; 32],
                Some("  office-gw "),
                "OpenWrt",
                1000,
                |name| {
                    signed_name = name.to_string();
                    Ok(CertInfo {
                        fingerprint: "ab".repeat(32),
                        not_after: 5000,
                    })
                },
            )
            .unwrap();
        assert_eq!(signed_name, "office-gw");
        assert_eq!(row.name, "office-gw");
        assert_eq!(row.site.as_deref(), Some("site-a"));
        assert_eq!(row.hostname, "OpenWrt");
        assert_eq!(row.cert_fingerprint, "ab".repeat(32));
        assert_eq!((row.cert_not_after, row.enrolled_at), (5000, 1000));
        assert_eq!(row.token_id.as_deref(), Some("tok00001"));
        assert_eq!(row.revoked_at, None);
        let tokens = store.list_tokens().unwrap();
        assert_eq!((tokens[0].uses, tokens[0].last_used_at), (1, Some(1000)));
        assert_eq!(
            store
                .router_by_fingerprint(&"AB".repeat(32))
                .unwrap()
                .unwrap()
                .id,
            row.id
        );
        // Single use: the second attempt is refused and writes nothing.
        let err = store
            .enroll("tok00001", &[7; 32], None, "x", 1001, cert("cd"))
            .unwrap_err();
        assert!(matches!(err, EnrollError::Used), "{err:?}");
        assert_eq!(store.list_routers().unwrap().len(), 1);
    }

    #[test]
    fn enroll_refuses_unknown_wrong_secret_and_expired() {
        let (_dir, mut store) = open_temp();
        store
            .insert_token(&new_token("tok00001", [7; 32], "gw", 3))
            .unwrap();
        let err = store
            .enroll("nope0000", &[7; 32], None, "h", 10, cert("a1"))
            .unwrap_err();
        assert!(matches!(err, EnrollError::Unknown), "{err:?}");
        let mut wrong = [7; 32];
        wrong[31] = 8;
        let err = store
            .enroll("tok00001", &wrong, None, "h", 10, cert("a1"))
            .unwrap_err();
        assert!(matches!(err, EnrollError::Unknown), "{err:?}");
        // expires_at is 100_000 in the helper; the boundary instant is already expired.
        let err = store
            .enroll("tok00001", &[7; 32], None, "h", 100_000, cert("a1"))
            .unwrap_err();
        assert!(matches!(err, EnrollError::Expired), "{err:?}");
        // A signing failure writes nothing and does not consume the token.
        let err = store
            .enroll("tok00001", &[7; 32], None, "h", 10, |_| {
                Err("bad csr".to_string())
            })
            .unwrap_err();
        assert!(
            matches!(err, EnrollError::Sign(ref m) if m == "bad csr"),
            "{err:?}"
        );
        assert!(store.list_routers().unwrap().is_empty());
        assert_eq!(store.list_tokens().unwrap()[0].uses, 0);
    }

    #[test]
    fn enroll_name_collisions_get_suffixes() {
        let (_dir, mut store) = open_temp();
        store
            .insert_token(&new_token("tok00001", [1; 32], "ap", 10))
            .unwrap();
        let a = store
            .enroll("tok00001", &[1; 32], None, "h", 10, cert("f1"))
            .unwrap();
        let b = store
            .enroll("tok00001", &[1; 32], None, "h", 10, cert("f2"))
            .unwrap();
        let c = store
            .enroll("tok00001", &[1; 32], Some("AP"), "h", 10, cert("f3"))
            .unwrap();
        // Requested names that normalize to nothing fall back to the token's name.
        let d = store
            .enroll("tok00001", &[1; 32], Some(" \t"), "h", 10, cert("f4"))
            .unwrap();
        assert_eq!(
            [a.name, b.name, c.name, d.name],
            ["ap", "ap-2", "AP-3", "ap-4"]
        );
        // Same fingerprint twice is a store error, not a panic, and nothing is written.
        let err = store
            .enroll("tok00001", &[1; 32], None, "h", 10, cert("f4"))
            .unwrap_err();
        assert!(
            matches!(err, EnrollError::Store(StoreError::AlreadyExists(_))),
            "{err:?}"
        );
        assert_eq!(store.list_routers().unwrap().len(), 4);
    }

    #[test]
    fn one_name_rule() {
        for good in ["ap-kitchen", "AP_2.lab", "0x1", "2nd-floor", "a"] {
            assert_eq!(normalize_name(good).as_deref(), Some(good), "{good}");
        }
        assert_eq!(normalize_name("  ap-1 ").as_deref(), Some("ap-1"));
        for bad in [
            "<img src=x onerror=alert(1)>",
            "-1",
            "2",
            "0042",
            "a b",
            "a;rm",
            "$(x)",
            ".x",
            "é",
            &"x".repeat(65),
        ] {
            assert_eq!(normalize_name(bad), None, "{bad}");
            assert!(check_router_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            name_from_hostname("My Router <1>").as_deref(),
            Some("My-Router--1-")
        );
        assert_eq!(name_from_hostname("2").as_deref(), Some("router-2"));
        assert_eq!(name_from_hostname("--OpenWrt").as_deref(), Some("OpenWrt"));
        assert_eq!(name_from_hostname("<>").as_deref(), None);
        assert_eq!(
            name_from_hostname(&"h".repeat(300)).unwrap().len(),
            MAX_NAME_CHARS
        );
    }

    #[test]
    fn enrollment_refuses_names_outside_the_rule() {
        let (_dir, mut store) = open_temp();
        store
            .insert_token(&new_token("tok00001", [1; 32], "ap", 10))
            .unwrap();
        for bad in ["<img src=x onerror=alert(1)>", "-1", "2", "a b"] {
            let err = store
                .enroll("tok00001", &[1; 32], Some(bad), "h", 10, cert("f1"))
                .unwrap_err();
            assert!(
                matches!(&err, EnrollError::Store(StoreError::InvalidInput(m)) if m.contains("not allowed")),
                "{bad}: {err:?}"
            );
        }
        assert!(store.list_routers().unwrap().is_empty());
        // A hostname is made into a name by the rule instead.
        let row = store
            .enroll("tok00001", &[1; 32], None, "7", 10, cert("f2"))
            .unwrap();
        assert_eq!(row.name, "ap");
        let err = store.rename_router("ap", "3").unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    }

    #[test]
    fn long_names_are_cut_before_the_suffix() {
        let long = "x".repeat(100);
        assert_eq!(normalize_name(&long), None);
        assert_eq!(with_suffix(&long, 12).chars().count(), MAX_NAME_CHARS);
        assert!(with_suffix(&long, 12).ends_with("x-12"));
        assert_eq!(normalize_name("bad\nname"), None);
        assert_eq!(normalize_name(""), None);
    }

    #[test]
    fn revoke_and_rename() {
        let (_dir, mut store) = open_temp();
        store
            .insert_token(&new_token("tok00001", [1; 32], "ap", 10))
            .unwrap();
        let a = store
            .enroll("tok00001", &[1; 32], Some("alpha"), "h", 10, cert("f1"))
            .unwrap();
        let b = store
            .enroll("tok00001", &[1; 32], Some("beta"), "h", 10, cert("f2"))
            .unwrap();

        let renamed = store.rename_router("alpha", "gamma").unwrap();
        assert_eq!((renamed.id, renamed.name.as_str()), (a.id, "gamma"));
        assert!(store.router("alpha").unwrap().is_none());
        assert_eq!(
            store.router(&a.id.to_string()).unwrap().unwrap().name,
            "gamma"
        );
        assert!(matches!(
            store.rename_router("gamma", "BETA"),
            Err(StoreError::NameTaken(_))
        ));
        assert!(matches!(
            store.rename_router("gamma", "\u{7}"),
            Err(StoreError::InvalidInput(_))
        ));
        assert!(matches!(
            store.rename_router("nobody", "x"),
            Err(StoreError::NotFound(_))
        ));
        // Changing only the case of its own name is allowed.
        assert_eq!(store.rename_router("gamma", "Gamma").unwrap().name, "Gamma");

        let revoked = store.revoke_router("beta", 500).unwrap();
        assert_eq!(revoked.revoked_at, Some(500));
        assert_eq!(
            store
                .revoke_router(&b.id.to_string(), 900)
                .unwrap()
                .revoked_at,
            Some(500)
        );
        assert_eq!(store.revoked_router_ids().unwrap(), vec![b.id]);
        assert!(matches!(
            store.revoke_router("nobody", 1),
            Err(StoreError::NotFound(_))
        ));

        store.update_router_cert(a.id, "F9", 777).unwrap();
        let row = store.router_by_fingerprint("f9").unwrap().unwrap();
        assert_eq!((row.id, row.cert_not_after), (a.id, 777));
        assert!(store.router_by_fingerprint("f1").unwrap().is_none());
        assert!(matches!(
            store.update_router_cert(999, "aa", 1),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn numeric_names_resolve_when_no_such_id() {
        let (_dir, mut store) = open_temp();
        store
            .insert_token(&new_token("tok00001", [1; 32], "ap", 10))
            .unwrap();
        // All-digit names are refused now; a database from before may still hold one.
        let r = store
            .enroll("tok00001", &[1; 32], Some("n4242"), "h", 10, cert("f1"))
            .unwrap();
        store
            .connection()
            .execute("UPDATE routers SET name = '4242' WHERE id = ?1", [r.id])
            .unwrap();
        assert_eq!(store.router("4242").unwrap().unwrap().id, r.id);
        // A legacy name equal to another router's id is ambiguous without id:/name:.
        let r2 = store
            .enroll("tok00001", &[1; 32], Some("other"), "h", 10, cert("f2"))
            .unwrap();
        let legacy = r2.id.to_string();
        store
            .connection()
            .execute(
                "UPDATE routers SET name = ?2 WHERE id = ?1",
                rusqlite::params![r.id, legacy],
            )
            .unwrap();
        assert!(matches!(
            store.router(&legacy),
            Err(StoreError::InvalidInput(_))
        ));
        assert_eq!(
            store.router(&format!("id:{legacy}")).unwrap().unwrap().id,
            r2.id
        );
        assert_eq!(
            store.router(&format!("name:{legacy}")).unwrap().unwrap().id,
            r.id
        );
        assert_eq!(store.router("name:nosuch").unwrap(), None);
        assert_eq!(store.router("name:other").unwrap().unwrap().id, r2.id);
        assert_eq!(store.router(&r.id.to_string()).unwrap().unwrap().id, r.id);
    }

    #[test]
    fn tokens_and_api_keys() {
        let (_dir, store) = open_temp();
        store
            .insert_token(&new_token("tok00001", [1; 32], "ap", 1))
            .unwrap();
        assert!(matches!(
            store.insert_token(&new_token("tok00001", [2; 32], "b", 1)),
            Err(StoreError::AlreadyExists(_))
        ));
        store.delete_token("tok00001").unwrap();
        assert!(matches!(
            store.delete_token("tok00001"),
            Err(StoreError::NotFound(_))
        ));

        store
            .insert_api_key("k1", &[3; 32], "admin", "ops", 5)
            .unwrap();
        store
            .insert_api_key("k2", &[4; 32], "read", "grafana", 6)
            .unwrap();
        assert!(matches!(
            store.insert_api_key("k3", &[5; 32], "root", "x", 6),
            Err(StoreError::InvalidInput(_))
        ));
        assert!(matches!(
            store.insert_api_key("k3", &[3; 32], "read", "x", 6),
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(
            store.api_key_role(&[3; 32]).unwrap(),
            Some(("k1".into(), "admin".into()))
        );
        assert_eq!(
            store.api_key_role(&[4; 32]).unwrap(),
            Some(("k2".into(), "read".into()))
        );
        assert_eq!(store.api_key_role(&[9; 32]).unwrap(), None);
        store.revoke_api_key("k1", 7).unwrap();
        assert_eq!(store.api_key_role(&[3; 32]).unwrap(), None);
        let keys = store.list_api_keys().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].revoked_at, Some(7));
    }
}
