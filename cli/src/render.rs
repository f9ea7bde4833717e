//! How plans and records are shown: the plan tables, conda's `--json`
//! shapes of a plan and a record, the names of a record's channel, and the
//! exported package lists (`@EXPLICIT`, `--export`).

use std::path::Path;

use anyhow::bail;
use indicatif::HumanBytes;
use pkgr_install::Plan;
use rattler_conda_types::{PrefixRecord, RepoDataRecord};
use url::Url;

use crate::output::{table, with_credentials_as_recorded};

/// The plan as tables for the user.
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.unlink.is_empty() {
        let records: Vec<RepoDataRecord> = plan
            .unlink
            .iter()
            .map(|r| r.repodata_record.clone())
            .collect();
        out.push_str(&format!(
            "Remove:\n{}\n  {}\n\n",
            records_table(&records),
            count(records.len(), "package")
        ));
    }
    if !plan.link.is_empty() {
        let total: u64 = plan.link.iter().filter_map(|r| r.package_record.size).sum();
        out.push_str(&format!(
            "Install:\n{}\n  {}, {} to fetch at most\n\n",
            records_table(&plan.link),
            count(plan.link.len(), "package"),
            HumanBytes(total)
        ));
    }
    if out.is_empty() {
        out.push_str("Nothing to change: the environment already satisfies the request.\n\n");
    }
    out
}

/// conda's `--json` shape of a plan.
pub fn plan_json(plan: &Plan, prefix: &Path, dry_run: bool) -> serde_json::Value {
    let unlink: Vec<serde_json::Value> = plan
        .unlink
        .iter()
        .map(|r| record_json(&r.repodata_record))
        .collect();
    let link: Vec<serde_json::Value> = plan.link.iter().map(record_json).collect();
    serde_json::json!({
        "success": true,
        "dry_run": dry_run,
        "prefix": prefix,
        "actions": { "LINK": link, "UNLINK": unlink, "PREFIX": prefix },
    })
}

/// `1 package`, `2 packages`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A table of records: name, version, build, channel, size, sorted by name.
pub fn records_table(records: &[RepoDataRecord]) -> String {
    let mut rows: Vec<Vec<String>> = records.iter().map(record_row).collect();
    rows.sort();
    table(&["Package", "Version", "Build", "Channel", "Size"], &rows)
}

/// One record as a table row: name, version, build, channel, size.
pub fn record_row(r: &RepoDataRecord) -> Vec<String> {
    let p = &r.package_record;
    vec![
        p.name.as_normalized().to_owned(),
        p.version.to_string(),
        p.build.to_string(),
        channel_table_label(r),
        p.size
            .map(|s| HumanBytes(s).to_string())
            .unwrap_or_default(),
    ]
}

// A record's channel is shown in three forms, each where conda shows it:
// - [`channel_url`]: the URL, as conda-meta keeps it (`base_url` of the
//   `--json` shapes; the channels `install` without `-c` goes back to);
// - [`conda_channel_name`]: the short name `conda list` prints
//   (`conda-forge`, `pkgs/main`, else that URL), also environment files';
// - [`channel_table_label`]: the Channel column of the plan and `search`
//   tables: a short name or a local path, and the subdir.

/// The channel URL of a record as pkgr shows and writes it: without
/// credentials (records written by pkgr have none; this also covers other
/// writers').
pub fn channel_url(record: &RepoDataRecord) -> Option<String> {
    record.channel.as_deref().map(with_credentials_as_recorded)
}

/// The channel a record came from, as the plan and `search` tables show
/// it: the name under the default alias or the local path, then `/subdir`.
pub fn channel_table_label(record: &RepoDataRecord) -> String {
    let channel = channel_url(record).unwrap_or_default();
    let channel = channel.as_str();
    let label = match Url::parse(channel) {
        Ok(url) if url.scheme() == "file" => url
            .to_file_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|()| channel.to_owned()),
        _ => channel
            .trim_start_matches("https://conda.anaconda.org/")
            .to_owned(),
    };
    format!(
        "{}/{}",
        label.trim_end_matches('/'),
        record.package_record.subdir
    )
}

