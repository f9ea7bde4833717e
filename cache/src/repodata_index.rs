//! An index of a repodata.json by package name, so that a solve reads only the
//! records of the names it reaches instead of the whole file.
//!
//! conda-forge's linux-64 repodata.json is ~300 MB with ~400,000 records; a
//! solve of a typical environment touches a few hundred of them. The index
//! maps each package name to the byte ranges ("spans") of the file that hold
//! its records: each span is a run of `"<file name>": {record}` members of the
//! `packages` or `packages.conda` object, all of that name (conda-index writes
//! the keys sorted, so a name's records are one or two spans). A span wrapped
//! in `{` `}` is a JSON object of those records.
//!
//! The index is built once, when the repodata is downloaded (the same pass
//! checks that the file is whole, valid JSON), written beside the cached file
//! under its lock, and read by every later process: a warm solve reads an
//! index of ~1 MB and the spans it needs, not 300 MB.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

/// First line of an index file; a file with another first line is rebuilt.
const MAGIC: &str = "pkgr-repodata-index 1";

/// Package name → the spans of the repodata file that hold its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepodataIndex {
    /// `info.base_url` of the repodata, if any.
    pub base_url: Option<String>,
    /// The spans of each package name, in file order.
    pub names: HashMap<Box<str>, Vec<Range<u64>>>,
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

