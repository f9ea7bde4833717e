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
//!   leave empty, never through a symlink that leads out of the prefix.
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
mod placeholder;
pub mod python;
mod scripts;
mod transaction;
mod unlink;

use std::io::Write;
use std::path::{Path, PathBuf};

use pkgr_fs::lock::{self, FileLock, LockMode};
use rattler_conda_types::{PrefixRecord, RepoDataRecord};
use serde::Serialize;

pub use link::{
    CheckedFiles, Hardlinks, KnownDirs, LinkMode, LinkedFiles, LinkedPackage, PackagePlan,
};
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

/// The file name of a package's conda-meta record.
pub fn record_file_name(record: &RepoDataRecord) -> String {
    let p = &record.package_record;
    format!("{}-{}-{}.json", p.name.as_normalized(), p.version, p.build)
}

/// Writes `conda-meta/<name>-<version>-<build>.json` (through a temp file and a
/// rename, so a reader never sees half a record).
pub fn write_prefix_record(prefix: &Path, record: &PrefixRecord) -> Result<(), PrefixError> {
    let json = prefix_record_json(prefix, &mut record.clone())?;
    write_prefix_record_json(prefix, record, &json)
}

/// The text [`write_prefix_record`] writes for `record`: conda's form of a
/// conda-meta record (keys sorted, two-space indents), holding no
/// credential.
///
/// The bulk of a record, its `files` and `paths_data` (every file of the
/// package), is serialized straight into the text; only the rest goes
/// through a `serde_json::Value` to be amended. Should the bulk hold
/// anything like a URL, the whole record takes the slower way that
/// rewrites every string.
pub(crate) fn prefix_record_json(
    prefix: &Path,
    record: &mut PrefixRecord,
) -> Result<Vec<u8>, PrefixError> {
    let serialize_error = |e: serde_json::Error| PrefixError::Io {
        context: format!(
            "serializing {}",
            prefix
                .join("conda-meta")
                .join(record_file_name(&record.repodata_record))
                .display()
        ),
        source: std::io::Error::other(e),
    };
    let url_like = |text: &str| text.contains("://");
    let bulk_has_url = record.files.iter().any(|f| url_like(&f.to_string_lossy()))
        || record.paths_data.paths.iter().any(|p| {
            url_like(&p.relative_path.to_string_lossy())
                || p.prefix_placeholder.as_deref().is_some_and(url_like)
                || p.original_path
                    .as_deref()
                    .is_some_and(|o| url_like(&o.to_string_lossy()))
        });
    if bulk_has_url {
        let value = record_value(record).map_err(serialize_error)?;
        return serde_json::to_vec_pretty(&value).map_err(serialize_error);
    }
    let files = std::mem::take(&mut record.files);
    let paths = std::mem::take(&mut record.paths_data.paths);
    let rest = record_value(record);
    record.files = files;
    record.paths_data.paths = paths;
    let serde_json::Value::Object(rest) = rest.map_err(serialize_error)? else {
        return Err(serialize_error(serde::ser::Error::custom(
            "a record is not a JSON object",
        )));
    };
    /// A top-level value of the record: amended, or serialized as it is.
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Field<'a> {
        Value(serde_json::Value),
        Files(&'a [PathBuf]),
        Paths(&'a rattler_conda_types::prefix_record::PrefixPaths),
    }
    let mut fields: std::collections::BTreeMap<String, Field<'_>> = rest
        .into_iter()
        .map(|(key, value)| (key, Field::Value(value)))
        .collect();
    fields.insert(String::from("files"), Field::Files(&record.files));
    fields.insert(String::from("paths_data"), Field::Paths(&record.paths_data));
    serde_json::to_vec_pretty(&fields).map_err(serialize_error)
}

/// `record` as a JSON value in conda's form: `depends` and `constrains`
/// always present, and every URL (in any string) without credentials.
fn record_value(record: &PrefixRecord) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(record)?;
    if let Some(object) = value.as_object_mut() {
        // conda writes `depends` and `constrains` even when empty (rattler
        // skips empty lists); tools reading conda-meta expect both keys.
        for key in ["depends", "constrains"] {
            object
                .entry(key)
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        }
        // No credential is written: URLs in conda's form (no user:password,
        // the token as `<TOKEN>`), here and in anything else holding a URL
        // (a requested spec such as `https://user:pw@host/chan::pkg`).
        object.insert(
            String::from("url"),
            serde_json::Value::String(pkgr_redact::url_for_record(&record.repodata_record.url)),
        );
        strip_credentials(&mut value);
    }
    Ok(value)
}

