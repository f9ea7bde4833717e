//! Getting entries: [`PackageCache::get_or_fetch`], [`PackageCache::get_all`]
//! and what they do for one record (take the shared lock; else claim the
//! entry and fill it: download, verify, extract, check, publish). The
//! protocol is written down in the crate docs ("The lock protocol").

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pkgr_fetch::Expected;
use pkgr_fs::lock::{self, FileLock, LockError, LockMode};
use rattler_conda_types::RepoDataRecord;

use crate::entry::marker_matching;
use crate::error::{io_error, join_error};
use crate::publish::extract_entry;
use crate::set_aside::set_aside;
use crate::trust::owner_of;
use crate::{streaming, validate};
use crate::{ArchiveFormat, CacheEntry, CacheError, EntryMarker, Layout, PackageCache, Reporter};

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

impl PackageCache {
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
    #[tracing::instrument(level = "debug", skip_all, fields(package = %record.identifier))]
    async fn get_one(
        &self,
        record: &RepoDataRecord,
        reporter: &dyn Reporter,
        abort: &Abort,
    ) -> Result<CacheEntry, CacheError> {
        // Before its key becomes a path (lock file, entry, archive).
        crate::repodata_rules::check_record(record).map_err(|problem| {
            CacheError::UnsafeRecord {
                package: record.identifier.to_string().escape_debug().to_string(),
                problem,
            }
        })?;
        let key = Self::entry_key(record);
        let display = record.identifier.to_string();
        if let Some(entry) = self.entry_in_read_only_layers(&key, record).await? {
            reporter.cached(&display);
            return Ok(entry);
        }
        if self.is_read_only() {
            return Err(self.read_only_error(format!("fetch {display} into it")));
        }
        let dir = self.layout().entry_dir(&key);
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
    #[tracing::instrument(level = "debug", skip_all, fields(entry = key, repair = damage.is_some()))]
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
        let dir = self.layout().entry_dir(key);
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
                    path: self.layout().entry_lock(key),
                    holder: lock::holder(
                        &self
                            .dirs(&display)?
                            .locks
                            .anchored()
                            .join(Layout::lock_name(key)),
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
        let name = Layout::lock_name(key);
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
        self.layout().archive(key, archive_format(record))
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
            let layout = Layout::new(layer);
            let dir = layout.entry_dir(key);
            let Some(marker) = marker_matching(&dir, record) else {
                continue;
            };
            match self.check_entry_files(&dir, marker).await? {
                Ok(found) => {
                    return Ok(Some(CacheEntry {
                        archive: layout.archive(key, archive_format(record)),
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
    #[tracing::instrument(level = "debug", skip_all, fields(entry = key))]
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
        let archive = self
            .pkgs_at()
            .join(Layout::archive_name(key, archive_format(record)));
        let expected = expected_of(record);
        let tmp = self.tmp_at();
        let dest = self.layout().entry_dir(key);
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
        let mut permit_guard = pkgr_fetch::DownloadPermit::new(self.jobs.clone(), permit);
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
                            .download_with_permit_tapped(
                                &record.url,
                                &archive,
                                &tmp,
                                &expected,
                                &progress,
                                &mut permit_guard,
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
        let Some(permit) = permit_guard.into_permit() else {
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
                // The extraction's events belong to this fill's span.
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || {
                    let _in_fill = span.enter();
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

/// The format of `record`'s archive, by its file name (`.tar.bz2` when the
/// name says neither).
fn archive_format(record: &RepoDataRecord) -> ArchiveFormat {
    ArchiveFormat::from_file_name(&record.identifier.to_string()).unwrap_or(ArchiveFormat::TarBz2)
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

/// Logs (debug, target `pkgr_cache::wait`) how long a lock took since
/// `started` when that was more than a moment: another process held it.
/// `pkgr-fleet` sums these up.
pub(crate) fn log_wait(what: &str, started: std::time::Instant) {
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
