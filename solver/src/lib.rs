//! From channels to the records to install.
//!
//! [`load_channels`] gets each channel's `<platform>/repodata.json` and
//! `noarch/repodata.json` through the cache ([`pkgr_cache::PackageCache::fetch_repodata`]),
//! [`SubdirIndex`] reads a repodata file lazily (one pass that only finds where
//! each record is; a record is parsed when the solve needs its package name), and
//! [`solve`] hands the records of the names the request can reach to
//! `rattler_solve`'s resolvo backend together with the machine's virtual
//! packages.
//!
//! # What a channel is not trusted with
//!
//! A channel chooses which packages exist, not where pkgr writes or what it
//! reads locally:
//! - a record the solve chooses must name one file that is its own
//!   ([`pkgr_cache::repodata_index::check_record`]: no `/`, `\` or `..` in
//!   its name, version or build, and a file name that is
//!   `<name>-<version>-<build>.conda` / `.tar.bz2`), else the solve fails
//!   with [`SolverError::UnsafeRecord`] naming the channel and the record.
//!   Records no solve chooses are left alone: one hostile record does not
//!   break installs of the channel's other packages, and a choice is never
//!   silently replaced by an older record;
//! - an http(s) channel's `info.base_url` (and a sharded one's
//!   `shards_base_url`) may point only at http(s) URLs
//!   ([`SolverError::RefusedRepodata`]); a `file://` channel may point at
//!   local files.
//!
//! Failures to load a channel are said as what they are: the network
//! ([`SolverError::ChannelUnreachable`]), a full cache filesystem
//! ([`SolverError::CacheFull`]), anything else
//! ([`SolverError::ChannelFailed`]).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use pkgr_cache::{PackageCache, RepodataFile, RepodataIndex, Reporter, ShardIndex};
use rattler_conda_types::package::DistArchiveIdentifier;
use rattler_conda_types::{
    Channel, GenericVirtualPackage, MatchSpec, Matches, PackageName, PackageRecord, RepoDataRecord,
    Subdir,
};
use rattler_solve::{SolverImpl, SolverTask};
use serde_json::value::RawValue;
use url::Url;

/// Everything that can go wrong between channels and a solution.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// Neither `<platform>/` nor `noarch/` of a channel exists.
    #[error("channel {channel} has no repodata.json (tried {})", tried.join(", "))]
    ChannelNotFound {
        /// The channel.
        channel: String,
        /// URLs tried (redacted).
        tried: Vec<String>,
    },
    /// A channel answered 401 or 403: it needs credentials pkgr was not given
    /// (or not the right ones).
    #[error("channel {channel} needs credentials: {url} answered HTTP {status} (store them with `pkgr auth login <host>`, or in ~/.netrc, or give them in the channel URL)")]
    NeedsCredentials {
        /// The channel's URL (redacted).
        channel: String,
        /// The URL that was refused (redacted).
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// A channel could not be reached: the network failed (no connection,
    /// a timeout, a broken-off transfer), as the error it carries says.
    #[error("channel {channel} is unreachable")]
    ChannelUnreachable {
        /// The channel.
        channel: String,
        /// Why.
        #[source]
        source: Box<pkgr_cache::CacheError>,
    },
    /// The filesystem of the cache is full (or the user's quota there is
    /// used up) while a channel's repodata was being stored: nothing is
    /// wrong with the channel.
    #[error("no space left on the filesystem of the cache {} while storing the repodata of channel {channel}: free some space there (`pkgr clean --all` removes cached repodata and unused packages), or use a cache elsewhere (--cache-dir or PKGR_CACHE_DIR)", cache.display())]
    CacheFull {
        /// The channel.
        channel: String,
        /// The cache's root directory.
        cache: PathBuf,
        /// What failed, with the file being written.
        #[source]
        source: Box<pkgr_cache::CacheError>,
    },
    /// A channel's repodata could not be loaded for another reason than the
    /// network (an HTTP error status, the cache, a local file): the error it
    /// carries says which.
    #[error("could not load the repodata of channel {channel}")]
    ChannelFailed {
        /// The channel.
        channel: String,
        /// Why.
        #[source]
        source: Box<pkgr_cache::CacheError>,
    },
    /// A channel's repodata says its packages are somewhere pkgr must not
    /// fetch from for it (an http(s) channel pointing at `file://`).
    #[error("refusing the repodata at {url}: {message}")]
    RefusedRepodata {
        /// Where it came from (redacted).
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The solve chose a record whose file name, name, version or build
    /// cannot name one file (a `/` or `..` in it, or a file name that is not
    /// `<name>-<version>-<build>.conda`): pkgr names cache entries, lock
    /// files and `conda-meta/` files after them, so it refuses the record
    /// rather than write where it says.
    #[error("refusing {file_name} from channel {channel}: {problem}; a record like this could make pkgr write outside its cache or environment, so the channel's repodata is broken or hostile (tell its maintainers, or ask for another version or build of {name})")]
    UnsafeRecord {
        /// The record's channel (without credentials).
        channel: String,
        /// The record's file name as the channel gives it (escaped).
        file_name: String,
        /// The package name it was asked for as.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A repodata.json is not valid.
    #[error("broken repodata.json at {url}: {message}")]
    BrokenRepodata {
        /// Where it came from (redacted).
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A requested package exists in no channel.
    #[error(
        "package `{name}` was not found in {channels}{}{}",
        suggestion(suggestions),
        notes.iter().map(|n| format!("; note: {n}")).collect::<String>()
    )]
    PackageNotFound {
        /// The package name.
        name: String,
        /// The channels searched.
        channels: String,
        /// Close names that do exist.
        suggestions: Vec<String>,
        /// Subdirs of those channels that were missing, and how (e.g.
        /// `http://host/chan/linux-64/repodata.json answered 404 Not Found`).
        notes: Vec<String>,
    },
    /// The request cannot be satisfied.
    #[error("the request cannot be satisfied:\n{0}")]
    Unsatisfiable(String),
    /// Anything else the solver reported.
    #[error("the solver failed: {0}")]
    Solver(String),
    /// Reading a local file failed.
    #[error("could not read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Virtual package detection failed.
    #[error("could not detect the system's virtual packages: {0}")]
    VirtualPackages(String),
}

fn suggestion(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    }
}

/// Where the text of a subdir's repodata.json is.
#[derive(Debug)]
enum RepodataText {
    /// Read whole (a local channel's file, or a test's text).
    Memory(Vec<u8>),
    /// The cached file, read span by span as names are asked for.
    File(std::sync::Mutex<fs_err::File>),
}

