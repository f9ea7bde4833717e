//! Each process that opens the cache gets its own temp directory,
//! `tmp/proc-<pid>-<nonce>/`, guarded by an exclusive lock on
//! `tmp/proc-<pid>-<nonce>.lock` that the process holds until it exits. A
//! killed process's lock is released by the kernel, which is how `pkgr clean`
//! knows that the temp files of a directory are garbage: it sweeps exactly the
//! directories whose lock it can take, and never those of a live process.

use std::path::{Path, PathBuf};

use crate::CacheError;
use pkgr_fs::lock::{FileLock, LockMode};

/// This process's temp directory in the cache, and the lock that says it is alive.
#[derive(Debug)]
pub(crate) struct Session {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: FileLock,
}

impl Session {
    /// Creates and locks a new session directory below `tmp`.
    pub(crate) fn start(tmp: &Path) -> Result<Self, CacheError> {
        let not_writable = |source| CacheError::NotWritable {
            path: tmp.to_path_buf(),
            source,
        };
        loop {
            let name = format!("proc-{}-{:08x}", std::process::id(), nonce());
            let lock_path = tmp.join(format!("{name}.lock"));
            let lock = match FileLock::try_acquire(&lock_path, LockMode::Exclusive) {
                Ok(Some(lock)) => lock,
                Ok(None) => continue,
                Err(pkgr_fs::LockError::Io { source, .. }) => return Err(not_writable(source)),
                Err(e) => return Err(e.into()),
            };
            // A sweeper may have deleted the file between our open and our lock.
            if !lock.is_still_at_path() {
                continue;
            }
            let dir = tmp.join(&name);
            fs_err::create_dir_all(&dir).map_err(not_writable)?;
            return Ok(Self {
                dir,
                lock_path,
                _lock: lock,
            });
        }
    }

    /// The directory for this process's temp files.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Best effort; `pkgr clean` sweeps whatever a crash leaves.
        let _ = fs_err::remove_dir_all(&self.dir);
        let _ = fs_err::remove_file(&self.lock_path);
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
/// free), leaving live ones alone.
pub(crate) fn sweep(tmp: &Path) -> Result<SweepReport, CacheError> {
    let mut report = SweepReport::default();
    let entries = match fs_err::read_dir(tmp) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(source) => {
            return Err(CacheError::Io {
                context: format!("reading {}", tmp.display()),
                source,
            })
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(ToOwned::to_owned))
        .collect();
    names.sort();
    for name in &names {
        let Some(session) = name.strip_suffix(".lock") else {
            continue;
        };
        let lock_path = tmp.join(name);
        match FileLock::try_acquire(&lock_path, LockMode::Exclusive)? {
            None => report.live += 1,
            Some(lock) => {
                // The owner is gone: its directory goes first, then the lock file,
                // both while we hold the lock.
                let dir = tmp.join(session);
                if dir.exists() {
                    fs_err::remove_dir_all(&dir).map_err(|source| CacheError::Io {
                        context: String::from("removing a dead process's temp files"),
                        source,
                    })?;
                }
                let _ = fs_err::remove_file(&lock_path);
                drop(lock);
                report.removed += 1;
            }
        }
    }
    // Directories whose lock file is already gone, and stray temp files, are
    // leftovers of an interrupted sweep or of older pkgr versions.
    for name in &names {
        // A session creates its lock file before its directory: if the lock
        // file exists now, the directory may belong to a live process.
        if name.ends_with(".lock") || tmp.join(format!("{name}.lock")).exists() {
            continue;
        }
        let path = tmp.join(name);
        let removed = if path.is_dir() {
            fs_err::remove_dir_all(&path)
        } else {
            fs_err::remove_file(&path)
        };
        if removed.is_ok() {
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
        let tmp = tempfile::tempdir().unwrap();
        let live = Session::start(tmp.path()).unwrap();
        std::fs::write(live.dir().join("download.part"), b"in progress").unwrap();
        // A session whose process died: its lock file is there but nobody holds it.
        let dead = tmp.path().join("proc-999999-deadbeef");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("download.part"), b"orphan").unwrap();
        std::fs::write(tmp.path().join("proc-999999-deadbeef.lock"), b"999999").unwrap();
        // A leftover without a lock file (interrupted sweep).
        std::fs::create_dir(tmp.path().join("proc-1-00000000")).unwrap();

        let report = sweep(tmp.path()).unwrap();
        assert_eq!(report.live, 1);
        assert_eq!(report.removed, 2);
        assert!(!dead.exists());
        assert!(!tmp.path().join("proc-1-00000000").exists());
        assert!(
            live.dir().join("download.part").is_file(),
            "a live process's files stay"
        );

        let live_dir = live.dir().to_path_buf();
        drop(live);
        assert!(!live_dir.exists(), "a session cleans up after itself");
    }
}
