//! Each process that opens the cache gets its own temp directory,
//! `tmp/proc-<pid>-<nonce>/`, guarded by an exclusive lock on
//! `tmp/proc-<pid>-<nonce>.lock` that the process holds until it exits. A
//! killed process's lock is released by the kernel, which is how `pkgr clean`
//! knows that the temp files of a directory are garbage: it sweeps exactly the
//! directories whose lock it can take, and never those of a live process.
//!
//! Everything here goes through the held handle of `tmp/` (never its path:
//! a member of a group-shared cache could have put a symlink to another
//! user's directory there; see "Trust" in the crate docs): the sweep lists,
//! locks and removes relative to it, and never follows a symlink. A
//! session's directory is made `0700` (in a group-shared cache `tmp/` is
//! sticky, so no member can rename or replace it); the downloads and small
//! files written there go through its held handle ([`Session::anchored`]),
//! the extraction (thousands of files, each path canonicalized by the tar
//! reader) through its real path (see "Trust" in the crate docs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{CacheError, Layout};
use pkgr_fs::dir::Dir;
use pkgr_fs::lock::{FileLock, LockMode};

/// This process's temp directory in the cache, and the lock that says it is alive.
#[derive(Debug)]
pub(crate) struct Session {
    tmp: Arc<Dir>,
    name: String,
    /// The directory, held open; `at` reaches it through this handle.
    _dir: Dir,
    at: PathBuf,
    /// Its real path (for messages and callers outside the cache).
    real: PathBuf,
    _lock: FileLock,
    /// The cache's held directories, kept open as long as the session:
    /// whatever owns the session (an extraction thread) may write through
    /// paths anchored at them (`/proc/self/fd/<fd>/...`), which must not
    /// outlive their descriptors (see [`Self::keeping`]).
    _dirs: Option<Arc<crate::trust::Dirs>>,
}

impl Session {
    /// Creates and locks a new session directory below the held `tmp`.
    pub(crate) fn start(tmp: &Arc<Dir>) -> Result<Self, CacheError> {
        let not_writable = |source| CacheError::NotWritable {
            path: tmp.path().to_path_buf(),
            source,
        };
        loop {
            let name = Layout::session_name(std::process::id(), nonce());
            let lock_name = Layout::lock_name(&name);
            let lock = match FileLock::try_acquire_in(tmp, &lock_name, LockMode::Exclusive) {
                Ok(Some(lock)) => lock,
                Ok(None) => continue,
                Err(pkgr_fs::LockError::Io { source, .. }) => return Err(not_writable(source)),
                Err(e) => return Err(e.into()),
            };
            // A sweeper may have deleted the file between our open and our lock.
            if !lock.is_still_in(tmp, &lock_name) {
                continue;
            }
            // 0700: nobody else puts anything in it.
            let dir = tmp.create_dir(&name, 0o700).map_err(|e| match e {
                pkgr_fs::dir::DirError::Io { source, .. } => not_writable(source),
                other => CacheError::Dir(other),
            })?;
            return Ok(Self {
                tmp: tmp.clone(),
                at: dir.anchored(),
                real: dir.path().to_path_buf(),
                _dirs: None,
                _dir: dir,
                name,
                _lock: lock,
            });
        }
    }

    /// This session, keeping `dirs` open as long as it lives: a task that
    /// owns the session may use the paths anchored at them.
    pub(crate) fn keeping(mut self, dirs: Arc<crate::trust::Dirs>) -> Self {
        self._dirs = Some(dirs);
        self
    }

    /// The directory for this process's temp files: its real path, which
    /// extractions stage below (see the module docs).
    pub(crate) fn dir(&self) -> &Path {
        &self.real
    }

    /// The directory reached through its held handle (`/proc/self/fd/<fd>`
    /// on Linux; messages should show [`pkgr_fs::dir::real_path`] of paths
    /// below it): what downloads and atomic writes use.
    pub(crate) fn anchored(&self) -> &Path {
        &self.at
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Best effort; `pkgr clean` sweeps whatever a crash leaves.
        let _ = self.tmp.remove_all(&self.name);
        let _ = self.tmp.remove_file(Layout::lock_name(&self.name));
    }
}

fn nonce() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish() as u32
}

/// What sweeping the temp directory found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Temp directories of dead processes that were removed.
    pub removed: usize,
    /// Temp directories of live processes that were left alone.
    pub live: usize,
}

