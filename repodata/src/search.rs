//! `pkgr search`: the records of the channels a spec matches.

use pkgr_cache::PackageCache;
use rattler_conda_types::{MatchSpec, Matches, PackageName, RepoDataRecord};

use crate::channels::fetch_shards;
use crate::subdir::SubdirIndex;
use crate::RepodataError;

/// Every record of `indexes` that `spec` matches (`pkgr search`), newest
/// first: by name, then version, then build number, channels in priority
/// order. A name glob (`py*`) is matched against every name; only the
/// matching names' records are read (of a sharded subdir, only their shards
/// are fetched). A name no channel has is [`RepodataError::PackageNotFound`]
/// (with the names it may be a typo of).
// Only the name: a spec can carry a channel URL with credentials.
#[tracing::instrument(level = "debug", skip_all, fields(name = %spec.name))]
pub async fn search(
    cache: &PackageCache,
    indexes: &[SubdirIndex],
    spec: &MatchSpec,
) -> Result<Vec<RepoDataRecord>, RepodataError> {
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
        return Err(pkgr_solver::package_not_found(indexes, name.as_normalized()).into());
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
