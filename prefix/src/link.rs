//! Linking one extracted package into a prefix: checked in full first
//! ([`PackagePlan::new`]), then written ([`PackagePlan::link`]).

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pkgr_fs::paths::{check_link_target, check_relative_path, normalized};
use pkgr_fs::Resolver;
use rattler_conda_types::package::{
    EntryPoint, FileMode, LinkJson, NoArchLinks, PackageFile, PathType, PathsJson,
};
use rattler_conda_types::prefix_record::{
    Link, LinkType, PathType as PrefixPathType, PathsEntry as PrefixPathsEntry,
};
use rattler_conda_types::{PrefixRecord, RepoDataRecord};
use sha2::{Digest, Sha256};

use crate::placeholder::{replace_binary, replace_text, shorten_long_shebang};
use crate::python::{self, PythonInfo};
use crate::{io, PrefixError};

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
                None => match std::fs::symlink_metadata(&src) {
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

    /// Writes the package's files and entry points into `prefix`; may run
    /// beside other packages' `link_files` (a path they share ends up with
    /// whichever was written last: [`Self::relink`] settles it).
    /// `dirs` remembers the directories known to exist, so each is made once
    /// and never looked at; `hardlinks` remembers whether hardlinks into the
    /// prefix work at all, so a failed attempt is not repeated per file.
    pub fn link_files(
        &self,
        prefix: &Path,
        mode: LinkMode,
        dirs: &mut KnownDirs,
        hardlinks: &Hardlinks,
    ) -> Result<LinkedFiles, PrefixError> {
        let prefix_text = prefix.to_string_lossy().replace('\\', "/");
        let into = Destination {
            prefix,
            prefix_text: &prefix_text,
            mode,
        };
        let mut paths = PathBuffers::default();
        let mut entries = Vec::with_capacity(self.files.len() + self.entry_points.len());
        let mut all_hardlinked = true;
        for file in &self.files {
            let (entry, hardlinked) = self.link_file(file, &into, dirs, hardlinks, &mut paths)?;
            all_hardlinked &= hardlinked;
            entries.push(entry);
        }
        if let Some(python) = &self.python {
            let interpreter = prefix.join(&python.executable);
            for entry_point in &self.entry_points {
                let target = python::entry_point_path(entry_point);
                let dest = prefix.join(&target);
                if let Some(parent) = dest.parent() {
                    dirs.ensure(parent)?;
                }
                let script = python::entry_point_script(entry_point, &interpreter);
                replacing(&dest, || write_new_executable(&dest, script.as_bytes()))?;
                entries.push(bare_entry(target, PrefixPathType::UnixPythonEntryPoint));
            }
        }
        Ok(LinkedFiles {
            entries,
            all_hardlinked,
        })
    }

    /// Puts one file of the package at its place in `prefix`; returns what
    /// its record says of it and whether it is a hardlink into the cache.
    fn link_file(
        &self,
        file: &PlannedFile,
        into: &Destination<'_>,
        dirs: &mut KnownDirs,
        hardlinks: &Hardlinks,
        paths: &mut PathBuffers,
    ) -> Result<(PrefixPathsEntry, bool), PrefixError> {
        let PlannedFile {
            index,
            target,
            symlink,
        } = file;
        let Destination {
            prefix,
            prefix_text,
            mode,
        } = *into;
        let entry = &self.paths.paths[*index];
        let mut hardlinked = true;
        let src = joined(&mut paths.src, &self.package_dir, &entry.relative_path);
        let dest = joined(&mut paths.dest, prefix, target);
        if let Some(parent) = dest.parent() {
            dirs.ensure(parent)?;
        }
        let mut sha256_in_prefix = entry.sha256;
        let mut size = entry.size_in_bytes;
        let path_type = match (entry.path_type, symlink) {
            (PathType::Directory, _) => {
                dirs.ensure(dest)?;
                PrefixPathType::Directory
            }
            (PathType::SoftLink | PathType::HardLink, Some(link)) => {
                replacing(dest, || make_symlink(link, dest))?;
                PrefixPathType::SoftLink
            }
            // A `softlink` that the archive holds as a plain file is
            // linked as a file, like any other.
            (PathType::SoftLink | PathType::HardLink, None) => {
                if let Some(placeholder) = &entry.prefix_placeholder {
                    let bytes = fs_err::read(src).map_err(io("reading a package file"))?;
                    let replaced = match placeholder.file_mode {
                        FileMode::Text => shorten_long_shebang(replace_text(
                            &bytes,
                            placeholder.placeholder.as_bytes(),
                            prefix_text.as_bytes(),
                        )),
                        FileMode::Binary => replace_binary(
                            &bytes,
                            placeholder.placeholder.as_bytes(),
                            prefix_text.as_bytes(),
                        )
                        .map_err(|source| PrefixError::Placeholder {
                            package: self.package.clone(),
                            path: entry.relative_path.display().to_string(),
                            source,
                        })?,
                    };
                    replacing(dest, || write_new_like(src, dest, &replaced))?;
                    sha256_in_prefix = Some(Sha256::digest(&replaced));
                    size = size.or(Some(bytes.len() as u64));
                } else {
                    let placed = place_file(src, dest, mode, entry.no_link, hardlinks)?;
                    hardlinked = placed == LinkType::HardLink;
                    if placed == LinkType::Copy && target.extension().is_some_and(|e| e == "py") {
                        // A module's `.pyc` records its source's mtime: a
                        // copy keeps it, so the `.pyc` files compiled once
                        // for the package (kept in the cache) stay valid.
                        keep_mtime(src, dest)?;
                    }
                    if entry.path_type == PathType::SoftLink {
                        // paths.json describes the link's target; record
                        // the file that is really there (an empty file for
                        // a link with an empty target).
                        let hashed =
                            pkgr_fs::hash_file(dest).map_err(io("reading a linked file"))?;
                        sha256_in_prefix = Some(hashed.sha256.into());
                        size = Some(hashed.size);
                    } else if sha256_in_prefix.is_none() {
                        // Legacy packages list no hashes: take them here.
                        let hashed =
                            pkgr_fs::hash_file(dest).map_err(io("reading a linked file"))?;
                        sha256_in_prefix = Some(hashed.sha256.into());
                        size = size.or(Some(hashed.size));
                    }
                }
                PrefixPathType::HardLink
            }
        };
        let recorded = PrefixPathsEntry {
            relative_path: target.clone(),
            original_path: None,
            path_type,
            no_link: entry.no_link,
            sha256: entry.sha256.or(sha256_in_prefix),
            sha256_in_prefix: if path_type == PrefixPathType::HardLink {
                sha256_in_prefix
            } else {
                None
            },
            size_in_bytes: size,
            file_mode: entry.prefix_placeholder.as_ref().map(|p| p.file_mode),
            prefix_placeholder: entry
                .prefix_placeholder
                .as_ref()
                .map(|p| p.placeholder.clone()),
        };
        Ok((recorded, hardlinked))
    }

    /// Puts this package's file or entry point for `target` (a path
    /// relative to the prefix) in place again, replacing what another
    /// package put there; nothing when the package has no such path.
    pub fn relink(
        &self,
        target: &Path,
        prefix: &Path,
        mode: LinkMode,
        dirs: &mut KnownDirs,
        hardlinks: &Hardlinks,
    ) -> Result<(), PrefixError> {
        let prefix_text = prefix.to_string_lossy().replace('\\', "/");
        let into = Destination {
            prefix,
            prefix_text: &prefix_text,
            mode,
        };
        if let Some(file) = self.files.iter().find(|f| f.target == target) {
            return self
                .link_file(file, &into, dirs, hardlinks, &mut PathBuffers::default())
                .map(drop);
        }
        let entry_point = self
            .entry_points
            .iter()
            .find(|e| python::entry_point_path(e) == target);
        if let (Some(entry_point), Some(python)) = (entry_point, &self.python) {
            let dest = prefix.join(target);
            if let Some(parent) = dest.parent() {
                dirs.ensure(parent)?;
            }
            let script = python::entry_point_script(entry_point, &prefix.join(&python.executable));
            replacing(&dest, || write_new_executable(&dest, script.as_bytes()))?;
        }
        Ok(())
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
                std::fs::metadata(src).map_or(true, |meta| meta.is_dir())
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

    /// What is left once every package's files are in place (python's
    /// interpreter among them): byte-compiling a noarch python package's
    /// modules (done already when `compiled` is given: the batch that
    /// compiled every package's modules at once); returns the package's
    /// record (not yet written).
    pub fn finish(
        &self,
        prefix: &Path,
        files: LinkedFiles,
        compiled: Option<&python::CompiledBatch>,
    ) -> LinkedPackage {
        let LinkedFiles {
            mut entries,
            all_hardlinked,
        } = files;
        let mut warnings = Vec::new();
        if let Some(python) = &self.python {
            let interpreter = prefix.join(&python.executable);
            let modules = self.modules();
            // `exists` follows symlinks: a dangling bin/pythonX.Y is missing too.
            if interpreter.exists() {
                let outcome = match compiled {
                    Some(batch) => match &batch.error {
                        Some(e) => Err(e.clone()),
                        None => Ok((
                            modules
                                .iter()
                                .filter_map(|m| python.pyc_path(m))
                                .filter(|pyc| batch.pycs.contains(pyc))
                                .collect::<Vec<_>>(),
                            batch.failed,
                        )),
                    },
                    None => python::compile_pyc(prefix, python, &modules)
                        .map(|c| (c.pycs, c.status.filter(|s| !s.success())))
                        .map_err(|e| e.to_string()),
                };
                match outcome {
                    Ok((pycs, failed)) => {
                        if pycs.is_empty() && !modules.is_empty() {
                            if let Some(status) = failed {
                                warnings.push(format!(
                                    "{}: {} byte-compiled none of its .py files ({status}); \
                                     they still work, only their first import is slower",
                                    self.package,
                                    interpreter.display(),
                                ));
                            }
                        }
                        entries.extend(
                            pycs.into_iter()
                                .map(|p| bare_entry(p, PrefixPathType::PycFile)),
                        );
                    }
                    Err(e) => warnings.push(format!(
                        "{}: could not run {} to byte-compile its modules: {e}",
                        self.package,
                        interpreter.display()
                    )),
                }
            } else if let Some(warning) = self.missing_interpreter(&interpreter, &modules) {
                // conda writes the entry points all the same and its compile
                // step only logs at info level; say it instead of staying silent.
                warnings.push(warning);
            }
        }
        let mut record = PrefixRecord::from_repodata_record(self.record.clone(), entries);
        record.extracted_package_dir = Some(self.package_dir.clone());
        record.link = Some(Link {
            source: self.package_dir.clone(),
            // Files with placeholders are always written anew; the link type
            // says how the others got there.
            link_type: Some(if all_hardlinked {
                LinkType::HardLink
            } else {
                LinkType::Copy
            }),
        });
        #[allow(deprecated)]
        {
            record.requested_spec.clone_from(&self.requested_spec);
        }
        record.requested_specs = self.requested_spec.iter().cloned().collect();
        LinkedPackage { record, warnings }
    }
}

impl PackagePlan {
    /// The warning for a noarch python package whose environment lacks the
    /// interpreter (`bin/pythonX.Y`, which conda's entry points and
    /// byte-compiling use), or `None` when the package needs no interpreter.
    fn missing_interpreter(&self, interpreter: &Path, modules: &[PathBuf]) -> Option<String> {
        let commands: Vec<&str> = self
            .entry_points
            .iter()
            .map(|e| e.command.as_str())
            .collect();
        let consequence = match (commands.is_empty(), modules.is_empty()) {
            (true, true) => return None,
            (false, true) => format!("its entry points ({}) will not run", commands.join(", ")),
            (true, false) => String::from("its modules were not byte-compiled"),
            (false, false) => format!(
                "its entry points ({}) will not run and its modules were not byte-compiled",
                commands.join(", ")
            ),
        };
        Some(format!(
            "{}: the environment's python has no interpreter at {}: {consequence} \
             (the python package should provide it)",
            self.package,
            interpreter.display()
        ))
    }
}

fn bare_entry(path: PathBuf, path_type: PrefixPathType) -> PrefixPathsEntry {
    PrefixPathsEntry {
        relative_path: path,
        original_path: None,
        path_type,
        no_link: false,
        sha256: None,
        sha256_in_prefix: None,
        size_in_bytes: None,
        file_mode: None,
        prefix_placeholder: None,
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

/// The files and entry points of a package, written by
/// [`PackagePlan::link_files`]; its record is made by [`PackagePlan::finish`].
#[derive(Debug)]
pub struct LinkedFiles {
    entries: Vec<PrefixPathsEntry>,
    all_hardlinked: bool,
}

/// Where a package's files go: the prefix, as text for placeholders, and
/// how files without placeholders get there.
#[derive(Clone, Copy)]
struct Destination<'a> {
    prefix: &'a Path,
    prefix_text: &'a str,
    mode: LinkMode,
}

/// Reused for the source and destination path of each file, so that
/// linking a file allocates no path.
#[derive(Default)]
struct PathBuffers {
    src: PathBuf,
    dest: PathBuf,
}

/// `base.join(relative)`, made in `buffer`.
fn joined<'b>(buffer: &'b mut PathBuf, base: &Path, relative: &Path) -> &'b Path {
    buffer.as_mut_os_string().clear();
    buffer.push(base);
    buffer.push(relative);
    buffer
}

