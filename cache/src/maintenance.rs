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

/// What [`PackageCache::clean`] removes besides the temp files of finished
/// processes (swept on every clean that is not a dry run). Every entry is
/// removed under its exclusive *try*-lock, so one a process uses (links
/// from: shared lock; fills: exclusive) is skipped and reported busy.
/// Removing a cache entry never breaks an environment: environments are
/// linked by hard links or copies, never by symlinks into the cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanTargets {
    /// Extracted entries (`pkgs/<key>/`, with their compiled modules in
    /// `pyc/<key>/`). An archive beside one stays unless `archives` is set
    /// too: the next fill extracts it again without a download.
    pub extracted: bool,
    /// Downloaded archives (`pkgs/<key>.conda`, `pkgs/<key>.tar.bz2`),
    /// whether or not their entry is extracted.
    pub archives: bool,
    /// Cached repodata (every `repodata/<hash>.*` whose lock is free) and
    /// the shards (`repodata/shards/`).
    pub repodata: bool,
    /// Remove nothing: report what would be removed (entries are still
    /// try-locked, to tell which are busy). What opening the cache swept
    /// (the temp directories of dead processes, as every command does) is
    /// reported in [`CleanReport::temp_removed`].
    pub dry_run: bool,
}

/// One thing `clean` removed (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Its name: an entry's key (`pkgs/<key>/`), an archive's file name
    /// (`pkgs/<name>`) or a repodata file's name (`repodata/<name>`).
    pub name: String,
    /// The bytes of its files (an entry: every regular file in it).
    pub bytes: u64,
}

