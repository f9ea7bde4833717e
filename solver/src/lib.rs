//! Solving: the records to install for a request, from the records of the
//! channels.
//!
//! [`solve`] hands the records of the names the request can reach (read
//! through [`RecordSource`], so a lazily read channel parses only those) to
//! `rattler_solve`'s resolvo backend together with the machine's virtual
//! packages ([`detect_virtual_packages`]), honouring [`SolveOptions`]. A
//! conflict is explained in plain words first ([`SolverError::Unsatisfiable`]),
//! a name no channel has with the names it may be a typo of
//! ([`PackageNotFound`]).
//!
//! The solver only solves: getting the channels' repodata (HTTP, the cache,
//! shards) is `pkgr-repodata`'s job, whose `SubdirIndex` is a
//! [`RecordSource`].
//!
//! # What a channel is not trusted with
//!
//! A record the solve chooses must name one file that is its own
//! ([`pkgr_cache::repodata_rules::check_record`]: no `/`, `\` or `..` in its name,
//! version or build, and a file name that is `<name>-<version>-<build>.conda`
//! / `.tar.bz2`), else the solve fails with [`SolverError::UnsafeRecord`]
//! naming the channel and the record. Records no solve chooses are left
//! alone: one hostile record does not break installs of the channel's other
//! packages, and a choice is never silently replaced by an older record.

mod error;
mod explain;
mod options;
mod source;

use std::collections::{HashMap, HashSet, VecDeque};

use rattler_conda_types::{
    GenericVirtualPackage, MatchSpec, Matches, PackageRecord, RepoDataRecord, Subdir,
};
use rattler_solve::{SolverImpl, SolverTask};
use url::Url;

pub use error::{PackageNotFound, SolverError};
pub use explain::package_not_found;
pub use options::{ChannelPriority, SolveOptions};
pub use source::RecordSource;

use explain::explanation_in_plain_words;

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
/// `conda-forge::xz`) asks for: the names [`solve`] follows, and the names
/// a caller that fetches records ahead of a solve must follow the same way.
pub fn dependency_name(dep: &str) -> &str {
    let dep = dep.trim();
    let dep = dep.rsplit("::").next().unwrap_or(dep);
    let end = dep
        .find(|c: char| c.is_whitespace() || "=<>!~[(".contains(c))
        .unwrap_or(dep.len());
    &dep[..end]
}

/// Solves `specs` against `indexes` (the records of each channel subdir, in
/// channel priority order; see [`RecordSource`]) with
/// `virtual_packages`, returning the records to install, dependencies first.
///
/// `locked` are the records installed now: the solver keeps them where the
/// request allows (conda's "keep what is installed"); they may come from
/// channels not given this time. See [`SolveOptions`] for the rest.
#[tracing::instrument(level = "debug", skip_all, fields(specs = specs.len(), records))]
pub fn solve<S: RecordSource>(
    indexes: &[S],
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
        if let Some(name) = exact_name(spec) {
            let known = indexes.iter().any(|i| i.contains(&name))
                || locked
                    .iter()
                    .any(|r| r.package_record.name.as_normalized() == name);
            if !known {
                return Err(package_not_found(indexes, &name).into());
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
            let name_records = index
                .records(&name)
                .map_err(|e| SolverError::Records(Box::new(e)))?;
            for mut record in name_records {
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
        let Some(name) = exact_name(spec) else {
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
    tracing::Span::current().record(
        "records",
        per_index.iter().map(Vec::len).sum::<usize>() + locked.len(),
    );
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
                SolverError::Unsatisfiable(explanation_in_plain_words(&messages.join("\n")))
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

/// [`pkgr_cache::repodata_rules::check_record`] of a record the solve chose,
/// as [`SolverError::UnsafeRecord`].
fn check_chosen(record: &RepoDataRecord) -> Result<(), SolverError> {
    pkgr_cache::repodata_rules::check_record(record).map_err(|problem| SolverError::UnsafeRecord {
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

/// The package name a parsed `spec` asks for, if it names exactly one (not
/// a glob). (Spec *text* is parsed by `pkgr_prefix::meta::spec_package_name`;
/// [`dependency_name`] cuts the name out of a record's `depends` entry
/// without parsing, for the solve's hot paths.)
pub fn exact_name(spec: &MatchSpec) -> Option<String> {
    spec.name.as_exact().map(|n| n.as_normalized().to_owned())
}

#[cfg(test)]
mod tests;
