//! A change to an existing environment (`pkgr install`, `pkgr update`,
//! `pkgr env update`): what stays, what the request names, solved together
//! and applied in one transaction under the environment's lock.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use pkgr_install::{requested_spec_of, Change, InstallError, Plan, SpecsKind};
use rattler_conda_types::{
    Channel, MatchSpec, PackageName, ParseStrictness, PrefixRecord, RepoDataRecord, Subdir,
};

use super::record_history;
use super::{link_mode, link_scripts, name_of, open_environment, report_done, show_plan, solve};
use crate::cache_access::JobLimitedCache;
use crate::channels::{channel_config, channels_by_use, parse_channels};
use crate::cli::{GlobalArgs, InstallArgs};
use crate::environments;
use crate::output::Progress;
use crate::render::channel_url;
use crate::request::{parse_platform, parse_specs, platform, solve_options};

/// `pkgr install` (`update == false`) and `pkgr update`.
pub async fn change_environment(
    global: &GlobalArgs,
    args: InstallArgs,
    update: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let prefix = environments::prefix_or_active(global, &args.target)?;
    if !update && args.all {
        bail!("--all goes with `pkgr update`");
    }
    let mut args = args;
    if !args.files.is_empty() {
        let platform = platform(global, None)?;
        let from_files = crate::env_files::read(&args.files, platform, None, &progress)?;
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
    let mut options = solve_options(global, &args.solve, args.no_deps, Some(&prefix))?;
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

    let shared_cache = JobLimitedCache::open(global, &progress)?;
    let from_records = args.channels.is_empty() && !installed.is_empty();
    let channels = if from_records {
        // The credentials the fetcher has (read once per command).
        channels_of(
            global,
            &installed,
            shared_cache.cache.fetcher().credentials(),
        )?
    } else {
        parse_channels(global, &args.channels, args.override_channels)?
    };
    let platform = platform_of(&installed)?;
    let solution = solve(
        &shared_cache,
        &channels,
        platform,
        specs,
        locked,
        options,
        &progress,
    )
    .await
    .map_err(|err| {
        let credentials_hint = match err.downcast_ref::<InstallError>() {
            Some(InstallError::Repodata(pkgr_repodata::RepodataError::NeedsCredentials {
                channel,
                ..
            })) if from_records => Some(needs_credentials(channel)),
            _ => None,
        };
        match credentials_hint {
            Some(message) => err.context(message),
            None => err,
        }
    })?;
    let plan = Plan::between(&installed, &solution);
    if !show_plan(global, &prefix, &plan, args.dry_run)? {
        if plan.is_empty() && !args.dry_run && !args.specs.is_empty() {
            // Nothing to change, but the user asked for these: record it, so
            // that `remove` never prunes them and `--from-history` names them.
            record_history(&prefix_lock, &plan, SpecsKind::Update, &args.specs)?;
        }
        return Ok(());
    }
    let downloaded = shared_cache
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
    let channels = channels_by_use(installed, channel_url);
    let config = channel_config(global)?;
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
    parse_platform(subdir)
}
