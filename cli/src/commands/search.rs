//! `pkgr search SPEC`: the records of the configured channels that match a
//! spec, newest first, like `conda search`.

use std::sync::Arc;

use anyhow::{bail, Context};
use rattler_conda_types::{MatchSpec, ParseMatchSpecOptions};

use crate::cache_access::JobLimitedCache;
use crate::channels::parse_channels;
use crate::cli::{GlobalArgs, SearchArgs};
use crate::output::print_json;
use crate::output::{print_stdout, table, Progress};
use crate::render::{channel_url, record_row};
use crate::request::platform;

/// `pkgr search`.
pub async fn run(global: &GlobalArgs, args: &SearchArgs) -> anyhow::Result<()> {
    // Globs over names (`py*`) are what searching is for.
    let options = ParseMatchSpecOptions::lenient().with_exact_names_only(false);
    let spec = MatchSpec::from_str(&args.spec, options)
        .with_context(|| format!("invalid package spec `{}`", args.spec))?;
    let channels = parse_channels(global, &args.channels, args.override_channels)?;
    let platform = platform(global, args.platform.as_deref())?;
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let shared_cache = JobLimitedCache::open(global, &progress)?;
    let spinner = progress.spinner("loading channels");
    let indexes =
        pkgr_repodata::load_channels(&shared_cache.cache, &channels, platform, progress.as_ref())
            .await?;
    let records = pkgr_repodata::search(&shared_cache.cache, &indexes, &spec).await?;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    if global.json {
        // conda's shape: name → its records.
        let mut by_name = serde_json::Map::new();
        for record in &records {
            let value = serde_json::to_value(&record.package_record)?;
            let mut value = match value {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            value.insert(
                "url".to_owned(),
                pkgr_redact::url_for_record(&record.url).into(),
            );
            value.insert("channel".to_owned(), channel_url(record).into());
            value.insert("fn".to_owned(), record.identifier.to_string().into());
            if let Some(list) = by_name
                .entry(record.package_record.name.as_normalized().to_owned())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()))
                .as_array_mut()
            {
                list.push(serde_json::Value::Object(value));
            }
        }
        return print_json(&serde_json::Value::Object(by_name));
    }
    if records.is_empty() {
        let where_ = channels
            .iter()
            .map(pkgr_repodata::channel_as_shown)
            .collect::<Vec<_>>()
            .join(", ");
        bail!(
            "no package matches `{}` in {where_} for {platform} or noarch",
            args.spec
        );
    }
    // In the solver's order (newest first), not sorted by name.
    let rows: Vec<Vec<String>> = records.iter().map(record_row).collect();
    print_stdout(&table(
        &["Name", "Version", "Build", "Channel", "Size"],
        &rows,
    ));
    Ok(())
}
