//! The shared conda data set of `$PKGR_DATASETS`.

use std::path::PathBuf;

/// The shared conda data set (`$PKGR_DATASETS`: real packages, repodata,
/// environment specs) for the tests that read it. Those tests are
/// `#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]`,
/// so a plain `cargo test` (a user's fresh clone) counts them as ignored and
/// `.ci/run` runs them with `--ignored`. Unset, or set to something that is not a
/// directory: a panic naming the variable and the path, so a test run with
/// `--ignored` never passes without its data.
pub fn datasets() -> PathBuf {
    let dir = std::env::var_os("PKGR_DATASETS")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);
    let Some(dir) = dir else {
        panic!("PKGR_DATASETS is not set: this test reads the conda datasets; set PKGR_DATASETS to that folder (.ci/run sets it)");
    };
    assert!(
        dir.is_dir(),
        "PKGR_DATASETS is set to {}, which is not a directory (point it at the conda datasets folder)",
        dir.display()
    );
    dir
}
