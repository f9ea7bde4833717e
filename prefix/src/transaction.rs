//! Changing an environment: unlink some packages, link others, so that
//! `conda-meta/` always describes what is on disk, even after a kill.
//!
//! Each package is changed under a journal entry,
//! `conda-meta/<name>-<version>-<build>.pkgr-partial` (conda reads only
//! `*.json` there), listing every path the change may touch:
//!
//! - unlinking, one package after the other (dependents first): pre-unlink
//!   script, journal, record removed, files, journal removed;
//! - linking: each package's journal, then its files, several packages at
//!   once (`jobs`), each once the packages it depends on have arrived (and
//!   are linked, where one of the two ships a symlink that may stand for a
//!   directory, such as `lib64 -> lib`);
//!   where packages ship the same file (or entry point), the last one's in
//!   dependency order is put back in place afterwards; then, one package after the
//!   other (dependencies first, as conda does, once everything is in place):
//!   byte-compiling, post-link script, record, journal removed.
//!
//! So a `*.json` record exists exactly for packages whose files are all in
//! place. A journal left behind (a kill) is rolled forward by [`recover`]
//! before the next change: the paths it lists that no record claims are
//! removed. A failure (a damaged file, a full disk, a post-link script) rolls
//! back at once every package of the transaction not recorded yet, after the
//! packages being linked beside it have finished; packages already unlinked
//! or recorded stay so, and the records say what is there.
//!
//! Here: the transaction (plan, check, unlink, link, commit). Beside it:
//! `scheduler.rs` (the linking threads and their `LinkQueue`),
//! `staged.rs` (what a linking thread hands to the commit), `commit.rs`
//! (post-link scripts and records, dependencies first, or the rollback), `clobbers.rs` (paths several packages ship), `compile.rs`
//! (byte-compiling), `journal.rs` (the journal and [`recover`]).
//!
//! With `-vv` (debug), each step is a span: `transaction` (or
//! `link_as_fetched`), `unlink_package`, `link_package`, `clobbers`,
//! `byte_compile`, `commit`, `recover`.

mod clobbers;
mod commit;
mod compile;
mod journal;
mod scheduler;
mod staged;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use rattler_conda_types::{PackageRecord, PrefixRecord, RepoDataRecord};

use crate::link::{CheckedFiles, LinkGuard, LinkMode, PackagePlan};
use crate::meta::record_file_name;
use crate::python::{CompiledModules, PythonInfo};
use crate::scripts::{LinkScripts, ScriptKind};
use crate::unlink::{record_paths, remove_paths};
use crate::{io, PrefixError};

use clobbers::owners_of;
pub use commit::StagedLinks;
pub use journal::recover;
use journal::{remove_journal, write_journal};
use scheduler::LinkOrder;

/// A package to link: its record, its extracted directory in the cache, and
/// the spec the user asked for it with (if they named it).
#[derive(Debug, Clone)]
pub struct LinkRequest {
    /// The package.
    pub record: RepoDataRecord,
    /// Its extracted directory (the caller holds the cache entry's lock).
    pub package_dir: PathBuf,
    /// The user's spec naming it, recorded as `requested_spec`.
    pub requested_spec: Option<String>,
    /// Its files as the cache's hand-out check found them; `None`: its
    /// paths.json is read and every file looked at.
    pub checked: Option<CheckedFiles>,
}

