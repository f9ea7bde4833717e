//! `pkgr clean` and `pkgr cache verify`.

use anyhow::{bail, Context};
use pkgr_cache::PackageCache;
use pkgr_fetch::Fetcher;

use crate::cli::{CleanArgs, GlobalArgs};
use crate::output::{print_stdout, Progress};
use crate::paths;

fn open(global: &GlobalArgs) -> anyhow::Result<PackageCache> {
    let root = paths::cache_root(global)?;
    Ok(PackageCache::open(&root, Fetcher::new()?)?)
}

/// `pkgr clean`: the temp files of dead processes always (what `--temp`
/// names); `--tarballs`: the archives of extracted entries; `--all`: every
/// entry and cached repodata file. Nothing in use is touched (try-locks).
pub async fn clean(global: &GlobalArgs, args: &CleanArgs) -> anyhow::Result<()> {
    let cache = open(global)?;
    let (all, tarballs) = (args.all, args.tarballs);
    let report = tokio::task::spawn_blocking(move || {
        let mut report = cache.clean(all)?;
        if tarballs && !all {
            cache.clean_tarballs(&mut report)?;
        }
        Ok::<_, pkgr_cache::CacheError>(report)
    })
    .await
    .context("clean failed")??;
    if global.json {
        let value = serde_json::json!({
            "removed": report.removed,
            "busy": report.busy,
            "repodata_removed": report.repodata_removed,
            "temp_removed": report.temp_removed,
            "temp_live": report.temp_live,
            "tarballs_removed": report.tarballs_removed,
            "tarball_bytes": report.tarball_bytes,
        });
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?));
        return Ok(());
    }
    let progress = Progress::new(global.quiet);
    for key in &report.busy {
        progress.line(&format!("skipped {key} (in use by another pkgr process)"));
    }
    if tarballs && !all {
        progress.line(&format!(
            "removed {} archives ({}) of extracted packages; removed the temp files of {} finished processes; {} packages in use were kept",
            report.tarballs_removed.len(),
            indicatif::HumanBytes(report.tarball_bytes),
            report.temp_removed,
            report.busy.len()
        ));
        return Ok(());
    }
    progress.line(&format!(
        "removed {} packages, {} repodata files and the temp files of {} finished processes; {} packages in use were kept",
        report.removed.len(),
        report.repodata_removed,
        report.temp_removed,
        report.busy.len()
    ));
    Ok(())
}

pub async fn verify(global: &GlobalArgs, repair: bool) -> anyhow::Result<()> {
    let cache = open(global)?;
    let report = tokio::task::spawn_blocking(move || cache.verify(repair))
        .await
        .context("verify failed")??;
    if global.json {
        let corrupt: Vec<serde_json::Value> = report
            .corrupt
            .iter()
            .map(|c| serde_json::json!({"key": c.key, "problem": c.problem, "removed": c.removed}))
            .collect();
        let value = serde_json::json!({
            "checked": report.checked,
            "corrupt": corrupt,
            "busy": report.busy,
        });
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?));
    } else {
        let progress = Progress::new(global.quiet);
        for c in &report.corrupt {
            let action = if c.removed { " (removed)" } else { "" };
            progress.warn(&format!("corrupt: {}: {}{action}", c.key, c.problem));
        }
        for key in &report.busy {
            progress.line(&format!("skipped {key} (in use by another pkgr process)"));
        }
        progress.line(&format!(
            "checked {} packages: {} corrupt",
            report.checked,
            report.corrupt.len()
        ));
    }
    let left = report.corrupt.iter().filter(|c| !c.removed).count();
    if left > 0 {
        bail!(
            "{left} corrupt cache entries{}",
            if repair {
                " could not be removed (in use)"
            } else {
                "; run `pkgr cache verify --repair` to remove them"
            }
        );
    }
    Ok(())
}
