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
//! <root>/repodata/<hash>.json (+ .info.json, .index, .lock)
//! <root>/repodata/<hash>.msgpack.zst (+ .info.json, .lock)  a CEP-16 shard index
//! <root>/repodata/shards/<sha256>.msgpack.zst one shard, named by its hash
//! <root>/tmp/proc-<pid>-<nonce>/            one process's temp files, guarded by
//! <root>/tmp/proc-<pid>-<nonce>.lock        a lock it holds while alive
//! <root>/pyc/<key>/cpython-XY/              .pyc files compiled once for the
//!                                           entry's noarch python modules
//! ```
//!
//! The directories and the names of entries, archives, locks and session
//! directories are [`Layout`]'s (the one place they are spelled out); the
//! names of the repodata files in `repodata/` are `pkgr-repodata`'s.
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
//! the permit (lent to the download: `pkgr_fetch::DownloadPermit`); dropping it deletes
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
//! next attempt (`pkgr_fetch::DownloadPermit`); the extraction gets it back from the
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
//! **Removal** (`clean`: [`CleanTargets`]; `verify --repair`) takes an
//! entry's exclusive lock with a try-lock, so entries in use are skipped and
//! reported; `verify --repair` checks the entry again under that lock
//! (another process may have repaired it since), and sets the entry aside in
//! one rename before it deletes its files. `clean` may remove an entry's
//! extracted directory and keep its archive (the next fill verifies and
//! extracts it, with no download), or remove the archive and keep the
//! extracted directory (used as it is; only a repair downloads it again).

pub mod archive;
pub mod compiled;
pub mod filesystem;
mod maintenance;
mod repodata_access;
pub mod repodata_rules;
mod session;
mod streaming;
mod validate;

mod entry;
mod error;
mod fill;
pub mod layout;
mod publish;
mod reporter;
mod set_aside;
mod trust;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use pkgr_fetch::Fetcher;
use pkgr_fs::dir::Dir;
use pkgr_fs::lock::{self, FileLock, LockMode};
use rattler_conda_types::RepoDataRecord;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use error::io_error;

pub use archive::{ArchiveError, ArchiveFormat};
pub use maintenance::{CleanReport, CleanTargets, CorruptEntry, Removed, VerifyReport};
pub use repodata_access::{background_task_error, error_chain_text, SessionGuard};
pub use repodata_rules::check_repodata_file;
pub use session::SweepReport;
pub use streaming::{streaming_counts, StreamingCounts};

pub use entry::{CacheEntry, EntryMarker, ENTRY_MARKER};
pub use error::CacheError;
pub use fill::expected_of;
pub use layout::Layout;
pub use reporter::{Reporter, Silent};
use trust::{check_lock_scope, check_root_trust, dir_error, write_cachedir_tag, Dirs};

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

    /// The error for `action` (e.g. `download <url> into it`) in a
    /// read-only cache: [`CacheError::ReadOnly`].
    pub fn read_only_error(&self, action: impl Into<String>) -> CacheError {
        CacheError::ReadOnly {
            path: self.root.clone(),
            action: action.into(),
        }
    }

    /// This process's session (its temp directory), which a read-only cache
    /// does not have: then the error for `action`.
    fn session(&self, action: impl Into<String>) -> Result<&Arc<session::Session>, CacheError> {
        self.session
            .as_ref()
            .ok_or_else(|| self.read_only_error(action))
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

    /// The names below the cache root ([`Layout`]).
    pub fn layout(&self) -> Layout<'_> {
        Layout::new(&self.root)
    }

    /// This process's directory for temp files (same filesystem as the
    /// entries; swept by `clean` once this process is gone). A read-only
    /// cache has none: then the cache's `tmp/`, where nothing can be written.
    pub fn tmp_dir(&self) -> PathBuf {
        self.session.as_ref().map_or_else(
            || self.layout().tmp(),
            |session| session.dir().to_path_buf(),
        )
    }

    /// [`Self::tmp_dir`] reached through its held handle (see "Trust" in
    /// the crate docs): where temp files are written before they are
    /// renamed into the cache (the same filesystem). A read-only cache has
    /// no session: then the cache's `tmp/`, where nothing can be written.
    pub fn tmp_at(&self) -> PathBuf {
        self.session.as_ref().map_or_else(
            || self.layout().tmp(),
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

    /// The held directories of a writable cache; the error for `action`
    /// in a read-only one.
    pub(crate) fn dirs(&self, action: impl Into<String>) -> Result<&Arc<Dirs>, CacheError> {
        self.dirs
            .as_ref()
            .ok_or_else(|| self.read_only_error(action))
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
            &Layout::lock_name(key),
            mode,
        )?)
    }

    /// `pkgs/` as path-based code should reach it: through the held handle
    /// ([`pkgr_fs::dir::Dir::anchored`]) in a writable cache.
    pub(crate) fn pkgs_at(&self) -> PathBuf {
        self.dirs
            .as_ref()
            .map_or_else(|| self.layout().pkgs(), |d| d.pkgs_at.clone())
    }
}

/// The default number of concurrent downloads/extractions.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .clamp(2, 16)
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
