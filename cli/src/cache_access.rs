//! Opening the package cache: with the configured fetcher and this
//! process's jobs permits for the commands that fetch and link
//! ([`JobLimitedCache`]), or plain for the maintenance commands.

use std::sync::Arc;

use anyhow::Context;
use pkgr_cache::PackageCache;
use pkgr_fetch::Fetcher;
use pkgr_install::{Installer, LinkMode};
use tokio::sync::Semaphore;
use url::Url;

use crate::cli::GlobalArgs;
use crate::output::Progress;
use crate::paths;

/// The shared package cache, opened with the configured fetcher, and the
/// semaphore of this process's jobs permits (`--jobs`) that bounds its
/// concurrent downloads, extractions and links: what every command that
/// fetches or links works with.
pub struct JobLimitedCache {
    /// The package cache.
    pub cache: PackageCache,
    /// Bounds downloads, extractions and linking.
    pub jobs: Arc<Semaphore>,
    /// The `allow_unverified_packages` setting.
    pub allow_unverified: bool,
}

impl JobLimitedCache {
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
        let channel_config = crate::channels::channel_config(global)?;
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

/// The cache named by the global options, with a fetcher of default
/// settings (`clean` and `cache verify` download nothing).
pub fn open_for_maintenance(global: &GlobalArgs) -> anyhow::Result<PackageCache> {
    let root = paths::cache_root(global)?;
    Ok(PackageCache::open(&root, Fetcher::new()?)?)
}
