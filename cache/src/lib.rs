//! pkgr's package cache, safe to share between any number of processes and
//! threads at once.
//!
//! # Layout
//!
//! ```text
//! <root>/CACHEDIR.TAG
//! <root>/pkgs/<key>.conda | <key>.tar.bz2   downloaded archive, verified
//! <root>/pkgs/<key>/                        extracted package (info/ + payload)
//! <root>/pkgs/<key>/.pkgr-entry.json        completion marker, written last
//! <root>/pkgs/.locks/<key>.lock             the entry's lock file (holds the last
//!                                           exclusive holder's pid; never deleted)
//! <root>/repodata/<hash>.json (+ .info.json, .lock)
//! <root>/tmp/proc-<pid>-<nonce>/            one process's temp files, guarded by
//! <root>/tmp/proc-<pid>-<nonce>.lock        a lock it holds while alive
//! <root>/pyc/<key>/cpython-XY/              .pyc files compiled once for the
//!                                           entry's noarch python modules
//! ```
//!
//! `<key>` is `<name>-<version>-<build>-<hash>`, where `<hash>` is the first 12
//! hex digits of the record's sha256 (else md5, else the sha256 of its URL), so
//! two channels that ship different files under one file name never share an
//! entry.
//!
//! # Trust (who may change what pkgr deletes, chmods and writes)
//!
//! A cache is shared by processes and, in a group-shared cache (the root
//! `chmod 2775`, its group the sharing users'), by users. Members of the
//! cache's group are trusted like oneself *inside the cache*: any member can
//! publish an entry that others then link and run (as with a shared conda
//! `pkgs_dirs`). What no member, and nobody else, may do is make another
//! user's pkgr delete, chmod or overwrite anything *outside* the cache. A
//! member can rename any directory in the root (`tmp/`, `pyc/`, `pkgs/`,
//! `repodata/`) and put a symlink to someone's home in its place; a member
//! can put a symlink, a hard link or a FIFO at a lock file's name. So:
//!
//! 1. **The root is resolved once** (canonicalized) when the cache is opened
//!    and held open; **who owns it is checked on that handle** (`fstat`, as
//!    ssh's `StrictModes`, [`check_root_trust`]): it must not be writable by
//!    every user, and must belong to this account, to root, or be shared
//!    (group-writable) with a group this account is in. Root gets no
//!    exception: root refuses another account's cache unless it is shared
//!    with a group root is in (root's `clean` in a directory someone else
//!    controls is exactly what an attacker wants). The error
//!    ([`CacheError::Untrusted`]) says what is wrong and what to do.
//! 2. **Below the root, nothing is reached through a symlink.** `pkgs/`,
//!    `pkgs/.locks/`, `repodata/`, `repodata/shards/`, `tmp/` and `pyc/` are
//!    made and opened once, relative to the root handle, with `O_NOFOLLOW`
//!    ([`pkgr_fs::dir`]); one that is a symlink is an error naming it
//!    ([`CacheError::Dir`]), never followed; one writable by every user is
//!    refused like the root. Sweeping, cleaning, setting aside, removing and
//!    chmodding go through these handles (`openat`, `unlinkat`, `renameat`,
//!    `fchmod`); a recursive removal unlinks a symlink it meets instead of
//!    descending; only a directory this account owns is chmod'ed.
//! 3. **Writes land in the directories that were opened**, whatever is
//!    renamed meanwhile: the path-based code that fills an entry reaches
//!    `pkgs/` (the archive's and the entry's renames, setting aside),
//!    `repodata/`, `pyc/` and the downloads in this process's session
//!    directory through their held handles (`/proc/self/fd/<fd>/...` on
//!    Linux, [`pkgr_fs::dir::Dir::anchored`]; messages show the real paths,
//!    [`pkgr_fs::dir::real_path`]); the handles live as long as the session
//!    that whoever writes owns. A session directory is `0700`, and in a
//!    group-shared cache `tmp/` is made sticky (`3775`, when this account
//!    made it), so members cannot rename or replace each other's session
//!    directories. Extraction stages below the session directory's *real*
//!    path: the tar reader canonicalizes the path of every member it
//!    writes, and through `/proc/self/fd` that costs the cold path
//!    measurably; what a member who renames `tmp/` itself could do with
//!    that is make a fill create new, randomly named directories where
//!    they choose (the tar reader refuses to write outside its staging
//!    directory, and nothing is ever deleted through that path). Where
//!    `/proc` is missing the paths are used as they are (the checks of 1
//!    and 2 at open still hold).
//! 4. **Lock files are not trusted** ([`pkgr_fs::lock`]): opened relative to
//!    the held `pkgs/.locks/`, `repodata/` or `tmp/` with `O_NOFOLLOW` and
//!    `O_NONBLOCK` (a FIFO cannot hang the open), they must be regular files
//!    ([`pkgr_fs::LockError::NotALockFile`] otherwise); only one this
//!    account owns, with one link, is made group-writable or rewritten with
//!    the holder's pid: another member's lock file is locked as it is. The
//!    pid in a lock file is a claim; whom a waiter waits for is checked
//!    against `/proc/locks` (else said to be "according to the lock file").
//!
//! What this does not cover: the ancestors of the root (choose where your
//! cache lives; a world-writable, non-sticky parent lets anyone rename the
//! root itself before it is opened), and a member's *content* in the cache
//! (a member can publish a bad entry: members are trusted inside the
//! cache). A read-only cache (see below) is only read and not checked.
//!
//! # The lock protocol (the one place it is written down)
//!
//! Every entry is guarded by an OS file lock on `pkgs/.locks/<key>.lock`
//! ([`pkgr_fs::lock::FileLock`], fs4). The kernel releases it when its holder exits or is
//! killed, so there are no stale locks and no pid files to clean up.
//!
//! To use an entry ([`PackageCache::get_all`], [`PackageCache::get_or_fetch`]):
//! 1. Take the entry's **shared** lock. If the entry is complete (its marker is
//!    there and names the expected sha256) and intact (every path of its
//!    paths.json is there with its size: one `lstat` per file), keep the shared
//!    lock and hand the entry out: readers never wait for each other.
//! 2. Otherwise release it and claim the **exclusive** lock: take a jobs permit
//!    (waiting for one holds nothing), then *try* the exclusive lock. If that
//!    fails, give the permit back and wait for the shared lock: the kernel
//!    grants it as soon as nobody fills the entry (a blocking `flock` on a
//!    blocking-pool thread, no polling). If the entry is usable now (another
//!    process filled it) go to 1's hand-out; else try again (only a lost race
//!    gets here, and it retries after a short pause). Nobody ever blocks on an
//!    exclusive entry lock, and an entry is only claimed by a process that can
//!    start filling it at once.
//! 3. Holding the exclusive lock, if the entry is still not usable, fill it:
//!    download the archive into this process's temp dir, verify size and sha256
//!    (md5 when that is all the index has), `rename` it to `pkgs/<key>.<ext>`;
//!    extract into a temp directory, **check it complete** (every path of its
//!    paths.json there with its size, none below a symlink, no symlink that
//!    leads out of the entry through its others, no file writable by others
//!    than its owner: see `validate.rs`; an archive that fails is refused,
//!    naming the path), write the marker last, move whatever was at `pkgs/<key>`
//!    aside, `rename` the directory to `pkgs/<key>`. Release and go to 1.
//!    When no verified archive is there already and the index gives the
//!    archive's size, the extraction runs *while* it downloads
//!    ([`streaming`]): the same checks, the same temp directory, and the
//!    directory is renamed into place only once the download is verified
//!    too; anything the stream cannot be followed through (the download
//!    started over, another mirror, a zip member whose sizes are not in its
//!    local header) throws that directory away and extracts the verified
//!    file as above.
//!
//! **Self-healing.** An entry that is complete but damaged (a file deleted or
//! truncated since it was published, an empty file after a power loss, a
//! file made writable by others than its owner) is not
//! an error for ever: step 1 finds it, says so once ([`Reporter::repairing`]),
//! and fills it again under the exclusive lock (step 3 first moves the bad
//! one aside: one rename within `pkgs/`, which in a group-shared cache any
//! member may do to another member's entry, unless `pkgs/` is sticky; then
//! the repair fails at once, before any download, with
//! [`CacheError::NotYours`], naming the entry and its owner, and leaves it
//! as it was). If other processes still read it, the repair waits (polling
//! the try-lock, within the lock timeout) until they are done.
//!
//! **Compiled modules** (`pyc/<key>/`, [`compiled`]) belong to the entry:
//! read under its shared lock, published by one rename (complete when it
//! exists; the second process to compile drops its copy), and removed only
//! under its exclusive lock, when the entry is filled anew or removed.
//!
//! **Who owns what** (no lock, permit or temp directory ends before the work
//! done under it): the download runs in the filling task's future, which owns
//! the permit (lent to the download: `pkgr_fetch::Slot`); dropping it deletes
//! the partial file. The extraction runs on a blocking thread that *owns*
//! the exclusive lock, the permit and this process's temp directory (through
//! the session handle): whatever happens to the task that started it, the
//! extraction finishes, or fails and removes its staging directory, under the
//! lock and in a directory that exists.
//! - Extracting a verified file: the filling task holds the lock through the
//!   download and hands it, with the permit, to the extraction's thread.
//! - Extracting while downloading ([`streaming`]): the extractor thread is
//!   started before the download and owns the lock and the session from
//!   then on; it reads the body through a bounded channel (the download
//!   waits for it, asynchronously, when it is behind). The permit stays
//!   with the download (which gives it back while it waits to retry, when
//!   the thread may still unpack what has arrived) and is handed to the
//!   thread with the verdict once the download is verified, for the rest of
//!   the work (checks, marker, publication, or the fallback extraction from
//!   the file). If the download fails, is aborted or its future is dropped,
//!   the channel and the verdict close, the thread's read ends, and it
//!   removes its staging directory and only then drops the lock. The one
//!   thing a download writes into `pkgs/` (the rename of the verified
//!   archive) happens inside the filling task's poll before the verdict is
//!   sent, so never after the thread has let the lock go; a partial file
//!   deleted a moment after the lock is released is in this process's own
//!   temp directory under a name nobody else uses. A failed download waits
//!   for the thread before its error is returned, so an error never leaves a
//!   staging directory behind.
//!
//! [`PackageCache::get_all`] runs every task to its end: when one package
//! fails, the others stop claiming, waiting and downloading (an abort
//! signal: a stream extraction then ends as after a failed download),
//! extractions already running finish, and only then is the first error
//! returned.
//!
//! The shared lock is held by the returned [`CacheEntry`] until it is dropped, so
//! linking from an entry is never disturbed: removing an entry (clean, repair)
//! takes the exclusive lock with a try-lock and skips entries in use.
//!
//! **Waiting.** A process waiting more than [`pkgr_fs::lock::WAIT_NOTICE_AFTER`] for a
//! lock tells the user whom it waits for ([`Reporter::waiting`]). No wait is
//! unbounded: after the lock timeout ([`pkgr_fs::lock::default_timeout`]: 5 minutes, or
//! `PKGR_LOCK_TIMEOUT` seconds; [`PackageCache::with_lock_timeout`]) it fails
//! with [`pkgr_fs::LockError::Timeout`], naming the holder's pid. A thread left blocked
//! in a given-up wait holds nothing; when it gets the lock it drops it at once.
//!
//! Repodata files follow the same pattern with an exclusive lock on
//! `repodata/<hash>.lock` ([`PackageCache::lock_repodata_file`], which
//! `pkgr-repodata` takes) around "is the cached copy fresh? else download
//! beside it, check it is whole JSON, and rename into place"; readers read the
//! renamed file without a lock (a rename never changes a file someone has
//! open). A body that is cut short or not JSON is never stored (so never
//! revalidated with the server's ETag); a cached copy that fails to parse
//! later is discarded (`pkgr_repodata`'s `discard_repodata`) and fetched anew.
//!
//! **Lock order** (global, rules out deadlock): prefix lock → repodata locks →
//! entry locks. A process holds the shared locks of the entries it has obtained
//! while it fetches the others (it links from all of them at the end). That
//! cannot form a cycle of waits between entries, because:
//! - a shared lock is held for long only on a *complete* entry, and a complete
//!   entry cannot become incomplete while anyone holds its shared lock (removal
//!   and repair use try-lock);
//! - a process that wants an entry's exclusive lock (to fill it) does not block
//!   on it: it tries, waits for the *shared* lock (which only a filler, who
//!   waits for no lock, can hold back), and stops as soon as the entry is
//!   usable, so it never waits behind the readers of an entry someone else has
//!   just filled;
//! - an exclusive holder (a filler) waits for no lock, only for the network.
//!
//! For installs this order is kept by types, in `pkgr_install`: linking
//! needs its `LockedPrefix` guard (which only its lock functions make), the
//! entry locks are the `CacheEntry`s its `Installer::install` fetches after
//! that and releases before it returns, and its solve releases the repodata
//! locks before it returns.
//!
//! The one wait behind readers is repairing a *damaged* entry others still
//! read; two processes that each read an entry the other needs repaired would
//! wait for each other, so that wait polls a try-lock and ends at the lock
//! timeout with an error (it needs two entries damaged during the two runs).
//!
//! A task waiting for a lock holds no `--jobs` permit (see
//! [`PackageCache::with_jobs`]): a permit is held only around a non-blocking
//! try-lock and the download and extraction that follow it, and given back
//! before waiting on anything else. A download waiting to retry (backoff,
//! `Retry-After`) gives its permit back too and takes one again before the
//! next attempt (`pkgr_fetch::Slot`); the extraction gets it back from the
//! download, still before the exclusive lock is released.
//!
//! **Crash safety.** Everything is written under a temp name and renamed into
//! place only when complete and verified. A process killed at any step leaves
//! only temp files in its `tmp/proc-*` directory (or an entry it was setting
//! aside, in `pkgs/.old-*`) and never an entry that looks complete but is
//! not. Opening the cache sweeps the temp directories whose lock is free
//! (their process is gone), and so does `clean`, which also removes what is
//! in `pkgs/.old-*`; never the temp directories of a live process.
//!
//! **Durability: what survives is a process's death, not the machine's.** The
//! downloaded archive and the marker are fsynced; the extracted files and the
//! `pkgs/` directory are not (an fsync per file would cost more than the
//! extraction). After a power loss or kernel crash the marker may survive while
//! files it vouches for are empty or missing; such an entry is caught by the
//! size check of step 1 (an empty file whose recorded size is not zero, a
//! missing path) and repaired, and `pkgr cache verify` checks every byte.
//!
//! **Published files are read-only.** An entry's files are 0444 (0555 when
//! executable; no setuid, setgid or sticky bit), and so are its marker, its
//! archive in `pkgs/` and the kept `.pyc` files; only directories keep their
//! owner's write bit (to remove the entry). Environments hardlink these
//! files: a program writing into an environment's file would otherwise
//! change the cache, and every environment made from it. The linker gives
//! its *copies* (`--copy`, placeholders replaced, `no_link` files) their
//! owner's write bit back ([`archive::PUBLISHED_FILE_MASK`]). What an
//! archive may unpack to is bounded by the archive's real bytes, never by a
//! size a channel claims, and its metadata files by their size limits
//! ([`archive`]).
//!
//! **A read-only cache** (on a read-only filesystem: [`PackageCache::open`])
//! takes no locks and writes nothing: nothing can change it, so, like a
//! read-only layer's, its complete and intact entries are used without a
//! lock, and whatever would need a write is [`CacheError::ReadOnly`].
//!
//! **Removal** (`clean --all`, `verify --repair`) takes an entry's exclusive
//! lock with a try-lock, so entries in use are skipped and reported; `verify
//! --repair` checks the entry again under that lock (another process may have
//! repaired it since), and sets the entry aside in one rename before it
//! deletes its files.

