//! End-to-end test support: fake router roots, helpers that start the real collector and
//! agent binaries on ephemeral loopback ports in temporary directories, and network namespaces
//! for the tests that need real network stacks.

pub mod easyrsa;
pub mod fake_router;
pub mod harness;
pub mod netns;
pub mod webdriver;

use std::path::PathBuf;

/// Path of a workspace binary (`routerstats-agent`, `routerstats-collector`, `fake-router`) in the
/// same target directory as the running test. `cargo test --workspace` and `scripts/test` build
/// them before any test runs.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target profile dir");
    let p = dir.join(name);
    assert!(p.exists(), "{} is not built: run `cargo build --workspace --bins` (scripts/test does)", p.display());
    p
}
