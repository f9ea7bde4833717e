//! The transaction flow `create`, `install`, `update`, `remove` and
//! `env create`/`env update` run: solve → plan → show (and stop for a dry
//! run) → fetch and link under the environment's lock → history → report.
//!
//! The flows of a new environment ([`create_environment`]) and of a change
//! to an existing one ([`change_environment`]) live here, not in their
//! commands, because `env create` and `env update` run them too; the steps
//! below are what every flow (and `remove`'s) shares. The steps themselves
//! (plan, solve, fetch, link, history, the prefix lock) are `pkgr_install`'s.

mod change;
mod create;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use pkgr_install::{Installer, LinkMode, LinkScripts, LockedPrefix, Plan, SpecsKind};
use rattler_conda_types::{Channel, MatchSpec, PrefixRecord, RepoDataRecord, Subdir};

pub use change::change_environment;
pub use create::create_environment;

use crate::cache_access::JobLimitedCache;
use crate::cli::GlobalArgs;
use crate::environments;
use crate::output::{print_json, print_stdout, Progress};
use crate::render::{describe, plan_json};

/// `--copy` or not.
pub fn link_mode(copy: bool) -> LinkMode {
    if copy {
        LinkMode::Copy
    } else {
        LinkMode::Auto
    }
}

/// `--no-scripts`, else the `run_scripts` setting (`$PKGR_NO_SCRIPTS`).
pub fn link_scripts(global: &GlobalArgs, no_scripts: bool) -> LinkScripts {
    if no_scripts || !global.config.run_scripts.value {
        LinkScripts::Skip
    } else {
        LinkScripts::Run
    }
}

/// Loads the channels' repodata and solves `specs`, keeping `locked` (the
/// installed records) where the request allows.
pub async fn solve(
    shared_cache: &JobLimitedCache,
    channels: &[Channel],
    platform: Subdir,
    specs: Vec<MatchSpec>,
    locked: Vec<RepoDataRecord>,
    options: pkgr_solver::SolveOptions,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<RepoDataRecord>> {
    let spinner = progress.spinner("loading channels and solving");
    let records = Installer::new(&shared_cache.cache)
        .solve(
            channels,
            platform,
            specs,
            locked,
            options,
            progress.as_ref(),
        )
        .await?;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    Ok(records)
}

/// Takes the environment's lock, saying whom it waits for.
pub async fn lock_prefix(prefix: &Path, progress: &Arc<Progress>) -> anyhow::Result<LockedPrefix> {
    Ok(pkgr_install::lock_prefix(prefix, progress.as_ref()).await?)
}

/// Takes the lock of an existing environment, finishes an interrupted
/// transaction, and reads what is installed.
pub async fn open_environment(
    global: &GlobalArgs,
    prefix: &Path,
    progress: &Arc<Progress>,
) -> anyhow::Result<(LockedPrefix, Vec<PrefixRecord>)> {
    environments::require_environment(global, prefix)?;
    Ok(pkgr_install::open_environment(prefix, progress.as_ref()).await?)
}

/// The name of an installed package.
pub fn name_of(record: &PrefixRecord) -> &str {
    record.repodata_record.package_record.name.as_normalized()
}

/// Shows the plan (with `--json`: only for a dry run or an empty plan, which
/// end here); returns whether to apply it (not for a dry run or an empty plan).
pub fn show_plan(
    global: &GlobalArgs,
    prefix: &Path,
    plan: &Plan,
    dry_run: bool,
) -> anyhow::Result<bool> {
    if global.json {
        if dry_run || plan.is_empty() {
            print_json(&plan_json(plan, prefix, true))?;
        }
    } else if !global.quiet {
        print_stdout(&format!(
            "Environment: {}\n\n{}",
            prefix.display(),
            describe(plan)
        ));
        if dry_run && !plan.is_empty() {
            print_stdout("Dry run: nothing was changed.\n");
        }
    }
    Ok(!dry_run && !plan.is_empty())
}

/// Says what changed (`--json`: the plan in conda's shape).
pub fn report_done(
    global: &GlobalArgs,
    prefix: &Path,
    plan: &Plan,
    downloaded: Option<u64>,
    started: Instant,
) -> anyhow::Result<()> {
    if global.json {
        return print_json(&plan_json(plan, prefix, false));
    }
    if !global.quiet {
        let fetched = downloaded
            .map(|d| format!(", {} downloaded", indicatif::HumanBytes(d)))
            .unwrap_or_default();
        print_stdout(&format!(
            "Changed {}: {} removed, {} installed{fetched} in {:.1}s\n",
            prefix.display(),
            plan.unlink.len(),
            plan.link.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Appends the change to `conda-meta/history` with this process's command
/// line; `kind` is what conda writes (`update` or `remove` specs). (Every
/// other file of `conda-meta/` is read and written through
/// [`pkgr_prefix::meta`].)
pub fn record_history(
    prefix: &LockedPrefix,
    plan: &Plan,
    kind: SpecsKind,
    specs: &[String],
) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    prefix.record_history(plan, kind, specs, &command.join(" "))?;
    Ok(())
}
