//! The repodata of one channel subdir, read lazily ([`SubdirIndex`]): what
//! a solve gets records from ([`pkgr_solver::RecordSource`]).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::str::FromStr;

use rattler_conda_types::package::DistArchiveIdentifier;
use rattler_conda_types::{Channel, PackageRecord, RepoDataRecord};
use serde_json::value::RawValue;
use url::Url;

use crate::cached::RepodataFile;
use crate::channel_names::{channel_as_recorded, channel_as_shown};
use crate::index::RepodataIndex;
use crate::shards::ShardIndex;
use crate::RepodataError;

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
/// spans of the file that hold them (its index by name). For cached repodata
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
    /// records of the shards fetched so far ([`crate::prefetch_shards`]).
    pub(crate) sharded: Option<Sharded>,
}

/// The shards of a sharded subdir.
#[derive(Debug)]
pub(crate) struct Sharded {
    pub(crate) index: ShardIndex,
    loaded: std::sync::Mutex<HashMap<String, Vec<RepoDataRecord>>>,
}

impl SubdirIndex {
    fn broken(subdir_url: &Url, message: String) -> RepodataError {
        RepodataError::BrokenRepodata {
            url: format!(
                "{}repodata.json",
                pkgr_redact::redact_url(&with_slash(subdir_url))
            ),
            message,
        }
    }

    /// Indexes `text`, the repodata.json of `channel` at `subdir_url`.
    pub fn parse(channel: Channel, subdir_url: Url, text: String) -> Result<Self, RepodataError> {
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
    ) -> Result<Self, RepodataError> {
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
    #[tracing::instrument(level = "debug", skip_all, fields(url = %pkgr_redact::redact_url(&subdir_url)))]
    pub(crate) fn from_file(
        channel: Channel,
        subdir_url: Url,
        mut repodata: RepodataFile,
    ) -> Result<Self, RepodataError> {
        if let Some(index) = repodata.index.take() {
            let file = RepodataText::File(std::sync::Mutex::new(repodata.file));
            return Self::with_index(channel, subdir_url, file, index);
        }
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut repodata.file, &mut text).map_err(|source| {
            RepodataError::Io {
                path: repodata.path.clone(),
                source,
            }
        })?;
        let index =
            RepodataIndex::build(&text).map_err(|message| Self::broken(&subdir_url, message))?;
        Self::with_index(channel, subdir_url, RepodataText::Memory(text), index)
    }

    /// The bytes of `span`, wrapped in `{` `}`: a JSON object of records.
    fn span_object(&self, span: &Range<u64>) -> Result<Vec<u8>, RepodataError> {
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
                    .map_err(|source| RepodataError::Io {
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
    /// the names a solve reaches are fetched by [`crate::prefetch_shards`].
    pub(crate) fn sharded(channel: Channel, subdir_url: Url, index: ShardIndex) -> Self {
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
    pub(crate) fn load_shard(&self, name: &str, shard: &rmpv::Value) -> Result<(), RepodataError> {
        let Some(sharded) = &self.sharded else {
            return Ok(());
        };
        let shard = crate::shards::msgpack_to_json(shard);
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
        let channel = channel_as_recorded(&self.channel);
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
            .collect::<Result<Vec<_>, RepodataError>>()?;
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
    pub fn records(&self, name: &str) -> Result<Vec<RepoDataRecord>, RepodataError> {
        if let Some(sharded) = &self.sharded {
            if !sharded.index.shards.contains_key(name) {
                return Ok(Vec::new());
            }
            let loaded = sharded
                .loaded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return loaded.get(name).cloned().ok_or_else(|| {
                RepodataError::Internal(format!(
                    "the shard of {name} was not fetched before the solve (a pkgr bug)"
                ))
            });
        }
        let Some(spans) = self.by_name.get(name) else {
            return Ok(Vec::new());
        };
        let channel = channel_as_recorded(&self.channel);
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
            .collect::<Result<Vec<_>, RepodataError>>()?;
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

/// Where package files of a subdir live: the subdir URL, or `info.base_url`
/// (absolute, or relative to the subdir URL). An http(s) channel may only
/// point at http(s) URLs ([`crate::shards::check_base_scheme`]).
fn package_base(subdir_url: &Url, base_url: Option<&str>) -> Result<Url, RepodataError> {
    let base = resolve_package_base(subdir_url, base_url).map_err(|message| {
        RepodataError::BrokenRepodata {
            url: format!(
                "{}repodata.json",
                pkgr_redact::redact_url(&with_slash(subdir_url))
            ),
            message,
        }
    })?;
    crate::shards::check_base_scheme(subdir_url, &base, "info.base_url").map_err(|message| {
        RepodataError::RefusedRepodata {
            url: format!(
                "{}repodata.json",
                pkgr_redact::redact_url(&with_slash(subdir_url))
            ),
            message,
        }
    })?;
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

/// `url` with a trailing slash (a subdir URL, to join file names to).
pub(crate) fn with_slash(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// What a solve reads: records are parsed (or a shard's taken) only for the
/// names the solve reaches, with no copy beyond the ones it is handed.
impl pkgr_solver::RecordSource for SubdirIndex {
    type Error = RepodataError;

    fn channel_shown(&self) -> String {
        channel_as_shown(&self.channel)
    }

    fn missing_note(&self) -> Option<&str> {
        SubdirIndex::missing_note(self)
    }

    fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        SubdirIndex::names(self)
    }

    fn contains(&self, name: &str) -> bool {
        SubdirIndex::contains(self, name)
    }

    fn records(&self, name: &str) -> Result<Vec<RepoDataRecord>, RepodataError> {
        SubdirIndex::records(self, name)
    }
}

#[cfg(test)]
mod tests;
