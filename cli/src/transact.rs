//! What `create`, `install`, `update` and `remove` share: the difference
//! between what is installed and what the solver chose, fetching what it
//! links into the shared cache, applying it to the prefix, and `history`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use indicatif::HumanBytes;
use pkgr_cache::{CacheEntry, PackageCache, Reporter};
use pkgr_fetch::Fetcher;
use pkgr_prefix::{LinkMode, LinkRequest, PythonInfo, Transaction, TransactionEvent};
use rattler_conda_types::{MatchSpec, ParseStrictness, PrefixRecord, RepoDataRecord};
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
        let fetcher = Fetcher::with_settings(global.config.network.value.clone())?
            .with_credentials(paths::credentials()?)
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
        Ok(Self { cache, jobs })
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

/// What a change does to an environment.
#[derive(Debug, Default)]
pub struct Plan {
    /// Installed packages that go.
    pub unlink: Vec<PrefixRecord>,
    /// Packages that come.
    pub link: Vec<RepoDataRecord>,
}

impl Plan {
    /// The change from `installed` to `solution`. `noarch: python` packages
    /// that stay are relinked when python's minor version changes (their
    /// files live in `lib/pythonX.Y`).
    pub fn between(installed: &[PrefixRecord], solution: &[RepoDataRecord]) -> Self {
        let old_python = python_of(installed.iter().map(|r| &r.repodata_record));
        let new_python = python_of(solution.iter());
        let python_moved = old_python.is_some()
            && new_python.is_some()
            && old_python.map(|p| p.version) != new_python.map(|p| p.version);
        let relink =
            |record: &RepoDataRecord| python_moved && record.package_record.noarch.is_python();
        // Compared in the form records keep: conda-meta holds URLs without
        // credentials, the channels' records hold them with.
        let key = |url: &Url| pkgr_redact::url_for_record(url);
        let kept: HashSet<String> = solution.iter().map(|r| key(&r.url)).collect();
        let had: HashSet<String> = installed
            .iter()
            .map(|r| key(&r.repodata_record.url))
            .collect();
        Self {
            unlink: installed
                .iter()
                .filter(|r| {
                    !kept.contains(&key(&r.repodata_record.url)) || relink(&r.repodata_record)
                })
                .cloned()
                .collect(),
            link: solution
                .iter()
                .filter(|r| !had.contains(&key(&r.url)) || relink(r))
                .cloned()
                .collect(),
        }
    }

    /// Whether the environment stays as it is.
    pub fn is_empty(&self) -> bool {
        self.unlink.is_empty() && self.link.is_empty()
    }

    /// The plan as tables for the user.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if !self.unlink.is_empty() {
            let records: Vec<RepoDataRecord> = self
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
        if !self.link.is_empty() {
            let total: u64 = self.link.iter().filter_map(|r| r.package_record.size).sum();
            out.push_str(&format!(
                "Install:\n{}\n  {}, {} to fetch at most\n\n",
                records_table(&self.link),
                count(self.link.len(), "package"),
                HumanBytes(total)
            ));
        }
        if out.is_empty() {
            out.push_str("Nothing to change: the environment already satisfies the request.\n\n");
        }
        out
    }

    /// conda's `--json` shape of a plan.
    pub fn to_json(&self, prefix: &Path, dry_run: bool) -> serde_json::Value {
        let unlink: Vec<serde_json::Value> = self
            .unlink
            .iter()
            .map(|r| record_json(&r.repodata_record))
            .collect();
        let link: Vec<serde_json::Value> = self.link.iter().map(record_json).collect();
        serde_json::json!({
            "success": true,
            "dry_run": dry_run,
            "prefix": prefix,
            "actions": { "LINK": link, "UNLINK": unlink, "PREFIX": prefix },
        })
    }
}

/// `1 package`, `2 packages`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The python of a set of records, if it has one.
pub fn python_of<'a>(records: impl Iterator<Item = &'a RepoDataRecord>) -> Option<PythonInfo> {
    records
        .map(|r| &r.package_record)
        .find(|p| p.name.as_normalized() == "python")
        .and_then(PythonInfo::from_record)
}

/// One change to an environment, as [`apply`] carries it out.
pub struct Change<'a> {
    /// What the environment holds now.
    pub installed: &'a [PrefixRecord],
    /// Every package the environment holds afterwards.
    pub solution: &'a [RepoDataRecord],
    /// What to remove and what to link.
    pub plan: &'a Plan,
    /// The user's specs this time (recorded as `requested_spec` of the
    /// packages they name; a package that replaces an installed one keeps the
    /// old one's otherwise).
    pub requested: &'a [String],
    /// How files are linked.
    pub mode: LinkMode,
    /// The records to link know only their file name and checksum (an
    /// `@EXPLICIT` list): their metadata (depends, license, ...) is read from
    /// each archive's `info/index.json` once it is in the cache, as conda does.
    pub metadata_from_archives: bool,
}

