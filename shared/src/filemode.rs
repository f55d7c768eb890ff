//! Private files on both sides: the collector's CA and server keys and data dir, the agent's
//! key and config dir must not be open to other users. [`tighten_mode`] removes permission bits
//! beyond a mode; each side logs what it changed in its own way.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Removes the permission bits of `path` beyond `mode` (keeps the rest). Returns the old and
/// new modes (`& 0o777`) when it changed something; a missing path is left alone.
pub fn tighten_mode(path: &Path, mode: u32) -> std::io::Result<Option<(u32, u32)>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let now = meta.permissions().mode() & 0o7777;
    let want = now & mode;
    if want == now {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(want))?;
    Ok(Some((now & 0o777, want & 0o777)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_extra_bits() {
        let dir = std::env::temp_dir().join(format!("rs-filemode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("key.pem");
        std::fs::write(&p, b"k").unwrap();
        let set = |m| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        set(0o644);
        assert_eq!(tighten_mode(&p, 0o600).unwrap(), Some((0o644, 0o600)));
        assert_eq!(tighten_mode(&p, 0o600).unwrap(), None);
        set(0o400);
        assert_eq!(
            tighten_mode(&p, 0o600).unwrap(),
            None,
            "a stricter mode is kept"
        );
        assert_eq!(tighten_mode(&dir.join("missing"), 0o600).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
