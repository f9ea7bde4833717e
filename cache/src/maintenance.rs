//! `clean` and `verify`: removing and checking cache entries without ever
//! disturbing a process that uses them (see the lock protocol in the crate docs).
//!
//! Both take an entry's exclusive lock with a *try-lock* before removing it, so
//! an entry someone links from (shared lock) or fills (exclusive lock) is
//! skipped and reported as busy, never waited for and never deleted under them.
//! An entry is removed by setting it aside first (one rename to `pkgs/.old-*`,
//! [`crate::set_aside::set_aside`]), so a removal interrupted at any point leaves the
//! whole entry or none of it, never a partial entry that looks complete; and
//! in a group-shared cache a member can remove an entry another published.
//!
//! Everything is listed, renamed and removed through the directories the
//! cache holds open (see "Trust" in the crate docs): `pkgs/`, `pyc/`,
//! `repodata/` and `repodata/shards/` as they were when the cache was
//! opened, never what a member put at their paths since, and a symlink met
//! on the way is unlinked, never followed.

use std::path::PathBuf;

use pkgr_fs::hash_file;

use crate::error::io_error;
use crate::{
    session, validate, ArchiveFormat, CacheError, EntryMarker, Layout, PackageCache, ENTRY_MARKER,
};
use pkgr_fs::lock::{FileLock, LockMode};

/// What `clean` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanReport {
    /// Entries (extracted dir + archive) removed.
    pub removed: Vec<String>,
    /// Entries in use by another process, left alone.
    pub busy: Vec<String>,
    /// Cached repodata files removed.
    pub repodata_removed: usize,
    /// Temp directories of dead processes (and set-aside entries,
    /// `pkgs/.old-*`, and the byte-compiled modules of entries that are
    /// gone) removed.
    pub temp_removed: usize,
    /// Temp directories of live processes left alone.
    pub temp_live: usize,
    /// Archives of extracted entries removed (`clean --tarballs`).
    pub tarballs_removed: Vec<String>,
    /// Bytes those archives held.
    pub tarball_bytes: u64,
}

/// One corrupt entry found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptEntry {
    /// The entry key.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// Whether `--repair` removed it.
    pub removed: bool,
}

/// What `verify` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Complete entries checked.
    pub checked: usize,
    /// Corrupt ones.
    pub corrupt: Vec<CorruptEntry>,
    /// Entries being filled or repaired by another process, skipped.
    pub busy: Vec<String>,
}

