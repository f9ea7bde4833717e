//! Environments (prefixes): linking packages from the cache into a prefix,
//! prefix placeholder replacement, the `conda-meta/` records conda and pixi
//! read, and the prefix lock.
//!
//! A transaction on a prefix holds the prefix's exclusive lock
//! ([`lock_prefix`]) for its whole length; it is the first lock in pkgr's lock
//! order (see the `pkgr_cache` crate docs).

mod placeholder;

use std::io::Write;
use std::path::{Path, PathBuf};

use pkgr_cache::archive::{check_link_target, check_relative_path};
use pkgr_cache::lock::{self, FileLock, LockMode};
use rattler_conda_types::package::{FileMode, PathType, PathsJson};
use rattler_conda_types::prefix_record::{Link, LinkType, PathsEntry as PrefixPathsEntry};
use rattler_conda_types::{PrefixRecord, RepoDataRecord};
use sha2::{Digest, Sha256};

pub use placeholder::{replace_binary, replace_text, PlaceholderError};

/// The prefix lock file, inside `conda-meta/` (conda ignores non-`.json` files there).
pub const PREFIX_LOCK: &str = ".pkgr-prefix.lock";

/// Everything that can go wrong in a prefix.
#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    /// A path in a package would land outside the prefix.
    #[error("package {package} contains the path `{path}`, which would land outside the prefix ({why}); nothing of it was linked")]
    UnsafePath {
        /// The package.
        package: String,
        /// The path (or link target).
        path: String,
        /// Why it is unsafe.
        why: &'static str,
    },
    /// The package's paths.json (or legacy `info/files`) is missing or broken.
    #[error("package {package} has no readable info/paths.json or info/files")]
    BadMetadata {
        /// The package.
        package: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file the package's metadata lists is not in the archive.
    #[error("package {package} is incomplete: its metadata lists `{path}`, which is not in the archive; nothing of it was linked")]
    Incomplete {
        /// The package.
        package: String,
        /// The missing path.
        path: String,
    },
    /// A binary placeholder could not be replaced.
    #[error("cannot install {path} of {package} into this prefix")]
    Placeholder {
        /// The package.
        package: String,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: PlaceholderError,
    },
    /// File system trouble.
    #[error("{context}")]
    Io {
        /// What was being done, with which path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The prefix lock could not be taken.
    #[error(transparent)]
    Lock(#[from] pkgr_cache::LockError),
    /// The target exists and is not an environment.
    #[error("{} exists and is not a conda environment (no conda-meta/); refusing to replace it", path.display())]
    NotAnEnvironment {
        /// The directory.
        path: PathBuf,
    },
    /// A conda-meta record is unreadable.
    #[error("could not read the installed-package record {}", path.display())]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PrefixError {
    let context = context.into();
    move |source| PrefixError::Io { context, source }
}

/// Takes the exclusive lock of `prefix` (creating `prefix/conda-meta/` as
/// needed), telling `on_wait` after ~1 s whom it is waiting for.
pub async fn lock_prefix(
    prefix: &Path,
    on_wait: impl Fn(Option<u32>),
) -> Result<FileLock, PrefixError> {
    loop {
        let meta = prefix.join("conda-meta");
        fs_err::create_dir_all(&meta).map_err(io("creating the environment"))?;
        let held = lock::acquire(&meta.join(PREFIX_LOCK), LockMode::Exclusive, &on_wait).await?;
        // A concurrent `create --force` that failed may have removed the prefix
        // (and its lock file) while we waited: then lock the new file instead.
        if held.is_still_at_path() {
            return Ok(held);
        }
    }
}

/// Whether `prefix` holds installed packages or other files.
pub fn is_non_empty_environment(prefix: &Path) -> bool {
    let Ok(entries) = fs_err::read_dir(prefix) else {
        return false;
    };
    entries.flatten().any(|e| {
        if e.file_name() == "conda-meta" {
            fs_err::read_dir(e.path())
                .map(|mut d| d.any(|f| f.is_ok_and(|f| f.file_name() != PREFIX_LOCK)))
                .unwrap_or(false)
        } else {
            true
        }
    })
}

/// Removes everything in `prefix` except the prefix lock, which the caller
/// holds. Refuses a non-empty directory that is not an environment.
pub fn clear_prefix(prefix: &Path) -> Result<(), PrefixError> {
    let meta = prefix.join("conda-meta");
    let entries = match fs_err::read_dir(prefix) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("reading the environment")(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("reading the environment"))?;
        let path = entry.path();
        if path == meta {
            for record in fs_err::read_dir(&meta).map_err(io("reading conda-meta"))? {
                let record = record.map_err(io("reading conda-meta"))?;
                if record.file_name() != PREFIX_LOCK {
                    remove_any(&record.path())?;
                }
            }
        } else {
            remove_any(&path)?;
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<(), PrefixError> {
    let meta = fs_err::symlink_metadata(path).map_err(io("removing a file"))?;
    if meta.is_dir() {
        fs_err::remove_dir_all(path).map_err(io("removing a directory"))
    } else {
        fs_err::remove_file(path).map_err(io("removing a file"))
    }
}

/// Checks `prefix` before it is replaced: it must be missing, empty, or an
/// environment (have `conda-meta/`).
pub fn check_replaceable(prefix: &Path) -> Result<(), PrefixError> {
    if !prefix.exists() || !is_non_empty_environment(prefix) || prefix.join("conda-meta").is_dir() {
        Ok(())
    } else {
        Err(PrefixError::NotAnEnvironment {
            path: prefix.to_path_buf(),
        })
    }
}

/// How a file was put into the prefix.
fn link_or_copy(src: &Path, dest: &Path, allow_hardlink: bool) -> Result<LinkType, PrefixError> {
    if allow_hardlink && fs_err::hard_link(src, dest).is_ok() {
        return Ok(LinkType::HardLink);
    }
    fs_err::copy(src, dest).map_err(io("copying a file into the environment"))?;
    Ok(LinkType::Copy)
}

/// Links one extracted package (`package_dir`, from the cache) into `prefix`
/// and returns its conda-meta record (not yet written: see
/// [`write_prefix_record`]).
///
/// Files are hardlinked from the cache when possible; copied when hardlinking
/// fails, the file carries a prefix placeholder, or is `no_link`. Every path is
/// checked before anything is written, so a package with a path escaping the
/// prefix links nothing.
pub fn link_package(
    prefix: &Path,
    package_dir: &Path,
    record: &RepoDataRecord,
    requested_spec: Option<String>,
) -> Result<PrefixRecord, PrefixError> {
    let package = record.identifier.to_string();
    let paths = PathsJson::from_package_directory_with_deprecated_fallback(package_dir).map_err(
        |source| match first_missing_legacy_file(package_dir) {
            Some(path) => PrefixError::Incomplete {
                package: package.clone(),
                path,
            },
            None => PrefixError::BadMetadata {
                package: package.clone(),
                source,
            },
        },
    )?;
    let unsafe_path = |path: &Path, why| PrefixError::UnsafePath {
        package: package.clone(),
        path: path.display().to_string(),
        why,
    };
    // Check everything first: a bad package links nothing.
    for entry in &paths.paths {
        check_relative_path(&entry.relative_path)
            .map_err(|why| unsafe_path(&entry.relative_path, why))?;
        let src = package_dir.join(&entry.relative_path);
        if entry.path_type != PathType::Directory && std::fs::symlink_metadata(&src).is_err() {
            return Err(PrefixError::Incomplete {
                package: package.clone(),
                path: entry.relative_path.display().to_string(),
            });
        }
        if is_symlink(&src) {
            let target = fs_err::read_link(&src).map_err(io("reading a symlink of the package"))?;
            check_link_target(&entry.relative_path, &target)
                .map_err(|why| unsafe_path(&target, why))?;
        }
    }
    let prefix_text = prefix.to_string_lossy().replace('\\', "/");
    let mut entries = Vec::with_capacity(paths.paths.len());
    let mut used_copy = false;
    for entry in &paths.paths {
        let src = package_dir.join(&entry.relative_path);
        let dest = prefix.join(&entry.relative_path);
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent)
                .map_err(io("creating a directory in the environment"))?;
        }
        let mut sha256_in_prefix = entry.sha256;
        match entry.path_type {
            PathType::Directory => {
                fs_err::create_dir_all(&dest)
                    .map_err(io("creating a directory in the environment"))?;
            }
            PathType::SoftLink | PathType::HardLink if is_symlink(&src) => {
                let target =
                    fs_err::read_link(&src).map_err(io("reading a symlink of the package"))?;
                remove_existing(&dest)?;
                make_symlink(&target, &dest)?;
            }
            // A `softlink` that the archive holds as a plain file is linked as
            // a file, like any other.
            PathType::SoftLink | PathType::HardLink => {
                remove_existing(&dest)?;
                if let Some(placeholder) = &entry.prefix_placeholder {
                    let bytes = fs_err::read(&src).map_err(io("reading a package file"))?;
                    let replaced = match placeholder.file_mode {
                        FileMode::Text => replace_text(
                            &bytes,
                            placeholder.placeholder.as_bytes(),
                            prefix_text.as_bytes(),
                        ),
                        FileMode::Binary => replace_binary(
                            &bytes,
                            placeholder.placeholder.as_bytes(),
                            prefix_text.as_bytes(),
                        )
                        .map_err(|source| PrefixError::Placeholder {
                            package: package.clone(),
                            path: entry.relative_path.display().to_string(),
                            source,
                        })?,
                    };
                    write_with_permissions_of(&src, &dest, &replaced)?;
                    sha256_in_prefix = Some(Sha256::digest(&replaced));
                } else if link_or_copy(&src, &dest, !entry.no_link)? == LinkType::Copy {
                    used_copy = true;
                }
            }
        }
        entries.push(PrefixPathsEntry {
            relative_path: entry.relative_path.clone(),
            original_path: None,
            path_type: entry.path_type.into(),
            no_link: entry.no_link,
            sha256: entry.sha256,
            sha256_in_prefix,
            size_in_bytes: entry.size_in_bytes,
            file_mode: entry.prefix_placeholder.as_ref().map(|p| p.file_mode),
            prefix_placeholder: entry
                .prefix_placeholder
                .as_ref()
                .map(|p| p.placeholder.clone()),
        });
    }
    let mut prefix_record = PrefixRecord::from_repodata_record(record.clone(), entries);
    prefix_record.extracted_package_dir = Some(package_dir.to_path_buf());
    prefix_record.link = Some(Link {
        source: package_dir.to_path_buf(),
        // Files with placeholders are always written anew; the link type says
        // how the others got there.
        link_type: Some(if used_copy {
            LinkType::Copy
        } else {
            LinkType::HardLink
        }),
    });
    #[allow(deprecated)]
    {
        prefix_record.requested_spec.clone_from(&requested_spec);
    }
    prefix_record.requested_specs = requested_spec.into_iter().collect();
    Ok(prefix_record)
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

fn is_symlink(path: &Path) -> bool {
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
    let mut file = fs_err::File::create(dest).map_err(io("writing a file into the environment"))?;
    file.write_all(bytes)
        .map_err(io(format!("writing {}", dest.display())))?;
    fs_err::set_permissions(dest, permissions).map_err(io("setting file permissions"))
}

/// The file name of a package's conda-meta record.
pub fn record_file_name(record: &RepoDataRecord) -> String {
    let p = &record.package_record;
    format!("{}-{}-{}.json", p.name.as_normalized(), p.version, p.build)
}

/// Writes `conda-meta/<name>-<version>-<build>.json` (through a temp file and a
/// rename, so a reader never sees half a record).
pub fn write_prefix_record(prefix: &Path, record: &PrefixRecord) -> Result<(), PrefixError> {
    let meta = prefix.join("conda-meta");
    fs_err::create_dir_all(&meta).map_err(io("creating conda-meta"))?;
    let path = meta.join(record_file_name(&record.repodata_record));
    let text = serde_json::to_vec_pretty(record).map_err(|e| PrefixError::Io {
        context: format!("serializing {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    let mut file = tempfile::NamedTempFile::new_in(&meta).map_err(io("writing conda-meta"))?;
    file.write_all(&text)
        .map_err(io(format!("writing {}", path.display())))?;
    file.persist(&path)
        .map_err(|e| io(format!("writing {}", path.display()))(e.error))?;
    Ok(())
}

/// Reads every installed-package record of `prefix`, sorted by name.
pub fn read_prefix_records(prefix: &Path) -> Result<Vec<PrefixRecord>, PrefixError> {
    let meta = prefix.join("conda-meta");
    let mut records = Vec::new();
    for entry in fs_err::read_dir(&meta).map_err(io("reading the environment"))? {
        let path = entry.map_err(io("reading conda-meta"))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let record =
                PrefixRecord::from_path(&path).map_err(|source| PrefixError::BadRecord {
                    path: path.clone(),
                    source,
                })?;
            records.push(record);
        }
    }
    records.sort_by(|a, b| {
        a.repodata_record
            .package_record
            .name
            .cmp(&b.repodata_record.package_record.name)
    });
    Ok(records)
}

/// Appends one revision to `conda-meta/history` in conda's format.
pub fn append_history(
    prefix: &Path,
    command: &str,
    linked: &[RepoDataRecord],
    unlinked: &[RepoDataRecord],
    specs: &[String],
    timestamp: &str,
) -> Result<(), PrefixError> {
    let path = prefix.join("conda-meta").join("history");
    let mut text = format!(
        "==> {timestamp} <==\n# cmd: {command}\n# pkgr version: {}\n",
        env!("CARGO_PKG_VERSION")
    );
    for record in unlinked {
        text.push_str(&format!("-{}\n", dist_string(record)));
    }
    for record in linked {
        text.push_str(&format!("+{}\n", dist_string(record)));
    }
    let quoted: Vec<String> = specs.iter().map(|s| format!("'{s}'")).collect();
    text.push_str(&format!("# update specs: [{}]\n", quoted.join(", ")));
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io("writing conda-meta/history"))?;
    file.write_all(text.as_bytes())
        .map_err(io(format!("writing {}", path.display())))
}

/// `channel/subdir::name-version-build`, as conda writes it in `history`.
fn dist_string(record: &RepoDataRecord) -> String {
    let p = &record.package_record;
    let channel = record
        .channel
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/')
        .trim_start_matches("https://conda.anaconda.org/");
    format!(
        "{channel}/{}::{}-{}-{}",
        p.subdir,
        p.name.as_normalized(),
        p.version,
        p.build
    )
}
