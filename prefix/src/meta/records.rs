//! Installed-package records: `conda-meta/<name>-<version>-<build>.json`,
//! one per package, in conda's form and without credentials.

use std::io::Write;
use std::path::{Path, PathBuf};

use rattler_conda_types::{PrefixRecord, RepoDataRecord};
use serde::Serialize;

use super::for_record;
use crate::{io, PrefixError};

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
pub(super) fn record_value(record: &PrefixRecord) -> Result<serde_json::Value, serde_json::Error> {
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
