//! `pkgr create`: solve, fetch into the shared cache, link into a new prefix.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::HumanBytes;
use pkgr_cache::{CacheEntry, PackageCache, Reporter};
use pkgr_fetch::Fetcher;
use rattler_conda_types::{
    Channel, ChannelConfig, MatchSpec, ParseStrictness, RepoDataRecord, Subdir,
};
use tokio::sync::Semaphore;
use url::Url;

use crate::cli::{CreateArgs, GlobalArgs};
use crate::output::{print_stdout, table, Progress};
use crate::paths;

/// The channel used when no `-c` is given.
pub const DEFAULT_CHANNEL: &str = "conda-forge";

/// Parses the user's specs, pointing at the first bad one.
pub fn parse_specs(specs: &[String]) -> anyhow::Result<Vec<MatchSpec>> {
    specs
        .iter()
        .map(|s| {
            MatchSpec::from_str(s, ParseStrictness::Lenient)
                .with_context(|| format!("invalid package spec `{s}`"))
        })
        .collect()
}

/// The channels of a request, resolved against the channel alias
/// (`$PKGR_CHANNEL_ALIAS`, default `https://conda.anaconda.org/`).
pub fn parse_channels(given: &[String], override_channels: bool) -> anyhow::Result<Vec<Channel>> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut config = ChannelConfig::default_with_root_dir(cwd);
    if let Ok(alias) = std::env::var("PKGR_CHANNEL_ALIAS") {
        config.channel_alias = Url::parse(&alias)
            .with_context(|| format!("PKGR_CHANNEL_ALIAS `{alias}` is not a URL"))?;
    }
    let names: Vec<String> = if given.is_empty() {
        if override_channels {
            bail!("--override-channels without any -c CHANNEL leaves no channel to install from");
        }
        vec![DEFAULT_CHANNEL.to_owned()]
    } else {
        given.to_vec()
    };
    names
        .iter()
        .map(|name| {
            Channel::from_str(name, &config).with_context(|| format!("invalid channel `{name}`"))
        })
        .collect()
}

