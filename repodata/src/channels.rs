//! Loading channels: each channel's `<platform>/` and `noarch/` repodata
//! (sharded when the channel serves it, else repodata.json) through the
//! cache, indexed for a solve ([`load_channels`]); the shards a solve can
//! reach fetched before it ([`prefetch_shards`]).

use std::collections::{HashMap, HashSet};

use pkgr_cache::{PackageCache, Reporter};
use rattler_conda_types::{Channel, MatchSpec, RepoDataRecord, Subdir};
use url::Url;

use crate::cached::RepodataFile;
use crate::channel_names::channel_as_shown;
use crate::error::{channel_error, http_refusal};
use crate::shards::ShardIndex;
use crate::subdir::{with_slash, SubdirIndex};
use crate::RepodataError;

/// The subdirs pkgr reads for `platform`: the platform itself and `noarch`.
pub fn subdirs_for(platform: Subdir) -> Vec<Subdir> {
    if platform == Subdir::NoArch {
        vec![Subdir::NoArch]
    } else {
        vec![platform, Subdir::NoArch]
    }
}

/// Fetches (through the cache) and indexes the repodata of every channel for
/// `platform` and `noarch`. A channel missing one of the two is fine; missing
/// both is an error naming the URLs tried.
#[tracing::instrument(level = "debug", skip_all, fields(channels = channels.len(), platform = %platform))]
pub async fn load_channels(
    cache: &PackageCache,
    channels: &[Channel],
    platform: Subdir,
    reporter: &dyn Reporter,
) -> Result<Vec<SubdirIndex>, RepodataError> {
    let mut jobs = Vec::new();
    for channel in channels {
        for subdir in subdirs_for(platform) {
            let url = channel.platform_url(subdir);
            tracing::debug!(url = %pkgr_redact::redact_url(&url), "loading repodata");
            let span = tracing::debug_span!("load_subdir", url = %pkgr_redact::redact_url(&url));
            jobs.push(tracing::Instrument::instrument(
                async move {
                    // Sharded (CEP-16) when the channel serves it, else the
                    // monolithic repodata.json(.zst).
                    let fetched =
                        match crate::cached::fetch_shard_index(cache, &url, reporter).await {
                            Ok(Some(shards)) => Ok(Fetched::Shards(shards)),
                            Ok(None) => crate::cached::fetch_repodata(cache, &url, reporter)
                                .await
                                .map(|file| file.map_or(Fetched::Missing, Fetched::Monolithic)),
                            Err(e) => Err(e),
                        };
                    (channel, url, fetched)
                },
                span,
            ));
        }
    }
    let fetched = futures::future::join_all(jobs).await;
    let mut indexes = Vec::new();
    let mut found: HashMap<String, bool> = HashMap::new();
    let mut tried: HashMap<String, Vec<String>> = HashMap::new();
    let mut parse_jobs = Vec::new();
    let mut missing = Vec::new();
    for (channel, url, path) in fetched {
        let name = channel.canonical_name();
        tried.entry(name.clone()).or_default().push(format!(
            "{}repodata.json",
            pkgr_redact::redact_url(&with_slash(&url))
        ));
        let found_any = found.entry(name.clone()).or_insert(false);
        match path {
            Ok(Fetched::Shards(shards)) => {
                *found_any = true;
                indexes.push(SubdirIndex::sharded(channel.clone(), url, shards));
            }
            Ok(Fetched::Monolithic(path)) => {
                *found_any = true;
                let (owned_channel, owned_url) = (channel.clone(), url.clone());
                parse_jobs.push((
                    channel,
                    url,
                    tokio::task::spawn_blocking(move || {
                        SubdirIndex::from_file(owned_channel, owned_url, path)
                    }),
                ));
            }
            Ok(Fetched::Missing) => missing.push(SubdirIndex::missing(channel.clone(), url)),
            Err(source) => {
                if let pkgr_cache::CacheError::BrokenRepodata { url, problem } = &source {
                    return Err(RepodataError::BrokenRepodata {
                        url: url.clone(),
                        message: problem.clone(),
                    });
                }
                if let Some((url, status)) = http_refusal(&source) {
                    return Err(RepodataError::NeedsCredentials {
                        channel: pkgr_redact::redact_url(channel.base_url.url())
                            .trim_end_matches('/')
                            .to_owned(),
                        url: url.to_owned(),
                        status,
                    });
                }
                return Err(channel_error(cache, channel, source));
            }
        }
    }
    for channel in channels {
        let name = channel.canonical_name();
        if !found.get(&name).copied().unwrap_or(false) {
            return Err(RepodataError::ChannelNotFound {
                channel: channel_as_shown(channel),
                tried: tried.remove(&name).unwrap_or_default(),
            });
        }
    }
    for (channel, url, job) in parse_jobs {
        let parsed = job
            .await
            .map_err(|e| RepodataError::Internal(format!("reading repodata failed: {e}")))?;
        let index = match parsed {
            Err(RepodataError::BrokenRepodata { .. }) if url.scheme() != "file" => {
                // A cached copy that does not parse is a cache miss: forget it
                // (validators too, so no 304 brings it back) and fetch anew once.
                reread_broken_cache(cache, channel, &url, reporter).await?
            }
            other => other?,
        };
        indexes.push(index);
    }
    indexes.extend(missing);
    Ok(indexes)
}