/// The directories of a prefix known to exist, so that linking makes each
/// one once (one `mkdir`, never a `stat`) instead of once per file in it.
#[derive(Debug)]
pub struct KnownDirs {
    /// Keyed by the text: hashing a `Path` parses it into components.
    known: HashSet<OsString>,
    /// The directory asked for last (known to exist).
    last: PathBuf,
}

impl KnownDirs {
    /// Nothing known yet but `prefix` itself (which must exist).
    pub fn new(prefix: &Path) -> Self {
        // The prefix as linking spells the paths below it (no trailing
        // separator), so that its own ancestors are found.
        let prefix = normalized(prefix);
        Self {
            known: HashSet::from([prefix.as_os_str().to_owned()]),
            last: prefix,
        }
    }

    /// Makes `dir` and whatever of its parents is not known to exist,
    /// outermost first. One that exists already (made by another package,
    /// another thread, or before) is fine: if it is not a directory, the
    /// file linked into it fails with that error.
    pub fn ensure(&mut self, dir: &Path) -> Result<(), PrefixError> {
        // Files come sorted by path: most are in the directory of the last.
        if self.last.as_os_str() == dir.as_os_str() {
            return Ok(());
        }
        if self.known.contains(dir.as_os_str()) {
            dir.clone_into(&mut self.last);
            return Ok(());
        }
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !self.known.contains(d.as_os_str()))
            .collect();
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(PrefixError::Io {
                        context: format!("creating the directory {}", d.display()),
                        source: e,
                    })
                }
            }
            self.known.insert(d.as_os_str().to_owned());
        }
        dir.clone_into(&mut self.last);
        Ok(())
    }
}

