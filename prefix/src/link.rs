//! Linking one extracted package into a prefix: checked in full first
//! ([`PackagePlan::new`]), then written ([`PackagePlan::link`]).
//!
//! - this file: the plan ([`PackagePlan`]), every path checked;
//! - `guard.rs`: what a transaction's packages are checked against
//!   together (`LinkGuard`: chains of symlinks across packages);
//! - `files.rs`: putting the files in place (hardlink, reflink or copy,
//!   placeholders, entry points), and the file system helpers for it;
//! - `record.rs`: what is left once the files are in place
//!   (byte-compiling) and the package's conda-meta record.

mod files;
mod guard;
mod record;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pkgr_fs::paths::{check_link_target, check_relative_path, normalized};
use rattler_conda_types::package::{
    EntryPoint, LinkJson, NoArchLinks, PackageFile, PathType, PathsJson,
};
use rattler_conda_types::{PrefixRecord, RepoDataRecord};

use crate::python::{self, PythonInfo};
use crate::{io, PrefixError};

pub(crate) use files::place_file;
pub use files::{Hardlinks, KnownDirs, LinkedFiles};
pub(crate) use guard::LinkGuard;

/// How files without placeholders get into the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkMode {
    /// Hardlink from the cache; where that fails (another file system), a
    /// copy-on-write clone (reflink) where the file system has them, else a copy.
    #[default]
    Auto,
    /// Never share data with the cache: reflink where possible, else copy
    /// (`--copy`).
    Copy,
}

/// A package's files as the cache checked them when it handed the package
/// out (every path there, with its size): its paths.json as read for that
/// check, and which of its paths are symlinks on disk. Linking then reads
/// nothing again and looks at no file but those links.
#[derive(Debug, Clone)]
pub struct CheckedFiles {
    /// The package's `info/paths.json` (or legacy `info/files`).
    pub paths: Arc<PathsJson>,
    /// Its paths that are symlinks in the extracted package.
    pub symlinks: Arc<BTreeSet<PathBuf>>,
}

/// One file of the package and where it goes.
#[derive(Debug)]
struct PlannedFile {
    /// Its entry in the package's paths.
    index: usize,
    target: PathBuf,
    /// The link's target when the package holds this path as a symlink.
    symlink: Option<PathBuf>,
}

/// A package checked and ready to be linked: every path is known to stay
/// inside the prefix and to exist in the extracted package.
#[derive(Debug)]
pub struct PackagePlan {
    package: String,
    package_dir: PathBuf,
    record: RepoDataRecord,
    requested_spec: Option<String>,
    paths: Arc<PathsJson>,
    files: Vec<PlannedFile>,
    entry_points: Vec<EntryPoint>,
    python: Option<PythonInfo>,
}

/// A linked package: its record (not yet written) and what the user should
/// hear about.
#[derive(Debug)]
pub struct LinkedPackage {
    /// The conda-meta record describing exactly what was written.
    pub record: PrefixRecord,
    /// Things that went less than ideally (e.g. python could not byte-compile).
    pub warnings: Vec<String>,
}

impl PackagePlan {
    /// Reads the package's `info/paths.json` (or legacy `info/files`) and, for
    /// `noarch: python`, `info/link.json`, and checks every path. `python` is
    /// the python the environment will have; a noarch python package needs one.
    pub fn new(
        package_dir: &Path,
        record: &RepoDataRecord,
        requested_spec: Option<String>,
        python: Option<&PythonInfo>,
    ) -> Result<Self, PrefixError> {
        Self::plan(package_dir, record, requested_spec, python, None)
    }

    /// As [`Self::new`], for a package whose files were just checked (the
    /// cache's hand-out check): its paths.json is not read again, and no
    /// file is looked at but the symlinks.
    pub fn checked(
        package_dir: &Path,
        record: &RepoDataRecord,
        requested_spec: Option<String>,
        python: Option<&PythonInfo>,
        checked: &CheckedFiles,
    ) -> Result<Self, PrefixError> {
        Self::plan(package_dir, record, requested_spec, python, Some(checked))
    }

