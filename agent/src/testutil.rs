//! Test helpers: locating the shared real-world fixtures (`../shared/fixtures` beside the repo)
//! and the project's own fixtures (`agent/fixtures`).

use std::path::PathBuf;

/// Path of a file under the repository's sibling `../shared/fixtures/` directory.
pub fn shared_fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(rel)
}

/// Every file in one `../shared/fixtures/<kind>/` directory, sorted. Panics (failing the test)
/// when the directory is missing, so a CI run without the fixtures cannot pass silently.
pub fn shared_fixtures_in(kind: &str) -> Vec<(String, String)> {
    let dir = shared_fixture_path(kind);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("shared fixtures missing at {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).expect("read fixture");
            (name, String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {}", dir.display());
    out
}

/// Contents of one shared fixture, by path relative to `../shared/fixtures`.
pub fn shared_fixture(rel: &str) -> String {
    let p = shared_fixture_path(rel);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Contents of one of the project's own fixtures, by path relative to `agent/fixtures`.
pub fn own_fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}
