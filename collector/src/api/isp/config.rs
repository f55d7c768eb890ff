//! `GET /api/mikrotik/devices/{name}/config` (admin): the device's OpenVPN client configuration
//! file (`.ovpn`), as the middleware's document describes, read from the router's newest stored
//! configuration backup (`sysupgrade -b`, made by `POST /api/mikrotik/backup/create`; see
//! `api::backups`). Routers push to the collector, so there is no live file to fetch: the answer
//! is as fresh as that backup, whose id and time the `X-Backup-Id` and `X-Backup-Created`
//! headers give.
//!
//! A client profile is a file under `etc/openvpn/` of the archive (`*.ovpn` or `*.conf`) with a
//! `client` or `tls-client` directive (OpenWrt keeps such files there, and its `openvpn` UCI
//! sections point at them with `option config`). `?profile=` picks one by file name (without
//! extension); otherwise the one named like the device, else the first by name. Secrets are
//! redacted: the bodies of inline `<key>`, `<tls-auth>`, `<tls-crypt>`, `<tls-crypt-v2>`,
//! `<secret>`, `<pkcs12>`, `<auth-user-pass>` and `<http-proxy-user-pass>` blocks are replaced by
//! a comment (certificates and the CA stay). Not served: UCI-only client sections without a
//! file (OpenWrt's init script renders those at start; the collector does not).

use std::io::Read;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{isp_query, path_name, ErrorEnvelope, IspError, Params, RawQuery, MAX_TEXT_CHARS};
use crate::actions::backups;
use crate::api::{require_role, ApiError, ApiState};
use crate::pki::tokens::Role;
use crate::store::ActionFilter;

/// Largest stored archive read (the agent's limit is 512 KiB; a little slack).
const MAX_ARCHIVE: u64 = 1024 * 1024;
/// Bytes decompressed at most from one archive (a gzip bomb stops here).
const MAX_UNPACKED: u64 = 16 * 1024 * 1024;
/// Largest profile file read.
const MAX_PROFILE: u64 = 256 * 1024;

/// Inline blocks whose bodies are secrets.
const SECRET_BLOCKS: &[&str] = &[
    "key",
    "tls-auth",
    "tls-crypt",
    "tls-crypt-v2",
    "secret",
    "pkcs12",
    "auth-user-pass",
    "http-proxy-user-pass",
];

/// Why no profile could be read from an archive.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("the backup archive cannot be read: {0}")]
    Archive(String),
    #[error("the backup archive unpacks to more than {MAX_UNPACKED} bytes")]
    TooLarge,
}

/// An OpenVPN client profile found in a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The file name without directory and extension.
    pub name: String,
    /// The path in the archive (`etc/openvpn/...`).
    pub path: String,
    /// The file, secrets redacted.
    pub text: String,
}

/// True when the configuration text makes OpenVPN a client.
fn is_client(text: &str) -> bool {
    text.lines().any(|l| {
        let first = l.split_whitespace().next().unwrap_or("");
        first == "client" || first == "tls-client"
    })
}

/// Replaces the bodies of the secret inline blocks with a comment.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        match &inside {
            Some(tag) => {
                if t.eq_ignore_ascii_case(&format!("</{tag}>")) {
                    out.push_str("# redacted by routerstats: a secret\n");
                    out.push_str(line);
                    out.push('\n');
                    inside = None;
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
                if let Some(tag) = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
                    let tag = tag.to_ascii_lowercase();
                    if SECRET_BLOCKS.contains(&tag.as_str()) {
                        inside = Some(tag);
                    }
                }
            }
        }
    }
    if inside.is_some() {
        // An unterminated secret block: its body is withheld all the same.
        out.push_str("# redacted by routerstats: a secret (the block is not closed)\n");
    }
    out
}

