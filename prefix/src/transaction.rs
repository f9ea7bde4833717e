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

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use rattler_conda_types::{PackageRecord, PrefixRecord, RepoDataRecord};
use serde::{Deserialize, Serialize};

use crate::link::{
    place_file, CheckedFiles, Hardlinks, KnownDirs, LinkGuard, LinkMode, LinkedFiles,
    LinkedPackage, PackagePlan,
};
use crate::python::{CompiledBatch, CompiledModules, PythonInfo};
use crate::scripts::{LinkScripts, ScriptKind};
use crate::unlink::{record_paths, remove_paths};
use crate::{
    io, prefix_record_json, read_prefix_records, record_file_name, write_prefix_record_json,
    PrefixError,
};

const JOURNAL_SUFFIX: &str = "pkgr-partial";

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

/// A journal entry: the paths a package change may have touched.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    package: String,
    paths: Vec<PathBuf>,
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

        let leaving: HashSet<String> = self.unlink.iter().map(package_id).collect();
        let owners = owners_of(installed, &leaving);

        let mut unlink: Vec<&PrefixRecord> = self.unlink.iter().collect();
        unlink = sort_dependencies_first(unlink, |r| &r.repodata_record.package_record);
        unlink.reverse();
        for record in unlink {
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
            remove_paths(prefix, &paths, |p| owners.contains_key(p))?;
            remove_journal(&journal)?;
            on_event(TransactionEvent::Unlinked(&record.repodata_record));
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

    /// Links the files of every package `next` gives (until `None`), `self.jobs`
    /// at once, each once what it must follow in `order` is in place (see
    /// [`Gate`]). After the first failure nothing more is linked (the rest
    /// is drained); those running finish. With a `guard`, each package is
    /// admitted by it ([`LinkGuard::admit`]) before it is handed on (without,
    /// the caller checked them all).
    fn stage(
        &self,
        prefix: &Path,
        next: &mut dyn FnMut() -> Option<Result<PackagePlan, PrefixError>>,
        order: &LinkOrder,
        permit: &(dyn Fn() -> Box<dyn Any> + Sync),
        failed: &AtomicBool,
        mut guard: Option<LinkGuard>,
    ) -> StagedLinks {
        let hardlinks = Hardlinks::new();
        let staged: Mutex<Vec<Staged>> = Mutex::new(Vec::new());
        let first_error: Mutex<Option<PrefixError>> = Mutex::new(None);
        let gate = Gate::default();
        let fail = |err: PrefixError| {
            failed.store(true, Ordering::Relaxed);
            if let Ok(mut first) = first_error.lock() {
                first.get_or_insert(err);
            }
        };
        // Hands arrivals to the gate, which holds each until what it
        // must follow is in place.
        let mut dispatch = || {
            // Closed however this ends, so that no linking thread waits on.
            struct Close<'g>(&'g Gate);
            impl Drop for Close<'_> {
                fn drop(&mut self) {
                    self.0.close();
                }
            }
            let _close = Close(&gate);
            while let Some(planned) = next() {
                let admitted = planned.and_then(|plan| match guard.as_mut() {
                    Some(guard) => guard.admit(&plan).map(|()| plan),
                    None => Ok(plan),
                });
                match admitted {
                    Ok(plan) => {
                        let follows = order.follows(&plan);
                        let symlinked_dirs = plan.symlinked_dirs();
                        gate.arrive(Box::new(plan), follows, symlinked_dirs);
                    }
                    // Nothing more is linked; what arrives is drained.
                    Err(err) => fail(err),
                }
            }
        };
        let work = || {
            let mut dirs = KnownDirs::new(prefix);
            while let Some(plan) = gate.next() {
                let name = plan.record().package_record.name.as_normalized().to_owned();
                if !failed.load(Ordering::Relaxed) {
                    self.stage_one(prefix, *plan, &mut dirs, &hardlinks, permit, &staged, &fail);
                }
                gate.linked(name);
            }
        };
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.max(1) {
                scope.spawn(work);
            }
            dispatch();
        });
        StagedLinks {
            prefix: prefix.to_path_buf(),
            mode: self.mode,
            jobs: self.jobs.max(1),
            compiled_modules: self.compiled_modules.clone(),
            scripts: self.scripts,
            staged: staged.into_inner().unwrap_or_else(|e| e.into_inner()),
            error: first_error.into_inner().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Links one package's files under its journal and a permit.
    #[allow(clippy::too_many_arguments)]
    fn stage_one(
        &self,
        prefix: &Path,
        plan: PackagePlan,
        dirs: &mut KnownDirs,
        hardlinks: &Hardlinks,
        permit: &(dyn Fn() -> Box<dyn Any> + Sync),
        staged: &Mutex<Vec<Staged>>,
        fail: &dyn Fn(PrefixError),
    ) {
        let paths = plan.target_paths();
        let journal = match write_journal(prefix, plan.record(), &paths) {
            Ok(journal) => journal,
            Err(err) => return fail(err),
        };
        let guard = permit();
        let linked = plan.link_files(prefix, self.mode, dirs, hardlinks);
        drop(guard);
        let (outcome, error) = match linked {
            // Its record lists no `.pyc` files: made now, beside the
            // other packages' linking.
            Ok(files) if plan.python().is_none() => (
                Outcome::Prepared(Box::new(PreparedRecord::new(prefix, &plan, files, None))),
                None,
            ),
            Ok(files) => (Outcome::Linked(files), None),
            Err(err) => (Outcome::Failed, Some(err)),
        };
        if let Ok(mut staged) = staged.lock() {
            staged.push(Staged {
                plan,
                journal,
                paths,
                outcome,
            });
        }
        if let Some(err) = error {
            fail(err);
        }
    }
}

/// The order packages are linked in (dependencies first; a cycle is
/// broken somewhere, as conda breaks it), and what each one follows.
struct LinkOrder {
    /// For each package, the packages it depends on, directly or not, that
    /// come before it.
    follows: HashMap<String, HashSet<String>>,
}

