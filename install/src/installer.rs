//! [`Installer`]: solving against the channels, and carrying out a change
//! on a locked prefix (fetch every package into the cache, then one
//! transaction).

use std::sync::Arc;

use pkgr_cache::{CacheEntry, PackageCache};
use pkgr_prefix::{CheckedFiles, LinkMode, LinkRequest, LinkScripts, Transaction};
use rattler_conda_types::{Channel, MatchSpec, PrefixRecord, RepoDataRecord, Subdir};
use tokio::sync::Semaphore;

use crate::plan::{python_of, requested_spec_of, spec_is_for};
use crate::{InstallError, LockedPrefix, Plan, Reporter};

/// Installs into environments from one shared cache.
///
/// ```no_run
/// # async fn f(cache: &pkgr_cache::PackageCache, prefix: &std::path::Path,
/// #            solution: Vec<rattler_conda_types::RepoDataRecord>,
/// #            reporter: std::sync::Arc<dyn pkgr_install::Reporter>)
/// #            -> Result<(), pkgr_install::InstallError> {
/// use pkgr_install::{Change, Installer, LinkMode, Plan, SpecsKind};
/// let installer = Installer::new(cache).with_link_mode(LinkMode::Auto);
/// let (locked, installed) = pkgr_install::open_environment(prefix, reporter.as_ref()).await?;
/// let plan = Plan::between(&installed, &solution);
/// let change = Change::new(&installed, &solution, &plan);
/// installer.install(&locked, change, reporter.clone()).await?;
/// locked.record_history(&plan, SpecsKind::Update, &[], "my-tool install")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Installer<'a> {
    cache: &'a PackageCache,
    jobs: Arc<Semaphore>,
    link_mode: LinkMode,
    link_scripts: LinkScripts,
    allow_unverified: bool,
}

/// One change to an environment, as [`Installer::install`] carries it out.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// What the environment holds now.
    pub installed: &'a [PrefixRecord],
    /// Every package the environment holds afterwards (its python decides
    /// where `noarch: python` packages go).
    pub solution: &'a [RepoDataRecord],
    /// What to remove and what to link.
    pub plan: &'a Plan,
    /// The user's specs this time (recorded as `requested_spec` of the
    /// packages they name; a package that replaces an installed one keeps the
    /// old one's otherwise).
    pub requested: &'a [String],
    /// The records to link know only their file name and checksum (an
    /// `@EXPLICIT` list): their metadata (depends, license, ...) is read from
    /// each archive's `info/index.json` once it is in the cache, as conda does.
    pub metadata_from_archives: bool,
}

impl<'a> Change<'a> {
    /// A change with no requested specs and complete records.
    pub fn new(
        installed: &'a [PrefixRecord],
        solution: &'a [RepoDataRecord],
        plan: &'a Plan,
    ) -> Self {
        Self {
            installed,
            solution,
            plan,
            requested: &[],
            metadata_from_archives: false,
        }
    }
}

/// What [`Installer::install`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// Bytes downloaded into the cache for this change (0 when every
    /// package was there).
    pub downloaded_bytes: u64,
    /// The records linked, completed from their archives where the change
    /// asked for it ([`Change::metadata_from_archives`]).
    pub linked: Vec<RepoDataRecord>,
}

impl<'a> Installer<'a> {
    /// An installer on `cache`, sharing the cache's `--jobs` permits
    /// ([`PackageCache::jobs`]), linking with [`LinkMode::Auto`].
    pub fn new(cache: &'a PackageCache) -> Self {
        Self {
            cache,
            jobs: cache.jobs().clone(),
            link_mode: LinkMode::Auto,
            link_scripts: LinkScripts::Run,
            allow_unverified: false,
        }
    }

    /// Whether packages whose records carry neither a sha256 nor an md5
    /// may be installed (default: no). Nothing checks such a download, so
    /// a tampered mirror or a changed file would go unnoticed: by default
    /// they are [`InstallError::Unverified`]; allowed, they are installed
    /// with a warning listing them.
    pub fn with_unverified_packages(mut self, allow: bool) -> Self {
        self.allow_unverified = allow;
        self
    }

