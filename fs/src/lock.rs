//! OS file locks (fs4: `flock` on Unix, `LockFileEx` on Windows), as the
//! cache entries, the repodata files and the prefixes use them. The protocol
//! they implement (which lock, in what order, held for how long) is written
//! down once, in the crate docs of `pkgr_cache`; this module only knows how to
//! take and release one lock.
//!
//! The kernel drops a lock when its holder dies, so a `kill -9` never leaves a
//! stale lock behind. An exclusive holder writes its pid into the file so that
//! a waiting process can say whom it is waiting for. A cache lock file is
//! never deleted while pkgr runs; a prefix's may be (a failed `create`
//! removes the environment), which is what [`FileLock::is_still_at_path`] is
//! for.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs4::FileExt;

/// How long a process waits on a lock before it tells the user who holds it.
pub const WAIT_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// How long a process waits for a lock before it gives up, unless
/// `PKGR_LOCK_TIMEOUT` (seconds) says otherwise: 5 minutes, as uv does. A
/// holder that keeps a lock longer is hung or doing something very large; the
/// waiter then fails with a message naming it instead of hanging for ever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The lock timeout of this process: `PKGR_LOCK_TIMEOUT` in seconds (fractions
/// allowed) if set and valid, else [`DEFAULT_TIMEOUT`].
pub fn default_timeout() -> Duration {
    std::env::var("PKGR_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64)
}

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
pub enum LockError {
    /// The lock file could not be opened or locked.
    #[error("could not lock {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The filesystem refuses file locks (`ENOLCK`, `ENOTSUP`/`EOPNOTSUPP`,
    /// `ENOSYS`): NFSv3 mounted without a lock manager, some FUSE and
    /// network filesystems. Without locks the cache cannot be shared
    /// safely, so pkgr stops instead of going on unlocked.
    #[error(
        "the filesystem of {} does not support file locks ({source}); a shared pkgr cache needs them: put the cache on a local disk (--cache-dir or PKGR_CACHE_DIR), or on a network filesystem whose locks work across hosts (NFSv4; not NFSv3 mounted with nolock or local_lock)",
        path.display()
    )]
    Unsupported {
        /// The lock file.
        path: PathBuf,
        /// What the lock call said.
        #[source]
        source: std::io::Error,
    },
    /// The lock stayed taken for longer than the timeout.
    #[error(
        "gave up waiting for {what} after {} s: {} holds it (lock file {}); set PKGR_LOCK_TIMEOUT (seconds) to wait longer",
        waited.as_secs(),
        holder_pid.map_or_else(|| String::from("another process"), |pid| format!("process {pid}")),
        path.display()
    )]
    Timeout {
        /// What was waited for (a package, a URL, an environment).
        what: String,
        /// The lock file.
        path: PathBuf,
        /// The last exclusive holder's pid, if known.
        holder_pid: Option<u32>,
        /// How long we waited.
        waited: Duration,
    },
}

/// Makes a lock file we own group-writable when its directory is.
#[cfg(unix)]
fn share_with_group(file: &std::fs::File, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let dir_shared = path
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .is_some_and(|m| m.permissions().mode() & 0o020 != 0);
    if !dir_shared {
        return;
    }
    if let Ok(meta) = file.metadata() {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o060 != 0o060 {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode | 0o060));
        }
    }
}

/// `ENOLCK`, `ENOSYS` and `EOPNOTSUPP`/`ENOTSUP` on Linux: "no locks here".
const NO_LOCKS_ERRNOS: [i32; 3] = [37, 38, 95];