/// The client profiles of a `sysupgrade -b` archive (gzip-compressed tar), by name.
pub fn client_profiles(archive: &[u8]) -> Result<Vec<Profile>, ProfileError> {
    let gz = flate2::read::GzDecoder::new(archive);
    let limited = gz.take(MAX_UNPACKED + 1);
    let mut tar = tar::Archive::new(limited);
    let entries = tar
        .entries()
        .map_err(|e| ProfileError::Archive(e.to_string()))?;
    let mut out = Vec::new();
    let mut unpacked: u64 = 0;
    for entry in entries {
        let mut entry = entry.map_err(|e| ProfileError::Archive(e.to_string()))?;
        unpacked = unpacked.saturating_add(entry.size().saturating_add(512));
        if unpacked > MAX_UNPACKED {
            return Err(ProfileError::TooLarge);
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = match entry.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(_) => continue,
        };
        let rel = path.trim_start_matches("./").trim_start_matches('/');
        let Some(file) = rel.strip_prefix("etc/openvpn/") else {
            continue;
        };
        let Some(name) = file
            .strip_suffix(".ovpn")
            .or_else(|| file.strip_suffix(".conf"))
        else {
            continue;
        };
        if entry.size() > MAX_PROFILE || name.is_empty() {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(MAX_PROFILE)
            .read_to_end(&mut bytes)
            .map_err(|e| ProfileError::Archive(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        if is_client(&text) {
            out.push(Profile {
                name: name.rsplit('/').next().unwrap_or(name).to_string(),
                path: rel.to_string(),
                text: redact(&text),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    Ok(out)
}

/// The profile asked for: by `profile`, else the one named like the device, else the first.
fn pick<'a>(profiles: &'a [Profile], device: &str, profile: Option<&str>) -> Option<&'a Profile> {
    match profile {
        Some(p) => profiles.iter().find(|x| x.name == p),
        None => profiles
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(device))
            .or_else(|| profiles.first()),
    }
}

isp_query! {
    /// The query of [`device_config`].
    ConfigQuery {
        profile: Option<String> = |p: &Params| p.text_max("profile", MAX_TEXT_CHARS),
    }
}

/// Download the device's OpenVPN client configuration (admin).
#[utoipa::path(get, path = "/api/mikrotik/devices/{name}/config",
    operation_id = "isp_devices_name_config", tag = "isp",
    params(
        ("name" = String, Path, description = "Device (router) name, 1 to 253 characters", min_length = 1, max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"),
        ("profile" = Option<String>, Query, description = "The profile's file name without extension (default: the one named like the device, else the first by name); at most 253 characters", max_length = 253, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"),
    ),
    responses(
        (status = 200, description = "The `.ovpn` file from the device's newest backup, secrets redacted (`Content-Disposition: attachment`; `X-Backup-Id`, `X-Backup-Created` say which backup)", content_type = "application/x-openvpn-profile", body = String),
        (status = 400, description = "Bad device name or profile", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 403, description = "Not an admin key", body = ErrorEnvelope),
        (status = 404, description = "Unknown device, no backup of it yet, no client profile in its newest backup, or no such profile", body = ErrorEnvelope),
        (status = 410, description = "The newest backup's archive was deleted by retention", body = ErrorEnvelope),
        (status = 500, description = "The archive cannot be read", body = ErrorEnvelope),
    ))]
pub async fn device_config(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: RawQuery,
) -> Result<Response, IspError> {
    require_role(&state, &headers, Role::Admin).await?;
    let name = path_name(name, "device name")?;
    let ConfigQuery { profile } = ConfigQuery::parse(q)?;
    let hub = |e: crate::actions::HubError| IspError::from(ApiError::from(e));
    let router_id = state.actions.router_id(name.clone()).await.map_err(hub)?;
    let newest = state
        .actions
        .list(ActionFilter {
            router_id: Some(router_id),
            state: Some("done".into()),
            kind: Some("backup".into()),
            before_id: None,
            limit: 1,
        })
        .await
        .map_err(hub)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            IspError::not_found(format!(
                "no backup of {name} yet: make one with POST /api/mikrotik/backup/create?device={name}"
            ))
        })?;
    let path = backups::file(&state.actions.settings().data_dir, router_id, newest.id);
    let data = match tokio::fs::read(&path).await {
        Ok(d) if d.len() as u64 <= MAX_ARCHIVE => d,
        Ok(_) => {
            return Err(IspError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("backup {} is larger than {MAX_ARCHIVE} bytes", newest.id),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IspError::new(
                StatusCode::GONE,
                format!(
                    "the newest backup of {name} ({}) was deleted by retention (backup_keep); make a new one",
                    newest.id
                ),
            ))
        }
        Err(e) => {
            tracing::error!(backup = newest.id, error = %e, "cannot read a backup archive");
            return Err(IspError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read backup {}", newest.id),
            ));
        }
    };
    let profiles = tokio::task::spawn_blocking(move || client_profiles(&data))
        .await
        .map_err(|e| IspError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| IspError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let chosen = pick(&profiles, &newest.router, profile.as_deref()).ok_or_else(|| {
        let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
        IspError::not_found(if names.is_empty() {
            format!(
                "the newest backup of {name} ({}) holds no OpenVPN client profile under /etc/openvpn",
                newest.id
            )
        } else {
            format!(
                "no profile {:?} in the newest backup of {name}; it has: {}",
                profile.as_deref().unwrap_or_default(),
                names.join(", ")
            )
        })
    })?;
    let filename = format!("{}.ovpn", chosen.name.replace(['"', '\\', '/'], "_"));
    let mut resp = (
        [
            (header::CONTENT_TYPE, "application/x-openvpn-profile"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        chosen.text.clone(),
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-backup-id", HeaderValue::from(newest.id));
    h.insert("x-backup-created", HeaderValue::from(newest.created_at));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(files: &[(&str, &str)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, text) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, path, text.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    const CLIENT: &str = "client\ndev tun\nremote vpn.example.net 1194\n<ca>\nCA-CERT\n</ca>\n<key>\nPRIVATE-KEY\n</key>\n<tls-crypt>\nSTATIC-KEY\n</tls-crypt>\nverb 3\n";

    #[test]
    fn finds_client_profiles_and_redacts_their_secrets() {
        let a = archive(&[
            ("etc/config/network", "config interface 'lan'\n"),
            ("etc/openvpn/office.ovpn", CLIENT),
            (
                "./etc/openvpn/server.conf",
                "server 10.8.0.0 255.255.255.0\n<key>\nK\n</key>\n",
            ),
            ("etc/openvpn/home.conf", "tls-client\nremote h 1194\n"),
        ]);
        let p = client_profiles(&a).unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["home", "office"],
            "the server config is no client profile"
        );
        let office = &p[1];
        assert_eq!(office.path, "etc/openvpn/office.ovpn");
        assert!(office.text.contains("CA-CERT"), "{}", office.text);
        assert!(!office.text.contains("PRIVATE-KEY"), "{}", office.text);
        assert!(!office.text.contains("STATIC-KEY"), "{}", office.text);
        assert!(office
            .text
            .contains("<key>\n# redacted by routerstats: a secret\n</key>"));
        assert!(office.text.ends_with("verb 3\n"));
    }

    #[test]
    fn unterminated_secret_is_withheld() {
        let r = redact("client\n<secret>\nABC\n");
        assert!(!r.contains("ABC"), "{r}");
        assert!(r.contains("not closed"));
    }

    #[test]
    fn garbage_and_bombs_are_errors_not_panics() {
        assert!(matches!(
            client_profiles(b"not a gzip file"),
            Err(ProfileError::Archive(_))
        ));
        assert!(matches!(
            client_profiles(&[]),
            Err(ProfileError::Archive(_)) | Ok(_)
        ));
        let big = "x".repeat((MAX_UNPACKED + 10) as usize);
        let a = archive(&[("etc/big", &big)]);
        assert_eq!(client_profiles(&a), Err(ProfileError::TooLarge));
    }

    #[test]
    fn pick_prefers_the_asked_then_the_device_name() {
        let p = |n: &str| Profile {
            name: n.into(),
            path: format!("etc/openvpn/{n}.ovpn"),
            text: String::new(),
        };
        let list = vec![p("a"), p("ap-1"), p("b")];
        assert_eq!(pick(&list, "AP-1", None).unwrap().name, "ap-1");
        assert_eq!(pick(&list, "other", None).unwrap().name, "a");
        assert_eq!(pick(&list, "other", Some("b")).unwrap().name, "b");
        assert!(pick(&list, "other", Some("zz")).is_none());
        assert!(pick(&[], "x", None).is_none());
    }
}
