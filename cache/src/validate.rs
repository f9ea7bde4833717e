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
    /// their sizes (a `.tar.bz2` that stores a link as a file; a symlink
    /// with an empty target, which cannot exist on disk, is refused at
    /// extraction): the entry's marker records them, so a later check can
    /// tell them from a link that was replaced.
    pub(crate) links_as_files: BTreeMap<String, u64>,
    /// The paths that are symlinks on disk (so that linking the package
    /// need not look at every file again).
    pub(crate) symlinks: BTreeSet<PathBuf>,
    /// The package's paths.json (or legacy `info/files`) as read for the
    /// check (so that linking need not read it again).
    pub(crate) paths: PathsJson,
}

/// Checks the extracted package at `dir`: one `lstat` per path, one per
/// distinct directory holding them, one `readlink` per symlink.
///
/// Besides completeness, it refuses what would make reading the entry (or
/// linking it) reach outside it: a listed path below a symlink (an archive
/// may list `m/home/you/.bashrc` through a symlink `m` to `/`, with the
/// victim's size: a completeness check that follows `m` passes, and linking
/// then replaces the victim), or a symlink that leads outside the entry
/// through a chain of its other symlinks (which counting `..` misses). A
/// regular file (or listed directory) writable by anyone but its owner is
/// damage too: entries are shared, and their files are hardlinked into
/// environments.
///
/// The error says what is wrong, naming the path.
pub(crate) fn check_files(dir: &Path, depth: Depth) -> Result<Found, String> {
    // Within its size limit: a package's metadata comes from whoever built it.
    let paths = crate::archive::read_entry_paths_json(dir).map_err(|e| {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<crate::archive::ListedButMissing>())
        {
            Some(missing) => missing.to_string(),
            None => format!("its info/paths.json (or info/files) is unreadable: {e}"),
        }
    })?;
    let mut links_as_files = BTreeMap::new();
    let mut symlinks = BTreeSet::new();
    let mut directories = Directories::new(dir);
    for entry in &paths.paths {
        let shown = entry.relative_path.display();
        // Refused as it lists it: `..` is never followed either.
        pkgr_fs::check_relative_path(&entry.relative_path)
            .map_err(|why| format!("`{shown}` is not a path inside the package ({why})"))?;
        directories.check_ancestors(&entry.relative_path)?;
        let path = dir.join(&entry.relative_path);
        let Ok(meta) = fs_err::symlink_metadata(&path) else {
            return Err(format!("`{shown}` is missing"));
        };
        match entry.path_type {
            PathType::Directory => {
                if !meta.is_dir() {
                    return Err(format!("`{shown}` is not a directory"));
                }
                check_mode(&meta, &shown)?;
                continue;
            }
            _ if meta.file_type().is_symlink() => {
                symlinks.insert(entry.relative_path.clone());
                continue;
            }
            _ if !meta.is_file() => return Err(format!("`{shown}` is not a file")),
            PathType::SoftLink => {
                check_mode(&meta, &shown)?;
                links_as_files.insert(
                    entry.relative_path.to_string_lossy().into_owned(),
                    meta.len(),
                );
                continue;
            }
            PathType::HardLink => check_mode(&meta, &shown)?,
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
    if !symlinks.is_empty() {
        directories.check_links(&symlinks)?;
    }
    Ok(Found {
        links_as_files,
        symlinks,
        paths,
    })
}

/// A regular file (or directory) of an entry that anyone but its owner may
/// write is damage (from the metadata already read: no syscall).
fn check_mode(meta: &std::fs::Metadata, shown: &std::path::Display<'_>) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(format!(
                "`{shown}` is writable by others than its owner (mode {mode:04o}): \
                 the entry was changed after pkgr published it"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, shown);
    Ok(())
}

/// The directories of an entry found not to be symlinks (each looked at
/// once), and the resolver the entry's symlinks are checked with.
struct Directories {
    resolver: pkgr_fs::Resolver,
    /// Directories known to be real ones (keyed by their text).
    real: std::collections::HashSet<std::ffi::OsString>,
    /// The directory checked last (files come sorted: most share it).
    last: PathBuf,
    root: PathBuf,
}