/// What every package of a transaction is checked against before
/// anything of it is linked: the symlinks of the transaction's packages
/// and those already in the environment (found on disk), through which
/// each of its paths and symlinks must stay inside the prefix (see
/// [`pkgr_fs::resolve`]). Counting `..` per link misses a chain: a link
/// whose target goes through another link (of the same package, of another
/// one, of the environment) may lead to `/`, and a file shipped below it
/// would then replace any file the user can write.
#[derive(Debug)]
pub(crate) struct LinkGuard {
    resolver: Resolver,
    /// The symlinks declared so far: package, where it lands, target.
    links: Vec<(String, PathBuf, PathBuf)>,
}

impl LinkGuard {
    /// Knows the symlinks of `prefix` on disk (each looked at once, when a
    /// path goes through it), none declared yet.
    pub(crate) fn new(prefix: &Path) -> Self {
        Self {
            resolver: Resolver::on_disk(prefix),
            links: Vec::new(),
        }
    }

    /// Declares the symlinks of `plan` (a package of the transaction).
    /// Returns whether a check before may have answered otherwise with
    /// them known (see [`Self::admit`]).
    pub(crate) fn declare(&mut self, plan: &PackagePlan) -> bool {
        let mut changed = false;
        for (target, link) in plan.symlinks() {
            changed |= self.resolver.add_link(target, link);
            self.links.push((
                plan.package.clone(),
                target.to_path_buf(),
                link.to_path_buf(),
            ));
        }
        changed
    }