/// The channel as `conda list` names it: the name under the default
/// channel alias (`conda-forge`), `pkgs/main` for Anaconda's, else the URL
/// (without credentials).
pub fn conda_channel_name(record: &RepoDataRecord) -> String {
    let channel = channel_url(record).unwrap_or_default();
    let channel = channel.trim_end_matches('/');
    channel
        .strip_prefix(crate::settings::DEFAULT_CHANNEL_ALIAS)
        .or_else(|| channel.strip_prefix("https://repo.anaconda.com/"))
        .unwrap_or(channel)
        .to_owned()
}

/// A record as conda's `--json` names a package (`dist_fields_dump`:
/// base_url, build_number, build_string, channel (its name), dist_name,
/// name, platform, version): `list --json` and the plans.
pub fn dist_fields_json(r: &RepoDataRecord) -> serde_json::Value {
    let p = &r.package_record;
    serde_json::json!({
        "base_url": channel_url(r),
        "build_number": p.build_number,
        "build_string": p.build,
        "channel": conda_channel_name(r),
        "dist_name": format!("{}-{}-{}", p.name.as_normalized(), p.version, p.build),
        "name": p.name.as_normalized(),
        "platform": p.subdir,
        "version": p.version.to_string(),
    })
}

/// A record in conda's `--json` plan shape ([`dist_fields_json`]), plus
/// what a script wants to fetch it: `url`, `fn`, `size`, `subdir`, `md5`,
/// `sha256`.
fn record_json(r: &RepoDataRecord) -> serde_json::Value {
    let p = &r.package_record;
    let mut json = dist_fields_json(r);
    if let Some(fields) = json.as_object_mut() {
        let fetch = serde_json::json!({
            "subdir": p.subdir,
            "url": pkgr_redact::url_for_record(&r.url),
            "fn": r.identifier.to_string(),
            "size": p.size,
            "md5": p.md5.as_ref().map(hex::encode),
            "sha256": p.sha256.as_ref().map(hex::encode),
        });
        if let serde_json::Value::Object(fetch) = fetch {
            fields.extend(fetch);
        }
    }
    json
}

/// Which checksum an `@EXPLICIT` line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplicitHash {
    /// The bare URL (`conda list --explicit`).
    None,
    /// `URL#<md5>`.
    Md5,
    /// `URL#<sha256>` (64 hex digits, as conda writes it).
    Sha256,
}

/// The header conda writes above exported lists (`# platform:` is what an
/// explicit install checks).
pub fn export_header(records: &[PrefixRecord]) -> String {
    let subdir = records
        .iter()
        .map(|r| r.repodata_record.package_record.subdir.as_str())
        .find(|s| *s != "noarch")
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| {
            rattler_conda_types::Subdir::current()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default()
        });
    format!(
        "# This file may be used to create an environment using:\n# $ pkgr create --name <env> --file <this file>\n# platform: {subdir}\n# created-by: pkgr {}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// conda's `@EXPLICIT` list: one URL per package (without credentials),
/// with the checksum `hash` asks for. An explicit install links in
/// dependency order whatever the order of the lines.
pub fn explicit(records: &[PrefixRecord], hash: ExplicitHash) -> anyhow::Result<String> {
    let mut out = export_header(records);
    out.push_str("@EXPLICIT\n");
    for record in records {
        let r = &record.repodata_record;
        let url = pkgr_redact::url_for_record(&r.url);
        let p = &r.package_record;
        let digest = match hash {
            ExplicitHash::None => {
                out.push_str(&format!("{url}\n"));
                continue;
            }
            ExplicitHash::Md5 => p.md5.as_ref().map(hex::encode),
            ExplicitHash::Sha256 => p.sha256.as_ref().map(hex::encode),
        };
        match digest {
            Some(digest) => out.push_str(&format!("{url}#{digest}\n")),
            None => bail!(
                "{} has no {} in its record: cannot write it to an explicit list with checksums{}",
                r.identifier,
                if hash == ExplicitHash::Sha256 {
                    "sha256"
                } else {
                    "md5"
                },
                if hash == ExplicitHash::Sha256 {
                    " (try without --sha256)"
                } else {
                    " (try --sha256)"
                }
            ),
        }
    }
    Ok(out)
}