/// What happened, as it happens.
#[derive(Debug)]
pub enum TransactionEvent<'a> {
    /// A package's files are gone and its record removed.
    Unlinked(&'a RepoDataRecord),
    /// A package is linked and its record written.
    Linked(&'a RepoDataRecord),
    /// Two packages ship the same path; `winner` (linked later) is in place.
    Clobbered {
        /// The path, relative to the prefix.
        path: &'a Path,
        /// The package whose file was overwritten.
        loser: &'a str,
        /// The package whose file is now there.
        winner: &'a str,
    },
    /// A link script left a message for the user.
    Message {
        /// The package.
        package: &'a str,
        /// Its text.
        text: &'a str,
    },
    /// Something the user should know that did not stop the transaction.
    Warning(&'a str),
    /// A package's link script was not run ([`LinkScripts::Skip`]).
    ScriptSkipped {
        /// The package.
        package: &'a str,
        /// Which script.
        kind: ScriptKind,
    },
}

/// A change of an environment.
#[derive(Debug, Default)]
pub struct Transaction {
    /// Installed packages to remove (any order: they are unlinked dependents first).
    pub unlink: Vec<PrefixRecord>,
    /// Packages to add (any order: they are linked dependencies first).
    pub link: Vec<LinkRequest>,
    /// The python the environment has once the transaction is done (for
    /// `noarch: python` packages).
    pub python: Option<PythonInfo>,
    /// How files get from the cache into the prefix.
    pub mode: LinkMode,
    /// How many packages' files are linked at once (0 counts as 1).
    pub jobs: usize,
    /// Where byte-compiled modules are kept between environments (`None`:
    /// every environment compiles its own).
    pub compiled_modules: Option<Arc<dyn CompiledModules>>,
    /// Whether post-link and pre-unlink scripts run.
    pub scripts: LinkScripts,
}

impl Transaction {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.unlink.is_empty() && self.link.is_empty()
    }

    /// Applies the transaction to `prefix` (whose lock the caller holds).
    /// `installed` is what conda-meta listed before (after [`recover`]).
    ///
    /// Everything to link is checked first (paths, metadata), so a bad
    /// package changes nothing. Then unlinks run dependents first, links
    /// dependencies first.
    #[tracing::instrument(level = "debug", name = "transaction", skip_all, fields(prefix = %prefix.display(), link = self.link.len(), unlink = self.unlink.len(), files = tracing::field::Empty))]
    pub fn execute(
        &self,
        prefix: &Path,
        installed: &[PrefixRecord],
        on_event: &dyn Fn(TransactionEvent<'_>),
    ) -> Result<(), PrefixError> {
        let plans = self
            .link
            .iter()
            .map(|r| self.plan(r))
            .collect::<Result<Vec<_>, _>>()?;
        // Every path of every package through the symlinks of all of them
        // and of the environment, before anything changes.
        let mut guard = LinkGuard::new(prefix);
        for plan in &plans {
            guard.declare(plan);
        }
        for plan in &plans {
            guard.check(plan)?;
        }
        let span = tracing::Span::current();
        if !span.is_disabled() && !plans.is_empty() {
            let files: usize = plans.iter().map(PackagePlan::file_count).sum();
            span.record("files", files);
            tracing::debug!(
                packages = plans.len(),
                files,
                "every path of the packages to link checked"
            );
        }

        let leaving: HashSet<String> = self.unlink.iter().map(package_id).collect();
        let owners = owners_of(installed, &leaving);

        let mut unlink: Vec<&PrefixRecord> = self.unlink.iter().collect();
        unlink = sort_dependencies_first(unlink, |r| &r.repodata_record.package_record);
        unlink.reverse();
        for record in unlink {
            self.unlink_package(prefix, record, &owners, on_event)?;
        }

        // Every package's files first, several packages at once, then,
        // dependencies first as conda does, what needs the whole environment
        // in place: byte-compiling, post-link scripts, and the records.
        let order = LinkOrder::new(plans.iter().map(|p| &p.record().package_record));
        let mut plans = plans.into_iter();
        let staged = self.stage(
            prefix,
            &mut || plans.next().map(Ok),
            &order,
            &|| Box::new(()),
            &AtomicBool::new(false),
            None,
        );
        staged.record_with(owners, on_event)
    }

    /// Unlinks one installed package: pre-unlink script, journal, record
    /// removed, files (but those `owners` still claim), journal removed.
    #[tracing::instrument(level = "debug", name = "unlink_package", skip_all, fields(package = %record.repodata_record.identifier))]
    fn unlink_package(
        &self,
        prefix: &Path,
        record: &PrefixRecord,
        owners: &HashMap<PathBuf, String>,
        on_event: &dyn Fn(TransactionEvent<'_>),
    ) -> Result<(), PrefixError> {
        let name = record.repodata_record.package_record.name.as_normalized();
        // As in conda, a failing pre-unlink script is reported, not fatal:
        // the package is removed either way.
        let kind = ScriptKind::PreUnlink;
        let skipped = || {
            on_event(TransactionEvent::ScriptSkipped {
                package: name,
                kind,
            })
        };
        match self.scripts.run(
            prefix,
            &record.repodata_record.package_record,
            kind,
            &skipped,
        ) {
            Ok(Some(text)) => on_event(TransactionEvent::Message {
                package: name,
                text: &text,
            }),
            Ok(None) => {}
            Err(err) => on_event(TransactionEvent::Warning(&format!(
                "{err}; removing the package anyway (consider telling its maintainers)"
            ))),
        }
        let paths: Vec<PathBuf> = record_paths(record).into_iter().collect();
        let journal = write_journal(prefix, &record.repodata_record, &paths)?;
        let meta = prefix
            .join("conda-meta")
            .join(record_file_name(&record.repodata_record));
        match fs_err::remove_file(&meta) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing an installed-package record")(e)),
        }
        let removed = remove_paths(prefix, &paths, |p| owners.contains_key(p))?;
        remove_journal(&journal)?;
        tracing::debug!(files = paths.len(), removed, "unlinked");
        on_event(TransactionEvent::Unlinked(&record.repodata_record));
        Ok(())
    }

    /// The link half of [`Self::execute`] for packages that are still being
    /// fetched: links the files of each package as it arrives on `arrivals`
    /// (until every sender is gone) and those of its dependencies among
    /// `expected` (every package that will arrive) are in place, `self.jobs`
    /// packages at once, each
    /// under its journal and under a permit from `permit` (taken only for
    /// the work itself, never while waiting for the next package). Nothing
    /// is recorded yet: the caller ends with [`StagedLinks::record`] once
    /// everything arrived, or [`StagedLinks::roll_back`] if fetching failed.
    ///
    /// The transaction must unlink nothing (a failed fetch must leave the
    /// environment as it was, and unlinking could not be undone); `self.link`
    /// is not used, the packages are the ones that arrive.
    ///
    /// `failed` is set as soon as a package fails (so the caller can stop
    /// fetching the others).
    #[tracing::instrument(level = "debug", skip_all, fields(prefix = %prefix.display(), packages = expected.len()))]
    pub fn link_as_fetched(
        &self,
        prefix: &Path,
        expected: &[RepoDataRecord],
        arrivals: &Mutex<Receiver<LinkRequest>>,
        permit: &(dyn Fn() -> Box<dyn Any> + Sync),
        failed: &AtomicBool,
    ) -> Result<StagedLinks, PrefixError> {
        let order = LinkOrder::new(expected.iter().map(|r| &r.package_record));
        if !self.unlink.is_empty() {
            return Err(PrefixError::Io {
                context: String::from("linking packages as they are fetched"),
                source: std::io::Error::other("the transaction also unlinks packages"),
            });
        }
        // Planned here as they arrive (reading each one's paths.json), while
        // the linking threads link the ones before.
        let mut next = || {
            let request = arrivals.lock().ok()?.recv().ok()?;
            Some(self.plan(&request))
        };
        // Each checked as it arrives against the ones before and the
        // environment, before anything of it is linked.
        let guard = LinkGuard::new(prefix);
        let staged = self.stage(prefix, &mut next, &order, permit, failed, Some(guard));
        Ok(staged)
    }

    fn plan(&self, r: &LinkRequest) -> Result<PackagePlan, PrefixError> {
        match &r.checked {
            Some(checked) => PackagePlan::checked(
                &r.package_dir,
                &r.record,
                r.requested_spec.clone(),
                self.python.as_ref(),
                checked,
            ),
            None => PackagePlan::new(
                &r.package_dir,
                &r.record,
                r.requested_spec.clone(),
                self.python.as_ref(),
            ),
        }
    }
}

/// `name-version-build` plus where it came from: two records are the same
/// installed package when these agree.
fn package_id(record: &PrefixRecord) -> String {
    record.repodata_record.url.to_string()
}

/// Orders items so that each comes after its dependencies (among the items).
fn sort_dependencies_first<T>(items: Vec<T>, record: impl Fn(&T) -> &PackageRecord) -> Vec<T> {
    let records: Vec<PackageRecord> = items.iter().map(|i| record(i).clone()).collect();
    let order = PackageRecord::sort_topologically(records);
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    for sorted in &order {
        if let Some(slot) = slots.iter_mut().find(|s| {
            s.as_ref()
                .is_some_and(|item| record(item).name == sorted.name)
        }) {
            out.extend(slot.take());
        }
    }
    // Anything the sort did not return (it should return all) keeps its place.
    out.extend(slots.into_iter().flatten());
    out
}
