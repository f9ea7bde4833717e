//! Linking one extracted package into a prefix: checked in full first
//! ([`PackagePlan::new`]), then written ([`PackagePlan::link`]).

use std::path::{Path, PathBuf};

use pkgr_cache::archive::{check_link_target, check_relative_path};
use rattler_conda_types::package::{
    EntryPoint, FileMode, LinkJson, NoArchLinks, PackageFile, PathType, PathsEntry, PathsJson,
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

/// One file of the package and where it goes.
#[derive(Debug)]
struct PlannedFile {
    entry: PathsEntry,
    target: PathBuf,
}

/// A package checked and ready to be linked: every path is known to stay
/// inside the prefix and to exist in the extracted package.
#[derive(Debug)]
pub struct PackagePlan {
    package: String,
    package_dir: PathBuf,
    record: RepoDataRecord,
    requested_spec: Option<String>,
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
        let package = record.identifier.to_string();
        let paths = PathsJson::from_package_directory_with_deprecated_fallback(package_dir)
            .map_err(|source| match first_missing_legacy_file(package_dir) {
                Some(path) => PrefixError::Incomplete {
                    package: package.clone(),
                    path,
                },
                None => PrefixError::BadMetadata {
                    package: package.clone(),
                    source,
                },
            })?;
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
        for entry in paths.paths {
            check_relative_path(&entry.relative_path)
                .map_err(|why| unsafe_path(&entry.relative_path, why))?;
            let target = match &python {
                Some(python) => python.relocate(&entry.relative_path),
                None => entry.relative_path.clone(),
            };
            check_relative_path(&target).map_err(|why| unsafe_path(&target, why))?;
            let src = package_dir.join(&entry.relative_path);
            if entry.path_type != PathType::Directory && std::fs::symlink_metadata(&src).is_err() {
                return Err(PrefixError::Incomplete {
                    package: package.clone(),
                    path: entry.relative_path.display().to_string(),
                });
            }
            if is_symlink(&src) {
                let link =
                    fs_err::read_link(&src).map_err(io("reading a symlink of the package"))?;
                // Checked where it lands: relocation changes the depth.
                check_link_target(&target, &link).map_err(|why| unsafe_path(&link, why))?;
            }
            files.push(PlannedFile { entry, target });
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
            files,
            entry_points,
            python,
        })
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
    /// caller to write once everything else about the package is done).
    pub fn link(&self, prefix: &Path, mode: LinkMode) -> Result<LinkedPackage, PrefixError> {
        let prefix_text = prefix.to_string_lossy().replace('\\', "/");
        let mut entries = Vec::with_capacity(self.files.len() + self.entry_points.len());
        let mut warnings = Vec::new();
        let mut all_hardlinked = true;
        for PlannedFile { entry, target } in &self.files {
            let src = self.package_dir.join(&entry.relative_path);
            let dest = prefix.join(target);
            if let Some(parent) = dest.parent() {
                fs_err::create_dir_all(parent)
                    .map_err(io("creating a directory in the environment"))?;
            }
            let mut sha256_in_prefix = entry.sha256;
            let mut size = entry.size_in_bytes;
            let path_type = match entry.path_type {
                PathType::Directory => {
                    fs_err::create_dir_all(&dest)
                        .map_err(io("creating a directory in the environment"))?;
                    PrefixPathType::Directory
                }
                PathType::SoftLink | PathType::HardLink if is_symlink(&src) => {
                    let link =
                        fs_err::read_link(&src).map_err(io("reading a symlink of the package"))?;
                    remove_existing(&dest)?;
                    make_symlink(&link, &dest)?;
                    PrefixPathType::SoftLink
                }
                // A `softlink` that the archive holds as a plain file is
                // linked as a file, like any other.
                PathType::SoftLink | PathType::HardLink => {
                    remove_existing(&dest)?;
                    if let Some(placeholder) = &entry.prefix_placeholder {
                        let bytes = fs_err::read(&src).map_err(io("reading a package file"))?;
                        let replaced =
                            match placeholder.file_mode {
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
                        write_with_permissions_of(&src, &dest, &replaced)?;
                        sha256_in_prefix = Some(Sha256::digest(&replaced));
                        size = size.or(Some(bytes.len() as u64));
                    } else {
                        let placed = place_file(&src, &dest, mode, entry.no_link)?;
                        all_hardlinked &= placed == LinkType::HardLink;
                        if sha256_in_prefix.is_none() {
                            // Legacy packages list no hashes: take them here.
                            let (digest, len) = hash_file(&dest)?;
                            sha256_in_prefix = Some(digest);
                            size = size.or(Some(len));
                        }
                    }
                    PrefixPathType::HardLink
                }
            };
            entries.push(PrefixPathsEntry {
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
            });
        }
        if let Some(python) = &self.python {
            let interpreter = prefix.join(&python.executable);
            for entry_point in &self.entry_points {
                let target = python::entry_point_path(entry_point);
                let dest = prefix.join(&target);
                if let Some(parent) = dest.parent() {
                    fs_err::create_dir_all(parent)
                        .map_err(io("creating a directory in the environment"))?;
                }
                remove_existing(&dest)?;
                let script = python::entry_point_script(entry_point, &interpreter);
                write_executable(&dest, script.as_bytes())?;
                entries.push(bare_entry(target, PrefixPathType::UnixPythonEntryPoint));
            }
            if interpreter.exists() {
                let modules: Vec<PathBuf> = self
                    .files
                    .iter()
                    .filter(|f| f.target.extension().is_some_and(|e| e == "py"))
                    .map(|f| f.target.clone())
                    .collect();
                match python::compile_pyc(prefix, python, &modules) {
                    Ok(pycs) => entries.extend(
                        pycs.into_iter()
                            .map(|p| bare_entry(p, PrefixPathType::PycFile)),
                    ),
                    Err(e) => warnings.push(format!(
                        "{}: could not run {} to byte-compile its modules: {e}",
                        self.package,
                        interpreter.display()
                    )),
                }
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
        Ok(LinkedPackage { record, warnings })
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
    let link = LinkJson::from_package_directory(package_dir).map_err(|source| {
        PrefixError::BadMetadata {
            package: package.to_owned(),
            source,
        }
    })?;
    Ok(match link.noarch {
        NoArchLinks::Python(python) => python.entry_points,
        NoArchLinks::Generic => Vec::new(),
    })
}

/// Puts one file without placeholder into the prefix; says how.
fn place_file(
    src: &Path,
    dest: &Path,
    mode: LinkMode,
    no_link: bool,
) -> Result<LinkType, PrefixError> {
    if mode == LinkMode::Auto && !no_link && fs_err::hard_link(src, dest).is_ok() {
        return Ok(LinkType::HardLink);
    }
    // A reflink shares blocks copy-on-write; where the file system has none
    // this is a plain copy. Either way the prefix file is independent.
    reflink_copy::reflink_or_copy(src, dest).map_err(|e| PrefixError::Io {
        context: format!("copying {} to {}", src.display(), dest.display()),
        source: e,
    })?;
    Ok(LinkType::Copy)
}

fn hash_file(path: &Path) -> Result<(sha2::digest::Output<Sha256>, u64), PrefixError> {
    let bytes = fs_err::read(path).map_err(io("reading a linked file"))?;
    Ok((Sha256::digest(&bytes), bytes.len() as u64))
}

/// For a legacy package (`info/files`, no paths.json): the first listed file
/// that is not there.
fn first_missing_legacy_file(package_dir: &Path) -> Option<String> {
    if package_dir.join("info").join("paths.json").exists() {
        return None;
    }
    let files = fs_err::read_to_string(package_dir.join("info").join("files")).ok()?;
    files
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find(|l| std::fs::symlink_metadata(package_dir.join(l)).is_err())
        .map(ToOwned::to_owned)
}

pub(crate) fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn remove_existing(dest: &Path) -> Result<(), PrefixError> {
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => fs_err::remove_file(dest).map_err(io("replacing a file in the environment")),
        Err(_) => Ok(()),
    }
}

#[cfg(unix)]
fn make_symlink(target: &Path, dest: &Path) -> Result<(), PrefixError> {
    fs_err::os::unix::fs::symlink(target, dest).map_err(io("creating a symlink in the environment"))
}

#[cfg(windows)]
fn make_symlink(target: &Path, dest: &Path) -> Result<(), PrefixError> {
    fs_err::os::windows::fs::symlink_file(target, dest)
        .map_err(io("creating a symlink in the environment"))
}

fn write_with_permissions_of(src: &Path, dest: &Path, bytes: &[u8]) -> Result<(), PrefixError> {
    let permissions = fs_err::metadata(src)
        .map_err(io("reading a package file"))?
        .permissions();
    fs_err::write(dest, bytes).map_err(io("writing a file into the environment"))?;
    fs_err::set_permissions(dest, permissions).map_err(io("setting file permissions"))
}

fn write_executable(dest: &Path, bytes: &[u8]) -> Result<(), PrefixError> {
    fs_err::write(dest, bytes).map_err(io("writing an entry point"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
            .map_err(io("setting file permissions"))?;
    }
    Ok(())
}
