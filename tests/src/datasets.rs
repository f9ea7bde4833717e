//! The shared conda data set of `$PKGR_DATASETS`.

use std::path::PathBuf;

/// The shared conda data set (`$PKGR_DATASETS`: real packages, repodata,
/// environment specs) for the tests that read it. Unset: `None`, after
/// printing `skipped: PKGR_DATASETS is not set` (a user's fresh clone).
/// Set to something that is not a directory: a panic naming the variable
/// and the path, so that a typo is an error, never a silent skip.
pub fn datasets() -> Option<PathBuf> {
    match std::env::var_os("PKGR_DATASETS") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.is_dir(),
                "PKGR_DATASETS is set to {}, which is not a directory (point it at shared/datasets, or unset it to skip the tests that read it)",
                dir.display()
            );
            Some(dir)
        }
        _ => {
            eprintln!("skipped: PKGR_DATASETS is not set");
            None
        }
    }
}