impl LinkOrder {
    fn new<'a>(records: impl Iterator<Item = &'a PackageRecord>) -> Self {
        let records: Vec<PackageRecord> = records.cloned().collect();
        let sorted = PackageRecord::sort_topologically(records);
        let position: HashMap<String, usize> = sorted
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_normalized().to_owned(), i))
            .collect();
        let mut follows: HashMap<String, HashSet<String>> = HashMap::new();
        // In order, so that what each dependency follows is known already.
        for (index, record) in sorted.iter().enumerate() {
            let mut all = HashSet::new();
            for dependency in record
                .depends
                .iter()
                .filter_map(|spec| spec_name(spec))
                .filter(|name| position.get(*name).is_some_and(|&p| p < index))
            {
                if let Some(further) = follows.get(dependency) {
                    all.extend(further.iter().cloned());
                }
                all.insert(dependency.to_owned());
            }
            follows.insert(record.name.as_normalized().to_owned(), all);
        }
        Self { follows }
    }

    /// What `plan` follows.
    fn follows(&self, plan: &PackagePlan) -> Vec<String> {
        self.follows
            .get(plan.record().package_record.name.as_normalized())
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The package name a `depends` entry names.
fn spec_name(spec: &str) -> Option<&str> {
    spec.split(|c: char| c.is_whitespace() || "[=<>!~".contains(c))
        .next()
        .filter(|name| !name.is_empty())
}

/// Holds arrived packages until what they follow is in place, and hands
/// them to the linking threads.
///
/// A package need not wait for the packages it follows to be *linked*,
/// only for them to have *arrived* (so that their files are known): the
/// one thing linking a dependent first could get wrong is a directory
/// that the dependency ships as a symlink (`lib64 -> lib`), which the
/// dependent, putting files below it, would make a real directory. So a
/// package waits for a dependency to be linked only if that dependency
/// ships a symlink that may stand for a directory
/// ([`PackagePlan::symlinked_dirs`]) with something of the package below
/// it; and a package that ships such a symlink itself waits for what it
/// follows to be linked (their files may go below it). Files two packages
/// both ship are settled after linking.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct GateState {
    linked: HashSet<String>,
    /// The symlinks that may stand for directories, of each package that
    /// arrived.
    arrived: HashMap<String, Vec<PathBuf>>,
    /// Packages, what they still wait for, and whether they ship a symlink
    /// that may stand for a directory themselves.
    waiting: Vec<(Box<PackagePlan>, Vec<String>, bool)>,
    ready: std::collections::VecDeque<Box<PackagePlan>>,
    running: usize,
    closed: bool,
}

