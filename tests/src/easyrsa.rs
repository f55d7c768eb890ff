//! The real easy-rsa for the OpenVPN tests: where it is, running it on a PKI directory, and a
//! server PKI (CA, server certificate, CRL) as an OpenVPN server on a router keeps one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// easy-rsa: on PATH (OpenWrt, some distributions) or where Debian puts it.
pub fn path() -> Option<PathBuf> {
    let on_path = Command::new("sh")
        .args(["-c", "command -v easyrsa"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    on_path.or_else(|| {
        let p = PathBuf::from("/usr/share/easy-rsa/easyrsa");
        p.exists().then_some(p)
    })
}

/// [`path`], or a panic that says how to get it.
pub fn required() -> PathBuf {
    path().expect("easy-rsa is missing (scripts/test installs easy-rsa)")
}

/// Runs `tool args` in batch mode on the PKI at `pki`; panics with easy-rsa's stderr when it
/// fails.
pub fn run(tool: &Path, pki: &Path, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .env("EASYRSA_PKI", pki)
        .env("EASYRSA_BATCH", "1")
        .output()
        .unwrap_or_else(|e| panic!("easyrsa {args:?}: {e}"));
    assert!(
        out.status.success(),
        "easyrsa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new PKI at `pki`: a CA named `ca_cn`, a server certificate `server` (no passphrase) and a
/// CRL.
pub fn server_pki(tool: &Path, pki: &Path, ca_cn: &str) {
    run(tool, pki, &["init-pki"]);
    run(
        tool,
        pki,
        &[&format!("--req-cn={ca_cn}"), "build-ca", "nopass"],
    );
    run(tool, pki, &["build-server-full", "server", "nopass"]);
    run(tool, pki, &["gen-crl"]);
}
