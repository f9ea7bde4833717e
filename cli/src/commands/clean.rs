//! `pkgr clean`: conda's removal targets mapped onto pkgr's cache.
//!
//! | conda flag | conda removes | pkgr removes |
//! |---|---|---|
//! | `-t` | tarballs | archives (`pkgs/<key>.conda`/`.tar.bz2`) |
//! | `-p` | extracted packages no environment hard-links | extracted entries (`pkgs/<key>/`) |
//! | `-i` | the index cache | cached repodata and shards (`repodata/`) |
//! | `-a` | `-t -p -i`, temp files, log files | the same |
//! | `-f` | the whole writable package caches | every entry, archive and repodata file |
//! | `--tempfiles` | `*.c~`/`*.trash` in environments | temp files of finished pkgr processes |
//! | `-l` | log files | nothing (pkgr writes none) |
//!
//! Whatever a process uses is skipped and reported (try-locks: see the
//! lock protocol in `pkgr-cache`). "Unused" is what pkgr can say for sure:
//! no process holds the entry's lock. Environments never depend on a cache
//! entry once linked (hard links or copies, never symlinks into the cache),
//! so removing one an environment was made from breaks nothing; only a
//! later install of that package fetches it again.

use std::path::Path;

use anyhow::Context;
use indicatif::HumanBytes;
use pkgr_cache::{CleanReport, CleanTargets, Removed};

use crate::cache_access::open_for_maintenance;
use crate::cli::{CleanArgs, GlobalArgs};
use crate::output::{print_json, print_stdout, Progress};

/// Which of conda's targets a run asked for (the flags after `-a` and `-f`
/// are expanded).
#[derive(Debug, Clone, Copy)]
struct Asked {
    tarballs: bool,
    index_cache: bool,
    packages: bool,
    temp: bool,
    logfiles: bool,
}

impl Asked {
    fn of(args: &CleanArgs) -> Self {
        let everything = args.all || args.force_pkgs_dirs;
        Self {
            tarballs: args.tarballs || everything,
            index_cache: args.index_cache || everything,
            packages: args.packages || everything,
            temp: args.temp || everything,
            logfiles: args.logfiles || args.all,
        }
    }
}

/// `pkgr clean`.
pub async fn run(global: &GlobalArgs, args: &CleanArgs) -> anyhow::Result<()> {
    let cache = open_for_maintenance(global)?;
    let root = cache.root().to_path_buf();
    let asked = Asked::of(args);
    let targets = CleanTargets {
        extracted: asked.packages,
        archives: asked.tarballs,
        repodata: asked.index_cache,
        dry_run: args.dry_run,
    };
    let report = tokio::task::spawn_blocking(move || cache.clean(targets))
        .await
        .context("clean failed")??;
    if global.json {
        return print_json(&json_report(&root, args, asked, &report));
    }
    let lines = text_report(asked, args.dry_run, &report);
    if args.dry_run {
        if !global.quiet {
            print_stdout(&format!(
                "{}\nDry run: nothing was removed.\n",
                lines.join("\n")
            ));
        }
        return Ok(());
    }
    let progress = Progress::new(global.quiet);
    for line in lines {
        progress.line(&line);
    }
    Ok(())
}

/// What was (or would be) removed, a line per target asked for, items
/// listed in a dry run.
fn text_report(asked: Asked, dry_run: bool, report: &CleanReport) -> Vec<String> {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut lines = Vec::new();
    // `listed`: each item on a line of its own in a dry run.
    let items = |lines: &mut Vec<String>, what: &str, removed: &[Removed], none: &str, listed| {
        if removed.is_empty() {
            lines.push(String::from(none));
            return;
        }
        let bytes: u64 = removed.iter().map(|r| r.bytes).sum();
        let count = plural(removed.len(), what);
        lines.push(format!("{verb} {count} ({})", HumanBytes(bytes)));
        if dry_run && listed {
            for item in removed {
                lines.push(format!("  - {} ({})", item.name, HumanBytes(item.bytes)));
            }
        }
    };
    if asked.tarballs {
        items(
            &mut lines,
            "tarball",
            &report.archives,
            "there are no unused tarballs to remove",
            true,
        );
    }
    if asked.index_cache {
        items(
            &mut lines,
            "index cache file",
            &report.repodata,
            "there is no index cache to remove",
            false,
        );
        if report.shards > 0 {
            lines.push(format!(
                "{verb} {} of the index cache",
                plural(report.shards, "shard")
            ));
        }
    }
    if asked.packages {
        items(
            &mut lines,
            "package",
            &report.extracted,
            "there are no unused packages to remove",
            true,
        );
    }
    if dry_run {
        // Opening the cache swept them, as every command that opens it does.
        if asked.temp {
            lines.push(String::from(
                "there are no temp files of finished processes to remove",
            ));
        }
    } else if asked.temp || report.temp_removed > 0 {
        lines.push(format!(
            "removed the temp files of {}",
            plural(report.temp_removed, "finished process")
        ));
    }
    if asked.logfiles {
        lines.push(String::from(
            "there are no log files to remove (pkgr writes none)",
        ));
    }
    for key in &report.busy {
        lines.push(format!("kept {key}: in use by another process"));
    }
    lines
}

