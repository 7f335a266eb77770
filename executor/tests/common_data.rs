//! Where the shared fixture data lives (next to the repository in CI).

use std::path::PathBuf;

/// `$METIS_SHARED_DATA`, else `<repo>/../shared/data`; `None` if absent.
#[allow(dead_code)]
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("METIS_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    dir.is_dir().then_some(dir)
}

#[allow(dead_code)]
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
