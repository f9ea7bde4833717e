//! Clobbers: paths that several packages ship. Who owns each path of the
//! environment (so that removing a package keeps what another one still
//! ships, and a package overwriting another's file is reported), and the
//! settling of paths that packages linked at the same time both wrote.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use rattler_conda_types::PrefixRecord;

use super::staged::Staged;
use super::{package_id, TransactionEvent};
use crate::link::{Hardlinks, KnownDirs, LinkMode};
use crate::unlink::record_paths;
use crate::PrefixError;

/// Who owns each path of the environment once the packages `leaving` are
/// gone (for clobber warnings, and so that removing a package keeps paths
/// another one still ships).
pub(super) fn owners_of(
    installed: &[PrefixRecord],
    leaving: &HashSet<String>,
) -> HashMap<PathBuf, String> {
    let mut owners: HashMap<PathBuf, String> = HashMap::new();
    for record in installed
        .iter()
        .filter(|r| !leaving.contains(&package_id(r)))
    {
        let name = record.repodata_record.package_record.name.as_normalized();
        for path in record_paths(record) {
            owners.insert(path, name.to_owned());
        }
    }
    owners
}

/// Packages linked at the same time may have put a shared path in place in
/// any order: puts the file of the last of them (in `staged`'s order,
/// dependencies first) there, as linking one after the other would have.
/// Returns the paths shipped by more than one of them.
#[tracing::instrument(level = "debug", name = "clobbers", skip_all, fields(packages = staged.len()))]
pub(super) fn settle_shared_paths(
    prefix: &Path,
    staged: &[Staged],
    mode: LinkMode,
) -> Result<HashSet<OsString>, PrefixError> {
    // Keyed by the text: hashing a `Path` parses it into components.
    let mut last: HashMap<&OsStr, usize> = HashMap::new();
    let mut shared: Vec<&OsStr> = Vec::new();
    for (index, package) in staged.iter().enumerate() {
        for path in &package.paths {
            if last.insert(path.as_os_str(), index).is_some() {
                shared.push(path.as_os_str());
            }
        }
    }
    let mut dirs = KnownDirs::new(prefix);
    let hardlinks = Hardlinks::new();
    shared.sort_unstable();
    shared.dedup();
    if !shared.is_empty() {
        tracing::debug!(
            shared = shared.len(),
            "paths several packages ship, each given the last one's file"
        );
    }
    for path in &shared {
        if let Some(&winner) = last.get(path) {
            staged[winner]
                .plan
                .relink(Path::new(path), prefix, mode, &mut dirs, &hardlinks)?;
        }
    }
    Ok(shared.into_iter().map(ToOwned::to_owned).collect())
}

/// Gives `package`, just recorded, its `files` in `owners`, and reports
/// each path another package owned ([`TransactionEvent::Clobbered`]).
/// Unless `all_paths_matter` (the environment had packages), only a path in
/// `shared` (shipped by several of the packages linked) can be another's:
/// the others are skipped.
pub(super) fn claim_paths(
    owners: &mut HashMap<PathBuf, String>,
    files: &[PathBuf],
    package: &str,
    all_paths_matter: bool,
    shared: &HashSet<OsString>,
    on_event: &dyn Fn(TransactionEvent<'_>),
) {
    for path in files {
        if !all_paths_matter && !shared.contains(path.as_os_str()) {
            continue;
        }
        if let Some(previous) = owners.insert(path.clone(), package.to_owned()) {
            if previous != package {
                on_event(TransactionEvent::Clobbered {
                    path,
                    loser: &previous,
                    winner: package,
                });
            }
        }
    }
}
