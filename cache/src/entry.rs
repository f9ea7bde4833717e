//! A cache entry: its completion marker ([`EntryMarker`], read to tell a
//! complete entry of the expected archive) and the handle of a complete
//! one ([`CacheEntry`], which holds its shared lock).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pkgr_fs::lock::FileLock;
use rattler_conda_types::package::PathsJson;
use rattler_conda_types::RepoDataRecord;
use serde::{Deserialize, Serialize};

use crate::{CacheError, PackageCache};

/// Name of the completion marker inside an extracted entry.
pub const ENTRY_MARKER: &str = ".pkgr-entry.json";

/// What the completion marker of an entry records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryMarker {
    /// sha256 of the archive the entry was extracted from.
    pub sha256: String,
    /// md5 of that archive.
    pub md5: String,
    /// Its size.
    pub size: u64,
    /// Where it was downloaded from (redacted).
    pub url: String,
    /// The archive's file name.
    pub file_name: String,
    /// `softlink` paths of paths.json that the package holds as regular
    /// files, with their sizes (see [`crate::validate::check_files`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links_as_files: BTreeMap<String, u64>,
}

/// A complete, extracted package in the cache. Holds the entry's shared lock
/// until dropped, so nothing removes the entry while it is used.
#[derive(Debug)]
pub struct CacheEntry {
    pub(crate) key: String,
    pub(crate) dir: PathBuf,
    pub(crate) archive: PathBuf,
    pub(crate) downloaded: Option<u64>,
    pub(crate) symlinks: Arc<BTreeSet<PathBuf>>,
    pub(crate) paths: Arc<PathsJson>,
    /// `None` for an entry of a read-only layer: it never changes, so it
    /// needs no lock (see [`PackageCache::with_read_only_layers`]).
    pub(crate) _lock: Option<FileLock>,
}

impl CacheEntry {
    /// The entry's key (directory name below `pkgs/`).
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The extracted package directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The verified archive.
    pub fn archive(&self) -> &Path {
        &self.archive
    }
    /// The package's paths (as in its paths.json) that are symlinks in the
    /// entry, as found by the check made when it was handed out (which saw
    /// every path there, with its size).
    pub fn symlinks(&self) -> &Arc<BTreeSet<PathBuf>> {
        &self.symlinks
    }
    /// The package's `info/paths.json` (or legacy `info/files`), as read by
    /// the check made when the entry was handed out.
    pub fn paths(&self) -> &Arc<PathsJson> {
        &self.paths
    }
    /// Bytes this process downloaded to fill the entry (`None` if it was cached).
    pub fn downloaded_bytes(&self) -> Option<u64> {
        self.downloaded
    }
    /// The entry's completion marker: the verified archive's sha256, md5 and
    /// size (for records that did not know them, such as an `@EXPLICIT`
    /// line with only an md5).
    pub fn marker(&self) -> Result<EntryMarker, CacheError> {
        let path = self.dir.join(ENTRY_MARKER);
        let text = fs_err::read_to_string(&path).map_err(|source| CacheError::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| CacheError::Io {
            context: format!("reading {}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }
}

/// The marker of the entry in `dir` if it is complete and of `record`'s
/// archive (its sha256, else md5).
pub(crate) fn marker_matching(dir: &Path, record: &RepoDataRecord) -> Option<EntryMarker> {
    let text = fs_err::read_to_string(dir.join(ENTRY_MARKER)).ok()?;
    let marker = serde_json::from_str::<EntryMarker>(&text).ok()?;
    let p = &record.package_record;
    let matches = if let Some(sha) = &p.sha256 {
        marker.sha256 == hex::encode(sha)
    } else if let Some(md5) = &p.md5 {
        marker.md5 == hex::encode(md5)
    } else {
        true
    };
    matches.then_some(marker)
}

impl PackageCache {
    /// The marker of the entry for `record` if the entry is complete: the
    /// marker exists and names the expected digest.
    pub(crate) fn complete_marker(
        &self,
        key: &str,
        record: &RepoDataRecord,
    ) -> Option<EntryMarker> {
        marker_matching(&self.layout().entry_dir(key), record)
    }
}