impl Directories {
    fn new(root: &Path) -> Self {
        Self {
            resolver: pkgr_fs::Resolver::on_disk(root),
            real: std::collections::HashSet::new(),
            last: PathBuf::new(),
            root: root.to_path_buf(),
        }
    }

    /// Refuses `relative` when a directory on its way is a symlink.
    fn check_ancestors(&mut self, relative: &Path) -> Result<(), String> {
        let Some(parent) = relative.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        if parent.as_os_str() == self.last.as_os_str() {
            return Ok(());
        }
        // Outermost first, so that no lstat goes through a symlink.
        let unknown: Vec<&Path> = parent
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !self.real.contains(d.as_os_str()))
            .collect();
        for dir in unknown.into_iter().rev() {
            if let Ok(meta) = fs_err::symlink_metadata(self.root.join(dir)) {
                if meta.file_type().is_symlink() {
                    return Err(format!(
                        "`{}` lies below `{}`, which is a symlink: the package may only \
                         list paths in its own directories (a hostile or broken package)",
                        relative.display(),
                        dir.display()
                    ));
                }
            }
            self.real.insert(dir.as_os_str().to_owned());
        }
        parent.clone_into(&mut self.last);
        Ok(())
    }

    /// Refuses a symlink of `links` that leads outside the entry through
    /// the entry's other symlinks (one `readlink` each).
    #[expect(
        clippy::disallowed_methods,
        reason = "the message names the link as the package does, not the staging path"
    )]
    fn check_links(&mut self, links: &BTreeSet<PathBuf>) -> Result<(), String> {
        let mut targets = Vec::with_capacity(links.len());
        for link in links {
            // raw std::fs: the message names the link as the package does.
            let target = std::fs::read_link(self.root.join(link))
                .map_err(|e| format!("`{}`: reading the symlink: {e}", link.display()))?;
            self.resolver.add_link(link, &target);
            targets.push((link, target));
        }
        for (link, target) in targets {
            self.resolver.check_link(link, &target).map_err(|escape| {
                format!(
                    "`{}` is a symlink to `{}`, which leads outside the package: {escape} \
                     (a hostile or broken package)",
                    link.display(),
                    target.display()
                )
            })?;
        }
        Ok(())
    }
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
        fs_err::create_dir_all(dir.join("info")).unwrap();
        let json = serde_json::json!({ "paths": entries, "paths_version": 1 });
        fs_err::write(dir.join("info/paths.json"), json.to_string()).unwrap();
    }

    /// Item 4 of issue 22: paths.json lists a file through the package's
    /// own chain of symlinks to `/`, with the victim's size.
    #[cfg(unix)]
    #[test]
    fn a_path_below_a_symlink_is_refused_without_following_it() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim.txt");
        fs_err::write(&victim, b"precious").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs_err::create_dir_all(d.join("a/b")).unwrap();
        fs_err::os::unix::fs::symlink("../..", d.join("a/b/l")).unwrap();
        let ups = "../".repeat(40);
        fs_err::os::unix::fs::symlink(format!("l/{ups}"), d.join("a/b/m")).unwrap();
        let listed = format!("a/b/m{}", victim.display());
        assert!(d.join(&listed).is_file(), "the chain leads to the victim");
        paths_json(
            d,
            serde_json::json!([
                {"_path": "a/b/l", "path_type": "softlink"},
                {"_path": "a/b/m", "path_type": "softlink"},
                {"_path": listed, "path_type": "hardlink", "size_in_bytes": 8},
            ]),
        );
        let err = check_files(d, Depth::Sizes).unwrap_err();
        assert!(
            err.contains(&format!("`{listed}` lies below `a/b/m`")),
            "{err}"
        );
        // Without the listed file, the chain itself is refused.
        paths_json(
            d,
            serde_json::json!([
                {"_path": "a/b/l", "path_type": "softlink"},
                {"_path": "a/b/m", "path_type": "softlink"},
            ]),
        );
        let err = check_files(d, Depth::Sizes).unwrap_err();
        assert!(
            err.contains("`a/b/m` is a symlink to") && err.contains("outside the package"),
            "{err}"
        );
        assert!(victim.is_file());
        // `lib64 -> lib` with files listed in `lib` is fine.
        let fine = tempfile::tempdir().unwrap();
        let f = fine.path();
        fs_err::create_dir_all(f.join("lib")).unwrap();
        fs_err::write(f.join("lib/x"), b"x").unwrap();
        fs_err::os::unix::fs::symlink("lib", f.join("lib64")).unwrap();
        fs_err::os::unix::fs::symlink("../lib64/x", f.join("lib/y")).unwrap();
        paths_json(
            f,
            serde_json::json!([
                {"_path": "lib/x", "path_type": "hardlink", "size_in_bytes": 1},
                {"_path": "lib/y", "path_type": "softlink"},
                {"_path": "lib64", "path_type": "softlink"},
            ]),
        );
        assert!(check_files(f, Depth::Sizes).is_ok());
    }

    /// Item 5: a file anyone but its owner may write is damage; read-only
    /// files (as published now) and 0644/0755 (as before) are fine.
    #[cfg(unix)]
    #[test]
    fn a_file_writable_by_others_is_damage() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs_err::create_dir_all(d.join("bin")).unwrap();
        fs_err::write(d.join("bin/tool"), b"hello").unwrap();
        paths_json(
            d,
            serde_json::json!([
                {"_path": "bin/tool", "path_type": "hardlink", "size_in_bytes": 5},
            ]),
        );
        let chmod = |mode| {
            fs_err::set_permissions(d.join("bin/tool"), std::fs::Permissions::from_mode(mode))
                .unwrap();
        };
        for fine in [0o444, 0o555, 0o644, 0o755] {
            chmod(fine);
            assert!(check_files(d, Depth::Sizes).is_ok(), "{fine:o}");
        }
        for bad in [0o664, 0o666, 0o646, 0o775] {
            chmod(bad);
            let err = check_files(d, Depth::Sizes).unwrap_err();
            assert!(
                err.contains("`bin/tool` is writable by others"),
                "{bad:o}: {err}"
            );
        }
        chmod(0o644);
    }

    /// No real package of `$PKGR_DATASETS/packages` is refused by the
    /// checks of symlinks and modes (it may be by the others: the datasets
    /// hold some incomplete archives on purpose).
    #[test]
    #[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
    fn real_packages_pass_the_symlink_and_mode_checks() {
        let datasets = pkgr_test_support::datasets();
        let (mut checked, mut with_links, mut refused) = (0, 0, 0);
        for path in crate::archive::dataset_archives(&datasets) {
            let dest = tempfile::tempdir().unwrap();
            if crate::archive::extract(&path, dest.path()).is_err() {
                continue;
            }
            match check_files(dest.path(), Depth::Sizes) {
                Ok(found) => {
                    checked += 1;
                    with_links += usize::from(!found.symlinks.is_empty());
                }
                Err(problem) => {
                    refused += 1;
                    eprintln!("{}: {problem}", path.display());
                    for new in ["lies below", "outside the package", "writable by others"] {
                        assert!(!problem.contains(new), "{}: {problem}", path.display());
                    }
                }
            }
        }
        eprintln!(
            "{checked} real packages pass ({with_links} with symlinks), {refused} refused \
             for other reasons"
        );
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
        fs_err::create_dir_all(d.join("bin")).unwrap();
        fs_err::write(d.join("bin/tool"), b"").unwrap();
        assert!(check_files(d, Depth::Sizes)
            .unwrap_err()
            .contains("`bin/tool` has 0 bytes, expected 5"));
        fs_err::write(d.join("bin/tool"), b"hellO").unwrap();
        fs_err::create_dir_all(d.join("lib")).unwrap();
        fs_err::os::unix::fs::symlink("../bin/tool", d.join("lib/link")).unwrap();
        let found = check_files(d, Depth::Sizes).unwrap();
        assert!(found.links_as_files.is_empty());
        assert_eq!(found.symlinks, BTreeSet::from([PathBuf::from("lib/link")]));
        assert_eq!(
            check_files(d, Depth::Hashes).unwrap_err(),
            "`bin/tool` has the wrong sha256"
        );
        fs_err::write(d.join("bin/tool"), b"hello").unwrap();
        assert!(check_files(d, Depth::Hashes).is_ok());

        // A link held as a file is fine if the marker says so, and only then.
        fs_err::remove_file(d.join("lib/link")).unwrap();
        fs_err::write(d.join("lib/link"), b"").unwrap();
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
