//! What `create`, `install`, `update` and `remove` share on the front-end
//! side: opening the cache from the configuration ([`Workspace`]), the
//! command line for `history`, and how plans and records are shown (tables,
//! conda's `--json` shape). The steps themselves (plan, solve, fetch, link,
//! history, the prefix lock) are `pkgr_install`'s.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use indicatif::HumanBytes;
use pkgr_cache::PackageCache;
use pkgr_fetch::Fetcher;
use pkgr_install::{Installer, LinkMode, LockedPrefix, Plan, SpecsKind};
use rattler_conda_types::{PrefixRecord, RepoDataRecord};
use tokio::sync::Semaphore;
use url::Url;

use crate::cli::GlobalArgs;
use crate::output::{print_stdout, table, Progress};
use crate::paths;

/// The shared cache and the jobs permits of this process.
pub struct Workspace {
    /// The package cache.
    pub cache: PackageCache,
    /// Bounds downloads, extractions and linking.
    pub jobs: Arc<Semaphore>,
    /// The `allow_unverified_packages` setting.
    pub allow_unverified: bool,
}

impl Workspace {
    /// Opens the cache named by the global options, with a fetcher that uses
    /// the configured network settings and says on `progress` what it retries.
    pub fn open(global: &GlobalArgs, progress: &Arc<Progress>) -> anyhow::Result<Self> {
        let jobs = Arc::new(Semaphore::new(
            global
                .jobs
                .filter(|&j| j > 0)
                .unwrap_or_else(pkgr_cache::default_jobs),
        ));
        let observer_progress = progress.clone();
        let credentials = paths::credentials()?;
        for warning in credentials.warnings() {
            progress.warn(warning);
        }
        let fetcher = Fetcher::with_settings(global.config.network.value.clone())?
            .with_credentials(credentials)
            .with_retry_observer(Arc::new(move |notice: &pkgr_fetch::RetryNotice<'_>| {
                observer_progress.warn(&retry_message(notice));
            }));
        let channel_config = crate::create::channel_config(global)?;
        let mut mirrors = Vec::new();
        for (channel, list) in &global.config.mirrored_channels.value {
            let base = rattler_conda_types::Channel::from_str(channel, &channel_config)
                .with_context(|| format!("mirrored_channels: invalid channel `{channel}`"))?
                .base_url
                .url()
                .as_ref()
                .clone();
            let list: Vec<Url> = list.iter().filter_map(|m| Url::parse(m).ok()).collect();
            mirrors.push((base, list));
        }
        let mirror_progress = progress.clone();
        let fetcher = fetcher.with_mirrors(mirrors).with_mirror_observer(Arc::new(
            move |mirror: &str, error: &pkgr_fetch::FetchError| {
                mirror_progress.warn(&format!(
                    "mirror {mirror} failed ({error}); trying the next mirror"
                ));
            },
        ));
        let cache = PackageCache::open(&paths::cache_root(global)?, fetcher)?
            .with_read_only_layers(global.config.read_only_caches.value.clone())
            .with_jobs(jobs.clone())
            .with_repodata_policy(global.repodata_policy());
        Ok(Self {
            cache,
            jobs,
            allow_unverified: global.config.allow_unverified_packages.value,
        })
    }

    /// An installer on this cache and its jobs permits, linking with `mode`.
    pub fn installer(&self, mode: LinkMode) -> Installer<'_> {
        Installer::new(&self.cache)
            .with_jobs(self.jobs.clone())
            .with_link_mode(mode)
            .with_unverified_packages(self.allow_unverified)
    }
}

/// What pkgr says before it retries a request.
fn retry_message(notice: &pkgr_fetch::RetryNotice<'_>) -> String {
    let what = match notice.error.last() {
        pkgr_fetch::FetchError::Transport {
            kind: pkgr_fetch::TransportKind::Timeout,
            ..
        } => format!(
            "no data from {} for {} s",
            notice.url,
            notice.read_timeout.as_secs()
        ),
        other => other.to_string(),
    };
    format!(
        "{what}; retrying in {:.1} s ({}/{})",
        notice.wait.as_secs_f64(),
        notice.retry,
        notice.of
    )
}