    /// The permits that bound the link step. Give it the cache's (the
    /// default) so that downloads, extractions and linking share one bound.
    pub fn with_jobs(mut self, jobs: Arc<Semaphore>) -> Self {
        self.jobs = jobs;
        self
    }

    /// How files are linked ([`LinkMode::Copy`] for `--copy`).
    pub fn with_link_mode(mut self, mode: LinkMode) -> Self {
        self.link_mode = mode;
        self
    }

    /// Whether packages' post-link and pre-unlink scripts run
    /// ([`LinkScripts::Skip`]: none runs; each package whose script was not
    /// run is reported as a [`TransactionEvent::ScriptSkipped`](pkgr_prefix::TransactionEvent::ScriptSkipped)).
    pub fn with_link_scripts(mut self, scripts: LinkScripts) -> Self {
        self.link_scripts = scripts;
        self
    }

    /// The cache this installer uses.
    pub fn cache(&self) -> &'a PackageCache {
        self.cache
    }

    /// Loads the channels' repodata for `platform` (and `noarch`) through the
    /// cache and solves `specs`, keeping `locked` (the installed records)
    /// where the request allows. A spec whose name is a glob
    /// (`*[md5=...]`, `py*[build=...]`) is first resolved to the one package
    /// name whose records it matches.
    ///
    /// Repodata locks are taken and released inside; the result holds no
    /// lock, so this may run before or after the prefix is locked.
    pub async fn solve(
        &self,
        channels: &[Channel],
        platform: Subdir,
        specs: Vec<MatchSpec>,
        locked: Vec<RepoDataRecord>,
        options: pkgr_solver::SolveOptions,
        reporter: &dyn Reporter,
    ) -> Result<Vec<RepoDataRecord>, InstallError> {
        let indexes =
            pkgr_repodata::load_channels(self.cache, channels, platform, reporter).await?;
        let specs = self.resolve_name_globs(&indexes, specs).await?;
        pkgr_repodata::prefetch_shards(self.cache, &indexes, &specs, &locked).await?;
        let records = tokio::task::spawn_blocking(move || {
            let virtual_packages = pkgr_solver::detect_virtual_packages(platform)?;
            pkgr_solver::solve(&indexes, &specs, &locked, virtual_packages, &options)
        })
        .await??;
        Ok(records)
    }

    /// Specs whose name is a glob (`*[md5=...]`) with the glob replaced by the
    /// one name whose records they match (an error when none or several do).
    async fn resolve_name_globs(
        &self,
        indexes: &[pkgr_repodata::SubdirIndex],
        specs: Vec<MatchSpec>,
    ) -> Result<Vec<MatchSpec>, InstallError> {
        let mut resolved = Vec::with_capacity(specs.len());
        for mut spec in specs {
            if spec.name.as_exact().is_none() {
                let records = pkgr_repodata::search(self.cache, indexes, &spec).await?;
                let mut names: Vec<&str> = records
                    .iter()
                    .map(|r| r.package_record.name.as_normalized())
                    .collect();
                names.dedup();
                match names.as_slice() {
                    [] => {
                        return Err(InstallError::NoMatchingName {
                            spec: spec.to_string(),
                        })
                    }
                    [one] => {
                        let name = rattler_conda_types::PackageName::new_unchecked(*one);
                        spec.name = name.into();
                    }
                    several => {
                        return Err(InstallError::SeveralNames {
                            spec: spec.to_string(),
                            names: several.iter().map(|n| (*n).to_owned()).collect(),
                        })
                    }
                }
            }
            resolved.push(spec);
        }
        Ok(resolved)
    }

    /// Carries out `change` on `prefix`: fetches every package it links into
    /// the cache (concurrently; the cache bounds the work with the jobs
    /// permits and hands back each entry with its shared lock held), then
    /// runs the prefix [`Transaction`] (unlinks, links, conda-meta records)
    /// on blocking threads, as many packages at once as jobs permits are free
    /// (at least one), holding those permits. The entries' locks are held
    /// until the transaction is over, and released before this returns.
    ///
    /// A failed transaction rolls back every package it has not recorded
    /// yet (the ones linking beside the failing one finish first); packages
    /// unlinked or recorded before stay so. Writing `history` is the caller's
    /// next step ([`LockedPrefix::record_history`]).
    pub async fn install(
        &self,
        prefix: &LockedPrefix,
        change: Change<'_>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<InstallReport, InstallError> {
        let result = self.fetch_and_link(prefix, change, &reporter).await;
        reporter.finished();
        result
    }

    async fn fetch_and_link(
        &self,
        prefix: &LockedPrefix,
        change: Change<'_>,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<InstallReport, InstallError> {
        let Change {
            installed,
            solution,
            plan,
            requested,
            metadata_from_archives,
        } = change;
        self.check_records(&plan.link, reporter.as_ref())?;
        if plan.unlink.is_empty() && !metadata_from_archives {
            return self
                .fetch_and_link_as_fetched(prefix, installed, solution, plan, requested, reporter)
                .await;
        }
        reporter.fetching_started(plan.link.len());
        let entries: Vec<CacheEntry> = self
            .cache
            .get_all(&plan.link, reporter.as_ref() as &dyn pkgr_cache::Reporter)
            .await?;
        reporter.linking_started(plan.link.len() + plan.unlink.len());
        let downloaded_bytes = entries
            .iter()
            .filter_map(CacheEntry::downloaded_bytes)
            .sum();
        let linked: Vec<RepoDataRecord> = if metadata_from_archives {
            plan.link
                .iter()
                .zip(&entries)
                .map(|(record, entry)| record_from_archive(record, entry))
                .collect::<Result<_, _>>()?
        } else {
            plan.link.clone()
        };
        let link = linked
            .iter()
            .zip(&entries)
            .map(|(record, entry)| LinkRequest {
                record: record.clone(),
                package_dir: entry.dir().to_path_buf(),
                requested_spec: requested_spec(record, requested, installed),
                // Checked as the cache handed it out: linking need not look
                // at each file again.
                checked: Some(CheckedFiles {
                    paths: entry.paths().clone(),
                    symlinks: entry.symlinks().clone(),
                }),
            })
            .collect();
        let threads = self.jobs.available_permits().max(1);
        let permit = self
            .jobs
            .clone()
            .acquire_many_owned(u32::try_from(threads).unwrap_or(u32::MAX))
            .await
            .map_err(InstallError::JobsClosed)?;
        let transaction = Transaction {
            unlink: plan.unlink.clone(),
            link,
            python: python_of(solution.iter()),
            mode: self.link_mode,
            jobs: threads,
            compiled_modules: self.compiled_modules(),
            scripts: self.link_scripts,
        };
        let path = prefix.path().to_path_buf();
        let installed = installed.to_vec();
        let events = reporter.clone();
        spawn_holding((entries, permit, prefix.hold()), move || {
            transaction.execute(&path, &installed, &|event| events.transaction_event(&event))
        })
        .await?
        .map_err(|source| InstallError::Transaction {
            prefix: prefix.path().to_path_buf(),
            source,
        })?;
        Ok(InstallReport {
            downloaded_bytes,
            linked,
        })
    }

    /// [`Self::fetch_and_link`] for a change that only adds packages (a new
    /// environment, an install that replaces nothing): each package's files
    /// are linked as soon as its entry is in the cache, while the others are
    /// still downloading or extracting; the records are written once all
    /// are there. If a fetch fails, what was linked is rolled back, so the
    /// environment is as it was. The entries (their shared locks) are kept
    /// here until the linking threads are done with them.
    async fn fetch_and_link_as_fetched(
        &self,
        prefix: &LockedPrefix,
        installed: &[PrefixRecord],
        solution: &[RepoDataRecord],
        plan: &Plan,
        requested: &[String],
        reporter: &Arc<dyn Reporter>,
    ) -> Result<InstallReport, InstallError> {
        reporter.fetching_started(plan.link.len());
        let threads = self.jobs.available_permits().max(1);
        let transaction = Transaction {
            python: python_of(solution.iter()),
            mode: self.link_mode,
            jobs: threads,
            compiled_modules: self.compiled_modules(),
            scripts: self.link_scripts,
            ..Transaction::default()
        };
        let (arrivals, receiver) = std::sync::mpsc::channel::<LinkRequest>();
        // The entries (their shared locks) are owned by whoever still works
        // with their files: this task, and each blocking task below, so that
        // they outlive the linking even if this task is dropped.
        let held: Arc<std::sync::Mutex<Vec<CacheEntry>>> = Arc::default();
        // Set by the linking threads when a package fails: the fetches stop.
        let link_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let link_failed_linking = link_failed.clone();
        let path = prefix.path().to_path_buf();
        let jobs = self.jobs.clone();
        let expected = plan.link.clone();
        let runtime = tokio::runtime::Handle::current();
        let linking = spawn_holding((held.clone(), prefix.hold()), move || {
            // A permit for each package's linking, taken once it is planned
            // and journaled (waiting for it holds nothing but the journal).
            let permit = move || -> Box<dyn std::any::Any> {
                Box::new(runtime.block_on(jobs.clone().acquire_owned()).ok())
            };
            transaction.link_as_fetched(
                &path,
                &expected,
                &std::sync::Mutex::new(receiver),
                &permit,
                &link_failed_linking,
            )
        });
        let fetched = self
            .cache
            .get_all_as_ready(
                &plan.link,
                reporter.as_ref() as &dyn pkgr_cache::Reporter,
                &|index, entry| {
                    let record = &plan.link[index];
                    let _ = arrivals.send(LinkRequest {
                        record: record.clone(),
                        package_dir: entry.dir().to_path_buf(),
                        requested_spec: requested_spec(record, requested, installed),
                        checked: Some(CheckedFiles {
                            paths: entry.paths().clone(),
                            symlinks: entry.symlinks().clone(),
                        }),
                    });
                    if let Ok(mut held) = held.lock() {
                        held.push(entry);
                    }
                    !link_failed.load(std::sync::atomic::Ordering::Relaxed)
                },
            )
            .await;
        // No more arrivals: the linking threads finish what they have.
        drop(arrivals);
        let staged = linking.await?.map_err(|source| InstallError::Transaction {
            prefix: prefix.path().to_path_buf(),
            source,
        })?;
        let downloaded_bytes = held
            .lock()
            .map(|held| held.iter().filter_map(CacheEntry::downloaded_bytes).sum())
            .unwrap_or(0);
        let path = prefix.path().to_path_buf();
        let installed = installed.to_vec();
        // A failed link comes first: record() rolls back and returns it (the
        // fetches it stopped say only "cancelled").
        let link_failed = link_failed.load(std::sync::atomic::Ordering::Relaxed);
        let fetched = if link_failed { Ok(()) } else { fetched };
        if let Err(err) = fetched {
            // The fetch's error is what the user hears: what the rollback
            // could not remove stays journaled, for `recover` before the
            // next change of this environment.
            let rolled_back = spawn_holding((held.clone(), prefix.hold()), move || {
                staged.roll_back(&installed)
            })
            .await;
            if let Ok(Err(rollback)) = rolled_back {
                tracing::warn!(prefix = %path.display(), "rolling back after a failed fetch: {rollback}");
            }
            drop(held);
            return Err(err.into());
        }
        reporter.linking_started(plan.link.len());
        let events = reporter.clone();
        spawn_holding((held.clone(), prefix.hold()), move || {
            staged.record(&installed, &|event| events.transaction_event(&event))
        })
        .await?
        .map_err(|source| InstallError::Transaction {
            prefix: prefix.path().to_path_buf(),
            source,
        })?;
        drop(held);
        Ok(InstallReport {
            downloaded_bytes,
            linked: plan.link.clone(),
        })
    }

    /// The last line of defence before anything reaches the cache or the
    /// prefix, whatever gave the records (the solver checks what it
    /// chooses; a lock file's records come straight here): every record
    /// must name one file ([`pkgr_cache::repodata_rules::check_record`]),
    /// and must carry a checksum unless [`Self::with_unverified_packages`]
    /// allows it (then the reporter is warned, naming them).
    fn check_records(
        &self,
        records: &[RepoDataRecord],
        reporter: &dyn Reporter,
    ) -> Result<(), InstallError> {
        for record in records {
            pkgr_cache::repodata_rules::check_record(record).map_err(|problem| {
                InstallError::UnsafeRecord {
                    file_name: record.identifier.to_string().escape_debug().to_string(),
                    channel: record
                        .channel
                        .clone()
                        .unwrap_or_else(|| pkgr_redact::redact_url(&record.url)),
                    problem,
                }
            })?;
        }
        let unverified: Vec<String> = records
            .iter()
            .filter(|r| r.package_record.sha256.is_none() && r.package_record.md5.is_none())
            .map(|r| r.identifier.to_string().escape_debug().to_string())
            .collect();
        if unverified.is_empty() {
            return Ok(());
        }
        if !self.allow_unverified {
            return Err(InstallError::Unverified {
                packages: unverified,
            });
        }
        let text = format!(
            "installing {} without a checksum (allow_unverified_packages is set): nothing checks that {} what was meant: {}",
            if unverified.len() == 1 { "a package" } else { "packages" },
            if unverified.len() == 1 { "it is" } else { "they are" },
            unverified.join(", ")
        );
        reporter.transaction_event(&pkgr_prefix::TransactionEvent::Warning(&text));
        Ok(())
    }

    /// The cache's store of byte-compiled modules (none for a read-only
    /// cache: its entries' modules are compiled in each environment).
    fn compiled_modules(&self) -> Option<Arc<dyn pkgr_prefix::CompiledModules>> {
        if self.cache.is_read_only() {
            return None;
        }
        Some(Arc::new(KeptModules {
            root: self.cache.root().to_path_buf(),
            tmp: self.cache.tmp_dir(),
        }))
    }
}

