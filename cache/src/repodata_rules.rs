//! What the cache itself requires of repodata and its records.
//!
//! - A record must name one file of its own ([`check_record`]): the cache
//!   names entries, lock files and archives after it, and refuses one that
//!   could put them anywhere else (so do the solver and the installer).
//! - A cached repodata.json must be whole ([`check_repodata_file`], for
//!   `pkgr cache verify`): the same rules `pkgr-repodata` checks before it
//!   stores and indexes one ([`parse_repodata`], [`package_name_of_key`]).
//!
//! Fetching, caching, indexing and sharding repodata is `pkgr-repodata`'s
//! job; it reaches the cache's repodata directory, locks and temp directory
//! through the API in `repodata_access.rs`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Why `part` (a record's name, version or build string) cannot be a piece
/// of a file name, if it cannot: pkgr names cache entries, lock files and
/// `conda-meta/` files `<name>-<version>-<build>…`, so a `/`, `\` or `..`
/// there would put them anywhere the user can write. Plain means: not
/// empty, not `.` or `..`, no `/`, `\`, NUL or other control character.
pub fn plain_part_problem(part: &str) -> Option<&'static str> {
    if part.is_empty() {
        Some("is empty")
    } else if part == "." || part == ".." {
        Some("is a relative directory name")
    } else if part.contains(['/', '\\']) {
        Some("holds a path separator")
    } else if part.chars().any(char::is_control) {
        Some("holds a control character")
    } else {
        None
    }
}

/// Checks that a record can name files: its `name`, `version` and `build`
/// are plain ([`plain_part_problem`]), `name` is a conda package name
/// (letters, digits, `-`, `_`, `.`), and its archive's `file_name` is
/// exactly `<name>-<version>-<build>.conda` or `.tar.bz2`, one path
/// component that says what the record says. The error says what is wrong;
/// the caller names the channel and the record.
///
/// Records come from channels and lock files, which may be hostile: this
/// is checked where they enter pkgr and once more before anything is
/// fetched or linked.
pub fn check_identity(
    file_name: &str,
    name: &str,
    version: &str,
    build: &str,
) -> Result<(), String> {
    for (what, part) in [
        ("name", name),
        ("version", version),
        ("build string", build),
    ] {
        if let Some(problem) = plain_part_problem(part) {
            return Err(format!("its {what} `{}` {problem}", part.escape_debug()));
        }
    }
    if !is_package_name(name) {
        return Err(format!(
            "its name `{}` is not a package name (letters, digits, -, _ and . only)",
            name.escape_debug()
        ));
    }
    let matches = file_name
        .strip_suffix(".conda")
        .or_else(|| file_name.strip_suffix(".tar.bz2"))
        .and_then(|stem| stem.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_prefix(version))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest == build);
    if matches {
        Ok(())
    } else {
        Err(format!(
            "its file name is not {name}-{version}-{build}.conda or .tar.bz2, as its name, version and build say",
            name = name.escape_debug(),
            version = version.escape_debug(),
            build = build.escape_debug(),
        ))
    }
}

/// [`check_identity`] of a record: its archive's file name (as the
/// repodata or lock file names it) against its name (as written, or
/// normalized), version and build.
pub fn check_record(record: &rattler_conda_types::RepoDataRecord) -> Result<(), String> {
    let p = &record.package_record;
    let file_name = record.identifier.to_string();
    let version = p.version.to_string();
    let source = check_identity(&file_name, p.name.as_source(), &version, p.build.as_str());
    if source.is_ok() || p.name.as_source() == p.name.as_normalized() {
        return source;
    }
    check_identity(
        &file_name,
        p.name.as_normalized(),
        &version,
        p.build.as_str(),
    )
}

/// Whether `name` is made of what conda allows in a package name: ASCII
/// letters, digits, `-`, `_` and `.`.
pub fn is_package_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `name` of `name-version-build.ext`.
pub fn name_from_file_name(file_name: &str) -> Option<&str> {
    let stem = file_name
        .strip_suffix(".conda")
        .or_else(|| file_name.strip_suffix(".tar.bz2"))?;
    let mut parts = stem.rsplitn(3, '-');
    let _build = parts.next()?;
    let _version = parts.next()?;
    parts.next().filter(|n| !n.is_empty())
}

#[derive(Deserialize)]
struct RawInfo {
    #[serde(default)]
    base_url: Option<String>,
}

#[derive(Deserialize)]
struct RawRepodata<'a> {
    #[serde(default)]
    info: Option<RawInfo>,
    #[serde(default, borrow)]
    packages: Option<HashMap<Cow<'a, str>, &'a RawValue>>,
    #[serde(default, borrow, rename = "packages.conda")]
    conda_packages: Option<HashMap<Cow<'a, str>, &'a RawValue>>,
}

/// The members of a repodata.json, borrowed from its text.
#[derive(Debug)]
pub struct RepodataMembers<'a> {
    /// `info.base_url`, if any.
    pub base_url: Option<String>,
    /// The members of `packages` then of `packages.conda` (either may be
    /// absent): file name → the record's JSON text.
    pub sections: [Option<HashMap<Cow<'a, str>, &'a RawValue>>; 2],
}

