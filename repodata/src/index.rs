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

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use pkgr_cache::repodata_rules::{is_package_name, package_name_of_key, parse_repodata};
use serde::Deserialize;

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

#[derive(serde::Serialize, Deserialize)]
struct Header {
    json_size: u64,
    /// For a local channel's file, read in place: its modification time
    /// (nanoseconds since the epoch), which with its size names its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified_ns: Option<u128>,
    base_url: Option<String>,
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
        let parsed = parse_repodata(text)?;
        let start = text.as_ptr() as usize;
        let mut names: HashMap<Box<str>, Vec<Range<u64>>> = HashMap::new();
        for section in parsed.sections.into_iter().flatten() {
            let mut members: Vec<(usize, usize, &str)> = Vec::with_capacity(section.len());
            for (file_name, value) in &section {
                let name = package_name_of_key(file_name)?;
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
            base_url: parsed.base_url,
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
mod tests;
