//! Where things live: the cache root, the environments directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cli::{EnvTarget, GlobalArgs};

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("cannot find the home directory (HOME is not set); pass --cache-dir / -p")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `--cache-dir`, else `$PKGR_CACHE_DIR`, else `$XDG_CACHE_HOME/pkgr`, else `~/.cache/pkgr`.
pub fn cache_root(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &global.cache_dir {
        return absolute(dir);
    }
    if let Some(dir) = env_path("PKGR_CACHE_DIR") {
        return absolute(&dir);
    }
    if let Some(dir) = env_path("XDG_CACHE_HOME") {
        return Ok(dir.join("pkgr"));
    }
    Ok(home()?.join(".cache").join("pkgr"))
}

/// `$PKGR_ROOT`, else `~/.local/share/pkgr`.
pub fn pkgr_root() -> anyhow::Result<PathBuf> {
    match env_path("PKGR_ROOT") {
        Some(root) => absolute(&root),
        None => Ok(home()?.join(".local").join("share").join("pkgr")),
    }
}

/// The prefix a `-n NAME` / `-p PATH` pair names.
pub fn prefix(target: &EnvTarget) -> anyhow::Result<PathBuf> {
    match (&target.name, &target.prefix) {
        (_, Some(path)) => absolute(path),
        (Some(name), None) => {
            if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
                bail!("invalid environment name `{name}`: use a plain name, or -p PATH");
            }
            Ok(pkgr_root()?.join("envs").join(name))
        }
        (None, None) => bail!("name an environment with -n NAME or -p PATH"),
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("invalid path {}", path.display()))
}
