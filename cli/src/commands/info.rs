//! `pkgr info`.

use crate::channels::parse_channels;
use crate::cli::GlobalArgs;
use crate::environments::{envs_dirs, known_environments};
use crate::output::{print_json, print_stdout};
use crate::paths;
use crate::request::parse_platform;

/// `pkgr info`: what a bug report needs.
pub fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let platform = parse_platform(None)?;
    let virtual_packages = pkgr_solver::detect_virtual_packages(platform)?;
    let cache_dir = paths::cache_root(global)?;
    let envs_dirs = envs_dirs(global)?.to_vec();
    let channels = parse_channels(global, &[], false)?;
    let channel_urls: Vec<String> = channels
        .iter()
        .flat_map(|c| {
            pkgr_repodata::subdirs_for(platform)
                .into_iter()
                .map(move |s| {
                    pkgr_redact::url_for_record(c.base_url.url())
                        .trim_end_matches('/')
                        .to_owned()
                        + "/"
                        + s.as_str()
                })
        })
        .collect();
    let envs = known_environments(global)?;
    let cache_fs = pkgr_cache::filesystem::lock_scope_of(
        cache_dir
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(std::path::Path::new("/")),
    )
    .map(|(mount, scope)| {
        let locks = match scope {
            pkgr_cache::filesystem::LockScope::Local => String::from("locks: local filesystem"),
            pkgr_cache::filesystem::LockScope::AcrossHosts(why) => {
                format!("locks: seen by every host ({why})")
            }
            pkgr_cache::filesystem::LockScope::ThisHostOnly(why) => {
                format!("locks: THIS HOST ONLY ({why}); not safe to share between hosts")
            }
            pkgr_cache::filesystem::LockScope::Unknown(why) => format!("locks: unknown ({why})"),
        };
        format!(
            "{} at {} ({locks})",
            mount.fs_type,
            mount.mount_point.display()
        )
    })
    .unwrap_or_else(|| String::from("(unknown)"));
    let config = &global.config;
    // Opened as it is, never written (see `PackageCache::open`).
    let cache_read_only = pkgr_cache::filesystem::is_read_only(&cache_dir);
    let read_only_caches = &config.read_only_caches.value;
    let active = std::env::var("CONDA_PREFIX").ok();
    if global.json {
        let virtual_json: Vec<serde_json::Value> = virtual_packages
            .iter()
            .map(|v| {
                serde_json::json!([
                    v.name.as_normalized(),
                    v.version.to_string(),
                    v.build_string
                ])
            })
            .collect();
        return print_json(&serde_json::json!({
            "pkgr_version": env!("CARGO_PKG_VERSION"),
            "platform": platform.as_str(),
            "virtual_pkgs": virtual_json,
            "pkgs_dirs": [cache_dir],
            "cache_read_only": cache_read_only,
            "read_only_caches": read_only_caches,
            "envs_dirs": envs_dirs,
            "envs": envs,
            "channels": channel_urls,
            "channel_alias": config.channel_alias.value,
            "cache_filesystem": cache_fs,
            "config_files": config.files_read,
            "active_prefix": active,
        }));
    }
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("pkgr version", vec![env!("CARGO_PKG_VERSION").to_owned()]),
        ("platform", vec![platform.as_str().to_owned()]),
        (
            "virtual packages",
            virtual_packages
                .iter()
                .map(|v| {
                    format!(
                        "{}={}={}",
                        v.name.as_normalized(),
                        v.version,
                        v.build_string
                    )
                })
                .collect(),
        ),
        (
            "active environment",
            vec![active.unwrap_or_else(|| "None".to_owned())],
        ),
        (
            "package cache",
            vec![if cache_read_only {
                format!(
                    "{} (on a read-only filesystem: its packages are used, none can be added)",
                    cache_dir.display()
                )
            } else {
                cache_dir.display().to_string()
            }],
        ),
        (
            "read-only caches",
            if read_only_caches.is_empty() {
                vec!["(none)".to_owned()]
            } else {
                read_only_caches
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect()
            },
        ),
        ("cache filesystem", vec![cache_fs.clone()]),
        (
            "envs directories",
            envs_dirs.iter().map(|d| d.display().to_string()).collect(),
        ),
        ("channel URLs", channel_urls),
        ("channel alias", vec![config.channel_alias.value.clone()]),
        (
            "config files",
            if config.files_read.is_empty() {
                vec!["(none)".to_owned()]
            } else {
                config
                    .files_read
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect()
            },
        ),
        ("environments", vec![envs.len().to_string()]),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, values) in rows.drain(..) {
        for (i, value) in values.iter().enumerate() {
            let (label, colon) = if i == 0 { (key, ':') } else { ("", ' ') };
            out.push_str(&format!("{label:>width$} {colon} {value}\n"));
        }
        if values.is_empty() {
            out.push_str(&format!("{key:>width$} :\n"));
        }
    }
    print_stdout(&out);
    Ok(())
}
