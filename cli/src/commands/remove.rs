//! `pkgr remove`: packages out of an environment (and, as conda does, what
//! only they needed), in one transaction under its lock.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use pkgr_install::{requested_spec_of, Change, Plan, SpecsKind};
use pkgr_prefix::meta::spec_package_name;
use pkgr_solver::dependency_name;
use rattler_conda_types::{PrefixRecord, RepoDataRecord};

use crate::cache_access::JobLimitedCache;
use crate::cli::{GlobalArgs, RemoveArgs};
use crate::environments;
use crate::output::Progress;
use crate::transaction::record_history;
use crate::transaction::{
    link_mode, link_scripts, name_of, open_environment, report_done, show_plan,
};
use pkgr_prefix::meta::read_requested_specs;

/// `pkgr remove`.
pub async fn run(global: &GlobalArgs, args: RemoveArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let prefix = environments::prefix_or_active(global, &args.target)?;
    let (prefix_lock, installed) = open_environment(global, &prefix, &progress).await?;
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for name in &args.packages {
        let Some(record) = installed.iter().find(|r| name_of(r) == name.as_str()) else {
            bail!("{name} is not installed in {}", prefix.display());
        };
        names.insert(name_of(record));
    }
    let (mut leaving, mut staying): (Vec<PrefixRecord>, Vec<PrefixRecord>) = installed
        .iter()
        .cloned()
        .partition(|r| names.contains(name_of(r)));
    if !args.force {
        let broken: Vec<String> = staying
            .iter()
            .flat_map(|r| {
                r.repodata_record
                    .package_record
                    .depends
                    .iter()
                    .filter(|dep| names.contains(dependency_name(dep)))
                    .map(move |dep| format!("{} depends on `{dep}`", name_of(r)))
            })
            .collect();
        if !broken.is_empty() {
            bail!(
                "removing {} would break what stays in {}:\n  {}\nremove those too, or pass --force to remove anyway",
                names.iter().copied().collect::<Vec<_>>().join(", "),
                prefix.display(),
                broken.join("\n  ")
            );
        }
    }
    if !args.force {
        // As conda does: what only the removed packages needed goes too.
        let orphans = orphans_after_removal(&prefix, &staying, &names)?;
        if !orphans.is_empty() {
            let (gone, kept): (Vec<PrefixRecord>, Vec<PrefixRecord>) = staying
                .into_iter()
                .partition(|r| orphans.contains(name_of(r)));
            leaving.extend(gone);
            staying = kept;
        }
    }
    let plan = Plan {
        unlink: leaving,
        link: Vec::new(),
    };
    if !show_plan(global, &prefix, &plan, args.dry_run)? {
        return Ok(());
    }
    let staying_records: Vec<RepoDataRecord> =
        staying.iter().map(|r| r.repodata_record.clone()).collect();
    let shared_cache = JobLimitedCache::open(global, &progress)?;
    shared_cache
        .installer(link_mode(false))
        .with_link_scripts(link_scripts(global, args.no_scripts))
        .install(
            &prefix_lock,
            Change::new(&installed, &staying_records, &plan),
            progress.clone(),
        )
        .await?;
    record_history(&prefix_lock, &plan, SpecsKind::Remove, &args.packages)?;
    drop(prefix_lock);
    report_done(global, &prefix, &plan, None, started)
}

/// The packages of `staying` that nothing asked for needs once `removed`
/// are gone: the roots are the specs the user asked for (from
/// `conda-meta/history`, else the records' `requested_spec`), and every
/// package they depend on, directly or not, stays. Without any record of
/// what was asked for, nothing is pruned (pkgr would be guessing).
fn orphans_after_removal(
    prefix: &Path,
    staying: &[PrefixRecord],
    removed: &BTreeSet<&str>,
) -> anyhow::Result<BTreeSet<String>> {
    let mut roots: BTreeSet<String> = read_requested_specs(prefix)?
        .iter()
        .filter_map(|s| spec_package_name(s))
        .collect();
    roots.extend(
        staying
            .iter()
            .filter(|r| requested_spec_of(r).is_some())
            .map(|r| name_of(r).to_owned()),
    );
    if roots.is_empty() {
        return Ok(BTreeSet::new());
    }
    roots.retain(|n| !removed.contains(n.as_str()));
    let mut needed: BTreeSet<String> = BTreeSet::new();
    let mut frontier: Vec<String> = roots.into_iter().collect();
    while let Some(name) = frontier.pop() {
        if !needed.insert(name.clone()) {
            continue;
        }
        if let Some(record) = staying.iter().find(|r| name_of(r) == name) {
            for dep in &record.repodata_record.package_record.depends {
                frontier.push(dependency_name(dep).to_owned());
            }
        }
    }
    Ok(staying
        .iter()
        .map(|r| name_of(r).to_owned())
        .filter(|n| !needed.contains(n))
        .collect())
}
