//! OS file locks on cache entries (fs4: `flock` on Unix, `LockFileEx` on
//! Windows). The protocol they implement is written down once, in the crate docs
//! ([`crate`]); this module only knows how to take and release one lock.
//!
//! A lock file is never deleted while pkgr runs. The kernel drops a lock when
//! its holder dies, so a `kill -9` never leaves a stale lock behind. An
//! exclusive holder writes its pid into the file so that a waiting process can
//! say whom it is waiting for.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs4::FileExt;

/// How long a process waits on a lock before it tells the user who holds it.
pub const WAIT_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// Shared (many readers) or exclusive (one writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once; excludes exclusive holders.
    Shared,
    /// One holder; excludes everyone else.
    Exclusive,
}

/// A held lock. Dropping it releases the lock (closing the file does).
#[derive(Debug)]
pub struct FileLock {
    file: std::fs::File,
    path: PathBuf,
    mode: LockMode,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("could not lock {}", path.display())]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl FileLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a shared or exclusive lock.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    fn open(path: &Path) -> Result<std::fs::File, LockError> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| LockError {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Takes the lock if it is free right now; `Ok(None)` if someone holds it.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<Self>, LockError> {
        let file = Self::open(path)?;
        let result = match mode {
            LockMode::Shared => FileExt::try_lock_shared(&file),
            LockMode::Exclusive => FileExt::try_lock(&file),
        };
        match result {
            Ok(()) => Ok(Some(Self::finish(file, path, mode))),
            Err(fs4::TryLockError::WouldBlock) => Ok(None),
            Err(fs4::TryLockError::Error(source)) => Err(LockError {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Blocks until the lock is held. Call this off the async runtime
    /// (`spawn_blocking`).
    pub fn acquire_blocking(path: &Path, mode: LockMode) -> Result<Self, LockError> {
        let file = Self::open(path)?;
        let result = match mode {
            LockMode::Shared => FileExt::lock_shared(&file),
            LockMode::Exclusive => FileExt::lock(&file),
        };
        result.map_err(|source| LockError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::finish(file, path, mode))
    }

    fn finish(mut file: std::fs::File, path: &Path, mode: LockMode) -> Self {
        if mode == LockMode::Exclusive {
            // Best effort: the pid is only used to tell waiters whom they wait for.
            let _ = file.set_len(0);
            let _ = file.seek(SeekFrom::Start(0));
            let _ = write!(file, "{}", std::process::id());
        }
        Self {
            file,
            path: path.to_path_buf(),
            mode,
        }
    }

    /// Whether the lock file this lock is held on is still the file at its
    /// path (it was not deleted or replaced while we waited for it). Locks on
    /// files that can be removed (a prefix's) must check this after acquiring.
    pub fn is_still_at_path(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match (self.file.metadata(), std::fs::metadata(&self.path)) {
                (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
                _ => false,
            }
        }
        #[cfg(not(unix))]
        {
            self.path.exists()
        }
    }

    /// The pid last written into a lock file by an exclusive holder, if any.
    pub fn holder_pid(path: &Path) -> Option<u32> {
        let mut text = String::new();
        std::fs::File::open(path)
            .ok()?
            .read_to_string(&mut text)
            .ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

/// Takes a lock without blocking the async runtime. If the lock is not free
/// within [`WAIT_NOTICE_AFTER`], `on_wait` is called once with the pid of the
/// last exclusive holder, and the wait goes on until the lock is free.
pub async fn acquire(
    path: &Path,
    mode: LockMode,
    on_wait: impl FnOnce(Option<u32>),
) -> Result<FileLock, LockError> {
    if let Some(lock) = FileLock::try_acquire(path, mode)? {
        return Ok(lock);
    }
    let owned = path.to_path_buf();
    let mut task = tokio::task::spawn_blocking(move || FileLock::acquire_blocking(&owned, mode));
    let joined = match tokio::time::timeout(WAIT_NOTICE_AFTER, &mut task).await {
        Ok(joined) => joined,
        Err(_elapsed) => {
            on_wait(FileLock::holder_pid(path));
            task.await
        }
    };
    joined.map_err(|e| LockError {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_records_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        assert!(FileLock::try_acquire(&path, LockMode::Shared)
            .unwrap()
            .is_none());
        assert_eq!(FileLock::holder_pid(&path), Some(std::process::id()));
        drop(held);
        let a = FileLock::try_acquire(&path, LockMode::Shared).unwrap();
        let b = FileLock::try_acquire(&path, LockMode::Shared).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn waiting_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            drop(held);
        });
        let mut reported = None;
        let lock = acquire(&path, LockMode::Shared, |pid| reported = Some(pid))
            .await
            .unwrap();
        assert_eq!(reported, Some(Some(std::process::id())));
        assert_eq!(lock.mode(), LockMode::Shared);
        releaser.join().unwrap();
    }
}