impl PackageCache {
    /// The keys of every entry that has an extracted directory or an archive.
    fn entry_keys(&self) -> Result<Vec<String>, CacheError> {
        let mut keys = std::collections::BTreeSet::new();
        for entry in fs_err::read_dir(self.pkgs_at()).map_err(io_error("reading the cache"))? {
            let entry = entry.map_err(io_error("reading the cache"))?;
            let Some(name) = entry.file_name().to_str().map(ToOwned::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            keys.insert(Layout::key_of(&name).to_owned());
        }
        Ok(keys.into_iter().collect())
    }

    /// Removes an entry whose exclusive lock the caller holds: the directory
    /// (set aside in one rename, then deleted), then its archives.
    fn remove_entry_locked(&self, key: &str) -> Result<(), CacheError> {
        let dirs = self.dirs("remove an entry from it")?;
        let dir = dirs.pkgs_at.join(key);
        let compiled = dirs.pyc_at.join(key);
        // Best effort: stale ones would only make python compile again.
        let _ = crate::set_aside::set_aside(&compiled);
        crate::set_aside::set_aside(&dir).map_err(io_error(format!(
            "removing the entry {}",
            self.layout().entry_dir(key).display()
        )))?;
        for format in ArchiveFormat::ALL {
            let name = Layout::archive_name(key, format);
            dirs.pkgs.remove_file(&name).map_err(io_error(format!(
                "removing the archive {}",
                self.layout().archive(key, format).display()
            )))?;
        }
        Ok(())
    }

    /// Sweeps the temp files of dead processes; with `all`, also removes every
    /// entry and cached repodata file that no process is using.
    pub fn clean(&self, all: bool) -> Result<CleanReport, CacheError> {
        if self.is_read_only() {
            return Err(self.read_only("clean it"));
        }
        let dirs = self.dirs("clean it")?;
        let sweep = session::sweep(&dirs.tmp)?;
        let set_aside = crate::set_aside::sweep_set_aside(&dirs.pkgs)
            + crate::set_aside::sweep_set_aside(&dirs.pyc)
            + self.sweep_orphaned_compiled()?;
        let mut report = CleanReport {
            // What opening the cache swept a moment ago counts too.
            temp_removed: sweep.removed + self.swept().removed + set_aside,
            temp_live: sweep.live,
            ..CleanReport::default()
        };
        if !all {
            return Ok(report);
        }
        for key in self.entry_keys()? {
            match self.try_lock_entry(&key, LockMode::Exclusive)? {
                None => report.busy.push(key),
                Some(lock) => {
                    self.remove_entry_locked(&key)?;
                    drop(lock);
                    report.removed.push(key);
                }
            }
        }
        // Shards are immutable and read with no lock: a reader that loses
        // one to this finds it missing and downloads it again.
        // (Through the held `repodata/shards/`: only files there, a link
        // itself and never what it points to.)
        if let Ok(shards) = dirs.shards.entries() {
            for (shard, _) in shards {
                let _ = dirs.shards.remove_file(&shard);
            }
        }
        for (base, path) in self.cached_repodata()? {
            if let Some(lock) = self.try_lock_repodata(&base)? {
                // The info file goes first: without it the data is never used.
                let _ = fs_err::remove_file(&path);
                let _ = fs_err::remove_file(base.with_extension("json"));
                let _ = fs_err::remove_file(base.with_extension("index"));
                let _ = fs_err::remove_file(base.with_extension("msgpack.zst"));
                drop(lock);
                report.repodata_removed += 1;
            }
        }
        Ok(report)
    }

    /// Removes the byte-compiled modules kept for entries that are gone
    /// (`pyc/<key>` without `pkgs/<key>`: the entry was removed by an
    /// account that could not remove them), each under its entry's
    /// exclusive try-lock, so never while a process fills the entry or
    /// reads them. Returns how many went.
    fn sweep_orphaned_compiled(&self) -> Result<usize, CacheError> {
        let dirs = self.dirs("clean it")?;
        let complete = |key: &str| self.pkgs_at().join(key).join(ENTRY_MARKER).exists();
        let mut removed = 0;
        for (name, _) in dirs.pyc.entries()? {
            let Some(key) = name.to_str() else {
                continue;
            };
            if key.starts_with(Layout::SET_ASIDE_PREFIX) || complete(key) {
                continue;
            }
            let Ok(Some(lock)) = self.try_lock_entry(key, LockMode::Exclusive) else {
                continue;
            };
            if !complete(key) && crate::set_aside::set_aside(&dirs.pyc_at.join(key)).is_ok() {
                removed += 1;
            }
            drop(lock);
        }
        Ok(removed)
    }

    /// Tries the exclusive lock of the cached repodata `base`
    /// (`repodata/<hash>`), in the held `repodata/`.
    fn try_lock_repodata(&self, base: &std::path::Path) -> Result<Option<FileLock>, CacheError> {
        let dirs = self.dirs("lock its repodata")?;
        let name = base
            .file_name()
            .map(|n| Layout::lock_name(&n.to_string_lossy()))
            .unwrap_or_default();
        Ok(FileLock::try_acquire_in(
            &dirs.repodata,
            &name,
            LockMode::Exclusive,
        )?)
    }

    /// Removes the downloaded archive of every complete entry that no process
    /// is using (under its exclusive try-lock); the extracted entry stays and
    /// is used as before. Only the self-repair of a damaged entry needs the
    /// archive again, and then downloads it.
    #[expect(
        clippy::disallowed_methods,
        reason = "a path through the held pkgs/ handle; the message names its real path"
    )]
    pub fn clean_tarballs(&self, report: &mut CleanReport) -> Result<(), CacheError> {
        if self.is_read_only() {
            return Err(self.read_only("remove archives from it"));
        }
        for key in self.entry_keys()? {
            let dir = self.pkgs_at().join(&key);
            let archives: Vec<PathBuf> = ArchiveFormat::ALL
                .iter()
                .map(|format| self.pkgs_at().join(Layout::archive_name(&key, *format)))
                .filter(|p| p.is_file())
                .collect();
            if archives.is_empty() {
                continue;
            }
            match self.try_lock_entry(&key, LockMode::Exclusive)? {
                None => report.busy.push(key),
                Some(lock) => {
                    // Only beside a complete entry: an archive without one
                    // is what a fill extracts from next.
                    if dir.join(ENTRY_MARKER).is_file() {
                        for archive in &archives {
                            let size = fs_err::symlink_metadata(archive)
                                .map(|m| m.len())
                                .unwrap_or(0);
                            // A path through the held `pkgs/`; the
                            // archive itself is unlinked, never followed.
                            // (raw std::fs: the message names its real path.)
                            std::fs::remove_file(archive).map_err(io_error(format!(
                                "removing the archive {}",
                                pkgr_fs::dir::real_path(archive).display()
                            )))?;
                            report.tarball_bytes += size;
                        }
                        report.tarballs_removed.push(key);
                    }
                    drop(lock);
                }
            }
        }
        Ok(())
    }

    /// Checks every complete entry: its archive against the sha256 in its
    /// marker, and every file its paths.json lists (size and sha256); and
    /// every cached repodata.json (whole, valid JSON). With `repair`, corrupt
    /// entries and repodata are removed (under their exclusive lock, checked
    /// again under it: another process may have repaired the entry in between)
    /// so the next install fetches them again. A read-only cache is checked
    /// without locks (nothing changes it) and cannot be repaired.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, CacheError> {
        if repair && self.is_read_only() {
            return Err(self.read_only("repair it"));
        }
        let mut report = VerifyReport::default();
        for key in self.entry_keys()? {
            let shared = if self.is_read_only() {
                None
            } else {
                let Some(shared) = self.try_lock_entry(&key, LockMode::Shared)? else {
                    report.busy.push(key);
                    continue;
                };
                Some(shared)
            };
            let Some(problem) = self.entry_problem(&key) else {
                continue;
            };
            report.checked += 1;
            let Err(problem) = problem else { continue };
            drop(shared);
            let mut removed = false;
            if repair {
                match self.try_lock_entry(&key, LockMode::Exclusive)? {
                    Some(lock) => match self.entry_problem(&key) {
                        // Repaired (or removed) by someone else meanwhile.
                        None | Some(Ok(_)) => {}
                        Some(Err(_)) => {
                            self.remove_entry_locked(&key)?;
                            drop(lock);
                            removed = true;
                        }
                    },
                    None => report.busy.push(key.clone()),
                }
            }
            report.corrupt.push(CorruptEntry {
                key,
                problem,
                removed,
            });
        }
        self.verify_repodata(repair, &mut report)?;
        Ok(report)
    }

    /// What is wrong with a complete entry: `None` if it is not complete
    /// (nothing that looks complete, nothing to check), `Some(Ok(()))` if it
    /// is fine, else the problem. The caller holds a lock on it.
    fn entry_problem(&self, key: &str) -> Option<Result<(), String>> {
        let dir = self.pkgs_at().join(key);
        let text = fs_err::read_to_string(dir.join(ENTRY_MARKER)).ok()?;
        Some(match serde_json::from_str::<EntryMarker>(&text) {
            Err(e) => Err(format!("unreadable marker: {e}")),
            Ok(marker) => self.check_archive(key, &marker).and_then(|()| {
                validate::check_entry(&dir, validate::Depth::Hashes, &marker.links_as_files)
                    .map(drop)
            }),
        })
    }

    /// Checks the archive of an entry against the sha256 in its marker.
    fn check_archive(&self, key: &str, marker: &EntryMarker) -> Result<(), String> {
        let format =
            ArchiveFormat::from_file_name(&marker.file_name).unwrap_or(ArchiveFormat::TarBz2);
        let archive = self.pkgs_at().join(Layout::archive_name(key, format));
        match hash_file(&archive) {
            // Removed by `clean --tarballs`: the extracted files are what
            // is checked then.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("archive {}: {e}", archive.display())),
            Ok(file) if hex::encode(file.sha256) != marker.sha256 => Err(format!(
                "archive {} has sha256 {}, expected {}",
                archive.display(),
                hex::encode(file.sha256),
                marker.sha256
            )),
            Ok(_) => Ok(()),
        }
    }

    /// Every cached repodata file: its base path (`repodata/<hash>`, to which
    /// `.json` and `.lock` are added) and its `.info.json`.
    fn cached_repodata(&self) -> Result<Vec<(PathBuf, PathBuf)>, CacheError> {
        // Through the held `repodata/` in a writable cache.
        let repodata = self
            .dirs
            .as_ref()
            .map_or_else(|| self.layout().repodata(), |dirs| dirs.repodata_at.clone());
        let mut found = Vec::new();
        for entry in fs_err::read_dir(&repodata).map_err(io_error("reading the cache"))? {
            let path = entry.map_err(io_error("reading the cache"))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if let Some(hash) = name.strip_suffix(".info.json") {
                found.push((repodata.join(hash), path.clone()));
            }
        }
        Ok(found)
    }

    /// Checks every cached repodata.json; with `repair`, removes the broken
    /// ones (validators first) under their lock.
    fn verify_repodata(&self, repair: bool, report: &mut VerifyReport) -> Result<(), CacheError> {
        for (base, path) in self.cached_repodata()? {
            let hash = base
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let json = base.with_extension("json");
            let lock = if self.is_read_only() {
                None
            } else {
                let Some(lock) = self.try_lock_repodata(&base)? else {
                    report.busy.push(format!("repodata/{hash}.json"));
                    continue;
                };
                Some(lock)
            };
            if !json.is_file() {
                continue;
            }
            report.checked += 1;
            let Err(problem) = crate::check_repodata_file(&json) else {
                continue;
            };
            let url = fs_err::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["url"].as_str().map(ToOwned::to_owned))
                .unwrap_or_default();
            let mut removed = false;
            if repair {
                let _ = fs_err::remove_file(&path);
                let _ = fs_err::remove_file(&json);
                let _ = fs_err::remove_file(base.with_extension("index"));
                removed = true;
            }
            drop(lock);
            report.corrupt.push(CorruptEntry {
                key: format!("repodata/{hash}.json ({url})"),
                problem,
                removed,
            });
        }
        Ok(())
    }
}
