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
//! ```
//!
//! `<key>` is `<name>-<version>-<build>-<hash>`, where `<hash>` is the first 12
//! hex digits of the record's sha256 (else md5, else the sha256 of its URL), so
//! two channels that ship different files under one file name never share an
//! entry.
//!
//! # The lock protocol (the one place it is written down)
//!
//! Every entry is guarded by an OS file lock on `pkgs/.locks/<key>.lock`
//! ([`lock::FileLock`], fs4). The kernel releases it when its holder exits or is
//! killed, so there are no stale locks and no pid files to clean up.
//!
//! To use an entry ([`PackageCache::get_all`], [`PackageCache::get_or_fetch`]):
//! 1. Take the entry's **shared** lock. If the entry is complete (its marker is
//!    there and names the expected sha256), keep the shared lock and hand the
//!    entry out: readers never wait for each other.
//! 2. Otherwise release it and claim the **exclusive** lock: if a jobs permit is
//!    free, take it and *try* the exclusive lock. If that fails, give the permit
//!    back, wait for the shared lock (granted as soon as nobody is filling the
//!    entry), and if the entry is complete now (another process filled it) go
//!    to 1; else retry after a short pause. Nobody ever blocks on an exclusive
//!    entry lock, and an entry is only claimed by a process that can start
//!    filling it at once.
//! 3. Holding the exclusive lock, if the entry is still incomplete, fill it:
//!    download the archive into this process's temp dir, verify size and sha256
//!    (md5 when that is all the index has), `rename` it to `pkgs/<key>.<ext>`;
//!    extract into a temp directory, write the marker last, `rename` the
//!    directory to `pkgs/<key>`. Release and go to 1.
//!
//! The shared lock is held by the returned [`CacheEntry`] until it is dropped, so
//! linking from an entry is never disturbed: removing an entry (clean, repair)
//! takes the exclusive lock with a try-lock and skips entries in use.
//!
//! A process waiting more than [`lock::WAIT_NOTICE_AFTER`] for a lock tells the
//! user whom it waits for ([`Reporter::waiting`]).
//!
//! Repodata files follow the same pattern with an exclusive lock on
//! `repodata/<hash>.lock` around "is the cached copy fresh? else download and
//! rename into place"; readers read the renamed file without a lock (a rename
//! never changes a file someone has open).
//!
//! **Lock order** (global, rules out deadlock): prefix lock → repodata locks →
//! entry locks. A process holds the shared locks of the entries it has obtained
//! while it fetches the others (it links from all of them at the end). That
//! cannot form a cycle of waits between entries, because:
//! - a shared lock is held for long only on a *complete* entry, and a complete
//!   entry cannot become incomplete while anyone holds its shared lock (removal
//!   uses try-lock);
//! - a process that wants an entry's exclusive lock (to fill it) does not block
//!   on it: it polls, and stops as soon as the entry is complete, so it never
//!   waits behind the readers of an entry someone else has just filled;
//! - an exclusive holder (a filler) waits for no lock, only for the network and
//!   a jobs permit.
//!
//! A task waiting for a lock holds no `--jobs` permit (see
//! [`PackageCache::with_jobs`]): a permit is held only around a non-blocking
//! try-lock and the download and extraction that follow it, and given back
//! before waiting on anything else.
//!
//! **Crash safety.** Everything is written under a temp name and renamed into
//! place only when complete and verified. A process killed at any step leaves
//! only temp files in its `tmp/proc-*` directory and never an entry that looks
//! complete but is not. `clean` sweeps the temp directories whose lock is free
//! (their process is gone) and never those of a live process.
//!
//! **Removal** (`clean --all`, `verify --repair`) takes an entry's exclusive
//! lock with a try-lock, so entries in use are skipped and reported, deletes
//! the marker first and only then the files.

pub mod archive;
pub mod lock;
mod maintenance;
mod session;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use pkgr_fetch::{Conditional, Expected, FetchError, Fetcher, HttpCacheInfo};
use rattler_conda_types::RepoDataRecord;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use url::Url;

