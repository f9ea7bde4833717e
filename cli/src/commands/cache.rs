//! `pkgr cache verify`.

use anyhow::{bail, Context};

use crate::cache_access::open_for_maintenance;
use crate::cli::GlobalArgs;
use crate::output::{print_json, Progress};

/// `pkgr cache verify`: reports corrupt cache entries; `--repair` removes them.
pub async fn verify(global: &GlobalArgs, repair: bool) -> anyhow::Result<()> {
    let cache = open_for_maintenance(global)?;
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
        print_json(&value)?;
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