/// The repodata of one channel subdir, read lazily: records are parsed only
/// when [`SubdirIndex::records`] is asked for their package name, from the
/// spans of the file that hold them ([`RepodataIndex`]). For cached repodata
/// the index comes with the file, so a solve reads only the spans it needs.
#[derive(Debug)]
pub struct SubdirIndex {
    channel: Channel,
    subdir_url: Url,
    package_base: Url,
    text: RepodataText,
    by_name: HashMap<Box<str>, Vec<Range<u64>>>,
    /// Set for a subdir the channel does not have (treated as empty, as conda
    /// does): what happened to its repodata.json, for messages.
    missing: Option<String>,
    /// Set for a channel served sharded (CEP-16): its shard index and the
    /// records of the shards fetched so far ([`prefetch_shards`]).
    sharded: Option<Sharded>,
}

/// The shards of a sharded subdir.
#[derive(Debug)]
struct Sharded {
    index: ShardIndex,
    loaded: std::sync::Mutex<HashMap<String, Vec<RepoDataRecord>>>,
}

impl SubdirIndex {
    fn broken(subdir_url: &Url, message: String) -> SolverError {
        SolverError::BrokenRepodata {
            url: format!(
                "{}repodata.json",
                pkgr_redact::redact_url(&with_slash(subdir_url))
            ),
            message,
        }
    }

    /// Indexes `text`, the repodata.json of `channel` at `subdir_url`.
    pub fn parse(channel: Channel, subdir_url: Url, text: String) -> Result<Self, SolverError> {
        let index = RepodataIndex::build(text.as_bytes())
            .map_err(|message| Self::broken(&subdir_url, message))?;
        Self::with_index(
            channel,
            subdir_url,
            RepodataText::Memory(text.into_bytes()),
            index,
        )
    }

    fn with_index(
        channel: Channel,
        subdir_url: Url,
        text: RepodataText,
        index: RepodataIndex,
    ) -> Result<Self, SolverError> {
        let package_base = package_base(&subdir_url, index.base_url.as_deref())?;
        Ok(Self {
            channel,
            subdir_url,
            package_base,
            text,
            by_name: index.names,
            missing: None,
            sharded: None,
        })
    }

    /// An empty index for a subdir `channel` does not have: its
    /// `repodata.json` at `subdir_url` answered 404 (http) or does not exist
    /// (local). Kept so that a package not found can say so.
    pub fn missing(channel: Channel, subdir_url: Url) -> Self {
        let repodata = format!(
            "{}repodata.json",
            pkgr_redact::redact_url(&with_slash(&subdir_url))
        );
        let how = match subdir_url.scheme() {
            "http" | "https" => format!("{repodata} answered 404 Not Found"),
            _ => format!("{repodata} does not exist"),
        };
        Self {
            package_base: subdir_url.clone(),
            channel,
            subdir_url,
            text: RepodataText::Memory(Vec::new()),
            by_name: HashMap::new(),
            missing: Some(how),
            sharded: None,
        }
    }

    /// For a subdir the channel does not have ([`SubdirIndex::missing`]):
    /// which URL failed and how.
    pub fn missing_note(&self) -> Option<&str> {
        self.missing.as_deref()
    }