impl LockError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A failed lock call: [`LockError::Unsupported`] when the filesystem
    /// has no locks, else [`LockError::Io`].
    fn locking(path: &Path, source: std::io::Error) -> Self {
        let unsupported = source.kind() == std::io::ErrorKind::Unsupported
            || (cfg!(target_os = "linux")
                && source
                    .raw_os_error()
                    .is_some_and(|e| NO_LOCKS_ERRNOS.contains(&e)));
        if unsupported {
            Self::Unsupported {
                path: path.to_path_buf(),
                source,
            }
        } else {
            Self::io(path, source)
        }
    }
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

    /// Opens (creating) the lock file. Another user's lock file in a
    /// shared cache may not be writable by us: `flock` works on a file
    /// opened read-only too, so that is the fallback (only the holder pid
    /// then goes unwritten). A new lock file in a group-writable directory
    /// is made group-writable, for the next member.
    fn open(path: &Path) -> Result<std::fs::File, LockError> {
        let created = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path);
        match created {
            Ok(file) => {
                #[cfg(unix)]
                share_with_group(&file, path);
                Ok(file)
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                std::fs::File::open(path).map_err(|source| LockError::io(path, source))
            }
            Err(source) => Err(LockError::io(path, source)),
        }
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
            Err(fs4::TryLockError::Error(source)) => Err(LockError::locking(path, source)),
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
        result.map_err(|source| LockError::locking(path, source))?;
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

/// Takes a lock without blocking the async runtime, waiting at most
/// `timeout`. If the lock is not free within [`WAIT_NOTICE_AFTER`], `on_wait`
/// is called once with the pid of the last exclusive holder.
///
/// The wait itself is one blocking `flock` on a thread of the blocking pool
/// (the kernel wakes it when the lock is free: no polling). If the timeout
/// passes, or the returned future is dropped, that thread is abandoned: when
/// it gets the lock later it drops it at once, having done no work under it.
/// `what` names the thing waited for in the timeout error.
pub async fn acquire(
    path: &Path,
    mode: LockMode,
    what: &str,
    timeout: Duration,
    on_wait: impl FnOnce(Option<u32>),
) -> Result<FileLock, LockError> {
    if let Some(lock) = FileLock::try_acquire(path, mode)? {
        return Ok(lock);
    }
    let owned = path.to_path_buf();
    let mut task = tokio::task::spawn_blocking(move || FileLock::acquire_blocking(&owned, mode));
    let notice = WAIT_NOTICE_AFTER.min(timeout);
    let joined = match tokio::time::timeout(notice, &mut task).await {
        Ok(joined) => joined,
        Err(_elapsed) => {
            on_wait(FileLock::holder_pid(path));
            match tokio::time::timeout(timeout - notice, &mut task).await {
                Ok(joined) => joined,
                Err(_elapsed) => {
                    return Err(LockError::Timeout {
                        what: what.to_owned(),
                        path: path.to_path_buf(),
                        holder_pid: FileLock::holder_pid(path),
                        waited: timeout,
                    });
                }
            }
        }
    };
    joined.map_err(|e| LockError::io(path, std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystems_without_locks_get_an_actionable_message() {
        let path = Path::new("/mnt/nfs/cache/pkgs/.locks/x.lock");
        for errno in NO_LOCKS_ERRNOS {
            let err = LockError::locking(path, std::io::Error::from_raw_os_error(errno));
            if cfg!(target_os = "linux") {
                assert!(
                    matches!(err, LockError::Unsupported { .. }),
                    "{errno}: {err}"
                );
                let text = err.to_string();
                assert!(
                    text.contains("/mnt/nfs/cache") && text.contains("local disk"),
                    "{text}"
                );
            }
        }
        let other = LockError::locking(path, std::io::Error::from_raw_os_error(13));
        assert!(matches!(other, LockError::Io { .. }));
    }

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
        let lock = acquire(&path, LockMode::Shared, "x", DEFAULT_TIMEOUT, |pid| {
            reported = Some(pid);
        })
        .await
        .unwrap();
        assert_eq!(reported, Some(Some(std::process::id())));
        assert_eq!(lock.mode(), LockMode::Shared);
        releaser.join().unwrap();
    }

    #[tokio::test]
    async fn waiting_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let _held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        let started = std::time::Instant::now();
        let err = acquire(
            &path,
            LockMode::Shared,
            "zlib-1.3.1-0.conda",
            Duration::from_millis(300),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = err.to_string();
        assert!(text.contains("zlib-1.3.1-0.conda"), "{text}");
        assert!(
            text.contains(&format!("process {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("PKGR_LOCK_TIMEOUT"), "{text}");
    }
}