pub use archive::{ArchiveError, ArchiveFormat};
pub use lock::{FileLock, LockError, LockMode};
pub use maintenance::{CleanReport, CorruptEntry, VerifyReport};

/// Name of the completion marker inside an extracted entry.
pub const ENTRY_MARKER: &str = ".pkgr-entry.json";

/// Everything that can go wrong in the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory cannot be created or written.
    #[error("the cache directory {} is not writable (set --cache-dir or PKGR_CACHE_DIR to a writable place)", path.display())]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
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
}

/// A complete, extracted package in the cache. Holds the entry's shared lock
/// until dropped, so nothing removes the entry while it is used.
#[derive(Debug)]
pub struct CacheEntry {
    key: String,
    dir: PathBuf,
    archive: PathBuf,
    downloaded: Option<u64>,
    _lock: FileLock,
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
    /// Bytes this process downloaded to fill the entry (`None` if it was cached).
    pub fn downloaded_bytes(&self) -> Option<u64> {
        self.downloaded
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
    session: Arc<session::Session>,
}

impl PackageCache {
    /// Opens (creating as needed) the cache at `root`. Creation is tolerant: any
    /// number of processes may do this at once on a root that does not exist.
    pub fn open(root: impl Into<PathBuf>, fetcher: Fetcher) -> Result<Self, CacheError> {
        process_start();
        let root = root.into();
        for dir in [
            root.clone(),
            root.join("pkgs").join(".locks"),
            root.join("repodata"),
            root.join("tmp"),
        ] {
            fs_err::create_dir_all(&dir).map_err(|source| CacheError::NotWritable {
                path: dir.clone(),
                source,
            })?;
        }
        write_cachedir_tag(&root)?;
        let session = Arc::new(session::Session::start(&root.join("tmp"))?);
        let jobs = Arc::new(Semaphore::new(default_jobs()));
        Ok(Self {
            root,
            fetcher,
            jobs,
            session,
        })
    }