/// The `requested_spec` a linked package gets: the first of this change's
/// specs that names it, else what the installed package of its name was
/// asked for with.
fn requested_spec(
    record: &RepoDataRecord,
    requested: &[String],
    installed: &[PrefixRecord],
) -> Option<String> {
    let name = record.package_record.name.as_normalized();
    requested
        .iter()
        .find(|s| spec_is_for(s, name))
        .cloned()
        .or_else(|| {
            installed
                .iter()
                .find(|r| r.repodata_record.package_record.name.as_normalized() == name)
                .and_then(requested_spec_of)
        })
}

/// `record` (an `@EXPLICIT` line: file name, URL, checksum) completed from
/// the `info/index.json` of its cache entry, with the checksums and size of
/// the verified archive. The name, version and build must be those the file
/// name promised.
fn record_from_archive(
    record: &RepoDataRecord,
    entry: &CacheEntry,
) -> Result<RepoDataRecord, InstallError> {
    use rattler_conda_types::package::IndexJson;
    // Within its size limit, as every metadata read of an entry.
    let index =
        pkgr_cache::archive::read_entry_file::<IndexJson>(entry.dir()).map_err(|source| {
            InstallError::ArchiveIndex {
                package: record.identifier.to_string(),
                dir: entry.dir().to_path_buf(),
                source,
            }
        })?;
    let marker = entry.marker()?;
    let sha256 = hex::decode(&marker.sha256)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(Into::into);
    let md5 = hex::decode(&marker.md5)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Into::into);
    let mut package_record =
        rattler_conda_types::PackageRecord::from_index_json(index, Some(marker.size), sha256, md5)
            .map_err(|source| InstallError::UnusableIndex {
                package: record.identifier.to_string(),
                source,
            })?;
    let wanted = &record.package_record;
    if package_record.name != wanted.name
        || package_record.version != wanted.version
        || package_record.build != wanted.build
    {
        return Err(InstallError::NotWhatItsNameSays {
            url: pkgr_redact::redact_url(&record.url),
            found: format!(
                "{}-{}-{}",
                package_record.name.as_normalized(),
                package_record.version,
                package_record.build
            ),
        });
    }
    if package_record.subdir.is_empty() {
        package_record.subdir.clone_from(&wanted.subdir);
    }
    Ok(RepoDataRecord {
        package_record,
        identifier: record.identifier.clone(),
        url: record.url.clone(),
        channel: record.channel.clone(),
    })
}