    fn plan(
        package_dir: &Path,
        record: &RepoDataRecord,
        requested_spec: Option<String>,
        python: Option<&PythonInfo>,
        checked: Option<&CheckedFiles>,
    ) -> Result<Self, PrefixError> {
        let package = record.identifier.to_string();
        let paths = match checked {
            Some(checked) => checked.paths.clone(),
            None => Arc::new(
                PathsJson::from_package_directory_with_deprecated_fallback(package_dir).map_err(
                    |source| match first_missing_legacy_file(package_dir) {
                        Some(path) => PrefixError::Incomplete {
                            package: package.clone(),
                            dir: package_dir.to_path_buf(),
                            path,
                        },
                        None => PrefixError::BadMetadata {
                            package: package.clone(),
                            source,
                        },
                    },
                )?,
            ),
        };
        let known_symlinks = checked.map(|c| c.symlinks.as_ref());
        let noarch_python = record.package_record.noarch.is_python();
        let python = if noarch_python {
            Some(python.cloned().ok_or_else(|| PrefixError::NoPython {
                package: package.clone(),
            })?)
        } else {
            None
        };
        let entry_points = if noarch_python {
            read_entry_points(package_dir, &package)?
        } else {
            Vec::new()
        };
        let unsafe_path = |path: &Path, why| PrefixError::UnsafePath {
            package: package.clone(),
            path: path.display().to_string(),
            why,
        };
        let mut files = Vec::with_capacity(paths.paths.len());
        for (index, entry) in paths.paths.iter().enumerate() {
            check_relative_path(&entry.relative_path)
                .map_err(|why| unsafe_path(&entry.relative_path, why))?;
            let target = match &python {
                Some(python) => normalized(&python.relocate(&entry.relative_path)),
                None => normalized(&entry.relative_path),
            };
            check_relative_path(&target).map_err(|why| unsafe_path(&target, why))?;
            let src = package_dir.join(&entry.relative_path);
            let is_link = match known_symlinks {
                Some(known) => known.contains(&entry.relative_path),
                None if entry.path_type == PathType::Directory => false,
                None => match fs_err::symlink_metadata(&src) {
                    Ok(meta) => meta.file_type().is_symlink(),
                    Err(_) => {
                        return Err(PrefixError::Incomplete {
                            package: package.clone(),
                            dir: package_dir.to_path_buf(),
                            path: entry.relative_path.display().to_string(),
                        })
                    }
                },
            };
            let symlink = if is_link && entry.path_type != PathType::Directory {
                let link =
                    fs_err::read_link(&src).map_err(io("reading a symlink of the package"))?;
                // Checked where it lands: relocation changes the depth.
                check_link_target(&target, &link).map_err(|why| unsafe_path(&link, why))?;
                Some(link)
            } else {
                None
            };
            files.push(PlannedFile {
                index,
                target,
                symlink,
            });
        }
        for entry_point in &entry_points {
            let target = python::entry_point_path(entry_point);
            check_relative_path(&target).map_err(|why| unsafe_path(&target, why))?;
        }
        Ok(Self {
            package,
            package_dir: package_dir.to_path_buf(),
            record: record.clone(),
            requested_spec,
            paths,
            files,
            entry_points,
            python,
        })
    }

    /// The package's extracted directory.
    pub fn package_dir(&self) -> &Path {
        &self.package_dir
    }

    /// The package's repodata record.
    pub fn record(&self) -> &RepoDataRecord {
        &self.record
    }

    /// How many files and entry points linking puts in place.
    pub(crate) fn file_count(&self) -> usize {
        self.files.len() + self.entry_points.len()
    }