    /// Shares `jobs` as the bound on concurrent downloads and extractions (the
    /// same semaphore can bound linking too).
    #[must_use]
    pub fn with_jobs(mut self, jobs: Arc<Semaphore>) -> Self {
        self.jobs = jobs;
        self
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
    /// entries; swept by `clean` once this process is gone).
    pub fn tmp_dir(&self) -> PathBuf {
        self.session.dir().to_path_buf()
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
    /// Per record: make the entry complete ([`Self::ensure_complete`]), then take
    /// its shared lock and check it is still complete (a `clean --all` may have
    /// removed it in between: then again). Entries already obtained keep their
    /// shared locks while the others are fetched; that cannot deadlock because a
    /// waiter for an exclusive lock gives up waiting as soon as the entry is
    /// complete (see [`Self::ensure_complete`]), and a shared lock is
    /// only ever held long on a complete entry.
    pub async fn get_all(
        &self,
        records: &[RepoDataRecord],
        reporter: &dyn Reporter,
    ) -> Result<Vec<CacheEntry>, CacheError> {
        futures::future::try_join_all(records.iter().map(|record| self.get_one(record, reporter)))
            .await
    }

    async fn get_one(
        &self,
        record: &RepoDataRecord,
        reporter: &dyn Reporter,
    ) -> Result<CacheEntry, CacheError> {
        let key = Self::entry_key(record);
        let display = record.identifier.to_string();
        let mut downloaded = 0;
        for _attempt in 0..50 {
            downloaded += self.ensure_complete(record, reporter).await?;
            let shared = lock::acquire(&self.lock_path(&key), LockMode::Shared, |pid| {
                reporter.waiting(&display, pid);
            })
            .await?;
            if self.is_complete(&key, record) {
                return Ok(CacheEntry {
                    dir: self.root.join("pkgs").join(&key),
                    archive: self.archive_path(&key, record),
                    key,
                    downloaded: (downloaded > 0).then_some(downloaded),
                    _lock: shared,
                });
            }
        }
        Err(CacheError::Vanished { package: display })
    }

    /// Makes the entry of `record` complete, holding no lock when it returns.
    /// Returns the bytes this call downloaded.
    ///
    /// The exclusive lock is only ever *tried* (never waited for), and only
    /// while holding a jobs permit that was free at once: a process claims an
    /// entry only when it can start working on it right away, so an entry is never locked by a process
    /// that is busy with other work while an idle process could fill it. Between
    /// tries the task holds nothing (no lock, no permit): it waits for the
    /// shared lock, which is granted as soon as no one is filling the entry, and
    /// checks whether someone else has completed it meanwhile.
    async fn ensure_complete(
        &self,
        record: &RepoDataRecord,
        reporter: &dyn Reporter,
    ) -> Result<u64, CacheError> {
        let key = Self::entry_key(record);
        let display = record.identifier.to_string();
        let lock_path = self.lock_path(&key);
        {
            let _shared = lock::acquire(&lock_path, LockMode::Shared, |pid| {
                reporter.waiting(&display, pid);
            })
            .await?;
            if self.is_complete(&key, record) {
                reporter.cached(&display);
                return Ok(0);
            }
        }
        let notified = std::sync::atomic::AtomicBool::new(false);
        let mut pause = Duration::from_millis(2);
        loop {
            // A free permit right now, or this round only waits (the permits
            // are busy with this process's other downloads and extractions).
            if let Ok(permit) = self.jobs.try_acquire() {
                if let Some(_exclusive) = FileLock::try_acquire(&lock_path, LockMode::Exclusive)? {
                    if self.is_complete(&key, record) {
                        reporter.cached(&display);
                        return Ok(0);
                    }
                    return self.fill(&key, record, reporter, permit).await;
                }
            }
            // Wait, holding nothing, until nobody fills the entry (a shared lock
            // waits only for an exclusive holder, and fillers wait for no lock),
            // then see whether it is complete now.
            let shared = lock::acquire(&lock_path, LockMode::Shared, |pid| {
                if !notified.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    reporter.waiting(&display, pid);
                }
            })
            .await?;
            if self.is_complete(&key, record) {
                reporter.cached(&display);
                return Ok(0);
            }
            drop(shared);
            // Unclaimed but no permit free, or lost a race for it: retry soon.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    fn archive_path(&self, key: &str, record: &RepoDataRecord) -> PathBuf {
        let format = ArchiveFormat::from_file_name(&record.identifier.to_string())
            .unwrap_or(ArchiveFormat::TarBz2);
        self.root
            .join("pkgs")
            .join(format!("{key}{}", format.extension()))
    }

    /// Whether the entry for `record` is complete: its marker exists and names
    /// the expected digest.
    fn is_complete(&self, key: &str, record: &RepoDataRecord) -> bool {
        let marker = self.root.join("pkgs").join(key).join(ENTRY_MARKER);
        let Ok(text) = fs_err::read_to_string(&marker) else {
            return false;
        };
        let Ok(marker) = serde_json::from_str::<EntryMarker>(&text) else {
            return false;
        };
        let p = &record.package_record;
        if let Some(sha) = &p.sha256 {
            marker.sha256 == hex::encode(sha)
        } else if let Some(md5) = &p.md5 {
            marker.md5 == hex::encode(md5)
        } else {
            true
        }
    }

    /// Fills an entry; the caller holds its exclusive lock and gives us the
    /// jobs permit to do it with. Returns the bytes downloaded.
    async fn fill(
        &self,
        key: &str,
        record: &RepoDataRecord,
        reporter: &dyn Reporter,
        permit: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<u64, CacheError> {
        let display = record.identifier.to_string();
        let archive = self.archive_path(key, record);
        let expected = expected_of(record);
        let tmp = self.tmp_dir();

        // Reuse an archive left by a process that was killed before extracting.
        let existing = {
            let (archive, expected) = (archive.clone(), expected.clone());
            tokio::task::spawn_blocking(move || verify_file(&archive, &expected))
                .await
                .map_err(join_error)?
        };
        let (archive_file, bytes) = match existing {
            Some(file) => (file, 0),
            None => {
                reporter.download_started(&display, expected.size);
                let progress = |n: u64| reporter.download_progress(&display, n);
                let downloaded = self
                    .fetcher
                    .download_with_progress(&record.url, &archive, &tmp, &expected, &progress)
                    .await
                    .map_err(|source| CacheError::Fetch {
                        package: display.clone(),
                        source,
                    })?;
                reporter.download_finished(&display, downloaded.size);
                let size = downloaded.size;
                (downloaded, size)
            }
        };

        let marker = EntryMarker {
            sha256: hex::encode(archive_file.sha256),
            md5: hex::encode(archive_file.md5),
            size: archive_file.size,
            url: pkgr_fetch::redact_url(&record.url),
            file_name: display.clone(),
        };
        let dest = self.root.join("pkgs").join(key);
        let (archive2, tmp2, display2) = (archive.clone(), tmp.clone(), display.clone());
        tokio::task::spawn_blocking(move || {
            extract_entry(&archive2, &tmp2, &dest, &marker, &display2)
        })
        .await
        .map_err(join_error)??;
        drop(permit);
        reporter.extracted(&display);
        Ok(bytes)
    }

    /// Returns the path of an up-to-date copy of `<subdir_url>/repodata.json`.
    ///
    /// `file://` channels are read in place. For http(s) the copy in
    /// `repodata/` is used when it is fresh (fetched by any process since this
    /// one started, or within the server's `Cache-Control: max-age`), else it is
    /// revalidated or downloaded under the file's exclusive lock. `Ok(None)` when
    /// the channel has no such subdir (404 / no file).
    pub async fn fetch_repodata(
        &self,
        subdir_url: &Url,
        reporter: &dyn Reporter,
    ) -> Result<Option<RepodataFile>, CacheError> {
        let url = join_url(subdir_url, "repodata.json");
        let redacted = pkgr_fetch::redact_url(&url);
        if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| CacheError::Io {
                context: format!("{redacted} is not a local path"),
                source: std::io::Error::other("bad file URL"),
            })?;
            return RepodataFile::open(path);
        }
        let hash = hex::encode(Sha256::digest(url.as_str().as_bytes()));
        let base = self.root.join("repodata").join(&hash[..16]);
        let json = base.with_extension("json");
        let info_path = base.with_extension("info.json");
        let lock_path = base.with_extension("lock");
        let _lock = lock::acquire(&lock_path, LockMode::Exclusive, |pid| {
            reporter.waiting(&redacted, pid);
        })
        .await?;
        let info: Option<RepodataInfo> = fs_err::read_to_string(&info_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(info) = &info {
            if json.is_file() && info.is_fresh() {
                return RepodataFile::open(json);
            }
        }
        let tmp = self.tmp_dir();
        let previous = info
            .as_ref()
            .filter(|_| json.is_file())
            .map(RepodataInfo::http_cache_info);
        reporter.download_started(&redacted, None);
        let result = {
            let _permit = self.jobs.acquire().await.map_err(|e| CacheError::Io {
                context: String::from("the jobs semaphore was closed"),
                source: std::io::Error::other(e),
            })?;
            self.fetcher
                .download_if_changed(&url, &json, &tmp, previous.as_ref())
                .await
        };
        let http = match result {
            Ok(Conditional::NotModified(http)) => http,
            Ok(Conditional::Downloaded(d, http)) => {
                reporter.download_finished(&redacted, d.size);
                http
            }
            Err(FetchError::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(CacheError::Fetch {
                    package: redacted,
                    source,
                });
            }
        };
        let info = RepodataInfo {
            url: redacted,
            etag: http.etag,
            last_modified: http.last_modified,
            cache_control: http.cache_control,
            fetched_at_unix: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        };
        write_atomically(
            &info_path,
            &tmp,
            &serde_json::to_vec_pretty(&info).unwrap_or_default(),
        )?;
        // Opened while we hold the lock: a `clean --all` that removes the file
        // later does not take it away from us.
        RepodataFile::open(json)
    }
}

/// An up-to-date repodata.json, opened while its lock was held (so it stays
/// readable even if it is replaced or removed afterwards).
#[derive(Debug)]
pub struct RepodataFile {
    /// Where it is.
    pub path: PathBuf,
    /// The open file.
    pub file: fs_err::File,
}

impl RepodataFile {
    fn open(path: PathBuf) -> Result<Option<Self>, CacheError> {
        match fs_err::File::open(&path) {
            Ok(file) => Ok(Some(Self { path, file })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Io {
                context: format!("opening {}", path.display()),
                source,
            }),
        }
    }
}

/// The `.info.json` beside a cached repodata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RepodataInfo {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    cache_control: Option<String>,
    fetched_at_unix: f64,
}

impl RepodataInfo {
    fn http_cache_info(&self) -> HttpCacheInfo {
        HttpCacheInfo {
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
            cache_control: self.cache_control.clone(),
        }
    }