/// What a channel subdir turned out to have.
enum Fetched {
    Shards(ShardIndex),
    Monolithic(RepodataFile),
    Missing,
}

/// How many shards are fetched at once.
const SHARDS_IN_FLIGHT: usize = 32;

/// Fetches the shards a solve of `specs` (with `locked`) can reach, breadth
/// first over `depends` (the same walk [`pkgr_solver::solve`] makes, so every name it asks
/// for is there), many at once. Does nothing when no subdir is sharded.
#[tracing::instrument(level = "debug", skip_all, fields(specs = specs.len(), shards))]
pub async fn prefetch_shards(
    cache: &PackageCache,
    indexes: &[SubdirIndex],
    specs: &[MatchSpec],
    locked: &[RepoDataRecord],
) -> Result<(), RepodataError> {
    if indexes.iter().all(|i| i.sharded.is_none()) {
        return Ok(());
    }
    let mut fetched = 0;
    let mut seen: HashSet<String> = HashSet::new();
    let mut frontier: Vec<String> = specs
        .iter()
        .filter_map(pkgr_solver::exact_name)
        .chain(
            locked
                .iter()
                .map(|r| r.package_record.name.as_normalized().to_owned()),
        )
        .filter(|n| seen.insert(n.clone()))
        .collect();
    while !frontier.is_empty() {
        fetched += fetch_shards(cache, indexes, &frontier).await?;
        let mut next = Vec::new();
        for name in &frontier {
            for index in indexes {
                for record in index.records(name)? {
                    for dep in &record.package_record.depends {
                        let dep = pkgr_solver::dependency_name(dep);
                        if !dep.starts_with("__") && !dep.is_empty() && seen.insert(dep.to_owned())
                        {
                            next.push(dep.to_owned());
                        }
                    }
                }
            }
        }
        frontier = next;
    }
    tracing::Span::current().record("shards", fetched);
    Ok(())
}

/// Fetches the shards of `names` of every sharded subdir that has them,
/// many at once, and loads them into their index. Returns how many.
#[tracing::instrument(level = "debug", skip_all, fields(names = names.len(), shards))]
pub(crate) async fn fetch_shards(
    cache: &PackageCache,
    indexes: &[SubdirIndex],
    names: &[String],
) -> Result<usize, RepodataError> {
    use futures::{StreamExt, TryStreamExt};
    let jobs: Vec<(&SubdirIndex, &String, [u8; 32])> = names
        .iter()
        .flat_map(|name| {
            indexes.iter().filter_map(move |index| {
                let sharded = index.sharded.as_ref()?;
                let hash = sharded.index.shards.get(name)?;
                Some((index, name, *hash))
            })
        })
        .collect();
    let count = jobs.len();
    tracing::Span::current().record("shards", count);
    futures::stream::iter(jobs)
        .map(|(index, name, hash)| async move {
            let sharded = index
                .sharded
                .as_ref()
                .ok_or_else(|| RepodataError::Internal(String::from("not a sharded subdir")))?;
            let shard = crate::shards::fetch_shard(cache, &sharded.index, &hash)
                .await
                .map_err(|source| channel_error(cache, index.channel(), source))?;
            index.load_shard(name, &shard)
        })
        .buffer_unordered(SHARDS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
}

/// Discards the cached repodata of `url` and indexes a fresh download.
async fn reread_broken_cache(
    cache: &PackageCache,
    channel: &Channel,
    url: &Url,
    reporter: &dyn Reporter,
) -> Result<SubdirIndex, RepodataError> {
    let failed = |source| channel_error(cache, channel, source);
    crate::cached::discard_repodata(cache, url, reporter)
        .await
        .map_err(failed)?;
    let Some(file) = crate::cached::fetch_repodata(cache, url, reporter)
        .await
        .map_err(failed)?
    else {
        return Err(RepodataError::BrokenRepodata {
            url: pkgr_redact::redact_url(url),
            message: String::from("the cached copy was broken and the channel no longer has it"),
        });
    };
    let (channel, url) = (channel.clone(), url.clone());
    tokio::task::spawn_blocking(move || SubdirIndex::from_file(channel, url, file))
        .await
        .map_err(|e| RepodataError::Internal(format!("reading repodata failed: {e}")))?
}