/// Fetches what the change links into the cache and applies it to `prefix`
/// (whose lock the caller holds). Returns the bytes downloaded.
pub async fn apply(
    workspace: &Workspace,
    prefix: &Path,
    change: Change<'_>,
    progress: Arc<Progress>,
) -> anyhow::Result<u64> {
    let Change {
        installed,
        solution,
        plan,
        requested,
        mode,
        metadata_from_archives,
    } = change;
    // Fetch concurrently; the cache bounds the real work with the jobs
    // permits and hands back every entry with its shared lock held.
    let reporter: &dyn Reporter = progress.as_ref();
    progress.start_fetching(plan.link.len());
    let entries = workspace.cache.get_all(&plan.link, reporter).await;
    let entries: Vec<CacheEntry> = match entries {
        Ok(entries) => entries,
        Err(err) => {
            progress.finish_phases();
            return Err(err.into());
        }
    };
    progress.start_linking(plan.link.len() + plan.unlink.len());
    let downloaded = entries
        .iter()
        .filter_map(CacheEntry::downloaded_bytes)
        .sum();
    let completed: Vec<RepoDataRecord> = if metadata_from_archives {
        plan.link
            .iter()
            .zip(&entries)
            .map(|(record, entry)| record_from_archive(record, entry))
            .collect::<anyhow::Result<_>>()?
    } else {
        plan.link.clone()
    };
    let link = completed
        .iter()
        .zip(&entries)
        .map(|(record, entry)| {
            let name = record.package_record.name.as_normalized();
            let requested_spec = requested
                .iter()
                .find(|s| spec_names(s, name))
                .cloned()
                .or_else(|| {
                    installed
                        .iter()
                        .find(|r| r.repodata_record.package_record.name.as_normalized() == name)
                        .and_then(requested_spec_of)
                });
            LinkRequest {
                record: record.clone(),
                package_dir: entry.dir().to_path_buf(),
                requested_spec,
            }
        })
        .collect();
    let transaction = Transaction {
        unlink: plan.unlink.clone(),
        link,
        python: python_of(solution.iter()),
        mode,
    };
    let permit = workspace
        .jobs
        .clone()
        .acquire_owned()
        .await
        .context("the jobs semaphore was closed")?;
    let prefix_owned = prefix.to_path_buf();
    let installed = installed.to_vec();
    let events = progress.clone();
    let result = tokio::task::spawn_blocking(move || {
        transaction.execute(&prefix_owned, &installed, &|event| report(&events, &event))
    })
    .await?;
    progress.finish_phases();
    result.with_context(|| format!("could not change the environment at {}", prefix.display()))?;
    drop(permit);
    drop(entries);
    Ok(downloaded)
}

/// `record` (an `@EXPLICIT` line: file name, URL, checksum) completed from
/// the `info/index.json` of its cache entry, with the checksums and size of
/// the verified archive. The name, version and build must be those the file
/// name promised.
fn record_from_archive(
    record: &RepoDataRecord,
    entry: &CacheEntry,
) -> anyhow::Result<RepoDataRecord> {
    use rattler_conda_types::package::{IndexJson, PackageFile};
    let index = IndexJson::from_package_directory(entry.dir()).with_context(|| {
        format!(
            "could not read info/index.json of {} (in {})",
            record.identifier,
            entry.dir().display()
        )
    })?;
    let marker = entry.marker()?;
    let sha256 = hex::decode(&marker.sha256)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(Into::into);
    let md5 = hex::decode(&marker.md5)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Into::into);
    let mut package_record =
        rattler_conda_types::PackageRecord::from_index_json(index, Some(marker.size), sha256, md5)
            .with_context(|| format!("info/index.json of {} is not usable", record.identifier))?;
    let wanted = &record.package_record;
    if package_record.name != wanted.name
        || package_record.version != wanted.version
        || package_record.build != wanted.build
    {
        bail!(
            "{} holds the package {}-{}-{}, not what its file name says",
            pkgr_redact::redact_url(&record.url),
            package_record.name.as_normalized(),
            package_record.version,
            package_record.build
        );
    }
    if package_record.subdir.is_empty() {
        package_record.subdir.clone_from(&wanted.subdir);
    }
    Ok(RepoDataRecord {
        package_record,
        identifier: record.identifier.clone(),
        url: record.url.clone(),
        channel: record.channel.clone(),
    })
}

fn report(progress: &Progress, event: &TransactionEvent<'_>) {
    match event {
        TransactionEvent::Unlinked(record) => {
            progress.package_linked();
            progress.line(&format!("removed {}", record.identifier));
        }
        TransactionEvent::Linked(record) => {
            progress.package_linked();
            progress.line(&format!("linked {}", record.identifier));
        }
        TransactionEvent::Clobbered {
            path,
            loser,
            winner,
        } => progress.warn(&format!(
            "{loser} and {winner} both ship `{}`: {winner}'s file (linked later) is in place; removing either package leaves it",
            path.display()
        )),
        TransactionEvent::Message { package, text } => {
            progress.line(&format!("message from {package}:\n{}", text.trim_end()));
        }
        TransactionEvent::Warning(text) => progress.warn(text),
    }
}

/// The spec an installed package was asked for with, if any (conda writes
/// the string `None` for dependencies).
pub fn requested_spec_of(record: &PrefixRecord) -> Option<String> {
    #[allow(deprecated)]
    let single = record.requested_spec.clone();
    single
        .into_iter()
        .chain(record.requested_specs.iter().cloned())
        .find(|s| !s.is_empty() && s != "None")
}

/// Whether the user's spec text names package `name`.
pub fn spec_names(spec: &str, name: &str) -> bool {
    MatchSpec::from_str(spec, ParseStrictness::Lenient)
        .ok()
        .and_then(|s| s.name.as_exact().map(|n| n.as_normalized() == name))
        .unwrap_or(false)
}

/// Appends the change to `conda-meta/history`; `specs_kind` is `update` or
/// `remove`, as conda writes it.
pub fn record_history(
    prefix: &Path,
    plan: &Plan,
    specs_kind: &str,
    specs: &[String],
) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let timestamp = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string();
    let unlinked: Vec<RepoDataRecord> = plan
        .unlink
        .iter()
        .map(|r| r.repodata_record.clone())
        .collect();
    pkgr_prefix::append_history(
        prefix,
        &command.join(" "),
        &plan.link,
        &unlinked,
        specs_kind,
        specs,
        &timestamp,
    )?;
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
