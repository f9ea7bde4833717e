//! What `pkgr-repodata` needs from the cache to keep repodata in it: the
//! `repodata/` directory, the lock of one cached repodata file (the lock
//! protocol of the crate docs: "Repodata files follow the same pattern"),
//! this process's temp directory, the repodata policy and whether the cache
//! is read-only. The fetcher and the jobs semaphore are
//! [`PackageCache::fetcher`] and [`PackageCache::jobs`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use pkgr_fs::lock::{self, FileLock, LockMode};

use crate::{session, CacheError, Layout, PackageCache, RepodataPolicy, Reporter};

/// Keeps this process's session of the cache (its temp directory, and the
/// held directories that [`PackageCache::repodata_dir`] and
/// [`PackageCache::session_tmp_dir`] reach through) open while it lives:
/// moved into a blocking task that writes there.
#[derive(Debug, Clone)]
pub struct SessionGuard {
    _session: Option<Arc<session::Session>>,
}

impl PackageCache {
    /// How cached repodata is used (time to live, `--refresh`, `--offline`),
    /// as set by [`PackageCache::with_repodata_policy`].
    pub fn repodata_policy(&self) -> RepodataPolicy {
        self.repodata_policy
    }

    /// The directory cached repodata lives in: `repodata/` reached through
    /// its held handle in a writable cache (see "Trust" in the crate docs),
    /// `<root>/repodata` in a read-only one.
    pub fn repodata_dir(&self) -> PathBuf {
        self.dirs
            .as_ref()
            .map_or_else(|| self.layout().repodata(), |d| d.repodata_at.clone())
    }

    /// The directory shards are cached in (`repodata/shards/`; immutable
    /// files named by their hash, read and written without a lock).
    pub fn shards_dir(&self) -> PathBuf {
        self.layout().shards()
    }

    /// A guard keeping this process's session (and the held directories)
    /// open, for a blocking task that writes below them.
    pub fn session_guard(&self) -> SessionGuard {
        SessionGuard {
            _session: self.session.clone(),
        }
    }

    /// Takes the exclusive lock `repodata/<name>.lock` of one cached
    /// repodata file (`name`: the file's name without its extensions), as
    /// the lock protocol in the crate docs says: held around "is the cached
    /// copy fresh? else download beside it, check it, rename it into
    /// place". Waits at most the lock timeout, telling `reporter` whom it
    /// waits for (`redacted`: the repodata's URL without credentials); in a
    /// read-only cache, [`CacheError::ReadOnly`] (nothing writes it, so no
    /// lock is needed to read it).
    pub async fn lock_repodata_file(
        &self,
        name: &str,
        redacted: &str,
        reporter: &dyn Reporter,
    ) -> Result<FileLock, CacheError> {
        let started = std::time::Instant::now();
        let lock = lock::acquire_in(
            &self.dirs(format!("download {redacted} into it"))?.repodata,
            &Layout::lock_name(name),
            LockMode::Exclusive,
            redacted,
            self.lock_timeout,
            |pid| reporter.waiting(redacted, pid),
        )
        .await?;
        crate::fill::log_wait(redacted, started);
        Ok(lock)
    }

    /// When this process started: a cached copy fetched since then (by any
    /// process) is fresh whatever its age.
    pub fn process_start() -> SystemTime {
        crate::process_start()
    }
}

/// A background task (`spawn_blocking`) that panicked or was cancelled, as
/// a [`CacheError`].
pub fn background_task_error(e: tokio::task::JoinError) -> CacheError {
    crate::error::join_error(e)
}

/// An error and its causes on one line.
pub fn error_chain_text(e: &dyn std::error::Error) -> String {
    crate::error::error_text(e)
}
