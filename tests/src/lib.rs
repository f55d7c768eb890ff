//! End-to-end test support: fake router roots, helpers that start the real collector and
//! agent binaries on ephemeral loopback ports in temporary directories, and network namespaces
//! for the tests that need real network stacks.

pub mod easyrsa;
pub mod fake_router;
pub mod harness;
pub mod netns;
pub mod webdriver;

use std::path::PathBuf;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What [`percent_encode`] encodes: every byte but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` percent-encoded for a URL path segment or query value (only `A-Z a-z 0-9 - . _ ~` stay).
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// Path of a workspace binary (`routerstats-agent`, `routerstats-collector`, `fake-router`) in the
/// same target directory as the running test. `cargo test --workspace` and `scripts/test` build
/// them before any test runs.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test does)",
        p.display()
    );
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encode_keeps_only_unreserved_characters() {
        assert_eq!(
            super::percent_encode("aZ09-._~ /+=ü"),
            "aZ09-._~%20%2F%2B%3D%C3%BC"
        );
    }
}