    /// Checks that every path of `plan` lands inside the prefix through
    /// the symlinks known: the directory of each file, directory, entry
    /// point and `.pyc`, and each symlink's target.
    pub(crate) fn check(&mut self, plan: &PackagePlan) -> Result<(), PrefixError> {
        let unsafe_path = |path: &Path, escape: pkgr_fs::Escape| PrefixError::UnsafePath {
            package: plan.package.clone(),
            path: path.display().to_string(),
            why: escape.why(),
        };
        for file in &plan.files {
            self.resolver
                .check_parent(&file.target)
                .map_err(|e| unsafe_path(&file.target, e))?;
            if let Some(link) = &file.symlink {
                self.resolver
                    .check_link(&file.target, link)
                    .map_err(|e| unsafe_path(&file.target, e))?;
            }
        }
        for entry_point in &plan.entry_points {
            let target = python::entry_point_path(entry_point);
            self.resolver
                .check_parent(&target)
                .map_err(|e| unsafe_path(&target, e))?;
        }
        if let Some(python) = &plan.python {
            for pyc in plan.files.iter().filter_map(|f| python.pyc_path(&f.target)) {
                self.resolver
                    .check_parent(&pyc)
                    .map_err(|e| unsafe_path(&pyc, e))?;
            }
        }
        Ok(())
    }

    /// For packages that arrive one by one: declares `plan`'s symlinks,
    /// checks the symlinks of the packages before it again if one of its
    /// links changes where they lead (a chain split across packages), then
    /// checks `plan` (its paths through every link known, its links
    /// included). The packages before it were checked without its links:
    /// that their files stay inside follows from every link staying inside.
    pub(crate) fn admit(&mut self, plan: &PackagePlan) -> Result<(), PrefixError> {
        let before = self.links.len();
        if self.declare(plan) {
            // Directories the packages before were checked (and linked)
            // through, links of the environment on their way included.
            if let Err((dir, escape)) = self.resolver.recheck() {
                return Err(PrefixError::EscapingChain {
                    package: plan.package.clone(),
                    other: String::from("a package linked before it"),
                    path: dir.display().to_string(),
                    why: escape.why(),
                });
            }
            for (package, target, link) in &self.links[..before] {
                if let Err(escape) = self.resolver.check_link(target, link) {
                    return Err(PrefixError::EscapingChain {
                        package: plan.package.clone(),
                        other: package.clone(),
                        path: target.display().to_string(),
                        why: escape.why(),
                    });
                }
            }
        }
        self.check(plan)
    }
}

/// Whether hardlinks from the cache into the prefix work: after the first
/// that fails for a reason other than an existing file (another file system,
/// a file system without hardlinks), no other is tried.
#[derive(Debug)]
pub struct Hardlinks {
    unavailable: AtomicBool,
}

impl Hardlinks {
    /// Not known to fail yet.
    pub fn new() -> Self {
        Self {
            unavailable: AtomicBool::new(false),
        }
    }
}

