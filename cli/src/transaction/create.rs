//! A new environment (`pkgr create`, `pkgr env create`): solve (or take a
//! lock file as it is), fetch into the shared cache, link into a new prefix.

use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use indicatif::HumanBytes;
use pkgr_install::{Change, NewEnvironment, Plan, SpecsKind};
use rattler_conda_types::RepoDataRecord;

use super::record_history;
use super::{link_mode, link_scripts, solve};
use crate::cache_access::JobLimitedCache;
use crate::channels::parse_channels;
use crate::cli::{CreateArgs, GlobalArgs};
use crate::environments;
use crate::output::{print_json, print_stdout, Progress};
use crate::render::{describe, plan_json};
use crate::request::{parse_specs, platform, solve_options};
use pkgr_prefix::meta::write_state_variables;

/// Creates the environment `args` ask for.
pub async fn create_environment(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let mut args = args;
    // conda's `always_yes` (`$CONDA_ALWAYS_YES`) answers yes where `-y` does.
    args.yes |= global.config.always_yes.value;
    let started = Instant::now();
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let platform = platform(global, args.platform.as_deref())?;
    let from_files = crate::env_files::read(
        &args.files,
        platform,
        args.lock_environment.as_deref(),
        &progress,
    )?;
    // -n/-p on the command line win over the file's `name:`.
    let prefix = match (&args.target.name, &args.target.prefix, &from_files.name) {
        (None, None, Some(name)) => environments::named_env(global, name)?,
        _ => environments::prefix(global, &args.target)?,
    };
    if from_files.locked.is_some() && !args.specs.is_empty() {
        bail!(
            "a lock file is the whole environment: give no specs beside it (install them afterwards with `pkgr install`)"
        );
    }
    let mut requested: Vec<String> = from_files.specs.clone();
    requested.extend(args.specs.iter().cloned());
    if requested.is_empty() && from_files.locked.is_none() {
        bail!("nothing to install: name packages, or give a file with -f that lists some");
    }
    if !args.yes && pkgr_prefix::is_non_empty_environment(&prefix) {
        bail!(
            "an environment already exists at {} (use -y/--force to replace it)",
            prefix.display()
        );
    }
    pkgr_prefix::check_replaceable(&prefix)?;

    let shared_cache = JobLimitedCache::open(global, &progress)?;
    let (records, metadata_from_archives) = match &from_files.locked {
        Some((_, locked)) => {
            // Installed exactly as the file says: no solve. The records of
            // an @EXPLICIT list (and conda-lock's partial ones) are completed
            // from each archive's info/index.json once it is in the cache.
            let records: Vec<RepoDataRecord> = locked
                .packages
                .iter()
                .map(|p| {
                    let mut record = p.record.clone();
                    // The form solved records have (a channel URL ends in
                    // `/`), so an environment made from a lock file has the
                    // records one made by solving has.
                    if let Some(channel) = &mut record.channel {
                        if channel.contains("://") && !channel.ends_with('/') {
                            channel.push('/');
                        }
                    }
                    record
                })
                .collect();
            let complete = locked.packages.iter().all(|p| p.metadata_complete);
            for package in &locked.packages {
                let p = &package.record.package_record;
                if p.sha256.is_none() && p.md5.is_none() {
                    progress.warn(&format!(
                        "{} has no checksum in the file: its bytes are not verified",
                        package.record.identifier
                    ));
                }
            }
            requested = records
                .iter()
                .map(|r| {
                    let p = &r.package_record;
                    format!("{}={}={}", p.name.as_normalized(), p.version, p.build)
                })
                .collect();
            (records, !complete)
        }
        None => {
            let specs = parse_specs(&requested)?;
            let mut channel_names = args.channels.clone();
            for channel in &from_files.channels {
                if !channel_names.contains(channel) {
                    channel_names.push(channel.clone());
                }
            }
            let channels = parse_channels(global, &channel_names, args.override_channels)?;
            let options = solve_options(global, &args.solve, args.no_deps, None)?;
            let records = solve(
                &shared_cache,
                &channels,
                platform,
                specs,
                Vec::new(),
                options,
                &progress,
            )
            .await?;
            (records, false)
        }
    };
    let plan = Plan {
        unlink: Vec::new(),
        link: records,
    };
    if global.json {
        if args.dry_run {
            return print_json(&plan_json(&plan, &prefix, true));
        }
    } else if !global.quiet {
        print_stdout(&format!(
            "Environment: {}\n\n{}",
            prefix.display(),
            describe(&plan)
        ));
    }
    if args.dry_run {
        if !global.quiet && !global.json {
            print_stdout("Dry run: nothing was changed.\n");
        }
        return Ok(());
    }

    let environment = NewEnvironment::lock(&prefix, progress.as_ref()).await?;
    // The check before solving was only a quick answer: another process may
    // have created the environment while we solved or waited for the lock.
    if environment.had_content() && !args.yes {
        bail!(
            "an environment already exists at {} (another process created it meanwhile; use -y/--force to replace it)",
            prefix.display()
        );
    }
    let result = async {
        if args.yes {
            environment.clear()?;
        }
        let report = shared_cache
            .installer(link_mode(args.copy))
            .with_link_scripts(link_scripts(global, args.no_scripts))
            .install(
                environment.prefix(),
                Change {
                    installed: &[],
                    solution: &plan.link,
                    plan: &plan,
                    requested: &requested,
                    metadata_from_archives,
                },
                progress.clone(),
            )
            .await?;
        record_history(environment.prefix(), &plan, SpecsKind::Update, &requested)?;
        if !from_files.variables.is_empty() {
            write_state_variables(&prefix, &from_files.variables)?;
        }
        anyhow::Ok(report.downloaded_bytes)
    }
    .await;
    let downloaded = match result {
        Ok(downloaded) => downloaded,
        Err(err) => {
            // Leave nothing that looks like an environment behind (only what
            // this process put there, when the prefix held nothing else).
            environment.abandon();
            return Err(err);
        }
    };
    environment.finish();

    if global.json {
        print_json(&plan_json(&plan, &prefix, false))?;
    } else if !global.quiet {
        print_stdout(&format!(
            "Created {} with {} packages ({} downloaded) in {:.1}s\n",
            prefix.display(),
            plan.link.len(),
            HumanBytes(downloaded),
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}
