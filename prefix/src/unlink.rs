//! Removing an installed package's files from a prefix.

use std::collections::BTreeSet;
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

/// Removes `paths` (relative to `prefix`) except those `keep` says to keep (paths
/// another installed package also ships: a clobbered file stays for its
/// other owner), then every directory they leave empty, up to but not
/// including the prefix itself. Missing files are fine (already removed).
/// Returns how many files were removed.
///
/// Nothing is removed through a symlink that leads out of the prefix (an
/// environment made by an older pkgr or by another tool may hold a chain of
/// symlinks to `/`, and a record listing `m/home/you/.bashrc` would then
/// delete that file): such a path is refused, after the others are removed,
/// with an error naming it. A symlink itself is removed, never followed.
pub fn remove_paths<'a>(
    prefix: &Path,
    paths: impl IntoIterator<Item = &'a PathBuf>,
    keep: impl Fn(&Path) -> bool,
) -> Result<usize, PrefixError> {
    let mut removed = 0;
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut resolver = pkgr_fs::Resolver::on_disk(prefix);
    let mut refused: Option<PrefixError> = None;
    for path in paths {
        if keep(path) || pkgr_fs::check_relative_path(path).is_err() {
            // Never follow a record (or journal) out of the prefix.
            continue;
        }
        if let Err(escape) = resolver.check_parent(path) {
            refused.get_or_insert(PrefixError::UnsafeRemoval {
                prefix: prefix.to_path_buf(),
                path: path.display().to_string(),
                why: escape.why(),
            });
            continue;
        }
        let full = prefix.join(path);
        match fs_err::symlink_metadata(&full) {
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
        if dir == Path::new("conda-meta") || resolver.check_parent(&dir).is_err() {
            continue;
        }
        if resolver.check_dir(&dir.join("__pycache__")).is_ok() {
            remove_empty_pycache(&prefix.join(&dir));
        }
        // Fails (and stays) unless empty; a symlink is not a directory.
        let _ = fs_err::remove_dir(prefix.join(&dir));
    }
    match refused {
        Some(err) => Err(err),
        None => Ok(removed),
    }
}

/// A `__pycache__` left with only `.pyc` files of modules that are gone
/// (python writes some on import that no record lists) is removed too.
fn remove_empty_pycache(dir: &Path) {
    let Ok(entries) = fs_err::read_dir(dir.join("__pycache__")) else {
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
        let _ = fs_err::remove_file(pyc);
    }
    let _ = fs_err::remove_dir(dir.join("__pycache__"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Creates `path` (relative to `root`) with its parents.
    fn touch(root: &Path, path: &str) {
        let full = root.join(path);
        fs_err::create_dir_all(full.parent().unwrap()).unwrap();
        fs_err::write(full, path).unwrap();
    }

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn removes_files_and_the_directories_they_empty_deepest_first() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        touch(p, "a/b/c/deep.txt");
        touch(p, "a/b/mid.txt");
        let listed = paths(&["a/b/mid.txt", "a/b/c/deep.txt"]);
        let removed = remove_paths(p, &listed, |_: &Path| false).unwrap();
        assert_eq!(removed, 2);
        // `a` is only empty once `a/b/c` and then `a/b` are gone.
        assert!(!p.join("a").exists());
        assert!(p.exists(), "the prefix itself stays");
    }

    #[test]
    fn keeps_directories_still_holding_other_files() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        touch(p, "lib/mine.so");
        touch(p, "lib/sub/mine.txt");
        touch(p, "lib/theirs.so");
        let listed = paths(&["lib/mine.so", "lib/sub/mine.txt"]);
        assert_eq!(remove_paths(p, &listed, |_: &Path| false).unwrap(), 2);
        assert!(!p.join("lib/mine.so").exists());
        assert!(!p.join("lib/sub").exists());
        assert!(p.join("lib/theirs.so").is_file());
    }

    #[test]
    fn never_removes_conda_meta() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        touch(p, "conda-meta/foo-1.0-0.pkgr-partial");
        let listed = paths(&["conda-meta/foo-1.0-0.pkgr-partial", "conda-meta"]);
        assert_eq!(remove_paths(p, &listed, |_: &Path| false).unwrap(), 1);
        assert!(!p.join("conda-meta/foo-1.0-0.pkgr-partial").exists());
        assert!(p.join("conda-meta").is_dir(), "empty conda-meta stays");
    }

    #[test]
    fn skips_kept_paths() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        touch(p, "bin/tool");
        touch(p, "share/shared.txt");
        let listed = paths(&["bin/tool", "share/shared.txt"]);
        let keep: std::collections::HashSet<PathBuf> =
            paths(&["share/shared.txt"]).into_iter().collect();
        assert_eq!(
            remove_paths(p, &listed, |p: &Path| keep.contains(p)).unwrap(),
            1
        );
        assert!(!p.join("bin").exists());
        assert!(p.join("share/shared.txt").is_file());
    }

    #[test]
    fn refuses_paths_that_leave_the_prefix() {
        let root = tempfile::tempdir().unwrap();
        touch(root.path(), "outside.txt");
        touch(root.path(), "env/lib/inside.txt");
        let prefix = root.path().join("env");
        let listed = vec![
            PathBuf::from("../outside.txt"),
            PathBuf::from("lib/../../outside.txt"),
            root.path().join("outside.txt"),
        ];
        assert_eq!(remove_paths(&prefix, &listed, |_: &Path| false).unwrap(), 0);
        assert!(root.path().join("outside.txt").is_file());
        // Nor are directories on the way out touched.
        assert!(prefix.join("lib/inside.txt").is_file());
    }

    #[cfg(unix)]
    #[test]
    fn removes_a_symlinked_directory_as_a_link_without_following_it() {
        let root = tempfile::tempdir().unwrap();
        touch(root.path(), "elsewhere/precious.txt");
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("lib")).unwrap();
        fs_err::os::unix::fs::symlink(root.path().join("elsewhere"), prefix.join("lib/link"))
            .unwrap();
        let listed = paths(&["lib/link"]);
        assert_eq!(remove_paths(&prefix, &listed, |_: &Path| false).unwrap(), 1);
        assert!(fs_err::symlink_metadata(prefix.join("lib/link")).is_err());
        assert!(root.path().join("elsewhere/precious.txt").is_file());
    }

    /// An environment holding a chain of links to `/` (made by an older
    /// pkgr, or by another tool): a record listing a file below it must not
    /// delete that file, and the error names the path.
    #[cfg(unix)]
    #[test]
    fn never_removes_through_a_chain_of_links_out_of_the_prefix() {
        let root = tempfile::tempdir().unwrap();
        touch(root.path(), "victim.txt");
        touch(root.path(), "env/bin/mine");
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("a/b")).unwrap();
        fs_err::os::unix::fs::symlink("../..", prefix.join("a/b/l")).unwrap();
        fs_err::os::unix::fs::symlink("l/..", prefix.join("a/b/m")).unwrap();
        assert!(
            prefix.join("a/b/m/victim.txt").is_file(),
            "the chain leads out"
        );
        let listed = paths(&["a/b/m/victim.txt", "bin/mine"]);
        let err = remove_paths(&prefix, &listed, |_: &Path| false).unwrap_err();
        assert!(
            matches!(&err, PrefixError::UnsafeRemoval { path, .. } if path == "a/b/m/victim.txt"),
            "{err:?}"
        );
        assert!(err.to_string().contains("a/b/m/victim.txt"), "{err}");
        assert!(root.path().join("victim.txt").is_file());
        // The rest is removed all the same; the links themselves may go.
        assert!(!prefix.join("bin/mine").exists());
        let listed = paths(&["a/b/m", "a/b/l"]);
        assert_eq!(remove_paths(&prefix, &listed, |_: &Path| false).unwrap(), 2);
        assert!(root.path().join("victim.txt").is_file());
    }

    #[test]
    fn missing_files_are_already_removed() {
        let prefix = tempfile::tempdir().unwrap();
        let listed = paths(&["bin/gone", "lib/also/gone"]);
        assert_eq!(
            remove_paths(prefix.path(), &listed, |_: &Path| false).unwrap(),
            0
        );
    }

    #[test]
    fn removes_stale_pycache() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        touch(p, "lib/pkg/mod.py");
        touch(p, "lib/pkg/__pycache__/mod.cpython-312.pyc");
        touch(p, "lib/pkg/__pycache__/mod.cpython-312.opt-1.pyc");
        let listed = paths(&["lib/pkg/mod.py"]);
        assert_eq!(remove_paths(p, &listed, |_: &Path| false).unwrap(), 1);
        assert!(!p.join("lib").exists());
    }

    #[test]
    fn keeps_pycache_of_modules_still_there() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        touch(p, "lib/pkg/mod.py");
        touch(p, "lib/pkg/other.py");
        touch(p, "lib/pkg/__pycache__/mod.cpython-312.pyc");
        touch(p, "lib/pkg/__pycache__/other.cpython-312.pyc");
        touch(p, "lib/pkg/__pycache__/notes.txt");
        let listed = paths(&["lib/pkg/mod.py"]);
        assert_eq!(remove_paths(p, &listed, |_: &Path| false).unwrap(), 1);
        // `other.py` is still there, so its cache (and the stale one beside
        // it) stays: the directory is not all stale.
        assert!(p
            .join("lib/pkg/__pycache__/other.cpython-312.pyc")
            .is_file());
        assert!(p.join("lib/pkg/other.py").is_file());

        let only_foreign = tempfile::tempdir().unwrap();
        let q = only_foreign.path();
        touch(q, "lib/pkg/mod.py");
        touch(q, "lib/pkg/__pycache__/notes.txt");
        assert_eq!(remove_paths(q, &listed, |_: &Path| false).unwrap(), 1);
        assert!(q.join("lib/pkg/__pycache__/notes.txt").is_file());
    }

    #[test]
    fn record_paths_joins_files_and_paths_data() {
        let record: PrefixRecord = serde_json::from_value(serde_json::json!({
            "name": "foo",
            "version": "1.0",
            "build": "0",
            "build_number": 0,
            "subdir": "linux-64",
            "fn": "foo-1.0-0.conda",
            "url": "https://example.com/linux-64/foo-1.0-0.conda",
            "channel": "https://example.com",
            "files": ["bin/foo", "lib/both.so"],
            "paths_data": {
                "paths_version": 1,
                "paths": [
                    {"_path": "lib/both.so", "path_type": "hardlink"},
                    {"_path": "share/only-in-paths-data", "path_type": "hardlink"}
                ]
            }
        }))
        .unwrap();
        assert_eq!(
            record_paths(&record),
            BTreeSet::from(
                ["bin/foo", "lib/both.so", "share/only-in-paths-data"].map(PathBuf::from)
            )
        );
    }
}