impl Default for Hardlinks {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `create` (which makes `dest` and fails if it exists); where `dest`
/// exists (a file of another package, of an older version), removes it and
/// runs `create` again. A file in the prefix may be a hardlink into the
/// cache, so it is never written through, always replaced.
fn replacing(dest: &Path, create: impl Fn() -> std::io::Result<()>) -> Result<(), PrefixError> {
    let fail = |e: std::io::Error| PrefixError::Io {
        context: format!("creating {} in the environment", dest.display()),
        source: e,
    };
    // Another package linked beside this one may put the same path there
    // between our remove and our create: more rounds settle it (which file
    // stays is settled after all packages are linked).
    let mut rounds = 0;
    loop {
        match create() {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && rounds < 64 => {
                rounds += 1;
                match std::fs::symlink_metadata(dest) {
                    // A directory is not replaced by a file: say so.
                    Ok(meta) if meta.is_dir() => return Err(fail(e)),
                    _ => {}
                }
                match std::fs::remove_file(dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(format!("replacing {}", dest.display()))(e)),
                }
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

/// Puts one file without placeholder into the prefix (replacing what is
/// there, never writing through it); says how.
pub(crate) fn place_file(
    src: &Path,
    dest: &Path,
    mode: LinkMode,
    no_link: bool,
    hardlinks: &Hardlinks,
) -> Result<LinkType, PrefixError> {
    if mode == LinkMode::Auto && !no_link && !hardlinks.unavailable.load(Ordering::Relaxed) {
        let linked = replacing(dest, || std::fs::hard_link(src, dest));
        match linked {
            Ok(()) => return Ok(LinkType::HardLink),
            Err(PrefixError::Io { source, .. }) => match source.kind() {
                // Another file system, or one without hardlinks: copy
                // instead, from now on without trying.
                std::io::ErrorKind::CrossesDevices | std::io::ErrorKind::Unsupported => {
                    hardlinks.unavailable.store(true, Ordering::Relaxed);
                }
                // Nothing a copy could do better (the file is gone, the
                // directory not writable).
                std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists => {
                    return Err(PrefixError::Io {
                        context: format!("linking {} to {}", src.display(), dest.display()),
                        source,
                    })
                }
                // EPERM for another user's file (fs.protected_hardlinks, a
                // shared cache), EMLINK (too many links): copy this one.
                _ => {}
            },
            Err(err) => return Err(err),
        }
    }
    // A reflink shares blocks copy-on-write; where the file system has none
    // this is a plain copy. Either way the prefix file is independent.
    replacing(dest, || match reflink_copy::reflink(src, dest) {
        // It has the cache file's (read-only) permissions.
        Ok(()) => std::fs::metadata(dest)
            .and_then(|meta| std::fs::set_permissions(dest, owner_writable(meta.permissions()))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => copy_new(src, dest),
    })
    .map_err(|e| match e {
        PrefixError::Io { source, .. } => PrefixError::Io {
            context: format!("copying {} to {}", src.display(), dest.display()),
            source,
        },
        other => other,
    })?;
    Ok(LinkType::Copy)
}

/// Gives `dest` the modification time of `src`.
fn keep_mtime(src: &Path, dest: &Path) -> Result<(), PrefixError> {
    let modified = std::fs::metadata(src)
        .and_then(|m| m.modified())
        .map_err(io(format!("reading {}", src.display())))?;
    // A read-only handle: setting times needs ownership, not write
    // permission (a module may be read-only).
    std::fs::File::open(dest)
        .and_then(|f| f.set_modified(modified))
        .map_err(io(format!(
            "setting the modification time of {}",
            dest.display()
        )))
}

/// Copies `src` to a new file `dest` (which must not exist) with `src`'s
/// permissions made [`owner_writable`].
fn copy_new(src: &Path, dest: &Path) -> std::io::Result<()> {
    let mut from = std::fs::File::open(src)?;
    let permissions = owner_writable(from.metadata()?.permissions());
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    let copied = std::io::copy(&mut from, &mut to).and_then(|_| to.set_permissions(permissions));
    if copied.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    copied
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
        .find(|l| std::fs::symlink_metadata(package_dir.join(l)).is_err())
        .map(ToOwned::to_owned)
}

#[cfg(unix)]
fn make_symlink(target: &Path, dest: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, dest)
}

#[cfg(windows)]
fn make_symlink(target: &Path, dest: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, dest)
}

/// Writes `bytes` to a new file `dest` (which must not exist) with the
/// permissions of `src` made [`owner_writable`].
fn write_new_like(src: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let permissions = owner_writable(std::fs::metadata(src)?.permissions());
    write_new(dest, bytes, Some(permissions))
}

/// The permissions of a file of the cache (read-only: 0444, 0555 when
/// executable) for the environment's own copy of it: writable by its owner
/// (0644, 0755), as conda's copies are. Only copies get it: a hardlinked
/// file *is* the cache's file, and stays read-only so that nothing writes
/// through it into every environment linked from the cache.
fn owner_writable(permissions: std::fs::Permissions) -> std::fs::Permissions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(permissions.mode() | 0o200)
    }
    #[cfg(not(unix))]
    {
        let mut permissions = permissions;
        permissions.set_readonly(false);
        permissions
    }
}

/// Writes an entry point script to a new file `dest`, executable.
fn write_new_executable(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    let permissions = {
        use std::os::unix::fs::PermissionsExt;
        Some(std::fs::Permissions::from_mode(0o755))
    };
    #[cfg(not(unix))]
    let permissions = None;
    write_new(dest, bytes, permissions)
}

fn write_new(
    dest: &Path,
    bytes: &[u8],
    permissions: Option<std::fs::Permissions>,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    let written = file.write_all(bytes).and_then(|()| match permissions {
        Some(permissions) => file.set_permissions(permissions),
        None => Ok(()),
    });
    if written.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACEHOLDER: &str = "/opt/anaconda1anaconda2anaconda3";

    fn record(name: &str) -> RepoDataRecord {
        crate::test_record(name)
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Writes `info/index.json` and `info/paths.json` (version 1) with `paths`.
    fn write_info(dir: &Path, paths: &[serde_json::Value]) {
        fs_err::create_dir_all(dir.join("info")).unwrap();
        let index = serde_json::json!({
            "name": "foo", "version": "1.0", "build": "0", "build_number": 0, "subdir": "linux-64"
        });
        fs_err::write(dir.join("info/index.json"), index.to_string()).unwrap();
        let paths = serde_json::json!({"paths_version": 1, "paths": paths});
        fs_err::write(dir.join("info/paths.json"), paths.to_string()).unwrap();
    }

    fn write_file(dir: &Path, path: &str, contents: &[u8]) {
        let full = dir.join(path);
        fs_err::create_dir_all(full.parent().unwrap()).unwrap();
        fs_err::write(full, contents).unwrap();
    }

    /// A package with a plain file, a text file with the prefix placeholder,
    /// a `no_link` file and a symlink.
    fn good_package(dir: &Path) {
        let tool = b"plain tool\n";
        let config = format!("prefix={PLACEHOLDER}\nlib={PLACEHOLDER}/lib\n");
        let pinned = b"never hardlinked\n";
        write_file(dir, "bin/tool", tool);
        write_file(dir, "etc/foo.conf", config.as_bytes());
        write_file(dir, "share/pinned.txt", pinned);
        #[cfg(unix)]
        std::os::unix::fs::symlink("../bin/tool", dir.join("share/tool-link")).unwrap();
        let mut paths = vec![
            serde_json::json!({
                "_path": "bin/tool", "path_type": "hardlink",
                "sha256": sha256_hex(tool), "size_in_bytes": tool.len(),
            }),
            serde_json::json!({
                "_path": "etc/foo.conf", "path_type": "hardlink",
                "prefix_placeholder": PLACEHOLDER, "file_mode": "text",
                "sha256": sha256_hex(config.as_bytes()), "size_in_bytes": config.len(),
            }),
            serde_json::json!({
                "_path": "share/pinned.txt", "path_type": "hardlink", "no_link": true,
                "sha256": sha256_hex(pinned), "size_in_bytes": pinned.len(),
            }),
        ];
        if cfg!(unix) {
            paths.push(serde_json::json!({"_path": "share/tool-link", "path_type": "softlink"}));
        }
        write_info(dir, &paths);
    }

    /// `PackagePlan::new` on a package with `paths`, which must fail.
    fn rejected(dir: &Path, paths: &[serde_json::Value]) -> PrefixError {
        write_info(dir, paths);
        PackagePlan::new(dir, &record("foo"), None, None).expect_err("accepted a bad package")
    }

    /// Checks `err` is an `UnsafePath` naming the package and `path`, in the
    /// message as well.
    fn assert_unsafe(err: &PrefixError, path: &str) {
        assert!(
            matches!(err, PrefixError::UnsafePath { package, path: p, .. }
                if package == "foo-1.0-0.conda" && p == path),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("foo-1.0-0.conda"), "{message}");
        assert!(message.contains(path), "{message}");
    }

    fn entry<'a>(record: &'a PrefixRecord, path: &str) -> &'a PrefixPathsEntry {
        record
            .paths_data
            .paths
            .iter()
            .find(|e| e.relative_path == Path::new(path))
            .unwrap()
    }