/// Writes `json` (from [`prefix_record_json`]) as `record`'s conda-meta
/// record, through a temp file and a rename.
pub(crate) fn write_prefix_record_json(
    prefix: &Path,
    record: &PrefixRecord,
    json: &[u8],
) -> Result<(), PrefixError> {
    let meta = prefix.join("conda-meta");
    fs_err::create_dir_all(&meta).map_err(io("creating conda-meta"))?;
    let path = meta.join(record_file_name(&record.repodata_record));
    let mut file = tempfile::NamedTempFile::new_in(&meta).map_err(io("writing conda-meta"))?;
    file.write_all(json)
        .map_err(io(format!("writing {}", path.display())))?;
    file.persist(&path)
        .map_err(|e| io(format!("writing {}", path.display()))(e.error))?;
    Ok(())
}

/// Rewrites every string in `value` that holds a URL with credentials into
/// the form records keep ([`pkgr_redact::url_for_record`]).
fn strip_credentials(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.contains("://") => {
            *text = for_record(text);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_credentials),
        serde_json::Value::Object(object) => object.values_mut().for_each(strip_credentials),
        _ => {}
    }
}

/// `text` with every URL that carries credentials in the form records keep.
fn for_record(text: &str) -> String {
    pkgr_redact::redact_urls_in_text(text, pkgr_redact::url_for_record)
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

/// Appends one revision to `conda-meta/history` in conda's format
/// (`specs_kind`: `update` for create/install/update, `remove` for remove).
/// URLs with credentials in `command` (`-c URL`, `--channel=URL`), in the
/// channels and in the specs are written without them (conda's form, the
/// token as `<TOKEN>`). A control character in any of them (a newline in an
/// argument, a spec or a build string) is written escaped (`\n`), so no
/// text can forge a line: readers (conda's, pkgr's `--from-history`) take
/// `# update specs:` lines at their word.
pub fn append_history(
    prefix: &Path,
    command: &str,
    linked: &[RepoDataRecord],
    unlinked: &[RepoDataRecord],
    specs_kind: &str,
    specs: &[String],
    timestamp: &str,
) -> Result<(), PrefixError> {
    let path = prefix.join("conda-meta").join("history");
    let mut text = format!(
        "==> {timestamp} <==\n# cmd: {}\n# pkgr version: {}\n",
        one_line(&for_record(command)),
        env!("CARGO_PKG_VERSION")
    );
    for record in unlinked {
        text.push_str(&format!("-{}\n", one_line(&dist_string(record))));
    }
    for record in linked {
        text.push_str(&format!("+{}\n", one_line(&dist_string(record))));
    }
    let quoted: Vec<String> = specs
        .iter()
        .map(|s| format!("'{}'", one_line(&for_record(s))))
        .collect();
    text.push_str(&format!("# {specs_kind} specs: [{}]\n", quoted.join(", ")));
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io("writing conda-meta/history"))?;
    file.write_all(text.as_bytes())
        .map_err(io(format!("writing {}", path.display())))
}

