//! `pkgr install`, `pkgr update` and `pkgr remove`: changing an existing
//! environment in one transaction under its lock.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use rattler_conda_types::{
    Channel, MatchSpec, PackageName, ParseStrictness, PrefixRecord, RepoDataRecord, Subdir,
};

use crate::cli::{GlobalArgs, InstallArgs, RemoveArgs};
use crate::create::{link_mode, link_scripts, parse_channels, parse_specs, solve};
use crate::output::{print_stdout, Progress};
use crate::paths;
use crate::transact::{describe, plan_json, print_json, record_history, Workspace};
use pkgr_install::{requested_spec_of, Change, InstallError, LockedPrefix, Plan, SpecsKind};

/// Takes the lock of an existing environment, finishes an interrupted
/// transaction, and reads what is installed.
async fn open_environment(
    global: &GlobalArgs,
    prefix: &Path,
    progress: &Arc<Progress>,
) -> anyhow::Result<(LockedPrefix, Vec<PrefixRecord>)> {
    paths::require_environment(global, prefix)?;
    Ok(pkgr_install::open_environment(prefix, progress.as_ref()).await?)
}

fn name_of(record: &PrefixRecord) -> &str {
    record.repodata_record.package_record.name.as_normalized()
}

/// `pkgr install` (`update == false`) and `pkgr update`.
pub async fn install(global: &GlobalArgs, args: InstallArgs, update: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let prefix = paths::prefix_or_active(global, &args.target)?;
    if !update && args.all {
        bail!("--all goes with `pkgr update`");
    }
    let mut args = args;
    if !args.files.is_empty() {
        let platform = crate::create::parse_platform(None)?;
        let from_files = crate::files::read(&args.files, platform, None, &progress)?;
        if let Some((file, _)) = &from_files.locked {
            bail!(
                "{} is a lock file: it is installed exactly into a new environment with `pkgr create -f {}` (`-y` to replace one)",
                file.display(),
                file.display()
            );
        }
        if !from_files.variables.is_empty() {
            progress.warn("the `variables:` of an environment file are set by `pkgr create -f` only; ignored here");
        }
        let mut specs = from_files.specs;
        specs.append(&mut args.specs);
        args.specs = specs;
        for channel in from_files.channels {
            if !args.channels.contains(&channel) {
                args.channels.push(channel);
            }
        }
    }
    if args.specs.is_empty() && !(update && args.all) {
        bail!(if update {
            "name the packages to update, or pass --all"
        } else {
            "name the packages to install"
        });
    }
    let new_specs = parse_specs(&args.specs)?;
    let (prefix_lock, installed) = open_environment(global, &prefix, &progress).await?;
    let installed_names: HashSet<&str> = installed.iter().map(name_of).collect();

    // The names this request is about: they may change; the rest is kept.
    let mut named: BTreeSet<String> = BTreeSet::new();
    for spec in &new_specs {
        let Some(name) = spec.name.as_exact().map(|n| n.as_normalized().to_owned()) else {
            bail!("`{spec}` names no package");
        };
        if update && !installed_names.contains(name.as_str()) {
            bail!(
                "{name} is not installed in {} (use `pkgr install`)",
                prefix.display()
            );
        }
        named.insert(name);
    }
    if update && args.all {
        named.extend(installed_names.iter().map(|n| (*n).to_owned()));
    }

    // Every installed package stays (its own requested spec, else by name);
    // the request's specs replace those of the packages they name.
    let mut specs: Vec<MatchSpec> = new_specs.clone();
    for record in &installed {
        let name = name_of(record);
        if new_specs
            .iter()
            .any(|s| s.name.as_exact().is_some_and(|n| n.as_normalized() == name))
        {
            continue;
        }
        let spec = requested_spec_of(record)
            .and_then(|s| MatchSpec::from_str(&s, ParseStrictness::Lenient).ok())
            .unwrap_or_else(|| MatchSpec::from(PackageName::new_unchecked(name.to_owned())));
        specs.push(spec);
    }
    let locked: Vec<RepoDataRecord> = installed
        .iter()
        .filter(|r| !(update && named.contains(name_of(r))))
        .map(|r| r.repodata_record.clone())
        .collect();
    let mut options =
        crate::create::solve_options(global, &args.solve, args.no_deps, Some(&prefix))?;
    if args.freeze_installed {
        // What the request names may change; everything else may not.
        options.frozen = locked
            .iter()
            .filter(|r| !named.contains(r.package_record.name.as_normalized()))
            .cloned()
            .collect();
    }
    if args.update_deps {
        // The named packages' dependencies may move too (conda's --update-deps).
        options.update_dependencies_of = named.iter().cloned().collect();
    }

    let workspace = Workspace::open(global, &progress)?;
    let from_records = args.channels.is_empty() && !installed.is_empty();
    let channels = if from_records {
        // The credentials the fetcher has (read once per command).
        channels_of(global, &installed, workspace.cache.fetcher().credentials())?
    } else {
        parse_channels(global, &args.channels, args.override_channels)?
    };
    let platform = platform_of(&installed)?;
    let solution = solve(
        &workspace, &channels, platform, specs, locked, options, &progress,
    )
    .await
    .map_err(|err| {
        let refused = match err.downcast_ref::<InstallError>() {
            Some(InstallError::Repodata(pkgr_repodata::RepodataError::NeedsCredentials {
                channel,
                ..
            })) if from_records => Some(needs_credentials(channel)),
            _ => None,
        };
        match refused {
            Some(message) => err.context(message),
            None => err,
        }
    })?;
    let plan = Plan::between(&installed, &solution);
    if !finish_planning(global, &prefix, &plan, args.dry_run)? {
        if plan.is_empty() && !args.dry_run && !args.specs.is_empty() {
            // Nothing to change, but the user asked for these: record it, so
            // that `remove` never prunes them and `--from-history` names them.
            record_history(&prefix_lock, &plan, SpecsKind::Update, &args.specs)?;
        }
        return Ok(());
    }
    let downloaded = workspace
        .installer(link_mode(args.copy))
        .with_link_scripts(link_scripts(global, args.no_scripts))
        .install(
            &prefix_lock,
            Change {
                requested: &args.specs,
                ..Change::new(&installed, &solution, &plan)
            },
            progress.clone(),
        )
        .await?
        .downloaded_bytes;
    let history_specs: Vec<String> = if args.specs.is_empty() {
        named.into_iter().collect()
    } else {
        args.specs.clone()
    };
    record_history(&prefix_lock, &plan, SpecsKind::Update, &history_specs)?;
    drop(prefix_lock);
    report_done(global, &prefix, &plan, Some(downloaded), started)
}