pub mod archive;
pub mod compiled;
pub mod filesystem;
mod maintenance;
pub mod repodata;
mod repodata_access;
mod session;
mod streaming;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use pkgr_fetch::{Expected, FetchError, Fetcher};
use pkgr_fs::dir::Dir;
use pkgr_fs::lock::{self, FileLock, LockError, LockMode};
use rattler_conda_types::package::PathsJson;
use rattler_conda_types::RepoDataRecord;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

pub use archive::{ArchiveError, ArchiveFormat};
pub use maintenance::{CleanReport, CorruptEntry, VerifyReport};
pub use repodata::check_repodata_file;
pub use repodata_access::{background_task_error, error_chain_text, SessionGuard};
pub use session::SweepReport;
pub use streaming::{streaming_counts, StreamingCounts};

/// Name of the completion marker inside an extracted entry.
pub const ENTRY_MARKER: &str = ".pkgr-entry.json";

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

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CacheError {
    let context = context.into();
    move |source| CacheError::Io { context, source }
}

/// Things the cache tells its user about while it works. All methods have
/// empty defaults.
pub trait Reporter: Send + Sync {
    /// Waiting for a lock held by another process (or task).
    fn waiting(&self, _what: &str, _holder_pid: Option<u32>) {}
    /// A download started; `size` if known.
    fn download_started(&self, _what: &str, _size: Option<u64>) {}
    /// Bytes of a download arrived.
    fn download_progress(&self, _what: &str, _bytes: u64) {}
    /// A download finished.
    fn download_finished(&self, _what: &str, _size: u64) {}
    /// A package was extracted into the cache.
    fn extracted(&self, _what: &str) {}
    /// A package was already complete in the cache.
    fn cached(&self, _what: &str) {}
    /// A download stopped without a result (failed, or cancelled because
    /// another package failed).
    fn download_failed(&self, _what: &str) {}
    /// A complete entry was found damaged (`problem`) and is fetched again.
    fn repairing(&self, _what: &str, _problem: &str) {}
}

