//! Environments (prefixes): linking packages from the cache into a prefix,
//! prefix placeholder replacement, the `conda-meta/` records conda and pixi
//! read, and the prefix lock.
//!
//! - [`PackagePlan`] (link.rs): one package's files, checked (no absolute
//!   path, no `..`, no symlink out of the prefix) before anything is written,
//!   then linked (hardlink, reflink or copy; placeholders replaced; noarch
//!   python relocated with entry points and `.pyc` files, see [`python`]).
//!   A transaction also resolves every path and symlink target of its
//!   packages through the symlinks of all of them and of the environment
//!   (`LinkGuard`, with [`pkgr_fs::Resolver`]): a chain of links, each
//!   harmless alone, may lead to `/`;
//! - [`Transaction`] (transaction.rs): unlink/link sets applied in dependency
//!   order under per-package journals, with link scripts ([`run_link_script`])
//!   and [`recover`] for what a killed transaction left;
//! - [`remove_paths`] (unlink.rs): a package's files and the directories they
//!   leave empty, never through a symlink that leads out of the prefix;
//! - [`meta`]: `conda-meta/` in one place: records, history, state, pins.
//!
//! A transaction on a prefix holds the prefix's exclusive lock
//! ([`lock_prefix`]) for its whole length; it is the first lock in pkgr's lock
//! order (see the `pkgr_cache` crate docs). Front-ends take it through
//! `pkgr_install`, whose `LockedPrefix` guard is what its installer needs to
//! link.
//!
//! It depends on the conda data model and on the two leaf helpers
//! `pkgr-fs` (the file lock, path checks, file hashing) and `pkgr-redact`
//! (URLs written without credentials). **It must not depend on** the
//! downloader (`pkgr-fetch`, and so an HTTP client), the cache or the
//! solver: it links from directories it is given.

mod link;
pub mod meta;
mod placeholder;
pub mod python;
mod scripts;
mod transaction;
mod unlink;

use std::path::{Path, PathBuf};

use pkgr_fs::lock::{self, FileLock, LockMode};
#[cfg(test)]
use rattler_conda_types::RepoDataRecord;

pub use link::{
    CheckedFiles, Hardlinks, KnownDirs, LinkMode, LinkedFiles, LinkedPackage, PackagePlan,
};
pub use meta::{append_history, read_prefix_records, record_file_name, write_prefix_record};
pub use placeholder::{replace_binary, replace_text, shorten_long_shebang, PlaceholderError};
pub use python::{CompiledBatch, CompiledModules, PythonInfo};
pub use scripts::{run_link_script, script_path, LinkScripts, ScriptKind};
pub use transaction::{recover, LinkRequest, StagedLinks, Transaction, TransactionEvent};
pub use unlink::{record_paths, remove_paths};

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
    /// A package's symlinks make a symlink (or a directory) of another
    /// package, linked or being linked, lead outside the prefix: a chain
    /// split across packages.
    #[error("package {package} ships symlinks through which `{path}` of {other} would lead outside the prefix ({why}); nothing of {package} was linked")]
    EscapingChain {
        /// The package whose symlinks complete the chain.
        package: String,
        /// The package whose symlink (or directory) now leads outside.
        other: String,
        /// That symlink or directory, relative to the prefix.
        path: String,
        /// Why it is unsafe.
        why: &'static str,
    },
    /// Removing a path of the environment would delete through a symlink
    /// that leads outside it (an environment made by an older pkgr or by
    /// another tool may hold such a chain).
    #[error("refusing to remove `{path}` from the environment {}: {why}; nothing outside the environment was touched (remove the symlink on its way by hand, then retry)", prefix.display())]
    UnsafeRemoval {
        /// The environment.
        prefix: PathBuf,
        /// The path, relative to the environment.
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
    /// A `noarch: python` package's `info/link.json` lists an entry point
    /// that is not `name = module:function` (told apart from a missing
    /// paths.json, so the user knows which file and entry are broken).
    #[error("package {package} has a malformed entry point in info/link.json: \"{}\" is not `name = module:function` ({why}); nothing of it was linked (tell the package's maintainers)", entry.escape_debug())]
    BadEntryPoint {
        /// The package.
        package: String,
        /// The entry as the file gives it.
        entry: String,
        /// What is wrong with it.
        why: String,
    },
    /// The extracted cache entry lacks a file its `info/paths.json` (or
    /// `info/files`) lists: the entry was complete when the cache checked it,
    /// so something changed it since.
    #[error("the cache entry of {package} at {} is incomplete: it lacks `{path}`, which its metadata lists (the cache was changed after pkgr checked it); nothing of it was linked: run `pkgr cache verify --repair` and retry", dir.display())]
    Incomplete {
        /// The package.
        package: String,
        /// The extracted cache entry.
        dir: PathBuf,
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
    /// A noarch python package, and no python in the environment.
    #[error("{package} is a noarch: python package, and the environment has no python (add `python` to the request)")]
    NoPython {
        /// The package.
        package: String,
    },
    /// A link script failed.
    #[error("the {kind} script of {package} failed: {detail}")]
    LinkScript {
        /// The package.
        package: String,
        /// Which script.
        kind: ScriptKind,
        /// The script, its exit status and its output.
        detail: String,
    },
    /// The prefix lock could not be taken.
    #[error(transparent)]
    Lock(#[from] pkgr_fs::LockError),
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

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PrefixError {
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
        let what = format!("the environment {}", prefix.display());
        let held = lock::acquire(
            &meta.join(PREFIX_LOCK),
            LockMode::Exclusive,
            &what,
            lock::default_timeout(),
            &on_wait,
        )
        .await?;
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

/// A repodata record `name-1.0-0` from a made-up channel, for unit tests.
#[cfg(test)]
pub(crate) fn test_record(name: &str) -> RepoDataRecord {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "subdir": "linux-64",
        "fn": format!("{name}-1.0-0.conda"),
        "url": format!("https://example.com/linux-64/{name}-1.0-0.conda"),
        "channel": "https://example.com",
    }))
    .unwrap()
}