pub async fn run(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let prefix = paths::prefix(&args.target)?;
    let specs = parse_specs(&args.specs)?;
    let channels = parse_channels(&args.channels, args.override_channels)?;
    let platform = match &args.platform {
        Some(p) => Subdir::from_str(p).with_context(|| format!("unknown platform `{p}`"))?,
        None => Subdir::current()
            .context("pkgr does not know this machine's platform; pass --platform")?,
    };
    if !args.yes && pkgr_prefix::is_non_empty_environment(&prefix) {
        bail!(
            "an environment already exists at {} (use -y/--force to replace it)",
            prefix.display()
        );
    }
    pkgr_prefix::check_replaceable(&prefix)?;

    let cache_root = paths::cache_root(global)?;
    let jobs = Arc::new(Semaphore::new(
        global
            .jobs
            .filter(|&j| j > 0)
            .unwrap_or_else(pkgr_cache::default_jobs),
    ));
    let cache = PackageCache::open(&cache_root, Fetcher::new()?)?.with_jobs(jobs.clone());

    let spinner = progress.spinner("loading channels and solving");
    let indexes =
        pkgr_solver::load_channels(&cache, &channels, platform, progress.as_ref()).await?;
    let no_deps = args.no_deps;
    let records = tokio::task::spawn_blocking(move || {
        let virtual_packages = pkgr_solver::detect_virtual_packages()?;
        pkgr_solver::solve(&indexes, &specs, virtual_packages, no_deps)
    })
    .await??;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }

    if global.json {
        if args.dry_run {
            print_json(&prefix, &records, true)?;
            return Ok(());
        }
    } else if !global.quiet {
        print_stdout(&format!(
            "Environment: {}\n\n{}\n",
            prefix.display(),
            plan_table(&records)
        ));
    }
    if args.dry_run {
        if !global.quiet && !global.json {
            print_stdout("Dry run: nothing was changed.\n");
        }
        return Ok(());
    }

    let dir_existed = prefix.exists();
    let lock_progress = progress.clone();
    let prefix_lock = pkgr_prefix::lock_prefix(&prefix, move |pid| {
        let who = pid.map_or_else(
            || String::from("another pkgr process"),
            |p| format!("pkgr pid {p}"),
        );
        lock_progress.line(&format!("waiting for the environment lock (held by {who})"));
    })
    .await?;
    // The check before solving was only a quick answer: another process may
    // have created the environment while we solved or waited for the lock.
    let had_content = pkgr_prefix::is_non_empty_environment(&prefix);
    if had_content && !args.yes {
        bail!(
            "an environment already exists at {} (another process created it meanwhile; use -y/--force to replace it)",
            prefix.display()
        );
    }
    let result = install(&cache, &prefix, &records, &args, progress.clone(), &jobs).await;
    if let Err(err) = result {
        if !had_content {
            // Leave nothing that looks like an environment behind (only what
            // this process put there: the prefix held nothing else).
            undo_create(&prefix, dir_existed);
        }
        drop(prefix_lock);
        return Err(err);
    }
    drop(prefix_lock);

    let downloaded: u64 = result.unwrap_or(0);
    if global.json {
        print_json(&prefix, &records, false)?;
    } else if !global.quiet {
        print_stdout(&format!(
            "Created {} with {} packages ({} downloaded) in {:.1}s\n",
            prefix.display(),
            records.len(),
            HumanBytes(downloaded),
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Removes what a failed create put into `prefix`, which held no environment
/// before (best effort: the error that got us here is what the user sees).
/// Waiters on the removed prefix lock notice and lock the new file.
fn undo_create(prefix: &Path, dir_existed: bool) {
    if dir_existed {
        let _ = pkgr_prefix::clear_prefix(prefix);
        let _ = fs_err::remove_dir_all(prefix.join("conda-meta"));
    } else {
        let _ = fs_err::remove_dir_all(prefix);
    }
}

/// Fetches every record into the cache and links them into `prefix` (whose
/// lock the caller holds). Returns the bytes downloaded.
async fn install(
    cache: &PackageCache,
    prefix: &Path,
    records: &[RepoDataRecord],
    args: &CreateArgs,
    progress: Arc<Progress>,
    jobs: &Arc<Semaphore>,
) -> anyhow::Result<u64> {
    if args.yes {
        pkgr_prefix::check_replaceable(prefix)?;
        pkgr_prefix::clear_prefix(prefix)
            .with_context(|| format!("could not clear {}", prefix.display()))?;
    }
    // Fetch concurrently; the cache bounds the real work with the jobs permits
    // and hands back every entry with its shared lock held for linking.
    let reporter: &dyn Reporter = progress.as_ref();
    let entries: Vec<CacheEntry> = cache.get_all(records, reporter).await?;
    let downloaded = entries
        .iter()
        .filter_map(CacheEntry::downloaded_bytes)
        .sum();

    // Link in dependency order, holding each entry's shared lock while reading it.
    let requested: Vec<String> = args.specs.clone();
    let plan: Vec<(RepoDataRecord, PathBuf, Option<String>)> = records
        .iter()
        .zip(&entries)
        .map(|(record, entry)| {
            let name = record.package_record.name.as_normalized();
            let spec = requested.iter().find(|s| spec_names(s, name)).cloned();
            (record.clone(), entry.dir().to_path_buf(), spec)
        })
        .collect();
    let prefix_owned = prefix.to_path_buf();
    let link_progress = progress.clone();
    let permit = jobs
        .clone()
        .acquire_owned()
        .await
        .context("the jobs semaphore was closed")?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for (record, dir, spec) in &plan {
            let prefix_record = pkgr_prefix::link_package(&prefix_owned, dir, record, spec.clone())
                .with_context(|| {
                    format!(
                        "could not link {} into {}",
                        record.identifier,
                        prefix_owned.display()
                    )
                })?;
            pkgr_prefix::write_prefix_record(&prefix_owned, &prefix_record)?;
            link_progress.line(&format!("linked {}", record.identifier));
        }
        Ok(())
    })
    .await??;
    drop(permit);
    drop(entries);

    let command: Vec<String> = std::env::args().collect();
    let timestamp = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string();
    pkgr_prefix::append_history(
        prefix,
        &command.join(" "),
        records,
        &[],
        &args.specs,
        &timestamp,
    )?;
    Ok(downloaded)
}

/// Whether the user's spec text names package `name`.
fn spec_names(spec: &str, name: &str) -> bool {
    MatchSpec::from_str(spec, ParseStrictness::Lenient)
        .ok()
        .and_then(|s| s.name.as_exact().map(|n| n.as_normalized() == name))
        .unwrap_or(false)
}

fn plan_table(records: &[RepoDataRecord]) -> String {
    let mut rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let p = &r.package_record;
            vec![
                p.name.as_normalized().to_owned(),
                p.version.to_string(),
                p.build.to_string(),
                channel_label(r),
                p.size
                    .map(|s| HumanBytes(s).to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    rows.sort();
    let total: u64 = records.iter().filter_map(|r| r.package_record.size).sum();
    format!(
        "{}\n  {} packages, {} to fetch at most\n",
        table(&["Package", "Version", "Build", "Channel", "Size"], &rows),
        records.len(),
        HumanBytes(total)
    )
}

/// The channel a record came from, as a user would name it.
pub fn channel_label(record: &RepoDataRecord) -> String {
    let channel = record.channel.as_deref().unwrap_or_default();
    let label = match Url::parse(channel) {
        Ok(url) if url.scheme() == "file" => url
            .to_file_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|()| channel.to_owned()),
        _ => channel
            .trim_start_matches("https://conda.anaconda.org/")
            .to_owned(),
    };
    format!(
        "{}/{}",
        label.trim_end_matches('/'),
        record.package_record.subdir
    )
}

fn print_json(prefix: &Path, records: &[RepoDataRecord], dry_run: bool) -> anyhow::Result<()> {
    let link: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let p = &r.package_record;
            serde_json::json!({
                "name": p.name.as_normalized(),
                "version": p.version.to_string(),
                "build_string": p.build,
                "build_number": p.build_number,
                "channel": r.channel,
                "subdir": p.subdir,
                "url": pkgr_fetch::redact_url(&r.url),
                "fn": r.identifier.to_string(),
                "size": p.size,
            })
        })
        .collect();
    let value = serde_json::json!({
        "success": true,
        "dry_run": dry_run,
        "prefix": prefix,
        "actions": { "LINK": link },
    });
    print_stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?));
    Ok(())
}