/// How cached repodata is used ([`PackageCache::with_repodata_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepodataPolicy {
    /// Cached repodata is used without asking the server for the longer of
    /// the server's `Cache-Control: max-age` and this.
    pub ttl: Duration,
    /// Revalidate every cached copy now, however fresh (`--refresh`).
    pub refresh: bool,
    /// Never use the network: cached repodata however old, cached packages
    /// only; anything missing is a clear error (`--offline`).
    pub offline: bool,
}

impl Default for RepodataPolicy {
    /// 30 minutes, no refresh, online.
    fn default() -> Self {
        Self {
            ttl: DEFAULT_REPODATA_TTL,
            refresh: false,
            offline: false,
        }
    }
}

/// How long cached repodata is used without asking the server, at least.
pub const DEFAULT_REPODATA_TTL: Duration = Duration::from_secs(30 * 60);

/// Set when one task of a [`PackageCache::get_all`] fails: the other tasks
/// stop claiming, waiting and downloading (extractions that already run
/// finish under their own locks).
#[derive(Debug, Default)]
struct Abort {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Abort {
    fn trigger(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            // Registered before the check, so a trigger in between wakes it.
            let notified = self.notify.notified();
            if self.set.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Runs `work` unless (or until) the abort is triggered; then the work is
    /// dropped and the result is [`CacheError::Cancelled`]. Only for work that
    /// is safe to drop: waits and downloads, never extraction.
    async fn unless_set<T>(
        &self,
        work: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        if self.set.load(Ordering::SeqCst) {
            return Err(CacheError::Cancelled);
        }
        tokio::select! {
            biased;
            () = self.wait() => Err(CacheError::Cancelled),
            result = work => result,
        }
    }
}

/// A reporter that says nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl Reporter for Silent {}

/// What the completion marker of an entry records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryMarker {
    /// sha256 of the archive the entry was extracted from.
    pub sha256: String,
    /// md5 of that archive.
    pub md5: String,
    /// Its size.
    pub size: u64,
    /// Where it was downloaded from (redacted).
    pub url: String,
    /// The archive's file name.
    pub file_name: String,
    /// `softlink` paths of paths.json that the package holds as regular
    /// files, with their sizes (see [`validate::check_files`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links_as_files: BTreeMap<String, u64>,
}

/// A complete, extracted package in the cache. Holds the entry's shared lock
/// until dropped, so nothing removes the entry while it is used.
#[derive(Debug)]
pub struct CacheEntry {
    key: String,
    dir: PathBuf,
    archive: PathBuf,
    downloaded: Option<u64>,
    symlinks: Arc<BTreeSet<PathBuf>>,
    paths: Arc<PathsJson>,
    /// `None` for an entry of a read-only layer: it never changes, so it
    /// needs no lock (see [`PackageCache::with_read_only_layers`]).
    _lock: Option<FileLock>,
}

impl CacheEntry {
    /// The entry's key (directory name below `pkgs/`).
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The extracted package directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The verified archive.
    pub fn archive(&self) -> &Path {
        &self.archive
    }
    /// The package's paths (as in its paths.json) that are symlinks in the
    /// entry, as found by the check made when it was handed out (which saw
    /// every path there, with its size).
    pub fn symlinks(&self) -> &Arc<BTreeSet<PathBuf>> {
        &self.symlinks
    }
    /// The package's `info/paths.json` (or legacy `info/files`), as read by
    /// the check made when the entry was handed out.
    pub fn paths(&self) -> &Arc<PathsJson> {
        &self.paths
    }
    /// Bytes this process downloaded to fill the entry (`None` if it was cached).
    pub fn downloaded_bytes(&self) -> Option<u64> {
        self.downloaded
    }
    /// The entry's completion marker: the verified archive's sha256, md5 and
    /// size (for records that did not know them, such as an `@EXPLICIT`
    /// line with only an md5).
    pub fn marker(&self) -> Result<EntryMarker, CacheError> {
        let path = self.dir.join(ENTRY_MARKER);
        let text = fs_err::read_to_string(&path).map_err(|source| CacheError::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| CacheError::Io {
            context: format!("reading {}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }
}

/// The process start time, to tell "another process just fetched this" apart
/// from "this is an old copy".
fn process_start() -> SystemTime {
    static START: OnceLock<SystemTime> = OnceLock::new();
    *START.get_or_init(SystemTime::now)
}

/// The package cache. Cheap to clone; clones share the fetcher and the jobs
/// semaphore.
#[derive(Debug, Clone)]
pub struct PackageCache {
    root: PathBuf,
    fetcher: Fetcher,
    jobs: Arc<Semaphore>,
    /// `None` for a cache on a read-only filesystem (see [`Self::open`]).
    session: Option<Arc<session::Session>>,
    /// The cache's directories, held open (`None` when read-only).
    dirs: Option<Arc<Dirs>>,
    lock_timeout: Duration,
    swept: SweepReport,
    repodata_policy: RepodataPolicy,
    read_only_layers: Vec<PathBuf>,
}

impl PackageCache {
    /// Opens (creating as needed) the cache at `root`. Creation is tolerant: any
    /// number of processes may do this at once on a root that does not exist.
    ///
    /// Opening sweeps the temp directories of processes that are gone (killed
    /// CI jobs leave partial downloads behind); a live process's are never
    /// touched (see [`session`]).
    ///
    /// **A cache on a read-only filesystem** (`statvfs` says so, or a
    /// directory cannot be made there: `EROFS`) opens read-only: nothing is
    /// created, swept or locked there, its complete, intact entries are used
    /// without a lock like a read-only layer's
    /// ([`Self::with_read_only_layers`]), its repodata as long as it is
    /// fresh (or `--offline`), and whatever would have to be written (a
    /// package or repodata it lacks, `clean`, a repair) is
    /// [`CacheError::ReadOnly`], which names the cache and what to
    /// configure. So commands that fetch nothing (`remove`, installing what
    /// the cache has) work when the only cache is read-only.
    ///
    /// **Trust.** A writable cache's root is resolved once (canonicalized)
    /// and must pass [`check_root_trust`]; its directories are opened once,
    /// never through a symlink, and held (see "Trust" in the crate docs).
    pub fn open(root: impl Into<PathBuf>, fetcher: Fetcher) -> Result<Self, CacheError> {
        process_start();
        let root = root.into();
        if filesystem::is_read_only(&root) {
            return Ok(Self::new(root, fetcher, None));
        }
        match Self::open_writable(&root) {
            Ok((swept, session, dirs)) => {
                let dirs = Arc::new(dirs);
                let session = session.keeping(dirs.clone());
                let mut cache = Self::new(
                    dirs.root.path().to_path_buf(),
                    fetcher,
                    Some(Arc::new(session)),
                );
                cache.swept = swept;
                cache.dirs = Some(dirs);
                Ok(cache)
            }
            Err(CacheError::NotWritable { source, .. })
                if source.kind() == std::io::ErrorKind::ReadOnlyFilesystem =>
            {
                Ok(Self::new(root, fetcher, None))
            }
            Err(e) => Err(e),
        }
    }

    fn new(root: PathBuf, fetcher: Fetcher, session: Option<Arc<session::Session>>) -> Self {
        Self {
            root,
            fetcher,
            jobs: Arc::new(Semaphore::new(default_jobs())),
            session,
            dirs: None,
            lock_timeout: lock::default_timeout(),
            swept: SweepReport::default(),
            repodata_policy: RepodataPolicy::default(),
            read_only_layers: Vec::new(),
        }
    }

    /// Makes the cache's directories (tolerantly), checks who may change
    /// them ([`check_root_trust`], no symlinks, nothing world-writable),
    /// checks its locks, sweeps dead processes' temp files and starts this
    /// process's session.
    fn open_writable(root: &Path) -> Result<(SweepReport, session::Session, Dirs), CacheError> {
        fs_err::create_dir_all(root).map_err(|source| CacheError::NotWritable {
            path: root.to_path_buf(),
            source,
        })?;
        // Resolved once: from here on the root is this handle.
        let root = fs_err::canonicalize(root).map_err(|source| CacheError::NotWritable {
            path: root.to_path_buf(),
            source,
        })?;
        let root_dir = Dir::open(&root).map_err(dir_error)?;
        check_root_trust(&root_dir)?;
        // In a group-shared cache another member may have just made one of
        // these directories and not yet given it the group's write bit (a
        // mkdir and its chmod are two steps): a refusal then is retried for
        // a moment, not reported.
        let shared = root_dir.owner().map_err(dir_error)?.mode & 0o020 != 0;
        let mut attempt = 0;
        let dirs = loop {
            match Dirs::open(&root_dir, shared) {
                Ok(dirs) => break dirs,
                Err(CacheError::NotWritable { source, .. })
                    if shared
                        && source.kind() == std::io::ErrorKind::PermissionDenied
                        && attempt < 200 =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        write_cachedir_tag(&dirs.root)?;
        check_lock_scope(&root)?;
        // Best effort: a sweep that fails (another user's files) must not stop us.
        let swept = session::sweep(&dirs.tmp).unwrap_or_default();
        let session = session::Session::start(&dirs.tmp)?;
        Ok((swept, session, dirs))
    }

    /// Whether the cache is on a read-only filesystem and only read (see
    /// [`Self::open`]).
    pub fn is_read_only(&self) -> bool {
        self.session.is_none()
    }

    /// The error for `action` in a read-only cache.
    fn read_only(&self, action: impl Into<String>) -> CacheError {
        CacheError::ReadOnly {
            path: self.root.clone(),
            action: action.into(),
        }
    }

    /// This process's session (its temp directory), which a read-only cache
    /// does not have: then the error for `action`.
    fn session(&self, action: impl Into<String>) -> Result<&Arc<session::Session>, CacheError> {
        self.session.as_ref().ok_or_else(|| self.read_only(action))
    }

    /// Read-only caches searched before this one (`pkgs_dirs` that cannot be
    /// written: a cache baked into a container image, a read-only mount): a
    /// complete entry there (its marker names the record's checksum, every
    /// file of its paths.json is there with its size) is used as it is,
    /// without a lock (nothing changes a read-only layer) and without
    /// writing anything there; whatever no layer has is filled in this
    /// (writable) cache as usual.
    #[must_use]
    pub fn with_read_only_layers(mut self, layers: Vec<PathBuf>) -> Self {
        self.read_only_layers = layers;
        self
    }

    /// How cached repodata is used: time to live, `--refresh`, `--offline`
    /// (which also forbids downloading packages).
    #[must_use]
    pub fn with_repodata_policy(mut self, policy: RepodataPolicy) -> Self {
        self.repodata_policy = policy;
        self
    }

    /// How long to wait for any one lock before failing with a message that
    /// names its holder (default: [`pkgr_fs::lock::default_timeout`]).
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Shares `jobs` as the bound on concurrent downloads and extractions (the
    /// same semaphore can bound linking too).
    #[must_use]
    pub fn with_jobs(mut self, jobs: Arc<Semaphore>) -> Self {
        self.jobs = jobs;
        self
    }

    /// What opening the cache swept: the temp directories of dead processes.
    pub fn swept(&self) -> &SweepReport {
        &self.swept
    }

    /// The jobs semaphore.
    pub fn jobs(&self) -> &Arc<Semaphore> {
        &self.jobs
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This process's directory for temp files (same filesystem as the
    /// entries; swept by `clean` once this process is gone). A read-only
    /// cache has none: then the cache's `tmp/`, where nothing can be written.
    pub fn tmp_dir(&self) -> PathBuf {
        self.session.as_ref().map_or_else(
            || self.root.join("tmp"),
            |session| session.dir().to_path_buf(),
        )
    }

    /// [`Self::tmp_dir`] reached through its held handle (see "Trust" in
    /// the crate docs): what this crate writes its temp files below.
    pub(crate) fn tmp_at(&self) -> PathBuf {
        self.session.as_ref().map_or_else(
            || self.root.join("tmp"),
            |session| session.anchored().to_path_buf(),
        )
    }

    /// The fetcher this cache downloads with.
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// The entry key of a record: `<name>-<version>-<build>-<hash12>`.
    pub fn entry_key(record: &RepoDataRecord) -> String {
        let p = &record.package_record;
        let digest = if let Some(sha) = &p.sha256 {
            hex::encode(sha)
        } else if let Some(md5) = &p.md5 {
            hex::encode(md5)
        } else {
            hex::encode(Sha256::digest(record.url.as_str().as_bytes()))
        };
        format!(
            "{}-{}-{}-{}",
            p.name.as_normalized(),
            p.version,
            p.build,
            &digest[..12]
        )
    }

    pub(crate) fn lock_path(&self, key: &str) -> PathBuf {
        self.root
            .join("pkgs")
            .join(".locks")
            .join(format!("{key}.lock"))
    }

    /// The held directories of a writable cache; the error for `action`
    /// in a read-only one.
    pub(crate) fn dirs(&self, action: impl Into<String>) -> Result<&Arc<Dirs>, CacheError> {
        self.dirs.as_ref().ok_or_else(|| self.read_only(action))
    }

    /// Tries the lock of the entry `key` (in the held `pkgs/.locks`).
    pub(crate) fn try_lock_entry(
        &self,
        key: &str,
        mode: LockMode,
    ) -> Result<Option<FileLock>, CacheError> {
        let dirs = self.dirs(format!("lock {key}"))?;
        Ok(FileLock::try_acquire_in(
            &dirs.locks,
            &format!("{key}.lock"),
            mode,
        )?)
    }

    /// `pkgs/` as path-based code should reach it: through the held handle
    /// ([`pkgr_fs::dir::Dir::anchored`]) in a writable cache.
    pub(crate) fn pkgs_at(&self) -> PathBuf {
        self.dirs
            .as_ref()
            .map_or_else(|| self.root.join("pkgs"), |d| d.pkgs_at.clone())
    }

    /// Returns the complete entry for `record`, downloading and extracting it if
    /// no process has yet. See the crate docs for the protocol.
    pub async fn get_or_fetch(
        &self,
        record: &RepoDataRecord,
        reporter: &dyn Reporter,
    ) -> Result<CacheEntry, CacheError> {
        let mut entries = self.get_all(std::slice::from_ref(record), reporter).await?;
        entries.pop().ok_or_else(|| CacheError::Vanished {
            package: record.identifier.to_string(),
        })
    }

    /// Returns the complete entries of all `records` (in the same order), each
    /// holding its shared lock, fetching the missing ones concurrently.
    ///
    /// Per record see [`Self::get_one`]. Entries already obtained keep their
    /// shared locks while the others are fetched; that cannot deadlock (see the
    /// lock order in the crate docs).
    ///
    /// **When one record fails**, the others stop claiming, waiting and
    /// downloading, but every task is run to its end before this returns:
    /// an extraction already running finishes and publishes its (complete,
    /// checked) entry under its own lock, or fails and removes its temp
    /// directory. Nothing is dropped or deleted under work that still runs.
    /// The first real error is returned.
    pub async fn get_all(
        &self,
        records: &[RepoDataRecord],
        reporter: &dyn Reporter,
    ) -> Result<Vec<CacheEntry>, CacheError> {
        let entries: std::sync::Mutex<Vec<Option<CacheEntry>>> =
            std::sync::Mutex::new((0..records.len()).map(|_| None).collect());
        let result = self
            .get_all_as_ready(records, reporter, &|index, entry| {
                if let Ok(mut entries) = entries.lock() {
                    entries[index] = Some(entry);
                }
                true
            })
            .await;
        let entries = entries.into_inner().unwrap_or_else(|e| e.into_inner());
        result?;
        let entries: Vec<CacheEntry> = entries.into_iter().flatten().collect();
        if entries.len() == records.len() {
            Ok(entries)
        } else {
            Err(CacheError::Cancelled)
        }
    }

    /// As [`Self::get_all`], but hands each entry (with its shared lock) to
    /// `ready` as soon as it is there, with the index of its record, so that
    /// the caller can start using it while the others are fetched. The
    /// caller owns the entries from then on: it keeps them (their locks)
    /// until its work with them is done, also when this returns an error.
    /// `ready` returns `false` when the caller's work failed: then the other
    /// records stop as when one fails (`Err(CacheError::Cancelled)` if none
    /// did).
    pub async fn get_all_as_ready(
        &self,
        records: &[RepoDataRecord],
        reporter: &dyn Reporter,
        ready: &(dyn Fn(usize, CacheEntry) -> bool + Sync),
    ) -> Result<(), CacheError> {
        let abort = Abort::default();
        let results =
            futures::future::join_all(records.iter().enumerate().map(|(index, record)| {
                let abort = &abort;
                async move {
                    match self.get_one(record, reporter, abort).await {
                        Ok(entry) => {
                            // `false`: the caller's work failed; the
                            // others stop as after a failed fetch.
                            if !ready(index, entry) {
                                abort.trigger();
                            }
                            Ok(())
                        }
                        Err(err) => {
                            abort.trigger();
                            Err(err)
                        }
                    }
                }
            }))
            .await;
        let mut first_error = None;
        let mut cancelled = false;
        for result in results {
            match result {
                Ok(()) => {}
                Err(CacheError::Cancelled) => cancelled = true,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if cancelled => Err(CacheError::Cancelled),
            None => Ok(()),
        }
    }

    /// One record of [`Self::get_all`]: take the entry's shared lock; if the
    /// entry is complete and its files are intact (every path of paths.json
    /// there with its size: [`validate`]), hand it out with that lock.
    /// Otherwise claim and fill it ([`Self::claim_and_fill`]) and look again.
    /// A complete entry whose files were damaged since it was published is
    /// filled anew (said once through [`Reporter::repairing`]) instead of
    /// failing every later install.
    async fn get_one(
        &self,
        record: &RepoDataRecord,
        reporter: &dyn Reporter,
        abort: &Abort,
    ) -> Result<CacheEntry, CacheError> {
        // Before its key becomes a path (lock file, entry, archive).
        repodata::check_record(record).map_err(|problem| CacheError::UnsafeRecord {
            package: record.identifier.to_string().escape_debug().to_string(),
            problem,
        })?;
        let key = Self::entry_key(record);
        let display = record.identifier.to_string();
        if let Some(entry) = self.entry_in_read_only_layers(&key, record).await? {
            reporter.cached(&display);
            return Ok(entry);
        }
        if self.is_read_only() {
            return Err(self.read_only(format!("fetch {display} into it")));
        }
        let dir = self.root.join("pkgs").join(&key);
        let mut downloaded = 0;
        let mut damage: Option<String> = None;
        let mut refilled_after_damage = false;
        for _round in 0..20 {
            let shared = self
                .wait_for_lock(&key, LockMode::Shared, &display, reporter, abort)
                .await?;
            if let Some(marker) = self.complete_marker(&key, record) {
                match self.check_entry_files(&dir, marker).await? {
                    Ok(found) => {
                        tracing::debug!(entry = %key, "complete entry, shared lock held");
                        if downloaded == 0 {
                            reporter.cached(&display);
                        }
                        return Ok(CacheEntry {
                            archive: self.archive_path(&key, record),
                            dir,
                            key,
                            downloaded: (downloaded > 0).then_some(downloaded),
                            symlinks: Arc::new(found.symlinks),
                            paths: Arc::new(found.paths),
                            _lock: Some(shared),
                        });
                    }
                    Err(problem) => {
                        if refilled_after_damage {
                            return Err(CacheError::Damaged {
                                package: display,
                                dir,
                                problem,
                            });
                        }
                        reporter.repairing(&display, &problem);
                        damage = Some(problem);
                    }
                }
            }
            drop(shared);
            tracing::debug!(entry = %key, "not complete: claiming it");
            let filled = self
                .claim_and_fill(record, &key, reporter, abort, damage.as_deref())
                .await?;
            if let Some(bytes) = filled {
                downloaded += bytes;
                refilled_after_damage = damage.is_some();
            }
        }
        Err(CacheError::Vanished { package: display })
    }

    /// Checks a complete entry's files against its paths.json (sizes only),
    /// off the async runtime. The outer error is a failed task; the inner one
    /// says what is damaged.
    async fn check_entry_files(
        &self,
        dir: &Path,
        marker: EntryMarker,
    ) -> Result<Result<validate::Found, String>, CacheError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            validate::check_entry(&dir, validate::Depth::Sizes, &marker.links_as_files)
        })
        .await
        .map_err(join_error)
    }

    /// Claims the entry of `record` and fills it, unless it is (or becomes)
    /// usable meanwhile: complete, and with `damage` also intact. Holds no
    /// lock when it returns; `Some(bytes downloaded)` if this call filled it.
    ///
    /// A jobs permit is taken first (waiting for one holds nothing), then the
    /// exclusive lock is only ever *tried*: a process claims an entry only
    /// when it can start working on it at once, and never blocks on an
    /// exclusive lock. If someone else holds the lock, the permit goes back
    /// and the task waits for the shared lock, which the kernel grants as soon
    /// as the filler is done (no polling), then looks again. Only a lost race
    /// (the lock was free again by the time we looked) or a damaged entry that
    /// other processes still read makes it retry after a pause, within the
    /// lock timeout.
    async fn claim_and_fill(
        &self,
        record: &RepoDataRecord,
        key: &str,
        reporter: &dyn Reporter,
        abort: &Abort,
        damage: Option<&str>,
    ) -> Result<Option<u64>, CacheError> {
        let damaged = damage.is_some();
        let display = record.identifier.to_string();
        let dir = self.root.join("pkgs").join(key);
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let permit = abort
                .unless_set(async {
                    self.jobs.clone().acquire_owned().await.map_err(|e| {
                        io_error("the jobs semaphore was closed")(std::io::Error::other(e))
                    })
                })
                .await?;
            if let Some(exclusive) = self.try_lock_entry(key, LockMode::Exclusive)? {
                // Nobody else fills or reads the entry now: decide again.
                if let Some(marker) = self.complete_marker(key, record) {
                    if !damaged || self.check_entry_files(&dir, marker).await?.is_ok() {
                        return Ok(None);
                    }
                }
                let bytes = self
                    .fill(key, record, reporter, (permit, exclusive), abort, damage)
                    .await?;
                return Ok(Some(bytes));
            }
            drop(permit);
            let shared = self
                .wait_for_lock(key, LockMode::Shared, &display, reporter, abort)
                .await?;
            if let Some(marker) = self.complete_marker(key, record) {
                if !damaged || self.check_entry_files(&dir, marker).await?.is_ok() {
                    return Ok(None);
                }
            }
            drop(shared);
            if started.elapsed() > self.lock_timeout {
                return Err(LockError::Timeout {
                    what: format!("{display} (to repair it: other processes are using it)"),
                    path: self.lock_path(key),
                    holder: lock::holder(
                        &self
                            .dirs(&display)?
                            .locks
                            .anchored()
                            .join(format!("{key}.lock")),
                        LockMode::Exclusive,
                    ),
                    waited: self.lock_timeout,
                }
                .into());
            }
            abort
                .unless_set(async {
                    tokio::time::sleep(pause).await;
                    Ok(())
                })
                .await?;
            pause = (pause * 2).min(Duration::from_millis(if damaged { 500 } else { 50 }));
        }
    }

    /// Waits for an entry lock within the lock timeout, giving up at once if
    /// another task of the same request failed.
    async fn wait_for_lock(
        &self,
        key: &str,
        mode: LockMode,
        display: &str,
        reporter: &dyn Reporter,
        abort: &Abort,
    ) -> Result<FileLock, CacheError> {
        let started = std::time::Instant::now();
        let locks = &self.dirs(format!("lock {display}"))?.locks;
        let name = format!("{key}.lock");
        let lock = abort
            .unless_set(async {
                Ok(
                    lock::acquire_in(locks, &name, mode, display, self.lock_timeout, |pid| {
                        reporter.waiting(display, pid);
                    })
                    .await?,
                )
            })
            .await?;
        log_wait(display, started);
        Ok(lock)
    }

    fn archive_path(&self, key: &str, record: &RepoDataRecord) -> PathBuf {
        let format = ArchiveFormat::from_file_name(&record.identifier.to_string())
            .unwrap_or(ArchiveFormat::TarBz2);
        self.root
            .join("pkgs")
            .join(format!("{key}{}", format.extension()))
    }

    /// The complete, intact entry of `record` in the first read-only layer
    /// that has one (see [`Self::with_read_only_layers`]; a read-only cache
    /// is its own last layer), used without a lock. A layer's damaged entry
    /// is passed over (nothing may repair a read-only layer): the writable
    /// cache fills its own.
    async fn entry_in_read_only_layers(
        &self,
        key: &str,
        record: &RepoDataRecord,
    ) -> Result<Option<CacheEntry>, CacheError> {
        let itself = self.is_read_only().then_some(&self.root);
        for layer in self.read_only_layers.iter().chain(itself) {
            let dir = layer.join("pkgs").join(key);
            let Some(marker) = marker_matching(&dir, record) else {
                continue;
            };
            match self.check_entry_files(&dir, marker).await? {
                Ok(found) => {
                    let format = ArchiveFormat::from_file_name(&record.identifier.to_string())
                        .unwrap_or(ArchiveFormat::TarBz2);
                    return Ok(Some(CacheEntry {
                        archive: layer
                            .join("pkgs")
                            .join(format!("{key}{}", format.extension())),
                        dir,
                        key: key.to_owned(),
                        downloaded: None,
                        symlinks: Arc::new(found.symlinks),
                        paths: Arc::new(found.paths),
                        _lock: None,
                    }));
                }
                Err(problem) => {
                    tracing::warn!(layer = %layer.display(), entry = key, %problem, "a read-only cache layer's entry is damaged; not used");
                }
            }
        }
        Ok(None)
    }

    /// The marker of the entry for `record` if the entry is complete: the
    /// marker exists and names the expected digest.
    fn complete_marker(&self, key: &str, record: &RepoDataRecord) -> Option<EntryMarker> {
        marker_matching(&self.root.join("pkgs").join(key), record)
    }

    /// Fills an entry. The caller hands over the jobs permit and the entry's
    /// exclusive lock to do it with. Returns the bytes downloaded.
    ///
    /// Whatever is at `pkgs/<key>` (a `damage`d entry, an incomplete
    /// leftover) is moved aside first ([`set_aside`]): one who may not
    /// replace it (another user's entry in a cache that does not allow
    /// that) hears so at once ([`CacheError::NotYours`]), before anything
    /// is downloaded, and the entry is left as it was.
    ///
    /// The download runs in this future (dropping it, or an abort, deletes the
    /// partial file). The extraction runs on a blocking thread that **owns**
    /// the exclusive lock, the permit and this process's temp directory
    /// (through the session): if the caller stops waiting, the extraction
    /// still finishes, or fails and cleans up, under the lock and in a
    /// directory that exists. Nothing unlocked ever renames into `pkgs/`.
    ///
    /// A cold fill whose size the index gives extracts while it downloads:
    /// the extractor thread ([`streaming::Extraction`]) is started first and
    /// owns the lock from then on (see "Who owns what" in the crate docs).
    async fn fill(
        &self,
        key: &str,
        record: &RepoDataRecord,
        reporter: &dyn Reporter,
        (permit, exclusive): (tokio::sync::OwnedSemaphorePermit, FileLock),
        abort: &Abort,
        damage: Option<&str>,
    ) -> Result<u64, CacheError> {
        let display = record.identifier.to_string();
        // Written through the held `pkgs/` (a member who swaps it for a
        // symlink meanwhile changes nothing): see "Trust" in the crate docs.
        let dirs = self.dirs(format!("fetch {display} into it"))?;
        let archive = self.pkgs_at().join(
            self.archive_path(key, record)
                .file_name()
                .unwrap_or_default(),
        );
        let expected = expected_of(record);
        let tmp = self.tmp_at();
        let dest = self.root.join("pkgs").join(key);
        let dest_at = dirs.pkgs_at.join(key);
        let session = self.session(format!("fetch {display} into it"))?.clone();

        // Set aside on a thread that owns the lock (and gives it back), and
        // the session (which keeps the directories `dest_at` is anchored at
        // open).
        let (exclusive, aside) = {
            let dest = dest_at.clone();
            let compiled = dirs.pyc_at.join(key);
            let session = session.clone();
            tokio::task::spawn_blocking(move || {
                let _session = session;
                // Modules compiled from the old files would be stale (then
                // python compiles them again on import): removed if this
                // process may, which only saves that.
                let _ = set_aside(&compiled);
                let aside = set_aside(&dest);
                (exclusive, aside)
            })
            .await
            .map_err(join_error)?
        };
        aside.map_err(|source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                CacheError::NotYours {
                    package: display.clone(),
                    problem: damage.map_or_else(
                        || String::from("incomplete"),
                        |problem| format!("damaged ({problem})"),
                    ),
                    owner: owner_of(&dest),
                    dir: dest.clone(),
                    source,
                }
            } else {
                io_error(format!("moving {} aside", dest.display()))(source)
            }
        })?;

        // Reuse an archive left by a process that stopped before extracting.
        let existing = {
            let (archive, expected, session) = (archive.clone(), expected.clone(), session.clone());
            tokio::task::spawn_blocking(move || {
                let _session = session;
                verify_file(&archive, &expected)
            })
            .await
            .map_err(join_error)?
        };
        // The permit is lent to the download, which gives it back while it
        // waits to retry; we get it back for the extraction.
        let mut slot = pkgr_fetch::Slot::new(self.jobs.clone(), permit);
        let (archive_file, bytes, extraction) = match existing {
            Some(file) => (file, 0, Extracting::FromFile(exclusive)),
            None if self.repodata_policy.offline && record.url.scheme() != "file" => {
                return Err(CacheError::Offline { what: display });
            }
            None => {
                reporter.download_started(&display, expected.size);
                let progress = |n: u64| reporter.download_progress(&display, n);
                // Extracted while it downloads when the index gives its
                // size (what the stream must hold) and its name a format;
                // the extractor thread owns the lock from now on.
                let format = ArchiveFormat::from_file_name(&display);
                let (extraction, tap) = match (format, expected.size) {
                    (Some(format), Some(size)) => {
                        let job = streaming::Job {
                            format,
                            size,
                            archive: archive.clone(),
                            dest: dest_at.clone(),
                            display: display.clone(),
                        };
                        let (extraction, tap) =
                            streaming::Extraction::start(exclusive, session.clone(), job);
                        (Extracting::Streaming(extraction), Some(tap))
                    }
                    _ => (Extracting::FromFile(exclusive), None),
                };
                // The tap lives in this future: when the download ends
                // (or is dropped), the extractor sees the end of the body.
                let downloaded = abort
                    .unless_set(async {
                        let result = self
                            .fetcher
                            .download_in_slot_tapped(
                                &record.url,
                                &archive,
                                &tmp,
                                &expected,
                                &progress,
                                &mut slot,
                                tap.unwrap_or_else(pkgr_fetch::Tap::detached),
                            )
                            .await;
                        result.map_err(|source| CacheError::Fetch {
                            package: display.clone(),
                            source,
                        })
                    })
                    .await;
                let downloaded = match downloaded {
                    Ok(downloaded) => downloaded,
                    Err(e) => {
                        reporter.download_failed(&display);
                        // Nothing is published; the extractor removes its
                        // staging directory before the lock goes.
                        extraction.abandon().await;
                        return Err(e);
                    }
                };
                reporter.download_finished(&display, downloaded.size);
                let size = downloaded.size;
                (downloaded, size, extraction)
            }
        };

        let marker = EntryMarker {
            sha256: hex::encode(archive_file.sha256),
            md5: hex::encode(archive_file.md5),
            size: archive_file.size,
            url: pkgr_redact::redact_url(&record.url),
            file_name: display.clone(),
            links_as_files: BTreeMap::new(),
        };
        let Some(permit) = slot.into_permit() else {
            extraction.abandon().await;
            return Err(CacheError::Io {
                context: String::from("the jobs semaphore was closed"),
                source: std::io::Error::other("no permit after a retry"),
            });
        };
        match extraction {
            Extracting::Streaming(extraction) => extraction.publish(marker, permit).await?,
            Extracting::FromFile(exclusive) => {
                let display = display.clone();
                tokio::task::spawn_blocking(move || {
                    let result = extract_entry(&archive, session.dir(), &dest_at, marker, &display);
                    // Released in this order, only once the work above is over.
                    drop(exclusive);
                    drop(permit);
                    drop(session);
                    result
                })
                .await
                .map_err(join_error)??;
            }
        }
        reporter.extracted(&display);
        Ok(bytes)
    }
}

/// An error and its causes on one line.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn join_error(e: tokio::task::JoinError) -> CacheError {
    CacheError::Io {
        context: String::from("a background task failed"),
        source: std::io::Error::other(e),
    }
}

/// The default number of concurrent downloads/extractions.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .clamp(2, 16)
}

/// What the index promises about a record's archive.
pub fn expected_of(record: &RepoDataRecord) -> Expected {
    let p = &record.package_record;
    Expected {
        size: p.size,
        sha256: p.sha256.as_ref().and_then(|s| s.as_slice().try_into().ok()),
        md5: p.md5.as_ref().and_then(|s| s.as_slice().try_into().ok()),
    }
}

/// Who extracts a fill's archive, and so owns the entry's exclusive lock
/// meanwhile.
enum Extracting {
    /// A blocking task started once the archive is verified in place; the
    /// lock is held by the filling task until then.
    FromFile(FileLock),
    /// The extractor thread that reads the download as it arrives (and owns
    /// the lock from its start: [`streaming`]).
    Streaming(streaming::Extraction),
}

impl Extracting {
    /// The download failed: nothing is to be extracted. A streaming
    /// extractor removes its staging directory and releases the lock before
    /// this returns.
    async fn abandon(self) {
        match self {
            Self::FromFile(lock) => drop(lock),
            Self::Streaming(extraction) => extraction.abandon().await,
        }
    }
}

/// Hashes `path` if it exists; returns its digests if they match `expected`.
fn verify_file(path: &Path, expected: &Expected) -> Option<pkgr_fetch::Downloaded> {
    let digests = pkgr_fs::hash_file(path)
        .ok()
        .filter(|file| expected.matches(file))?;
    Some(pkgr_fetch::Downloaded {
        path: path.to_path_buf(),
        size: digests.size,
        sha256: digests.sha256,
        md5: digests.md5,
    })
}

/// Extracts `archive` into a staging directory in `tmp`, checks it complete
/// against its own paths.json, writes the marker last and renames the
/// directory to `dest`. The caller holds the entry's exclusive lock (and
/// has set aside what was at `dest`; whatever is there still, nobody uses:
/// it is set aside too).
fn extract_entry(
    archive: &Path,
    tmp: &Path,
    dest: &Path,
    marker: EntryMarker,
    display: &str,
) -> Result<(), CacheError> {
    let archive_error = |source| CacheError::Archive {
        package: display.to_owned(),
        source,
    };
    let staging = tempfile::Builder::new()
        .prefix("x-")
        .tempdir_in(tmp)
        .map_err(|source| CacheError::NotWritable {
            path: tmp.to_path_buf(),
            source,
        })?;
    archive::extract(archive, staging.path()).map_err(archive_error)?;
    publish_staging(staging, archive, dest, marker, display)
}

/// The tail of every fill, after `archive` was extracted into `staging`
/// (from its file, or while it downloaded: [`streaming`]): checks that
/// `info/index.json` is there and that the entry is complete against its
/// own paths.json, writes the marker last (fsynced) and renames the
/// directory to `dest`, setting aside whatever is there. On an error the
/// staging directory is removed. The caller holds the entry's exclusive
/// lock.
fn publish_staging(
    staging: tempfile::TempDir,
    archive: &Path,
    dest: &Path,
    mut marker: EntryMarker,
    display: &str,
) -> Result<(), CacheError> {
    let archive_error = |source| CacheError::Archive {
        package: display.to_owned(),
        source,
    };
    // `archive` and `dest` may be reached through a held handle
    // (`/proc/self/fd/...`); messages name their real paths.
    let archive = &pkgr_fs::dir::real_path(archive);
    if !staging.path().join("info").join("index.json").is_file() {
        return Err(archive_error(ArchiveError::MissingIndex {
            path: archive.to_path_buf(),
        }));
    }
    // Published only if complete: the check belongs to the publishing step,
    // not to a later reader.
    marker.links_as_files = validate::check_files(staging.path(), validate::Depth::Sizes)
        .map_err(|problem| {
            archive_error(ArchiveError::Incomplete {
                path: archive.to_path_buf(),
                problem,
            })
        })?
        .links_as_files;
    let marker_path = staging.path().join(ENTRY_MARKER);
    let text = serde_json::to_vec_pretty(&marker).unwrap_or_default();
    let mut file = fs_err::File::create(&marker_path).map_err(io_error("writing the marker"))?;
    std::io::Write::write_all(&mut file, &text)
        .map_err(io_error(format!("writing {}", marker_path.display())))?;
    // Read-only like the entry's files, and so is the archive it describes
    // (as far as this account may: it can be another member's download).
    archive::set_read_only(&file).map_err(io_error("writing the marker"))?;
    let _ = fs_err::File::open(archive).and_then(|verified| archive::set_read_only(&verified));
    file.sync_all()
        .map_err(io_error(format!("flushing {}", marker_path.display())))?;
    let shown = pkgr_fs::dir::real_path(dest);
    set_aside(dest).map_err(io_error(format!("moving {} aside", shown.display())))?;
    let staging = staging.keep();
    std::fs::rename(&staging, dest).map_err(io_error(format!(
        "publishing an extracted entry as {}",
        shown.display()
    )))?;
    Ok(())
}

/// Logs (debug, target `pkgr_cache::wait`) how long a lock took since
/// `started` when that was more than a moment: another process held it.
/// `pkgr-fleet` sums these up.
fn log_wait(what: &str, started: std::time::Instant) {
    let waited = started.elapsed();
    if waited >= Duration::from_millis(2) {
        tracing::debug!(
            target: "pkgr_cache::wait",
            what,
            waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            "waited for a lock"
        );
    }
}

/// The prefix of the names entries are set aside under in `pkgs/`.
pub(crate) const SET_ASIDE_PREFIX: &str = ".old-";

/// Moves whatever is at the entry directory `dest` (`pkgs/<key>`: a damaged
/// entry being repaired, an incomplete leftover; the caller holds the
/// entry's exclusive lock, so nobody uses it) out of the way in one atomic
/// rename, to a new `pkgs/.old-*` name (a crash leaves either it or nothing
/// at `dest`, never a mix), then deletes it as far as this account may.
///
/// The rename stays inside `pkgs/` because a directory renamed within one
/// directory needs write permission on that directory only, not on itself:
/// so a member of a group-shared cache can set aside an entry another
/// member published (a sticky `pkgs/` forbids it: `PermissionDenied`).
/// That member's files, which only they may delete, stay in `.old-*` until
/// they (or root) run `pkgr clean`. Nothing at `dest`: nothing to do.
///
/// Callers pass `dest` below a held directory ([`Dirs::pkgs_at`],
/// [`Dirs::pyc_at`]), so the rename and the removal happen in the
/// directory the cache opened, whatever was put at its path since; neither
/// follows a symlink at `dest` (`lstat`, `rename`, and `remove_dir_all`,
/// which unlinks a symlink it meets instead of descending).
pub(crate) fn set_aside(dest: &Path) -> std::io::Result<()> {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let aside = dest.with_file_name(format!(
        "{SET_ASIDE_PREFIX}{name}-{}-{}-{nanos:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::rename(dest, &aside)?;
    let _ = if meta.is_dir() {
        std::fs::remove_dir_all(&aside)
    } else {
        std::fs::remove_file(&aside)
    };
    Ok(())
}

/// Removes what [`set_aside`] left in `dir` (`pkgs/` or `pyc/`: another
/// account's files, or a crash between the rename and the deletion), as far
/// as this account may, through the held handle: a symlink there is
/// unlinked, never followed. Nobody uses a set-aside entry. Returns how
/// many went.
pub(crate) fn sweep_set_aside(dir: &Dir) -> usize {
    let Ok(entries) = dir.entries() else {
        return 0;
    };
    let mut removed = 0;
    for (name, _) in entries {
        if !name.to_string_lossy().starts_with(SET_ASIDE_PREFIX) {
            continue;
        }
        removed += usize::from(dir.remove_all(&name).is_ok());
    }
    removed
}

/// Who owns `path`: the user's name from `/etc/passwd`, else `uid N`.
fn owner_of(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(uid) = std::fs::symlink_metadata(path).map(|m| m.uid()) else {
            return String::from("another user");
        };
        user_name(uid)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        String::from("another user")
    }
}

/// The name of user `uid` from `/etc/passwd`, else `uid N`.
fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?;
            (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Whether the cache root is group-writable (shared by a group of users).
pub(crate) fn is_group_shared(root: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::metadata(root).is_ok_and(|m| m.permissions().mode() & 0o020 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = root;
        false
    }
}

/// The directories of a writable cache, opened once by
/// [`PackageCache::open`] with `O_NOFOLLOW` (see "Trust" in the crate docs)
/// and held for the cache's life, and the paths that reach `pkgs/`,
/// `repodata/` and `pyc/` through those handles
/// ([`pkgr_fs::dir::Dir::anchored`]) for the path-based code that writes
/// below them.
#[derive(Debug)]
pub(crate) struct Dirs {
    /// The (canonical) root.
    pub(crate) root: Dir,
    pub(crate) pkgs: Dir,
    pub(crate) locks: Arc<Dir>,
    pub(crate) repodata: Arc<Dir>,
    pub(crate) shards: Dir,
    pub(crate) tmp: Arc<Dir>,
    pub(crate) pyc: Dir,
    pub(crate) pkgs_at: PathBuf,
    pub(crate) repodata_at: PathBuf,
    pub(crate) pyc_at: PathBuf,
}

impl Dirs {
    /// Makes (tolerantly) and opens the cache's directories below `root`.
    ///
    /// A cache root that is group-writable (`chmod 2775`, a group of users
    /// sharing it, `shared`): the directories pkgr makes in it get the same
    /// group write and setgid bits, so that every member can add entries,
    /// lock files, repodata and temp dirs (the files themselves stay
    /// writable by their owner only: they are hardlinked into
    /// environments), and `tmp/` the sticky bit too, so that no member can
    /// rename or remove another's session directory. Only a directory of
    /// this account is chmod'ed: one another member made is theirs to
    /// change (and, made a moment ago, may not have its group bits yet:
    /// then this fails with `NotWritable`/`PermissionDenied`, which the
    /// caller retries).
    ///
    /// Each must be a directory, not a symlink, and not writable by every
    /// user ([`CacheError::Untrusted`]).
    fn open(root: &Dir, shared: bool) -> Result<Self, CacheError> {
        let make = |parent: &Dir, name: &str, extra: u32| -> Result<Dir, CacheError> {
            let dir = parent.create_dir(name, 0o777).map_err(dir_error)?;
            if shared {
                let _ = dir.add_mode_if_ours(0o2070 | extra);
            }
            let owner = dir.owner().map_err(dir_error)?;
            if owner.mode & 0o002 != 0 {
                return Err(world_writable(dir.path(), owner.mode));
            }
            if shared && owner.mode & 0o020 == 0 {
                return Err(CacheError::NotWritable {
                    path: dir.path().to_path_buf(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                });
            }
            Ok(dir)
        };
        let pkgs = make(root, "pkgs", 0)?;
        let locks = make(&pkgs, ".locks", 0)?;
        let repodata = make(root, "repodata", 0)?;
        let shards = make(&repodata, "shards", 0)?;
        let tmp = make(root, "tmp", 0o1000)?;
        let pyc = make(root, "pyc", 0)?;
        Ok(Self {
            root: root.try_clone().map_err(dir_error)?,
            pkgs_at: pkgs.anchored(),
            repodata_at: repodata.anchored(),
            pyc_at: pyc.anchored(),
            pkgs,
            locks: Arc::new(locks),
            repodata: Arc::new(repodata),
            shards,
            tmp: Arc::new(tmp),
            pyc,
        })
    }
}

/// A [`pkgr_fs::dir::DirError`] as a cache error: a directory this account
/// cannot make or open is [`CacheError::NotWritable`] (a read-only
/// filesystem among them, which [`PackageCache::open`] recognizes), a
/// symlink is itself.
fn dir_error(e: pkgr_fs::dir::DirError) -> CacheError {
    match e {
        pkgr_fs::dir::DirError::Io { path, source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            CacheError::NotWritable { path, source }
        }
        other => CacheError::Dir(other),
    }
}

fn world_writable(path: &Path, mode: u32) -> CacheError {
    CacheError::Untrusted {
        path: path.to_path_buf(),
        problem: format!(
            "it is writable by every user (mode {mode:o}), so anyone could replace what pkgr runs or make it delete files"
        ),
        fix: format!(
            "run `chmod o-w {}` (to share a cache, use a group: chgrp GROUP, chmod 2775), or use a cache of your own (--cache-dir or PKGR_CACHE_DIR)",
            path.display()
        ),
    }
}

/// Whom a cache root must belong to (like ssh's `StrictModes`), checked on
/// the open handle (`fstat`), so that nobody this account does not trust
/// can rename or replace what is in it:
/// - it is not writable by every user (`o+w`, sticky or not);
/// - it belongs to this account, or to root (who can change this
///   account's files anyway), or it is shared with a group this account
///   is in (group-writable, and its group is this process's effective or
///   a supplementary group).
///
/// The same holds for root (uid 0): a cache another account owns is used
/// by root only when it is shared with a group root is in, since root's
/// `clean` or `chmod` in a directory someone else controls is exactly the
/// attack this prevents.
pub(crate) fn check_root_trust(root: &Dir) -> Result<(), CacheError> {
    let owner = root.owner().map_err(dir_error)?;
    if owner.mode & 0o002 != 0 {
        return Err(world_writable(root.path(), owner.mode));
    }
    let me = pkgr_fs::dir::euid();
    if owner.uid == me || owner.uid == 0 {
        return Ok(());
    }
    if owner.mode & 0o020 != 0 && pkgr_fs::dir::in_group(owner.gid) {
        return Ok(());
    }
    let who = user_name(owner.uid);
    Err(CacheError::Untrusted {
        path: root.path().to_path_buf(),
        problem: if owner.mode & 0o020 != 0 {
            format!(
                "it belongs to {who} and is shared with group {}, which this account is not in",
                owner.gid
            )
        } else {
            format!("it belongs to {who}, who does not share it with a group of this account")
        },
        fix: String::from(
            "use a cache of your own (--cache-dir or PKGR_CACHE_DIR), or have its owner share it with a group you are in (chgrp GROUP; chmod 2775)",
        ),
    })
}

/// The marker of the entry in `dir` if it is complete and of `record`'s
/// archive (its sha256, else md5).
fn marker_matching(dir: &Path, record: &RepoDataRecord) -> Option<EntryMarker> {
    let text = fs_err::read_to_string(dir.join(ENTRY_MARKER)).ok()?;
    let marker = serde_json::from_str::<EntryMarker>(&text).ok()?;
    let p = &record.package_record;
    let matches = if let Some(sha) = &p.sha256 {
        marker.sha256 == hex::encode(sha)
    } else if let Some(md5) = &p.md5 {
        marker.md5 == hex::encode(md5)
    } else {
        true
    };
    matches.then_some(marker)
}

/// Refuses a cache on a filesystem whose locks only this host sees (see
/// [`filesystem`]), unless `PKGR_CACHE_LOCKS=local` says only this host
/// uses the cache.
fn check_lock_scope(root: &Path) -> Result<(), CacheError> {
    let Some((mount, filesystem::LockScope::ThisHostOnly(why))) = filesystem::lock_scope_of(root)
    else {
        return Ok(());
    };
    if std::env::var("PKGR_CACHE_LOCKS").is_ok_and(|v| v == "local") {
        tracing::info!(root = %root.display(), %why, "locks are local to this host (PKGR_CACHE_LOCKS=local)");
        return Ok(());
    }
    Err(CacheError::LocksNotShared {
        path: root.to_path_buf(),
        mount_point: mount.mount_point,
        why,
    })
}

/// Writes `bytes` to `path` through a temp file in `tmp` and a rename.
pub fn write_atomically(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut file =
        tempfile::NamedTempFile::new_in(tmp).map_err(|source| CacheError::NotWritable {
            path: tmp.to_path_buf(),
            source,
        })?;
    std::io::Write::write_all(&mut file, bytes)
        .map_err(io_error(format!("writing {}", file.path().display())))?;
    // Readable by every user of a shared cache (a temp file is 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = file
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    file.persist(path)
        .map_err(|e| io_error(format!("writing {}", path.display()))(e.error))?;
    Ok(())
}

/// Writes `CACHEDIR.TAG` once, in the held root (`O_EXCL` makes concurrent
/// openers harmless, `O_NOFOLLOW` a planted symlink too: it is left alone).
fn write_cachedir_tag(root: &Dir) -> Result<(), CacheError> {
    use rustix::fs::{Mode, OFlags};
    let path = root.path().join("CACHEDIR.TAG");
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(root, "CACHEDIR.TAG", flags, Mode::from_raw_mode(0o644)) {
        Ok(fd) => std::io::Write::write_all(
            &mut std::fs::File::from(fd),
            b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by pkgr.\n",
        )
        .map_err(|source| CacheError::NotWritable {
            path: path.clone(),
            source,
        }),
        Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(errno) => Err(CacheError::NotWritable {
            path,
            source: errno.into(),
        }),
    }
}