    /// Every path (relative to the prefix) linking may create: files,
    /// entry points and the `.pyc` files python may write.
    pub fn target_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.iter().map(|f| f.target.clone()).collect();
        paths.extend(self.entry_points.iter().map(python::entry_point_path));
        if let Some(python) = &self.python {
            let pycs: Vec<PathBuf> = self
                .files
                .iter()
                .filter_map(|f| python.pyc_path(&f.target))
                .collect();
            paths.extend(pycs);
        }
        paths
    }

    /// Writes the package into `prefix` and returns its record (for the
    /// caller to write once everything else about the package is done):
    /// [`Self::link_files`], then [`Self::finish`].
    pub fn link(&self, prefix: &Path, mode: LinkMode) -> Result<LinkedPackage, PrefixError> {
        fs_err::create_dir_all(prefix).map_err(io("creating the environment"))?;
        let mut guard = LinkGuard::new(prefix);
        guard.declare(self);
        guard.check(self)?;
        let files =
            self.link_files(prefix, mode, &mut KnownDirs::new(prefix), &Hardlinks::new())?;
        Ok(self.finish(prefix, files, None))
    }

    /// Its symlinks: where each lands (relative to the prefix) and its
    /// target.
    fn symlinks(&self) -> impl Iterator<Item = (&Path, &Path)> {
        self.files
            .iter()
            .filter_map(|f| f.symlink.as_deref().map(|link| (f.target.as_path(), link)))
    }

    /// Its symlinks (relative to the prefix) that may stand for a
    /// directory: those that lead to one in the extracted package, or to
    /// nothing there (a directory of another package, say). A package
    /// that puts files below one of them must be linked after this one.
    pub fn symlinked_dirs(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|f| f.symlink.is_some())
            .filter(|f| {
                let src = self
                    .package_dir
                    .join(&self.paths.paths[f.index].relative_path);
                fs_err::metadata(src).map_or(true, |meta| meta.is_dir())
            })
            .map(|f| f.target.clone())
            .collect()
    }

    /// Whether it puts anything below `dir` (relative to the prefix).
    pub fn has_path_below(&self, dir: &Path) -> bool {
        let below = |target: &Path| target != dir && target.starts_with(dir);
        self.files.iter().any(|f| below(&f.target))
            || self
                .entry_points
                .iter()
                .any(|e| below(&python::entry_point_path(e)))
    }

    /// The python this `noarch: python` package is linked for (`None` for
    /// other packages).
    pub fn python(&self) -> Option<&PythonInfo> {
        self.python.as_ref()
    }

    /// Whether one of its modules has a prefix placeholder (its `.pyc`
    /// holds this environment's prefix: never kept for another one).
    pub fn has_module_with_placeholder(&self) -> bool {
        self.python.is_some()
            && self.files.iter().any(|f| {
                self.paths.paths[f.index].prefix_placeholder.is_some()
                    && f.target.extension().is_some_and(|e| e == "py")
            })
    }

    /// The modules (`.py` files, relative to the prefix) a `noarch: python`
    /// package has byte-compiled; none for other packages.
    pub fn modules(&self) -> Vec<PathBuf> {
        if self.python.is_none() {
            return Vec::new();
        }
        self.files
            .iter()
            .filter(|f| f.target.extension().is_some_and(|e| e == "py"))
            .map(|f| f.target.clone())
            .collect()
    }
}

/// The entry points of a noarch python package (none when it has no
/// `info/link.json`, like many older builds).
fn read_entry_points(package_dir: &Path, package: &str) -> Result<Vec<EntryPoint>, PrefixError> {
    if !package_dir.join("info").join("link.json").exists() {
        return Ok(Vec::new());
    }
    // Within its size limit: a package's metadata comes from whoever built it.
    let path = package_dir.join(LinkJson::package_path());
    let limit = pkgr_fs::bounded::metadata_limit(LinkJson::package_path())
        .unwrap_or(pkgr_fs::bounded::METADATA_LIMIT);
    let text = pkgr_fs::bounded::read_to_string_at_most(&path, limit).map_err(|source| {
        PrefixError::BadMetadata {
            package: package.to_owned(),
            source,
        }
    })?;
    let link =
        LinkJson::from_str(&text).map_err(|source| match python::malformed_entry_point(&text) {
            Some((entry, why)) => PrefixError::BadEntryPoint {
                package: package.to_owned(),
                entry,
                why,
            },
            None => PrefixError::BadMetadata {
                package: package.to_owned(),
                source,
            },
        })?;
    Ok(match link.noarch {
        NoArchLinks::Python(python) => python.entry_points,
        NoArchLinks::Generic => Vec::new(),
    })
}

/// For a legacy package (`info/files`, no paths.json): the first listed file
/// that is not there.
fn first_missing_legacy_file(package_dir: &Path) -> Option<String> {
    if package_dir.join("info").join("paths.json").exists() {
        return None;
    }
    let files = pkgr_fs::bounded::read_to_string_at_most(
        &package_dir.join("info").join("files"),
        pkgr_fs::bounded::FILE_LIST_LIMIT,
    )
    .ok()?;
    files
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find(|l| fs_err::symlink_metadata(package_dir.join(l)).is_err())
        .map(ToOwned::to_owned)
}