    #[cfg(unix)]
    fn inode(path: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&fs_err::metadata(path).unwrap())
    }

    fn link_type_json(record: &PrefixRecord) -> serde_json::Value {
        serde_json::to_value(record).unwrap()["link"]["type"].clone()
    }

    #[test]
    fn rejects_a_parent_dir_path() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "lib/x", b"x");
        let err = rejected(
            dir.path(),
            &[serde_json::json!({"_path": "lib/../../evil", "path_type": "hardlink"})],
        );
        assert_unsafe(&err, "lib/../../evil");
    }

    #[test]
    fn rejects_an_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = rejected(
            dir.path(),
            &[serde_json::json!({"_path": "/etc/evil", "path_type": "hardlink"})],
        );
        assert_unsafe(&err, "/etc/evil");
    }

    #[cfg(unix)]
    #[test]
    fn rejects_a_symlink_pointing_out_of_the_prefix() {
        for target in ["../../outside", "/etc/passwd"] {
            let dir = tempfile::tempdir().unwrap();
            fs_err::create_dir_all(dir.path().join("lib")).unwrap();
            std::os::unix::fs::symlink(target, dir.path().join("lib/evil")).unwrap();
            let err = rejected(
                dir.path(),
                &[serde_json::json!({"_path": "lib/evil", "path_type": "softlink"})],
            );
            assert_unsafe(&err, target);
        }
    }

    #[test]
    fn rejects_a_listed_file_missing_from_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let err = rejected(
            dir.path(),
            &[serde_json::json!({"_path": "bin/missing", "path_type": "hardlink"})],
        );
        assert!(
            matches!(&err, PrefixError::Incomplete { package, dir: entry, path }
                if package == "foo-1.0-0.conda" && path == "bin/missing" && entry == dir.path()),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("the cache entry of foo-1.0-0.conda at")
                && message.contains("is incomplete: it lacks `bin/missing`")
                && message.contains("pkgr cache verify --repair"),
            "{message}"
        );
    }

    #[test]
    fn a_noarch_python_package_needs_python() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "site-packages/foo.py", b"x = 1\n");
        write_info(
            dir.path(),
            &[serde_json::json!({"_path": "site-packages/foo.py", "path_type": "hardlink"})],
        );
        let err = PackagePlan::new(dir.path(), &noarch_python_record(), None, None).unwrap_err();
        assert!(matches!(&err, PrefixError::NoPython { .. }), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn links_a_good_package() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        good_package(&package_dir);
        let prefix = root.path().join("env");
        let plan = PackagePlan::new(
            &package_dir,
            &record("foo"),
            Some("foo >=1".to_owned()),
            None,
        )
        .unwrap();
        let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
        let record = &linked.record;

        // The plain file is a hardlink of the cache's.
        assert_eq!(
            inode(&prefix.join("bin/tool")),
            inode(&package_dir.join("bin/tool"))
        );
        let tool = entry(record, "bin/tool");
        assert_eq!(tool.path_type, PrefixPathType::HardLink);
        assert_eq!(tool.sha256_in_prefix, Some(Sha256::digest(b"plain tool\n")));
        assert_eq!(tool.size_in_bytes, Some(11));

        // The placeholder is replaced, in a file of its own.
        let written = fs_err::read_to_string(prefix.join("etc/foo.conf")).unwrap();
        let prefix_text = prefix.to_string_lossy();
        assert_eq!(
            written,
            format!("prefix={prefix_text}\nlib={prefix_text}/lib\n")
        );
        assert_ne!(
            inode(&prefix.join("etc/foo.conf")),
            inode(&package_dir.join("etc/foo.conf"))
        );
        let config = entry(record, "etc/foo.conf");
        assert_eq!(
            config.sha256_in_prefix,
            Some(Sha256::digest(written.as_bytes()))
        );
        assert_ne!(config.sha256, config.sha256_in_prefix);
        assert_eq!(config.prefix_placeholder.as_deref(), Some(PLACEHOLDER));
        assert_eq!(config.file_mode, Some(FileMode::Text));

        // `no_link` is a copy even when hardlinks work.
        assert_ne!(
            inode(&prefix.join("share/pinned.txt")),
            inode(&package_dir.join("share/pinned.txt"))
        );
        assert_eq!(
            fs_err::read(prefix.join("share/pinned.txt")).unwrap(),
            b"never hardlinked\n"
        );
        assert!(entry(record, "share/pinned.txt").no_link);

        // The symlink is a symlink, with its target as packaged.
        assert_eq!(
            fs_err::read_link(prefix.join("share/tool-link")).unwrap(),
            Path::new("../bin/tool")
        );
        let link = entry(record, "share/tool-link");
        assert_eq!(link.path_type, PrefixPathType::SoftLink);
        assert_eq!(link.sha256_in_prefix, None);

        // A copy among the files: conda's link type 3.
        assert_eq!(link_type_json(record), 3);
        assert_eq!(record.files.len(), 4);
        assert_eq!(record.requested_specs, ["foo >=1"]);
        assert_eq!(record.extracted_package_dir.as_deref(), Some(&*package_dir));
        assert!(linked.warnings.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn all_hardlinked_is_link_type_1() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        write_file(&package_dir, "bin/a", b"a");
        write_file(&package_dir, "lib/b", b"bb");
        write_file(&package_dir, "etc/c", format!("{PLACEHOLDER}\n").as_bytes());
        write_info(
            &package_dir,
            &[
                serde_json::json!({"_path": "bin/a", "path_type": "hardlink"}),
                serde_json::json!({"_path": "lib/b", "path_type": "hardlink"}),
                // Placeholder files are always written anew; they do not
                // make the package a copy.
                serde_json::json!({
                    "_path": "etc/c", "path_type": "hardlink",
                    "prefix_placeholder": PLACEHOLDER, "file_mode": "text",
                }),
            ],
        );
        let prefix = root.path().join("env");
        let plan = PackagePlan::new(&package_dir, &record("foo"), None, None).unwrap();
        let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
        assert_eq!(
            inode(&prefix.join("lib/b")),
            inode(&package_dir.join("lib/b"))
        );
        assert_eq!(link_type_json(&linked.record), 1);
        // Legacy entries without hashes get them from the linked file.
        let b = entry(&linked.record, "lib/b");
        assert_eq!(b.sha256_in_prefix, Some(Sha256::digest(b"bb")));
        assert_eq!(b.size_in_bytes, Some(2));
        assert_eq!(b.sha256, b.sha256_in_prefix);
    }

    #[cfg(unix)]
    #[test]
    fn copy_mode_shares_nothing_with_the_cache() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        good_package(&package_dir);
        let prefix = root.path().join("env");
        let plan = PackagePlan::new(&package_dir, &record("foo"), None, None).unwrap();
        let linked = plan.link(&prefix, LinkMode::Copy).unwrap();
        assert_ne!(
            inode(&prefix.join("bin/tool")),
            inode(&package_dir.join("bin/tool"))
        );
        assert_eq!(
            fs_err::read(prefix.join("bin/tool")).unwrap(),
            b"plain tool\n"
        );
        assert_eq!(link_type_json(&linked.record), 3);
        // Writing through the prefix file leaves the cache intact.
        fs_err::write(prefix.join("bin/tool"), b"changed").unwrap();
        assert_eq!(
            fs_err::read(package_dir.join("bin/tool")).unwrap(),
            b"plain tool\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn linking_again_replaces_existing_files() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        good_package(&package_dir);
        let prefix = root.path().join("env");
        write_file(&prefix, "bin/tool", b"another package's tool");
        // A file hardlinked to the cache (as an earlier link left it): the
        // placeholder replacement must not write through it into the cache.
        fs_err::create_dir_all(prefix.join("etc")).unwrap();
        fs_err::hard_link(
            package_dir.join("etc/foo.conf"),
            prefix.join("etc/foo.conf"),
        )
        .unwrap();
        let plan = PackagePlan::new(&package_dir, &record("foo"), None, None).unwrap();
        plan.link(&prefix, LinkMode::Auto).unwrap();
        plan.link(&prefix, LinkMode::Auto).unwrap();
        assert_eq!(
            fs_err::read(prefix.join("bin/tool")).unwrap(),
            b"plain tool\n"
        );
        let cached = fs_err::read_to_string(package_dir.join("etc/foo.conf")).unwrap();
        assert!(cached.contains(PLACEHOLDER), "{cached}");
        let written = fs_err::read_to_string(prefix.join("etc/foo.conf")).unwrap();
        assert!(!written.contains(PLACEHOLDER), "{written}");
    }

    fn python_312() -> PythonInfo {
        PythonInfo {
            version: (3, 12),
            site_packages: PathBuf::from("lib/python3.12/site-packages"),
            executable: PathBuf::from("bin/python3.12"),
        }
    }

    /// A noarch python package `foo` with one module and entry point `foo`.
    fn write_noarch_python_package(package_dir: &Path) {
        write_file(package_dir, "site-packages/foo/__init__.py", b"x = 1\n");
        write_info(
            package_dir,
            &[
                serde_json::json!({"_path": "site-packages/foo/__init__.py", "path_type": "hardlink"}),
            ],
        );
        let link = serde_json::json!({
            "noarch": {"type": "python", "entry_points": ["foo = foo:main"]},
            "package_metadata_version": 1
        });
        fs_err::write(package_dir.join("info/link.json"), link.to_string()).unwrap();
    }

    #[test]
    fn a_missing_interpreter_is_a_warning_naming_package_and_path() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        write_noarch_python_package(&package_dir);
        let plan = PackagePlan::new(
            &package_dir,
            &noarch_python_record(),
            None,
            Some(&python_312()),
        )
        .unwrap();
        let prefix = root.path().join("env");
        let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
        let interpreter = prefix.join("bin/python3.12");
        assert_eq!(
            linked.warnings,
            [format!(
                "foo-1.0-0.conda: the environment's python has no interpreter at {}: its entry \
                 points (foo) will not run and its modules were not byte-compiled (the python \
                 package should provide it)",
                interpreter.display()
            )]
        );
        // As conda, the entry point is written anyway, for the interpreter
        // conda would use.
        let script = fs_err::read_to_string(prefix.join("bin/foo")).unwrap();
        assert!(
            script.starts_with(&format!("#!{}\n", interpreter.display())),
            "{script}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn an_interpreter_that_compiles_nothing_is_a_warning() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        write_noarch_python_package(&package_dir);
        let prefix = root.path().join("env");
        let interpreter = prefix.join("bin/python3.12");
        fs_err::create_dir_all(interpreter.parent().unwrap()).unwrap();
        fs_err::write(&interpreter, "#!/bin/sh\nexit 1\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&interpreter, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let plan = PackagePlan::new(
            &package_dir,
            &noarch_python_record(),
            None,
            Some(&python_312()),
        )
        .unwrap();
        let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
        assert_eq!(linked.warnings.len(), 1, "{:?}", linked.warnings);
        let warning = &linked.warnings[0];
        assert!(
            warning.starts_with(&format!(
                "foo-1.0-0.conda: {} byte-compiled none of its .py files (exit status: 1)",
                interpreter.display()
            )),
            "{warning}"
        );
    }

    fn noarch_python_record() -> RepoDataRecord {
        let mut record = record("foo");
        record.package_record.noarch = serde_json::from_value(serde_json::json!("python")).unwrap();
        record
    }

    #[test]
    fn noarch_python_files_are_relocated() {
        let root = tempfile::tempdir().unwrap();
        let package_dir = root.path().join("pkgs/foo-1.0-0");
        write_file(&package_dir, "site-packages/foo/__init__.py", b"x = 1\n");
        write_file(&package_dir, "python-scripts/foo-tool", b"tool\n");
        write_info(
            &package_dir,
            &[
                serde_json::json!({"_path": "site-packages/foo/__init__.py", "path_type": "hardlink"}),
                serde_json::json!({"_path": "python-scripts/foo-tool", "path_type": "hardlink"}),
            ],
        );
        let python = python_312();
        let plan =
            PackagePlan::new(&package_dir, &noarch_python_record(), None, Some(&python)).unwrap();
        assert_eq!(
            plan.target_paths(),
            [
                "lib/python3.12/site-packages/foo/__init__.py",
                "bin/foo-tool",
                "lib/python3.12/site-packages/foo/__pycache__/__init__.cpython-312.pyc",
            ]
            .map(PathBuf::from)
        );
        let prefix = root.path().join("env");
        let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
        assert!(prefix
            .join("lib/python3.12/site-packages/foo/__init__.py")
            .is_file());
        assert!(prefix.join("bin/foo-tool").is_file());
        assert!(!prefix.join("site-packages").exists());
        assert_eq!(
            linked.record.files,
            [
                "lib/python3.12/site-packages/foo/__init__.py",
                "bin/foo-tool"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn noarch_python_errors_name_the_packaged_path() {
        let dir = tempfile::tempdir().unwrap();
        write_info(
            dir.path(),
            &[serde_json::json!({"_path": "site-packages/../../../evil", "path_type": "hardlink"})],
        );
        let err = PackagePlan::new(
            dir.path(),
            &noarch_python_record(),
            None,
            Some(&python_312()),
        )
        .unwrap_err();
        assert_unsafe(&err, "site-packages/../../../evil");
    }

    /// Relocation makes `site-packages/` deeper: a symlink is checked where
    /// it lands, not where the archive has it.
    #[cfg(unix)]
    #[test]
    fn noarch_python_symlinks_are_checked_where_they_land() {
        let python = python_312();
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("site-packages")).unwrap();
        std::os::unix::fs::symlink("../../../share/x", dir.path().join("site-packages/ok"))
            .unwrap();
        std::os::unix::fs::symlink("../../../../x", dir.path().join("site-packages/evil")).unwrap();
        write_info(
            dir.path(),
            &[serde_json::json!({"_path": "site-packages/ok", "path_type": "softlink"})],
        );
        PackagePlan::new(dir.path(), &noarch_python_record(), None, Some(&python)).unwrap();
        write_info(
            dir.path(),
            &[serde_json::json!({"_path": "site-packages/evil", "path_type": "softlink"})],
        );
        let err =
            PackagePlan::new(dir.path(), &noarch_python_record(), None, Some(&python)).unwrap_err();
        assert_unsafe(&err, "../../../../x");
    }

    /// Packages that arrive one by one (linked as they are fetched): a
    /// package checked through a link of the environment (`m`, harmless
    /// alone) is linked before the one that completes the chain (`l`)
    /// arrives; that one must be refused, since the first one's files would
    /// (or did) go through it.
    #[cfg(unix)]
    #[test]
    fn a_package_completing_a_chain_after_others_were_admitted_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("a/b")).unwrap();
        std::os::unix::fs::symlink("l/..", prefix.join("a/b/m")).unwrap();

        let writer = root.path().join("pkgs/writer");
        write_file(&writer, "a/b/m/x/file", b"pwned");
        write_info(
            &writer,
            &[serde_json::json!({"_path": "a/b/m/x/file", "path_type": "hardlink"})],
        );
        let el = root.path().join("pkgs/el");
        fs_err::create_dir_all(el.join("a/b")).unwrap();
        std::os::unix::fs::symlink("../..", el.join("a/b/l")).unwrap();
        write_info(
            &el,
            &[serde_json::json!({"_path": "a/b/l", "path_type": "softlink"})],
        );
        let writer = PackagePlan::new(&writer, &record("writer"), None, None).unwrap();
        let el = PackagePlan::new(&el, &record("el"), None, None).unwrap();

        let mut guard = LinkGuard::new(&prefix);
        guard.admit(&writer).unwrap();
        let err = guard.admit(&el).unwrap_err();
        assert!(
            matches!(&err, PrefixError::EscapingChain { path, .. } if path == "a/b/m/x"),
            "{err:?}"
        );
        // Known at once (as `Transaction::execute` checks), either is refused.
        let mut guard = LinkGuard::new(&prefix);
        guard.declare(&writer);
        guard.declare(&el);
        assert!(matches!(
            guard.check(&writer),
            Err(PrefixError::UnsafePath { .. })
        ));
    }
}