impl GateState {
    /// Moves every waiting package that waits for nothing more to `ready`;
    /// once nothing more can arrive and nothing runs, all of them (a
    /// package that never arrives, having failed, holds no one).
    fn release(&mut self) {
        let (linked, arrived) = (&self.linked, &self.arrived);
        for (plan, follows, symlinks_dirs) in &mut self.waiting {
            follows.retain(|name| {
                // One that ships a symlinked directory itself goes after
                // what it follows, which may have files below it.
                let in_place = linked.contains(name)
                    || !*symlinks_dirs
                        && arrived
                            .get(name)
                            .is_some_and(|dirs| !dirs.iter().any(|dir| plan.has_path_below(dir)));
                !in_place
            });
        }
        let (free, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(_, follows, _)| follows.is_empty());
        self.waiting = held;
        self.ready.extend(free.into_iter().map(|(plan, _, _)| plan));
        if self.closed && self.running == 0 && self.ready.is_empty() {
            self.ready.extend(
                std::mem::take(&mut self.waiting)
                    .into_iter()
                    .map(|(p, _, _)| p),
            );
        }
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn arrive(&self, plan: Box<PackagePlan>, follows: Vec<String>, symlinked_dirs: Vec<PathBuf>) {
        let name = plan.record().package_record.name.as_normalized().to_owned();
        let mut state = self.lock();
        let symlinks_dirs = !symlinked_dirs.is_empty();
        state.arrived.insert(name, symlinked_dirs);
        state.waiting.push((plan, follows, symlinks_dirs));
        state.release();
        self.changed.notify_all();
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.release();
        self.changed.notify_all();
    }

    /// The next package to link, waiting for one; `None` when all are done.
    fn next(&self) -> Option<Box<PackagePlan>> {
        let mut state = self.lock();
        loop {
            if let Some(plan) = state.ready.pop_front() {
                state.running += 1;
                return Some(plan);
            }
            if state.closed && state.running == 0 && state.waiting.is_empty() {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn linked(&self, name: String) {
        let mut state = self.lock();
        state.running -= 1;
        state.linked.insert(name);
        state.release();
        self.changed.notify_all();
    }
}

/// One package whose files are (being) linked, under its journal.
struct Staged {
    plan: PackagePlan,
    journal: PathBuf,
    paths: Vec<PathBuf>,
    outcome: Outcome,
}

/// How far a staged package got.
enum Outcome {
    /// Linking its files failed (or its record was taken to be written).
    Failed,
    /// Its files are in place; its record is made once its modules are
    /// byte-compiled.
    Linked(LinkedFiles),
    /// Its files are in place and its record is made, to be written once
    /// its post-link script ran.
    Prepared(Box<PreparedRecord>),
}

/// A package's record and the text of its conda-meta file, made ahead of
/// writing it (on the linking threads, or several at once after
/// byte-compiling) so that only the writes are in dependency order.
struct PreparedRecord {
    linked: LinkedPackage,
    json: Result<Vec<u8>, PrefixError>,
}

impl PreparedRecord {
    fn new(
        prefix: &Path,
        plan: &PackagePlan,
        files: LinkedFiles,
        compiled: Option<&CompiledBatch>,
    ) -> Self {
        let mut linked = plan.finish(prefix, files, compiled);
        let json = prefix_record_json(prefix, &mut linked.record);
        Self { linked, json }
    }
}

/// Makes the records of the staged packages not prepared yet (the
/// `noarch: python` ones, whose records list their `.pyc` files), over
/// `jobs` threads.
fn prepare_records(
    prefix: &Path,
    staged: &mut [Staged],
    compiled: Option<&CompiledBatch>,
    jobs: usize,
) {
    let waiting: Vec<&mut Staged> = staged
        .iter_mut()
        .filter(|s| matches!(s.outcome, Outcome::Linked(_)))
        .collect();
    if waiting.is_empty() {
        return;
    }
    let per_thread = waiting.len().div_ceil(jobs.max(1));
    let mut chunks: Vec<Vec<&mut Staged>> = Vec::new();
    let mut waiting = waiting.into_iter().peekable();
    while waiting.peek().is_some() {
        chunks.push(waiting.by_ref().take(per_thread).collect());
    }
    let prepare = |chunk: Vec<&mut Staged>| {
        for package in chunk {
            if let Outcome::Linked(files) = std::mem::replace(&mut package.outcome, Outcome::Failed)
            {
                package.outcome = Outcome::Prepared(Box::new(PreparedRecord::new(
                    prefix,
                    &package.plan,
                    files,
                    compiled,
                )));
            }
        }
    };
    std::thread::scope(|scope| {
        let mut chunks = chunks.into_iter();
        let first = chunks.next();
        for chunk in chunks {
            scope.spawn(move || prepare(chunk));
        }
        if let Some(chunk) = first {
            prepare(chunk);
        }
    });
}

/// Packages whose files are linked but not recorded yet
/// ([`Transaction::link_as_fetched`]): each has its journal, so a kill now
/// is rolled back by the next [`recover`].
#[must_use = "record or roll back the linked packages"]
pub struct StagedLinks {
    prefix: PathBuf,
    mode: LinkMode,
    jobs: usize,
    compiled_modules: Option<Arc<dyn CompiledModules>>,
    scripts: LinkScripts,
    staged: Vec<Staged>,
    error: Option<PrefixError>,
}

impl std::fmt::Debug for StagedLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedLinks")
            .field("prefix", &self.prefix)
            .field("packages", &self.staged.len())
            .field("error", &self.error)
            .finish()
    }
}

impl StagedLinks {
    /// Removes every staged package's files (keeping those that an installed
    /// package of `installed` claims) and journals. For a fetch that failed.
    pub fn roll_back(self, installed: &[PrefixRecord]) -> Result<(), PrefixError> {
        let owners = owners_of(installed, &HashSet::new());
        roll_back(&self.prefix, self.staged.iter(), &owners)
    }

    /// Finishes the transaction: where packages ship the same path, the
    /// file of the one linked last in dependency order is put in place;
    /// then, in that order, byte-compiling, post-link scripts and records.
    /// A failure (of a package's files before, or now) rolls back every
    /// package not recorded yet.
    /// `installed` is what conda-meta listed before (the transaction
    /// unlinked nothing).
    pub fn record(
        self,
        installed: &[PrefixRecord],
        on_event: &dyn Fn(TransactionEvent<'_>),
    ) -> Result<(), PrefixError> {
        let owners = owners_of(installed, &HashSet::new());
        self.record_with(owners, on_event)
    }

    /// [`Self::record`] with who owns each path of the environment now.
    fn record_with(
        self,
        owners: HashMap<PathBuf, String>,
        on_event: &dyn Fn(TransactionEvent<'_>),
    ) -> Result<(), PrefixError> {
        let StagedLinks {
            prefix,
            mode,
            jobs,
            compiled_modules,
            scripts,
            staged,
            error,
        } = self;
        let prefix = prefix.as_path();
        let mut owners = owners;
        let mut staged = sort_dependencies_first(staged, |s| &s.plan.record().package_record);
        if let Some(err) = error {
            roll_back_keeping_error(prefix, staged.iter(), &owners);
            return Err(err);
        }
        let shared = match settle_shared_paths(prefix, &staged, mode) {
            Ok(shared) => shared,
            Err(err) => {
                roll_back_keeping_error(prefix, staged.iter(), &owners);
                return Err(err);
            }
        };
        // Into a new environment, only a path that several of these
        // packages ship can be clobbered (or kept by a rollback for the
        // package recorded with it).
        let all_paths_matter = !owners.is_empty();
        let compiled = match compile_modules(
            prefix,
            &staged,
            &shared,
            mode,
            jobs,
            compiled_modules.as_deref(),
        ) {
            Ok(compiled) => compiled,
            Err(err) => {
                roll_back_keeping_error(prefix, staged.iter(), &owners);
                return Err(err);
            }
        };
        prepare_records(prefix, &mut staged, compiled.as_ref(), jobs);
        for index in 0..staged.len() {
            let Outcome::Prepared(prepared) =
                std::mem::replace(&mut staged[index].outcome, Outcome::Failed)
            else {
                continue;
            };
            let PreparedRecord { linked, json } = *prepared;
            let plan = &staged[index].plan;
            let record = plan.record();
            let name = record.package_record.name.as_normalized().to_owned();
            let kind = ScriptKind::PostLink;
            let skipped = || {
                on_event(TransactionEvent::ScriptSkipped {
                    package: &name,
                    kind,
                })
            };
            let recorded = scripts
                .run(prefix, &record.package_record, kind, &skipped)
                .and_then(|message| {
                    write_prefix_record_json(prefix, &linked.record, &json?)?;
                    Ok(message)
                });
            let message = match recorded {
                Ok(message) => message,
                Err(err) => {
                    // Roll this package back and the ones not recorded yet.
                    roll_back_keeping_error(prefix, staged[index..].iter(), &owners);
                    return Err(err);
                }
            };
            remove_journal(&staged[index].journal)?;
            for path in &linked.record.files {
                if !all_paths_matter && !shared.contains(path.as_os_str()) {
                    continue;
                }
                if let Some(previous) = owners.insert(path.clone(), name.clone()) {
                    if previous != name {
                        on_event(TransactionEvent::Clobbered {
                            path,
                            loser: &previous,
                            winner: &name,
                        });
                    }
                }
            }
            for warning in &linked.warnings {
                on_event(TransactionEvent::Warning(warning));
            }
            if let Some(text) = &message {
                on_event(TransactionEvent::Message {
                    package: &name,
                    text,
                });
            }
            on_event(TransactionEvent::Linked(record));
        }
        Ok(())
    }
}

/// Who owns each path of the environment once the packages `leaving` are
/// gone (for clobber warnings, and so that removing a package keeps paths
/// another one still ships).
fn owners_of(installed: &[PrefixRecord], leaving: &HashSet<String>) -> HashMap<PathBuf, String> {
    let mut owners: HashMap<PathBuf, String> = HashMap::new();
    for record in installed
        .iter()
        .filter(|r| !leaving.contains(&package_id(r)))
    {
        let name = record.repodata_record.package_record.name.as_normalized();
        for path in record_paths(record) {
            owners.insert(path, name.to_owned());
        }
    }
    owners
}

/// [`roll_back`] after a failure: the failure is what the caller reports;
/// what could not be rolled back stays journaled, for [`recover`] before the
/// next change.
fn roll_back_keeping_error<'a>(
    prefix: &Path,
    staged: impl Iterator<Item = &'a Staged>,
    owners: &HashMap<PathBuf, String>,
) {
    for package in staged {
        let _ = roll_back(prefix, std::iter::once(package), owners);
    }
}

/// Removes the paths of `staged` packages that no record claims, and their
/// journals.
fn roll_back<'a>(
    prefix: &Path,
    staged: impl Iterator<Item = &'a Staged>,
    owners: &HashMap<PathBuf, String>,
) -> Result<(), PrefixError> {
    for package in staged {
        remove_paths(prefix, &package.paths, |p| owners.contains_key(p))?;
        remove_journal(&package.journal)?;
    }
    Ok(())
}

/// Byte-compiles the modules of every staged `noarch: python` package at
/// once, over `jobs` python processes, once the interpreter is in place;
/// a package whose modules were compiled for this python before (kept in
/// `kept`) gets those `.pyc` files hardlinked instead, and the ones compiled
/// now are kept for next time. A module several of them ship (`shared`) is
/// always compiled here, from the one in place, and kept for none of them.
/// `None` when there is nothing to compile or no interpreter.
fn compile_modules(
    prefix: &Path,
    staged: &[Staged],
    shared: &HashSet<OsString>,
    mode: LinkMode,
    jobs: usize,
    kept: Option<&dyn CompiledModules>,
) -> Result<Option<CompiledBatch>, PrefixError> {
    let Some(python) = staged.iter().find_map(|s| s.plan.python()) else {
        return Ok(None);
    };
    if !prefix.join(&python.executable).exists() {
        return Ok(None);
    }
    // The modules are hardlinks of the cache's files, or copies with their
    // mtimes: the kept `.pyc` files (which record size and mtime of their
    // source) are valid for them. (One whose placeholder was replaced is
    // not: python compiles it again on first import, as without a `.pyc`.)
    let tag = python.pyc_tag();
    let mut reused = HashSet::new();
    let mut to_compile: Vec<PathBuf> = Vec::new();
    let mut compiled_here: Vec<&Staged> = Vec::new();
    for package in staged
        .iter()
        .filter(|s| !matches!(s.outcome, Outcome::Failed))
    {
        let (modules, clobbered): (Vec<PathBuf>, Vec<PathBuf>) = package
            .plan
            .modules()
            .into_iter()
            .partition(|m| !shared.contains(m.as_os_str()));
        // Compiled from whichever package's module is in place: kept for
        // no package (the store holds a package's whole set or nothing).
        let whole = clobbered.is_empty();
        to_compile.extend(clobbered);
        if modules.is_empty() {
            continue;
        }
        // A module with this prefix written into it compiles to a `.pyc`
        // of this environment alone: such a package is always compiled here.
        let kept = kept.filter(|_| !package.plan.has_module_with_placeholder());
        let found = kept.and_then(|kept| kept.find(package.plan.package_dir(), &tag));
        match found {
            Some(dir) => match link_kept(prefix, &dir, python, &modules, mode) {
                Ok(linked) => reused.extend(linked),
                // The store only saves time: compile instead.
                Err(_) => {
                    to_compile.extend(modules);
                    compiled_here.extend(whole.then_some(package));
                }
            },
            None => {
                to_compile.extend(modules);
                compiled_here.extend(whole.then_some(package));
            }
        }
    }
    to_compile.sort();
    to_compile.dedup();
    let mut batch = if to_compile.is_empty() {
        CompiledBatch::default()
    } else {
        crate::python::compile_pyc_batch(prefix, python, &to_compile, jobs)
    };
    if let Some(kept) = kept {
        // Only what a clean run gave: a python that failed (a module that
        // does not compile, or a broken interpreter) may have left out
        // modules that do compile elsewhere.
        if batch.error.is_none() && batch.failed.is_none() {
            for package in compiled_here
                .into_iter()
                .filter(|p| !p.plan.has_module_with_placeholder())
            {
                let pycs: Vec<PathBuf> = package
                    .plan
                    .modules()
                    .iter()
                    .filter_map(|m| python.pyc_path(m))
                    .filter(|pyc| batch.pycs.contains(pyc))
                    .collect();
                kept.keep(package.plan.package_dir(), &tag, prefix, &pycs);
            }
        }
    }
    batch.pycs.extend(reused);
    Ok(Some(batch))
}

/// Links the kept `.pyc` files of `modules` from `dir` into `prefix` as
/// any package file is linked (with `--copy`: copied); returns the ones
/// placed.
fn link_kept(
    prefix: &Path,
    dir: &Path,
    python: &PythonInfo,
    modules: &[PathBuf],
    mode: LinkMode,
) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = KnownDirs::new(prefix);
    let hardlinks = &Hardlinks::new();
    let mut placed = Vec::new();
    for pyc in modules.iter().filter_map(|m| python.pyc_path(m)) {
        let (from, to) = (dir.join(&pyc), prefix.join(&pyc));
        if let Some(parent) = to.parent() {
            dirs.ensure(parent).map_err(std::io::Error::other)?;
        }
        match place_file(&from, &to, mode, false, hardlinks) {
            Ok(_) => placed.push(pyc),
            // A module that did not compile has no `.pyc` there.
            Err(PrefixError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !from.exists() => {}
            Err(err) => return Err(std::io::Error::other(err)),
        }
    }
    Ok(placed)
}

/// Packages linked at the same time may have put a shared path in place in
/// any order: puts the file of the last of them (in `staged`'s order,
/// dependencies first) there, as linking one after the other would have.
/// Returns the paths shipped by more than one of them.
fn settle_shared_paths(
    prefix: &Path,
    staged: &[Staged],
    mode: LinkMode,
) -> Result<HashSet<OsString>, PrefixError> {
    // Keyed by the text: hashing a `Path` parses it into components.
    let mut last: HashMap<&OsStr, usize> = HashMap::new();
    let mut shared: Vec<&OsStr> = Vec::new();
    for (index, package) in staged.iter().enumerate() {
        for path in &package.paths {
            if last.insert(path.as_os_str(), index).is_some() {
                shared.push(path.as_os_str());
            }
        }
    }
    let mut dirs = KnownDirs::new(prefix);
    let hardlinks = Hardlinks::new();
    shared.sort_unstable();
    shared.dedup();
    for path in &shared {
        if let Some(&winner) = last.get(path) {
            staged[winner]
                .plan
                .relink(Path::new(path), prefix, mode, &mut dirs, &hardlinks)?;
        }
    }
    Ok(shared.into_iter().map(ToOwned::to_owned).collect())
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

fn journal_path(prefix: &Path, record: &RepoDataRecord) -> PathBuf {
    let file = record_file_name(record);
    let stem = file.strip_suffix(".json").unwrap_or(&file);
    prefix
        .join("conda-meta")
        .join(format!("{stem}.{JOURNAL_SUFFIX}"))
}

fn write_journal(
    prefix: &Path,
    record: &RepoDataRecord,
    paths: &[PathBuf],
) -> Result<PathBuf, PrefixError> {
    let path = journal_path(prefix, record);
    let journal = Journal {
        package: record.identifier.to_string(),
        paths: paths.to_vec(),
    };
    let text = serde_json::to_vec(&journal).map_err(|e| PrefixError::Io {
        context: format!("serializing {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    let meta = prefix.join("conda-meta");
    let mut file = tempfile::NamedTempFile::new_in(&meta).map_err(io("writing conda-meta"))?;
    // Written whole under a temp name and renamed: a process killed at any
    // point leaves a complete journal or none. Not synced (one fsync per
    // package was a sixth of a warm create): like the records and the linked
    // files, a journal may be lost or empty after a power loss or kernel
    // crash, and then the files it listed stay behind unclaimed.
    file.write_all(&text)
        .map_err(io(format!("writing {}", path.display())))?;
    file.persist(&path)
        .map_err(|e| io(format!("writing {}", path.display()))(e.error))?;
    Ok(path)
}

fn remove_journal(path: &Path) -> Result<(), PrefixError> {
    fs_err::remove_file(path).map_err(io("removing a transaction journal"))
}

/// Finishes what an interrupted transaction left: for each journal entry,
/// removes the paths it lists that no installed-package record claims, then
/// the entry. Returns the packages it cleaned up after. The caller holds the
/// prefix lock.
pub fn recover(prefix: &Path) -> Result<Vec<String>, PrefixError> {
    let meta = prefix.join("conda-meta");
    let Ok(entries) = fs_err::read_dir(&meta) else {
        return Ok(Vec::new());
    };
    let journals: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == JOURNAL_SUFFIX))
        .collect();
    if journals.is_empty() {
        return Ok(Vec::new());
    }
    let owned: HashSet<PathBuf> = read_prefix_records(prefix)?
        .iter()
        .flat_map(record_paths)
        .collect();
    let mut recovered = Vec::new();
    for path in journals {
        let text = fs_err::read(&path).map_err(io("reading a transaction journal"))?;
        // A journal emptied by a power loss lists nothing usable (journals
        // are not synced): what it listed stays, unclaimed.
        if let Ok(journal) = serde_json::from_slice::<Journal>(&text) {
            remove_paths(prefix, &journal.paths, |p| owned.contains(p))?;
            recovered.push(journal.package);
        }
        remove_journal(&path)?;
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rattler_conda_types::package::PathsJson;
    use std::sync::atomic::AtomicUsize;

    fn repodata_record(name: &str) -> RepoDataRecord {
        crate::test_record(name)
    }

    /// An installed-package record claiming `files`, written to conda-meta.
    fn install_record(prefix: &Path, name: &str, files: &[&str]) -> PrefixRecord {
        let entries = files
            .iter()
            .map(|f| {
                serde_json::from_value(serde_json::json!({"_path": f, "path_type": "hardlink"}))
                    .unwrap()
            })
            .collect();
        let record = PrefixRecord::from_repodata_record(repodata_record(name), entries);
        crate::write_prefix_record(prefix, &record).unwrap();
        record
    }

    fn touch(prefix: &Path, path: &str) {
        let full = prefix.join(path);
        fs_err::create_dir_all(full.parent().unwrap()).unwrap();
        fs_err::write(full, path).unwrap();
    }

    fn journals(prefix: &Path) -> Vec<PathBuf> {
        fs_err::read_dir(prefix.join("conda-meta"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == JOURNAL_SUFFIX))
            .collect()
    }

    /// An extracted package with one file per `(path, contents)`.
    fn extracted_package(dir: &Path, name: &str, files: &[(&str, &str)]) {
        let paths: Vec<serde_json::Value> = files
            .iter()
            .map(|(path, contents)| {
                touch(dir, path);
                fs_err::write(dir.join(path), contents).unwrap();
                serde_json::json!({"_path": path, "path_type": "hardlink"})
            })
            .collect();
        fs_err::create_dir_all(dir.join("info")).unwrap();
        let index = serde_json::json!({
            "name": name, "version": "1.0", "build": "0", "build_number": 0, "subdir": "linux-64"
        });
        fs_err::write(dir.join("info/index.json"), index.to_string()).unwrap();
        let paths = serde_json::json!({"paths_version": 1, "paths": paths});
        fs_err::write(dir.join("info/paths.json"), paths.to_string()).unwrap();
    }

    #[test]
    fn recover_without_journals_changes_nothing() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        // No conda-meta at all: a new environment.
        assert!(recover(p).unwrap().is_empty());
        touch(p, "bin/unclaimed");
        install_record(p, "foo", &["bin/foo"]);
        assert!(recover(p).unwrap().is_empty());
        assert!(p.join("bin/unclaimed").is_file());
    }

    #[test]
    fn recover_removes_journaled_paths_no_record_claims() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        install_record(p, "bar", &["lib/shared.so", "bin/bar"]);
        for path in ["bin/bar", "bin/foo", "lib/shared.so", "lib/foo/mod.txt"] {
            touch(p, path);
        }
        // A kill while `foo` was being linked: its files are (partly) there,
        // its record is not.
        let journal = write_journal(
            p,
            &repodata_record("foo"),
            &[
                "bin/foo",
                "lib/shared.so",
                "lib/foo/mod.txt",
                "lib/foo/never-written",
            ]
            .map(PathBuf::from),
        )
        .unwrap();
        assert_eq!(journal, p.join("conda-meta").join("foo-1.0-0.pkgr-partial"));

        assert_eq!(recover(p).unwrap(), vec!["foo-1.0-0.conda".to_owned()]);
        assert!(!p.join("bin/foo").exists());
        assert!(!p.join("lib/foo").exists());
        assert!(p.join("lib/shared.so").is_file(), "claimed by bar's record");
        assert!(p.join("bin/bar").is_file());
        assert!(journals(p).is_empty());
        assert!(p.join("conda-meta/bar-1.0-0.json").is_file());
        // Done once: a second recovery finds nothing.
        assert!(recover(p).unwrap().is_empty());
    }

    #[test]
    fn recover_keeps_the_files_of_a_package_whose_record_was_written() {
        // A kill after the record was written but before the journal was
        // removed: the package is installed, its files stay.
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        install_record(p, "foo", &["bin/foo"]);
        touch(p, "bin/foo");
        write_journal(p, &repodata_record("foo"), &[PathBuf::from("bin/foo")]).unwrap();
        assert_eq!(recover(p).unwrap(), vec!["foo-1.0-0.conda".to_owned()]);
        assert!(p.join("bin/foo").is_file());
        assert!(journals(p).is_empty());
    }

    #[test]
    fn recover_drops_an_unreadable_journal_and_removes_nothing() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        touch(p, "bin/foo");
        touch(p, "conda-meta/foo-1.0-0.pkgr-partial");
        fs_err::write(
            p.join("conda-meta/foo-1.0-0.pkgr-partial"),
            b"{\"package\": \"fo",
        )
        .unwrap();
        assert!(recover(p).unwrap().is_empty());
        assert!(journals(p).is_empty());
        assert!(p.join("bin/foo").is_file());
    }

    #[test]
    fn recover_never_follows_a_journal_out_of_the_prefix() {
        let root = tempfile::tempdir().unwrap();
        touch(root.path(), "outside.txt");
        let p = root.path().join("env");
        touch(&p, "conda-meta/x");
        let journal = Journal {
            package: "evil-1.0-0.conda".to_owned(),
            paths: vec![
                PathBuf::from("../outside.txt"),
                root.path().join("outside.txt"),
            ],
        };
        fs_err::write(
            p.join("conda-meta/evil-1.0-0.pkgr-partial"),
            serde_json::to_vec(&journal).unwrap(),
        )
        .unwrap();
        assert_eq!(recover(&p).unwrap(), vec!["evil-1.0-0.conda".to_owned()]);
        assert!(root.path().join("outside.txt").is_file());
    }

    #[test]
    fn execute_links_then_unlinks_and_leaves_no_journal() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        extracted_package(&package_dir, "foo", &[("bin/foo", "#!/bin/sh\n")]);
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        let install = Transaction {
            link: vec![LinkRequest {
                record: repodata_record("foo"),
                package_dir,
                requested_spec: Some("foo".to_owned()),
                checked: None,
            }],
            ..Transaction::default()
        };
        let linked = std::cell::RefCell::new(Vec::new());
        install
            .execute(&prefix, &[], &|event| {
                if let TransactionEvent::Linked(r) = event {
                    linked.borrow_mut().push(r.identifier.to_string());
                }
            })
            .unwrap();
        assert_eq!(*linked.borrow(), ["foo-1.0-0.conda"]);
        assert!(prefix.join("bin/foo").is_file());
        assert!(journals(&prefix).is_empty());
        let installed = read_prefix_records(&prefix).unwrap();
        assert_eq!(installed.len(), 1);

        let remove = Transaction {
            unlink: installed.clone(),
            ..Transaction::default()
        };
        remove.execute(&prefix, &installed, &|_| {}).unwrap();
        assert!(!prefix.join("bin").exists());
        assert!(read_prefix_records(&prefix).unwrap().is_empty());
        assert!(journals(&prefix).is_empty());
    }

    #[test]
    fn execute_rolls_back_a_package_whose_post_link_script_fails() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        extracted_package(
            &package_dir,
            "foo",
            &[
                ("bin/foo", "tool"),
                ("bin/.foo-post-link.sh", "echo broken >&2\nexit 1\n"),
            ],
        );
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        let install = Transaction {
            link: vec![LinkRequest {
                record: repodata_record("foo"),
                package_dir,
                requested_spec: None,
                checked: None,
            }],
            ..Transaction::default()
        };
        let err = install.execute(&prefix, &[], &|_| {}).unwrap_err();
        assert!(
            matches!(&err, PrefixError::LinkScript { detail, .. } if detail.contains("broken")),
            "{err:?}"
        );
        assert!(!prefix.join("bin").exists(), "rolled back");
        assert!(read_prefix_records(&prefix).unwrap().is_empty());
        assert!(journals(&prefix).is_empty());
    }
    #[test]
    fn a_path_two_packages_spell_differently_is_one_path() {
        let root = tempfile::tempdir().unwrap();
        let a_dir = root.path().join("pkgs/a-1.0-0");
        extracted_package(&a_dir, "a", &[("share/x", "a")]);
        let b_dir = root.path().join("pkgs/b-1.0-0");
        extracted_package(
            &b_dir,
            "b",
            &[("share/./x", "b"), ("bin/.b-post-link.sh", "exit 1\n")],
        );
        let mut b = repodata_record("b");
        b.package_record.depends = vec![String::from("a")];
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        let clobbered = Mutex::new(Vec::new());
        let install = Transaction {
            link: vec![
                LinkRequest {
                    record: repodata_record("a"),
                    package_dir: a_dir,
                    requested_spec: None,
                    checked: None,
                },
                LinkRequest {
                    record: b,
                    package_dir: b_dir,
                    requested_spec: None,
                    checked: None,
                },
            ],
            jobs: 2,
            ..Transaction::default()
        };
        let err = install
            .execute(&prefix, &[], &|event| {
                if let TransactionEvent::Clobbered { path, .. } = event {
                    clobbered.lock().unwrap().push(path.to_path_buf());
                }
            })
            .unwrap_err();
        assert!(matches!(err, PrefixError::LinkScript { .. }), "{err:?}");
        let recorded: Vec<String> = read_prefix_records(&prefix)
            .unwrap()
            .iter()
            .map(|r| {
                r.repodata_record
                    .package_record
                    .name
                    .as_normalized()
                    .to_owned()
            })
            .collect();
        assert_eq!(recorded, ["a"]);
        assert!(
            prefix.join("share/x").is_file(),
            "b's rollback removed the file recorded a ships"
        );
        // b failed before it was recorded: nothing was clobbered.
        assert!(clobbered.into_inner().unwrap().is_empty());
    }

