//! [`CacheError`]: everything that can go wrong in the cache, and the small
//! helpers that turn other errors into it.

use std::path::PathBuf;

use pkgr_fetch::FetchError;
use pkgr_fs::lock::LockError;

use crate::ArchiveError;

/// Everything that can go wrong in the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache is on a filesystem whose locks other hosts do not see.
    #[error(
        "the cache {} is on {} ({why}): file locks there are seen by this host only, so processes on two hosts sharing it could corrupt it; use a local cache (--cache-dir / PKGR_CACHE_DIR), mount it with working locks (NFSv4, or NFSv3 without nolock/local_lock), or, if only this host ever uses it, set PKGR_CACHE_LOCKS=local",
        path.display(),
        mount_point.display()
    )]
    LocksNotShared {
        /// The cache root.
        path: PathBuf,
        /// Where its filesystem is mounted.
        mount_point: PathBuf,
        /// What makes its locks local.
        why: String,
    },
    /// The cache is on a read-only filesystem, and this needs a write.
    #[error(
        "the cache {} is on a read-only filesystem, so pkgr cannot {action}; for that, use a writable cache (--cache-dir or PKGR_CACHE_DIR) and keep this one as a read-only layer searched first (PKGR_READONLY_CACHES, or list it before the writable one in pkgs_dirs)",
        path.display()
    )]
    ReadOnly {
        /// The cache root.
        path: PathBuf,
        /// What could not be done (`fetch x-1.0-0.conda into it`).
        action: String,
    },
    /// The cache directory cannot be created or written.
    #[error("the cache directory {} is not writable (set --cache-dir or PKGR_CACHE_DIR to a writable place)", path.display())]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The cache root, or a directory in it, could be changed by someone
    /// this account does not trust: another user who does not share it
    /// with a group of ours, or every user (see "Trust" in the crate docs).
    #[error("refusing to use the cache {}: {problem}; {fix}", path.display())]
    Untrusted {
        /// The directory.
        path: PathBuf,
        /// What is wrong (`it is writable by every user (mode 1777)`).
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// A directory of the cache is a symlink (or not a directory): someone
    /// who can write to the cache replaced it. Never followed.
    #[error(transparent)]
    Dir(#[from] pkgr_fs::dir::DirError),
    /// A record whose name, version, build or file name is not one plain
    /// path component that is its own (`/`, `..`, a control character, a
    /// file name that is not `<name>-<version>-<build>.<ext>`): its key
    /// would become a path in the cache (lock file, entry, archive), so it
    /// is refused before anything is made of it. The solver and the
    /// installer refuse such records earlier, naming the channel; this is
    /// the cache's own check, for every program that uses it.
    #[error("refusing to cache {package}: {problem}")]
    UnsafeRecord {
        /// The record's file name (control characters escaped).
        package: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Downloading failed.
    #[error("could not fetch {package}")]
    Fetch {
        /// The package's file name or repodata URL.
        package: String,
        /// The underlying error.
        #[source]
        source: FetchError,
    },
    /// The archive is bad.
    #[error("could not unpack {package}")]
    Archive {
        /// The package's file name.
        package: String,
        /// The underlying error.
        #[source]
        source: ArchiveError,
    },
    /// A lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Other file system trouble.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `--offline`, and what is needed is not in the cache.
    #[error("{what} is not in the cache, and --offline forbids downloading it")]
    Offline {
        /// The package file name or repodata URL (redacted).
        what: String,
    },
    /// Another package of the same request failed, so this one stopped.
    #[error("stopped because another package failed")]
    Cancelled,
    /// A complete entry is still damaged after it was filled anew.
    #[error("the cache entry of {package} at {} is damaged ({problem}) even after it was fetched again; is something else changing the cache? Run `pkgr cache verify --repair`", dir.display())]
    Damaged {
        /// The package.
        package: String,
        /// The entry's directory.
        dir: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A damaged (or incomplete) entry must be filled again, but this
    /// account may not move it aside: another user published it, and the
    /// cache does not let members replace each other's entries.
    #[error(
        "the cache entry {} ({package}) is {problem} and must be fetched again, but it belongs to {owner} and this account may not move it aside; ask {owner} to run `pkgr cache verify --repair`, or let the members of the cache's group replace each other's entries (chmod g+w,-t {})",
        dir.display(),
        dir.parent().unwrap_or(dir).display()
    )]
    NotYours {
        /// The package.
        package: String,
        /// The entry's directory.
        dir: PathBuf,
        /// What is wrong with it (`damaged (...)`, `incomplete`).
        problem: String,
        /// Who owns it (a user name, else `uid N`).
        owner: String,
        /// What the rename said.
        #[source]
        source: std::io::Error,
    },
    /// A downloaded repodata.json is not whole, valid JSON (it was not stored).
    #[error("the repodata at {url} is broken: {problem}; it was not stored, retry later or check the channel")]
    BrokenRepodata {
        /// Its URL (redacted).
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// The entry kept disappearing while we tried to use it.
    #[error("the cache entry for {package} was removed repeatedly while pkgr tried to use it (is `pkgr clean` running in a loop?)")]
    Vanished {
        /// The package.
        package: String,
    },
}

pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CacheError {
    let context = context.into();
    move |source| CacheError::Io { context, source }
}

/// An error and its causes on one line.
pub(crate) fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(crate) fn join_error(e: tokio::task::JoinError) -> CacheError {
    CacheError::Io {
        context: String::from("a background task failed"),
        source: std::io::Error::other(e),
    }
}