/// The plan as tables for the user.
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.unlink.is_empty() {
        let records: Vec<RepoDataRecord> = plan
            .unlink
            .iter()
            .map(|r| r.repodata_record.clone())
            .collect();
        out.push_str(&format!(
            "Remove:\n{}\n  {}\n\n",
            records_table(&records),
            count(records.len(), "package")
        ));
    }
    if !plan.link.is_empty() {
        let total: u64 = plan.link.iter().filter_map(|r| r.package_record.size).sum();
        out.push_str(&format!(
            "Install:\n{}\n  {}, {} to fetch at most\n\n",
            records_table(&plan.link),
            count(plan.link.len(), "package"),
            HumanBytes(total)
        ));
    }
    if out.is_empty() {
        out.push_str("Nothing to change: the environment already satisfies the request.\n\n");
    }
    out
}

/// conda's `--json` shape of a plan.
pub fn plan_json(plan: &Plan, prefix: &Path, dry_run: bool) -> serde_json::Value {
    let unlink: Vec<serde_json::Value> = plan
        .unlink
        .iter()
        .map(|r| record_json(&r.repodata_record))
        .collect();
    let link: Vec<serde_json::Value> = plan.link.iter().map(record_json).collect();
    serde_json::json!({
        "success": true,
        "dry_run": dry_run,
        "prefix": prefix,
        "actions": { "LINK": link, "UNLINK": unlink, "PREFIX": prefix },
    })
}

/// `1 package`, `2 packages`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Appends the change to `conda-meta/history` with this process's command
/// line; `kind` is what conda writes (`update` or `remove` specs).
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

/// A table of records: name, version, build, channel, size, sorted by name.
pub fn records_table(records: &[RepoDataRecord]) -> String {
    let mut rows: Vec<Vec<String>> = records.iter().map(record_row).collect();
    rows.sort();
    table(&["Package", "Version", "Build", "Channel", "Size"], &rows)
}

/// One record as a table row: name, version, build, channel, size.
pub fn record_row(r: &RepoDataRecord) -> Vec<String> {
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
}

/// The channels of `installed` as `name` gives them, most used first (ties
/// in the order first seen).
pub fn channels_by_use(
    installed: &[PrefixRecord],
    name: impl Fn(&RepoDataRecord) -> Option<String>,
) -> Vec<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for record in installed {
        let Some(channel) = name(&record.repodata_record) else {
            continue;
        };
        match counts.iter_mut().find(|(c, _)| *c == channel) {
            Some((_, n)) => *n += 1,
            None => counts.push((channel, 1)),
        }
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counts.into_iter().map(|(c, _)| c).collect()
}

/// The channel of a record as pkgr shows and writes it: without credentials
/// (records written by pkgr have none; this also covers other writers').
pub fn record_channel(record: &RepoDataRecord) -> Option<String> {
    record
        .channel
        .as_deref()
        .map(|c| pkgr_redact::redact_urls_in_text(c, pkgr_redact::url_for_record))
}

/// The channel a record came from, as a user would name it.
pub fn channel_label(record: &RepoDataRecord) -> String {
    let channel = record_channel(record).unwrap_or_default();
    let channel = channel.as_str();
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

/// A record in conda's `--json` plan shape (`dist_fields_dump`: base_url,
/// build_number, build_string, channel (its name), dist_name, name,
/// platform, version), plus what a script wants to fetch it: `url`, `fn`,
/// `size`, `subdir`, `md5`, `sha256`.
fn record_json(r: &RepoDataRecord) -> serde_json::Value {
    let p = &r.package_record;
    serde_json::json!({
        "base_url": record_channel(r),
        "build_number": p.build_number,
        "build_string": p.build,
        "channel": crate::list::channel_name(r),
        "dist_name": format!("{}-{}-{}", p.name.as_normalized(), p.version, p.build),
        "name": p.name.as_normalized(),
        "platform": p.subdir,
        "version": p.version.to_string(),
        "subdir": p.subdir,
        "url": pkgr_redact::url_for_record(&r.url),
        "fn": r.identifier.to_string(),
        "size": p.size,
        "md5": p.md5.as_ref().map(hex::encode),
        "sha256": p.sha256.as_ref().map(hex::encode),
    })
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    print_stdout(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}