    #[test]
    fn a_failing_pre_unlink_script_is_a_warning_and_the_package_goes() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        extracted_package(
            &package_dir,
            "foo",
            &[
                ("bin/foo", "tool"),
                (
                    "bin/.foo-pre-unlink.sh",
                    "echo cannot-clean-up >&2\nexit 4\n",
                ),
            ],
        );
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        let install = Transaction {
            link: vec![LinkRequest {
                record: repodata_record("foo"),
                package_dir,
                requested_spec: None,
                checked: None,
            }],
            ..Transaction::default()
        };
        install.execute(&prefix, &[], &|_| {}).unwrap();
        let installed = read_prefix_records(&prefix).unwrap();
        let remove = Transaction {
            unlink: installed.clone(),
            ..Transaction::default()
        };
        let warnings = std::cell::RefCell::new(Vec::new());
        remove
            .execute(&prefix, &installed, &|event| {
                if let TransactionEvent::Warning(text) = event {
                    warnings.borrow_mut().push(text.to_owned());
                }
            })
            .unwrap();
        let warnings = warnings.into_inner();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("pre-unlink") && warnings[0].contains("cannot-clean-up"),
            "{warnings:?}"
        );
        assert!(!prefix.join("bin").exists(), "removed anyway");
        assert!(read_prefix_records(&prefix).unwrap().is_empty());
    }

    /// `count` packages `pkg0..` with a few files each, one `share/same`
    /// shipped by all of them (with different contents).
    fn many_packages(root: &Path, count: usize) -> Vec<LinkRequest> {
        (0..count)
            .map(|i| {
                let name = format!("pkg{i}");
                let dir = root.join(format!("pkgs/{name}-1.0-0"));
                let own: Vec<(String, String)> = (0..20)
                    .map(|f| {
                        (
                            format!("lib/{name}/sub{}/f{f}", f % 3),
                            format!("{name} {f}"),
                        )
                    })
                    .chain([(String::from("share/same"), name.clone())])
                    .collect();
                let files: Vec<(&str, &str)> =
                    own.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
                extracted_package(&dir, &name, &files);
                let paths =
                    PathsJson::from_package_directory_with_deprecated_fallback(&dir).unwrap();
                LinkRequest {
                    record: repodata_record(&name),
                    package_dir: dir,
                    requested_spec: None,
                    checked: Some(CheckedFiles {
                        paths: Arc::new(paths),
                        symlinks: Arc::default(),
                    }),
                }
            })
            .collect()
    }

    #[test]
    fn packages_link_concurrently_and_a_shared_path_goes_to_the_last() {
        let root = tempfile::tempdir().unwrap();
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        let install = Transaction {
            link: many_packages(root.path(), 8),
            jobs: 3,
            ..Transaction::default()
        };
        let linked = std::cell::RefCell::new(Vec::new());
        let clobbered = std::cell::RefCell::new(Vec::new());
        install
            .execute(&prefix, &[], &|event| match event {
                TransactionEvent::Linked(r) => linked
                    .borrow_mut()
                    .push(r.package_record.name.as_normalized().to_owned()),
                TransactionEvent::Clobbered { winner, .. } => {
                    clobbered.borrow_mut().push(winner.to_owned());
                }
                _ => {}
            })
            .unwrap();
        let linked = linked.into_inner();
        assert_eq!(linked.len(), 8);
        for i in 0..8 {
            for f in 0..20 {
                let path = prefix.join(format!("lib/pkg{i}/sub{}/f{f}", f % 3));
                assert_eq!(fs_err::read_to_string(path).unwrap(), format!("pkg{i} {f}"));
            }
        }
        // The last linked wins, and each later one was said to win.
        let last = linked.last().unwrap();
        assert_eq!(
            &fs_err::read_to_string(prefix.join("share/same")).unwrap(),
            last
        );
        assert_eq!(clobbered.into_inner(), linked[1..].to_vec());
        assert_eq!(read_prefix_records(&prefix).unwrap().len(), 8);
        assert!(journals(&prefix).is_empty());
    }

    #[test]
    fn a_package_failing_beside_others_rolls_every_unrecorded_one_back() {
        let root = tempfile::tempdir().unwrap();
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        let mut link = many_packages(root.path(), 8);
        // pkg5 is damaged after it was checked: a file is gone.
        fs_err::remove_file(link[5].package_dir.join("lib/pkg5/sub1/f7")).unwrap();
        // Distinct paths for all, so they link in parallel.
        for request in &mut link {
            let paths = request.package_dir.join("info/paths.json");
            let text = fs_err::read_to_string(&paths).unwrap();
            let name = request
                .record
                .package_record
                .name
                .as_normalized()
                .to_owned();
            fs_err::write(&paths, text.replace("share/same", &format!("share/{name}"))).unwrap();
            fs_err::rename(
                request.package_dir.join("share/same"),
                request.package_dir.join(format!("share/{name}")),
            )
            .unwrap();
            // As the cache would have checked it.
            request.checked = Some(CheckedFiles {
                paths: Arc::new(
                    PathsJson::from_package_directory_with_deprecated_fallback(
                        &request.package_dir,
                    )
                    .unwrap(),
                ),
                symlinks: Arc::default(),
            });
        }
        let install = Transaction {
            link,
            jobs: 3,
            ..Transaction::default()
        };
        let err = install.execute(&prefix, &[], &|_| {}).unwrap_err();
        assert!(err.to_string().contains("f7"), "{err}");
        assert!(read_prefix_records(&prefix).unwrap().is_empty());
        assert!(journals(&prefix).is_empty());
        let left: Vec<_> = walk(&prefix)
            .into_iter()
            .filter(|p| !p.starts_with("conda-meta"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn packages_link_as_they_arrive_under_permits_and_roll_back_or_record() {
        for roll_back in [false, true] {
            let root = tempfile::tempdir().unwrap();
            let prefix = root.path().join("env");
            fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
            let requests = many_packages(root.path(), 6);
            let expected: Vec<RepoDataRecord> = requests.iter().map(|r| r.record.clone()).collect();
            let transaction = Transaction {
                jobs: 2,
                ..Transaction::default()
            };
            let (arrivals, receiver) = std::sync::mpsc::channel();
            let feeder = std::thread::spawn(move || {
                for request in requests {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    arrivals.send(request).unwrap();
                }
            });
            let holding = std::sync::Arc::new(AtomicUsize::new(0));
            let most = std::sync::Arc::new(AtomicUsize::new(0));
            struct Held(std::sync::Arc<AtomicUsize>);
            impl Drop for Held {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let permit = || -> Box<dyn Any> {
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                Box::new(Held(holding.clone()))
            };
            let staged = transaction
                .link_as_fetched(
                    &prefix,
                    &expected,
                    &Mutex::new(receiver),
                    &permit,
                    &AtomicBool::new(false),
                )
                .unwrap();
            feeder.join().unwrap();
            assert!(most.load(Ordering::SeqCst) <= 2);
            assert_eq!(holding.load(Ordering::SeqCst), 0, "every permit given back");
            // Linked, not recorded, under journals.
            assert!(prefix.join("lib/pkg3/sub0/f0").is_file());
            assert!(read_prefix_records(&prefix).unwrap().is_empty());
            assert_eq!(journals(&prefix).len(), 6);
            if roll_back {
                staged.roll_back(&[]).unwrap();
                assert!(journals(&prefix).is_empty());
                let left: Vec<_> = walk(&prefix)
                    .into_iter()
                    .filter(|p| !p.starts_with("conda-meta"))
                    .collect();
                assert!(left.is_empty(), "left behind: {left:?}");
            } else {
                let linked = std::cell::RefCell::new(Vec::new());
                staged
                    .record(&[], &|event| {
                        if let TransactionEvent::Linked(r) = event {
                            linked
                                .borrow_mut()
                                .push(r.package_record.name.as_normalized().to_owned());
                        }
                    })
                    .unwrap();
                let linked = linked.into_inner();
                assert_eq!(read_prefix_records(&prefix).unwrap().len(), 6);
                assert!(journals(&prefix).is_empty());
                // Whatever order they arrived and linked in, the shared path
                // holds the file of the last one in link order.
                assert_eq!(
                    &fs_err::read_to_string(prefix.join("share/same")).unwrap(),
                    linked.last().unwrap()
                );
            }
        }
    }

    #[test]
    fn a_dependent_arriving_first_waits_for_the_symlinked_directory_it_uses() {
        let root = tempfile::tempdir().unwrap();
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        // base ships lib/ and `lib64 -> lib`; app (which depends on it) ships
        // lib64/app.so.
        let base_dir = root.path().join("pkgs/base-1.0-0");
        extracted_package(&base_dir, "base", &[("lib/base.so", "base")]);
        std::os::unix::fs::symlink("lib", base_dir.join("lib64")).unwrap();
        let paths = serde_json::json!({"paths_version": 1, "paths": [
            {"_path": "lib/base.so", "path_type": "hardlink"},
            {"_path": "lib64", "path_type": "softlink"},
        ]});
        fs_err::write(base_dir.join("info/paths.json"), paths.to_string()).unwrap();
        let app_dir = root.path().join("pkgs/app-1.0-0");
        extracted_package(&app_dir, "app", &[("lib64/app.so", "app")]);
        let base = repodata_record("base");
        let mut app = repodata_record("app");
        app.package_record.depends = vec![String::from("base >=1")];
        let expected = vec![base.clone(), app.clone()];
        let transaction = Transaction {
            jobs: 2,
            ..Transaction::default()
        };
        let (arrivals, receiver) = std::sync::mpsc::channel();
        // The dependent arrives first (its download finished first).
        arrivals
            .send(LinkRequest {
                record: app,
                package_dir: app_dir,
                requested_spec: None,
                checked: None,
            })
            .unwrap();
        let feeder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            arrivals
                .send(LinkRequest {
                    record: base,
                    package_dir: base_dir,
                    requested_spec: None,
                    checked: None,
                })
                .unwrap();
        });
        let staged = transaction
            .link_as_fetched(
                &prefix,
                &expected,
                &Mutex::new(receiver),
                &|| Box::new(()),
                &AtomicBool::new(false),
            )
            .unwrap();
        feeder.join().unwrap();
        staged.record(&[], &|_| {}).unwrap();
        assert!(fs_err::symlink_metadata(prefix.join("lib64"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            fs_err::read_to_string(prefix.join("lib/app.so")).unwrap(),
            "app"
        );
        assert_eq!(read_prefix_records(&prefix).unwrap().len(), 2);
    }

    #[test]
    fn a_dependent_waits_for_its_dependency_to_arrive_and_only_a_symlinked_directory_to_be_linked()
    {
        let root = tempfile::tempdir().unwrap();
        let plan = |name: &str, files: &[(&str, &str)], depends: &[&str]| {
            let dir = root.path().join(format!("pkgs/{name}-1.0-0"));
            extracted_package(&dir, name, files);
            let mut record = repodata_record(name);
            record.package_record.depends = depends.iter().map(|d| (*d).to_owned()).collect();
            Box::new(PackagePlan::new(&dir, &record, None, None).unwrap())
        };
        let ready = |gate: &Gate| -> Vec<String> {
            gate.lock()
                .ready
                .iter()
                .map(|p| p.record().package_record.name.as_normalized().to_owned())
                .collect()
        };
        // Only base is ready; once it is linked, app is.
        let app_waits_until_base_is_linked = |gate: &Gate| {
            assert_eq!(ready(gate), ["base"]);
            let next = gate.next().unwrap();
            assert_eq!(next.record().package_record.name.as_normalized(), "base");
            gate.linked(String::from("base"));
            assert_eq!(ready(gate), ["app"]);
        };
        let base = plan("base", &[("lib/base.so", "base")], &[]);
        let app = plan("app", &[("lib64/app.so", "app")], &["base >=1"]);
        let order = LinkOrder::new(
            [base.record(), app.record()]
                .map(|r| &r.package_record)
                .into_iter(),
        );
        assert_eq!(order.follows(&app), vec![String::from("base")]);
        assert!(order.follows(&base).is_empty());

        // base ships no symlinked directory: app goes once base arrived,
        // before base is linked.
        let gate = Gate::default();
        gate.arrive(app, vec![String::from("base")], Vec::new());
        assert!(ready(&gate).is_empty(), "base's files are not known yet");
        gate.arrive(base, Vec::new(), Vec::new());
        assert_eq!(ready(&gate), ["app", "base"]);

        // base ships `lib64` as a symlink, app files below it: app waits
        // until base is linked.
        let base = plan("base", &[("lib/base.so", "base")], &[]);
        let app = plan("app", &[("lib64/app.so", "app")], &["base >=1"]);
        let gate = Gate::default();
        gate.arrive(app, vec![String::from("base")], Vec::new());
        gate.arrive(base, Vec::new(), vec![PathBuf::from("lib64")]);
        app_waits_until_base_is_linked(&gate);

        // app ships `lib64` as a symlink itself: it goes once base, which
        // may have files below it, is linked.
        let base = plan("base", &[("lib64/base.so", "base")], &[]);
        let app = plan("app", &[("lib/app.so", "app")], &["base >=1"]);
        let gate = Gate::default();
        gate.arrive(base, Vec::new(), Vec::new());
        gate.arrive(
            app,
            vec![String::from("base")],
            vec![PathBuf::from("lib64")],
        );
        app_waits_until_base_is_linked(&gate);

        // A symlink app puts nothing below holds nothing.
        let base = plan("base", &[("lib/base.so", "base")], &[]);
        let app = plan("app", &[("lib64/app.so", "app")], &["base >=1"]);
        let gate = Gate::default();
        gate.arrive(app, vec![String::from("base")], Vec::new());
        gate.arrive(base, Vec::new(), vec![PathBuf::from("lib32")]);
        assert_eq!(ready(&gate), ["app", "base"]);
    }

    #[test]
    fn symlinks_that_may_stand_for_directories_are_told_from_links_to_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("pkgs/base-1.0-0");
        extracted_package(&dir, "base", &[("lib/libz.so.1", "z")]);
        std::os::unix::fs::symlink("lib", dir.join("lib64")).unwrap();
        std::os::unix::fs::symlink("libz.so.1", dir.join("lib/libz.so")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", dir.join("lib/other")).unwrap();
        let paths = serde_json::json!({"paths_version": 1, "paths": [
            {"_path": "lib/libz.so.1", "path_type": "hardlink"},
            {"_path": "lib/libz.so", "path_type": "softlink"},
            {"_path": "lib/other", "path_type": "softlink"},
            {"_path": "lib64", "path_type": "softlink"},
        ]});
        fs_err::write(dir.join("info/paths.json"), paths.to_string()).unwrap();
        let plan = PackagePlan::new(&dir, &repodata_record("base"), None, None).unwrap();
        let mut dirs = plan.symlinked_dirs();
        dirs.sort();
        // A link to a file is not one; a link to nothing in the package may be.
        assert_eq!(dirs, [PathBuf::from("lib/other"), PathBuf::from("lib64")]);
        assert!(plan.has_path_below(Path::new("lib")));
        assert!(!plan.has_path_below(Path::new("lib64")));
        assert!(!plan.has_path_below(Path::new("lib/libz.so.1")));
    }

    /// Every file below `root`, relative.
    fn walk(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs_err::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        out
    }
}