/// Parses the repodata.json in `text` as far as finding its members:
/// whole, valid JSON with an object at the top. The error says what is
/// wrong (the keys are checked by [`package_name_of_key`]).
pub fn parse_repodata(text: &[u8]) -> Result<RepodataMembers<'_>, String> {
    if text.is_empty() {
        return Err(String::from("it is empty"));
    }
    let raw: RawRepodata<'_> = serde_json::from_slice(text).map_err(|e| {
        format!("it is not valid repodata JSON ({e}); the server may have cut it short")
    })?;
    Ok(RepodataMembers {
        base_url: raw.info.and_then(|i| i.base_url),
        sections: [raw.packages, raw.conda_packages],
    })
}

/// The package name of a repodata key (`name-version-build.conda` or
/// `.tar.bz2`); the error says the key is not a package file name.
pub fn package_name_of_key(file_name: &str) -> Result<&str, String> {
    name_from_file_name(file_name)
        .ok_or_else(|| format!("`{file_name}` is not a package file name"))
}

/// Checks that `path` holds a whole repodata.json: valid JSON from the first
/// byte to the last, with an object at the top and package file names as
/// keys. (A body cut short, an HTML error page or an empty file fail here.)
pub fn check_repodata_file(path: &Path) -> Result<(), String> {
    let bytes = fs_err::read(path).map_err(|e| e.to_string())?;
    let members = parse_repodata(&bytes)?;
    for section in members.sections.iter().flatten() {
        for file_name in section.keys() {
            package_name_of_key(file_name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_must_name_one_file_that_is_its_own() {
        let ok = |f, n, v, b| check_identity(f, n, v, b);
        ok("zlib-1.3.1-h4ab18f5_1.conda", "zlib", "1.3.1", "h4ab18f5_1").unwrap();
        ok(
            "zlib-1.3.1-h4ab18f5_1.tar.bz2",
            "zlib",
            "1.3.1",
            "h4ab18f5_1",
        )
        .unwrap();
        ok("a-1!2.0+x-py_0.conda", "a", "1!2.0+x", "py_0").unwrap();
        for (file_name, name, version, build, problem) in [
            (
                "a-1-x/../y.conda",
                "a",
                "1",
                "x/../y",
                "build string `x/../y` holds a path separator",
            ),
            ("a-1-x\\y.conda", "a", "1", "x\\y", "holds a path separator"),
            (
                "a-1-...conda",
                "a",
                "1",
                "..",
                "is a relative directory name",
            ),
            ("a-1-..conda", "a", "1", ".", "is a relative directory name"),
            ("a-1-.conda", "a", "1", "", "build string `` is empty"),
            (
                "a-1/..-0.conda",
                "a",
                "1/..",
                "0",
                "version `1/..` holds a path separator",
            ),
            (
                "a-1-x\ny.conda",
                "a",
                "1",
                "x\ny",
                "`x\\ny` holds a control character",
            ),
            (
                "a-1-x\0.conda",
                "a",
                "1",
                "x\0",
                "holds a control character",
            ),
            (
                "../a-1-0.conda",
                "../a",
                "1",
                "0",
                "name `../a` holds a path separator",
            ),
            ("a b-1-0.conda", "a b", "1", "0", "is not a package name"),
            (
                "..-1-0.conda",
                "..",
                "1",
                "0",
                "is a relative directory name",
            ),
            (
                "a-1-0/../../x.conda",
                "a",
                "1",
                "0",
                "file name is not a-1-0.conda",
            ),
            ("b-1-0.conda", "a", "1", "0", "file name is not"),
            ("a-1-0.whl", "a", "1", "0", "file name is not"),
            ("a-1-0.conda/x", "a", "1", "0", "file name is not"),
        ] {
            let err = ok(file_name, name, version, build).unwrap_err();
            assert!(err.contains(problem), "{file_name}: {err}");
        }
    }

    #[test]
    fn a_whole_repodata_file_passes_and_a_broken_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repodata.json");
        for (text, problem) in [
            ("", Some("empty")),
            ("<html>oops</html>", Some("not valid")),
            (
                r#"{"packages": {"notapackage": {}}}"#,
                Some("not a package file name"),
            ),
            (
                r#"{"packages": {"a-1-0.tar.bz2": {}}, "packages.conda": {}}"#,
                None,
            ),
        ] {
            fs_err::write(&path, text).unwrap();
            match (check_repodata_file(&path), problem) {
                (Ok(()), None) => {}
                (Err(err), Some(problem)) => assert!(err.contains(problem), "{err}"),
                (result, _) => panic!("{text}: {result:?}"),
            }
        }
    }

    #[test]
    fn names_from_file_names() {
        assert_eq!(
            name_from_file_name("zlib-1.2.11-h7b6447c_3.conda"),
            Some("zlib")
        );
        assert_eq!(
            name_from_file_name("ca-certificates-2024.7.4-hbcca054_0.tar.bz2"),
            Some("ca-certificates")
        );
        assert_eq!(name_from_file_name("broken.conda"), None);
    }
}