/// What `clean` did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanReport {
    /// Extracted entries removed.
    pub extracted: Vec<Removed>,
    /// Archives removed.
    pub archives: Vec<Removed>,
    /// Cached repodata files removed.
    pub repodata: Vec<Removed>,
    /// Shards removed from `repodata/shards/`.
    pub shards: usize,
    /// Entries in use by another process, left alone.
    pub busy: Vec<String>,
    /// Temp directories of dead processes (and set-aside entries,
    /// `pkgs/.old-*`, and the byte-compiled modules of entries that are
    /// gone) removed.
    pub temp_removed: usize,
    /// Temp directories of live processes left alone.
    pub temp_live: usize,
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

    /// Sweeps the temp files of dead processes and removes the `targets`
    /// that no process is using (see [`CleanTargets`]); a dry run removes
    /// nothing and reports what it would remove.
    pub fn clean(&self, targets: CleanTargets) -> Result<CleanReport, CacheError> {
        if self.is_read_only() {
            return Err(self.read_only_error("clean it"));
        }
        let dirs = self.dirs("clean it")?;
        let mut report = CleanReport {
            // What opening the cache swept a moment ago counts too.
            temp_removed: self.swept().removed,
            temp_live: self.swept().live,
            ..CleanReport::default()
        };
        if !targets.dry_run {
            let sweep = session::sweep(&dirs.tmp)?;
            report.temp_removed += sweep.removed
                + crate::set_aside::sweep_set_aside(&dirs.pkgs)
                + crate::set_aside::sweep_set_aside(&dirs.pyc)
                + self.sweep_orphaned_compiled()?;
            report.temp_live = sweep.live;
        }
        if targets.extracted || targets.archives {
            for key in self.entry_keys()? {
                self.clean_entry(&key, targets, &mut report)?;
            }
        }
        if targets.repodata {
            self.clean_repodata(targets.dry_run, &mut report)?;
        }
        Ok(report)
    }

    /// Removes what `targets` names of the entry `key` (its extracted
    /// directory, its archives), under its exclusive try-lock.
    fn clean_entry(
        &self,
        key: &str,
        targets: CleanTargets,
        report: &mut CleanReport,
    ) -> Result<(), CacheError> {
        let dirs = self.dirs("clean it")?;
        let size = |name: &str| {
            fs_err::symlink_metadata(dirs.pkgs_at.join(name))
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|meta| meta.len())
        };
        let has_archive = |key: &str| {
            ArchiveFormat::ALL
                .iter()
                .any(|f| size(&Layout::archive_name(key, *f)).is_some())
        };
        let wanted = (targets.extracted && dirs.pkgs.stat(key).ok().flatten().is_some())
            || (targets.archives && has_archive(key));
        if !wanted {
            return Ok(());
        }
        let Some(lock) = self.try_lock_entry(key, LockMode::Exclusive)? else {
            report.busy.push(key.to_owned());
            return Ok(());
        };
        // Looked at again under the lock: a fill may have finished between.
        if targets.extracted && dirs.pkgs.stat(key).ok().flatten().is_some() {
            let bytes = tree_bytes(&dirs.pkgs_at.join(key));
            if !targets.dry_run {
                // Best effort: stale ones would only make python compile again.
                let _ = crate::set_aside::set_aside(&dirs.pyc_at.join(key));
                crate::set_aside::set_aside(&dirs.pkgs_at.join(key)).map_err(io_error(format!(
                    "removing the entry {}",
                    self.layout().entry_dir(key).display()
                )))?;
            }
            report.extracted.push(Removed {
                name: key.to_owned(),
                bytes,
            });
        }
        if targets.archives {
            for format in ArchiveFormat::ALL {
                let name = Layout::archive_name(key, format);
                let Some(bytes) = size(&name) else { continue };
                if !targets.dry_run {
                    // Through the held `pkgs/`: the archive itself is
                    // unlinked, never followed.
                    dirs.pkgs.remove_file(&name).map_err(io_error(format!(
                        "removing the archive {}",
                        self.layout().archive(key, format).display()
                    )))?;
                }
                report.archives.push(Removed { name, bytes });
            }
        }
        drop(lock);
        Ok(())
    }

    /// Removes every cached repodata file whose lock is free (one being
    /// fetched is left alone) and every shard.
    fn clean_repodata(&self, dry_run: bool, report: &mut CleanReport) -> Result<(), CacheError> {
        let dirs = self.dirs("clean it")?;
        // Shards are immutable and read with no lock: a reader that loses
        // one to this finds it missing and downloads it again.
        // (Through the held `repodata/shards/`: only files there, a link
        // itself and never what it points to.)
        if let Ok(shards) = dirs.shards.entries() {
            for (shard, _) in shards {
                if dry_run || dirs.shards.remove_file(&shard).is_ok() {
                    report.shards += 1;
                }
            }
        }
        for (base, info) in self.cached_repodata()? {
            let Some(lock) = self.try_lock_repodata(&base)? else {
                continue;
            };
            // The info file goes first: without it the data is never used.
            for path in [
                info,
                base.with_extension("json"),
                base.with_extension("index"),
                base.with_extension("msgpack.zst"),
            ] {
                let Ok(meta) = fs_err::symlink_metadata(&path) else {
                    continue;
                };
                if dry_run || fs_err::remove_file(&path).is_ok() {
                    report.repodata.push(Removed {
                        name: path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        bytes: meta.len(),
                    });
                }
            }
            drop(lock);
        }
        Ok(())
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

    /// Checks every complete entry: its archive against the sha256 in its
    /// marker, and every file its paths.json lists (size and sha256); and
    /// every cached repodata.json (whole, valid JSON). With `repair`, corrupt
    /// entries and repodata are removed (under their exclusive lock, checked
    /// again under it: another process may have repaired the entry in between)
    /// so the next install fetches them again. A read-only cache is checked
    /// without locks (nothing changes it) and cannot be repaired.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, CacheError> {
        if repair && self.is_read_only() {
            return Err(self.read_only_error("repair it"));
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

/// The bytes of the regular files below `dir`, best effort (what cannot be
/// read counts nothing); symlinks are counted as themselves, never followed.
fn tree_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs_err::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = fs_err::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}
