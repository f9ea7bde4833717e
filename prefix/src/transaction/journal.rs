//! The journal that makes a transaction recoverable: each package is
//! changed under `conda-meta/<name>-<version>-<build>.pkgr-partial`, which
//! lists every path the change may touch; [`recover`] finishes what a
//! killed transaction left.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use rattler_conda_types::RepoDataRecord;
use serde::{Deserialize, Serialize};

use crate::meta::{read_prefix_records, record_file_name};
use crate::unlink::{record_paths, remove_paths};
use crate::{io, PrefixError};

pub(super) const JOURNAL_SUFFIX: &str = "pkgr-partial";

/// A journal entry: the paths a package change may have touched.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Journal {
    pub(super) package: String,
    pub(super) paths: Vec<PathBuf>,
}

fn journal_path(prefix: &Path, record: &RepoDataRecord) -> PathBuf {
    let file = record_file_name(record);
    let stem = file.strip_suffix(".json").unwrap_or(&file);
    prefix
        .join("conda-meta")
        .join(format!("{stem}.{JOURNAL_SUFFIX}"))
}

pub(super) fn write_journal(
    prefix: &Path,
    record: &RepoDataRecord,
    paths: &[PathBuf],
) -> Result<PathBuf, PrefixError> {
    let path = journal_path(prefix, record);
    let journal = Journal {
        package: record.identifier.to_string(),
        paths: paths.to_vec(),
    };
    let text = serde_json::to_vec(&journal).map_err(|e| PrefixError::Io {
        context: format!("serializing {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    let meta = prefix.join("conda-meta");
    let mut file = tempfile::NamedTempFile::new_in(&meta).map_err(io("writing conda-meta"))?;
    // Written whole under a temp name and renamed: a process killed at any
    // point leaves a complete journal or none. Not synced (one fsync per
    // package was a sixth of a warm create): like the records and the linked
    // files, a journal may be lost or empty after a power loss or kernel
    // crash, and then the files it listed stay behind unclaimed.
    file.write_all(&text)
        .map_err(io(format!("writing {}", path.display())))?;
    file.persist(&path)
        .map_err(|e| io(format!("writing {}", path.display()))(e.error))?;
    Ok(path)
}

pub(super) fn remove_journal(path: &Path) -> Result<(), PrefixError> {
    fs_err::remove_file(path).map_err(io("removing a transaction journal"))
}

/// Finishes what an interrupted transaction left: for each journal entry,
/// removes the paths it lists that no installed-package record claims, then
/// the entry. Returns the packages it cleaned up after. The caller holds the
/// prefix lock.
#[tracing::instrument(level = "debug", skip_all, fields(prefix = %prefix.display()))]
pub fn recover(prefix: &Path) -> Result<Vec<String>, PrefixError> {
    let meta = prefix.join("conda-meta");
    let Ok(entries) = fs_err::read_dir(&meta) else {
        return Ok(Vec::new());
    };
    let journals: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == JOURNAL_SUFFIX))
        .collect();
    if journals.is_empty() {
        return Ok(Vec::new());
    }
    let owned: HashSet<PathBuf> = read_prefix_records(prefix)?
        .iter()
        .flat_map(record_paths)
        .collect();
    let mut recovered = Vec::new();
    for path in journals {
        let text = fs_err::read(&path).map_err(io("reading a transaction journal"))?;
        // A journal emptied by a power loss lists nothing usable (journals
        // are not synced): what it listed stays, unclaimed.
        if let Ok(journal) = serde_json::from_slice::<Journal>(&text) {
            tracing::debug!(
                package = %journal.package,
                "rolling forward an interrupted change"
            );
            remove_paths(prefix, &journal.paths, |p| owned.contains(p))?;
            recovered.push(journal.package);
        }
        remove_journal(&path)?;
    }
    Ok(recovered)
}
