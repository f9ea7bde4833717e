//! Byte-compiled modules of `noarch: python` packages, kept beside the
//! entries: `pyc/<entry key>/<python tag>/` holds the `.pyc` files (paths
//! relative to the prefix) that compiling the entry's modules for that
//! python gave, so the next environment hardlinks them instead of starting
//! python to compile them again.
//!
//! A `.pyc` records the size and mtime of its source, and python checks
//! them on import: a `.pyc` kept here matches the entry's own files (a
//! prefix whose modules are hardlinks of the entry's, or copies keeping
//! their mtime), and anywhere else is merely stale, so python compiles the module again on first import, as if
//! there were no `.pyc`. Nothing here is ever needed for correctness.
//!
//! **Protocol.** A directory for a tag is complete when it exists: it is
//! filled under a temp name in the cache's `tmp/` and renamed into place in
//! one step; whoever comes second finds it there and drops its own. It is
//! read only by a process holding the entry's shared lock, and removed only
//! under the entry's exclusive lock (when the entry is filled anew or
//! removed), so it never changes under a reader.
//!
//! **Trust.** `pyc/` and `pyc/<key>/` are opened with `O_NOFOLLOW` from
//! the cache root when modules are kept (a symlink a member put there is
//! an error naming it, never followed), only a directory of this account
//! is chmod'ed, and the staging directory is renamed into the held
//! `pyc/<key>/` (see "Trust" in the crate docs).

use std::path::{Path, PathBuf};

use crate::Layout;

/// Where the compiled modules of the entry `key` are kept (one directory
/// per python tag in it), below the cache `root`.
pub(crate) fn dir(root: &Path, key: &str) -> PathBuf {
    Layout::new(root).compiled(key)
}

/// The root of the cache (or read-only layer) holding the entry at
/// `entry_dir` (`<root>/pkgs/<key>`), and the key.
fn root_and_key(entry_dir: &Path) -> Option<(&Path, &str)> {
    let key = entry_dir.file_name()?.to_str()?;
    let pkgs = entry_dir.parent()?;
    (pkgs.file_name()? == Layout::PKGS).then_some(())?;
    Some((pkgs.parent()?, key))
}

/// The directory of compiled modules of the entry at `entry_dir` for the
/// python `tag`, in the cache (or read-only layer) holding the entry, if it
/// has one. The caller holds the entry's shared lock (or it is in a
/// read-only layer).
pub fn find(entry_dir: &Path, tag: &str) -> Option<PathBuf> {
    let (root, key) = root_and_key(entry_dir)?;
    let found = dir(root, key).join(tag);
    found.is_dir().then_some(found)
}