    fn is_fresh(&self) -> bool {
        let fetched =
            SystemTime::UNIX_EPOCH + Duration::from_secs_f64(self.fetched_at_unix.max(0.0));
        if fetched >= process_start() {
            return true;
        }
        let max_age = self
            .cache_control
            .as_deref()
            .and_then(|cc| {
                cc.split(',')
                    .filter_map(|d| d.trim().strip_prefix("max-age="))
                    .find_map(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        SystemTime::now()
            .duration_since(fetched)
            .map(|age| age < Duration::from_secs(max_age))
            .unwrap_or(false)
    }
}

fn join_url(base: &Url, file: &str) -> Url {
    let mut url = base.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.join(file).unwrap_or(url)
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

/// Hashes `path` if it exists; returns its digests if they match `expected`.
fn verify_file(path: &Path, expected: &Expected) -> Option<pkgr_fetch::Downloaded> {
    pkgr_fetch::hash_file(path)
        .ok()
        .filter(|file| expected.matches(file))
}

/// Extracts `archive` into a temp dir, writes the marker last and renames the
/// directory to `dest` (replacing an incomplete leftover).
fn extract_entry(
    archive: &Path,
    tmp: &Path,
    dest: &Path,
    marker: &EntryMarker,
    display: &str,
) -> Result<(), CacheError> {
    let staging = tempfile::Builder::new()
        .prefix(&format!("x-{}-", std::process::id()))
        .tempdir_in(tmp)
        .map_err(|source| CacheError::NotWritable {
            path: tmp.to_path_buf(),
            source,
        })?;
    archive::extract(archive, staging.path()).map_err(|source| CacheError::Archive {
        package: display.to_owned(),
        source,
    })?;
    if !staging.path().join("info").join("index.json").is_file() {
        return Err(CacheError::Archive {
            package: display.to_owned(),
            source: ArchiveError::MissingIndex {
                path: archive.to_path_buf(),
            },
        });
    }
    let marker_path = staging.path().join(ENTRY_MARKER);
    let text = serde_json::to_vec_pretty(marker).unwrap_or_default();
    let mut file = fs_err::File::create(&marker_path).map_err(io_error("writing the marker"))?;
    std::io::Write::write_all(&mut file, &text)
        .map_err(io_error(format!("writing {}", marker_path.display())))?;
    file.sync_all()
        .map_err(io_error(format!("flushing {}", marker_path.display())))?;
    // We hold the exclusive lock: whatever is at `dest` is an incomplete
    // leftover (or an entry being repaired); nobody else can be using it.
    if dest.exists() {
        fs_err::remove_dir_all(dest).map_err(io_error("removing an incomplete entry"))?;
    }
    let staging = staging.keep();
    fs_err::rename(&staging, dest).map_err(io_error("publishing an extracted entry"))?;
    Ok(())
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
    file.persist(path)
        .map_err(|e| io_error(format!("writing {}", path.display()))(e.error))?;
    Ok(())
}

/// Writes `CACHEDIR.TAG` once; `create_new` makes concurrent openers harmless.
fn write_cachedir_tag(root: &Path) -> Result<(), CacheError> {
    let path = root.join("CACHEDIR.TAG");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut file) => std::io::Write::write_all(
            &mut file,
            b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by pkgr.\n",
        )
        .map_err(|source| CacheError::NotWritable {
            path: path.clone(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CacheError::NotWritable { path, source }),
    }
}