/// Removes the temp directories of processes that are gone (their lock is
/// free), leaving live ones alone, all through the held `tmp` handle.
/// What this account may not remove (a dead member's files in a
/// group-shared cache: theirs to sweep) and what is not a lock file (a
/// symlink or FIFO at a `.lock` name) are left alone.
pub(crate) fn sweep(tmp: &Dir) -> Result<SweepReport, CacheError> {
    let mut report = SweepReport::default();
    let mut names: Vec<String> = tmp
        .entries()?
        .into_iter()
        .filter_map(|(name, _)| name.to_str().map(ToOwned::to_owned))
        .collect();
    names.sort();
    let io = |source| CacheError::Io {
        context: format!(
            "removing a dead process's temp files in {}",
            tmp.path().display()
        ),
        source,
    };
    let not_ours = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound
        )
    };
    for name in &names {
        let Some(session) = name.strip_suffix(Layout::LOCK_SUFFIX) else {
            continue;
        };
        match FileLock::try_acquire_in(tmp, name, LockMode::Exclusive) {
            Ok(None) => report.live += 1,
            Ok(Some(lock)) => {
                // The owner is gone: its directory goes first, then the lock file,
                // both while we hold the lock.
                match tmp.remove_all(session) {
                    Ok(()) => {}
                    Err(e) if not_ours(&e) => continue,
                    Err(e) => return Err(io(e)),
                }
                let _ = tmp.remove_file(name);
                drop(lock);
                report.removed += 1;
            }
            Err(pkgr_fs::LockError::NotALockFile { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Directories whose lock file is already gone, and stray temp files, are
    // leftovers of an interrupted sweep or of older pkgr versions.
    for name in &names {
        // A session creates its lock file before its directory: if the lock
        // file exists now, the directory may belong to a live process.
        if name.ends_with(Layout::LOCK_SUFFIX)
            || !matches!(tmp.stat(Layout::lock_name(name)), Ok(None))
        {
            continue;
        }
        // (Gone already: the first pass removed it with its lock file.)
        if matches!(tmp.stat(name), Ok(Some(_))) && tmp.remove_all(name).is_ok() {
            report.removed += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_dead_sessions_and_keeps_live_ones() {
        let root = tempfile::tempdir().unwrap();
        let tmp = Arc::new(Dir::open(root.path()).unwrap());
        let live = Session::start(&tmp).unwrap();
        fs_err::write(live.dir().join("download.part"), b"in progress").unwrap();
        // A session whose process died: its lock file is there but nobody holds it.
        let dead = root.path().join("proc-999999-deadbeef");
        fs_err::create_dir(&dead).unwrap();
        fs_err::write(dead.join("download.part"), b"orphan").unwrap();
        fs_err::write(root.path().join("proc-999999-deadbeef.lock"), b"999999").unwrap();
        // A leftover without a lock file (interrupted sweep).
        fs_err::create_dir(root.path().join("proc-1-00000000")).unwrap();

        let report = sweep(&tmp).unwrap();
        assert_eq!(report.live, 1);
        assert_eq!(report.removed, 2);
        assert!(!dead.exists());
        assert!(!root.path().join("proc-1-00000000").exists());
        assert!(
            live.dir().join("download.part").is_file(),
            "a live process's files stay"
        );

        let live_dir = pkgr_fs::dir::real_path(live.dir());
        assert!(live_dir.starts_with(root.path()), "{}", live_dir.display());
        drop(live);
        assert!(!live_dir.exists(), "a session cleans up after itself");
    }

    #[test]
    fn sweep_never_follows_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        fs_err::create_dir(victim.path().join("proc-5-0000beef")).unwrap();
        fs_err::write(victim.path().join("proc-5-0000beef/precious"), b"keep").unwrap();
        fs_err::write(victim.path().join("precious"), b"keep").unwrap();
        // A dead session whose directory is a link to the victim's, a stray
        // link, and a lock file that is a link.
        fs_err::os::unix::fs::symlink(victim.path(), root.path().join("proc-5-0000beef")).unwrap();
        fs_err::write(root.path().join("proc-5-0000beef.lock"), b"5").unwrap();
        fs_err::os::unix::fs::symlink(victim.path(), root.path().join("stray")).unwrap();
        fs_err::os::unix::fs::symlink(
            victim.path().join("precious"),
            root.path().join("proc-6-0000beef.lock"),
        )
        .unwrap();
        let tmp = Dir::open(root.path()).unwrap();
        sweep(&tmp).unwrap();
        assert_eq!(
            fs_err::read(victim.path().join("precious")).unwrap(),
            b"keep"
        );
        assert!(victim.path().join("proc-5-0000beef/precious").is_file());
    }
}