/// [`pkgr_prefix::CompiledModules`] kept in the package cache
/// ([`pkgr_cache::compiled`]).
#[derive(Debug)]
struct KeptModules {
    root: std::path::PathBuf,
    tmp: std::path::PathBuf,
}

impl pkgr_prefix::CompiledModules for KeptModules {
    fn find(&self, package_dir: &std::path::Path, tag: &str) -> Option<std::path::PathBuf> {
        pkgr_cache::compiled::find(package_dir, tag)
    }

    fn keep(
        &self,
        package_dir: &std::path::Path,
        tag: &str,
        prefix: &std::path::Path,
        pycs: &[std::path::PathBuf],
    ) {
        if let Err(e) =
            pkgr_cache::compiled::keep(&self.root, &self.tmp, package_dir, tag, prefix, pycs)
        {
            tracing::debug!(
                package = %package_dir.display(),
                "could not keep the byte-compiled modules in the cache: {e}"
            );
        }
    }
}

/// Runs `work` on a blocking thread that keeps `held` (the prefix lock,
/// cache entries, permits: whatever the work uses) until the work is done,
/// so that none of it ends before the work, even if the task awaiting it
/// is dropped. A tuple is released in its order: the prefix lock, taken
/// first, goes last.
fn spawn_holding<H, T>(
    held: H,
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T>
where
    H: Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let done = work();
        drop(held);
        done
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the warnings it is told.
    #[derive(Default)]
    struct Warnings(std::sync::Mutex<Vec<String>>);
    impl pkgr_cache::Reporter for Warnings {}
    impl Reporter for Warnings {
        fn transaction_event(&self, event: &pkgr_prefix::TransactionEvent<'_>) {
            if let pkgr_prefix::TransactionEvent::Warning(text) = event {
                self.0.lock().unwrap().push((*text).to_owned());
            }
        }
    }

    /// A record of `name-1.0-<build>` with file name `file_name`, with
    /// checksums when asked.
    fn record(file_name: &str, build: &str, checksums: bool) -> RepoDataRecord {
        let mut json = serde_json::json!({
            "name": "a", "version": "1.0", "build": build, "build_number": 0,
            "subdir": "linux-64", "fn": file_name,
            "url": format!("https://example.com/chan/linux-64/{file_name}"),
            "channel": "https://example.com/chan",
        });
        if checksums {
            json["sha256"] = serde_json::json!("ab".repeat(32));
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn records_that_cannot_name_one_file_or_be_verified_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PackageCache::open(dir.path(), pkgr_fetch::Fetcher::new().unwrap()).unwrap();
        let reporter = Warnings::default();
        let strict = Installer::new(&cache);
        let lenient = Installer::new(&cache).with_unverified_packages(true);
        let good = record("a-1.0-0.conda", "0", true);
        strict
            .check_records(std::slice::from_ref(&good), &reporter)
            .unwrap();

        // A path in the build: refused, also where unverified ones may go.
        let climbing = record("a-1.0-0.conda", "0/../../../x", true);
        for installer in [&strict, &lenient] {
            let err = installer
                .check_records(&[good.clone(), climbing.clone()], &reporter)
                .unwrap_err();
            assert!(matches!(err, InstallError::UnsafeRecord { .. }), "{err}");
            assert!(err.to_string().contains("holds a path separator"), "{err}");
        }
        let renamed = record("b-1.0-0.conda", "0", true);
        let err = strict.check_records(&[renamed], &reporter).unwrap_err();
        assert!(
            err.to_string().contains("its file name is not a-1.0-0"),
            "{err}"
        );

        // No checksum: refused, naming it; allowed, a warning names it.
        let unverified = record("a-1.0-1.conda", "1", false);
        let err = strict
            .check_records(&[good.clone(), unverified.clone()], &reporter)
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, InstallError::Unverified { .. }), "{text}");
        assert!(
            text.contains("this package has no sha256 or md5 checksum")
                && text.contains("a-1.0-1.conda")
                && !text.contains("a-1.0-0.conda"),
            "{text}"
        );
        assert!(reporter.0.lock().unwrap().is_empty());
        lenient
            .check_records(&[good, unverified], &reporter)
            .unwrap();
        let warnings = reporter.0.lock().unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("a-1.0-1.conda"), "{warnings:?}");
    }
}
