//! `conda-meta/history`: one revision per change of the environment, in
//! conda's format; written by [`append_history`], and read back for the
//! specs the user asked for by [`read_requested_specs`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use rattler_conda_types::RepoDataRecord;

use super::{for_record, spec_package_name, MetaError};
use crate::{io, PrefixError};

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

/// The specs the user asked for, from `conda-meta/history` as conda reads
/// it: each `# update specs:` line sets the spec of the names it mentions,
/// each `# remove specs:` line drops them. No history: none.
pub fn read_requested_specs(prefix: &Path) -> Result<Vec<String>, MetaError> {
    let path = prefix.join("conda-meta").join("history");
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(MetaError::Read(e)),
    };
    let mut specs: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let (remove, list) = if let Some(list) = line.strip_prefix("# update specs: ") {
            (false, list)
        } else if let Some(list) = line.strip_prefix("# remove specs: ") {
            (true, list)
        } else {
            continue;
        };
        for spec in parse_spec_list(list) {
            let Some(name) = spec_package_name(&spec) else {
                continue;
            };
            if remove {
                specs.remove(&name);
            } else {
                specs.insert(name, spec);
            }
        }
    }
    Ok(specs.into_values().collect())
}

/// `['a', 'b >=1']` → `a`, `b >=1` (conda writes a Python list of strings).
pub(super) fn parse_spec_list(list: &str) -> Vec<String> {
    let inner = list.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(['\'', '"'])
        .enumerate()
        // Inside quotes are the odd pieces.
        .filter(|(i, piece)| i % 2 == 1 && !piece.trim().is_empty())
        .map(|(_, piece)| piece.trim().to_owned())
        .collect()
}