/// `text` with every control character escaped as Rust writes it (`\n`,
/// `\r`, `\t`, `\u{1b}`): one line of `history`, whatever it holds.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// `channel/subdir::name-version-build`, as conda writes it in `history`.
fn dist_string(record: &RepoDataRecord) -> String {
    let p = &record.package_record;
    let channel = for_record(record.channel.as_deref().unwrap_or_default());
    let channel = channel
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with files, as linking makes them.
    fn record_with_files(paths: &[&str]) -> PrefixRecord {
        use rattler_conda_types::prefix_record::{PathType, PathsEntry};
        let entries = paths
            .iter()
            .map(|p| PathsEntry {
                relative_path: PathBuf::from(p),
                original_path: None,
                path_type: PathType::HardLink,
                no_link: false,
                sha256: None,
                sha256_in_prefix: None,
                size_in_bytes: Some(3),
                file_mode: None,
                prefix_placeholder: Some(String::from("/opt/placeholder_\"quoted\"\nline")),
            })
            .collect();
        PrefixRecord::from_repodata_record(test_record("foo"), entries)
    }

    #[test]
    fn records_write_their_files_straight_and_read_back_the_same() {
        let mut record = record_with_files(&["bin/foo", "lib/a b.so", "share/\u{e9}t\u{e9}"]);
        let fast = prefix_record_json(Path::new("/p"), &mut record).unwrap();
        let slow = serde_json::to_vec_pretty(&record_value(&record).unwrap()).unwrap();
        // The same JSON, laid out as conda does (two-space indents).
        let as_value = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
        assert_eq!(as_value(&fast), as_value(&slow));
        let text = String::from_utf8(fast.clone()).unwrap();
        assert!(
            text.contains("\n  \"files\": [\n    \"bin/foo\",\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\n  \"paths_data\": {\n    \"paths_version\": 1,\n    \"paths\": [\n      {\n        \"_path\": \"bin/foo\""
            ),
            "{text}"
        );
        assert!(text.contains("\"depends\": []") && text.contains("\"constrains\": []"));
        assert_eq!(record.files.len(), 3, "the record is given back whole");
        let back: PrefixRecord = serde_json::from_slice(&fast).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_url_among_the_files_takes_the_way_that_strips_credentials() {
        let mut record = record_with_files(&["share/x"]);
        record.paths_data.paths[0].prefix_placeholder =
            Some(String::from("https://me:secret@example.com/t/tok123/x"));
        let json =
            String::from_utf8(prefix_record_json(Path::new("/p"), &mut record).unwrap()).unwrap();
        assert!(
            !json.contains("secret") && !json.contains("tok123"),
            "{json}"
        );
        assert!(json.contains("https://example.com/t/<TOKEN>/x"), "{json}");
    }

    #[test]
    fn records_and_history_keep_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = test_record("foo");
        record.url = "https://me:secret@example.com/t/tok123/chan/linux-64/foo-1.0-0.conda"
            .parse()
            .unwrap();
        record.channel = Some(String::from(
            "https://me:********@example.com/t/********/chan/",
        ));
        let mut prefix_record = PrefixRecord::from_repodata_record(record.clone(), Vec::new());
        prefix_record.requested_specs = vec![String::from(
            "https://me:secret@example.com/t/tok123/chan::foo",
        )];
        write_prefix_record(dir.path(), &prefix_record).unwrap();
        let written = fs_err::read_to_string(dir.path().join("conda-meta/foo-1.0-0.json")).unwrap();
        assert!(
            !written.contains("secret") && !written.contains("tok123") && !written.contains("me:"),
            "{written}"
        );
        let value: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            value["url"],
            "https://example.com/t/<TOKEN>/chan/linux-64/foo-1.0-0.conda"
        );
        assert_eq!(value["channel"], "https://example.com/t/<TOKEN>/chan/");
        assert_eq!(
            value["requested_specs"][0],
            "https://example.com/t/<TOKEN>/chan::foo"
        );
        // It reads back, with the placeholder where the token was.
        let back = read_prefix_records(dir.path()).unwrap();
        assert_eq!(back.len(), 1);
        assert!(pkgr_redact::url_has_token_placeholder(
            &back[0].repodata_record.url
        ));

        append_history(
            dir.path(),
            "pkgr create -p /e -c https://me:secret@example.com/t/tok123/chan --channel=https://me:secret@example.com/x foo",
            &[record],
            &[],
            "update",
            &[String::from("https://me:secret@example.com/t/tok123/chan::foo")],
            "2024-01-01 00:00:00",
        )
        .unwrap();
        let history = fs_err::read_to_string(dir.path().join("conda-meta/history")).unwrap();
        assert_eq!(
            history,
            format!(
                "==> 2024-01-01 00:00:00 <==\n\
                 # cmd: pkgr create -p /e -c https://example.com/t/<TOKEN>/chan --channel=https://example.com/x foo\n\
                 # pkgr version: {}\n\
                 +https://example.com/t/<TOKEN>/chan/linux-64::foo-1.0-0\n\
                 # update specs: ['https://example.com/t/<TOKEN>/chan::foo']\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