    /// An opened repodata file: with its index (cached repodata) nothing but
    /// the index is read now; without (a local channel), it is read and
    /// indexed.
    pub fn from_file(
        channel: Channel,
        subdir_url: Url,
        mut repodata: RepodataFile,
    ) -> Result<Self, SolverError> {
        if let Some(index) = repodata.index.take() {
            let file = RepodataText::File(std::sync::Mutex::new(repodata.file));
            return Self::with_index(channel, subdir_url, file, index);
        }
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut repodata.file, &mut text).map_err(|source| {
            SolverError::Io {
                path: repodata.path.clone(),
                source,
            }
        })?;
        let index =
            RepodataIndex::build(&text).map_err(|message| Self::broken(&subdir_url, message))?;
        Self::with_index(channel, subdir_url, RepodataText::Memory(text), index)
    }

    /// The bytes of `span`, wrapped in `{` `}`: a JSON object of records.
    fn span_object(&self, span: &Range<u64>) -> Result<Vec<u8>, SolverError> {
        let len = usize::try_from(span.end - span.start).unwrap_or(usize::MAX);
        let mut object = Vec::with_capacity(len.saturating_add(2));
        object.push(b'{');
        match &self.text {
            RepodataText::Memory(text) => {
                let range = usize::try_from(span.start).unwrap_or(usize::MAX)
                    ..usize::try_from(span.end).unwrap_or(usize::MAX);
                let bytes = text.get(range).ok_or_else(|| {
                    Self::broken(&self.subdir_url, String::from("its index is out of range"))
                })?;
                object.extend_from_slice(bytes);
            }
            RepodataText::File(file) => {
                use std::io::{Read, Seek, SeekFrom};
                let mut file = file
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                object.resize(len + 1, 0);
                file.seek(SeekFrom::Start(span.start))
                    .and_then(|_| file.read_exact(&mut object[1..]))
                    .map_err(|source| SolverError::Io {
                        path: file.path().to_path_buf(),
                        source,
                    })?;
            }
        }
        object.push(b'}');
        Ok(object)
    }

    /// The channel this index belongs to.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Every package name in this subdir.
    pub fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.sharded {
            Some(sharded) => Box::new(sharded.index.shards.keys().map(String::as_str)),
            None => Box::new(self.by_name.keys().map(AsRef::as_ref)),
        }
    }

    /// A subdir served sharded: only its index is read now; the shards of
    /// the names a solve reaches are fetched by [`prefetch_shards`].
    pub fn sharded(channel: Channel, subdir_url: Url, index: ShardIndex) -> Self {
        Self {
            package_base: index.packages_base.clone(),
            channel,
            subdir_url,
            text: RepodataText::Memory(Vec::new()),
            by_name: HashMap::new(),
            missing: None,
            sharded: Some(Sharded {
                index,
                loaded: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The records of a fetched shard of package `name`, kept for
    /// [`Self::records`].
    fn load_shard(&self, name: &str, shard: &rmpv::Value) -> Result<(), SolverError> {
        let Some(sharded) = &self.sharded else {
            return Ok(());
        };
        let shard = pkgr_cache::shards::msgpack_to_json(shard);
        let mut members: Vec<(&String, &serde_json::Value)> = Vec::new();
        for section in ["packages", "packages.conda"] {
            if let Some(map) = shard.get(section).and_then(serde_json::Value::as_object) {
                members.extend(map.iter());
            }
        }
        let conda_stems: HashSet<&str> = members
            .iter()
            .filter_map(|(k, _)| k.strip_suffix(".conda"))
            .collect();
        let channel = record_channel(&self.channel);
        let subdir = self.subdir_name();
        let records = members
            .iter()
            .filter(|(k, _)| {
                k.strip_suffix(".tar.bz2")
                    .is_none_or(|stem| !conda_stems.contains(stem))
            })
            .map(|(file_name, value)| {
                let broken = |message: String| {
                    Self::broken(
                        &self.subdir_url,
                        format!("shard of {name}, record {file_name}: {message}"),
                    )
                };
                let mut package_record: PackageRecord =
                    serde_json::from_value((*value).clone()).map_err(|e| broken(e.to_string()))?;
                if package_record.subdir.is_empty() {
                    package_record.subdir.clone_from(&subdir);
                }
                Ok(RepoDataRecord {
                    package_record,
                    identifier: DistArchiveIdentifier::from_str(file_name)
                        .map_err(|e| broken(e.to_string()))?,
                    url: self
                        .package_base
                        .join(file_name)
                        .map_err(|e| broken(e.to_string()))?,
                    channel: Some(channel.clone()),
                })
            })
            .collect::<Result<Vec<_>, SolverError>>()?;
        let mut records = records;
        candidate_order(&mut records);
        sharded
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), records);
        Ok(())
    }

    /// The subdir's name, the last segment of its URL: the subdir of a
    /// record that does not name its own (conda-index keeps a record's
    /// keys as its package has them, and packages from before conda 4.3
    /// have no `subdir`; conda too takes it from the channel).
    fn subdir_name(&self) -> String {
        self.subdir_url
            .path_segments()
            .and_then(|mut s| s.rfind(|p| !p.is_empty()).map(ToOwned::to_owned))
            .unwrap_or_default()
    }

    /// Whether any record of `name` is here.
    pub fn contains(&self, name: &str) -> bool {
        match &self.sharded {
            Some(sharded) => sharded.index.shards.contains_key(name),
            None => self.by_name.contains_key(name),
        }
    }

    /// Parses the records of package `name` (a `.tar.bz2` is left out when
    /// the same package is there as `.conda`).
    pub fn records(&self, name: &str) -> Result<Vec<RepoDataRecord>, SolverError> {
        if let Some(sharded) = &self.sharded {
            if !sharded.index.shards.contains_key(name) {
                return Ok(Vec::new());
            }
            let loaded = sharded
                .loaded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return loaded.get(name).cloned().ok_or_else(|| {
                SolverError::Solver(format!(
                    "the shard of {name} was not fetched before the solve (a pkgr bug)"
                ))
            });
        }
        let Some(spans) = self.by_name.get(name) else {
            return Ok(Vec::new());
        };
        let channel = record_channel(&self.channel);
        let subdir = self.subdir_name();
        let objects = spans
            .iter()
            .map(|span| self.span_object(span))
            .collect::<Result<Vec<_>, _>>()?;
        let mut members: Vec<(String, &RawValue)> = Vec::new();
        for object in &objects {
            let map: HashMap<String, &RawValue> = serde_json::from_slice(object)
                .map_err(|e| Self::broken(&self.subdir_url, format!("records of {name}: {e}")))?;
            members.extend(map);
        }
        let conda_stems: HashSet<String> = members
            .iter()
            .filter_map(|(k, _)| k.strip_suffix(".conda").map(ToOwned::to_owned))
            .collect();
        let mut records = members
            .iter()
            .filter(|(k, _)| {
                k.strip_suffix(".tar.bz2")
                    .is_none_or(|stem| !conda_stems.contains(stem))
            })
            .map(|(file_name, raw)| {
                let broken = |message: String| {
                    Self::broken(&self.subdir_url, format!("record {file_name}: {message}"))
                };
                let mut package_record: PackageRecord =
                    serde_json::from_str(raw.get()).map_err(|e| broken(e.to_string()))?;
                if package_record.subdir.is_empty() {
                    package_record.subdir.clone_from(&subdir);
                }
                let identifier = DistArchiveIdentifier::from_str(file_name)
                    .map_err(|e| broken(e.to_string()))?;
                let url = self
                    .package_base
                    .join(file_name)
                    .map_err(|e| broken(e.to_string()))?;
                Ok(RepoDataRecord {
                    package_record,
                    identifier,
                    url,
                    channel: Some(channel.clone()),
                })
            })
            .collect::<Result<Vec<_>, SolverError>>()?;
        candidate_order(&mut records);
        Ok(records)
    }
}

/// Puts a name's records in the order the solver is given them: by file
/// name, the same in every run.
///
/// The order matters: rattler_solve's tie-breaks between builds of the same
/// version and build number (by the versions their dependencies can get)
/// come out differently for different input orders (py-rattler 0.28 does the
/// same on shuffled repodata; where in its `conda_sorting` is not pinned
/// down). Taking a HashMap's order, which changes from run to run, made
/// `scipy` on conda's index.json come out as np17py33 (conda's answer) or
/// np16py27 at random.
fn candidate_order(records: &mut [RepoDataRecord]) {
    records.sort_by_cached_key(|r| r.identifier.to_file_name());
}

/// The channel as records keep it (`RepoDataRecord::channel`, written to
/// conda-meta): its base URL without credentials, a token as `<TOKEN>`
/// ([`pkgr_redact::url_for_record`]). Without credentials this is rattler's
/// canonical name.
pub fn record_channel(channel: &Channel) -> String {
    pkgr_redact::url_for_record(channel.base_url.url())
}

/// Where package files of a subdir live: the subdir URL, or `info.base_url`
/// (absolute, or relative to the subdir URL). An http(s) channel may only
/// point at http(s) URLs ([`pkgr_cache::shards::check_base_scheme`]).
fn package_base(subdir_url: &Url, base_url: Option<&str>) -> Result<Url, SolverError> {
    let base = resolve_package_base(subdir_url, base_url).map_err(|message| {
        SolverError::BrokenRepodata {
            url: format!(
                "{}repodata.json",
                pkgr_redact::redact_url(&with_slash(subdir_url))
            ),
            message,
        }
    })?;
    pkgr_cache::shards::check_base_scheme(subdir_url, &base, "info.base_url").map_err(
        |message| SolverError::RefusedRepodata {
            url: format!(
                "{}repodata.json",
                pkgr_redact::redact_url(&with_slash(subdir_url))
            ),
            message,
        },
    )?;
    Ok(base)
}

fn resolve_package_base(subdir_url: &Url, base_url: Option<&str>) -> Result<Url, String> {
    let mut base = match base_url {
        None => subdir_url.clone(),
        Some(b) => match Url::parse(b) {
            Ok(u) => u,
            Err(url::ParseError::RelativeUrlWithoutBase) => with_slash(subdir_url)
                .join(b)
                .map_err(|e| format!("info.base_url `{b}`: {e}"))?,
            Err(e) => return Err(format!("info.base_url `{b}`: {e}")),
        },
    };
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

fn with_slash(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

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
pub async fn load_channels(
    cache: &PackageCache,
    channels: &[Channel],
    platform: Subdir,
    reporter: &dyn Reporter,
) -> Result<Vec<SubdirIndex>, SolverError> {
    let mut jobs = Vec::new();
    for channel in channels {
        for subdir in subdirs_for(platform) {
            let url = channel.platform_url(subdir);
            tracing::debug!(url = %pkgr_redact::redact_url(&url), "loading repodata");
            jobs.push(async move {
                // Sharded (CEP-16) when the channel serves it, else the
                // monolithic repodata.json(.zst).
                let fetched = match cache.fetch_shard_index(&url, reporter).await {
                    Ok(Some(shards)) => Ok(Fetched::Shards(shards)),
                    Ok(None) => cache
                        .fetch_repodata(&url, reporter)
                        .await
                        .map(|file| file.map_or(Fetched::Missing, Fetched::Monolithic)),
                    Err(e) => Err(e),
                };
                (channel, url, fetched)
            });
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
                    return Err(SolverError::BrokenRepodata {
                        url: url.clone(),
                        message: problem.clone(),
                    });
                }
                if let Some((url, status)) = refused(&source) {
                    return Err(SolverError::NeedsCredentials {
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
            return Err(SolverError::ChannelNotFound {
                channel: display_channel(channel),
                tried: tried.remove(&name).unwrap_or_default(),
            });
        }
    }
    for (channel, url, job) in parse_jobs {
        let parsed = job
            .await
            .map_err(|e| SolverError::Solver(format!("reading repodata failed: {e}")))?;
        let index = match parsed {
            Err(SolverError::BrokenRepodata { .. }) if url.scheme() != "file" => {
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
/// first over `depends` (the same walk [`solve`] makes, so every name it asks
/// for is there), many at once. Does nothing when no subdir is sharded.
pub async fn prefetch_shards(
    cache: &PackageCache,
    indexes: &[SubdirIndex],
    specs: &[MatchSpec],
    locked: &[RepoDataRecord],
) -> Result<(), SolverError> {
    if indexes.iter().all(|i| i.sharded.is_none()) {
        return Ok(());
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut frontier: Vec<String> = specs
        .iter()
        .filter_map(spec_name)
        .chain(
            locked
                .iter()
                .map(|r| r.package_record.name.as_normalized().to_owned()),
        )
        .filter(|n| seen.insert(n.clone()))
        .collect();
    while !frontier.is_empty() {
        fetch_shards(cache, indexes, &frontier).await?;
        let mut next = Vec::new();
        for name in &frontier {
            for index in indexes {
                for record in index.records(name)? {
                    for dep in &record.package_record.depends {
                        let dep = dependency_name(dep);
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
    Ok(())
}

/// Fetches the shards of `names` of every sharded subdir that has them,
/// many at once, and loads them into their index.
async fn fetch_shards(
    cache: &PackageCache,
    indexes: &[SubdirIndex],
    names: &[String],
) -> Result<(), SolverError> {
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
    futures::stream::iter(jobs)
        .map(|(index, name, hash)| async move {
            let sharded = index
                .sharded
                .as_ref()
                .ok_or_else(|| SolverError::Solver(String::from("not a sharded subdir")))?;
            let shard = cache
                .fetch_shard(&sharded.index, &hash)
                .await
                .map_err(|source| channel_error(cache, index.channel(), source))?;
            index.load_shard(name, &shard)
        })
        .buffer_unordered(SHARDS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Every record of `indexes` that `spec` matches (`pkgr search`), newest
/// first: by name, then version, then build number, channels in priority
/// order. A name glob (`py*`) is matched against every name; only the
/// matching names' records are read (of a sharded subdir, only their shards
/// are fetched). A name no channel has is [`SolverError::PackageNotFound`]
/// (with the names it may be a typo of).
pub async fn search(
    cache: &PackageCache,
    indexes: &[SubdirIndex],
    spec: &MatchSpec,
) -> Result<Vec<RepoDataRecord>, SolverError> {
    let mut names: Vec<String> = match spec.name.as_exact() {
        Some(name) => vec![name.as_normalized().to_owned()],
        None => {
            let mut names: Vec<String> = indexes
                .iter()
                .flat_map(|index| {
                    index
                        .names()
                        .filter(|n| spec.name.matches(&PackageName::new_unchecked(*n)))
                        .map(ToOwned::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            names.sort();
            names.dedup();
            names
        }
    };
    names.retain(|n| indexes.iter().any(|i| i.contains(n)));
    if let (true, Some(name)) = (names.is_empty(), spec.name.as_exact()) {
        return Err(not_found(indexes, name.as_normalized()));
    }
    tracing::debug!(names = names.len(), "search: reading the matching names");
    fetch_shards(cache, indexes, &names).await?;
    let mut found: Vec<(usize, RepoDataRecord)> = Vec::new();
    for name in &names {
        for (priority, index) in indexes.iter().enumerate() {
            for record in index.records(name)? {
                if spec.matches(&record) {
                    found.push((priority, record));
                }
            }
        }
    }
    found.sort_by(|(pa, a), (pb, b)| {
        let (a, b) = (&a.package_record, &b.package_record);
        a.name
            .cmp(&b.name)
            .then_with(|| b.version.cmp(&a.version))
            .then_with(|| b.build_number.cmp(&a.build_number))
            .then_with(|| pa.cmp(pb))
            .then_with(|| a.build.cmp(&b.build))
    });
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

/// Discards the cached repodata of `url` and indexes a fresh download.
async fn reread_broken_cache(
    cache: &PackageCache,
    channel: &Channel,
    url: &Url,
    reporter: &dyn Reporter,
) -> Result<SubdirIndex, SolverError> {
    let failed = |source| channel_error(cache, channel, source);
    cache
        .discard_repodata(url, reporter)
        .await
        .map_err(failed)?;
    let Some(file) = cache.fetch_repodata(url, reporter).await.map_err(failed)? else {
        return Err(SolverError::BrokenRepodata {
            url: pkgr_redact::redact_url(url),
            message: String::from("the cached copy was broken and the channel no longer has it"),
        });
    };
    let (channel, url) = (channel.clone(), url.clone());
    tokio::task::spawn_blocking(move || SubdirIndex::from_file(channel, url, file))
        .await
        .map_err(|e| SolverError::Solver(format!("reading repodata failed: {e}")))?
}

/// What went wrong loading `channel`, said as what it was: the cache's
/// filesystem full ([`SolverError::CacheFull`]), the network
/// ([`SolverError::ChannelUnreachable`]), or anything else
/// ([`SolverError::ChannelFailed`], an HTTP status or a local error, which
/// its chain names). A full disk used to be reported as an unreachable
/// channel, which sent users to check their network.
fn channel_error(
    cache: &PackageCache,
    channel: &Channel,
    source: pkgr_cache::CacheError,
) -> SolverError {
    let channel = display_channel(channel);
    let source = Box::new(source);
    if storage_full(source.as_ref()) {
        SolverError::CacheFull {
            channel,
            cache: cache.root().to_path_buf(),
            source,
        }
    } else if network_failed(source.as_ref()) {
        SolverError::ChannelUnreachable { channel, source }
    } else {
        SolverError::ChannelFailed { channel, source }
    }
}

/// Whether `error`'s chain holds an I/O error saying the filesystem is full
/// (ENOSPC) or the user's quota on it is used up (EDQUOT).
fn storage_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// Whether `error`'s chain ends in the network failing: no connection, a
/// timeout, a transfer broken off (after retries, or on every mirror).
fn network_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(fetch) = e.downcast_ref::<pkgr_fetch::FetchError>() {
            return matches!(fetch.last(), pkgr_fetch::FetchError::Transport { .. });
        }
        current = e.source();
    }
    false
}

/// The URL and status of a 401/403 answer somewhere in `error`'s chain.
fn refused<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<(&'a str, u16)> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(pkgr_fetch::FetchError::Status { url, status }) =
            e.downcast_ref::<pkgr_fetch::FetchError>()
        {
            if matches!(status, 401 | 403) {
                return Some((url, *status));
            }
        }
        current = e.source();
    }
    None
}

/// A channel as a user would name it. A channel whose URL carries
/// credentials is shown as its redacted URL (its name may hold the token).
pub fn display_channel(channel: &Channel) -> String {
    match channel.base_url.url().scheme() {
        "http" | "https" if pkgr_redact::url_has_credentials(channel.base_url.url()) => {
            pkgr_redact::redact_url(channel.base_url.url())
                .trim_end_matches('/')
                .to_owned()
        }
        "http" | "https" => channel.name().trim_end_matches('/').to_owned(),
        _ => channel
            .base_url
            .url()
            .to_file_path()
            .map(|p| p.display().to_string().trim_end_matches('/').to_owned())
            .unwrap_or_else(|()| channel.base_url.to_string()),
    }
}

/// The virtual packages a solve for `platform` sees (`__unix`, `__linux`,
/// `__glibc`, `__osx`, `__win`, `__archspec`, `__cuda`...), honouring
/// `CONDA_OVERRIDE_*`. For this machine's platform they are detected; for
/// another (`--platform`), what is detected or overridden where it speaks
/// for that platform, else what the platform is assumed to provide.
pub fn detect_virtual_packages(
    platform: Subdir,
) -> Result<Vec<GenericVirtualPackage>, SolverError> {
    let overrides = rattler_virtual_packages::VirtualPackageOverrides::from_env();
    let detected =
        rattler_virtual_packages::VirtualPackages::detect_for_platform(platform, &overrides, None)
            .map_err(|e| SolverError::VirtualPackages(e.to_string()))?;
    Ok(detected.into_generic_virtual_packages().collect())
}

/// The package name a dependency string (`numpy >=1.26`, `python_abi 3.12.* *_cp312`,
/// `conda-forge::xz`) asks for.
fn dependency_name(dep: &str) -> &str {
    let dep = dep.trim();
    let dep = dep.rsplit("::").next().unwrap_or(dep);
    let end = dep
        .find(|c: char| c.is_whitespace() || "=<>!~[(".contains(c))
        .unwrap_or(dep.len());
    &dep[..end]
}

/// How channels of different priority are used (conda's `channel_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelPriority {
    /// A package's records come only from the highest-priority channel that
    /// has the package at all.
    Strict,
    /// Records of a higher-priority channel are preferred over any version
    /// of a lower-priority one, but a lower one is used when the higher ones
    /// cannot satisfy the request (conda's default).
    #[default]
    Flexible,
    /// Channels are ignored in the choice: the highest version wins,
    /// whichever channel has it.
    Disabled,
}

impl std::str::FromStr for ChannelPriority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Self::Strict),
            "flexible" | "true" => Ok(Self::Flexible),
            "disabled" | "false" => Ok(Self::Disabled),
            other => Err(format!(
                "`{other}` is not a channel priority (strict, flexible or disabled)"
            )),
        }
    }
}

impl std::fmt::Display for ChannelPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Strict => "strict",
            Self::Flexible => "flexible",
            Self::Disabled => "disabled",
        })
    }
}

/// What a solve may and must do besides satisfying its specs.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// conda's `--no-deps`: dependencies are ignored, the best record
    /// matching each spec is chosen on its own.
    pub no_deps: bool,
    /// How channels of different priority are used.
    pub channel_priority: ChannelPriority,
    /// Specs every chosen record of their name must satisfy, without
    /// requesting the package (pins: `conda-meta/pinned`, `--pin`,
    /// `pinned_packages`).
    pub constraints: Vec<MatchSpec>,
    /// Installed records that must not change (`--freeze-installed`).
    pub frozen: Vec<RepoDataRecord>,
    /// `--update-deps`: the dependencies of these packages (all the way
    /// down, through every record of the channels and the installed ones)
    /// are not kept at their installed versions.
    pub update_dependencies_of: Vec<String>,
}

/// Solves `specs` against `indexes` (in channel priority order) with
/// `virtual_packages`, returning the records to install, dependencies first.
///
/// `locked` are the records installed now: the solver keeps them where the
/// request allows (conda's "keep what is installed"); they may come from
/// channels not given this time. See [`SolveOptions`] for the rest.
pub fn solve(
    indexes: &[SubdirIndex],
    specs: &[MatchSpec],
    locked: &[RepoDataRecord],
    virtual_packages: Vec<GenericVirtualPackage>,
    options: &SolveOptions,
) -> Result<Vec<RepoDataRecord>, SolverError> {
    let no_deps = options.no_deps;
    let installed: HashSet<String> = locked
        .iter()
        .map(|r| pkgr_redact::url_for_record(&r.url))
        .collect();
    // Which names can the request reach? Parse only those records.
    let mut queue: VecDeque<String> = VecDeque::new();
    let mut seen: HashSet<String> = HashSet::new();
    for spec in specs {
        if let Some(name) = spec_name(spec) {
            let known = indexes.iter().any(|i| i.contains(&name))
                || locked
                    .iter()
                    .any(|r| r.package_record.name.as_normalized() == name);
            if !known {
                return Err(not_found(indexes, &name));
            }
            if seen.insert(name.clone()) {
                queue.push_back(name);
            }
        }
    }
    tracing::debug!(specs = specs.len(), locked = locked.len(), "solving");
    let mut per_index: Vec<Vec<RepoDataRecord>> = indexes.iter().map(|_| Vec::new()).collect();
    // With no_deps the solver sees records without dependencies; the records
    // returned are the originals (conda-meta must carry the real `depends`).
    let mut originals: HashMap<Url, RepoDataRecord> = HashMap::new();
    while let Some(name) = queue.pop_front() {
        for (index, records) in indexes.iter().zip(per_index.iter_mut()) {
            for mut record in index.records(&name)? {
                if no_deps {
                    originals.insert(record.url.clone(), record.clone());
                    record.package_record.depends.clear();
                    record.package_record.constrains.clear();
                }
                for dep in &record.package_record.depends {
                    let dep = dependency_name(dep);
                    if !dep.starts_with("__") && !dep.is_empty() && seen.insert(dep.to_owned()) {
                        queue.push_back(dep.to_owned());
                    }
                }
                records.push(record);
            }
        }
    }
    // Installed records keep their URL without credentials (conda-meta; see
    // `pkgr_redact::url_for_record`). Where a channel of this request has the
    // same package, take its URL, which can be fetched (a package relinked
    // when python moves may need fetching again).
    let fetchable: HashMap<String, (&Url, Option<_>)> = per_index
        .iter()
        .flatten()
        .map(|r| {
            (
                pkgr_redact::url_for_record(&r.url),
                (&r.url, r.package_record.sha256),
            )
        })
        .collect();
    let locked: Vec<RepoDataRecord> = locked
        .iter()
        .cloned()
        .map(|mut record| {
            if let Some((url, sha256)) = fetchable.get(&pkgr_redact::url_for_record(&record.url)) {
                if record.package_record.sha256.is_none() || *sha256 == record.package_record.sha256
                {
                    record.url = (*url).clone();
                }
            }
            if no_deps {
                originals.insert(record.url.clone(), record.clone());
                record.package_record.depends.clear();
                record.package_record.constrains.clear();
            }
            record
        })
        .collect();
    // A spec no record matches at all: say so plainly, with what there is
    // (resolvo's "No candidates were found for tool 9.*" names neither).
    for spec in specs {
        let Some(name) = spec_name(spec) else {
            continue;
        };
        let mut seen_urls = HashSet::new();
        let candidates: Vec<&RepoDataRecord> = per_index
            .iter()
            .flatten()
            .chain(locked.iter())
            .filter(|r| r.package_record.name.as_normalized() == name)
            .filter(|r| seen_urls.insert(pkgr_redact::url_for_record(&r.url)))
            .collect();
        if !candidates.is_empty() && !candidates.iter().any(|r| spec.matches(*r)) {
            let mut versions: Vec<&rattler_conda_types::Version> = candidates
                .iter()
                .map(|r| &*r.package_record.version)
                .collect();
            versions.sort();
            versions.dedup();
            let shown: Vec<String> = versions
                .iter()
                .rev()
                .take(10)
                .map(ToString::to_string)
                .collect();
            return Err(SolverError::Unsatisfiable(format!(
                "`{spec}` matches none of the {} records of {name} in the channels (versions there, newest first: {}{})",
                candidates.len(),
                shown.join(", "),
                if versions.len() > shown.len() { ", ..." } else { "" }
            )));
        }
    }
    let locked: Vec<RepoDataRecord> = if options.update_dependencies_of.is_empty() {
        locked
    } else {
        let moving = dependency_closure(
            per_index.iter().flatten().chain(locked.iter()),
            &options.update_dependencies_of,
        );
        locked
            .into_iter()
            .filter(|r| !moving.contains(r.package_record.name.as_normalized()))
            .collect()
    };
    let frozen: Vec<&RepoDataRecord> = locked
        .iter()
        .filter(|r| {
            options
                .frozen
                .iter()
                .any(|f| pkgr_redact::url_for_record(&f.url) == pkgr_redact::url_for_record(&r.url))
        })
        .collect();
    let task = SolverTask {
        specs: specs.to_vec(),
        locked_packages: locked.iter().collect(),
        pinned_packages: frozen,
        constraints: options.constraints.clone(),
        virtual_packages,
        channel_priority: match options.channel_priority {
            ChannelPriority::Strict => rattler_solve::ChannelPriority::Strict,
            ChannelPriority::Flexible => rattler_solve::ChannelPriority::Flexible,
            ChannelPriority::Disabled => rattler_solve::ChannelPriority::Disabled,
        },
        ..SolverTask::from_iter(per_index.iter().map(|records| records.iter()))
    };
    let solution = rattler_solve::resolvo::Solver
        .solve(task)
        .map_err(|e| match e {
            rattler_solve::SolveError::Unsolvable(messages) => {
                SolverError::Unsatisfiable(plain_words(&messages.join("\n")))
            }
            other => SolverError::Solver(other.to_string()),
        })?;
    let records: Vec<RepoDataRecord> = solution
        .records
        .into_iter()
        .map(|r| originals.remove(&r.url).unwrap_or(r))
        .collect();
    // A chosen record from a channel that cannot name one file is refused
    // here, before anything is fetched (records no solve chooses do no
    // harm, and refusing the whole channel for them would let one hostile
    // record break every install from it). What is installed already stays
    // as it is.
    for record in &records {
        if installed.contains(&pkgr_redact::url_for_record(&record.url)) {
            continue;
        }
        check_chosen(record)?;
    }
    Ok(PackageRecord::sort_topologically(records))
}

/// [`pkgr_cache::repodata_index::check_record`] of a record the solve chose,
/// as [`SolverError::UnsafeRecord`].
fn check_chosen(record: &RepoDataRecord) -> Result<(), SolverError> {
    pkgr_cache::repodata_index::check_record(record).map_err(|problem| SolverError::UnsafeRecord {
        channel: record
            .channel
            .clone()
            .unwrap_or_else(|| pkgr_redact::redact_url(&record.url)),
        file_name: record.identifier.to_string().escape_debug().to_string(),
        name: record
            .package_record
            .name
            .as_normalized()
            .escape_debug()
            .to_string(),
        problem,
    })
}

/// The solver's explanation (resolvo's tree), led by one sentence in plain
/// words naming the requested specs that cannot be satisfied together (the
/// tree's top-level entries), and with rattler's one garbled sentence put
/// right ("is excluded because due to strict channel priority not using
/// this option from: 'URL'").
fn plain_words(explanation: &str) -> String {
    let tree = explanation.replace(
        "is excluded because due to strict channel priority not using this option from: ",
        "is excluded by strict channel priority (a channel listed earlier has this package; --channel-priority flexible allows later ones too): it is in ",
    );
    let requested: Vec<String> = tree
        .lines()
        .filter_map(|line| {
            line.strip_prefix("├─ ")
                .or_else(|| line.strip_prefix("└─ "))
        })
        .filter_map(|entry| {
            [
                " can be installed",
                " cannot be installed",
                " is excluded",
                ", which",
            ]
            .iter()
            .filter_map(|marker| entry.find(marker))
            .min()
            .map(|end| {
                let spec = entry[..end].trim_end_matches(" *");
                if spec.starts_with("__") {
                    format!("this machine's `{spec}` (a virtual package)")
                } else {
                    format!("`{spec}`")
                }
            })
        })
        .collect();
    let summary = match requested.as_slice() {
        [] => String::new(),
        [one] => format!("{one} cannot be installed (why, through which packages:)\n"),
        [first @ .., last] => format!(
            "{} and {last} cannot be installed together (why, through which packages:)\n",
            first.join(", ")
        ),
    };
    format!("{summary}{tree}")
}

#[cfg(test)]
mod plain_words_tests {
    use super::plain_words;

    #[test]
    fn the_requested_specs_lead_the_explanation() {
        let tree = "The following packages are incompatible\n├─ libbase <1 can be installed with any of the following options:\n│  └─ libbase 0.9\n└─ app * cannot be installed because there are no viable options:\n   └─ app 2.0 would require\n";
        let text = plain_words(tree);
        assert!(
            text.starts_with("`libbase <1` and `app` cannot be installed together"),
            "{text}"
        );
        assert!(text.ends_with(tree), "{text}");
        let one = "The following packages are incompatible\n└─ jinja2 ==2.8 cannot be installed because there are no viable options:\n   └─ jinja2 2.8 is excluded because due to strict channel priority not using this option from: 'b'\n";
        let text = plain_words(one);
        assert!(
            text.starts_with("`jinja2 ==2.8` cannot be installed"),
            "{text}"
        );
        assert!(!text.contains("because due to"), "{text}");
    }
}

/// `names` and every name their records depend on, directly or not.
fn dependency_closure<'a>(
    records: impl Iterator<Item = &'a RepoDataRecord>,
    names: &[String],
) -> HashSet<String> {
    let mut depends: HashMap<&str, Vec<&str>> = HashMap::new();
    for record in records {
        depends
            .entry(record.package_record.name.as_normalized())
            .or_default()
            .extend(
                record
                    .package_record
                    .depends
                    .iter()
                    .map(|d| dependency_name(d)),
            );
    }
    let mut closure: HashSet<String> = names.iter().cloned().collect();
    let mut frontier: Vec<String> = names.to_vec();
    while let Some(name) = frontier.pop() {
        for dep in depends.get(name.as_str()).into_iter().flatten() {
            if closure.insert((*dep).to_owned()) {
                frontier.push((*dep).to_owned());
            }
        }
    }
    closure
}

fn spec_name(spec: &MatchSpec) -> Option<String> {
    spec.name.as_exact().map(|n| n.as_normalized().to_owned())
}

fn not_found(indexes: &[SubdirIndex], name: &str) -> SolverError {
    let mut channels: Vec<String> = Vec::new();
    for index in indexes {
        let channel = display_channel(index.channel());
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    let notes = indexes
        .iter()
        .filter_map(|i| i.missing_note().map(ToOwned::to_owned))
        .collect();
    let all: BTreeSet<&str> = indexes.iter().flat_map(SubdirIndex::names).collect();
    let mut scored: Vec<(f64, &str)> = all
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score >= 0.85)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    SolverError::PackageNotFound {
        name: name.to_owned(),
        channels: if channels.len() == 1 {
            format!("channel {}", channels[0])
        } else {
            format!("channels {}", channels.join(", "))
        },
        suggestions: scored
            .into_iter()
            .take(3)
            .map(|(_, n)| n.to_owned())
            .collect(),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_file_names() {
        assert_eq!(
            pkgr_cache::repodata_index::name_from_file_name("zlib-1.2.11-h7b6447c_3.conda"),
            Some("zlib")
        );
        assert_eq!(
            pkgr_cache::repodata_index::name_from_file_name(
                "ca-certificates-2024.7.4-hbcca054_0.tar.bz2"
            ),
            Some("ca-certificates")
        );
        assert_eq!(
            pkgr_cache::repodata_index::name_from_file_name("broken.conda"),
            None
        );
    }

    #[test]
    fn dependency_names() {
        assert_eq!(dependency_name("numpy >=1.26"), "numpy");
        assert_eq!(dependency_name("python_abi 3.12.* *_cp312"), "python_abi");
        assert_eq!(dependency_name("libgcc-ng>=12"), "libgcc-ng");
        assert_eq!(dependency_name("conda-forge::xz"), "xz");
        assert_eq!(dependency_name("zlib"), "zlib");
    }

    #[test]
    fn base_urls() {
        let subdir = Url::parse("https://example.com/chan/linux-64").unwrap();
        assert_eq!(
            package_base(&subdir, None).unwrap().as_str(),
            "https://example.com/chan/linux-64/"
        );
        assert_eq!(
            package_base(&subdir, Some("../pkgs")).unwrap().as_str(),
            "https://example.com/chan/pkgs/"
        );
        assert_eq!(
            package_base(&subdir, Some("https://cdn.example.com/x"))
                .unwrap()
                .as_str(),
            "https://cdn.example.com/x/"
        );
    }

    fn index(text: &str) -> SubdirIndex {
        let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
        let channel = Channel::from_str("https://example.com/chan", &config).unwrap();
        let url = Url::parse("https://example.com/chan/linux-64/").unwrap();
        SubdirIndex::parse(channel, url, text.to_owned()).unwrap()
    }

    #[test]
    fn lazy_index_prefers_conda_and_parses_on_demand() {
        let idx = index(
            r#"{"info":{"subdir":"linux-64"},
                "packages":{"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","build_number":0,"depends":["b"],"subdir":"linux-64"},
                            "b-1-0.tar.bz2":{"name":"b","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}},
                "packages.conda":{"a-1-0.conda":{"name":"a","version":"1","build":"0","build_number":0,"depends":["b"],"subdir":"linux-64"}}}"#,
        );
        let a = idx.records("a").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].identifier.to_string(), "a-1-0.conda");
        assert_eq!(
            a[0].url.as_str(),
            "https://example.com/chan/linux-64/a-1-0.conda"
        );
        let specs =
            vec![MatchSpec::from_str("a", rattler_conda_types::ParseStrictness::Lenient).unwrap()];
        let solved = solve(&[idx], &specs, &[], Vec::new(), &SolveOptions::default()).unwrap();
        let names: Vec<_> = solved
            .iter()
            .map(|r| r.package_record.name.as_normalized().to_owned())
            .collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn unknown_names_get_suggestions() {
        let idx = index(
            r#"{"packages":{"numpy-1-0.tar.bz2":{"name":"numpy","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}}}"#,
        );
        let specs =
            vec![
                MatchSpec::from_str("nupmy", rattler_conda_types::ParseStrictness::Lenient)
                    .unwrap(),
            ];
        let err = solve(&[idx], &specs, &[], Vec::new(), &SolveOptions::default()).unwrap_err();
        assert!(err.to_string().contains("did you mean `numpy`"), "{err}");
    }

    #[test]
    fn a_missing_subdir_is_named_when_a_package_is_not_found() {
        let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
        let channel = Channel::from_str("https://example.com/chan", &config).unwrap();
        let missing = SubdirIndex::missing(
            channel,
            Url::parse("https://example.com/chan/linux-64/").unwrap(),
        );
        let noarch = index(r#"{"packages":{}}"#);
        let specs = vec![
            MatchSpec::from_str("app", rattler_conda_types::ParseStrictness::Lenient).unwrap(),
        ];
        let err = solve(
            &[noarch, missing],
            &specs,
            &[],
            Vec::new(),
            &SolveOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "package `app` was not found in channel chan; note: https://example.com/chan/linux-64/repodata.json answered 404 Not Found"
        );
    }

    #[test]
    fn channels_with_credentials_show_and_record_none() {
        let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
        let channel =
            Channel::from_str("https://me:secret@example.com/t/tok123/chan", &config).unwrap();
        let shown = display_channel(&channel);
        assert_eq!(
            shown,
            "https://********:********@example.com/t/********/chan"
        );
        assert_eq!(
            record_channel(&channel),
            "https://example.com/t/<TOKEN>/chan/"
        );
        let url = channel.platform_url(Subdir::Linux64);
        let idx = SubdirIndex::parse(
            channel,
            url,
            r#"{"packages":{"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}}}"#.to_owned(),
        )
        .unwrap();
        let records = idx.records("a").unwrap();
        assert_eq!(
            records[0].channel.as_deref(),
            Some("https://example.com/t/<TOKEN>/chan/")
        );
        // The URL to fetch keeps them.
        assert_eq!(
            records[0].url.as_str(),
            "https://me:secret@example.com/t/tok123/chan/linux-64/a-1-0.tar.bz2"
        );
    }

    #[test]
    fn an_installed_record_without_credentials_gets_the_channels_url() {
        let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
        let channel = Channel::from_str("https://me:pw@example.com/t/tok/chan", &config).unwrap();
        let url = channel.platform_url(Subdir::Linux64);
        let idx = SubdirIndex::parse(
            channel,
            url,
            r#"{"packages":{"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}}}"#.to_owned(),
        )
        .unwrap();
        let mut installed = idx.records("a").unwrap().remove(0);
        installed.url = Url::parse(&pkgr_redact::url_for_record(&installed.url)).unwrap();
        let specs =
            vec![MatchSpec::from_str("a", rattler_conda_types::ParseStrictness::Lenient).unwrap()];
        let solved = solve(
            &[idx],
            &specs,
            &[installed],
            Vec::new(),
            &SolveOptions::default(),
        )
        .unwrap();
        assert_eq!(
            solved[0].url.as_str(),
            "https://me:pw@example.com/t/tok/chan/linux-64/a-1-0.tar.bz2"
        );
    }

    #[test]
    fn a_chosen_record_that_cannot_name_one_file_is_refused() {
        // `a` 2 has a build with a path; `a` 1 and `b` are fine.
        let idx = index(
            r#"{"packages":{"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"},
                            "a-2-0.tar.bz2":{"name":"a","version":"2","build":"x/../../y","build_number":0,"depends":[],"subdir":"linux-64"},
                            "b-1-0/../../c.tar.bz2":{"name":"b","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"},
                            "d-1-0.tar.bz2":{"name":"d","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}}}"#,
        );
        let solve_for = |spec: &str| {
            let specs =
                vec![
                    MatchSpec::from_str(spec, rattler_conda_types::ParseStrictness::Lenient)
                        .unwrap(),
                ];
            solve(
                std::slice::from_ref(&idx),
                &specs,
                &[],
                Vec::new(),
                &SolveOptions::default(),
            )
        };
        // The newest `a` is the one chosen: a clear error, not an older `a`.
        let err = solve_for("a").unwrap_err();
        assert!(matches!(err, SolverError::UnsafeRecord { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("refusing a-2-0.tar.bz2 from channel https://example.com/chan/")
                && text.contains("build string `x/../../y` holds a path separator"),
            "{text}"
        );
        // Asked for by version, the other record is fine.
        assert_eq!(
            solve_for("a <2").unwrap()[0]
                .package_record
                .version
                .to_string(),
            "1"
        );
        let err = solve_for("b").unwrap_err().to_string();
        assert!(err.contains("its file name is not b-1-0"), "{err}");
        // A bad record never chosen does not stop the rest.
        assert_eq!(solve_for("d").unwrap().len(), 1);
    }

    #[test]
    fn an_http_channel_may_not_send_packages_to_local_files() {
        let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
        let channel = Channel::from_str("https://example.com/chan", &config).unwrap();
        let url = Url::parse("https://example.com/chan/linux-64/").unwrap();
        let text = r#"{"info":{"base_url":"file:///home/me/"},"packages":{}}"#;
        let err = SubdirIndex::parse(channel, url, text.to_owned()).unwrap_err();
        assert!(matches!(err, SolverError::RefusedRepodata { .. }), "{err}");
        assert!(err.to_string().contains("file:///home/me/"), "{err}");
        let subdir = Url::parse("file:///srv/chan/linux-64/").unwrap();
        assert_eq!(
            package_base(&subdir, Some("../pkgs")).unwrap().as_str(),
            "file:///srv/chan/pkgs/"
        );
    }

    #[test]
    fn a_full_disk_and_a_network_failure_are_told_apart() {
        let full = pkgr_cache::CacheError::Fetch {
            package: String::from("https://example.com/chan/linux-64/repodata.json"),
            source: pkgr_fetch::FetchError::Io {
                context: String::from("writing /cache/tmp/x.part"),
                source: std::io::Error::from(std::io::ErrorKind::StorageFull),
            },
        };
        assert!(storage_full(&full));
        assert!(!network_failed(&full));
        let quota = pkgr_cache::CacheError::Io {
            context: String::from("writing the index"),
            source: std::io::Error::from(std::io::ErrorKind::QuotaExceeded),
        };
        assert!(storage_full(&quota));
        let down = pkgr_cache::CacheError::Fetch {
            package: String::from("x"),
            source: pkgr_fetch::FetchError::GaveUp {
                url: String::from("x"),
                attempts: 3,
                elapsed: std::time::Duration::from_secs(1),
                last: Box::new(pkgr_fetch::FetchError::Transport {
                    url: String::from("x"),
                    kind: pkgr_fetch::TransportKind::Connect,
                    message: String::from("connection refused"),
                }),
            },
        };
        assert!(network_failed(&down) && !storage_full(&down));
        let status = pkgr_cache::CacheError::Fetch {
            package: String::from("x"),
            source: pkgr_fetch::FetchError::Status {
                url: String::from("x"),
                status: 500,
            },
        };
        assert!(!network_failed(&status) && !storage_full(&status));
    }

    #[test]
    fn broken_repodata_is_an_error() {
        let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
        let channel = Channel::from_str("https://example.com/chan", &config).unwrap();
        let url = Url::parse("https://example.com/chan/linux-64/").unwrap();
        let err = SubdirIndex::parse(channel, url, "{\"packages\": [".to_owned()).unwrap_err();
        assert!(matches!(err, SolverError::BrokenRepodata { .. }), "{err}");
    }
}
