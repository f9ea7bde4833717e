//! Committing a transaction: once every package's files are in place,
//! shared paths settled and modules byte-compiled, each package's post-link
//! script runs and its record is written, dependencies first; or, after a
//! failure, every package not recorded yet is rolled back.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rattler_conda_types::PrefixRecord;

use super::clobbers::{claim_paths, owners_of, settle_shared_paths};
use super::compile::compile_modules;
use super::journal::remove_journal;
use super::staged::{Outcome, PreparedRecord, Staged};
use super::{sort_dependencies_first, TransactionEvent};
use crate::link::LinkMode;
use crate::meta::write_prefix_record_json;
use crate::python::{CompiledBatch, CompiledModules};
use crate::scripts::{LinkScripts, ScriptKind};
use crate::unlink::remove_paths;
use crate::PrefixError;

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
/// ([`Transaction::link_as_fetched`](super::Transaction::link_as_fetched)):
/// each has its journal, so a kill now is rolled back by the next
/// [`recover`](super::recover).
#[must_use = "record or roll back the linked packages"]
pub struct StagedLinks {
    pub(super) prefix: PathBuf,
    pub(super) mode: LinkMode,
    pub(super) jobs: usize,
    pub(super) compiled_modules: Option<Arc<dyn CompiledModules>>,
    pub(super) scripts: LinkScripts,
    pub(super) staged: Vec<Staged>,
    pub(super) error: Option<PrefixError>,
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
    #[tracing::instrument(level = "debug", name = "commit", skip_all, fields(prefix = %self.prefix.display(), packages = self.staged.len()))]
    pub(super) fn record_with(
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
            claim_paths(
                &mut owners,
                &linked.record.files,
                &name,
                all_paths_matter,
                &shared,
                on_event,
            );
            for warning in &linked.warnings {
                on_event(TransactionEvent::Warning(warning));
            }
            if let Some(text) = &message {
                on_event(TransactionEvent::Message {
                    package: &name,
                    text,
                });
            }
            tracing::trace!(package = %record.identifier, "recorded");
            on_event(TransactionEvent::Linked(record));
        }
        tracing::debug!(packages = staged.len(), "every package recorded");
        Ok(())
    }
}

/// [`roll_back`] after a failure: the failure is what the caller reports;
/// what could not be rolled back stays journaled, for [`recover`] before the
/// next change.
fn roll_back_keeping_error<'a>(
    prefix: &Path,
    staged: impl Iterator<Item = &'a Staged>,
    owners: &HashMap<PathBuf, String>,
) {
    tracing::debug!("rolling back the packages not recorded");
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