/// `3 tarballs`, `1 tarball`, `2 finished processes`.
fn plural(n: usize, what: &str) -> String {
    match (n, what.ends_with('s')) {
        (1, _) => format!("1 {what}"),
        (_, true) => format!("{n} {what}es"),
        (_, false) => format!("{n} {what}s"),
    }
}

/// conda's `clean --json` keys that pkgr can fill truthfully (`tarballs`,
/// `packages`, `index_cache`, `logfiles`, `pkgs_dirs` with `-f`; not
/// `tempfiles`, which lists conda's temp files by path), then pkgr's own.
fn json_report(
    root: &Path,
    args: &CleanArgs,
    asked: Asked,
    report: &CleanReport,
) -> serde_json::Value {
    let pkgs_dir = root.join(pkgr_cache::layout::Layout::PKGS);
    let pkgs_dir = pkgs_dir.display().to_string();
    // conda's shape for tarballs and packages: sizes by package cache.
    let sizes = |removed: &[Removed]| {
        let names: Vec<&str> = removed.iter().map(|r| r.name.as_str()).collect();
        let sizes: serde_json::Map<String, serde_json::Value> = removed
            .iter()
            .map(|r| (r.name.clone(), r.bytes.into()))
            .collect();
        let (pkg_sizes, pkgs_dirs) = if removed.is_empty() {
            (serde_json::json!({}), serde_json::json!({}))
        } else {
            (
                serde_json::json!({ &pkgs_dir: sizes }),
                serde_json::json!({ &pkgs_dir: names }),
            )
        };
        serde_json::json!({
            "warnings": [],
            "pkg_sizes": pkg_sizes,
            "pkgs_dirs": pkgs_dirs,
            "total_size": removed.iter().map(|r| r.bytes).sum::<u64>(),
        })
    };
    let repodata_dir = root.join(pkgr_cache::layout::Layout::REPODATA);
    let mut value = serde_json::json!({ "success": true, "dry_run": args.dry_run });
    if asked.tarballs {
        value["tarballs"] = sizes(&report.archives);
    }
    if asked.index_cache {
        let mut files: Vec<String> = report
            .repodata
            .iter()
            .map(|r| repodata_dir.join(&r.name).display().to_string())
            .collect();
        if report.shards > 0 {
            let shards = repodata_dir.join(pkgr_cache::layout::Layout::SHARDS);
            files.push(shards.display().to_string());
        }
        value["index_cache"] = serde_json::json!({ "files": files });
    }
    if asked.packages {
        value["packages"] = sizes(&report.extracted);
    }
    if asked.logfiles {
        value["logfiles"] = serde_json::json!([]);
    }
    if args.force_pkgs_dirs {
        value["pkgs_dirs"] = serde_json::json!([root.display().to_string()]);
    }
    let tarball_keys: std::collections::BTreeSet<&str> = report
        .archives
        .iter()
        .map(|r| pkgr_cache::layout::Layout::key_of(&r.name))
        .collect();
    // Channel subdirs whose repodata went (`<hash>.json`, `<hash>.info.json`, ...).
    let repodata_bases = report
        .repodata
        .iter()
        .filter_map(|r| r.name.split('.').next())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    // pkgr's own keys (what `clean --json` has always had).
    for (key, field) in [
        (
            "removed",
            serde_json::json!(report.extracted.iter().map(|r| &r.name).collect::<Vec<_>>()),
        ),
        ("busy", serde_json::json!(report.busy)),
        ("repodata_removed", serde_json::json!(repodata_bases)),
        ("shards_removed", serde_json::json!(report.shards)),
        ("temp_removed", serde_json::json!(report.temp_removed)),
        ("temp_live", serde_json::json!(report.temp_live)),
        ("tarballs_removed", serde_json::json!(tarball_keys)),
        (
            "tarball_bytes",
            serde_json::json!(report.archives.iter().map(|r| r.bytes).sum::<u64>()),
        ),
    ] {
        value[key] = field;
    }
    value
}
