//! Removing an installed package's files from a prefix.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use rattler_conda_types::PrefixRecord;

use crate::{io, PrefixError};

/// Every path a record says its package put into the prefix (`files` and
/// `paths_data`: they normally agree; a hand-edited record may list a path
/// in only one).
pub fn record_paths(record: &PrefixRecord) -> BTreeSet<PathBuf> {
    record
        .files
        .iter()
        .cloned()
        .chain(
            record
                .paths_data
                .paths
                .iter()
                .map(|p| p.relative_path.clone()),
        )
        .collect()
}

/// Removes `paths` (relative to `prefix`) except those in `keep` (paths
/// another installed package also ships: a clobbered file stays for its
/// other owner), then every directory they leave empty, up to but not
/// including the prefix itself. Missing files are fine (already removed).
/// Returns how many files were removed.
pub fn remove_paths<'a>(
    prefix: &Path,
    paths: impl IntoIterator<Item = &'a PathBuf>,
    keep: &HashSet<PathBuf>,
) -> Result<usize, PrefixError> {
    let mut removed = 0;
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for path in paths {
        if keep.contains(path) || pkgr_cache::archive::check_relative_path(path).is_err() {
            // Never follow a record (or journal) out of the prefix.
            continue;
        }
        let full = prefix.join(path);
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => {
                dirs.insert(path.clone());
            }
            Ok(_) => {
                fs_err::remove_file(&full).map_err(io("removing a file of the environment"))?;
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("reading {}", full.display()))(e)),
        }
        let mut parent = path.parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    // Deepest first, so a directory emptied by its children goes too.
    let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        if dir == Path::new("conda-meta") {
            continue;
        }
        remove_empty_pycache(&prefix.join(&dir));
        // Fails (and stays) unless empty.
        let _ = std::fs::remove_dir(prefix.join(&dir));
    }
    Ok(removed)
}

/// A `__pycache__` left with only `.pyc` files of modules that are gone
/// (python writes some on import that no record lists) is removed too.
fn remove_empty_pycache(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join("__pycache__")) else {
        return;
    };
    let mut stale = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(module) = name.split('.').next() else {
            return;
        };
        if !name.ends_with(".pyc") || dir.join(format!("{module}.py")).exists() {
            return;
        }
        stale.push(entry.path());
    }
    for pyc in stale {
        let _ = std::fs::remove_file(pyc);
    }
    let _ = std::fs::remove_dir(dir.join("__pycache__"));
}
