//! `pkgr create`: solve, fetch into the shared cache, link into a new prefix;
//! and the pieces `install`/`update` share with it (channels, solving, the lock).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::HumanBytes;
use pkgr_install::{
    Change, Installer, LinkMode, LinkScripts, LockedPrefix, NewEnvironment, Plan, SpecsKind,
};
use rattler_conda_types::{
    Channel, ChannelConfig, MatchSpec, ParseStrictness, RepoDataRecord, Subdir,
};
use url::Url;

use crate::cli::{CreateArgs, GlobalArgs, SolveArgs};
use crate::output::{print_stdout, Progress};
use crate::paths;
use crate::transact::{describe, plan_json, print_json, record_history, Workspace};

/// Parses the user's specs, pointing at the first bad one.
///
/// A name may be a glob (`*[md5=...]`, `py*[build=...]`): [`solve`] resolves
/// it to the one package name whose records it matches.
pub fn parse_specs(specs: &[String]) -> anyhow::Result<Vec<MatchSpec>> {
    let options =
        rattler_conda_types::ParseMatchSpecOptions::lenient().with_exact_names_only(false);
    specs
        .iter()
        .map(|s| {
            MatchSpec::from_str(s, options).with_context(|| format!("invalid package spec `{s}`"))
        })
        .collect()
}

/// How channel names resolve: against the configured channel alias
/// (`$PKGR_CHANNEL_ALIAS`, `channel_alias` in a config file, default
/// `https://conda.anaconda.org/`), local paths against the current directory.
pub fn channel_config(global: &GlobalArgs) -> anyhow::Result<ChannelConfig> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut config = ChannelConfig::default_with_root_dir(cwd);
    let alias = &global.config.channel_alias;
    config.channel_alias = Url::parse(&alias.value).with_context(|| {
        format!(
            "channel_alias `{}` (from {}) is not a URL",
            alias.value, alias.origin
        )
    })?;
    Ok(config)
}

/// conda's `defaults` multichannel.
const DEFAULTS: [&str; 2] = [
    "https://repo.anaconda.com/pkgs/main",
    "https://repo.anaconda.com/pkgs/r",
];

/// The channels of a request (`-c`, else the configured ones), resolved
/// with [`channel_config`]. `defaults` stands for conda's default channels;
/// `nodefaults` (from environment files) is dropped.
pub fn parse_channels(
    global: &GlobalArgs,
    given: &[String],
    override_channels: bool,
) -> anyhow::Result<Vec<Channel>> {
    let config = channel_config(global)?;
    let names: Vec<String> = if given.is_empty() {
        if override_channels {
            bail!("--override-channels without any -c CHANNEL leaves no channel to install from");
        }
        global.config.channels.value.clone()
    } else {
        given.to_vec()
    };
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| n != "nodefaults")
        .flat_map(|n| {
            if n == "defaults" {
                DEFAULTS.iter().map(|d| (*d).to_owned()).collect()
            } else {
                vec![n]
            }
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    if names.is_empty() {
        bail!("no channel to install from (pass -c CHANNEL)");
    }
    names
        .iter()
        .map(|name| {
            let channel = Channel::from_str(name, &config)
                .with_context(|| format!("invalid channel `{name}`"))?;
            if pkgr_redact::url_has_token_placeholder(channel.base_url.url()) {
                bail!(
                    "channel {} holds `{}` where its token goes (as conda-meta records keep it): pass the channel URL with the real token",
                    pkgr_redact::url_for_record(channel.base_url.url()).trim_end_matches('/'),
                    pkgr_redact::TOKEN_PLACEHOLDER
                );
            }
            Ok(channel)
        })
        .collect()
}

pub async fn run(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let platform = parse_platform(args.platform.as_deref())?;
    let from_files = crate::files::read(
        &args.files,
        platform,
        args.lock_environment.as_deref(),
        &progress,
    )?;
    // -n/-p on the command line win over the file's `name:`.
    let prefix = match (&args.target.name, &args.target.prefix, &from_files.name) {
        (None, None, Some(name)) => paths::named_env(global, name)?,
        _ => paths::prefix(global, &args.target)?,
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

    let workspace = Workspace::open(global, &progress)?;
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
                &workspace,
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
        let report = workspace
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
            crate::activate::write_state_variables(&prefix, &from_files.variables)?;
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

/// `--platform`, else this machine's.
pub fn parse_platform(given: Option<&str>) -> anyhow::Result<Subdir> {
    match given {
        Some(p) => Subdir::from_str(p).with_context(|| format!("unknown platform `{p}`")),
        None => {
            Subdir::current().context("pkgr does not know this machine's platform; pass --platform")
        }
    }
}

/// The pins of an environment: `conda-meta/pinned`, one spec per line
/// (`#` comments), as conda reads it.
pub fn environment_pins(prefix: &Path) -> anyhow::Result<Vec<String>> {
    let path = prefix.join("conda-meta").join("pinned");
    match fs_err::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .map(ToOwned::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// What a solve may do: channel priority (`--channel-priority`, else the
/// setting), pins (`--pin`, the `pinned_packages` setting and, for an
/// existing environment, its `conda-meta/pinned`).
pub fn solve_options(
    global: &GlobalArgs,
    args: &SolveArgs,
    no_deps: bool,
    prefix: Option<&Path>,
) -> anyhow::Result<pkgr_solver::SolveOptions> {
    let channel_priority = if args.strict_channel_priority {
        pkgr_solver::ChannelPriority::Strict
    } else {
        args.channel_priority
            .unwrap_or(global.config.channel_priority.value)
    };
    let mut pins: Vec<String> = args.pins.clone();
    pins.extend(global.config.pinned_packages.value.iter().cloned());
    if let Some(prefix) = prefix {
        pins.extend(environment_pins(prefix)?);
    }
    let constraints = pins
        .iter()
        .map(|s| {
            MatchSpec::from_str(s, ParseStrictness::Lenient)
                .with_context(|| format!("invalid pin `{s}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(unnamed) = constraints.iter().find(|c| c.name.as_exact().is_none()) {
        bail!("the pin `{unnamed}` names no package");
    }
    Ok(pkgr_solver::SolveOptions {
        no_deps,
        channel_priority,
        constraints,
        frozen: Vec::new(),
        update_dependencies_of: Vec::new(),
    })
}

/// Loads the channels' repodata and solves `specs`, keeping `locked` (the
/// installed records) where the request allows.
pub async fn solve(
    workspace: &Workspace,
    channels: &[Channel],
    platform: Subdir,
    specs: Vec<MatchSpec>,
    locked: Vec<RepoDataRecord>,
    options: pkgr_solver::SolveOptions,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<RepoDataRecord>> {
    let spinner = progress.spinner("loading channels and solving");
    let records = Installer::new(&workspace.cache)
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
