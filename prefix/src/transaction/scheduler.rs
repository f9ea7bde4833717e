//! The parallel link scheduler: packages' files are linked `jobs` at a
//! time, each once what it follows in dependency order is in place
//! ([`LinkQueue`]), under its journal.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rattler_conda_types::PackageRecord;

use super::commit::StagedLinks;
use super::journal::write_journal;
use super::staged::{Outcome, PreparedRecord, Staged};
use super::Transaction;
use crate::link::{Hardlinks, KnownDirs, LinkGuard, PackagePlan};
use crate::meta::spec_package_name;
use crate::PrefixError;

impl Transaction {
    /// Links the files of every package `next` gives (until `None`), `self.jobs`
    /// at once, each once what it must follow in `order` is in place (see
    /// [`LinkQueue`]). After the first failure nothing more is linked (the rest
    /// is drained); those running finish. With a `guard`, each package is
    /// admitted by it ([`LinkGuard::admit`]) before it is handed on (without,
    /// the caller checked them all).
    pub(super) fn stage(
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
        let queue = LinkQueue::default();
        // The linking threads' spans go inside the transaction's.
        let transaction = tracing::Span::current();
        let fail = |err: PrefixError| {
            failed.store(true, Ordering::Relaxed);
            if let Ok(mut first) = first_error.lock() {
                first.get_or_insert(err);
            }
        };
        // Hands arrivals to the queue, which holds each until what it
        // must follow is in place.
        let mut dispatch = || {
            // Closed however this ends, so that no linking thread waits on.
            struct Close<'g>(&'g LinkQueue);
            impl Drop for Close<'_> {
                fn drop(&mut self) {
                    self.0.close();
                }
            }
            let _close = Close(&queue);
            while let Some(planned) = next() {
                let admitted = planned.and_then(|plan| match guard.as_mut() {
                    Some(guard) => guard.admit(&plan).map(|()| plan),
                    None => Ok(plan),
                });
                match admitted {
                    Ok(plan) => {
                        let follows = order.follows(&plan);
                        let symlinked_dirs = plan.symlinked_dirs();
                        queue.arrive(Box::new(plan), follows, symlinked_dirs);
                    }
                    // Nothing more is linked; what arrives is drained.
                    Err(err) => fail(err),
                }
            }
        };
        let work = || {
            let _in_transaction = transaction.enter();
            let mut dirs = KnownDirs::new(prefix);
            while let Some(plan) = queue.next() {
                let name = plan.record().package_record.name.as_normalized().to_owned();
                if !failed.load(Ordering::Relaxed) {
                    self.stage_one(prefix, *plan, &mut dirs, &hardlinks, permit, &staged, &fail);
                }
                queue.linked(name);
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
    #[tracing::instrument(level = "debug", name = "link_package", skip_all, fields(package = %plan.record().identifier))]
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
        match &linked {
            Ok(_) => tracing::debug!(files = plan.file_count(), "files linked"),
            Err(err) => tracing::debug!(%err, "linking failed"),
        }
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
pub(super) struct LinkOrder {
    /// For each package, the packages it depends on, directly or not, that
    /// come before it.
    follows: HashMap<String, HashSet<String>>,
}

impl LinkOrder {
    pub(super) fn new<'a>(records: impl Iterator<Item = &'a PackageRecord>) -> Self {
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
                .filter_map(|spec| spec_package_name(spec))
                .filter(|name| position.get(name).is_some_and(|&p| p < index))
            {
                if let Some(further) = follows.get(&dependency) {
                    all.extend(further.iter().cloned());
                }
                all.insert(dependency);
            }
            follows.insert(record.name.as_normalized().to_owned(), all);
        }
        Self { follows }
    }

    /// What `plan` follows.
    pub(super) fn follows(&self, plan: &PackagePlan) -> Vec<String> {
        self.follows
            .get(plan.record().package_record.name.as_normalized())
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The queue of packages to link: holds each arrived package until what
/// it follows is in place, and hands it to the linking threads.
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
pub(super) struct LinkQueue {
    state: Mutex<LinkQueueState>,
    changed: std::sync::Condvar,
}

/// The packages of a [`LinkQueue`], by how far they got.
#[derive(Default)]
pub(super) struct LinkQueueState {
    linked: HashSet<String>,
    /// The symlinks that may stand for directories, of each package that
    /// arrived.
    arrived: HashMap<String, Vec<PathBuf>>,
    /// Packages, what they still wait for, and whether they ship a symlink
    /// that may stand for a directory themselves.
    waiting: Vec<(Box<PackagePlan>, Vec<String>, bool)>,
    /// Packages free to be linked, in the order they became so.
    pub(super) ready: std::collections::VecDeque<Box<PackagePlan>>,
    running: usize,
    closed: bool,
}

impl LinkQueueState {
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

impl LinkQueue {
    /// Its state (a thread that panicked holding it leaves it usable).
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, LinkQueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A package arrived: it waits for `follows` (see [`LinkQueue`]);
    /// `symlinked_dirs` are its symlinks that may stand for directories.
    pub(super) fn arrive(
        &self,
        plan: Box<PackagePlan>,
        follows: Vec<String>,
        symlinked_dirs: Vec<PathBuf>,
    ) {
        let name = plan.record().package_record.name.as_normalized().to_owned();
        let mut state = self.lock();
        let symlinks_dirs = !symlinked_dirs.is_empty();
        state.arrived.insert(name, symlinked_dirs);
        state.waiting.push((plan, follows, symlinks_dirs));
        state.release();
        self.changed.notify_all();
    }

    /// Nothing more arrives.
    pub(super) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.release();
        self.changed.notify_all();
    }

    /// The next package to link, waiting for one; `None` when all are done.
    pub(super) fn next(&self) -> Option<Box<PackagePlan>> {
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

    /// The package `name` (handed out by [`Self::next`]) is linked.
    pub(super) fn linked(&self, name: String) {
        let mut state = self.lock();
        state.running -= 1;
        state.linked.insert(name);
        state.release();
        self.changed.notify_all();
    }
}