#[derive(serde::Serialize, Deserialize)]
struct Header {
    json_size: u64,
    /// For a local channel's file, read in place: its modification time
    /// (nanoseconds since the epoch), which with its size names its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified_ns: Option<u128>,
    base_url: Option<String>,
}

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
fn is_package_name(name: &str) -> bool {
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

/// Where the member whose value starts at `value_start` starts: the opening
/// quote of its key, found by walking back over `"key"` and `:`.
fn key_start(text: &[u8], value_start: usize) -> Option<usize> {
    let mut i = value_start;
    let skip_ws = |i: &mut usize| {
        while *i > 0 && text[*i - 1].is_ascii_whitespace() {
            *i -= 1;
        }
    };
    skip_ws(&mut i);
    if i == 0 || text[i - 1] != b':' {
        return None;
    }
    i -= 1;
    skip_ws(&mut i);
    if i == 0 || text[i - 1] != b'"' {
        return None;
    }
    i -= 1; // the closing quote
    loop {
        if i == 0 {
            return None;
        }
        i -= 1;
        if text[i] == b'"' {
            // Escaped if preceded by an odd number of backslashes.
            let backslashes = text[..i].iter().rev().take_while(|&&c| c == b'\\').count();
            if backslashes.is_multiple_of(2) {
                return Some(i);
            }
        }
    }
}

impl RepodataIndex {
    /// Indexes the repodata.json in `text`, checking on the way that it is
    /// whole, valid JSON with an object at the top and package file names as
    /// keys. The error says what is wrong.
    pub fn build(text: &[u8]) -> Result<Self, String> {
        if text.is_empty() {
            return Err(String::from("it is empty"));
        }
        let raw: RawRepodata<'_> = serde_json::from_slice(text).map_err(|e| {
            format!("it is not valid repodata JSON ({e}); the server may have cut it short")
        })?;
        let start = text.as_ptr() as usize;
        let mut names: HashMap<Box<str>, Vec<Range<u64>>> = HashMap::new();
        for section in [raw.packages, raw.conda_packages].into_iter().flatten() {
            let mut members: Vec<(usize, usize, &str)> = Vec::with_capacity(section.len());
            for (file_name, value) in &section {
                let name = name_from_file_name(file_name)
                    .ok_or_else(|| format!("`{file_name}` is not a package file name"))?;
                if !is_package_name(name) {
                    // No spec can name it, and the index file holds one
                    // name a line, space-separated: leave it out.
                    tracing::debug!(file_name = %file_name.escape_debug(), "a repodata key whose name is not a package name");
                    continue;
                }
                let value_start = value.get().as_ptr() as usize - start;
                let key = key_start(text, value_start)
                    .ok_or_else(|| format!("cannot find the key of `{file_name}`"))?;
                members.push((key, value_start + value.get().len(), name));
            }
            members.sort_unstable_by_key(|m| m.0);
            let mut previous: Option<&str> = None;
            for (key, end, name) in members {
                let spans = names.entry(name.into()).or_default();
                match spans.last_mut() {
                    // The next member of the same name: the span grows.
                    Some(last) if previous == Some(name) => last.end = end as u64,
                    _ => spans.push(key as u64..end as u64),
                }
                previous = Some(name);
            }
        }
        Ok(Self {
            base_url: raw.info.and_then(|i| i.base_url),
            names,
        })
    }

    /// Writes the index for a repodata file of `json_size` bytes (and, for a
    /// file read in place, modified at `modified_ns`).
    pub fn write_to(
        &self,
        out: &mut impl Write,
        json_size: u64,
        modified_ns: Option<u128>,
    ) -> std::io::Result<()> {
        let header = Header {
            json_size,
            modified_ns,
            base_url: self.base_url.clone(),
        };
        writeln!(out, "{MAGIC}")?;
        writeln!(out, "{}", serde_json::to_string(&header)?)?;
        for (name, spans) in &self.names {
            write!(out, "{name}")?;
            for span in spans {
                write!(out, " {} {}", span.start, span.end)?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    /// Reads an index written by [`Self::write_to`] for a repodata file of
    /// `json_size` bytes (modified at `modified_ns`); `None` if it is missing,
    /// of another format, or was written for another file or version.
    pub fn read(path: &Path, json_size: u64, modified_ns: Option<u128>) -> Option<Self> {
        let text = fs_err::read_to_string(path).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let header: Header = serde_json::from_str(lines.next()?).ok()?;
        if header.json_size != json_size || header.modified_ns != modified_ns {
            return None;
        }
        let mut names = HashMap::new();
        for line in lines {
            let mut fields = line.split(' ');
            let name = fields.next()?;
            let numbers: Vec<u64> = fields.map(str::parse).collect::<Result<_, _>>().ok()?;
            if numbers.is_empty() || !numbers.len().is_multiple_of(2) {
                return None;
            }
            let spans = numbers
                .chunks(2)
                .map(|pair| pair[0]..pair[1])
                .filter(|span| span.start < span.end && span.end <= json_size)
                .collect::<Vec<_>>();
            if spans.len() * 2 != numbers.len() {
                return None;
            }
            names.insert(name.into(), spans);
        }
        Some(Self {
            base_url: header.base_url,
            names,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPODATA: &str = r#"{
  "info": {"subdir": "linux-64", "base_url": "../pkgs"},
  "packages": {
    "a-1.0-0.tar.bz2": {"name": "a", "version": "1.0"},
    "a-2.0-0.tar.bz2": {"name": "a", "version": "2.0"},
    "b\u002dc-1.0-0.tar.bz2": {"name": "b-c", "version": "1.0"},
    "z-1.0-0.tar.bz2": {"name": "z", "version": "1.0"}
  },
  "packages.conda": {
    "a-2.0-0.conda": {"name": "a", "version": "2.0"}
  }
}"#;

    #[test]
    fn spans_hold_exactly_the_records_of_a_name() {
        let index = RepodataIndex::build(REPODATA.as_bytes()).unwrap();
        assert_eq!(index.base_url.as_deref(), Some("../pkgs"));
        let spans = &index.names["a"];
        assert_eq!(spans.len(), 2, "one run per section");
        let text = |span: &Range<u64>| {
            format!("{{{}}}", &REPODATA[span.start as usize..span.end as usize])
        };
        let first: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text(&spans[0])).unwrap();
        assert_eq!(
            first.keys().collect::<Vec<_>>(),
            ["a-1.0-0.tar.bz2", "a-2.0-0.tar.bz2"]
        );
        // An escaped key is found too.
        let bc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text(&index.names["b-c"][0])).unwrap();
        assert_eq!(bc.keys().collect::<Vec<_>>(), ["b-c-1.0-0.tar.bz2"]);

        let mut written = Vec::new();
        index.write_to(&mut written, 1234, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        std::fs::write(&path, &written).unwrap();
        assert_eq!(RepodataIndex::read(&path, 1234, None), Some(index));
        assert_eq!(RepodataIndex::read(&path, 1235, None), None, "another file");
        assert_eq!(
            RepodataIndex::read(&path, 1234, Some(7)),
            None,
            "another version"
        );
    }

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
    fn names_that_are_not_package_names_are_left_out_of_the_index() {
        let text = r#"{"packages": {
            "a-1-0.tar.bz2": {"name": "a"},
            "../../x-1-0.tar.bz2": {"name": "../../x"},
            "y z\n5 0 1-1-0.tar.bz2": {"name": "y"}
        }}"#;
        let index = RepodataIndex::build(text.as_bytes()).unwrap();
        let names: Vec<&str> = index.names.keys().map(AsRef::as_ref).collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn broken_repodata_is_refused() {
        for (text, problem) in [
            ("", "empty"),
            ("<html>oops</html>", "not valid"),
            (&REPODATA[..REPODATA.len() / 2], "not valid"),
            (
                r#"{"packages": {"notapackage": {}}}"#,
                "not a package file name",
            ),
        ] {
            let err = RepodataIndex::build(text.as_bytes()).unwrap_err();
            assert!(err.contains(problem), "{err}");
        }
    }
}