/// Keeps `pycs` (paths relative to `prefix`, compiled there from the
/// modules of the entry at `entry_dir` of the cache at `root`, hardlinks of
/// the entry's files or copies with their mtimes) for the python `tag`, unless someone kept them
/// already (or the entry is not in this cache). An empty list is kept too:
/// the package's modules do not compile for this python, and the next
/// environment need not try again. Copies, not links:
/// files in the cache are never group- or world-writable, whatever umask
/// python wrote them with. `tmp` is this process's temp directory on the
/// cache's filesystem.
#[expect(
    clippy::disallowed_methods,
    reason = "the destination is below a held handle (/proc/self/fd/N/...), a path no message should show"
)]
pub fn keep(
    root: &Path,
    tmp: &Path,
    entry_dir: &Path,
    tag: &str,
    prefix: &Path,
    pycs: &[PathBuf],
) -> std::io::Result<()> {
    // Kept only beside the entry's own files (not for a read-only layer's).
    let Some((entry_root, key)) = root_and_key(entry_dir) else {
        return Ok(());
    };
    if entry_root != root {
        return Ok(());
    }
    let dest = dir(root, key).join(tag);
    if fs_err::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let staging = tempfile::Builder::new().prefix("pyc-").tempdir_in(tmp)?;
    // Every user of the cache reads them (a temp dir is made 0700, and
    // the umask may be as strict); in a group-shared cache the members
    // also add other pythons' directories beside this one.
    let shared = crate::trust::is_group_shared(root);
    let dir_mode = if shared { 0o2775 } else { 0o755 };
    let mut dirs = std::collections::BTreeSet::from([staging.path().to_path_buf()]);
    for pyc in pycs {
        pkgr_fs::check_relative_path(pyc).map_err(std::io::Error::other)?;
        let to = staging.path().join(pyc);
        if let Some(parent) = to.parent() {
            fs_err::create_dir_all(parent)?;
            dirs.extend(
                parent
                    .ancestors()
                    .take_while(|d| d.starts_with(staging.path()))
                    .map(Path::to_path_buf),
            );
        }
        fs_err::copy(prefix.join(pyc), &to)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Read-only, as every published file of the cache (see
            // `archive::PUBLISHED_FILE_MASK`): environments hardlink it.
            fs_err::set_permissions(&to, std::fs::Permissions::from_mode(0o444))?;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for dir in &dirs {
            fs_err::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
        }
    }
    // `pyc/<key>/`, opened without following a symlink from the root
    // (the caller's, canonical), and held while the staging directory is
    // renamed into it. Best effort for its mode: another user's directory
    // is theirs to change.
    let to_io = |e: pkgr_fs::dir::DirError| std::io::Error::other(e.to_string());
    let parent = pkgr_fs::dir::Dir::open(root)
        .and_then(|root| root.create_dir(Layout::PYC, 0o777))
        .and_then(|pyc| pyc.create_dir(key, 0o777))
        .map_err(to_io)?;
    let _ = parent.add_mode_if_ours(dir_mode);
    let dest_at = parent.anchored().join(tag);
    // raw std::fs: `dest_at` is below a held handle (`/proc/self/fd/N/...`),
    // a path no message should show.
    match std::fs::rename(staging.path(), &dest_at) {
        Ok(()) => {
            // Renamed away: nothing left for the guard to remove.
            let _ = staging.keep();
            Ok(())
        }
        // Kept by another process meanwhile (a non-empty directory is not
        // replaced): ours goes with the guard.
        Err(_) if std::fs::symlink_metadata(&dest_at).is_ok_and(|m| m.is_dir()) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache with the entry `foo-1.0-0-abc` (its temp dir made), and a
    /// prefix holding `pyc` with `contents`.
    struct Fixture {
        cache: tempfile::TempDir,
        tmp: PathBuf,
        entry: PathBuf,
        prefix: tempfile::TempDir,
    }

    fn fixture(pyc: &Path, contents: &[u8]) -> Fixture {
        let cache = tempfile::tempdir().unwrap();
        let tmp = Layout::new(cache.path()).tmp();
        let entry = Layout::new(cache.path()).entry_dir("foo-1.0-0-abc");
        fs_err::create_dir_all(&tmp).unwrap();
        fs_err::create_dir_all(&entry).unwrap();
        let prefix = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(prefix.path().join(pyc.parent().unwrap())).unwrap();
        fs_err::write(prefix.path().join(pyc), contents).unwrap();
        Fixture {
            cache,
            tmp,
            entry,
            prefix,
        }
    }

    #[test]
    #[cfg(unix)]
    fn in_a_group_shared_cache_the_members_can_add_other_pythons() {
        use std::os::unix::fs::PermissionsExt;
        let pyc = PathBuf::from("lib/foo/__pycache__/a.cpython-311.pyc");
        let Fixture {
            cache,
            tmp,
            entry,
            prefix,
        } = fixture(&pyc, b"pyc");
        let root = cache.path();
        fs_err::set_permissions(root, std::fs::Permissions::from_mode(0o2775)).unwrap();
        keep(
            root,
            &tmp,
            &entry,
            "cpython-311",
            prefix.path(),
            std::slice::from_ref(&pyc),
        )
        .unwrap();
        let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir(root, "foo-1.0-0-abc")), 0o2775);
        assert_eq!(
            mode(&dir(root, "foo-1.0-0-abc").join("cpython-311")),
            0o2775
        );
        let kept = find(&entry, "cpython-311").unwrap().join(&pyc);
        assert_eq!(mode(&kept), 0o444, "files are read-only");
    }

    #[test]
    fn kept_once_found_by_entry_and_tag_and_only_for_this_cache() {
        let pyc = PathBuf::from("lib/python3.11/site-packages/foo/__pycache__/a.cpython-311.pyc");
        let Fixture {
            cache,
            tmp,
            entry,
            prefix,
        } = fixture(&pyc, b"first");
        let root = cache.path();

        assert!(find(&entry, "cpython-311").is_none());
        keep(
            root,
            &tmp,
            &entry,
            "cpython-311",
            prefix.path(),
            std::slice::from_ref(&pyc),
        )
        .unwrap();
        let found = find(&entry, "cpython-311").unwrap();
        assert_eq!(fs_err::read(found.join(&pyc)).unwrap(), b"first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs_err::metadata(found.join(&pyc))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o444);
        }
        assert!(find(&entry, "cpython-312").is_none(), "per python");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Readable by every user of the cache, down to the .pyc.
            for dir in found.join(&pyc).ancestors().skip(1).take(6) {
                let mode = fs_err::metadata(dir).unwrap().permissions().mode();
                assert_eq!(mode & 0o755, 0o755, "{}: {mode:o}", dir.display());
            }
        }

        // The second one to compile keeps nothing: the first copy stays.
        fs_err::write(prefix.path().join(&pyc), b"second").unwrap();
        keep(
            root,
            &tmp,
            &entry,
            "cpython-311",
            prefix.path(),
            std::slice::from_ref(&pyc),
        )
        .unwrap();
        assert_eq!(fs_err::read(found.join(&pyc)).unwrap(), b"first");
        assert_eq!(fs_err::read_dir(&tmp).unwrap().count(), 0, "no temp left");

        // An entry of another cache (a read-only layer) is not kept here.
        let layer = tempfile::tempdir().unwrap();
        let other = Layout::new(layer.path()).entry_dir("bar-1.0-0-def");
        fs_err::create_dir_all(&other).unwrap();
        keep(
            root,
            &tmp,
            &other,
            "cpython-311",
            prefix.path(),
            std::slice::from_ref(&pyc),
        )
        .unwrap();
        assert!(!dir(root, "bar-1.0-0-def").exists());
        assert!(find(&other, "cpython-311").is_none());

        // A path out of the prefix is refused.
        let entry2 = Layout::new(root).entry_dir("baz-1.0-0-123");
        fs_err::create_dir_all(&entry2).unwrap();
        let escaping = PathBuf::from("../outside.pyc");
        assert!(keep(
            root,
            &tmp,
            &entry2,
            "cpython-311",
            prefix.path(),
            &[escaping]
        )
        .is_err());
        assert!(find(&entry2, "cpython-311").is_none());
    }
}
