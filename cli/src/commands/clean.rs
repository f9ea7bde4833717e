//! `pkgr clean`.

use anyhow::Context;

use crate::cache_access::open_for_maintenance;
use crate::cli::{CleanArgs, GlobalArgs};
use crate::output::{print_json, Progress};

/// `pkgr clean`: the temp files of dead processes always (what `--temp`
/// names); `--tarballs`: the archives of extracted entries; `--all`: every
/// entry and cached repodata file. Nothing in use is touched (try-locks).
pub async fn run(global: &GlobalArgs, args: &CleanArgs) -> anyhow::Result<()> {
    let cache = open_for_maintenance(global)?;
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
        print_json(&value)?;
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
