//! Checking an extracted package against its own `info/paths.json` (or the
//! legacy `info/files`): the one check behind three moments of an entry's life.
//!
//! - **Before it is published** ([`crate::PackageCache`]'s fill): an entry is
//!   renamed into `pkgs/` only if every path its metadata lists is there, with
//!   its recorded size. An archive that lacks files is refused then, naming
//!   the file, instead of being found out later by every reader.
//! - **When it is handed out** (sizes only: one `lstat` per file): a complete
//!   entry that was damaged since (a file deleted or truncated, an empty file
//!   left by a power loss) is repaired instead of failing every install.
//! - **By `pkgr cache verify`** (sizes and sha256 of every file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rattler_conda_types::package::{PathType, PathsJson};

/// How thoroughly to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// Every path exists; regular files have their recorded size.
    Sizes,
    /// As [`Depth::Sizes`], and regular files have their recorded sha256.
    Hashes,
}

/// What [`check_files`] found besides "complete".
#[derive(Debug)]
pub(crate) struct Found {
    /// The `softlink` paths that the package holds as regular files, with
    /// their sizes (a `.tar.bz2` that stores a link as a file, or a symlink
    /// with an empty target, which cannot exist on disk and is kept as an
    /// empty file): the entry's marker records them, so a later check can
    /// tell them from a link that was replaced.
    pub(crate) links_as_files: BTreeMap<String, u64>,
    /// The paths that are symlinks on disk (so that linking the package
    /// need not look at every file again).
    pub(crate) symlinks: BTreeSet<PathBuf>,
    /// The package's paths.json (or legacy `info/files`) as read for the
    /// check (so that linking need not read it again).
    pub(crate) paths: PathsJson,
}

/// Checks the extracted package at `dir` (one `lstat` per path).
///
/// The error says what is wrong, naming the path.
pub(crate) fn check_files(dir: &Path, depth: Depth) -> Result<Found, String> {
    let paths = PathsJson::from_package_directory_with_deprecated_fallback(dir)
        .map_err(|e| format!("its info/paths.json (or info/files) is unreadable: {e}"))?;
    let mut links_as_files = BTreeMap::new();
    let mut symlinks = BTreeSet::new();
    for entry in &paths.paths {
        let path = dir.join(&entry.relative_path);
        let shown = entry.relative_path.display();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return Err(format!("`{shown}` is missing"));
        };
        match entry.path_type {
            PathType::Directory => {
                if !meta.is_dir() {
                    return Err(format!("`{shown}` is not a directory"));
                }
                continue;
            }
            _ if meta.file_type().is_symlink() => {
                symlinks.insert(entry.relative_path.clone());
                continue;
            }
            _ if !meta.is_file() => return Err(format!("`{shown}` is not a file")),
            PathType::SoftLink => {
                links_as_files.insert(
                    entry.relative_path.to_string_lossy().into_owned(),
                    meta.len(),
                );
                continue;
            }
            PathType::HardLink => {}
        }
        if let Some(expected) = entry.size_in_bytes {
            if meta.len() != expected {
                return Err(format!(
                    "`{shown}` has {} bytes, expected {expected}",
                    meta.len()
                ));
            }
        }
        if depth == Depth::Hashes {
            if let Some(expected) = entry.sha256 {
                let actual = pkgr_fs::hash_file(&path).map_err(|e| format!("`{shown}`: {e}"))?;
                if actual.sha256.as_slice() != expected.as_slice() {
                    return Err(format!("`{shown}` has the wrong sha256"));
                }
            }
        }
    }
    Ok(Found {
        links_as_files,
        symlinks,
        paths,
    })
}

/// [`check_files`], then compares the links held as files with what the
/// marker recorded when the entry was published.
pub(crate) fn check_entry(
    dir: &Path,
    depth: Depth,
    recorded: &BTreeMap<String, u64>,
) -> Result<Found, String> {
    let found = check_files(dir, depth)?;
    if let Some((path, size)) = found
        .links_as_files
        .iter()
        .find(|(p, s)| recorded.get(*p) != Some(s))
    {
        return Err(format!(
            "`{path}` is a regular file of {size} bytes where the package has a symlink"
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_json(dir: &Path, entries: serde_json::Value) {
        std::fs::create_dir_all(dir.join("info")).unwrap();
        let json = serde_json::json!({ "paths": entries, "paths_version": 1 });
        std::fs::write(dir.join("info/paths.json"), json.to_string()).unwrap();
    }

    #[test]
    fn missing_short_and_wrong_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        paths_json(
            d,
            serde_json::json!([
                {"_path": "bin/tool", "path_type": "hardlink", "size_in_bytes": 5,
                 "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
                {"_path": "lib/link", "path_type": "softlink", "size_in_bytes": 5},
            ]),
        );
        assert_eq!(
            check_files(d, Depth::Sizes).unwrap_err(),
            "`bin/tool` is missing"
        );
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/tool"), b"").unwrap();
        assert!(check_files(d, Depth::Sizes)
            .unwrap_err()
            .contains("`bin/tool` has 0 bytes, expected 5"));
        std::fs::write(d.join("bin/tool"), b"hellO").unwrap();
        std::fs::create_dir_all(d.join("lib")).unwrap();
        std::os::unix::fs::symlink("../bin/tool", d.join("lib/link")).unwrap();
        let found = check_files(d, Depth::Sizes).unwrap();
        assert!(found.links_as_files.is_empty());
        assert_eq!(found.symlinks, BTreeSet::from([PathBuf::from("lib/link")]));
        assert_eq!(
            check_files(d, Depth::Hashes).unwrap_err(),
            "`bin/tool` has the wrong sha256"
        );
        std::fs::write(d.join("bin/tool"), b"hello").unwrap();
        assert!(check_files(d, Depth::Hashes).is_ok());

        // A link held as a file is fine if the marker says so, and only then.
        std::fs::remove_file(d.join("lib/link")).unwrap();
        std::fs::write(d.join("lib/link"), b"").unwrap();
        let found = check_files(d, Depth::Sizes).unwrap().links_as_files;
        assert_eq!(found.get("lib/link"), Some(&0));
        assert!(check_entry(d, Depth::Sizes, &found)
            .unwrap()
            .symlinks
            .is_empty());
        assert!(check_entry(d, Depth::Sizes, &BTreeMap::new())
            .unwrap_err()
            .contains("`lib/link` is a regular file"));
    }
}
