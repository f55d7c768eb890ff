//! The backup action: `sysupgrade -b FILE` (OpenWrt's own configuration archive: /etc/config and
//! the files listed for keeping), read back and returned with its SHA-256, at most
//! [`MAX_BACKUP`] bytes. The archive file is removed afterwards, whatever happened.

use routerstats_shared::action::{ActionDetail, MAX_BACKUP};
use routerstats_shared::token::hex;

use super::{tools, ActionConfig};

/// Makes the archive; its bytes and checksum in the detail.
pub fn create(cfg: &ActionConfig, id: i64) -> Result<(String, Option<ActionDetail>), String> {
    let path = cfg
        .backup_dir
        .join(format!("routerstats-backup-{id}.tar.gz"));
    let _ = std::fs::remove_file(&path);
    let result = (|| {
        let shown = path.display().to_string();
        tools::run(&cfg.sysupgrade, &["-b", &shown])?;
        let size = std::fs::metadata(&path)
            .map_err(|e| format!("sysupgrade wrote no archive ({shown}): {e}"))?
            .len();
        if size > MAX_BACKUP as u64 {
            return Err(format!(
                "the archive has {size} bytes, more than the {MAX_BACKUP} a backup may have"
            ));
        }
        let data = std::fs::read(&path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let sha256 = hex(&crate::uplink::tls::sha256(&data));
        Ok((
            format!(
                "{} -b: {} bytes, sha256 {sha256}\n",
                cfg.sysupgrade,
                data.len()
            ),
            Some(ActionDetail::Backup {
                size: data.len() as u64,
                sha256,
                data,
            }),
        ))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cfg(dir: &std::path::Path, script: &str) -> ActionConfig {
        let tool = dir.join("sysupgrade");
        std::fs::write(&tool, script).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        ActionConfig {
            allow: vec![],
            uci: "uci".into(),
            uci_confdir: None,
            uci_savedir: None,
            wg: "wg".into(),
            ifup: "ifup".into(),
            journal: dir.join("j"),
            sysupgrade: tool.display().to_string(),
            backup_dir: dir.to_path_buf(),
            ..crate::actions::tests_cfg(dir)
        }
    }

    #[test]
    fn archive_with_checksum_and_the_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(
            dir.path(),
            "#!/bin/sh\n[ \"$1\" = -b ] || exit 2\nprintf 'archive' > \"$2\"\n",
        );
        let (_, detail) = create(&c, 7).unwrap();
        let Some(ActionDetail::Backup { size, sha256, data }) = detail else {
            panic!()
        };
        assert_eq!((size, data.as_slice()), (7, b"archive".as_slice()));
        assert_eq!(
            sha256,
            hex(&<sha2::Sha256 as sha2::Digest>::digest(b"archive"))
        );
        assert!(!dir.path().join("routerstats-backup-7.tar.gz").exists());
    }

    #[test]
    fn too_large_or_missing_archives_fail() {
        let dir = tempfile::tempdir().unwrap();
        let big = format!("#!/bin/sh\nhead -c {} /dev/zero > \"$2\"\n", MAX_BACKUP + 1);
        assert!(create(&cfg(dir.path(), &big), 1)
            .unwrap_err()
            .contains("more than"));
        assert!(!dir.path().join("routerstats-backup-1.tar.gz").exists());
        assert!(create(&cfg(dir.path(), "#!/bin/sh\nexit 0\n"), 2)
            .unwrap_err()
            .contains("no archive"));
        assert!(
            create(&cfg(dir.path(), "#!/bin/sh\necho broken >&2; exit 1\n"), 3)
                .unwrap_err()
                .contains("broken")
        );
    }
}