/// `pkgr remove`.
pub async fn remove(global: &GlobalArgs, args: RemoveArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let prefix = paths::prefix_or_active(global, &args.target)?;
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
    if !finish_planning(global, &prefix, &plan, args.dry_run)? {
        return Ok(());
    }
    let staying_records: Vec<RepoDataRecord> =
        staying.iter().map(|r| r.repodata_record.clone()).collect();
    let workspace = Workspace::open(global, &progress)?;
    workspace
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

/// Shows the plan; says whether to go on (not for a dry run or an empty plan).
fn finish_planning(
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

fn report_done(
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
    let mut roots: BTreeSet<String> = crate::envs::requested_specs(prefix)?
        .iter()
        .filter_map(|s| {
            MatchSpec::from_str(s, ParseStrictness::Lenient)
                .ok()
                .and_then(|s| s.name.as_exact().map(|n| n.as_normalized().to_owned()))
        })
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

/// The name a dependency spec is about (`python >=3.8` → `python`).
fn dependency_name(spec: &str) -> &str {
    spec.split([' ', '=', '<', '>', '!', '~', '[', ';'])
        .next()
        .unwrap_or(spec)
}

/// What to say when a channel taken from the environment's records needs
/// the credentials the records do not keep.
fn needs_credentials(channel: &str) -> String {
    format!(
        "channel {} needs credentials (the environment's records keep none): store them with `pkgr auth login HOST --token T` (or --username U --password-stdin, or in ~/.netrc), or pass the channel again with -c <channel URL with credentials>",
        channel.trim_end_matches('/')
    )
}

/// Without `-c`: the channels the environment's packages came from, most
/// used first. A channel whose records hold `/t/<TOKEN>/` (its token was not
/// written) takes the token stored for its host (`pkgr auth login`); without
/// one it cannot be used: that is an error saying so.
fn channels_of(
    global: &GlobalArgs,
    installed: &[PrefixRecord],
    credentials: &pkgr_fetch::Credentials,
) -> anyhow::Result<Vec<Channel>> {
    // In the form pkgr writes it (records written elsewhere, or by an older
    // pkgr, may hold `user:********@` or `/t/********/`).
    let channels = crate::transact::channels_by_use(installed, crate::transact::record_channel);
    let config = crate::create::channel_config(global)?;
    channels
        .iter()
        .map(|c| {
            let channel = Channel::from_str(c, &config)
                .with_context(|| format!("the environment names an invalid channel `{c}`"))?;
            if pkgr_redact::url_has_token_placeholder(channel.base_url.url()) {
                let Some(filled) = credentials.fill_token_placeholder(channel.base_url.url())
                else {
                    bail!(needs_credentials(c));
                };
                return Channel::from_str(filled.as_str(), &config)
                    .with_context(|| format!("the environment names an invalid channel `{c}`"));
            }
            Ok(channel)
        })
        .collect()
}

/// The platform of the environment: its packages' subdir, else this machine's.
fn platform_of(installed: &[PrefixRecord]) -> anyhow::Result<Subdir> {
    let subdir = installed
        .iter()
        .map(|r| r.repodata_record.package_record.subdir.as_str())
        .find(|s| *s != "noarch");
    crate::create::parse_platform(subdir)
}
