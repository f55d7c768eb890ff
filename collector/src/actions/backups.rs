//! Backup archives returned by routers (`sysupgrade -b`), stored as files.
//!
//! `<data_dir>/backups/<router id>/<action id>.tar.gz`, mode 0600. The agent's SHA-256 is checked
//! before the file is written; a mismatch turns the result into `failed`. Only the size and the
//! checksum stay in the database. After each new archive, the oldest files of that router beyond
//! `backup_keep` are deleted.

use std::path::{Path, PathBuf};

use routerstats_shared::action::{ActionDetail, ActionResult, ActionState};
use routerstats_shared::token::hex;
use sha2::{Digest, Sha256};

use super::write_private;

/// The directory of a router's archives.
pub fn router_dir(data_dir: &Path, router_id: i64) -> PathBuf {
    data_dir.join("backups").join(router_id.to_string())
}

/// The archive of one backup action.
pub fn file(data_dir: &Path, router_id: i64, action_id: i64) -> PathBuf {
    router_dir(data_dir, router_id).join(format!("{action_id}.tar.gz"))
}

/// Stores the archive of a backup result; returns the result to record (data removed, or
/// `failed` when the checksum or the size do not match, or the file cannot be written).
pub fn receive(data_dir: &Path, router_id: i64, mut r: ActionResult, keep: usize) -> ActionResult {
    let Some(ActionDetail::Backup { size, sha256, data }) = r.detail.as_mut() else {
        return r;
    };
    let id = r.id;
    let actual = hex(&Sha256::digest(data.as_slice()));
    let fail = |why: String| ActionResult::new(id, ActionState::Failed, why, None);
    if actual != *sha256 || *size != data.len() as u64 {
        return fail(format!(
            "backup archive damaged: sha256 {actual} of {} bytes, the router said {sha256} of {size}",
            data.len()
        ));
    }
    if let Err(e) = write_private(&file(data_dir, router_id, id), data) {
        tracing::error!(action = id, error = %e, "cannot store a backup archive");
        return fail(format!("the collector could not store the archive: {e}"));
    }
    data.clear();
    prune(&router_dir(data_dir, router_id), keep);
    r
}

/// Deletes the oldest archives (by action id) beyond `keep`.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut ids: Vec<i64> = entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".tar.gz")?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    let excess = ids.len().saturating_sub(keep);
    for id in &ids[..excess] {
        let _ = std::fs::remove_file(dir.join(format!("{id}.tar.gz")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn result(id: i64, data: &[u8], sha: Option<String>) -> ActionResult {
        let sha256 = sha.unwrap_or_else(|| hex(&Sha256::digest(data)));
        ActionResult::new(
            id,
            ActionState::Done,
            "",
            Some(ActionDetail::Backup {
                size: data.len() as u64,
                sha256,
                data: data.to_vec(),
            }),
        )
    }

    #[test]
    fn stored_private_checked_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let r = receive(dir.path(), 2, result(5, b"tar", None), 2);
        assert_eq!(r.state, ActionState::Done);
        assert!(
            matches!(&r.detail, Some(ActionDetail::Backup { data, size: 3, .. }) if data.is_empty())
        );
        let f = file(dir.path(), 2, 5);
        assert_eq!(std::fs::read(&f).unwrap(), b"tar");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let bad = receive(dir.path(), 2, result(6, b"tar", Some("00".into())), 2);
        assert_eq!(bad.state, ActionState::Failed);
        assert!(bad.output.contains("damaged"));
        assert!(!file(dir.path(), 2, 6).exists());

        receive(dir.path(), 2, result(7, b"a", None), 2);
        receive(dir.path(), 2, result(12, b"b", None), 2);
        assert!(!f.exists(), "the oldest archive outlived backup_keep");
        assert!(file(dir.path(), 2, 7).exists() && file(dir.path(), 2, 12).exists());
    }
}
